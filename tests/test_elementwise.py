"""minivae.ops.elementwise: the trigonometric and hyperbolic functions and their inverses, atan2, hypot, logaddexp,
xlogy, log2, log10, exp2, rsqrt, reciprocal, square, logit, and the activations (log_sigmoid, softsign, hardtanh,
relu6, selu, celu, mish, hardsigmoid, hardswish, softmin), with their Tensor methods, F.* and nn modules.

Without torch (CI): values and derivatives against formulas written out with ``math`` in float64, the VJPs against
central differences of the forward, identities (sin(asin x) = x, …), and the edge values (±1e4, the ends of the
domains, the kinks). With torch: values and gradients against torch's in float32 and float64."""
import math

import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import nn, ops

SELU_A, SELU_L = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def sigmoid(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def softplus(x):
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def mish(x):
    t = math.tanh(softplus(x))
    return x * t, t + x * sigmoid(x) * (1 - t * t)


# name: (minivae function, value and derivative written out with math, points off the kinks)
UNARY = {
    "tan": (ops.tan, lambda x: (math.tan(x), 1 / math.cos(x) ** 2), [-1.4, -0.7, 0.0, 0.3, 1.2]),
    "asin": (ops.asin, lambda x: (math.asin(x), 1 / math.sqrt(1 - x * x)), [-0.99, -0.5, 0.0, 0.3, 0.9]),
    "acos": (ops.acos, lambda x: (math.acos(x), -1 / math.sqrt(1 - x * x)), [-0.99, -0.5, 0.0, 0.3, 0.9]),
    "atan": (ops.atan, lambda x: (math.atan(x), 1 / (1 + x * x)), [-50.0, -1.0, 0.0, 0.5, 30.0]),
    "sinh": (ops.sinh, lambda x: (math.sinh(x), math.cosh(x)), [-5.0, -1.0, 0.0, 0.5, 3.0]),
    "cosh": (ops.cosh, lambda x: (math.cosh(x), math.sinh(x)), [-5.0, -1.0, 0.0, 0.5, 3.0]),
    "asinh": (ops.asinh, lambda x: (math.asinh(x), 1 / math.sqrt(x * x + 1)), [-100.0, -1.0, 0.0, 0.5, 40.0]),
    "acosh": (ops.acosh, lambda x: (math.acosh(x), 1 / math.sqrt(x * x - 1)), [1.01, 1.5, 3.0, 100.0]),
    "atanh": (ops.atanh, lambda x: (math.atanh(x), 1 / (1 - x * x)), [-0.99, -0.5, 0.0, 0.3, 0.9]),
    "log2": (ops.log2, lambda x: (math.log2(x), 1 / (x * math.log(2))), [0.01, 0.5, 1.0, 8.0, 1000.0]),
    "log10": (ops.log10, lambda x: (math.log10(x), 1 / (x * math.log(10))), [0.01, 0.5, 1.0, 8.0, 1000.0]),
    "exp2": (ops.exp2, lambda x: (2.0 ** x, 2.0 ** x * math.log(2)), [-10.0, -1.0, 0.0, 0.5, 10.0]),
    "rsqrt": (ops.rsqrt, lambda x: (1 / math.sqrt(x), -0.5 / (x * math.sqrt(x))), [0.01, 0.5, 1.0, 4.0, 1000.0]),
    "reciprocal": (ops.reciprocal, lambda x: (1 / x, -1 / (x * x)), [-3.0, -0.1, 0.2, 5.0]),
    "square": (ops.square, lambda x: (x * x, 2 * x), [-3.0, -0.1, 0.0, 0.2, 5.0]),
    "logit": (ops.logit, lambda x: (math.log(x / (1 - x)), 1 / (x * (1 - x))), [0.01, 0.3, 0.5, 0.8, 0.99]),
    "logit_eps": (lambda t: ops.logit(t, 0.2), lambda x: (math.log(min(max(x, 0.2), 0.8) / (1 - min(max(x, 0.2), 0.8))),
                                                           1 / (x * (1 - x)) if 0.2 <= x <= 0.8 else 0.0),
                  [0.01, 0.19, 0.3, 0.5, 0.79, 0.81, 0.99]),
    "log_sigmoid": (F.logsigmoid, lambda x: (-softplus(-x), sigmoid(-x)), [-30.0, -2.0, 0.0, 1.5, 30.0]),
    "softsign": (F.softsign, lambda x: (x / (1 + abs(x)), 1 / (1 + abs(x)) ** 2), [-5.0, -0.5, 0.0, 0.5, 5.0]),
    "hardtanh": (F.hardtanh, lambda x: (min(max(x, -1.0), 1.0), 1.0 if -1 < x < 1 else 0.0),
                 [-3.0, -0.99, 0.0, 0.5, 1.01, 4.0]),
    "hardtanh_2_3": (lambda t: F.hardtanh(t, -2.0, 3.0), lambda x: (min(max(x, -2.0), 3.0), 1.0 if -2 < x < 3 else 0.0),
                     [-3.0, -1.99, 0.0, 2.5, 3.01]),
    "relu6": (F.relu6, lambda x: (min(max(x, 0.0), 6.0), 1.0 if 0 < x < 6 else 0.0), [-3.0, 0.01, 3.0, 5.99, 7.0]),
    "selu": (F.selu, lambda x: (SELU_L * (x if x > 0 else SELU_A * math.expm1(x)),
                                SELU_L * (1.0 if x > 0 else SELU_A * math.exp(x))), [-20.0, -1.0, -1e-3, 0.5, 3.0]),
    "celu": (F.celu, lambda x: (x if x > 0 else math.expm1(x), 1.0 if x > 0 else math.exp(x)), [-20.0, -1.0, 0.5, 3.0]),
    "celu_2": (lambda t: F.celu(t, 2.0), lambda x: (x if x > 0 else 2 * math.expm1(x / 2), 1.0 if x > 0 else math.exp(x / 2)),
               [-20.0, -1.0, -1e-3, 0.5, 3.0]),
    "mish": (F.mish, mish, [-30.0, -2.0, 0.0, 0.7, 30.0]),
    "hardsigmoid": (F.hardsigmoid, lambda x: (min(max(x + 3, 0.0), 6.0) / 6, 1 / 6 if -3 < x < 3 else 0.0),
                    [-4.0, -2.9, 0.0, 2.9, 4.0]),
    "hardswish": (F.hardswish, lambda x: (x * min(max(x + 3, 0.0), 6.0) / 6,
                                          0.0 if x <= -3 else (x / 3 + 0.5 if x < 3 else 1.0)), [-4.0, -2.9, 0.0, 2.9, 4.0]),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_values_and_derivatives_are_the_formulas_written_out(name):
    """float64, a random ḡ: y = f(x) and x̄ = ḡ·f'(x) of the formula with math.*, to a few ulps."""
    fn, reference, points = UNARY[name]
    x = mv.tensor(np.array(points), requires_grad=True)
    g = np.random.default_rng(1).normal(size=len(points))
    y = fn(x)
    y.backward(mv.tensor(g))
    want = np.array([reference(p) for p in points])
    assert y.dtype == np.float64 and x.grad.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), want[:, 0], rtol=4e-15, atol=1e-300)
    np.testing.assert_allclose(x.grad, g * want[:, 1], rtol=4e-14, atol=1e-300)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_vjps_are_the_central_differences_of_the_forward(name):
    """x̄ against (f(x + h) − f(x − h))/2h of minivae's own forward in float64 (h = 10⁻⁶): the VJP is the derivative
    of the function computed, whatever formula either uses."""
    fn, _, points = UNARY[name]
    x = np.array(points)
    t = mv.tensor(x, requires_grad=True)
    fn(t).sum().backward()
    h = 1e-6
    numeric = (fn(mv.tensor(x + h)).numpy() - fn(mv.tensor(x - h)).numpy()) / (2 * h)
    np.testing.assert_allclose(t.grad, numeric, rtol=1e-6, atol=1e-8)


