"""The Gaussian, sampled by reparameterization z = loc + scale·ε."""



from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import LOG_2PI, Distribution, cdf_with_limits, location_scale
from minivae.random import resolve

SQRT2 = 1.4142135623730951  # √2 rounded to float64


class Normal(Distribution):
    """N(loc, scale²), elementwise (batch_shape = the broadcast shape of loc and scale).

    rsample    z = loc + scale·ε, ε ~ N(0, 1): z is differentiable in loc and scale (pathwise)
    log_prob   −(x − loc)²/(2 scale²) − log scale − ½ log 2π
    entropy    ½ + ½ log 2π + log scale
    cdf        Φ((x − loc)/scale) = ½ erfc(−(x − loc)/(scale·√2)): erfc, not torch's ½(1 + erf(…)), so that the
               lower tail keeps its digits (Φ(−10) = 7.6·10⁻²⁴, where 1 + erf(−7.07) is 0 in float64)
    icdf       loc − scale·√2·erfcinv(2p) = loc + scale·√2·erfinv(2p − 1), torch's, but from 2p (exact): 2p − 1 would
               round away the digits of a small p (torch's icdf(10⁻¹⁰) is off by 10⁻⁸ relatively, its icdf(10⁻¹⁷)
               is −∞); −∞ at p = 0, ∞ at p = 1, NaN outside [0, 1]
    """

    has_rsample = True
    _params = ("loc", "scale")
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real

    def __init__(self, loc, scale):
        self.loc, self.scale, self.batch_shape, self._dtype = location_scale(loc, scale, "Normal")

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

    def cdf(self, value):
        return cdf_with_limits(self._cdf, self._value(value))

    def _cdf(self, value):
        return 0.5 * ops.erfc((self.loc - value) / (self.scale * SQRT2))

    def icdf(self, value):
        value = self._value(value)
        return self.loc - self.scale * SQRT2 * ops.erfcinv(2 * value)

    def __repr__(self):
        return f"Normal(batch_shape={self.batch_shape})"


