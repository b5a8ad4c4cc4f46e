"""Counter-based random numbers: Philox4x32-10 (Salmon et al., 2011; cuRAND's default).

This NumPy version is the reference that the Numba and CUDA versions must match:
the same (key, counter) gives the same 32-bit words on every backend.

Stream layout: a draw of n values at counter offset c uses the Philox blocks
c, c+1, …, c + ⌈n/4⌉ − 1 (counter words (block mod 2³², block div 2³², 0, 0), key
(seed mod 2³², seed div 2³² mod 2³²)); value i comes from word i mod 4 of block
c + i div 4, and the offset then advances by ⌈n/4⌉. So a run is reproducible, and a
step can be replayed from its offset. ``permutation`` and ``integers`` take two words a value (a
64-bit word w₂ᵢ·2³² + w₂ᵢ₊₁), and ``integers`` draws again, after, for the values it refuses.

Counter word 2 is 0 in every draw above. Gamma draws (minivae.distributions.gamma.standard_gamma_draws, and so
Beta and Dirichlet rsample) run a rejection loop per value: a draw of n values at offset c takes n blocks (one a
value, not ⌈n/4⌉), and value i's round r uses the block of counter words (lo(c + i), hi(c + i), r, 0): round 0 is the
ordinary block c + i, rounds ≥ 1 collide with no other draw. Its words: w₀, w₁ Box–Muller's first normal
√(−2 log u₀)·cos(2πu₁), w₂ the acceptance uniform, w₃ the boost uniform of α < 1 (each u = (w + ½)·2⁻³², float64).
So value i depends only on (seed, c + i, αᵢ), and a GPU thread runs its own loop (kernels/gamma.cu).
Poisson draws (minivae.distributions.poisson.poisson_draws, and so NegativeBinomial's sample after its Gamma
draw) take the same layout, n blocks for n values: round r's block (lo(c + i), hi(c + i), r, 0), its w₀ the
inversion's uniform (λ < 10, round 0 only) or PTRS's U + ½, and w₁ PTRS's V.

``uniform``, ``normal`` and ``gumbel`` take ``device=``: on "cuda" the values are made on the GPU
(kernels/random.cu through minivae._gpu.random, or these same formulas on CuPy arrays when the
CUDA kernels are switched off), equal to the CPU draw's, and the counter advances exactly as the
CPU draw advances it.
"""
import operator

import numpy

from minivae import engine
from minivae._backend import KERNEL_DTYPES, fused, get_array_module, module_for_device

_M0, _M1 = 0xD2511F53, 0xCD9E8D57   # round multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85   # key schedule (golden ratio, √3 − 1)
_MASK = 0xFFFFFFFF


def philox4x32(counter, key, rounds=10):
    """Philox4x32-R on arrays (NumPy or CuPy): ``counter`` (4, n) and ``key`` (2,) or (2, n) uint32
    → (4, n) uint32. A key of plain integers stays a host scalar (no copy to the device)."""
    xp = get_array_module(*counter, *key)
    k0, k1 = (numpy.uint64(w) if isinstance(w, (int, numpy.integer)) else xp.asarray(w, dtype=numpy.uint64)
              for w in key)
    shape = numpy.broadcast_shapes(*[numpy.shape(w) for w in (*counter, k0, k1)])
    # our own copies of the counter words, updated in place below
    c0, c1, c2, c3 = (xp.array(xp.broadcast_to(xp.asarray(w, dtype=numpy.uint64), shape)) for w in counter)
    p0, p1 = xp.empty_like(c0), xp.empty_like(c0)
    # NumPy turns a scalar operand into an array at every call; 0-d arrays cost nothing (CuPy takes scalars)
    m0, m1, mask, hi = (numpy.asarray(numpy.uint64(v)) if xp is numpy else v for v in (_M0, _M1, _MASK, 32))
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + _W0) & _MASK, (k1 + _W1) & _MASK
        xp.multiply(c0, m0, out=p0)  # exact in 64 bits: a 32×32-bit product
        xp.multiply(c2, m1, out=p1)
        # (c0, c1, c2, c3) ← (hi(p1) ^ c1 ^ k0, lo(p1), hi(p0) ^ c3 ^ k1, lo(p0)), each word written after its
        # last read: the same arithmetic as a new list of four arrays, without making one every round
        xp.right_shift(p1, hi, out=c0)
        c0 ^= c1
        c0 ^= k0
        xp.bitwise_and(p1, mask, out=c1)
        xp.right_shift(p0, hi, out=c2)
        c2 ^= c3
        c2 ^= k1
        xp.bitwise_and(p0, mask, out=c3)
    return xp.stack([c0, c1, c2, c3]).astype(numpy.uint32)


