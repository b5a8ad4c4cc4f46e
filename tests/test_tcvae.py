"""GaussianVAE(tc_beta=, dataset_size=, tc_estimator=), the β-TCVAE (Chen et al. 2018): its loss against the
minibatch-weighted and minibatch-stratified estimates written out in NumPy at the same draws, the stratified weights'
unbiasedness by a brute-force average over batches, β_TC = 1 against the ELBO with its KL sampled, its gradient against
central differences in float64, step plans, the refusals, a checkpoint and the CLI."""

import itertools
import math

import numpy as np
import pytest

import minivae as mv

from minivae.engine import Tensor
from minivae.gradcheck import gradcheck
from minivae.models import GaussianVAE, _log_stratified_weights
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import load_checkpoint, save_checkpoint
from tests.test_cli import SMALL, one_error_line, run
from tests.test_vqvae import assert_replay_is_eager

LOG_2PI = math.log(2 * math.pi)


def logsumexp(a, axis):
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def stratified_weights(m, n):
    """Chen et al.'s App. C.2 weights, row by row: draw i's own example 1/N, the next member (cyclically) the draw's
    own stratum of N/(M − 1) − 1 examples over N, every other member a stratum of N/(M − 1) over N."""
    w = np.empty((m, m))
    for i in range(m):
        for j in range(m):
            w[i, j] = 1 / n if j == i else (n / (m - 1) - 1) / n if j == (i + 1) % m else 1 / (m - 1)
    return w


def written_out(model, x, seed, tc_beta, n, estimator="mws"):
    """−(log p(x|z) − (I + β_TC·TC + DW)) per example, averaged, in float64 NumPy from the encoder's μ, log σ² and
    the decoder's logits at z = μ + σ·ε, ε the first draw of Generator(seed): log q(z_i) = log Σ_j N(z_i; μ_j, σ_j²) −
    log(N·M) (mws) or log Σ_j w_ij N(z_i; μ_j, σ_j²) (mss, ``stratified_weights``), log q(z_id) the same a dimension,
    log p the standard normal's."""
    loc, log_var = (t.numpy().astype(np.float64) for t in model._encode(Tensor(x)))
    eps = Generator(seed).normal(loc.shape, np.float32).astype(np.float64)
    z = loc + np.exp(0.5 * log_var) * eps
    m = len(x)
    density = np.exp(-0.5 * ((z[:, None] - loc[None]) ** 2 / np.exp(log_var[None]) + log_var[None] + LOG_2PI))  # (M, M, Z)
    w = np.full((m, m), 1 / (n * m)) if estimator == "mws" else stratified_weights(m, n)
    log_q_x = (-0.5 * (eps ** 2 + log_var + LOG_2PI)).sum(-1)
    log_q = np.log((w * density.prod(-1)).sum(1))
    log_marginals = np.log((w[:, :, None] * density).sum(1)).sum(-1)
    log_p = (-0.5 * (z ** 2 + LOG_2PI)).sum(-1)
    logits = model.decoder(Tensor(z.astype(np.float32))).numpy().astype(np.float64)
    log_lik = (x * logits - np.logaddexp(0, logits)).sum(-1)
    kl = (log_q_x - log_q) + tc_beta * (log_q - log_marginals) + (log_marginals - log_p)
    return float((kl - log_lik).mean()), float((log_q_x - log_p - log_lik).mean())


@pytest.fixture
def x():
    return (np.random.default_rng(0).random((16, 12)) < 0.5).astype(np.float32)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
@pytest.mark.parametrize("tc_beta", [0.0, 1.0, 6.0])
def test_the_loss_is_the_estimate_written_out(x, tc_beta, estimator):
    """The loss equals its formula at the same ε (a weight on the wrong part, log(N·M) left out of either estimate,
    the pairs' axes swapped, a stratified weight moved, each moves it); at β_TC = 1 the three parts telescope to the
    sampled ELBO, by either estimator."""
    model = GaussianVAE(x_dim=12, hidden=(8,), z_dim=3, tc_beta=tc_beta, dataset_size=100, tc_estimator=estimator,
                        rng=Generator(0))
    expected, elbo = written_out(model, x, 5, tc_beta, 100, estimator)
    loss = float(model.loss(Tensor(x), Generator(5)).numpy())
    assert loss == pytest.approx(expected, rel=2e-6)
    if tc_beta == 1.0:
        assert loss == pytest.approx(elbo, rel=2e-6)


