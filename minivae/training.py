"""The training loop behind ``minivae train``: seeded, resumable, with atomic checkpoints."""
import contextlib
import csv
import hashlib
import inspect
import json
import math
import os
import sys
import time

import numpy

from minivae import objectives
from minivae._backend import get_float32_matmul_precision, module_for_device, set_float32_matmul_precision, to_numpy
from minivae._io import folder_lock, load_npz, remove_stale_temporaries, save_npz_atomic, write_atomic
from minivae.data import batches, binarize
from minivae.engine import as_tensor, no_grad
from minivae.models import COUNT_LIKELIHOODS, _number, _size, build
from minivae.optim import Adam, clip_grad_norm_
from minivae.plan import compile_step
from minivae.png import image_grid, paired_rows, write_png
from minivae.random import Generator

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.csv"
FORMAT_VERSION = 2  # of checkpoint.npz; raised whenever a reader of the old format would misread the new
# (2: the KL warm-up starts at β = 0; format 1's at 1/W: a run resumed mid-warm-up would take another β)
COLUMNS = ["epoch", "step", "train_loss", "valid_elbo", "temperature", "kl_weight", "seconds", "settings_changed"]
_REQUIRED = ("meta/kind", "meta/config", "meta/epoch", "meta/step", "meta/rng")


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, an incompatible checkpoint); the message says why."""


class CheckpointError(TrainingError):
    """A checkpoint file cannot be read: truncated, corrupt, incomplete, of another kind or newer."""


def save_checkpoint(path, model, optimizer, rng, epoch, step, settings=None, metrics=None):
    """Everything as NumPy arrays (copied from the GPU where the model is there), so a checkpoint
    loads on either device. ``settings`` (what fixes the trajectory) and ``metrics`` (the rows of
    metrics.csv so far) travel in the same file, so that one rename commits the epoch."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optim/{k}": v for k, v in optimizer.state_dict().items()})
    arrays.update({
        "meta/format": numpy.array(FORMAT_VERSION),
        "meta/kind": numpy.array(model.kind), "meta/config": numpy.array(json.dumps(model.config)),
        "meta/epoch": numpy.array(epoch), "meta/step": numpy.array(step),
        "meta/rng": numpy.array([rng.seed, rng.counter], dtype=numpy.uint64),
        "meta/settings": numpy.array(json.dumps(settings or {})),
        "meta/metrics": numpy.array(json.dumps(metrics or [])),
    })
    if getattr(model, "baseline", None) is not None:
        arrays["meta/baseline"] = numpy.array(to_numpy(model.baseline), dtype=numpy.float64)
    save_npz_atomic(path, arrays)


def _is_integer(array, shape=()):
    return isinstance(array, numpy.ndarray) and array.dtype.kind in "iu" and array.shape == shape


def _json_entry(arrays, key, path, kind, default):
    """meta/settings or meta/metrics decoded, or ``default`` when absent; a CheckpointError naming
    the file unless it is JSON of ``kind``: the readers (--resume's comparison, metrics.csv) trust it."""
    if key not in arrays:
        return default
    try:
        value = json.loads(str(arrays[key])) if arrays[key].shape == () else None
    except ValueError:
        value = None
    if not isinstance(value, kind):
        raise CheckpointError(f"{path} has a malformed {key} (not a JSON {'object' if kind is dict else 'list'})")
    return value


def _scalar(value):
    return value is None or isinstance(value, (str, int, float))


def _format(arrays):
    return int(arrays["meta/format"]) if "meta/format" in arrays else 0  # 0: written before formats were numbered


