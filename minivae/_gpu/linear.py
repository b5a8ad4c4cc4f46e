"""The ends of a dense layer around its products, one pass each way: kernels/linear.cu."""
import numpy

from minivae._backend import get_array_module
from minivae._gpu import contiguous, floating, launch_elementwise, loader


def bias_act_fwd(y, bias, relu):
    """In place on y = x @ W (C-contiguous, last axis of bias.size): y ← y + b, then max(y, 0) if relu."""
    t = floating(y, "linear")
    if not y.flags.c_contiguous or y.shape[-1:] != bias.shape or bias.dtype != y.dtype:
        raise ValueError(f"linear: a C-contiguous product of shape (…, {bias.size}) and dtype {bias.dtype} is needed, "
                         f"got {y.shape} {y.dtype}")
    launch_elementwise("linear.cu", f"bias_act_fwd<{t}>", y.size,
                       (y, contiguous(bias), numpy.int64(y.size), numpy.int32(max(1, bias.size)), numpy.int32(bool(relu))))
    return y


BIAS_ROWS = 16  # MINIVAE_BIAS_ROWS of kernels/linear.cu: blockDim.y of bias_relu_bwd
# Up to this many rows bias_relu_bwd makes p̄ and b̄ in one launch; beyond, relu_bwd over the whole grid and a
# CuPy column sum. A guess, not yet measured: at batch 128 (a CUDA-graph step, bound by its launches) one
# launch fewer a layer; at batch 4096 the one-pass kernel's ⌈cols/32⌉ blocks would read the layer's 8 MB
# through a sixteenth of an H100's SMs.
ONE_PASS_ROWS = 1024


def bias_relu_bwd(g, y):
    """(p̄, b̄): p̄ = ḡ·[y > 0], and b̄ = p̄ summed over every axis but the last."""
    t = floating(y, "linear")
    xp, cols = get_array_module(y), y.shape[-1]
    out, rows = xp.empty(y.shape, y.dtype), y.size // max(cols, 1)
    g, y = contiguous(g, y.dtype), contiguous(y)
    if rows > ONE_PASS_ROWS or y.size == 0:
        launch_elementwise("linear.cu", f"relu_bwd<{t}>", y.size, (g, y, out, numpy.int64(y.size)))
        return out, out.reshape(rows, cols).sum(axis=0)
    db = xp.empty(cols, y.dtype)
    loader.function("linear.cu", f"bias_relu_bwd<{t}>")(
        (-(-cols // 32),), (32, BIAS_ROWS), (g, y, out, db, numpy.int64(rows), numpy.int32(cols)))
    return out, db
