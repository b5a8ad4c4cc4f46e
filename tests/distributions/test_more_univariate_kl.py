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
