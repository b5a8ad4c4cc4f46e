"""The Numba kernels of the convolutions (minivae/_cpu/conv.py) against the array formulas of minivae/ops/conv.py that
they replace (the specification; tests/test_conv.py checks those against torch and nested loops): the windows and x̄'s
slice sums bit for bit, float32 and float64, over strides 1-3, paddings 0-2, dilation 2, groups 2, 1×1, 3×3 and 4×4
kernels, odd sizes and a batch of 1; then both convolutions end to end, values and every gradient, with the kernels
and without them (the same arrays). They switch Numba on and off themselves, so they test the kernels in either
mode of the suite. Skipped without Numba."""
import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae._backend import use_numba
from minivae.ops import conv

pytest.importorskip("numba", reason="Numba is not installed: the fused CPU kernels are not in use")
from minivae._cpu import conv as kernels  # noqa: E402  (needs Numba)

# (x shape (N, C, H, W), kernel (kH, kW), stride, padding, dilation, groups): odd sizes, kernels larger than the
# stride (overlapping windows) and smaller (skipped pixels), padding wider than a dilated tap, a batch of 1
GEOMETRIES = [
    ((2, 3, 7, 6), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((1, 4, 9, 8), (4, 4), (2, 2), (1, 1), (1, 1), 2),
    ((3, 2, 7, 9), (3, 3), (3, 2), (2, 0), (2, 1), 1),
    ((2, 2, 5, 5), (1, 1), (2, 3), (0, 2), (1, 1), 2),
    ((1, 3, 11, 10), (4, 4), (3, 3), (2, 2), (2, 2), 1),
    ((2, 6, 6, 7), (3, 3), (1, 2), (0, 1), (2, 1), 2),
    ((1, 1, 3, 3), (3, 3), (1, 1), (2, 2), (1, 1), 1),
    ((2, 2, 4, 4), (1, 1), (1, 1), (0, 0), (1, 1), 1),
]
DTYPES = [np.float32, np.float64]


def out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def shape_of(geometry):
    xs, k, s, p, d, _ = geometry
    return tuple(out_size(n, kk, ss, pp, dd) for n, kk, ss, pp, dd in zip(xs[2:], k, s, p, d))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_the_windows_kernel_writes_the_formulas_windows(geometry, dtype):
    xs, k, s, p, d, groups = geometry
    x = np.random.default_rng(1).normal(size=xs).astype(dtype)
    out_hw = shape_of(geometry)
    with use_numba(False):
        want = conv.windows(np, x, k, out_hw, s, p, d, groups)
    got = kernels.windows(x, k, out_hw, s, p, d, groups)
    assert got.dtype == dtype and got.flags.c_contiguous and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(kernels.windows(x.transpose(0, 1, 3, 2).copy().transpose(0, 1, 3, 2), k, out_hw, s,
                                                  p, d, groups), want)  # a strided x: the same windows


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_the_scatter_kernel_adds_as_the_formulas_slices(geometry, dtype):
    """conv2d's x̄ for a random ḡ, bit for bit: the kernel adds each tap's term in the slices' order, from 0."""
    xs, k, s, p, d, groups = geometry
    rng = np.random.default_rng(2)
    out_hw, (n, c) = shape_of(geometry), xs[:2]
    o = 2 * groups
    g = rng.normal(size=(n, o, *out_hw)).astype(dtype)
    w = rng.normal(size=(o, c // groups, *k)).astype(dtype)
    results = []
    for flag in (True, False):
        with use_numba(flag):
            results.append(conv.scatter(np, conv.channels_first(g), g.shape, w, xs[2:], s, p, d, groups))
    assert results[0].dtype == dtype and results[0].shape == xs
    np.testing.assert_array_equal(*results)


def test_the_threaded_builds_compute_the_same():
    """Above PARALLEL_MIN elements the kernels run across threads: the same arrays (each thread writes its own rows
    of W and its own planes of x̄)."""
    xs, k, s, p, d, groups = GEOMETRIES[1]
    rng = np.random.default_rng(3)
    x, out_hw = rng.normal(size=xs), shape_of(GEOMETRIES[1])
    serial = kernels.windows(x, k, out_hw, s, p, d, groups)
    threaded = np.empty_like(serial)
    kernels._windows.parallel(x, threaded.reshape(-1, serial.shape[2]), *out_hw, *k, *s, *p, *d, groups)
    np.testing.assert_array_equal(threaded, serial)
    cols = rng.normal(size=(xs[1] * k[0] * k[1], xs[0] * out_hw[0] * out_hw[1]))
    serial = kernels.scatter(cols, xs, out_hw, k, s, p, d)
    threaded = np.full(xs, np.nan)
    kernels._scatter.parallel(cols, threaded, *out_hw, *k, *s, *p, *d)
    np.testing.assert_array_equal(threaded, serial)


def both_ways(fn, arrays, upstream):
    """fn's value and every input's gradient with the kernels, then with the array formulas."""
    results = []
    for flag in (True, False):
        with use_numba(flag):
            ts = [mv.tensor(a, requires_grad=True) for a in arrays]
            y = fn(*ts)
            y.backward(upstream)
            results.append([y.data] + [t.grad for t in ts])
    return results


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_both_convolutions_are_the_formulas_values_and_gradients(geometry, dtype):
    """conv2d and conv_transpose2d (the kernels serve both: the transposed forward is the slice sums, its backward
    the windows of ḡ) with the kernels and without: the same values and gradients, bit for bit."""
    xs, k, s, p, d, groups = geometry
    rng = np.random.default_rng(4)
    n, c = xs[:2]
    o = 2 * groups
    x, w, b = (rng.normal(size=xs).astype(dtype), rng.normal(size=(o, c // groups, *k)).astype(dtype),
               rng.normal(size=o).astype(dtype))
    out_hw = shape_of(geometry)
    forward = both_ways(lambda *t: ops.conv2d(*t, stride=s, padding=p, dilation=d, groups=groups), (x, w, b),
                        rng.normal(size=(n, o, *out_hw)).astype(dtype))
    # the transposed one from ḡ's shape back to x's (each geometry's output padding is below its stride or dilation)
    op = tuple(size - ((m - 1) * ss - 2 * pp + dd * (kk - 1) + 1) for size, m, ss, pp, dd, kk in
               zip(xs[2:], out_hw, s, p, d, k))
    z, wt, bt = (rng.normal(size=(n, o, *out_hw)).astype(dtype), rng.normal(size=(o, c // groups, *k)).astype(dtype),
                 rng.normal(size=c).astype(dtype))
    transposed = both_ways(lambda *t: ops.conv_transpose2d(*t, stride=s, padding=p, output_padding=op, groups=groups,
                                                           dilation=d), (z, wt, bt), rng.normal(size=xs).astype(dtype))
    for fused, formula in (forward, transposed):
        for a, e in zip(fused, formula):
            assert a.dtype == dtype
            np.testing.assert_array_equal(a, e)


def test_the_backward_keeps_what_the_wanted_gradients_need():
    """conv2d keeps its windows for w̄ (kH·kW/(s_h·s_w) times x's memory) where they are at most 4 times x's size,
    else x, and conv_transpose2d its x₁, only where the weight wants a gradient; x̄ needs neither (nor x). w̄ of a
    constant x, ḡ = 1: conv2d's w̄[o, c, a, b] = Σ_{n,i,j} x_p[n, c, i·s + a, j·s + b] (every o); conv_transpose2d's,
    unpadded, Σ_{n,i,j} x[n, c, i, j] (every o, a, b)."""
    rng = np.random.default_rng(5)
    x, w = rng.normal(size=(2, 3, 6, 6)), rng.normal(size=(4, 3, 3, 3))
    y = ops.conv2d(mv.tensor(x, requires_grad=True), mv.tensor(w), padding=1)
    assert y._ctx.cols is None and y._ctx.x is None
    wt = mv.tensor(w, requires_grad=True)
    y = ops.conv2d(mv.tensor(x), wt, padding=1)
    assert y._ctx.cols is None and y._ctx.x.shape == x.shape  # 3×3 taps of stride 1: W would be 9 times x's size
    y.sum().backward()
    x_p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.array([[[x_p[:, c, a:a + 6, b:b + 6].sum() for b in range(3)] for a in range(3)] for c in range(3)])
    np.testing.assert_allclose(wt.grad, np.broadcast_to(want, (4, 3, 3, 3)), rtol=1e-12)
    wt = mv.tensor(w, requires_grad=True)
    y = ops.conv2d(mv.tensor(x), wt, stride=2, padding=1)  # 4 times: kept (the conv VAE's 4×4 of stride 2 too)
    assert y._ctx.cols.shape == (1, 2 * 3 * 3, 3 * 3 * 3) and y._ctx.x is None
    y.sum().backward()
    want = np.array([[[x_p[:, c, a:a + 6:2, b:b + 6:2].sum() for b in range(3)] for a in range(3)] for c in range(3)])
    np.testing.assert_allclose(wt.grad, np.broadcast_to(want, (4, 3, 3, 3)), rtol=1e-12)

    w = rng.normal(size=(3, 4, 3, 3))  # (in, out, kH, kW)
    y = ops.conv_transpose2d(mv.tensor(x, requires_grad=True), mv.tensor(w), stride=2)
    assert y._ctx.x1 is None and not hasattr(y._ctx, "x")
    wt = mv.tensor(w, requires_grad=True)
    y = ops.conv_transpose2d(mv.tensor(x), wt, stride=2)
    y.sum().backward()
    np.testing.assert_allclose(wt.grad, np.broadcast_to(x.sum(axis=(0, 2, 3))[:, None, None, None], (3, 4, 3, 3)),
                               rtol=1e-12)
