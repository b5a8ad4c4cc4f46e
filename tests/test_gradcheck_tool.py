"""The checker itself: it passes correct VJPs and catches planted wrong ones."""
import warnings

import numpy as np
import pytest

import minivae as mv
from minivae import ops


def planted(backward):
    """An op computing softmax whose VJP is replaced by ``backward(y, g)``."""
    class Planted(mv.Function):
        def forward(ctx, x):
            y = np.exp(x - x.max(-1, keepdims=True))
            y /= y.sum(-1, keepdims=True)
            ctx.save(y=y)
            return y

        def backward(ctx, g):
            return backward(ctx.y, g)
    return Planted.apply


def softmax_vjp(y, g):
    return y * (g - (g * y).sum(-1, keepdims=True))


SHAPES = [(3, 4), (40, 30), (80, 60)]  # full Jacobian, entrywise Jᵀv, random directions


@pytest.mark.parametrize("shape", SHAPES)
def test_accepts_a_correct_vjp(shape):
    assert mv.gradcheck(planted(softmax_vjp), [np.random.default_rng(0).normal(size=shape)])


@pytest.mark.parametrize("shape", SHAPES)
def test_catches_a_zero_vjp_that_all_ones_upstream_would_hide(shape):
    zero = planted(lambda y, g: np.zeros_like(g))
    x = np.random.default_rng(1).normal(size=shape)
    # with an all-ones upstream gradient the true softmax VJP is 0 too: the checker must not use one
    np.testing.assert_allclose(softmax_vjp(np.exp(x) / np.exp(x).sum(-1, keepdims=True), np.ones(shape)), 0, atol=1e-12)
    with pytest.raises(mv.GradcheckError):
        mv.gradcheck(zero, [x])


@pytest.mark.parametrize("shape", [(3, 4), (40, 30)])
def test_catches_one_wrong_entry_and_names_it(shape):
    def off_by_one_entry(y, g):
        gx = softmax_vjp(y, g)
        gx[2, 1] *= 1.01
        return gx
    with pytest.raises(mv.GradcheckError, match=r"input 0 .* at index \(2, 1\)"):
        mv.gradcheck(planted(off_by_one_entry), [np.random.default_rng(2).normal(size=shape)])


def test_message_names_the_second_input():
    class WrongSecond(mv.Function):
        def forward(ctx, x, y):
            ctx.save(x=x, y=y)
            return x * y

        def backward(ctx, g):
            return g * ctx.y, g * ctx.x * 2
    with pytest.raises(mv.GradcheckError, match="input 1"):
        mv.gradcheck(WrongSecond.apply, [np.ones(3), np.ones(3) * 2])


def test_too_coarse_a_step_is_detected():
    # central differences err by eps²/6·f''' ; for x⁴ at x = 1 with eps = 0.1 that is 0.04 of 4
    with pytest.raises(mv.GradcheckError):
        mv.gradcheck(lambda x: x ** 4, [np.ones(1)], eps=0.1)
    assert mv.gradcheck(lambda x: x ** 4, [np.ones(1)])


