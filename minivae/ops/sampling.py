"""Sampling ops whose backward is a deliberate surrogate, not the true derivative."""
from minivae.engine import Function
from minivae.ops._broadcast import normalize_axis
from minivae.ops._registry import register

SURROGATES = set()  # ops whose VJP is by design not the derivative of the forward (tested apart)


@register("straight_through")
class StraightThrough(Function):
    r"""Straight-through one-hot: forward the one-hot of argmax y, backward as if the identity.

    forward   z = one_hot(argmax_axis y)  (ties go to the lowest index, as numpy.argmax)
    backward  ȳ = ḡ  (the soft sample's gradient: Bengio et al. 2013; Jang et al. 2017)
    """

    def forward(ctx, y, axis=-1):
        xp = ctx.xp
        axis = normalize_axis(axis, y.ndim, y.shape)[0]
        k = xp.expand_dims(y.argmax(axis=axis), axis)
        shape = [1] * y.ndim
        shape[axis] = y.shape[axis]
        return (k == xp.arange(y.shape[axis]).reshape(shape)).astype(y.dtype)

    def backward(ctx, g):
        return g


SURROGATES.add("straight_through")
straight_through = StraightThrough.apply
