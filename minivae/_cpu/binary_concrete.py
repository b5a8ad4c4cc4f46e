"""The Binary Concrete sample and the Bernoulli KL of the same logits (ops.binary_concrete_kl), elementwise, one pass
each way, the logistic noise made inside the kernel from Philox (seed, counter), never stored: element i (row-major)
takes word i mod 4 of block counter + i div 4, as Generator.uniform's draw of the logits' dtype.

The uniform u is the dtype's (float32's from the word's top 23 bits), exact in float64, and so is 1 − u: the kernel
computes in float64 (L = log u − log(1 − u) by ``vector.log``, which LLVM vectorizes) and rounds s and kl once to the
dtype, as minivae/_cpu/bce.py does; NumPy's float32 formula rounds at every step, so the two agree to a few ulp. The
backward's mask [ε ≤ s ≤ 1 − ε] is taken on s as stored, as the formula's."""
import math

import numba
import numpy

from minivae._cpu import kernel
from minivae._cpu.philox import philox_word
from minivae._cpu.vector import log


@numba.njit(inline="always")
def _uniform(w, single):
    """Generator.uniform's value of word w: ((w >> 9) + ½)·2⁻²³ (float32) or (w + ½)·2⁻³² (float64), in float64."""
    if single:
        return (numpy.float64(w >> numpy.uint64(9)) + 0.5) * 2.0 ** -23
    return (numpy.float64(w) + 0.5) * 2.0 ** -32


@numba.njit(inline="always")
def _softplus(v):
    return max(v, 0.0) + math.log1p(math.exp(-abs(v)))


@kernel
def _fwd(logits, prior, k0, k1, counter, tau, hard, eps, single, s, y, kl):
    m = prior.size
    for i in numba.prange(logits.size):
        u = _uniform(philox_word(counter, numpy.uint64(i), k0, k1), single)
        li, lp = numpy.float64(logits[i]), numpy.float64(prior[i % m])
        x = li + (log(u) - log(1.0 - u))                    # l + L
        v = x / tau
        e = math.exp(-abs(v))
        s[i] = 1.0 / (1.0 + e) if v >= 0 else e / (1.0 + e)
        if hard:                                             # z + (y − y): NaN where s is
            y[i] = (1.0 if x > 0 else 0.0) + (s[i] - s[i])
        else:
            y[i] = min(max(s[i], eps), 1.0 - eps)            # (s as stored, then clipped: the formula's order)
        a = abs(li)
        sign = 1.0 if li >= 0 else -1.0
        t = math.exp(-a)
        kl[i] = _softplus(-sign * lp) - math.log1p(t) - t / (1.0 + t) * (a - sign * lp)


@kernel
def _bwd(s, gy, logits, prior, gkl, tau, eps, has_gy, has_gkl, gl):
    m = prior.size
    for i in numba.prange(s.size):
        g = 0.0
        if has_gy:
            si = numpy.float64(s[i])
            if si >= eps and si <= 1.0 - eps:
                g = gy[i] * si * (1.0 - si) / tau
        if has_gkl:
            li = numpy.float64(logits[i])
            t = math.exp(-abs(li))
            g += gkl[i] * (t / ((1.0 + t) * (1.0 + t))) * (li - prior[i % m])
        gl[i] = g


def _flat(a, dtype):
    return numpy.ascontiguousarray(a, dtype=dtype).reshape(-1)


def binary_concrete_kl_fwd(logits, prior, seed, counter, temperature, hard):
    """(s, y, kl): s = σ((l + L)/τ) (kept for the VJP), y = clip(s, ε, 1 − ε) or 1[l + L > 0] if ``hard``, kl the
    Bernoulli KL to the prior, whose m values ``prior`` element i takes as i mod m."""
    dtype = logits.dtype
    s, y, kl = (numpy.empty(logits.shape, dtype) for _ in range(3))
    k0, k1 = numpy.uint64(seed & 0xFFFFFFFF), numpy.uint64((seed >> 32) & 0xFFFFFFFF)
    _fwd(logits.size, _flat(logits, dtype), _flat(prior, dtype), k0, k1, numpy.uint64(counter), float(temperature),
         bool(hard), float(numpy.finfo(dtype).eps), dtype == numpy.float32, s.reshape(-1), y.reshape(-1),
         kl.reshape(-1))
    return s, y, kl


def binary_concrete_kl_bwd(s, gy, logits, prior, gkl, temperature):
    """l̄ = (ȳ·[ε ≤ s ≤ 1 − ε]·s(1 − s))/τ + k̄l·σ(l)σ(−l)·(l − l_p); ``gy`` or ``gkl`` None: that term is 0."""
    dtype = s.dtype
    gl = numpy.empty(s.shape, dtype)
    flat = _flat(s, dtype)
    _bwd(s.size, flat, flat if gy is None else _flat(gy, dtype), _flat(logits, dtype), _flat(prior, dtype),
         flat if gkl is None else _flat(gkl, dtype), float(temperature), float(numpy.finfo(dtype).eps),
         gy is not None, gkl is not None, gl.reshape(-1))
    return gl
