"""minivae.training.train called from Python: its bookkeeping (the train loss of an epoch is the mean over its
images, a last smaller batch weighted by its size) and its arguments, checked before anything is written."""
import csv
import json

import numpy as np
import pytest

from minivae.models import GaussianVAE
from minivae.random import Generator
from minivae.training import load_checkpoint, train

_RNG = np.random.default_rng(0)
DATA = {"train": (_RNG.random((130, 16)) < 0.4).astype(np.float32), "valid": (_RNG.random((20, 16)) < 0.4).astype(np.float32)}
ARGS = dict(epochs=2, batch_size=50, lr=1e-2, seed=3, log=lambda line: None)


def _model():
    return GaussianVAE(x_dim=16, hidden=(8,), z_dim=2, rng=Generator(1))


def test_the_epoch_train_loss_weights_a_last_smaller_batch_by_its_size(tmp_path):
    """130 images in batches of 50: 50, 50, 30; the recorded loss is Σ loss_b·n_b / 130, from the per-batch mean
    losses the model returned."""
    model, seen = _model(), []
    loss = model.loss

    def recording(x, rng, step=0, beta=1.0):
        value = loss(x, rng, step=step, beta=beta)
        seen.append((value.item(), len(x)))
        return value
    model.loss = recording
    train(model, DATA, tmp_path / "run", **ARGS)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [n for _, n in seen] == [50, 50, 30] * 2 and [r["step"] for r in rows] == ["3", "6"]
    for epoch, row in enumerate(rows):
        batch = seen[3 * epoch:3 * epoch + 3]
        assert float(row["train_loss"]) == pytest.approx(sum(v * n for v, n in batch) / 130, abs=1e-4)


@pytest.mark.parametrize("change,error,message", [
    ({"warmup_epochs": -1}, ValueError, "warmup_epochs must be >= 0, got -1"),  # β = −(epoch − 1): the KL rewarded
    ({"clip": -1.0}, ValueError, "clip must be a finite number > 0"),          # each gradient turned around
    ({"clip": 0}, ValueError, "clip must be a finite number > 0"),             # no clipping at all
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),                # ZeroDivisionError
    ({"batch_size": 2.5}, TypeError, "batch_size must be an integer"),
    ({"epochs": 0}, ValueError, "epochs must be >= 1"),                        # "wrote checkpoint.npz (epoch 0)": none
    ({"lr": float("nan")}, ValueError, "lr must be a finite number > 0"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
])
def test_bad_arguments_are_refused_naming_them_before_anything_is_written(tmp_path, change, error, message):
    with pytest.raises(error, match=message):
        train(_model(), DATA, tmp_path / "run", **{**ARGS, **change})
    assert not (tmp_path / "run").exists()


def test_kl_weight_refuses_a_negative_warm_up_and_an_epoch_before_the_first():
    """kl_weight is public API: W = −2 gave β = (3 − 1)/(−2) = −1 at epoch 3 and epoch 0 gave −1/W, KL terms that reward
    the divergence; now refused naming the argument. Fractional epochs and warm-ups stay: (2.5 − 1)/3 = 0.5."""
    from minivae.training import kl_weight
    for args, error, message in [((3, -2), ValueError, "warmup_epochs must be a finite number >= 0, got -2"),
                                 ((0, 4), ValueError, "epoch must be a finite number >= 1"),
                                 ((2, float("nan")), ValueError, "warmup_epochs must be a finite number >= 0"),
                                 ((2, "3"), TypeError, "warmup_epochs must be a real number"),
                                 ((True, 3), TypeError, "epoch must be a real number")]:
        with pytest.raises(error, match=message):
            kl_weight(*args)
    assert kl_weight(2.5, 3) == 0.5 and kl_weight(np.int64(3), np.int64(4)) == 0.5 and kl_weight(7, 0) == 1.0


@pytest.mark.parametrize("split", ["train", "valid"])
def test_an_empty_split_is_refused_naming_it(tmp_path, split):
    data = {**DATA, split: DATA[split][:0]}
    with pytest.raises(ValueError, match=f"data\\['{split}'\\] holds no images"):
        train(_model(), data, tmp_path / "run", **ARGS)
    assert not (tmp_path / "run").exists()


def test_numpy_numbers_are_accepted_and_recorded_as_python_numbers(tmp_path):
    """A batch size or seed taken from a NumPy array (np.int64) was a TypeError from json.dumps, after the folder was made."""
    train(_model(), DATA, tmp_path / "run", **{**ARGS, "batch_size": np.int64(50), "seed": np.uint64(3), "lr": np.float64(1e-2),
                                                "warmup_epochs": np.int64(1), "clip": np.float32(5.0)})
    _, arrays = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    settings = json.loads(str(arrays["meta/settings"]))
    recorded = [settings[k] for k in ("batch_size", "seed", "lr", "warmup_epochs", "clip")]
    assert recorded == [50, 3, 1e-2, 1, 5.0] and all(type(v) in (int, float) for v in recorded)


def test_resume_equals_an_uninterrupted_run_with_a_last_smaller_batch_and_fresh_binarization(tmp_path):
    """3 epochs in one run, or 1 and then 2 more resumed: the same parameters, optimizer state and metrics (but the
    seconds), with 130 images in batches of 50 (the last of 30), dynamic binarization drawing from the run's stream
    and a KL warm-up over 2 epochs."""
    args = {**ARGS, "dynamic": True, "warmup_epochs": 2}
    train(_model(), DATA, tmp_path / "full", **{**args, "epochs": 3})
    train(_model(), DATA, tmp_path / "part", **{**args, "epochs": 1})
    train(_model(), DATA, tmp_path / "part", **{**args, "epochs": 3}, resume=True)
    (_, full), (_, part) = (load_checkpoint(tmp_path / name / "checkpoint.npz") for name in ("full", "part"))
    assert sorted(full) == sorted(part)
    for key in full:
        if key != "meta/metrics":
            np.testing.assert_array_equal(full[key], part[key], err_msg=key)

    def rows(name):
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(open(tmp_path / name / "metrics.csv"))]
    assert rows("full") == rows("part") and [r["kl_weight"] for r in rows("full")] == ["0.0", "0.5", "1.0"]
