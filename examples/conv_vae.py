"""A convolutional Gaussian VAE on the embedded 28×28 digits: a Conv2d encoder, a ConvTranspose2d decoder (the classic
conv VAE on MNIST, built from torch's layers), a Bernoulli likelihood of the pixels and N(0, I) latents.

    python examples/conv_vae.py              # 2 epochs on 10000 digits, about 2 minutes on 2 cores
    python examples/conv_vae.py --smoke      # a few steps, a few seconds
"""
import sys


import minivae as mv
import minivae.functional as F
from minivae import nn, ops
from minivae.data import batches, load_default
from minivae.optim import Adam
from minivae.random import Generator

smoke = "--smoke" in sys.argv
STEPS = 8 if smoke else None          # (None: whole epochs)
EPOCHS, Z, WIDTH = (1, 8, 8) if smoke else (2, 16, 32)


class ConvVAE(nn.Module):
    """q(z|x) = N(μ, σ²) from two stride-2 convolutions (28 → 14 → 7) and a linear layer; p(x|z) Bernoulli with logits
    from a linear layer and two stride-2 transposed convolutions (7 → 14 → 28)."""

    def __init__(self, z_dim, width, rng):
        self.encoder = nn.Sequential(nn.Conv2d(1, width, 4, 2, 1, rng=rng), nn.ReLU(),
                                     nn.Conv2d(width, 2 * width, 4, 2, 1, rng=rng), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(2 * width * 7 * 7, 2 * z_dim, rng=rng))
        self.decoder = nn.Sequential(nn.Linear(z_dim, 2 * width * 7 * 7, rng=rng), nn.ReLU(),
                                     nn.Unflatten(1, (2 * width, 7, 7)),
                                     nn.ConvTranspose2d(2 * width, width, 4, 2, 1, rng=rng), nn.ReLU(),
                                     nn.ConvTranspose2d(width, 1, 4, 2, 1, rng=rng))
        self.z_dim = z_dim

    def loss(self, x, rng):
        """−ELBO per image, nats: Bernoulli reconstruction + closed-form KL (pathwise gradient)."""
        h = self.encoder(x)
        z, kl = ops.reparameterize_kl(h[:, :self.z_dim], h[:, self.z_dim:], rng=rng)
        logits = self.decoder(z)
        return (F.binary_cross_entropy_with_logits(logits, x, reduction="sum") + kl.sum()) / x.shape[0]


data = load_default()
images = lambda a: a.reshape(-1, 1, 28, 28)  # noqa: E731  (the rows of 784 pixels as NCHW images)
train, test = images(data["train"][:2000 if smoke else 10000]), images(data["test"][:200 if smoke else 1000])
rng = Generator(0)
model = ConvVAE(Z, WIDTH, rng)
print(model.encoder[0], model.decoder[3], sep="\n")
optimizer = Adam(model.parameters(), lr=1e-3)
step = 0
for epoch in range(EPOCHS):
    total, seen = 0.0, 0
    for xb in batches(train, 64, rng=rng):
        loss = model.loss(mv.tensor(xb), rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, seen, step = total + loss.item() * len(xb), seen + len(xb), step + 1
        if STEPS is not None and step >= STEPS:
            break
    print(f"epoch {epoch + 1}: train −ELBO {total / seen:.2f} nats ({seen} images)")

with mv.no_grad():
    test_loss = sum(model.loss(mv.tensor(xb), rng).item() * len(xb) for xb in batches(test, 100)) / len(test)
print(f"test −ELBO {test_loss:.2f} nats")
