"""Which of a few ways of launching the same work is fastest on this GPU, timed on the GPU alone.

Used where a choice is made once per shape on its first eager call: cuBLASLt's algorithm (minivae/_gpu/gemm.py)
and, with MINIVAE_GEMM_TUNE=1, how many slices minivae's own GEMM cuts the inner dimension into
(minivae/_gpu/tiled.py). At a VAE's sizes each launch takes a few µs on the GPU and about as long on the host,
so launches timed as the host queues them time the host; here they queue behind kernels/timing.cu's ``hold``
and run back to back once it lets them go.
"""
import math

import numpy

from minivae import _gpu
from minivae._gpu import loader

RUNS = 5                  # timed launches of each candidate, after one to warm up
MAX_HOLD_CYCLES = 1 << 31  # about a second of an SM's clock: the hold gives up after it (then nothing is chosen)
_release = {}             # device → the stream that sets the hold's flag (non-blocking: not ordered after the hold)


def hold(go, timed_out, max_cycles=MAX_HOLD_CYCLES):
    """Launch kernels/timing.cu's ``hold`` on the current stream: it runs until ``go`` (one uint32) is not 0, or
    sets ``timed_out`` (one uint32) after ``max_cycles`` of its SM's clock."""
    for a in (go, timed_out):
        if a.dtype != numpy.uint32 or a.size != 1:
            raise ValueError(f"hold: one uint32 is needed for its flags, got {a.dtype} {a.shape}")
    loader.function("timing.cu", "hold")((1,), (1,), (go, timed_out, numpy.int64(max_cycles)))


def fastest(cupy, runs, repeats=RUNS):
    """(index, milliseconds): the fastest of ``runs``, callables that each launch the same work once on the current
    stream, timed behind ``hold`` (``repeats`` launches each, after one to warm up that also loads its kernel);
    a run whose warm-up returns a true value (a failure status) is left out, at infinity. (None, times) when there
    is nothing to choose from (all failed) or the times cannot be trusted (the hold timed out before all were
    queued). The work each run does is done 1 + ``repeats`` times: it must give the same result each time."""
    stream = cupy.cuda.get_current_stream()
    ok = [not run() for run in runs]
    # go made by the kernel that will set it, so that it is loaded now: with CUDA's lazy loading a kernel's first
    # launch may wait for the device to be idle, which it will not be while the hold waits for that very launch
    go, timed_out = cupy.ones(1, numpy.uint32), cupy.zeros(1, numpy.uint32)
    go.fill(0)
    zeroed = cupy.cuda.Event(disable_timing=True)
    zeroed.record(stream)
    events = [cupy.cuda.Event() for _ in range(len(runs) + 1)]
    release = _release_stream(cupy)
    hold(go, timed_out)
    try:
        events[0].record(stream)
        for run, good, event in zip(runs, ok, events[1:]):
            for _ in range(repeats if good else 0):
                run()
            event.record(stream)
    finally:  # even if a launch failed: the stream must not wait for the hold to give up
        release.wait_event(zeroed)  # go's 1 after its 0, which the held stream wrote (before the hold)
        with release:
            go.fill(1)
    events[-1].synchronize()
    release.synchronize()  # go's memory goes back to the pool when this returns: no launch may still write it
    times = [cupy.cuda.get_elapsed_time(start, stop) if good else math.inf
             for start, stop, good in zip(events, events[1:], ok)]
    if int(timed_out.get()[0]) or not any(ok):
        return None, times
    return times.index(min(times)), times


def choose(cupy, candidates, run):
    """(choice, milliseconds or None): the candidate whose ``run(candidate)`` (one launch on the current stream) is
    fastest (``fastest``); the first, with the times, where the timing failed. The first, untimed (None), where there
    is nothing to choose or nothing can be timed: one candidate, or during a CUDA-graph capture (its launches are
    recorded, not run)."""
    if len(candidates) == 1 or _gpu.capture is not None:
        return candidates[0], None
    best, times = fastest(cupy, [lambda candidate=candidate: run(candidate) for candidate in candidates])
    return candidates[0 if best is None else best], times


def _release_stream(cupy):
    device = cupy.cuda.get_device_id()
    stream = _release.get(device)
    if stream is None:
        stream = _release[device] = cupy.cuda.Stream(non_blocking=True)
    return stream
