"""Multi-sample objectives: the K-sample ELBO, the IWAE bound (pathwise, Gaussian VAE) and VIMCO (discrete VAEs).

The IWAE loss against −log mean exp(w) written out in NumPy from the same noise, its gradient against torch's autograd
and float64 finite differences; VIMCO's surrogate against its formula, and its gradient unbiased exactly: every K-tuple
of latents enumerated, weighted by its probability under q, against the gradient of the enumerated E_q[L̂]; K = 1 the
loss as before, bit for bit; training, step plans, checkpoints and the command line."""
import itertools
import math

import numpy as np
import pytest

import minivae as mv
from minivae import estimators as E
from minivae import objectives as O
from minivae import ops
from minivae._backend import use_numba
from minivae.data import load_splits
from minivae.distributions import Bernoulli, OneHotCategorical
from minivae.models import BernoulliVAE, CategoricalVAE, GaussianVAE, _negative_elbo
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import TrainingError, load_checkpoint, save_checkpoint, train
from tests.test_cli import one_error_line, run
from tests.test_plan import assert_same_run, eager_run, plan_run

X = (np.random.default_rng(0).random((3, 6)) < 0.4).astype(np.float64)


def float64(model):
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model


def gaussian(**kw):
    """A GaussianVAE with one tanh hidden layer (6 → 5 → 2·2, 2 → 5 → 6), in float64."""
    return float64(GaussianVAE(x_dim=6, hidden=(5,), z_dim=2, activation="tanh", rng=Generator(0), **kw))


def mlp(layers, h):
    """The MLP written out: x·W + b, tanh between the linear layers."""
    linears = [layer for layer in layers if hasattr(layer, "weight")]
    for i, layer in enumerate(linears):
        h = h @ layer.weight.data + layer.bias.data
        if i < len(linears) - 1:
            h = np.tanh(h)
    return h


def log_bernoulli(x, logits):
    """Σ over the last axis of x·l − log(1 + eˡ), log Bernoulli(x; σ(l))."""
    return (x * logits - np.logaddexp(0, logits)).sum(axis=-1)


