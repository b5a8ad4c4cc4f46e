"""Matrix products on the GPU: ``cupy.matmul``, or cuBLAS's GEMM called directly while a CUDA graph is
captured and when float32 products may use TF32 tensor cores.

CUDA graphs. cuBLAS's GEMM can be captured into a CUDA graph (the "CUDA graphs" section of its
documentation), but CuPy refuses every cuBLAS call while a stream is capturing, its low-level bindings
included ("calling cuBLAS API during stream capture is currently unsupported", CuPy 14 on an H200). So
during a capture a product calls ``cublas<S|D>gemm_v2`` of the libcublas CuPy has loaded through ctypes,
with CuPy's handle, which ``bind`` set to the capturing stream before the capture began. cuBLAS's GEMMs
stay the default, and the graph then holds the very kernels the eager step runs. A GEMM kernel of our own
is the other route, experimental (MINIVAE_GEMM=tiled, minivae/_gpu/tiled.py): one launch a product, a
split inner dimension's partial sums and a dense layer's bias and ReLU included, where cuBLAS at a small
batch makes a second kernel for the first and bias_act_fwd a pass for the second; full-precision products
only (float64, and float32 outside TF32), eagerly, in a capture and on a graph's second stream alike.

TF32. With ``minivae.set_float32_matmul_precision("high")`` float32 products take the same direct call,
eagerly too, with the handle's math mode CUBLAS_TF32_TENSOR_OP_MATH: cuBLAS then rounds the operands to
TF32 (a 10-bit mantissa) for the tensor cores and accumulates in float32 (a CUDA-graph training step at
batch 128 on an H100: 144 µs, 175 µs in full float32, by benchmarks/gpu_step.py). CuPy's handle serves
every cuBLAS call of the process, so the mode is set just around the call and the previous one
restored: a user's own ``cupy.matmul`` keeps its precision. Outside a capture the handle's stream is first
set to the current stream, as CuPy does before each of its cuBLAS calls. A C-contiguous (…, k) array times
a k×n matrix (a dense layer on a batch of sequences) is one GEMM of the array reshaped to 2-D. In
"highest" (the default) nothing changes: eager products are ``cupy.matmul``'s; float64 products never use
TF32.

cuBLASLt (experimental, off unless the environment sets MINIVAE_CUBLASLT=1: on an H100 a graph step took
longer with it in full float32 at batch 128 and 10% less time in TF32 at batch 4096, README). A
float32 dense layer act(x @ W + b) becomes one ``cublasLtMatmul`` with the bias, or bias-then-ReLU, applied
by its epilogue as the product is written, instead of a product and a pass of kernels/linear.cu's
bias_act_fwd over it: one kernel and one write of the layer's output fewer, eagerly and in a graph (at
batch 4096 the six bias passes took 49 µs of a Gaussian VAE's 865 µs graph step on an H100). The other
float32 products (the VJP's) are cuBLASLt calls too, and each product's algorithm is the fastest of the
heuristic's first eight, timed on the GPU on its first eager call (minivae/_gpu/timing.py).
cuBLASLt's epilogues need a column-major D (a row-major one is refused), so the product is the one above, cᵀ =
Wᵀ·xᵀ, whose rows are the layer's outputs: the bias, one value per row of D, is broadcast along the
batch. The algorithm is asked of cuBLASLt's heuristic once per shape, layout and alignment (the heuristic
assumes 256-byte aligned matrices unless told their real alignment, and reads the bias pointer's),
with a workspace of 1 MiB allocated once per device and stream (PyTorch's default for its own cuBLASLt
path, which is the same call). The handle is CuPy's cuBLAS handle, which cuBLASLt accepts as its own. A layer this
path does not take (float64, a row or column of one, a bias not 16-byte aligned, no libcublasLt loaded,
no algorithm found) takes the product and bias_act_fwd as before.
"""
import contextlib
import ctypes
import math
import os
import sys

import numpy

from minivae import _gpu
from minivae._gpu import tiled, timing
from minivae._backend import cupy_module, get_array_module, get_float32_matmul_precision

OP_N, OP_T = 0, 1  # cublasOperation_t
TF32_TENSOR_OP_MATH = 3  # cublasMath_t CUBLAS_TF32_TENSOR_OP_MATH
_lib = []


