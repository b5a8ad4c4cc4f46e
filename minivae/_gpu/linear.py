"""The elementwise ends of a dense layer, one pass each: kernels/linear.cu."""
import numpy

from minivae._backend import get_array_module
from minivae._gpu import contiguous, floating, launch_elementwise


def bias_act_fwd(y, bias, relu):
    """In place on y = x @ W (C-contiguous, last axis of bias.size): y ← y + b, then max(y, 0) if relu."""
    t = floating(y, "linear")
    if not y.flags.c_contiguous or y.shape[-1:] != bias.shape or bias.dtype != y.dtype:
        raise ValueError(f"linear: a C-contiguous product of shape (…, {bias.size}) and dtype {bias.dtype} is needed, "
                         f"got {y.shape} {y.dtype}")
    launch_elementwise("linear.cu", f"bias_act_fwd<{t}>", y.size,
                       (y, contiguous(bias), numpy.int64(y.size), numpy.int32(max(1, bias.size)), numpy.int32(bool(relu))))
    return y


def relu_bwd(g, y):
    """ḡ·[y > 0] for ḡ of y's shape."""
    t = floating(y, "linear")
    out = get_array_module(y).empty(y.shape, y.dtype)
    launch_elementwise("linear.cu", f"relu_bwd<{t}>", y.size, (contiguous(g, y.dtype), contiguous(y), out, numpy.int64(y.size)))
    return out
