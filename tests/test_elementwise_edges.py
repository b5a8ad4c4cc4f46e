"""The edge sweep of minivae.ops.elementwise (every op there, and relu6 and selu): values and gradients in float32 and
float64 at 0, ±0, ±tiny, ±1e-30, the domains' ends, ±3, ±88, ±89, ±1e4, ±1e30, ±∞ (and ±709, ±710, ±1e300 in float64),
every pair of them for the binary ops. Inside each op's domain nothing is NaN; where the function or its derivative has
a finite limit (at ±∞, where z overflows, at −0) it is that limit (math.*); with torch, ours are NaN only where torch's
are."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import ops

ALL = lambda x: np.ones(x.shape, bool)  # noqa: E731
FINITE = np.isfinite
UNARY = {  # name: (function, the inputs where neither the value nor the gradient may be NaN)
    "tan": (ops.tan, FINITE), "asin": (ops.asin, lambda x: abs(x) <= 1), "acos": (ops.acos, lambda x: abs(x) <= 1),
    "atan": (ops.atan, ALL), "sinh": (ops.sinh, ALL), "cosh": (ops.cosh, ALL), "asinh": (ops.asinh, ALL),
    "acosh": (ops.acosh, lambda x: x >= 1), "atanh": (ops.atanh, lambda x: abs(x) <= 1),
    "log2": (ops.log2, lambda x: x >= 0), "log10": (ops.log10, lambda x: x >= 0), "exp2": (ops.exp2, ALL),
    "rsqrt": (ops.rsqrt, lambda x: x >= 0), "reciprocal": (ops.reciprocal, ALL), "square": (ops.square, ALL),
    "logit": (ops.logit, lambda x: (x >= 0) & (x <= 1)), "logit_eps": (lambda t: ops.logit(t, 1e-6), ALL),
    "log_sigmoid": (ops.log_sigmoid, ALL), "softsign": (ops.softsign, ALL), "hardtanh": (ops.hardtanh, ALL),
    "celu": (ops.celu, ALL), "celu_alpha": (lambda t: ops.celu(t, 0.1), ALL), "mish": (ops.mish, ALL),
    "hardsigmoid": (ops.hardsigmoid, ALL), "hardswish": (ops.hardswish, ALL), "relu6": (ops.relu6, ALL),
    "selu": (ops.selu, ALL),
}
BINARY = {  # name: (function, the pairs where neither may be NaN)
    "atan2": (ops.atan2, lambda x, y: np.ones(x.shape, bool)),
    "hypot": (ops.hypot, lambda x, y: np.ones(x.shape, bool)),
    "logaddexp": (ops.logaddexp, lambda x, y: np.ones(x.shape, bool)),
    "xlogy": (ops.xlogy, lambda x, y: np.isfinite(x) & (y >= 0)),  # (∞·log 1 is NaN, as torch's)
}


def points(dtype):
    tiny = np.finfo(dtype).tiny
    p = [0.0, -0.0, tiny, -tiny, 1e-30, -1e-30, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 88.0, -88.0, 89.0, -89.0, 1e4, -1e4,
         1e30, -1e30, np.inf, -np.inf]
    if dtype == np.float64:
        p += [709.0, -709.0, 710.0, -710.0, 1e300, -1e300, 1e-300]
    return np.array(p, dtype)


def value_and_grads(fn, args, dtype):
    ts = [mv.tensor(a, requires_grad=True) for a in args]
    y = fn(*ts)
    y.backward(mv.tensor(np.ones(y.shape, dtype)))
    return y.numpy(), [t.grad for t in ts]


def test_the_sweep_covers_every_op_of_the_module():
    mine = {n for n, c in ops.OPS.items() if c.__module__ == "minivae.ops.elementwise"}
    assert mine <= set(UNARY) | set(BINARY), mine - set(UNARY) - set(BINARY)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_nan_inside_the_domains(dtype):
    x = points(dtype)
    for name, (fn, inside) in UNARY.items():
        y, (g,) = value_and_grads(fn, [x], dtype)
        bad = inside(x) & (np.isnan(y) | np.isnan(g))
        assert not bad.any(), f"{name} {dtype.__name__}: NaN at {x[bad]}"
    a, b = (v.ravel() for v in np.meshgrid(x, x))
    for name, (fn, inside) in BINARY.items():
        z, (ga, gb) = value_and_grads(fn, [a, b], dtype)
        bad = inside(a, b) & (np.isnan(z) | np.isnan(ga) | np.isnan(gb))
        assert not bad.any(), f"{name} {dtype.__name__}: NaN at {list(zip(a[bad], b[bad]))[:5]}"


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


INF = math.inf
LIMITS = [  # (name, function, inputs, dtype, value, gradients): the limits, by math.*
    ("softsign(∞)", ops.softsign, [INF], np.float32, 1.0, [0.0]),
    ("softsign(−∞)", ops.softsign, [-INF], np.float64, -1.0, [0.0]),
    ("mish(∞)", ops.mish, [INF], np.float32, INF, [1.0]),  # (x·tanh(softplus x) − x → 0, its derivative → 1)
    ("mish(−∞)", ops.mish, [-INF], np.float64, 0.0, [0.0]),  # (≈ x·eˣ → 0)
    ("mish(−1e4)", ops.mish, [-1e4], np.float32, 0.0, [0.0]),
    ("hardswish(−∞)", ops.hardswish, [-INF], np.float32, 0.0, [0.0]),
    ("logit(−0)", ops.logit, [-0.0], np.float64, -INF, [INF]),  # (−0 is 0: 1/(x(1 − x)) → +∞ from inside)
    ("logit(−0) float32", ops.logit, [-0.0], np.float32, -INF, [INF]),
    ("logaddexp(20, 0)", ops.logaddexp, [20.0, 0.0], np.float32, 20 + math.log1p(math.exp(-20)),
     [sigmoid(20), sigmoid(-20)]),  # (ȳ = σ(−20) = 2·10⁻⁹, not 1 − σ(20) = 0)
    ("logaddexp(0, 40)", ops.logaddexp, [0.0, 40.0], np.float64, 40 + math.log1p(math.exp(-40)),
     [sigmoid(-40), sigmoid(40)]),
    ("hypot(∞, 3)", ops.hypot, [INF, 3.0], np.float32, INF, [1.0, 0.0]),  # (x/hypot(x, 3) → 1, 3/hypot → 0)
    ("hypot(−∞, ∞)", ops.hypot, [-INF, INF], np.float64, INF, [-math.sqrt(0.5), math.sqrt(0.5)]),
    ("hypot(1.5e308, 1.5e308)", ops.hypot, [1.5e308, 1.5e308], np.float64, INF, [math.sqrt(0.5), math.sqrt(0.5)]),  # (z overflows)
    ("hypot(3e38, −3e38)", ops.hypot, [3e38, -3e38], np.float32, INF, [math.sqrt(0.5), -math.sqrt(0.5)]),
]


@pytest.mark.parametrize("name,fn,args,dtype,value,grads", LIMITS, ids=[row[0] for row in LIMITS])
def test_the_limits(name, fn, args, dtype, value, grads):
    y, gs = value_and_grads(fn, [np.array(a, dtype) for a in args], dtype)
    rtol = 1e-6 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(y, value, rtol=rtol)
    for g, expected in zip(gs, grads):
        np.testing.assert_allclose(g, expected, rtol=rtol)
        assert np.signbit(g) == np.signbit(expected) or expected != 0 or g != 0


TORCH_UNARY = {"tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh",
               "asinh": "asinh", "acosh": "acosh", "atanh": "atanh", "log2": "log2", "log10": "log10",
               "exp2": "exp2", "rsqrt": "rsqrt", "reciprocal": "reciprocal", "square": "square", "logit": "logit",
               "log_sigmoid": "nn.functional.logsigmoid", "softsign": "nn.functional.softsign",
               "hardtanh": "nn.functional.hardtanh", "celu": "nn.functional.celu", "mish": "nn.functional.mish",
               "hardsigmoid": "nn.functional.hardsigmoid", "hardswish": "nn.functional.hardswish",
               "relu6": "nn.functional.relu6", "selu": "nn.functional.selu"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_only_where_torch_is_nan(dtype):
    """Ours are NaN (value or gradient) only where torch's value or gradient is NaN, over the whole sweep."""
    torch = pytest.importorskip("torch")

    def torch_fn(path):
        f = torch
        for part in path.split("."):
            f = getattr(f, part)
        return f

    def theirs(f, args):
        ts = [torch.tensor(a, requires_grad=True) for a in args]
        y = f(*ts)
        y.backward(torch.ones_like(y))
        return y.detach().numpy(), [t.grad.numpy() for t in ts]

    x = points(dtype)
    for name, path in TORCH_UNARY.items():
        y, (g,) = value_and_grads(UNARY[name][0], [x], dtype)
        ty, (tg,) = theirs(torch_fn(path), [x])
        ok = ~np.isnan(ty) & ~np.isnan(tg)
        assert not (ok & (np.isnan(y) | np.isnan(g))).any(), (name, x[ok & (np.isnan(y) | np.isnan(g))])
    a, b = (v.ravel() for v in np.meshgrid(x, x))
    for name in BINARY:
        z, grads = value_and_grads(BINARY[name][0], [a, b], dtype)
        tz, tgrads = theirs(getattr(torch, name), [a, b])
        ok = ~np.isnan(tz) & ~np.isnan(tgrads[0]) & ~np.isnan(tgrads[1])
        mine = np.isnan(z) | np.isnan(grads[0]) | np.isnan(grads[1])
        assert not (ok & mine).any(), (name, list(zip(a[ok & mine], b[ok & mine]))[:5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_expm1_gradient_where_the_value_nears_minus_one(dtype):
    """d/dx (eˣ − 1) = eˣ to the last bits where eˣ − 1 ≈ −1 (as ḡ·(y + 1) it cancelled: 9% off at x = −14.9 in
    float32 and 0 from x ≈ −17, where eˣ is 4e-8)."""
    x = np.array([-1.0, -14.9, -17.0, -40.0, -80.0], dtype)
    t = mv.tensor(x, requires_grad=True)
    ops.expm1(t).sum().backward()
    want = np.exp(x.astype(np.float64))
    np.testing.assert_allclose(t.grad, want, rtol=4 * np.finfo(dtype).eps)
