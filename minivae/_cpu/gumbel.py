"""Gumbel-Softmax over the last axis with the noise made inside the kernel from Philox (seed,
counter), never stored: element i (row-major) takes word i mod 4 of block counter + i div 4."""

import math

import numba
import numpy

from minivae._backend import inverse_temperature
from minivae._cpu import kernel
from minivae._cpu.philox import gumbel_from_word, philox_word
from minivae._cpu.rows import row_max, softmax_row


@kernel
def _fwd(logits, k0, k1, counter, inv_tau, hard, y, out):
    rows, k = logits.shape
    for r in numba.prange(rows):
        for j in range(k):                    # y ← logits + g: g rounded to the logits' dtype, then added
            y[r, j] = gumbel_from_word(philox_word(counter, numpy.uint64(r * k + j), k0, k1))
            y[r, j] += logits[r, j]
        softmax_row(y, r, inv_tau, y)         # in place; the max stays in y's dtype, as in the reference
        if hard:                               # y's row now holds no NaN, or only NaN
            m = row_max(y, r)
            best = k
            for j in range(k):                 # the first maximum: ties go to the lowest index, as numpy.argmax
                best = min(best, j if y[r, j] == m else k)
            for j in range(k):                 # a row holding NaN has no argmax: NaN in, NaN out
                out[r, j] = math.nan if m != m else 1.0 if j == best else 0.0


def gumbel_softmax_fwd(logits, seed, counter, temperature, hard):
    """(y, out): y = softmax((logits + g)/τ) (kept for the VJP); out is y itself (as on the NumPy path), or
    one_hot(argmax y) if hard."""
    x = numpy.ascontiguousarray(logits).reshape(-1, logits.shape[-1])
    y = numpy.empty(x.shape, x.dtype)
    out = numpy.empty(x.shape, x.dtype) if hard else y
    k0, k1 = numpy.uint64(seed & 0xFFFFFFFF), numpy.uint64((seed >> 32) & 0xFFFFFFFF)
    _fwd(x.size, x, k0, k1, numpy.uint64(counter), inverse_temperature(temperature), hard, y, out)
    return y.reshape(logits.shape), out.reshape(logits.shape)
