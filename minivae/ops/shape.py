"""Ops that move, select or combine elements without arithmetic."""
import builtins
import math
import operator

import numpy

from minivae.engine import DEFAULT_FLOAT, Function, Tensor, as_tensor, index_on
from minivae.ops._broadcast import axis_index, normalize_axis, unbroadcast
from minivae.ops._registry import nondifferentiable, register
from minivae.ops.arith import floating_all
from minivae.plan import array_function


@register("reshape")
class Reshape(Function):
    """z = x viewed as ``shape``;  x̄ = ḡ reshaped to x.shape."""

    def forward(ctx, x, shape):
        ctx.save(xshape=x.shape)
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {x.shape} into {tuple(shape)}") from None

    def backward(ctx, g):
        return g.reshape(ctx.xshape)


@register("transpose")
class Transpose(Function):
    """z = x with axes permuted (reversed when ``axes`` is None);  x̄ = ḡ permuted back by argsort(axes)."""

    def forward(ctx, x, axes=None):
        axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(axis_index(a, x.ndim, x.shape) for a in axes)
        if sorted(axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: {axes} is not a permutation of the axes of shape {x.shape}")
        ctx.save(inverse=tuple(sorted(range(x.ndim), key=axes.__getitem__)))
        return x.transpose(axes)

    def backward(ctx, g):
        return g.transpose(ctx.inverse)


def _has_array_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return builtins.any(hasattr(p, "shape") or isinstance(p, list) for p in parts)


@register("getitem")
class GetItem(Function):
    """z = x[index] (slices, ints, None, Ellipsis, integer or boolean arrays);
    x̄ = zeros like x with ḡ scattered-added at index (repeated indices accumulate)."""

    def forward(ctx, x, index):
        ctx.save(xshape=x.shape, index=index)
        return x[index]

    def backward(ctx, g):
        gx = ctx.xp.zeros(ctx.xshape, dtype=g.dtype)
        if _has_array_index(ctx.index):
            ctx.xp.add.at(gx, ctx.index, g)  # an index may repeat: accumulate, not overwrite
        else:
            gx[ctx.index] = g
        return gx


@register("concatenate")
class Concatenate(Function):
    """z = [x₁, x₂, …] joined along ``axis``;  x̄ᵢ = the slice of ḡ that xᵢ occupies."""

    def forward(ctx, *xs, axis=0):
        if not xs:
            raise ValueError("concatenate needs at least one tensor")
        xs = floating_all(xs)
        axis = normalize_axis(axis, xs[0].ndim, xs[0].shape)[0]
        ctx.save(axis=axis, sizes=[x.shape[axis] for x in xs])
        return ctx.xp.concatenate(xs, axis=axis)

    def backward(ctx, g):
        bounds = [0]
        for n in ctx.sizes:
            bounds.append(bounds[-1] + n)
        index = [slice(None)] * g.ndim
        grads = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            index[ctx.axis] = slice(lo, hi)
            grads.append(g[tuple(index)])
        return tuple(grads)


@register("stack")
class Stack(Function):
    """z = [x₁, x₂, …] stacked along a new ``axis``;  x̄ᵢ = ḡ taken at position i of that axis."""

    def forward(ctx, *xs, axis=0):
        if not xs:
            raise ValueError("stack needs at least one tensor")
        xs = floating_all(xs)
        axis = normalize_axis(axis, xs[0].ndim + 1, xs[0].shape)[0]
        ctx.save(axis=axis, n=len(xs))
        return ctx.xp.stack(xs, axis=axis)

    def backward(ctx, g):
        return tuple(g.take(i, axis=ctx.axis) for i in range(ctx.n))


@register("clone")
class Clone(Function):
    """z = a copy of x (no memory shared);  x̄ = ḡ."""

    def forward(ctx, x):
        return x.copy()

    def backward(ctx, g):
        return g


@register("broadcast_to")
class BroadcastTo(Function):
    """z = x broadcast to ``shape``;  x̄ = unbroadcast(ḡ, x.shape)."""

    def forward(ctx, x, shape):
        ctx.save(xshape=x.shape)
        try:
            return ctx.xp.broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"cannot broadcast a tensor of shape {x.shape} to {tuple(shape)}") from None

    def backward(ctx, g):
        return unbroadcast(g, ctx.xshape)