def log_normal(z, mu, sigma):
    return (-0.5 * ((z - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * math.log(2 * math.pi)).sum(axis=-1)


def log_mean_exp(w, axis=0):
    return np.logaddexp.reduce(w, axis=axis) - math.log(w.shape[axis])


# ---- the IWAE bound of the Gaussian VAE ----------------------------------------------------------------------
def numpy_iwae_loss(model, x, eps, beta=1.0):
    """−(1/B) Σ_b log (1/K) Σ_k exp w_kb, w = log p(x|z) + β(log N(z; 0, I) − log N(z; μ, σ²)), z = μ + σ·ε."""
    h = mlp(model.encoder.layers, x)
    mu, log_var = h[:, :2], h[:, 2:]
    sigma = np.exp(0.5 * log_var)
    z = mu + sigma * eps  # (K, B, Z)
    w = (log_bernoulli(x, mlp(model.decoder.layers, z))
         + beta * (log_normal(z, 0.0, 1.0) - log_normal(z, mu, sigma)))
    return -log_mean_exp(w).mean()


@pytest.mark.parametrize("k,beta", [(4, 1.0), (3, 0.6), (1, 1.0)])
def test_iwae_loss_is_minus_log_mean_exp_of_the_log_weights_written_out(k, beta):
    """The same ε, Generator(5).normal((K, B, Z)): the loss equals the NumPy formula to rounding."""
    model = gaussian(objective="iwae", samples=k)
    loss = model.loss(mv.tensor(X), Generator(5), beta=beta).item()
    eps = Generator(5).normal((k, 3, 2), np.float64)
    assert loss == pytest.approx(numpy_iwae_loss(model, X, eps, beta), rel=1e-13)


def test_the_k_samples_draw_k_different_noises():
    """K = 2 with the two noises swapped gives the same loss (the bound is symmetric in its samples), and with one noise
    repeated twice it would be another loss: the loss reads both draws."""
    model = gaussian(objective="iwae", samples=2)
    eps = Generator(5).normal((2, 3, 2), np.float64)
    loss = model.loss(mv.tensor(X), Generator(5)).item()
    assert loss == pytest.approx(numpy_iwae_loss(model, X, eps[::-1]), rel=1e-13)
    assert abs(loss - numpy_iwae_loss(model, X, eps[[0, 0]])) > 1e-3


def test_iwae_gradient_is_torchs_autograd_of_the_same_expression():
    torch = pytest.importorskip("torch")
    model = gaussian(objective="iwae", samples=4)
    model.loss(mv.tensor(X), Generator(7), beta=0.8).backward()
    eps = torch.tensor(Generator(7).normal((4, 3, 2), np.float64))
    params = [torch.tensor(p.data, requires_grad=True) for p in model.parameters()]
    (we1, be1, we2, be2), (wd1, bd1, wd2, bd2) = params[:4], params[4:]
    x = torch.tensor(X)
    h = torch.tanh(x @ we1 + be1) @ we2 + be2
    mu, log_var = h[:, :2], h[:, 2:]
    sigma = torch.exp(0.5 * log_var)
    z = mu + sigma * eps
    logits = torch.tanh(z @ wd1 + bd1) @ wd2 + bd2
    ll = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
    normal = torch.distributions.Normal
    w = ll + 0.8 * (normal(0.0, 1.0).log_prob(z).sum(-1) - normal(mu, sigma).log_prob(z).sum(-1))
    loss = -(torch.logsumexp(w, 0) - math.log(4)).mean()
    loss.backward()
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == len(params)
    for name, p, t in zip(names, model.parameters(), params):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=name)


def test_iwae_gradient_is_the_float64_finite_difference_of_the_loss():
    """Central differences of the loss at the same noise (step 1e-6) in every parameter, against its backward."""
    model = gaussian(objective="iwae", samples=3)
    x = mv.tensor(X)
    model.loss(x, Generator(2)).backward()
    for p in model.parameters():
        numeric = np.zeros_like(p.data)
        for i in np.ndindex(p.data.shape):
            value = p.data[i]
            p.data[i] = value + 1e-6
            up = model.loss(x, Generator(2)).item()
            p.data[i] = value - 1e-6
            down = model.loss(x, Generator(2)).item()
            p.data[i] = value
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(p.grad, numeric, rtol=1e-6, atol=1e-8)


def test_one_sample_iwae_is_the_elbo_with_a_sampled_kl():
    """K = 1: log (1/1) e^{w} = w, the single-sample ELBO of objectives.elbo(analytic_kl=False) from the same draw, in
    value and in gradient."""
    model, x = gaussian(objective="iwae", samples=1), mv.tensor(X)
    model.loss(x, Generator(4)).backward()
    iwae = {n: p.grad.copy() for n, p in model.named_parameters()}
    value = model.loss(x, Generator(4)).item()
    model.zero_grad()
    elbo = -O.elbo(model, x, Generator(4), k=1, analytic_kl=False).mean()
    elbo.backward()
    assert value == pytest.approx(elbo.item(), rel=1e-13)
    for n, p in model.named_parameters():
        np.testing.assert_allclose(iwae[n], p.grad, rtol=1e-10, atol=1e-14, err_msg=n)


def test_k_sample_elbo_is_the_mean_of_k_single_sample_elbos_written_out():
    """samples=K, objective "elbo": (1/K) Σ_k log p(x|z_k) − KL(q ‖ N(0, I)), z_k = μ + σ·ε_k, the ε of (K, B, Z)."""
    model = gaussian(samples=3)
    loss = model.loss(mv.tensor(X), Generator(3), beta=0.5).item()
    h = mlp(model.encoder.layers, X)
    mu, log_var = h[:, :2], h[:, 2:]
    z = mu + np.exp(0.5 * log_var) * Generator(3).normal((3, 3, 2), np.float64)
    kl = 0.5 * (mu ** 2 + np.exp(log_var) - 1 - log_var).sum(axis=-1)
    expected = (0.5 * kl - log_bernoulli(X, mlp(model.decoder.layers, z)).mean(axis=0)).mean()
    assert loss == pytest.approx(expected, rel=1e-13)


# ---- one sample: the loss of before, bit for bit -------------------------------------------------------------
def old_loss(model, x, rng, step, beta):
    """The three models' loss before the objectives existed (their bodies as they were)."""
    if isinstance(model, GaussianVAE):
        loc, log_var = model._encode(x)
        z, kl = ops.reparameterize_kl(loc, log_var, rng=rng)
        return _negative_elbo(model.likelihood(z), x, kl, beta)
    if isinstance(model, CategoricalVAE):
        logits = model._logits(x)
        prior = model._uniform_logits(shared=True)
        if model.estimator != "reinforce":
            z, kl = ops.gumbel_softmax_kl(logits, prior, rng, temperature=model.temperature(step),
                                          hard=model.estimator == "straight_through")
            return _negative_elbo(model.likelihood(z), x, kl, beta)
        return model._reinforce_loss(x, OneHotCategorical(logits=logits), ops.categorical_kl(logits, prior), rng, beta)
    q = model.posterior(x)
    prior = model._uniform_logits(shared=True)
    if model.estimator == "reinforce":
        return model._reinforce_loss(x, q, mv.distributions.kl_divergence(q, Bernoulli(logits=prior)), rng, beta)
    z, kl = ops.binary_concrete_kl(q.logits, prior, rng, temperature=model.temperature(step),
                                   hard=model.estimator == "straight_through")
    return _negative_elbo(model.likelihood(z), x, kl, beta)


ONE_SAMPLE = {
    "gaussian": lambda: GaussianVAE(12, (8,), 3, rng=Generator(0)),
    "categorical-gumbel_softmax": lambda: CategoricalVAE(12, (8,), 3, 4, anneal_rate=0.1, rng=Generator(0)),
    "categorical-straight_through": lambda: CategoricalVAE(12, (8,), 3, 4, estimator="straight_through", rng=Generator(0)),
    "categorical-reinforce": lambda: CategoricalVAE(12, (8,), 3, 4, estimator="reinforce", baseline_hidden=3,
                                                    rng=Generator(0)),
    "bernoulli-gumbel_softmax": lambda: BernoulliVAE(12, (8,), 5, anneal_rate=0.1, rng=Generator(0)),
    "bernoulli-straight_through": lambda: BernoulliVAE(12, (8,), 5, estimator="straight_through", rng=Generator(0)),
    "bernoulli-reinforce": lambda: BernoulliVAE(12, (8,), 5, estimator="reinforce", rng=Generator(0)),
}


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("name", list(ONE_SAMPLE))
def test_one_sample_elbo_is_the_loss_of_before_bit_for_bit(name, numba):
    """samples=1, objective="elbo" (the defaults, and passed explicitly): the loss, every gradient, the moving average
    and the Philox counter after two steps equal those of the loss as it was, exactly."""
    x = mv.tensor((np.random.default_rng(1).random((4, 12)) < 0.4).astype(np.float32))
    with use_numba(numba):
        results = []
        for loss_fn, make in ((old_loss, ONE_SAMPLE[name]), (None, ONE_SAMPLE[name]),
                              (None, lambda: type(ONE_SAMPLE[name]())(**ONE_SAMPLE[name]().config, objective="elbo",
                                                                       samples=1, rng=Generator(0)))):
            model, rng, out = make(), Generator(3), []
            for step in range(2):
                loss = (loss_fn(model, x, rng, step, 0.7) if loss_fn else model.loss(x, rng, step=step, beta=0.7))
                model.zero_grad()
                loss.backward()
                out.append([loss.data.copy()] + [p.grad.copy() for p in model.parameters()])
            out.append([np.asarray(getattr(model, "baseline", 0.0)), np.asarray(rng.counter)])
            results.append(out)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)


