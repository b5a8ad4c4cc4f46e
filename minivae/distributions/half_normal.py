"""The half-normal distribution: |X| of a centred Normal draw."""
import math

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import LOG_2PI, Distribution, cdf_with_limits, checked_params
from minivae.distributions.gamma import below_zero
from minivae.distributions.normal import SQRT2, Normal
from minivae.engine import array_function
from minivae.random import resolve

LOG_2 = math.log(2)


class HalfNormal(Distribution):
    """HalfNormal(scale): |X| for X ~ N(0, scale²), elementwise, as torch.distributions.HalfNormal.

    rsample    scale·|ε|, ε ~ N(0, 1) (the noise Normal draws for the same seed): differentiable in scale (|ε|)
    log_prob   log 2 − ½ log 2π − log scale − x²/(2 scale²) for x ≥ 0, −∞ below 0
    entropy    ½ + ½ log 2π + log scale − log 2 = ½ log(πe/2) + log scale
    mean scale·√(2/π);  mode 0;  variance scale²·(1 − 2/π)
    cdf        erf(x/(scale·√2)) for x ≥ 0, 0 below (torch's 2Φ(x/scale) − 1)
    icdf       scale·√2·erfinv(p) (torch's Normal icdf of (p + 1)/2, without the rounding of (p + 1)/2 that loses a
               small p's digits); NaN outside [0, 1]
    base_dist  Normal(0, scale), as torch's (kl_divergence(HalfNormal, HalfNormal) is that of the base Normals)
    support nonnegative; arg_constraints scale positive. A constant CPU scale must be > 0 and finite.

    Different from torch on purpose: icdf(p) is NaN for p outside [0, 1] (torch's gives a negative number for p in
    [−1, 0)), as Normal's and Laplace's.
    """

    has_rsample = True
    _params = ("scale",)
    arg_constraints = {"scale": constraints.positive}
    support = constraints.nonnegative

    def __init__(self, scale):
        (self.scale,), self.batch_shape, self._dtype = checked_params((scale,), ("scale",), "HalfNormal",
                                                                      positive=("scale",))

    @property
    def base_dist(self):
        """Normal(0, scale): X, whose absolute value this is."""
        return Normal(0.0, self.scale)

    @property
    def mean(self):
        return self._batch(math.sqrt(2 / math.pi) * self.scale)

    @property
    def mode(self):
        return self._batch(0 * self.scale)

    @property
    def variance(self):
        return self._batch((1 - 2 / math.pi) * self.scale * self.scale)

    def rsample(self, sample_shape=(), rng=None, eps=None):
        """scale·|ε| of standard normals ε drawn by ``rng`` in the scale's dtype; pass ``eps`` to fix them (then
        ``rng`` is not needed)."""
        if eps is None:
            eps = resolve(rng).normal(self._extended(sample_shape), self._dtype, device=self.scale.device)
        return self.scale * ops.abs(eps)

    def log_prob(self, value):
        value = self._value(value)
        outside = below_zero(value)
        z = ops.where(outside, 0.0, value) / self.scale
        return ops.where(outside, -math.inf, -0.5 * z * z - ops.log(self.scale) + (LOG_2 - 0.5 * LOG_2PI))

    def entropy(self):
        return self._batch(ops.log(self.scale) + (0.5 * (1 + LOG_2PI) - LOG_2))

    def cdf(self, value):
        return cdf_with_limits(lambda x: ops.erf(ops.clip(x, 0.0) / (self.scale * SQRT2)), self._value(value))

    def icdf(self, value):
        p = self._value(value)
        bad = array_function(lambda p: ~((p >= 0) & (p <= 1)), p)
        return ops.where(bad, math.nan, self.scale * SQRT2 * ops.erfinv(ops.where(bad, 0.5, p)))

    def __repr__(self):
        return f"HalfNormal(batch_shape={self.batch_shape})"
