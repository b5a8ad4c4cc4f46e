"""The vector-quantized VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation Learning").

The encoder gives L latent vectors z_e,l ∈ R^D an input (its output read as (…, L, D)); each is snapped to the nearest
of K code vectors e_1 … e_K (the codebook, a (K, D) parameter), z_q,l = e_k(l), k(l) = argmin_k ‖z_e,l − e_k‖² (ties to
the lowest k, as NumPy's argmin); the decoder reads the L code vectors. The snap has no gradient, so the decoder's is
passed to the encoder unchanged, straight through: the decoder reads z = z_e + sg(z_q − z_e), whose value is z_q and
whose gradient is z_e's. The codebook learns from its own term, and a commitment term keeps the encoder near it:

    loss = −log p(x|z_q) + Σ_l ‖sg(z_e,l) − z_q,l‖² + β Σ_l ‖z_e,l − sg(z_q,l)‖²,   β = 0.25 (the paper's),

per example, averaged over the batch (sg: stop-gradient, ``Tensor.detach``).

As a VAE: q(z|x) puts all its mass on the codes k(l), and the prior is uniform over the K^L code sequences, so
KL(q ‖ p) = L·log K whatever x is, and the ELBO is log p(x|z_q) − L log K (``elbo``): a bound on log p(x) of this
model with its uniform prior. Samples from that prior (``sample``) look like noise: the paper fits an autoregressive
prior over codes afterwards (PixelCNN), which is not here.
"""
import math

import numpy

from minivae import ops
from minivae._backend import get_array_module, module_for_device, to_numpy
from minivae.engine import Tensor, as_tensor, no_grad
from minivae.nn import Module


def nearest_codes(z_e, codebook):
    """k(l) = argmin_k ‖z_e,l − e_k‖² for z_e (…, D) and codebook (K, D) (arrays or tensors): int64 indices (…),
    ties to the lowest k. The squared distances are ‖z‖² − 2 z·e_k + ‖e_k‖², one product for all pairs (so two codes
    within rounding of each other's distance may be chosen either way)."""
    z = z_e.data if isinstance(z_e, Tensor) else z_e
    e = codebook.data if isinstance(codebook, Tensor) else codebook
    xp = get_array_module(z)
    flat = z.reshape(-1, z.shape[-1])
    distances = (flat * flat).sum(axis=1, keepdims=True) - 2 * (flat @ e.T) + (e * e).sum(axis=1)
    return xp.argmin(distances, axis=1).astype(numpy.int64).reshape(z.shape[:-1])


def vector_quantize(z_e, codebook, beta=0.25):
    """(z, codes, vq_loss) for z_e (…, L, D) and codebook (K, D): z = z_e + sg(z_q − z_e), the code vectors z_q with the
    encoder's gradient (straight through); codes (…, L) their indices; vq_loss (…) per example the codebook and
    commitment terms Σ_l ‖sg(z_e,l) − z_q,l‖² + β Σ_l ‖z_e,l − sg(z_q,l)‖².

    Gradients: z̄_e = z̄ + 2β(z_e − z_q) ∘ v̄ (v̄ the loss's upstream gradient, broadcast), ē_k = Σ_{l: k(l) = k} 2(e_k − z_e,l) v̄."""
    codes = nearest_codes(z_e, codebook)
    z_q = ops.take(codebook, Tensor(codes), axis=0)  # (…, L, D), a gather whose VJP adds into the chosen rows
    z = z_e + (z_q - z_e).detach()
    codebook_term = ((z_e.detach() - z_q) ** 2).sum(axis=(-2, -1))
    commitment = ((z_e - z_q.detach()) ** 2).sum(axis=(-2, -1))
    return z, codes, codebook_term + beta * commitment


