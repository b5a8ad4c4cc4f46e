"""Where the Numba kernels of minivae/_cpu and the NumPy formulas they implement (the specification) differ in the last
bits, and why. ``python -m tests.test_numba_formula_parity`` prints the table of the differences, family by family.

- Bit for bit: Adam, SGD, conv2d's windows and their scatter, the gamma draws and their gradient, and erf, erfc, erfinv,
  erfcinv in float32 (computed in float64 by both, rounded once): the same operations in the same order.
- The kernel's own exp and log (minivae/_cpu/vector.py: within an ulp of the exact value, and LLVM vectorizes the loops
  that call them; NumPy takes libm's, or its own SIMD ones where the machine has AVX-512): BCE and the Bernoulli
  log-density, the Gaussian reparameterization and KL. The Gaussian kernels and BCE's derivative compute the formula's
  operations in its order, so with libm's exp and log1p in place of vector.py's they are the formula bit for bit
  (tested below); BCE's loss keeps the order of the CUDA kernel, more accurate than the formula's (the formula should
  take it: ops/losses.py). With vector.py's functions they differ by the bound of
  ``test_the_bernoulli_log_density_is_within_its_bound``.
- float32: the kernels compute in float64 and round once (within an ulp of the exact value); the formula rounds at every
  step, with NumPy's float32 exp and log (which differ from the correctly rounded values in about 40% of the cases on
  an AVX2 machine): no order of operations makes the two agree.
- Sums in the order LLVM picks (softmax, log-softmax, Gumbel-Softmax, categorical KL; vector.sum_any_order and
  dot_any_order), the noise's logarithms by vector.log (Gumbel-Softmax, binary Concrete), vector.py's erf and Halley's
  iterations for erfinv (special functions in float64): measured in ulps of the output's largest magnitude (an output
  that cancels, softmax's gradient at a nearly one-hot row, is off by many ulps of its own elements). The categorical
  KL's q is e^{x − m}/Σ, the formula's exp(log_softmax x): a second exp a row to match it, and its sums would still
  differ.

The device-equality tests therefore compare the stand-in GPU with the CPU's formulas, Numba off (tests/strict_array.py
``assert_device_run_is_the_cpus``, tests/test_device.py)."""
import math
import types

import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae._backend import use_numba
from minivae.distributions.gamma import standard_gamma_draws
from minivae.ops.unary import stable_sigmoid, stable_softplus
from minivae.optim import SGD, Adam
from minivae.random import Generator

numba = pytest.importorskip("numba", reason="Numba is not installed: the fused CPU kernels are not in use")

SHAPES = [(1,), (1, 1), (3, 1), (1, 7), (5, 7), (2, 3, 33), (64, 300)]
DTYPES = (np.float32, np.float64)


def both(fn):
    """fn() (a list of tensors or arrays) with the Numba kernels, then with the formulas."""
    out = []
    for flag in (True, False):
        with use_numba(flag):
            out.append([t.data if isinstance(t, mv.Tensor) else t for t in fn()])
    return out


def values_and_grads(fn, inputs, upstream):
    """fn's outputs at ``inputs`` and the inputs' gradients for the ``upstream`` gradients of its outputs."""
    ts = [mv.tensor(x, requires_grad=True) for x in inputs]
    ys = fn(*ts)
    ys = ys if isinstance(ys, tuple) else (ys,)
    mv.backward(list(ys), [mv.tensor(u) for u in upstream[:len(ys)]])
    return [*ys, *(t.grad for t in ts)]


def adam_or_sgd(make, x, g):
    def steps():
        w = mv.tensor(x, requires_grad=True)
        optimizer = make([w])
        for k in range(3):
            w.grad = (g * (k + 1)).astype(x.dtype)
            optimizer.step()
        return [w]
    return steps