def test_inverse_functions_invert():
    rng = np.random.default_rng(2)
    u, v = rng.uniform(-0.99, 0.99, 50), rng.uniform(-3, 3, 50)
    w = mv.tensor(rng.uniform(1.01, 50, 50))
    for f, f_inverse, x in [(ops.sin, ops.asin, u), (ops.cos, ops.acos, u), (ops.tan, ops.atan, v),
                            (ops.sinh, ops.asinh, v), (ops.tanh, ops.atanh, u), (ops.log2, ops.exp2, v),
                            (ops.logit, ops.sigmoid, v)]:
        np.testing.assert_allclose(f(f_inverse(mv.tensor(x))).numpy(), x, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(ops.cosh(ops.acosh(w)).numpy(), w.numpy(), rtol=1e-14)
    np.testing.assert_allclose((10 ** ops.log10(w)).numpy(), w.numpy(), rtol=1e-14)
    np.testing.assert_allclose((ops.rsqrt(w) ** 2 * w).numpy(), 1, rtol=1e-15)
    np.testing.assert_allclose(ops.reciprocal(ops.reciprocal(w)).numpy(), w.numpy(), rtol=1e-15)


# ---- the binary ops -------------------------------------------------------------------------------------------------
QUADRANTS = [(1.0, 2.0), (2.0, -1.0), (-1.0, -3.0), (-2.0, 0.5), (0.0, 2.0), (3.0, 0.0), (0.0, -1.0), (-3.0, 0.0),
             (1e-8, -1.0), (-1e-8, -1.0)]  # (y, x): every quadrant, the axes, both sides of the cut along x < 0


def _binary(fn, pairs, dtype=np.float64):
    y = mv.tensor(np.array([p[0] for p in pairs], dtype), requires_grad=True)
    x = mv.tensor(np.array([p[1] for p in pairs], dtype), requires_grad=True)
    z = fn(y, x)
    z.backward(mv.tensor(np.ones(z.shape, dtype)))
    return z.numpy(), y.grad, x.grad


def test_atan2_in_every_quadrant_is_maths():
    """The angle of (x, y) in (−π, π] (math.atan2, the quadrant from both signs), ∂/∂y = x/r², ∂/∂x = −y/r²."""
    z, gy, gx = _binary(ops.atan2, QUADRANTS)
    np.testing.assert_allclose(z, [math.atan2(y, x) for y, x in QUADRANTS], rtol=4e-16, atol=0)
    np.testing.assert_allclose(gy, [x / (x * x + y * y) for y, x in QUADRANTS], rtol=4e-16, atol=0)
    np.testing.assert_allclose(gx, [-y / (x * x + y * y) for y, x in QUADRANTS], rtol=4e-16, atol=0)
    assert z[-2] > 3.14 and z[-1] < -3.14  # either side of the branch cut


def test_atan2_at_the_origin_and_at_infinity():
    """(0, 0): 0 (π at x = −0), gradients 0 and 0 (torch's); the method, the NumPy alias; no overflow of x² + y²."""
    z, gy, gx = _binary(ops.atan2, [(0.0, 0.0), (0.0, -0.0), (1.0, np.inf), (1e200, 1e200), (1e-200, 1e-200)])
    np.testing.assert_array_equal(z[:3], [0.0, math.pi, 0.0])
    np.testing.assert_array_equal(gy[:3], [0, 0, 0])
    np.testing.assert_array_equal(gx[:3], [0, 0, 0])
    np.testing.assert_allclose(gy[3:], [0.5e-200, 0.5e200], rtol=1e-15)
    np.testing.assert_allclose(gx[3:], [-0.5e-200, -0.5e200], rtol=1e-15)
    a, b = mv.tensor(np.array([1.0, -2.0])), mv.tensor(np.array([-3.0, 0.5]))
    np.testing.assert_array_equal(a.atan2(b).numpy(), np.arctan2([1.0, -2.0], [-3.0, 0.5]))
    np.testing.assert_array_equal(a.arctan2(b).numpy(), ops.arctan2(a, b).numpy())


def test_hypot():
    pairs = [(3.0, 4.0), (-1e200, 1e200), (1e-200, -2e-200), (0.0, 5.0), (0.0, 0.0)]
    z, gx, gy = _binary(ops.hypot, pairs)
    np.testing.assert_allclose(z, [math.hypot(a, b) for a, b in pairs], rtol=4e-16)
    r = [math.hypot(a, b) or 1 for a, b in pairs]
    np.testing.assert_allclose(gx, [a / q for (a, _), q in zip(pairs, r)], rtol=4e-16)
    np.testing.assert_allclose(gy, [b / q for (_, b), q in zip(pairs, r)], rtol=4e-16)
    assert gx[-1] == gy[-1] == 0  # the 2-norm's subgradient at (0, 0) (torch: NaN)


def test_logaddexp_is_stable_and_its_gradient_the_softmax_of_the_two():
    pairs = [(1.0, 2.0), (1e4, -1e4), (-1e4, -1e4), (-1e4, 1e4), (700.0, 710.0), (-745.0, -800.0), (3.0, 3.0)]
    z, gx, gy = _binary(ops.logaddexp, pairs)
    want = [max(a, b) + math.log1p(math.exp(-abs(a - b))) for a, b in pairs]
    np.testing.assert_allclose(z, want, rtol=4e-16)
    np.testing.assert_allclose(gx, [sigmoid(a - b) for a, b in pairs], rtol=4e-16, atol=1e-300)
    np.testing.assert_allclose(gx + gy, 1, rtol=1e-15)
    for dtype in (np.float16, np.float32):  # ±1e4: finite, the gradients 1 and 0
        z, gx, gy = _binary(ops.logaddexp, [(1e4, -1e4), (-1e4, -1e4)], dtype)
        np.testing.assert_allclose(z, [1e4, -1e4 + math.log(2)], rtol=1e-3)
        np.testing.assert_array_equal(gx, [1, 0.5])
        np.testing.assert_array_equal(gy, [0, 0.5])
    z, gx, gy = _binary(ops.logaddexp, [(-np.inf, -np.inf), (np.inf, np.inf), (-np.inf, 1.0)])
    np.testing.assert_array_equal(z, [-np.inf, np.inf, 1.0])
    np.testing.assert_array_equal(gx, [0.5, 0.5, 0.0])  # (torch: NaN at two equal infinities)
    np.testing.assert_array_equal(gy, [0.5, 0.5, 1.0])


def test_xlogy_at_zero_and_elsewhere():
    pairs = [(2.0, 3.0), (-1.5, 0.5), (0.0, 0.0), (0.0, 2.0), (0.0, -1.0), (1.0, 0.0), (0.0, np.inf)]
    z, gx, gy = _binary(ops.xlogy, pairs)
    np.testing.assert_array_equal(z, [2 * math.log(3), -1.5 * math.log(0.5), 0, 0, 0, -np.inf, 0])
    # x̄ = log y (log 2 at x = 0, torch's), 0 where x = 0 and y ≤ 0; ȳ = x/y, 0 on the line x = 0 (torch: NaN at (0, 0))
    np.testing.assert_array_equal(gx, [math.log(3), math.log(0.5), 0, math.log(2), 0, -np.inf, np.inf])
    np.testing.assert_array_equal(gy, [2 / 3, -3.0, 0, 0, 0, np.inf, 0])
    assert np.isnan(ops.xlogy(mv.tensor(0.0), mv.tensor(np.nan)).item())


# ---- edges: ±1e4 and the ends of the domains ----------------------------------------------------------------------
FINITE_AT_1E4 = {
    "atan": ops.atan, "asinh": ops.asinh, "tan": ops.tan, "log_sigmoid": ops.log_sigmoid, "softsign": ops.softsign,
    "mish": ops.mish, "hardtanh": ops.hardtanh, "relu6": ops.relu6, "selu": ops.selu, "celu": ops.celu,
    "hardsigmoid": ops.hardsigmoid, "hardswish": ops.hardswish, "reciprocal": ops.reciprocal,
    "atan2": lambda t: ops.atan2(t, -t), "hypot": lambda t: ops.hypot(t, t), "logaddexp": lambda t: ops.logaddexp(t, -t),
    "xlogy": lambda t: ops.xlogy(t, 2.0),
}


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(FINITE_AT_1E4))
def test_finite_at_plus_and_minus_1e4(name, dtype):
    x = mv.tensor(np.array([-1e4, 1e4], dtype), requires_grad=True)
    y = FINITE_AT_1E4[name](x)
    y.backward(mv.tensor(np.ones(2, dtype)))
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad).all(), (y.numpy(), x.grad)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_the_activations_at_1e4_are_their_limits(dtype):
    """At −1e4 and 1e4: log_sigmoid −1e4 and 0 (gradients 1, 0); mish −0 and 1e4 (0, 1); softsign ∓10⁴/(1 + 10⁴) (its
    gradient 10⁻⁸, 0 in float16)."""
    for fn, values, grads in [(ops.log_sigmoid, [-1e4, 0], [1, 0]), (ops.mish, [0, 1e4], [0, 1]),
                              (ops.softsign, [-1e4 / (1 + 1e4), 1e4 / (1 + 1e4)], [1 / (1 + 1e4) ** 2] * 2)]:
        x = mv.tensor(np.array([-1e4, 1e4], dtype), requires_grad=True)
        y = fn(x)
        y.sum().backward()
        tol = 1e-3 if dtype == np.float16 else 1e-6
        np.testing.assert_allclose(y.numpy(), values, rtol=tol, atol=tol)
        np.testing.assert_allclose(x.grad, grads, rtol=tol, atol=6e-8 if dtype == np.float16 else 0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_asinh_and_acosh_gradients_never_form_x_squared(dtype):
    """1/√(x² ± 1) where x² overflows (1e4 in float16, 1e30 in float32, 1e200 in float64) is 1/x, not 0."""
    big = {np.float16: 1e4, np.float32: 1e30, np.float64: 1e200}[dtype]
    for fn in (ops.asinh, ops.acosh):
        x = mv.tensor(np.array([big], dtype), requires_grad=True)
        y = fn(x)
        y.sum().backward()
        np.testing.assert_allclose(y.numpy(), [math.log(2 * big)], rtol=1e-3)
        np.testing.assert_allclose(x.grad, [1 / np.float64(dtype(big))], rtol=1e-3)


def test_sinh_cosh_exp2_overflow_to_infinity_as_torch():
    for dtype in (np.float16, np.float32, np.float64):
        for fn, values, grads in [(ops.sinh, [-np.inf, np.inf], [np.inf, np.inf]),
                                  (ops.cosh, [np.inf, np.inf], [-np.inf, np.inf]), (ops.exp2, [0, np.inf], [0, np.inf])]:
            x = mv.tensor(np.array([-1e4, 1e4], dtype), requires_grad=True)
            y = fn(x)
            y.backward(mv.tensor(np.ones(2, dtype)))
            np.testing.assert_array_equal(y.numpy(), values)
            np.testing.assert_array_equal(x.grad, grads)


def _value_and_grad(fn, x):
    t = mv.tensor(np.array(x, np.float64), requires_grad=True)
    y = fn(t)
    y.backward(mv.tensor(np.ones(y.shape)))  # (not y.sum(): a sum of ∞ and −∞ warns)
    return y.numpy(), t.grad


EDGES = [  # (name, fn, x, values, gradients): torch's at the ends of the domains
    ("asin", ops.asin, [-1.0, 1.0, 1.5], [-math.pi / 2, math.pi / 2, np.nan], [np.inf, np.inf, np.nan]),
    ("acos", ops.acos, [-1.0, 1.0, -1.5], [math.pi, 0.0, np.nan], [-np.inf, -np.inf, np.nan]),
    ("acosh", ops.acosh, [1.0, 0.5], [0.0, np.nan], [np.inf, np.nan]),
    ("atanh", ops.atanh, [-1.0, 1.0, 1.5], [-np.inf, np.inf, np.nan], [np.inf, np.inf, -0.8]),  # (1/(1 − x²), torch's)
    ("rsqrt", ops.rsqrt, [0.0, -1.0], [np.inf, np.nan], [-np.inf, np.nan]),
    ("reciprocal", ops.reciprocal, [0.0], [np.inf], [-np.inf]),
    ("log2", ops.log2, [0.0, -1.0], [-np.inf, np.nan], [np.inf, -1 / math.log(2)]),  # (1/(x log 2), torch's)
    ("log10", ops.log10, [0.0], [-np.inf], [np.inf]),
    ("logit", ops.logit, [0.0, 1.0, 1.5, -0.5], [-np.inf, np.inf, np.nan, np.nan], [np.inf, np.inf, np.nan, np.nan]),
    # the clamp holds z constant outside [ε, 1 − ε] (gradient 0) and is inside at its bounds
    ("logit_eps", lambda t: ops.logit(t, 0.1), [0.0, 0.05, 0.1, 0.9, 0.95, 1.0, 1.5],
     [math.log(1 / 9)] * 3 + [math.log(9)] * 4, [0, 0, 1 / 0.09, 1 / 0.09, 0, 0, 0]),
    # the kinks: torch's gradients
    ("hardtanh", ops.hardtanh, [-1.0, 1.0], [-1.0, 1.0], [0.0, 0.0]),
    ("relu6", ops.relu6, [0.0, 6.0], [0.0, 6.0], [0.0, 0.0]),
    ("hardsigmoid", ops.hardsigmoid, [-3.0, 3.0], [0.0, 1.0], [0.0, 0.0]),
    ("hardswish", ops.hardswish, [-3.0, -2.5, 2.5, 3.0], [0.0, -2.5 / 12, 2.5 * 5.5 / 6, 3.0], [0.0, -1 / 3, 4 / 3, 1.0]),
    ("selu", ops.selu, [0.0], [0.0], [SELU_A * SELU_L]),
    ("celu", lambda t: ops.celu(t, 2.0), [0.0], [0.0], [1.0]),
    ("softsign", ops.softsign, [0.0], [0.0], [1.0]),
]


@pytest.mark.parametrize("name, fn, x, values, grads", EDGES, ids=[e[0] for e in EDGES])
def test_values_and_gradients_at_the_edges_are_torchs(name, fn, x, values, grads, recwarn):
    y, g = _value_and_grad(fn, x)
    np.testing.assert_allclose(y, values, rtol=1e-15, atol=0)
    np.testing.assert_allclose(g, grads, rtol=1e-14, atol=0)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]  # (torch warns of none)


