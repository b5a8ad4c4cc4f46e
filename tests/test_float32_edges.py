"""The edge sweep of minivae.distributions in float32 (the library's default dtype): log_prob, entropy, cdf and icdf
of each univariate distribution, and the KL pairs of two of them, at edge parameters (scales 1e-30…1e30, logits
±1e4, probabilities at 0, 1 and denormal, concentrations tiny and huge) and at values on the support's boundary.
Nothing is NaN, value or gradient; with torch (float64, at the same float32 inputs), ours are not ±∞ where torch's
are numbers inside float32's range; where the function has a closed form at the edge, it is that (math.*, float64)."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import minivae as mv
from minivae import distributions as D
from minivae.distributions.dirichlet import entropy_near_zero
from minivae.distributions.kl import _gamma_terms_near_zero
from minivae.flows import PlanarFlow, RadialFlow
from minivae.gradcheck import gradcheck

SCALES = [1e-30, 1e-10, 1e-3, 1.0, 1e3, 1e10, 1e30]
LOGITS = [-1e4, -100.0, -20.0, -1e-4, 0.0, 1e-4, 20.0, 100.0, 1e4]
CONC = [1e-30, 1e-4, 0.5, 1.0, 3.0, 1e4, 1e30]
PROBS = [1e-45, 1e-38, 1e-7, 0.5, 1 - 6e-8, 1.0]


def grid(*axes):
    return [np.array(a, np.float32) for a in zip(*itertools.product(*axes))]


def full(params, v):
    return np.asarray(v, np.float32) + np.zeros(params[0].shape, np.float32)


# name: (build from minivae.distributions or torch.distributions, float32 parameters, values in the support)
CASES = {
    "Normal": (lambda m, l, s: m.Normal(l, s), grid([0.0, 1e10], SCALES), lambda l, s: [l, l + s, l + 1.0]),
    "Laplace": (lambda m, l, s: m.Laplace(l, s), grid([0.0], SCALES), lambda l, s: [l, l + s, l + 1.0]),
    "Cauchy": (lambda m, l, s: m.Cauchy(l, s), grid([0.0], SCALES), lambda l, s: [l, l + s, l + 1.0, l + 1e30]),
    "Gumbel": (lambda m, l, s: m.Gumbel(l, s), grid([0.0], SCALES), lambda l, s: [l, l + s, l - 1.0, l + 1.0]),
    "HalfNormal": (lambda m, s: m.HalfNormal(s), grid(SCALES), lambda s: [0 * s, s, 1 + 0 * s]),
    "LogNormal": (lambda m, l, s: m.LogNormal(l, s), grid([0.0], [1e-3, 1.0, 10.0]), lambda l, s: [1e-30 + 0 * s, 1 + 0 * s]),
    "Exponential": (lambda m, r: m.Exponential(r), grid(SCALES), lambda r: [0 * r, 1 / r, 1 + 0 * r]),
    "Gamma": (lambda m, a, b: m.Gamma(a, b), grid(CONC, [1e-10, 1.0, 1e10]), lambda a, b: [1e-30 + 0 * a, 1 + 0 * a]),
    "Beta": (lambda m, a, b: m.Beta(a, b), grid(CONC, [1e-4, 1.0, 1e4]), lambda a, b: [1e-30 + 0 * a, 0.5 + 0 * a]),
    "Kumaraswamy": (lambda m, a, b: m.Kumaraswamy(a, b), grid(CONC[1:-1], CONC[1:-1]), lambda a, b: [1e-30 + 0 * a, 0.5 + 0 * a]),
    "StudentT": (lambda m, d, l, s: m.StudentT(d, l, s), grid([1e-4, 1.0, 30.0], [0.0], [1e-20, 1.0, 1e20]),
                 lambda d, l, s: [l, l + s, l + 1e3]),
    "Bernoulli": (lambda m, l: m.Bernoulli(logits=l), grid(LOGITS), lambda l: [0 * l, 1 + 0 * l]),
    "BernoulliProbs": (lambda m, p: m.Bernoulli(probs=p), grid([0.0] + PROBS), lambda p: [0 * p, 1 + 0 * p]),
    "Geometric": (lambda m, l: m.Geometric(logits=l), grid(LOGITS), lambda l: [0 * l, 1 + 0 * l, 1e4 + 0 * l]),
    "GeometricProbs": (lambda m, p: m.Geometric(probs=p), grid(PROBS), lambda p: [0 * p, 1 + 0 * p, 1e4 + 0 * p]),
    "ContinuousBernoulli": (lambda m, l: m.ContinuousBernoulli(logits=l), grid(LOGITS), lambda l: [0 * l, 0.5 + 0 * l, 1 + 0 * l]),
    "Poisson": (lambda m, r: m.Poisson(r), grid([1e-30, 1e-3, 1.0, 1e3, 1e10, 1e30]), lambda r: [0 * r, 1 + 0 * r]),
    "Uniform": (lambda m, a, b: m.Uniform(a, b), grid([0.0, -1e30], [1e-30, 1.0, 1e30]), lambda a, b: [a, (a + b) / 2]),
}
QUANTILES = [1e-30, 1e-7, 0.5, 1 - 6e-8]  # (icdf's gradient at 0 and 1 is ±∞·0 in a scale)


def quantities(name, params):
    """[(what, fn of a distribution and its module)]: log_prob at each value, entropy, cdf and icdf where defined."""
    out = [(f"log_prob({i})", lambda d, m, v=v: d.log_prob(m(v))) for i, v in enumerate(CASES[name][2](*params))]
    out.append(("entropy", lambda d, m: d.entropy()))
    build = CASES[name][0]
    if hasattr(type(build(D, *[mv.tensor(p) for p in params])), "cdf"):
        out += [(f"cdf({i})", lambda d, m, v=v: d.cdf(m(v))) for i, v in enumerate(CASES[name][2](*params))]
    if hasattr(type(build(D, *[mv.tensor(p) for p in params])), "icdf"):
        out += [(f"icdf({q})", lambda d, m, q=q: d.icdf(m(full(params, q)))) for q in QUANTILES]
    return out


def ours(name, fn, params):
    ts = [mv.tensor(p, requires_grad=True) for p in params]
    try:
        y = fn(CASES[name][0](D, *ts), lambda v: mv.tensor(full(params, v)))
    except NotImplementedError:
        return None, None
    y.sum().backward()
    return y.numpy(), [np.zeros(p.shape, np.float32) if t.grad is None else t.grad for t, p in zip(ts, params)]


@pytest.mark.parametrize("name", CASES)
def test_no_nan_at_the_edges(name):
    params = CASES[name][1]
    for what, fn in quantities(name, params):
        y, grads = ours(name, fn, params)
        if y is None:
            continue
        assert y.dtype == np.float32
        bad = np.isnan(y) | np.any([np.isnan(g) for g in grads], axis=0)
        assert not bad.any(), f"{name} {what}: NaN at {[p[bad][:4] for p in params]}"


@pytest.mark.parametrize("name", CASES)
def test_finite_where_torch_is(name):
    """Where torch's float64 value (gradient) is a number inside float32's range, ours is not ±∞."""
    torch = pytest.importorskip("torch")
    params = CASES[name][1]
    for what, fn in quantities(name, params):
        y, grads = ours(name, fn, params)
        if y is None or what.startswith("icdf"):  # (torch's tan(π(p − ½)) and 2p − 1 lose a small p's digits)
            continue
        ts = [torch.tensor(p.astype(np.float64), requires_grad=True) for p in params]
        try:
            ty = fn(CASES[name][0](torch.distributions, *ts), lambda v: torch.tensor(full(params, v).astype(np.float64)))
            ty.sum().backward()
        except (NotImplementedError, ValueError):
            continue
        representable = lambda a: np.isfinite(a) & (np.abs(a) < 1e37)  # noqa: E731 (a margin for float32 rounding)
        bad = representable(ty.detach().numpy()) & np.isinf(y)
        for t, g in zip(ts, grads):
            bad |= (representable(t.grad.numpy()) if t.grad is not None else True) & np.isinf(g)
        assert not bad.any(), f"{name} {what}: ±∞ at {[p[bad][:4] for p in params]}"


def sigmoid(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def beta_variance(a, b):
    """ab/(s²(s + 1)), s = a + b, and its gradients V·(1/a − 2/s − 1/(s + 1)), V·(1/b − …), in float64 at the float32
    a and b."""
    a, b = float(np.float32(a)), float(np.float32(b))
    s = a + b
    v = (a / s) * (b / s) / (s + 1)
    return v, [v * (1 / a - 2 / s - 1 / (s + 1)), v * (1 / b - 2 / s - 1 / (s + 1))]


def dirichlet_variance_sum(alpha):
    """Σᵢ mᵢ(1 − mᵢ)/(s + 1) = (1 − Σ m²)/(s + 1), m = α/s, and its gradient −(2/s)(mᵢ − Σ m²)/(s + 1) − V/(s + 1), in
    float64 at the float32 α."""
    a = np.array(alpha, np.float32).astype(np.float64)
    s = a.sum()
    m = a / s
    v = (1 - (m * m).sum()) / (s + 1)
    return v, [-(2 / s) * (m - (m * m).sum()) / (s + 1) - v / (s + 1)]


LIMITS = [  # (name, build, parameters, fn, value, gradients): closed forms in float64 (math.*)
    ("Bernoulli(l = 20) entropy", lambda l: D.Bernoulli(logits=l), [20.0], lambda d: d.entropy(),
     softplus(-20) + 20 * sigmoid(-20), [-20 * sigmoid(20) * sigmoid(-20)]),  # (softplus(l) − σ(l)·l cancelled)
    ("Bernoulli(l = −30) entropy", lambda l: D.Bernoulli(logits=l), [-30.0], lambda d: d.entropy(),
     softplus(-30) + 30 * sigmoid(-30), [30 * sigmoid(30) * sigmoid(-30)]),
    ("Geometric(l = −100) entropy", lambda l: D.Geometric(logits=l), [-100.0], lambda d: d.entropy(),
     1 + softplus(100), [-sigmoid(100)]),  # (H = 1 − log p + O(p); its gradient was NaN, e^l's square underflowing)
    ("Geometric(p = 1e-42) entropy", lambda p: D.Geometric(probs=p), [1e-42], lambda d: d.entropy(),
     1 - math.log(np.float32(1e-42)), [-math.inf]),  # (−1/p = −10⁴², past float32's range; NaN before)
    ("Cauchy(0, 1e-30) log_prob(1e30)", D.Cauchy, [0.0, 1e-30], lambda d: d.log_prob(mv.tensor(np.float32(1e30))),
     -math.log(math.pi) + math.log(1e-30) - 2 * math.log(1e30), [2 / 1e30, 1 / 1e-30]),  # (z = 10⁶⁰ overflowed: −∞)
    ("Cauchy(0, 1e-30) cdf(1)", D.Cauchy, [0.0, 1e-30], lambda d: d.cdf(mv.tensor(np.float32(1.0))),
     1 - 1e-30 / math.pi, [-1e-30 / math.pi, -1 / math.pi]),  # (the gradients were 0: z² overflowed)
    ("Cauchy(0, 1e-10) cdf(1e30)", D.Cauchy, [0.0, 1e-10], lambda d: d.cdf(mv.tensor(np.float32(1e30))),
     1.0, [0.0, -1 / (math.pi * 1e30)]),  # (−scale/(π(x − loc)²) underflows to 0; the scale's was NaN)
    ("KL(N(0, 1e-30) ‖ N(0, 1e30))", lambda s, t: (D.Normal(0.0, s), D.Normal(0.0, t)), [1e-30, 1e30],
     lambda pq: D.kl_divergence(*pq), math.log(1e60) - 0.5, [-1e30, 1e-30]),  # (σ_p/σ_q = 0 in float32: +∞ before)
    ("KL(N(0, 1e-30) ‖ N(0, 1e10))", lambda s, t: (D.Normal(0.0, s), D.Normal(0.0, t)), [1e-30, 1e10],
     lambda pq: D.kl_divergence(*pq), math.log(1e40) - 0.5, [-1e30, 1e-10]),  # (σ_q's gradient, 1/σ_q, was ∞)
    ("KL(Cauchy(0, 1e-30) ‖ Cauchy(0, 1e-30))", lambda s, t: (D.Cauchy(0.0, s), D.Cauchy(0.0, t)), [1e-30, 1e-30],
     lambda pq: D.kl_divergence(*pq), 0.0, [0.0, 0.0]),  # (log 0 − log 0 = NaN before)
    ("KL(U(0, 1e-30) ‖ U(−1, 1e30))", lambda h, H: (D.Uniform(0.0, h), D.Uniform(-1.0, H)), [1e-30, 1e30],
     lambda pq: D.kl_divergence(*pq), math.log(1e60), [-1e30, 1e-30]),  # (the widths' ratio overflowed: ∞, NaN)
    ("Beta(1e-30, 3e-30) variance", D.Beta, [1e-30, 3e-30], lambda d: d.variance,
     *beta_variance(1e-30, 3e-30)),  # (ab/((a + b)²(a + b + 1)): 0/0 = NaN before, ab and (a + b)² underflowing)
    ("Beta(0.5, 1e30) variance", D.Beta, [0.5, 1e30], lambda d: d.variance,
     0.0, [0.0, 0.0]),  # (≈ a/b² = 5·10⁻⁶¹, its gradients 1/b², −2a/b³: 0 in float32; NaN before, (a + b)² = ∞)
    ("Dirichlet(1e-30, 2e-30, 3e-30) Σ variance", D.Dirichlet, [[1e-30, 2e-30, 3e-30]], lambda d: d.variance.sum(),
     *dirichlet_variance_sum([1e-30, 2e-30, 3e-30])),
    ("KL(Geometric(l = −100) ‖ Geometric(l = −100))", lambda a, b: (D.Geometric(logits=a), D.Geometric(logits=b)),
     [-100.0, -100.0], lambda pq: D.kl_divergence(*pq), 0.0, [0.0, 0.0]),  # (E_p[k] = e¹⁰⁰ = ∞ in float32: +∞ before)
    ("KL(Geometric(l = −100) ‖ Geometric(l = −99))", lambda a, b: (D.Geometric(logits=a), D.Geometric(logits=b)),
     [-100.0, -99.0], lambda pq: D.kl_divergence(*pq), math.e - 2, [1 - math.e, math.e - 1]),
    # (e^{−l_p}(e^{l_q} − e^{l_p}) + l_p − l_q + O(e^{−99}) = e − 2, its gradients −e^{l_q − l_p} + 1 and e^{l_q − l_p} − 1)
    ("Gumbel(0, 1e-3) cdf(−1)", D.Gumbel, [0.0, 1e-3], lambda d: d.cdf(mv.tensor(np.float32(-1.0))),
     0.0, [0.0, 0.0]),  # (exp(−e¹⁰⁰⁰) and its gradients: 0, not e^{−e^y}·e^y = 0·∞ = NaN)
]


@pytest.mark.parametrize("name,build,params,fn,value,grads", LIMITS, ids=[row[0] for row in LIMITS])
def test_the_limits(name, build, params, fn, value, grads):
    ts = [mv.tensor(np.array(p, np.float32), requires_grad=True) for p in params]
    y = fn(build(*ts))
    y.backward()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), value, rtol=2e-6)
    for t, expected in zip(ts, grads):
        np.testing.assert_allclose(t.grad, expected, rtol=2e-6, atol=1e-45)


KL_PAIRS = {  # name: (build (p, q) from minivae.distributions or torch.distributions, float32 parameters)
    "Normal‖Normal": (lambda m, a, b, c, d: (m.Normal(a, b), m.Normal(c, d)), grid([0.0], SCALES, [0.0, 1.0], SCALES)),
    "Laplace‖Laplace": (lambda m, a, b, c, d: (m.Laplace(a, b), m.Laplace(c, d)), grid([0.0], SCALES, [0.0, 1.0], SCALES)),
    "Normal‖Laplace": (lambda m, a, b, c, d: (m.Normal(a, b), m.Laplace(c, d)), grid([0.0], SCALES, [0.0, 1.0], SCALES)),
    "Laplace‖Normal": (lambda m, a, b, c, d: (m.Laplace(a, b), m.Normal(c, d)), grid([0.0], SCALES, [0.0, 1.0], SCALES)),
    "HalfNormal‖HalfNormal": (lambda m, a, b: (m.HalfNormal(a), m.HalfNormal(b)), grid(SCALES, SCALES)),
    "LogNormal‖LogNormal": (lambda m, a, b, c, d: (m.LogNormal(a, b), m.LogNormal(c, d)), grid([0.0], SCALES, [1.0], SCALES)),
    "Cauchy‖Cauchy": (lambda m, a, b, c, d: (m.Cauchy(a, b), m.Cauchy(c, d)), grid([0.0], SCALES, [0.0, 1.0], SCALES)),
    "Gumbel‖Gumbel": (lambda m, a, b, c, d: (m.Gumbel(a, b), m.Gumbel(c, d)), grid([0.0], SCALES, [0.0, 1.0], SCALES)),
    "Exponential‖Exponential": (lambda m, a, b: (m.Exponential(a), m.Exponential(b)), grid(SCALES, SCALES)),
    "Uniform‖Uniform": (lambda m, a, b, c, d: (m.Uniform(a, b), m.Uniform(c, d)),
                        grid([0.0], [1e-30, 1.0], [-1.0, -1e30], [1.0, 1e30])),
    "Bernoulli‖Bernoulli": (lambda m, a, b: (m.Bernoulli(logits=a), m.Bernoulli(logits=b)), grid(LOGITS, LOGITS)),
    "Poisson‖Poisson": (lambda m, a, b: (m.Poisson(a), m.Poisson(b)), grid([1e-30, 1e-3, 1.0, 1e3, 1e10], [1e-30, 1.0, 1e10])),
}


def kl_of(name, module, kl, params):
    p, q = KL_PAIRS[name][0](module, *params)
    return kl(p, q)


@pytest.mark.parametrize("name", KL_PAIRS)
def test_kl_at_the_edges(name):
    """Where torch's float64 KL is a number inside float32's range, ours is a number (within 10⁻³ of it, relatively, or
    10⁻⁴ absolutely), and no gradient of ours is NaN, nor ±∞ where torch's is a number in float32's range (the scales
    10⁻³⁰ and 10³⁰ of p and q: a ratio of 10⁶⁰, 0 or ∞ in float32)."""
    torch = pytest.importorskip("torch")
    params = KL_PAIRS[name][1]
    ts = [mv.tensor(p, requires_grad=True) for p in params]
    y = kl_of(name, D, D.kl_divergence, ts)
    y.sum().backward()
    tts = [torch.tensor(p.astype(np.float64), requires_grad=True) for p in params]
    ty = kl_of(name, torch.distributions, torch.distributions.kl_divergence, tts)
    ty.sum().backward()
    representable = lambda a: np.isfinite(a) & (np.abs(a) < 1e37)  # noqa: E731
    inside = representable(ty.detach().numpy())
    got, expected = y.numpy(), ty.detach().numpy()
    bad = inside & ~(np.abs(got - expected) <= 1e-3 * np.abs(expected) + 1e-4)
    for t, tt in zip(ts, tts):
        g, tg = t.grad, tt.grad.numpy()
        bad |= inside & (np.isnan(g) | (representable(tg) & np.isinf(g)))
    assert not bad.any(), f"{name}: at {[p[bad][:4] for p in params]}, {got[bad][:4]} where torch has {expected[bad][:4]}"


@settings(max_examples=60, deadline=None)
@given(st.floats(-1e4, 1e4, width=32))
def test_bernoulli_entropy_in_float32_is_the_float64_formula(logit):
    """H(l) = −p log p − (1 − p) log(1 − p), p = σ(l), in float64 (log σ(l) = −softplus(−l)): float32's within a few
    ulps of it, relatively, over the whole range of logits, and its gradient −l·σ(l)·σ(−l). Where σ(−|l|) is a
    subnormal float32 (|l| > 87.3) it holds fewer digits: its absolute error, half the smallest subnormal 2⁻¹⁴⁹, is
    multiplied by about |l| + 1 in H and by |l| in the gradient (at l = 96, H ≈ 1.97·10⁻⁴⁰ was off by 6·10⁻⁴⁴, 3·10⁻⁴
    relatively): hence the absolute term, 4·(|l| + 1)·2⁻¹⁴⁹, under 5% of the relative one wherever σ(−|l|) is normal."""
    t = mv.tensor(np.float32(logit), requires_grad=True)
    h = D.Bernoulli(logits=t).entropy()
    h.backward()
    p, q = sigmoid(logit), sigmoid(-logit)
    expected = p * softplus(-logit) + q * softplus(logit)
    subnormal = 4 * (abs(logit) + 1) * 2.0 ** -149
    np.testing.assert_allclose(h.numpy(), expected, rtol=1e-5, atol=subnormal)
    np.testing.assert_allclose(t.grad, -logit * p * q, rtol=1e-5, atol=subnormal)


def student_t_log_prob(df, x):
    """log_prob of StudentT(df, 0, 1) at x in float64 (math.lgamma: its difference keeps ~12 digits up to ν ≈ 10⁴)."""
    return (math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
            - (df + 1) / 2 * math.log1p(x * x / df))


def student_t_entropy(df):
    """(ν + 1)/2·(ψ((ν + 1)/2) − ψ(ν/2)) + ½ log ν + log B(ν/2, ½) in float64, ψ's difference the central difference
    (step ν/2·10⁻⁴) of math.lgamma's."""
    x, h = df / 2, df * 5e-5

    def step(y):
        return math.lgamma(y + 0.5) - math.lgamma(y)
    return ((df + 1) / 2 * (step(x + h) - step(x - h)) / (2 * h) + 0.5 * math.log(df)
            + 0.5 * math.log(math.pi) - step(x))


