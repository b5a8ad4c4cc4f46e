"""erf, erfc, erfinv and erfcinv on the CPU: minivae's array formula (the specification, every branch computed for
every element), its Numba kernels, and PyTorch CPU when installed (torch has no erfcinv), interleaved in one run.

    python benchmarks/special.py [--n 1000000] [--repeats 5]

Prints median ms per call, forward only, for float32 and float64 inputs of n elements (erf's over N(0, 2²), the
inverses' uniform over their domain), and the ratios formula / Numba (above 1: the kernels are faster) and
Numba / torch (below 1: minivae is faster). Then the exact GELU (approximate="none": x·½erfc(−x/√2), on erfc's
kernel), forward and backward of a 1024×512 batch (N(0, 1)), against torch.nn.functional.gelu.
"""
import argparse
import statistics
import time

import numpy

import minivae as mv
from minivae import ops
from minivae._backend import use_numba


def median_ms(fn, x, repeats):
    fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
    rng = numpy.random.default_rng(0)
    inputs = {"erf": rng.normal(0, 2, args.n), "erfc": rng.normal(0, 2, args.n),
              "erfinv": rng.uniform(-1, 1, args.n), "erfcinv": rng.uniform(0, 2, args.n)}
    print(f"n = {args.n}, median of {args.repeats}; torch: {torch.__version__ if torch else 'not installed'} "
          f"(one thread: Numba's kernels run serially below 2²² elements)")
    print(f"{'':8s} {'dtype':8s} {'formula':>9s} {'numba':>9s} {'torch':>9s} {'formula/numba':>14s} {'numba/torch':>12s}")
    for name, values in inputs.items():
        for dtype in ("float32", "float64"):
            x = mv.tensor(values.astype(dtype))
            row = {}
            for label, flag in (("formula", False), ("numba", True)):
                with use_numba(flag):
                    row[label] = median_ms(getattr(ops, name), x, args.repeats)
            peer = getattr(torch.special, name, None) if torch else None
            if peer is not None:
                row["torch"] = median_ms(peer, torch.from_numpy(x.numpy()), args.repeats)
            torch_ms = f"{row['torch']:9.2f}" if "torch" in row else f"{'-':>9s}"
            ratio = f"{row['numba'] / row['torch']:12.2f}" if "torch" in row else f"{'-':>12s}"
            print(f"{name:8s} {dtype:8s} {row['formula']:9.2f} {row['numba']:9.2f} {torch_ms} "
                  f"{row['formula'] / row['numba']:14.1f} {ratio}")
    gelu = rng.normal(0, 1, (1024, 512))
    for dtype in ("float32", "float64"):
        x = gelu.astype(dtype)
        row = {}
        for label, flag in (("formula", False), ("numba", True)):
            with use_numba(flag):
                row[label] = median_ms(lambda v: gelu_step(mv, v), x, args.repeats)
        if torch:
            row["torch"] = median_ms(lambda v: gelu_step(torch, v), x, args.repeats)
        torch_ms = f"{row['torch']:9.2f}" if "torch" in row else f"{'-':>9s}"
        ratio = f"{row['numba'] / row['torch']:12.2f}" if "torch" in row else f"{'-':>12s}"
        print(f"{'gelu f+b':8s} {dtype:8s} {row['formula']:9.2f} {row['numba']:9.2f} {torch_ms} "
              f"{row['formula'] / row['numba']:14.1f} {ratio}")


def gelu_step(lib, x):
    """The exact GELU of x (a NumPy array), forward and backward of its sum, in minivae (lib = minivae) or torch."""
    if lib is mv:
        t = mv.tensor(x, requires_grad=True)
        mv.functional.gelu(t).sum().backward()
    else:
        t = lib.from_numpy(x).requires_grad_()
        lib.nn.functional.gelu(t).sum().backward()
    return t.grad


if __name__ == "__main__":
    main()
