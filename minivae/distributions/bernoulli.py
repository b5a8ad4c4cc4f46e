"""Bernoulli(σ(logits)), the likelihood of binary pixels."""
import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, as_value, logits_from
from minivae.plan import array_function
from minivae.random import resolve


class Bernoulli(Distribution):
    """P(x = 1) = σ(logits), elementwise.

    log_prob   x·log σ(l) + (1 − x)·log(1 − σ(l)) = −bce_with_logits(l, x)  (stable for any l; one op)
    entropy    bce_with_logits(l, p), p the given probs; of logits, softplus(−|l|) + |l|·σ(−|l|) (= softplus(l) − σ(l)·l,
               which cancels for l ≫ 0 in float32: 2.1·10⁻⁹ at l = 20, where it is 4.3·10⁻⁸)
    Give exactly one of ``probs`` (the first positional argument, as in PyTorch) and ``logits``.
    Given probs (in [0, 1]) are kept as given for ``probs``, ``mean`` and ``sample``, so probs 0 and 1
    never draw the impossible value; ``log_prob`` and ``entropy`` go through the logits of the probs
    clamped to [ε, 1 − ε], as in torch.distributions.
    """

    _params = ("logits", "_probs")
    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.boolean

    def __init__(self, probs=None, logits=None):
        self.logits, self._probs = logits_from(probs, logits, "Bernoulli", binary=True)
        self.batch_shape = self.logits.shape

    @property
    def probs(self):
        return ops.sigmoid(self.logits) if self._probs is None else self._probs

    @property
    def mean(self):
        return self.probs

    @property
    def mode(self):
        """1 where p > ½, 0 where p < ½ (and where p is NaN), NaN where p = ½ exactly, as torch's; no gradient."""
        xp = self.logits.xp
        return array_function(lambda p: xp.where(p == 0.5, xp.nan, p >= 0.5).astype(p.dtype, copy=False), self.probs)

    @property
    def variance(self):
        """p(1 − p)."""
        p = self.probs
        return p * (1 - p)

    def enumerate_support(self, expand=True):
        """The values 0 and 1 in the logits' dtype, along a new first axis: (2,) + batch_shape, or (2, 1, …, 1) to
        broadcast against the batch when not ``expand``."""
        return self._support(self.logits, lambda xp, dtype: xp.arange(2, dtype=dtype), expand)

    def sample(self, sample_shape=(), rng=None):
        """1 where u < p, u ~ Uniform(0, 1) open: exactly Bernoulli(p), and p = 0 / p = 1 give only 0 / 1. u is
        float64 for a float16 p: float16 uniforms (rounded from float32's) would make P(u < p) = 0 for p = 2⁻²⁴, and
        about half a float16 step below p for the others."""
        p = self.probs
        dtype = numpy.float64 if p.dtype == numpy.float16 else p.dtype
        u = resolve(rng).uniform(self._extended(sample_shape), dtype, device=self.logits.device)
        return array_function(lambda u, p: (u < p).astype(p.dtype), u, p)

    def log_prob(self, value):
        """In the logits' dtype for integer values (the op casts them), as OneHotCategorical's."""
        return ops.bernoulli_log_prob(self.logits, as_value(value, self.logits))

    def entropy(self):
        if self._probs is not None:
            return ops.bce_with_logits(self.logits, self._probs)
        a = ops.abs(self.logits)  # (H is even in l)
        return ops.softplus(-a) + a * ops.sigmoid(-a)
