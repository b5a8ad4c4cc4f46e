"""Independent(base, n): shapes, log_prob and entropy summed over the n reinterpreted axes, moments, expand, support
and KL, by the definitions and against torch.distributions.Independent; objectives and estimators take it."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minivae as mv
from minivae import estimators, objectives
from minivae.distributions import (Bernoulli, Categorical, Independent, Normal, OneHotCategorical, constraints,
                                   kl_divergence)
from minivae.models import GaussianVAE
from minivae.random import Generator
from tests.strategies import shapes


def normal(shape, seed=0, requires_grad=False):
    rng = np.random.default_rng(seed)
    loc = mv.tensor(rng.normal(size=shape), requires_grad=requires_grad)
    scale = mv.tensor(rng.uniform(0.5, 2.0, size=shape), requires_grad=requires_grad)
    return loc, scale, Normal(loc, scale)


@settings(max_examples=30, deadline=None)
@given(shapes(1, 4), st.data())
def test_log_prob_and_entropy_sum_the_reinterpreted_axes(shape, data):
    """batch_shape = shape[:−n], event_shape = shape[−n:]; log_prob and entropy = base's summed over exactly the n
    rightmost axes (not the leftmost, not one too many), for values with sample axes in front too."""
    n = data.draw(st.integers(0, len(shape)))
    loc, scale, base = normal(shape)
    d = Independent(base, n)
    assert d.batch_shape == shape[:len(shape) - n] and d.event_shape == shape[len(shape) - n:]
    x = np.random.default_rng(1).normal(size=(2,) + shape)
    lp = -0.5 * ((x - loc.data) / scale.data) ** 2 - np.log(scale.data) - 0.5 * np.log(2 * np.pi)
    axes = tuple(range(x.ndim - n, x.ndim))
    np.testing.assert_allclose(d.log_prob(mv.tensor(x)).numpy(), lp.sum(axis=axes), rtol=1e-12)
    ent = np.broadcast_to(np.log(scale.data) + 0.5 * (1 + np.log(2 * np.pi)), shape)
    np.testing.assert_allclose(d.entropy().numpy(), ent.sum(axis=tuple(range(len(shape) - n, len(shape)))),
                               rtol=1e-12)
    for moment in ("mean", "mode", "variance", "stddev"):
        np.testing.assert_array_equal(getattr(d, moment).numpy(), getattr(base, moment).numpy())
    assert d.has_rsample and repr(d.support) == repr(constraints.independent(constraints.real, n) if n else
                                                     constraints.real)


@settings(max_examples=20, deadline=None)
@given(shapes(1, 3), st.data())
def test_matches_torch_values_gradients_and_expand(shape, data):
    torch = pytest.importorskip("torch")
    n = data.draw(st.integers(0, len(shape)))
    loc, scale, base = normal(shape, requires_grad=True)
    tl, ts = (torch.tensor(a.numpy(), requires_grad=True) for a in (loc, scale))
    d, t = Independent(base, n), torch.distributions.Independent(torch.distributions.Normal(tl, ts), n)
    assert (d.batch_shape, d.event_shape) == (tuple(t.batch_shape), tuple(t.event_shape))
    x = np.random.default_rng(2).normal(size=(3,) + shape)
    lp, tlp = d.log_prob(mv.tensor(x)), t.log_prob(torch.tensor(x))
    np.testing.assert_allclose(lp.numpy(), tlp.detach().numpy(), rtol=1e-12)
    g = np.random.default_rng(3).normal(size=lp.shape)
    lp.backward(g)
    tlp.backward(torch.tensor(g))
    np.testing.assert_allclose(loc.grad, tl.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(scale.grad, ts.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(d.entropy().numpy(), t.entropy().detach().numpy(), rtol=1e-12)
    big = (2,) + tuple(d.batch_shape)
    e, te = d.expand(big), t.expand(big)
    assert (e.batch_shape, e.event_shape) == (tuple(te.batch_shape), tuple(te.event_shape))
    np.testing.assert_allclose(e.log_prob(mv.tensor(x[:2])).numpy(), te.log_prob(torch.tensor(x[:2])).detach().numpy(),
                               rtol=1e-12)
    v = np.where(np.arange(x.size).reshape(x.shape) % 3 == 0, np.nan, x)  # some NaN: the events holding one fail
    np.testing.assert_array_equal(d.support.check(v), t.support.check(torch.tensor(v)).numpy())


def test_other_bases_match_torch():
    """Bernoulli, OneHotCategorical and Categorical bases: log_prob and entropy as torch's."""
    torch = pytest.importorskip("torch")
    td = torch.distributions
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(3, 5, 4))
    x_bern = (rng.uniform(size=(2, 3, 5, 4)) < 0.5).astype(float)
    x_cat = rng.integers(0, 4, size=(2, 3, 5))
    cases = [(Independent(Bernoulli(logits=mv.tensor(logits)), 2), td.Independent(td.Bernoulli(logits=torch.tensor(
        logits)), 2), x_bern),
             (Independent(OneHotCategorical(logits=mv.tensor(logits)), 1), td.Independent(td.OneHotCategorical(
                 logits=torch.tensor(logits)), 1), np.eye(4)[x_cat]),
             (Independent(Categorical(logits=mv.tensor(logits)), 1), td.Independent(td.Categorical(
                 logits=torch.tensor(logits)), 1), x_cat)]
    for d, t, x in cases:
        assert (d.batch_shape, d.event_shape) == (tuple(t.batch_shape), tuple(t.event_shape))
        np.testing.assert_allclose(d.log_prob(mv.tensor(x)).numpy(), t.log_prob(torch.tensor(x)).numpy(), rtol=1e-12)
        np.testing.assert_allclose(d.entropy().numpy(), t.entropy().numpy(), rtol=1e-12)
        assert repr(d.support) == repr(t.support)