def families(rng, dtype, shape):
    """(name, kernel module, fn) for each fused kernel family, at random inputs of ``shape`` and ``dtype``."""
    def normal(s=shape, scale=3.0):
        return (scale * rng.standard_normal(s)).astype(dtype)
    x, t, p, v, g, g_rows = normal(), rng.random(shape).astype(dtype), normal(), normal(), normal(scale=1), normal(shape[:-1], 1)
    u, u2, alpha, z = (2 * rng.random(shape) - 1).astype(dtype), (2 * rng.random(shape)).astype(dtype), \
        np.exp(normal(scale=1.5)), (np.abs(p) + 0.1).astype(dtype)
    tau, seed, counter = float(rng.choice([0.1, 0.7, 1.0, 3.0])), int(rng.integers(1 << 30)), int(rng.integers(1 << 20))
    image = normal((2, 3, 6, 5)), normal((4, 3, 3, 2)), normal((2, 4, 3, 3))  # (conv2d: its own shapes)
    return [
        ("softmax", "softmax", lambda: values_and_grads(lambda a: ops.softmax(a, temperature=tau), [x], [g])),
        ("log_softmax", "softmax", lambda: values_and_grads(lambda a: ops.log_softmax(a, temperature=tau), [x], [g])),
        ("gumbel_softmax", "gumbel", lambda: values_and_grads(
            lambda a: ops.gumbel_softmax(a, Generator(seed, counter=counter), tau), [x], [g])),
        ("gumbel_softmax hard", "gumbel", lambda: values_and_grads(
            lambda a: ops.gumbel_softmax(a, Generator(seed, counter=counter), tau, True), [x], [g])),
        ("categorical_kl", "categorical", lambda: values_and_grads(ops.categorical_kl, [x, p], [g_rows])),
        ("binary_concrete_kl", "binary_concrete", lambda: values_and_grads(
            lambda a: ops.binary_concrete_kl(a, mv.tensor(p), Generator(seed, counter=counter), tau), [x], [g, g])),
        ("bce_with_logits", "bce", lambda: values_and_grads(ops.bce_with_logits, [x, t], [g])),
        ("bernoulli_log_prob", "bce", lambda: values_and_grads(ops.bernoulli_log_prob, [x, t], [g])),
        ("reparameterize", "gaussian", lambda: values_and_grads(lambda a, b: ops.reparameterize(a, b, mv.tensor(p)),
                                                                [x, v], [g])),
        ("kl_standard_normal", "gaussian", lambda: values_and_grads(ops.kl_standard_normal, [x, v], [g])),
        ("erf", "special", lambda: values_and_grads(ops.erf, [x], [g])),
        ("erfc", "special", lambda: values_and_grads(ops.erfc, [x], [g])),
        ("erfinv", "special", lambda: values_and_grads(ops.erfinv, [u], [g])),
        ("erfcinv", "special", lambda: values_and_grads(ops.erfcinv, [u2], [g])),
        ("standard_gamma draws", "gamma", lambda: [standard_gamma_draws(Generator(seed), alpha, shape, dtype)]),
        ("standard_gamma grad", "gamma", lambda: values_and_grads(lambda a: ops.standard_gamma(a, mv.tensor(z)),
                                                                  [alpha], [g])),
        ("adam", "adam", adam_or_sgd(lambda ps: Adam(ps, lr=1e-2), x, g)),
        ("sgd momentum", "sgd", adam_or_sgd(lambda ps: SGD(ps, lr=1e-2, momentum=0.9), x, g)),
        ("conv2d", "conv", lambda: values_and_grads(lambda a, w: ops.conv2d(a, w, stride=2, padding=1), image[:2],
                                                    image[2:])),
    ]


