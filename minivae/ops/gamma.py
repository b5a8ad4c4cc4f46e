"""The gamma function's family: lgamma, digamma, polygamma, and the implicit reparameterization gradient of a Gamma
draw (standard_gamma), in array arithmetic alone (NumPy has no vectorized lgamma, and SciPy is no dependency), so that
the same code runs on NumPy and CuPy arrays. float64 is computed as below; float32 and float16 inputs in float64,
rounded once to their dtype, integer and bool ones as float32 (``special.in_float64``, as the erf family).

lgamma, 0 < x < 10  reduced to r = x + 2, x + 1, x or x − n in [3/2, 5/2) by Γ(x + 1) = x·Γ(x), and
                    lgamma(2 + t) = (1 − γ)t + Σₘ₌₂³⁰ (−1)ᵐ (ζ(m) − 1) tᵐ/m for |t| ≤ ½ (the terms fall as 4⁻ᵐ;
                    coefficients in 50-digit decimal): relatively accurate at the zeros x = 1 and 2 as well
                    (lgamma(1 + t) = S(t) − log(1 + t), which cancels by a factor of 2.5 only)
lgamma, x ≥ 10      Stirling: (x − ½)·log x − x + ½ log 2π + Σₖ₌₁⁹ B₂ₖ / (2k(2k − 1) x²ᵏ⁻¹)
digamma, x > 0      ψ(x) = ψ(x + n) − Σⱼ₌₀ⁿ⁻¹ 1/(x + j) up to x + n ≥ 10, then
                    ψ(y) = log y − 1/(2y) − Σₖ₌₁¹⁴ B₂ₖ/(2k·y²ᵏ)  (absolutely accurate near its zero x₀ = 1.4616…)
polygamma(n, x > 0) ψ⁽ⁿ⁾(x) = (−1)ⁿ⁺¹ n! ζ(n + 1, x), ζ(s, x) = Σⱼ₌₀ᵐ⁻¹ (x + j)⁻ˢ + ζ(s, y), y = x + m ≥ 10 + n, and
                    Euler–Maclaurin: ζ(s, y) = y¹⁻ˢ/(s − 1) + y⁻ˢ/2 + Σₖ₌₁¹⁴ B₂ₖ/(2k)!·s(s + 1)…(s + 2k − 2)·y⁻ˢ⁻²ᵏ⁺¹
x < 0 (reflection)  lgamma(x) = log(π/|sin πx|) − lgamma(1 − x),  ψ(x) = ψ(1 − x) − π cot πx,
                    ψ⁽ⁿ⁾(x) = (−1)ⁿ ψ⁽ⁿ⁾(1 − x) − πⁿ⁺¹ Pₙ(cot πx), Pₙ the n-th derivative of cot as a polynomial in cot
                    (P₀ = c, Pₙ₊₁ = −(1 + c²)·Pₙ'(c); every coefficient of Pₙ has the sign (−1)ⁿ), sin πx and cot πx
                    taken of r = x − round(x) (exact), so that a large |x| loses nothing to π's rounding

Poles and infinities, torch's: lgamma is +∞ at 0, −0, the negative integers and ±∞; ψ(±0) = ∓∞, NaN at the negative
integers and −∞, ψ(∞) = ∞; ψ⁽ⁿ⁾ is (−1)ⁿ⁺¹·∞ at 0 and (here) at every negative integer, (−1)ⁿ⁺¹·0 at ∞, NaN at −∞.

standard_gamma(α, z): z, a draw of Gamma(α, 1), given; its gradient is the implicit one (Figurnov, Mohamed & Mnih
2018): with u = F(z; α) held fixed, dz/dα = −(∂F/∂α)(z; α) / f(z; α), F the regularized lower incomplete gamma
function P(α, z) and f = z^{α−1}e^{−z}/Γ(α) the density. Both branches are written so that e^{…} cancels:
    z < α + 1   the series P = e^L·S, L = α log z − z − lgamma(α + 1), S = Σₖ tₖ, t₀ = 1, tₖ = tₖ₋₁·z/(α + k)
                (every term positive), ∂S/∂α = −Σₖ tₖ hₖ, hₖ = Σⱼ₌₁ᵏ 1/(α + j); f = e^L·α/z, so
                dz/dα = −(z/α)·[S·(log z − ψ(α + 1)) + ∂S/∂α]
    z ≥ α + 1   Legendre's continued fraction Q = 1 − P = e^{L'}·C, L' = α log z − z − lgamma(α),
                C = 1/(z + 1 − α − 1·(1 − α)/(z + 3 − α − 2·(2 − α)/(z + 5 − α − …))) by the modified Lentz method,
                carried with its derivative in α (forward mode); f = e^{L'}/z, so dz/dα = z·[C·(log z − ψ(α)) + ∂C/∂α]
Each is summed until its terms fall below 2⁻⁵⁶ of the sum (at most SERIES_TERMS, FRACTION_LEVELS); near z = α both
need O(√α) terms (9√α for the series), so for α ≥ TEMME_FROM and |λ − 1| < TEMME_WIDTH, λ = z/α, the gradient is
Temme's uniform asymptotic expansion of P (DLMF 8.12.3–8.12.8) differentiated in α at fixed P (outside that band the
series and the fraction converge in ~40/|λ − 1| terms whatever α, 160 at most):
    with s − 1 − log s = ζ²/2 (ζ of the sign of s − 1), Γ(α)·Q(α, x) = α^α e^{−α} ∫_η^∞ e^{−αζ²/2} f(ζ) dζ,
    f(ζ) = ζ/(s − 1), η = ζ(λ); integrating by parts with f₀ = f, f_{k+1} = d/dζ[(f_k(ζ) − f_k(0))/ζ] gives
    P = Φ(η√α) − φ(η√α)·S/√α,  S = T/Γ*,  T = Σₖ bₖ(η) α⁻ᵏ,  bₖ(η) = (f_k(η) − f_k(0))/η,  Γ*(α) = Σₖ f_k(0) α⁻ᵏ
    (Γ*, Stirling's Γ(α)/(√(2π/α) α^α e^{−α}): 1 + 1/(12α) + 1/(288α²) − …; b₀ = 1/(λ − 1) − 1/η, DLMF's c₀). As
    η_x = μ/(αλη), η_α = −μ/(αη) (μ = λ − 1), dz/dα = −P_α/P_x is
        dz/dα = λ − λ·(η/μ)·N/D,  N = η/2 + η²S/2 − ∂S/∂α + S/(2α),  D = 1 + ηS − (∂S/∂η)/α,
    free of e^{…} and of cancellation (η/μ = √(2(μ − log(1 + μ))/μ²) by its power series in μ, 1 at μ = 0).
    The series of μ(ζ) come from μμ' = ζ(1 + μ) in exact rationals (``temme_coefficients``); TEMME_ORDERS terms in
    1/α, each bₖ to η^{TEMME_DEGREE − 1}: the first left out, below 10⁻³·α^{−TEMME_ORDERS} ≤ 10⁻²¹ at α ≥ 10³,
    and the η-series' tails (|η| ≤ 0.28, radius 2√π) below 10⁻¹⁸. Its normal limit: z = α + ε√α gives
    dz/dα = 1 + ε/(2√α) − (ε² − 1)/(6α) + O(α^{−3/2}) (as the Cornish–Fisher quantile α + t√α + (t² − 1)/3 + …).
Known: past α ≈ 10¹⁶ the fraction's check (δ − 1 within 2⁻⁵⁶, i.e. δ = 1 exactly) can miss for δ's rounding alone
at some z and run all FRACTION_LEVELS after converging, gathering their roundings (3.5·10⁻¹³ of dz/dα at α = 10³⁰,
z = 2α; tests/test_ops_gamma.py holds the tails to 10⁻¹²). A draw z ≤ 0 (the sampler clamps its draws to the dtype's
tiny, as torch's) has gradient 0.

gammainc / gammaincc (P, Q = 1 − P, ∂P/∂α, and x̄ = x^{α−1}e^{−x}/Γ(α)) take the same branches: below α = 10 the series
and the fraction as written above (``incomplete_gamma``), from α = 10 on with x^α e^{−x}/Γ(α) = e^{−αh}·√(α/2π)/Γ*(α),
h = λ − 1 − log λ = η²/2, log Γ* Stirling's series, and log x − ψ(α) = log λ + 1/(2α) + Σₖ B₂ₖ/(2k α²ᵏ) (e^{α log x − x
− lgamma α} is off by ε·α log α relatively, 10⁻⁵ at α = 10¹⁰; log x − ψ(α) cancels to log λ); in the band, Temme's
expansion itself: Q = ½ erfc(η√(α/2)) + e^{−αη²/2}·S/√(2πα), P = ½ erfc(−η√(α/2)) − e^{−αη²/2}·S/√(2πα) (DLMF 8.12.3,
8.12.8), ∂P/∂α = e^{−αη²/2}/√(2πα)·(N − D·μ/η) with the N and D above. Each of P, Q, ∂P/∂α and x̄ is then within a few
ε·(8 + E) of itself, E = αh the exponent (x's own rounding moves them by ε·α|λ − 1|, ≥ ε·E for λ > 0.21): measured 2.6ε·(8 + E) at
α = 10² … 10¹⁰ against decimal Poisson sums (tests/test_gammainc_large.py).

References: Abramowitz & Stegun 6.1.40, 6.3.18, 6.4.11 (the asymptotic series); Numerical Recipes §6.2 (the series and
the continued fraction of the incomplete gamma function); N. M. Temme, "The asymptotic expansion of the incomplete gamma
functions", SIAM J. Math. Anal. 10 (1979); A. R. DiDonato, A. H. Morris, "Computation of the incomplete gamma function
ratios and their inverse", ACM TOMS 12 (1986), §4; M. Figurnov, S. Mohamed, A. Mnih, "Implicit
Reparameterization Gradients", NeurIPS 2018.
"""
import contextlib
import functools
import math
import numbers
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy

