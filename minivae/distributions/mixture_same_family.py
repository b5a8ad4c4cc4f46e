"""MixtureSameFamily: a finite mixture of distributions of one family, as torch.distributions.MixtureSameFamily."""
import numpy

from minivae import ops
from minivae._backend import get_array_module
from minivae.distributions.categorical import Categorical, OneHotCategorical
from minivae.distributions.distribution import Distribution, as_value
from minivae.engine import array_function, no_grad
from minivae.random import _shape, resolve


class MixtureSameFamily(Distribution):
    """p(x) = Σ_k π_k p_k(x): ``mixture_distribution`` a Categorical of the weights π over K components,
    ``component_distribution`` the K components along its last batch axis (batch_shape B + (K,)), of any family:
    ``Normal`` for a univariate mixture, ``Independent(Normal(loc (…, K, D), scale), 1)`` for a mixture of diagonal
    Gaussians in D dimensions (the learned prior of ``GaussianVAE(prior="mog")``), ``Independent(Bernoulli(…), 1)``, ….

    batch_shape, event_shape   B (component's batch_shape less its last axis), component's event_shape E
    log_prob   log Σ_k exp(log π_k + log p_k(x)), π_k = softmax(logits)_k, through log-sum-exp (the largest term
               taken out first: finite where every log p_k(x) is far below 0, e.g. x far from every component)
    sample     k ~ Categorical(π) (Gumbel-max), then every component's draw and the k-th one's taken (as torch: the
               mixture's draw first, then the components'); no rsample (as torch: the category draw has no pathwise
               gradient); has_rsample False
    mean       Σ_k π_k E_k[x]
    variance   Σ_k π_k Var_k[x] + Σ_k π_k (E_k[x] − mean)² (the law of total variance)
    cdf        Σ_k π_k F_k(x), for univariate components that have a cdf (event_shape ())

    The mixture's batch_shape must broadcast to B (its axes of size 1 repeated): torch also takes some that do not
    (a longer one, or one of K > 1 against a component axis of 1) and then gives log-densities of another shape than
    its batch_shape; here they are refused. A mixture of size-1 axes draws its category apart for each of the B
    mixtures it is repeated to. A mixture_distribution that is not a Categorical (a OneHotCategorical among them,
    as torch's is not a Categorical) or a component_distribution that is not a Distribution is a TypeError (torch:
    ValueError).
    """

    has_rsample = False

    def __init__(self, mixture_distribution, component_distribution):
        mixture, component = mixture_distribution, component_distribution
        if not isinstance(mixture, Categorical) or isinstance(mixture, OneHotCategorical):
            raise TypeError(f"MixtureSameFamily: mixture_distribution must be a Categorical (the weights of the "
                            f"components), not {type(mixture).__name__}")
        if not isinstance(component, Distribution):
            raise TypeError(f"MixtureSameFamily: component_distribution must be a Distribution, not "
                            f"{type(component).__name__}")
        mixture_batch, component_batch = tuple(mixture.batch_shape), tuple(component.batch_shape)
        if not component_batch:
            raise ValueError("MixtureSameFamily: component_distribution has batch_shape (): the components need to lie "
                             "along its last batch axis (e.g. Normal(loc, scale) of loc.shape (K,))")
        batch, k = component_batch[:-1], component_batch[-1]
        if mixture.num_categories != k:
            raise ValueError(f"MixtureSameFamily: mixture_distribution has {mixture.num_categories} categories, but "
                             f"component_distribution has {k} components (the last axis of its batch_shape "
                             f"{component_batch})")
        if len(mixture_batch) > len(batch) or any(
                a not in (1, b) for a, b in zip(mixture_batch, batch[len(batch) - len(mixture_batch):])):
            raise ValueError(f"MixtureSameFamily: mixture_distribution's batch_shape {mixture_batch} does not broadcast "
                             f"to component_distribution's batch_shape less its component axis, {batch}")
        self._mixture, self._component = mixture, component
        self.batch_shape, self.event_shape = batch, tuple(component.event_shape)

    @property
    def mixture_distribution(self):
        return self._mixture

    @property
    def component_distribution(self):
        return self._component

    @property
    def support(self):
        """The components' support."""
        return self._component.support

    def _pad(self, x):
        """x with an axis for the components before its event axes: (…, E) → (…, 1, E)."""
        return ops.unsqueeze(x, -1 - len(self.event_shape))

    def _weights(self):
        """π of shape mixture batch + (K,) + (1,)·len(E): broadcasts against the components' means and variances."""
        p = self._mixture.probs
        return ops.reshape(p, p.shape + (1,) * len(self.event_shape)) if self.event_shape else p

    def _over_components(self, x):
        """Σ_k over the components' axis of an array of shape … + (K,) + E."""
        return x.sum(axis=-1 - len(self.event_shape))

    def log_prob(self, value):
        value, e = self._value_of(value), len(self.event_shape)
        if value.ndim < e or tuple(value.shape[value.ndim - e:]) != self.event_shape:
            raise ValueError(f"MixtureSameFamily.log_prob: a value of shape {tuple(value.shape)} does not end in the "
                             f"event_shape {self.event_shape}")
        log_p = self._component.log_prob(self._pad(value))  # … + B + (K,)
        return ops.logsumexp(log_p + self._mixture.logits, axis=-1)  # logits: log π, normalized (log_softmax)

    def cdf(self, value):
        if self.event_shape:
            raise NotImplementedError(f"MixtureSameFamily.cdf is for univariate components (event_shape ()), not "
                                      f"event_shape {self.event_shape}")
        return (self._component.cdf(self._pad(self._value_of(value))) * self._mixture.probs).sum(axis=-1)

    def _value_of(self, value):
        """A value as a tensor (``as_value``), on the device of the mixture's logits; a Python number in their dtype."""
        logits = self._mixture._given_logits
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = numpy.asarray(value, logits.dtype)
        return as_value(value, logits)

    @property
    def mean(self):
        return self._over_components(self._weights() * self._component.mean)

    @property
    def variance(self):
        weights, means = self._weights(), self._component.mean
        spread = means - self._pad(self.mean)
        return self._over_components(weights * self._component.variance) + self._over_components(
            weights * spread * spread)

    def sample(self, sample_shape=(), rng=None):
        """k ~ Categorical(π) of shape sample_shape + B, then a draw of every component (sample_shape + B + (K,) + E)
        and the k-th one's taken. NaN where the mixture's logits hold NaN (its category is −1)."""
        sample_shape, rng = _shape(sample_shape, "sample_shape"), resolve(rng)
        mixture = self._mixture
        if tuple(mixture.batch_shape) != self.batch_shape:
            mixture = mixture.expand(self.batch_shape)  # each of the B mixtures its own category
        e = len(self.event_shape)
        with no_grad():
            k = mixture.sample(sample_shape, rng=rng)
            x = self._component.sample(sample_shape, rng=rng)

            def gather(x, k):
                xp = get_array_module(x)
                idx = xp.where(k < 0, 0, k).reshape(k.shape + (1,) * (e + 1))
                idx = xp.broadcast_to(idx, k.shape + (1,) + x.shape[x.ndim - e:])
                out = xp.take_along_axis(x, idx, axis=k.ndim).reshape(k.shape + x.shape[x.ndim - e:])
                if out.dtype.kind == "f":
                    out = xp.where((k < 0).reshape(k.shape + (1,) * e), xp.nan, out).astype(out.dtype, copy=False)
                return out
            return array_function(gather, x, k)

    def rsample(self, sample_shape=(), rng=None):
        raise NotImplementedError("MixtureSameFamily has no reparameterized sample (as torch's): the component's "
                                  "category is a discrete draw")

    def expand(self, batch_shape):
        """The mixture of the components expanded to batch_shape + (K,) and the weights to batch_shape, as torch's."""
        batch_shape = _shape(batch_shape, "batch_shape")
        k = self._mixture.num_categories
        return MixtureSameFamily(self._mixture.expand(batch_shape), self._component.expand(batch_shape + (k,)))

    def __repr__(self):
        return f"MixtureSameFamily({self._mixture!r}, {self._component!r})"
