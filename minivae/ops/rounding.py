"""Piecewise-constant functions: sign, floor, ceil, round, trunc. Their derivative is 0 wherever it exists, and the
VJP is 0 everywhere (PyTorch's: no subgradient at the jumps, no straight-through)."""
from minivae.engine import Function
from minivae.ops._registry import register


class _Step(Function):
    """y = f(x) for a step function f;  x̄ = 0. An integer x is its own floor, ceil, round and trunc (a copy in its
    dtype, as PyTorch's, whatever the array library's version: NumPy before 2.1 made floor of int32 float64); a bool x is
    refused by those four, as PyTorch's (NumPy's floor of bool is a bool, or float16 before 2.1)."""

    ufunc = None

    def forward(ctx, x):
        if x.dtype.kind == "b":
            raise TypeError(f"{ctx.name} of a bool tensor is not supported (as PyTorch's)")
        if x.dtype.kind in "iu":
            return x.copy()
        return getattr(ctx.xp, ctx.ufunc)(x)

    def backward(ctx, g):
        return ctx.xp.zeros_like(g)


@register("sign")
class Sign(_Step):
    """y = sign(x) ∈ {−1, 0, 1} (NaN of NaN);  x̄ = 0. A bool x is its own sign (True = 1), as PyTorch's; an unsigned
    x's is 0 or 1."""

    ufunc = "sign"

    def forward(ctx, x):
        return x.copy() if x.dtype.kind == "b" else ctx.xp.sign(x)


@register("floor")
class Floor(_Step):
    """y = ⌊x⌋;  x̄ = 0."""

    ufunc = "floor"


@register("ceil")
class Ceil(_Step):
    """y = ⌈x⌉;  x̄ = 0."""

    ufunc = "ceil"


@register("round")
class Round(_Step):
    """y = x rounded to the nearest integer, halves to even (numpy.round, torch.round);  x̄ = 0."""

    ufunc = "round"


@register("trunc")
class Trunc(_Step):
    """y = x rounded toward 0;  x̄ = 0."""

    ufunc = "trunc"


sign, floor, ceil, round, trunc = Sign.apply, Floor.apply, Ceil.apply, Round.apply, Trunc.apply