def read_checkpoint(path):
    """The arrays of a checkpoint, checked: a CheckpointError naming the file for anything that
    is not a complete minivae checkpoint of a format this version reads. Its metadata is checked
    here too (format, epoch and step integers, rng a pair, settings a JSON object, metrics a JSON list
    of rows), before any caller acts on it: --resume rewrites metrics.csv from it."""
    try:
        arrays = load_npz(path)
    except (ValueError, OSError) as e:
        raise CheckpointError(str(e)) from None
    if "meta/kind" not in arrays:
        raise CheckpointError(f"{path} is not a minivae checkpoint")
    if "meta/format" in arrays and not _is_integer(arrays["meta/format"]):
        raise CheckpointError(f"{path} has a malformed meta/format (not an integer): not a checkpoint minivae wrote")
    version = _format(arrays)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} is in checkpoint format {version}, written by a newer minivae; "
                              f"this one reads formats up to {FORMAT_VERSION}: upgrade minivae")
    missing = [k for k in _REQUIRED if k not in arrays]
    if missing:
        raise CheckpointError(f"{path} is an incomplete checkpoint: missing {', '.join(missing)}")
    for key, shape in (("meta/epoch", ()), ("meta/step", ()), ("meta/rng", (2,))):
        if not _is_integer(arrays[key], shape) or (arrays[key] < 0).any():
            raise CheckpointError(f"{path} has a malformed {key} ({arrays[key].dtype} of shape {arrays[key].shape})")
    _json_entry(arrays, "meta/settings", path, dict, {})
    rows = _json_entry(arrays, "meta/metrics", path, list, [COLUMNS])
    if not all(isinstance(row, list) and all(map(_scalar, row)) for row in rows):  # (none: saved before any epoch)
        raise CheckpointError(f"{path} has a malformed meta/metrics (not a list of rows of values)")
    return arrays


def load_checkpoint(path, device="cpu"):
    """(model on ``device``, arrays) from a checkpoint file, with a one-line CheckpointError naming
    the file for anything else."""
    arrays = read_checkpoint(path)
    try:
        model = build(str(arrays["meta/kind"]), json.loads(str(arrays["meta/config"])), rng=Generator(0))
        saved = {k[6:]: v for k, v in arrays.items() if k.startswith("model/")}
        floating = {v.dtype for v in saved.values() if v.dtype.kind == "f"}
        if len(floating) == 1:  # a model cast (``model.double()``) before it was saved is rebuilt in its dtype
            model.to(floating.pop())
        model.load_state_dict(saved)
        if "meta/baseline" in arrays:
            model.baseline = numpy.float64(arrays["meta/baseline"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path} does not hold a usable model ({type(e).__name__}: {e})") from None
    return model.to(device), arrays


def derived_seed(seed, k):
    """The seed of a run's k-th auxiliary stream (1: validation, 2: pictures), seed + k wrapped into
    the Generator's [0, 2**64): the same as seed + k for every seed but the last k, which would
    otherwise fail only after an epoch of training."""
    return (seed + k) % 2 ** 64


def _non_finite(model, optimizer):
    """The name of the first parameter, optimizer buffer or baseline that holds NaN or infinity, or
    None. An epoch is committed only if this is None: the checkpoint is what --resume continues from."""
    arrays = {f"parameter {k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer state {k}": v for k, v in optimizer.state_dict().items()})
    if getattr(model, "baseline", None) is not None:
        arrays["the reinforce baseline"] = to_numpy(model.baseline)
    for name, value in arrays.items():
        value = numpy.asarray(value)
        if value.dtype.kind in "fc" and not numpy.isfinite(value).all():
            return name
    return None


def data_fingerprint(data, splits=("train", "valid")):
    """SHA-256 (first 16 hex digits) of the ``splits`` of ``data`` (the training and validation images), shapes
    included: what --resume compares to know that it continues on the same data. A split may be a tuple of arrays
    (images and their labels: the labelled models'), each hashed in turn."""
    digest = hashlib.sha256()
    for split in splits:
        for x in data[split] if isinstance(data[split], tuple) else (data[split],):
            x = numpy.ascontiguousarray(x)
            digest.update(f"{split}{x.shape}{x.dtype}".encode())
            digest.update(memoryview(x).cast("B"))
    return digest.hexdigest()[:16]


