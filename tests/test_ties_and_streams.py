"""Conventions that gradchecks cannot see, because they avoid kinks and fixed noise: how ties share
a gradient or pick an index, and that consecutive draws never reuse a word of the Philox stream."""
import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae._backend import use_numba
from minivae.random import Generator


@pytest.mark.parametrize("op,gx,gy", [(ops.maximum, [1.0, 4.0, 0.0], [1.0, 0.0, 8.0]),
                                      (ops.minimum, [1.0, 0.0, 8.0], [1.0, 4.0, 0.0])])
def test_maximum_and_minimum_split_a_tie_evenly(op, gx, gy):
    # at x = y (the first entry) the one-sided derivatives are 0 and 1: as PyTorch, each input gets ½
    x, y = mv.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True), mv.tensor(np.array([1.0, 0.0, 5.0]), requires_grad=True)
    (op(x, y) * np.array([2.0, 4.0, 8.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, gx)
    np.testing.assert_array_equal(y.grad, gy)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hard_gumbel_softmax_ties_go_to_the_lowest_index(fused, dtype):
    """Logits of 1e30 swallow the noise (an ulp of 1e30 exceeds any Gumbel draw): exact ties in y."""
    x = np.full((4, 7), -1e30, dtype)
    x[:, [2, 5]] = 1e30
    with use_numba(fused):
        out = ops.gumbel_softmax(mv.tensor(x), Generator(5), temperature=1.0, hard=True).numpy()
    np.testing.assert_array_equal(out, np.eye(7, dtype=dtype)[[2] * 4])


@pytest.mark.parametrize("n", [1, 5, 6, 7, 8])
def test_consecutive_draws_start_at_the_next_unused_block(n):
    g = Generator(3)
    first, second = g.words(n), g.words(n)
    blocks = -(-n // 4)                       # each draw takes whole 4-word Philox blocks
    stream = Generator(3).words(8 * blocks)
    np.testing.assert_array_equal(first, stream[:n])
    np.testing.assert_array_equal(second, stream[4 * blocks:4 * blocks + n])
    assert g.counter == 2 * blocks
