"""A full VAE training step (forward, backward, Adam) on the CPU: minivae with its fused Numba
kernels, minivae on plain NumPy, the same step replayed by a step plan (minivae.plan.compile_step)
with and without Numba, and PyTorch CPU when installed, interleaved in one run.

    python benchmarks/cpu_step.py [--repeats 5] [--steps 20]

Models: Gaussian VAE 784-512-256-z20 and categorical VAE 784-512-256-30×10 (Gumbel-Softmax,
τ = 1), Bernoulli likelihood, batch 128 and 1024. Prints median ms per step: eager (numba, numpy),
replayed (replay numba, replay numpy), the replay's speed-up eager / replay (above 1: the replay is
faster) and the ratios minivae / PyTorch (below 1: minivae is faster). Then the fused kernels alone
against PyTorch's equivalents (forward + backward), what a replay pays for each array its pool
hands out (an array made and freed, by NumPy's allocator and in a pool), ``import minivae`` time,
and the kernels' first-use compile time (cold: empty Numba cache; warm: cached on disk).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy

import minivae as mv
from minivae import ops
from minivae._backend import use_numba
from minivae.models import CategoricalVAE, GaussianVAE
from minivae.optim import Adam
from minivae.plan import compile_step
from minivae.random import Generator


def minivae_setup(kind, batch, numba):
    """A fresh model, its Adam, a batch and the generator of its noise: each timed case owns its own."""
    rng = Generator(0)
    with use_numba(numba):
        model = (GaussianVAE(hidden=(512, 256), z_dim=20, rng=rng) if kind == "gaussian" else
                 CategoricalVAE(hidden=(512, 256), n_latent=30, n_categories=10, tau0=1.0, tau_min=1.0, rng=rng))
        opt = Adam(model.parameters(), lr=1e-3)
    x = mv.tensor((numpy.random.default_rng(0).random((batch, 784)) < 0.13).astype(numpy.float32))
    return model, opt, x, rng


def minivae_step(kind, batch, numba):
    model, opt, x, rng = minivae_setup(kind, batch, numba)

    def step():
        with use_numba(numba):
            loss = model.loss(x, rng)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return step


def minivae_replay(kind, batch, numba):
    """The same step recorded once by a step plan and replayed (plan.step copies the batch into the
    plan's buffer each time, as training on new batches would)."""
    model, opt, x, rng = minivae_setup(kind, batch, numba)
    with use_numba(numba):
        plan = compile_step(model, opt, lambda xb: model.loss(xb, rng), x)

    def step():
        with use_numba(numba):  # the replayed ops choose their kernels when they run
            plan.step(x)
    return step


def torch_step(kind, batch, device="cpu", n_latent=30):
    """The same step in PyTorch (benchmarks/gpu_kernels.py and gpu_step.py run it with device="cuda");
    n_latent: the categorical VAE's latent variables, of 10 categories each."""
    import torch
    import torch.nn.functional as tf
    torch.manual_seed(0)
    latent = 20 if kind == "gaussian" else 10 * n_latent
    enc = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256), torch.nn.ReLU(),
                              torch.nn.Linear(256, 2 * latent if kind == "gaussian" else latent))
    dec = torch.nn.Sequential(torch.nn.Linear(latent, 256), torch.nn.ReLU(), torch.nn.Linear(256, 512), torch.nn.ReLU(),
                              torch.nn.Linear(512, 784))
    enc, dec = enc.to(device), dec.to(device)
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)
    x = torch.tensor((numpy.random.default_rng(0).random((batch, 784)) < 0.13).astype(numpy.float32), device=device)

    def step():
        h = enc(x)
        if kind == "gaussian":
            mu, log_var = h.chunk(2, dim=-1)
            z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
            kl = 0.5 * (mu * mu + log_var.exp() - 1 - log_var).sum(-1)
        else:
            logits = h.view(batch, n_latent, 10)
            z = tf.gumbel_softmax(logits, tau=1.0).view(batch, latent)
            log_q = tf.log_softmax(logits, -1)
            kl = (log_q.exp() * (log_q + numpy.log(10.0))).sum((-1, -2))
        rec = tf.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(-1)
        loss = (rec + kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def median_ms(fn, steps):
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps * 1e3


def compare(cases, repeats, steps):
    """cases: name → zero-argument callable; timed in turn (interleaved), medians in ms."""
    for fn in cases.values():
        fn()
        fn()  # warm up (and compile)
    runs = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            runs[name].append(median_ms(fn, steps))
    return {name: statistics.median(v) for name, v in runs.items()}


def kernel_cases(have_torch):
    rng = numpy.random.default_rng(0)
    logits = rng.normal(size=(4096, 1024)).astype(numpy.float32)
    g = rng.normal(size=logits.shape).astype(numpy.float32)
    x, t = rng.normal(size=(1024, 784)).astype(numpy.float32), (rng.random((1024, 784)) < 0.13).astype(numpy.float32)
    x64, t64 = x.astype(numpy.float64), t.astype(numpy.float64)
    gen = Generator(1)

    def mv_case(fn, *arrays, numba):
        def run():
            with use_numba(numba):
                ts = [mv.tensor(a, requires_grad=True) for a in arrays]
                y = fn(*ts)
                y.backward(numpy.ones(y.shape, y.dtype) if y.shape != g.shape else g)
        return run

    table = {
        "gumbel_softmax 4096×1024": {
            "numba": mv_case(lambda a: ops.gumbel_softmax(a, gen, temperature=0.5), logits, numba=True),
            "numpy": mv_case(lambda a: ops.gumbel_softmax(a, gen, temperature=0.5), logits, numba=False)},
        "log_softmax 4096×1024": {
            "numba": mv_case(lambda a: ops.log_softmax(a, temperature=0.5), logits, numba=True),
            "numpy": mv_case(lambda a: ops.log_softmax(a, temperature=0.5), logits, numba=False)},
        "bce_with_logits 1024×784": {
            "numba": mv_case(lambda a: ops.bce_with_logits(a, mv.tensor(t)), x, numba=True),
            "numpy": mv_case(lambda a: ops.bce_with_logits(a, mv.tensor(t)), x, numba=False)},
        "bce_with_logits 1024×784 f64": {
            "numba": mv_case(lambda a: ops.bce_with_logits(a, mv.tensor(t64)), x64, numba=True),
            "numpy": mv_case(lambda a: ops.bce_with_logits(a, mv.tensor(t64)), x64, numba=False)},
    }
    if have_torch:
        import torch
        import torch.nn.functional as tf
        tl, tg, tx, tt = (torch.tensor(a) for a in (logits, g, x, t))

        def torch_case(fn, a, upstream):
            def run():
                v = a.clone().requires_grad_(True)
                fn(v).backward(upstream)
            return run
        table["gumbel_softmax 4096×1024"]["torch"] = torch_case(lambda v: tf.gumbel_softmax(v, tau=0.5), tl, tg)
        table["log_softmax 4096×1024"]["torch"] = torch_case(lambda v: tf.log_softmax(v / 0.5, -1), tl, tg)
        table["bce_with_logits 1024×784"]["torch"] = torch_case(
            lambda v: tf.binary_cross_entropy_with_logits(v, tt, reduction="none"), tx, torch.ones_like(tx))
        tx64, tt64 = tx.double(), tt.double()
        table["bce_with_logits 1024×784 f64"]["torch"] = torch_case(
            lambda v: tf.binary_cross_entropy_with_logits(v, tt64, reduction="none"), tx64, torch.ones_like(tx64))
    return table


def pool_cases():
    """100 small arrays (a + a, 1000 float32) made and freed, by NumPy's own allocator and in a pool."""
    from minivae._pool import ArrayPool
    a, pool = numpy.ones(1000, numpy.float32), ArrayPool()

    def hundred():
        for _ in range(100):
            a + a

    def pooled():
        with pool:
            hundred()
    return {"numpy": hundred, "pool": pooled}


def subprocess_seconds(code, env=None):
    out = subprocess.check_output([sys.executable, "-c", code], env={**os.environ, **(env or {})})
    return float(out.decode().split()[-1])


FIRST_USE = ("import time, numpy, minivae as mv; from minivae import ops; t = time.perf_counter(); "
             "x = mv.tensor(numpy.ones((4, 3), numpy.float32), requires_grad=True); "
             "ops.log_softmax(x).sum().backward(); print(time.perf_counter() - t)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    try:
        import torch
        torch.set_num_threads(os.cpu_count())
        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch not installed: minivae figures only")
    print(f"{os.cpu_count()} CPU cores; median ms per training step over {args.repeats} rounds of {args.steps} steps")
    print("eager: the minivae step as written; replay: the same step replayed by a step plan; "
          "×: speed-up eager / replay")
    header = f"{'model':12s} {'batch':>5s} {'numba':>9s} {'numpy':>9s} {'replay nb':>9s} {'replay np':>9s} " \
             f"{'× numba':>8s} {'× numpy':>8s}"
    if have_torch:
        header += f" {'torch':>9s} {'numba/torch':>12s} {'numpy/torch':>12s} {'replay nb/torch':>15s}"
    print(header)
    for kind in ("gaussian", "categorical"):
        for batch in (128, 1024):
            steps = max(3, args.steps if batch == 128 else args.steps // 4)
            cases = {"numba": minivae_step(kind, batch, True), "numpy": minivae_step(kind, batch, False),
                     "replay numba": minivae_replay(kind, batch, True),
                     "replay numpy": minivae_replay(kind, batch, False)}
            if have_torch:
                cases["torch"] = torch_step(kind, batch)
            r = compare(cases, args.repeats, steps)
            line = (f"{kind:12s} {batch:5d} {r['numba']:9.2f} {r['numpy']:9.2f} {r['replay numba']:9.2f} "
                    f"{r['replay numpy']:9.2f} {r['numba'] / r['replay numba']:8.2f} {r['numpy'] / r['replay numpy']:8.2f}")
            if have_torch:
                line += (f" {r['torch']:9.2f} {r['numba'] / r['torch']:12.2f} {r['numpy'] / r['torch']:12.2f}"
                         f" {r['replay numba'] / r['torch']:15.2f}")
            print(line, flush=True)
    print("\nfused kernels alone, forward + backward, median ms")
    for name, cases in kernel_cases(have_torch).items():
        r = compare(cases, args.repeats, 5)
        print(f"  {name:30s} " + "  ".join(f"{k} {v:7.2f}" for k, v in r.items())
              + (f"   numba/torch {r['numba'] / r['torch']:.2f}" if "torch" in r else ""), flush=True)
    made = compare(pool_cases(), args.repeats, 100)
    print("\nan array made and freed (a + a, 1000 float32), median µs: " + "  ".join(
        f"{k} {v * 10:.2f}" for k, v in made.items()) + "  (pool: a step plan's, minivae/_pool.py)")
    imports = [subprocess_seconds("import time; t = time.perf_counter(); import minivae; print(time.perf_counter() - t)")
               for _ in range(5)]
    print(f"\nimport minivae: {statistics.median(imports):.3f} s (Numba installed, not imported)")
    with tempfile.TemporaryDirectory() as cache:
        cold = subprocess_seconds(FIRST_USE, {"NUMBA_CACHE_DIR": cache})
        warm = subprocess_seconds(FIRST_USE, {"NUMBA_CACHE_DIR": cache})
    print(f"first fused call in a new process (log_softmax forward + backward): cold cache {cold:.2f} s, "
          f"warm cache {warm:.2f} s")


if __name__ == "__main__":
    main()
