"""Loader's saddle-point pieces (minivae/ops/saddle.py: stirlerr, bd0) and the log-densities built on them (Poisson,
LogRatePoisson, NegativeBinomial and the ZINB on it, Gamma's log_prob and entropy, Beta's log_prob) against
references in 50-digit decimal arithmetic (``decimal``): ln of exact factorials, harmonic sums, Stirling's series for
lgamma and ψ at arguments shifted above 40 (its first term left out below 10⁻³⁰), and x·ln(x/m) + m − x taken as it is.
The plain lgamma formulas lost their digits in float32 at large parameters (Poisson(10¹⁰) at its mode: −16384 for
−12.43); in float32 the log-densities are now within a few ulps of the truth at the float32 inputs (plus, off the mode,
the float32 roundings of a mean the formula forms, each worth an ulp of an input), in float64 within 10⁻¹³."""
import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae._backend import use_numba
from minivae.distributions import Beta, Gamma, NegativeBinomial, Poisson
from minivae.models import LogRatePoisson, ZeroInflatedNegativeBinomial

D = Decimal
PI = D("3.14159265358979323846264338327950288419716939937510582097494459")
EULER = D("0.57721566490153286060651209008240243104215933593992359880576723")
B2K = [Fraction(1, 6), Fraction(-1, 30), Fraction(1, 42), Fraction(-1, 30), Fraction(5, 66), Fraction(-691, 2730),
       Fraction(7, 6), Fraction(-3617, 510), Fraction(43867, 798), Fraction(-174611, 330), Fraction(854513, 138),
       Fraction(-236364091, 2730)]  # B₂ … B₂₄
SHIFT = 40
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(autouse=True, params=[True, False], ids=["fused", "formula"])
def cpu_path(request):
    """Each test on both CPU paths: minivae/_cpu/saddle.py's Numba kernels (where Numba is installed; use_numba switches
    them on under MINIVAE_DISABLE_NUMBA=1 too) and the array formula, so that both are held to the decimal truth."""
    with use_numba(request.param):
        yield


def precise(fn):
    """fn computed in 80-digit decimal (the log-densities at 10¹⁰ are differences of terms of 10¹¹)."""
    def run(*args):
        with localcontext() as c:
            c.prec = 80
            return fn(*args)
    return run


def dec(x):
    return D(float(x))  # (a float's exact value: a float32 input is its float64 value)


def frac(f):
    return D(f.numerator) / D(f.denominator)


@precise
def lgamma_d(x):
    """lgamma(x), x > 0 a Decimal: x shifted to y = x + m ≥ 40 (lgamma(x) = lgamma(y) − ln Πⱼ (x + j)), then Stirling's
    series (y − ½)ln y − y + ½ ln 2π + Σₖ₌₁¹² B₂ₖ/(2k(2k − 1)y²ᵏ⁻¹)."""
    prod, y = D(1), x
    while y < SHIFT:
        prod *= y
        y += 1
    series = sum(frac(b) / (2 * k * (2 * k - 1)) / y ** (2 * k - 1) for k, b in enumerate(B2K, 1))
    return (y - D("0.5")) * y.ln() - y + (2 * PI).ln() / 2 + series - prod.ln()


@precise
def digamma_d(x):
    """ψ(x) = ψ(y) − Σⱼ 1/(x + j), y = x + m ≥ 40, ψ(y) = ln y − 1/(2y) − Σₖ₌₁¹² B₂ₖ/(2k·y²ᵏ)."""
    acc, y = D(0), x
    while y < SHIFT:
        acc += 1 / y
        y += 1
    return y.ln() - 1 / (2 * y) - sum(frac(b) / (2 * k) / y ** (2 * k) for k, b in enumerate(B2K, 1)) - acc


@precise
def stirlerr_d(x):
    return lgamma_d(x + 1) - (x + D("0.5")) * x.ln() + x - (2 * PI).ln() / 2


@precise
def bd0_d(x, m):
    return x * (x / m).ln() + m - x if x else m


def ulp32(x):
    return float(np.spacing(np.float32(abs(x))))


# ---- stirlerr ------------------------------------------------------------------------------------------------------
@precise
def stirlerr_of_integer(n):
    """s(n) from the exact n! and its derivatives from harmonic sums: s'(n) = H_n − γ − ln n − 1/(2n),
    s''(n) = π²/6 − Σⱼ₌₁ⁿ 1/j² − 1/n + 1/(2n²)."""
    n_d = D(n)
    s = D(math.factorial(n)).ln() - (n_d + D("0.5")) * n_d.ln() + n_d - (2 * PI).ln() / 2
    harmonic = sum(D(1) / j for j in range(1, n + 1))
    squares = sum(D(1) / (j * j) for j in range(1, n + 1))
    s1 = harmonic - EULER - n_d.ln() - 1 / (2 * n_d)
    s2 = PI * PI / 6 - squares - 1 / n_d + 1 / (2 * n_d * n_d)
    return float(s), float(s1), float(s2)


