"""erf, erfc, erfinv and erfcinv in loops LLVM vectorizes: no branch, no call to the C library's scalar functions.

The array formula (minivae/ops/special.py, the specification) evaluates every branch for every element (the
series, the Taylor pieces, the continued fraction, and four times over in the inverses' Halley steps): about 100
times the cost of an exp. Here erf and erfc are minivae._cpu.vector.erf_erfc (fdlibm's rational fits chosen by
selects; within 1 and 2 ulp of the exact values, where the formula is within ~2.5), in float64, rounded once to the
input's dtype; the inverses are the formula's own algorithm, Winitzki's start and its four Halley steps with the
residual written the same way, on erf_erfc, each step one vectorized loop over a block of elements.
"""
import math

import numba
import numpy

from minivae._cpu import kernel, vector
from minivae._cpu.vector import erf_erfc
from minivae.ops.special import (BEYOND, DEEP, FRACTION_LEVELS, HALLEY_STEPS, ONE_OVER_SQRT_PI, SQRT_PI_OVER_2,
                                 TAYLOR_END)

WINITZKI_K = 0.147
LOG_2_TO_64 = 64 * math.log(2)
BLOCK = 512  # elements the inverses take through each step together, their three float64 arrays in L1


@numba.njit(inline="always")
def _log(x):
    """log x for positive x, subnormals too (scaled by 2⁶⁴ into the normal numbers first)."""
    tiny = x < 2.0 ** -1000
    return vector.log(x * 2.0 ** 64 if tiny else x) - (LOG_2_TO_64 if tiny else 0.0)


@numba.njit(inline="always")
def _start(a, q):
    """Winitzki's w₀ for erf w = a, erfc w = q (relative error below 3·10⁻³), which needs log(1 − a²) to far less than
    that: log(q·(1 + a)), at most 0."""
    log_1_minus_a2 = min(_log(q * (1.0 + a)), 0.0)
    b = 2 / (math.pi * WINITZKI_K) + log_1_minus_a2 / 2
    c = -log_1_minus_a2 / WINITZKI_K
    root = vector.sqrt(b * b + c)
    return vector.sqrt(c / (root + b) if b > 0 else root - b)


@numba.njit(inline="always")
def _halley(w, a, q):
    """One step of Halley's iteration towards the root of erf w = a, erfc w = q."""
    erf_w, erfc_w = erf_erfc(min(w, BEYOND))
    residual = q - erfc_w if a >= 0.5 else erf_w - a  # erf(w) − a, from the exact one of a and q
    # the slope e^{−w²} only sets how fast the root is reached, not where it is: fl(w²) is enough here (the
    # formula splits w² for erfc's values). A subnormal e^{−w²} (w > 26.6) is still a slope (e^{w²} overflows); the
    # residual is then subnormal too, and u = residual/e^{−w²} is divided out before it is multiplied by w.
    u = residual * SQRT_PI_OVER_2 / vector.exp(-w * w)
    return w - u / (1 + w * u)


@numba.njit(inline="always")
def _deep_halley(w, q):
    """_halley for q below the normal numbers, where erfc w keeps few digits and q − erfc w fewer: the formula's
    residual over the slope, e^{log q + w²} − G(w), G(w) = e^{w²} erfc w by its continued fraction."""
    x = max(min(w, BEYOND), TAYLOR_END)
    t = x
    for n in range(FRACTION_LEVELS, 0, -1):
        t = x + (n / 2) / t
    hi = x * (2.0 ** 27 + 1) - (x * (2.0 ** 27 + 1) - x)  # x² = hi² + (x − hi)(x + hi) (split_square's)
    u = SQRT_PI_OVER_2 * (vector.exp((_log(q) + hi * hi) + (x - hi) * (x + hi)) - ONE_OVER_SQRT_PI / t)
    return w - u / (1 + w * u)