from minivae.engine import Function
from minivae.ops._broadcast import unbroadcast
from minivae.ops._registry import register
from minivae.ops.arith import common
from minivae.ops.sampling import SURROGATES
from minivae.ops.special import BEYOND, erf_erfc_of_magnitude, gauss, horner, in_float64
from minivae.ops.unary import real

EULER_GAMMA = "0.57721566490153286060651209008240243104215933593992359880576723"
PI = 3.141592653589793
HALF_LOG_2PI = 0.9189385332046728  # ½ log 2π = 0.91893853320467274178…
LGAMMA_TERMS, STIRLING_TERMS, ASYMPTOTIC_TERMS = 30, 9, 14
ASYMPTOTIC_FROM = 10.0   # digamma's and lgamma's asymptotic series from here on (polygamma's from 10 + n)
SERIES_TERMS, FRACTION_LEVELS, CHECK_EVERY = 4000, 2000, 25
TOLERANCE = 2.0 ** -56
TEMME_FROM, TEMME_WIDTH = 1000.0, 0.25  # standard_gamma_grad by Temme's expansion where α ≥ 10³ and |z/α − 1| < ¼
TEMME_ORDERS, TEMME_DEGREE, TEMME_RATIO_TERMS = 6, 20, 30  # terms in 1/α, in η (each bₖ), in μ (η/μ: 0.25³⁰ < 10⁻¹⁸)


@functools.cache
def quiet(fn):
    """fn(xp, …) without NumPy's warnings: the formulas overflow to ±∞ where the function does (ψ⁽ⁿ⁾ near a pole, lgamma
    of 10³⁰⁷) and compute branches that are not selected; CuPy warns of nothing."""
    @functools.wraps(fn)
    def run(xp, *args):
        with numpy.errstate(all="ignore") if xp is numpy else contextlib.nullcontext():
            return fn(xp, *args)
    return run


