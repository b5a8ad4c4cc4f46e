"""Per-op overhead of minivae's engine against PyTorch CPU, measured in one run.

    python benchmarks/engine_overhead.py

Prints µs per op (forward + backward) for a tiny MLP and for a 1000-op chain of
scalar-sized ops, where the arithmetic is negligible and the figure is the engine's
bookkeeping, and the time of ``import minivae`` in a fresh interpreter. With PyTorch
installed, the same figures for PyTorch and the ratio minivae / PyTorch.
Targets: import ≤ 0.15 s; per-op overhead within 2× of PyTorch CPU.
"""
import statistics
import subprocess
import sys
import time

import numpy as np


def median_time(fn, repeats=7, inner=3):
    fn()  # warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t) / inner)
    return statistics.median(times)


def import_time(module):
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    runs = [float(subprocess.check_output([sys.executable, "-c", code])) for _ in range(5)]
    return statistics.median(runs)


def minivae_cases():
    import minivae as mv
    rng = np.random.default_rng(0)
    x = mv.tensor(rng.normal(size=(8, 16)).astype(np.float32))
    w1 = mv.tensor(rng.normal(size=(16, 32)).astype(np.float32), requires_grad=True)
    w2 = mv.tensor(rng.normal(size=(32, 4)).astype(np.float32), requires_grad=True)
    b1 = mv.tensor(np.zeros(32, np.float32), requires_grad=True)

    def mlp():  # 8 ops: matmul, add, relu, matmul, log_softmax, mul, sum, neg
        loss = -(mv.ops.log_softmax(mv.ops.relu(x @ w1 + b1) @ w2) * 0.5).sum()
        loss.backward()

    c = mv.tensor(np.float32(1.0), requires_grad=True)

    def chain():  # 1000 ops
        y = c
        for _ in range(500):
            y = mv.ops.tanh(y * 1.0001)
        y.backward()
    return {"tiny MLP (8 ops)": (mlp, 8), "1000-op chain": (chain, 1000)}


def torch_cases():
    import torch
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(8, 16)).astype(np.float32))
    w1 = torch.tensor(rng.normal(size=(16, 32)).astype(np.float32), requires_grad=True)
    w2 = torch.tensor(rng.normal(size=(32, 4)).astype(np.float32), requires_grad=True)
    b1 = torch.zeros(32, requires_grad=True)

    def mlp():
        loss = -(torch.log_softmax(torch.relu(x @ w1 + b1) @ w2, dim=-1) * 0.5).sum()
        loss.backward()

    c = torch.tensor(1.0, requires_grad=True)

    def chain():
        y = c
        for _ in range(500):
            y = torch.tanh(y * 1.0001)
        y.backward()
    return {"tiny MLP (8 ops)": (mlp, 8), "1000-op chain": (chain, 1000)}


def main():
    try:
        import torch  # noqa: F401
        peers = {"minivae": minivae_cases(), "torch": torch_cases()}
    except ImportError:
        peers = {"minivae": minivae_cases()}
        print("PyTorch not installed: minivae figures only")
    print(f"{'case':22s}" + "".join(f"{p + ' µs/op':>16s}" for p in peers) + ("   ratio" if len(peers) > 1 else ""))
    for case in peers["minivae"]:
        row = {}
        for _ in range(3):  # interleave the peers so drift affects both alike
            for name, cases in peers.items():
                fn, n_ops = cases[case]
                row.setdefault(name, []).append(median_time(fn) / n_ops * 1e6)
        row = {k: min(v) for k, v in row.items()}
        ratio = f"{row['minivae'] / row['torch']:8.2f}" if "torch" in row else ""
        print(f"{case:22s}" + "".join(f"{v:16.2f}" for v in row.values()) + ratio)
    print(f"{'import time (s)':22s}{import_time('minivae'):16.3f}"
          + (f"{import_time('torch'):16.3f}" if "torch" in peers else ""))


if __name__ == "__main__":
    main()
