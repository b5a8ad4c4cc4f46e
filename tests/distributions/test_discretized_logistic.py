"""distributions.DiscretizedLogistic against formulas written out with math.* (the logistic cdf's differences over the
bins of k/255, the edge bins open), its stability far from the data and at tiny scales, float64 gradchecks, its draws
on the grid with the bins' frequencies, and the grid check of its values."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minivae as mv
from minivae.distributions import DiscretizedLogistic
from minivae.random import Generator

GRID = np.arange(256) / 255.0


def _cdf(y, loc, scale):
    """The logistic cdf σ((y − μ)/s) by math.exp, in Python floats (float64), without overflow."""
    t = (y - loc) / scale
    return 1 / (1 + math.exp(-t)) if t >= 0 else math.exp(t) / (1 + math.exp(t))


def _between(lo, hi, loc, scale):
    """F(hi) − F(lo), as the difference of the survival function 1 − F = F of the mirrored point where both lie above μ
    (no cancellation of two numbers near 1: the reference keeps its relative digits in the upper tail too)."""
    if lo >= loc:
        return _cdf(2 * loc - lo, loc, scale) - _cdf(2 * loc - hi, loc, scale)
    return _cdf(hi, loc, scale) - _cdf(lo, loc, scale)


def _probabilities(loc, scale, bins=256):
    """P(k), k = 0…bins − 1, by hand: F(x + h) − F(x − h), h = ½/(bins − 1), F(h) at k = 0, 1 − F(1 − h) at the top."""
    top, h = bins - 1, 0.5 / (bins - 1)
    p = [_cdf(h, loc, scale)]
    p += [_between(k / top - h, k / top + h, loc, scale) for k in range(1, top)]
    return p + [_cdf(2 * loc - (1 - h), loc, scale)]


@pytest.mark.parametrize("loc, scale", [(0.3, 0.05), (0.0, 0.01), (1.0, 0.2), (0.5, 3.0), (-0.4, 0.1), (1.7, 0.5),
                                        (0.51, 0.001)])
def test_the_256_probabilities_are_the_logistic_cdf_differences_and_sum_to_1(loc, scale):
    d = DiscretizedLogistic(mv.tensor(np.full(256, loc)), mv.tensor(np.full(256, scale)))
    got = np.exp(d.log_prob(GRID).numpy())
    expected = _probabilities(loc, scale)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300)
    assert math.fsum(got) == pytest.approx(1.0, abs=1e-13)
    assert math.fsum(expected) == pytest.approx(1.0, abs=1e-13)


def test_log_prob_keeps_its_digits_where_the_probability_underflows_and_other_bin_counts():
    """Far below the data the interior probability underflows float64 while its log is −(x − μ)/s + log(bin) to
    within the density's change over the bin (here written out: log e^{−t}(1 − e^{−δ})… as math.* evaluates it)."""
    loc, scale = -3.0, 0.001  # x − μ ≥ 3: t ≥ 3000, σ(a) − σ(b) = 0 in float64
    x = 100 / 255
    a, b = (x + 0.5 / 255 - loc) / scale, (x - 0.5 / 255 - loc) / scale
    # log(σ(a) − σ(b)) = log(1 − σ(b) − (1 − σ(a))) = −b + log(1 − e^{−(a − b)}) + O(e^{−b})
    expected = -b + math.log(-math.expm1(-(a - b)))
    d = DiscretizedLogistic(mv.tensor(np.float64(loc)), mv.tensor(np.float64(scale)))
    got = d.log_prob(x).item()
    assert got == pytest.approx(expected, rel=1e-14)
    # 4 bins: grid {0, ⅓, ⅔, 1}
    d = DiscretizedLogistic(mv.tensor(np.full(4, 0.4)), mv.tensor(np.full(4, 0.3)), bins=4)
    np.testing.assert_allclose(np.exp(d.log_prob(np.arange(4) / 3).numpy()), _probabilities(0.4, 0.3, 4), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_and_gradients_stay_finite_far_from_the_data_and_at_tiny_scales(dtype):
    tiny = 1e-30 if dtype == np.float64 else 1e-6
    loc = mv.tensor(np.array([0.0, 1e8, -1e8, 0.5, 0.5, 3.0, 0.2, 0.2], dtype), requires_grad=True)
    scale = mv.tensor(np.array([tiny, 1.0, tiny, tiny, 1e4, 1e-3, tiny, 1e-8], dtype), requires_grad=True)
    x = np.array([128, 128, 255, 128, 0, 1, 0, 255], dtype) / dtype(255)
    lp = DiscretizedLogistic(loc, scale).log_prob(x)
    assert np.isfinite(lp.numpy()).all(), lp
    assert (lp.numpy() <= 0).all()
    lp.sum().backward()
    assert np.isfinite(loc.grad).all() and np.isfinite(scale.grad).all(), (loc.grad, scale.grad)
    # the bin centred on μ at a tiny scale holds all the mass; the far one a log of about −|x − μ|/s
    centred = DiscretizedLogistic(mv.tensor(np.array(51 / 255, dtype)), mv.tensor(np.array(tiny, dtype)))
    assert centred.log_prob(np.array(51, dtype) / dtype(255)).item() == pytest.approx(0.0, abs=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(-0.5, 1.5), st.floats(-6.0, 1.0), st.integers(0, 255)), min_size=1, max_size=4))
