"""Losses written as single ops, so their stable formula and its VJP sit together."""
from minivae.engine import Function
from minivae.ops._broadcast import unbroadcast
from minivae.ops._registry import register
from minivae.ops.unary import stable_sigmoid


@register("bce_with_logits")
class BCEWithLogits(Function):
    r"""Elementwise binary cross-entropy of targets t under Bernoulli(σ(x)), from logits.

    forward   ℓ = −[t log σ(x) + (1 − t) log(1 − σ(x))] = max(x, 0) − x·t + log1p(e^{−|x|})
    backward  x̄ = ḡ·(σ(x) − t);  t̄ = −ḡ·x
    saves     x, t          fused (same shapes and dtype): minivae/_cpu/bce.py bce_fwd computes ℓ
                            and σ(x) − t in one pass, and the VJP is then one multiply
    """

    def forward(ctx, x, t):
        xp = ctx.xp
        kernel = ctx.fused("bce") if x.shape == t.shape and x.dtype == t.dtype else None
        if kernel is not None:
            loss, dx = kernel.bce_fwd(x, t)
            ctx.save(x=x, t=t, dx=dx)
            return loss
        ctx.save(x=x, t=t, dx=None)
        return xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(ctx, g):
        x, t = ctx.x, ctx.t
        dx = ctx.dx if ctx.dx is not None else stable_sigmoid(ctx.xp, x) - t
        gx = unbroadcast(g * dx, x.shape)
        gt = unbroadcast(-g * x, t.shape) if ctx.needs_input_grad[1] else None
        return gx, gt


bce_with_logits = BCEWithLogits.apply
