"""kl_divergence's pairs: each against its definition E_p[log p − log q] (a sum over {0, 1}, or a quadrature of the
log-densities), against torch.distributions.kl_divergence (values and gradients, float64 tight and float32), its
infinities and extreme parameters; the dispatch by the most specific pair and the error for a pair without one."""
import math
import warnings

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import (Bernoulli, Categorical, ContinuousBernoulli, Laplace, LogitRelaxedBernoulli, Normal,
                                   OneHotCategorical, RelaxedBernoulli, Uniform, kl_divergence, register_kl)
from minivae.distributions import kl as kl_module
from minivae.random import Generator

R = np.random.default_rng(0)
A, B = R.normal(size=4), R.normal(size=4)
S1, S2 = R.uniform(0.3, 2, 4), R.uniform(0.3, 2, 4)
L1, H1 = np.array([0.1, 0.2, -1.0, 0.3]), np.array([0.5, 0.9, 2.0, 0.4])
L2, H2 = np.array([-2.0, -1.0, -3.0, 0.2]), np.array([1.2, 1.5, 3.0, 2.0])  # (no bound at 0 or 1: torch's CB pairs
#                                                                                  are wrong there, see below)


def make(name, t, dtype=np.float64, requires_grad=False):
    """(ours, torch's or None, [our parameters]) for a named test distribution."""
    ps = {"N": (A, S1), "N2": (B, S2), "L": (A, S1), "L2": (B, S2), "U": (L1, H1), "U2": (L2, H2),
          "B": (3 * A,), "B2": (3 * B,), "C": (3 * A,), "C2": (3 * B,)}[name]
    ours = [mv.tensor(p.astype(dtype), requires_grad=requires_grad) for p in ps]
    cls = {"N": Normal, "L": Laplace, "U": Uniform, "B": Bernoulli, "C": ContinuousBernoulli}[name[0]]
    d = cls(*ours) if name[0] in "NLU" else cls(logits=ours[0])
    if t is None:
        return d, None, ours
    theirs = [t.tensor(p.astype(dtype), requires_grad=requires_grad) for p in ps]
    tcls = getattr(t.distributions, cls.__name__)
    td = tcls(*theirs) if name[0] in "NLU" else tcls(logits=theirs[0])
    return d, td, ours + theirs


PAIRS = [("N", "N2"), ("L", "L2"), ("U", "U2"), ("B", "B2"), ("C", "C2"), ("N", "L2"), ("L", "N2"), ("U", "N2"),
         ("C", "N2"), ("C", "U2"), ("U", "C2"), ("N", "U2"), ("L", "U2")]


def test_a_pair_without_a_closed_form_says_which_types():
    for p, q in [(Normal(0.0, 1.0), Bernoulli(0.5)), (Laplace(0.0, 1.0), ContinuousBernoulli(0.3)),
                 (RelaxedBernoulli(0.5, logits=0.0), RelaxedBernoulli(0.5, logits=1.0)),
                 (LogitRelaxedBernoulli(0.5, logits=0.0), Normal(0.0, 1.0))]:
        with pytest.raises(NotImplementedError) as info:
            kl_divergence(p, q)
        message = str(info.value)
        assert f"KL({type(p).__name__} ‖ {type(q).__name__})" in message and "mc_kl" in message


def test_the_most_specific_registered_pair_wins_whatever_the_order():
    """A pair for subclasses registered after their bases' is taken (the first registered match was taken before:
    Normal ‖ Normal for these subclasses); a pair that matches two ways with different functions warns."""
    class Mine(Normal):
        pass

    class Other(Normal):
        pass

    try:
        # looked up once before its own pair exists (Normal's pair, ½ here), then registered: the lookup is not kept
        np.testing.assert_allclose(kl_divergence(Mine(0.0, 1.0), Mine(1.0, 1.0)).numpy(), 0.5)
        register_kl(Mine, Mine)(lambda p, q: "mine")
        assert kl_divergence(Mine(0.0, 1.0), Mine(0.0, 1.0)) == "mine"
        np.testing.assert_allclose(kl_divergence(Mine(0.0, 1.0), Normal(1.0, 1.0)).numpy(), 0.5)
        register_kl(Other, Normal)(lambda p, q: "p first")
        register_kl(Normal, Other)(lambda p, q: "q first")
        with pytest.warns(RuntimeWarning, match=r"Ambiguous kl_divergence\(Other, Other\)"):
            assert kl_divergence(Other(0.0, 1.0), Other(0.0, 1.0)) == "p first"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert kl_divergence(Other(0.0, 1.0), Normal(0.0, 1.0)) == "p first"
    finally:
        for key in [(Mine, Mine), (Other, Normal), (Normal, Other)]:
            kl_module._KL.pop(key, None)
        kl_module._dispatch.cache_clear()


