"""Row helpers shared by the softmax-shaped kernels (inlined into each). Each pass is a loop LLVM
vectorizes (``minivae._cpu.vector``)."""
import math

import numba

from minivae._cpu.vector import exp, maxnum, sum_any_order


@numba.njit(inline="always")
def row_max(x, r):
    """max_j x[r, j], NaN skipped (NaN only for a row of NaN)."""
    m = x[r, 0]
    for j in range(1, x.shape[1]):
        m = maxnum(m, x[r, j])
    return m


@numba.njit(inline="always")
def exp_row(x, r, inv_tau, out):
    """out[r, j] = e_j = exp((x[r, j] − max)/τ) (out may be x itself). Returns the max and Σ_j e_j, the
    sum of the terms as rounded into out."""
    k = x.shape[1]
    m = row_max(x, r)
    for j in range(k):
        out[r, j] = exp((x[r, j] - m) * inv_tau)
    return m, sum_any_order(out[r])


@numba.njit(inline="always")
def softmax_row(x, r, inv_tau, out):
    """out[r] = softmax(x[r]/τ) (out may be x itself). Returns the max and log Σ_j exp((x[r, j] − max)/τ)."""
    m, s = exp_row(x, r, inv_tau, out)
    for j in range(x.shape[1]):
        out[r, j] = out[r, j] / s
    return m, math.log(s)
