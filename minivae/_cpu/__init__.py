"""Numba kernels for the CPU hot paths, one module per op, imported on first use through
``minivae._backend.fused``. Each implements the NumPy formula of its op (the specification) and
is tested against it, values and gradients, float32 and float64."""
import hashlib
import os
import types

import numba

PARALLEL_MIN = 1 << 22  # elements: below this, threads cost more than they save (and contend with BLAS's)


def _sources_digest(folder):
    """A digest of the package's sources in ``folder``. Numba's on-disk cache checks only the file that defines a
    kernel, not those of the helpers inlined into it (rows.py, vector.py, philox.py): each build is named
    after this digest, so that a change to any of them gives every kernel new cache entries."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as f:
                h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


_DIGEST = _sources_digest(os.path.dirname(os.path.abspath(__file__)))


def kernel(fn):
    """Compile ``fn`` (whose outer loop is a ``numba.prange``) twice: serially, and across
    threads. ``k(size, *args)`` runs the parallel build when ``size`` ≥ PARALLEL_MIN.

    Each build gets its own function object, its qualified name suffixed with the build and the sources'
    digest, so that the two keep separate entries in Numba's on-disk cache, and a changed helper new ones.

    error_model="numpy": a float division by zero gives inf/nan as in the NumPy reference instead
    of raising ZeroDivisionError. Python's model puts a branch in every loop that divides, and
    the branch stops LLVM from vectorizing it (Adam: 8× slower).
    """
    def build(suffix):
        twin = types.FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}_{suffix}", fn.__defaults__)
        twin.__qualname__ = f"{fn.__qualname__}_{suffix}_{_DIGEST}"
        return twin
    serial = numba.njit(cache=True, error_model="numpy")(build("serial"))
    parallel = numba.njit(parallel=True, cache=True, error_model="numpy")(build("parallel"))

    def run(size, *args):
        return (parallel if size >= PARALLEL_MIN else serial)(*args)
    run.serial, run.parallel = serial, parallel
    return run
