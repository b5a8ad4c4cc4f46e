"""Timing launches on the GPU alone (minivae/_gpu/timing.py) and the tiled product's tuned split (MINIVAE_GEMM_TUNE=1),
without a GPU: the order in which ``fastest`` queues its work, against a stand-in CuPy that logs it, and which split a
tuned product launches, against stand-in kernels. (kernel_cases.py runs kernels/timing.cu's hold and every split a
tuned product may take through the host emulation and on a GPU; tests/gpu/test_tiled.py tunes on a real one.)"""
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from minivae import _gpu
from minivae._gpu import loader, tiled, timing
from tests.test_gpu_launchers import launches  # noqa: F401  (the fixture)


class FakeCupy:
    """Logs, in order, what ``fastest`` asks of CuPy and the kernels: (what, stream, …) tuples. An event's time is
    the sum of the durations of the runs logged before its record on its stream; the hold kernel sets timed_out
    when ``give_up`` says so."""

    def __init__(self, give_up=False):
        self.log, self.current, self.give_up = [], ["main"], give_up
        fake = self

        class Event:
            def __init__(self, disable_timing=False):
                self.timing, self.at = not disable_timing, None

            def record(self, stream):
                self.at = sum(entry[2] for entry in fake.log if entry[0] == "run")
                fake.log.append(("record", stream.name, self))

            def synchronize(self):
                fake.log.append(("synchronize", None, self))

        class Stream:
            def __init__(self, name="release", non_blocking=False):
                self.name, self.non_blocking = name, non_blocking

            def wait_event(self, event):
                fake.log.append(("wait", self.name, event))

            def synchronize(self):
                fake.log.append(("synchronize", self.name, None))

            def __enter__(self):
                fake.current.append(self.name)

            def __exit__(self, *exc):
                fake.current.pop()

        def elapsed(start, stop):
            assert start.timing and stop.timing
            return stop.at - start.at
        self.cuda = types.SimpleNamespace(Event=Event, Stream=Stream, get_elapsed_time=elapsed, get_device_id=lambda: 0,
                                          get_current_stream=lambda: Stream(self.current[-1]))

    def zeros(self, n, dtype):
        fake = self

        class Flag(np.ndarray):
            def fill(self, value):
                fake.log.append(("fill", fake.current[-1], value))
                self[...] = value

            def get(self):
                return np.asarray(self)
        return np.zeros(n, dtype).view(Flag)

    def ones(self, n, dtype):
        flag = self.zeros(n, dtype)
        flag.fill(1)
        return flag

    def run(self, duration, status=0, fail=False):
        def run():
            self.log.append(("run", self.current[-1], duration))
            if fail and len([e for e in self.log if e[0] == "run" and e[2] == duration]) > 1:
                raise RuntimeError("launch failed")
            return status
        return run

    def hold(self):
        fake = self

        class Module:
            def __init__(self, source):
                assert source == "timing.cu"

            def get_function(self, name):
                def hold(grid, block, args):
                    go, timed_out, cycles = args
                    assert (grid, block) == ((1,), (1,)) and type(cycles) is np.int64 and cycles == timing.MAX_HOLD_CYCLES
                    assert not go[0] and not timed_out[0]  # both zeroed on the held stream before it
                    timed_out[0] = fake.give_up
                    fake.log.append(("hold", fake.current[-1], go))
                return hold
        return loader.use_module_factory(Module)


@pytest.fixture(autouse=True)
def release_streams(monkeypatch):
    monkeypatch.setattr(timing, "_release", {})  # each test's stand-in CuPy makes its own


def kinds(log):
    return [entry[0] for entry in log]


