"""minivae's own matrix product (kernels/gemm.cu), experimental and off unless the environment sets
MINIVAE_GEMM=tiled: then full-precision products on the GPU (float64, and float32 outside TF32) are one
launch of ``gemm_tiles`` instead of cuBLAS's GEMM, a dense layer act(x @ W + b) is one launch with the
bias and ReLU applied as the product is written, and its backward two, the ReLU's gate applied as ḡ is read and
the bias gradient made by W̄'s launch (minivae/_gpu/gemm.py routes them here).

At a batch of 128 a VAE's products leave cuBLAS too few output tiles to fill a GPU: it splits the inner
dimension and adds the partial sums with a second kernel, and each layer's bias and ReLU are a third pass,
17 of a Gaussian VAE's 49 kernels a CUDA-graph step (PyTorch's profiler on an H100, 2026-11-26), and its
backward's ReLU and bias gradient a fourth (bias_grad, 6 more). Here a product is one launch whatever its split,
and a step 22 launches in all. Not yet timed on a GPU: its split sizes below are a first guess. With
MINIVAE_GEMM_TUNE=1 each product's split is instead the fastest of a few, timed on its first eager call (as
``torch.backends.cudnn.benchmark``, off by default: the choice rests on timings, which may differ from run to run,
and the split sets the order of the sums, so results may then differ in the last bits between runs; never between
a graph's replays and the eager steps of one run, which take the same choice).
"""
import os

import numpy

from minivae._backend import get_array_module
from minivae._gpu import contiguous, floating, loader, timing

TILE = 64           # MINIVAE_GEMM_TILE: a block's tile of C is TILE×TILE
STEP = 16           # MINIVAE_GEMM_STEP: a slice of the inner dimension is a multiple of it
THREADS = 256       # MINIVAE_GEMM_THREADS
SPLIT_BLOCKS = 256  # split the inner dimension until a launch has about this many blocks (2 an SM on an H100)
MIN_SLICE = 64      # but no slice shorter than this (the last block of a tile adds one partial sum a slice)
PARTS_BYTES = 8 << 20  # room for one split launch's partial sums, per stream and dtype (allocated once, kept)
MAX_SPLIT_TILES = 4096  # counts per stream: a product of more tiles is not split
EPILOGUE_NONE, EPILOGUE_BIAS, EPILOGUE_BIAS_RELU = 0, 1, 2  # kernels/gemm.cu's dense_epilogue
GATE_A, GATE_B = 1, 2  # MINIVAE_GEMM_GATE_A, _B: the operand read through a gate
MAX_TUNED_SLICES = 32  # the most slices a tuned split tries
MAX_SHAPES = 1024  # launch shapes kept (_launch_shape); more, as from ever-changing shapes, and they are made again
tune = os.environ.get("MINIVAE_GEMM_TUNE") == "1"
_buffers = {}  # (device, stream) → {"counts": the split launches' counts, dtype: their partial sums}
_shapes = {}  # (m, n, k, lda, ldb, split, epilogue, gate, sums, itemsize) → (grid, scalar arguments)
_tuned = {}  # (device, dtype, m, n, k, layouts, epilogue, gate, sums) → {"split": the fastest, "times": {split: ms}}


def fits(m, n, k):
    """Whether an m×k by k×n product fits the kernel's grid (m's tiles on x, n's on y: at most 65535) and its int
    indices."""
    return max(m, k) < 2 ** 31 - TILE and n <= 65535 * TILE