def test_kl_of_independents_sums_the_base_kl():
    """KL(Independent(p, n) ‖ Independent(q, n)) = base KL summed over the n axes, with its gradients; torch's value;
    different n: NotImplementedError (as torch)."""
    p_loc, p_scale, p = normal((4, 3), seed=5, requires_grad=True)
    q_loc, q_scale, q = normal((3,), seed=6)
    kl = kl_divergence(Independent(p, 1), Independent(q, 1))
    ratio = p_scale.data / q_scale.data
    want = (np.log(1 / ratio) + (ratio ** 2 + ((p_loc.data - q_loc.data) / q_scale.data) ** 2) / 2 - 0.5).sum(-1)
    assert kl.shape == (4,)
    np.testing.assert_allclose(kl.numpy(), want, rtol=1e-12)
    kl.backward(np.arange(1.0, 5.0))
    np.testing.assert_allclose(p_loc.grad, np.arange(1.0, 5.0)[:, None] * (p_loc.data - q_loc.data) / q_scale.data ** 2,
                               rtol=1e-12)
    with pytest.raises(NotImplementedError, match="must be equal"):
        kl_divergence(Independent(p, 2), Independent(Normal(mv.tensor(np.zeros((4, 3))), 1.0), 1))


def test_kl_of_independents_is_torchs():
    torch = pytest.importorskip("torch")
    p_loc, p_scale, p = normal((4, 3), seed=5)
    q_loc, q_scale, q = normal((3,), seed=6)
    kl = kl_divergence(Independent(p, 1), Independent(q, 1))
    td = torch.distributions
    t = td.kl_divergence(td.Independent(td.Normal(torch.tensor(p_loc.data), torch.tensor(p_scale.data)), 1),
                         td.Independent(td.Normal(torch.tensor(q_loc.data), torch.tensor(q_scale.data)), 1))
    np.testing.assert_allclose(kl.numpy(), t.numpy(), rtol=1e-12)


def test_samples_are_the_bases_and_rsample_passes_the_noise_on():
    loc, scale, base = normal((2, 3), requires_grad=True)
    d = Independent(base, 1)
    eps = np.random.default_rng(7).normal(size=(5, 2, 3))
    z = d.rsample(eps=eps)
    np.testing.assert_array_equal(z.numpy(), loc.data + scale.data * eps)
    np.testing.assert_array_equal(d.sample((5,), rng=Generator(1)).numpy(), base.sample((5,), rng=Generator(1)).numpy())
    z.sum().backward()
    np.testing.assert_array_equal(scale.grad, eps.sum(0))
    assert not Independent(Bernoulli(logits=mv.tensor(np.zeros(3))), 1).has_rsample


def test_bad_arguments_are_refused():
    base = Normal(mv.tensor(np.zeros((2, 3))), 1.0)
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims = 3 exceeds the 2 axes"):
        Independent(base, 3)
    for n in (-1, 1.0, True):
        with pytest.raises(ValueError, match="reinterpreted_batch_ndims must be an integer >= 0"):
            Independent(base, n)
    with pytest.raises(TypeError, match="must be a Distribution"):
        Independent(np.zeros(3), 1)
    with pytest.raises(NotImplementedError, match="cartesian product"):
        Independent(Bernoulli(logits=mv.tensor(np.zeros(3))), 1).enumerate_support()
    assert Independent(Bernoulli(logits=mv.tensor(np.zeros(3))), 0).enumerate_support().shape == (2, 3)


