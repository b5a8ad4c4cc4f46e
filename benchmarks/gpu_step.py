"""A full VAE training step (forward, backward, Adam) on one GPU: minivae eager, minivae replayed as
one CUDA graph, PyTorch eager, torch.compile (default and mode="reduce-overhead") and, when JAX is
installed, a jitted JAX step, side by side in one run.

    python benchmarks/gpu_step.py [--repeats 7] [--steps 50] [--batches 128 4096] [--only REGEX] [--interleave]
                                  [--profile N]

Models (float32, Bernoulli likelihood, Adam lr 1e-3): Gaussian VAE 784-512-256-z20 and categorical
VAE 784-512-256-20×10 (Gumbel-Softmax, τ = 1 throughout). Per step it prints the median µs (over
repeats of a loop of --steps steps, the device synchronized at both ends), minivae / peer ratios
(below 1: minivae is faster; on the graph's row, eager / graph; with --interleave also each row / PyTorch's eager
step), the CUDA kernels one step launches (counted by PyTorch's profiler,
which sees CuPy's and JAX's kernels too, and those a CUDA graph launch runs; "n/a" without PyTorch)
and the device memory the step takes beyond what was held before it (gpu_kernels.peak_bytes; a
CUDA graph allocates its memory when captured, so the graph columns show what a replay adds).
"minivae graph, TF32" is the graph captured with minivae.set_float32_matmul_precision("high"), float32
products on TF32 tensor cores: JAX's default ("jax jit") is its counterpart. A graph runs its weight-gradient
products on a second stream (minivae/_gpu/graph.py); ", one stream" is the graph without it
(MINIVAE_SIDE_STREAM=0). The experimental switch ", Lt": each dense layer one cuBLASLt call, its bias and
ReLU the call's epilogue (MINIVAE_CUBLASLT=1); ", tiled": every full-precision product one launch of minivae's
own kernels/gemm.cu, a dense layer's bias and ReLU applied as it writes, its backward two launches that read ḡ
through the ReLU's gate and make the bias gradient (MINIVAE_GEMM=tiled); ", tiled, tuned": the same with each
product's split of its inner dimension the fastest of a few, timed on its first eager call (MINIVAE_GEMM_TUNE=1;
the choices are printed at the end).
With --interleave the implementations of one model and batch are made together and timed in rounds, one loop of
each a round (the order turning from round to round), and a ratio is the median of the rounds' ratios: on a host
whose speed drifts (the same eager step has taken 1.8× as long in one run as in another), two steps timed side by
side see the same drift.
Needs CuPy and a GPU; each peer is optional, and one that fails prints "failed: <reason>".
"""
import argparse
import importlib.util
import os
import re
import statistics
import sys
import time

import numpy

import minivae as mv
from cpu_step import torch_step  # the same PyTorch model and step as the CPU benchmark's
# gpu_kernels sets XLA_PYTHON_CLIENT_PREALLOCATE
from gpu_kernels import gpu_and_torch, loop_ms, peak_bytes, settle, timed, warm_up
from minivae.models import CategoricalVAE, GaussianVAE
from minivae.optim import Adam
from minivae.plan import compile_step
from minivae.random import Generator

N_LATENT = 20  # the categorical VAE's latent variables, of 10 categories each


def batch_host(batch):
    return (numpy.random.default_rng(0).random((batch, 784)) < 0.13).astype(numpy.float32)


def minivae_model(kind, batch):
    rng = Generator(0)
    model = (GaussianVAE(hidden=(512, 256), z_dim=20, rng=rng, device="cuda") if kind == "gaussian" else
             CategoricalVAE(hidden=(512, 256), n_latent=N_LATENT, n_categories=10, estimator="gumbel_softmax",
                            tau0=1.0, tau_min=1.0, rng=rng, device="cuda"))
    return model, Adam(model.parameters(), lr=1e-3), mv.tensor(batch_host(batch), device="cuda"), rng


