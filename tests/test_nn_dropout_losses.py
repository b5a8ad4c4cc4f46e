"""F.dropout / nn.Dropout (the mask drawn from an explicit rng: its statistics, its gradient, eval and the edge
probabilities, on the host and on an emulated device) and BCEWithLogitsLoss / F.binary_cross_entropy_with_logits
with ``weight`` and ``pos_weight``, against torch."""
import math

import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import nn, ops
from minivae.random import Generator


def torch_or_skip():
    return pytest.importorskip("torch")


# ---- dropout ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_zeroes_a_binomial_fraction_and_keeps_the_mean(p, dtype):
    """Of n = 200 000 ones, the number zeroed is Binomial(n, p): within 5 standard deviations of n·p (a false failure
    about once in 1.7 million runs per case); every kept value is exactly 1/(1 − p) in the input's dtype, so the mean
    is 1 within 5 of its standard deviations √(p / (n(1 − p)))."""
    n = 200_000
    x = mv.ones(n, dtype=dtype)
    y = F.dropout(x, p, rng=Generator(123)).numpy()
    assert y.dtype == np.dtype(dtype)
    zeroed = int((y == 0).sum())
    assert abs(zeroed - n * p) <= 5 * math.sqrt(n * p * (1 - p)), (zeroed, n * p)
    np.testing.assert_array_equal(np.unique(y), np.array([0, 1 / (1 - p)], dtype))
    assert abs(y.astype(np.float64).mean() - 1) <= 5 * math.sqrt(p / (n * (1 - p)))


def test_dropout_gradient_is_the_same_mask_times_the_scale():
    """x̄ = m ⊙ ḡ / (1 − p) with the forward's mask m (the elements kept), for a random ḡ; and a float64 gradcheck of
    the op with its (seed, counter) fixed, which fixes the mask."""
    p = 0.3
    rng = np.random.default_rng(0)
    x = mv.tensor(rng.uniform(0.5, 1.5, (40, 30)), requires_grad=True)
    y = F.dropout(x, p, rng=Generator(5))
    g = rng.normal(size=(40, 30))
    y.backward(g)
    kept = y.numpy() != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_array_equal(x.grad, np.where(kept, g * (1 / (1 - p)), 0))
    np.testing.assert_array_equal(y.numpy(), np.where(kept, x.data * (1 / (1 - p)), 0))
    for q in (0.0, 0.3, 0.9, 1.0):
        assert mv.gradcheck(lambda t, q=q: ops.nn_ops.Dropout.apply(t, seed=9, counter=4, p=q), [rng.normal(size=(3, 5))])


def test_dropout_at_p_0_and_in_eval_is_the_input_and_at_p_1_all_zeros():
    """training=False or p = 0 return the input itself (torch's); p = 1 gives zeros, ±inf and NaN included (torch's
    x·0 gives NaN there), and a zero gradient."""
    x = mv.tensor(np.array([1.0, -2.0, np.inf, -np.inf, np.nan], np.float32), requires_grad=True)
    assert F.dropout(x, 0.0, rng=Generator(0)) is x and F.dropout(x, 0.5, training=False) is x
    y = F.dropout(x, 1.0, rng=Generator(0))
    np.testing.assert_array_equal(y.numpy(), np.zeros(5, np.float32))
    y.backward(np.ones(5, np.float32))
    np.testing.assert_array_equal(x.grad, np.zeros(5, np.float32))


@pytest.mark.parametrize("p", [1.5, -0.1, float("nan"), True, "0.5"])
def test_dropout_probability_outside_0_1_is_refused_as_torch(p):
    """F.dropout and nn.Dropout refuse p outside [0, 1] (NaN, a bool and a string too) with torch's ValueError (torch
    takes a NaN p: its check is p < 0 or p > 1)."""
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got"):
        F.dropout(mv.ones(3), p, rng=Generator(0))
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got"):
        nn.Dropout(p)
    torch = torch_or_skip()
    if isinstance(p, float) and not math.isnan(p):
        with pytest.raises(ValueError, match=f"dropout probability has to be between 0 and 1, but got {p}"):
            torch.nn.Dropout(p)


def test_dropout_draws_from_its_rng_and_by_default_from_the_default_generator():
    """The mask is rng's next x.size float32 uniforms ≥ p (the counter advances by ⌈n/4⌉ blocks); without rng the
    default generator's (minivae.manual_seed makes it repeat)."""
    x = mv.ones(10)
    g = Generator(3)
    y = F.dropout(x, 0.4, rng=g).numpy()
    assert g.counter == 3
    u = Generator(3).uniform(10, np.float32)
    np.testing.assert_array_equal(y, np.where(u >= np.float32(0.4), np.float32(1 / 0.6), 0))
    assert not np.array_equal(F.dropout(x, 0.4, rng=g).numpy(), y)  # the next draw
    mv.manual_seed(11)
    a = F.dropout(mv.ones(50), 0.5).numpy()
    mv.manual_seed(11)
    np.testing.assert_array_equal(F.dropout(mv.ones(50), 0.5).numpy(), a)


