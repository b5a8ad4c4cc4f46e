"""The CUDA kernels on a GPU against PyTorch and JAX on the same GPU and a device-to-device copy, in one run.

    python benchmarks/gpu_kernels.py [--repeats 7] [--quick]

Cases (float32): Gumbel-Softmax and softmax(x/τ) on 65536×1024, reparameterization + KL to N(0, I)
on 1M×64, each forward and forward + backward through the autodiff engine (minivae Tensors on CuPy,
PyTorch tensors on CUDA, JAX functions jitted), and the forwards of the kernels alone through
minivae/_gpu's launchers; the short rows of the categorical VAE at batch 4096 (81920×10: softmax each
way, Gumbel-Softmax, categorical KL), the kernels as launched against the same kernels with a warp a
row, and the sample with its KL forward + backward, one pair of kernels against the two ops' five launches.
Then a training step of each VAE (784-512-256, batch 1024) with its peak GPU memory. Prints milliseconds
(median over repeats of a timed loop, the device synchronized at both ends), the bandwidth each forward
reaches (bytes it must move / time, and as a fraction of the copy's), and minivae / peer time ratios
(below 1: minivae faster). Needs CuPy and a GPU; the peers are optional.
"""
import argparse
import os
import statistics
import sys
import time

import numpy

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX would otherwise take 75% of the GPU


def synchronize():
    import cupy
    cupy.cuda.runtime.deviceSynchronize()
    if "torch" in sys.modules:
        sys.modules["torch"].cuda.synchronize()


def blocking(fn):
    """A JAX call that waits for its result (JAX dispatches asynchronously on its own streams)."""
    def run():
        out = fn()
        for leaf in (out if isinstance(out, tuple) else (out,)):
            leaf.block_until_ready()
    return run


def jax_cases(x_host, g_host, tau, gauss_host):
    """The same forward and forward + backward cases in JAX, jitted (None when JAX has no GPU)."""
    try:
        import jax
        import jax.numpy as jnp
        if jax.default_backend() != "gpu":
            return None
    except Exception:
        return None
    x, g = jnp.asarray(x_host), jnp.asarray(g_host)
    key = jax.random.PRNGKey(0)

    def gumbel_softmax(t):
        return jax.nn.softmax((t + jax.random.gumbel(key, t.shape, t.dtype)) / tau, axis=-1)

    def softmax(t):
        return jax.nn.softmax(t / tau, axis=-1)

    def fwd_bwd(f):
        return jax.jit(lambda t, u: jax.vjp(f, t)[1](u)[0])

    mu, lv, eps, gz, gkl = (jnp.asarray(a) for a in gauss_host)

    def gauss(m, v):
        return m + jnp.exp(0.5 * v) * eps, 0.5 * (m * m + jnp.exp(v) - 1 - v)

    gauss_vjp = jax.jit(lambda m, v: jax.vjp(gauss, m, v)[1]((gz, gkl)))
    gs, sm, ga = jax.jit(gumbel_softmax), jax.jit(softmax), jax.jit(gauss)
    gs_b, sm_b = fwd_bwd(gumbel_softmax), fwd_bwd(softmax)
    return {"gs": blocking(lambda: gs(x)), "gs_b": blocking(lambda: gs_b(x, g)), "sm": blocking(lambda: sm(x)),
            "sm_b": blocking(lambda: sm_b(x, g)), "ga": blocking(lambda: ga(mu, lv)), "ga_b": blocking(lambda: gauss_vjp(mu, lv))}


def settle(wait=None):
    """The devices synchronized, and ``wait()`` returned if given (JAX runs on queues of its own)."""
    synchronize()
    if wait is not None:
        wait()


def warm_up(fn, calls, wait=None):
    """``calls`` calls of ``fn``, settled (``settle(wait)``)."""
    for _ in range(calls):
        fn()
    settle(wait)


def loop_ms(fn, iters, wait=None, clock=time.perf_counter):
    """Milliseconds per call of ``fn`` over one loop of ``iters`` calls, which ends settled."""
    t = clock()
    for _ in range(iters):
        fn()
    settle(wait)
    return (clock() - t) / iters * 1e3


def timed(fn, repeats, iters, warmup=2, wait=None):
    """Median milliseconds per call of ``fn`` over ``repeats`` loops of ``iters`` calls (``loop_ms``), after
    ``warmup`` calls."""
    warm_up(fn, warmup, wait)
    return statistics.median(loop_ms(fn, iters, wait) for _ in range(repeats))


