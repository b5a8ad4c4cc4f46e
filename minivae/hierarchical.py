"""A VAE of two stochastic layers (Burda, Grosse & Salakhutdinov 2016, their second architecture):

Generative model   p(z2) = N(0, I),  p(z1|z2) = N(μ_p(z2), σ_p²(z2)),  p(x|z1) (Bernoulli(decoder(z1)), or another
                   ``likelihood=``, as the other models': minivae.models._likelihood_of)
Inference          q(z1|x) = N(μ_1(x), σ_1²(x)),  q(z2|z1) = N(μ_2(z1), σ_2²(z1))

each Gaussian diagonal, its mean and log-variance the two halves of an MLP's output. One draw is ancestral and
reparameterized, z1 = μ_1(x) + σ_1(x)·ε1, then z2 = μ_2(z1) + σ_2(z1)·ε2, and its log weight

    log w = log p(x|z1) + log p(z1|z2) + log p(z2) − log q(z1|x) − log q(z2|z1).

The training loss is −(the ELBO of K draws, (1/K) Σ_k log w_k) or −(the IWAE bound, log (1/K) Σ_k w_k) per example,
averaged, pathwise through both layers (``objective``, ``samples`` as GaussianVAE's); β (``loss(…, beta=)``, the KL
warm-up) weighs the latent part, log w_β = log p(x|z1) + β·(log p(z1|z2) + log p(z2) − log q(z1|x) − log q(z2|z1)).
No KL is in closed form (z2's posterior depends on the z1 drawn): the ELBO's is the sampled one.

The models' protocol (``posterior(x)``, ``prior()``, ``likelihood(z)``) takes the pair as one latent z = [z1, z2],
concatenated on the last axis (Z1 + Z2 values), so that minivae.objectives (elbo, iwae_bound, log_likelihood_is,
prior_bound) evaluate it unchanged:

    posterior(x)   TwoLayerPosterior: rsample/sample draw (z1, z2) ancestrally as above; log_prob(z) = log q(z1|x) +
                   log q(z2|z1), summed over the values (one number a draw and example); mode (μ_1(x), μ_2(μ_1(x)))
    prior()        TwoLayerPrior: sample z2 ~ N(0, I) then z1 ~ p(z1|z2); log_prob(z) = log p(z1|z2) + log p(z2)
    likelihood(z)  p(x|z1), z1 the first Z1 values of z (z2 reaches x only through z1)

``loss`` runs through the same three, at the same noise: the loss of a Generator of seed s is −mean(objectives.elbo)
(or −mean(iwae_bound)) of K samples at a Generator of seed s.

References:
    1. Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016 (§5: the architecture of two
       stochastic layers, 784-100-100-(100)-50-50-(50), tanh units).
"""
import math

from minivae import ops
from minivae.distributions import Normal
from minivae.distributions.distribution import LOG_2PI, Distribution
from minivae.engine import Tensor, no_grad
from minivae.nn import MLP, Module
from minivae.random import _shape, resolve


def _log_normal(z, loc, log_var):
    """log N(z; μ, diag(σ²)) summed over the last axis, σ² = exp(log σ²), at a z not drawn here."""
    return Normal(loc, ops.exp(0.5 * log_var)).log_prob(z).sum(axis=-1)


def _halves(out, size):
    """μ and log σ², the two halves of a network's output."""
    return ops.split(out, [size], axis=-1)


