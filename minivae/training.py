"""The training loop behind ``minivae train``: seeded, resumable, with atomic checkpoints."""
import csv
import json
import math
import os
import sys
import time

import numpy

from minivae import objectives
from minivae._backend import module_for_device, to_numpy
from minivae._io import load_npz, save_npz_atomic, write_atomic
from minivae.data import batches, binarize
from minivae.engine import no_grad, tensor
from minivae.models import build
from minivae.optim import Adam, clip_grad_norm_
from minivae.png import image_grid, write_png
from minivae.random import Generator

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.csv"


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, an incompatible checkpoint); the message says why."""


def save_checkpoint(path, model, optimizer, rng, epoch, step):
    """Everything as NumPy arrays (copied from the GPU where the model is there), so a checkpoint
    loads on either device."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    arrays.update({
        "meta/kind": numpy.array(model.kind), "meta/config": numpy.array(json.dumps(model.config)),
        "meta/epoch": numpy.array(epoch), "meta/step": numpy.array(step),
        "meta/rng": numpy.array([rng.seed, rng.counter], dtype=numpy.uint64),
    })
    if getattr(model, "baseline", None) is not None:
        arrays["meta/baseline"] = numpy.array(to_numpy(model.baseline), dtype=numpy.float64)
    save_npz_atomic(path, arrays)


def load_checkpoint(path, device="cpu"):
    """(model on ``device``, arrays) from a checkpoint file, with a clear error for anything else."""
    arrays = load_npz(path)
    if "meta/kind" not in arrays:
        raise TrainingError(f"{path} is not a minivae checkpoint")
    model = build(str(arrays["meta/kind"]), json.loads(str(arrays["meta/config"])), rng=Generator(0))
    model.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("model/")})
    if "meta/baseline" in arrays:
        model.baseline = numpy.float64(arrays["meta/baseline"])
    return model.to(device), arrays


def evaluate(model, x, seed, batch_size=500):
    """Mean single-sample ELBO (nats per example) over ``x``, with its own fixed noise. The sum
    stays on the model's device (in float64) until the one copy of the result at the end."""
    rng, device = Generator(seed), model.device
    total = module_for_device(device).zeros((), numpy.float64)
    with no_grad():
        for xb in batches(x, batch_size):
            total = total + objectives.elbo(model, tensor(xb, device=device), rng).data.sum().astype(numpy.float64)
    return float(to_numpy(total)) / len(x)


def _write_csv_atomic(path, rows):
    write_atomic(path, lambda f: csv.writer(f).writerows(rows), text=True)


