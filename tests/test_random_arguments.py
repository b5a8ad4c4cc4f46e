"""Generator's arguments checked as NumPy's Generator and torch check them, and its host-side draws (permutation,
integers, bernoulli) exact: expected values come from Python integers, the Philox function (checked against
Random123 in test_random.py) or goodness-of-fit tests that state their false-failure rate."""
import numpy as np
import pytest

import minivae as mv
from minivae._backend import device_of
from minivae.random import Generator, _mul64, philox4x32

DRAWS = ["uniform", "normal", "gumbel"]


@pytest.mark.parametrize("draw", DRAWS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8, np.bool_, np.complex64, np.longdouble])
def test_draws_refuse_a_dtype_that_is_not_float16_32_or_64(draw, dtype):
    """Cast to an integer, uniforms in (0, 1) were all 0 and normals truncated; bool, complex and longdouble came back
    float64 (torch.rand/randn refuse integer and bool dtypes). Refused before the counter moves."""
    if np.dtype(dtype) == np.float64:  # a platform whose long double is the double
        pytest.skip("longdouble is float64 here")
    g = Generator(0)
    with pytest.raises(TypeError, match=f"{draw}: dtype {np.dtype(dtype)} is not a floating dtype"):
        getattr(g, draw)((3,), dtype)
    assert g.counter == 0


@pytest.mark.parametrize("draw", DRAWS)
def test_dtype_none_is_float32_torch_s_default(draw):
    """NumPy's dtype None is float64; torch's is float32 (torch.rand(3, dtype=None).dtype)."""
    assert getattr(Generator(0), draw)((3,), None).dtype == np.float32
    make = mv.rand if draw == "uniform" else mv.randn
    if draw != "gumbel":
        assert make(3, dtype=None).dtype == np.float32


@pytest.mark.parametrize("draw", [
    lambda g: g.uniform(True),
    lambda g: g.normal((2, True)),
    lambda g: g.gumbel(np.True_),
    lambda g: g.permutation(True),
    lambda g: g.integers(0, 3, (False, 2)),
    lambda g: mv.rand(2, True, rng=g),
    lambda g: mv.zeros((True, 2)),
    lambda g: mv.full(True, 1.0),
    lambda g: g.words(True),
    lambda g: g.words(np.False_),
], ids=["uniform", "normal", "numpy-bool", "permutation", "integers", "rand", "zeros", "full", "words", "words-numpy"])
def test_a_bool_size_is_refused(draw):
    """True was a size of 1 (operator.index(True) == 1) and False of 0; NumPy and torch.zeros refuse a bool size
    (Generator.words(True) drew one word)."""
    g = Generator(0)
    with pytest.raises(TypeError, match="a bool is not a size"):
        draw(g)
    assert g.counter == 0


@pytest.mark.parametrize("seed", [True, np.True_, -1, 2 ** 64, 1.5, 3.0, "1"])
def test_bad_seeds_are_refused(seed):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\)"):
        Generator(seed)
    with pytest.raises(ValueError, match="seed must be an integer"):
        Generator(0).load_state_dict({"seed": seed, "counter": 0})
    default = mv.random.default_generator
    before = default.state_dict()
    with pytest.raises(ValueError, match="seed must be an integer"):
        mv.manual_seed(seed)
    assert default.state_dict() == before


@pytest.mark.parametrize("counter", [True, -1, 2 ** 64 + 1, 1.5, 2.0])
def test_bad_counters_are_refused(counter):
    """A float counter was truncated (1.5 → 1) and a bool taken as 0 or 1; a negative one failed at the draw with
    NumPy's OverflowError, and load_state_dict took any of them."""
    with pytest.raises(ValueError, match=r"counter must be an integer in \[0, 2\*\*64\]"):
        Generator(0, counter)
    g = Generator(5, 7)
    with pytest.raises(ValueError, match="counter must be an integer"):
        g.load_state_dict({"seed": 1, "counter": counter})
    assert g.state_dict() == {"seed": 5, "counter": 7}


def test_the_last_block_is_drawn_and_a_draw_past_it_refused():
    """The block index is the counter words (lo, hi): block 2⁶⁴ − 1 is the last; past it the words would wrap round
    to block 0 and repeat the stream, so such a draw is refused and the counter stays."""
    seed = 2 ** 40 + 3
    g = Generator(seed, 2 ** 64 - 1)
    key = (seed & 0xFFFFFFFF, seed >> 32)
    expected = philox4x32([[0xFFFFFFFF], [0xFFFFFFFF], [0], [0]], key)[:, 0]
    np.testing.assert_array_equal(g.words(4), expected)
    assert g.counter == 2 ** 64
    assert g.uniform((0,)).shape == (0,)  # nothing to draw: no block needed
    with pytest.raises(ValueError, match="used up"):
        g.uniform(1)
    assert g.counter == 2 ** 64
    g = Generator(seed, 2 ** 64 - 1)
    with pytest.raises(ValueError, match="used up"):
        g.normal((5,))  # 6 words: two blocks
    assert g.counter == 2 ** 64 - 1


