"""Laplace(loc, scale): values by the textbook formulas (math.*), gradients by their derivatives written out, samples by
a KS test, and everything against torch.distributions.Laplace (float64 tight, float32)."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import Laplace, Normal, constraints
from minivae.random import Generator
from tests.distributions.gof import assert_follows

LOC, SCALE = np.array([0.5, -1.0, 3.0]), np.array([2.0, 0.3, 1e-3])


def laplace(dtype=np.float64, requires_grad=False):
    loc = mv.tensor(LOC.astype(dtype), requires_grad=requires_grad)
    scale = mv.tensor(SCALE.astype(dtype), requires_grad=requires_grad)
    return loc, scale, Laplace(loc, scale)


def ref_cdf(x, m, b):
    return 0.5 * math.exp((x - m) / b) if x < m else 1 - 0.5 * math.exp(-(x - m) / b)


def ref_icdf(p, m, b):
    return m + b * math.log(2 * p) if p < 0.5 else m - b * math.log(2 * (1 - p))


def test_values_are_the_textbook_formulas():
    rng = np.random.default_rng(0)
    x = LOC + SCALE * rng.uniform(-8, 8, (50, 3))
    p = rng.uniform(0, 1, (50, 3))
    _, _, d = laplace()
    want = [[-math.log(2 * b) - abs(v - m) / b for m, b, v in zip(LOC, SCALE, row)] for row in x]
    np.testing.assert_allclose(d.log_prob(mv.tensor(x)).numpy(), want, rtol=1e-14)
    want = [[ref_cdf(v, m, b) for m, b, v in zip(LOC, SCALE, row)] for row in x]
    np.testing.assert_allclose(d.cdf(mv.tensor(x)).numpy(), want, rtol=1e-14)
    want = [[ref_icdf(v, m, b) for m, b, v in zip(LOC, SCALE, row)] for row in p]
    np.testing.assert_allclose(d.icdf(mv.tensor(p)).numpy(), want, rtol=1e-14, atol=1e-17)
    np.testing.assert_allclose(d.entropy().numpy(), [1 + math.log(2 * b) for b in SCALE], rtol=1e-15)
    np.testing.assert_array_equal(d.mean.numpy(), LOC)
    np.testing.assert_array_equal(d.mode.numpy(), LOC)
    np.testing.assert_allclose(d.variance.numpy(), 2 * SCALE ** 2, rtol=1e-15)
    np.testing.assert_allclose(d.stddev.numpy(), math.sqrt(2) * SCALE, rtol=1e-15)


def test_the_density_integrates_to_one_with_its_moments_and_entropy():
    """Trapezoidal sums over ±40 scales (the kink at loc on a grid point): ∫p = 1, ∫xp = loc, ∫(x − loc)²p = 2 scale²,
    −∫p log p = entropy, and the cdf is the integral of the density."""
    d = Laplace(mv.tensor(np.array([0.7]), dtype=np.float64), 1.5)
    x = 0.7 + 1.5 * np.linspace(-40, 40, 400_001)
    lp = d.log_prob(mv.tensor(x[:, None])).numpy()[:, 0]
    dens = np.exp(lp)
    assert abs(np.trapezoid(dens, x) - 1) < 1e-8
    assert abs(np.trapezoid(x * dens, x) - 0.7) < 1e-7
    assert abs(np.trapezoid((x - 0.7) ** 2 * dens, x) - 2 * 1.5 ** 2) < 1e-6
    assert abs(np.trapezoid(-lp * dens, x) - d.entropy().numpy()[0]) < 1e-7
    cum = np.concatenate([[0], np.cumsum((dens[1:] + dens[:-1]) / 2 * np.diff(x))])
    np.testing.assert_allclose(d.cdf(mv.tensor(x[::1000, None])).numpy()[:, 0], cum[::1000], atol=1e-8)


def test_tails_keep_their_digits_and_icdf_inverts_cdf():
    """cdf(loc − 700 scale) = ½e⁻⁷⁰⁰ (torch's ½ + ½·expm1(…) is 0 from 38 scales on), icdf(10⁻³⁰⁰) =
    loc + scale·log(2·10⁻³⁰⁰); ends: −∞ at 0, ∞ at 1, NaN outside [0, 1]; icdf(cdf(x)) = x."""
    d = Laplace(mv.tensor(np.array(0.0)), 1.0)
    z = -np.array([1.0, 40.0, 300.0, 700.0])
    np.testing.assert_allclose(d.cdf(mv.tensor(z)).numpy(), 0.5 * np.exp(z), rtol=1e-15)
    p = np.array([1e-300, 1e-20, 1e-5, 0.3, 0.5, 0.7, 1 - 1e-12])
    np.testing.assert_allclose(d.icdf(mv.tensor(p)).numpy(), [ref_icdf(v, 0, 1) for v in p], rtol=1e-15)
    np.testing.assert_array_equal(d.icdf(mv.tensor(np.array([0.0, 1.0, -0.1, 1.1, np.nan]))).numpy(),
                                  [-np.inf, np.inf, np.nan, np.nan, np.nan])
    x = np.linspace(-700, 30, 500)
    # (above loc, 1 − F = ½e⁻ˣ is rounded to an ulp of 1: x comes back within ε/(1 − F) = 2εeˣ)
    err = np.abs(d.icdf(d.cdf(mv.tensor(x))).numpy() - x)
    assert (err <= 1e-14 * np.abs(x) + 1e-14 + 4 * np.finfo(float).eps * np.exp(np.maximum(x, 0))).all()


def test_gradients_are_the_derivatives_written_out():
    """∂log_prob/∂loc = sign(x − loc)/b, ∂/∂b = −1/b + |x − loc|/b², ∂/∂x = −sign(x − loc)/b; cdf' = density in x (also
    at x = loc, where its branches meet), −density in loc; icdf' = b/p (p < ½) or b/(1 − p) in p, 1 in loc, (icdf − loc)/b
    in b; entropy' = 1/b."""
    loc, scale, d = laplace(requires_grad=True)
    x = mv.tensor(np.array([1.7, -1.4, 3.0]), requires_grad=True)  # (the last one at loc)
    g = np.array([0.3, -1.2, 0.8])
    (d.cdf(x) * mv.tensor(g)).sum().backward()
    dens = np.exp(-np.abs(x.numpy() - LOC) / SCALE) / (2 * SCALE)
    np.testing.assert_allclose(x.grad, g * dens, rtol=1e-14)
    np.testing.assert_allclose(loc.grad, -g * dens, rtol=1e-14)
    np.testing.assert_allclose(scale.grad, -g * dens * (x.numpy() - LOC) / SCALE, rtol=1e-14, atol=1e-300)
    loc2, scale2, d2 = laplace(requires_grad=True)
    v = mv.tensor(np.array([1.7, -1.4, 2.5]), requires_grad=True)
    (d2.log_prob(v) * mv.tensor(g)).sum().backward()
    s = np.sign(v.numpy() - LOC)
    np.testing.assert_allclose(loc2.grad, g * s / SCALE, rtol=1e-14)
    np.testing.assert_allclose(scale2.grad, g * (-1 / SCALE + np.abs(v.numpy() - LOC) / SCALE ** 2), rtol=1e-13)
    np.testing.assert_allclose(v.grad, -g * s / SCALE, rtol=1e-14)
    loc3, scale3, d3 = laplace(requires_grad=True)
    p = mv.tensor(np.array([0.1, 0.5, 0.93]), requires_grad=True)
    q = d3.icdf(p)
    (q * mv.tensor(g)).sum().backward()
    pv = p.numpy()
    np.testing.assert_allclose(p.grad, g * SCALE / np.where(pv < 0.5, pv, 1 - pv), rtol=1e-14)
    np.testing.assert_allclose(loc3.grad, g, rtol=1e-15)
    np.testing.assert_allclose(scale3.grad, g * np.where(pv < 0.5, np.log(2 * pv), -np.log(2 * (1 - pv))), rtol=1e-14)
    loc4, scale4, d4 = laplace(requires_grad=True)
    (d4.entropy() * mv.tensor(g)).sum().backward()
    np.testing.assert_allclose(scale4.grad, g / SCALE, rtol=1e-15)


