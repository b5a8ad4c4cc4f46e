"""Elementwise binary arithmetic, with broadcasting undone in every VJP."""
import numpy

from minivae.engine import DEFAULT_FLOAT, Function
from minivae.ops._broadcast import unbroadcast
from minivae.ops._registry import register


_CATEGORY = {"b": "bool", "u": "integer", "i": "integer", "f": "floating"}  # PyTorch's categories of dtypes


def floating(x, y):
    """The operands of a binary op with PyTorch's promotion, in one dtype: across categories (bool, integer, floating),
    ``floating_all``'s; within one category, a 0-d
    operand beside an array of more dimensions takes that array's dtype (float32 · a 0-d float64 tensor is float32,
    as PyTorch's; NumPy's is float64), as a Python number does (engine._lift), and otherwise both take their common
    dtype, as PyTorch casts an op's operands before computing: pow's VJP took log x of a float16 x beside a float32
    exponent in float16 (its ȳ 2·10⁻⁵ off)."""
    if x.dtype == y.dtype:
        return x, y
    if _CATEGORY.get(x.dtype.kind) != _CATEGORY.get(y.dtype.kind):
        return floating_all((x, y))
    if (x.ndim == 0) == (y.ndim == 0):
        dtype = numpy.result_type(x.dtype, y.dtype)
        return x.astype(dtype, copy=False), y.astype(dtype, copy=False)
    return (x.astype(y.dtype), y) if x.ndim == 0 else (x, y.astype(x.dtype))


def floating_all(arrays):
    """``arrays``, the operands of one op, with PyTorch's promotion across kinds: integer and bool arrays beside
    floating ones take the floating ones' common dtype (int64 + float32 is float32, where NumPy's result is float64;
    float16 · int64 float16), so integer data never turns a float32 model's values into float64. Operands all of one
    kind, floating or not, are left to NumPy's promotion."""
    floats = [a.dtype for a in arrays if a.dtype.kind == "f"]
    if not floats or len(floats) == len(arrays):
        return tuple(arrays)
    dtype = numpy.result_type(*floats)
    return tuple(a if a.dtype.kind == "f" else a.astype(dtype) for a in arrays)


def real_all(arrays):
    """``floating_all``'s operands of an op whose values are real, and integer and bool ones with no floating operand
    beside them as float32 (``unary.real``'s rule, PyTorch's for the Gaussian formulas: NumPy's exp of uint8 is
    float16, of int64 float64)."""
    return tuple(a.astype(DEFAULT_FLOAT) if a.dtype.kind in "biu" else a for a in floating_all(arrays))


def common(arrays):
    """The operands of an op computed by a formula of several steps, in one dtype: ``real_all``'s, then all in their
    common dtype, as PyTorch casts an op's operands before computing (float16 logits beside float32 targets: softplus
    was taken in float16 and then promoted, 3·10⁻⁴ off)."""
    arrays = real_all(arrays)
    dtype = numpy.result_type(*[a.dtype for a in arrays])
    return tuple(a.astype(dtype, copy=False) for a in arrays)


@register("add")
class Add(Function):
    """z = x + y;  x̄ = unbroadcast(ḡ, x.shape);  ȳ = unbroadcast(ḡ, y.shape).

    Here and in the ops below, an input that needs no gradient (a constant, β in β·KL) gets none
    computed: on the GPU each would be a kernel launch (a product, a reduction) for nothing."""

    def forward(ctx, x, y):
        x, y = floating(x, y)
        ctx.save(xshape=x.shape, yshape=y.shape)
        return x + y

    def backward(ctx, g):
        nx, ny = ctx.needs_input_grad
        return unbroadcast(g, ctx.xshape) if nx else None, unbroadcast(g, ctx.yshape) if ny else None


@register("sub")
class Sub(Function):
    """z = x − y;  x̄ = unbroadcast(ḡ, x.shape);  ȳ = −unbroadcast(ḡ, y.shape)."""

    def forward(ctx, x, y):
        x, y = floating(x, y)
        ctx.save(xshape=x.shape, yshape=y.shape)
        return x - y

    def backward(ctx, g):
        nx, ny = ctx.needs_input_grad
        return unbroadcast(g, ctx.xshape) if nx else None, -unbroadcast(g, ctx.yshape) if ny else None


