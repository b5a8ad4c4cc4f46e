"""The conditional VAE's learned prior p(z|y) (ConditionalVAE(prior="learned"), Sohn et al.'s prior network): its loss,
objectives' bounds of ``given(y)`` and its samples against NumPy written out from the weights (the KL of two diagonal
Gaussians in log-variances, not kl_divergence's σ-ratio form); its gradients against central differences; the prior
network's gradient 0 exactly at the Gaussian moment-matched to each class's posteriors (KL's minimizer), and
training that moves the classes' prior means apart; the standard model the fused-op CVAE of the seed's networks, bit
for bit, and the learned one starting where it does; the checkpoint; bad input."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import objectives, ops
from minivae.conditional import ConditionalVAE
from minivae.nn import MLP
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import load_checkpoint, save_checkpoint
from tests.test_cli_m2 import bars
from tests.test_conditional import B, C, D, H, X, Y, Z, _nearest_class_mean_accuracy, tiny
from tests.test_semisupervised import mlp, softplus, state_of

P = 4  # the prior network's hidden layer


def learned(seed=3):
    """tiny()'s float64 model with the learned prior of one hidden layer, its last layer drawn too (it starts at 0)."""
    model = tiny(seed, prior="learned", prior_hidden=(P,))
    model.prior_network[2].weight.data[...] = np.random.default_rng(seed + 1).normal(size=(P, 2 * Z))
    return model


def numpy_learned(state, x, y1h, eps):
    """(log p(x|z, y) at z = μ + σ ε, KL(N(μ, σ²) ‖ N(μ_p, σ_p²)) summed over z, μ, log σ², μ_p, log σ_p²), the KL in the
    log-variances v = log σ²: ½ Σ_j (v_p − v + (e^v + (μ − μ_p)²)·e^(−v_p) − 1)."""
    enc = mlp(state, "encoder", np.concatenate([x, y1h], axis=-1))
    mu, log_var = enc[..., :Z], enc[..., Z:]
    pri = mlp(state, "prior_network", y1h)
    mu_p, log_var_p = pri[..., :Z], pri[..., Z:]
    z = mu + np.exp(0.5 * log_var) * eps
    logits = mlp(state, "decoder", np.concatenate([y1h, z], axis=-1))
    log_px = (x * -softplus(-logits) + (1 - x) * -softplus(logits)).sum(axis=-1)
    kl = 0.5 * (log_var_p - log_var + (np.exp(log_var) + (mu - mu_p) ** 2) * np.exp(-log_var_p) - 1).sum(axis=-1)
    return log_px, kl, mu, log_var, mu_p, log_var_p


def log_normal(z, mu, log_var):
    return (-0.5 * ((z - mu) ** 2 * np.exp(-log_var) + log_var + math.log(2 * math.pi))).sum(axis=-1)


def test_the_loss_and_the_bounds_of_the_learned_prior_are_written_out():
    model, x, y1h = learned(), mv.tensor(X), np.eye(C)[Y]
    eps = Generator(11).normal((B, Z), np.float64)  # the ε the loss draws, from the same generator
    log_px, kl, mu, log_var, mu_p, log_var_p = numpy_learned(state_of(model), X, y1h, eps)
    assert kl.min() > 0.1  # (the prior is not q: the KL is no N(0, I)'s by accident)
    np.testing.assert_allclose(model.loss(x, Y, Generator(11)).item(), np.mean(kl - log_px), rtol=1e-12)
    np.testing.assert_allclose(model.loss(x, Y, Generator(11), beta=0.3).item(), np.mean(0.3 * kl - log_px), rtol=1e-12)
    np.testing.assert_allclose(model.loss(x, y1h, Generator(11)).item(), np.mean(kl - log_px), rtol=1e-12)
    for prior in (model.prior(Y), model.prior(y1h), model.given(Y).prior()):
        np.testing.assert_allclose(prior.loc.numpy(), mu_p, rtol=1e-12)
        np.testing.assert_allclose(prior.scale.numpy(), np.exp(0.5 * log_var_p), rtol=1e-12)
    # objectives' bounds of the model given y read p(z|y): the ELBO (its KL in closed form) and the IWAE bound of k draws
    np.testing.assert_allclose(objectives.elbo(model.given(Y), x, Generator(11)).numpy(), log_px - kl, rtol=1e-12)
    k = 7
    z = mu + np.exp(0.5 * log_var) * Generator(5).normal((k, B, Z), np.float64)  # q.sample's draws
    logits = mlp(state_of(model), "decoder", np.concatenate([np.broadcast_to(y1h, (k, B, C)), z], axis=-1))
    log_w = ((X * -softplus(-logits) + (1 - X) * -softplus(logits)).sum(axis=-1) + log_normal(z, mu_p, log_var_p)
             - log_normal(z, mu, log_var))
    np.testing.assert_allclose(objectives.iwae_bound(model.given(Y), x, Generator(5), k=k).numpy(),
                               np.logaddexp.reduce(log_w, axis=0) - math.log(k), rtol=1e-12)