# ---- VIMCO ---------------------------------------------------------------------------------------------------
def leave_one_out_by_hand(w):
    """L̂ − L̂_{−k} for one example's K log weights, a loop: L̂_{−k} with w_k replaced by the mean of the others."""
    out = []
    for k in range(len(w)):
        replaced = w.copy()
        replaced[k] = np.delete(w, k).mean()
        out.append(log_mean_exp(w) - log_mean_exp(replaced))
    return np.array(out)


@pytest.mark.parametrize("spread", [1.0, 300.0])
def test_vimco_surrogate_value_and_gradient_are_the_formula(spread):
    """Value log mean exp w; with a random upstream gradient g: w̄ = g·softmax(w) (log-sum-exp's), and the score's
    weights log_q̄ = g·(L̂ − L̂_{−k}), the geometric-mean baseline, by a loop in NumPy; log weights 300 nats apart too
    (no overflow, no cancellation)."""
    rng = np.random.default_rng(2)
    w_np, lq_np, g = spread * rng.normal(size=(4, 3)), rng.normal(size=(4, 3)), rng.normal(size=3)
    w, lq = mv.tensor(w_np, requires_grad=True), mv.tensor(lq_np, requires_grad=True)
    out = E.vimco_surrogate(w, lq)
    np.testing.assert_allclose(out.numpy(), log_mean_exp(w_np), rtol=1e-13)
    out.backward(mv.tensor(g))
    softmax = np.exp(w_np - np.logaddexp.reduce(w_np, axis=0))
    np.testing.assert_allclose(w.grad, g * softmax, rtol=1e-12, atol=1e-300)
    signal = np.stack([leave_one_out_by_hand(w_np[:, b]) for b in range(3)], axis=1)
    np.testing.assert_allclose(lq.grad, g * signal, rtol=1e-9, atol=1e-12)
    assert np.isfinite(lq.grad).all()


