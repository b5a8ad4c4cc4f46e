r"""2-D convolutions (torch's ``conv2d`` and ``conv_transpose2d``: NCHW, weights (out, in/groups, kH, kW) and (in,
out/groups, kH, kW)) and padding (torch's ``F.pad``).

Both convolutions are three array routines on the padded input x_p (zero border of p rows and columns):

    windows   W[(n, i, j), (c, a, b)] = x_p[n, c, i·s_h + a·d_h, j·s_w + b·d_w]      an as_strided view, then one copy
    correlate y[n, o, i, j] = Σ_{c,a,b} w[o, c, a, b] · W[(n, i, j), (c, a, b)]          one matmul:  W · w₂ᵀ
    scatter   x̄_p[n, c, i·s_h + a·d_h, j·s_w + b·d_w] += Σ_o w[o, c, a, b] · ḡ[n, o, i, j]
                                                       one matmul w₂ᵀ · ḡ₁, then kH·kW strided-slice additions

with w₂ = w reshaped to (O, C·kH·kW) and ḡ₁ = ḡ as (O, N·Ho·Wo), a row per channel; the weight's gradient is
w̄₂ = ḡ₁ · W. With G groups each of the three is G such products, one batched matmul over the group axis: W splits
into G column blocks (input channels g·C/G …), w₂ and ḡ₁ into G row blocks (output channels g·O/G …). conv2d is
``correlate``, its x̄ ``scatter`` (cropped by the padding); conv_transpose2d is ``scatter`` as a forward, its x̄
``correlate`` of ḡ and its w̄ the same product with the roles of x and ḡ exchanged. No ``add.at``: each of the kH·kW
additions writes a strided slice, distinct elements, so a plain += is exact (overlapping windows are different
additions, one after another). The matrix products go through ``linalg.matmul_array`` (cuBLAS on the GPU, also inside
a CUDA graph's capture where groups = 1; grouped ones are CuPy's batched matmul); everything else is ``xp`` slicing,
so the ops run on CuPy arrays as they are. On the CPU with Numba, ``windows`` and the additions of ``scatter`` are the
kernels of minivae/_cpu/conv.py (one pass through memory each, the same numbers bit for bit); conv2d keeps its W
for w̄ (up to KEEP_WINDOWS times x's size) and conv_transpose2d's backward makes W(ḡ) once for x̄ and w̄.
"""
import numbers

import numpy

from minivae._backend import fused
from minivae.engine import Function
from minivae.ops._registry import register
from minivae.ops.arith import floating_all
from minivae.ops.linalg import matmul_array


def pair_argument(value, name, who, low):
    """``value`` (an int or a pair of ints, torch's ``_pair``) as a tuple of two ints ≥ ``low``, else an error naming it."""
    if type(value) is int:  # (the common cases first: numbers.Integral's check costs a microsecond each)
        pair = (value, value)
    elif type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        pair = value
    else:
        pair = (value, value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2
                or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in pair)):
            raise TypeError(f"{who}: {name} must be an int or a pair of ints, got {value!r}")
        pair = (int(pair[0]), int(pair[1]))
    if pair[0] < low or pair[1] < low:
        raise ValueError(f"{who}: {name} must be >= {low}, got {value!r}")
    return pair


def group_count(groups, who):
    """``groups`` as an int ≥ 1, else an error naming it (torch's "non-positive groups is not supported")."""
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral):
        raise TypeError(f"{who}: groups must be an int, got {groups!r}")
    if groups < 1:
        raise ValueError(f"{who}: non-positive groups is not supported, got groups={groups}")
    return int(groups)


