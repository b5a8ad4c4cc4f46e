"""Ops at the edges of their domains: no degrees of freedom, empty axes, NumPy integer axes, out-of-range axes,
integer tensors beside Python numbers, tensor bounds of clip. Each expected value comes from NumPy's or
PyTorch's documented rule, or from the formula by hand."""
import math
import warnings

import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import ops
from minivae.distributions import Categorical, kl_divergence
from minivae.random import Generator


def leaf(values, dtype=np.float64):
    return mv.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# ---- var and std where n ≤ correction ----------------------------------------------------------
@pytest.mark.filterwarnings("error")  # the value is the documented one: no NumPy warning either
@pytest.mark.parametrize("op", [ops.var, ops.std])
def test_var_and_std_without_degrees_of_freedom_are_inf_or_nan_without_an_exception(op):
    """The divisor n − c is max(n − c, 0), as NumPy's ddof and PyTorch's correction: Σ(x − m)²/0 is +∞, or NaN
    (0/0) for a single element. var's x̄ = ḡ·2(x − m)/0: ±∞ where x ≠ m, NaN where x = m (0·∞), PyTorch's values;
    std's is NaN everywhere there, as PyTorch's."""
    x = leaf([1.0, 2.0])
    y = op(x[:1])  # one element, correction 1
    y.backward()
    assert np.isnan(y.item())
    np.testing.assert_array_equal(x.grad, [np.nan, 0.0])
    x0 = leaf(1.0)  # 0-d
    y = op(x0)
    y.backward()
    assert np.isnan(y.item()) and np.isnan(x0.grad)
    for correction in (2, 3):  # n = c, and n < c (the divisor must not go negative: var would be −2)
        x = leaf([1.0, 3.0])
        y = op(x, correction=correction)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NumPy's "degrees of freedom <= 0"
            expected = (np.std if op is ops.std else np.var)(x.data, ddof=correction)
        assert y.item() == expected == np.inf
        y.backward()
        np.testing.assert_array_equal(x.grad, [-np.inf, np.inf] if op is ops.var else [np.nan, np.nan])


@pytest.mark.filterwarnings("error")
def test_var_of_an_empty_slice_is_nan():
    """Σ over no elements is 0 and the divisor max(0 − 1, 0) = 0: NaN (PyTorch's), with an empty gradient."""
    x = mv.tensor(np.zeros((3, 0)), requires_grad=True)
    y = ops.var(x, axis=1)
    assert y.shape == (3,) and np.isnan(y.numpy()).all()
    y.sum().backward()
    assert x.grad.shape == (3, 0)


# ---- argmax / argmin ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_and_argmin_keep_the_reduced_axis_under_either_name(name):
    a = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]])
    t = mv.tensor(a)
    expected = getattr(a, name)(axis=1, keepdims=True)  # NumPy's: shape (2, 1)
    for got in (getattr(t, name)(axis=1, keepdims=True), getattr(t, name)(dim=1, keepdim=True)):
        np.testing.assert_array_equal(got.numpy(), expected)
        assert got.shape == (2, 1)
    np.testing.assert_array_equal(getattr(t, name)(dim=-1).numpy(), getattr(a, name)(axis=-1))
    assert getattr(t, name)().item() == getattr(a, name)()
    with pytest.raises(TypeError, match="not both"):
        getattr(t, name)(axis=1, dim=1)


# ---- axes --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axes", [(0, 2, 4), (0, -4, 1), (3, 1, 0)])
def test_transpose_refuses_an_axis_out_of_range(axes):
    """NumPy and PyTorch refuse axis 4 of a 3-d array (it was taken modulo 3, as axis 1)."""
    x = mv.tensor(np.zeros((2, 3, 4)))
    bad = next(a for a in axes if not -3 <= a < 3)
    with pytest.raises(ValueError, match=rf"axis {bad} is out of range .*\(3 dimensions\)"):
        x.permute(*axes)
    with pytest.raises(ValueError, match=rf"axis {bad} is out of range"):
        ops.transpose(x, axes)


def test_numpy_integer_axes_are_taken_and_bools_refused():
    """Any integer operator.index takes (NumPy's and PyTorch's rule); axis=True is a slip both refuse."""
    a = np.arange(6.0).reshape(2, 3)
    x = mv.tensor(a)
    np.testing.assert_array_equal(x.sum(axis=np.int64(1)).numpy(), a.sum(axis=1))
    np.testing.assert_array_equal(x.max(axis=(np.int32(0), np.int64(-1))).numpy(), a.max())
    np.testing.assert_allclose(ops.softmax(x, axis=np.int64(0)).numpy(), np.exp(a) / np.exp(a).sum(axis=0))
    assert x.unsqueeze(np.int64(0)).shape == (1, 2, 3)
    assert x.permute(np.int64(1), np.int8(0)).shape == (3, 2)
    assert [p.shape for p in ops.split(x, 3, axis=np.int64(1))] == [(2, 1)] * 3
    for bad in (True, np.True_, 1.0):
        with pytest.raises(TypeError, match=rf"axis {bad!r} is not an integer"):
            x.sum(axis=bad)
    with pytest.raises(TypeError, match="is not an integer"):
        x.permute(True, 0)
    with pytest.raises(TypeError, match="axis True is not an integer"):  # (True == 1, the last axis: it was taken)
        F.gumbel_softmax(x, axis=True, rng=Generator(0))
    np.testing.assert_array_equal(F.gumbel_softmax(x, axis=np.int64(-1), rng=Generator(0)).numpy(),
                                  F.gumbel_softmax(x, axis=1, rng=Generator(0)).numpy())