def reshape(x, shape):
    return Reshape.apply(x, shape=(shape,) if isinstance(shape, int) else tuple(shape))


def transpose(x, axes=None):
    return Transpose.apply(x, axes=axes)


def squeeze(x, axis=None):
    """``x`` without its size-1 axes (all of them, or those of ``axis`` that have size 1: as
    ``torch.squeeze``, an axis of another size is left alone). A reshape, so its VJP is reshape's."""
    axes = normalize_axis(axis, x.ndim, x.shape) if x.ndim else ()
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1)))


def unsqueeze(x, axis):
    """``x`` with a new axis of size 1 at ``axis`` (in −ndim−1 … ndim, as ``torch.unsqueeze``); a reshape."""
    axis = normalize_axis(axis, x.ndim + 1, x.shape)[0]
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def clone(x):
    return Clone.apply(x)


def getitem(x, index):
    """x[index]; an index tensor or array on the CPU serves a tensor on a device (moved there), one on a device only
    a tensor there (engine.index_on, as PyTorch's)."""
    return GetItem.apply(x, index=index_on(x, index, "getitem"))


def concatenate(tensors, axis=0):
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    return Stack.apply(*tensors, axis=axis)


def broadcast_to(x, shape):
    return BroadcastTo.apply(x, shape=tuple(shape))


@register("split")
class Split(Function):
    """(z₁, …, zₘ) = x cut along ``axis`` between ``bounds`` (views of x);  x̄ = [ḡ₁, …, ḡₘ] joined along
    ``axis``, zeros for a piece no gradient reached. One node of m outputs: its VJP writes x̄ once,
    where a getitem per piece would each fill an array of x's shape with zeros and the engine sum them.
    on the GPU two gradients that already are the halves of one array (μ̄ and v̄ of a Gaussian encoder's split
    output, from kernels/gaussian.cu's reparameterize_kl_bwd) are that array, a view: no copy"""

    def forward(ctx, x, bounds=(), axis=0):
        index = [slice(None)] * x.ndim
        pieces = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            index[axis] = slice(lo, hi)
            pieces.append(x[tuple(index)])
        ctx.save(axis=axis, shapes=[p.shape for p in pieces], dtype=x.dtype)
        return tuple(pieces)

    def backward(ctx, gs):
        gs = gs if isinstance(gs, tuple) else (gs,)  # one piece: one output, its gradient alone
        xp = ctx.xp
        if xp is not numpy and len(gs) == 2 and gs[0] is not None and gs[1] is not None and ctx.axis == gs[0].ndim - 1:
            from minivae._gpu import joined  # (device arrays only: the CPU's gradients never come so)
            whole = joined(*gs)
            if whole is not None:
                return whole
        return xp.concatenate([xp.zeros(shape, ctx.dtype) if g is None else g for g, shape in zip(gs, ctx.shapes)],
                              axis=ctx.axis)


def split(x, indices_or_sections, axis=0):
    """Pieces of ``x`` along ``axis``, as ``numpy.split``: an int n gives n equal pieces (n empty ones of an
    empty axis), a list of indices gives the cut points."""
    axis = normalize_axis(axis, x.ndim, x.shape)[0]
    n = x.shape[axis]
    if isinstance(indices_or_sections, int):
        if indices_or_sections <= 0 or n % indices_or_sections:
            raise ValueError(f"split: axis of length {n} does not divide into {indices_or_sections} equal pieces")
        step = n // indices_or_sections
        cuts = [step * k for k in range(1, indices_or_sections)]
    else:
        cuts = list(indices_or_sections)
    return list(Split.apply(x, bounds=tuple([0] + cuts + [n]), axis=axis))


