"""The KLs and entropies of the Gamma family at large concentrations (Gamma ‖ Gamma, Beta ‖ Beta, Dirichlet ‖ Dirichlet,
Exponential ‖ Gamma, Gamma ‖ Gumbel, Beta's and Dirichlet's entropies, Dirichlet's log_prob: their saddle-point forms,
minivae/ops/saddle.py), StudentT's far tail and its entropy and log_prob at large ν, and the Laplace KLs at equal
locations and where |μ_p − μ_q|/b_p overflows, against references in 80-digit decimal arithmetic
(tests/test_saddle_point.py's lgamma and ψ by Stirling's series).

The plain formulas subtract lgammas of the size α·log α: in float32, KL(Gamma(10⁴) ‖ Gamma(1.001·10⁴)) was 0.00648 for
0.00500, Beta(10⁶, 10⁶)'s entropy −6.0 for −6.53 and Beta(10¹⁰, 10¹⁰)'s 0, KL(Gamma(10⁶, 1) ‖ Gumbel(10⁶, 10⁶)) 5.82 for
6.49. Now each float32 value is within
4 ulps of its reference plus 4·ε₃₂·Σᵢ |θᵢ·∂f/∂θᵢ| (the change an ulp of each parameter θᵢ makes, by the reference's own
central differences: a mean the formula forms in float32, a/(a + b), rounds by as much), and its gradients are finite
and within 10⁻³ (relatively) or 8·ε₃₂ (absolutely: they are sums of logarithms of ratios near 1, each of an absolute
rounding of ε₃₂) of those differences; where every concentration is at most SADDLE_FROM the plain formulas
are kept, within 10⁻¹³ in float64."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae.distributions import Beta, Dirichlet, Exponential, Gamma, Gumbel, Laplace, Normal, StudentT, kl_divergence
from tests.test_saddle_point import EPS32, EULER, PI, D, dec, digamma_d, lgamma_d, precise, ulp32

STEP = D("1e-25")  # the relative step of the central differences (their error ~10⁻⁵⁰ at 80 digits)


@precise
def kl_gamma_d(a_p, b_p, a_q, b_q):
    return (a_q * (b_p / b_q).ln() + lgamma_d(a_q) - lgamma_d(a_p) + (a_p - a_q) * digamma_d(a_p)
            + (b_q - b_p) * a_p / b_p)


@precise
def kl_dirichlet_d(*alphas):
    """KL(Dir(α_p) ‖ Dir(α_q)), the first half of ``alphas`` p's (the Beta's of (a, b))."""
    k = len(alphas) // 2
    a_p, a_q = alphas[:k], alphas[k:]
    s_p, s_q = sum(a_p), sum(a_q)
    return (lgamma_d(s_p) - lgamma_d(s_q) - sum(lgamma_d(x) - lgamma_d(y) for x, y in zip(a_p, a_q))
            + sum((x - y) * (digamma_d(x) - digamma_d(s_p)) for x, y in zip(a_p, a_q)))


@precise
def entropy_dirichlet_d(*alpha):
    s, k = sum(alpha), len(alpha)
    return (sum(lgamma_d(a) for a in alpha) - lgamma_d(s) + (s - k) * digamma_d(s)
            - sum((a - 1) * digamma_d(a) for a in alpha))


def log_prob_dirichlet_d(x):
    @precise
    def f(*alpha):
        return sum((a - 1) * dec(v).ln() for a, v in zip(alpha, x)) + lgamma_d(sum(alpha)) - sum(lgamma_d(a) for a in alpha)
    return f


@precise
def reference(fn, params):
    """(f, [∂f/∂θᵢ]) at the float32 parameters' exact values, the derivatives by central differences."""
    args = [dec(v) for v in params]
    grads = []
    for i, a in enumerate(args):
        h = (abs(a) or 1) * STEP
        up, down = list(args), list(args)
        up[i], down[i] = a + h, a - h
        grads.append((fn(*up) - fn(*down)) / (2 * h))
    return float(fn(*args)), [float(g) for g in grads]