def ulps_of_largest(got, want):
    """max |got − want| in ulps (in their dtype) of max |want|: a bound that still means something where an output
    cancels to near 0 (softmax's gradient, a loss near 0), where ulps of each element would count many."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.size == 0 or np.array_equal(got, want, equal_nan=True):
        return 0.0
    scale = np.abs(want[np.isfinite(want)]).max()
    return float(np.abs(got.astype(np.float64) - want).max() / np.spacing(want.dtype.type(scale)))


def sweep(name, dtype, seeds=range(4)):
    """(max over outputs and inputs of ulps_of_largest, where it was, the kernel modules' functions run, the largest
    difference in ulps of each element itself, the fraction of elements that differ)."""
    worst, where, ran, elementwise, differing, total = 0.0, "", set(), 0.0, 0, 0
    for seed in seeds:
        for shape in SHAPES:
            rng = np.random.default_rng([seed, len(shape), shape[-1]])
            [(module, fn)] = [(m, f) for n, m, f in families(rng, dtype, shape) if n == name]
            with recording(module) as calls:
                fused, formula = both(fn)
            ran |= calls
            for i, (a, b) in enumerate(zip(fused, formula)):
                d = ulps_of_largest(a, b)
                if d > worst:
                    worst, where = d, f"output {i} at {shape}"
                unequal = (a != b) & ~(np.isnan(a) & np.isnan(b))
                differing, total = differing + unequal.sum(), total + a.size
                if unequal.any():
                    elementwise = max(elementwise, float((np.abs(a.astype(np.float64) - b) / np.spacing(np.abs(b)))[unequal].max()))
    return worst, where, ran, elementwise, differing / total


class recording:
    """Records which of minivae._cpu.<module>'s public Python functions (the ops' entries) were called within the
    block."""

    def __init__(self, module):
        import importlib
        self.module, self.calls, self.saved = importlib.import_module(f"minivae._cpu.{module}"), set(), {}

    def __enter__(self):
        for k, f in vars(self.module).items():
            # (plain Python functions only: Numba's dispatchers are called from other kernels too, and a wrapper there
            # would not compile)
            if isinstance(f, types.FunctionType) and not k.startswith("_") and f.__module__ == self.module.__name__:
                self.saved[k] = f
        for k, f in self.saved.items():
            setattr(self.module, k, lambda *a, _f=f, _k=k, **kw: self.calls.add(_k) or _f(*a, **kw))
        return self.calls

    def __exit__(self, *exc):
        for k, f in self.saved.items():
            setattr(self.module, k, f)


NAMES = [n for n, _, _ in families(np.random.default_rng(0), np.float64, (1,))]
BIT_FOR_BIT = [(n, d) for n in ("adam", "sgd momentum", "conv2d", "standard_gamma draws", "standard_gamma grad")
               for d in DTYPES] + [(n, np.float32) for n in ("erf", "erfc", "erfinv", "erfcinv")]


@pytest.mark.parametrize("name, dtype", BIT_FOR_BIT, ids=[f"{n}-{d.__name__}" for n, d in BIT_FOR_BIT])
def test_kernels_of_the_formula_s_operations_are_the_formula_bit_for_bit(name, dtype):
    """The families whose kernels compute the formula's operations in its order, with the same functions (erf and the
    rest in float32: both compute in float64 and round once): equal bit for bit, the kernel having run."""
    worst, where, ran, _, _ = sweep(name, dtype)
    assert ran, f"{name}: no kernel ran"
    assert worst == 0, f"{name} {dtype.__name__}: {worst} ulps at {where}"


def with_libm(kernel, **functions):
    """``kernel``'s (a minivae._cpu.kernel) Python function compiled again, serially, with ``functions`` (libm's, from
    math) in place of the globals of those names (vector.py's)."""
    fn = kernel.serial.py_func
    return numba.njit(error_model="numpy")(types.FunctionType(fn.__code__, {**fn.__globals__, **functions}, fn.__name__))


def libm_is_numpy_s(x, *names):
    """Whether NumPy's float64 ufuncs ``names`` give libm's values on ``x`` (not where NumPy has SIMD ones of its own)."""
    return all(np.array_equal(getattr(np, n)(x), np.array([getattr(math, n)(a) for a in x.tolist()])) for n in names)


def logits_and_targets(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([4 * rng.standard_normal(n), rng.uniform(-40, 40, n), [0.0, -0.0, 1e4, -1e4, 745.0, -745.0]])
    return x, rng.random(x.size)


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["bce", "bernoulli-log-prob"])
def test_the_bce_kernel_with_libm_s_exp_and_log1p_is_cuda_s_loss_and_the_formula_s_sigmoid(sign):
    """minivae/_cpu/bce.py with libm's exp and log1p in place of vector.py's, in float64: its derivative is the formula's
    (ops.unary.stable_sigmoid(x) − t: the numerator 1 or e over 1 + e; it took e·(1/(1 + e)), other bits in 3% of these
    inputs even with libm's exp) bit for bit, and its loss is max(x, 0) − x·t + log1p(e) (kernels/common.cuh's
    bce_elem), which keeps e^{−|x|} where x·t cancels max(x, 0) and the formula's (max(x, 0) + log1p(e)) − x·t loses
    it: at x = 40, t = 1 the loss is e^{−40}(1 − e^{−40}/2 …) to an ulp, where the formula gives 0."""
    from minivae._cpu import bce
    x, t = logits_and_targets()
    e = np.exp(-np.abs(x))
    if not libm_is_numpy_s(-np.abs(x), "exp") or not libm_is_numpy_s(e, "log1p"):
        pytest.skip("NumPy's float64 exp or log1p is not libm's on this machine")
    x, t = np.append(x, 40.0), np.append(t, 1.0)
    loss, dx = np.empty_like(x), np.empty_like(x)
    with_libm(bce._fwd, exp=math.exp, log1p=math.log1p)(x, t, loss, dx, sign)
    np.testing.assert_array_equal(dx, sign * (stable_sigmoid(np, x) - t))
    np.testing.assert_array_equal(loss, sign * (np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))))
    assert abs(sign * loss[-1] - math.exp(-40)) <= np.spacing(math.exp(-40)) and stable_softplus(np, x)[-1] - 40 == 0