def test_bad_arguments_are_refused():
    x = mv.tensor(np.array([0.5]))
    with pytest.raises(ValueError, match="min_val .* cannot be greater than max_val"):
        F.hardtanh(x, 1.0, -1.0)
    with pytest.raises(ValueError, match="min_val .* cannot be greater than max_val"):
        nn.Hardtanh(2, 1)
    with pytest.raises(ValueError, match="celu: alpha must not be 0"):
        F.celu(x, 0.0)
    with pytest.raises(TypeError, match="logit: eps must be a real number"):
        ops.logit(x, "0.1")


def test_dtypes_integers_are_float32_square_keeps_them():
    i = mv.tensor(np.array([0, 1, 2]))
    for fn in (ops.tan, ops.atan, ops.asinh, ops.log2, ops.exp2, ops.rsqrt, ops.reciprocal, ops.logit, ops.mish,
               ops.log_sigmoid, ops.softsign, lambda t: ops.atan2(t, t), lambda t: ops.xlogy(t, t)):
        assert fn(i).dtype == np.float32
    assert ops.square(i).dtype == np.int64 and ops.square(mv.tensor(np.array([True]))).dtype == np.int64
    np.testing.assert_array_equal(ops.square(i).numpy(), [0, 1, 4])
    assert ops.hardtanh(i).dtype == np.int64 and ops.relu6(mv.tensor(np.array([9], np.uint8))).item() == 6


