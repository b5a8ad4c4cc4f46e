"""Gumbel-Softmax over the last axis, its noise made in registers from Philox (seed, counter):
kernels/gumbel_softmax.cu. The backward is softmax's (minivae/_gpu/softmax.py)."""
import numpy

from minivae._backend import get_array_module, inverse_temperature
from minivae._gpu import LARGEST_WARP_ROW, address, floating, launch_rows, loader, philox_shift, rows_of


def quads_launch(t, k, arrays):
    """(name, threads) of gumbel_softmax_quads_fwd for block rows (k > LARGEST_WARP_ROW) of k a multiple of 4
    up to V·1024 (V values a thread) whose arrays all start on 16-byte boundaries, each row a block of the
    fewest warps that hold it; None for any other row (the warp or block kernels take it)."""
    v = loader.GUMBEL_QUAD_VALUES[t]
    if LARGEST_WARP_ROW < k <= 1024 * v and k % 4 == 0 and all(address(a) % 16 == 0 for a in arrays):
        return f"gumbel_softmax_quads_fwd<{t}, {v}>", 32 * -(-k // (32 * v))
    return None


def gumbel_softmax_fwd(logits, seed, counter, temperature, hard):
    """(y, out): y = softmax((logits + g)/τ) (kept for the VJP); out = y, or one_hot(argmax y) if hard."""
    t = floating(logits, "gumbel_softmax")
    x = rows_of(logits)
    xp = get_array_module(logits)
    y = xp.empty(x.shape, x.dtype)
    out = xp.empty(x.shape, x.dtype) if hard else y
    rows, k = x.shape
    args = (x, y, out, numpy.int32(rows), numpy.int32(k), x.dtype.type(inverse_temperature(temperature, x.dtype)),
            numpy.uint64(seed), numpy.uint64(counter), philox_shift(x), numpy.int32(bool(hard)))
    quads = quads_launch(t, k, (x, y, out)) if rows else None
    if quads:
        name, threads = quads
        loader.function("gumbel_softmax.cu", name)((rows,), (threads,), args)
    else:
        launch_rows("gumbel_softmax.cu", "gumbel_softmax", "fwd", t, rows, k, args)
    return y.reshape(logits.shape), out.reshape(logits.shape)