@pytest.mark.parametrize("df", [30.0, 1e4, 1e10])
def test_student_t_with_many_degrees_of_freedom(df):
    """log_prob and entropy at large ν, against their float64 formulas (ν ≤ 10⁴) and the Normal's −½ log 2π − x²/2 and
    ½ log(2πe) at ν = 10¹⁰ (the 1/ν terms below float32's precision); the gradient in ν finite. Was: 0 and 11.5 at
    10¹⁰ (lgamma((ν + 1)/2) − lgamma(ν/2) and ψ's difference cancelled), off by 4·10⁻³ at 10⁴."""
    t = mv.tensor(np.float32(df), requires_grad=True)
    d = D.StudentT(t, 0.0, 1.0)
    values = d.log_prob(mv.tensor(np.array([0.0, 1.5], np.float32)))
    entropy = d.entropy()
    (values.sum() + entropy).backward()
    if df <= 1e4:
        expected = [student_t_log_prob(df, 0.0), student_t_log_prob(df, 1.5), student_t_entropy(df)]
    else:
        expected = [-0.5 * math.log(2 * math.pi), -0.5 * math.log(2 * math.pi) - 1.125, 0.5 * math.log(2 * math.pi * math.e)]
    np.testing.assert_allclose([*values.numpy(), entropy.item()], expected, rtol=1e-6)
    assert np.isfinite(t.grad)


