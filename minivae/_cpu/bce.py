"""BCE-with-logits: the loss and its derivative σ(x) − t in one pass over memory."""
import math

import numba
import numpy

from minivae._cpu import kernel


@kernel
def _fwd(x, t, loss, dx):
    for i in numba.prange(x.size):
        xi, ti = x[i], t[i]
        e = math.exp(-abs(xi))                      # e^{−|x|} ≤ 1: never overflows
        loss[i] = max(xi, 0.0) - xi * ti + math.log1p(e)
        s = 1.0 / (1.0 + e) if xi >= 0 else e / (1.0 + e)
        dx[i] = s - ti


def bce_fwd(x, t):
    """ℓ = max(x, 0) − x·t + log1p(e^{−|x|}) and dℓ/dx = σ(x) − t, for equal shapes."""
    loss, dx = numpy.empty(x.shape, x.dtype), numpy.empty(x.shape, x.dtype)
    _fwd(x.size, numpy.ascontiguousarray(x).reshape(-1), numpy.ascontiguousarray(t).reshape(-1),
         loss.reshape(-1), dx.reshape(-1))
    return loss, dx
