"""Sampling ops: Gumbel-Softmax with its noise drawn from a Philox stream (alone, or with the categorical KL of
the same logits as one node), and the straight-through one-hot, whose backward is a deliberate surrogate rather
than the derivative of its forward."""
from minivae._backend import device_of
from minivae.engine import Function
from minivae.ops._broadcast import normalize_axis
from minivae.ops._registry import register
from minivae.ops.losses import CategoricalKL, _prior_rows
from minivae.ops.softmax import check_temperature, softmax_array, softmax_vjp
from minivae.ops.unary import accumulated, real
from minivae.plan import drawn_counter
from minivae.random import Generator

SURROGATES = set()  # ops whose VJP is by design not the derivative of the forward (tested apart)


@register("straight_through")
class StraightThrough(Function):
    r"""Straight-through one-hot: forward the one-hot of argmax y, backward as if the identity.

    forward   z = one_hot(argmax_axis y)  (ties go to the lowest index, as numpy.argmax)
    backward  ȳ = ḡ  (the soft sample's gradient: Bengio et al. 2013; Jang et al. 2017)
    ``axis`` is one axis: a tuple of several (or None over 2 or more dimensions) is refused, as F.gumbel_softmax's
    hard=True refuses it (the one-hot was taken along the first of them alone: one 1 per column of a (2, 3) y, not one).
    """

    def forward(ctx, y, axis=-1):
        xp = ctx.xp
        axes = normalize_axis(axis, y.ndim, y.shape)
        if len(axes) != 1:
            raise ValueError(f"straight_through takes one axis (a one-hot is along one), got axis={axis!r} for a "
                             f"tensor of shape {y.shape}")
        axis = axes[0]
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
        logits = real(logits)  # integer logits as float32 (int64's were float64): noise of their dtype would be truncated
        kernel = ctx.fused("gumbel", logits) if logits.ndim and logits.size else None  # (rows, not empty)
        if kernel is not None:
            y, out = kernel.gumbel_softmax_fwd(logits, seed, counter, temperature, hard)
        else:
            xp = ctx.xp
            g = Generator(seed, counter).gumbel(logits.shape, logits.dtype, device=device_of(logits))
            # (float16: l + g in float16, its softmax in float32 rounded once, as softmax's)
            y = softmax_array(xp, accumulated(logits + g), (logits.ndim - 1,), temperature)
            out = StraightThrough.forward(ctx, y) if hard else y
            out = out.astype(logits.dtype, copy=False)
        ctx.save(y=y, tau=temperature, kernel=ctx.fused("softmax") if kernel is not None else None)
        return out

    def backward(ctx, g):
        y = ctx.y
        if ctx.kernel is not None:
            return ctx.kernel.softmax_bwd(y, g, ctx.tau)
        return softmax_vjp(y, g, -1, ctx.tau)


def gumbel_softmax(logits, rng, temperature=1.0, hard=False):
    """The op above with the noise of ``rng``'s next draw of logits.size values (the counter advances)."""
    return GumbelSoftmax.apply(logits, seed=rng.seed, counter=_gumbel_counter(rng, logits), temperature=temperature,
                               hard=hard)


def _gumbel_counter(rng, logits):
    """The Philox counter of ``rng``'s next logits.size values, 4 a block (advancing it past them)."""
    return drawn_counter(rng, (logits.data.size + 3) // 4)


@register("gumbel_softmax_kl")
class GumbelSoftmaxKL(Function):
    r"""gumbel_softmax and categorical_kl of the same logits as one node of two outputs: a categorical VAE's
    relaxed sample and its KL to the prior.

    forward   y = softmax((l + g)/τ) (one_hot(argmax y) if ``hard``), g the Philox (seed, counter) noise of
              gumbel_softmax;  kl = Σ_k q_k (log q_k − log p_k),  q = softmax l,  p = softmax l_p (l_p broadcast)
    backward  l̄ = y ⊙ (ȳ − Σ_k ȳ_k y_k)/τ + k̄l·q ⊙ ((log q − log p) − kl);  l̄_p = unbroadcast(k̄l·(p − q))
              (the two VJPs, added; a ḡ that never came counts as 0)
    saves     the two ops' residuals; fused on the GPU for rows of k ≤ 256 and a prior without a gradient (the
              VAE's): y, l, the prior's rows and kl, kernels/gumbel_softmax.cu gumbel_softmax_kl_warp_fwd/_bwd making
              q and log q − log p again from l: one launch each way, where the two ops take two forward and three
              backward (their VJPs and the sum)
    The same numbers as the two ops, on the CPU bit for bit.
    """

    def forward(ctx, logits, prior_logits, seed=0, counter=0, temperature=1.0, hard=False):
        temperature = check_temperature(temperature)
        kernel = (ctx.fused("gumbel", logits, prior_logits)
                  if logits.ndim and logits.dtype == prior_logits.dtype and not ctx.needs_input_grad[1] else None)
        fwd, pair = getattr(kernel, "gumbel_softmax_kl_fwd", None), None  # the GPU's
        if fwd is not None:
            prior = _prior_rows(ctx.xp, prior_logits, logits.shape)
            pair = fwd(logits, prior, seed, counter, temperature, hard)  # None: rows too long (or empty) for it
        if pair is not None:
            y, out, kl = pair
            ctx.save(y=y, logits=logits, prior=prior, kl=kl, tau=temperature, parts=None,
                     bwd=kernel.gumbel_softmax_kl_bwd)
            return out, kl
        parts = GumbelSoftmax(ctx.xp, ctx.needs_input_grad[:1]), CategoricalKL(ctx.xp, ctx.needs_input_grad)
        out = parts[0].forward(logits, seed=seed, counter=counter, temperature=temperature, hard=hard)
        kl = parts[1].forward(logits, prior_logits)
        ctx.save(parts=parts, bwd=None, prior_dtype=prior_logits.dtype)
        return out, kl

    def backward(ctx, g):
        gy, gkl = g
        if ctx.bwd is not None:
            return ctx.bwd(ctx.y, gy, ctx.logits, ctx.prior, ctx.kl, gkl, ctx.tau), None
        sample, kl = ctx.parts
        gl = gp = None
        if gy is not None:
            gl = sample.backward(gy)
        if gkl is not None:
            gk, gp = kl.backward(gkl)
            gl = gk if gl is None else gl + gk
        elif ctx.needs_input_grad[1]:  # no gradient reached the KL: a learnable prior's is 0
            gp = ctx.xp.zeros(kl.prior_shape, ctx.prior_dtype)
        return gl, gp


def gumbel_softmax_kl(logits, prior_logits, rng, temperature=1.0, hard=False):
    """(sample, kl): ``gumbel_softmax(logits, rng, temperature, hard)`` and ``categorical_kl(logits, prior_logits)``
    as one op (one kernel each way on the GPU); the same noise, and the counter advances as gumbel_softmax's."""
    return GumbelSoftmaxKL.apply(logits, prior_logits, seed=rng.seed, counter=_gumbel_counter(rng, logits),
                                 temperature=temperature, hard=hard)
