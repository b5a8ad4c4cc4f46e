"""The Numba kernels of ops.stirlerr and ops.bd0 (minivae/_cpu/saddle.py) against their array formula (minivae/ops/saddle.py,
the specification): values and gradients, float32 and float64, each kernel checked to have run.

Both compute the same float64 operations in the same order; they may differ only where NumPy's log, log1p and power
are not the C library's (NumPy's own SIMD ones on some machines), by an ulp of each. So:
- where the formula takes a series without cancellation (stirlerr from 10 on, bd0 where |x − m| < ½(x + m)), a few
  float64 ulps of the value itself;
- where it takes a difference of larger terms (stirlerr below 10: lgamma(x + 1) − (x + ½)·log x + x − ½ log 2π and its
  derivatives; bd0's x·log(x/m) + m − x), a few ulps of the largest of those terms;
- float32 (both round the float64 value once): an ulp of the value, two of a gradient ḡ·∂ (∂ rounded, then the product).
Non-finite values (0, ∞ and NaN edges) must be the same in both, their signs too."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae._backend import use_numba

pytest.importorskip("numba", reason="Numba is not installed: the fused CPU kernels are not in use")
import minivae._cpu.saddle as kernels  # noqa: E402  (after the skip: it imports numba)

DTYPES = (np.float32, np.float64)
ULPS64 = 4


def ran(monkeypatch, *names):
    """A set that records which of the kernel module's entries ``names`` are called."""
    calls = set()
    for name in names:
        fn = getattr(kernels, name)
        monkeypatch.setattr(kernels, name, lambda *a, _fn=fn, _name=name: calls.add(_name) or _fn(*a))
    return calls


def both(fn, inputs, upstream):
    """[(value, *gradients) with the kernels, the same with the formula] of fn at ``inputs`` for ḡ = ``upstream``."""
    out = []
    for flag in (True, False):
        with use_numba(flag):
            ts = [mv.tensor(x, requires_grad=True) for x in inputs]
            y = fn(*ts)
            y.backward(upstream)
            out.append([y.data, *(t.grad for t in ts)])
    return out


def assert_close(got, want, scale, dtype, ulps):
    """|got − want| within ``ulps`` float64 ulps of ``scale`` (float64), or ulps of want itself (float32); the same
    non-finite values."""
    assert got.dtype == want.dtype == dtype and got.shape == want.shape
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite])
    assert np.isfinite(got[finite]).all()
    with np.errstate(all="ignore"):  # (the spacing of ∞ and of the largest numbers)
        bound = ulps_of(scale, want, finite, dtype, ulps)
    err = np.abs(got[finite].astype(np.float64) - want[finite])
    worst = np.argmax(err - bound) if err.size else 0
    assert (err <= bound).all(), f"{err.flat[worst]} > {bound.flat[worst]} at {got[finite].flat[worst]!r}"


def ulps_of(scale, want, finite, dtype, ulps):
    """``ulps`` float64 ulps of ``scale`` (float64), or ``ulps`` ulps of |want| (float32), at the finite elements."""
    if dtype == np.float64:
        scale = np.nan_to_num(np.broadcast_to(scale, want.shape), nan=0.0)  # (0·∞ where ḡ = 0: the product is 0)
        return ulps * np.spacing(scale[finite])
    return ulps * np.spacing(np.abs(want[finite]))


def stirlerr_points(dtype, rng):
    """Random and edge arguments: uniform below 30, log-uniform from 10⁻⁸ to 10¹², the integers to 40, both sides of 10,
    0, −0, the smallest subnormal and normal, the largest finite, ∞, NaN and a negative."""
    info = np.finfo(dtype)
    edges = [0.0, -0.0, float(info.smallest_subnormal), float(info.tiny), 1e-30, float(info.max), 1e30, np.inf, np.nan, -1.0,
             -np.inf, np.nextafter(dtype(10), dtype(0)), 10.0, np.nextafter(dtype(10), dtype(11)), 9.5, 0.5, 1.5, 2.5]
    x = np.concatenate([rng.uniform(0, 30, 500), np.exp(rng.uniform(math.log(1e-8), math.log(1e12), 500)),
                        np.arange(41.0), edges])
    return x.astype(dtype)


