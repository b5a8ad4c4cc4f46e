"""minivae train/eval with --likelihood poisson, negative_binomial and zero_inflated_negative_binomial on a .npy count
matrix of 7 features (no square: no pictures, and no crash for want of them), eval's numbers recomputed from the
checkpoint, --resume continuing a run exactly (log θ and its optimizer state included), and bad count data or commands
refused in one line."""
import re

import numpy as np
import pytest

import minivae as mv
from minivae import objectives
from minivae.random import Generator
from minivae.training import load_checkpoint
from tests.test_cli import one_error_line, run
from tests.test_count_likelihoods import nb_counts

TINY = ["--hidden", 8, "--batch-size", 10, "--z-dim", 2, "--model", "gaussian"]


@pytest.fixture
def counts(tmp_path):
    """60 rows of NB(θ = 0.5) counts, 7 features: 50 to train, the last 10 held out."""
    np.save(tmp_path / "counts.npy", nb_counts(60, 0.5, seed=11).astype(np.int64))
    return tmp_path / "counts.npy"


@pytest.mark.parametrize("likelihood", ["poisson", "negative_binomial", "zero_inflated_negative_binomial"])
def test_train_and_eval_a_count_model(counts, tmp_path, capsys, likelihood):
    out = tmp_path / "run"
    assert run("train", "--data", counts, "--likelihood", likelihood, *TINY, "--epochs", 2, "--out", out) == 0
    text = capsys.readouterr().out
    assert "on 50 rows of counts" in text
    assert f"metrics.csv (no pictures: the {likelihood} likelihood models counts, not images)" in text
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz", "metrics.csv"]
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.likelihood_kind == likelihood and model.config["x_dim"] == 7
    assert run("eval", out / "checkpoint.npz", "--data", counts, "-k", 5) == 0
    text = capsys.readouterr().out
    assert "test: 10 rows of counts" in text and "bits/dim" not in text  # bits/dim: 8-bit images alone
    elbo = float(re.search(r"ELBO \(1 sample\)\s+(\S+) nats", text).group(1))
    ll = float(re.search(r"importance sampled k=5\s+(\S+) nats", text).group(1))
    x, rng = mv.tensor(np.load(counts)[50:].astype(np.float32)), Generator(0)  # eval's draws: one batch, seed 0
    with mv.no_grad():
        assert elbo == pytest.approx(objectives.elbo(model, x, rng).numpy().mean(), abs=1e-3)
        assert ll == pytest.approx(objectives.log_likelihood_is(model, x, rng, k=5).numpy().mean(), abs=1e-3)


