"""F.mse_loss, F.binary_cross_entropy and F.gaussian_nll_loss: torch's signatures, its default reduction "mean", its
clamps (BCE's log at −100, the variance at eps) and VJPs, against formulas written out in NumPy and against torch."""
import math
import warnings

import numpy as np
import pytest

import minivae as mv
import minivae.functional as F

REDUCTIONS = ["mean", "sum", "none"]


def grads(loss, *tensors, upstream=None):
    (loss * mv.tensor(upstream) if upstream is not None else loss).sum().backward()
    return [t.grad for t in tensors]


def test_the_default_reduction_is_the_mean():
    """torch's default; F.binary_cross_entropy_with_logits alone keeps "sum" (README)."""
    rng = np.random.default_rng(0)
    x, t = rng.uniform(0.1, 0.9, (3, 4)), rng.uniform(0, 1, (3, 4))
    np.testing.assert_allclose(F.mse_loss(mv.tensor(x), mv.tensor(t)).item(), ((x - t) ** 2).mean(), rtol=1e-15)
    bce = -(t * np.log(x) + (1 - t) * np.log1p(-x))
    np.testing.assert_allclose(F.binary_cross_entropy(mv.tensor(x), mv.tensor(t)).item(), bce.mean(), rtol=1e-14)
    var = rng.uniform(0.5, 2, (3, 4))
    nll = 0.5 * (np.log(var) + (x - t) ** 2 / var)
    np.testing.assert_allclose(F.gaussian_nll_loss(mv.tensor(x), mv.tensor(t), mv.tensor(var)).item(), nll.mean(),
                               rtol=1e-14)


def test_binary_cross_entropy_clamps_each_log_at_minus_100():
    """At x = 0 and 1 the log is −∞; torch clamps it at −100: a term of 100 nats, not inf (nor NaN for 0·log 0)."""
    x = mv.tensor(np.array([0.0, 1.0, 0.0, 1.0, 1e-50, 0.5]), requires_grad=True)
    t = mv.tensor(np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0]))
    loss = F.binary_cross_entropy(x, t, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [100.0, 100.0, 0.0, 0.0, 100.0, math.log(2)], rtol=1e-15)
    np.testing.assert_array_equal(loss.numpy()[2:4], [0.0, 0.0])
    small = F.binary_cross_entropy(mv.tensor(np.array([1e-8, 1 - 2.0 ** -30])), mv.tensor(np.zeros(2)), reduction="none")
    np.testing.assert_allclose(small.numpy(), [-math.log1p(-1e-8), 30 * math.log(2)], rtol=1e-15)  # log1p(−x), torch's


def test_binary_cross_entropy_weight_multiplies_each_term_and_the_mean_counts_terms():
    rng = np.random.default_rng(6)
    x, t, w = rng.uniform(0.1, 0.9, (3, 4)), rng.uniform(0, 1, (3, 4)), rng.uniform(0, 2, 4)
    terms = -w * (t * np.log(x) + (1 - t) * np.log1p(-x))
    loss = F.binary_cross_entropy(mv.tensor(x), mv.tensor(t), mv.tensor(w), reduction="none")
    np.testing.assert_allclose(loss.numpy(), terms, rtol=1e-14)
    np.testing.assert_allclose(F.binary_cross_entropy(mv.tensor(x), mv.tensor(t), w).item(), terms.mean(), rtol=1e-14)