def test_permutation_of_an_integer_array_tensor_and_list_as_numpy_s():
    """NumPy's Generator.permutation: an integer n gives a permutation of range(n), an array a copy with its rows
    (axis 0) shuffled; a tensor gives a tensor. The rows move in the order permutation(len(x)) gives from the same
    state (so one seed shuffles images and labels alike)."""
    order = Generator(3).permutation(10)
    assert order.dtype == np.int64 and sorted(order.tolist()) == list(range(10))
    x = np.arange(20.0).reshape(10, 2)
    before = x.copy()
    shuffled = Generator(3).permutation(x)
    np.testing.assert_array_equal(shuffled, x[order])
    np.testing.assert_array_equal(x, before)
    assert not np.shares_memory(shuffled, x)
    t = Generator(3).permutation(mv.tensor(x))
    assert isinstance(t, mv.Tensor)
    np.testing.assert_array_equal(t.data, x[order])
    assert Generator(3).permutation([5, 6, 7, 8, 9, 10, 11, 12, 13, 14]).tolist() == (order + 5).tolist()
    with pytest.raises(ValueError, match="at least one dimension"):
        Generator(0).permutation(np.array(4))
    with pytest.raises(ValueError, match="at least one dimension"):
        Generator(0).permutation(3.0)


def test_permutation_sorts_64_bit_keys_from_two_words():
    """The order sorts the keys w₂ᵢ·2³² + w₂ᵢ₊₁ of the stream (computed here in Python integers), not uniforms of
    32 bits: n keys of 32 bits tie with probability about n²/2³³ (0.4 for 60 000 images), and a tie keeps the
    lower index first."""
    n = 3000
    w = [int(v) for v in Generator(11).words(2 * n)]
    keys = [(w[2 * i] << 32) + w[2 * i + 1] for i in range(n)]
    expected = sorted(range(n), key=keys.__getitem__)
    g = Generator(11)
    assert g.permutation(n).tolist() == expected
    assert g.counter == 2 * n // 4


def test_permutations_are_uniform():
    """The six orders of three items over 6000 draws of one stream: χ²(5) below its 0.999 quantile 20.52 (fails by
    chance once in 1000 seeds)."""
    g = Generator(2)
    orders = [tuple(g.permutation(3)) for _ in range(6000)]
    counts = np.array([orders.count(p) for p in set(orders)])
    assert len(counts) == 6
    assert ((counts - 1000) ** 2 / 1000).sum() < 20.52


@pytest.mark.parametrize("low,high,dtype,match", [
    (5, 3, np.int64, r"low = 5 ≥ high = 3"),
    (3, 3, np.int64, r"low = 3 ≥ high = 3"),
    (0, 2 ** 63 + 1, np.int64, r"not within int64's range"),
    (-2 ** 63 - 1, 0, np.int64, r"not within int64's range"),
    (0, 257, np.uint8, r"not within uint8's range"),
    (-1, 5, np.uint8, r"not within uint8's range"),
], ids=["low-above-high", "empty", "above-int64", "below-int64", "above-uint8", "negative-uint8"])
def test_integers_bounds_are_checked(low, high, dtype, match):
    """NumPy refuses these ("low >= high", "high is out of bounds for int64"); they gave values outside [low, high),
    or NumPy's int64 minimum from a NaN cast, before."""
    g = Generator(0)
    with pytest.raises(ValueError, match=match):
        g.integers(low, high, 4, dtype=dtype)
    assert g.counter == 0


@pytest.mark.parametrize("call,match", [
    (lambda g: g.integers(0.5, 3), "low must be an integer"),
    (lambda g: g.integers(0, 3.0), "high must be an integer"),
    (lambda g: g.integers(True, 3), "low must be an integer"),
    (lambda g: g.integers(0, 3, 2, dtype=np.float64), "dtype float64 is not an integer dtype"),
    (lambda g: g.integers(0, 3, 2, dtype=np.bool_), "dtype bool is not an integer dtype"),
])
def test_integers_arguments_must_be_integers(call, match):
    g = Generator(0)
    with pytest.raises(TypeError, match=match):
        call(g)
    assert g.counter == 0


def test_integers_are_exact_beyond_float_precision():
    """low + k was float64 (2⁶⁰ + 1 rounds to 2⁶⁰: only one of the two values came out) and u·range lost the low
    bits of a range beyond 2⁵³; the top of uint64 overflowed to 0."""
    v = Generator(0).integers(2 ** 60, 2 ** 60 + 2, 400)
    assert v.dtype == np.int64 and set(v.tolist()) == {2 ** 60, 2 ** 60 + 1}
    top = Generator(1).integers(2 ** 64 - 3, 2 ** 64, 400, dtype=np.uint64)
    assert top.dtype == np.uint64 and set(top.tolist()) == {2 ** 64 - 3, 2 ** 64 - 2, 2 ** 64 - 1}
    bottom = Generator(1).integers(-2 ** 63, -2 ** 63 + 2, 400)
    assert set(bottom.tolist()) == {-2 ** 63, -2 ** 63 + 1}
    odd = Generator(2).integers(0, 2 ** 53 + 1, 4000)  # float64 u·(2⁵³ + 1) is even more often than odd
    assert 0.45 < (odd % 2).mean() < 0.55  # a binomial(4000, ½) fraction: ±0.05 is 6 sd
    small = Generator(0).integers(-3, 2, 50, dtype=np.int8)
    assert small.dtype == np.int8 and set(small.tolist()) == {-3, -2, -1, 0, 1}
    assert set(Generator(0).integers(4, shape=200).tolist()) == {0, 1, 2, 3}  # integers(n): [0, n)


