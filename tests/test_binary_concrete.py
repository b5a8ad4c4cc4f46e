"""ops.binary_concrete_kl: the Binary Concrete sample of RelaxedBernoulli.rsample and the Bernoulli KL as one op, on
both CPU paths (the NumPy formula; the Numba kernel): the unfused composition's sample and counter, the KL against
its defining formula in float64, extreme logits and temperatures, and the Bernoulli VAE trained by it against the
unfused composition."""
import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minivae as mv
from minivae import ops
from minivae._backend import use_numba
from minivae.distributions import Bernoulli, RelaxedBernoulli, kl_divergence
from minivae.random import Generator

PATHS = [pytest.param(False, id="formula"), pytest.param(True, id="numba")]


HAS_NUMBA = importlib.util.find_spec("numba") is not None


def _numba(flag):
    """use_numba(flag) (it switches the kernels on under MINIVAE_DISABLE_NUMBA=1 too: both modes test them)."""
    if flag and not HAS_NUMBA:
        pytest.skip("Numba is not installed")
    return use_numba(flag)


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def kl_float64(l, lp):
    """σ(l)(log σ(l) − log σ(l_p)) + σ(−l)(log σ(−l) − log σ(−l_p)) in float64 (each product finite for finite logits)."""
    l, lp = np.asarray(l, np.float64), np.asarray(lp, np.float64)
    return (np.exp(log_sigmoid(l)) * (log_sigmoid(l) - log_sigmoid(lp))
            + np.exp(log_sigmoid(-l)) * (log_sigmoid(-l) - log_sigmoid(-lp)))


def unfused(logits, prior, rng, temperature=1.0, hard=False):
    """The composition the op replaces (BernoulliVAE.loss before it): RelaxedBernoulli's rsample, kl_divergence."""
    y = RelaxedBernoulli(temperature, logits=logits).rsample(rng=rng, hard=hard)
    return y, kl_divergence(Bernoulli(logits=logits), Bernoulli(logits=prior))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("numba", PATHS)
def test_the_sample_and_the_counter_are_the_unfused_ones(dtype, hard, numba):
    """The same seed gives the unfused rsample's sample (on the formula path bit for bit, with the sample's gradient
    too; the Numba kernel takes its logarithms and σ in float64 and rounds once: a few ulp, hard values exactly) and
    leaves the counter where the unfused draw does; the KL is within a few ulp of its float64 formula."""
    rng = np.random.default_rng(1)
    logits = (3 * rng.standard_normal((7, 9))).astype(dtype)
    prior = np.zeros(9, dtype)
    gy = rng.standard_normal(logits.shape).astype(dtype)
    results = []
    with _numba(numba):
        for op in (ops.binary_concrete_kl, unfused):
            gen, l = Generator(11, counter=5), mv.tensor(logits, requires_grad=True)
            y, kl = op(l, mv.tensor(prior), gen, temperature=0.6, hard=hard)
            y.backward(gy)
            results.append((y.numpy(), l.grad, gen.counter, kl.numpy()))
    (y, gl, counter, kl), (y0, gl0, counter0, kl0) = results
    assert counter == counter0 == 5 + 16  # 63 uniforms: 16 Philox blocks
    assert y.dtype == gl.dtype == kl.dtype == dtype
    eps = np.finfo(dtype).eps
    if hard or not numba:
        np.testing.assert_array_equal(y, y0)
    else:
        np.testing.assert_allclose(y, y0, rtol=0, atol=64 * eps)
    if not numba:
        np.testing.assert_array_equal(gl, gl0)
    else:
        np.testing.assert_allclose(gl, gl0, rtol=0, atol=64 * eps * np.abs(gy).max() / 0.6)
    np.testing.assert_allclose(kl, kl_float64(logits, prior), rtol=8 * eps, atol=8 * eps)


