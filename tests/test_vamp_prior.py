"""GaussianVAE(prior="vamp"): the VampPrior p(z) = (1/K) Σ_k q(z|u_k) of K learned pseudo-inputs (Tomczak & Welling 2018).

log p(z) against a brute-force log-sum-exp over the components, each N(μ(u_k), σ(u_k)²) from the encoder written out in
NumPy; the loss and the IWAE bound written out from the same noise; the float64 gradcheck of the loss in the
pseudo-inputs; the components drawn with equal frequencies (χ² against uniform); checkpoints; bad options refused; step
plans replay it bit for bit; the device stand-in copies nothing back; the CLI trains, evaluates and samples it."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import objectives as O
from minivae._backend import use_numba
from minivae.distributions import MixtureSameFamily
from minivae.gradcheck import gradcheck
from minivae.models import PSEUDO_INPUT_MEAN, PSEUDO_INPUT_STD, GaussianVAE, build
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import load_checkpoint, train
from tests.test_cli import one_error_line, run
from tests.test_multi_sample import float64, log_bernoulli, log_normal, mlp
from tests.test_plan import X_DIM, assert_same_run, eager_run, plan_run

X = (np.random.default_rng(0).random((3, 6)) < 0.4).astype(np.float64)
K, Z = 3, 2


def vamp(**kw):
    """A float64 GaussianVAE (6 → 5 → 2·2, tanh) of a VampPrior of 3 pseudo-inputs, set apart from their start."""
    model = float64(GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, activation="tanh", prior="vamp", prior_components=K,
                                rng=Generator(0), **kw))
    model.pseudo_inputs.data = np.random.default_rng(1).normal(size=(K, 6))
    return model


def numpy_components(model):
    """(μ_k, σ_k) of q(z|u_k), the encoder written out on each pseudo-input."""
    h = mlp(model.encoder.layers, model.pseudo_inputs.data)
    return h[:, :Z], np.exp(0.5 * h[:, Z:])


def numpy_log_prior(model, z):
    """log (1/K) Σ_k Π_d N(z_d; μ_kd, σ_kd²), a term a component, by logaddexp."""
    mu, sigma = numpy_components(model)
    terms = [log_normal(z, mu[k], sigma[k]) for k in range(len(mu))]
    return np.logaddexp.reduce(terms, axis=0) - math.log(len(mu))


def numpy_terms(model, x, eps):
    """(log p(x|z), log q(z|x), log p(z)) at z = μ + σ·ε, the networks written out."""
    h = mlp(model.encoder.layers, x)
    mu, sigma = h[..., :Z], np.exp(0.5 * h[..., Z:])
    z = mu + sigma * eps
    return log_bernoulli(x, mlp(model.decoder.layers, z)), log_normal(z, mu, sigma), numpy_log_prior(model, z)


def test_log_prior_is_the_brute_force_log_sum_exp_over_components():
    model = vamp()
    z = np.random.default_rng(2).normal(size=(5, 4, Z)) * 2
    prior = model.prior()
    assert isinstance(prior, MixtureSameFamily) and prior.event_shape == (Z,) and prior.batch_shape == ()
    np.testing.assert_allclose(prior.log_prob(mv.tensor(z)).numpy(), numpy_log_prior(model, z), rtol=1e-12)


@pytest.mark.parametrize("samples,beta", [(1, 1.0), (1, 0.3), (2, 2.5)])
def test_loss_is_the_negative_elbo_with_a_sampled_kl_written_out(samples, beta):
    """−mean(log p(x|z) − β(log q(z|x) − log p(z))) at ε = Generator(5).normal of the shape the loss draws."""
    model = vamp(samples=samples)
    loss = model.loss(mv.tensor(X), Generator(5), beta=beta).item()
    eps = Generator(5).normal(((samples,) if samples > 1 else ()) + (3, Z), np.float64)
    ll, lq, lp = numpy_terms(model, X, eps)
    assert loss == pytest.approx(-(ll - beta * (lq - lp)).mean(), rel=1e-13)


def test_iwae_log_weights_and_the_objectives_take_the_vamp_prior():
    model, x = vamp(objective="iwae", samples=4), mv.tensor(X)
    loss = model.loss(x, Generator(6), beta=0.4).item()
    ll, lq, lp = numpy_terms(model, X, Generator(6).normal((4, 3, Z), np.float64))
    assert loss == pytest.approx(-(np.logaddexp.reduce(ll + 0.4 * (lp - lq), axis=0) - math.log(4)).mean(), rel=1e-13)
    # objectives.elbo samples the KL to the mixture from the same ε as the loss; iwae_bound scores log p(z) by it
    plain = vamp()
    assert plain.loss(x, Generator(4)).item() == pytest.approx(-O.elbo(plain, x, Generator(4)).numpy().mean(), rel=1e-12)
    ll, lq, lp = numpy_terms(model, X, Generator(2).normal((5, 3, Z), np.float64))
    np.testing.assert_allclose(O.iwae_bound(model, x, Generator(2), k=5).numpy(),
                               np.logaddexp.reduce(ll + lp - lq, axis=0) - math.log(5), rtol=1e-12)


def test_the_loss_gradchecks_in_the_pseudo_inputs():
    """The float64 loss as a function of the pseudo-inputs alone (the noise fixed), against central differences; and
    they are parameters, which backward reaches and an optimizer trains."""
    model, x = vamp(), mv.tensor(X)

    def loss_of(u):
        model.pseudo_inputs = u
        return model.loss(x, Generator(5), beta=0.7)

    assert gradcheck(loss_of, [mv.tensor(np.random.default_rng(3).normal(size=(K, 6)), requires_grad=True)])
    model = vamp()
    assert any(p is model.pseudo_inputs for p in model.parameters())
    model.loss(x, Generator(5)).backward()
    assert np.abs(model.pseudo_inputs.grad).min() > 0


def test_components_are_drawn_with_equal_frequencies():
    """σ(u_k) made tiny (log σ² bias −40), so that each draw lies on its component's mean: 12,000 draws assigned to the
    nearest μ_k are uniform over the K = 4 components by a χ² test (3 degrees of freedom, 16.27 its 0.999 quantile)."""
    model = float64(GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, activation="tanh", prior="vamp", prior_components=4,
                                rng=Generator(0)))
    model.pseudo_inputs.data = np.random.default_rng(1).normal(size=(4, 6)) * 3
    model.encoder.layers[-1].bias.data[Z:] = -40.0
    mu, _ = numpy_components(model)
    assert min(np.linalg.norm(mu[i] - mu[j]) for i in range(4) for j in range(i)) > 0.05
    z = model.prior().sample((12000,), rng=Generator(3)).numpy()
    distance = np.linalg.norm(z[:, None, :] - mu[None], axis=-1)
    assert distance.min(axis=1).max() < 1e-6
    counts = np.bincount(distance.argmin(axis=1), minlength=4)
    assert ((counts - 3000) ** 2 / 3000).sum() < 16.27, counts
    # model.sample decodes draws of the prior: the mean images σ(decoder(z)) of the same draws
    z = model.prior().sample((5,), rng=Generator(4)).numpy()
    np.testing.assert_allclose(model.sample(5, Generator(4)).numpy(), 1 / (1 + np.exp(-mlp(model.decoder.layers, z))),
                               rtol=1e-12)


def test_initial_pseudo_inputs_and_config():
    """The networks are those of the standard model of the same seed (the pseudo-inputs drawn after them), the
    pseudo-inputs float32, (K, x_dim), apart, of mean PSEUDO_INPUT_MEAN and spread PSEUDO_INPUT_STD; prior and K
    recorded in the config, K = 10 by default."""
    a = GaussianVAE(x_dim=64, hidden=(5,), z_dim=Z, prior="vamp", prior_components=50, rng=Generator(0))
    b = GaussianVAE(x_dim=64, hidden=(5,), z_dim=Z, rng=Generator(0))
    for name, value in b.state_dict().items():
        np.testing.assert_array_equal(a.state_dict()[name], value, err_msg=name)
    u = a.pseudo_inputs.data
    assert u.shape == (50, 64) and u.dtype == np.float32 and len(np.unique(u, axis=0)) == 50  # no two alike
    # 3200 draws: the mean within 5 standard errors (5·0.1/√3200 ≈ 0.009), the spread within 5%
    assert abs(u.mean() - PSEUDO_INPUT_MEAN) < 0.009 and abs(u.std() / PSEUDO_INPUT_STD - 1) < 0.05
    assert a.config["prior"] == "vamp" and a.config["prior_components"] == 50
    assert GaussianVAE(x_dim=6, hidden=(5,), prior="vamp", rng=Generator(0)).config["prior_components"] == 10


def test_checkpoint_round_trip_keeps_the_trained_pseudo_inputs(tmp_path):
    r = np.random.default_rng(0)
    data = {"train": (r.random((24, 16)) < 0.4).astype(np.float32), "valid": (r.random((8, 16)) < 0.4).astype(np.float32)}
    model = GaussianVAE(x_dim=16, hidden=(5,), z_dim=Z, prior="vamp", prior_components=K, rng=Generator(0))
    initial = model.pseudo_inputs.data.copy()
    train(model, data, tmp_path / "run", epochs=2, batch_size=8, lr=0.05, seed=1, log=lambda *a: None)
    assert np.abs(model.pseudo_inputs.data - initial).max() > 1e-3  # the pseudo-inputs were trained
    loaded, _ = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert loaded.config == model.config and loaded.prior_kind == "vamp" and loaded.prior_components == K
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value, err_msg=name)
    z = mv.tensor(r.normal(size=(4, Z)).astype(np.float32))
    np.testing.assert_array_equal(loaded.prior().log_prob(z).numpy(), model.prior().log_prob(z).numpy())
    np.testing.assert_array_equal(loaded.sample(3, Generator(1)).numpy(), model.sample(3, Generator(1)).numpy())
    assert build("gaussian", model.config, rng=Generator(5)).pseudo_inputs.shape == (K, 16)


@pytest.mark.parametrize("change,error,message", [
    (dict(prior="vamp", flow="planar"), ValueError, "prior='vamp' mixes the posteriors q\\(z\\|u_k\\)"),
    (dict(prior="vamp", prior_components=0), ValueError, "prior_components must be >= 1, got 0"),
    (dict(prior="vamp", prior_components=1.5), TypeError, "prior_components must be an integer, got 1.5"),
    (dict(prior_components=3), ValueError, "prior_components are the mixture's \\(prior='mog' or 'vamp'\\)"),
])
def test_bad_vamp_options_are_refused_naming_them(change, error, message):
    with pytest.raises(error, match=message):
        GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, rng=Generator(0), **change)


VAMP_MODELS = {
    "vamp": lambda: GaussianVAE(X_DIM, (10,), 3, prior="vamp", prior_components=4, rng=Generator(0)),
    "vamp-iwae": lambda: GaussianVAE(X_DIM, (10,), 3, prior="vamp", prior_components=2, objective="iwae", samples=3,
                                     rng=Generator(0)),
}


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("name", list(VAMP_MODELS))
def test_replayed_steps_equal_eager_steps_bit_for_bit(name, numba):
    """tests/test_plan.py's check (4 steps, 1 recorded and 3 replayed, β changing each step) for the VampPrior."""
    with use_numba(numba):
        assert_same_run(eager_run(VAMP_MODELS[name]), plan_run(VAMP_MODELS[name]))


