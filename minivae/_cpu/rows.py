"""Row helpers shared by the softmax-shaped kernels (inlined into each)."""
import math

import numba


@numba.njit(inline="always")
def softmax_row(x, r, inv_tau, out):
    """out[r] = softmax(x[r]/τ), shifted by the row max (out may be x itself).
    Returns the max and log Σ_j exp((x[r, j] − max)/τ)."""
    k = x.shape[1]
    m = x[r, 0]
    for j in range(1, k):
        m = max(m, x[r, j])
    s = 0.0
    for j in range(k):
        e = math.exp((x[r, j] - m) * inv_tau)
        out[r, j] = e
        s += e
    for j in range(k):
        out[r, j] = out[r, j] / s
    return m, math.log(s)
