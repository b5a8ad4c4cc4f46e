"""The Cauchy (Lorentz) distribution, sampled by its inverse cdf."""
import math

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, cdf_with_limits, location_scale
from minivae.engine import array_function
from minivae.random import resolve

LOG_PI, LOG_4PI = math.log(math.pi), math.log(4 * math.pi)


def log1p_square(z):
    """log(1 + z²) without overflow: 2 log|z| + log1p(1/z²) for |z| > 1 (z² is ∞ from |z| ≈ 1.3·10¹⁵⁴ in float64,
    1.8·10¹⁹ in float32, where the log is still finite), log1p(z²) otherwise."""
    a = ops.abs(z)
    big = array_function(lambda a: a > 1, a)
    large, small = ops.where(big, a, 1.0), ops.where(big, 0.0, a)
    inverse = 1 / large  # (1/|z|)², which underflows to 0 where 1/z² would overflow first
    return ops.where(big, 2 * ops.log(large) + ops.log1p(inverse * inverse), ops.log1p(small * small))


def tan_pi_centred(p):
    """tan(π(p − ½)) for p in [0, 1] by ops.tan of angles at most π/4 from where they are accurate: tan θ,
    θ = π(p − ½), for |p − ½| ≤ ¼ (p − ½ is exact there), and ∓cot(πq) = ∓1/tan(πq), q = min(p, 1 − p) (1 − p exact
    for p ≥ ½), in the tails, so that p near 0 or 1 keeps its digits (torch's tan(π(p − ½)) rounds p − ½: a float32 p
    of 2⁻²⁴ gives −1.4·10⁷ instead of −5.3·10⁶). −∞ at p = 0, ∞ at p = 1, NaN outside [0, 1]."""
    xp = p.xp
    central, lower, end, bad = array_function(
        lambda p: (abs(p - 0.5) <= 0.25, p < 0.5, (p == 0) | (p == 1), ~((p >= 0) & (p <= 1))), p)
    theta = math.pi * ops.where(central, p - 0.5, 0.0)
    q = ops.where(lower, p, 1 - p)
    tail_angle = math.pi * ops.where(central | end | bad, 0.25, q)
    sign = array_function(lambda lower: xp.where(lower, -1.0, 1.0).astype(p.dtype), lower)
    tail = sign / ops.tan(tail_angle)
    t = ops.where(central, ops.tan(theta), tail)
    return ops.where(bad, math.nan, ops.where(end, sign * math.inf, t))


class Cauchy(Distribution):
    """Cauchy(loc, scale): density 1/(π·scale·(1 + ((x − loc)/scale)²)), elementwise (batch_shape = the broadcast shape
    of loc and scale), as torch.distributions.Cauchy.

    rsample    icdf(u), u ~ Uniform(0, 1) open: loc + scale·tan(π(u − ½)), differentiable in loc (1) and scale
               ((z − loc)/scale) (pathwise); float32 uniforms lie in [2⁻²⁴, 1 − 2⁻²⁴], so every draw is finite,
               within 5.3·10⁶ scales of loc (2.7·10⁹ in float64)
    log_prob   −log π − log scale − log(1 + z²), z = (x − loc)/scale, as −log π + log scale − 2 log hypot(x − loc, scale)
               (ops.hypot, scale-free: finite where z², or z itself, overflows: |x − loc| = 10³⁰ at scale 10⁻³⁰)
    entropy    log(4π) + log scale
    mean NaN;  variance ∞ (torch's: neither moment exists);  mode loc
    cdf        ½ + atan(z)/π = atan2(scale, loc − x)/π (ops.atan2, of x − loc and scale: z overflows where scale is
               tiny, and its gradient was NaN there; the lower tail keeps its digits, 1/(π|z|), where torch's
               ½ + atan(z)/π is 0 from |z| ≈ 10¹⁶ on in float64); its gradient the density, 1/(π·scale·(1 + z²)) in x,
               0 at z = ±∞
    icdf       loc + scale·tan(π(p − ½)) (``tan_pi_centred``, ops.tan); −∞ at p = 0, ∞ at p = 1, NaN outside [0, 1]
    kl_divergence(Cauchy, Cauchy) is torch's closed form (minivae.distributions.kl).
    support real; arg_constraints loc real, scale positive. A constant CPU scale must be > 0 and finite.

    Different from torch on purpose: cdf's lower tail and icdf's p near 0 or 1 keep their digits (above); icdf(p) is
    NaN for p outside [0, 1] (torch's is tan's periodic continuation); log_prob is finite where z² overflows.
    """

    has_rsample = True
    _params = ("loc", "scale")
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real

    def __init__(self, loc, scale):
        self.loc, self.scale, self.batch_shape, self._dtype = location_scale(loc, scale, "Cauchy")

    def _full(self, fill):
        xp, shape = self.loc.xp, self.batch_shape
        return array_function(lambda loc: xp.full(shape, fill, self._dtype), self.loc)

    @property
    def mean(self):
        """NaN, as torch's: the mean does not exist."""
        return self._full(math.nan)

    @property
    def variance(self):
        """∞, as torch's."""
        return self._full(math.inf)

    @property
    def mode(self):
        return self._batch(self.loc)

    def rsample(self, sample_shape=(), rng=None, uniforms=None):
        """icdf(u) of uniforms u in (0, 1) drawn by ``rng`` in the parameters' dtype; pass ``uniforms`` to fix them
        (then ``rng`` is not needed)."""
        if uniforms is None:
            uniforms = resolve(rng).uniform(self._extended(sample_shape), self._dtype, device=self.loc.device)
        return self.icdf(uniforms)

    def log_prob(self, value):
        return -LOG_PI + ops.log(self.scale) - 2 * ops.log(ops.hypot(self._value(value) - self.loc, self.scale))

    def entropy(self):
        return self._batch(LOG_4PI + ops.log(self.scale))

    def cdf(self, value):
        return cdf_with_limits(self._cdf, self._value(value))

    def _cdf(self, value):
        return ops.atan2(self.scale, self.loc - value) / math.pi

    def icdf(self, value):
        return self.loc + self.scale * tan_pi_centred(self._value(value))

    def __repr__(self):
        return f"Cauchy(batch_shape={self.batch_shape})"
