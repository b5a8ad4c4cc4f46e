"""lgamma, digamma, polygamma and standard_gamma's implicit gradient against independent references: math.lgamma per
element, closed forms at the integers and half-integers (harmonic sums, ζ values), the recurrence and reflection
identities, a quantile found by bisection on an incomplete gamma function written out here and differentiated by
central differences; and against torch where it is installed."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minivae as mv
from minivae import ops
from minivae._backend import use_numba
from tests.strategies import rngs

EULER_GAMMA = 0.5772156649015329
ZETA3, ZETA5 = 1.2020569031595942, 1.0369277551433699  # ζ(3) = 1.20205690315959428540…, ζ(5) = 1.03692775514336992633…
REL = 1e-14  # float64: a few ulp (the measured worst, against 40-digit values, is 9·10⁻¹⁶ away from zeros)


def values(seed=0):
    """x across the domain: [0, 12] densely, around the zeros 1 and 2 of lgamma, every decade from 10⁻³⁰⁰ to 10³⁰⁰,
    and negative non-integers from −30 to 0 and down to −10¹⁰."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(0, 12, 3000), rng.uniform(0.95, 1.05, 500), rng.uniform(1.95, 2.05, 500),
                        10 ** rng.uniform(-300, 300, 1000), rng.uniform(-30, 0, 2000), -(10 ** rng.uniform(-8, 10, 500))])
    return x[(x > 0) | (x != np.round(x))]


def close(got, want, rtol=REL, atol=0.0):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    bad = ~(np.abs(got - want) <= atol + rtol * np.abs(want))
    assert not bad.any(), f"{bad.sum()} values off; first: got {got[bad][:3]}, want {want[bad][:3]}"


def zeta(k):
    """ζ(k), k ≥ 2: Σₙ₌₁⁹⁹⁹ n⁻ᵏ by math.fsum and Euler–Maclaurin's tail N¹⁻ᵏ/(k − 1) + N⁻ᵏ/2 + k·N⁻ᵏ⁻¹/12 from N = 1000
    (the next term, below 10⁻¹⁶ of it)."""
    n = 1000
    return math.fsum([m ** -float(k) for m in range(1, n)] + [n ** (1.0 - k) / (k - 1), 0.5 * n ** -float(k),
                                                              k * n ** (-k - 1.0) / 12])


def lgamma_near_one(t):
    """lgamma(1 + t) = −γt + Σₖ₌₂ (−1)ᵏ ζ(k) tᵏ/k for |t| ≤ 0.2, by math.fsum (math.lgamma, a Lanczos sum, is off
    by up to 2·10⁻¹⁰ relatively next to the zeros 1 and 2)."""
    return math.fsum([-EULER_GAMMA * t] + [(-1) ** k * ZETAS[k] * t ** k / k for k in range(2, 30)])


ZETAS = {k: zeta(k) for k in range(2, 30)}


@pytest.mark.filterwarnings("error")
def test_lgamma_in_float64_is_math_lgamma_to_a_few_ulp():
    """Relatively, also next to the zeros at 1 and 2 (there against lgamma_near_one, and lgamma(2 + t) =
    lgamma(1 + t) + log1p(t)); for x < 0 an absolute error of the reflection's terms, log(π/|sin πx|) and
    lgamma(1 − x), near the zeros there."""
    x = values()
    got = ops.lgamma(mv.tensor(x)).numpy()
    want = np.array([math.lgamma(v) for v in x])
    one, two = np.abs(x - 1) <= 0.2, np.abs(x - 2) <= 0.2
    want[one] = [lgamma_near_one(v - 1) for v in x[one]]
    want[two] = [lgamma_near_one(v - 2) + math.log1p(v - 2) for v in x[two]]
    pos = x > 0
    close(got[pos], want[pos])
    scale = np.array([abs(math.lgamma(1 - v)) + abs(math.log(math.pi / abs(math.sin(math.pi * v)))) + 1 for v in x[~pos]])
    assert (np.abs(got[~pos] - want[~pos]) <= 1e-14 * scale).all()