def _operands(who, x, weight, bias, groups, transposed=False):
    """The arrays in their common dtype (floating_all's promotion: integer data beside float32 weights is float32), the
    dtype they compute in (float16 in float32, rounded once at the end, as PyTorch accumulates half), and whether x was
    unbatched (C, H, W); refuses shapes that do not fit the ``groups``, naming them (torch's checks: the weight's first
    axis divisible by the groups; x's channels weight.shape[1]·groups for conv2d, weight.shape[0] transposed)."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{who}: expected a 3-D (unbatched) or 4-D (batched) input (N, C, H, W), got shape {x.shape}")
    if weight.ndim != 4:
        raise ValueError(f"{who}: weight must be 4-D ({'in, out' if transposed else 'out, in'}, kH, kW), "
                         f"got shape {weight.shape}")
    arrays = floating_all((x, weight) + bias)
    dtype = numpy.result_type(*[a.dtype for a in arrays])
    compute = numpy.dtype(numpy.float32) if dtype == numpy.float16 else dtype
    arrays = [a.astype(compute, copy=False) for a in arrays]
    x, weight, bias = arrays[0], arrays[1], arrays[2] if bias else None
    unbatched = x.ndim == 3
    if unbatched:
        x = x[None]
    if weight.shape[0] % groups:
        raise ValueError(f"{who}: groups={groups} must divide the weight's first axis "
                         f"({'in_channels' if transposed else 'out_channels'}), got weight of shape {weight.shape}")
    expected, out_channels = ((weight.shape[0], weight.shape[1] * groups) if transposed
                              else (weight.shape[1] * groups, weight.shape[0]))
    if x.shape[1] != expected:
        raise ValueError(f"{who}: input of shape {x.shape[1:] if unbatched else x.shape} has {x.shape[1]} channels, "
                         f"weight of shape {weight.shape}{f' with groups={groups}' if groups > 1 else ''} expects "
                         f"{expected}")
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(f"{who}: bias must have shape ({out_channels},) (one per output channel), got {bias.shape}")
    return x, weight, bias, dtype, unbatched


KEEP_WINDOWS = 4  # conv2d keeps its windows W for w̄ up to this many times x's size (4×4 taps of stride 2: 4 times)


def _kernels(xp, *arrays):
    """minivae/_cpu/conv.py for NumPy arrays of float32 or float64 when Numba is on, else None (the array formulas;
    on the GPU always: CuPy's copies and slice additions are already one kernel launch each)."""
    return fused("conv", xp, *arrays) if xp is numpy else None


def windows(xp, x, kernel_hw, out_hw, stride, padding, dilation, groups):
    """The (G, N·Ho·Wo, C/G·kH·kW) stack W: row (n, i, j) of block g is the window of the zero-padded x's channels
    g·C/G … (g + 1)·C/G − 1 under output (i, j). (With Numba, minivae/_cpu/conv.py writes the same array.)"""
    kernel = _kernels(xp, x)
    if kernel is not None:
        return kernel.windows(x, kernel_hw, out_hw, stride, padding, dilation, groups)
    n, c, h, w = x.shape
    (kh, kw), (ho, wo), (sh, sw), (ph, pw), (dh, dw) = kernel_hw, out_hw, stride, padding, dilation
    if ph or pw:
        padded = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), x.dtype)
        padded[:, :, ph:ph + h, pw:pw + w] = x
    else:
        padded = x
    s_n, s_c, s_h, s_w = padded.strides
    cg = c // groups
    view = xp.lib.stride_tricks.as_strided(padded, shape=(groups, n, ho, wo, cg, kh, kw),
                                           strides=(cg * s_c, s_n, sh * s_h, sw * s_w, s_c, dh * s_h, dw * s_w))
    return view.reshape(groups, n * ho * wo, cg * kh * kw)


def group_matmul(xp, a, b):
    """The G products a[g] @ b[g] of two (G, ·, ·) stacks: one 2-D product where G = 1 (cuBLAS directly, also in a
    CUDA graph's capture), one batched matmul otherwise."""
    if a.shape[0] == 1:
        return matmul_array(xp, a[0], b[0])[None]
    return matmul_array(xp, a, b)


def channels_first(g):
    """(N, C, H, W) as the (C, N·H·W) matrix ḡ₁: one row per channel."""
    n, c, h, w = g.shape
    return g.transpose(1, 0, 2, 3).reshape(c, n * h * w)


