"""mode, mean, variance, stddev, enumerate_support and expand with torch.distributions' semantics: the values from the
formulas, then against torch where it is installed (CI has no torch)."""
import numpy as np
import pytest

import minivae as mv
from minivae.distributions import (Bernoulli, Categorical, ExpRelaxedCategorical, Normal, OneHotCategorical,
                                   RelaxedOneHotCategorical)
from minivae.random import Generator

LOGITS = np.array([[[0.5, -1.0, 2.0, 2.0], [0.0, 0.0, -3.0, 1.0], [4.0, -2.0, 0.5, 0.1]],
                   [[1.0, 1.0, 1.0, 1.0], [-0.5, 3.0, 0.2, -1.0], [0.3, 0.3, 2.5, -4.0]]])  # batch (2, 3), K = 4


def softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# ---- moments and modes from the formulas ------------------------------------------------------------------------
def test_normal_mode_is_the_mean_broadcast_to_the_batch():
    d = Normal(mv.tensor(np.array([0.5, -1.0, 2.0])), mv.tensor(np.array([[1.0], [3.0]])))
    np.testing.assert_array_equal(d.mode.data, np.broadcast_to([0.5, -1.0, 2.0], (2, 3)))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_bernoulli_mode_variance_and_stddev(dtype):
    """mode 1 where p > ½, 0 where p < ½ and NaN at p = ½ exactly (torch's rule, also for logits 0, whose σ is ½), in
    p's dtype; variance p(1 − p) with its gradient 1 − 2p; stddev √(p(1 − p))."""
    p = np.array([0.0, 0.2, 0.5, 0.7, 1.0, np.nextafter(dtype(0.5), dtype(1))], dtype)
    probs = mv.tensor(p, requires_grad=True)
    d = Bernoulli(probs)
    assert d.mode.dtype == d.variance.dtype == d.stddev.dtype == dtype
    np.testing.assert_array_equal(d.mode.data, np.array([0, 0, np.nan, 1, 1, 1], dtype))
    np.testing.assert_array_equal(d.variance.data, p * (1 - p))
    np.testing.assert_array_equal(d.stddev.data, np.sqrt(p * (1 - p)))
    d.variance.backward(np.ones_like(p))
    np.testing.assert_array_equal(probs.grad, (1 - p) - p)  # p̄ = ḡ·(1 − p) − ḡ·p, rounded as the product rule adds it
    from_logits = Bernoulli(logits=mv.tensor(np.array([-3.0, 0.0, 1e-3], dtype)))
    np.testing.assert_array_equal(from_logits.mode.data, np.array([0, np.nan, 1], dtype))
    assert Bernoulli(mv.tensor(np.array([0.5], np.float64))).mode.data[0] != 0  # NaN, not (p > ½) = 0


def test_categorical_mode_mean_and_variance():
    """mode argmax_k p_k (ties: the first, as the second row of LOGITS[1]); mean and variance NaN of the batch shape,
    in the logits' dtype, as torch's; stddev √NaN."""
    d = Categorical(logits=mv.tensor(LOGITS.astype(np.float32)))
    np.testing.assert_array_equal(d.mode.data, [[2, 3, 0], [0, 1, 2]])
    assert d.mode.dtype == np.int64
    for moment in (d.mean, d.variance, d.stddev):
        assert moment.shape == (2, 3) and moment.dtype == np.float32 and np.isnan(moment.data).all()
    w = np.array([[1.0, 3.0, 3.0], [0.0, 0.0, 2.0]])  # probs given: the first of equal weights
    np.testing.assert_array_equal(Categorical(mv.tensor(w)).mode.data, [1, 2])