def test_digamma_and_polygamma_at_integers_and_half_integers_are_their_closed_forms():
    """ψ(n) = H_{n−1} − γ, ψ(n + ½) = −γ − 2 log 2 + Σₖ₌₁ⁿ 2/(2k − 1), ψ⁽¹⁾(n) = π²/6 − Σₖ<ₙ 1/k², ψ⁽ᵐ⁾(1) =
    (−1)ᵐ⁺¹ m! ζ(m + 1), each sum by math.fsum; n up to 3000 (the asymptotic branch from 10 on)."""
    n = np.arange(1, 3001)
    harmonic = np.array([math.fsum(1 / k for k in range(1, m)) for m in n])
    close(ops.digamma(mv.tensor(n.astype(np.float64))).numpy(), harmonic - EULER_GAMMA, atol=1e-16)
    half = np.array([math.fsum([-EULER_GAMMA, -2 * math.log(2)] + [2 / (2 * k - 1) for k in range(1, m + 1)]) for m in n[:200]])
    close(ops.digamma(mv.tensor(n[:200] + 0.5)).numpy(), half, atol=1e-16)
    squares = np.array([math.fsum([math.pi ** 2 / 6] + [-1 / k ** 2 for k in range(1, m)]) for m in n[:300]])
    close(ops.polygamma(1, mv.tensor(n[:300].astype(np.float64))).numpy(), squares, rtol=4e-14)  # (fsum's cancellation)
    zeta = {2: ZETA3, 4: ZETA5, **{m: math.fsum(k ** -(m + 1.0) for k in range(1, 3000)) for m in (6, 7, 9, 12)}}
    for m, z in zeta.items():
        close(ops.polygamma(m, mv.tensor(np.array(1.0))).numpy(), (-1) ** (m + 1) * math.factorial(m) * z)
    close(ops.polygamma(0, mv.tensor(np.array(1.0))).numpy(), -EULER_GAMMA)  # n = 0: digamma


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("n", [0, 1, 2, 3, 6])
def test_recurrence_and_reflection_hold(n):
    """ψ⁽ⁿ⁾(x + 1) − ψ⁽ⁿ⁾(x) = (−1)ⁿ n!/xⁿ⁺¹ at x > 0 and x < 0, and ψ(1 − x) − ψ(x) = π cot πx: a wrong sign in
    a recurrence or the reflection breaks one of them."""
    rng = np.random.default_rng(n)
    x = np.concatenate([rng.uniform(0.05, 25, 500), rng.uniform(-25, -0.05, 500)])
    x = x[np.abs(x - np.round(x)) > 0.05]
    f = (lambda v: ops.polygamma(n, mv.tensor(v)).numpy())
    step = (-1) ** n * math.factorial(n) / x ** (n + 1)
    lhs = f(x + 1) - f(x)
    scale = np.abs(f(x + 1)) + np.abs(f(x)) + np.abs(step)
    assert (np.abs(lhs - step) <= 1e-14 * scale).all()
    if n == 0:
        lhs = f(1 - x) - f(x)
        want = math.pi / np.tan(math.pi * x)
        assert (np.abs(lhs - want) <= 1e-13 * (np.abs(f(1 - x)) + np.abs(f(x)) + np.abs(want))).all()


@pytest.mark.filterwarnings("error")
def test_poles_and_infinities_are_torch_s():
    """lgamma +∞ at 0, −0, the negative integers and ±∞; ψ(±0) = ∓∞, NaN at negative integers and −∞, ∞ at ∞;
    ψ⁽ⁿ⁾ (−1)ⁿ⁺¹·∞ at the poles, (−1)ⁿ⁺¹·0 at ∞, NaN at −∞; NaN stays NaN. (Values read from torch 2.13.)"""
    x = np.array([0.0, -0.0, -1.0, -2.0, -1e20, -np.inf, np.inf, np.nan])
    inf, nan = np.inf, np.nan
    np.testing.assert_array_equal(ops.lgamma(mv.tensor(x)).numpy(), [inf, inf, inf, inf, inf, inf, inf, nan])
    np.testing.assert_array_equal(ops.digamma(mv.tensor(x)).numpy(), [-inf, inf, nan, nan, nan, nan, inf, nan])
    np.testing.assert_array_equal(ops.polygamma(1, mv.tensor(x)).numpy(), [inf, inf, inf, inf, inf, nan, 0, nan])
    p2 = ops.polygamma(2, mv.tensor(x)).numpy()
    np.testing.assert_array_equal(p2, [-inf, -inf, -inf, -inf, -inf, nan, 0, nan])
    assert np.signbit(p2[6])  # −0 at ∞ for even n
    assert ops.lgamma(mv.tensor(np.array(5e-324))).item() == pytest.approx(744.4400719213812, rel=1e-15)  # the smallest subnormal