def bernoulli_kl(p, q):
    """Σ_x p(x)·log(p(x)/q(x)) over x ∈ {0, 1}, 0·log(0/q) = 0, p·log(p/0) = ∞."""
    total = 0.0
    for a, b in ((p, q), (1 - p, 1 - q)):
        if a > 0:
            total += math.inf if b == 0 else a * (math.log(a) - math.log(b))
    return total


def test_bernoulli_kl_is_the_sum_over_zero_and_one():
    rng = np.random.default_rng(1)
    lp, lq = rng.normal(0, 4, 30), rng.normal(0, 4, 30)
    got = kl_divergence(Bernoulli(logits=mv.tensor(lp)), Bernoulli(logits=mv.tensor(lq))).numpy()
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    np.testing.assert_allclose(got, [bernoulli_kl(sig(a), sig(b)) for a, b in zip(lp, lq)], rtol=1e-11, atol=1e-15)
    probs = [0.0, 1.0, 0.3, 0.5]
    p, q = np.array([(a, b) for a in probs for b in probs]).T
    got = kl_divergence(Bernoulli(mv.tensor(p)), Bernoulli(mv.tensor(q))).numpy()
    want = [bernoulli_kl(a, b) for a, b in zip(p, q)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[probs.index(0.3) * 4 + 0] == math.inf and got[0] == 0.0 and got[5] == 0.0


@pytest.mark.filterwarnings("error")
def test_bernoulli_kl_of_extreme_and_infinite_logits():
    """Logits ±1e4 give the finite KL with finite gradients; logits ±∞ (probabilities exactly 0 and 1) give the
    definition's 0 or ∞, with gradients that are not NaN."""
    for dtype in (np.float64, np.float32):
        lp = mv.tensor(np.array([1e4, -1e4, 1e4, 0.5], dtype), requires_grad=True)
        lq = mv.tensor(np.array([-1e4, 1e4, 1e4, -1e4], dtype), requires_grad=True)
        kl = kl_divergence(Bernoulli(logits=lp), Bernoulli(logits=lq))
        p3 = 1 / (1 + math.exp(-0.5))  # (log q = −1e4 − log1p(e⁻¹⁰⁰⁰⁰) = −1e4 and log(1 − q) = 0 exactly)
        np.testing.assert_allclose(kl.numpy(), [1e4, 1e4, 0, p3 * (math.log(p3) + 1e4) + (1 - p3) * math.log(1 - p3)],
                                   rtol=1e-6)
        kl.sum().backward()
        assert np.isfinite(lp.grad).all() and np.isfinite(lq.grad).all()
    inf = math.inf
    lp = mv.tensor(np.array([-inf, inf, -inf, 0.0, inf, 0.0]), requires_grad=True)
    lq = mv.tensor(np.array([0.0, 0.0, -inf, -inf, -inf, inf]), requires_grad=True)
    kl = kl_divergence(Bernoulli(logits=lp), Bernoulli(logits=lq))
    want = [bernoulli_kl(*pq) for pq in [(0, 0.5), (1, 0.5), (0, 0), (0.5, 0), (1, 0), (0.5, 1)]]
    np.testing.assert_allclose(kl.numpy(), want)
    kl.sum().backward()
    assert not np.isnan(lp.grad).any() and not np.isnan(lq.grad).any()


def test_one_hot_categorical_kl_is_the_categoricals_and_torchs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    ta, tb = (torch.tensor(x, requires_grad=True) for x in (a, b))
    oa, ob = (mv.tensor(x, requires_grad=True) for x in (a, b))
    ours = kl_divergence(OneHotCategorical(logits=oa), OneHotCategorical(logits=ob))
    theirs = torch.distributions.kl_divergence(torch.distributions.OneHotCategorical(logits=ta),
                                               torch.distributions.OneHotCategorical(logits=tb))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-13)
    np.testing.assert_array_equal(ours.numpy(), kl_divergence(Categorical(logits=mv.tensor(a)),
                                                               Categorical(logits=mv.tensor(b))).numpy())
    g = rng.normal(size=3)
    (ours * mv.tensor(g)).sum().backward()
    (theirs * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(oa.grad, ta.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ob.grad, tb.grad.numpy(), rtol=1e-12, atol=1e-15)


def quadrature_kl(p, q, lo, hi, n=400_001):
    """∫ p(x)·(log p(x) − log q(x)) dx over [lo, hi] (trapezoid; the kinks of Laplace on grid points or negligible)."""
    x = np.linspace(lo, hi, n)[:, None] * np.ones(4)
    lp, lq = p.log_prob(mv.tensor(x)).numpy(), q.log_prob(mv.tensor(x)).numpy()
    f = np.where(lp == -np.inf, 0.0, np.exp(lp) * (lp - lq))
    return np.trapezoid(f, x, axis=0)


@pytest.mark.parametrize("pair", [("N", "L2"), ("L", "N2"), ("L", "L2"), ("U", "N2"), ("U", "U2"), ("C", "C2"),
                                  ("C", "N2"), ("C", "U2"), ("U", "C2")])
def test_closed_forms_are_the_integrals_of_the_log_densities(pair):
    p, _, _ = make(pair[0], None)
    q, _, _ = make(pair[1], None)
    if pair[0] == "U":
        x = L1 + (H1 - L1) * np.linspace(0, 1, 200_001)[:, None]
        lp, lq = p.log_prob(mv.tensor(x)).numpy(), q.log_prob(mv.tensor(x)).numpy()
        if pair[1] == "C2":  # (ContinuousBernoulli.log_prob, as torch's, does not test its support)
            lq = np.where((x >= 0) & (x <= 1), lq, -np.inf)
        want = np.trapezoid(np.exp(lp) * (lp - lq), x, axis=0)
    elif pair[0] == "C":
        want = quadrature_kl(p, q, 0.0, 1.0)
    else:
        want = quadrature_kl(p, q, -40.0, 40.0, 800_001)
    # (the trapezoid's error: h²/12·∫f'' ≈ 10⁻⁸·|f''|, and Laplace's kink between grid points, h²·|jump of f'|)
    np.testing.assert_allclose(kl_divergence(p, q).numpy(), want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("pair", PAIRS)
def test_values_and_gradients_match_torch(pair, dtype, rtol):
    torch = pytest.importorskip("torch")
    p, tp, p_params = make(pair[0], torch, dtype, requires_grad=True)
    q, tq, q_params = make(pair[1], torch, dtype, requires_grad=True)
    ours, theirs = kl_divergence(p, q), torch.distributions.kl_divergence(tp, tq)
    assert ours.dtype == dtype and ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol, atol=rtol)
    if not np.isfinite(ours.numpy()).any():
        return
    g = np.random.default_rng(3).normal(size=4).astype(dtype)
    (ours * mv.tensor(g)).sum().backward()
    (theirs * torch.tensor(g)).sum().backward()
    n_p, n_q = len(p_params) // 2, len(q_params) // 2
    for a, b in zip(p_params[:n_p] + q_params[:n_q], p_params[n_p:] + q_params[n_q:]):
        want = np.zeros(4) if b.grad is None else b.grad.numpy()
        got = np.zeros(4) if a.grad is None else a.grad
        np.testing.assert_allclose(got, want, rtol=rtol * 10, atol=rtol * 10)


def test_continuous_bernoulli_and_uniform_at_the_edges_of_the_support():
    """KL(CB ‖ U(0, 2)) = log 2 − H(p) and KL(U(0, 1) ‖ CB) is finite: [0, 1] is inside both; torch's ≥/≤ tests make
    them ∞. U(−0.1, 1) ‖ CB and CB ‖ U(0.1, 2) are ∞."""
    cb = ContinuousBernoulli(logits=mv.tensor(np.array([0.7, -3.0])))
    got = kl_divergence(cb, Uniform(mv.tensor(np.array([0.0, 0.1])), 2.0)).numpy()
    assert got[0] == pytest.approx(math.log(2) - cb.entropy().numpy()[0], rel=1e-14) and got[1] == math.inf
    u = Uniform(mv.tensor(np.array([0.0, -0.1])), 1.0)
    got = kl_divergence(u, cb).numpy()
    x = np.linspace(0, 1, 200_001)[:, None] * np.ones(2)
    lq = cb.log_prob(mv.tensor(x)).numpy()
    assert got[0] == pytest.approx(np.trapezoid(-lq[:, 0], x[:, 0]), rel=1e-9) and got[1] == math.inf
    torch = pytest.importorskip("torch")
    td = torch.distributions
    tcb = td.ContinuousBernoulli(logits=torch.tensor([0.7], dtype=torch.float64))
    assert td.kl_divergence(tcb, td.Uniform(torch.tensor([0.0], dtype=torch.float64), 2.0)).item() == math.inf


def test_uniform_kl_is_infinite_where_p_leaves_q():
    """KL(U(a, b) ‖ U(c, d)) = log((d − c)/(b − a)) where c ≤ a and b ≤ d (equal ends included), ∞ where p sticks
    out below, above or on both sides."""
    p = Uniform(mv.tensor(np.array([0.0, -1.0, 0.0, -1.0, -0.5])), mv.tensor(np.array([1.0, 1.0, 2.0, 2.0, 0.5])))
    q = Uniform(mv.tensor(np.array([0.0])), mv.tensor(np.array([1.0])))
    np.testing.assert_array_equal(kl_divergence(p, q).numpy(), [0.0, math.inf, math.inf, math.inf, math.inf])
    q = Uniform(mv.tensor(np.array([-1.0])), mv.tensor(np.array([1.5])))
    np.testing.assert_allclose(kl_divergence(Uniform(0.0, 1.0), q).numpy(), math.log(2.5), rtol=1e-7)


def test_unbounded_p_against_a_uniform_is_infinite_over_both_batches():
    q = Uniform(mv.tensor(np.zeros((2, 1))), 1.0)
    for p in (Normal(mv.tensor(np.zeros(3)), 1.0), Laplace(mv.tensor(np.zeros(3)), 1.0)):
        kl = kl_divergence(p, q)
        assert kl.shape == (2, 3) and (kl.numpy() == math.inf).all()


def test_gradcheck_float64():
    def f(a, s1, b, s2, lo, hi):
        n, la, lb = Normal(a, s1), Laplace(a, s1), Laplace(b, s2)
        u, c1, c2 = Uniform(lo, hi), ContinuousBernoulli(logits=a), ContinuousBernoulli(logits=b)
        return (kl_divergence(la, lb) + kl_divergence(n, lb) + kl_divergence(la, Normal(b, s2))
                + kl_divergence(u, Normal(b, s2)) + kl_divergence(u, Uniform(lo - s1, hi + s2))
                + kl_divergence(Bernoulli(logits=a), Bernoulli(logits=b)) + kl_divergence(c1, c2)
                + kl_divergence(c1, Normal(b, s2)))
    assert mv.gradcheck(f, [A, S1, B, S2, L1, H1])


def test_on_the_device_nothing_is_copied_to_the_host():
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record
    with use_numba(False), use_cuda_kernels(False), emulating():
        x = mv.tensor(np.array([0.2, -0.7], np.float32), device="cuda", requires_grad=True)
        with record() as log:
            out = (kl_divergence(Laplace(x, 1.0), Laplace(0.0, 2.0)) + kl_divergence(Normal(x, 1.0), Laplace(0.0, 2.0))
                   + kl_divergence(Laplace(x, 1.0), Normal(0.0, 2.0)) + kl_divergence(Bernoulli(logits=x),
                                                                                      Bernoulli(logits=-x))
                   + kl_divergence(ContinuousBernoulli(logits=x), ContinuousBernoulli(logits=-x))
                   + kl_divergence(Uniform(x - 1, x + 1), Uniform(-3.0, 3.0))
                   + kl_divergence(Uniform(x - 1, x + 1), Normal(0.0, 1.0)))
            out.sum().backward()
            inf = kl_divergence(Normal(x, 1.0), Uniform(-1.0, 1.0))
            prior = (kl_divergence(Bernoulli(logits=x), Bernoulli(0.5)) + kl_divergence(Bernoulli(logits=x), Bernoulli(1.0))
                     + kl_divergence(Uniform(x - 1, x + 1), Uniform(-2.0, 0.0)))
        assert log == [], describe(log)
        assert x.grad is not None and inf.device == prior.device == "cuda"
        np.testing.assert_array_equal(np.isinf(prior.numpy()), [True, True])


def test_monte_carlo_agrees_with_the_closed_forms():
    """mc_kl of 20000 draws within 5 standard errors of each new closed form (a false failure below 10⁻⁶)."""
    from minivae.distributions import mc_kl
    for pair in [("L", "L2"), ("N", "L2"), ("L", "N2"), ("U", "U2")]:
        p, _, _ = make(pair[0], None)
        q, _, _ = make(pair[1], None)
        z = p.sample((20_000,), rng=Generator(0))
        diff = (p.log_prob(z) - q.log_prob(z)).numpy()
        se = diff.std(0) / math.sqrt(20_000)
        est = mc_kl(p, q, 20_000, rng=Generator(0)).numpy()
        assert (np.abs(est - kl_divergence(p, q).numpy()) <= 5 * se + 1e-12).all(), pair