# ---- F.softmin and the nn modules -----------------------------------------------------------------------------------
def test_softmin_is_the_softmax_of_minus_x():
    x = np.random.default_rng(3).normal(size=(3, 4))
    e = np.exp(-x)
    np.testing.assert_allclose(F.softmin(mv.tensor(x)).numpy(), e / e.sum(-1, keepdims=True), rtol=1e-15)
    np.testing.assert_allclose(F.softmin(mv.tensor(x), dim=0).numpy(), e / e.sum(0, keepdims=True), rtol=1e-15)
    np.testing.assert_allclose(nn.Softmin(dim=1)(mv.tensor(x)).numpy(), e / e.sum(1, keepdims=True), rtol=1e-15)


MODULES = [  # (module, its repr, the F function it is)
    (nn.LogSigmoid(), "LogSigmoid()", F.logsigmoid), (nn.Softsign(), "Softsign()", F.softsign),
    (nn.Hardtanh(), "Hardtanh(min_val=-1.0, max_val=1.0)", F.hardtanh),
    (nn.Hardtanh(-2, 3, True), "Hardtanh(min_val=-2, max_val=3, inplace=True)", lambda t: F.hardtanh(t, -2, 3)),
    (nn.ReLU6(), "ReLU6()", F.relu6), (nn.ReLU6(inplace=True), "ReLU6(inplace=True)", F.relu6),
    (nn.SELU(), "SELU()", F.selu), (nn.CELU(), "CELU(alpha=1.0)", F.celu),
    (nn.CELU(2.0, True), "CELU(alpha=2.0, inplace=True)", lambda t: F.celu(t, 2.0)), (nn.Mish(), "Mish()", F.mish),
    (nn.Hardsigmoid(), "Hardsigmoid()", F.hardsigmoid), (nn.Hardswish(), "Hardswish()", F.hardswish),
    (nn.Softmin(dim=-1), "Softmin(dim=-1)", F.softmin),
]


