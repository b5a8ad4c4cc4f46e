"""Matrix products."""
from minivae.engine import Function
from minivae.ops._broadcast import unbroadcast
from minivae.ops._registry import register


@register("matmul")
class Matmul(Function):
    """z = x @ y (NumPy's matmul: 1-D operands promoted, leading axes batched and broadcast);
    x̄ = unbroadcast(ḡ @ yᵀ, x.shape);  ȳ = unbroadcast(xᵀ @ ḡ, y.shape), transposing the last two axes."""

    def forward(ctx, x, y):
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(f"matmul needs at least 1-D operands, got shapes {x.shape} and {y.shape}")
        if x.shape[-1] != y.shape[-2 if y.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {x.shape} and {y.shape} do not match "
                             f"({x.shape[-1]} != {y.shape[-2 if y.ndim > 1 else 0]})")
        ctx.save(x=x, y=y)
        return ctx.xp.matmul(x, y)

    def backward(ctx, g):
        x, y = ctx.x, ctx.y
        # promote 1-D operands the way the forward did, so one batched formula serves all cases
        x2 = x[None, :] if x.ndim == 1 else x
        y2 = y[:, None] if y.ndim == 1 else y
        if x.ndim == 1:
            g = g[..., None, :] if y.ndim > 1 else g[..., None]
        if y.ndim == 1:
            g = g[..., None]
        gx = g @ y2.swapaxes(-1, -2) if ctx.needs_input_grad[0] else None
        gy = x2.swapaxes(-1, -2) @ g if ctx.needs_input_grad[1] else None
        if gx is not None:
            gx = unbroadcast(gx, x2.shape).reshape(x.shape)
        if gy is not None:
            gy = unbroadcast(gy, y2.shape).reshape(y.shape)
        return gx, gy


matmul = Matmul.apply
