"""Adam over a flat parameter buffer: one pass reads p, g, m, v and writes p, m, v."""
import math

import numba

from minivae._cpu import kernel


@kernel
def _step(p, g, m, v, step_size, b1, b2, eps_hat):
    for i in numba.prange(p.size):
        gi = g[i]
        mi = b1 * m[i] + (1.0 - b1) * gi
        vi = b2 * v[i] + (1.0 - b2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * mi / (math.sqrt(vi) + eps_hat)


def adam_step(p, g, m, v, step_size, b1, b2, eps_hat):
    """In place on 1-D views: m, v ← moments; p ← p − step_size·m/(√v + eps_hat)."""
    _step(p.size, p, g, m, v, step_size, b1, b2, eps_hat)