@precise
def stirlerr_of_half_integer(n):
    """s(n + ½) from Γ(n + 3/2) = (2n + 2)!·√π/(4ⁿ⁺¹(n + 1)!)."""
    x = D(n) + D("0.5")
    lg = (D(math.factorial(2 * n + 2)) * PI.sqrt() / (D(4) ** (n + 1) * D(math.factorial(n + 1)))).ln()
    return float(lg - (x + D("0.5")) * x.ln() + x - (2 * PI).ln() / 2)


INTEGERS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 20, 30, 50, 70, 100, 200, 1000]


def test_stirlerr_and_its_derivatives_are_the_exact_factorials_and_harmonic_sums():
    """In float64 within 10⁻¹⁴ (absolutely) below the series' cut-over at 10, a few ulps of lgamma(x + 1) ≤ 15.1 (the
    difference loses up to three digits there), and 2·10⁻¹⁵ relatively above it, for s, s' (order 1) and s'' (order 1's
    gradient); and at half-integers."""
    x = np.array(INTEGERS, np.float64)
    want = np.array([stirlerr_of_integer(n) for n in INTEGERS])
    t = mv.tensor(x, requires_grad=True)
    s1 = ops.stirlerr(t, order=1)
    s1.sum().backward()
    for got, w, what in [(ops.stirlerr(mv.tensor(x)).numpy(), want[:, 0], "s"), (s1.numpy(), want[:, 1], "s'"),
                         (t.grad, want[:, 2], "s''")]:
        bad = np.abs(got - w) > np.where(x < 10, 1e-14, 2e-15 * np.abs(w))
        assert not bad.any(), (what, x[bad], got[bad], w[bad])
    halves = [0, 1, 2, 4, 8, 9, 10, 13, 40, 300]
    got = ops.stirlerr(mv.tensor(np.array(halves, np.float64) + 0.5)).numpy()
    want = np.array([stirlerr_of_half_integer(n) for n in halves])
    np.testing.assert_array_less(np.abs(got - want), np.where(np.array(halves) < 10, 1e-14, 2e-15 * want))


def test_stirlerr_at_large_arguments_is_its_asymptotic_series_and_its_gradient_the_series_derivative():
    """s(x) = 1/(12x) − 1/(360x³) + 1/(1260x⁵) − … and s'(x) = −1/(12x²) + 1/(120x⁴) − …, from 10⁴ to 10³⁰⁰ (where
    lgamma(x + 1) itself is about x·ln x), in float64 and in float32 (rounded once); the textbook terms alone (the
    next, 1/(1680x⁷), below 10⁻²⁸ of s at x = 10⁴)."""
    x = np.geomspace(1e4, 1e300, 40)
    w = (1 / x) ** 2
    got = ops.stirlerr(mv.tensor(x))
    np.testing.assert_allclose(got.numpy(), 1 / (12 * x) * (1 - w / 30 * (1 - 2 * w / 7)), rtol=2e-15)
    assert got.numpy()[0] == pytest.approx(float(stirlerr_d(D(10000))), rel=2e-15)
    np.testing.assert_allclose(ops.stirlerr(mv.tensor(x), order=1).numpy(), -w / 12 * (1 - w / 10),
                               rtol=2e-15, atol=1e-300)  # (s' is subnormal from x ≈ 10¹⁵⁴)
    x32 = np.geomspace(1e4, 1e30, 20).astype(np.float32)
    got32 = ops.stirlerr(mv.tensor(x32)).numpy()
    assert got32.dtype == np.float32
    np.testing.assert_array_equal(got32, (1 / (12 * x32.astype(np.float64))).astype(np.float32))


def test_stirlerr_edges_and_no_nan_in_the_gradients():
    """s(0) = ∞, s'(0) = −∞, 0 at ∞, NaN below 0 and at NaN; finite, with finite gradients, from 10⁻³⁰ to 10³⁰ in
    float32 and 10⁻³⁰⁰ to 10³⁰⁰ in float64; the order is 0 or 1."""
    edges = np.array([0.0, np.inf, -1.0, np.nan])
    np.testing.assert_array_equal(ops.stirlerr(mv.tensor(edges)).numpy(), [np.inf, 0.0, np.nan, np.nan])
    np.testing.assert_array_equal(ops.stirlerr(mv.tensor(edges), order=1).numpy(), [-np.inf, 0.0, np.nan, np.nan])
    for dtype, top in ((np.float32, 30), (np.float64, 150)):
        x = mv.tensor(np.geomspace(10.0 ** -top, 10.0 ** top, 61).astype(dtype), requires_grad=True)
        y = ops.stirlerr(x)
        y.sum().backward()
        assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad).all() and x.grad.dtype == dtype
    with pytest.raises(ValueError, match="order must be 0 or 1"):
        ops.stirlerr(mv.tensor(1.0), order=2)


