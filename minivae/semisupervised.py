"""The semi-supervised VAE "M2" of Kingma, Rezende, Mohamed & Welling (2014): a class label y that is a latent
variable where it is missing, summed out exactly.

Generative model   p(y) = Cat(1/C, …, 1/C),  p(z) = N(0, I),  p(x|y, z) = Bernoulli(decoder([y, z])) (or another
                   ``likelihood=``, as the other models': minivae.models._likelihood_of)
Inference          q(z|x, y) = N(μ(x, y), σ²(x, y)),  q(y|x) = Cat(π(x)), the classifier

With its label, an image has the bound (the paper's Eq. 6)

    log p(x, y) ≥ L(x, y) = E_q(z|x,y)[log p(x|y, z) + log p(y) + log p(z) − log q(z|x, y)]
                          = E_q(z|x,y)[log p(x|y, z)] − log C − KL(q(z|x, y) ‖ N(0, I)),

the expectation one pathwise draw z = μ + σ·ε (ε from an explicit Generator) and the KL in closed form (as
GaussianVAE's, and as the paper's code, whose q(z) and p(z) are "gaussianmarg"); without it (Eq. 7)

    log p(x) ≥ U(x) = Σ_y q(y|x)·L(x, y) + H(q(y|x)),

the sum over the C classes EXACT: the batch is repeated C times, each copy with one class's one-hot y and its own ε,
in one batched pass through the encoder and decoder (the paper's code loops over the classes, one ε each; the same
numbers). The classifier's gradient through U is therefore exact too: ∂U/∂a_k = π_k·(L(x, k) − log π_k − U) for its
logits a. Since only labelled images would otherwise train q(y|x), the labelled loss adds α·(−log q(y|x)) (Eq. 9).

α. The paper's objective is J^α = Σ_labelled L + Σ_unlabelled U + α·E_labelled[−log q(y|x)], sums over the data set
and the last term a mean over the N_l labelled images, with α = 0.1·N (N all the images; the authors' code weighs
each labelled −log q(y|x) by 0.1·N/N_l, ``beta = alpha * n_tot / n_labeled``). ``loss`` is per image, like the
other models': −L(x, y) + α·(−log q(y|x)) for a labelled image, so the constructor's ``alpha`` is that per-image
weight, by default 0.1·N/N_l from ``n_data`` = N and ``n_labelled`` = N_l (give these two, or alpha).

References:
    1. D. P. Kingma, D. J. Rezende, S. Mohamed, M. Welling. Semi-Supervised Learning with Deep Generative Models.
       NeurIPS 2014 (§3.1.2, model M2; Eqs. 6, 7, 9; α = 0.1·N in §4).
"""
import math
import os
import time

import numpy

from minivae import ops
from minivae._backend import module_for_device, to_numpy
from minivae.data import DataFormatError, load_images, read_idx
from minivae.distributions import Categorical, Normal
from minivae.engine import Tensor, as_tensor, no_grad
from minivae.nn import MLP, Module

ALPHA_FRACTION = 0.1  # α = 0.1·N (Kingma et al. 2014, §4): per labelled image 0.1·N/N_l


def _alpha(alpha, n_data, n_labelled):
    """The per-labelled-image weight of −log q(y|x): ``alpha`` as given, or 0.1·n_data/n_labelled."""
    if alpha is not None:
        if n_data is not None or n_labelled is not None:
            raise ValueError("give alpha (the weight of −log q(y|x) per labelled image) or n_data and n_labelled (for "
                             "the paper's 0.1·N/N_l), not both")
        return _number("alpha", alpha, lambda a: a >= 0, ">= 0")
    if n_data is None or n_labelled is None:
        raise ValueError("the classifier's weight alpha defaults to the paper's 0.1·N per labelled image, 0.1·N/N_l: "
                         "give n_data (N, all training images) and n_labelled (N_l), or alpha itself")
    n_data, n_labelled = _size("n_data", n_data), _size("n_labelled", n_labelled)
    if n_labelled > n_data:
        raise ValueError(f"n_labelled ({n_labelled}) cannot exceed n_data ({n_data}): N counts all images")
    return ALPHA_FRACTION * n_data / n_labelled


