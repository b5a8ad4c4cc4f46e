"""The Gamma distribution, sampled by Marsaglia and Tsang's method and differentiated by implicit reparameterization;
with the helpers that Exponential, Beta and Dirichlet share (positive parameters, Gamma draws, x·log y)."""
import math

import numpy

from minivae import ops
from minivae._backend import get_array_module
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, checked_params
from minivae.engine import array_function
from minivae.random import resolve

ONE_THIRD = 1 / 3


def positive_params(given, names, who):
    """(tensors, batch_shape, dtype) of parameters that must all be > 0 and finite (``checked_params``)."""
    return checked_params(given, names, who, positive=names)


def standard_gamma_draws(rng, concentration, shape, dtype, device="cpu"):
    """Draws of Gamma(α, 1) of ``shape`` (α = ``concentration``'s array broadcast to it), in ``dtype``, on its device, no
    gradient: Marsaglia & Tsang (2000): d = α − ⅓, c = 1/√(9d), x ~ N(0, 1), v = (1 + c·x)³, accepted when v > 0 and
    log u < x²/2 + d − d·v + d·log v (u ~ U(0, 1)), then d·v; the rejected positions drawn again (acceptance ≥ 95%).
    For α < 1, a draw of Gamma(α + 1, 1) times u^{1/α} (their boost), one more uniform each. Computed in float64
    (every uniform and normal drawn by ``rng`` in float64), rounded to ``dtype`` and clamped to its smallest normal
    number (torch's clamp: u^{1/α} of a small α underflows, and a draw of 0 has no logarithm). ``device``: the
    concentration's, where ``rng`` draws."""
    xp = get_array_module(concentration)
    a = xp.broadcast_to(concentration.astype(numpy.float64), shape).ravel()
    boost = a < 1
    d = xp.where(boost, a + 1, a) - ONE_THIRD
    c = 1 / xp.sqrt(9 * d)
    out = xp.empty_like(a)
    pending = xp.arange(a.size)
    while pending.size:
        x = rng.normal((pending.size,), numpy.float64, device=device)
        u = rng.uniform((pending.size,), numpy.float64, device=device)
        dp = d[pending]
        v = (1 + c[pending] * x) ** 3
        positive = v > 0
        log_v = xp.log(xp.where(positive, v, 1.0))
        accept = positive & (xp.log(u) < 0.5 * x * x + dp - dp * v + dp * log_v)
        out[pending[accept]] = (dp * v)[accept]
        pending = pending[~accept]
    u = rng.uniform((a.size,), numpy.float64, device=device)
    out = xp.where(boost, out * xp.exp(xp.log(u) / a), out)
    return xp.maximum(out.astype(dtype), numpy.finfo(dtype).tiny).reshape(shape)


def gamma_rsample(rng, concentration, shape, dtype, draws=None):
    """standard_gamma(α, z) of draws z of Gamma(α, 1) (``draws`` given, or drawn by ``rng``): the draws, with the
    implicit gradient in α."""
    if draws is None:
        device = concentration.device
        draws = array_function(lambda a: standard_gamma_draws(resolve(rng), a, shape, dtype, device), concentration)
    return ops.standard_gamma(concentration, draws)


def xlogy(c, x):
    """c·log x for x ≥ 0, 0 where c = 0 (at x = 0 too, as torch.xlogy), ∓∞ where x = 0 < ±c; no log of 0 is taken
    (its gradient there is 0)."""
    xp = x.xp
    zero_x = array_function(lambda x: x == 0, x)
    zero_c = array_function(lambda c: c == 0, c)
    at_zero = array_function(lambda c: xp.where(c == 0, 0.0, xp.where(c > 0, -xp.inf, xp.inf)).astype(c.dtype), c)
    product = c * ops.log(ops.where(zero_x, 1.0, x))
    return ops.where(zero_x, at_zero, ops.where(zero_c, 0.0, product))


def below_zero(value):
    return array_function(lambda v: v < 0, value)


class Gamma(Distribution):
    """Gamma(concentration α, rate β): density β^α x^{α−1} e^{−βx}/Γ(α) on x ≥ 0, elementwise (batch_shape = the
    broadcast shape of α and β), as torch.distributions.Gamma.

    rsample    z/β, z ~ Gamma(α, 1) by Marsaglia & Tsang (``standard_gamma_draws``), differentiable in α by implicit
               reparameterization (ops.standard_gamma: dz/dα = −(∂F/∂α)/f at fixed F(z; α)) and in β as z/β
    log_prob   α log β + (α − 1) log x − βx − lgamma(α) (x·log y as torch.xlogy: α = 1 at x = 0 gives log β)
    entropy    α − log β + lgamma(α) + (1 − α)·ψ(α)
    mean α/β;  mode max((α − 1)/β, 0);  variance α/β²
    support nonnegative; arg_constraints positive. Constant CPU parameters must be > 0 and finite.
    kl_divergence(Gamma, Gamma) and (Exponential, Gamma): torch's closed forms (minivae.distributions.kl).

    Different from torch on purpose:
        - log_prob(x) of x < 0 is −∞ (density 0 outside the support, as Uniform's), where torch refuses the value
          (validate_args) or returns NaN.
    """

    has_rsample = True
    _params = ("concentration", "rate")
    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative

    def __init__(self, concentration, rate):
        (self.concentration, self.rate), self.batch_shape, self._dtype = positive_params(
            (concentration, rate), ("concentration", "rate"), "Gamma")

    @property
    def mean(self):
        return self._batch(self.concentration / self.rate)

    @property
    def mode(self):
        return self._batch(ops.clip((self.concentration - 1) / self.rate, 0.0))

    @property
    def variance(self):
        return self._batch(self.concentration / (self.rate * self.rate))

    def rsample(self, sample_shape=(), rng=None, draws=None):
        """z/β of draws z of Gamma(α, 1) by ``rng`` (in the parameters' dtype); pass ``draws`` (of Gamma(α, 1), shape
        sample_shape + batch_shape) to fix them (then ``rng`` is not needed)."""
        z = gamma_rsample(rng, self.concentration, self._extended(sample_shape), self._dtype, draws)
        return z / self.rate

    def log_prob(self, value):
        value = self._value(value)
        outside = below_zero(value)
        x = ops.where(outside, 1.0, value)
        a, b = self.concentration, self.rate
        lp = a * ops.log(b) + xlogy(a - 1, x) - b * x - ops.lgamma(a)
        return ops.where(outside, -math.inf, lp)

    def entropy(self):
        a = self.concentration
        return self._batch(a - ops.log(self.rate) + ops.lgamma(a) + (1 - a) * ops.digamma(a))

    def __repr__(self):
        return f"Gamma(batch_shape={self.batch_shape})"