# ---- bd0 -------------------------------------------------------------------------------------------------------------
def test_bd0_is_x_log_x_over_m_plus_m_minus_x_in_decimal_without_its_cancellation():
    """x·ln(x/m) + m − x at m = x(1 + δ), δ from ±10⁻¹² to ±0.9 and 2, 3 (both sides of the series' edge
    |x − m| = ½(x + m), at m = 3x and x/3)
    and x from 10⁻³⁰⁰ to 10³⁰⁰, within 10⁻¹⁴ relatively in float64: the plain formula keeps none of its digits at
    δ = 10⁻⁸ (bd0 ≈ xδ²/2 ~ 10⁻¹⁶·x beside terms of x·ln x), and ln x − ln m for ln(x/m) loses ln x/ln(x/m) ulps
    (690/0.64 at x = 10³⁰⁰, δ = 0.9)."""
    deltas = [s * d for d in (1e-12, 1e-8, 1e-4, 0.01, 0.15, 0.2, 0.21, 0.25, 0.5, 0.9) for s in (1, -1)] + [2.0, 3.0]
    x, m = np.array([[v, v * (1 + d)] for v in (1e-300, 1e-3, 0.7, 3.0, 1e4, 1e12, 1e300) for d in deltas]).T
    got = ops.bd0(mv.tensor(x), mv.tensor(m)).numpy()
    want = np.array([float(bd0_d(dec(a), dec(b))) for a, b in zip(x, m)])
    np.testing.assert_allclose(got, want, rtol=1e-14)


def test_bd0_of_a_scaled_mean_is_that_of_the_product_in_float64():
    """bd0(x, m, c) = bd0(x, c·m) with c·m formed in float64: float32 x, m and c whose product underflows float32
    (10⁻²⁰·10⁻²⁰) or overflows it, rounded once; and its gradients c − x/m and m − x/c, finite where x/(c·m) is
    beyond float32 but each partial is not."""
    x = np.array([2.0, 3e4, 1e30, 5.0], np.float32)
    m = np.array([1e-20, 3e4, 1e30, 1e-30], np.float32)
    c = np.array([1e-20, 1.0, 1e10, 1e10], np.float32)
    tx, tm, tc = (mv.tensor(v, requires_grad=True) for v in (x, m, c))
    y = ops.bd0(tx, tm, tc)
    (y * mv.tensor(np.array([1.0, 0.5, 2.0, 1.5], np.float32))).sum().backward()
    xd, md, cd = (x.astype(np.float64) for x in (x, m, c))
    want = [float(bd0_d(dec(a), dec(b) * dec(s))) for a, b, s in zip(xd, md, cd)]
    with np.errstate(over="ignore"):  # (bd0(10³⁰, 10⁴⁰) ≈ 10⁴⁰: ∞ in float32)
        np.testing.assert_array_equal(y.numpy(), np.array(want).astype(np.float32))
    g = np.array([1.0, 0.5, 2.0, 1.5])
    np.testing.assert_allclose(tm.grad, (g * (cd - xd / md)).astype(np.float32), rtol=2 * EPS32)
    np.testing.assert_allclose(tc.grad, (g * (md - xd / cd)).astype(np.float32), rtol=2 * EPS32)
    assert np.isfinite(tm.grad[[1, 3]]).all() and np.isfinite(tc.grad).all()


def test_bd0_partials_near_the_mean_keep_their_digits():
    """∂/∂x = ln(x/m) by log1p((x − m)/m) and ∂/∂m = 1 − x/m = (m − x)/m, relatively exact where x and m differ in
    their last digits (the plain ln x − ln m keeps none)."""
    x = np.array([1e10, 7.0, 1e4, 1e4])
    m = np.array([1e10 + 1, 7.0 * (1 + 2e-15), 1e4 * (1 - 1e-9), 1.05e4])
    tx, tm = mv.tensor(x, requires_grad=True), mv.tensor(m, requires_grad=True)
    ops.bd0(tx, tm).sum().backward()
    want_x = [float(precise(lambda a, b: (a / b).ln())(dec(a), dec(b))) for a, b in zip(x, m)]
    want_m = [float(precise(lambda a, b: (b - a) / b)(dec(a), dec(b))) for a, b in zip(x, m)]
    np.testing.assert_allclose(tx.grad, want_x, rtol=1e-15)
    np.testing.assert_allclose(tm.grad, want_m, rtol=1e-15)


