"""Catherine Loader's saddle-point pieces of the count and Gamma/Beta log-densities, which keep their digits where the
plain formulas subtract lgammas of large arguments (lgamma(10¹⁰) ≈ 2.2·10¹¹, a float32 ulp of it 16384: Poisson(10¹⁰)'s
log-probability at its mode came out −16384, where it is −12.4):

stirlerr(x)  s(x) = lgamma(x + 1) − [(x + ½)·log x − x + ½ log 2π], the error of Stirling's formula (1/(12x) + …)
             x ≥ STIRLERR_FROM  Σₖ₌₁¹¹ B₂ₖ/(2k(2k − 1)·x²ᵏ⁻¹) (lgamma's Stirling series: its first term left out is
                                below 10⁻¹⁶ of s, s', s'' at x = 10)
             0 < x < 10         the definition, lgamma (and ψ, ψ⁽¹⁾ for the derivatives) in float64: it loses at most
                                three of float64's digits (s(10) ≈ 8.3·10⁻³ of lgamma(11) ≈ 15.1)
             s'(x) = ψ(x + 1) − log x − 1/(2x),  s''(x) = ψ⁽¹⁾(x + 1) − 1/x + 1/(2x²);  s(0) = ∞, s'(0) = −∞, s''(0) = ∞,
             and 0 at x = ∞; NaN for x < 0
bd0(x, m)    x·log(x/m) + m − x ≥ 0, the deviance term (Poisson's: log P(k; λ) = −s(k) − bd0(k, λ) − ½ log(2πk), k ≥ 1);
             bd0(x, m, c) at the mean c·m, formed in float64
             |x − m| < BD0_NEAR·(x + m): with v = (x − m)/(x + m), log(x/m) = 2 atanh v, so
                                bd0 = (x − m)·v + 2x·Σⱼ₌₁ v²ʲ⁺¹/(2j + 1), the first term (≥ 0) at least 3 times the
                                rest for |v| < ½: no cancellation (BD0_TERMS terms, the next below 10⁻¹⁷ of the first)
             elsewhere          x·log(x/m) + m − x (m/x outside (⅓, 3): the sum is at least a third of its largest
                                term; log x − log m where x/m is no normal number)
             bd0(0, m) = m; ∞ where m = 0 < x, where m = ∞ > x or x = ∞ > m; NaN for x < 0 or m < 0

Both computed in float64 and rounded once to the input dtype (float32 and float16 inputs are exact in float64, and so
is the product c·m of two float32 numbers). Their VJPs are 0 where ḡ = 0 (a VJP is linear in ḡ; a branch
of ops.where that is not taken passes ḡ = 0 to a piece that may be ∞ there, as xlogy's VJP).

Their users (the Poisson, NegativeBinomial, Gamma and Beta log-densities, Gamma's entropy) compose them with float32
ops: a mean formed there (σ(±l), 1 − x) rounds by an ulp, which moves the result by as much as an ulp of an input would.

Reference: C. Loader, "Fast and accurate computation of binomial probabilities" (2000), as in R's dpois_raw,
dbinom_raw and dgamma.
"""
import contextlib
import functools
import math

import numpy

from minivae.engine import Function
from minivae.ops._broadcast import unbroadcast
from minivae.ops._registry import register
from minivae.ops.arith import common
from minivae.ops.gamma import HALF_LOG_2PI, bernoulli, digamma_positive, lgamma_positive, polygamma_positive, quiet
from minivae.ops.special import horner, in_float64
from minivae.ops.unary import real

STIRLERR_FROM, STIRLERR_TERMS = 10.0, 11  # stirlerr's series from 10 on (11 terms), lgamma's difference below
BD0_NEAR, BD0_TERMS = 0.5, 26  # bd0's series where |x − m| < ½(x + m): its 27th term < |v|⁵²/55 < 10⁻¹⁷ of the first
BD0_SERIES = [1 / (2 * j + 1) for j in range(1, BD0_TERMS + 1)]  # 1/(2j + 1): 2 atanh v = 2v·Σⱼ v²ʲ/(2j + 1)
TWO_PI = 2 * math.pi