@functools.cache
def bernoulli(count):
    """B₀ … B_{count−1} as Fractions (Akiyama–Tanigawa), B₁ = −½."""
    out, row = [], []
    for m in range(count):
        row.append(Fraction(1, m + 1))
        for j in range(m, 0, -1):
            row[j - 1] = j * (row[j - 1] - row[j])
        out.append(row[0])
    out[1] = -out[1]  # (the algorithm gives B₁ = +½)
    return out


@functools.cache
def lgamma_coefficients():
    """[1 − γ, (−1)ᵐ(ζ(m) − 1)/m for m = 2 … LGAMMA_TERMS], ζ(m) − 1 = Σₙ₌₂ n⁻ᵐ summed to n = 40 and the rest by
    Euler–Maclaurin, all in 50-digit decimal, rounded to float64."""
    b = bernoulli(40)
    with localcontext() as ctx:
        ctx.prec = 50
        out = [float(1 - Decimal(EULER_GAMMA))]
        for m in range(2, LGAMMA_TERMS + 1):
            n = 40
            total = sum(Decimal(j) ** -m for j in range(2, n))
            total += Decimal(n) ** (1 - m) / (m - 1) + Decimal(n) ** -m / 2
            rising = Decimal(m)  # m(m + 1)…(m + 2k − 2)
            for k in range(1, 15):
                if k > 1:
                    rising *= (m + 2 * k - 3) * (m + 2 * k - 2)
                bk = b[2 * k]
                total += Decimal(bk.numerator) / Decimal(bk.denominator) / math.factorial(2 * k) * rising \
                    * Decimal(n) ** (-m - 2 * k + 1)
            out.append(float((-1) ** m * total / m))
    return out


@functools.cache
def cot_derivative(n):
    """The coefficients of Pₙ(c) = dⁿ cot(u)/duⁿ as a polynomial in c = cot u, lowest power first (Python ints)."""
    p = [0, 1]
    for _ in range(n):
        dp = [k * p[k] for k in range(1, len(p))] or [0]  # P'
        q = [0] * (len(dp) + 2)
        for k, a in enumerate(dp):  # −(1 + c²)·P'
            q[k] -= a
            q[k + 2] -= a
        p = q
    while len(p) > 1 and p[-1] == 0:
        p.pop()
    return p


def lgamma_positive(xp, a):
    """lgamma of a float64 array a > 0, finite (module docstring)."""
    small = a < ASYMPTOTIC_FROM
    y = xp.where(small, a, 2.0)
    z, prod = y, xp.ones_like(y)
    for _ in range(8):  # lgamma(z) = lgamma(z − 1) + log(z − 1), down to [3/2, 5/2): z − 1 exact
        step = z >= 2.5
        z = xp.where(step, z - 1, z)
        prod = xp.where(step, prod * z, prod)
    below, mid = y < 0.5, y < 1.5
    t = xp.where(below, y, xp.where(mid, y - 1, z - 2))
    correction = xp.where(below, -xp.log(y) - xp.log1p(y), xp.where(mid, -xp.log(y), xp.log(prod)))
    series = t * horner(lgamma_coefficients(), t) + correction
    b = xp.where(small, ASYMPTOTIC_FROM, a)
    w = 1 / (b * b)
    terms = stirling_terms()
    log_b = xp.log(b)
    stirling = b * (log_b - 1) - 0.5 * log_b + HALF_LOG_2PI + horner(terms, w) / b
    return xp.where(small, series, stirling)


@functools.cache
def stirling_terms():
    """B₂ₖ/(2k(2k − 1)), k = 1 … STIRLING_TERMS: log Γ*(b) = lgamma(b) − (b − ½)·log b + b − ½ log 2π = Σₖ B₂ₖ/(2k(2k −
    1) b²ᵏ⁻¹), Stirling's series (lgamma_positive's from ASYMPTOTIC_FROM on, and ``log_gamma_star``)."""
    return [float(bernoulli(2 * STIRLING_TERMS + 2)[2 * k] / (2 * k * (2 * k - 1))) for k in range(1, STIRLING_TERMS + 1)]


def log_gamma_star(xp, b):
    """log Γ*(b) by Stirling's series (``stirling_terms``), b ≥ ASYMPTOTIC_FROM (Γ*'s series in Temme's expansion below
    is its exponential)."""
    return horner(stirling_terms(), 1 / (b * b)) / b


def shifted(xp, a, power, until):
    """(y, Σⱼ (a + j)^power) with y = a + m the first of a, a + 1, … that is ≥ until (power −1: 1/(a + j))."""
    acc = xp.zeros_like(a)
    for _ in range(int(math.ceil(until))):
        step = a < until
        term = 1 / a if power == -1 else a ** power
        acc = acc + xp.where(step, term, 0.0)
        a = xp.where(step, a + 1, a)
    return a, acc


def digamma_positive(xp, a):
    """ψ of a float64 array a > 0, finite."""
    y, acc = shifted(xp, a, -1, ASYMPTOTIC_FROM)
    w = 1 / (y * y)
    terms = digamma_terms()
    return xp.log(y) - 0.5 / y - w * horner(terms, w) - acc


@functools.cache
def digamma_terms():
    """B₂ₖ/(2k), k = 1 … ASYMPTOTIC_TERMS: ψ(y) = log y − 1/(2y) − Σₖ B₂ₖ/(2k·y²ᵏ) for y ≥ ASYMPTOTIC_FROM (also the
    incomplete gamma function's log x − ψ(α) at a large α, as log(x/α) + 1/(2α) + the sum, where log x − ψ(α) would
    cancel: ``power_terms``)."""
    return [float(bernoulli(2 * ASYMPTOTIC_TERMS + 2)[2 * k] / (2 * k)) for k in range(1, ASYMPTOTIC_TERMS + 1)]


@functools.cache
def zeta_terms(n):
    """B₂ₖ/(2k)!·(n + 1)(n + 2)…(n + 2k − 1), k = 1 … ASYMPTOTIC_TERMS: ζ(n + 1, y)'s Euler–Maclaurin tail."""
    b, out, rising = bernoulli(2 * ASYMPTOTIC_TERMS + 2), [], 1
    for k in range(1, ASYMPTOTIC_TERMS + 1):
        for j in (2 * k - 2, 2 * k - 1):
            if j >= 1:
                rising *= n + j
        out.append(float(b[2 * k] / math.factorial(2 * k) * rising))
    return out