_BELOW_ONE_F16 = numpy.float16(1 - 2 ** -11)  # the largest float16 below 1


def words_to_uniform(words, dtype):
    """32-bit words → uniforms in the open interval (0, 1), never exactly 0 or 1.

    float64: (w + ½)·2⁻³² ∈ [2⁻³³, 1 − 2⁻³³]. float32: the top 23 bits,
    ((w >> 9) + ½)·2⁻²³ ∈ [2⁻²⁴, 1 − 2⁻²⁴], both ends exactly representable (1 − 2⁻²⁴ is the largest float32
    below 1). float16: the float32 uniform rounded to the nearest float16 (torch.rand rounds its float uniforms to
    float16 so on the GPU); from 1 − 2⁻¹² up they round to 1, and are kept at 1 − 2⁻¹¹, the largest float16 below 1,
    as float32's end is the largest float32 below 1. The lowest, 2⁻²⁴, is float16's smallest subnormal: none is 0.
    """
    dtype = numpy.dtype(dtype)
    if dtype == numpy.float16:
        u = words_to_uniform(words, numpy.float32).astype(numpy.float16)
        return get_array_module(u).minimum(u, _BELOW_ONE_F16)
    if dtype == numpy.float32:
        return (((words >> 9).astype(numpy.float32) + numpy.float32(0.5)) * numpy.float32(2.0 ** -23))
    return (words.astype(numpy.float64) + 0.5) * 2.0 ** -32


def _normal_from_uniforms(xp, u, n):
    """Box–Muller on rows (u₁, u₂) of float64 uniforms: n standard normals (float64)."""
    r = xp.sqrt(-2.0 * xp.log(u[:, 0]))
    theta = 2.0 * numpy.pi * u[:, 1]
    return xp.stack([r * xp.cos(theta), r * xp.sin(theta)], axis=1).reshape(-1)[:n]


def _shape(shape, name="shape"):
    """``shape`` (an int or a sequence of ints) as a tuple of ints; a negative size is refused
    (NumPy's "negative dimensions are not allowed") before any draw, so the counter does not move:
    ⌈n/4⌉ for a negative n would move it backwards, and replay blocks already drawn. A bool is refused
    (as NumPy and torch.zeros refuse it), where operator.index would take True as a size of 1. A NumPy array is taken
    as NumPy takes it: a 0-d integer array is one size, a 1-D one the sizes; any other array is refused naming it."""
    if hasattr(shape, "ndim") and hasattr(shape, "dtype"):  # (a NumPy array; a 0-d one is an int to operator.index)
        if shape.ndim > 1 or shape.dtype.kind not in "biu":
            raise TypeError(f"{name} must be an int or a 1-D sequence of ints, not an array of {shape.dtype} of shape "
                            f"{tuple(shape.shape)}")
        if shape.dtype.kind == "b":
            raise TypeError(f"{name} {shape!r}: a bool is not a size")
        shape = shape.tolist()  # (Python ints)
    single = isinstance(shape, (int, numpy.integer, bool, numpy.bool_))
    dims = (shape,) if single else tuple(shape)
    if any(isinstance(d, (bool, numpy.bool_)) or getattr(getattr(d, "dtype", None), "kind", "") == "b" for d in dims):  # (0-d arrays)
        raise TypeError(f"{name} {shape!r}: a bool is not a size")
    dims = tuple(operator.index(d) for d in dims)
    if any(d < 0 for d in dims):
        raise ValueError(f"{name} {dims}: negative dimensions are not allowed")
    return dims


def _size(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _blocks(n_words):
    """The Philox blocks that n words take: ⌈n/4⌉."""
    return (n_words + 3) // 4


def _position(value, name, end):
    """A seed or counter: an integer (Python's or NumPy's, not a bool) in [0, end), as a Python int."""
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, (int, numpy.integer)) or not 0 <= value < end:
        bound = "2**64)" if end == 2 ** 64 else "2**64]"
        raise ValueError(f"{name} must be an integer in [0, {bound}, got {value!r}")
    return int(value)


