"""minivae train --model conditional (Sohn et al.'s CVAE) end to end on a labelled IDX folder of binary 8×8 bars of four
classes (tests/test_cli_m2.py's), with the standard prior and with the learned one (--prior learned): the run's
checkpoint holds the model of the options and its samples of each class are that class, eval prints the bounds
recomputed here from the model, sample --label draws the classes asked for a column each; options that do not apply
(--prior mog or vamp here, --prior learned and --prior-hidden elsewhere), labels the model does not know and data
without labels are one line before anything is written."""
import re

import numpy as np
import pytest

import minivae as mv
from minivae import objectives
from minivae.random import Generator
from minivae.semisupervised import load_labelled
from minivae.training import load_checkpoint
from tests.test_cli import one_error_line, run
from tests import test_cli_m2
from tests.test_png import read_png

folder = test_cli_m2.folder  # the fixture of the labelled bars' IDX folder, shared
SMALL = ["--model", "conditional", "--hidden", "32", "--z-dim", "2", "--batch-size", "50", "--lr", "1e-2"]


# each prior's options and the config entries they record
PRIORS = {"standard": ([], {}), "learned": (["--prior", "learned", "--prior-hidden", "8"],
                                            dict(prior="learned", prior_hidden=(8,)))}


@pytest.fixture(scope="module", params=list(PRIORS))
def prior(request):
    return request.param


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory, prior):
    out = tmp_path_factory.mktemp("cvae") / "run"
    assert run("train", *SMALL, *PRIORS[prior][0], "--data", folder, "--epochs", 8, "--out", out) == 0
    return out


def class_means(folder):
    x, y = load_labelled(folder)["train"]
    return np.stack([x[y == c].mean(axis=0) for c in range(4)])


def nearest(images, means):
    return ((images[:, None, :] - means[None]) ** 2).sum(axis=-1).argmin(axis=1)


def test_train_writes_a_checkpoint_of_the_model_whose_samples_follow_the_class(trained, folder, prior):
    rows = (trained / "metrics.csv").read_text().splitlines()
    assert rows[0] == "epoch,step,train_loss,valid_elbo,seconds,settings_changed" and len(rows) == 9
    for name in ("checkpoint.npz", "reconstructions.png", "samples.png"):
        assert (trained / name).exists(), name
    valid = [float(r.split(",")[3]) for r in rows[1:]]
    assert valid[-1] > valid[0]  # the validation bound rose
    model, _ = load_checkpoint(trained / "checkpoint.npz")
    assert model.kind == "conditional" and model.config == dict(x_dim=64, n_classes=4, hidden=(32,), z_dim=2,
                                                                 likelihood="bernoulli", activation="relu",
                                                                 **PRIORS[prior][1])
    means = class_means(folder)
    for c in range(4):
        assert (nearest(model.sample(50, Generator(c), y=c).numpy(), means) == c).mean() > 0.9, c


def test_eval_prints_the_bounds_of_the_images_it_drew(trained, folder, capsys):
    capsys.readouterr()
    assert run("eval", trained / "checkpoint.npz", "--data", folder, "--limit", 100, "--seed", 6, "-k", 50,
               "--batch-size", 100) == 0
    printed = capsys.readouterr().out
    model, _ = load_checkpoint(trained / "checkpoint.npz")
    x, y = load_labelled(folder)["test"]
    drawn = np.sort(Generator(6).permutation(len(x))[:100])  # eval's --limit draw (data.sample_rows')
    given, rng = model.given(y[drawn]), Generator(6)  # one batch: the ELBO, then log p(x|y), from the --seed's stream
    elbo = objectives.elbo(given, mv.tensor(x[drawn]), rng).numpy().mean()
    ll = objectives.log_likelihood_is(given, mv.tensor(x[drawn]), rng, k=50).numpy().mean()
    number = r"(-?\d+\.\d+) nats"
    assert float(re.search(r"ELBO of log p\(x\|y\) \(1 sample\)\s+" + number, printed)[1]) == pytest.approx(elbo, abs=2e-3)
    assert float(re.search(r"importance sampled k=50\s+" + number, printed)[1]) == pytest.approx(ll, abs=2e-3)
    assert float(re.search(r"ELBO − log 4, a bound on log p\(x\), p\(y\) = 1/4\s+" + number, printed)[1]) \
        == pytest.approx(elbo - np.log(4), abs=2e-3)
    assert ll > elbo