@numba.njit(error_model="numpy")
def _roots(a, q, w, n):
    """w[i] ← the w ≥ 0 with erf w = a[i] and erfc w = q[i], i < n, for a = 1 − q in [0, 1), a exact below ½ and q from ½ on:
    Winitzki's start and the formula's HALLEY_STEPS steps for every element, as the formula (where the C library's
    scalar erf stopped each element once converged). Each step is a loop over the elements: LLVM vectorizes innermost
    loops only, and an element's four steps written out in one loop take minutes to compile."""
    for i in range(n):
        w[i] = _start(a[i], q[i])
    for _ in range(HALLEY_STEPS):
        for i in range(n):
            w[i] = _halley(w[i], a[i], q[i])
    for i in range(n):  # the rare q below the normal numbers, again from the start (a loop apart: the ones above vectorize)
        if q[i] < DEEP:
            w[i] = _start(a[i], q[i])
            for _ in range(HALLEY_STEPS):
                w[i] = _deep_halley(w[i], q[i])


@kernel
def _erf(x, out, complement, divisor):
    if complement:  # (two loops: a select in one would leave LLVM to unswitch it)
        for i in numba.prange(x.size):
            out[i] = erf_erfc(numpy.float64(x[i]) / divisor)[1]
    else:
        for i in numba.prange(x.size):
            out[i] = erf_erfc(numpy.float64(x[i]) / divisor)[0]


@kernel
def _erfinv(y, out):
    for block in numba.prange((y.size + BLOCK - 1) // BLOCK):
        start = block * BLOCK
        n = min(BLOCK, y.size - start)
        # (BLOCK, not n: Numba hoists the arrays out of the loop, each thread's own, reused from block to block)
        a, q, w = numpy.empty(BLOCK), numpy.empty(BLOCK), numpy.empty(BLOCK)
        for i in range(n):
            a[i] = abs(numpy.float64(y[start + i]))
            q[i] = 1 - a[i]  # exact for a ≥ ½ (Sterbenz)
        _roots(a, q, w, n)
        for i in range(n):
            v = numpy.float64(y[start + i])
            # |y| > 1 or NaN: NaN
            out[start + i] = math.copysign(w[i] if a[i] < 1 else (math.inf if a[i] == 1 else math.nan), v)


@kernel
def _erfcinv(z, out):
    for block in numba.prange((z.size + BLOCK - 1) // BLOCK):
        start = block * BLOCK
        n = min(BLOCK, z.size - start)
        # (BLOCK, not n: Numba hoists the arrays out of the loop, each thread's own, reused from block to block)
        a, q, w = numpy.empty(BLOCK), numpy.empty(BLOCK), numpy.empty(BLOCK)
        for i in range(n):
            v = numpy.float64(z[start + i])
            # −erfinv(z − 1) above 1, z − 1 and 2 − z exact; below, z itself the exact q, where 1 − z would round a small
            # z's digits away
            a[i] = v - 1 if v > 1 else 1 - v
            q[i] = 2 - v if v > 1 else v
        _roots(a, q, w, n)
        for i in range(n):
            v = numpy.float64(z[start + i])
            r = -w[i] if v > 1 else w[i]
            out[start + i] = r if 0 < v < 2 else (math.inf if v == 0 else (-math.inf if v == 2 else math.nan))


def _run(k, x, *args):
    out = numpy.empty(x.shape, x.dtype)
    k(x.size, numpy.ascontiguousarray(x).reshape(-1), out.reshape(-1), *args)
    return out


def erf(x, divisor=1.0):
    """erf(x/divisor), elementwise, in x's dtype (the quotient in float64; float32 rounded once from float64)."""
    return _run(_erf, x, False, float(divisor))


def erfc(x, divisor=1.0):
    """erfc(x/divisor) = 1 − erf(x/divisor), elementwise, its tail to the last digit (gelu's Φ(x) = ½·erfc(x/−√2))."""
    return _run(_erf, x, True, float(divisor))


def erfinv(y):
    """The w with erf w = y (±∞ at ±1, NaN beyond)."""
    return _run(_erfinv, y)


def erfcinv(z):
    """The w with erfc w = z (∞ at 0, −∞ at 2, NaN outside [0, 2]), from z itself."""
    return _run(_erfcinv, z)
