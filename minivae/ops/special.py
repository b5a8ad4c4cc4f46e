"""The error function, its complement and its inverse, in array arithmetic alone (NumPy has no vectorized erf, and
SciPy is no dependency), so that the same code runs on NumPy and CuPy arrays.

float64 is computed as below, to within a few ulp of the correctly rounded value; float32 and float16 inputs are
computed in float64 and rounded to their dtype, integer ones are float32 (as the other real functions).

erf, |x| < x*   the Maclaurin series erf(x) = (2/√π) Σₙ (−1)ⁿ x²ⁿ⁺¹ / (n! (2n + 1)), 14 terms (the last one
                   below 2⁻⁶⁰ of the sum), written x + x·(2/√π − 1 + …) so that the first term is exact
erfc, x ≥ x*    erfc(x) = e^{−x²}·G(x), G(x) = e^{x²} erfc(x) smooth and slowly varying:
                   - x* ≤ x < 33/8: G's Taylor polynomial of degree 15 about the nearest x₀ = k/4 (|x − x₀| ≤ ⅛),
                     its coefficients from G' = 2xG − 2/√π, (k + 1) a_{k+1} = 2x₀ a_k + 2a_{k−1} − (2/√π)[k = 0], and
                     a₀ = G(x₀) = e^{x₀²} − (2/√π) Σₙ 2ⁿ x₀²ⁿ⁺¹ / (2n + 1)!!, all in 60-digit decimal arithmetic
                   - x ≥ 33/8: Laplace's continued fraction √π·G(x) = 1/(x + ½/(x + 1/(x + (3/2)/(x + 2/(x + …))))),
                     30 levels (below 10⁻²⁰ relative from x = 4 on)
                   - e^{−x²} with x² split exactly in two (``gauss``): e^{−fl(x²)} alone is off by x²·2⁻⁵³ relatively
and the rest by symmetry: erf(x) = 1 − erfc(x) for x ≥ x* (erfc ≤ ½ there: no cancellation), erf(−x) = −erf(x),
erfc(x) = 1 − erf(x) for |x| < x*, erfc(−x) = 2 − erfc(x).

erfinv(y)          Winitzki's closed form w₀ (relative error below 3·10⁻³) and then Halley's iteration on erf(w) = y,
                   w ← w − u/(1 + w·u), u = (erf(w) − y)·(√π/2)·e^{w²}; for |y| ≥ ½ the residual is written
                   (1 − |y|) − erfc(w), exact 1 − |y| and all, since erf(w) − y in float64 would carry an absolute
                   error of 2⁻⁵³ that e^{w²} multiplies by up to 10¹⁵. erfinv(±1) = ±∞, NaN for |y| > 1, as torch.
erfcinv(z)         erfinv(1 − z) by the same iteration, with q = z itself for z < 1 (Normal.icdf's lower tail).

These array formulas compute every branch for every element. float32 and float64 arrays go to fused kernels instead:
with Numba on, minivae/_cpu/special.py (minivae/_cpu/vector.py's branch-free erf and erfc, which LLVM vectorizes, and the
same inverse with all four Halley steps on them), 17-100× faster than these formulas on the machine of the README's
table (benchmarks/special.py); on the GPU, kernels/special.cu, one launch.
"""
import functools
import math
from decimal import Decimal, localcontext

from minivae.engine import Function
from minivae.ops._registry import register
from minivae.ops.unary import real

TWO_OVER_SQRT_PI = 1.1283791670955126  # 2/√π = 1.12837916709551257390…, rounded to float64
SQRT_PI_OVER_2 = 0.886226925452758     # √π/2 = 0.88622692545275801364…
ONE_OVER_SQRT_PI = 0.5641895835477563  # 1/√π = 0.56418958354775628694…
PI = "3.14159265358979323846264338327950288419716939937510582097494459"

