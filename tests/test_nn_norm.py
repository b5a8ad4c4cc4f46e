"""F.layer_norm / nn.LayerNorm and F.batch_norm / nn.BatchNorm1d: values, gradients and running statistics against
torch 2.13 in float32 and float64; float64 gradchecks by hypothesis; constant inputs (variance 0); the device path
(tests/strict_array.py's stand-in for CuPy: no copy to the host, the same bits as the CPU)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minivae as mv
import minivae.functional as F
from minivae import nn

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-11)}


def _torch():
    return pytest.importorskip("torch")


def _pair(a, requires_grad=True):
    torch = _torch()
    return mv.tensor(a, requires_grad=requires_grad), torch.tensor(a, requires_grad=requires_grad)


def _close(ours, theirs, dtype, what):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    ours = ours.numpy() if isinstance(ours, mv.Tensor) else ours
    assert ours.dtype == theirs.dtype, what
    np.testing.assert_allclose(ours, theirs, err_msg=what, **TOL[dtype])


CASES = [((4, 5), 1), ((3, 2, 6), 1), ((2, 3, 4), 2), ((7,), 1), ((2, 1, 3, 2), 3), ((0, 4), 1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, k", CASES)
@pytest.mark.parametrize("eps", [1e-5, 0.5])
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_values_and_gradients_as_torchs(dtype, shape, k, eps, affine):
    """y and the gradients of x, w and b for a random upstream gradient, as torch's F.layer_norm (ε inside the root:
    eps 0.5 tells it from ε added to the deviation). Old code: no layer_norm."""
    torch = _torch()
    rng = np.random.default_rng(sum(shape) + k)
    norm = shape[len(shape) - k:]
    x, xt = _pair((rng.normal(size=shape) * 2 + 1).astype(dtype))
    w = b = wt = bt = None
    if affine != "none":
        w, wt = _pair(rng.normal(size=norm).astype(dtype))
    if affine == "both":
        b, bt = _pair(rng.normal(size=norm).astype(dtype))
    g = rng.normal(size=shape).astype(dtype)
    y = F.layer_norm(x, norm, w, b, eps)
    yt = torch.nn.functional.layer_norm(xt, norm, wt, bt, eps)
    _close(y, yt, dtype, "y")
    y.backward(g)
    yt.backward(torch.tensor(g))
    for ours, theirs, name in ((x, xt, "x"), (w, wt, "w"), (b, bt, "b")):
        if ours is not None:
            _close(ours.grad, theirs.grad, dtype, name)


def test_layer_norm_module_as_torchs():
    """nn.LayerNorm: parameters (ones, zeros), their names, None when not affine or without bias, the repr, the
    output; a wrong shape named."""
    torch = _torch()
    for kw in ({}, {"elementwise_affine": False}, {"bias": False}, {"eps": 0.1}):
        ours, theirs = nn.LayerNorm((2, 3), **kw), torch.nn.LayerNorm((2, 3), **kw)
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
        assert list(ours.state_dict()) == list(theirs.state_dict())
        for n, p in ours.named_parameters():
            np.testing.assert_array_equal(p.numpy(), theirs.get_parameter(n).detach().numpy())
        assert repr(ours) == repr(theirs)
        x = np.random.default_rng(1).normal(size=(4, 2, 3)).astype(np.float32)
        _close(ours(mv.tensor(x)), theirs(torch.tensor(x)), np.float32, str(kw))
    assert nn.LayerNorm(4, dtype=np.float64).weight.dtype == np.float64
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(4)(mv.zeros(2, 3))


def _bn_run(lib, dtype, shape, momentum, track=True, affine=True, steps=3, seed=0):
    """Training steps (each a forward and a backward with a random upstream gradient, the gradients kept apart),
    then one eval forward; what each step gave, as NumPy arrays."""
    torch = _torch()
    rng = np.random.default_rng(seed)
    if lib is mv:
        m = nn.BatchNorm1d(shape[1], eps=1e-3, momentum=momentum, affine=affine, track_running_stats=track,
                           dtype=dtype)
    else:
        m = torch.nn.BatchNorm1d(shape[1], eps=1e-3, momentum=momentum, affine=affine, track_running_stats=track,
                                 dtype=torch.float64 if dtype == np.float64 else torch.float32)
    if affine:  # (weight and bias not 1 and 0)
        with (torch.no_grad() if lib is torch else mv.no_grad()):
            m.weight.copy_(lib.tensor(rng.normal(size=shape[1]).astype(dtype)))
            m.bias.copy_(lib.tensor(rng.normal(size=shape[1]).astype(dtype)))
    out = []
    for step in range(steps):
        x = lib.tensor((rng.normal(size=shape) * (step + 1) + step).astype(dtype), requires_grad=True)
        g = lib.tensor(rng.normal(size=shape).astype(dtype))
        y = m(x)
        y.backward(g if lib is torch else g.data)
        grads = [x.grad] + ([m.weight.grad, m.bias.grad] if affine else [])
        out.append([y] + [lib.tensor(a) if lib is mv else a for a in grads])
        m.zero_grad()
        if track:
            out.append([m.running_mean, m.running_var])
            assert int(m.num_batches_tracked.item()) == step + 1
    m.eval()
    x = lib.tensor(rng.normal(size=shape).astype(dtype), requires_grad=True)
    y = m(x)
    y.backward(lib.tensor(np.ones(shape, dtype)) if lib is torch else np.ones(shape, dtype))
    out.append([y, x.grad if lib is torch else mv.tensor(x.grad)])
    return [[t.detach().numpy() if lib is torch else t.numpy() for t in row] for row in out]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 3), (4, 2, 5), (1, 3, 4), (2, 1)])
@pytest.mark.parametrize("momentum", [0.1, 0.7, None])
def test_batch_norm1d_training_then_eval_as_torchs(dtype, shape, momentum):
    """Three training steps (outputs, gradients of x, w and b through the batch's statistics, running_mean and
    running_var after each: the unbiased variance in the update, the biased one in the normalization; momentum m
    weighting the batch, None the cumulative average 1/k) and an eval step with the running statistics, as torch's
    BatchNorm1d for (N, C) and (N, C, L). Old code: no BatchNorm1d."""
    ours, theirs = _bn_run(mv, dtype, shape, momentum), _bn_run(_torch(), dtype, shape, momentum)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        for j, (u, v) in enumerate(zip(a, b)):
            _close(u, v, dtype, f"row {i} entry {j}")


@pytest.mark.parametrize("track, affine", [(False, True), (True, False), (False, False)])
def test_batch_norm1d_options_as_torchs(track, affine):
    """track_running_stats=False (the batch's statistics in eval mode too, the buffers None) and affine=False (no
    parameters), as torch's: values, gradients, names and the state_dict's keys."""
    torch = _torch()
    ours, theirs = _bn_run(mv, np.float64, (5, 3, 2), 0.1, track, affine), \
        _bn_run(torch, np.float64, (5, 3, 2), 0.1, track, affine)
    for a, b in zip(ours, theirs):
        for u, v in zip(a, b):
            _close(u, v, np.float64, f"{track} {affine}")
    m, t = nn.BatchNorm1d(3, affine=affine, track_running_stats=track), \
        torch.nn.BatchNorm1d(3, affine=affine, track_running_stats=track)
    assert list(m.state_dict()) == list(t.state_dict())
    assert [n for n, _ in m.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert repr(m) == repr(t)
    m, t = nn.BatchNorm1d(3, bias=False), torch.nn.BatchNorm1d(3, bias=False)
    assert list(m.state_dict()) == list(t.state_dict()) and repr(m) == repr(t)


def test_batch_norm1d_buffers_state_dict_and_reset_as_torchs():
    """The state_dict's keys, the buffers' dtypes (num_batches_tracked int64) and initial values, reset_running_stats,
    and a load of torch's state into ours."""
    torch = _torch()
    m, t = nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4)
    assert list(m.state_dict()) == list(t.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                                             "num_batches_tracked"]
    for k, v in t.state_dict().items():
        assert m.state_dict()[k].dtype == v.numpy().dtype and np.array_equal(m.state_dict()[k], v.numpy()), k
    t(torch.randn(3, 4))
    m.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    assert int(m.num_batches_tracked.item()) == 1 and not np.array_equal(m.running_var.numpy(), np.ones(4))
    m.reset_running_stats()
    t.reset_running_stats()
    for k, v in t.state_dict().items():
        assert np.array_equal(m.state_dict()[k], v.numpy()), k


