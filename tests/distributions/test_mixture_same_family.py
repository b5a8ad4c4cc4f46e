"""MixtureSameFamily: log_prob, mean and variance against torch.distributions.MixtureSameFamily (float64) and against the
formulas written out in NumPy; samples by a KS test of the mixture's CDF (math.erfc); gradients by gradcheck; far-apart
components stay finite; bad arguments refused naming the problem."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae.distributions import (Bernoulli, Categorical, Independent, MixtureSameFamily, Normal,
                                   OneHotCategorical)
from minivae.random import Generator
from tests.distributions.gof import assert_follows

R = np.random.default_rng(58)


def params(batch, k, event=()):
    """Unnormalized logits batch + (K,) (their log-sum-exp is not 0), locs and scales batch + (K,) + event."""
    return (R.normal(size=batch + (k,)) * 2 + 1, R.normal(size=batch + (k,) + event) * 3,
            R.uniform(0.3, 2.5, batch + (k,) + event))


def ours(logits, loc, scale, event=False, mixture_batch=None):
    mix = Categorical(logits=mv.tensor(logits if mixture_batch is None else logits.reshape(mixture_batch + logits.shape[-1:])))
    comp = Normal(mv.tensor(loc), mv.tensor(scale))
    return MixtureSameFamily(mix, Independent(comp, 1) if event else comp)


def theirs(torch, logits, loc, scale, event=False, mixture_batch=None):
    D = torch.distributions
    mix = D.Categorical(logits=torch.tensor(logits if mixture_batch is None else logits.reshape(mixture_batch + logits.shape[-1:])))
    comp = D.Normal(torch.tensor(loc), torch.tensor(scale))
    return D.MixtureSameFamily(mix, D.Independent(comp, 1) if event else comp)


def log_normal(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)


def numpy_log_prob(x, logits, loc, scale, event):
    """log Σ_k π_k p_k(x), π = softmax(logits), by logaddexp over the components' axis (x: … + batch + event)."""
    log_pi = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
    xe = np.expand_dims(x, -2 if event else -1)
    lp = log_normal(xe, loc, scale)
    if event:
        lp = lp.sum(axis=-1)
    return np.logaddexp.reduce(lp + log_pi, axis=-1)


CASES = [((), 3, False), ((4,), 2, False), ((2, 3), 5, False), ((), 3, True), ((4,), 2, True), ((2, 3), 4, True)]


