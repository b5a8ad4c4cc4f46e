"""A step plan (minivae.plan) replayed as one CUDA graph: ``StepPlan.capture()``.

The plan's tape is run once inside CuPy stream capture, which records every kernel it launches, with
its arguments, into a graph; each ``plan.step`` then launches that graph: one launch for the whole
step instead of one per kernel, and no Python per op.

What a graph cannot take from its captured arguments it reads from memory, written before each launch:
- the batch: the plan's static input buffer, copied into before the launch;
- live constants (β): 0-d device arrays, filled before the launch;
- the Philox counter: each Philox kernel adds ``shift`` (the counter's advance since the capture) to its
  offset (minivae/_gpu/__init__.py, kernels/random.cu, kernels/gumbel_softmax.cu), so every launch
  draws the next noise, as the eager step would; the generator's counter then moves by the step's blocks;
- Adam's bias-corrected step size and ε̂ of this step, and AdamW's decay factor 1 − lr·wd (kernels/optim.cu): all
  three follow the learning rate, which a scheduler may change between launches;
the last two in one buffer, written by one asynchronous copy from pinned memory a launch (LaunchValues).
Live op parameters (τ(step)) are captured as they are: the graph refuses a step whose τ differs from
the captured one rather than replaying the wrong one; so is a changed optimizer option (but Adam's learning
rate, read from memory as said), as a changed learning rate of SGD, and an SGD step at
which a parameter would take its first step (its momentum buffer started, which the captured launch does not).

Memory: the capture allocates from a memory pool of its own, which nothing else uses afterwards, so the
arrays the step makes (activations, gradients, the loss) keep their addresses from launch to launch:
the graph owns them. The capture uses CUDA's relaxed mode, in which the pool may still call cudaMalloc.
Matrix products go to cuBLAS directly during the capture (minivae/_gpu/gemm.py says why).
"""
import os

import numpy

from minivae import _gpu
from minivae._gpu import gemm, tiled
from minivae._backend import cupy_module, fused
from minivae.engine import Tensor

ADAM_SLOTS = 64  # Adam launches a step can make: one per parameter group and step count (optim.Adam)
ADAM_VALUES = 3  # what each reads: (step size, ε̂, decay), optim.Adam.launch_scalars
# Each dense layer's weight-gradient product on a second stream of the graph, beside the chain of x̄ products
# and bias gradients that the backward pass must run in order (minivae/_gpu/gemm.py: SideStream; minivae.plan:
# where the main stream waits for it). At batch 128 each product is a few µs on a few of a GPU's SMs, so two
# run at once: on an H100 (benchmarks/gpu_step.py) a Gaussian VAE's graph step took 163 µs with it and 187
# without, a categorical one 187 and 198; at batch 4096 both ways were within 1.1%. MINIVAE_SIDE_STREAM=0
# captures on one stream.
use_side_stream = os.environ.get("MINIVAE_SIDE_STREAM") != "0"


