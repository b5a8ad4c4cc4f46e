"""empty, the *_like functions, linspace, eye and randint: PyTorch's signatures, dtypes and refusals (compared with
torch when it is installed), linspace's values within half a unit in the last place of the exact ones (Python
fractions), the draws equal to the Generator's own, and every constructor made on the (emulated) GPU by the device's
module, nothing uploaded from the host but randint's values."""
import re
from fractions import Fraction

import numpy as np
import pytest

import minivae as mv
from minivae._backend import use_cuda_kernels
from minivae.random import Generator
from tests.strict_array import UPLOADS, emulating, record


def torch_or_skip():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def same(ours, theirs):
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch."), (ours.dtype, theirs.dtype)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# ---- empty and the *_like functions ------------------------------------------------------------------------------
def test_empty_has_the_shape_dtype_and_flags_asked_for():
    """(Its values are whatever memory held: not read.)"""
    for e, shape, dtype in ((mv.empty(2, 3), (2, 3), np.float32), (mv.empty((4,), dtype=np.int16), (4,), np.int16),
                            (mv.empty(np.array([2, 0])), (2, 0), np.float32), (mv.empty(2, dtype=None), (2,), np.float32)):
        assert e.shape == shape and e.dtype == dtype and e.device == "cpu" and not e.requires_grad
    e = mv.empty(3, dtype=np.float64, requires_grad=True)
    assert e.requires_grad and e.is_leaf
    with pytest.raises(TypeError, match="empty: dtype complex64 is not a real dtype"):
        mv.empty(2, dtype=np.complex64)
    with pytest.raises(ValueError, match="negative dimensions"):
        mv.empty(-1)
    with pytest.raises(TypeError, match="a bool is not a size"):
        mv.empty(True)


LIKE = {"zeros_like": lambda f, x, **k: f.zeros_like(x, **k), "ones_like": lambda f, x, **k: f.ones_like(x, **k),
        "full_like": lambda f, x, **k: f.full_like(x, 3, **k), "full_like-float": lambda f, x, **k: f.full_like(x, 2.5, **k)}


@pytest.mark.parametrize("name", sorted(LIKE))
@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.bool_])
def test_like_functions_take_the_input_s_dtype_as_torch(name, dtype):
    """The input's shape and dtype (full_like: not the fill's dtype), or the dtype given."""
    torch = torch_or_skip()
    x = np.ones((2, 3), dtype)
    make = LIKE[name]
    same(make(mv, mv.tensor(x)), make(torch, torch.tensor(x)))
    same(make(mv, mv.tensor(x), dtype=np.int64), make(torch, torch.tensor(x), dtype=torch.int64))
    assert make(mv, x).dtype == dtype  # an array serves as the input too


def test_like_functions_flags_and_refusals():
    x = mv.tensor(np.ones((2, 3)), requires_grad=True)
    for made in (mv.zeros_like(x), mv.ones_like(x), mv.full_like(x, 1.0), mv.empty_like(x), mv.rand_like(x),
                 mv.randn_like(x)):
        assert made.shape == (2, 3) and made.dtype == np.float64 and made.device == "cpu"
        assert not made.requires_grad and made.is_leaf  # (requires_grad is not taken from the input, as torch)
    assert mv.empty_like(x, dtype=np.int8).dtype == np.int8 and mv.zeros_like(x, requires_grad=True).requires_grad
    with pytest.raises(TypeError, match="zeros_like: input must be a tensor or an array, not list"):
        mv.zeros_like([1.0, 2.0])
    with pytest.raises(TypeError, match="only floating tensors can require gradients"):
        mv.ones_like(mv.tensor(np.ones(2, np.int64)), requires_grad=True)
    with pytest.raises(TypeError, match="dtype complex128 is not a real dtype"):
        mv.empty_like(x, dtype=np.complex128)


@pytest.mark.parametrize("make", [lambda x, v: mv.full_like(x, v), lambda x, v: mv.full(x.shape, v, dtype=x.dtype),
                                  lambda x, v: x.new_full((2,), v)], ids=["full_like", "full", "new_full"])