@pytest.mark.parametrize("batch,k,event", CASES)
def test_log_prob_mean_variance_equal_torchs(batch, k, event):
    torch = pytest.importorskip("torch")
    logits, loc, scale = params(batch, k, (3,) if event else ())
    d, t = ours(logits, loc, scale, event), theirs(torch, logits, loc, scale, event)
    assert d.batch_shape == tuple(t.batch_shape) and d.event_shape == tuple(t.event_shape)
    x = R.normal(size=(6,) + batch + ((3,) if event else ())) * 4
    np.testing.assert_allclose(d.log_prob(mv.tensor(x)).numpy(), t.log_prob(torch.tensor(x)).numpy(), rtol=1e-13)
    np.testing.assert_allclose(d.mean.numpy(), t.mean.numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(d.variance.numpy(), t.variance.numpy(), rtol=1e-13)
    np.testing.assert_allclose(d.stddev.numpy(), t.stddev.numpy(), rtol=1e-13)
    assert d.mean.shape == tuple(t.mean.shape) and d.log_prob(mv.tensor(x)).dtype == np.float64


@pytest.mark.parametrize("event", [False, True])
def test_a_mixture_of_size_one_batch_axes_broadcasts_as_torchs(event):
    """Weights of batch (1,) against components of batch (4,): each of the 4 mixtures has the same weights."""
    torch = pytest.importorskip("torch")
    logits, loc, scale = params((4,), 3, (2,) if event else ())
    logits = logits[:1]
    d, t = ours(logits, loc, scale, event), theirs(torch, logits, loc, scale, event)
    x = R.normal(size=(5, 4) + ((2,) if event else ()))
    assert d.batch_shape == (4,)
    np.testing.assert_allclose(d.log_prob(mv.tensor(x)).numpy(), t.log_prob(torch.tensor(x)).numpy(), rtol=1e-13)
    np.testing.assert_allclose(d.mean.numpy(), t.mean.numpy(), rtol=1e-13)
    np.testing.assert_allclose(d.variance.numpy(), t.variance.numpy(), rtol=1e-13)
    assert d.sample((7,), rng=Generator(0)).shape == (7, 4) + ((2,) if event else ())


def test_bernoulli_components_and_the_cdf_equal_torchs():
    torch = pytest.importorskip("torch")
    D = torch.distributions
    logits, p = R.normal(size=(2, 3)), R.uniform(0.1, 0.9, (2, 3, 5))
    d = MixtureSameFamily(Categorical(logits=mv.tensor(logits)), Independent(Bernoulli(probs=mv.tensor(p)), 1))
    t = D.MixtureSameFamily(D.Categorical(logits=torch.tensor(logits)), D.Independent(D.Bernoulli(probs=torch.tensor(p)), 1))
    x = (R.random((4, 2, 5)) < 0.5).astype(np.float64)
    np.testing.assert_allclose(d.log_prob(mv.tensor(x)).numpy(), t.log_prob(torch.tensor(x)).numpy(), rtol=1e-13)
    np.testing.assert_allclose(d.variance.numpy(), t.variance.numpy(), rtol=1e-13)
    logits, loc, scale = params((2,), 4)
    x = R.normal(size=(5, 2)) * 3
    np.testing.assert_allclose(ours(logits, loc, scale).cdf(mv.tensor(x)).numpy(),
                               theirs(torch, logits, loc, scale).cdf(torch.tensor(x)).numpy(), rtol=1e-13)


@pytest.mark.parametrize("batch,k,event", CASES)
def test_log_prob_is_the_formula_written_out(batch, k, event):
    logits, loc, scale = params(batch, k, (3,) if event else ())
    x = R.normal(size=(2, 6) + batch + ((3,) if event else ())) * 4
    got = ours(logits, loc, scale, event).log_prob(mv.tensor(x))
    assert got.shape == (2, 6) + batch
    np.testing.assert_allclose(got.numpy(), numpy_log_prob(x, logits, loc, scale, event), rtol=1e-13)
    if event:
        return
    # a Python number is a value of every univariate mixture of the batch, in the parameters' dtype
    one = ours(logits, loc, scale).log_prob(0.7)
    np.testing.assert_allclose(one.numpy(), numpy_log_prob(np.full(batch, 0.7), logits, loc, scale, False), rtol=1e-13)


def test_mean_and_variance_are_the_law_of_total_variance_written_out():
    logits, loc, scale = params((3,), 4, (2,))
    pi = np.exp(logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True))[..., None]
    mean = (pi * loc).sum(axis=-2)
    variance = (pi * scale ** 2).sum(axis=-2) + (pi * (loc - mean[:, None]) ** 2).sum(axis=-2)
    d = ours(logits, loc, scale, event=True)
    np.testing.assert_allclose(d.mean.numpy(), mean, rtol=1e-13)
    np.testing.assert_allclose(d.variance.numpy(), variance, rtol=1e-13)


def test_samples_follow_the_mixture():
    """KS test (level 0.001) of 4000 draws of a univariate mixture of three well-separated Gaussians against its CDF
    Σ_k π_k ½ erfc((m_k − x)/(s_k√2)), math.erfc."""
    logits, loc, scale = np.array([0.3, -1.0, 1.2]), np.array([-4.0, 0.5, 5.0]), np.array([0.7, 1.5, 0.4])
    pi = np.exp(logits) / np.exp(logits).sum()
    draws = ours(logits, loc, scale).sample((4000,), rng=Generator(3)).numpy()
    assert draws.shape == (4000,) and draws.dtype == np.float64
    erfc = np.vectorize(math.erfc)
    assert_follows(draws, lambda x: sum(p * 0.5 * erfc((m - x) / (s * math.sqrt(2))) for p, m, s in zip(pi, loc, scale)),
                   "MixtureSameFamily(Normal)")
    # each component drawn in its share: the fraction nearest each mean within 5 binomial standard deviations
    nearest = np.abs(draws[:, None] - loc).argmin(axis=1)
    frac = np.bincount(nearest, minlength=3) / 4000
    assert np.all(np.abs(frac - pi) < 5 * np.sqrt(pi * (1 - pi) / 4000)), (frac, pi)


