"""Every estimator's value and gradient against hand-worked formulas on tiny problems, for the very
sample it drew (recorded by ``f``; Gumbel noise recomputed from the Philox reference stream).
Runs on whichever path is active (Numba kernels or NumPy), so both are checked in CI."""
import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import estimators as E
from minivae import ops
from minivae.distributions import Normal, OneHotCategorical
from minivae.random import Generator

THETA = np.array([[0.5, -0.3, 1.0, 0.1], [2.0, 0.0, -1.0, 0.4]])
C = np.array([1.0, -2.0, 0.5, 3.0])


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def recorder(fn):
    """f that remembers the sample it was called with."""
    seen = []

    def f(z):
        seen.append(z.data.copy())
        return fn(z)
    return f, seen


def soft_vjp(y, w, tau):
    """∂/∂l of Σ w·softmax((l + g)/τ):  y ⊙ (w − Σ w y)/τ, written from the Jacobian (diag y − y yᵀ)/τ."""
    return np.einsum("...j,...jk->...k", w, (np.einsum("...j,jk->...jk", y, np.eye(y.shape[-1]))
                                             - y[..., :, None] * y[..., None, :]) / tau)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tau", [0.5, 2.0])
def test_hard_gumbel_softmax_gradient_is_the_soft_one_for_the_same_noise(dtype, tau):
    w = np.random.default_rng(0).normal(size=THETA.shape).astype(dtype)
    grads, values = {}, {}
    for hard in (False, True):
        logits = mv.tensor(THETA.astype(dtype), requires_grad=True)
        y = ops.gumbel_softmax(logits, Generator(7), temperature=tau, hard=hard)
        (y * w).sum().backward()
        grads[hard], values[hard] = logits.grad, y.numpy()
    soft = softmax((THETA + Generator(7).gumbel(THETA.shape, np.float64)) / tau)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(values[False], soft, rtol=tol * 10, atol=tol)
    np.testing.assert_array_equal(values[True], np.eye(4)[soft.argmax(-1)])
    np.testing.assert_allclose(grads[True], grads[False], rtol=tol, atol=tol)  # straight-through
    np.testing.assert_allclose(grads[True], soft_vjp(soft, w, tau), rtol=tol * 10, atol=tol)
    assert np.abs(grads[True]).max() > 0.01  # neither zero (a one-hot's VJP) …
    assert not np.allclose(grads[True], w, atol=1e-3)  # … nor the upstream gradient unchanged


def test_functional_hard_gumbel_softmax_with_fixed_noise_backpropagates_the_soft_gradient():
    g = Generator(3).gumbel(THETA.shape, np.float64)
    w = np.random.default_rng(1).normal(size=THETA.shape)
    logits = mv.tensor(THETA, requires_grad=True)
    (F.gumbel_softmax(logits, temperature=0.7, hard=True, gumbels=g) * w).sum().backward()
    np.testing.assert_allclose(logits.grad, soft_vjp(softmax((THETA + g) / 0.7), w, 0.7), rtol=1e-12)


def test_straight_through_op_forwards_one_hot_and_passes_the_gradient_unchanged():
    y = mv.tensor(np.array([[0.2, 0.5, 0.3], [0.4, 0.4, 0.2]]), requires_grad=True)
    w = np.array([[1.0, -2.0, 3.0], [0.5, 0.25, -1.0]])
    z = ops.straight_through(y)
    np.testing.assert_array_equal(z.numpy(), [[0, 1, 0], [1, 0, 0]])  # ties to the lowest index
    (z * w).sum().backward()
    np.testing.assert_array_equal(y.grad, w)


@pytest.mark.parametrize("baseline", [0.0, 1.5])
def test_reinforce_value_and_gradient_by_hand(baseline):
    theta = mv.tensor(THETA, requires_grad=True)
    f, seen = recorder(lambda z: (z * C).sum(axis=-1) ** 2)
    out = E.reinforce(f, OneHotCategorical(logits=theta), rng=Generator(11), baseline=baseline)
    w = np.array([1.0, -0.5])
    (out * w).sum().backward()
    z = seen[0]
    fz = (z @ C) ** 2
    np.testing.assert_allclose(out.numpy(), fz, rtol=1e-12)
    # (f(z) − b)·∇_θ log q(z),  ∇_θ log softmax(θ)_k = e_k − p
    np.testing.assert_allclose(theta.grad, (w * (fz - baseline))[:, None] * (z - softmax(THETA)), rtol=1e-12)


