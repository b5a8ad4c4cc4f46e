"""More elementwise functions with torch's names, each an op with its VJP beside it: the trigonometric and hyperbolic
functions and their inverses, atan2, hypot, logaddexp, xlogy, log2, log10, exp2, rsqrt, reciprocal, square, logit,
and the activations of torch.nn that minivae lacked (log_sigmoid, softsign, hardtanh, celu, mish, hardsigmoid,
hardswish; relu6, selu and softmin are these and older ops with torch's constants).

Integer and bool inputs are float32 (``unary.real``), as the other real functions, except square's (torch keeps
integers, and makes bools int64). Values and gradients are finite wherever the function and its derivative are, for
inputs up to ±1e4 in float16, float32 and float64 (asinh's and acosh's gradients are taken without forming x², which
overflows float16 at 256 and float32 at 1.8·10¹⁹; softsign's without (1 + |x|)²); where the result itself overflows
(sinh, cosh, exp2 of large x: ∞ in float32 from |x| ≈ 89, as torch's) it is ∞. At the edges of a domain the values
and gradients are torch's (asin'(±1) = ∞, acosh'(1) = ∞, atanh(±1) = ±∞ and atanh'(±1) = ∞, NaN outside), computed
without NumPy's warnings (torch gives none). Where the gradient differs from torch's on purpose, the op says so.
"""
import math

import numpy

from minivae.engine import Function
from minivae.ops._broadcast import unbroadcast
from minivae.ops._registry import register
from minivae.ops.arith import floating
from minivae.ops.unary import _real_number, elu, real, stable_sigmoid, stable_softplus

LN2, LN10 = math.log(2), math.log(10)
SELU_ALPHA = 1.6732632423543772848170429916717  # Klambauer et al. 2017's α and λ, torch's digits
SELU_SCALE = 1.0507009873554804934193349852946


def quiet():
    """NumPy's floating-point warnings off, for the values at a domain's edge that are the result (1/0 = ∞ of
    atanh'(1), √ of a negative NaN outside asin's domain), which torch returns without a warning."""
    return numpy.errstate(divide="ignore", invalid="ignore", over="ignore")


def real_pair(x, y):
    """The operands of a binary real function: ``arith.floating``'s promotion, then integers and bools float32."""
    x, y = floating(x, y)
    return real(x), real(y)


# ---- trigonometric and hyperbolic functions and their inverses ------------------------------------------------------
@register("tan")
class Tan(Function):
    """y = tan x;  x̄ = ḡ·(1 + y²).  saves y."""

    def forward(ctx, x):
        with quiet():  # (NaN at ±∞, without NumPy's warning)
            y = ctx.xp.tan(real(x))
        ctx.save(y=y)
        return y

    def backward(ctx, g):
        return g * (1 + ctx.y * ctx.y)


@register("asin")
class Asin(Function):
    """y = asin x;  x̄ = ḡ/√(1 − x²), with 1 − x² as (1 − x)(1 + x) (exact near ±1); ∞ at ±1, NaN for |x| > 1.
    saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        with quiet():
            return ctx.xp.arcsin(x)

    def backward(ctx, g):
        x = ctx.x
        with quiet():
            return g / ctx.xp.sqrt((1 - x) * (1 + x))


@register("acos")
class Acos(Function):
    """y = acos x;  x̄ = −ḡ/√(1 − x²) ((1 − x)(1 + x)); −∞ at ±1, NaN for |x| > 1.  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        with quiet():
            return ctx.xp.arccos(x)

    def backward(ctx, g):
        x = ctx.x
        with quiet():
            return -g / ctx.xp.sqrt((1 - x) * (1 + x))