@pytest.mark.parametrize("numba", PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tau", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("hard", [False, True])
def test_extreme_logits_and_temperatures_stay_finite(numba, dtype, tau, hard):
    """Logits of ±1e4 (and priors of ±1e4): values and both gradients finite, the KL its float64 formula (log 2 at
    l = ±1e4 against l_p = 0; torch's formula is NaN there in float32, 0·∞), the logits' KL gradient 0 where σ(l)σ(−l)
    underflows; the sample's values in [ε, 1 − ε] (soft) or {0, 1} (hard)."""
    l = np.array([1e4, -1e4, 1e4, -1e4, 0.0, 30.0, -30.0, 1e4], dtype)
    lp = np.array([0.0, 0.0, 1e4, 1e4, -1e4, 0.0, 0.0, -1e4], dtype)
    with _numba(numba):
        a, p = mv.tensor(l, requires_grad=True), mv.tensor(lp, requires_grad=numba is False)
        y, kl = ops.binary_concrete_kl(a, p, Generator(3), temperature=tau, hard=hard)
        mv.backward([y, kl], [np.full(8, 0.5, dtype), np.full(8, 1.5, dtype)])
    eps = np.finfo(dtype).eps
    for arr in (y.numpy(), kl.numpy(), a.grad) + ((p.grad,) if p.grad is not None else ()):
        assert np.isfinite(arr).all(), arr
    np.testing.assert_allclose(kl.numpy(), kl_float64(l, lp), rtol=8 * eps, atol=8 * eps)
    assert kl.numpy()[0] == kl.numpy()[1] == dtype(np.log(2))
    if tau <= 1:  # σ(l)σ(−l) = 0 at |l| = 1e4, and σ((l + L)/τ) saturated (at τ = 1e3 it is σ(±10): not quite)
        assert (a.grad[[0, 1, 2, 3, 7]] == 0).all()
    assert (y.numpy() >= 0).all() and (y.numpy() <= 1).all()
    if hard:
        assert set(np.unique(y.numpy())) <= {0.0, 1.0}
        np.testing.assert_array_equal(y.numpy()[:4], [1, 0, 1, 0])
    else:
        assert (y.numpy() >= eps).all() and (y.numpy() <= 1 - eps).all()


@pytest.mark.skipif(not HAS_NUMBA, reason="Numba is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=25, deadline=None)
@given(shape=st.sampled_from([(1,), (31,), (4, 8), (3, 11), (5, 205)]), tau=st.sampled_from([1e-3, 0.5, 1.0, 1e3]),
       hard=st.booleans(), prior=st.sampled_from(["latent", "one", "rows"]), seed=st.integers(0, 2 ** 16),
       used=st.sampled_from(["both", "sample", "kl"]))
def test_the_numba_kernel_is_the_formula(dtype, shape, tau, hard, prior, seed, used):
    """The Numba pair against the NumPy formula: s, y and kl to a few ulp (s's tolerance the rounding of l + L
    magnified by 1/τ through σ's slope), hard values exactly where l + L is clear of 0; the logits' gradient with
    either upstream gradient missing (a prior that broadcasts: one per latent, one for all, or one per row, written
    out)."""
    rng = np.random.default_rng(seed)
    logits = (4 * rng.standard_normal(shape)).astype(dtype)
    p = {"latent": shape[-1:], "one": (), "rows": shape[:1] + (1,) * (len(shape) - 1)}[prior]
    prior_logits = rng.standard_normal(p).astype(dtype)
    gy, gkl = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    results = []
    for flag in (True, False):
        with use_numba(flag):
            l = mv.tensor(logits, requires_grad=True)
            y, kl = ops.binary_concrete_kl(l, mv.tensor(prior_logits), Generator(seed, 3), temperature=tau, hard=hard)
            roots = {"both": ([y, kl], [gy, gkl]), "sample": ([y], [gy]), "kl": ([kl], [gkl])}[used]
            mv.backward(*roots)
            results.append((y.numpy(), kl.numpy(), l.grad))
    (y1, kl1, g1), (y0, kl0, g0) = results
    eps = np.finfo(dtype).eps
    u = Generator(seed, 3).uniform(shape, dtype).astype(np.float64)
    total = logits + (np.log(u) - np.log1p(-u))
    margin = 16 * eps * (np.abs(logits) + np.abs(total) + 24)  # the rounding of l + L in the formula's dtype
    if hard:
        clear = np.abs(total) > margin
        np.testing.assert_array_equal(y1[clear], y0[clear])
    else:
        s0 = y0.astype(np.float64)
        np.testing.assert_array_less(np.abs(y1 - y0), s0 * (1 - s0) * margin / tau + 4 * eps)
    np.testing.assert_allclose(kl1, kl0, rtol=8 * eps, atol=8 * eps * (np.abs(logits).max() + 1))
    # ḡ·s(1 − s)/τ moves by at most 0.1·ḡ·δx/τ² for a δx in l + L (|s(1 − s)(1 − 2s)| ≤ 0.1), and rounds
    bound = (np.abs(gy) * (0.1 * margin / tau ** 2 + 16 * eps / tau)
             + 16 * eps * np.abs(gkl) * (np.abs(logits) + np.abs(prior_logits).max() + 1))
    np.testing.assert_array_less(np.abs(g1 - g0), bound + np.finfo(dtype).tiny)


def test_a_learnable_prior_gets_its_gradient_unbroadcast_on_either_path():
    """A prior that requires a gradient keeps the formula (the kernels refuse it): l̄_p = Σ over the broadcast axes of
    k̄l·(σ(l_p) − σ(l)), 0 where only the sample took a gradient."""
    rng = np.random.default_rng(4)
    logits, prior = rng.standard_normal((6, 5)), rng.standard_normal(5)
    gkl = rng.standard_normal((6, 5))
    sig = lambda v: np.exp(log_sigmoid(v))  # noqa: E731
    for flag in (True, False):
        with use_numba(flag):
            p = mv.tensor(prior, requires_grad=True)
            _, kl = ops.binary_concrete_kl(mv.tensor(logits, requires_grad=True), p, Generator(0))
            kl.backward(gkl)
            np.testing.assert_allclose(p.grad, (gkl * (sig(prior) - sig(logits))).sum(axis=0), rtol=1e-13)
            p2 = mv.tensor(prior, requires_grad=True)
            y, _ = ops.binary_concrete_kl(mv.tensor(logits, requires_grad=True), p2, Generator(0))
            y.backward(np.ones(y.shape))
            np.testing.assert_array_equal(p2.grad, np.zeros(5))


def test_bad_arguments_are_refused_naming_them():
    l = mv.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"prior_logits of shape \(4,\) do not broadcast to the logits' shape \(2, 3\)"):
        ops.binary_concrete_kl(l, mv.tensor(np.zeros(4)), Generator(0))
    with pytest.raises(ValueError, match="temperature must be a finite real number > 0"):
        ops.binary_concrete_kl(l, mv.tensor(np.zeros(3)), Generator(0), temperature=0.0)


@pytest.mark.parametrize("estimator", ["gumbel_softmax", "straight_through"])
@pytest.mark.parametrize("numba", PATHS)
def test_the_bernoulli_vae_trains_as_with_the_unfused_composition(estimator, numba, monkeypatch):
    """Four Adam steps of a BernoulliVAE (float32, its default) through the fused op and through the unfused
    composition (BernoulliVAE.loss's before it) from one seed: the same losses and parameters to float32 rounding (the
    KL's gradient is a different formula of the same function; the Numba kernel's logarithms are its own), and the
    same counter."""
    from minivae import models
    from minivae.optim import Adam

    def train(op):
        monkeypatch.setattr(models.ops, "binary_concrete_kl", op)
        model = models.BernoulliVAE(x_dim=12, hidden=(10,), n_latent=6, estimator=estimator, rng=Generator(0))
        opt, gen = Adam(model.parameters(), lr=1e-2), Generator(7)
        x = mv.tensor((np.random.default_rng(2).random((16, 12)) < 0.5).astype(np.float32))
        losses = []
        for step in range(4):
            opt.zero_grad()
            loss = model.loss(x, gen, step=step)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, [p.data.copy() for p in model.parameters()], gen.counter
    with _numba(numba):
        fused_run, unfused_run = train(ops.binary_concrete_kl), train(unfused)
    np.testing.assert_allclose(fused_run[0], unfused_run[0], rtol=2e-6)
    for a, b in zip(fused_run[1], unfused_run[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert fused_run[2] == unfused_run[2]