def test_reinforce_on_a_gaussian_by_hand():
    mu, sigma = mv.tensor(np.array([0.3, -1.0]), requires_grad=True), mv.tensor(np.array([0.8, 1.5]), requires_grad=True)
    f, seen = recorder(lambda z: z * z)
    E.reinforce(f, Normal(mu, sigma), rng=Generator(5)).sum().backward()
    z, m, s = seen[0], mu.data, sigma.data
    np.testing.assert_allclose(mu.grad, z ** 2 * (z - m) / s ** 2, rtol=1e-12)
    np.testing.assert_allclose(sigma.grad, z ** 2 * ((z - m) ** 2 / s ** 3 - 1 / s), rtol=1e-12)


def test_pathwise_on_a_gaussian_by_hand():
    mu, sigma = mv.tensor(np.array([0.3, -1.0]), requires_grad=True), mv.tensor(np.array([0.8, 1.5]), requires_grad=True)
    f, seen = recorder(lambda z: z * z)
    out = E.pathwise(f, Normal(mu, sigma), rng=Generator(5))
    out.sum().backward()
    z = seen[0]
    eps = (z - mu.data) / sigma.data
    np.testing.assert_allclose(out.numpy(), z * z)
    np.testing.assert_allclose(mu.grad, 2 * z, rtol=1e-12)             # ∂(μ + σε)²/∂μ
    np.testing.assert_allclose(sigma.grad, 2 * z * eps, rtol=1e-12)    # ∂(μ + σε)²/∂σ


@pytest.mark.parametrize("name", ["gumbel_softmax", "straight_through"])
def test_relaxed_estimators_by_hand(name):
    tau = 0.5
    theta = mv.tensor(THETA, requires_grad=True)
    f, seen = recorder(lambda z: (z * C).sum(axis=-1))
    out = E.get(name)(f, OneHotCategorical(logits=theta), rng=Generator(9), temperature=tau)
    w = np.array([0.7, -1.3])
    (out * w).sum().backward()
    # the relaxed sample from the same Philox noise: softmax((log_softmax θ + g)/τ) = softmax((θ + g)/τ)
    y = softmax((THETA + Generator(9).gumbel(THETA.shape, np.float64)) / tau)
    z = y if name == "gumbel_softmax" else np.eye(4)[y.argmax(-1)]
    np.testing.assert_allclose(seen[0], z, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.numpy(), z @ C, rtol=1e-10)
    # both backpropagate the soft sample's gradient: θ̄ = y ⊙ (w c − Σ_k w c_k y_k)/τ
    np.testing.assert_allclose(theta.grad, soft_vjp(y, w[:, None] * C, tau), rtol=1e-10, atol=1e-12)


def test_exact_estimator_on_two_variables_by_hand():
    theta = mv.tensor(THETA[:, :3], requires_grad=True)   # two variables, three categories
    a = np.array([1.0, -1.0, 2.0])
    out = E.exact(lambda z: (z[..., 0, :] * a).sum(-1) * (z[..., 1, :] * a).sum(-1), OneHotCategorical(logits=theta))
    out.backward()
    p = softmax(THETA[:, :3])
    m = p @ a                                             # E[a·z_n] per variable; f is a product, so E f = m₀ m₁
    np.testing.assert_allclose(out.numpy(), m[0] * m[1], rtol=1e-12)
    # ∂m_n/∂θ_n = p_n ⊙ (a − m_n)
    np.testing.assert_allclose(theta.grad, np.stack([p[0] * (a - m[0]) * m[1], p[1] * (a - m[1]) * m[0]]), rtol=1e-12)