def kernel_cases(torch):
    """name → (bytes a forward must move, {implementation: callable})."""
    import cupy

    import minivae as mv
    from minivae import ops
    from minivae._gpu import gaussian, gumbel, softmax
    from minivae.random import Generator

    rows, k, tau = 65536, 1024, 0.5
    rng = numpy.random.default_rng(0)
    x_host = rng.standard_normal((rows, k), dtype=numpy.float32)
    g_host = rng.standard_normal((rows, k), dtype=numpy.float32)
    x, g = cupy.asarray(x_host), cupy.asarray(g_host)
    copy_out = cupy.empty_like(x)
    gen = Generator(1)
    xt = mv.tensor(x, device="cuda", requires_grad=True)

    def mv_fwd_bwd(op):
        def run():
            y = op(xt)
            y.backward(g)
            xt.grad = None
        return run

    cases = {"copy 65536×1024 (read + write)": (2 * x.nbytes, {"cupy copy": lambda: cupy.copyto(copy_out, x)})}
    gs = {"kernel": lambda: gumbel.gumbel_softmax_fwd(x, 1, 0, tau, False),
          "minivae": lambda: ops.gumbel_softmax(mv.as_tensor(x), gen, temperature=tau)}
    gs_b = {"minivae": mv_fwd_bwd(lambda t: ops.gumbel_softmax(t, gen, temperature=tau))}
    sm = {"kernel": lambda: softmax.softmax_fwd(x, tau), "minivae": lambda: ops.softmax(mv.as_tensor(x), temperature=tau)}
    sm_b = {"minivae": mv_fwd_bwd(lambda t: ops.softmax(t, temperature=tau))}

    n, d = 1 << 20, 64
    mu, lv, eps = (cupy.asarray(rng.standard_normal((n, d), dtype=numpy.float32)) for _ in range(3))
    gz, gkl = (cupy.asarray(rng.standard_normal((n, d), dtype=numpy.float32)) for _ in range(2))
    mut, lvt = mv.tensor(mu, device="cuda", requires_grad=True), mv.tensor(lv, device="cuda", requires_grad=True)
    epst = mv.tensor(eps, device="cuda")

    def mv_gauss_fwd_bwd():
        z, kl = ops.reparameterize_kl(mut, lvt, epst)
        mv.backward([z, kl], [gz, gkl])   # one pass, as torch.autograd.backward below
        mut.grad = lvt.grad = None
    ga = {"kernel": lambda: gaussian.reparameterize_kl_fwd(mu, lv, eps),
          "minivae": lambda: ops.reparameterize_kl(mv.as_tensor(mu), mv.as_tensor(lv), epst)}
    ga_b = {"minivae": mv_gauss_fwd_bwd}

    if torch is not None:
        tx, tg = torch.as_tensor(x_host, device="cuda"), torch.as_tensor(g_host, device="cuda")
        txg = tx.clone().requires_grad_()

        def torch_fwd_bwd(op):
            def run():
                y = op(txg)
                y.backward(tg)
                txg.grad = None
            return run
        gs["torch"] = lambda: torch.nn.functional.gumbel_softmax(tx, tau=tau)
        gs_b["torch"] = torch_fwd_bwd(lambda t: torch.nn.functional.gumbel_softmax(t, tau=tau))
        sm["torch"] = lambda: torch.softmax(tx / tau, -1)
        sm_b["torch"] = torch_fwd_bwd(lambda t: torch.softmax(t / tau, -1))
        tmu, tlv, teps = (torch.as_tensor(a, device="cuda") for a in (mu, lv, eps))
        tgz, tgkl = torch.as_tensor(gz, device="cuda"), torch.as_tensor(gkl, device="cuda")
        tmug, tlvg = tmu.clone().requires_grad_(), tlv.clone().requires_grad_()

        def torch_gauss(m, v):
            return m + torch.exp(0.5 * v) * teps, 0.5 * (m * m + v.exp() - 1 - v)

        def torch_gauss_fwd_bwd():
            z, kl = torch_gauss(tmug, tlvg)
            torch.autograd.backward([z, kl], [tgz, tgkl])
            tmug.grad = tlvg.grad = None
        ga["torch"] = lambda: torch_gauss(tmu, tlv)
        ga_b["torch"] = torch_gauss_fwd_bwd

    jx = jax_cases(x_host, g_host, tau, [a.get() for a in (mu, lv, eps, gz, gkl)])
    if jx is not None:
        for impls, key in ((gs, "gs"), (gs_b, "gs_b"), (sm, "sm"), (sm_b, "sm_b"), (ga, "ga"), (ga_b, "ga_b")):
            impls["jax"] = jx[key]

    # a forward must read its input once and write its output once (Gaussian: μ, log σ², ε in; z, KL out)
    cases["Gumbel-Softmax 65536×1024 forward"] = (2 * x.nbytes, gs)
    cases["Gumbel-Softmax 65536×1024 forward+backward"] = (None, gs_b)
    cases["softmax(x/τ) 65536×1024 forward"] = (2 * x.nbytes, sm)
    cases["softmax(x/τ) 65536×1024 forward+backward"] = (None, sm_b)
    cases["reparameterization+KL 1M×64 forward"] = (5 * mu.nbytes, ga)
    cases["reparameterization+KL 1M×64 forward+backward"] = (None, ga_b)
    cases.update(short_row_cases(torch, tau))
    return cases