class VQVAE(Module):
    """The vector-quantized VAE (module docstring): ``n_latent`` L vectors of ``code_dim`` D an input, a codebook of
    ``n_codes`` K vectors (``codebook`` (K, D) ~ U(−1/K, 1/K), as the reference implementations initialize it), the
    commitment weight ``beta``; the encoder and decoder are the other models' (``hidden``, ``activation``, ``arch``,
    ``channels``) and so are the likelihoods (``likelihood``). The decoder reads the L·D code values flattened."""

    kind = "vq"

    def __init__(self, x_dim=784, hidden=(512, 256), n_latent=16, code_dim=8, n_codes=64, beta=0.25,
                 likelihood="bernoulli", activation="relu", arch="mlp", channels=None, *, rng, device="cpu"):
        likelihood = _likelihood_kind(likelihood)
        x_dim, hidden = _size("x_dim", x_dim), _hidden(hidden)
        n_latent, code_dim, n_codes = _size("n_latent", n_latent), _size("code_dim", code_dim), _size("n_codes", n_codes)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0 or not math.isfinite(beta):
            raise ValueError(f"VQVAE: beta, the commitment weight, must be a finite number ≥ 0, not {beta!r}")
        arch, channels, layout = _architecture(arch, channels, x_dim, activation)
        self.config = dict(x_dim=x_dim, hidden=hidden, n_latent=n_latent, code_dim=code_dim, n_codes=n_codes,
                           beta=float(beta), likelihood=likelihood, activation=activation, **layout)
        self.n_latent, self.code_dim, self.n_codes, self.beta = n_latent, code_dim, n_codes, float(beta)
        self.encoder, self.decoder = _networks(x_dim, hidden, n_latent * code_dim, n_latent * code_dim, activation,
                                               arch, channels, rng)
        _likelihood_parameters(self, likelihood, x_dim)
        self.codebook = Tensor(((2 * rng.uniform((n_codes, code_dim), numpy.float64) - 1) / n_codes)
                               .astype(numpy.float32), requires_grad=True)
        self.to(device)

    def _encode(self, x):
        """z_e (…, L, D)."""
        out = self.encoder(x)
        return ops.reshape(out, out.shape[:-1] + (self.n_latent, self.code_dim))

    def _decode(self, z):
        """p(x|z) of code vectors z (…, L, D)."""
        return _likelihood_of(self, self.decoder(ops.reshape(z, z.shape[:-2] + (self.n_latent * self.code_dim,))))

    def encode(self, x):
        """The codes k(l) of x: int64 (…, L), on x's device (no gradient)."""
        with no_grad():
            return nearest_codes(self._encode(as_tensor(x)), self.codebook)

    def decode(self, codes):
        """p(x|z_q) of codes (…, L): the likelihood of the code vectors e_k(l)."""
        codes = as_tensor(codes)
        return self._decode(ops.take(self.codebook, codes, axis=0))

    def loss(self, x, rng=None, step=0, beta=1.0):
        """−log p(x|z_q) + the codebook and commitment terms, per example, averaged (module docstring). The draw
        ``rng`` and the KL weight β of the other models' signature change nothing here: the encoder is deterministic
        and the KL is the constant L log K (``elbo``)."""
        z, _, vq = vector_quantize(self._encode(x), self.codebook, self.beta)
        log_lik = self._decode(z).log_prob(x).sum(axis=-1)
        return (vq - log_lik).mean()

    def elbo(self, x):
        """log p(x|z_q) − L log K per example, in nats: the ELBO of q one-hot on the codes and the uniform prior over
        the K^L code sequences (no gradient)."""
        with no_grad():
            x = as_tensor(x)
            return self.decode(self.encode(x)).log_prob(x).sum(axis=-1) - self.n_latent * math.log(self.n_codes)

    def reconstruct(self, x):
        """The mean of p(x|z_q(x)) (no gradient)."""
        with no_grad():
            return self.decode(self.encode(x)).mean

    def prior_codes(self, n, rng):
        """n code sequences (n, L) from the uniform prior: each k(l) = ⌊K·u⌋, u ~ U(0, 1) from rng, on the model's
        device."""
        u = rng.uniform((n, self.n_latent), numpy.float64, device=self.codebook.device)
        return module_for_device(self.codebook.device).minimum((u * self.n_codes).astype(numpy.int64), self.n_codes - 1)

    def sample(self, n, rng):
        """Mean images p(x|z_q) of n code sequences from the uniform prior (``prior_codes``)."""
        with no_grad():
            return self.decode(self.prior_codes(n, rng)).mean

    def perplexity(self, x):
        """exp(H) of the codes' frequencies over x's latents: K when every code is used equally, 1 when one is (the
        paper's measure of how much of the codebook is used)."""
        codes = to_numpy(self.encode(x)).reshape(-1)  # (a host summary, asked for: one copy from a device)
        p = numpy.bincount(codes, minlength=self.n_codes) / max(codes.size, 1)
        p = p[p > 0]
        return float(numpy.exp(-(p * numpy.log(p)).sum()))


# models.py imports this module at its end (VQVAE is a name of it too): its helpers are read here, after the class
from minivae.models import (MODELS, _architecture, _hidden, _likelihood_kind, _likelihood_of,  # noqa: E402
                            _likelihood_parameters, _networks, _size)

MODELS.setdefault(VQVAE.kind, VQVAE)  # models.build (and so training.load_checkpoint) rebuild it
