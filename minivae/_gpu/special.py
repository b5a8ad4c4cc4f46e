"""erf, erfc, erfinv and erfcinv elementwise in one launch each: kernels/special.cu (CUDA's double-precision
functions, rounded once to the input's dtype)."""
import numpy

from minivae._backend import get_array_module
from minivae._gpu import contiguous, floating, launch_elementwise

FUNCTIONS = ("erf", "erfc", "erfinv", "erfcinv")  # the kernel's `which`, in order


def _run(x, name, divisor=1.0):
    """The function ``name`` of x/divisor (the quotient in double), in x's dtype."""
    c = floating(x, name)
    y = get_array_module(x).empty(x.shape, x.dtype)
    launch_elementwise("special.cu", f"special_fwd<{c}>", x.size,
                       (contiguous(x), y, numpy.int64(x.size), numpy.int32(FUNCTIONS.index(name)), numpy.float64(divisor)))
    return y


def erf(x, divisor=1.0):
    return _run(x, "erf", divisor)


def erfc(x, divisor=1.0):
    return _run(x, "erfc", divisor)


def erfinv(x):
    return _run(x, "erfinv")


def erfcinv(x):
    return _run(x, "erfcinv")
