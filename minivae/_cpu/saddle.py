"""stirlerr and bd0 (minivae/ops/saddle.py, the specification) and their VJPs, one element at a time: each element takes
its own branch (the series from 10 on, or lgamma's, ψ's or ψ⁽¹⁾'s recurrences and series below; bd0's series or its
log), where the array formula computes every branch for every element in a dozen float64 temporaries. The same
operations in the same order, in float64, with the C library's log and log1p, rounded once to the dtype of the
result, but for two: the series' x^{−1−n} is a product of 1/x's (the formula's power is libm's pow, within an ulp of
it), and s⁽ⁿ⁾ at the integers below 10 (the count models' counts) is looked up, computed once by the same function.
The coefficient tables and the branch points are the formula's, passed as arguments: Numba would freeze a
global into a cached build, which is rebuilt when a file of minivae/_cpu changes, not when minivae/ops/saddle.py does."""
import functools
import math

import numba
import numpy

from minivae._cpu import kernel
from minivae._cpu.gamma import digamma_positive
from minivae.ops._broadcast import periodic
from minivae.ops.gamma import ASYMPTOTIC_FROM, HALF_LOG_2PI, digamma_terms, lgamma_coefficients, stirling_terms, zeta_terms
from minivae.ops.saddle import BD0_NEAR, BD0_SERIES, STIRLERR_FROM, stirling_derivative_terms

TINY = float(numpy.finfo(numpy.float64).tiny)
_STIRLERR = numpy.array([stirling_derivative_terms(order) for order in range(3)])  # (orders 0, 1, 2) × terms
_LGAMMA, _STIRLING, _PSI, _ZETA1, _BD0 = (numpy.array(c) for c in (lgamma_coefficients(), stirling_terms(),
                                                                    digamma_terms(), zeta_terms(1), BD0_SERIES))
_BELOW_10 = (_LGAMMA, _STIRLING, _PSI, _ZETA1, ASYMPTOTIC_FROM)  # (the tables of lgamma, ψ and ψ⁽¹⁾, their series' start)


@numba.njit(inline="always")
def _horner(c, t):
    """Σₖ cₖ tᵏ, coefficients lowest first (ops/special.py horner)."""
    out = c[-1]
    for k in range(c.size - 2, -1, -1):
        out = out * t + c[k]
    return out


@numba.njit
def _lgamma_above_1(a, lgamma, stirling, asymptotic):
    """lgamma(a), 1 < a finite (ops/gamma.py lgamma_positive for one element: stirlerr's a = x + 1 never takes its
    branch below ½)."""
    if a >= asymptotic:
        log_b = math.log(a)
        return a * (log_b - 1) - 0.5 * log_b + HALF_LOG_2PI + _horner(stirling, 1 / (a * a)) / a
    if a < 1.5:
        t = a - 1
        return t * _horner(lgamma, t) - math.log(a)
    z, prod = a, 1.0
    for _ in range(8):  # lgamma(z) = lgamma(z − 1) + log(z − 1), down to [3/2, 5/2)
        if z >= 2.5:
            z = z - 1
            prod = prod * z
    t = z - 2
    return t * _horner(lgamma, t) + math.log(prod)


@numba.njit
def _trigamma(a, zeta1, asymptotic):
    """ψ⁽¹⁾(a), a > 0 finite (ops/gamma.py polygamma_positive, n = 1, for one element)."""
    acc = 0.0
    for _ in range(int(math.ceil(asymptotic + 1))):
        if a < asymptotic + 1:
            acc = acc + a ** -2.0
            a = a + 1
    w = 1 / (a * a)
    return acc + a ** -1.0 * (1.0 + 0.5 / a + w * _horner(zeta1, w))