# ---- split and chunk of an empty axis -----------------------------------------------------------------
def test_split_and_chunk_of_an_empty_axis_give_empty_pieces():
    """numpy.split(zeros((0, 2)), 2) is two (0, 2) pieces; torch.chunk(zeros(0, 2), 3) is three; the gradient
    flows back to an empty x."""
    x = mv.tensor(np.zeros((0, 2)), requires_grad=True)
    assert [p.shape for p in ops.split(x, 2)] == [p.shape for p in np.split(np.zeros((0, 2)), 2)]
    pieces = ops.chunk(x, 3)
    assert [p.shape for p in pieces] == [(0, 2)] * 3
    ops.concatenate(pieces).sum().backward()
    assert x.grad.shape == (0, 2)
    assert [p.shape for p in ops.split(mv.tensor(np.zeros((2, 0))), 3, axis=-1)] == [(2, 0)] * 3
    with pytest.raises(ValueError, match="chunks must be > 0"):
        ops.chunk(x, 0)


# ---- softmax, log_softmax, logsumexp over an empty axis -----------------------------------------------------
@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", [((4, 0), -1), ((0, 3), 0), ((0,), 0), ((2, 0, 3), 1)])
def test_softmax_and_logsumexp_over_an_empty_axis(shape, axis, dtype):
    """PyTorch: softmax of (4, 0) is (4, 0); logsumexp over an empty axis is log Σ∅ = log 0 = −∞; the gradients are
    empty arrays of x's shape (the reduced slices hold no element)."""
    for op in (ops.softmax, ops.log_softmax):
        x = mv.tensor(np.zeros(shape, dtype), requires_grad=True)
        y = op(x, axis=axis, temperature=0.5)
        assert y.shape == shape and y.dtype == dtype
        y.backward(np.zeros(shape, dtype))
        assert x.grad.shape == shape and x.grad.dtype == dtype
    x = mv.tensor(np.zeros(shape, dtype), requires_grad=True)
    y = ops.logsumexp(x, axis=axis)
    expected_shape = tuple(n for i, n in enumerate(shape) if i != axis % len(shape))
    assert y.shape == expected_shape and y.dtype == dtype and (y.numpy() == -np.inf).all()
    y.backward(np.ones(expected_shape, dtype))
    assert x.grad.shape == shape


# ---- integer tensors beside Python numbers --------------------------------------------------------------------
def test_a_python_int_keeps_an_integer_tensor_s_dtype():
    """NumPy 2 (NEP 50) and PyTorch take a Python int as "weak": uint8 · 3 stays uint8 (and wraps as NumPy's array
    arithmetic does), int16 + 2 stays int16; bool + 1 is NumPy's int64. A value the dtype cannot hold is NumPy's
    OverflowError. A NumPy integer scalar is a 0-d tensor here, and takes an integer array's dtype as PyTorch's
    rule for a 0-d operand says (PyTorch gives int16 + np.int64(2) int16; NumPy 2 gives int64)."""
    for dtype in (np.uint8, np.int16, np.int32, np.int64):
        a = np.array([100, 2], dtype)
        for got, want in ((mv.tensor(a) * 3, a * 3), (3 * mv.tensor(a), 3 * a), (mv.tensor(a) - 1, a - 1)):
            assert got.dtype == want.dtype == dtype
            np.testing.assert_array_equal(got.numpy(), want)
    b = np.array([True, False])
    assert (mv.tensor(b) + 1).dtype == (b + 1).dtype
    mask = mv.tensor(b)
    assert ops.where(mask, mv.tensor(np.array([1, 2], np.int16)), 3).dtype == np.int16  # np.where's too
    with pytest.raises(OverflowError):
        mv.tensor(np.array([1], np.uint8)) + 300
    assert (mv.tensor(np.array([1], np.int16)) + np.int64(2)).dtype == np.int16


def test_a_python_float_makes_integer_tensors_float32():
    """Python floats are float32 here (DEFAULT_FLOAT: ``tensor(2.5)``), and PyTorch gives int ⊗ float its default
    float dtype, float32, for every integer dtype (NumPy would give float64: it was float32 for int16, float64 for
    int32). A float32 tensor keeps its dtype, and a NumPy float64 scalar is not weak (NumPy's rule)."""
    for dtype in (np.uint8, np.int16, np.int32, np.int64, np.bool_):
        a = np.array([1, 0], dtype)
        for got in (mv.tensor(a) + 2.5, 2.5 * mv.tensor(a), mv.tensor(a) / 2.0):
            assert got.dtype == np.float32
        np.testing.assert_array_equal((mv.tensor(a) + 2.5).numpy(), a.astype(np.float32) + np.float32(2.5))
    assert (mv.tensor(np.array([1.0], np.float32)) * 2.5).dtype == np.float32
    assert (mv.tensor(np.array([1], np.int16)) + np.float64(2.5)).dtype == np.float64
    where = ops.where(mv.tensor(np.array([True, False])), mv.tensor(np.array([1, 2], np.int64)), 2.5)
    assert where.dtype == np.float32
    np.testing.assert_array_equal(where.numpy(), [1.0, 2.5])


