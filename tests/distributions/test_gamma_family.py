"""Gamma, Exponential, Beta and Dirichlet: values by the textbook formulas (math.lgamma), densities integrated to 1 with
their moments and entropies, draws by KS tests (tests/test_ops_gamma.py's incomplete gamma function as the Gamma cdf)
and moment bounds, reparameterized gradients against central differences of quantiles found by bisection, KL against
Monte Carlo; and everything against torch.distributions where torch is installed."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import Beta, Dirichlet, Exponential, Gamma, constraints, kl_divergence, mc_kl
from minivae.random import Generator
from tests.distributions.gof import assert_follows
from tests.test_ops_gamma import gammainc_reference, quantile_by_bisection

ALPHA, RATE = np.array([0.3, 1.0, 2.5, 40.0]), np.array([0.5, 2.0, 1.0, 3.0])
A1, A0 = np.array([0.3, 1.0, 2.5, 40.0, 0.7]), np.array([0.5, 2.0, 1.0, 3.0, 0.9])


def lg(v):
    return np.vectorize(math.lgamma, otypes=[np.float64])(v)


def test_gamma_and_exponential_values_are_the_textbook_formulas():
    x = np.array([[0.05], [0.7], [2.0], [13.0]])
    d = Gamma(ALPHA, RATE)
    want = ALPHA * np.log(RATE) + (ALPHA - 1) * np.log(x) - RATE * x - lg(ALPHA)
    np.testing.assert_allclose(d.log_prob(x).numpy(), want, rtol=1e-14)
    np.testing.assert_allclose(d.mean.numpy(), ALPHA / RATE, rtol=1e-15)
    np.testing.assert_allclose(d.variance.numpy(), ALPHA / RATE ** 2, rtol=1e-15)
    np.testing.assert_allclose(d.mode.numpy(), np.maximum((ALPHA - 1) / RATE, 0), rtol=1e-15)
    # x = 0: log β where α = 1 (x·log y as torch's xlogy), +∞ where α < 1, −∞ where α > 1; −∞ below 0
    np.testing.assert_array_equal(d.log_prob(np.array([0.0])).numpy(), [np.inf, np.log(2.0), -np.inf, -np.inf])
    np.testing.assert_array_equal(d.log_prob(np.array([-1.0])).numpy(), [-np.inf] * 4)
    e = Exponential(RATE)
    np.testing.assert_allclose(e.log_prob(x).numpy(), np.log(RATE) - RATE * x, rtol=1e-14)
    np.testing.assert_allclose(e.entropy().numpy(), 1 - np.log(RATE), rtol=1e-15)
    np.testing.assert_allclose(e.cdf(x).numpy(), -np.expm1(-RATE * x), rtol=1e-15)
    np.testing.assert_allclose(e.icdf(np.array([0.1, 0.5, 0.9, 1e-20])).numpy(),
                               -np.log1p(-np.array([0.1, 0.5, 0.9, 1e-20])) / RATE, rtol=1e-15)
    np.testing.assert_array_equal(e.icdf(np.array([0.0, 1.0, 1.5, -0.1])).numpy(), [0, np.inf, np.nan, np.nan])
    np.testing.assert_array_equal(e.mode.numpy(), 0 * RATE)


def test_beta_and_dirichlet_values_are_the_textbook_formulas():
    x = np.array([[0.05], [0.5], [0.97]])
    d = Beta(A1, A0)
    log_b = lg(A1) + lg(A0) - lg(A1 + A0)
    np.testing.assert_allclose(d.log_prob(x).numpy(), (A1 - 1) * np.log(x) + (A0 - 1) * np.log1p(-x) - log_b, rtol=1e-13,
                               atol=1e-15)
    s = A1 + A0
    np.testing.assert_allclose(d.mean.numpy(), A1 / s, rtol=1e-15)
    np.testing.assert_allclose(d.variance.numpy(), A1 * A0 / (s * s * (s + 1)), rtol=1e-15)
    np.testing.assert_array_equal(d.log_prob(np.array([-0.1, 1.1])[:, None]).numpy(), np.full((2, 5), -np.inf))
    # a Dirichlet of two categories is the Beta of its first: the same log_prob at (x, 1 − x), entropy, moments
    two = Dirichlet(np.stack([A1, A0], axis=-1))
    assert two.batch_shape == (5,) and two.event_shape == (2,)
    np.testing.assert_allclose(two.log_prob(np.concatenate([x, 1 - x], axis=-1)[:, None, :]).numpy(),
                               d.log_prob(x).numpy(), rtol=1e-13)
    np.testing.assert_allclose(two.entropy().numpy(), d.entropy().numpy(), rtol=1e-13)
    np.testing.assert_allclose(two.mean.numpy()[:, 0], d.mean.numpy(), rtol=1e-15)
    np.testing.assert_allclose(two.variance.numpy()[:, 0], d.variance.numpy(), rtol=1e-15)
    np.testing.assert_allclose(two.mode.numpy()[:, 0], d.mode.numpy(), rtol=1e-15)


def trapezoid_log_grid(log_density, lo, hi, n=200_001):
    """∫ over x = eᵗ, t in [lo, hi]: (x, weights) so that Σ w·f(x) ≈ ∫ f(x)·p(x) dx."""
    t = np.linspace(lo, hi, n)
    x = np.exp(t)
    w = np.exp(log_density(x)) * x * np.gradient(t)
    w[[0, -1]] /= 2
    return x, w


@pytest.mark.parametrize("alpha, rate", [(0.3, 0.5), (1.0, 2.0), (3.7, 1.3), (60.0, 4.0)])
def test_gamma_density_integrates_to_one_with_its_moments_and_entropy(alpha, rate):
    d = Gamma(np.array([alpha]), np.array([rate]))
    top = math.log((alpha + 60 * math.sqrt(alpha) + 60) / rate)
    x, w = trapezoid_log_grid(lambda v: d.log_prob(v[:, None]).numpy()[:, 0], -60 / alpha - 10, top)
    assert abs(w.sum() - 1) < 1e-8
    assert abs((x * w).sum() - alpha / rate) < 1e-7 * alpha / rate
    assert abs(((x - alpha / rate) ** 2 * w).sum() - alpha / rate ** 2) < 1e-6 * alpha / rate ** 2
    lp = d.log_prob(x[:, None]).numpy()[:, 0]
    assert abs(-(lp * w).sum() - d.entropy().item()) < 1e-6


@pytest.mark.parametrize("a, b", [(0.5, 0.7), (1.0, 3.0), (2.5, 1.0), (30.0, 8.0)])
def test_beta_density_integrates_to_one_with_its_moments_and_entropy(a, b):
    """Over x = σ(t): dx = x(1 − x)dt, the ends' singularities of a, b < 1 integrable there."""
    d = Beta(np.array([a]), np.array([b]))
    t = np.linspace(-80, 80, 400_001)
    x = 1 / (1 + np.exp(-t))
    x1m = 1 / (1 + np.exp(t))  # 1 − x without cancellation
    log_p = (a - 1) * np.log(x) + (b - 1) * np.log(x1m) - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    ours = d.log_prob(x[:, None]).numpy()[:, 0]
    inside = x < 0.99  # (1 − x of the rounded x is off by ulp(1)/(1 − x) relatively: 10⁻¹⁴ here)
    np.testing.assert_allclose(ours[inside], log_p[inside], rtol=1e-12, atol=1e-12)
    w = np.exp(log_p) * x * x1m * np.gradient(t)
    assert abs(w.sum() - 1) < 1e-8
    assert abs((x * w).sum() - d.mean.item()) < 1e-8
    assert abs(((x - a / (a + b)) ** 2 * w).sum() - d.variance.item()) < 1e-8
    assert abs(-(log_p * w).sum() - d.entropy().item()) < 1e-6


