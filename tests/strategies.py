"""Hypothesis strategies: shapes (0-d, size-1 axes, zero-size batches, broadcasting pairs and
triples), axes, and random generators from which each test draws values in its op's valid domain."""
import numpy as np
from hypothesis import strategies as st

dims = st.integers(1, 4)


def shapes(min_ndim=0, max_ndim=3, empty=False):
    """Shapes of min_ndim…max_ndim axes of size 1…4; with ``empty`` the first axis (a batch) may be 0."""
    out = st.lists(dims, min_size=min_ndim, max_size=max_ndim).map(tuple)
    if empty and max_ndim >= 1:
        # drawn with an axis to empty, not filtered to one: hypothesis 6.170's filter of a list of at most 2 elements
        # trips an internal assertion of its own (forced boolean of probability 0)
        batch = st.lists(dims, min_size=max(min_ndim, 1), max_size=max_ndim).map(lambda s: (0, *s[1:]))
        out = st.one_of(out, batch)
    return out


rngs = st.integers(0, 2**32 - 1).map(np.random.default_rng)


@st.composite
def broadcastable(draw, n, max_ndim=3, empty=False):
    """``n`` shapes that broadcast together: trailing parts of one shape, some axes set to 1
    (with ``empty``, that shape's batch axis may be 0)."""
    full = draw(shapes(0, max_ndim, empty=empty))

    def part():
        nd = draw(st.integers(0, len(full)))
        return tuple(1 if draw(st.booleans()) else n for n in full[len(full) - nd:])
    return tuple(part() for _ in range(n))


def broadcastable_pair(max_ndim=3, empty=True):
    return broadcastable(2, max_ndim, empty)


@st.composite
def axes(draw, ndim):
    """None, one axis (maybe negative) or a tuple of distinct axes of an ``ndim``-D array."""
    if ndim == 0:
        return draw(st.sampled_from([None, ()]))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return tuple(draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)))


def away_from_zero(rng, shape, low=0.1, high=2.0):
    """Values with |x| in [low, high] and random sign: clear of the kink at 0."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)
