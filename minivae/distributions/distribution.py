"""The base class: ``sample`` / ``rsample`` / ``log_prob`` / ``entropy`` as in torch.distributions."""
import math

from minivae.engine import Tensor, no_grad, tensor


def as_param(x):
    """Tensors pass through (gradients flow to them); numbers and arrays become constants."""
    return x if isinstance(x, Tensor) else tensor(x)


def require_rng(rng, who):
    if rng is None:
        raise ValueError(f"{who} needs rng= (a minivae.random.Generator): randomness is explicit")
    return rng


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


LOG_2PI = math.log(2 * math.pi)
