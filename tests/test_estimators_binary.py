"""The estimators on binary latents (Bernoulli, Independent of one), against sums over {0, 1}^N written out in NumPy,
derivatives worked by hand, a quadrature of the Binary Concrete's mean, and binomial bounds.

f(z) = Σ_n w_n z_n + c·z_0·z_1 throughout: E_q f = Σ_n w_n p_n + c·p_0·p_1 (p = σ(l), the variables independent), so
∂/∂l_n E_q f = p_n(1 − p_n)·(w_n + c·[n = 0]·p_1 + c·[n = 1]·p_0)."""
import itertools

import numpy as np
import pytest

import minivae as mv
from minivae import estimators as E
from minivae.distributions import Bernoulli, Independent, Normal
from minivae.random import Generator

L = np.array([0.3, -1.2, 2.0])
W = np.array([1.0, -2.0, 0.5])
C = 3.0
DRAWS = 20_000


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def f(z):
    """Σ w·z + c·z_0·z_1 over the last axis (one value per sample and independent batch entry)."""
    return (z * W).sum(axis=-1) + C * z[..., 0] * z[..., 1]


def df(z):
    """∂f/∂z_n at z (NumPy): w_n, plus c·z_1 for n = 0 and c·z_0 for n = 1."""
    g = np.broadcast_to(W, z.shape).copy()
    g[..., 0] += C * z[..., 1]
    g[..., 1] += C * z[..., 0]
    return g


def enumerated(l):
    """Σ_{z ∈ {0,1}^N} Π_n p_n^{z_n} (1 − p_n)^{1 − z_n} · f(z), summed term by term in NumPy."""
    p = sigmoid(l)
    total = 0.0
    for z in itertools.product((0, 1), repeat=len(l)):
        z = np.array(z, float)
        total += np.prod(np.where(z == 1, p, 1 - p)) * ((z * W).sum() + C * z[0] * z[1])
    return total


def exact_grad(l):
    p = sigmoid(l)
    inner = W.copy()
    inner[0] += C * p[1]
    inner[1] += C * p[0]
    return p * (1 - p) * inner


def repeated(draws, l=L, dtype=np.float64):
    """The logits copied to one row per draw, a leaf: after out.sum().backward() its grad holds each draw's gradient."""
    return mv.tensor(np.tile(l, (draws, 1)).astype(dtype), requires_grad=True)


def within_se(per_draw, expected, k=5.0):
    """The mean of the draws' gradients lies within k standard errors of ``expected`` (each coordinate)."""
    mean = per_draw.mean(axis=0)
    se = per_draw.std(axis=0, ddof=1) / np.sqrt(len(per_draw))
    return np.all(np.abs(mean - expected) <= k * se), mean, se


@pytest.mark.parametrize("independent", [False, True])
def test_exact_value_and_gradient_against_the_enumeration_by_hand(independent):
    assert enumerated(L) == pytest.approx((W * sigmoid(L)).sum() + C * sigmoid(L[0]) * sigmoid(L[1]), rel=1e-14)
    logits = mv.tensor(L.copy(), requires_grad=True)
    q = Independent(Bernoulli(logits=logits), 1) if independent else Bernoulli(logits=logits)
    seen = []
    out = E.exact(lambda z: (seen.append(z.data.copy()), f(z))[1], q)
    assert out.shape == ()
    np.testing.assert_allclose(out.item(), enumerated(L), rtol=1e-13)
    out.backward()
    np.testing.assert_allclose(logits.grad, exact_grad(L), rtol=1e-12)
    # the configurations f saw: every one of {0, 1}^3, once, in itertools.product's order
    np.testing.assert_array_equal(seen[0], np.array(list(itertools.product((0, 1), repeat=3)), float))


