"""The Kumaraswamy distribution (a Beta look-alike with a closed-form cdf), sampled by its inverse cdf."""
import math

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution
from minivae.distributions.gamma import positive_params
from minivae.engine import array_function
from minivae.ops import xlogy
from minivae.random import resolve


def moment(a, b, n):
    """E[Xⁿ] = b·B(1 + n/a, b) = b·exp(lgamma(1 + n/a) + lgamma(b) − lgamma(1 + n/a + b)) (torch's ``_moments``)."""
    arg = 1 + n / a
    return b * ops.exp(ops.lgamma(arg) + ops.lgamma(b) - ops.lgamma(arg + b))


class Kumaraswamy(Distribution):
    """Kumaraswamy(concentration1 a, concentration0 b): density a·b·x^{a−1}(1 − x^a)^{b−1} on [0, 1], cdf
    1 − (1 − x^a)^b, elementwise (batch_shape = the broadcast shape of a and b), as torch.distributions.Kumaraswamy
    (the stick-breaking VAE's posterior: Nalisnick & Smyth, 2017).

    rsample    icdf(u), u ~ Uniform(0, 1) open: (1 − (1 − u)^{1/b})^{1/a} = exp(log(−expm1(log1p(−u)/b))/a),
               differentiable in a and b (pathwise); the law of torch's (1 − u^{1/b})^{1/a}. A draw can round to
               exactly 0 or 1 (Kumaraswamy(0.1, 100) in float32), where a concentration below 1 puts a pole of the
               density (log_prob +∞, as Beta's)
    log_prob   log a + log b + (a − 1) log x + (b − 1) log(1 − x^a), 1 − x^a = −expm1(a·log x) (its digits kept near
               x = 1); the ends as torch.xlogy (x = 0, 1 with a = 1 or b = 1 give log(ab)); −∞ outside [0, 1]. The
               gradient in a at x = 1 is its limit from inside, b/a ((b − 1)·log(1 − x^a) ≈ (b − 1)·log(a(1 − x))),
               not ∞·0 = NaN; the others at the ends are ops.xlogy's (log 0 = −∞ where x·log y is ±∞)
    entropy    (1 − 1/b) + (1 − 1/a)·H_b − log(ab), H_b = ψ(b + 1) + γ the harmonic number (torch's)
    mean       b·B(1 + 1/a, b);  variance b·B(1 + 2/a, b) − mean² (torch's, through lgamma)
    mode       ((a − 1)/(ab − 1))^{1/a} for a ≥ 1 and b ≥ 1 but not both 1, NaN otherwise (torch's NaN cases)
    cdf        1 − (1 − x^a)^b = −expm1(b·log(−expm1(a·log x))), x clamped to [0, 1]
    icdf       (1 − (1 − p)^{1/b})^{1/a}; NaN outside [0, 1]
    support unit_interval; arg_constraints positive. Constant CPU parameters must be > 0 and finite.

    Different from torch on purpose:
        - log_prob(x) outside [0, 1] is −∞ (torch refuses the value, or returns NaN), as Beta's.
        - mode is the density's maximum; torch's (1/b)·log1p(−b) − log1p(−ab) is NaN for every b > 1 (log1p of a
          number below −1) and 0 for b = 1.
    """

    has_rsample = True
    _params = ("concentration1", "concentration0")
    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.unit_interval

    def __init__(self, concentration1, concentration0):
        (self.concentration1, self.concentration0), self.batch_shape, self._dtype = positive_params(
            (concentration1, concentration0), ("concentration1", "concentration0"), "Kumaraswamy")

    @property
    def mean(self):
        return self._batch(moment(self.concentration1, self.concentration0, 1))

    @property
    def variance(self):
        a, b = self.concentration1, self.concentration0
        mean = moment(a, b, 1)
        return self._batch(moment(a, b, 2) - mean * mean)

    @property
    def mode(self):
        a, b = self.concentration1, self.concentration0
        undefined = array_function(lambda a, b: (a < 1) | (b < 1) | ((a == 1) & (b == 1)), a, b)
        ab = ops.where(undefined, 2.0, a * b)  # (ab − 1 > 0 wherever the mode is defined)
        ratio = ops.where(undefined, 1.0, (a - 1) / (ab - 1))
        return self._batch(ops.where(undefined, math.nan, ratio ** (1 / a)))

    def rsample(self, sample_shape=(), rng=None, uniforms=None):
        """icdf(u) of uniforms u in (0, 1) drawn by ``rng`` in the parameters' dtype; pass ``uniforms`` to fix them
        (then ``rng`` is not needed)."""
        if uniforms is None:
            uniforms = resolve(rng).uniform(self._extended(sample_shape), self._dtype,
                                            device=self.concentration1.device)
        return self.icdf(uniforms)

    def log_prob(self, value):
        value = self._value(value)
        a, b = self.concentration1, self.concentration0
        outside, zero, one = array_function(lambda v: (~((v >= 0) & (v <= 1)), v == 0, v == 1), value)
        x = ops.where(outside, 0.5, value)
        end = zero | one
        one_minus_xa = ops.where(end, ops.where(zero, 1.0, 0.0), -ops.expm1(a * ops.log(ops.where(end, 0.5, x))))
        lp = ops.log(a) + ops.log(b) + xlogy(a - 1, x) + xlogy(b - 1, one_minus_xa)
        # (at x = 1, 1 − x^a is the constant 0, and (b − 1)·log a keeps the gradient in a the limit b/a:
        # log(1 − x^a) − log(1 − x) → log a as x → 1; the value is ±∞ there, or log(ab) + 0 for b = 1)
        lp = lp + ops.where(one, (b - 1) * ops.log(a), 0.0)
        return ops.where(outside, -math.inf, lp)

    def entropy(self):
        a, b = self.concentration1, self.concentration0
        harmonic = ops.digamma(b + 1) + numpy.euler_gamma
        return self._batch((1 - 1 / b) + (1 - 1 / a) * harmonic - ops.log(a) - ops.log(b))

    def cdf(self, value):
        x = ops.clip(self._value(value), 0.0, 1.0)
        a, b = self.concentration1, self.concentration0
        zero, one = array_function(lambda x: (x == 0, x == 1), x)
        one_minus_xa = -ops.expm1(a * ops.log(ops.where(zero, 1.0, x)))
        log_survival = b * ops.log(ops.where(one | zero, 0.5, one_minus_xa))
        return ops.where(zero, 0.0, ops.where(one, 1.0, -ops.expm1(log_survival)))

    def icdf(self, value):
        p = self._value(value)
        a, b = self.concentration1, self.concentration0
        end, bad = array_function(lambda p: ((p == 0) | (p == 1), ~((p >= 0) & (p <= 1))), p)
        safe = ops.where(end | bad, 0.5, p)  # (no log of 0 taken: icdf(0) = 0, icdf(1) = 1)
        x = ops.exp(ops.log(-ops.expm1(ops.log1p(-safe) / b)) / a)
        return ops.where(bad, math.nan, ops.where(end, p, x))

    def __repr__(self):
        return f"Kumaraswamy(batch_shape={self.batch_shape})"
