"""Poisson and NegativeBinomial: probabilities by the textbook formulas (math.lgamma), summed to 1 with their moments,
draws by a χ² goodness-of-fit test on both sides of the sampler's switch (inversion below λ = 10, PTRS above), the
stream's layout (an element's draw depends on its own block only), gradients by gradcheck, KL by summation; and
against torch.distributions where torch is installed."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import NegativeBinomial, Poisson, kl_divergence
from minivae.random import Generator

RATE = np.array([0.0, 0.3, 2.5, 9.99, 10.0, 37.0])


def lg(v):
    return np.vectorize(math.lgamma, otypes=[np.float64])(v)


def poisson_log_pmf(k, lam):
    """log(e^{−λ}λᵏ/k!), 0⁰ = 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(k == 0, 0.0, k * np.log(lam)) - lam - lg(k + 1)


def poisson_pmf(k, lam):
    return np.exp(poisson_log_pmf(k, lam))


def nb_log_pmf(k, r, p):
    """log(Γ(r + k)/(Γ(r) k!)·(1 − p)ʳ·pᵏ)."""
    return lg(r + k) - lg(r) - lg(k + 1) + r * np.log1p(-p) + k * np.log(p)


def nb_pmf(k, r, p):
    return np.exp(nb_log_pmf(k, r, p))


# χ² at level 0.001 (STYLE.md rule 8: one false failure in about 1000 seeds): the statistic over the cells expected
# to hold ≥ 5 draws and the lumped tails, against the Wilson–Hilferty approximation of the χ²_df quantile,
# df(1 − 2/(9df) + z√(2/(9df)))³ with z = 3.0902 the normal's 0.999 quantile (within 1% of the exact quantile for df ≥ 3)
Z_999 = 3.0902


def assert_counts_follow(draws, pmf, what):
    draws = np.asarray(draws).ravel()
    n = draws.size
    assert np.all(draws == np.floor(draws)) and draws.min() >= 0, what
    top = int(draws.max()) + 1
    expected = pmf(np.arange(top + 1)) * n
    observed = np.bincount(draws.astype(np.int64), minlength=top + 1).astype(np.float64)
    cells = np.nonzero(expected >= 5)[0]
    lo, hi = cells[0], cells[-1]
    e = np.concatenate([[expected[:lo + 1].sum()], expected[lo + 1:hi], [n - expected[:hi].sum()]])
    o = np.concatenate([[observed[:lo + 1].sum()], observed[lo + 1:hi], [n - observed[:hi].sum()]])
    chi2 = ((o - e) ** 2 / e).sum()
    df = e.size - 1
    bound = df * (1 - 2 / (9 * df) + Z_999 * math.sqrt(2 / (9 * df))) ** 3
    assert chi2 < bound, f"{what}: χ² {chi2:.1f} over {df} degrees of freedom (bound {bound:.1f})"


