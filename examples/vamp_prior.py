"""A Gaussian VAE on the embedded digits under three priors p(z): the standard N(0, I), a learned mixture of K Gaussians
(prior="mog") and the VampPrior (prior="vamp", Tomczak & Welling 2018), the mixture (1/K) Σ_k q(z|u_k) of the encoder's
posteriors of K learned pseudo-inputs u_k; the same networks, seed, data and steps. The test ELBO and the importance
sampled log p(x), and KL(q ‖ p) on average (the ELBO's price for the code).

    python examples/vamp_prior.py            # 5 epochs of 5000 images each, a few minutes on 2 cores
    python examples/vamp_prior.py --smoke    # a few seconds

What it printed (z_dim 8, one hidden layer of 256, 5 epochs of 5000 images, K = 50, 1000 test images):

    prior              test ELBO    log p(x)       KL
    standard             -162.19     -157.13    17.57
    mog K=50             -159.77     -154.41    15.73
    vamp K=50            -159.72     -154.35    13.58
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
train, test = (data["train"][:300], data["test"][:100]) if smoke else (data["train"][:5000], data["test"][:1000])
components = 5 if smoke else 50
print(f"{'prior':<16}{'test ELBO':>12}{'log p(x)':>12}{'KL':>9}   (nats; {len(train)} training images, "
      f"log p(x) by {50 if smoke else 1000} importance samples)")
for prior in ("standard", "mog", "vamp"):
    rng = Generator(0)
    model = GaussianVAE(z_dim=8, hidden=(64,) if smoke else (256,), prior=prior,
                        prior_components=None if prior == "standard" else components, rng=rng)
    optimizer = Adam(model.parameters(), lr=1e-3)
    for _ in range(1 if smoke else 5):
        for xb in batches(train, 100, rng=rng):
            loss = model.loss(mv.tensor(xb), rng)  # −ELBO; with a learned prior, the KL sampled: log q − log p
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    x, eval_rng = mv.tensor(test), Generator(1)
    with mv.no_grad():
        elbo = objectives.elbo(model, x, eval_rng, k=10)
        reconstruction = objectives.elbo(model, x, Generator(1), k=10, beta=0.0)  # the same draws, the KL dropped
        log_px = objectives.log_likelihood_is(model, x, eval_rng, k=50 if smoke else 1000, chunk=50)
    name = prior if prior == "standard" else f"{prior} K={components}"
    print(f"{name:<16}{elbo.data.mean():12.2f}{log_px.data.mean():12.2f}{(reconstruction - elbo).data.mean():9.2f}")
