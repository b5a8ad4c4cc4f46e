"""Matrix products on the GPU: ``cupy.matmul``, or cuBLAS's GEMM called directly while a CUDA graph is
captured and when float32 products may use TF32 tensor cores.

CUDA graphs. cuBLAS's GEMM can be captured into a CUDA graph (the "CUDA graphs" section of its
documentation), but CuPy refuses every cuBLAS call while a stream is capturing, its low-level bindings
included ("calling cuBLAS API during stream capture is currently unsupported", CuPy 14 on an H200). So
during a capture a product calls ``cublas<S|D>gemm_v2`` of the libcublas CuPy has loaded through ctypes,
with CuPy's handle, which ``bind`` set to the capturing stream before the capture began. Writing GEMM
kernels of our own was the other route; cuBLAS's are faster, and the graph then holds the very kernels
the eager step runs.

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
"""
import contextlib
import ctypes
import math

import numpy

from minivae import _gpu
from minivae._backend import cupy_module, get_float32_matmul_precision

OP_N, OP_T = 0, 1  # cublasOperation_t
TF32_TENSOR_OP_MATH = 3  # cublasMath_t CUBLAS_TF32_TENSOR_OP_MATH
_lib = []


def matmul(a, b):
    """a @ b (NumPy's matmul semantics); float32 on TF32 tensor cores in precision "high"."""
    tf32 = a.dtype == numpy.float32 and get_float32_matmul_precision() == "high"
    direct = ((_gpu.capture is not None or tf32) and b.ndim == 2 and a.dtype == b.dtype and a.dtype.kind == "f"
              and (a.ndim == 2 or a.ndim > 2 and a.flags.c_contiguous))
    if not direct:
        return cupy_module().matmul(a, b)
    if a.ndim == 2:
        return _gemm(a, b, tf32)
    lead = a.shape[:-1]
    return _gemm(a.reshape(math.prod(lead), a.shape[-1]), b, tf32).reshape(*lead, b.shape[1])


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
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "/libcublas.so" in line})
        if not paths:
            raise RuntimeError("minivae's direct cuBLAS calls (CUDA graphs, TF32) need libcublas, which CuPy has "
                               "not loaded")
        lib = ctypes.CDLL(paths[0])
        for name in ("cublasSgemm_v2", "cublasDgemm_v2"):
            fn = getattr(lib, name)
            fn.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 5 + [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                                                   ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                                                   ctypes.c_void_p, ctypes.c_int]
            fn.restype = ctypes.c_int
        _lib.append(lib)
    return _lib[0]


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


def _gemm(a, b, tf32):
    """a (m×k) @ b (k×n) into a new C-contiguous c (m×n), on TF32 tensor cores if ``tf32``: in
    column-major terms cᵀ = bᵀ·aᵀ."""
    (m, k), n = a.shape, b.shape[1]
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match")
    cupy = cupy_module()
    c = cupy.empty((m, n), a.dtype)
    if c.size == 0 or k == 0:
        c.fill(0)
        return c
    (b, op_b, ld_b), (a, op_a, ld_a) = _operand(b), _operand(a)
    single = a.dtype == numpy.float32
    scalar = ctypes.c_float if single else ctypes.c_double
    one, zero = scalar(1.0), scalar(0.0)
    cublas = _bindings()
    if _gpu.capture is not None:
        handle = _gpu.capture.cublas_handle  # bound to the capturing stream by bind()
    else:
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
