"""Pieces of the Numba kernels written so that LLVM vectorizes the loops that use them.

A loop that calls libm's ``exp``, or reduces with Python's ``max`` or a serial ``+=``, runs one
element at a time: libm is a scalar call, ``max`` depends on the order of its NaN comparisons, and
LLVM keeps a float sum in program order. The replacements:

- ``exp(a)``, ``log(x)``, ``log1p(x)``: from float64 arithmetic LLVM can vectorize, within 1 ulp (float64)
  of the exact value.
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
def exp(a):
    """e^a for float64 a: NaN gives NaN, and results past float64's range give 0 or inf, as libm's."""
    t = A_LO if a < A_LO else a                # written so that a NaN stays NaN
    t = A_HI if t > A_HI else t
    k = fmuladd(t, LOG2E, SHIFT)
    n = k - SHIFT
    r = fmuladd(-n, LN2_LO, fmuladd(-n, LN2_HI, t))
    p = C13
    for c in (C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, 1.0, 1.0):   # Horner's rule
        p = fmuladd(p, r, c)
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
