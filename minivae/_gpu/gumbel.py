"""Gumbel-Softmax over the last axis, its noise made in registers from Philox (seed, counter):
kernels/gumbel_softmax.cu. The backward is softmax's (minivae/_gpu/softmax.py), except for the sample and its
categorical KL made as one pair (gumbel_softmax_kl_fwd / _bwd)."""
import numpy

from minivae._backend import get_array_module, inverse_temperature
from minivae._gpu import (LARGEST_WARP_ROW, address, contiguous, floating, launch_rows, loader, philox_shift,
                          rows_of)


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


def gumbel_softmax_kl_fwd(logits, prior, seed, counter, temperature, hard):
    """(y, out, kl): gumbel_softmax_fwd's sample of the logits (…, k) and KL(softmax l ‖ softmax prior row) per row,
    the prior's logits as P rows of k (row r taking prior row r mod P), in one launch; None for rows longer than
    a warp's (k > LARGEST_WARP_ROW) and for empty ones: the op then runs the two ops' kernels."""
    t = floating(logits, "gumbel_softmax_kl")
    if not 0 < logits.shape[-1] <= LARGEST_WARP_ROW:
        return None
    x, lp = rows_of(logits), rows_of(prior, logits.dtype)
    rows, k = x.shape
    xp = get_array_module(logits)
    y, kl = xp.empty(x.shape, x.dtype), xp.empty(rows, x.dtype)
    out = xp.empty(x.shape, x.dtype) if hard else y
    launch_rows("gumbel_softmax.cu", "gumbel_softmax_kl", "fwd", t, rows, k,
                (x, lp, y, out, kl, numpy.int32(rows), numpy.int32(k), numpy.int32(lp.shape[0]),
                 x.dtype.type(inverse_temperature(temperature, x.dtype)), numpy.uint64(seed), numpy.uint64(counter),
                 philox_shift(x), numpy.int32(bool(hard))))
    return y.reshape(logits.shape), out.reshape(logits.shape), kl.reshape(logits.shape[:-1])


def gumbel_softmax_kl_bwd(y, gy, logits, prior, kl, gkl, temperature):
    """l̄ = y ⊙ (ȳ − Σ ȳ y)/τ + k̄l·q ⊙ ((log q − log p) − kl) of the pair above (ȳ, k̄l: zeros where None)."""
    t = floating(y, "gumbel_softmax_kl backward")
    xp = get_array_module(y)
    yr, x, lp = rows_of(y), rows_of(logits, y.dtype), rows_of(prior, y.dtype)
    rows, k = yr.shape
    gy = xp.zeros(yr.shape, y.dtype) if gy is None else rows_of(gy, y.dtype)
    gkl = xp.zeros(rows, y.dtype) if gkl is None else contiguous(gkl, y.dtype).reshape(-1)
    gl = xp.empty(yr.shape, y.dtype)
    launch_rows("gumbel_softmax.cu", "gumbel_softmax_kl", "bwd", t, rows, k,
                (yr, gy, x, lp, contiguous(kl).reshape(-1), gkl, gl, numpy.int32(rows), numpy.int32(k),
                 numpy.int32(lp.shape[0]), y.dtype.type(inverse_temperature(temperature, y.dtype))))
    return gl.reshape(y.shape)