@pytest.mark.parametrize("dtype,value", [(np.int8, 300), (np.int8, -129), (np.uint8, -1), (np.int64, 2 ** 63),
                                         (np.int16, 1e10)])
def test_an_integer_fill_out_of_the_dtype_s_range_is_refused(make, dtype, value):
    """full refused a float out of an integer dtype's range, but left an int to NumPy (OverflowError, where the
    docstring promises full's ValueError) and so to CuPy, whose fill wraps it around (300 as int8: 44). torch refuses
    it ("value cannot be converted to type int8_t without overflow")."""
    x = mv.tensor(np.zeros(2, dtype))
    with pytest.raises(ValueError, match=f"cannot be converted to {np.dtype(dtype)} without overflow"):
        make(x, value)
    assert mv.full_like(x, np.iinfo(dtype).max).data.tolist() == [np.iinfo(dtype).max] * 2


def test_rand_like_and_randn_like_draw_as_rand_and_randn():
    """The Generator's own draws of the input's shape and dtype; rng= or generator=; an integer input is refused
    (torch: "check_uniform_bounds" not implemented for 'Long')."""
    x = mv.tensor(np.ones((3, 2), np.float64))
    np.testing.assert_array_equal(mv.rand_like(x, rng=Generator(5)).data, Generator(5).uniform((3, 2), np.float64))
    np.testing.assert_array_equal(mv.randn_like(x, generator=Generator(5)).data, Generator(5).normal((3, 2), np.float64))
    np.testing.assert_array_equal(mv.randn_like(x, rng=Generator(6), dtype=np.float16).data,
                                  Generator(6).normal((3, 2), np.float16))
    mv.manual_seed(9)
    first = mv.rand_like(x).data
    mv.manual_seed(9)
    np.testing.assert_array_equal(mv.rand_like(x).data, first)
    for draw in (mv.rand_like, mv.randn_like):
        with pytest.raises(TypeError, match=f"{draw.__name__}: dtype int64 is not a floating dtype"):
            draw(mv.tensor(np.ones(2, np.int64)))
        with pytest.raises(TypeError, match="not both"):
            draw(x, rng=Generator(1), generator=Generator(1))


# ---- linspace -----------------------------------------------------------------------------------------------------
def half_ulp(v, dtype):
    return Fraction(float(np.spacing(np.abs(np.array(v, dtype))))) / 2


RANGES = [(0, 1, 7), (-3.3, 7.1, 50), (1e6, 1e6 + 1, 11), (5, -5, 4), (2, 2, 3), (0.1, 0.7, 2), (3, 9, 1), (0, 1, 0)]


@pytest.mark.parametrize("start,end,steps,dtype", [(*r, d) for d in (None, np.float64, np.float16) for r in RANGES
                                                   if d is not np.float16 or r[1] < 1000])  # (float16: up to 65504)
def test_linspace_values_are_rounded_once_and_its_ends_exact(start, end, steps, dtype):
    """Each value within half an ulp of the exact start + i·(end − start)/(steps − 1) (plus float64's error), the ends
    exact; PyTorch's dtype and length, and its values to two ulps of the ends (it computes in the dtype, rounding more
    than once)."""
    out = mv.linspace(start, end, steps, dtype=dtype)
    assert out.dtype == (np.float32 if dtype is None else dtype) and out.shape == (steps,)
    float64_error = Fraction(max(abs(start), abs(end))) * Fraction(2 ** -50)  # start + i·δ in float64
    for i, got in enumerate(out.data):
        want = Fraction(start) + i * (Fraction(end) - Fraction(start)) / (steps - 1) if steps > 1 else Fraction(start)
        assert abs(Fraction(float(got)) - want) <= half_ulp(got, out.dtype) + float64_error, (i, got)
    if steps > 1:
        assert out.data[0] == out.dtype.type(start) and out.data[-1] == out.dtype.type(end)
    torch = torch_or_skip()
    theirs = torch.linspace(start, end, steps, dtype=None if dtype is None else getattr(torch, np.dtype(dtype).name))
    assert str(theirs.dtype) == f"torch.{out.dtype}" and theirs.numel() == steps
    # (torch's float32 start + i·δ is a few ulps of the ends off: near 0, far more than an ulp of the value)
    ends_ulp = float(np.spacing(np.array(max(abs(start), abs(end)), out.dtype)))
    np.testing.assert_allclose(out.data, theirs.numpy(), rtol=0, atol=2 * ends_ulp)


