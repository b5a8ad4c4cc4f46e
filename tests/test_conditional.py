"""The conditional VAE (minivae.conditional; Sohn et al. 2015): its loss against the ELBO written out in NumPy from the
weights, its gradients against central differences in float64, objectives' bounds of ``given(y)`` against a quadrature
of log p(x|y) over a one-dimensional z, samples of a class after training on labelled bars that are that class (nearest
class mean), the strict device stand-in, step plans replayed bit for bit, checkpoints and bad input."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import conditional, objectives
from minivae._backend import use_cuda_kernels, use_numba
from minivae.conditional import ConditionalVAE, evaluate
from minivae.models import MODELS
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import load_checkpoint, save_checkpoint
from tests.strict_array import describe, emulating, record
from tests.test_cli_m2 import bars
from tests.test_semisupervised import mlp, recorded_steps, softplus, state_of

D, C, H, Z, B = 6, 3, 5, 2, 4
X = (np.random.default_rng(0).random((B, D)) < 0.5).astype(np.float64)
Y = np.array([0, 2, 1, 2])


def tiny(seed=3, z_dim=Z, **kw):
    """A float64 model of fixed weights (from the seed), its biases drawn too (they start at 0)."""
    model = ConditionalVAE(D, C, hidden=(H,), z_dim=z_dim, activation="softplus", rng=Generator(seed), **kw).double()
    noise = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.data[...] = noise.normal(size=p.shape)
    return model


# ---- NumPy: the networks and the bound from the weights (M2's tests' helpers: the same layout) ---------------------------


def numpy_parts(state, x, y1h, eps, z_dim=Z):
    """(log p(x|z, y) at z = μ + σ ε, KL(N(μ, σ²) ‖ N(0, I)), μ, log σ²): the encoder reads [x, y], the decoder [y, z]
    (Bernoulli logits), the KL ½ Σ_j (μ² + σ² − 1 − log σ²)."""
    enc = mlp(state, "encoder", np.concatenate([x, y1h], axis=-1))
    mu, log_var = enc[..., :z_dim], enc[..., z_dim:]
    z = mu + np.exp(0.5 * log_var) * eps
    logits = mlp(state, "decoder", np.concatenate([y1h, z], axis=-1))
    log_px = (x * -softplus(-logits) + (1 - x) * -softplus(logits)).sum(axis=-1)
    return log_px, 0.5 * (mu ** 2 + np.exp(log_var) - 1 - log_var).sum(axis=-1), mu, log_var


def test_the_loss_is_the_elbo_written_out():
    model = tiny()
    eps = Generator(11).normal((B, Z), np.float64)  # the draw of the fused op, from the same generator
    log_px, kl, mu, log_var = numpy_parts(state_of(model), X, np.eye(C)[Y], eps)
    x = mv.tensor(X)
    np.testing.assert_allclose(model.loss(x, Y, Generator(11)).item(), np.mean(kl - log_px), rtol=1e-12)
    np.testing.assert_allclose(model.loss(x, Y, Generator(11), beta=0.3).item(), np.mean(0.3 * kl - log_px), rtol=1e-12)
    # the same rows given as one-hot floats (how a step plan's packed batch gives them)
    np.testing.assert_allclose(model.loss(x, np.eye(C)[Y], Generator(11)).item(), np.mean(kl - log_px), rtol=1e-12)
    q = model.posterior(x, Y)
    np.testing.assert_allclose(q.loc.numpy(), mu, rtol=1e-12)
    np.testing.assert_allclose(q.scale.numpy(), np.exp(0.5 * log_var), rtol=1e-12)
    assert (model.prior().loc.numpy() == 0).all() and (model.prior().scale.numpy() == 1).all()
    # objectives.elbo of the model given y: the same bound (its KL in closed form), per image
    bound = objectives.elbo(model.given(Y), x, Generator(11)).numpy()
    np.testing.assert_allclose(bound, log_px - kl, rtol=1e-12)


def test_the_label_changes_the_loss():
    """Both networks read y: another labelling of the same images gives another loss."""
    model, x = tiny(), mv.tensor(X)
    assert model.loss(x, Y, Generator(11)).item() != model.loss(x, (Y + 1) % C, Generator(11)).item()


def test_gradients_match_central_differences_in_float64():
    """The float64 loss (its noise fixed) as a function of the first layers' weights, where x, y and z enter, the last
    layers' biases, and soft label rows (y as an embedding: its gradient goes back through both networks)."""
    model, x = tiny(), mv.tensor(X)

    def loss_of(encoder_w, encoder_b, decoder_w, decoder_b, rows):
        model.encoder[0].weight, model.encoder[2].bias = encoder_w, encoder_b
        model.decoder[0].weight, model.decoder[2].bias = decoder_w, decoder_b
        return model.loss(x, rows, Generator(5), beta=0.7)

    start = [model.encoder[0].weight, model.encoder[2].bias, model.decoder[0].weight, model.decoder[2].bias]
    rows = np.random.default_rng(4).dirichlet(np.ones(C), size=B)
    assert mv.gradcheck(loss_of, [mv.tensor(p.data.copy(), requires_grad=True) for p in start]
                        + [mv.tensor(rows, requires_grad=True)])


