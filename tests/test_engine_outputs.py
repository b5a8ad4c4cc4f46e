"""Ops of several outputs and backward over several roots (engine.backward, as torch.autograd.backward):
a node's VJP runs once, after every use of every output, with None for an output no gradient reached;
one backward over several roots equals the sum of separate ones. And ops.reparameterize_kl, the first such
op, gives the numbers of reparameterize and kl_standard_normal apart."""
import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae._backend import numba_enabled, use_numba
from minivae.engine import Function


class Twice(Function):
    """(2x, 3x); counts its VJP calls and records what they were given."""
    calls = []

    def forward(ctx, x):
        return 2 * x, 3 * x

    def backward(ctx, g):
        Twice.calls.append(tuple(None if gk is None else gk.copy() for gk in g))
        g2, g3 = (np.zeros(()) if gk is None else gk for gk in g)
        return (2 * g2 + 3 * g3,)


@pytest.fixture(autouse=True)
def _reset():
    Twice.calls.clear()


def test_both_outputs_reach_one_vjp_call_after_all_their_uses():
    x = mv.tensor(np.array([1.0, -2.0]), requires_grad=True)
    a, b = Twice.apply(x)
    # b's uses come through a chain, so in the walk b's node comes after a's, and a before b's consumers
    c = b
    for _ in range(5):
        c = c * 1.0 + 0.0
    loss = (a * a).sum() + (c * b).sum()
    loss.backward()
    assert len(Twice.calls) == 1
    ga, gb = Twice.calls[0]
    np.testing.assert_array_equal(ga, 2 * (2 * x.data))
    np.testing.assert_array_equal(gb, 2 * (3 * x.data))
    np.testing.assert_array_equal(x.grad, 2 * ga + 3 * gb)   # d/dx (4x² + 9x²) = 26x


def test_an_output_no_gradient_reached_is_none():
    x = mv.tensor(np.array([1.0, 2.0]), requires_grad=True)
    a, b = Twice.apply(x)
    (b * b).sum().backward()
    assert len(Twice.calls) == 1 and Twice.calls[0][0] is None
    np.testing.assert_array_equal(x.grad, 3 * 2 * 3 * x.data)


def test_outputs_are_plain_tensors_without_grad():
    with mv.no_grad():
        a, b = Twice.apply(mv.tensor(np.ones(2), requires_grad=True))
    assert not a.requires_grad and not b.requires_grad and a._ctx is None


def test_backward_over_several_roots_is_the_sum_of_separate_passes():
    rng = np.random.default_rng(0)
    xv, ga, gb = (rng.normal(size=3) for _ in range(3))
    x = mv.tensor(xv, requires_grad=True)
    a, b = Twice.apply(x)
    mv.backward([a, b], [ga, gb])
    joint = x.grad.copy()
    assert len(Twice.calls) == 1                       # the shared node ran once
    x.grad = None
    a, b = Twice.apply(x)
    a.backward(ga, retain_graph=True)
    b.backward(gb)
    np.testing.assert_allclose(joint, x.grad, rtol=1e-15)
    np.testing.assert_allclose(joint, 2 * ga + 3 * gb, rtol=1e-15)
    with pytest.raises(ValueError, match="2 tensors but 1 gradients"):
        mv.backward([a, b], [ga])


def test_a_released_multi_output_node_refuses_a_second_pass():
    x = mv.tensor(np.ones(2), requires_grad=True)
    a, b = Twice.apply(x)
    mv.backward([a, b], [np.ones(2), np.ones(2)])
    with pytest.raises(RuntimeError, match="a second time"):
        a.backward(np.ones(2))


