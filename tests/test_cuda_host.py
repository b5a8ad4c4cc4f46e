"""The host emulation of CUDA (tests/cuda_host) that runs kernels/*.cu on the CPU, and its sanitizer runs.

(a) The emulation is CUDA: block reductions over __syncthreads, warp shuffles, partial warps, threads that
    exit early, atomics, argument checks as strict as the kernel's signature, deadlocks reported.
(b) The sanitizers catch planted bugs: ThreadSanitizer reports the data race of a reduction that lost a
    __syncthreads (in a toy kernel and in a copy of kernels/common.cuh's block_sum) and of a kernel that lost
    the barrier between its writes to dynamic (extern __shared__) memory and its reads; AddressSanitizer reports
    the heap-buffer-overflow of a kernel that lost its tail guard and of one given too little dynamic shared memory.
(c) The correct kernels (the tests marked ``sanitize``) run clean under both sanitizers: they run here with a
    plain build and again in a child process with MINIVAE_CUDA_HOST_SANITIZE=thread|address.
"""
import concurrent.futures
import hashlib
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest

from tests.cuda_host import host

HERE = pathlib.Path(__file__).resolve().parent
PLANTED = HERE / "cuda_host" / "planted" / "emulation.cu"
KERNELS = HERE.parent / "kernels"
NAMES = ["tree_sum<float>", "tree_sum<double>", "reverse_blocks<float>", "reverse_blocks<double>", "scale<float>",
         "warp_ops<int>", "warp_ops<double>", "early_exit", "atomics", "votes", "divergent_shuffle",
         "softmax_block_bwd<double>", "softmax_warp_fwd<float, 2, 32>"]

needs_compiler = pytest.mark.skipif(host.compiler() is None, reason="no host C++ compiler (g++) to build kernels for the CPU")
pytestmark = needs_compiler


@pytest.fixture(scope="module")
def emu():
    """The toy kernels and two of kernels/softmax.cu in one module (one build per configuration)."""
    return host.HostModule([PLANTED, KERNELS / "softmax.cu"], NAMES)


# ---- (a) the emulation -------------------------------------------------------------------------------------

@pytest.mark.sanitize
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block", [32, 64, 128])
def test_tree_sum_over_syncthreads(emu, dtype, block):
    n = 3 * block - 5                      # the last block is partly past the end
    x = np.random.default_rng(block).integers(-50, 50, n).astype(dtype)   # integers: sums exact in any order
    out = np.zeros(3, dtype)
    ctype = "float" if dtype == np.float32 else "double"
    emu.get_function(f"tree_sum<{ctype}>")(3, block, (x, out, np.int32(n)))
    want = np.add.reduceat(x, [0, block, 2 * block])
    np.testing.assert_array_equal(out, want)


@pytest.mark.sanitize
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dynamic_shared_memory(emu, dtype):
    """extern __shared__ memory: the launch's shared_mem bytes, seen by every thread of the block, fresh per launch."""
    block, blocks = 64, 3
    x = np.arange(block * blocks, dtype=dtype)
    out = np.zeros_like(x)
    name = f"reverse_blocks<{'float' if dtype == np.float32 else 'double'}>"
    emu.get_function(name)(blocks, block, (x, out), shared_mem=block * x.itemsize)
    np.testing.assert_array_equal(out, x.reshape(blocks, block)[:, ::-1].ravel())


def test_dynamic_shared_memory_size_is_checked(emu):
    f = emu.get_function("reverse_blocks<float>")
    x = np.zeros(32, np.float32)
    for bad in (-1, host.MAX_DYNAMIC_SHARED + 1, 1.5):
        with pytest.raises(ValueError, match="shared_mem"):
            f(1, 32, (x, x.copy()), shared_mem=bad)


def test_host_text_rewrites_only_extern_shared():
    src = ("__shared__ float buf[32];\n"
           "extern __shared__ __align__(16) unsigned char smem[];\n"
           "extern  __shared__ double  d[ ];\n")
    assert host.host_text(src) == ("__shared__ float buf[32];\n"
                                   "unsigned char* const smem = cuda_host::dynamic_shared<unsigned char>();\n"
                                   "double* const d = cuda_host::dynamic_shared<double>();\n")


