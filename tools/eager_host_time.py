"""The host time of an eager GPU training step, measured on the CPU: minivae's own Python per step.

    python tools/eager_host_time.py                    # both VAEs (tiny layers), µs a step
    python tools/eager_host_time.py --profile 25       # and the 25 functions of most time, for one of them
    MINIVAE_GEMM=tiled python tools/eager_host_time.py # products by kernels/gemm.cu (launches that do nothing here)

An eager step on a GPU is bound by the host: the kernels of a small VAE take a fraction of the time the
Python around them does. This runs the step through minivae's real CuPy code path (not the tests'
emulation) with a stand-in ``cupy`` module put in ``sys.modules``: its arrays are a NumPy subclass whose
module is "cupy", its functions NumPy's, and every kernel of kernels/*.cu a launch that does nothing.
What it times is minivae's Python plus NumPy in place of CuPy's calls, not CuPy's own costs (a CuPy call
costs more than the NumPy one standing in for it): compare two trees with it, never with a GPU's
figures. Layers are tiny (784-8-8, batch 2) so that the arithmetic NumPy does is negligible.
"""
import argparse
import os
import statistics
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


def _device(x):
    return x.view(ndarray) if isinstance(x, numpy.ndarray) and not isinstance(x, ndarray) else x


class _Module(types.ModuleType):
    """NumPy's functions with their arrays as ``ndarray`` above; ufuncs, types and constants as they are."""

    def __getattr__(self, name):
        attr = getattr(numpy, name)
        if isinstance(attr, (numpy.ufunc, type, types.ModuleType)) or not callable(attr):
            return attr

        def call(*args, **kwargs):
            return _device(attr(*args, **kwargs))
        setattr(self, name, call)
        return call


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
        return lambda grid, block, args, **kwargs: None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=50, help="steps a timed loop (30 loops; the minimum and median)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="then profile the Gaussian step: N functions")
    args = p.parse_args(argv)
    if "cupy" in sys.modules:
        raise SystemExit("eager_host_time: CuPy is already imported; run this in a fresh interpreter")
    sys.modules["cupy"] = stand_in_cupy()
    sys.path.insert(0, ROOT)
    import minivae as mv
    from minivae._gpu import loader, tiled
    tiled.tune = False  # MINIVAE_GEMM_TUNE=1 times kernels on a GPU; the stand-in's do nothing
    from minivae.models import CategoricalVAE, GaussianVAE
    from minivae.optim import Adam
    from minivae.random import Generator

    with loader.use_module_factory(_Kernels):
        for kind in ("gaussian", "categorical"):
            rng = Generator(0)
            model = (GaussianVAE(hidden=(8, 8), z_dim=2, rng=rng, device="cuda") if kind == "gaussian" else
                     CategoricalVAE(hidden=(8, 8), n_latent=2, n_categories=10, estimator="gumbel_softmax", tau0=1.0,
                                    tau_min=1.0, rng=rng, device="cuda"))
            opt = Adam(model.parameters(), lr=1e-3)
            x = mv.tensor((numpy.random.default_rng(0).random((2, 784)) < 0.13).astype(numpy.float32), device="cuda")

            def step(model=model, opt=opt, x=x, rng=rng):
                loss = model.loss(x, rng)
                opt.zero_grad()
                loss.backward()
                opt.step()
            with numpy.errstate(all="ignore"):  # the kernels do nothing: the arrays they fill hold garbage
                for _ in range(10):
                    step()
                if not all(type(p.data) is ndarray for p in model.parameters()):
                    raise SystemExit("eager_host_time: the step left the stand-in device")
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
                    profile.runcall(lambda: [step() for _ in range(200)])
                    pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
