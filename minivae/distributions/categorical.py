"""Categorical distributions over K classes, sampled by the Gumbel-max trick."""
from minivae import ops
from minivae.distributions.distribution import CategoricalLogits, Distribution, logits_from
from minivae.engine import Tensor
from minivae.plan import array_function
from minivae.random import resolve


class Categorical(CategoricalLogits, Distribution):
    """P(z = k) = softmax(logits)_k over the last axis; samples are integer class indices.

    sample     argmax_k (logits_k + g_k), g ~ Gumbel(0, 1): exactly Categorical (Gumbel-max trick)
    log_prob   log_softmax(logits)[z]
    entropy    −Σ_k p_k log p_k
    Give exactly one of ``probs`` (the first positional argument, as in PyTorch) and ``logits``;
    ``probs`` are nonnegative weights w, p_k = w_k / Σ_j w_j, and ``logits`` are normalized
    (log-probabilities), as in torch.distributions.
    """

    def __init__(self, probs=None, logits=None):
        logits, _ = logits_from(probs, logits, type(self).__name__)
        self._set_logits(logits)
        self.batch_shape = logits.shape[:-1]

    def sample(self, sample_shape=(), rng=None):
        """Class indices; −1 where a row's logits hold NaN (an index cannot be NaN, and numpy.argmax
        would return the NaN's position as if it were a draw)."""
        xp = self.logits.xp
        return array_function(lambda k, nan: xp.where(nan, -1, k), *self._gumbel_max(sample_shape, rng))

    def _gumbel_max(self, sample_shape, rng):
        """(argmax_k (logits_k + g_k), whether the row holds NaN), as tensors."""
        shape = self._extended(sample_shape, event_shape=(self.num_categories,))
        g = resolve(rng).gumbel(shape, self.logits.dtype, device=self.logits.device)
        xp = self.logits.xp

        def gumbel_max(logits, g):
            noisy = logits + g
            return noisy.argmax(axis=-1), xp.isnan(noisy).any(axis=-1)
        return array_function(gumbel_max, self.logits, g)

    def log_prob(self, value):
        return (ops.one_hot(value, self.num_categories, dtype=self.logits.dtype) * self.logits).sum(axis=-1)

    def entropy(self):
        return -(self.probs * self.logits).sum(axis=-1)

    def enumerate_support(self):
        """All K values, shaped (K, 1, …, 1) to broadcast against the batch."""
        xp = self.logits.xp
        return Tensor(xp.arange(self.num_categories).reshape((-1,) + (1,) * len(self.batch_shape)))


class OneHotCategorical(Categorical):
    """Categorical with one-hot samples (event_shape = (K,))."""

    def __init__(self, probs=None, logits=None):
        super().__init__(probs, logits)
        self.event_shape = (self.num_categories,)

    def sample(self, sample_shape=(), rng=None):
        """One-hot rows; NaN rows where the logits hold NaN (NaN in, NaN out)."""
        k, nan = self._gumbel_max(sample_shape, rng)
        y = ops.one_hot(k, self.num_categories, dtype=self.logits.dtype)
        xp = self.logits.xp
        return array_function(lambda nan, y: xp.where(nan[..., None], xp.nan, y).astype(y.dtype, copy=False), nan, y)

    def log_prob(self, value):
        return (value * self.logits).sum(axis=-1)

    def enumerate_support(self):
        """All K one-hot vectors, shaped (K, 1, …, 1, K)."""
        eye = self.logits.xp.eye(self.num_categories, dtype=self.logits.dtype)
        return Tensor(eye.reshape((self.num_categories,) + (1,) * len(self.batch_shape) + (self.num_categories,)))