SMALL = 0.4769362762044699  # erfinv(½): below it erf by its Maclaurin series, and erfc = 1 − erf ≥ ½ and erf = 1 − erfc
#                              ≥ ½ beyond lose nothing
TAYLOR_END = 33 / 8    # below it, G by its Taylor polynomials about k/4, k = 2 … 16; from it on, by the fraction
MACLAURIN_TERMS, TAYLOR_DEGREE, FRACTION_LEVELS = 14, 15, 30
HALLEY_STEPS = 4  # from w₀ off by 3·10⁻³, the error e → (w²/3)·e³ each step: 3 steps suffice up to w ≈ 22, 4 up to 27
WINITZKI_K = 0.147   # Winitzki's constant in erfinv's start
DEEP = 2.0 ** -1022     # float64's smallest normal number: erfcinv's q below it takes the residual in log form
BEYOND = 28.0          # e^{−28²} is 0 in float64: larger |x| are computed as 28 (and ±∞ and 2⁺¹⁰⁰⁰ never overflow)


@functools.cache
def coefficients():
    """(maclaurin, taylor): the series' coefficients (n ≥ 1) of (erf(x)/x − 1) in x², and the rows of G's Taylor
    coefficients about x₀ = 2/4, 3/4, …, 16/4, [a₀ rounded, a₀'s rounding error, a₁, …, a₁₅]; computed once, in
    60-digit decimal, rounded to float64."""
    with localcontext() as ctx:
        ctx.prec = 60
        c = 2 / Decimal(PI).sqrt()  # 2/√π
        maclaurin = [float(c * (-1) ** n / (math.factorial(n) * (2 * n + 1))) for n in range(1, MACLAURIN_TERMS)]
        taylor = []
        for k in range(2, 17):
            x0 = Decimal(k) / 4
            term = total = x0  # Σₙ 2ⁿ x₀²ⁿ⁺¹ / (2n + 1)!!, all terms positive
            n = 0
            while term > total * Decimal("1e-62"):
                n += 1
                term = term * 2 * x0 * x0 / (2 * n + 1)
                total += term
            a = [(x0 * x0).exp() - c * total]
            a.append(2 * x0 * a[0] - c)
            for j in range(1, TAYLOR_DEGREE):
                a.append((2 * x0 * a[j] + 2 * a[j - 1]) / (j + 1))
            hi = float(a[0])  # a₀ in two parts: its rounding would be the largest error left in G
            taylor.append([hi, float(a[0] - Decimal(hi))] + [float(v) for v in a[1:]])
    return maclaurin, taylor


_COLUMNS = {}  # (array module, device, dtype) → taylor_columns' table there


def taylor_columns(xp, like):
    """G's Taylor coefficients (``coefficients()[1]``) as an array of ``like``'s module, device and dtype, one row a
    coefficient; made once there (on a GPU an upload at each call cost a copy from pageable host memory, which also
    cannot be captured into a CUDA graph)."""
    key = (xp.__name__, str(getattr(like, "device", "cpu")), like.dtype.str)
    table = _COLUMNS.get(key)
    if table is None:
        table = _COLUMNS[key] = xp.asarray(coefficients()[1], dtype=like.dtype).T.copy()
    return table


