"""Record one training step, replay it: the same parameters as eager steps, bit for bit, with the
engine's bookkeeping gone (on a GPU, `--device cuda` makes each replayed step one CUDA graph launch).

    python examples/step_plan.py [--steps 50] [--device cpu|cuda]
"""
import argparse
import time

import numpy

import minivae as mv
from minivae.data import batches, load_default
from minivae.models import CategoricalVAE
from minivae.optim import Adam
from minivae.random import Generator

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=50)
parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
args = parser.parse_args()
data = [xb for xb, _ in zip(batches(load_default()["train"], 64, rng=Generator(1)), range(args.steps))]


def trained(replayed):
    """Parameters after len(data) steps of a categorical VAE whose τ anneals (a live value of the plan)
    on the CPU; on the GPU τ is fixed, as a CUDA graph needs."""
    rng = Generator(0)
    anneal = 0.01 if args.device == "cpu" else 0.0
    model = CategoricalVAE(hidden=(128,), n_latent=10, n_categories=10, anneal_rate=anneal, rng=rng, device=args.device)
    optimizer = Adam(model.parameters(), lr=1e-3)

    def eager_step(xb, step):  # called as plan.step is
        loss = model.loss(mv.tensor(xb, device=args.device), rng, step=step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss
    if replayed:  # the first step is recorded (and on the GPU captured), the others replayed
        plan = mv.compile_step(model, optimizer, lambda x, step: model.loss(x, rng, step=step), data[0], step=0)
        if args.device == "cuda":
            plan.capture()
        take_step, memory = plan.step, plan.pool  # the memory the replays' arrays come from (minivae/_pool.py)
    else:
        eager_step(data[0], step=0)
        take_step, memory = eager_step, None
    started = time.perf_counter()  # from the second step on: the first compiles the kernels
    for t, xb in enumerate(data[1:], 1):
        loss = take_step(xb, step=t)
        if t == 2 and memory is not None:  # the last loss, which this loop holds meanwhile, took one block, once
            blocks = memory.allocations
    loss.item()  # wait for the last step
    ms = (time.perf_counter() - started) / (len(data) - 1) * 1e3
    return [p.numpy() for p in model.parameters()], ms, memory and memory.allocations - blocks


eager, eager_ms, _ = trained(False)
replay, replay_ms, new_blocks = trained(True)
same = all(numpy.array_equal(a, b) for a, b in zip(eager, replay))
largest = max(float(numpy.abs(a - b).max()) for a, b in zip(eager, replay))
print(f"{len(data)} steps: eager {eager_ms:.2f} ms a step, replayed {replay_ms:.2f} ms a step (the first one recorded)")
# on the GPU the graph's matrix products go through cuBLAS's gemm directly: equal to rounding, not bit for bit
print(f"parameters after eager and replayed steps equal bit for bit: {same} (largest difference {largest:.2g})")
print(f"memory the replays took from the system from the third step on: {new_blocks} blocks")
