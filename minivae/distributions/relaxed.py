"""The Concrete / Gumbel-Softmax relaxation of a categorical, in log space and on the simplex."""
import math

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import CategoricalLogits, Distribution, as_value, logits_from
from minivae.ops.softmax import check_temperature
from minivae.random import resolve


class ExpRelaxedCategorical(CategoricalLogits, Distribution):
    r"""The log of a Concrete sample: x = log_softmax((logits + g)/τ), g ~ Gumbel(0, 1).

    log_prob   log (K−1)! + (K−1) log τ + Σ_k (l_k − τx_k) − K · logsumexp_k (l_k − τx_k)
    Working on x = log y keeps every quantity finite at small τ, where y's entries underflow to 0.
    Arguments as PyTorch's: ``temperature``, then exactly one of ``probs`` and ``logits``.

    References:
        1. Maddison, Mnih, Teh. The Concrete Distribution. ICLR 2017 (Appendix C, ExpConcrete).
    """

    has_rsample = True
    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.real_vector

    def __init__(self, temperature, probs=None, logits=None):
        self.temperature = check_temperature(temperature)
        logits, p = logits_from(probs, logits, type(self).__name__)
        self._set_logits(logits, p)
        self.batch_shape, self.event_shape = logits.shape[:-1], (self.num_categories,)

    def _gumbels(self, sample_shape, rng, gumbels):
        if gumbels is None:
            logits = self._given_logits
            gumbels = resolve(rng).gumbel(self._extended(sample_shape), logits.dtype, device=logits.device)
        return gumbels

    def rsample(self, sample_shape=(), rng=None, gumbels=None):
        g = self._gumbels(sample_shape, rng, gumbels)  # log_softmax((l + g)/τ): any shift of l cancels
        return ops.log_softmax(self._given_logits + g, axis=-1, temperature=self.temperature)

    def log_prob(self, value):
        k, tau = self.num_categories, self.temperature
        score = self.logits - tau * value
        return (score.sum(axis=-1) - k * ops.logsumexp(score, axis=-1)
                + math.lgamma(k) + (k - 1) * math.log(tau))


class RelaxedOneHotCategorical(ExpRelaxedCategorical):
    r"""Gumbel-Softmax / Concrete on the simplex: y = softmax((logits + g)/τ).

    rsample    y (differentiable in logits); ``hard=True`` forwards one_hot(argmax y) — ties to the
               lowest index — and backpropagates y's gradient (straight-through Gumbel-Softmax)
    log_prob   the Concrete density  log (K−1)! + (K−1) log τ + Σ_k (l_k − (τ+1) log y_k)
               − K · logsumexp_k (l_k − τ log y_k), evaluated through the log-space form;
               log y is floored at the smallest normal number of the value's dtype (an array's as a
               Tensor's), so the result stays finite where y has underflowed to 0 (small τ).

    References:
        1. Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017.
        2. Maddison, Mnih, Teh. The Concrete Distribution. ICLR 2017.
    """

    support = constraints.simplex

    def rsample(self, sample_shape=(), rng=None, hard=False, gumbels=None):
        # softmax((l + g)/τ): any shift of each row of l cancels, so the given logits serve
        if gumbels is None:  # the fused Gumbel-Softmax op draws the same noise rng.gumbel would
            logits = ops.broadcast_to(self._given_logits, self._extended(sample_shape))
            return ops.gumbel_softmax(logits, resolve(rng),
                                      temperature=self.temperature, hard=hard)
        y = ops.softmax(self._given_logits + gumbels, axis=-1, temperature=self.temperature)
        return ops.straight_through(y, axis=-1) if hard else y

    def log_prob(self, value):
        value = as_value(value, self._given_logits)
        if value.dtype.kind != "f":  # a one-hot of integers: no floor of its own dtype to take
            value = value.astype(self.logits.dtype)
        # the floor in the value's own dtype: one of another dtype (1e-300) would round to 0 in float32,
        # and an array would give another answer than the same values as a Tensor
        tiny = float(numpy.finfo(value.dtype).tiny)
        log_y = ops.log(ops.maximum(value, tiny))
        return super().log_prob(log_y) - log_y.sum(axis=-1)