class Progress:
    """One status line: epoch, step, loss, ETA; redrawn in place on a terminal."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.tty = stream, stream.isatty()

    def update(self, epoch, epochs, step, steps, loss, started):
        if not self.tty and step != steps:
            return
        elapsed = time.perf_counter() - started
        eta = elapsed / max(step, 1) * (steps - step)
        line = f"epoch {epoch}/{epochs}  step {step}/{steps}  loss {loss:8.3f}  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and step == steps:
            self.stream.write("\n")
        self.stream.flush()


def kl_weight(epoch, warmup_epochs):
    """β for ``epoch`` (1-based): rises linearly to 1 over the first ``warmup_epochs`` (KL warm-up,
    Bowman et al. 2016; Sønderby et al. 2016), 1 throughout when that is 0."""
    return min(1.0, epoch / warmup_epochs) if warmup_epochs else 1.0


def train(model, data, out, *, epochs, batch_size, lr, seed, resume=False, clip=None, dynamic=False, warmup_epochs=0,
          log=print):
    """Train ``model`` on data["train"], evaluating data["valid"] after each epoch.

    Writes to the folder ``out``: checkpoint.npz (after each epoch, atomically), metrics.csv,
    reconstructions.png and samples.png. With ``resume``, continues from out/checkpoint.npz
    and reaches the same parameters as an uninterrupted run with the same seed. With ``dynamic``,
    each batch is binarized afresh (pixel = 1 with probability its grey level). The KL term is
    weighted by kl_weight(epoch, warmup_epochs); the validation ELBO is always the full bound.

    The model trains on its own device (``model.to("cuda")`` first for the GPU): each batch is
    copied there, and the one copy back per step is the loss value, fetched once the step is queued.
    """
    os.makedirs(out, exist_ok=True)
    ckpt_path, metrics_path = os.path.join(out, CHECKPOINT), os.path.join(out, METRICS)
    optimizer, rng = Adam(model.parameters(), lr=lr), Generator(seed)
    start_epoch, step, rows = 1, 0, [["epoch", "step", "train_loss", "valid_elbo", "temperature", "kl_weight", "seconds"]]
    if resume:
        saved, arrays = load_checkpoint(ckpt_path)
        if saved.kind != model.kind or saved.config != model.config:
            raise TrainingError(f"{ckpt_path} holds a {saved.kind} model with {saved.config}, "
                                f"not this {model.kind} model with {model.config}")
        model.load_state_dict(saved.state_dict())
        if hasattr(model, "baseline"):
            model.baseline = saved.baseline
        optimizer.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("optim/")})
        rng = Generator(int(arrays["meta/rng"][0]), int(arrays["meta/rng"][1]))
        start_epoch, step = int(arrays["meta/epoch"]) + 1, int(arrays["meta/step"])
        if os.path.exists(metrics_path):
            with open(metrics_path, newline="") as f:
                rows = list(csv.reader(f))[:start_epoch]
    elif os.path.exists(ckpt_path):
        raise TrainingError(f"{out} already holds a checkpoint: pass --resume, or choose another output folder")

    device = model.device
    steps_per_epoch = -(-len(data["train"]) // batch_size)
    progress = Progress()
    for epoch in range(start_epoch, epochs + 1):
        started, total, count = time.perf_counter(), 0.0, 0
        beta = kl_weight(epoch, warmup_epochs)
        for i, xb in enumerate(batches(data["train"], batch_size, rng=rng), 1):
            if dynamic:
                xb = binarize(xb, rng)
            loss = model.loss(tensor(xb, device=device), rng, step=step, beta=beta)
            optimizer.zero_grad()
            loss.backward()
            if clip:
                clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingError(f"the loss became {value} at epoch {epoch}, step {step}; "
                                    f"the last good checkpoint is kept in {ckpt_path}")
            step += 1
            total, count = total + value * len(xb), count + len(xb)
            progress.update(epoch, epochs, i, steps_per_epoch, total / count, started)
        valid = evaluate(model, data["valid"], seed + 1)
        tau = model.temperature(step) if hasattr(model, "temperature") else ""
        rows.append([epoch, step, f"{total / count:.4f}", f"{valid:.4f}", tau, beta, f"{time.perf_counter() - started:.1f}"])
        save_checkpoint(ckpt_path, model, optimizer, rng, epoch, step)
        _write_csv_atomic(metrics_path, rows)
        log(f"epoch {epoch}: train loss {total / count:.3f}  valid ELBO {valid:.3f} nats")
    write_pictures(model, data["valid"], out, seed)
    return model


def write_pictures(model, x, out, seed, n=32):
    """reconstructions.png (rows of originals, then their mean reconstructions) and samples.png."""
    rng = Generator(seed + 2)
    with no_grad():
        originals = x[:n]
        q = model.posterior(tensor(originals, device=model.device))
        z = q.rsample(rng=rng) if q.has_rsample else q.sample(rng=rng)
        recon = model.likelihood(z).mean.numpy()
        paired = numpy.concatenate([numpy.concatenate([originals[i:i + 8], recon[i:i + 8]]) for i in range(0, n, 8)])
        write_png(os.path.join(out, "reconstructions.png"), image_grid(paired))
        write_png(os.path.join(out, "samples.png"), image_grid(model.sample(64, rng).numpy()))
