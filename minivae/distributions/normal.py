"""The Gaussian, sampled by reparameterization z = loc + scale·ε."""

import numpy

from minivae import ops
from minivae.distributions.distribution import LOG_2PI, Distribution, as_param
from minivae.random import resolve


class Normal(Distribution):
    """N(loc, scale²), elementwise (batch_shape = the broadcast shape of loc and scale).

    rsample    z = loc + scale·ε, ε ~ N(0, 1): z is differentiable in loc and scale (pathwise)
    log_prob   −(x − loc)²/(2 scale²) − log scale − ½ log 2π
    entropy    ½ + ½ log 2π + log scale
    """

    has_rsample = True

    def __init__(self, loc, scale):
        self.loc, self.scale = as_param(loc), as_param(scale)
        # check constants a user passes; a computed scale is left alone (no pass over it per step), and
        # so is one on the GPU (the check would wait for the GPU and copy its answer back)
        if not self.scale.requires_grad and self.scale.device == "cpu" and (self.scale.data <= 0).any():
            raise ValueError("Normal: scale must be > 0")
        self.batch_shape = numpy.broadcast_shapes(self.loc.shape, self.scale.shape)  # no arithmetic on the data

    @property
    def mean(self):
        return self.loc

    @property
    def stddev(self):
        return self.scale

    @property
    def variance(self):
        return self.scale * self.scale

    def rsample(self, sample_shape=(), rng=None, eps=None):
        """loc + scale·ε; pass ``eps`` to fix the noise (then ``rng`` is not needed)."""
        if eps is None:
            eps = resolve(rng).normal(self._extended(sample_shape), self.loc.dtype,
                                                            device=self.loc.device)
        return self.loc + self.scale * eps

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return -0.5 * z * z - ops.log(self.scale) - 0.5 * LOG_2PI

    def entropy(self):
        return ops.broadcast_to(ops.log(self.scale) + 0.5 * (1 + LOG_2PI), self.batch_shape)

    def __repr__(self):
        return f"Normal(batch_shape={self.batch_shape})"