@pytest.mark.parametrize("module, text, fn", MODULES, ids=[m[1] for m in MODULES])
def test_modules_are_their_functions_with_torchs_reprs(module, text, fn):
    x = mv.tensor(np.random.default_rng(4).uniform(-8, 8, (3, 5)))
    assert repr(module) == text
    np.testing.assert_array_equal(module(x).numpy(), fn(x).numpy())
    assert list(module.parameters()) == []


# ---- against torch -------------------------------------------------------------------------------------------------
def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def _torch_unary():
    torch = _torch()
    TF = torch.nn.functional

    def torch_hardsigmoid(t):
        """F.hardsigmoid with the gradient 1/6 in t's dtype (torch's float64 one is float32's 1/6, 3·10⁻⁸ off)."""
        return TF.hardsigmoid(t).detach() + (t - t.detach()) * ((t > -3) & (t < 3)).to(t.dtype) / 6

    return {  # name: (minivae function, torch function, domain)
        **{n: (getattr(ops, n), getattr(torch, n), d) for n, d in [
            ("tan", (-1.4, 1.4)), ("asin", (-0.99, 0.99)), ("acos", (-0.99, 0.99)), ("atan", (-20, 20)),
            ("sinh", (-5, 5)), ("cosh", (-5, 5)), ("asinh", (-20, 20)), ("acosh", (1.01, 20)), ("atanh", (-0.99, 0.99)),
            ("log2", (0.01, 20)), ("log10", (0.01, 20)), ("exp2", (-10, 10)), ("rsqrt", (0.01, 20)),
            ("reciprocal", (0.1, 5)), ("square", (-5, 5)), ("logit", (0.01, 0.99))]},
        "logit_eps": (lambda t: ops.logit(t, 0.2), lambda t: torch.logit(t, 0.2), (0.01, 0.99)),
        "log_sigmoid": (F.logsigmoid, TF.logsigmoid, (-30, 30)), "softsign": (F.softsign, TF.softsign, (-8, 8)),
        "hardtanh": (lambda t: F.hardtanh(t, -2, 3), lambda t: TF.hardtanh(t, -2, 3), (-5, 5)),
        "relu6": (F.relu6, TF.relu6, (-3, 9)), "selu": (F.selu, TF.selu, (-8, 8)),
        "celu": (lambda t: F.celu(t, 1.5), lambda t: TF.celu(t, 1.5), (-8, 8)), "mish": (F.mish, TF.mish, (-20, 20)),
        "hardsigmoid": (F.hardsigmoid, torch_hardsigmoid, (-5, 5)), "hardswish": (F.hardswish, TF.hardswish, (-5, 5)),
        "softmin": (lambda t: F.softmin(t, dim=1), lambda t: TF.softmin(t, dim=1), (-5, 5)),
    }