def test_exact_keeps_earlier_batch_axes_and_per_variable_values():
    rows = np.array([[0.3, -1.2, 2.0], [-0.5, 0.8, 0.0]])
    logits = mv.tensor(rows.copy(), requires_grad=True)
    out = E.exact(f, Bernoulli(logits=logits))  # z (8, 1, 3): one value per configuration and row
    assert out.shape == (2,)
    np.testing.assert_allclose(out.numpy(), [enumerated(r) for r in rows], rtol=1e-13)
    out.sum().backward()
    np.testing.assert_allclose(logits.grad, np.stack([exact_grad(r) for r in rows]), rtol=1e-12)
    # one value per variable: E_q[z_n · (1 + z_0)] for each n, weighed by the joint q(z)
    per = E.exact(lambda z: z * (1 + z[..., :1]), Bernoulli(logits=mv.tensor(rows)))
    p = sigmoid(rows)
    expected = p * (1 + p[:, :1])
    expected[:, 0] = 2 * p[:, 0]  # z_0 (1 + z_0) = 2 z_0
    np.testing.assert_allclose(per.numpy(), expected, rtol=1e-13)
    # one variable, no batch axis: z (2,), E f = σ(l)·f(1) + (1 − σ(l))·f(0)
    one = E.exact(lambda z: 5.0 * z - 1.0, Bernoulli(logits=mv.tensor(np.float64(0.7))))
    assert one.item() == pytest.approx(5.0 * sigmoid(0.7) - 1.0, rel=1e-14)


def test_exact_float32_and_its_limits_as_the_categorical_case():
    w32, c32 = W.astype(np.float32), np.float32(C)  # (float64 weights would promote f's values)
    out = E.exact(lambda z: (z * w32).sum(axis=-1) + c32 * z[..., 0] * z[..., 1],
                  Bernoulli(logits=mv.tensor(L.astype(np.float32))))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.item(), enumerated(L), rtol=1e-6)
    assert E.exact(f, Bernoulli(logits=mv.tensor(L)), max_configurations=8).shape == ()
    with pytest.raises(ValueError, match=r"exact: 2\^3 = 8 configurations exceed the limit 7"):
        E.exact(f, Bernoulli(logits=mv.tensor(L)), max_configurations=7)
    with pytest.raises(ValueError, match=r"2\^17 = 131072 configurations exceed the limit 65536"):
        E.exact(lambda z: z.sum(axis=-1), Bernoulli(logits=mv.tensor(np.zeros(17))))
    with pytest.raises(ValueError, match=r"exact: f returned values of shape \(8, 3, 1\)"):
        E.exact(lambda z: z[..., None], Bernoulli(logits=mv.tensor(L)))
    with pytest.raises(ValueError, match="Independent of 2 reinterpreted axes"):
        E.exact(f, Independent(Bernoulli(logits=mv.tensor(np.zeros((2, 3)))), 2))
    # sampling estimators' call: the one value for every sample, its gradient summed over them
    logits = mv.tensor(L.copy(), requires_grad=True)
    out = E.exact(f, Bernoulli(logits=logits), sample_shape=(4,), rng=Generator(0))
    np.testing.assert_allclose(out.numpy(), np.full(4, enumerated(L)), rtol=1e-13)
    out.sum().backward()
    np.testing.assert_allclose(logits.grad, 4 * exact_grad(L), rtol=1e-12)


@pytest.mark.parametrize("independent", [False, True])
def test_reinforce_is_unbiased_for_bernoulli(independent):
    """Each draw's gradient (f(z) − 0)·(z − p): its mean within 5 standard errors of the exact gradient; log q summed
    over the variables (a plain Bernoulli's by reinforce, an Independent's by itself) to f's one value per draw."""
    logits = repeated(DRAWS)
    q = Independent(Bernoulli(logits=logits), 1) if independent else Bernoulli(logits=logits)
    out = E.reinforce(f, q, rng=Generator(11))
    assert out.shape == (DRAWS,)
    out.sum().backward()
    ok, mean, se = within_se(logits.grad, exact_grad(L))
    assert ok, (mean, se, exact_grad(L))
    np.testing.assert_allclose(out.numpy().mean(), enumerated(L), atol=5 * out.numpy().std() / np.sqrt(DRAWS))