@settings(max_examples=80, deadline=None)
@given(st.floats(-30, 30), st.floats(-30, 30), st.floats(-3, 3))
@example(-30.0, 30.0, 0.0)  # (σ_p/σ_q = 10⁻⁶⁰, 0 in float32)
@example(-30.0, 10.0, 1.0)  # (10⁻⁴⁰, subnormal)
@example(10.0, -10.0, 0.0)  # (10²⁰: the KL, 5·10³⁹, past float32's range; σ_p's gradient, 10³⁰, not)
def test_normal_kl_in_float32_is_the_float64_formula(log10_p, log10_q, shift):
    """KL(N(0, σ_p) ‖ N(d·σ_q, σ_q)), the scales 10⁻³⁰…10³⁰ apart: float32's value and gradients in σ_p, σ_q those of
    log σ_q − log σ_p + (σ_p² + d²σ_q²)/(2σ_q²) − ½ in float64 (math.*, the ratio r = σ_p/σ_q as 10^(log10_p − log10_q)),
    to float32's precision, where they are numbers in float32's range."""
    sp, sq = np.float32(10.0 ** log10_p), np.float32(10.0 ** log10_q)
    if not (sp > 0 and sq > 0 and np.isfinite(sp) and np.isfinite(sq)):
        return
    loc_q = np.float32(shift * float(sq))
    tp, tq = mv.tensor(sp, requires_grad=True), mv.tensor(sq, requires_grad=True)
    kl = D.kl_divergence(D.Normal(mv.tensor(np.float32(0.0)), tp), D.Normal(mv.tensor(loc_q), tq))
    kl.backward()
    p, q, d = float(sp), float(sq), float(loc_q) / float(sq)
    r = math.exp(math.log(p) - math.log(q))
    expected = math.log(q) - math.log(p) + 0.5 * (r * r + d * d) - 0.5
    grads = [r / q - 1 / p, 1 / q - r * r / q - d * d / q]  # (∂/∂σ_q at fixed μ_q: d = μ_q/σ_q moves too)
    if abs(expected) < 1e37:
        np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-5, atol=1e-5)
    for t, g in zip((tp, tq), grads):
        if abs(g) < 1e37:
            np.testing.assert_allclose(t.grad, g, rtol=1e-5, atol=1e-6 * (1 / p + 1 / q))


