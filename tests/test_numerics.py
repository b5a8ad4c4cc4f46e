"""No NaN or inf in values or gradients for logits up to |x| = 1e4 and temperatures 1e-3 … 1e3,
and the right limits there (each expected value is the function's exact limit)."""
import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import ops
from minivae._backend import use_numba

EXTREME = np.array([-1e4, -30.0, -1.0, 0.0, 1.0, 30.0, 1e4])
TEMPERATURES = [1e-3, 1e-1, 1.0, 1e3]


def value_and_grad(fn, x, dtype):
    t = mv.tensor(x.astype(dtype), requires_grad=True)
    y = fn(t)
    g = np.random.default_rng(0).normal(size=y.shape).astype(dtype)
    y.backward(g)
    assert np.all(np.isfinite(y.data)), y.data
    assert np.all(np.isfinite(t.grad)), t.grad
    return y.data, t.grad


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softplus_and_sigmoid_at_extremes(dtype):
    y, g = value_and_grad(ops.softplus, EXTREME, dtype)
    assert y[-1] == 1e4 and y[0] == 0.0  # log(1 + e^x) → x and → 0
    y, g = value_and_grad(ops.sigmoid, EXTREME, dtype)
    assert y[-1] == 1.0 and y[0] == 0.0 and y[3] == 0.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tau", TEMPERATURES)
def test_softmax_family_at_extremes(dtype, tau):
    x = np.stack([EXTREME, EXTREME[::-1], np.full(7, 1e4)])
    p, _ = value_and_grad(lambda t: F.softmax(t, temperature=tau), x, dtype)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
    lp, _ = value_and_grad(lambda t: F.log_softmax(t, temperature=tau), x, dtype)
    assert lp[0, -1] == 0.0 or tau == 1e3  # the largest logit takes all the mass unless τ is huge
    np.testing.assert_allclose(lp[2], np.log(1 / 7), rtol=1e-5)  # equal logits: uniform
    lse, _ = value_and_grad(lambda t: ops.logsumexp(t / tau, axis=-1), x, dtype)
    np.testing.assert_allclose(lse[2], 1e4 / tau + np.log(7), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_with_logits_at_extremes(dtype):
    t = np.array([1.0, 0.0, 0.5, 0.5, 1.0, 0.0, 0.0])
    y, g = value_and_grad(lambda x: F.binary_cross_entropy_with_logits(x, mv.tensor(t.astype(dtype)), reduction="none"),
                          EXTREME, dtype)
    assert y[0] == 1e4 and y[-1] == 1e4  # confident and wrong: −log σ(−1e4) = 1e4
    assert y[1] < 1e-12 and y[4] == pytest.approx(np.log1p(np.exp(-1.0)))  # right: → 0
    assert y[3] == pytest.approx(np.log(2.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_log_prob_is_bce_negated_bit_for_bit_at_extremes(dtype):
    """One op for −bce (Bernoulli.log_prob): the same values and gradients, negated exactly (a negation
    rounds nothing), finite at logits ±1e4, with and without the fused kernels."""
    t = mv.tensor(np.array([1.0, 0.0, 0.5, 0.5, 1.0, 0.0, 0.0], dtype))
    for numba in (True, False):
        with use_numba(numba):
            lp, glp = value_and_grad(lambda x: ops.bernoulli_log_prob(x, t), EXTREME, dtype)
            bce, gbce = value_and_grad(lambda x: -ops.bce_with_logits(x, t), EXTREME, dtype)
        np.testing.assert_array_equal(lp, bce)
        np.testing.assert_array_equal(glp, gbce)
        assert lp[0] == -1e4 and lp.dtype == dtype


def test_bce_matches_the_probability_formula_where_that_is_safe():
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=50), rng.uniform(size=50)
    p = 1 / (1 + np.exp(-x))
    expected = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    np.testing.assert_allclose(ops.bce_with_logits(mv.tensor(x), mv.tensor(t)).data, expected, rtol=1e-10)
    assert F.binary_cross_entropy_with_logits(mv.tensor(x), mv.tensor(t)).item() == pytest.approx(expected.sum())
    assert F.binary_cross_entropy_with_logits(mv.tensor(x), mv.tensor(t), "mean").item() == pytest.approx(expected.mean())
    with pytest.raises(ValueError, match="reduction"):
        F.binary_cross_entropy_with_logits(mv.tensor(x), mv.tensor(t), reduction="avg")


def test_softmax_matches_the_definition_where_that_is_safe():
    x = np.random.default_rng(1).normal(size=(4, 6))
    for tau in (0.5, 2.0):
        e = np.exp(x / tau)
        np.testing.assert_allclose(F.softmax(mv.tensor(x), temperature=tau).data, e / e.sum(-1, keepdims=True))
        np.testing.assert_allclose(F.log_softmax(mv.tensor(x), axis=0, temperature=tau).data,
                                   np.log(e / e.sum(0, keepdims=True)))


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int8, np.bool_])
def test_gumbel_softmax_promotes_integer_logits_before_adding_noise(dtype):
    """Noise cast to integer logits' dtype would be truncated (to 0 mostly): the sample would be
    softmax(logits), the same for every seed."""
    from minivae.random import Generator
    logits = np.array([[1, 0, 1, 1]] * 64).astype(dtype)
    for axis in (-1, 0):
        a = F.gumbel_softmax(mv.tensor(logits), rng=Generator(0), axis=axis).data
        b = F.gumbel_softmax(mv.tensor(logits.astype(np.float64)), rng=Generator(0), axis=axis).data
        assert a.dtype.kind == "f"
        np.testing.assert_allclose(a, b, rtol=1e-6)
        assert not np.allclose(a, F.softmax(mv.tensor(logits.astype(np.float64)), axis=axis).data)


