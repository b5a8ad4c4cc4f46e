"""The Gumbel (type I extreme value) distribution, sampled with the Generator's Gumbel noise."""
import math

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, cdf_with_limits, location_scale
from minivae.engine import array_function
from minivae.random import resolve

PI_OVER_SQRT6 = math.pi / math.sqrt(6)


class Gumbel(Distribution):
    """Gumbel(loc, scale): cdf exp(−e^{−(x − loc)/scale}), elementwise (batch_shape = the broadcast shape of loc and
    scale), as torch.distributions.Gumbel.

    rsample    loc + scale·g, g = −log(−log1p(−u)) ~ Gumbel(0, 1): ``Generator.gumbel``'s noise, the noise of the
               Gumbel-Softmax (u in (0, 1) open, so g is always finite); differentiable in loc (1) and scale (g)
    log_prob   y − e^y − log scale, y = (loc − x)/scale (torch's)
    entropy    log scale + 1 + γ (γ Euler's constant)
    mean loc + γ·scale;  mode loc;  stddev π/√6·scale;  variance π²/6·scale²
    cdf        exp(−e^y), y = (loc − x)/scale taken at most 7 (where it is 0 in float64 and its gradient 0, not 0·∞)
    icdf       loc − scale·log(−log p): −∞ at p = 0, ∞ at p = 1, NaN outside [0, 1]
    kl_divergence(Gumbel, Gumbel) is torch's closed form (minivae.distributions.kl).
    support real; arg_constraints loc real, scale positive. A constant CPU scale must be > 0 and finite.
    """

    has_rsample = True
    _params = ("loc", "scale")
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real

    def __init__(self, loc, scale):
        self.loc, self.scale, self.batch_shape, self._dtype = location_scale(loc, scale, "Gumbel")

    @property
    def mean(self):
        return self._batch(self.loc + numpy.euler_gamma * self.scale)

    @property
    def mode(self):
        return self._batch(self.loc)

    @property
    def stddev(self):
        return self._batch(PI_OVER_SQRT6 * self.scale)

    @property
    def variance(self):
        return self._batch((PI_OVER_SQRT6 ** 2) * self.scale * self.scale)

    def rsample(self, sample_shape=(), rng=None, gumbels=None):
        """loc + scale·g of standard Gumbel noise g drawn by ``rng`` (``Generator.gumbel``) in the parameters' dtype;
        pass ``gumbels`` to fix it (then ``rng`` is not needed)."""
        if gumbels is None:
            gumbels = resolve(rng).gumbel(self._extended(sample_shape), self._dtype, device=self.loc.device)
        return self.loc + self.scale * gumbels

    def log_prob(self, value):
        y = (self.loc - self._value(value)) / self.scale
        return y - ops.exp(y) - ops.log(self.scale)

    def entropy(self):
        return self._batch(ops.log(self.scale) + (1 + numpy.euler_gamma))

    def cdf(self, value):
        return cdf_with_limits(self._cdf, self._value(value))

    def _cdf(self, x):
        y = ops.clip((self.loc - x) / self.scale, max=7.0)  # exp(−e⁷) = exp(−1097) is 0 in float64 too: the value
        return ops.exp(-ops.exp(y))  # unchanged, and its gradient 0 there, not e^{−e^y}·e^y = 0·∞ = NaN (y > 88.7)

    def icdf(self, value):
        p = self._value(value)
        xp = p.xp
        end, bad = array_function(lambda p: ((p == 0) | (p == 1), ~((p >= 0) & (p <= 1))), p)
        fill = array_function(lambda p: xp.where(p == 0, -xp.inf, xp.where(p == 1, xp.inf, xp.nan)).astype(p.dtype), p)
        safe = ops.where(end | bad, 0.5, p)
        return ops.where(end | bad, fill, self.loc - self.scale * ops.log(-ops.log(safe)))

    def __repr__(self):
        return f"Gumbel(batch_shape={self.batch_shape})"
