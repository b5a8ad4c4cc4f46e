"""likelihood="poisson", "negative_binomial" and "zero_inflated_negative_binomial" on the three VAEs: log p(x|z) against
the pmfs written out with math.lgamma (and torch's distributions where torch is installed), each pmf summing to 1 with
the mean and variance it promises (exact enumeration), a float64 gradcheck of the loss, training on counts drawn from
known Poisson and negative-binomial models lowers the loss and moves the learned dispersion (and dropout) towards the
truth, checkpoints carry log_theta (and gate_logits), the encoder reads log(1 + x), and .npy/.npz count files load with
their values checked."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import objectives
from minivae.data import DataFormatError, check_splits, load_array, load_splits
from minivae.distributions import NegativeBinomial, Poisson
from minivae.models import (COUNT_LIKELIHOODS, BernoulliVAE, CategoricalVAE, GaussianVAE, LogRatePoisson,
                            ZeroInflatedNegativeBinomial, _likelihood_of, code, reconstruct)
from minivae.optim import Adam
from minivae.random import Generator
from tests.test_likelihoods import train_then_reload
from tests.test_objectives_models import _rebind

X_DIM = 7  # no square: counts are no images
MODELS = {
    "gaussian": lambda likelihood, **kw: GaussianVAE(X_DIM, (12,), 3, likelihood=likelihood, rng=Generator(0), **kw),
    "categorical": lambda likelihood, **kw: CategoricalVAE(X_DIM, (12,), 3, 4, likelihood=likelihood, rng=Generator(0),
                                                           **kw),
    "bernoulli": lambda likelihood, **kw: BernoulliVAE(X_DIM, (12,), 5, likelihood=likelihood, rng=Generator(0), **kw),
}
MU = np.exp(np.linspace(0.0, 2.5, X_DIM))  # the synthetic sets' means, 1 to 12


def nb_counts(n, theta, seed, mu=MU):
    """n rows of NB(mean μ_j, inverse dispersion θ) counts, drawn by the project's Generator (Gamma–Poisson)."""
    d = NegativeBinomial(np.full((n, len(mu)), float(theta)), logits=np.log(mu) - math.log(theta))
    return d.sample(rng=Generator(seed)).numpy().astype(np.float32)


def poisson_counts(n, seed, mu=MU):
    return Poisson(np.broadcast_to(mu, (n, len(mu))).copy()).sample(rng=Generator(seed)).numpy().astype(np.float32)


def _poisson_log_pmf(k, log_rate):
    return k * log_rate - math.exp(log_rate) - math.lgamma(k + 1)


def _nb_log_pmf(k, log_mu, log_theta):
    """Γ(θ + k)/(Γ(θ)·k!)·(θ/(θ + μ))^θ·(μ/(θ + μ))^k, in logs: log(θ + μ) as log θ + log1p(μ/θ)."""
    mu, theta = math.exp(log_mu), math.exp(log_theta)
    log_sum = log_theta + math.log1p(mu / theta)
    return (math.lgamma(theta + k) - math.lgamma(theta) - math.lgamma(k + 1) + theta * (log_theta - log_sum)
            + k * (log_mu - log_sum))


def _zinb_log_pmf(k, log_mu, log_theta, gate_logit):
    """π·[k = 0] + (1 − π)·NB(k), π = 1/(1 + e^{−g}), in logs."""
    log_pi, log_keep = -math.log1p(math.exp(-gate_logit)), -math.log1p(math.exp(gate_logit))
    nb = _nb_log_pmf(k, log_mu, log_theta)
    if k > 0:
        return log_keep + nb
    top = max(log_pi, log_keep + nb)
    return top + math.log(math.exp(log_pi - top) + math.exp(log_keep + nb - top))


def _decoded(vae, n, seed=1):
    """(p(x|z), the decoder's output) at n draws z ~ p(z)."""
    z = vae.prior().sample((n,), rng=Generator(seed))
    flat = z if z.ndim == 2 else mv.ops.reshape(z, (n, -1))
    return vae.likelihood(z), vae.decoder(flat).numpy()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("likelihood", COUNT_LIKELIHOODS)
def test_log_likelihood_of_each_model_is_the_pmf(model, likelihood):
    vae = MODELS[model](likelihood).double()
    if likelihood != "poisson":  # θ of each feature its own, from 0.05 to 20; π from 0.02 to 0.95
        vae.log_theta.data = np.linspace(math.log(0.05), math.log(20.0), X_DIM)
    if likelihood == "zero_inflated_negative_binomial":
        vae.gate_logits.data = np.linspace(-4.0, 3.0, X_DIM)
    x = nb_counts(3, 0.5, seed=2).astype(np.float64)
    x[0, :3] = (0, 1, 250)
    with mv.no_grad():
        p, out = _decoded(vae, 3)
        got = p.log_prob(mv.tensor(x)).numpy()
        mean = p.mean.numpy()
    for b in range(3):
        for j in range(X_DIM):
            k, o = float(x[b, j]), float(out[b, j])
            if likelihood == "poisson":
                expected = _poisson_log_pmf(k, o)
            elif likelihood == "negative_binomial":
                expected = _nb_log_pmf(k, o, float(vae.log_theta.data[j]))
            else:
                expected = _zinb_log_pmf(k, o, float(vae.log_theta.data[j]), float(vae.gate_logits.data[j]))
            assert got[b, j] == pytest.approx(expected, rel=1e-12, abs=1e-12), (b, j)
    keep = 1 / (1 + np.exp(vae.gate_logits.data)) if likelihood == "zero_inflated_negative_binomial" else 1.0
    np.testing.assert_allclose(mean, keep * np.exp(out), rtol=1e-12)  # the mean e^out (less the dropouts)