class TwoLayerPosterior(Distribution):
    """q(z1, z2|x) = q(z1|x) q(z2|z1) of a HierarchicalVAE, over z = [z1, z2] (event_shape (Z1 + Z2,), batch_shape x's
    batch axes). ``rsample`` is pathwise in both layers' parameters; the log-density of its own last draw is written in
    its noise, Σ −½(ε² + log σ² + log 2π) in each layer (exact: (z − μ)/σ is ε), which saves a second pass of the
    second encoder (``log_prob`` of any other z runs it on z1)."""

    has_rsample = True

    def __init__(self, model, x):
        self.model = model
        self.loc, self.log_var = _halves(model.encoder(_encoder_input(model, x)), model.z_dims[0])
        self.batch_shape, self.event_shape = self.loc.shape[:-1], (sum(model.z_dims),)
        self._drawn = None  # (z, log q(z|x)) of the last rsample

    def rsample(self, sample_shape=(), rng=None):
        """z1 = μ_1 + σ_1·ε1, then z2 = μ_2(z1) + σ_2(z1)·ε2: ε1 (sample_shape, *batch, Z1), then ε2 (…, Z2), from rng."""
        rng, shape = resolve(rng), _shape(sample_shape, "sample_shape") + tuple(self.batch_shape)
        z1, log_q1 = self._draw(rng, shape, self.loc, self.log_var)
        loc2, log_var2 = _halves(self.model.encoder2(z1), self.model.z_dims[1])
        z2, log_q2 = self._draw(rng, shape, loc2, log_var2)
        z = ops.concatenate([z1, z2], axis=-1)
        self._drawn = (z, log_q1 + log_q2)
        return z

    def _draw(self, rng, shape, loc, log_var):
        """(z, log N(z; μ, σ²) summed, written in the noise: models._log_q) at z = μ + σ·ε, ε ~ N(0, I) of ``shape`` +
        loc's last axis, from rng."""
        eps = Tensor(rng.normal(shape + loc.shape[-1:], loc.dtype, device=loc.device))
        return ops.reparameterize(loc, log_var, eps), _log_q(eps, log_var)

    def log_prob(self, value):
        """log q(z1|x) + log q(z2|z1) of z = [z1, z2] (…, *batch, Z1 + Z2): one number a draw and example."""
        if self._drawn is not None and value is self._drawn[0]:
            return self._drawn[1]
        z1, z2 = ops.split(value, [self.model.z_dims[0]], axis=-1)
        return _log_normal(z1, self.loc, self.log_var) + _log_normal(z2, *_halves(self.model.encoder2(z1),
                                                                                   self.model.z_dims[1]))

    @property
    def mode(self):
        """(μ_1(x), μ_2(μ_1(x))): each layer's mode given the one before (z1's is the mode of q(z1|x), what
        models.code and reconstruct give the decoder; the pair is the joint's mode only where σ_2 does not vary)."""
        return ops.concatenate([self.loc, _halves(self.model.encoder2(self.loc), self.model.z_dims[1])[0]], axis=-1)

    def __repr__(self):
        return f"TwoLayerPosterior(batch_shape={self.batch_shape}, event_shape={self.event_shape})"


class TwoLayerPrior(Distribution):
    """p(z1, z2) = p(z1|z2) p(z2) of a HierarchicalVAE, over z = [z1, z2] (event_shape (Z1 + Z2,)), in the parameters'
    dtype and on their device: ``rsample`` draws z2 ~ N(0, I) and then z1 = μ_p(z2) + σ_p(z2)·ε1 (pathwise in the
    parameters of p(z1|z2))."""

    has_rsample = True

    def __init__(self, model):
        self.model = model
        self.event_shape = (sum(model.z_dims),)

    def rsample(self, sample_shape=(), rng=None):
        """z2 (sample_shape, Z2) ~ N(0, I), then ε1 (sample_shape, Z1), from rng."""
        rng, shape = resolve(rng), _shape(sample_shape, "sample_shape")
        first = self.model.decoder2.parameters()[0]
        z2 = Tensor(rng.normal(shape + (self.model.z_dims[1],), first.dtype, device=first.device))
        loc, log_var = _halves(self.model.decoder2(z2), self.model.z_dims[0])
        eps = Tensor(rng.normal(shape + (self.model.z_dims[0],), first.dtype, device=first.device))
        return ops.concatenate([ops.reparameterize(loc, log_var, eps), z2], axis=-1)

    def log_prob(self, value):
        """log p(z1|z2) + log N(z2; 0, I) of z = [z1, z2]: one number a draw."""
        z1, z2 = ops.split(value, [self.model.z_dims[0]], axis=-1)
        log_p2 = (-0.5 * (z2 * z2 + LOG_2PI)).sum(axis=-1)
        return _log_normal(z1, *_halves(self.model.decoder2(z2), self.model.z_dims[0])) + log_p2

    def __repr__(self):
        return f"TwoLayerPrior(event_shape={self.event_shape})"