@register("mul")
class Mul(Function):
    """z = x·y;  x̄ = unbroadcast(ḡ·y, x.shape);  ȳ = unbroadcast(ḡ·x, y.shape)."""

    def forward(ctx, x, y):
        x, y = floating(x, y)
        ctx.save(x=x, y=y)
        return x * y

    def backward(ctx, g):
        x, y = ctx.x, ctx.y
        nx, ny = ctx.needs_input_grad
        return unbroadcast(g * y, x.shape) if nx else None, unbroadcast(g * x, y.shape) if ny else None


@register("div")
class Div(Function):
    """z = x / y;  x̄ = unbroadcast(ḡ / y, x.shape);  ȳ = unbroadcast(−ḡ·z / y, y.shape).

    True division of two integer or bool operands (a Python int beside an integer tensor is one: engine._lift) is in the
    default float dtype, float32, as PyTorch's, which casts them to it first; NumPy's quotient is float64. A floating
    operand gives its dtype (``floating``): float16 / 2 stays float16, float64 / an integer tensor float64."""

    def forward(ctx, x, y):
        if x.dtype.kind in "biu" and y.dtype.kind in "biu":
            x, y = x.astype(DEFAULT_FLOAT), y.astype(DEFAULT_FLOAT)
        x, y = floating(x, y)
        z = x / y
        ctx.save(xshape=x.shape, y=y, z=z)
        return z

    def backward(ctx, g):
        gx = g / ctx.y
        gy = unbroadcast(-gx * ctx.z, ctx.y.shape) if ctx.needs_input_grad[1] else None
        return unbroadcast(gx, ctx.xshape) if ctx.needs_input_grad[0] else None, gy


@register("neg")
class Neg(Function):
    """z = −x;  x̄ = −ḡ. A bool x is refused, as PyTorch refuses it (NumPy refuses it too, but CuPy's negative of a
    bool array was its logical not)."""

    def forward(ctx, x):
        if x.dtype.kind == "b":
            raise TypeError("Negation, the `-` operator, on a bool tensor is not supported (as in PyTorch); to invert "
                            "a mask use `~` or logical_not()")
        return -x

    def backward(ctx, g):
        return -g


@register("pow")
class Pow(Function):
    """z = x^y;  x̄ = unbroadcast(ḡ·y·x^(y−1), x.shape);  ȳ = unbroadcast(ḡ·z·log x, y.shape).

    At the limits, PyTorch's values: x̄ = 0 where y = 0 (x⁰ = 1 is constant, where y·x^(y−1) would be 0·∞ at
    x = 0), and ȳ = 0 where x = 0 and y ≥ 0 (z·log x would be 0·(−∞)). The exponent's gradient needs x > 0
    elsewhere; it is computed only when y requires one. Two bool operands are refused, as PyTorch refuses them (NumPy's
    result is int8).
    """

    def forward(ctx, x, y):
        x, y = floating(x, y)
        if x.dtype.kind == y.dtype.kind == "b":  # NumPy's bool ** bool is int8
            raise TypeError("pow of two bool tensors is not supported (as in PyTorch); cast one to an integer or "
                            "floating dtype")
        z = x ** y
        ctx.save(x=x, y=y, z=z)
        return z

    def backward(ctx, g):
        x, y, z, xp = ctx.x, ctx.y, ctx.z, ctx.xp
        with numpy.errstate(divide="ignore", invalid="ignore"):  # 0^(−1) and log 0, computed where they are not used
            gx = unbroadcast(g * xp.where(y == 0, 0, y * x ** (y - 1)), x.shape)
            gy = (unbroadcast(g * xp.where((x == 0) & (y >= 0), 0, z * xp.log(x)), y.shape)
                  if ctx.needs_input_grad[1] else None)
        return gx, gy


