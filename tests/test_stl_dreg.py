"""Sticking the landing (STL) and the doubly reparameterized gradient (DReG), on the one-dimensional Gaussian model
z ~ N(0, 1), x | z ~ N(a·z, 1), whose posterior is N(a·x/(1 + a²), 1/(1 + a²)): each gradient against its formula
written out in closed form at the same draws, the decoder's against IWAE's, both zero where q is the posterior, and
the mean of DReG's (STL's at k = 1) against the mean of IWAE's own pathwise estimate of ∇E[L̂]."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import estimators as E
from minivae import lab
from minivae import ops
from minivae.distributions import Independent, Normal, TransformedDistribution
from minivae.distributions.transforms import AffineTransform
from minivae._backend import use_numba
from minivae.models import GaussianVAE, build
from minivae.random import Generator
from minivae.training import load_checkpoint
from tests.test_cli import one_error_line, run
from tests.test_multi_sample import float64
from tests.test_plan import X_DIM, assert_same_run, eager_run, plan_run

X = 1.3


def posterior(a):
    return a * X / (1 + a * a), 1 / math.sqrt(1 + a * a)


def leaves(n, loc, scale, a):
    """q's loc and scale, one of each for n independent replicas, and the decoder's a: leaf tensors in float64."""
    return (mv.tensor(np.full(n, loc), requires_grad=True), mv.tensor(np.full(n, scale), requires_grad=True),
            mv.tensor(np.float64(a), requires_grad=True))


def log_joint(a):
    """z (k, n) ↦ log N(z; 0, 1) + log N(X; a·z, 1), one value a draw and replica."""
    return lambda z: -0.5 * z * z - 0.5 * (X - a * z) * (X - a * z) - math.log(2 * math.pi)


def gradients(estimator, n, loc, scale, a, k, seed):
    """(∂/∂loc, ∂/∂scale of each replica, ∂/∂a summed) of the estimator's surrogate of Σ_replicas L̂, as arrays."""
    mu, sigma, a = leaves(n, loc, scale, a)
    estimator(log_joint(a), Normal(mu, sigma), k, Generator(seed)).sum().backward()
    return mu.grad, sigma.grad, float(a.grad)


def iwae(log_p, q, k, rng):
    """IWAE's own pathwise estimate: log q with its parameters live (the score term kept)."""
    z = q.rsample((k,), rng=rng)
    return ops.logsumexp(log_p(z) - q.log_prob(z), axis=0) - math.log(k)


def closed_form(n, loc, scale, a, k, seed, power):
    """Σ_i w̃_i^power (∂w_i/∂z_i)·(1, ε_i) and Σ_i w̃_i ∂/∂a log p(X, z_i), by hand at the draws z_i = loc + scale·ε_i
    of ``seed``: ∂w/∂z = −z + a(X − a z) + (z − loc)/scale², φ held fixed in log q."""
    eps = Generator(seed).normal((k, n), np.float64)
    z = loc + scale * eps
    log_w = -0.5 * z * z - 0.5 * (X - a * z) ** 2 + 0.5 * eps * eps + math.log(scale) - 0.5 * math.log(2 * math.pi)
    w = np.exp(log_w - log_w.max(axis=0))
    w /= w.sum(axis=0)
    dw_dz = -z + a * (X - a * z) + (z - loc) / scale ** 2
    return ((w ** power * dw_dz).sum(axis=0), (w ** power * dw_dz * eps).sum(axis=0),
            float((w * (X - a * z) * z).sum()))


@pytest.mark.parametrize("k", [1, 2, 7])
def test_dreg_is_its_formula_at_the_draws(k):
    got = gradients(E.dreg, 5, 0.2, 0.8, 0.9, k, seed=3)
    want = closed_form(5, 0.2, 0.8, 0.9, k, seed=3, power=2)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 7])
def test_stl_is_its_formula_at_the_draws(k):
    got = gradients(E.sticking_the_landing, 5, 0.2, 0.8, 0.9, k, seed=4)
    want = closed_form(5, 0.2, 0.8, 0.9, k, seed=4, power=1)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("k", [1, 4])
