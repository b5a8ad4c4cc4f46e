"""The conditional VAE (Sohn, Lee & Yan 2015, "CVAE"): images x generated given a class label y, both networks
reading y.

Generative model   p(z) = N(0, I),  p(x|z, y) = Bernoulli(decoder([y, z])) (or another ``likelihood=``, as the other
                   models': minivae.models._likelihood_of); with prior="learned", Sohn et al.'s prior network
                   p(z|y) = N(μ_p(y), σ_p²(y)) in place of N(0, I)
Inference          q(z|x, y) = N(μ(x, y), σ²(x, y))

y enters both networks as a one-hot row (or any row of C numbers given in its place: a soft label, an embedding).
Its bound on the conditional log-likelihood is the Gaussian VAE's ELBO with y beside x and z:

    log p(x|y) ≥ L(x, y) = E_q(z|x,y)[log p(x|z, y)] − KL(q(z|x, y) ‖ N(0, I)),

the expectation one pathwise draw z = μ + σ·ε (ε from an explicit Generator) and the KL in closed form, through the
fused op ops.reparameterize_kl and minivae.models._negative_elbo, as GaussianVAE's loss (β weighs the KL as there).
With the learned prior the bound is E_q[log p(x|z, y)] − KL(q(z|x, y) ‖ p(z|y)), the KL of the two diagonal Gaussians
in closed form (distributions.kl_divergence), per dimension

    KL_j = log(σ_p,j/σ_j) + (σ_j² + (μ_j − μ_p,j)²) / (2σ_p,j²) − ½.

With a uniform p(y) = 1/C, L(x, y) − log C bounds log p(x, y) ≤ log p(x): a number to set beside an unconditional
VAE's ELBO (M2's labelled bound L(x, y) is this with the classifier's term; minivae.semisupervised).

``given(y)`` is the model with y fixed: posterior(x), prior(), likelihood(z), so that minivae.objectives (elbo,
iwae_bound, log_likelihood_is) bound log p(x|y) unchanged.

References:
    1. K. Sohn, H. Lee, X. Yan. Learning Structured Output Representation using Deep Conditional Generative Models.
       NeurIPS 2015 (§3, Eq. 4: the standard prior replaces their prior network p(z|x) by N(0, I), the common CVAE;
       prior="learned" is the prior network, of the label y, their "input" x being our condition).
"""
import math
import os
import time

import numpy

from minivae import ops
from minivae._backend import module_for_device, to_numpy
from minivae.distributions import Normal, kl_divergence
from minivae.engine import Tensor, as_tensor, no_grad
from minivae.nn import MLP, Module


