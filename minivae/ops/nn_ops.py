"""The ops behind two torch.nn layers: dropout (its mask drawn from a Philox stream in the op) and the binary
cross-entropy from logits with a weight on the positive class (BCEWithLogitsLoss's ``pos_weight``)."""
import numbers

import numpy

from minivae._backend import device_of
from minivae.engine import Function
from minivae.ops._broadcast import unbroadcast
from minivae.ops._registry import register
from minivae.ops.arith import common
from minivae.ops.unary import real, stable_sigmoid, stable_softplus
from minivae.plan import drawn_counter
from minivae.random import Generator


def check_dropout_probability(p):
    """``p`` as a float in [0, 1], else torch's ValueError (a bool, NaN or a non-number is refused too)."""
    if isinstance(p, (bool, numpy.bool_)) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p!r}")
    return float(p)


@register("dropout")
class Dropout(Function):
    r"""Inverted dropout: each element kept with probability 1 − p and scaled by 1/(1 − p), else 0.

    forward   y = m ⊙ x / (1 − p),  m_i = [u_i ≥ p],  u = Generator(seed, counter).uniform(x.shape, float32)
              (the same mask whatever x's dtype or device); p = 1 drops everything: y = 0, even where x is ±inf
              or NaN (torch's x·0 is NaN there), and p = 0 keeps everything (y = x)
    backward  x̄ = m ⊙ ḡ / (1 − p)   (the same mask, the same scale; 0 for p = 1)
    saves     m (bool) and the scale
    Integer and bool x are float32 (``real``; torch refuses them). On the GPU the uniforms are made on the device
    (Generator.uniform with ``device=``) and nothing is copied to the host.
    """

    def forward(ctx, x, seed=0, counter=0, p=0.5):
        p = check_dropout_probability(p)
        x = real(x)
        u = Generator(seed, counter).uniform(x.shape, numpy.float32, device=device_of(x))
        keep = u >= numpy.float32(p)  # P(u ≥ p) = 1 − p for u uniform in (0, 1); none for p = 1 (u < 1)
        scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
        ctx.save(keep=keep, scale=scale)
        return _masked(ctx.xp, keep, x, scale)

    def backward(ctx, g):
        return _masked(ctx.xp, ctx.keep, g, ctx.scale)


def _masked(xp, keep, x, scale):
    """x·scale where ``keep``, 0 elsewhere (a dropped ±inf or NaN is 0 too), in x's dtype."""
    return (xp.where(keep, x, 0) * scale).astype(x.dtype, copy=False)  # (masked first: no inf·0 for p = 1)


def dropout(x, rng, p=0.5):
    """The op above with the mask of ``rng``'s next x.size float32 uniforms (the counter advances past them)."""
    return Dropout.apply(x, seed=rng.seed, counter=drawn_counter(rng, (x.data.size + 3) // 4), p=p)


@register("bce_with_logits_pos_weight")
class BCEWithLogitsPosWeight(Function):
    r"""Elementwise binary cross-entropy from logits x with the positive term weighted by p (torch's ``pos_weight``).

    forward   ℓ = −[p·t log σ(x) + (1 − t) log(1 − σ(x))] = (1 − t)·x + (1 + (p − 1)·t)·softplus(−x)
              (the stable softplus: exact for |x| up to 1e4 and beyond; p = 1 is bce_with_logits)
    backward  x̄ = ḡ·((1 + (p − 1)·t)·σ(x) − p·t);  t̄ = ḡ·((p − 1)·softplus(−x) − x);  p̄ = ḡ·t·softplus(−x)
              (each unbroadcast to its input's shape: p is usually one weight per class, the last axis)
    saves     x, t, p, softplus(−x)
    The three operands in their common dtype (``common``: integer targets in the logits' dtype, as bce_with_logits).
    """

    def forward(ctx, x, t, p):
        x, t, p = common((x, t, p))
        sp = stable_softplus(ctx.xp, -x)  # −log(1 − σ(x)) = softplus(x) − x; −log σ(x) = softplus(−x)
        ctx.save(x=x, t=t, p=p, sp=sp)
        return (1 - t) * x + (1 + (p - 1) * t) * sp

    def backward(ctx, g):
        x, t, p, sp = ctx.x, ctx.t, ctx.p, ctx.sp
        need = ctx.needs_input_grad
        gx = unbroadcast(g * ((1 + (p - 1) * t) * stable_sigmoid(ctx.xp, x) - p * t), x.shape)
        gt = unbroadcast(g * ((p - 1) * sp - x), t.shape) if need[1] else None
        gp = unbroadcast(g * t * sp, p.shape) if need[2] else None
        return gx, gt, gp


bce_with_logits_pos_weight = BCEWithLogitsPosWeight.apply
