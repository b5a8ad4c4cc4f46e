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
    saves     x, t
    """

    def forward(ctx, x, t):
        xp = ctx.xp
        ctx.save(x=x, t=t)
        return xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(ctx, g):
        x, t = ctx.x, ctx.t
        gx = unbroadcast(g * (stable_sigmoid(ctx.xp, x) - t), x.shape)
        gt = unbroadcast(-g * x, t.shape) if ctx.needs_input_grad[1] else None
        return gx, gt


bce_with_logits = BCEWithLogits.apply