def test_poisson_probabilities_are_the_formula_and_sum_to_one_with_its_moments():
    k = np.arange(120.0)[:, None]
    d = Poisson(RATE)
    log_p = d.log_prob(k).numpy()
    np.testing.assert_allclose(log_p, poisson_log_pmf(k, RATE), rtol=1e-14, atol=1e-14)
    p = np.exp(log_p)
    np.testing.assert_allclose(p.sum(axis=0), 1, rtol=1e-13)
    mean = (k * p).sum(axis=0)
    np.testing.assert_allclose(mean, RATE, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(((k - mean) ** 2 * p).sum(axis=0), RATE, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(d.mean.numpy(), RATE)
    np.testing.assert_array_equal(d.variance.numpy(), RATE)
    np.testing.assert_array_equal(d.mode.numpy(), np.floor(RATE))
    # no count: negative, fractional or NaN values have probability 0
    np.testing.assert_array_equal(Poisson(2.0).log_prob(np.array([-1.0, 2.5, np.nan])).numpy(), [-np.inf] * 3)


def test_negative_binomial_probabilities_are_the_formula_and_sum_to_one_with_its_moments():
    r, logits = np.array([0.4, 1.0, 3.0, 25.0]), np.array([-2.0, 0.3, 1.2, -0.5])
    p = 1 / (1 + np.exp(-logits))
    k = np.arange(400.0)[:, None]
    d = NegativeBinomial(r, logits=logits)
    log_p = d.log_prob(k).numpy()
    # to the rounding of its terms (lgamma(r + k) and lgamma(k + 1) up to 2100 here)
    terms = np.abs(lg(r + k)) + np.abs(lg(r)) + lg(k + 1) + np.abs(r * np.log1p(-p)) + np.abs(k * np.log(p))
    assert np.all(np.abs(log_p - nb_log_pmf(k, r, p)) <= 1e-15 * terms)
    probs = np.exp(log_p)
    np.testing.assert_allclose(probs.sum(axis=0), 1, rtol=1e-12)
    mean = (k * probs).sum(axis=0)
    np.testing.assert_allclose(d.mean.numpy(), r * p / (1 - p), rtol=1e-14)
    np.testing.assert_allclose(mean, d.mean.numpy(), rtol=1e-11)
    np.testing.assert_allclose(((k - mean) ** 2 * probs).sum(axis=0), d.variance.numpy(), rtol=1e-10)
    np.testing.assert_allclose(d.variance.numpy(), r * p / (1 - p) ** 2, rtol=1e-13)
    # the mode: the k of the largest probability (the formula's ⌊(r − 1)p/(1 − p)⌋, 0 for r ≤ 1)
    np.testing.assert_array_equal(d.mode.numpy(), probs.argmax(axis=0))
    # probs given: the same distribution; a value that is no count has probability 0
    np.testing.assert_allclose(NegativeBinomial(r, probs=p).log_prob(k).numpy(), d.log_prob(k).numpy(), rtol=1e-12)
    np.testing.assert_array_equal(NegativeBinomial(2.0, logits=0.0).log_prob(np.array([-2.0, 0.5])).numpy(),
                                  [-np.inf, -np.inf])


@pytest.mark.parametrize("lam", [0.05, 1.0, 4.0, 9.99, 10.0, 10.5, 37.0, 2000.0])
def test_poisson_draws_follow_the_distribution_on_both_sides_of_the_switch(lam):
    draws = Poisson(np.full(60_000, lam)).sample(rng=Generator(11)).numpy()
    assert_counts_follow(draws, lambda k: poisson_pmf(k, lam), f"Poisson({lam})")


@pytest.mark.parametrize("r, logit", [(0.5, 0.0), (3.0, 0.7), (40.0, -1.0)])
def test_negative_binomial_draws_follow_the_distribution(r, logit):
    p = 1 / (1 + math.exp(-logit))
    draws = NegativeBinomial(np.full(60_000, r), logits=logit).sample(rng=Generator(4)).numpy()
    assert_counts_follow(draws, lambda k: nb_pmf(k, r, p), f"NegativeBinomial({r}, logits={logit})")


def test_an_elements_draw_depends_on_its_own_block_only_and_the_counter_moves_a_block_a_value():
    """Element i of a draw at counter c uses the blocks (c + i, r): the same draw of a rate whatever the other
    elements (fewer of them, other rates, a rejection loop that runs longer elsewhere), and the next draw starts n
    blocks on; the same seed gives the same counts."""
    rates = np.array([3.0, 1e4, 0.2, 25.0, 9.99, 10.0])
    g = Generator(7)
    first = Poisson(rates).sample(rng=g).numpy()
    assert g.counter == rates.size
    second = Poisson(rates).sample(rng=g).numpy()
    np.testing.assert_array_equal(Poisson(rates).sample(rng=Generator(7)).numpy(), first)
    for i, lam in enumerate(rates):
        alone = Generator(7, counter=i)
        assert Poisson(np.array([lam])).sample(rng=alone).numpy()[0] == first[i]
        assert Poisson(np.array([lam])).sample(rng=Generator(7, counter=rates.size + i)).numpy()[0] == second[i]
    # a rate of 0 draws 0; an element's count is an integer of the rate's dtype
    zero = Poisson(np.zeros(50, np.float32)).sample((2,), rng=g)
    assert zero.dtype == np.float32 and zero.shape == (2, 50) and not zero.numpy().any()


def test_gradients_of_log_prob_pass_gradcheck():
    k = np.array([[0.0, 1.0, 4.0], [7.0, 2.0, 30.0]])
    assert mv.gradcheck(lambda lam: Poisson(lam).log_prob(k), [np.array([[0.4, 3.0, 25.0]])])
    assert mv.gradcheck(lambda r, l: NegativeBinomial(r, logits=l).log_prob(k),
                        [np.array([[0.6, 2.0, 15.0]]), np.array([[-1.0, 0.4, 2.0]])])
    # ∂/∂λ of k log λ − λ − lgamma(k + 1) is k/λ − 1: at k = 0 it is −1 even at λ = 0 (no 0·log 0 NaN)
    lam = mv.tensor(np.array([0.0, 2.0]), requires_grad=True)
    Poisson(lam).log_prob(np.array([0.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(lam.grad, [-1.0, 0.5])


def test_kl_is_the_sum_over_counts():
    p_rate, q_rate = np.array([0.0, 0.5, 3.0, 12.0]), np.array([2.0, 0.5, 0.7, 20.0])
    kl = kl_divergence(Poisson(p_rate), Poisson(q_rate)).numpy()
    k = np.arange(200.0)[:, None]
    p = poisson_pmf(k, p_rate)
    with np.errstate(invalid="ignore"):
        terms = np.where(p > 0, p * (poisson_log_pmf(k, p_rate) - poisson_log_pmf(k, q_rate)), 0.0)
    np.testing.assert_allclose(kl, terms.sum(axis=0), rtol=1e-12, atol=1e-15)
    assert kl[0] == 2.0  # KL(δ₀ ‖ Poisson(λ)) = −log e^{−λ} = λ
    assert kl_divergence(Poisson(np.array([1.0])), Poisson(np.array([0.0]))).numpy()[0] == np.inf


def test_bad_parameters_are_refused_naming_them():
    for bad in (-0.5, np.nan, np.inf):
        with pytest.raises(ValueError, match="Poisson: rate must be >= 0 and finite"):
            Poisson(np.array([1.0, bad]))
    with pytest.raises(ValueError, match="NegativeBinomial: total_count must be > 0"):
        NegativeBinomial(0.0, logits=0.0)
    with pytest.raises(ValueError, match="NegativeBinomial"):
        NegativeBinomial(1.0, probs=0.5, logits=0.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        NegativeBinomial(np.ones(3), logits=np.zeros(2))


def test_on_the_device_nothing_is_copied_to_the_host():
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record
    with use_numba(False), use_cuda_kernels(False), emulating():
        lam = mv.tensor(np.array([0.5, 30.0], np.float32), device="cuda", requires_grad=True)
        logits = mv.tensor(np.array([0.1, -0.4], np.float32), device="cuda", requires_grad=True)
        with record() as log:
            k = Poisson(lam).sample((3,), rng=Generator(0))
            nb = NegativeBinomial(2.0, logits=logits)
            out = Poisson(lam).log_prob(k).sum() + nb.log_prob(nb.sample((2,), rng=Generator(1))).sum() + nb.mean.sum()
            out.backward()
        assert log == [], describe(log)
        assert k.device == "cuda" and lam.grad is not None and logits.grad is not None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_values_and_gradients_match_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    lam, r = rng.uniform(0.1, 30, (3, 4)).astype(dtype), rng.uniform(0.2, 20, (3, 4)).astype(dtype)
    logits = rng.normal(size=(3, 4)).astype(dtype)
    k = rng.integers(0, 40, (3, 4)).astype(dtype)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    ours = [mv.tensor(a, requires_grad=True) for a in (lam, r, logits)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (lam, r, logits)]
    pairs = [(Poisson(ours[0]), torch.distributions.Poisson(theirs[0])),
             (NegativeBinomial(ours[1], logits=ours[2]), torch.distributions.NegativeBinomial(theirs[1], logits=theirs[2]))]
    for d, t in pairs:
        for name in ("mean", "variance", "mode"):
            np.testing.assert_allclose(getattr(d, name).numpy(), getattr(t, name).detach().numpy(), rtol=rtol)
        a, b = d.log_prob(k), t.log_prob(torch.tensor(k))
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=rtol)
        a.sum().backward()
        b.sum().backward()
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o.grad, t.grad.numpy(), rtol=rtol * 10)
    pk, qk = rng.uniform(0.1, 5, 6), rng.uniform(0.1, 5, 6)
    np.testing.assert_allclose(kl_divergence(Poisson(pk), Poisson(qk)).numpy(),
                               torch.distributions.kl_divergence(torch.distributions.Poisson(torch.tensor(pk)),
                                                                 torch.distributions.Poisson(torch.tensor(qk))).numpy(),
                               rtol=1e-13, atol=1e-14)  # (near-equal rates: both cancel terms of order λ)