def stirlerr_scale(x, order):
    """The largest magnitude among the formula's terms at x: below 10 (its direct branch) a bound on |lgamma(x + 1)|,
    (x + ½)·|log x|, x and ½ log 2π, and on their derivatives' |ψ⁽ⁿ⁾(x + 1)|, |log x|, 1/x, 1/x² (ψ(x + 1) ≤ log(x + 1),
    ψ⁽¹⁾(x + 1) ≤ 1/x); from 10 on 0 (the value's own ulps)."""
    with np.errstate(all="ignore"):
        x = np.minimum(x.astype(np.float64), 10)  # (the bound used below 10 only)
        log_x = np.abs(np.log(x))
        bound = [(x + 1) * (1 + log_x) + 1, 2 + log_x + 1 / x, 1 / x + 1 / (x * x)][order]
    return np.where((x > 0) & (x < 10), bound, 0.0)


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_stirlerr_kernel_is_the_formula_with_its_gradient(monkeypatch, dtype, order):
    rng = np.random.default_rng([order, np.dtype(dtype).itemsize])
    x = stirlerr_points(dtype, rng)
    g = rng.standard_normal(x.size).astype(dtype)
    g[::7] = 0  # (ḡ = 0 where the partial is ±∞: 0, not NaN)
    g[x == 0] = 0
    calls = ran(monkeypatch, "stirlerr", "stirlerr_vjp")
    (y, gx), (want_y, want_gx) = both(lambda t: ops.stirlerr(t, order), [x], g)
    assert calls == {"stirlerr", "stirlerr_vjp"}
    assert_close(y, want_y, np.maximum(stirlerr_scale(x, order), np.abs(want_y)), dtype, ULPS64 if dtype == np.float64 else 1)
    with np.errstate(all="ignore"):
        scale_gx = np.abs(g) * np.maximum(stirlerr_scale(x, order + 1), np.abs(want_gx / np.where(g == 0, 1, g)))
    assert_close(gx, want_gx, scale_gx, dtype, ULPS64 if dtype == np.float64 else 2)


def test_stirlerr_kernel_at_the_branch_point_10_is_the_series():
    """s, s′, s″ from the kernel at 10 and above within 4 ulps of Stirling's series, its terms from the Bernoulli numbers
    summed here exactly (fsum): the kernel takes the series there, as the formula, where the difference of lgammas would
    be off by ~10⁻¹⁵ of lgamma(11) ≈ 15, tens of ulps of s(10) ≈ 8.3·10⁻³."""
    x = np.array([10.0, np.nextafter(10.0, 11.0), 10.5, 1e3])
    for order in (0, 1):
        with use_numba(True):
            t = mv.tensor(x, requires_grad=True)
            y = ops.stirlerr(t, order)
            y.backward(np.ones_like(x))
        for got, n in ((y.data, order), (t.grad, order + 1)):
            k = np.arange(1, 12)
            b2k = np.array([1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510, 43867 / 798,
                            -174611 / 330, 854513 / 138])
            p = 2 * k - 1  # s⁽ⁿ⁾(x) = Σₖ B₂ₖ/(2k(2k − 1))·(−1)ⁿ p(p + 1)…(p + n − 1)·x^{−p−n}
            rising = np.prod([p + j for j in range(n)], axis=0) if n else np.ones(11)
            want = np.array([math.fsum(b2k / (2 * k * p) * (-1) ** n * rising * v ** (-p - n)) for v in x])
            np.testing.assert_allclose(got, want, rtol=4 * np.finfo(np.float64).eps, atol=0)


def bd0_points(dtype, rng, n=600):
    """(x, m, c): x and m log-uniform over 10⁻⁶ … 10⁶, half of the m near x (the series), c log-uniform over 10⁻² … 10²;
    then the edges: 0, subnormal, huge, ∞, NaN, negative, a quotient x/m below the normal numbers, and
    |x − m| = ½(x + m) (m/x = 3, ⅓) with its neighbours."""
    x = np.exp(rng.uniform(math.log(1e-6), math.log(1e6), n))
    m = np.where(rng.random(n) < 0.5, x * np.exp(rng.uniform(-1.2, 1.2, n)), np.exp(rng.uniform(math.log(1e-6), math.log(1e6), n)))
    c = np.exp(rng.uniform(math.log(1e-2), math.log(1e2), n))
    info = np.finfo(dtype)
    sub, big = float(info.smallest_subnormal), float(info.max)
    up, down = np.nextafter(dtype(3), dtype(4)), np.nextafter(dtype(3), dtype(2))
    edges = [(0, 1), (0, 0), (1, 0), (0, np.inf), (np.inf, 1), (1, np.inf), (np.inf, np.inf), (np.nan, 1), (1, np.nan),
             (np.nan, np.inf), (0, np.nan), (-1, 1), (1, -1), (sub, 1), (1, sub), (sub, sub), (3 * sub, 2),
             (big, 1), (1, big), (big, big),
             (3, 1), (1, 3), (up, 1), (down, 1), (1, up), (1, down), (6, 2), (1e-30, 2e-30), (5, 5)]
    ex, em = (np.array(v, dtype=np.float64) for v in zip(*edges))
    ec = np.ones(ex.size)
    ec[::3] = 0.5
    return tuple(np.concatenate(p).astype(dtype) for p in ((x, ex), (m, em), (c, ec)))