def test_gradcheck_float64(cases):
    """log_prob's gradient in loc and scale against central differences, in float64, edge bins included; the scale
    is given as exp(log s) (the models' parameterization), so that a finite difference's step is relative to s: at
    s = e⁻⁶ a step of 10⁻⁶ in s itself would leave the differences' own truncation error above the tolerance."""
    loc, log_scale, k = (np.array(v) for v in zip(*cases))
    x = k / 255.0
    assert mv.gradcheck(lambda m, s: DiscretizedLogistic(m, mv.ops.exp(s)).log_prob(x), [loc, log_scale])
    assert mv.gradcheck(lambda m, s: DiscretizedLogistic(m, s).log_prob(x), [loc, np.exp(np.maximum(log_scale, -2.0))])


def test_off_grid_values_are_refused_and_float32_rounding_is_not():
    d = DiscretizedLogistic(mv.tensor(np.float32(0.5)), mv.tensor(np.float32(0.1)))
    ok = np.arange(256, dtype=np.float32) / np.float32(255)  # as minivae.data loads IDX files
    assert np.isfinite(d.log_prob(ok).numpy()).all()
    for near in (np.nextafter(ok, np.float32(2)), np.nextafter(ok, np.float32(-1))):  # a float32 rounding off k/255
        assert np.isfinite(d.log_prob(np.clip(near, 0, 1)).numpy()).all()
    d64 = DiscretizedLogistic(mv.tensor(0.5), mv.tensor(0.1))
    assert np.isfinite(d64.log_prob(ok.astype(np.float64)).numpy()).all()  # float32 grey levels cast to float64
    for bad in (0.5, 256 / 255, -1 / 255, 1 / 510, 3.3 / 255, float("nan")):
        with pytest.raises(ValueError, match="on the grid k/255"):
            d.log_prob(np.array([0.0, bad]))
    with pytest.raises(ValueError, match="bins must be an integer >= 2"):
        DiscretizedLogistic(0.5, 0.1, bins=1)


def test_samples_are_on_the_grid_with_the_bins_frequencies():
    loc, scale, n = 0.02, 0.03, 200_000  # mass on both edge bins' side and the interior
    d = DiscretizedLogistic(mv.tensor(np.full(n, loc)), mv.tensor(np.full(n, scale)))
    x = d.sample(rng=Generator(3)).numpy()
    k = np.rint(x * 255)
    np.testing.assert_array_equal(x, k / 255)  # exactly the grid's points
    counts = np.bincount(k.astype(int), minlength=256)
    expected = np.array(_probabilities(loc, scale)) * n
    big = expected > 50
    # a chi-square of 256 bins pooled: each count within 5 standard deviations, and the total statistic reasonable
    assert (np.abs(counts[big] - expected[big]) < 5 * np.sqrt(expected[big])).all()
    chi2 = ((counts[big] - expected[big]) ** 2 / expected[big]).sum()
    assert chi2 < big.sum() + 5 * math.sqrt(2 * big.sum())
    x32 = DiscretizedLogistic(mv.tensor(np.float32(0.5)), mv.tensor(np.float32(0.2))).sample((1000,), rng=Generator(1))
    assert x32.dtype == np.float32
    np.testing.assert_array_equal(x32.numpy(), np.rint(x32.numpy() * 255).astype(np.float32) / np.float32(255))


@pytest.mark.parametrize("loc, scale", [(0.3, 0.05), (-2.0, 0.5), (0.9, 0.3), (2.0, 0.01)])
def test_mean_is_the_grid_average_of_the_probabilities(loc, scale):
    expected = math.fsum(k / 255 * p for k, p in enumerate(_probabilities(loc, scale)))
    d = DiscretizedLogistic(mv.tensor(np.float64(loc)), mv.tensor(np.float64(scale)))
    assert d.mean.item() == pytest.approx(expected, abs=1e-13)
