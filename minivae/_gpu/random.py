"""Philox fills on the device: kernels/random.cu. Value i of a draw at block offset ``offset`` is made
from word i of the stream exactly as minivae.random.Generator makes it, so the same seed gives the
same noise on the CPU and the GPU."""
import math

import numpy

from minivae._backend import cupy_module
from minivae._gpu import floating, launch_elementwise, philox_shift


def _fill(kernel, seed, offset, shape, dtype):
    shape = (shape,) if isinstance(shape, (int, numpy.integer)) else tuple(shape)
    out = cupy_module().empty(shape, numpy.dtype(dtype))
    t = floating(out, kernel)
    n = math.prod(shape)
    launch_elementwise("random.cu", f"{kernel}<{t}>", n, (out, numpy.int64(n), numpy.uint64(seed), numpy.uint64(offset),
                                                            philox_shift(out)))
    return out


def uniform(seed, offset, shape, dtype):
    """Uniforms in (0, 1), as Generator.uniform (float32 from the top 23 bits of a word)."""
    return _fill("philox_uniform", seed, offset, shape, dtype)


def normal(seed, offset, shape, dtype):
    """Standard normals by Box–Muller on pairs of float64 uniforms, as Generator.normal."""
    return _fill("philox_normal", seed, offset, shape, dtype)


def gumbel(seed, offset, shape, dtype):
    """Standard Gumbel noise −log(−log1p(−u)), as Generator.gumbel."""
    return _fill("philox_gumbel", seed, offset, shape, dtype)