def test_multivariate_samples_have_the_mean_and_each_batch_member_its_own_components():
    logits, loc, scale = params((2,), 3, (4,))
    d = ours(logits, loc, scale, event=True)
    draws = d.sample((20000,), rng=Generator(1)).numpy()
    assert draws.shape == (20000, 2, 4)
    sd = np.sqrt(d.variance.numpy() / 20000)
    assert np.all(np.abs(draws.mean(axis=0) - d.mean.numpy()) < 5 * sd)
    # every draw is one component's: within 6 of its scales of one of its own batch member's means, per dimension
    dist = np.abs(draws[:, :, None, :] - loc) / scale  # (n, 2, K, 4)
    assert np.all((dist.max(axis=-1) < 6).any(axis=-1))


def test_the_same_seed_gives_the_same_samples_and_another_seed_others():
    logits, loc, scale = params((3,), 2, (2,))
    d = ours(logits, loc, scale, event=True)
    a, b = d.sample((50,), rng=Generator(7)).numpy(), d.sample((50,), rng=Generator(7)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, d.sample((50,), rng=Generator(8)).numpy())


def test_sampling_is_the_category_draw_then_the_components_draw_gathered():
    """From one Generator: Gumbel noise (n, K) first (k = argmax log π + g), then the components' normals (n, K, D);
    the draw is loc[k] + scale[k]·ε[k]."""
    logits, loc, scale = params((), 3, (2,))
    rng = Generator(11)
    g = rng.gumbel((9, 3), np.float64)
    eps = rng.normal((9, 3, 2), np.float64)
    k = np.argmax(logits - np.logaddexp.reduce(logits) + g, axis=-1)
    want = loc[k] + scale[k] * eps[np.arange(9), k]
    np.testing.assert_array_equal(ours(logits, loc, scale, event=True).sample((9,), rng=Generator(11)).numpy(), want)


def test_no_rsample():
    d = ours(*params((), 2))
    assert d.has_rsample is False
    with pytest.raises(NotImplementedError, match="no reparameterized sample"):
        d.rsample((2,), rng=Generator(0))


def test_log_prob_gradchecks_in_the_logits_and_the_components_parameters():
    logits, loc, scale = params((2,), 3, (2,))
    x = R.normal(size=(4, 2, 2)) * 2

    def log_prob(l, m, log_s, v):
        return MixtureSameFamily(Categorical(logits=l), Independent(Normal(m, ops.exp(log_s)), 1)).log_prob(v)
    assert mv.gradcheck(log_prob, [logits, loc, np.log(scale), x])
    assert mv.gradcheck(lambda l, m, s: MixtureSameFamily(Categorical(logits=l), Normal(m, s)).log_prob(
        mv.tensor(x[..., 0])), [logits, loc[..., 0], scale[..., 0]])
    assert mv.gradcheck(lambda l, m, s: MixtureSameFamily(Categorical(logits=l), Normal(m, s)).variance,
                        [logits, loc[..., 0], scale[..., 0]])