def test_torch_values_and_gradients():
    torch = pytest.importorskip("torch")
    x = values(1)
    x = x[np.abs(x) < 1e6]
    t = torch.tensor(x, requires_grad=True)
    # (value, gradient) tolerances: torch's trigamma is a short asymptotic series, ~2·10⁻⁹ relative
    for name, ours, theirs, tol, grad_tol in [
            ("lgamma", ops.lgamma, torch.lgamma, 1e-13, 1e-12), ("digamma", ops.digamma, torch.digamma, 1e-12, 1e-8),
            ("trigamma", lambda v: ops.polygamma(1, v), lambda v: torch.polygamma(1, v), 1e-8, 1e-11),
            ("polygamma 3", lambda v: ops.polygamma(3, v), lambda v: torch.polygamma(3, v), 1e-11, 1e-11)]:
        m = mv.tensor(x, requires_grad=True)
        y = ours(m)
        want = theirs(t)
        g = np.linspace(0.5, 1.5, x.size)
        y.backward(mv.tensor(g))
        (grad,) = torch.autograd.grad(want, t, torch.tensor(g))
        # absolute near zeros (torch's own error, e.g. lgamma beside its negative zeros, is ~10⁻¹³ there)
        np.testing.assert_allclose(y.numpy(), want.detach().numpy(), rtol=tol, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(m.grad, grad.numpy(), rtol=grad_tol, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_lower_precision_is_float64_rounded_once(dtype):
    x = np.random.default_rng(2).uniform(-6, 10, 500).astype(dtype)
    for fn in (ops.lgamma, ops.digamma, lambda v: ops.polygamma(2, v)):
        got = fn(mv.tensor(x))
        assert got.dtype == dtype
        np.testing.assert_array_equal(got.numpy(), fn(mv.tensor(x.astype(np.float64))).numpy().astype(dtype))


def test_integers_are_float32_and_the_gradient_is_the_next_function():
    assert ops.lgamma(mv.tensor([1, 2, 3])).dtype == np.float32
    x = mv.tensor(np.array([0.3, 1.7, -2.5, 7.0]), requires_grad=True)
    for fn, next_fn in [(ops.lgamma, ops.digamma), (ops.digamma, lambda v: ops.polygamma(1, v)),
                        (lambda v: ops.polygamma(2, v), lambda v: ops.polygamma(3, v))]:
        x.grad = None
        g = np.array([0.5, -1.0, 2.0, 1.5])
        fn(x).backward(mv.tensor(g))
        np.testing.assert_array_equal(x.grad, g * next_fn(mv.tensor(x.data)).numpy())


def test_tensor_methods_and_bad_orders():
    x = mv.tensor(np.array([0.5, 2.5]))
    np.testing.assert_array_equal(x.lgamma().numpy(), ops.lgamma(x).numpy())
    np.testing.assert_array_equal(x.digamma().numpy(), ops.digamma(x).numpy())
    np.testing.assert_array_equal(x.polygamma(2).numpy(), ops.polygamma(2, x).numpy())
    with pytest.raises(ValueError, match="n must be >= 0"):
        ops.polygamma(-1, x)
    with pytest.raises(TypeError, match="n must be an integer"):
        ops.polygamma(1.5, x)


# ---- standard_gamma: the implicit reparameterization gradient ----------------------------------------------------
def gammainc_reference(a, z):
    """P(a, z), the regularized lower incomplete gamma function, for float64 arrays a > 0, z > 0 of one shape: the
    series e^{−z} z^a/Γ(a + 1)·Σₖ zᵏ/((a + 1)…(a + k)) below z = a + 1, 1 − Legendre's continued fraction (Numerical
    Recipes' gcf) above, lgamma per element by math.lgamma. (The value only: no derivative in a.)"""
    a, z = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(z, np.float64))
    lg = np.vectorize(math.lgamma, otypes=[np.float64])
    series = z < a + 1 + 5 * np.sqrt(a)  # (not the op's branch point: the series also serves a little above a + 1)
    zs = np.where(series, z, 0.5 * np.minimum(a, 1))  # (each branch's other values where it converges at once)
    term = total = np.ones_like(zs)
    for k in range(1, 20000):
        term = term * zs / (a + k)
        total = total + term
        if (term < 1e-18 * total).all():
            break
    p_series = np.exp(a * np.log(zs) - zs - lg(a + 1)) * total
    zf = np.where(series, 3 * a + 20, z)
    b = zf + 1 - a
    c, d = np.full_like(zf, 1e300), 1 / b
    h = d
    for i in range(1, 20000):
        an = -i * (i - a)
        b = b + 2
        d = 1 / (an * d + b)
        c = b + an / c
        h = h * d * c
        if (np.abs(d * c - 1) < 1e-18).all():
            break
    q = np.exp(a * np.log(zf) - zf - lg(a)) * h
    return np.where(series, p_series, 1 - q)


def quantile_by_bisection(a, u, steps=64, newton=0):
    """The z with P(a, z) = u, by bisection on log z over [e⁻⁷⁴⁵, a + 50√a + 50] (vectorized; 64 halvings of a
    bracket ~750 wide leave it below 10⁻¹⁶ relative in z); then ``newton`` steps z ← z − (P(a, z) − u)/p(z) with the
    density p(z) = z^{a−1}e^{−z}/Γ(a) (fewer halvings then suffice)."""
    a, u = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(u, np.float64))
    lo, hi = np.full(a.shape, -745.0), np.log(a + 50 * np.sqrt(a) + 50)
    for _ in range(steps):
        mid = (lo + hi) / 2
        below = gammainc_reference(a, np.exp(mid)) < u
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    z = np.exp((lo + hi) / 2)
    lg = np.vectorize(math.lgamma, otypes=[np.float64])(a)
    for _ in range(newton):
        z = z - (gammainc_reference(a, z) - u) / np.exp((a - 1) * np.log(z) - z - lg)
    return z


def implicit_gradient(a, z):
    """standard_gamma's ∂z/∂α at draws z, through the op's VJP (ḡ = 1): the array formula's (Numba off, the
    specification), which the Numba loops (minivae/_cpu/gamma.py, each element stopped at its own convergence, where the
    formula sums all to the slowest's) must give to 10⁻¹² relatively."""
    grads = []
    for numba in (False, True):
        with use_numba(numba):
            alpha = mv.tensor(np.asarray(a, np.float64), requires_grad=True)
            ops.standard_gamma(alpha, np.asarray(z, np.float64)).backward(mv.tensor(np.ones(np.shape(z))))
            grads.append(alpha.grad)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12, atol=1e-300)
    return grads[0]


