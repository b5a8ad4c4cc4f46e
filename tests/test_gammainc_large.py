"""ops.gammainc / gammaincc at large α (Temme's expansion in 10³ ≤ α, |x/α − 1| < ¼; the series and the continued fraction
with x^α e^{−x}/Γ(α) as e^{−αh}·√(α/2π)/Γ*(α) elsewhere from α = 10 on), against references that need neither scipy nor
mpmath: at an integer α = n the Poisson sums P(n, x) = Σ_{k≥n} e^{−x}xᵏ/k!, Q(n, x) = Σ_{k<n} e^{−x}xᵏ/k! in 34-digit
decimal arithmetic (x̄ is the term k = n − 1, ∂P/∂α a 7-point central difference of log P over the integers n − 3 … n + 3);
at any α the recurrence P(α, x) − P(α + 1, x) = x^α e^{−x}/Γ(α + 1) and a central difference of the op's own P in
float64; the branches against each other where they meet. Tolerances are relative to the value and scale with
E = α·(λ − 1 − log λ), λ = x/α, −log of x^α e^{−x}/(α^α e^{−α}): x's own rounding moves the value by ε·α|λ − 1|
relatively (≥ ε·E for λ > 0.21), and the formulas' exponent, of size E, is rounded to a few ε of itself."""
import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest

import minivae as mv
from minivae.ops import gamma as G
from tests.test_ops_gamma import gammainc_reference, incomplete

EPS = 2.0 ** -52
PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")
B2K = [Fraction(1, 6), Fraction(-1, 30), Fraction(1, 42), Fraction(-1, 30), Fraction(5, 66), Fraction(-691, 2730),
       Fraction(7, 6)]  # B₂ … B₁₄
DIGITS = 34
STENCIL = [-1, 9, -45, 0, 45, -9, 1]  # f'(0) ≈ Σⱼ cⱼ f(j − 3)/60, error f⁽⁷⁾/140
NORMAL = 1e-290  # values compared where they are at least this (far from the subnormals)


def log_gamma(a):
    """lgamma(a) of a Decimal a ≥ 100 by Stirling's series to B₁₄ (the next term below a⁻¹⁵), in the current context."""
    out = (a - Decimal("0.5")) * a.ln() - a + (2 * PI).ln() / 2
    for j, b in enumerate(B2K, start=1):
        out += Decimal(b.numerator) / Decimal(b.denominator) / (2 * j * (2 * j - 1)) / a ** (2 * j - 1)
    return out


def poisson(k, x):
    """e^{−x}xᵏ/k! of Decimals, k ≥ 99."""
    return (k * x.ln() - x - log_gamma(Decimal(k + 1))).exp()


def poisson_sums(n, x, reach=3, stop=Decimal("1e-28")):
    """{m: (P(m, x), Q(m, x))} for the integers m = n − reach … n + reach (≥ 100), in DIGITS-digit decimal: the smaller
    side summed from its end, term by term (πₖ₊₁ = πₖ·x/(k + 1)), until a term falls below ``stop`` of the sum (the
    terms fall at least as fast as e^{−j²/(2x)}: ~12√x of them next to x = n), the other side 1 minus it."""
    with localcontext() as ctx:
        ctx.prec = DIGITS
        x = Decimal(float(x))
        lo, hi = n - reach, n + reach
        upper = x < n  # P the smaller: Σ_{k ≥ hi} upward, then the terms below hi added one by one
        k = hi if upper else lo - 1
        first = term = total = poisson(k, x)
        while term > stop * total and k > 0:
            term = term * x / (k + 1) if upper else term * k / x
            k += 1 if upper else -1
            total += term
        sums, term = {hi if upper else lo: total}, first
        for m in (range(hi - 1, lo - 1, -1) if upper else range(lo + 1, hi + 1)):
            term = term * (m + 1) / x if upper else term * x / (m - 1)  # π_m from π_{m+1}, π_{m−1} from π_{m−2}
            total += term
            sums[m] = total
        return {m: (s, 1 - s) if upper else (1 - s, s) for m, s in sums.items()}


