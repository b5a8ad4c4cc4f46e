"""A VAE of counts (scVI-style): synthetic "cells × genes" counts of three cell types, over-dispersed (negative
binomial noise of inverse dispersion θ = 2 around each type's mean profile times the cell's size factor, which varies
about 20-fold), the third type's counts dropped to 0 with probability 0.5 (zero inflation), fitted with a Poisson and a
negative binomial likelihood of mean e^f(z), then of scVI's mean ℓ·softmax(f(z)) (ℓ the cell's total count,
library="observed"), and with the zero-inflated NB of that mean, its dropout one logit a gene or a decoder output a cell
and gene (gate="decoder"); the test ELBO and importance-sampled log p(x) of each in nats, and the NB model's learned θ.

    python examples/count_vae.py            # ~20 s of CPU time (40 s on a loaded 2-core machine)
    python examples/count_vae.py --smoke    # a few seconds
"""
import math
import sys

import numpy as np

import minivae as mv
from minivae import objectives
from minivae.data import batches
from minivae.models import GaussianVAE, ZeroInflatedNegativeBinomial
from minivae.optim import Adam
from minivae.random import Generator

smoke = "--smoke" in sys.argv
GENES, TYPES, THETA, DROPOUT = 30, 3, 2.0, (0.0, 0.0, 0.5)
rng = Generator(0)
# each type's mean profile: log-means N(1, 1) a gene; a cell's mean is its type's profile times a size factor
profiles = np.exp(rng.normal((TYPES, GENES), np.float64) + 1.0)


def cells(n, seed):
    """n cells: type k = i mod 3, size factor e^{N(0, 0.75²)}, counts ZINB(mean, θ, dropout of the type) drawn by
    minivae's Generator (the NB a Gamma–Poisson mixture)."""
    g = Generator(seed)
    size = np.exp(0.75 * g.normal((n, 1), np.float64))
    mean = profiles[np.arange(n) % TYPES] * size
    gate = np.broadcast_to(np.array(DROPOUT)[np.arange(n) % TYPES, None], (n, GENES)).copy()
    zinb = ZeroInflatedNegativeBinomial(np.full((n, GENES), THETA), logits=np.log(mean) - math.log(THETA), gate=gate)
    return zinb.sample(rng=g).numpy().astype(np.float32)


train, test = cells(600 if smoke else 2000, 1), cells(200, 2)
totals = train.sum(axis=1)
print(f"{len(train)} training cells × {GENES} genes: mean count {train.mean():.1f}, variance {train.var():.1f} "
      f"(a Poisson's would equal its mean); totals a cell {np.percentile(totals, 5):.0f} to "
      f"{np.percentile(totals, 95):.0f} (5th to 95th percentile); {(train == 0).mean():.0%} zeros")
RUNS = [("poisson", {}), ("negative_binomial", {}), ("negative_binomial", {"library": "observed"}),
        ("zero_inflated_negative_binomial", {"library": "observed"}),
        ("zero_inflated_negative_binomial", {"library": "observed", "gate": "decoder"})]
for likelihood, options in RUNS:
    model = GaussianVAE(GENES, (32,), 2, likelihood=likelihood, rng=Generator(0), **options)
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
    name = likelihood + "".join(f", {k}={v}" for k, v in options.items())
    print(f"{name:67s}  test ELBO {elbo:8.2f} nats   log p(x), importance sampled k=100 {ll:8.2f} nats")
    if (likelihood, options) == ("negative_binomial", {}):
        theta = np.exp(model.log_theta.numpy())
        print(f"learned inverse dispersion θ: median {np.median(theta):.2f} over the genes (truth {THETA:g})")