@functools.cache
def stirling_derivative_terms(order):
    """dₖ with s⁽ⁿ⁾(x) = x^{−1−n}·Σₖ dₖ·x^{−2(k−1)} (n = ``order``): dₖ = (−1)ⁿ·cₖ·p(p + 1)…(p + n − 1), p = 2k − 1,
    cₖ = B₂ₖ/(2k(2k − 1)), k = 1 … STIRLERR_TERMS."""
    b = bernoulli(2 * STIRLERR_TERMS + 2)
    out = []
    for k in range(1, STIRLERR_TERMS + 1):
        term = b[2 * k] / (2 * k * (2 * k - 1))
        for j in range(order):
            term *= -(2 * k - 1 + j)
        out.append(float(term))
    return out


@quiet
def stirlerr_forward(xp, order, x):
    """s⁽ⁿ⁾(x), n = ``order`` in 0, 1, 2, of a float64 array x (module docstring)."""
    big = x >= STIRLERR_FROM
    y = xp.where(big, x, STIRLERR_FROM)  # (each branch at a point of its own domain)
    series = y ** (-1.0 - order) * horner(stirling_derivative_terms(order), 1 / (y * y))
    t = xp.where(big | ~(x > 0), 1.0, x)
    if order == 0:
        direct = lgamma_positive(xp, t + 1) - (t + 0.5) * xp.log(t) + t - HALF_LOG_2PI
    elif order == 1:
        direct = digamma_positive(xp, t + 1) - xp.log(t) - 0.5 / t
    else:
        direct = polygamma_positive(xp, 1, t + 1) - 1 / t + 0.5 / (t * t)
    out = xp.where(big, series, direct)
    out = xp.where(x == 0, (-1) ** order * numpy.inf, out)
    out = xp.where(x == numpy.inf, 0.0, out)
    return xp.where((x < 0) | xp.isnan(x), numpy.nan, out)


def log_ratio(xp, x, m):
    """log(x/m) of float64 arrays: of the quotient where it is a normal number (one rounding), else log x − log m."""
    r = x / m
    normal = (r >= numpy.finfo(numpy.float64).tiny) & (r < numpy.inf)
    return xp.where(normal, xp.log(xp.where(normal, r, 1.0)), xp.log(x) - xp.log(m))


@quiet
def bd0_forward(xp, x, m):
    """bd0(x, m) of float64 arrays of one shape (module docstring)."""
    d = x - m
    near = xp.abs(d) < BD0_NEAR * (x + m)  # (False at ∞ and NaN)
    v = xp.where(near, d / xp.where(near, x + m, 1.0), 0.0)
    v2 = v * v
    series = d * v + 2 * x * v * v2 * horner(BD0_SERIES, v2)
    far = xp.where(x == 0, m, x * log_ratio(xp, x, m) + m - x)
    out = xp.where(near, series, far)
    out = xp.where((x == numpy.inf) ^ (m == numpy.inf), numpy.inf, out)
    return xp.where((x < 0) | (m < 0), numpy.nan, out)


@quiet
def bd0_partials(xp, x, m, c):
    """(∂/∂x, ∂/∂m, ∂/∂c) of bd0(x, c·m) at float64 arrays: log(x/(c·m)) (log1p((x − c·m)/(c·m)) where x and c·m are
    close, −∞ at x = 0), c − x/m and m − x/c as −(x − c·m)/m and −(x − c·m)/c (c and m at x = 0, where bd0 = c·m;
    c − x/m is c at m = ∞, −∞ at m = 0). (c·m of float32 inputs is exact in float64.)"""
    mean = c * m
    d = x - mean
    near = xp.abs(d) < BD0_NEAR * (x + mean)
    gx = xp.where(near, xp.log1p(xp.where(near, d, 0.0) / xp.where(near, mean, 1.0)), log_ratio(xp, x, mean))
    gx = xp.where(x == 0, -numpy.inf, gx)
    gm = xp.where(m == numpy.inf, c, -d / m)  # (−d/m = c − x/m, exact where x ≈ c·m; c at x = 0)
    gc = xp.where(c == numpy.inf, m, -d / c)
    nan = (x < 0) | (mean < 0) | xp.isnan(x) | xp.isnan(mean)
    return tuple(xp.where(nan, numpy.nan, v) for v in (gx, gm, gc))


def quiet_numpy(xp):
    """NumPy's warnings off for the edges whose values are the limits (x/0 = ∞), CuPy's nothing."""
    return numpy.errstate(all="ignore") if xp is numpy else contextlib.nullcontext()


def fused_cpu(ctx, *arrays):
    """minivae/_cpu/saddle.py for NumPy arrays where Numba is on, else None: the formula (on the GPU too, where these
    have no kernel of their own)."""
    return ctx.fused("saddle", *arrays) if ctx.xp is numpy else None


