"""CUDA kernels through CuPy, one thin launcher module per hot path, imported on first use through
``minivae._backend.fused`` with the same function names as ``minivae._cpu`` (the Numba kernels).

Each launcher checks dtypes and shapes, makes its inputs C-contiguous (a RawKernel ignores strides),
allocates the outputs, picks the kernel and its grid, and passes every scalar as the NumPy type of
the kernel's C parameter. The kernels themselves are kernels/*.cu, loaded by ``loader``.
"""
import numpy

from minivae._backend import get_array_module
from minivae._gpu import loader

ELEMENTWISE_BLOCK = 256
MAX_GRID = 1 << 16          # elementwise kernels loop over the rest (grid-stride)
ROWS_PER_WARP_BLOCK = 4     # warp-per-row kernels: 4 warps, 4 rows per block of 128 threads
BLOCK_CACHE = 8             # values per thread the block-per-row kernels keep in registers
LARGEST_WARP_ROW = 32 * max(loader.WARP_N)


def floating(a, who):
    """The C type name of ``a``'s dtype; anything but float32/float64 is refused with the op's name."""
    return loader.ctype(a.dtype, who)


def contiguous(a, dtype=None):
    """``a`` as a C-contiguous array of ``dtype`` (a copy only when needed). An array that already is one, a 0-d
    one included (a loss's ḡ, a β: a kernel reads its one value through the pointer), passes without a call to the
    array module: this runs for most arguments of every launch."""
    if a.flags.c_contiguous and (dtype is None or a.dtype == dtype):
        return a
    return get_array_module(a).ascontiguousarray(a, dtype=dtype)


def row_strided(a, dtype=None):
    """(memory, ld): ``a`` for a kernel that reads row r, column c of it at r·ld + c. A 2-D array whose columns
    are adjacent and whose rows sit ld ≥ cols elements apart (a column slice of a contiguous array, as μ and
    log σ², the halves of one encoder output) is read in place: ``memory`` is a 1-D view from its first element
    to its last, with no copy. Anything else is made C-contiguous (a copy only when needed), ld = its row length."""
    if (a.ndim == 2 and a.size and (dtype is None or a.dtype == dtype) and a.strides[1] == a.itemsize
            and a.strides[0] % a.itemsize == 0 and a.strides[0] >= a.shape[1] * a.itemsize):
        ld = a.strides[0] // a.itemsize
        span = (a.shape[0] - 1) * ld + a.shape[1]
        return get_array_module(a).lib.stride_tricks.as_strided(a, shape=(span,), strides=(a.itemsize,)), ld
    return contiguous(a, dtype).reshape(-1), a.shape[-1] if a.ndim else 1


def halves(left, right):
    """(rows, 2·cols) when ``left`` and ``right`` (rows × cols each) are the left and right halves of one C-contiguous
    array, by their addresses and strides; else None."""
    if not (left.ndim == right.ndim == 2 and left.shape == right.shape and left.dtype == right.dtype and left.size):
        return None
    rows, cols = left.shape
    size = left.itemsize
    if left.strides != (2 * cols * size, size) or right.strides != left.strides:
        return None
    return (rows, 2 * cols) if address(right) == address(left) + cols * size else None


def joined(left, right):
    """[left, right] joined along the last axis without a copy when they are the halves of one array (as
    gaussian.reparameterize_kl_bwd makes μ̄ and v̄): that array, as a view; else None."""
    whole = halves(left, right)
    if whole is None:
        return None
    return get_array_module(left).lib.stride_tricks.as_strided(left, shape=whole, strides=(whole[1] * left.itemsize,
                                                                                            left.itemsize))


def rows_of(a, dtype=None):
    """A C-contiguous (rows, k) view of ``a`` over its last axis."""
    return contiguous(a, dtype).reshape(-1, a.shape[-1])


def address(a):
    """The device address of an array's data (CuPy's ``data.ptr``; the tests' stand-ins say theirs)."""
    if hasattr(a, "__minivae_device_ptr__"):
        return a.__minivae_device_ptr__()
    if isinstance(a, numpy.ndarray):  # the host emulation of the kernels runs on NumPy memory
        return a.ctypes.data
    return a.data.ptr


