"""HierarchicalVAE, Burda et al.'s two stochastic layers: the loss against the two-layer ELBO and IWAE bound written out
in NumPy (the four MLPs from the state_dict, each Gaussian's log-density in closed form) at the same noise; K = 1 IWAE =
ELBO; the log-densities of the posterior and prior of z = [z1, z2] against closed forms; ancestral sampling's shapes
and conditional laws; the gradient against central differences in float64; the refusals; a checkpoint; the CLI; a
step plan's replay."""

import math

import numpy as np
import pytest

from minivae import objectives
from minivae.engine import Tensor
from minivae.gradcheck import gradcheck
from minivae.models import HierarchicalVAE
from minivae.optim import Adam
from minivae.plan import compile_step
from minivae.random import Generator
from minivae.training import load_checkpoint, save_checkpoint
from tests.test_cli import SMALL, one_error_line, run
from tests.test_vqvae import assert_replay_is_eager

LOG_2PI = math.log(2 * math.pi)
SIZES = dict(x_dim=12, hidden=(8,), z_dims=(4, 3), hidden2=(5,))


def tiny(seed=0, **options):
    return HierarchicalVAE(**{**SIZES, **options}, rng=Generator(seed))


def binary(n, seed):
    return (np.random.default_rng(seed).random((n, 12)) < 0.5).astype(np.float32)


def mlp(weights, name, h, activation=np.tanh):
    """The MLP ``name`` of the state_dict ``weights`` (Linear layers h W + b, ``activation`` between them) in float64
    NumPy."""
    layers = sorted({int(k.split(".")[1]) for k in weights if k.startswith(name + ".")})
    for j, i in enumerate(layers):
        h = h @ weights[f"{name}.{i}.weight"].astype(np.float64) + weights[f"{name}.{i}.bias"].astype(np.float64)
        h = activation(h) if j < len(layers) - 1 else h
    return h


def log_normal(z, loc, log_var):
    """log N(z; μ, diag(exp(log σ²))), summed over the last axis: −½ Σ ((z − μ)²/σ² + log σ² + log 2π)."""
    return (-0.5 * ((z - loc) ** 2 / np.exp(log_var) + log_var + LOG_2PI)).sum(-1)


def posterior_draws(model, x, e1, e2):
    """z1 = μ_1(x) + σ_1·ε1, z2 = μ_2(z1) + σ_2(z1)·ε2, and the four networks' halves, in NumPy."""
    w, (a, b) = model.state_dict(), model.z_dims
    mu1, lv1 = np.split(mlp(w, "encoder", x), [a], -1)
    z1 = mu1 + np.exp(0.5 * lv1) * e1
    mu2, lv2 = np.split(mlp(w, "encoder2", z1), [b], -1)
    return z1, mu2 + np.exp(0.5 * lv2) * e2, (mu1, lv1, mu2, lv2)


def written_out(model, x, seed, k, beta=1.0):
    """log w_k (k, B) in float64 NumPy at ε1 (k, B, Z1) then ε2 (k, B, Z2), the first two draws of Generator(seed):
    log p(x|z1) + β·(log p(z1|z2) + log N(z2; 0, I) − log q(z1|x) − log q(z2|z1)), p(x|z1) Bernoulli of the logits."""
    g = Generator(seed)
    e1, e2 = (g.normal((k, len(x), d), np.float64) for d in model.z_dims)
    z1, z2, (mu1, lv1, mu2, lv2) = posterior_draws(model, x, e1, e2)
    w = model.state_dict()
    mu_p, lv_p = np.split(mlp(w, "decoder2", z2), [model.z_dims[0]], -1)
    logits = mlp(w, "decoder", z1)
    log_px = (x * logits - np.logaddexp(0, logits)).sum(-1)
    latent = log_normal(z1, mu_p, lv_p) + log_normal(z2, 0.0, 0.0) - log_normal(z1, mu1, lv1) - log_normal(z2, mu2, lv2)
    return log_px + beta * latent


