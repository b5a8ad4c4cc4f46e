"""BCE-with-logits: the loss and its derivative σ(x) − t in one pass: kernels/bce.cu."""
import numpy

from minivae._backend import get_array_module
from minivae._gpu import contiguous, floating, launch_elementwise


def bce_fwd(x, t, sign=1.0):
    """ℓ = max(x, 0) − x·t + log1p(e^{−|x|}) and dℓ/dx = σ(x) − t, for equal shapes, both times ``sign``
    (−1: the Bernoulli log-likelihood and its derivative)."""
    c = floating(x, "bce_with_logits")
    xp = get_array_module(x)
    loss, dx = xp.empty(x.shape, x.dtype), xp.empty(x.shape, x.dtype)
    launch_elementwise("bce.cu", f"bce_fwd<{c}>", x.size, (contiguous(x), contiguous(t, x.dtype), loss, dx, numpy.int64(x.size),
                                                         x.dtype.type(sign)))
    return loss, dx