def references(n, x):
    """(P, Q, ∂P/∂α, x̄) at α = n as floats: the Poisson sums, ∂P/∂α = P·d(log P)/dα (or −Q·d(log Q)/dα above x = n,
    each the smaller) by the 7-point stencil over n − 3 … n + 3 (log P is smooth on the scale √n in the bulk and
    nearly linear in the tails: the stencil's error, (log P)⁽⁷⁾/140, is ~n⁻³ of ∂P/∂α), x̄ = e^{−x}x^{n−1}/(n − 1)!."""
    sums = poisson_sums(n, x)
    side, sign = (0, 1) if x < n else (1, -1)
    with localcontext() as ctx:
        ctx.prec = DIGITS
        small = sums[n][side]
        if small == 0:
            return 0.0, 0.0, 0.0, 0.0
        slope = sum(c * sums[n + j - 3][side].ln() for j, c in enumerate(STENCIL)) / 60
        density = poisson(n - 1, Decimal(float(x)))
        return float(sums[n][0]), float(sums[n][1]), float(sign * small * slope), float(density)


def exponent(a, x):
    """E = α·(λ − 1 − log λ), λ = x/α (the tolerances' scale, module docstring)."""
    lam = np.asarray(x, np.float64) / a
    return a * (lam - 1 - np.log(lam))


def assert_relative(got, want, tol, what):
    got, want, tol = (np.asarray(v, np.float64) for v in (got, want, tol))
    seen = np.abs(want) >= NORMAL
    bad = seen & ~(np.abs(got - want) <= tol * np.abs(want))
    assert not bad.any(), f"{what}: {bad.sum()} off; got {got[bad][:3]}, want {want[bad][:3]}, tol {tol[bad][:3]}"


def test_the_poisson_reference_is_right():
    """log_gamma against math.lgamma, and the Poisson sums against tests/test_ops_gamma.py's float64 series and
    fraction (an independent formula) at n = 150, 400 on both sides of x = n, with P + Q = 1 and P(n + 1) = P(n) − πₙ."""
    with localcontext() as ctx:
        ctx.prec = DIGITS
        for a in [100, 150.5, 1e4, 3.7e6]:
            assert abs(float(log_gamma(Decimal(a))) - math.lgamma(a)) <= 2 * EPS * math.lgamma(a)
    for n in [150, 400]:
        x = n * np.array([0.5, 0.8, 0.95, 1.0, 1.05, 1.3, 2.0])
        sums = [poisson_sums(n, v) for v in x]
        p = np.array([float(s[n][0]) for s in sums])
        np.testing.assert_allclose(p, gammainc_reference(np.full_like(x, n), x), rtol=1e-12)
        for s, v in zip(sums, x):
            with localcontext() as ctx:
                ctx.prec = DIGITS
                assert abs(s[n][0] + s[n][1] - 1) < Decimal("1e-30")
                assert abs(s[n][0] - s[n + 1][0] - poisson(n, Decimal(float(v)))) < Decimal("1e-30")


GRID = {  # α: x/α across the band (standard deviations ε = −37 … 37: e^{−t²} underflows past |t| = 28) and the tails
    100: [0.02, 0.1, 0.3, 0.5, 0.9, 0.99, 1.01, 1.1, 1.5, 2.0, 4.0, 10.0], 300: [0.1, 0.3, 0.5, 0.74, 1.26, 2.0, 4.0],
    1000: [0.3, 0.5, 0.74, 0.76, 0.9, 1.1, 1.24, 1.26, 1.5, 2.0],
    3000: [0.5, 0.74, 0.76, 0.9, 1.1, 1.24, 1.26, 1.5],
    20000: [0.76, 0.9, 1.1, 1.24, 1.26],
    10 ** 5: [0.9, 1.1], 10 ** 7: [], 10 ** 10: [],
}
SIGMAS = [-37, -20, -8, -3, -1, -0.1, 0, 0.5, 2, 5, 12, 25, 37]
SIGMAS_1E10 = [-37, -8, -1, 0.5, 5, 37]  # (the sums' ~12√x = 10⁶ terms next to x = n take a second each)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("n", sorted(GRID))
def test_gammainc_at_large_alpha_is_the_poisson_sum(n):
    """P, Q (each relative to itself), x̄ and ∂P/∂α at α = n within 4ε·(8 + E) (measured 2.6ε·(8 + E) at worst) of the
    Poisson sums (``references``), where at least 10⁻²⁹⁰; ∂P/∂α from n = 2·10⁴ on (the stencil's n⁻³ is 10⁻⁹ at
    n = 10³, where Temme's expansion is held to the series and the fraction instead); n = 100 and 300 the series and
    the fraction alone. The old series and fraction
    gave P(10⁵, 10⁵) 1.1·10⁻¹¹ off and 10⁻¹⁰ in the tails (their e^{α log x − x − lgamma(α + 1)})."""
    sigmas = SIGMAS_1E10 if n == 10 ** 10 else SIGMAS
    x = np.array([n * lam for lam in GRID[n]] + [n + s * math.sqrt(n) for s in sigmas if n + s * math.sqrt(n) > 0])
    want = np.array([references(n, v) for v in x]).T
    a = np.full_like(x, float(n))
    p, ga, gx = incomplete(a, x)
    q = incomplete(a, x, complement=True)[0]
    tol = 4 * EPS * (8 + exponent(n, x))
    for got, w, what in [(p, want[0], "P"), (q, want[1], "Q"), (gx, want[3], "x̄")] + ([(ga, want[2], "∂P/∂α")] if n >= 20000 else []):
        assert_relative(got, w, tol, f"{what} at α = {n}")
    assert np.isfinite(np.concatenate([p, q, ga, gx])).all()


