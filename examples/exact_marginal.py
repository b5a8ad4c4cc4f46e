"""A discrete latent variable model small enough that log p(x) = log Σ_z p(x|z) p(z) is exact.

Fits the model by maximizing the exact ELBO (an expectation over all 9 configurations of z),
then compares per example: the loose prior bound E_p(z) log p(x|z), the ELBO, the IWAE bound
and the exact log-likelihood; and shows that the ELBO's gap is exactly KL(q(z|x) ‖ p(z|x)).

    python examples/exact_marginal.py
"""
import numpy as np

import minivae as mv
from minivae import estimators, objectives
from minivae.distributions import Categorical, kl_divergence
from minivae.lab import TINY_DATA, tiny_categorical_vae, tiny_vae_bounds
from minivae.optim import Adam
from minivae.random import Generator

model = tiny_categorical_vae(Generator(123))   # 2 variables × 3 categories: 9 configurations
x = mv.tensor(TINY_DATA)
optimizer = Adam(model.parameters(), lr=0.05)
for _ in range(300):                       # the exact ELBO: no sampling at all
    reconstruction = estimators.exact(lambda z: model.likelihood(z).log_prob(x).sum(axis=-1), model.posterior(x))
    kl = kl_divergence(Categorical(logits=model.posterior(x).logits), model.prior()).sum(axis=-1)
    loss = -(reconstruction - kl).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

rng = Generator(0)
with mv.no_grad():
    exact = objectives.exact_log_likelihood(model, x).data
    prior = objectives.prior_bound(model, x, rng, k=10_000).data
    elbo = objectives.elbo(model, x, rng, k=10_000).data
    # IWAE is a lower bound in expectation: average 200 independent k = 10 estimates
    iwae = np.mean([objectives.iwae_bound(model, x, rng, k=10).data for _ in range(200)], axis=0)
print(f"{'prior bound':>12s} {'ELBO':>10s} {'IWAE k=10':>10s} {'log p(x)':>10s}")
for row in zip(prior, elbo, iwae, exact):
    print("".join(f"{v:11.4f}" for v in row))
b = tiny_vae_bounds(model)
print("gap log p(x) − ELBO:  ", b["gap"].round(6))
print("KL(q(z|x) ‖ p(z|x)):  ", b["kl_to_posterior"].round(6))