def test_the_gaussian_kernels_are_the_formula_with_libm_s_exp():
    """minivae/_cpu/gaussian.py: exp(½v)·ε, μ + σε and ½(μ² + eᵛ − 1 − v) in the formula's order; with libm's exp, the
    formula's bits in float64."""
    from minivae._cpu import gaussian
    from minivae.ops.losses import _kl_normal, _noise
    rng = np.random.default_rng(1)
    mu, v, eps = 3 * rng.standard_normal(20000), 4 * rng.standard_normal(20000), rng.standard_normal(20000)
    if not libm_is_numpy_s(0.5 * v, "exp") or not libm_is_numpy_s(v, "exp"):
        pytest.skip("NumPy's float64 exp is not libm's on this machine")
    z, noise, kl, var = (np.empty_like(mu) for _ in range(4))
    with_libm(gaussian._reparameterize, exp=math.exp)(mu, v, eps, z, noise)
    with_libm(gaussian._kl, exp=math.exp)(mu, v, kl, var)
    np.testing.assert_array_equal(noise, _noise(np, v, eps))
    np.testing.assert_array_equal(z, mu + _noise(np, v, eps))
    np.testing.assert_array_equal(var, np.exp(v))
    np.testing.assert_array_equal(kl, _kl_normal(mu, v, np.exp(v)))


def test_the_bernoulli_log_density_is_within_its_bound():
    """float64, the kernel's exp and log1p against NumPy's (libm's). vector.exp is within 1 ulp of e^a and libm's within
    ½, so the two e differ by 1.5 ulps of e at most; log1p's slope 1/(1 + e) ≤ 1 and log1p(e) ≥ e/(1 + e) carry that to
    1.5 ulps of log1p(e), and each log1p adds its own (1 and ½): 3 ulps of log1p(e) ≤ s = max(x, 0) + log1p(e). The
    orders (kernel: max(x, 0) − x·t, then + log1p(e); formula: s, then − x·t) round twice each, ½ ulp of a value of at
    most 2·max(s, |x·t|) every time: 4 ulps more. |Δℓ| ≤ 7 ulps of max(s, |x·t|) (measured: 4).
    The derivative, (1 or e)/(1 + e) − t in both: e's 1.5 ulps move σ by at most 1.5 ulps of e ≤ 3 ulps of σ (x ≥ 0:
    σ ≥ ½ ≥ e/2; x < 0: σ = e/(1 + e) keeps e's relative error), the division and the subtraction round ½ ulp each:
    |Δσ'| ≤ 4 ulps of max(σ, t) (measured: 2)."""
    x, t = logits_and_targets(seed=2)
    results = []
    for flag in (True, False):
        with use_numba(flag):
            logits = mv.tensor(x, requires_grad=True)
            y = ops.bernoulli_log_prob(logits, mv.tensor(t))
            y.backward(np.ones_like(x))  # (ḡ = 1: the derivative itself, unscaled)
            results.append((y.data, logits.grad))
    (y1, g1), (y0, g0) = results
    s = stable_softplus(np, x)
    assert (np.abs(y1 - y0) <= 7 * np.spacing(np.maximum(s, np.abs(x * t)))).all()
    assert (np.abs(g1 - g0) <= 4 * np.spacing(np.maximum(stable_sigmoid(np, x), t))).all()
    assert not np.array_equal(y1, y0)  # (the two exp and log1p do differ: the bound is the point, not 0)


def table(seeds=range(4)):
    """(family, dtype, max ulps of the output's largest magnitude, where, max ulps of each element, fraction of elements
    differing) for every family."""
    rows = []
    for d in DTYPES:
        for n in NAMES:
            worst, where, _, elementwise, fraction = sweep(n, d, seeds)
            rows.append((n, d.__name__, worst, elementwise, fraction, where))
    return rows


if __name__ == "__main__":
    print("| family | dtype | max ulps of the output's largest | max ulps of the element | elements differing | where |\n"
          "|---|---|---|---|---|---|")
    for row in table():
        print("| {} | {} | {:.3g} | {:.3g} | {:.2%} | {} |".format(*row))