def forced_sums(monkeypatch, a, x):
    """incomplete_gamma's (P, Q, ∂P/∂α) with Temme's band emptied: the series and the continued fraction everywhere."""
    with monkeypatch.context() as m:
        m.setattr(G, "in_temme_band", lambda xp, a, z: xp.zeros(z.shape, bool))
        return G.incomplete_gamma(np, a, x)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("a", [1e3, 3e3, 1e4, 3e4, 1e5])
def test_temme_is_the_series_and_fraction_across_its_band(monkeypatch, a):
    """Temme's P, Q and ∂P/∂α against the series and the continued fraction at the same points (their term limits reach
    ~9√α terms up to α = 10⁵), x/α across the band, its two edges' doubles inside included: within 4ε·(8 + E) of
    them (measured 2.2ε·(8 + E)); below 10³ (where the stencil of the Poisson sums is too coarse) the only check of
    ∂P/∂α in the bulk. So both sides of every boundary of the band (α = 10³ and |x/α − 1| = ¼) agree."""
    ratio = np.linspace(1 - G.TEMME_WIDTH, 1 + G.TEMME_WIDTH, 41)
    ratio[[0, -1]] = np.nextafter(ratio[[0, -1]], 1.0)
    alpha, x = np.full_like(ratio, a), a * ratio
    assert G.in_temme_band(np, alpha, x).all()
    tol = 4 * EPS * (8 + exponent(a, x))
    for got, want, what in zip(G.incomplete_gamma(np, alpha, x), forced_sums(monkeypatch, alpha, x), ["P", "Q", "∂P/∂α"]):
        assert_relative(got, want, tol, f"{what} at α = {a}")


@pytest.mark.filterwarnings("error")
def test_gammainc_is_continuous_where_the_exponent_s_form_changes():
    """At α = ASYMPTOTIC_FROM = 10 and the double below it (e^{α log x − x − lgamma(α + 1)} on one side, e^{−αh}·
    √(α/2π)/Γ*(α) on the other; log x − ψ(α) against log λ + its asymptotic tail): P, Q, ∂P/∂α and x̄ equal within
    the old form's error bound (tests/test_ops_gamma.py incomplete_tolerance: measured 2·10⁻¹⁵), x from 10⁻³ to 60."""
    from tests.test_ops_gamma import incomplete_tolerance
    x = np.array([1e-3, 0.5, 3.0, 8.0, 9.9, 10.0, 11.0, 11.5, 14.0, 25.0, 60.0])
    below, at = (np.full_like(x, v) for v in (np.nextafter(G.ASYMPTOTIC_FROM, 0), G.ASYMPTOTIC_FROM))
    left = [*incomplete(below, x)[:3], incomplete(below, x, complement=True)[0]]
    right = [*incomplete(at, x)[:3], incomplete(at, x, complement=True)[0]]
    for u, v, what in zip(left, right, ["P", "∂P/∂α", "x̄", "Q"]):
        assert_relative(u, v, incomplete_tolerance(at, x), what)