def numpy_log_p_x_given_y(state, x, y1h):
    """log p(x|y) = log ∫ p(x|z, y) N(z; 0, 1) dz of a model of one latent dimension, by the trapezoid rule on a grid
    of 24,001 points over [−12, 12] (the prior's mass beyond is under 1e-32), in NumPy from the weights."""
    grid = np.linspace(-12.0, 12.0, 24001)
    logits = mlp(state, "decoder", np.concatenate([np.broadcast_to(y1h, (len(grid), *y1h.shape)),
                                                   np.broadcast_to(grid[:, None, None], (len(grid), len(x), 1))], axis=-1))
    log_joint = (x * -softplus(-logits) + (1 - x) * -softplus(logits)).sum(axis=-1) - 0.5 * (grid[:, None] ** 2
                                                                                             + math.log(2 * math.pi))
    weights = np.full(len(grid), grid[1] - grid[0])
    weights[[0, -1]] /= 2
    return np.logaddexp.reduce(log_joint + np.log(weights)[:, None], axis=0)


def test_importance_sampling_of_the_model_given_y_is_the_quadrature_of_log_p_x_given_y():
    """objectives.log_likelihood_is and iwae_bound of ``given(y)``, which read p(x|z, y) at z (k, B, 1) (y broadcast over
    the samples' axis), converge to log p(x|y) by quadrature; the ELBO stays below it; ``evaluate`` is their mean. q is
    made N(0, 2²) (the encoder's last weights 0) so that the importance weights, at most 2·max p(x|z, y), have a small
    variance (an untrained q far from the posterior gives estimates ±0.1 nats apart at k = 20,000)."""
    model, x = tiny(seed=7, z_dim=1), mv.tensor(X)
    model.encoder[2].weight.data[...] = 0
    model.encoder[2].bias.data[...] = [0.0, math.log(4.0)]
    exact = numpy_log_p_x_given_y(state_of(model), X, np.eye(C)[Y])
    estimate = objectives.log_likelihood_is(model.given(Y), x, Generator(0), k=20000).numpy()
    np.testing.assert_allclose(estimate, exact, atol=0.02)
    elbo = objectives.elbo(model.given(Y), x, Generator(1), k=2000).numpy()
    assert (elbo < exact - 1e-3).all(), (elbo, exact)
    scores = evaluate(model, X, Y, Generator(0), batch_size=3, k=20000)
    assert scores["log_likelihood"] == pytest.approx(exact.mean(), abs=0.02)
    assert scores["elbo"] < exact.mean() and set(evaluate(model, X, Y, Generator(0))) == {"elbo"}


# ---- learning: samples of a class are that class --------------------------------------------------------------------------
def _nearest_class_mean_accuracy(model, means):
    """The fraction of 40 samples of each class whose nearest class mean (of the training images) is that class."""
    right = 0
    for c in range(len(means)):
        images = model.sample(40, Generator(100 + c), y=c).numpy()
        right += (((images[:, None, :] - means[None]) ** 2).sum(axis=-1).argmin(axis=1) == c).sum()
    return right / (40 * len(means))


