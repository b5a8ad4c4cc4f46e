"""The exponential distribution, sampled by its inverse cdf."""
import math

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, cdf_with_limits
from minivae.distributions.gamma import below_zero, positive_params
from minivae.engine import array_function
from minivae.random import resolve


class Exponential(Distribution):
    """Exponential(rate β): density β·e^{−βx} on x ≥ 0, elementwise, as torch.distributions.Exponential.

    rsample    −log(u)/β, u ~ Uniform(0, 1) open (inversion): differentiable in β (−z/β)
    log_prob   log β − βx;  entropy 1 − log β;  mean, stddev 1/β;  mode 0;  variance 1/β²
    cdf        1 − e^{−βx} = −expm1(−βx) (0 below 0);  icdf −log1p(−p)/β (NaN outside [0, 1])
    support nonnegative; arg_constraints rate positive. A constant CPU rate must be > 0 and finite.

    Different from torch on purpose: log_prob(x) of x < 0 is −∞ (torch refuses the value, or returns log β − βx).
    """

    has_rsample = True
    _params = ("rate",)
    arg_constraints = {"rate": constraints.positive}
    support = constraints.nonnegative

    def __init__(self, rate):
        (self.rate,), self.batch_shape, self._dtype = positive_params((rate,), ("rate",), "Exponential")

    @property
    def mean(self):
        return self._batch(1 / self.rate)

    stddev = mean

    @property
    def mode(self):
        return self._batch(0 * self.rate)

    @property
    def variance(self):
        return self._batch(1 / (self.rate * self.rate))

    def rsample(self, sample_shape=(), rng=None, uniforms=None):
        """−log(u)/β of uniforms u in (0, 1) drawn by ``rng`` in the rate's dtype; pass ``uniforms`` to fix them."""
        if uniforms is None:
            uniforms = resolve(rng).uniform(self._extended(sample_shape), self._dtype, device=self.rate.device)
        return -ops.log(uniforms) / self.rate

    def log_prob(self, value):
        value = self._value(value)
        outside = below_zero(value)
        return ops.where(outside, -math.inf, ops.log(self.rate) - self.rate * ops.where(outside, 0.0, value))

    def entropy(self):
        return self._batch(1 - ops.log(self.rate))

    def cdf(self, value):
        return cdf_with_limits(lambda x: -ops.expm1(-self.rate * ops.clip(x, 0.0)), self._value(value))

    def icdf(self, value):
        p = self._value(value)
        bad = array_function(lambda p: ~((p >= 0) & (p <= 1)), p)
        one = array_function(lambda p: p == 1, p)
        safe = ops.where(bad | one, 0.5, p)
        return ops.where(bad, math.nan, ops.where(one, math.inf, -ops.log1p(-safe) / self.rate))

    def __repr__(self):
        return f"Exponential(batch_shape={self.batch_shape})"