def check(got, grads, params, fn):
    """The float32 value and gradients against the reference (module docstring)."""
    want, want_grads = reference(fn, params)
    condition = sum(abs(float(p) * g) for p, g in zip(params, want_grads))
    assert abs(float(got) - want) <= 4 * ulp32(want) + 4 * EPS32 * condition, (params, float(got), want, condition)
    for g, w in zip(grads, want_grads):
        assert np.isfinite(g) and abs(float(g) - w) <= 1e-3 * abs(w) + 8 * EPS32, (params, g, w)


def leaves(*values, dtype=np.float32):
    return [mv.tensor(np.asarray(v, dtype), requires_grad=True) for v in values]


GAMMA = [(1e4, 1.0, 1.001e4, 1.0), (1e6, 2.0, 1.0001e6, 2.0), (1e8, 1.0, 1.5e8, 1.0), (1e10, 3.0, 1.00001e10, 3.0),
         (1e6, 2.0, 1.01e6, 2.02), (1e4, 1.0, 3.0, 1.0), (1.5, 1.0, 1e4, 0.5)]


BETA = [(1e4, 1e4, 1.001e4, 0.999e4), (1e6, 1e6, 2e6, 2e6), (1e6, 3e6, 1.0005e6, 3e6), (1e8, 1e8, 1.0001e8, 1e8),
        (1e10, 1e10, 1.00001e10, 1e10), (2.5, 1e8, 3.0, 1.2e8), (1e6, 1e6, 1.5, 0.7), (0.5, 1.5, 1e5, 1e5)]


@pytest.mark.parametrize("family, params, reference", [(Gamma, p, kl_gamma_d) for p in GAMMA]
                         + [(Beta, p, kl_dirichlet_d) for p in BETA])
def test_gamma_and_beta_kls_at_large_concentrations(family, params, reference):
    params = [np.float32(v) for v in params]
    t = leaves(*params)
    kl = kl_divergence(family(t[0], t[1]), family(t[2], t[3]))
    kl.backward()
    check(kl.numpy(), [v.grad for v in t], params, reference)


@pytest.mark.parametrize("params", [(1e6, 2e6, 3e6, 1.001e6, 2e6, 2.999e6), (1e10, 1e10, 1e10, 1.00001e10, 1e10, 1e10),
                                    (1e4, 5.0, 0.5, 1.2e4, 6.0, 0.4)])
def test_dirichlet_kl_at_large_concentrations(params):
    params = [np.float32(v) for v in params]
    p, q = leaves(params[:3], params[3:])
    kl = kl_divergence(Dirichlet(p), Dirichlet(q))
    kl.backward()
    check(kl.numpy(), list(p.grad) + list(q.grad), params, kl_dirichlet_d)


@pytest.mark.parametrize("params", [(1e4, 1e4), (1e6, 1e6), (1e8, 3e8), (1e10, 1e10), (2.5, 1e8), (1e6, 0.3)])
def test_beta_entropy_at_large_concentrations(params):
    params = [np.float32(v) for v in params]
    t = leaves(*params)
    h = Beta(*t).entropy()
    h.backward()
    check(h.numpy(), [v.grad for v in t], params, entropy_dirichlet_d)


@pytest.mark.parametrize("params", [(1e6, 2e6, 3e6), (1e10, 1e10, 1e10), (1e4, 5.0, 0.5)])
def test_dirichlet_entropy_at_large_concentrations(params):
    params = [np.float32(v) for v in params]
    (a,) = leaves(params)
    h = Dirichlet(a).entropy()
    h.backward()
    check(h.numpy(), list(a.grad), params, entropy_dirichlet_d)


@pytest.mark.parametrize("params", [(1e6, 1e6, 2e6), (2.5e9, 2.5e9, 5e9), (1e4, 1e4, 2e4)])
def test_dirichlet_log_prob_at_large_concentrations(params):
    """At x = (¼, ¼, ½), exact in float32 and on the simplex (the log-density at α₀ = 10¹⁰ moves by α·ulp(x) ~ 10³ for
    an ulp of x)."""
    params = [np.float32(v) for v in params]
    x = np.array([0.25, 0.25, 0.5], np.float32)
    (a,) = leaves(params)
    lp = Dirichlet(a).log_prob(mv.tensor(x))
    lp.backward()
    check(lp.numpy(), list(a.grad), params, log_prob_dirichlet_d(x))


