"""The two memory passes of the 2-D convolutions (minivae/ops/conv.py), the matrix products left to BLAS:

    windows   W[g, (n, i, j), (c, a, b)] = x[n, g·C/G + c, i·s_h + a·d_h − p_h, j·s_w + b·d_w − p_w]  (0 outside x)
    scatter   x̄[n, c, r, q] = Σ_{a, b} cols[(c, a, b), (n, i, j)] over the (a, b) in row-major order whose window
              places (i·s_h + a·d_h − p_h, j·s_w + b·d_w − p_w) = (r, q) for some output (i, j); 0 where none

the array formulas' ``windows`` (an as_strided view of the zero-padded x copied by ``reshape``) and ``scatter`` (kH·kW
strided-slice additions into a zero-padded x̄, then cropped). NumPy's copy of a 7-axis view moves 4 elements at a
time, and each of the kH·kW additions walks all of x̄; here each window row is written once and each image's plane of
x̄ is summed while it sits in the cache, with the padding read as zeros rather than copied. The numbers are the
formulas' bit for bit: the windows are copies; x̄ starts at 0 and takes its terms in the formula's (a, b) order,
one term per (a, b), as the slice additions do.
"""
import numba
import numpy

from minivae._cpu import kernel


U = numba.uint64  # flat indices as unsigned: a signed index costs a wraparound test per access, 2-3× these loops


@numba.njit(inline="always")
def _inside(offset, step, size, count):
    """The range [lo, hi) of the t in [0, count) with 0 ≤ t·step + offset < size (step ≥ 1; empty where lo = hi)."""
    lo = 0 if offset >= 0 else min((-offset + step - 1) // step, count)
    hi = min((size - 1 - offset) // step + 1, count) if size - 1 - offset >= 0 else 0
    return lo, max(lo, hi)


@kernel
def _windows(x, out, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw, groups):
    n_, c_, h, w = x.shape
    cg = c_ // groups
    xf, of = x.reshape(-1), out.reshape(-1)
    for gni in numba.prange(groups * n_ * ho):
        g, n, i = gni // (n_ * ho), gni // ho % n_, gni % ho
        o = gni * wo * cg * kh * kw
        for j in range(wo):
            b_lo, b_hi = _inside(j * sw - pw, dw, w, kw)   # the taps b inside x's columns
            for c in range(cg):
                plane = ((n * c_ + g * cg + c) * h) * w
                for a in range(kh):
                    r = i * sh + a * dh - ph
                    if 0 <= r < h:
                        src = plane + r * w + j * sw - pw
                        for b in range(b_lo):
                            of[U(o + b)] = 0
                        for b in range(b_lo, b_hi):
                            of[U(o + b)] = xf[U(src + b * dw)]
                        for b in range(b_hi, kw):
                            of[U(o + b)] = 0
                    else:
                        for b in range(kw):
                            of[U(o + b)] = 0
                    o += kw


@kernel
def _scatter(cols, out, ho, wo, kh, kw, sh, sw, ph, pw, dh, dw):
    n_, c_, h, w = out.shape
    cf, of = cols.reshape(-1), out.reshape(-1)
    m = n_ * ho * wo
    for nc in numba.prange(n_ * c_):
        n, c = nc // c_, nc % c_
        plane = nc * h * w
        for t in range(h * w):
            of[U(plane + t)] = 0
        for a in range(kh):
            i_lo, i_hi = _inside(a * dh - ph, sh, h, ho)   # the outputs i whose tap a lands inside x's rows
            for b in range(kw):
                j_lo, j_hi = _inside(b * dw - pw, sw, w, wo)
                k = (c * kh + a) * kw + b
                for i in range(i_lo, i_hi):
                    src = k * m + (n * ho + i) * wo
                    dst = plane + (i * sh + a * dh - ph) * w + b * dw - pw
                    for j in range(j_lo, j_hi):
                        of[U(dst + j * sw)] += cf[U(src + j)]


def windows(x, kernel_hw, out_hw, stride, padding, dilation, groups):
    """The (G, N·Ho·Wo, C/G·kH·kW) window stack of x (N, C, H, W), C-contiguous: ``windows`` of minivae/ops/conv.py."""
    n, c = x.shape[:2]
    (kh, kw), (ho, wo) = kernel_hw, out_hw
    out = numpy.empty((groups, n * ho * wo, c // groups * kh * kw), x.dtype)
    _windows(out.size, numpy.ascontiguousarray(x), out.reshape(-1, out.shape[2]), ho, wo, kh, kw, *stride, *padding,
             *dilation, groups)
    return out


def scatter(cols, x_shape, out_hw, kernel_hw, stride, padding, dilation):
    """x̄ (N, C, H, W) = ``x_shape``, C-contiguous, from cols (C·kH·kW, N·Ho·Wo) (rows (c, a, b), columns
    (n, i, j)): each column added where its window read, the padding dropped (``scatter`` of minivae/ops/conv.py)."""
    (kh, kw), (ho, wo) = kernel_hw, out_hw
    out = numpy.empty(x_shape, cols.dtype)
    _scatter(cols.size, numpy.ascontiguousarray(cols), out, ho, wo, kh, kw, *stride, *padding, *dilation)
    return out