def test_the_runs_queue_behind_the_hold_and_the_fastest_is_chosen():
    """Each run once to warm up (its kernel loaded), then the hold, then the runs' timed launches between events on
    the held stream, and only then go, set on a non-blocking stream of its own that first waits for go's zero
    (written on the held stream before the hold, which must not read an old 1); the fastest by the events' times.
    The kernel that sets go has run once before the hold too (go made as 1, then 0): with lazy loading its first
    launch might wait for the device to be idle."""
    cupy = FakeCupy()
    with cupy.hold():
        best, times = timing.fastest(cupy, [cupy.run(3.0), cupy.run(1.0), cupy.run(2.0)], repeats=2)
    assert (best, times) == (1, [6.0, 2.0, 4.0])
    assert kinds(cupy.log) == (["run"] * 3 + ["fill", "fill", "record", "hold", "record"] + ["run", "run", "record"] * 3
                               + ["wait", "fill", "synchronize", "synchronize"])
    assert cupy.log[3:5] == [("fill", "main", 1), ("fill", "main", 0)]
    assert all(entry[1] == "main" for entry in cupy.log[:-4] if entry[0] in ("run", "record", "hold"))
    zeroed, first = cupy.log[5][2], cupy.log[7][2]
    assert not zeroed.timing and first.timing           # go's zero, then the first timed event after the hold
    (_, stream, waited), (_, filled_on, value), (_, _, synced), (_, released, _) = cupy.log[-4:]
    assert stream == filled_on == released == "release" and waited is zeroed and value == 1
    assert synced is cupy.log[-5][2]                      # the last event, then the release stream
    assert timing._release[0].non_blocking


def test_a_run_that_fails_to_warm_up_is_left_out_and_none_when_all_fail():
    cupy = FakeCupy()
    with cupy.hold():
        best, times = timing.fastest(cupy, [cupy.run(1.0, status=7), cupy.run(2.0)], repeats=3)
    assert best == 1 and times == [np.inf, 6.0]
    assert [entry[2] for entry in cupy.log if entry[0] == "run"] == [1.0, 2.0, 2.0, 2.0, 2.0]  # the failed one once
    cupy = FakeCupy()
    with cupy.hold():
        assert timing.fastest(cupy, [cupy.run(1.0, status=1)])[0] is None


def test_nothing_is_chosen_when_the_hold_gave_up_and_go_is_set_even_if_a_launch_fails():
    """A hold that timed out let the runs go one by one as the host queued them: their times are the host's, not
    to be trusted. A launch that raises after the hold still sets go (the GPU must not wait a second for nothing)."""
    cupy = FakeCupy(give_up=True)
    with cupy.hold():
        best, times = timing.fastest(cupy, [cupy.run(1.0), cupy.run(2.0)])
    assert best is None and times[0] < times[1]
    cupy = FakeCupy()
    timing._release.clear()
    with cupy.hold(), pytest.raises(RuntimeError, match="launch failed"):
        timing.fastest(cupy, [cupy.run(1.0, fail=True)])
    assert ("fill", "release", 1) in cupy.log


def test_the_hold_refuses_flags_that_are_not_one_uint32():
    with pytest.raises(ValueError, match="one uint32"):
        timing.hold(np.zeros(1, np.int32), np.zeros(1, np.uint32))
    with pytest.raises(ValueError, match="one uint32"):
        timing.hold(np.zeros(1, np.uint32), np.zeros(2, np.uint32))


@pytest.mark.parametrize("m,n,k", [(128, 512, 784), (784, 512, 128), (512, 784, 4096), (4096, 512, 784), (128, 256, 20),
                                   (5, 7, 0), (1024, 512, 4096), (200_000, 64, 64)])
