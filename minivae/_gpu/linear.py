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


BIAS_ROWS = 16  # MINIVAE_BIAS_ROWS of kernels/linear.cu: blockDim.y of bias_grad
# Up to this many rows one group of rows. Beyond, the rows split into groups of at least GROUP_ROWS, about
# GROUP_BLOCKS blocks in all (at most MINIVAE_BIAS_TILES column tiles, kernels/linear.cu), and the last block of
# each column tile adds the groups' sums: one group of a 4096×512 layer's 8 MB would go through 16 blocks, an
# eighth of an H100's SMs (CuPy's column sum of it took 50 µs there, measured 2026-11-26). b̄ takes one launch
# either way: in a Gaussian VAE's CUDA-graph step at batch 4096 on an H100, six bias_grad and six column_sum
# launches after them took 31.7 + 13.5 µs, the six bias_grad launches alone 40.5 (tools/graph_profile.py,
# 2026-11-27).
ONE_PASS_ROWS = 1024
GROUP_ROWS = 64
GROUP_BLOCKS = 512


def bias_grad(g, y=None):
    """(p̄, b̄) of a dense layer's backward: p̄ = ḡ·[y > 0] for a ReLU layer (y its output), ḡ itself for a
    layer without an activation (y None); b̄ = p̄ summed over every axis but the last."""
    t = floating(g, "linear")
    xp, cols = get_array_module(g), g.shape[-1]
    rows = g.size // max(cols, 1)
    g = contiguous(g, g.dtype if y is None else y.dtype)
    out = g if y is None else xp.empty(y.shape, y.dtype)
    if g.size == 0:
        return out, xp.zeros(cols, g.dtype)
    tiles = -(-cols // 32)
    groups = 1 if rows <= ONE_PASS_ROWS else max(1, min(-(-GROUP_BLOCKS // tiles), rows // GROUP_ROWS))
    chunk = -(-rows // groups)
    groups = -(-rows // chunk)  # no empty group
    db = xp.empty(cols, g.dtype)
    sums = db if groups == 1 else xp.empty((groups, cols), g.dtype)  # one group writes b̄ itself
    relu = y is not None
    loader.function("linear.cu", f"bias_grad<{t}>")(
        (tiles, groups), (32, BIAS_ROWS), (g, contiguous(y) if relu else g, out, sums, db, numpy.int64(rows),
                                           numpy.int32(cols), numpy.int64(chunk), numpy.int32(relu)))
    return out, db


def relu_bwd(g, y):
    """p̄ = ḡ·[y > 0]: a ReLU layer's backward when its bias takes no gradient."""
    t = floating(y, "linear")
    out = get_array_module(y).empty(y.shape, y.dtype)
    launch_elementwise("linear.cu", f"relu_bwd<{t}>", y.size, (contiguous(g, y.dtype), contiguous(y), out,
                                                                numpy.int64(y.size)))
    return out
