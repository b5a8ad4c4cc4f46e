"""The small torch.nn modules and functions: L1Loss, SmoothL1Loss, HuberLoss, KLDivLoss (F.l1_loss, F.smooth_l1_loss,
F.huber_loss, F.kl_div), Flatten, Unflatten, Softmax, LogSoftmax and Embedding (F.embedding): values and gradients
against torch 2.13 in float32 and float64, float64 gradchecks, reprs, and the device stand-in."""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minivae as mv
import minivae.functional as F
from minivae import nn

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


def _torch():
    return pytest.importorskip("torch")


def _compare(fn, tfn, arrays, dtype, grads=None, g=None):
    """fn on minivae tensors and tfn on torch tensors of ``arrays``: the values and, for each index in ``grads``, the
    gradient of that input for the upstream gradient ``g`` (random when None)."""
    torch = _torch()
    grads = range(len(arrays)) if grads is None else grads
    ours = [mv.tensor(a, requires_grad=i in grads) for i, a in enumerate(arrays)]
    theirs = [torch.tensor(a, requires_grad=i in grads) for i, a in enumerate(arrays)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y, yt = fn(*ours), tfn(*theirs)
    assert y.dtype == yt.detach().numpy().dtype
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **TOL[dtype])
    g = np.random.default_rng(9).normal(size=y.shape).astype(dtype) if g is None else g
    y.backward(g)
    yt.backward(torch.tensor(g))
    for i in grads:
        np.testing.assert_allclose(ours[i].grad, theirs[i].grad.numpy(), err_msg=f"input {i}", **TOL[dtype])


def _xt(dtype, shape=(4, 5), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=shape) * 2).astype(dtype), (rng.normal(size=shape) * 2).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_regression_losses_as_torchs(dtype, reduction):
    """l1_loss, smooth_l1_loss (β 0, 0.5, 1, 3), huber_loss (δ 0.5, 1, 3) and their modules: values and the gradients
    of input and target, as torch's. Old code: none of them."""
    torch = _torch()
    tf = torch.nn.functional
    x, t = _xt(dtype)
    _compare(lambda a, b: F.l1_loss(a, b, reduction=reduction), lambda a, b: tf.l1_loss(a, b, reduction=reduction),
             (x, t), dtype)
    _compare(lambda a, b: nn.L1Loss(reduction)(a, b), lambda a, b: torch.nn.L1Loss(reduction=reduction)(a, b),
             (x, t), dtype)
    for beta in (0.0, 0.5, 1.0, 3.0):
        _compare(lambda a, b, beta=beta: F.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
                 lambda a, b, beta=beta: tf.smooth_l1_loss(a, b, reduction=reduction, beta=beta), (x, t), dtype)
        _compare(lambda a, b, beta=beta: nn.SmoothL1Loss(reduction, beta)(a, b),
                 lambda a, b, beta=beta: torch.nn.SmoothL1Loss(reduction=reduction, beta=beta)(a, b), (x, t), dtype)
    for delta in (0.5, 1.0, 3.0):
        _compare(lambda a, b, delta=delta: F.huber_loss(a, b, reduction, delta),
                 lambda a, b, delta=delta: tf.huber_loss(a, b, reduction, delta),
                 (x, t), dtype)
        _compare(lambda a, b, delta=delta: nn.HuberLoss(reduction, delta)(a, b),
                 lambda a, b, delta=delta: torch.nn.HuberLoss(reduction=reduction, delta=delta)(a, b), (x, t), dtype)