def split(m, n, k, itemsize):
    """(slices, kslice): the inner dimension k cut into ``slices`` slices of ``kslice`` (a multiple of STEP, the
    last possibly shorter, none empty) so that the launch has about SPLIT_BLOCKS blocks, no slice is shorter
    than MIN_SLICE, the partial sums fit PARTS_BYTES (m·n a slice, and n column sums), and the tiles fit the
    kernel's counts."""
    tiles = max(1, -(-m // TILE)) * -(-n // TILE)
    slices = min(-(-SPLIT_BLOCKS // tiles), max(1, k // MIN_SLICE), _most_slices(m, n, itemsize))
    if tiles > MAX_SPLIT_TILES:
        return 1, max(k, 1)
    return _cut(k, slices)


def splits(m, n, k, itemsize):
    """The splits a tuned product times: ``split``'s first, then 1, 2, 4, … slices (at most MAX_TUNED_SLICES,
    none shorter than STEP, the partial sums within PARTS_BYTES), each once."""
    out = [split(m, n, k, itemsize)]
    if max(1, -(-m // TILE)) * -(-n // TILE) > MAX_SPLIT_TILES:
        return out
    slices = 1
    while slices <= min(MAX_TUNED_SLICES, max(1, k // STEP), _most_slices(m, n, itemsize)):
        if _cut(k, slices) not in out:
            out.append(_cut(k, slices))
        slices *= 2
    return out


def _most_slices(m, n, itemsize):
    """The most slices whose partial sums (m·n a slice, and n column sums) fit PARTS_BYTES."""
    return PARTS_BYTES // max(1, (m + 1) * n * itemsize)


def _cut(k, slices):
    """(slices, kslice): k cut into about ``slices`` slices of a multiple of STEP (the last possibly shorter,
    none empty); one of all of k for ``slices`` ≤ 1."""
    if slices <= 1:
        return 1, max(k, 1)
    per_slice = -(-k // slices)
    kslice = -(-per_slice // STEP) * STEP
    return -(-k // kslice), kslice


def product(a, b, bias=None, relu=False, out=None, gate_a=None, gate_b=None, b_sums=None):
    """a (m×k) @ b (k×n), then + bias (n,) and max(·, 0) if ``relu`` (kernels/linear.cu's epilogue), in one
    launch on the current stream, into a new C-contiguous m×n array or ``out`` (C-contiguous).

    A ReLU layer's backward: ``gate_a`` (``gate_b``), an array of a's (b's) shape and dtype, makes it the product of
    a·[gate_a > 0] (b·[gate_b > 0]), the operand read C-contiguous as the gate is; ``b_sums``, n values
    (C-contiguous, b's dtype), receives the column sums of b as read, Σ_l b_lj: a dense layer's b̄ from the launch
    of its W̄ = xᵀ·(ḡ·[y > 0])."""
    t = floating(a, "matmul")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not match")
    if b.dtype != a.dtype or (bias is not None and (bias.dtype != a.dtype or bias.shape != (b.shape[1],))):
        raise ValueError(f"matmul: {a.dtype} @ {b.dtype}" + ("" if bias is None else f" + bias {bias.shape} {bias.dtype}")
                         + f" (one dtype, a bias of ({b.shape[1]},)) is needed")
    if gate_a is not None and gate_b is not None:
        raise ValueError("matmul: one operand may be gated, not both")
    xp = get_array_module(a)
    (m, k), n = a.shape, b.shape[1]
    gated, gate = (GATE_A, gate_a) if gate_a is not None else (GATE_B, gate_b) if gate_b is not None else (0, None)
    if gate is not None:
        operand = a if gated == GATE_A else b
        if gate.shape != operand.shape or gate.dtype != operand.dtype:
            raise ValueError(f"matmul: a gate of the operand's shape {operand.shape} and dtype {operand.dtype} is "
                             f"needed, got {gate.shape} {gate.dtype}")
        gate, operand = contiguous(gate), contiguous(operand)  # read at one index: both C-contiguous
        a, b = (operand, b) if gated == GATE_A else (a, operand)
    if b_sums is not None and (b_sums.shape != (n,) or b_sums.dtype != a.dtype or not b_sums.flags.c_contiguous):
        raise ValueError(f"matmul: column sums of ({n},) {a.dtype}, C-contiguous, are needed, got {b_sums.shape} "
                         f"{b_sums.dtype}")
    c = xp.empty((m, n), a.dtype) if out is None else out
    if n == 0 or (m == 0 and b_sums is None):
        return c
    (a, a_rows, lda), (b, b_rows, ldb) = _operand(a), _operand(b)
    buffers = _stream_buffers(xp)
    epilogue = EPILOGUE_NONE if bias is None else EPILOGUE_BIAS_RELU if relu else EPILOGUE_BIAS
    kernel = loader.function("gemm.cu", f"gemm_tiles<{t}, {_bool(a_rows)}, {_bool(b_rows)}>")

    def launch(cut=None):
        grid, scalars = _launch_shape(m, n, k, lda, ldb, cut, epilogue, gated, b_sums is not None, a.itemsize)
        kernel(grid, (THREADS,), (a, b, c, c if bias is None else bias, _parts(xp, buffers, a.dtype) if grid[2] > 1 else c,
                                  buffers["counts"], a if gate is None else gate, c if b_sums is None else b_sums,
                                  *scalars))
    if tune:
        launch(_tuned_split(xp, (a.dtype.char, m, n, k, a_rows, b_rows, epilogue, gated, b_sums is not None),
                            splits(m, n, k, a.itemsize), launch))
    else:
        launch()
    return c


def _launch_shape(m, n, k, lda, ldb, cut, epilogue, gated, sums, itemsize):
    """(grid, scalar arguments) of a launch, made once per shape, layout, split (slices, kslice; None: ``split``'s)
    and flags: the nine NumPy typed scalars a launch needs, made anew for each, were a quarter of a product's host
    work and a tenth of an eager step's (``tools/eager_host_time.py --instructions``), and ``split`` an eighth of
    what remained."""
    key = (m, n, k, lda, ldb, cut, epilogue, gated, sums, itemsize)
    shape = _shapes.get(key)
    if shape is None:
        if len(_shapes) >= MAX_SHAPES:
            _shapes.clear()
        slices, kslice = split(m, n, k, itemsize) if cut is None else cut
        # at least one row tile: with m = 0 its blocks still make the column sums
        shape = _shapes[key] = ((max(1, -(-m // TILE)), -(-n // TILE), slices),
                                (numpy.int32(m), numpy.int32(n), numpy.int32(k), numpy.int64(lda), numpy.int64(ldb),
                                 numpy.int32(kslice), numpy.int32(epilogue), numpy.int32(gated), numpy.int32(sums)))
    return shape


def _tuned_split(xp, key, candidates, launch):
    """The fastest of ``candidates`` for the product ``key``, timed once (``timing.choose``: each run writes the same
    C and column sums, which the launch after this rewrites with the choice) and kept per device. ``split``'s
    guess where nothing can be timed: off a GPU (the tests' stand-in arrays), with one candidate, during a
    CUDA-graph capture (not kept: the recorded eager step before it times the graph's products), or when the
    timing fails (kept)."""
    cuda = getattr(xp, "cuda", None)
    if cuda is None:
        return candidates[0]
    key = (cuda.get_device_id(), *key)
    entry = _tuned.get(key)
    if entry is None:
        choice, times = timing.choose(xp, candidates, launch)
        if times is None:
            return choice
        entry = _tuned[key] = {"split": choice, "times": dict(zip(candidates, times))}
    return entry["split"]


def tuned():
    """What MINIVAE_GEMM_TUNE=1 chose so far: one line a product (m×k @ k×n, dtype), ``split``'s guess first."""
    lines = []
    for (_, dtype, m, n, k, *_), entry in sorted(_tuned.items()):
        times = ", ".join(f"{s}×{ks}: {ms * 1e3:.1f}" for (s, ks), ms in entry["times"].items())
        lines.append(f"{m}×{k} @ {k}×{n} {numpy.dtype(dtype)}: {entry['split'][0]} slices of {entry['split'][1]} "
                     f"(µs of {timing.RUNS} launches, slices×length: {times})")
    return lines


def _operand(x):
    """(memory, rows, ld) of a 2-D operand for the kernel: C-contiguous x is read as stored (rows: element (r, c)
    at r·ld + c, ld its row length); F-contiguous x (a transposed view, as a VJP's Wᵀ) through its transpose, which
    is C-contiguous (element (r, c) at c·ld + r); anything else is copied first."""
    if not x.flags.c_contiguous and x.flags.f_contiguous:
        return x.T, False, max(1, x.shape[0])
    if not x.flags.c_contiguous:
        x = get_array_module(x).ascontiguousarray(x)
    return x, True, max(1, x.shape[1])


def _stream_buffers(xp):
    """The current device and stream's split counts (MAX_SPLIT_TILES, zero: each launch leaves them so) and partial
    sums, made on first use: split launches on one stream run in turn and share them; a stream beside it (a CUDA
    graph's second one) has its own. A capture makes them before it begins (``prepare``): their zeros must not be
    a node of the graph."""
    cuda = getattr(xp, "cuda", None)
    key = (cuda.get_device_id(), cuda.get_current_stream().ptr) if cuda is not None else None
    buffers = _buffers.get(key)
    if buffers is None:
        buffers = _buffers[key] = {"counts": xp.zeros(MAX_SPLIT_TILES, numpy.uint32)}
    return buffers


def _parts(xp, buffers, dtype):
    """The partial sums of ``buffers``' stream for ``dtype``. On a GPU from CuPy's default pool even during a
    CUDA-graph capture, as minivae/_gpu/gemm.py's cuBLASLt workspace: the graph keeps their address."""
    dtype = numpy.dtype(dtype)
    if dtype not in buffers:
        size = PARTS_BYTES // dtype.itemsize
        cuda = getattr(xp, "cuda", None)
        buffers[dtype] = (xp.ndarray((size,), dtype, xp.get_default_memory_pool().malloc(PARTS_BYTES))
                          if cuda is not None else xp.empty(size, dtype))
    return buffers[dtype]


def prepare(xp, streams):
    """Make the split buffers of ``streams`` now (before a capture on them begins), each on its stream."""
    for stream in streams:
        with stream:
            _stream_buffers(xp)


def detach(xp, streams):
    """The split buffers of ``streams`` (a captured graph's, whose kernels keep their addresses: the graph holds
    them for as long as it lives), no longer kept here: a capture's streams are new each time."""
    device = xp.cuda.get_device_id()
    return [_buffers.pop((device, stream.ptr), None) for stream in streams]


def _bool(flag):
    return "true" if flag else "false"
