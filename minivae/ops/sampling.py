"""Sampling ops: Gumbel-Softmax with its noise drawn from a Philox stream, and the straight-through
one-hot, whose backward is a deliberate surrogate rather than the derivative of its forward."""
from minivae._backend import device_of
from minivae.engine import Function
from minivae.ops._broadcast import normalize_axis
from minivae.ops._registry import register
from minivae.ops.softmax import check_temperature, softmax_array, softmax_vjp
from minivae.plan import drawn_counter
from minivae.random import Generator

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
        z = (k == xp.arange(y.shape[axis]).reshape(shape)).astype(y.dtype)
        if y.dtype.kind != "f":
            return z
        # NaN in, NaN out: a row holding NaN has no argmax (numpy.argmax would point at the NaN)
        return xp.where(xp.isnan(y).any(axis=axis, keepdims=True), xp.nan, z).astype(y.dtype, copy=False)

    def backward(ctx, g):
        return g


SURROGATES.add("straight_through")
straight_through = StraightThrough.apply


@register("gumbel_softmax")
class GumbelSoftmax(Function):
    r"""Gumbel-Softmax over the last axis with noise from the Philox stream (seed, counter).

    forward   y = softmax((l + g)/τ),  g = Generator(seed, counter).gumbel(l.shape): the same noise
              on every backend (the float32 CUDA kernel evaluates g's logarithms in float32: within
              a few ulp); ``hard`` returns one_hot(argmax y) (ties to the lowest index) instead
    backward  l̄ = y ⊙ (ḡ − Σ_k ḡ_k y_k)/τ  (for ``hard`` too: straight-through)
    saves     y            fused: minivae/_cpu/gumbel.py gumbel_softmax_fwd, kernels/gumbel_softmax.cu
                           (noise made in-kernel, never stored), backward by softmax_bwd
    """

    def forward(ctx, logits, seed=0, counter=0, temperature=1.0, hard=False):
        temperature = check_temperature(temperature)
        if logits.dtype.kind != "f":  # integer logits: noise of their dtype would be truncated away
            logits = logits.astype(ctx.xp.result_type(logits.dtype, ctx.xp.float32))
        kernel = ctx.fused("gumbel", logits) if logits.ndim else None
        if kernel is not None:
            y, out = kernel.gumbel_softmax_fwd(logits, seed, counter, temperature, hard)
        else:
            xp = ctx.xp
            g = Generator(seed, counter).gumbel(logits.shape, logits.dtype, device=device_of(logits))
            y = softmax_array(xp, logits + g, (logits.ndim - 1,), temperature)
            out = StraightThrough.forward(ctx, y) if hard else y
        ctx.save(y=y, tau=temperature, kernel=ctx.fused("softmax") if kernel is not None else None)
        return out

    def backward(ctx, g):
        y = ctx.y
        if ctx.kernel is not None:
            return ctx.kernel.softmax_bwd(y, g, ctx.tau)
        return softmax_vjp(y, g, -1, ctx.tau)


def gumbel_softmax(logits, rng, temperature=1.0, hard=False):
    """The op above with the noise of ``rng``'s next draw of logits.size values (the counter advances)."""
    counter = drawn_counter(rng, (logits.data.size + 3) // 4)
    return GumbelSoftmax.apply(logits, seed=rng.seed, counter=counter, temperature=temperature, hard=hard)