def polygamma_positive(xp, n, a):
    """ψ⁽ⁿ⁾ of a float64 array a > 0, finite, n ≥ 1."""
    y, acc = shifted(xp, a, -(n + 1), ASYMPTOTIC_FROM + n)
    w = 1 / (y * y)
    zeta = acc + y ** -n * (1 / n + 0.5 / y + w * horner(zeta_terms(n), w))
    return (-1) ** (n + 1) * float(math.factorial(n)) * zeta


def reflected(xp, x):
    """(negative, pole, r, safe): x < 0; x a pole (0, −0, a negative integer, −∞); r = x − round(x) where x < 0 (else
    ½); safe: 1 − x where x < 0, else x, with the poles, NaNs and ±∞ replaced by 1 (every branch finite)."""
    finite = xp.isfinite(x)
    negative = x < 0
    pole = (x <= 0) & (xp.floor(xp.where(finite, x, 0.5)) == x) | (x == -xp.inf)
    r = xp.where(negative & finite, x - xp.round(xp.where(finite, x, 0.0)), 0.5)
    safe = xp.where(pole | ~finite, 1.0, xp.where(negative, 1 - x, x))
    return negative, pole, r, safe


@quiet
def lgamma_forward(xp, x):
    negative, pole, r, safe = reflected(xp, x)
    lg = lgamma_positive(xp, safe)
    out = xp.where(negative, xp.log(PI / xp.abs(xp.sin(PI * r))) - lg, lg)
    out = xp.where(pole | (x == xp.inf), xp.inf, out)
    return xp.where(xp.isnan(x), x, out)


def cot_pi(xp, r):
    return xp.cos(PI * r) / xp.sin(PI * r)


@quiet
def digamma_forward(xp, x):
    negative, pole, r, safe = reflected(xp, x)
    psi = digamma_positive(xp, safe)
    out = xp.where(negative, psi - PI * cot_pi(xp, xp.where(pole, 0.5, r)), psi)
    out = xp.where(pole, xp.where(x == 0, xp.copysign(xp.inf, -x), xp.nan), out)  # ψ(±0) = ∓∞ (torch's)
    out = xp.where(x == xp.inf, xp.inf, out)
    return xp.where(xp.isnan(x), x, out)


@quiet
def polygamma_forward(xp, n, x):
    negative, pole, r, safe = reflected(xp, x)
    psi = polygamma_positive(xp, n, safe)
    c = cot_pi(xp, xp.where(pole, 0.5, r))
    p = cot_derivative(n)
    odd = [float(v) for v in p[n % 2 + 1::2]] if n % 2 == 0 else None  # Pₙ = c·Q(c²) for even n, Q(c²) for odd n
    q = horner(odd, c * c) * c if odd else horner([float(v) for v in p[::2]], c * c)
    out = xp.where(negative, (-1) ** n * psi - PI ** (n + 1) * q, psi)
    sign = float((-1) ** (n + 1))
    out = xp.where(pole & (x != -xp.inf), sign * xp.inf, out)
    out = xp.where(x == -xp.inf, xp.nan, xp.where(x == xp.inf, sign * 0.0, out))
    return xp.where(xp.isnan(x), x, out)


def check_order(n):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"polygamma: n must be an integer, got {n!r}")
    if n < 0:
        raise ValueError(f"polygamma: n must be >= 0, got {n}")
    return int(n)


@register("lgamma")
class Lgamma(Function):
    """y = log|Γ(x)|;  x̄ = ḡ·ψ(x).  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        return in_float64(lambda v: lgamma_forward(ctx.xp, v), x)

    def backward(ctx, g):
        return g * in_float64(lambda v: digamma_forward(ctx.xp, v), ctx.x)


@register("digamma")
class Digamma(Function):
    """y = ψ(x) = Γ'(x)/Γ(x);  x̄ = ḡ·ψ⁽¹⁾(x).  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        return in_float64(lambda v: digamma_forward(ctx.xp, v), x)

    def backward(ctx, g):
        return g * in_float64(lambda v: polygamma_forward(ctx.xp, 1, v), ctx.x)


@register("polygamma")
class Polygamma(Function):
    """y = ψ⁽ⁿ⁾(x), the n-th derivative of ψ (n ≥ 1; n = 0 is digamma's op);  x̄ = ḡ·ψ⁽ⁿ⁺¹⁾(x).  saves x, n."""

    def forward(ctx, x, n=1):
        x = real(x)
        ctx.save(x=x, n=n)
        return in_float64(lambda v: polygamma_forward(ctx.xp, n, v), x)

    def backward(ctx, g):
        return g * in_float64(lambda v: polygamma_forward(ctx.xp, ctx.n + 1, v), ctx.x)


def polygamma(n, x):
    """ψ⁽ⁿ⁾(x) as torch.polygamma(n, input): n = 0 is digamma."""
    n = check_order(n)
    return Digamma.apply(x) if n == 0 else Polygamma.apply(x, n=n)


lgamma, digamma = Lgamma.apply, Digamma.apply


# ---- the implicit reparameterization gradient of a Gamma(α, 1) draw ---------------------------------------------
def _converged(xp, small, big):
    """Where |small| ≤ 2⁻⁵⁶·|big| (NaN counts as converged, as in the kernels)."""
    return ~(xp.abs(small) > TOLERANCE * xp.abs(big))


def _still(xp, live, *converged):
    """``live`` less the elements converged now, and whether any is left: checked every CHECK_EVERY terms, each element
    frozen at the first check it passes, as the kernels' loops (kernels/gamma.cu, minivae/_cpu/gamma.py) stop each
    element there (the sums or the fraction's product run on would gather a rounding a term: 2·10⁻¹³ of Q after 2000
    levels). On a GPU with its kernels off, ``any`` is a copy to the host."""
    for c in converged:
        live = live & ~c
    return live, bool(xp.any(live))