def test_the_value_is_the_bound_and_the_decoder_gradient_iwaes(k):
    """Both surrogates' values are the bound L̂ (IWAE's value at the same draws), and their decoder gradient IWAE's."""
    for estimator in (E.dreg, E.sticking_the_landing):
        mu, sigma, a = leaves(6, 0.2, 0.8, 0.9)
        value = estimator(log_joint(a), Normal(mu, sigma), k, Generator(5))
        ref_mu, ref_sigma, ref_a = leaves(6, 0.2, 0.8, 0.9)
        ref = iwae(log_joint(ref_a), Normal(ref_mu, ref_sigma), k, Generator(5))
        np.testing.assert_allclose(value.numpy(), ref.numpy(), rtol=1e-12)
        value.sum().backward()
        ref.sum().backward()
        np.testing.assert_allclose(a.grad, ref_a.grad, rtol=1e-10)


@pytest.mark.parametrize("estimator", [E.dreg, E.sticking_the_landing])
@pytest.mark.parametrize("k", [1, 5])
def test_zero_gradient_per_draw_where_q_is_the_posterior(estimator, k):
    """At q = p(z|x) every log weight is log p(x): the encoder's gradient is 0 at each draw (the pathwise
    estimator's is not: its score term is a draw's noise)."""
    loc, scale = posterior(0.9)
    g_loc, g_scale, _ = gradients(estimator, 50, loc, scale, 0.9, k, seed=6)
    np.testing.assert_allclose(g_loc, 0, atol=1e-12)
    np.testing.assert_allclose(g_scale, 0, atol=1e-12)
    pathwise_scale = gradients(iwae, 50, loc, scale, 0.9, k, seed=6)[1]
    assert np.abs(pathwise_scale).max() > 0.1


def paired_bias(estimator, k, n=20000):
    """The mean over n replicas of (estimator's encoder gradient − IWAE's at the same draws), in standard errors."""
    got = gradients(estimator, n, 0.2, 0.8, 0.9, k, seed=7)
    ref = gradients(iwae, n, 0.2, 0.8, 0.9, k, seed=7)
    return [abs((g - r).mean()) / ((g - r).std() / math.sqrt(n)) for g, r in zip(got[:2], ref[:2])]


@pytest.mark.parametrize("k", [1, 3, 10])
def test_dreg_is_unbiased(k):
    assert max(paired_bias(E.dreg, k)) < 4


def test_stl_is_unbiased_for_one_draw_and_biased_for_several():
    """STL drops a score term whose mean is 0 at k = 1; at k > 1 the IWAE bound's is not 0 (Tucker et al. 2019)."""
    assert max(paired_bias(E.sticking_the_landing, 1)) < 4
    assert max(paired_bias(E.sticking_the_landing, 10)) > 8


def test_dreg_has_less_variance_than_iwae_at_many_draws():
    """DReG's encoder gradient keeps its signal as k grows, IWAE's loses it to the score term (Rainforth et al. 2018)."""
    dreg = gradients(E.dreg, 4000, 0.2, 0.8, 0.9, 20, seed=8)
    ref = gradients(iwae, 4000, 0.2, 0.8, 0.9, 20, seed=8)
    assert dreg[0].std() < 0.5 * ref[0].std() and dreg[1].std() < 0.5 * ref[1].std()


def test_an_independent_normal_of_several_latents():
    """q an Independent Normal (event axis 3): the event's log q summed, w̃ broadcast over it."""
    loc = mv.tensor(np.linspace(-0.5, 0.5, 12).reshape(4, 3), requires_grad=True)
    log_scale = mv.tensor(np.full((4, 3), -0.3), requires_grad=True)
    q = Independent(Normal(loc, ops.exp(log_scale)), 1)
    value = E.dreg(lambda z: -0.5 * (z * z).sum(axis=-1), q, 6, Generator(9))
    assert value.shape == (4,)
    value.sum().backward()
    assert np.isfinite(loc.grad).all() and np.abs(loc.grad).max() > 0


@pytest.mark.parametrize("estimator", [E.dreg, E.sticking_the_landing])
def test_an_independent_q_is_held_fixed_too(estimator):
    """Two latents of the model above, q an Independent Normal at their posterior: a zero gradient at each draw."""
    loc, scale = posterior(0.9)
    mu = mv.tensor(np.full((8, 2), loc), requires_grad=True)
    sigma = mv.tensor(np.full((8, 2), scale), requires_grad=True)
    estimator(lambda z: log_joint(0.9)(z).sum(axis=-1), Independent(Normal(mu, sigma), 1), 3, Generator(10)).sum().backward()
    np.testing.assert_allclose(mu.grad, 0, atol=1e-12)
    np.testing.assert_allclose(sigma.grad, 0, atol=1e-12)


