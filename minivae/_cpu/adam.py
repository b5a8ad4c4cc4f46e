"""Adam over a flat parameter buffer: one pass reads p, g, m, v and writes p, m, v."""
import math

import numba

from minivae._cpu import kernel


@kernel
def _step(p, g, m, v, step_size, b1, one_minus_b1, b2, one_minus_b2, eps_hat):
    for i in numba.prange(p.size):
        gi = g[i]
        mi = b1 * m[i] + one_minus_b1 * gi
        vi = b2 * v[i] + one_minus_b2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) + eps_hat)


def adam_step(p, g, m, v, step_size, b1, b2, eps_hat):
    """In place on 1-D views: m, v ← moments; p ← p − step_size·m/(√v + eps_hat).

    The scalars are cast to the parameters' dtype first, as NumPy does with Python floats, so
    float32 runs in float32 (SIMD-wide) and rounds exactly as the NumPy formula in optim.Adam."""
    s = p.dtype.type
    _step(p.size, p, g, m, v, s(step_size), s(b1), s(1 - b1), s(b2), s(1 - b2), s(eps_hat))