class LaunchValues:
    """What a graph reads from memory at each launch, written before it by one asynchronous copy: the Philox
    counter's advance (``shift``, one uint64) and Adam's (step size, ε̂, decay) triples (``adam``, float64, NaN
    where unused), side by side in one device buffer, copied from one of two pinned host buffers in turn.

    Why: a copy from pageable memory (``ndarray.set`` without a stream) is a synchronous cudaMemcpy, which
    first waits for the GPU to finish what it was given, the previous step's graph included; the host then
    queued the next step only once the GPU was idle (the ~6 µs between graph steps that the H100 profile
    showed idle). A copy from pinned memory is queued on the stream like a kernel, and one copy replaces a
    fill and a copy. A host buffer is written again only after the copy that read it, two launches back,
    has run (its event): the host may run a step ahead, not overwrite what is still to be copied."""

    def __init__(self, cupy, slots):
        self.cupy, self.words = cupy, 1 + ADAM_VALUES * slots
        self.device = cupy.empty(self.words, numpy.uint64)
        self.shift = self.device[:1]
        self.adam = self.device[1:].view(numpy.float64).reshape(slots, ADAM_VALUES)
        self.hosts = []
        for _ in range(2):
            host = numpy.frombuffer(cupy.cuda.alloc_pinned_memory(8 * self.words), numpy.uint64, self.words)
            host[0] = 0
            host[1:].view(numpy.float64)[:] = numpy.nan
            self.hosts.append(host)
        self.device.set(self.hosts[0])
        self.events, self.turn = [None, None], 0

    def write(self, shift, adam, stream):
        """Queue on ``stream`` the copy of this launch's values: shift, and the (step size, ε̂, decay) triples."""
        i, self.turn = self.turn, 1 - self.turn
        if self.events[i] is not None:
            self.events[i].synchronize()  # the copy that read this buffer two launches ago has run
        host = self.hosts[i]
        host[0] = shift
        values = numpy.asarray(adam, numpy.float64).reshape(-1)
        host[1:1 + values.size].view(numpy.float64)[:] = values
        self.device.set(host, stream=stream)
        if self.events[i] is None:
            self.events[i] = self.cupy.cuda.Event(disable_timing=True)
        self.events[i].record(stream)


def _options(optimizer):
    """Each param group's options (what its kernels are launched with), for a comparison: the optimizer's own keys
    only, as a scheduler made after the capture adds entries of its own (``initial_lr``, OneCycleLR's ``max_lr``)."""
    return [{k: g[k] for k in optimizer.defaults} for g in optimizer.param_groups]


