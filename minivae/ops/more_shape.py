"""Ops that move, repeat, mask or pick elements: NumPy's flip, roll, tile, tril/triu, diagonal, take_along_axis and
take (torch's flip, roll, repeat/tile, tril/triu, diagonal, gather/take_along_dim and index_select/take), each with its
VJP; trace, gather, index_select and masked_fill are compositions of them."""
import builtins
import collections
import operator

import numpy

from minivae.engine import Function, Tensor, as_tensor, index_on
from minivae.ops._broadcast import axis_index, normalize_axis
from minivae.ops._registry import register


def _axes(axis, ndim, shape, who):
    """``axis`` (an int or a sequence of them) as a tuple of distinct non-negative axes, or an error naming ``who``."""
    try:
        return normalize_axis(axis, ndim, shape)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{who}: {e}") from None


@register("flip")
class Flip(Function):
    """z = x reversed along ``axis`` (all axes when None, as numpy.flip);  x̄ = ḡ reversed along the same axes.
    A copy, as torch.flip's (NumPy's is a view)."""

    def forward(ctx, x, axis=None):
        axes = _axes(axis, x.ndim, x.shape, "flip")
        ctx.save(axes=axes)
        return ctx.xp.flip(x, axes).copy() if axes else x.copy()

    def backward(ctx, g):
        return ctx.xp.flip(g, ctx.axes) if ctx.axes else g


@register("roll")
class Roll(Function):
    """z = x shifted by ``shift`` places along ``axis`` (numpy.roll / torch.roll: what falls off one end comes back at
    the other; axis None rolls the flattened x);  x̄ = ḡ rolled back, by −shift along the same axes."""

    def forward(ctx, x, shift=0, axis=None):
        ctx.save(shift=shift, axis=axis)
        return ctx.xp.roll(x, shift, axis)

    def backward(ctx, g):
        back = tuple(-s for s in ctx.shift) if isinstance(ctx.shift, tuple) else -ctx.shift
        return ctx.xp.roll(g, back, ctx.axis)


@register("tile")
class Tile(Function):
    """z = x repeated ``reps[d]`` times along each axis d, as numpy.tile (torch.tile; torch.Tensor.repeat is this):
    reps shorter than x.ndim are padded with leading 1s, x with leading size-1 axes where reps is longer;
    x̄ = Σ over the copies of ḡ: ḡ viewed as (r₀, s₀, r₁, s₁, …) and summed over the r axes."""

    def forward(ctx, x, reps=()):
        d = builtins.max(len(reps), x.ndim)
        reps = (1,) * (d - len(reps)) + tuple(reps)
        ctx.save(xshape=x.shape, padded=(1,) * (d - x.ndim) + x.shape, reps=reps)
        return ctx.xp.tile(x, reps)

    def backward(ctx, g):
        split = [n for pair in zip(ctx.reps, ctx.padded) for n in pair]
        return g.reshape(split).sum(axis=tuple(range(0, 2 * len(ctx.reps), 2))).reshape(ctx.xshape)


@register("tril")
class Tril(Function):
    """z = x with the entries above diagonal ``k`` of its last two axes set to 0 (k > 0: above the diagonal, k < 0:
    below), as numpy.tril / torch.tril;  x̄ = ḡ where kept, 0 elsewhere. A selection (not x·mask: ∞·0 is NaN)."""

    upper = False  # Triu below: the same op with the other mask

    def forward(ctx, x, k=0):
        if x.ndim < 2:
            raise ValueError(f"{ctx.name}: needs a tensor of at least 2 dimensions, not shape {x.shape}")
        xp = ctx.xp
        n, m = x.shape[-2:]
        keep = ~xp.tri(n, m, k - 1, dtype=bool) if ctx.upper else xp.tri(n, m, k, dtype=bool)
        ctx.save(keep=keep)
        return xp.where(keep, x, xp.zeros((), x.dtype))

    def backward(ctx, g):
        return ctx.xp.where(ctx.keep, g, ctx.xp.zeros((), g.dtype))


@register("triu")
class Triu(Tril):
    """z = x with the entries below diagonal ``k`` of its last two axes set to 0, as numpy.triu / torch.triu;
    x̄ = ḡ where kept, 0 elsewhere (Tril's VJP, the other mask)."""

    upper = True