def test_binary_cross_entropy_gradients_are_torchs_written_out():
    """x̄ = ḡ·(x − t)/max(x(1 − x), ε) (finite at x = 0 and 1, and pushing a saturated x back; ε is torch's 1e-12f,
    float32's 10⁻¹²) and t̄ = ḡ·(log(1 − x) − log x)."""
    xs, ts = np.array([0.0, 1.0, 0.2, 0.7, 1e-50]), np.array([1.0, 0.0, 0.3, 1.0, 0.3])
    g = np.array([0.5, -2.0, 1.5, 0.25, 1.0])
    x, t = mv.tensor(xs, requires_grad=True), mv.tensor(ts.copy(), requires_grad=True)
    gx, gt = grads(F.binary_cross_entropy(x, t, reduction="none"), x, t, upstream=g)
    eps = float(np.float32(1e-12))
    np.testing.assert_allclose(gx, g * (xs - ts) / np.maximum(xs * (1 - xs), eps), rtol=1e-15)
    assert gx[0] == -0.5 / eps and gx[1] == -2 / eps
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(gt, g * (np.log1p(-xs) - np.log(xs)), rtol=1e-15)
    assert gt[0] == np.inf and gt[1] == np.inf  # ḡ·(0 − (−∞)) and ḡ·(−∞ − 0) with ḡ < 0
    np.testing.assert_allclose(gt[4], 50 * math.log(10), rtol=1e-15)  # unclamped: 115.1, as torch's −logit(x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_matches_torch(reduction, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(0, 1, 14), [0.0, 1.0, 1e-30, 1 - 1e-7, 1e-8, 0.5]]).astype(dtype).reshape(4, 5)
    t = np.concatenate([rng.uniform(0, 1, 14), [1.0, 0.0, 1.0, 0.0, 0.0, 1.0]]).astype(dtype).reshape(4, 5)
    w = rng.uniform(0.5, 2.0, 5).astype(dtype)  # broadcast over the rows
    for weight in (None, w):
        xm, tm = mv.tensor(x, requires_grad=True), mv.tensor(t, requires_grad=True)
        xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
        ours = F.binary_cross_entropy(xm, tm, None if weight is None else mv.tensor(weight), reduction=reduction)
        theirs = torch.nn.functional.binary_cross_entropy(xt, tt, None if weight is None else torch.tensor(weight),
                                                          reduction=reduction)
        upstream = rng.normal(size=tuple(theirs.shape)).astype(dtype)
        (ours * mv.tensor(upstream)).sum().backward()
        (theirs * torch.tensor(upstream)).sum().backward()
        rtol = 1e-6 if dtype == np.float32 else 1e-13
        assert ours.dtype == dtype and ours.shape == tuple(theirs.shape)
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol)
        np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=rtol)
        np.testing.assert_allclose(tm.grad, tt.grad.numpy(), rtol=rtol)


def test_binary_cross_entropy_refuses_what_torch_refuses():
    x, t = mv.tensor(np.full((2, 3), 0.5)), mv.tensor(np.ones((2, 3)))
    for bad in (1.5, -0.1, np.nan):
        data = np.full((2, 3), 0.5)
        data[1, 2] = bad
        with pytest.raises(ValueError, match="every input must be a probability in \\[0, 1\\]"):
            F.binary_cross_entropy(mv.tensor(data), t)
    with pytest.raises(ValueError, match="target's shape \\(3,\\) differs from the input's \\(2, 3\\)"):
        F.binary_cross_entropy(x, mv.tensor(np.ones(3)))
    with pytest.raises(ValueError, match="weight of shape \\(2, 2, 3\\) does not broadcast"):
        F.binary_cross_entropy(x, t, mv.tensor(np.ones((2, 2, 3))))
    with pytest.raises(ValueError, match="weight of shape \\(4,\\) does not broadcast to the loss's shape \\(2, 3\\)"):
        F.binary_cross_entropy(x, t, mv.tensor(np.ones(4)))  # (NumPy's own "shape mismatch" before, naming neither)
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.binary_cross_entropy(x, t, reduction="avg")


