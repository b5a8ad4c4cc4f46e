"""The GPU suite runs only where CuPy sees an NVIDIA GPU; elsewhere every test here is skipped with the reason."""
import pytest


def _gpu_missing():
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install minivae[cuda12] or [cuda13])"
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return "CuPy found no GPU"
    except Exception as e:  # CuPy raises its own CUDARuntimeError without a driver
        return f"CuPy found no usable GPU: {e}"
    return None


REASON = _gpu_missing()


def pytest_collection_modifyitems(config, items):
    if REASON is None:
        return
    skip = pytest.mark.skip(reason=f"GPU suite: {REASON}")
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(skip)