def test_dropout_module_drops_in_training_and_passes_in_eval_with_torchs_repr():
    torch = torch_or_skip()
    layer = nn.Dropout(0.25, rng=Generator(1))
    assert repr(layer) == repr(torch.nn.Dropout(0.25)) == "Dropout(p=0.25, inplace=False)"
    net = nn.Sequential(nn.Linear(4, 8, rng=Generator(0)), layer)
    x = mv.ones(16, 4)
    assert (net(x).numpy() == 0).any()
    net.eval()
    h = net[0](x)
    np.testing.assert_array_equal(net(x).numpy(), h.numpy())
    assert layer(h) is h and layer.parameters() == [] and layer.state_dict() == {}


def test_dropout_of_integers_is_float32():
    y = F.dropout(mv.tensor(np.ones(8, np.int64)), 0.5, rng=Generator(0))
    assert y.dtype == np.float32 and set(np.unique(y.numpy())) <= {0.0, 2.0}


def test_dropout_on_the_device_is_the_cpus_with_no_hidden_copy():
    """On tests/strict_array's emulated device: the same mask and values as the CPU's, bit for bit, and the gradient;
    nothing copied to the host or uploaded (the uniforms are drawn on the device)."""
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import UPLOADS, StrictArray, emulating, record
    x = np.random.default_rng(0).normal(size=(6, 7)).astype(np.float32)
    g = np.random.default_rng(1).normal(size=(6, 7)).astype(np.float32)
    results = []
    with use_numba(False), use_cuda_kernels(False), emulating():
        for device in ("cpu", "cuda"):
            xs, gs = mv.tensor(x, device=device, requires_grad=True), mv.tensor(g, device=device)
            with record() as log, record(UPLOADS) as uploads:
                y = F.dropout(xs, 0.4, rng=Generator(2))
                y.backward(gs.data)
            if device == "cuda":
                assert isinstance(y.data, StrictArray) and isinstance(xs.grad, StrictArray)
                assert log == [] and uploads == []
            results.append((y.numpy(), xs.grad.get() if device == "cuda" else xs.grad))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_a_step_plan_replays_dropout_with_a_new_mask_each_step_as_the_eager_steps():
    """Recorded in a step plan, Dropout draws the next mask of its rng at each replay (its Philox counter is live),
    so four planned steps are the four eager steps, losses and weights bit for bit."""
    from minivae.plan import compile_step
    batches = [np.random.default_rng(k).normal(size=(8, 4)).astype(np.float32) for k in range(4)]

    def make():
        return nn.Sequential(nn.Linear(4, 6, rng=Generator(0)), nn.ReLU(), nn.Dropout(0.5, rng=Generator(3)),
                             nn.Linear(6, 1, rng=Generator(1)))
    model = make()
    opt = mv.optim.SGD(model.parameters(), lr=0.1)
    eager = []
    for x in batches:
        loss = (model(mv.tensor(x)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        eager.append(loss.item())
    planned_model = make()
    plan = compile_step(planned_model, mv.optim.SGD(planned_model.parameters(), lr=0.1),
                        lambda x: (planned_model(x) ** 2).mean(), batches[0])
    planned = [np.asarray(plan.step(x).numpy()).item() for x in batches[1:]]
    assert planned == eager[1:] and len(set(eager)) == 4
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(planned_model.state_dict()[k], v, err_msg=k)


# ---- BCE with logits: weight and pos_weight -----------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_pos_weight_and_weight_match_torch(reduction, dtype):
    """Values and the gradients of the logits and the targets, with a weight and pos_weight (one per class), against
    torch's F.binary_cross_entropy_with_logits, extreme logits ±1e4 included (finite, as torch's); pos_weight's
    gradient (torch gives none: it refuses a weight or pos_weight that requires grad) against torch's autograd of the
    formula (1 − t)·x + (1 + (p − 1)·t)·softplus(−x) in float64. Old code: no weight or pos_weight (TypeError)."""
    torch = torch_or_skip()
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(5, 3)) * 3).astype(dtype)
    x[0, :2] = [1e4, -1e4]
    t = rng.uniform(0, 1, (5, 3)).astype(dtype)
    t[0, :2] = [0.0, 1.0]
    pw = rng.uniform(0.2, 4, 3).astype(dtype)
    w = rng.uniform(0.5, 2, (5, 1)).astype(dtype)
    ours = [mv.tensor(a, requires_grad=k < 3) for k, a in enumerate((x, t, pw, w))]
    theirs = [torch.tensor(a, requires_grad=k < 2) for k, a in enumerate((x, t, pw, w))]
    out = F.binary_cross_entropy_with_logits(ours[0], ours[1], reduction, weight=ours[3], pos_weight=ours[2])
    want = torch.nn.functional.binary_cross_entropy_with_logits(theirs[0], theirs[1], weight=theirs[3],
                                                                reduction=reduction, pos_weight=theirs[2])
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.numpy(), want.detach().numpy(), rtol=tol, atol=tol)
    g = rng.uniform(0.5, 1.5, out.shape).astype(dtype)
    out.backward(g)
    want.backward(torch.tensor(g))
    for k, (m, th) in enumerate(zip(ours[:2], theirs[:2])):
        np.testing.assert_allclose(m.grad, th.grad.numpy(), rtol=tol, atol=tol, err_msg=f"input {k}")
    tx, tt, tw = (torch.tensor(a.astype(np.float64)) for a in (x, t, w))
    tp = torch.tensor(pw.astype(np.float64), requires_grad=True)
    formula = ((1 - tt) * tx + (1 + (tp - 1) * tt) * torch.nn.functional.softplus(-tx)) * tw
    formula = formula.mean() if reduction == "mean" else formula.sum() if reduction == "sum" else formula
    formula.backward(torch.tensor(g.astype(np.float64)))
    np.testing.assert_allclose(ours[2].grad, tp.grad.numpy(), rtol=tol, atol=tol, err_msg="pos_weight")
    assert np.isfinite(out.numpy()).all()


