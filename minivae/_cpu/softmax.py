"""softmax / log-softmax with temperature over the last axis, forward and backward, row by row."""
import math

import numba
import numpy

from minivae._backend import inverse_temperature
from minivae._cpu import kernel
from minivae._cpu.rows import exp_row, softmax_row
from minivae._cpu.vector import dot_any_order, exp, sum_any_order


def _rows(a):
    return numpy.ascontiguousarray(a).reshape(-1, a.shape[-1])


@kernel
def _fwd(x, inv_tau, log, out):
    rows, k = x.shape
    for r in numba.prange(rows):
        if log:                                # out holds the terms e_j until it takes z_j − log Σ e
            m, s = exp_row(x, r, inv_tau, out)
            log_s = math.log(s)
            for j in range(k):
                out[r, j] = (x[r, j] - m) * inv_tau - log_s
        else:
            softmax_row(x, r, inv_tau, out)


@kernel
def _bwd(y, g, inv_tau, log, out):
    rows, k = y.shape
    for r in numba.prange(rows):
        if log:
            s = sum_any_order(g[r])
            for j in range(k):
                out[r, j] = (g[r, j] - exp(y[r, j]) * s) * inv_tau
        else:
            s = dot_any_order(g[r], y[r])
            for j in range(k):
                out[r, j] = y[r, j] * (g[r, j] - s) * inv_tau


def softmax_fwd(x, temperature, log=False):
    """y = softmax(x/τ) (or its log) along the last axis."""
    out = numpy.empty(x.shape, x.dtype)
    _fwd(x.size, _rows(x), inverse_temperature(temperature), log, out.reshape(-1, x.shape[-1]))
    return out


def softmax_bwd(y, g, temperature, log=False):
    """x̄ = y(ḡ − Σḡy)/τ, or for log-softmax (ḡ − e^y Σḡ)/τ."""
    out = numpy.empty(y.shape, y.dtype)
    _bwd(y.size, _rows(y), _rows(g.astype(y.dtype, copy=False)), inverse_temperature(temperature), log, out.reshape(-1, y.shape[-1]))
    return out
