"""The Gaussian, sampled by reparameterization z = loc + scale·ε."""

import numpy

from minivae import ops
from minivae.distributions.distribution import LOG_2PI, Distribution, as_params, checkable, on_one_device
from minivae.random import resolve


class Normal(Distribution):
    """N(loc, scale²), elementwise (batch_shape = the broadcast shape of loc and scale).

    rsample    z = loc + scale·ε, ε ~ N(0, 1): z is differentiable in loc and scale (pathwise)
    log_prob   −(x − loc)²/(2 scale²) − log scale − ½ log 2π
    entropy    ½ + ½ log 2π + log scale
    """

    has_rsample = True
    _params = ("loc", "scale")

    def __init__(self, loc, scale):
        self.loc, self.scale = as_params((loc, scale), ("loc", "scale"), "Normal")
        # check constants a user passes (see ``checkable``): loc not NaN, scale finite and > 0
        # (NaN fails ``> 0``, so one comparison with each bound covers NaN and ±inf)
        if checkable(self.scale) and not ((self.scale.data > 0) & (self.scale.data < numpy.inf)).all():
            raise ValueError("Normal: scale must be > 0 and finite (not NaN or inf)")
        if checkable(self.loc) and numpy.isnan(self.loc.data).any():
            raise ValueError("Normal: loc must not be NaN")
        self.loc, self.scale = on_one_device((self.loc, self.scale), (loc, scale))
        try:
            self.batch_shape = numpy.broadcast_shapes(self.loc.shape, self.scale.shape)  # no arithmetic on the data
        except ValueError:
            raise ValueError(f"Normal: loc of shape {self.loc.shape} and scale of shape {self.scale.shape} "
                             "do not broadcast together") from None
        # ε's dtype: that of loc + scale·ε (float32 loc with a float64 scale draws float64 noise)
        self._dtype = numpy.result_type(self.loc.dtype, self.scale.dtype)

    def _batch(self, x):
        """``x`` broadcast to batch_shape, as torch's are (no op where it already has that shape)."""
        return x if x.shape == self.batch_shape else ops.broadcast_to(x, self.batch_shape)

    @property
    def mean(self):
        return self._batch(self.loc)

    mode = mean  # a Gaussian's mode is its mean

    @property
    def stddev(self):
        return self._batch(self.scale)

    @property
    def variance(self):
        return self._batch(self.scale * self.scale)

    def rsample(self, sample_shape=(), rng=None, eps=None):
        """loc + scale·ε; pass ``eps`` to fix the noise (then ``rng`` is not needed)."""
        if eps is None:
            eps = resolve(rng).normal(self._extended(sample_shape), self._dtype, device=self.loc.device)
        return self.loc + self.scale * eps

    def log_prob(self, value):
        z = (value - self.loc) / self.scale
        return -0.5 * z * z - ops.log(self.scale) - 0.5 * LOG_2PI

    def entropy(self):
        return self._batch(ops.log(self.scale) + 0.5 * (1 + LOG_2PI))

    def __repr__(self):
        return f"Normal(batch_shape={self.batch_shape})"


