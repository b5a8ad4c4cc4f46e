"""ContinuousBernoulli against its formulas evaluated in 60-digit decimal arithmetic (the standard library's decimal:
an independent reference, exact to the last bit of float64), then against torch.distributions where torch is exact."""
import decimal
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minivae as mv
from minivae.distributions import ContinuousBernoulli, Independent, constraints
from minivae.random import Generator

D = decimal.Decimal
LAMBDAS = [1e-30, 1e-12, 1e-6, 1e-3, 0.1, 0.3, 0.37, 0.45, 0.4985, 0.4989, 0.499, 0.49901, 0.4995, 0.5, 0.5005,
           0.501, 0.50101, 0.5015, 0.55, 0.63, 0.7, 0.9, 1 - 1e-3, 1 - 1e-6]
LOGITS = [math.log(p) - math.log1p(-p) for p in LAMBDAS] + [20.0, -20.0, 50.0, -50.0, 100.0, -100.0, 800.0, -800.0,
                                                             1e4, -1e4, 1e-9, -3e-5]  # (below √ε: cdf's, icdf's Taylor)
X = [0.0, 1e-6, 0.3, 0.5, 0.9, 1.0]
U = [0.0, 1e-30, 1e-6, 0.3, 0.5, 0.9, 0.999, 1.0]


def reference(eta, x):
    """log_prob(x), mean, variance, entropy, cdf(x) and icdf(x) of CB(σ(η)) from the definitions, in 60 digits:
    p(x) = η·e^(ηx)/(e^η − 1), F(x) = (e^(ηx) − 1)/(e^η − 1), and at η = 0 the uniform."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        eta, x = D(eta), D(x)
        if eta == 0:
            return dict(log_prob=D(0), mean=D(0.5), variance=D(1) / 12, entropy=D(0), cdf=x, icdf=x)
        one = D(1)
        expm1 = eta.exp() - one
        icdf = x if x in (0, 1) else (one + x * expm1).ln() / eta  # (the ends exactly: 1 + expm1(−800) rounds to 0)
        softplus = (one + eta.exp()).ln()
        log_c = softplus + (eta / expm1).ln()
        mean = eta.exp() / expm1 - one / eta
        return dict(log_prob=x * eta - softplus + log_c, mean=mean,
                    variance=one / eta ** 2 - eta.exp() / expm1 ** 2,
                    entropy=-(mean * eta - softplus + log_c),
                    cdf=((eta * x).exp() - one) / expm1, icdf=icdf)


def sensitivity(name, eta, x):
    """|η·∂Q/∂η| + |x·∂Q/∂x| by central differences in 60 digits: how much Q moves when η and x move by a relative ε
    (× ε), the error a computation exact to rounding of its inputs may have beyond its own few roundings."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        h, eta, x = D("1e-25"), D(eta), D(x)
        total = D(0)
        for de, dx in ((eta * h, 0), (0, x * h if x < 1 else 0)):  # (at x = 1 cdf is clamped and icdf exact)
            if de or dx:
                up, down = reference(eta + de, x + dx)[name], reference(eta - de, x - dx)[name]
                total += abs(up - down) / 2 / h
        return float(total)


def ours(d, x):
    v = mv.tensor(np.asarray(x, d.logits.dtype))
    return dict(log_prob=d.log_prob(v), mean=d.mean, variance=d.variance, entropy=d.entropy(), cdf=d.cdf(v),
                icdf=d.icdf(v))


