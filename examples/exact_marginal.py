"""A discrete latent variable model small enough that log p(x) = log Σ_z p(x|z) p(z) is exact.

Fits the model by maximizing the exact ELBO (an expectation over all 9 configurations of z),
then compares per example, each computed exactly by enumerating z: the loose prior bound
E_p(z) log p(x|z), the ELBO, the IWAE bound with k = 3 (an expectation over the 9³ triples) and
log p(x), which theory orders prior bound ≤ ELBO ≤ IWAE ≤ log p(x); and shows that the ELBO's gap
is exactly KL(q(z|x) ‖ p(z|x)). (objectives.prior_bound, elbo and iwae_bound estimate the same
bounds from samples: their estimates scatter around these values, above log p(x) at times.)

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

with mv.no_grad():
    z = mv.tensor(objectives.enumerate_one_hot(2, 3, np.float64)[:, None])  # the 9 configurations, (9, 1, 2, 3)
    log_lik = model.likelihood(z).log_prob(x).sum(axis=-1).data            # log p(x|z), (9, batch)
    log_prior = model.prior().log_prob(z).sum(axis=-1).data                  # log p(z) = log 1/9
    log_q = model.posterior(x).log_prob(z).sum(axis=-1).data                 # log q(z|x)
    exact = objectives.exact_log_likelihood(model, x).data
q, log_w = np.exp(log_q), log_lik + log_prior - log_q                      # log w = log p(x, z) / q(z|x)
prior = (np.exp(log_prior) * log_lik).sum(axis=0)                          # E_p(z) log p(x|z)
elbo = (q * log_w).sum(axis=0)                                             # E_q log w
triples = np.indices((9, 9, 9)).reshape(3, -1)                             # every (z1, z2, z3), (3, 729)
iwae = (q[triples].prod(axis=0) * (np.logaddexp.reduce(log_w[triples], axis=0) - np.log(3))).sum(axis=0)
print(f"{'prior bound':>12s} {'ELBO':>11s} {'IWAE k=3':>11s} {'log p(x)':>11s}   (exact)")
for row in zip(prior, elbo, iwae, exact):
    print("".join(f"{v:12.6f}" for v in row))
b = tiny_vae_bounds(model)
print("gap log p(x) − ELBO:  ", b["gap"].round(6))
print("KL(q(z|x) ‖ p(z|x)):  ", b["kl_to_posterior"].round(6))
