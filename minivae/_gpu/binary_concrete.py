"""The Binary Concrete sample and its Bernoulli KL as one pair (ops.binary_concrete_kl), elementwise, the logistic
noise made in registers from Philox (seed, counter): kernels/binary_concrete.cu."""
import numpy

from minivae._backend import get_array_module
from minivae._gpu import contiguous, elementwise_launch, floating, launch_elementwise, loader, philox_shift


def binary_concrete_kl_fwd(logits, prior, seed, counter, temperature, hard):
    """(s, y, kl): s = σ((l + L)/τ) (kept for the VJP), y = clip(s, ε, 1 − ε) or 1[l + L > 0] if ``hard``, kl the
    Bernoulli KL to the prior, whose m values (C-contiguous, of the logits' dtype) element i takes as i mod m."""
    t = floating(logits, "binary_concrete_kl")
    x, lp = contiguous(logits), contiguous(prior, logits.dtype).reshape(-1)
    xp = get_array_module(logits)
    s, y, kl = (xp.empty(logits.shape, logits.dtype) for _ in range(3))
    n = logits.size
    if n:
        if lp.size == 0 or n % lp.size:
            raise ValueError(f"binary_concrete_kl: {lp.size} prior logits do not tile {n} logits")
        grid, block = elementwise_launch(-(-n // 4))  # a thread a Philox block: four elements
        cast = logits.dtype.type
        loader.function("binary_concrete.cu", f"binary_concrete_kl_fwd<{t}>")(
            grid, block, (x, lp, s, y, kl, numpy.int64(n), numpy.int64(lp.size), cast(temperature),
                          cast(numpy.finfo(logits.dtype).eps), numpy.uint64(seed), numpy.uint64(counter),
                          philox_shift(x), numpy.int32(bool(hard))))
    return s, y, kl


def binary_concrete_kl_bwd(s, gy, logits, prior, gkl, temperature):
    """l̄ = (ȳ·[ε ≤ s ≤ 1 − ε]·s(1 − s))/τ + k̄l·σ(l)σ(−l)·(l − l_p); ``gy`` or ``gkl`` None: that term is 0."""
    t = floating(s, "binary_concrete_kl backward")
    xp = get_array_module(s)
    sr, lp = contiguous(s), contiguous(prior, s.dtype).reshape(-1)
    gl = xp.empty(s.shape, s.dtype)
    # an absent gradient's pointer is never read (its flag is 0): s stands in for it
    gy_arg, gkl_arg = (sr if g is None else contiguous(g, s.dtype) for g in (gy, gkl))
    cast = s.dtype.type
    launch_elementwise("binary_concrete.cu", f"binary_concrete_kl_bwd<{t}>", s.size,
                       (sr, gy_arg, contiguous(logits, s.dtype), lp, gkl_arg, gl, numpy.int64(s.size),
                        numpy.int64(lp.size), cast(temperature), cast(numpy.finfo(s.dtype).eps),
                        numpy.int32(gy is not None), numpy.int32(gkl is not None)))
    return gl