# error bounds in units of ε, beyond the inputs' own (``sensitivity``): relative for mean, cdf, icdf (a few
# roundings) and the variance (1/a² − t/s² cancels: 1/a² ≤ 4 beside a variance ≥ 1/12 − 1/240 beyond |η| = ½,
# where the series takes over: ≤ 48ε); absolute for log_prob and entropy, sums of terms of order max(1, |value|)
RELATIVE = dict(mean=8, cdf=8, icdf=8, variance=48)
ABSOLUTE = dict(log_prob=16, entropy=16)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_match_the_definitions_from_near_0_through_one_half_to_near_1(dtype):
    """λ near 0, ½ (inside torch's window (0.499, 0.501] and just outside it) and 1, and logits up to ±1e4, all
    finite: within a few ε of the 60-digit values in float64 and in float32 (the reference at the float32 η)."""
    eps, tiny = float(np.finfo(dtype).eps), float(np.finfo(dtype).tiny)
    eta = np.array(LOGITS, dtype)
    d = ContinuousBernoulli(logits=mv.tensor(eta))
    for points, names in ((X, ("log_prob", "cdf")), (U, ("icdf",)), ([0.5], ("mean", "variance", "entropy"))):
        for x in points:
            got = {k: v.numpy() for k, v in ours(d, np.full(eta.shape, x, dtype)).items()}
            for name in names:
                want = np.array([float(reference(float(e), float(dtype(x)))[name]) for e in eta])
                assert np.isfinite(got[name]).all(), (name, x)
                err = np.abs(got[name] - want)
                bound = (RELATIVE[name] * eps * np.abs(want) + tiny if name in RELATIVE
                         else ABSOLUTE[name] * eps * np.maximum(1, np.abs(want)))
                bound += eps * np.array([sensitivity(name, float(e), float(dtype(x))) for e in eta])
                worst = np.argmax(err / bound)
                assert (err <= bound).all(), (name, x, eta[worst], got[name][worst], want[worst])


def test_the_density_integrates_to_one_and_its_moments_are_the_integrals():
    """∫₀¹ p(x) dx = 1, ∫ x p = mean, ∫ (x − mean)² p = variance, −∫ p log p = entropy and ∫₀ᵗ p = cdf(t), by
    200-point Gauss–Legendre quadrature (exact to rounding for these smooth p at |η| ≤ 20), in float64."""
    eta = np.array([-20.0, -3.0, -0.4, -0.003, 0.0, 0.002, 0.6, 5.0, 20.0])
    d = ContinuousBernoulli(logits=mv.tensor(eta))
    nodes, weights = np.polynomial.legendre.leggauss(200)
    x, w = (nodes + 1) / 2, weights / 2
    log_p = d.log_prob(mv.tensor(np.repeat(x[:, None], len(eta), 1))).numpy()
    p = np.exp(log_p)
    np.testing.assert_allclose(w @ p, 1, rtol=1e-13)
    mean = w @ (x[:, None] * p)
    np.testing.assert_allclose(d.mean.numpy(), mean, rtol=1e-13)
    np.testing.assert_allclose(d.variance.numpy(), w @ ((x[:, None] - mean) ** 2 * p), rtol=1e-12)
    np.testing.assert_allclose(d.entropy().numpy(), -(w @ (p * log_p)), atol=1e-13)
    t = 0.37  # ∫₀ᵗ p by the same rule on [0, t]
    log_p_t = d.log_prob(mv.tensor(np.repeat((t * x)[:, None], len(eta), 1))).numpy()
    np.testing.assert_allclose(d.cdf(mv.tensor(np.full(eta.shape, t))).numpy(), (t * w) @ np.exp(log_p_t), rtol=1e-13)


