"""Gaussian reparameterization and its KL to N(0, 1), elementwise, forward and backward, apart and as one
pair: kernels/gaussian.cu."""
import numpy

from minivae._backend import get_array_module
from minivae._gpu import contiguous, floating, launch_elementwise


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


def reparameterize_kl_fwd(mu, log_var, eps):
    """(z, kl) = (μ + exp(½ log σ²)·ε, ½(μ² + eᵛ − 1 − v)) in one pass."""
    t = floating(mu, "reparameterize_kl")
    z, kl = _outputs(mu, 2)
    launch_elementwise("gaussian.cu", f"reparameterize_kl_fwd<{t}>", mu.size,
                       (contiguous(mu), contiguous(log_var, mu.dtype), contiguous(eps, mu.dtype), z, kl,
                        numpy.int64(mu.size)))
    return z, kl


def reparameterize_kl_bwd(gz, gkl, mu, log_var, eps):
    """(ḡ_z + ḡ_kl·μ, ½ ḡ_z·exp(½v)·ε + ½ ḡ_kl·(eᵛ − 1)); ``gz`` or ``gkl`` may be None (no gradient reached
    that output: it counts as 0)."""
    t = floating(mu, "reparameterize_kl backward")
    gmu, glog_var = _outputs(mu, 2)
    mu = contiguous(mu)
    # an absent gradient's pointer is never read (its flag is 0): μ stands in for it
    gz_arg, gkl_arg = (contiguous(g, mu.dtype) if g is not None else mu for g in (gz, gkl))
    launch_elementwise("gaussian.cu", f"reparameterize_kl_bwd<{t}>", mu.size,
                       (gz_arg, gkl_arg, mu, contiguous(log_var, mu.dtype), contiguous(eps, mu.dtype), gmu, glog_var,
                        numpy.int64(mu.size), numpy.int32(gz is not None), numpy.int32(gkl is not None)))
    return gmu, glog_var
