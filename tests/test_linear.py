"""ops.linear, the dense layer as one node, and its use by nn.Linear and Sequential (Linear then ReLU):
the same numbers as matmul, add and relu applied one after another, values and every gradient, but a graph
that keeps no product and no pre-activation alive. (Its float64 gradcheck is in test_ops_gradcheck.py.)"""
import numpy as np
import pytest

import minivae as mv
from minivae import nn, ops
from minivae.random import Generator


def _grads(fn, arrays, upstream):
    tensors = [mv.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*tensors)
    y.backward(upstream)
    return y.data, [t.grad for t in tensors]


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("xshape", [(5,), (7, 5), (2, 3, 5)])
def test_linear_is_matmul_add_relu_bit_for_bit(activation, xshape):
    rng = np.random.default_rng(len(xshape))
    x, w, b = (rng.normal(size=s).astype(np.float32) for s in (xshape, (5, 4), (4,)))
    upstream = rng.normal(size=xshape[:-1] + (4,)).astype(np.float32)

    def composed(x, w, b):
        p = ops.matmul(x, w) + b
        return ops.relu(p) if activation else p
    y1, g1 = _grads(lambda *t: ops.linear(*t, activation=activation), [x, w, b], upstream)
    y2, g2 = _grads(composed, [x, w, b], upstream)
    assert y1.dtype == np.float32
    np.testing.assert_array_equal(y1, y2)
    for a, c in zip(g1, g2):
        np.testing.assert_array_equal(a, c)
    if activation:
        assert (y1 == 0).any() and (y1 > 0).any()   # both sides of the kink are exercised


def test_linear_refuses_what_does_not_fit():
    x, w, b = np.ones((3, 5)), np.ones((5, 4)), np.ones(4)
    for args in ((np.ones((3, 6)), w, b), (x, w, np.ones(5)), (x, np.ones(5), b), (np.float64(1), w, b)):
        with pytest.raises(ValueError, match="linear: .* do not fit"):
            ops.linear(*args)
    with pytest.raises(ValueError, match="activation must be None or 'relu'"):
        ops.linear(x, w, b, activation="tanh")


def _held_bytes(out):
    """Bytes of the arrays the graph behind ``out`` keeps alive (every tensor reachable from it)."""
    seen, stack, total = set(), [out], 0
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += t.data.nbytes
        stack.extend(t._parents)
    return total


def test_an_mlp_graph_keeps_only_the_layer_outputs():
    rng = Generator(0)
    mlp = nn.MLP((30, 20, 10, 3), rng=rng)
    x = mv.tensor(np.ones((8, 30), np.float32))
    y = mlp(x)
    params = sum(p.data.nbytes for p in mlp.parameters())
    outputs = 4 * 8 * (30 + 20 + 10 + 3)          # the input and each layer's output, float32
    assert _held_bytes(y) == params + outputs


def test_sequential_fuses_linear_then_relu_with_the_same_numbers():
    rng = Generator(3)
    layers = [nn.Linear(6, 5, rng=rng), nn.ReLU(), nn.Linear(5, 4, rng=rng), nn.Tanh(), nn.Linear(4, 2, rng=rng)]
    seq = nn.Sequential(*layers)
    x = np.random.default_rng(1).normal(size=(9, 6)).astype(np.float32)
    g = np.random.default_rng(2).normal(size=(9, 2)).astype(np.float32)
    y = seq(mv.tensor(x))
    y.backward(g)
    fused = [p.grad.copy() for p in seq.parameters()]
    for p in seq.parameters():
        p.grad = None
    h = mv.tensor(x)
    for layer in layers:   # unfused: each module on its own
        h = layer(h)
    h.backward(g)
    np.testing.assert_array_equal(y.data, h.data)
    for a, p in zip(fused, seq.parameters()):
        np.testing.assert_array_equal(a, p.grad)
