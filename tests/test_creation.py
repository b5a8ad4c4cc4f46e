"""zeros, ones, full and arange: torch's dtypes and refusals (compared with torch when it is installed), and arange's
values within half a unit in the last place of the exact start + i·step (Python fractions)."""
import math
import re
from fractions import Fraction

import numpy as np
import pytest

import minivae as mv


def torch_or_skip():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def test_dtype_none_is_float32():
    """NumPy's dtype None is float64; torch.zeros(2, dtype=None) is float32."""
    for make in (mv.zeros, mv.ones, mv.rand, mv.randn):
        assert make(2, dtype=None).dtype == np.float32
    assert mv.full((2,), 0.5, dtype=None).dtype == np.float32


FILLS = [3, np.int64(3), np.int32(3), 2.5, np.float64(2.5), np.float32(2.5), True]


@pytest.mark.parametrize("fill", FILLS, ids=[f"{type(f).__name__}" for f in FILLS])
def test_full_takes_its_dtype_from_the_fill_as_torch(fill):
    """A NumPy integer was float32 (only Python ints were taken for integers)."""
    expected = {int: np.int64, float: np.float32, bool: np.bool_}[type(fill.item() if hasattr(fill, "item") else fill)]
    out = mv.full((2, 3), fill)
    assert out.dtype == expected and out.shape == (2, 3) and (out.data == fill).all()
    torch = pytest.importorskip("torch")
    assert str(torch.full((2, 3), fill).dtype) == f"torch.{np.dtype(expected)}"


def test_full_takes_a_0_d_tensor_as_its_number():
    """torch.full takes a 0-d tensor as a Python number: float32 for any floating one, int64 for any integer one."""
    for t, dtype in ((mv.tensor(np.float64(2.5)), np.float32), (mv.tensor(np.int32(4)), np.int64),
                     (mv.tensor(np.bool_(True)), np.bool_)):
        out = mv.full((2,), t)
        assert out.dtype == dtype and (out.data == t.data).all()
    torch = pytest.importorskip("torch")
    assert torch.full((2,), torch.tensor(2.5, dtype=torch.float64)).dtype == torch.float32
    assert torch.full((2,), torch.tensor(4, dtype=torch.int32)).dtype == torch.int64


@pytest.mark.parametrize("fill,dtype,error,match", [
    (1 + 2j, None, TypeError, "complex"),
    (np.complex64(1), None, TypeError, "complex"),
    (np.array([1.0, 2.0]), None, TypeError, r"must be a number, not an array of shape \(2,\)"),
    (mv.tensor(np.ones(1)), None, TypeError, r"must be a number, not an array of shape \(1,\)"),
    ("a", None, TypeError, "must be a number, not str"),
    (1e40, None, ValueError, "cannot be converted to float32 without overflow"),
    (1e300, np.float16, ValueError, "cannot be converted to float16"),
    (float("nan"), np.int64, ValueError, "cannot be converted to int64"),
    (1e30, np.int64, ValueError, "cannot be converted to int64"),
    (10**400, np.float32, ValueError, "cannot be converted to float32 without overflow"),
    (-10**400, np.float64, ValueError, "cannot be converted to float64 without overflow"),
], ids=["complex", "numpy-complex", "array", "1-element-tensor", "str", "float32-overflow", "float16-overflow",
        "nan-int", "int-overflow", "int-beyond-float64-as-float32", "int-beyond-float64-as-float64"])
def test_full_refuses_what_it_cannot_hold(fill, dtype, error, match):
    """NumPy's full dropped the imaginary part, broadcast an array fill, gave inf for 1e40 in float32 and an
    arbitrary int64 for NaN or 1e30; torch refuses all of these."""
    with pytest.raises(error, match=match):
        mv.full((2,), fill, dtype=dtype)


def test_full_keeps_an_infinite_or_nan_float_and_truncates_a_float_to_an_integer():
    assert np.isinf(mv.full((1,), float("inf")).data).all() and np.isnan(mv.full((1,), float("nan")).data).all()
    assert mv.full((2,), 2.7, dtype=np.int64).data.tolist() == [2, 2]  # torch.full's too
    assert mv.full((2,), -1e40, dtype=np.float64).data.tolist() == [-1e40, -1e40]


@pytest.mark.parametrize("args", [(np.int64(5),), (np.int32(1), np.int64(7), np.int16(2)), (mv.tensor(np.int64(4)),),
                                  (True,), (0, 10, 3)], ids=["int64", "mixed", "tensor", "bool", "python"])
def test_arange_of_integers_is_int64(args):
    """NumPy integers (and 0-d integer tensors) were taken for floats: float32."""
    out = mv.arange(*args)
    plain = [int(a.item() if hasattr(a, "item") else a) for a in args]
    assert out.dtype == np.int64 and out.data.tolist() == list(range(*plain))
    torch = pytest.importorskip("torch")
    targs = [torch.tensor(a.item()) if isinstance(a, mv.Tensor) else a for a in args]
    assert torch.arange(*targs).dtype == torch.int64


def exact(start, step, n):
    return [Fraction(start) + i * Fraction(step) for i in range(n)]


def half_ulp(v, dtype):
    return Fraction(float(np.spacing(np.abs(np.array(v, dtype))))) / 2


@pytest.mark.parametrize("start,end,step", [(1e6, 1e6 + 10, 0.01), (1e4, 1e4 + 1, 1e-3), (-3.3, 7.1, 0.07),
                                            (0, 1, 0.1), (5, -5, -0.75)])
