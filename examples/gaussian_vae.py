"""Train a Gaussian VAE on the embedded digits and report its bounds on log p(x).

    python examples/gaussian_vae.py            # 5 epochs, ~1 minute on 2 cores
    python examples/gaussian_vae.py --smoke    # a few seconds
"""
import sys

import minivae as mv
from minivae import objectives
from minivae.data import batches, load_default
from minivae.models import GaussianVAE
from minivae.optim import Adam
from minivae.random import Generator

smoke = "--smoke" in sys.argv
data = load_default()
train, test = (data["train"][:500], data["test"][:200]) if smoke else (data["train"], data["test"][:1000])
rng = Generator(0)
model = GaussianVAE(z_dim=20, hidden=(64,) if smoke else (512, 256), rng=rng)
optimizer = Adam(model.parameters(), lr=1e-3)
for epoch in range(1 if smoke else 5):
    total = 0.0
    for xb in batches(train, 100, rng=rng):
        loss = model.loss(mv.tensor(xb), rng)   # −ELBO per image: pathwise gradient, closed-form KL
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
    print(f"epoch {epoch + 1}: train −ELBO {total / len(train):.2f} nats (the epoch's mean)")

x = mv.tensor(test)
with mv.no_grad():
    print(f"test ELBO                {objectives.elbo(model, x, rng).data.mean():8.2f} nats")
    print(f"test IWAE bound, k = 50  {objectives.iwae_bound(model, x, rng, k=50).data.mean():8.2f} nats")
    print(f"test prior bound, k = 50 {objectives.prior_bound(model, x, rng, k=50).data.mean():8.2f} nats")
