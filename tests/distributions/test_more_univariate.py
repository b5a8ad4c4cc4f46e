"""LogNormal, HalfNormal, Cauchy, Gumbel, Kumaraswamy, StudentT and Geometric: values by the textbook formulas (math.*),
densities that integrate to 1 with their moments and entropy (quadrature), draws by KS tests and moments, gradients by
gradcheck (rsample at fixed noise), extreme parameters, bad parameters, the device, and everything against
torch.distributions (float64 tight, float32)."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import (Cauchy, Geometric, Gumbel, HalfNormal, Kumaraswamy, LogNormal, Normal, StudentT,
                                   constraints)
from minivae.random import Generator
from tests.distributions.gof import assert_follows

GAMMA = 0.5772156649015329  # Euler's constant
CONTINUOUS = ["LogNormal", "HalfNormal", "Cauchy", "Gumbel", "Kumaraswamy", "StudentT"]
CLASSES = {"LogNormal": LogNormal, "HalfNormal": HalfNormal, "Cauchy": Cauchy, "Gumbel": Gumbel,
           "Kumaraswamy": Kumaraswamy, "StudentT": StudentT, "Geometric": Geometric}
R = np.random.default_rng(0)


def batches(name):
    """Three batches of parameters (arrays) for ``name``: two of shape (5,), one that broadcasts (2, 1) with (3,)."""
    rng = np.random.default_rng(len(name))
    pos = lambda *shape: 10 ** rng.uniform(-1, 0.7, shape)  # noqa: E731  (0.1 … 5)
    real = lambda *shape: rng.normal(0, 2, shape)  # noqa: E731
    if name == "HalfNormal":
        return [(pos(5),), (np.array([1e-3, 0.2, 1.0, 7.0, 300.0]),), (pos(2, 3),)]
    if name == "Kumaraswamy":
        return [(pos(5), pos(5)), (np.array([0.3, 1.0, 2.0, 5.0, 1.0]), np.array([0.5, 2.0, 1.0, 3.0, 1.0])),
                (pos(2, 1), pos(3))]
    if name == "StudentT":
        return [(np.array([0.5, 1.5, 2.5, 5.0, 30.0]), real(5), pos(5)), (pos(5) * 3, real(5), pos(5)),
                (pos(2, 1) * 3, real(3), pos(3))]
    return [(real(5), pos(5)), (np.array([-3.0, 0.0, 0.5, 2.0, 10.0]), np.array([0.01, 1.0, 0.3, 3.0, 0.5])),
            (real(2, 1), pos(3))]


def values(name, params, rng):
    """Points inside the support of shape (4,) + batch_shape."""
    shape = (4,) + np.broadcast_shapes(*[p.shape for p in params])
    if name == "LogNormal":
        m, s = params
        return np.exp(m + s * rng.uniform(-3, 3, shape))
    if name == "HalfNormal":
        return params[0] * rng.uniform(0.01, 3, shape)
    if name == "Kumaraswamy":
        return rng.uniform(0.02, 0.98, shape)
    if name == "StudentT":
        return params[1] + params[2] * rng.uniform(-6, 6, shape)
    m, s = params
    return m + s * rng.uniform(-4, 6, shape)


# ---- the textbook formulas, one value at a time (math.*) ----

def ref_log_prob(name, x, *p):
    if name == "LogNormal":
        m, s = p
        return -(math.log(x) - m) ** 2 / (2 * s * s) - math.log(s) - 0.5 * math.log(2 * math.pi) - math.log(x)
    if name == "HalfNormal":
        (s,) = p
        return 0.5 * math.log(2 / math.pi) - math.log(s) - x * x / (2 * s * s)
    if name == "Cauchy":
        m, s = p
        return -math.log(math.pi * s * (1 + ((x - m) / s) ** 2))
    if name == "Gumbel":
        m, s = p
        z = (x - m) / s
        return -z - math.exp(-z) - math.log(s)
    if name == "Kumaraswamy":
        a, b = p
        return math.log(a * b) + (a - 1) * math.log(x) + (b - 1) * math.log(1 - x ** a)
    nu, m, s = p
    z = (x - m) / s
    return (math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi) - math.log(s)
            - (nu + 1) / 2 * math.log(1 + z * z / nu))


def ref_cdf(name, x, *p):
    if name == "LogNormal":
        m, s = p
        return 0.5 * math.erfc(-(math.log(x) - m) / (s * math.sqrt(2)))
    if name == "HalfNormal":
        return math.erf(x / (p[0] * math.sqrt(2)))
    if name == "Cauchy":
        return 0.5 + math.atan((x - p[0]) / p[1]) / math.pi
    if name == "Gumbel":
        return math.exp(-math.exp(-(x - p[0]) / p[1]))
    a, b = p
    return 1 - (1 - x ** a) ** b


def ref_icdf(name, u, *p):
    if name == "Cauchy":
        return p[0] + p[1] * math.tan(math.pi * (u - 0.5))
    if name == "Gumbel":
        return p[0] - p[1] * math.log(-math.log(u))
    a, b = p
    return (1 - (1 - u) ** (1 / b)) ** (1 / a)


def ref_moments(name, *p):
    """(mean, variance, mode)."""
    if name == "LogNormal":
        m, s = p
        return math.exp(m + s * s / 2), (math.exp(s * s) - 1) * math.exp(2 * m + s * s), math.exp(m - s * s)
    if name == "HalfNormal":
        (s,) = p
        return s * math.sqrt(2 / math.pi), s * s * (1 - 2 / math.pi), 0.0
    if name == "Cauchy":
        return math.nan, math.inf, p[0]
    if name == "Gumbel":
        m, s = p
        return m + GAMMA * s, math.pi ** 2 / 6 * s * s, m
    if name == "Kumaraswamy":
        a, b = p
        m1, m2 = (b * math.gamma(1 + n / a) * math.gamma(b) / math.gamma(1 + n / a + b) for n in (1, 2))
        mode = ((a - 1) / (a * b - 1)) ** (1 / a) if a >= 1 and b >= 1 and (a, b) != (1, 1) else math.nan
        return m1, m2 - m1 * m1, mode
    nu, m, s = p
    return (m if nu > 1 else math.nan), (s * s * nu / (nu - 2) if nu > 2 else (math.inf if nu > 1 else math.nan)), m


def ref_entropy(name, *p):
    if name == "LogNormal":
        return p[0] + 0.5 + 0.5 * math.log(2 * math.pi) + math.log(p[1])
    if name == "HalfNormal":
        return 0.5 * math.log(math.pi * math.e / 2) + math.log(p[0])
    if name == "Cauchy":
        return math.log(4 * math.pi * p[1])
    if name == "Gumbel":
        return math.log(p[1]) + 1 + GAMMA
    return None  # (Kumaraswamy's and StudentT's: by quadrature below)


def make(name, params, dtype=np.float64, requires_grad=False):
    ts = [mv.tensor(np.asarray(p, dtype), requires_grad=requires_grad) for p in params]
    return CLASSES[name](*ts), ts


def elementwise(fn, name, x, params):
    shape = np.broadcast_shapes(x.shape, *[np.shape(p) for p in params])
    args = [np.broadcast_to(a, shape) for a in (x, *params)]
    return np.vectorize(lambda v, *p: fn(name, v, *p))(*args)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_values_are_the_textbook_formulas(name):
    rng = np.random.default_rng(1)
    for params in batches(name):
        d, _ = make(name, params)
        x = values(name, params, rng)
        np.testing.assert_allclose(d.log_prob(mv.tensor(x)).numpy(), elementwise(ref_log_prob, name, x, params),
                                   rtol=1e-12, atol=1e-13)
        moments = np.vectorize(lambda *p: ref_moments(name, *p))(*np.broadcast_arrays(*params))
        for what, want in zip(("mean", "variance", "mode"), moments):
            np.testing.assert_allclose(getattr(d, what).numpy(), want, rtol=1e-12, atol=1e-300, err_msg=what)
        if ref_entropy(name, *[p.flat[0] for p in params]) is not None:
            want = np.vectorize(lambda *p: ref_entropy(name, *p))(*np.broadcast_arrays(*params))
            np.testing.assert_allclose(d.entropy().numpy(), want, rtol=1e-13, atol=1e-14)
        if name != "StudentT":
            np.testing.assert_allclose(d.cdf(mv.tensor(x)).numpy(), elementwise(ref_cdf, name, x, params),
                                       rtol=1e-12, atol=1e-15)
            u = rng.uniform(0.01, 0.99, x.shape)
            back = d.cdf(d.icdf(mv.tensor(u))).numpy()
            np.testing.assert_allclose(back, u, rtol=1e-12, atol=1e-14)
            if name in ("Cauchy", "Gumbel", "Kumaraswamy"):
                np.testing.assert_allclose(d.icdf(mv.tensor(u)).numpy(), elementwise(ref_icdf, name, u, params),
                                           rtol=1e-11, atol=1e-14)


def grid(name, params):
    """(a, b, x(t), dx/dt): a substitution that puts the whole support on [a, b] of t, for ∫ … p(x) dx."""
    if name == "LogNormal":
        return params[0] - 12 * params[1], params[0] + 12 * params[1], np.exp, np.exp
    if name == "HalfNormal":
        return 0, 14 * params[0], lambda t: t, np.ones_like
    if name == "Gumbel":
        return -5, 45, lambda t: params[0] + params[1] * t, lambda t: np.full_like(t, params[1])
    if name == "Kumaraswamy":
        return 0, 1, lambda t: t, np.ones_like
    loc, scale = params[-2:]  # Cauchy and StudentT: x = loc + scale·sinh t, whose tails decay as e^{−|t|} at least
    return -50, 50, lambda t: loc + scale * np.sinh(t), lambda t: scale * np.cosh(t)


def midpoints(name, params, n=400_000):
    """(h, t, x, dx/dt, x at the cells' right edges) of the midpoint rule's n cells on ``grid``'s interval (no end
    point, where Kumaraswamy's density may be singular)."""
    a, b, x, jac = grid(name, params)
    h = (b - a) / n
    t = a + h * (np.arange(n) + 0.5)
    return h, t, x(t), jac(t), x(a + h * np.arange(1, n))


QUADRATURE = {"LogNormal": (0.2, 0.5), "HalfNormal": (1.5,), "Cauchy": (0.3, 2.0), "Gumbel": (0.5, 1.3),
              "Kumaraswamy": (2.0, 3.0), "StudentT": (5.0, 0.5, 2.0)}


@pytest.mark.parametrize("name", CONTINUOUS)
def test_the_density_integrates_to_one_with_its_moments_entropy_and_cdf(name):
    """Trapezoidal sums of p(x)·dx/dt over a grid of t that covers the support: ∫p = 1, −∫p log p = entropy, and where
    they exist ∫xp = mean and ∫(x − mean)²p = variance; the cdf is the running integral of the density."""
    params = QUADRATURE[name]
    d, _ = make(name, [np.array([p]) for p in params])
    h, t, x, jac, edges = midpoints(name, params)
    lp = d.log_prob(mv.tensor(x[:, None])).numpy()[:, 0]
    w = np.exp(lp) * jac * h
    assert abs(w.sum() - 1) < 1e-7
    assert abs((-lp * w).sum() - d.entropy().numpy()[0]) < 1e-6
    if name != "Cauchy":
        mean = d.mean.numpy()[0]
        assert abs((x * w).sum() - mean) < 1e-6 * max(1, abs(mean))
        var = d.variance.numpy()[0]
        assert abs(((x - mean) ** 2 * w).sum() - var) < 1e-6 * var
    if name != "StudentT":
        k = slice(1000, None, 5000)
        np.testing.assert_allclose(d.cdf(mv.tensor(edges[k, None])).numpy()[:, 0], np.cumsum(w)[:-1][k], atol=1e-7)


@pytest.mark.parametrize("name", CONTINUOUS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_draws_pass_a_ks_test_and_the_same_seed_gives_the_same_draws(name, dtype):
    """KS against the reference cdf (StudentT: against the running integral of its reference density)."""
    params = QUADRATURE[name]
    d, _ = make(name, [np.array([p]) for p in params], dtype)
    z = d.sample((20_000,), rng=Generator(3))
    assert z.dtype == dtype and np.isfinite(z.numpy()).all()
    np.testing.assert_array_equal(d.rsample((20_000,), rng=Generator(3)).numpy(), z.numpy())
    if name == "StudentT":
        h, t, x, jac, edges = midpoints(name, params, 40_000)
        dens = np.exp([ref_log_prob(name, v, *params) for v in x]) * jac * h
        cdf = lambda v: np.interp(v, edges, np.cumsum(dens)[:-1])  # noqa: E731
    else:
        cdf = np.vectorize(lambda v: ref_cdf(name, v, *params))
    assert_follows(z.numpy()[:, 0], cdf, f"{name} {dtype.__name__}")
    assert d.support.check(z).numpy().all()


def test_rsample_is_the_formula_of_the_generators_noise():
    """Each rsample, replayed from the same seed by the Generator's own draws: exp(μ + σε), σ|ε|, icdf(u) (Cauchy,
    Kumaraswamy: the formulas written out), μ + σg of Generator.gumbel, and StudentT's μ + σε√(ν/(2G)) with G the
    Gamma draws that Gamma(ν/2, 1) makes from the stream after ε."""
    from minivae.distributions import Gamma
    m, s = np.array([0.3, -1.0]), np.array([0.5, 2.0])
    eps = Generator(7).normal((100, 2), np.float64)
    u = Generator(7).uniform((100, 2), np.float64)
    np.testing.assert_allclose(LogNormal(m, s).rsample((100,), rng=Generator(7)).numpy(), np.exp(m + s * eps), rtol=1e-14)
    np.testing.assert_allclose(HalfNormal(s).rsample((100,), rng=Generator(7)).numpy(), s * np.abs(eps), rtol=1e-15)
    np.testing.assert_allclose(Cauchy(m, s).rsample((100,), rng=Generator(7)).numpy(),
                               m + s * np.tan(np.pi * (u - 0.5)), rtol=1e-12)
    np.testing.assert_allclose(Gumbel(m, s).rsample((100,), rng=Generator(7)).numpy(),
                               m + s * Generator(7).gumbel((100, 2), np.float64), rtol=1e-15)
    a, b = np.array([0.5, 3.0]), np.array([2.0, 0.7])
    np.testing.assert_allclose(Kumaraswamy(a, b).rsample((100,), rng=Generator(7)).numpy(),
                               (1 - (1 - u) ** (1 / b)) ** (1 / a), rtol=1e-12)
    nu = np.array([1.5, 8.0])
    rng = Generator(7)
    e = rng.normal((100, 2), np.float64)
    g = Gamma(nu / 2, 1.0).sample((100,), rng=rng).numpy()
    np.testing.assert_allclose(StudentT(nu, m, s).rsample((100,), rng=Generator(7)).numpy(),
                               m + s * e * np.sqrt(nu / (2 * g)), rtol=1e-14)


def test_geometric_values_draws_and_probs_or_logits():
    p = np.array([0.05, 0.3, 0.5, 0.9, 1.0])
    k = np.array([[0.0, 3.0, 1.0, 7.0, 0.0], [12.0, 0.0, 2.0, 1.0, 2.0]])
    with np.errstate(divide="ignore", invalid="ignore"):  # (p = 1: (1 − p)^k·p is 1 at k = 0, 0 above)
        want = np.where(k == 0, 0.0, k * np.log1p(-p)) + np.log(p)
    for d in (Geometric(mv.tensor(p)), Geometric(logits=mv.tensor(np.log(p[:4]) - np.log1p(-p[:4])))):
        n = d.batch_shape[0]
        np.testing.assert_allclose(d.log_prob(mv.tensor(k[:, :n])).numpy(), want[:, :n], rtol=1e-13)
        np.testing.assert_allclose(d.mean.numpy(), (1 - p[:n]) / p[:n], rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose(d.variance.numpy(), (1 - p[:n]) / p[:n] ** 2, rtol=1e-13, atol=1e-300)
        np.testing.assert_array_equal(d.mode.numpy(), np.zeros(n))
        np.testing.assert_allclose(d.probs.numpy(), p[:n], rtol=1e-14)
        ks = np.arange(3000.0)[:, None]  # the entropy and the moments as sums over k (p ≥ 0.05: 3000 terms suffice)
        pk = np.exp(d.log_prob(mv.tensor(np.broadcast_to(ks, (3000, n)).copy())).numpy())
        np.testing.assert_allclose(pk.sum(0), 1, rtol=1e-13)
        np.testing.assert_allclose((ks * pk).sum(0), d.mean.numpy(), rtol=1e-12, atol=1e-15)
        ent = -(np.where(pk > 0, pk * np.log(np.where(pk > 0, pk, 1)), 0)).sum(0)
        np.testing.assert_allclose(d.entropy().numpy()[:4], ent[:4], rtol=1e-12)
    assert abs(Geometric(1.0).entropy().item()) < 1e-13  # (torch's: through the clamped logits, ~ε)
    np.testing.assert_array_equal(Geometric(0.3).log_prob(np.array([-1.0, 1.5, np.inf, np.nan])).numpy(), -np.inf)
    d = Geometric(mv.tensor(np.array([0.2, 0.7, 1.0])))
    z = d.sample((40_000,), rng=Generator(0)).numpy()
    assert z.dtype == np.float32 or z.dtype == np.float64
    np.testing.assert_array_equal(z[:, 2], 0)
    u = Generator(0).uniform((40_000, 3), np.float64)
    np.testing.assert_array_equal(z[:, :2], np.floor(np.log(u[:, :2]) / np.log1p(-np.array([0.2, 0.7]))))
    for j, q in enumerate((0.2, 0.7)):  # the draws' frequencies, to 4.5 standard errors
        for kk in range(4):
            f, want_f = (z[:, j] == kk).mean(), (1 - q) ** kk * q
            assert abs(f - want_f) < 4.5 * math.sqrt(want_f * (1 - want_f) / 40_000)
    assert d.support.check(d.sample((10,), rng=Generator(1))).numpy().all()


@pytest.mark.parametrize("name", CONTINUOUS)
def test_gradcheck_float64(name):
    """Every quantity at once, rsample at a fixed noise (the noise as a constant argument)."""
    params = batches(name)[0]
    rng = np.random.default_rng(4)
    x, p = values(name, params, rng)[0], rng.uniform(0.05, 0.95, 5)
    noise = {"eps": rng.normal(size=5), "uniforms": rng.uniform(0.05, 0.95, 5), "gumbels": rng.gumbel(size=5)}
    key = {"LogNormal": "eps", "HalfNormal": "eps", "Gumbel": "gumbels"}.get(name, "uniforms")
    fixed = {key: mv.tensor(noise[key])}
    if name == "StudentT":  # (at fixed Gamma draws, rsample's value does not move with ν: its implicit gradient in ν is
        #                        checked against the quantile's differences in the next test)
        fixed = {"eps": mv.tensor(noise["eps"]), "draws": mv.tensor(rng.gamma(params[0] / 2))}
    quantities = ["log_prob", "entropy", "mean", "variance"] + ([] if name == "StudentT" else ["cdf", "icdf"])
    if name in ("Cauchy", "StudentT"):
        quantities.remove("mean")
        quantities.remove("variance")

    def f(*args):
        d, x_, p_ = CLASSES[name](*args[:-2]), args[-2], args[-1]
        sampled = (mv.tensor(params[0]),) + args[1:-2] if name == "StudentT" else args[:-2]
        out = CLASSES[name](*sampled).rsample(**fixed)
        for q in quantities:
            out = out + (getattr(d, q)(p_ if q == "icdf" else x_) if q in ("log_prob", "cdf", "icdf")
                         else (d.entropy() if q == "entropy" else getattr(d, q)))
        return out
    assert mv.gradcheck(f, [*params, x, p])


def test_student_t_rsample_gradient_in_df_is_the_quantile_s_derivative():
    """∂z/∂ν of z = loc + scale·ε·√(ν/(2G)) at a fixed Gamma(ν/2, 1) quantile u = P(ν/2, G): central differences of z
    with G re-solved from u at ν ± h (bisection on torch.special.gammainc, the regularized incomplete gamma)."""
    torch = pytest.importorskip("torch")
    nu, loc, scale = np.array([0.7, 3.0, 25.0]), np.array([0.5, -1.0, 2.0]), np.array([1.5, 0.3, 2.0])
    eps, draws = np.array([0.8, -1.3, 0.4]), np.array([0.2, 1.1, 14.0])
    df = mv.tensor(nu, requires_grad=True)
    z = StudentT(df, loc, scale).rsample(eps=mv.tensor(eps), draws=mv.tensor(draws))
    np.testing.assert_allclose(z.numpy(), loc + scale * eps * np.sqrt(nu / (2 * draws)), rtol=1e-14)
    z.sum().backward()
    P = lambda a, x: torch.special.gammainc(torch.tensor(a), torch.tensor(x)).numpy()  # noqa: E731
    u = P(nu / 2, draws)

    def quantile(a):
        lo, hi = draws / 2, draws * 2  # (ν moves by 10⁻⁶: the quantile stays within a factor 2)
        for _ in range(64):
            mid = (lo + hi) / 2
            below = P(a, mid) < u
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return (lo + hi) / 2
    h = 1e-6
    zs = [loc + scale * eps * np.sqrt(v / (2 * quantile(v / 2))) for v in (nu + h, nu - h)]
    np.testing.assert_allclose(df.grad, (zs[0] - zs[1]) / (2 * h), rtol=1e-6)


def test_geometric_gradcheck_float64():
    def f(p, logits):
        a, b = Geometric(p), Geometric(logits=logits)
        k = mv.tensor(np.array([0.0, 2.0, 5.0, 1.0]))
        return (a.log_prob(k) + a.entropy() + a.mean + a.variance + b.log_prob(k) + b.entropy() + b.mean + b.variance)
    assert mv.gradcheck(f, [np.array([0.1, 0.4, 0.7, 0.95]), np.array([-2.0, 0.3, 1.5, 4.0])])


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_no_nan_at_extreme_parameters(dtype):
    """Locations ±10⁴, scales 10⁻⁴ … 10⁴, concentrations and df 10⁻² … 10³, logits ±10⁴: draws finite and log_prob
    finite at them, the gradients of log_prob + entropy at the draws finite; values far out in the tails give a
    finite log_prob (Cauchy's and StudentT's where z² overflows) or −∞, never NaN."""
    n = 7
    loc = np.linspace(-1e4, 1e4, n).astype(dtype)
    scale = np.geomspace(1e-4, 1e4, n).astype(dtype)
    conc, conc0 = np.geomspace(1e-2, 1e3, n).astype(dtype), np.geomspace(1e3, 1e-2, n).astype(dtype)
    cases = {"LogNormal": (np.linspace(-30, 30, n).astype(dtype), np.geomspace(1e-4, 3, n).astype(dtype)),
             "HalfNormal": (scale,), "Cauchy": (loc, scale), "Gumbel": (loc, scale),
             "Kumaraswamy": (np.geomspace(0.1, 1e2, n).astype(dtype), np.geomspace(1e2, 0.1, n).astype(dtype)),
             "StudentT": (conc, loc, scale)}
    del conc0
    for name, params in cases.items():
        ts = [mv.tensor(p, requires_grad=True) for p in params]
        d = CLASSES[name](*ts)
        z = d.rsample((20,), rng=Generator(1))
        assert np.isfinite(z.numpy()).all(), name
        lp = d.log_prob(z.detach())
        inside = (z.numpy() > 0) & (z.numpy() < 1) if name == "Kumaraswamy" else np.ones(z.shape, bool)
        assert np.isfinite(lp.numpy()[inside]).all(), name
        (mv.ops.where(mv.tensor(inside), lp, 0.0).sum() + d.entropy().sum()).backward()
        for t in ts:
            assert np.isfinite(t.grad).all(), name
        far = np.array([-1e30, 1e30], dtype)[:, None] * np.ones(n, dtype)
        with np.errstate(over="ignore"):  # (Gumbel's e^y and HalfNormal's z² overflow there: a log density of −∞)
            lp_far = d.log_prob(mv.tensor(far)).numpy()
        assert not np.isnan(lp_far).any(), name
        if name in ("Cauchy", "StudentT"):
            assert np.isfinite(lp_far).all(), name
    for l in (np.array([-1e4, -30.0, 0.0, 30.0, 1e4], dtype),):
        logits = mv.tensor(l, requires_grad=True)
        d = Geometric(logits=logits)
        k = d.sample((10,), rng=Generator(0))
        assert not np.isnan(k.numpy()).any()
        lp = d.log_prob(mv.tensor(np.array([0, 3, 1, 2, 0], dtype)))
        assert np.isfinite(lp.numpy()).all() and np.isfinite(d.entropy().numpy()).all()
        (lp.sum() + d.entropy().sum()).backward()
        assert np.isfinite(logits.grad).all()


BAD = [("LogNormal", lambda v: LogNormal(0.0, v), "scale must be > 0"),
       ("LogNormal", lambda v: LogNormal(v * math.nan, 1.0), "loc must not be NaN"),
       ("HalfNormal", HalfNormal, "scale must be > 0"),
       ("Cauchy", lambda v: Cauchy(0.0, v), "scale must be > 0"),
       ("Gumbel", lambda v: Gumbel(1.0, v), "scale must be > 0"),
       ("Kumaraswamy", lambda v: Kumaraswamy(v, 1.0), "concentration1 must be > 0"),
       ("Kumaraswamy", lambda v: Kumaraswamy(1.0, v), "concentration0 must be > 0"),
       ("StudentT", StudentT, "df must be > 0"),
       ("StudentT", lambda v: StudentT(1.0, 0.0, v), "scale must be > 0")]


@pytest.mark.parametrize("who, make_bad, message", BAD)
@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf])
def test_bad_parameters_are_refused(who, make_bad, message, bad):
    if "NaN" in message:
        bad = 1.0
    with pytest.raises(ValueError, match=f"{who}: {message}"):
        make_bad(bad)


def test_geometric_parameters_are_checked():
    for bad in (0.0, -0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="Geometric: probs must be in"):
            Geometric(bad)
    with pytest.raises(ValueError, match="Geometric takes exactly one of probs= or logits="):
        Geometric(0.5, logits=0.0)
    Geometric(mv.tensor(np.array([0.0]), requires_grad=True))  # (a computed parameter is not read)


def test_shapes_expand_support_constraints_and_dtype():
    for name in CONTINUOUS:
        params = batches(name)[2]
        d, ts = make(name, params, requires_grad=True)
        assert d.batch_shape == (2, 3), name
        assert d.entropy().shape == (2, 3) and d.mean.shape == (2, 3) and d.variance.shape == (2, 3), name
        e = d.expand((4, 2, 3))
        assert e.batch_shape == (4, 2, 3) and e.rsample(rng=Generator(0)).shape == (4, 2, 3), name
        assert e.rsample((5,), rng=Generator(0)).shape == (5, 4, 2, 3), name
        assert CLASSES[name](*[float(p.flat[0]) for p in params]).sample(rng=Generator(0)).dtype == np.float32, name
        with pytest.raises(ValueError, match="do not broadcast"):
            CLASSES[name](*[np.ones(k + 2) for k in range(len(params))]) if len(params) > 1 else \
                (_ for _ in ()).throw(ValueError("do not broadcast"))
    assert LogNormal(0.0, 1.0).support is constraints.positive and HalfNormal(1.0).support is constraints.nonnegative
    assert Kumaraswamy(1.0, 1.0).support is constraints.unit_interval and Cauchy(0.0, 1.0).support is constraints.real
    assert Geometric(0.5).support is constraints.nonnegative_integer and not Geometric.has_rsample
    assert Geometric(mv.tensor(np.full((2, 3), 0.5))).expand((4, 2, 3)).sample(rng=Generator(0)).shape == (4, 2, 3)
    assert isinstance(LogNormal(0.0, 1.0).base_dist, Normal) and isinstance(HalfNormal(1.0).base_dist, Normal)
    assert StudentT(3.0).loc.item() == 0.0 and StudentT(3.0).scale.item() == 1.0
    m = mv.tensor(np.array([[0.5], [1.0]]), requires_grad=True)
    Gumbel(m, 1.0).expand((4, 2, 3)).log_prob(mv.tensor(np.zeros((4, 2, 3)))).sum().backward()
    np.testing.assert_allclose(m.grad, 12 * (1 - np.exp(m.numpy())))  # ∂/∂loc (y − e^y), y = loc − 0, 12 copies


def test_on_the_device_nothing_is_copied_to_the_host():
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record
    with use_numba(False), use_cuda_kernels(False), emulating():
        for name in CLASSES:
            first = np.array([0.4, 0.9] if name in ("Kumaraswamy", "StudentT", "Geometric", "HalfNormal")
                             else [0.0, 1.0], np.float32)
            t = mv.tensor(first, device="cuda", requires_grad=True)
            with record() as log:
                d = CLASSES[name](t, 2.0) if name not in ("HalfNormal", "Geometric") else CLASSES[name](t)
                v = mv.tensor(np.array([0.3, 0.9], np.float32), device="cuda")
                k = mv.tensor(np.array([0.0, 2.0], np.float32), device="cuda")
                out = (d.log_prob(k if name == "Geometric" else v).sum() + d.entropy().sum() + d.mean.sum()
                       + d.variance.sum())
                if name not in ("Geometric", "StudentT"):
                    out = out + d.cdf(v).sum() + d.icdf(v).sum()
                if name not in ("Geometric", "StudentT"):  # (StudentT's: Gamma's implicit gradient without the GPU
                    out = out + d.rsample((2,), rng=Generator(0)).sum()  # kernels checks convergence on the host)
                out.backward()
                d.support.check(d.sample(rng=Generator(1)))
            assert log == [], f"{name}: {describe(log)}"
            assert t.grad is not None, name


# ---- against torch ----

def torch_dist(torch, name, params):
    T = torch.distributions
    if name == "Geometric":
        return T.Geometric(*params)
    return getattr(T, name)(*params, validate_args=False)


TORCH_QUANTITIES = {"LogNormal": ("log_prob", "cdf", "icdf", "entropy", "mean", "mode", "variance", "stddev"),
                    "HalfNormal": ("log_prob", "cdf", "icdf", "entropy", "mean", "mode", "variance", "stddev"),
                    "Cauchy": ("log_prob", "cdf", "icdf", "entropy", "mean", "mode", "variance"),
                    "Gumbel": ("log_prob", "cdf", "icdf", "entropy", "mean", "mode", "variance", "stddev"),
                    "Kumaraswamy": ("log_prob", "cdf", "icdf", "entropy", "mean", "variance"),
                    "StudentT": ("log_prob", "entropy", "mean", "mode", "variance")}


@pytest.mark.parametrize("name", CONTINUOUS)
@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-12, 1e-14), (np.float32, 2e-5, 1e-6)])
def test_values_and_gradients_match_torch(name, dtype, rtol, atol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for params in batches(name):
        x = values(name, params, rng).astype(dtype)
        p = rng.uniform(0.05, 0.95, x.shape).astype(dtype)
        ours = [mv.tensor(a.astype(dtype), requires_grad=True) for a in (*params, x, p)]
        theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in (*params, x, p)]
        g = rng.normal(size=x.shape).astype(dtype)
        for q in TORCH_QUANTITIES[name]:
            for a in ours + theirs:
                a.grad = None
            # (fresh ones each time: torch's transformed distributions hold parts of a graph that a backward frees)
            d, t = CLASSES[name](*ours[:-2]), torch_dist(torch, name, theirs[:-2])
            arg = {"log_prob": -2, "cdf": -2, "icdf": -1}.get(q)
            o = getattr(d, q)(ours[arg]) if arg else (d.entropy() if q == "entropy" else getattr(d, q))
            r = getattr(t, q)(theirs[arg]) if arg else (t.entropy() if q == "entropy" else getattr(t, q))
            r = r.expand(o.shape)
            assert o.dtype == dtype and o.shape == tuple(r.shape), (name, q)
            np.testing.assert_allclose(o.numpy(), r.detach().numpy(), rtol=rtol, atol=atol, err_msg=f"{name} {q}")
            if not np.isfinite(r.detach().numpy()).all() or not r.requires_grad:
                continue
            (o * mv.tensor(g[:o.shape[0]] if o.ndim == g.ndim else g[0])).sum().backward()
            (r * torch.tensor(g[:o.shape[0]] if o.ndim == g.ndim else g[0])).sum().backward()
            # (StudentT's and Kumaraswamy's entropy: torch's polygamma(1, ·) is off by up to 10⁻⁹ relatively below 1, where
            # ours is within 10⁻¹⁵ of the series; both gradients are gradchecked above)
            grad_rtol = 1e-8 if q == "entropy" and name in ("StudentT", "Kumaraswamy") and dtype == np.float64 else rtol * 10
            for a, b in zip(ours, theirs):
                if b.grad is not None:
                    np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=grad_rtol, atol=atol * 10,
                                               err_msg=f"{name} {q} gradient")
        assert repr(d.support) == repr(t.support)
        assert {k: repr(c) for k, c in d.arg_constraints.items()} == {k: repr(c) for k, c in t.arg_constraints.items()}


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_geometric_matches_torch(dtype, rtol):
    torch = pytest.importorskip("torch")
    p = np.array([0.05, 0.3, 0.5, 0.9, 0.99], dtype)
    k = np.array([[0, 3, 1, 7, 0], [12, 0, 2, 1, 2]], dtype)
    g = np.random.default_rng(2).normal(size=5).astype(dtype)
    for kind, arg in (("probs", p), ("logits", np.log(p) - np.log1p(-p))):
        a, b = mv.tensor(arg, requires_grad=True), torch.tensor(arg, requires_grad=True)
        for q in ("log_prob", "entropy", "mean", "mode", "variance", "probs"):
            a.grad = b.grad = None
            d, t = Geometric(**{kind: a}), torch.distributions.Geometric(**{kind: b})  # (torch's caches its logits)
            o = d.log_prob(mv.tensor(k)).sum(0) if q == "log_prob" else (d.entropy() if q == "entropy" else getattr(d, q))
            r = t.log_prob(torch.tensor(k)).sum(0) if q == "log_prob" else (t.entropy() if q == "entropy" else getattr(t, q))
            np.testing.assert_allclose(o.numpy(), r.detach().numpy(), rtol=rtol, atol=1e-300, err_msg=f"{kind} {q}")
            if q != "mode":
                (o * mv.tensor(g)).sum().backward()
                (r * torch.tensor(g)).sum().backward()
                np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=rtol * 10, err_msg=f"{kind} {q} gradient")
        assert {n: repr(c) for n, c in d.arg_constraints.items()} == {n: repr(c) for n, c in t.arg_constraints.items()}
        ks = np.array([-1.0, 0.0, 0.5, 3.0, np.inf])  # (torch's repr is IntegerGreaterThan, minivae's …Eq: the checks)
        assert d.support.check(ks).tolist() == t.support.check(torch.tensor(ks)).tolist()


def test_torch_loses_the_tails_that_we_keep():
    """The 'different on purpose' of the docstrings, shown on torch itself: Cauchy's cdf far below loc and icdf near
    0 (float32), Kumaraswamy's mode."""
    torch = pytest.importorskip("torch")
    t = torch.distributions.Cauchy(torch.tensor(0.0, dtype=torch.float64), 1.0)
    assert t.cdf(torch.tensor(-1e17, dtype=torch.float64)).item() == 0.0
    assert Cauchy(mv.tensor(np.array(0.0)), 1.0).cdf(-1e17).item() == pytest.approx(1 / (math.pi * 1e17), rel=1e-15)
    u = np.float32(2.0 ** -24)
    want = -1 / math.tan(math.pi * float(u))
    assert abs(torch.distributions.Cauchy(0.0, 1.0).icdf(torch.tensor(u)).item() / want - 1) > 0.03
    assert Cauchy(0.0, 1.0).icdf(u).item() == pytest.approx(want, rel=1e-6)
    assert math.isnan(torch.distributions.Kumaraswamy(2.0, 3.0).mode.item())
    assert Kumaraswamy(2.0, 3.0).mode.item() == pytest.approx(math.sqrt(1 / 5), rel=1e-6)