TORCH_UNARY = ["tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "log2", "log10", "exp2", "rsqrt",
               "reciprocal", "square", "logit", "logit_eps", "log_sigmoid", "softsign", "hardtanh", "relu6", "selu",
               "celu", "mish", "hardsigmoid", "hardswish", "softmin"]
TOL = {np.float32: 4e-6, np.float64: 1e-13}  # a few ulps (tests/test_op_dtypes.py's float32 tolerance)


def _against_torch(torch, ours, theirs, arrays, dtype, what):
    ts = [mv.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    tt = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    y, yt = ours(*ts), theirs(*tt)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), rtol=TOL[dtype], atol=1e-30, err_msg=what)
    g = np.random.default_rng(6).normal(size=y.shape).astype(dtype)
    y.backward(mv.tensor(g))
    yt.backward(torch.tensor(g))
    for k, (a, b) in enumerate(zip(ts, tt)):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=TOL[dtype], atol=TOL[dtype] * np.abs(g).max(),
                                   err_msg=f"{what}: gradient {k}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", TORCH_UNARY)
def test_unary_ops_match_torch(name, dtype):
    torch = _torch()
    ours, theirs, (low, high) = _torch_unary()[name]
    x = np.random.default_rng(5).uniform(low, high, (4, 6))
    _against_torch(torch, ours, theirs, [x], dtype, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["atan2", "hypot", "logaddexp", "xlogy"])