@pytest.mark.parametrize("used", ["both", "z", "kl"])
def test_reparameterize_kl_is_the_two_ops_bit_for_bit(used):
    """On the NumPy path, where the two ops run the same formulas (with Numba they run its kernels)."""
    rng = np.random.default_rng(1)
    mu, lv, eps = (rng.normal(size=(6, 4)).astype(np.float32) for _ in range(3))
    gz, gkl = (rng.normal(size=(6, 4)).astype(np.float32) for _ in range(2))

    def run(joint):
        m, v = mv.tensor(mu, requires_grad=True), mv.tensor(lv, requires_grad=True)
        z, kl = ops.reparameterize_kl(m, v, eps) if joint else (ops.reparameterize(m, v, eps), ops.kl_standard_normal(m, v))
        roots = {"both": ([z, kl], [gz, gkl]), "z": ([z], [gz]), "kl": ([kl], [gkl])}[used]
        mv.backward(*roots)
        return z.data, kl.data, m.grad, v.grad
    with use_numba(False):
        pairs = list(zip(run(True), run(False)))
    for a, b in pairs:
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)


def test_reparameterize_kl_draws_what_generator_normal_draws():
    """ops.reparameterize_kl(μ, v, rng=rng): the same sample, KL and gradients as at rng.normal's next draw, bit for bit,
    and the counter left where that draw leaves it (an odd count of values ends on half a Box–Muller pair); one of
    the noise and the Generator, not both or neither."""
    from minivae.random import Generator
    rng = np.random.default_rng(2)
    mu, lv, gz, gkl = (rng.normal(size=(3, 5)).astype(np.float32) for _ in range(4))
    results = []
    for drawn in (True, False):
        gen = Generator(7, counter=3)
        m, v = mv.tensor(mu, requires_grad=True), mv.tensor(lv, requires_grad=True)
        z, kl = ops.reparameterize_kl(m, v, rng=gen) if drawn else ops.reparameterize_kl(m, v, gen.normal((3, 5)))
        mv.backward([z, kl], [gz, gkl])
        results.append((z.data, kl.data, m.grad, v.grad, gen.counter))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    assert results[0][-1] == 3 + 4  # 15 values: 8 pairs, 16 words, 4 blocks
    with pytest.raises(ValueError, match="not both or neither"):
        ops.reparameterize_kl(mv.tensor(mu), mv.tensor(lv))
    with pytest.raises(ValueError, match="not both or neither"):
        ops.reparameterize_kl(mv.tensor(mu), mv.tensor(lv), mu, rng=Generator(0))


@pytest.mark.parametrize("used", ["both", "sample", "kl"])
@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("numba", [False, True])
def test_gumbel_softmax_kl_is_the_two_ops_bit_for_bit(used, hard, numba):
    """ops.gumbel_softmax_kl(l, l_p, rng): the sample of gumbel_softmax(l, rng) and categorical_kl(l, l_p), their
    gradients for the logits and a learnable prior's (broadcast: one row for every variable; zeros when only the
    sample takes a gradient), and the counter, bit for bit, on either CPU path (the node runs the two ops' own
    forwards and VJPs there)."""
    from minivae.random import Generator
    if numba and not numba_enabled():
        pytest.skip("Numba is not installed or is disabled")
    rng = np.random.default_rng(3)
    logits, prior = rng.normal(size=(6, 3, 5)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)
    gy, gkl = rng.normal(size=(6, 3, 5)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)

    def run(joint):
        gen = Generator(11, counter=2)
        l, p = mv.tensor(logits, requires_grad=True), mv.tensor(prior, requires_grad=True)
        if joint:
            y, kl = ops.gumbel_softmax_kl(l, p, gen, temperature=0.6, hard=hard)
        else:
            y, kl = ops.gumbel_softmax(l, gen, temperature=0.6, hard=hard), ops.categorical_kl(l, p)
        roots = {"both": ([y, kl], [gy, gkl]), "sample": ([y], [gy]), "kl": ([kl], [gkl])}[used]
        mv.backward(*roots)
        return y.data, kl.data, l.grad, np.zeros_like(prior) if p.grad is None else p.grad, np.array(gen.counter)
    with use_numba(numba):
        pairs = list(zip(run(True), run(False)))
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)
    assert pairs[-1][0] == 2 + 23  # 90 values: 23 blocks of 4 words