def test_mse_loss_values_and_gradients_written_out():
    rng = np.random.default_rng(2)
    xs, ts, w, g = (rng.normal(size=(3, 4)) for _ in range(4))
    w = np.abs(w)
    for reduction in REDUCTIONS:
        x, t = mv.tensor(xs, requires_grad=True), mv.tensor(ts, requires_grad=True)
        loss = F.mse_loss(x, t, reduction=reduction)
        up = g if reduction == "none" else np.array(1.5)
        gx, gt = grads(loss, x, t, upstream=up)
        n = 1 if reduction != "mean" else xs.size
        want = {"mean": ((xs - ts) ** 2).mean(), "sum": ((xs - ts) ** 2).sum(), "none": (xs - ts) ** 2}[reduction]
        np.testing.assert_allclose(loss.numpy(), want, rtol=1e-14)
        np.testing.assert_allclose(gx, 2 * up * (xs - ts) / n, rtol=1e-14)
        np.testing.assert_allclose(gt, -2 * up * (xs - ts) / n, rtol=1e-14)
    x = mv.tensor(xs, requires_grad=True)
    loss = F.mse_loss(x, mv.tensor(ts), weight=mv.tensor(w))  # "mean" of a weighted loss: Σ w·d² / Σ w
    np.testing.assert_allclose(loss.item(), (w * (xs - ts) ** 2).sum() / w.sum(), rtol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x, t, w = rng.normal(size=(2, 5)), rng.normal(size=(2, 5)), rng.uniform(0, 2, (2, 5))
    for weight in (None, w):
        xm, xt = mv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ours = F.mse_loss(xm, mv.tensor(t), reduction=reduction, weight=None if weight is None else mv.tensor(weight))
        theirs = torch.nn.functional.mse_loss(xt, torch.tensor(t), reduction=reduction,
                                              weight=None if weight is None else torch.tensor(weight))
        upstream = rng.normal(size=tuple(theirs.shape))
        (ours * mv.tensor(upstream)).sum().backward()
        (theirs * torch.tensor(upstream)).sum().backward()
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-14)
        np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=1e-14)