def test_rsample_is_the_icdf_of_the_generators_uniforms_and_its_gradient_the_formula():
    """rsample = loc + b·log(2u) (u < ½) or loc − b·log(2(1 − u)) of the uniforms the same seed draws (replayed
    independently), so the same seed gives the same draws; ∂z/∂loc = 1, ∂z/∂b = log(2u) or −log(2(1 − u))."""
    for dtype in (np.float64, np.float32):
        loc, scale, d = laplace(dtype, requires_grad=True)
        z = d.rsample((1000,), rng=Generator(7))
        u = Generator(7).uniform((1000, 3), dtype).astype(np.float64)
        noise = np.where(u < 0.5, np.log(2 * u), -np.log(2 * (1 - u)))
        tol = 1e-14 if dtype == np.float64 else 2e-6
        np.testing.assert_allclose(z.numpy(), LOC + SCALE * noise, rtol=tol, atol=tol * 10)
        g = np.random.default_rng(1).normal(size=(1000, 3))
        (z * mv.tensor(g.astype(dtype))).sum().backward()
        np.testing.assert_allclose(loc.grad, g.sum(0), rtol=tol * 10)
        np.testing.assert_allclose(scale.grad, (g * noise).sum(0), rtol=tol * 10)
        assert np.isfinite(z.numpy()).all() and z.dtype == dtype
        np.testing.assert_array_equal(d.sample((1000,), rng=Generator(7)).numpy(), z.numpy())
        np.testing.assert_array_equal(d.rsample(uniforms=mv.tensor(u.astype(dtype))).numpy(), z.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_samples_pass_a_ks_test(dtype):
    _, _, d = laplace(dtype)
    z = d.sample((20_000,), rng=Generator(3)).numpy()
    for j in range(3):
        assert_follows(z[:, j], np.vectorize(lambda x, j=j: ref_cdf(x, LOC[j], SCALE[j])), f"{dtype.__name__} {j}")


def test_gradcheck_float64():
    def f(loc, scale, x, p):
        d = Laplace(loc, scale)
        return (d.log_prob(x) + d.cdf(x) + d.icdf(p) + d.entropy()
                + d.rsample(uniforms=mv.tensor(np.array([0.2, 0.7, 0.99]))))
    assert mv.gradcheck(f, [LOC, np.array([2.0, 0.3, 0.5]), np.array([1.7, -1.4, 2.1]), np.array([0.1, 0.6, 0.93])])


def test_construction_checks_shapes_and_expand():
    with pytest.raises(ValueError, match="Laplace: scale must be > 0"):
        Laplace(0.0, 0.0)
    with pytest.raises(ValueError, match="Laplace: scale must be > 0"):
        Laplace(0.0, np.inf)
    with pytest.raises(ValueError, match="Laplace: loc must not be NaN"):
        Laplace(np.nan, 1.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        Laplace(np.zeros(2), np.ones(3))
    Laplace(0.0, mv.tensor(np.array([-1.0]), requires_grad=True))  # (a computed parameter is not read)
    d = Laplace(mv.tensor(np.zeros(3)), 2.0)
    assert d.batch_shape == (3,) and d.entropy().shape == (3,) and d.variance.shape == (3,)
    assert d.support is constraints.real and d.arg_constraints == {"loc": constraints.real,
                                                                   "scale": constraints.positive}
    loc = mv.tensor(np.array([[0.5], [1.0]]), requires_grad=True)
    e = Laplace(loc, 1.0).expand((4, 2, 3))
    assert e.batch_shape == (4, 2, 3) and e.rsample(rng=Generator(0)).shape == (4, 2, 3)
    e.log_prob(mv.tensor(np.zeros((4, 2, 3)))).sum().backward()
    np.testing.assert_allclose(loc.grad, [[-12.0], [-12.0]])  # 12 copies, each −sign(0 − loc)/1
    assert Laplace(0.0, 1.0).sample(rng=Generator(0)).dtype == np.float32  # numbers: float32, as torch's


def test_on_the_device_nothing_is_copied_to_the_host():
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record
    with use_numba(False), use_cuda_kernels(False), emulating():
        loc = mv.tensor(np.array([0.0, 1.0], np.float32), device="cuda", requires_grad=True)
        with record() as log:
            d = Laplace(loc, 2.0)
            v = mv.tensor(np.array([0.3, 0.9], np.float32), device="cuda")
            out = (d.log_prob(v).sum() + d.entropy().sum() + d.cdf(v).sum() + d.icdf(v).sum() + d.variance.sum()
                   + d.stddev.sum() + d.rsample((2,), rng=Generator(0)).sum())
            out.backward()
            d.support.check(d.sample(rng=Generator(1)))
        assert log == [], describe(log)
        assert loc.grad is not None and d.scale.device == "cuda"


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-13, 1e-16), (np.float32, 2e-6, 1e-7)])
def test_values_and_gradients_match_torch(dtype, rtol, atol):
    """(float32's atol: torch's cdf below loc is ½ + ½·expm1(…), off by up to an ulp of ½ absolutely.)"""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    loc, scale = rng.normal(size=(4, 3)).astype(dtype), rng.uniform(0.2, 3, (4, 3)).astype(dtype)
    x, p = (loc + scale * rng.uniform(-5, 5, (4, 3))).astype(dtype), rng.uniform(0.01, 0.99, (4, 3)).astype(dtype)
    ours = [mv.tensor(a, requires_grad=True) for a in (loc, scale, x, p)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (loc, scale, x, p)]
    d, t = Laplace(ours[0], ours[1]), torch.distributions.Laplace(theirs[0], theirs[1])
    g = rng.normal(size=(4, 3)).astype(dtype)
    for name in ("log_prob", "cdf", "icdf", "entropy", "mean", "variance", "stddev"):
        for a in ours:
            a.grad = None
        for a in theirs:
            a.grad = None
        arg = {"log_prob": 2, "cdf": 2, "icdf": 3}.get(name)
        o = getattr(d, name)(ours[arg]) if arg else (d.entropy() if name == "entropy" else getattr(d, name))
        r = getattr(t, name)(theirs[arg]) if arg else (t.entropy() if name == "entropy" else getattr(t, name))
        assert o.dtype == dtype
        np.testing.assert_allclose(o.numpy(), r.detach().numpy(), rtol=rtol, atol=atol, err_msg=name)
        (o * mv.tensor(g)).sum().backward()
        (r * torch.tensor(g)).sum().backward()
        for a, b in zip(ours, theirs):
            if b.grad is not None:
                np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=rtol * 10, atol=atol * 10, err_msg=name)
    assert repr(d.support) == repr(t.support)
    assert {k: repr(c) for k, c in d.arg_constraints.items()} == {k: repr(c) for k, c in t.arg_constraints.items()}


def test_torch_loses_the_tails_that_we_keep():
    """The 'different on purpose' of the docstring, shown on torch itself."""
    torch = pytest.importorskip("torch")
    t = torch.distributions.Laplace(torch.tensor(0.0, dtype=torch.float64), 1.0)
    d = Laplace(mv.tensor(np.array(0.0)), 1.0)
    assert t.cdf(torch.tensor(-40.0, dtype=torch.float64)).item() == 0.0
    assert d.cdf(-40.0).numpy() == pytest.approx(0.5 * math.exp(-40), rel=1e-15)
    assert t.icdf(torch.tensor(1e-20, dtype=torch.float64)).item() == -math.inf
    assert d.icdf(1e-20).numpy() == pytest.approx(math.log(2e-20), rel=1e-15)


def test_a_laplace_is_not_a_normal():
    assert not isinstance(Laplace(0.0, 1.0), Normal)