@pytest.mark.parametrize("alpha", [0.01, 0.3, 1.0, 4.5, 200.0])
def test_gamma_draws_follow_the_gamma_cdf(alpha):
    """KS at level 0.001 (tests/distributions/gof.py) against P(α, βx), 4000 draws each, float64 and float32 (from
    α = 0.3: draws clamped to float32's tiny, 1.2·10⁻³⁸, carry P(α, 1.2·10⁻³⁸) = 42% of Gamma(0.01)'s mass, as torch's)."""
    for dtype in (np.float64, np.float32) if alpha >= 0.3 else (np.float64,):
        d = Gamma(np.array(alpha, dtype), np.array(2.0, dtype))
        z = d.sample((4000,), rng=Generator(11))
        assert z.dtype == dtype and (z.numpy() > 0).all()
        assert_follows(z.numpy(), lambda v: gammainc_reference(np.full_like(v, alpha), 2.0 * v), f"Gamma({alpha})")


def test_exponential_draws_follow_their_cdf_and_beta_and_dirichlet_draws_have_their_moments():
    assert_follows(Exponential(np.array(1.7)).sample((4000,), rng=Generator(3)).numpy(), lambda v: -np.expm1(-1.7 * v))
    n = 20000
    x = Beta(A1, A0).sample((n,), rng=Generator(4)).numpy()
    mean, var = A1 / (A1 + A0), A1 * A0 / ((A1 + A0) ** 2 * (A1 + A0 + 1))
    # |mean error| < 5 standard errors (false failure ~10⁻⁶ each); the variance's standard error bounded by ≤ 1/(2√n)
    assert (np.abs(x.mean(0) - mean) < 5 * np.sqrt(var / n)).all()
    assert (np.abs(x.var(0) - var) < 5 * 0.5 / np.sqrt(n)).all()
    conc = np.array([[0.2, 1.0, 5.0], [3.0, 3.0, 0.05]])
    y = Dirichlet(conc).sample((n,), rng=Generator(5)).numpy()
    np.testing.assert_allclose(y.sum(-1), 1, rtol=1e-14)
    s = conc.sum(-1, keepdims=True)
    mean, var = conc / s, conc * (s - conc) / (s * s * (s + 1))
    assert (np.abs(y.mean(0) - mean) < 5 * np.sqrt(var / n)).all()


