"""The vector-quantized VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation Learning").

The encoder gives L latent vectors z_e,l ∈ R^D an input (its output read as (…, L, D)); each is snapped to the nearest
of K code vectors e_1 … e_K (the codebook, a (K, D) parameter), z_q,l = e_k(l), k(l) = argmin_k ‖z_e,l − e_k‖² (ties to
the lowest k, as NumPy's argmin); the decoder reads the L code vectors. The snap has no gradient, so the decoder's is
passed to the encoder unchanged, straight through: the decoder reads z = z_e + sg(z_q − z_e), whose value is z_q and
whose gradient is z_e's. The codebook learns from its own term, and a commitment term keeps the encoder near it:

    loss = −log p(x|z_q) + Σ_l ‖sg(z_e,l) − z_q,l‖² + β Σ_l ‖z_e,l − sg(z_q,l)‖²,   β = 0.25 (the paper's),

per example, averaged over the batch (sg: stop-gradient, ``Tensor.detach``).

The codebook by exponential moving averages instead (``ema_decay`` γ; the paper's appendix A.1, Razavi et al. 2019):
each training step, with n_i the batch's latents snapped to code i and Σ_i z_e their sum,

    N_i ← γ N_i + (1 − γ) n_i,    m_i ← γ m_i + (1 − γ) Σ_{l: k(l) = i} z_e,l,    e_i = m_i / Ñ_i,
    Ñ_i = (N_i + ε) / (Σ_j N_j + K ε) · Σ_j N_j   (Laplace smoothing, ε = ``ema_epsilon``, Sonnet's VectorQuantizerEMA),

N and m starting at 0 (Sonnet's; m_i/N_i is then the decayed mean of the vectors code i has taken, with no bias
towards the start to correct: the factor 1 − γ^t of both cancels, up to ε; a code not yet chosen sits at 0). The codes and z_q
of the step are the codebook's before its update; the codebook term leaves the loss (the codebook follows the means
instead of a gradient), the commitment term β‖z_e − sg(z_q)‖² stays. The codebook, N and m are buffers
(``codebook``, ``ema_cluster_size``, ``ema_w``, the names of the PyTorch ports of Sonnet's): in ``state_dict``, not in
``parameters()``, updated only by ``loss`` in training mode (``train()``/``eval()``, as batch norm's running statistics).

As a VAE: q(z|x) puts all its mass on the code sequence k = k(x), so for any prior p over the K^L sequences

    KL(q ‖ p) = Σ_s q(s) log (q(s)/p(s)) = 1 · log (1/p(k)) = −log p(k),   ELBO = log p(x|z_q) + log p(k)   (``elbo``).

Uniform (the default), p(k) = K^−L: KL = L log K whatever x is, and samples from it (``sample``) look like noise. The
paper (§3.2, §4) fits an autoregressive prior p(k) = Π_l p(k_l | k_<l) to the codes of the training images once the
VQ-VAE is trained, and samples from it: here ``prior_hidden=H`` gives the model one (``CodePrior``, a MADE over the
one-hot codes; exact log p(k), ancestral sampling), which ``fit_code_prior`` fits to the codes of images with the
VQ-VAE frozen, and which ``loss`` also fits alongside the VQ-VAE by adding −log p(k) of the batch's codes (integers:
no gradient reaches the encoder or codebook through them, so the VQ-VAE's own training is unchanged, unless the
gradient is clipped by its global norm, ``--clip``, which the prior's gradient enters). ``elbo``, ``sample`` and
``prior`` then use it.
"""
import math

import numpy

from minivae import ops
from minivae._backend import get_array_module, module_for_device, to_numpy
from minivae.distributions import Categorical
from minivae.engine import Tensor, as_tensor, no_grad
from minivae.flows import made_masks
from minivae.nn import Buffer, Linear, Module
from minivae.plan import array_function


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