def test_bd0_edges():
    """bd0(0, m) = m (∂/∂m = 1), ∞ at m = 0 < x (∂/∂m = −∞), at m = ∞ and at x = ∞, NaN below 0 and at ∞ − ∞; no NaN
    in values or gradients for x, m from 10⁻³⁰ to 10³⁰ in float32."""
    x = np.array([0.0, 0.0, 2.0, 2.0, np.inf, np.inf, -1.0, 1.0])
    m = np.array([3.0, 0.0, 0.0, np.inf, 2.0, np.inf, 1.0, -1.0])
    np.testing.assert_array_equal(ops.bd0(mv.tensor(x), mv.tensor(m)).numpy(),
                                  [3.0, 0.0, np.inf, np.inf, np.inf, np.nan, np.nan, np.nan])
    tm = mv.tensor(np.array([3.0, 0.0]), requires_grad=True)
    ops.bd0(mv.tensor(np.array([0.0, 2.0])), tm).sum().backward()
    np.testing.assert_array_equal(tm.grad, [1.0, -np.inf])
    grid = np.geomspace(1e-30, 1e30, 13).astype(np.float32)
    tx, tm = mv.tensor(grid[:, None], requires_grad=True), mv.tensor(grid[None, :], requires_grad=True)
    y = ops.bd0(tx, tm)
    y.sum().backward()
    assert not np.isnan(y.numpy()).any() and not np.isnan(tx.grad).any() and not np.isnan(tm.grad).any()


# ---- the log-densities -----------------------------------------------------------------------------------------------
@precise
def poisson_d(k, lam):
    return dec(k) * dec(lam).ln() - dec(lam) - lgamma_d(dec(k) + 1) if k else -dec(lam)


@precise
def nb_d(k, r, l):
    """r·ln σ(−l) + k·ln σ(l) + lgamma(r + k) − lgamma(r) − lgamma(k + 1)."""
    r, k, l = dec(r), dec(k), dec(l)
    log_p, log_q = -(1 + (-l).exp()).ln(), -(1 + l.exp()).ln()
    return r * log_q + k * log_p + lgamma_d(r + k) - lgamma_d(r) - lgamma_d(k + 1)


@precise
def gamma_d(x, a, b):
    x, a, b = dec(x), dec(a), dec(b)
    return a * b.ln() + (a - 1) * x.ln() - b * x - lgamma_d(a)


@precise
def beta_d(x, a, b):
    x, a, b = dec(x), dec(a), dec(b)
    return (a - 1) * x.ln() + (b - 1) * (1 - x).ln() - lgamma_d(a) - lgamma_d(b) + lgamma_d(a + b)


def check(got, cases, truth, ulps, float64_rtol=1e-13, terms=None):
    """got (float32 or float64) against truth(*case) in decimal at each case, within ``ulps`` float32 ulps of the
    truth's magnitude (at least 1; or of the sum of the magnitudes ``terms``(*case) of a formula's terms) in float32,
    or ``float64_rtol`` of it in float64."""
    want = np.array([float(truth(*c)) for c in cases])
    scale = np.maximum(np.abs(want), 1.0) if terms is None else np.array([terms(*c) for c in cases])
    if got.dtype == np.float32:
        bound = ulps * np.array([ulp32(s) for s in scale])
    else:
        bound = float64_rtol * scale
    bad = np.abs(got - want) > bound
    assert not bad.any(), [(cases[i], got[i], want[i]) for i in np.nonzero(bad)[0]]