def short_row_cases(torch, tau):
    """The categorical VAE's rows at batch 4096 (20 variables of 10 categories: 81920 rows of 10): the kernels
    as launched (16 lanes a row, 2 rows a warp), the same kernels with a whole warp a row ("warp/row", as
    before rows shared warps), and PyTorch; the sample and its KL as one pair of kernels against the two ops'
    five launches ("apart")."""
    import contextlib

    import cupy

    from minivae._gpu import categorical, gumbel, loader, softmax

    @contextlib.contextmanager
    def whole_warps():
        saved, loader.GROUP_LANES = loader.GROUP_LANES, (32,)  # row_lanes then gives every row a warp
        try:
            yield
        finally:
            loader.GROUP_LANES = saved

    def warp_a_row(fn):
        def run():
            with whole_warps():
                fn()
        return run

    rows, k = 81920, 10
    rng = numpy.random.default_rng(1)
    x_host = rng.standard_normal((rows, k), dtype=numpy.float32)
    x, prior = cupy.asarray(x_host), cupy.zeros((20, k), numpy.float32)
    y = softmax.softmax_fwd(x, tau)
    g = cupy.asarray(rng.standard_normal((rows, k), dtype=numpy.float32))
    sm = {"kernel": lambda: softmax.softmax_fwd(x, tau)}
    sb = {"kernel": lambda: softmax.softmax_bwd(y, g, tau)}
    gs = {"kernel": lambda: gumbel.gumbel_softmax_fwd(x, 1, 0, tau, False)}
    kl = {"kernel": lambda: categorical.categorical_kl_fwd(x, prior)}
    for impls in (sm, sb, gs, kl):
        impls["warp/row"] = warp_a_row(impls["kernel"])
    gkl = cupy.asarray(rng.standard_normal(rows, dtype=numpy.float32))

    def pair():  # ops.gumbel_softmax_kl: one kernel each way
        yp, _, klp = gumbel.gumbel_softmax_kl_fwd(x, prior, 1, 0, tau, False)
        gumbel.gumbel_softmax_kl_bwd(yp, g, x, prior, klp, gkl, tau)

    def apart():  # gumbel_softmax and categorical_kl: two kernels forward, their two VJPs' and the sum
        ya, _ = gumbel.gumbel_softmax_fwd(x, 1, 0, tau, False)
        kla, q, diff = categorical.categorical_kl_fwd(x, prior)
        return softmax.softmax_bwd(ya, g, tau) + categorical.categorical_kl_bwd(gkl, q, diff, kla)
    if torch is not None:
        tx = torch.as_tensor(x_host, device="cuda")
        ty, tg = torch.softmax(tx / tau, -1), torch.as_tensor(g, device="cuda")
        sm["torch"] = lambda: torch.softmax(tx / tau, -1)
        sb["torch"] = lambda: torch._softmax_backward_data(tg, ty, -1, tx.dtype) / tau
        gs["torch"] = lambda: torch.nn.functional.gumbel_softmax(tx, tau=tau)
    name = f"{rows}×{k}"
    return {f"softmax(x/τ) {name} forward": (2 * x.nbytes, sm), f"softmax(x/τ) {name} backward": (3 * x.nbytes, sb),
            f"Gumbel-Softmax {name} forward": (2 * x.nbytes, gs),
            f"categorical KL {name} forward": (3 * x.nbytes + 4 * rows, kl),
            # the pair reads x and writes y and the KL, then reads y, ȳ, x and the KL's two and writes l̄
            f"Gumbel-Softmax and KL {name} fwd + bwd": (6 * x.nbytes + 12 * rows, {"kernel": pair, "apart": apart})}