def relaxed_mean_grad(l, tau):
    """∂/∂l E[σ((l + L)/τ)], L ~ Logistic(0, 1): E[σ'((l + L)/τ)/τ] = ∫ σ'((l + x)/τ)/τ · σ'(x) dx, by the trapezoid
    rule on a grid fine enough for τ = 0.1 (the integrand's width)."""
    x = np.linspace(-60.0, 60.0, 1_200_001)
    s = sigmoid((l + x) / tau)
    return np.trapezoid(s * (1 - s) / tau * sigmoid(x) * (1 - sigmoid(x)), x)


def test_relaxed_mean_grad_closed_form_at_tau_one():
    """At l = 0, τ = 1: ∫ σ'(x)² dx = ∫_0^1 s(1 − s) ds = 1/6 (s = σ(x)), not σ'(0) = 1/4: biased for a linear f."""
    assert relaxed_mean_grad(0.0, 1.0) == pytest.approx(1 / 6, rel=1e-9)


def test_gumbel_softmax_on_a_linear_f_is_biased_and_the_bias_falls_with_tau():
    """For f(y) = w·y the relaxed estimator is unbiased for ∂/∂l E[f(y)] = w_n ∂/∂l_n E[σ((l_n + L)/τ)], which is
    not w_n σ'(l_n) at any τ > 0 (1/6 against 1/4 at l = 0, τ = 1): biased for E_q f, the bias → 0 as τ → 0."""
    lin = lambda y: (y * W).sum(axis=-1)  # noqa: E731
    exact = W * sigmoid(L) * (1 - sigmoid(L))
    bias = {}
    for tau in (2.0, 0.5, 0.1):
        logits = repeated(DRAWS)
        E.gumbel_softmax(lin, Bernoulli(logits=logits), rng=Generator(5), temperature=tau).sum().backward()
        relaxed = W * np.array([relaxed_mean_grad(v, tau) for v in L])
        ok, mean, se = within_se(logits.grad, relaxed)
        assert ok, (tau, mean, se, relaxed)
        bias[tau] = np.abs(relaxed - exact).max()
        if tau == 2.0:  # the bias is far beyond Monte Carlo error at τ = 2
            assert not within_se(logits.grad, exact)[0]
    assert bias[2.0] > bias[0.5] > bias[0.1]
    assert bias[0.1] < 0.05 * np.abs(exact).max()


def tolerances(dtype):
    """rtol, atol of a y computed in ``dtype`` against float64's: float32's y is within a few ulp of 1 (ε) of the true
    one, so y(1 − y) is within a few ε absolutely, not relatively, where y is near 0 or 1 (a gradient f'·y(1 − y)/τ
    within that atol times |f'|/τ)."""
    return (1e-12, 0.0) if dtype == np.float64 else (2e-5, 4 * float(np.finfo(np.float32).eps))


def noise(seed, shape, dtype):
    """The uniforms the estimators draw from Generator(seed), and L = log u − log(1 − u), in NumPy."""
    u = Generator(seed).uniform(shape, dtype).astype(np.float64)
    return np.log(u) - np.log1p(-u)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("independent", [False, True])