def test_samples_of_a_class_after_training_on_labelled_bars_are_that_class():
    """On 8×8 bars of four classes (tests/test_cli_m2.py's), 300 Adam steps: the samples of class c lie nearest the
    mean training image of class c (chance 1/4; the untrained model's below 1/2), and the loss fell."""
    x, y = bars(800, np.random.default_rng(0))
    x = x.reshape(len(x), -1).astype(np.float32) / 255
    means = np.stack([x[y == c].mean(axis=0) for c in range(4)])
    model = ConditionalVAE(64, 4, hidden=(32,), z_dim=2, rng=Generator(0))
    before = _nearest_class_mean_accuracy(model, means)
    optimizer, rng, losses = Adam(model.parameters(), lr=1e-2), Generator(1), []
    for _ in range(300):
        pick = rng.integers(0, len(x), (50,))
        loss = model.loss(mv.tensor(x[pick]), y[pick].astype(np.int64), rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    after = _nearest_class_mean_accuracy(model, means)
    assert before < 0.5 and after > 0.95, (before, after)
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 5


# ---- the device stand-in, step plans, checkpoints -------------------------------------------------------------------------
PRIORS = {"standard": {}, "learned": dict(prior="learned", prior_hidden=(3,))}  # the model's options of each prior


def _steps(device, steps=3, prior="standard"):
    model = ConditionalVAE(D, C, hidden=(H,), z_dim=Z, rng=Generator(0), device=device, **PRIORS[prior])
    x, y = mv.tensor(X.astype(np.float32), device=device), mv.tensor(Y, device=device)
    return recorded_steps(model, lambda step, rng: model.loss(x, y, rng, step=step, beta=0.5), steps, device)


@pytest.mark.parametrize("prior", list(PRIORS))
def test_training_steps_on_the_device_equal_the_cpu_and_copy_nothing_back(prior):
    """The strict CuPy stand-in (tests/strict_array.py): loss, backward and Adam copy nothing to the host and give the
    CPU's numbers bit for bit (the array formulas on both); sampling and the bounds of ``given`` stay on the device.
    The learned prior's too (its KL, its draws of p(z|y))."""
    with use_numba(False), use_cuda_kernels(False), emulating():
        expected, expected_losses, _, _, _ = _steps("cpu", prior=prior)
        params, losses, conversions, uploads, model = _steps("cuda", prior=prior)
        assert conversions == [], "device→host copies inside a training step:\n" + describe(conversions)
        assert all("sampling.py" in where for _, _, where in uploads), describe(uploads)
        np.testing.assert_array_equal(np.array(losses), np.array(expected_losses))
        for n in expected:
            np.testing.assert_array_equal(params[n], expected[n], err_msg=n)
        with record() as log:
            x, y = mv.tensor(X.astype(np.float32), device="cuda"), mv.tensor(Y, device="cuda")
            images = model.sample(3, Generator(0), y=mv.tensor(np.array([0, 1, 2]), device="cuda"))
            bound = objectives.elbo(model.given(y), x, Generator(0))
        assert log == [] and images.device == "cuda" and images.shape == (3, D) and bound.device == "cuda"


@pytest.mark.parametrize("prior", list(PRIORS))
def test_a_step_plan_replays_the_eager_steps_bit_for_bit(prior):
    """compile_step of the training loop's loss of a packed batch [x | one-hot y] (a plan has one input), replayed on
    later batches: the eager steps' parameters, bit for bit (the learned prior's ε drawn by the plan as eagerly)."""
    rng = np.random.default_rng(2)
    batches = [np.concatenate([(rng.random((B, D)) < 0.5), np.eye(C)[rng.integers(0, C, B)]], axis=1).astype(np.float32)
               for _ in range(4)]

    def trained(planned):
        model = ConditionalVAE(D, C, hidden=(H,), z_dim=Z, rng=Generator(0), **PRIORS[prior])
        opt, loss = Adam(model.parameters(), lr=1e-2), conditional._step_loss(model, Generator(3))
        if not planned:
            for xy in batches:
                opt.zero_grad()
                loss(mv.tensor(xy)).backward()
                opt.step()
            return model
        plan = mv.compile_step(model, opt, loss, mv.tensor(batches[0]))
        for xy in batches[1:]:
            plan.step(xy)
        assert plan.replays == 3
        return model

    eager, replayed = trained(False), trained(True)
    for key, value in eager.state_dict().items():
        np.testing.assert_array_equal(replayed.state_dict()[key], value, err_msg=key)
    start = ConditionalVAE(D, C, hidden=(H,), z_dim=Z, rng=Generator(0), **PRIORS[prior]).state_dict()
    for key in ("encoder.0.weight", *(["prior_network.2.weight"] if prior == "learned" else [])):
        assert not np.array_equal(eager.state_dict()[key], start[key]), key


def test_a_checkpoint_rebuilds_the_model(tmp_path):
    model = ConditionalVAE(D, C, hidden=(H,), z_dim=Z, likelihood="gaussian", activation="tanh", rng=Generator(0))
    save_checkpoint(tmp_path / "c.npz", model, Adam(model.parameters()), Generator(0), 1, 1)
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    assert MODELS["conditional"] is ConditionalVAE and isinstance(loaded, ConditionalVAE)
    assert loaded.config == model.config == dict(x_dim=D, n_classes=C, hidden=(H,), z_dim=Z, likelihood="gaussian",
                                                 activation="tanh")
    x = mv.tensor(X.astype(np.float32))
    assert loaded.loss(x, Y, Generator(3)).item() == model.loss(x, Y, Generator(3)).item()


def test_sample_decodes_the_given_class():
    """A model whose decoder reads y alone (z's rows of its first layer 0) gives the mean image σ(decoder([y, 0])) of
    the class asked for; without y, the classes in turn."""
    model = tiny()
    model.decoder[0].weight.data[C:] = 0
    state = state_of(model)
    expected = 1 / (1 + np.exp(-mlp(state, "decoder", np.concatenate([np.eye(C), np.zeros((C, Z))], axis=1))))
    for c in range(C):
        np.testing.assert_allclose(model.sample(2, Generator(1), y=c).numpy(), expected[[c, c]], rtol=1e-12)
    np.testing.assert_allclose(model.sample(5, Generator(1)).numpy(), expected[[0, 1, 2, 0, 1]], rtol=1e-12)
    np.testing.assert_allclose(model.sample(2, Generator(1), y=[2, 0]).numpy(), expected[[2, 0]], rtol=1e-12)


def test_reconstruct_is_the_mean_at_q_s_mean_given_the_label():
    model = tiny()
    _, _, mu, _ = numpy_parts(state_of(model), X, np.eye(C)[Y], np.zeros((B, Z)))
    logits = mlp(state_of(model), "decoder", np.concatenate([np.eye(C)[Y], mu], axis=1))
    np.testing.assert_allclose(model.reconstruct(mv.tensor(X), Y).numpy(), 1 / (1 + np.exp(-logits)), rtol=1e-12)


def test_bad_input_is_named():
    model, x = tiny(), mv.tensor(X)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\)"):
        model.loss(x, np.array([0, 1, 2, 3]), Generator(0))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\)"):
        model.sample(2, Generator(0), y=-1)
    with pytest.raises(ValueError, match=r"one class index an image, shape \(4,\)"):
        model.loss(x, Y[:3], Generator(0))
    with pytest.raises(ValueError, match=r"one class index an image, shape \(4,\)"):
        model.loss(x, Y[:, None], Generator(0))
    with pytest.raises(ValueError, match=r"label rows \(one-hot or soft\) must have shape \(4, 3\), got \(4,\)"):
        model.loss(x, Y.astype(np.float64), Generator(0))
    with pytest.raises(ValueError, match=r"must have shape \(4, 3\), got \(4, 2\)"):
        model.loss(x, np.eye(2)[Y % 2], Generator(0))
    with pytest.raises(TypeError, match="labels must be integer class indices"):
        model.loss(x, np.array([True, False, True, True]), Generator(0))
    with pytest.raises(ValueError, match=r"shape \(batch, 6\)"):
        model.loss(mv.tensor(X[0]), Y[:1], Generator(0))
    with pytest.raises(ValueError, match=r"z must be latents of shape \(…, batch, 2\)"):
        model.likelihood(mv.tensor(np.zeros(Z)), Y[:1])
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        ConditionalVAE(D, 1, rng=Generator(0))
    with pytest.raises(ValueError, match="likelihood must be one of"):
        ConditionalVAE(D, C, likelihood="poisso", rng=Generator(0))