def _flag(name):
    """The command-line flag behind a setting or a model config entry."""
    special = {"x_dim": "--data (pixels an image)", "data": "--data or --limit (the images' fingerprint)",
               "n_classes": "--data (its labels' classes)", "labelled": "--labels",
               "alpha": "--labels or --data (α = 0.1·N/N_l, the classifier's weight)",
               "labelled_data": "--labels, --seed or --data (the labelled images drawn: their fingerprint)"}
    return special.get(name, "--" + name.replace("_", "-"))


# what a setting recorded only when it is not its default (so that older checkpoints resume as they did) stands for
SETTING_DEFAULTS = {"tf32": False, "beta": 1.0}


def recorded_settings(settings, **optional):
    """``settings`` as the checkpoint will give them back (Python numbers and lists: JSON has no NumPy int64), with
    each of ``optional`` (names of SETTING_DEFAULTS) only when it is not its default."""
    settings = dict(settings)
    for name, value in optional.items():
        if value != SETTING_DEFAULTS[name]:  # see SETTING_DEFAULTS
            settings[name] = value
    return json.loads(json.dumps(settings))


@contextlib.contextmanager
def tf32_for(model, tf32):
    """The block with float32 matrix products in TF32 when ``tf32`` (``set_float32_matmul_precision("high")``, the
    precision before restored after it); a TrainingError, before anything is made, for a model not on the GPU."""
    if tf32 and model.device != "cuda":
        raise TrainingError("--tf32 is for a model on the GPU (--device cuda): NumPy's products have no TF32")
    precision = get_float32_matmul_precision()
    try:
        if tf32:
            set_float32_matmul_precision("high")
        yield
    finally:
        set_float32_matmul_precision(precision)


def _constructor_defaults(model):
    """A model config's entries left out when they hold the constructor's default (``prior``, ``arch``, …): those defaults."""
    parameters = inspect.signature(type(model)).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _differences(recorded, now, defaults):
    """The flags whose values differ, as "--flag (checkpoint A, now B)"; an entry left out of either side is its
    entry in ``defaults`` (shown so: "--beta (checkpoint 0.5, now 1.0)", not "now None")."""
    keys = [*now, *(k for k in recorded if k not in now)]  # a setting recorded only when on (--tf32) counts too
    pairs = ((k, recorded.get(k, defaults.get(k)), now.get(k, defaults.get(k))) for k in keys)
    return [f"{_flag(k)} (checkpoint {old}, now {new})" for k, old, new in pairs if old != new]


def evaluate(model, x, seed, batch_size=500):
    """Mean single-sample ELBO (nats per example) over ``x``, with its own fixed noise. The sum
    stays on the model's device (in float64) until the one copy of the result at the end."""
    rng, device = Generator(seed), model.device
    total = module_for_device(device).zeros((), numpy.float64)
    with no_grad():
        for xb in batches(x, batch_size):
            total = total + objectives.elbo(model, as_tensor(xb, device=device), rng).data.sum().astype(numpy.float64)
    return float(to_numpy(total)) / len(x)


def _write_csv_atomic(path, rows):
    write_atomic(path, lambda f: csv.writer(f).writerows(rows), text=True)


class Progress:
    """One status line on stderr, redrawn in place on a terminal; elsewhere (a log file) a line
    ``lines`` times a pass, the last at its end."""

    def __init__(self, stream=None, lines=1):
        self.stream = stream or sys.stderr  # looked up now, not at import: it may have been redirected since
        self.tty, self.lines = self.stream.isatty(), lines

    def show(self, text, step, steps, started):
        if not self.tty and step != steps and (step * self.lines) // steps == ((step - 1) * self.lines) // steps:
            return
        elapsed = time.perf_counter() - started
        eta = elapsed / max(step, 1) * (steps - step)
        line = f"{text}  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        if self.tty and step == steps:
            self.stream.write("\n")
        self.stream.flush()

    def update(self, epoch, epochs, step, steps, loss, started):
        self.show(f"epoch {epoch}/{epochs}  step {step}/{steps}  loss {loss:8.3f}", step, steps, started)