def test_small_concentrations_keep_the_plain_formulas():
    """Where every concentration is at most SADDLE_FROM (2) the values are the plain formulas', within 10⁻¹³ of the
    references in float64."""
    for params in [(0.5, 1.5, 2.0, 0.7), (1.0, 1.0, 0.3, 2.0)]:
        t = [mv.tensor(np.float64(v)) for v in params]
        d = [dec(v) for v in params]
        assert float(kl_divergence(Gamma(t[0], t[1]), Gamma(t[2], t[3])).numpy()) == pytest.approx(
            float(kl_gamma_d(*d)), abs=1e-13)
        assert float(kl_divergence(Beta(t[0], t[1]), Beta(t[2], t[3])).numpy()) == pytest.approx(
            float(kl_dirichlet_d(*d)), abs=1e-13)
        assert float(Beta(t[0], t[1]).entropy().numpy()) == pytest.approx(float(entropy_dirichlet_d(*d[:2])), abs=1e-13)
        alpha, other = mv.tensor(np.array(params[:3])), mv.tensor(np.array(params[1:]))
        assert float(Dirichlet(alpha).entropy().numpy()) == pytest.approx(float(entropy_dirichlet_d(*d[:3])), abs=1e-13)
        assert float(kl_divergence(Dirichlet(alpha), Dirichlet(other)).numpy()) == pytest.approx(
            float(kl_dirichlet_d(*d[:3], *d[1:])), abs=1e-13)


# ---- StudentT's far tail ---------------------------------------------------------------------------------------------
@precise
def student_t_log_prob_d(df, loc, scale, x):
    w2 = ((x - loc) / scale) ** 2 / df
    return (-(df + 1) / 2 * (1 + w2).ln() - scale.ln() - df.ln() / 2 - (D(math.pi)).ln() / 2 - lgamma_d(df / 2)
            + lgamma_d((df + 1) / 2))


@pytest.mark.parametrize("scale", [1.0, 1e-10, 1e-30])
def test_student_t_far_tail_is_finite_with_finite_gradients(scale):
    """At x − loc = 10³⁰, ν = 3: (x − loc)/scale overflows float32 from scale 0.003 down (−∞ and NaN gradients
    before); the value within 4 ulps and the gradients (∂/∂x = −(ν + 1)/(x − loc), ∂/∂scale = ν/scale, ∂/∂ν by the
    reference's differences) within 10⁻⁵."""
    params = [np.float32(v) for v in (3.0, 0.0, scale, 1e30)]
    t = leaves(*params)
    lp = StudentT(t[0], t[1], t[2]).log_prob(t[3])
    lp.backward()
    want, want_grads = reference(student_t_log_prob_d, params)
    assert abs(float(lp.numpy()) - want) <= 4 * ulp32(want)
    for v, w in zip(t, want_grads):
        assert np.isfinite(v.grad) and float(v.grad) == pytest.approx(w, rel=1e-5)


# ---- Laplace KLs at equal locations ----------------------------------------------------------------------------------
@pytest.mark.parametrize("p_type", [Laplace, Normal])
def test_laplace_kls_at_equal_locations_have_the_gradients_that_fit(p_type):
    """b_p = 10³⁰, b_q = 10⁻⁹ in float32: the KL is past the range (r = b_p/b_q = 10³⁹; +∞), but its gradients in b_p
    (1/b_q − 1/b_p for a Laplace p, √(2/π)/b_q − 1/σ for a Normal's σ) and in the locations (0: the KL is smallest
    there) are numbers (NaN before); float64 gives the same."""
    for dtype in (np.float32, np.float64):
        loc_p, scale_p, loc_q, scale_q = leaves(0.5, 1e30, 0.5, 1e-9, dtype=dtype)
        with np.errstate(over="ignore"):
            kl = kl_divergence(p_type(loc_p, scale_p), Laplace(loc_q, scale_q))
            kl.backward()
        factor = 1.0 if p_type is Laplace else math.sqrt(2 / math.pi)
        assert float(kl.numpy()) == (math.inf if dtype == np.float32 else pytest.approx(factor * 1e39, rel=1e-12))
        assert float(scale_p.grad) == pytest.approx(factor * 1e9 - 1e-30, rel=1e-6)
        assert loc_p.grad == 0 and loc_q.grad == 0
        assert float(scale_q.grad) == (-math.inf if dtype == np.float32 else pytest.approx(-factor * 1e48, rel=1e-6))