# ---- objectives and estimators take an Independent q, p(z) and p(x|z) ----------------------------------------
class IndependentVAE(GaussianVAE):
    """GaussianVAE whose three distributions are the Independent ones of a PyTorch VAE."""

    def posterior(self, x):
        return Independent(super().posterior(x), 1)

    def prior(self):
        return Independent(super().prior(), 1)

    def likelihood(self, z):
        return Independent(super().likelihood(z), 1)


def test_objectives_give_the_same_bounds_and_gradients():
    """elbo (closed-form KL and Monte Carlo), iwae_bound, prior_bound and log_likelihood_is of the Independent model
    equal the plain model's (the same weights and draws), value and gradient: each log-density is summed over its
    latent or pixel axis once, not over the batch as a second .sum(-1) would."""
    x = mv.tensor((np.random.default_rng(8).uniform(size=(6, 12)) < 0.5).astype(np.float32))
    plain = GaussianVAE(x_dim=12, hidden=(8,), z_dim=3, rng=Generator(0))
    wrapped = IndependentVAE(x_dim=12, hidden=(8,), z_dim=3, rng=Generator(0))
    runs = [lambda m: objectives.elbo(m, x, Generator(1), k=3), lambda m: objectives.elbo(m, x, Generator(1), k=3,
                                                                                       analytic_kl=False),
            lambda m: objectives.iwae_bound(m, x, Generator(1), k=4),
            lambda m: objectives.prior_bound(m, x, Generator(1), k=2)]
    for run in runs:
        values = []
        for model in (plain, wrapped):
            model.zero_grad()
            out = run(model)
            assert out.shape == (6,)
            out.backward(np.linspace(0.5, 1.5, 6).astype(np.float32))
            values.append((out.numpy(), [None if p.grad is None else p.grad.copy() for p in model.parameters()]))
        np.testing.assert_array_equal(values[0][0], values[1][0])
        for a, b in zip(values[0][1], values[1][1]):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(objectives.log_likelihood_is(plain, x, Generator(2), k=20, chunk=7).numpy(),
                                  objectives.log_likelihood_is(wrapped, x, Generator(2), k=20, chunk=7).numpy())


def test_an_independent_over_the_batch_is_refused():
    """q = Independent(Normal(μ, σ), 2) takes the examples' axis into its event: one density for the whole batch,
    which the bounds (one value per example) cannot use: a clear error, not a silent broadcast."""
    x = mv.tensor(np.zeros((4, 12), np.float32))

    class Wrong(GaussianVAE):
        def posterior(self, x):
            return Independent(super().posterior(x), 2)

    model = Wrong(x_dim=12, hidden=(8,), z_dim=3, rng=Generator(0))
    with pytest.raises(ValueError, match="log q.*fewer axes than the 2"):
        objectives.iwae_bound(model, x, Generator(1), k=2)


def test_estimators_take_an_independent_q():
    """pathwise, reinforce, gumbel_softmax, straight_through and exact of Independent(q, 1) = of q with f summing the
    variables' axis: the same values and gradients."""
    rng = np.random.default_rng(9)
    w = rng.normal(size=(3, 4))

    def f_sum(z):  # one value per sample and example, from (…, 2, 3, 4) one-hot or relaxed z
        return (z * w).sum(axis=(-1, -2))

    for name in ("reinforce", "gumbel_softmax", "straight_through", "exact"):
        results = []
        for wrap in (False, True):
            logits = mv.tensor(rng.normal(size=(2, 3, 4)) if not results else results[0][2], requires_grad=True)
            q = OneHotCategorical(logits=logits)
            out = estimators.get(name)(f_sum, Independent(q, 1) if wrap else q, (5,), rng=Generator(3))
            out.backward(np.ones(out.shape))
            results.append((out.numpy(), logits.grad.copy(), logits.numpy()))
        np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, err_msg=name)
    loc, scale, base = normal((2, 3), requires_grad=True)
    out = estimators.pathwise(lambda z: (z * z).sum(-1), Independent(base, 1), (4,), rng=Generator(0))
    assert out.shape == (4, 2)
    with pytest.raises(ValueError, match="2 reinterpreted axes"):
        estimators.exact(f_sum, Independent(OneHotCategorical(logits=mv.tensor(w[None])), 2))