def test_resume_continues_a_negative_binomial_run_exactly(counts, tmp_path, capsys):
    args = ["--data", counts, "--likelihood", "negative_binomial", *TINY]
    assert run("train", *args, "--epochs", 2, "--out", tmp_path / "whole") == 0
    assert run("train", *args, "--epochs", 1, "--out", tmp_path / "cut") == 0
    assert run("train", *args, "--epochs", 2, "--out", tmp_path / "cut", "--resume") == 0
    whole, _ = load_checkpoint(tmp_path / "whole" / "checkpoint.npz")
    cut, _ = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    assert np.all(whole.log_theta.data != 0)
    for (name, p), (_, q) in zip(whole.named_parameters(), cut.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    capsys.readouterr()
    assert run("train", "--data", counts, "--likelihood", "poisson", *TINY, "--epochs", 3, "--out", tmp_path / "cut",
               "--resume") == 1
    assert "--likelihood (checkpoint negative_binomial, now poisson)" in one_error_line(capsys)


def test_bad_count_data_and_commands_are_refused_in_one_line(counts, tmp_path, capsys):
    x = np.load(counts)
    np.save(tmp_path / "negative.npy", x - 1)
    np.save(tmp_path / "fraction.npy", x + 0.5)
    np.save(tmp_path / "square.npy", nb_counts(60, 0.5, seed=12, mu=np.full(9, 4.0)))
    out = tmp_path / "run"
    cases = [
        (["negative.npy", "--likelihood", "poisson"], "values are not counts 0, 1, 2, … (e.g. -1.0)"),
        (["fraction.npy", "--likelihood", "negative_binomial"], "values are not counts 0, 1, 2, … (e.g. 0.5)"),
        (["counts.npy"], "7 pixels an image, not a square image (count data takes --likelihood poisson, "
                         "negative_binomial or zero_inflated_negative_binomial)"),
        (["square.npy"], "not grey levels in [0, 1]: count data takes --likelihood poisson, negative_binomial or "
                          "zero_inflated_negative_binomial"),
        (["square.npy", "--likelihood", "discretized_logistic"], "count data takes --likelihood poisson"),
        (["counts.npy", "--likelihood", "poisson", "--dynamic-binarization"],
         "--dynamic-binarization is for the Bernoulli likelihood: the poisson likelihood takes counts 0, 1, 2, … as "
         "they are"),
    ]
    for args, message in cases:
        assert run("train", "--data", tmp_path / args[0], *args[1:], *TINY, "--epochs", 1, "--out", out) == 1
        assert message in one_error_line(capsys), args
        assert not out.exists(), args
    assert run("train", "--data", counts, "--likelihood", "poisson", *TINY, "--epochs", 1, "--out", out) == 0
    capsys.readouterr()
    for command in (["sample"], ["reconstruct", "--data", counts], ["traverse", "--data", counts]):
        assert run(*command[:1], out / "checkpoint.npz", *command[1:], "--out", tmp_path / "p.png") == 1
        assert "holds a model of counts (the poisson likelihood)" in one_error_line(capsys), command
        assert not (tmp_path / "p.png").exists()
    assert run("eval", out / "checkpoint.npz", "--data", tmp_path / "fraction.npy", "-k", 2) == 1
    assert "values are not counts" in one_error_line(capsys)


def test_train_with_the_observed_library_and_resume_with_another_is_refused(counts, tmp_path, capsys):
    """--library observed reaches the model (recorded in its config, ℓ̄ the mean total of the rows trained on, eval's
    ELBO that of the checkpoint's model); without a count likelihood it is refused in one line and nothing is written;
    --resume with --library none refuses the checkpoint of the other parametrisation."""
    out = tmp_path / "run"
    args = ["--data", counts, "--likelihood", "zero_inflated_negative_binomial", *TINY]
    assert run("train", *args, "--library", "observed", "--epochs", 2, "--out", out) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.config["library"] == "observed" and model.library_rows.item() == 2 * 50
    assert model.library_mean.item() == pytest.approx(np.load(counts)[:50].sum(axis=1).mean(), rel=1e-6)
    capsys.readouterr()
    assert run("eval", out / "checkpoint.npz", "--data", counts, "-k", 5) == 0
    elbo = float(re.search(r"ELBO \(1 sample\)\s+(\S+) nats", capsys.readouterr().out).group(1))
    x = mv.tensor(np.load(counts)[50:].astype(np.float32))
    with mv.no_grad():
        assert elbo == pytest.approx(objectives.elbo(model, x, Generator(0)).numpy().mean(), abs=1e-3)
    assert run("train", *args, "--epochs", 3, "--out", out, "--resume") == 1
    assert "another shape: --library (checkpoint observed," in one_error_line(capsys)
    grey = tmp_path / "grey"
    np.save(tmp_path / "grey.npy", np.random.default_rng(0).random((30, 9)).astype(np.float32))  # 3×3 grey images
    assert run("train", "--data", tmp_path / "grey.npy", "--likelihood", "gaussian", "--library", "observed", *TINY,
               "--epochs", 1, "--out", grey) == 1
    assert "library='observed' scales the mean of counts by their total: it needs a count likelihood" in \
        one_error_line(capsys)
    assert not grey.exists()


def test_the_decoder_gate_reaches_the_model_and_is_refused_elsewhere(counts, tmp_path, capsys):
    """--gate decoder gives ZINB its dropout logits from a second decoder head (recorded in the config); with another
    likelihood, or with a model that has no such decoder, it is refused in one line and nothing is written."""
    out = tmp_path / "run"
    args = ["--data", counts, "--likelihood", "zero_inflated_negative_binomial", *TINY, "--epochs", 1]
    assert run("train", *args, "--gate", "decoder", "--out", out) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.config["gate"] == "decoder" and "gate_logits" not in dict(model.named_parameters())
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert run("train", "--data", counts, "--likelihood", "poisson", *TINY, "--gate", "decoder", "--epochs", 1,
               "--out", bad) == 1
    assert "gate='decoder' is the dropout logit of likelihood='zero_inflated_negative_binomial'" in one_error_line(capsys)
    assert run("train", "--model", "vq", "--gate", "decoder", "--limit", 100, "--out", bad) == 1
    assert "--gate decoder is not for the vq model" in one_error_line(capsys)
    assert not bad.exists()