def chunk(x, chunks, axis=0):
    """``chunks`` pieces of near-equal size along ``axis`` (the last may be smaller, and there may be fewer), as
    ``torch.chunk``: pieces of ⌈n / chunks⌉, or ``chunks`` empty pieces of an empty axis."""
    if chunks <= 0:
        raise ValueError(f"chunk: chunks must be > 0, not {chunks}")
    axis = normalize_axis(axis, x.ndim, x.shape)[0]
    n = x.shape[axis]
    step = -(-n // chunks)
    return split(x, list(range(step, n, step)) if n else [0] * (chunks - 1), axis=axis)


def split_sizes(x, split_size_or_sections, axis=0):
    """Pieces of ``x`` along ``axis`` as ``torch.split``: an int is the size of each piece (the last may be smaller;
    numpy.split's int, and ``split``'s, is the number of pieces), a list the pieces' sizes, which must add up to the
    axis's length. ``split``'s one node of several outputs."""
    axis = normalize_axis(axis, x.ndim, x.shape)[0]
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [operator.index(k) for k in split_size_or_sections]
        if any(k < 0 for k in sizes) or builtins.sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} must be non-negative and add up to {n}, the length of axis {axis}")
        cuts = [builtins.sum(sizes[:k]) for k in range(1, len(sizes))]
        return split(x, cuts, axis=axis)
    size = operator.index(split_size_or_sections)
    if size <= 0 and not (size == 0 and n == 0):
        raise ValueError(f"split: the size of a piece must be positive, not {size}")
    return split(x, list(range(size, n, size)) if n else [], axis=axis)


def flatten(x, start_dim=0, end_dim=-1):
    """``x`` with axes ``start_dim`` … ``end_dim`` (both included) made one, as ``torch.flatten`` (a 0-d ``x`` becomes
    1-D); a reshape, so its VJP is reshape's."""
    if x.ndim == 0:
        return reshape(x, (1,))
    start, end = axis_index(start_dim, x.ndim, x.shape), axis_index(end_dim, x.ndim, x.shape)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {x.shape})")
    return reshape(x, x.shape[:start] + (math.prod(x.shape[start:end + 1]),) + x.shape[end + 1:])


def expand(x, *sizes):
    """``x`` broadcast to ``sizes`` (``expand(2, 3)`` or ``expand((2, 3))``) as ``torch.Tensor.expand``: a size of −1
    keeps that axis's size; new axes come first, and cannot be −1. A broadcast_to, whose VJP sums ḡ back."""
    if len(sizes) == 1 and not isinstance(sizes[0], (int, numpy.integer)):
        sizes = tuple(sizes[0])
    sizes = tuple(operator.index(n) for n in sizes)
    new = len(sizes) - x.ndim
    if new < 0:
        raise ValueError(f"expand: {len(sizes)} sizes {sizes} for a tensor of {x.ndim} dimensions {x.shape}")
    if any(n == -1 for n in sizes[:new]):
        raise ValueError(f"expand: the size -1 is not allowed in a new leading axis: {sizes} for shape {x.shape}")
    return broadcast_to(x, sizes[:new] + tuple(x.shape[i] if n == -1 else n for i, n in enumerate(sizes[new:])))


@nondifferentiable("one_hot")
def one_hot(indices, num_classes, dtype=None):
    """Float one-hot vectors (last axis ``num_classes``) for integer ``indices``; no gradient.
    Indices outside [0, num_classes) are refused on the CPU; on the GPU they give rows of zeros
    (checking would wait for the GPU and copy the answer back)."""
    idx = indices if isinstance(indices, Tensor) else as_tensor(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"one_hot needs integer indices, not {idx.dtype}")
    if idx.numel() and idx.device == "cpu" and (int(idx.data.min()) < 0 or int(idx.data.max()) >= num_classes):
        raise ValueError(f"one_hot: indices must lie in [0, {num_classes})")
    xp, dtype = idx.xp, dtype or DEFAULT_FLOAT
    return array_function(lambda i: (i[..., None] == xp.arange(num_classes)).astype(dtype), idx)