def test_integers_over_the_whole_of_int64_and_uint64():
    """A range of 2⁶⁴: every 64-bit word is a value (high − low does not fit in uint64)."""
    v = Generator(4).integers(-2 ** 63, 2 ** 63, 4000)
    assert 0.45 < (v < 0).mean() < 0.55  # ±0.05 is 6 sd of a binomial(4000, ½) fraction
    u = Generator(4).integers(0, 2 ** 64, 4000, dtype=np.uint64)
    assert 0.45 < (u >= 2 ** 63).mean() < 0.55


def test_integers_are_unbiased_for_a_range_near_two_to_the_64():
    """r = 3·2⁶²: ⌊w·r/2⁶⁴⌋ alone gives half of the values ≡ 0 (mod 3) (two words each, against one for the
    others); with the rejection each residue is a third. χ²(2) of 30 000 draws below its 0.999 quantile 13.82."""
    v = Generator(5).integers(-2 ** 63, 2 ** 62, 30_000)
    residues = np.bincount([(int(x) + 2 ** 63) % 3 for x in v], minlength=3)
    assert ((residues - 10_000) ** 2 / 10_000).sum() < 13.82


def test_small_ranges_are_uniform_and_the_same_seed_repeats():
    """χ²(6) of 70 000 draws in [−3, 4) below its 0.999 quantile 22.46."""
    v = Generator(6).integers(-3, 4, (700, 100))
    assert v.shape == (700, 100)
    counts = np.bincount(v.ravel() + 3, minlength=7)
    assert ((counts - 10_000) ** 2 / 10_000).sum() < 22.46
    np.testing.assert_array_equal(v, Generator(6).integers(-3, 4, (700, 100)))


def test_mul64_is_the_128_bit_product():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 2 ** 64, 1000, dtype=np.uint64)
    w[:3] = [0, 1, 2 ** 64 - 1]
    for r in (1, 3, 2 ** 32 - 1, 2 ** 32 + 1, 3 * 2 ** 62, 2 ** 64 - 1, 2 ** 64):
        hi, lo = _mul64(w, r)
        expected = [int(x) * r for x in w]
        assert [int(h) << 64 | int(lo_) for h, lo_ in zip(hi, lo)] == expected


@pytest.mark.parametrize("p", [[0.5, 1.5], [-0.1], [np.nan, 0.5], [np.inf]], ids=["above-1", "negative", "nan", "inf"])
def test_bernoulli_refuses_what_is_not_a_probability(p):
    """torch.bernoulli refuses p outside [0, 1] and NaN; here 1.5 gave always 1, −0.1 and NaN always 0."""
    g = Generator(0)
    with pytest.raises(ValueError, match=r"bernoulli: p must be probabilities in \[0, 1\]"):
        g.bernoulli(np.array(p))
    assert g.counter == 0


def test_bernoulli_at_the_ends_and_in_between():
    x = Generator(0).bernoulli(np.array([0.0, 1.0] * 500 + [0.25] * 8000, np.float32))
    assert x.dtype == np.float32
    assert (x[:1000:2] == 0).all() and (x[1:1000:2] == 1).all()
    assert abs(x[1000:].mean() - 0.25) < 0.03  # 6 sd of a binomial(8000, ¼) fraction


def test_bernoulli_of_a_tensor_is_a_tensor_of_its_dtype():
    """numpy.asarray made a tensor an array of 0-d tensors, compared one by one: float32 draws of float64 p."""
    p = np.array([0.1, 0.5, 0.9, 0.0, 1.0])
    got = Generator(3).bernoulli(mv.tensor(p))
    assert isinstance(got, mv.Tensor) and got.dtype == np.float64
    np.testing.assert_array_equal(got.data, Generator(3).bernoulli(p))
    np.testing.assert_array_equal(got.data[3:], [0, 1])


def test_permutation_of_device_data_stays_on_the_device():
    """A device array or tensor is indexed where it is (CuPy takes a host index), never copied to the host."""
    from tests.strict_array import emulating, record
    x = np.arange(12.0).reshape(6, 2)
    order = Generator(1).permutation(6)
    with emulating():
        on_device = mv.tensor(x, device="cuda")
        with record() as log:
            t = Generator(1).permutation(on_device)
            a = Generator(1).permutation(on_device.data)
        assert not log and t.device == "cuda" and device_of(a) == "cuda"
        np.testing.assert_array_equal(t.numpy(), x[order])
        np.testing.assert_array_equal(a.get(), x[order])
