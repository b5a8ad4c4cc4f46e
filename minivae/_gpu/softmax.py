"""softmax / log-softmax with temperature over the last axis: kernels/softmax.cu."""
import numpy

from minivae._backend import get_array_module, inverse_temperature
from minivae._gpu import floating, launch_rows, rows_of


def softmax_fwd(x, temperature, log=False):
    """y = softmax(x/τ) (or its log) along the last axis."""
    t = floating(x, "softmax")
    xr = rows_of(x)
    y = get_array_module(x).empty(xr.shape, x.dtype)
    rows, k = xr.shape
    launch_rows("softmax.cu", "softmax", "fwd", t, rows, k,
                (xr, y, numpy.int32(rows), numpy.int32(k), x.dtype.type(inverse_temperature(temperature, x.dtype)),
                 numpy.int32(log)))
    return y.reshape(x.shape)


def softmax_bwd(y, g, temperature, log=False):
    """x̄ = y(ḡ − Σḡy)/τ, or for log-softmax (ḡ − e^y Σḡ)/τ."""
    t = floating(y, "softmax backward")
    yr, gr = rows_of(y), rows_of(g, y.dtype)
    gx = get_array_module(y).empty(yr.shape, y.dtype)
    rows, k = yr.shape
    launch_rows("softmax.cu", "softmax", "bwd", t, rows, k,
                (yr, gr, gx, numpy.int32(rows), numpy.int32(k), y.dtype.type(inverse_temperature(temperature, y.dtype)),
                 numpy.int32(log)))
    return gx.reshape(y.shape)