@numba.njit(cache=True, error_model="numpy")  # (called from Python too, for _counts: the kernels' error model)
def _direct(x, order, below):
    """s⁽ⁿ⁾(x), 0 < x < STIRLERR_FROM, by its definition (stirlerr_forward's branch below 10; ``below`` _BELOW_10)."""
    lgamma, stirling, psi, zeta1, asymptotic = below
    if order == 0:
        return _lgamma_above_1(x + 1, lgamma, stirling, asymptotic) - (x + 0.5) * math.log(x) + x - HALF_LOG_2PI
    if order == 1:
        return digamma_positive(x + 1, psi) - math.log(x) - 0.5 / x
    return _trigamma(x + 1, zeta1, asymptotic) - 1 / x + 0.5 / (x * x)


@functools.cache
def _counts(order):
    """s⁽ⁿ⁾(j) by _direct at j = 1 … ⌈STIRLERR_FROM⌉ − 1 (index 0 never read): the values at the counts of the count
    models, looked up (lgamma's series and recurrence are most of an element's time)."""
    out = numpy.full(math.ceil(STIRLERR_FROM), numpy.nan)
    for j in range(1, out.size):
        out[j] = _direct(float(j), order, _BELOW_10)
    return out


@numba.njit
def stirlerr_one(x, order, start, series, below, counts):
    """s⁽ⁿ⁾(x), n = ``order`` in 0, 1, 2 (ops/saddle.py stirlerr_forward for one element; ``start`` STIRLERR_FROM,
    ``series`` its order's stirling_derivative_terms, ``below`` _BELOW_10, ``counts`` _counts(order))."""
    if x < 0 or math.isnan(x):
        return math.nan
    if x == 0:
        return math.inf if order != 1 else -math.inf
    if x == math.inf:
        return 0.0
    if x >= start:
        # x^{−1−n} as a product of 1/x's, where the formula's y ** (−1 − n) is libm's pow for n ≥ 1 (30 ns an element;
        # NumPy's y ** −1 is 1/y): within 2 ulps of it
        r = 1 / x
        return (r if order == 0 else r * r if order == 1 else r * r * r) * _horner(series, 1 / (x * x))
    j = int(x)
    return counts[j] if j == x else _direct(x, order, below)


@kernel
def _stirlerr(x, out, order, start, series, below, counts):
    for i in numba.prange(x.size):
        out[i] = stirlerr_one(numpy.float64(x[i]), order, start, series, below, counts)


@kernel
def _stirlerr_vjp(x, g, out, order, start, series, below, counts):
    for i in numba.prange(x.size):
        # ḡ·s⁽ⁿ⁾(x) with s⁽ⁿ⁾ rounded to ḡ's dtype first, 0 where ḡ = 0 (ops/saddle.py times)
        d = out.dtype.type(stirlerr_one(numpy.float64(x[i]), order, start, series, below, counts))
        out[i] = 0 if g[i] == 0 else g[i] * d


@numba.njit(inline="always")
def _log_ratio(x, m):
    """log(x/m) (ops/saddle.py log_ratio for one element)."""
    r = x / m
    return math.log(r) if TINY <= r < math.inf else math.log(x) - math.log(m)


@numba.njit
def bd0_one(x, m, near, terms):
    """bd0(x, m) (ops/saddle.py bd0_forward for one element; ``near`` BD0_NEAR, ``terms`` BD0_SERIES)."""
    if x < 0 or m < 0:
        return math.nan
    if (x == math.inf) != (m == math.inf):
        return math.inf
    d = x - m
    if abs(d) < near * (x + m):
        v = d / (x + m)
        v2 = v * v
        return d * v + 2 * x * v * v2 * _horner(terms, v2)
    return m if x == 0 else x * _log_ratio(x, m) + m - x


@kernel
def _bd0(x, px, m, pm, c, pc, out, near, terms):
    for i in numba.prange(out.size):
        mean = numpy.float64(c[i % pc]) * numpy.float64(m[i % pm])
        out[i] = bd0_one(numpy.float64(x[i % px]), mean, near, terms)


@numba.njit(inline="always")
def _times(g, partial, dtype_of):
    """ḡ·∂ with ∂ rounded to ḡ's dtype first, 0 where ḡ = 0 (ops/saddle.py times)."""
    return 0 if g == 0 else g * dtype_of.dtype.type(partial)