def implicit_fd(alpha, z, h_rel=1e-4):
    """dz/dα at fixed u = P(α, z): z(α ± h) by bisection (tests/test_ops_gamma.py), central differences of log z."""
    u = gammainc_reference(alpha, z)
    h = h_rel * alpha
    return z * (np.log(quantile_by_bisection(alpha + h, u)) - np.log(quantile_by_bisection(alpha - h, u))) / (2 * h)


def test_gamma_rsample_gradients_are_the_quantile_s_derivative_and_z_over_rate():
    """z = z₁/β, z₁ ~ Gamma(α, 1): ∂z/∂α = (dz₁/dα at fixed u)/β by central differences of bisected quantiles;
    ∂z/∂β = −z/β² exactly."""
    alpha = mv.tensor(np.array([0.02, 0.6, 3.0, 80.0]), requires_grad=True)
    rate = mv.tensor(np.array([0.5, 2.0, 1.0, 7.0]), requires_grad=True)
    z = Gamma(alpha, rate).rsample((3,), rng=Generator(8))
    g = np.random.default_rng(0).uniform(0.5, 1.5, z.shape)
    z.backward(mv.tensor(g))
    z1 = z.numpy() * rate.data
    numeric = implicit_fd(np.broadcast_to(alpha.data, z1.shape), z1) / rate.data
    np.testing.assert_allclose(alpha.grad, (g * numeric).sum(0), rtol=1e-6)
    np.testing.assert_allclose(rate.grad, (g * -z.numpy() / rate.data).sum(0), rtol=1e-14)