@pytest.mark.parametrize("m, n", [(2, 4), (3, 5), (4, 6), (4, 4)])
def test_the_stratified_weights_are_unbiased_for_q_z(m, n):
    """Σ_j w_ij q(z|x_j), averaged over every batch of M from N that holds the draw's example at position i (the others
    every ordered choice of M − 1 of the other N − 1), is (1/N) Σ_n q(z|x_n) exactly, for each row i: random positive
    densities, a brute-force average. (Chen et al.'s code, striding by M, gives row 1 its own example the weight
    (N − M + 1)/(N·(M − 1)) and fails this.) The weights are also the write-out's."""
    w = np.exp(_log_stratified_weights(m, n))
    np.testing.assert_allclose(w, stratified_weights(m, n), rtol=1e-12)
    q = np.random.default_rng(m * n).random(n) + 0.1
    for i in range(m):
        for own in range(n):
            estimates = []
            for others in itertools.permutations([k for k in range(n) if k != own], m - 1):
                batch = list(others[:i]) + [own] + list(others[i:])
                estimates.append((w[i] * q[batch]).sum())
            assert np.mean(estimates) == pytest.approx(q.mean(), rel=1e-12)


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_the_gradient_is_its_central_differences_in_float64(x, estimator):
    """In μ and log σ², the encoder's outputs the estimate pairs across the batch, at fixed ε (a new Generator of one
    seed each call); float64, random directions and upstream gradient (minivae.gradcheck)."""
    model = GaussianVAE(x_dim=12, hidden=(8,), z_dim=3, tc_beta=4.0, dataset_size=50, tc_estimator=estimator,
                        rng=Generator(1)).to(np.float64)
    loc, log_var = (t.detach().numpy() for t in model._encode(Tensor(x.astype(np.float64))))
    x64 = Tensor(x.astype(np.float64))
    assert gradcheck(lambda a, b: model._total_correlation_loss(x64, a, b, Generator(7), 1.0), [loc, log_var])


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_a_step_plan_replays_it_bit_for_bit(x, estimator):
    batches = [(np.random.default_rng(s).random((16, 12)) < 0.5).astype(np.float32) for s in range(4)]

    class Model(GaussianVAE):  # the harness's loss(x): the noise from a generator of the model's own
        def loss(self, x):
            return super().loss(x, self.noise)

    def make():
        model = Model(x_dim=12, hidden=(8,), z_dim=3, tc_beta=3.0, dataset_size=64, tc_estimator=estimator,
                      rng=Generator(9))
        model.noise = Generator(8)
        return model
    assert_replay_is_eager(make, batches)


