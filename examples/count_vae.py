"""A VAE of counts (scVI-style): synthetic "cells × genes" counts of three cell types, over-dispersed (negative
binomial noise of inverse dispersion θ = 2 around each type's mean profile), fitted with a Poisson and with a negative
binomial likelihood; the test ELBO and importance-sampled log p(x) of each in nats, and the NB model's learned θ.

    python examples/count_vae.py            # ~5 seconds on 2 cores
    python examples/count_vae.py --smoke    # a few seconds
"""
import math
import sys

import numpy as np

import minivae as mv
from minivae import objectives
from minivae.data import batches
from minivae.distributions import NegativeBinomial
from minivae.models import GaussianVAE
from minivae.optim import Adam
from minivae.random import Generator

smoke = "--smoke" in sys.argv
GENES, TYPES, THETA = 30, 3, 2.0
rng = Generator(0)
# each type's mean profile: log-means N(1, 1) a gene; a cell's mean is its type's profile times a size factor
profiles = np.exp(rng.normal((TYPES, GENES), np.float64) + 1.0)


def cells(n, seed):
    """n cells: type k = i mod 3, size factor e^{N(0, 0.3²)}, counts NB(mean, θ) drawn by minivae's Generator."""
    g = Generator(seed)
    size = np.exp(0.3 * g.normal((n, 1), np.float64))
    mean = profiles[np.arange(n) % TYPES] * size
    nb = NegativeBinomial(np.full((n, GENES), THETA), logits=np.log(mean) - math.log(THETA))
    return nb.sample(rng=g).numpy().astype(np.float32)


train, test = cells(600 if smoke else 2000, 1), cells(200, 2)
print(f"{len(train)} training cells × {GENES} genes: mean count {train.mean():.1f}, variance {train.var():.1f} "
      f"(a Poisson's would equal its mean)")
for likelihood in ("poisson", "negative_binomial"):
    model = GaussianVAE(GENES, (32,), 2, likelihood=likelihood, rng=Generator(0))
    optimizer, step_rng = Adam(model.parameters(), lr=1e-2), Generator(1)
    for _ in range(10 if smoke else 30):  # epochs
        for xb in batches(train, 100, rng=step_rng):
            loss = model.loss(mv.tensor(xb), step_rng)   # −ELBO per cell, log Γ terms included
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    x = mv.tensor(test)
    with mv.no_grad():
        elbo = objectives.elbo(model, x, Generator(3)).numpy().mean()
        ll = objectives.log_likelihood_is(model, x, Generator(4), k=100).numpy().mean()
    print(f"{likelihood:17s}  test ELBO {elbo:8.2f} nats   log p(x), importance sampled k=100 {ll:8.2f} nats")
    if likelihood == "negative_binomial":
        theta = np.exp(model.log_theta.numpy())
        print(f"learned inverse dispersion θ: median {np.median(theta):.2f} over the genes (truth {THETA:g})")