@pytest.mark.sanitize
@pytest.mark.parametrize("nthreads, width", [(64, 32), (40, 8)])   # 40: the last warp has 8 lanes
def test_warp_shuffles(emu, nthreads, width):
    x = np.arange(nthreads, dtype=np.int32) * 3 + 1
    xor_sum, down, up, bcast = (np.zeros(nthreads, np.int32) for _ in range(4))
    emu.get_function("warp_ops<int>")(1, nthreads, (x, xor_sum, down, up, bcast, np.int32(width)))
    seg = np.arange(nthreads) // width * width            # first lane of each thread's segment
    seg_sum = np.add.reduceat(x, np.arange(0, nthreads, width))[np.arange(nthreads) // width]
    np.testing.assert_array_equal(xor_sum, seg_sum)
    np.testing.assert_array_equal(down[seg == np.arange(nthreads)], seg_sum[seg == np.arange(nthreads)])
    np.testing.assert_array_equal(up, np.where(seg == np.arange(nthreads), x, np.roll(x, 1)))
    np.testing.assert_array_equal(bcast, x[seg + 3])


def test_shuffle_of_doubles_moves_all_8_bytes(emu):
    x = np.linspace(-1, 1, 32) + 1e-12      # values that a 4-byte copy would corrupt
    outs = [np.zeros(32) for _ in range(4)]
    emu.get_function("warp_ops<double>")(1, 32, (x, *outs, np.int32(32)))
    np.testing.assert_array_equal(outs[3], np.full(32, x[3]))
    np.testing.assert_array_equal(outs[2][1:], x[:-1])


@pytest.mark.sanitize
def test_warp_votes(emu):
    x = np.zeros(72, np.int32)                   # warps: 32 lanes (two set), 32 lanes (all set), 8 lanes (none)
    x[[3, 17]] = 1
    x[32:64] = 5
    ballot, any_, all_ = np.zeros(72, np.uint32), np.zeros(72, np.int32), np.zeros(72, np.int32)
    emu.get_function("votes")(1, 72, (x, ballot, any_, all_))
    np.testing.assert_array_equal(ballot, np.repeat([(1 << 3) | (1 << 17), 0xFFFFFFFF, 0], [32, 32, 8]))
    np.testing.assert_array_equal(any_, np.repeat([1, 1, 0], [32, 32, 8]))
    np.testing.assert_array_equal(all_, np.repeat([0, 1, 0], [32, 32, 8]))


@pytest.mark.sanitize
def test_early_exit_leaves_the_barriers(emu):
    active = 38                                   # warp 1 keeps 6 of its 32 lanes
    out = np.zeros(64, np.int32)
    emu.get_function("early_exit")(1, 64, (out, np.int32(active)))
    t = np.arange(active)
    np.testing.assert_array_equal(out[:active], (t + 1) % active + 1 + 1000 * (t ^ 1))
    assert not out[active:].any()


def test_shuffle_from_an_exited_lane_is_an_error(emu):
    with pytest.raises(RuntimeError, match=r"thread 36 read lane 5 \(thread 37\) in a shuffle, which has exited"):
        emu.get_function("early_exit")(1, 64, (np.zeros(64, np.int32), np.int32(37)))


def test_deadlock_is_reported_not_hung(emu):
    with pytest.raises(RuntimeError, match=r"deadlock in block 0: threads \{16 17 .*\} wait at __syncthreads, "
                                           r"threads \{0 1 .* 15\} at a warp operation"):
        emu.get_function("divergent_shuffle")(2, 32, (np.zeros(32, np.int32),))
    out = np.zeros(1, np.float32)              # the module still works after an aborted launch
    emu.get_function("tree_sum<float>")(1, 32, (np.ones(32, np.float32), out, np.int32(32)))
    assert out[0] == 32


@pytest.mark.sanitize
def test_atomics(emu):
    count, maxv, total, cas = np.zeros(1, np.uint64), np.full(1, -1, np.int32), np.zeros(1), np.zeros(1, np.int32)
    emu.get_function("atomics")((3, 2), 64, (count, maxv, total, cas))
    assert count[0] == 384 and maxv[0] == 191 and total[0] == 192.0 and cas[0] == 384


@pytest.mark.sanitize
def test_real_block_reduction_kernel(emu):
    """softmax_block_bwd: a block of 2 warps per row, whose block_sum meets in shared memory."""
    rng = np.random.default_rng(0)
    rows, k = 3, 100
    y, g = rng.random((rows, k)), rng.normal(size=(rows, k))
    gx = np.zeros((rows, k))
    emu.get_function("softmax_block_bwd<double>")(rows, 64, (y, g, gx, np.int32(rows), np.int32(k), np.float64(0.5),
                                                              np.int32(0)))
    np.testing.assert_allclose(gx, y * (g - (g * y).sum(1, keepdims=True)) * 0.5, rtol=1e-12, atol=1e-15)


class DeviceArray:
    """The strict device-array protocol: an address and a dtype, no buffer."""

    def __init__(self, array):
        self.array, self.dtype = array, array.dtype

    def __minivae_device_ptr__(self):
        return self.array.ctypes.data


def test_arguments_are_checked_against_the_signature(emu):
    f = emu.get_function("softmax_warp_fwd<float, 2, 32>")
    x, y = np.ones((4, 33), np.float32), np.zeros((4, 33), np.float32)
    good = [x, y, np.int32(4), np.int32(33), np.float32(1), np.int32(0)]
    f(1, 128, good)
    np.testing.assert_allclose(y, 1 / 33, rtol=1e-6)
    f(1, 128, [DeviceArray(x), DeviceArray(y), *good[2:]])

    def call(j, value):
        f(1, 128, good[:j] + [value] + good[j + 1:])

    with pytest.raises(TypeError, match=r"softmax_warp_fwd<float, 2, 32>: argument 4: expected a NumPy scalar of kind "
                                        r"floating, 4 bytes, given Python float"):
        call(4, 1.0)
    with pytest.raises(TypeError, match="argument 2: .*given Python int"):
        call(2, 4)
    with pytest.raises(TypeError, match=r"argument 4: expected .*floating, 4 bytes, given numpy.float64"):
        call(4, np.float64(1))
    with pytest.raises(TypeError, match=r"argument 3: expected .*integer, 4 bytes, given numpy.int64"):
        call(3, np.int64(33))
    with pytest.raises(TypeError, match=r"argument 5: expected .*integer.*given numpy.float32 \(floating"):
        call(5, np.float32(0))
    with pytest.raises(TypeError, match=r"argument 0: expected a device array of 4-byte floating elements "
                                        r"\(const pointer parameter\), given an array of float64"):
        call(0, x.astype(np.float64))
    with pytest.raises(TypeError, match="argument 1: .*given an array of float64"):
        call(1, DeviceArray(y.astype(np.float64)))
    with pytest.raises(TypeError, match="argument 0: expected a device array.*given list"):
        call(0, [1.0])
    with pytest.raises(TypeError, match="argument 2: expected a NumPy scalar.*given ndarray"):
        call(2, np.int32([4]))
    with pytest.raises(ValueError, match="argument 0: the array must be C-contiguous"):
        call(0, np.ones((33, 4), np.float32).T)
    readonly = np.zeros_like(y)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="argument 1: the kernel may write"):
        call(1, readonly)
    with pytest.raises(TypeError, match="expected 6 arguments, given 5"):
        f(1, 128, good[:5])
    with pytest.raises(ValueError, match="more than 1024 threads"):
        f(1, (64, 32), good)