def test_vimco_refuses_one_sample_and_mismatched_shapes():
    w = mv.tensor(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="K >= 2 samples"):
        E.vimco_surrogate(w, w)
    with pytest.raises(ValueError, match="needs the log weights' shape"):
        E.vimco_surrogate(mv.tensor(np.zeros((2, 3))), mv.tensor(np.zeros((2, 3, 4))))
    q = Bernoulli(logits=mv.tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="k must be >= 2"):
        E.vimco(lambda z: z.sum(axis=-1), q, 1, rng=Generator(0))
    with pytest.raises(TypeError, match="integer number of samples"):
        E.vimco(lambda z: z.sum(axis=-1), q, 2.0, rng=Generator(0))


def test_vimco_estimator_is_the_surrogate_of_its_draws():
    """E.vimco(log_joint, q, k): the k draws of q.sample((k,)) from rng, log q summed over the variables, the surrogate
    of log_joint(z) − log q: its value log mean exp of the log weights written out in NumPy."""
    logits = mv.tensor(np.array([[0.3, -1.0, 2.0], [1.0, 0.0, -0.5]]), requires_grad=True)
    c = np.array([1.5, -2.0, 0.5])
    out = E.vimco(lambda z: (z * c).sum(axis=-1), Bernoulli(logits=logits), 5, rng=Generator(3))
    p = 1 / (1 + np.exp(-logits.data))
    z = (Generator(3).uniform((5, 2, 3), np.float64) < p).astype(np.float64)
    log_q = (z * np.log(p) + (1 - z) * np.log(1 - p)).sum(axis=-1)
    np.testing.assert_allclose(out.numpy(), log_mean_exp(z @ c - log_q), rtol=1e-13)
    out.sum().backward()
    assert logits.grad.shape == (2, 3) and np.isfinite(logits.grad).all()


def tiny_discrete(kind, n_latent, k, beta_seed=0):
    if kind == "bernoulli":
        model = BernoulliVAE(x_dim=4, hidden=(), n_latent=n_latent, estimator="reinforce", objective="iwae", samples=k,
                             rng=Generator(beta_seed))
    else:
        model = CategoricalVAE(x_dim=4, hidden=(), n_latent=n_latent, n_categories=3, estimator="reinforce",
                               objective="iwae", samples=k, rng=Generator(beta_seed))
    return float64(model)


def configurations(model):
    """Every z of the model's latents, as rows: {0, 1}^N, or the one-hots of {0, 1, 2}^N."""
    if isinstance(model, BernoulliVAE):
        return np.array(list(itertools.product((0.0, 1.0), repeat=model.n_latent)))
    return np.eye(3)[np.array(list(itertools.product(range(3), repeat=model.n_latent)))]


def numpy_log_weights(model, params, x, beta):
    """(log q(z|x), w = log p(x|z) + β(log p(z) − log q(z|x))) of every configuration z, in NumPy from the parameters
    (We, be, Wd, bd) of the linear encoder and decoder; x one image."""
    we, be, wd, bd = params
    zs = configurations(model)
    logits = x @ we + be
    if isinstance(model, BernoulliVAE):
        log_q = (zs * -np.logaddexp(0, -logits) + (1 - zs) * -np.logaddexp(0, logits)).sum(axis=-1)
        log_prior = -model.n_latent * math.log(2)
    else:
        logits = logits.reshape(model.n_latent, 3)
        log_q = (zs * (logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True))).sum(axis=(-1, -2))
        log_prior = -model.n_latent * math.log(3)
        zs = zs.reshape(len(zs), -1)
    return log_q, log_bernoulli(x, zs @ wd + bd) + beta * (log_prior - log_q)