def test_batch_of_one_value_per_channel_refused_in_training_as_torchs():
    """(1, C) in training: torch's ValueError, nothing updated; (1, C, L) with L > 1 and (1, C) in eval mode pass."""
    torch = _torch()
    m, t = nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    for lib, mod in ((mv, m), (torch, t)):
        with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
            mod(lib.zeros(1, 3))
        mod(lib.ones(1, 3, 2))
        mod.eval()
        mod(lib.zeros(1, 3))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        m(mv.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="running_mean must hold 3 values"):
        F.batch_norm(mv.zeros(2, 3), mv.zeros(4), mv.ones(3))
    with pytest.raises(ValueError, match="must be given when not training"):
        F.batch_norm(mv.zeros(2, 3), None, None)
    with pytest.raises(TypeError, match="momentum"):
        F.batch_norm(mv.zeros(2, 3), mv.zeros(3), mv.ones(3), training=True, momentum=None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_functional_batch_norm_as_torchs(dtype):
    """F.batch_norm itself: training (running statistics updated in place, momentum 0.3) and not (torch's default)."""
    torch = _torch()
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3, 2)).astype(dtype) * 3
    w, b = rng.normal(size=3).astype(dtype), rng.normal(size=3).astype(dtype)
    rm, rv = rng.normal(size=3).astype(dtype), rng.uniform(0.5, 2, 3).astype(dtype)
    ours = [mv.tensor(rm.copy()), mv.tensor(rv.copy())]
    theirs = [torch.tensor(rm.copy()), torch.tensor(rv.copy())]
    for training in (True, False):
        y = F.batch_norm(mv.tensor(x), *ours, mv.tensor(w), mv.tensor(b), training, 0.3, 1e-4)
        yt = torch.nn.functional.batch_norm(torch.tensor(x), *theirs, torch.tensor(w), torch.tensor(b), training, 0.3,
                                            1e-4)
        _close(y, yt, dtype, f"y {training}")
        for a, c in zip(ours, theirs):
            _close(a, c, dtype, f"running {training}")
    _close(F.batch_norm(mv.tensor(x), *ours), torch.nn.functional.batch_norm(torch.tensor(x), *theirs), dtype, "dflt")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_constant_inputs_give_no_nan(dtype):
    """A constant slice (variance 0): y = b and finite gradients, as torch's (ε keeps the root positive)."""
    torch = _torch()
    x = np.full((4, 3, 5), 0.1, dtype)
    g = np.random.default_rng(2).normal(size=x.shape).astype(dtype)
    for fn, tfn in ((lambda t: F.layer_norm(t, (3, 5)), lambda t: torch.nn.functional.layer_norm(t, (3, 5))),
                    (lambda t: F.batch_norm(t, None, None, training=True),
                     lambda t: torch.nn.functional.batch_norm(t, None, None, training=True))):
        xs, xt = _pair(x)
        y, yt = fn(xs), tfn(xt)
        y.backward(g)
        yt.backward(torch.tensor(g))
        assert np.isfinite(y.numpy()).all() and np.isfinite(xs.grad).all()
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), atol=1e-3 if dtype == np.float32 else 1e-11)
        np.testing.assert_allclose(xs.grad, xt.grad.numpy(), atol=1e-2 if dtype == np.float32 else 1e-9)


