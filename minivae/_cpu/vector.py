"""Pieces of the Numba kernels written so that LLVM vectorizes the loops that use them.

A loop that calls libm's ``exp``, or reduces with Python's ``max`` or a serial ``+=``, runs one
element at a time: libm is a scalar call, ``max`` depends on the order of its NaN comparisons, and
LLVM keeps a float sum in program order. The replacements:

- ``exp(a)``, ``log(x)``, ``log1p(x)``: from float64 arithmetic LLVM can vectorize, within 1 ulp (float64)
  of the exact value; ``sqrt(a)``, LLVM's (one instruction).
- ``erf_erfc(x)``: erf and erfc from fdlibm's rational fits, all four intervals computed and one chosen by
  selects, within 1 and 2 ulp of the exact values.
- ``maxnum(a, b)``: LLVM's ``maxnum``, the larger operand, and the other one where one is NaN. It
  does not depend on order, so a loop reducing with it vectorizes. A row's NaN still reaches its
  output, through the NaN's own e^{x − max}.
- ``sum_any_order``/``dot_any_order``: float64 accumulations whose order LLVM may choose (fastmath
  ``reassoc`` on that loop only).

The order of a sum, and whether ``fmuladd`` rounds once or twice, are fixed when the kernel is compiled
for a machine: the same machine gives the same bits, another one may differ in the last.
"""
import math

import numba
import numpy
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic


def _llvm(name, types_):
    """(signature, codegen) calling the LLVM intrinsic ``name`` on floats of one type, or None (no match)."""
    if not (isinstance(types_[0], types.Float) and all(t == types_[0] for t in types_)):
        return None

    def codegen(context, builder, signature, values):
        t = values[0].type
        return builder.call(builder.module.declare_intrinsic(name, [t], ir.FunctionType(t, [t] * len(values))), values)
    return types_[0](*types_), codegen


def _bits(x):
    return int(numpy.float64(x).view(numpy.int64))


@intrinsic
def maxnum(typingctx, a, b):
    """The larger of a and b, the other one where one is NaN (IEEE 754's maxNum)."""
    return _llvm("llvm.maxnum", (a, b))


@intrinsic
def sqrt(typingctx, a):
    """√a, rounded once (NaN below 0), without math.sqrt's call."""
    return _llvm("llvm.sqrt", (a,))


@intrinsic
def fmuladd(typingctx, a, b, c):
    """a·b + c, as one fused instruction where the machine has one."""
    return _llvm("llvm.fmuladd", (a, b, c))


# e^a = 2^n · e^r with n = round(a / ln 2) and r = a − n·ln 2 ∈ [−½ ln 2, ½ ln 2]. n·ln 2 is taken off in
# two parts (Cody and Waite): LN2_HI has 32 significant bits, so n·LN2_HI is exact for |n| < 2^21, and
# LN2_LO = ln 2 − LN2_HI carries the rest.
LN2_HI = float.fromhex("0x1.62e42feep-1")
LN2_LO = float.fromhex("0x1.a39ef35793c76p-33")
LOG2E = 1 / math.log(2)
# Adding 1.5·2^52 rounds a float64 of magnitude < 2^51 to an integer, held in the low bits of the sum's
# representation: n = bits(a/ln 2 + SHIFT) − bits(SHIFT), and 2^j has the bits (j + 1023) << 52 for
# −1022 ≤ j ≤ 1023. 2^n is applied as 2^h · 2^(n−h), h = n div 2, both normal for every n here: the
# last product alone overflows to inf or rounds into the subnormals, once, as e^a does.
SHIFT = 1.5 * 2.0**52
SHIFT_BITS = _bits(SHIFT)
# a is clamped to [A_LO, A_HI], beyond which e^a is 0 (below half the smallest subnormal) or inf.
A_LO, A_HI = -746.0, 710.0
# e^r by its Taylor polynomial of degree 13: the first term left out, |r|^14/14! < 5e−18, is far below an ulp.
C2, C3, C4, C5, C6, C7, C8, C9, C10, C11, C12, C13 = (1 / math.factorial(k) for k in range(2, 14))


