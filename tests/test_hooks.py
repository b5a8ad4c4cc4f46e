"""Tensor.register_hook (torch's): a hook sees a tensor's whole gradient once, before it is stored or passed on; what
it returns replaces the gradient downstream; remove() takes it off; and what a hook cannot do is refused by name."""
import numpy as np
import pytest

import minivae as mv
from minivae import ops


def test_a_hook_sees_the_whole_gradient_once_and_its_result_flows_on():
    rng = np.random.default_rng(0)
    x = mv.tensor(rng.normal(size=(3, 4)), requires_grad=True)
    w = mv.tensor(rng.normal(size=(4, 2)), requires_grad=True)
    h = ops.tanh(x @ w)  # h feeds two terms: its hook must see the sum of both, once
    loss = (h * h).sum() + (h * 3.0).sum()
    seen = []
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    h.retain_grad()
    loss.backward(retain_graph=True)
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], 2 * h.numpy() + 3.0, rtol=1e-15)
    np.testing.assert_array_equal(h.grad, seen[0])
    plain = x.grad.copy()
    # a hook that scales h's gradient by a mask scales what reaches x and w through h (the chain rule after it)
    mask = rng.normal(size=(3, 2))
    x.grad, w.grad, h.grad = None, None, None
    h.register_hook(lambda g: g * mv.tensor(mask))
    loss.backward()
    gz = (2 * h.numpy() + 3.0) * mask * (1 - h.numpy() ** 2)
    np.testing.assert_allclose(x.grad, gz @ w.numpy().T, rtol=1e-13)
    np.testing.assert_allclose(h.grad, (2 * h.numpy() + 3.0) * mask, rtol=1e-15)  # .grad holds the hooked gradient
    assert not np.allclose(x.grad, plain)


def test_hooks_run_in_order_on_leaves_and_in_autograd_grad_and_remove_takes_one_off():
    a = mv.tensor(np.array([1.0, -2.0]), requires_grad=True)
    first = a.register_hook(lambda g: g + 1.0)
    a.register_hook(lambda g: g * 10.0)  # after the first: (ḡ + 1)·10
    (a * a).sum().backward()
    np.testing.assert_array_equal(a.grad, (2 * np.array([1.0, -2.0]) + 1) * 10)
    (got,) = mv.autograd.grad((a * a).sum(), a)
    np.testing.assert_array_equal(got.numpy(), (2 * np.array([1.0, -2.0]) + 1) * 10)
    first.remove()
    first.remove()  # (a second remove does nothing)
    (got,) = mv.autograd.grad((a * a).sum(), a)
    np.testing.assert_array_equal(got.numpy(), 2 * np.array([1.0, -2.0]) * 10)


def test_what_a_hook_cannot_do_is_refused_by_name():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mv.tensor(np.ones(2)).register_hook(lambda g: g)
    a = mv.tensor(np.ones(3), requires_grad=True)
    a.register_hook(lambda g: mv.tensor(np.ones(2)))
    with pytest.raises(RuntimeError, match=r"hook returned a gradient of shape \(2,\) for a tensor of shape \(3,\)"):
        (a * 2.0).sum().backward()


def test_a_step_plan_refuses_a_hook_it_could_not_replay():
    from minivae.models import GaussianVAE
    from minivae.optim import Adam
    from minivae.plan import PlanError
    from minivae.random import Generator
    model, rng = GaussianVAE(16, (8,), 2, rng=Generator(0)), Generator(1)
    model.encoder.parameters()[0].register_hook(lambda g: g * 0.5)
    x = mv.tensor((np.random.default_rng(0).random((4, 16)) < 0.5).astype(np.float32))
    with pytest.raises(PlanError, match="hook"):
        mv.compile_step(model, Adam(model.parameters()), lambda x: model.loss(x, rng), x)
