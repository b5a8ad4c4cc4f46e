"""Undoing broadcasting, and axis arguments in one place."""
import operator


def unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``: the VJP of broadcasting ``shape`` to ``g.shape``.

    Leading axes that broadcasting added are summed away; axes of size 1 in ``shape``
    are summed with keepdims (one reduction, as Chainer's ``sum_to``).
    """
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def normalize_axis(axis, ndim, shape=None):
    """``axis`` (None, an integer or a tuple or list of them, negatives allowed) as a sorted tuple of
    non-negative ints, or a clear error naming the axis and the shape."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = [axis_index(a, ndim, shape) for a in axes]
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(sorted(out))


def axis_index(a, ndim, shape=None):
    """One axis as an int in [0, ndim): any integer NumPy and PyTorch take (a Python int, numpy.int64: what
    ``operator.index`` accepts) but a bool, negatives counting from the end; else an error naming it."""
    if isinstance(a, bool):  # an int to operator.index, but axis=True is a slip (NumPy and PyTorch refuse it)
        raise TypeError(f"axis {a!r} is not an integer")
    try:
        i = operator.index(a)
    except TypeError:
        raise TypeError(f"axis {a!r} is not an integer") from None
    if not -ndim <= i < ndim:
        raise ValueError(f"axis {a!r} is out of range for a tensor of shape {shape} ({ndim} dimensions)")
    return i % ndim


def expand_reduced(g, shape, axes, keepdims):
    """Re-insert the reduced ``axes`` (size 1) into ``g`` so it broadcasts against ``shape``."""
    if keepdims:
        return g
    full = list(shape)
    for a in axes:
        full[a] = 1
    return g.reshape(full)