@numba.njit(inline="always")
def _taylor(r):
    """e^r for |r| ≤ ½ ln 2 (and a little beyond), by Horner's rule."""
    p = C13
    for c in (C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, 1.0, 1.0):
        p = fmuladd(p, r, c)
    return p


@numba.njit(inline="always")
def exp(a):
    """e^a for float64 a: NaN gives NaN, and results past float64's range give 0 or inf, as libm's."""
    t = A_LO if a < A_LO else a                # written so that a NaN stays NaN
    t = A_HI if t > A_HI else t
    k = fmuladd(t, LOG2E, SHIFT)
    n = k - SHIFT
    r = fmuladd(-n, LN2_LO, fmuladd(-n, LN2_HI, t))
    p = _taylor(r)
    j = numpy.float64(k).view(numpy.int64) - SHIFT_BITS
    h = j >> 1
    return p * numpy.int64((h + 1023) << 52).view(numpy.float64) * numpy.int64((j - h + 1023) << 52).view(numpy.float64)


# log x = k·ln 2 + log(1 + f) with x = 2^k·(1 + f), 1 + f ∈ [√½, √2): k and f come from x's bits
# (subtracting √½'s bits carries into the exponent exactly when x's mantissa is ≥ √2's; f is then
# exact). log(1 + f) = 2 atanh s with s = f/(2 + f), |s| ≤ 3 − 2√2 < 0.172, and as fdlibm writes it,
# f − (f²/2 − s·(f²/2 + R)), R = 2·Σ_{1≤j≤10} s^{2j}/(2j + 1): the exact f carries the result and the
# rounding errors fall on the small correction. The first term left out is below 1e−18 of the sum.
SQRT_HALF_BITS = _bits(math.sqrt(0.5))
D = tuple(2 / (2 * j + 1) for j in range(10, 0, -1))      # Horner's order: 2/21, 2/19, …, 2/3


@numba.njit(inline="always")
def log(x):
    """log x for positive normal float64 x (the Gumbel noise's lie in [2^−33, 23), log1p's in [1, 2]); others
    are not handled."""
    bits = numpy.float64(x).view(numpy.int64)
    k = (bits - SQRT_HALF_BITS) >> 52
    f = numpy.int64(bits - (k << 52)).view(numpy.float64) - 1.0
    s = f / (2.0 + f)
    s2 = s * s
    r = D[0]
    for d in D[1:]:
        r = fmuladd(r, s2, d)
    half_f2 = 0.5 * f * f
    kf = numpy.float64(k)
    return fmuladd(kf, LN2_HI, f - (half_f2 - fmuladd(s, fmuladd(r, s2, half_f2), kf * LN2_LO)))


@numba.njit(inline="always")
def log1p(x):
    """log(1 + x) for float64 x ≥ 0: log of u = 1 + x rounded, plus (x − (u − 1))/u, the log of the
    rounding's factor (1 + x)/u to first order, which keeps tiny x's digits (u = 1: the result is x)."""
    u = 1.0 + x
    return log(u) + (x - (u - 1.0)) / u


@numba.njit(fastmath={"reassoc"}, error_model="numpy")
def sum_any_order(v):
    """Σ_j v[j] in float64, for a 1-d array."""
    s = 0.0
    for j in range(v.size):
        s += v[j]
    return s


@numba.njit(fastmath={"reassoc"}, error_model="numpy")
def dot_any_order(u, v):
    """Σ_j u[j]·v[j] in float64, for two 1-d arrays of one size."""
    s = 0.0
    for j in range(u.size):
        s += numpy.float64(u[j]) * v[j]
    return s