def test_gumbel_softmax_sample_and_gradient_for_the_same_noise(dtype, independent):
    tau, draws = 0.7, 64
    logits = repeated(draws, dtype=dtype)
    q = Independent(Bernoulli(logits=logits), 1) if independent else Bernoulli(logits=logits)
    seen = []
    out = E.gumbel_softmax(lambda y: (seen.append(y.data.copy()), f(y))[1], q, rng=Generator(3), temperature=tau)
    out.sum().backward()
    y = sigmoid((L + noise(3, (draws, 3), dtype)) / tau)
    rtol, atol = tolerances(dtype)
    np.testing.assert_allclose(seen[0], y, rtol=rtol, atol=atol)
    np.testing.assert_allclose(logits.grad, df(y) * y * (1 - y) / tau, rtol=rtol, atol=atol * np.abs(df(y)).max() / tau)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_straight_through_forwards_the_bernoulli_draw_of_the_same_noise(dtype):
    """Forward z = 1[l + L > 0] (0 and 1 exactly), backward f'(z)·∂y/∂l = f'(z)·y(1 − y)/τ, y = σ((l + L)/τ)."""
    tau, draws = 0.5, 4000
    logits = repeated(draws, dtype=dtype)
    seen = []
    out = E.straight_through(lambda z: (seen.append(z.data.copy()), f(z))[1], Bernoulli(logits=logits),
                             rng=Generator(9), temperature=tau)
    out.sum().backward()
    z = seen[0]
    assert z.dtype == dtype
    L_ = noise(9, (draws, 3), dtype)
    hard = (L.astype(dtype).astype(np.float64) + L_ > 0).astype(dtype)
    np.testing.assert_array_equal(z, hard)  # exactly 0/1, not 1 + y − y (rounded)
    y = sigmoid((L + L_) / tau)
    rtol, atol = tolerances(dtype)
    np.testing.assert_allclose(logits.grad, df(hard) * y * (1 - y) / tau, rtol=rtol, atol=atol * np.abs(df(hard)).max() / tau)
    # the same noise as gumbel_softmax's for the same rng: the same gradient where f is linear
    lin = lambda v: (v * W).sum(axis=-1)  # noqa: E731
    a, b = repeated(draws, dtype=dtype), repeated(draws, dtype=dtype)
    E.straight_through(lin, Bernoulli(logits=a), rng=Generator(9), temperature=tau).sum().backward()
    E.gumbel_softmax(lin, Bernoulli(logits=b), rng=Generator(9), temperature=tau).sum().backward()
    np.testing.assert_array_equal(a.grad, b.grad)


def test_straight_through_draws_are_bernoulli_of_sigma_l():
    """The forward values are 0 or 1 and 1 with frequency σ(l), within 5 binomial standard deviations, at any τ;
    the Independent's are its base's (the same draws for the same rng)."""
    l = np.array([0.3, -1.2, 2.0, 0.0, 0.08])
    for tau in (0.1, 3.0):
        z = E.straight_through(lambda v: v, Independent(Bernoulli(logits=mv.tensor(l)), 1), (DRAWS,), rng=Generator(2),
                               temperature=tau).numpy()
        assert z.shape == (DRAWS, 5) and set(np.unique(z)) <= {0.0, 1.0}
        p = sigmoid(l)
        assert np.all(np.abs(z.sum(axis=0) - DRAWS * p) <= 5 * np.sqrt(DRAWS * p * (1 - p))), (z.mean(axis=0), p)


def test_straight_through_propagates_nan():
    out = E.straight_through(lambda z: z, Bernoulli(logits=mv.tensor(np.array([np.nan, 0.0]))), rng=Generator(0))
    assert np.isnan(out.numpy()[0]) and out.numpy()[1] in (0.0, 1.0)


def test_unsupported_distributions_are_refused_clearly():
    logits = mv.tensor(np.zeros(3))
    with pytest.raises(ValueError, match="exact enumeration needs a OneHotCategorical or a Bernoulli, not Normal"):
        E.exact(lambda z: z, Normal(0.0, 1.0))
    for est in (E.gumbel_softmax, E.straight_through):
        with pytest.raises(ValueError, match="relaxes a categorical or Bernoulli distribution, not Normal"):
            est(lambda z: z, Normal(0.0, 1.0), rng=Generator(0))
    with pytest.raises(ValueError, match="pathwise needs a reparameterizable distribution; Bernoulli has none"):
        E.pathwise(lambda z: z, Bernoulli(logits=logits), rng=Generator(0))
