"""SGD with momentum over one parameter's slice of the flat buffer, one pass."""
import numba

from minivae._cpu import kernel


@kernel
def _step(p, g, v, lr, momentum):
    for i in numba.prange(p.size):
        vi = momentum * v[i] + g[i]
        v[i] = vi
        p[i] -= lr * vi


def sgd_step(p, g, v, lr, momentum):
    """In place on 1-D views: v ← μv + g; p ← p − lr·v (v stays 0 and unused in effect when μ = 0).
    The scalars take the parameters' dtype, as in the NumPy formula."""
    s = p.dtype.type
    _step(p.size, p, g, v, s(lr), s(momentum))