def test_binary_ops_match_torch_with_broadcasting(name, dtype):
    torch = _torch()
    rng = np.random.default_rng(7)
    x = rng.uniform(-3, 3, (3, 1, 4))
    y = rng.uniform(0.1, 3, (5, 1)) if name == "xlogy" else rng.uniform(-3, 3, (5, 1)) * rng.choice([-1, 1], (5, 1))
    _against_torch(torch, getattr(ops, name), getattr(torch, name), [x, y], dtype, name)
    if name == "atan2":  # every quadrant and the axes, the branch cut's both sides
        pairs = np.array(QUADRANTS)
        _against_torch(torch, ops.atan2, torch.atan2, [pairs[:, 0], pairs[:, 1]], dtype, "atan2 quadrants")


def test_modules_match_torchs():
    torch = _torch()
    x = np.random.default_rng(8).uniform(-6, 6, (3, 5)).astype(np.float32)
    for ours, theirs in [(nn.LogSigmoid(), torch.nn.LogSigmoid()), (nn.Softsign(), torch.nn.Softsign()),
                         (nn.Hardtanh(-2.0, 3.0), torch.nn.Hardtanh(-2.0, 3.0)), (nn.ReLU6(), torch.nn.ReLU6()),
                         (nn.SELU(), torch.nn.SELU()), (nn.CELU(0.5), torch.nn.CELU(0.5)), (nn.Mish(), torch.nn.Mish()),
                         (nn.Hardsigmoid(), torch.nn.Hardsigmoid()), (nn.Hardswish(), torch.nn.Hardswish()),
                         (nn.Softmin(dim=0), torch.nn.Softmin(dim=0))]:
        assert repr(ours) == repr(theirs)
        np.testing.assert_allclose(ours(mv.tensor(x)).numpy(), theirs(torch.tensor(x)).numpy(), rtol=4e-6, atol=1e-7)


def test_edges_match_torch():
    torch = _torch()
    for name, fn, x, _, _ in EDGES:
        theirs = {"logit_eps": lambda t: torch.logit(t, 0.1), "hardtanh": torch.nn.functional.hardtanh,
                  "relu6": torch.nn.functional.relu6, "hardsigmoid": torch.nn.functional.hardsigmoid,
                  "hardswish": torch.nn.functional.hardswish, "selu": torch.nn.functional.selu,
                  "celu": lambda t: torch.nn.functional.celu(t, 2.0),
                  "softsign": torch.nn.functional.softsign}.get(name) or getattr(torch, name)
        t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        yt = theirs(t)
        yt.sum().backward()
        y, g = _value_and_grad(fn, x)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-15, err_msg=name)
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-7, err_msg=name)  # (torch's hardsigmoid 1/6 is float32's)
