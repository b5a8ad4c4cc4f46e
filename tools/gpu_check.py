"""Everything a GPU can prove, in one command, on a machine with an NVIDIA GPU and no network:

    python tools/gpu_check.py [--quick] [--budget SECONDS] [--parts A,B,...] [--step-only REGEX] [--interleave]
                              [--profile N] [--out DIR]

Needs only what is installed there (CuPy, pytest; PyTorch for the benchmark's peer) and this source
tree (run from it; `pip install --no-deps --no-build-isolation -e .` is optional). Runs, each in its
own process with the Numba path off (the GPU suite does not use it):
  1. `minivae info`: versions, GPU, CUDA, which kernels are in use;
  2. the GPU suite, tests/gpu/ (kernel cases, float64 gradchecks, CPU-vs-GPU ops, samples and
     training steps) and the real-GPU half of tests/test_device.py;
  3. the NVRTC/nvcc builds of kernels/*.cu for sm_75/80/90 (tests/test_cuda_build.py) and the register
     and spill report (tools/kernel_report.py);
  4. the benchmarks against PyTorch and JAX (benchmarks/gpu_step.py: whole training steps, eager and as one
     CUDA graph, with the experimental switches too, kernels a step by PyTorch's profiler; then
     benchmarks/gpu_kernels.py: kernels), next to the launches a step counted on the CPU
     (tools/launch_count.py: the gap is cuBLAS's own extra kernels; with --cublaslt, run anywhere, the
     count of the experimental cuBLASLt step);
  5. where a graph step's time goes (tools/graph_profile.py: PyTorch's profiler over one graph launch of each
     benchmark VAE at batch 128 and 4096, in full float32 and TF32, then at 128 with the products by minivae's own
     GEMM, its splits tuned; skipped without PyTorch);
  6. the CLI end to end on the GPU: `minivae train --device cuda --graph` (one epoch of the embedded digits,
     each step one CUDA graph launch; τ fixed, which a graph needs),
     then `eval` and `sample` of its checkpoint on the GPU.
--parts names them (info, suite, build, kernel_report, launch_count, step, kernels, profile, cli) and runs those
alone, in its order: on a machine lent for a few minutes, the figures an open target lacks first.
Then one summary: each part passed, failed or was skipped, with its figures. Exit status 0 only if none failed.
The summary and each part's whole output (the screen shows long outputs cut) go to one file as well,
DIR/gpu_check.log (default DIR: gpu-check-<date>/): a lent machine that sends back few files sends it all.
"""
import argparse
import datetime
import importlib.util
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent


def run(name, command, out_dir, timeout):
    env = dict(os.environ, MINIVAE_DISABLE_NUMBA="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    t = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        output, code = output + f"\n[timed out after {timeout} s]", 124
    seconds = time.perf_counter() - t
    header = f"===== {name}: exit {code} in {seconds:.0f} s: {' '.join(command[1:])}"
    log(out_dir, f"{header}\n{output}\n")
    print(header, flush=True)
    print(output if len(output) < 6000 else output[:1500] + "\n[...]\n" + output[-4000:], flush=True)
    return code, output


def log(out_dir, text):
    with open(out_dir / "gpu_check.log", "a") as f:
        f.write(text)


def pytest_line(output):
    lines = [ln for ln in output.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", ln)]
    return lines[-1].strip("= ") if lines else "no pytest summary"


# the default order; the step benchmark before the kernel one: a budget that runs out cuts the kernels, which change
# less often
PARTS = ("info", "suite", "build", "kernel_report", "launch_count", "step", "kernels", "profile", "cli")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter benchmark loops")
    p.add_argument("--out", type=pathlib.Path, default=None)
    p.add_argument("--budget", type=float, default=3600, help="seconds for all parts together (each is cut off at its share)")
    p.add_argument("--parts", default=",".join(PARTS), metavar="A,B,...",
                   help=f"the parts to run, in this order (default: all, {','.join(PARTS)})")
    p.add_argument("--step-only", default="", metavar="REGEX",
                   help="the step benchmark's --only: its implementations whose name matches (default: all)")
    p.add_argument("--interleave", action="store_true",
                   help="the step benchmark's --interleave: a model's implementations timed in turns, ratios paired")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="the step benchmark's --profile: a cProfile of each minivae eager row's host time, N functions")
    args = p.parse_args(argv)
    chosen = args.parts.split(",")
    unknown = [name for name in chosen if name not in PARTS]
    if unknown:
        p.error(f"--parts: no part {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    deadline = time.monotonic() + args.budget

    def share(seconds):
        return max(10, min(seconds, deadline - time.monotonic() - 5))
    out_dir = args.out or REPO / f"gpu-check-{datetime.date.today().isoformat()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.log").write_text(f"# python {' '.join(sys.argv)}, {datetime.datetime.now().isoformat(timespec='seconds')}\n")
    py = sys.executable
    parts = []

    def info():
        code, out = run("info", [py, "-m", "minivae.cli", "info"], out_dir, share(120))
        parts.append(("minivae info", code, " | ".join(ln for ln in out.splitlines()
                                                       if ln.split()[:1] in (["gpu"], ["cupy"], ["cuda"]))))

    def suite():
        code, out = run("gpu_suite", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", "tests/gpu",
                                      "tests/test_device.py"], out_dir, share(900))
        parts.append(("GPU suite (tests/gpu, tests/test_device.py)", code, pytest_line(out)))

    def build():
        code, out = run("build", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", "tests/test_cuda_build.py"],
                        out_dir, share(600))
        parts.append(("NVRTC/nvcc builds (tests/test_cuda_build.py)", code, pytest_line(out)))

    def kernel_report():
        code, out = run("kernel_report", [py, "tools/kernel_report.py"], out_dir, share(600))
        parts.append(("register/spill report (tools/kernel_report.py)", code,
                      out.strip().splitlines()[-1] if out.strip() else ""))

    def launch_count():
        code, out = run("launch_count", [py, "tools/launch_count.py"], out_dir, share(300))
        parts.append(("launches a step counted on the CPU (tools/launch_count.py)", code,
                      " | ".join(ln.split(" (")[0] for ln in out.splitlines() if "launches a step" in ln)))

    def step():
        code, out = run("step_benchmark", [py, "benchmarks/gpu_step.py"] + (["--repeats", "3", "--steps", "20"] if args.quick else [])
                        + (["--only", args.step_only] if args.step_only else []) + (["--interleave"] if args.interleave else [])
                        + (["--profile", str(args.profile)] if args.profile else []), out_dir, share(900))
        parts.append(("benchmarks/gpu_step.py", code, f"{len(out.splitlines())} lines, see above"))

    def kernels():
        code, out = run("benchmark", [py, "benchmarks/gpu_kernels.py"] + (["--quick"] if args.quick else []), out_dir, share(900))
        parts.append(("benchmarks/gpu_kernels.py", code, f"{len(out.splitlines())} lines, see above"))

    def profile():
        if importlib.util.find_spec("torch") is None:
            parts.append(("graph profile (tools/graph_profile.py)", None, "needs PyTorch's profiler, which is not installed"))
            return
        code, out = run("graph_profile", [py, "tools/graph_profile.py", "--batches", "128", "4096",
                                          "--precision", "highest", "high"], out_dir, share(300))
        parts.append(("graph profile (tools/graph_profile.py)", code,
                      " | ".join(ln.strip("# ").split(";")[0] for ln in out.splitlines() if ln.startswith("## "))))
        code, out = run("graph_profile_tiled", [py, "tools/graph_profile.py", "--batches", "128", "--tiled", "--tune"],
                        out_dir, share(120))
        parts.append(("graph profile, tiled and tuned (tools/graph_profile.py --tiled --tune)", code,
                      " | ".join(ln.strip("# ") for ln in out.splitlines() if ln.startswith("## "))))

    def cli():
        with tempfile.TemporaryDirectory() as tmp:
            command = [py, "-m", "minivae.cli"]
            code, out = run("cli_train", command + ["train", "--device", "cuda", "--epochs", "1", "--graph", "--tau0", "0.5",
                                                    "--out", tmp], out_dir, share(300))
            if code == 0:
                code, more = run("cli_eval", command + ["eval", f"{tmp}/checkpoint.npz", "--device", "cuda", "-k", "10"],
                                 out_dir, share(300))
                out += more
            if code == 0:
                code, more = run("cli_sample", command + ["sample", f"{tmp}/checkpoint.npz", "--device", "cuda", "--out",
                                                          f"{tmp}/s.png"], out_dir, share(120))
                out += more
        parts.append(("minivae train/eval/sample --device cuda", code,
                      " | ".join(ln.strip() for ln in out.splitlines() if "ELBO" in ln or "log p(x)" in ln)[:300]))

    table = dict(info=info, suite=suite, build=build, kernel_report=kernel_report, launch_count=launch_count, step=step,
                 kernels=kernels, profile=profile, cli=cli)
    for name in chosen:
        table[name]()
    summary = "\n===== summary\n" + "".join(f"{'SKIP' if code is None else 'PASS' if code == 0 else 'FAIL'}  {name}: {detail}\n"
                                           for name, code, detail in parts)
    log(out_dir, summary)
    print(summary + f"log in {out_dir / 'gpu_check.log'}")
    return 0 if all(code in (0, None) for _, code, _ in parts) else 1


if __name__ == "__main__":
    sys.exit(main())