def test_refusals():
    mu, sigma, a = leaves(3, 0.2, 0.8, 0.9)
    with pytest.raises(ValueError, match="k must be >= 1"):
        E.dreg(log_joint(a), Normal(mu, sigma), 0)
    with pytest.raises(ValueError, match="expected one per sample and batch entry"):
        E.sticking_the_landing(lambda z: z.sum(axis=0), Normal(mu, sigma), 4, Generator(0))
    with pytest.raises(ValueError, match="reparameterizable"):
        E.dreg(lambda z: z.sum(axis=-1), mv.distributions.OneHotCategorical(logits=mv.tensor(np.zeros((3, 4)))), 2)
    shifted = TransformedDistribution(Normal(mu, sigma), AffineTransform(a, 2.0))  # a parameter inside the transform
    with pytest.raises(ValueError, match="cannot be held fixed"):
        E.sticking_the_landing(log_joint(a), shifted, 2, Generator(0))


def test_the_lab_rows_against_the_closed_form():
    """The lab's (e): at K = 1 the three estimators are unbiased for the ELBO's closed-form gradient, and the two without
    the score term have a fraction of the pathwise estimate's variance."""
    exact, grads = lab.gaussian_latent_gradients(4000, Generator(11))
    rows = {name: lab.summarize(exact, g) for name, g in grads.items()}
    for name, row in rows.items():
        assert row["bias"] < 4 * row["bias_se"], name
    for name in ("sticking the landing", "dreg"):
        assert rows[name]["variance"] < 0.3 * rows["pathwise (IWAE's)"]["variance"]


def test_the_lab_signal_to_noise_as_k_grows():
    """IWAE's encoder gradient loses its signal-to-noise ratio as K grows; DReG's gains it (Rainforth et al. 2018;
    Tucker et al. 2019)."""
    snr = {k: {name: lab.signal_to_noise(g) for name, g in lab.gaussian_latent_gradients(2000, Generator(12), k)[1].items()}
           for k in (1, 100)}
    assert (snr[100]["pathwise (IWAE's)"] < snr[1]["pathwise (IWAE's)"]).all()
    assert (snr[100]["dreg"] > 3 * snr[1]["dreg"]).all()


# ---- the Gaussian VAE trained by them ---------------------------------------------------------------------------
def gaussian(**kw):
    """A float64 GaussianVAE with one tanh hidden layer (6 → 5 → 2·2, 2 → 5 → 6)."""
    return float64(GaussianVAE(x_dim=6, hidden=(5,), z_dim=2, activation="tanh", rng=Generator(0), **kw))


BATCH = (np.random.default_rng(3).random((4, 6)) < 0.5).astype(np.float64)