# ---- on the device: tests/test_device.py's stand-in for CuPy (strict arrays that log every copy to the host) ----
def _steps_and_draws(device):
    """Three Adam steps of a VampPrior model at β = 0.5, then model.sample and the prior's log-density of its draws; the
    copies to the host and the uploads made inside them."""
    from tests.strict_array import UPLOADS, record
    x_all = (np.random.default_rng(0).random((12, 20)) < 0.4).astype(np.float32)
    model = GaussianVAE(20, (8,), 3, prior="vamp", prior_components=4, rng=Generator(0), device=device)
    optimizer, rng, losses = Adam(model.parameters(), lr=1e-2), Generator(4), []
    batches = [mv.tensor(x_all[4 * step:4 * step + 4], device=device) for step in range(3)]  # (uploaded here)
    with record() as log, record(UPLOADS) as up:
        for step, x in enumerate(batches):
            loss = model.loss(x, rng, step=step, beta=0.5)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss)
        prior = model.prior()
        out = [model.sample(5, Generator(2)), prior.mean, prior.log_prob(prior.sample((6,), rng=rng))]
    return losses + out + [p for _, p in model.named_parameters()], log, up


def test_training_and_sampling_on_the_device_match_the_cpu_and_copy_nothing_back():
    from minivae._backend import use_cuda_kernels
    from tests.strict_array import describe, emulating
    from tests.test_device import host
    with use_numba(False), use_cuda_kernels(False), emulating():
        expected, _, _ = _steps_and_draws("cpu")
        got, log, uploads = _steps_and_draws("cuda")
        assert [g.device for g in got] == ["cuda"] * len(got)
        got, expected = [host(g) for g in got], [host(e) for e in expected]
    assert log == [], describe(log)
    assert uploads == [], describe(uploads)
    for i, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_array_equal(g, e, err_msg=str(i))


