"""Uniform(low, high): values by the definitions, gradients by their derivatives written out, samples by a KS test,
and against torch.distributions.Uniform (float64 tight, float32)."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import Uniform
from minivae.random import Generator
from tests.distributions.gof import assert_follows

LOW, HIGH = np.array([0.0, -2.0, 1.0]), np.array([1.0, 3.0, 1.25])


def uniform(dtype=np.float64, requires_grad=False):
    low = mv.tensor(LOW.astype(dtype), requires_grad=requires_grad)
    high = mv.tensor(HIGH.astype(dtype), requires_grad=requires_grad)
    return low, high, Uniform(low, high)


def test_values_are_the_definitions():
    """log_prob −log(b − a) on the closed [a, b] (at both ends too), −∞ outside and at NaN; cdf, icdf, moments."""
    _, _, d = uniform()
    w = HIGH - LOW
    x = np.stack([LOW, HIGH, LOW + 0.3 * w, LOW - 1e-9, HIGH + 1e-9, np.full(3, np.nan)])
    want = np.where((x >= LOW) & (x <= HIGH), -np.log(w), -np.inf)
    np.testing.assert_array_equal(d.log_prob(mv.tensor(x)).numpy(), want)
    np.testing.assert_allclose(d.cdf(mv.tensor(x[:5])).numpy(), np.clip((x[:5] - LOW) / w, 0, 1), rtol=1e-15)
    p = np.array([[0.0], [1.0], [0.3], [0.999]])
    np.testing.assert_allclose(d.icdf(mv.tensor(p)).numpy(), LOW + p * w, rtol=1e-15)
    np.testing.assert_array_equal(d.icdf(mv.tensor(np.array([[-0.1], [1.5], [np.nan], [np.inf]]))).numpy(),
                                  np.full((4, 3), np.nan))
    np.testing.assert_allclose(d.entropy().numpy(), np.log(w), rtol=1e-15)
    np.testing.assert_allclose(d.mean.numpy(), (LOW + HIGH) / 2, rtol=1e-15)
    np.testing.assert_allclose(d.variance.numpy(), w ** 2 / 12, rtol=1e-15)
    np.testing.assert_allclose(d.stddev.numpy(), w / math.sqrt(12), rtol=1e-15)
    assert np.isnan(d.mode.numpy()).all() and d.mode.shape == (3,)


def test_gradients_are_the_derivatives_written_out():
    """log_prob: ∂a = 1/(b − a), ∂b = −1/(b − a) (outside too, as torch's); rsample: ∂a = 1 − u, ∂b = u; cdf: ∂x = 1/(b − a)
    inside; icdf: ∂p = b − a; entropy: ∂b = 1/(b − a)."""
    low, high, d = uniform(requires_grad=True)
    w = HIGH - LOW
    x = mv.tensor(np.array([0.4, 5.0, 1.1]))  # (the second outside)
    d.log_prob(x).sum().backward()
    np.testing.assert_allclose(low.grad, 1 / w, rtol=1e-15)
    np.testing.assert_allclose(high.grad, -1 / w, rtol=1e-15)
    low, high, d = uniform(requires_grad=True)
    u = Generator(4).uniform((500, 3), np.float64)
    g = np.random.default_rng(0).normal(size=(500, 3))
    z = d.rsample((500,), rng=Generator(4))
    np.testing.assert_allclose(z.numpy(), LOW + u * w, rtol=1e-15)
    (z * mv.tensor(g)).sum().backward()
    np.testing.assert_allclose(low.grad, (g * (1 - u)).sum(0), rtol=1e-12)
    np.testing.assert_allclose(high.grad, (g * u).sum(0), rtol=1e-12)
    low, high, d = uniform(requires_grad=True)
    v = mv.tensor(np.array([0.4, -1.0, 1.1]), requires_grad=True)
    d.cdf(v).sum().backward()
    np.testing.assert_allclose(v.grad, 1 / w, rtol=1e-15)
    p = mv.tensor(np.array([0.2, 0.5, 0.9]), requires_grad=True)
    d.icdf(p).sum().backward()
    np.testing.assert_allclose(p.grad, w, rtol=1e-15)
    low, high, d = uniform(requires_grad=True)
    d.entropy().sum().backward()
    np.testing.assert_allclose(high.grad, 1 / w, rtol=1e-15)


def test_rsample_is_reproducible_and_stays_in_the_support():
    for dtype in (np.float64, np.float32):
        _, _, d = uniform(dtype)
        z = d.rsample((2000,), rng=Generator(9))
        np.testing.assert_array_equal(z.numpy(), d.sample((2000,), rng=Generator(9)).numpy())
        assert z.dtype == dtype and d.support.check(z).numpy().all()
        assert np.isfinite(d.log_prob(z).numpy()).all()
    # a draw that rounds to high keeps a density: float32 1 + (1 − 2⁻²⁴) is 2
    d = Uniform(mv.tensor(np.float32(1.0)), mv.tensor(np.float32(2.0)))
    top = d.rsample(uniforms=mv.tensor(np.float32(1 - 2 ** -24)))
    assert top.numpy() == 2.0 and d.log_prob(top).numpy() == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_samples_pass_a_ks_test(dtype):
    _, _, d = uniform(dtype)
    z = d.sample((20_000,), rng=Generator(3)).numpy()
    for j in range(3):
        assert_follows(z[:, j], lambda x, j=j: np.clip((x - LOW[j]) / (HIGH[j] - LOW[j]), 0, 1), f"{dtype.__name__}")


def test_gradcheck_float64():
    def f(low, high, x, p):
        d = Uniform(low, high)
        return (d.log_prob(x) + d.cdf(x) + d.icdf(p) + d.entropy() + d.mean + d.variance + d.stddev
                + d.rsample(uniforms=mv.tensor(np.array([0.2, 0.7, 0.99]))))
    assert mv.gradcheck(f, [LOW, HIGH, np.array([0.5, 2.0, 1.1]), np.array([0.1, 0.6, 0.93])])


def test_construction_checks_support_and_expand():
    with pytest.raises(ValueError, match="Uniform: low must be < high"):
        Uniform(1.0, 1.0)
    with pytest.raises(ValueError, match="Uniform: low must be < high"):
        Uniform(np.array([0.0, 2.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="Uniform: high must be finite"):
        Uniform(0.0, np.inf)
    with pytest.raises(ValueError, match="Uniform: low must be finite"):
        Uniform(np.nan, 1.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        Uniform(np.zeros(2), np.ones(3))
    Uniform(mv.tensor(np.array([2.0]), requires_grad=True), 1.0)  # (a computed parameter is not read)
    _, _, d = uniform()
    np.testing.assert_array_equal(d.support.check(np.array([[0.0, 3.0, 1.25], [-0.1, 3.1, 0.9]])),
                                  [[True, True, True], [False, False, False]])
    np.testing.assert_array_equal(d.arg_constraints["low"].check(np.array([0.9, 3.0, 1.0])), [True, False, True])
    np.testing.assert_array_equal(d.arg_constraints["high"].check(np.array([0.0, 3.0, 1.5])), [False, True, True])
    low = mv.tensor(np.array([[0.0], [1.0]]), requires_grad=True)
    e = Uniform(low, 5.0).expand((4, 2, 3))
    assert e.batch_shape == (4, 2, 3) and e.rsample(rng=Generator(0)).shape == (4, 2, 3)
    e.entropy().sum().backward()
    np.testing.assert_allclose(low.grad, [[-12 / 5.0], [-12 / 4.0]])
    assert Uniform(0, 1).sample(rng=Generator(0)).dtype == np.float32


def test_on_the_device_nothing_is_copied_to_the_host():
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record
    with use_numba(False), use_cuda_kernels(False), emulating():
        low = mv.tensor(np.array([0.0, 1.0], np.float32), device="cuda", requires_grad=True)
        with record() as log:
            d = Uniform(low, 2.5)
            v = mv.tensor(np.array([0.3, 0.9], np.float32), device="cuda")
            out = (d.log_prob(v).sum() + d.entropy().sum() + d.cdf(v).sum() + d.icdf(v).sum() + d.variance.sum()
                   + d.mean.sum() + d.rsample((2,), rng=Generator(0)).sum())
            out.backward()
            d.support.check(d.sample(rng=Generator(1)))
            assert d.mode.device == "cuda"
        assert log == [], describe(log)
        assert low.grad is not None and d.high.device == "cuda"


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-14), (np.float32, 1e-6)])
def test_values_and_gradients_match_torch(dtype, rtol):
    """Inside the support (and outside for log_prob: −∞ and the same gradient), at x = low; not at x = high, where
    torch's log_prob is −∞ (see the docstring)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    low = rng.normal(size=(4, 3)).astype(dtype)
    high = (low + rng.uniform(0.2, 3, (4, 3))).astype(dtype)
    x = (low + (high - low) * rng.uniform(-0.2, 1.0, (4, 3))).astype(dtype)
    x[0] = low[0]
    p = rng.uniform(0.0, 1.0, (4, 3)).astype(dtype)
    ours = [mv.tensor(a, requires_grad=True) for a in (low, high, x, p)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (low, high, x, p)]
    d, t = Uniform(ours[0], ours[1]), torch.distributions.Uniform(theirs[0], theirs[1], validate_args=False)
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
        np.testing.assert_allclose(o.numpy(), r.detach().numpy(), rtol=rtol, atol=rtol * 1e-2, err_msg=name)
        (o * mv.tensor(g)).sum().backward()
        (r * torch.tensor(g)).sum().backward()
        for a, b in zip(ours, theirs):
            if b.grad is not None:
                np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=rtol * 10, atol=rtol * 1e-2, err_msg=name)
    for ours_c, theirs_c in [(d.support, t.support), *zip(d.arg_constraints.values(), t.arg_constraints.values())]:
        assert type(ours_c).__name__ == type(theirs_c).__name__
    assert list(d.arg_constraints) == list(t.arg_constraints)
    probe = torch.tensor(np.stack([low - 0.1, low, high, high + 0.1]))
    for name in ("low", "high"):
        np.testing.assert_array_equal(d.arg_constraints[name].check(probe.numpy()),
                                      t.arg_constraints[name].check(probe).numpy())
    sample = d.sample((50,), rng=Generator(0))
    np.testing.assert_array_equal(d.support.check(sample).numpy(), t.support.check(torch.tensor(sample.numpy())))
    # torch's log_prob at high is −∞, ours −log(high − low): the closed interval its support states
    assert t.log_prob(theirs[1]).detach().isinf().all() and np.isfinite(d.log_prob(ours[1]).numpy()).all()
