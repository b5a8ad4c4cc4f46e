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


# ---- the codebook by exponential moving averages (ema_decay) ----------------------------------------------------------

def hand_ema(size, w, z_e, k, gamma, eps, n_codes):
    """One update, code by code and vector by vector: N_i ← γN_i + (1 − γ)n_i, m_i ← γm_i + (1 − γ)Σ z_e, e_i = m_i/Ñ_i,
    Ñ_i = (N_i + ε)/(Σ_j N_j + Kε)·Σ_j N_j (van den Oord et al. 2017, A.1; Sonnet's smoothing)."""
    size, w = size.copy(), w.copy()
    vectors, codes = z_e.reshape(-1, z_e.shape[-1]), k.reshape(-1)
    for i in range(n_codes):
        chosen = [v for v, c in zip(vectors, codes) if c == i]
        size[i] = gamma * size[i] + (1 - gamma) * len(chosen)
        w[i] = gamma * w[i] + (1 - gamma) * (sum(chosen) if chosen else 0)
    total = math.fsum(size)
    smoothed = [(s + eps) / (total + n_codes * eps) * total for s in size]
    return size, w, np.array([w[i] / smoothed[i] for i in range(n_codes)])


def test_the_moving_averages_are_the_hand_computation_and_the_loss_drops_the_codebook_term():
    gamma, eps, beta = 0.8, 1e-3, 0.4
    model = tiny(seed=13, n_codes=4, beta=beta, ema_decay=gamma, ema_epsilon=eps).double()
    size, w = np.zeros(4), np.zeros((4, 2))
    assert model.ema_cluster_size.numpy().tolist() == [0] * 4 and not model.ema_w.numpy().any()  # Sonnet's start
    for seed in (14, 15):  # from the zero state, then from the first update's
        x = binary(6, seed=seed).astype(np.float64)
        z_e, e = model._encode(mv.tensor(x)).numpy(), model.codebook.numpy().copy()
        k = ((z_e[..., None, :] - e) ** 2).sum(axis=-1).argmin(axis=-1)
        want_loss = (beta * ((z_e - e[k]) ** 2).sum(axis=(1, 2)) - bernoulli_log_prob(logits_of(model, k), x)).mean()
        loss = model.loss(mv.tensor(x))
        np.testing.assert_allclose(loss.item(), want_loss, rtol=1e-12)  # of the codebook before its update
        size, w, codebook = hand_ema(size, w, z_e, k, gamma, eps, 4)
        np.testing.assert_allclose(model.ema_cluster_size.numpy(), size, rtol=1e-13)
        np.testing.assert_allclose(model.ema_w.numpy(), w, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(model.codebook.numpy(), codebook, rtol=1e-12, atol=1e-15)
    counts = np.bincount(k.reshape(-1), minlength=4)
    assert counts.max() > 1 and (size > 0).sum() < 4  # the example has a code chosen twice and one never chosen


def test_the_codebook_is_no_parameter_and_takes_no_gradient():
    model = tiny(ema_decay=0.9)
    assert all(p is not model.codebook for p in model.parameters()) and not model.codebook.requires_grad
    assert {"codebook", "ema_cluster_size", "ema_w"} <= {name for name, _ in model.named_buffers()}
    model.loss(mv.tensor(binary(4))).backward()
    assert model.codebook.grad is None
    assert model.config["ema_decay"] == 0.9 and model.config["ema_epsilon"] == 1e-5
    assert "ema_decay" not in tiny().config  # a gradient-learned model's config is what it was before the option


def test_only_a_training_mode_loss_updates_the_codebook():
    model, x = tiny(seed=16, ema_decay=0.5), mv.tensor(binary(6))
    before = {k: v.copy() for k, v in model.state_dict().items()}

    def unchanged():
        return all(np.array_equal(v, before[k]) for k, v in model.state_dict().items())
    model.elbo(x), model.encode(x), model.reconstruct(x), model.perplexity(x)
    assert unchanged()  # in training mode too: only the loss learns
    model.eval()
    model.loss(x)
    assert unchanged()
    model.train()
    model.loss(x)
    changed = {k for k, v in model.state_dict().items() if not np.array_equal(v, before[k])}
    assert changed == {"codebook", "ema_cluster_size", "ema_w"}


def test_the_moving_averages_round_trip_through_state_dict_and_a_checkpoint(tmp_path):
    from minivae.training import load_checkpoint, save_checkpoint
    model = tiny(seed=17, ema_decay=0.7)
    for seed in (18, 19):
        model.loss(mv.tensor(binary(6, seed=seed)))
    other = tiny(seed=20, ema_decay=0.7)
    other.load_state_dict(model.state_dict())
    rng = Generator(0)
    save_checkpoint(tmp_path / "c.npz", model, Adam(model.parameters()), rng, epoch=1, step=2)
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    for copy in (other, loaded):
        for name in ("codebook", "ema_cluster_size", "ema_w"):
            np.testing.assert_array_equal(getattr(copy, name).numpy(), getattr(model, name).numpy())
        x = binary(5, seed=21)
        np.testing.assert_array_equal(copy.elbo(x).numpy(), model.elbo(x).numpy())
        x = mv.tensor(binary(6, seed=22))  # and the next update continues from the same state
        copy.loss(x)
    model.loss(x)
    np.testing.assert_array_equal(loaded.codebook.numpy(), model.codebook.numpy())
    assert loaded.ema_decay == 0.7 and loaded.config == model.config


def test_a_short_training_on_the_digits_lowers_the_loss_and_uses_the_codes():
    from minivae.data import batches, load_default
    x = load_default()["train"][:400]
    rng = Generator(23)
    model = VQVAE(x_dim=784, hidden=(32,), n_latent=4, code_dim=4, n_codes=16, ema_decay=0.9, rng=rng)
    opt = Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        for xb in batches(x, 50, rng=rng):
            loss = model.loss(mv.tensor(xb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    assert model.perplexity(x) > 4  # of 16 codes; one code for everything would be 1


def test_an_ema_training_step_on_the_device_is_the_cpus():
    x = binary(4)

    def run(device):
        model = tiny(device=device, ema_decay=0.9)
        opt = Adam(model.parameters(), lr=1e-2)
        loss = model.loss(mv.tensor(x, device=device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        # (not the ELBO after the update: the Bernoulli log-density's Numba kernel and NumPy formula differ by an ulp there)
        return [loss, model.codebook, model.ema_cluster_size, model.ema_w, model.encode(mv.tensor(x, device=device))]
    assert_device_run_is_the_cpus(run)


@pytest.mark.parametrize("ema_decay", [None, 0.8])
def test_a_recorded_step_replays_the_eager_steps(ema_decay):
    """A step plan (minivae.plan, minivae train --graph) replays the codes' choice and the moving averages from each
    batch, not the recorded batch's."""
    batches = [binary(6, seed=s) for s in (24, 25, 26)]

    assert_replay_is_eager(lambda: tiny(seed=27, ema_decay=ema_decay), batches)


def assert_replay_is_eager(make, batches):
    """The model ``make()`` gives, trained by Adam on ``batches`` eagerly and by a step plan recorded on the first and
    replayed on the others: the same state_dict bit for bit."""
    def trained(replay):
        model = make()
        opt = Adam(model.parameters(), lr=0.05)
        if not replay:
            for x in batches:
                loss = model.loss(mv.tensor(x))
                opt.zero_grad()
                loss.backward()
                opt.step()
            return model
        plan = mv.compile_step(model, opt, lambda x: model.loss(x), mv.tensor(batches[0]))
        for x in batches[1:]:
            plan.step(x)
        return model
    eager, replayed = trained(False), trained(True)
    for key, value in eager.state_dict().items():
        np.testing.assert_array_equal(replayed.state_dict()[key], value, err_msg=key)


def test_the_objectives_read_the_model_as_a_vae_of_one_hot_codes():
    """q(k|x) one-hot on the codes and the uniform prior: objectives.elbo is the model's ELBO, and models.reconstruct
    (p(x|z) at q's mode) its reconstruction."""
    from minivae import models, objectives
    model, x = tiny(seed=28), mv.tensor(binary(5, seed=29))
    q = model.posterior(x)
    np.testing.assert_array_equal(q.sample((3,), rng=Generator(0)).numpy(), np.broadcast_to(model.encode(x), (3, 5, 2)))
    np.testing.assert_array_equal(q.log_prob(model.encode(x)).numpy(), 0.0)
    np.testing.assert_allclose(objectives.elbo(model, x, Generator(1), k=2).numpy(), model.elbo(x).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(models.reconstruct(model, x).numpy(), model.reconstruct(x).numpy())


def test_bad_moving_average_options_are_refused():
    with pytest.raises(ValueError, match=r"ema_decay must be a finite number in \[0, 1\), got 1"):
        tiny(ema_decay=1)
    with pytest.raises(ValueError, match="ema_epsilon must be a finite number > 0, got 0"):
        tiny(ema_decay=0.9, ema_epsilon=0)
    with pytest.raises(RuntimeError, match="learns its codebook by gradient"):
        tiny().ema_update(mv.tensor(np.zeros((1, 2, 2), np.float32)), np.zeros((1, 2), np.int64))


def test_under_a_count_likelihood_the_encoder_reads_log_one_plus_the_counts():
    """As the other models (scVI's log_variational): counts of hundreds into layers made for values near 1 would
    saturate them; the likelihood scores the counts themselves."""
    model = tiny(seed=30, likelihood="poisson")
    x = np.random.default_rng(31).poisson(40.0, (3, 6)).astype(np.float32)
    z_e = model.encoder(mv.tensor(np.log1p(x))).numpy().reshape(3, 2, 2)
    np.testing.assert_array_equal(model._encode(mv.tensor(x)).numpy(), z_e)
    np.testing.assert_array_equal(model.encode(x), nearest_codes(z_e, model.codebook.numpy()))
