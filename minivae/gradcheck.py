"""Check hand-written VJPs against central finite differences in float64.

Three tiers, by size: the whole Jacobian entry by entry (small inputs and outputs);
the vector-Jacobian product Jᵀv for a random upstream gradient v entry by entry (inputs
up to ``elementwise_max`` elements); directional derivatives along random unit directions
(larger still, where one wrong entry of small weight can hide: a failure there is
definite, a pass is only probable). Upstream gradients are random, never all ones (with
all ones, softmax's true VJP is zero and a VJP returning zeros would pass).

Error model. The numeric derivative of s(x) = Σ_i f_i(x)·v_i along a step h is
(s(x + h) − s(x − h)) / (h₊ + h₋), with h₊, h₋ the steps actually taken after rounding x ± h
(so the representation error of x ± h is not an error of the quotient). It differs from the
true derivative by

    truncation   ≈ h²·|s‴|/6                 (1e-12·|s‴|/6 at h = 1e-6)
    rounding     ≤ value_rtol·S / h,  S = max Σ_i |f_i·v_i| over the two evaluations

where value_rtol bounds the relative error with which ``fn`` evaluates its outputs (a few dozen
float64 ulps by default; about 1e-7 for a function that rounds through float32). The third tier
(random directions) uses Richardson extrapolation (4·D(h′) − D(2h′))/3 with h′ = 100·h instead:
truncation O(h′⁴), rounding ≤ 1.5·value_rtol·S/h′. An entry fails when

    |analytic − numeric| > atol + rtol·|numeric| + value_rtol·S/h.

The bound value_rtol·S/h misses one case: an output near 0 computed by cancellation from larger
intermediates X (log_softmax's largest entry, z − logsumexp z ≈ 0), whose rounding is ~1e-16·X/h
absolute; atol covers X up to ~100 at h = 1e-6.

With the defaults (h = 1e-6, rtol = 1e-6, atol = 1e-8, value_rtol = 1e-14) a VJP off by a relative
1e-5 or more is caught on every gradient entry of magnitude ≳ 1e-3 whose output is O(1); truncation
(for |s‴|/|s′| ≲ 10⁶) and rounding stay below the tolerance. What it cannot see: an error smaller
than rtol relative, a 1e-5 error on entries below ~1e-3 (atol/1e-5), or an error in a
direction the random directions of the third tier happen to miss. Non-finite values (of ``fn``, of
the analytic or of the numeric gradient) are failures, and the message says which.
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
            t = Tensor(t.data.astype(numpy.float64, order="C"))  # C order: the perturbations write reshape(-1), a view
        else:
            t = Tensor(t.data.copy(order="C"))
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


def gradcheck(fn, inputs, *, eps=1e-6, atol=1e-8, rtol=1e-6, value_rtol=1e-14, n_directions=3, full_max=256,
              elementwise_max=4096, seed=0):
    """True if ``fn``'s analytic gradients match central differences, else GradcheckError.

    Args:
        fn: maps the input tensors to one output tensor.
        inputs: tensors or arrays, or one tensor or array (as torch.autograd.gradcheck). Floating ones are
            checked (a Tensor with requires_grad=False is held constant); integer ones are passed through.
        eps: finite-difference step h, finite and > 0.
        atol, rtol, value_rtol: an entry fails when |analytic − numeric| >
            atol + rtol·|numeric| + value_rtol·S/h (the module docstring derives this error model).
        n_directions: random directions for large inputs (at least 1).
        full_max: compare the full Jacobian when inputs and output both have at most this many elements.
        elementwise_max: else compare Jᵀv entry by entry up to this many input elements.
        seed: seeds the random upstream gradients and directions.
    """
    # a step h ≤ 0 divides by its length |h|: a negative one flips the numeric gradient's sign (a correct VJP
    # blamed), 0 divides by zero; a NaN tolerance fails every comparison, so every VJP would pass
    if not 0 < eps < numpy.inf:
        raise ValueError(f"gradcheck: eps must be a finite number > 0, got {eps!r}")
    for name, tol in (("atol", atol), ("rtol", rtol), ("value_rtol", value_rtol)):
        if not tol >= 0:
            raise ValueError(f"gradcheck: {name} must be >= 0, got {tol!r}")
    if isinstance(n_directions, bool) or not isinstance(n_directions, (int, numpy.integer)) or n_directions < 1:
        raise ValueError(f"gradcheck: n_directions must be an integer >= 1 (0 would check nothing), got {n_directions!r}")
    if isinstance(inputs, Tensor) or hasattr(inputs, "shape"):  # one input, not a sequence of its rows
        inputs = (inputs,)
    inputs = _prepare(inputs)
    checked = [t for t in inputs if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no floating input to check")
    with no_grad():
        out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return one Tensor, got {type(out).__name__}")
    value = to_numpy(out.data)
    if not numpy.isfinite(value).all():
        raise GradcheckError(f"gradcheck: fn's value is not finite at the input ({_first_bad(value)})")
    out_shape = value.shape
    rng = numpy.random.default_rng(seed)
    n_in = sum(t.data.size for t in checked)
    n_out = int(numpy.prod(out_shape))

    def evaluate(v):
        """s = Σ f·v and its scale S = Σ |f·v|."""
        with no_grad():
            fv = to_numpy(fn(*inputs).data) * v
        if not numpy.isfinite(fv).all():
            raise GradcheckError("gradcheck: fn's value is not finite at a point eps away from the input "
                                 f"(eps={eps}; the input is within eps of a singularity?)")
        return float(fv.sum()), float(numpy.abs(fv).sum())

    def analytic(v):
        grads = _analytic_vjp(fn, inputs, v)
        for k, a in enumerate(grads):
            if not numpy.isfinite(a).all():
                raise GradcheckError(f"gradcheck: the analytic gradient of input {_position(inputs, checked[k])} "
                                     f"is not finite ({_first_bad(a)})")
        return grads

    def difference(step):
        """Central difference along ``step(sign)`` (which perturbs the inputs and returns the step
        length actually taken), with its rounding bound value_rtol·S/h."""
        h_up = step(+1)
        up, s_up = evaluate(v_now[0])
        h_down = step(-1)
        down, s_down = evaluate(v_now[0])
        step(0)
        h = h_up + h_down
        return (up - down) / h, value_rtol * max(s_up, s_down) / (h / 2)

    v_now = [None]

    def numeric_gradient(v):
        v_now[0] = v
        grads, noise = [], []
        for t in checked:
            flat, g, r = t.data.reshape(-1), numpy.zeros(t.data.size), numpy.zeros(t.data.size)
            for j in range(t.data.size):
                old = flat[j].item()

                def step(sign, flat=flat, j=j, old=old):
                    flat[j] = old + sign * eps
                    return abs(flat[j].item() - old)
                g[j], r[j] = difference(step)
            grads.append(g.reshape(t.shape))
            noise.append(r.reshape(t.shape))
        return grads, noise

    def compare(analytic_grads, numeric, what):
        numeric, noise = numeric
        for k, (a, n, r) in enumerate(zip(analytic_grads, numeric, noise)):
            if not numpy.isfinite(n).all():
                raise GradcheckError(f"gradcheck: the numeric gradient of input {_position(inputs, checked[k])} "
                                     f"is not finite ({_first_bad(n)})")
            err = numpy.abs(a - n) - (atol + rtol * numpy.abs(n) + r)
            if err.size and err.max() > 0:
                worst = numpy.unravel_index(int(err.argmax()), err.shape)
                raise GradcheckError(
                    f"gradcheck failed for input {_position(inputs, checked[k])} ({what}) at index "
                    f"{tuple(int(i) for i in worst)}: analytic {a[worst]:.10g}, numeric {n[worst]:.10g} "
                    f"(atol={atol}, rtol={rtol}, rounding bound {r[worst]:.3g}, eps={eps})")

    if n_out == 0:  # nothing to differentiate, but the VJP must still run and give the right shapes
        analytic(numpy.zeros(out_shape))
        return True

    if n_in <= full_max and n_out <= full_max:
        # the full Jacobian: row i analytic from a one-hot upstream gradient, numeric from differences
        for i in range(n_out):
            v = numpy.zeros(n_out)
            v[i] = 1.0
            v = v.reshape(out_shape)
            row = tuple(int(j) for j in numpy.unravel_index(i, out_shape)) if out_shape else ()
            compare(analytic(v), numeric_gradient(v), f"output index {row}")
        return True

    if n_in <= elementwise_max:
        v = rng.standard_normal(out_shape)
        compare(analytic(v), numeric_gradient(v), "random upstream gradient")
        return True

    for d in range(n_directions):
        v = rng.standard_normal(out_shape)
        v_now[0] = v
        grads = analytic(v)
        # a random unit direction whose components are kept away from 0, so every entry counts
        dirs = [rng.standard_normal(t.shape) for t in checked]
        dirs = [numpy.sign(u) * numpy.maximum(numpy.abs(u), 0.1) for u in dirs]
        norm = numpy.sqrt(sum((u * u).sum() for u in dirs))
        dirs = [u / norm for u in dirs]
        originals = [t.data.copy() for t in checked]

        def central(h, dirs=dirs, originals=originals):
            def step(sign):
                for t, u, o in zip(checked, dirs, originals):
                    t.data[...] = o + sign * t.xp.asarray(u) * h
                return h
            return difference(step)
        # Richardson: (4·D(h) − D(2h))/3 cancels the h² term, so a step 100× larger is as exact and
        # its rounding bound, 1.5·value_rtol·S/h, 100× smaller (one projection sums many entries' errors)
        (d1, r1), (d2, r2) = central(100 * eps), central(200 * eps)
        numeric, noise = (4 * d1 - d2) / 3, (4 * r1 + r2) / 3
        projected = sum(float((a * u).sum()) for a, u in zip(grads, dirs))
        if not numpy.isfinite(numeric):
            raise GradcheckError(f"gradcheck: the numeric directional derivative {d} is not finite")
        if abs(projected - numeric) > atol + rtol * abs(numeric) + noise:
            if n_in <= 100_000:  # find the entry to blame
                compare(grads, numeric_gradient(v), f"random direction {d}")
            raise GradcheckError(
                f"gradcheck failed along random direction {d}: analytic {projected:.10g}, "
                f"numeric {numeric:.10g} (atol={atol}, rtol={rtol}, rounding bound {noise:.3g}, eps={eps})")
    return True


def _position(inputs, t):
    return next(i for i, x in enumerate(inputs) if x is t)


def _first_bad(a):
    a = numpy.asarray(a)
    index = tuple(int(i) for i in numpy.argwhere(~numpy.isfinite(a))[0]) if a.ndim else ()
    return f"{a[index]} at index {index}"