def digamma(x):
    """ψ(x) in float64: ψ(x) = ψ(x + 10) − Σₖ₌₀⁹ 1/(x + k), then the asymptotic series log y − 1/(2y) − Σ B₂ₖ/(2k·y²ᵏ)
    (its first term left out, 1/(132y¹⁰) < 10⁻¹², the error)."""
    shift = sum(1 / (x + k) for k in range(10))
    y = x + 10
    return math.log(y) - 1 / (2 * y) - 1 / (12 * y**2) + 1 / (120 * y**4) - 1 / (252 * y**6) + 1 / (240 * y**8) - shift


def trigamma(x):
    """ψ′(x) in float64: ψ′(x) = ψ′(x + 10) + Σₖ₌₀⁹ 1/(x + k)², then 1/y + 1/(2y²) + Σ B₂ₖ/y²ᵏ⁺¹."""
    shift = sum(1 / (x + k) ** 2 for k in range(10))
    y = x + 10
    return 1 / y + 1 / (2 * y**2) + 1 / (6 * y**3) - 1 / (30 * y**5) + 1 / (42 * y**7) - 1 / (30 * y**9) + shift


def dirichlet_entropy(alpha, dtype=np.float32):
    """Σ lgamma(αₖ) − lgamma(α₀) + (α₀ − K)ψ(α₀) − Σ (αₖ − 1)ψ(αₖ) and its gradient (α₀ − K)ψ′(α₀) − (αₖ − 1)ψ′(αₖ),
    in float64 (math.lgamma, the series above) at α rounded to ``dtype``: the textbook formula, whose terms float64
    holds (10⁶⁰ at α = 10⁻³⁰)."""
    a = [float(dtype(x)) for x in alpha]
    s, k = sum(a), len(a)
    value = (sum(math.lgamma(x) for x in a) - math.lgamma(s) + (s - k) * digamma(s)
             - sum((x - 1) * digamma(x) for x in a))
    return value, [(s - k) * trigamma(s) - (x - 1) * trigamma(x) for x in a]


