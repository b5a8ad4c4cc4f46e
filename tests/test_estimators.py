"""Estimators unbiased where theory says so, biased where it says so, and the lab's claims."""
import numpy as np
import pytest

import minivae as mv
from minivae import estimators as E
from minivae import lab
from minivae import objectives as O
from minivae.distributions import Normal, OneHotCategorical
from minivae.models import CategoricalVAE
from minivae.random import Generator

DRAWS = 4000


def within(summary, k=4.0):
    """The mean estimate lies within k Monte Carlo standard errors of the exact gradient."""
    return summary["bias"] <= k * summary["bias_se"] + 1e-12


@pytest.mark.parametrize("t", [0.45, 0.499])
def test_bernoulli_toy_reinforce_unbiased_exact_exact(t):
    exact, grads = lab.bernoulli_toy(t, DRAWS, Generator(0))
    assert exact == pytest.approx((1 - 2 * t) * 0.25)
    assert within(lab.summarize(exact, grads["reinforce"]))
    assert within(lab.summarize(exact, grads["reinforce+baseline"]))
    np.testing.assert_allclose(grads["exact"], exact, rtol=1e-12)
    # the baseline cuts the variance (by two orders of magnitude on this problem)
    assert lab.summarize(exact, grads["reinforce+baseline"])["variance"] < 0.1 * lab.summarize(exact, grads["reinforce"])["variance"]


@pytest.mark.parametrize("name", list(lab.GAUSSIAN_TOYS))
def test_gaussian_toys_pathwise_and_reinforce_unbiased(name):
    exact, grads = lab.gaussian_toy(name, DRAWS, Generator(1))
    for est in ("pathwise", "reinforce"):
        assert within(lab.summarize(exact, grads[est])), est