def numpy_expected_bound(model, params, x, beta):
    """E_q[L̂] = Σ over every K-tuple of configurations of Π_k q(z_k|x) · log (1/K) Σ_k e^{w_k}."""
    log_q, w = numpy_log_weights(model, params, x, beta)
    index = np.array(list(itertools.product(range(len(w)), repeat=model.samples)))  # (C^K, K), itertools' order
    return (np.exp(log_q[index].sum(axis=1)) * log_mean_exp(w[index], axis=1)).sum()


def linear_params(model):
    return [model.encoder.layers[0].weight, model.encoder.layers[0].bias, model.decoder.layers[0].weight,
            model.decoder.layers[0].bias]


def enumerated_estimates(model, x, beta, monkeypatch, surrogate="vimco"):
    """(probability, gradient of the estimate) for every K-tuple of configurations: q.sample made to return the tuple,
    the gradient the model's loss gives (VIMCO), or that of the plain score-function surrogate of L̂."""
    zs = configurations(model)
    kind = Bernoulli if isinstance(model, BernoulliVAE) else OneHotCategorical
    out = []
    for index in itertools.product(range(len(zs)), repeat=model.samples):
        z = mv.tensor(zs[list(index)][:, None])  # (K, 1, N[, 3])
        monkeypatch.setattr(kind, "sample", lambda self, sample_shape=(), rng=None, z=z: z)
        model.zero_grad()
        if surrogate == "vimco":
            loss = model.loss(mv.tensor(x[None]), Generator(0), beta=beta)
        else:  # REINFORCE of L̂ with no baseline: L̂ + L̂·Σ_k log q(z_k) − [its value]
            q = model.posterior(mv.tensor(x[None]))
            log_q = q.log_prob(z).sum(axis=-1)
            log_prior = -model.n_latent * math.log(2 if isinstance(model, BernoulliVAE) else 3)
            log_w = model.likelihood(z).log_prob(mv.tensor(x[None])).sum(axis=-1) + beta * (log_prior - log_q)
            bound = ops.logsumexp(log_w, axis=0) - math.log(model.samples)
            loss = -E.score_function(bound, log_q.sum(axis=0)).mean()
        loss.backward()
        probability = np.exp(q_log_prob(model, x, zs[list(index)]))
        out.append((probability, [-p.grad.copy() for p in linear_params(model)], loss.item()))
    monkeypatch.undo()
    return out


def q_log_prob(model, x, z):
    """log Π_k q(z_k|x) written out."""
    we, be = (p.data for p in linear_params(model)[:2])
    logits = x @ we + be
    if isinstance(model, BernoulliVAE):
        return (z * -np.logaddexp(0, -logits) + (1 - z) * -np.logaddexp(0, logits)).sum()
    logits = logits.reshape(model.n_latent, 3)
    return (z * (logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True))).sum()


def finite_difference(fn, params):
    grads = []
    for p in params:
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            value = p[i]
            p[i] = value + 1e-6
            up = fn()
            p[i] = value - 1e-6
            down = fn()
            p[i] = value
            g[i] = (up - down) / 2e-6
        grads.append(g)
    return grads


CASES = [("bernoulli", 2, 3, 1.0), ("bernoulli", 3, 2, 0.7), ("categorical", 2, 2, 1.0)]