def test_gradcheck_float64_of_the_saddle_point_branches():
    """The large-concentration branches (concentrations from 3 to 10³, where they are taken) and StudentT's far tail
    (x − loc = 10³⁰⁰ over a scale of 10⁻³⁰⁰: the quotient overflows float64), against central differences in float64."""
    rng = np.random.default_rng(5)
    a, b = rng.uniform(3, 1e3, 4), rng.uniform(3, 1e3, 4)
    c, d = rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)

    def f(a, b, c, d):
        alpha, other = ops.stack([a, b, c], axis=-1), ops.stack([b, a, d], axis=-1)
        x = ops.stack([c, d, c + d], axis=-1) / ops.unsqueeze(2 * (c + d), -1)
        return (kl_divergence(Gamma(a, c), Gamma(b, d)) + kl_divergence(Beta(a, b), Beta(b, a + c))
                + Beta(a, c).entropy() + kl_divergence(Dirichlet(alpha), Dirichlet(other))
                + Dirichlet(alpha).entropy() + Dirichlet(alpha).log_prob(x))
    assert mv.gradcheck(f, [a, b, c, d])
    far = mv.tensor(np.full(4, 1e300))
    assert mv.gradcheck(lambda df, u: StudentT(df, 0.0, ops.exp(u) * 1e-300).log_prob(far),
                        [rng.uniform(1, 5, 4), rng.uniform(-1, 1, 4)])


# ---- Exponential ‖ Gamma, Gamma ‖ Gumbel, StudentT's entropy (the lgammas of α·log α cancel) --------------------------
@precise
def kl_exponential_gamma_d(lam, a, b):
    r = b / lam
    return -a * r.ln() + r + lgamma_d(a) + a * EULER - (1 + EULER)


@precise
def kl_gamma_gumbel_d(a, b, mu, s):
    t = b * s
    return ((a - 1) * digamma_d(a) - lgamma_d(a) - a + t.ln() + a / t + (mu / s - a * (1 + 1 / t).ln()).exp() - mu / s)


@precise
def student_t_entropy_d(df, scale):
    h = df / 2
    return (scale.ln() + (h + D("0.5")) * (digamma_d(h + D("0.5")) - digamma_d(h)) + df.ln() / 2 + PI.ln() / 2
            + lgamma_d(h) - lgamma_d(h + D("0.5")))


# (λ_p, α, β_q): at β_q = α·e^γ·λ_p the gradient in α, −log r + ψ(α) + γ, is 0 (1.4·10⁻⁶ for −3.8·10⁻⁸ at 10¹⁰ before)
@pytest.mark.parametrize("params", [(1.0, 1e4, 1.781e4), (1.0, 1e6, 1e6), (2.0, 1e6, 3e6), (1.0, 1e8, 1e8),
                                    (1.0, 1e10, 1e10), (1.0, 1e10, 1.7810725e10), (1e-3, 1e6, 2e3), (0.5, 1e6, 1.0)])
def test_exponential_gamma_kl_at_large_concentrations(params):
    params = [np.float32(v) for v in params]
    t = leaves(*params)
    kl = kl_divergence(Exponential(t[0]), Gamma(t[1], t[2]))
    kl.backward()
    check(kl.numpy(), [v.grad for v in t], params, kl_exponential_gamma_d)


# (α, β, μ, σ): the KL is of order log α where βσ ≈ α and μ/σ ≈ α·log(1 + 1/(βσ)) (−9192 for 11.1 at 10¹⁰ before)
@pytest.mark.parametrize("params", [(1e4, 1.0, 1e4, 1e4), (1e6, 1.0, 1e6, 1e6), (1e8, 1.0, 1e8, 1e8), (1e10, 1.0, 1e10, 1e10),
                                    (1e6, 2.0, 0.0, 1.0), (1e10, 2.0, 0.0, 1.0), (1e6, 0.5, 3.0, 2e6)])
