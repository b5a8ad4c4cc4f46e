"""The continuous uniform distribution on [low, high]."""
import math

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, as_params, cdf_with_limits, checkable, on_one_device
from minivae.engine import array_function
from minivae.random import resolve

SQRT12 = 3.4641016151377544  # √12 rounded to float64


class Uniform(Distribution):
    """Uniform(low, high): density 1/(high − low) on [low, high], elementwise (batch_shape = the broadcast shape of low
    and high), as torch.distributions.Uniform.

    rsample    low + u·(high − low), u ~ Uniform(0, 1) open: differentiable in low (1 − u) and high (u) (pathwise)
    log_prob   −log(high − low) inside [low, high], −∞ outside (and at NaN); its gradient in low and high is that of
               −log(high − low) at every value, as torch's
    entropy    log(high − low)
    mean       (low + high)/2;  mode NaN (torch's);  variance (high − low)²/12;  stddev (high − low)/√12
    cdf        (x − low)/(high − low) clamped to [0, 1]
    icdf       low + p·(high − low); NaN for p outside [0, 1]
    support    interval(low, high) of the parameters' arrays (a property, as torch's: the bounds are the distribution's);
               arg_constraints less_than(high) for low and greater_than(low) for high, as torch's
    Constant CPU low and high (see ``checkable``) must be finite with low < high.

    Different from torch on purpose:
        - log_prob(high) is −log(high − low), not −∞: the support is the closed interval (torch's support says so too,
          while its log_prob takes [low, high)), and a draw can round to high (low = 1, high = 2 in float32, u =
          1 − 2⁻²⁴: 1 + u rounds to 2), whose density must not be 0.
        - icdf(p) is NaN for p outside [0, 1], as Normal's (torch's extrapolates the line).
    """

    has_rsample = True
    _params = ("low", "high")
    def __init__(self, low, high):
        low_t, high_t = as_params((low, high), ("low", "high"), "Uniform")
        try:
            self.batch_shape = numpy.broadcast_shapes(low_t.shape, high_t.shape)
        except ValueError:
            raise ValueError(f"Uniform: low of shape {low_t.shape} and high of shape {high_t.shape} "
                             "do not broadcast together") from None
        for name, t in (("low", low_t), ("high", high_t)):
            if checkable(t) and not numpy.isfinite(t.data).all():
                raise ValueError(f"Uniform: {name} must be finite (not NaN or inf)")
        if checkable(low_t) and checkable(high_t) and not (low_t.data < high_t.data).all():
            raise ValueError("Uniform: low must be < high")
        self.low, self.high = on_one_device((low_t, high_t), (low, high))
        self._dtype = numpy.result_type(self.low.dtype, self.high.dtype)

    @property
    def arg_constraints(self):
        """low: less_than(high), high: greater_than(low), of the parameters' arrays, as torch's."""
        return {"low": constraints.less_than(self.high.data), "high": constraints.greater_than(self.low.data)}

    @property
    def support(self):
        """interval(low, high), of the parameters' arrays (on their device)."""
        return constraints.interval(self.low.data, self.high.data)

    @property
    def mean(self):
        return self._batch((self.low + self.high) / 2)

    @property
    def mode(self):
        """NaN, as torch's: every point of [low, high] is a mode."""
        xp, shape = self.low.xp, self.batch_shape
        return array_function(lambda low: xp.full(shape, xp.nan, self._dtype), self.low)

    @property
    def variance(self):
        width = self.high - self.low
        return self._batch(width * width / 12)

    @property
    def stddev(self):
        return self._batch((self.high - self.low) / SQRT12)

    def rsample(self, sample_shape=(), rng=None, uniforms=None):
        """low + u·(high − low), u drawn by ``rng`` in the parameters' dtype; pass ``uniforms`` to fix them (then
        ``rng`` is not needed)."""
        if uniforms is None:
            uniforms = resolve(rng).uniform(self._extended(sample_shape), self._dtype, device=self.low.device)
        return self.low + uniforms * (self.high - self.low)

    def log_prob(self, value):
        value = self._value(value)
        xp = value.xp
        dtype = numpy.result_type(value.dtype, self._dtype)
        # 0 inside, −∞ outside: added, so that the gradient in low and high is −log(high − low)'s everywhere (torch's)
        outside = array_function(lambda v, lo, hi: xp.where((lo <= v) & (v <= hi), 0.0, -math.inf).astype(dtype),
                                 value, self.low, self.high)
        return outside - ops.log(self.high - self.low)

    def entropy(self):
        return self._batch(ops.log(self.high - self.low))

    def cdf(self, value):
        return cdf_with_limits(lambda x: ops.clip((x - self.low) / (self.high - self.low), 0.0, 1.0), self._value(value))

    def icdf(self, value):
        p = self._value(value)
        bad = array_function(lambda p: ~((p >= 0) & (p <= 1)), p)
        safe = ops.where(bad, 0.5, p)  # (an infinite p would send 0·∞ = NaN back to high − low)
        return ops.where(bad, math.nan, self.low + safe * (self.high - self.low))

    def __repr__(self):
        return f"Uniform(batch_shape={self.batch_shape})"
