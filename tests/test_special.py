"""erf, erfc, erfinv and erfcinv against the standard library (math.erf, math.erfc) per element, over every binade,
both tails and the special values, and against torch where it is installed; every test on the array formula (the
specification) and on the Numba kernels (which tests/test_cpu_kernels.py also compares with the formula directly)."""
import importlib.util
import math
from decimal import Decimal, localcontext

import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae._backend import use_numba


@pytest.fixture(autouse=True, params=["formula", "numba"])
def path(request):
    """Each test on both paths (the fused kernels are taken for float32 and float64 NumPy arrays when Numba is on)."""
    if request.param == "numba" and importlib.util.find_spec("numba") is None:
        pytest.skip("Numba is not installed: the fused CPU kernels are not in use")
    with use_numba(request.param == "numba"):
        yield request.param

# math.erf and math.erfc (the C library's) are themselves up to ~2.3 ulp from the exact value, and ours up to ~2.5
# (both measured against 40-digit references): a bound of 5 ulp between the two
ULP_BOUND = 5
PI_DIGITS = "3.14159265358979323846264338327950288419716939937510"  # π to 50 digits (independent of minivae's own PI)


def ulps(got, want):
    """|got − want| in units of the last place of want (the subnormal spacing below 2⁻¹⁰²²)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return np.abs(got - want) / np.spacing(np.abs(want))


def every_binade(rng, n=40):
    """n values of random significand and sign in each binade from the smallest subnormal to 2⁵."""
    exponents = np.repeat(np.arange(-1074, 6), n)
    return np.ldexp(rng.uniform(0.5, 1, exponents.size), exponents) * rng.choice([-1.0, 1.0], exponents.size)


def float64_inputs():
    rng = np.random.default_rng(0)
    k = np.arange(2, 17) / 4
    pieces = np.concatenate([k - 0.125, k + 0.125, k])  # the edges and centres of the Taylor pieces
    edges = np.array([0.4769362762044699, 0.47693627620446987, 33 / 8, np.nextafter(33 / 8, 0), 26.5, 27.2, 27.3])
    splits = np.array([0.25, 0.84375, 1.25, 1 / 0.35, 6.0, 28.0])  # the Numba kernels' intervals (fdlibm's), ±1 ulp
    splits = np.concatenate([splits, np.nextafter(splits, 0), np.nextafter(splits, 30)])
    x = np.concatenate([rng.uniform(-6, 6, 20000), rng.uniform(-28, 28, 5000), every_binade(rng), pieces, edges, splits])
    return np.concatenate([x, -x])


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", ["erf", "erfc"])
def test_erf_and_erfc_in_float64_are_within_a_few_ulp_of_the_standard_library(name):
    x = float64_inputs()
    got = getattr(ops, name)(mv.tensor(x)).numpy()
    want = np.array([getattr(math, name)(v) for v in x])
    u = ulps(got, want)
    assert u.max() <= ULP_BOUND, (x[u.argmax()], got[u.argmax()], want[u.argmax()])
    assert (u <= 1).mean() > 0.95  # most are the same or a neighbour: no systematic loss hidden under the bound


def test_erfc_keeps_the_digits_of_its_tail_and_erf_its_small_values():
    """erfc(x) for large x is tiny (not 1 − erf x = 0), down to the subnormals; erf(x) ≈ 2x/√π for tiny x."""
    x = np.array([10.0, 20.0, 26.0, 27.0, 27.2, 1e-300, 5e-324, 1e-10])
    got = ops.erfc(mv.tensor(x[:5])).numpy()
    np.testing.assert_array_less(ulps(got, [math.erfc(v) for v in x[:5]]), ULP_BOUND + 1e-9)
    assert got[-1] > 0 and ops.erfc(mv.tensor(28.0)).item() == 0.0 == math.erfc(28.0)
    np.testing.assert_array_less(ulps(ops.erf(mv.tensor(x[5:])).numpy(), [math.erf(v) for v in x[5:]]), 1.0 + 1e-9)


@pytest.mark.filterwarnings("error")
def test_special_values_of_erf_and_erfc():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e300, -1e300, np.finfo(np.float64).max])
    erf, erfc = ops.erf(mv.tensor(x)).numpy(), ops.erfc(mv.tensor(x)).numpy()
    np.testing.assert_array_equal(erf, [0.0, -0.0, 1.0, -1.0, np.nan, 1.0, -1.0, 1.0])
    assert np.signbit(erf[1]) and not np.signbit(erf[0])  # erf(−0) = −0, as math.erf and torch
    np.testing.assert_array_equal(erfc, [1.0, 1.0, 0.0, 2.0, np.nan, 0.0, 2.0, 0.0])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("name", ["erf", "erfc"])
def test_erf_and_erfc_in_lower_precision_are_within_an_ulp_of_the_exact_value_rounded(name, dtype):
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-6, 6, 5000), rng.uniform(-1, 1, 2000) * 2.0 ** rng.integers(-30, 0, 2000)])
    x = x.astype(dtype)
    got = getattr(ops, name)(mv.tensor(x))
    assert got.dtype == dtype
    want = np.array([getattr(math, name)(float(v)) for v in x]).astype(dtype)
    nonzero = want != 0
    spacing = np.spacing(np.abs(want).astype(dtype)).astype(np.float64)
    err = np.abs(got.numpy().astype(np.float64) - want.astype(np.float64)) / spacing
    assert err[nonzero].max() <= 1, x[nonzero][err[nonzero].argmax()]


def newton_error(w, y):
    """How far w is from the root of erf(w) = y, in ulp of w, by one Newton step of the standard library's
    erf (|y| < ½) or erfc (from ½ on, against 1 − |y|, exact there)."""
    w, y = float(w), float(y)
    slope = 2 / math.sqrt(math.pi) * math.exp(-w * w)
    residual = math.erf(w) - y if abs(y) < 0.5 else math.copysign(1 - abs(y) - math.erfc(abs(w)), y)
    return abs(residual / slope) / np.spacing(abs(w))


def erfinv_inputs():
    rng = np.random.default_rng(2)
    tail = 1 - np.ldexp(rng.uniform(0.5, 1, 3000), rng.integers(-52, 0, 3000))  # 1 − 2⁻⁵³ … ½
    tiny = every_binade(rng, 2)
    y = np.concatenate([rng.uniform(-1, 1, 10000), tail, -tail, tiny[np.abs(tiny) < 1], [np.nextafter(1, 0), 0.5]])
    return y


def test_erfinv_in_float64_is_the_root_of_erf_to_a_few_ulp():
    y = erfinv_inputs()
    w = ops.erfinv(mv.tensor(y)).numpy()
    err = np.array([newton_error(a, b) for a, b in zip(w, y)])
    # the standard library's own error (≤ 2.3 ulp of erf or erfc) moves the root by at most ~2.6 ulp of w
    assert err.max() <= ULP_BOUND, (y[err.argmax()], w[err.argmax()])
    assert np.all(np.sign(w) == np.sign(y))


def test_erfinv_matches_torch():
    torch = pytest.importorskip("torch")
    y = np.concatenate([erfinv_inputs(), [1.0, -1.0, 1.5, -2.0, np.nan, 0.0, -0.0, np.inf]])
    got = ops.erfinv(mv.tensor(y)).numpy()
    want = torch.erfinv(torch.tensor(y)).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite])  # ±∞ at ±1, NaN beyond and for NaN
    assert ulps(got[finite], want[finite]).max() <= ULP_BOUND
    y32 = y.astype(np.float32)  # (some of the tail rounds to ±1)
    got32 = ops.erfinv(mv.tensor(y32)).numpy()
    want32 = torch.erfinv(torch.tensor(y32, dtype=torch.float64)).numpy().astype(np.float32)  # float64's, rounded
    finite = np.isfinite(want32)
    np.testing.assert_array_equal(got32[~finite], want32[~finite])
    err = np.abs(got32[finite].astype(np.float64) - want32[finite]) / np.spacing(np.abs(want32[finite]))
    assert err.max() <= 1


@pytest.mark.filterwarnings("error")
def test_special_values_of_erfinv_and_erfcinv():
    y = np.array([1.0, -1.0, 1.0000000000000002, -1.5, np.inf, np.nan, 0.0, -0.0])
    w = ops.erfinv(mv.tensor(y)).numpy()
    np.testing.assert_array_equal(w, [np.inf, -np.inf, np.nan, np.nan, np.nan, np.nan, 0.0, -0.0])
    assert np.signbit(w[-1])
    z = np.array([0.0, 2.0, 1.0, -1e-300, 2.5, np.nan, np.inf])
    np.testing.assert_array_equal(ops.erfcinv(mv.tensor(z)).numpy(), [np.inf, -np.inf, 0.0, np.nan, np.nan, np.nan, np.nan])


def test_erfcinv_keeps_the_digits_of_small_arguments():
    """erfcinv(z) from z itself: erfc(erfcinv(z)) = z to a few ulp down to the subnormals, where erfinv(1 − z) is
    +∞ below z = 2⁻⁵⁴; above 1, erfcinv(z) = −erfinv(z − 1)."""
    rng = np.random.default_rng(3)
    z = np.concatenate([np.ldexp(rng.uniform(0.5, 1, 2000), rng.integers(-1021, 1, 2000)), rng.uniform(0, 2, 2000)])
    w = ops.erfcinv(mv.tensor(z)).numpy()
    assert np.isfinite(w).all()
    err = np.array([newton_error(a, 1 - b) if b > 0.5 else
                    abs((math.erfc(a) - b) / (2 / math.sqrt(math.pi) * math.exp(-a * a))) / np.spacing(abs(a))
                    for a, b in zip(w, z)])
    assert err.max() <= ULP_BOUND, (z[err.argmax()], w[err.argmax()])
    np.testing.assert_array_equal(ops.erfcinv(mv.tensor(z[z >= 1])).numpy(), -ops.erfinv(mv.tensor(z[z >= 1] - 1)).numpy())


def log_erfc_far_tail(w):
    """log erfc(w), w ≥ 26, in 40-digit decimal arithmetic: −w² − log(w√π) + log Σₙ (−1)ⁿ (2n − 1)!!/(2w²)ⁿ, the
    asymptotic series, 14 terms (the last below 10⁻³⁰ there); w², the logarithms and all exact to the 40 digits."""
    with localcontext() as ctx:
        ctx.prec = 40
        w = Decimal(w)
        term = total = Decimal(1)
        for n in range(1, 14):
            term = -term * (2 * n - 1) / (2 * w * w)
            total += term
        return -w * w - (w * Decimal(PI_DIGITS).sqrt()).ln() + total.ln()


def test_erfcinv_of_subnormal_arguments_to_the_last_digits():
    """Below float64's normal numbers erfc(w) (w > 26.5) keeps few digits, and a residual q − erfc(w) fewer (the
    formula and the Numba path were off by up to 6·10¹⁰ ulp at 2⁻¹⁰⁷⁴, found against CUDA's erfcinv on a GPU):
    the root of log erfc(w) = log q in 40-digit decimal, one Newton step away, d log erfc/dw = −(2w + 1/w + …)."""
    rng = np.random.default_rng(8)
    z = np.concatenate([np.ldexp(1.0, -np.arange(1023, 1075)), np.ldexp(rng.uniform(0.5, 1, 40), rng.integers(-1073, -1022, 40)),
                        [2.0 ** -1022, np.nextafter(2.0 ** -1022, 1), np.nextafter(2.0 ** -1022, 0)]])
    w = ops.erfcinv(mv.tensor(z)).numpy()
    err = [float(abs((log_erfc_far_tail(a) - Decimal(b).ln()) / (2 * Decimal(a) + 1 / Decimal(a)))) / np.spacing(a)
           for a, b in zip(w, z)]
    assert max(err) <= ULP_BOUND, (z[np.argmax(err)], w[np.argmax(err)], max(err))


@pytest.mark.parametrize("name", ["erfinv", "erfcinv"])
def test_inverses_in_float32_are_float32_within_an_ulp(name):
    rng = np.random.default_rng(4)
    y = rng.uniform(-1, 1, 3000) + (name == "erfcinv")
    y32 = y.astype(np.float32)
    got = getattr(ops, name)(mv.tensor(y32))
    want = getattr(ops, name)(mv.tensor(y32.astype(np.float64))).numpy().astype(np.float32)
    assert got.dtype == np.float32
    assert (np.abs(got.numpy().astype(np.float64) - want) / np.spacing(np.abs(want))).max() <= 1
    ints = getattr(ops, name)(mv.tensor(np.array([0, 1, 2])))
    assert ints.dtype == np.float32
    np.testing.assert_array_equal(ints.numpy(), [0, np.inf, np.nan] if name == "erfinv" else [np.inf, 0, -np.inf])


@pytest.mark.filterwarnings("error")
def test_gradients_are_the_formulas_and_finite_where_the_function_is():
    x = np.array([-30.0, -27.0, -3.0, -0.5, 0.0, 1e-300, 2.0, 6.0, 30.0, np.inf])
    for name, sign in (("erf", 1), ("erfc", -1)):
        t = mv.tensor(x, requires_grad=True)
        getattr(ops, name)(t).backward(np.ones_like(x))
        want = [sign * 2 / math.sqrt(math.pi) * math.exp(-v * v) for v in x]
        np.testing.assert_allclose(t.grad, want, rtol=1e-14, atol=0)  # 0 (not NaN) in the far tails and at ±∞
    y = np.array([np.nextafter(1, 0), -0.999, 0.0, 0.5])
    t = mv.tensor(y, requires_grad=True)
    w = ops.erfinv(t)
    w.backward(np.ones_like(y))
    want = [math.sqrt(math.pi) / 2 * math.exp(v * v) for v in w.numpy()]
    assert np.isfinite(t.grad).all()
    np.testing.assert_allclose(t.grad, want, rtol=1e-13)
    z = mv.tensor(np.array([1e-300, 0.3, 1.7]), requires_grad=True)
    v = ops.erfcinv(z)
    v.backward(np.ones(3))
    np.testing.assert_allclose(z.grad, [-math.sqrt(math.pi) / 2 * math.exp(a * a) for a in v.numpy()], rtol=1e-13)


def test_gradients_match_torch():
    torch = pytest.importorskip("torch")
    x = np.array([-4.0, -1.2, 0.3, 2.5])
    y = np.array([-0.99, -0.2, 0.6, 0.999999])
    for name, v in (("erf", x), ("erfc", x), ("erfinv", y)):
        t, tt = mv.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
        getattr(ops, name)(t).backward(np.arange(1.0, 5.0))
        getattr(torch, name)(tt).backward(torch.arange(1.0, 5.0, dtype=torch.float64))
        np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-13)