def gamma_kl(a_p, b_p, a_q, b_q):
    """KL(Gamma(α_p, β_p) ‖ Gamma(α_q, β_q)) and its gradients in (α_p, β_p, α_q, β_q), float64 at the float32 inputs."""
    a_p, b_p, a_q, b_q = (float(np.float32(x)) for x in (a_p, b_p, a_q, b_q))
    value = (a_q * math.log(b_p / b_q) + math.lgamma(a_q) - math.lgamma(a_p) + (a_p - a_q) * digamma(a_p)
             + (b_q - b_p) * a_p / b_p)
    return value, [(a_p - a_q) * trigamma(a_p) + (b_q - b_p) / b_p, a_q / b_p - a_p * b_q / b_p**2,
                   math.log(b_p / b_q) + digamma(a_q) - digamma(a_p), -a_q / b_q + a_p / b_p]


def beta_kl(a_p, b_p, a_q, b_q):
    """KL(Beta(a_p, b_p) ‖ Beta(a_q, b_q)) and its gradients, float64 at the float32 inputs: log B(a_q, b_q) −
    log B(a_p, b_p) + (a_p − a_q)ψ(a_p) + (b_p − b_q)ψ(b_p) + (s_q − s_p)ψ(s_p)."""
    a_p, b_p, a_q, b_q = (float(np.float32(x)) for x in (a_p, b_p, a_q, b_q))
    s_p, s_q = a_p + b_p, a_q + b_q
    log_b = lambda a, b: math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)  # noqa: E731
    value = (log_b(a_q, b_q) - log_b(a_p, b_p) + (a_p - a_q) * digamma(a_p) + (b_p - b_q) * digamma(b_p)
             + (s_q - s_p) * digamma(s_p))
    common = (s_q - s_p) * trigamma(s_p)
    return value, [(a_p - a_q) * trigamma(a_p) + common, (b_p - b_q) * trigamma(b_p) + common,
                   digamma(a_q) - digamma(s_q) - digamma(a_p) + digamma(s_p),
                   digamma(b_q) - digamma(s_q) - digamma(b_p) + digamma(s_p)]


def uniform_normal_kl(a, b, mu, sigma):
    """KL(U(a, b) ‖ N(μ, σ)) = ½ log 2π + log σ − log(b − a) + ((b − a)²/12 + ((a + b)/2 − μ)²)/(2σ²) and its gradients,
    float64 at the float32 inputs."""
    a, b, mu, sigma = (float(np.float32(x)) for x in (a, b, mu, sigma))
    w, c = b - a, (a + b) / 2 - mu
    value = 0.5 * math.log(2 * math.pi) + math.log(sigma) - math.log(w) + (w * w / 12 + c * c) / (2 * sigma**2)
    return value, [1 / w + (-w / 6 + c) / (2 * sigma**2), -1 / w + (w / 6 + c) / (2 * sigma**2), -c / sigma**2,
                   1 / sigma - (w * w / 12 + c * c) / sigma**3]


def uniform_gumbel_kl(a, b, mu, sigma):
    """KL(U(a, b) ‖ Gumbel(μ, σ)) = −log(b − a) + log σ + E_p[z] + E_p[e^{−z}], z = (x − μ)/σ: −log w + (h + l)/2 +
    e^{−l}·g(w), w = (b − a)/σ, l = (a − μ)/σ, h = l + w, g(w) = (1 − e^{−w})/w (math.expm1; its series 1 − w/2 + w²/6
    and g′ = −1/2 + w/3 below 10⁻⁴), and its gradients, float64 at the float32 inputs. (torch's float64 formula loses the
    e^{−l}·g(w) ≈ 1 where w ≈ 10⁻⁴⁰: e^{−h} − e^{−l} = 0.)"""
    a, b, mu, sigma = (float(np.float32(x)) for x in (a, b, mu, sigma))
    w, low = (b - a) / sigma, (a - mu) / sigma
    g, dg = (1 - w / 2 + w * w / 6, -0.5 + w / 3) if w < 1e-4 else (-math.expm1(-w) / w, (w * math.exp(-w) + math.expm1(-w)) / w**2)
    e = math.exp(-low)
    value = -math.log(b - a) + math.log(sigma) + (low + w / 2) + e * g
    return value, [1 / (b - a) + 1 / (2 * sigma) - e * (g + dg) / sigma, -1 / (b - a) + 1 / (2 * sigma) + e * dg / sigma,
                   (e * g - 1) / sigma, 1 / sigma - ((a + b) / 2 - mu) / sigma**2 + e * (g * low - dg * w) / sigma]