def test_samples_of_the_learned_prior_decode_z_drawn_from_p_z_given_y():
    model = learned()
    labels = np.array([2, 0, 1, 2, 1])
    y1h = np.eye(C)[labels]
    pri = mlp(state_of(model), "prior_network", y1h)
    z = pri[:, :Z] + np.exp(0.5 * pri[:, Z:]) * Generator(8).normal((5, Z), np.float64)
    expected = 1 / (1 + np.exp(-mlp(state_of(model), "decoder", np.concatenate([y1h, z], axis=1))))
    np.testing.assert_allclose(model.sample(5, Generator(8), y=labels).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(model.sample(5, Generator(8), y=[2, 0, 1, 2, 1]).numpy(), expected, rtol=1e-12)
    # without y, the classes in turn (0, 1, 2, 0, 1); one class for all
    turn = np.eye(C)[np.arange(5) % C]
    pri = mlp(state_of(model), "prior_network", turn)
    z = pri[:, :Z] + np.exp(0.5 * pri[:, Z:]) * Generator(8).normal((5, Z), np.float64)
    expected = 1 / (1 + np.exp(-mlp(state_of(model), "decoder", np.concatenate([turn, z], axis=1))))
    np.testing.assert_allclose(model.sample(5, Generator(8)).numpy(), expected, rtol=1e-12)
    assert model.sample(3, Generator(8), y=1).numpy().shape == (3, D)


def test_gradients_reach_the_prior_network_and_match_central_differences():
    """The float64 loss (its noise fixed) as a function of the prior network's weights and biases, the encoder's last
    bias (μ and log σ² enter the KL) and soft label rows (they enter the prior network too)."""
    model, x = learned(), mv.tensor(X)

    def loss_of(w0, b0, w2, b2, encoder_b, rows):
        model.prior_network[0].weight, model.prior_network[0].bias = w0, b0
        model.prior_network[2].weight, model.prior_network[2].bias = w2, b2
        model.encoder[2].bias = encoder_b
        return model.loss(x, rows, Generator(5), beta=0.7)

    start = [model.prior_network[0].weight, model.prior_network[0].bias, model.prior_network[2].weight,
             model.prior_network[2].bias, model.encoder[2].bias]
    rows = np.random.default_rng(4).dirichlet(np.ones(C), size=B)
    assert mv.gradcheck(loss_of, [mv.tensor(p.data.copy(), requires_grad=True) for p in start]
                        + [mv.tensor(rows, requires_grad=True)])


def test_the_prior_network_s_gradient_is_zero_at_each_class_s_moment_matched_gaussian():
    """min over N(m, s²) of Σ_b KL(N(μ_b, σ_b²) ‖ N(m, s²)), the images b of one class, is at m = mean μ_b, s² =
    mean(σ_b² + (μ_b − m)²), per dimension (d/dm and d/ds² of the sum vanish there). A linear prior network of
    one-hot rows (prior_hidden=()) holds a free (m, log s²) a class: set there (the weight's row c, the bias 0), the
    gradient of the loss in its weight and bias is 0 to rounding; moved off it, it is not, and the loss is larger
    (only the KL reads the prior: the noise does not matter)."""
    model = tiny(prior="learned")
    rng = np.random.default_rng(0)
    x, y = (rng.random((30, D)) < 0.5).astype(np.float64), np.arange(30) % C
    with mv.no_grad():
        q = model.posterior(mv.tensor(x), y)
    mu, var = q.loc.numpy(), q.scale.numpy() ** 2
    m = np.stack([mu[y == c].mean(axis=0) for c in range(C)])
    s2 = np.stack([(var[y == c] + (mu[y == c] - m[c]) ** 2).mean(axis=0) for c in range(C)])
    weight, bias = model.prior_network[0].weight, model.prior_network[0].bias

    def loss_and_gradient(table):
        weight.data[...], bias.data[...] = table, 0
        model.zero_grad()
        loss = model.loss(mv.tensor(x), y, Generator(2))
        loss.backward()
        return loss.item(), np.abs(weight.grad).max(), np.abs(bias.grad).max()

    best, grad_w, grad_b = loss_and_gradient(np.concatenate([m, np.log(s2)], axis=1))
    assert grad_w < 1e-12 and grad_b < 1e-12, (grad_w, grad_b)
    for shift in (np.r_[0.1, 0, 0, 0], np.r_[0, 0, -0.1, 0]):  # a class's mean, then its log-variance, moved
        loss, grad_w, _ = loss_and_gradient(np.concatenate([m, np.log(s2)], axis=1) + shift)
        assert loss > best + 1e-4 and grad_w > 1e-3, (loss, best, grad_w)


def test_training_on_labelled_bars_moves_the_classes_prior_means_apart():
    """On 8×8 bars of four classes (tests/test_cli_m2.py's), 150 Adam steps of every parameter: the prior means, all
    0 at the start, lie apart (the closest two classes over 0.5), and samples drawn from p(z|y) are of class y (nearest
    class mean, as the standard model's test)."""
    x, y = bars(800, np.random.default_rng(0))
    x = x.reshape(len(x), -1).astype(np.float32) / 255
    means = np.stack([x[y == c].mean(axis=0) for c in range(4)])
    model = ConditionalVAE(64, 4, hidden=(32,), z_dim=2, prior="learned", rng=Generator(0))
    assert (model.prior(np.arange(4)).loc.numpy() == 0).all() and (model.prior(np.arange(4)).scale.numpy() == 1).all()
    optimizer, rng = Adam(model.parameters(), lr=1e-2), Generator(1)
    for _ in range(150):
        pick = rng.integers(0, len(x), (50,))
        loss = model.loss(mv.tensor(x[pick]), y[pick].astype(np.int64), rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    loc = model.prior(np.arange(4)).loc.numpy()
    apart = min(np.linalg.norm(loc[a] - loc[b]) for a in range(4) for b in range(a))
    assert apart > 0.5, loc
    assert _nearest_class_mean_accuracy(model, means) > 0.95


def test_the_standard_model_is_the_fused_op_cvae_of_the_seed_s_networks_bit_for_bit():
    """The standard prior's model of a seed (given or by default) has the two MLPs drawn in turn from that seed, and its
    loss and gradients are ops.reparameterize_kl's z and KL to N(0, I) and ops.bernoulli_negative_elbo's value of them,
    bit for bit; the learned model of the seed has the same networks (its prior network drawn last) and starts at
    p(z|y) = N(0, I): its loss at the same ε the standard one's."""
    g = Generator(0)
    encoder, decoder = MLP((D + C, H, 2 * Z), "relu", rng=g), MLP((C + Z, H, D), "relu", rng=g)
    x, rows = mv.tensor(X.astype(np.float32)), mv.tensor(np.eye(C, dtype=np.float32)[Y])
    mu, log_var = ops.split(encoder(ops.concatenate([x, rows], axis=-1)), [Z], axis=-1)
    z, kl = ops.reparameterize_kl(mu, log_var, rng=Generator(3))
    expected = ops.bernoulli_negative_elbo(decoder(ops.concatenate([rows, z], axis=-1)), x, kl, 0.5)
    expected.backward()
    grads = {f"{name}.{k}": v.grad for name, net in (("encoder", encoder), ("decoder", decoder))
             for k, v in net.named_parameters()}
    for options in ({}, {"prior": "standard"}):
        model = ConditionalVAE(D, C, hidden=(H,), z_dim=Z, rng=Generator(0), **options)
        loss = model.loss(x, Y, Generator(3), beta=0.5)
        loss.backward()
        assert loss.item() == expected.item()
        assert [name for name, _ in model.named_parameters()] == list(grads)
        for name, p in model.named_parameters():
            np.testing.assert_array_equal(p.grad, grads[name], err_msg=name)
    learned_model = ConditionalVAE(D, C, hidden=(H,), z_dim=Z, prior="learned", prior_hidden=(P,), rng=Generator(0))
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(learned_model.state_dict()[name], value, err_msg=name)
    np.testing.assert_allclose(learned_model.loss(x, Y, Generator(3), beta=0.5).item(), expected.item(), rtol=1e-6)


def test_a_checkpoint_rebuilds_the_learned_prior(tmp_path):
    model = learned().float()
    save_checkpoint(tmp_path / "c.npz", model, Adam(model.parameters()), Generator(0), 1, 1)
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    assert loaded.config == model.config == dict(x_dim=D, n_classes=C, hidden=(H,), z_dim=Z, likelihood="bernoulli",
                                                 activation="softplus", prior="learned", prior_hidden=(P,))
    x = mv.tensor(X.astype(np.float32))
    assert loaded.loss(x, Y, Generator(3)).item() == model.loss(x, Y, Generator(3)).item()
    np.testing.assert_array_equal(loaded.prior(Y).loc.numpy(), model.prior(Y).loc.numpy())
    assert ConditionalVAE(D, C, prior="learned", rng=Generator(0)).config["prior_hidden"] == ()  # default: linear


def test_bad_prior_options_are_named():
    with pytest.raises(ValueError, match=r"prior must be one of \('standard', 'learned'\), not 'mog'"):
        ConditionalVAE(D, C, prior="mog", rng=Generator(0))
    with pytest.raises(ValueError, match="prior_hidden are the layers of the learned prior's network"):
        ConditionalVAE(D, C, prior_hidden=(4,), rng=Generator(0))
    with pytest.raises(TypeError, match="prior_hidden must be a sequence of layer sizes"):
        ConditionalVAE(D, C, prior="learned", prior_hidden=4, rng=Generator(0))
    with pytest.raises(ValueError, match=r"prior_hidden\[0\] must be >= 1"):
        ConditionalVAE(D, C, prior="learned", prior_hidden=(0,), rng=Generator(0))
    model = learned()
    for y in (None, 2):
        with pytest.raises(ValueError, match=r"the learned prior p\(z\|y\) needs the labels y of a batch"):
            model.prior(y)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\)"):
        model.prior(np.array([0, 3]))
    with pytest.raises(ValueError, match=r"label rows \(one-hot or soft\) must have shape \(2, 3\), got \(2, 2\)"):
        model.prior(np.eye(2))