def gamma_series(xp, a, z):
    """(S, ∂S/∂α) of the series branch (module docstring), for arrays a > 0, z > 0 of one shape."""
    t, s, h, ds = xp.ones_like(z), xp.ones_like(z), xp.zeros_like(z), xp.zeros_like(z)
    live = xp.ones(z.shape, bool)
    for k in range(1, SERIES_TERMS + 1):
        ak = a + k
        t = t * z / ak
        h = h + 1 / ak
        s = xp.where(live, s + t, s)
        ds = xp.where(live, ds - t * h, ds)
        if k % CHECK_EVERY == 0:
            live, more = _still(xp, live, _converged(xp, t, s) & _converged(xp, t * h, ds))
            if not more:
                break
    return s, ds


def gamma_fraction(xp, a, z):
    """(C, ∂C/∂α) of the continued fraction (module docstring), by the modified Lentz method with forward-mode
    derivatives (b' = −1, aᵢ' = i), for arrays a > 0, z ≥ a + 1 of one shape."""
    b = z + 1 - a
    db = -1.0
    d = 1 / b
    dd = -d * d * db
    c, dc = 1e300 * xp.ones_like(z), xp.zeros_like(z)
    h, dh = d, dd
    live = xp.ones(z.shape, bool)
    for i in range(1, FRACTION_LEVELS + 1):
        an, dan = -i * (i - a), float(i)
        b = b + 2
        den = an * d + b
        dden = dan * d + an * dd + db
        d = 1 / den
        dd = -d * d * dden
        c_new = b + an / c
        dc = db + dan / c - an * dc / (c * c)
        c = c_new
        delta = d * c
        ddelta = dd * c + d * dc
        dh = xp.where(live, dh * delta + h * ddelta, dh)
        h = xp.where(live, h * delta, h)
        if i % CHECK_EVERY == 0:
            live, more = _still(xp, live, _converged(xp, delta - 1, 1.0) & _converged(xp, h * ddelta, dh))
            if not more:
                break
    return h, dh


def _branches(xp, a, z):
    """(series, S, ∂S/∂α, C, ∂C/∂α) for float64 arrays a > 0, z > 0 of one shape: ``series`` where z < α + 1, the
    series' side; each branch evaluated at every element, on its own side (the other side's elements at a point of
    it where it converges fast), for ``xp.where`` to choose."""
    series = z < a + 1
    s, ds = gamma_series(xp, a, xp.where(series, z, xp.minimum(a, 1.0) * 0.5))
    c, dc = gamma_fraction(xp, a, xp.where(series, a + 1, z))
    return series, s, ds, c, dc


@quiet
def standard_gamma_grad(xp, a, z):
    """dz/dα of draws z of Gamma(α, 1) at fixed F(z; α) (module docstring): float64 arrays of one shape."""
    positive = z > 0
    z = xp.where(positive, z, 1.0)
    temme = (a >= TEMME_FROM) & (xp.abs(z / a - 1) < TEMME_WIDTH)
    near = temme_gradient(xp, xp.where(temme, a, TEMME_FROM), xp.where(temme, z, TEMME_FROM))
    z = xp.where(temme, 0.5, z)  # (Temme's elements for the sums at a point where the series converges at once)
    series, s, ds, c, dc = _branches(xp, a, z)
    log_z = xp.log(z)
    low = -(z / a) * (s * (log_z - digamma_positive(xp, a + 1)) + ds)
    high = z * (c * (log_z - digamma_positive(xp, a)) + dc)
    return xp.where(positive, xp.where(temme, near, xp.where(series, low, high)), 0.0)


@functools.cache
def temme_coefficients():
    """(ratio, b, gstar): float64 coefficients, lowest power first, of η/μ in μ (η/μ = √(2r), r = (μ − log(1 + μ))/μ² =
    Σₙ (−1)ⁿ μⁿ/(n + 2)), of bₖ(η) in η for k < TEMME_ORDERS, and Γ*'s f_k(0) (module docstring), from exact
    rationals: μ(ζ) = Σ mₙ ζⁿ by μμ' = ζ(1 + μ) ((n + 1)mₙ = mₙ₋₁ − Σᵢ₌₂ⁿ⁻¹ mᵢ(n + 1 − i)m_{n+1−i}, m₁ = 1), f = ζ/μ
    by series division, f_{k+1}'s coefficients (j + 1)·(f_k's of degree j + 2)."""
    degree = TEMME_DEGREE + 2 * TEMME_ORDERS + 1
    m = [Fraction(0), Fraction(1)] + [Fraction(0)] * degree
    for n in range(2, degree + 2):
        m[n] = (m[n - 1] - sum(m[i] * (n + 1 - i) * m[n + 1 - i] for i in range(2, n))) / (n + 1)
    f = [Fraction(1)] + [Fraction(0)] * degree  # 1/(μ/ζ), μ/ζ = m₁ + m₂ζ + …, m₁ = 1
    for j in range(1, degree + 1):
        f[j] = -sum(m[i + 1] * f[j - i] for i in range(1, j + 1))
    b, gstar = [], []
    for _ in range(TEMME_ORDERS):
        gstar.append(float(f[0]))
        b.append([float(v) for v in f[1:TEMME_DEGREE + 1]])
        f = [(j + 1) * f[j + 2] for j in range(len(f) - 2)]
    r2 = [Fraction(2 * (-1) ** n, n + 2) for n in range(TEMME_RATIO_TERMS)]
    ratio = [Fraction(1)] + [Fraction(0)] * (TEMME_RATIO_TERMS - 1)  # √(2r), 2r = 1 − 2μ/3 + …
    for n in range(1, TEMME_RATIO_TERMS):
        ratio[n] = (r2[n] - sum(ratio[i] * ratio[n - i] for i in range(1, n))) / 2
    return [float(v) for v in ratio], b, gstar