def test_one_hot_categorical_mode_mean_and_variance():
    """mode one_hot(argmax p) and mean p, in the logits' dtype; variance p(1 − p) of each category."""
    logits = mv.tensor(LOGITS, requires_grad=True)
    d = OneHotCategorical(logits=logits)
    p = softmax(LOGITS)
    np.testing.assert_array_equal(d.mode.data, np.eye(4)[[[2, 3, 0], [0, 1, 2]]])
    assert d.mode.dtype == np.float64 and OneHotCategorical(mv.tensor(np.ones(3, np.float32))).mode.dtype == np.float32
    np.testing.assert_allclose(d.mean.data, p, rtol=1e-14)
    np.testing.assert_allclose(d.variance.data, p * (1 - p), rtol=1e-14)
    np.testing.assert_allclose(d.stddev.data, np.sqrt(p * (1 - p)), rtol=1e-14)
    g = np.random.default_rng(0).normal(size=p.shape)
    d.variance.backward(g)  # d/dl of p(1 − p): J_softmaxᵀ (g ⊙ (1 − 2p))
    u = g * (1 - 2 * p)
    np.testing.assert_allclose(logits.grad, p * (u - (u * p).sum(-1, keepdims=True)), rtol=1e-12, atol=1e-15)


def test_enumerate_support_written_out_or_to_broadcast():
    """(n,) + batch + event, every entry the value of its index along the first axis; not ``expand``: axes of 1."""
    b = Bernoulli(logits=mv.tensor(np.zeros((2, 3), np.float32)))
    s = b.enumerate_support()
    assert s.shape == (2, 2, 3) and s.dtype == np.float32
    np.testing.assert_array_equal(s.data, np.broadcast_to(np.array([0.0, 1.0])[:, None, None], (2, 2, 3)))
    assert b.enumerate_support(expand=False).shape == (2, 1, 1)
    assert Bernoulli(0.3).enumerate_support().shape == (2,)
    c = Categorical(logits=mv.tensor(LOGITS))
    np.testing.assert_array_equal(c.enumerate_support().data, np.broadcast_to(np.arange(4)[:, None, None], (4, 2, 3)))
    assert c.enumerate_support().dtype == np.int64 and c.enumerate_support(False).shape == (4, 1, 1)
    o = OneHotCategorical(logits=mv.tensor(LOGITS.astype(np.float32)))
    np.testing.assert_array_equal(o.enumerate_support().data, np.broadcast_to(np.eye(4)[:, None, None], (4, 2, 3, 4)))
    assert o.enumerate_support().dtype == np.float32 and o.enumerate_support(False).shape == (4, 1, 1, 4)
    # the support scores as a whole: Σ over the support of p(x) = 1 for every distribution of the batch
    np.testing.assert_allclose(np.exp(b.log_prob(s).data).sum(0), 1, rtol=1e-6)
    np.testing.assert_allclose(np.exp(c.log_prob(c.enumerate_support()).data).sum(0), 1, rtol=1e-14)


# ---- expand -----------------------------------------------------------------------------------------------------
def test_normal_expand_broadcasts_views_and_sums_the_gradients_back():
    loc, scale = mv.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True), mv.tensor(np.array([[1.0], [3.0]]), requires_grad=True)
    d = Normal(loc, scale)
    e = d.expand((4, 2, 3))
    assert e.batch_shape == (4, 2, 3) and e.loc.shape == e.scale.shape == (4, 2, 3) and d.batch_shape == (2, 3)
    assert np.shares_memory(e.loc.data, loc.data) and np.shares_memory(e.scale.data, scale.data)  # views, no copy
    x = np.random.default_rng(1).normal(size=(4, 2, 3))
    g = np.random.default_rng(2).normal(size=(4, 2, 3))
    e.log_prob(x).backward(g)
    grads = loc.grad, scale.grad
    loc.grad = scale.grad = None
    d.log_prob(x).backward(g)  # the same broadcast, by the log_prob's own arithmetic
    np.testing.assert_allclose(grads[0], loc.grad, rtol=1e-14)
    np.testing.assert_allclose(grads[1], scale.grad, rtol=1e-14)
    assert e.rsample(rng=Generator(0)).shape == e.mean.shape == e.mode.shape == e.entropy().shape == (4, 2, 3)


