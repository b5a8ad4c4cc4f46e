"""minivae train/eval/sample --likelihood end to end on a tiny grey-level IDX file written here, and the refusals of
bad combinations (one line, exit status 1, nothing written)."""
import math
import re

import numpy as np
import pytest

from minivae.cli import main
from minivae.training import load_checkpoint
from tests.test_data import write_idx
from tests.test_likelihoods import grey_images

TINY = ["--hidden", 8, "--batch-size", 10, "--epochs", 1, "--z-dim", 2, "--model", "gaussian"]


def run(*args):
    return main([str(a) for a in args])


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def grey(tmp_path):
    """A folder of 8-bit grey 4×4 images as IDX files: 48 to train (8 held out to validate), 12 to test."""
    folder = tmp_path / "grey"
    folder.mkdir()
    for name, n, seed in (("train-images-idx3-ubyte", 48, 0), ("t10k-images-idx3-ubyte", 12, 1)):
        levels = np.rint(grey_images(n, seed) * 255).astype(np.uint8).reshape(n, 4, 4)
        write_idx(folder / name, levels)
    return folder


@pytest.mark.parametrize("likelihood", ["gaussian", "continuous_bernoulli", "discretized_logistic"])
def test_train_eval_sample_with_each_likelihood(grey, tmp_path, capsys, likelihood):
    out = tmp_path / "run"
    assert run("train", "--data", grey, "--likelihood", likelihood, *TINY, "--out", out) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.likelihood_kind == likelihood
    assert (out / "samples.png").exists() and (out / "reconstructions.png").exists()
    capsys.readouterr()
    assert run("eval", out / "checkpoint.npz", "--data", grey, "-k", 4) == 0
    text = capsys.readouterr().out
    elbo = float(re.search(r"ELBO \(1 sample\)\s+(\S+) nats", text).group(1))
    ll = float(re.search(r"importance sampled k=4\s+(\S+) nats", text).group(1))
    assert math.isfinite(elbo) and math.isfinite(ll)
    bits = re.findall(r"bits/dim, (from the ELBO \(a bound\)|importance sampled)\s+(\S+)", text)
    if likelihood == "discretized_logistic":  # −log p / (D ln 2), D = 16 pixels, from the printed nats
        assert [label for label, _ in bits] == ["from the ELBO (a bound)", "importance sampled"]
        assert float(bits[0][1]) == pytest.approx(-elbo / (16 * math.log(2)), abs=2e-4)
        assert float(bits[1][1]) == pytest.approx(-ll / (16 * math.log(2)), abs=2e-4)
        assert float(bits[0][1]) > 0 and float(bits[1][1]) > 0
    else:  # a density: no bits of a discrete distribution
        assert bits == []
    assert run("sample", out / "checkpoint.npz", "--out", tmp_path / "s.png", "--n", 4) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_combinations_are_refused_in_one_line_and_write_nothing(grey, tmp_path, capsys):
    out = tmp_path / "run"
    off = tmp_path / "off"  # float IDX grey levels in [0, 1] off the 1/255 grid (half a level)
    off.mkdir()
    write_idx(off / "train-images-idx3-ubyte", (grey_images(48) + np.float32(0.5 / 255)).clip(0, 1).reshape(48, 4, 4),
              type_byte=0x0D)
    cases = [
        ([grey, "--likelihood", "gaussian", "--dynamic-binarization"], "--dynamic-binarization is for the Bernoulli"),
        ([grey, "--likelihood", "discretized_logistic", "--grey-targets"], "--grey-targets is for the Bernoulli"),
        ([grey, "--likelihood", "continuous_bernoulli", "--grey-targets", "--dynamic-binarization"],
         "--dynamic-binarization and --grey-targets are for the Bernoulli"),
        ([off, "--likelihood", "discretized_logistic"], "off the grid of 256 grey levels k/255"),
        ([grey], "grey levels, not binary 0/1 pixels"),
    ]
    for args, message in cases:
        assert run("train", "--data", *args, *TINY, "--out", out) == 1
        assert message in one_error_line(capsys), args
        assert not out.exists(), args
    assert run("train", "--data", off, "--likelihood", "continuous_bernoulli", *TINY, "--out", out) == 0  # as they are
    capsys.readouterr()
    assert run("eval", out / "checkpoint.npz", "--data", off, "--dynamic-binarization", "-k", 2) == 1
    assert "--dynamic-binarization is for the Bernoulli likelihood" in one_error_line(capsys)
    assert run("train", "--data", off, "--likelihood", "gaussian", *TINY, "--epochs", 2, "--out", out, "--resume") == 1
    assert "--likelihood (checkpoint continuous_bernoulli, now gaussian)" in one_error_line(capsys)
    dl = tmp_path / "dl"
    assert run("train", "--data", grey, "--likelihood", "discretized_logistic", *TINY, "--out", dl) == 0
    capsys.readouterr()
    assert run("eval", dl / "checkpoint.npz", "--data", off, "-k", 2) == 1  # eval checks the grid too
    assert "off the grid" in one_error_line(capsys)


def test_resume_names_the_likelihood_of_a_discrete_models_checkpoint(tmp_path, capsys):
    """A categorical model's Bernoulli likelihood is not in its config (checkpoints from before the option): --resume
    with another likelihood names it all the same."""
    out, args = tmp_path / "run", ["--model", "categorical", "--limit", 40, "--hidden", 8, "--batch-size", 20]
    assert run("train", *args, "--epochs", 1, "--out", out) == 0
    capsys.readouterr()
    assert run("train", *args, "--likelihood", "gaussian", "--epochs", 2, "--out", out, "--resume") == 1
    assert "--likelihood (checkpoint bernoulli, now gaussian)" in one_error_line(capsys)
