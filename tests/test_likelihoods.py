"""likelihood= on the three VAEs: each likelihood's log p(x|z) against formulas written out with math.* (the
continuous Bernoulli's constant against numerical quadrature), training lowers the loss on synthetic grey images,
checkpoints carry the likelihood (an old one without the entry loads as Bernoulli), a training step on the strict
device stand-in copies nothing to the host, and a step plan (--graph) replays the new likelihoods bit for bit."""
import json
import math

import numpy as np
import pytest

import minivae as mv
from minivae import objectives
from minivae.distributions import ContinuousBernoulli
from minivae._backend import use_numba
from minivae.models import IMAGE_LIKELIHOODS, BernoulliVAE, CategoricalVAE, GaussianVAE
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import load_checkpoint, save_checkpoint, train
from tests.strict_array import assert_device_run_is_the_cpus

SIDE = 4
X_DIM = SIDE * SIDE
MODELS = {
    "gaussian": lambda likelihood, **kw: GaussianVAE(X_DIM, (12,), 3, likelihood=likelihood, rng=Generator(0), **kw),
    "categorical": lambda likelihood, **kw: CategoricalVAE(X_DIM, (12,), 3, 4, likelihood=likelihood, rng=Generator(0),
                                                           **kw),
    "bernoulli": lambda likelihood, **kw: BernoulliVAE(X_DIM, (12,), 5, likelihood=likelihood, rng=Generator(0), **kw),
}


def grey_images(n=24, seed=0):
    """Smooth 8-bit grey images k/255 (float32, as minivae.data loads IDX files): blobs of two kinds, edges of 0 and
    255 included, so that a model has something to learn and every bin kind (both edges, the interior) occurs."""
    rng = np.random.default_rng(seed)
    i, j = np.meshgrid(np.arange(SIDE), np.arange(SIDE), indexing="ij")
    images = []
    for _ in range(n):
        ci, cj, w = rng.uniform(0, SIDE - 1), rng.uniform(0, SIDE - 1), rng.uniform(0.8, 2.0)
        blob = np.exp(-((i - ci) ** 2 + (j - cj) ** 2) / (2 * w * w)) * rng.uniform(0.7, 1.3)
        images.append(np.clip(np.rint(blob * 255), 0, 255).ravel())
    return np.array(images, np.float32) / np.float32(255)


def _log_sigmoid(t):
    return -math.log1p(math.exp(-t)) if t >= 0 else t - math.log1p(math.exp(t))


def _cb_log_normalizer_by_quadrature(eta, n=20_000):
    """log C(η) = −log ∫₀¹ λᵗ(1 − λ)¹⁻ᵗ dt, λ = σ(η), by composite Simpson's rule on n intervals (in NumPy float64),
    the integrand λᵗ(1 − λ)¹⁻ᵗ = exp(ηt − softplus(η)) written as exp(|η|·(u − 1)) times exp(|η| − softplus(|η|)),
    u = t or 1 − t (its mirror; the integral is the same), so that nothing overflows at |η| = 10⁴; over u ≥ 1 − 60/|η|
    alone where that is inside [0, 1] (below it the integrand is under e⁻⁶⁰ of its peak)."""
    a = abs(eta)
    u = np.linspace(max(0.0, 1 - 60 / a) if a else 0.0, 1.0, n + 1)
    f = np.exp(a * (u - 1))
    integral = (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum()) * (u[1] - u[0]) / 3
    softplus = a + math.log1p(math.exp(-a))
    return -(a - softplus + math.log(integral))


@pytest.mark.parametrize("eta", [-1e4, -30.0, -2.0, -1e-3, -1e-6, 0.0, 1e-6, 1e-3, 0.004, 2.0, 30.0, 1e4])
def test_continuous_bernoulli_constant_against_quadrature(eta):
    """Near λ = ½ (η → 0: C → 2, the window of Taylor expansions) and at logits ±10⁴, float64."""
    d = ContinuousBernoulli(logits=mv.tensor(np.float64(eta)))
    for x in (0.0, 0.3, 1.0):
        expected = x * eta - (max(eta, 0) + math.log1p(math.exp(-abs(eta)))) + _cb_log_normalizer_by_quadrature(eta)
        assert d.log_prob(np.float64(x)).item() == pytest.approx(expected, rel=1e-9, abs=1e-9), x


