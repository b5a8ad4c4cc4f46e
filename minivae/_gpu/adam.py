"""Adam over a flat parameter buffer, every parameter in one launch: kernels/optim.cu adam_step."""
import numpy

from minivae._gpu import adam_scalars, floating, gradient_table, launch_elementwise

ONE_LAUNCH = True  # optim.Optimizer hands this module a whole flat buffer at a time


def adam_step_all(p, m, v, grads, starts, step_size, b1, b2, eps_hat, weight_decay=0.0, decay=1.0, maximize=False,
                  max_v=None):
    """In place on the flat buffers: for each parameter j with a gradient, on its slice starts[j]:starts[j+1],
    optim.Adam's formula: g ← −g under ``maximize``; p ← decay·p (decoupled decay, 1 − lr·wd); g ← g +
    weight_decay·p (L2); m, v ← moments; v ← v̂max ← max(v̂max, v) when ``max_v`` is given (amsgrad); p ← p −
    step_size·m/(√v + eps_hat). The scalars take the parameters' dtype, as NumPy gives Python floats in the
    reference formula. Inside a CUDA graph, step_size, eps_hat and decay are read from memory (adam_scalars)."""
    t = floating(p, "Adam")
    table, held = gradient_table(grads, p)
    s = p.dtype.type
    launch_elementwise("optim.cu", f"adam_step<{t}>", p.size,
                       (p, m, v, v if max_v is None else max_v, table, starts, numpy.int32(len(held)),
                        numpy.int64(p.size), s(step_size), s(b1), s(1 - b1), s(b2), s(1 - b2), s(eps_hat),
                        s(weight_decay), s(decay), numpy.int32(bool(maximize)), numpy.int32(max_v is not None),
                        adam_scalars(p)))