def kl_weight(epoch, warmup_epochs, beta=1.0):
    """The KL's weight B·min(1, (epoch − 1)/W) for ``epoch`` (1-based), W = ``warmup_epochs`` and B = ``beta``: 0 in the
    first epoch, rising linearly to B, reached at epoch W + 1 (KL warm-up from 0, Bowman et al. 2016; Sønderby et al.
    2016); B throughout when W is 0. B is the β-VAE's weight (Higgins et al. 2017), 1 for the ELBO. Real numbers (a
    fractional epoch anneals within one), finite, epoch ≥ 1, W ≥ 0 and B > 0: a negative W, or an epoch before the
    first, would make the weight negative (the KL rewarded); B = 0 would drop the KL for good."""
    epoch = _number("epoch", epoch, lambda v: v >= 1, ">= 1 (epochs count from 1)")
    warmup_epochs = _number("warmup_epochs", warmup_epochs, lambda v: v >= 0, ">= 0")
    beta = _number("beta", beta, lambda v: v > 0, "> 0")
    return beta * min(1.0, (epoch - 1) / warmup_epochs) if warmup_epochs else beta


def train(model, data, out, *, epochs, batch_size, lr, seed, resume=False, clip=None, dynamic=False, warmup_epochs=0,
          override_settings=False, graph=False, tf32=False, beta=1.0, log=print):
    """Train ``model`` on data["train"], evaluating data["valid"] after each epoch.

    Writes to the folder ``out``, which it locks for its own use (``out``/.lock, holding the pid):
    checkpoint.npz after each epoch, atomically, holding with the parameters the settings that fix
    the trajectory (``data_fingerprint(data)``, lr, batch size, seed, clip, dynamic binarization,
    warm-up) and the metrics so far; metrics.csv, rewritten from it; reconstructions.png and
    samples.png at the end. A kill at any instant loses at most the epoch in flight.

    With ``resume``, continues from out/checkpoint.npz and reaches the same parameters and
    metrics as an uninterrupted run, or refuses (a TrainingError naming the flags) when a setting
    differs, unless ``override_settings``: then the change is recorded in metrics.csv. With
    ``dynamic``, each batch is binarized afresh (pixel = 1 with probability its grey level). The
    KL term is weighted by kl_weight(epoch, warmup_epochs, beta): ``beta`` B > 0 the β-VAE's weight (1: the ELBO), which
    a warm-up ramps up to; the validation ELBO is always the full bound (β = 1).

    The model trains on its own device (``model.to("cuda")`` first for the GPU): each batch is
    copied there, and the one copy back per step is the loss value, fetched once the step is queued.

    With ``graph``, the first full batch's step is recorded (minivae.plan.compile_step) and every
    later full batch replays it (on the GPU, as one CUDA graph); a last, smaller batch takes the eager
    step. The parameters, metrics and checkpoints are the same, bit for bit, on the CPU.

    With ``tf32`` (a model on the GPU only), float32 matrix products use TF32 tensor cores for the run
    (``minivae.set_float32_matmul_precision("high")``, restored after it): a setting of the run, since it
    changes the trajectory, so a resume must repeat it.
    """
    # checked before anything is made, and made Python numbers, which the settings are recorded as (JSON has no
    # NumPy int64): a negative warm-up would weight the KL by β < 0, a clip < 0 turn the gradient around, and a clip
    # of 0 would mean no clipping (torch's clips to zero); 0 epochs would train nothing but say it wrote a checkpoint
    epochs, batch_size = _size("epochs", epochs), _size("batch_size", batch_size)
    seed, warmup_epochs = _size("seed", seed, 0), _size("warmup_epochs", warmup_epochs, 0)
    lr = _number("lr", lr, lambda v: v > 0, "> 0")
    beta = _number("beta", beta, lambda v: v > 0, "> 0 (the KL's weight; 1: the ELBO)")
    clip = None if clip is None else _number("clip", clip, lambda v: v > 0, "> 0 (or None: no clipping)")
    for split in ("train", "valid"):  # (an empty one was a TypeError from memoryview in data_fingerprint)
        if len(data[split]) == 0:
            raise ValueError(f"data[{split!r}] holds no images: training needs both splits")
    if graph and model.device == "cuda" and getattr(model, "estimator", "reinforce") != "reinforce" \
            and model.anneal_rate > 0 and model.tau0 > model.tau_min:
        raise TrainingError("--graph on the GPU replays one CUDA graph, whose temperature is fixed when it is captured; "
                            "this model anneals τ: pass --anneal-rate 0 or --tau0 equal to --tau-min, or train without --graph")
    if graph and getattr(model, "rebar_eta", None) == "auto":
        raise TrainingError("--graph records one step to replay it, and rebar_eta='auto' tunes η by two extra backward "
                            "passes a step (autograd.grad), which a recording refuses: give η a number or train without "
                            "--graph")
    settings = recorded_settings(dict(data=data_fingerprint(data), lr=lr, batch_size=batch_size, seed=seed, clip=clip,
                                      dynamic_binarization=dynamic, warmup_epochs=warmup_epochs), tf32=tf32, beta=beta)
    with tf32_for(model, tf32), run_folder(out):
        _train_locked(model, data, out, settings, epochs=epochs, resume=resume, override_settings=override_settings,
                      graph=graph, log=log)
    return model