def test_true_division_of_integers_is_float32():
    """PyTorch's true division gives integer and bool operands its default float dtype, float32 (NumPy's: float64):
    int / Python int, Python int / int (__rtruediv__) and int / int tensors, for every integer dtype, with the float32
    quotients of the operands cast to float32 first (as PyTorch does). A floating operand keeps its dtype: float64 / int
    stays float64, float16 / int float16, as NumPy and PyTorch. Other integer arithmetic stays integer."""
    b = np.array([2, 4, 8], np.int32)
    for dtype in (np.uint8, np.int16, np.int32, np.int64, np.bool_):
        a = np.array([7, 1, 3], dtype)  # (True, True, True) for bool: no division by 0 either way round
        x, y = mv.tensor(a), mv.tensor(b)
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        for got, want in ((x / 2, a32 / np.float32(2)), (3 / x, np.float32(3) / a32), (x.__rtruediv__(3), np.float32(3) / a32),
                          (x / y, a32 / b32), (y / x, b32 / a32), (ops.div(x, 2), a32 / np.float32(2))):
            assert got.dtype == np.float32, (dtype, got.dtype)
            np.testing.assert_array_equal(got.numpy(), want)
    assert (mv.tensor(np.array([1.0, 2.0])) / 2).dtype == np.float64
    assert (mv.tensor(np.array([1.0, 2.0])) / mv.tensor(b[:2])).dtype == np.float64
    assert (2 / mv.tensor(np.array([1.0, 2.0], np.float16))).dtype == np.float16
    assert (mv.tensor(np.array([1.0, 2.0], np.float16)) / 2).dtype == np.float16
    y = mv.tensor(b)
    for got in (y * 2, 2 - y, y + y, -y, y ** 2, ops.maximum(y, 3)):
        assert got.dtype == np.int32
    x = leaf([1.0, 2.0])  # a float tensor's gradient through a division by an integer tensor
    (x / mv.tensor(np.array([2, 4]))).backward(np.ones(2))
    np.testing.assert_array_equal(x.grad, [0.5, 0.25])


def test_true_division_dtypes_match_torch():
    """The dtypes, and the values to an ulp (torch's number / tensor is tensor.reciprocal() · number, rounded twice)."""
    torch = pytest.importorskip("torch")
    for dtype in (np.int16, np.int32, np.int64, np.bool_):
        a = np.array([7, 1, 3], dtype)
        t = torch.tensor(a)
        for ours, theirs in ((mv.tensor(a) / 2, t / 2), (3 / mv.tensor(a), 3 / t),
                             (mv.tensor(a) / mv.tensor(a), t / t)):
            assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=np.finfo(np.float32).eps)


# ---- integer tensors beside floating tensors ------------------------------------------------------------------
BINARY = {"add": ops.add, "sub": ops.sub, "mul": ops.mul, "div": ops.div, "pow": ops.pow, "maximum": ops.maximum,
          "minimum": ops.minimum, "matmul": ops.matmul}


@pytest.mark.parametrize("name", sorted(BINARY))
@pytest.mark.parametrize("int_dtype", [np.uint8, np.int32, np.int64, np.bool_])
@pytest.mark.parametrize("float_dtype", [np.float16, np.float32, np.float64])
def test_an_integer_tensor_beside_a_floating_one_takes_its_dtype(name, int_dtype, float_dtype):
    """PyTorch's promotion across kinds: the floating operand's dtype, in either order (NumPy: int32 or int64 with
    float32, or any integer wider than int8 with float16, gives float64), with the values of the integer operand cast
    to that dtype first."""
    a = np.array([[1, 0], [1, 1]], int_dtype)
    b = np.array([[1.5, 2.0], [3.0, 0.5]], float_dtype)
    if name == "sub" and int_dtype is np.bool_:  # PyTorch refuses a bool in a subtraction, in either order
        for p, q in ((a, b), (b, a)):
            with pytest.raises(TypeError, match="Subtraction, the `-` operator, with a bool tensor is not supported"):
                ops.sub(mv.tensor(p), mv.tensor(q))
        return
    op, raw = BINARY[name], {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
                             "pow": np.power, "maximum": np.maximum, "minimum": np.minimum,
                             "matmul": np.matmul}[name]
    for p, q in ((a, b), (b, a)):
        with np.errstate(divide="ignore"):
            got = op(mv.tensor(p), mv.tensor(q))
            want = raw(p.astype(float_dtype), q.astype(float_dtype))
        assert got.dtype == float_dtype, (p.dtype, q.dtype, got.dtype)
        np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("float_dtype", [np.float16, np.float32])
def test_joins_selections_and_bounds_of_integer_and_floating_tensors_take_the_floating_dtype(float_dtype):
    """cat, stack, where's two branches and clip's bounds by the same rule (PyTorch's; NumPy's is float64 beside
    int64), the integer values cast to the floating dtype; where's condition stays a mask."""
    a, b = np.array([1, 7], np.int64), np.array([0.5, 4.0], float_dtype)
    x, y = mv.tensor(a), mv.tensor(b)
    mask = np.array([True, False])
    cases = [(mv.cat([x, y]), np.concatenate([a.astype(float_dtype), b])),
             (mv.cat([y, x]), np.concatenate([b, a.astype(float_dtype)])),
             (mv.stack([x, y]), np.stack([a.astype(float_dtype), b])),
             (ops.where(mv.tensor(mask), x, y), np.where(mask, a.astype(float_dtype), b)),
             (ops.where(mv.tensor(mask), y, x), np.where(mask, b, a.astype(float_dtype))),
             (ops.clip(y, x, None), np.clip(b, a.astype(float_dtype), None)),
             (ops.clip(x, None, y), np.clip(a.astype(float_dtype), None, b))]
    for got, want in cases:
        assert got.dtype == float_dtype
        np.testing.assert_array_equal(got.numpy(), want)
    assert mv.cat([x, x]).dtype == np.int64 and mv.cat([y, mv.tensor(np.ones(1))]).dtype == np.float64  # one kind
    w = leaf([0.5, 4.0], float_dtype)  # the floating operand's gradient keeps its dtype
    mv.cat([x, w]).backward(np.arange(4.0, dtype=float_dtype))
    assert w.grad.dtype == float_dtype
    np.testing.assert_array_equal(w.grad, [2.0, 3.0])