class HierarchicalVAE(Module):
    """The VAE of two stochastic layers (see the module docstring), its four conditionals MLPs of ``activation``:

        encoder   x → [μ_1, log σ_1²] of q(z1|x)       MLP((x_dim, *hidden, 2·Z1))
        encoder2  z1 → [μ_2, log σ_2²] of q(z2|z1)     MLP((Z1, *hidden2, 2·Z2))
        decoder2  z2 → [μ_p, log σ_p²] of p(z1|z2)     MLP((Z2, *reversed(hidden2), 2·Z1))
        decoder   z1 → p(x|z1) (logits for Bernoulli)  MLP((Z1, *reversed(hidden), x_dim))

    (z_dims = (Z1, Z2)). The defaults are Burda et al.'s: 784-100-100-(100)-50-50-(50), tanh. ``objective="elbo"``
    trains the ELBO of ``samples`` K draws an example (their mean), ``"iwae"`` the IWAE bound of K draws; K = 1 makes
    the two the same number. ``likelihood=`` as GaussianVAE's (the count likelihoods' encoder reads log(1 + x); their
    options library= and gate= are not taken). ``kind`` "hierarchical" is registered in ``minivae.models.MODELS``, so
    that ``training.load_checkpoint`` rebuilds one from its config.
    """

    kind = "hierarchical"

    def __init__(self, x_dim=784, hidden=(100, 100), z_dims=(100, 50), hidden2=(50, 50), likelihood="bernoulli",
                 activation="tanh", objective="elbo", samples=1, *, rng, device="cpu"):
        likelihood = _likelihood_kind(likelihood)
        x_dim, hidden, hidden2 = _size("x_dim", x_dim), _hidden(hidden), _hidden(hidden2, "hidden2")
        z_dims = _hidden(z_dims, "z_dims")
        if len(z_dims) != 2:
            raise ValueError(f"z_dims are the sizes (Z1, Z2) of the two stochastic layers, z1 next to x: two sizes, "
                             f"got {len(z_dims)}")
        self.objective, self.samples, recorded = _objective(objective, samples)
        self.config = dict(x_dim=x_dim, hidden=hidden, z_dims=z_dims, hidden2=hidden2, likelihood=likelihood,
                           activation=activation, **recorded)
        (z1, z2), self.z_dims, self.x_dim = z_dims, z_dims, x_dim
        self.encoder = MLP((x_dim, *hidden, 2 * z1), activation, rng=rng)
        self.encoder2 = MLP((z1, *hidden2, 2 * z2), activation, rng=rng)
        self.decoder2 = MLP((z2, *reversed(hidden2), 2 * z1), activation, rng=rng)
        self.decoder = MLP((z1, *reversed(hidden), x_dim), activation, rng=rng)
        for network, size in ((self.encoder, z1), (self.encoder2, z2), (self.decoder2, z1)):
            # each log σ² head's last weights start at 0 (its biases are): every σ at 1, whatever the activation. Drawn,
            # p(z1|z2)'s log σ_p² reads z2 through three networks, and under relu's He init it started near −20, the
            # log weights near −10⁶ (measured: 784-512-256 relu, z 100, 50), where the one-layer model's KL has no such term
            network.parameters()[-2].data[:, size:] = 0
        _likelihood_parameters(self, likelihood, x_dim)
        self.to(device)

    def posterior(self, x):
        """q(z1, z2|x) over z = [z1, z2] (TwoLayerPosterior)."""
        return TwoLayerPosterior(self, x)

    def prior(self):
        """p(z1, z2) = p(z1|z2) N(z2; 0, I) over z = [z1, z2] (TwoLayerPrior)."""
        return TwoLayerPrior(self)

    def likelihood(self, z):
        """p(x|z1) (``_likelihood_of`` the decoder's output), z1 the first Z1 values of z = [z1, z2] (…, Z1 + Z2)."""
        if z.shape[-1] != sum(self.z_dims):
            raise ValueError(f"z must be [z1, z2] of {self.z_dims[0]} + {self.z_dims[1]} = {sum(self.z_dims)} values on "
                             f"its last axis, got shape {z.shape}")
        return _likelihood_of(self, self.decoder(ops.split(z, [self.z_dims[0]], axis=-1)[0]))

    def log_weights(self, x, rng, k=1, beta=1.0):
        """log w_k = log p(x|z1_k) + β·(log p(z1_k|z2_k) + log p(z2_k) − log q(z1_k|x) − log q(z2_k|z1_k)) of k ancestral
        draws an example from rng (posterior(x).rsample((k,))): (k, *x's batch axes), pathwise."""
        q = self.posterior(x)
        z = q.rsample((k,), rng=rng)
        return self.likelihood(z).log_prob(x).sum(axis=-1) + beta * (self.prior().log_prob(z) - q.log_prob(z))

    def loss(self, x, rng, step=0, beta=1.0):
        """−(1/B) Σ_b L_b: L the ELBO of K = ``samples`` draws, (1/K) Σ_k log w_k, or (objective="iwae") the IWAE bound
        log Σ_k e^{log w_k} − log K, of ``log_weights`` at β. ``step`` is taken, and unused, as the other models'."""
        log_w = self.log_weights(x, rng, self.samples, beta)
        if self.objective == "iwae":
            return -(ops.logsumexp(log_w, axis=0) - math.log(self.samples)).mean()
        return -log_w.mean(axis=0).mean()

    def sample(self, n, rng):
        """Mean images of p(x|z1) (n, x_dim) of n ancestral draws z2 ~ N(0, I), z1 ~ p(z1|z2) from rng."""
        n = _size("sample: n", n)
        with no_grad():
            return self.likelihood(self.prior().sample((n,), rng=rng)).mean


# models.py imports this module at its end (HierarchicalVAE is a name of it too): its helpers are read here, after the
# class
from minivae.models import (MODELS, _encoder_input, _hidden, _likelihood_kind, _likelihood_of,  # noqa: E402
                            _likelihood_parameters, _log_q, _objective, _size)

MODELS.setdefault(HierarchicalVAE.kind, HierarchicalVAE)  # models.build (and so training.load_checkpoint) rebuild it
