"""The CuPy glue of minivae/_gpu without a GPU: which kernel a shape picks, grid and block sizes,
dtype and contiguity checks, and argument packing, against a stand-in kernel object that records
each launch. (tests/test_cuda_kernels.py runs the real kernels through the host emulation.)"""
import pathlib
import re

import numpy as np
import pytest

from minivae._gpu import (adam, bce, categorical, gaussian, gemm, gumbel, linear, loader, random, row_lanes, row_launch, sgd,
                          softmax, tiled)
from minivae._gpu import ELEMENTWISE_BLOCK, MAX_GRID, address, elementwise_launch, joined


class Recorder:
    """Stands in for a CuPy RawModule: get_function(name) gives a kernel that records its launches."""

    def __init__(self):
        self.launches = []

    def __call__(self, source):
        self.source = source
        return self

    def get_function(self, name):
        assert name in loader.SOURCES[self.source], f"{name} is not instantiated in {self.source}"

        def kernel(grid, block, args):
            self.launches.append((self.source, name, grid, block, args))
        return kernel


@pytest.fixture
def launches():
    recorder = Recorder()
    with loader.use_module_factory(recorder):
        yield recorder.launches


@pytest.mark.parametrize("k,layout,n,lanes", [(1, "warp", 1, 4), (2, "warp", 1, 4), (4, "warp", 1, 4), (5, "warp", 1, 8),
                                              (10, "warp", 1, 16), (16, "warp", 1, 16), (17, "warp", 1, 32),
                                              (31, "warp", 1, 32), (32, "warp", 1, 32), (33, "warp", 2, 32),
                                              (64, "warp", 2, 32), (65, "warp", 4, 32), (256, "warp", 8, 32),
                                              (257, "block", None, None), (1024, "block", None, None),
                                              (1025, "block", None, None), (100_000, "block", None, None)])