def bd0_scale(x, mean):
    """|x·log(x/m)| + m + x: the terms of the formula's far branch (the series' value alone where |x − m| < ½(x + m))."""
    with np.errstate(all="ignore"):
        x, mean = x.astype(np.float64), mean.astype(np.float64)
        far = np.abs(x * (np.log(x) - np.log(mean))) + mean + x
        return np.where(np.abs(x - mean) < 0.5 * (x + mean), 0.0, far)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_bd0_kernel_is_the_formula_with_its_partials(monkeypatch, dtype):
    rng = np.random.default_rng([7, np.dtype(dtype).itemsize])
    x, m, c = bd0_points(dtype, rng)
    g = rng.standard_normal(x.size).astype(dtype)
    g[::5] = 0
    g[x == 0] = 0
    calls = ran(monkeypatch, "bd0", "bd0_vjp")
    got, want = both(ops.bd0, [x, m, c], g)
    assert calls == {"bd0", "bd0_vjp"}
    mean = c.astype(np.float64) * m
    ulps = ULPS64 if dtype == np.float64 else 1
    assert_close(got[0], want[0], np.maximum(bd0_scale(x, mean), np.abs(want[0])), dtype, ulps)
    for a, b in zip(got[1:], want[1:]):  # (log(x/m) a difference of logs only where x/m is no normal number)
        with np.errstate(all="ignore"):
            logs = np.abs(np.log(x.astype(np.float64))) + np.abs(np.log(mean))
            scale = np.abs(g) * np.maximum(np.abs(b / np.where(g == 0, 1, g)), logs)
        assert_close(a, b, np.nan_to_num(scale), dtype, ulps + 1)


@pytest.mark.parametrize("shapes", [((5, 7), (7,), (5, 1)), ((1, 7), (4, 1), ()), ((3,), (2, 3), (2, 3)), ((0, 3), (3,), ())],
                         ids=str)
def test_bd0_kernel_reads_broadcast_operands_as_the_formula(monkeypatch, shapes):
    """Operands broadcast over leading axes (read in place), over inner axes (written out), and empty; each gradient
    summed back to its operand's shape."""
    rng = np.random.default_rng(3)
    x, m, c = (rng.uniform(0.1, 20, s) for s in shapes)
    g = rng.standard_normal(np.broadcast_shapes(*shapes))
    calls = ran(monkeypatch, "bd0", "bd0_vjp")
    got, want = both(ops.bd0, [x, m, c], g)
    assert calls == {"bd0", "bd0_vjp"}
    for a, b, s in zip(got, want, [np.broadcast_shapes(*shapes), *shapes]):
        assert a.shape == b.shape == s
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_bd0_kernel_computes_only_the_gradients_asked_for():
    x, m = np.array([1.0, 2.0, 9.0]), np.array([2.0, 2.0, 1.0])
    with use_numba(True):
        t = mv.tensor(x, requires_grad=True)
        ops.bd0(t, mv.tensor(m)).backward(np.ones(3))
    np.testing.assert_allclose(t.grad, np.log(x / m), rtol=1e-15)
    assert kernels.bd0_vjp(x, m, np.ones(()), np.ones(3), (False, True, False))[::2] == (None, None)


def test_float16_and_integer_inputs_take_the_formula(monkeypatch):
    """The kernels are built for float32 and float64 (minivae._backend.fused): float16 runs the formula on both paths."""
    calls = ran(monkeypatch, "stirlerr", "bd0")
    x = np.array([0.5, 3.0, 20.0], np.float16)
    with use_numba(True):
        y, z = ops.stirlerr(mv.tensor(x)), ops.bd0(mv.tensor(x), mv.tensor(x[::-1]))
    with use_numba(False):
        want_y, want_z = ops.stirlerr(mv.tensor(x)), ops.bd0(mv.tensor(x), mv.tensor(x[::-1]))
    assert not calls
    np.testing.assert_array_equal(y.data, want_y.data)
    np.testing.assert_array_equal(z.data, want_z.data)


def test_on_a_device_the_ops_take_the_formula():
    """No CUDA kernels of these (no minivae/_gpu/saddle.py): on a device, CUDA kernels on, the array formula runs, as on
    the CPU with Numba off ("cuda" = strict arrays, tests/strict_array.py)."""
    from minivae._backend import use_cuda_kernels
    from tests.strict_array import emulating
    x, m = np.array([0.5, 3.0, 12.0, 25.0]), np.array([2.0, 3.5, 1.0, 4.0])

    def run(device):
        t = mv.tensor(x, device=device, requires_grad=True)
        y = ops.stirlerr(t) + ops.bd0(t, mv.tensor(m, device=device))
        y.backward(mv.tensor(np.ones(4), device=device))
        return [np.asarray(y.data.get() if device == "cuda" else y.data), np.asarray(t.grad.get() if device == "cuda" else t.grad)]
    with use_numba(True), use_cuda_kernels(True), emulating():
        on_device = run("cuda")
    with use_numba(False):
        on_cpu = run("cpu")
    for a, b in zip(on_device, on_cpu):
        np.testing.assert_array_equal(a, b)
