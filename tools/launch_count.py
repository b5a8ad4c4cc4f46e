"""Kernel launches of one GPU training step, counted on the CPU: what a CUDA graph of the step would hold.

    python tools/launch_count.py            # both benchmark VAEs (benchmarks/gpu_step.py's) and the Bernoulli one, batch 128
    python tools/launch_count.py -v         # and each launch, with the line of minivae that made it
    python tools/launch_count.py --cublaslt # with MINIVAE_CUBLASLT=1's dense layers (a stand-in libcublasLt)
    python tools/launch_count.py --tiled    # with MINIVAE_GEMM=tiled: products and dense layers by kernels/gemm.cu

The step plan of each model is recorded and replayed on tests/strict_array.py's stand-in device, with the
fused kernels of kernels/*.cu run by the host emulation (tests/cuda_host); the replay is what
``plan.capture()`` records into a CUDA graph. Every call that CuPy would launch as a kernel is counted: a
RawKernel of minivae/_gpu, an elementwise function or operator, a reduction, a copy (``copy``,
``ascontiguousarray`` of a non-contiguous array, ``concatenate``), a fill, and a matrix product, which
counts as one cuBLAS call (cuBLAS may split one into several kernels: the GPU profiler's count, printed
by benchmarks/gpu_step.py, is the measured one). Views (reshape, broadcast_to, slicing) and ``empty``
launch nothing.
"""
import argparse
import contextlib
import os
import sys
from unittest import mock

import numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import minivae as mv  # noqa: E402
from minivae._backend import use_cuda_kernels, use_numba  # noqa: E402
from minivae._gpu import loader  # noqa: E402
from tests import strict_array  # noqa: E402
from tests.strict_array import StrictArray, emulating  # noqa: E402

# array-module functions and methods that make no kernel: views, shapes, allocation without a fill
VIEWS = {"reshape", "view", "transpose", "swapaxes", "squeeze", "expand_dims", "broadcast_to", "empty", "empty_like",
         "asarray", "result_type", "can_cast", "broadcast_shapes", "iinfo", "finfo", "moveaxis", "isscalar"}
OPERATORS = ("add sub mul truediv floordiv mod pow matmul and or xor lshift rshift lt le gt ge eq ne neg pos abs "
             "invert radd rsub rmul rtruediv rfloordiv rpow rmatmul iadd isub imul itruediv").split()


def _where():
    """file:line of the first frame in minivae (or the caller) that asked for the launch."""
    frame = sys._getframe(2)
    while frame is not None and (frame.f_code.co_filename in (__file__, strict_array.__file__)):
        frame = frame.f_back
    if frame is None:
        return "?"
    return f"{os.path.relpath(frame.f_code.co_filename, ROOT)}:{frame.f_lineno}"


@contextlib.contextmanager
def counting():
    """Within this block every kernel launch on strict arrays (and of the host-emulated kernels) is appended,
    as (what, where), to the list this yields."""
    from tests.cuda_host import host
    launches, patches = [], []

    def patch(owner, name, make):
        original = owner.__dict__[name]
        patches.append((owner, name, original))
        setattr(owner, name, make(original))

    def note(what):
        launches.append((what, _where()))

    def module_call(original):
        def call(func, name, args, kwargs):
            base = name.split(".")[0]
            if base not in VIEWS:
                note(("memset " if base in ("zeros", "zeros_like") else "") + name)
            return original(func, name, args, kwargs)
        return call

    def ufunc(original):
        def call(self, ufunc, method, *inputs, **kwargs):
            note(ufunc.__name__ + ("" if method == "__call__" else "." + method))
            return original(self, ufunc, method, *inputs, **kwargs)
        return call

    def operator(name):
        def make(original):
            def op(self, *args):
                result = original(self, *args)
                if result is not NotImplemented:
                    note(name.strip("_"))
                return result
            return op
        return make

    def method(original):
        def get(self, name):
            attr = original(self, name)
            if not callable(attr) or name in VIEWS:
                return attr

            def call(*args, **kwargs):
                if not (name == "astype" and numpy.dtype(args[0]) == self.dtype and kwargs.get("copy") is False):
                    note(name)
                return attr(*args, **kwargs)
            return call
        return get

    def copy(original):
        return lambda self: (note("copy"), original(self))[1]

    def contiguous(original):
        def call(self, a, dtype=None):
            out = original(self, a, dtype)
            if out is not a and isinstance(a, StrictArray):
                note("copy (ascontiguousarray)")
            return out
        return call

    def kernel(original):
        def launch(self, grid, block, args, shared_mem=0):
            note("kernel " + self.name.split("<")[0])
            return original(self, grid, block, args, shared_mem)
        return launch

    patch(strict_array, "_call", module_call)
    patch(StrictArray, "__array_ufunc__", ufunc)
    for name in OPERATORS:
        if f"__{name}__" in StrictArray.__dict__:
            patch(StrictArray, f"__{name}__", operator(f"__{name}__"))
    patch(StrictArray, "__getattr__", method)
    patch(StrictArray, "copy", copy)
    patch(strict_array._StrictModule, "ascontiguousarray", contiguous)
    patch(host.HostFunction, "__call__", kernel)
    try:
        yield launches
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)


