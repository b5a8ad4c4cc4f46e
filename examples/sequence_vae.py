"""A sequence VAE (Bowman et al. 2016) on the embedded 28×28 digits read as sequences of 28 rows: a GRU encoder over
the rows, q(z|x) = N(μ, σ²) from its last hidden state, N(0, I) latents, and a GRU decoder that starts from z and
reads the rows before each one (teacher forcing, z fed at every step too) to give the Bernoulli logits of each row's
28 pixels. Built from torch's layers (nn.GRU, nn.Linear); prints the test ELBO.

    python examples/sequence_vae.py              # about a minute of training on 2 cores
    python examples/sequence_vae.py --smoke      # a few steps, a few seconds

References:
    1. S. R. Bowman, L. Vilnis, O. Vinyals, A. M. Dai, R. Jozefowicz, S. Bengio. Generating Sentences from a
       Continuous Space. CoNLL 2016.
"""
import sys
import time

import minivae as mv
import minivae.functional as F
from minivae import nn, ops
from minivae.data import batches, load_default
from minivae.optim import Adam
from minivae.random import Generator

smoke = "--smoke" in sys.argv
SECONDS, STEPS = (None, 5) if smoke else (60.0, None)
Z, HIDDEN, ROWS = (4, 16, 28) if smoke else (16, 128, 28)


class SequenceVAE(nn.Module):
    """q(z|x): a GRU over the rows, its h_n → (μ, log σ²); p(x|z) = Π_t Bernoulli(row_t | GRU(z, rows < t))."""

    def __init__(self, z_dim, hidden, rng):
        self.encoder = nn.GRU(ROWS, hidden, batch_first=True, rng=rng)
        self.to_posterior = nn.Linear(hidden, 2 * z_dim, rng=rng)
        self.to_h0 = nn.Linear(z_dim, hidden, rng=rng)
        self.decoder = nn.GRU(ROWS + z_dim, hidden, batch_first=True, rng=rng)
        self.to_logits = nn.Linear(hidden, ROWS, rng=rng)
        self.z_dim = z_dim

    def loss(self, x, rng):
        """−ELBO per image, nats: the rows' Bernoulli reconstruction + the closed-form KL (pathwise gradient)."""
        n = x.shape[0]
        rows = ops.reshape(x, (n, ROWS, ROWS))
        _, h = self.encoder(rows)
        stats = self.to_posterior(h[0])
        z, kl = ops.reparameterize_kl(stats[:, :self.z_dim], stats[:, self.z_dim:], rng=rng)
        before = ops.concatenate([mv.zeros((n, 1, ROWS)), rows[:, :-1]], axis=1)  # row t−1 at step t (zeros first)
        inputs = ops.concatenate([before, ops.broadcast_to(ops.unsqueeze(z, 1), (n, ROWS, self.z_dim))], axis=2)
        out, _ = self.decoder(inputs, ops.unsqueeze(ops.tanh(self.to_h0(z)), 0))
        logits = self.to_logits(out)
        return (F.binary_cross_entropy_with_logits(logits, rows, reduction="sum") + kl.sum()) / n


data = load_default()
train, test = data["train"][:2000 if smoke else 10000], data["test"][:200 if smoke else 1000]
rng = Generator(0)
model = SequenceVAE(Z, HIDDEN, rng)
print(model.encoder, model.decoder, sep="\n")
optimizer = Adam(model.parameters(), lr=2e-3)
start, step, done = time.perf_counter(), 0, False
while not done:
    total, seen = 0.0, 0
    for xb in batches(train, 64, rng=rng):
        loss = model.loss(mv.tensor(xb), rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, seen, step = total + loss.item() * len(xb), seen + len(xb), step + 1
        done = step >= STEPS if STEPS is not None else time.perf_counter() - start >= SECONDS
        if done:
            break
    print(f"{step} steps, {time.perf_counter() - start:.0f} s: train ELBO {-total / seen:.2f} nats ({seen} images)")

with mv.no_grad():
    test_loss = sum(model.loss(mv.tensor(xb), rng).item() * len(xb) for xb in batches(test, 100)) / len(test)
print(f"test ELBO {-test_loss:.2f} nats")