@pytest.mark.sanitize
def test_the_guarded_scale_is_exact(emu):
    n = 1000
    out = np.zeros(n, np.float32)
    emu.get_function("scale<float>")(8, 128, (np.arange(1024, dtype=np.float32), out, np.int64(n), np.float32(2)))
    np.testing.assert_array_equal(out, 2 * np.arange(n, dtype=np.float32))


# ---- (b), (c) the sanitizers ---------------------------------------------------------------------------------
#
# Each check is a child process (a sanitized library needs its runtime preloaded into the interpreter). The
# children of the tests that were collected all start at the first such test and run concurrently: on two
# cores their builds overlap, and the planted sources are staged under the build cache at a path given by
# their content, so a rerun finds every build cached.

def _runtime_available(mode):
    cxx = host.compiler()
    if cxx is None:
        return False
    name = host._RUNTIME[mode]
    return os.path.isabs(subprocess.run([cxx, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip())


def _sanitizer(mode):
    return pytest.mark.skipif(not _runtime_available(mode), reason=f"{host._RUNTIME[mode]} not installed")


def _remove_line(text, marker, start, stop):
    """``text`` without the ``marker`` line that lies between ``start`` and the next ``stop`` (exactly one)."""
    i = text.index(start)
    j = text.index(stop, i)
    body = text[i:j].split("\n")
    hits = [k for k, line in enumerate(body) if marker in line]
    assert len(hits) == 1, f"expected one {marker!r} after {start!r}, found {len(hits)}: update the plant"
    del body[hits[0]]
    return text[:i] + "\n".join(body) + text[j:]


def _stage(files):
    """Writes ``files`` (name → text) to a directory named by their content; returns it."""
    key = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:16]
    directory = host._cache_dir() / "planted" / key
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        if not (directory / name).exists() or (directory / name).read_text() != text:
            (directory / name).write_text(text)
    return directory


def planted_race():
    """Run in a ThreadSanitizer child: launches reductions that lost a __syncthreads; each launch is preceded
    on stderr by a '=== planted <name> ===' line so the parent can attribute the reports."""
    toy = _stage({"emulation.cu": _remove_line(PLANTED.read_text(), "__syncthreads();  // needed", "void tree_sum(",
                                               "\n}\n")})
    # kernels/common.cuh's block_sum without the barrier that publishes each warp's partial sum
    kernels = {p.name: p.read_text() for p in KERNELS.iterdir() if p.suffix in (".cu", ".cuh")}
    kernels["common.cuh"] = _remove_line(kernels["common.cuh"], "__syncthreads();", "buf[threadIdx.x >> 5] = v;",
                                         "MINIVAE_D T block_max(")
    real = _stage(kernels)
    # the dynamic shared memory: reverse_blocks without the barrier between its write and its reads
    dynamic = _stage({"emulation.cu": _remove_line(PLANTED.read_text(), "__syncthreads();  // needed",
                                                   "void reverse_blocks(", "\n}\n")})
    # both loaded before the first report: TSan's symbolizer does not see libraries dlopen'ed after it started
    toy_sum = host.HostModule([toy / "emulation.cu"], ["tree_sum<float>"]).get_function("tree_sum<float>")
    real_bwd = host.HostModule([real / "softmax.cu"], ["softmax_block_bwd<double>"]).get_function(
        "softmax_block_bwd<double>")
    reverse = host.HostModule([dynamic / "emulation.cu"], ["reverse_blocks<float>"]).get_function("reverse_blocks<float>")

    os.write(2, b"\n=== planted toy ===\n")
    toy_sum(1, 64, (np.ones(64, np.float32), np.zeros(1, np.float32), np.int32(64)))
    rows, k = 2, 100
    os.write(2, b"\n=== planted real ===\n")
    real_bwd(rows, 64, (np.full((rows, k), 0.01), np.ones((rows, k)), np.zeros((rows, k)), np.int32(rows),
                        np.int32(k), np.float64(1), np.int32(0)))
    os.write(2, b"\n=== planted dynamic ===\n")
    reverse(1, 64, (np.ones(64, np.float32), np.zeros(64, np.float32)), shared_mem=64 * 4)
    os.write(2, b"\n=== end ===\n")


def planted_overflow():
    """Run in an AddressSanitizer child: scale without its tail guard writes past an output of exactly n."""
    text = PLANTED.read_text()
    assert text.count("if (i < n) out[i]") == 1
    staged = _stage({"emulation.cu": text.replace("if (i < n) out[i]", "out[i]")})
    module = host.HostModule([staged / "emulation.cu"], ["scale<float>"])
    n = 1000
    x, out = np.ones(1024, np.float32), np.zeros(n, np.float32)   # x covers the grid: only out overflows
    module.get_function("scale<float>")(8, 128, (x, out, np.int64(n), np.float32(2)))


def planted_shared_overflow():
    """Run in an AddressSanitizer child: reverse_blocks given one float of dynamic shared memory too few."""
    module = host.HostModule([PLANTED], ["reverse_blocks<float>"])
    x = np.ones(64, np.float32)
    module.get_function("reverse_blocks<float>")(1, 64, (x, np.zeros_like(x)), shared_mem=63 * 4)


PYTEST_CHILD = ["-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestUnknownMarkWarning",
                "-m", "sanitize", str(pathlib.Path(__file__))]   # -s: sanitizer reports reach the parent's pipe
CHILDREN = {  # test name → (sanitizer, python arguments)
    "test_correct_kernels_run_clean_under_sanitizer[thread]": ("thread", PYTEST_CHILD),
    "test_correct_kernels_run_clean_under_sanitizer[address]": ("address", PYTEST_CHILD),
    "test_tsan_reports_a_missing_syncthreads": ("thread", ["-c", "import tests.test_cuda_host as t; t.planted_race()"]),
    "test_asan_reports_an_unguarded_tail": ("address", ["-c", "import tests.test_cuda_host as t; t.planted_overflow()"]),
    "test_asan_reports_an_overrun_of_dynamic_shared_memory": (
        "address", ["-c", "import tests.test_cuda_host as t; t.planted_shared_overflow()"]),
}


@pytest.fixture(scope="module")
def children(request):
    """name → Future of the CompletedProcess, for the collected tests of CHILDREN."""
    if os.environ.get(host.ENV_SANITIZE):
        pytest.skip("already inside a sanitizer run")
    wanted = {item.name for item in request.session.items} & set(CHILDREN)
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(CHILDREN)) as pool:
        yield {name: pool.submit(host.run_sanitized, *CHILDREN[name], timeout=240) for name in sorted(wanted)
               if _runtime_available(CHILDREN[name][0])}


