"""kernels/binary_concrete.cu against the formulas of minivae/ops/binary_concrete.py written out here in float64
(the specification): the Binary Concrete sample of Generator.uniform's uniforms, its hard indicator, the Bernoulli KL
and the backward, float32 and float64, awkward sizes (1, 31, 32, 33, 1025 elements), logits of ±1e4, τ of 1e-3, 1 and
1e3. Shared, as tests/kernel_cases.py, by the host emulation (tests/test_cuda_kernels.py, plain and under the
sanitizers) and the GPU suite (tests/gpu/test_kernels.py), through the same ``dev`` fixture."""
import os

import numpy as np
import pytest

from minivae._gpu import binary_concrete as gpu_binary
from minivae.random import Generator

DTYPES = [np.float32, np.float64]
# (rows, m): n = rows·m elements, a prior of m values (one per latent variable): 1, 31, 32 (a thread's Philox block
# of 4 exactly), 33 (a block of 1 past it), 1025; and a prior of one value for all
SHAPES = [(1, 1), (1, 31), (4, 8), (3, 11), (25, 41)]
BINARY_TAUS = [1e-3, 1.0, 1e3]
if os.environ.get("MINIVAE_CUDA_HOST_SANITIZE"):  # every thread costs ~10× more under a sanitizer
    SHAPES, BINARY_TAUS = [(1, 1), (3, 11), (25, 41)], [1.0]


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def sigmoid(x):
    return np.exp(log_sigmoid(x))


def binary_inputs(rng, rows, m, dtype):
    """Logits around ±5 with ±1e4, 0 and values near it among them; the prior's near 0."""
    x = 5 * rng.standard_normal((rows, m))
    x.flat[:4] = [1e4, -1e4, 0.0, -1e-3][:x.size]
    return x.astype(dtype), (0.5 * rng.standard_normal(m)).astype(dtype)


def reference(x, prior, seed, counter, tau):
    """(u's logistic noise L, s = σ((l + L)/τ), kl) in float64 from the dtype's uniforms (exact in float64)."""
    u = Generator(seed, counter).uniform(x.shape, x.dtype).astype(np.float64)
    noise = np.log(u) - np.log1p(-u)
    l, lp = x.astype(np.float64), np.broadcast_to(prior.astype(np.float64), x.shape)
    s = sigmoid((l + noise) / tau)
    # the defining form σ(l)(log σ(l) − log σ(l_p)) + σ(−l)(log σ(−l) − log σ(−l_p)): each product finite here
    kl = (sigmoid(l) * (log_sigmoid(l) - log_sigmoid(lp)) + sigmoid(-l) * (log_sigmoid(-l) - log_sigmoid(-lp)))
    return noise, s, kl


