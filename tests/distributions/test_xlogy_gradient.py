"""x·log y's gradient in the coefficient at a coefficient of 0: Gamma(1, β), Beta(1, b), Dirichlet and Kumaraswamy of
concentrations of exactly 1 (their usual initialization) differentiate log_prob in the concentration as log x (the
formulas written out), not as 0; torch.xlogy's gradient."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import Beta, Dirichlet, Gamma, Kumaraswamy
from minivae.distributions.gamma import xlogy

EULER = 0.5772156649015329  # −ψ(1); ψ(2) = 1 − γ, ψ(3) = 1.5 − γ


def test_log_prob_gradients_at_a_concentration_of_one():
    x = np.array([0.3, 0.6, 2.5])
    a = mv.tensor(np.array([1.0, 1.0, 1.0]), requires_grad=True)
    Gamma(a, 2.0).log_prob(x).sum().backward()  # log β + log x − ψ(α)
    np.testing.assert_allclose(a.grad, math.log(2.0) + np.log(x) + EULER, rtol=1e-13)
    u = np.array([0.3, 0.6, 0.9])
    a, b = (mv.tensor(np.ones(3), requires_grad=True) for _ in range(2))
    Beta(a, b).log_prob(u).sum().backward()  # log x − ψ(a) + ψ(a + b) = log x + 1, log(1 − x) + 1
    np.testing.assert_allclose(a.grad, np.log(u) + 1, rtol=1e-13)
    np.testing.assert_allclose(b.grad, np.log1p(-u) + 1, rtol=1e-13)
    c = mv.tensor(np.ones(3), requires_grad=True)
    Dirichlet(c).log_prob(np.array([0.2, 0.3, 0.5])).backward()  # log x_k + ψ(3) − ψ(1) = log x_k + 1.5
    np.testing.assert_allclose(c.grad, np.log([0.2, 0.3, 0.5]) + 1.5, rtol=1e-13)
    a, b = (mv.tensor(np.ones(3), requires_grad=True) for _ in range(2))
    Kumaraswamy(a, b).log_prob(u).sum().backward()  # 1/a + log x (+ 0), 1/b + log(1 − x^a)
    np.testing.assert_allclose(a.grad, 1 + np.log(u), rtol=1e-13)
    np.testing.assert_allclose(b.grad, 1 + np.log1p(-u), rtol=1e-13)


def test_xlogy_values_and_gradients_match_torch():
    torch = pytest.importorskip("torch")
    c = np.array([0.0, 0.0, 0.0, 2.0, -1.5, 0.0, 3.0, -2.0])
    x = np.array([0.5, 0.0, np.inf, 0.0, 0.0, 3.0, np.inf, np.inf])
    ours = [mv.tensor(a, requires_grad=True) for a in (c, x)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (c, x)]
    o, r = xlogy(*ours), torch.xlogy(*theirs)
    np.testing.assert_array_equal(o.numpy(), r.detach().numpy())
    g = np.linspace(0.5, 2.0, 8)
    o.backward(mv.tensor(g))  # (not through a sum: the values hold +∞ and −∞)
    r.backward(torch.tensor(g))
    finite = np.array([1, 0, 0, 0, 0, 1, 0, 0], bool)  # (torch's gradients at x = 0 and ∞ are ±∞ or NaN; ours 0)
    np.testing.assert_allclose(ours[0].grad[finite], theirs[0].grad.numpy()[finite], rtol=1e-15)
    np.testing.assert_allclose(ours[1].grad[finite], theirs[1].grad.numpy()[finite], rtol=1e-15)
    assert np.isfinite(ours[0].grad).all() and np.isfinite(ours[1].grad).all()
