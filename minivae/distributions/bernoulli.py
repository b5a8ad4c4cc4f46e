"""Bernoulli(σ(logits)), the likelihood of binary pixels."""
from minivae import ops
from minivae.distributions.distribution import Distribution, logits_from
from minivae.plan import array_function
from minivae.random import resolve


class Bernoulli(Distribution):
    """P(x = 1) = σ(logits), elementwise.

    log_prob   x·log σ(l) + (1 − x)·log(1 − σ(l)) = −bce_with_logits(l, x)  (stable for any l; one op)
    entropy    bce_with_logits(l, σ(l))
    Give exactly one of ``probs`` (the first positional argument, as in PyTorch) and ``logits``.
    """

    def __init__(self, probs=None, logits=None):
        self.logits = logits_from(probs, logits, "Bernoulli", binary=True)
        self.batch_shape = self.logits.shape

    @property
    def probs(self):
        return ops.sigmoid(self.logits)

    @property
    def mean(self):
        return self.probs

    def sample(self, sample_shape=(), rng=None):
        p = self.probs
        u = resolve(rng).uniform(self._extended(sample_shape), p.dtype, device=self.logits.device)
        return array_function(lambda u, p: (u < p).astype(p.dtype), u, p)

    def log_prob(self, value):
        return ops.bernoulli_log_prob(self.logits, value)

    def entropy(self):
        return ops.bce_with_logits(self.logits, self.probs)  # both arguments carry l's gradient
