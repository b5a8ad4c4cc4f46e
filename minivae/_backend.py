"""The array-module seam: which array library holds a tensor's data.

Op code never imports NumPy for array math; it asks ``get_array_module`` for the
module of its inputs (NumPy, or CuPy for data on the GPU). CuPy is imported only when
a CUDA array or ``device="cuda"`` is actually seen.

``emulate_cuda`` lets the test suite stand in for the GPU on the CPU: a strict array type
that refuses implicit conversion to NumPy (as CuPy does) plays the "cuda" data, and the
kernels of kernels/*.cu run through the host emulation in tests/cuda_host/.
"""
import contextlib
import importlib
import importlib.util
import os

import numpy

DEVICES = ("cpu", "cuda")
_numba_enabled = None
_fused_modules = {}
_emulation = None  # (array module, array type) standing in for CuPy, in tests
_cupy = None  # CuPy, once it was imported and found a GPU
_cupy_types = set()  # the array types seen so far whose module is CuPy's
_cuda_kernels_enabled = os.environ.get("MINIVAE_DISABLE_CUDA_KERNELS", "").lower() not in ("1", "true", "yes")
FLOAT32_MATMUL_PRECISIONS = ("highest", "high")
_float32_matmul_precision = "highest"


def _is_cupy(array):
    kind = type(array)
    if kind is numpy.ndarray:  # the common cases first: this runs several times an op
        return False
    if kind in _cupy_types:
        return True
    if _emulation is not None and isinstance(array, _emulation[1]):
        return True
    if kind.__module__.split(".", 1)[0] == "cupy":
        _cupy_types.add(kind)
        return True
    return False


def get_array_module(*arrays):
    """NumPy, or CuPy if any of ``arrays`` is a CuPy array."""
    for a in arrays:
        if _is_cupy(a):
            return cupy_module()
    return numpy


def device_of(array):
    return "cuda" if _is_cupy(array) else "cpu"


def cupy_module():
    """Import CuPy lazily, with one clear message when it or a GPU is missing."""
    global _cupy
    if _emulation is not None:
        return _emulation[0]
    if _cupy is not None:  # asked several times an op: import and device count only the first time
        return _cupy
    try:
        import cupy
    except ImportError as e:
        raise RuntimeError(
            "device='cuda' needs CuPy: install minivae[cuda12] or minivae[cuda13]") from e
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # CuPy raises its own CUDARuntimeError without a driver
        count = 0
    if count == 0:
        raise RuntimeError("device='cuda' needs an NVIDIA GPU, and CuPy found none")
    _cupy = cupy
    return cupy


def device_constant(like, value, shape=()):
    """A device array of ``shape`` in ``like``'s dtype and on its device, every element ``value``, shared by every
    caller that asks for the same (``minivae._gpu.constant``): never to be written."""
    from minivae import _gpu  # imported once device data is seen
    return _gpu.constant(like, value, shape)


def module_for_device(device):
    """The array module that holds data on ``device`` ("cpu" or "cuda")."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    return numpy if device == "cpu" else cupy_module()


def to_device(array, device):
    """``array`` on ``device``: the array itself where it is there already (no copy: a device array stays on the
    device), else one explicit copy, with ``get()`` to the host or the device module's ``asarray`` from it."""
    if device_of(array) == device:
        return array
    return array.get() if device == "cpu" else module_for_device(device).asarray(array)


def to_numpy(array):
    """A NumPy copy (or view) of any backend's array."""
    return array.get() if _is_cupy(array) else numpy.asarray(array)


@contextlib.contextmanager
def emulate_cuda(module, array_type):
    """Within this block ``array_type`` counts as data on device "cuda" and ``module`` is its array
    module, in place of CuPy (the tests' strict stand-in for the GPU)."""
    global _emulation
    previous, _emulation = _emulation, (module, array_type)
    try:
        yield
    finally:
        _emulation = previous


def numba_enabled():
    """True when Numba is installed and MINIVAE_DISABLE_NUMBA is not set (decided once, lazily)."""
    global _numba_enabled
    if _numba_enabled is None:
        disabled = os.environ.get("MINIVAE_DISABLE_NUMBA", "").lower() in ("1", "true", "yes")
        _numba_enabled = not disabled and importlib.util.find_spec("numba") is not None
    return _numba_enabled


@contextlib.contextmanager
def use_numba(flag):
    """Within this block, fused Numba kernels are used (if installed) or not: to compare both paths."""
    global _numba_enabled
    previous = numba_enabled()
    _numba_enabled = bool(flag) and importlib.util.find_spec("numba") is not None
    try:
        yield
    finally:
        _numba_enabled = previous


@contextlib.contextmanager
def use_cuda_kernels(flag):
    """Within this block data on the GPU goes through the fused kernels of kernels/*.cu (True) or
    through the CuPy array formulas alone (False): to compare both paths."""
    global _cuda_kernels_enabled
    previous, _cuda_kernels_enabled = _cuda_kernels_enabled, bool(flag)
    try:
        yield
    finally:
        _cuda_kernels_enabled = previous