@kernel
def _bd0_vjp(x, px, m, pm, c, pc, g, gx, gm, gc, need_x, need_m, need_c, near):
    for i in numba.prange(g.size):
        xi, mi, ci = numpy.float64(x[i % px]), numpy.float64(m[i % pm]), numpy.float64(c[i % pc])
        # (∂/∂x, ∂/∂m, ∂/∂c) of bd0(x, c·m): ops/saddle.py bd0_partials for one element
        mean = ci * mi
        d = xi - mean
        if xi < 0 or mean < 0 or math.isnan(xi) or math.isnan(mean):
            dx, dm, dc = math.nan, math.nan, math.nan
        else:
            if xi == 0:
                dx = -math.inf
            elif abs(d) < near * (xi + mean):
                dx = math.log1p(d / mean)
            else:
                dx = _log_ratio(xi, mean)
            dm = ci if mi == math.inf else -d / mi
            dc = mi if ci == math.inf else -d / ci
        if need_x:
            gx[i] = _times(g[i], dx, gx)
        if need_m:
            gm[i] = _times(g[i], dm, gm)
        if need_c:
            gc[i] = _times(g[i], dc, gc)


def stirlerr(x, order):
    """s⁽ⁿ⁾(x) of an array x (n = ``order``, 0, 1 or 2), in x's dtype."""
    out = numpy.empty(x.shape, x.dtype)
    _stirlerr(x.size, numpy.ascontiguousarray(x).reshape(-1), out.reshape(-1), order, STIRLERR_FROM,
              _STIRLERR[order], _BELOW_10, _counts(order))
    return out


def stirlerr_vjp(x, g, order):
    """ḡ·s⁽ⁿ⁺¹⁾(x) (n = ``order``), of x's shape in ḡ's dtype (ḡ broadcast to it), 0 where ḡ = 0."""
    out = numpy.empty(x.shape, g.dtype)
    _stirlerr_vjp(x.size, numpy.ascontiguousarray(x).reshape(-1),
                  numpy.ascontiguousarray(numpy.broadcast_to(g, x.shape)).reshape(-1), out.reshape(-1), order + 1,
                  STIRLERR_FROM, _STIRLERR[order + 1], _BELOW_10, _counts(order + 1))
    return out


def _operands(shape, arrays):
    """(flat array, period) for each of ``arrays`` read at ``shape`` (ops/_broadcast.py periodic)."""
    out = []
    for a in arrays:
        flat, period = periodic(a, shape)
        out += [flat, numpy.int64(period)]
    return out


def bd0(x, m, scale):
    """bd0(x, c·m) of arrays of one dtype broadcast together (c = ``scale``), c·m formed in float64, in their dtype."""
    shape = numpy.broadcast_shapes(x.shape, m.shape, scale.shape)
    out = numpy.empty(shape, x.dtype)
    if out.size:
        _bd0(out.size, *_operands(shape, (x, m, scale)), out.reshape(-1), BD0_NEAR, _BD0)
    return out


def bd0_vjp(x, m, scale, g, needs):
    """(ḡ·∂bd0/∂x, ḡ·∂bd0/∂m, ḡ·∂bd0/∂c) at the broadcast shape of x, m, c = ``scale`` and ḡ, in ḡ's dtype (0 where
    ḡ = 0), each None where ``needs`` says it is not needed."""
    shape = numpy.broadcast_shapes(x.shape, m.shape, scale.shape, g.shape)
    outs = [numpy.empty(shape if need else (0,), g.dtype) for need in needs]
    if math.prod(shape):
        g = numpy.ascontiguousarray(numpy.broadcast_to(g, shape)).reshape(-1)
        _bd0_vjp(g.size, *_operands(shape, (x, m, scale)), g, *(o.reshape(-1) for o in outs), *map(bool, needs),
                 BD0_NEAR)
    return tuple(o if need else None for o, need in zip(outs, needs))