@contextlib.contextmanager
def run_folder(out):
    """A training run's folder ``out`` for the block: made with its missing parents, locked, cleared of stale
    temporaries, NumPy's floating-point warnings off; a run that fails before its first checkpoint leaves no empty
    folder it made."""
    created = _missing_folders(out)
    os.makedirs(out, exist_ok=True)
    try:
        # NumPy's floating-point warnings off: a value that overflows to inf or NaN is caught by the
        # checks of the loss, the parameters and the validation ELBO, which stop the run in one line;
        # the warnings would only add lines (and source excerpts) of noise before it on stderr
        with folder_lock(out), numpy.errstate(over="ignore", invalid="ignore", divide="ignore"):
            remove_stale_temporaries(out)
            yield
    except BaseException:
        # a run that failed before its first checkpoint leaves no empty folder: neither OUT nor the
        # parents it made for it (only those: a folder that was there before, or that is not empty, stays)
        for folder in created:
            try:
                os.rmdir(folder)
            except OSError:  # not empty (the run wrote there, or someone else did): keep it and its parents
                break
        raise


def _missing_folders(out):
    """The folders that os.makedirs(out) would create, OUT first, then each parent up to the first
    that exists."""
    missing, folder = [], os.path.abspath(os.fspath(out))
    while not os.path.isdir(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


def start_run(out, model, optimizer, rng, settings, columns=COLUMNS, *, resume, override_settings):
    """Where the run in ``out`` starts: (Generator, first epoch, step, metrics rows, note). A new run starts from
    ``rng`` at epoch 1, step 0, the rows the header ``columns``; refused when ``out`` already holds a checkpoint. With
    ``resume``, from out/checkpoint.npz: its parameters, optimizer state and baseline loaded into ``model`` and
    ``optimizer`` (in place), its Generator state, epoch, step and metrics (metrics.csv rewritten from them: a kill may
    have cut it), so that the run goes on exactly as an uninterrupted one. Refused (a TrainingError naming the flags)
    unless the checkpoint holds a model of ``model``'s kind and config and ``settings`` equal its own; with
    ``override_settings`` a change of settings goes on, and ``note`` names it (the metrics' settings_changed)."""
    ckpt_path = os.path.join(out, CHECKPOINT)
    if not resume:
        if os.path.exists(ckpt_path):
            raise TrainingError(f"{out} already holds a checkpoint: continue that run with --resume (and a larger "
                                "--epochs), or start a new one with another --out")
        return rng, 1, 0, [columns], ""
    if not os.path.exists(ckpt_path):  # e.g. a run killed in its first epoch
        raise TrainingError(f"{out} holds no checkpoint to resume: start the run without --resume")
    saved, arrays = load_checkpoint(ckpt_path)
    if saved.kind != model.kind:
        raise TrainingError(f"{ckpt_path} holds a {saved.kind} model, not a {model.kind} one (--model)")
    changed = _differences(saved.config, model.config, _constructor_defaults(model))
    if changed:
        raise TrainingError(f"{ckpt_path} holds a {saved.kind} model of another shape: {'; '.join(changed)}")
    recorded = _json_entry(arrays, "meta/settings", ckpt_path, dict, {})  # checked by read_checkpoint
    changed = _differences(recorded, settings, SETTING_DEFAULTS)
    warmup = recorded.get("warmup_epochs")
    if _format(arrays) < 2 and warmup == settings.get("warmup_epochs") and int(arrays["meta/epoch"]) < warmup:
        changed.append(f"--warmup-epochs (checkpoint's β = epoch/{warmup}, now (epoch − 1)/{warmup}: "
                       "written by an older minivae, mid-warm-up)")
    if changed and not override_settings:
        raise TrainingError(f"--resume would not continue {ckpt_path} exactly, its settings differ: {'; '.join(changed)}. "
                            "Resume with the checkpoint's values, or pass --override-settings to go on with these "
                            "(the change is recorded in metrics.csv)")
    try:
        model.load_state_dict(saved.state_dict())
        if hasattr(model, "baseline"):
            model.baseline = saved.baseline
        optimizer.load_state_dict({k[6:]: v for k, v in arrays.items() if k.startswith("optim/")})
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{ckpt_path} does not hold a usable optimizer state ({type(e).__name__}: {e})") from None
    rng = Generator(int(arrays["meta/rng"][0]), int(arrays["meta/rng"][1]))
    rows = _json_entry(arrays, "meta/metrics", ckpt_path, list, [columns])  # checked by read_checkpoint
    _write_csv_atomic(os.path.join(out, METRICS), rows)
    return rng, int(arrays["meta/epoch"]) + 1, int(arrays["meta/step"]), rows, "; ".join(changed)


def kept(out, epoch):
    """What a run stopped in ``epoch`` keeps: the last epoch committed, if any (for its error message)."""
    path = os.path.join(out, CHECKPOINT)
    return f"the last good checkpoint (epoch {epoch - 1}) is kept in {path}" if os.path.exists(path) else \
        "no checkpoint was written"


def check_parameters(model, optimizer, out, epoch, step):
    """A TrainingError unless the parameters, optimizer state and baseline are finite: the loss was checked before
    each update, not after the last, which may have made them NaN. Run before evaluating (a NaN model may fail or warn
    there) and before the epoch is committed, so that no checkpoint that could not be continued is written."""
    bad = _non_finite(model, optimizer)
    if bad is not None:
        raise TrainingError(f"the parameters became NaN or infinite at epoch {epoch} ({bad}, after step {step}); "
                            f"{kept(out, epoch)}")


class Stepper:
    """The training step of ``loss_fn(batch, **scalars)``: forward, backward, gradients clipped to the norm ``clip``
    if given, ``optimizer.step()``; called with a batch (NumPy or a tensor, copied to the model's device) and the
    scalars, it returns the loss tensor. With ``graph``, the first batch of ``rows`` rows is recorded
    (minivae.plan.compile_step, its scalars live; on the GPU captured as one CUDA graph) and every later batch of
    ``rows`` rows replays it: the same numbers bit for bit on the CPU. A batch of another size (an epoch's last)
    takes the eager step."""

    def __init__(self, model, optimizer, loss_fn, rows, *, graph=False, clip=None):
        self.model, self.optimizer, self.loss_fn, self.rows = model, optimizer, loss_fn, rows
        self.graph, self.clip, self.plan = graph, clip, None

    def __call__(self, batch, **scalars):
        if self.graph and len(batch) == self.rows:
            if self.plan is not None:
                return self.plan.step(batch, **scalars)
            self.plan = compile_step(self.model, self.optimizer, self.loss_fn, as_tensor(batch, device=self.model.device),
                                     clip=self.clip, **scalars)
            if self.model.device == "cuda":
                self.plan.capture()
            return self.plan.loss
        loss = self.loss_fn(as_tensor(batch, device=self.model.device), **scalars)
        self.optimizer.zero_grad()
        loss.backward()
        if self.clip:
            clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        return loss


def _train_locked(model, data, out, settings, *, epochs, resume, override_settings, graph, log):
    ckpt_path, metrics_path = os.path.join(out, CHECKPOINT), os.path.join(out, METRICS)
    lr, batch_size, seed = settings["lr"], settings["batch_size"], settings["seed"]
    clip, dynamic, warmup_epochs = settings["clip"], settings["dynamic_binarization"], settings["warmup_epochs"]
    optimizer = Adam(model.parameters(), lr=lr)
    rng, start_epoch, step, rows, note = start_run(out, model, optimizer, Generator(seed), settings, resume=resume,
                                                   override_settings=override_settings)
    steps_per_epoch = -(-len(data["train"]) // batch_size)
    progress = Progress()
    take_step = Stepper(model, optimizer, lambda x, step, beta: model.loss(x, rng, step=step, beta=beta), batch_size,
                        graph=graph, clip=clip)
    for epoch in range(start_epoch, epochs + 1):
        started, total, count = time.perf_counter(), 0.0, 0
        beta = kl_weight(epoch, warmup_epochs, settings.get("beta", 1.0))
        for i, xb in enumerate(batches(data["train"], batch_size, rng=rng), 1):
            if dynamic:
                xb = binarize(xb, rng)
            value = take_step(xb, step=step, beta=beta).item()
            if not math.isfinite(value):
                raise TrainingError(f"the loss became {value} at epoch {epoch}, step {step}; {kept(out, epoch)}")
            step += 1
            total, count = total + value * len(xb), count + len(xb)
            progress.update(epoch, epochs, i, steps_per_epoch, total / count, started)
        check_parameters(model, optimizer, out, epoch, step)
        valid = evaluate(model, data["valid"], derived_seed(seed, 1))
        if not math.isfinite(valid):
            raise TrainingError(f"the validation ELBO became {valid} at epoch {epoch}, step {step}; {kept(out, epoch)}")
        tau = model.temperature(step) if hasattr(model, "temperature") else ""
        rows.append([epoch, step, f"{total / count:.4f}", f"{valid:.4f}", tau, beta, f"{time.perf_counter() - started:.1f}", note])
        note = ""
        save_checkpoint(ckpt_path, model, optimizer, rng, epoch, step, settings, rows)  # the commit point of the epoch
        _write_csv_atomic(metrics_path, rows)
        log(f"epoch {epoch}: train loss {total / count:.3f}  valid ELBO {valid:.3f} nats")
    skipped = write_pictures(model, data["valid"], out, seed)  # its stream: derived_seed(seed, 2)
    log(f"wrote {os.path.join(out, '')}: {CHECKPOINT} (epoch {max(epochs, start_epoch - 1)}), {METRICS}"
        + (f" (no pictures: {skipped})" if skipped else ", reconstructions.png, samples.png"))


def write_pictures(model, x, out, seed, n=32):
    """reconstructions.png (rows of originals, then their mean reconstructions) and samples.png; or, for data that are
    no square images (a count likelihood's rows, or a width that is no square), nothing: returns why (None when
    written)."""
    if getattr(model, "likelihood_kind", None) in COUNT_LIKELIHOODS:
        return f"the {model.likelihood_kind} likelihood models counts, not images"
    if math.isqrt(x.shape[1]) ** 2 != x.shape[1]:
        return f"{x.shape[1]} values a row are no square image"
    rng = Generator(derived_seed(seed, 2))
    with no_grad():
        originals = x[:n]
        q = model.posterior(as_tensor(originals, device=model.device))
        z = q.rsample(rng=rng) if q.has_rsample else q.sample(rng=rng)
        recon = model.likelihood(z).mean.numpy()
        write_png(os.path.join(out, "reconstructions.png"), image_grid(paired_rows(originals, recon)))
        write_png(os.path.join(out, "samples.png"), image_grid(model.sample(64, rng).numpy()))
