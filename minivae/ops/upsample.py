r"""Nearest-neighbour upsampling by integer factors (torch's ``F.interpolate(mode="nearest")`` / ``nn.Upsample`` where
each output size is a whole multiple of the input's): every pixel becomes an s_1 × … × s_K block of copies.

Both directions are a reshape: the forward broadcasts x (N, C, d_1, …, d_K) viewed as (N, C, d_1, 1, …, d_K, 1) to
(N, C, d_1, s_1, …, d_K, s_K) and flattens the pairs; the backward views ḡ the same way and sums each block.
"""
import numbers

from minivae.engine import Function
from minivae.ops._registry import register


def scale_factors(who, shape, size, scale_factor):
    """The integer factor per spatial axis of an input of ``shape`` (N, C, d_1, …, d_K), K = 1 … 3, from ``size``
    (whole multiples of the d_k) or ``scale_factor`` (integers, or floats that are integers), one given, as torch's
    checks; a clear error otherwise (factors that are not integers are not implemented here)."""
    k = len(shape) - 2
    if k not in (1, 2, 3):
        raise NotImplementedError(f"{who}: only 3D, 4D and 5D input tensors are supported (N, C, d_1, …), got "
                                  f"{len(shape)}D input of shape {tuple(shape)}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{who}: {'only one of' if size is not None else 'either'} size or scale_factor should be "
                         "defined")
    given, name = (size, "size") if size is not None else (scale_factor, "scale_factor")
    values = tuple(given) if isinstance(given, (tuple, list)) else (given,) * k
    if len(values) != k:
        raise ValueError(f"{who}: input and {name} must have the same number of spatial dimensions, got input with "
                         f"spatial dimensions {list(shape[2:])} and {name} {given!r}")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) for v in values):
        raise TypeError(f"{who}: {name} must be a number or a tuple of numbers, got {given!r}")
    if size is not None:
        factors = [v // d if d and v % d == 0 and v >= d else None for v, d in zip(values, shape[2:])]
    else:
        factors = [int(v) if v == int(v) and v >= 1 else None for v in values]
    if None in factors:
        raise NotImplementedError(f"{who}: nearest upsampling here takes whole factors ≥ 1 only (each output size a "
                                  f"multiple of the input's), got {name}={given!r} for spatial dimensions "
                                  f"{list(shape[2:])}")
    return tuple(factors)


@register("upsample_nearest")
class UpsampleNearest(Function):
    r"""Nearest-neighbour upsampling of x (N, C, d_1, …, d_K) by integer factors s_k (torch's interpolate, mode
    "nearest", for whole factors).

    forward   y[n, c, i_1, …, i_K] = x[n, c, ⌊i_1/s_1⌋, …, ⌊i_K/s_K⌋]: x as (N, C, d_1, 1, …, d_K, 1) broadcast to
              (N, C, d_1, s_1, …, d_K, s_K), then reshaped to (N, C, d_1·s_1, …, d_K·s_K)
    backward  x̄[n, c, j_1, …, j_K] = Σ over the block j_k·s_k ≤ i_k < (j_k + 1)·s_k of ḡ[n, c, i_1, …, i_K]: ḡ
              viewed as (N, C, d_1, s_1, …, d_K, s_K), summed over the s axes
    saves     the factors and x's shape
    """

    def forward(ctx, x, size=None, scale_factor=None):
        factors = scale_factors("interpolate", x.shape, size, scale_factor)
        lead, dims = x.shape[:2], x.shape[2:]
        spread = lead + sum(((d, s) for d, s in zip(dims, factors)), ())
        ctx.save(factors=factors, shape=x.shape)
        y = ctx.xp.broadcast_to(x.reshape(lead + sum(((d, 1) for d in dims), ())), spread)
        return y.reshape(lead + tuple(d * s for d, s in zip(dims, factors)))

    def backward(ctx, g):
        lead, dims = ctx.shape[:2], ctx.shape[2:]
        blocks = g.reshape(lead + sum(((d, s) for d, s in zip(dims, ctx.factors)), ()))
        return blocks.sum(axis=tuple(range(3, 2 + 2 * len(dims), 2)))


def upsample_nearest(input, size=None, scale_factor=None):
    """torch's F.interpolate(input, size, scale_factor, mode="nearest") for whole factors (see UpsampleNearest)."""
    return UpsampleNearest.apply(input, size=size, scale_factor=scale_factor)
