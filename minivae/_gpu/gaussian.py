"""Gaussian reparameterization and its KL to N(0, 1), elementwise, forward and backward: kernels/gaussian.cu."""
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
