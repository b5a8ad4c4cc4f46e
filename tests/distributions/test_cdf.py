"""Normal.cdf and Normal.icdf against the standard library (statistics.NormalDist, math.erfc) and torch."""
import math
import statistics

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import Bernoulli, Categorical, Normal

LOC, SCALE = np.array([0.5, -1.0, 3.0]), np.array([2.0, 0.3, 1e-3])


def normal(dtype=np.float64, requires_grad=False):
    return Normal(mv.tensor(LOC.astype(dtype), requires_grad=requires_grad),
                  mv.tensor(SCALE.astype(dtype), requires_grad=requires_grad))


def test_cdf_and_icdf_match_the_standard_library():
    rng = np.random.default_rng(0)
    x = LOC + SCALE * rng.uniform(-6, 6, (200, 3))
    d = normal()
    want = [[statistics.NormalDist(m, s).cdf(v) for m, s, v in zip(LOC, SCALE, row)] for row in x]
    np.testing.assert_allclose(d.cdf(mv.tensor(x)).numpy(), want, rtol=1e-13, atol=2e-16)  # NormalDist's 1 + erf
    p = rng.uniform(0, 1, (200, 3))
    want = [[statistics.NormalDist(m, s).inv_cdf(v) for m, s, v in zip(LOC, SCALE, row)] for row in p]
    np.testing.assert_allclose(d.icdf(mv.tensor(p)).numpy(), want, rtol=1e-13, atol=1e-15)


def test_cdf_keeps_the_digits_of_the_lower_tail():
    """Φ(z) = ½ erfc(−z/√2) for z down to −37, where 1 + erf(z/√2) is 0 from z ≈ −8.3 on (NormalDist's and torch's
    cdf return 0). The reference's z = (x − μ)/σ is rounded apart from ours (a few ε relatively), and
    d log Φ/dz ≈ |z|: the relative error of Φ is then up to ~4ε·z², beside erfc's own few ulp."""
    z = -np.geomspace(0.5, 37, 60)
    x = LOC[:, None] + SCALE[:, None] * z
    got = normal().cdf(mv.tensor(x.T)).numpy().T
    want = np.array([[0.5 * math.erfc((m - v) / s / math.sqrt(2)) for v in row] for m, s, row in zip(LOC, SCALE, x)])
    assert (want > 0).all() and want.min() < 1e-290
    rel = np.abs(got / want - 1)
    assert (rel <= 4 * np.finfo(float).eps * z ** 2 + 1e-14).all(), rel.max(axis=0)


def test_icdf_keeps_the_digits_of_small_probabilities():
    """icdf(p) from 2p, exact: torch's erfinv(2p − 1) loses p's digits (relative 10⁻⁸ at p = 10⁻¹⁰; −∞ below 2⁻⁵⁴)."""
    p = np.geomspace(1e-300, 0.4, 80)
    d = Normal(mv.tensor(0.0, dtype=np.float64), 1.0)
    want = [statistics.NormalDist().inv_cdf(v) for v in p]
    np.testing.assert_allclose(d.icdf(mv.tensor(p)).numpy(), want, rtol=1e-14)
    upper = 1 - p[p > 1e-16]  # (1 − p rounded: the reference gets the same value)
    np.testing.assert_allclose(d.icdf(mv.tensor(upper)).numpy(), [statistics.NormalDist().inv_cdf(v) for v in upper],
                               rtol=1e-14)
    np.testing.assert_array_equal(d.icdf(mv.tensor(np.array([0.0, 1.0, -0.1, 1.1, np.nan]))).numpy(),
                                  [-np.inf, np.inf, np.nan, np.nan, np.nan])


def test_icdf_inverts_cdf():
    rng = np.random.default_rng(1)
    x = LOC + SCALE * rng.uniform(-30, 3, (300, 3))  # (further up, Φ → 1 rounds: an ulp of it is ε/φ(z) in z)
    d = normal()
    err = np.abs(d.icdf(d.cdf(mv.tensor(x))).numpy() - x) / SCALE  # in units of σ
    assert err.max() < 1e-12, err.max(axis=0)


