"""Gamma(α, 1) draws and the implicit gradient of a draw in one launch each: kernels/gamma.cu (one thread an element,
its rejection loop or its series / continued fraction in registers: no copy to the host, so that a CUDA graph captures
a Gamma, Beta or Dirichlet rsample and its backward)."""

import numpy

from minivae._backend import get_array_module
from minivae._gpu import contiguous, floating, launch_elementwise, philox_shift
from minivae.ops._broadcast import periodic


def standard_gamma_draws(seed, counter, concentration, shape, dtype):
    """Draws of Gamma(α, 1) of ``shape`` in ``dtype``, α = ``concentration`` broadcast to it, from Philox blocks
    counter, counter + 1, … of ``seed`` (distributions/gamma.py standard_gamma_draws, its stream)."""
    shape = tuple(shape)
    out = get_array_module(concentration).empty(shape, numpy.dtype(dtype))
    t, ta = floating(out, "standard_gamma_draws"), floating(concentration, "standard_gamma_draws")
    alpha, period = periodic(concentration, shape)
    n = out.size
    launch_elementwise("gamma.cu", f"standard_gamma_draws<{ta}, {t}>", n,
                       (alpha, numpy.int64(period), out, numpy.int64(n), numpy.uint64(seed), numpy.uint64(counter),
                        philox_shift(out)))
    return out


def standard_gamma_grad(alpha, z, g):
    """ḡ·dz/dα of draws z (ops/gamma.py standard_gamma_grad, rounded to z's dtype, times ḡ) of z's shape; α (its own
    shape, broadcast to z's) and ḡ of z's dtype."""
    t = floating(z, "standard_gamma backward")
    xp = get_array_module(z)
    a, period = periodic(alpha, z.shape)
    zc, gc = contiguous(z, z.dtype).reshape(-1), contiguous(xp.broadcast_to(g, z.shape), z.dtype).reshape(-1)
    gx = xp.empty(z.shape, z.dtype)
    launch_elementwise("gamma.cu", f"standard_gamma_grad<{t}>", z.size,
                       (contiguous(a, z.dtype), numpy.int64(period), zc, gc, gx, numpy.int64(z.size)))
    return gx