def test_regression_losses_refuse_what_torch_refuses():
    x = mv.zeros(3)
    with pytest.raises(ValueError, match="negative values for beta"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match="non-positive values for delta"):
        F.huber_loss(x, x, delta=0.0)
    with pytest.raises(ValueError, match="reduction"):
        nn.L1Loss("avg")
    with pytest.warns(UserWarning, match="broadcasts"):
        F.l1_loss(mv.zeros(3, 1), mv.zeros(3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_as_torchs(dtype, reduction, log_target):
    """F.kl_div and KLDivLoss from log-probabilities, the target as probabilities (some 0: 0·log 0 = 0) or as
    log-probabilities: values, the input's gradient, and the target's where torch's is defined (t > 0)."""
    torch = _torch()
    rng = np.random.default_rng(1)
    logq = np.log(rng.dirichlet(np.ones(5), size=4)).astype(dtype)
    p = rng.dirichlet(np.ones(5), size=4).astype(dtype)
    p_zero = p.copy()
    p_zero[0, :2] = 0
    for target in ((np.log(p), np.log(p_zero[1:])) if log_target else (p, p_zero)):
        q = logq[:len(target)]
        grads = [0, 1] if (target != 0).all() else [0]
        _compare(lambda a, b: F.kl_div(a, b, reduction=reduction, log_target=log_target),
                 lambda a, b: torch.nn.functional.kl_div(a, b, reduction=reduction, log_target=log_target),
                 (q, target), dtype, grads)
        _compare(lambda a, b: nn.KLDivLoss(reduction, log_target)(a, b),
                 lambda a, b: torch.nn.KLDivLoss(reduction=reduction, log_target=log_target)(a, b),
                 (q, target), dtype, grads)


def test_kl_div_zero_target_gradient_and_warning():
    """At t = 0 the target's gradient is −log q (0·log 0 = 0's right limit; torch's is NaN), finite; "mean" warns as
    torch's."""
    q = mv.tensor(np.log([0.2, 0.8]))
    t = mv.tensor([0.0, 1.0], requires_grad=True)
    F.kl_div(q, t, reduction="sum").backward()
    np.testing.assert_allclose(t.grad, [-np.log(0.2), np.log(1.0) + 1 - np.log(0.8)])
    with pytest.warns(UserWarning, match="batchmean"):
        F.kl_div(q, t)
    with pytest.raises(ValueError, match="reduction"):
        F.kl_div(q, t, reduction="avg")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_and_softmax_modules_as_torchs(dtype):
    """Flatten (default and given axes), Unflatten (with −1), Softmax and LogSoftmax: values, gradients and reprs."""
    torch = _torch()
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 2)).astype(dtype)
    pairs = [(nn.Flatten(), torch.nn.Flatten()), (nn.Flatten(0, 2), torch.nn.Flatten(0, 2)),
             (nn.Flatten(-2), torch.nn.Flatten(-2)), (nn.Unflatten(2, (2, 2)), torch.nn.Unflatten(2, (2, 2))),
             (nn.Unflatten(-2, (-1, 1)), torch.nn.Unflatten(-2, (-1, 1))), (nn.Softmax(1), torch.nn.Softmax(1)),
             (nn.Softmax(-1), torch.nn.Softmax(-1)), (nn.LogSoftmax(2), torch.nn.LogSoftmax(2))]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)
        _compare(ours, theirs, (x,), dtype)
    with pytest.raises(ValueError, match="does not fit"):
        nn.Unflatten(1, (2, 2))(mv.zeros(2, 3))


@pytest.mark.parametrize("shape", [(5,), (2, 3), (2, 3, 4), (1, 2, 3, 4)])
def test_softmax_implicit_dim_as_torchs(shape):
    """dim=None: torch's implicit axis (0 for 1-D and 3-D inputs, else 1) and its deprecation warning."""
    torch = _torch()
    x = np.random.default_rng(3).normal(size=shape)
    for ours, theirs in ((nn.Softmax(), torch.nn.Softmax()), (nn.LogSoftmax(), torch.nn.LogSoftmax())):
        with pytest.warns(UserWarning, match="Implicit dimension choice"):
            y = ours(mv.tensor(x))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yt = theirs(torch.tensor(x))
        np.testing.assert_allclose(y.numpy(), yt.numpy(), rtol=1e-12)
        assert repr(ours) == repr(theirs) == f"{type(ours).__name__}(dim=None)"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_as_torchs(dtype, padding_idx):
    """Embedding and F.embedding with torch's weight: rows picked for indices of any shape (repeats add up in the
    gradient), the padding row zeros and without gradient, the repr."""
    torch = _torch()
    ours = nn.Embedding(6, 3, padding_idx, rng=mv.random.Generator(0), dtype=dtype)
    theirs = torch.nn.Embedding(6, 3, padding_idx, dtype=torch.float64 if dtype == np.float64 else torch.float32)
    if padding_idx is not None:
        assert not ours.weight.numpy()[padding_idx].any()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.numpy()))
    assert repr(ours) == repr(theirs)
    idx = np.array([[0, 2, 2, 5], [1, 2, 5, 4]])
    y, yt = ours(mv.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    g = np.random.default_rng(4).normal(size=y.shape).astype(dtype)
    y.backward(g)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), **TOL[dtype])
    w = mv.tensor(ours.weight.numpy(), requires_grad=True)
    y = F.embedding(idx, w, padding_idx)
    y.backward(g)
    np.testing.assert_allclose(w.grad, theirs.weight.grad.numpy(), **TOL[dtype])