# ---- the command line ----
SMALL = ["--limit", "100", "--hidden", "16", "--batch-size", "50", "--z-dim", "2", "--seed", "3"]


def test_cli_trains_evaluates_and_samples_a_vamp_prior(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--model", "gaussian", "--prior", "vamp", "--prior-components", 10, "--epochs", 2, "--out", out,
               *SMALL) == 0
    assert "a VampPrior of 10 pseudo-inputs" in capsys.readouterr().out
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.config["prior"] == "vamp" and model.config["prior_components"] == 10
    assert model.pseudo_inputs.shape == (10, 784)
    assert run("eval", out / "checkpoint.npz", "--limit", 50, "-k", 20) == 0
    assert run("sample", out / "checkpoint.npz", "--n", 4, "--out", tmp_path / "s.png") == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("flags,message", [
    (["--model", "categorical", "--prior", "vamp"], "--prior vamp is the gaussian model's learned prior"),
    (["--model", "gaussian", "--prior", "vamp", "--flow", "planar"], "prior='vamp' mixes the posteriors q(z|u_k)"),
])
def test_cli_refuses_bad_combinations_in_one_line_writing_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    assert run("train", *flags, "--out", out, *SMALL) == 1
    assert message in one_error_line(capsys)
    assert not out.exists()
