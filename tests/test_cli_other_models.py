"""The CLI with checkpoints of the semi-supervised VAE and the VQ-VAE saved from Python (their runs of minivae train:
tests/test_cli_m2.py, tests/test_cli_vq.py): eval and reconstruct read the VQ-VAE's (its q one-hot on its codes), eval
of M2's asks for labelled images in one line, writing nothing; sample draws from their priors."""
import pytest

from minivae.models import SemiSupervisedVAE, VQVAE
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import save_checkpoint
from tests.test_cli import one_error_line, run


@pytest.fixture(params=["semisupervised", "vq"])
def checkpoint(request, tmp_path):
    rng = Generator(0)
    model = (SemiSupervisedVAE(x_dim=784, n_classes=3, hidden=(8,), z_dim=2, alpha=1.0, rng=rng)
             if request.param == "semisupervised" else VQVAE(hidden=(8,), n_latent=2, code_dim=2, n_codes=4, rng=rng))
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, model, Adam(model.parameters()), rng, epoch=1, step=1)
    return request.param, path


def test_eval_reads_the_vq_checkpoint_and_asks_m2_s_for_labels(checkpoint, tmp_path, capsys):
    kind, path = checkpoint
    if kind == "vq":
        assert run("eval", path, "--limit", 20) == 0
        assert "codebook perplexity" in capsys.readouterr().out
        assert run("reconstruct", path, "--n", 2, "--out", tmp_path / "r.png") == 0
    else:
        assert run("eval", path) == 1
        assert "--data is a folder of MNIST-style IDX files with their labels" in one_error_line(capsys)


def test_sample_draws_from_their_priors(checkpoint, tmp_path):
    _, path = checkpoint
    assert run("sample", path, "--n", 4, "--out", tmp_path / "s.png") == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_the_cli_s_lists_are_the_library_s():
    """The parser's --activation and --likelihood choices, written out in cli.py (which imports nothing heavy before
    parsing), are the names minivae.nn and minivae.models take."""
    from minivae import cli, models, nn
    assert cli.ACTIVATIONS == (*nn.ACTIVATION_MODULES, "gated")
    assert cli.LIKELIHOODS == models.LIKELIHOODS and cli.COUNT_LIKELIHOODS == models.COUNT_LIKELIHOODS


def test_train_takes_the_new_activations(tmp_path, capsys):
    from minivae.training import load_checkpoint
    out = tmp_path / "run"
    assert run("train", "--limit", 200, "--epochs", 1, "--hidden", 8, "--z-dim", 2, "--model", "gaussian",
               "--activation", "mish", "--out", out) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.config["activation"] == "mish"
    assert run("train", "--arch", "conv", "--activation", "gated", "--out", tmp_path / "c") == 1
    assert "--arch conv takes one of relu, tanh, sigmoid" in capsys.readouterr().err
