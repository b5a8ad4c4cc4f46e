"""LogitRelaxedBernoulli and RelaxedBernoulli (the Binary Concrete): densities against Maddison et al.'s formula
(math.*), samples by KS tests of their closed-form cdfs and the exact P(y > ½) = σ(l), gradients by the formulas,
extreme logits and temperatures without NaN or inf, and against torch (float64 tight, float32)."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import LogitRelaxedBernoulli, RelaxedBernoulli, constraints
from minivae.random import Generator
from tests.distributions.gof import assert_follows

LOGITS = np.array([-2.0, 0.0, 0.7, 3.0])


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def logit_density(x, l, tau):
    """log of τ·α·e^{−τx}/(1 + α·e^{−τx})², α = eˡ: the logistic density of location l/τ and scale 1/τ."""
    d = l - tau * x
    return math.log(tau) + d - 2 * np.logaddexp(0, d)


def binconcrete_density(y, l, tau):
    """log of Maddison et al.'s BinConcrete(α, λ) density λ·α·y^{−λ−1}(1 − y)^{−λ−1}/(α·y^{−λ} + (1 − y)^{−λ})²."""
    ly, l1y = math.log(y), math.log1p(-y)
    return math.log(tau) + l + (-tau - 1) * (ly + l1y) - 2 * np.logaddexp(l - tau * ly, -tau * l1y)


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0, 2.3])
def test_log_probs_are_the_papers_densities(tau):
    rng = np.random.default_rng(0)
    y = rng.uniform(0, 1, (30, 4))
    x = rng.normal(0, 5, (30, 4))
    d = RelaxedBernoulli(tau, logits=mv.tensor(LOGITS))
    want = [[binconcrete_density(v, l, tau) for v, l in zip(row, LOGITS)] for row in y]
    np.testing.assert_allclose(d.log_prob(mv.tensor(y)).numpy(), want, rtol=1e-13, atol=1e-14)
    e = LogitRelaxedBernoulli(tau, logits=mv.tensor(LOGITS))
    want = [[logit_density(v, l, tau) for v, l in zip(row, LOGITS)] for row in x]
    np.testing.assert_allclose(e.log_prob(mv.tensor(x)).numpy(), want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("tau", [0.3, 1.0, 3.0])
def test_densities_integrate_to_one(tau):
    """∫ p(x) dx = 1 over x (trapezoid, ±60/τ around l/τ); the density of y = σ(x) is p(x)/(y(1 − y)), so it
    integrates to 1 too."""
    x = np.linspace(-60, 60, 200_001)[:, None] / tau + LOGITS / tau
    lx = LogitRelaxedBernoulli(tau, logits=mv.tensor(LOGITS)).log_prob(mv.tensor(x)).numpy()
    np.testing.assert_allclose(np.trapezoid(np.exp(lx), x, axis=0), 1, rtol=1e-8)
    y = sigmoid(x[::100])
    eps = np.finfo(float).eps
    y = y[((y >= eps) & (y <= 1 - eps)).all(axis=1)]  # (log_prob clamps y to [ε, 1 − ε], as torch's)
    ly = RelaxedBernoulli(tau, logits=mv.tensor(LOGITS)).log_prob(mv.tensor(y)).numpy()
    # p_Y(y)·dy/dx = p_X(x) at x = logit(y): the density of y, times the Jacobian y(1 − y), is the density of x
    lx = LogitRelaxedBernoulli(tau, logits=mv.tensor(LOGITS)).log_prob(mv.tensor(np.log(y) - np.log1p(-y))).numpy()
    np.testing.assert_allclose(ly + np.log(y) + np.log1p(-y), lx, rtol=1e-12, atol=1e-12)


def test_rsample_is_the_formula_of_the_generators_uniforms_and_its_gradient():
    """x = (l + log u − log(1 − u))/τ of the uniforms the same seed draws (replayed independently), ∂x/∂l = 1/τ;
    y = σ(x) (clamped to [ε, 1 − ε]), ∂y/∂l = y(1 − y)/τ where not clamped."""
    tau = 0.7
    for dtype in (np.float64, np.float32):
        logits = mv.tensor(LOGITS.astype(dtype), requires_grad=True)
        u = Generator(5).uniform((300, 4), dtype).astype(np.float64)
        want = (LOGITS + np.log(u) - np.log1p(-u)) / tau
        tol = 1e-14 if dtype == np.float64 else 1e-6
        x = LogitRelaxedBernoulli(tau, logits=logits).rsample((300,), rng=Generator(5))
        assert x.dtype == dtype
        np.testing.assert_allclose(x.numpy(), want, rtol=tol, atol=tol)
        g = np.random.default_rng(2).normal(size=(300, 4))
        (x * mv.tensor(g.astype(dtype))).sum().backward()
        np.testing.assert_allclose(logits.grad, g.sum(0) / tau, rtol=tol * 10)
        logits.grad = None
        y = RelaxedBernoulli(tau, logits=logits).rsample((300,), rng=Generator(5))
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(y.numpy(), np.clip(sigmoid(want), eps, 1 - eps), rtol=tol * 10)
        (y * mv.tensor(g.astype(dtype))).sum().backward()
        yv = sigmoid(want)
        free = (yv > eps) & (yv < 1 - eps)
        np.testing.assert_allclose(logits.grad, (g * yv * (1 - yv) * free).sum(0) / tau, rtol=tol * 100)
        np.testing.assert_array_equal(
            RelaxedBernoulli(tau, logits=logits).sample((300,), rng=Generator(5)).numpy(), y.numpy())
        # the clamp to [ε, 1 − ε], as torch's: at τ = 0.01 and logits ±30 every draw is at one of its ends, exactly
        ends = RelaxedBernoulli(0.01, logits=mv.tensor(np.array([-30.0, 30.0], dtype))).sample((50,), rng=Generator(6))
        np.testing.assert_array_equal(ends.numpy(), np.broadcast_to(np.array([eps, 1 - eps], dtype), (50, 2)))
        np.testing.assert_array_equal(
            LogitRelaxedBernoulli(tau, logits=logits).rsample(uniforms=mv.tensor(u.astype(dtype))).numpy(), x.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tau", [0.7, 1.5])
def test_samples_pass_ks_tests_of_the_closed_form_cdfs(dtype, tau):
    """P(X ≤ x) = σ(τx − l), P(Y ≤ y) = σ(τ·logit(y) − l). (At these τ the clamp of y to [ε, 1 − ε] holds below 3·10⁻⁴
    of the draws, in float32; at small τ it makes atoms at ε and 1 − ε, which a KS test of a continuous cdf would
    flag: small τ is the next test's.)"""
    x = LogitRelaxedBernoulli(tau, logits=mv.tensor(LOGITS.astype(dtype))).sample((10_000,), rng=Generator(1)).numpy()
    y = RelaxedBernoulli(tau, logits=mv.tensor(LOGITS.astype(dtype))).sample((10_000,), rng=Generator(2)).numpy()
    for j, l in enumerate(LOGITS):
        assert_follows(x[:, j], lambda v, l=l: sigmoid(tau * v - l), f"x {l}")
        assert_follows(y[:, j], lambda v, l=l: sigmoid(tau * (np.log(v) - np.log1p(-v)) - l), f"y {l}")


@pytest.mark.parametrize("tau", [1e-3, 0.5, 1e3])
def test_the_sample_is_above_one_half_with_probability_sigmoid_of_the_logits(tau):
    """P(y > ½) = P(l + L > 0) = σ(l) exactly for every τ (τ → 0 gives Bernoulli(σ(l))): a binomial count within
    4.4 standard deviations (a false failure about once in 10⁵ per logit)."""
    n = 20_000
    y = RelaxedBernoulli(tau, logits=mv.tensor(LOGITS)).sample((n,), rng=Generator(3)).numpy()
    p = sigmoid(LOGITS)
    assert (np.abs((y > 0.5).mean(0) - p) < 4.4 * np.sqrt(p * (1 - p) / n)).all()


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tau", [1e-3, 1.0, 1e3])
def test_extreme_logits_and_temperatures_are_finite(dtype, tau):
    """Logits ±1e4 (and given probs 0 and 1), τ from 10⁻³ to 10³: samples, their log-densities, log-densities at y = 0,
    y = 1 and y = tiny, and all their gradients (in the logits and in y) are finite (no NaN, no inf, no warning)."""
    logits = mv.tensor(np.array([-1e4, -30.0, 0.0, 30.0, 1e4], dtype), requires_grad=True)
    for cls in (LogitRelaxedBernoulli, RelaxedBernoulli):
        for d in (cls(tau, logits=logits), cls(tau, probs=mv.tensor(np.array([0, 1e-30, 0.5, 1, 1], dtype)))):
            z = d.rsample((64,), rng=Generator(0))
            lp = d.log_prob(z)
            assert np.isfinite(z.numpy()).all() and np.isfinite(lp.numpy()).all(), (cls.__name__, tau)
            if d._probs is None:
                logits.grad = None
                (z.sum() + lp.sum()).backward()
                assert np.isfinite(logits.grad).all(), (cls.__name__, tau, logits.grad)
        y = mv.tensor(np.array([0, float(np.finfo(dtype).tiny), 0.5, 1 - float(np.finfo(dtype).epsneg), 1], dtype),
                      requires_grad=True)
        lp = RelaxedBernoulli(tau, logits=logits).log_prob(y)
        logits.grad = None
        lp.sum().backward()
        assert np.isfinite(lp.numpy()).all() and np.isfinite(logits.grad).all() and np.isfinite(y.grad).all()


def test_gradcheck_float64():
    def f(logits, x, y):
        a, b = LogitRelaxedBernoulli(0.6, logits=logits), RelaxedBernoulli(1.7, logits=logits)
        fixed = mv.tensor(np.array([0.2, 0.7, 0.99, 0.01]))
        return a.log_prob(x) + b.log_prob(y) + a.rsample(uniforms=fixed) + b.rsample(uniforms=fixed)
    assert mv.gradcheck(f, [LOGITS, np.array([0.3, -2.0, 5.0, 0.1]), np.array([0.2, 0.5, 0.9, 0.01])])


@pytest.mark.parametrize("tau", [0.5, 2, np.float32(0.5), np.int64(2), np.array(0.5), mv.tensor(np.float32(0.5))],
                         ids=repr)
def test_temperatures_follow_the_one_rule(tau):
    """τ as the other relaxed distributions take it (tests/test_temperature.py's rule), and the one message otherwise."""
    for cls in (LogitRelaxedBernoulli, RelaxedBernoulli):
        assert cls(tau, logits=mv.tensor(LOGITS)).temperature == float(tau.numpy() if isinstance(tau, mv.Tensor) else tau)
        for bad in (0.0, -1.0, np.nan, np.inf, True, "1", None, np.array([0.5])):
            with pytest.raises(ValueError, match=r"^temperature must be a finite real number > 0, got "):
                cls(bad, logits=mv.tensor(LOGITS))


def test_construction_probs_support_and_expand():
    for cls in (LogitRelaxedBernoulli, RelaxedBernoulli):
        with pytest.raises(ValueError, match="temperature must be a finite real number > 0"):
            cls(0.0, logits=mv.tensor(LOGITS))
        with pytest.raises(ValueError, match="exactly one of probs= or logits="):
            cls(1.0)
        with pytest.raises(ValueError, match=r"probs must be in \[0, 1\]"):
            cls(1.0, probs=1.5)
        d = cls(0.5, probs=mv.tensor(np.array([0.2, 0.9])))
        np.testing.assert_allclose(d.probs.numpy(), [0.2, 0.9])
        np.testing.assert_allclose(d.logits.numpy(), np.log([0.2 / 0.8, 0.9 / 0.1]), rtol=1e-14)
        np.testing.assert_allclose(cls(0.5, logits=mv.tensor(LOGITS)).probs.numpy(), sigmoid(LOGITS), rtol=1e-15)
        assert d.arg_constraints == {"probs": constraints.unit_interval, "logits": constraints.real}
        logits = mv.tensor(np.array([[0.5], [1.0]]), requires_grad=True)
        e = cls(0.5, logits=logits).expand((4, 2, 3))
        assert e.batch_shape == (4, 2, 3) and e.rsample(rng=Generator(0)).shape == (4, 2, 3) and e.temperature == 0.5
        e.rsample(rng=Generator(0)).sum().backward()
        assert logits.grad.shape == (2, 1)
    assert LogitRelaxedBernoulli.support is constraints.real and RelaxedBernoulli.support is constraints.unit_interval


def test_on_the_device_nothing_is_copied_to_the_host():
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record
    with use_numba(False), use_cuda_kernels(False), emulating():
        logits = mv.tensor(np.array([-1e4, 0.3, 1e4], np.float32), device="cuda", requires_grad=True)
        with record() as log:
            out = 0
            for cls in (LogitRelaxedBernoulli, RelaxedBernoulli):
                d = cls(0.5, logits=logits)
                z = d.rsample((2,), rng=Generator(0))
                out = out + z.sum() + d.log_prob(z).sum() + d.probs.sum()
                d.support.check(d.sample(rng=Generator(1)))
            out.backward()
        assert log == [], describe(log)
        assert logits.grad is not None


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_log_probs_and_gradients_match_torch(dtype, rtol):
    torch = pytest.importorskip("torch")
    from torch.distributions.relaxed_bernoulli import LogitRelaxedBernoulli as TorchLogitRelaxedBernoulli
    td = torch.distributions
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 3, (3, 4)).astype(dtype)
    x = rng.normal(0, 4, (3, 4)).astype(dtype)
    y = rng.uniform(0.01, 0.99, (3, 4)).astype(dtype)
    g = rng.normal(size=(3, 4)).astype(dtype)
    tau = 0.6
    for ours_cls, theirs_cls, value in ((LogitRelaxedBernoulli, TorchLogitRelaxedBernoulli, x),
                                        (RelaxedBernoulli, td.RelaxedBernoulli, y)):
        ol, ov = mv.tensor(logits, requires_grad=True), mv.tensor(value, requires_grad=True)
        tl, tv = torch.tensor(logits, requires_grad=True), torch.tensor(value, requires_grad=True)
        o = ours_cls(tau, logits=ol).log_prob(ov)
        r = theirs_cls(torch.tensor(tau, dtype=tl.dtype), logits=tl).log_prob(tv)
        assert o.dtype == dtype
        np.testing.assert_allclose(o.numpy(), r.detach().numpy(), rtol=rtol, atol=rtol, err_msg=ours_cls.__name__)
        (o * mv.tensor(g)).sum().backward()
        (r * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(ol.grad, tl.grad.numpy(), rtol=rtol * 10, atol=rtol, err_msg=ours_cls.__name__)
        np.testing.assert_allclose(ov.grad, tv.grad.numpy(), rtol=rtol * 10, atol=rtol, err_msg=ours_cls.__name__)
        t = theirs_cls(torch.tensor(tau, dtype=tl.dtype), logits=tl)
        d = ours_cls(tau, logits=ol)
        assert repr(d.support) == repr(t.support)
        assert {k: repr(c) for k, c in d.arg_constraints.items()} == {k: repr(c) for k, c in t.arg_constraints.items()}
        np.testing.assert_allclose(d.probs.numpy(), t.probs.detach().numpy(), rtol=rtol)


def test_torch_overflows_where_we_stay_finite():
    """The 'different on purpose' of the docstrings, shown on torch: its log_prob is −∞ once eᵈ overflows (d = 100 in
    float32), and its samples see logits cut to logit(1 − ε)."""
    torch = pytest.importorskip("torch")
    from torch.distributions.relaxed_bernoulli import LogitRelaxedBernoulli as TorchLogitRelaxedBernoulli
    t = TorchLogitRelaxedBernoulli(torch.tensor(1.0), logits=torch.tensor([100.0]))
    assert t.log_prob(torch.tensor([0.0])).item() == -math.inf
    d = LogitRelaxedBernoulli(1.0, logits=mv.tensor(np.array([100.0], np.float32)))
    assert d.log_prob(mv.tensor(np.array([0.0], np.float32))).numpy()[0] == pytest.approx(-100.0, rel=1e-6)
    torch.manual_seed(0)
    cut = t.rsample((2000,)).max().item()
    assert cut < 100 - 50  # torch's draws centre on 15.9, not on 100
    assert LogitRelaxedBernoulli(1.0, logits=mv.tensor(np.array([100.0]))).sample(
        (2000,), rng=Generator(0)).numpy().min() > 80


def test_hard_rsample_forwards_the_bernoulli_draw_of_its_noise_with_the_soft_gradient():
    """rsample(hard=True), as RelaxedOneHotCategorical's: z = 1[l + L > 0] (L = log u − log(1 − u), written out here),
    exactly 0/1, with the gradient of the soft y = σ((l + L)/τ) of the same uniforms; through Independent too."""
    from minivae.distributions import Independent

    l = np.array([-2.0, -0.3, 0.0, 0.4, 3.0])
    u = np.array([0.9, 0.6, 0.5 + 1e-9, 0.3, 0.02])
    tau = 0.7
    want = (l + np.log(u) - np.log1p(-u) > 0).astype(np.float64)
    for make in (lambda t: RelaxedBernoulli(tau, logits=t), lambda t: Independent(RelaxedBernoulli(tau, logits=t), 1)):
        grads = []
        for hard in (True, False):
            t = mv.tensor(l, requires_grad=True)
            y = make(t).rsample(uniforms=u, hard=hard)
            if hard:
                np.testing.assert_array_equal(y.numpy(), want)
            (y * mv.tensor(np.arange(1.0, 6.0))).sum().backward()
            grads.append(t.grad)
        np.testing.assert_array_equal(grads[0], grads[1])