@pytest.mark.parametrize("kind,n_latent,k,beta", CASES)
def test_vimco_is_unbiased_exactly_by_enumeration(kind, n_latent, k, beta, monkeypatch):
    """Σ over every K-tuple (z_1..z_K) of Π_k q(z_k|x) · VIMCO's gradient = ∇ E_q[L̂], E_q[L̂] enumerated in NumPy and
    differentiated by float64 central differences (and by torch's autograd where torch is installed: to rounding);
    2–3 binary latents (or 2 of 3 categories), K = 2 or 3, β = 0.7 too. At each tuple the loss is −L̂ written out."""
    model = tiny_discrete(kind, n_latent, k)
    x = X[0, :4]
    estimates = enumerated_estimates(model, x, beta, monkeypatch)
    assert sum(p for p, _, _ in estimates) == pytest.approx(1.0, rel=1e-12)
    expected = [sum(p * g[i] for p, g, _ in estimates) for i in range(4)]
    params = [p.data.copy() for p in linear_params(model)]
    _, w = numpy_log_weights(model, params, x, beta)
    bounds = [log_mean_exp(w[list(t)]) for t in itertools.product(range(len(w)), repeat=k)]
    np.testing.assert_allclose([-loss for _, _, loss in estimates], bounds, rtol=1e-13)
    numeric = finite_difference(lambda: numpy_expected_bound(model, params, x, beta), params)
    for e, n in zip(expected, numeric):
        np.testing.assert_allclose(e, n, rtol=1e-6, atol=1e-8)
    try:
        import torch
    except ImportError:
        return
    tp = [torch.tensor(p, requires_grad=True) for p in params]
    value = torch_expected_bound(torch, model, tp, torch.tensor(x), beta)
    value.backward()
    for e, t in zip(expected, tp):
        np.testing.assert_allclose(e, t.grad.numpy(), rtol=1e-10, atol=1e-13)


def torch_expected_bound(torch, model, params, x, beta):
    we, be, wd, bd = params
    zs = torch.tensor(configurations(model))
    logits = x @ we + be
    if isinstance(model, BernoulliVAE):
        log_q = torch.distributions.Bernoulli(logits=logits).log_prob(zs).sum(-1)
        log_prior = -model.n_latent * math.log(2)
    else:
        log_q = (zs * torch.log_softmax(logits.reshape(model.n_latent, 3), -1)).sum((-1, -2))
        log_prior = -model.n_latent * math.log(3)
        zs = zs.reshape(len(zs), -1)
    logits_x = zs @ wd + bd
    ll = -torch.nn.functional.binary_cross_entropy_with_logits(logits_x, x.expand_as(logits_x), reduction="none").sum(-1)
    w = ll + beta * (log_prior - log_q)
    index = torch.tensor(list(itertools.product(range(len(zs)), repeat=model.samples)))
    return (torch.exp(log_q[index].sum(1)) * (torch.logsumexp(w[index], 1) - math.log(model.samples))).sum()


def test_plain_reinforce_of_the_bound_is_unbiased_but_noisier_than_vimco(monkeypatch):
    """The score-function surrogate of L̂ with no baseline, enumerated: its mean is ∇E_q[L̂] as VIMCO's is; the
    variance of the encoder's gradient, Σ_t P(t)·‖g_t − ḡ‖² over the K-tuples t (exact, no draws), is more than 20
    times VIMCO's on this example (3 binary latents, K = 3: 38.1 against 0.32)."""
    model = tiny_discrete("bernoulli", 3, 3, beta_seed=1)
    x = X[1, :4]
    means, variances = [], []
    for surrogate in ("vimco", "plain"):
        estimates = enumerated_estimates(model, x, 1.0, monkeypatch, surrogate)
        mean = [sum(p * g[i] for p, g, _ in estimates) for i in range(4)]
        means.append(mean)
        variances.append(sum(p * sum(((g[i] - mean[i]) ** 2).sum() for i in range(2)) for p, g, _ in estimates))
    for a, b in zip(*means):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    assert variances[1] > 20 * variances[0], variances