def vector_quantize(z_e, codebook, beta=0.25, *, codebook_loss=True):
    """(z, codes, vq_loss) for z_e (…, L, D) and codebook (K, D): z = z_e + sg(z_q − z_e), the code vectors z_q with the
    encoder's gradient (straight through); codes (…, L) their indices; vq_loss (…) per example the codebook and
    commitment terms Σ_l ‖sg(z_e,l) − z_q,l‖² + β Σ_l ‖z_e,l − sg(z_q,l)‖², or (``codebook_loss`` False: a codebook
    of moving averages, ``ema_update``) the commitment term alone.

    Gradients: z̄_e = z̄ + 2β(z_e − z_q) ∘ v̄ (v̄ the loss's upstream gradient, broadcast), ē_k = Σ_{l: k(l) = k} 2(e_k − z_e,l) v̄."""
    index = array_function(nearest_codes, z_e, codebook)  # (outside the graph, so that a step plan replays it)
    z_q = ops.take(codebook, index, axis=0)  # (…, L, D), a gather whose VJP adds into the chosen rows
    z = z_e + (z_q - z_e).detach()
    commitment = ((z_e - z_q.detach()) ** 2).sum(axis=(-2, -1))
    codes = index.data
    if not codebook_loss:
        return z, codes, beta * commitment
    codebook_term = ((z_e.detach() - z_q) ** 2).sum(axis=(-2, -1))
    return z, codes, codebook_term + beta * commitment


class CodePrior(Module):
    """An autoregressive prior over L codes of K values, p(k_1 … k_L) = Π_l p(k_l | k_<l): a MADE (Germain et al.
    2015) over the one-hot codes, x = one_hot(k) (L·K inputs), one hidden layer of ``hidden`` ELU units,
    h = elu((W₁ ⊙ M₁)ᵀx + b₁), and logits (L, K) = (W₂ ⊙ M₂)ᵀh + b₂. The masks are ``flows.made_masks`` of L degrees,
    each repeated over the K inputs (outputs) of its position: position l's logits read only the codes of positions
    < l, so p(k_l | k_<l) = softmax(logits_l)[k_l] and log p(k) = Σ_l log softmax(logits_l)[k_l] is exact (no
    normalizer to estimate: each factor sums to 1 over k_l). Position 1 reads no input (its logits are b₂'s).

    W₂ and b₂ start at 0: the untrained prior is the uniform one, log p(k) = −L log K exactly."""

    def __init__(self, n_latent, n_codes, hidden, *, rng):
        self.n_latent, self.n_codes, self.hidden = n_latent, n_codes, hidden
        into, out = made_masks(n_latent, hidden)  # (L, H), (H, L): degrees by position
        self.mask_in = Buffer(Tensor(numpy.repeat(into, n_codes, axis=0)), persistent=False)  # (L·K, H)
        self.mask_out = Buffer(Tensor(numpy.repeat(out, n_codes, axis=1)), persistent=False)  # (H, L·K)
        self.input = Linear(n_latent * n_codes, hidden, rng=rng)
        self.output = Linear(hidden, n_latent * n_codes, rng=rng)
        self.output.weight.data = numpy.zeros_like(self.output.weight.data)
        self.output.bias.data = numpy.zeros_like(self.output.bias.data)

    def _one_hot(self, codes):
        codes = as_tensor(codes)
        if codes.ndim == 0 or codes.shape[-1] != self.n_latent:
            raise ValueError(f"CodePrior: codes need a last axis of L = {self.n_latent} positions, got shape "
                             f"{tuple(codes.shape)}")
        x = ops.one_hot(codes, self.n_codes, dtype=self.mask_in.dtype)
        return x, ops.reshape(x, x.shape[:-2] + (self.n_latent * self.n_codes,))

    def _logits(self, flat):
        h = ops.elu(ops.linear(flat, self.input.weight * self.mask_in, self.input.bias))
        logits = ops.linear(h, self.output.weight * self.mask_out, self.output.bias)
        return ops.reshape(logits, logits.shape[:-1] + (self.n_latent, self.n_codes))

    def forward(self, codes):
        """The logits (…, L, K) of p(k_l | k_<l) for codes (…, L), unnormalized (``log_softmax`` of row l: log p)."""
        return self._logits(self._one_hot(codes)[1])

    def log_prob(self, codes):
        """log p(k) = Σ_l log p(k_l | k_<l) of codes (…, L): (…) nats."""
        one_hot, flat = self._one_hot(codes)
        return (one_hot * ops.log_softmax(self._logits(flat), axis=-1)).sum(axis=(-2, -1))

    def sample(self, sample_shape=(), rng=None):
        """Code sequences (*sample_shape, L), int64 on the prior's device, drawn ancestrally: k_1 ~ p(k_1), then each
        k_l ~ p(k_l | k_<l) (``Categorical``'s Gumbel-max, rng's draws), one pass of the network a position (the
        positions not yet drawn hold 0, which the masks keep from the logits of every position drawn so far)."""
        shape = tuple(sample_shape) + (self.n_latent,)
        codes = module_for_device(self.mask_in.device).zeros(shape, numpy.int64)
        with no_grad():
            for position in range(self.n_latent):
                logits = self(codes)[..., position, :]
                codes[..., position] = Categorical(logits=logits).sample(rng=rng).data
        return codes