def horner_derivative(coefficients, t):
    """(p(t), p'(t)) of p = Σₖ cₖ tᵏ, coefficients lowest first, by Horner's rule carried with its derivative."""
    p, dp = coefficients[-1], 0.0
    for c in reversed(coefficients[:-1]):
        dp = dp * t + p
        p = p * t + c
    return p, dp


def in_temme_band(xp, a, x):
    """Where gammainc takes Temme's expansion: α ≥ TEMME_FROM and |x/α − 1| < TEMME_WIDTH (standard_gamma_grad's band,
    written out there too)."""
    return (a >= TEMME_FROM) & (xp.abs(x / a - 1) < TEMME_WIDTH)


def temme_gradient(xp, a, z):
    """dz/dα by Temme's expansion (module docstring), for float64 arrays α ≥ TEMME_FROM, |z/α − 1| < TEMME_WIDTH."""
    lam = z / a
    w, _, _, n, d = temme_series(xp, a, lam - 1)
    return lam - lam * w * n / d


def temme_series(xp, a, mu):
    """(η/μ, η, S, N, D) of Temme's expansion (module docstring) at α and μ = z/α − 1, |μ| < TEMME_WIDTH."""
    ratio, b, gstar = temme_coefficients()
    w = horner(ratio, mu)  # η/μ
    eta = mu * w
    inv = 1 / a
    t = dt = u = g = v = 0.0  # T, ∂T/∂η, Σₖ k·bₖ·α⁻ᵏ, Γ*, Σₖ k·f_k(0)·α⁻ᵏ: Horner's rule in 1/α
    for k in range(TEMME_ORDERS - 1, -1, -1):
        bk, dbk = horner_derivative(b[k], eta)
        t = t * inv + bk
        dt = dt * inv + dbk
        u = u * inv + k * bk
        g = g * inv + gstar[k]
        v = v * inv + k * gstar[k]
    s = t / g
    ds_a = (s * v - u) * inv / g  # ∂S/∂α = (∂T/∂α − S·∂Γ*/∂α)/Γ*, ∂T/∂α = −u/α, ∂Γ*/∂α = −v/α
    n = 0.5 * eta + 0.5 * eta * eta * s - ds_a + 0.5 * s * inv
    d = 1 + eta * s - dt / g * inv
    return w, eta, s, n, d


def _undefined(xp, a, x):
    """Where P(α, x) is NaN: α < 0, x < 0 or NaN, α = x = 0, α = x = ∞ (torch's)."""
    return ~((a >= 0) & (x >= 0)) | ((a == 0) & (x == 0)) | (xp.isinf(a) & xp.isinf(x))


@quiet
def incomplete_gamma(xp, a, x):
    """(P, Q, ∂P/∂α) of the regularized incomplete gamma functions at float64 arrays α, x of one shape:
    P(α, x) = γ(α, x)/Γ(α) = ∫₀ˣ t^{α−1}e^{−t} dt/Γ(α), Q = 1 − P. For x < α + 1 the series (module docstring)
    P = e^L·S, ∂P/∂α = e^L·[S·(log x − ψ(α + 1)) + ∂S/∂α], Q = 1 − P; else the continued fraction Q = e^{L'}·C,
    ∂P/∂α = −e^{L'}·[C·(log x − ψ(α)) + ∂C/∂α], P = 1 − Q: each of P and Q from its own branch where it is the smaller
    (Numerical Recipes §6.2), except Q for α < 1 on the series' side (``small_alpha_q``). The limits, torch's:
    P(α, 0) = 0, P(α, ∞) = 1, P(0, x > 0) = 1, P(∞, x) = 0 (∂P/∂α = 0 at each); NaN for α < 0, x < 0 or NaN, and for
    α = x = 0 or α = x = ∞. From α = 10 on e^L and e^{L'} and their α-derivatives by ``power_terms``; in Temme's band
    (``in_temme_band``, standard_gamma's) all three by ``temme_incomplete`` (module docstring)."""
    nan = _undefined(xp, a, x)
    edge = nan | (a == 0) | xp.isinf(a) | (x == 0) | xp.isinf(x)
    p_edge = xp.where((a == 0) | xp.isinf(x), 1.0, 0.0)  # (the rest of the edges: x = 0 or α = ∞, P = 0)
    a, x = xp.where(edge, 1.0, a), xp.where(edge, 1.0, x)
    temme = in_temme_band(xp, a, x)
    near = temme_incomplete(xp, xp.where(temme, a, TEMME_FROM), xp.where(temme, x, TEMME_FROM))
    x = xp.where(temme, 0.5, x)  # (Temme's elements for the sums at a point where the series converges at once)
    series, s, ds, c, dc = _branches(xp, a, x)
    log_x = xp.log(x)
    e_series, e_fraction, dl_series, dl_fraction = power_terms(xp, a, x, log_x)
    p_series, q_fraction = e_series * s, e_fraction * c
    p = xp.where(series, p_series, 1 - q_fraction)
    q = xp.where(series, xp.where(a < 1, small_alpha_q(xp, a, x, log_x), 1 - p_series), q_fraction)
    dp = xp.where(series, e_series * (s * dl_series + ds), -e_fraction * (c * dl_fraction + dc))
    p, q, dp = (xp.where(temme, v, w) for v, w in zip(near, (p, q, dp)))
    p = xp.where(nan, xp.nan, xp.where(edge, p_edge, p))
    q = xp.where(nan, xp.nan, xp.where(edge, 1 - p_edge, q))
    return p, q, xp.where(nan, xp.nan, xp.where(edge, 0.0, dp))