def test_beta_and_dirichlet_rsample_gradients_by_central_differences():
    """x = X/(X + Y) of fixed quantiles of X ~ Gamma(a, 1), Y ~ Gamma(b, 1): ∂x/∂a = (Y/(X + Y)²)·dX/da and
    ∂x/∂b = −(X/(X + Y)²)·dY/db, each dX/da from bisection; Dirichlet's through the same Gammas."""
    a = mv.tensor(np.array([0.4, 2.0, 9.0]), requires_grad=True)
    b = mv.tensor(np.array([1.5, 0.3, 20.0]), requires_grad=True)
    rng = Generator(9)
    x_draws, y_draws = Gamma(a.data, 1.0).sample(rng=rng).numpy(), Gamma(b.data, 1.0).sample(rng=rng).numpy()
    x = Beta(a, b).rsample(draws=(x_draws, y_draws))
    x.backward(mv.tensor(np.ones(3)))
    total = x_draws + y_draws
    np.testing.assert_allclose(a.grad, y_draws / total ** 2 * implicit_fd(a.data, x_draws), rtol=1e-6)
    np.testing.assert_allclose(b.grad, -x_draws / total ** 2 * implicit_fd(b.data, y_draws), rtol=1e-6)
    conc = mv.tensor(np.array([0.4, 2.0, 9.0]), requires_grad=True)
    draws = Gamma(conc.data, 1.0).sample(rng=Generator(10)).numpy()
    y = Dirichlet(conc).rsample(draws=draws)
    y[0].backward()  # y₀ = G₀/ΣG: ∂/∂G₀ = (S − G₀)/S², ∂/∂Gₖ = −G₀/S²
    s = draws.sum()
    chain = np.where(np.arange(3) == 0, (s - draws[0]) / s ** 2, -draws[0] / s ** 2)
    np.testing.assert_allclose(conc.grad, chain * implicit_fd(conc.data, draws), rtol=1e-6)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("family", ["Gamma", "Beta", "Dirichlet"])
def test_no_nan_or_inf_over_concentrations_from_a_thousandth_to_a_thousand(family, dtype):
    """rsample's values, the gradients of their sum with the entropy and KL(d ‖ d): finite for concentrations
    10⁻³ … 10³ and rates 10⁻² … 10²; log_prob finite at every draw inside the open support (Gamma's are all ≥ the
    dtype's tiny; a Beta or Dirichlet draw X/(X + Y) rounds to exactly 1 where Y < ε·X, 3% of the draws of Beta(10, 0.1)
    in float64, and there a concentration below 1 puts a pole of the density: +∞, as torch's)."""
    grid = 10.0 ** np.linspace(-3, 3, 13)
    c = mv.tensor(grid.astype(dtype), requires_grad=True)
    r = mv.tensor(np.geomspace(1e-2, 1e2, 13).astype(dtype), requires_grad=True)
    c0 = mv.tensor(grid[::-1].astype(dtype), requires_grad=True)
    d = {"Gamma": lambda: Gamma(c, r), "Beta": lambda: Beta(c, c0),
         "Dirichlet": lambda: Dirichlet(mv.ops.stack([c, c0], axis=-1))}[family]()
    z = d.rsample((50,), rng=Generator(1))
    assert z.dtype == dtype and np.isfinite(z.numpy()).all()
    (z.sum() + d.entropy().sum() + kl_divergence(d, d).sum()).backward()
    for p in (c, r, c0):
        assert p.grad is None or np.isfinite(p.grad).all()
    lp = d.log_prob(z.detach()).numpy()
    v = z.numpy()
    inside = (v > 0) & (v < 1) if family == "Beta" else (((v > 0) & (v < 1)).all(-1) if family == "Dirichlet" else v > 0)
    assert np.isfinite(lp[inside]).all() and inside.mean() > 0.3


@pytest.mark.parametrize("who, make", [("Gamma", lambda v: Gamma(v, 1.0)), ("Gamma", lambda v: Gamma(1.0, v)),
                                       ("Exponential", Exponential), ("Beta", lambda v: Beta(v, 2.0)),
                                       ("Dirichlet", lambda v: Dirichlet([1.0, v]))])
@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_parameters_must_be_positive_and_finite(who, make, bad):
    with pytest.raises(ValueError, match=f"{who}: .* must be > 0 and finite"):
        make(bad)


