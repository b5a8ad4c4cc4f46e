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
    ulps of it, relatively, over the whole range of logits, and its gradient −l·σ(l)·σ(−l)."""
    t = mv.tensor(np.float32(logit), requires_grad=True)
    h = D.Bernoulli(logits=t).entropy()
    h.backward()
    p, q = sigmoid(logit), sigmoid(-logit)
    expected = p * softplus(-logit) + q * softplus(logit)
    np.testing.assert_allclose(h.numpy(), expected, rtol=1e-5, atol=1e-44)
    np.testing.assert_allclose(t.grad, -logit * p * q, rtol=1e-5, atol=1e-44)


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