def exponential_gumbel_kl(rate, mu, sigma):
    """KL(Exp(λ) ‖ Gumbel(μ, σ)) = log P − 1 − s + e^s·P/(P + 1) + 1/P, P = λσ, s = μ/σ (torch's formula, float64: P =
    10⁻³³ and 10⁴⁰ are numbers there), and its gradients in λ, μ, σ through ∂/∂P = 1/P + e^s/(P + 1)² − 1/P² and
    ∂/∂s = −1 + e^s·P/(P + 1), at the float32 inputs."""
    rate, mu, sigma = (float(np.float32(x)) for x in (rate, mu, sigma))
    prod, shift = rate * sigma, mu / sigma
    value = math.log(prod) - 1 - shift + math.exp(shift) * prod / (prod + 1) + 1 / prod
    by_p, by_s = 1 / prod + math.exp(shift) / (prod + 1) ** 2 - 1 / prod**2, -1 + math.exp(shift) * prod / (prod + 1)
    return value, [sigma * by_p, by_s / sigma, rate * by_p - by_s * mu / sigma**2]


AGAINST_FLOAT64 = [  # (name, build, parameters, fn, (value, gradients[, atol]) in float64): concentrations below √tiny
    ("Beta(8e-20, 8e-20) entropy", D.Beta, [8e-20, 8e-20], lambda d: d.entropy(), dirichlet_entropy([8e-20, 8e-20])),
    ("Beta(8e-20, 1) entropy", D.Beta, [8e-20, 1.0], lambda d: d.entropy(), dirichlet_entropy([8e-20, 1.0])),
    ("Beta(1e3, 8e-20) entropy", D.Beta, [1e3, 8e-20], lambda d: d.entropy(), dirichlet_entropy([1e3, 8e-20])),
    ("Beta(1e-30, 1e-30) entropy", D.Beta, [1e-30, 1e-30], lambda d: d.entropy(), dirichlet_entropy([1e-30, 1e-30])),
    ("Beta(1e-30, 2) entropy", D.Beta, [1e-30, 2.0], lambda d: d.entropy(), dirichlet_entropy([1e-30, 2.0])),
    ("Dirichlet(8e-20, 1e-3, 2) entropy", D.Dirichlet, [[8e-20, 1e-3, 2.0]], lambda d: d.entropy(),
     (lambda v, g: (v, [g]))(*dirichlet_entropy([8e-20, 1e-3, 2.0]))),
    ("Dirichlet(1e-30, 2e-30, 3e-30) entropy", D.Dirichlet, [[1e-30, 2e-30, 3e-30]], lambda d: d.entropy(),
     (lambda v, g: (v, [g]))(*dirichlet_entropy([1e-30, 2e-30, 3e-30]))),
    ("KL(Gamma(1e-30, 1) ‖ Gamma(1e-30, 2))", lambda a, b, c, d: (D.Gamma(a, b), D.Gamma(c, d)), [1e-30, 1.0, 1e-30, 2.0],
     lambda pq: D.kl_divergence(*pq), gamma_kl(1e-30, 1.0, 1e-30, 2.0)),
    ("KL(Gamma(8e-20, 1) ‖ Gamma(1, 1))", lambda a, b, c, d: (D.Gamma(a, b), D.Gamma(c, d)), [8e-20, 1.0, 1.0, 1.0],
     lambda pq: D.kl_divergence(*pq), gamma_kl(8e-20, 1.0, 1.0, 1.0)),
    ("KL(Beta(1e-30, 1e-30) ‖ Beta(1e-30, 1e-30))", lambda a, b, c, d: (D.Beta(a, b), D.Beta(c, d)),
     [1e-30, 1e-30, 1e-30, 1e-30], lambda pq: D.kl_divergence(*pq), (0.0, [0.0] * 4, 1e24)),  # (its minimum: NaN before)
    ("KL(Beta(8e-20, 0.5) ‖ Beta(1, 3))", lambda a, b, c, d: (D.Beta(a, b), D.Beta(c, d)), [8e-20, 0.5, 1.0, 3.0],
     lambda pq: D.kl_divergence(*pq), beta_kl(8e-20, 0.5, 1.0, 3.0)),
    ("KL(Dir(1e-30, 2e-30) ‖ Dir(1e-30, 2e-30))", lambda a, b: (D.Dirichlet(a), D.Dirichlet(b)),
     [[1e-30, 2e-30], [1e-30, 2e-30]], lambda pq: D.kl_divergence(*pq), (0.0, [[0.0, 0.0], [0.0, 0.0]], 1e24)),
    ("KL(Dir(8e-20, 0.5) ‖ Dir(1, 3))", lambda a, b: (D.Dirichlet(a), D.Dirichlet(b)), [[8e-20, 0.5], [1.0, 3.0]],
     lambda pq: D.kl_divergence(*pq), (lambda v, g: (v, [g[:2], g[2:]]))(*beta_kl(8e-20, 0.5, 1.0, 3.0))),
    ("KL(U(0, 1e-30) ‖ N(0, 1e-30))", lambda a, b, c, d: (D.Uniform(a, b), D.Normal(c, d)), [0.0, 1e-30, 0.0, 1e-30],
     lambda pq: D.kl_divergence(*pq), uniform_normal_kl(0.0, 1e-30, 0.0, 1e-30)),  # (σ² = 0: NaN before)
    ("KL(U(0, 1e-30) ‖ N(0, 1e10))", lambda a, b, c, d: (D.Uniform(a, b), D.Normal(c, d)), [0.0, 1e-30, 0.0, 1e10],
     lambda pq: D.kl_divergence(*pq), uniform_normal_kl(0.0, 1e-30, 0.0, 1e10)),  # (σ/(b − a) = ∞: +∞ before)
    ("KL(Gamma(1, 1e20) ‖ Gamma(1, 1e-20))", lambda a, b, c, d: (D.Gamma(a, b), D.Gamma(c, d)), [1.0, 1e20, 1.0, 1e-20],
     lambda pq: D.kl_divergence(*pq), gamma_kl(1.0, 1e20, 1.0, 1e-20)),  # (β_p/β_q = ∞ in float32: +∞ before, 91.1)
    ("KL(U(0, 1e-30) ‖ Gumbel(0, 1e10))", lambda a, b, c, d: (D.Uniform(a, b), D.Gumbel(c, d)), [0.0, 1e-30, 0.0, 1e10],
     lambda pq: D.kl_divergence(*pq), uniform_gumbel_kl(0.0, 1e-30, 0.0, 1e10)),  # (σ/(b − a) = ∞: NaN before, 93.1)
    ("KL(U(-1, 2) ‖ Gumbel(0.5, 3))", lambda a, b, c, d: (D.Uniform(a, b), D.Gumbel(c, d)), [-1.0, 2.0, 0.5, 3.0],
     lambda pq: D.kl_divergence(*pq), uniform_gumbel_kl(-1.0, 2.0, 0.5, 3.0)),  # (w = 1: the closed form)
    ("KL(Exp(1e-30) ‖ Gumbel(0, 1e-3))", lambda r, c, d: (D.Exponential(r), D.Gumbel(c, d)), [1e-30, 0.0, 1e-3],
     lambda pq: D.kl_divergence(*pq), exponential_gumbel_kl(1e-30, 0.0, 1e-3)),  # (∂/∂σ = −10³⁶: −∞ before)
    ("KL(Exp(1e10) ‖ Gumbel(0, 1e30))", lambda r, c, d: (D.Exponential(r), D.Gumbel(c, d)), [1e10, 0.0, 1e30],
     lambda pq: D.kl_divergence(*pq), exponential_gumbel_kl(1e10, 0.0, 1e30)),  # (λσ = ∞: +∞ before, 92.1)
]