def split_square(xp, a):
    """(s, d) with a² = s + d, s = hi² exact and d = lo·(a + hi) below 2⁻²⁵·a²: a = hi + lo with hi of half the
    significand's bits (Veltkamp's split), for 0 ≤ a ≤ 28."""
    split = a * (2.0 ** ((xp.finfo(a.dtype).nmant + 2) // 2) + 1)
    hi = split - (split - a)
    return hi * hi, (a - hi) * (a + hi)


def gauss(xp, x):
    """e^{−x²} to about an ulp in x's dtype, e^{−s}·e^{−d} of split_square (e^{−fl(x²)} would be off by x²·2⁻⁵³
    relatively, 30 ulp at x = 5); 0 beyond |x| = 28 (and for ±∞)."""
    s, d = split_square(xp, xp.minimum(xp.abs(x), BEYOND))
    return xp.exp(-s) * xp.exp(-d)


def horner(coefficients, t):
    """Σₖ cₖ tᵏ by Horner's rule, coefficients lowest first (numbers or arrays)."""
    out = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        out = out * t + c
    return out


def scaled_erfc_fraction(x):
    """G(x) = e^{x²} erfc(x) for x ≥ 33/8 by Laplace's continued fraction (module docstring)."""
    t = x
    for n in range(FRACTION_LEVELS, 0, -1):
        t = x + (n / 2) / t
    return ONE_OVER_SQRT_PI / t


def erf_erfc_of_magnitude(xp, a):
    """(erf a, erfc a) for float64 a ≥ 0 (no NaN, at most 28), by the series, polynomials and fraction above."""
    maclaurin, taylor = coefficients()
    z = a * a
    series = horner(maclaurin, z)
    erf_small = a + a * ((TWO_OVER_SQRT_PI - 1) + z * series)  # a + a·(…): the first term exact, the rest ≤ 13% of it

    k = xp.clip(xp.floor(a * 4 + 0.5), 2, 16)  # the nearest x₀ = k/4 of the pieces
    h = a - k / 4
    piece = (k - 2).astype(xp.int64)
    # one gather per coefficient, from its column of 15 values: gathering whole rows into an (…, 17) array and reading
    # its columns (strided) made this loop 4× slower
    columns = taylor_columns(xp, a)
    p = columns[TAYLOR_DEGREE + 1].take(piece)
    for j in range(TAYLOR_DEGREE, 1, -1):
        p = p * h + columns[j].take(piece)
    g_taylor = columns[0].take(piece) + (columns[1].take(piece) + p * h)
    g = xp.where(a < TAYLOR_END, g_taylor, scaled_erfc_fraction(xp.maximum(a, TAYLOR_END)))  # (keeps x off 0)
    s, d = split_square(xp, a)
    erfc_large = xp.exp(-s) * (g + g * xp.expm1(-d))  # e^{−d} = 1 + expm1(−d): one rounding fewer than gauss's
    small = a < SMALL
    return xp.where(small, erf_small, 1 - erfc_large), xp.where(small, 1 - erf_small, erfc_large)


def in_float64(fn, x):
    """fn of x computed in float64, in x's dtype (float32 and float16 rounded once, from float64)."""
    return fn(x) if x.dtype == "float64" else fn(x.astype("float64")).astype(x.dtype)


def fused_special(ctx, x):
    """The fused kernels, or None (the formula, which computes every branch for every element): minivae/_cpu/special.py
    (Numba: the C library's erf and erfc, each element on its own branch) or minivae/_gpu/special.py (one launch of
    kernels/special.cu, CUDA's functions, where the formula makes about a hundred)."""
    return ctx.fused("special", x)


def erf_forward(xp, x, complement):
    nan = xp.isnan(x)
    a = xp.where(nan, 0.0, xp.minimum(xp.abs(x), BEYOND))
    erf_a, erfc_a = erf_erfc_of_magnitude(xp, a)
    if complement:
        out = xp.where(x < 0, 1 + erf_a, erfc_a)  # erfc(−a) = 2 − erfc(a) = 1 + erf(a)
    else:
        out = xp.copysign(erf_a, x)  # erf(−0) = −0
    return xp.where(nan, x, out)


@register("erf")
class Erf(Function):
    """y = erf x = (2/√π) ∫₀ˣ e^{−t²} dt;  x̄ = ḡ·(2/√π)·e^{−x²}.  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        kernel = fused_special(ctx, x)
        return kernel.erf(x) if kernel else in_float64(lambda v: erf_forward(ctx.xp, v, complement=False), x)

    def backward(ctx, g):
        return g * (TWO_OVER_SQRT_PI * gauss(ctx.xp, ctx.x))


@register("erfc")
class Erfc(Function):
    """y = erfc x = 1 − erf x, accurate where it is tiny (x → +∞) as 1 − erf x is not;  x̄ = −ḡ·(2/√π)·e^{−x²}.
    saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        kernel = fused_special(ctx, x)
        return kernel.erfc(x) if kernel else in_float64(lambda v: erf_forward(ctx.xp, v, complement=True), x)

    def backward(ctx, g):
        return g * (-TWO_OVER_SQRT_PI * gauss(ctx.xp, ctx.x))


def inverse_of_magnitude(xp, a, q):
    """The w ≥ 0 with erf w = a, erfc w = q, for a = 1 − q in [0, 1) (each exact where the other is read: a below
    ½, q from ½ on), by Winitzki's w₀ and Halley's steps (module docstring)."""
    tail = a >= 0.5
    # Winitzki's w₀² = √(B² − L/K) − B, B = 2/(πK) + L/2, L = log(1 − a²) = log q + log(1 + a), K = 0.147, written
    # (−L/K)/(√(…) + B) where B > 0, so that small a does not cancel
    log_1_minus_a2 = xp.where(tail, xp.log(xp.where(tail, q, 1.0)) + xp.log1p(a), xp.log1p(-xp.where(tail, 0.0, a) ** 2))
    b = 2 / (math.pi * WINITZKI_K) + log_1_minus_a2 / 2
    c = -log_1_minus_a2 / WINITZKI_K
    root = xp.sqrt(b * b + c)
    w = xp.sqrt(xp.where(b > 0, c / (root + b), root - b))
    # below float64's normal numbers erfc(w) keeps few digits, and q − erfc(w) fewer: there the residual over the
    # slope e^{−w²} is written q·e^{w²} − G(w) = e^{log q + w²} − G(w), every term normal (w > 26.5 for such q)
    deep = q < DEEP
    log_q = xp.log(xp.where(deep, q, 1.0))
    for _ in range(HALLEY_STEPS):
        wc = xp.minimum(w, BEYOND)
        erf_w, erfc_w = erf_erfc_of_magnitude(xp, wc)
        residual = xp.where(tail, q - erfc_w, erf_w - a)  # erf(w) − a
        s, d = split_square(xp, wc)
        u = xp.where(deep, SQRT_PI_OVER_2 * (xp.exp((log_q + s) + d) - scaled_erfc_fraction(xp.maximum(wc, TAYLOR_END))),
                     residual * SQRT_PI_OVER_2 / gauss(xp, w))
        w = w - u / (1 + w * u)
    return w


def erfinv_forward(xp, y):
    a = xp.abs(y)
    inside = a < 1  # (False for NaN)
    a = xp.where(inside, a, 0.0)
    w = inverse_of_magnitude(xp, a, 1 - a)  # 1 − a exact for a ≥ ½ (Sterbenz)
    return xp.copysign(xp.where(inside, w, xp.where(xp.abs(y) == 1, xp.inf, xp.nan)), y)


def erfcinv_forward(xp, z):
    """erfcinv z = erfinv(1 − z), from z itself: for z < 1 the w > 0 with erfc w = z (z the exact q, where 1 − z would
    round away the digits of a small z); for 1 ≤ z < 2, −erfinv(z − 1) (z − 1 and 2 − z exact)."""
    inside = (z > 0) & (z < 2)  # (False for NaN)
    upper = z > 1
    zc = xp.where(inside, z, 1.0)
    a = xp.where(upper, zc - 1, 1 - zc)
    w = inverse_of_magnitude(xp, a, xp.where(upper, 2 - zc, zc))
    w = xp.where(upper, -w, w)
    return xp.where(inside, w, xp.where(z == 0, xp.inf, xp.where(z == 2, -xp.inf, xp.nan)))


@register("erfinv")
class Erfinv(Function):
    """w = erfinv y, the w with erf w = y for −1 < y < 1 (±∞ at ±1, NaN beyond);  ȳ = ḡ·(√π/2)·e^{w²}.  saves w.
    (e^{w²} is rounded from fl(w²): |w| < 6 for |y| < 1 in float64, so that costs at most 36·2⁻⁵³ relative.)"""

    def forward(ctx, y):
        y = real(y)
        kernel = fused_special(ctx, y)
        w = kernel.erfinv(y) if kernel else in_float64(lambda v: erfinv_forward(ctx.xp, v), y)
        ctx.save(w=w)
        return w

    def backward(ctx, g):
        return g * (SQRT_PI_OVER_2 * ctx.xp.exp(ctx.w * ctx.w))


@register("erfcinv")
class Erfcinv(Function):
    """w = erfcinv z = erfinv(1 − z), the w with erfc w = z for 0 < z < 2 (∞ at 0, −∞ at 2, NaN outside [0, 2]),
    computed from z, so that a small z keeps its digits (1 − z would round them away: erfinv(1 − 10⁻²⁰) is ∞);
    z̄ = −ḡ·(√π/2)·e^{w²}.  saves w.  (SciPy's erfcinv; torch has none.)"""

    def forward(ctx, z):
        z = real(z)
        kernel = fused_special(ctx, z)
        w = kernel.erfcinv(z) if kernel else in_float64(lambda v: erfcinv_forward(ctx.xp, v), z)
        ctx.save(w=w)
        return w

    def backward(ctx, g):
        return g * (-SQRT_PI_OVER_2 * ctx.xp.exp(ctx.w * ctx.w))


erf, erfc, erfinv, erfcinv = Erf.apply, Erfc.apply, Erfinv.apply, Erfcinv.apply
