"""Gumbel-Softmax over the last axis with the noise made inside the kernel from Philox (seed,
counter), never stored: element i (row-major) takes word i mod 4 of block counter + i div 4."""

import math

import numba
import numpy

from minivae._backend import inverse_temperature
from minivae._cpu import kernel
from minivae._cpu.philox import gumbel_from_word, philox_block
from minivae._cpu.rows import softmax_row


@kernel
def _fwd(logits, k0, k1, counter, inv_tau, hard, y, out):
    rows, k = logits.shape
    for r in numba.prange(rows):
        first = r * k
        block = numpy.uint64(counter + first // 4)
        w = philox_block(block, k0, k1)
        for j in range(k):                    # y ← logits + g, in the logits' dtype
            b = numpy.uint64(counter + (first + j) // 4)
            if b != block:
                block = b
                w = philox_block(block, k0, k1)
            y[r, j] = gumbel_from_word(w[(first + j) % 4])  # rounded to the logits' dtype first,
            y[r, j] += logits[r, j]                          # then added: as the reference does
        softmax_row(y, r, inv_tau, y)         # in place; the max stays in y's dtype, as in the reference
        best, nan = 0, y[r, 0] != y[r, 0]
        for j in range(1, k):
            nan = nan or y[r, j] != y[r, j]
            if y[r, j] > y[r, best]:           # ties go to the lowest index, as numpy.argmax
                best = j
        for j in range(k):                     # a row holding NaN has no argmax: NaN in, NaN out
            out[r, j] = (math.nan if nan else 1.0 if j == best else 0.0) if hard else y[r, j]


def gumbel_softmax_fwd(logits, seed, counter, temperature, hard):
    """(y, out): y = softmax((logits + g)/τ) (kept for the VJP); out = y, or one_hot(argmax y) if hard."""
    x = numpy.ascontiguousarray(logits).reshape(-1, logits.shape[-1])
    y, out = numpy.empty(x.shape, x.dtype), numpy.empty(x.shape, x.dtype)
    k0, k1 = numpy.uint64(seed & 0xFFFFFFFF), numpy.uint64((seed >> 32) & 0xFFFFFFFF)
    _fwd(x.size, x, k0, k1, numpy.uint64(counter), inverse_temperature(temperature), hard, y, out)
    return y.reshape(logits.shape), out.reshape(logits.shape)