def test_icdf_inverts_cdf_and_bounds():
    """cdf(icdf(u)) = u over the whole range, icdf(0) = 0 and icdf(1) = 1 exactly, NaN outside [0, 1], and cdf is 0
    below 0 and 1 above 1, as torch's."""
    eta = np.array([-1e4, -40.0, -2.0, -1e-3, 0.0, 1e-3, 2.0, 40.0, 1e4])
    d = ContinuousBernoulli(logits=mv.tensor(eta))
    u = np.linspace(0.01, 0.99, 99)[:, None]
    back = d.cdf(d.icdf(mv.tensor(np.repeat(u, len(eta), 1)))).numpy()
    np.testing.assert_allclose(back[:, 2:-2], np.repeat(u, len(eta) - 4, 1), rtol=1e-12)
    np.testing.assert_array_equal(d.icdf(mv.tensor(np.zeros(len(eta)))).numpy(), 0)
    np.testing.assert_array_equal(d.icdf(mv.tensor(np.ones(len(eta)))).numpy(), 1)
    assert np.isnan(d.icdf(mv.tensor(np.full(len(eta), 1.5))).numpy()).all()
    assert np.isnan(d.icdf(mv.tensor(np.full(len(eta), -0.5))).numpy()).all()
    np.testing.assert_array_equal(d.cdf(mv.tensor(np.full(len(eta), -0.5))).numpy(), 0)
    np.testing.assert_array_equal(d.cdf(mv.tensor(np.full(len(eta), 2.0))).numpy(), 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradients_are_finite_for_logits_up_to_1e4(dtype):
    """Every quantity's gradient in the logits is finite, from ±1e4 to exactly 0 and at the window's edges: each
    where() sees values its branches can take (0/0 of the closed forms at η = 0 would make a NaN gradient)."""
    eta = np.array([-1e4, -800.0, -100.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 100.0, 800.0, 1e4], dtype)
    for quantity in ("log_prob", "mean", "variance", "entropy", "cdf", "icdf", "rsample"):
        logits = mv.tensor(eta, requires_grad=True)
        d = ContinuousBernoulli(logits=logits)
        value = mv.tensor(np.full(eta.shape, 0.3, dtype))
        out = (d.rsample(rng=Generator(0)) if quantity == "rsample"
               else getattr(d, quantity)(value) if quantity in ("log_prob", "cdf", "icdf")
               else d.entropy() if quantity == "entropy" else getattr(d, quantity))
        assert np.isfinite(out.numpy()).all(), quantity
        out.backward(np.linspace(0.5, 1.5, len(eta)).astype(dtype))
        assert np.isfinite(logits.grad).all(), (quantity, logits.grad)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.one_of(st.floats(-40, 40), st.floats(-0.01, 0.01), st.floats(-0.6, 0.6)), min_size=1,
                max_size=4),
       st.floats(0.001, 0.999))
def test_gradcheck_float64(logits, x):
    """Every quantity's gradient in the logits (and log_prob's and cdf's in the value) against central differences,
    in float64, at logits anywhere up to ±40, in and around the window and the series' |η| < ½."""
    eta = np.array(logits)
    value = np.full(eta.shape, x)
    assert mv.gradcheck(lambda e, v: ContinuousBernoulli(logits=e).log_prob(v), [eta, value])
    assert mv.gradcheck(lambda e, v: ContinuousBernoulli(logits=e).cdf(v), [eta, value])
    assert mv.gradcheck(lambda e: ContinuousBernoulli(logits=e).icdf(mv.tensor(value)), [eta])
    assert mv.gradcheck(lambda e: ContinuousBernoulli(logits=e).mean, [eta])
    assert mv.gradcheck(lambda e: ContinuousBernoulli(logits=e).variance, [eta])
    assert mv.gradcheck(lambda e: ContinuousBernoulli(logits=e).entropy(), [eta])
    probs = 1 / (1 + np.exp(-eta))  # (within [0.02, 0.98]: near 0 and 1 the third derivative 1/(1 − p)³ outgrows h)
    assert mv.gradcheck(lambda p, v: ContinuousBernoulli(p).log_prob(v), [np.clip(probs, 0.02, 0.98), value])