def test_shapes_expand_support_and_constraints():
    with pytest.raises(ValueError, match="do not broadcast together"):
        Gamma(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="needs a last axis of K >= 1"):
        Dirichlet(np.array(2.0))
    with pytest.raises(TypeError, match="must be a floating tensor"):
        Beta(mv.tensor(np.array([1, 2])), 1.0)
    alpha = mv.tensor(np.array([0.5, 2.0, 3.0]), requires_grad=True)
    g = Gamma(alpha, 2.0).expand((4, 3))
    assert g.batch_shape == (4, 3) and g.sample(rng=Generator(0)).shape == (4, 3)
    g.log_prob(np.ones((4, 3))).sum().backward()
    np.testing.assert_allclose(alpha.grad, 4 * (np.log(2.0) - np.vectorize(lambda v: float(mv.ops.digamma(
        mv.tensor(np.array(v))).item()))(alpha.data)), rtol=1e-14)  # ∂/∂α (α log β − lgamma α), four times
    d = Dirichlet(np.ones((1, 3))).expand((5, 2))
    assert d.batch_shape == (5, 2) and d.event_shape == (3,) and d.rsample(rng=Generator(0)).shape == (5, 2, 3)
    assert Gamma(1.0, 1.0).support is constraints.nonnegative and Exponential(1.0).support is constraints.nonnegative
    assert Beta(1.0, 1.0).support is constraints.unit_interval and Dirichlet([1.0, 2.0]).support is constraints.simplex
    assert Gamma.arg_constraints == {"concentration": constraints.positive, "rate": constraints.positive}
    assert constraints.simplex.check(Dirichlet([0.5, 2.0, 1.0]).sample((10,), rng=Generator(1))).numpy().all()
    assert Dirichlet.arg_constraints["concentration"].check(np.array([[1.0, 2.0], [1.0, -1.0]])).tolist() == [True, False]


def test_kl_pairs_match_monte_carlo():
    """mc_kl with 40000 draws of p within 5 standard errors of the closed forms (false failure ~10⁻⁶ each)."""
    pairs = [(Gamma(np.array([0.7, 3.0]), np.array([1.0, 2.0])), Gamma(np.array([1.5, 2.0]), np.array([0.5, 3.0]))),
             (Exponential(np.array([0.5, 3.0])), Exponential(np.array([1.0, 1.0]))),
             (Exponential(np.array([0.5, 3.0])), Gamma(np.array([2.0, 0.8]), np.array([1.0, 4.0]))),
             (Beta(np.array([0.7, 3.0]), np.array([2.0, 5.0])), Beta(np.array([1.5, 2.0]), np.array([1.0, 3.0]))),
             (Dirichlet(np.array([[0.7, 3.0, 2.0]])), Dirichlet(np.array([[1.5, 2.0, 1.0]])))]
    n = 40000
    for p, q in pairs:
        z = p.sample((n,), rng=Generator(6))
        terms = (p.log_prob(z) - q.log_prob(z)).numpy()
        closed = kl_divergence(p, q).numpy()
        assert (np.abs(terms.mean(0) - closed) < 5 * terms.std(0) / np.sqrt(n)).all(), (type(p).__name__, closed)
        np.testing.assert_allclose(mc_kl(p, q, n, rng=Generator(6)).numpy(), terms.mean(0), rtol=1e-12)
        np.testing.assert_allclose(kl_divergence(p, p).numpy(), 0, atol=1e-14)


