"""The Laplace (double exponential) distribution, sampled by its inverse cdf."""
import math

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, cdf_with_limits, location_scale
from minivae.distributions.normal import SQRT2
from minivae.engine import array_function
from minivae.random import resolve


class Laplace(Distribution):
    """Laplace(loc, scale): density e^{−|x − loc|/scale} / (2·scale), elementwise (batch_shape = the broadcast shape of
    loc and scale), as torch.distributions.Laplace.

    rsample    icdf(u), u ~ Uniform(0, 1) open: differentiable in loc (1) and scale ((z − loc)/scale) (pathwise); the
               law of torch's loc − scale·sign(v)·log1p(−|v|), v ~ Uniform(−1, 1)
    log_prob   −log(2 scale) − |x − loc|/scale
    entropy    1 + log(2 scale)
    mean, mode loc;  variance 2 scale²;  stddev √2·scale
    cdf        d = x − loc: ½·e^{−|d|/scale} for d < 0, 1 − ½·e^{−|d|/scale} for d ≥ 0
    icdf       loc + scale·log(2p) for p < ½, loc − scale·log(2(1 − p)) for p ≥ ½; −∞ at p = 0, ∞ at p = 1
    kl_divergence(Laplace, Laplace) is torch's closed form (minivae.distributions.kl).

    Different from torch on purpose:
        - cdf's lower tail and icdf's small p keep their digits: torch's ½ − ½·sign(d)·expm1(−|d|/scale) is
          ½ + ½·(e^{−|d|/scale} − 1), 0 from |d| ≈ 38·scale on in float64 (here ½·e^{−|d|/scale}, 10⁻³⁰⁰ and below),
          and its icdf loc − scale·sign(p − ½)·log1p(−2|p − ½|) rounds p − ½ (icdf(10⁻²⁰) = −∞ there; here
          loc + scale·log(2·10⁻²⁰)).
        - cdf's gradient at x = loc is the density 1/(2 scale) (torch's is 0: the gradients of sign and |·| at 0).
        - icdf(p) is NaN for p outside [0, 1], as Normal's (torch's returns NaN too, from log1p of a number < −1).
    """

    has_rsample = True
    _params = ("loc", "scale")
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real

    def __init__(self, loc, scale):
        self.loc, self.scale, self.batch_shape, self._dtype = location_scale(loc, scale, "Laplace")

    @property
    def mean(self):
        return self._batch(self.loc)

    mode = mean  # symmetric and unimodal: its mode is its mean

    @property
    def variance(self):
        return self._batch(2 * self.scale * self.scale)

    @property
    def stddev(self):
        return self._batch(SQRT2 * self.scale)

    def rsample(self, sample_shape=(), rng=None, uniforms=None):
        """icdf(u) of uniforms u in (0, 1) drawn by ``rng`` in the parameters' dtype; pass ``uniforms`` to fix them
        (then ``rng`` is not needed). float32 uniforms lie in [2⁻²⁴, 1 − 2⁻²⁴]: every draw is finite, within
        15.9·scale of loc (22.2·scale in float64: uniforms in [2⁻³³, 1 − 2⁻³³])."""
        if uniforms is None:
            uniforms = resolve(rng).uniform(self._extended(sample_shape), self._dtype, device=self.loc.device)
        return self.icdf(uniforms)

    def log_prob(self, value):
        value = self._value(value)
        return -ops.log(2 * self.scale) - ops.abs(value - self.loc) / self.scale

    def entropy(self):
        return self._batch(1 + ops.log(2 * self.scale))

    def cdf(self, value):
        return cdf_with_limits(self._cdf, self._value(value))

    def _cdf(self, x):
        d = x - self.loc
        below = array_function(lambda d: d < 0, d)
        # |d| written as a where, so that its gradient at d = 0 is 1 (the branch 1 − ½e^{−d/scale}: density 1/(2 scale))
        half_tail = 0.5 * ops.exp(-ops.where(below, -d, d) / self.scale)
        return ops.where(below, half_tail, 1 - half_tail)

    def icdf(self, value):
        p = self._value(value)
        xp = p.xp
        # lower: p < ½ (and p = 0); end: p ∈ {0, 1}, whose log is −∞; bad: p outside [0, 1] or NaN; fixed: end or bad
        lower, end, bad, fixed = array_function(
            lambda p: (p < 0.5, (p == 0) | (p == 1), ~((p >= 0) & (p <= 1)), ~((p > 0) & (p < 1))), p)
        sign = array_function(lambda lower: xp.where(lower, 1.0, -1.0).astype(p.dtype), lower)
        safe = ops.where(fixed, 0.5, p)  # each branch's logarithm finite: no warning, no NaN gradient
        log_tail = ops.where(end, -math.inf, ops.log(2 * ops.where(lower, safe, 1 - safe)))
        return ops.where(bad, math.nan, self.loc + self.scale * sign * log_tail)

    def __repr__(self):
        return f"Laplace(batch_shape={self.batch_shape})"
