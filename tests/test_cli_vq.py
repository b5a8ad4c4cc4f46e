"""minivae train --model vq (the VQ-VAE, its codebook by gradient or by moving averages) end to end: the options land in
the checkpoint's config, --resume and --graph reach the uninterrupted eager run's model bit for bit (the moving
averages travel as buffers), eval prints the ELBO, the reconstruction term and the perplexity of the model it loads
(recomputed here from the model's own pieces), reconstruct and sample draw; options of other models are one line,
before anything is written."""
import math
import re

import numpy as np
import pytest

from minivae.data import load_splits
from minivae.engine import tensor
from minivae.training import load_checkpoint
from tests.test_cli import one_error_line, run

SMALL = ["--model", "vq", "--limit", "100", "--hidden", "16", "--batch-size", "50", "--n-latent", "3", "--code-dim", "2",
         "--n-codes", "8", "--seed", "4"]


def state(folder):
    model, _ = load_checkpoint(folder / "checkpoint.npz")
    return model.state_dict()


def test_train_writes_a_vq_checkpoint_of_the_options(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", *SMALL, "--commitment-cost", 0.5, "--ema-decay", 0.9, "--epochs", 2, "--out", out) == 0
    assert "8 codes of 2 dimensions, commitment cost 0.5, the codebook by moving averages (γ = 0.9)" in capsys.readouterr().out
    for name in ("checkpoint.npz", "metrics.csv", "reconstructions.png", "samples.png"):
        assert (out / name).exists(), name
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.kind == "vq" and (model.n_latent, model.code_dim, model.n_codes, model.beta) == (3, 2, 8, 0.5)
    assert model.ema_decay == 0.9 and model.ema_cluster_size.numpy().sum() > 0  # the averages took the batches
    assert run("train", *SMALL, "--epochs", 1, "--out", tmp_path / "gradient") == 0
    model, _ = load_checkpoint(tmp_path / "gradient" / "checkpoint.npz")
    assert model.ema_decay is None and model.beta == 0.25 and "ema_decay" not in model.config


@pytest.mark.parametrize("codebook", [[], ["--ema-decay", "0.8"], ["--code-prior", "6"]], ids=["gradient", "ema", "prior"])
def test_resume_and_graph_reach_the_eager_run(tmp_path, codebook):
    whole, resumed, graph = tmp_path / "whole", tmp_path / "resumed", tmp_path / "graph"
    assert run("train", *SMALL, *codebook, "--epochs", 2, "--out", whole) == 0
    assert run("train", *SMALL, *codebook, "--epochs", 1, "--out", resumed) == 0
    assert run("train", *SMALL, *codebook, "--epochs", 2, "--out", resumed, "--resume") == 0
    assert run("train", *SMALL, *codebook, "--epochs", 2, "--out", graph, "--graph") == 0
    want = state(whole)
    for folder in (resumed, graph):
        got = state(folder)
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{folder.name}: {key}")

    def metrics(folder):  # epoch, step, train_loss, valid_elbo of each row
        return [row.split(",")[:4] for row in (folder / "metrics.csv").read_text().splitlines()]
    assert len(metrics(whole)) == 3 and metrics(resumed) == metrics(whole)


def test_eval_reconstruct_and_sample_read_a_vq_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", *SMALL, "--ema-decay", 0.9, "--epochs", 1, "--out", out) == 0
    capsys.readouterr()
    assert run("eval", out / "checkpoint.npz", "--limit", 60, "--seed", 5, "--batch-size", 25) == 0
    printed = capsys.readouterr().out
    model, _ = load_checkpoint(out / "checkpoint.npz")
    x = load_splits("default").limit(60, seed=5)["test"]  # eval's draw of 60 test images
    codes = model.encode(x)
    log_lik = model.decode(codes).log_prob(tensor(x)).sum(axis=-1).numpy()  # log p(x|z_q), from the model's pieces
    number = r"(-?\d+\.\d+)"
    assert float(re.search(r"reconstruction\s+" + number, printed)[1]) == pytest.approx(-log_lik.mean(), abs=2e-3)
    elbo = log_lik.mean() - 3 * math.log(8)
    assert float(re.search(r"L log K\s+" + number, printed)[1]) == pytest.approx(elbo, abs=2e-3)
    p = np.bincount(codes.reshape(-1), minlength=8) / codes.size
    perplexity = np.exp(-(p[p > 0] * np.log(p[p > 0])).sum())
    assert float(re.search(r"perplexity\s+" + number, printed)[1]) == pytest.approx(perplexity, abs=2e-3)
    assert "importance sampled" not in printed.replace("importance sampling gives the ELBO again", "")
    for command in ("reconstruct", "sample"):
        png = tmp_path / f"{command}.png"
        assert run(command, out / "checkpoint.npz", "--n", 4, "--out", png) == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_learned_code_prior_is_trained_evaluated_and_sampled(tmp_path, capsys):
    """--code-prior H: the checkpoint's model has the prior, fitted (its codes' NLL below L log K); eval prints the codes'
    −log p(k) and the ELBO log p(x|z_q) + log p(k), recomputed here from the prior's enumerated log-probabilities;
    sample decodes the prior's draws."""
    out = tmp_path / "run"
    assert run("train", *SMALL, "--code-prior", 6, "--epochs", 2, "--out", out) == 0
    assert "a learned autoregressive prior over the codes (6 hidden units)" in capsys.readouterr().out
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.config["prior_hidden"] == 6 and model.code_prior.hidden == 6
    assert run("eval", out / "checkpoint.npz", "--limit", 60, "--seed", 5, "--batch-size", 25) == 0
    printed = capsys.readouterr().out
    x = load_splits("default").limit(60, seed=5)["test"]
    codes = model.encode(x)
    every = np.array([[a, b, c] for a in range(8) for b in range(8) for c in range(8)])
    table = dict(zip(map(tuple, every), model.code_prior.log_prob(every).numpy()))  # all 8³ sequences' log p(k)
    assert math.fsum(np.exp(list(table.values()))) == pytest.approx(1, abs=1e-5)
    log_prior = np.array([table[tuple(k)] for k in codes])
    log_lik = model.decode(codes).log_prob(tensor(x)).sum(axis=-1).numpy()
    number = r"(-?\d+\.\d+)"
    assert float(re.search(r"learned prior\s+" + number, printed)[1]) == pytest.approx(-log_prior.mean(), abs=2e-3)
    assert -log_prior.mean() < 3 * math.log(8) - 0.01  # fitted (4 steps): below the untrained, uniform L log K
    assert float(re.search(r"log p\(x\|z_q\) \+ log p\(k\)\s+" + number, printed)[1]) == pytest.approx(
        (log_lik + log_prior).mean(), abs=2e-3)
    assert float(re.search(r"L log K\s+" + number, printed)[1]) == pytest.approx(log_lik.mean() - 3 * math.log(8), abs=2e-3)
    png = tmp_path / "sample.png"
    assert run("sample", out / "checkpoint.npz", "--n", 4, "--out", png) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("options, message", [
    (["--model", "gaussian", "--code-dim", "4"], "--code-dim is the vq model's (its codebook or its codes' prior): pass --model vq"),
    (["--model", "categorical", "--ema-decay", "0.9"], "--ema-decay is the vq model's"),
    (["--model", "gaussian", "--code-prior", "16"], "--code-prior is the vq model's"),
    (["--model", "vq", "--estimator", "reinforce"], "--estimator is not for the vq model"),
    (["--model", "vq", "--beta", "0.5"], "--beta is not for the vq model: it trains by −log p(x|z_q)"),
    (["--model", "vq", "--objective", "iwae", "--samples", "2"], "--objective iwae is not for the vq model"),
    (["--model", "vq", "--n-categories", "4"], "--n-categories is the categorical model's"),
    (["--model", "vq", "--flow", "planar"], "--flow planar is a normalizing-flow posterior of the gaussian model's z"),
    (["--model", "vq", "--free-bits", "0.5"], "--free-bits is not for the vq model"),
    (["--model", "vq", "--likelihood", "poisson", "--library", "observed"], "--library observed is not for the vq model"),
])
def test_options_of_other_models_are_one_line_and_write_nothing(tmp_path, capsys, options, message):
    out = tmp_path / "run"
    assert run("train", *options, "--limit", 100, "--epochs", 1, "--out", out) == 1
    assert message in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("option", [["--ema-decay", "1"], ["--ema-decay", "-0.1"], ["--commitment-cost", "-1"],
                                    ["--n-codes", "0"], ["--code-prior", "0"]])
def test_out_of_range_vq_options_are_argument_errors(tmp_path, capsys, option):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit:
        run("train", "--model", "vq", *option, "--out", out)
    assert exit.value.code == 2 and option[0] in one_error_line(capsys) and not out.exists()