# erf and erfc: fdlibm's four intervals (Sun Microsystems' s_erf.c, 1993, K. C. Ng, in the C libraries descended
# from it: FreeBSD's msun, musl, glibc). Its coefficients are minimax rational approximations fitted by Remez's algorithm
# (their errors against mpmath, on 2000 points: below 2^−55.8 for the first below, 2^−58.2 for the others); below they
# are in Horner's order, the highest power first, fdlibm's names in the comments.
# The coefficients are fdlibm's, whose notice comes with them: "Copyright (C) 1993 by Sun Microsystems, Inc. All rights
# reserved. Developed at SunPro, a Sun Microsystems, Inc. business. Permission to use, copy, modify, and distribute this
# software is freely granted, provided that this notice is preserved."
#   |x| < 0.84375          erf x = x + x·P(v)/Q(v), v = x²        P/Q ≈ erf(x)/x − 1 (pp0…pp4 / 1, qq1…qq5)
#   0.84375 ≤ |x| < 1.25   erf x = ERX + P(v)/Q(v), v = |x| − 1   P/Q ≈ erf(1 + v) − ERX (pa0…pa6 / 1, qa1…qa6)
#   1.25 ≤ |x| < 1/0.35    erfc x = e^{−x² − 0.5625 + R(s)/S(s)}/x, s = 1/x²   R/S ≈ log(x·erfc x) + x² + 0.5625
#                                                                          (ra0…ra7 / 1, sa1…sa8)
#   1/0.35 ≤ |x| < 28      the same with a second R/S (rb0…rb6 / 1, sb1…sb7); e^{−28²} is 0 in float64, larger |x|
#                          are computed as 28
# ERX is erf(1) cut to 24 bits, so that 1 − ERX is exact. The first two intervals give erfc = 1 − erf, from x ≥ ¼ as
# ½ − (x·P/Q + (x − ½)) (x − ½ exact); the last two give erf = 1 − erfc (erfc < 0.08 there: no cancellation).
#
# All four are computed as one rational function of v whose coefficients are chosen per element by selects: R(s)/S(s)
# with s = 1/v is written v⁸R(1/v) / v⁸S(1/v), v = x² (polynomials of degree 8 in v, without a division for s; S's
# leading term 1 dominates there, v ≥ 1.5), and every numerator and denominator is padded with zeros to degree 8.
# The exponent is exact in two parts: a = −z² − 0.5625 with z = x cut to 21 bits (z² has 42, under 2¹⁰: exact), and
# b = (z − x)(z + x) + R/S, −0.22 < b < 0; e^{a + b}/x is rounded once at the end, into the subnormals where it falls.
ERX = 8.45062911510467529297e-01
ERF_SMALL, ERF_MIDDLE, ERFC_NEAR, ERFC_BEYOND = 0.84375, 1.25, 1 / 0.35, 28.0
NUMERATORS = (  # (|x| < 0.84375, < 1.25, < 1/0.35, < 28), the highest power of v first
    (0.0, 0.0, 0.0, 0.0, -2.37630166566501626084e-05, -5.77027029648944159157e-03, -2.84817495755985104766e-02,
     -3.25042107247001499370e-01, 1.28379167095512558561e-01),
    (0.0, 0.0, -2.16637559486879084300e-03, 3.54783043256182359371e-02, -1.10894694282396677476e-01,
     3.18346619901161753674e-01, -3.72207876035701323847e-01, 4.14856118683748331666e-01,
     -2.36211856075265944077e-03),
    (-9.86494403484714822705e-03, -6.93858572707181764372e-01, -1.05586262253232909814e+01,
     -6.23753324503260060396e+01, -1.62396669462573470355e+02, -1.84605092906711035994e+02,
     -8.12874355063065934246e+01, -9.81432934416914548592e+00, 0.0),
    (-9.86494292470009928597e-03, -7.99283237680523006574e-01, -1.77579549177547519889e+01,
     -1.60636384855821916062e+02, -6.37566443368389627722e+02, -1.02509513161107724954e+03,
     -4.83519191608651397019e+02, 0.0, 0.0),
)
DENOMINATORS = (
    (0.0, 0.0, 0.0, -3.96022827877536812320e-06, 1.32494738004321644526e-04, 5.08130628187576562776e-03,
     6.50222499887672944485e-02, 3.97917223959155352819e-01, 1.0),
    (0.0, 0.0, 1.19844998467991074170e-02, 1.36370839120290507362e-02, 1.26171219808761642112e-01,
     7.18286544141962662868e-02, 5.40397917702171048937e-01, 1.06420880400844228286e-01, 1.0),
    (1.0, 1.96512716674392571292e+01, 1.37657754143519042600e+02, 4.34565877475229228821e+02,
     6.45387271733267880336e+02, 4.29008140027567833386e+02, 1.08635005541779435134e+02,
     6.57024977031928170135e+00, -6.04244152148580987438e-02),
    (1.0, 3.03380607434824582924e+01, 3.25792512996573918826e+02, 1.53672958608443695994e+03,
     3.19985821950859553908e+03, 2.55305040643316442583e+03, 4.74528541206955367215e+02,
     -2.24409524465858183362e+01, 0.0),
)
HIGH_32_BITS = -(1 << 32)


