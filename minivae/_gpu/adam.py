"""Adam over a flat parameter buffer, every parameter in one launch: kernels/optim.cu adam_step."""
import numpy

from minivae._gpu import adam_scalars, floating, gradient_table, launch_elementwise

ONE_LAUNCH = True  # optim.Optimizer hands this module a whole flat buffer at a time


def adam_step_all(p, m, v, grads, starts, step_size, b1, b2, eps_hat):
    """In place on the flat buffers: for each parameter j with a gradient, on its slice
    starts[j]:starts[j+1], m, v ← moments and p ← p − step_size·m/(√v + eps_hat). The scalars take
    the parameters' dtype, as NumPy gives Python floats in the reference formula (optim.Adam)."""
    t = floating(p, "Adam")
    table, held = gradient_table(grads, p)
    s = p.dtype.type
    launch_elementwise("optim.cu", f"adam_step<{t}>", p.size,
                       (p, m, v, table, starts, numpy.int32(len(held)), numpy.int64(p.size),
                        s(step_size), s(b1), s(1 - b1), s(b2), s(1 - b2), s(eps_hat), adam_scalars(p)))
