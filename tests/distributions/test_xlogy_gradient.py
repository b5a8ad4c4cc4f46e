"""x·log y's gradient in the coefficient at a coefficient of 0: Gamma(1, β), Beta(1, b), Dirichlet and Kumaraswamy of
concentrations of exactly 1 (their usual initialization) differentiate log_prob in the concentration as log x (the
formulas written out), not as 0; torch.xlogy's gradient. The distributions' x·log y is ops.xlogy (there is one): its
gradients against torch's, a cotangent of 0 giving 0 (not 0·x/0 = NaN), and Kumaraswamy's log_prob at the ends of
[0, 1] without NaN."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import Beta, Dirichlet, Gamma, Kumaraswamy
from minivae import ops

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
    """torch.xlogy's values everywhere, and its gradients wherever torch's are not NaN (±∞ included: log 0 and x/0 where
    the value is ±∞); where torch's are NaN (ȳ at (0, 0), and 0·x/0 of a zero cotangent) ours are 0."""
    torch = pytest.importorskip("torch")
    c = np.array([0.0, 0.0, 0.0, 2.0, -1.5, 0.0, 3.0, -2.0, 2.0, 0.0])
    x = np.array([0.5, 0.0, np.inf, 0.0, 0.0, 3.0, np.inf, np.inf, 0.0, -1.0])
    g = np.array([0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9, 0.0, 2.0])
    ours = [mv.tensor(a, requires_grad=True) for a in (c, x)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (c, x)]
    o, r = ops.xlogy(*ours), torch.xlogy(*theirs)
    np.testing.assert_array_equal(o.numpy(), r.detach().numpy())
    o.backward(mv.tensor(g))  # (not through a sum: the values hold +∞ and −∞)
    r.backward(torch.tensor(g))
    for mine, torchs in zip(ours, theirs):
        t = torchs.grad.numpy()
        np.testing.assert_allclose(mine.grad[~np.isnan(t)], t[~np.isnan(t)], rtol=1e-15)
        assert not np.isnan(mine.grad).any()
    np.testing.assert_array_equal(ours[1].grad[np.isnan(theirs[1].grad.numpy())], 0.0)


def test_a_zero_cotangent_gives_a_zero_gradient_at_the_pole():
    """A VJP is linear in ḡ: ḡ = 0 gives 0, also at y = 0 where x/y = ±∞ (the branch of ops.where that is not taken);
    torch's 0·x/0 is NaN there. The gradients where ḡ ≠ 0 are x/y and log y, written out."""
    x = mv.tensor(np.array([2.0, -1.5, 0.5, 3.0]), requires_grad=True)
    y = mv.tensor(np.array([0.0, 0.0, 2.0, 0.25]), requires_grad=True)
    taken = mv.tensor(np.array([False, False, True, True]))
    ops.where(taken, ops.xlogy(x, y), 0.0).sum().backward()
    np.testing.assert_array_equal(y.grad, [0.0, 0.0, 0.5 / 2.0, 3.0 / 0.25])
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, math.log(2.0), math.log(0.25)])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kumaraswamy_log_prob_at_the_ends_of_the_interval(dtype):
    """At x = 1 the gradient in a is its limit from inside, b/a (d/da of (b − 1)·log(1 − x^a) → (b − 1)/a), the same
    as just inside (x = 1 − 10⁻¹², the formula written out: 1/a + log x + (b − 1)·(−x^a log x)/(1 − x^a)); at x = 0 and
    1 nothing is NaN: the values log(ab) (a = 1 or b = 1) or ±∞, the gradients ±∞ where x·log y is."""
    a = mv.tensor(np.array([2.0, 0.5, 1.0, 3.0, 2.0, 0.5], dtype), requires_grad=True)
    b = mv.tensor(np.array([3.0, 0.5, 1.0, 1.0, 3.0, 0.5], dtype), requires_grad=True)
    from minivae.distributions import Kumaraswamy
    lp = Kumaraswamy(a, b).log_prob(np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0], dtype))
    lp.backward(mv.tensor(np.ones(6, dtype)))
    np.testing.assert_allclose(lp.numpy(), [-np.inf, np.inf, 0.0, math.log(3.0), -np.inf, np.inf], rtol=1e-6)
    np.testing.assert_allclose(a.grad[:4], [3.0 / 2.0, 0.5 / 0.5, 1.0, 1.0 / 3.0], rtol=1e-6)
    np.testing.assert_array_equal(b.grad[[0, 1]], -np.inf)  # (1/b + log(1 − x^a) → −∞)
    np.testing.assert_array_equal(a.grad[4:], -np.inf)  # (1/a + log x → −∞)
    assert not np.isnan(a.grad).any() and not np.isnan(b.grad).any()
    ae, be, xe = 2.0, 3.0, 1 - 1e-12
    a64 = mv.tensor(np.array([ae]), requires_grad=True)
    Kumaraswamy(a64, be).log_prob(np.array([xe])).sum().backward()
    inside = 1 / ae + math.log(xe) + (be - 1) * (-xe ** ae * math.log(xe)) / -math.expm1(ae * math.log(xe))
    assert a64.grad[0] == pytest.approx(inside, rel=1e-9) and inside == pytest.approx(be / ae, rel=1e-9)
