"""minivae train --model semisupervised (Kingma et al.'s M2) end to end on a labelled IDX folder of binary 8×8 bars of
four classes: the run learns to classify from 8 labels, its checkpoint holds the model of the options, eval prints the
bounds and the accuracy of the images it drew (recomputed here from the model's own methods), reconstruct and sample
draw; the options that do not apply, and data without labels, are one line before anything is written."""
import gzip
import re
import struct

import numpy as np
import pytest

import minivae as mv
from minivae.random import Generator
from minivae.training import load_checkpoint
from tests.test_cli import one_error_line, run


def write_idx(path, array):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape))
        f.write(array.tobytes())


def bars(n, rng):
    """n binary 8×8 images of four classes (rows 1–2, rows 5–6, columns 1–2, columns 5–6 on), each pixel flipped with
    probability 0.1, as 0/255 bytes, and their labels."""
    prototypes = np.zeros((4, 8, 8), np.int64)
    prototypes[0, 1:3], prototypes[1, 5:7], prototypes[2, :, 1:3], prototypes[3, :, 5:7] = 1, 1, 1, 1
    y = rng.integers(0, 4, n)
    return (np.abs(prototypes[y] - (rng.random((n, 8, 8)) < 0.1)) * 255).astype(np.uint8), y.astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder, rng = tmp_path_factory.mktemp("bars"), np.random.default_rng(0)
    for prefix, n in (("train", 1200), ("t10k", 400)):
        x, y = bars(n, rng)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
    return folder


SMALL = ["--model", "semisupervised", "--labels", "8", "--hidden", "32", "--z-dim", "4", "--batch-size", "50"]


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("m2") / "run"
    assert run("train", *SMALL, "--data", folder, "--epochs", 5, "--out", out) == 0
    return out


def test_train_learns_to_classify_from_eight_labels(trained):
    rows = (trained / "metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,step,labelled_loss,unlabelled_loss,valid_unlabelled_bound,valid_accuracy,seconds,settings_changed"
    for name in ("checkpoint.npz", "reconstructions.png", "samples.png"):
        assert (trained / name).exists(), name
    accuracy = [float(r.split(",")[5]) for r in rows[1:]]
    assert len(accuracy) == 5 and accuracy[-1] > 0.9  # of the 200 held-out training images; chance is 0.25
    model, _ = load_checkpoint(trained / "checkpoint.npz")
    assert model.kind == "semisupervised" and (model.x_dim, model.n_classes, model.z_dim) == (64, 4, 4)
    assert model.alpha == pytest.approx(0.1 * 1000 / 8)  # 0.1·N/N_l: 1000 training images (200 held out), 8 labels


def test_eval_prints_the_bounds_and_the_accuracy_of_the_images_it_drew(trained, folder, capsys):
    from minivae.semisupervised import load_labelled
    capsys.readouterr()
    assert run("eval", trained / "checkpoint.npz", "--data", folder, "--limit", 100, "--seed", 6, "--batch-size", 100) == 0
    printed = capsys.readouterr().out
    model, _ = load_checkpoint(trained / "checkpoint.npz")
    x, y = load_labelled(folder)["test"]
    drawn = np.sort(Generator(6).permutation(len(x))[:100])  # eval's --limit draw (data.sample_rows')
    x, y = x[drawn], y[drawn]
    rng = Generator(6)  # one batch: U, then L, from the --seed's stream
    unlabelled = model.unlabelled_bound(mv.tensor(x), rng).numpy().mean()
    labelled = model.elbo(mv.tensor(x), y, rng).numpy().mean()
    accuracy = (model.predict(mv.tensor(x)).numpy() == y).mean()
    number = r"(-?\d+\.\d+)"
    assert float(re.search(r"log p\(x\) \(1 sample a class\)\s+" + number, printed)[1]) == pytest.approx(unlabelled, abs=2e-3)
    assert float(re.search(r"log p\(x, y\) \(1 sample\)\s+" + number, printed)[1]) == pytest.approx(labelled, abs=2e-3)
    assert float(re.search(r"accuracy of q\(y\|x\)\s+" + number, printed)[1]) == pytest.approx(100 * accuracy, abs=6e-3)
    assert accuracy > 0.9


def test_reconstruct_and_sample_draw_from_an_m2_checkpoint(trained, folder, tmp_path):
    for command, data in (("reconstruct", ["--data", folder]), ("sample", [])):
        png = tmp_path / f"{command}.png"
        assert run(command, trained / "checkpoint.npz", *data, "--n", 4, "--out", png) == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dynamic_binarization_is_a_setting_of_the_run(folder, tmp_path):
    out = tmp_path / "run"
    assert run("train", *SMALL, "--data", folder, "--epochs", 1, "--limit", 100, "--dynamic-binarization", "--out", out) == 0
    _, arrays = load_checkpoint(out / "checkpoint.npz")
    assert '"dynamic_binarization": true' in str(arrays["meta/settings"])


@pytest.mark.parametrize("options, message", [
    (["--data", "default"], "--data is a folder of MNIST-style IDX files with their labels"),
    (["--labels", "6"], "the labelled images must be a positive multiple of the 4 classes, got 6"),
    (["--tf32"], "--tf32 needs --device cuda: NumPy's products have no TF32"),
    (["--arch", "conv"], "--arch conv is not for the semisupervised model"),
    (["--estimator", "reinforce"], "--estimator is not for the semisupervised model"),
    (["--flow", "planar"], "--flow planar is not for the semisupervised model"),
    (["--ema-decay", "0.9"], "--ema-decay is the vq model's"),
    (["--free-bits", "0.5"], "--free-bits is not for the semisupervised model"),
])
def test_what_does_not_apply_is_one_line_and_writes_nothing(folder, tmp_path, capsys, options, message):
    out = tmp_path / "run"
    assert run("train", *SMALL, "--data", folder, "--limit", 100, *options, "--out", out) == 1
    assert message in one_error_line(capsys)
    assert not out.exists()


def test_labels_are_the_semisupervised_model_s(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--model", "gaussian", "--labels", 10, "--out", out) == 1
    assert "--labels is the semisupervised model's" in one_error_line(capsys) and not out.exists()


def test_eval_of_an_m2_checkpoint_needs_labelled_images(trained, capsys):
    assert run("eval", trained / "checkpoint.npz") == 1
    assert "the embedded digits carry none" in one_error_line(capsys)
