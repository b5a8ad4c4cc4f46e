"""objectives.prior_bound of a prior that already holds x's rows (ConditionalVAE.given(y)'s learned p(z|y), batch shape
(B, Z)) against a NumPy write-out at the same draws, and of one-example priors whose batch shape could be mistaken for
x's rows (N(0, I) of Z = B latents, a categorical of N = B variables): those still draw k times over every row."""

import numpy as np
import pytest

import minivae as mv
from minivae import objectives as O
from minivae.conditional import ConditionalVAE
from minivae.models import CategoricalVAE, GaussianVAE
from minivae.random import Generator

B, X, Z, C, K = 5, 6, 3, 4, 7


def bernoulli_log_lik(x, logits):
    return (x * logits - np.logaddexp(0, logits)).sum(-1)


@pytest.mark.parametrize("rows", [(B,), (2, B)])
def test_a_learned_prior_given_y_is_drawn_once_a_row(rows):
    """(1/k) Σ_i log p(x|z_i, y), z_i = μ_p(y) + σ_p(y)·ε_i, ε of shape (k, *rows, Z) the Generator's first draw (the
    prior holds the B rows; x (2, B, X): the leading 2 drawn too), log p(x|z, y) the decoder's logits of [one-hot y, z]
    in NumPy. Drawing (k, *rows) over the prior's own (B, Z) gives z of (k, *rows, B, Z), and no such bound."""
    model = ConditionalVAE(x_dim=X, n_classes=C, hidden=(8,), z_dim=Z, prior="learned", rng=Generator(0))
    y = np.array([0, 3, 1, 1, 2])
    x = (np.random.default_rng(4).random((*rows, X)) < 0.5).astype(np.float32)
    with mv.no_grad():
        prior = model.prior(y)
        loc, scale = prior.loc.numpy().astype(np.float64), prior.scale.numpy().astype(np.float64)
        eps = Generator(1).normal((K, *rows, Z), np.float32).astype(np.float64)
        z = loc + scale * eps
        one_hot = np.broadcast_to(np.eye(C)[y], (K, *rows, C))
        logits = model.decoder(mv.tensor(np.concatenate([one_hot, z], -1).astype(np.float32))).numpy().astype(np.float64)
        expected = bernoulli_log_lik(x, logits).mean(0)
        got = O.prior_bound(model.given(y), mv.tensor(x), Generator(1), k=K).numpy()
    assert got.shape == rows
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_the_standard_prior_given_y_draws_every_row():
    model = ConditionalVAE(x_dim=X, n_classes=C, hidden=(8,), z_dim=Z, rng=Generator(0))
    y = np.array([0, 3, 1, 1, 2])
    x = (np.random.default_rng(4).random((B, X)) < 0.5).astype(np.float32)
    with mv.no_grad():
        z = Generator(1).normal((K, B, Z), np.float32).astype(np.float64)  # N(0, I): z = ε
        one_hot = np.broadcast_to(np.eye(C)[y], (K, B, C))
        logits = model.decoder(mv.tensor(np.concatenate([one_hot, z], -1).astype(np.float32))).numpy().astype(np.float64)
        got = O.prior_bound(model.given(y), mv.tensor(x), Generator(1), k=K).numpy()
    np.testing.assert_allclose(got, bernoulli_log_lik(x, logits).mean(0), rtol=1e-5)


def test_a_one_example_prior_of_as_many_latents_as_rows_draws_every_row():
    """N(0, I) of batch shape (Z,) with Z = B rows: its batch shape is not x's rows (a per-row prior has the latent's
    axes after them), so z is (k, B, Z) drawn from the Generator, as before."""
    model = GaussianVAE(x_dim=X, hidden=(8,), z_dim=B, rng=Generator(0))
    x = (np.random.default_rng(4).random((B, X)) < 0.5).astype(np.float32)
    with mv.no_grad():
        z = Generator(1).normal((K, B, B), np.float32)
        logits = model.decoder(mv.tensor(z)).numpy().astype(np.float64)
        got = O.prior_bound(model, mv.tensor(x), Generator(1), k=K).numpy()
    np.testing.assert_allclose(got, bernoulli_log_lik(x, logits).mean(0), rtol=1e-5)


def test_a_categorical_prior_of_as_many_variables_as_rows_draws_every_row():
    """The categorical VAE's uniform prior of N = B variables (batch shape (N,), event (K,)): z of (k, B, N, K), the
    draws of the prior's own sample of that shape."""
    model = CategoricalVAE(x_dim=X, hidden=(8,), n_latent=B, n_categories=3, rng=Generator(0))
    x = (np.random.default_rng(4).random((B, X)) < 0.5).astype(np.float32)
    with mv.no_grad():
        z = model.prior().sample((K, B), rng=Generator(1))
        expected = model.likelihood(z).log_prob(mv.tensor(x)).sum(-1).numpy().mean(0)
        got = O.prior_bound(model, mv.tensor(x), Generator(1), k=K).numpy()
    assert got.shape == (B,)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