def test_count_log_likelihoods_against_torch():
    torch = pytest.importorskip("torch")
    vae_p, vae_nb = MODELS["gaussian"]("poisson").double(), MODELS["gaussian"]("negative_binomial").double()
    vae_nb.log_theta.data = np.linspace(-2.0, 3.0, X_DIM)
    x = nb_counts(4, 0.7, seed=3).astype(np.float64)
    with mv.no_grad():
        (p, out_p), (nb, out_nb) = _decoded(vae_p, 4), _decoded(vae_nb, 4)
        got_p, got_nb = p.log_prob(mv.tensor(x)).numpy(), nb.log_prob(mv.tensor(x)).numpy()
    t = torch.as_tensor
    expected_p = torch.distributions.Poisson(torch.exp(t(out_p))).log_prob(t(x)).numpy()
    log_theta = t(vae_nb.log_theta.data)
    expected_nb = torch.distributions.NegativeBinomial(torch.exp(log_theta), logits=t(out_nb) - log_theta).log_prob(t(x))
    np.testing.assert_allclose(got_p, expected_p, rtol=1e-12)
    np.testing.assert_allclose(got_nb, expected_nb.numpy(), rtol=1e-12)
    # torch's exact Poisson NLL (log_input, full=False drops only log k!)
    nll = torch.nn.functional.poisson_nll_loss(t(out_p), t(x), log_input=True, full=False, reduction="none").numpy()
    lgk = np.vectorize(math.lgamma)(x + 1)
    np.testing.assert_allclose(got_p, -nll - lgk, rtol=1e-12)
    # ZINB: torch has none; the mixture π·[k = 0] + (1 − π)·NB(k) of torch's NB
    vae_z = MODELS["gaussian"]("zero_inflated_negative_binomial").double()
    vae_z.log_theta.data, vae_z.gate_logits.data = vae_nb.log_theta.data, np.linspace(-3.0, 2.0, X_DIM)
    with mv.no_grad():
        zinb, out_z = _decoded(vae_z, 4)
        got_z = zinb.log_prob(mv.tensor(x)).numpy()
    nb_z = torch.distributions.NegativeBinomial(torch.exp(log_theta), logits=t(out_z) - log_theta).log_prob(t(x))
    pi = torch.sigmoid(t(vae_z.gate_logits.data))
    expected_z = torch.log(pi * (t(x) == 0) + (1 - pi) * torch.exp(nb_z))
    np.testing.assert_allclose(got_z, expected_z.numpy(), rtol=1e-12)


@pytest.mark.parametrize("log_mu, log_theta", [(0.0, 0.0), (2.0, -2.0), (-1.0, 3.0), (3.0, 1.0)])
def test_each_pmf_sums_to_one_with_its_mean_and_variance(log_mu, log_theta):
    """Σ_k p(k) over k = 0 … K (K far in the tail) is 1, Σ k·p(k) = μ and Σ (k − μ)²·p(k) = μ + μ²/θ (Poisson: μ):
    the log Γ terms are all there, and θ is the inverse dispersion of scVI's parametrisation. The ZINB of dropout π:
    mean (1 − π)μ, E X² = (1 − π)(μ² + μ + μ²/θ)."""
    vae = MODELS["gaussian"]("zero_inflated_negative_binomial").double()
    vae.log_theta.data, vae.gate_logits.data = np.full(X_DIM, log_theta), np.full(X_DIM, -0.5)
    keep = 1 / (1 + math.exp(-0.5))
    k = np.arange(6000, dtype=np.float64)[:, None]  # NB(μ = 20, θ = e⁻²): P(k ≥ 6000) < 10⁻¹⁸
    out = mv.tensor(np.full((1, X_DIM), log_mu))
    mu, theta = math.exp(log_mu), math.exp(log_theta)
    from minivae.models import _likelihood_of
    nb_variance = mu + mu * mu / theta
    zi_mean = keep * mu
    for kind, mean, variance in (("negative_binomial", mu, nb_variance), ("poisson", mu, mu),
                                 ("zero_inflated_negative_binomial", zi_mean,
                                  keep * (mu * mu + nb_variance) - zi_mean * zi_mean)):
        vae.likelihood_kind = kind
        with mv.no_grad():
            p = _likelihood_of(vae, out)
            pmf = np.exp(p.log_prob(mv.tensor(k)).numpy()[:, 0])
            assert p.mean.numpy()[0, 0] == pytest.approx(mean, rel=1e-12)
            assert p.variance.numpy()[0, 0] == pytest.approx(variance, rel=1e-12)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
        assert (k[:, 0] * pmf).sum() == pytest.approx(mean, rel=1e-10)
        assert (((k[:, 0] - mean) ** 2) * pmf).sum() == pytest.approx(variance, rel=1e-9)


def test_log_rate_poisson_stays_finite_where_the_rate_underflows():
    """η = −200 in float32: e^η = 0, log p(k) = k·η − 0 − log k! finite (Poisson(rate=0) gives −∞ for k > 0), with the
    gradient k − e^η = k; a value that is no count is −∞."""
    eta = mv.tensor(np.array([-200.0, -200.0, 1.5, 1.5], np.float32), requires_grad=True)
    k = np.array([0.0, 3.0, 2.0, 2.5], np.float32)
    lp = LogRatePoisson(eta).log_prob(k)
    got = lp.numpy()
    assert got[0] == 0.0 and got[1] == pytest.approx(-600.0 - math.log(6), rel=1e-6)
    assert got[2] == pytest.approx(_poisson_log_pmf(2.0, 1.5), rel=1e-6) and got[3] == -math.inf
    lp[:3].sum().backward()
    np.testing.assert_allclose(eta.grad, [0.0, 3.0, 2.0 - math.exp(1.5), 0.0], rtol=1e-6)


