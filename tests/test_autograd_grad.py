"""minivae.autograd.grad (torch.autograd.grad): the gradients returned equal backward()'s (and torch's), no .grad is
touched, inputs may be intermediate tensors, only the VJPs between the inputs and the outputs run, and what it cannot
do is refused by name."""
import numpy as np
import pytest

import minivae as mv
from minivae import ops


def graph(seed=0):
    """A small MLP loss with a softmax (so an all-ones upstream gradient would hide a wrong VJP): leaves w1, w2, x."""
    rng = np.random.default_rng(seed)
    x = mv.tensor(rng.normal(size=(5, 4)), requires_grad=True)
    w1 = mv.tensor(rng.normal(size=(4, 6)), requires_grad=True)
    w2 = mv.tensor(rng.normal(size=(6, 3)), requires_grad=True)
    h = ops.tanh(x @ w1)
    p = ops.softmax(h @ w2, axis=-1)
    target = rng.normal(size=(5, 3))
    loss = ((p - target) ** 2).sum()
    return x, w1, w2, h, p, loss, target


def test_grad_equals_backwards_gradients_and_touches_no_grad():
    x, w1, w2, h, p, loss, _ = graph()
    w2.grad = np.full((6, 3), 7.0)  # a .grad already there stays as it is
    gx, gw1 = mv.autograd.grad(loss, [x, w1], retain_graph=True)
    assert x.grad is None and w1.grad is None and np.all(w2.grad == 7.0)
    assert not gx.requires_grad and gx.shape == x.shape
    w2.grad = None
    loss.backward()
    np.testing.assert_array_equal(gx.numpy(), x.grad)
    np.testing.assert_array_equal(gw1.numpy(), w1.grad)


def test_an_intermediate_input_gets_the_gradient_of_the_outputs_in_it():
    """∂loss/∂h through a second matmul and the softmax: its VJP written out in NumPy; and with x, which h also feeds,
    in the same call: h's ḡ is found and still passed on to x."""
    x, w1, w2, h, p, loss, target = graph(1)
    gh, gx = mv.autograd.grad(loss, (h, x))
    pd = p.numpy()
    gp = 2 * (pd - target)
    gz = pd * (gp - (gp * pd).sum(axis=-1, keepdims=True))  # softmax's VJP
    want_h = gz @ w2.numpy().T
    np.testing.assert_allclose(gh.numpy(), want_h, rtol=1e-12)
    want_x = (want_h * (1 - h.numpy() ** 2)) @ w1.numpy().T
    np.testing.assert_allclose(gx.numpy(), want_x, rtol=1e-12)


def test_grad_outputs_weigh_several_outputs_summed():
    rng = np.random.default_rng(3)
    a = mv.tensor(rng.normal(size=(3, 2)), requires_grad=True)
    y1, y2 = ops.exp(a), ops.sin(a).sum(axis=0)
    g1, g2 = rng.normal(size=(3, 2)), rng.normal(size=(2,))
    (ga,) = mv.autograd.grad([y1, y2], [a], grad_outputs=[g1, g2])
    np.testing.assert_allclose(ga.numpy(), g1 * np.exp(a.numpy()) + g2 * np.cos(a.numpy()), rtol=1e-14)
    with pytest.raises(RuntimeError, match="shape"):
        mv.autograd.grad(y1, a)  # a tensor of 6 values needs its ḡ


def test_only_the_vjps_between_inputs_and_outputs_run():
    class Untouchable(mv.Function):
        def forward(ctx, x):
            return x * 2

        def backward(ctx, g):
            raise AssertionError("this VJP is not between the inputs and the outputs")

    a = mv.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = mv.tensor(np.array([3.0, -1.0]), requires_grad=True)
    y = (Untouchable.apply(a) * b).sum()
    (gb,) = mv.autograd.grad(y, b)
    np.testing.assert_array_equal(gb.numpy(), [2.0, 4.0])


def test_what_grad_cannot_do_is_refused_by_name():
    a = mv.tensor(np.array([1.0, 2.0]), requires_grad=True)
    b = mv.tensor(np.array([3.0]), requires_grad=True)
    c = mv.tensor(np.array([1.0, 1.0]))
    y = (a * a).sum()
    with pytest.raises(RuntimeError, match="input 1 does not require grad"):
        mv.autograd.grad(y, [a, c])
    with pytest.raises(RuntimeError, match="input 1 was not used.*allow_unused=True"):
        mv.autograd.grad(y, [a, b], retain_graph=True)
    ga, gb = mv.autograd.grad(y, [a, b], allow_unused=True, retain_graph=True)
    np.testing.assert_array_equal(ga.numpy(), [2.0, 4.0])
    assert gb is None
    with pytest.raises(NotImplementedError, match="create_graph"):
        mv.autograd.grad(y, a, create_graph=True)
    mv.autograd.grad(y, a)  # without retain_graph the residuals go: a second pass is refused, as backward's
    with pytest.raises(RuntimeError, match="a second time"):
        mv.autograd.grad(y, a)


def test_matches_torch_autograd_grad_under_the_torch_names():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    xs, ws, g = rng.normal(size=(4, 3)), rng.normal(size=(3, 3)), rng.normal(size=(4, 3))
    results = []
    for lib in (mv, torch):
        x, w = lib.tensor(xs, requires_grad=True), lib.tensor(ws, requires_grad=True)
        h = lib.sigmoid(x @ w) if lib is torch else ops.sigmoid(x @ w)
        out = lib.autograd.grad(h * h, (x, w, h), grad_outputs=lib.tensor(g))
        results.append([t.detach().numpy() for t in out])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