def _result(children, request):
    done = children[request.node.name].result()
    return done, done.stdout + done.stderr


@pytest.mark.parametrize("mode", [pytest.param("thread", marks=_sanitizer("thread")),
                                  pytest.param("address", marks=_sanitizer("address"))])
def test_correct_kernels_run_clean_under_sanitizer(children, request, mode):
    done, output = _result(children, request)
    assert done.returncode == 0 and "Sanitizer" not in output, output[-6000:]
    summary = done.stdout.strip().split("\n")[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, done.stdout[-2000:]


@_sanitizer("thread")
def test_tsan_reports_a_missing_syncthreads(children, request):
    done, output = _result(children, request)
    assert "=== end ===" in done.stderr, output[-6000:]
    sections = done.stderr.split("\n=== planted ")[1:]
    assert [s.split(" ===")[0] for s in sections] == ["toy", "real", "dynamic"], output[-6000:]
    for section, function in zip(sections, ["tree_sum", "block_sum", "reverse_blocks"]):
        assert "WARNING: ThreadSanitizer: data race" in section, f"no race reported:\n{section[-6000:]}"
        # the first racing access is in the reduction that lost its barrier
        assert re.search(rf"SUMMARY: ThreadSanitizer: data race .* in (void )?{function}<", section), section[-3000:]


@_sanitizer("address")
def test_asan_reports_an_unguarded_tail(children, request):
    done, output = _result(children, request)
    assert done.returncode != 0, output[-6000:]
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in output and "WRITE of size 4" in output, output[-6000:]
    assert "scale<float>" in output, output[-6000:]


@_sanitizer("address")
def test_asan_reports_an_overrun_of_dynamic_shared_memory(children, request):
    done, output = _result(children, request)
    assert done.returncode != 0, output[-6000:]
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in output and "WRITE of size 4" in output, output[-6000:]
    assert "reverse_blocks<float>" in output, output[-6000:]


def test_module_factory_builds_sources_apart_when_they_cannot_share_a_unit(tmp_path):
    """Two NVRTC modules may both define ``fill``; one host translation unit may not."""
    for name, value in (("a.cu", 1), ("b.cu", 2)):
        (tmp_path / name).write_text(f"__global__ void fill(int* out) {{ out[threadIdx.x] = {value}; }}\n")
    factory = host.module_factory("none", {"a.cu": ["fill"], "b.cu": ["fill"]}, tmp_path)
    for name, value in (("a.cu", 1), ("b.cu", 2)):
        out = np.zeros(32, np.int32)
        factory(name).get_function("fill")(1, 32, (out,))
        assert (out == value).all()
    assert factory("a.cu") is factory("a.cu") and factory("a.cu") is not factory("b.cu")
