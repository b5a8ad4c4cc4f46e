"""Distributions against closed forms, sampling statistics and numerical integration."""
import math

import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae.distributions import (Bernoulli, Categorical, ExpRelaxedCategorical, Normal, OneHotCategorical,
                                   RelaxedOneHotCategorical, kl_divergence, mc_kl)
from minivae.random import Generator

# χ² critical values at 0.999 (each test below fails by chance about once in 1000 seeds)
CHI2_999 = {4: 18.47, 9: 27.88}


def test_normal_log_prob_entropy_and_moments():
    d = Normal(mv.tensor(np.array([0.5, -1.0])), mv.tensor(np.array([2.0, 0.3])))
    x = np.array([1.0, 0.2])
    expected = -(x - [0.5, -1.0]) ** 2 / (2 * np.array([2.0, 0.3]) ** 2) - np.log([2.0, 0.3]) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(d.log_prob(mv.tensor(x)).data, expected)
    np.testing.assert_allclose(d.entropy().data, 0.5 * np.log(2 * np.pi * np.e * np.array([4.0, 0.09])))
    z = d.sample((100_000,), rng=Generator(0)).data
    se = np.array([2.0, 0.3]) / np.sqrt(1e5)
    assert np.all(np.abs(z.mean(0) - [0.5, -1.0]) < 5 * se)
    assert np.all(np.abs(z.std(0) - [2.0, 0.3]) < 5 * se)


def test_normal_rsample_is_pathwise():
    loc = mv.tensor(np.array([0.5]), requires_grad=True)
    scale = mv.tensor(np.array([2.0]), requires_grad=True)
    eps = np.array([[0.7]])
    z = Normal(loc, scale).rsample(eps=eps)
    z.sum().backward()
    np.testing.assert_allclose(loc.grad, [1.0])   # dz/dloc = 1
    np.testing.assert_allclose(scale.grad, [0.7])  # dz/dscale = ε
    with pytest.raises(ValueError, match="scale must be > 0"):
        Normal(0.0, -1.0)


def test_bernoulli_log_prob_is_stable_and_correct():
    logits = np.array([-1e4, -2.0, 0.0, 3.0, 1e4])
    d = Bernoulli(logits=mv.tensor(logits))
    lp1 = d.log_prob(mv.tensor(np.ones(5))).data
    p = 1 / (1 + np.exp(-logits[1:4]))
    np.testing.assert_allclose(lp1[1:4], np.log(p))
    assert lp1[0] == -1e4 and lp1[-1] == 0.0
    np.testing.assert_allclose(d.entropy().data[1:4], -(p * np.log(p) + (1 - p) * np.log(1 - p)))
    draws = Bernoulli(logits=mv.tensor(np.array([0.3]))).sample((200_000,), rng=Generator(1)).data
    q = 1 / (1 + np.exp(-0.3))
    assert abs(draws.mean() - q) < 5 * np.sqrt(q * (1 - q) / 2e5)


def test_bernoulli_entropy_gradient():
    assert mv.gradcheck(lambda lg: Bernoulli(logits=lg).entropy(), [np.array([-2.0, 0.3, 1.5])])


def test_gumbel_max_sampling_passes_chi_square():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.15, 0.25]))
    n = 50_000
    z = Categorical(logits=mv.tensor(logits)).sample((n,), rng=Generator(2)).data
    counts = np.bincount(z, minlength=5)
    expected = n * np.exp(logits)
    assert ((counts - expected) ** 2 / expected).sum() < CHI2_999[4]


def test_categorical_log_prob_entropy_probs_and_one_hot():
    logits = mv.tensor(np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]]))
    d = Categorical(logits=logits)
    p = np.exp(logits.data) / np.exp(logits.data).sum(-1, keepdims=True)
    np.testing.assert_allclose(d.probs.data, p)
    np.testing.assert_allclose(d.log_prob(mv.tensor([1, 2])).data, np.log([p[0, 1], p[1, 2]]))
    np.testing.assert_allclose(d.entropy().data, -(p * np.log(p)).sum(-1))
    oh = OneHotCategorical(logits=logits)
    s = oh.sample((4,), rng=Generator(0))
    assert s.shape == (4, 2, 3) and np.all(s.data.sum(-1) == 1)
    np.testing.assert_allclose(oh.log_prob(s).data, d.log_prob(mv.tensor(s.data.argmax(-1))).data)
    assert d.enumerate_support().shape == (3, 2) and d.enumerate_support(expand=False).shape == (3, 1)