@register("maximum")
class Maximum(Function):
    """z = max(x, y);  x̄ = ḡ·[x > y] + ½ḡ·[x = y];  ȳ = ḡ·[y > x] + ½ḡ·[x = y] (ties split, as PyTorch)."""

    def forward(ctx, x, y):
        x, y = floating(x, y)
        ctx.save(x=x, y=y)
        return ctx.xp.maximum(x, y)

    def backward(ctx, g):
        x, y = ctx.x, ctx.y
        wx = (x > y) + 0.5 * (x == y)
        return unbroadcast(g * wx, x.shape), unbroadcast(g * (1 - wx), y.shape)


@register("minimum")
class Minimum(Function):
    """z = min(x, y);  x̄ = ḡ·[x < y] + ½ḡ·[x = y];  ȳ = ḡ·[y < x] + ½ḡ·[x = y]."""

    def forward(ctx, x, y):
        x, y = floating(x, y)
        ctx.save(x=x, y=y)
        return ctx.xp.minimum(x, y)

    def backward(ctx, g):
        x, y = ctx.x, ctx.y
        wx = (x < y) + 0.5 * (x == y)
        return unbroadcast(g * wx, x.shape), unbroadcast(g * (1 - wx), y.shape)


@register("where", nondifferentiable_inputs=(0,))
class Where(Function):
    """z = cond ? x : y;  x̄ = unbroadcast(cond ? ḡ : 0, x.shape);  ȳ = unbroadcast(cond ? 0 : ḡ, y.shape).
    ``cond`` is a boolean mask and gets no gradient."""

    def forward(ctx, cond, x, y):
        cond = cond.astype(bool, copy=False)
        x, y = floating(x, y)
        ctx.save(cond=cond, xshape=x.shape, yshape=y.shape)
        return ctx.xp.where(cond, x, y)

    def backward(ctx, g):
        zero = ctx.xp.zeros((), dtype=g.dtype)
        # each branch selected from ḡ, not ȳ = ḡ − x̄: an inf or NaN of ḡ where x was taken stays out of ȳ
        gx, gy = ctx.xp.where(ctx.cond, g, zero), ctx.xp.where(ctx.cond, zero, g)
        return None, unbroadcast(gx, ctx.xshape), unbroadcast(gy, ctx.yshape)


@register("clip")
class Clip(Function):
    """z = min(max(x, lo), hi), either bound absent, as numpy.clip (hi wherever lo > hi);  with PyTorch's clamp's VJP
    x̄ = unbroadcast(ḡ·[lo ≤ x ≤ hi], x.shape);  l̄o = unbroadcast(ḡ·[x < lo]·[lo < hi], lo.shape);
    h̄i = unbroadcast(ḡ·([x > hi] ∨ [hi < lo]), hi.shape)  (ties to x; a bound that is a number gets none).
    The bounds given are the inputs after x: ``lower`` and ``upper`` say which they are."""

    def forward(ctx, x, *bounds, lower=False, upper=False):
        x, *bounds = floating_all((x, *bounds))
        lo, hi = bounds[0] if lower else None, bounds[-1] if upper else None
        ctx.save(x=x, lo=lo, hi=hi)
        return ctx.xp.clip(x, lo, hi)

    def backward(ctx, g):
        x, lo, hi, xp = ctx.x, ctx.lo, ctx.hi, ctx.xp
        zero = xp.zeros((), dtype=g.dtype)
        inside = (True if lo is None else x >= lo) & (True if hi is None else x <= hi)  # (False for a NaN of x)
        grads = [unbroadcast(xp.where(inside, g, zero), x.shape) if ctx.needs_input_grad[0] else None]
        if lo is not None:
            takes_lo = (x < lo) & (True if hi is None else lo < hi)
            grads.append(unbroadcast(xp.where(takes_lo, g, zero), lo.shape) if ctx.needs_input_grad[1] else None)
        if hi is not None:
            takes_hi = (x > hi) | (False if lo is None else hi < lo)
            grads.append(unbroadcast(xp.where(takes_hi, g, zero), hi.shape) if ctx.needs_input_grad[-1] else None)
        return tuple(grads)


