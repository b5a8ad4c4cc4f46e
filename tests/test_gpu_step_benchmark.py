"""benchmarks/gpu_step.py --interleave, without a GPU: the rounds' order, warm-up, settling and dropped steps, and the
paired ratios, on steps that advance a stand-in clock (the benchmark itself runs only where there is a GPU)."""
import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = str(Path(__file__).parents[1] / "benchmarks")


@pytest.fixture
def gpu_step(monkeypatch):
    monkeypatch.syspath_prepend(BENCHMARKS)
    module = importlib.import_module("gpu_step")
    yield module
    for name in ("gpu_step", "gpu_kernels", "cpu_step"):
        sys.modules.pop(name, None)


def test_interleaved_rounds_pair_each_step_with_the_others_under_the_same_drift(gpu_step, monkeypatch):
    """Two steps of 2 and 6 ms on a host whose speed drifts from round to round (×1, ×4, ×1, …): each round times one
    loop of each, the order turned by one a round, so a round's two loops see the same speed and their ratio is
    exactly 1/3, while the two medians of a sequential run, taken under different speeds, could give anything."""
    now, calls, settled = [0.0], [], []
    speed = {"slow": 1.0}

    def step(name, ms):
        def run():
            calls.append(name)
            now[0] += ms * speed["slow"] / 1e3
        return run

    def turn_of_the_round(wait):
        settled.append(wait)
        if len(settled) > 2 and len(settled) % 2 == 0:  # after the warm-ups, every second loop ends a round
            speed["slow"] = 4.0 if speed["slow"] == 1.0 else 1.0
    monkeypatch.setattr(sys.modules["gpu_kernels"], "settle", turn_of_the_round)
    made = {"minivae eager": (step("mv", 2.0), None), "torch eager": (step("torch", 6.0), "jax's wait")}
    times = gpu_step.interleaved(made, repeats=4, iters=3, warmup=2, clock=lambda: now[0])
    assert calls[:4] == ["mv", "mv", "torch", "torch"]                   # warm-ups, each step's own
    rounds = [calls[4 + 6 * r:4 + 6 * r + 6:3] for r in range(4)]        # the first step of each loop
    assert rounds == [["mv", "torch"], ["torch", "mv"], ["mv", "torch"], ["torch", "mv"]]
    assert settled == [None, "jax's wait"] + [None, "jax's wait", "jax's wait", None] * 2
    assert times["minivae eager"] == pytest.approx([2.0, 8.0, 2.0, 8.0])
    assert times["torch eager"] == pytest.approx([6.0, 24.0, 6.0, 24.0])
    assert gpu_step.paired_ratio(times, "minivae eager", "torch eager") == pytest.approx(1 / 3)


def test_a_step_that_fails_is_dropped_and_the_others_go_on(gpu_step, monkeypatch):
    monkeypatch.setattr(sys.modules["gpu_kernels"], "settle", lambda wait: None)
    runs = {"good": 0, "bad": 0}

    def good():
        runs["good"] += 1

    def bad():
        runs["bad"] += 1
        if runs["bad"] > 3:  # after its warm-up and one loop
            raise RuntimeError("capture failed")
    times = gpu_step.interleaved({"bad": (bad, None), "good": (good, None)}, repeats=3, iters=1, warmup=2)
    assert isinstance(times["bad"], RuntimeError) and runs["bad"] == 4
    assert len(times["good"]) == 3 and runs["good"] == 5


def test_a_paired_ratio_is_the_median_of_the_rounds_ratios(gpu_step):
    """Not the ratio of the two medians: a round slowed by the host for one of its loops (the third, 3 where 2) moves
    one median, but only one of three paired ratios."""
    times = {"minivae eager": [2.0, 8.0, 3.0], "torch eager": [6.0, 24.0, 6.0]}
    assert gpu_step.paired_ratio(times, "minivae eager", "torch eager") == pytest.approx(1 / 3)
    assert gpu_step.paired_ratio(times, "torch eager", "minivae eager") == pytest.approx(3)