@pytest.mark.parametrize("start,end,steps,dtype", [(0, 10, 5, np.int64), (-3.7, 3.7, 4, np.int64), (0, 100, 7, np.int32),
                                                   (10, -10, 6, np.int32), (0, 100, 7, np.uint8), (0.5, 9.9, 5, np.uint8)])
def test_linspace_of_an_integer_dtype_truncates_as_torch(start, end, steps, dtype):
    """The bounds truncated to integers, then each value (as torch; the values of linspace(0.5, 9.9, 5) were truncated
    from the float ones: [0, 2, 5, 7, 9], torch's [0, 2, 4, 6, 9])."""
    out = mv.linspace(start, end, steps, dtype=dtype)
    lo, hi = int(start), int(end)
    delta = Fraction(hi - lo, steps - 1)
    assert out.dtype == dtype and out.data.tolist() == [int(lo + i * delta) for i in range(steps)]
    torch = torch_or_skip()
    same(out, torch.linspace(start, end, steps, dtype=getattr(torch, np.dtype(dtype).name)))


@pytest.mark.parametrize("args,kwargs,error,match", [
    ((0, 1, -1), {}, ValueError, "number of steps must be non-negative"),
    ((0, 1, 2.5), {}, TypeError, "steps must be an integer"),
    ((0, 1, True), {}, TypeError, "steps must be an integer"),
    ((0, float("inf"), 3), {}, ValueError, "unsupported range"),
    ((float("nan"), 1, 3), {}, ValueError, "unsupported range"),
    ((0, 1, 3), {"dtype": np.bool_}, TypeError, "dtype bool is not supported"),
    ((-1, 5, 3), {"dtype": np.uint8}, ValueError, "not within uint8's range"),
    ((0, 300, 3), {"dtype": np.int8}, ValueError, "not within int8's range"),
    ((0, 1, 3), {"dtype": np.complex64}, TypeError, "not a real dtype"),
    ((0, 1j, 3), {}, TypeError, "complex"),
], ids=["negative", "float-steps", "bool-steps", "inf", "nan", "bool", "uint8-range", "int8-range", "complex-dtype",
        "complex-end"])