def logsumexp(a, axis):
    top = a.max(axis=axis, keepdims=True)
    return (top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))).squeeze(axis)


def randomized(model, seed):
    """The model with every parameter drawn from N(0, 0.5²), the log σ² heads' zero start included (so that a swap of
    the two halves, or a σ read as σ², shows)."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = 0.5 * rng.standard_normal(p.shape)
    return model


@pytest.mark.parametrize("objective, k, beta", [("elbo", 1, 1.0), ("elbo", 3, 1.0), ("iwae", 3, 1.0), ("iwae", 4, 0.3)])
def test_the_loss_is_the_two_layer_bound_written_out(objective, k, beta):
    """In float64 at the same ε: −mean_b of the mean over k of log w_k (ELBO) or of log (1/k) Σ_k w_k (IWAE)."""
    model = randomized(tiny(objective=objective, samples=k).to(np.float64), 1)
    x = binary(5, 2).astype(np.float64)
    log_w = written_out(model, x, 3, k, beta)
    bound = log_w.mean(0) if objective == "elbo" else logsumexp(log_w, 0) - math.log(k)
    np.testing.assert_allclose(model.log_weights(Tensor(x), Generator(3), k, beta).numpy(), log_w, rtol=1e-10)
    assert model.loss(Tensor(x), Generator(3), beta=beta).item() == pytest.approx(-bound.mean(), rel=1e-10)


def test_the_loss_is_the_objectives_bounds_at_the_same_noise():
    """The loss reads the model's posterior, prior and likelihood as objectives.elbo and iwae_bound do: −their mean."""
    x = Tensor(binary(6, 4))
    elbo, iwae = tiny(samples=3), tiny(objective="iwae", samples=3)
    assert elbo.loss(x, Generator(5)).item() == pytest.approx(-objectives.elbo(elbo, x, Generator(5), k=3).mean().item(),
                                                              rel=1e-6)
    assert iwae.loss(x, Generator(5)).item() == pytest.approx(
        -objectives.iwae_bound(iwae, x, Generator(5), k=3).mean().item(), rel=1e-6)


def test_one_sample_iwae_is_the_elbo_and_more_samples_tighten_it():
    """K = 1: log-mean-exp of one log weight is that log weight, the same number; K = 5 at the same draws: the IWAE
    bound ≥ the ELBO for each example (Jensen), so its loss is lower."""
    x = Tensor(binary(6, 6))
    one = [tiny(seed=7, objective=o).loss(x, Generator(8)).item() for o in ("elbo", "iwae")]
    assert one[0] == one[1]
    five = [tiny(seed=7, objective=o, samples=5).loss(x, Generator(8)).item() for o in ("elbo", "iwae")]
    assert five[1] < five[0] - 1e-3