def matmul(a, b):
    """a @ b (NumPy's matmul semantics); float32 on TF32 tensor cores in precision "high"."""
    if use_tiled and _tiled_takes(a, b):
        return _tiled_product(a, b)
    if use_lt and b.ndim == 2 and a.ndim >= 2:
        c = _lt_product(a, b, None, False)  # float32, each product's algorithm timed once (timing.choose)
        if c is not None:
            return c
    tf32 = a.dtype == numpy.float32 and get_float32_matmul_precision() == "high"
    direct = ((_gpu.capture is not None or tf32) and b.ndim == 2 and a.dtype == b.dtype and a.dtype.kind == "f"
              and (a.ndim == 2 or a.ndim > 2 and a.flags.c_contiguous))
    if not direct:
        return cupy_module().matmul(a, b)
    return _by_rows(lambda a2: _gemm(a2, b, tf32), a, b.shape[1])


def _by_rows(product, a, n):
    """``product`` of a C-contiguous (…, k) array as one 2-D product of its rows, reshaped back to (…, n)."""
    if a.ndim == 2:
        return product(a)
    lead = a.shape[:-1]
    return product(a.reshape(math.prod(lead), a.shape[-1])).reshape(*lead, n)


def bind(stream):
    """CuPy's cuBLAS handle of this device, set to ``stream``: called before a capture on it begins."""
    handle = cupy_module().cuda.device.get_cublas_handle()
    _bindings().setStream(handle, stream.ptr)
    return handle


def _bindings():
    """CuPy's low-level cuBLAS module: a handle's stream and math mode."""
    from cupy_backends.cuda.libs import cublas
    return cublas


def _cublas():
    """The libcublas CuPy has loaded (found in this process's memory map), its two GEMMs typed."""
    if not _lib:
        path = _loaded_library("libcublas.so")
        if path is None:
            raise RuntimeError("minivae's direct cuBLAS calls (CUDA graphs, TF32) need libcublas, which CuPy has "
                               "not loaded")
        lib = ctypes.CDLL(path)
        for name in ("cublasSgemm_v2", "cublasDgemm_v2"):
            fn = getattr(lib, name)
            fn.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 5 + [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                                                   ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                                                   ctypes.c_void_p, ctypes.c_int]
            fn.restype = ctypes.c_int
        _lib.append(lib)
    return _lib[0]


def _loaded_library(name):
    """The path of the shared library ``name`` (as "libcublas.so") that this process has loaded, by its memory
    map, or None: CuPy loads cuBLAS, and with it cuBLASLt, and minivae calls the same copies."""
    with open("/proc/self/maps") as maps:
        paths = sorted({line.split()[-1] for line in maps if f"/{name}" in line})
    return paths[0] if paths else None


@contextlib.contextmanager
def _math_mode(cublas, handle, mode):
    """``handle`` in math ``mode`` within the block, back in its previous mode after it."""
    previous = cublas.getMathMode(handle)
    cublas.setMathMode(handle, mode)
    try:
        yield
    finally:
        cublas.setMathMode(handle, previous)


def _operand(x):
    """(x or a C-contiguous copy, cuBLAS op, leading dimension) for x (r×c, row-major) read as cuBLAS's
    column-major xᵀ: C-contiguous x is xᵀ as stored (no transpose, ld = c); F-contiguous x (a transposed
    view, as the VJP's wᵀ) is x as stored, so cuBLAS transposes it (ld = r)."""
    if x.flags.c_contiguous:
        return x, OP_N, max(1, x.shape[1])
    if x.flags.f_contiguous:
        return x, OP_T, max(1, x.shape[0])
    x = cupy_module().ascontiguousarray(x)
    return x, OP_N, max(1, x.shape[1])