@pytest.mark.parametrize("options, message", [
    (dict(tc_beta=2.0), "tc_beta needs dataset_size, the number of training examples N"),
    (dict(dataset_size=10), "dataset_size is the training set's size that tc_beta's estimate of q(z) takes"),
    (dict(tc_beta=-1.0, dataset_size=10), "tc_beta must be"),
    (dict(tc_beta=2.0, dataset_size=0), "dataset_size must be >= 1"),
    (dict(tc_beta=2.0, dataset_size=10, objective="iwae", samples=3), "objective='iwae' with samples=3 is not that ELBO"),
    (dict(tc_beta=2.0, dataset_size=10, samples=2), "objective='elbo' with samples=2 is not that ELBO"),
    (dict(tc_beta=2.0, dataset_size=10, prior="mog"), "the mog prior is not a product over the dimensions"),
    (dict(tc_beta=2.0, dataset_size=10, flow="planar"), "a flow posterior is not a product over the dimensions"),
    (dict(tc_beta=2.0, dataset_size=10, estimator="stl"), "estimator='stl' holds q's parameters fixed"),
    (dict(tc_beta=2.0, dataset_size=10, free_bits=0.5), "free_bits=0.5 clamps each dimension's KL instead"),
    (dict(tc_estimator="mss"), "tc_estimator='mss' estimates the q(z) of tc_beta's total correlation: pass tc_beta"),
    (dict(tc_beta=2.0, dataset_size=10, tc_estimator="MSS"), "tc_estimator must be one of ('mws', 'mss'), not 'MSS'"),
])
def test_what_it_cannot_weigh_is_refused_by_name(options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        GaussianVAE(x_dim=4, hidden=(4,), z_dim=2, rng=Generator(0), **options)


@pytest.mark.parametrize("m, n, message", [(1, 10, "it needs a batch of at least 2, not 1"),
                                            (5, 4, "a batch of 5 is more than its dataset_size N = 4")])
def test_a_batch_the_stratified_weights_cannot_take_is_refused(m, n, message):
    model = GaussianVAE(x_dim=4, hidden=(4,), z_dim=2, tc_beta=2.0, dataset_size=n, tc_estimator="mss", rng=Generator(0))
    with pytest.raises(ValueError, match=message):
        model.loss(Tensor(np.zeros((m, 4), np.float32)), Generator(1))


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_the_checkpoint_keeps_the_estimator_and_mws_writes_the_old_config(tmp_path, estimator):
    """tc_estimator is in the config only when "mss": a mws model's config is that of a checkpoint written before the
    option (and such a checkpoint loads as mws)."""
    model = GaussianVAE(x_dim=4, hidden=(4,), z_dim=2, tc_beta=2.0, dataset_size=10, tc_estimator=estimator,
                        rng=Generator(0))
    assert ("tc_estimator" in model.config) == (estimator == "mss")
    save_checkpoint(tmp_path / "c.npz", model, Adam(model.parameters()), Generator(0), epoch=1, step=1)
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    assert loaded.config == model.config and loaded.tc_estimator == estimator


def test_the_cli_trains_it_and_the_checkpoint_keeps_it(tmp_path, capsys):
    """--tc-beta: the training set's size is the model's N, recorded in the checkpoint with β_TC (so that eval and
    --resume rebuild the same model); refused for the other models in one line."""
    out = tmp_path / "run"
    assert run("train", "--model", "gaussian", "--z-dim", 2, "--epochs", 1, "--tc-beta", 6, "--out", out, *SMALL) == 0
    assert "a total correlation weighted by β_TC = 6" in capsys.readouterr().out
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert (model.tc_beta, model.dataset_size) == (6.0, 300)
    assert run("train", "--model", "categorical", "--epochs", 1, "--tc-beta", 6, "--out", tmp_path / "c", *SMALL) == 1
    assert "--tc-beta weighs the total correlation of the gaussian model's z" in one_error_line(capsys)


def test_the_cli_trains_the_stratified_estimate_and_refuses_it_alone(tmp_path, capsys):
    """--tc-estimator mss: recorded in the checkpoint; refused in one line, writing nothing, without --tc-beta and
    where the last batch would hold one example (300 = 299 + 1)."""
    out = tmp_path / "run"
    assert run("train", "--model", "gaussian", "--z-dim", 2, "--epochs", 1, "--tc-beta", 6, "--tc-estimator", "mss",
               "--out", out, *SMALL) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert (model.tc_beta, model.dataset_size, model.tc_estimator) == (6.0, 300, "mss")
    capsys.readouterr()
    assert run("train", "--model", "gaussian", "--epochs", 1, "--tc-estimator", "mss", "--out", tmp_path / "a", *SMALL) == 1
    assert "--tc-estimator mss estimates the q(z) of --tc-beta's total correlation: pass --tc-beta" in one_error_line(capsys)
    assert run("train", "--model", "conditional", "--epochs", 1, "--tc-estimator", "mss", "--out", tmp_path / "b",
               *SMALL) == 1
    assert "pass --tc-beta" in one_error_line(capsys)
    assert run("train", "--model", "gaussian", "--epochs", 1, "--tc-beta", 6, "--tc-estimator", "mss", "--out",
               tmp_path / "c", *SMALL, "--batch-size", 299) == 1
    assert "leave one of 1: change --batch-size or --limit" in one_error_line(capsys)
    assert not any((tmp_path / d).exists() for d in "abc")


@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_on_the_device_stand_in_a_step_copies_nothing_to_the_host(x, estimator):
    """The loss and its gradients on "cuda" (the strict CuPy stand-in): the CPU's bit for bit, no copy to the host
    (the pairs' log-sum-exps and the noise stay on the device)."""
    from tests.strict_array import assert_device_run_is_the_cpus

    def run(device):
        model = GaussianVAE(x_dim=12, hidden=(8,), z_dim=3, tc_beta=5.0, dataset_size=80,
                            tc_estimator=estimator, rng=Generator(2), device=device)
        loss = model.loss(mv.tensor(x, device=device), Generator(3))
        loss.backward()
        return [loss] + [p.grad for p in model.parameters()]
    assert_device_run_is_the_cpus(run)
