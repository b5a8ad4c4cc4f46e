"""Bounds on log p(x) in the order theory gives, and models whose gradients check."""
import itertools

import numpy as np
import pytest

import minivae as mv
from minivae import objectives as O
from minivae.lab import TINY_DATA, tiny_categorical_vae, tiny_vae_bounds
from minivae.models import CategoricalVAE, GaussianVAE
from minivae.random import Generator


@pytest.fixture(scope="module")
def tiny():
    return tiny_categorical_vae(Generator(7)), mv.tensor(TINY_DATA)


def _brute_force_log_px(model, x):
    """log p(x) = log Σ_z p(z) p(x|z) for images x (n, D): the 9 configurations one by one, in plain probabilities."""
    total = np.zeros(len(x))
    for z in O.enumerate_one_hot(2, 3, np.float64):
        logits = model.decoder(mv.tensor(z.reshape(1, -1))).data
        p = 1 / (1 + np.exp(-logits))
        total += (1 / 9) * np.prod(np.where(x == 1, p, 1 - p), axis=1)
    return np.log(total)


@pytest.mark.parametrize("n, k", [(0, 3), (0, 0), (2, 0), (1, 1), (1, 4), (2, 3), (3, 2)])
def test_enumerate_one_hot_is_itertools_product(n, k):
    """The configurations in itertools.product's order; n = 0 variables have one, empty, configuration (the
    reshape to (n, -1) of an empty index array used to fail), k = 0 categories none."""
    want = [np.eye(k)[list(c)].reshape(n, k) for c in itertools.product(range(k), repeat=n)]
    got = O.enumerate_one_hot(n, k, np.float64)
    assert got.shape == (len(want), n, k) and got.dtype == np.float64
    np.testing.assert_array_equal(got, np.array(want).reshape(len(want), n, k))


def test_enumerate_one_hot_refuses_negative_counts():
    for n, k in ((-1, 2), (2, -1)):
        with pytest.raises(ValueError, match="must be >= 0"):
            O.enumerate_one_hot(n, k)


def test_exact_log_likelihood_by_brute_force(tiny):
    model, x = tiny
    np.testing.assert_allclose(O.exact_log_likelihood(model, x).data, _brute_force_log_px(model, TINY_DATA), rtol=1e-10)


def test_exact_log_likelihood_keeps_every_batch_axis(tiny):
    """x of shape (3, 2, D) is six images: log p(x) of shape (3, 2), each image's own; one image (D,) gives a 0-d value."""
    model, _ = tiny
    x = (np.random.default_rng(5).random((3, 2, TINY_DATA.shape[1])) < 0.5).astype(TINY_DATA.dtype)
    expected = _brute_force_log_px(model, x.reshape(6, -1)).reshape(3, 2)
    np.testing.assert_allclose(O.exact_log_likelihood(model, mv.tensor(x)).data, expected, rtol=1e-10)
    one = O.exact_log_likelihood(model, mv.tensor(x[1, 0])).data
    assert one.shape == () and one == pytest.approx(expected[1, 0], rel=1e-10)


def test_prior_bound_keeps_every_batch_axis():
    """(1/k) Σ_i log p(x|z_i), z_i ~ p(z), by hand on the six images of x (3, 2, D) flattened, with the same draws (the
    Generator fills (k, 3, 2, z) in the order it fills (k, 6, z)) and log p(x|z) = Σ_d x·l − log(1 + e^l) in NumPy."""
    model = GaussianVAE(x_dim=5, hidden=(4,), z_dim=2, rng=Generator(0))
    x = (np.random.default_rng(3).random((3, 2, 5)) < 0.5).astype(np.float32)
    k = 7
    z = model.prior().sample((k, 6), rng=Generator(1)).data
    logits = model.decoder(mv.tensor(z)).data.astype(np.float64)  # (k, 6, D)
    log_lik = (x.reshape(6, 5) * logits - np.logaddexp(0, logits)).sum(axis=-1)
    expected = log_lik.mean(axis=0).reshape(3, 2)
    with mv.no_grad():
        got = O.prior_bound(model, mv.tensor(x), Generator(1), k=k).data
        one = O.prior_bound(model, mv.tensor(x[0, 0]), Generator(1), k=k).data
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # one image (D,): a 0-d value, from its own k draws z of shape (k, z)
    z1 = model.prior().sample((k,), rng=Generator(1)).data
    l1 = model.decoder(mv.tensor(z1)).data.astype(np.float64)
    assert one.shape == () and one == pytest.approx((x[0, 0] * l1 - np.logaddexp(0, l1)).sum(-1).mean(), rel=1e-5)


