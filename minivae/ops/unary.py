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
    """y = eˣ − 1;  x̄ = ḡ·eˣ (not ḡ·(y + 1), which cancels where y ≈ −1: 9% off at x = −14.9 in float32, 0 from −17)."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        return ctx.xp.expm1(x)

    def backward(ctx, g):
        return g * ctx.xp.exp(ctx.x)


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


# The activations of torch.nn beyond relu, tanh, sigmoid and softplus. Each keeps torch's gradient at its kink
# (x = 0): relu'(0) = 0 above, leaky_relu'(0) = s, elu'(0) = α.
import numbers  # noqa: E402  (this part appended: imports here)

from minivae.ops.special import erf_forward, fused_special, in_float64  # noqa: E402  (special imports ``real`` from this module)

SQRT2 = 1.4142135623730951            # √2 = 1.41421356237309504880…
INV_SQRT_2PI = 0.3989422804014327     # 1/√(2π) = 0.39894228040143267794…
SQRT_2_OVER_PI = 0.7978845608028654   # √(2/π) = 0.79788456080286535588…
GELU_TANH_CUBIC = 0.044715            # the cubic term of the tanh approximation (Hendrycks & Gimpel 2016)
GELU_FLAT = 40.0  # |x| beyond which e^{−x²/2} (e^{−800}) and 1 − tanh² u round to 0 in float64, and below which
#                   x³ is finite in float16 (64000)


def _real_number(op, name, value):
    """A number parameter as a Python float (x's dtype is kept: NumPy and CuPy do not promote for a Python float)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {name} must be a real number, got {value!r}")
    return float(value)


@register("leaky_relu")
class LeakyRelu(Function):
    """y = x for x > 0, s·x otherwise (s = ``negative_slope``);  x̄ = ḡ for x > 0, ḡ·s otherwise (s at x = 0, as
    torch's).  saves [x > 0]."""

    def forward(ctx, x, negative_slope=0.01):
        s = _real_number("leaky_relu", "negative_slope", negative_slope)
        x = real(x)
        positive = x > 0
        ctx.save(positive=positive, s=s)
        return ctx.xp.where(positive, x, x * s)

    def backward(ctx, g):
        return ctx.xp.where(ctx.positive, g, g * ctx.s)


@register("elu")
class Elu(Function):
    """y = x for x > 0, α·(eˣ − 1) otherwise;  x̄ = ḡ for x > 0, ḡ·α·eˣ otherwise (α at x = 0, as torch's).
    saves x (α·eˣ is not taken as y + α, which loses the digits of a small α·eˣ); eˣ of min(x, 0) only, so a large x
    never overflows."""

    def forward(ctx, x, alpha=1.0):
        a = _real_number("elu", "alpha", alpha)
        x = real(x)
        ctx.save(x=x, a=a)
        xp = ctx.xp
        return xp.where(x > 0, x, a * xp.expm1(xp.minimum(x, 0)))

    def backward(ctx, g):
        xp, x = ctx.xp, ctx.x
        return xp.where(x > 0, g, g * (ctx.a * xp.exp(xp.minimum(x, 0))))


@register("gelu")
class Gelu(Function):
    r"""Gaussian error linear unit (Hendrycks & Gimpel 2016), torch's two forms.

    approximate="none"  y = x·Φ(x),  Φ(x) = ½·erfc(−x/√2);  x̄ = ḡ·(Φ(x) + x·φ(x)),  φ(x) = e^{−x²/2}/√(2π)
    approximate="tanh"  y = ½x·(1 + tanh u),  u = √(2/π)·(x + 0.044715·x³);
                        x̄ = ḡ·(½(1 + tanh u) + ½x·(1 − tanh² u)·√(2/π)·(1 + 3·0.044715·x²))
    saves     x and Φ(x), or x and tanh u
    Φ is computed as ½·erfc(−x/√2) (ops.erfc's float64 arithmetic, rounded once to x's dtype), not torch's
    ½(1 + erf(x/√2)): the same values within rounding, but the left tail keeps its digits (gelu(−10) = −7.6e-23, where
    1 + erf rounds to 0). At ±1e4 both forms give x and −0, their gradients 1 and 0, float16 too (x² and x³ are
    taken of x clipped to ±40, where they no longer change a result, so they never overflow).
    """

    def forward(ctx, x, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        x = real(x)
        xp = ctx.xp
        if approximate == "tanh":
            c = xp.clip(x, -GELU_FLAT, GELU_FLAT)  # (the cubic of |x| ≤ 40: no float16 overflow, the same tanh u)
            t = xp.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_CUBIC * (c * c * c)))
            ctx.save(x=x, t=t, cdf=None)
            return 0.5 * x * (1 + t)
        kernel = fused_special(ctx, x)  # (one pass, or one launch, where the formula makes about a hundred)
        cdf = 0.5 * (kernel.erfc(x, -SQRT2) if kernel else in_float64(lambda v: erf_forward(xp, v / -SQRT2, complement=True), x))
        ctx.save(x=x, t=None, cdf=cdf)
        return x * cdf

    def backward(ctx, g):
        xp, x, t = ctx.xp, ctx.x, ctx.t
        c = xp.clip(x, -GELU_FLAT, GELU_FLAT)  # x² of |x| ≤ 40: φ and 1 − tanh² u are 0 beyond in float64 already
        if t is None:
            return g * (ctx.cdf + x * (INV_SQRT_2PI * xp.exp(-0.5 * (c * c))))
        return g * (0.5 * (1 + t) + (0.5 * x) * (1 - t * t) * (SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_CUBIC * (c * c))))


@register("silu")
class Silu(Function):
    """y = x·σ(x) (SiLU, swish);  x̄ = ḡ·σ(x)·(1 + x·(1 − σ(x))).  saves x, σ(x) (the stable σ: finite at any x)."""

    def forward(ctx, x):
        x = real(x)
        s = stable_sigmoid(ctx.xp, x)
        ctx.save(x=x, s=s)
        return x * s

    def backward(ctx, g):
        s = ctx.s
        return g * (s * (1 + ctx.x * (1 - s)))


leaky_relu, elu, gelu, silu = LeakyRelu.apply, Elu.apply, Gelu.apply, Silu.apply
