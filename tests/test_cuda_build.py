"""kernels/*.cu build for real GPUs, without one: every file of loader.SOURCES, for sm_75, sm_80 and sm_90,

- with NVRTC (what CuPy's RawModule runs), exactly loader.NVRTC_OPTIONS + the architecture, every name
  expression lowered to a kernel;
- with nvcc, through a wrapper that instantiates every name expression (tools/kernel_report.py);

and each build prints no diagnostic at all (a warning fails), no kernel spills registers, and none keeps a
stack frame beyond kernel_report.EXPECTED_STACK. The planted tests show each of those checks failing.

NVRTC comes from the dev extra (nvidia-cuda-nvrtc); nvcc from a CUDA toolkit on PATH. Builds are cached in
pytest's cache under a digest of the compiler, options and every kernels/ file they read.
"""
import importlib.util
import shutil
from pathlib import Path

import pytest

from minivae._gpu import loader, nvrtc

_spec = importlib.util.spec_from_file_location("kernel_report", Path(__file__).resolve().parent.parent / "tools/kernel_report.py")
kr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kr)

NVRTC_OK, NVRTC_WHY = nvrtc.available()
NVCC = shutil.which("nvcc")
COMPILERS = [
    pytest.param("nvrtc", marks=pytest.mark.skipif(not NVRTC_OK, reason=f"NVRTC unavailable: {NVRTC_WHY}")),
    pytest.param("nvcc", marks=pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH (no CUDA toolkit)")),
]


@pytest.fixture(scope="module")
def builds(request):
    compilers = [c for c, ok in (("nvrtc", NVRTC_OK), ("nvcc", NVCC is not None)) if ok]
    return kr.build_all(list(loader.SOURCES), kr.ARCHS, compilers, cache=getattr(request.config, "cache", None))


@pytest.mark.parametrize("arch", kr.ARCHS)
@pytest.mark.parametrize("source", list(loader.SOURCES))
@pytest.mark.parametrize("compiler", COMPILERS)
def test_kernels_build_clean(builds, compiler, source, arch):
    build = builds[(compiler, source, arch)]
    assert not build.problems(), "\n".join(build.problems())


# --- the checks catch planted faults -----------------------------------------------------------------

CLEAN = """
template <typename T> __global__ void scale(const T* x, T* y, int n) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += blockDim.x * gridDim.x) {
        y[i] = 2 * x[i];
    }
}
"""
UNUSED = CLEAN.replace("y[i] = 2", "const int unused = i;\n        y[i] = 2")   # EDG warning #177-D: declared but never referenced
# 48 accumulators live across a loop of unknown length: 24 registers cannot hold them.
HUNGRY = """
template <typename T> __global__ void scale(const T* x, T* y, int n) {
    T acc[48];
#pragma unroll
    for (int j = 0; j < 48; ++j) acc[j] = x[48 * threadIdx.x + j];
    for (int i = 0; i < n; ++i) {
#pragma unroll
        for (int j = 0; j < 48; ++j) acc[j] = acc[j] * x[i] + (T)j;
    }
    T s = 0;
#pragma unroll
    for (int j = 0; j < 48; ++j) s += acc[j] * acc[47 - j];
    y[threadIdx.x] = s;
}
"""
# A histogram indexed by data cannot live in registers: a 256-byte stack frame in local memory.
STACK = """
template <typename T> __global__ void scale(const T* x, T* y, int n) {
    T hist[64] = {};
    for (int i = 0; i < n; ++i) hist[(int)x[i] & 63] += x[i];
    y[threadIdx.x] = hist[threadIdx.x & 63];
}
"""
NAMES = ["scale<float>", "scale<double>"]


def build(compiler, tmp_path, text, names=NAMES, maxrregcount=None):
    path = tmp_path / "planted.cu"
    path.write_text(text)
    if compiler == "nvrtc":
        limit = [f"--maxrregcount={maxrregcount}"] if maxrregcount else []
        return kr.nvrtc_build(path, names, "sm_75", options=("--std=c++17", *limit))
    lowered = kr.nvrtc_build(path, names, "sm_75", options=("--std=c++17",)).lowered if NVRTC_OK else None
    limit = [f"-maxrregcount={maxrregcount}"] if maxrregcount else []
    return kr.nvcc_build(path, names, "sm_75", lowered, extra=limit)


@pytest.mark.parametrize("compiler", COMPILERS)
def test_clean_source_passes(compiler, tmp_path):
    b = build(compiler, tmp_path, CLEAN)
    assert b.problems() == [], b.problems()
    assert all(b.kernel(e).entry for e in NAMES) or not NVRTC_OK


@pytest.mark.parametrize("compiler", COMPILERS)
def test_warning_fails(compiler, tmp_path):
    problems = build(compiler, tmp_path, UNUSED).problems()
    assert problems and all("diagnostic" in p for p in problems), problems
    assert any('"unused" was declared but never referenced' in p for p in problems), problems


@pytest.mark.parametrize("compiler", COMPILERS)
def test_spill_fails(compiler, tmp_path):
    assert build(compiler, tmp_path, HUNGRY).problems() == []
    spilled = build(compiler, tmp_path, HUNGRY, maxrregcount=24)
    usage = [u for u in spilled.usage.values() if u.entry]
    assert len(usage) == 2 and all(u.spill_stores > 0 and u.spill_loads > 0 and u.registers <= 24 for u in usage), usage
    assert sum("spills" in p for p in spilled.problems()) == 2, spilled.problems()


@pytest.mark.parametrize("compiler", COMPILERS)
def test_stack_frame_fails(compiler, tmp_path):
    problems = build(compiler, tmp_path, STACK).problems()
    assert len(problems) == 2 and all("bytes stack frame (allowed 0)" in p for p in problems), problems


@pytest.mark.parametrize("compiler", COMPILERS)
def test_missing_instantiation_fails(compiler, tmp_path):
    problems = build(compiler, tmp_path, CLEAN, names=["scale<float>", "scale_fwd<float>"]).problems()
    assert len(problems) == 1 and "build failed" in problems[0] and "scale_fwd" in problems[0], problems


@pytest.mark.skipif(not NVRTC_OK, reason=f"NVRTC unavailable: {NVRTC_WHY}")
def test_report_exit_status(monkeypatch, capsys):
    argv = ["--source", "random.cu", "--arch", "sm_75", "--compiler", "nvrtc"]
    assert kr.main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "all 1 builds clean"
    figures = [line.split() for line in out.splitlines() if "philox_normal<double>" in line][0][2:4]  # smem, stack
    if figures == ["-", "-"]:
        pytest.skip("this NVRTC prints no ptxas report (NVRTC 13.0 on a GPU machine did not): no figures to check")
    assert figures == ["0", "40"]
    monkeypatch.setattr(kr, "EXPECTED_STACK", {})    # philox_normal's frame is no longer allowed
    assert kr.main(argv) == 1
    assert "FAIL nvrtc random.cu sm_75: philox_normal<float>: 40 bytes stack frame (allowed 0)" in capsys.readouterr().out


@pytest.mark.skipif(not NVRTC_OK, reason=f"NVRTC unavailable: {NVRTC_WHY}")
def test_nvrtc_error_carries_the_log():
    with pytest.raises(nvrtc.NVRTCError) as error:
        nvrtc.compile("__global__ void f(float* x) { x[0] = ; }", arch="sm_80", name="broken.cu")
    assert "broken.cu(1): error: expected an expression" in error.value.log
    assert "expected an expression" in str(error.value)


NVRTC_LOG = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_Z1kIfEvPT_' for 'sm_75'
ptxas info    : Function properties for _Z1kIfEvPT_
ptxas         .     232 bytes stack frame, 412 bytes spill stores, 436 bytes spill loads
ptxas info    : Used 24 registers, used 1 barriers, 128 bytes smem, 232 bytes cumulative stack size, 372 bytes cmem[0]
ptxas info    : Compile time = 13.060 ms
ptxas info    : Function properties for __internal_trig_reduction_slowpathd
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
"""
NVCC_LOG = NVRTC_LOG.replace("ptxas         .", "")   # nvcc indents ptxas's continuation lines instead


@pytest.mark.parametrize("log", [NVRTC_LOG, NVCC_LOG], ids=["nvrtc", "nvcc"])
def test_parse_ptxas(log):
    usage = kr.parse_ptxas(log)
    assert usage["_Z1kIfEvPT_"] == kr.Usage(registers=24, smem=128, stack=232, spill_stores=412, spill_loads=436, entry=True)
    assert usage["__internal_trig_reduction_slowpathd"] == kr.Usage()
    assert kr.diagnostics(log) == []
    assert kr.diagnostics(log + "ptxas warning : Registers are spilled\n") == ["ptxas warning : Registers are spilled"]
