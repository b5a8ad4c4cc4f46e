"""Gaussian reparameterization and its KL to N(0, 1), elementwise, forward and backward, apart and as one
pair: kernels/gaussian.cu."""
import numpy

from minivae._backend import get_array_module
from minivae._gpu import (contiguous, elementwise_launch, floating, halves, launch_elementwise, loader, philox_shift,
                          row_strided)


def _outputs(like, count):
    xp = get_array_module(like)
    return [xp.empty(like.shape, like.dtype) for _ in range(count)]


def reparameterize_fwd(mu, log_var, eps):
    """(z, σ·ε) with z = μ + exp(½ log σ²)·ε."""
    t = floating(mu, "reparameterize")
    z, noise = _outputs(mu, 2)
    launch_elementwise("gaussian.cu", f"reparameterize_fwd<{t}>", mu.size,
                       (contiguous(mu), contiguous(log_var, mu.dtype), contiguous(eps, mu.dtype), z, noise,
                        numpy.int64(mu.size)))
    return z, noise


def reparameterize_bwd(g, noise):
    """The log-variance's gradient ½ ḡ·σε (μ's is ḡ itself)."""
    t = floating(noise, "reparameterize backward")
    (glog_var,) = _outputs(noise, 1)
    launch_elementwise("gaussian.cu", f"reparameterize_bwd<{t}>", noise.size,
                       (contiguous(g, noise.dtype), contiguous(noise), glog_var, numpy.int64(noise.size)))
    return glog_var


def kl_standard_normal_fwd(mu, log_var):
    """(½(μ² + eᵛ − 1 − v), eᵛ)."""
    t = floating(mu, "kl_standard_normal")
    kl, var = _outputs(mu, 2)
    launch_elementwise("gaussian.cu", f"kl_standard_normal_fwd<{t}>", mu.size,
                       (contiguous(mu), contiguous(log_var, mu.dtype), kl, var, numpy.int64(mu.size)))
    return kl, var


def kl_standard_normal_bwd(g, mu, var):
    """(ḡ·μ, ½ ḡ·(eᵛ − 1))."""
    t = floating(mu, "kl_standard_normal backward")
    gmu, glog_var = _outputs(mu, 2)
    launch_elementwise("gaussian.cu", f"kl_standard_normal_bwd<{t}>", mu.size,
                       (contiguous(g, mu.dtype), contiguous(mu), contiguous(var), gmu, glog_var, numpy.int64(mu.size)))
    return gmu, glog_var


def _in_place(mu, log_var):
    """μ and v as the pair's kernels read them, column slices in place (``row_strided``), and the arguments
    (cols, ld_μ, ld_v) that say how."""
    (m, ld_mu), (v, ld_v) = row_strided(mu), row_strided(log_var, mu.dtype)
    return m, v, (numpy.int64(mu.shape[-1] if mu.ndim else 1), numpy.int64(ld_mu), numpy.int64(ld_v))


def reparameterize_kl_fwd(mu, log_var, eps):
    """(z, kl) = (μ + exp(½ log σ²)·ε, ½(μ² + eᵛ − 1 − v)) in one pass; μ and v may be column slices (read in
    place), the outputs are contiguous."""
    t = floating(mu, "reparameterize_kl")
    z, kl = _outputs(mu, 2)
    m, v, layout = _in_place(mu, log_var)
    launch_elementwise("gaussian.cu", f"reparameterize_kl_fwd<{t}>", mu.size,
                       (m, v, contiguous(eps, mu.dtype), z, kl, numpy.int64(mu.size), *layout))
    return z, kl


def normal_reparameterize_kl_fwd(mu, log_var, seed, offset):
    """(z, kl, ε): the pair's forward with ε = Generator(seed, offset).normal(μ's shape) drawn in the kernel (the same
    values as kernels/random.cu's philox_normal), and written out for the backward."""
    t = floating(mu, "reparameterize_kl")
    z, kl, eps = _outputs(mu, 3)
    m, v, layout = _in_place(mu, log_var)
    grid, block = elementwise_launch(-(-mu.size // 4))  # a thread a Philox block: four elements
    if mu.size:
        loader.function("gaussian.cu", f"normal_reparameterize_kl_fwd<{t}>")(
            grid, block, (m, v, eps, z, kl, numpy.int64(mu.size), *layout, numpy.uint64(seed), numpy.uint64(offset),
                          philox_shift(mu)))
    return z, kl, eps


def reparameterize_kl_bwd(gz, gkl, mu, log_var, eps):
    """(ḡ_z + ḡ_kl·μ, ½ ḡ_z·exp(½v)·ε + ½ ḡ_kl·(eᵛ − 1)); ``gz`` or ``gkl`` may be None (no gradient reached
    that output: it counts as 0). When μ and v are the two halves of one C-contiguous array (an encoder's
    output, split), μ̄ and v̄ are the two halves of one new array, which ops.split's backward then takes whole
    (minivae._gpu.joined): where two arrays would have to be joined, a launch each step."""
    t = floating(mu, "reparameterize_kl backward")
    m, v, layout = _in_place(mu, log_var)
    whole = halves(mu, log_var)
    if whole is None:
        gmu, glog_var = _outputs(mu, 2)
        out_mu, out_v, ld_g = gmu, glog_var, layout[0]
    else:
        both = get_array_module(mu).empty(whole, mu.dtype)
        gmu, glog_var = both[:, :mu.shape[1]], both[:, mu.shape[1]:]
        out_mu, out_v = row_strided(gmu)[0], row_strided(glog_var)[0]  # spans from each half's start
        ld_g = numpy.int64(whole[1])
    # an absent gradient's pointer is never read (its flag is 0): μ stands in for it
    gz_arg, gkl_arg = (contiguous(g, mu.dtype) if g is not None else m for g in (gz, gkl))
    launch_elementwise("gaussian.cu", f"reparameterize_kl_bwd<{t}>", mu.size,
                       (gz_arg, gkl_arg, m, v, contiguous(eps, mu.dtype), out_mu, out_v, numpy.int64(mu.size),
                        numpy.int32(gz is not None), numpy.int32(gkl is not None), *layout, ld_g))
    return gmu, glog_var