def minivae_eager(kind, batch):
    model, opt, x, rng = minivae_model(kind, batch)

    def step():
        loss = model.loss(x, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def minivae_graph(kind, batch, precision="highest"):
    """The step as one CUDA graph, its float32 products captured in ``precision`` ("high": TF32), which
    the graph keeps: the global setting is restored once it is captured."""
    model, opt, x, rng = minivae_model(kind, batch)
    plan = compile_step(model, opt, lambda xb: model.loss(xb, rng), x)
    if not hasattr(plan, "capture"):
        raise RuntimeError("this minivae's StepPlan has no capture()")
    before = mv.get_float32_matmul_precision()
    mv.set_float32_matmul_precision(precision)
    try:
        plan.capture()
    finally:
        mv.set_float32_matmul_precision(before)
    return lambda: plan.step(x)


def experimental(make, lt=False, side=True, tiled=False, tune=False):
    """``make()``'s step with minivae's switches set while the step is made (a graph's capture) and while it
    runs (an eager step), as before outside: ``lt``, each dense layer one cuBLASLt call (MINIVAE_CUBLASLT=1);
    ``side``, a graph's weight-gradient products on a second stream (the default; MINIVAE_SIDE_STREAM=0);
    ``tiled``, products by kernels/gemm.cu (MINIVAE_GEMM=tiled); ``tune``, their splits timed (MINIVAE_GEMM_TUNE=1)."""
    from minivae._gpu import gemm, graph, tiled as tiled_module

    def switched(fn):
        before = gemm.use_lt, graph.use_side_stream, gemm.use_tiled, tiled_module.tune
        gemm.use_lt, graph.use_side_stream, gemm.use_tiled, tiled_module.tune = lt, side, tiled, tune
        try:
            return fn()
        finally:
            gemm.use_lt, graph.use_side_stream, gemm.use_tiled, tiled_module.tune = before
    step = switched(make)
    return lambda: switched(step)


def torch_compiled(kind, batch, **options):
    import torch
    torch.compiler.reset()  # every instance compiles the same code: earlier ones would count toward its recompile limit
    return torch.compile(torch_step(kind, batch, device="cuda", n_latent=N_LATENT), **options)


def jax_step(kind, batch, precision=None):
    """The same step in JAX: the same layers and initialization bounds as torch.nn.Linear, Adam written
    out (no optax), the whole step one jitted function whose state is donated, so updated in place.
    ``precision`` of the matrix products: JAX's default lets XLA use TF32 tensor cores for float32 on
    Ampere and later; "highest" is full float32, as minivae's and PyTorch's default products.
    Returns the step and a wait() that blocks until the last step is done (JAX runs asynchronously)."""
    import jax
    import jax.numpy as jnp
    if jax.default_backend() != "gpu":
        raise RuntimeError(f"JAX runs on {jax.default_backend()}, not the GPU")
    latent = 20 if kind == "gaussian" else 10 * N_LATENT
    key = jax.random.PRNGKey(0)

    def layers(sizes, key):
        out = []
        for n_in, n_out in zip(sizes, sizes[1:]):
            key, kw, kb = jax.random.split(key, 3)
            bound = 1 / n_in ** 0.5
            out.append((jax.random.uniform(kw, (n_in, n_out), jnp.float32, -bound, bound),
                        jax.random.uniform(kb, (n_out,), jnp.float32, -bound, bound)))
        return out, key

    def mlp(params, h):
        for w, b in params[:-1]:
            h = jax.nn.relu(jnp.matmul(h, w, precision=precision) + b)
        w, b = params[-1]
        return jnp.matmul(h, w, precision=precision) + b

    enc, key = layers([784, 512, 256, 2 * latent if kind == "gaussian" else latent], key)
    dec, key = layers([latent, 256, 512, 784], key)

    def loss(params, x, key):
        h = mlp(params[0], x)
        if kind == "gaussian":
            mu, log_var = jnp.split(h, 2, axis=-1)
            z = mu + jnp.exp(0.5 * log_var) * jax.random.normal(key, mu.shape, mu.dtype)
            kl = 0.5 * (mu * mu + jnp.exp(log_var) - 1 - log_var).sum(-1)
        else:
            logits = h.reshape(batch, N_LATENT, 10)
            z = jax.nn.softmax(logits + jax.random.gumbel(key, logits.shape, logits.dtype), -1).reshape(batch, latent)
            log_q = jax.nn.log_softmax(logits, -1)
            kl = (jnp.exp(log_q) * (log_q + jnp.log(10.0))).sum((-1, -2))
        out = mlp(params[1], z)
        rec = (jnp.logaddexp(0.0, out) - x * out).sum(-1)  # binary cross-entropy with logits
        return (rec + kl).mean()

    def train_step(state, x):
        params, m, v, t, key = state
        key, noise = jax.random.split(key)
        value, grads = jax.value_and_grad(loss)(params, x, noise)
        t = t + 1
        b1, b2, lr, eps = 0.9, 0.999, 1e-3, 1e-8
        m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
        step_size = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        params = jax.tree_util.tree_map(lambda p, m, v: p - step_size * m / (jnp.sqrt(v) + eps), params, m, v)
        return (params, m, v, t, key), value

    train_step = jax.jit(train_step, donate_argnums=0)
    def zeros():  # m and v each their own buffers: a donated buffer cannot be passed twice
        return jax.tree_util.tree_map(jnp.zeros_like, (enc, dec))
    state = [((enc, dec), zeros(), zeros(), jnp.float32(0), key)]
    x = jnp.asarray(batch_host(batch))

    def step():
        state[0], _ = train_step(state[0], x)
    return step, lambda: jax.block_until_ready(state[0])


def cases(kind, batch, have_torch):
    """name → (factory of (step, wait or None), memory accounting for peak_bytes or None)."""
    out = {"minivae eager": (lambda: (minivae_eager(kind, batch), None), "minivae"),
           "minivae graph": (lambda: (minivae_graph(kind, batch), None), "minivae"),
           "minivae graph, TF32": (lambda: (minivae_graph(kind, batch, "high"), None), "minivae"),
           "minivae eager, Lt": (lambda: (experimental(lambda: minivae_eager(kind, batch), lt=True), None), "minivae"),
           "minivae graph, Lt": (lambda: (experimental(lambda: minivae_graph(kind, batch), lt=True), None), "minivae"),
           "minivae graph, TF32, Lt": (lambda: (experimental(lambda: minivae_graph(kind, batch, "high"), lt=True),
                                                None), "minivae"),
           "minivae eager, tiled": (lambda: (experimental(lambda: minivae_eager(kind, batch), tiled=True), None),
                                    "minivae"),
           "minivae graph, tiled": (lambda: (experimental(lambda: minivae_graph(kind, batch), tiled=True), None),
                                    "minivae"),
           "minivae eager, tiled, tuned": (lambda: (experimental(lambda: minivae_eager(kind, batch), tiled=True,
                                                                 tune=True), None), "minivae"),
           "minivae graph, tiled, tuned": (lambda: (experimental(lambda: minivae_graph(kind, batch), tiled=True,
                                                                 tune=True), None), "minivae"),
           "minivae graph, one stream": (lambda: (experimental(lambda: minivae_graph(kind, batch), side=False), None),
                                         "minivae"),
           "minivae graph, TF32, one stream": (lambda: (experimental(lambda: minivae_graph(kind, batch, "high"),
                                                                     side=False), None), "minivae")}
    if have_torch:
        out["torch eager"] = (lambda: (torch_step(kind, batch, device="cuda", n_latent=N_LATENT), None), "torch")
        out["torch.compile"] = (lambda: (torch_compiled(kind, batch), None), "torch")
        out["compile reduce-overhead"] = (lambda: (torch_compiled(kind, batch, mode="reduce-overhead"), None), "torch")
    if importlib.util.find_spec("jax") is not None:
        out["jax jit"] = (lambda: jax_step(kind, batch), None)
        out["jax jit, fp32"] = (lambda: jax_step(kind, batch, precision="highest"), None)
    return out


def cuda_activity(step, wait=None):
    """(name, µs) of every CUDA activity (kernels, memory copies and sets) of one ``step``, by PyTorch's
    profiler; None when it cannot trace the GPU (a PyTorch built without CUPTI)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile, supported_activities
    if ProfilerActivity.CUDA not in supported_activities():
        return None
    settle(wait)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        settle(wait)
    return [(e.name, e.time_range.elapsed_us()) for e in prof.events() if e.device_type == DeviceType.CUDA]


def launches(step, wait, have_torch):
    """CUDA kernels run by one step (memory copies and sets not counted), or None without PyTorch or when
    its profiler cannot trace the GPU."""
    activity = cuda_activity(step, wait) if have_torch else None
    if activity is None:
        return None
    return sum(1 for name, _ in activity if not name.startswith(("Memcpy", "Memset")))


def interleaved(made, repeats, iters, warmup=5, clock=time.perf_counter):
    """{name: [ms a step, one value a round]} of the steps ``made`` (name → (step, wait or None)): each warmed up
    (``warmup`` steps), then ``repeats`` rounds that time one loop of ``iters`` steps of each, settled at its end, the
    order turned by one from round to round. A step that raises is dropped, with the error in its place."""
    names = list(made)
    times = {name: [] for name in names}
    for name in names:
        step, wait = made[name]
        try:
            warm_up(step, warmup, wait)
        except Exception as e:
            times[name] = e
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if isinstance(times[name], Exception):
                continue
            step, wait = made[name]
            try:
                times[name].append(loop_ms(step, iters, wait, clock))
            except Exception as e:
                times[name] = e
    return times


def paired_ratio(times, a, b):
    """The median over rounds of a's time / b's time in the same round (``interleaved``'s lists)."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=50, help="steps per timed loop")
    p.add_argument("--batches", type=int, nargs="+", default=[128, 4096])
    p.add_argument("--only", default="", help="run only the implementations whose name matches this regular expression")
    p.add_argument("--interleave", action="store_true",
                   help="make the implementations of a model and batch together and time them in turns, ratios paired "
                        "round by round")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="after each minivae eager row, a cProfile of its host time: by package, and its N top functions")
    args = p.parse_args(argv)
    found = gpu_and_torch("benchmarks/gpu_step.py")
    if found is None:
        return 1
    cupy, torch = found
    have_torch = torch is not None
    print(f"# {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, CuPy {cupy.__version__}, "
          + (f"PyTorch {torch.__version__}" if have_torch else "no PyTorch (no launch counts)"))
    print(f"median µs per step over {args.repeats} loops of {args.steps} steps"
          + (", the implementations in turns, ratios the median of each round's" if args.interleave else "")
          + "; launches: CUDA kernels per step; memory: MiB a step takes beyond what was held")
    for kind in ("gaussian", "categorical"):
        for batch in args.batches:
            print(f"\n{kind} VAE, batch {batch}")
            print(f"  {'implementation':28s} {'µs':>9s} {'eager/peer':>11s} {'graph/peer':>11s} {'launches':>9s} {'MiB':>8s}"
                  + (f" {'/torch eager':>12s}" if args.interleave else ""))
            chosen = {name: case for name, case in cases(kind, batch, have_torch).items() if re.search(args.only, name)}
            if args.interleave:
                compare_interleaved(chosen, args, have_torch)
                continue
            results = {}
            for name, (make, memory) in chosen.items():
                try:
                    step, wait = make()
                    # 5 warm-up steps: compile, autotune, record CUDA graphs
                    us = 1e3 * timed(step, args.repeats, args.steps, warmup=5, wait=wait)
                    count = launches(step, wait, have_torch)
                    mib = peak_bytes(memory, step) / 2 ** 20 if memory else None
                except Exception as e:
                    failed(name, e)
                    continue
                results[name] = us
                ratios = "".join(f" {results[m] / us:11.2f}" if m in results and m != name
                                 else " " * 12 for m in ("minivae eager", "minivae graph"))
                row(name, us, ratios, count, mib)
                profiled(name, step, args)
    from minivae._gpu import tiled
    if tiled.tuned():
        print("\nsplits of the tuned products (minivae/_gpu/tiled.py; split()'s guess first):\n  "
              + "\n  ".join(tiled.tuned()))
    return 0


def compare_interleaved(chosen, args, have_torch):
    """``chosen``'s rows (name → (factory, memory accounting)), made together and timed by ``interleaved``."""
    made, memories = {}, {}
    for name, (make, memory) in chosen.items():
        try:
            made[name], memories[name] = make(), memory
        except Exception as e:
            failed(name, e)
    times = interleaved(made, args.repeats, args.steps)
    for name, (step, wait) in made.items():
        if isinstance(times[name], Exception):
            failed(name, times[name])
            continue
        try:
            count = launches(step, wait, have_torch)
            mib = peak_bytes(memories[name], step) / 2 ** 20 if memories[name] else None
        except Exception as e:
            failed(name, e)
            continue
        ratios = "".join(f" {paired_ratio(times, m, name):11.2f}" if m != name and isinstance(times.get(m), list)
                         else " " * 12 for m in ("minivae eager", "minivae graph"))
        to_torch = (f" {paired_ratio(times, name, 'torch eager'):12.2f}"
                    if name != "torch eager" and isinstance(times.get("torch eager"), list) else "")
        row(name, 1e3 * statistics.median(times[name]), ratios, count, mib, to_torch)
        profiled(name, step, args)


def host_profile(step, steps, top, out=print):
    """cProfile over ``steps`` calls of ``step``, the device not waited for (an eager step's time is the host's): µs a
    step by where the Python ran (minivae's files, CuPy's modules and methods, the rest) and the ``top`` functions by
    their own time, with their calls a step. For the eager target: where the host time the stand-in CuPy of
    tools/eager_host_time.py cannot see goes on a real GPU."""
    import cProfile
    import pstats
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    groups, rows = {"minivae": 0.0, "CuPy": 0.0, "other": 0.0}, []
    for (filename, line, function), (_, calls, own, _, _) in pstats.Stats(profiler).stats.items():
        where = ("minivae" if f"{os.sep}minivae{os.sep}" in filename else
                 "CuPy" if "cupy" in filename or "cupy" in function else "other")
        groups[where] += own
        rows.append((own, calls, f"{os.path.basename(filename)}:{line}({function})"))
    out(f"    host µs a step: {1e6 * sum(groups.values()) / steps:.1f} ("
        + ", ".join(f"{k} {1e6 * v / steps:.1f}" for k, v in groups.items()) + ")")
    for own, calls, where in sorted(rows, reverse=True)[:top]:
        out(f"    {1e6 * own / steps:9.1f} µs {calls / steps:7.1f} calls  {where}")


def profiled(name, step, args):
    """``host_profile`` of a minivae eager row, under --profile N."""
    if args.profile and name.startswith("minivae eager"):
        print(f"  host profile of {name}, {args.steps} steps, the {args.profile} functions of most own time:")
        host_profile(step, args.steps, args.profile)


def row(name, us, ratios, count, mib, more=""):
    print(f"  {name:28s} {us:9.1f}{ratios} {count if count is not None else 'n/a':>9} "
          f"{f'{mib:.1f}' if mib is not None else 'n/a':>8s}{more}", flush=True)


def failed(name, e):
    print(f"  {name:28s} failed: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}"[:200])


if __name__ == "__main__":
    sys.exit(main())
