"""BCE-with-logits: the loss and its derivative σ(x) − t in one pass over memory.

Both need e = e^{−|x|}, then ℓ = max(x, 0) − x·t + log1p(e) and σ(x) = 1/(1 + e) (x ≥ 0) or
e/(1 + e), in the order of kernels/common.cuh's bce_elem. The formula (ops/losses.py) adds log1p(e) to
max(x, 0) first, which loses it where x·t cancels max(x, 0) (x ≫ 0, t = 1: e^{−40} gives 0 there, 4.2e−18
here): the loss keeps this order, and σ(x) is the formula's, so that in float64 the two differ only where
their exp or log1p do, and in the loss by the order's two roundings. libm's exp and log1p run one element
at a time, which NumPy's SIMD ufuncs beat, so the kernel computes in float64 with ``vector.exp`` and
``vector.log1p``, which LLVM vectorizes, and rounds once to the inputs' dtype: in float32 within an ulp
of the exact value, closer than NumPy's float32 formula, which rounds at every step. The bounds between
kernel and formula: tests/test_numba_formula_parity.py.
"""
import numba
import numpy

from minivae._cpu import kernel
from minivae._cpu.vector import exp, log1p


@kernel
def _fwd(x, t, loss, dx, sign):
    for i in numba.prange(x.size):
        xi, ti = numpy.float64(x[i]), numpy.float64(t[i])
        e = exp(-abs(xi))                           # e^{−|x|} ≤ 1; a NaN stays NaN
        loss[i] = sign * (max(xi, 0.0) - xi * ti + log1p(e))
        dx[i] = sign * ((1.0 if xi >= 0 else e) / (1.0 + e) - ti)   # (as the formula: one division, its numerator chosen)


def bce_fwd(x, t, sign=1.0):
    """ℓ = max(x, 0) − x·t + log1p(e^{−|x|}) and dℓ/dx = σ(x) − t, for equal shapes, both times ``sign``
    (−1: the Bernoulli log-likelihood −ℓ and its derivative t − σ(x); a negation is exact)."""
    loss, dx = numpy.empty(x.shape, x.dtype), numpy.empty(x.shape, x.dtype)
    _fwd(x.size, numpy.ascontiguousarray(x).reshape(-1), numpy.ascontiguousarray(t).reshape(-1),
         loss.reshape(-1), dx.reshape(-1), float(sign))
    return loss, dx
