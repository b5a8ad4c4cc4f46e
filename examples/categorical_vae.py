"""A categorical VAE (20 variables × 10 categories) trained with Gumbel-Softmax, the temperature
annealed as τ = max(0.5, exp(−r·t)) — the setting of Jang et al. (2017).

    python examples/categorical_vae.py [--estimator straight_through|reinforce] [--smoke]
"""
import argparse

import minivae as mv
from minivae import objectives
from minivae.data import batches, load_default
from minivae.models import CategoricalVAE
from minivae.optim import Adam
from minivae.random import Generator

parser = argparse.ArgumentParser()
parser.add_argument("--estimator", default="gumbel_softmax", choices=CategoricalVAE.ESTIMATORS)
parser.add_argument("--smoke", action="store_true")
args = parser.parse_args()

data = load_default()
train = data["train"][:500] if args.smoke else data["train"]
rng = Generator(0)
model = CategoricalVAE(hidden=(64,) if args.smoke else (512, 256), estimator=args.estimator, anneal_rate=3e-5, rng=rng)
optimizer = Adam(model.parameters(), lr=1e-3)
step = 0
for epoch in range(1 if args.smoke else 5):
    total = 0.0
    for xb in batches(train, 100, rng=rng):
        loss = model.loss(mv.tensor(xb), rng, step=step)  # its value: −ELBO per image (of relaxed z for gumbel_softmax)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        total += loss.item() * len(xb)
    print(f"epoch {epoch + 1}: train loss {total / len(train):.2f} nats (the epoch's mean), τ = {model.temperature(step):.3f}")

with mv.no_grad():  # the discrete model's ELBO: one-hot samples, closed-form categorical KL
    x = mv.tensor(data["test"][:200 if args.smoke else 1000])
    print(f"test ELBO (discrete z) {objectives.elbo(model, x, rng, k=10).data.mean():.2f} nats")