@register("diagonal")
class Diagonal(Function):
    """z = the diagonal ``offset`` of the matrices along ``axis1`` and ``axis2`` (rows along axis1), as a new last axis,
    as numpy.diagonal / torch.diagonal (a copy: NumPy's is a read-only view);
    x̄ = zeros with ḡ written on that diagonal: with the two axes moved last and flattened to n·m entries, the
    diagonal is the slice start::m+1 (start = offset, or −offset·m below the main diagonal), so it is written by
    slicing, with no index array."""

    def forward(ctx, x, offset=0, axis1=0, axis2=1):
        if x.ndim < 2:
            raise ValueError(f"diagonal: needs a tensor of at least 2 dimensions, not shape {x.shape}")
        a1, a2 = (axis_index(a, x.ndim, x.shape) for a in (axis1, axis2))
        if a1 == a2:
            raise ValueError(f"diagonal: axis1 and axis2 are the same axis ({axis1}, {axis2}) of shape {x.shape}")
        ctx.save(xshape=x.shape, offset=operator.index(offset), a1=a1, a2=a2)
        return ctx.xp.diagonal(x, offset, a1, a2).copy()

    def backward(ctx, g):
        xp, (a1, a2), k = ctx.xp, (ctx.a1, ctx.a2), ctx.offset
        n, m = ctx.xshape[a1], ctx.xshape[a2]
        rest = tuple(s for i, s in enumerate(ctx.xshape) if i not in (a1, a2))
        gz = xp.zeros(rest + (n * m,), g.dtype)
        start = k if k >= 0 else -k * m
        gz[..., start:start + g.shape[-1] * (m + 1):m + 1] = g
        return xp.moveaxis(gz.reshape(rest + (n, m)), (-2, -1), (a1, a2))


def _check_index(xp, idx, size, axis, who):
    """An index array into an axis of ``size``: integers (else TypeError), within [−size, size) (else IndexError naming
    the value; checked on the CPU only: on a device it would wait for the device and copy the answer back)."""
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{who}: the index must be an integer array, not {idx.dtype}")
    if idx.size and xp is numpy:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < -size or hi >= size:
            bad = lo if lo < -size else hi
            raise IndexError(f"{who}: index {bad} is out of bounds for axis {axis} of size {size}")


def _along_axis(xp, x, idx, axis):
    """The index tuple of numpy.take_along_axis: ``idx`` along ``axis``, an arange broadcast along every other axis."""
    parts = []
    for d, n in enumerate(x.shape):
        if d == axis:
            parts.append(idx)
        else:
            shape = [1] * x.ndim
            shape[d] = n
            parts.append(xp.arange(n).reshape(shape))
    return tuple(parts)


@register("take_along_axis", nondifferentiable_inputs=(1,))
class TakeAlongAxis(Function):
    """z = x[…, idx[…], …] along ``axis``, as numpy.take_along_axis(x, idx, axis) (torch.take_along_dim; torch.gather
    without broadcasting): idx has x's number of dimensions, its other axes broadcast against x's;
    x̄ = zeros with ḡ scatter-added at those places (``xp.add.at``: an index that repeats accumulates, as it must; an
    assignment would keep one copy). idx gets no gradient."""

    def forward(ctx, x, idx, axis=0):
        if idx.ndim != x.ndim:
            raise ValueError(f"take_along_axis: the index has {idx.ndim} dimensions {idx.shape}, x has {x.ndim} "
                             f"{x.shape}: they must be equal")
        axis = axis_index(axis, x.ndim, x.shape)
        _check_index(ctx.xp, idx, x.shape[axis], axis, "take_along_axis")
        other = [n for d, n in enumerate(idx.shape) if d != axis], [n for d, n in enumerate(x.shape) if d != axis]
        try:
            numpy.broadcast_shapes(tuple(other[0]), tuple(other[1]))
        except ValueError:
            raise ValueError(f"take_along_axis: index of shape {idx.shape} does not broadcast against x of shape "
                             f"{x.shape} outside axis {axis}") from None
        where = _along_axis(ctx.xp, x, idx, axis)
        ctx.save(where=where, xshape=x.shape)
        return x[where]

    def backward(ctx, g):
        gx = ctx.xp.zeros(ctx.xshape, g.dtype)
        ctx.xp.add.at(gx, ctx.where, g)
        return gx, None


@register("take", nondifferentiable_inputs=(1,))
class Take(Function):
    """z = x's entries at ``idx`` along ``axis`` (idx of any shape, which replaces that axis), as numpy.take(x, idx,
    axis) / torch.index_select (1-D idx);  x̄ = zeros with ḡ scatter-added at ``(…, idx, …)`` (``xp.add.at``: repeated
    indices accumulate). idx gets no gradient."""

    def forward(ctx, x, idx, axis=0):
        axis = axis_index(axis, x.ndim, x.shape)
        _check_index(ctx.xp, idx, x.shape[axis], axis, "take")
        ctx.save(where=(slice(None),) * axis + (idx,), xshape=x.shape)
        return x[ctx.where]

    def backward(ctx, g):
        gx = ctx.xp.zeros(ctx.xshape, g.dtype)
        ctx.xp.add.at(gx, ctx.where, g)  # (…, idx, …): a repeated index adds each of its ḡ
        return gx, None