@pytest.mark.parametrize("dtype", [None, np.float64])
def test_arange_values_are_rounded_once(start, end, step, dtype):
    """start + i·step in float64, then rounded to the dtype: each value within half a unit in the last place of the
    exact one (plus float64's own error). NumPy's float32 arange adds a rounded step: arange(1e6, 1e6 + 10, 0.01)
    was 1e6 throughout, 10 away at the end."""
    out = mv.arange(start, end, step, dtype=dtype)
    assert out.dtype == (np.float32 if dtype is None else np.float64)
    n = math.ceil((Fraction(end) - Fraction(start)) / Fraction(step))
    assert len(out.data) == n
    for got, want in zip(out.data, exact(start, step, n)):
        assert abs(Fraction(float(got)) - want) <= half_ulp(got, out.dtype) + Fraction(2 ** -40), (got, float(want))
    torch = pytest.importorskip("torch")
    theirs = torch.arange(start, end, step, dtype=None if dtype is None else torch.float64)
    assert theirs.numel() == n and str(theirs.dtype) == f"torch.{out.dtype}"


@pytest.mark.parametrize("args,match", [
    ((0, 1, 0), "step must be nonzero"),
    ((0, 5, -1), "leads away from end"),
    ((5, 0, 0.5), "leads away from end"),
    ((0, float("nan")), "unsupported range"),
    ((0, float("inf"), 1.0), "unsupported range"),
], ids=["zero-step", "away-down", "away-up", "nan", "inf"])
def test_arange_refuses_what_torch_refuses(args, match):
    """NumPy gave an empty array for a step leading away from end and ZeroDivisionError for a zero step."""
    with pytest.raises(ValueError, match=match):
        mv.arange(*args)
    torch = pytest.importorskip("torch")
    with pytest.raises((RuntimeError, ValueError)):
        torch.arange(*args)


def test_arange_with_an_integer_dtype_takes_integers():
    """NumPy's arange(0.5, 5.7, 1.5, dtype=int64) is [0, 2, 4, 6] (6 beyond the end; its step rounded from the first
    two values) and torch's [0, 1, 2, 3, 4] (each argument truncated): refused; integral floats are integers."""
    with pytest.raises(ValueError, match="integer dtype"):
        mv.arange(0.5, 5.7, 1.5, dtype=np.int64)
    assert mv.arange(0.0, 7.0, 2.0, dtype=np.int64).data.tolist() == [0, 2, 4, 6]
    big = mv.arange(2 ** 62, 2 ** 62 + 3)
    assert big.data.tolist() == [2 ** 62, 2 ** 62 + 1, 2 ** 62 + 2]
    assert mv.arange(5, 5).data.shape == (0,)


def test_rand_draws_from_rng_or_generator_not_both():
    """Given both, rng= was drawn from and generator= silently left as it was."""
    from minivae.random import Generator
    a, b = Generator(1), Generator(2)
    with pytest.raises(TypeError, match="not both"):
        mv.rand(3, rng=a, generator=b)
    assert a.counter == b.counter == 0
    np.testing.assert_array_equal(mv.randn(3, generator=Generator(4)).data, Generator(4).normal((3,)))
    np.testing.assert_array_equal(mv.rand(3, rng=Generator(4)).data, Generator(4).uniform((3,)))


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, object, "U3", "datetime64[s]"])
@pytest.mark.parametrize("make", [lambda d: mv.zeros(2, dtype=d), lambda d: mv.ones((2, 3), dtype=d),
                                  lambda d: mv.full(2, 1, dtype=d), lambda d: mv.arange(3, dtype=d)],
                         ids=["zeros", "ones", "full", "arange"])
def test_a_dtype_that_is_not_real_is_refused_naming_it(make, dtype):
    """zeros, ones, full (given an integer fill, which full refused only when complex) and arange made complex, object
    and str tensors no op takes (minivae has no complex tensors; torch has no object or str dtype)."""
    with pytest.raises(TypeError, match=re.escape(f"dtype {np.dtype(dtype)} is not a real dtype")):
        make(dtype)


@pytest.mark.parametrize("shape", [np.array([2, 3]), np.array([4], np.int32), np.array([2, 0], np.uint8), np.array(3),
                                   np.array([], np.int64)], ids=["int64", "int32", "uint8-zero", "0-d", "empty"])
def test_a_1_d_integer_array_is_a_shape_as_numpy_takes_it(shape):
    """zeros(numpy.array([2, 3])) failed inside operator.index ("only integer scalar arrays can be converted to a
    scalar index"). NumPy takes a 1-D integer array as the sizes (torch.zeros refuses an array): minivae's arrays are
    NumPy's, so it follows NumPy here; the Generator's draws and full take one the same way."""
    want = np.zeros(shape).shape
    assert mv.zeros(shape).shape == mv.ones(shape).shape == mv.full(shape, 2.0).shape == want
    assert mv.rand(shape, rng=mv.random.Generator(0)).shape == want
    assert mv.random.Generator(0).normal(shape).shape == want


@pytest.mark.parametrize("shape,match", [(np.array([[2, 3]]), r"not an array of int64 of shape \(1, 2\)"),
                                         (np.array([2.0, 3.0]), "not an array of float64 of shape"),
                                         (np.array([True, False]), "a bool is not a size"),
                                         (np.array(True), "a bool is not a size")])
def test_an_array_that_is_not_sizes_is_refused_naming_it(shape, match):
    """A 2-D, floating or bool array as a shape (NumPy refuses them too), with an error naming it; the counter of a
    draw does not move."""
    with pytest.raises(TypeError, match=match):
        mv.zeros(shape)
    g = mv.random.Generator(0)
    with pytest.raises(TypeError, match=match):
        g.uniform(shape)
    assert g.counter == 0
