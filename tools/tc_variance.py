"""The spread over batches of the β-TCVAE's total-correlation estimate, by minibatch weighted (mws) and minibatch
stratified (mss) sampling (Chen et al. 2018, App. C), on one trained Gaussian VAE.

    python tools/tc_variance.py CHECKPOINT [--images 5000] [--batch-sizes 16,64,256] [--batches 200] [--seed 0]

The aggregate posterior is that of the first ``--images`` images of the default training split, q(z) = (1/N) Σ_n
q(z|x_n): its TC, (1/N) Σ_n [log q(z_n) − Σ_d log q(z_nd)] from one draw z_n an image, is diagnostics.kl_decomposition's
over all N (the reference). For each batch size M, the same ``--batches`` random batches of M of those images, with the
same draws z_i ~ q(z|x_i), give each estimator's TC of the batch, the mean over i of log q(z_i) − Σ_d log q(z_id)
(GaussianVAE._log_aggregate with N = ``--images``): printed, their mean and standard deviation over the batches.
"""
import argparse

import numpy as np

from minivae.data import load_splits
from minivae.diagnostics import kl_decomposition
from minivae.engine import Tensor, no_grad
from minivae.random import Generator
from minivae.training import load_checkpoint

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("--images", type=int, default=5000)
parser.add_argument("--batch-sizes", default="16,64,256")
parser.add_argument("--batches", type=int, default=200)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

model, _ = load_checkpoint(args.checkpoint)
x = load_splits()["train"][:args.images]
n = len(x)
with no_grad():
    reference = kl_decomposition(model, x, Generator(args.seed))["total_correlation"]
    print(f"{n} images, z of {model.z_dim} dimensions: TC over all of them {reference:.3f} nats")
    print(f"{'M':>5s} {'estimator':>9s} {'mean':>9s} {'std':>8s}")
    for m in [int(v) for v in args.batch_sizes.split(",")]:
        picks, noise = np.random.default_rng(args.seed), Generator(args.seed + 1)
        estimates = {"mws": [], "mss": []}
        for _ in range(args.batches):
            loc, log_var = model._encode(Tensor(x[picks.choice(n, m, replace=False)]))
            z = loc + (0.5 * log_var).exp() * Tensor(noise.normal(loc.shape, loc.dtype))
            for name, values in estimates.items():
                model.tc_estimator, model.dataset_size = name, n
                log_qz, log_marginals = model._log_aggregate(z, loc, log_var)
                values.append(float((log_qz - log_marginals).mean().numpy()))
        for name, values in estimates.items():
            print(f"{m:5d} {name:>9s} {np.mean(values):9.3f} {np.std(values):8.3f}")
