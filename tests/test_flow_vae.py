"""GaussianVAE(flow=…, flow_length=K): the loss (ELBO and IWAE) against the planar-flow posterior written out in NumPy
from the same noise; the posterior's log_prob of its own draws and the importance-sampled log p(x) likewise; K = 0 is
the plain model bit for bit; identity flows make the sampled KL an unbiased estimate of the closed-form one; Adam steps
raise the ELBO; checkpoints and the CLI (--flow, --flow-length, --resume's check, the refusals); one step on the
strict device stand-in copies nothing to the host."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import objectives as O
from minivae.distributions import TransformedDistribution
from minivae.models import GaussianVAE, build
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import load_checkpoint
from tests.test_cli import one_error_line, run
from tests.test_multi_sample import float64, log_bernoulli, log_mean_exp, log_normal, mlp

X = (np.random.default_rng(0).random((3, 6)) < 0.4).astype(np.float64)
Z = 2


def model_of(flow, length, **kw):
    return float64(GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, activation="tanh", flow=flow, flow_length=length,
                               rng=Generator(0), **kw))


def numpy_planar(z, params):
    """K planar flows written out (Rezende & Mohamed eq. 10–12 with û): (z_K, Σ log|det J|)."""
    total = 0.0
    for p in np.split(params, params.shape[-1] // (2 * Z + 1), axis=-1):
        u, w, b = p[..., :Z], p[..., Z:2 * Z], p[..., 2 * Z:]
        wu = (w * u).sum(-1, keepdims=True)
        u_hat = u + (np.logaddexp(0, wu) - 1 - wu) * w / (w * w).sum(-1, keepdims=True)
        a = (w * z).sum(-1, keepdims=True) + b
        total = total + np.log(np.abs(1 + ((1 - np.tanh(a) ** 2) * (w * u_hat).sum(-1, keepdims=True))))[..., 0]
        z = z + u_hat * np.tanh(a)
    return z, total


def numpy_log_weights(model, x, eps):
    """log p(x|z_K) + log N(z_K; 0, I) − log q_K(z_K|x), log q_K = log N(z_0; μ, σ²) − Σ log|det J|, z_0 = μ + σ·ε."""
    h = mlp(model.encoder.layers, x)
    mu, log_var, extra = h[:, :Z], h[:, Z:2 * Z], h[:, 2 * Z:]
    sigma = np.exp(0.5 * log_var)
    z0 = mu + sigma * eps
    z, log_det = numpy_planar(z0, np.broadcast_to(extra, eps.shape[:-1] + extra.shape[-1:]))
    return log_bernoulli(x, mlp(model.decoder.layers, z)) + log_normal(z, 0.0, 1.0) - (log_normal(z0, mu, sigma)
                                                                                       - log_det)


@pytest.mark.parametrize("samples", [1, 3])
def test_elbo_loss_is_the_planar_posterior_written_out(samples):
    model = model_of("planar", 2, samples=samples)
    loss = model.loss(mv.tensor(X), Generator(5)).item()
    eps = Generator(5).normal((3, Z) if samples == 1 else (samples, 3, Z), np.float64)
    assert loss == pytest.approx(-numpy_log_weights(model, X, eps).mean(), rel=1e-12)


def test_iwae_loss_is_the_planar_posterior_written_out():
    model = model_of("planar", 3, objective="iwae", samples=4)
    loss = model.loss(mv.tensor(X), Generator(5)).item()
    eps = Generator(5).normal((4, 3, Z), np.float64)
    assert loss == pytest.approx(-log_mean_exp(numpy_log_weights(model, X, eps)).mean(), rel=1e-12)


def test_posterior_scores_its_own_draws_and_importance_sampling_reads_it():
    model = model_of("planar", 2)
    q = model.posterior(mv.tensor(X))
    assert isinstance(q, TransformedDistribution) and q.event_shape == (Z,) and q.batch_shape == (3,)
    z = q.rsample((4,), rng=Generator(6))
    eps = Generator(6).normal((4, 3, Z), np.float64)
    h = mlp(model.encoder.layers, X)
    z0 = h[:, :Z] + np.exp(0.5 * h[:, Z:2 * Z]) * eps
    z_k, log_det = numpy_planar(z0, np.broadcast_to(h[:, 2 * Z:], (4, 3, h.shape[1] - 2 * Z)))
    np.testing.assert_allclose(z.numpy(), z_k, rtol=1e-12)
    np.testing.assert_allclose(q.log_prob(z).numpy(), log_normal(z0, h[:, :Z], np.exp(0.5 * h[:, Z:2 * Z])) - log_det,
                               rtol=1e-12)
    # log_likelihood_is: two chunks of 3 draws, log-mean-exp of the log weights written out
    got = O.log_likelihood_is(model, mv.tensor(X), Generator(7), k=6, chunk=3).numpy()
    rng = Generator(7)
    eps = np.concatenate([rng.normal((3, 3, Z), np.float64), rng.normal((3, 3, Z), np.float64)])
    np.testing.assert_allclose(got, log_mean_exp(numpy_log_weights(model, X, eps)), rtol=1e-12)
    for value in (O.elbo(model, mv.tensor(X), Generator(1), k=3), O.iwae_bound(model, mv.tensor(X), Generator(1), k=3)):
        assert value.shape == (3,) and np.isfinite(value.numpy()).all()


@pytest.mark.parametrize("flow", ["planar", "radial", "iaf"])
@pytest.mark.parametrize("objective,samples", [("elbo", 1), ("iwae", 3)])
def test_zero_flows_are_the_plain_model_bit_for_bit(flow, objective, samples):
    x = mv.tensor(X.astype(np.float32))
    plain = GaussianVAE(6, (5,), Z, objective=objective, samples=samples, rng=Generator(0))
    zero = GaussianVAE(6, (5,), Z, objective=objective, samples=samples, flow=flow, flow_length=0, rng=Generator(0))
    assert zero.config["flow"] == flow and zero.config["flow_length"] == 0 and "flow" not in plain.config
    for a, b in zip(plain.parameters(), zero.parameters(), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    a, b = plain.loss(x, Generator(3)), zero.loss(x, Generator(3))
    a.backward()
    b.backward()
    assert a.item() == b.item()
    for p, q in zip(plain.parameters(), zero.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)


def test_identity_flows_give_an_unbiased_sampled_kl():
    """Radial flows whose raw α′ and β′ are the same encoder outputs have β = softplus(β′) − softplus(α′) = 0 exactly:
    f is the identity, log-det 0, z_K = z_0. The flow model's loss then differs from the plain model's (the same
    encoder, decoder and noise) only by mean(log q_0(z) − log p(z)) − KL(q ‖ N(0, I)): 4000 draws an example put that
    within 4 standard errors of 0, and the NumPy estimate of the same draws is the difference itself."""
    s = 4000
    plain = float64(GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, activation="tanh", samples=s, rng=Generator(0)))
    flow = model_of("radial", 2, samples=s)
    for a, b in zip(plain.decoder.parameters(), flow.decoder.parameters()):
        b.data = a.data.copy()
    first, last = plain.encoder.layers[0], plain.encoder.layers[-1]
    flow.encoder.layers[0].weight.data, flow.encoder.layers[0].bias.data = first.weight.data, first.bias.data
    r = np.random.default_rng(1)
    w = np.concatenate([last.weight.data, r.normal(size=(5, 2 * (Z + 2)))], axis=1)
    bias = np.concatenate([last.bias.data, r.normal(size=2 * (Z + 2))])
    for k in range(2):  # each radial flow's (z₀, α′, β′): β′'s column a copy of α′'s
        alpha = 2 * Z + k * (Z + 2) + Z
        w[:, alpha + 1], bias[alpha + 1] = w[:, alpha], bias[alpha]
    flow.encoder.layers[-1].weight.data, flow.encoder.layers[-1].bias.data = w, bias
    x = mv.tensor(X)
    difference = flow.loss(x, Generator(2)).item() - plain.loss(x, Generator(2)).item()
    h = mlp(plain.encoder.layers, X)
    mu, sigma = h[:, :Z], np.exp(0.5 * h[:, Z:])
    z = mu + sigma * Generator(2).normal((s, 3, Z), np.float64)
    sampled = log_normal(z, mu, sigma) - log_normal(z, 0.0, 1.0)  # (S, B)
    exact = (0.5 * (mu ** 2 + sigma ** 2 - 1) - np.log(sigma)).sum(-1)
    assert difference == pytest.approx((sampled - exact).mean(), rel=1e-9, abs=1e-12)
    assert abs(difference) < 4 * sampled.std() / math.sqrt(s * 3), difference


@pytest.mark.parametrize("flow", ["planar", "radial", "iaf"])
def test_a_few_adam_steps_raise_the_elbo(flow):
    r = np.random.default_rng(4)
    patterns = (r.random((2, 12)) < 0.5).astype(np.float32)
    x = mv.tensor(np.abs(patterns[r.integers(0, 2, 16)] - (r.random((16, 12)) < 0.05)).astype(np.float32))
    model = GaussianVAE(x_dim=12, hidden=(8,), z_dim=2, flow=flow, flow_length=2, rng=Generator(0))
    opt, rng = Adam(model.parameters(), lr=0.03), Generator(1)
    with mv.no_grad():
        before = O.elbo(model, x, Generator(9), k=100).numpy().mean()
    for _ in range(30):
        loss = model.loss(x, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with mv.no_grad():
        after = O.elbo(model, x, Generator(9), k=100).numpy().mean()
    assert after > before + 1, (before, after)


@pytest.mark.parametrize("flow", ["planar", "iaf"])
def test_state_and_config_round_trip(flow):
    model = GaussianVAE(6, (5,), Z, flow=flow, flow_length=3, rng=Generator(0))
    for p in model.parameters():
        p.data = p.data + np.float32(0.1)
    again = build("gaussian", model.config, rng=Generator(1))
    again.load_state_dict(model.state_dict())
    x = mv.tensor(X.astype(np.float32))
    assert model.loss(x, Generator(2)).item() == again.loss(x, Generator(2)).item()


def test_bad_options():
    with pytest.raises(ValueError, match="flow must be None or one of"):
        GaussianVAE(6, (5,), Z, flow="maf", rng=Generator(0))
    with pytest.raises(ValueError, match="flow_length is the number of flows"):
        GaussianVAE(6, (5,), Z, flow_length=2, rng=Generator(0))
    with pytest.raises(ValueError, match="flow_length must be >= 0"):
        GaussianVAE(6, (5,), Z, flow="iaf", flow_length=-1, rng=Generator(0))
    assert GaussianVAE(6, (5,), Z, flow="radial", rng=Generator(0)).flow_length == 4


# ---- the CLI --------------------------------------------------------------------------------------------------
SMALL = ["--limit", "100", "--hidden", "16", "--batch-size", "100", "--z-dim", "2", "--seed", "3"]


def test_cli_trains_a_flow_posterior_and_resume_checks_it(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--model", "gaussian", *SMALL, "--out", out]
    assert run(*args, "--flow", "iaf", "--flow-length", 2, "--epochs", 1) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.config["flow"] == "iaf" and model.config["flow_length"] == 2 and len(model.flow.layers) == 2
    assert run("eval", out / "checkpoint.npz", "--limit", 20, "-k", 10) == 0
    capsys.readouterr()
    assert run(*args, "--flow", "planar", "--flow-length", 2, "--epochs", 2, "--resume") == 1
    assert "--flow (checkpoint iaf, now planar)" in one_error_line(capsys)
    assert run(*args, "--flow", "iaf", "--flow-length", 2, "--epochs", 2, "--resume") == 0


@pytest.mark.parametrize("flags,message", [
    (["--model", "categorical", "--flow", "planar"], "--flow planar is a normalizing-flow posterior of the gaussian"),
    (["--model", "gaussian", "--flow-length", 3], "--flow-length is the number of flows: it needs --flow"),
])
def test_cli_refusals(tmp_path, capsys, flags, message):
    assert run("train", *flags, "--out", tmp_path / "run", "--limit", 10) == 1
    assert message in one_error_line(capsys) and not (tmp_path / "run").exists()


# ---- on the device stand-in -------------------------------------------------------------------------------------
def test_a_training_step_on_the_device_is_the_cpus_and_copies_nothing_back():
    """(The CPU's run with Numba off, as the device's: ops.reparameterize's Numba kernel rounds σ·ε otherwise, in its
    last bit, than its array code, which the device runs.)"""
    from minivae._backend import use_numba
    from tests.strict_array import assert_device_run_is_the_cpus

    def step(device):
        with use_numba(False):
            return steps(device)

    def steps(device):
        out = []
        for flow, objective, samples in (("planar", "elbo", 1), ("radial", "elbo", 2), ("iaf", "iwae", 2)):
            model = GaussianVAE(6, (5,), Z, flow=flow, flow_length=2, objective=objective, samples=samples,
                                rng=Generator(0), device=device)
            optimizer = Adam(model.parameters(), lr=1e-2)
            loss = model.loss(mv.tensor(X.astype(np.float32), device=device), Generator(4))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            out += [loss] + list(model.parameters())
        return out
    assert_device_run_is_the_cpus(step)


@pytest.mark.parametrize("flow,objective,samples", [("planar", "elbo", 1), ("radial", "elbo", 2), ("iaf", "iwae", 3)])
def test_replayed_steps_equal_eager_steps_bit_for_bit(flow, objective, samples):
    """tests/test_plan.py's check (4 steps, 1 recorded and 3 replayed, β changing each step) for the flow posteriors."""
    from tests.test_plan import X_DIM, assert_same_run, eager_run, plan_run

    def make():
        return GaussianVAE(X_DIM, (8,), 3, flow=flow, flow_length=2, objective=objective, samples=samples,
                           rng=Generator(0))
    assert_same_run(eager_run(make), plan_run(make))


def test_a_flow_posterior_s_code_is_its_flows_applied_to_mu():
    """models.code (what reconstruct, interpolate and traverse decode) of a planar posterior: the written-out flows at
    z_0 = μ (the pushed-forward density's mode has no closed form); reconstruct decodes it."""
    from minivae.models import code, reconstruct
    model = model_of("planar", 3)
    h = mlp(model.encoder.layers, X)
    expected, _ = numpy_planar(h[:, :Z], h[:, 2 * Z:])
    x = mv.tensor(X)
    np.testing.assert_allclose(code(model, x).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(reconstruct(model, x).numpy(), 1 / (1 + np.exp(-mlp(model.decoder.layers, expected))),
                               rtol=1e-12)