LARGE = [1e4, 1e6, 1e8, 1e10]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_at_large_rates_keeps_its_digits(dtype):
    """At k = λ the log-probability is −s(λ) − ½ ln(2πλ) = −½ ln(2πλ) − 1/(12λ) + …: −12.43 at 10¹⁰ (the plain formula
    gave −16384 in float32, and 10⁻³ off at 10⁴); within 2 float32 ulps, at the mode and 1 to 3 standard deviations
    away (the rate enters bd0 as it is: nothing rounds but the terms); within 10⁻¹³ in float64."""
    cases = [(float(dtype(lam + j * math.sqrt(lam))), float(dtype(lam))) for lam in LARGE for j in (0, 1, -2, 3)]
    k, lam = (np.array(v, dtype) for v in zip(*cases))
    got = Poisson(lam).log_prob(k).numpy()
    assert got.dtype == dtype
    check(got, cases, poisson_d, ulps=2)
    at_mode = got[::4]
    np.testing.assert_allclose(at_mode, [-0.5 * math.log(2 * math.pi * v) - 1 / (12 * v) for v in LARGE],
                               rtol=2 * EPS32 if dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_at_small_rates_and_counts_is_the_plain_formula_in_float64(dtype):
    """k = 0 … 40 at λ from 10⁻³ to 30: the plain formula's values (math.lgamma, float64), within 2 float32 ulps or
    10⁻¹⁴ — including k = 0 (−λ) and the counts far in the tails. (The plain formula in float32 was 2.5 ulps off at
    k = 40, λ = 30: 136 − 30 − 110 = −4.27.)"""
    cases = [(k, lam) for lam in (1e-3, 0.5, 1.0, 3.7, 30.0) for k in (0, 1, 2, 5, 13, 40)]
    k, lam = (np.array(v, dtype) for v in zip(*cases))
    got = Poisson(lam).log_prob(k).numpy()
    want = np.array([kk * math.log(float(dtype(ll))) - float(dtype(ll)) - math.lgamma(kk + 1) for kk, ll in cases])
    if dtype == np.float32:
        assert (np.abs(got - want) <= 2 * np.array([ulp32(max(abs(w), 1)) for w in want])).all()
    else:
        np.testing.assert_allclose(got, want, rtol=1e-14)


def test_poisson_gradient_in_the_rate_in_float32_is_k_over_rate_minus_one():
    """∂/∂λ = k/λ − 1 = (k − λ)/λ at large rates, within 2 float32 ulps in float32 (−∂bd0/∂m = (k − λ)/λ, formed in
    float64): ~10⁻⁵ at one standard deviation from λ = 10¹⁰, which k/λ − 1 in float32 would round to 0 or 2·6·10⁻⁸."""
    lam = np.array([1e4, 1e6, 1e8, 1e10, 1e10], np.float32)
    k = np.array([1e4 + 100, 1e6 - 3000, 1e8, 1e10 + 1e5, 1e10 - 2048], np.float32)
    t = mv.tensor(lam, requires_grad=True)
    Poisson(t).log_prob(mv.tensor(k)).sum().backward()
    want = (k.astype(np.float64) - lam) / lam
    assert (np.abs(t.grad - want) <= 2 * np.array([ulp32(w) if w else 1e-45 for w in want])).all(), (t.grad, want)


def test_log_rate_poisson_takes_the_saddle_point_form_for_positive_log_rates():
    """LogRatePoisson(η) at η = ln 10⁸ (float32): within 4 float32 ulps of the truth at λ = e^η in float64 (e^η rounds
    to float32 once: an ulp of η's worth); for η ≤ 0, its own k·η − e^η − lgamma(k + 1) (finite where e^η underflows:
    k·η at η = −200)."""
    eta = np.float32(math.log(1e8))
    lam = math.exp(float(eta))
    k = np.array([1e8, 1e8 + 1e4, 1e8 - 3e4], np.float32)
    got = LogRatePoisson(mv.tensor(np.full(3, eta))).log_prob(mv.tensor(k)).numpy()
    want = np.array([float(dec(kk) * dec(eta) - dec(lam) - lgamma_d(dec(kk) + 1)) for kk in k])
    rate32 = float(np.exp(eta))  # the float32 rate's own truth: its one rounding is (k − λ)·ε of the value
    slack = np.abs(k.astype(np.float64) - lam) * abs(rate32 - lam) / lam
    assert (np.abs(got - want) <= 4 * np.array([ulp32(w) for w in want]) + slack).all(), (got, want)
    low = LogRatePoisson(mv.tensor(np.array([-200.0, -1.0, 0.0], np.float32))).log_prob(mv.tensor(np.full(3, 3.0)))
    np.testing.assert_allclose(low.numpy(), [-600.0 - math.log(6), -3.0 - math.exp(-1) - math.log(6), -1.0 - math.log(6)],
                               rtol=2 * EPS32)


NB_CASES = [(r, l, j) for r in (1e4, 1e6, 1e8) for l in (0.0, -2.0, 1.5) for j in (0, 1, -2)]


def nb_inputs(dtype):
    """(k, r, l) cases: k at the mean r·e^l and j = 1, −2 standard deviations √(mean/σ(−l)) from it."""
    out = []
    for r, l, j in NB_CASES:
        mean = r * math.exp(l)
        out.append((float(dtype(round(mean + j * math.sqrt(mean * (1 + math.exp(l)))))), float(dtype(r)), float(dtype(l))))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_negative_binomial_at_large_total_counts_keeps_its_digits(dtype):
    """NB(r, l) for r = 10⁴ … 10⁸: within 4 float32 ulps of the decimal truth at the float32 inputs (10⁻¹³ in
    float64), plus the roundings of σ(±l) (each a relative ε, worth (k·σ(−l) − r·σ(l))·ε of the value, as an ulp of
    l's). The
    plain formula was 1.2 off at r = 10⁸ in float32. The ZINB builds on it: its log-probability of k > 0 is this plus
    log(1 − π)."""
    cases = nb_inputs(dtype)
    k, r, l = (np.array(v, dtype) for v in zip(*cases))
    got = NegativeBinomial(r, logits=l).log_prob(k).numpy()
    want = np.array([float(nb_d(*c)) for c in cases])
    p, q = 1 / (1 + np.exp(-l.astype(np.float64))), 1 / (1 + np.exp(l.astype(np.float64)))
    eps = float(np.finfo(dtype).eps)
    bound = np.abs(want) * (4 * eps if dtype == np.float32 else 1e-13) + 2 * eps * np.abs(k * q - r * p)
    bad = np.abs(got - want) > bound
    assert not bad.any(), [(cases[i], got[i], want[i]) for i in np.nonzero(bad)[0]]
    zinb = ZeroInflatedNegativeBinomial(r, logits=l, gate_logits=np.full(len(r), -1.0, dtype)).log_prob(k).numpy()
    np.testing.assert_allclose(zinb, got - math.log1p(math.exp(-1.0)), rtol=4 * float(np.finfo(dtype).eps))


def test_negative_binomial_small_parameters_and_extreme_logits_are_unchanged():
    """At r ≤ 30, k ≤ 40: the plain formula in float64 (math.lgamma), within 10⁻¹³; at logits ±60, ±100 and ±10⁴ in
    float32 (from about |l| = 60, σ(∓l) is below r·tiny and the plain formula is taken) its values (math.lgamma) within
    4 ulps, and finite gradients, k·σ(−l) − r·σ(l) in l."""
    cases = [(k, r, l) for r in (0.3, 2.0, 30.0) for l in (-3.0, 0.0, 2.5) for k in (0.0, 1.0, 4.0, 40.0)]
    k, r, l = (np.array(v) for v in zip(*cases))
    got = NegativeBinomial(r, logits=l).log_prob(k).numpy()

    def plain(k, r, l):  # (softplus(±l) of |l| up to 10⁴ without overflow)
        log_q, log_p = -(max(l, 0) + math.log1p(math.exp(-abs(l)))), -(max(-l, 0) + math.log1p(math.exp(-abs(l))))
        return r * log_q + k * log_p + math.lgamma(r + k) - math.lgamma(r) - math.lgamma(k + 1)
    np.testing.assert_allclose(got, [plain(*c) for c in cases], rtol=1e-13, atol=1e-13)
    l32 = np.array([-1e4, -100.0, -60.0, 60.0, 100.0, 1e4], np.float32)
    tr, tl = mv.tensor(np.full(6, 50.0, np.float32), requires_grad=True), mv.tensor(l32, requires_grad=True)
    y = NegativeBinomial(tr, logits=tl).log_prob(mv.tensor(np.full(6, 7.0, np.float32)))
    y.sum().backward()
    assert np.isfinite(y.numpy()).all() and np.isfinite(tr.grad).all() and np.isfinite(tl.grad).all()
    np.testing.assert_allclose(y.numpy(), [plain(7.0, 50.0, float(v)) for v in l32], rtol=4 * EPS32)
    np.testing.assert_allclose(tl.grad, [7.0, 7.0, 7.0, -50.0, -50.0, -50.0], rtol=1e-6)  # k·σ(−l) − r·σ(l)


GAMMA_CASES = [(a, b, j) for a in (1e4, 1e6, 1e8) for b in (1.0, 1e-3) for j in (0, 1, -2)]


def gamma_inputs(dtype):
    """(x, α, β): x at the mode (α − 1)/β and j = 1, −2 standard deviations √α/β from it."""
    return [(float(dtype(((a - 1) + j * math.sqrt(a)) / b)), float(dtype(a)), float(dtype(b))) for a, b, j in GAMMA_CASES]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gamma_at_large_concentrations_keeps_its_digits(dtype):
    """Gamma(α, β) for α = 10⁴ … 10⁸: within 4 float32 ulps of the decimal truth at the float32 inputs (the plain
    formula was 5·10⁻³ off at α = 10⁴, 2 at 10⁸), 10⁻¹³ in float64; and its entropy
    α − ln β + lgamma(α) + (1 − α)ψ(α) → ½ ln(2πeα) − ln β likewise."""
    cases = gamma_inputs(dtype)
    x, a, b = (np.array(v, dtype) for v in zip(*cases))
    g = Gamma(a, b)
    check(g.log_prob(x).numpy(), cases, gamma_d, ulps=4)

    def entropy(x, a, b):
        a, b = dec(a), dec(b)
        return a - b.ln() + lgamma_d(a) + (1 - a) * digamma_d(a)
    check(g.entropy().numpy(), cases, entropy, ulps=4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gamma_log_prob_and_entropy_at_small_concentrations_are_unchanged(dtype):
    """α from 10⁻³ to 30 (both sides of SADDLE_FROM = 2), x from 10⁻³ to 50: the decimal truth within 10⁻¹³, and in
    float32 within 4 ulps of the plain formula's largest terms (α log β, (α − 1) log x, βx, lgamma(α): they cancel at
    α = x = 10⁻³, −0.0076 of terms of 6.9, in the plain formula as before); the entropy too (its new form everywhere:
    α, ln β, lgamma(α), (1 − α)ψ(α) its plain terms)."""
    cases = [(x, a, b) for a in (1e-3, 0.5, 1.0, 1.9, 2.1, 7.5, 30.0) for b in (0.3, 2.0) for x in (1e-3, 0.8, 50.0)]
    x, a, b = (np.array(v, dtype) for v in zip(*cases))
    g = Gamma(a, b)
    check(g.log_prob(x).numpy(), cases, gamma_d, ulps=4, terms=lambda x, a, b: (
        abs(a * math.log(b)) + abs((a - 1) * math.log(x)) + b * x + abs(math.lgamma(a))))

    def entropy(x, a, b):
        a, b = dec(a), dec(b)
        return a - b.ln() + lgamma_d(a) + (1 - a) * digamma_d(a)
    check(g.entropy().numpy(), cases, entropy, ulps=4, terms=lambda x, a, b: (
        a + abs(math.log(b)) + abs(math.lgamma(a)) + abs((1 - a) * float(digamma_d(dec(a))))))


def test_gamma_and_beta_gradients_stay_finite_where_the_mean_is_beyond_float32():
    """Gamma(3, 10⁻¹⁰) at x = 10⁻³⁰ (β·x = 10⁻⁴⁰, below float32's normal numbers; the chain rule through a float32
    product β·x took (α/(βx))·x = ∞·0 for ∂β): log p = 3 ln β + 2 ln x − βx − ln 2, ∂α = ln β + ln x − ψ(3),
    ∂β = α/β − x = 3·10¹⁰; and Beta(10⁴, 3) at x = 10⁻³⁰, finite with finite gradients."""
    ta, tb = mv.tensor(np.float32(3.0), requires_grad=True), mv.tensor(np.float32(1e-10), requires_grad=True)
    y = Gamma(ta, tb).log_prob(mv.tensor(np.float32(1e-30)))
    y.backward()
    b, x = float(np.float32(1e-10)), float(np.float32(1e-30))
    np.testing.assert_allclose(y.numpy(), 3 * math.log(b) + 2 * math.log(x) - b * x - math.log(2), rtol=2 * EPS32)
    psi3 = 1.5 - float(EULER)  # ψ(3) = 1 + ½ − γ
    np.testing.assert_allclose([ta.grad, tb.grad], [math.log(b) + math.log(x) - psi3, 3 / b - x], rtol=4 * EPS32)
    ta, tb = mv.tensor(np.float32(1e4), requires_grad=True), mv.tensor(np.float32(3.0), requires_grad=True)
    y = Beta(ta, tb).log_prob(mv.tensor(np.float32(1e-30)))
    y.backward()
    assert np.isfinite([y.numpy(), ta.grad, tb.grad]).all()


BETA_CASES = [(a, b, j) for a, b in ((1e6, 1e6), (1e8, 1e8), (1e10, 1e10), (3e6, 1e6), (5.0, 1e6), (1.5, 1e8))
              for j in (0, 1, -2)]


def beta_inputs(dtype):
    """(x, a, b): x at the mode (a − 1)/(a + b − 2) and j = 1, −2 standard deviations from it (a quarter of the mode
    where that is below 0)."""
    out = []
    for a, b, j in BETA_CASES:
        mode, sd = (a - 1) / (a + b - 2), math.sqrt(a * b / (a + b) ** 3)
        out.append((float(dtype(max(mode + j * sd, mode / 4))), float(dtype(a)), float(dtype(b))))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_beta_at_large_concentrations_keeps_its_digits(dtype):
    """Beta(a, b) for a = b = 10⁶ … 10¹⁰ and a ≠ b, one of them below 2 too: within 4 float32 ulps of the decimal truth
    at the float32 inputs (10⁻¹³ in float64), plus the rounding of 1 − x (worth |a − (a + b)x|·ε of the value, as an
    ulp of x's). The plain formula gave −15360 for 11.63 at a = b = 10¹⁰ in float32, and 27 off at a = 1.5, b = 10⁸."""
    cases = beta_inputs(dtype)
    x, a, b = (np.array(v, dtype) for v in zip(*cases))
    got = Beta(a, b).log_prob(x).numpy()
    want = np.array([float(beta_d(*c)) for c in cases])
    xd, ad, bd = (v.astype(np.float64) for v in (x, a, b))
    eps = float(np.finfo(dtype).eps)
    bound = np.abs(want) * (4 * eps if dtype == np.float32 else 1e-13) + eps * np.abs(ad - (ad + bd) * xd)
    bad = np.abs(got - want) > bound
    assert not bad.any(), [(cases[i], got[i], want[i]) for i in np.nonzero(bad)[0]]


def test_beta_at_small_concentrations_is_unchanged():
    """a, b from 0.3 to 40 (both sides of SADDLE_FROM), x from 10⁻³ to 0.999: the decimal truth within 10⁻¹³ in
    float64; at x = 0 and 1 the plain formula's −∞ (a, b > 2) with no NaN in the gradients."""
    cases = [(x, a, b) for a in (0.3, 1.5, 2.5, 40.0) for b in (0.7, 3.0, 12.0) for x in (1e-3, 0.3, 0.999)]
    x, a, b = (np.array(v) for v in zip(*cases))
    check(Beta(a, b).log_prob(x).numpy(), cases, beta_d, ulps=0)
    ta, tb = mv.tensor(np.array([3.0, 3.0]), requires_grad=True), mv.tensor(np.array([4.0, 4.0]), requires_grad=True)
    y = Beta(ta, tb).log_prob(mv.tensor(np.array([0.0, 1.0])))
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), [-np.inf, -np.inf])
    assert not np.isnan(ta.grad).any() and not np.isnan(tb.grad).any()