@pytest.mark.parametrize("given", ["probs", "logits"])
def test_bernoulli_expand(given):
    p = np.array([[0.2], [0.5]])
    param = mv.tensor(p if given == "probs" else np.log(p / (1 - p)), requires_grad=True)
    d = Bernoulli(**{given: param})
    e = d.expand((3, 2, 4))
    assert e.batch_shape == e.logits.shape == e.probs.shape == (3, 2, 4)
    np.testing.assert_allclose(e.probs.data, np.broadcast_to(p, (3, 2, 4)), rtol=1e-14)
    assert e.sample(rng=Generator(0)).shape == e.mode.shape == e.enumerate_support().shape[1:] == (3, 2, 4)
    x = (np.arange(24).reshape(3, 2, 4) % 3 == 0).astype(np.float64)
    e.log_prob(x).sum().backward()
    grad, param.grad = param.grad, None
    Bernoulli(**{given: param}).log_prob(x).sum().backward()  # (d's logits of probs: released by that backward)
    np.testing.assert_allclose(grad, param.grad, rtol=1e-14)


@pytest.mark.parametrize("make", [Categorical, OneHotCategorical, lambda probs=None, logits=None:
                                  RelaxedOneHotCategorical(0.5, probs, logits),
                                  lambda probs=None, logits=None: ExpRelaxedCategorical(0.5, probs, logits)],
                         ids=["Categorical", "OneHotCategorical", "RelaxedOneHotCategorical", "ExpRelaxedCategorical"])
@pytest.mark.parametrize("given", ["probs", "logits"])
def test_categorical_family_expand_keeps_the_categories(make, given):
    """The batch (1, 3) to (5, 2, 3): the logits (1, 3, K) broadcast to (5, 2, 3, K), the K categories kept; the
    values and gradients those of the unexpanded distribution, summed over the new axes."""
    base = LOGITS[:1]
    param = mv.tensor(softmax(base) if given == "probs" else base, requires_grad=True)
    d = make(**{given: param})
    d.logits  # noqa: B018  (read once: the normalized logits made before the expand are broadcast too)
    e = make(**{given: param}).expand((5, 2, 3))
    for dist in (d.expand([5, 2, 3]), e):
        assert dist.batch_shape == (5, 2, 3) and dist.logits.shape == dist.probs.shape == (5, 2, 3, 4)
        np.testing.assert_allclose(dist.probs.data, np.broadcast_to(softmax(base), (5, 2, 3, 4)), rtol=1e-14)
    draw = e.sample(rng=Generator(3))
    assert draw.shape == (5, 2, 3) + tuple(e.event_shape)
    value = draw if make is not ExpRelaxedCategorical else mv.tensor(np.log(softmax(LOGITS[[0, 1, 0, 1, 1]])))
    e.log_prob(value).sum().backward()
    grad, param.grad = param.grad, None
    d.log_prob(value).sum().backward()
    np.testing.assert_allclose(grad, param.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make,shape", [(lambda: Normal(np.zeros(3), np.ones((2, 1))), (2, 3)),
                                        (lambda: Bernoulli(np.full((2, 1), 0.5)), (2, 1)),
                                        (lambda: Categorical(np.ones((3, 4))), (3,))])
def test_expand_refuses_a_batch_shape_it_does_not_broadcast_to(make, shape):
    d = make()
    assert d.batch_shape == shape
    for bad in [(3, 3), (4,), ()] if shape != (3,) else [(2,), (), (3, 2)]:
        with pytest.raises(ValueError, match="cannot be expanded to"):
            d.expand(bad)
    assert d.expand(shape).batch_shape == shape  # its own shape: a new distribution with the same parameters
    with pytest.raises(ValueError, match="negative"):
        d.expand((-1,) + shape)