class VQVAE(Module):
    """The vector-quantized VAE (module docstring): ``n_latent`` L vectors of ``code_dim`` D an input, a codebook of
    ``n_codes`` K vectors (``codebook`` (K, D) ~ U(−1/K, 1/K), as the reference implementations initialize it), the
    commitment weight ``beta``; the encoder and decoder are the other models' (``hidden``, ``activation``, ``arch``,
    ``channels``) and so are the likelihoods (``likelihood``). The decoder reads the L·D code values flattened.

    ``ema_decay`` γ ∈ [0, 1): the codebook a buffer learned by exponential moving averages (module docstring; None, the
    default: a parameter learned by its loss term), ``ema_epsilon`` ε > 0 its Laplace smoothing; recorded in the config
    only when γ is given. ``prior_hidden`` H: a learned prior over the codes (``code_prior``, a ``CodePrior`` of H
    hidden units; module docstring), recorded in the config only when given; None (the default): the uniform prior.
    The objectives' protocol: ``posterior`` (q one-hot on the codes), ``prior`` (uniform, or the learned one),
    ``likelihood`` (p(x|z_q) of codes), so that ``objectives.elbo`` and ``training.train`` take the model."""

    kind = "vq"

    def __init__(self, x_dim=784, hidden=(512, 256), n_latent=16, code_dim=8, n_codes=64, beta=0.25,
                 likelihood="bernoulli", activation="relu", arch="mlp", channels=None, ema_decay=None, ema_epsilon=1e-5,
                 prior_hidden=None, *, rng, device="cpu"):
        likelihood = _likelihood_kind(likelihood)
        x_dim, hidden = _size("x_dim", x_dim), _hidden(hidden)
        n_latent, code_dim, n_codes = _size("n_latent", n_latent), _size("code_dim", code_dim), _size("n_codes", n_codes)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0 or not math.isfinite(beta):
            raise ValueError(f"VQVAE: beta, the commitment weight, must be a finite number ≥ 0, not {beta!r}")
        arch, channels, layout = _architecture(arch, channels, x_dim, activation)
        ema = {}
        if ema_decay is not None:  # (recorded only when given: a gradient-learned model has the config of before)
            ema = dict(ema_decay=_number("ema_decay", ema_decay, lambda g: 0 <= g < 1, "in [0, 1)"),
                       ema_epsilon=_number("ema_epsilon", ema_epsilon, lambda e: e > 0, "> 0"))
        learned = {} if prior_hidden is None else dict(prior_hidden=_size("prior_hidden", prior_hidden))
        self.config = dict(x_dim=x_dim, hidden=hidden, n_latent=n_latent, code_dim=code_dim, n_codes=n_codes,
                           beta=float(beta), likelihood=likelihood, activation=activation, **layout, **ema, **learned)
        self.n_latent, self.code_dim, self.n_codes, self.beta = n_latent, code_dim, n_codes, float(beta)
        self.ema_decay, self.ema_epsilon = ema.get("ema_decay"), ema.get("ema_epsilon")
        self.encoder, self.decoder = _networks(x_dim, hidden, n_latent * code_dim, n_latent * code_dim, activation,
                                               arch, channels, rng)
        _likelihood_parameters(self, likelihood, x_dim)
        codebook = Tensor(((2 * rng.uniform((n_codes, code_dim), numpy.float64) - 1) / n_codes).astype(numpy.float32))
        if self.ema_decay is None:
            self.codebook = codebook.requires_grad_(True)
        else:
            self.register_buffer("codebook", codebook)
            self.register_buffer("ema_cluster_size", Tensor(numpy.zeros(n_codes, numpy.float32)))
            self.register_buffer("ema_w", Tensor(numpy.zeros((n_codes, code_dim), numpy.float32)))
        # (drawn last: the VQ-VAE's own weights are those of the model without a learned prior, seed for seed)
        self.code_prior = CodePrior(n_latent, n_codes, learned["prior_hidden"], rng=rng) if learned else None
        self.to(device)

    def _encode(self, x):
        """z_e (…, L, D), of log(1 + x) under a count likelihood (the other models' ``_encoder_input``)."""
        out = self.encoder(_encoder_input(self, x))
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
        """−log p(x|z_q) + the codebook and commitment terms, per example, averaged (module docstring); with
        ``ema_decay``, the commitment term alone, and in training mode the codebook's moving averages then take the
        batch (``ema_update``); with a learned prior, plus −log p(k) of the batch's codes, its maximum-likelihood
        objective (the codes are integers: its gradient reaches the prior alone). The draw ``rng`` and the KL weight β
        of the other models' signature change nothing here: the encoder is deterministic and the KL is −log p(k)."""
        z_e = self._encode(x)
        z, codes, vq = vector_quantize(z_e, self.codebook, self.beta, codebook_loss=self.ema_decay is None)
        log_lik = self._decode(z).log_prob(x).sum(axis=-1)
        if self.ema_decay is not None and self.training:
            self.ema_update(z_e, codes)
        if self.code_prior is not None:
            vq = vq - self.code_prior.log_prob(codes)
        return (vq - log_lik).mean()

    def ema_update(self, z_e, codes):
        """N ← γN + (1 − γ)n, m ← γm + (1 − γ)Σ z_e and e = m/Ñ (module docstring) for z_e (…, L, D) and its codes
        (…, L), in place: outside the graph (array_function, then copy_), as batch norm's running statistics, so that
        a step plan records it too."""
        if self.ema_decay is None:
            raise RuntimeError("ema_update: this VQVAE learns its codebook by gradient (ema_decay=None)")
        gamma, eps, k = self.ema_decay, self.ema_epsilon, self.n_codes

        def update(z, codes, size, w):
            xp = get_array_module(z)
            flat = z.reshape(-1, z.shape[-1])
            one_hot = (codes.reshape(-1, 1) == xp.arange(k)).astype(z.dtype)  # (n, K)
            size = gamma * size + (1 - gamma) * one_hot.sum(axis=0)
            w = gamma * w + (1 - gamma) * (one_hot.T @ flat)
            total = size.sum()
            smoothed = (size + eps) / (total + k * eps) * total
            return size, w, w / smoothed[:, None]
        for buffer, value in zip((self.ema_cluster_size, self.ema_w, self.codebook),
                                 array_function(update, z_e.detach(), codes, self.ema_cluster_size, self.ema_w)):
            buffer.copy_(value)

    def posterior(self, x):
        """q(k|x): one-hot on the nearest codes k(l), a Categorical (…, L) of K logits, 0 at k(l) and −∞ elsewhere
        (exactly: its samples and mode are k(l), log q = 0 there, KL to the uniform prior log K a latent)."""
        with no_grad():
            codes = self.encode(x)
            xp = get_array_module(codes)
            logits = xp.where(codes[..., None] == xp.arange(self.n_codes), 0.0, -math.inf).astype(self.codebook.dtype)
            return Categorical(logits=Tensor(logits))

    def prior(self):
        """The learned prior (``code_prior``: ``log_prob`` of codes (…, L) summed over L, ``sample``; no closed-form
        KL, so ``objectives.elbo`` takes log q − log p of q's one sample, exact here), or p(k) = 1/K for each of the L
        codes: a Categorical of K equal logits, in the codebook's dtype and device."""
        if self.code_prior is not None:
            return self.code_prior
        return Categorical(logits=Tensor(module_for_device(self.codebook.device).zeros(self.n_codes, self.codebook.dtype)))

    likelihood = decode  # p(x|z) of the objectives: z the codes (a sample of ``posterior`` or ``prior``)

    def log_prior(self, codes):
        """log p(k) of code sequences (…, L), per sequence: the learned prior's, or −L log K (uniform); no gradient."""
        with no_grad():
            if self.code_prior is not None:
                return self.code_prior.log_prob(codes)
            zeros = get_array_module(codes).zeros(codes.shape[:-1], self.codebook.dtype)
            return Tensor(zeros - self.n_latent * math.log(self.n_codes))

    def elbo_terms(self, x):
        """(log p(x|z_q), log p(k)) per example, k = k(x) the codes (no gradient): the ELBO is their sum."""
        with no_grad():
            x = as_tensor(x)
            codes = self.encode(x)
            return self.decode(codes).log_prob(x).sum(axis=-1), self.log_prior(codes)

    def elbo(self, x):
        """log p(x|z_q) + log p(k) per example, in nats: the ELBO of q one-hot on the codes k (module docstring), under
        the learned prior or the uniform one (log p(k) = −L log K) (no gradient)."""
        log_lik, log_prior = self.elbo_terms(x)
        return log_lik + log_prior

    def fit_code_prior(self, x, *, rng, epochs=10, batch_size=100, lr=1e-3):
        """Fit the learned prior by maximum likelihood to the codes of images x (n, x_dim), the VQ-VAE frozen (the
        paper's order): Adam(lr) on −(1/B) Σ log p(k) of shuffled batches (``rng``) of the codes, encoded once.
        Returns the codes' mean −log p(k) in nats after each epoch."""
        from minivae.data import batches
        from minivae.optim import Adam
        if self.code_prior is None:
            raise RuntimeError("fit_code_prior: this VQVAE has the uniform prior; build it with prior_hidden=H")
        device = self.codebook.device
        codes = to_numpy(self.encode(as_tensor(x, device=device)))  # (batches are host-side row picks)
        optimizer, nll = Adam(self.code_prior.parameters(), lr=lr), []
        for _ in range(_size("epochs", epochs)):
            for batch in batches(codes, batch_size, rng=rng):
                loss = -self.code_prior.log_prob(as_tensor(batch, device=device)).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            nll.append(-self.log_prior(as_tensor(codes, device=device)).mean().item())
        return nll

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
        """Mean images p(x|z_q) of n code sequences from the learned prior (ancestral sampling, ``CodePrior.sample``)
        or the uniform one (``prior_codes``)."""
        with no_grad():
            codes = self.prior_codes(n, rng) if self.code_prior is None else self.code_prior.sample((n,), rng)
            return self.decode(codes).mean

    def perplexity(self, x):
        """exp(H) of the codes' frequencies over x's latents: K when every code is used equally, 1 when one is (the
        paper's measure of how much of the codebook is used)."""
        codes = to_numpy(self.encode(x)).reshape(-1)  # (a host summary, asked for: one copy from a device)
        p = numpy.bincount(codes, minlength=self.n_codes) / max(codes.size, 1)
        p = p[p > 0]
        return float(numpy.exp(-(p * numpy.log(p)).sum()))


# models.py imports this module at its end (VQVAE is a name of it too): its helpers are read here, after the class
from minivae.models import (MODELS, _architecture, _encoder_input, _hidden, _likelihood_kind,  # noqa: E402
                            _likelihood_of, _likelihood_parameters, _networks, _number, _size)

MODELS.setdefault(VQVAE.kind, VQVAE)  # models.build (and so training.load_checkpoint) rebuild it