def _index_tensor(x, idx, who):
    """``idx`` as a tensor on x's device: a CPU index (a tensor, an array, a list) serves a tensor on a device, moved
    there once (engine.index_on, the getitem rule); one on a device indexes a tensor there only."""
    if isinstance(idx, (list, tuple)) or isinstance(idx, (int, numpy.integer)):
        idx = numpy.asarray(idx)
    if not isinstance(idx, Tensor) and not hasattr(idx, "shape"):
        raise TypeError(f"{who}: the index must be an integer tensor or array, not {type(idx).__name__}")
    return Tensor(index_on(x, idx, who))


def _tensor(x):
    return x if isinstance(x, Tensor) else as_tensor(x)


def flip(x, axis=None):
    """``x`` reversed along ``axis`` (an int or a tuple; None: every axis, as numpy.flip; torch.flip(x, dims))."""
    return Flip.apply(x, axis=axis)


def roll(x, shift, axis=None):
    """``x`` rolled by ``shift`` along ``axis`` (ints or tuples of them; None: the flattened x), as numpy.roll /
    torch.roll(x, shifts, dims)."""
    x = _tensor(x)
    if axis is not None:
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        axis = tuple(axis_index(a, x.ndim, x.shape) for a in axes) if isinstance(axis, (tuple, list)) \
            else axis_index(axis, x.ndim, x.shape)
        n_shifts = len(shift) if isinstance(shift, (tuple, list)) else 1
        if isinstance(shift, (tuple, list)) and n_shifts != len(axes):
            raise ValueError(f"roll: {n_shifts} shifts for {len(axes)} axes")
    shift = tuple(operator.index(s) for s in shift) if isinstance(shift, (tuple, list)) else operator.index(shift)
    return Roll.apply(x, shift=shift, axis=axis)


def tile(x, reps):
    """``x`` repeated ``reps`` times along each axis, as numpy.tile / torch.tile (an int: along the last axis)."""
    reps = (reps,) if isinstance(reps, (int, numpy.integer)) else tuple(reps)
    reps = tuple(operator.index(r) for r in reps)
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: negative repetitions {reps}")
    return Tile.apply(x, reps=reps)


def repeat(x, *sizes):
    """torch.Tensor.repeat(*sizes): numpy.tile with at least x.ndim sizes (NumPy's repeat is torch's
    repeat_interleave, another function)."""
    x = _tensor(x)
    if len(sizes) == 1 and not isinstance(sizes[0], (int, numpy.integer)):
        sizes = tuple(sizes[0])
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: {len(sizes)} sizes {tuple(sizes)} for a tensor of {x.ndim} dimensions {x.shape} "
                         "(give one per dimension at least; tile pads them)")
    return tile(x, sizes)


def tril(x, k=0, *, diagonal=None):
    """``x`` below and on diagonal ``k`` of its last two axes, zeros above (numpy.tril's k, torch.tril's diagonal=)."""
    return Tril.apply(x, k=operator.index(k if diagonal is None else diagonal))


def triu(x, k=0, *, diagonal=None):
    """``x`` above and on diagonal ``k`` of its last two axes, zeros below (numpy.triu's k, torch.triu's diagonal=)."""
    return Triu.apply(x, k=operator.index(k if diagonal is None else diagonal))


def diagonal(x, offset=0, axis1=0, axis2=1, *, dim1=None, dim2=None):
    """The diagonal ``offset`` of ``x`` along ``axis1``, ``axis2`` as its last axis (numpy.diagonal; torch's dim1=,
    dim2= accepted)."""
    return Diagonal.apply(x, offset=offset, axis1=axis1 if dim1 is None else dim1, axis2=axis2 if dim2 is None else dim2)


def trace(x, offset=0, axis1=0, axis2=1):
    """Σ of the diagonal ``offset`` (numpy.trace; torch.trace is the 2-D case): sum(diagonal(x)) over its last axis,
    so its VJP is theirs. An integer or bool x sums to int64 (sum's rule)."""
    from minivae.ops.reduce import sum as sum_
    return sum_(diagonal(x, offset, axis1, axis2), axis=-1)