def _gemm(a, b, tf32, out=None, handle=None):
    """a (m×k) @ b (k×n) into a new C-contiguous c (m×n), or into ``out`` (C-contiguous), on TF32 tensor cores
    if ``tf32``: in column-major terms cᵀ = bᵀ·aᵀ. ``handle``: a cuBLAS handle bound to the stream to run on
    (the side stream's), else CuPy's on the current stream, or the capture's."""
    (m, k), n = a.shape, b.shape[1]
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match")
    cupy = cupy_module()
    c = cupy.empty((m, n), a.dtype) if out is None else out
    if c.size == 0 or k == 0:
        c.fill(0)
        return c
    (b, op_b, ld_b), (a, op_a, ld_a) = _operand(b), _operand(a)
    single = a.dtype == numpy.float32
    scalar = ctypes.c_float if single else ctypes.c_double
    one, zero = scalar(1.0), scalar(0.0)
    cublas = _bindings()
    if handle is None and _gpu.capture is not None:
        handle = _gpu.capture.cublas_handle  # bound to the capturing stream by bind()
    elif handle is None:
        handle = cupy.cuda.device.get_cublas_handle()
        cublas.setStream(handle, cupy.cuda.get_current_stream().ptr)
    gemm = _cublas().cublasSgemm_v2 if single else _cublas().cublasDgemm_v2
    # Without TF32 the handle keeps the mode it has (CuPy's default, unless the user changed it): a
    # captured product then computes as cupy.matmul does eagerly on the same handle.
    with _math_mode(cublas, handle, TF32_TENSOR_OP_MATH) if tf32 else contextlib.nullcontext():
        status = gemm(handle, op_b, op_a, n, m, k, ctypes.byref(one), _gpu.address(b), ld_b, _gpu.address(a), ld_a,
                      ctypes.byref(zero), _gpu.address(c), n)
    if status:
        raise RuntimeError(f"cuBLAS {'S' if single else 'D'}gemm failed with status {status}")
    return c


# ---- a second stream for the weight gradients of a CUDA-graph step (minivae/_gpu/graph.py) ---------------
side = None  # the SideStream of the capture running now, if it asked for one (minivae/_gpu/graph.py)
_retired = []  # [graph, side stream] lists let go while a capture ran: closed once it has ended (release)


def side_workspace_bytes(major):
    """The side handle's cuBLAS workspace on a GPU of compute capability ``major``.x: the size cuBLAS's
    documentation recommends (cublasSetWorkspace: 32 MiB on Hopper, 4 MiB before). With 4 MiB on an H100
    a Gaussian VAE's graph step at batch 4096 took longer with the side stream than without (945 against
    831 µs, one timing of gpu_step.py's steps), with 32 MiB it did not (822 µs)."""
    return (32 if major >= 9 else 4) << 20


def side_product(a, b, gate_b=None, b_sums=None):
    """a @ b (2-D) queued on the side stream: the result, which nothing on the main stream may read before
    ``side.join()`` (minivae.plan's run_tape joins before the first instruction that reads it); nor ``b_sums``,
    which it then fills (``gate_b`` and ``b_sums`` as tiled.product's: kernels/gemm.cu's products only)."""
    out = get_array_module(a).empty((a.shape[0], b.shape[1]), numpy.result_type(a.dtype, b.dtype))
    side.product(a, b, out, gate_b, b_sums)
    return out


def side_gemm(a, b, out, handle, gate_b=None, b_sums=None):
    """out = a @ b on the side stream (the current one), through its cuBLAS ``handle``, or by kernels/gemm.cu (with
    the side stream's own split buffers: it runs beside the main stream's products), which a gated product or one
    with column sums must take."""
    if use_tiled and _tiled_takes(a, b):
        tiled.product(a, b, out=out, gate_b=gate_b, b_sums=b_sums)
    elif gate_b is not None or b_sums is not None:
        raise ValueError("a product with a gate or column sums is kernels/gemm.cu's (MINIVAE_GEMM=tiled)")
    else:
        _gemm(a, b, a.dtype == numpy.float32 and get_float32_matmul_precision() == "high", out=out, handle=handle)


class SideStream:
    """Products queued on a second stream, beside the main one. ``product(a, b, out)`` queues out = a @ b
    after all the main stream has queued so far; ``join()`` makes the main stream wait for everything queued
    here. Until the join a, b and out stay referenced: a block freed now would go back to the memory pool,
    whose next array on the main stream could then be written while this stream still reads or writes it.
    Subclasses say how to fork, launch and join (CudaSideStream; the tests' emulation on the CPU). A product may
    read b through a gate and fill b's column sums (``side_gemm``): those are kept, and the sums an output, too."""

    def __init__(self):
        self.kept, self.outputs = [], set()

    def product(self, a, b, out, gate_b=None, b_sums=None):
        self._fork()
        self._launch(a, b, out, gate_b, b_sums)
        self.kept.append((a, b, out, gate_b, b_sums))
        for made in (out, b_sums):
            if made is not None:
                self.outputs.add(_gpu.address(made))  # the memory, not the object: a view of out reads it too

    def makes(self, arrays):
        """Whether one of ``arrays`` is (a view from the start of) a queued product's output."""
        return bool(self.outputs) and any(_gpu.address(a) in self.outputs for a in arrays)

    def join(self):
        if self.kept:
            self._join()
        self.kept.clear()
        self.outputs.clear()