def test_a_0d_operand_of_the_same_category_takes_the_array_s_dtype():
    """PyTorch's rule for a 0-d tensor beside an array of one category (floating, or integer: uint and int are one):
    the array's dtype, as for a Python number (NumPy 2 would widen float32 · a float64 0-d to float64); the 0-d
    operand's gradient comes back in its own dtype. Two arrays, or two 0-d operands, keep NumPy's promotion."""
    x = leaf([1.0, 2.0, 3.0], np.float32)
    w = mv.tensor(np.float64(0.1), requires_grad=True)
    for got, want in ((x * w, x.data * np.float32(0.1)), (w * x, np.float32(0.1) * x.data),
                      (x / w, x.data / np.float32(0.1)), (w - x, np.float32(0.1) - x.data)):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.numpy(), want)
    (x * w).sum().backward()
    assert w.grad.dtype == np.float64 and w.grad == pytest.approx(6.0)
    assert (mv.tensor(np.ones(2, np.uint8)) * mv.tensor(np.int64(3))).dtype == np.uint8
    assert (mv.tensor(np.ones(2, np.float32)) * mv.tensor(np.ones(2))).dtype == np.float64  # two arrays: NumPy's
    assert (mv.tensor(np.float32(1)) * mv.tensor(np.float64(1))).dtype == np.float64


def test_binary_dtypes_of_arrays_and_0d_tensors_match_torch():
    torch = pytest.importorskip("torch")
    dtypes = (np.bool_, np.uint8, np.int16, np.int32, np.int64, np.float16, np.float32, np.float64)
    for d1 in dtypes:
        for d2 in dtypes:
            for s1, s2 in (((2,), ()), ((), (2,)), ((2,), (2,)), ((), ())):
                a, b = np.ones(s1, d1), np.ones(s2, d2)
                for fn in (lambda x, y: x + y, lambda x, y: x * y, lambda x, y: x / y):
                    ours, theirs = fn(mv.tensor(a), mv.tensor(b)), fn(torch.tensor(a), torch.tensor(b))
                    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (d1, s1, d2, s2)


def test_integer_and_floating_dtypes_match_torch():
    torch = pytest.importorskip("torch")
    for int_dtype in (np.uint8, np.int16, np.int32, np.int64):
        for float_dtype in (np.float16, np.float32, np.float64):
            a, b = np.array([1, 2], int_dtype), np.array([0.5, 4.0], float_dtype)
            for fn in (lambda x, y: x + y, lambda x, y: x * y, lambda x, y: x / y, lambda x, y: y - x):
                ours, theirs = fn(mv.tensor(a), mv.tensor(b)), fn(torch.tensor(a), torch.tensor(b))
                assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (int_dtype, float_dtype)