def test_gamma_gumbel_kl_at_large_concentrations(params):
    params = [np.float32(v) for v in params]
    t = leaves(*params)
    kl = kl_divergence(Gamma(t[0], t[1]), Gumbel(t[2], t[3]))
    kl.backward()
    check(kl.numpy(), [v.grad for v in t], params, kl_gamma_gumbel_d)


@pytest.mark.parametrize("params", [(30.0, 1.0), (1e4, 1.0), (1e6, 2.0), (1e10, 1.0), (1e10, 1e-3), (1e30, 1.0)])
def test_student_t_entropy_at_large_df(params):
    """½ log ν (11.5 at ν = 10¹⁰) less log B(ν/2, ½)'s ½ log(ν/2): 7 ulps off before (1.4189377 for 1.4189385). At
    scale 1, whose log is exactly 0, within 4 ulps plus an ulp of ν's worth (ν·∂H/∂ν → ¼/ν): check's allowance of an
    ulp of the scale, ε, would hide those 7."""
    params = [np.float32(v) for v in params]
    t = leaves(*params)
    h = StudentT(t[0], 0.0, t[1]).entropy()
    h.backward()
    check(h.numpy(), [v.grad for v in t], params, student_t_entropy_d)
    if params[1] == 1:
        want, (d_df, _) = reference(student_t_entropy_d, params)
        assert abs(float(h.numpy()) - want) <= 4 * ulp32(want) + 4 * EPS32 * abs(float(params[0]) * d_df)


@pytest.mark.parametrize("df", [30.0, 1e4, 1e6, 1e10, 1e30])
def test_student_t_log_prob_at_the_location_at_large_df(df):
    """log_prob(loc) = −log scale − ½ log ν − ½ log π − lgamma(ν/2) + lgamma((ν + 1)/2), its ½ log ν less ½ log(ν/2) as
    the entropy's: 14 ulps off at ν = 10¹⁰ before (−0.9189377 for −0.9189385); within 4 ulps plus an ulp of ν's worth
    (at loc 0 and scale 1, exact: log 1 = 0), the gradient in ν within check's bounds."""
    params = [np.float32(v) for v in (df, 0.0, 1.0, 0.0)]
    (nu,) = leaves(params[0])
    lp = StudentT(nu, 0.0, 1.0).log_prob(mv.tensor(np.float32(0.0)))
    lp.backward()
    want, (d_df, *_) = reference(student_t_log_prob_d, params)
    assert abs(float(lp.numpy()) - want) <= 4 * ulp32(want) + 4 * EPS32 * abs(float(params[0]) * d_df)
    assert np.isfinite(nu.grad) and abs(float(nu.grad) - d_df) <= 1e-3 * abs(d_df) + 8 * EPS32


def test_exponential_gamma_gumbel_and_student_t_keep_the_plain_formulas():
    """At α ≤ SADDLE_FROM (and ν below the series' 100 in float64) the plain formulas, within 10⁻¹³ of the references."""
    for lam, a, b, mu in [(0.5, 1.5, 2.0, 0.7), (2.0, 0.3, 0.4, -1.0), (1.0, 2.0, 1.0, 0.0)]:
        lam_t, a_t, b_t, mu_t = (mv.tensor(np.float64(v)) for v in (lam, a, b, mu))
        assert float(kl_divergence(Exponential(lam_t), Gamma(a_t, b_t)).numpy()) == pytest.approx(
            float(kl_exponential_gamma_d(dec(lam), dec(a), dec(b))), abs=1e-13)
        assert float(kl_divergence(Gamma(a_t, b_t), Gumbel(mu_t, lam_t)).numpy()) == pytest.approx(
            float(kl_gamma_gumbel_d(dec(a), dec(b), dec(mu), dec(lam))), abs=1e-13)
        assert float(StudentT(mv.tensor(np.float64(a * 30)), 0.0, b_t).entropy().numpy()) == pytest.approx(
            float(student_t_entropy_d(dec(a * 30), dec(b))), abs=1e-13)