STEP_STENCIL = np.array([-1, 9, -45, 0, 45, -9, 1]) / 60


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("n", [2e4, 1e5, 1e7, 1e10, 1e13])
def test_alpha_gradient_is_a_central_difference_of_the_values(n):
    """At α = n + ⅜ (not an integer), ∂P/∂α = P·d(log P)/dα (−Q·d(log Q)/dα above x = α) by the 7-point stencil on the
    op's own float64 values at α + jh, h = 2^round(log₂(√α/64)) (exact nodes; the stencil's error (h/√α)⁶/140 of it,
    its roundings' ~2ε(8 + E)/(h·|d log P/dα|)): within 2·10⁻¹² (measured 5·10⁻¹³), x = α + s√α, s = −30 … 30."""
    a = n + 0.375
    h = 2.0 ** round(math.log2(math.sqrt(a) / 64))
    x = a + np.array([-30, -20, -3, -1, 0, 0.5, 2, 8, 25, 30]) * math.sqrt(a)
    nodes = np.broadcast_to((a + h * np.arange(-3, 4))[:, None], (7, x.size))
    lower = x < a
    smaller = np.where(lower, incomplete(nodes, np.broadcast_to(x, nodes.shape))[0],
                       incomplete(nodes, np.broadcast_to(x, nodes.shape), complement=True)[0])
    numeric = np.where(lower, 1, -1) * smaller[3] * (STEP_STENCIL[:, None] * np.log(smaller)).sum(axis=0) / h
    assert_relative(incomplete(np.full_like(x, a), x)[1], numeric, np.full_like(x, 2e-12), f"∂P/∂α at α = {a}")


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("n", [2e4, 1e7, 1e10])
def test_the_recurrence_in_alpha_holds_at_a_non_integer_alpha(n):
    """P(α, x) − P(α + 1, x) = Q(α + 1, x) − Q(α, x) = x^α e^{−x}/Γ(α + 1) (in decimal, lgamma by Stirling's series)
    at α = n + ⅜, x = α + s√α: the difference of the two smaller values within 4ε·(8 + E)·(|v₁| + |v₂|)/|v₁ − v₂| of it
    (each value's own bound, the difference cancelling by |v₁ − v₂|/(|v₁| + |v₂|) ~ 1/√α in the bulk)."""
    a = n + 0.375
    x = a + np.array([-30, -8, -2, -0.5, 0, 1, 3, 12, 30]) * math.sqrt(a)
    lower = x < a
    v1, v2 = (np.where(lower, incomplete(np.full_like(x, s), x)[0], incomplete(np.full_like(x, s), x, complement=True)[0])
              for s in (a, a + 1))
    with localcontext() as ctx:
        ctx.prec = DIGITS
        term = np.array([float((Decimal(a) * Decimal(v).ln() - Decimal(v) - log_gamma(Decimal(a) + 1)).exp()) for v in x])
    got = np.where(lower, v1 - v2, v2 - v1)
    tol = 4 * EPS * (8 + exponent(a, x)) * (np.abs(v1) + np.abs(v2)) / term + 4 * EPS
    assert_relative(got, term, tol, f"the recurrence at α = {a}")


@pytest.mark.filterwarnings("error")
def test_gammainc_at_extreme_alpha_and_x_is_finite_and_consistent():
    """α from 10 to 10³⁰⁰, x from 0 and 5·10⁻³²⁴ to 10³⁰⁸, in the band and out: P, Q in [0, 1] with P + Q = 1 to an
    ulp, ∂P/∂α ≤ 0 and x̄ ≥ 0, all finite (x/α underflowing to 0 would take log 0 into ∂P/∂α, NaN from 0·∞; x̄ at
    x = 0 would be 0/0)."""
    alpha = np.array([10.0, 999.0, 1e3, 1e6, 1e10, 1e20, 1e100, 1e300])[:, None]
    lam = np.array([0.0, 1e-30, 0.3, 0.75, 1 - 1e-9, 1.0, 1 + 1e-9, 1.25, 3.0, 1e6])[None, :]
    x = np.concatenate([np.broadcast_to(alpha * lam, (8, 10)),
                        np.broadcast_to([[5e-324, 1e-310, 1e-300, 1.0, 1e308]], (8, 5))], 1)
    a = np.broadcast_to(alpha, x.shape).copy()
    p, ga, gx = incomplete(a, x)
    q = incomplete(a, x, complement=True)[0]
    assert np.isfinite(np.stack([p, q, ga, gx])).all()
    assert ((0 <= p) & (p <= 1) & (np.abs(p + q - 1) <= EPS) & (ga <= 0) & (gx >= 0)).all()