# ---- against torch ----------------------------------------------------------------------------------------------
def test_moments_modes_and_supports_match_torch():
    torch = pytest.importorskip("torch")
    td = torch.distributions
    p = np.array([[0.0, 0.2, 0.5], [0.7, 1.0, 0.5]], np.float32)
    logits = np.array([[-3.0, 0.0, 1e-3], [2.0, -0.0, 40.0]], np.float32)
    w = softmax(LOGITS).astype(np.float32)
    pairs = [(Bernoulli(mv.tensor(p)), td.Bernoulli(torch.tensor(p))),
             (Bernoulli(logits=mv.tensor(logits)), td.Bernoulli(logits=torch.tensor(logits))),
             (Categorical(logits=mv.tensor(LOGITS)), td.Categorical(logits=torch.tensor(LOGITS))),
             (Categorical(mv.tensor(w)), td.Categorical(torch.tensor(w))),
             (OneHotCategorical(logits=mv.tensor(LOGITS)), td.OneHotCategorical(logits=torch.tensor(LOGITS))),
             (Normal(mv.tensor(np.array([0.5, 1.0])), mv.tensor(np.array([[1.0], [2.0]]))),
              td.Normal(torch.tensor([0.5, 1.0], dtype=torch.float64), torch.tensor([[1.0], [2.0]], dtype=torch.float64)))]
    for ours, theirs in pairs:
        names = ["mode", "mean", "variance", "stddev"]
        for name in names:
            a, b = getattr(ours, name), getattr(theirs, name)
            assert str(a.dtype) == str(b.dtype).removeprefix("torch."), (type(ours).__name__, name)
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=f"{type(ours).__name__}.{name}")
        if not isinstance(ours, Normal):
            for expand in (True, False):
                a, b = ours.enumerate_support(expand), theirs.enumerate_support(expand)
                assert str(a.dtype) == str(b.dtype).removeprefix("torch.")
                np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_expand_matches_torch():
    torch = pytest.importorskip("torch")
    td = torch.distributions
    rng = np.random.default_rng(5)
    cases = [(lambda a, b: Normal(a, b), lambda a, b: td.Normal(a, b), [rng.normal(size=3), rng.uniform(1, 2, (2, 1))],
              (4, 2, 3), rng.normal(size=(4, 2, 3))),
             (lambda a: Bernoulli(logits=a), lambda a: td.Bernoulli(logits=a), [rng.normal(size=(2, 1))],
              (3, 2, 5), (rng.random((3, 2, 5)) < 0.5).astype(np.float64)),
             (lambda a: Bernoulli(a), lambda a: td.Bernoulli(a), [rng.random((2, 1))],
              (3, 2, 5), (rng.random((3, 2, 5)) < 0.5).astype(np.float64)),
             (lambda a: Categorical(logits=a), lambda a: td.Categorical(logits=a), [rng.normal(size=(1, 4))],
              (5, 3), rng.integers(0, 4, (5, 3))),
             (lambda a: Categorical(a), lambda a: td.Categorical(a), [rng.random((1, 4))],
              (5, 3), rng.integers(0, 4, (5, 3))),
             (lambda a: OneHotCategorical(logits=a), lambda a: td.OneHotCategorical(logits=a), [rng.normal(size=(1, 4))],
              (5, 3), np.eye(4)[rng.integers(0, 4, (5, 3))]),
             (lambda a: RelaxedOneHotCategorical(0.7, logits=a),
              lambda a: td.RelaxedOneHotCategorical(torch.tensor(0.7, dtype=torch.float64), logits=a),
              [rng.normal(size=(1, 4))], (5, 3), softmax(rng.normal(size=(5, 3, 4))))]
    for make, make_torch, params, shape, value in cases:
        ours, theirs = [mv.tensor(a, requires_grad=True) for a in params], [torch.tensor(a, requires_grad=True) for a in params]
        d, t = make(*ours).expand(shape), make_torch(*theirs).expand(shape)
        assert d.batch_shape == tuple(t.batch_shape) and tuple(d.event_shape) == tuple(t.event_shape)
        lp, tlp = d.log_prob(value), t.log_prob(torch.tensor(value))
        np.testing.assert_allclose(lp.numpy(), tlp.detach().numpy(), rtol=1e-10, atol=1e-12)
        g = rng.normal(size=lp.shape)
        lp.backward(g)
        tlp.backward(torch.tensor(g))
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-10, atol=1e-12)