PRODUCTS = ("matmul", "cublasLt matmul", "kernel gemm_tiles")  # a matrix product's one launch, by each path


def benchmark_models(batch, x_dim=784, hidden=(512, 256), latent=20):
    """benchmarks/gpu_step.py's two VAEs (784-512-256, Adam) and the Bernoulli VAE of the same layers (binary latents,
    Gumbel-Softmax), on the stand-in device; or the three of the same layers and kernels at other sizes (``latent``
    Gaussian dimensions, categorical variables of 10 categories, or binary variables)."""
    from minivae.models import BernoulliVAE, CategoricalVAE, GaussianVAE
    from minivae.optim import Adam
    from minivae.random import Generator
    x = (numpy.random.default_rng(0).random((batch, x_dim)) < 0.13).astype(numpy.float32)
    for kind in ("Gaussian", "categorical", "Bernoulli"):
        rng = Generator(0)
        if kind == "Gaussian":
            model = GaussianVAE(x_dim=x_dim, hidden=hidden, z_dim=latent, rng=rng, device="cuda")
        elif kind == "categorical":
            model = CategoricalVAE(x_dim=x_dim, hidden=hidden, n_latent=latent, n_categories=10,
                                   estimator="gumbel_softmax", tau0=1.0, tau_min=1.0, rng=rng, device="cuda")
        else:
            model = BernoulliVAE(x_dim=x_dim, hidden=hidden, n_latent=latent, estimator="gumbel_softmax", tau0=1.0,
                                 tau_min=1.0, rng=rng, device="cuda")
        yield kind, model, Adam(model.parameters(), lr=1e-3), mv.tensor(x, device="cuda"), rng


def replay_launches(model, optimizer, x, rng, cublaslt=False, tiled=False):
    """The launches of one replay of the model's step plan (after its recording and a first replay); with
    ``cublaslt``, minivae/_gpu/gemm.py's cuBLASLt dense layers on tests/test_cublaslt.py's stand-in library,
    each call counted as one launch ("cublasLt matmul"); with ``tiled``, MINIVAE_GEMM=tiled's products (each a
    launch of kernels/gemm.cu, "kernel gemm_tiles", run by the host emulation)."""
    from minivae._gpu import gemm
    from minivae.plan import compile_step
    from tests.strict_array import strict
    from tests.test_cublaslt import installed
    with installed(strict) if cublaslt else contextlib.nullcontext() as lt, mock.patch.object(gemm, "use_tiled", tiled):
        plan = compile_step(model, optimizer, lambda xb: model.loss(xb, rng), x)
        plan.step(x)
        with counting() as launches:
            if lt is not None:  # the stand-in's calls that time candidates (its allocations' alignments vary from a
                # step to the next: a plan per alignment) are not counted: a capture times nothing
                call = lt.cublasLtMatmul
                lt.cublasLtMatmul = lambda *args: (lt.timing or launches.append(("cublasLt matmul", _where())),
                                                   call(*args))[1]
            plan.run_tape()
    return launches


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("-v", "--verbose", action="store_true", help="list each launch")
    parser.add_argument("--cublaslt", action="store_true", help="dense layers as cuBLASLt calls (MINIVAE_CUBLASLT=1)")
    parser.add_argument("--tiled", action="store_true", help="products by kernels/gemm.cu (MINIVAE_GEMM=tiled)")
    args = parser.parse_args(argv)
    from tests.cuda_host import host
    if host.compiler() is None:
        sys.exit("launch_count: no host C++ compiler to run kernels/*.cu on the CPU")
    with use_numba(False), use_cuda_kernels(True), emulating(), loader.use_module_factory(host.module_factory()):
        for kind, *step in benchmark_models(args.batch):
            launches = replay_launches(*step, cublaslt=args.cublaslt, tiled=args.tiled)
            products = sum(what in PRODUCTS for what, _ in launches)
            kernels = sum(what.startswith("kernel ") and what not in PRODUCTS for what, _ in launches)
            print(f"{kind} VAE, batch {args.batch}: {len(launches)} launches a step "
                  f"({kernels} of minivae's kernels, {products} matrix products, {len(launches) - kernels - products} "
                  "CuPy elementwise, reduction and copy kernels)")
            if args.verbose:
                for what, where in launches:
                    print(f"    {what:36s} {where}")


if __name__ == "__main__":
    main()
