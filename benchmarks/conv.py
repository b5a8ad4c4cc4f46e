"""conv2d and conv_transpose2d at a conv VAE's size on the CPU: minivae (the windows as one matrix, one matrix product;
x̄ by the slice sums of each tap; both passes through memory by the Numba kernels of minivae/_cpu/conv.py when Numba
is on, by NumPy's strided copy and slice additions with MINIVAE_DISABLE_NUMBA=1) against PyTorch CPU when installed,
interleaved in one run.

    python benchmarks/conv.py [--batch 128] [--repeats 7] [--dtype float32] [--threads 1] [--clock wall]

The layers of the classic MNIST conv VAE, k = 4, s = 2, p = 1: the encoder's 1→32 (28×28 → 14×14) and 32→64
(14 → 7) convolutions, the decoder's 64→32 (7 → 14) and 32→1 (14 → 28) transposed ones. Prints the median ms of
the forward pass alone and of forward + backward (x̄, w̄ and b̄, a random upstream gradient), and minivae / torch
(above 1: torch is faster). Both get ``--threads`` threads (NumPy's BLAS through OPENBLAS_NUM_THREADS and its
kin, set before NumPy is imported; torch.set_num_threads): on a machine shared with other work, multi-threaded
OpenBLAS products can take 20 times their single-thread time, so one thread is the default. ``--clock cpu`` times
the process's CPU time (user + system) instead of the wall clock: on a shared machine it leaves out the time the
process waited for a core, which the wall clock counts (one thread each: the two are the same on a quiet machine).
"""
import argparse
import os
import statistics
import time


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"])
    return parser.parse_args()


if __name__ == "__main__":
    ARGS = parse()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(ARGS.threads)

import numpy  # noqa: E402  (after the thread count)

import minivae as mv  # noqa: E402
from minivae import ops  # noqa: E402

LAYERS = [("conv2d", 1, 32, 28), ("conv2d", 32, 64, 14), ("conv_transpose2d", 64, 32, 7),
          ("conv_transpose2d", 32, 1, 14)]


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def median_ms(fn, repeats, clock="wall"):
    clock = CLOCKS[clock]
    fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times) * 1e3


def ours_times(op, arrays, g, repeats, clock="wall"):
    """[forward ms, forward + backward ms] of minivae's ``op`` at stride 2, padding 1."""
    ts = [mv.tensor(a, requires_grad=True) for a in arrays]

    def forward():
        with mv.no_grad():
            return op(*ts, 2, 1)

    def both():
        mv.backward([op(*ts, 2, 1)], [g])
        for t in ts:
            t.grad = None
    return [median_ms(forward, repeats, clock), median_ms(both, repeats, clock)]


def torch_times(torch, op, arrays, g, repeats, clock="wall"):
    """The same for torch's ``op``."""
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    gt = torch.tensor(g)

    def forward():
        with torch.no_grad():
            return op(*ts, 2, 1)

    def both():
        op(*ts, 2, 1).backward(gt)
        for t in ts:
            t.grad = None
    return [median_ms(forward, repeats, clock), median_ms(both, repeats, clock)]


def main(args):
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    print(f"batch {args.batch}, {args.dtype}, k = 4, s = 2, p = 1, median of {args.repeats} ({args.clock} time), "
          f"{args.threads} thread(s) each; torch: {torch.__version__ if torch else 'not installed'}")
    print(f"{'op':17s} {'channels':>9s} {'in':>6s} {'out':>6s} | {'fwd minivae':>11s} {'torch':>7s} {'ratio':>6s} | "
          f"{'fwd+bwd minivae':>15s} {'torch':>7s} {'ratio':>6s}")
    rng = numpy.random.default_rng(0)
    for name, c_in, c_out, size in LAYERS:
        transposed = name == "conv_transpose2d"
        out_size = 2 * size if transposed else size // 2
        x = rng.normal(size=(args.batch, c_in, size, size)).astype(args.dtype)
        w = (rng.normal(size=(c_in, c_out, 4, 4) if transposed else (c_out, c_in, 4, 4)) * 0.1).astype(args.dtype)
        b = rng.normal(size=c_out).astype(args.dtype)
        g = rng.normal(size=(args.batch, c_out, out_size, out_size)).astype(args.dtype)
        row = ours_times(getattr(ops, name), (x, w, b), g, args.repeats, args.clock)
        if torch is not None:
            row += torch_times(torch, getattr(torch.nn.functional, name), (x, w, b), g, args.repeats, args.clock)
            fwd = f"{row[2]:7.2f} {row[0] / row[2]:6.2f}"
            both = f"{row[3]:7.2f} {row[1] / row[3]:6.2f}"
        else:
            fwd = both = f"{'-':>7s} {'-':>6s}"
        print(f"{name:17s} {f'{c_in}→{c_out}':>9s} {f'{size}²':>6s} {f'{out_size}²':>6s} | {row[0]:11.2f} {fwd} | "
              f"{row[1]:15.2f} {both}")


if __name__ == "__main__":
    main(ARGS)
