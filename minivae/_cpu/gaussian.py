"""Gaussian reparameterization and its KL to N(0, 1), elementwise, one pass each (vector.exp: loops LLVM
vectorizes)."""
import numba
import numpy

from minivae._cpu import kernel
from minivae._cpu.vector import exp


@kernel
def _reparameterize(mu, log_var, eps, z, noise):
    for i in numba.prange(mu.size):
        n = exp(0.5 * log_var[i]) * eps[i]
        noise[i] = n
        z[i] = mu[i] + n


@kernel
def _kl(mu, log_var, kl, var):
    for i in numba.prange(mu.size):
        v = exp(log_var[i])
        var[i] = v
        kl[i] = 0.5 * (mu[i] * mu[i] + v - 1.0 - log_var[i])


def _flat(a, dtype):
    return numpy.ascontiguousarray(a, dtype=dtype).reshape(-1)


def reparameterize_fwd(mu, log_var, eps):
    """(z, σ·ε) with z = μ + exp(½ log σ²)·ε."""
    z, noise = numpy.empty(mu.shape, mu.dtype), numpy.empty(mu.shape, mu.dtype)
    _reparameterize(mu.size, _flat(mu, mu.dtype), _flat(log_var, mu.dtype), _flat(eps, mu.dtype),
                    z.reshape(-1), noise.reshape(-1))
    return z, noise


def kl_standard_normal_fwd(mu, log_var):
    """(½(μ² + eᵛ − 1 − v), eᵛ)."""
    kl, var = numpy.empty(mu.shape, mu.dtype), numpy.empty(mu.shape, mu.dtype)
    _kl(mu.size, _flat(mu, mu.dtype), _flat(log_var, mu.dtype), kl.reshape(-1), var.reshape(-1))
    return kl, var
