"""Check hand-written VJPs against central finite differences in float64.

Three tiers, by size: the whole Jacobian entry by entry (small inputs and outputs);
the vector-Jacobian product Jᵀv for a random upstream gradient v entry by entry (inputs
up to ``elementwise_max`` elements); directional derivatives along random unit directions
(larger still, where one wrong entry of small weight can hide: a failure there is
definite, a pass is only probable). Upstream gradients are random, never all ones (with
all ones, softmax's true VJP is zero and a VJP returning zeros would pass).
"""
import warnings

import numpy

from minivae._backend import to_numpy
from minivae.engine import Tensor, no_grad


class GradcheckError(AssertionError):
    """A VJP disagrees with finite differences; the message says where and by how much."""


def _prepare(inputs):
    prepared = []
    for i, x in enumerate(inputs):
        t = x if isinstance(x, Tensor) else Tensor(x)
        checked = t.dtype.kind == "f" and (t.requires_grad or not isinstance(x, Tensor))
        if t.dtype.kind == "f" and t.dtype != numpy.float64:
            warnings.warn(f"gradcheck: input {i} is {t.dtype}; upcast to float64 "
                          "(a float32 check proves little)", stacklevel=3)
            t = Tensor(t.data.astype(numpy.float64))
        else:
            t = Tensor(t.data.copy())
        prepared.append(t.requires_grad_(checked))
    return prepared


def _analytic_vjp(fn, inputs, v):
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    if out.requires_grad:
        out.backward(out.xp.asarray(v))
    return [to_numpy(t.grad) if t.grad is not None else numpy.zeros(t.shape)
            for t in inputs if t.requires_grad]


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-5, rtol=1e-3, n_directions=3, full_max=256,
              elementwise_max=4096, seed=0):
    """True if ``fn``'s analytic gradients match central differences, else GradcheckError.

    Args:
        fn: maps the input tensors to one output tensor.
        inputs: tensors or arrays. Floating ones are checked (a Tensor with
            requires_grad=False is held constant); integer ones are passed through.
        eps: finite-difference step. atol, rtol: |analytic − numeric| ≤ atol + rtol·|numeric|.
        n_directions: random directions for large inputs.
        full_max: compare the full Jacobian when inputs and output both have at most this many elements.
        elementwise_max: else compare Jᵀv entry by entry up to this many input elements.
        seed: seeds the random upstream gradients and directions.
    """
    inputs = _prepare(inputs)
    checked = [t for t in inputs if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no floating input to check")
    with no_grad():
        out_shape = fn(*inputs).shape
    rng = numpy.random.default_rng(seed)
    n_in = sum(t.data.size for t in checked)
    n_out = int(numpy.prod(out_shape))

    def evaluate(v):
        with no_grad():
            return float((to_numpy(fn(*inputs).data) * v).sum())

    def numeric_gradient(v):
        grads = []
        for t in checked:
            flat, g = t.data.reshape(-1), numpy.zeros(t.data.size)
            for j in range(t.data.size):
                old = flat[j].item()
                flat[j] = old + eps
                up = evaluate(v)
                flat[j] = old - eps
                down = evaluate(v)
                flat[j] = old
                g[j] = (up - down) / (2 * eps)
            grads.append(g.reshape(t.shape))
        return grads

    def compare(analytic, numeric, what):
        for k, (a, n) in enumerate(zip(analytic, numeric)):
            err = numpy.abs(a - n) - (atol + rtol * numpy.abs(n))
            if err.size and err.max() > 0:
                worst = numpy.unravel_index(int(err.argmax()), err.shape)
                position = next(i for i, t in enumerate(inputs) if t is checked[k])
                raise GradcheckError(
                    f"gradcheck failed for input {position} ({what}) at index "
                    f"{tuple(int(i) for i in worst)}: analytic {a[worst]:.10g}, numeric {n[worst]:.10g} "
                    f"(atol={atol}, rtol={rtol}, eps={eps})")

    if n_in <= full_max and n_out <= full_max:
        # the full Jacobian: row i analytic from a one-hot upstream gradient, numeric from differences
        for i in range(n_out):
            v = numpy.zeros(n_out)
            v[i] = 1.0
            v = v.reshape(out_shape)
            row = tuple(int(j) for j in numpy.unravel_index(i, out_shape)) if out_shape else ()
            compare(_analytic_vjp(fn, inputs, v), numeric_gradient(v), f"output index {row}")
        return True

    if n_in <= elementwise_max:
        v = rng.standard_normal(out_shape)
        compare(_analytic_vjp(fn, inputs, v), numeric_gradient(v), "random upstream gradient")
        return True

    for d in range(n_directions):
        v = rng.standard_normal(out_shape)
        analytic = _analytic_vjp(fn, inputs, v)
        # a random unit direction whose components are kept away from 0, so every entry counts
        dirs = [rng.standard_normal(t.shape) for t in checked]
        dirs = [numpy.sign(u) * numpy.maximum(numpy.abs(u), 0.1) for u in dirs]
        norm = numpy.sqrt(sum((u * u).sum() for u in dirs))
        dirs = [u / norm for u in dirs]
        originals = [t.data.copy() for t in checked]
        for t, u in zip(checked, dirs):
            t.data += t.xp.asarray(u) * eps
        up = evaluate(v)
        for t, u, o in zip(checked, dirs, originals):
            t.data[...] = o - t.xp.asarray(u) * eps
        down = evaluate(v)
        for t, o in zip(checked, originals):
            t.data[...] = o
        numeric = (up - down) / (2 * eps)
        projected = sum(float((a * u).sum()) for a, u in zip(analytic, dirs))
        if abs(projected - numeric) > atol + rtol * abs(numeric):
            if n_in <= 100_000:  # find the entry to blame
                compare(analytic, numeric_gradient(v), f"random direction {d}")
            raise GradcheckError(
                f"gradcheck failed along random direction {d}: analytic {projected:.10g}, "
                f"numeric {numeric:.10g} (atol={atol}, rtol={rtol}, eps={eps})")
    return True