def test_linspace_refuses_what_it_cannot_make(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        mv.linspace(*args, **kwargs)


def test_linspace_takes_0_d_tensors_and_requires_grad():
    out = mv.linspace(mv.tensor(np.float64(1.0)), mv.tensor(np.int64(3)), 3, dtype=np.float64, requires_grad=True)
    assert out.data.tolist() == [1.0, 2.0, 3.0] and out.requires_grad


# ---- eye ----------------------------------------------------------------------------------------------------------
def test_eye_as_torch():
    torch = torch_or_skip()
    same(mv.eye(3), torch.eye(3))
    same(mv.eye(2, 4), torch.eye(2, 4))
    same(mv.eye(4, 2, dtype=np.int32), torch.eye(4, 2, dtype=torch.int32))
    same(mv.eye(0), torch.eye(0))
    same(mv.eye(3, dtype=np.bool_), torch.eye(3, dtype=torch.bool))
    assert mv.eye(2, requires_grad=True).requires_grad
    for args, error, match in (((-1,), ValueError, "negative dimensions"), ((2, -1), ValueError, "negative dimensions"),
                               ((True,), TypeError, "a bool is not a size"), ((2.0,), TypeError, "integer"),
                               ((2,), TypeError, "not a real dtype")):
        with pytest.raises(error, match=match):
            mv.eye(*args, dtype=np.complex64 if match == "not a real dtype" else np.float32)


# ---- randint ------------------------------------------------------------------------------------------------------
def test_randint_draws_the_generator_s_integers_with_torch_s_signature():
    np.testing.assert_array_equal(mv.randint(3, 10, (4, 5), rng=Generator(2)).data,
                                  Generator(2).integers(3, 10, (4, 5)))
    np.testing.assert_array_equal(mv.randint(10, (6,), generator=Generator(2)).data, Generator(2).integers(0, 10, (6,)))
    np.testing.assert_array_equal(mv.randint(-5, 5, size=(3,), rng=Generator(3), dtype=np.int8).data,
                                  Generator(3).integers(-5, 5, (3,), np.int8))
    x = mv.randint(0, 4, (1000,), rng=Generator(4))
    assert x.dtype == np.int64 and set(x.data.tolist()) == {0, 1, 2, 3}
    f = mv.randint(0, 4, (3,), rng=Generator(4), dtype=np.float32, requires_grad=True)
    assert f.dtype == np.float32 and f.requires_grad and f.data.tolist() == Generator(4).integers(0, 4, (3,)).tolist()
    mv.manual_seed(11)
    first = mv.randint(100, (5,)).data
    mv.manual_seed(11)
    np.testing.assert_array_equal(mv.randint(100, (5,)).data, first)
    torch = torch_or_skip()
    assert torch.randint(10, (6,)).dtype == torch.int64 and torch.randint(0, 4, (3,), dtype=torch.float32).is_floating_point()


@pytest.mark.parametrize("call,error,match", [
    (lambda: mv.randint(10), TypeError, re.escape("randint(high, size)")),
    (lambda: mv.randint(5, 5, (2,)), ValueError, "empty"),
    (lambda: mv.randint(0, 2.5, (2,)), TypeError, "randint: high must be an integer"),
    (lambda: mv.randint(0, 300, (2,), dtype=np.uint8), ValueError, "not within uint8's range"),
    (lambda: mv.randint(0, 3, (2,), dtype=np.complex64), TypeError, "not a real dtype"),
    (lambda: mv.randint(0, 3, (-2,)), ValueError, "negative dimensions"),
    (lambda: mv.randint(0, 3, (2,), requires_grad=True), TypeError, "only floating tensors can require gradients"),
], ids=["no-size", "empty-range", "float-bound", "dtype-range", "complex", "negative-size", "requires-grad-int"])
def test_randint_refusals(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---- on the device ------------------------------------------------------------------------------------------------
def test_every_constructor_makes_its_array_on_the_device():
    """device="cuda" (the emulated GPU): the device module's own constructors, no host array uploaded; randint's values,
    drawn on the host, are the one upload; the *_like functions follow the input's device. (The draws by the array
    formulas: the CUDA kernels need CuPy.)"""
    with use_cuda_kernels(False), emulating():
        x = mv.tensor(np.ones((2, 3), np.float32), device="cuda")
        with record(UPLOADS) as uploads:
            made = {"empty": mv.empty(2, 3, device="cuda"), "linspace": mv.linspace(0, 1, 5, device="cuda"),
                    "linspace-int": mv.linspace(0, 10, 5, dtype=np.int64, device="cuda"),
                    "eye": mv.eye(3, 2, device="cuda"), "zeros_like": mv.zeros_like(x), "ones_like": mv.ones_like(x),
                    "full_like": mv.full_like(x, 2.5), "empty_like": mv.empty_like(x),
                    "rand_like": mv.rand_like(x, rng=Generator(1)), "randn_like": mv.randn_like(x, rng=Generator(1))}
        assert uploads == []
        for name, t in made.items():
            assert t.device == "cuda", name
        np.testing.assert_array_equal(made["linspace"].numpy(), mv.linspace(0, 1, 5).numpy())
        np.testing.assert_array_equal(made["eye"].numpy(), np.eye(3, 2, dtype=np.float32))
        np.testing.assert_array_equal(made["full_like"].numpy(), np.full((2, 3), 2.5, np.float32))
        np.testing.assert_array_equal(made["rand_like"].numpy(), Generator(1).uniform((2, 3)))
        assert mv.zeros_like(x, device="cpu").device == "cpu"
        with record(UPLOADS) as uploads:
            r = mv.randint(0, 9, (4,), rng=Generator(3), device="cuda")
        assert r.device == "cuda" and len(uploads) == 1
        np.testing.assert_array_equal(r.numpy(), Generator(3).integers(0, 9, (4,)))