def past_the_range(expected):
    """float64 numbers past float32's: ±∞ of their sign, what float32 can say of them."""
    e = np.asarray(expected, np.float64)
    return np.where(np.abs(e) > np.finfo(np.float32).max, np.copysign(np.inf, e), e)


@pytest.mark.parametrize("name,build,params,fn,expected", AGAINST_FLOAT64, ids=[row[0] for row in AGAINST_FLOAT64])
def test_against_the_float64_formulas(name, build, params, fn, expected):
    """Entropies and KLs whose concentrations are below √tiny, where ψ′ ≈ 1/α² passes float32's range (and KLs of
    quotients that under- or overflow, σ/(b − a) and β_p/β_q), against the float64 formulas: the value and
    gradients within float32's precision of the float64 formula's (±∞ where those are past float32's range, ∞·0 or
    ∞ − ∞ = NaN before). At p = q the KL's gradient 0 is a sum of terms ±1/α = ±10³⁰: 10⁻⁶ of them (float32's
    rounding, 6·10⁻⁸ relatively, of a few) is the tolerance there."""
    ts = [mv.tensor(np.array(p, np.float32), requires_grad=True) for p in params]
    y = fn(build(*ts))
    y.backward()
    value, grads, atol = (*expected, 1e-6) if len(expected) == 2 else expected
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), value, rtol=2e-6, atol=1e-6)
    for t, g in zip(ts, grads):
        np.testing.assert_allclose(t.grad, past_the_range(g), rtol=2e-6, atol=atol)


def test_kls_past_the_range_are_plus_infinity():
    """Where the KL is past float32's range, +∞ (not NaN: ∞ − ∞ of its poles, of r − α·log r), with no NaN gradient where
    the gradient is a number in range: KL(Beta(10⁻³⁰, 10⁻³⁰) ‖ Beta(10⁻³⁰, 10¹⁰)) ≈ 5·10³⁹, KL(Exp(10⁻³⁰) ‖
    Gamma(10⁻³⁰, 10¹⁰)) ≈ 10⁴⁰ (∂/∂β_q = 1/λ_p − α_q/β_q = 10³⁰), KL(Dir(10⁻³⁰, 10⁻³⁰) ‖ Dir(10⁻³⁰, 10¹⁰)) ≈ 10⁴⁰."""
    ts = [mv.tensor(np.float32(x), requires_grad=True) for x in (1e-30, 1e-30, 1e-30, 1e10)]
    assert D.kl_divergence(D.Beta(ts[0], ts[1]), D.Beta(ts[2], ts[3])).item() == math.inf
    assert beta_kl(1e-30, 1e-30, 1e-30, 1e10)[0] > 1e39
    rate, a, b = (mv.tensor(np.float32(x), requires_grad=True) for x in (1e-30, 1e-30, 1e10))
    kl = D.kl_divergence(D.Exponential(rate), D.Gamma(a, b))
    kl.backward()
    assert kl.item() == math.inf
    np.testing.assert_allclose(b.grad, 1 / float(np.float32(1e-30)) - float(np.float32(1e-30)) / 1e10, rtol=2e-6)
    p, q = (mv.tensor(np.float32(c)) for c in ([1e-30, 1e-30], [1e-30, 1e10]))
    assert D.kl_divergence(D.Dirichlet(p), D.Dirichlet(q)).item() == math.inf  # (≈ 10⁴⁰: q's 10¹⁰ over p's 10⁻³⁰)


def planar_log_det(a, wu):
    """log|det J| of the planar flow, log(tanh²a + (1 − tanh²a)·softplus(wᵀu)), and its partials in a and in wᵀu,
    2 tanh a·(1 − tanh²a)(1 − softplus(wᵀu))/(…) and (1 − tanh²a)·σ(wᵀu)/(…), in float64 (math.*; softplus(−700) =
    10⁻³⁰⁴ is a float64 number)."""
    t, sp = math.tanh(a), softplus(wu)
    sech2 = 1 - t * t
    inner = t * t + sech2 * sp
    return math.log(inner), 2 * t * sech2 * (1 - sp) / inner, sech2 * sigmoid(wu) / inner


@pytest.mark.parametrize("a", [0.0, 1e-30, 1e-20, 1e-10])
@pytest.mark.parametrize("wu", [-103.0, -110.0, -200.0, -700.0])
def test_planar_log_det_where_both_of_its_terms_underflow(a, wu):
    """D = 1, z = 0, a = b, wᵀu = u (w = 1): tanh²a and softplus(wᵀu) both underflow in float32 (|a| ≲ 10⁻¹⁹,
    wᵀu ≲ −103), where the log-det, ≈ max(2 log|a|, wᵀu), is a number: within float32's precision of the float64
    formula, and so its gradients, ∂/∂b = ∂/∂a, ∂/∂u = ∂/∂(wᵀu), ∂/∂w = u·∂/∂(wᵀu) (z = 0), ∂/∂z = w·∂/∂a (those in
    wᵀu to 10⁻⁵: the weight of the smaller term, e^{−10.9} at a = 10⁻²⁰, wᵀu = −103, is the exp of a difference of logs
    ≈ 100, whose float32 rounding is ≈ 100·6·10⁻⁸ relatively). Was: −∞ and NaN gradients (and −103.28 at wᵀu = −103,
    a = 0, where it is −103)."""
    zt = mv.tensor(np.zeros((1, 1), np.float32), requires_grad=True)
    pt = mv.tensor(np.array([[wu, 1.0, a]], np.float32), requires_grad=True)
    log_det = PlanarFlow(1)(zt, pt)[1]
    log_det.sum().backward()
    value, by_a, by_wu = planar_log_det(float(np.float32(a)), wu)
    np.testing.assert_allclose(log_det.numpy(), [value], rtol=2e-6)
    np.testing.assert_allclose(pt.grad[0], [by_wu, wu * by_wu, by_a], rtol=1e-5, atol=1e-30)
    np.testing.assert_allclose(zt.grad[0], [by_a], rtol=2e-6, atol=1e-30)