def test_sample_draws_the_classes_asked_for_a_column_each(trained, folder, tmp_path, capsys):
    means = class_means(folder)
    for labels, n, columns in (("3", 8, 8), ("2,0", 6, 2), (None, 8, 4)):
        png = tmp_path / f"{labels}.png"
        assert run("sample", trained / "checkpoint.npz", "--n", n, "--out", png,
                   *(["--label", labels] if labels else [])) == 0
        grid = read_png(png)[1][..., 0]
        rows = -(-n // columns)
        assert grid.shape == (rows * 10 + 2, columns * 10 + 2)  # 8×8 images, 2 pixels apart
        images = np.stack([grid[2 + 10 * (i // columns):10 + 10 * (i // columns), 2 + 10 * (i % columns):10 + 10 * (i % columns)]
                           for i in range(n)]).reshape(n, 64) / 255
        classes = np.resize([int(c) for c in labels.split(",")] if labels else range(4), n)
        assert (nearest(images, means) == classes).mean() > 0.8, labels
    assert "of classes 0, 1, 2, 3 in turn" in capsys.readouterr().out


@pytest.mark.parametrize("options, message", [
    (["--data", "default"], "--data is a folder of MNIST-style IDX files with their labels"),
    (["--labels", "8"], "--labels is the semisupervised model's"),
    (["--tf32"], "--tf32 needs --device cuda: NumPy's products have no TF32"),
    (["--prior", "mog"], "--prior mog is not for the conditional model"),
    (["--prior", "vamp"], "--prior vamp is not for the conditional model"),
    (["--prior-hidden", "8"], "--prior-hidden are the layers of the conditional model's prior network: they need --model "
                              "conditional --prior learned"),
    (["--arch", "conv"], "--arch conv is not for the conditional model"),
    (["--objective", "iwae", "--samples", "2"], "--objective iwae is not for the conditional model"),
    (["--beta", "0.5"], "--beta is not for the conditional model"),
    (["--likelihood", "poisson"], "the conditional model reads labelled images: the poisson likelihood models counts"),
])
def test_what_does_not_apply_is_one_line_and_writes_nothing(folder, tmp_path, capsys, options, message):
    out = tmp_path / "run"
    assert run("train", *SMALL, "--data", folder, "--limit", 100, *options, "--out", out) == 1
    assert message in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("model", ["gaussian", "semisupervised", "bernoulli"])
def test_the_learned_prior_is_the_conditional_model_s_alone(folder, tmp_path, capsys, model):
    out = tmp_path / "run"
    assert run("train", "--model", model, "--prior", "learned", "--hidden", "8", "--z-dim", "2", "--limit", 100,
               *(["--data", folder] if model == "semisupervised" else []), "--out", out) == 1
    assert (f"--prior learned is the conditional model's prior network p(z|y), not the {model} model's: pass --model "
            "conditional") in one_error_line(capsys)
    assert not out.exists()


def test_labels_the_model_does_not_know_are_one_line_and_write_nothing(trained, tmp_path, capsys):
    png = tmp_path / "s.png"
    assert run("sample", trained / "checkpoint.npz", "--label", "1,4", "--out", png) == 1
    assert "--label 4: the model knows classes 0 to 3" in one_error_line(capsys) and not png.exists()
    assert run("reconstruct", trained / "checkpoint.npz", "--out", png) == 1
    assert "holds a conditional model, whose q(z|x, y) needs each image's label" in one_error_line(capsys)
    assert not png.exists()
    assert run("eval", trained / "checkpoint.npz") == 1
    assert "the embedded digits carry none" in one_error_line(capsys)


def test_label_is_for_models_of_classes(tmp_path, capsys):
    out, png = tmp_path / "run", tmp_path / "s.png"
    assert run("train", "--model", "gaussian", "--hidden", "8", "--z-dim", "2", "--epochs", 1, "--limit", 100,
               "--out", out) == 0
    capsys.readouterr()
    assert run("sample", out / "checkpoint.npz", "--label", "1", "--out", png) == 1
    assert "--label is the class of a conditional or semisupervised model's images" in one_error_line(capsys)
    assert not png.exists()


def test_label_draws_an_m2_checkpoint_s_class_too(folder, tmp_path, capsys):
    """sample --label of a semisupervised checkpoint: the grid of model.sample(n, Generator(seed), y=the classes in
    turn), its p(x|y, z) of the classes asked for (without --label, the classes drawn from p(y) as before)."""
    out = tmp_path / "m2"
    assert run("train", "--model", "semisupervised", "--labels", "8", "--hidden", "16", "--z-dim", "2", "--epochs", 1,
               "--limit", 200, "--data", folder, "--out", out) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    for labels, y in (("1", [1] * 4), ("3,0", [3, 0, 3, 0])):
        png = tmp_path / f"{labels}.png"
        assert run("sample", out / "checkpoint.npz", "--n", 4, "--seed", 2, "--label", labels, "--out", png) == 0
        images = model.sample(4, Generator(2), y=np.array(y)).numpy()
        columns = 8 if labels == "1" else 2
        expected = np.zeros((-(-4 // columns) * 10 + 2, columns * 10 + 2))
        for i, image in enumerate(images):
            r, c = divmod(i, columns)
            expected[2 + 10 * r:10 + 10 * r, 2 + 10 * c:10 + 10 * c] = image.reshape(8, 8)
        np.testing.assert_array_equal(read_png(png)[1][..., 0], np.round(255 * expected).astype(np.uint8))
    assert "of classes 3, 0 in turn" in capsys.readouterr().out