def test_kl_closed_forms_match_monte_carlo_and_definition():
    p = Normal(mv.tensor(np.array([0.3, -1.0])), mv.tensor(np.array([0.5, 2.0])))
    q = Normal(mv.tensor(np.array([0.0, 0.5])), mv.tensor(np.array([1.0, 1.5])))
    closed = kl_divergence(p, q).data
    mc = mc_kl(p, q, 200_000, rng=Generator(3)).data
    np.testing.assert_allclose(mc, closed, atol=0.02)
    a, b = np.array([0.2, 0.5, 0.3]), np.array([0.6, 0.1, 0.3])
    kl = kl_divergence(Categorical(logits=mv.tensor(np.log(a))), OneHotCategorical(logits=mv.tensor(np.log(b)))).item()
    assert kl == pytest.approx((a * np.log(a / b)).sum())
    with pytest.raises(NotImplementedError, match="mc_kl"):
        kl_divergence(p, Bernoulli(logits=mv.tensor(np.zeros(2))))


def test_monte_carlo_kl_broadcasts_a_shorter_batch_of_p():
    """p of batch () against q of batch (3,): the estimate is per q, shaped (3,) as kl_divergence's (the draws' axis
    met q's: an error, or for n = 3 a scalar that scored draw i by q_i only)."""
    p = Normal(0.0, 1.0)
    scale = np.array([1.0, 2.0, 0.5], np.float32)
    q = Normal(mv.tensor(np.zeros(3, np.float32)), mv.tensor(scale))
    closed = np.log(scale) + 1 / (2 * scale ** 2) - 0.5
    np.testing.assert_allclose(kl_divergence(p, q).data, closed, rtol=1e-6)
    assert mc_kl(p, q, 3, rng=Generator(0)).shape == (3,)
    np.testing.assert_allclose(mc_kl(p, q, 100_000, rng=Generator(0)).data, closed, atol=0.02)
    logits = np.log(np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]))
    for cls in (Categorical, OneHotCategorical):
        p, q = cls(logits=mv.tensor(logits[0])), cls(logits=mv.tensor(logits))
        assert mc_kl(p, q, 2, rng=Generator(1)).shape == (2,)
        np.testing.assert_allclose(mc_kl(p, q, 100_000, rng=Generator(1)).data, kl_divergence(p, q).data, atol=0.02)


def test_gradcheck_of_normal_kl_and_log_probs():
    assert mv.gradcheck(lambda m, s: kl_divergence(Normal(m, s), Normal(0.0, 1.0)),
                        [np.array([0.3, -1.0]), np.array([0.5, 2.0])])
    assert mv.gradcheck(lambda lg: Categorical(logits=lg).entropy(), [np.random.default_rng(0).normal(size=(2, 4))])


# ---- Gumbel-Softmax / Concrete --------------------------------------------------------
def test_concrete_density_integrates_to_one_for_two_categories():
    for tau, logits in [(0.5, [0.3, -0.4]), (1.0, [1.0, 0.0]), (2.0, [-1.0, 0.5])]:
        d = RelaxedOneHotCategorical(tau, logits=mv.tensor(np.array(logits)))
        # y = (s, 1 − s); integrate over the logit u of s, where ds = s(1 − s) du, on a fine grid
        u = np.linspace(-60, 60, 200_001)
        s = 1 / (1 + np.exp(-u))
        y = np.stack([s, 1 - s], axis=1)
        dens = np.exp(d.log_prob(mv.tensor(y)).data) * s * (1 - s)
        assert np.trapezoid(dens, u) == pytest.approx(1.0, abs=1e-4)


def test_concrete_log_prob_matches_the_paper_formula():
    rng = np.random.default_rng(0)
    logits, y, tau = rng.normal(size=4), rng.dirichlet(np.ones(4)), 0.7
    a = np.exp(logits)
    k = 4
    expected = (math.log(math.factorial(k - 1)) + (k - 1) * np.log(tau)
                + np.sum(np.log(a) - (tau + 1) * np.log(y)) - k * np.log(np.sum(a * y ** -tau)))
    assert RelaxedOneHotCategorical(tau, logits=mv.tensor(logits)).log_prob(mv.tensor(y)).item() == pytest.approx(expected)


