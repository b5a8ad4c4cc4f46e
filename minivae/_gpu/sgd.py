"""SGD over a flat parameter buffer, every parameter in one launch: kernels/optim.cu sgd_step."""
import numpy

from minivae._gpu import floating, gradient_table, launch_elementwise

ONE_LAUNCH = True  # optim.Optimizer hands this module a whole flat buffer at a time


def sgd_step_all(p, v, grads, starts, lr, momentum, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
                 first=False):
    """In place: for each parameter j with a gradient, on its slice starts[j]:starts[j+1], optim.SGD's formula:
    d ← ∓g + weight_decay·p; with momentum μ = 0, p ← p − lr·d (v untouched); else v ← d (the buffers'
    ``first`` step), or v ← μv + (1 − dampening)·d; p ← p − lr·(d + μv if ``nesterov`` else v). The scalars take
    the parameters' dtype."""
    t = floating(p, "SGD")
    table, held = gradient_table(grads, p)
    s = p.dtype.type
    launch_elementwise("optim.cu", f"sgd_step<{t}>", p.size,
                       (p, v, table, starts, numpy.int32(len(held)), numpy.int64(p.size), s(lr), s(momentum),
                        s(1 - dampening), s(weight_decay), numpy.int32(bool(nesterov)), numpy.int32(bool(maximize)),
                        numpy.int32(bool(first))))