@register("cast")
class Cast(Function):
    """z = x as ``dtype``;  x̄ = ḡ as x.dtype."""

    def forward(ctx, x, dtype):
        ctx.save(xdtype=x.dtype)
        return x.astype(dtype)

    def backward(ctx, g):
        return g.astype(ctx.xdtype)


mul, div, neg, pow = Mul.apply, Div.apply, Neg.apply, Pow.apply
maximum, minimum, cast = Maximum.apply, Minimum.apply, Cast.apply


def _kind(v):
    """The kind of an operand's dtype ("b", "i", "u" or "f"): a tensor's, an array's or a NumPy scalar's; a Python
    bool, int or float as PyTorch reads it ("b", "i", "f"; a bool is not an int here), a list as NumPy makes it."""
    if isinstance(v, (bool, int, float)):
        return "b" if isinstance(v, bool) else "i" if isinstance(v, int) else "f"
    dtype = getattr(v, "dtype", None)
    return (numpy.asarray(v).dtype if dtype is None else dtype).kind


def refuse_bool_subtraction(x, y):
    """Raise TypeError where x or y is a bool (a tensor, an array or a Python bool), as PyTorch refuses a bool in a
    subtraction: NumPy computed bool − 1 as int64 [0, −1], 1.5 − bool as float, and refused bool − bool alone."""
    kinds = (_kind(x), _kind(y))
    if kinds == ("b", "b"):
        raise TypeError("Subtraction, the `-` operator, with two bool tensors is not supported (as in PyTorch); use "
                        "`^` (logical xor)")
    if "b" in kinds:
        raise TypeError("Subtraction, the `-` operator, with a bool tensor is not supported (as in PyTorch); to "
                        "invert a mask use `~` or logical_not()")


def _scaled(x, y, alpha, who):
    """alpha·y, the second term of add's and sub's ``alpha=`` (PyTorch's x + alpha·y), y itself for an alpha of 1. As
    PyTorch, alpha is a number; a floating alpha with no floating operand (an integer result) and a bool alpha beside
    an operand that is not bool are refused; beside two bool operands, alpha counts as a bool (x ∨ (alpha ∧ y))."""
    if not isinstance(alpha, (bool, int, float, numpy.bool_, numpy.integer, numpy.floating)):
        raise TypeError(f"{who}: alpha must be a number, not {type(alpha).__name__}")
    kinds = {_kind(x), _kind(y)}
    if isinstance(alpha, (bool, numpy.bool_)) and kinds != {"b"}:
        raise TypeError(f"{who}: a bool alpha is only supported for bool results (as in PyTorch)")
    if isinstance(alpha, (float, numpy.floating)) and "f" not in kinds:
        raise TypeError(f"{who}: for integer operands alpha must not be a floating point number (as in PyTorch), "
                        f"got {alpha!r}")
    if kinds == {"b"}:
        alpha = bool(alpha)
    return y if alpha == 1 and not isinstance(alpha, (bool, numpy.bool_)) else mul(y, alpha)


def add(x, y, *, alpha=1):
    """x + alpha·y (``torch.add``); with alpha = 1 (the default) the add op alone."""
    return Add.apply(x, y if type(alpha) is int and alpha == 1 else _scaled(x, y, alpha, "add"))


def sub(x, y, *, alpha=1):
    """x − alpha·y (``torch.sub``). A bool operand is refused, as PyTorch refuses it (refuse_bool_subtraction)."""
    refuse_bool_subtraction(x, y)
    return Sub.apply(x, y if type(alpha) is int and alpha == 1 else _scaled(x, y, alpha, "sub"))


def where(cond, x, y):
    """Elementwise ``x`` where ``cond`` else ``y`` (NumPy's ``where``)."""
    return Where.apply(cond, x, y)


def clip(x, min=None, max=None):
    """Clamp ``x`` to [min, max] (either may be None), as ``numpy.clip``; bounds that are tensors get gradients,
    as ``torch.clamp``'s."""
    if min is None and max is None:
        raise ValueError("clip needs min or max")
    return Clip.apply(x, *[b for b in (min, max) if b is not None], lower=min is not None, upper=max is not None)