def _ulp(dtype):
    return float(np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,m", SHAPES)
@pytest.mark.parametrize("tau", BINARY_TAUS)
@pytest.mark.parametrize("hard", [False, True])
def test_binary_concrete_kl_pair(dev, dtype, rows, m, tau, hard):
    """binary_concrete_kl_fwd: s within a few ulp of σ((l + L)/τ) of the uniforms Generator(seed, counter) draws (the
    tolerance: the rounding of l + L, magnified by 1/τ through σ's slope s(1 − s)); y its clip to [ε, 1 − ε] exactly,
    or for ``hard`` the indicator 1[l + L > 0] (wherever l + L is clear of 0 by more than its rounding); the KL
    against its defining formula; then the backward against its formula at the kernel's own s."""
    rng = np.random.default_rng(rows * 100 + m)
    x, prior = binary_inputs(rng, rows, m, dtype)
    seed, counter = 2 ** 40 + 3, 17
    xd, pd = dev.put(x), dev.put(prior)
    s, y, kl = (dev.get(a) for a in gpu_binary.binary_concrete_kl_fwd(xd, pd, seed, counter, tau, hard))
    assert s.dtype == y.dtype == kl.dtype == dtype and s.shape == y.shape == kl.shape == x.shape
    noise, want_s, want_kl = reference(x, prior, seed, counter, tau)
    eps = _ulp(dtype)
    total = x.astype(np.float64) + noise
    slack = 8 * eps * (np.abs(x) + np.abs(noise) + 1) / tau  # the rounding of l + L (and of L's logarithms), in x/τ
    np.testing.assert_array_less(np.abs(s - want_s), want_s * (1 - want_s) * slack + 4 * eps)
    if hard:
        clear = np.abs(total) > 8 * eps * (np.abs(x) + np.abs(noise) + 1)
        assert clear.sum() >= x.size - 1
        np.testing.assert_array_equal(y[clear], (total[clear] > 0).astype(dtype))
        assert set(np.unique(y)) <= {0, 1}
    else:
        np.testing.assert_array_equal(y, np.clip(s, dtype(eps), dtype(1 - eps)))
    np.testing.assert_allclose(kl, want_kl, rtol=16 * eps, atol=16 * eps * (np.abs(x) + np.abs(prior) + 1).max())
    assert np.isfinite(s).all() and np.isfinite(kl).all()
    gy, gkl = (rng.standard_normal(x.shape).astype(dtype) for _ in range(2))
    gl = dev.get(gpu_binary.binary_concrete_kl_bwd(dev.put(s), dev.put(gy), xd, pd, dev.put(gkl), tau))
    s64, l, lp = s.astype(np.float64), x.astype(np.float64), np.broadcast_to(prior.astype(np.float64), x.shape)
    inside = (s >= dtype(eps)) & (s <= dtype(1 - eps))
    want = np.where(inside, gy, 0) * s64 * (1 - s64) / tau + gkl * sigmoid(l) * sigmoid(-l) * (l - lp)
    scale = (np.abs(gy) / tau + np.abs(gkl) * (np.abs(l) + np.abs(lp) + 1))
    np.testing.assert_array_less(np.abs(gl - want), 16 * eps * scale + np.finfo(dtype).tiny)
    assert np.isfinite(gl).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("missing", ["sample", "kl"])
def test_binary_concrete_kl_pair_backward_with_one_gradient(dev, dtype, missing):
    """A gradient that never came counts as 0: the other term alone (its pointer never read)."""
    rng = np.random.default_rng(5)
    x, prior = binary_inputs(rng, 3, 11, dtype)
    xd, pd = dev.put(x), dev.put(prior)
    s, _, _ = (dev.get(a) for a in gpu_binary.binary_concrete_kl_fwd(xd, pd, 3, 0, 0.7, False))
    gy, gkl = (rng.standard_normal(x.shape).astype(dtype) for _ in range(2))
    gl = dev.get(gpu_binary.binary_concrete_kl_bwd(dev.put(s), None if missing == "sample" else dev.put(gy), xd, pd,
                                                   None if missing == "kl" else dev.put(gkl), 0.7))
    s64, l, lp = s.astype(np.float64), x.astype(np.float64), prior.astype(np.float64)
    want = (gy * s64 * (1 - s64) / 0.7 if missing == "kl" else gkl * sigmoid(l) * sigmoid(-l) * (l - lp))
    np.testing.assert_allclose(gl, want, rtol=16 * _ulp(dtype), atol=16 * _ulp(dtype) * 1e4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_concrete_kl_pair_noise_follows_the_counter(dev, dtype):
    """The draw at counter c + 1 is the one at c shifted by a Philox block (4 elements), and the prior of one value
    serves every element."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal(40).astype(dtype)
    prior = np.array([0.25], dtype)
    s0 = dev.get(gpu_binary.binary_concrete_kl_fwd(dev.put(x), dev.put(prior), 11, 4, 1.0, False)[0])
    s1, _, kl = (dev.get(a) for a in gpu_binary.binary_concrete_kl_fwd(dev.put(x[4:]), dev.put(prior), 11, 5, 1.0,
                                                                       False))
    np.testing.assert_array_equal(s1, s0[4:])
    _, _, want_kl = reference(x[4:], prior, 11, 5, 1.0)
    np.testing.assert_allclose(kl, want_kl, rtol=16 * _ulp(dtype), atol=16 * _ulp(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_concrete_kl_pair_in_a_graph_takes_the_counter_advance_from_memory(dev, dtype, monkeypatch):
    """A CUDA graph replays its kernels' arguments: the forward's noise must move by the counter's advance in memory
    (``philox_shift``), else every replay would draw the captured step's uniforms."""
    import minivae._gpu
    from tests.kernel_cases import _GraphKnobs
    x = np.random.default_rng(2).normal(size=(5, 33)).astype(dtype)
    prior = dev.put(np.zeros(33, dtype))
    s_eager = dev.get(gpu_binary.binary_concrete_kl_fwd(dev.put(x), prior, 11, 10, 0.5, False)[0])
    monkeypatch.setattr(minivae._gpu, "capture", _GraphKnobs(dev, 7, (2e-3, 1e-6, 1.0)))
    np.testing.assert_array_equal(dev.get(gpu_binary.binary_concrete_kl_fwd(dev.put(x), prior, 11, 3, 0.5, False)[0]),
                                  s_eager)