class ConditionalVAE(Module):
    """A VAE of images x given their class y (see the module docstring): two MLPs of ``hidden`` layers (``activation``
    as MLP's), GaussianVAE's of the same sizes with C more inputs each:

        encoder  [x, y] → [μ, log σ²] of q(z|x, y)           MLP((x_dim + C, *hidden, 2·z_dim))
        decoder  [y, z] → p(x|z, y) (logits for Bernoulli)   MLP((C + z_dim, *reversed(hidden), x_dim))

    y: integer class indices (B,) in [0, C), made one-hot rows, or floating rows (B, C) taken as they are.
    ``loss(x, y, rng)`` is mean_b[−L(x_b, y_b)] (β·KL with ``beta``); ``posterior(x, y)`` q(z|x, y), ``prior()``
    N(0, I), ``likelihood(z, y)`` p(x|z, y) (y broadcast over z's leading axes, e.g. objectives' samples axis);
    ``sample(n, rng, y=)`` mean images of class y (an integer, or n labels; None: the classes in turn, 0, 1, …, C − 1,
    0, …); ``reconstruct(x, y)`` the mean of p(x|μ(x, y), y). ``kind`` "conditional" is registered in
    ``minivae.models.MODELS``, so that ``training.load_checkpoint`` reads one.

    ``prior="learned"`` is Sohn et al.'s prior network: p(z|y) = N(μ_p(y), σ_p²(y)), an MLP of the label row,

        prior_network  y → [μ_p, log σ_p²]                   MLP((C, *prior_hidden, 2·z_dim))

    trained with the rest; ``prior(y)`` is that Normal of batch shape (B, Z), the loss's KL is that of q to it in closed
    form, and ``sample`` draws z ~ p(z|y). ``prior_hidden`` () (the default) is one linear layer, which for one-hot rows
    is a free mean and log-variance a class (row c of its weight plus its bias): as general as p(z|y) of a class gets;
    hidden layers matter only for rows that are not one-hot (soft labels, embeddings). Its weights are drawn after all
    the others (the networks of the standard model of the same seed are this model's), and its last layer starts at 0,
    so p(z|y) starts at N(0, I), the standard model's: the model starts where the standard one does. prior and
    prior_hidden are recorded in the config only when learned (the standard model's config is that of a checkpoint
    written before the option existed).
    """

    kind = "conditional"

    def __init__(self, x_dim=784, n_classes=10, hidden=(512, 256), z_dim=20, likelihood="bernoulli", activation="relu",
                 prior="standard", prior_hidden=None, *, rng, device="cpu"):
        likelihood = _likelihood_kind(likelihood)
        x_dim, hidden, z_dim = _size("x_dim", x_dim), _hidden(hidden), _size("z_dim", z_dim)
        n_classes = _size("n_classes", n_classes, minimum=2)
        self.prior_kind, prior_hidden, learned = _prior(prior, prior_hidden)
        self.config = dict(x_dim=x_dim, n_classes=n_classes, hidden=hidden, z_dim=z_dim, likelihood=likelihood,
                           activation=activation, **learned)
        self.encoder = MLP((x_dim + n_classes, *hidden, 2 * z_dim), activation, rng=rng)
        self.decoder = MLP((n_classes + z_dim, *reversed(hidden), x_dim), activation, rng=rng)
        _likelihood_parameters(self, likelihood, x_dim)
        if self.prior_kind == "learned":  # drawn last: the other weights are the standard model's of the same seed
            self.prior_network = MLP((n_classes, *prior_hidden, 2 * z_dim), activation, rng=rng)
            for p in self.prior_network.parameters()[-2:]:  # the last layer's weight and bias: p(z|y) starts at N(0, I)
                p.data[...] = 0
        self.x_dim, self.n_classes, self.z_dim = x_dim, n_classes, z_dim
        self.to(device)

    # ---- the distributions ---------------------------------------------------------------------------------------
    def posterior(self, x, y):
        """q(z|x, y) = N(μ(x, y), σ²(x, y)) for images x (B, x_dim) and labels y (see the class docstring)."""
        loc, log_var = self._encode(*self._pair(x, y))
        return Normal(loc, ops.exp(0.5 * log_var))

    def prior(self, y=None):
        """p(z) = N(0, I), in the parameters' dtype (``y`` unread); with prior="learned", p(z|y) = N(μ_p(y), σ_p²(y)) of
        the labels y of a batch (B integer labels or B rows, as the class docstring's y): batch shape (B, Z)."""
        if self.prior_kind == "standard":
            return SemiSupervisedVAE.prior(self)
        shape = y.shape if isinstance(y, Tensor) else numpy.shape(y)
        if y is None or len(shape) == 0:
            raise ValueError(f"the learned prior p(z|y) needs the labels y of a batch (B,) or their rows (B, "
                             f"{self.n_classes}), got {y!r}")
        loc, log_var = ops.split(self.prior_network(self._rows(y, shape[0], self.decoder.parameters()[0])), [self.z_dim],
                                 axis=-1)
        return Normal(loc, ops.exp(0.5 * log_var))

    def likelihood(self, z, y):
        """p(x|z, y) for z (…, B, Z) and labels y of the B rows (one-hot rows broadcast over z's further axes)."""
        if z.ndim < 2:
            raise ValueError(f"z must be latents of shape (…, batch, {self.z_dim}), got {z.shape}")
        rows = self._rows(y, z.shape[-2], z)
        return _likelihood_of(self, self.decoder(ops.concatenate([ops.broadcast_to(rows, (*z.shape[:-1], self.n_classes)),
                                                                   z], axis=-1)))

    def given(self, y):
        """The model with the labels y fixed: ``posterior(x)``, ``prior()`` (p(z|y) of the learned prior), ``likelihood(z)``
        of p(x, z|y), which minivae.objectives take as any model's (their bounds then bound log p(x|y))."""
        return Given(self, y)

    # ---- the bound -----------------------------------------------------------------------------------------------
    def loss(self, x, y, rng, step=0, beta=1.0):
        """−(E_q log p(x|z, y) − β·KL(q(z|x, y) ‖ N(0, I))) per image, averaged: one z = μ + σ·ε, ε from ``rng`` (in the
        kernel on a GPU), and the KL in closed form, through the fused op and ops.negative_elbo (ops.bernoulli_negative_elbo
        for a Bernoulli likelihood), as GaussianVAE.loss. With prior="learned", the KL is to p(z|y), in closed form
        (kl_divergence of the two Normals, per dimension), at the z of the same ε. ``step`` is taken, and unused, as the
        other models' loss."""
        x, rows = self._pair(x, y)
        loc, log_var = self._encode(x, rows)
        if self.prior_kind == "learned":
            eps = Tensor(rng.normal(loc.shape, loc.dtype, device=self.device))  # the ε reparameterize_kl would draw
            z = ops.reparameterize(loc, log_var, eps)
            kl = kl_divergence(Normal(loc, ops.exp(0.5 * log_var)), self.prior(rows))
        else:
            z, kl = ops.reparameterize_kl(loc, log_var, rng=rng)
        return _negative_elbo(self.likelihood(z, rows), x, kl, beta)

    def _encode(self, x, rows):
        """μ and log σ² of q(z|x, y) for checked images and one-hot rows."""
        return ops.split(self.encoder(ops.concatenate([_encoder_input(self, x), rows], axis=-1)), [self.z_dim], axis=-1)

    # ---- using it ------------------------------------------------------------------------------------------------
    def sample(self, n, rng, y=None):
        """Mean images of p(x|z, y) (n, x_dim), z ~ N(0, I) (with prior="learned", z ~ p(z|y)) from ``rng``, of class
        ``y``: an integer, n integer labels, or None, the classes in turn (image i of class i mod C: a grid of C columns
        has a class a column)."""
        n = _size("sample: n", n)
        first = self.decoder.parameters()[0]
        if y is None:
            y = numpy.arange(n) % self.n_classes
        elif not isinstance(y, Tensor) and numpy.ndim(y) == 0:
            y = numpy.full(n, y)
        with no_grad():
            rows = self._rows(y, n, first)
            z = (self.prior(rows).sample(rng=rng) if self.prior_kind == "learned" else
                 Tensor(rng.normal((n, self.z_dim), first.dtype, device=first.device)))
            return self.likelihood(z, rows).mean

    def reconstruct(self, x, y):
        """The mean of p(x|z, y) at z = μ(x, y), q's mean: x's deterministic reconstruction given its label."""
        with no_grad():
            x, rows = self._pair(x, y)
            return self.likelihood(self._encode(x, rows)[0], rows).mean

    # ---- checks --------------------------------------------------------------------------------------------------
    # M2's checks of images and labels, the same rules (SemiSupervisedVAE's methods read only x_dim and n_classes)
    def _images(self, x):
        return SemiSupervisedVAE._images(self, x)

    def _labels(self, y, device, n):
        return SemiSupervisedVAE._labels(self, y, device, n)

    def _pair(self, x, y):
        x = self._images(x)
        return x, self._rows(y, x.shape[0], x)

    def _rows(self, y, n, like):
        """y as n rows (n, C) in ``like``'s dtype on its device: integer labels made one-hot, floating rows as they are
        (SemiSupervisedVAE._rows)."""
        return SemiSupervisedVAE._rows(self, y, n, like)


