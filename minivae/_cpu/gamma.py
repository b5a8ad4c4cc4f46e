"""Gamma(α, 1) draws and the implicit gradient of a draw, one element at a time (kernels/gamma.cu's loops): each
element runs its own rejection rounds on its own Philox blocks (minivae/random.py, "Stream layout") and its own
series or continued fraction, checked for convergence every CHECK_EVERY terms on its own, where the array formulas
(minivae/distributions/gamma.py, minivae/ops/gamma.py: the specification) draw round after round for the pending
elements and sum every element until the slowest has converged. The same operations in float64, with the C
library's log, cos and exp."""
import math

import numba
import numpy

from minivae._cpu import kernel
from minivae._cpu.philox import philox_round
from minivae.distributions.gamma import GAMMA_ROUNDS, ONE_THIRD
from minivae.ops._broadcast import periodic
from minivae.ops.gamma import (ASYMPTOTIC_FROM, ASYMPTOTIC_TERMS, CHECK_EVERY, FRACTION_LEVELS, SERIES_TERMS,
                               TEMME_FROM, TEMME_WIDTH, TOLERANCE, bernoulli, temme_coefficients)

_MASK = numpy.uint64(0xFFFFFFFF)
_PSI_TERMS = numpy.array([float(bernoulli(2 * ASYMPTOTIC_TERMS + 2)[2 * k] / (2 * k))
                          for k in range(1, ASYMPTOTIC_TERMS + 1)])
_RATIO, _B, _GSTAR = (numpy.array(c) for c in temme_coefficients())


@numba.njit(inline="always")
def _uniform(w):
    return (numpy.float64(w) + 0.5) * 2.0 ** -32


@numba.njit(inline="always")
def gamma_draw(seed, block, a):
    """The Gamma(a, 1) draw of stream block ``block`` (uint64s): NaN when no round accepts."""
    k0, k1 = seed & _MASK, (seed >> numpy.uint64(32)) & _MASK
    boost = a < 1
    d = (a + 1 if boost else a) - ONE_THIRD
    c = 1 / math.sqrt(9 * d)
    for r in range(GAMMA_ROUNDS):
        w0, w1, w2, w3 = philox_round(block, numpy.uint64(r), k0, k1)
        x = math.sqrt(-2.0 * math.log(_uniform(w0))) * math.cos(2.0 * math.pi * _uniform(w1))
        t = 1 + c * x
        v = t * t * t
        if v > 0 and math.log(_uniform(w2)) < 0.5 * x * x + d - d * v + d * math.log(v):
            z = d * v
            if boost:
                z = z * math.exp(math.log(_uniform(w3)) / a)
            return z
    return math.nan


@kernel
def _draws(alpha, period, out, seed, counter, tiny):
    for i in numba.prange(out.size):
        z = gamma_draw(seed, counter + numpy.uint64(i), numpy.float64(alpha[i % period]))
        v = out.dtype.type(z)
        out[i] = v if not v < tiny else tiny  # max(v, tiny), NaN kept


@numba.njit(inline="always")
def _converged(small, big):
    return not abs(small) > TOLERANCE * abs(big)


@numba.njit
def digamma_positive(a, terms):
    """ψ(a), a > 0 finite: ops/gamma.py digamma_positive for one element."""
    acc = 0.0
    for _ in range(int(ASYMPTOTIC_FROM)):
        if a < ASYMPTOTIC_FROM:
            acc = acc + 1 / a
            a = a + 1
    w = 1 / (a * a)
    s = terms[-1]
    for k in range(terms.size - 2, -1, -1):
        s = s * w + terms[k]
    return math.log(a) - 0.5 / a - w * s - acc


