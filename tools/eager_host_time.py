"""The host time of an eager GPU training step, measured on the CPU: minivae's own Python per step.

    python tools/eager_host_time.py                    # both VAEs (tiny layers), µs a step
    python tools/eager_host_time.py --profile 25       # and the 25 functions of most time, for one of them
    MINIVAE_GEMM=tiled python tools/eager_host_time.py # products by kernels/gemm.cu (launches that do nothing here)
    python tools/eager_host_time.py --instructions     # instructions a step (valgrind), not µs: for a loaded machine
    python tools/eager_host_time.py --calls            # the calls a step makes to CuPy's functions and kernels

An eager step on a GPU is bound by the host: the kernels of a small VAE take a fraction of the time the
Python around them does. This runs the step through minivae's real CuPy code path (not the tests'
emulation) with a stand-in ``cupy`` module put in ``sys.modules``: its arrays are a NumPy subclass whose
module is "cupy", its functions NumPy's, and every kernel of kernels/*.cu a launch that does nothing.
What it times is minivae's Python plus NumPy in place of CuPy's calls, not CuPy's own costs (a CuPy call
costs more than the NumPy one standing in for it): compare two trees with it, never with a GPU's
figures. Layers are tiny (784-8-8, batch 2) so that the arithmetic NumPy does is negligible. ``--calls`` counts
what a GPU pays beyond Python: each call of a function of CuPy's module (``empty``, ``matmul``, …) and each kernel
launch (what operators on arrays launch is tools/launch_count.py's to count: an eager step makes none,
tests/test_launch_count.py).
"""
import argparse
import collections
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import types

import numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ndarray(numpy.ndarray):
    """A "CuPy" array: NumPy's, from module cupy (how minivae tells a GPU array), with CuPy's get()."""

    def get(self):
        return numpy.asarray(self)

    @property
    def device(self):
        return types.SimpleNamespace(id=0)


ndarray.__module__ = "cupy"


def _device(x, args=()):
    """NumPy's result as a "CuPy" array: a view where it views one of ``args`` (the call's arrays), else an array of
    its own memory, ``base`` None, as CuPy's new arrays (the engine tells views by their base; NumPy's results for
    arrays of a subclass are views of its own)."""
    if not isinstance(x, numpy.ndarray):
        return x
    if any(isinstance(a, numpy.ndarray) and numpy.may_share_memory(x, a) for a in args):
        return x if isinstance(x, ndarray) else x.view(ndarray)
    if x.base is None and isinstance(x, ndarray):
        return x
    own = ndarray(x.shape, x.dtype)
    own[...] = x
    return own


calls = None  # --calls: a Counter of the functions of the stand-in CuPy called, and of the kernels launched


class _Module(types.ModuleType):
    """NumPy's functions with their arrays as ``ndarray`` above; ufuncs, types and constants as they are (a ufunc
    counted, where ``calls`` counts, by a stand-in that passes its attributes on)."""

    def __getattr__(self, name):
        attr = getattr(numpy, name)
        if isinstance(attr, numpy.ufunc) and name != "matmul":  # (CuPy's matmul makes a new array: _device below)
            return attr if calls is None else _CountedUfunc(attr)
        if isinstance(attr, (type, types.ModuleType)) or not callable(attr):
            return attr

        def call(*args, **kwargs):
            if calls is not None:
                calls[name] += 1
            return _device(attr(*args, **kwargs), args)
        if name == "empty":  # made as it is (no values to copy)
            def call(shape, dtype=float, order="C"):  # noqa: F811
                if calls is not None:
                    calls[name] += 1
                return ndarray(shape, dtype, order=order)
        setattr(self, name, call)
        return call


class _CountedUfunc:
    def __init__(self, ufunc):
        self.ufunc = ufunc

    def __call__(self, *args, **kwargs):
        calls[self.ufunc.__name__] += 1
        return self.ufunc(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.ufunc, name)


def stand_in_cupy():
    cupy = _Module("cupy")
    cupy.ndarray = ndarray
    cupy.lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
        as_strided=lambda x, shape=None, strides=None: _device(numpy.lib.stride_tricks.as_strided(x, shape, strides))))
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, getDevice=lambda: 0),
                                      get_device_id=lambda: 0, get_current_stream=lambda: types.SimpleNamespace(ptr=0))
    cupy.get_default_memory_pool = lambda: types.SimpleNamespace(malloc=bytearray)  # ndarray(shape, dtype, buffer)
    return cupy


class _Kernels:
    """A RawModule whose kernels do nothing (loader.use_module_factory)."""

    def __init__(self, source):
        pass

    def get_function(self, name):
        def launch(grid, block, args, **kwargs):
            if calls is not None:
                calls[f"kernel {name}"] += 1
        return launch