def _integer(value, name):
    """An integer argument (Python's or NumPy's, not a bool) as a Python int; a float, even 3.0, is refused."""
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, (int, numpy.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


_FLOAT_DTYPES = tuple(numpy.dtype(t) for t in (numpy.float16, numpy.float32, numpy.float64))


def _float_dtype(dtype, who):
    """The dtype of a draw: float16, float32 or float64; None is float32 (torch's default dtype). Any other is
    refused, as torch.rand/randn refuse integer and bool dtypes: cast to an integer, uniforms in (0, 1) would be
    all 0 and normals truncated, and a longdouble or complex dtype would come back float64."""
    if dtype is None:
        return numpy.dtype(engine.DEFAULT_FLOAT)
    if numpy.dtype(dtype) not in _FLOAT_DTYPES:
        raise TypeError(f"{who}: dtype {numpy.dtype(dtype)} is not a floating dtype (float16, float32 or float64)")
    return numpy.dtype(dtype)


def _mul64(w, r):
    """(hi, lo): the 128-bit product of uint64 words w and an integer r ≤ 2⁶⁴, w·r = hi·2⁶⁴ + lo, in uint64 arrays
    (by 32-bit halves w = w₁·2³² + w₀, r = r₁·2³² + r₀, r₁ ≤ 2³²: each partial product is exact in 64 bits)."""
    m32, s32 = numpy.uint64(_MASK), numpy.uint64(32)
    w1, w0, r1, r0 = w >> s32, w & m32, numpy.uint64(r >> 32), numpy.uint64(r & _MASK)
    low, cross1, cross0, high = w0 * r0, w0 * r1, w1 * r0, w1 * r1
    mid = (low >> s32) + (cross1 & m32) + (cross0 & m32)  # < 3·2³²: no overflow
    return high + (cross1 >> s32) + (cross0 >> s32) + (mid >> s32), (mid << s32) | (low & m32)


def check_probabilities(p, name):
    """Raise ValueError, naming ``name``, unless every value of the array ``p`` lies in [0, 1] (NaN does not)."""
    p = numpy.asarray(p)
    bad = ~((p >= 0) & (p <= 1))
    if bad.any():
        raise ValueError(f"{name} must be probabilities in [0, 1], found {p[bad].flat[0]!r} "
                         f"({int(bad.sum())} of {p.size} values outside)")


def _recorded(draw):
    """While a step plan records (minivae.plan), a draw is one step of the plan: each replay draws the
    stream's next values, as the eager step would."""
    def recorded(self, *args, **kwargs):
        out = draw(self, *args, **kwargs)
        if engine._recorder is not None:
            engine._recorder.draw(self, draw.__name__, args, kwargs, out)
        return out
    recorded.__name__, recorded.__doc__ = draw.__name__, draw.__doc__
    return recorded


class Generator:
    """A seeded, counter-based random stream; every function that samples takes one as ``rng``.

    Args:
        seed: an integer in [0, 2⁶⁴).
        counter: the next Philox block, an integer in [0, 2⁶⁴] (2⁶⁴: the stream is used up; a draw that would
            need a block past 2⁶⁴ − 1 is refused, where the counter words would wrap around to block 0).
    """

    def __init__(self, seed=0, counter=0):
        self.seed, self.counter = _position(seed, "seed", 2 ** 64), _position(counter, "counter", 2 ** 64 + 1)
        # made while a step plan records: a replay would go on drawing from this one object, where each
        # eager step would make a new one (minivae.plan refuses its draws)
        self.made_in_a_recording = engine._recorder is not None

    def __repr__(self):
        return f"Generator(seed={self.seed}, counter={self.counter})"

    def state_dict(self):
        return {"seed": self.seed, "counter": self.counter}

    def load_state_dict(self, state):
        self.seed, self.counter = _position(state["seed"], "seed", 2 ** 64), _position(state["counter"], "counter", 2 ** 64 + 1)

    def words(self, n, device="cpu"):
        """The next n 32-bit words of the stream (made on ``device``)."""
        xp = module_for_device(device)
        if isinstance(n, (bool, numpy.bool_)):  # (operator.index takes True as 1), as the draws' sizes
            raise TypeError(f"words: n {n!r}: a bool is not a size")
        if operator.index(n) < 0:  # checked before the counter moves
            raise ValueError(f"words: n = {n} is negative")
        first = self._take((n + 3) // 4)
        blocks = xp.arange(first, self.counter, dtype=numpy.uint64)
        zero = xp.zeros_like(blocks)
        counter = (blocks & _MASK, blocks >> 32, zero, zero)
        key = (self.seed & _MASK, (self.seed >> 32) & _MASK)
        return philox4x32(counter, key).T.reshape(-1)[:n]

    def _kernels(self, device, dtype):
        """minivae._gpu.random when the draw is on the GPU, its kernels are on and built for ``dtype``, else
        None: the formulas below then run on the device's arrays, as ``fused`` promises for the dtypes the
        kernels do not take (float16), so that both paths accept the same dtypes."""
        if device == "cpu" or numpy.dtype(dtype) not in KERNEL_DTYPES:
            return None
        return fused("random", module_for_device(device))

    @_recorded
    def uniform(self, shape=(), dtype=numpy.float32, device="cpu"):
        """Uniforms in the open interval (0, 1) of ``dtype``: float32 (also for None, torch's default dtype), float64,
        or float16 (float32's rounded: float16, as torch.rand(dtype=torch.float16) is; see words_to_uniform)."""
        shape, dtype = _shape(shape), _float_dtype(dtype, "uniform")
        n = _size(shape)
        kernels = self._kernels(device, dtype)
        if kernels is not None:
            return kernels.uniform(self.seed, self._take(_blocks(n)), shape, dtype)
        return words_to_uniform(self.words(n, device), dtype).reshape(shape)

    @_recorded
    def normal(self, shape=(), dtype=numpy.float32, device="cpu"):
        """Standard normals by Box–Muller on pairs of float64 uniforms: √(−2 log u₁)·(cos 2πu₂, sin 2πu₂), of a
        floating ``dtype`` as ``uniform``'s."""
        shape, dtype = _shape(shape), _float_dtype(dtype, "normal")
        n = _size(shape)
        kernels = self._kernels(device, dtype)
        if kernels is not None:
            return kernels.normal(self.seed, self._take(_blocks(2 * ((n + 1) // 2))), shape, dtype)
        u = words_to_uniform(self.words(2 * ((n + 1) // 2), device), numpy.float64).reshape(-1, 2)
        return _normal_from_uniforms(get_array_module(u), u, n).astype(dtype).reshape(shape)

    @_recorded
    def gumbel(self, shape=(), dtype=numpy.float32, device="cpu"):
        """Standard Gumbel noise g = −log E, E = −log1p(−u) ~ Exponential(1).

        u ∈ [2⁻³³, 1 − 2⁻³³] keeps E in (0, ∞) strictly, so g is always finite
        (unlike −log(−log u) on u ∈ [0, 1], infinite at both ends). Of a floating ``dtype`` as ``uniform``'s.
        """
        shape, dtype = _shape(shape), _float_dtype(dtype, "gumbel")
        n = _size(shape)
        kernels = self._kernels(device, dtype)
        if kernels is not None:
            return kernels.gumbel(self.seed, self._take(_blocks(n)), shape, dtype)
        u = words_to_uniform(self.words(n, device), numpy.float64)
        xp = get_array_module(u)
        return (-xp.log(-xp.log1p(-u))).astype(dtype).reshape(shape)

    def _take(self, blocks):
        """The counter for a draw of ``blocks`` Philox blocks, advancing past them. The block index is 64 bits
        (counter words 0 and 1): a draw past block 2⁶⁴ − 1 is refused, where it would wrap around to block 0 and
        repeat the stream (on the GPU silently)."""
        counter = self.counter
        if counter + blocks > 2 ** 64:
            raise ValueError(f"the stream of seed {self.seed} is used up: a draw of {blocks} Philox blocks from counter "
                             f"{counter} goes past the last block, 2**64 - 1")
        self.counter += blocks
        return counter

    def _words64(self, n):
        """The next n 64-bit words of the stream, each from two 32-bit ones: w₂ᵢ·2³² + w₂ᵢ₊₁ (uint64)."""
        w = self.words(2 * n).astype(numpy.uint64)
        return (w[0::2] << numpy.uint64(32)) | w[1::2]

    def _host_only(self, what):
        """These draws end in host arrays made outside the ops, which a step plan cannot replay."""
        engine._refuse_while_recording(f"Generator.{what} (host arrays, not ops)")

    def bernoulli(self, p):
        """0/1 draws with P(1) = p (an array of probabilities in [0, 1]: one outside, or NaN, is refused, as
        torch.bernoulli refuses it), in p's dtype (float32 for integer or bool p); for a tensor p, a tensor on its
        device (numpy.asarray would make a tensor an array of objects, each compared on its own)."""
        self._host_only("bernoulli")
        if isinstance(p, engine.Tensor):
            return engine.tensor(self.bernoulli(p.numpy()), device=p.device)
        p = numpy.asarray(p)
        check_probabilities(p, "bernoulli: p")
        return (self.uniform(p.shape, numpy.float64) < p).astype(p.dtype if p.dtype.kind == "f" else numpy.float32)

    def permutation(self, x):
        """As NumPy's ``Generator.permutation``: for an integer n, a uniformly random permutation of range(n) (int64);
        for an array, a tensor or a list, a copy of it with its rows (axis 0) in such an order.

        The order sorts n 64-bit keys (``_words64``): keys tie with probability below n²/2⁶⁵ (10⁻¹⁰ for n = 60 000;
        tied keys keep their order), where 32-bit keys tie with probability about n²/2³³ (0.4 for n = 60 000).
        """
        self._host_only("permutation")
        if isinstance(x, (int, numpy.integer, bool, numpy.bool_)):
            (n,), rows = _shape(x, "permutation: n"), None
        else:
            # a tensor or a device array stays what it is (a host index selects its rows, as CuPy allows)
            rows = x if isinstance(x, engine.Tensor) or get_array_module(x) is not numpy else numpy.asarray(x)
            if rows.ndim == 0:
                raise ValueError("permutation: x must be an integer or an array of at least one dimension, "
                                 f"got a 0-d {type(x).__name__}")
            n = len(rows)
        order = numpy.argsort(self._words64(n), kind="stable")
        return order if rows is None else rows[order]

    def integers(self, low, high=None, shape=(), dtype=numpy.int64):
        """Integers uniform on [low, high) of an integer ``dtype``, as NumPy's ``Generator.integers``
        (``integers(n)``: [0, n)); low < high, both within the dtype's range.

        Exact for every range r = high − low up to 2⁶⁴, by Lemire's multiply-and-reject on 64-bit words w
        (``_words64``) in uint64 arithmetic: k = ⌊w·r / 2⁶⁴⌋ is kept unless w·r mod 2⁶⁴ < 2⁶⁴ mod r, which leaves
        every k in [0, r) exactly ⌊2⁶⁴/r⌋ words; a value refused (probability below r/2⁶⁴) is drawn again from
        the words after the draw's. The result is low + k, added modulo 2⁶⁴ (no float rounding: low = 2⁶⁰ and
        k = 1 give 2⁶⁰ + 1).
        """
        self._host_only("integers")
        if high is None:
            low, high = 0, low
        low, high = _integer(low, "integers: low"), _integer(high, "integers: high")
        dtype = numpy.dtype(dtype)
        if dtype.kind not in "iu":
            raise TypeError(f"integers: dtype {dtype} is not an integer dtype")
        info = numpy.iinfo(dtype)
        if low < info.min or high - 1 > info.max:
            raise ValueError(f"integers: [{low}, {high}) is not within {dtype}'s range [{info.min}, {info.max}]")
        if low >= high:
            raise ValueError(f"integers: low = {low} ≥ high = {high}, the range [low, high) is empty")
        shape = _shape(shape)
        r = high - low
        k = numpy.empty(_size(shape), numpy.uint64)
        todo = numpy.arange(k.size)
        while todo.size:
            hi, lo = _mul64(self._words64(todo.size), r)
            keep = lo >= numpy.uint64((2 ** 64 - r) % r)  # r = 2⁶⁴ (all of int64): k = w, none refused
            k[todo[keep]] = hi[keep]
            todo = todo[~keep]
        out = k + numpy.uint64(low % 2 ** 64)  # wraps modulo 2⁶⁴: low + k read as a two's complement int64
        return (out.view(numpy.int64) if info.min < 0 else out).astype(dtype).reshape(shape)


default_generator = Generator(0)


def manual_seed(seed):
    """Restart the default generator at ``seed`` and return it (as ``torch.manual_seed``).

    The rule: a function that samples or initialises weights uses its ``rng=`` when one is given,
    and the default generator only when ``rng`` is left out."""
    default_generator.load_state_dict(Generator(seed).state_dict())  # validates the seed, keeps the object
    return default_generator


def resolve(rng):
    """``rng`` if given, else the default generator."""
    return default_generator if rng is None else rng
