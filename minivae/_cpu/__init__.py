"""Numba kernels for the CPU hot paths, one module per op, imported on first use through
``minivae._backend.fused``. Each implements the NumPy formula of its op (the specification) and
is tested against it, values and gradients, float32 and float64."""
import types

import numba

PARALLEL_MIN = 1 << 22  # elements: below this, threads cost more than they save (and contend with BLAS's)


def kernel(fn):
    """Compile ``fn`` (whose outer loop is a ``numba.prange``) twice: serially, and across
    threads. ``k(size, *args)`` runs the parallel build when ``size`` ≥ PARALLEL_MIN.

    The parallel build gets its own function object and qualified name, so the two builds keep
    separate entries in Numba's on-disk cache.

    error_model="numpy": a float division by zero gives inf/nan as in the NumPy reference instead
    of raising ZeroDivisionError. Python's model puts a branch in every loop that divides, and
    the branch stops LLVM from vectorizing it (Adam: 8× slower).
    """
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel", fn.__defaults__)
    twin.__qualname__ = fn.__qualname__ + "_parallel"
    serial = numba.njit(cache=True, error_model="numpy")(fn)
    parallel = numba.njit(parallel=True, cache=True, error_model="numpy")(twin)

    def run(size, *args):
        return (parallel if size >= PARALLEL_MIN else serial)(*args)
    run.serial, run.parallel = serial, parallel
    return run
