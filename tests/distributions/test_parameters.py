"""Distribution parameters: probs as torch reads them, dtypes, validation, shapes of the moments."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import (Bernoulli, Categorical, ExpRelaxedCategorical, Normal, OneHotCategorical,
                                   RelaxedOneHotCategorical, kl_divergence)
from minivae.random import Generator

CATEGORICAL_FAMILY = [Categorical, OneHotCategorical,
                      lambda probs=None, logits=None: RelaxedOneHotCategorical(0.5, probs, logits),
                      lambda probs=None, logits=None: ExpRelaxedCategorical(0.5, probs, logits)]
FAMILY_IDS = ["Categorical", "OneHotCategorical", "RelaxedOneHotCategorical", "ExpRelaxedCategorical"]
EPS64 = float(np.finfo(np.float64).eps)


# ---- categorical probs are weights, normalized over the last axis ---------------------
@pytest.mark.parametrize("make", CATEGORICAL_FAMILY, ids=FAMILY_IDS)
def test_categorical_probs_are_normalized_by_the_row_sum(make):
    """torch's rule: p = w / Σ_k w_k. Weights ≥ 1 must not be flattened (clipping w to [ε, 1 − ε]
    before the log made [2, 6] uniform)."""
    w = np.array([[2.0, 6.0, 0.5], [0.1, 0.2, 0.1], [0.2, 0.3, 0.5]])
    p = w / w.sum(-1, keepdims=True)
    d = make(mv.tensor(w))
    np.testing.assert_allclose(d.probs.data, p, rtol=1e-12)
    np.testing.assert_allclose(d.logits.data, np.log(p), rtol=1e-12)


def test_categorical_samples_follow_unnormalized_weights():
    w = np.array([2.0, 6.0], np.float32)
    n = 40_000
    z = Categorical(mv.tensor(w)).sample((n,), rng=Generator(0)).data
    counts, expected = np.bincount(z, minlength=2), n * np.array([0.25, 0.75])
    assert ((counts - expected) ** 2 / expected).sum() < 10.83  # χ²(1) 0.999
    y = RelaxedOneHotCategorical(0.5, mv.tensor(w)).rsample((n,), rng=Generator(1)).data
    counts = np.bincount(y.argmax(-1), minlength=2)
    assert ((counts - expected) ** 2 / expected).sum() < 10.83


def test_categorical_log_prob_gradient_through_the_normalization():
    """log p_k = log w_k − log Σ_j w_j, so ∂/∂w_j = δ_jk / w_k − 1 / Σ w."""
    w = mv.tensor(np.array([2.0, 6.0, 0.5]), requires_grad=True)
    lp = Categorical(w).log_prob(mv.tensor(np.array(1)))
    assert lp.item() == pytest.approx(math.log(6.0 / 8.5))
    lp.backward()
    np.testing.assert_allclose(w.grad, np.array([0.0, 1 / 6.0, 0.0]) - 1 / 8.5)


@pytest.mark.parametrize("cls", [Categorical, OneHotCategorical])
def test_log_prob_and_kl_gradients_reach_a_weight_of_zero(cls):
    """log p_z = log w_z − log Σ_j w_j, so ∂/∂w_j = δ_jz / w_z − 1/Σ w for every j: also for a weight 0, or one below
    ε·Σ w, whose own log the clamp to ε cuts; only the row sum reaches it (the logits were the log_softmax of the
    clamped log p, which cancels Σ w: 0 there). The logits are log p, clamped, as torch's; KL(p ‖ q) of q's weights
    w: ∂/∂w_j = 1/Σ w − p_j / w_j, where p_j = 0 for the weights 0."""
    w = np.array([0.0, 1e-20, 1.0, 3.0])
    weights = mv.tensor(w, requires_grad=True)
    d = cls(weights)
    np.testing.assert_allclose(d.logits.data, np.log(np.clip(w / 4, EPS64, 1 - EPS64)), rtol=1e-15)
    z = np.array([2, 3])
    d.log_prob(z if cls is Categorical else np.eye(4)[z]).backward(np.array([1.0, -2.0]))
    expected = 1.0 * (np.eye(4)[2] / 1.0 - 1 / 4) - 2.0 * (np.eye(4)[3] / 3.0 - 1 / 4)
    np.testing.assert_allclose(weights.grad, expected, rtol=1e-12)
    weights.grad = None
    p = np.array([0.0, 0.0, 0.5, 0.5])
    kl = kl_divergence(cls(mv.tensor(p)), cls(weights))
    assert kl.item() == pytest.approx(0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75), rel=1e-12)
    kl.backward()
    np.testing.assert_allclose(weights.grad, 1 / 4 - np.array([0.0, 0.0, 0.5 / 1.0, 0.5 / 3.0]), rtol=1e-12)


def test_gradients_of_weights_of_zero_match_torch():
    torch = pytest.importorskip("torch")
    w = np.array([[0.0, 1e-20, 1.0, 3.0], [2.0, 0.0, 0.5, 0.0]])
    for cls, tcls in [(Categorical, torch.distributions.Categorical),
                      (OneHotCategorical, torch.distributions.OneHotCategorical)]:
        weights, theirs = mv.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
        value = np.array([3, 0])
        value = value if cls is Categorical else np.eye(4)[value]
        g = np.array([0.5, -1.5])
        (cls(weights).log_prob(value) * g).sum().backward()
        (tcls(theirs).log_prob(torch.tensor(value)) * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(weights.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-15)
        weights.grad, theirs.grad = None, None
        (cls(weights).entropy() * g).sum().backward()
        (tcls(theirs).entropy() * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(weights.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-15)
        weights.grad, theirs.grad = None, None
        p = np.array([0.0, 0.0, 0.5, 0.5])
        (kl_divergence(cls(mv.tensor(p)), cls(weights)) * g).sum().backward()
        (torch.distributions.kl_divergence(tcls(torch.tensor(p)), tcls(theirs)) * torch.tensor(g)).sum().backward()
        np.testing.assert_allclose(weights.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_categorical_probs_match_torch():
    torch = pytest.importorskip("torch")
    w = np.random.default_rng(0).uniform(0, 5, size=(4, 3))
    w[0, 1] = 0.0
    d, t = Categorical(mv.tensor(w)), torch.distributions.Categorical(torch.tensor(w))
    np.testing.assert_allclose(d.probs.data, t.probs.numpy(), rtol=1e-12, atol=1e-15)
    v = np.array([0, 2, 1, 2])
    np.testing.assert_allclose(d.log_prob(mv.tensor(v)).data, t.log_prob(torch.tensor(v)).numpy(), rtol=1e-12)


# ---- refused probs --------------------------------------------------------------------
@pytest.mark.parametrize("probs", [1.5, -0.3, float("nan"), np.array([0.2, 1.0 + 1e-6]), np.array([np.inf])],
                         ids=["1.5", "-0.3", "nan", "above-1", "inf"])
def test_bernoulli_refuses_probs_outside_the_unit_interval(probs):
    with pytest.raises(ValueError, match="Bernoulli: probs must be in \\[0, 1\\]"):
        Bernoulli(probs)


@pytest.mark.parametrize("make", CATEGORICAL_FAMILY, ids=FAMILY_IDS)
@pytest.mark.parametrize("probs,problem", [
    ([-0.5, 1.5], "finite and >= 0"),
    ([np.nan, 1.0], "finite and >= 0"),
    ([np.inf, 1.0], "finite and >= 0"),
    ([[0.0, 0.0], [0.3, 0.7]], "positive, finite sum"),
], ids=["negative", "nan", "inf", "zero-row"])
def test_categorical_family_refuses_bad_probs(make, probs, problem):
    with pytest.raises(ValueError, match=f"probs.*{problem}"):
        make(np.array(probs))


def test_probs_that_require_grad_are_not_checked():
    """The policy: value checks run on constant CPU parameters only (no pass over computed ones)."""
    assert Bernoulli(mv.tensor(np.array([1.5]), requires_grad=True)).batch_shape == (1,)
    assert Categorical(mv.tensor(np.array([-0.5, 1.5]), requires_grad=True)).num_categories == 2


@pytest.mark.parametrize("make", CATEGORICAL_FAMILY, ids=FAMILY_IDS)
def test_zero_categories_are_refused_at_construction(make):
    for kwargs in ({"logits": mv.tensor(np.zeros((2, 0)))}, {"probs": mv.tensor(np.zeros((2, 0)))}):
        with pytest.raises(ValueError, match="K = 0 categories"):
            make(**kwargs)


# ---- Bernoulli with certain outcomes --------------------------------------------------
class _ExtremeUniforms:
    """A stand-in rng whose uniforms are the two extremes Generator.uniform can return in float32:
    1 − 2⁻²⁴ and 2⁻²⁴ (words_to_uniform)."""

    def uniform(self, shape, dtype, device="cpu"):
        return np.broadcast_to(np.array([1 - 2.0 ** -24, 2.0 ** -24], dtype), shape).copy()


def test_bernoulli_probs_zero_and_one_never_draw_the_impossible_value():
    """torch samples from the probs as given: P(1) = 1 draws only 1s. Probs clamped to 1 − ε = 1 − 2⁻²³
    would draw 0 at u = 1 − 2⁻²⁴, and probs 0 clamped to ε would draw 1 at u = 2⁻²⁴."""
    d = Bernoulli(mv.tensor(np.array([1.0, 0.0], np.float32)))
    np.testing.assert_array_equal(d.probs.data, [1.0, 0.0])
    np.testing.assert_array_equal(d.mean.data, [1.0, 0.0])
    np.testing.assert_array_equal(d.sample(rng=_ExtremeUniforms()).data, [1.0, 0.0])
    s = d.sample((50_000,), rng=Generator(0)).data
    assert np.all(s[:, 0] == 1) and np.all(s[:, 1] == 0)
    # log_prob stays through the clamped logits, as torch's: log P(the impossible value) = log ε
    eps = float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(d.log_prob(mv.tensor(np.array([0.0, 1.0], np.float32))).data, [math.log(eps)] * 2, rtol=1e-6)


def test_bernoulli_of_float16_probs_compares_float64_uniforms():
    """Float16 uniforms are float32's rounded (Generator.uniform), which would put P(u < p) about half a float16 step
    below p, and at 0 for p = 2⁻²⁴: a float16 p is compared with the float64 uniforms (as before the float16 ones
    existed), and the draws are float16."""
    p = np.array([2.0 ** -24, 0.3, 0.5, 0.999], np.float16)
    s = Bernoulli(mv.tensor(p)).sample((50_000,), rng=Generator(4))
    assert s.dtype == np.float16
    np.testing.assert_array_equal(s.data, (Generator(4).uniform((50_000, 4), np.float64) < p).astype(np.float16))


# ---- dtypes: integer parameters become float32, integer tensors are refused ------------
@pytest.mark.parametrize("values", [np.array([0, 1, 1]), [0, 1, 1], np.array([0, 1, 1], np.uint8), np.array([False, True, True])],
                         ids=["int64", "list", "uint8", "bool"])
def test_bernoulli_log_prob_of_integer_values_is_in_the_logits_dtype(values):
    """Binary data as integers (or a list) scores in the float32 of the logits (int64 data gave NumPy's float64), as
    its gradient does: x·l − softplus(l)."""
    logits = mv.tensor(np.array([0.5, -1.0, 2.0], np.float32), requires_grad=True)
    lp = Bernoulli(logits=logits).log_prob(values)
    assert lp.dtype == np.float32
    x = np.array([0.0, 1.0, 1.0])
    np.testing.assert_allclose(lp.data, x * logits.data - np.logaddexp(0, logits.data.astype(np.float64)), rtol=1e-6)
    lp.sum().backward()
    assert logits.grad.dtype == np.float32


def test_normal_with_integer_parameters_is_float32():
    d = Normal(0, 1)
    assert d.loc.dtype == np.float32 and d.scale.dtype == np.float32 and d.variance.dtype == np.float32
    x = d.rsample((1000,), rng=Generator(0))
    np.testing.assert_array_equal(x.data, Generator(0).normal((1000,), np.float32))  # not truncated to integers
    assert d.log_prob(mv.tensor(np.float32(0.5))).dtype == np.float32
    assert d.log_prob(mv.tensor(np.float32(0.5))).item() == pytest.approx(-0.125 - 0.5 * math.log(2 * math.pi), rel=1e-6)
    e = Normal(np.array([0, 1]), np.array([1, 2], np.int32))
    assert e.loc.dtype == np.float32 and e.scale.dtype == np.float32
    assert Normal(np.array([True]), 1.0).loc.dtype == np.float32


def test_integer_tensor_parameters_are_refused_by_name():
    ints = mv.tensor(np.array([0, 1]))
    with pytest.raises(TypeError, match="Normal: loc must be a floating tensor"):
        Normal(ints, 1.0)
    with pytest.raises(TypeError, match="Normal: scale must be a floating tensor"):
        Normal(0.0, ints + 1)
    with pytest.raises(TypeError, match="Bernoulli: logits must be a floating tensor"):
        Bernoulli(logits=ints)
    with pytest.raises(TypeError, match="ExpRelaxedCategorical: logits must be a floating tensor"):
        ExpRelaxedCategorical(1.0, logits=ints)
    with pytest.raises(TypeError, match="Categorical: probs must be a floating tensor"):
        Categorical(ints)
    with pytest.raises(TypeError, match="Normal: scale must be a real number"):
        Normal(0.0, "a")


def test_integer_array_logits_draw_float_noise():
    """Gumbel noise drawn in an integer dtype would be truncated; integer arrays become float32."""
    logits = np.zeros((1, 3), np.int64)
    x = ExpRelaxedCategorical(1.0, logits=logits).rsample((500,), rng=Generator(0))
    assert x.dtype == np.float32
    g = Generator(0).gumbel((500, 1, 3), np.float32).astype(np.float64)
    expected = g - np.log(np.exp(g).sum(-1, keepdims=True))
    np.testing.assert_allclose(x.data, expected, rtol=1e-5, atol=1e-5)
    assert Bernoulli(1).probs.dtype == np.float32 and Bernoulli(logits=np.array([0, 1])).logits.dtype == np.float32
    assert Categorical(logits=np.array([0, 1, 2])).logits.dtype == np.float32


def test_normal_draws_noise_in_the_result_dtype_of_loc_and_scale():
    d = Normal(mv.tensor(np.zeros(3, np.float32)), mv.tensor(np.ones(3, np.float64)))
    z = d.rsample((2,), rng=Generator(0))
    assert z.dtype == np.float64
    np.testing.assert_array_equal(z.data, Generator(0).normal((2, 3), np.float64))  # not float32 noise cast up


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_a_number_beside_a_tensor_takes_its_dtype(dtype):
    """As torch's broadcast_all: Normal(loc, 0.1) of a float64 loc has the float64 scale 0.1, exactly (float32's 0.1
    made the scale, stddev, variance and entropy float32, off by 1.5e-9); one of float16, float16 noise, not float32.
    Two numbers stay float32."""
    loc = mv.tensor(np.array([0.5, -1.0], dtype))
    for d in (Normal(loc, 0.1), Normal(np.float32(0.1), mv.tensor(np.array([0.1, 2.0], dtype)))):
        assert d.loc.dtype == d.scale.dtype == dtype
        for moment in (d.mean, d.stddev, d.variance, d.entropy(), d.log_prob(loc), d.rsample((2,), rng=Generator(0))):
            assert moment.dtype == dtype
    scale = Normal(loc, 0.1).scale
    assert scale.item() == dtype(0.1)
    if dtype == np.float64:
        assert Normal(loc, 0.1).entropy().data[0] == pytest.approx(math.log(0.1) + 0.5 * (1 + math.log(2 * math.pi)),
                                                                  rel=1e-15)
    assert Normal(0.0, 0.1).scale.dtype == np.float32


def test_the_dtypes_of_a_normal_with_a_number_match_torch():
    torch = pytest.importorskip("torch")
    for dtype in (np.float64, np.float16):
        x, t = np.array([0.5, 2.0], dtype), torch.tensor(np.array([0.5, 2.0], dtype))
        for ours, theirs in [(Normal(mv.tensor(x), 2.0), torch.distributions.Normal(t, 2.0)),
                             (Normal(0.5, mv.tensor(x)), torch.distributions.Normal(0.5, t))]:
            for name in ("mean", "stddev", "variance"):
                assert getattr(ours, name).dtype == getattr(theirs, name).numpy().dtype, name
            assert ours.entropy().dtype == theirs.entropy().numpy().dtype


# ---- Normal: refused values, broadcast moments ----------------------------------------
@pytest.mark.parametrize("loc,scale,problem", [
    (0.0, float("nan"), "scale must be > 0 and finite"),
    (0.0, float("inf"), "scale must be > 0 and finite"),
    (0.0, -float("inf"), "scale must be > 0 and finite"),
    (0.0, np.array([1.0, 0.0]), "scale must be > 0 and finite"),
    (float("nan"), 1.0, "loc must not be NaN"),
    (np.array([0.0, np.nan]), 1.0, "loc must not be NaN"),
], ids=["scale-nan", "scale-inf", "scale-minus-inf", "scale-zero", "loc-nan", "loc-array-nan"])
def test_normal_refuses_nan_and_infinite_parameters(loc, scale, problem):
    with pytest.raises(ValueError, match=f"Normal: {problem}"):
        Normal(loc, scale)


def test_normal_value_checks_skip_parameters_that_require_grad():
    s = mv.tensor(np.array([np.nan]), requires_grad=True)
    assert Normal(mv.tensor(np.array([np.nan]), requires_grad=True), s).batch_shape == (1,)


def test_normal_refuses_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match="loc of shape \\(2,\\) and scale of shape \\(3,\\)"):
        Normal(np.zeros(2), np.ones(3))


def test_normal_moments_are_broadcast_to_the_batch_shape():
    loc, scale = np.array([0.5, -1.0, 2.0]), np.array([[1.0], [3.0]])
    d = Normal(mv.tensor(loc), mv.tensor(scale))
    assert d.batch_shape == (2, 3)
    np.testing.assert_array_equal(d.mean.data, np.broadcast_to(loc, (2, 3)))
    np.testing.assert_array_equal(d.stddev.data, np.broadcast_to(scale, (2, 3)))
    np.testing.assert_array_equal(d.variance.data, np.broadcast_to(scale ** 2, (2, 3)))
    assert d.entropy().shape == (2, 3)
    same = Normal(mv.tensor(loc), mv.tensor(np.ones(3)))
    assert same.mean is same.loc and same.stddev is same.scale  # no op where the shape already matches


def test_normal_moments_match_torch():
    torch = pytest.importorskip("torch")
    loc, scale = np.array([0.5, -1.0, 2.0]), np.array([[1.0], [3.0]])
    d, t = Normal(mv.tensor(loc), mv.tensor(scale)), torch.distributions.Normal(torch.tensor(loc), torch.tensor(scale))
    for name in ("mean", "stddev", "variance"):
        np.testing.assert_array_equal(getattr(d, name).data, getattr(t, name).numpy(), err_msg=name)


# ---- relaxed: probs, log_prob of arrays -----------------------------------------------
@pytest.mark.parametrize("cls", [RelaxedOneHotCategorical, ExpRelaxedCategorical])
def test_relaxed_probs_are_the_softmax_of_the_logits(cls):
    logits = np.array([[1.0, 2.0, 0.5], [0.0, -3.0, 100.0]])
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(cls(0.7, logits=mv.tensor(logits)).probs.data, expected, rtol=1e-12)


def _concrete_log_prob(logits, y, tau, floor):
    """The Concrete density, by hand, in float64, with log y floored at ``floor``."""
    k = len(logits)
    log_y = np.log(np.maximum(y.astype(np.float64), floor))
    score = logits - tau * log_y
    m = score.max()
    return (math.lgamma(k) + (k - 1) * math.log(tau) + np.sum(logits - (tau + 1) * log_y)
            - k * (m + np.log(np.exp(score - m).sum())))


@pytest.mark.parametrize("y", [np.array([0.25, 0.0, 0.75], np.float32), np.array([1.9e-2, 9.0e-43, 0.981], np.float32)],
                         ids=["zero", "subnormal"])
def test_relaxed_log_prob_of_an_array_equals_that_of_a_tensor(y):
    """A float32 array holding 0 (or a subnormal) is floored at float32's smallest normal, as a Tensor
    is: a floor of 1e-300 rounded to 0 in float32 and gave NaN."""
    logits = np.array([0.0, 0.5, 1.0], np.float32)
    d = RelaxedOneHotCategorical(0.01, logits=mv.tensor(logits))
    from_array, from_tensor = d.log_prob(y), d.log_prob(mv.tensor(y))
    assert from_array.dtype == from_tensor.dtype == np.float32
    np.testing.assert_array_equal(from_array.data, from_tensor.data)
    log_p = logits - np.log(np.exp(logits).sum())
    expected = _concrete_log_prob(log_p.astype(np.float64), y, 0.01, float(np.finfo(np.float32).tiny))
    np.testing.assert_allclose(from_array.data, expected, rtol=1e-5)


# ---- KL --------------------------------------------------------------------------------
def test_categorical_kl_refuses_different_numbers_of_categories():
    p, q = Categorical(logits=mv.tensor(np.zeros(3))), OneHotCategorical(logits=mv.tensor(np.zeros(4)))
    with pytest.raises(ValueError, match="K = 3 .*K = 4"):
        kl_divergence(p, q)


# ---- sample shapes ---------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: Normal(0.0, 1.0), lambda: Bernoulli(0.5), lambda: Categorical(logits=mv.tensor(np.zeros(3))),
    lambda: OneHotCategorical(logits=mv.tensor(np.zeros(3))),
    lambda: RelaxedOneHotCategorical(0.5, logits=mv.tensor(np.zeros(3))),
    lambda: ExpRelaxedCategorical(0.5, logits=mv.tensor(np.zeros(3)))],
    ids=["Normal", "Bernoulli", "Categorical", "OneHotCategorical", "RelaxedOneHotCategorical", "ExpRelaxedCategorical"])
@pytest.mark.parametrize("sample_shape", [(-1,), -5, (2, -3)], ids=["(-1,)", "-5", "(2,-3)"])
def test_negative_sample_shape_is_refused_and_the_generator_does_not_move(make, sample_shape):
    g = Generator(0)
    d = make()
    draw = d.rsample if d.has_rsample else d.sample
    with pytest.raises(ValueError, match="sample_shape .*negative dimensions are not allowed"):
        draw(sample_shape, rng=g)
    assert g.counter == 0
    assert draw((0,), rng=g).shape[0] == 0  # an empty sample is still fine


# ---- categories of probability 0 (found by review, 2026-11-28) ------------------------------
class _ExtremeGumbels:
    """A stand-in rng whose Gumbel noise is the largest Generator.gumbel can return, −log(2⁻³³) = 22.87 (u = 2⁻³³), on
    category 0, and the smallest, −log(−log(2⁻³³)) = −3.13, on the others."""

    def gumbel(self, shape, dtype, device="cpu"):
        g = np.full(shape, -math.log(33 * math.log(2)), dtype)
        g[..., 0] = 33 * math.log(2)
        return g


def test_a_category_of_probability_zero_is_never_drawn():
    """torch samples from the probs as given. The logits clamp a probability 0 to ε (for log_prob, as torch's), and
    the Gumbel-max on them drew it where its noise beat the others' by more than −log ε = 15.9 in float32, which the
    Generator's noise can (its range is 26): about ε a draw each. On log p = −inf no noise lifts it."""
    w = np.array([0.0, 1.0, 3.0], np.float32)
    for cls in (Categorical, OneHotCategorical):
        z = cls(mv.tensor(w)).sample((2,), rng=_ExtremeGumbels()).data
        np.testing.assert_array_equal(z if cls is Categorical else z.argmax(-1), [2, 2])
        w1 = np.zeros(1000, np.float32)
        w1[3] = 1.0
        z = cls(mv.tensor(w1)).sample((2000,), rng=Generator(5)).data
        assert np.all((z if cls is Categorical else z.argmax(-1)) == 3)


def test_the_gumbel_max_of_given_probs_adds_the_noise_to_log_p():
    """The draw is argmax_k(log p_k + g_k) for the Generator's Gumbel noise g (the trick's definition), with log 0 = −inf
    and a probability below ε (1e-10 here, which the logits raise to ε) kept as it is."""
    p = np.array([[0.0, 1e-10, 0.25, 0.75 - 1e-10], [0.5, 0.0, 0.0, 0.5]])
    g = Generator(9).gumbel((3000, 2, 4), np.float64)
    with np.errstate(divide="ignore"):
        expected = (np.log(p) + g).argmax(-1)
    np.testing.assert_array_equal(Categorical(mv.tensor(p)).sample((3000,), rng=Generator(9)).data, expected)


def test_minus_infinite_logits_give_log_prob_and_entropy_as_torch():
    """logits [−inf, 0, 1]: p = (0, 1, e)/(1 + e). log_prob is log p_z (−inf at the impossible value, not NaN from
    0·(−inf) at the others); the entropy is −Σ p log p with 0·log 0 = 0 (torch clamps the logits to the lowest float);
    its gradient is finite. The category of logit −inf is never drawn."""
    logits = mv.tensor(np.array([-np.inf, 0.0, 1.0]), requires_grad=True)
    d = Categorical(logits=logits)
    p = np.array([0.0, 1.0, math.e]) / (1 + math.e)
    np.testing.assert_allclose(d.log_prob(mv.tensor(np.array([1, 2]))).data, np.log(p[1:]), rtol=1e-12)
    assert d.log_prob(0).item() == -np.inf
    entropy = d.entropy()
    np.testing.assert_allclose(entropy.item(), -(p[1:] * np.log(p[1:])).sum(), rtol=1e-12)
    entropy.backward()
    assert np.isfinite(logits.grad).all()
    assert np.all(d.sample((10_000,), rng=Generator(0)).data != 0)


def test_one_hot_log_prob_of_minus_infinite_logits_as_torch():
    """logits [−inf, 0, 1]: the one-hot at z scores log p_z, as torch scores its index: Σ_k v_k log p_k with
    0·(−inf) = 0 for the impossible category the value does not take (NaN in every row). Its gradients are those of
    log p_z: l̄ = ḡ·(one_hot(z) − p) (as Categorical's), v̄_k = ḡ·log p_k, 0 at the impossible category, not NaN. An
    integer one-hot scores in the logits' dtype."""
    logits = mv.tensor(np.array([[-np.inf, 0.0, 1.0]] * 3, np.float32), requires_grad=True)
    p = np.array([0.0, 1.0, math.e]) / (1 + math.e)
    eye = np.eye(3, dtype=np.float32)
    value = mv.tensor(eye[[1, 2, 0]], requires_grad=True)
    d = OneHotCategorical(logits=logits)
    with np.errstate(divide="ignore"):
        log_p = np.log(p)
    lp = d.log_prob(value)
    np.testing.assert_allclose(lp.data, log_p[[1, 2, 0]], rtol=1e-6)
    assert lp.dtype == np.float32 and d.log_prob(eye[[1, 2, 1]].astype(np.int64)).dtype == np.float32
    g = np.array([0.5, -2.0, 0.0], np.float32)  # no gradient from the row of the impossible value (−inf)
    with np.errstate(invalid="ignore"):  # that row's v̄_0 = ḡ·(−inf), NaN at ḡ = 0 (as torch's 0·∞)
        lp.backward(g)
    np.testing.assert_allclose(logits.grad, g[:, None] * (eye[[1, 2, 0]] - p), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(value.grad[:2], g[:2, None] * np.where(np.isinf(log_p), 0.0, log_p), rtol=1e-6)
    assert np.isfinite(logits.grad).all() and np.isfinite(value.grad[:2]).all()


KL_ROWS = [  # (p's logits, q's logits): p_0 = 0 against q_0 > 0; p_0 = q_0 = 0; q_0 = 0 < p_0
    ([-np.inf, 0.0, 1.0], [0.0, 0.0, 0.0]),
    ([-np.inf, 0.0, 1.0], [-np.inf, 1.0, 0.0]),
    ([0.0, 0.0, 1.0], [-np.inf, 0.0, 0.0]),
]


def test_categorical_kl_of_zero_probabilities_as_torch():
    """KL(p ‖ q) = Σ_k p_k log(p_k/q_k): a term of p_k = 0 is 0 (whatever q_k), one of q_k = 0 < p_k is +∞ (NaN from
    0·(−inf) before). The gradients where it is finite are Σ_k over p's support: l̄_p,j = ḡ·p_j (d_j − KL) with
    d_j = log(p_j/q_j) (0 off the support), l̄_q,j = ḡ·(q_j − p_j); finite, where torch's l̄_p is NaN. A row of +∞
    with ḡ = 0 sends back 0."""
    a, b = (np.array(rows) for rows in zip(*KL_ROWS))
    lp, lq = mv.tensor(a, requires_grad=True), mv.tensor(b, requires_grad=True)
    kl = kl_divergence(Categorical(logits=lp), Categorical(logits=lq))
    p, q = (np.exp(x - np.logaddexp.reduce(x, axis=1, keepdims=True)) for x in (a, b))
    p, q = p[:2], q[:2]  # the finite rows
    support = p > 0
    d = np.zeros_like(p)
    d[support] = np.log(p[support] / q[support])
    expected = (p * d).sum(axis=1)
    np.testing.assert_allclose(kl.data[:2], expected, rtol=1e-12)
    assert kl.data[2] == np.inf
    g = np.array([0.7, -1.3, 0.0])
    kl.backward(g)
    np.testing.assert_allclose(lp.grad[:2], g[:2, None] * p * (d - expected[:, None]), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(lq.grad[:2], g[:2, None] * (q - p), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(lp.grad[2], 0.0)
    np.testing.assert_array_equal(lq.grad[2], 0.0)


def test_categorical_kl_of_zero_probabilities_given_and_underflowed():
    """Probs given: a probability 0 of q under p's 0.5 makes the KL +∞ (its logit is clamped to log ε, which made it
    finite), one of p is a term 0. A q_k that only underflows to 0 in float32 (logit −120) keeps its log: KL = 60 − log 2,
    not torch's +∞ (which tests q.probs = 0)."""
    p, q = Categorical(mv.tensor(np.array([0.0, 1.0, 1.0]))), Categorical(mv.tensor(np.array([1.0, 0.0, 1.0])))
    assert kl_divergence(p, q).item() == np.inf
    r = Categorical(mv.tensor(np.array([0.0, 1.0, 3.0])))
    assert kl_divergence(p, r).item() == pytest.approx(0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75), rel=1e-12)
    assert kl_divergence(r, p).item() == pytest.approx(0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5), rel=1e-12)
    u = Categorical(logits=mv.tensor(np.array([0.0, -120.0], np.float32)))
    assert u.probs.data[1] == 0  # underflowed
    kl = kl_divergence(Categorical(logits=mv.tensor(np.zeros(2, np.float32))), u)
    assert kl.item() == pytest.approx(60 - math.log(2), rel=1e-6)


def test_zero_probability_log_prob_and_kl_match_torch():
    torch = pytest.importorskip("torch")
    a, b = (np.array(rows) for rows in zip(*KL_ROWS))
    ours = kl_divergence(OneHotCategorical(logits=mv.tensor(a)), OneHotCategorical(logits=mv.tensor(b))).data
    theirs = torch.distributions.kl_divergence(torch.distributions.OneHotCategorical(logits=torch.tensor(a)),
                                               torch.distributions.OneHotCategorical(logits=torch.tensor(b))).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    v = np.eye(3)[[1, 2, 0]]
    ours = OneHotCategorical(logits=mv.tensor(a)).log_prob(mv.tensor(v)).data
    theirs = torch.distributions.OneHotCategorical(logits=torch.tensor(a)).log_prob(torch.tensor(v)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    w = np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 3.0]])
    ours = kl_divergence(Categorical(mv.tensor(w)), Categorical(mv.tensor(w[::-1].copy()))).data
    theirs = torch.distributions.kl_divergence(torch.distributions.Categorical(torch.tensor(w)),
                                               torch.distributions.Categorical(torch.tensor(w[::-1].copy()))).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_log_prob_of_integer_values_gradchecks():
    """The log-probability of the values, log_softmax(l)[z]: its VJP in l is one_hot(z) − softmax(l) per row."""
    z = np.array([[0, 3], [2, 2]])
    x = mv.tensor(np.random.default_rng(0).standard_normal((2, 2, 4)), requires_grad=True)
    assert mv.gradcheck(lambda x: Categorical(logits=x).log_prob(z), (x,))


def test_probs_given_are_probs_as_torch():
    """torch's probs are the weights normalized, exactly: a weight 0 is a probability 0 (not the ε the logits clamp
    it to), so the entropy of (0, 1, 1) is log 2."""
    d = Categorical(mv.tensor(np.array([0.0, 2.0, 2.0])))
    np.testing.assert_array_equal(d.probs.data, [0.0, 0.5, 0.5])
    assert d.entropy().item() == pytest.approx(math.log(2), rel=1e-12)
