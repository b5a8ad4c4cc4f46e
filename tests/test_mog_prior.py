"""GaussianVAE(prior="mog"): a learned mixture-of-Gaussians prior p(z) = Σ_k π_k N(z; m_k, diag(s_k²)).

The loss against −(log p(x|z) − β(log q(z|x) − log p(z))) written out in NumPy from the same noise (Generator(s).normal
of the shape the loss draws), the IWAE bound's too; the prior's parameters' gradients against float64 central
differences; samples from the mixture reproduced from the Generator's draws; checkpoints (the prior's parameters and
config entries saved and reloaded, a config without them a standard prior); bad options refused; step plans replay it
bit for bit; a short run learns."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import objectives as O
from minivae._backend import use_numba
from minivae.distributions import MixtureSameFamily, Normal
from minivae.models import GaussianVAE, build
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import load_checkpoint, train
from tests.test_multi_sample import float64, log_bernoulli, log_normal, mlp
from tests.test_plan import X_DIM, assert_same_run, eager_run, plan_run

X = (np.random.default_rng(0).random((3, 6)) < 0.4).astype(np.float64)
K, Z = 3, 2


def mog(**kw):
    """A float64 GaussianVAE (6 → 5 → 2·2, tanh) of a 3-component prior whose weights, means and scales are set apart
    from their initial values (unequal weights, scales not 1)."""
    model = float64(GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, activation="tanh", prior="mog", prior_components=K,
                                rng=Generator(0), **kw))
    r = np.random.default_rng(1)
    model.prior_logits.data = r.normal(size=K)
    model.prior_loc.data = r.normal(size=(K, Z))
    model.prior_log_scale.data = r.normal(size=(K, Z)) * 0.3
    return model


def numpy_log_prior(model, z):
    """log Σ_k π_k Π_d N(z_d; m_kd, s_kd²), π = softmax(logits), s = exp(log-scale), by logaddexp over k."""
    logits, m, s = model.prior_logits.data, model.prior_loc.data, np.exp(model.prior_log_scale.data)
    log_pi = logits - np.logaddexp.reduce(logits)
    return np.logaddexp.reduce(log_pi + log_normal(z[..., None, :], m, s), axis=-1)


def numpy_terms(model, x, eps):
    """(log p(x|z), log q(z|x), log p(z)) at z = μ + σ·ε, the networks written out."""
    h = mlp(model.encoder.layers, x)
    mu, log_var = h[..., :Z], h[..., Z:]
    sigma = np.exp(0.5 * log_var)
    z = mu + sigma * eps
    return log_bernoulli(x, mlp(model.decoder.layers, z)), log_normal(z, mu, sigma), numpy_log_prior(model, z)


@pytest.mark.parametrize("samples,beta", [(1, 1.0), (1, 0.3), (2, 2.5)])
def test_loss_is_the_negative_elbo_with_a_sampled_kl_written_out(samples, beta):
    """−mean(log p(x|z) − β(log q(z|x) − log p(z))) at ε = Generator(5).normal((samples, B, Z)) (the shape the loss
    draws: its K copies of the batch; B, Z without copies)."""
    model = mog(samples=samples)
    loss = model.loss(mv.tensor(X), Generator(5), beta=beta).item()
    eps = Generator(5).normal(((samples,) if samples > 1 else ()) + (3, Z), np.float64)
    ll, lq, lp = numpy_terms(model, X, eps)
    assert loss == pytest.approx(-(ll - beta * (lq - lp)).mean(), rel=1e-13)


@pytest.mark.parametrize("beta", [1.0, 0.4])
def test_iwae_log_weights_take_the_mixture_s_log_prior(beta):
    model = mog(objective="iwae", samples=4)
    loss = model.loss(mv.tensor(X), Generator(6), beta=beta).item()
    ll, lq, lp = numpy_terms(model, X, Generator(6).normal((4, 3, Z), np.float64))
    w = ll + beta * (lp - lq)
    assert loss == pytest.approx(-(np.logaddexp.reduce(w, axis=0) - math.log(4)).mean(), rel=1e-13)


def test_the_loss_is_the_objectives_elbo_and_its_bounds_take_the_mixture():
    """objectives.elbo has no closed-form KL to a mixture: it samples it, from the same ε as the loss; iwae_bound and
    log_likelihood_is score log p(z) by the mixture."""
    model, x = mog(), mv.tensor(X)
    assert model.loss(x, Generator(4)).item() == pytest.approx(-O.elbo(model, x, Generator(4)).numpy().mean(), rel=1e-12)
    ll, lq, lp = numpy_terms(model, X, Generator(2).normal((5, 3, Z), np.float64))
    np.testing.assert_allclose(O.iwae_bound(model, x, Generator(2), k=5).numpy(),
                               np.logaddexp.reduce(ll + lp - lq, axis=0) - math.log(5), rtol=1e-12)


def test_gradients_in_the_prior_s_parameters_are_the_central_differences():
    """Every entry of the prior's logits, means and log-scales, and an encoder weight (through z), against
    (L(θ + h) − L(θ − h))/2h in float64, h = 10⁻⁶."""
    model, x = mog(), mv.tensor(X)
    model.loss(x, Generator(2), beta=0.7).backward()
    first = model.encoder.layers[0].weight
    for p in (model.prior_logits, model.prior_loc, model.prior_log_scale, first):
        assert p.grad is not None and np.abs(p.grad).max() > 0
        entries = list(np.ndindex(p.data.shape))[:15]
        for i in entries:
            old = p.data[i]
            p.data[i] = old + 1e-6
            up = model.loss(x, Generator(2), beta=0.7).item()
            p.data[i] = old - 1e-6
            down = model.loss(x, Generator(2), beta=0.7).item()
            p.data[i] = old
            assert p.grad[i] == pytest.approx((up - down) / 2e-6, rel=1e-6, abs=1e-9), i


def test_sample_draws_z_from_the_mixture():
    """model.sample(n, Generator(s)): Gumbel noise (n, K) picks k = argmax(log π + g), the normals (n, K, Z) that
    follow make z = m_k + s_k·ε_k, the images σ(decoder(z))."""
    model = mog()
    rng = Generator(3)
    g, eps = rng.gumbel((8, K), np.float64), rng.normal((8, K, Z), np.float64)
    logits = model.prior_logits.data
    k = np.argmax(logits - np.logaddexp.reduce(logits) + g, axis=-1)
    z = model.prior_loc.data[k] + np.exp(model.prior_log_scale.data[k]) * eps[np.arange(8), k]
    want = 1 / (1 + np.exp(-mlp(model.decoder.layers, z)))
    np.testing.assert_allclose(model.sample(8, Generator(3)).numpy(), want, rtol=1e-12)
    assert isinstance(model.prior(), MixtureSameFamily) and model.prior().event_shape == (Z,)


def test_initial_prior_and_config():
    """Equal weights, unit scales, means drawn after the networks (which are those of the standard model of the same
    seed); prior and prior_components recorded in the config, and K = 10 by default."""
    a = GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, prior="mog", prior_components=4, rng=Generator(0))
    b = GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, rng=Generator(0))
    for name, value in b.state_dict().items():
        np.testing.assert_array_equal(a.state_dict()[name], value, err_msg=name)
    np.testing.assert_array_equal(a.prior_logits.data, np.zeros(4))
    np.testing.assert_array_equal(a.prior_log_scale.data, np.zeros((4, Z)))
    assert np.unique(a.prior_loc.data).size == 4 * Z and a.prior_loc.data.dtype == np.float32
    assert a.config["prior"] == "mog" and a.config["prior_components"] == 4
    assert GaussianVAE(x_dim=6, hidden=(5,), prior="mog", rng=Generator(0)).config["prior_components"] == 10
    # the standard prior records neither: its config is that of a checkpoint written before the option existed
    assert "prior" not in b.config and "prior_components" not in b.config
    assert not any(n.startswith("prior") for n in b.state_dict())


def test_a_config_without_prior_loads_a_standard_prior(tmp_path):
    old = dict(x_dim=6, hidden=[5], z_dim=Z, likelihood="bernoulli", activation="relu")
    model = build("gaussian", old, rng=Generator(0))
    assert model.prior_kind == "standard" and type(model.prior()) is Normal
    assert model.config == {**old, "hidden": (5,)}


def test_checkpoint_round_trip_keeps_the_trained_prior(tmp_path):
    r = np.random.default_rng(0)
    data = {"train": (r.random((24, 16)) < 0.4).astype(np.float32), "valid": (r.random((8, 16)) < 0.4).astype(np.float32)}
    model = GaussianVAE(x_dim=16, hidden=(5,), z_dim=Z, prior="mog", prior_components=K, rng=Generator(0))
    initial = model.prior_loc.data.copy()
    train(model, data, tmp_path / "run", epochs=2, batch_size=8, lr=0.05, seed=1, log=lambda *a: None)
    assert np.abs(model.prior_loc.data - initial).max() > 1e-3  # the prior's means were trained
    loaded, _ = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    assert loaded.config == model.config and loaded.prior_kind == "mog" and loaded.prior_components == K
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[name], value, err_msg=name)
    z = mv.tensor(r.normal(size=(4, Z)).astype(np.float32))
    np.testing.assert_array_equal(loaded.prior().log_prob(z).numpy(), model.prior().log_prob(z).numpy())


@pytest.mark.parametrize("change,error,message", [
    (dict(prior="vampire"), ValueError, r"prior must be one of \('standard', 'mog', 'vamp'\), not 'vampire'"),
    (dict(prior=None), ValueError, "prior must be one of"),
    (dict(prior="mog", prior_components=0), ValueError, "prior_components must be >= 1, got 0"),
    (dict(prior="mog", prior_components=2.5), TypeError, "prior_components must be an integer, got 2.5"),
    (dict(prior="mog", prior_components=True), TypeError, "prior_components must be an integer"),
    (dict(prior_components=3), ValueError, "prior_components are the mixture's"),
])
def test_bad_prior_options_are_refused_naming_them(change, error, message):
    with pytest.raises(error, match=message):
        GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, rng=Generator(0), **change)


MOG_MODELS = {
    "mog": lambda: GaussianVAE(X_DIM, (10,), 3, prior="mog", prior_components=4, rng=Generator(0)),
    "mog-iwae": lambda: GaussianVAE(X_DIM, (10,), 3, prior="mog", prior_components=2, objective="iwae", samples=3,
                                    rng=Generator(0)),
}


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("name", list(MOG_MODELS))
def test_replayed_steps_equal_eager_steps_bit_for_bit(name, numba):
    """tests/test_plan.py's check (4 steps, 1 recorded and 3 replayed, β changing each step) for the mixture prior."""
    with use_numba(numba):
        assert_same_run(eager_run(MOG_MODELS[name]), plan_run(MOG_MODELS[name]))


