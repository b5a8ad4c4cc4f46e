"""Undoing broadcasting, broadcasting as the kernels read it, and axis arguments in one place."""
import math
import operator

from minivae._backend import get_array_module


def periodic(a, shape):
    """(a as a flat C-contiguous array, period) such that element i of ``shape`` (row-major) is a[i mod period]: the
    layout in which the elementwise kernels read a broadcast operand. An array broadcast over leading axes only (a batch
    of parameters under a sample shape, a prior's logits per latent variable) is read as it is, period = a.size, with no
    copy; any other broadcast is written out to ``shape`` first."""
    xp = get_array_module(a)
    dims = tuple(a.shape)
    while dims and dims[0] == 1:
        dims = dims[1:]
    if dims == tuple(shape[len(shape) - len(dims):]) and len(dims) <= len(shape):
        return _flat(xp, a), max(a.size, 1)
    return _flat(xp, xp.broadcast_to(a, shape)), max(math.prod(shape), 1)


def _flat(xp, a):
    return (a if a.flags.c_contiguous else xp.ascontiguousarray(a)).reshape(-1)


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
