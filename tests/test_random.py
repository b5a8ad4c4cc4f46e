"""Philox4x32-10 against Random123's published known-answer vectors, and the Generator's draws."""
import numpy as np
import pytest

import minivae as mv
from minivae.random import Generator, philox4x32

# Random123 kat_vectors, "philox4x32 10" lines: counter[4], key[2] → output[4]
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_known_answers(counter, key, expected):
    out = philox4x32([[c] for c in counter], key)
    assert tuple(int(w) for w in out[:, 0]) == expected


def test_philox_vectorized_equals_one_at_a_time():
    counters = np.array([[0, 1, 0xFFFFFFFF], [0, 0, 7], [0, 0, 0], [0, 0, 0]], dtype=np.uint32)
    together = philox4x32(counters, (5, 6))
    for j in range(3):
        np.testing.assert_array_equal(together[:, j], philox4x32(counters[:, j:j + 1], (5, 6))[:, 0])


def test_philox_per_element_keys_broadcast_against_the_counter():
    """A key of one (k0, k1) pair per value, with one counter for all: each column is that key's block."""
    keys = (np.array([1, 2, 3], np.uint64), np.array([7, 8, 2 ** 32 - 1], np.uint64))
    together = philox4x32([[5], [0], [0], [9]], keys)
    assert together.shape == (4, 3)
    for j in range(3):
        alone = philox4x32([[5], [0], [0], [9]], (int(keys[0][j]), int(keys[1][j])))
        np.testing.assert_array_equal(together[:, j], alone[:, 0])


def test_same_seed_same_stream_and_draws_do_not_overlap():
    a, b = Generator(42), Generator(42)
    np.testing.assert_array_equal(a.normal((3, 5)), b.normal((3, 5)))
    np.testing.assert_array_equal(a.uniform(7), b.uniform(7))
    assert a.counter == b.counter
    x, y = Generator(1).uniform(8), Generator(2).uniform(8)
    assert not np.array_equal(x, y)
    g = Generator(3)
    first, second = g.words(8), g.words(8)
    np.testing.assert_array_equal(np.concatenate([first, second]), Generator(3).words(16))


