"""minivae.vqvae: the nearest code against brute force, the straight-through quantizer's values and gradients against
their formulas written out in NumPy, the model's loss and ELBO against the same terms, the ELBO below the exact log
p(x) of a tiny model (every code sequence enumerated), a few training steps, the device stand-in, checkpoints and
refusals."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.optim import Adam
from minivae.random import Generator
from minivae.vqvae import VQVAE, nearest_codes, vector_quantize
from tests.strict_array import assert_device_run_is_the_cpus


def test_the_nearest_code_is_brute_force_s_and_ties_go_to_the_lowest():
    rng = np.random.default_rng(0)
    z, e = rng.normal(size=(4, 5, 3)), rng.normal(size=(7, 3))
    brute = ((z[..., None, :] - e) ** 2).sum(axis=-1).argmin(axis=-1)
    np.testing.assert_array_equal(nearest_codes(z, e), brute)
    twin = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])       # codes 0 and 2 the same vector
    assert nearest_codes(np.array([[0.9, 0.1]]), twin).tolist() == [0]
    assert nearest_codes(mv.tensor(z), mv.tensor(e)).dtype == np.int64


def test_the_quantizer_passes_the_gradient_straight_through_and_its_terms_are_the_formulas():
    rng = np.random.default_rng(1)
    z_e_np, e_np = rng.normal(size=(3, 4, 2)), rng.normal(size=(5, 2))
    w, v = rng.normal(size=(3, 4, 2)), rng.normal(size=(3,))
    z_e, e = mv.tensor(z_e_np, requires_grad=True), mv.tensor(e_np, requires_grad=True)
    beta = 0.3
    z, codes, vq = vector_quantize(z_e, e, beta)
    k = ((z_e_np[..., None, :] - e_np) ** 2).sum(axis=-1).argmin(axis=-1)
    z_q = e_np[k]
    np.testing.assert_array_equal(codes, k)
    np.testing.assert_allclose(z.numpy(), z_q, rtol=0, atol=1e-15)                     # the value is the code's
    np.testing.assert_allclose(vq.numpy(), (1 + beta) * ((z_e_np - z_q) ** 2).sum(axis=(1, 2)), rtol=1e-13)
    mv.backward([z, vq], [mv.tensor(w), mv.tensor(v)])
    np.testing.assert_allclose(z_e.grad, w + 2 * beta * (z_e_np - z_q) * v[:, None, None], rtol=1e-13, atol=1e-13)
    want = np.zeros_like(e_np)
    for b in range(3):
        for l in range(4):
            want[k[b, l]] += 2 * (z_q[b, l] - z_e_np[b, l]) * v[b]                    # the codebook term alone
    np.testing.assert_allclose(e.grad, want, rtol=1e-13, atol=1e-13)


def tiny(seed=0, **kw):
    options = dict(x_dim=6, hidden=(5,), n_latent=2, code_dim=2, n_codes=3)
    options.update(kw)
    return VQVAE(**options, rng=Generator(seed))


def binary(n, seed=2):
    return (np.random.default_rng(seed).random((n, 6)) < 0.4).astype(np.float32)


def logits_of(model, codes):
    z = model.codebook.numpy()[codes].reshape(len(codes), -1)
    return model.decoder(mv.tensor(z)).numpy()


def bernoulli_log_prob(logits, x):
    return (x * logits - np.logaddexp(0, logits)).sum(axis=-1)


def test_loss_and_elbo_are_their_terms():
    model, x = tiny(beta=0.5), binary(4)
    z_e = model._encode(mv.tensor(x)).numpy()
    e = model.codebook.numpy()
    k = ((z_e[..., None, :] - e) ** 2).sum(axis=-1).argmin(axis=-1)
    log_lik = bernoulli_log_prob(logits_of(model, k), x)
    vq = 1.5 * ((z_e - e[k]) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(model.loss(mv.tensor(x)).item(), (vq - log_lik).mean(), rtol=1e-5)
    np.testing.assert_allclose(model.elbo(x).numpy(), log_lik - 2 * math.log(3), rtol=1e-5)
    np.testing.assert_array_equal(model.encode(x), k)


def test_the_elbo_is_below_the_exact_log_likelihood_of_the_uniform_prior():
    """log p(x) = log (1/K^L) Σ over all K^L code sequences of p(x|codes): 9 here, enumerated; the ELBO, one sequence's
    log p(x|z_q) − L log K, is below it by the KL from q (one-hot) to the posterior over sequences."""
    model, x = tiny(seed=3), binary(8, seed=4)
    sequences = np.array([[a, b] for a in range(3) for b in range(3)])
    per = np.stack([bernoulli_log_prob(logits_of(model, np.repeat(s[None], 8, 0)), x) for s in sequences])
    exact = np.logaddexp.reduce(per, axis=0) - 2 * math.log(3)
    elbo = model.elbo(x).numpy()
    assert (elbo <= exact + 1e-5).all() and (elbo < exact).any()


def test_a_few_steps_lower_the_loss():
    model, x = tiny(seed=5, x_dim=6, hidden=(16,), n_codes=8), mv.tensor(binary(64, seed=6))
    opt = Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.6 * losses[0]
    assert model.codebook.grad is not None and np.abs(model.codebook.grad).sum() > 0


def test_prior_codes_are_uniform_and_samples_are_images():
    model = tiny(n_codes=5)
    codes = model.prior_codes(20000, Generator(7))
    assert codes.shape == (20000, 2) and codes.dtype == np.int64
    counts = np.bincount(codes.reshape(-1), minlength=5)
    chi2 = ((counts - 8000) ** 2 / 8000).sum()
    assert chi2 < 18.47  # χ²(4) 0.999 quantile
    images = model.sample(3, Generator(8)).numpy()
    assert images.shape == (3, 6) and ((images > 0) & (images < 1)).all()


def test_perplexity_counts_the_codes_used():
    model = tiny()
    x = binary(50)
    codes = model.encode(x).reshape(-1)
    p = np.bincount(codes, minlength=3) / codes.size
    p = p[p > 0]
    assert model.perplexity(x) == pytest.approx(np.exp(-(p * np.log(p)).sum()))


def test_a_training_step_on_the_device_is_the_cpus():
    x = binary(4)

    def run(device):
        model = tiny(device=device)
        opt = Adam(model.parameters(), lr=1e-2)
        loss = model.loss(mv.tensor(x, device=device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return [loss, model.codebook, model.elbo(mv.tensor(x, device=device)), model.encode(mv.tensor(x, device=device))]
    assert_device_run_is_the_cpus(run)


def test_state_round_trips_and_bad_options_are_refused():
    model, x = tiny(seed=9), binary(5)
    other = tiny(seed=10)
    other.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(other.elbo(x).numpy(), model.elbo(x).numpy())
    assert model.config["n_codes"] == 3 and model.config["beta"] == 0.25
    with pytest.raises(ValueError, match="beta, the commitment weight, must be a finite number ≥ 0, not -1"):
        tiny(beta=-1)
    with pytest.raises(ValueError, match="n_codes"):
        tiny(n_codes=0)


def test_the_models_module_names_it_and_builds_it_from_a_checkpoint_s_config():
    from minivae import models
    assert models.VQVAE is VQVAE and models.MODELS["vq"] is VQVAE
    model = tiny(seed=11, beta=0.5)
    rebuilt = models.build("vq", model.config, rng=Generator(12))
    rebuilt.load_state_dict(model.state_dict())
    x = binary(3)
    np.testing.assert_array_equal(rebuilt.elbo(x).numpy(), model.elbo(x).numpy())
    assert rebuilt.beta == 0.5 and rebuilt.n_codes == 3