@register("atan")
class Atan(Function):
    """y = atan x;  x̄ = ḡ/(1 + x²) (0 where x² overflows, the derivative's limit).  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        return ctx.xp.arctan(x)

    def backward(ctx, g):
        x = ctx.x
        with quiet():
            return g / (1 + x * x)


@register("sinh")
class Sinh(Function):
    """y = sinh x;  x̄ = ḡ·cosh x (both ±∞ where they overflow, as torch's: float32 from |x| ≈ 89.4).  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        with quiet():
            return ctx.xp.sinh(x)

    def backward(ctx, g):
        with quiet():
            return g * ctx.xp.cosh(ctx.x)


@register("cosh")
class Cosh(Function):
    """y = cosh x;  x̄ = ḡ·sinh x (both ±∞ where they overflow, as torch's).  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        with quiet():
            return ctx.xp.cosh(x)

    def backward(ctx, g):
        with quiet():
            return g * ctx.xp.sinh(ctx.x)


@register("asinh")
class Asinh(Function):
    """y = asinh x;  x̄ = ḡ/√(x² + 1) = ḡ/hypot(x, 1), which never forms x² (torch's gradient is 0 where x² overflows:
    from |x| = 256 in float16, where the derivative 1/|x| is still a normal number).  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        return ctx.xp.arcsinh(x)

    def backward(ctx, g):
        return g / ctx.xp.hypot(ctx.x, 1)


@register("acosh")
class Acosh(Function):
    """y = acosh x;  x̄ = ḡ/√(x² − 1) = ḡ/(√(x − 1)·√(x + 1)), which never forms x² (torch's overflows to a gradient
    of 0, as asinh's); ∞ at x = 1, NaN for x < 1.  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        with quiet():
            return ctx.xp.arccosh(x)

    def backward(ctx, g):
        x, xp = ctx.x, ctx.xp
        with quiet():
            return g / (xp.sqrt(x - 1) * xp.sqrt(x + 1))


@register("atanh")
class Atanh(Function):
    """y = atanh x;  x̄ = ḡ/(1 − x²) = ḡ/((1 − x)(1 + x)); ±∞ and ∞ at ±1, NaN for |x| > 1.  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        with quiet():
            return ctx.xp.arctanh(x)

    def backward(ctx, g):
        x = ctx.x
        with quiet():
            return g / ((1 - x) * (1 + x))


def _over_r(xp, a, b):
    """(a/r², b/r²) for r = hypot(a, b), as (a/r)/r (r² overflows, or underflows, long before r does); (0, 0) where
    r = 0 or r = ∞ (atan2's gradient at the origin, torch's, and its limit at infinity)."""
    r = xp.hypot(a, b)
    ok = (r > 0) & (r < xp.inf)
    r = xp.where(ok, r, 1)
    with quiet():
        return xp.where(ok, (a / r) / r, 0), xp.where(ok, (b / r) / r, 0)


@register("atan2")
class Atan2(Function):
    """z = atan2(y, x), the angle of the point (x, y) in (−π, π];  ȳ = unbroadcast(ḡ·x/(x² + y²), y.shape);
    x̄ = unbroadcast(−ḡ·y/(x² + y²), x.shape), each as (x/r)/r, r = hypot(x, y), so that x² + y² never overflows;
    0 and 0 at (0, 0), as torch's, and where r = ∞.  saves y, x."""

    def forward(ctx, y, x):
        y, x = real_pair(y, x)
        ctx.save(y=y, x=x)
        return ctx.xp.arctan2(y, x)

    def backward(ctx, g):
        y, x = ctx.y, ctx.x
        ny, nx = ctx.needs_input_grad
        dy, dx = _over_r(ctx.xp, x, -y)
        return unbroadcast(g * dy, y.shape) if ny else None, unbroadcast(g * dx, x.shape) if nx else None


@register("hypot")
class Hypot(Function):
    """z = √(x² + y²) without overflow;  x̄ = unbroadcast(ḡ·x/z, x.shape);  ȳ = unbroadcast(ḡ·y/z, y.shape); 0 and 0 at
    (0, 0), a subgradient (the 2-norm's at the zero vector, as ops.norm's), where torch's are NaN. x/z and y/z are
    taken as x′/r and y′/r, (x′, y′) = (x, y)/max(|x|, |y|) with an infinite x or y as ±1, r = hypot(x′, y′) in
    [1, √2]: the limits where z is ∞, 1 at x = ∞ (torch's ∞/∞ is NaN) and 0 for the finite one; 1/√2 each at two
    infinities (the diagonal); x/z of finite x and y where z overflows (x = y = 1.5·10³⁰⁸: 1/√2, not x/∞ = 0).
    saves x, y."""

    def forward(ctx, x, y):
        x, y = real_pair(x, y)
        ctx.save(x=x, y=y)
        with quiet():  # (∞ where it overflows, without NumPy's warning)
            return ctx.xp.hypot(x, y)

    def backward(ctx, g):
        x, y, xp = ctx.x, ctx.y, ctx.xp
        nx, ny = ctx.needs_input_grad
        m = xp.maximum(xp.abs(x), xp.abs(y))
        zero = m == 0
        m = xp.where(zero, 1, m)
        with quiet():
            xs = xp.where(xp.isinf(x), xp.sign(x), x / m)
            ys = xp.where(xp.isinf(y), xp.sign(y), y / m)
            w = g / xp.hypot(xs, ys)
            gx = unbroadcast(xp.where(zero, 0, w * xs), x.shape) if nx else None
            gy = unbroadcast(xp.where(zero, 0, w * ys), y.shape) if ny else None
        return gx, gy


@register("logaddexp")
class Logaddexp(Function):
    """z = log(eˣ + eʸ) = max(x, y) + log1p(e^{−|x − y|}) (finite for any finite x, y);  x̄ = unbroadcast(ḡ·σ(x − y),
    x.shape);  ȳ = unbroadcast(ḡ·σ(y − x), y.shape), the softmax of the two, each by the stable σ (not ȳ as 1 − σ(x − y),
    which is 0 from x − y ≈ 17 in float32 and 37 in float64, where σ(y − x) is 4·10⁻⁸ and 10⁻¹⁶). Where x = y, both ±∞
    included, z = x + log 2 and the gradients ½ and ½ (torch's are NaN at two equal infinities).  saves d = x − y."""

    def forward(ctx, x, y):
        x, y = real_pair(x, y)
        xp = ctx.xp
        same = x == y
        with quiet():
            d = xp.where(same, 0, x - y)  # (∞ − ∞ is NaN: equal infinities are a tie)
        ctx.save(d=d, xshape=x.shape, yshape=y.shape)
        return xp.maximum(x, y) + xp.log1p(xp.exp(-xp.abs(d)))

    def backward(ctx, g):
        nx, ny = ctx.needs_input_grad
        xp, d = ctx.xp, ctx.d
        return (unbroadcast(g * stable_sigmoid(xp, d), ctx.xshape) if nx else None,
                unbroadcast(g * stable_sigmoid(xp, -d), ctx.yshape) if ny else None)


@register("xlogy")
class Xlogy(Function):
    """z = x·log y, 0 where x = 0 (y = 0 and y = ∞ too; NaN where y is NaN), as torch.xlogy;
    x̄ = unbroadcast(ḡ·log y, x.shape) (0 where ḡ = 0, and where x = 0 and y ≤ 0: torch's);
    ȳ = unbroadcast(ḡ·x/y, y.shape), 0 where x = 0 (torch's is NaN at (0, 0): x·log y is 0 for every y on the line
    x = 0, so its partial derivative in y is 0 there, and a Poisson log-density of k = 0 at a rate of 0 keeps a finite
    gradient), and 0 where ḡ = 0 (a VJP is linear in ḡ: torch's 0·x/0 is NaN at y = 0, which a branch of ops.where
    that is not taken, a log-density at the edge of its support, passes on as NaN). Where the value is ±∞ (y = 0 or
    y = ∞ with x ≠ 0) the gradients are torch's ±∞ (log 0 = −∞, x/0 = ±∞: the limits).  saves x, y. The one x·log y
    of minivae: the distributions' log-densities (Gamma, Beta, Dirichlet, Kumaraswamy, Poisson) use it."""

    def forward(ctx, x, y):
        x, y = real_pair(x, y)
        ctx.save(x=x, y=y)
        return _xlogy(ctx.xp, x, y)

    def backward(ctx, g):
        x, y, xp = ctx.x, ctx.y, ctx.xp
        nx, ny = ctx.needs_input_grad
        zero = x == 0
        with quiet():
            gx = unbroadcast(xp.where(zero & (y <= 0), 0, _xlogy(xp, g, y)), x.shape) if nx else None
            gy = unbroadcast(xp.where(zero | (g == 0), 0, g * (x / y)), y.shape) if ny else None
        return gx, gy


def _xlogy(xp, x, y):
    """x·log y, 0 where x = 0 and y is not NaN (torch.xlogy's values)."""
    with quiet():
        return xp.where((x == 0) & ~xp.isnan(y), 0, x * xp.log(y)).astype(x.dtype, copy=False)


# ---- logarithms and powers of other bases, reciprocals, squares ------------------------------------------------------
@register("log2")
class Log2(Function):
    """y = log₂ x;  x̄ = ḡ/(x·ln 2).  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        with quiet():
            return ctx.xp.log2(x)

    def backward(ctx, g):
        with quiet():
            return g / (ctx.x * LN2)


@register("log10")
class Log10(Function):
    """y = log₁₀ x;  x̄ = ḡ/(x·ln 10).  saves x."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(x=x)
        with quiet():
            return ctx.xp.log10(x)

    def backward(ctx, g):
        with quiet():
            return g / (ctx.x * LN10)


@register("exp2")
class Exp2(Function):
    """y = 2ˣ;  x̄ = ḡ·y·ln 2.  saves y."""

    def forward(ctx, x):
        with quiet():
            y = ctx.xp.exp2(real(x))
        ctx.save(y=y)
        return y

    def backward(ctx, g):
        return g * (ctx.y * LN2)


@register("rsqrt")
class Rsqrt(Function):
    """y = 1/√x;  x̄ = −½ḡ·y³ (−∞ at x = 0, as torch's).  saves y."""

    def forward(ctx, x):
        with quiet():
            y = 1 / ctx.xp.sqrt(real(x))
        ctx.save(y=y)
        return y

    def backward(ctx, g):
        y = ctx.y
        with quiet():
            return -0.5 * g * (y * y * y)


@register("reciprocal")
class Reciprocal(Function):
    """y = 1/x;  x̄ = −ḡ·y² (−∞ at x = 0, as torch's).  saves y."""

    def forward(ctx, x):
        with quiet():
            y = 1 / real(x)
        ctx.save(y=y)
        return y

    def backward(ctx, g):
        with quiet():
            return -g * (ctx.y * ctx.y)


@register("square")
class Square(Function):
    """y = x²;  x̄ = 2ḡ·x.  saves x. Integers stay integers and bools are int64, as torch's."""

    def forward(ctx, x):
        if x.dtype.kind == "b":
            x = x.astype(numpy.int64)
        ctx.save(x=x)
        with quiet():
            return x * x

    def backward(ctx, g):
        return g * (2 * ctx.x)


@register("logit")
class Logit(Function):
    """y = log(z/(1 − z)), z = x clamped to [ε, 1 − ε] (``eps`` = ε; None: no clamp), as torch.logit;
    x̄ = ḡ/(x(1 − x)) for ε ≤ x ≤ 1 − ε and 0 outside, where the clamp holds z constant (torch's); without ε, ±∞ at
    0 and 1 and NaN outside [0, 1] (values and gradients, torch's; x̄ = +∞ at x = −0 too, which is 0).
    saves x and the mask."""

    def forward(ctx, x, eps=None):
        x = real(x)
        xp = ctx.xp
        if eps is None:
            z, inside = x, None
        else:
            eps = _real_number("logit", "eps", eps)
            z = xp.clip(x, eps, 1 - eps)
            inside = (x >= eps) & (x <= 1 - eps)
        ctx.save(x=x, inside=inside)
        with quiet():
            return xp.log(z / (1 - z))

    def backward(ctx, g):
        x, inside, xp = ctx.x, ctx.inside, ctx.xp
        with quiet():
            gx = g / (x * (1 - x) + 0.0)  # (+ 0.0: −0 + 0 = +0, so that x = −0 gives +∞ as x = 0)
        if inside is None:
            return xp.where((x < 0) | (x > 1), xp.nan, gx)
        return xp.where(inside, gx, 0)


# ---- activations -----------------------------------------------------------------------------------------------------
@register("log_sigmoid")
class LogSigmoid(Function):
    """y = log σ(x) = −softplus(−x) = min(x, 0) − log1p(e^{−|x|}) (finite for any finite x: −1e4 at −1e4);
    x̄ = ḡ·σ(−x) (the stable σ: 1 at −1e4, 0 at 1e4).  saves x."""

    def forward(ctx, x):
        x = real(x)
        xp = ctx.xp
        ctx.save(x=x)
        return -stable_softplus(xp, -x)

    def backward(ctx, g):
        return g * stable_sigmoid(ctx.xp, -ctx.x)


@register("softsign")
class Softsign(Function):
    """y = x/(1 + |x|), ±1 at ±∞ (its limits: ∞/∞ is NaN);  x̄ = ḡ·(1/(1 + |x|))² (the square of a number ≤ 1: no
    overflow at ±1e4 in float16; 0 at ±∞).  saves x."""

    def forward(ctx, x):
        x = real(x)
        xp = ctx.xp
        ctx.save(x=x)
        with quiet():
            return xp.where(xp.isinf(x), xp.sign(x), x / (1 + xp.abs(x)))

    def backward(ctx, g):
        r = 1 / (1 + ctx.xp.abs(ctx.x))
        return g * (r * r)


@register("hardtanh")
class Hardtanh(Function):
    """y = min(max(x, a), b), a = ``min_val``, b = ``max_val``;  x̄ = ḡ for a < x < b and 0 elsewhere, at the bounds
    too (torch's).  saves the mask a < x < b. Integer x stays integer, as torch's (a clamp; the bounds rounded inwards
    and into the dtype's range, so uint8 takes the default [−1, 1] as [0, 1], where torch refuses it); bool x is
    float32, as the other activations' (torch refuses it)."""

    def forward(ctx, x, min_val=-1.0, max_val=1.0):
        a = _real_number("hardtanh", "min_val", min_val)
        b = _real_number("hardtanh", "max_val", max_val)
        if a > b:
            raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
        if x.dtype.kind in "iu":
            info = numpy.iinfo(x.dtype)
            lo, hi = max(math.ceil(a), int(info.min)), min(math.floor(b), int(info.max))
            ctx.save(inside=None)
            return ctx.xp.clip(x, lo, max(lo, hi))
        x = real(x)
        ctx.save(inside=(x > a) & (x < b))
        return ctx.xp.clip(x, a, b)

    def backward(ctx, g):
        return ctx.xp.where(ctx.inside, g, 0)


@register("celu")
class Celu(Function):
    """y = x for x > 0, α·(e^{x/α} − 1) otherwise (α = ``alpha`` ≠ 0);  x̄ = ḡ for x > 0, ḡ·e^{x/α} otherwise (1 at
    x = 0, torch's).  saves x; e^{x/α} of min(x, 0) only, so a large x never overflows."""

    def forward(ctx, x, alpha=1.0):
        a = _real_number("celu", "alpha", alpha)
        if a == 0:
            raise ValueError("celu: alpha must not be 0 (x/alpha)")
        x = real(x)
        xp = ctx.xp
        ctx.save(x=x, a=a)
        with quiet():
            return xp.where(x > 0, x, a * xp.expm1(xp.minimum(x, 0) / a))

    def backward(ctx, g):
        x, xp = ctx.x, ctx.xp
        with quiet():
            return xp.where(x > 0, g, g * xp.exp(xp.minimum(x, 0) / ctx.a))


@register("mish")
class Mish(Function):
    """y = x·tanh(softplus(x)) (Misra 2019);  x̄ = ḡ·(t + x·σ(x)·(1 − t²)), t = tanh(softplus(x)) (the stable
    softplus and σ: x and 1 at 1e4, −0 and 0 at −1e4); at ±∞ the limits, y = ∞ and 0, x̄ = ḡ and 0 (the products
    ∞·0 there are NaN: the second term is taken as its limit 0).  saves x, t."""

    def forward(ctx, x):
        x = real(x)
        xp = ctx.xp
        t = xp.tanh(stable_softplus(xp, x))
        ctx.save(x=x, t=t)
        with quiet():
            return xp.where(x == -xp.inf, 0, x * t).astype(t.dtype, copy=False)

    def backward(ctx, g):
        x, t = ctx.x, ctx.t
        x = ctx.xp.where(ctx.xp.isinf(x), 0, x)  # (the second term's limit at ±∞, where ∞·0 is NaN: 0)
        return g * (t + x * stable_sigmoid(ctx.xp, x) * (1 - t * t))


@register("hardsigmoid")
class Hardsigmoid(Function):
    """y = min(max(x + 3, 0), 6)/6;  x̄ = ḡ/6 for −3 < x < 3, 0 elsewhere (at ±3 too, torch's).  saves the mask."""

    def forward(ctx, x):
        x = real(x)
        ctx.save(inside=(x > -3) & (x < 3))
        return ctx.xp.clip(x + 3, 0, 6) / 6

    def backward(ctx, g):
        return ctx.xp.where(ctx.inside, g / 6, 0)


@register("hardswish")
class Hardswish(Function):
    """y = x·min(max(x + 3, 0), 6)/6 (Howard et al. 2019);  x̄ = 0 for x ≤ −3, ḡ·(x/3 + ½) for −3 < x < 3, ḡ for x ≥ 3
    (at the kinks the outer pieces' derivatives, 0 at −3 and 1 at 3, torch's); y = 0 at −∞ (its limit; −∞·0 is NaN).
    saves x."""

    def forward(ctx, x):
        x = real(x)
        xp = ctx.xp
        ctx.save(x=x)
        with quiet():
            return xp.where(x == -xp.inf, 0, x * xp.clip(x + 3, 0, 6) / 6).astype(x.dtype, copy=False)

    def backward(ctx, g):
        x, xp = ctx.x, ctx.xp
        return xp.where(x <= -3, 0, xp.where(x < 3, g * (x / 3 + 0.5), g))


tan, asin, acos, atan, sinh, cosh = Tan.apply, Asin.apply, Acos.apply, Atan.apply, Sinh.apply, Cosh.apply
asinh, acosh, atanh, atan2, hypot = Asinh.apply, Acosh.apply, Atanh.apply, Atan2.apply, Hypot.apply
logaddexp, xlogy, log2, log10, exp2 = Logaddexp.apply, Xlogy.apply, Log2.apply, Log10.apply, Exp2.apply
rsqrt, reciprocal, square = Rsqrt.apply, Reciprocal.apply, Square.apply
log_sigmoid, softsign, mish = LogSigmoid.apply, Softsign.apply, Mish.apply
hardsigmoid, hardswish = Hardsigmoid.apply, Hardswish.apply
arcsin, arccos, arctan, arcsinh, arccosh, arctanh, arctan2 = asin, acos, atan, asinh, acosh, atanh, atan2  # NumPy's


def logit(x, eps=None):
    """log(x/(1 − x)), x clamped to [eps, 1 − eps] when eps is given (torch.logit)."""
    return Logit.apply(x, eps=eps)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """x clamped to [min_val, max_val], gradient 0 at and beyond the bounds (F.hardtanh)."""
    return Hardtanh.apply(x, min_val=min_val, max_val=max_val)


def celu(x, alpha=1.0):
    """x for x > 0, α(e^{x/α} − 1) otherwise (F.celu)."""
    return Celu.apply(x, alpha=alpha)


def relu6(x):
    """min(max(x, 0), 6): hardtanh(x, 0, 6), as torch's F.relu6 (gradient 0 at 0 and at 6)."""
    return Hardtanh.apply(x, min_val=0.0, max_val=6.0)


def selu(x):
    """λ·elu(x, α) with Klambauer et al.'s α = 1.6732632423543772… and λ = 1.0507009873554804… (torch's; gradient λα
    at 0, as torch's)."""
    return elu(x, alpha=SELU_ALPHA) * SELU_SCALE