class Given:
    """A ConditionalVAE with the labels y of a batch fixed (``ConditionalVAE.given``): the three distributions of the
    models' interface, of p(x, z|y)."""

    def __init__(self, model, y):
        self.model, self.y = model, y

    def posterior(self, x):
        return self.model.posterior(x, self.y)

    def prior(self):
        """p(z|y) of the labels fixed (N(0, I) under the standard prior)."""
        return self.model.prior(self.y)

    def likelihood(self, z):
        return self.model.likelihood(z, self.y)


# models.py imports this module at its end (ConditionalVAE is a name of it too): its helpers, and M2's class, are read
# here, after the class
from minivae.models import (MODELS, _encoder_input, _hidden, _likelihood_kind, _likelihood_of,  # noqa: E402
                            _likelihood_parameters, _negative_elbo, _number, _size)
from minivae.semisupervised import SemiSupervisedVAE  # noqa: E402

MODELS.setdefault(ConditionalVAE.kind, ConditionalVAE)  # models.build (and so training.load_checkpoint) rebuild it

PRIORS = ("standard", "learned")


def _prior(prior, prior_hidden):
    """(prior, the prior network's hidden sizes, the config entries recording them): checked; recorded only for the
    learned prior (as models._prior), so that the standard model's config is that of a checkpoint written before."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, not {prior!r}")
    if prior == "standard":
        if prior_hidden is not None:
            raise ValueError("prior_hidden are the layers of the learned prior's network (prior='learned'); the standard "
                             "prior N(0, I) has none")
        return prior, None, {}
    prior_hidden = () if prior_hidden is None else _hidden(prior_hidden, "prior_hidden")
    return prior, prior_hidden, dict(prior=prior, prior_hidden=prior_hidden)


def evaluate(model, x, y, rng, batch_size=500, k=None):
    """{"elbo": the mean of L(x, y), a bound on log p(x|y)} over images x (N, x_dim) and labels y (N,) (NumPy), in
    batches on the model's device (objectives.elbo of ``model.given(y)``, its noise from ``rng``); with ``k``, also
    "log_likelihood": log p(x|y) importance sampled with k draws of q(z|x, y) (objectives.log_likelihood_is). One copy
    of each sum to the host, at the end."""
    from minivae import objectives
    from minivae.data import batches
    xp = module_for_device(model.device)
    totals = xp.zeros(2, numpy.float64)
    with no_grad():
        for xb, yb in zip(batches(x, batch_size), batches(y, batch_size)):
            xb, given = as_tensor(xb, device=model.device), model.given(Tensor(xp.asarray(yb)))
            elbo = objectives.elbo(given, xb, rng).data.sum()  # its draws first, then those of the estimate
            ll = objectives.log_likelihood_is(given, xb, rng, k=k).data.sum() if k else 0.0
            totals = totals + xp.stack([elbo.astype(numpy.float64), xp.asarray(ll, numpy.float64)])
    elbo, ll = (to_numpy(totals) / len(x)).tolist()
    return {"elbo": elbo, **({"log_likelihood": ll} if k else {})}


COLUMNS = ["epoch", "step", "train_loss", "valid_elbo", "seconds", "settings_changed"]


def train(model, data, out, *, epochs, batch_size, lr, seed, dynamic=False, clip=None, resume=False,
          override_settings=False, graph=False, tf32=False, log=print):
    """Train a ConditionalVAE (``minivae train --model conditional``): an epoch is one pass over data["train"], images
    and labels (x (N, x_dim), y (N,)), in batches shuffled by Generator(``seed``), Adam at ``lr`` on the loss, gradients
    clipped to the norm ``clip`` if given, the images binarized afresh with ``dynamic``. After each epoch: the mean
    L(x, y) of data["valid"] (``evaluate``; its noise, and its one binarization with ``dynamic``, from derived seeds),
    out/checkpoint.npz (``training.save_checkpoint``, atomically: ``minivae eval`` and ``sample`` read it) and
    out/metrics.csv (``COLUMNS``); at the end reconstructions.png and samples.png (the classes in turn, a column each).

    As training.train: ``out`` is locked while training, a run that fails before its first checkpoint removes the
    folders it made, and a folder holding a checkpoint is refused unless ``resume``, which continues it bit for bit
    (training.start_run), its settings (training.train's that apply; the data's fingerprint covers the labels) compared
    unless ``override_settings``. ``graph``: the step of the full batches recorded and replayed (training.Stepper: the
    images and their one-hot labels in one buffer, ``_step_loss``); ``tf32``: float32 products in TF32 on the GPU
    (training.tf32_for, a setting of the run)."""
    from minivae import training
    epochs, batch_size, seed = _size("epochs", epochs), _size("batch_size", batch_size), _size("seed", seed, 0)
    lr = _number("lr", lr, lambda v: v > 0, "> 0")
    clip = None if clip is None else _number("clip", clip, lambda v: v > 0, "> 0 (or None: no clipping)")
    for split in ("train", "valid"):
        if len(data[split][0]) == 0:
            raise ValueError(f"data[{split!r}] holds no images: training needs both splits")
    settings = training.recorded_settings(dict(data=training.data_fingerprint(data), lr=lr, batch_size=batch_size,
                                               seed=seed, clip=clip, dynamic_binarization=dynamic), tf32=tf32)
    with training.tf32_for(model, tf32), training.run_folder(out):
        _train_epochs(model, data, out, settings, epochs, resume, override_settings, graph, log)
    return model


def _step_loss(model, rng):
    """The loss of a batch (B, x_dim + C), the images and their one-hot labels side by side (one buffer, which a
    step plan replays on)."""
    def loss(batch):
        return model.loss(*ops.split(batch, [model.x_dim], axis=-1), rng)
    return loss


def _train_epochs(model, data, out, settings, epochs, resume, override_settings, graph, log):
    from minivae import training
    from minivae.data import batches, binarize
    from minivae.optim import Adam
    from minivae.random import Generator
    # (here, not at the top: a first import of minivae.semisupervised imports models, and so this module, before it
    # defines one_hot_rows)
    from minivae.semisupervised import one_hot_rows
    (x, y), (x_valid, y_valid), batch_size = data["train"], data["valid"], settings["batch_size"]
    y_rows = one_hot_rows(y, model.n_classes, x.dtype)  # (refusing a label outside [0, C) before anything changes)
    optimizer = Adam(model.parameters(), lr=settings["lr"])
    rng, first, step, rows, note = training.start_run(out, model, optimizer, Generator(settings["seed"]), settings,
                                                      COLUMNS, resume=resume, override_settings=override_settings)
    valid_seed = training.derived_seed(settings["seed"], 1)
    if settings["dynamic_binarization"]:
        x_valid = binarize(x_valid, Generator(valid_seed))
    progress, steps = training.Progress(), -(-len(x) // batch_size)
    take_step = training.Stepper(model, optimizer, _step_loss(model, rng), batch_size, graph=graph,
                                 clip=settings["clip"])
    for epoch in range(first, epochs + 1):
        started, total = time.perf_counter(), 0.0
        for i, pick in enumerate(batches(numpy.arange(len(x)), batch_size, rng=rng), 1):
            xb = binarize(x[pick], rng) if settings["dynamic_binarization"] else x[pick]
            value = take_step(numpy.concatenate([xb, y_rows[pick]], axis=1)).item()
            if not math.isfinite(value):
                raise training.TrainingError(f"the loss became {value} at epoch {epoch}, step {step}; "
                                             f"{training.kept(out, epoch)}")
            step, total = step + 1, total + value
            progress.update(epoch, epochs, i, steps, total / i, started)
        training.check_parameters(model, optimizer, out, epoch, step)
        valid = evaluate(model, x_valid, y_valid, Generator(valid_seed))["elbo"]
        rows.append([epoch, step, f"{total / i:.4f}", f"{valid:.4f}", f"{time.perf_counter() - started:.1f}", note])
        note = ""
        training.save_checkpoint(os.path.join(out, training.CHECKPOINT), model, optimizer, rng, epoch, step, settings,
                                 rows)
        training._write_csv_atomic(os.path.join(out, training.METRICS), rows)
        log(f"epoch {epoch}: train loss {total / i:.3f}  valid ELBO (of log p(x|y)) {valid:.3f} nats")
    skipped = _write_pictures(model, x_valid, y_valid, out, training.derived_seed(settings["seed"], 2))
    log(f"wrote {os.path.join(out, '')}: {training.CHECKPOINT} (epoch {max(epochs, first - 1)}), {training.METRICS}"
        + (f" (no pictures: {skipped})" if skipped else ", reconstructions.png, samples.png"))


def _write_pictures(model, x, y, out, seed, n=32):
    """reconstructions.png (rows of ``n`` images of x, then ``reconstruct``'s given their labels) and samples.png
    (``sample``'s classes in turn, C columns, 8 rows), as training.write_pictures; nothing for rows that are no square
    images: returns why."""
    from minivae.png import image_grid, paired_rows, write_png
    from minivae.random import Generator
    if math.isqrt(x.shape[1]) ** 2 != x.shape[1]:
        return f"{x.shape[1]} values a row are no square image"
    recon = model.reconstruct(as_tensor(x[:n], device=model.device), y[:n]).numpy()
    write_png(os.path.join(out, "reconstructions.png"), image_grid(paired_rows(x[:n], recon)))
    samples = model.sample(8 * model.n_classes, Generator(seed)).numpy()
    write_png(os.path.join(out, "samples.png"), image_grid(samples, columns=model.n_classes))
    return None
