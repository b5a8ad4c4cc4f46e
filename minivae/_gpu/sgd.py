"""SGD with momentum over a flat parameter buffer, every parameter in one launch: kernels/optim.cu sgd_step."""
import numpy

from minivae._gpu import floating, gradient_table, launch_elementwise

ONE_LAUNCH = True  # optim.Optimizer hands this module a whole flat buffer at a time


def sgd_step_all(p, v, grads, starts, lr, momentum):
    """In place: for each parameter j with a gradient, on its slice starts[j]:starts[j+1],
    v ← μv + g; p ← p − lr·v. The scalars take the parameters' dtype."""
    t = floating(p, "SGD")
    table, held = gradient_table(grads, p)
    s = p.dtype.type
    launch_elementwise("optim.cu", f"sgd_step<{t}>", p.size,
                       (p, v, table, starts, numpy.int32(len(held)), numpy.int64(p.size), s(lr), s(momentum)))