@numba.njit
def temme_gradient(a, z, ratio, b, gstar):
    """dz/dα by Temme's expansion, α ≥ TEMME_FROM, |z/α − 1| < TEMME_WIDTH (ops/gamma.py temme_gradient for one
    element; its Horner loops, each bₖ carried with its derivative)."""
    lam = z / a
    mu = lam - 1
    w = ratio[-1]
    for n in range(ratio.size - 2, -1, -1):
        w = w * mu + ratio[n]
    eta = mu * w
    inv = 1 / a
    t, dt, u, g, v = 0.0, 0.0, 0.0, 0.0, 0.0
    for k in range(b.shape[0] - 1, -1, -1):
        bk, dbk = b[k, -1], 0.0
        for n in range(b.shape[1] - 2, -1, -1):
            dbk = dbk * eta + bk
            bk = bk * eta + b[k, n]
        t = t * inv + bk
        dt = dt * inv + dbk
        u = u * inv + k * bk
        g = g * inv + gstar[k]
        v = v * inv + k * gstar[k]
    s = t / g
    ds_a = (s * v - u) * inv / g
    n_ = 0.5 * eta + 0.5 * eta * eta * s - ds_a + 0.5 * s * inv
    d = 1 + eta * s - dt / g * inv
    return lam - lam * w * n_ / d


@numba.njit
def gamma_grad(a, z, terms, ratio, b, gstar):
    """dz/dα of a draw z of Gamma(a, 1) at fixed F(z; a) (ops/gamma.py standard_gamma_grad for one element)."""
    if not z > 0:
        return 0.0
    if a >= TEMME_FROM and abs(z / a - 1) < TEMME_WIDTH:
        return temme_gradient(a, z, ratio, b, gstar)
    log_z = math.log(z)
    if z < a + 1:
        t, s, h, ds = 1.0, 1.0, 0.0, 0.0
        for k in range(1, SERIES_TERMS + 1):
            ak = a + k
            t = t * z / ak
            h = h + 1 / ak
            s = s + t
            ds = ds - t * h
            if k % CHECK_EVERY == 0 and _converged(t, s) and _converged(t * h, ds):
                break
        return -(z / a) * (s * (log_z - digamma_positive(a + 1, terms)) + ds)
    b = z + 1 - a
    db = -1.0
    d = 1 / b
    dd = -d * d * db
    c, dc, h, dh = 1e300, 0.0, d, dd
    for i in range(1, FRACTION_LEVELS + 1):
        an, dan = -float(i) * (float(i) - a), float(i)
        b = b + 2
        den = an * d + b
        dden = dan * d + an * dd + db
        d = 1 / den
        dd = -d * d * dden
        c_new = b + an / c
        dc = db + dan / c - an * dc / (c * c)
        c = c_new
        delta = d * c
        ddelta = dd * c + d * dc
        dh = dh * delta + h * ddelta
        h = h * delta
        if i % CHECK_EVERY == 0 and _converged(delta - 1, 1.0) and _converged(h * ddelta, dh):
            break
    return z * (h * (log_z - digamma_positive(a, terms)) + dh)


@kernel
def _grad(alpha, period, z, g, gx, terms, ratio, b, gstar):
    for i in numba.prange(z.size):
        gx[i] = g[i] * gx.dtype.type(gamma_grad(numpy.float64(alpha[i % period]), numpy.float64(z[i]), terms, ratio, b,
                                                gstar))


def standard_gamma_draws(seed, counter, concentration, shape, dtype):
    """Draws of Gamma(α, 1) of ``shape`` in ``dtype`` from Philox blocks counter, counter + 1, … of ``seed``
    (distributions/gamma.py standard_gamma_draws, its stream), α = ``concentration`` broadcast to ``shape``."""
    dtype = numpy.dtype(dtype)
    out = numpy.empty(tuple(shape), dtype)
    if out.size:
        alpha, period = periodic(numpy.asarray(concentration), out.shape)
        _draws(out.size, alpha, numpy.int64(period), out.reshape(-1), numpy.uint64(seed), numpy.uint64(counter),
               dtype.type(numpy.finfo(dtype).tiny))
    return out


def standard_gamma_grad(alpha, z, g):
    """ḡ·dz/dα of draws z (rounded to z's dtype, times ḡ), of z's shape; α broadcast to it."""
    gx = numpy.empty(z.shape, z.dtype)
    if z.size:
        a, period = periodic(alpha.astype(z.dtype, copy=False), z.shape)
        _grad(z.size, a, numpy.int64(period), numpy.ascontiguousarray(z).reshape(-1),
              numpy.ascontiguousarray(numpy.broadcast_to(g, z.shape), z.dtype).reshape(-1), gx.reshape(-1), _PSI_TERMS,
              _RATIO, _B, _GSTAR)
    return gx