def test_training_with_graph_gives_the_same_checkpoint(tmp_path):
    """train(graph=True) with the mixture prior, β = 0.5 warmed up over 2 epochs, clipping and a last smaller batch:
    the eager run's parameters, optimizer state, RNG state and metrics."""
    r = np.random.default_rng(0)
    data = {"train": (r.random((40, X_DIM)) < 0.3).astype(np.float32),
            "valid": (r.random((10, X_DIM)) < 0.3).astype(np.float32)}
    out = {}
    for graph in (False, True):
        folder = tmp_path / f"graph{graph}"
        train(MOG_MODELS["mog"](), data, folder, epochs=2, batch_size=16, lr=0.02, seed=3, clip=2.0, warmup_epochs=2,
              beta=0.5, graph=graph, log=lambda *a: None)
        out[graph] = dict(np.load(folder / "checkpoint.npz"))
    for key, value in out[False].items():
        if key.startswith(("model/", "optim/", "meta/rng")):
            np.testing.assert_array_equal(value, out[True][key], err_msg=key)
    metrics = [[row[:6] for row in eval(str(out[g]["meta/metrics"]))] for g in (False, True)]  # noqa: S307
    assert metrics[0] == metrics[1] and [row[5] for row in metrics[0][1:]] == [0.0, 0.25]


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_a_short_run_learns(prior):
    """40 Adam steps on 16 images of two patterns: the ELBO (200 samples, fixed noise) rises by nats (both learned
    priors: the mixture's and the VampPrior)."""
    r = np.random.default_rng(4)
    patterns = (r.random((2, 12)) < 0.5).astype(np.float32)
    x = mv.tensor(np.abs(patterns[r.integers(0, 2, 16)] - (r.random((16, 12)) < 0.05)).astype(np.float32))
    model = GaussianVAE(x_dim=12, hidden=(8,), z_dim=2, prior=prior, prior_components=2, rng=Generator(0))
    opt, rng = Adam(model.parameters(), lr=0.03), Generator(1)
    with mv.no_grad():
        before = O.elbo(model, x, Generator(9), k=200).numpy().mean()
    for _ in range(40):
        loss = model.loss(x, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with mv.no_grad():
        after = O.elbo(model, x, Generator(9), k=200).numpy().mean()
    assert after > before + 2, (before, after)


# ---- on the device: tests/test_device.py's stand-in for CuPy (strict arrays that log every copy to the host) ----
def _steps_and_draws(device):
    """Three Adam steps of a mixture-prior model at β = 0.5, then model.sample and the prior's moments; the copies to
    the host and the uploads made inside them."""
    from tests.strict_array import UPLOADS, record
    x_all = (np.random.default_rng(0).random((12, 20)) < 0.4).astype(np.float32)
    model = GaussianVAE(20, (8,), 3, prior="mog", prior_components=4, rng=Generator(0), device=device)
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
        out = [model.sample(5, Generator(2)), prior.mean, prior.variance, prior.log_prob(prior.sample((6,), rng=rng))]
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