class CudaSideStream(SideStream):
    """A side stream of the stream ``main`` that a capture records: events order the two (recorded, they
    become the graph's edges), and the products go to a cuBLAS handle of its own, bound to it, with its own
    workspace (two streams on one handle would share its workspace)."""

    def __init__(self, main):
        super().__init__()
        cupy, cublas = cupy_module(), _bindings()
        self.main, self.stream = main, cupy.cuda.Stream(non_blocking=True)
        self.fork_event, self.join_event = cupy.cuda.Event(disable_timing=True), cupy.cuda.Event(disable_timing=True)
        size = side_workspace_bytes(int(cupy.cuda.Device().compute_capability) // 10)  # "90" on an H100
        self.workspace = cupy.get_default_memory_pool().malloc(size)
        self.cublas, self.handle = cublas, cublas.create()  # close() may run at exit, when imports no longer can
        cublas.setStream(self.handle, self.stream.ptr)
        lib = _cublas()
        lib.cublasSetWorkspace_v2.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        status = lib.cublasSetWorkspace_v2(self.handle, self.workspace.ptr, size)
        if status:
            raise RuntimeError(f"cublasSetWorkspace_v2 failed with status {status}")

    def _fork(self):
        self.fork_event.record(self.main)
        self.stream.wait_event(self.fork_event)

    def _launch(self, a, b, out, gate_b, b_sums):
        with self.stream:
            side_gemm(a, b, out, self.handle, gate_b, b_sums)

    def _join(self):
        self.join_event.record(self.stream)
        self.main.wait_event(self.join_event)

    def close(self):
        """Destroy the handle (once the graph that holds its products is gone); not at the interpreter's exit,
        where the CUDA context may already be gone and the driver frees what the process held."""
        if self.handle is not None and not sys.is_finalizing():
            self.cublas.destroy(self.handle)
        self.handle = None


def release(parts):
    """``parts``: [a captured graph, its side stream]. Let go of the graph, then close the side stream (the
    graph's products use its handle's workspace): now, or once the capture running now has ended
    (``release_retired``). A graph and its plan refer to each other, so the garbage collector frees them at
    whatever allocation it runs, which may be one of another graph's capture; destroying a cuBLAS handle
    there invalidated that capture (cudaErrorStreamCaptureInvalidated at its end, on an H100, in captures
    that followed a side-stream graph let go)."""
    if _gpu.capture is not None:
        _retired.append(parts)
    else:
        _close(parts)


def release_retired():
    """Close what ``release`` kept back during a capture: called when a capture has ended."""
    while _retired:
        _close(_retired.pop())


def _close(parts):
    parts[0] = None  # the graph first (the caller holds the list, not the graph)
    parts[1].close()


# ---- minivae's own GEMM kernel (experimental, minivae/_gpu/tiled.py) ---------------------------------------
use_tiled = os.environ.get("MINIVAE_GEMM") == "tiled"


def _tiled_takes(a, b):
    """Whether kernels/gemm.cu takes a @ b: floating operands of one dtype, b a matrix, a a matrix or a C-contiguous
    stack of rows; not float32 in precision "high" (cuBLAS's TF32 tensor cores take those)."""
    return (b.ndim == 2 and a.dtype == b.dtype and a.dtype.char in "fd" and (a.ndim == 2 or a.ndim > 2 and a.flags.c_contiguous)
            and not (a.dtype == numpy.float32 and get_float32_matmul_precision() == "high")
            and tiled.fits(a.size // max(1, a.shape[-1]), b.shape[1], b.shape[0]))


def _tiled_product(a, b, bias=None, relu=False):
    """a @ b (+ bias, ReLU) by kernels/gemm.cu, a C-contiguous (…, k) array as one product of its rows."""
    return _by_rows(lambda a2: tiled.product(a2, b, bias, relu), a, b.shape[1])


def linear_grads(x, w, g, y, needs):
    """(x̄, W̄, b̄) of ops.linear's backward for ḡ (y: the ReLU layer's output, or None without an activation; ``needs``:
    which of x, W, b want one) in two launches of kernels/gemm.cu: x̄ = p̄·Wᵀ and W̄ = xᵀ·p̄ with p̄ = ḡ·[y > 0] made
    as ḡ is read (never written), and b̄ = Σ_i p̄_ij by W̄'s launch, where the cuBLAS path writes p̄ and b̄ by a
    pass of bias_grad (or relu_bwd) first. W̄ (with b̄) goes to a capture's side stream if it has one. None where
    this path does not take the layer: not MINIVAE_GEMM=tiled or not its products, W̄ not wanted, x not a matrix."""
    n = w.shape[1]
    if not (use_tiled and needs[1] and x.ndim == 2 and g.shape == (x.shape[0], n) and x.dtype == w.dtype == g.dtype
            and (y is None or y.dtype == g.dtype) and _tiled_takes(x.T, g) and _tiled_takes(g, w.T)):
        return None
    if y is not None:
        g = _gpu.contiguous(g)  # as the gate: one copy for both products, where ḡ is not C-contiguous already
    gb = get_array_module(g).empty(n, g.dtype) if needs[2] else None
    if side is not None:  # queued first, to run beside x̄'s product
        gw = side_product(x.T, g, y, gb)
    else:
        gw = tiled.product(x.T, g, gate_b=y, b_sums=gb)
    gx = tiled.product(g, w.T, gate_a=y) if needs[0] else None
    return gx, gw, gb


# ---- cuBLASLt: a dense layer in one call (values from cublasLt.h, the same in CUDA 11.x, 12.x and 13.x) --
use_lt = os.environ.get("MINIVAE_CUBLASLT") == "1"
LT_WORKSPACE = 1 << 20
LT_CANDIDATES = 8   # algorithms asked of the heuristic for each product, and timed on its first eager call
EPILOGUE_DEFAULT, EPILOGUE_BIAS, EPILOGUE_RELU_BIAS = 1, 4, 6  # cublasLtEpilogue_t
COMPUTE_32F, COMPUTE_32F_FAST_TF32, CUDA_R_32F = 68, 77, 0  # cublasComputeType_t, cudaDataType_t
DESC_TRANSA, DESC_TRANSB, DESC_EPILOGUE, DESC_BIAS_POINTER = 3, 4, 7, 8  # cublasLtMatmulDescAttributes_t
PREF_MAX_WORKSPACE_BYTES = 1                                # cublasLtMatmulPreferenceAttributes_t, uint64
PREF_MIN_ALIGNMENT_BYTES = (5, 6, 7, 8)                     # … of A, B, C and D, uint32
_lt_lib, _lt_plans, _lt_workspaces = [], {}, {}


class HeuristicResult(ctypes.Structure):
    """cublasLtMatmulHeuristicResult_t (96 bytes); ``algo`` is the opaque cublasLtMatmulAlgo_t."""
    _fields_ = [("algo", ctypes.c_uint64 * 8), ("workspaceSize", ctypes.c_size_t), ("state", ctypes.c_int),
                ("wavesCount", ctypes.c_float), ("reserved", ctypes.c_int * 4)]


def linear(x, w, bias, relu):
    """act(x @ w + bias) in one launch of kernels/gemm.cu (MINIVAE_GEMM=tiled), or one cuBLASLt call for float32
    (MINIVAE_CUBLASLT=1), act ReLU or the identity, for x (…, k) C-contiguous, w (k, n) and bias (n,); None where
    neither path takes the layer (the caller then runs the product and kernels/linear.cu's bias_act_fwd)."""
    if use_tiled and _tiled_takes(x, w) and bias.dtype == x.dtype and bias.shape == w.shape[1:]:
        return _tiled_product(x, w, bias, relu)
    if not use_lt or bias.dtype != numpy.float32 or bias.ndim != 1 or not bias.flags.c_contiguous:
        return None
    if _alignment(_gpu.address(bias)) < 16:
        return None  # as PyTorch: an unaligned bias faults on some GPUs, and cuBLASLt's heuristic does not know it
    return _lt_product(x, w, bias, relu)


def _lt_product(x, w, bias, relu):
    """x (…, k) @ w (k, n), plus bias (n,) then the ReLU if ``relu`` when there is a bias, in one cuBLASLt call
    with an algorithm timed once per shape (``timing.choose``); None where this path does not take the product."""
    if not (x.dtype == w.dtype == numpy.float32) or w.ndim != 2 or not (x.ndim == 2 or x.ndim > 2 and x.flags.c_contiguous):
        return None
    lead, (k, n) = x.shape[:-1], w.shape
    m = math.prod(lead)
    if x.shape[-1] != k or min(m, k, n) < 2 or (bias is not None and bias.shape != (n,)):
        return None  # (a mismatch is matmul's to report) 1-row or 1-column operands fail cuBLASLt's heuristic
    lib = _cublaslt()
    if lib is None:
        return None
    cupy = cupy_module()
    (w, op_w, ld_w), (x2, op_x, ld_x) = _operand(w), _operand(x.reshape(m, k))
    y = cupy.empty((m, n), numpy.float32)
    epilogue = EPILOGUE_DEFAULT if bias is None else EPILOGUE_RELU_BIAS if relu else EPILOGUE_BIAS
    key = (cupy.cuda.get_device_id(), m, n, k, op_w, op_x, ld_w, ld_x, epilogue,
           get_float32_matmul_precision() == "high", *(_alignment(_gpu.address(a)) for a in (w, x2, y)),
           0 if bias is None else _alignment(_gpu.address(bias)))
    plan = _lt_plans.get(key)
    if plan is None:
        plan = _lt_plans[key] = _lt_plan(lib, key, bias)
    if plan is False:
        return None
    desc, layouts, candidates = plan["desc"], plan["layouts"], plan["candidates"]
    if bias is not None:
        _set(lib.cublasLtMatmulDescSetAttribute, desc, DESC_BIAS_POINTER, ctypes.c_void_p(_gpu.address(bias)))
    one, zero = ctypes.c_float(1.0), ctypes.c_float(0.0)
    handle = _gpu.capture.cublas_handle if _gpu.capture is not None else cupy.cuda.device.get_cublas_handle()
    stream = cupy.cuda.get_current_stream()
    workspace = _workspace(cupy, stream.ptr)

    def run(algo):
        return lib.cublasLtMatmul(handle, desc, ctypes.byref(one), _gpu.address(w), layouts[0], _gpu.address(x2),
                                  layouts[1], ctypes.byref(zero), _gpu.address(y), layouts[2], _gpu.address(y),
                                  layouts[2], ctypes.byref(algo), workspace, LT_WORKSPACE, stream.ptr)
    if plan["algo"] is None:
        # cuBLASLt's heuristic ranks its candidates by a model of the GPU, and at a small batch its first is not always
        # the fastest (it may split the inner dimension over blocks whose partial sums another kernel then adds):
        # each is timed on the product's own operands, its output written over (during a capture: the first, untimed)
        plan["algo"] = timing.choose(cupy, candidates, run)[0]
    status = run(plan["algo"])
    if status:
        raise RuntimeError(f"cublasLtMatmul failed with status {status} ({x.shape} @ {(k, n)})")
    return y.reshape(*lead, n)


def _lt_plan(lib, key, bias):
    """{desc, layouts of A, B and D, candidate algorithms, algo (None until chosen)} for ``key``
    (_lt_product's), or False when cuBLASLt's heuristic has no algorithm for it. In cuBLAS's column-major terms
    D (n×m) = op(A)·op(B), A = w and B = x as stored (each (op, ld) from _operand), D = yᵀ; the bias, if any, is
    one value per row of D."""
    _, m, n, k, op_w, op_x, ld_w, ld_x, epilogue, tf32, *alignments = key
    desc = ctypes.c_void_p()
    _check(lib.cublasLtMatmulDescCreate(ctypes.byref(desc), COMPUTE_32F_FAST_TF32 if tf32 else COMPUTE_32F,
                                        CUDA_R_32F), "cublasLtMatmulDescCreate")
    _set(lib.cublasLtMatmulDescSetAttribute, desc, DESC_TRANSA, ctypes.c_int32(op_w))
    _set(lib.cublasLtMatmulDescSetAttribute, desc, DESC_TRANSB, ctypes.c_int32(op_x))
    _set(lib.cublasLtMatmulDescSetAttribute, desc, DESC_EPILOGUE, ctypes.c_uint32(epilogue))
    if bias is not None:
        _set(lib.cublasLtMatmulDescSetAttribute, desc, DESC_BIAS_POINTER, ctypes.c_void_p(_gpu.address(bias)))
    layouts = []
    for rows, cols, ld in ((n, k, ld_w) if op_w == OP_N else (k, n, ld_w),
                           (k, m, ld_x) if op_x == OP_N else (m, k, ld_x), (n, m, n)):
        layout = ctypes.c_void_p()
        _check(lib.cublasLtMatrixLayoutCreate(ctypes.byref(layout), CUDA_R_32F, rows, cols, ld),
               "cublasLtMatrixLayoutCreate")
        layouts.append(layout)
    preference = ctypes.c_void_p()
    _check(lib.cublasLtMatmulPreferenceCreate(ctypes.byref(preference)), "cublasLtMatmulPreferenceCreate")
    try:
        _set(lib.cublasLtMatmulPreferenceSetAttribute, preference, PREF_MAX_WORKSPACE_BYTES,
             ctypes.c_uint64(LT_WORKSPACE))
        align_w, align_x, align_y = alignments[:3]
        for attribute, alignment in zip(PREF_MIN_ALIGNMENT_BYTES, (align_w, align_x, align_y, align_y)):
            _set(lib.cublasLtMatmulPreferenceSetAttribute, preference, attribute, ctypes.c_uint32(alignment))
        results, found = (HeuristicResult * LT_CANDIDATES)(), ctypes.c_int(0)
        status = lib.cublasLtMatmulAlgoGetHeuristic(
            cupy_module().cuda.device.get_cublas_handle(), desc, layouts[0], layouts[1], layouts[2], layouts[2],
            preference, LT_CANDIDATES, results, ctypes.byref(found))
    finally:
        lib.cublasLtMatmulPreferenceDestroy(preference)
    candidates = [] if status else [(ctypes.c_uint64 * 8)(*r.algo) for r in results[:found.value] if r.state == 0]
    if not candidates:
        lib.cublasLtMatmulDescDestroy(desc)
        for layout in layouts:
            lib.cublasLtMatrixLayoutDestroy(layout)
        return False
    return {"desc": desc, "layouts": layouts, "candidates": candidates, "algo": None}


def _alignment(address):
    """The largest power of two up to 256 that divides ``address``."""
    return min(256, address & -address) if address else 256


def _set(setter, obj, attribute, value):
    """One attribute of a cuBLASLt descriptor or preference; its size must be the attribute's exactly."""
    _check(setter(obj, attribute, ctypes.byref(value), ctypes.sizeof(value)), "cuBLASLt SetAttribute")


def _check(status, what):
    if status:
        raise RuntimeError(f"{what} failed with status {status}")


def _workspace(cupy, stream):
    """The cuBLASLt workspace of this device and ``stream`` (two streams running at once must not share one):
    allocated once, from CuPy's default pool even during a capture (a block of the capture's pool would be the
    graph's to reuse for its temporaries), and never freed."""
    key = (cupy.cuda.get_device_id(), stream)
    if key not in _lt_workspaces:
        _lt_workspaces[key] = cupy.get_default_memory_pool().malloc(LT_WORKSPACE)
    return _lt_workspaces[key].ptr


def _cublaslt():
    """The libcublasLt CuPy's libcublas brought into this process (it needs it), its functions typed; None
    where there is none (no CUDA here: the tests' stand-in devices)."""
    if not _lt_lib:
        try:
            _bindings()  # CuPy's cuBLAS module: loads libcublas, and with it libcublasLt
        except ImportError:
            _lt_lib.append(None)
            return None
        path = _loaded_library("libcublasLt.so")
        lib = ctypes.CDLL(path) if path is not None else None
        if lib is not None:
            p, i32, u64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64
            for name, args in {
                "cublasLtMatmulDescCreate": [p, i32, i32], "cublasLtMatmulDescDestroy": [p],
                "cublasLtMatmulDescSetAttribute": [p, i32, p, ctypes.c_size_t],
                "cublasLtMatrixLayoutCreate": [p, i32, u64, u64, ctypes.c_int64], "cublasLtMatrixLayoutDestroy": [p],
                "cublasLtMatmulPreferenceCreate": [p], "cublasLtMatmulPreferenceDestroy": [p],
                "cublasLtMatmulPreferenceSetAttribute": [p, i32, p, ctypes.c_size_t],
                "cublasLtMatmulAlgoGetHeuristic": [p, p, p, p, p, p, p, i32, p, p],
                "cublasLtMatmul": [p, p, p, p, p, p, p, p, p, p, p, p, p, p, ctypes.c_size_t, p],
            }.items():
                fn = getattr(lib, name)
                fn.argtypes, fn.restype = args, ctypes.c_int
        _lt_lib.append(lib)
    return _lt_lib[0]
