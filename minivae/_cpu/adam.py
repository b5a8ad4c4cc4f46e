"""Adam over a flat parameter buffer: one pass reads p, g, m, v (and v̂max) and writes p, m, v (and v̂max)."""
import math

import numba

from minivae._cpu import kernel


@numba.njit(inline="always")
def _moments(p, g, m, v, i, b1, one_minus_b1, b2, one_minus_b2, weight_decay, decay, maximize):
    """Entry i's (decayed p, m, v), m and v written."""
    gi = -g[i] if maximize else g[i]
    pi = p[i] * decay  # AdamW's p·(1 − lr·wd) before the update; decay = 1 otherwise, which is exact
    if weight_decay != 0:
        gi = gi + weight_decay * pi  # Adam's L2 term (0 for AdamW)
    mi = b1 * m[i] + one_minus_b1 * gi
    vi = b2 * v[i] + one_minus_b2 * gi * gi
    m[i] = mi
    v[i] = vi
    return pi, mi, vi


# Two kernels, not one with an ``if amsgrad`` in its loop: that branch's store to v̂max (which may be v, when there is
# none) kept LLVM from vectorizing the loop, and plain Adam ran 8× slower (measured: float32, 2²⁰ values, 2.5 ms
# instead of 0.3 ms).
@kernel
def _step(p, g, m, v, step_size, b1, one_minus_b1, b2, one_minus_b2, eps_hat, weight_decay, decay, maximize):
    for i in numba.prange(p.size):
        pi, mi, vi = _moments(p, g, m, v, i, b1, one_minus_b1, b2, one_minus_b2, weight_decay, decay, maximize)
        p[i] = pi - step_size * mi / (math.sqrt(vi) + eps_hat)


@kernel
def _step_amsgrad(p, g, m, v, max_v, step_size, b1, one_minus_b1, b2, one_minus_b2, eps_hat, weight_decay, decay,
                  maximize):
    for i in numba.prange(p.size):
        pi, mi, vi = _moments(p, g, m, v, i, b1, one_minus_b1, b2, one_minus_b2, weight_decay, decay, maximize)
        seen = max_v[i]
        vi = vi if vi > seen or math.isnan(vi) else seen  # a NaN of either stays, as numpy.maximum's
        max_v[i] = vi
        p[i] = pi - step_size * mi / (math.sqrt(vi) + eps_hat)


def adam_step(p, g, m, v, step_size, b1, b2, eps_hat, weight_decay=0.0, decay=1.0, maximize=False, max_v=None):
    """In place on 1-D views: g ← −g under ``maximize``; p ← decay·p (decoupled weight decay, decay = 1 − lr·wd);
    g ← g + weight_decay·p (L2); m, v ← moments; v ← v̂max ← max(v̂max, v) when ``max_v`` is given (amsgrad);
    p ← p − step_size·m/(√v + eps_hat): optim.Adam's formula.

    The scalars are cast to the parameters' dtype first, as NumPy does with Python floats, so
    float32 runs in float32 (SIMD-wide) and rounds exactly as the NumPy formula in optim.Adam."""
    s = p.dtype.type
    scalars = (s(step_size), s(b1), s(1 - b1), s(b2), s(1 - b2), s(eps_hat), s(weight_decay), s(decay), bool(maximize))
    if max_v is None:
        _step(p.size, p, g, m, v, *scalars)
    else:
        _step_amsgrad(p.size, p, g, m, v, max_v, *scalars)
