"""Philox4x32-10 inside Numba kernels: the same function of (key, counter) as minivae.random."""
import numba
import numpy

from minivae._cpu.vector import log

_M0, _M1 = numpy.uint64(0xD2511F53), numpy.uint64(0xCD9E8D57)
_W0, _W1 = numpy.uint64(0x9E3779B9), numpy.uint64(0xBB67AE85)
_MASK, _32 = numpy.uint64(0xFFFFFFFF), numpy.uint64(32)
_1, _2 = numpy.uint64(1), numpy.uint64(2)


@numba.njit(inline="always")
def philox_block(block, k0, k1):
    """The 4 words of Philox4x32-10 for counter (block mod 2³², block div 2³², 0, 0), key (k0, k1)."""
    return philox_round(block, numpy.uint64(0), k0, k1)


@numba.njit(inline="always")
def philox_round(block, r, k0, k1):
    """The 4 words of Philox4x32-10 for counter (block mod 2³², block div 2³², r, 0), key (k0, k1): round r of a
    Gamma draw's element (minivae/random.py, "Stream layout"); r = 0 is the ordinary block."""
    c0, c1, c2, c3 = block & _MASK, block >> _32, r, numpy.uint64(0)
    for r in range(10):
        if r:
            k0, k1 = (k0 + _W0) & _MASK, (k1 + _W1) & _MASK
        p0, p1 = c0 * _M0, c2 * _M1
        c0, c1, c2, c3 = (p1 >> _32) ^ c1 ^ k0, p1 & _MASK, (p0 >> _32) ^ c3 ^ k1, p0 & _MASK
    return c0, c1, c2, c3


@numba.njit(inline="always")
def philox_word(block, i, k0, k1):
    """Word i mod 4 of block ``block`` + i div 4 (uint64s): element i of the stream that starts there. Each
    element makes its own block (four times the work of sharing it), so that a loop over elements has no
    branch and vectorizes."""
    c0, c1, c2, c3 = philox_block(block + (i >> _2), k0, k1)
    odd = i & _1                               # two-way choices: a chain of == tests does not vectorize
    return (c3 if odd else c2) if i & _2 else (c1 if odd else c0)


@numba.njit(inline="always")
def gumbel_from_word(w):
    """g = −log(−log1p(−u)), u = (w + ½)·2⁻³² ∈ (0, 1): as Generator.gumbel. 1 − u = (2³² − w − ½)·2⁻³² is
    exact in float64 (34 significant bits at most), so log1p(−u) is log(1 − u), and vector.log vectorizes."""
    return -log(-log((4294967296.0 - numpy.float64(numpy.int64(w)) - 0.5) * 2.0 ** -32))