class SemiSupervisedVAE(Module):
    """Kingma et al.'s M2 (see the module docstring): three networks of ``hidden`` layers (the paper's one of 500
    softplus units, z of 50; ``activation`` as MLP's):

        classifier  x → the logits a of q(y|x)                      MLP((x_dim, *hidden, C))
        encoder     [x, one-hot y] → [μ, log σ²] of q(z|x, y)       MLP((x_dim + C, *hidden, 2·z_dim))
        decoder     [one-hot y, z] → p(x|y, z) (logits for Bernoulli) MLP((C + z_dim, *reversed(hidden), x_dim))

    ``loss(x, rng, y=None)``: with labels y (integers (B,), or one-hot rows (B, C)), mean_b[−L(x_b, y_b) − α·log q(y_b|x_b)]; without,
    mean_b[−U(x_b)], the classes enumerated. ``elbo(x, y)`` is L (B,), ``unlabelled_bound(x)`` U (B,), each at the
    next draws of ``rng`` or at given noise ``eps`` ((B, Z) and (C, B, Z): the latter's row c is class c's).
    ``classify(x)`` gives q(y|x) (B, C), ``predict(x)`` its most probable class, ``sample(n, rng, y=None)`` mean
    images of p(x|y, z) for z ~ N(0, I) and the given classes (drawn from p(y) when None).

    Named for what it does (Pyro's tutorial calls it SSVAE; "M2" is the paper's label among its models). The config
    records alpha resolved, so that a checkpoint rebuilds the same loss; ``kind`` "semisupervised" is registered in
    ``minivae.models.MODELS``, so that ``training.load_checkpoint`` reads one.
    """

    kind = "semisupervised"

    def __init__(self, x_dim=784, n_classes=10, hidden=(500,), z_dim=50, alpha=None, n_data=None, n_labelled=None,
                 likelihood="bernoulli", activation="softplus", *, rng, device="cpu"):
        likelihood = _likelihood_kind(likelihood)
        x_dim, hidden, z_dim = _size("x_dim", x_dim), _hidden(hidden), _size("z_dim", z_dim)
        n_classes = _size("n_classes", n_classes, minimum=2)
        alpha = _alpha(alpha, n_data, n_labelled)
        self.config = dict(x_dim=x_dim, n_classes=n_classes, hidden=hidden, z_dim=z_dim, alpha=alpha,
                           likelihood=likelihood, activation=activation)
        self.classifier = MLP((x_dim, *hidden, n_classes), activation, rng=rng)
        self.encoder = MLP((x_dim + n_classes, *hidden, 2 * z_dim), activation, rng=rng)
        self.decoder = MLP((n_classes + z_dim, *reversed(hidden), x_dim), activation, rng=rng)
        _likelihood_parameters(self, likelihood, x_dim)
        self.x_dim, self.n_classes, self.z_dim, self.alpha = x_dim, n_classes, z_dim, alpha
        self.to(device)

    # ---- the three distributions -----------------------------------------------------------------------------
    def classifier_logits(self, x):
        """The logits a of q(y|x) = Cat(softmax(a)), (B, C)."""
        return self.classifier(self._images(x))

    def posterior(self, x, y):
        """q(z|x, y) = N(μ, σ²) for images x (…, x_dim) and one-hot y (…, C) of the same leading axes."""
        loc, log_var = self._encode(x, y)
        return Normal(loc, ops.exp(0.5 * log_var))

    def prior(self):
        """p(z) = N(0, I), in the parameters' dtype."""
        first = self.decoder.parameters()[0]
        xp = module_for_device(first.device)
        return Normal(Tensor(xp.zeros(self.z_dim, first.dtype)), Tensor(xp.ones(self.z_dim, first.dtype)))

    def likelihood(self, y, z):
        """p(x|y, z) for one-hot y (…, C) and z (…, Z)."""
        return _likelihood_of(self, self.decoder(ops.concatenate([y, z], axis=-1)))

    def _encode(self, x, y):
        return ops.split(self.encoder(ops.concatenate([x, y], axis=-1)), [self.z_dim], axis=-1)

    # ---- the bounds --------------------------------------------------------------------------------------------
    def _bound(self, x, y, rng, eps):
        """L(x, y) over the leading axes of x and one-hot y (…, C): log p(x|y, z) at z = μ + σ·ε, less log C and the
        closed-form KL(q(z|x, y) ‖ N(0, I)) (= −E_q[log p(z) − log q(z|x, y)] exactly)."""
        loc, log_var = self._encode(x, y)
        if eps is None:
            z, kl = ops.reparameterize_kl(loc, log_var, rng=rng)
        else:
            z, kl = ops.reparameterize_kl(loc, log_var, self._noise(eps, loc.shape))
        log_px = self.likelihood(y, z).log_prob(x).sum(axis=-1)
        return log_px - kl.sum(axis=-1) - math.log(self.n_classes)

    def elbo(self, x, y, rng=None, *, eps=None):
        """L(x, y) (B,) for images x (B, x_dim) and integer labels y (B,): one draw ε ~ N(0, I) (B, Z) from ``rng``,
        or the given ``eps``."""
        x = self._images(x)
        return self._bound(x, self._one_hot(y, x), *self._randomness(rng, eps))

    def unlabelled_bound(self, x, rng=None, *, eps=None):
        """U(x) = Σ_y q(y|x)·L(x, y) + H(q(y|x)) = Σ_y π_y·(L(x, y) − log π_y), (B,), by exact enumeration: x repeated C
        times (C, B, x_dim) beside the one-hot rows of the identity (C, B, C), one batched pass, ε (C, B, Z) drawn from
        ``rng`` or given (row c for class c)."""
        x = self._images(x)
        c, xp = self.n_classes, module_for_device(x.device)
        rows = (c, *x.shape)
        eye = Tensor(xp.eye(c, dtype=x.dtype)[:, None, :])  # (C, 1, C): copy c of the batch is labelled c
        bounds = self._bound(ops.broadcast_to(x, rows), ops.broadcast_to(eye, (c, x.shape[0], c)),
                             *self._randomness(rng, eps))  # (C, B)
        log_pi = ops.transpose(ops.log_softmax(self.classifier(x), axis=-1))  # (C, B)
        return (ops.exp(log_pi) * (bounds - log_pi)).sum(axis=0)

    def loss(self, x, rng, y=None):
        """The training loss per image, averaged over the batch: with labels y (B,), −L(x, y) − α·log q(y|x)
        (``alpha``; the classifier learns from this term alone on labelled images); without, −U(x) (every network
        learns from it, the classifier through the exact sum over classes)."""
        x = self._images(x)
        if y is None:
            return -self.unlabelled_bound(x, rng).mean()
        y = self._one_hot(y, x)
        bound = self._bound(x, y, rng, None)
        log_q_y = (ops.log_softmax(self.classifier(x), axis=-1) * y).sum(axis=-1)
        return -(bound + self.alpha * log_q_y).mean()

    # ---- using it ------------------------------------------------------------------------------------------------
    def classify(self, x):
        """q(y|x): the class probabilities π(x) (B, C), without a graph."""
        with no_grad():
            return ops.softmax(self.classifier_logits(x), axis=-1)

    def classifier_posterior(self, x):
        """q(y|x) as a Categorical (with a graph: its log_prob or entropy trains the classifier)."""
        return Categorical(logits=self.classifier_logits(x))

    def predict(self, x):
        """The most probable class of each image under q(y|x): int64 (B,) on x's device."""
        return self.classify(x).argmax(axis=-1)

    def reconstruct(self, x):
        """The mean of p(x|y, z) at y the most probable class of q(y|x) and z the mean μ(x, y) of q(z|x, y): x's
        deterministic reconstruction through its inferred label (no gradient)."""
        with no_grad():
            y = self._one_hot(self.predict(self._images(x)), x)
            return self.likelihood(y, self._encode(x, y)[0]).mean

    def sample(self, n, rng, y=None):
        """Mean images of p(x|y, z) (n, x_dim), z ~ N(0, I) from ``rng``: class ``y`` (an integer, or n integer labels),
        or classes drawn from the uniform p(y) when None."""
        n = _size("sample: n", n)
        first = self.decoder.parameters()[0]
        if y is None:
            y = rng.integers(0, self.n_classes, (n,))
        elif not isinstance(y, Tensor) and numpy.ndim(y) == 0:
            y = numpy.full(n, y)
        with no_grad():
            y = ops.one_hot(self._labels(y, first.device, n), self.n_classes, dtype=first.dtype)
            z = Tensor(rng.normal((n, self.z_dim), first.dtype, device=first.device))
            return self.likelihood(y, z).mean

    # ---- checks ------------------------------------------------------------------------------------------------
    def _images(self, x):
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a Tensor of images (batch, {self.x_dim}), not {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != self.x_dim:
            raise ValueError(f"x must be a batch of images of shape (batch, {self.x_dim}), got {x.shape}")
        if x.dtype.kind != "f":
            raise TypeError(f"x must hold floating-point pixels, not {x.dtype}")
        return x

    def _one_hot(self, y, x):
        """The labels y of the images x as rows (B, C) in x's dtype (``_rows``)."""
        return self._rows(y, x.shape[0], x)

    def _rows(self, y, n, like):
        """y as n rows (n, C) in ``like``'s dtype on its device: integer labels made one-hot (``_labels``' checks;
        ops.one_hot refuses indices outside [0, C) on the CPU), floating rows (n, C) as they are (one-hot rows: the
        training loop's step plan reads the labels from its one floating batch buffer)."""
        if (y.dtype if isinstance(y, Tensor) else numpy.asarray(y).dtype).kind == "f":
            rows = y if isinstance(y, Tensor) else Tensor(module_for_device(like.device).asarray(y, like.dtype))
            if rows.shape != (n, self.n_classes):
                raise ValueError(f"label rows (one-hot or soft) must have shape ({n}, {self.n_classes}), got {rows.shape}")
            return rows
        return ops.one_hot(self._labels(y, like.device, n), self.n_classes, dtype=like.dtype)

    def _labels(self, y, device, n):
        """``y`` checked as n integer class indices on ``device`` (a NumPy array or a list is put there; a tensor on
        another device is refused, as the ops refuse one). Indices outside [0, C) are refused on the CPU (ops.one_hot)."""
        labels = y if isinstance(y, Tensor) else Tensor(module_for_device(device).asarray(numpy.asarray(y)))
        if labels.device != device:
            raise RuntimeError(f"labels on {labels.device} for a model and images on {device}: put them on one device")
        if labels.dtype.kind not in "iu":
            raise TypeError(f"labels must be integer class indices in [0, {self.n_classes}), not {labels.dtype}")
        if labels.shape != (n,):
            raise ValueError(f"labels must be one class index an image, shape ({n},), got {labels.shape}")
        return labels

    def _randomness(self, rng, eps):
        if (rng is None) == (eps is None):
            raise ValueError("pass a Generator rng to draw ε, or the noise eps, not both or neither")
        return rng, eps

    @staticmethod
    def _noise(eps, shape):
        eps = eps if isinstance(eps, Tensor) else as_tensor(eps)
        if eps.shape != shape:
            raise ValueError(f"eps must have shape {shape} (one standard normal a latent dimension), got {eps.shape}")
        return eps


# Imported after the class: minivae.models imports this module on its last line (to export the class), so each of the
# two may be imported first. The functions above read these names when they run.
from minivae.models import (MODELS, _hidden, _likelihood_kind, _likelihood_of,  # noqa: E402
                            _likelihood_parameters, _number, _size)

MODELS.setdefault(SemiSupervisedVAE.kind, SemiSupervisedVAE)  # models.build (and so load_checkpoint) rebuild it


def balanced_labels(y, n, rng):
    """The indices of ``n`` labelled images, as many of each class (the paper's balanced 100 of MNIST): the first
    n/C images of each class c in a permutation of ``y`` drawn from ``rng``, C = max(y) + 1; in that order, class by
    class. n must be a positive multiple of C with n/C images of each class at hand."""
    classes = int(numpy.max(y)) + 1 if len(y) else 0
    per_class = n // classes if classes else 0
    if per_class < 1 or per_class * classes != n:
        raise ValueError(f"the labelled images must be a positive multiple of the {classes} classes, got {n}")
    order = rng.permutation(len(y))
    picked = [order[y[order] == c][:per_class] for c in range(classes)]
    short = [c for c, p in enumerate(picked) if len(p) < per_class]
    if short:
        raise ValueError(f"{n} labelled images take {per_class} of each class, and class {short[0]} has "
                         f"{len(picked[short[0]])}")
    return numpy.concatenate(picked)


def evaluate(model, x, y, rng, batch_size=500):
    """{"unlabelled_bound": mean U(x), "labelled_bound": mean L(x, y), "accuracy": the fraction of the images whose
    most probable class under q(y|x) is y} over images x (N, x_dim) and labels y (N,) (NumPy), in batches on the
    model's device, the bounds' noise from ``rng``; one copy of each sum to the host, at the end."""
    from minivae.data import batches
    device = model.device
    xp = module_for_device(device)
    totals = xp.zeros(3, numpy.float64)
    with no_grad():
        for xb, yb in zip(batches(x, batch_size), batches(y, batch_size)):
            xb, yb = as_tensor(xb, device=device), Tensor(xp.asarray(yb))
            totals = totals + xp.stack([model.unlabelled_bound(xb, rng).data.sum().astype(numpy.float64),
                                        model.elbo(xb, yb, rng).data.sum().astype(numpy.float64),
                                        (model.predict(xb).data == yb.data).sum().astype(numpy.float64)])
    unlabelled, labelled, right = (to_numpy(totals) / len(x)).tolist()
    return {"unlabelled_bound": unlabelled, "labelled_bound": labelled, "accuracy": right}


COLUMNS = ["epoch", "step", "labelled_loss", "unlabelled_loss", "valid_unlabelled_bound", "valid_accuracy", "seconds",
           "settings_changed"]


def train(model, labelled, unlabelled, out, *, epochs, batch_size, lr, seed, valid, dynamic=False, clip=None,
          resume=False, override_settings=False, graph=False, tf32=False, log=print):
    """Train M2 as Kingma et al. (and examples/semisupervised_m2.py; ``minivae train --model semisupervised``): an
    epoch is one pass over the ``unlabelled`` images (N, x_dim) in batches shuffled by Generator(``seed``), each step
    adding to the batch's loss −U(x) that of ``batch_size`` labelled pairs drawn with replacement from ``labelled``
    (x_l, y_l), −L(x, y) − α·log q(y|x); Adam at ``lr``, gradients clipped to the norm ``clip`` if given; with
    ``dynamic`` both batches binarized afresh (grey levels as Bernoulli probabilities). After each epoch: the mean U(x)
    and the accuracy of q(y|x) on ``valid`` (x, y) (``evaluate``, its noise and a binarization with ``dynamic`` from
    Generator(seed + 1)); then out/checkpoint.npz (``training.save_checkpoint``, atomically: ``training.load_checkpoint``
    and ``minivae eval`` read it) and out/metrics.csv (``COLUMNS``); at the end reconstructions.png and samples.png.

    As training.train: ``out`` is locked while training, a run that fails before its first checkpoint removes the
    folders it made, and a folder holding a checkpoint is refused unless ``resume``, which continues it bit for bit
    (training.start_run: the parameters, Adam's state, the Generator's, which the batches, the labelled pairs' draws and
    the noise come from). The settings compared are the training.train's that apply, the count of labelled images and
    the fingerprints of the data (unlabelled and validation) and of the labelled pairs: the labelled split of a resumed
    run is the checkpoint's, or refused (``override_settings``: go on, the change in metrics.csv). ``graph``: the step
    of the full batches recorded and replayed (training.Stepper: both batches in one buffer, ``_step_loss``);
    ``tf32``: float32 products in TF32 on the GPU (training.tf32_for, a setting of the run)."""
    from minivae import training
    epochs, batch_size, seed = _size("epochs", epochs), _size("batch_size", batch_size), _size("seed", seed, 0)
    lr = _number("lr", lr, lambda v: v > 0, "> 0")
    clip = None if clip is None else _number("clip", clip, lambda v: v > 0, "> 0 (or None: no clipping)")
    for name, x in (("labelled", labelled[0]), ("unlabelled", unlabelled), ("valid", valid[0])):
        if len(x) == 0:
            raise ValueError(f"the {name} images are none: M2 trains on labelled and unlabelled images")
    fingerprint = training.data_fingerprint
    settings = training.recorded_settings(dict(
        data=fingerprint({"train": unlabelled, "valid": valid}), lr=lr, batch_size=batch_size, seed=seed, clip=clip,
        dynamic_binarization=dynamic, labelled=len(labelled[0]),
        labelled_data=fingerprint({"labelled": labelled}, ("labelled",))), tf32=tf32)
    with training.tf32_for(model, tf32), training.run_folder(out):
        _train_epochs(model, labelled, unlabelled, valid, out, settings, epochs, resume, override_settings, graph, log)
    return model


def one_hot_rows(y, n_classes, dtype):
    """Integer labels y (N,) as one-hot rows (N, C) of ``dtype``, a NumPy array (the rows of the training loops'
    packed batches), by ops.one_hot, which refuses indices outside [0, C)."""
    return ops.one_hot(Tensor(numpy.asarray(y)), n_classes, dtype=dtype).numpy()


def _step_loss(model, rng, n_labelled, parts):
    """The loss of a step on one batch (n_labelled + B, x_dim + C): the labelled images and their one-hot labels, then
    the unlabelled images (their label columns unread), −L − α·log q(y|x) of the former plus −U of the latter, each a
    mean over its images, in this order (their noise drawn from ``rng`` so). The two terms are written into ``parts``
    (2,), in place, so that a replayed step reports them too (one copy to the host a step)."""
    def loss(batch):
        labelled, unlabelled = ops.split(batch, [n_labelled], axis=0)
        x_l, y_l = ops.split(labelled, [model.x_dim], axis=-1)
        terms = model.loss(x_l, rng, y=y_l), model.loss(ops.split(unlabelled, [model.x_dim], axis=-1)[0], rng)
        with no_grad():
            parts.copy_(ops.stack([t.detach() for t in terms]))
        return terms[0] + terms[1]
    return loss


def _train_epochs(model, labelled, unlabelled, valid, out, settings, epochs, resume, override_settings, graph, log):
    from minivae import training
    from minivae.data import batches, binarize
    from minivae.optim import Adam
    from minivae.random import Generator
    (x_l, y_l), batch_size, dynamic = labelled, settings["batch_size"], settings["dynamic_binarization"]
    rows_l, no_rows = one_hot_rows(y_l, model.n_classes, x_l.dtype), numpy.zeros((batch_size, model.n_classes), x_l.dtype)
    optimizer, device = Adam(model.parameters(), lr=settings["lr"]), model.device
    rng, first, step, rows, note = training.start_run(out, model, optimizer, Generator(settings["seed"]), settings,
                                                      COLUMNS, resume=resume, override_settings=override_settings)
    valid_seed = training.derived_seed(settings["seed"], 1)
    x_valid = binarize(valid[0], Generator(valid_seed)) if dynamic else valid[0]
    progress, steps = training.Progress(), -(-len(unlabelled) // batch_size)
    parts = Tensor(module_for_device(device).zeros(2, model.classifier.parameters()[0].dtype))
    take_step = training.Stepper(model, optimizer, _step_loss(model, rng, batch_size, parts), 2 * batch_size,
                                 graph=graph, clip=settings["clip"])
    for epoch in range(first, epochs + 1):
        started, sums = time.perf_counter(), numpy.zeros(2)
        for i, xu in enumerate(batches(unlabelled, batch_size, rng=rng), 1):
            pick = rng.integers(0, len(x_l), (batch_size,))
            xl = x_l[pick]
            if dynamic:
                xl, xu = binarize(xl, rng), binarize(xu, rng)
            take_step(numpy.block([[xl, rows_l[pick]], [xu, no_rows[:len(xu)]]]))  # (the unlabelled rows' labels unread)
            values = parts.numpy().tolist()
            if not all(map(math.isfinite, values)):
                raise training.TrainingError(f"the loss became {values[0] + values[1]} at epoch {epoch}, step {step}; "
                                             f"{training.kept(out, epoch)}")
            step, sums = step + 1, sums + values
            progress.update(epoch, epochs, i, steps, sums.sum() / i, started)
        training.check_parameters(model, optimizer, out, epoch, step)
        scores = evaluate(model, x_valid, valid[1], Generator(valid_seed))
        rows.append([epoch, step, f"{sums[0] / i:.4f}", f"{sums[1] / i:.4f}", f"{scores['unlabelled_bound']:.4f}",
                     f"{scores['accuracy']:.4f}", f"{time.perf_counter() - started:.1f}", note])
        note = ""
        training.save_checkpoint(os.path.join(out, training.CHECKPOINT), model, optimizer, rng, epoch, step, settings,
                                 rows)
        training._write_csv_atomic(os.path.join(out, training.METRICS), rows)
        log(f"epoch {epoch}: labelled loss {sums[0] / i:.3f}, unlabelled −U {sums[1] / i:.3f}  valid U "
            f"{scores['unlabelled_bound']:.3f} nats, accuracy {100 * scores['accuracy']:.2f}%")
    skipped = _write_pictures(model, x_valid, out, training.derived_seed(settings["seed"], 2))
    log(f"wrote {os.path.join(out, '')}: {training.CHECKPOINT} (epoch {max(epochs, first - 1)}), {training.METRICS}"
        + (f" (no pictures: {skipped})" if skipped else ", reconstructions.png, samples.png"))


def _write_pictures(model, x, out, seed, n=32):
    """reconstructions.png (rows of ``n`` images of x, then ``reconstruct``'s) and samples.png (64 of ``sample``, the
    classes from p(y)), as training.write_pictures; nothing for rows that are no square images: returns why."""
    from minivae.png import image_grid, paired_rows, write_png
    from minivae.random import Generator
    if math.isqrt(x.shape[1]) ** 2 != x.shape[1]:
        return f"{x.shape[1]} values a row are no square image"
    recon = model.reconstruct(as_tensor(x[:n], device=model.device)).numpy()
    write_png(os.path.join(out, "reconstructions.png"), image_grid(paired_rows(x[:n], recon)))
    write_png(os.path.join(out, "samples.png"), image_grid(model.sample(64, Generator(seed)).numpy()))
    return None


_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _find(folder, name):
    for candidate in (name, name + ".gz", name.replace("-idx", ".idx"), name.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    raise DataFormatError(f"{folder}: no {name} (or .gz) found")


def load_labelled(folder):
    """{"train": (images, labels), "test": (images, labels)} from a folder of MNIST-style IDX files (MNIST,
    Fashion-MNIST: train-/t10k-images-idx3-ubyte and -labels-idx1-ubyte, gzip or raw): images as
    minivae.data.load_images reads them (float32 in [0, 1], (n, pixels)), labels int64 (n,), checked to be one a
    image and non-negative integers."""
    out = {}
    for split, (images, labels) in _FILES.items():
        x = load_images(_find(folder, images))
        path = _find(folder, labels)
        y = read_idx(path)
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise DataFormatError(f"{path}: not an IDX file of integer labels (shape {y.shape}, {y.dtype})")
        if len(y) != len(x):
            raise DataFormatError(f"{path}: {len(y)} labels for {len(x)} images")
        if len(y) and y.min() < 0:
            raise DataFormatError(f"{path}: negative labels")
        out[split] = (x, y.astype(numpy.int64))
    return out