def test_the_reference_incomplete_gamma_function_is_right():
    """P(1, z) = 1 − e^{−z}, P(½, z) = erf √z, P(3, z) = 1 − e^{−z}(1 + z + z²/2): both branches."""
    z = np.array([1e-8, 0.1, 0.7, 1.4, 2.9, 8.0, 30.0])
    close(gammainc_reference(np.ones_like(z), z), -np.expm1(-z), rtol=1e-14)
    close(gammainc_reference(np.full_like(z, 0.5), z), [math.erf(math.sqrt(v)) for v in z], rtol=1e-14)
    z = z[3:]  # (1 − e^{−z}(1 + z + z²/2) cancels for a small z)
    close(gammainc_reference(np.full_like(z, 3.0), z), 1 - np.exp(-z) * (1 + z + z * z / 2), rtol=1e-13)


@pytest.mark.filterwarnings("error")
def test_implicit_gradient_is_the_quantile_s_derivative_by_central_differences():
    """For fixed u, z(α) = F⁻¹(u; α) by bisection (F written out above), dz/dα ≈ z·(log z(α + h) − log z(α − h))/(2h),
    h = 10⁻⁴·α (log z is nearly linear in α where z is tiny: log z ≈ log(u·Γ(α + 1))/α; a smaller h would magnify
    the reference's rounding, e^{a log z − z − lgamma(a + 1)} off by 10⁻¹² relatively at α = 1000); concentrations
    10⁻³ … 10³, u from 10⁻³ to 0.999 (both branches of the op's formula)."""
    alpha = np.array([1e-3, 0.02, 0.3, 1.0, 2.5, 17.0, 150.0, 1000.0])[:, None]
    u = np.array([1e-3, 0.1, 0.5, 0.9, 0.999])[None, :]
    a, u = np.broadcast_arrays(alpha, u)
    z = quantile_by_bisection(a, u)
    h = 1e-4 * a
    numeric = z * (np.log(quantile_by_bisection(a + h, u)) - np.log(quantile_by_bisection(a - h, u))) / (2 * h)
    got = implicit_gradient(a, z)
    assert np.isfinite(got).all()
    close(got, numeric, rtol=1e-7, atol=1e-300)


