"""Bernoulli(σ(logits)), the likelihood of binary pixels."""
from minivae import ops
from minivae.distributions.distribution import Distribution, as_param, require_rng
from minivae.engine import Tensor


class Bernoulli(Distribution):
    """P(x = 1) = σ(logits), elementwise.

    log_prob   x·log σ(l) + (1 − x)·log(1 − σ(l)) = −bce_with_logits(l, x)  (stable for any l)
    entropy    bce_with_logits(l, σ(l))
    """

    def __init__(self, logits):
        self.logits = as_param(logits)
        self.batch_shape = self.logits.shape

    @property
    def probs(self):
        return ops.sigmoid(self.logits)

    @property
    def mean(self):
        return self.probs

    def sample(self, sample_shape=(), rng=None):
        p = self.probs.data
        u = require_rng(rng, "Bernoulli.sample").uniform(self._extended(sample_shape), p.dtype, device=self.logits.device)
        return Tensor((u < p).astype(p.dtype))

    def log_prob(self, value):
        return -ops.bce_with_logits(self.logits, value)

    def entropy(self):
        return ops.bce_with_logits(self.logits, self.probs)  # both arguments carry l's gradient
