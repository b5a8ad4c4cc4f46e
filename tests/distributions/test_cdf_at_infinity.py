"""Every cdf at x = ±∞: the limits 0 and 1, and gradients 0 in the value and in every parameter (the limits of the
cdf's derivatives, which vanish in the tails: e.g. ∂/∂σ of Cauchy's ½ + atan((x − μ)/σ)/π is
−(x − μ)/(π(σ² + (x − μ)²)) → 0), where the formulas evaluated at ∞ sent ∞·0 = NaN back ((±∞ − loc)/scale to scale,
Gumbel's e^{(loc − x)/scale} at −∞ to loc and scale, rate·∞ to rate). The finite values next to them keep their
gradients (central differences in float64)."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import distributions as D

CASES = {  # name: parameters (each a number broadcast over the values)
    "Normal": (0.5, 2.0), "Cauchy": (0.5, 2.0), "Laplace": (0.5, 2.0), "Gumbel": (0.5, 2.0), "LogNormal": (0.5, 2.0),
    "HalfNormal": (2.0,), "Exponential": (2.0,), "Uniform": (-1.0, 2.0), "Kumaraswamy": (2.0, 3.0),
    "Gamma": (2.0, 3.0), "ContinuousBernoulli": (0.3,),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(CASES))
def test_cdf_at_infinity_is_its_limit_with_zero_gradients(name, dtype):
    values = np.array([np.inf, -np.inf, 0.75], dtype)
    params = [mv.tensor(np.full(3, p, dtype), requires_grad=True) for p in CASES[name]]
    x = mv.tensor(values, requires_grad=True)
    c = getattr(D, name)(*params).cdf(x)
    np.testing.assert_array_equal(c.numpy()[:2], [1.0, 0.0])
    c.backward(mv.tensor(np.array([1.0, 1.0, 0.0], dtype)))
    for t in params + [x]:
        np.testing.assert_array_equal(t.grad, 0.0)  # (−0 and 0 alike)


def cauchy_cdf(x, loc, scale):
    return 0.5 + math.atan((x - loc) / scale) / math.pi


@pytest.mark.parametrize("x", [1e3, -1e3, 1e8, -1e8])
def test_the_gradients_next_to_infinity_tend_to_zero(x):
    """Central differences of the cdf written in math.* at large finite x agree with the gradients there, and are
    small: the zeros at ±∞ are their limits."""
    loc, scale = (mv.tensor(np.float64(p), requires_grad=True) for p in (0.5, 2.0))
    D.Cauchy(loc, scale).cdf(mv.tensor(np.float64(x))).backward()
    h = 1e-4
    d_scale = (cauchy_cdf(x, 0.5, 2.0 + h) - cauchy_cdf(x, 0.5, 2.0 - h)) / (2 * h)
    d_loc = (cauchy_cdf(x, 0.5 + h, 2.0) - cauchy_cdf(x, 0.5 - h, 2.0)) / (2 * h)
    assert scale.grad.item() == pytest.approx(-(x - 0.5) / (math.pi * (4.0 + (x - 0.5) ** 2)), rel=1e-12)
    assert scale.grad.item() == pytest.approx(d_scale, rel=1e-4, abs=1e-11)
    assert loc.grad.item() == pytest.approx(d_loc, rel=1e-4, abs=1e-11)
    assert abs(scale.grad.item()) < 1 / abs(x)
