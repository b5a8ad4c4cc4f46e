"""The engine refuses a VJP that drops, misshapes or mistypes a gradient, naming the op and the input."""
import numpy as np
import pytest

import minivae as mv
from minivae import ops


def op(backward, n_inputs=2, nondifferentiable_inputs=()):
    """An op z = x + y (+ …) whose VJP is ``backward(g)``."""
    class Planted(mv.Function):
        name = "planted"

        def forward(ctx, *xs):
            return sum(xs)

        def backward(ctx, g):
            return backward(g)
    Planted.nondifferentiable_inputs = nondifferentiable_inputs
    return Planted.apply


def leaves(*shapes):
    return [mv.tensor(np.ones(s), requires_grad=True) for s in shapes]


def test_too_few_gradients_is_an_error_naming_the_op():
    x, y = leaves(3, 3)
    with pytest.raises(RuntimeError, match=r"planted\.backward returned 1 gradients for 2 inputs"):
        op(lambda g: (g,))(x, y).sum().backward()


def test_none_for_an_input_that_requires_a_gradient_is_an_error_naming_the_input():
    x, y = leaves(3, 3)
    with pytest.raises(RuntimeError, match=r"planted\.backward returned no gradient for input 1"):
        op(lambda g: (g, None))(x, y).sum().backward()


def test_none_is_fine_for_a_declared_nondifferentiable_input_or_one_that_needs_none():
    x, y = leaves(3, 3)
    op(lambda g: (g, None), nondifferentiable_inputs=(1,))(x, y).sum().backward()
    assert y.grad is None and np.array_equal(x.grad, np.ones(3))
    x, = leaves(3)
    op(lambda g: (g, None))(x, mv.tensor(np.ones(3))).sum().backward()
    assert np.array_equal(x.grad, np.ones(3))


def test_a_gradient_of_the_wrong_shape_is_an_error():
    x, y = leaves(3, (1,))
    with pytest.raises(RuntimeError, match=r"planted\.backward returned a gradient of shape \(3,\) for input 1 of shape \(1,\)"):
        op(lambda g: (g, g))(x, y).sum().backward()


def test_a_non_floating_gradient_is_an_error():
    x, y = leaves(3, 3)
    with pytest.raises(RuntimeError, match=r"planted\.backward returned a int64 gradient for input 0"):
        op(lambda g: (np.ones(3, dtype=np.int64), g))(x, y).sum().backward()


def test_the_registry_lists_each_ops_nondifferentiable_inputs():
    assert set(ops.NONDIFFERENTIABLE_INPUTS) == set(ops.OPS)
    assert ops.NONDIFFERENTIABLE_INPUTS["where"] == (0,)            # the mask
    assert ops.NONDIFFERENTIABLE_INPUTS["reparameterize"] == (2,)   # the noise
    assert ops.NONDIFFERENTIABLE_INPUTS["categorical_kl"] == ()     # a learnable prior gets a gradient
    for name, cls in ops.OPS.items():
        assert cls.nondifferentiable_inputs == ops.NONDIFFERENTIABLE_INPUTS[name]


def test_categorical_kl_gives_a_learnable_prior_its_gradient():
    rng = np.random.default_rng(0)
    logits = mv.tensor(rng.normal(size=(5, 4)), requires_grad=True)
    prior = mv.tensor(rng.normal(size=4), requires_grad=True)
    w = rng.normal(size=5)
    (ops.categorical_kl(logits, prior) * w).sum().backward()
    q = np.exp(logits.data) / np.exp(logits.data).sum(-1, keepdims=True)
    p = np.exp(prior.data) / np.exp(prior.data).sum()
    # ∂/∂l_p Σ_k q_k (log q_k − log p_k) = −(q − p): log p_k = l_p,k − log Σ e^{l_p}
    np.testing.assert_allclose(prior.grad, (w[:, None] * (p - q)).sum(0), rtol=1e-12)


def test_reparameterize_broadcasts_log_var_in_backward():
    # the bug: v̄ was summed to the noise's shape (4, 3), not log_var's (1, 3)
    rng = np.random.default_rng(1)
    mu, log_var = mv.tensor(rng.normal(size=(4, 3)), requires_grad=True), mv.tensor(rng.normal(size=(1, 3)), requires_grad=True)
    eps, w = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    (ops.reparameterize(mu, log_var, eps) * w).sum().backward()
    np.testing.assert_allclose(log_var.grad, (0.5 * w * np.exp(0.5 * log_var.data) * eps).sum(0, keepdims=True), rtol=1e-12)
    np.testing.assert_array_equal(mu.grad, w)