def step_cases(torch, batch):
    """name → {implementation: callable step} for a training step of each VAE."""
    import minivae as mv
    from minivae.models import CategoricalVAE, GaussianVAE
    from minivae.optim import Adam
    from minivae.random import Generator

    x_host = (numpy.random.default_rng(0).random((batch, 784)) < 0.13).astype(numpy.float32)
    out = {}
    for kind in ("gaussian", "categorical"):
        rng = Generator(0)
        model = (GaussianVAE(hidden=(512, 256), z_dim=20, rng=rng) if kind == "gaussian" else
                 CategoricalVAE(hidden=(512, 256), n_latent=30, n_categories=10, tau0=1.0, tau_min=1.0, rng=rng))
        model.to("cuda")
        opt = Adam(model.parameters(), lr=1e-3)
        x = mv.tensor(x_host, device="cuda")

        def step(model=model, opt=opt, x=x, rng=rng):
            loss = model.loss(x, rng)
            opt.zero_grad()
            loss.backward()
            opt.step()
        impls = {"minivae": step}
        if torch is not None:
            from cpu_step import torch_step  # the same PyTorch model and step as the CPU benchmark's
            impls["torch"] = torch_step(kind, batch, device="cuda")
        out[f"{kind} VAE step, batch {batch}"] = impls
    return out


def peak_bytes(name, step):
    """Device memory a step takes beyond what was held before it, at its peak: PyTorch's allocator
    statistics, and for CuPy a memory hook summing what the pool hands out and takes back (both count
    blocks as allocated, rounded up; neither counts memory cached for reuse)."""
    import cupy
    synchronize()
    if name == "torch":
        import torch
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        synchronize()
        return torch.cuda.max_memory_allocated() - before

    class Peak(cupy.cuda.MemoryHook):
        name = "minivae-peak"
        live = peak = 0

        def malloc_postprocess(self, **kw):
            self.live += kw["mem_size"]
            self.peak = max(self.peak, self.live)

        def free_postprocess(self, **kw):
            self.live -= kw["mem_size"]

    hook = Peak()
    with hook:
        step()
        synchronize()
    return hook.peak


def gpu_and_torch(script):
    """(cupy, torch, or None where PyTorch or its CUDA is missing); or None, after saying on stderr
    why ``script`` cannot run here (no CuPy, or no GPU)."""
    try:
        import cupy
        cupy.cuda.runtime.getDeviceCount()
    except Exception as e:
        print(f"{script} needs CuPy and a GPU: {e}", file=sys.stderr)
        return None
    try:
        import torch
    except ImportError:
        return cupy, None
    return cupy, torch if torch.cuda.is_available() else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="fewer iterations (for tools/gpu_check.py)")
    p.add_argument("--steps-only", action="store_true", help="only the training steps and their memory")
    args = p.parse_args(argv)
    found = gpu_and_torch("benchmarks/gpu_kernels.py")
    if found is None:
        return 1
    cupy, torch = found
    iters = 5 if args.quick else 20
    props = cupy.cuda.runtime.getDeviceProperties(0)
    try:
        import jax
        jax_version = f"JAX {jax.__version__} ({jax.default_backend()})"
    except Exception:
        jax_version = "no JAX"
    print(f"# {props['name'].decode()}, CuPy {cupy.__version__}, " + (f"PyTorch {torch.__version__}" if torch else "no PyTorch")
          + f", {jax_version}")
    copy_gbs = None
    print(f"{'case':48s} {'impl':8s} {'ms':>9s} {'GB/s':>8s} {'of copy':>8s} {'÷ torch':>9s} {'÷ jax':>9s}")
    for case, (nbytes, impls) in ({} if args.steps_only else kernel_cases(torch)).items():
        times = {name: timed(fn, args.repeats, iters) for name, fn in impls.items()}
        for name, ms in times.items():
            gbs = nbytes / ms / 1e6 if nbytes else None
            if case.startswith("copy"):
                copy_gbs = gbs
            frac = f"{gbs / copy_gbs:8.0%}" if gbs and copy_gbs else " " * 8
            ratios = "".join(f"{ms / times[peer]:9.3f} " if peer in times and name != peer else " " * 10 for peer in ("torch", "jax"))
            print(f"{case:48s} {name:8s} {ms:9.3f} {gbs if gbs else 0:8.0f} {frac} {ratios}")
    for case, impls in step_cases(torch, 1024).items():
        times = {name: timed(fn, args.repeats, iters) for name, fn in impls.items()}
        peaks = {name: peak_bytes(name, fn) for name, fn in impls.items()}
        for name, ms in times.items():
            ratio = f"{ms / times['torch']:9.3f}" if "torch" in times and name != "torch" else " " * 9
            mem = f"step peak +{peaks[name] / 2 ** 20:.1f} MiB"
            if "torch" in peaks and name != "torch":
                mem += f" ({peaks[name] / peaks['torch']:.2f}× torch)"
            print(f"{case:48s} {name:8s} {ms:9.3f} {'':8s} {'':8s} {ratio} {'':9s}  {mem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