def test_float32_inputs_are_upcast_with_a_warning():
    with pytest.warns(UserWarning, match="float32"):
        assert mv.gradcheck(ops.tanh, [np.ones(3, dtype=np.float32)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_transposed_input_is_perturbed_where_the_function_reads_it(dtype):
    """A transposed (F-ordered) input, float32 upcast or float64 copied: the finite differences must reach the
    function (a step written into a copy made by reshape(-1) left the numeric gradient 0 and failed a correct op),
    and a wrong VJP must still fail."""
    x = np.arange(1, 7, dtype=dtype).reshape(2, 3).T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # float32 is upcast, with a warning
        assert mv.gradcheck(lambda t: (t * t * t).sum(axis=0), [x])
        with pytest.raises(mv.GradcheckError):
            mv.gradcheck(planted(lambda y, g: softmax_vjp(y, g) * 1.01), [x])


def test_constant_inputs_are_held_fixed():
    w = mv.tensor(np.array([1.0, 2.0]))  # requires_grad=False: not checked, not perturbed
    assert mv.gradcheck(lambda x, w: x * w, [np.ones(2), w])
    with pytest.raises(ValueError, match="no floating input"):
        mv.gradcheck(lambda w: w * 2, [w])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("factor", [1 + 1e-5, 1 - 1e-5])
def test_catches_a_vjp_off_by_one_part_in_100000(shape, factor):
    # a relative error that rtol=1e-3 let through (the error model in gradcheck's docstring)
    x = np.random.default_rng(3).normal(size=shape)
    assert mv.gradcheck(planted(softmax_vjp), [x])
    with pytest.raises(mv.GradcheckError):
        mv.gradcheck(planted(lambda y, g: softmax_vjp(y, g) * factor), [x])


def test_catches_a_tanh_vjp_off_by_nine_parts_in_ten_thousand():
    class Tanh(mv.Function):
        def forward(ctx, x):
            ctx.save(y=np.tanh(x))
            return ctx.y

        def backward(ctx, g):
            return g * (1 - ctx.y ** 2) * 1.0009
    with pytest.raises(mv.GradcheckError):
        mv.gradcheck(Tanh.apply, [np.linspace(-2, 2, 7)])


def test_a_non_finite_value_fails_and_says_so():
    with pytest.raises(mv.GradcheckError, match="fn's value is not finite"):
        mv.gradcheck(lambda t: t.log(), [np.array([-1.0, 1.0])])


def test_a_non_finite_analytic_gradient_fails_and_says_so():
    class NanBackward(mv.Function):
        def forward(ctx, x):
            return x * 2

        def backward(ctx, g):
            return g * np.nan
    with pytest.raises(mv.GradcheckError, match="analytic gradient of input 0 is not finite"):
        mv.gradcheck(NanBackward.apply, [np.ones(3)])


def test_a_non_finite_numeric_gradient_fails_and_says_so():
    # log at 1e-7 and its gradient 1e7 are finite, but 1e-7 − eps is outside log's domain
    with pytest.raises(mv.GradcheckError, match="not finite at a point eps away from the input"):
        mv.gradcheck(ops.log, [np.array([1e-7, 1.0])])


def test_an_empty_output_still_runs_the_vjp():
    class WrongShape(mv.Function):
        def forward(ctx, x):
            return x * 2

        def backward(ctx, g):
            return g[:, None]
    with pytest.raises(RuntimeError, match="shape"):
        mv.gradcheck(WrongShape.apply, [np.ones((0, 3))])


@pytest.mark.parametrize("kwargs,message", [
    (dict(eps=-1e-6), "eps must be a finite number > 0, got -1e-06"),  # was: a correct VJP blamed (numeric sign flipped)
    (dict(eps=0.0), "eps must be a finite number > 0, got 0.0"),       # was: ZeroDivisionError
    (dict(eps=float("nan")), "eps must be a finite number > 0"),
    (dict(atol=float("nan")), "atol must be >= 0, got nan"),           # was: every comparison false, every VJP passes
    (dict(rtol=-1e-6), "rtol must be >= 0"),
    (dict(value_rtol=float("nan")), "value_rtol must be >= 0"),
    (dict(n_directions=0), "n_directions must be an integer >= 1"),    # was: the third tier checked nothing, and passed
    (dict(n_directions=2.5), "n_directions must be an integer >= 1"),
])
def test_bad_arguments_are_refused_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mv.gradcheck(ops.tanh, [np.ones(3)], **kwargs)


@pytest.mark.parametrize("fn", [lambda x: x.numpy() * 2, lambda x: (x * 2, x)], ids=["array", "tuple"])
def test_fn_must_return_one_tensor(fn):
    with pytest.raises(TypeError, match="fn must return one Tensor, got (ndarray|tuple)"):
        mv.gradcheck(fn, [np.ones(3)])


@pytest.mark.parametrize("make", [np.asarray, lambda a: mv.tensor(a, requires_grad=True)], ids=["array", "tensor"])
def test_one_input_may_be_given_alone_as_torch_takes_it(make):
    """gradcheck(fn, x) as torch.autograd.gradcheck(fn, x): x is the one input (x was iterated, and fn given its rows
    as that many arguments; a 1-D tensor's entries became inputs held constant: "no floating input to check")."""
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert mv.gradcheck(planted(softmax_vjp), make(x.copy()))
    with pytest.raises(mv.GradcheckError, match="input 0"):
        mv.gradcheck(planted(lambda y, g: 1.001 * softmax_vjp(y, g)), make(x.copy()))
