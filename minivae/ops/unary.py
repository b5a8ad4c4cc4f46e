"""Elementwise unary functions. Where the derivative is a function of the output
(exp, sqrt, tanh, sigmoid), the output is what is saved."""
import numpy

from minivae.engine import DEFAULT_FLOAT, Function
from minivae.ops._registry import register


def real(x):
    """x for a function with real values: an integer or bool array as the default float dtype, float32, as in
    PyTorch (NumPy's exp of int64 is float64); a floating array as it is."""
    return x.astype(DEFAULT_FLOAT) if x.dtype.kind in "biu" else x


def accumulated(x):
    """x as a reduction computes with it (``real``'s, and float16 as float32): PyTorch's accumulate type for half,
    whose sums, means, variances, log-sum-exps and softmaxes of float16 add in float32 and round once to float16.
    Added in float16, 4096 values near 1000 overflow (65504) and lose their variance, and 1/70000 is 0."""
    return x.astype(numpy.float32) if x.dtype == numpy.float16 else real(x)


@register("exp")
class Exp(Function):
    """y = eˣ;  x̄ = ḡ·y."""

    def forward(ctx, x):
        x = real(x)
        y = ctx.xp.exp(x)
        ctx.save(y=y)
        return y

    def backward(ctx, g):
        return g * ctx.y


@register("log")
class Log(Function):
    """y = log x;  x̄ = ḡ / x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        return ctx.xp.log(x)

    def backward(ctx, g):
        return g / ctx.x


@register("log1p")
class Log1p(Function):
    """y = log(1 + x);  x̄ = ḡ / (1 + x)."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        return ctx.xp.log1p(x)

    def backward(ctx, g):
        return g / (1 + ctx.x)


@register("expm1")
class Expm1(Function):
    """y = eˣ − 1;  x̄ = ḡ·(y + 1)."""

    def forward(ctx, x):
        x = real(x)
        y = ctx.xp.expm1(x)
        ctx.save(y=y)
        return y

    def backward(ctx, g):
        return g * (ctx.y + 1)


@register("sqrt")
class Sqrt(Function):
    """y = √x;  x̄ = ḡ / (2y)."""

    def forward(ctx, x):
        x = real(x)
        y = ctx.xp.sqrt(x)
        ctx.save(y=y)
        return y

    def backward(ctx, g):
        return g / (2 * ctx.y)


@register("abs")
class Abs(Function):
    """y = |x|;  x̄ = ḡ·sign(x) (0 at x = 0)."""

    def forward(ctx, x):
        ctx.save(x=x)
        return ctx.xp.abs(x)

    def backward(ctx, g):
        return g * ctx.xp.sign(ctx.x)


@register("tanh")
class Tanh(Function):
    """y = tanh x;  x̄ = ḡ·(1 − y²)."""

    def forward(ctx, x):
        x = real(x)
        y = ctx.xp.tanh(x)
        ctx.save(y=y)
        return y

    def backward(ctx, g):
        return g * (1 - ctx.y * ctx.y)


@register("sin")
class Sin(Function):
    """y = sin x;  x̄ = ḡ·cos x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        return ctx.xp.sin(x)

    def backward(ctx, g):
        return g * ctx.xp.cos(ctx.x)


@register("cos")
class Cos(Function):
    """y = cos x;  x̄ = −ḡ·sin x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        return ctx.xp.cos(x)

    def backward(ctx, g):
        return -g * ctx.xp.sin(ctx.x)


def stable_sigmoid(xp, x):
    """σ(x) = 1/(1 + e⁻ˣ) for x ≥ 0 and eˣ/(1 + eˣ) for x < 0: e^{−|x|} never overflows."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def stable_softplus(xp, x):
    """log(1 + eˣ) = max(x, 0) + log1p(e^{−|x|}): finite for any finite x."""
    return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))


@register("sigmoid")
class Sigmoid(Function):
    """y = σ(x) = 1/(1 + e⁻ˣ);  x̄ = ḡ·y·(1 − y)."""

    def forward(ctx, x):
        x = real(x)
        y = stable_sigmoid(ctx.xp, x)
        ctx.save(y=y)
        return y

    def backward(ctx, g):
        return g * ctx.y * (1 - ctx.y)


@register("softplus")
class Softplus(Function):
    """y = log(1 + eˣ);  x̄ = ḡ·σ(x)."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        return stable_softplus(ctx.xp, x)

    def backward(ctx, g):
        return g * stable_sigmoid(ctx.xp, ctx.x)


@register("relu")
class Relu(Function):
    """y = max(x, 0);  x̄ = ḡ·[x > 0]. A bool x is its own relu (max(x, False) = x; NumPy's maximum with 0 made
    it int64; PyTorch refuses it)."""

    def forward(ctx, x):
        ctx.save(positive=x > 0)
        return x.copy() if x.dtype.kind == "b" else ctx.xp.maximum(x, 0)

    def backward(ctx, g):
        return g * ctx.positive


exp, log, log1p, expm1, sqrt, abs = Exp.apply, Log.apply, Log1p.apply, Expm1.apply, Sqrt.apply, Abs.apply
tanh, sigmoid, softplus, relu = Tanh.apply, Sigmoid.apply, Softplus.apply, Relu.apply
sin, cos = Sin.apply, Cos.apply