@pytest.mark.parametrize("tau", [1e-3, 1e-2])
def test_concrete_log_prob_finite_where_samples_underflow(tau):
    d = RelaxedOneHotCategorical(tau, logits=mv.tensor(np.array([[2.0, -1.0, 0.5, 0.0]] * 8, np.float32)))
    y = d.rsample(rng=Generator(4))
    assert (y.data == 0).any()  # the entries really have underflowed
    assert np.all(np.isfinite(d.log_prob(y).data))
    x = ExpRelaxedCategorical(tau, logits=d.logits).rsample(rng=Generator(4))
    assert np.all(np.isfinite(x.data)) and np.all(np.isfinite(ExpRelaxedCategorical(tau, logits=d.logits).log_prob(x).data))


def test_temperature_must_be_positive():
    for tau in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            RelaxedOneHotCategorical(tau, logits=mv.tensor(np.zeros(3)))


def test_gumbel_softmax_hard_is_one_hot_forward_soft_backward():
    logits = mv.tensor(np.array([[1.0, 2.0, 0.5], [0.0, 3.0, 3.0]]), requires_grad=True)
    g = np.array([[0.1, -0.2, 0.3], [0.0, 0.0, 0.0]])
    hard = F.gumbel_softmax(logits, temperature=0.5, hard=True, gumbels=g)
    np.testing.assert_array_equal(hard.data, [[0, 1, 0], [0, 1, 0]])  # tie → lowest index
    upstream = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]])
    hard.backward(upstream)
    grad_hard = logits.grad.copy()
    logits.grad = None
    F.gumbel_softmax(logits, temperature=0.5, gumbels=g).backward(upstream)
    np.testing.assert_allclose(grad_hard, logits.grad)


def test_gumbel_softmax_soft_samples_gradcheck_with_fixed_noise():
    g = Generator(5).gumbel((3, 4), np.float64)
    assert mv.gradcheck(lambda lg: F.gumbel_softmax(lg, temperature=0.3, gumbels=g), [np.random.default_rng(1).normal(size=(3, 4))])


def test_gumbel_softmax_argmax_frequencies_are_categorical():
    logits = np.log(np.array([0.5, 0.2, 0.2, 0.1]))
    n = 40_000
    y = F.gumbel_softmax(mv.tensor(np.tile(logits, (n, 1))), temperature=1.0, rng=Generator(6))
    counts = np.bincount(y.data.argmax(-1), minlength=4)
    expected = n * np.exp(logits)
    assert ((counts - expected) ** 2 / expected).sum() < 16.27  # χ²(3) 0.999


def test_sampling_is_reproducible_with_the_same_seed():
    logits = mv.tensor(np.random.default_rng(0).normal(size=(5, 6)))
    a = RelaxedOneHotCategorical(0.5, logits=logits).rsample((3,), rng=Generator(11)).data
    b = RelaxedOneHotCategorical(0.5, logits=logits).rsample((3,), rng=Generator(11)).data
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", [RelaxedOneHotCategorical, ExpRelaxedCategorical])
def test_relaxed_samples_ignore_a_shift_of_the_logits_and_do_not_normalize_them(cls, monkeypatch):
    """softmax((l + g)/τ) does not change when a row of l shifts by a constant, so a relaxed sample
    reads the logits as given: the same draw for l and l + c (to rounding), and no log_softmax of the
    logits (one forward and one backward kernel a step on the GPU) until ``logits`` is read, which is
    then log-probabilities, as torch.distributions' are."""
    rows = np.random.default_rng(3).normal(size=(4, 5)) * 3
    shift = np.array([[100.0], [-7.0], [0.0], [1e3]])
    normalized = []  # the tensors log_softmax was applied to
    monkeypatch.setattr(mv.ops, "log_softmax", lambda x, *a, _real=mv.ops.log_softmax, **k: normalized.append(x) or _real(x, *a, **k))
    given = [mv.tensor(rows), mv.tensor(rows + shift)]
    a, b = (cls(0.5, logits=logits).rsample((2,), rng=Generator(8)) for logits in given)
    assert not any(x is logits for x in normalized for logits in given)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-9, atol=1e-9)
    d = cls(0.5, logits=given[1])
    np.testing.assert_allclose(np.exp(d.logits.data).sum(-1), 1.0)
    assert normalized[-1] is given[1] and d.logits is d.logits  # made once, when read