@pytest.mark.parametrize("model, likelihood", [("gaussian", "poisson"), ("gaussian", "negative_binomial"),
                                               ("bernoulli", "negative_binomial"),
                                               ("gaussian", "zero_inflated_negative_binomial")])
def test_loss_gradcheck_with_fixed_noise(model, likelihood):
    vae = {"gaussian": lambda: GaussianVAE(4, (3,), 2, likelihood=likelihood, activation="tanh", rng=Generator(0)),
           "bernoulli": lambda: BernoulliVAE(4, (), 2, likelihood=likelihood, rng=Generator(0))}[model]()
    x = mv.tensor(np.array([[0, 3, 1, 7], [2, 0, 12, 1]], np.float64))
    names = [n for n, _ in vae.named_parameters()]
    assert ("log_theta" in names) == (likelihood != "poisson")
    assert ("gate_logits" in names) == (likelihood == "zero_inflated_negative_binomial")
    assert mv.gradcheck(lambda *ps: _rebind(vae, ps, x), [p.data.astype(np.float64) for p in vae.parameters()])


def test_log_theta_gets_its_gradient():
    """∂(−log p)/∂log θ of one NB count, by the formula: −θ·[ψ(θ + k) − ψ(θ) + log(θ/(θ + μ)) + (μ − k)/(θ + μ)],
    ψ by central differences of math.lgamma (an independent source)."""
    vae = MODELS["gaussian"]("negative_binomial").double()
    vae.log_theta.data = np.linspace(-1.0, 1.0, X_DIM)
    x = nb_counts(1, 1.0, seed=4).astype(np.float64)
    z = mv.tensor(np.zeros((1, 3)))
    (-vae.likelihood(z).log_prob(mv.tensor(x)).sum()).backward()
    with mv.no_grad():
        mu = np.exp(vae.decoder(z).numpy()[0])

    def psi(a, h=1e-5):
        return (math.lgamma(a + h) - math.lgamma(a - h)) / (2 * h)
    for j in range(X_DIM):
        theta, k = math.exp(vae.log_theta.data[j]), float(x[0, j])
        expected = -theta * (psi(theta + k) - psi(theta) + math.log(theta / (theta + mu[j])) + (mu[j] - k) / (theta + mu[j]))
        assert vae.log_theta.grad[j] == pytest.approx(expected, rel=1e-7, abs=1e-9), j


def test_the_encoder_reads_log1p_of_the_counts():
    vae, x = MODELS["gaussian"]("poisson").double(), nb_counts(3, 0.5, seed=5).astype(np.float64)
    plain = MODELS["gaussian"]("bernoulli").double()  # the same weights (log θ and the rate draw nothing)
    with mv.no_grad():
        np.testing.assert_array_equal(vae.posterior(mv.tensor(x)).loc.numpy(),
                                      plain.posterior(mv.tensor(np.log1p(x))).loc.numpy())


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("likelihood", COUNT_LIKELIHOODS)
def test_adam_steps_lower_the_loss_on_counts_and_the_checkpoint_round_trips(model, likelihood, tmp_path):
    x = mv.tensor(poisson_counts(40, seed=6) if likelihood == "poisson" else nb_counts(40, 0.5, seed=6))
    vae, loaded = train_then_reload(MODELS[model](likelihood), x, likelihood, tmp_path)
    if likelihood != "poisson":
        assert np.all(vae.log_theta.data != 0)  # trained, then restored
        np.testing.assert_array_equal(loaded.log_theta.data, vae.log_theta.data)
    if likelihood == "zero_inflated_negative_binomial":
        assert np.all(vae.gate_logits.data != -2)
        np.testing.assert_array_equal(loaded.gate_logits.data, vae.gate_logits.data)


