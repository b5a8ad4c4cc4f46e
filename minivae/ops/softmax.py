"""Softmax and log-softmax with a temperature τ: softmax(x / τ) along ``axis``."""
from minivae.engine import Function
from minivae.ops._broadcast import normalize_axis
from minivae.ops._registry import register


def _check_temperature(temperature):
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _scaled(x, axis, temperature):
    """z = (x − max x) / τ: the shift makes every exponent ≤ 0, so nothing overflows."""
    return (x - x.max(axis=axis, keepdims=True)) / temperature


@register("softmax")
class Softmax(Function):
    r"""Softmax with temperature along ``axis``.

    forward   y = exp((x − max x)/τ) / Σ_k exp((x_k − max x)/τ)
    backward  x̄ = y ⊙ (ḡ − Σ_k ḡ_k y_k) / τ
    saves     y
    """

    def forward(ctx, x, axis=-1, temperature=1.0):
        _check_temperature(temperature)
        axis = normalize_axis(axis, x.ndim, x.shape)
        y = ctx.xp.exp(_scaled(x, axis, temperature))
        y /= y.sum(axis=axis, keepdims=True)
        ctx.save(y=y, axis=axis, tau=temperature)
        return y

    def backward(ctx, g):
        y = ctx.y
        return y * (g - (g * y).sum(axis=ctx.axis, keepdims=True)) / ctx.tau


@register("log_softmax")
class LogSoftmax(Function):
    r"""Log-softmax with temperature along ``axis``.

    forward   y = z − log Σ_k exp(z_k),  z = (x − max x)/τ
    backward  x̄ = (ḡ − exp(y) Σ_k ḡ_k) / τ
    saves     y
    """

    def forward(ctx, x, axis=-1, temperature=1.0):
        _check_temperature(temperature)
        axis = normalize_axis(axis, x.ndim, x.shape)
        z = _scaled(x, axis, temperature)
        y = z - ctx.xp.log(ctx.xp.exp(z).sum(axis=axis, keepdims=True))
        ctx.save(y=y, axis=axis, tau=temperature)
        return y

    def backward(ctx, g):
        return (g - ctx.xp.exp(ctx.y) * g.sum(axis=ctx.axis, keepdims=True)) / ctx.tau


def softmax(x, axis=-1, temperature=1.0):
    return Softmax.apply(x, axis=axis, temperature=temperature)


def log_softmax(x, axis=-1, temperature=1.0):
    return LogSoftmax.apply(x, axis=axis, temperature=temperature)