def take_along_axis(x, idx, axis):
    """numpy.take_along_axis(x, idx, axis) (None: of the flattened x, with a 1-D idx), differentiable in x; torch's
    take_along_dim(x, idx, dim)."""
    x = _tensor(x)
    idx = _index_tensor(x, idx, "take_along_axis")
    if axis is None:
        from minivae.ops.shape import reshape
        return TakeAlongAxis.apply(reshape(x, (-1,)), reshape(idx, (-1,)), axis=0)
    return TakeAlongAxis.apply(x, idx, axis=axis)


def gather(input, dim, index):
    """torch.gather(input, dim, index): out[i][j][k] = input[index[i][j][k]][j][k] (dim = 0); index has input's number
    of dimensions and no larger a size along the others (no broadcasting, as torch's): take_along_axis of input cut to
    index's size there."""
    x = _tensor(input)
    idx = _index_tensor(x, index, "gather")
    if idx.ndim != x.ndim:
        raise ValueError(f"gather: the index has {idx.ndim} dimensions {idx.shape}, input has {x.ndim} {x.shape}")
    dim = axis_index(dim, x.ndim, x.shape)
    if any(i > n for d, (i, n) in enumerate(zip(idx.shape, x.shape)) if d != dim):
        raise ValueError(f"gather: index of shape {idx.shape} is larger than input {x.shape} outside dim {dim}")
    cut = tuple(slice(None) if d == dim or i == n else slice(0, i) for d, (i, n) in enumerate(zip(idx.shape, x.shape)))
    if any(c != slice(None) for c in cut):
        x = x[cut]
    return TakeAlongAxis.apply(x, idx, axis=dim)


def take(x, idx, axis=None):
    """numpy.take(x, idx, axis): the entries at ``idx`` along ``axis`` (None: of the flattened x, as torch.take)."""
    x = _tensor(x)
    idx = _index_tensor(x, idx, "take")
    if axis is None:
        from minivae.ops.shape import reshape
        return Take.apply(reshape(x, (-1,)), idx, axis=0)
    return Take.apply(x, idx, axis=axis)


def index_select(x, axis, index):
    """torch.index_select(input, dim, index): the entries at the 1-D ``index`` along ``axis`` (numpy.take with it)."""
    x = _tensor(x)
    idx = _index_tensor(x, index, "index_select")
    if idx.ndim > 1:
        raise ValueError(f"index_select: the index must be 1-D, not of shape {idx.shape}")
    return Take.apply(x, idx, axis=axis)