def test_planar_log_det_at_a_subnormal_a():
    """a = 10⁻⁴⁰ (subnormal in float32), wᵀu = −10⁴: the log-det 2 log a = −184.2 (log(a² + e^{wᵀu}), e^{−10⁴} far below
    a²), and its gradient in a, 2/a = 2·10⁴⁰, past float32's range: +∞, not NaN (in b and z; in u a number; in w,
    z·∞ = 0·∞, NaN: the flow's docstring's "Left")."""
    zt = mv.tensor(np.zeros((1, 1), np.float32), requires_grad=True)
    pt = mv.tensor(np.array([[-1e4, 1.0, 1e-40]], np.float32), requires_grad=True)
    log_det = PlanarFlow(1)(zt, pt)[1]
    log_det.sum().backward()
    np.testing.assert_allclose(log_det.numpy(), [2 * math.log(float(np.float32(1e-40)))], rtol=2e-6)
    assert pt.grad[0, 2] == np.inf and zt.grad[0, 0] == np.inf
    assert np.isfinite(pt.grad[0, 0])


RADIAL_AT_CENTRE = [(-200.0, -200.0), (-200.0, -210.0), (-120.0, -110.0), (-200.0, 0.0), (-90.0, 0.0), (-80.0, 1e4),
                    (1e4, -80.0), (-100.0, -95.0)]


@pytest.mark.parametrize("alpha_raw,beta_raw", RADIAL_AT_CENTRE)
def test_radial_flow_at_its_centre_where_alpha_underflows(alpha_raw, beta_raw):
    """z = z₀ in float32 where α = softplus(α′) underflows (α′ ≲ −104: α + r = 0, p = 0/0) or (α + β)/α = softplus(β′)/α
    is not a normal number: f = z₀; the log-det D·(log softplus(β′) − log softplus(α′)), its gradients −D·σ(α′)/
    softplus(α′) and D·σ(β′)/softplus(β′) (math.*, float64), within float32's precision; ∂(Σf + log-det)/∂z per entry
    (α + β)/α, ∂/∂z₀ = 1 − (α + β)/α, where (α + β)/α is in float32's range, else half its largest number (the
    docstring's saturation), to 10⁻⁵ (the exp of log softplus(β′) − log softplus(α′), logs ≈ 100: 100·6·10⁻⁸). Was: NaN
    values and gradients."""
    dim = 3
    z0 = np.array([0.3, -0.2, 0.5], np.float32)
    zt = mv.tensor(z0[None].copy(), requires_grad=True)
    pt = mv.tensor(np.concatenate([z0, np.float32([alpha_raw, beta_raw])])[None], requires_grad=True)
    out, log_det = RadialFlow(dim)(zt, pt)
    (out.sum() + log_det.sum()).backward()
    log_sp = lambda x: math.log(softplus(x))  # noqa: E731
    ratio = math.exp(log_sp(beta_raw) - log_sp(alpha_raw))
    slope = ratio if ratio < np.finfo(np.float32).max / 2 else float(np.finfo(np.float32).max / 2)
    np.testing.assert_array_equal(out.numpy()[0], z0)
    np.testing.assert_allclose(log_det.numpy(), [dim * (log_sp(beta_raw) - log_sp(alpha_raw))], rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(zt.grad[0], [slope] * dim, rtol=1e-5)
    np.testing.assert_allclose(pt.grad[0], [1 - slope] * dim + [-dim * sigmoid(alpha_raw) / softplus(alpha_raw),
                                                                 dim * sigmoid(beta_raw) / softplus(beta_raw)], rtol=1e-5)


def test_radial_flow_next_to_its_centre_at_a_subnormal_r():
    """α′ = β′ = −200 (α = softplus(−200) = 0 in float32, β = 0: the identity), z₀ = 0, z = (10⁻⁴⁰, 0, 0): r subnormal,
    α + r = r, whose reciprocal overflows (10⁴⁰: p = 0·∞ = NaN), the quotients by it not: f(z) = z, log-det 0. (The
    gradients there are the flow's docstring's "Left": ḡ/(α + r) overflows in the quotients' VJPs.)"""
    z = mv.tensor(np.float32([[1e-40, 0.0, 0.0]]))
    out, log_det = RadialFlow(3)(z, mv.tensor(np.float32([[0.0, 0.0, 0.0, -200.0, -200.0]])))
    np.testing.assert_array_equal(out.numpy(), z.numpy())
    np.testing.assert_array_equal(log_det.numpy(), [0.0])


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=1, max_size=4), st.integers(0, 2**31 - 1))
def test_the_near_zero_forms_are_the_formulas_in_float64(log10_alpha, seed):
    """``entropy_near_zero`` (its reciprocals scaled by a constant minₖ αₖ) and ``_gamma_terms_near_zero`` + x_q/x_p − 1
    at αₖ in 10⁻³…10³, float64: the formulas they rewrite (Dirichlet's entropy of 1s-free α above √tiny, and
    lgamma(x_q) − lgamma(x_p) + (x_p − x_q)·ψ(x_p), with the series above), to 10⁻¹² relatively, and their gradients
    central differences' (gradcheck; its rounding bound from terms 10² times the value, lgamma(α₀ + 1) and
    (α₀ − K)·ψ(α₀ + 1) ≈ 10³ at α₀ = 10³, which cancel to it: value_rtol 10⁻¹³ for its 10⁻¹⁴)."""
    alpha = 10.0 ** np.array(log10_alpha)
    other = 10.0 ** np.random.default_rng(seed).uniform(-3, 3, alpha.shape)
    value = entropy_near_zero(mv.tensor(alpha)).item()
    np.testing.assert_allclose(value, dirichlet_entropy(alpha, np.float64)[0], rtol=1e-12, atol=1e-12)
    assert gradcheck(entropy_near_zero, (alpha,), value_rtol=1e-13)
    terms = (_gamma_terms_near_zero(mv.tensor(alpha), mv.tensor(other)) + mv.tensor(other / alpha) - 1).numpy()
    expected = [math.lgamma(q) - math.lgamma(p) + (p - q) * digamma(p) for p, q in zip(alpha, other)]
    np.testing.assert_allclose(terms, expected, rtol=1e-12, atol=1e-12)
    assert gradcheck(lambda p, q: _gamma_terms_near_zero(p, q) + q / p, (alpha, other), value_rtol=1e-13)