def test_mse_loss_warns_of_a_broadcasting_target_as_torch():
    x = mv.tensor(np.zeros((4, 1)))
    with pytest.warns(UserWarning, match="target of shape \\(4,\\) beside an input of shape \\(4, 1\\) broadcasts"):
        loss = F.mse_loss(x, mv.tensor(np.arange(4.0)), reduction="none")
    assert loss.shape == (4, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.mse_loss(x, mv.tensor(np.ones((4, 1))))
    with pytest.raises(ValueError, match="weight must have the input's shape"):
        F.mse_loss(x, x, weight=mv.tensor(np.ones(4)))


def test_gaussian_nll_loss_written_out_with_the_clamp_passing_gradients():
    """½(log v + (x − t)²/v), v = max(σ², eps); below eps σ² gets the gradient at v = eps, passed on (torch's clamp
    under no_grad)."""
    xs, ts = np.array([0.5, -1.0, 2.0]), np.array([0.0, 0.5, 2.5])
    vs = np.array([2.0, 1e-9, 0.0])  # two below eps = 1e-6
    x, t, var = (mv.tensor(a, requires_grad=True) for a in (xs, ts, vs))
    loss = F.gaussian_nll_loss(x, t, var, full=True, reduction="none")
    v = np.maximum(vs, 1e-6)
    np.testing.assert_allclose(loss.numpy(), 0.5 * (np.log(v) + (xs - ts) ** 2 / v) + 0.5 * math.log(2 * math.pi),
                               rtol=1e-14)
    gx, gt, gv = grads(loss, x, t, var)
    np.testing.assert_allclose(gx, (xs - ts) / v, rtol=1e-14)
    np.testing.assert_allclose(gt, -(xs - ts) / v, rtol=1e-14)
    np.testing.assert_allclose(gv, 0.5 * (1 / v - (xs - ts) ** 2 / v ** 2), rtol=1e-8)  # (v as σ² + (eps − σ²))


@pytest.mark.parametrize("var_shape", [(3, 4), (3,), (3, 1), (1, 4), "number"])
@pytest.mark.parametrize("full, reduction", [(False, "mean"), (True, "sum"), (False, "none")])
def test_gaussian_nll_loss_matches_torch(var_shape, full, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x, t = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    var = 0.7 if var_shape == "number" else rng.uniform(0, 2, var_shape)
    if var_shape == (3, 4):
        var[0, 0] = 1e-8  # below eps
    xm, xt = mv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    vm = var if var_shape == "number" else mv.tensor(var, requires_grad=True)
    vt = var if var_shape == "number" else torch.tensor(var, requires_grad=True)
    ours = F.gaussian_nll_loss(xm, mv.tensor(t), vm, full, 1e-6, reduction)
    theirs = torch.nn.functional.gaussian_nll_loss(xt, torch.tensor(t), vt, full, 1e-6, reduction)
    upstream = rng.normal(size=tuple(theirs.shape))
    (ours * mv.tensor(upstream)).sum().backward()
    (theirs * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=1e-13)
    if var_shape != "number":
        np.testing.assert_allclose(vm.grad, vt.grad.numpy(), rtol=1e-8)


def test_gaussian_nll_loss_refuses_what_torch_refuses():
    x = mv.tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="var has negative entry"):
        F.gaussian_nll_loss(x, x, mv.tensor(np.full((3, 4), -1.0)))
    with pytest.raises(ValueError, match="var has negative entry"):
        F.gaussian_nll_loss(x, x, -0.5)
    for shape in ((4,), (3, 2), (1, 1), (2, 3, 4)):
        with pytest.raises(ValueError, match=f"var of shape {shape} does not fit".replace("(", "\\(").replace(")", "\\)")):
            F.gaussian_nll_loss(x, x, mv.tensor(np.ones(shape)))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.gaussian_nll_loss(x, x, 1.0, reduction="batchmean")


def test_loss_modules_are_the_functions_with_torchs_defaults_and_reprs():
    rng = np.random.default_rng(5)
    x, t, var, w = rng.uniform(0.1, 0.9, (3, 4)), rng.uniform(0, 1, (3, 4)), rng.uniform(0.5, 2, (3, 4)), rng.uniform(size=4)
    xm, tm, vm = mv.tensor(x), mv.tensor(t), mv.tensor(var)
    pairs = [(mv.nn.MSELoss()(xm, tm), F.mse_loss(xm, tm)),
             (mv.nn.MSELoss(reduction="sum")(xm, tm), F.mse_loss(xm, tm, reduction="sum")),
             (mv.nn.BCELoss()(xm, tm), F.binary_cross_entropy(xm, tm)),
             (mv.nn.BCELoss(mv.tensor(w), "none")(xm, tm), F.binary_cross_entropy(xm, tm, mv.tensor(w), reduction="none")),
             (mv.nn.GaussianNLLLoss()(xm, tm, vm), F.gaussian_nll_loss(xm, tm, vm)),
             (mv.nn.GaussianNLLLoss(full=True, eps=0.6, reduction="sum")(xm, tm, vm),
              F.gaussian_nll_loss(xm, tm, vm, True, 0.6, "sum"))]
    for ours, want in pairs:
        np.testing.assert_array_equal(ours.numpy(), want.numpy())
    assert [repr(m) for m in (mv.nn.MSELoss(), mv.nn.BCELoss(), mv.nn.GaussianNLLLoss())] == [
        "MSELoss()", "BCELoss()", "GaussianNLLLoss()"]
    for make in (mv.nn.MSELoss, mv.nn.BCELoss, mv.nn.GaussianNLLLoss):
        with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
            make(reduction="avg")
    torch = pytest.importorskip("torch")
    tx, tt, tv = torch.tensor(x), torch.tensor(t), torch.tensor(var)
    for ours, theirs in ((mv.nn.MSELoss()(xm, tm), torch.nn.MSELoss()(tx, tt)),
                         (mv.nn.BCELoss()(xm, tm), torch.nn.BCELoss()(tx, tt)),
                         (mv.nn.GaussianNLLLoss()(xm, tm, vm), torch.nn.GaussianNLLLoss()(tx, tt, tv))):
        np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-14)
    assert [repr(m) for m in (torch.nn.MSELoss(), torch.nn.BCELoss(), torch.nn.GaussianNLLLoss())] == [
        "MSELoss()", "BCELoss()", "GaussianNLLLoss()"]
