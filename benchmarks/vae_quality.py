"""Quality of minivae's VAEs on statically binarized MNIST: train on the 50,000 training images,
select the epoch by validation ELBO, report test bounds in nats.

    python benchmarks/vae_quality.py --model gaussian --z-dim 50 --epochs 1000 --max-minutes 60
    python benchmarks/vae_quality.py --model categorical --estimator gumbel_softmax --epochs 200
    python benchmarks/vae_quality.py --model gaussian --objective iwae --samples 5 --epochs 2 --limit 5000

Targets (issue 3): Gaussian VAE test −log p(x) ≤ 88.7 nats (importance sampling, k = 5000) and
single-sample −ELBO ≤ 93; categorical VAE 20×10 in Jang et al.'s setting, test −ELBO ≤ 101.5
(Gumbel-Softmax), 107.8 (straight-through), 110.6 (score function), bound from 1000 samples.
Reads ../shared/data (a benchmark may; the library never does). Prints exactly what was run.
"""
import argparse
import os
import sys
import time

import numpy

import minivae as mv
from minivae import objectives
from minivae.data import batches, load_splits, sample_rows
from minivae.models import BernoulliVAE, CategoricalVAE, GaussianVAE
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import evaluate, kl_weight

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "binarized-mnist")


def test_bounds(model, x, seed, k_elbo, k_is, batch_size=100):
    rng = Generator(seed)
    elbo1, elbo_k, ll = [], [], []
    with mv.no_grad():
        for xb in batches(x, batch_size):
            t = mv.tensor(xb)
            elbo1.append(objectives.elbo(model, t, rng).numpy())
            elbo_k.append(objectives.elbo(model, t, rng, k=k_elbo).numpy())
            if k_is:
                ll.append(objectives.log_likelihood_is(model, t, rng, k=k_is, chunk=250).numpy())
    out = {"elbo_1": numpy.concatenate(elbo1).mean(), f"elbo_{k_elbo}": numpy.concatenate(elbo_k).mean()}
    if k_is:
        out[f"log_px_is_{k_is}"] = numpy.concatenate(ll).mean()
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["gaussian", "categorical", "bernoulli"], default="gaussian")
    p.add_argument("--estimator", choices=CategoricalVAE.ESTIMATORS,
                   help="categorical and bernoulli (default gumbel_softmax; with --objective iwae, reinforce: VIMCO)")
    p.add_argument("--objective", choices=["elbo", "iwae"], default="elbo",
                   help="train on the ELBO of --samples draws, or on the IWAE bound of --samples draws")
    p.add_argument("--samples", type=int, default=1, help="draws z ~ q(z|x) an image per step")
    p.add_argument("--z-dim", type=int, default=50)
    p.add_argument("--n-latent", type=int, default=200, help="bernoulli: binary latents (NVIL's 200)")
    p.add_argument("--hidden", default="512,256")
    p.add_argument("--arch", choices=["mlp", "conv"], default="mlp",
                   help="conv: 4×4 convolutions of stride 2 before the hidden layers, transposed ones after")
    p.add_argument("--channels", help="conv: channel counts, comma-separated (default 32,64)")
    p.add_argument("--activation", default="relu", help="relu, tanh, softplus or gated (GatedLinear hidden layers)")
    p.add_argument("--warmup-epochs", type=int, default=0, help="KL weight β rises linearly from 0 to 1 over these epochs")
    p.add_argument("--patience", type=int, default=0, help="stop after this many epochs without a better validation ELBO")
    p.add_argument("--baseline-hidden", type=int, default=0,
                   help="reinforce: hidden units of an input-dependent baseline b(x) (0: moving average only)")
    p.add_argument("--lr-decay", type=float, default=1.0,
                   help="multiply the learning rate by this after --lr-patience epochs without a better validation ELBO")
    p.add_argument("--lr-patience", type=int, default=10)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--max-minutes", type=float, default=float("inf"), help="stop training after this long")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--anneal-rate", type=float, default=3e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k-elbo", type=int, default=1000, help="samples for the test ELBO")
    p.add_argument("--k-is", type=int, default=5000, help="importance samples for log p(x); 0 to skip")
    p.add_argument("--test-limit", type=int, help="evaluate on N test images drawn at random (seeded), not all")
    p.add_argument("--limit", type=int, help="train and validate on the first N images of each split (quick runs)")
    p.add_argument("--data", default=DATA, help="the binarized MNIST folder")
    p.add_argument("--out", default="runs/quality")
    p.add_argument("--eval-only", action="store_true", help="skip training: evaluate OUT/best.npz")
    args = p.parse_args()
    print("command: python " + " ".join(sys.argv))
    data = load_splits(args.data)
    if args.limit:
        data = data.limit(args.limit)
    estimator = args.estimator or {"elbo": "gumbel_softmax", "iwae": "reinforce"}[args.objective]
    objective = dict(objective=args.objective, samples=args.samples, arch=args.arch,
                     channels=tuple(int(c) for c in args.channels.split(",")) if args.channels else None)
    hidden = tuple(int(h) for h in args.hidden.split(","))
    rng = Generator(args.seed)
    if args.model == "gaussian":
        model = GaussianVAE(hidden=hidden, z_dim=args.z_dim, activation=args.activation, **objective, rng=rng)
    elif args.model == "bernoulli":
        model = BernoulliVAE(hidden=hidden, n_latent=args.n_latent, estimator=estimator, tau0=1.0, tau_min=0.5,
                             anneal_rate=args.anneal_rate, activation=args.activation,
                             baseline_hidden=args.baseline_hidden, **objective, rng=rng)
    else:
        model = CategoricalVAE(hidden=hidden, n_latent=20, n_categories=10, estimator=estimator,
                               tau0=1.0, tau_min=0.5, anneal_rate=args.anneal_rate,
                               activation=args.activation, baseline_hidden=args.baseline_hidden, **objective, rng=rng)
    print(f"model: {args.model} {model.config}; train {len(data['train'])}, valid {len(data['valid'])}, "
          f"test {len(data['test'])} images")
    optimizer = Adam(model.parameters(), lr=args.lr)
    os.makedirs(args.out, exist_ok=True)
    best, best_epoch, step, started = -numpy.inf, 0, 0, time.perf_counter()
    epoch, last_change = 0, 0
    for epoch in range(1, 0 if args.eval_only else args.epochs + 1):
        beta = kl_weight(epoch, args.warmup_epochs)
        for xb in batches(data["train"], args.batch_size, rng=rng):
            loss = model.loss(mv.tensor(xb), rng, step=step, beta=beta)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
        valid = evaluate(model, data["valid"], args.seed + 1)
        if valid > best:
            best, best_epoch = valid, epoch
            model.save(os.path.join(args.out, "best.npz"))
        minutes = (time.perf_counter() - started) / 60
        print(f"epoch {epoch:4d}  step {step:7d}  valid ELBO {valid:8.3f}  best {best:8.3f} (epoch {best_epoch})"
              f"  {minutes:6.1f} min", flush=True)
        if args.lr_decay != 1.0 and beta == 1.0 and epoch - max(best_epoch, last_change) >= args.lr_patience:
            optimizer.lr *= args.lr_decay  # as torch.optim.lr_scheduler.ReduceLROnPlateau
            last_change = epoch
            print(f"learning rate now {optimizer.lr:.3g}", flush=True)
        if args.patience and epoch - best_epoch >= args.patience and beta == 1.0:
            print(f"stopping: no better validation ELBO for {args.patience} epochs")
            break
        if minutes > args.max_minutes:
            print(f"stopping: --max-minutes {args.max_minutes} reached")
            break
    model.load(os.path.join(args.out, "best.npz"))
    x = sample_rows(data["test"], args.test_limit, args.seed + 3) if args.test_limit else data["test"]
    t = time.perf_counter()
    result = test_bounds(model, x, args.seed + 2, args.k_elbo, args.k_is if args.model != "categorical" else 0)
    if args.eval_only:
        print(f"\nevaluating {args.out}/best.npz (validation ELBO {evaluate(model, data['valid'], args.seed + 1):.3f})")
    else:
        print(f"\nselected epoch {best_epoch} of {epoch} by validation ELBO; trained {(t - started) / 60:.1f} min")
    subset = f" (a random sample of the {len(data['test'])}, seed {args.seed + 3})" if len(x) < len(data["test"]) else ""
    print(f"test set: {len(x)} images{subset}; evaluation took {(time.perf_counter() - t) / 60:.1f} min")
    for name, value in result.items():
        print(f"  test −{name:18s} {-value:8.2f} nats")


if __name__ == "__main__":
    main()