def times(xp, g, partial):
    """ḡ·∂ in ḡ's dtype, 0 where ḡ = 0 (module docstring)."""
    with quiet_numpy(xp):  # (∂ beyond ḡ's dtype's range: ±∞, the limit)
        return xp.where(g == 0, 0, g * partial.astype(g.dtype, copy=False))


@register("stirlerr")
class Stirlerr(Function):
    """y = s⁽ⁿ⁾(x), s(x) = lgamma(x + 1) − (x + ½)·log x + x − ½ log 2π (n = ``order``, 0 or 1: s or s');
    x̄ = ḡ·s⁽ⁿ⁺¹⁾(x) (0 where ḡ = 0).  saves x, order.  fused: minivae/_cpu/saddle.py (Numba: each element its own
    branch, where the formula computes the series and lgamma's (ψ's) for every element)."""

    def forward(ctx, x, order=0):
        if order not in (0, 1):
            raise ValueError(f"stirlerr: order must be 0 or 1, got {order!r}")
        x = real(x)
        ctx.save(x=x, order=order)
        kernel = fused_cpu(ctx, x)
        if kernel is not None:
            return kernel.stirlerr(x, order)
        with quiet_numpy(ctx.xp):  # (s'(x) = −1/(2x) beyond float32's range at x = 10⁻⁴⁵: −∞, the limit)
            return in_float64(lambda v: stirlerr_forward(ctx.xp, order, v), x)

    def backward(ctx, g):
        kernel = fused_cpu(ctx, ctx.x, g)
        if kernel is not None:
            return kernel.stirlerr_vjp(ctx.x, g, ctx.order)
        return times(ctx.xp, g, stirlerr_forward(ctx.xp, ctx.order + 1, ctx.x.astype(numpy.float64)))


@register("bd0")
class Bd0(Function):
    """z = bd0(x, c·m) = x·log(x/(c·m)) + c·m − x (c = ``scale``: the mean c·m formed in float64, where a float32
    product would round, underflow or overflow, and the chain rule through it would take x/(c·m), which overflows where
    the partials below do not);  x̄ = unbroadcast(ḡ·log(x/(c·m)), x.shape);  m̄ = unbroadcast(ḡ·(c − x/m), m.shape);
    c̄ = unbroadcast(ḡ·(m − x/c), c.shape) (each 0 where ḡ = 0). Computed in float64, rounded once to the operands'
    common dtype.  saves x, m, c.  fused: minivae/_cpu/saddle.py (Numba: each element its own branch, the
    broadcast operands read in place)."""

    def forward(ctx, x, m, scale):
        x, m, scale = common((x, m, scale))
        ctx.save(x=x, m=m, c=scale)
        kernel = fused_cpu(ctx, x)
        if kernel is not None:
            return kernel.bd0(x, m, scale)
        x64, m64, c64 = float64_operands(ctx)
        with quiet_numpy(ctx.xp):  # (a value beyond float32's range: ∞, as its exp would underflow to 0)
            return bd0_forward(ctx.xp, x64, c64 * m64).astype(x.dtype)

    def backward(ctx, g):
        kernel = fused_cpu(ctx, ctx.x, g)
        if kernel is not None:
            products = kernel.bd0_vjp(ctx.x, ctx.m, ctx.c, g, ctx.needs_input_grad)
        else:
            products = [times(ctx.xp, g, p) for p in bd0_partials(ctx.xp, *float64_operands(ctx))]
        return tuple(unbroadcast(p, v.shape) if need else None
                     for p, v, need in zip(products, (ctx.x, ctx.m, ctx.c), ctx.needs_input_grad))


def float64_operands(ctx):
    """Bd0's saved x, m, c broadcast together, in float64."""
    shape = numpy.broadcast_shapes(ctx.x.shape, ctx.m.shape, ctx.c.shape)
    return tuple(ctx.xp.broadcast_to(v, shape).astype(numpy.float64) for v in (ctx.x, ctx.m, ctx.c))


def stirlerr(x, order=0):
    """lgamma(x + 1) − [(x + ½)·log x − x + ½ log 2π] (``order`` 1: its derivative ψ(x + 1) − log x − 1/(2x)), without
    the cancellation of that difference for large x (``Stirlerr``)."""
    return Stirlerr.apply(x, order=order)


def bd0(x, m, scale=1.0):
    """x·log(x/(c·m)) + c·m − x (c = ``scale``), without cancellation where x ≈ c·m (``Bd0``)."""
    return Bd0.apply(x, m, scale)

