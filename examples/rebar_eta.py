"""REBAR with its control variate's weight η learned online, and what that does to the encoder gradient's variance.

    python examples/rebar_eta.py [--steps 600] [--smoke]

Trains a Bernoulli VAE (binary latents) on the embedded digits with estimator="rebar", rebar_eta="auto": η starts at
1 and follows the gradient of the encoder gradient's mean squared entry (Tucker et al. 2017, §3.3). Then, at the
trained parameters and on one batch, it draws the encoder's REBAR gradient many times at η = 0 (REINFORCE, no
baseline), η = 1 and the learned η, and prints each one's mean per-entry variance: the estimator is unbiased at every
η, so only the variance tells them apart.
"""
import argparse

import numpy as np

import minivae as mv
from minivae.data import load_default
from minivae.models import BernoulliVAE
from minivae.optim import Adam
from minivae.random import Generator

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=600)
parser.add_argument("--draws", type=int, default=200, help="gradient draws per η for the variance")
parser.add_argument("--smoke", action="store_true", help="a few steps and draws, for the test suite")
args = parser.parse_args()
steps, draws = (20, 10) if args.smoke else (args.steps, args.draws)

x = load_default()["train"][:2000]
model = BernoulliVAE(784, (200,), 40, estimator="rebar", rebar_eta="auto", anneal_rate=0.0, tau0=0.5, rng=Generator(0))
optimizer, rng = Adam(model.parameters(), lr=1e-3), Generator(1)
order = Generator(2).permutation(len(x))
for step in range(steps):
    batch = mv.tensor(x[order[(step * 50) % len(x):][:50]])
    loss = model.loss(batch, rng, step=step)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % max(1, steps // 6) == 0 or step == steps - 1:
        print(f"step {step:5d}  −ELBO {loss.item():8.2f}  η {model.eta.item():.3f}")

learned = model.eta.item()
batch = mv.tensor(x[:50])
encoder = model.encoder.parameters()
print(f"\nthe encoder gradient at the trained parameters, {draws} draws on one batch of 50:")
print(f"{'η':>8s} {'mean variance of an entry':>26s}")
for eta in (0.0, 1.0, learned):
    model.eta.data[...] = eta
    grads = []
    for draw in range(draws):
        g = mv.autograd.grad(model.loss(batch, Generator(100 + draw), step=steps), encoder)
        grads.append(np.concatenate([t.numpy().ravel() for t in g]))
    print(f"{eta:8.3f} {np.stack(grads).var(axis=0, ddof=1).mean():26.4g}")