def test_gamma_cdf_at_a_large_concentration_is_the_poisson_sum():
    """Gamma(α = 10⁷, β = 2).cdf(v) = P(α, 2v) (the Poisson sums), its gradient in v the density 2·x̄ and in α ∂P/∂α
    (``references``), within 4ε·(8 + E) (and ε·α|λ − 1| more: β·v is rounded once, moving P by that relatively)."""
    from minivae.distributions import Gamma
    n = 10 ** 7
    v = (n + np.array([-30, -4, -1, 0, 0.7, 3, 25]) * math.sqrt(n)) / 2
    alpha = mv.tensor(np.array(float(n)), requires_grad=True)
    value = mv.tensor(v, requires_grad=True)
    cdf = Gamma(alpha, mv.tensor(np.array(2.0))).cdf(value)
    g = np.linspace(0.5, 1.5, v.size)  # (a different weight per element: ᾱ is their sum)
    cdf.backward(mv.tensor(g))
    want = np.array([references(n, 2 * u) for u in v]).T
    tol = 4 * EPS * (8 + exponent(n, 2 * v)) + EPS * n * np.abs(2 * v / n - 1)
    assert_relative(cdf.numpy(), want[0], tol, "cdf")
    assert_relative(value.grad, 2 * g * want[3], tol, "d cdf/dv")
    np.testing.assert_allclose(alpha.grad, (g * want[2]).sum(), rtol=4 * EPS * (8 + exponent(n, 2 * v).max()))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("a", [999.625, 1000.375, 3000.375])
def test_gammainc_at_non_integer_alpha_is_mpmath_s(a):
    """Against 40-digit mpmath where it is installed (not in CI; past α ≈ 10⁴ its hypergeometric series stop
    converging): the smaller of P and Q and ∂P/∂α (mpmath.diff of the smaller: that of P next to 1 cancels) within
    4ε·(8 + E), x = α + s√α, s = −25 … 25, and x/α = ½ … 2 astride the band's edges; α on both sides of 10³."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    x = np.concatenate([a + np.array([-25, -8, -3, -1, 0, 0.5, 2, 8, 25]) * math.sqrt(a),
                        a * np.array([0.5, 0.74, 0.76, 1.24, 1.26, 2.0])])
    lower = x < a
    p, ga, _ = incomplete(np.full_like(x, a), x)
    q = incomplete(np.full_like(x, a), x, complement=True)[0]
    want, slope = [], []
    for v, low in zip(x, lower):
        def smaller(s, v=v, low=low):
            return mpmath.gammainc(s, 0, v, regularized=True) if low else mpmath.gammainc(s, v, mpmath.inf, regularized=True)
        want.append(float(smaller(mpmath.mpf(a))))
        slope.append(float(mpmath.diff(smaller, mpmath.mpf(a))) * (1 if low else -1))
    tol = 4 * EPS * (8 + exponent(a, x))
    assert_relative(np.where(lower, p, q), want, tol, "the smaller of P and Q")
    assert_relative(ga, slope, tol, "∂P/∂α")


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("a", [1e12, 1e20, 1e100, 1e300])
def test_gammainc_past_the_poisson_sums_is_the_edgeworth_expansion(a):
    """Where no sum is feasible: at x = α + s√α (s = (x − α)/√α of the rounded x, x − α exact), the Gamma(α, 1) cdf's
    Edgeworth expansion (skewness 2/√α) P = Φ(s) − φ(s)(s² − 1)/(3√α) + O(1/α), and its derivatives x̄ =
    φ(s)/√α·(1 + (s³ − 3s)/(3√α)) and ∂P/∂α = (ds/dα)·√α·x̄, ds/dα = −(1 + s/(2√α))/√α, to O(1/α) relatively: within
    (1 + s⁶)/α of φ(s) (the next terms, (3He₃(s) + He₅(s))/(18α)·φ(s), He₅(6) ≈ 5·10³) and the op's
    own 4ε·(8 + s²/2)."""
    s = np.array([-6.0, -3.0, -1.0, -0.25, 0.0, 0.5, 2.0, 4.0, 6.0])
    x = a + s * math.sqrt(a)
    s = (x - a) / math.sqrt(a)
    r = math.sqrt(a)
    phi = np.exp(-s * s / 2) / math.sqrt(2 * math.pi)
    cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in s]) - phi * (s * s - 1) / (3 * r)
    density = phi / r * (1 + (s ** 3 - 3 * s) / (3 * r))
    slope = -(1 + s / (2 * r)) * density
    p, ga, gx = incomplete(np.full_like(x, a), x)
    bound = (1 + s ** 6) / a * phi + 4 * EPS * (8 + s * s / 2) * phi  # (and the op's own error, E = s²/2 + O(s³/√α))
    assert (np.abs(p - cdf) <= bound + 2 * EPS).all(), p - cdf
    assert (np.abs(gx - density) * r <= bound).all(), gx / density - 1
    assert (np.abs(ga - slope) * r <= bound).all(), ga / slope - 1
