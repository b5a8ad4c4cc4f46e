"""Products, running sums and products, and vector norms: torch's ``prod``, ``cumsum``, ``cumprod`` and
``linalg.vector_norm`` (NumPy's ``prod``, ``cumsum``, ``cumprod``, ``linalg.norm`` of a vector), each with the VJP
that stays exact where the obvious one divides by zero."""
import math
import numbers

import numpy

from minivae.engine import Function
from minivae.ops._broadcast import axis_index, expand_reduced, normalize_axis
from minivae.ops._registry import register
from minivae.ops.unary import accumulated


def _integer_to_int64(x):
    """The dtype of a sum or product of ``x``'s: int64 for bool and integers (PyTorch's; NumPy's of uint8 is uint64),
    uint64 kept (no wider integer holds it), None (x's own) for floats."""
    return numpy.int64 if x.dtype.kind in "biu" and x.dtype != numpy.uint64 else None


def _reversed_cumsum(xp, a, axis):
    """Σ_{j ≥ i} a_j along ``axis``: the VJP of a running sum."""
    return xp.flip(xp.cumsum(xp.flip(a, axis), axis=axis), axis)


def _exclusive_cumprod(xp, a):
    """Π_{j < i} a_j along the last axis (1 at i = 0), by a running product: no division."""
    return xp.cumprod(xp.concatenate([xp.ones_like(a[..., :1]), a[..., :-1]], axis=-1), axis=-1)


@register("prod")
class Prod(Function):
    r"""y = Π_axis x;  x̄_i = ḡ·Π_{j ≠ i} x_j = ḡ·L_i·R_i, with L_i = Π_{j < i} x_j and R_i = Π_{j > i} x_j the products
    before and after i along the reduced axes (flattened in order), each a running product: O(n), no division.
    The classic trap is x̄ = ḡ·y/x, which is 0/0 = NaN at a zero; here, as PyTorch's: where x has one zero along the
    reduced axes, its x̄ is ḡ times the product of the others there (and every other entry's is 0), and where it has two
    or more every x̄ there is 0. Saves x.
    bool and integers multiply to int64 (PyTorch's; NumPy's of uint8 is uint64); float16 is multiplied in float32 and
    rounded once (``accumulated``)."""

    def forward(ctx, x, axis=None, keepdims=False):
        axes = normalize_axis(axis, x.ndim, x.shape)
        ctx.save(x=accumulated(x) if x.dtype.kind == "f" else x, axes=axes, keepdims=keepdims)
        if x.dtype == numpy.float16:
            return x.prod(axis=axes, keepdims=keepdims, dtype=numpy.float32).astype(x.dtype)
        return x.prod(axis=axes, keepdims=keepdims, dtype=_integer_to_int64(x))

    def backward(ctx, g):
        xp, x, axes = ctx.xp, ctx.x, ctx.axes
        g = expand_reduced(g, x.shape, axes, ctx.keepdims)
        k = len(axes)
        if x.size == 0 or k == 0:  # nothing reduced (every x̄ = ḡ), or no element
            return xp.broadcast_to(g, x.shape).astype(x.dtype)
        ends = tuple(range(x.ndim - k, x.ndim))
        moved = xp.moveaxis(x, axes, ends)  # the reduced axes last, in order, then flattened into one
        flat = moved.reshape(moved.shape[:x.ndim - k] + (-1,))
        before = _exclusive_cumprod(xp, flat)
        after = xp.flip(_exclusive_cumprod(xp, xp.flip(flat, -1)), -1)
        gm = xp.moveaxis(g, axes, ends).reshape(flat.shape[:-1] + (1,))
        return xp.moveaxis((gm * before * after).reshape(moved.shape), ends, axes)


@register("cumsum")
class Cumsum(Function):
    r"""y_i = Σ_{j ≤ i} x_j along ``axis``;  x̄_i = Σ_{j ≥ i} ḡ_j: the running sum of ḡ taken from the other end
    (flip, cumsum, flip). bool and integers sum to int64 (PyTorch's); float16 adds in float32 and rounds once."""

    def forward(ctx, x, axis=0):
        ctx.save(axis=axis)
        if x.dtype == numpy.float16:
            return ctx.xp.cumsum(x, axis=axis, dtype=numpy.float32).astype(x.dtype)
        return ctx.xp.cumsum(x, axis=axis, dtype=_integer_to_int64(x))

    def backward(ctx, g):
        return _reversed_cumsum(ctx.xp, accumulated(g), ctx.axis)


