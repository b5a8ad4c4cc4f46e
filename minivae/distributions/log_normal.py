"""The log-normal distribution: exp of a Normal draw."""
import math

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, cdf_with_limits, location_scale
from minivae.distributions.normal import Normal
from minivae.engine import array_function


def positive_part(value):
    """(outside, log x): a mask of x ≤ 0 (and NaN), and log x where x > 0, 0 elsewhere (no log of 0 or of a negative
    number is taken, so neither a warning nor a NaN gradient)."""
    outside = array_function(lambda v: ~(v > 0), value)
    return outside, ops.log(ops.where(outside, 1.0, value))


class LogNormal(Distribution):
    """LogNormal(loc, scale): exp(X) for X ~ N(loc, scale²), elementwise, as torch.distributions.LogNormal (loc and
    scale are X's mean and standard deviation).

    rsample    exp(loc + scale·ε), ε ~ N(0, 1): Normal's draw (the same noise for the same seed), exponentiated
    log_prob   Normal's log_prob of log x − log x (the Jacobian of x = e^X); −∞ for x ≤ 0
    entropy    Normal's entropy + loc = ½ + ½ log 2π + log scale + loc
    mean exp(loc + scale²/2);  mode exp(loc − scale²);  variance expm1(scale²)·exp(2 loc + scale²)
    cdf        Normal's cdf of log x (0 for x ≤ 0);  icdf exp(Normal's icdf of p)
    base_dist  Normal(loc, scale), as torch's (kl_divergence(LogNormal, LogNormal) is that of the base Normals)
    support positive; arg_constraints loc real, scale positive. A constant CPU scale must be > 0 and finite.

    Different from torch on purpose: log_prob(x) of x ≤ 0 is −∞ (density 0 outside the support, as Gamma's), where
    torch refuses the value (validate_args) or returns NaN.
    """

    has_rsample = True
    _params = ("loc", "scale")
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.positive

    def __init__(self, loc, scale):
        self.loc, self.scale, self.batch_shape, self._dtype = location_scale(loc, scale, "LogNormal")

    @property
    def base_dist(self):
        """Normal(loc, scale): the distribution of log X."""
        return Normal(self.loc, self.scale)

    @property
    def mean(self):
        return self._batch(ops.exp(self.loc + 0.5 * self.scale * self.scale))

    @property
    def mode(self):
        return self._batch(ops.exp(self.loc - self.scale * self.scale))

    @property
    def variance(self):
        s2 = self.scale * self.scale
        return self._batch(ops.expm1(s2) * ops.exp(2 * self.loc + s2))

    def rsample(self, sample_shape=(), rng=None, eps=None):
        """exp(loc + scale·ε); pass ``eps`` (standard normals) to fix the noise (then ``rng`` is not needed)."""
        return ops.exp(self.base_dist.rsample(sample_shape, rng=rng, eps=eps))

    def log_prob(self, value):
        outside, y = positive_part(self._value(value))
        return ops.where(outside, -math.inf, self.base_dist.log_prob(y) - y)

    def entropy(self):
        return self._batch(self.base_dist.entropy() + self.loc)

    def cdf(self, value):
        return cdf_with_limits(self._cdf, self._value(value))

    def _cdf(self, x):
        outside, y = positive_part(x)
        return ops.where(outside, 0.0, self.base_dist.cdf(y))

    def icdf(self, value):
        return ops.exp(self.base_dist.icdf(value))

    def __repr__(self):
        return f"LogNormal(batch_shape={self.batch_shape})"