def test_the_interleaved_table_has_a_row_for_each_implementation(gpu_step, monkeypatch, capsys):
    """compare_interleaved's rows: µs the median, eager/peer the paired ratio to minivae's eager step (none on its own
    row), launches and memory as the sequential run gives them, then the row / PyTorch's eager step, paired (the eager
    target's ratio); what fails to be made or to run says so."""
    from types import SimpleNamespace
    monkeypatch.setattr(gpu_step, "interleaved", lambda made, repeats, iters: {
        "minivae eager": [1.0, 1.2, 0.9], "torch eager": [3.0, 3.9, 2.4], "broken": RuntimeError("capture failed")})
    monkeypatch.setattr(gpu_step, "launches", lambda step, wait, have_torch: 17)
    monkeypatch.setattr(gpu_step, "peak_bytes", lambda memory, step: 3 * 2 ** 20)

    def unmade():
        raise ValueError("no JAX")
    chosen = {"minivae eager": (lambda: (None, None), "minivae"), "torch eager": (lambda: (None, None), "torch"),
              "broken": (lambda: (None, None), None), "jax jit": (unmade, None)}
    gpu_step.compare_interleaved(chosen, SimpleNamespace(repeats=3, steps=2, profile=0), True)
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0][:3] == ["jax", "jit", "failed:"] and rows[0][-2:] == ["no", "JAX"]
    assert rows[1] == ["minivae", "eager", "1000.0", "17", "3.0", "0.33"]  # and / PyTorch's eager step, paired
    assert rows[2] == ["torch", "eager", "3000.0", "0.33", "17", "3.0"]  # median of 1/3, 0.31, 0.375
    assert rows[3][:3] == ["broken", "failed:", "RuntimeError:"] and len(rows) == 4


@pytest.mark.parametrize("interleave", [False, True])
def test_main_prints_a_table_per_model_and_batch(gpu_step, monkeypatch, capsys, interleave):
    """The whole script on stand-ins for the GPU, its steps and their timing: each model and batch gets its table,
    --only picks the rows, and both ways of timing print the same rows."""
    from types import SimpleNamespace
    properties = {"name": b"Stand-in GPU"}
    cupy = SimpleNamespace(__version__="0", cuda=SimpleNamespace(runtime=SimpleNamespace(
        getDeviceProperties=lambda device: properties)))
    monkeypatch.setattr(gpu_step, "gpu_and_torch", lambda script: (cupy, None))
    made = []
    monkeypatch.setattr(gpu_step, "cases", lambda kind, batch, have_torch: {
        name: ((lambda name=name: made.append((kind, batch, name)) or (lambda: None, None)), None)
        for name in ("minivae eager", "minivae graph", "jax jit")})
    monkeypatch.setattr(gpu_step, "timed", lambda step, repeats, iters, warmup, wait: 0.002)
    monkeypatch.setattr(gpu_step, "interleaved", lambda made, repeats, iters: {name: [0.002] * repeats for name in made})
    assert gpu_step.main(["--batches", "8", "--only", "minivae"] + (["--interleave"] if interleave else [])) == 0
    out = capsys.readouterr().out
    assert made == [(kind, 8, name) for kind in ("gaussian", "categorical") for name in ("minivae eager", "minivae graph")]
    assert "Stand-in GPU" in out and "gaussian VAE, batch 8" in out and "categorical VAE, batch 8" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("  minivae")]
    assert [r[:3] for r in rows] == [["minivae", "eager", "2.0"], ["minivae", "graph", "2.0"]] * 2
    assert all(r[-2:] == ["n/a", "n/a"] for r in rows) and "failed" not in out


def test_the_host_profile_splits_a_step_s_time_by_package_and_counts_calls_a_step(gpu_step):
    """--profile's table: µs a step by package (a function of minivae's files is minivae's, the test's own "other"),
    and the functions of most own time with their calls a step (3 of the local function a step: 12 over 4 steps)."""
    import numpy

    from minivae.random import philox4x32

    def local():
        return sum(range(2000))

    def step():
        for _ in range(3):
            local()
        philox4x32(numpy.zeros((4, 1), numpy.uint32), (5, 6))
    lines = []
    gpu_step.host_profile(step, steps=4, top=50, out=lines.append)
    head = lines[0]
    assert head.startswith("    host µs a step: ")
    parts = dict(p.rsplit(" ", 1) for p in head[head.index("(") + 1:-1].split(", "))
    assert set(parts) == {"minivae", "CuPy", "other"}
    assert float(parts["minivae"]) > 0 and float(parts["other"]) > 0 and float(parts["CuPy"]) == 0
    (row,) = [ln for ln in lines[1:] if "(local)" in ln]
    assert row.split()[2] == "3.0"  # calls a step
    assert any("philox4x32" in ln for ln in lines[1:])


def test_only_minivae_eager_rows_are_profiled_and_only_under_profile(gpu_step, capsys):
    from types import SimpleNamespace
    calls = []

    def step():
        calls.append(1)
    for name, n in (("minivae eager, tiled", 2), ("minivae graph", 2), ("torch eager", 2), ("minivae eager", 0)):
        gpu_step.profiled(name, step, SimpleNamespace(profile=n, steps=3))
    out = capsys.readouterr().out
    assert out.count("host profile of") == 1 and "host profile of minivae eager, tiled, 3 steps" in out
    assert len(calls) == 3
