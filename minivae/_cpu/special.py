"""erf, erfc, erfinv and erfcinv one element at a time, each element taking only its own branch.

The array formula (minivae/ops/special.py, the specification) evaluates every branch for every element (the
series, the Taylor pieces, the continued fraction, and four times over in the inverses' Halley steps): about 100
times the cost of an exp. Here erf and erfc are the C library's (within ~2.3 ulp of the exact value, as the formula
is within ~2.5), in float64, rounded once to the input's dtype; the inverses are the formula's own algorithm,
Winitzki's start and Halley's steps with the residual written the same way, on the C library's erf and erfc.
"""
import math

import numba
import numpy

from minivae._cpu import kernel
from minivae._cpu.vector import erf_erfc
from minivae.ops.special import BEYOND, HALLEY_STEPS, SQRT_PI_OVER_2

WINITZKI_K = 0.147


@numba.njit(inline="always")
def _inverse(a, q):
    """The w ≥ 0 with erf w = a and erfc w = q, for a = 1 − q in [0, 1), a exact below ½ and q from ½ on."""
    tail = a >= 0.5
    log_1_minus_a2 = math.log(q) + math.log1p(a) if tail else math.log1p(-a * a)
    b = 2 / (math.pi * WINITZKI_K) + log_1_minus_a2 / 2
    c = -log_1_minus_a2 / WINITZKI_K
    root = math.sqrt(b * b + c)
    w = math.sqrt(c / (root + b) if b > 0 else root - b)
    for _ in range(HALLEY_STEPS):
        wm = min(w, BEYOND)
        residual = q - math.erfc(wm) if tail else math.erf(wm) - a  # erf(w) − a, from the exact one of a and q
        # the slope e^{−w²} only sets how fast the root is reached, not where it is: fl(w²) is enough here (the
        # formula splits w² for erfc's values). A subnormal e^{−w²} (w > 26.6) is still a slope (e^{w²} overflows).
        u = residual * SQRT_PI_OVER_2 / math.exp(-w * w)
        step = u / (1 + w * u)
        w = w - step
        # Halley's error after a step of δ is about (w²/3)·δ³: below 10⁻⁸·w (w ≤ 27) the next step would move w by
        # under 2⁻⁶⁰ of it. Most elements stop after two steps, where the formula takes all four for every one.
        if abs(step) <= 1e-8 * w:
            break
    return w


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
    for i in numba.prange(y.size):
        v = numpy.float64(y[i])
        a = abs(v)
        if a < 1:
            w = _inverse(a, 1 - a)  # 1 − a exact for a ≥ ½ (Sterbenz)
        elif a == 1:
            w = math.inf
        else:  # |y| > 1 or NaN
            w = math.nan
        out[i] = math.copysign(w, v)


@kernel
def _erfcinv(z, out):
    for i in numba.prange(z.size):
        v = numpy.float64(z[i])
        if 0 < v < 2:
            if v > 1:  # −erfinv(z − 1): z − 1 and 2 − z exact
                w = -_inverse(v - 1, 2 - v)
            else:  # z itself the exact q, where 1 − z would round a small z's digits away
                w = _inverse(1 - v, v)
        elif v == 0:
            w = math.inf
        elif v == 2:
            w = -math.inf
        else:
            w = math.nan
        out[i] = w


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
