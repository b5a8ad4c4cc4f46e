"""The base class: ``sample`` / ``rsample`` / ``log_prob`` / ``entropy`` as in torch.distributions."""
import math

import numpy

from minivae import ops
from minivae.engine import Tensor, no_grad, tensor


def as_param(x):
    """Tensors pass through (gradients flow to them); numbers and arrays become constants."""
    return x if isinstance(x, Tensor) else tensor(x)


def logits_from(probs, logits, who, binary=False):
    """PyTorch's rule: exactly one of ``probs`` (the first positional argument) and ``logits``.

    probs p are clamped to [ε, 1 − ε] (ε the dtype's machine epsilon, as torch's ``probs_to_logits``)
    and become log p, or log p − log(1 − p) when ``binary`` (Bernoulli's logit)."""
    if (probs is None) == (logits is None):
        raise ValueError(f"{who} takes exactly one of probs= or logits=")
    if probs is None:
        return as_param(logits)
    p = as_param(probs)
    if p.dtype.kind != "f":
        raise TypeError(f"{who}: probs must be floating, not {p.dtype}")
    eps = float(numpy.finfo(p.dtype).eps)
    p = ops.clip(p, eps, 1 - eps)
    return ops.log(p) - ops.log1p(-p) if binary else ops.log(p)


class Distribution:
    """``batch_shape`` indexes independent distributions, ``event_shape`` is one draw's shape."""

    has_rsample = False
    batch_shape = ()
    event_shape = ()

    def sample(self, sample_shape=(), rng=None):
        """A draw with no gradient."""
        with no_grad():
            return self.rsample(sample_shape, rng=rng).detach()

    def rsample(self, sample_shape=(), rng=None):
        raise NotImplementedError(f"{type(self).__name__} has no reparameterized sample")

    def log_prob(self, value):
        raise NotImplementedError

    def entropy(self):
        raise NotImplementedError

    def _extended(self, sample_shape, event_shape=None):
        """sample_shape + batch_shape + event_shape (or the ``event_shape`` given)."""
        sample_shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
        event = self.event_shape if event_shape is None else event_shape
        return sample_shape + tuple(self.batch_shape) + tuple(event)


class CategoricalLogits:
    """For distributions over K categories: ``logits`` as given in ``_given_logits``; ``logits`` is
    their log_softmax over the last axis (log-probabilities, as in torch.distributions), made when
    first read. A sampler that a shift of each row does not change (softmax((l + g)/τ)) reads the
    given logits, and a step that only samples makes no log_softmax (its forward and its VJP: on the
    GPU, two kernel launches)."""

    def _set_logits(self, logits):
        if logits.ndim == 0:
            raise ValueError(f"{type(self).__name__}: logits need a last axis of categories")
        self._given_logits, self._normalized = logits, None
        self.num_categories = logits.shape[-1]

    @property
    def logits(self):
        if self._normalized is None:
            self._normalized = ops.log_softmax(self._given_logits, axis=-1)
        return self._normalized


LOG_2PI = math.log(2 * math.pi)