def test_gaussian_closed_forms_against_quadrature():
    mu, sigma = 0.5, 0.8
    x = np.linspace(mu - 12 * sigma, mu + 12 * sigma, 200_001)
    pdf = np.exp(-(x - mu) ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
    for name, (f, closed) in lab.GAUSSIAN_TOYS.items():
        quad = np.trapezoid(f(mv.tensor(x)).data * pdf, x)
        assert closed(mv.tensor(np.float64(mu)), mv.tensor(np.float64(sigma))).item() == pytest.approx(quad, rel=1e-8), name


def test_categorical_toy_bias_shrinks_and_variance_grows_as_temperature_falls():
    exact, grads = lab.categorical_toy(DRAWS, Generator(2), temperatures=(0.3, 1.0, 3.0))
    s = {tau: lab.summarize(exact, grads[f"gumbel_softmax τ={tau:g}"]) for tau in (0.3, 1.0, 3.0)}
    assert within(lab.summarize(exact, grads["reinforce"]))
    assert s[3.0]["bias"] > s[1.0]["bias"] + 4 * s[1.0]["bias_se"] > s[0.3]["bias"]
    assert s[0.3]["variance"] > s[1.0]["variance"] > s[3.0]["variance"]
    assert not within(s[1.0])  # biased at τ = 1, beyond Monte Carlo error


def test_tiny_vae_reinforce_unbiased_relaxations_biased():
    exact, grads = lab.tiny_vae_gradients(1500, Generator(3))
    assert within(lab.summarize(exact, grads["reinforce"]))
    assert not within(lab.summarize(exact, grads["gumbel_softmax τ=1"]))


def test_exact_estimator_matches_enumeration_by_hand():
    logits = mv.tensor(np.array([0.3, -1.0, 2.0]), requires_grad=True)
    c = np.array([1.0, 5.0, -2.0])
    E.exact(lambda z: (z * c).sum(axis=-1), OneHotCategorical(logits=logits)).backward()
    p = np.exp(logits.data) / np.exp(logits.data).sum()
    np.testing.assert_allclose(logits.grad, p * (c - (p * c).sum()))  # ∂/∂θ_k Σ p c = p_k(c_k − E c)


def test_every_estimator_takes_the_same_call():
    """get(name)(f, q, sample_shape, rng=…) for every name (exact took no sample_shape or rng: a TypeError); exact's
    value, the same for every sample, has the sampling estimators' shape, and its gradient sums over the samples."""
    logits = mv.tensor(np.array([[0.3, -1.0, 2.0], [1.0, 0.0, 0.5]]), requires_grad=True)
    c = np.array([1.0, 5.0, -2.0])
    q = OneHotCategorical(logits=logits)
    f = lambda z: (z * c).sum(axis=-1).sum(axis=-1)  # noqa: E731  (one value per sample: Σ_n c·z_n)
    for name in sorted(E.ESTIMATORS):
        if name == "pathwise":  # refuses a distribution without rsample, whatever the call
            with pytest.raises(ValueError, match="pathwise needs a reparameterizable"):
                E.get(name)(f, q, (4,), rng=Generator(0))
            continue
        assert E.get(name)(f, q, (4,), rng=Generator(0)).shape == (4,), name
    p = np.exp(logits.data) / np.exp(logits.data).sum(axis=-1, keepdims=True)
    logits.grad = None
    out = E.exact(f, q, sample_shape=4, rng=Generator(0))
    np.testing.assert_allclose(out.numpy(), np.full(4, (p * c).sum()), rtol=1e-12)
    out.sum().backward()
    np.testing.assert_allclose(logits.grad, 4 * p * (c - (p * c).sum(axis=-1, keepdims=True)), rtol=1e-12)
    with pytest.raises(ValueError, match="negative dimensions"):
        E.exact(f, q, sample_shape=(-1,))


def test_exact_over_zero_variables_is_f_of_the_empty_configuration():
    """N = 0 variables: one configuration, q(z) = 1 (an empty product), so the value is f of it."""
    q = OneHotCategorical(logits=mv.tensor(np.zeros((2, 0, 3))))
    out = E.exact(lambda z: z.sum(axis=(-1, -2)) + 7.0, q)
    np.testing.assert_array_equal(out.numpy(), [7.0, 7.0])


def test_estimators_refuse_what_they_cannot_do():
    with pytest.raises(ValueError, match="pathwise needs a reparameterizable"):
        E.pathwise(lambda z: z, OneHotCategorical(logits=mv.tensor(np.zeros(3))), rng=Generator(0))
    with pytest.raises(ValueError, match="relaxes a categorical"):
        E.gumbel_softmax(lambda z: z, Normal(0.0, 1.0), rng=Generator(0))
    with pytest.raises(ValueError, match="configurations exceed"):
        E.exact(lambda z: z.sum(axis=(-1, -2)), OneHotCategorical(logits=mv.tensor(np.zeros((20, 10)))))
    with pytest.raises(ValueError, match="needs a OneHotCategorical"):
        E.exact(lambda z: z, Normal(0.0, 1.0))
    with pytest.raises(ValueError, match="unknown estimator"):
        E.get("relax")


def test_lab_report_runs(capsys):
    lab.main(draws=50, seed=0)
    out = capsys.readouterr().out
    for part in ("(a) Bernoulli toy, t = 0.45", "(b) Gaussian toy", "(c) categorical toy", "(d) bounds"):
        assert part in out


def test_lab_plot_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed: the lab prints tables only")
    lab.main(draws=30, seed=0, plot=str(tmp_path / "lab.png"))
    assert (tmp_path / "lab.png").read_bytes()[:4] == b"\x89PNG"


def test_lab_bounds_of_a_model_of_another_size():
    """tiny_vae_bounds(model) enumerates the model's own K^N configurations (3 variables × 2 categories: 8), not 2 × 3's 9."""
    model = CategoricalVAE(x_dim=8, hidden=(), n_latent=3, n_categories=2, activation="tanh", rng=Generator(4))
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    b = lab.tiny_vae_bounds(model)
    np.testing.assert_allclose(b["log_px"], O.exact_log_likelihood(model, mv.tensor(lab.TINY_DATA)).numpy(), rtol=1e-12)
    assert np.all(b["elbo"] < b["log_px"])
    np.testing.assert_allclose(b["gap"], b["kl_to_posterior"], rtol=1e-9)
    np.testing.assert_allclose(b["elbo"], b["elbo_analytic_kl"], rtol=1e-12)  # the same ELBO, by enumeration and in closed form


def test_lab_one_draw_has_unknown_variance_and_no_draw_is_refused(capsys):
    s = lab.summarize(np.array([1.0, 2.0]), np.array([[1.5, 2.5]]))
    assert s["bias"] == pytest.approx(np.sqrt(0.5))
    assert np.isnan(s["variance"]) and np.isnan(s["bias_se"])  # one draw says nothing of the spread (was 0)
    with pytest.raises(ValueError, match="lab.main: draws must be >= 1, got 0"):
        lab.main(draws=0)
    with pytest.raises(TypeError, match="draws must be an integer"):
        lab.main(draws=2.5)
