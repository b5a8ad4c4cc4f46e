"""A VAE of 50 binary latents (q(z|x) = Π Bernoulli(σ(l_n)), p(z) = Bernoulli(½)^50), the sigmoid-belief-net VAE of
NVIL, VIMCO and REBAR, trained with the Binary Concrete relaxation (or straight-through, or REINFORCE with its
baselines); then its test ELBO and importance-sampled log p(x), both of exact binary z.

    python examples/bernoulli_vae.py [--estimator straight_through|reinforce] [--baseline-hidden 100] [--smoke]
"""
import argparse

import minivae as mv
from minivae import objectives
from minivae.data import batches, load_default
from minivae.models import BernoulliVAE
from minivae.optim import Adam
from minivae.random import Generator

parser = argparse.ArgumentParser()
parser.add_argument("--estimator", default="gumbel_softmax", choices=BernoulliVAE.ESTIMATORS)
parser.add_argument("--baseline-hidden", type=int, default=0, help="reinforce: NVIL's learned baseline b(x)")
parser.add_argument("--smoke", action="store_true")
args = parser.parse_args()

data = load_default()
train = data["train"][:500] if args.smoke else data["train"]
rng = Generator(0)
model = BernoulliVAE(hidden=(64,) if args.smoke else (512, 256), n_latent=50, estimator=args.estimator,
                     baseline_hidden=args.baseline_hidden, rng=rng)
optimizer = Adam(model.parameters(), lr=1e-3)
step = 0
for epoch in range(1 if args.smoke else 5):
    total = 0.0
    for xb in batches(train, 100, rng=rng):
        loss = model.loss(mv.tensor(xb), rng, step=step)  # −ELBO per image (of the relaxed z for gumbel_softmax)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        total += loss.item() * len(xb)
    print(f"epoch {epoch + 1}: train loss {total / len(train):.2f} nats (the epoch's mean), τ = {model.temperature(step):.3f}")

with mv.no_grad():  # binary z drawn from q, the KL to Bernoulli(½) in closed form
    x = mv.tensor(data["test"][:200 if args.smoke else 1000])
    print(f"test ELBO (binary z) {objectives.elbo(model, x, rng, k=10).data.mean():.2f} nats")
    print(f"test log p(x), importance sampled (k=100) {objectives.log_likelihood_is(model, x, rng, k=100).data.mean():.2f} nats")