def set_float32_matmul_precision(precision):
    """How float32 matrix products on the GPU are computed, as ``torch.set_float32_matmul_precision``:

    - "highest" (the default): in full float32;
    - "high": they may use TF32 tensor cores (Ampere and later): the operands rounded to a 10-bit
      mantissa, the products accumulated in float32 (relative error up to about 1e-3 of Σ|a_ik·b_kj|).

    It concerns ``ops.matmul`` and ``ops.linear`` (so ``nn.Linear``), forward and backward, on the GPU
    (minivae/_gpu/gemm.py). NumPy has no TF32: products on the CPU stay in full float32, as do
    float64 products everywhere, and GPU products when MINIVAE_DISABLE_CUDA_KERNELS is set. A CUDA
    graph (``plan.capture()``) keeps the precision in force when it was captured: cuBLAS picks its
    kernel at the call, which the graph records.
    """
    global _float32_matmul_precision
    if precision not in FLOAT32_MATMUL_PRECISIONS:
        raise ValueError(f"float32 matmul precision must be one of {FLOAT32_MATMUL_PRECISIONS}, not {precision!r}")
    _float32_matmul_precision = precision


def get_float32_matmul_precision():
    """The precision of float32 matrix products on the GPU: "highest" or "high" (set_float32_matmul_precision)."""
    return _float32_matmul_precision


KERNEL_DTYPES = (numpy.dtype(numpy.float32), numpy.dtype(numpy.float64))


def inverse_temperature(temperature, dtype=numpy.float64):
    """1/τ as the fused kernels take it, at most the largest finite value of ``dtype``: beyond it
    (τ < 5.6e-309 in float64, < 2.9e-39 in float32) it would be inf, and 0·inf = NaN at the row's
    maximum where the NumPy formula (ops/softmax.py ``_scaled``) gives the one-hot limit."""
    return min(1.0 / temperature, float(numpy.finfo(dtype).max))  # what every fused kernel is built for


def fused(name, xp, *arrays):
    """The fused-kernel module for arrays of module ``xp``, or None (the caller then runs the array
    formula, which is the specification): ``minivae._gpu.<name>`` (CUDA kernels through CuPy) for
    data on the GPU, ``minivae._cpu.<name>`` (Numba) for NumPy arrays when Numba is on. None also
    when one of ``arrays`` is of a dtype the kernels are not built for (float16, integers): those
    run the formula on every backend, so that both paths accept the same dtypes."""
    for a in arrays:  # (a loop: any() over a generator costs twice as much, and this runs several times an op)
        if a.dtype not in KERNEL_DTYPES:
            return None
    if xp is numpy:
        if not numba_enabled():
            return None
        package = "minivae._cpu"
    else:
        if not _cuda_kernels_enabled:
            return None
        package = "minivae._gpu"
    module = _fused_modules.get((package, name))
    if module is None:
        module = _fused_modules[(package, name)] = importlib.import_module(f"{package}.{name}")
    return module


def info():
    """What this installation can use: versions, the fused-kernel paths, and the GPU if any."""
    import platform
    from importlib.metadata import version
    out = {"python": platform.python_version(), "numpy": numpy.__version__, "numba": None,
           "fused_cpu_kernels": False, "cupy": None, "gpu": None, "cuda": None, "fused_cuda_kernels": None}
    if importlib.util.find_spec("numba") is not None:
        out["numba"] = version("numba")
        out["fused_cpu_kernels"] = numba_enabled()
    if importlib.util.find_spec("cupy") is None:  # a GPU and CUDA may well be there: this process cannot tell
        out.update(gpu="unknown: CuPy is not installed (minivae[cuda12] or minivae[cuda13])",
                   cuda="unknown: CuPy is not installed", fused_cuda_kernels="off: CuPy is not installed")
        return out
    try:
        cupy = cupy_module()
    except RuntimeError as e:
        out["gpu"] = f"unavailable: {e}"
        return out
    runtime = cupy.cuda.runtime
    props = runtime.getDeviceProperties(runtime.getDevice())
    out["cupy"] = cupy.__version__
    out["gpu"] = f"{props['name'].decode()} (sm_{props['major']}{props['minor']}, {props['totalGlobalMem'] / 2 ** 30:.0f} GiB)"
    out["cuda"] = f"runtime {_cuda_version(runtime.runtimeGetVersion())}, driver {_cuda_version(runtime.driverGetVersion())}"
    if _cuda_kernels_enabled:
        from minivae._gpu import loader
        out["fused_cuda_kernels"] = f"on: {', '.join(loader.SOURCES)} from {loader.KERNELS_DIR}"
    else:
        out["fused_cuda_kernels"] = "off (MINIVAE_DISABLE_CUDA_KERNELS): CuPy array formulas"
    from minivae._gpu import gemm, tiled
    out["cublaslt_dense_layers"] = ("on (MINIVAE_CUBLASLT=1): float32 dense layers one cuBLASLt call each"
                                    if gemm.use_lt and _cuda_kernels_enabled else
                                    "off (MINIVAE_CUBLASLT=1, experimental, puts bias and ReLU in the GEMM)")
    out["tiled_products"] = ("on (MINIVAE_GEMM=tiled): full-precision products, and dense layers' backward, by "
                             "kernels/gemm.cu" + (", each product's split timed on its first call (MINIVAE_GEMM_TUNE=1)"
                                                  if tiled.tune else "")
                             if gemm.use_tiled and _cuda_kernels_enabled else
                             "off (MINIVAE_GEMM=tiled, experimental: minivae's own GEMM kernel, one launch a product)")
    return out


def _cuda_version(v):
    return f"{v // 1000}.{v % 1000 // 10}"