# ---- the models' arguments -----------------------------------------------------------------------------------
@pytest.mark.parametrize("make,error,message", [
    (lambda: GaussianVAE(4, (3,), 2, objective="iwea", rng=Generator(0)), ValueError, "objective must be one of"),
    (lambda: GaussianVAE(4, (3,), 2, samples=0, rng=Generator(0)), ValueError, "samples must be >= 1, got 0"),
    (lambda: GaussianVAE(4, (3,), 2, samples=2.0, rng=Generator(0)), TypeError, "samples must be an integer"),
    (lambda: BernoulliVAE(4, (3,), 2, objective="iwae", samples=3, rng=Generator(0)), ValueError,
     "gumbel_softmax estimator's relaxed sample .* has no categorical or Bernoulli density"),
    (lambda: CategoricalVAE(4, (3,), 2, 2, estimator="straight_through", objective="iwae", samples=3, rng=Generator(0)),
     ValueError, "estimator='reinforce' \\(VIMCO\\)"),
    (lambda: BernoulliVAE(4, (3,), 2, estimator="reinforce", objective="iwae", rng=Generator(0)), ValueError,
     "VIMCO, which needs samples >= 2"),
    (lambda: CategoricalVAE(4, (3,), 2, 2, estimator="reinforce", baseline_hidden=3, objective="iwae", samples=2,
                            rng=Generator(0)), ValueError, "no input-dependent baseline"),
])
def test_constructors_refuse_bad_objectives_naming_why(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ---- training ------------------------------------------------------------------------------------------------
TRAINED = {
    "gaussian-elbo": lambda: GaussianVAE(784, (32,), 4, samples=3, rng=Generator(0)),
    "gaussian-iwae": lambda: GaussianVAE(784, (32,), 4, objective="iwae", samples=3, rng=Generator(0)),
    "categorical-gumbel_softmax-elbo": lambda: CategoricalVAE(784, (32,), 4, 5, samples=2, rng=Generator(0)),
    "categorical-reinforce-elbo": lambda: CategoricalVAE(784, (32,), 4, 5, estimator="reinforce", samples=2,
                                                         rng=Generator(0)),
    "categorical-vimco": lambda: CategoricalVAE(784, (32,), 4, 5, estimator="reinforce", objective="iwae", samples=3,
                                                rng=Generator(0)),
    "bernoulli-straight_through-elbo": lambda: BernoulliVAE(784, (32,), 8, estimator="straight_through", samples=2,
                                                            rng=Generator(0)),
    "bernoulli-vimco": lambda: BernoulliVAE(784, (32,), 8, estimator="reinforce", objective="iwae", samples=3,
                                            rng=Generator(0)),
}
DIGITS = load_splits("default")["train"][:90]


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("name", list(TRAINED))
def test_a_few_steps_on_the_digits_lower_the_loss(name, numba):
    """8 Adam steps (lr 0.02) on 90 embedded digits, batches of 30: the last 3 losses' mean is below 0.8 times the first
    3's (the first are several hundred nats; the ratio was 0.48–0.66), every loss finite."""
    with use_numba(numba):
        model, rng = TRAINED[name](), Generator(1)
        opt, losses = Adam(model.parameters(), lr=0.02), []
        for step in range(8):
            loss = model.loss(mv.tensor(DIGITS[(step % 3) * 30:(step % 3 + 1) * 30]), rng, step=step)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3]), losses


PLANNED = {
    "gaussian-elbo": lambda: GaussianVAE(25, (10,), 3, samples=3, rng=Generator(0)),
    "gaussian-iwae": lambda: GaussianVAE(25, (10,), 3, objective="iwae", samples=3, rng=Generator(0)),
    "gaussian-likelihood-iwae": lambda: GaussianVAE(25, (10,), 3, likelihood="gaussian", objective="iwae", samples=2,
                                                    rng=Generator(0)),
    "categorical-gumbel_softmax-elbo": lambda: CategoricalVAE(25, (10,), 3, 4, anneal_rate=0.2, samples=2,
                                                              rng=Generator(0)),
    "categorical-reinforce+nvil-elbo": lambda: CategoricalVAE(25, (10,), 3, 4, estimator="reinforce", baseline_hidden=5,
                                                              samples=2, rng=Generator(0)),
    "categorical-vimco": lambda: CategoricalVAE(25, (10,), 3, 4, estimator="reinforce", objective="iwae", samples=3,
                                                rng=Generator(0)),
    "bernoulli-straight_through-elbo": lambda: BernoulliVAE(25, (10,), 5, estimator="straight_through",
                                                            anneal_rate=0.2, samples=2, rng=Generator(0)),
    "bernoulli-vimco": lambda: BernoulliVAE(25, (10,), 5, estimator="reinforce", objective="iwae", samples=2,
                                            rng=Generator(0)),
}


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("name", list(PLANNED))
def test_plans_replay_the_objectives_bit_for_bit(name, numba):
    """test_plan's comparison (4 steps: 1 recorded, 3 replayed, against 4 eager; β changes every step): parameters,
    Adam's moments, losses, the Philox counter and the baseline, exactly."""
    with use_numba(numba):
        assert_same_run(eager_run(PLANNED[name]), plan_run(PLANNED[name]))