def test_log_prob_gradient_is_torchs():
    torch = pytest.importorskip("torch")
    logits, loc, scale = params((3,), 4, (2,))
    x = R.normal(size=(5, 3, 2)) * 3
    ts = [torch.tensor(a, requires_grad=True) for a in (logits, loc, scale)]
    D = torch.distributions
    t = D.MixtureSameFamily(D.Categorical(logits=ts[0]), D.Independent(D.Normal(ts[1], ts[2]), 1))
    g = R.normal(size=(5, 3))
    (t.log_prob(torch.tensor(x)) * torch.tensor(g)).sum().backward()
    ms = [mv.tensor(a, requires_grad=True) for a in (logits, loc, scale)]
    d = MixtureSameFamily(Categorical(logits=ms[0]), Independent(Normal(ms[1], ms[2]), 1))
    (d.log_prob(mv.tensor(x)) * mv.tensor(g)).sum().backward()
    for a, b in zip(ms, ts):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_far_apart_components_stay_finite():
    """Components 10⁴ apart (scale 1), scored at each, between them and 10⁵ away: log-densities of −10⁷ and below,
    whose exp underflows to 0 (a log of the sum of exps would be −inf), equal to the NumPy formula; gradients finite."""
    logits = np.array([0.0, 1.0])
    loc, scale = np.array([-1e4, 1e4]), np.array([1.0, 1.0])
    x = np.array([-1e4, 0.0, 1e4, 1e5, -1e5])
    d = ours(logits, loc, scale)
    got = d.log_prob(mv.tensor(x)).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, numpy_log_prob(x, logits, loc, scale, False), rtol=1e-13)
    ms = [mv.tensor(a, requires_grad=True) for a in (logits, loc, scale)]
    MixtureSameFamily(Categorical(logits=ms[0]), Normal(ms[1], ms[2])).log_prob(mv.tensor(x)).sum().backward()
    for m in ms:
        assert np.isfinite(m.grad).all()
    # float32 too: −5·10⁷ nats at 10⁴ from a unit-scale component
    d32 = ours(logits.astype(np.float32), loc.astype(np.float32), scale.astype(np.float32))
    assert np.isfinite(d32.log_prob(mv.tensor(x.astype(np.float32))).numpy()).all()


def test_expand_as_torchs():
    torch = pytest.importorskip("torch")
    logits, loc, scale = params((1,), 3, (2,))
    d, t = ours(logits, loc, scale, True).expand((4, 1)), theirs(torch, logits, loc, scale, True).expand((4, 1))
    assert d.batch_shape == tuple(t.batch_shape) == (4, 1)
    x = R.normal(size=(4, 1, 2))
    np.testing.assert_allclose(d.log_prob(mv.tensor(x)).numpy(), t.log_prob(torch.tensor(x)).numpy(), rtol=1e-13)


def test_bad_arguments_are_refused_naming_the_problem():
    logits, loc, scale = params((2,), 3)
    comp = Normal(mv.tensor(loc), mv.tensor(scale))
    with pytest.raises(TypeError, match="mixture_distribution must be a Categorical.*not Normal"):
        MixtureSameFamily(comp, comp)
    with pytest.raises(TypeError, match="not OneHotCategorical"):
        MixtureSameFamily(OneHotCategorical(logits=mv.tensor(logits)), comp)
    with pytest.raises(TypeError, match="component_distribution must be a Distribution, not ndarray"):
        MixtureSameFamily(Categorical(logits=mv.tensor(logits)), loc)
    with pytest.raises(ValueError, match="3 categories, but component_distribution has 2 components"):
        MixtureSameFamily(Categorical(logits=mv.tensor(logits)), Normal(mv.tensor(loc[:, :2]), 1.0))
    with pytest.raises(ValueError, match=r"batch_shape \(\)"):
        MixtureSameFamily(Categorical(logits=mv.tensor(logits[0])), Independent(Normal(mv.tensor(loc[0]), 1.0), 1))
    with pytest.raises(ValueError, match=r"batch_shape \(5,\) does not broadcast to .* \(2,\)"):
        MixtureSameFamily(Categorical(logits=mv.tensor(R.normal(size=(5, 3)))), comp)
    with pytest.raises(ValueError, match=r"batch_shape \(2, 2\) does not broadcast"):
        MixtureSameFamily(Categorical(logits=mv.tensor(R.normal(size=(2, 2, 3)))), comp)
    d = ours(*params((), 3, (2,)), event=True)
    with pytest.raises(ValueError, match=r"value of shape \(4, 3\) does not end in the event_shape \(2,\)"):
        d.log_prob(mv.tensor(np.zeros((4, 3))))
    with pytest.raises(NotImplementedError, match="univariate"):
        d.cdf(mv.tensor(np.zeros(2)))