def test_bounds_are_ordered_and_converge(tiny):
    model, x = tiny
    with mv.no_grad():
        exact = O.exact_log_likelihood(model, x).data
        elbo = O.elbo(model, x, Generator(0), k=20_000).data
        prior = O.prior_bound(model, x, Generator(1), k=20_000).data
        iwae_1000 = O.iwae_bound(model, x, Generator(2), k=1000).data
        is_est = O.log_likelihood_is(model, x, Generator(3), k=20_000, chunk=3000).data
    assert np.all(prior < exact) and np.all(elbo < exact)
    np.testing.assert_allclose(is_est, exact, atol=5e-3)
    assert np.all(np.abs(iwae_1000 - exact) < np.abs(elbo - exact))  # importance weighting tightens the bound


def test_prior_bound_is_the_elbo_with_q_equal_to_the_prior():
    model = tiny_categorical_vae(Generator(7))
    model.encoder.layers[0].weight.data[...] = 0  # q(z|x) = uniform = p(z): the KL term vanishes
    x = mv.tensor(TINY_DATA)
    with mv.no_grad():
        elbo = O.elbo(model, x, Generator(0), k=40_000).data
        prior = O.prior_bound(model, x, Generator(1), k=40_000).data
    np.testing.assert_allclose(elbo, prior, atol=0.03)