@numba.njit(inline="always")
def _horner4(v, small, middle, near, table):
    """Σ_k c_k v^k, c from table[0] where ``small``, else table[1] where ``middle``, else table[2] where ``near``, else
    table[3] (rows of one length, the highest power first)."""
    first, second, third, fourth = table
    p = 0.0
    for k in range(len(first)):
        p = fmuladd(p, v, first[k] if small else (second[k] if middle else (third[k] if near else fourth[k])))
    return p


@numba.njit(inline="always")
def _exp_over(a, b, t):
    """e^{a + b}/t rounded once, for an exact a in [−785, −2], |b| < ¼ and t > 1: as exp computes e^a, with a
    reduced first (a − n·LN2_HI is exact, Sterbenz: |a + b − n·ln 2| ≤ ½ ln 2) and b added to the reduced argument."""
    k = fmuladd(a + b, LOG2E, SHIFT)
    n = k - SHIFT
    r = fmuladd(-n, LN2_LO, fmuladd(-n, LN2_HI, a) + b)
    j = numpy.float64(k).view(numpy.int64) - SHIFT_BITS   # −1133 ≤ j ≤ −2: both halves of 2^j normal
    half = j >> 1
    scale_hi = numpy.int64((half + 1023) << 52).view(numpy.float64)
    return _taylor(r) / t * scale_hi * numpy.int64((j - half + 1023) << 52).view(numpy.float64)


@numba.njit(inline="always")
def erf_erfc(x):
    """(erf x, erfc x) for float64 x without a branch, within 1 and 2 ulp of the exact values (measured against mpmath:
    1.0 at subnormal x, 0.8 elsewhere; 1.9, erfc's largest errors for x > 0): erf(±0) = ±0, erf(±∞) = ±1, erfc(+∞) = 0,
    erfc(−∞) = 2, NaN gives NaN."""
    ax = abs(x)
    t = ERF_MIDDLE if ax < ERF_MIDDLE else ax  # erfc's tail, for 1.25 ≤ |x| ≤ 28 (a NaN stays NaN)
    t = ERFC_BEYOND if t > ERFC_BEYOND else t
    small, middle, near = ax < ERF_SMALL, ax < ERF_MIDDLE, ax < ERFC_NEAR
    v = x * x if small else (ax - 1.0 if middle else t * t)
    ratio = _horner4(v, small, middle, near, NUMERATORS) / _horner4(v, small, middle, near, DENOMINATORS)
    z = numpy.int64(numpy.float64(t).view(numpy.int64) & HIGH_32_BITS).view(numpy.float64)
    tail = _exp_over(-z * z - 0.5625, (z - t) * (z + t) + ratio, t)
    # |x| < 0.84375: x + x·P/Q, scaled by 8 so that a subnormal x keeps its digits in x·P/Q
    erf_small = 0.125 * fmuladd(ax, 8.0 * ratio, 8.0 * ax)
    erfc_small = 1.0 - (x + x * ratio) if x < 0.25 else 0.5 - fmuladd(x, ratio, x - 0.5)
    erfc_middle = (1.0 - ERX) - ratio if x > 0 else 1.0 + (ERX + ratio)
    erf_abs = erf_small if small else (ERX + ratio if middle else 1.0 - tail)
    erfc = erfc_small if small else (erfc_middle if middle else (tail if x > 0 else 2.0 - tail))
    return math.copysign(erf_abs, x), erfc
