"""Categorical distributions over K classes, sampled by the Gumbel-max trick."""
import math

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import CategoricalLogits, Distribution, as_value, logits_from
from minivae.plan import array_function
from minivae.random import resolve


class Categorical(CategoricalLogits, Distribution):
    """P(z = k) = softmax(logits)_k over the last axis; samples are integer class indices.

    sample     argmax_k (log p_k + g_k), g ~ Gumbel(0, 1): exactly Categorical (Gumbel-max trick); log p is
               the logits, or the log of the probs given (log 0 = −inf: a category of probability 0 is
               never drawn, as torch samples from the probs, where the logits clamp them to ε)
    log_prob   log_softmax(logits)[z]  (−inf for a category whose logit is −inf)
    entropy    −Σ_k p_k log p_k  (log p_k at least the dtype's lowest finite value, as torch: 0 for p_k = 0)
    Give exactly one of ``probs`` (the first positional argument, as in PyTorch) and ``logits``;
    ``probs`` are nonnegative weights w, p_k = w_k / Σ_j w_j, and ``logits`` are normalized
    (log-probabilities), as in torch.distributions.
    """

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}

    def __init__(self, probs=None, logits=None):
        logits, p = logits_from(probs, logits, type(self).__name__)
        self._set_logits(logits, p)
        self.batch_shape = logits.shape[:-1]

    @property
    def support(self):
        """integer_interval(0, K − 1): the class indices."""
        return constraints.integer_interval(0, self.num_categories - 1)

    def sample(self, sample_shape=(), rng=None):
        """Class indices; −1 where a row's logits hold NaN (an index cannot be NaN, and numpy.argmax
        would return the NaN's position as if it were a draw)."""
        xp = self.logits.xp
        return array_function(lambda k, nan: xp.where(nan, -1, k), *self._gumbel_max(sample_shape, rng))

    def _gumbel_max(self, sample_shape, rng):
        """(argmax_k (logits_k + g_k), whether the row holds NaN), as tensors."""
        shape = self._extended(sample_shape, event_shape=(self.num_categories,))
        given = self.logits if self._probs is None else self._probs
        g = resolve(rng).gumbel(shape, given.dtype, device=given.device)
        xp, from_probs = given.xp, self._probs is not None

        def gumbel_max(given, g):
            if from_probs:
                with numpy.errstate(divide="ignore"):  # log 0 = −inf, on purpose
                    given = xp.log(given)
            noisy = given + g
            return noisy.argmax(axis=-1), xp.isnan(noisy).any(axis=-1)
        return array_function(gumbel_max, given, g)

    def log_prob(self, value):
        # the logit z selected, not one_hot(z)·logits: 0·(−inf) would make the log-probability of every value NaN
        mask = ops.one_hot(as_value(value, self.logits), self.num_categories, dtype=bool)
        return ops.where(mask, self.logits, 0.0).sum(axis=-1)

    def entropy(self):
        logits = ops.clip(self.logits, min=float(numpy.finfo(self.logits.dtype).min))  # 0·(−inf) would be NaN
        return -(self.probs * logits).sum(axis=-1)

    def enumerate_support(self, expand=True):
        """All K class indices (int64), along a new first axis: (K,) + batch_shape, or (K, 1, …, 1) to broadcast
        against the batch when not ``expand``."""
        return self._support(self._given_logits, lambda xp, dtype: xp.arange(self.num_categories, dtype=numpy.int64),
                             expand)

    @property
    def mode(self):
        """argmax_k p_k (the first of ties), as torch's: class indices."""
        return array_function(lambda p: p.argmax(axis=-1), self.probs)

    @property
    def mean(self):
        """NaN, as torch's: class indices have no mean (batch_shape, in the probs' dtype)."""
        return self._nan()

    @property
    def variance(self):
        """NaN, as torch's."""
        return self._nan()

    def _nan(self):
        xp, shape = self._given_logits.xp, self._extended(())
        return array_function(lambda logits: xp.full(shape, xp.nan, logits.dtype), self._given_logits)


class OneHotCategorical(Categorical):
    """Categorical with one-hot samples (event_shape = (K,))."""

    support = constraints.one_hot

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
        """Σ_k v_k log p_k: log p_z of a one-hot v at z (as torch scores its index), with 0·(−inf) = 0, so that a
        category of probability 0 the value does not take adds nothing; in the logits' dtype, as torch's (an
        integer one-hot would make NumPy's float64 of float32 logits)."""
        value = as_value(value, self.logits)
        if value.dtype.kind != "f":
            value = value.astype(self.logits.dtype)
        # such a logit is replaced by 0 before the product, so its gradients are l̄ = ḡ·v = 0 and v̄ = ḡ·0 = 0; a
        # product's NaN selected away after it would still send 0·(−inf) = NaN back through the product's VJP
        unused = array_function(lambda v, logits: (v == 0) & (logits == -math.inf), value, self.logits)
        return (value * ops.where(unused, 0.0, self.logits)).sum(axis=-1)

    def enumerate_support(self, expand=True):
        """All K one-hot vectors in the logits' dtype, along a new first axis: (K,) + batch_shape + (K,), or
        (K, 1, …, 1, K) to broadcast against the batch when not ``expand``."""
        return self._support(self._given_logits, lambda xp, dtype: xp.eye(self.num_categories, dtype=dtype), expand)

    @property
    def mode(self):
        """one_hot(argmax_k p_k), in the probs' dtype."""
        return ops.one_hot(super().mode, self.num_categories, dtype=self._given_logits.dtype)

    @property
    def mean(self):
        return self.probs

    @property
    def variance(self):
        """p(1 − p), of each category."""
        p = self.probs
        return p * (1 - p)
