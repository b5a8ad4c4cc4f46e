"""Reductions over ``axis`` (None, an int or a tuple; negatives allowed) with ``keepdims``."""
import math

import numpy

from minivae.engine import Function
from minivae.ops._broadcast import expand_reduced, normalize_axis
from minivae.ops._registry import register
from minivae.ops.unary import accumulated


@register("sum")
class Sum(Function):
    """y = Σ_axis x;  x̄ = broadcast(ḡ, x.shape).
    A bool or integer x sums to int64, as PyTorch's (NumPy's sum of uint8, uint16 or uint32 is uint64);
    uint64 stays uint64 (no wider integer holds it). A float16 x is added in float32 and the sum rounded to float16
    (``accumulated``, as PyTorch's: NumPy adds along a strided axis in float16)."""

    def forward(ctx, x, axis=None, keepdims=False):
        axes = normalize_axis(axis, x.ndim, x.shape)
        ctx.save(shape=x.shape, axes=axes, keepdims=keepdims)
        dtype = numpy.int64 if x.dtype.kind in "biu" and x.dtype != numpy.uint64 else None
        if x.dtype == numpy.float16:
            return x.sum(axis=axes, keepdims=keepdims, dtype=numpy.float32).astype(x.dtype)
        return x.sum(axis=axes, keepdims=keepdims, dtype=dtype)

    def backward(ctx, g):
        g = expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdims)
        return ctx.xp.broadcast_to(g, ctx.shape).copy()


@register("mean")
class Mean(Function):
    """y = (1/n) Σ_axis x;  x̄ = broadcast(ḡ, x.shape) / n, n the number of reduced elements.
    A bool or integer x is averaged as float32 (``real``: the library's rule for a real-valued result of
    integers, as ``int_t / n`` and ``exp``; PyTorch refuses an integer mean, NumPy gives float64).
    float16 is averaged in float32, and ḡ/n taken in float32, each rounded once to float16 (``accumulated``, as
    PyTorch's: n = 70000 is +∞ in float16, and ḡ/n was 0)."""

    def forward(ctx, x, axis=None, keepdims=False):
        dtype = x.dtype if x.dtype == numpy.float16 else None
        x = accumulated(x)
        axes = normalize_axis(axis, x.ndim, x.shape)
        n = 1
        for a in axes:
            n *= x.shape[a]
        ctx.save(shape=x.shape, axes=axes, keepdims=keepdims, n=n)
        y = x.mean(axis=axes, keepdims=keepdims)
        return y if dtype is None else y.astype(dtype)

    def backward(ctx, g):
        g = expand_reduced(accumulated(g), ctx.shape, ctx.axes, ctx.keepdims)
        return ctx.xp.broadcast_to(g / ctx.n, ctx.shape).copy()


@register("max")
class Max(Function):
    """y = max_axis x;  x̄ = ḡ·[x = y] / #ties (ties share the gradient evenly, as torch.amax).
    A slice holding NaN has y = NaN (NaN propagates, as in NumPy and PyTorch), and its NaN entries are the
    ties (NaN ≠ NaN would leave none, and x̄ = ḡ·0/0 = NaN with a warning): ḡ shared among them, 0 elsewhere,
    torch.max's gradient."""

    extreme = "max"  # Min below is the same op with x.min

    def forward(ctx, x, axis=None, keepdims=False):
        axes = normalize_axis(axis, x.ndim, x.shape)
        y = getattr(x, ctx.extreme)(axis=axes, keepdims=True)
        mask = x == y
        if x.dtype.kind == "f":
            mask |= ctx.xp.isnan(x) & ctx.xp.isnan(y)
        ctx.save(axes=axes, keepdims=keepdims, mask=mask, shape=x.shape)
        return y if keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in axes])

    def backward(ctx, g):
        g = expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdims)
        mask = ctx.mask
        return g * mask / mask.sum(axis=ctx.axes, keepdims=True)


@register("min")
class Min(Max):
    """y = min_axis x;  x̄ = ḡ·[x = y] / #ties (Max's VJP: only the selected entries differ)."""

    extreme = "min"