def grads(dist, params, value):
    ts = [mv.tensor(p, requires_grad=True) for p in params]
    dist(*ts).log_prob(mv.tensor(value)).sum().backward()
    return [t.grad for t in ts]


def test_gradients_in_the_parameters_in_float32_agree_with_the_decimal_truth():
    """∂/∂θ of log_prob at the large-parameter cases, in float32, against the closed forms in decimal at the float32
    inputs: Gamma's ∂α = ln β + ln x − ψ(α), ∂β = α/β − x; Beta's ∂a = ln x − ψ(a) + ψ(a + b), ∂b likewise; NB's
    ∂r = ψ(r + k) − ψ(r) − ln(1 + e^l), ∂l = k·σ(−l) − r·σ(l). Each within 4·ε32·Σ_u |u·∂g/∂u| over the inputs u (what
    rounding each input by ε32 relatively moves the gradient g: the float32 roundings inside the formula are worth no
    more). The plain formulas' gradients miss it: ψ(α) rounded to float32 at α = 10⁸ is 10⁻⁶ off, beside a bound of
    1.5·10⁻⁶ and an error of 5·10⁻⁶ in ln β + ln x − ψ(α) at β = 10⁻³."""
    def within(got, want, sensitivity, what):
        bad = np.abs(got - want) > 4 * EPS32 * sensitivity
        assert not bad.any(), (what, got[bad], want[bad], (np.abs(got - want) / (EPS32 * sensitivity))[bad])

    def psi(v):
        return np.array([float(digamma_d(dec(u))) for u in v])

    cases = gamma_inputs(np.float32)
    x, a, b = (np.array(v, np.float32) for v in zip(*cases))
    ga, gb = grads(Gamma, (a, b), x)
    xd, ad, bd = (v.astype(np.float64) for v in (x, a, b))
    within(ga, np.log(bd) + np.log(xd) - psi(a), 3.0, "Gamma α")  # |β/β| + |x/x| + |α·ψ'(α)| ≈ 3
    within(gb, ad / bd - xd, 2 * ad / bd + xd, "Gamma β")

    cases = beta_inputs(np.float32)
    x, a, b = (np.array(v, np.float32) for v in zip(*cases))
    ga, gb = grads(Beta, (a, b), x)
    xd, ad, bd = (v.astype(np.float64) for v in (x, a, b))
    psi_ab = np.array([float(digamma_d(dec(u) + dec(v))) for u, v in zip(a, b)])
    log_x = np.array([float(precise(lambda v: v.ln())(dec(v))) for v in x])
    log_1mx = np.array([float(precise(lambda v: (1 - v).ln())(dec(v))) for v in x])
    # ∂²/∂a∂x = 1/x, ∂²/∂a² ≈ −1/a + 1/(a + b), ∂²/∂a∂b ≈ 1/(a + b)
    within(ga, log_x - psi(a) + psi_ab, 1 + 2 * bd / (ad + bd), "Beta a")
    within(gb, log_1mx - psi(b) + psi_ab, xd / (1 - xd) + 2 * ad / (ad + bd), "Beta b")

    cases = nb_inputs(np.float32)
    k, r, l = (np.array(v, np.float32) for v in zip(*cases))
    gr, gl = grads(lambda r, l: NegativeBinomial(r, logits=l), (r, l), k)
    want_r = np.array([float(precise(lambda r, k, l: digamma_d(r + k) - digamma_d(r) - (1 + l.exp()).ln())(
        dec(rr), dec(kk), dec(ll))) for kk, rr, ll in zip(k, r, l)])
    kd, rd, ld = (v.astype(np.float64) for v in (k, r, l))
    p, q = 1 / (1 + np.exp(-ld)), 1 / (1 + np.exp(ld))
    within(gr, want_r, kd / (rd + kd) + np.abs(ld) * p, "NB r")  # |r(ψ'(r + k) − ψ'(r))| + |l·σ(l)|
    within(gl, kd * q - rd * p, np.abs(ld) * (kd + rd) * p * q + rd * p, "NB l")