def test_elbo_gap_equals_kl_to_the_posterior():
    b = tiny_vae_bounds()
    assert np.all(b["elbo"] <= b["log_px"])
    np.testing.assert_allclose(b["gap"], b["kl_to_posterior"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b["elbo"], b["elbo_analytic_kl"], rtol=1e-10)


def test_exact_log_likelihood_refuses_large_latents():
    with pytest.raises(ValueError, match="configurations exceed"):
        O.exact_log_likelihood(CategoricalVAE(x_dim=4, hidden=(3,), rng=Generator(0)), mv.tensor(np.zeros((1, 4))))


def test_gaussian_elbo_mc_kl_agrees_with_analytic_kl():
    model = GaussianVAE(x_dim=6, hidden=(5,), z_dim=2, rng=Generator(0))
    x = mv.tensor((np.random.default_rng(0).random((3, 6)) < 0.5).astype(np.float32))
    with mv.no_grad():
        a = O.elbo(model, x, Generator(1), k=50_000).data
        b = O.elbo(model, x, Generator(1), k=50_000, analytic_kl=False).data
    np.testing.assert_allclose(a, b, atol=0.05)


def test_gaussian_vae_loss_gradcheck_with_fixed_noise():
    model = GaussianVAE(x_dim=4, hidden=(3,), z_dim=2, rng=Generator(0), activation="tanh")
    params = model.parameters()
    x = mv.tensor((np.random.default_rng(1).random((2, 4)) < 0.5).astype(np.float64))
    assert mv.gradcheck(lambda *ps: _rebind(model, ps, x), [p.data.astype(np.float64) for p in params])


def _rebind(model, tensors, x):
    """The model's loss as a function of new parameter tensors, with the same noise on every call."""
    for (name, _), t in zip(list(model.named_parameters()), tensors):
        owner = model
        *path, leaf = name.split(".")
        for part in path:
            owner = getattr(owner, part)
        object.__setattr__(owner, leaf, t)
    return model.loss(x, Generator(5))


@pytest.mark.parametrize("estimator", ["gumbel_softmax", "straight_through", "reinforce"])
def test_categorical_vae_learns_a_few_steps(estimator):
    from minivae.optim import Adam
    rng = Generator(0)
    x = mv.tensor((np.random.default_rng(0).random((64, 20)) < 0.3).astype(np.float32))
    model = CategoricalVAE(x_dim=20, hidden=(16,), n_latent=3, n_categories=4, estimator=estimator, rng=rng)
    opt = Adam(model.parameters(), lr=3e-3)
    with mv.no_grad():
        before = float(O.elbo(model, x, Generator(9), k=20).data.mean())
    for step in range(150):
        loss = model.loss(x, rng, step=step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with mv.no_grad():
        after = float(O.elbo(model, x, Generator(9), k=20).data.mean())
    assert after > before + 1.0


def test_temperature_schedule():
    m = CategoricalVAE(x_dim=4, hidden=(3,), n_latent=1, n_categories=2, tau0=2.0, tau_min=0.5, anneal_rate=1e-3,
                       rng=Generator(0))
    assert m.temperature(0) == 2.0
    assert m.temperature(1000) == pytest.approx(2.0 * np.exp(-1.0))
    assert m.temperature(10**6) == 0.5
    with pytest.raises(ValueError, match="estimator"):
        CategoricalVAE(estimator="pathwise", rng=Generator(0))


@pytest.mark.parametrize("objective", ["elbo", "elbo_mc_kl", "prior_bound", "iwae_bound", "exact_log_likelihood"])
def test_every_objective_gradchecks_in_the_decoder_weights(objective):
    model = tiny_categorical_vae(Generator(7))
    x = mv.tensor(TINY_DATA)
    calls = {"elbo": lambda: O.elbo(model, x, Generator(1), k=3),
             "elbo_mc_kl": lambda: O.elbo(model, x, Generator(1), k=3, analytic_kl=False),
             "prior_bound": lambda: O.prior_bound(model, x, Generator(1), k=3),
             "iwae_bound": lambda: O.iwae_bound(model, x, Generator(1), k=3),
             "exact_log_likelihood": lambda: O.exact_log_likelihood(model, x)}

    def fn(w, b):  # the same noise on every call: a fresh Generator with a fixed seed
        model.decoder.layers[0].weight, model.decoder.layers[0].bias = w, b
        return calls[objective]()
    assert mv.gradcheck(fn, [model.decoder.layers[0].weight.data.copy(), model.decoder.layers[0].bias.data.copy()])


def test_gaussian_vae_elbo_gradchecks_in_the_encoder_weights():
    model = GaussianVAE(x_dim=5, hidden=(4,), z_dim=2, activation="tanh", rng=Generator(0))
    layer = model.encoder.layers[0]
    x = mv.tensor((np.random.default_rng(2).random((3, 5)) < 0.5).astype(np.float64))

    def fn(w):
        layer.weight = w
        return O.elbo(model, x, Generator(1), k=2)  # reparameterized: gradients flow through z
    assert mv.gradcheck(fn, [layer.weight.data.astype(np.float64)])


def test_gaussian_likelihood_option():
    model = GaussianVAE(x_dim=6, hidden=(5,), z_dim=2, likelihood="gaussian", rng=Generator(0))
    assert "log_scale" in dict(model.named_parameters())
    x = mv.tensor(np.random.default_rng(0).random((4, 6)).astype(np.float32))
    loss = model.loss(x, Generator(1))
    loss.backward()
    assert np.isfinite(loss.item()) and model.log_scale.grad is not None
    with pytest.raises(ValueError, match="likelihood"):
        GaussianVAE(likelihood="laplace", rng=Generator(0))


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_training_loss_value_is_the_negative_elbo(kind):
    """The fused training loss and objectives.elbo compute the same quantity from the same noise."""
    x = mv.tensor((np.random.default_rng(0).random((5, 12)) < 0.4).astype(np.float64))
    if kind == "gaussian":
        model = GaussianVAE(x_dim=12, hidden=(6,), z_dim=3, rng=Generator(0))
        loss = model.loss(x, Generator(4)).item()
        elbo = O.elbo(model, x, Generator(4)).data.mean()
        assert loss == pytest.approx(-elbo, rel=1e-5)
    else:  # with REINFORCE the loss value is exactly −ELBO of the discrete sample
        model = CategoricalVAE(x_dim=12, hidden=(6,), n_latent=3, n_categories=4, estimator="reinforce", rng=Generator(0))
        loss = model.loss(x, Generator(4)).item()
        elbo = O.elbo(model, x, Generator(4)).data.mean()
        assert loss == pytest.approx(-elbo, rel=1e-5)


def _reinforce_encoder_grads(model, x, draws, seed):
    """Per-draw gradients of the training loss for the encoder's first weight matrix."""
    rng, w, out = Generator(seed), model.encoder.layers[0].weight, []
    for _ in range(draws):
        model.zero_grad()
        model.loss(x, rng).backward()
        out.append(w.grad.reshape(-1).astype(np.float64))
    return np.stack(out)


def _tiny_reinforce_vae(baseline_hidden):
    model = CategoricalVAE(x_dim=8, hidden=(5,), n_latent=2, n_categories=3, estimator="reinforce",
                           baseline_hidden=baseline_hidden, rng=Generator(3))
    model.baseline = 0.0  # a start value that no sample has seen: every draw's baseline is independent of it
    return model


def test_reinforce_with_input_dependent_baseline_is_unbiased():
    """E[(f − c − b(x)) ∇log q] = ∇E_q[f]: the mean gradient matches enumeration whatever b is."""
    from minivae import estimators as E
    model, x = _tiny_reinforce_vae(baseline_hidden=4), mv.tensor(TINY_DATA.astype(np.float32))
    w = model.encoder.layers[0].weight
    model.zero_grad()
    q = model.posterior(x)
    recon = E.exact(lambda z: model.likelihood(z).log_prob(x).sum(axis=-1), q)
    kl = mv.ops.categorical_kl(q.logits, model.prior().logits).sum(axis=-1)
    (-(recon - kl)).mean().backward()
    exact = w.grad.reshape(-1).astype(np.float64)
    grads = _reinforce_encoder_grads(model, x, 3000, seed=11)
    stderr = grads.std(axis=0) / np.sqrt(len(grads))
    assert np.all(np.abs(grads.mean(axis=0) - exact) <= 4.5 * stderr + 1e-5)


def test_input_dependent_baseline_learns_and_cuts_variance():
    """Fitting b_ψ(x) to the per-image signal removes the between-image spread a single
    moving average leaves in, so the encoder's gradient varies less."""
    from minivae.optim import Adam
    x = mv.tensor(TINY_DATA.astype(np.float32))
    plain, learned = _tiny_reinforce_vae(0), _tiny_reinforce_vae(4)
    learned.load_state_dict({**learned.state_dict(), **plain.state_dict()})  # same encoder and decoder
    fit = Adam(learned.baseline_net.parameters(), lr=3e-2)
    rng = Generator(5)
    for _ in range(400):
        learned.zero_grad()
        learned.loss(x, rng).backward()
        fit.step()
    var_plain = _reinforce_encoder_grads(plain, x, 1500, seed=12).var(axis=0).sum()
    var_learned = _reinforce_encoder_grads(learned, x, 1500, seed=12).var(axis=0).sum()
    assert var_learned < 0.7 * var_plain


def test_input_dependent_baseline_keeps_the_loss_value_and_is_only_for_reinforce():
    x = mv.tensor((np.random.default_rng(0).random((5, 8)) < 0.4).astype(np.float64))
    model = _tiny_reinforce_vae(baseline_hidden=4)
    loss = model.loss(x, Generator(4)).item()
    assert loss == pytest.approx(-O.elbo(model, x, Generator(4)).data.mean(), rel=1e-5)
    with pytest.raises(ValueError, match="reinforce"):
        CategoricalVAE(estimator="gumbel_softmax", baseline_hidden=8, rng=Generator(0))


@pytest.mark.parametrize("call", [
    lambda model, x, g: O.elbo(model, x, g, k=0),
    lambda model, x, g: O.elbo(model, x, g, k=-1),
    lambda model, x, g: O.elbo(model, x, g, k=0, analytic_kl=False),
    lambda model, x, g: O.prior_bound(model, x, g, k=0),
    lambda model, x, g: O.iwae_bound(model, x, g, k=0),
    lambda model, x, g: O.log_likelihood_is(model, x, g, k=0),
    lambda model, x, g: O.log_likelihood_is(model, x, g, k=10, chunk=0),
], ids=["elbo-k0", "elbo-k-1", "elbo-mc-k0", "prior_bound-k0", "iwae_bound-k0", "log_likelihood_is-k0", "log_likelihood_is-chunk0"])
def test_sample_counts_below_one_are_refused(tiny, call):
    """An average over k = 0 samples is 0/0 (NaN); k < 0 is no count at all."""
    model, x = tiny
    with pytest.raises(ValueError, match=r"(k|chunk) must be >= 1"):
        call(model, x, Generator(0))


def test_sample_counts_must_be_integers(tiny):
    model, x = tiny
    with pytest.raises(TypeError, match="k must be an integer"):
        O.elbo(model, x, Generator(0), k=2.5)
    with pytest.raises(TypeError, match="k must be an integer"):
        O.iwae_bound(model, x, Generator(0), k=True)
    assert O.elbo(model, x, Generator(0), k=np.int64(2)).shape == (len(TINY_DATA),)


G = dict(x_dim=4, hidden=(3,), z_dim=2)
C = dict(x_dim=4, hidden=(3,), n_latent=2, n_categories=3)


@pytest.mark.parametrize("model,change,error,message", [
    (GaussianVAE, dict(z_dim=0), ValueError, "z_dim must be >= 1, got 0"),
    (GaussianVAE, dict(z_dim=-1), ValueError, "z_dim must be >= 1, got -1"),
    (GaussianVAE, dict(z_dim=2.5), TypeError, "z_dim must be an integer, got 2.5"),
    (GaussianVAE, dict(x_dim=0), ValueError, "x_dim must be >= 1, got 0"),
    (GaussianVAE, dict(hidden=(3, 0)), ValueError, r"hidden\[1\] must be >= 1, got 0"),
    (GaussianVAE, dict(hidden=3), TypeError, "hidden must be a sequence of layer sizes"),
    (CategoricalVAE, dict(n_latent=0), ValueError, "n_latent must be >= 1, got 0"),
    (CategoricalVAE, dict(n_latent=-2, n_categories=-2), ValueError, "n_latent must be >= 1, got -2"),
    (CategoricalVAE, dict(n_categories=-2), ValueError, "n_categories must be >= 1, got -2"),
    (CategoricalVAE, dict(n_categories=True), TypeError, "n_categories must be an integer, got True"),
    (CategoricalVAE, dict(anneal_rate=float("inf")), ValueError, "anneal_rate must be a finite number >= 0, got inf"),
    (CategoricalVAE, dict(anneal_rate=float("nan")), ValueError, "anneal_rate must be a finite number >= 0"),
    (CategoricalVAE, dict(anneal_rate=-1), ValueError, "anneal_rate must be a finite number >= 0, got -1"),
    (CategoricalVAE, dict(estimator="reinforce", baseline_decay=1.0), ValueError, r"baseline_decay must be .* in \[0, 1\)"),
    (CategoricalVAE, dict(estimator="reinforce", baseline_decay=-0.1), ValueError, r"baseline_decay .* got -0.1"),
    (CategoricalVAE, dict(estimator="reinforce", baseline_decay=float("nan")), ValueError, "baseline_decay"),
    (CategoricalVAE, dict(estimator="reinforce", baseline_hidden=-1), ValueError, "baseline_hidden must be >= 0, got -1"),
])
def test_constructors_refuse_bad_arguments_naming_them(model, change, error, message):
    """As torch.nn.Linear refuses a negative size: at construction, naming the argument, not a ZeroDivisionError or a
    reshape error at the first step."""
    with pytest.raises(error, match=message):
        model(**{**(G if model is GaussianVAE else C), **change}, rng=Generator(0))


def test_sizes_at_their_bounds_are_accepted_and_kept_as_python_ints():
    """One category, no hidden layer, decay 0 (c is the last batch's mean), NumPy integers: all legal, and the config
    holds Python ints (it is written as JSON)."""
    m = CategoricalVAE(x_dim=np.int64(4), hidden=(), n_latent=np.int32(1), n_categories=1, estimator="reinforce",
                       baseline_decay=0.0, rng=Generator(0))
    assert type(m.config["x_dim"]) is int and type(m.config["n_latent"]) is int and m.config["hidden"] == ()
    assert np.isfinite(m.loss(mv.tensor(np.ones((2, 4), np.float32)), Generator(1)).item())


def test_baseline_decay_is_recorded_and_survives_a_checkpoint(tmp_path):
    """c ← d·c + (1 − d)·mean(signal) with the d the model was made with, also once rebuilt from a checkpoint: with
    c = −3, d = 0.5 and signal (1, 3), c becomes 0.5·(−3) + 0.5·2 = −0.5 (with the default 0.9 it would be −2.5)."""
    from minivae.models import build
    from minivae.optim import Adam
    from minivae.training import load_checkpoint, save_checkpoint
    m = CategoricalVAE(**C, estimator="reinforce", baseline_decay=0.5, rng=Generator(0))
    save_checkpoint(tmp_path / "c.npz", m, Adam(m.parameters()), Generator(0), epoch=1, step=1)
    for rebuilt in (build(m.kind, m.config, Generator(0)), load_checkpoint(tmp_path / "c.npz")[0]):
        rebuilt.baseline = np.float64(-3.0)
        rebuilt._moving_average(np.array([1.0, 3.0]))
        assert rebuilt.config["baseline_decay"] == 0.5 and float(rebuilt.baseline) == -0.5


@pytest.mark.parametrize("analytic_kl", [True, False])
def test_elbo_weights_the_kl_by_beta(tiny, analytic_kl):
    """elbo(β = 0) − elbo(β = 2) = 2·KL, with the same draws; the KL by hand in NumPy: Σ_n Σ_k q log(q·K) in closed form
    (p uniform over K), or the mean over the k draws z of Σ_n (log q(z_n) − log(1/K))."""
    model, x = tiny
    k = 4
    with mv.no_grad():
        e0 = O.elbo(model, x, Generator(9), k=k, beta=0.0, analytic_kl=analytic_kl).data
        e2 = O.elbo(model, x, Generator(9), k=k, beta=2.0, analytic_kl=analytic_kl).data
        logits = model.posterior(x).logits.data                          # (B, N, K)
        z = model.posterior(x).sample((k,), rng=Generator(9)).data       # the draws elbo makes first
    log_q = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    K = logits.shape[-1]
    if analytic_kl:
        kl = (np.exp(log_q) * (log_q + np.log(K))).sum(axis=(-2, -1))
    else:
        kl = ((z * log_q).sum(-1) + np.log(K)).sum(-1).mean(0)
    assert np.all(np.abs(kl) > 0.01)  # (a Monte Carlo KL may be negative)
    np.testing.assert_allclose(e0 - e2, 2 * kl, rtol=1e-10)


@pytest.mark.parametrize("beta,error,message", [
    (float("nan"), ValueError, "beta, the KL's weight, must be a finite number >= 0, got nan"),  # NaN bounds
    (-1.0, ValueError, "must be a finite number >= 0, got -1.0"),  # the KL rewarded: q pushed away from p
    (float("inf"), ValueError, "must be a finite number >= 0, got inf"),  # −inf bounds
    (np.float32(-0.5), ValueError, "must be a finite number >= 0, got -0.5"),
    ("0.5", TypeError, "beta, the KL's weight, must be a real number, got '0.5'"),
    (None, TypeError, "must be a real number, got None"),
    (True, TypeError, "must be a real number, got True"),
    (mv.tensor(np.array([0.5, -1.0], np.float32)), ValueError, "must be a finite number >= 0, got -1.0"),
    (mv.tensor(np.array([1, 2])), TypeError, "a tensor beta must be floating"),
])
def test_elbo_refuses_a_beta_that_is_not_a_finite_number_at_least_zero(tiny, beta, error, message):
    """β weights the KL: NaN or inf make every bound NaN or −inf, a negative β rewards the KL, a string or None made
    elbo multiply by whatever it was (a NaN for None)."""
    model, x = tiny
    with pytest.raises(error, match=message):
        O.elbo(model, x, Generator(0), beta=beta)


def test_elbo_takes_a_beta_tensor_an_array_and_a_live_scalar(tiny):
    """A tensor β (one per example, or a schedule's value kept as a tensor) weighs each example's KL, also one that
    requires grad (not read: its values are the graph's) and one on the device (not read: no host copy); so does a
    NumPy array; and in a step plan, β given to plan.step is live: each replay weighs the KL by its value."""
    model, x = tiny
    with mv.no_grad():
        e0 = O.elbo(model, x, Generator(9), k=2, beta=0.0).data
        e1 = O.elbo(model, x, Generator(9), k=2, beta=1.0).data
        w = np.linspace(0.0, 2.0, len(e0))
        for beta in (mv.tensor(w), w, mv.tensor(w, requires_grad=True)):
            np.testing.assert_allclose(O.elbo(model, x, Generator(9), k=2, beta=beta).data, e0 - w * (e0 - e1),
                                       rtol=1e-10)
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record
    with use_numba(False), use_cuda_kernels(False), emulating():
        g = GaussianVAE(x_dim=4, hidden=(3,), z_dim=2, rng=Generator(0), device="cuda")
        xd = mv.tensor(np.ones((2, 4), np.float32), device="cuda")
        beta = mv.tensor(np.array([-1.0, 0.5], np.float32), device="cuda")  # (a device β is not read: not refused)
        with record() as log:
            O.elbo(g, xd, Generator(0), beta=beta)
        assert log == [], describe(log)
    from minivae.optim import SGD
    from minivae.plan import compile_step
    g = GaussianVAE(x_dim=4, hidden=(3,), z_dim=2, rng=Generator(0))
    xb = mv.tensor(np.ones((2, 4), np.float32))
    rng = Generator(5)
    plan = compile_step(g, SGD(g.parameters(), lr=1e-30), lambda x, beta: -O.elbo(g, x, rng, beta=beta).mean(), xb,
                        beta=0.25)  # (lr 1e-30: the parameters stay, in float32)
    replayed = [plan.step(xb, beta=b).item() for b in (0.0, 2.0)]
    twin = Generator(5)  # the draws the recording and the two replays made, in order
    with mv.no_grad():
        want = [float(-O.elbo(g, xb, twin, beta=b).mean().data) for b in (0.25, 0.0, 2.0)][1:]
    np.testing.assert_allclose(replayed, want, rtol=1e-6)