def test_implicit_gradient_is_torch_s_to_its_accuracy():
    """torch's _standard_gamma_grad is an approximation (rational fits and an asymptotic series, ~10⁻⁴ relative):
    agreement to 2·10⁻³ over 10⁻³ … 10⁴ on torch's own draws, which also checks that none is NaN or infinite."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for a in [1e-3, 0.05, 0.7, 1.0, 4.0, 60.0, 1e3, 1e4]:
        al = torch.full((400,), a, dtype=torch.float64)
        z = torch._standard_gamma(al).clamp(min=torch.finfo(torch.float64).tiny)
        got = implicit_gradient(al.numpy(), z.numpy())
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, torch._standard_gamma_grad(al, z).numpy(), rtol=2e-3, err_msg=str(a))


def normal_limit(a, eps):
    """dz/dα at z = α + ε√α for a large α, from the Cornish–Fisher expansion of the Gamma(α, 1) quantile (cumulants
    κₙ = (n − 1)!·α, so γ₁ = 2/√α, γ₂ = 6/α): z = α + t√α + (t² − 1)/3 + (t³ − 7t)/(36√α) + O(1/α), t the normal
    quantile of u. At fixed u (fixed t) dz/dα = 1 + t/(2√α) − (t³ − 7t)/(72α^{3/2}) + O(α⁻²); inverting
    ε = t + (t² − 1)/(3√α) + (t³ − 7t)/(36α) gives t = ε − (ε² − 1)/(3√α) + (7ε³ − ε)/(36α) + O(α^{−3/2}), so
        dz/dα = 1 + ε/(2√α) − (ε² − 1)/(6α) + (ε³ + ε)/(12α^{3/2}) + O(α⁻²)."""
    r = np.sqrt(a)
    return 1 + eps / (2 * r) - (eps * eps - 1) / (6 * a) + (eps ** 3 + eps) / (12 * a * r)


@pytest.mark.filterwarnings("error")
def test_implicit_gradient_at_large_alpha_is_the_normal_limit():
    """α from 10⁶ to 10¹² (where the series needed more than its 4000 terms and gave 0.381 for 0.99995 at α = 10⁸,
    ε = −1), z = α + ε√α across ±8 standard deviations: within (1 + ε⁴)·α⁻² (the expansion's next order, a polynomial
    of degree 4 in ε) and 4 ulp of ``normal_limit``; the formula and Numba alike (``implicit_gradient``)."""
    eps = np.linspace(-8, 8, 33)
    for a in [1e6, 1e8, 1e10, 1e12]:
        z = a + np.sqrt(a) * eps
        got = implicit_gradient(np.full_like(z, a), z)
        want = normal_limit(a, eps)
        assert (np.abs(got - want) <= (1 + eps ** 4) / a ** 2 + 4 * 2.0 ** -52).all(), (a, got - want)


# dz/dα at (α, z) from 50-digit mpmath, −(∂P/∂α)/f below z = α and (∂Q/∂α)/f above (mpmath.gammainc differentiated by
# mpmath.diff), pinned: python benchmarks/gamma_accuracy.py --pin 1e3 1e6 1e8 1e10 1e12 (mpmath 1.3.0, 2026-11-30)
MPMATH_LARGE_ALPHA = [
    (1000.0, 841.886116991581, 0.91656462009638890504),
    (1000.0, 968.3772233983162, 0.98418327241314812226),
    (1000.0, 1000.0, 1.000166683323805956),
    (1000.0, 1047.4341649025257, 1.023521294657561699),
    (1000.0, 1158.113883008419, 1.0753704792038340452),
    (1000.0, 500.0, 0.69326089321243291194),
    (1000.0, 740.0, 0.85713383154375766525),
    (1000.0, 760.0, 0.86919450277259956517),
    (1000.0, 1240.0, 1.1115937646452610358),
    (1000.0, 1260.0, 1.1201893115728944668),
    (1000.0, 2000.0, 1.3865218019984518717),
    (1000000.0, 995000.0, 0.99749598913449328714),
    (1000000.0, 999000.0, 0.99949999983326659995),
    (1000000.0, 1000000.0, 1.0000001666666833333),
    (1000000.0, 1001500.0, 1.0007497920726055424),
    (1000000.0, 1005000.0, 1.0024960108013726233),
    (1000000.0, 500000.0, 0.69314729426559121107),
    (1000000.0, 740000.0, 0.85699156032511931684),
    (1000000.0, 760000.0, 0.86905015586793635516),
    (100000000.0, 50000000.0, 0.69314718169700169892),
    (100000000.0, 74000000.0, 0.85699141934748559215),
    (100000000.0, 76000000.0, 0.86905001283369774764),
    (10000000000.0, 5000000000.0, 0.69314718057131587331),
    (10000000000.0, 7400000000.0, 0.8569914179377093736),
    (10000000000.0, 7600000000.0, 0.86905001140335548408),
    (1000000000000.0, 500000000000.0, 0.69314718056005901506),
    (1000000000000.0, 740000000000.0, 0.85699141792361161143),
    (1000000000000.0, 760000000000.0, 0.86905001138905206146),
]


def test_implicit_gradient_at_large_alpha_is_mpmath_s():
    """Against the pinned 50-digit values: the bulk (z = α + ε√α, ε = −5 … 5) and both sides of Temme's band
    (z/α = 0.74, 0.76, 1.24, 1.26; 0.5, 2). Inside the band to 4 ulp; outside, to 2ε·(8 + |log z|/|log λ|), λ = z/α:
    there the series' log z − ψ(α + 1) ≈ log λ cancels, an ulp of log z becoming |log z|/|log λ| ulp of the
    difference (3·10⁻¹⁴ at α = 10¹⁰, λ = 0.74; measured 1.2·10⁻¹⁴)."""
    from minivae.ops.gamma import TEMME_WIDTH
    a, z, want = np.array(MPMATH_LARGE_ALPHA).T
    lam = z / a
    band = (a >= 1e3) & (np.abs(lam - 1) < TEMME_WIDTH)
    log_lam = np.where(band, 1.0, np.abs(np.log(lam)))
    rtol = np.where(band, 4 * 2.0 ** -52, 2 * 2.0 ** -52 * (8 + np.abs(np.log(z)) / log_lam))
    got = implicit_gradient(a, z)
    assert (np.abs(got - want) <= rtol * want).all(), np.abs(got / want - 1) / rtol


def test_implicit_gradient_by_temme_is_the_series_and_fraction_where_they_converge():
    """Temme's expansion (ops/gamma.py temme_gradient) against the series and the continued fraction (``_branches``,
    converged in fewer than 4000 terms up to α = 10⁵) at every z/α across its band, α = 10³ (its first α), 3·10³,
    10⁴, 10⁵: to 2·10⁻¹³, the series' and fraction's own accuracy next to z = α (~9√α terms, each rounded; measured
    1.0·10⁻¹³ at α = 10⁵). A term of S in 1/α wrong or left out moves it by ≥ 10⁻¹² at α = 10³."""
    from minivae.ops import gamma as g
    ratio = np.linspace(1 - g.TEMME_WIDTH, 1 + g.TEMME_WIDTH, 41)[1:-1]
    for a in [1e3, 3e3, 1e4, 1e5]:
        alpha, z = np.full_like(ratio, a), a * ratio
        with np.errstate(all="ignore"):
            series, s, ds, c, dc = g._branches(np, alpha, z)
            log_z = np.log(z)
            low = -(z / a) * (s * (log_z - g.digamma_positive(np, alpha + 1)) + ds)
            high = z * (c * (log_z - g.digamma_positive(np, alpha)) + dc)
        close(g.temme_gradient(np, alpha, z), np.where(series, low, high), rtol=2e-13)


@pytest.mark.filterwarnings("error")
def test_implicit_gradient_is_continuous_across_the_switch_to_temme():
    """At α = 10³ and the largest double below it, and at z/α = 1 ± TEMME_WIDTH and the doubles either side (the
    series or the fraction on one side, Temme's expansion on the other): equal to 2·10⁻¹³ relatively (dz/dα moves by
    10⁻¹⁶ relatively over those steps)."""
    from minivae.ops import gamma as g
    a = g.TEMME_FROM
    below = np.nextafter(a, 0)
    z = a * np.linspace(0.8, 1.2, 9)
    close(implicit_gradient(np.full_like(z, below), z), implicit_gradient(np.full_like(z, a), z), rtol=2e-13)
    for alpha in [1e3, 1e6, 1e12]:
        for edge in [1 - g.TEMME_WIDTH, 1 + g.TEMME_WIDTH]:
            z = alpha * edge
            either = np.array([np.nextafter(z, 0), z, np.nextafter(z, np.inf)])
            got = implicit_gradient(np.full(3, alpha), either)
            close(got, np.full(3, got[1]), rtol=2e-13)


@pytest.mark.filterwarnings("error")
def test_implicit_gradient_in_the_tails_of_a_large_alpha():
    """z = λα with λ fixed away from 1 (the series and the fraction, which converge there in ~40/|λ − 1| terms
    whatever α): the tail's leading term P ≈ e^L/(1 − λ) below α (Q ≈ e^{L'}/(z − α) above), L = α log z − z −
    lgamma(α + 1) (L' with lgamma α), held fixed gives dz/dα = −∂L/∂α / ∂L/∂z → λ log λ/(λ − 1), as ∂L/∂α =
    log z − ψ(α + 1) → log λ and ∂L/∂z = α/z − 1. The next order, from ψ(α) = log α − 1/(2α) + … and the prefactor's
    log|z − α| (∂/∂α and ∂/∂z of it 1/(α|λ − 1|)): relatively (1/α)·((1 + 2/|λ − 1|)/|log λ| + 2λ/(λ − 1)²) at most,
    and 10⁻¹² for the roundings; α 10⁶ … 10³⁰⁰, λ from 10⁻³⁰ to 10⁶."""
    lam = np.array([1e-30, 1e-3, 0.3, 0.7, 1.3, 2.0, 10.0, 1e6])
    want = lam * np.log(lam) / (lam - 1)
    log_lam = np.abs(np.log(lam))
    for a in [1e6, 1e9, 1e12, 1e20, 1e30, 1e300]:
        got = implicit_gradient(np.full_like(lam, a), a * lam)
        bound = ((1 + 2 / np.abs(lam - 1)) / log_lam + 2 * lam / (lam - 1) ** 2) / a + 1e-12
        assert (np.abs(got - want) <= bound * want).all(), (a, got / want - 1)


def test_standard_gamma_in_float32_at_alpha_1e30_is_finite():
    """float32 α = 10³⁰ (draws by the sampler, and z across the bulk and both tails of float32's range): the gradient
    is finite, and the float64 one rounded once (in the band, 1 + ε/(2√α) rounds to 1)."""
    from minivae.distributions import Gamma
    alpha = mv.tensor(np.full(64, 1e30, np.float32), requires_grad=True)
    Gamma(alpha, mv.tensor(np.float32(1.0))).rsample(rng=mv.random.Generator(3)).sum().backward()
    assert alpha.grad.dtype == np.float32 and np.isfinite(alpha.grad).all()
    np.testing.assert_allclose(alpha.grad, 1.0, rtol=1e-6)
    z = np.array([1e-30, 1e20, 7.5e29, 1e30, 1.3e30, 1e38], np.float32)
    alpha = mv.tensor(np.full(6, 1e30, np.float32), requires_grad=True)
    ops.standard_gamma(alpha, z).backward(mv.tensor(np.ones(6, np.float32)))
    want = implicit_gradient(np.full(6, np.float64(np.float32(1e30))), z.astype(np.float64)).astype(np.float32)
    assert np.isfinite(alpha.grad).all()
    np.testing.assert_allclose(alpha.grad, want, rtol=2e-7)


def test_standard_gamma_returns_the_draw_broadcast_and_sums_the_gradient_to_alpha_s_shape():
    alpha = mv.tensor(np.array([2.0], dtype=np.float32), requires_grad=True)
    z = np.array([[0.5, 1.5], [2.5, 3.5]])
    y = ops.standard_gamma(alpha, z)
    assert y.dtype == np.float64 and y.shape == (2, 2)
    np.testing.assert_array_equal(y.numpy(), z)
    y.backward(mv.tensor(np.ones((2, 2))))
    assert alpha.grad.dtype == np.float32 and alpha.grad.shape == (1,)
    np.testing.assert_allclose(alpha.grad, implicit_gradient(np.full(4, 2.0), z.ravel()).sum(), rtol=1e-6)
    zero = mv.tensor(np.array([1.0]), requires_grad=True)
    ops.standard_gamma(zero, np.array([0.0])).backward()
    assert zero.grad[0] == 0  # a draw of 0 (clamped away by the samplers) has no gradient, not NaN


@given(rng=rngs, shape=st.sampled_from([(), (2,)]))
def test_standard_gamma_gradchecks_against_its_quantile(rng, shape):
    """gradcheck of fn(α) = standard_gamma(α, z(α)), z(α) the u-quantile of Gamma(α, 1) for fixed u (bisection and
    Newton's steps on gammainc_reference): its central differences are dz/dα at fixed u, which the op's implicit VJP
    must give (a draw held fixed would give 0); α in (0.3, 20), u in (0.05, 0.95). eps 10⁻⁵: the reference's rounding
    (~10⁻¹⁵ of z) stays far below eps·dz/dα. (Not among tests/test_ops_gradcheck.py's DOMAINS: z is computed outside
    the graph, which tests/test_plan.py's replay of every domain would hold fixed.)"""
    alpha, u = rng.uniform(0.3, 20, shape), rng.uniform(0.05, 0.95, shape)
    assert mv.gradcheck(lambda a: ops.standard_gamma(a, quantile_by_bisection(a.data, u, steps=20, newton=4)), [alpha],
                        eps=1e-5)


def test_standard_gamma_replays_in_a_compiled_step_as_it_ran():
    """A loss of standard_gamma(α, fixed draws) trained by SGD: two replays of the recorded step give α of two more
    eager steps, bit for bit (the VJP's loops stop by the data, and must not keep state between calls)."""
    from minivae.optim import SGD
    from tests.test_plan import three_steps
    z = np.array([0.3, 2.0, 7.5, 40.0])
    w = np.array([0.5, -1.0, 2.0, 1.5])

    def run(replayed):
        alpha = mv.tensor(np.array([0.7, 2.0, 5.0, 30.0]), requires_grad=True)
        opt = SGD([alpha], lr=1e-2)

        def loss_fn(_):
            return (ops.standard_gamma(alpha, z) * w).sum()
        three_steps(opt, loss_fn, replayed)
        return alpha.numpy()
    eager = run(False)
    assert (eager != np.array([0.7, 2.0, 5.0, 30.0])).all()
    np.testing.assert_array_equal(run(True), eager)


# ---- gammainc, gammaincc and Gamma.cdf ------------------------------------------------------------------------------
def incomplete(a, x, complement=False):
    """ops.gammainc (or gammaincc) of float64 arrays, and its (ᾱ, x̄) for ḡ = 1."""
    ta, tx = mv.tensor(np.asarray(a, np.float64), requires_grad=True), mv.tensor(np.asarray(x, np.float64), requires_grad=True)
    y = (ops.gammaincc if complement else ops.gammainc)(ta, tx)
    y.backward(mv.tensor(np.ones(y.shape)))
    return y.numpy(), ta.grad, tx.grad


def incomplete_tolerance(a, x):
    """The error bound of P and Q, each relative to itself: 32·ε·s, s = |α log x| + x + |lgamma α| + |lgamma(α + 1)| + 1,
    the magnitude of the exponent α log x − x − lgamma(…) that both branches take e^… of, whose rounding is the error
    (the measured worst against 40-digit mpmath is 18·ε·s, at α = 0.49 on the fraction's side of x = α + 1)."""
    lg = np.vectorize(math.lgamma, otypes=[np.float64])
    return 32 * 2.0 ** -52 * (np.abs(a * np.log(x)) + x + np.abs(lg(a)) + np.abs(lg(a + 1)) + 1)


def test_gammainc_at_closed_forms_each_of_p_and_q_to_its_own_relative_accuracy():
    """P(1, x) = 1 − e^{−x}, Q(1, x) = e^{−x}; P(½, x) = erf √x, Q(½, x) = erfc √x (math's, relatively accurate in the
    tail); x̄ of P(1, ·) is e^{−x}: each of P and Q relatively accurate where it is small (Q is not taken as 1 − P)."""
    x = np.array([1e-9, 1e-3, 0.3, 0.99, 1.0, 1.5, 2.0, 7.0, 40.0, 300.0])
    for a, p, q in [(1.0, -np.expm1(-x), np.exp(-x)),
                    (0.5, [math.erf(math.sqrt(v)) for v in x], [math.erfc(math.sqrt(v)) for v in x])]:
        got_p, _, gx = incomplete(np.full_like(x, a), x)
        got_q = incomplete(np.full_like(x, a), x, complement=True)[0]
        tol = incomplete_tolerance(a, x)
        for got, want in [(got_p, p), (got_q, q)] + ([(gx, np.exp(-x))] if a == 1.0 else []):
            assert (np.abs(got - want) <= tol * np.abs(want)).all(), (a, got, want)


def test_gammainc_matches_mpmath_across_alpha_and_both_branches():
    """Against 40-digit mpmath: P and Q each within ``incomplete_tolerance`` of itself; ∂P/∂α (by mpmath's numerical derivative)
    and x̄ = x^{α−1}e^{−x}/Γ(α) within 10⁻¹¹ relatively where |∂P/∂α| > 10⁻³⁰ (deeper in the tail the fraction's two
    terms of ∂P/∂α cancel; measured 4·10⁻⁸ at ∂P/∂α ≈ 5·10⁻⁴⁴). α from 10⁻³ to 10³, x from 10⁻³·α to 5·(α + 1):
    the small-α formula of Q (α < 1 < x < α + 1, where 1 − P lost 10⁻¹² of Q at α = 10⁻³) among them, and elements
    that converge at different terms in one array (each frozen at its own: run on, the fraction lost 2·10⁻¹³)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    for a in [1e-3, 0.01, 0.1, 0.3, 0.49, 0.5, 0.7, 1.0, 2.5, 10.0, 100.0, 1e3]:
        x = np.array([f * base for f in [1e-3, 0.1, 0.5, 0.9, 1.0, 1.01, 1.1, 1.5, 2.0, 5.0] for base in (a, a + 1)])
        p, ga, gx = incomplete(np.full_like(x, a), x)
        q = incomplete(np.full_like(x, a), x, complement=True)[0]
        tol = incomplete_tolerance(a, x)
        for k, v in enumerate(x):
            want_p = mpmath.gammainc(a, 0, v, regularized=True)
            want_q = mpmath.gammainc(a, v, mpmath.inf, regularized=True)
            for got, want in [(p[k], want_p), (q[k], want_q)]:
                assert abs(got - float(want)) <= tol[k] * float(want), (a, v, got, want)
            want_ga = float(mpmath.diff(lambda s, v=v: mpmath.gammainc(s, 0, v, regularized=True), a))
            if abs(want_ga) > 1e-30:
                assert abs(ga[k] - want_ga) <= 1e-11 * abs(want_ga), (a, v, ga[k], want_ga)
            want_gx = float(mpmath.exp((a - 1) * mpmath.log(v) - v - mpmath.loggamma(a)))
            assert abs(gx[k] - want_gx) <= 1e-11 * want_gx, (a, v, gx[k], want_gx)
            assert incomplete(a, v, complement=True)[1] == -ga[k]  # Q's gradients are P's negated


def test_gammainc_limits_are_torchs_and_its_gradient_limits_are_the_functions():
    """P(α, 0) = 0, P(α, ∞) = 1, P(0, x) = 1, P(∞, x) = 0 and NaN outside the domain, as torch.special.gammainc (written
    out here); x̄ is the limit of the density (1 at x = 0 for α = 1, ∞ for α < 1, 0 where P is constant) where torch
    gives NaN at some; ᾱ is 0 at every limit."""
    inf, nan = math.inf, math.nan
    a = np.array([1.0, 0.5, 2.0, 0.0, inf, 1.0, -1.0, 1.0, nan, 0.0, inf])
    x = np.array([0.0, 0.0, 0.0, 1.0, 1.0, inf, 1.0, -1.0, 1.0, 0.0, inf])
    p, ga, gx = incomplete(a, x)
    q = incomplete(a, x, complement=True)[0]
    np.testing.assert_array_equal(p, [0, 0, 0, 1, 0, 1, nan, nan, nan, nan, nan])
    np.testing.assert_array_equal(q, [1, 1, 1, 0, 1, 0, nan, nan, nan, nan, nan])
    np.testing.assert_array_equal(gx, [1, inf, 0, 0, 0, 0, nan, nan, nan, nan, nan])
    np.testing.assert_array_equal(ga, [0, 0, 0, 0, 0, 0, nan, nan, nan, nan, nan])
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(p, torch.special.gammainc(torch.tensor(a), torch.tensor(x)).numpy())
    np.testing.assert_array_equal(q, torch.special.gammaincc(torch.tensor(a), torch.tensor(x)).numpy())


def test_gamma_cdf_is_torchs_and_its_derivative_is_the_density():
    """Gamma(α, β).cdf(x) = P(α, βx), 0 below 0; d/dx of it is exp(log_prob) (torch's values; the derivative, in
    float64, against the density, an independent formula)."""
    from minivae.distributions import Gamma
    alpha, rate = np.array([0.5, 2.0, 30.0]), np.array([1.5, 0.7, 2.0])
    value = np.array([[0.3], [-1.0], [20.0], [0.0]])
    d = Gamma(mv.tensor(alpha), mv.tensor(rate))
    v = mv.tensor(np.broadcast_to(value, (4, 3)).copy(), requires_grad=True)
    cdf = d.cdf(v)
    cdf.sum().backward()
    inside = (value > 0).ravel()
    np.testing.assert_allclose(v.grad[inside], np.exp(d.log_prob(mv.tensor(v.data[inside])).numpy()), rtol=1e-13)
    np.testing.assert_array_equal(cdf.numpy()[~inside], 0.0)
    torch = pytest.importorskip("torch")
    want = torch.distributions.Gamma(torch.tensor(alpha), torch.tensor(rate)).cdf(torch.tensor(np.maximum(value, 0.0)))
    np.testing.assert_allclose(cdf.numpy(), want.numpy(), rtol=1e-13, atol=0)


def test_gammainc_is_float64_rounded_once_and_on_the_device_no_copy_but_the_convergence_checks():
    """float32 operands give float32 P, float64's rounded once; on the "cuda" stand-in the same bits, and the only copies
    to the host are the series' and fraction's convergence checks (bool, documented: there is no fused kernel yet)."""
    from tests.strict_array import emulating, record
    a, x = np.array([0.3, 2.0, 9.0], np.float32), np.array([1.2, 0.5, 11.0], np.float32)
    want = ops.gammainc(mv.tensor(a.astype(np.float64)), mv.tensor(x.astype(np.float64))).numpy().astype(np.float32)
    np.testing.assert_array_equal(ops.gammainc(mv.tensor(a), mv.tensor(x)).numpy(), want)
    with emulating(), record() as log:
        got = ops.gammainc(mv.tensor(a, device="cuda"), mv.tensor(x, device="cuda"))
        assert got.device == "cuda"
    assert log and {kind for kind, *_ in log} == {"bool"}, log
    np.testing.assert_array_equal(got.data.get(), want)