def test_row_layout_by_length(k, layout, n, lanes):
    got_layout, got_n, got_lanes, grid, block = row_launch(10, k)
    assert (got_layout, got_n, got_lanes) == (layout, n, lanes)
    if layout == "warp":
        assert lanes * n >= k and (n == 1 or 16 * n < k)     # the smallest N whose lanes hold the row
        assert n == 1 or lanes == 32                         # several values a lane: a whole warp
        assert lanes in (4, 8, 16, 32) and (lanes == 4 or n > 1 or lanes // 2 < k)  # else the fewest lanes ≥ 4
        rows_a_block = 4 * 32 // lanes                       # 4 warps of 32/L rows each
        assert block == (128,) and grid == (-(-10 // rows_a_block),)
    else:
        assert grid == (10,) and block[0] % 32 == 0 and block[0] <= 1024
        assert block[0] * 8 >= min(k, 8 * 1024)              # ≤ 8 values a thread while the row fits


def test_elementwise_grid():
    assert elementwise_launch(1) == ((1,), (ELEMENTWISE_BLOCK,))
    assert elementwise_launch(ELEMENTWISE_BLOCK + 1) == ((2,), (ELEMENTWISE_BLOCK,))
    assert elementwise_launch(1 << 40) == ((MAX_GRID,), (ELEMENTWISE_BLOCK,))


@pytest.mark.parametrize("dtype,ctype", [(np.float32, "float"), (np.float64, "double")])
def test_softmax_packs_arguments_as_the_kernel_declares_them(launches, dtype, ctype):
    x = np.arange(2 * 3 * 40, dtype=dtype).reshape(2, 3, 40)
    y = softmax.softmax_fwd(x, 0.5, log=True)
    ((source, name, grid, block, args),) = launches
    assert (source, name) == ("softmax.cu", f"softmax_warp_fwd<{ctype}, 2, 32>")
    xr, out, rows, k, inv_tau, log = args
    assert xr.shape == (6, 40) and np.shares_memory(xr, x) and out.shape == (6, 40) and out.dtype == dtype
    assert type(rows) is np.int32 and rows == 6 and type(k) is np.int32 and k == 40
    assert type(inv_tau) is np.dtype(dtype).type and inv_tau == 2 and type(log) is np.int32 and log == 1
    assert grid == (2,) and y.shape == x.shape and np.shares_memory(y, out)


def test_strided_inputs_are_made_contiguous(launches):
    x = np.ones((40, 6), np.float32).T                      # a transposed view: strides the kernel cannot see
    g = np.ones((6, 40), np.float64)                         # another dtype: cast to the output's
    softmax.softmax_bwd(np.ascontiguousarray(x), g, 1.0)
    softmax.softmax_fwd(x, 1.0)
    (_, _, _, _, bwd_args), (_, _, _, _, fwd_args) = launches
    assert bwd_args[1].dtype == np.float32 and bwd_args[1].flags.c_contiguous
    assert fwd_args[0].flags.c_contiguous and not np.shares_memory(fwd_args[0], x)


@pytest.mark.parametrize("call", [lambda x: softmax.softmax_fwd(x, 1.0), lambda x: bce.bce_fwd(x, x),
                                  lambda x: gaussian.kl_standard_normal_fwd(x, x), lambda x: categorical.categorical_kl_fwd(x, x),
                                  lambda x: gumbel.gumbel_softmax_fwd(x, 0, 0, 1.0, False)])
@pytest.mark.parametrize("dtype", [np.float16, np.int32])
def test_other_dtypes_are_refused_by_name(launches, call, dtype):
    with pytest.raises(TypeError, match=f"float32 or float64, not {np.dtype(dtype)}"):
        call(np.ones((2, 3), dtype))
    assert launches == []


def test_empty_arrays_launch_nothing(launches):
    assert softmax.softmax_fwd(np.ones((0, 5), np.float32), 1.0).shape == (0, 5)
    assert bce.bce_fwd(np.ones(0, np.float32), np.ones(0, np.float32))[0].shape == (0,)
    assert launches == []


def test_gumbel_soft_writes_one_array_and_hard_two(launches):
    x = np.zeros((5, 2002), np.float64)                     # k not a multiple of 4: the block kernel
    y, out = gumbel.gumbel_softmax_fwd(x, 2 ** 40 + 1, 7, 0.25, hard=False)
    assert np.shares_memory(out, y)
    gumbel.gumbel_softmax_fwd(x, 2 ** 40 + 1, 7, 0.25, hard=True)
    (_, soft, grid, block, args), (_, hard_name, _, _, hard_args) = launches
    assert soft == hard_name == "gumbel_softmax_block_fwd<double>" and grid == (5,) and block == (256,)
    assert args[1] is args[2]                               # soft: out is y; the kernel writes y only
    assert hard_args[1] is not hard_args[2]
    seed, counter, shift, flag = hard_args[-4:]
    assert type(seed) is np.uint64 and seed == 2 ** 40 + 1 and type(counter) is np.uint64 and counter == 7
    assert flag == 1 and hard_args[5] == 4.0
    assert shift.dtype == np.uint64 and shift.shape == (1,) and shift[0] == 0  # eagerly, the draw is not moved


@pytest.mark.parametrize("k,n,lanes", [(10, 1, 16), (33, 2, 32), (256, 8, 32)])
def test_the_gumbel_softmax_kl_pair_takes_warp_rows(launches, k, n, lanes):
    """The pair's kernels for rows of k ≤ 256 by the warp layout of its length, the prior as its P rows, τ as 1/τ in
    the dtype, the Philox seed, counter and shift as the Gumbel kernel takes them; a missing upstream gradient as
    zeros; longer or empty rows launch nothing and give None (the op then runs the two ops' kernels)."""
    x, prior = np.zeros((5, 3, k), np.float64), np.ones((3, k), np.float64)
    y, out, kl = gumbel.gumbel_softmax_kl_fwd(x, prior, 2 ** 40 + 1, 7, 0.25, hard=False)
    assert np.shares_memory(out, y) and y.shape == x.shape and kl.shape == (5, 3)
    gumbel.gumbel_softmax_kl_fwd(x, prior, 2 ** 40 + 1, 7, 0.25, hard=True)
    gl = gumbel.gumbel_softmax_kl_bwd(y, None, x, prior, kl, np.ones((5, 3)), 0.25)
    (_, soft, grid, block, args), (_, hard, _, _, hard_args), (_, bwd, bgrid, bblock, bargs) = launches
    assert soft == hard == f"gumbel_softmax_kl_warp_fwd<double, {n}, {lanes}>" and bwd == soft.replace("fwd", "bwd")
    assert grid == bgrid == (-(-15 // (4 * 32 // lanes)),) and block == bblock == (128,)
    assert args[2] is args[3] and hard_args[2] is not hard_args[3]   # soft: out is y, which the kernel writes alone
    assert [int(a) for a in args[5:8]] == [15, k, 3] and all(type(a) is np.int32 for a in args[5:8])
    assert type(args[8]) is np.float64 and args[8] == 4.0
    seed, counter, shift, flag = hard_args[-4:]
    assert type(seed) is np.uint64 and seed == 2 ** 40 + 1 and type(counter) is np.uint64 and counter == 7
    assert flag == 1 and shift.dtype == np.uint64 and shift.shape == (1,) and shift[0] == 0
    assert np.shares_memory(args[1], prior) and args[1].shape == (3, k)  # the prior's rows, read in place
    assert (bargs[1] == 0).all() and bargs[1].shape == (15, k) and (bargs[5] == 1).all()  # ȳ: none came
    assert [int(a) for a in bargs[7:10]] == [15, k, 3] and bargs[10] == 4.0 and gl.shape == x.shape
    launches.clear()
    assert gumbel.gumbel_softmax_kl_fwd(np.zeros((2, 257)), np.zeros((1, 257)), 0, 0, 1.0, False) is None
    assert gumbel.gumbel_softmax_kl_fwd(np.zeros((2, 0)), np.zeros((1, 0)), 0, 0, 1.0, False) is None
    assert launches == []


def on_16_bytes(rows, k, dtype, off=0):
    """A (rows, k) array whose first element lies ``off`` elements past a 16-byte boundary."""
    raw = np.zeros(rows * k + 16, dtype)
    start = (-address(raw) % 16) // raw.itemsize + off
    return raw[start:start + rows * k].reshape(rows, k)


@pytest.mark.parametrize("dtype,ctype,v", [(np.float32, "float", 16), (np.float64, "double", 8)])
@pytest.mark.parametrize("k,off,by_quads", [(260, 0, True), (1024, 0, True), (1100, 0, True), (1026, 0, False),
                                            (256, 0, False), (1024, 1, False), ("most", 0, True), ("past", 0, False)])
def test_gumbel_block_rows_go_by_quads_when_the_quads_kernel_can_hold_them(launches, dtype, ctype, v, k, off, by_quads):
    """Block rows (k > 256) of k a multiple of 4 whose arrays start on 16-byte boundaries, up to V·1024 (V values
    a thread: 16 floats, 8 doubles), go by quads, a row a block of the fewest warps that hold it; any other row
    takes the block kernel (256: a warp row; 1026 or a misaligned start: no quads; V·1024 + 4: too long)."""
    k = {"most": 1024 * v, "past": 1024 * v + 4}.get(k, k)
    x = on_16_bytes(3, k, dtype, off)
    gumbel.gumbel_softmax_fwd(x, 1, 2, 1.0, True)
    ((_, name, grid, block, args),) = launches
    assert grid == ((3,) if k > 256 else (1,))
    if by_quads:
        assert name == f"gumbel_softmax_quads_fwd<{ctype}, {v}>" and block == (32 * -(-k // (32 * v)),)
        assert block[0] * v >= k > (block[0] - 32) * v and np.shares_memory(args[0], x)
    else:
        assert name == (f"gumbel_softmax_block_fwd<{ctype}>" if k > 256 else f"gumbel_softmax_warp_fwd<{ctype}, 8, 32>")


def test_optimizers_update_every_parameter_in_one_launch(launches):
    flat = np.zeros(10, np.float32)
    m, v = np.zeros_like(flat), np.zeros_like(flat)
    starts = np.array([0, 4, 6, 10], np.int64)
    grads = [np.ones((2, 2), np.float32), None, np.ones(4, np.float64)[::-1]]   # a missing and a strided one
    adam.adam_step_all(flat, m, v, grads, starts, 1e-3, 0.9, 0.999, 1e-8)
    sgd.sgd_step_all(flat, m, grads, starts, 0.1, 0.0)
    max_v = np.zeros_like(flat)
    adam.adam_step_all(flat, m, v, grads, starts, 1e-3, 0.9, 0.999, 1e-8, 0.25, 0.5, True, max_v)
    sgd.sgd_step_all(flat, m, grads, starts, 0.1, 0.9, 0.25, 0.5, True, True, True)
    (_, name, grid, _, args), (_, sgd_name, _, _, sgd_args), (_, _, _, _, adam_on), (_, _, _, _, sgd_on) = launches
    assert name == "adam_step<float>" and sgd_name == "sgd_step<float>" and grid == (1,)
    assert args[3] is v and adam_on[3] is max_v   # v_max: v itself (never read) without amsgrad
    table, count, n = args[4], args[6], args[7]
    assert table.dtype == np.uint64 and table[0] == address(grads[0]) and table[1] == 0
    assert table[2] != 0 and table[2] != address(grads[2])   # a contiguous float32 copy was made for the kernel
    assert type(count) is np.int32 and count == 3 and type(n) is np.int64 and n == 10
    assert all(type(a) is np.float32 for a in args[8:16]) and args[9] == np.float32(0.9) and args[10] == np.float32(1 - 0.9)
    assert (args[14], args[15]) == (0, 1) and (adam_on[14], adam_on[15]) == (np.float32(0.25), np.float32(0.5))
    assert all(type(a) is np.int32 for a in args[16:18]) and (args[16], args[17], adam_on[16], adam_on[17]) == (0, 0, 1, 1)
    assert args[-1].dtype == np.float64 and np.isnan(args[-1]).all()  # eagerly: no step scalars from memory
    # sgd_step<T>(p, v, grads, starts, count, n, lr, momentum, 1 − dampening, weight_decay, nesterov, maximize, first)
    assert all(type(a) is np.float32 for a in sgd_args[6:10]) and all(type(a) is np.int32 for a in sgd_args[10:])
    assert sgd_args[6:] == (np.float32(0.1), 0, 1, 0, 0, 0, 0)
    assert sgd_on[6:] == (np.float32(0.1), np.float32(0.9), np.float32(0.75), np.float32(0.5), 1, 1, 1)


def test_random_fills_draw_on_the_device_module(launches, monkeypatch):
    import minivae._gpu.random as gpu_random
    monkeypatch.setattr(gpu_random, "cupy_module", lambda: np)
    out = random.normal(3, 11, (3, 5), np.float64)
    ((source, name, grid, block, args),) = launches
    assert (source, name) == ("random.cu", "philox_normal<double>") and out.shape == (3, 5)
    assert args[0] is out and args[1] == 15 and type(args[2]) is np.uint64 and args[3] == 11


def test_every_name_a_launcher_can_ask_for_is_instantiated():
    """A shape can only pick kernels that the module compiles: the name expressions cover every N and dtype."""
    for k in range(1, 1100, 7):
        layout, n, lanes, _, _ = row_launch(1, k)
        for stem, source, directions in (("softmax", "softmax.cu", ("fwd", "bwd")), ("gumbel_softmax", "gumbel_softmax.cu", ("fwd",))):
            for d in directions:
                for t in loader.TYPES:
                    name = f"{stem}_{layout}_{d}<{t}>" if n is None else f"{stem}_{layout}_{d}<{t}, {n}, {lanes}>"
                    assert name in loader.SOURCES[source]
        for d in ("fwd", "bwd"):
            assert f"categorical_kl_{d}<float, {row_lanes(k)}>" in loader.SOURCES["categorical_kl.cu"]
            for t in loader.TYPES:  # the Gumbel-Softmax and KL pair: warp rows only
                assert layout == "block" or f"gumbel_softmax_kl_warp_{d}<{t}, {n}, {lanes}>" in loader.SOURCES["gumbel_softmax.cu"]
        for t in loader.TYPES:
            quads = gumbel.quads_launch(t, k, ())
            assert quads is None or quads[0] in loader.SOURCES["gumbel_softmax.cu"]


def test_every_array_a_kernel_receives_is_contiguous(launches):
    """A RawKernel reads raw memory: a strided view (a slice of the encoder's output, a transpose,
    a broadcast upstream gradient) must reach it as a contiguous copy, backward passes included."""
    base = np.arange(48, dtype=np.float32).reshape(6, 8) / 48
    x = base[:, :4]                                         # strided, as μ = h[..., :z]
    g = np.broadcast_to(np.float32(0.5), x.shape)           # zero strides, as sum's VJP
    softmax.softmax_bwd(x, g, 1.0)
    softmax.softmax_fwd(x, 1.0)
    gumbel.gumbel_softmax_fwd(x, 0, 0, 1.0, True)
    gaussian.reparameterize_fwd(x, x, x)
    gaussian.reparameterize_bwd(g, x)
    gaussian.kl_standard_normal_fwd(x, x)
    gaussian.kl_standard_normal_bwd(g, x, x)
    categorical.categorical_kl_fwd(x, x)
    categorical.categorical_kl_bwd(np.broadcast_to(np.float32(1), (6,)), x, x, np.ones(6, np.float32))
    bce.bce_fwd(x, x)
    gumbel.gumbel_softmax_kl_fwd(x, x[:1], 0, 0, 1.0, True)
    gumbel.gumbel_softmax_kl_bwd(x, g, x, x[:1], np.ones(6, np.float32), np.broadcast_to(np.float32(1), (6,)), 1.0)
    assert len(launches) == 12
    for _, name, _, _, args in launches:
        for a in args:
            assert not isinstance(a, np.ndarray) or (a.flags.c_contiguous and a.strides[-1] == a.itemsize), name


def test_the_gaussian_pair_reads_column_slices_in_place(launches):
    """μ and log σ², the halves of one encoder output, reach the kernels as views of that output's memory with
    their row strides (no copy, which would be a launch each), and the backward writes μ̄ and v̄ as the halves of
    one new array, which the split's backward takes whole (``joined``); other layouts as contiguous copies, into
    two arrays that nothing joins."""
    h = np.arange(4 * 6, dtype=np.float32).reshape(4, 6)
    mu, log_var, eps = h[:, :3], h[:, 3:], np.ones((4, 3), np.float32)
    gaussian.reparameterize_kl_fwd(mu, log_var, eps)
    gmu, glv = gaussian.reparameterize_kl_bwd(eps, eps, mu, log_var, eps)
    for (_, name, _, _, args), first in zip(launches, (0, 2)):
        assert address(args[first]) == address(mu) and address(args[first + 1]) == address(log_var), name
        assert args[first].size == args[first + 1].size == 3 * 6 + 3  # from the first element to the last
    (fwd, bwd) = (args for _, _, _, _, args in launches)
    assert [int(a) for a in fwd[-3:]] == [3, 6, 6] and all(type(a) is np.int64 for a in fwd[-3:])
    assert [int(a) for a in bwd[-4:]] == [3, 6, 6, 6] and all(type(a) is np.int64 for a in bwd[-4:])
    whole = joined(gmu, glv)
    assert whole.shape == (4, 6) and whole.flags.c_contiguous and address(whole) == address(gmu)
    assert address(bwd[5]) == address(gmu) and address(bwd[6]) == address(glv) == address(gmu) + 3 * 4
    assert joined(glv, gmu) is None and joined(gmu[:, :2], glv[:, :2]) is None
    launches.clear()
    mu, log_var = h.T[:3], h.T[3:]  # rows with a column stride: copied
    gaussian.reparameterize_kl_fwd(mu, log_var, np.ones((3, 4), np.float32))
    gmu, glv = gaussian.reparameterize_kl_bwd(eps.T, eps.T, mu, log_var, eps.T)
    (fwd, bwd) = (args for _, _, _, _, args in launches)
    assert address(fwd[0]) != address(h) and [int(a) for a in fwd[-3:]] == [4, 4, 4]
    assert [int(a) for a in bwd[-4:]] == [4, 4, 4, 4] and joined(gmu, glv) is None


def test_the_kernel_has_a_tile_count_for_every_tile_of_many_row_groups():
    """bias_grad's last block of a column tile is found by that tile's count (kernels/linear.cu); linear.py gives
    several row groups only to layers of fewer than GROUP_BLOCKS tiles, so the kernel needs that many counts."""
    text = (pathlib.Path(loader.KERNELS_DIR) / "linear.cu").read_text()
    assert linear.GROUP_BLOCKS <= int(re.search(r"#define MINIVAE_BIAS_TILES (\d+)", text).group(1))
    assert linear.BIAS_ROWS == int(re.search(r"#define MINIVAE_BIAS_ROWS (\d+)", text).group(1))


def test_the_tiled_product_s_constants_are_the_kernel_s():
    """minivae/_gpu/tiled.py sizes its grid and split counts by kernels/gemm.cu's #defines."""
    text = (pathlib.Path(loader.KERNELS_DIR) / "gemm.cu").read_text()
    for name, value in (("TILE", tiled.TILE), ("STEP", tiled.STEP), ("THREADS", tiled.THREADS),
                        ("BIAS", tiled.EPILOGUE_BIAS), ("BIAS_RELU", tiled.EPILOGUE_BIAS_RELU)):
        assert value == int(re.search(rf"#define MINIVAE_GEMM_{name} (\d+)", text).group(1)), name


@pytest.mark.parametrize("m,n,k", [(128, 512, 784), (128, 784, 512), (784, 512, 128), (4096, 512, 784), (1, 1, 1),
                                   (3, 70, 1000), (128, 20, 256), (20, 256, 128), (5, 7, 0), (200_000, 64, 64),
                                   (1024, 512, 4096)])
@pytest.mark.parametrize("itemsize", [4, 8])
def test_the_inner_dimension_splits_into_whole_steps_that_cover_it(m, n, k, itemsize):
    """Slices of a multiple of STEP, none empty and none past k, at least MIN_SLICE long, together k; about
    SPLIT_BLOCKS blocks or fewer; no split of a product whose tiles fill the GPU or outnumber the kernel's counts,
    and the partial sums within PARTS_BYTES, column sums included (1024×512 float64: two slices of m·n fit, not with
    their n column sums)."""
    slices, kslice = tiled.split(m, n, k, itemsize)
    tiles = -(-m // tiled.TILE) * -(-n // tiled.TILE)
    if slices == 1:
        assert kslice >= k
        return
    assert kslice % tiled.STEP == 0 and kslice >= tiled.MIN_SLICE
    assert (slices - 1) * kslice < k <= slices * kslice
    assert tiles <= tiled.MAX_SPLIT_TILES and tiles * slices < 2 * tiled.SPLIT_BLOCKS
    assert slices * (m + 1) * n * itemsize <= tiled.PARTS_BYTES
    assert tiled.split(128, 512, 784, 4)[0] > 1  # the first layer of a VAE at batch 128 splits


def test_a_tiled_product_packs_its_arguments_and_refuses_mismatches(launches):
    """Layouts as the kernel reads them: a C-contiguous operand by rows, a transposed view through its transpose
    (the same memory), anything else copied; the kernel named by dtype and layouts; the epilogue's code; the
    stream's split counts; mismatched shapes and dtypes refused by name."""
    a = np.ones((5, 3), np.float32)
    w = np.ones((7, 3), np.float32).T               # F-contiguous, as a VJP's Wᵀ
    b = np.ones(7, np.float32)
    out = tiled.product(a, w, b, True)
    ((source, name, grid, block, args),) = launches
    assert (source, name, grid, block) == ("gemm.cu", "gemm_tiles<float, true, false>", (1, 1, 1), (256,))
    assert address(args[0]) == address(a) and address(args[1]) == address(w) and args[1].shape == (7, 3)
    assert args[2] is out and out.shape == (5, 7) and args[3] is b
    assert args[5].dtype == np.uint32 and args[5].shape == (tiled.MAX_SPLIT_TILES,) and not args[5].any()
    assert [int(v) for v in args[8:]] == [5, 7, 3, 3, 3, 3, tiled.EPILOGUE_BIAS_RELU, 0, 0]  # no gate, no sums
    assert all(type(v) is np.int32 for v in args[8:11] + args[13:]) and type(args[11]) is type(args[12]) is np.int64
    launches.clear()
    tiled.product(np.ones((6, 8))[:, ::2], np.ones((4, 2)))  # strided: copied; float64; no bias
    ((_, name, _, _, args),) = launches
    assert name == "gemm_tiles<double, true, true>" and args[0].flags.c_contiguous and args[3] is args[2]
    assert int(args[14]) == tiled.EPILOGUE_NONE
    with pytest.raises(ValueError, match="shapes"):
        tiled.product(a, np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="float32 @ float64"):
        tiled.product(a, np.ones((3, 2)))
    with pytest.raises(ValueError, match="bias"):
        tiled.product(a, np.ones((3, 2), np.float32), np.ones(3, np.float32))
    with pytest.raises(TypeError, match="int64"):
        tiled.product(np.ones((2, 2), np.int64), np.ones((2, 2), np.int64))


def test_a_tiled_launch_takes_the_split_of_its_own_dtype(launches):
    """The launch shapes are kept per shape and flags, the split made once for each: a float64 product after a
    float32 one of the same shape (512×4096 @ 4096×512: 4 slices of float32 partial sums fit PARTS_BYTES, only 3
    of float64) launches float64's split, not the one kept for float32."""
    for dtype in (np.float32, np.float64, np.float32):
        a, b = np.zeros((512, 4096), dtype), np.zeros((4096, 512), dtype)
        tiled.product(a, b)
        (*_, grid, _, args), = launches
        launches.clear()
        assert (grid[2], int(args[13])) == tiled.split(512, 512, 4096, a.itemsize)
    assert tiled.split(512, 512, 4096, 4) != tiled.split(512, 512, 4096, 8)


def test_a_gated_tiled_product_reads_the_operand_as_its_gate_and_packs_its_sums(launches):
    """gate_a / gate_b: the gated operand and its gate passed C-contiguous (a transposed operand copied, so that both
    are read at one index), the kernel told which; b_sums passed with its flag; the whole grid's first row tile kept
    with no rows (m = 0) when sums are wanted, and no launch without them; mismatches refused by name."""
    x = np.ones((4, 6), np.float32)
    g, y = np.ones((4, 3), np.float32), np.ones((4, 3), np.float32)
    sums = np.empty(3, np.float32)
    gw = tiled.product(x.T, g, gate_b=y, b_sums=sums)  # W̄ = xᵀ·(ḡ·[y > 0]) and b̄
    ((_, name, grid, _, args),) = launches
    assert name == "gemm_tiles<float, false, true>" and grid == (1, 1, 1) and gw.shape == (6, 3)
    assert address(args[1]) == address(g) and args[6] is y and args[7] is sums
    assert [int(v) for v in (args[8], args[9], args[10], args[15], args[16])] == [6, 3, 4, tiled.GATE_B, 1]
    launches.clear()
    w_t = np.ones((5, 3), np.float32).T                     # Wᵀ, F-contiguous: not the gated operand, kept
    g_f = np.asfortranarray(g)                              # ḡ, F-contiguous and gated: copied, as its gate must be
    tiled.product(g_f, w_t, gate_a=np.asfortranarray(y))   # x̄ = (ḡ·[y > 0])·Wᵀ
    ((_, name, _, _, args),) = launches
    assert name == "gemm_tiles<float, true, false>" and address(args[1]) == address(w_t)
    assert args[0].flags.c_contiguous and args[6].flags.c_contiguous and args[7] is args[2]
    assert [int(v) for v in (args[15], args[16])] == [tiled.GATE_A, 0]
    launches.clear()
    tiled.product(np.ones((0, 4), np.float32), g, b_sums=sums)  # no rows: the column sums are still made
    ((_, _, grid, _, _),) = launches
    assert grid == (1, 1, 1)
    launches.clear()
    assert tiled.product(np.ones((0, 4), np.float32), g).shape == (0, 3) and not launches
    with pytest.raises(ValueError, match="not both"):
        tiled.product(g, w_t, gate_a=y, gate_b=w_t)
    with pytest.raises(ValueError, match=r"gate of the operand's shape \(4, 3\)"):
        tiled.product(g, w_t, gate_a=y[:, :2])
    with pytest.raises(ValueError, match="column sums"):
        tiled.product(x.T, g, b_sums=np.empty(4, np.float32))
    with pytest.raises(ValueError, match="column sums"):
        tiled.product(x.T, g, b_sums=np.empty(3))


def test_each_stream_has_split_counts_of_its_own_made_before_a_capture(monkeypatch):
    """The counts that find a tile's last block are per device and stream, zero when made: a CUDA graph's second
    stream runs its products beside the main stream's, which must not share them. ``prepare`` makes a capture's
    before it begins (each on its stream, whose zeros would otherwise be a node of the graph), ``detach`` hands them
    to the graph and forgets them (each capture has new streams)."""
    import types
    current = []

    class Stream:  # as CuPy's: `with stream:` makes it the current one
        def __init__(self, ptr):
            self.ptr = ptr

        def __enter__(self):
            current.append(self)

        def __exit__(self, *exc):
            current.pop()
    zeros_on = []
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(get_device_id=lambda: 0, get_current_stream=lambda: current[-1]),
                                 zeros=lambda n, dtype: (zeros_on.append(current[-1].ptr), np.zeros(n, dtype))[1])
    monkeypatch.setattr(tiled, "_buffers", {})
    main, side = Stream(2), Stream(3)
    current.append(Stream(1))
    tiled.prepare(fake, [main, side])
    assert zeros_on == [2, 3] and set(tiled._buffers) == {(0, 2), (0, 3)}
    assert tiled._buffers[0, 2]["counts"] is not tiled._buffers[0, 3]["counts"]
    default = tiled._stream_buffers(fake)  # the current stream's (ptr 1), made now
    assert tiled._stream_buffers(fake) is default and zeros_on == [2, 3, 1] and not default["counts"].any()
    held = tiled.detach(fake, [main, side])
    assert [h["counts"].shape for h in held] == [(tiled.MAX_SPLIT_TILES,)] * 2 and set(tiled._buffers) == {(0, 1)}


def test_with_the_tiled_products_on_the_gemm_module_sends_full_precision_products_to_them(launches, monkeypatch):
    """MINIVAE_GEMM=tiled: gemm.matmul (a matrix, or a stack of rows as one matrix), gemm.linear (with its bias and
    ReLU) and a graph's second stream launch kernels/gemm.cu; float32 products in TF32
    precision stay cuBLAS's (for the tensor cores); without the setting nothing goes to it."""
    from minivae._backend import set_float32_matmul_precision
    x, w, bias = np.ones((2, 3, 4), np.float32), np.ones((4, 5), np.float32), np.ones(5, np.float32)
    monkeypatch.setattr(gemm, "use_tiled", True)
    assert gemm.matmul(x, w).shape == (2, 3, 5)
    assert gemm.linear(x[0], w, bias, True).shape == (3, 5)
    out = np.empty((3, 5), np.float32)
    gemm.side_gemm(x[0], w, out, handle=None)
    assert [(name, args[0].shape, int(args[14])) for _, name, _, _, args in launches] == [
        ("gemm_tiles<float, true, true>", (6, 4), tiled.EPILOGUE_NONE),
        ("gemm_tiles<float, true, true>", (3, 4), tiled.EPILOGUE_BIAS_RELU),
        ("gemm_tiles<float, true, true>", (3, 4), tiled.EPILOGUE_NONE)]
    assert launches[2][4][2] is out
    launches.clear()
    set_float32_matmul_precision("high")
    try:
        assert not gemm._tiled_takes(x, w) and gemm._tiled_takes(x.astype(np.float64), w.astype(np.float64))
    finally:
        set_float32_matmul_precision("highest")
    assert tiled.fits(2 ** 31 - 65, 65535 * 64, 5) and not tiled.fits(2 ** 31 - 64, 5, 5)
    assert not tiled.fits(5, 65535 * 64 + 1, 5) and not tiled.fits(5, 5, 2 ** 31)  # (left to cuBLAS)
    monkeypatch.setattr(gemm, "use_tiled", False)
    assert gemm.linear(x[0], w, bias, True) is None  # (cuBLASLt is off too: the caller's product and bias pass)


def test_with_the_tiled_products_a_dense_layer_s_backward_is_two_gated_launches(launches, monkeypatch):
    """gemm.linear_grads (ops.linear's backward, MINIVAE_GEMM=tiled): W̄'s launch first, reading ḡ through the ReLU's
    gate and making b̄, then x̄'s through the same gate; without a ReLU no gate; only what ``needs`` asks for; on a
    capture's side stream, W̄'s and b̄'s launch goes there. None (the caller's cuBLAS path) without the setting, when
    W̄ is not wanted, or for a batch of sequences; a side product with a gate refuses cuBLAS."""
    x, w = np.ones((4, 6), np.float32), np.ones((6, 3), np.float32)
    g, y = np.ones((4, 3), np.float32), np.ones((4, 3), np.float32)
    assert gemm.linear_grads(x, w, g, y, (True, True, True)) is None
    monkeypatch.setattr(gemm, "use_tiled", True)
    gx, gw, gb = gemm.linear_grads(x, w, g, y, (True, True, True))
    assert (gx.shape, gw.shape, gb.shape) == ((4, 6), (6, 3), (3,))
    (_, first, _, _, a1), (_, second, _, _, a2) = launches
    assert a1[2] is gw and a1[6] is y and a1[7] is gb and [int(a1[15]), int(a1[16])] == [tiled.GATE_B, 1]
    assert a2[2] is gx and a2[6] is y and [int(a2[15]), int(a2[16])] == [tiled.GATE_A, 0]
    launches.clear()
    gx, gw, gb = gemm.linear_grads(x, w, g, None, (False, True, False))  # no ReLU, x and b frozen
    ((_, _, _, _, args),) = launches
    assert gx is None and gb is None and args[2] is gw and [int(args[15]), int(args[16])] == [0, 0]
    launches.clear()
    assert gemm.linear_grads(x, w, g, y, (True, False, True)) is None                 # b̄ alone: bias_grad's
    assert gemm.linear_grads(x[None], w, g[None], y[None], (True, True, True)) is None  # a batch of sequences
    assert not launches

    class Side(gemm.SideStream):
        def _fork(self):
            pass

        def _launch(self, a, b, out, gate_b, b_sums):
            tiled.product(a, b, out=out, gate_b=gate_b, b_sums=b_sums)

        def _join(self):
            pass
    monkeypatch.setattr(gemm, "side", Side())
    gx, gw, gb = gemm.linear_grads(x, w, g, y, (True, True, True))
    assert gemm.side.makes([gw]) and gemm.side.makes([gb]) and not gemm.side.makes([gx])
    assert any(kept[3] is y and kept[4] is gb for kept in gemm.side.kept)
    assert launches[0][4][7] is gb  # queued before x̄'s
    monkeypatch.setattr(gemm, "use_tiled", False)
    with pytest.raises(ValueError, match="kernels/gemm.cu"):
        gemm.side_gemm(x.T, g, np.empty((6, 3), np.float32), None, gate_b=y)


def test_dense_layer_epilogue_launches_in_place_and_refuses_what_it_cannot_index(launches):
    y, b = np.zeros((4, 3), np.float32), np.ones(3, np.float32)
    assert linear.bias_act_fwd(y, b, True) is y                              # in place on the product
    (_, name, grid, block, args), = launches
    assert name == "bias_act_fwd<float>" and args[0] is y and args[2] == 12 and args[3] == 3 and args[4] == 1
    assert type(args[3]) is np.int32 and type(args[4]) is np.int32
    with pytest.raises(ValueError, match="C-contiguous"):
        linear.bias_act_fwd(np.zeros((3, 4), np.float32).T, b, False)     # the kernel indexes b by i % cols
    with pytest.raises(ValueError, match="float32"):
        linear.bias_act_fwd(np.zeros((4, 3), np.float64), b, False)
    out, db = linear.bias_grad(np.ones((2, 2, 35), np.float32), np.ones((2, 2, 35), np.float32))
    _, name, grid, block, args = launches[-1]
    assert name == "bias_grad<float>" and args[2] is out and out.shape == (2, 2, 35)
    assert grid == (2, 1) and block == (32, linear.BIAS_ROWS)  # 32 columns a block, its threads 16 rows apart
    assert db.shape == (35,) and args[5] == 4 and args[6] == 35 and args[7] == 4 and args[8] == 1  # one group: b̄
    assert args[3] is db and args[4] is db                            # … written in place by the one launch
    assert [type(a) for a in args[5:]] == [np.int64, np.int32, np.int64, np.int32]
    g = np.ones((4, 35), np.float32)
    out, db = linear.bias_grad(g, None)                               # no activation: p̄ is ḡ, nothing written
    _, name, grid, block, args = launches[-1]
    assert out is g and args[0] is g and args[8] == 0 and grid == (2, 1)
    rows, before = 4096, len(launches)                                # a large batch: groups of rows, one launch
    out, db = linear.bias_grad(np.ones((rows, 512), np.float32), np.ones((rows, 512), np.float32))
    (_, name, grid, block, args), = launches[before:]
    assert name == "bias_grad<float>" and grid == (16, 32) and args[7] == 128     # 16 × 32 = GROUP_BLOCKS blocks
    assert args[3].shape == (32, 512) and args[4] is db and db.shape == (512,)    # the groups' sums, then b̄
    out, db = linear.bias_grad(np.ones((1100, 3), np.float32), None)  # few columns: groups of ≥ GROUP_ROWS rows
    _, _, grid, _, args = launches[-1]
    assert grid == (1, 17) and args[7] == 65 and 16 * 65 < 1100 <= 17 * 65
    out, db = linear.bias_grad(np.ones((rows, 32 * 600), np.float32), None)  # more tiles than MINIVAE_BIAS_TILES
    _, _, grid, _, args = launches[-1]
    assert grid == (600, 1) and args[3] is db                         # … take one group: no tile count needed
    out = linear.relu_bwd(np.ones((3, 5), np.float32), np.ones((3, 5), np.float32))
    _, name, _, _, args = launches[-1]
    assert name == "relu_bwd<float>" and args[2] is out and args[3] == 15
    before = len(launches)
    out, db = linear.bias_grad(np.ones((0, 5), np.float32), np.ones((0, 5), np.float32))
    assert len(launches) == before and db.shape == (5,) and not db.any()  # no rows: no launch, b̄ = 0


def test_an_eager_gradient_table_is_uploaded_once_for_the_same_addresses(monkeypatch):
    """The optimizers' table of gradient addresses is kept per address list: the same gradients' memory
    reuses the uploaded table, and other memory gets a table of its own addresses."""
    from minivae import _gpu
    monkeypatch.setattr(_gpu, "_tables", {})
    uploads = []
    module = type("Module", (), {"asarray": staticmethod(lambda a: uploads.append(a) or a.copy()),
                                 "ascontiguousarray": staticmethod(np.ascontiguousarray)})
    monkeypatch.setattr(_gpu, "get_array_module", lambda like: module)
    grads = [np.ones(3, np.float32), None, np.ones(2, np.float32)]
    first, _ = _gpu.gradient_table(grads, grads[0])
    again, _ = _gpu.gradient_table(list(grads), grads[0])
    assert again is first and len(uploads) == 1
    other = [np.zeros(3, np.float32), None, grads[2]]
    table, _ = _gpu.gradient_table(other, other[0])
    assert len(uploads) == 2 and list(table) == [address(other[0]), 0, address(grads[2])]
    for k in range(2 * _gpu.TABLES):  # a bounded cache, the least recently used dropped first
        _gpu.gradient_table([np.ones(k + 1, np.float32)], grads[0])
    assert len(_gpu._tables) == _gpu.TABLES


class _FakeRuntime:
    def __init__(self, count):
        self.count, self.device, self.counted = count, 0, 0

    def getDeviceCount(self):
        self.counted += 1
        return self.count

    def getDevice(self):
        return self.device


def _fake_cupy(monkeypatch, count=1):
    """A module standing in for CuPy in sys.modules: its runtime counts devices, its RawModule the
    kernels it is asked for."""
    import sys
    import types
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(runtime=_FakeRuntime(count))
    cupy.modules, cupy.asked = [], []

    class RawModule:
        def __init__(self, code, options, name_expressions):
            self.device = cupy.cuda.runtime.device
            cupy.modules.append(self)

        def get_function(self, name):
            cupy.asked.append(name)
            return (self.device, name, object())  # a new kernel object each time, as CuPy's
    cupy.RawModule = RawModule
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    return cupy


def test_a_kernel_is_looked_up_once_per_device(monkeypatch):
    """CuPy's RawModule.get_function makes a new RawKernel, with a driver lookup, at each call: a launcher
    asks for its kernel at every launch, so the loader keeps each one, per device."""
    monkeypatch.setattr(loader, "_modules", {})
    monkeypatch.setattr(loader, "_kernels", {})
    cupy = _fake_cupy(monkeypatch)
    name = "softmax_warp_fwd<float, 1, 32>"
    first = loader.function("softmax.cu", name)
    assert loader.function("softmax.cu", name) is first and cupy.asked == [name] and len(cupy.modules) == 1
    other = loader.function("softmax.cu", "softmax_warp_bwd<float, 1, 32>")
    assert other is not first and len(cupy.modules) == 1
    cupy.cuda.runtime.device = 1  # another device: its own module and kernel
    on_1 = loader.function("softmax.cu", name)
    assert on_1[0] == 1 and len(cupy.modules) == 2
    cupy.cuda.runtime.device = 0
    assert loader.function("softmax.cu", name) is first


def test_cupy_is_found_once_and_a_missing_gpu_is_asked_again(monkeypatch):
    from minivae import _backend
    monkeypatch.setattr(_backend, "_cupy", None)
    cupy = _fake_cupy(monkeypatch, count=0)
    for _ in range(2):  # no GPU: refused each time, nothing kept
        with pytest.raises(RuntimeError, match="needs an NVIDIA GPU"):
            _backend.cupy_module()
    assert cupy.cuda.runtime.counted == 2
    cupy.cuda.runtime.count = 1
    assert _backend.cupy_module() is cupy and _backend.cupy_module() is cupy
    assert cupy.cuda.runtime.counted == 3


def test_a_device_constant_is_filled_once_per_device_stream_dtype_shape_and_value(monkeypatch):
    """_gpu.constant: the same array for the same value, dtype, shape, device and stream (no fill after the first);
    −0.0 is not 0.0 and NaN is NaN; another stream gets its own (its work would not wait for the fill); the oldest is
    dropped past CONSTANTS; during a CUDA-graph capture, a new array every time (the fill runs when the graph does)."""
    from types import SimpleNamespace
    from minivae import _gpu
    monkeypatch.setattr(_gpu, "_constants", {})
    fills, stream, device = [], SimpleNamespace(ptr=1), 0
    module = SimpleNamespace(__name__="cupy", full=lambda shape, value, dtype: fills.append(value) or np.full(shape, value, dtype),
                             cuda=SimpleNamespace(get_current_stream=lambda: stream, get_device_id=lambda: device))
    monkeypatch.setattr(_gpu, "get_array_module", lambda like: module)
    like = SimpleNamespace(dtype=np.dtype(np.float32))
    beta = _gpu.constant(like, 0.5)
    assert _gpu.constant(like, 0.5) is beta and beta.dtype == np.float32 and beta.shape == () and beta == 0.5
    assert len(fills) == 1
    ones = _gpu.constant(like, 1, (1, 1))
    assert ones.shape == (1, 1) and ones is not _gpu.constant(like, 1) and len(fills) == 3
    zero, negative_zero = _gpu.constant(like, 0.0), _gpu.constant(like, -0.0)
    assert np.signbit(negative_zero) and not np.signbit(zero)
    assert np.isnan(_gpu.constant(like, float("nan"))) and len(fills) == 6
    assert _gpu.constant(like, float("nan")) is _gpu.constant(like, float("nan")) and len(fills) == 6
    wide = _gpu.constant(SimpleNamespace(dtype=np.dtype(np.float64)), 0.5)
    assert wide.dtype == np.float64 and wide is not beta
    stream = SimpleNamespace(ptr=2)
    assert _gpu.constant(like, 0.5) is not beta
    stream, device = SimpleNamespace(ptr=1), 1   # the same stream number on another GPU
    assert _gpu.constant(like, 0.5) is not beta
    device = 0
    assert _gpu.constant(like, 0.5) is beta
    monkeypatch.setattr(_gpu, "capture", object())
    assert _gpu.constant(like, 0.5) is not beta and _gpu.constant(like, 0.5) is not _gpu.constant(like, 0.5)
    monkeypatch.setattr(_gpu, "capture", None)
    for k in range(2 * _gpu.CONSTANTS):
        _gpu.constant(like, k + 100)
    assert len(_gpu._constants) == _gpu.CONSTANTS and _gpu.constant(like, 0.5) is not beta  # the oldest went first
    assert _gpu.constant(like, 2 * _gpu.CONSTANTS + 99) == 2 * _gpu.CONSTANTS + 99


def test_contiguous_passes_what_a_kernel_can_read_and_copies_the_rest():
    from minivae._gpu import contiguous
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert contiguous(a) is a and contiguous(a, np.float32) is a     # no call to the array module, no copy
    wide = contiguous(a, np.float64)
    assert wide.dtype == np.float64 and (wide == a).all()
    t = contiguous(a.T)
    assert t.flags.c_contiguous and (t == a.T).all()
    scalar = np.ones((), np.float32)                                  # a 0-d ḡ or β: passed as it is
    assert contiguous(scalar) is scalar and contiguous(scalar, np.float32) is scalar
    assert contiguous(scalar, np.float64).dtype == np.float64


def test_cupy_arrays_are_known_by_their_module_and_an_emulated_type_is_not_kept(monkeypatch):
    from minivae import _backend
    from tests.strict_array import emulating, strict
    monkeypatch.setattr(_backend, "_cupy_types", set())
    cupy_array = type("ndarray", (), {"__module__": "cupy"})()
    assert _backend.device_of(cupy_array) == "cuda" and _backend.device_of(cupy_array) == "cuda"
    assert _backend._cupy_types == {type(cupy_array)}
    with emulating():
        standing_in = strict.zeros(2)
        assert _backend.device_of(standing_in) == "cuda"
    assert _backend.device_of(standing_in) == "cpu"                    # outside the emulation, not a GPU array
    assert _backend.device_of(np.zeros(2)) == "cpu" and _backend.device_of(np.float32(1)) == "cpu"


@pytest.mark.parametrize("gemm_path", ["", "tiled"])
def test_the_host_time_tool_runs_minivae_s_cupy_code_path(gemm_path):
    """tools/eager_host_time.py times eager GPU steps through the real CuPy code path with a stand-in CuPy: it
    must stay on that path (it stops with an error when a step leaves the stand-in device), with the products
    cupy.matmul's or kernels/gemm.cu's (MINIVAE_GEMM=tiled)."""
    import os
    import subprocess
    import sys
    root = __file__.rsplit("/tests/", 1)[0]
    done = subprocess.run([sys.executable, f"{root}/tools/eager_host_time.py", "--steps", "1"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "MINIVAE_GEMM": gemm_path})
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line.split(",")[0] for line in done.stdout.splitlines()] == ["gaussian VAE", "categorical VAE"]


@pytest.mark.parametrize("gemm_path", ["", "tiled"])
def test_the_host_time_tool_counts_an_eager_step_s_calls_to_cupy(gemm_path):
    """--calls: an eager step of either VAE launches its 17 kernels (22 with the tiled products, which take the 17
    cupy.matmul calls' place) and calls no CuPy function but ``empty`` (and ``matmul``): no fill of a constant, no
    copy. (Nor, on a GPU, ``asarray``'s upload of the optimizer's table of gradient addresses, kept per address list:
    CuPy's pool hands a step's gradients the blocks of the step before, which NumPy's allocator, standing in here,
    need not do, so the stand-in's count of it varies from run to run and is not checked.)"""
    import os
    import subprocess
    import sys
    root = __file__.rsplit("/tests/", 1)[0]
    done = subprocess.run([sys.executable, f"{root}/tools/eager_host_time.py", "--calls"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "MINIVAE_GEMM": gemm_path})
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split(",")[0] for line in lines] == ["gaussian VAE", "categorical VAE"]
    # the arrays a step makes: the −ELBO's block sums and loss, its two gradients; the Gaussian pair's z, KL and
    # noise, and its one array of μ̄ and v̄ (the categorical pair's sample and KL, and its l̄); then each of the six
    # layers' b̄ and, with cuBLAS, p̄ of the four ReLU layers (its products are cupy.matmul's own arrays), or with the
    # tiled products their 17 outputs: six forward, six W̄ and five x̄ (the first layer's input needs none)
    latent = {"gaussian": 3 + 1, "categorical": 2 + 1}
    for line, kind in zip(lines, ("gaussian", "categorical")):
        launches, functions = line.split(": ", 1)[1].split(" kernel launches, ")
        counts = {name: float(n) for n, name in (c.split(" ") for c in functions.split("(")[1].rstrip(")").split(", "))}
        counts.pop("asarray", None)
        assert float(launches) == (22 if gemm_path else 17), line
        assert counts == {"empty": 2 + 2 + latent[kind] + 6 + (17 if gemm_path else 4), **({} if gemm_path else {"matmul": 17})}, line


def test_the_host_time_tool_counts_the_instructions_between_two_runs(monkeypatch, capsys):
    """--instructions: each model's step run under callgrind twice, for RUNS[0] and RUNS[1] steps, in the environment
    that makes a count repeat (one BLAS thread, one hash seed); the difference of the two counts, divided by the steps
    between them, is a step's (the setup and warm-up they share cancel). A failed run stops the tool with its error."""
    import importlib.util
    import pathlib
    import shutil
    import subprocess
    import types
    path = pathlib.Path(__file__).parents[1] / "tools" / "eager_host_time.py"
    spec = importlib.util.spec_from_file_location("eager_host_time", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    runs = []

    def run(command, env, **kwargs):
        runs.append((command, env))
        per_step = 300 if command[-2] == "gaussian" else 500
        return types.SimpleNamespace(returncode=0, stderr=f"==1== Collected : {1_000_000 + int(command[-1]) * per_step}\n")
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/valgrind")
    monkeypatch.setattr(subprocess, "run", run)
    assert tool.main(["--instructions"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"gaussian VAE, eager step on the stand-in GPU: 300 instructions (callgrind: {tool.RUNS[1]} steps less {tool.RUNS[0]})",
        f"categorical VAE, eager step on the stand-in GPU: 500 instructions (callgrind: {tool.RUNS[1]} steps less "
        f"{tool.RUNS[0]})"]
    assert [command[:3] + command[4:] for command, _ in runs] == [
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(path), "--run", kind, str(steps)]
        for kind in ("gaussian", "categorical") for steps in tool.RUNS]
    assert all(env["OPENBLAS_NUM_THREADS"] == "1" and env["PYTHONHASHSEED"] == "0" for _, env in runs)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: types.SimpleNamespace(returncode=1, stderr="valgrind: no"))
    with pytest.raises(SystemExit, match="callgrind failed.*valgrind: no"):
        tool.main(["--instructions"])


@pytest.mark.parametrize("dtype,t", [(np.float32, "float"), (np.float64, "double")])
def test_the_binary_concrete_pair_launches_a_thread_a_philox_block(launches, dtype, t):
    """binary_concrete_kl_fwd: one launch of a thread per Philox block (⌈n/4⌉ threads), the scalars in the C
    signature's types (τ and ε of the dtype, n and m 64-bit, the seed and counter uint64, hard an int), every array
    contiguous (a strided logits view copied); the backward a grid-stride launch over n with its flags, an absent
    gradient's pointer standing in by s; nothing for no elements; a prior that does not tile the logits refused."""
    from minivae._gpu import binary_concrete
    base = np.linspace(-3, 3, 5 * 8).astype(dtype).reshape(5, 8)
    x, prior = base[:, :6], np.zeros(6, dtype)  # (strided)
    s, y, kl = binary_concrete.binary_concrete_kl_fwd(x, prior, 2 ** 40 + 1, 7, 0.25, hard=True)
    assert s.shape == y.shape == kl.shape == (5, 6) and s.dtype == dtype
    ((source, name, grid, block, args),) = launches
    assert (source, name) == ("binary_concrete.cu", f"binary_concrete_kl_fwd<{t}>")
    assert (grid, block) == elementwise_launch(8)  # 30 elements: 8 Philox blocks
    assert args[2] is s and args[3] is y and args[4] is kl
    assert [type(a) for a in args[5:]] == [np.int64, np.int64, dtype, dtype, np.uint64, np.uint64, np.ndarray, np.int32]
    assert args[5:8] == (30, 6, dtype(0.25)) and args[8] == np.finfo(dtype).eps and args[9:11] == (2 ** 40 + 1, 7)
    assert args[12] == 1
    for a in args:
        assert not isinstance(a, np.ndarray) or a.flags.c_contiguous
    gy = np.broadcast_to(dtype(0.5), (5, 6))  # (a broadcast upstream gradient: copied)
    gl = binary_concrete.binary_concrete_kl_bwd(s, gy, x, prior, None, 0.25)
    source, name, grid, block, args = launches[1]
    assert name == f"binary_concrete_kl_bwd<{t}>" and (grid, block) == elementwise_launch(30) and args[5] is gl
    assert args[4] is args[0] and args[6:] == (30, 6, dtype(0.25), dtype(np.finfo(dtype).eps), 1, 0)
    assert all(a.flags.c_contiguous for a in args if isinstance(a, np.ndarray))
    binary_concrete.binary_concrete_kl_fwd(np.zeros((0, 6), dtype), prior, 0, 0, 1.0, False)
    assert len(launches) == 2
    with pytest.raises(ValueError, match="4 prior logits do not tile 30 logits"):
        binary_concrete.binary_concrete_kl_fwd(x, np.zeros(4, dtype), 0, 0, 1.0, False)
