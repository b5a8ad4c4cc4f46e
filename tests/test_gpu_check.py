"""tools/gpu_check.py without a GPU: --parts runs the parts it names in its order and no others, refuses a name that is
no part, and passes the step benchmark's options on; the summary fails when a part failed (each part's command is
recorded here instead of run)."""
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def gpu_check(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    commands = []

    def run(name, command, out_dir, timeout):
        commands.append((name, command[1:]))
        return (1 if name == "launch_count" else 0), "3 passed in 1.0s\n## a profile line\n"
    monkeypatch.setattr(module, "run", run)
    return module, commands


def test_parts_run_in_the_order_named_and_alone(gpu_check, tmp_path, capsys):
    module, commands = gpu_check
    assert module.main(["--parts", "kernels,step,suite", "--quick", "--interleave", "--profile", "7",
                        "--step-only", "eager", "--out", str(tmp_path)]) == 0
    assert [name for name, _ in commands] == ["benchmark", "step_benchmark", "gpu_suite"]
    assert commands[1][1] == ["benchmarks/gpu_step.py", "--repeats", "3", "--steps", "20", "--only", "eager",
                              "--interleave", "--profile", "7"]
    summary = capsys.readouterr().out.split("===== summary")[1]
    assert [ln.split(":")[0] for ln in summary.strip().splitlines()[:3]] == [
        "PASS  benchmarks/gpu_kernels.py", "PASS  benchmarks/gpu_step.py", "PASS  GPU suite (tests/gpu, tests/test_device.py)"]
    assert "3 passed" in summary and (tmp_path / "gpu_check.log").read_text().count("===== summary") == 1


def test_all_parts_by_default_and_a_failed_part_fails_the_check(gpu_check, tmp_path, monkeypatch):
    module, commands = gpu_check
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None)  # no PyTorch: the profile is skipped
    assert module.main(["--out", str(tmp_path)]) == 1                          # launch_count failed
    assert [name for name, _ in commands] == ["info", "gpu_suite", "build", "kernel_report", "launch_count",
                                              "step_benchmark", "benchmark", "cli_train", "cli_eval", "cli_sample"]
    assert "--profile" not in commands[5][1]


def test_a_part_that_does_not_exist_is_refused_naming_the_parts(gpu_check, capsys):
    module, commands = gpu_check
    with pytest.raises(SystemExit) as e:
        module.main(["--parts", "suite,benchmarks"])
    assert e.value.code == 2 and commands == []
    assert "no part benchmarks; the parts are info, suite, build" in capsys.readouterr().err