def row_launch(rows, k):
    """(layout, N, L, grid, block) of a row-wise kernel over ``rows`` rows of length ``k``.

    Rows up to 256 long take a warp each (4 to a block of 128 threads), each lane holding
    N = ⌈k/32⌉ values (rounded up to a power of two) in registers: the row is read once and the
    reductions are warp shuffles. Rows of k ≤ 16 take a group of L = 4, 8 or 16 lanes (the least
    L ≥ k, N = 1), 32/L rows a warp: a warp per row of 10 (a categorical VAE's) would leave 22 of
    its lanes idle and need 3.2 times the warps. Longer rows take a block each, wide enough that a thread holds at
    most 8 values (up to 1024 threads, beyond which the kernel re-reads the row). On an H200 a warp
    with 16 or 32 values a lane ran 1.5–2.5× slower than a block on rows of 512–1024 (too many
    registers a thread, too few warps resident), hence the cut at 256. And the narrowest block is
    the fastest: on 65536×1024 float32 (H200, 2026-11-26, softmax_block_fwd alone, CUDA events),
    blocks of 128, 256, 512 and 1024 threads took 0.171, 0.266, 0.471 and 1.267 ms."""
    if k <= LARGEST_WARP_ROW:
        n = next(n for n in loader.WARP_N if 32 * n >= k)
        lanes = row_lanes(k)
        return ("warp", n, lanes) + warp_per_row(rows, lanes)
    threads = min(1024, 32 * -(-k // (32 * BLOCK_CACHE)))
    return "block", None, None, (rows,), (threads,)


def row_lanes(k):
    """L, the lanes that share a row of length k in a warp-per-row kernel: the least of 4, 8, 16 that is
    ≥ k, else the warp's 32."""
    return next(lanes for lanes in loader.GROUP_LANES if lanes >= k or lanes == 32)


def warp_per_row(rows, lanes=32):
    """(grid, block) of a warp-per-row kernel whose rows take ``lanes`` lanes: 4 warps to a block of 128
    threads, 32/lanes rows a warp."""
    per_block = ROWS_PER_WARP_BLOCK * (32 // lanes)
    return (-(-rows // per_block),), (32 * ROWS_PER_WARP_BLOCK,)


def elementwise_launch(n):
    """(grid, block) of a grid-stride elementwise kernel over n elements."""
    return (min(MAX_GRID, -(-n // ELEMENTWISE_BLOCK)),), (ELEMENTWISE_BLOCK,)


def launch_rows(source, stem, direction, t, rows, k, args):
    """Launch ``<stem>_<warp|block>_<direction><t...>`` from kernels/<source> over rows of length k."""
    if rows == 0 or k == 0:
        return
    layout, n, lanes, grid, block = row_launch(rows, k)
    name = f"{stem}_{layout}_{direction}<{t}>" if n is None else f"{stem}_{layout}_{direction}<{t}, {n}, {lanes}>"
    loader.function(source, name)(grid, block, args)


def launch_elementwise(source, name, n, args):
    if n == 0:
        return
    grid, block = elementwise_launch(n)
    loader.function(source, name)(grid, block, args)


def gradient_table(grads, like):
    """The parameters' gradients for the one-launch optimizer kernels: (a device array of their
    addresses, 0 where a parameter has none; the C-contiguous gradients those addresses point into,
    which the caller keeps referenced until the launch is queued). While a CUDA graph is captured the
    table is allocated now and filled once the capture ends (a copy from the host is no graph node).

    Eagerly, the device tables of the last ``TABLES`` address lists are kept: step after step the memory
    pool hands the gradients the same blocks, so a step's table is usually uploaded already, and the
    step makes no copy from the host (each costs a staging buffer, an event and a copy)."""
    grads = [None if g is None else contiguous(g, like.dtype) for g in grads]
    table = numpy.array([0 if g is None else address(g) for g in grads], dtype=numpy.uint64)
    if capture is not None:
        return capture.upload_later(table), grads
    key = (_device_id(like), table.tobytes())
    uploaded = _tables.pop(key, None)
    if uploaded is None:
        uploaded = get_array_module(like).asarray(table)
        if len(_tables) >= TABLES:
            del _tables[next(iter(_tables))]  # the least recently used
    _tables[key] = uploaded  # (re)inserted last: the dict's order is the order of use
    return uploaded, grads


TABLES = 8
_tables = {}  # (device, the addresses' bytes) → that table on the device


# Values a kernel reads from memory at each launch rather than from its arguments, because a CUDA
# graph replays the arguments of the step it was captured at: the Philox counter's advance since
# then (the kernels of random.cu and gumbel_softmax.cu add it to their offset), and Adam's step size
# and ε̂ (NaN: the kernel's arguments hold). Eagerly the kernels read the fixed arrays below; during
# a capture, the graph's own (minivae/_gpu/graph.py sets ``capture``).
capture = None
_eager = {}


def _device_id(like):
    """The number of the GPU that holds ``like`` (None for a NumPy array or a stand-in without one)."""
    return getattr(getattr(like, "device", None), "id", None)


CONSTANTS = 64
_constants = {}  # (array module, (device, stream), dtype, shape, value) → an array of that value, shared


def constant(like, value, shape=()):
    """An array of ``shape`` in ``like``'s dtype on the current device, every element ``value``, made by one fill
    the first time and the same array after: for the numbers an eager step puts on the device each time (β, the 2
    of ``x * 2``, backward()'s ḡ = 1, a uniform prior's zero logits), each an allocation and a fill launch
    otherwise. Shared, so nothing may write it: an op writes none of its inputs, and backward() copies a ḡ before
    it makes it a tensor's .grad. Kept per device and stream (work on another stream would not wait for the fill)
    for the last CONSTANTS values; while a CUDA graph is captured, a new array each time (its fill runs only when
    the graph does)."""
    xp = get_array_module(like)
    if capture is not None:
        return xp.full(shape, value, like.dtype)
    cuda = getattr(xp, "cuda", None)  # the device and stream the fill runs on (the tests' stand-ins have neither)
    where = (cuda.get_device_id(), cuda.get_current_stream().ptr) if cuda is not None else None
    key = (xp.__name__, where, like.dtype, shape, repr(value))  # repr: −0.0 is not 0.0, and NaN is NaN
    shared = _constants.get(key)
    if shared is None:
        if len(_constants) >= CONSTANTS:
            del _constants[next(iter(_constants))]  # the oldest (an annealed β makes a new value each step)
        shared = _constants[key] = xp.full(shape, value, like.dtype)
    return shared


def _eager_knobs(like):
    xp = get_array_module(like)
    key = (xp.__name__, _device_id(like))
    if key not in _eager:
        _eager[key] = (xp.zeros(1, numpy.uint64), xp.full(3, numpy.nan, numpy.float64))  # (a graph's Adam triple)
    return _eager[key]


def philox_shift(like):
    """The device array of one uint64 that a Philox kernel adds to its block offset."""
    return _eager_knobs(like)[0] if capture is None else capture.shift


def adam_scalars(like):
    """The device array of (step size, ε̂, decay 1 − lr·wd) an Adam launch reads (NaN: use its arguments)."""
    return _eager_knobs(like)[1] if capture is None else capture.adam_slot()
