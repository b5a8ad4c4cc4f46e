"""SGD (momentum, dampening, Nesterov, weight decay) over one parameter's slice of the flat buffer, one pass."""
import numba

from minivae._cpu import kernel


@kernel
def _step(p, g, v, lr, momentum, one_minus_dampening, weight_decay, nesterov, maximize, first):
    for i in numba.prange(p.size):
        di = -g[i] if maximize else g[i]
        if weight_decay != 0:
            di = di + weight_decay * p[i]
        if momentum == 0:  # no momentum buffer: v is left as it is (torch's state has none)
            p[i] -= lr * di
        else:
            vi = di if first else momentum * v[i] + one_minus_dampening * di
            v[i] = vi
            p[i] -= lr * (di + momentum * vi if nesterov else vi)


def sgd_step(p, g, v, lr, momentum, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False, first=False):
    """In place on 1-D views, optim.SGD's formula: d ← ∓g + wd·p; with μ = 0, p ← p − lr·d (v untouched);
    else v ← d (the buffer's ``first`` step), or v ← μv + (1 − dampening)·d; p ← p − lr·(d + μv if ``nesterov`` else v).
    The scalars take the parameters' dtype, as in the NumPy formula."""
    s = p.dtype.type
    _step(p.size, p, g, v, s(lr), s(momentum), s(1 - dampening), s(weight_decay), bool(nesterov), bool(maximize),
          bool(first))