def test_cdf_and_icdf_keep_the_parameters_dtype_for_numbers():
    d32, d64 = Normal(0.0, 1.0), Normal(mv.tensor(0.0, dtype=np.float64), 1.0)
    assert d32.cdf(0.5).dtype == d32.icdf(0.3).dtype == np.float32
    assert d64.cdf(0.5).dtype == d64.icdf(0.3).dtype == np.float64
    assert d64.icdf(1e-300).item() == pytest.approx(statistics.NormalDist().inv_cdf(1e-300), rel=1e-14)  # not float32's 0
    np.testing.assert_allclose(d32.cdf(mv.tensor(np.array([-1.0, 2.0], np.float32))).numpy(),
                               [statistics.NormalDist().cdf(-1.0), statistics.NormalDist().cdf(2.0)], rtol=2e-7)


def test_cdf_and_icdf_gradients_are_the_density_formulas():
    """∂Φ/∂x = φ(z)/σ, ∂Φ/∂μ = −φ(z)/σ, ∂Φ/∂σ = −z·φ(z)/σ; icdf x = μ + σ·z(p): ∂/∂μ = 1, ∂/∂σ = z, ∂/∂p = σ/φ(z)."""
    rng = np.random.default_rng(2)
    x, g = LOC + SCALE * rng.normal(size=3), rng.normal(size=3)
    d = normal(requires_grad=True)
    value = mv.tensor(x, requires_grad=True)
    d.cdf(value).backward(g)
    z = (x - LOC) / SCALE
    phi = np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(value.grad, g * phi / SCALE, rtol=1e-13)
    np.testing.assert_allclose(d.loc.grad, -g * phi / SCALE, rtol=1e-13)
    np.testing.assert_allclose(d.scale.grad, -g * z * phi / SCALE, rtol=1e-13)
    d = normal(requires_grad=True)
    p = mv.tensor(rng.uniform(0.01, 0.99, 3), requires_grad=True)
    d.icdf(p).backward(g)
    z = np.array([statistics.NormalDist().inv_cdf(v) for v in p.numpy()])
    phi = np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    np.testing.assert_allclose(d.loc.grad, g, rtol=1e-13)
    np.testing.assert_allclose(d.scale.grad, g * z, rtol=1e-12)
    np.testing.assert_allclose(p.grad, g * SCALE / phi, rtol=1e-12)


def test_cdf_and_icdf_gradcheck():
    rng = np.random.default_rng(3)
    x, p = LOC + SCALE * rng.normal(size=(4, 3)), rng.uniform(0.05, 0.95, (4, 3))
    assert mv.gradcheck(lambda m, s, v: Normal(m, s).cdf(v), [LOC.copy(), SCALE.copy(), x])
    assert mv.gradcheck(lambda m, s, v: Normal(m, s).icdf(v), [LOC.copy(), SCALE.copy(), p])


def test_cdf_icdf_and_gradients_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x, p, g = LOC + SCALE * rng.normal(size=(5, 3)), rng.uniform(0, 1, (5, 3)), rng.normal(size=(5, 3))
    for method, v in (("cdf", x), ("icdf", p)):
        d, value = normal(requires_grad=True), mv.tensor(v, requires_grad=True)
        loc, scale, tv = (torch.tensor(a, requires_grad=True) for a in (LOC, SCALE, v))
        out, tout = getattr(d, method)(value), getattr(torch.distributions.Normal(loc, scale), method)(tv)
        np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12, atol=1e-15)
        out.backward(g)
        tout.backward(torch.tensor(g))
        for ours, theirs in ((d.loc, loc), (d.scale, scale), (value, tv)):
            np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("d", [Bernoulli(0.3), Categorical(probs=[0.2, 0.8])], ids=["Bernoulli", "Categorical"])
def test_distributions_without_a_cdf_say_so(d):
    for method in ("cdf", "icdf"):
        with pytest.raises(NotImplementedError, match=f"{type(d).__name__} has no {method}"):
            getattr(d, method)(0.5)