def power_terms(xp, a, x, log_x):
    """(e^L, e^{L'}, ∂L/∂α, ∂L'/∂α) of the series and the fraction (module docstring): L = α log x − x − lgamma(α + 1),
    L' = L + log α. Below α = ASYMPTOTIC_FROM so written; from it on e^{L'} = x^α e^{−x}/Γ(α) = e^{−αh}·√(α/2π)/Γ*(α)
    (``scaled_power``) and ∂L'/∂α = log x − ψ(α) = log λ + 1/(2α) + Σₖ B₂ₖ/(2k α²ᵏ), λ = x/α, so that neither the
    exponent's terms of size α log α nor log x − ψ(α) cancel (e^L relatively off by ε·α log α: 10⁻⁵ at α = 10¹⁰)."""
    small = a < ASYMPTOTIC_FROM
    e_series, e_fraction = (xp.exp(a * log_x - x - lgamma_positive(xp, v)) for v in (a + 1, a))
    dl_series, dl_fraction = (log_x - digamma_positive(xp, v) for v in (a + 1, a))
    b = xp.where(small, ASYMPTOTIC_FROM, a)
    log_lam, h = log_ratio_and_exponent(xp, b, x)
    scaled = scaled_power(xp, b, h)
    w = 1 / (b * b)
    dl = log_lam + 0.5 / b + w * horner(digamma_terms(), w)
    return (xp.where(small, e_series, scaled / b), xp.where(small, e_fraction, scaled),
            xp.where(small, dl_series, dl - 1 / b), xp.where(small, dl_fraction, dl))


DEEP = 2.0 ** -1022  # float64's smallest normal number


def log_ratio_and_exponent(xp, a, x):
    """(log λ, h) at λ = x/α: h = λ − 1 − log λ = η²/2 ≥ 0 (Temme's η), each relatively accurate. μ = (x − α)/α
    (x − α exact within a factor 2 of α); log λ = log1p(μ) from λ = ½ on, log(x/α) below (where 1 + μ would lose λ's
    digits; x/α kept from 0, where e^{−αh} is 0 at α ≥ ASYMPTOTIC_FROM whatever); h, which cancels to μ²/2 near λ = 1,
    as (μ·η/μ)²/2 by the series of η/μ where |μ| < TEMME_WIDTH."""
    mu = (x - a) / a
    lam = x / a
    log_lam = xp.where(lam < 0.5, xp.log(xp.maximum(lam, DEEP)), xp.log1p(mu))
    band = xp.abs(mu) < TEMME_WIDTH
    eta = mu * horner(temme_coefficients()[0], xp.where(band, mu, 0.0))
    return log_lam, xp.where(band, 0.5 * eta * eta, mu - log_lam)


def scaled_power(xp, a, h):
    """x^α e^{−x}/Γ(α) = e^{−αh}·√(α/2π)/Γ*(α), h = λ − 1 − log λ (``log_ratio_and_exponent``), α ≥ ASYMPTOTIC_FROM:
    Γ(α) = Γ*(α)·√(2π/α)·α^α e^{−α}. Relatively off by a few ε·(1 + αh), αh the exponent that x's own rounding moves
    by ε·α|λ − 1|."""
    return xp.exp(-a * h - log_gamma_star(xp, a)) * xp.sqrt(a / (2 * PI))


def temme_incomplete(xp, a, x):
    """(P, Q, ∂P/∂α) by Temme's expansion (module docstring), for float64 arrays α ≥ TEMME_FROM, |x/α − 1| <
    TEMME_WIDTH: with t = η√(α/2), R = φ(η√α)·S/√α = e^{−t²}·S/√(2πα),
        Q = ½ erfc(t) + R,  P = ½ erfc(−t) − R,  ∂P/∂α = e^{−t²}/√(2πα)·(N − D·μ/η)
    (the derivative of P = Φ(η√α) − φ(η√α)·S/√α at fixed x, η_α = −μ/(αη)); each of P and Q is the smaller one's
    complement where it is not the smaller, ½erfc(|t|) ± R taken where it is (of opposite signs in the tails, the erfc
    term is μ/η ≤ 1.1 times their sum: no cancellation to speak of). μ = (x − α)/α, relatively accurate (x/α − 1
    would be off by ε absolutely: ε√α in t)."""
    w, eta, s, n, d = temme_series(xp, a, (x - a) / a)
    t = eta * xp.sqrt(0.5 * a)
    erf_t, erfc_t = erf_erfc_of_magnitude(xp, xp.minimum(xp.abs(t), BEYOND))
    scale = gauss(xp, t) / xp.sqrt((2 * PI) * a)
    r = xp.where(eta < 0, -scale, scale) * s
    smaller, larger = 0.5 * erfc_t + r, 0.5 + 0.5 * erf_t - r
    upper = eta >= 0
    return xp.where(upper, larger, smaller), xp.where(upper, smaller, larger), scale * (n - d / w)


SMALL_ALPHA_TERMS = 30  # x < α + 1 < 2: the terms xⁿ/n! < 2ⁿ/n! fall below 10⁻²³ by n = 30


def small_alpha_q(xp, a, x, log_x):
    """Q(α, x) for α < 1, x < α + 1, where Q is small (Q(0.001, 1) ≈ 2·10⁻⁴) and 1 − P would lose its digits:
    γ(α, x) = Σₙ (−1)ⁿ x^{α+n}/(n!(α + n)) gives P = (x^α/Γ(α + 1))·(1 + α·T), T = Σₙ₌₁ (−x)ⁿ/(n!(α + n)), so
    Q = u − (1 − u)·α·T with u = 1 − x^α/Γ(α + 1) = −expm1(α log x − lgamma(α + 1)), both terms O(α) and each
    computed to its own relative accuracy (DiDonato & Morris 1986, §3)."""
    term, t = xp.ones_like(x), xp.zeros_like(x)
    for n in range(1, SMALL_ALPHA_TERMS + 1):
        term = term * (-x / n)
        t = t + term / (a + n)
    # lgamma(1 + α) from α itself below ½, by lgamma_positive's own series (|t| ≤ ½): lgamma(2 + α) − log(1 + α)
    # (α + 1 rounded would move lgamma(1 + α) ≈ −γα by 10⁻¹³ of itself at α = 0.001)
    half = xp.minimum(a, 0.5)
    lgamma_1p = xp.where(a < 0.5, half * horner(lgamma_coefficients(), half) - xp.log1p(half), lgamma_positive(xp, a + 1))
    u = -xp.expm1(a * log_x - lgamma_1p)
    return u - (1 - u) * a * t