class CudaGraphStep:
    """The plan's tape, captured once; ``launch()`` runs one step."""

    def __init__(self, plan):
        from minivae.plan import PlanError
        cupy = cupy_module()
        if plan.model.device != "cuda":
            raise PlanError(f"a CUDA graph needs a model on the GPU; this one is on {plan.model.device}")
        if fused("random", cupy) is None:
            raise PlanError("a CUDA graph needs minivae's CUDA kernels, which are switched off: the Philox draws of "
                            "the array formulas take their counter from the host, which a graph would replay")
        if len(plan.generators) > 1:
            raise PlanError(f"the step draws from {len(plan.generators)} Generators; a CUDA graph follows one")
        self.plan, self.PlanError = plan, PlanError
        self.rng = next(iter(plan.generators), None)
        self.knobs = LaunchValues(cupy, ADAM_SLOTS)
        self.shift, self.adam = self.knobs.shift, self.knobs.adam
        self.adam_used, self.uploads = 0, []
        self.pool = cupy.cuda.MemoryPool()
        optimizer = plan.optimizer
        counter, steps, replays = (self.rng.counter if self.rng else 0), (optimizer.steps, optimizer.param_steps[:]), plan.replays
        self.options = _options(optimizer)
        stream = cupy.cuda.Stream(non_blocking=True)
        self.cublas_handle = gemm.bind(stream)
        self.side = gemm.CudaSideStream(stream) if use_side_stream else None
        streams = [stream] + ([self.side.stream] if self.side is not None else [])
        if gemm.use_tiled:
            tiled.prepare(cupy, streams)  # the split counts' zeros, before the capture: not a node of the graph
        cupy.cuda.runtime.deviceSynchronize()  # the recorded step's work is done before the capture begins
        _gpu.capture = self
        plan.side = gemm.side = self.side
        try:
            with stream, cupy.cuda.using_allocator(self.pool.malloc):
                stream.begin_capture()  # relaxed mode: CuPy's default
                try:
                    plan.run_tape()
                finally:
                    self.graph = stream.end_capture()
        finally:
            _gpu.capture = None
            plan.side = gemm.side = None
            gemm.release_retired()
            self.tiled_buffers = tiled.detach(cupy, streams)  # the graph's kernels keep their addresses
        # capturing ran no kernel: undo what the host side of the tape counted
        self.blocks = self.rng.counter - counter if self.rng else 0
        if self.rng:
            self.rng.counter = counter
        (optimizer.steps, optimizer.param_steps), plan.replays = steps, replays
        self.captured_counter = counter
        for table, host in self.uploads:
            table.set(host)
        self.fixed = [(live, live.resolve()) for live in plan.live_params]
        self.grads = [p.grad for p in plan.params]
        self.count_groups = self._count_groups(optimizer)

    def _count_groups(self, optimizer):
        """The parameters with a gradient grouped by their step count: Adam's launches, one per count (and flat
        buffer), each with its group's gradients. Every replay advances those counts together, so the groups
        stay; only a load_state_dict of other counts between replays changes them."""
        groups = {}
        for i, g in enumerate(self.grads):
            if g is not None:
                groups.setdefault(optimizer.param_steps[i], []).append(i)
        return sorted(groups.values())

    def __del__(self):
        if getattr(self, "side", None) is not None:
            gemm.release([self.__dict__.pop("graph", None), self.side])

    # ---- what the launchers ask for during the capture (minivae/_gpu/__init__.py) ----------------
    def adam_slot(self):
        if self.adam_used == ADAM_SLOTS:
            raise self.PlanError(f"more than {ADAM_SLOTS} Adam launches in one step")
        self.adam_used += 1
        return self.adam[self.adam_used - 1]

    def upload_later(self, host):
        """A device array for ``host``'s values, written once the capture has ended. Not from the capture's
        pool: the graph reuses that pool's freed blocks for its own temporaries at every launch, which
        would overwrite values written once from outside it."""
        cupy = cupy_module()
        memory = cupy.get_default_memory_pool().malloc(host.nbytes)
        table = cupy.ndarray(host.shape, host.dtype, memptr=memory)
        self.uploads.append((table, host))
        return table

    # ---- one step ------------------------------------------------------------------------------
    def launch(self):
        plan, optimizer = self.plan, self.plan.optimizer
        for live, value in self.fixed:
            now = live.resolve()
            if now != value:
                raise self.PlanError(f"{live.name} is {now} at this step but {value} in the captured CUDA graph, "
                                     "which replays its kernels' arguments: keep it fixed (for τ: --anneal-rate 0, "
                                     "or τ₀ = τ_min) or train without --graph")
        options = _options(optimizer)
        if len(options) != len(self.options):
            raise self.PlanError(f"the optimizer has {len(options)} param groups but had {len(self.options)} when the "
                                 "CUDA graph was captured: capture it again")
        if options != self.options:
            changed = sorted({k for now, then in zip(options, self.options) for k in now if now[k] != then[k]}
                             - ({"lr"} if self.adam_used else set()))
            if changed:
                raise self.PlanError(f"the optimizer's {', '.join(changed)} changed since the CUDA graph was captured; "
                                     "its kernels take them as arguments (only Adam's lr-dependent values are read from "
                                     "memory, so an SGD learning rate is one of them): capture it again")
        if not self.adam_used and any(optimizer._first(i, group.options) for group in optimizer._groups
                                      for i in group.indices if self.grads[i] is not None):
            raise self.PlanError("a parameter's SGD momentum buffer would start at this step (a state without it was "
                                 "loaded since the CUDA graph was captured): SGD's first step starts its buffer, which "
                                 "the captured launch does not; capture it again")
        if self.adam_used and self._count_groups(optimizer) != self.count_groups:
            raise self.PlanError("the optimizer's per-parameter step counts were loaded since the CUDA graph was "
                                 "captured and group the parameters otherwise: Adam's launches, one per count, are "
                                 "the graph's; capture it again")
        for p, g in zip(plan.params, self.grads):
            p.grad = g  # (before the counts: a parameter's advances where it has a gradient, as step()'s)
        optimizer.count_step()
        stream = cupy_module().cuda.get_current_stream()
        self.knobs.write(self.rng.counter - self.captured_counter if self.rng else 0,
                         optimizer.launch_scalars() if self.adam_used else (), stream)
        self.graph.launch(stream)
        if self.rng:
            self.rng.counter += self.blocks
        plan.replays += 1
        return Tensor(plan.values[plan._loss_slot])
