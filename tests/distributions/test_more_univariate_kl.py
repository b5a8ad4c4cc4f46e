"""kl_divergence of LogNormal, HalfNormal, Cauchy, Gumbel and Geometric pairs: against the definition E_p[log p − log q]
(a quadrature, a sum over k), 0 for KL(p ‖ p), and against torch.distributions.kl_divergence (values and gradients)."""
import numpy as np
import pytest

import minivae as mv
from minivae.distributions import Cauchy, Geometric, Gumbel, HalfNormal, LogNormal, kl_divergence

A, B = np.array([0.3, -1.0, 2.0, 0.0]), np.array([1.0, 0.0, -2.0, 0.1])
S1, S2 = np.array([0.5, 2.0, 0.1, 1.0]), np.array([1.5, 0.3, 2.0, 1.1])
PAIRS = {"LogNormal": ((A, S1), (B, S2)), "HalfNormal": ((S1,), (S2,)), "Cauchy": ((A, S1), (B, S2)),
         "Gumbel": ((A, S1), (B, S2))}
CLASSES = {"LogNormal": LogNormal, "HalfNormal": HalfNormal, "Cauchy": Cauchy, "Gumbel": Gumbel}


def substitution(name, params, t):
    """(x(t), dx/dt) over t in (−1, 1) … (see each): the support of p covered smoothly."""
    if name == "LogNormal":  # log x = loc + 12·scale·t
        m, s = params
        x = np.exp(m + 12 * s * t)
        return x, 12 * s * x
    if name == "HalfNormal":
        return 14 * params[0] * (t + 1) / 2, np.full_like(t, 7 * params[0])
    if name == "Gumbel":  # loc + scale·(20 t + 15): −5 … 35 scales
        return params[0] + params[1] * (20 * t + 15), np.full_like(t, 20 * params[1])
    m, s = params  # Cauchy: loc + scale·sinh(50 t)
    return m + s * np.sinh(50 * t), 50 * s * np.cosh(50 * t)


@pytest.mark.parametrize("name", list(PAIRS))
def test_kl_is_the_expected_log_ratio(name):
    (pp, qp) = PAIRS[name]
    n = 200_000
    t = -1 + (np.arange(n) + 0.5) * (2 / n)
    for j in range(len(A)):
        p = CLASSES[name](*[mv.tensor(np.array([a[j]])) for a in pp])
        q = CLASSES[name](*[mv.tensor(np.array([a[j]])) for a in qp])
        x, jac = substitution(name, [a[j] for a in pp], t)
        lp, lq = (d.log_prob(mv.tensor(x[:, None])).numpy()[:, 0] for d in (p, q))
        w = np.exp(lp) * jac * (2 / n)
        want = (w * np.where(w > 0, lp - lq, 0.0)).sum()
        assert abs(kl_divergence(p, q).numpy()[0] - want) < 1e-6 * max(1, abs(want)), (name, j)
        assert abs(kl_divergence(p, p).numpy()[0]) < 1e-14