MODELS = ("gaussian", "categorical")
RUNS = (20, 100)  # --instructions: steps of the two runs whose difference is counted
# one BLAS thread (the stand-in's products are NumPy's: a BLAS thread's spinning counts instructions that vary from run
# to run) and one hash seed, so that a count repeats to the instruction
COUNT_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50, help="steps a timed loop (30 loops; the minimum and median)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="then profile the Gaussian step: N functions")
    p.add_argument("--instructions", action="store_true",
                   help="count the instructions of a step instead of timing it (valgrind's callgrind): the same count "
                        "run after run, however loaded the machine")
    p.add_argument("--calls", action="store_true",
                   help="count the calls a step makes to CuPy's functions and kernels instead of timing it")
    p.add_argument("--run", nargs=2, metavar=("MODEL", "STEPS"), help=argparse.SUPPRESS)  # --instructions' runs
    args = p.parse_args(argv)
    if args.instructions:
        return count_instructions()
    if "cupy" in sys.modules:
        raise SystemExit("eager_host_time: CuPy is already imported; run this in a fresh interpreter")
    sys.modules["cupy"] = stand_in_cupy()
    sys.path.insert(0, ROOT)
    from minivae._gpu import loader, tiled
    tiled.tune = False  # MINIVAE_GEMM_TUNE=1 times kernels on a GPU; the stand-in's do nothing

    with loader.use_module_factory(_Kernels), numpy.errstate(all="ignore"):  # the kernels do nothing: garbage values
        if args.run:
            step = eager_step(args.run[0])
            for _ in range(int(args.run[1])):
                step()
            return 0
        if args.calls:
            for kind in MODELS:
                print(f"{kind} VAE, eager step on the stand-in GPU: {describe_calls(count_calls(eager_step(kind)))}")
            return 0
        for kind in MODELS:
            step = eager_step(kind)
            times = []
            for _ in range(30):
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times.append((time.perf_counter() - start) / args.steps)
            print(f"{kind} VAE, eager step on the stand-in GPU: {min(times) * 1e6:.1f} µs host time "
                  f"(minimum of 30 loops), median {statistics.median(times) * 1e6:.1f}")
            if args.profile and kind == "gaussian":
                import cProfile
                import pstats
                profile = cProfile.Profile()
                profile.runcall(lambda step=step: [step() for _ in range(200)])
                pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    return 0


def eager_step(kind):
    """One eager training step of the VAE ``kind`` (tiny layers) on the stand-in device, run 10 times already."""
    import minivae as mv
    from minivae.models import CategoricalVAE, GaussianVAE
    from minivae.optim import Adam
    from minivae.random import Generator
    rng = Generator(0)
    model = (GaussianVAE(hidden=(8, 8), z_dim=2, rng=rng, device="cuda") if kind == "gaussian" else
             CategoricalVAE(hidden=(8, 8), n_latent=2, n_categories=10, estimator="gumbel_softmax", tau0=1.0,
                            tau_min=1.0, rng=rng, device="cuda"))
    opt = Adam(model.parameters(), lr=1e-3)
    x = mv.tensor((numpy.random.default_rng(0).random((2, 784)) < 0.13).astype(numpy.float32), device="cuda")

    def step():
        loss = model.loss(x, rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for _ in range(10):
        step()
    if not all(type(p.data) is ndarray for p in model.parameters()):
        raise SystemExit("eager_host_time: the step left the stand-in device")
    return step


def count_calls(step, steps=10):
    """{name: calls a step} of CuPy's functions and of the kernels, over ``steps`` steps."""
    global calls
    calls = collections.Counter()
    try:
        for _ in range(steps):
            step()
        return {name: n / steps for name, n in calls.items()}
    finally:
        calls = None


def describe_calls(per_step):
    """"N kernel launches, M calls of CuPy's functions (n₁ name₁, …)", the most called first."""
    kernels = sum(n for name, n in per_step.items() if name.startswith("kernel "))
    functions = sorted(((n, name) for name, n in per_step.items() if not name.startswith("kernel ")), key=lambda nn: (-nn[0], nn[1]))
    listed = ", ".join(f"{n:g} {name}" for n, name in functions)
    return f"{kernels:g} kernel launches, {sum(n for n, _ in functions):g} calls of CuPy's functions ({listed or 'none'})"


def count_instructions():
    """Instructions a step, each model: this tool run under callgrind for RUNS[0] and RUNS[1] steps (after the same
    setup and warm-up), the difference divided by the steps between them."""
    if shutil.which("valgrind") is None:
        raise SystemExit("eager_host_time: --instructions needs valgrind")
    env = dict(os.environ, **COUNT_ENV)
    for kind in MODELS:
        counts = []
        for steps in RUNS:
            done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
                                   os.path.abspath(__file__), "--run", kind, str(steps)],
                                  env=env, capture_output=True, text=True)
            found = re.search(r"Collected : (\d+)", done.stderr)
            if done.returncode or found is None:
                raise SystemExit(f"eager_host_time: callgrind failed ({done.returncode}): {done.stderr[-2000:]}")
            counts.append(int(found.group(1)))
        per_step = (counts[1] - counts[0]) // (RUNS[1] - RUNS[0])
        print(f"{kind} VAE, eager step on the stand-in GPU: {per_step:,} instructions (callgrind: {RUNS[1]} steps "
              f"less {RUNS[0]})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