def test_consecutive_gumbel_softmax_draws_take_consecutive_noise():
    # 9 logits take 3 Philox blocks (4 words each); an op that advanced the counter by 2 would reuse one
    logits, rng, reference = np.linspace(-1, 1, 9).reshape(3, 3), Generator(21), Generator(21)
    for _ in range(3):
        y = ops.gumbel_softmax(mv.tensor(logits), rng, temperature=0.5).numpy()
        np.testing.assert_allclose(y, softmax((logits + reference.gumbel(logits.shape, np.float64)) / 0.5), rtol=1e-12)
    assert rng.counter == reference.counter


@pytest.mark.parametrize("batch", [(3,), (3, 3)])
def test_exact_estimator_with_one_value_per_variable_by_hand(batch):
    """f may keep the enumerated axis (one value per variable, as reinforce's f may): E_q f_n = Σ_k p_nk a_nk², each
    f_n weighed by the joint q(z). With as many independent rows as variables (3, 3), a misaligned broadcast of the
    weights (C, 3) against the values (C, 1, 3) would still run."""
    logits = np.random.default_rng(4).normal(size=batch + (3,))
    a = np.array([[1.0, -1.0, 2.0], [0.5, 3.0, -2.0], [-1.5, 0.0, 1.0]])
    theta = mv.tensor(logits, requires_grad=True)
    out = E.exact(lambda z: (z * a).sum(-1) ** 2, OneHotCategorical(logits=theta))
    w = np.random.default_rng(5).normal(size=batch)
    (out * w).sum().backward()
    p = softmax(logits)
    m = (p * a ** 2).sum(-1)
    np.testing.assert_allclose(out.numpy(), m, rtol=1e-12)
    np.testing.assert_allclose(theta.grad, w[..., None] * p * (a ** 2 - m[..., None]), rtol=1e-12, atol=1e-15)


def test_exact_estimator_refuses_values_it_cannot_weigh():
    q = OneHotCategorical(logits=mv.tensor(np.zeros((4, 2, 3))))
    with pytest.raises(ValueError, match=r"exact: f returned values of shape \(9,\)"):
        E.exact(lambda z: z.sum(axis=(-1, -2, -3)), q)  # summed over the independent rows too
    with pytest.raises(ValueError, match=r"shape \(9, 1, 2, 3\)"):
        E.exact(lambda z: z * 1.0, q)  # the sample itself, event axis and all


def test_reinforce_baseline_takes_no_part_in_the_gradient():
    """A baseline computed from the parameters themselves (a learned b sharing q's weights): θ̄ is still
    (f(z) − b)·∇_θ log q(z), with b's value, and b gets nothing (through b it would get −log q(z)·∇b, mean ≠ 0)."""
    theta = mv.tensor(THETA, requires_grad=True)
    scale = mv.tensor(np.array(0.7), requires_grad=True)
    baseline = (theta * scale).sum(axis=-1)  # (2,), a function of θ but not of z
    f, seen = recorder(lambda z: (z * C).sum(axis=-1) ** 2)
    out = E.reinforce(f, OneHotCategorical(logits=theta), rng=Generator(11), baseline=baseline)
    w = np.array([1.0, -0.5])
    (out * w).sum().backward()
    z, b = seen[0], 0.7 * THETA.sum(-1)
    fz = (z @ C) ** 2
    np.testing.assert_allclose(out.numpy(), fz, rtol=1e-12)
    np.testing.assert_allclose(theta.grad, (w * (fz - b))[:, None] * (z - softmax(THETA)), rtol=1e-12)
    assert scale.grad is None


def test_reinforce_refuses_values_with_more_axes_than_the_samples_batch():
    # four rows of four categories: f forgot to sum z·c over the categories, and log q (4,) would broadcast along them
    q = OneHotCategorical(logits=mv.tensor(np.zeros((4, 4)), requires_grad=True))
    with pytest.raises(ValueError, match=r"reinforce: f returned values of shape \(4, 4\); .* \(4,\)"):
        E.reinforce(lambda z: z * C, q, rng=Generator(0))
