"""The Binary Concrete (the binary Gumbel-Softmax): a relaxed Bernoulli, in logit space and on [0, 1]."""
import math

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, as_value, logits_from
from minivae.engine import array_function
from minivae.ops.binary_concrete import logistic_noise
from minivae.ops.softmax import check_temperature
from minivae.plan import live
from minivae.random import resolve


class LogitRelaxedBernoulli(Distribution):
    r"""The logit of a Binary Concrete sample: x = (l + L)/τ, L = log u − log(1 − u) ~ Logistic(0, 1), l = ``logits``.

    rsample    x, differentiable in l (∂x/∂l = 1/τ); u ~ Uniform(0, 1) open, drawn by ``rng``
    log_prob   log τ + d − 2·softplus(d), d = l − τx  (torch's log τ + d − 2·log1p(eᵈ), which is −∞ from d ≈ 89 on
               in float32; softplus keeps it finite and exact for any d)
    Arguments as PyTorch's: ``temperature`` τ (a finite real number > 0, as the relaxed categoricals'), then exactly one
    of ``probs`` and ``logits``. Given probs are clamped to [ε, 1 − ε] for the logits, as torch's.

    Different from torch on purpose: rsample adds the noise to the logits as given; torch's goes through the probs
    clamped to [ε, 1 − ε], so that its logits are cut to ±36.7 (float64; ±15.9 in float32): a logit of 100 samples as
    one of 15.9 there. log_prob is the same formula, finite where torch's overflows.

    References:
        1. Maddison, Mnih, Teh. The Concrete Distribution. ICLR 2017 (Section 3.3, Binary Concrete; Appendix C).
        2. Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017.
    """

    has_rsample = True
    _params = ("logits", "_probs")
    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.real

    def __init__(self, temperature, probs=None, logits=None):
        self.temperature = check_temperature(temperature)
        self.logits, self._probs = logits_from(probs, logits, type(self).__name__, binary=True)
        self.batch_shape = self.logits.shape

    @property
    def probs(self):
        return ops.sigmoid(self.logits) if self._probs is None else self._probs

    def _logistic(self, sample_shape, rng, uniforms):
        """L = log u − log1p(−u) of uniforms u (drawn by ``rng`` in the logits' dtype, or the ``uniforms`` given); no
        gradient. float32 uniforms lie in [2⁻²⁴, 1 − 2⁻²⁴]: |L| ≤ 16.6 (22.9 in float64, uniforms in [2⁻³³, 1 − 2⁻³³]):
        always finite."""
        logits = self.logits
        if uniforms is None:
            uniforms = resolve(rng).uniform(self._extended(sample_shape), logits.dtype, device=logits.device)
        xp = logits.xp
        return array_function(lambda u: logistic_noise(xp, u), as_value(uniforms, logits))

    def rsample(self, sample_shape=(), rng=None, uniforms=None):
        """(l + L)/τ; pass ``uniforms`` (in (0, 1)) to fix the noise (then ``rng`` is not needed)."""
        return self._scaled(self._logistic(sample_shape, rng, uniforms))

    def _scaled(self, noise):
        return (self.logits + noise) / self.temperature

    def log_prob(self, value):
        diff = self.logits - self.temperature * as_value(value, self.logits)
        return live(math.log, self.temperature) + diff - 2 * ops.softplus(diff)

    def __repr__(self):
        return f"{type(self).__name__}(temperature={self.temperature}, batch_shape={self.batch_shape})"


def clamp_unit(y):
    """y clamped to [ε, 1 − ε], ε its dtype's machine epsilon (torch's clamp of the Binary Concrete's samples and of the
    values its density takes: log y and log(1 − y) stay finite)."""
    eps = float(numpy.finfo(y.dtype).eps)
    return ops.clip(y, eps, 1 - eps)


class RelaxedBernoulli(LogitRelaxedBernoulli):
    r"""The Binary Concrete on [0, 1] (Maddison et al.'s BinConcrete(α = eˡ, λ = τ)): y = σ((l + L)/τ).

    rsample    σ(x) of LogitRelaxedBernoulli's x, clamped to [ε, 1 − ε] as torch's (so that log y and log(1 − y)
               downstream are finite; ε the dtype's machine epsilon); differentiable in l
    log_prob   the density of y: log τ + d − 2·softplus(d) − log y − log(1 − y), x = log y − log(1 − y), d = l − τx,
               with y clamped to [ε, 1 − ε] as torch's (the samples' range: finite at y = 0 and y = 1, where the
               density is 0 or ∞, and so is its gradient in y, at most τ/ε)
    Arguments as LogitRelaxedBernoulli's; τ → 0 gives Bernoulli(σ(l)) (P(y > ½) = σ(l) at every τ).
    Not a TransformedDistribution (minivae has none): a LogitRelaxedBernoulli whose sample and density are σ(x)'s.
    """

    support = constraints.unit_interval

    def rsample(self, sample_shape=(), rng=None, hard=False, uniforms=None):
        """y = σ((l + L)/τ), clamped to [ε, 1 − ε]; ``uniforms`` as LogitRelaxedBernoulli's.

        ``hard=True`` (the straight-through Bernoulli, as RelaxedOneHotCategorical's ``hard``): z = 1[l + L > 0]
        forward, y's gradient backward, z + (y − y.detach()). z is 1[y > ½] taken before σ, whose rounding near ½
        would turn l + L ∈ (0, 2⁻²³·τ) to 0 in float32; P(l + L > 0) = P(L > −l) = σ(l), so z is an exact
        Bernoulli(σ(l)) draw, 0 or 1 in the logits' dtype. y − y.detach() is 0 exactly (NaN where y is), so z's
        values are kept; (z + y) − y.detach() would round them. Not in torch (it has no hard relaxed Bernoulli)."""
        noise = self._logistic(sample_shape, rng, uniforms)
        y = clamp_unit(ops.sigmoid(self._scaled(noise)))
        if not hard:
            return y
        z = array_function(lambda logits, noise: (logits + noise > 0).astype(logits.dtype), self.logits, noise)
        return z + (y - y.detach())

    def log_prob(self, value):
        value = as_value(value, self.logits)
        if value.dtype.kind != "f":
            value = value.astype(self.logits.dtype)
        y = clamp_unit(value)
        log_y, log_1my = ops.log(y), ops.log1p(-y)
        return super().log_prob(log_y - log_1my) - log_y - log_1my