def _expected_log_prob(kind, out, x, log_scale):
    """Σ_pixels log p(x|z) of one image, from the decoder's output ``out`` by math.* loops."""
    total = 0.0
    for i, (o, v) in enumerate(zip(out, x)):
        o, v = float(o), float(v)
        if kind == "bernoulli":
            total += v * _log_sigmoid(o) + (1 - v) * _log_sigmoid(-o)
        elif kind == "gaussian":
            s = math.exp(float(log_scale[0]))
            total += -0.5 * ((v - o) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
        elif kind == "continuous_bernoulli":  # C(λ) = 2·artanh(1 − 2λ)/(1 − 2λ), λ = σ(o); 2 at λ = ½
            lam = 1 / (1 + math.exp(-o))
            log_c = math.log(2 * math.atanh(1 - 2 * lam) / (1 - 2 * lam)) if abs(o) > 1e-3 else \
                math.log(1 + math.exp(o)) + math.log(o / math.expm1(o) if o else 1.0)  # (1 + eᵑ)·η/(eᵑ − 1)
            total += v * math.log(lam) + (1 - v) * math.log(1 - lam) + log_c
        else:  # discretized logistic of 8-bit grey levels, edge bins open
            s, k = math.exp(float(log_scale[i])), round(v * 255)
            t_lo = ((k - 0.5) / 255 - o) / s if k > 0 else -math.inf
            t_hi = ((k + 0.5) / 255 - o) / s if k < 255 else math.inf
            if t_lo > 0:  # above μ: the difference of the survival function σ(−t), without cancelling digits near 1
                total += math.log(math.exp(_log_sigmoid(-t_lo)) - (math.exp(_log_sigmoid(-t_hi)) if k < 255 else 0.0))
            else:
                total += math.log((math.exp(_log_sigmoid(t_hi)) if k < 255 else 1.0) -
                                  (math.exp(_log_sigmoid(t_lo)) if k > 0 else 0.0))
    return total


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("likelihood", IMAGE_LIKELIHOODS)  # counts: tests/test_count_likelihoods.py
def test_log_likelihood_of_each_model_is_the_formula(model, likelihood):
    vae = MODELS[model](likelihood).double()
    x = grey_images(3).astype(np.float64)
    if likelihood == "bernoulli":
        x = (x > 0.5).astype(np.float64)
    with mv.no_grad():
        z = vae.prior().sample((3,), rng=Generator(1))
        got = vae.likelihood(z).log_prob(mv.tensor(x)).sum(axis=-1).numpy()
        out = (vae.decoder(z if z.ndim == 2 else mv.ops.reshape(z, (3, -1)))).numpy()
    log_scale = vae.log_scale.numpy() if hasattr(vae, "log_scale") else None
    for b in range(3):
        assert got[b] == pytest.approx(_expected_log_prob(likelihood, out[b], x[b], log_scale), rel=1e-10)


def test_likelihood_sizes_and_refusal():
    assert GaussianVAE(X_DIM, (4,), 2, likelihood="discretized_logistic", rng=Generator(0)).log_scale.shape == (X_DIM,)
    assert BernoulliVAE(X_DIM, (4,), 2, likelihood="gaussian", rng=Generator(0)).log_scale.shape == (1,)
    assert not hasattr(CategoricalVAE(X_DIM, (4,), 2, 3, likelihood="continuous_bernoulli", rng=Generator(0)),
                       "log_scale")
    with pytest.raises(ValueError, match="likelihood must be one of"):
        CategoricalVAE(X_DIM, (4,), 2, 3, likelihood="laplace", rng=Generator(0))


def train_then_reload(vae, x, likelihood, tmp_path):
    """25 Adam steps on x raise the ELBO by more than a nat (every loss finite); the checkpoint records the likelihood,
    and the model it loads has the same parameters and buffers and the same p(x|z) at draws of the prior. Returns
    (vae, loaded)."""
    before = objectives.elbo(vae, x, Generator(5)).numpy().mean()
    assert np.isfinite(before)
    optimizer, rng = Adam(vae.parameters(), lr=2e-2), Generator(2)
    for step in range(25):
        loss = vae.loss(x, rng, step=step)
        assert np.isfinite(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = objectives.elbo(vae, x, Generator(5)).numpy().mean()
    assert after > before + 1.0, (before, after)
    save_checkpoint(tmp_path / "c.npz", vae, optimizer, rng, 1, 25)
    loaded, arrays = load_checkpoint(tmp_path / "c.npz")
    assert json.loads(str(arrays["meta/config"]))["likelihood"] == likelihood
    assert loaded.likelihood_kind == likelihood and loaded.config == vae.config
    for (name, p), (_, q) in zip([*vae.named_parameters(), *vae.named_buffers()],
                                 [*loaded.named_parameters(), *loaded.named_buffers()], strict=True):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    with mv.no_grad():
        z = vae.prior().sample((4,), rng=Generator(3))
        np.testing.assert_array_equal(loaded.likelihood(z).log_prob(x[:4]).numpy(), vae.likelihood(z).log_prob(x[:4]).numpy())
    return vae, loaded


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("likelihood", IMAGE_LIKELIHOODS[1:])
def test_adam_steps_lower_the_loss_on_grey_images_and_the_checkpoint_round_trips(model, likelihood, tmp_path):
    vae = MODELS[model](likelihood)
    _, loaded = train_then_reload(vae, mv.tensor(grey_images()), likelihood, tmp_path)
    with mv.no_grad():
        assert loaded.sample(2, Generator(0)).shape == (2, X_DIM)


@pytest.mark.parametrize("model", ["categorical", "bernoulli"])
def test_a_checkpoint_without_the_likelihood_loads_as_bernoulli(model, tmp_path):
    """A discrete model's config records the likelihood only when it is not Bernoulli: a checkpoint written before the
    option (no entry) is a Bernoulli model's, and the Bernoulli model's config is the old one, key for key."""
    vae = MODELS[model]("bernoulli")
    assert "likelihood" not in vae.config
    save_checkpoint(tmp_path / "c.npz", vae, Adam(vae.parameters()), Generator(0), 1, 1)
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    assert loaded.likelihood_kind == "bernoulli" and not hasattr(loaded, "log_scale")
    assert MODELS[model]("gaussian").config["likelihood"] == "gaussian"


@pytest.mark.parametrize("model, likelihood", [("gaussian", "continuous_bernoulli"), ("gaussian", "discretized_logistic"),
                                               ("categorical", "gaussian"), ("bernoulli", "discretized_logistic")])
def test_a_training_step_on_the_device_copies_nothing_to_the_host(model, likelihood):
    x = grey_images(6)

    def run(device):
        vae = MODELS[model](likelihood, device=device)
        optimizer = Adam(vae.parameters(), lr=1e-2)
        loss = vae.loss(mv.tensor(x, device=device), Generator(4))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with mv.no_grad():
            mean = vae.sample(2, Generator(1))
        return [loss, mean, *(p for p in vae.parameters())]
    with use_numba(False):  # the CPU's array formulas, as the stand-in runs them (a fused kernel may differ by an ulp)
        assert_device_run_is_the_cpus(run)


@pytest.mark.parametrize("model, likelihood", [("gaussian", "discretized_logistic"), ("bernoulli", "continuous_bernoulli")])
def test_a_step_plan_trains_the_new_likelihoods_as_the_eager_steps(model, likelihood, tmp_path):
    data = {"train": grey_images(40), "valid": grey_images(10, seed=1)}
    runs = []
    for graph in (False, True):
        vae = MODELS[model](likelihood)
        train(vae, data, tmp_path / str(graph), epochs=2, batch_size=10, lr=1e-2, seed=3, graph=graph,
              log=lambda *a: None)
        runs.append(vae)
    for (name, p), (_, q) in zip(runs[0].named_parameters(), runs[1].named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    assert (tmp_path / "False" / "metrics.csv").read_text().split("\n")[2].split(",")[:4] == \
        (tmp_path / "True" / "metrics.csv").read_text().split("\n")[2].split(",")[:4]