def test_the_log_densities_of_z1_z2_are_their_closed_forms():
    """posterior(x).log_prob and prior().log_prob of a z = [z1, z2] not drawn by them, against closed forms of the four
    networks' Gaussians; the posterior's own draw, scored in its noise, as the same z scored afresh."""
    model = randomized(tiny().to(np.float64), 9)
    x = binary(4, 10).astype(np.float64)
    z = np.random.default_rng(11).standard_normal((2, 4, 7))
    z1, z2 = z[..., :4], z[..., 4:]
    w = model.state_dict()
    mu1, lv1 = np.split(mlp(w, "encoder", x), [4], -1)
    mu2, lv2 = np.split(mlp(w, "encoder2", z1), [3], -1)
    mu_p, lv_p = np.split(mlp(w, "decoder2", z2), [4], -1)
    q = model.posterior(Tensor(x))
    drawn = q.rsample((3,), rng=Generator(12))  # (first: its draw is kept, and must not be taken for another z)
    np.testing.assert_allclose(q.log_prob(Tensor(z)).numpy(), log_normal(z1, mu1, lv1) + log_normal(z2, mu2, lv2),
                               rtol=1e-12)
    np.testing.assert_allclose(model.prior().log_prob(Tensor(z)).numpy(),
                               log_normal(z1, mu_p, lv_p) + (-0.5 * (z2 ** 2 + LOG_2PI)).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(q.log_prob(drawn).numpy(), q.log_prob(Tensor(drawn.numpy().copy())).numpy(), rtol=1e-12)
    logits = mlp(w, "decoder", z1)
    np.testing.assert_allclose(model.likelihood(Tensor(z)).log_prob(Tensor(x)).numpy().sum(-1),
                               (x * logits - np.logaddexp(0, logits)).sum(-1), rtol=1e-12)


def test_every_scale_starts_at_one_and_counts_are_read_as_log1p():
    """A new model's log σ² heads give 0 for every input (q(z1|x), q(z2|z1), p(z1|z2)): under relu's He init, drawn,
    p(z1|z2)'s started near σ = e⁻¹⁰; a count likelihood's encoder reads log(1 + x), as the other models'."""
    model = HierarchicalVAE(x_dim=12, hidden=(16, 16), z_dims=(4, 3), hidden2=(8,), activation="relu",
                            likelihood="poisson", rng=Generator(30))
    x = np.random.default_rng(31).poisson(3.0, (5, 12)).astype(np.float32)
    q = model.posterior(Tensor(x))
    z = q.sample((2,), rng=Generator(32))
    for out, size in ((q.log_var, 4), (model.encoder2(z[..., :4]), 3), (model.decoder2(z[..., 4:]), 4)):
        np.testing.assert_array_equal(out.numpy()[..., -size:], 0.0)
    np.testing.assert_allclose(q.loc.numpy(), mlp(model.state_dict(), "encoder", np.log1p(x.astype(np.float64)),
                                                   lambda h: np.maximum(h, 0))[:, :4],
                               rtol=1e-5, atol=1e-6)


def _moments_are_standard_normal(r):
    """Each column of r (n draws) has mean within 5/√n of 0 and variance within 5·√(2/n) of 1: each check fails a
    correct sampler with probability 5.7·10⁻⁷ (a normal beyond 5 standard errors)."""
    n = len(r)
    assert np.abs(r.mean(0)).max() < 5 / math.sqrt(n)
    assert np.abs(r.var(0) - 1).max() < 5 * math.sqrt(2 / n)


def test_ancestral_draws_follow_each_conditional():
    """The prior's draws: z2 ~ N(0, I), and (z1 − μ_p(z2))/σ_p(z2) ~ N(0, I); the posterior's: (z1 − μ_1(x))/σ_1(x) and
    (z2 − μ_2(z1))/σ_2(z1) ~ N(0, I). 4000 draws, the first two moments of each coordinate."""
    model = randomized(tiny().to(np.float64), 13)
    w = model.state_dict()
    z = model.prior().sample((4000,), rng=Generator(14)).numpy()
    assert z.shape == (4000, 7)
    mu_p, lv_p = np.split(mlp(w, "decoder2", z[:, 4:]), [4], -1)
    _moments_are_standard_normal(z[:, 4:])
    _moments_are_standard_normal((z[:, :4] - mu_p) / np.exp(0.5 * lv_p))
    x = binary(2, 15).astype(np.float64)
    q = model.posterior(Tensor(x))
    z = q.sample((2000,), rng=Generator(16)).numpy()
    assert z.shape == (2000, 2, 7) and q.batch_shape == (2,) and q.event_shape == (7,)
    mu1, lv1 = np.split(mlp(w, "encoder", x), [4], -1)
    mu2, lv2 = np.split(mlp(w, "encoder2", z[..., :4]), [3], -1)
    _moments_are_standard_normal(((z[..., :4] - mu1) / np.exp(0.5 * lv1)).reshape(-1, 8))
    _moments_are_standard_normal(((z[..., 4:] - mu2) / np.exp(0.5 * lv2)).reshape(-1, 6))
    np.testing.assert_allclose(q.mode.numpy(), np.concatenate([mu1, np.split(mlp(w, "encoder2", mu1), [3], -1)[0]], -1),
                               rtol=1e-12)


def test_samples_are_the_decoders_means_of_prior_draws():
    model = tiny(seed=17)
    images = model.sample(5, Generator(18)).numpy()
    z = model.prior().sample((5,), rng=Generator(18)).numpy()
    logits = mlp(model.state_dict(), "decoder", z[:, :4].astype(np.float64))
    assert images.shape == (5, 12)
    np.testing.assert_allclose(images, 1 / (1 + np.exp(-logits)), rtol=1e-5)


def test_the_gradient_is_its_central_differences_in_float64():
    """Pathwise through both layers: the loss as a function of the first weights of encoder, encoder2 and decoder2
    (q(z1|x), q(z2|z1), p(z1|z2)) at fixed noise, against central differences (minivae.gradcheck)."""
    model = randomized(tiny(objective="iwae", samples=3).to(np.float64), 19)
    x = Tensor(binary(4, 20).astype(np.float64))
    layers = [model.encoder[0], model.encoder2[0], model.decoder2[0]]

    def loss(*weights):
        for layer, weight in zip(layers, weights):
            layer.weight = weight
        return model.loss(x, Generator(21))
    assert gradcheck(loss, [layer.weight.numpy().copy() for layer in layers])


@pytest.mark.parametrize("options, error, message", [
    (dict(z_dims=(4,)), ValueError, "z_dims are the sizes (Z1, Z2) of the two stochastic layers, z1 next to x: two sizes, got 1"),
    (dict(z_dims=(4, 3, 2)), ValueError, "two sizes, got 3"),
    (dict(z_dims=(4, 0)), ValueError, "z_dims[1] must be >= 1, got 0"),
    (dict(hidden2=5), TypeError, "hidden2 must be a sequence of layer sizes"),
    (dict(likelihood="laplace"), ValueError, "likelihood must be one of"),
    (dict(objective="vimco"), ValueError, "objective must be one of ('elbo', 'iwae')"),
    (dict(samples=0), ValueError, "samples must be >= 1, got 0"),
    (dict(prior="mog"), TypeError, "unexpected keyword argument 'prior'"),
])
def test_bad_sizes_and_options_are_refused_by_name(options, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        tiny(**options)


def test_a_latent_of_another_size_is_refused():
    with pytest.raises(ValueError, match=r"z must be \[z1, z2\] of 4 \+ 3 = 7 values on its last axis, got shape \(2, 4\)"):
        tiny().likelihood(Tensor(np.zeros((2, 4), np.float32)))


def test_a_checkpoint_rebuilds_the_model(tmp_path):
    """kind "hierarchical" and the config (sizes, objective, K, likelihood) rebuild the same model: the same weights and
    the same loss at the same noise."""
    model = tiny(seed=22, likelihood="gaussian", activation="relu", objective="iwae", samples=3)
    save_checkpoint(tmp_path / "c.npz", model, Adam(model.parameters()), Generator(0), 1, 0)
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    assert type(loaded) is HierarchicalVAE and loaded.config == model.config
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value, err_msg=key)
    x = Tensor(np.random.default_rng(23).random((4, 12)).astype(np.float32))
    assert loaded.loss(x, Generator(24)).item() == model.loss(x, Generator(24)).item()


def test_a_step_plan_replays_it_bit_for_bit():
    batches = [binary(6, s) for s in (25, 26, 27)]

    class Model(HierarchicalVAE):  # the harness's loss(x): the noise from a generator of the model's own
        def loss(self, x):
            return super().loss(x, self.noise)

    def make():
        model = Model(**SIZES, objective="iwae", samples=2, rng=Generator(28))
        model.noise = Generator(29)
        return model
    assert_replay_is_eager(make, batches)


def test_a_step_plan_replays_a_live_beta_bit_for_bit():
    """minivae train --graph's step: β (the KL warm-up's weight) a live scalar of the plan, a new value each replay."""
    batches, betas = [binary(6, s) for s in (33, 34, 35)], [0.2, 0.6, 1.0]

    def trained(replay):
        model, noise = tiny(seed=36, samples=2), Generator(37)
        opt = Adam(model.parameters(), lr=0.05)
        loss = lambda x, beta: model.loss(x, noise, beta=beta)  # noqa: E731
        if replay:
            plan = compile_step(model, opt, loss, Tensor(batches[0]), beta=betas[0])
            for x, beta in zip(batches[1:], betas[1:]):
                plan.step(x, beta=beta)
            return model
        for x, beta in zip(batches, betas):
            value = loss(Tensor(x), beta)
            opt.zero_grad()
            value.backward()
            opt.step()
        return model
    eager, replayed = trained(False), trained(True)
    for key, value in eager.state_dict().items():
        np.testing.assert_array_equal(replayed.state_dict()[key], value, err_msg=key)


def test_the_cli_trains_it(tmp_path, capsys):
    """--model hierarchical --z-dims --hidden2 with the IWAE bound: the checkpoint keeps the sizes and the objective."""
    out = tmp_path / "run"
    assert run("train", "--model", "hierarchical", "--z-dims", "6,3", "--hidden2", 8, "--objective", "iwae", "--samples",
               2, "--epochs", 1, "--out", out, *SMALL) == 0
    assert "two stochastic layers z1, z2 of 6 and 3 dimensions" in capsys.readouterr().out
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert (model.kind, model.z_dims, model.config["hidden2"], model.objective, model.samples) == \
        ("hierarchical", (6, 3), (8,), "iwae", 2)
    assert all((out / name).exists() for name in ("metrics.csv", "reconstructions.png", "samples.png"))


def test_the_cli_evaluates_samples_and_reconstructs_it(tmp_path, capsys):
    """eval's importance-sampled log p(x) lies above its ELBO (the same q and prior, k = 20 draws against 1); sample and
    reconstruct write PNGs."""
    model = HierarchicalVAE(784, (16,), (6, 3), (8,), rng=Generator(38))
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, model, Adam(model.parameters()), Generator(0), 1, 0)
    assert run("eval", path, "-k", 20, "--limit", 50) == 0
    lines = capsys.readouterr().out.splitlines()
    elbo, ll = (float(next(line for line in lines if line.strip().startswith(s)).split()[-2]) for s in ("ELBO", "log p(x)"))
    assert math.isfinite(elbo) and elbo < ll < 0
    for command in ("sample", "reconstruct"):
        assert run(command, path, "--out", tmp_path / f"{command}.png") == 0
        assert (tmp_path / f"{command}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("flags, message", [
    (["--model", "hierarchical", "--prior", "mog"], "--prior mog is not for the hierarchical model: its two Gaussian layers"),
    (["--model", "hierarchical", "--estimator", "pathwise"], "--estimator is not for the hierarchical model"),
    (["--model", "hierarchical", "--z-dim", "5"], "--z-dim is not for the hierarchical model: its two Gaussian layers z1, "
                                                  "z2 (sizes --z-dims Z1,Z2"),
    (["--model", "hierarchical", "--free-bits", "0.5"], "--free-bits is not for the hierarchical model"),
    (["--model", "hierarchical", "--arch", "conv"], "--arch conv is not for the hierarchical model"),
    (["--model", "gaussian", "--z-dims", "4,2"], "--z-dims is the hierarchical model's (its two stochastic layers): pass "
                                                 "--model hierarchical"),
    (["--model", "categorical", "--hidden2", "4"], "--hidden2 is the hierarchical model's"),
])
def test_the_cli_refuses_what_it_does_not_take_in_one_line(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert run("train", *flags, "--epochs", 1, "--out", out, *SMALL) == 1
    assert message in one_error_line(capsys) and not out.exists()


def test_it_is_a_model_of_the_models_registry():
    from minivae.models import MODELS, build
    assert MODELS["hierarchical"] is HierarchicalVAE
    assert build("hierarchical", dict(SIZES), Generator(0)).config == tiny().config