@register("var")
class Var(Function):
    """y = Σ_axis (x − m)² / (n − c), m the mean over axis, c = ``correction`` (1: unbiased, PyTorch's default);
    x̄ = broadcast(ḡ)·2(x − m)/(n − c)  (m's own contribution vanishes: Σ_axis (x − m) = 0).
    Where n ≤ c the divisor is 0, as NumPy's and PyTorch's (never negative): y = +∞, or NaN where x is constant
    there (a single element), and x̄ = ±∞·ḡ, or NaN where x = m; IEEE division, no exception or warning.
    A bool or integer x is float32 (``real``, as Mean's; PyTorch refuses it, NumPy gives float64); float16 is computed
    in float32 and y rounded once to float16, as PyTorch's (``accumulated``: Σ (x − m)² of 4096 values of spread 10
    overflowed float16), and so is x̄ (the engine rounds it to x's dtype)."""

    def forward(ctx, x, axis=None, keepdims=False, correction=1):
        y = ctx.wide(x, axis, keepdims, correction)
        return y.astype(x.dtype) if x.dtype == numpy.float16 else y

    def wide(ctx, x, axis, keepdims, correction):
        """y in the dtype it is computed in (``accumulated``'s), saving what the VJP needs."""
        x = accumulated(x)
        axes = normalize_axis(axis, x.ndim, x.shape)
        n = 1
        for a in axes:
            n *= x.shape[a]
        dof = n - correction if n > correction else 0
        d = x - x.mean(axis=axes, keepdims=True) if n else x  # (an empty slice has no mean, and NumPy warns)
        with numpy.errstate(divide="ignore", invalid="ignore"):  # dof = 0: Σ(x − m)²/0, +∞ or NaN
            y = (d * d).sum(axis=axes, keepdims=keepdims) / dof
        ctx.save(d=d, axes=axes, keepdims=keepdims, dof=dof)
        return y

    def backward(ctx, g):
        g = expand_reduced(g, ctx.d.shape, ctx.axes, ctx.keepdims)
        with numpy.errstate(invalid="ignore"):  # dof = 0: 2/0 = ∞, and ∞·0 = NaN where x = m
            return g * ctx.d * (2.0 / ctx.dof if ctx.dof else math.inf)


@register("std")
class Std(Function):
    """y = √(Σ_axis (x − m)² / (n − c)), var's square root;  x̄ = broadcast(ḡ)·(x − m)/((n − c)·y), and 0 where y = 0
    (a constant slice, where sqrt's VJP after var's would give 0·∞: PyTorch's value, the subgradient of least norm).
    Where n ≤ c, y is var's +∞ or NaN and x̄ NaN (0·∞ in the divisor), as PyTorch's. Integer and float16 x as Var's."""

    def forward(ctx, x, axis=None, keepdims=False, correction=1):
        y = ctx.xp.sqrt(Var.wide(ctx, x, axis, keepdims, correction))  # (float16: in float32, rounded once)
        ctx.save(y=y)
        return y.astype(x.dtype) if x.dtype == numpy.float16 else y

    def backward(ctx, g):
        xp = ctx.xp
        y = expand_reduced(ctx.y, ctx.d.shape, ctx.axes, ctx.keepdims)
        with numpy.errstate(divide="ignore", invalid="ignore"):  # 0/0 where y = 0, replaced; 0·∞ where n ≤ c
            scale = xp.where(y == 0, 0, expand_reduced(g, ctx.d.shape, ctx.axes, ctx.keepdims) / (ctx.dof * y))
        return ctx.d * scale


def logsumexp_array(xp, x, axes):
    """log Σ_axes eˣ with keepdims, shifted by the max so nothing overflows;
    an all −∞ slice gives −∞ rather than NaN, and so does an empty one (log 0, as PyTorch's)."""
    if x.size == 0:  # nothing to shift by (NumPy's max refuses an empty axis)
        with numpy.errstate(divide="ignore"):
            return xp.log(xp.exp(x).sum(axis=axes, keepdims=True))
    m = x.max(axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    return m + xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True))


@register("logsumexp")
class LogSumExp(Function):
    """y = log Σ_axis eˣ (max-shifted);  x̄ = ḡ·e^{x − y} = ḡ·softmax(x).
    A bool or integer x is float32 (``real``), as PyTorch's: an unsigned x − max x would wrap around. float16 is
    computed in float32 and rounded once to float16, y and x̄ (``accumulated``, as PyTorch's)."""

    def forward(ctx, x, axis=None, keepdims=False):
        dtype = x.dtype if x.dtype == numpy.float16 else None
        x = accumulated(x)
        axes = normalize_axis(axis, x.ndim, x.shape)
        y = logsumexp_array(ctx.xp, x, axes)
        ctx.save(x=x, y=y, axes=axes, keepdims=keepdims)
        y = y if keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in axes])
        return y if dtype is None else y.astype(dtype)

    def backward(ctx, g):
        g = expand_reduced(g, ctx.x.shape, ctx.axes, ctx.keepdims)
        return g * ctx.xp.exp(ctx.x - ctx.y)


def sum(x, axis=None, keepdims=False):
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):
    return Max.apply(x, axis=axis, keepdims=keepdims)


def min(x, axis=None, keepdims=False):
    return Min.apply(x, axis=axis, keepdims=keepdims)


def var(x, axis=None, keepdims=False, correction=1):
    return Var.apply(x, axis=axis, keepdims=keepdims, correction=correction)


def std(x, axis=None, keepdims=False, correction=1):
    return Std.apply(x, axis=axis, keepdims=keepdims, correction=correction)


def logsumexp(x, axis=None, keepdims=False):
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)