# ---- Laplace ‖ Laplace where |μ_p − μ_q|/b_p overflows ------------------------------------------------------------------
@precise
def kl_laplace_d(loc_p, scale_p, loc_q, scale_q):
    d = abs(loc_p - loc_q)
    return -(scale_p / scale_q).ln() + d / scale_q + scale_p / scale_q * (-d / scale_p).exp() - 1


@pytest.mark.parametrize("params", [(0.0, 1e-10, 1e30, 1e30), (1e30, 1e-20, -1e30, 1e20), (1e38, 0.1, -1e38, 1e37)])
def test_laplace_kl_where_the_distance_over_b_p_overflows(params):
    """d/b_p past float32's range (r·e^{−d/b_p} = 0): the value and gradients of the rest, −1/b_p in b_p (NaN before)."""
    params = [np.float32(v) for v in params]
    t = leaves(*params)
    with np.errstate(over="ignore"):
        kl = kl_divergence(Laplace(t[0], t[1]), Laplace(t[2], t[3]))
        kl.backward()
    check(kl.numpy(), [v.grad for v in t], params, kl_laplace_d)


def test_gradcheck_float64_of_the_new_large_branches():
    """Exponential ‖ Gamma and Gamma ‖ Gumbel at α from 3 to 10³ (their saddle-point forms) and StudentT's entropy at
    ν from 250 to 10⁴ (its series past ν/2 = 100 in float64), against central differences in float64."""
    rng = np.random.default_rng(7)
    a, lam, b = rng.uniform(3, 1e3, 4), rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)

    def f(a, lam, b):
        return (kl_divergence(Exponential(lam), Gamma(a, b * a)) + kl_divergence(Gamma(a, b), Gumbel(lam * a, a / b))
                + StudentT(a * 10 + 250, 0.0, lam).entropy())
    assert mv.gradcheck(f, [a, lam, b])


def test_laplace_kl_where_the_ratio_and_the_distance_over_b_p_both_overflow():
    """r = b_p/b_q = 10³⁹ and d/b_p = 10³⁹ in float32 (b_q = 10⁻⁴¹, subnormal): the KL, ~d/b_q = 10⁷⁸, is past the range
    and so are its gradients in the locations (∓(1 − e^{−d/b_p})/b_q), but the one in b_p, −1/b_p + e^{−d/b_p}(…), is
    −100 (r·e^{−d/b_p} = ∞·0 made it NaN)."""
    loc_p, scale_p, loc_q, scale_q = leaves(0.0, 1e-2, 1e37, 1e-41)
    with np.errstate(all="ignore"):
        kl = kl_divergence(Laplace(loc_p, scale_p), Laplace(loc_q, scale_q))
        kl.backward()
    assert float(kl.numpy()) == math.inf
    assert float(scale_p.grad) == pytest.approx(-1 / float(np.float32(1e-2)), rel=1e-6)
    assert float(loc_p.grad) == -math.inf and float(loc_q.grad) == math.inf


@pytest.mark.parametrize("lam, a, b", [(1.0, 2.5, 3.0), (0.7, 10.0, 4.0), (2.0, 60.0, 100.0)])
def test_exponential_gamma_and_gamma_gumbel_saddle_forms_in_float64(lam, a, b):
    """Just past SADDLE_FROM, where s(α) ≈ 1/(12α) is of the KL's size, within 10⁻¹³ of the references in float64."""
    lam_t, a_t, b_t = (mv.tensor(np.float64(v)) for v in (lam, a, b))
    assert float(kl_divergence(Exponential(lam_t), Gamma(a_t, b_t)).numpy()) == pytest.approx(
        float(kl_exponential_gamma_d(dec(lam), dec(a), dec(b))), rel=1e-13, abs=1e-13)
    assert float(kl_divergence(Gamma(a_t, b_t), Gumbel(lam_t, b_t)).numpy()) == pytest.approx(
        float(kl_gamma_gumbel_d(dec(a), dec(b), dec(lam), dec(b))), rel=1e-13, abs=1e-13)
