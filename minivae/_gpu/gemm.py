"""Matrix products on the GPU: ``cupy.matmul``, except while a CUDA graph is captured.

cuBLAS's GEMM can be captured into a CUDA graph (the "CUDA graphs" section of its documentation), but
CuPy refuses every cuBLAS call while a stream is capturing, its low-level bindings included
("calling cuBLAS API during stream capture is currently unsupported", CuPy 14 on an H200). So during a
capture a 2-D product calls ``cublas<S|D>gemm_v2`` of the libcublas CuPy has loaded through ctypes,
with CuPy's handle, which ``bind`` set to the capturing stream before the capture began. Writing GEMM
kernels of our own was the other route; cuBLAS's are faster, and the graph then holds the very kernels
the eager step runs.
"""
import ctypes

import numpy

from minivae import _gpu
from minivae._backend import cupy_module

OP_N, OP_T = 0, 1  # cublasOperation_t
_lib = []


def matmul(a, b):
    """a @ b (NumPy's matmul semantics)."""
    if _gpu.capture is None or a.ndim != 2 or b.ndim != 2 or a.dtype != b.dtype or a.dtype.kind != "f":
        return cupy_module().matmul(a, b)
    return _captured_gemm(a, b)


def bind(stream):
    """CuPy's cuBLAS handle of this device, set to ``stream``: called before a capture on it begins."""
    from cupy_backends.cuda.libs import cublas
    handle = cupy_module().cuda.device.get_cublas_handle()
    cublas.setStream(handle, stream.ptr)
    return handle


def _cublas():
    """The libcublas CuPy has loaded (found in this process's memory map), its two GEMMs typed."""
    if not _lib:
        with open("/proc/self/maps") as maps:
            paths = sorted({line.split()[-1] for line in maps if "/libcublas.so" in line})
        if not paths:
            raise RuntimeError("a CUDA graph's matrix products need libcublas, which CuPy has not loaded")
        lib = ctypes.CDLL(paths[0])
        for name in ("cublasSgemm_v2", "cublasDgemm_v2"):
            fn = getattr(lib, name)
            fn.argtypes = [ctypes.c_void_p] + [ctypes.c_int] * 5 + [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                                                   ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                                                                   ctypes.c_void_p, ctypes.c_int]
            fn.restype = ctypes.c_int
        _lib.append(lib)
    return _lib[0]


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


def _captured_gemm(a, b):
    """a (m×k) @ b (k×n) into a new C-contiguous c (m×n): in column-major terms cᵀ = bᵀ·aᵀ."""
    (m, k), n = a.shape, b.shape[1]
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match")
    c = cupy_module().empty((m, n), a.dtype)
    if c.size == 0 or k == 0:
        c.fill(0)
        return c
    (b, op_b, ld_b), (a, op_a, ld_a) = _operand(b), _operand(a)
    single = a.dtype == numpy.float32
    scalar = ctypes.c_float if single else ctypes.c_double
    one, zero = scalar(1.0), scalar(0.0)
    gemm = _cublas().cublasSgemm_v2 if single else _cublas().cublasDgemm_v2
    status = gemm(_gpu.capture.cublas_handle, op_b, op_a, n, m, k, ctypes.byref(one), b.data.ptr, ld_b, a.data.ptr,
                  ld_a, ctypes.byref(zero), c.data.ptr, n)
    if status:
        raise RuntimeError(f"cuBLAS gemm failed with status {status} while capturing a CUDA graph")
    return c