def test_integer_data_through_a_float32_layer_stays_float32_with_the_weights_gradient():
    """int64 pixels into Linear (and x @ W): float32 values, those of the pixels cast to float32, and W̄ = xᵀ ḡ in
    float32, where NumPy's promotion would make both float64 (uint8 would not show it: NumPy keeps uint8 · float32
    float32)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (3, 4))
    layer = mv.nn.Linear(4, 2)
    y = layer(mv.tensor(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), x.astype(np.float32) @ layer.weight.data + layer.bias.data, rtol=1e-6)
    g = rng.standard_normal((3, 2)).astype(np.float32)
    y.backward(g)
    assert layer.weight.grad.dtype == np.float32
    np.testing.assert_allclose(layer.weight.grad, x.astype(np.float32).T @ g, rtol=1e-5)
    w = leaf(rng.standard_normal((4, 2)), np.float32)
    z = mv.tensor(x) @ w
    assert z.dtype == np.float32
    z.backward(g)
    assert w.grad.dtype == np.float32


REAL_VALUED = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "tanh": np.tanh,
               "sin": np.sin, "cos": np.cos, "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
               "softplus": lambda v: np.log1p(np.exp(v)), "erf": np.vectorize(math.erf), "erfc": np.vectorize(math.erfc)}


@pytest.mark.parametrize("name", sorted(REAL_VALUED))
@pytest.mark.parametrize("int_dtype", [np.uint8, np.int32, np.int64, np.bool_])
def test_a_real_function_of_an_integer_tensor_is_float32(name, int_dtype):
    """PyTorch's exp, log, sqrt, … of integer (or bool) tensors are its default float dtype, float32, where NumPy's
    of int32 and int64 are float64: the integers are cast to float32 first. abs and relu stay integer."""
    a = np.array([1, 2, 0, 5], int_dtype) if int_dtype is not np.bool_ else np.array([True, False])
    with np.errstate(divide="ignore"):
        got = getattr(ops, name)(mv.tensor(a))
        want = REAL_VALUED[name](a.astype(np.float64))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.numpy(), want, rtol=2e-7)
    if int_dtype is not np.bool_:  # (PyTorch refuses abs and relu of bools)
        assert ops.abs(mv.tensor(a)).dtype == a.dtype and ops.relu(mv.tensor(a)).dtype == a.dtype


# ---- max and min of a slice holding NaN ------------------------------------------------------------------------
@pytest.mark.filterwarnings("error")  # (the 0/0 of a mask without ties warned)
@pytest.mark.parametrize("op", [ops.max, ops.min])
def test_max_and_min_send_the_gradient_of_a_nan_slice_to_its_nans(op):
    """NaN propagates (y = NaN) and the NaN entries are its ties: ḡ shared among them, 0 elsewhere (torch.max's and
    torch.min's gradient, full or along a dim); the mask x = y found no tie, and x̄ was NaN on the whole slice."""
    x = leaf([[1.0, np.nan, 3.0, np.nan], [2.0, 5.0, 4.0, 0.0]])
    y = op(x, axis=1)
    y.backward(np.array([2.0, 3.0]))
    assert np.isnan(y.numpy()[0]) and y.numpy()[1] == (5.0 if op is ops.max else 0.0)
    np.testing.assert_array_equal(x.grad, [[0, 1, 0, 1], [0, 3, 0, 0] if op is ops.max else [0, 0, 0, 3]])
    x.grad = None
    op(x).backward(np.array(4.0))
    np.testing.assert_array_equal(x.grad, [[0, 2, 0, 2], [0, 0, 0, 0]])


def test_max_and_min_of_nan_slices_have_torchs_gradients():
    torch = pytest.importorskip("torch")
    a = np.array([[1.0, np.nan, 3.0, np.nan], [2.0, 5.0, 4.0, 0.0]])
    for name in ("max", "min"):
        x, tx = leaf(a), torch.tensor(a, requires_grad=True)
        getattr(x, name)().backward()
        getattr(tx, name)().backward()
        np.testing.assert_array_equal(x.grad, tx.grad.numpy(), err_msg=name)
        x, tx = leaf(a[:, :3]), torch.tensor(a[:, :3], requires_grad=True)  # one NaN a row: torch.max(dim)'s index
        getattr(x, name)(dim=1).backward(np.array([2.0, 3.0]))
        getattr(tx, name)(dim=1).values.backward(torch.tensor([2.0, 3.0], dtype=torch.float64))
        np.testing.assert_array_equal(x.grad, tx.grad.numpy(), err_msg=name)


# ---- reductions of integer and bool tensors ----------------------------------------------------------------------
INT_DTYPES = [np.bool_, np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32, np.int64]


@pytest.mark.parametrize("int_dtype", INT_DTYPES)
def test_a_sum_of_integers_or_bools_is_int64(int_dtype):
    """PyTorch's sum of bool, uint8, int8, int16, int32 is int64 (NumPy's of unsigned types is uint64, where
    255·300 of uint8 still fits but a negative difference of two sums wraps); uint64 has no wider type and stays."""
    a = np.array([[1, 0, 1], [1, 1, 1]], int_dtype)
    for axis, want in ((None, 5), (0, [2, 1, 2]), (1, [2, 3])):
        got = mv.tensor(a).sum(axis=axis)
        assert got.dtype == np.int64, (int_dtype, axis)
        np.testing.assert_array_equal(got.numpy(), want)
    # the int64 sums subtract as integers: NumPy's uint64 would give 2⁶⁴ − 1
    assert (mv.tensor(a[0]).sum() - mv.tensor(a[1]).sum()).item() == -1
    assert mv.tensor(np.array([255] * 300, np.uint8)).sum().item() == 76500
    assert mv.tensor(np.array([2 ** 63], np.uint64)).sum().dtype == np.uint64


def test_reduction_dtypes_of_integers_and_bools_match_torch():
    torch = pytest.importorskip("torch")
    for int_dtype in (np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64):
        a = np.array([[1, 0, 1], [1, 1, 0]], int_dtype)
        for name in ("sum", "max", "min"):
            ours, theirs = getattr(mv.tensor(a), name)(), getattr(torch.tensor(a), name)()
            assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (name, int_dtype)
            assert ours.item() == theirs.item()
        for axis in (0, 1):
            got = ops.logsumexp(mv.tensor(a), axis=axis)
            want = torch.logsumexp(torch.tensor(a), axis)
            assert got.dtype == np.float32 and want.dtype == torch.float32
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("int_dtype", INT_DTYPES)
def test_mean_var_std_and_logsumexp_of_integers_are_float32(int_dtype):
    """The integers as float32 first (the rule of exp, log, … and of int_t / n; PyTorch refuses mean, var and std of
    integers, NumPy computes them in float64). logsumexp of unsigned integers once shifted by the max in uint8
    arithmetic: 0 − 2 wrapped to 254, and e²⁵⁴ overflowed NumPy's float16 to +∞."""
    a = np.array([0, 1, 2, 1], int_dtype) if int_dtype is not np.bool_ else np.array([True, False, True, True])
    f = a.astype(np.float64)
    x = mv.tensor(a)
    for got, want in ((x.mean(), f.mean()), (x.var(), f.var(ddof=1)), (x.std(), f.std(ddof=1)),
                      (ops.logsumexp(x, axis=0), np.log(np.exp(f).sum()))):
        assert got.dtype == np.float32, int_dtype
        np.testing.assert_allclose(got.item(), want, rtol=1e-6)


# ---- integer targets of the Bernoulli losses ---------------------------------------------------------------------
BERNOULLI_LOSSES = {"bce_with_logits": lambda x, t: ops.bce_with_logits(x, t),
                    "bernoulli_log_prob": lambda x, t: ops.bernoulli_log_prob(x, t),
                    "bernoulli_negative_elbo": lambda x, t: ops.bernoulli_negative_elbo(x, t, mv.zeros(2, 1, dtype=x.dtype))}


@pytest.mark.parametrize("name", sorted(BERNOULLI_LOSSES))
@pytest.mark.parametrize("int_dtype", [np.int64, np.uint8, np.bool_])
@pytest.mark.parametrize("float_dtype", [np.float16, np.float32, np.float64])
def test_bernoulli_losses_of_integer_targets_are_in_the_logits_dtype(name, int_dtype, float_dtype):
    """Binary data as integers or bools: the targets are cast to the logits' dtype first, so the value and the logits'
    gradient are those of the same targets given as floats of that dtype, bit for bit (NumPy made int64 targets
    beside float32 logits float64)."""
    x = np.array([[0.5, -1.0, 2.0], [-3.0, 0.0, 4.0]], float_dtype)
    t = np.array([[0, 1, 1], [1, 0, 0]], int_dtype)
    g = np.array([[0.7, -1.3, 0.2], [1.1, 0.4, -0.6]], float_dtype)
    results = []
    for targets in (t, t.astype(float_dtype)):
        logits = leaf(x, float_dtype)
        out = BERNOULLI_LOSSES[name](logits, mv.tensor(targets))
        out.backward(g if out.ndim else None)
        results.append((out, logits.grad))
    (got, got_grad), (want, want_grad) = results
    assert got.dtype == got_grad.dtype == float_dtype
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(got_grad, want_grad)


def test_bernoulli_losses_of_integer_targets_match_torch_of_targets_in_the_logits_dtype():
    """torch 2.13 refuses integer targets ("result type Float can't be cast to the desired output type Long"); cast to
    the logits' dtype, its values are ours, in float32."""
    torch = pytest.importorskip("torch")
    x, t = np.array([0.5, -1.0, 2.0, -30.0], np.float32), np.array([0, 1, 1, 1])
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(t).float(),
                                                                  reduction="none").numpy()
    for ours, sign in ((ops.bce_with_logits(mv.tensor(x), mv.tensor(t)), 1),
                       (ops.bernoulli_log_prob(mv.tensor(x), mv.tensor(t)), -1)):
        assert ours.dtype == np.float32
        np.testing.assert_allclose(sign * ours.numpy(), theirs, rtol=1e-6)


