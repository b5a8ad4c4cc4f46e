"""The shared hypothesis strategies draw what they promise, at every size (hypothesis 6.170 once failed inside
``shapes(0, 2, empty=True)`` with an internal assertion, where a filter chose the shapes with an axis to empty)."""
import numpy as np
import pytest
from hypothesis import given, settings

from tests.strategies import broadcastable_pair, shapes


@pytest.mark.parametrize("low, high", [(0, 1), (0, 2), (1, 2), (0, 3)])
def test_shapes_with_an_empty_batch_draw_every_kind_at_every_size(low, high):
    seen = []

    @settings(max_examples=150, database=None, derandomize=True)
    @given(shapes(low, high, empty=True))
    def draw(shape):
        assert low <= len(shape) <= high and all(0 <= n <= 4 for n in shape)
        assert 0 not in shape[1:]  # only the batch axis may be empty
        seen.append(shape)
    draw()
    assert any(s and s[0] == 0 for s in seen) and any(s and s[0] > 0 for s in seen)


def test_broadcastable_pairs_of_two_axes_broadcast():
    @settings(max_examples=150, database=None, derandomize=True)
    @given(broadcastable_pair(max_ndim=2))
    def draw(pair):
        np.broadcast_shapes(*pair)
    draw()