@register("cumprod")
class Cumprod(Function):
    r"""y_i = Π_{j ≤ i} x_j along ``axis``;  x̄_k = Σ_{i ≥ k} ḡ_i·Π_{j ≤ i, j ≠ k} x_j, in O(n), exact with zeros
    (PyTorch's values). Let z be the first zero of x along the axis (n where there is none):

    - k < z:  x̄_k = (Σ_{i ≥ k} ḡ_i y_i) / x_k, the reversed running sum of ḡ·y divided by x_k ≠ 0 (the terms i ≥ z
      are 0 there: y_i = 0);
    - k = z:  x̄_z = Σ_{i ≥ z} ḡ_i·c_i with c = cumprod(x with x_z replaced by 1): c_i = Π_{j ≤ i, j ≠ z} x_j, so
      the reversed running sum of ḡ·c read at z;
    - k > z:  x̄_k = 0 (every term holds x_z = 0).

    Without a zero this is the first line alone (the O(n²) sum over i never formed). Saves x and y. bool and
    integers multiply to int64 (PyTorch's); float16 multiplies in float32 and rounds once."""

    def forward(ctx, x, axis=0):
        xp = ctx.xp
        if x.dtype.kind != "f":
            return xp.cumprod(x, axis=axis, dtype=_integer_to_int64(x))
        wide = accumulated(x)
        y = xp.cumprod(wide, axis=axis)
        ctx.save(x=wide, y=y, axis=axis)
        return y.astype(x.dtype) if y.dtype != x.dtype else y

    def backward(ctx, g):
        xp, x, y, axis = ctx.xp, ctx.x, ctx.y, ctx.axis
        g = g.astype(x.dtype, copy=False)
        zero = x == 0
        seen = xp.cumsum(zero, axis=axis)  # zeros at or before each place
        first = zero & (seen == 1)  # the first zero of each slice
        one, nothing = xp.ones((), x.dtype), xp.zeros((), x.dtype)
        before = _reversed_cumsum(xp, g * y, axis) / xp.where(zero, one, x)
        at_zero = _reversed_cumsum(xp, g * xp.cumprod(xp.where(first, one, x), axis=axis), axis)
        return xp.where(seen == 0, before, xp.where(first, at_zero, nothing))


@register("norm")
class Norm(Function):
    r"""The vector p-norm over ``axis`` (all of x's entries when None), as ``torch.linalg.vector_norm``:

    - p = 2:    y = √(Σ x²);          x̄ = ḡ·x / y, and 0 where y = 0 (PyTorch's: the subgradient of least norm at the
      zero vector, never 0/0 = NaN); computed as m·√(Σ(x/m)²), m = max |x|, so that it neither underflows nor overflows
      where y is a number (as for other p);
    - p = 1:    y = Σ |x|;            x̄ = ḡ·sign(x) (0 at 0);
    - p = ∞:    y = max |x|;          x̄ = ḡ·sign(x)·[|x| = y] / #ties (ties share ḡ, as torch's amax), −∞: min |x|;
    - p = 0:    y = #{x ≠ 0};         x̄ = 0;
    - other p > 0: y = (Σ |x|ᵖ)^{1/p};  x̄ = ḡ·sign(x)·(|x| / y)^{p−1}, and 0 where x = 0 or y = 0.

    Saves x and y. Differs on purpose: an axis pair is the vector norm over both axes (NumPy's ``linalg.norm`` takes a
    matrix norm there), and p < 0 (but −∞) is refused. bool and integers are float32 (``real``: PyTorch refuses them);
    float16 is computed in float32 and rounded once (``accumulated``)."""

    def forward(ctx, x, ord=2, axis=None, keepdims=False):
        xp = ctx.xp
        dtype = x.dtype if x.dtype == numpy.float16 else None
        x = accumulated(x)
        axes = normalize_axis(axis, x.ndim, x.shape)
        a = xp.abs(x)
        if ord == math.inf or ord == -math.inf:
            if x.size == 0:
                raise ValueError(f"norm: ord={ord} of an empty tensor (shape {x.shape}) has no value")
            y = a.max(axis=axes, keepdims=True) if ord > 0 else a.min(axis=axes, keepdims=True)
        elif ord == 0:
            y = (x != 0).sum(axis=axes, keepdims=True).astype(x.dtype)
        elif ord == 1:
            y = a.sum(axis=axes, keepdims=True)
        else:  # p = 2 and other p: of |x|/m, m = max |x| (the slice's scale), so that no square or power of an entry
            # underflows or overflows where the norm itself is a number (√(Σx²) of 10⁻²⁰⁰'s was 0, of 10²⁰⁰'s ∞)
            m = _slice_max(xp, a, axes)
            s = xp.where((m == 0) | xp.isinf(m), xp.ones((), a.dtype), m)
            r = a / s
            y = s * (xp.sqrt((r * r).sum(axis=axes, keepdims=True)) if ord == 2 else
                     ((r ** ord).sum(axis=axes, keepdims=True)) ** (1.0 / ord))
            y = xp.where(xp.isinf(m), m, y)  # an infinite entry: ∞ (r would be ∞/1)
        ctx.save(x=x, y=y, ord=ord, axes=axes, keepdims=keepdims)
        out = y if keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in axes])
        return out if dtype is None else out.astype(dtype)

    def backward(ctx, g):
        xp, x, y, p = ctx.xp, ctx.x, ctx.y, ctx.ord
        g = expand_reduced(g, x.shape, ctx.axes, ctx.keepdims).astype(x.dtype, copy=False)
        nothing = xp.zeros((), x.dtype)
        if p == 0:
            return xp.zeros_like(x)
        if p == 1:
            return g * xp.sign(x)
        if p == math.inf or p == -math.inf:
            ties = xp.abs(x) == y
            return g * xp.sign(x) * ties / ties.sum(axis=ctx.axes, keepdims=True)
        safe = xp.where(y == 0, xp.ones((), x.dtype), y)
        if p == 2:
            return xp.where(y == 0, nothing, g * x / safe)
        a = xp.abs(x)
        return xp.where((a == 0) | (y == 0), nothing, g * xp.sign(x) * (a / safe) ** (p - 1))