# ---- clip with tensor bounds ------------------------------------------------------------------------------------
def test_clip_takes_tensor_bounds_with_pytorch_s_gradients():
    """Values: numpy.clip (hi wherever lo > hi). Gradients: torch.clamp's, by hand for each case: x̄ = ḡ where
    lo ≤ x ≤ hi (ties to x); l̄o = ḡ where x < lo < hi; h̄i = ḡ where x > hi or hi < lo."""
    x = leaf([0.0, 1.0, 2.0, 3.0, 4.0, 1.0, 3.0, 2.0])
    lo = leaf([1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 2.0])
    hi = leaf([3.0, 3.0, 3.0, 3.0, 3.0, 1.0, 1.0, 2.0])
    z = ops.clip(x, lo, hi)
    np.testing.assert_array_equal(z.numpy(), np.clip(x.data, lo.data, hi.data))
    g = np.arange(1.0, 9.0)
    z.backward(g)
    np.testing.assert_array_equal(x.grad, [0, 2, 3, 4, 0, 0, 0, 8])
    np.testing.assert_array_equal(lo.grad, [1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(hi.grad, [0, 0, 0, 0, 5, 6, 7, 0])


def test_clip_with_one_tensor_bound_broadcasts_and_sums_its_gradient():
    """x (2, 3) against lo (3,) and hi (1,): each bound's gradient is ḡ summed over the places it was taken."""
    x = leaf([[0.0, 1.0, 2.0], [3.0, -1.0, 5.0]])
    lo = leaf([0.5, 0.5, 0.5])
    z = x.clip(min=lo)
    np.testing.assert_array_equal(z.numpy(), np.clip(x.data, lo.data, None))
    z.backward(np.full((2, 3), 2.0))
    np.testing.assert_array_equal(lo.grad, [2.0, 2.0, 0.0])  # taken at (0, 0), (1, 1)
    np.testing.assert_array_equal(x.grad, [[0.0, 2.0, 2.0], [2.0, 0.0, 2.0]])
    x = leaf([[0.0, 1.0, 2.0], [3.0, -1.0, 5.0]])
    hi = leaf([1.5])
    x.clip(max=hi).backward(np.ones((2, 3)))
    np.testing.assert_array_equal(hi.grad, [3.0])  # 2.0, 3.0 and 5.0 are above it
    z = ops.clip(mv.tensor(np.array([0.0, 2.0])), np.array([1.0, 1.0]), 1.5)  # constants: values only
    np.testing.assert_array_equal(z.numpy(), [1.0, 1.5])


# ---- categorical_kl at categories of probability 0 ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_categorical_kl_of_zero_probabilities(dtype):
    """KL(q ‖ p) = Σ_k q_k log(q_k/p_k) of q = softmax(l), p = softmax(l_p), logits −inf among them (by Numba's kernel
    or the formula, as MINIVAE_DISABLE_NUMBA says): a term of q_k = 0 is 0, whatever p_k (NaN from 0·(−inf) before),
    one of p_k = 0 < q_k is +∞. Where it is finite, its gradients are the VJP's formula over q's support, finite:
    l̄_j = ḡ·q_j (d_j − KL), d_j = log(q_j/p_j) (0 off the support); l̄_p,j = ḡ·(p_j − q_j)."""
    inf = np.inf
    logits = np.array([[-inf, 0.0, 1.0], [-inf, 0.0, 1.0], [0.0, 0.0, 1.0]])  # q_0 = 0 under p_0 > 0; both 0; p_0 = 0
    prior = np.array([[0.0, 0.0, 0.0], [-inf, 1.0, 0.0], [-inf, 0.0, 0.0]])
    kl = ops.categorical_kl(mv.tensor(logits.astype(dtype)), mv.tensor(prior.astype(dtype)))
    q, p = (np.exp(x - np.logaddexp.reduce(x, axis=1, keepdims=True))[:2] for x in (logits, prior))
    support = q > 0
    d = np.zeros_like(q)
    d[support] = np.log(q[support] / p[support])
    expected = (q * d).sum(axis=1)
    tol = dict(rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-7 if dtype == np.float32 else 1e-15)
    assert kl.dtype == dtype and kl.data[2] == inf
    np.testing.assert_allclose(kl.data[:2], expected, **tol)
    # the gradients of the finite rows (a row of +∞ sends back 0: test_categorical_kl_row_of_infinity_sends_back_zero_…)
    lq, lp = mv.tensor(logits[:2].astype(dtype), requires_grad=True), mv.tensor(prior[:2].astype(dtype), requires_grad=True)
    g = np.array([0.7, -1.3], dtype)
    ops.categorical_kl(lq, lp).backward(g)
    np.testing.assert_allclose(lq.grad, g[:, None] * q * (d - expected[:, None]), **tol)
    np.testing.assert_allclose(lp.grad, g[:, None] * (p - q), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_categorical_kl_row_of_infinity_with_no_upstream_gradient_sends_back_zero(dtype):
    """A row of KL = +∞ (p_0 = 0 < q_0) whose ḡ is 0 (a loss that does not read it, or the KL of gumbel_softmax_kl when
    only the sample is used further) sends back l̄ = 0, as kl_divergence of the distributions does, not
    q_j·(d_j − ∞)·0 = NaN; the finite row beside it keeps its gradient, and so does the pair's sample."""
    logits = np.array([[0.0, 0.0, 1.0], [0.5, -1.0, 2.0]], dtype)
    prior = np.array([[-np.inf, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype)
    q = np.exp(logits - np.logaddexp.reduce(logits.astype(np.float64), axis=1, keepdims=True))[1]
    p = np.full(3, 1 / 3)
    d = np.log(q / p)
    g = np.array([0.0, 1.5], dtype)
    tol = dict(rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-7 if dtype == np.float32 else 1e-15)
    lq, lp = mv.tensor(logits, requires_grad=True), mv.tensor(prior, requires_grad=True)
    kl = ops.categorical_kl(lq, lp)
    assert kl.data[0] == np.inf
    kl.backward(g)
    np.testing.assert_array_equal(lq.grad[0], 0.0)
    np.testing.assert_allclose(lq.grad[1], 1.5 * q * (d - (q * d).sum()), **tol)
    np.testing.assert_allclose(lp.grad[1], 1.5 * (p - q), **tol)
    np.testing.assert_array_equal(lp.grad[0], 0.0)
    lq2, lp2 = mv.tensor(logits, requires_grad=True), mv.tensor(prior, requires_grad=True)
    kl_divergence(Categorical(logits=lq2), Categorical(logits=lp2)).backward(g)
    np.testing.assert_array_equal(lq2.grad[0], lq.grad[0])
    lq3 = mv.tensor(logits, requires_grad=True)
    y, kl = ops.gumbel_softmax_kl(lq3, mv.tensor(prior), Generator(0), temperature=0.5)
    ((y * mv.tensor(np.array([1.0, -1.0, 0.5], dtype))).sum() + 1.5 * kl[1]).backward()  # kl[0]'s ḡ: 0
    assert np.isfinite(lq3.grad).all()


# ---- softmax, log_softmax, the Gumbel-Softmax and categorical KL of integer and bool tensors ------------------------
INTEGER_DTYPES = [np.bool_, np.uint8, np.int32, np.int64]


@pytest.mark.parametrize("dtype", INTEGER_DTYPES)
def test_softmax_family_of_integer_and_bool_tensors_is_float32(dtype):
    """An integer or bool tensor's softmax, log-softmax (along the last axis, on the fused kernels when Numba is on, and
    along the first), Gumbel-Softmax and categorical KL are float32, the default float (int64's and int32's were
    float64; uint8's x − max x wrapped around, 1 − 2 = 255, and bool's was NumPy's error for a bool subtraction): the
    float32 formula of the values, written out in NumPy, and the same numbers as the ops of the float32 tensor."""
    x = np.array([[1, 0, 2], [0, 1, 1]], dtype)
    v = x.astype(np.float64)
    for axis in (-1, 0):
        log_y = v - v.max(axis=axis, keepdims=True)
        log_y -= np.log(np.exp(log_y).sum(axis=axis, keepdims=True))
        for op, want in ((ops.softmax, np.exp(log_y)), (ops.log_softmax, log_y)):
            y = op(mv.tensor(x), axis=axis)
            assert y.dtype == np.float32, (op, axis)
            np.testing.assert_allclose(y.numpy(), want, rtol=2e-7, atol=1e-7)
    x32 = mv.tensor(x.astype(np.float32))
    log_q = v - np.logaddexp.reduce(v, axis=1, keepdims=True)
    kl = ops.categorical_kl(mv.tensor(x), mv.tensor(x[::-1].copy()))
    assert kl.dtype == np.float32
    np.testing.assert_allclose(kl.numpy(), (np.exp(log_q) * (log_q - log_q[::-1])).sum(axis=1), rtol=1e-6, atol=1e-7)
    sample = ops.gumbel_softmax(mv.tensor(x), Generator(3), temperature=0.5)
    assert sample.dtype == np.float32
    np.testing.assert_array_equal(sample.numpy(), ops.gumbel_softmax(x32, Generator(3), temperature=0.5).numpy())
    pair = ops.gumbel_softmax_kl(mv.tensor(x), mv.tensor(x), Generator(3), temperature=0.5)
    assert [t.dtype for t in pair] == [np.float32, np.float32]
    np.testing.assert_array_equal(pair[0].numpy(), sample.numpy())
    np.testing.assert_allclose(pair[1].numpy(), 0.0, atol=1e-7)


# ---- straight_through along one axis ----------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [(0, 1), [1, 0], None])
def test_straight_through_over_several_axes_is_refused(axis):
    """The one-hot was taken along the first of several axes alone: straight_through(y, axis=(0, 1)) of a (2, 2) y gave
    one 1 per column, [[0, 1], [1, 0]], not one 1 (F.gumbel_softmax(hard=True) refuses several axes for this reason);
    axis=None of a 1-D y is its one axis, and a one-element tuple is that axis."""
    y = mv.tensor(np.array([[0.1, 0.5], [0.9, 0.2]]))
    with pytest.raises(ValueError, match="straight_through takes one axis"):
        ops.straight_through(y, axis=axis)
    np.testing.assert_array_equal(ops.straight_through(mv.tensor(np.array([0.2, 0.7, 0.1])), axis=None).numpy(), [0, 1, 0])
    np.testing.assert_array_equal(ops.straight_through(y, axis=(0,)).numpy(), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(ops.straight_through(y, axis=(1,)).numpy(), [[0, 1], [1, 0]])


# ---- float16 reductions accumulate in float32, as PyTorch's ------------------------------------------------------------
def _float16_cases():
    rng = np.random.default_rng(5)
    return {"near-1000": ((1000 + 8 * rng.random((4096, 3))).astype(np.float16), 0),   # Σ(x − m)² and Σx overflow
            "spread-10": ((10 * rng.standard_normal((4096, 3))).astype(np.float16), 0),
            "70000-ones": (np.ones((3, 70000), np.float16), 1),                         # n = 70000 > 65504
            "70000-ones-axis-0": (np.ones((70000, 2), np.float16), 0)}                  # (not the fused kernels' axis)


F16_OPS = {"sum": (ops.sum, lambda t, a: t.sum(dim=a)), "mean": (ops.mean, lambda t, a: t.mean(dim=a)),
           "var": (ops.var, lambda t, a: t.var(dim=a)), "std": (ops.std, lambda t, a: t.std(dim=a)),
           "logsumexp": (ops.logsumexp, lambda t, a: t.logsumexp(dim=a)),
           "softmax": (ops.softmax, lambda t, a: t.softmax(dim=a)),
           "log_softmax": (ops.log_softmax, lambda t, a: t.log_softmax(dim=a))}


@pytest.mark.parametrize("case", ["near-1000", "spread-10", "70000-ones", "70000-ones-axis-0"])
@pytest.mark.parametrize("name", list(F16_OPS))
def test_float16_reductions_add_in_float32_as_torch(name, case):
    """float16 sums, means, variances, standard deviations, log-sum-exps, softmaxes and log-softmaxes are computed in
    float32 and rounded once to float16, values and gradients, as PyTorch's: added in float16, Σ(x − m)² of 4096 values
    of spread 10 overflowed (var +∞ where torch's is 98.75), Σx along a strided axis lost digits, 1/70000 was 0 (the
    mean's x̄, and a softmax over 70000 equal values was 0 everywhere). Expected: the float64 formula (torch in float64)
    of the float16 inputs and ḡ; the value within a float16 ulp (4096 terms added in float32 may take it past half a
    float16 ulp, as torch's), the gradient within a float16 ulp of the largest; and the value within a float16 ulp of
    torch's float16 one, where torch accumulates in float32 too (not its logsumexp and log_softmax over 70000 terms,
    which overflow to ±inf). (torch's float16 gradients of logsumexp and softmax differ from the exact ones by its
    float16-rounded y, which its VJP reuses; here y is kept in float32 for the VJP.)"""
    torch = pytest.importorskip("torch")
    x, axis = _float16_cases()[case]
    ours, theirs = F16_OPS[name]
    a = mv.tensor(x, requires_grad=True)
    y = ours(a, axis=axis)
    assert y.dtype == np.float16
    g = np.linspace(0.5, 1.5, y.data.size).astype(np.float16).reshape(y.shape)
    y.backward(g)
    t64 = torch.tensor(x.astype(np.float64), requires_grad=True)
    y64 = theirs(t64, axis)
    y64.backward(torch.tensor(g.astype(np.float64)))
    want, want_grad = y64.detach().numpy(), t64.grad.numpy()
    with np.errstate(over="ignore"):
        spacing = np.spacing(np.abs(want).astype(np.float16)).astype(np.float64)
    got = y.numpy().astype(np.float64)
    finite = np.isfinite(want.astype(np.float16))
    assert np.array_equal(np.isfinite(got), finite)  # (Σ of 4096 values near 1000 is +∞ in float16, as torch's)
    assert np.all(np.abs(got - want)[finite] <= spacing[finite])
    grad_tol = np.spacing(np.float16(np.abs(want_grad).max())).astype(np.float64)
    np.testing.assert_allclose(a.grad.astype(np.float64), want_grad, rtol=2 ** -10, atol=grad_tol)
    if not (name in ("logsumexp", "log_softmax") and case.startswith("70000-ones")):
        y16 = theirs(torch.tensor(x), axis).numpy().astype(np.float64)
        assert np.all(np.abs(got - y16)[finite] <= spacing[finite])


# ---- categorical_kl on a row of +∞ with an upstream gradient ------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_categorical_kl_row_of_infinity_sends_back_zero_for_any_upstream_gradient(dtype):
    """On a row of KL = +∞ (p_0 = 0 < q_0) the KL is +∞ for every finite l (q_0 > 0 for all of them): l̄ = 0 there,
    whatever ḡ (q_j·(d_j − ∞)·ḡ was −∞ and NaN: [−inf, nan, −inf] for ḡ = 1.5, which an encoder spreads to all its
    weights; torch's kl_divergence gives NaN there, whatever ḡ). The prior's l̄_p keeps ḡ·(p − q), finite; the finite row
    beside it keeps its gradient; by the fused kernel (Numba) or the formula, and through gumbel_softmax_kl."""
    logits = np.array([[0.0, 0.0, 1.0], [0.5, -1.0, 2.0]], dtype)
    prior = np.array([[-np.inf, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype)
    v = logits.astype(np.float64)
    q = np.exp(v - np.logaddexp.reduce(v, axis=1, keepdims=True))
    p = np.array([[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    d = np.log(q[1] / p[1])
    g = np.array([1.5, -0.5], dtype)
    tol = dict(rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-7 if dtype == np.float32 else 1e-15)
    lq, lp = mv.tensor(logits, requires_grad=True), mv.tensor(prior, requires_grad=True)
    kl = ops.categorical_kl(lq, lp)
    assert kl.data[0] == np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from ∞ − ∞ either
        kl.backward(g)
    np.testing.assert_array_equal(lq.grad[0], 0.0)
    np.testing.assert_allclose(lq.grad[1], -0.5 * q[1] * (d - (q[1] * d).sum()), **tol)
    np.testing.assert_allclose(lp.grad, g[:, None] * (p - q), **tol)
    lq3 = mv.tensor(logits, requires_grad=True)
    y, kl = ops.gumbel_softmax_kl(lq3, mv.tensor(prior), Generator(0), temperature=0.5)
    (kl * mv.tensor(g)).sum().backward()  # the sample's ḡ never comes: the KL's alone
    np.testing.assert_array_equal(lq3.grad[0], 0.0)
    np.testing.assert_allclose(lq3.grad[1], lq.grad[1], **tol)