def test_replay_from_a_saved_state():
    g = Generator(9)
    g.uniform(10)
    state = g.state_dict()
    expected = g.gumbel((4, 4))
    h = Generator(0)
    h.load_state_dict(state)
    np.testing.assert_array_equal(h.gumbel((4, 4)), expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_uniform_open_interval_even_at_extreme_words(dtype):
    from minivae.random import words_to_uniform
    words = np.array([0, 1, 0xFFFFFFFF, 0xFFFFFFFE], dtype=np.uint32)
    u = words_to_uniform(words, dtype)
    assert u.dtype == dtype and np.all(u > 0) and np.all(u < 1)


def test_float16_draws_are_float16_as_torch_s():
    """torch.rand(dtype=torch.float16) is float16 (it was float64 here): each float16 uniform is float32's from the same
    word rounded to the nearest float16, except from 1 − 2⁻¹² up, where float32's round to 1 and are kept at 1 − 2⁻¹¹,
    the largest float16 below 1 (as float32's largest, 1 − 2⁻²⁴, is float32's largest below 1). The counter advances
    as float32's, and normal and Gumbel draws are float16 too."""
    from minivae.random import words_to_uniform
    g16, g32 = Generator(7), Generator(7)
    u, u32 = g16.uniform((4, 25_000), np.float16), g32.uniform((4, 25_000), np.float32)
    assert u.dtype == np.float16 and g16.counter == g32.counter
    top = u32 >= 1 - 2.0 ** -12
    assert 0 < top.sum() < 100  # about 24
    np.testing.assert_array_equal(u[~top], u32[~top].astype(np.float16))
    np.testing.assert_array_equal(u[top], np.float16(1 - 2.0 ** -11))
    # the words either side of the edge: float32 1 − 2⁻¹² ± 2⁻²⁴, which round to 1 − 2⁻¹¹ and to 1
    edge = 2 ** 23 - 2 ** 11
    words = np.array([(edge - 1) << 9, edge << 9, 0], np.uint32)
    ulp = 2.0 ** -24
    np.testing.assert_array_equal(words_to_uniform(words, np.float32), [1 - 2.0 ** -12 - ulp, 1 - 2.0 ** -12 + ulp, ulp])
    np.testing.assert_array_equal(words_to_uniform(words, np.float16), np.array([1 - 2.0 ** -11, 1 - 2.0 ** -11, ulp], np.float16))
    counts = np.histogram(u.astype(np.float64), bins=20, range=(0, 1))[0]
    assert ((counts - 5000) ** 2 / 5000).sum() < 43.8  # χ²(19) 0.999 quantile
    assert Generator(1).normal((3,), np.float16).dtype == Generator(1).gumbel((3,), np.float16).dtype == np.float16
    assert mv.rand(2, 3, dtype=np.float16).dtype == np.float16


def test_gumbel_is_finite_and_has_gumbel_moments():
    g = Generator(0).gumbel(200_000, np.float64)
    assert np.all(np.isfinite(g))
    # mean = Euler–Mascheroni γ, variance = π²/6; 5 standard errors
    assert abs(g.mean() - 0.5772156649) < 5 * np.sqrt(np.pi ** 2 / 6 / g.size)
    assert abs(g.var() - np.pi ** 2 / 6) < 5 * 0.0125


def test_normal_moments_and_uniform_histogram():
    z = Generator(1).normal(200_000, np.float64)
    se = 1 / np.sqrt(z.size)
    assert abs(z.mean()) < 5 * se and abs(z.var() - 1) < 5 * np.sqrt(2) * se
    assert abs((z ** 3).mean()) < 5 * np.sqrt(15) * se  # skew 0
    u = Generator(2).uniform(100_000)
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    chi2 = ((counts - 5000) ** 2 / 5000).sum()
    assert chi2 < 43.8  # χ²(19) 0.999 quantile: fails by chance once in 1000 seeds


def test_seed_validation():
    with pytest.raises(ValueError, match="seed"):
        Generator(-1)
    with pytest.raises(ValueError, match="seed"):
        Generator(1.5)


def test_permutation_and_integers():
    p = Generator(0).permutation(50)
    assert sorted(p) == list(range(50))
    k = Generator(0).integers(3, 7, 10_000)
    assert k.min() == 3 and k.max() == 6


@pytest.mark.parametrize("draw", [
    lambda g: g.normal((-3,)),
    lambda g: g.uniform(-1),
    lambda g: g.gumbel((2, -1)),
    lambda g: g.uniform(np.int64(-4)),
    lambda g: g.permutation(-2),
    lambda g: g.integers(0, 5, (-1, 3)),
], ids=["normal", "uniform", "gumbel", "numpy-int", "permutation", "integers"])
def test_negative_sizes_are_refused_and_leave_the_counter(draw):
    """NumPy's rule ("negative dimensions are not allowed"); a draw of −n values would move the
    counter back by ⌈n/4⌉ and replay blocks already drawn, or leave it at −1 (then OverflowError)."""
    g = Generator(0)
    g.uniform(8)  # counter 2
    with pytest.raises(ValueError, match="negative dimensions are not allowed"):
        draw(g)
    assert g.counter == 2
    np.testing.assert_array_equal(g.normal((4,)), Generator(0, counter=2).normal((4,)))


def test_negative_word_count_is_refused():
    g = Generator(0)
    with pytest.raises(ValueError, match="negative"):
        g.words(-4)
    assert g.counter == 0


def test_shapes_are_tuples_of_integers():
    from minivae.random import _shape
    assert _shape(np.int64(3)) == (3,) and _shape((2, np.int32(4))) == (2, 4) and _shape(()) == ()
    with pytest.raises(TypeError):
        _shape((2.5,))
