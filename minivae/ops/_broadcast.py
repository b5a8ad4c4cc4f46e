"""Undoing broadcasting, and axis arguments in one place."""


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
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of
    non-negative ints, or a clear error naming the axis and the shape."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, int) or not -ndim <= a < ndim:
            raise ValueError(f"axis {a!r} is out of range for a tensor of shape {shape} ({ndim} dimensions)")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(sorted(out))


def expand_reduced(g, shape, axes, keepdims):
    """Re-insert the reduced ``axes`` (size 1) into ``g`` so it broadcasts against ``shape``."""
    if keepdims:
        return g
    full = list(shape)
    for a in axes:
        full[a] = 1
    return g.reshape(full)