def test_sampling_ops_give_nan_for_nan_logits():
    """NaN in, NaN out, as for every other op: numpy.argmax points at a NaN, which made a clean
    one-hot (hard Gumbel-Softmax, OneHotCategorical) or a category (Categorical) of a NaN row."""
    import warnings

    from minivae.distributions import Categorical, OneHotCategorical
    from minivae.random import Generator
    logits = np.array([[np.nan, 0.0, 1.0], [0.0, 0.0, 9.0], [1.0, np.nan, np.nan]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for hard in (False, True):
            for axis in (-1, 0):
                y = F.gumbel_softmax(mv.tensor(logits if axis == -1 else logits.T.copy()), rng=Generator(0), hard=hard,
                                     axis=axis).data
                y = y if axis == -1 else y.T
                assert np.isnan(y[[0, 2]]).all() and np.isfinite(y[1]).all(), (hard, axis, y)
        y = ops.straight_through(mv.tensor(logits)).data
        assert np.isnan(y[[0, 2]]).all() and y[1].tolist() == [0, 0, 1]
        z = OneHotCategorical(logits=mv.tensor(logits)).sample((4,), rng=Generator(1)).data
        assert np.isnan(z[:, [0, 2]]).all() and (z[:, 1].sum(axis=-1) == 1).all()
        k = Categorical(logits=mv.tensor(logits)).sample((4,), rng=Generator(1)).data
        assert (k[:, [0, 2]] == -1).all() and (k[:, 1] >= 0).all()


@pytest.mark.parametrize("numba", [False, True], ids=["formula", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bce_keeps_the_digits_of_a_right_confident_logit(dtype, numba):
    """ℓ(x, t) = softplus(x) − x·t at x = 40, t = 1 (and x = −40, t = 0) is log1p(e⁻⁴⁰) = 4.25·10⁻¹⁸, not the 0 that
    softplus(x) − x·t rounds to: (max(x, 0) − x·t) first, as the kernels do, on both paths."""
    x, t = mv.tensor(np.array([40.0, -40.0, 20.0], dtype)), mv.tensor(np.array([1.0, 0.0, 1.0], dtype))
    with use_numba(numba):
        loss = ops.bce_with_logits(x, t).data
    np.testing.assert_allclose(loss, np.log1p(np.exp(-np.array([40.0, 40.0, 20.0]))), rtol=4 * np.finfo(dtype).eps)