def test_samples_follow_the_cdf():
    """Kolmogorov–Smirnov: 20 000 draws of each λ (one in the window, λ near 0 and 1) against the exact cdf; the
    statistic's 0.999 quantile is 1.949/√n (a false failure once in a thousand runs of a fixed seed: never)."""
    eta = np.array([-30.0, -2.0, 0.001, 0.7, 1e4])
    n = 20_000
    draws = ContinuousBernoulli(logits=mv.tensor(eta)).sample((n,), rng=Generator(3)).numpy()
    assert draws.shape == (n, len(eta)) and ((draws >= 0) & (draws <= 1)).all()
    for j, e in enumerate(eta):
        x = np.sort(draws[:, j])
        cdf = np.array([float(reference(e, v)["cdf"]) for v in x[:: n // 400]])
        ecdf = np.arange(1, n + 1)[:: n // 400] / n
        assert np.abs(cdf - ecdf).max() < 1.949 / math.sqrt(n), e


def test_rsample_is_the_icdf_of_uniforms_and_differentiable():
    """rsample = icdf(u) of the Generator's uniforms, in the logits' dtype and batch; its gradient is icdf's."""
    logits = mv.tensor(np.array([[-3.0, 0.5], [2.0, 0.0]]), requires_grad=True)
    d = ContinuousBernoulli(logits=logits)
    z = d.rsample((5,), rng=Generator(1))
    u = Generator(1).uniform((5, 2, 2), np.float64)
    assert z.shape == (5, 2, 2) and z.dtype == np.float64 and d.has_rsample
    np.testing.assert_array_equal(z.numpy(), d.icdf(mv.tensor(u)).numpy())
    assert not d.sample((5,), rng=Generator(1)).requires_grad


def test_lims_is_the_window_of_the_taylor_expansions():
    """log C is log 2 + (4/3 + 104/45·x²)·x² for λ in (lims[0], lims[1]] and the closed form outside: with a wide
    window (0.2, 0.8), λ = 0.3 takes the Taylor value (visibly off: its x⁶ term left out is 4·10⁻⁵) and λ = 0.2 (the
    window is open below) and 0.81 the closed form; the default window's edges likewise."""
    def taylor(p):
        x2 = (p - 0.5) ** 2
        return math.log(2) + (4 / 3 + 104 / 45 * x2) * x2

    def closed(p):  # the 60-digit value of the closed form at λ's logit, less ½ log λ + ½ log(1 − λ)
        return float(reference(math.log(p) - math.log1p(-p), 0.5)["log_prob"]) - 0.5 * math.log(p) - 0.5 * math.log1p(-p)

    for lims, inside, outside in [((0.2, 0.8), [0.3, 0.8, 0.75], [0.2, 0.81, 0.15]),
                                  ((0.499, 0.501), [0.4991, 0.501, 0.5], [0.499, 0.5011, 0.45])]:
        p = np.array(inside + outside)
        got = ContinuousBernoulli(mv.tensor(p), lims=lims).log_prob(mv.tensor(np.full(p.shape, 0.5))).numpy()
        # log_prob(½) = ½ log λ + ½ log(1 − λ) + log C
        want = 0.5 * np.log(p) + 0.5 * np.log1p(-p) + np.array([taylor(v) for v in inside] + [closed(v) for v in outside])
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert abs(taylor(0.3) - closed(0.3)) > 1e-5  # (the test can tell them apart)


def test_construction_checks():
    with pytest.raises(ValueError, match="exactly one of probs= or logits="):
        ContinuousBernoulli()
    with pytest.raises(ValueError, match="exactly one of probs= or logits="):
        ContinuousBernoulli(0.3, logits=0.1)
    with pytest.raises(ValueError, match=r"probs must be in \[0, 1\]"):
        ContinuousBernoulli(mv.tensor(np.array([0.3, 1.2])))
    for lims in [(0.5, 0.5), (0.6, 0.4), (0.0, 0.6), (0.4, 1.0)]:
        with pytest.raises(ValueError, match="lims must satisfy 0 < lims"):
            ContinuousBernoulli(0.3, lims=lims)
    with pytest.raises(TypeError, match="lims must be a pair of numbers"):
        ContinuousBernoulli(0.3, lims="ab")


def test_probs_are_clamped_as_torch_and_shapes_expand():
    """Given probs 0 and 1 are clamped to [ε, 1 − ε] (finite everything); batch_shape the parameter's; expand as the
    other distributions'; support the unit interval."""
    d = ContinuousBernoulli(mv.tensor(np.array([0.0, 1.0, 0.25])))
    eps = np.finfo(np.float64).eps
    np.testing.assert_array_equal(d.probs.numpy(), [eps, 1 - eps, 0.25])
    assert np.isfinite(d.log_prob(mv.tensor(np.array([0.5, 0.5, 0.5]))).numpy()).all()
    assert d.batch_shape == (3,) and d.event_shape == ()
    e = d.expand((4, 3))
    assert e.batch_shape == (4, 3) and e.log_prob(mv.tensor(np.full((4, 3), 0.2))).shape == (4, 3)
    assert d.support is constraints.unit_interval
    assert d.arg_constraints == {"probs": constraints.unit_interval, "logits": constraints.real}
    x = d.sample((10,), rng=Generator(0))
    assert d.support.check(x).numpy().all()


# ---- against torch ----------------------------------------------------------------------------------------------
def _torch_pairs(torch, lam, given):
    param = lam if given == "probs" else np.log(lam) - np.log1p(-lam)
    ours_, theirs = mv.tensor(param, requires_grad=True), torch.tensor(param, requires_grad=True)
    return ours_, theirs, ContinuousBernoulli(**{given: ours_}), torch.distributions.ContinuousBernoulli(**{given: theirs})


@pytest.mark.parametrize("given", ["probs", "logits"])
def test_matches_torch_in_float64_where_torch_is_exact(given):
    """Values and gradients in the parameter against torch, float64, for λ in the window (where both take the same
    Taylor expansions) and at 0.02 ≤ |λ − ½| (where torch's formulas in λ keep their digits), logits within its clamp:
    log_prob, mean, variance, entropy; cdf and icdf outside the window (inside it torch's are x and u, see
    test_cdf_and_icdf_are_exact_inside_the_window). torch computes in λ = σ(η) rounded, which costs it up to ~2·10⁻¹²
    relatively in the window (its variance at λ = 0.4992 from logits is 1.1·10⁻¹³ above the exact 0.0833332906666):
    hence rtol 5·10⁻¹², where ours is within a few ε of the exact values (test_values_match_the_definitions…)."""
    torch = pytest.importorskip("torch")
    lam = np.array([0.02, 0.1, 0.25, 0.4, 0.48, 0.4992, 0.4999, 0.5, 0.5003, 0.5009, 0.52, 0.6, 0.8, 0.97])
    outside = np.abs(lam - 0.5) > 0.01
    x = np.array([0.0, 0.05, 0.3, 0.5, 0.71, 0.95, 1.0, 0.2, 0.4, 0.6, 0.8, 0.9, 0.15, 0.33])
    for name in ("log_prob", "mean", "variance", "entropy", "cdf", "icdf"):
        p, tp, d, t = _torch_pairs(torch, lam, given)
        if name in ("log_prob", "cdf", "icdf"):
            a, b = getattr(d, name)(mv.tensor(x)), getattr(t, name)(torch.tensor(x))
        else:
            a, b = (d.entropy(), t.entropy()) if name == "entropy" else (getattr(d, name), getattr(t, name))
        keep = outside if name in ("cdf", "icdf") else np.ones(len(lam), bool)
        np.testing.assert_allclose(a.numpy()[keep], b.detach().numpy()[keep], rtol=5e-12, atol=1e-15, err_msg=name)
        if name == "variance":  # torch's Taylor expansion has a sign error: see test_variance_near_one_half_is_exact
            keep = outside
        g = np.linspace(-1, 1.5, len(lam))
        a.backward(g * keep)
        b.backward(torch.tensor(g * keep))
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


def test_cdf_and_icdf_are_exact_inside_the_window():
    """torch's cdf(x) = x and icdf(u) = u in the window are the uniform's: off by up to |η|/8 (2·10⁻³ relatively at
    λ = 0.501); ours are the closed forms there too (exact), so they differ from torch's by that much."""
    torch = pytest.importorskip("torch")
    lam = np.array([0.4991, 0.5009])
    eta = np.log(lam) - np.log1p(-lam)
    d, t = ContinuousBernoulli(mv.tensor(lam)), torch.distributions.ContinuousBernoulli(torch.tensor(lam))
    x = np.array([0.3, 0.3])
    want = np.array([float(reference(e, 0.3)["cdf"]) for e in eta])
    np.testing.assert_allclose(d.cdf(mv.tensor(x)).numpy(), want, rtol=1e-14)
    np.testing.assert_array_equal(t.cdf(torch.tensor(x)).numpy(), x)
    assert (np.abs(want - x) > 1e-4).all()


def test_variance_near_one_half_is_exact():
    """The variance in the window is 1/12 − (1/15 + 128/945·x²)·x² (x = λ − ½) to O(x⁶): torch's expansion has
    − 128/945 (its value off by 2.7·10⁻¹³ at λ = 0.501, its derivative in λ by 10⁻⁵ relatively); ours is the exact
    one's, as its derivative (the variance's derivative in η is the third cumulant, checked by gradcheck)."""
    lam = np.array([0.4991, 0.4996, 0.5004, 0.501])
    p = mv.tensor(lam, requires_grad=True)
    d = ContinuousBernoulli(p)
    x = lam - 0.5
    np.testing.assert_allclose(d.variance.numpy(), 1 / 12 - (1 / 15 + 128 / 945 * x ** 2) * x ** 2, rtol=1e-15)
    d.variance.backward(np.ones(4))
    np.testing.assert_allclose(p.grad, -(2 / 15 + 4 * 128 / 945 * x ** 2) * x, rtol=1e-9)


def test_torchs_variance_expansion_has_the_other_sign():
    torch = pytest.importorskip("torch")
    lam = np.array([0.4991, 0.4996, 0.5004, 0.501])
    x = lam - 0.5
    t = torch.distributions.ContinuousBernoulli(torch.tensor(lam)).variance.numpy()
    np.testing.assert_allclose(t, 1 / 12 - (1 / 15 - 128 / 945 * x ** 2) * x ** 2, rtol=1e-15)  # torch's sign


def test_lims_match_torch():
    """A wide window (0.3, 0.7): torch's Taylor values at λ = 0.4 and 0.62, ours the same."""
    torch = pytest.importorskip("torch")
    lam = np.array([0.2, 0.4, 0.62, 0.75])
    d = ContinuousBernoulli(mv.tensor(lam), lims=(0.3, 0.7))
    t = torch.distributions.ContinuousBernoulli(torch.tensor(lam), lims=(0.3, 0.7))
    x = np.array([0.1, 0.5, 0.9, 0.3])
    np.testing.assert_allclose(d.log_prob(mv.tensor(x)).numpy(), t.log_prob(torch.tensor(x)).numpy(), rtol=1e-13)


def test_extreme_logits_differ_from_torch_by_its_clamp_only():
    """torch makes probs σ(η) clamped to [ε, 1 − ε] for its normalizer and moments, so beyond |η| ≈ 36.7 its density
    is not normalized (at η = 1e4 its mean is 0.973; at η = 5 it has the digits of 1 − σ(η) rounded); ours keeps η:
    mean 1 − 1/η + …, as the definition."""
    torch = pytest.importorskip("torch")
    eta = np.array([1e4, -1e4, 5.0])
    d, t = ContinuousBernoulli(logits=mv.tensor(eta)), torch.distributions.ContinuousBernoulli(logits=torch.tensor(eta))
    want = np.array([float(reference(e, 0.5)["mean"]) for e in eta])
    np.testing.assert_allclose(d.mean.numpy(), want, rtol=1e-15)
    np.testing.assert_allclose(t.mean.numpy()[2], want[2], rtol=1e-12)  # far inside its clamp: the same
    assert abs(t.mean.numpy()[0] - want[0]) > 0.02


def test_independent_continuous_bernoulli_is_torchs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits, x = rng.normal(0, 3, (4, 6)), rng.uniform(0, 1, (4, 6))
    d = Independent(ContinuousBernoulli(logits=mv.tensor(logits)), 1)
    t = torch.distributions.Independent(torch.distributions.ContinuousBernoulli(logits=torch.tensor(logits)), 1)
    np.testing.assert_allclose(d.log_prob(mv.tensor(x)).numpy(), t.log_prob(torch.tensor(x)).numpy(), rtol=1e-12)
    np.testing.assert_allclose(d.entropy().numpy(), t.entropy().numpy(), rtol=1e-12)


def test_on_the_device_nothing_is_copied_to_the_host():
    """On "cuda" (tests/strict_array.py's stand-in) every quantity and a draw stay on the device: no host reads."""
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record
    with use_numba(False), use_cuda_kernels(False), emulating():
        logits = mv.tensor(np.array([-50.0, -0.3, 0.0, 0.0005, 2.0, 1e4], np.float32), device="cuda",
                           requires_grad=True)
        with record() as log:
            d = ContinuousBernoulli(logits=logits)
            v = mv.tensor(np.full(6, 0.4, np.float32), device="cuda")
            out = (d.log_prob(v).sum() + d.mean.sum() + d.variance.sum() + d.entropy().sum() + d.cdf(v).sum()
                   + d.icdf(v).sum() + d.rsample((2,), rng=Generator(0)).sum())
            out.backward()
            d.support.check(d.sample(rng=Generator(1)))
        assert log == [], describe(log)
        assert logits.grad is not None