def loss_and_grads(model, seed=1, beta=1.0):
    loss = model.loss(mv.tensor(BATCH), Generator(seed), beta=beta)
    loss.backward()
    return float(loss.item()), {name: p.grad.copy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("beta", [1.0, 0.4])
@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_the_iwae_loss_is_the_pathwise_one_with_the_decoders_gradient(estimator, beta):
    """The same ε from the same seed: the value of the pathwise IWAE loss (its β-weighted log weights too) and its
    decoder's gradient; the encoder's gradient differs (no score term)."""
    value, grads = loss_and_grads(gaussian(objective="iwae", samples=3, estimator=estimator), beta=beta)
    ref_value, ref = loss_and_grads(gaussian(objective="iwae", samples=3), beta=beta)
    assert value == pytest.approx(ref_value, rel=1e-12)
    for name in grads:
        if name.startswith("decoder"):
            np.testing.assert_allclose(grads[name], ref[name], rtol=1e-9, atol=1e-12, err_msg=name)
    assert max(np.abs(grads[n] - ref[n]).max() for n in grads if n.startswith("encoder")) > 1e-3


def test_the_stl_elbo_is_the_sampled_kl_elbo():
    """objective="elbo" with STL: −mean(log p(x|z) + β·(log N(z; 0, I) − log N(z; μ, σ²))) at z = μ + σ·ε, ε of the
    same seed, two samples as two copies of the batch; β = 0.4."""
    model = gaussian(samples=2, estimator="stl")
    value, _ = loss_and_grads(model, seed=5, beta=0.4)
    h = np.tanh(np.concatenate([BATCH, BATCH]) @ model.encoder.layers[0].weight.data + model.encoder.layers[0].bias.data)
    out = h @ model.encoder.layers[2].weight.data + model.encoder.layers[2].bias.data
    loc, log_var = out[:, :2], out[:, 2:]
    z = loc + np.exp(0.5 * log_var) * Generator(5).normal((1, 8, 2), np.float64)[0]
    logits = (np.tanh(z @ model.decoder.layers[0].weight.data + model.decoder.layers[0].bias.data)
              @ model.decoder.layers[2].weight.data + model.decoder.layers[2].bias.data)
    x = np.concatenate([BATCH, BATCH])
    log_lik = (x * logits - np.logaddexp(0, logits)).sum(axis=1)
    log_prior = (-0.5 * z * z).sum(axis=1)
    log_q = (-0.5 * (z - loc) ** 2 / np.exp(log_var) - 0.5 * log_var).sum(axis=1)
    assert value == pytest.approx(-(log_lik + 0.4 * (log_prior - log_q)).mean(), rel=1e-10)


def test_the_estimator_is_recorded_and_reloads(tmp_path):
    assert "estimator" not in gaussian().config
    model = GaussianVAE(x_dim=6, hidden=(5,), z_dim=2, objective="iwae", samples=3, estimator="dreg", rng=Generator(0))
    assert model.config["estimator"] == "dreg"
    again = build("gaussian", model.config, Generator(1))
    assert again.estimator == "dreg" and again.config == model.config


@pytest.mark.parametrize("options, message", [
    (dict(estimator="reinforce"), "estimator must be one of"),
    (dict(estimator="dreg"), "needs objective='iwae'"),
    (dict(estimator="stl", flow="planar"), "a flow posterior's are inside its flows"),
    (dict(estimator="stl", free_bits=0.5), "the stl estimator's KL is sampled"),
])
def test_the_model_refuses(options, message):
    with pytest.raises(ValueError, match=message):
        GaussianVAE(x_dim=6, hidden=(5,), z_dim=2, rng=Generator(0), **options)


PLAN_MODELS = {
    "stl": lambda: GaussianVAE(X_DIM, (10,), 3, estimator="stl", rng=Generator(0)),
    "dreg": lambda: GaussianVAE(X_DIM, (10,), 3, objective="iwae", samples=3, estimator="dreg", rng=Generator(0)),
}


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("name", list(PLAN_MODELS))
def test_replayed_steps_equal_eager_steps_bit_for_bit(name, numba):
    """tests/test_plan.py's check (4 steps, 1 recorded and 3 replayed, β changing each step): DReG's weights from a
    pass without a graph are recorded as the eager step computes them."""
    with use_numba(numba):
        assert_same_run(eager_run(PLAN_MODELS[name]), plan_run(PLAN_MODELS[name]))


def test_the_cli_trains_with_dreg_and_refuses_it_elsewhere(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--model", "gaussian", "--objective", "iwae", "--samples", 3, "--estimator", "dreg",
               "--hidden", 16, "--z-dim", 2, "--limit", 200, "--epochs", 1, "--out", out) == 0
    assert load_checkpoint(out / "checkpoint.npz")[0].config["estimator"] == "dreg"
    assert run("eval", out / "checkpoint.npz", "-k", 3, "--limit", 50) == 0
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert run("train", "--model", "categorical", "--estimator", "stl", "--limit", 100, "--out", bad) == 1
    assert "a categorical latent has no stl gradient" in one_error_line(capsys)
    assert not bad.exists()


@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_the_model_takes_the_named_estimator(estimator):
    """The model's gradient is that of estimators.sticking_the_landing or estimators.dreg on its own log p(x, z) and
    q(z|x) (the IWAE bound of 3 draws, where the two differ)."""
    model = gaussian(objective="iwae", samples=3, estimator=estimator)
    _, grads = loss_and_grads(model, seed=2)
    model.zero_grad()
    x = mv.tensor(BATCH)
    loc, log_var = model._encode(x)
    function = E.dreg if estimator == "dreg" else E.sticking_the_landing
    bound = function(lambda z: model.likelihood(z).log_prob(x).sum(axis=-1) + model.prior().log_prob(z).sum(axis=-1),
                     Normal(loc, ops.exp(0.5 * log_var)), 3, Generator(2))
    (-bound.mean()).backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(grads[name], p.grad, rtol=1e-9, atol=1e-12, err_msg=name)
    other = gaussian(objective="iwae", samples=3, estimator="stl" if estimator == "dreg" else "dreg")
    assert max(np.abs(grads[n] - g).max() for n, g in loss_and_grads(other, seed=2)[1].items()) > 1e-3