def _slice_max(xp, a, axes):
    """max |x| over ``axes`` (kept), 0 for an empty slice (where a max has no value and the norm is 0)."""
    if any(a.shape[i] == 0 for i in axes):
        return xp.zeros([1 if i in axes else n for i, n in enumerate(a.shape)], a.dtype)
    return a.max(axis=axes, keepdims=True)


def _ord(ord):
    """``ord`` as the norm's p: a real number > 0, 0, ±∞ (also "inf", "-inf"), "fro" (2); else a clear error."""
    if isinstance(ord, str):
        named = {"fro": 2, "inf": math.inf, "-inf": -math.inf}
        if ord not in named:
            raise ValueError(f"norm: ord {ord!r} is not a vector norm (give a number, inf, -inf or 'fro')")
        return named[ord]
    if isinstance(ord, bool) or not isinstance(ord, numbers.Real):
        raise TypeError(f"norm: ord must be a real number, not {ord!r}")
    if ord < 0 and ord != -math.inf:
        raise ValueError(f"norm: ord={ord} < 0 is not supported (only -inf of the negative ones)")
    return float(ord) if ord not in (0, 1, 2) else int(ord)


def prod(x, axis=None, keepdims=False):
    """Π of ``x`` over ``axis`` (None: all), as ``numpy.prod`` / ``torch.prod``; see ``Prod`` for the VJP at zeros."""
    return Prod.apply(x, axis=axis, keepdims=keepdims)


def _scan(cls, x, axis):
    from minivae.ops.shape import reshape
    if axis is None:  # NumPy's: over the flattened tensor (torch requires dim)
        return cls.apply(reshape(x, (-1,)), axis=0)
    axis = axis_index(axis, max(x.ndim, 1), x.shape)
    if x.ndim == 0:  # torch's: a 0-d tensor as one element along axis 0 or -1, and 0-d again
        return reshape(cls.apply(reshape(x, (1,)), axis=0), ())
    return cls.apply(x, axis=axis)


def cumsum(x, axis=None):
    """The running sum of ``x`` along ``axis`` (None: of the flattened x, NumPy's default; torch's dim= is required);
    a 0-d x counts as 1-D of one element."""
    return _scan(Cumsum, x, axis)


def cumprod(x, axis=None):
    """The running product of ``x`` along ``axis`` (None: of the flattened x, as NumPy's); see ``Cumprod`` for its
    VJP, exact with zeros."""
    return _scan(Cumprod, x, axis)


def norm(x, ord=2, axis=None, keepdims=False):
    """The vector ``ord``-norm of ``x`` over ``axis`` (None: all entries), as ``torch.linalg.vector_norm(x, ord, dim,
    keepdim)``; ord is a number ≥ 0, ±inf or "fro" (= 2). See ``Norm`` for the gradient at 0."""
    return Norm.apply(x, ord=_ord(ord), axis=axis, keepdims=keepdims)


def amax(x, axis=None, keepdims=False):
    """max of ``x`` over ``axis``, as ``torch.amax`` / ``numpy.amax``: the ``max`` op, whose gradient is shared evenly
    among ties (torch.amax's). torch.max(x, dim) instead returns (values, indices) and gives the whole gradient to the
    one index it returns; minivae's max is amax's."""
    from minivae.ops.reduce import max as max_
    return max_(x, axis=axis, keepdims=keepdims)


def amin(x, axis=None, keepdims=False):
    """min of ``x`` over ``axis``, as ``torch.amin``: the ``min`` op (ties share the gradient evenly), as ``amax``."""
    from minivae.ops.reduce import min as min_
    return min_(x, axis=axis, keepdims=keepdims)