@pytest.mark.parametrize("itemsize", [4, 8])
def test_the_splits_a_tuned_product_times(m, n, k, itemsize):
    """``split``'s guess first, then each count of slices once: whole steps that cover k, none empty, at most
    MAX_TUNED_SLICES, the partial sums within PARTS_BYTES; none for a product of more tiles than the counts hold."""
    cuts = tiled.splits(m, n, k, itemsize)
    assert cuts[0] == tiled.split(m, n, k, itemsize) and len(set(cuts)) == len(cuts) and (1, max(k, 1)) in cuts
    for slices, kslice in cuts[1:]:
        assert slices <= tiled.MAX_TUNED_SLICES and slices * (m + 1) * n * itemsize <= tiled.PARTS_BYTES
        assert slices == 1 or (kslice % tiled.STEP == 0 and (slices - 1) * kslice < k <= slices * kslice)
    if -(-m // tiled.TILE) * -(-n // tiled.TILE) > tiled.MAX_SPLIT_TILES:
        assert cuts == [(1, k)]
    assert [s for s, _ in tiled.splits(128, 512, 784, 4)] == [10, 1, 2, 4, 7, 13]  # the first layer at batch 128


class DeviceXP:
    """NumPy as a GPU's array module: a ``cuda`` to ask the device and stream of, memory from a "pool"."""
    cuda = types.SimpleNamespace(get_device_id=lambda: 0, get_current_stream=lambda: types.SimpleNamespace(ptr=9))

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def get_default_memory_pool():
        return types.SimpleNamespace(malloc=bytearray)


@pytest.fixture
def tuning(monkeypatch, launches):  # noqa: F811
    """Tuned tiled products on DeviceXP, ``timing.fastest`` replaced: it runs each candidate once and picks
    ``pick`` (an index, or None for a timing that failed)."""
    state = types.SimpleNamespace(pick=2, timed=[], launches=launches)

    def fastest(cupy, runs):
        assert isinstance(cupy, DeviceXP)
        state.timed.append(len(runs))
        for run in runs:
            run()
        return state.pick, [1.0 + i for i in range(len(runs))]
    monkeypatch.setattr(tiled, "tune", True)
    monkeypatch.setattr(tiled, "_tuned", {})
    monkeypatch.setattr(tiled, "_buffers", {})
    monkeypatch.setattr(tiled, "get_array_module", lambda a: DeviceXP())
    monkeypatch.setattr(timing, "fastest", fastest)
    return state


def cuts(recorded):
    """(slices, kslice) of each gemm_tiles launch: the grid's z and the kernel's kslice."""
    return [(grid[2], int(args[13])) for _, name, grid, _, args in recorded]


def test_a_tuned_product_times_its_splits_once_and_keeps_the_fastest(tuning):
    """The first product of a shape launches each candidate (the timing), then the chosen one; later products of that
    shape launch it alone. A product that differs in its gate or sums is timed for itself."""
    a, b = np.ones((128, 784), np.float32), np.ones((784, 512), np.float32)
    candidates = tiled.splits(128, 512, 784, 4)
    tiled.product(a, b)
    assert tuning.timed == [len(candidates)] and cuts(tuning.launches) == candidates + [candidates[2]]
    tuning.launches.clear()
    tiled.product(a, b, out=np.empty((128, 512), np.float32))
    assert cuts(tuning.launches) == [candidates[2]] and tuning.timed == [len(candidates)]
    tuning.launches.clear()
    tiled.product(a, b, gate_b=b)
    assert tuning.timed == [len(candidates)] * 2 and len(tuning.launches) == len(candidates) + 1
    ((_, dtype, m, n, k, *_), entry), _ = sorted(tiled._tuned.items())
    assert (dtype, m, n, k) == ("f", 128, 512, 784) and entry["split"] == candidates[2]
    assert list(entry["times"]) == candidates
    assert tiled.tuned()[0].startswith(f"128×784 @ 784×512 float32: {candidates[2][0]} slices of {candidates[2][1]} (")


def test_untuned_in_a_capture_off_or_with_one_split_and_a_failed_timing_keeps_the_guess(tuning, monkeypatch):
    """During a capture nothing is timed or kept (the eager step before it times the graph's products); with the
    switch off the guess is launched even where a choice is kept; a product with one split is not timed; a timing
    that failed keeps the guess, and is not tried again."""
    a, b = np.ones((128, 784), np.float32), np.ones((784, 512), np.float32)
    guess = tiled.split(128, 512, 784, 4)
    monkeypatch.setattr(_gpu, "capture", object())
    tiled.product(a, b)
    assert cuts(tuning.launches) == [guess] and not tuning.timed and not tiled._tuned
    monkeypatch.setattr(_gpu, "capture", None)
    tiled.product(a, b)
    tuning.launches.clear()
    monkeypatch.setattr(tiled, "tune", False)
    tiled.product(a, b)
    assert cuts(tuning.launches) == [guess]
    monkeypatch.setattr(tiled, "tune", True)
    tuning.launches.clear()
    tiled.product(np.ones((4096, 784), np.float32), b)    # 512 tiles: one split only
    assert cuts(tuning.launches) == [(1, 784)] and len(tuning.timed) == 1
    tuning.pick = None
    tuning.launches.clear()
    tiled.product(np.ones((128, 512), np.float32), np.ones((512, 256), np.float32))
    tiled.product(np.ones((128, 512), np.float32), np.ones((512, 256), np.float32))
    assert cuts(tuning.launches)[-2:] == [tiled.split(128, 256, 512, 4)] * 2 and len(tuning.timed) == 2


def test_the_environment_turns_the_tuning_on():
    code = "from minivae._gpu import tiled; print(tiled.tune)"
    for value, want in (("1", "True"), ("0", "False"), (None, "False")):
        env = {k: v for k, v in os.environ.items() if k != "MINIVAE_GEMM_TUNE"}
        if value is not None:
            env["MINIVAE_GEMM_TUNE"] = value
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == want