@quiet
def gamma_density(xp, a, x):
    """∂P/∂x = x^{α−1}e^{−x}/Γ(α) at float64 arrays α, x of one shape, its limits included: at x = 0, ∞ for α < 1,
    1 for α = 1, 0 for α > 1; 0 at x = ∞ and for α = 0 or ∞ (P constant there); NaN where P is (incomplete_gamma)."""
    nan = _undefined(xp, a, x)
    flat = (a == 0) | xp.isinf(a) | xp.isinf(x)
    safe_a = xp.where(flat | nan, 1.0, a)
    power = xp.where(safe_a == 1, 0.0, (safe_a - 1) * xp.log(xp.where(nan, 1.0, x)))  # (α − 1)·log x, 0 at α = 1
    density = xp.exp(power - x - lgamma_positive(xp, safe_a))
    large = (safe_a >= ASYMPTOTIC_FROM) & (x > 0)  # (x^α e^{−x}/Γ(α))/x, no exponent of size α log α to cancel
    b, positive = xp.where(large, safe_a, ASYMPTOTIC_FROM), xp.where(large, x, 1.0)
    density = xp.where(large, scaled_power(xp, b, log_ratio_and_exponent(xp, b, positive)[1]) / positive, density)
    return xp.where(nan, xp.nan, xp.where(flat, 0.0, density))


@register("gammainc")
class Gammainc(Function):
    """z = P(α, x), the regularized lower incomplete gamma function (``complement``: Q(α, x) = 1 − P, the upper), as
    torch.special.gammainc / gammaincc (their names and limits);  x̄ = ±ḡ·x^{α−1}e^{−x}/Γ(α) (the Gamma(α, 1) density);
    ᾱ = ±ḡ·∂P/∂α (the series or the continued fraction carried with its derivative in α, or Temme's expansion
    differentiated in α: ``incomplete_gamma``), both summed to their operand's shape. Computed in float64 and rounded
    once to the operands' common dtype (integers as float32). torch has no gradient in α (it raises); where it gives NaN
    for x̄ at a limit (x = 0 with α = 1, x = ∞), this is the limit (1, 0). Accurate at every α: from α = 10 on P, Q, ᾱ
    and x̄ each within a few ε·(8 + E) of itself, E = α(λ − 1 − log λ), λ = x/α (x's own rounding moves them by
    ε·α|λ − 1|), by Temme's expansion where α ≥ 10³ and |λ − 1| < ¼ (module docstring). On a GPU, every 25 terms a
    convergence check is a copy to the host (no fused kernel yet).  saves α, x in float64, and ∂P/∂α where α needs a
    gradient (made with P by the same branch)."""

    def forward(ctx, a, x, complement=False):
        xp = ctx.xp
        a, x = common((a, x))
        shape = numpy.broadcast_shapes(a.shape, x.shape)
        a64, x64 = (xp.broadcast_to(v, shape).astype(numpy.float64) for v in (a, x))
        p, q, dp = incomplete_gamma(xp, a64, x64)
        ctx.save(a64=a64, x64=x64, shapes=(a.shape, x.shape), complement=complement,
                 dp=dp if ctx.needs_input_grad[0] else None)
        return (q if complement else p).astype(a.dtype)

    def backward(ctx, g):
        sign = -1.0 if ctx.complement else 1.0
        ga = gx = None
        if ctx.needs_input_grad[0]:
            ga = unbroadcast(g * (sign * ctx.dp).astype(g.dtype), ctx.shapes[0])
        if ctx.needs_input_grad[1]:
            gx = unbroadcast(g * (sign * gamma_density(ctx.xp, ctx.a64, ctx.x64)).astype(g.dtype), ctx.shapes[1])
        return ga, gx


def gammainc(a, x):
    """P(α, x) = γ(α, x)/Γ(α), differentiable in α and x (``Gammainc``); torch.special.gammainc(input, other)."""
    return Gammainc.apply(a, x)


def gammaincc(a, x):
    """Q(α, x) = 1 − P(α, x) = Γ(α, x)/Γ(α), from its own branch where it is small; torch.special.gammaincc."""
    return Gammainc.apply(a, x, complement=True)


@register("standard_gamma", nondifferentiable_inputs=(1,))
class StandardGamma(Function):
    """y = z, a draw of Gamma(α, 1) given (``draw``, no gradient of its own), in the result dtype of α and z;
    ᾱ = ḡ·dz/dα at fixed F(z; α) = −ḡ·(∂F/∂α)(z; α)/f(z; α) (implicit reparameterization, module docstring), summed
    to α's shape.  saves α, z.  fused: on the GPU, ḡ·dz/dα in one launch of kernels/gamma.cu standard_gamma_grad
    (each element's series or fraction checked for convergence on its own, no copy to the host).  (torch's
    torch._standard_gamma draws and differentiates in one; the draw is an argument here, as every stochastic op's
    noise.)"""

    def forward(ctx, concentration, draw):
        xp = ctx.xp
        a, z = common((concentration, draw))  # (PyTorch's promotion; integers alone as float32)
        ctx.save(a=a, z=xp.broadcast_to(z, numpy.broadcast_shapes(a.shape, z.shape)))
        return xp.array(ctx.z)

    def backward(ctx, g):
        xp = ctx.xp
        kernel = ctx.fused("gamma", ctx.z)  # (kernels/gamma.cu on the GPU, minivae/_cpu/gamma.py with Numba)
        if kernel is not None:
            ga = kernel.standard_gamma_grad(ctx.a, ctx.z, g)
        else:
            a = xp.broadcast_to(ctx.a, ctx.z.shape).astype("float64")
            ga = g * standard_gamma_grad(xp, a, ctx.z.astype("float64")).astype(ctx.z.dtype)
        return unbroadcast(ga, ctx.a.shape), None


SURROGATES.add("standard_gamma")  # its VJP is not the derivative of its forward (y = z): tested apart
standard_gamma = StandardGamma.apply