def correlate(xp, x, weight, bias, out_hw, stride, padding, dilation, groups, cols=None):
    """y = x ⋆ w (+ b): conv2d of x (N, C, H, W) and w (O, C/G, kH, kW) in G groups (output channels g·O/G … of
    group g read input channels g·C/G …), its output (N, O, Ho, Wo) C-contiguous. ``cols``: x's ``windows``, where
    the caller made them already."""
    o, n = weight.shape[0], x.shape[0]
    w3 = weight.reshape(groups, o // groups, -1)
    if cols is None:
        cols = windows(xp, x, weight.shape[2:], out_hw, stride, padding, dilation, groups)
    y = group_matmul(xp, cols, w3.transpose(0, 2, 1))  # (G, N·Ho·Wo, O/G)
    y = xp.ascontiguousarray(y.reshape(groups, n, out_hw[0], out_hw[1], o // groups).transpose(1, 0, 4, 2, 3))
    y = y.reshape(n, o, *out_hw)
    if bias is not None:
        y += bias[:, None, None]
    return y


def scatter(xp, g1, g_shape, weight, in_hw, stride, padding, dilation, groups):
    """conv2d's x̄ (N, C, H, W) for the upstream ḡ of shape ``g_shape`` (N, O, Ho, Wo) given as ḡ₁ (O, N·Ho·Wo) and
    w (O, C/G, kH, kW): per group w₂[g]ᵀ · ḡ₁[g] (C/G·kH·kW, N·Ho·Wo), stacked to (C, kH, kW, N, Ho, Wo), each (a, b)
    slice of it, a (C, N, Ho, Wo) block, added back where its windows read, then the padding cropped. (Channels
    first: each slice is contiguous in its Ho·Wo pixels.)"""
    o, cg, kh, kw = weight.shape
    (n, _, ho, wo), (h, w), (sh, sw), (ph, pw), (dh, dw) = g_shape, in_hw, stride, padding, dilation
    w3 = weight.reshape(groups, o // groups, -1)
    cols = group_matmul(xp, w3.transpose(0, 2, 1), g1.reshape(groups, o // groups, -1))
    kernel = _kernels(xp, cols)
    if kernel is not None:  # (minivae/_cpu/conv.py: the same sums, x̄ written (N, C, H, W))
        return kernel.scatter(cols.reshape(groups * cg * kh * kw, -1), (n, groups * cg, h, w), (ho, wo), (kh, kw),
                              stride, padding, dilation)
    cols = cols.reshape(groups * cg, kh, kw, n, ho, wo)
    out = xp.zeros((groups * cg, n, max(h + 2 * ph, dh * (kh - 1) + sh * (ho - 1) + 1),
                    max(w + 2 * pw, dw * (kw - 1) + sw * (wo - 1) + 1)), g1.dtype)
    for a in range(kh):
        for b in range(kw):
            out[:, :, a * dh:a * dh + sh * (ho - 1) + 1:sh, b * dw:b * dw + sw * (wo - 1) + 1:sw] += cols[:, a, b]
    return out[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3)


def weight_grad(xp, x, g1, g_hw, kernel, stride, padding, dilation, groups, cols=None):
    """conv2d's w̄ (O, C/G, kH, kW) = ḡ₁[g] · W[g] per group, for x (N, C, H, W) and the upstream ḡ (N, O, Ho, Wo)
    as ḡ₁ (O, N·Ho·Wo); ``cols``: W, where the forward pass kept it (x is then not read)."""
    o = g1.shape[0]
    if cols is None:
        cols = windows(xp, x, kernel, g_hw, stride, padding, dilation, groups)
    w3 = group_matmul(xp, g1.reshape(groups, o // groups, -1), cols)
    return w3.reshape(o, -1, *kernel)


def bias_grad(g):
    """b̄[o] = Σ_{n,i,j} ḡ[n, o, i, j]: the bias is added at every pixel of every image."""
    return g.sum(axis=(0, 2, 3))


def _output_size(size, k, s, p, d, extra=0, transposed=False):
    """One side of the output (0 where the dilated kernel does not fit in the padded input)."""
    if transposed:
        out = (size - 1) * s - 2 * p + d * (k - 1) + extra + 1
    else:
        out = (size + 2 * p - d * (k - 1) - 1) // s + 1 if size + 2 * p >= d * (k - 1) + 1 else 0
    return out


def _check_output(who, in_hw, out_hw, kernel, padding, dilation):
    if min(out_hw) <= 0:
        raise ValueError(f"{who}: the output would be {out_hw[0]} x {out_hw[1]}, not positive: input "
                         f"{in_hw[0]} x {in_hw[1]}, padding {padding}, kernel {kernel[0]} x {kernel[1]} "
                         f"(dilated by {dilation}: {dilation[0] * (kernel[0] - 1) + 1} x "
                         f"{dilation[1] * (kernel[1] - 1) + 1})")


def _squeezed(y, unbatched, dtype):
    y = y[0] if unbatched else y
    return y if y.dtype == dtype else y.astype(dtype)


@register("conv2d")
class Conv2d(Function):
    r"""2-D cross-correlation (torch's conv2d), NCHW, weight (O, C/G, kH, kW), bias (O,) optional, G ``groups``.

    forward   y[n, o, i, j] = b[o] + Σ_{c,a,b} w[o, c, a, b] · x_p[n, g·C/G + c, i·s_h + a·d_h, j·s_w + b·d_w],
              g = ⌊o/(O/G)⌋ the group of output channel o, c over its C/G input channels (G = C: depthwise)
              (x_p: x with a zero border of p_h rows and p_w columns; Ho = ⌊(H + 2p_h − d_h(kH − 1) − 1)/s_h⌋ + 1)
              = ``correlate``: per group the windows matrix W[g] (N·Ho·Wo, C/G·kH·kW) times w₂[g]ᵀ
    backward  x̄ = ``scatter``: w₂[g]ᵀ · ḡ₁[g] added back at each window's place, x̄_p cropped to x (rows and columns
              no window read get 0);  w̄[g] = ḡ₁[g] · W[g];  b̄[o] = Σ_{n,i,j} ḡ[n, o, i, j]
    saves     w; where w needs a gradient, W (about kH·kW/(s_h·s_w) times x's memory, in place of x: the backward
              pass does not make it again) if it is at most KEEP_WINDOWS times x's size, else x
    fused     with Numba, minivae/_cpu/conv.py writes W and x̄'s slice sums in one pass each, the same numbers
    An unbatched x (C, H, W) gives (O, Ho, Wo), as torch's. Operands of several dtypes take their common one
    (floating_all's rule; torch refuses two dtypes), integer ones compute in integers (torch's); float16 computes in
    float32, rounded once.
    """

    def forward(ctx, x, weight, *bias, stride=1, padding=0, dilation=1, groups=1):
        who = "conv2d"
        stride, padding = pair_argument(stride, "stride", who, 1), pair_argument(padding, "padding", who, 0)
        dilation, groups = pair_argument(dilation, "dilation", who, 1), group_count(groups, who)
        x, weight, b, dtype, unbatched = _operands(who, x, weight, bias, groups)
        kernel, in_hw = weight.shape[2:], x.shape[2:]
        out_hw = tuple(_output_size(n, k, s, p, d) for n, k, s, p, d in zip(in_hw, kernel, stride, padding, dilation))
        _check_output(who, in_hw, out_hw, kernel, padding, dilation)
        geometry = (stride, padding, dilation, groups)
        cols = windows(ctx.xp, x, kernel, out_hw, *geometry)
        keep = ctx.needs_input_grad[1] and cols.size <= KEEP_WINDOWS * x.size  # (else w̄ makes them again from x)
        ctx.save(cols=cols if keep else None, x=x if ctx.needs_input_grad[1] and not keep else None, in_hw=in_hw,
                 weight=weight, has_bias=b is not None, geometry=geometry, unbatched=unbatched)
        return _squeezed(correlate(ctx.xp, x, weight, b, out_hw, *geometry, cols=cols), unbatched, dtype)

    def backward(ctx, g):
        xp, cols, weight, geometry = ctx.xp, ctx.cols, ctx.weight, ctx.geometry
        g = (g[None] if ctx.unbatched else g).astype(weight.dtype, copy=False)
        g1, need = channels_first(g), ctx.needs_input_grad
        gx = scatter(xp, g1, g.shape, weight, ctx.in_hw, *geometry) if need[0] else None
        gw = weight_grad(xp, ctx.x, g1, g.shape[2:], weight.shape[2:], *geometry, cols=cols) if need[1] else None
        if gx is not None and ctx.unbatched:
            gx = gx[0]
        if not ctx.has_bias:
            return gx, gw
        return gx, gw, bias_grad(g) if need[2] else None


@register("conv_transpose2d")
class ConvTranspose2d(Function):
    r"""2-D transposed convolution (torch's conv_transpose2d): conv2d's x̄ as a forward. NCHW, weight
    (C_in, C_out/G, kH, kW), bias (C_out,) optional, G ``groups``.

    forward   y_p[n, g·C_out/G + o, i·s_h + a·d_h, j·s_w + b·d_w] += Σ_c x[n, c, i, j] · w[c, o, a, b], the sum
              over the C_in/G input channels c of group g (o < C_out/G), then y = y_p cropped by
              p_h rows and p_w columns on each side (+ b[o]); Ho = (H − 1)s_h − 2p_h + d_h(kH − 1) + op_h + 1, the
              output_padding op adding rows and columns at the bottom and right (zero before the bias)
              = ``scatter`` of x₁ (C_in, N·H·W) with w
    backward  x̄ = conv2d(ḡ, w) (same stride, padding, dilation, groups; its first H × W outputs) = ``correlate``;
              w̄[c, o, a, b] = Σ_{n,i,j} x[n, c, i, j] · ḡ_p[n, g·C_out/G + o, i·s_h + a·d_h, j·s_w + b·d_w]
              = x₁[g] · W(ḡ)[g] per group;
              b̄[o] = Σ_{n,i,j} ḡ[n, o, i, j]
    saves     w, and x₁ where w needs a gradient (x's memory); the backward pass makes W(ḡ) once for x̄ and w̄
    fused     with Numba, minivae/_cpu/conv.py: the forward's slice sums and W(ḡ), the same numbers
    output_padding must be smaller than the stride or the dilation (torch's rule: else it would pad with rows no
    input reaches). Dtypes and the unbatched case as conv2d's.
    """

    def forward(ctx, x, weight, *bias, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
        who = "conv_transpose2d"
        stride, padding = pair_argument(stride, "stride", who, 1), pair_argument(padding, "padding", who, 0)
        output_padding, dilation = pair_argument(output_padding, "output_padding", who, 0), pair_argument(dilation, "dilation", who, 1)
        for op, s, d in zip(output_padding, stride, dilation):
            if op >= s and op >= d:
                raise ValueError(f"{who}: output_padding must be smaller than either stride or dilation, got "
                                 f"output_padding {output_padding}, stride {stride}, dilation {dilation}")
        groups = group_count(groups, who)
        x, weight, b, dtype, unbatched = _operands(who, x, weight, bias, groups, transposed=True)
        kernel, in_hw = weight.shape[2:], x.shape[2:]
        out_hw = tuple(_output_size(n, k, s, p, d, e, transposed=True)
                       for n, k, s, p, d, e in zip(in_hw, kernel, stride, padding, dilation, output_padding))
        _check_output(who, in_hw, out_hw, kernel, padding, dilation)
        geometry = (stride, padding, dilation, groups)
        x1 = channels_first(x)
        ctx.save(x1=x1 if ctx.needs_input_grad[1] else None, in_hw=in_hw, weight=weight, has_bias=b is not None,
                 geometry=geometry, unbatched=unbatched)
        y = scatter(ctx.xp, x1, x.shape, weight, out_hw, *geometry)  # (a new array: the bias is added in place)
        if b is not None:
            y += b[:, None, None]
        return _squeezed(ctx.xp.ascontiguousarray(y), unbatched, dtype)

    def backward(ctx, g):
        xp, weight, geometry = ctx.xp, ctx.weight, ctx.geometry
        g = (g[None] if ctx.unbatched else g).astype(weight.dtype, copy=False)
        need, in_hw, kernel = ctx.needs_input_grad, ctx.in_hw, weight.shape[2:]
        cols = windows(xp, g, kernel, in_hw, *geometry) if need[0] or need[1] else None  # (made once for both)
        gx = correlate(xp, g, weight, None, in_hw, *geometry, cols=cols) if need[0] else None
        gw = weight_grad(xp, g, ctx.x1, in_hw, kernel, *geometry, cols=cols) if need[1] else None
        if gx is not None and ctx.unbatched:
            gx = gx[0]
        if not ctx.has_bias:
            return gx, gw
        return gx, gw, bias_grad(g) if need[2] else None


def _pad_widths(who, shape, pad):
    """torch's pad tuple (last axis first: (left, right, top, bottom, …)) as one (before, after) per axis of ``shape``."""
    if isinstance(pad, numbers.Integral) or not isinstance(pad, (tuple, list)) or any(
            isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in pad):
        raise TypeError(f"{who}: pad must be a tuple of ints (left, right, top, bottom, …), got {pad!r}")
    if len(pad) % 2:
        raise ValueError(f"{who}: padding length must be divisible by 2, got {len(pad)} ({tuple(pad)})")
    if len(pad) // 2 > len(shape):
        raise ValueError(f"{who}: padding length should be less than or equal to two times the input dimension but "
                         f"got padding length {len(pad)} and input of dimension {len(shape)}")
    widths = [(0, 0)] * len(shape)
    for k in range(len(pad) // 2):
        widths[len(shape) - 1 - k] = (int(pad[2 * k]), int(pad[2 * k + 1]))
    for axis, (n, (lo, hi)) in enumerate(zip(shape, widths)):
        if n + min(lo, 0) + min(hi, 0) < 0:
            raise ValueError(f"{who}: axis {axis} of size {n} cropped by {-min(lo, 0)} and {-min(hi, 0)} (pads "
                             f"{lo}, {hi}) would have a negative size")
    return widths


PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _check_mode(who, shape, widths, pad, mode, value):
    """torch's rules for the modes that copy x's own elements: no fill value; the last 1, 2 or 3 axes of an input with
    one or two axes before them; no empty axis but the batch (reflect, replicate); reflect's pads below the axis' size;
    circular's pads at most the axis' size once cropped (a single wrap)."""
    if mode not in PAD_MODES:
        raise ValueError(f"{who}: unrecognised padding mode {mode!r} (one of {', '.join(map(repr, PAD_MODES))})")
    if mode == "constant":
        return
    if value not in (None, 0):
        raise ValueError(f'{who}: padding mode "{mode}" doesn\'t take in value argument (got value={value!r})')
    k, ndim = len(pad) // 2, len(shape)
    if k not in (1, 2, 3) or ndim not in (k + 1, k + 2):
        raise NotImplementedError(
            f"{who}: padding size {len(pad)} is not supported for {ndim}D input tensor in mode {mode!r}. Supported "
            "combinations for non-constant padding: 2D or 3D input: padding size = 2 (pads last dimension); 3D or 4D "
            "input: padding size = 4 (pads last 2 dimensions); 4D or 5D input: padding size = 6 (pads last 3 "
            "dimensions)")
    if mode != "circular" and 0 in shape[ndim - k - 1:]:
        raise ValueError(f"{who}: padding mode {mode!r} expects non-empty dimensions but the batch, got input of "
                         f"shape {tuple(shape)}")
    for axis in range(ndim - k, ndim):
        n, (lo, hi) = shape[axis], widths[axis]
        if mode == "reflect" and (lo >= n or hi >= n):
            raise ValueError(f"{who}: reflect padding size should be less than the corresponding input dimension, "
                             f"but got padding ({lo}, {hi}) at dimension {axis} of input {tuple(shape)}")
        kept = n - max(-lo, 0) - max(-hi, 0)
        if mode == "circular" and max(lo, hi) > kept:
            raise ValueError(f"{who}: circular padding ({lo}, {hi}) at dimension {axis} of input {tuple(shape)} wraps "
                             f"around more than once ({kept} elements after cropping)")


def _along(axis, index):
    """An index tuple that applies ``index`` (a slice) to ``axis`` and leaves the axes before it whole."""
    return (slice(None),) * axis + (index,)


def _copy_pad_axis(xp, x, axis, lo, hi, mode):
    """x padded along ``axis`` by (lo, hi) with copies of its own elements (a negative width crops): reflect and
    replicate pad x and then crop, circular crops x and then wraps what is left (torch's orders)."""
    n, at = x.shape[axis], lambda index: x[_along(axis, index)]
    left, right = max(lo, 0), max(hi, 0)
    if mode == "circular":
        x = at(slice(max(-lo, 0), n - max(-hi, 0)))
        n, at = x.shape[axis], lambda index: x[_along(axis, index)]
        return xp.concatenate([at(slice(n - left, n)), x, at(slice(0, right))], axis=axis)
    if mode == "reflect":  # y[i] = x[L − i] before x (i < L), y[L + n + k] = x[n − 2 − k] after it
        pieces = [at(slice(1, left + 1))[_along(axis, slice(None, None, -1))], x,
                  at(slice(n - 1 - right, n - 1))[_along(axis, slice(None, None, -1))]]
    else:  # replicate: the first and the last element, repeated
        pieces = [xp.repeat(at(slice(0, 1)), left, axis=axis), x, xp.repeat(at(slice(n - 1, n)), right, axis=axis)]
    full = xp.concatenate(pieces, axis=axis)
    return full[_along(axis, slice(max(-lo, 0), full.shape[axis] - max(-hi, 0)))]


def _copy_pad_axis_vjp(xp, g, axis, n, lo, hi, mode):
    """The transpose of ``_copy_pad_axis``: each element of ḡ added to the element of x it is a copy of (x̄ of size n
    along ``axis``); slice additions, each of distinct elements (no add.at)."""
    left, right = max(lo, 0), max(hi, 0)
    if mode == "circular":
        kept = n - max(-lo, 0) - max(-hi, 0)
        core = g[_along(axis, slice(left, left + kept))].copy()
        core[_along(axis, slice(kept - left, kept))] += g[_along(axis, slice(0, left))]
        core[_along(axis, slice(0, right))] += g[_along(axis, slice(left + kept, left + kept + right))]
        gx = xp.zeros(g.shape[:axis] + (n,) + g.shape[axis + 1:], g.dtype)
        gx[_along(axis, slice(max(-lo, 0), max(-lo, 0) + kept))] = core
        return gx
    full = xp.zeros(g.shape[:axis] + (n + left + right,) + g.shape[axis + 1:], g.dtype)  # the crop undone: zeros
    full[_along(axis, slice(max(-lo, 0), max(-lo, 0) + g.shape[axis]))] = g
    at = lambda index: full[_along(axis, index)]  # noqa: E731
    gx = at(slice(left, left + n)).copy()
    if mode == "reflect":
        gx[_along(axis, slice(1, left + 1))] += at(slice(0, left))[_along(axis, slice(None, None, -1))]
        gx[_along(axis, slice(n - 1 - right, n - 1))] += at(slice(left + n, left + n + right))[
            _along(axis, slice(None, None, -1))]
    else:
        gx[_along(axis, slice(0, 1))] += at(slice(0, left)).sum(axis=axis, keepdims=True)
        gx[_along(axis, slice(n - 1, n))] += at(slice(left + n, left + n + right)).sum(axis=axis, keepdims=True)
    return gx


@register("pad")
class Pad(Function):
    r"""torch's F.pad(x, pad, mode, value): ``pad`` lists (before, after) pairs from the last axis backwards; a negative
    pad crops. Per padded axis of size n, widths (lo, hi), output position i (0 ≤ i < n + lo + hi):

    forward   constant   y = v everywhere, then y[dst] = x[src], per axis src = x[max(−lo, 0) : n − max(−hi, 0)]
                         and dst starting at max(lo, 0)
              reflect    y[i] = x[r(i − lo)], r(t) = −t for t < 0, 2(n − 1) − t for t ≥ n, t otherwise (the edge not
                         repeated: x = [0 1 2 3], pad (2, 1): [2 1 0 1 2 3 2])
              replicate  y[i] = x[clip(i − lo, 0, n − 1)]
              circular   x' = x cropped by the negative widths (n' elements), y[i] = x'[(i − max(lo, 0)) mod n']
    backward  x̄ = Σ over the outputs copied from each element: x̄[t] = Σ_{i : y[i] is x[t]} ḡ[i]
              constant   x̄ = 0 (cropped elements), x̄[src] = ḡ[dst]: the slice
              reflect    x̄ = ḡ's middle n, plus ḡ's first L = max(lo, 0) reversed onto x̄[1 … L], its last
                         H = max(hi, 0) reversed onto x̄[n − 1 − H … n − 2] (the crop's elements first put back as 0)
              replicate  x̄ = ḡ's middle n, plus Σ of ḡ's first L onto x̄[0], Σ of its last H onto x̄[n − 1]
              circular   x̄' = ḡ's middle n', plus ḡ's first L onto x̄'[n' − L …], its last H onto x̄'[… H − 1];
                         x̄ = x̄' where x' was, 0 where it was cropped
              axis by axis (the modes are separable), each addition a slice of distinct elements (no add.at)
    saves     the widths, x's shape and the mode (constant: the two index tuples)
    Modes and ranks as torch's: reflect, replicate and circular pad the last 1, 2 or 3 axes of an input with 1 or 2
    axes more, take no fill value, and refuse (reflect) pads ≥ n, (circular) pads above n'. The dtype is x's (an
    integer x with a float v takes v cast, as NumPy's full; torch refuses a float v for it only when it cannot be
    represented).
    """

    def forward(ctx, x, pad=(), value=0.0, mode="constant"):
        widths = _pad_widths("pad", x.shape, pad)
        _check_mode("pad", x.shape, widths, pad, mode, value)
        if mode != "constant":
            axes = range(x.ndim - len(pad) // 2, x.ndim)
            y = x
            for axis in axes:
                y = _copy_pad_axis(ctx.xp, y, axis, *widths[axis], mode)
            ctx.save(widths=widths, shape=x.shape, mode=mode, axes=axes)
            return ctx.xp.ascontiguousarray(y)
        src = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for n, (lo, hi) in zip(x.shape, widths))
        dst = tuple(slice(max(lo, 0), max(lo, 0) + n + min(lo, 0) + min(hi, 0)) for n, (lo, hi) in zip(x.shape, widths))
        y = ctx.xp.full(tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, widths)), value, x.dtype)
        y[dst] = x[src]
        ctx.save(src=src, dst=dst, shape=x.shape, mode=mode)
        return y

    def backward(ctx, g):
        if ctx.mode != "constant":
            for axis in reversed(ctx.axes):
                g = _copy_pad_axis_vjp(ctx.xp, g, axis, ctx.shape[axis], *ctx.widths[axis], ctx.mode)
            return g
        gx = ctx.xp.zeros(ctx.shape, g.dtype)
        gx[ctx.src] = g[ctx.dst]
        return gx


def pad(input, pad, value=0.0, mode="constant"):
    """torch.nn.functional.pad: ``pad`` = (left, right, top, bottom, …), last axis first; ``mode`` "constant" (fill
    ``value``), "reflect", "replicate" or "circular" (see Pad)."""
    return Pad.apply(input, pad=tuple(pad) if isinstance(pad, list) else pad, value=0.0 if value is None else value,
                     mode=mode)


def _same_padding(input, weight, stride, dilation):
    """torch's padding="same" for conv2d: (input, symmetric padding), the input padded by one more row or column at
    the bottom or right where the dilated kernel's extent d(k − 1) is odd; refused for a stride other than 1."""
    stride, dilation = pair_argument(stride, "stride", "conv2d", 1), pair_argument(dilation, "dilation", "conv2d", 1)
    if stride != (1, 1):
        raise ValueError(f"conv2d: padding='same' is not supported for strided convolutions (stride {stride})")
    total = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
    extra = [t % 2 for t in total]
    if any(extra):
        input = pad(input, (0, extra[1], 0, extra[0]))
    return input, (total[0] // 2, total[1] // 2)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch.nn.functional.conv2d: input (N, C, H, W) or (C, H, W), weight (O, C/groups, kH, kW), bias (O,) or
    None; stride, padding and dilation an int or a pair; padding also "valid" (0) or "same" (stride 1)."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"conv2d: padding must be 'valid', 'same', an int or a pair of ints, got {padding!r}")
        input, padding = _same_padding(input, weight, stride, dilation) if padding == "same" else (input, 0)
    inputs = (input, weight) if bias is None else (input, weight, bias)
    return Conv2d.apply(*inputs, stride=stride, padding=padding, dilation=dilation, groups=groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch.nn.functional.conv_transpose2d: input (N, C_in, H, W) or (C_in, H, W), weight (C_in, C_out/groups, kH,
    kW), bias (C_out,) or None (torch's order of arguments: groups before dilation)."""
    inputs = (input, weight) if bias is None else (input, weight, bias)
    return ConvTranspose2d.apply(*inputs, stride=stride, padding=padding, output_padding=output_padding,
                                 dilation=dilation, groups=groups)
