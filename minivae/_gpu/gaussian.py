"""Gaussian reparameterization and its KL to N(0, 1), elementwise, forward and backward, apart and as one
pair: kernels/gaussian.cu."""
import numpy

from minivae._backend import get_array_module
from minivae._gpu import contiguous, floating, launch_elementwise, row_strided


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


def reparameterize_kl_bwd(gz, gkl, mu, log_var, eps):
    """(ḡ_z + ḡ_kl·μ, ½ ḡ_z·exp(½v)·ε + ½ ḡ_kl·(eᵛ − 1)); ``gz`` or ``gkl`` may be None (no gradient reached
    that output: it counts as 0)."""
    t = floating(mu, "reparameterize_kl backward")
    gmu, glog_var = _outputs(mu, 2)
    m, v, layout = _in_place(mu, log_var)
    # an absent gradient's pointer is never read (its flag is 0): μ stands in for it
    gz_arg, gkl_arg = (contiguous(g, mu.dtype) if g is not None else m for g in (gz, gkl))
    launch_elementwise("gaussian.cu", f"reparameterize_kl_bwd<{t}>", mu.size,
                       (gz_arg, gkl_arg, m, v, contiguous(eps, mu.dtype), gmu, glog_var, numpy.int64(mu.size),
                        numpy.int32(gz is not None), numpy.int32(gkl is not None), *layout))
    return gmu, glog_var