@pytest.mark.parametrize("theta", [0.3, 10.0])
def test_the_learned_dispersion_moves_towards_the_truth(theta):
    """Independent NB(μ_j, θ) counts (no structure a 2-d z can explain): from log θ = 0, 120 Adam steps bring the
    per-feature log θ near log 0.3 (over-dispersed: down) or well up towards log 10 (nearly Poisson). Measured over 5
    seeds: mean log θ −1.19 … −1.12 (truth −1.20), every feature below −0.87; for θ = 10, mean 1.24 … 1.49, every
    feature above 0.33."""
    mu = np.exp(np.linspace(0.5, 2.5, 20))
    x = nb_counts(200, theta, seed=7, mu=mu)
    vae = GaussianVAE(20, (16,), 2, likelihood="negative_binomial", rng=Generator(0))
    optimizer, rng = Adam(vae.parameters(), lr=3e-2), Generator(1)
    for step in range(120):
        loss = vae.loss(mv.tensor(x[(step % 4) * 50:(step % 4 + 1) * 50]), rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    log_theta = vae.log_theta.numpy()
    if theta < 1:
        assert abs(log_theta.mean() - math.log(theta)) < 0.25 and log_theta.max() < -0.6, log_theta
    else:
        assert log_theta.mean() > 1.0 and log_theta.min() > 0.2, log_theta


@pytest.mark.parametrize("pi", [0.4, 0.0])
def test_the_learned_dropout_moves_towards_the_truth(pi):
    """ZINB(μ_j, θ = 2, π) counts: from π = σ(−2) ≈ 0.12, 120 Adam steps raise the mean learned π towards 0.4
    (measured over 3 seeds: 0.24) or lower it towards 0 (0.024 … 0.025)."""
    mu = np.exp(np.linspace(0.5, 2.5, 20))
    d = ZeroInflatedNegativeBinomial(np.full((200, 20), 2.0), logits=np.log(mu) - math.log(2.0),
                                     gate=np.full((200, 20), pi))
    x = d.sample(rng=Generator(7)).numpy().astype(np.float32)
    vae = GaussianVAE(20, (16,), 2, likelihood="zero_inflated_negative_binomial", rng=Generator(0))
    optimizer, rng = Adam(vae.parameters(), lr=3e-2), Generator(1)
    for step in range(120):
        loss = vae.loss(mv.tensor(x[(step % 4) * 50:(step % 4 + 1) * 50]), rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    gate = 1 / (1 + np.exp(-vae.gate_logits.numpy()))
    assert (gate.mean() > 0.2) if pi else (gate.mean() < 0.06), gate


def test_zinb_samples_zeros_as_often_as_its_pmf_says():
    """The fraction of zeros in n = 20000 draws is P(0) = π + (1 − π)(θ/(θ + μ))^θ to within 5 standard errors
    (a false failure once in 10⁶ seeds); the mean of the draws within 5 of theirs."""
    n, theta, mu, pi = 20_000, 2.0, math.exp(1.2), 0.3
    d = ZeroInflatedNegativeBinomial(np.full(n, theta), logits=np.full(n, 1.2 - math.log(theta)), gate=np.full(n, pi))
    draws = d.sample(rng=Generator(21)).numpy()
    p0 = pi + (1 - pi) * (theta / (theta + mu)) ** theta
    assert abs((draws == 0).mean() - p0) < 5 * math.sqrt(p0 * (1 - p0) / n)
    mean, variance = (1 - pi) * mu, (1 - pi) * (mu * mu + mu + mu * mu / theta) - ((1 - pi) * mu) ** 2
    assert abs(draws.mean() - mean) < 5 * math.sqrt(variance / n)
    assert np.all(draws == np.floor(draws)) and draws.min() >= 0


def test_zinb_takes_one_of_gate_and_gate_logits():
    for kw in ({}, {"gate": 0.5, "gate_logits": 0.0}):
        with pytest.raises(ValueError, match="exactly one of gate and gate_logits"):
            ZeroInflatedNegativeBinomial(2.0, logits=0.0, **kw)
    assert ZeroInflatedNegativeBinomial(2.0, logits=0.0, gate=0.25).gate.item() == pytest.approx(0.25, rel=1e-7)


def test_zinb_without_dropouts_is_the_negative_binomial():
    """gate_logits −∞ (no dropout) gives NB's log_prob, zeros included (log(π + (1 − π)·NB(0)) not ∞ − ∞), with a
    gradient 0 in the gate; gate = 0 (clamped to ε, as torch's probs) within ε of it."""
    k = np.array([0.0, 0.0, 3.0, 40.0])
    r, l = np.array([2.0, 0.1, 2.0, 5.0]), np.array([0.3, -2.0, 0.3, 2.0])
    g = mv.tensor(np.full(4, -np.inf), requires_grad=True)
    got = ZeroInflatedNegativeBinomial(r, logits=l, gate_logits=g).log_prob(k)
    nb = NegativeBinomial(r, logits=l).log_prob(k).numpy()
    np.testing.assert_allclose(got.numpy(), nb, rtol=1e-13)  # (NB's lgamma(r) − lgamma(r) rounds at k = 0)
    got.sum().backward()
    np.testing.assert_array_equal(g.grad, np.zeros(4))
    at_zero = ZeroInflatedNegativeBinomial(r, logits=l, gate=np.zeros(4)).log_prob(k).numpy()
    np.testing.assert_allclose(at_zero, nb, rtol=0, atol=1e-14)


def test_nb_fits_over_dispersed_counts_better_than_poisson():
    """On NB(θ = 0.5) counts the NB model's validation ELBO is far above the Poisson model's after the same training."""
    x, valid = nb_counts(200, 0.5, seed=8), mv.tensor(nb_counts(100, 0.5, seed=9))
    elbo = {}
    for likelihood in ("poisson", "negative_binomial"):
        vae = GaussianVAE(X_DIM, (16,), 2, likelihood=likelihood, rng=Generator(0))
        optimizer, rng = Adam(vae.parameters(), lr=2e-2), Generator(1)
        for step in range(80):
            loss = vae.loss(mv.tensor(x[(step % 4) * 50:(step % 4 + 1) * 50]), rng)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        elbo[likelihood] = objectives.elbo(vae, valid, Generator(3)).numpy().mean()
    assert elbo["negative_binomial"] > elbo["poisson"] + 5.0, elbo  # measured: −16.4 against −26.2 nats


# ---- library="observed" (μ = ℓ·softmax(out), ℓ the row's total) and gate="decoder" (ZINB dropout a decoder head) ----
COUNT_OPTIONS = [("poisson", "feature"), ("negative_binomial", "feature"), ("zero_inflated_negative_binomial", "feature"),
                 ("zero_inflated_negative_binomial", "decoder")]


def _log_softmax(row):
    top = max(row)
    log_sum = math.log(math.fsum(math.exp(o - top) for o in row))
    return [o - top - log_sum for o in row]


def _gates(vae, out):
    """The dropout logits of each row: the decoder's second half (gate="decoder") or the per-feature parameter."""
    return out[..., X_DIM:] if vae.gate_kind == "decoder" else np.broadcast_to(vae.gate_logits.data, out.shape)


def library_counts(n, seed, spread=1.0, dropout=None):
    """n cells × 12 genes of three types (cell i of type i mod 3), each type a profile ρ_k (proportions summing to 1),
    library sizes ℓ_i = 100·e^{spread·N(0, 1)} (about 14 to 730 for the middle 95 % at spread 1): NB(ℓ_i·ρ_k, θ = 3)
    counts, or ZINB ones of dropout probability dropout[k] (a type's own) where given; the project's Generator draws."""
    g, genes = Generator(seed), 12
    profiles = np.exp(Generator(0).normal((3, genes), np.float64))
    profiles /= profiles.sum(axis=1, keepdims=True)
    mean = profiles[np.arange(n) % 3] * np.exp(math.log(100.0) + spread * g.normal((n, 1), np.float64))
    theta, logits = np.full((n, genes), 3.0), np.log(mean) - math.log(3.0)
    if dropout is None:
        return NegativeBinomial(theta, logits=logits).sample(rng=g).numpy().astype(np.float32)
    gate = np.broadcast_to(np.asarray(dropout)[np.arange(n) % 3, None], (n, genes)).copy()
    return ZeroInflatedNegativeBinomial(theta, logits=logits, gate=gate).sample(rng=g).numpy().astype(np.float32)


def _fit(x, steps, **options):
    """A GaussianVAE of 12 features, 2 latents, ``options``, after ``steps`` Adam steps on x in 4 batches of 50."""
    vae = GaussianVAE(12, (16,), 2, rng=Generator(0), **options)
    optimizer, rng = Adam(vae.parameters(), lr=2e-2), Generator(1)
    for step in range(steps):
        loss = vae.loss(mv.tensor(x[(step % 4) * 50:(step % 4 + 1) * 50]), rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return vae


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("likelihood, gate", COUNT_OPTIONS)
def test_observed_library_log_prob_is_the_pmf_at_the_rows_total(model, likelihood, gate):
    """log p(x|z) of library="observed" is each pmf at log μ_j = log softmax(out)_j + log ℓ, ℓ = Σ_j x_j the row's own
    total (1 for a row of no counts), the softmax and the pmfs written with math.*; with gate="decoder" the dropout logits
    are the decoder's second X_DIM outputs."""
    vae = MODELS[model](likelihood, library="observed", gate=gate).double()
    if likelihood != "poisson":
        vae.log_theta.data = np.linspace(math.log(0.05), math.log(20.0), X_DIM)
    if gate == "feature" and likelihood == "zero_inflated_negative_binomial":
        vae.gate_logits.data = np.linspace(-4.0, 3.0, X_DIM)
    x = nb_counts(3, 0.5, seed=2).astype(np.float64)
    x[0, :3], x[2] = (0, 1, 250), 0
    with mv.no_grad():
        p, out = _decoded(vae, 3)
        got = p.log_prob(mv.tensor(x)).numpy()
    assert out.shape == (3, 2 * X_DIM if gate == "decoder" else X_DIM)
    for b in range(3):
        log_rho, log_library = _log_softmax(list(out[b, :X_DIM])), math.log(max(math.fsum(x[b]), 1.0))
        for j in range(X_DIM):
            k, log_mu = float(x[b, j]), log_rho[j] + log_library
            if likelihood == "poisson":
                expected = _poisson_log_pmf(k, log_mu)
            elif likelihood == "negative_binomial":
                expected = _nb_log_pmf(k, log_mu, float(vae.log_theta.data[j]))
            else:
                expected = _zinb_log_pmf(k, log_mu, float(vae.log_theta.data[j]), float(_gates(vae, out)[b, j]))
            assert got[b, j] == pytest.approx(expected, rel=1e-12, abs=1e-12), (b, j)


@pytest.mark.parametrize("likelihood, gate", COUNT_OPTIONS)
def test_observed_library_means_sum_to_the_library(likelihood, gate):
    """μ = ℓ·softmax(out): the NB part's means (the mean over 1 − π for ZINB) of each row are ℓ times e^out normalised
    by NumPy, so they sum to ℓ: a given ℓ (one a row), reconstruct's (each row's total), and the training rows' mean ℓ̄
    of ``sample`` (which refuses an untrained model without one)."""
    vae = MODELS["gaussian"](likelihood, library="observed", gate=gate).double()
    library = np.array([3.0, 40.0, 1234.5])
    z = vae.prior().sample((3,), rng=Generator(1))
    with mv.no_grad():
        out = vae.decoder(z).numpy()
        mean = vae.likelihood(z, library=library).mean.numpy()
    keep = 1 / (1 + np.exp(_gates(vae, out))) if likelihood == "zero_inflated_negative_binomial" else 1.0
    rho = np.exp(out[:, :X_DIM]) / np.exp(out[:, :X_DIM]).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(mean / keep, library[:, None] * rho, rtol=1e-12)
    np.testing.assert_allclose((mean / keep).sum(axis=1), library, rtol=1e-12)
    x = nb_counts(4, 0.5, seed=3).astype(np.float64)
    with mv.no_grad():
        out = vae.decoder(code(vae, mv.tensor(x))).numpy()
        rebuilt = reconstruct(vae, mv.tensor(x)).numpy()
    keep = 1 / (1 + np.exp(_gates(vae, out))) if likelihood == "zero_inflated_negative_binomial" else 1.0
    np.testing.assert_allclose((rebuilt / keep).sum(axis=1), x.sum(axis=1), rtol=1e-12)
    with pytest.raises(ValueError, match="needs a library size ℓ for its samples: give library=, or train it first"):
        vae.sample(2, Generator(4))
    vae.library_mean.data[...], vae.library_rows.data[...] = 57.25, 8
    np.testing.assert_allclose(_nb_part_sums(vae, vae.sample(2, Generator(4))), 57.25, rtol=1e-12)
    np.testing.assert_allclose(_nb_part_sums(vae, vae.sample(2, Generator(4), library=9.0)), 9.0, rtol=1e-12)


def _nb_part_sums(vae, means):
    """Each row's sum of the NB part's means of ``vae.sample``'s rows (drawn again from the same prior draws)."""
    if vae.likelihood_kind != "zero_inflated_negative_binomial":
        return means.numpy().sum(axis=1)
    with mv.no_grad():
        out = vae.decoder(vae.prior().sample((len(means),), rng=Generator(4))).numpy()
    return (means.numpy() * (1 + np.exp(_gates(vae, out)))).sum(axis=1)


def test_the_mean_total_of_the_training_rows_is_tracked():
    """ℓ̄ (``library_mean``) after training steps on batches of 10, 7 and 23 rows is the mean of those 40 rows' totals
    (in float64 by NumPy), ``library_rows`` 40; an evaluation (no training step) leaves both as they are."""
    x = library_counts(40, seed=5)
    vae = GaussianVAE(12, (8,), 2, likelihood="negative_binomial", library="observed", rng=Generator(0))
    optimizer, rng = Adam(vae.parameters(), lr=1e-2), Generator(1)
    for rows in (slice(0, 10), slice(10, 17), slice(17, 40)):
        loss = vae.loss(mv.tensor(x[rows]), rng)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert vae.library_rows.item() == 40
    assert vae.library_mean.item() == pytest.approx(x.astype(np.float64).sum(axis=1).mean(), rel=1e-6)
    before = vae.library_mean.item()
    with mv.no_grad():
        objectives.elbo(vae, mv.tensor(library_counts(30, seed=6)), Generator(2))
    assert vae.library_mean.item() == before and vae.library_rows.item() == 40


def test_observed_library_takes_each_rows_total_across_the_samples_axis():
    """z of K = 2 draws a row, (2, 3, Z), against x (3, x_dim) (the IWAE bound's and log_likelihood_is's shapes): each
    draw's log p(x|z) is that of its own batch (ℓ the row's total, not a total over the K copies); the K-sample IWAE
    loss counts the batch's 3 rows once into ℓ̄."""
    vae = GaussianVAE(X_DIM, (12,), 3, likelihood="zero_inflated_negative_binomial", library="observed", gate="decoder",
                      objective="iwae", samples=2, rng=Generator(0)).double()
    x = mv.tensor(nb_counts(3, 0.5, seed=4).astype(np.float64))
    z = vae.prior().sample((2, 3), rng=Generator(1))
    with mv.no_grad():
        both = vae.likelihood(z).log_prob(x).numpy()
        for k in range(2):
            np.testing.assert_array_equal(both[k], vae.likelihood(z[k]).log_prob(x).numpy())
    assert np.isfinite(vae.loss(x, Generator(2)).item()) and vae.library_rows.item() == 3


@pytest.mark.parametrize("likelihood, gate", COUNT_OPTIONS)
def test_loss_gradcheck_with_observed_library(likelihood, gate):
    vae = GaussianVAE(4, (3,), 2, likelihood=likelihood, activation="tanh", library="observed", gate=gate,
                      rng=Generator(0))
    x = mv.tensor(np.array([[0, 3, 1, 7], [2, 0, 12, 1]], np.float64))
    names = [n for n, _ in vae.named_parameters()]
    assert ("gate_logits" in names) == (likelihood == "zero_inflated_negative_binomial" and gate == "feature")
    assert mv.gradcheck(lambda *ps: _rebind(vae, ps, x), [p.data.astype(np.float64) for p in vae.parameters()])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("likelihood, gate", COUNT_OPTIONS)
def test_observed_library_stays_finite_at_decoder_outputs_of_1e4(likelihood, gate, dtype):
    """Decoder outputs ±10⁴ (softmax proportions e^{−2·10⁴} = 0 beside 1, gate logits ±10⁴): every log p(x|z) and every
    gradient in the outputs and in log θ finite, counts > 0 where μ underflows included."""
    vae = MODELS["gaussian"](likelihood, library="observed", gate=gate).to(dtype)
    row = np.array([1e4, -1e4, 0.0, 1e4, -1e4, 3.0, -2.0])
    out = mv.tensor(np.stack([row, row[::-1]] if gate == "feature" else [np.tile(row, 2), np.tile(row[::-1], 2)])
                    .astype(dtype), requires_grad=True)
    x = np.array([[5, 3, 0, 0, 2, 1, 40], [0, 0, 0, 0, 0, 0, 0]], dtype)
    lp = _likelihood_of(vae, out).log_prob(x)
    assert np.isfinite(lp.numpy()).all()
    (lp * mv.tensor(np.linspace(0.5, 1.5, 14).reshape(2, 7).astype(dtype))).sum().backward()
    assert np.isfinite(out.grad).all()
    if likelihood != "poisson":
        assert np.isfinite(vae.log_theta.grad).all()


def test_observed_library_fits_counts_of_varying_library_sizes_better():
    """NB counts of three cell types whose library sizes vary about 50-fold: the model of μ = ℓ·softmax(out) reaches a
    higher validation ELBO after the same 150 steps than that of μ = e^out, which must spend its 2-d code on the sizes.
    Measured on the data seeds (1, 2), (6, 7), (10, 11): +2.9, +3.3, +3.4 nats. (The observed library's ELBO bounds
    log p(x | ℓ = Σx), scored as scVI scores it, not log p(x): see the README's counts paragraph.)"""
    x, valid = library_counts(200, seed=1), mv.tensor(library_counts(100, seed=2))
    elbo = {}
    for library in (None, "observed"):
        vae = _fit(x, 150, likelihood="negative_binomial", library=library)
        with mv.no_grad():
            elbo[library] = objectives.elbo(vae, valid, Generator(3)).numpy().mean()
    assert elbo["observed"] > elbo[None] + 1.5, elbo


def test_the_decoder_gate_learns_each_cells_dropout():
    """ZINB counts whose third cell type alone has dropouts (π = 0.7): the decoder's gate gives that type's cells a
    mean π well above the others' (measured on 3 data seeds: 0.49 against at most 0.10, 0.45 against 0.05, 0.36 against
    0.09) and a higher validation ELBO than one gate a feature (+1.6, +7.9, +1.0 nats) after the same 200 steps."""
    dropout = [0.0, 0.0, 0.7]
    x, valid = library_counts(200, seed=1, dropout=dropout), mv.tensor(library_counts(100, seed=2, dropout=dropout))
    elbo = {}
    for gate in ("feature", "decoder"):
        vae = _fit(x, 200, likelihood="zero_inflated_negative_binomial", gate=gate)
        with mv.no_grad():
            elbo[gate] = objectives.elbo(vae, valid, Generator(3)).numpy().mean()
            out = vae.decoder(code(vae, valid)).numpy()
    pi = 1 / (1 + np.exp(-out[:, 12:]))
    by_type = [pi[np.arange(100) % 3 == k].mean() for k in range(3)]
    assert by_type[2] > max(by_type[:2]) + 0.2, by_type
    assert elbo["decoder"] > elbo["feature"] + 0.5, elbo


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("likelihood, gate", COUNT_OPTIONS)
def test_observed_library_and_decoder_gate_train_and_round_trip(model, likelihood, gate, tmp_path):
    x = mv.tensor(nb_counts(40, 0.5, seed=6))
    vae, loaded = train_then_reload(MODELS[model](likelihood, library="observed", gate=gate), x, likelihood, tmp_path)
    assert loaded.config["library"] == "observed" and loaded.config.get("gate", "feature") == gate
    assert loaded.library_rows.item() == 25 * 40 and loaded.library_mean.item() == pytest.approx(x.numpy().sum(1).mean())


def test_count_options_default_to_the_earlier_models_and_are_checked():
    """The defaults (library None, gate "feature") are recorded nowhere, so configs are those of earlier checkpoints;
    a wrong combination is refused with the reason."""
    for likelihood in COUNT_LIKELIHOODS:
        vae = MODELS["categorical"](likelihood)
        assert "library" not in vae.config and "gate" not in vae.config and vae.library_kind is None
        assert [n for n, _ in vae.named_buffers()] == []
    cases = [
        (dict(likelihood="poisson", library="total"), "library must be one of"),
        (dict(likelihood="gaussian", library="observed"), "it needs a count likelihood"),
        (dict(likelihood="negative_binomial", gate="decoder"), "gate='decoder' is the dropout logit of"),
        (dict(likelihood="zero_inflated_negative_binomial", gate="cell"), "gate must be one of"),
    ]
    for kw, message in cases:
        with pytest.raises(ValueError, match=message):
            GaussianVAE(X_DIM, (4,), 2, rng=Generator(0), **kw)
    with pytest.raises(ValueError, match=r"arch='mlp' \(the convolutional decoder has one channel\)"):
        GaussianVAE(16, (4,), 2, likelihood="zero_inflated_negative_binomial", gate="decoder", arch="conv",
                    channels=(2,), rng=Generator(0))
    with pytest.raises(ValueError, match="a library size is for a model of library='observed'"):
        MODELS["gaussian"]("poisson").likelihood(mv.tensor(np.zeros((1, 3), np.float32)), library=5.0)
    with pytest.raises(ValueError, match="library must be > 0"):
        MODELS["gaussian"]("poisson", library="observed").likelihood(mv.tensor(np.zeros((1, 3), np.float32)), library=0.0)
    vae = MODELS["bernoulli"]("zero_inflated_negative_binomial", gate="decoder")
    np.testing.assert_array_equal(vae.decoder.parameters()[-1].data[X_DIM:], -2.0)  # π = σ(−2) at the start


# ---- data: .npy / .npz count matrices ----------------------------------------------------------------------------
def test_npy_and_npz_count_matrices_load_as_float32_rows(tmp_path):
    counts = np.arange(60, dtype=np.int64).reshape(10, 6) % 7
    np.save(tmp_path / "c.npy", counts)
    np.savez(tmp_path / "one.npz", anything=counts.astype(np.uint16))
    np.savez(tmp_path / "splits.npz", train=counts, test=counts[:3])
    for name in ("c.npy", "one.npz"):
        x = load_array(tmp_path / name)
        assert x.dtype == np.float32 and x.shape == (10, 6)
        np.testing.assert_array_equal(x, counts)
        s = load_splits(str(tmp_path / name))
        assert len(s["train"]) == 9 and len(s["valid"]) == 1
        np.testing.assert_array_equal(s["test"], counts[9:])
    s = load_splits(str(tmp_path / "splits.npz"))
    np.testing.assert_array_equal(s["test"], counts[:3])
    np.testing.assert_array_equal(np.concatenate([s["train"], s["valid"]]), counts)
    assert s.files["valid"] == f"{tmp_path / 'splits.npz'}[train] (held-out end)"
    check_splits(s, s.files, counts=True, batch_size=5)  # 6 features: no square, and no picture asked of them


@pytest.mark.parametrize("array, message", [
    (np.arange(5), r"not a matrix of rows \(samples × features\)"),
    (np.array([["a", "b"]]), "not of numbers"),
    (np.zeros((0, 3)), "no rows"),
    (np.array([[1.0, np.nan]]), "1 values are NaN or infinite"),
    (np.array([[2 ** 24 + 1, 0]]), "1 values beyond 2\\^24 = 16777216 \\(e.g. 16777217\\)"),
])
def test_bad_array_files_are_refused(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DataFormatError, match=message):
        load_array(tmp_path / "bad.npy")


def test_pickled_and_ambiguous_array_files_are_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([[1, None]], dtype=object), allow_pickle=True)
    with pytest.raises(DataFormatError, match="not a NumPy array file of numbers"):
        load_array(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", train=np.array([[1, None]], dtype=object))
    with pytest.raises(DataFormatError, match=r"obj.npz\[train\]: not an array of numbers"):
        load_array(tmp_path / "obj.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "obj.npz").read_bytes()[:40])  # a zip cut short
    with pytest.raises(DataFormatError, match="not a NumPy array file of numbers"):
        load_array(tmp_path / "cut.npz")
    np.savez(tmp_path / "two.npz", a=np.ones((2, 2)), b=np.ones((2, 2)))
    with pytest.raises(DataFormatError, match=r"2 arrays \['a', 'b'\]"):
        load_array(tmp_path / "two.npz")
    np.savez(tmp_path / "extra.npz", train=np.ones((2, 2)), labels=np.ones(2))
    with pytest.raises(DataFormatError, match=r"arrays \['labels'\] besides the splits"):
        load_array(tmp_path / "extra.npz")


def test_check_splits_refuses_what_is_no_count_and_points_counts_to_the_count_likelihoods():
    files = {"train": "t.npy"}
    for bad, example in ((np.array([[1.0, -1.0]], np.float32), "-1.0"), (np.array([[0.5, 2.0]], np.float32), "0.5")):
        with pytest.raises(DataFormatError, match=f"t.npy: 1 values are not counts 0, 1, 2, … \\(e.g. {example}\\)"):
            check_splits({"train": bad}, files, counts=True)
    counts = np.array([[0, 3, 1, 9]], np.float32)  # a square width: an image likelihood reads the range
    with pytest.raises(DataFormatError, match=r"values from 0 to 9, not grey levels in \[0, 1\]: count data takes "
                                              "--likelihood poisson, negative_binomial or zero_inflated"):
        check_splits({"train": counts}, files, binary=True)
    with pytest.raises(DataFormatError, match=r"3 pixels an image, not a square image \(count data takes"):
        check_splits({"train": counts[:, :3]}, files)
    with pytest.raises(DataFormatError, match=r"values from -1 to 1, not grey levels in \[0, 1\]: images are grey"):
        check_splits({"train": np.array([[-1.0, 1.0, 0.5, 0.0]], np.float32)}, files)


def test_train_skips_the_pictures_of_rows_that_are_no_square_images(tmp_path):
    """train() on rows of 6 grey levels (the Python API: check_splits is the CLI's) ends with its checkpoint and says why
    it drew no pictures, where write_pictures's image_grid raised ValueError after the last epoch; counts likewise."""
    rng, said = np.random.default_rng(0), []
    data = {"train": rng.random((20, 6)).astype(np.float32), "valid": rng.random((5, 6)).astype(np.float32)}
    from minivae.training import train
    train(GaussianVAE(6, (4,), 2, likelihood="gaussian", rng=Generator(0)), data, tmp_path / "grey", epochs=1,
          batch_size=10, lr=1e-2, seed=0, log=said.append)
    assert said[-1].endswith("metrics.csv (no pictures: 6 values a row are no square image)")
    counts = {"train": nb_counts(20, 0.5, seed=1)[:, :4], "valid": nb_counts(5, 0.5, seed=2)[:, :4]}
    train(GaussianVAE(4, (4,), 2, likelihood="poisson", rng=Generator(0)), counts, tmp_path / "counts", epochs=1,
          batch_size=10, lr=1e-2, seed=0, log=said.append)
    assert said[-1].endswith("metrics.csv (no pictures: the poisson likelihood models counts, not images)")
    assert sorted(p.name for p in (tmp_path / "counts").iterdir()) == ["checkpoint.npz", "metrics.csv"]


@pytest.mark.parametrize("likelihood, options", [(k, {}) for k in COUNT_LIKELIHOODS] + [
    ("negative_binomial", {"library": "observed"}),
    ("zero_inflated_negative_binomial", {"library": "observed", "gate": "decoder"})])
def test_a_step_plan_trains_the_count_likelihoods_as_the_eager_steps(likelihood, options, tmp_path):
    """Parameters, and library="observed"'s ℓ̄ (the buffers the plan updates in place), equal after 2 epochs."""
    from minivae.training import train
    data = {"train": nb_counts(40, 0.5, seed=13), "valid": nb_counts(10, 0.5, seed=14)}
    runs = []
    for graph in (False, True):
        vae = MODELS["gaussian"](likelihood, **options)
        train(vae, data, tmp_path / f"{likelihood}-{graph}", epochs=2, batch_size=10, lr=1e-2, seed=3, graph=graph,
              log=lambda *a: None)
        runs.append(vae)
    if options:
        assert runs[1].library_rows.item() == 80 and runs[1].library_mean.item() > 0
    for (name, p), (_, q) in zip([*runs[0].named_parameters(), *runs[0].named_buffers()],
                                 [*runs[1].named_parameters(), *runs[1].named_buffers()], strict=True):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


@pytest.mark.parametrize("likelihood", COUNT_LIKELIHOODS)
def test_the_exact_marginal_of_counts_sums_to_one_and_bounds_the_elbo(likelihood):
    """A categorical model of one latent of 3 categories over 2 count features: p(x) = Σ_z p(z)·p(x|z) by enumeration
    (objectives.exact_log_likelihood) sums to 1 over the grid of counts 0 … 199 squared (every log Γ term there, the
    rest of the mass below 10⁻¹²), and the ELBO of each x is below its log p(x)."""
    vae = CategoricalVAE(2, (3,), 1, 3, likelihood=likelihood, rng=Generator(0)).double()
    for p in vae.decoder.parameters():  # rates e^out between about 1 and 20
        p.data = p.data * 0.3
    vae.decoder.parameters()[-1].data = np.array([0.5, 2.5])
    if likelihood != "poisson":  # θ = e² (variance μ + μ²/7.4: a light tail past 200)
        vae.log_theta.data = np.full(2, 2.0)
    k = np.arange(200.0)
    grid = np.stack(np.meshgrid(k, k, indexing="ij"), -1).reshape(-1, 2)
    with mv.no_grad():
        log_px = objectives.exact_log_likelihood(vae, mv.tensor(grid)).numpy()
        some = grid[::997]
        elbo = objectives.elbo(vae, mv.tensor(some), Generator(1), k=64).numpy()
    assert np.exp(log_px).sum() == pytest.approx(1.0, abs=1e-10)
    assert np.all(elbo <= log_px[::997] + 1e-12)