@st.composite
def _norm_case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=2, max_size=3)))
    seed = draw(st.integers(0, 2**31))
    eps = draw(st.sampled_from([1e-5, 1e-2, 1.0]))
    return shape, seed, eps


@given(_norm_case())
def test_layer_norm_gradcheck(case):
    """float64 gradcheck of layer_norm over its last axis and last two, in x, w and b."""
    shape, seed, eps = case
    rng = np.random.default_rng(seed)
    for k in (1, 2):
        norm = shape[len(shape) - k:]
        x = rng.normal(size=shape) * 2
        w, b = rng.normal(size=norm), rng.normal(size=norm)
        assert mv.gradcheck(lambda x, w, b, norm=norm: F.layer_norm(x, norm, w, b, eps), (x, w, b))


@given(_norm_case())
def test_batch_norm_gradcheck(case):
    """float64 gradcheck of batch_norm in training (through the batch's statistics) and in eval, in x, w and b."""
    shape, seed, eps = case
    if shape[0] * int(np.prod(shape[2:])) == 1:
        shape = (2, *shape[1:])
    rng = np.random.default_rng(seed)
    c = shape[1]
    x, w, b = rng.normal(size=shape) * 2, rng.normal(size=c), rng.normal(size=c)
    rm, rv = mv.tensor(rng.normal(size=c)), mv.tensor(rng.uniform(0.5, 2, c))
    assert mv.gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, True, 0.1, eps), (x, w, b))
    assert mv.gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, False, 0.1, eps), (x, w, b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_norm_modules_on_the_device_as_on_the_cpu(dtype):
    """LayerNorm and BatchNorm1d made with device="cuda" (tests/strict_array.py's CuPy stand-in): parameters and
    buffers on the device, the running update and the count made there (no copy to the host, no upload in the steps),
    the same bits as on the CPU."""
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import UPLOADS, StrictArray, emulating, record
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 3, 2)).astype(dtype)
    with use_numba(False), use_cuda_kernels(False), emulating():
        results = []
        for device in ("cpu", "cuda"):
            mods = [nn.LayerNorm((3, 2), dtype=dtype, device=device),
                    nn.BatchNorm1d(3, momentum=None, dtype=dtype, device=device),
                    nn.BatchNorm1d(3, dtype=dtype, device=device)]
            xs = mv.tensor(x, device=device, requires_grad=True)
            g = mv.tensor(x * 0.5, device=device).data
            with record() as log, record(UPLOADS) as uploads:
                ys = [m(xs) for m in mods] + [mods[2](xs)]
                for y in ys:
                    y.backward(g)
                mods[1].eval()
                ys.append(mods[1](xs))
            if device == "cuda":
                assert log == [] and uploads == [], (log, uploads)
                assert all(isinstance(t.data, StrictArray) for m in mods for t in [*m.parameters(), *m.buffers()])
            results.append([y.numpy() for y in ys] + [xs.grad.get() if device == "cuda" else xs.grad]
                           + [v for m in mods for v in m.state_dict().values()])
    for a, b in zip(*results):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm1d_in_a_step_plan_as_eager(momentum):
    """A compiled step plan replays BatchNorm1d's running update and count (recorded writes, the factor 1/k read on
    the device, never on the host): the same state after four steps as four eager steps."""
    from minivae.optim import SGD
    from tests.test_plan import batch_steps
    batches = [np.random.default_rng(i).standard_normal((5, 4)).astype(np.float32) for i in range(4)]
    states = []
    for replay in (False, True):
        mv.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, momentum=momentum))
        opt = SGD(model.parameters(), lr=0.1)
        scale = mv.tensor(np.arange(1, 4, dtype=np.float32))

        def loss_fn(x, model=model, scale=scale):
            return (model(x) * model(x) * scale).sum()

        batch_steps(model, opt, loss_fn, batches, replay)
        states.append(model.state_dict())
    assert states[1]["1.num_batches_tracked"] == 8  # (two forwards a step)
    for k, v in states[0].items():
        np.testing.assert_array_equal(v, states[1][k], err_msg=k)