# ---- against torch -----------------------------------------------------------------------------------------------
def test_values_gradients_and_kl_match_torch():
    torch = pytest.importorskip("torch")
    TD = torch.distributions
    rng = np.random.default_rng(3)
    a, b, c, d = (10 ** rng.uniform(-2, 2, 6) for _ in range(4))
    conc_p, conc_q = 10 ** rng.uniform(-2, 2, (2, 4)), 10 ** rng.uniform(-2, 2, (2, 4))
    cases = [("Gamma", lambda A, B: Gamma(A, B), lambda A, B: TD.Gamma(A, B), (a, b), 10 ** rng.uniform(-2, 1, (3, 6))),
             ("Exponential", lambda A: Exponential(A), lambda A: TD.Exponential(A), (a,), 10 ** rng.uniform(-2, 1, (3, 6))),
             ("Beta", lambda A, B: Beta(A, B), lambda A, B: TD.Beta(A, B), (a, b), rng.uniform(0.01, 0.99, (3, 6))),
             ("Dirichlet", lambda A: Dirichlet(A), lambda A: TD.Dirichlet(A), (conc_p,),
              rng.dirichlet(np.ones(4), (3, 2)))]
    for name, ours_of, theirs_of, params, x in cases:
        m = [mv.tensor(p, requires_grad=True) for p in params]
        t = [torch.tensor(p, requires_grad=True) for p in params]
        ours, theirs = ours_of(*m), theirs_of(*t)
        for prop in ("mean", "variance", "mode"):
            np.testing.assert_allclose(getattr(ours, prop).numpy(), getattr(theirs, prop).detach().numpy(), rtol=1e-13,
                                       err_msg=f"{name}.{prop}")
        out = ours.log_prob(x).sum() + ours.entropy().sum()
        want = theirs.log_prob(torch.tensor(x)).sum() + theirs.entropy().sum()
        np.testing.assert_allclose(out.item(), want.item(), rtol=1e-12, err_msg=name)
        out.backward()
        want.backward()
        for mp, tp in zip(m, t):  # (torch's trigamma, in entropy's gradient, is ~10⁻⁹ relative)
            np.testing.assert_allclose(mp.grad, tp.grad.numpy(), rtol=1e-8, err_msg=name)
    kls = [(Gamma(a, b), Gamma(c, d), TD.Gamma, (a, b), (c, d)), (Beta(a, b), Beta(c, d), TD.Beta, (a, b), (c, d)),
           (Exponential(a), Exponential(c), TD.Exponential, (a,), (c,)),
           (Dirichlet(conc_p), Dirichlet(conc_q), TD.Dirichlet, (conc_p,), (conc_q,))]
    for p, q, cls, pp, qp in kls:
        want = TD.kl_divergence(cls(*map(torch.tensor, pp)), cls(*map(torch.tensor, qp))).numpy()
        np.testing.assert_allclose(kl_divergence(p, q).numpy(), want, rtol=1e-12, atol=1e-12, err_msg=cls.__name__)
    want = TD.kl_divergence(TD.Exponential(torch.tensor(a)), TD.Gamma(torch.tensor(c), torch.tensor(d))).numpy()
    np.testing.assert_allclose(kl_divergence(Exponential(a), Gamma(c, d)).numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(Exponential(a).cdf(x := 10 ** rng.uniform(-2, 1, 6)).numpy(),
                               TD.Exponential(torch.tensor(a)).cdf(torch.tensor(x)).numpy(), rtol=1e-14)


def test_rsample_gradients_match_torch_s_on_the_same_draws():
    """torch's Gamma.rsample gradient is _standard_gamma_grad(α, z)/β, an approximation (~10⁻⁴): to 2·10⁻³."""
    torch = pytest.importorskip("torch")
    alpha = np.array([1e-3, 0.05, 0.7, 3.0, 50.0, 1e3])
    rate = np.array([0.5, 1.0, 2.0, 0.1, 10.0, 3.0])
    a = mv.tensor(alpha, requires_grad=True)
    z = Gamma(a, rate).rsample((200,), rng=Generator(2))
    z.backward(mv.tensor(np.ones(z.shape)))
    z1 = torch.tensor(z.numpy() * rate)
    want = (torch._standard_gamma_grad(torch.tensor(alpha).expand_as(z1), z1) / torch.tensor(rate)).sum(0).numpy()
    np.testing.assert_allclose(a.grad, want, rtol=2e-3)


def test_float32_parameters_keep_float32_and_match_torch():
    torch = pytest.importorskip("torch")
    a, b = ALPHA.astype(np.float32), RATE.astype(np.float32)
    x = np.array([0.2, 1.0, 3.0, 9.0], np.float32)
    lp = Gamma(a, b).log_prob(x)
    assert lp.dtype == np.float32 and Gamma(a, b).rsample(rng=Generator(0)).dtype == np.float32
    np.testing.assert_allclose(lp.numpy(), torch.distributions.Gamma(torch.tensor(a), torch.tensor(b)).log_prob(
        torch.tensor(x)).numpy(), rtol=2e-6)