def test_bce_with_logits_pos_weight_gradcheck_in_float64():
    """The op's hand-written VJP (x̄, t̄ and p̄, p broadcast along the last axis) against central differences."""
    rng = np.random.default_rng(3)
    assert mv.gradcheck(ops.bce_with_logits_pos_weight,
                        [3 * rng.normal(size=(4, 3)), rng.uniform(0, 1, (4, 3)), rng.uniform(0.2, 3, 3)])


def test_bce_with_logits_loss_module_as_torchs():
    """BCEWithLogitsLoss(weight, reduction="mean", pos_weight): torch's default reduction and result, its two weights
    buffers (in state_dict, never parameters), and the function's default reduction "sum" left alone."""
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(4, 2)).astype(np.float32), (rng.random((4, 2)) < 0.5).astype(np.float32)
    pw, w = np.array([3.0, 0.5], np.float32), np.array([1.0, 2.0], np.float32)
    loss = nn.BCEWithLogitsLoss(weight=mv.tensor(w), pos_weight=mv.tensor(pw, requires_grad=True))
    tloss = torch.nn.BCEWithLogitsLoss(weight=torch.tensor(w), pos_weight=torch.tensor(pw))
    np.testing.assert_allclose(loss(mv.tensor(x), mv.tensor(t)).item(),
                               tloss(torch.tensor(x), torch.tensor(t)).item(), rtol=1e-6)
    assert list(loss.state_dict()) == list(tloss.state_dict()) == ["weight", "pos_weight"]
    assert loss.parameters() == []
    plain, tplain = nn.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss()
    np.testing.assert_allclose(plain(mv.tensor(x), mv.tensor(t)).item(), tplain(torch.tensor(x), torch.tensor(t)).item(),
                               rtol=1e-6)
    assert plain.state_dict() == {}
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(mv.tensor(x), mv.tensor(t)).item(),
                               torch.nn.functional.binary_cross_entropy_with_logits(
                                   torch.tensor(x), torch.tensor(t), reduction="sum").item(), rtol=1e-6)
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'"):
        nn.BCEWithLogitsLoss(reduction="avg")
    with pytest.raises(ValueError, match=r"weight of shape \(3,\) does not broadcast"):
        F.binary_cross_entropy_with_logits(mv.tensor(x), mv.tensor(t), weight=np.ones(3, np.float32))


def test_bce_with_logits_pos_weight_on_the_device_is_the_cpus_with_no_hidden_copy():
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import UPLOADS, StrictArray, emulating, record
    rng = np.random.default_rng(2)
    arrays = [rng.normal(size=(3, 4)) * 3, rng.uniform(0, 1, (3, 4)), rng.uniform(0.2, 3, 4)]
    results = []
    with use_numba(False), use_cuda_kernels(False), emulating():
        for device in ("cpu", "cuda"):
            ts = [mv.tensor(a, device=device, requires_grad=True) for a in arrays]
            with record() as log, record(UPLOADS) as uploads:
                y = nn.BCEWithLogitsLoss(pos_weight=ts[2], reduction="sum")(ts[0], ts[1])
                y.backward()
            if device == "cuda":
                assert isinstance(y.data, StrictArray) and log == [] and uploads == []
            host = (lambda a: a.get()) if device == "cuda" else (lambda a: a)
            results.append([y.numpy()] + [host(t.grad) for t in ts[:2]])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