def test_geometric_kl_is_the_sum_over_k():
    p, q = np.array([0.1, 0.5, 0.9, 1.0]), np.array([0.3, 0.5, 0.2, 0.6])
    k = np.arange(600.0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = np.where(k == 0, 0.0, k * np.log1p(-p)) + np.log(p)  # (p = 1: 0 at k = 0, −∞ above)
        lq = k * np.log1p(-q) + np.log(q)
        want = np.where(np.exp(lp) > 0, np.exp(lp) * (lp - lq), 0.0).sum(0)
    for make in (lambda v: Geometric(mv.tensor(v)), lambda v: Geometric(logits=mv.tensor(np.log(v) - np.log1p(-v)))):
        got = kl_divergence(make(p[:3]), make(q[:3])).numpy()  # (logits: p < 1)
        np.testing.assert_allclose(got, want[:3], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(kl_divergence(Geometric(mv.tensor(p)), Geometric(mv.tensor(q))).numpy()[3], want[3],
                               rtol=1e-12)  # (p = 1: all the mass at 0, KL = −log q)


@pytest.mark.parametrize("name", list(PAIRS) + ["Geometric-probs", "Geometric-logits"])
def test_kl_values_and_gradients_match_torch(name):
    torch = pytest.importorskip("torch")
    if name.startswith("Geometric"):
        kind = name.split("-")[1]
        pp, qp = (np.array([0.1, 0.5, 0.9, 0.3]),), (np.array([0.3, 0.5, 0.2, 0.99]),)
        if kind == "logits":
            pp, qp = ((np.log(v) - np.log1p(-v),) for v in (pp[0], qp[0]))
        ours_cls = lambda *a: Geometric(**{kind: a[0]})  # noqa: E731
        their_cls = lambda *a: torch.distributions.Geometric(**{kind: a[0]})  # noqa: E731
    else:
        pp, qp = PAIRS[name]
        ours_cls, their_cls = CLASSES[name], getattr(torch.distributions, name)
    ours = [mv.tensor(a, requires_grad=True) for a in pp + qp]
    theirs = [torch.tensor(a, requires_grad=True) for a in pp + qp]
    k = len(pp)
    o = kl_divergence(ours_cls(*ours[:k]), ours_cls(*ours[k:]))
    r = torch.distributions.kl_divergence(their_cls(*theirs[:k]), their_cls(*theirs[k:]))
    np.testing.assert_allclose(o.numpy(), r.detach().numpy(), rtol=1e-12, atol=1e-15)
    g = np.linspace(0.5, 1.5, 4)
    (o * mv.tensor(g)).sum().backward()
    (r * torch.tensor(g)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-11, atol=1e-14)


CROSS = {"Gumbel-Normal": (("Gumbel", (A, S1)), ("Normal", (B, S2))),
         "Normal-Gumbel": (("Normal", (A, S1)), ("Gumbel", (B, S2))),
         "Exponential-Gumbel": (("Exponential", (S2,)), ("Gumbel", (B, S1))),
         "Gamma-Gumbel": (("Gamma", (S2 + 1, S1)), ("Gumbel", (B, S2))),
         "Uniform-Gumbel": (("Uniform", (A, A + S1)), ("Gumbel", (B, S2)))}


def cross_dist(module, name, params, tensor):
    return getattr(module, name)(*[tensor(a) for a in params])


def grid_of(name, params, j, n=200_000):
    """(x, weight) of the midpoint rule over p's support (p = ``name`` with the j-th parameters)."""
    t = -1 + (np.arange(n) + 0.5) * (2 / n)
    v = [a[j] for a in params]
    if name == "Gumbel":
        return v[0] + v[1] * (20 * t + 15), np.full(n, 20 * v[1] * 2 / n)
    if name == "Normal":
        return v[0] + 12 * v[1] * t, np.full(n, 12 * v[1] * 2 / n)
    if name == "Uniform":
        return v[0] + (v[1] - v[0]) * (t + 1) / 2, np.full(n, (v[1] - v[0]) / n)
    u = 17.5 * t - 12.5  # Exponential and Gamma: x = e^u, u from −30 to 5 (over 20 means)
    scale = 1 / v[-1]
    x = scale * np.exp(u)
    return x, x * 17.5 * 2 / n


@pytest.mark.parametrize("pair", list(CROSS))
def test_the_pairs_with_a_gumbel_are_the_expected_log_ratio(pair):
    import minivae.distributions as D
    (pn, pp), (qn, qp) = CROSS[pair]
    for j in range(len(A)):
        p = cross_dist(D, pn, [np.array([a[j]]) for a in pp], mv.tensor)
        q = cross_dist(D, qn, [np.array([a[j]]) for a in qp], mv.tensor)
        x, w = grid_of(pn, pp, j)
        lp, lq = (d.log_prob(mv.tensor(x[:, None])).numpy()[:, 0] for d in (p, q))
        dens = np.exp(lp) * w
        want = (dens * np.where(dens > 0, lp - lq, 0.0)).sum()
        assert abs(kl_divergence(p, q).numpy()[0] - want) < 1e-6 * max(1, abs(want)), (pair, j)


@pytest.mark.parametrize("pair", list(CROSS))
def test_the_pairs_with_a_gumbel_match_torch(pair):
    torch = pytest.importorskip("torch")
    import minivae.distributions as D
    (pn, pp), (qn, qp) = CROSS[pair]
    ours = [mv.tensor(a, requires_grad=True) for a in pp + qp]
    theirs = [torch.tensor(a, requires_grad=True) for a in pp + qp]
    k = len(pp)
    o = kl_divergence(getattr(D, pn)(*ours[:k]), getattr(D, qn)(*ours[k:]))
    r = torch.distributions.kl_divergence(getattr(torch.distributions, pn)(*theirs[:k]),
                                          getattr(torch.distributions, qn)(*theirs[k:]))
    np.testing.assert_allclose(o.numpy(), r.detach().numpy(), rtol=1e-12, atol=1e-14)
    g = np.linspace(0.5, 1.5, 4)
    (o * mv.tensor(g)).sum().backward()
    (r * torch.tensor(g)).sum().backward()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        # (Gamma's concentration: through ψ', where torch's polygamma(1, ·) is off by ~10⁻¹⁰ (ours within 10⁻¹⁵ of
        # the series); gradchecked below)
        rtol = 1e-8 if pair == "Gamma-Gumbel" and i == 0 else 1e-11
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=rtol, atol=1e-13)


@pytest.mark.parametrize("pair", list(CROSS))
def test_the_pairs_with_a_gumbel_gradcheck(pair):
    import minivae.distributions as D
    (pn, pp), (qn, qp) = CROSS[pair]
    k = len(pp)
    assert mv.gradcheck(lambda *a: kl_divergence(getattr(D, pn)(*a[:k]), getattr(D, qn)(*a[k:])), [*pp, *qp])


def test_a_gumbel_against_a_bounded_support_is_infinite():
    import minivae.distributions as D
    p = Gumbel(mv.tensor(A), mv.tensor(S1))
    for q in (D.Beta(2.0, 3.0), D.ContinuousBernoulli(0.3), D.Exponential(1.0), D.Gamma(2.0, 1.0), D.Uniform(-1.0, 1.0)):
        out = kl_divergence(p, q)
        assert out.shape == (4,) and out.dtype == np.float64 and (out.numpy() == np.inf).all(), type(q).__name__
