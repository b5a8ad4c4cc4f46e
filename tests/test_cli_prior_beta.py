"""minivae train --prior mog --prior-components K and --beta B: the options land in the checkpoint (the model's config,
the run's settings), --resume keeps β and refuses another, bad combinations are one line before anything is written,
and β is the KL's weight in the step's loss (the metrics' loss is model.loss(…, beta=B) reproduced directly)."""
import csv
import json

import numpy as np
import pytest

from minivae.data import batches, load_splits
from minivae.engine import as_tensor
from minivae.models import GaussianVAE
from minivae.random import Generator
from minivae.training import derived_seed, evaluate, kl_weight, load_checkpoint
from tests.test_cli import one_error_line, run

SMALL = ["--limit", "100", "--hidden", "16", "--batch-size", "100", "--z-dim", "2", "--seed", "3"]


def rows(folder):
    return list(csv.DictReader(open(folder / "metrics.csv")))


def settings(folder):
    _, arrays = load_checkpoint(folder / "checkpoint.npz")
    return json.loads(str(arrays["meta/settings"]))


def test_prior_and_beta_land_in_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    assert run("train", "--model", "gaussian", "--prior", "mog", "--prior-components", 3, "--beta", 0.5,
               "--warmup-epochs", 2, "--epochs", 3, "--out", out, *SMALL) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.config["prior"] == "mog" and model.config["prior_components"] == 3
    assert model.prior_loc.shape == (3, 2)
    assert settings(out)["beta"] == 0.5
    # the warm-up ramps to B: B·min(1, (epoch − 1)/2) = 0, 0.25, 0.5
    assert [r["kl_weight"] for r in rows(out)] == ["0.0", "0.25", "0.5"]
    # the validation ELBO is the full bound (β = 1), whatever β trains: evaluate's of the model saved
    valid = load_splits("default").limit(100)["valid"]
    assert rows(out)[-1]["valid_elbo"] == f"{evaluate(model, valid, derived_seed(3, 1)):.4f}"
    # eval (the sampled KL to the mixture, the importance-sampled log p(x)) and sample (z from the mixture) read it
    assert run("eval", out / "checkpoint.npz", "--limit", 50, "-k", 20) == 0
    assert run("sample", out / "checkpoint.npz", "--n", 4, "--out", tmp_path / "s.png") == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_a_run_of_the_defaults_records_neither(tmp_path):
    out = tmp_path / "run"
    assert run("train", "--model", "gaussian", "--epochs", 1, "--out", out, *SMALL) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert "prior" not in model.config and "beta" not in settings(out)
    assert rows(out)[0]["kl_weight"] == "1.0"


@pytest.mark.parametrize("prior", [[], ["--prior", "mog", "--prior-components", 2]], ids=["standard", "mog"])
def test_beta_is_the_kl_weight_of_the_step_s_loss(tmp_path, prior):
    """One step an epoch (100 images, batch 100): metrics' train_loss is that step's loss, before its update. Built and
    drawn again here as the run does (the model from Generator(seed), the batch order and the noise from another
    Generator(seed)), model.loss(x, rng, beta=B) is it to the 4 digits written, and the loss at β = 1 is not."""
    out = tmp_path / "run"
    assert run("train", "--model", "gaussian", *prior, "--beta", 0.25, "--epochs", 1, "--out", out, *SMALL) == 0
    train_x = load_splits("default").limit(100)["train"]
    losses = {}
    for beta in (0.25, 1.0):
        model = GaussianVAE(784, (16,), 2, prior="mog" if prior else "standard", prior_components=2 if prior else None,
                            rng=Generator(3))
        rng = Generator(3)
        x = next(batches(train_x, 100, rng=rng))
        losses[beta] = model.loss(as_tensor(x), rng, step=0, beta=beta).item()
    assert rows(out)[0]["train_loss"] == f"{losses[0.25]:.4f}"
    assert abs(losses[1.0] - losses[0.25]) > 0.1  # the KL part, scaled by β: β = 1 would show
    assert rows(out)[0]["kl_weight"] == "0.25"


def test_resume_keeps_beta_and_refuses_another(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", "gaussian", "--prior", "mog", "--prior-components", 2, *SMALL, "--out", out]
    assert run(*args, "--beta", 0.5, "--epochs", 1) == 0
    capsys.readouterr()
    for other, shown in ((0.7, "0.7"), (1.0, "1.0")):  # β = 1 (the default) is not recorded, yet shown
        assert run(*args, "--beta", other, "--epochs", 2, "--resume") == 1
        line = one_error_line(capsys)
        assert f"--beta (checkpoint 0.5, now {shown})" in line and "--override-settings" in line
    assert run(*args, "--beta", 0.5, "--epochs", 2, "--resume") == 0
    assert [r["kl_weight"] for r in rows(out)] == ["0.5", "0.5"]
    assert run(*args, "--beta", 2.0, "--epochs", 3, "--resume", "--override-settings") == 0
    assert rows(out)[2]["kl_weight"] == "2.0" and "--beta (checkpoint 0.5, now 2.0)" in rows(out)[2]["settings_changed"]
    assert settings(out)["beta"] == 2.0


def test_resume_refuses_another_prior(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", "gaussian", *SMALL, "--out", out]
    assert run(*args, "--prior", "mog", "--prior-components", 2, "--epochs", 1) == 0
    capsys.readouterr()
    assert run(*args, "--prior", "mog", "--prior-components", 3, "--epochs", 2, "--resume") == 1
    assert "--prior-components (checkpoint 2, now 3)" in one_error_line(capsys)
    assert run(*args, "--epochs", 2, "--resume") == 1
    assert "--prior (checkpoint mog, now standard)" in one_error_line(capsys)


@pytest.mark.parametrize("flags,message", [
    (["--model", "categorical", "--prior", "mog"], "--prior mog is the gaussian model's learned prior: the categorical"),
    (["--model", "bernoulli", "--prior", "mog", "--prior-components", 3], "--prior mog is the gaussian model's"),
    (["--model", "gaussian", "--prior-components", 3], "--prior-components are the mixture's components: they need "
                                                        "--prior mog"),
])
def test_bad_combinations_are_one_line_and_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert run("train", *flags, "--out", out, *SMALL) == 1
    assert message in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_beta_must_be_positive_and_finite(tmp_path, capsys, value):
    with pytest.raises(SystemExit) as e:
        run("train", "--model", "gaussian", "--beta", value, "--out", tmp_path / "run")
    assert e.value.code == 2 and "argument --beta: must be a finite number > 0" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit):
        run("train", "--prior", "vampire")
    assert "argument --prior: invalid choice: 'vampire'" in one_error_line(capsys)


def test_kl_weight_and_train_refuse_a_beta_that_is_not_positive_and_finite(tmp_path):
    assert [kl_weight(e, 2, 0.5) for e in (1, 2, 3, 4)] == [0.0, 0.25, 0.5, 0.5]
    assert kl_weight(1, 0, 3.0) == 3.0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="beta must be a finite number > 0"):
            kl_weight(2, 0, bad)
    from minivae.training import train
    data = {"train": np.zeros((4, 4), np.float32), "valid": np.zeros((2, 4), np.float32)}
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        train(GaussianVAE(4, (3,), 2, rng=Generator(0)), data, tmp_path / "run", epochs=1, batch_size=2, lr=0.1, seed=0,
              beta=0.0)
    assert not (tmp_path / "run").exists()