def _spread(rng, shape, axes, dtype):
    """Random values whose slices over ``axes`` have standard deviations in [0.5, 3] and means in [−2, 2]: a slice of
    nearly equal values makes x − μ a cancellation that float32 cannot resolve, in torch as here (the gradient of x then
    holds terms ~1/σ whose sum is small), which would test rounding rather than the formulas."""
    z = rng.normal(size=shape)
    z = (z - z.mean(axis=axes, keepdims=True)) / z.std(axis=axes, keepdims=True)
    keep = tuple(1 if a in [i % len(shape) for i in axes] else n for a, n in enumerate(shape))
    return (z * rng.uniform(0.5, 3, keep) + rng.uniform(-2, 2, keep)).astype(dtype)


@given(st.lists(st.integers(1, 5), min_size=2, max_size=4), st.integers(1, 3), st.integers(0, 2**31),
       st.sampled_from([np.float32, np.float64]), st.sampled_from([1e-5, 0.3]))
def test_layer_and_batch_norm_as_torchs_over_random_shapes(shape, k, seed, dtype, eps):
    """F.layer_norm over the last k axes and F.batch_norm in training (running statistics updated, momentum 0.2) and
    in eval, for random shapes and dtypes: values and the gradients of x, w and b, as torch's."""
    torch = _torch()
    tf = torch.nn.functional
    shape, k = (*shape[:-1], max(shape[-1], 2)), min(k, len(shape))  # (one value a slice: a constant one, compared
    # in test_constant_inputs_give_no_nan, where torch's x − μ is rounding noise times 1/√ε)
    rng = np.random.default_rng(seed)
    norm = shape[len(shape) - k:]
    x = _spread(rng, shape, tuple(range(-k, 0)), dtype)
    w, b = rng.normal(size=norm).astype(dtype), rng.normal(size=norm).astype(dtype)
    _both = dict(dtype=dtype)
    ours, theirs = [mv.tensor(a, requires_grad=True) for a in (x, w, b)], [torch.tensor(a, requires_grad=True)
                                                                         for a in (x, w, b)]
    y, yt = F.layer_norm(*ours[:1], norm, *ours[1:], eps), tf.layer_norm(theirs[0], norm, *theirs[1:], eps)
    g = rng.normal(size=shape).astype(dtype)
    y.backward(g)
    yt.backward(torch.tensor(g))
    _close(y, yt, **_both, what="layer_norm")
    for a, c in zip(ours, theirs):
        _close(a.grad, c.grad, **_both, what="layer_norm grad")
    c = shape[1]
    if shape[0] * int(np.prod(shape[2:])) == 1:
        return
    x = _spread(rng, shape, (0, *range(2, len(shape))), dtype)
    w, b = rng.normal(size=c).astype(dtype), rng.normal(size=c).astype(dtype)
    rm, rv = rng.normal(size=c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    run = [mv.tensor(rm.copy()), mv.tensor(rv.copy())], [torch.tensor(rm.copy()), torch.tensor(rv.copy())]
    for training in (True, False):
        ours, theirs = [mv.tensor(a, requires_grad=True) for a in (x, w, b)], [torch.tensor(a, requires_grad=True)
                                                                             for a in (x, w, b)]
        y = F.batch_norm(ours[0], *run[0], *ours[1:], training, 0.2, eps)
        yt = tf.batch_norm(theirs[0], *run[1], *theirs[1:], training, 0.2, eps)
        y.backward(g)
        yt.backward(torch.tensor(g))
        _close(y, yt, **_both, what=f"batch_norm {training}")
        for a, t in [*zip(ours, theirs), *zip(*run)]:
            _close(a.grad if a.requires_grad else a, t.grad if t.requires_grad else t, **_both, what=f"bn {training}")
