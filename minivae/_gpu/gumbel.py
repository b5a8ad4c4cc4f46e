"""Gumbel-Softmax over the last axis, its noise made in registers from Philox (seed, counter):
kernels/gumbel_softmax.cu. The backward is softmax's (minivae/_gpu/softmax.py)."""
import numpy

from minivae._backend import get_array_module, inverse_temperature
from minivae._gpu import floating, launch_rows, philox_shift, rows_of


def gumbel_softmax_fwd(logits, seed, counter, temperature, hard):
    """(y, out): y = softmax((logits + g)/τ) (kept for the VJP); out = y, or one_hot(argmax y) if hard."""
    t = floating(logits, "gumbel_softmax")
    x = rows_of(logits)
    xp = get_array_module(logits)
    y = xp.empty(x.shape, x.dtype)
    out = xp.empty(x.shape, x.dtype) if hard else y
    rows, k = x.shape
    launch_rows("gumbel_softmax.cu", "gumbel_softmax", "fwd", t, rows, k,
                (x, y, out, numpy.int32(rows), numpy.int32(k), x.dtype.type(inverse_temperature(temperature, x.dtype)),
                 numpy.uint64(seed), numpy.uint64(counter), philox_shift(x), numpy.int32(bool(hard))))
    return y.reshape(logits.shape), out.reshape(logits.shape)