def repeat_interleave(x, repeats, axis=None):
    """torch.repeat_interleave(input, repeats, dim) / numpy.repeat(x, repeats, axis): each entry along ``axis`` (None:
    of the flattened x) ``repeats`` times, one after another ([a, b] → [a, a, b, b]).

    ``repeats`` one count for every entry (an int, or a one-element sequence or tensor): x broadcast along a new axis
    after ``axis`` and merged into it, so x̄ sums ḡ over each entry's copies (broadcast_to's VJP). One count per entry
    (a 1-D sequence, array or CPU tensor of integers ≥ 0): ``index_select`` of the repeated positions, whose VJP adds
    up the repeated indices. Counts on a device are refused: their sum, the output's length, would be a copy to the
    host (torch makes that copy); pass host integers."""
    from minivae.ops.shape import broadcast_to, reshape

    x = _tensor(x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    axis = axis_index(axis, x.ndim, x.shape)
    if isinstance(repeats, Tensor):
        if repeats.device != "cpu":
            raise ValueError(f"repeat_interleave: repeats on {repeats.device}: their sum, the output's length, would be a "
                             "copy to the host; pass host integers (a list, a NumPy array or a CPU tensor)")
        repeats = repeats.data
    counts = numpy.asarray(repeats)
    if counts.dtype.kind not in "iu" and not (counts.size == 0 and counts.dtype.kind == "f"):
        raise TypeError(f"repeat_interleave: repeats must be integers, not {counts.dtype} ({repeats!r})")
    if counts.ndim > 1 or (counts.size not in (1, x.shape[axis])):
        raise ValueError(f"repeat_interleave: {counts.size} counts of shape {counts.shape} for {x.shape[axis]} entries "
                         f"along axis {axis} (one count, or one per entry)")
    if (counts < 0).any():
        raise ValueError(f"repeat_interleave: repeats must be ≥ 0, not {counts.tolist()}")
    shape = x.shape
    if counts.size == 1:
        r = int(counts.reshape(()))
        copies = broadcast_to(reshape(x, shape[:axis + 1] + (1,) + shape[axis + 1:]),
                              shape[:axis + 1] + (r,) + shape[axis + 1:])
        return reshape(copies, shape[:axis] + (shape[axis] * r,) + shape[axis + 1:])
    return index_select(x, axis, numpy.repeat(numpy.arange(shape[axis]), counts.astype(numpy.int64)))


def masked_fill(x, mask, value):
    """``x`` with ``value`` where the bool ``mask`` (broadcast to x's shape) is true, as torch.masked_fill: ops.where,
    so x gets ḡ where the mask is false, and a tensor value the sum of ḡ where it is true. A number is taken in x's
    dtype (an integer x stays integer, 2.7 filled as 2, as torch's)."""
    from minivae.ops.arith import where
    x = _tensor(x)
    m = mask.data if isinstance(mask, Tensor) else mask
    if getattr(m, "dtype", None) != numpy.bool_:
        raise TypeError(f"masked_fill: the mask must be a bool tensor, not {getattr(m, 'dtype', type(m).__name__)}")
    try:
        fits = numpy.broadcast_shapes(m.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"masked_fill: a mask of shape {m.shape} does not broadcast to x's shape {x.shape}")
    if isinstance(value, (bool, int, float)) and x.dtype.kind != "f":  # torch's: the number in x's dtype (2.7 → 2)
        value = as_tensor(numpy.array(value).astype(x.dtype), device=x.device)
    return where(mask, value, x)


def _stable_order(xp, x, axis, descending):
    """The indices that sort ``x`` along ``axis``, equal values kept in their order (stable), NaN as the largest (as
    NumPy's and PyTorch's). Descending: the stable ascending order of x reversed along the axis, itself reversed and
    mapped back (n − 1 − j), so equal values still keep their order and NaN comes first, for every dtype (−x would
    wrap around for unsigned integers and keep NaN last)."""
    stable = {"kind": "stable"} if xp is numpy else {}  # (CuPy's argsort is always stable, and takes kind=None alone)
    if not descending:
        return xp.argsort(x, axis=axis, **stable)
    n = x.shape[axis]
    return (n - 1) - xp.flip(xp.argsort(xp.flip(x, axis), axis=axis, **stable), axis)


@register("sort")
class Sort(Function):
    """(z, i) = x sorted along ``axis`` and the indices it came from (z = take_along_axis(x, i, axis)), as torch.sort
    with stable=True (numpy.sort gives z alone); ``k``: the first k of them (torch.topk);
    x̄ = zeros with ḡ_z scatter-added at i (i holds no repeats: each entry of x gets the gradient of the place it went
    to). i is int64 and gets no gradient."""

    def forward(ctx, x, axis=-1, descending=False, k=None):
        xp = ctx.xp
        if x.ndim == 0:  # torch's: a 0-d tensor is its own sort, index 0
            ctx.save(where=(), xshape=x.shape)
            return x.copy(), xp.zeros((), numpy.int64)
        axis = axis_index(axis, x.ndim, x.shape)
        order = _stable_order(xp, x, axis, descending).astype(numpy.int64, copy=False)
        if k is not None:
            order = order[(slice(None),) * axis + (slice(0, k),)]
        where = _along_axis(xp, x, order, axis)
        ctx.save(where=where, xshape=x.shape)
        return x[where], order

    def backward(ctx, gs):
        g = gs[0]  # (ḡ of the values; the indices get none, and with none for the values the VJP is not run)
        if not ctx.where:
            return g
        gx = ctx.xp.zeros(ctx.xshape, g.dtype)
        ctx.xp.add.at(gx, ctx.where, g)  # i: no repeats
        return gx


Sorted = collections.namedtuple("Sorted", ["values", "indices"])  # what torch.sort and torch.topk return, by name


def sort(x, axis=-1, descending=False, *, dim=None, stable=True):
    """(values, indices) of ``x`` sorted along ``axis`` (torch.sort's, with torch's dim=; always stable: equal values
    keep their order, whatever ``stable`` says). numpy.sort's values are ``sort(x)[0]``."""
    return Sorted(*Sort.apply(x, axis=axis if dim is None else dim, descending=bool(descending)))


def topk(x, k, axis=-1, largest=True, sorted=True, *, dim=None):
    """(values, indices) of the ``k`` largest (``largest=False``: smallest) entries of ``x`` along ``axis``, as
    torch.topk, in sorted order (``sorted=False`` gives the same), ties taken in their order."""
    x = _tensor(x)
    axis = axis_index(axis if dim is None else dim, builtins.max(x.ndim, 1), x.shape)
    n = x.shape[axis] if x.ndim else 1
    k = operator.index(k)
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is out of range for axis {axis} of size {n}")
    return Sorted(*Sort.apply(x, axis=axis, descending=bool(largest), k=k))
