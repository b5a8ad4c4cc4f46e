"""The array-module seam: which array library holds a tensor's data.

Op code never imports NumPy for array math; it asks ``get_array_module`` for the
module of its inputs (NumPy, or CuPy once the GPU backend plugs in). CuPy is
imported only when a CUDA array or ``device="cuda"`` is actually seen.
"""
import contextlib
import importlib
import importlib.util
import os

import numpy

DEVICES = ("cpu", "cuda")
_numba_enabled = None
_fused_modules = {}


def _is_cupy(array):
    return type(array).__module__.split(".", 1)[0] == "cupy"


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
    return cupy


def module_for_device(device):
    """The array module that holds data on ``device`` ("cpu" or "cuda")."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    return numpy if device == "cpu" else cupy_module()


def to_numpy(array):
    """A NumPy copy (or view) of any backend's array."""
    return array.get() if _is_cupy(array) else numpy.asarray(array)


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


def fused(name, xp):
    """The fused-kernel module ``minivae._cpu.<name>`` for NumPy arrays when Numba is on, else None
    (the caller then runs the NumPy formula, which is the specification)."""
    if xp is not numpy or not numba_enabled():
        return None
    module = _fused_modules.get(name)
    if module is None:
        module = _fused_modules[name] = importlib.import_module(f"minivae._cpu.{name}")
    return module


def info():
    """What this installation can use: versions, the fused-kernel path, and the GPU if any."""
    import platform
    out = {"python": platform.python_version(), "numpy": numpy.__version__, "numba": None,
           "fused_cpu_kernels": False, "cupy": None, "gpu": None}
    if importlib.util.find_spec("numba") is not None:
        from importlib.metadata import version
        out["numba"] = version("numba")
        out["fused_cpu_kernels"] = numba_enabled()
    if importlib.util.find_spec("cupy") is not None:
        try:
            cupy = cupy_module()
            out["cupy"] = cupy.__version__
            props = cupy.cuda.runtime.getDeviceProperties(0)
            out["gpu"] = f"{props['name'].decode()} (CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()})"
        except RuntimeError as e:
            out["gpu"] = f"unavailable: {e}"
    return out