def test_embedding_refuses_bad_indices_and_draws_from_rng():
    e = nn.Embedding(4, 2, rng=mv.random.Generator(1))
    for bad in ([4], [-1]):
        with pytest.raises(IndexError, match="out of range"):
            e(np.array(bad))
    with pytest.raises(TypeError, match="integers"):
        e(np.array([0.5]))
    with pytest.raises(ValueError, match="Padding_idx"):
        nn.Embedding(4, 2, padding_idx=4)
    assert np.array_equal(e.weight.numpy(), nn.Embedding(4, 2, rng=mv.random.Generator(1)).weight.numpy())
    assert not np.array_equal(e.weight.numpy(), nn.Embedding(4, 2, rng=mv.random.Generator(2)).weight.numpy())
    assert e(np.zeros((0, 3), np.int64)).shape == (0, 3, 2)


@st.composite
def _pairs(draw):
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    return shape, draw(st.integers(0, 2**31)), draw(st.sampled_from([0.5, 1.0, 2.0]))


@given(_pairs())
def test_losses_gradcheck(case):
    """float64 gradchecks of the new losses in input and target (the kinks |x − t| = 0 and = β have measure 0 under
    random normals), kl_div with positive targets, and embedding's weight."""
    shape, seed, beta = case
    rng = np.random.default_rng(seed)
    x, t = rng.normal(size=shape) * 2, rng.normal(size=shape) * 2
    assert mv.gradcheck(lambda a, b: F.l1_loss(a, b, reduction="sum"), (x, t))
    assert mv.gradcheck(lambda a, b: F.smooth_l1_loss(a, b, reduction="mean", beta=beta), (x, t))
    assert mv.gradcheck(lambda a, b: F.huber_loss(a, b, "none", beta), (x, t))
    p = rng.uniform(0.05, 1, shape)
    assert mv.gradcheck(lambda a, b: F.kl_div(a, b, reduction="batchmean"), (x, p))
    assert mv.gradcheck(lambda a, b: F.kl_div(a, b, reduction="sum", log_target=True), (x, t))
    idx = rng.integers(0, 3, size=shape)
    assert mv.gradcheck(lambda w: F.embedding(idx, w), (rng.normal(size=(3, 2)),))  # (a padding row: no gradient)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layers_on_the_device_as_on_the_cpu(dtype):
    """The new modules on device="cuda" (tests/strict_array.py's CuPy stand-in): no copy to the host (Embedding's
    index check is the CPU's only), no upload, the same bits as the CPU."""
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import UPLOADS, emulating, record
    rng = np.random.default_rng(3)
    x, t = (rng.normal(size=(4, 6)).astype(dtype) for _ in range(2))
    idx = np.array([[0, 2], [3, 2]])
    with use_numba(False), use_cuda_kernels(False), emulating():
        results = []
        for device in ("cpu", "cuda"):
            emb = nn.Embedding(4, 3, 1, rng=mv.random.Generator(0), dtype=dtype, device=device)
            xs, ts = (mv.tensor(a, device=device, requires_grad=True) for a in (x, t))
            ids = mv.tensor(idx, device=device)
            mods = [nn.L1Loss(), nn.SmoothL1Loss(beta=0.5), nn.HuberLoss(delta=2.0), nn.KLDivLoss("batchmean")]
            with record() as log, record(UPLOADS) as uploads:
                ys = [m(xs, ts) for m in mods] + [nn.Flatten(0)(nn.Unflatten(1, (2, 3))(xs)),
                                                  nn.Softmax(1)(xs), nn.LogSoftmax(0)(xs), emb(ids)]
                for y in ys:
                    y.backward(mv.ones(*y.shape, dtype=dtype, device=device).data * 0.5)
            if device == "cuda":
                assert log == [] and uploads == [], (log, uploads)
            results.append([y.numpy() for y in ys] + [a.get() if device == "cuda" else a
                                                      for a in (xs.grad, ts.grad, emb.weight.grad)])
    for a, b in zip(*results):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
