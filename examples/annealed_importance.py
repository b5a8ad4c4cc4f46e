"""Annealed importance sampling against importance sampling, on a model whose log p(x) is known: a linear Gaussian
p(z) = N(0, I₂), p(x|z) = N(Wz + b, s²I₈), so p(x) = N(b, WWᵀ + s²I), and q(z|x) = p(z) (an encoder that ignores x).
The posterior is narrow (s small), so importance sampling from q with C draws misses it, while AIS moves the same C
chains to it through T temperatures; T = 1 is importance sampling.

    python examples/annealed_importance.py           # 5 images, under a minute on 2 cores
    python examples/annealed_importance.py --smoke   # a few seconds

What it printed (5 images, 64 chains, errors in nats, mean over the images; AIS is a stochastic lower bound, below
log p(x) on average over runs, and one run may land a little above it):

    exact log p(x), mean over 5 images: 1.677 nats
    importance sampling, 64 draws        -14.084
    AIS, T = 1, 64 chains                -14.084
    AIS, T = 10, 64 chains                -0.221
    AIS, T = 100, 64 chains               -0.214
    AIS, T = 1000, 64 chains               0.062
"""
import math
import sys

import numpy as np

from minivae import ais, objectives
from minivae.distributions import Normal
from minivae.engine import Tensor
from minivae.random import Generator

smoke = "--smoke" in sys.argv
rng = np.random.default_rng(0)
W, b, s = rng.normal(size=(8, 2)), rng.normal(size=8), 0.1
x = (rng.normal(size=(2 if smoke else 5, 2)) @ W.T + b + s * rng.normal(size=(2 if smoke else 5, 8)))


class LinearGaussian:
    def posterior(self, x):
        return Normal(Tensor(np.zeros((x.shape[0], 2))), Tensor(np.ones((x.shape[0], 2))))

    def prior(self):
        return Normal(Tensor(np.zeros(2)), Tensor(np.ones(2)))

    def likelihood(self, z):
        return Normal(z @ Tensor(W.T) + Tensor(b), Tensor(np.full(8, s)))


cov = W @ W.T + s * s * np.eye(8)
d = x - b
exact = -0.5 * (np.einsum("bi,ij,bj->b", d, np.linalg.inv(cov), d) + np.linalg.slogdet(cov)[1] + 8 * math.log(2 * math.pi))
model, chains = LinearGaussian(), 64
print(f"exact log p(x), mean over {len(x)} images: {exact.mean():.3f} nats")
print(f"{'estimate':<34}{'error':>10}")
sampled = objectives.log_likelihood_is(model, Tensor(x), Generator(1), k=chains).numpy()
print(f"{f'importance sampling, {chains} draws':<34}{(sampled - exact).mean():10.3f}")
for steps in ((1, 20) if smoke else (1, 10, 100, 1000)):
    annealed = ais.log_likelihood_ais(model, Tensor(x), Generator(1), steps=steps, chains=chains, leapfrog=5).numpy()
    print(f"{f'AIS, T = {steps}, {chains} chains':<34}{(annealed - exact).mean():10.3f}")