# ---- checkpoints and the command line ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["gaussian-iwae", "gaussian-elbo", "categorical-vimco", "bernoulli-vimco"])
def test_checkpoints_reload_the_objective(tmp_path, name):
    """The objective and K are in the config and come back: the reloaded model's loss is the saved one's, bit for bit.
    The defaults are not recorded (a config as before the options: old checkpoints resume)."""
    model = PLANNED[name]()
    x = mv.tensor(BATCH)
    save_checkpoint(tmp_path / "c.npz", model, Adam(model.parameters()), Generator(0), epoch=1, step=1)
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    assert loaded.config == model.config and (loaded.objective, loaded.samples) == (model.objective, model.samples)
    assert model.config["samples"] > 1 and model.config["objective"] == name.split("-")[-1].replace("vimco", "iwae")
    np.testing.assert_array_equal(loaded.loss(x, Generator(4)).data, model.loss(x, Generator(4)).data)
    assert "objective" not in GaussianVAE(25, (10,), 3, rng=Generator(0)).config
    assert "samples" not in BernoulliVAE(25, (10,), 5, objective="elbo", samples=1, rng=Generator(0)).config


BATCH = (np.random.default_rng(5).random((6, 25)) < 0.4).astype(np.float32)


def test_resume_with_another_objective_is_refused_naming_it(tmp_path):
    data = {"train": (np.random.default_rng(1).random((40, 25)) < 0.4).astype(np.float32), "valid": BATCH}
    args = dict(epochs=1, batch_size=20, lr=1e-3, seed=0, log=lambda line: None)
    train(PLANNED["gaussian-iwae"](), data, tmp_path, **args)
    with pytest.raises(TrainingError, match=r"--objective \(checkpoint iwae, now elbo\); --samples \(checkpoint 3"):
        train(GaussianVAE(25, (10,), 3, rng=Generator(0)), data, tmp_path, **{**args, "epochs": 2}, resume=True)


SMALL = ["--limit", 100, "--hidden", 16, "--batch-size", 50, "--epochs", 1]


@pytest.mark.parametrize("args,objective,estimator", [
    (["--model", "gaussian", "--z-dim", 2, "--objective", "iwae", "--samples", 3], "iwae", "pathwise"),
    (["--model", "bernoulli", "--n-latent", 4, "--objective", "iwae", "--samples", 2], "iwae", "reinforce"),
    (["--model", "categorical", "--n-latent", 3, "--samples", 2], "elbo", "gumbel_softmax"),
])
def test_cli_trains_each_objective_and_evaluates_it(tmp_path, capsys, args, objective, estimator):
    """--objective iwae of a discrete model takes reinforce (VIMCO) by default; the checkpoint holds the objective, and
    eval still reports the ELBO and the importance-sampled log p(x)."""
    out = tmp_path / "run"
    assert run("train", *args, *SMALL, "--out", out) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.objective == objective and model.samples == args[args.index("--samples") + 1]
    assert getattr(model, "estimator", None) == estimator
    capsys.readouterr()
    assert run("eval", out / "checkpoint.npz", "--limit", 20, "-k", 10) == 0
    text = capsys.readouterr().out
    assert "ELBO (1 sample)" in text and "log p(x), importance sampled k=10" in text


@pytest.mark.parametrize("args,message", [
    (["--model", "gaussian", "--objective", "iwae"], "--objective iwae needs --samples K >= 2, got 1"),
    (["--model", "bernoulli", "--objective", "iwae", "--samples", 3, "--estimator", "gumbel_softmax"],
     "gumbel_softmax's relaxed sample has no bernoulli density q: use --estimator reinforce (VIMCO)"),
    (["--model", "categorical", "--objective", "iwae", "--samples", 3, "--estimator", "straight_through"],
     "no categorical density q"),
    (["--model", "categorical", "--objective", "iwae", "--samples", 3, "--estimator", "reinforce", "--baseline-hidden", 4],
     "--baseline-hidden is not for --objective iwae"),
])
def test_cli_refuses_bad_objective_combinations_in_one_line_writing_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert run("train", *args, *SMALL, "--out", out) == 1
    assert message in one_error_line(capsys) and not out.exists()


def test_cli_objective_and_samples_are_checked_while_parsing(capsys):
    with pytest.raises(SystemExit) as e:
        run("train", "--samples", 0)
    assert e.value.code == 2 and "positive integer" in one_error_line(capsys)
    with pytest.raises(SystemExit) as e:
        run("train", "--objective", "iwea")
    assert e.value.code == 2 and "invalid choice: 'iwea'" in one_error_line(capsys)
