"""Every kernel of kernels/*.cu against its NumPy reference (the op's formula, the specification):
values and gradients, float32 and float64, awkward shapes, extreme logits and temperatures.

The cases take a ``dev`` fixture (``put``: NumPy → device array, ``get``: back) and call the
launchers of minivae/_gpu directly, so the same cases run the kernels on the CPU through the host
emulation (tests/test_cuda_kernels.py, plain and under ThreadSanitizer / AddressSanitizer) and on a
real GPU through CuPy (tests/gpu/test_kernels.py)."""
import os

import numpy as np
import pytest

from minivae._gpu import (adam, bce, categorical, elbo, gaussian, gumbel, joined, linear, random, row_launch, sgd, softmax,
                          tiled, timing)
from minivae.ops.softmax import log_softmax_array, softmax_array, softmax_vjp
from minivae.ops.unary import stable_sigmoid, stable_softplus
from minivae.random import Generator

DTYPES = [np.float32, np.float64]
# K: 1, 2, 3 (rows of 4 lanes, 8 a warp), 10 and 16 (16 lanes, 2 rows a warp: 5 rows leave the third warp a
# row past the end), 17 (the shortest row of a whole warp), around a warp (31, 32, 33), the longest warp row
# (256), the shortest block row (257), a block row longer than the block (1025), and one too long for
# registers (9000: re-read from memory). Block rows whose k is a multiple of 4 go by 16-byte vectors: 1024
# fills them, 516 leaves a thread's last vector empty.
LENGTHS = [1, 2, 3, 10, 16, 17, 31, 32, 33, 256, 257, 516, 1024, 1025, 9000]
TAUS = [1e-3, 1.0, 1e3]
# Gumbel-Softmax also: rows of 127 and 255 (warp kernels with N = 4 and 8) whose start r·k is not a multiple of 4
# touch 8N + 1 Philox blocks, one more than the 8N that N/4 blocks per lane make, so one lane makes one block more;
# block rows of 1026, by 16-byte vectors in float64 (k even), whose starts r·k are not all multiples of 4 either,
# so they may not go by quads of one Philox block each (1024 and 516 do); and rows of 9002, too long for registers
# in float32 too (float32 rows of 9000 go by quads: 16 values a thread hold up to 16384)
GUMBEL_EDGES = [127, 255, 1026, 9002]
# minivae's own product (m, n, k), with slices of the inner dimension cut at 16 (tests/kernel_cases.py's gemm case):
# one value; a row and a column short of a tile, unsplit (k = 33 < 2·16); a tile and a row, 17 inner values (one step
# and one value); 3×2 tiles in 7 slices of 32 (the last of 8); 2 tiles in 32 slices, a partial sum a slice; no inner
# dimension at all (the epilogue of zeros); rows of 4·q values (written and summed by 16-byte vectors), 2×2 tiles
# overhanging by 2 rows and 4 columns, in 6 slices
GEMM_SHAPES = [(1, 1, 1), (3, 70, 33), (65, 64, 17), (130, 65, 200), (3, 70, 1000), (5, 7, 0), (66, 68, 100)]
# the tuned splits' case: one tile, and two (a column of 6 past the second), each in 1 to 7 slices
TUNED_SHAPES = [(6, 8, 200), (3, 70, 200)]
# the Gumbel-Softmax and KL pair's rows: 1, 2, 5 and 10 take 4, 8, 16 and 16 lanes (13 rows leave rows past the end
# in the last warp), 17 a whole warp with one value a lane, 33, 100 and 256 two, four and eight
PAIR_LENGTHS = [1, 2, 5, 10, 17, 33, 100, 256]
LONG_ROWS = None  # rows of a case whose rows each take a block of 1024 threads: the case's own
TINY_TAUS = (1e-300, 1e-320)  # 1/τ past float64's largest value; the second subnormal
if os.environ.get("MINIVAE_CUDA_HOST_SANITIZE"):
    # under ThreadSanitizer / AddressSanitizer (tests/test_cuda_kernels.py reruns these cases so) every
    # thread costs ~10× more: one length per layout (partial warp, several lanes each, a block per row: by
    # quads, by spans, from memory), and the Gumbel rows of 1026 go by spans as 1025 does
    LENGTHS, TAUS, GUMBEL_EDGES = [10, 33, 516, 1025, 9000], [1.0], [127, 255]
    GEMM_SHAPES = [(3, 70, 33), (70, 3, 100), (6, 8, 40)]  # unsplit; 2 tiles in 4 slices; by vectors, 2 slices
    TUNED_SHAPES = [(6, 8, 200)]
    PAIR_LENGTHS = [2, 10, 33]
    # a row of a block of 1024 threads (9000: too long for registers) takes about 1.8 s under ThreadSanitizer: two rows,
    # a block each, show a race as well as six; the subnormal τ is another value on the same path as 1e-300
    LONG_ROWS, TINY_TAUS = 2, (1e-300,)


def on_the_host(dev):
    """Whether ``dev`` is the host emulation (its arrays NumPy's): there the kernel calls glibc's log, cos and exp, as
    math does, and the same operations in the same order give the same double."""
    return isinstance(dev.put(np.zeros(1)), np.ndarray)


def flush(dev, a):
    """``a`` as a kernel on ``dev`` reads or writes it. On a GPU CuPy compiles every kernel with -ftz=true (its
    compiler.py appends the option after the caller's, so no kernel can take it back; CuPy's own elementwise kernels
    too), and float32 subnormals are ±0 there: on the H200 (2026-11-30) erfc(9.44) = 1.09·10⁻⁴⁰ was written as 0, and
    erfcinv(5.9·10⁻³⁹) read as erfcinv(0) = ∞. The host emulation keeps them. float64 is not flushed anywhere."""
    if a.dtype != np.float32 or on_the_host(dev):
        return a
    return np.where(np.abs(a) < np.finfo(np.float32).tiny, np.copysign(np.float32(0), a), a)


def rows_for(rows, k):
    """``rows``, or LONG_ROWS of them (under a sanitizer) where the launchers give each row of ``k`` a block of 1024
    threads (``row_launch``)."""
    return rows if LONG_ROWS is None or row_launch(1, k)[4] != (1024,) else min(rows, LONG_ROWS)


def tol(dtype):
    """rtol, atol between two evaluations of one formula in ``dtype``: a few ulp, magnified by the
    exponent's size (exp(z) carries z's relative error times |z|, and |z| reaches ~10² before underflow)."""
    return (2e-5, 1e-6) if dtype == np.float32 else (1e-12, 1e-14)


def close(got, want, dtype, scale=1.0):
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(got, want, rtol=rtol * scale, atol=atol * scale)


def logits(rng, rows, k, dtype, spread=1e4):
    """Logits spanning ±spread, with a tie at the maximum in every other row."""
    x = rng.uniform(-spread, spread, (rows, k))
    if k > 1:
        x[::2, -1] = x[::2].max(axis=1)
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", LENGTHS)
@pytest.mark.parametrize("tau", TAUS)
@pytest.mark.parametrize("log", [False, True])
def test_softmax_forward_and_backward(dev, dtype, k, tau, log):
    rng = np.random.default_rng(k)
    rows = rows_for(5, k)
    # spread the logits over ~30 τ so that several entries of a row matter at every temperature
    x = logits(rng, rows, k, dtype, spread=min(1e4, 30 * tau) if tau < 1e3 else 1e4)
    g = rng.standard_normal((rows, k)).astype(dtype)        # random upstream: all ones hides softmax bugs
    y = dev.get(softmax.softmax_fwd(dev.put(x), tau, log=log))
    gx = dev.get(softmax.softmax_bwd(dev.put(y), dev.put(g), tau, log=log))
    if log:
        want = log_softmax_array(np, x, (1,), tau)
        close(y, want, dtype, scale=max(1.0, np.abs(want).max()))
        want_gx = (g - np.exp(y) * g.sum(axis=-1, keepdims=True)) / tau
    else:
        close(y, softmax_array(np, x, (1,), tau), dtype)
        want_gx = softmax_vjp(y, g, -1, tau)
    close(gx, want_gx, dtype, scale=k / tau)                # Σ over k terms, each scaled by 1/τ
    assert np.isfinite(y).all() and np.isfinite(gx).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_off_a_16_byte_boundary_go_element_by_element(dev, dtype):
    """k = 1024 would go by 16-byte vectors, but these rows start one element past a boundary: the
    kernel must notice (a vector load there is a misaligned access: a fault on a GPU, UBSan's report here)."""
    rows, k, tau = 3, 1024, 0.5
    rng = np.random.default_rng(5)
    x, g = logits(rng, rows, k, dtype, spread=10.0), rng.standard_normal((rows, k)).astype(dtype)
    buffers = [dev.put(np.zeros(rows * k + 1, dtype)) for _ in range(2)]
    xd, gd = (b[1:].reshape(rows, k) for b in buffers)      # C-contiguous, one element off
    xd[...], gd[...] = dev.put(x), dev.put(g)
    y = softmax.softmax_fwd(xd, tau)
    close(dev.get(y), softmax_array(np, x, (1,), tau), dtype)
    yd = dev.put(np.zeros(rows * k + 1, dtype))[1:].reshape(rows, k)
    yd[...] = y
    close(dev.get(softmax.softmax_bwd(yd, gd, tau)), softmax_vjp(dev.get(y), g, -1, tau), dtype, scale=k / tau)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 33, 1025])
def test_softmax_at_extreme_logits_stays_finite(dev, dtype, k):
    x = np.full((3, k), -1e4, dtype)
    x[:, 0] = 1e4
    for tau in TAUS:
        y = dev.get(softmax.softmax_fwd(dev.put(x), tau))
        ly = dev.get(softmax.softmax_fwd(dev.put(x), tau, log=True))
        assert np.isfinite(y).all() and np.isfinite(ly).all()
        np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", LENGTHS + GUMBEL_EDGES)
@pytest.mark.parametrize("hard", [False, True])
def test_gumbel_softmax_noise_matches_the_numpy_stream(dev, dtype, k, hard):
    rng = np.random.default_rng(k + 100)
    rows, tau = rows_for(6, k), 0.7
    seed, counter = 2 ** 40 + 17, 2 ** 32 - 3               # both key words; the counter carries past 2³²
    x = logits(rng, rows, k, dtype, spread=3.0)
    y, out = (dev.get(a) for a in gumbel.gumbel_softmax_fwd(dev.put(x), seed, counter, tau, hard))
    noisy = x + Generator(seed, counter).gumbel(x.shape, dtype)   # the reference: GumbelSoftmax's NumPy path
    want = softmax_array(np, noisy, (1,), tau)
    close(y, want, dtype)
    if hard:
        np.testing.assert_array_equal(out, np.eye(k, dtype=dtype)[want.argmax(axis=1)])
    else:
        close(out, y, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gumbel_softmax_rows_off_a_16_byte_boundary_go_element_by_element(dev, dtype):
    """k = 1024 would go by quads of 16-byte vectors, but these rows start one element past a boundary:
    the kernel must notice, and still draw each element's own noise."""
    rows, k, tau = 3, 1024, 0.5
    x = logits(np.random.default_rng(6), rows, k, dtype, spread=3.0)
    xd = dev.put(np.zeros(rows * k + 1, dtype))[1:].reshape(rows, k)
    xd[...] = dev.put(x)
    y, out = (dev.get(a) for a in gumbel.gumbel_softmax_fwd(xd, 9, 4, tau, True))
    want = softmax_array(np, x + Generator(9, 4).gumbel(x.shape, dtype), (1,), tau)
    close(y, want, dtype)
    np.testing.assert_array_equal(out, np.eye(k, dtype=dtype)[want.argmax(axis=1)])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k,tied", [(10, (3, 7)), (40, (3, 20)), (40, (3, 35)), (1100, (3, 700)), (1100, (40, 1099)),
                                    (1100, (288, 290)), (1100, (3, 643)), (1102, (290, 322))])
def test_gumbel_softmax_hard_ties_go_to_the_lowest_index(dev, dtype, k, tied):
    """Logits of ±1e30 swallow the noise (an ulp of 1e30 exceeds any Gumbel draw), so the tied entries
    get exactly equal y: across the lanes of a 16-lane row (3, 7), across a warp's lanes (3, 20), within
    one lane (3, 35), across a block's threads (3, 700; 40, 1099). Rows of 1100 (a multiple of 4) go by
    quads, thread t holding quads t and t + 160: ties within one quad (288, 290) and within one thread,
    in its two quads (3, 643). Rows of 1102 do not: a warp holds 256 consecutive j, 32 apart in a lane,
    so (290, 322) lie in one thread."""
    x = np.full((3, k), -1e30, dtype)
    x[:, list(tied)] = 1e30
    y, out = (dev.get(a) for a in gumbel.gumbel_softmax_fwd(dev.put(x), 5, 0, 1.0, True))
    assert (y[:, tied[0]] == y[:, tied[1]]).all() and (y[:, tied[0]] == 0.5).all()
    np.testing.assert_array_equal(out, np.eye(k, dtype=dtype)[[tied[0]] * 3])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [3, 33, 1024, 1025, 9000])  # a warp per row (N = 1, 2); a block per row: by quads, in registers, not
def test_gumbel_softmax_nan_rows_stay_nan_and_tiny_temperatures_give_the_one_hot_limit(dev, dtype, k):
    """A NaN logit makes its row NaN in y and in the hard sample (numpy.argmax would point at the NaN,
    the kernel's argmax finds nothing); τ = 1e-300 (1/τ past the dtype's largest value) gives the
    reference's one-hot limit, not 0·inf = NaN."""
    rng = np.random.default_rng(k)
    rows = rows_for(4, k)
    x = logits(rng, rows, k, dtype, spread=3.0)
    x[1, k // 2] = np.nan
    y, out = (dev.get(a) for a in gumbel.gumbel_softmax_fwd(dev.put(x), 7, 0, 1.0, True))
    assert np.isnan(y[1]).all() and np.isnan(out[1]).all()
    rest = [r for r in range(rows) if r != 1]
    np.testing.assert_array_equal(out[rest], np.eye(k, dtype=dtype)[y[rest].argmax(axis=1)])
    x = x[rest]
    for tau in TINY_TAUS:
        y, out = (dev.get(a) for a in gumbel.gumbel_softmax_fwd(dev.put(x), 7, 0, tau, True))
        with np.errstate(over="ignore"):
            want = softmax_array(np, x + Generator(7, 0).gumbel(x.shape, dtype), (1,), tau)
        np.testing.assert_array_equal(y, want)
        np.testing.assert_array_equal(out, np.eye(k, dtype=dtype)[want.argmax(axis=1)])
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(dev.get(softmax.softmax_fwd(dev.put(x), tau)), softmax_array(np, x, (1,), tau))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 255, 1000])
def test_gaussian_reparameterization_and_kl(dev, dtype, n):
    rng = np.random.default_rng(n)
    mu, log_var, eps, g = (rng.standard_normal(n).astype(dtype) * s for s in (3, 4, 1, 1))
    z, noise = (dev.get(a) for a in gaussian.reparameterize_fwd(dev.put(mu), dev.put(log_var), dev.put(eps)))
    close(noise, np.exp(0.5 * log_var) * eps, dtype, scale=10)
    close(z, mu + noise, dtype)
    close(dev.get(gaussian.reparameterize_bwd(dev.put(g), dev.put(noise))), 0.5 * g * noise, dtype)
    kl, var = (dev.get(a) for a in gaussian.kl_standard_normal_fwd(dev.put(mu), dev.put(log_var)))
    close(var, np.exp(log_var), dtype, scale=10)
    close(kl, 0.5 * (mu * mu + np.exp(log_var) - 1 - log_var), dtype, scale=10)
    gmu, glv = (dev.get(a) for a in gaussian.kl_standard_normal_bwd(dev.put(g), dev.put(mu), dev.put(var)))
    close(gmu, g * mu, dtype)
    close(glv, 0.5 * g * (var - 1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,layout", [((1,), "contiguous"), ((7,), "contiguous"), ((1001,), "contiguous"),
                                          ((3, 5), "halves"), ((17, 15), "halves")])
@pytest.mark.parametrize("seed,offset", [(0, 0), (2 ** 64 - 1, 2 ** 32 - 1)])
def test_the_pair_with_its_noise_drawn_in_the_kernel(dev, dtype, shape, layout, seed, offset):
    """normal_reparameterize_kl_fwd: its ε is kernels/random.cu's philox_normal draw at (seed, offset), bit for bit
    (the same Box–Muller pairs of the same words: an odd count ends on half a pair), and its z and kl are the pair's
    at that ε, bit for bit (the same elementwise code); μ and v read in place as the halves of one array."""
    rng = np.random.default_rng(shape[0])
    mu, log_var = (rng.standard_normal(shape).astype(dtype) * s for s in (3, 4))
    if layout == "contiguous":
        mu_in, log_var_in = dev.put(mu), dev.put(log_var)
    else:
        h = dev.put(np.concatenate([mu, log_var], axis=1))
        mu_in, log_var_in = h[:, :shape[1]], h[:, shape[1]:]
    z, kl, eps = (dev.get(a) for a in gaussian.normal_reparameterize_kl_fwd(mu_in, log_var_in, seed, offset))
    want_eps = dev.get(random.normal(seed, offset, shape, dtype))
    np.testing.assert_array_equal(eps, want_eps)
    want_z, want_kl = (dev.get(a) for a in gaussian.reparameterize_kl_fwd(mu_in, log_var_in, dev.put(want_eps)))
    np.testing.assert_array_equal(z, want_z)
    np.testing.assert_array_equal(kl, want_kl)


def _column_slice(dev, a, left, right):
    """``a`` (rows × cols) on the device as columns [left, left + cols) of a wider array (rows ld = left + cols + right
    apart), NaN around it: what a kernel reads outside the slice shows."""
    wide = np.full((a.shape[0], left + a.shape[1] + right), np.nan, a.dtype)
    wide[:, left:left + a.shape[1]] = a
    return dev.put(wide)[:, left:left + a.shape[1]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,layout", [((1,), "contiguous"), ((255,), "contiguous"), ((1000,), "contiguous"),
                                          ((17, 15), "contiguous"), ((1, 1), "column slices"), ((17, 15), "column slices"),
                                          ((1, 1), "halves"), ((17, 15), "halves")])
@pytest.mark.parametrize("reached", ["both", "z", "kl"])
def test_reparameterization_and_kl_as_one_pair(dev, dtype, shape, reached, layout):
    """The joint kernels against the two single ops' formulas; ``reached``: which outputs got a gradient. With
    "column slices", μ and v are read in place from wider arrays (rows 2·cols apart for μ; cols + 4 apart for v,
    to tell the two strides apart); with "halves", from one array, as the halves of an encoder's output, and μ̄
    and v̄ are written as the halves of one new array (what ops.split's backward takes whole)."""
    rng = np.random.default_rng(shape[0])
    mu, log_var, eps, gz, gkl = (rng.standard_normal(shape).astype(dtype) * s for s in (3, 4, 1, 1, 1))
    if layout == "contiguous":
        mu_in, log_var_in = dev.put(mu), dev.put(log_var)
    elif layout == "halves":
        h = dev.put(np.concatenate([mu, log_var], axis=1))
        mu_in, log_var_in = h[:, :shape[1]], h[:, shape[1]:]
    else:
        mu_in, log_var_in = _column_slice(dev, mu, 0, shape[1]), _column_slice(dev, log_var, 3, 1)
    z, kl = (dev.get(a) for a in gaussian.reparameterize_kl_fwd(mu_in, log_var_in, dev.put(eps)))
    noise, var = np.exp(0.5 * log_var) * eps, np.exp(log_var)
    close(z, mu + noise, dtype, scale=10)
    close(kl, 0.5 * (mu * mu + var - 1 - log_var), dtype, scale=10)
    gz = gz if reached != "kl" else None
    gkl = gkl if reached != "z" else None
    put = lambda a: None if a is None else dev.put(a)  # noqa: E731
    grads = gaussian.reparameterize_kl_bwd(put(gz), put(gkl), mu_in, log_var_in, dev.put(eps))
    whole = joined(*grads)
    assert (whole is not None) == (layout == "halves")
    gmu, glv = (dev.get(a) for a in grads)
    if whole is not None:
        np.testing.assert_array_equal(dev.get(whole), np.concatenate([gmu, glv], axis=1))
    zero = np.zeros_like(mu)
    gz, gkl = (zero if g is None else g for g in (gz, gkl))
    close(gmu, gz + gkl * mu, dtype, scale=10)
    close(glv, 0.5 * gz * noise + 0.5 * gkl * (var - 1), dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 2, 5, 10, 33, 100])
@pytest.mark.parametrize("prior_rows", [1, 3, 13])
def test_categorical_kl(dev, dtype, k, prior_rows):
    """The prior's logits as P rows, row r of the posterior taking row r mod P: one prior for all (P = 1), one
    per latent variable (P = 3, as (…, 3, k) posteriors against a (3, k) prior), one per row (P = 13); the
    kernel normalizes them itself (shifted far from 0: a missing normalization shows). 13 rows leave the last
    warp rows past the end when a row takes 4, 8 or 16 lanes (k = 1, 2, 5, 10)."""
    rng = np.random.default_rng(k)
    rows = 13
    x = logits(rng, rows, k, dtype, spread=20.0)
    prior = (rng.standard_normal((prior_rows, k)) + 5).astype(dtype)
    log_p = log_softmax_array(np, prior, (1,))[np.arange(rows) % prior_rows]
    g = rng.standard_normal(rows).astype(dtype)
    kl, q, diff = (dev.get(a) for a in categorical.categorical_kl_fwd(dev.put(x), dev.put(prior)))
    log_q = log_softmax_array(np, x, (1,))
    close(q, np.exp(log_q), dtype)
    close(diff, log_q - log_p, dtype, scale=40)
    close(kl, (np.exp(log_q) * (log_q - log_p)).sum(axis=1), dtype, scale=40 * k)
    gl = dev.get(categorical.categorical_kl_bwd(dev.put(g), dev.put(q), dev.put(diff), dev.put(kl)))
    close(gl, q * (diff - kl[:, None]) * g[:, None], dtype, scale=40)


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_kl_with_zero_probabilities(dev, dtype):
    """Logits −inf (probability 0) in the posterior q and the prior p, in categorical_kl and in the Gumbel-Softmax and
    KL pair: a term of q_j = 0 is 0, whatever p_j (its log q_j − log p_j stored and used as 0; NaN from 0·(−inf)
    before), one of p_j = 0 < q_j is +∞; where the KL is finite its gradient is the formula's, finite, and a row of
    +∞ whose ḡ is 0 sends back 0 (q_j·(d_j − ∞)·0 was NaN)."""
    inf = np.inf
    x = np.array([[-inf, 0.0, 1.0], [-inf, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype)  # q_0 = 0; q_0 = p_0 = 0; p_0 = 0 < q_0
    prior = np.array([[0.0, 0.0, 0.0], [-inf, 1.0, 0.0], [-inf, 0.0, 0.0]], dtype)
    log_q = log_softmax_array(np, x.astype(np.float64), (1,))
    q = np.exp(log_q)
    with np.errstate(invalid="ignore"):  # −inf − (−inf) where q = 0, not used
        diff = np.where(q == 0, 0.0, log_q - log_softmax_array(np, prior.astype(np.float64), (1,)))
    want_kl = (q * diff).sum(axis=1)
    assert np.isfinite(want_kl[:2]).all() and want_kl[2] == inf
    xd, pd = dev.put(x), dev.put(prior)
    kl, qd, dd = (dev.get(a) for a in categorical.categorical_kl_fwd(xd, pd))
    close(kl[:2], want_kl[:2], dtype)
    assert kl[2] == inf
    close(qd, q, dtype)
    close(dd[:2], diff[:2], dtype)
    g = np.array([0.7, -1.3, 0.0], dtype)  # the finite rows' gradients; none for the row of +∞
    gl = dev.get(categorical.categorical_kl_bwd(dev.put(g), dev.put(qd), dev.put(dd), dev.put(kl)))
    want_gl = np.zeros_like(q)
    want_gl[:2] = q[:2] * (diff[:2] - want_kl[:2, None]) * g[:2, None]
    close(gl, want_gl, dtype)
    y, _, kl_pair = (dev.get(a) for a in gumbel.gumbel_softmax_kl_fwd(xd, pd, 3, 0, 0.7, False))
    np.testing.assert_array_equal(kl_pair, kl)
    gy = np.array([[0.5, -0.2, 0.1], [0.3, 0.4, -1.0], [0.2, 0.0, -0.6]], dtype)
    gl = dev.get(gumbel.gumbel_softmax_kl_bwd(dev.put(y), dev.put(gy), xd, pd, dev.put(kl), dev.put(g), 0.7))
    close(gl, softmax_vjp(y.astype(np.float64), gy.astype(np.float64), -1, 0.7) + want_gl, dtype)
    assert np.isfinite(gl).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", PAIR_LENGTHS)
@pytest.mark.parametrize("prior_rows,hard,tau", [(1, False, 0.5), (3, True, 1e-3), (13, False, 1e3)])
def test_gumbel_softmax_kl_pair(dev, dtype, k, prior_rows, hard, tau):
    """gumbel_softmax_kl_fwd: the sample of gumbel_softmax_fwd and the KL of categorical_kl_fwd at the same logits,
    bit for bit (one pass where those were two), and the KL against its formula; the backward against the two VJPs'
    formulas added (softmax's at τ, the KL's with q and log q − log p from NumPy): a term dropped, the KL's sum
    or the prior row of another row, or a softmax sum across rows shows."""
    rng = np.random.default_rng(k + 100 * prior_rows)
    rows = 13
    x = logits(rng, rows, k, dtype, spread=20.0)
    prior = (rng.standard_normal((prior_rows, k)) + 5).astype(dtype)
    seed, counter = 2 ** 40 + 3, 17
    xd, pd = dev.put(x), dev.put(prior)
    y, out, kl = (dev.get(a) for a in gumbel.gumbel_softmax_kl_fwd(xd, pd, seed, counter, tau, hard))
    y1, out1 = (dev.get(a) for a in gumbel.gumbel_softmax_fwd(xd, seed, counter, tau, hard))
    np.testing.assert_array_equal(y, y1)
    np.testing.assert_array_equal(out, out1)
    np.testing.assert_array_equal(kl, dev.get(categorical.categorical_kl_fwd(xd, pd)[0]))
    log_q = log_softmax_array(np, x, (1,))
    diff = log_q - log_softmax_array(np, prior, (1,))[np.arange(rows) % prior_rows]
    q = np.exp(log_q)
    close(kl, (q * diff).sum(axis=1), dtype, scale=40 * k)
    gy = rng.standard_normal((rows, k)).astype(dtype)
    gkl = rng.standard_normal(rows).astype(dtype)
    gl = dev.get(gumbel.gumbel_softmax_kl_bwd(dev.put(y), dev.put(gy), xd, pd, dev.put(kl), dev.put(gkl), tau))
    y64, gy64 = y.astype(np.float64), gy.astype(np.float64)
    want = softmax_vjp(y64, gy64, -1, tau) + q * (diff - kl[:, None]) * gkl[:, None]
    close(gl, want, dtype, scale=40 * max(1.0, 1 / tau))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("missing", ["sample", "kl"])
def test_gumbel_softmax_kl_pair_backward_with_one_gradient(dev, dtype, missing):
    """A gradient that never came counts as 0: the other term alone."""
    rng = np.random.default_rng(5)
    x = logits(rng, 6, 10, dtype, spread=5.0)
    prior = rng.standard_normal((1, 10)).astype(dtype)
    xd, pd = dev.put(x), dev.put(prior)
    y, _, kl = (dev.get(a) for a in gumbel.gumbel_softmax_kl_fwd(xd, pd, 3, 0, 0.7, False))
    gy = rng.standard_normal(x.shape).astype(dtype)
    gkl = rng.standard_normal(6).astype(dtype)
    gl = dev.get(gumbel.gumbel_softmax_kl_bwd(dev.put(y), None if missing == "sample" else dev.put(gy), xd, pd,
                                              dev.put(kl), None if missing == "kl" else dev.put(gkl), 0.7))
    log_q = log_softmax_array(np, x, (1,))
    q, diff = np.exp(log_q), log_q - log_softmax_array(np, prior, (1,))
    want = softmax_vjp(y, gy, -1, 0.7) if missing == "kl" else q * (diff - kl[:, None]) * gkl[:, None]
    close(gl, want, dtype, scale=40)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_bce_with_logits_loss_and_gradient(dev, dtype, sign):
    """The loss and σ(x) − t, or (sign −1) the Bernoulli log-likelihood and t − σ(x)."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(500) * 5, [-1e4, 1e4, 0.0, -0.0, 88.0, -88.0, 800.0]]).astype(dtype)
    t = rng.uniform(0, 1, x.size).astype(dtype)
    loss, dx = (dev.get(a) for a in bce.bce_fwd(dev.put(x), dev.put(t), sign))
    want = sign * (stable_softplus(np, x) - x * t)
    close(loss, want, dtype, scale=max(1.0, np.abs(want).max()) if dtype == np.float32 else 1e4)
    close(dx, sign * (stable_sigmoid(np, x) - t), dtype)
    assert np.isfinite(loss).all() and np.isfinite(dx).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ll_shape,k", [((1, 1), 1), ((3, 33), 5), ((2, 3, 7), 4), ((257, 5), 2), ((300, 40), 20),
                                        ((0, 4), 3)])
@pytest.mark.parametrize("beta", [1.0, 0.0, -0.5])
def test_negative_elbo_forward_and_backward(dev, dtype, ll_shape, k, beta):
    """(1/R) Σ_r (β·Σ_k kl − Σ_j ll) against the float64 formula; launched twice on other data, so that the
    second launch finds its count of finished blocks back at 0 (else no block of it would know it is the last,
    and the loss, of other data this time, would never be written). (300, 40) takes 9 blocks, whose
    partial sums the last one adds; no examples give NaN, as numpy's mean of nothing. The backward is two
    operations of the formula, so exact: −ḡ/R everywhere in ll's shape (one value seen through a broadcast view),
    β·ḡ/R in kl's."""
    rng = np.random.default_rng(ll_shape[0])
    for launch in range(2):
        ll = (rng.standard_normal(ll_shape) - 3 * launch).astype(dtype)
        kl = rng.uniform(0, 2, ll_shape[:-1] + (k,)).astype(dtype)
        b = np.full((), beta, dtype)
        got = elbo.negative_elbo_fwd(dev.put(ll), dev.put(kl), dev.put(b))
        got = dev.get(got)
        rows = ll.size // ll_shape[-1]
        want = (beta * kl.astype(np.float64).sum(axis=-1) - ll.astype(np.float64).sum(axis=-1)).mean() if rows else np.nan
        scale = (abs(beta) * kl.sum() + np.abs(ll).sum()) / max(rows, 1)  # rounding grows with the sums' magnitudes
        assert got.shape == () and got.dtype == dtype
        if rows:
            assert abs(got - want) <= tol(dtype)[0] * scale, (got, want)
        else:
            assert np.isnan(got)
    g = np.full((), rng.standard_normal(), dtype)
    gll, gkl = elbo.negative_elbo_bwd(dev.put(g), dev.put(b), rows, ll.shape, kl.shape)
    assert all(step == 0 for step in gll.strides)  # a view of one value
    gll, gkl = dev.get(gll), dev.get(gkl)
    assert gll.shape == ll.shape and gkl.shape == kl.shape and gkl.dtype == gll.dtype == dtype
    if rows:
        s = g / rows
        np.testing.assert_array_equal(gll, np.broadcast_to(-s, ll.shape))
        np.testing.assert_array_equal(gkl, np.broadcast_to(s * b, kl.shape))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,k", [((1, 1), 1), ((3, 33), 5), ((2, 3, 7), 4), ((300, 40), 20), ((0, 4), 3)])
def test_bernoulli_negative_elbo_is_the_two_ops_bit_for_bit(dev, dtype, shape, k):
    """bernoulli_negative_elbo_fwd/_bwd against what the unfused ops launch (bce_fwd with sign −1, negative_elbo's
    kernels, l̄l times the derivative): the same loss and gradients bit for bit (the same terms, summed in the same
    order), and the loss against the float64 formula. Logits reach ±1e4 (both branches of σ, the saturated ends);
    launched twice on other data, as negative_elbo's test, so the second launch finds its block count back at 0."""
    rng = np.random.default_rng(shape[0] + k)
    rows = int(np.prod(shape[:-1]))
    for launch in range(2):
        logits = (rng.standard_normal(shape) * 6).astype(dtype)
        logits.reshape(-1)[::11] = 1e4 * np.sign(logits.reshape(-1)[::11])
        x = (rng.random(shape) < 0.5).astype(dtype)
        kl = rng.uniform(0, 2, shape[:-1] + (k,)).astype(dtype)
        b = np.full((), 0.7 - launch, dtype)
        got = dev.get(elbo.bernoulli_negative_elbo_fwd(dev.put(logits), dev.put(x), dev.put(kl), dev.put(b)))
        ll, dx = bce.bce_fwd(dev.put(logits), dev.put(x), -1.0)
        np.testing.assert_array_equal(got, dev.get(elbo.negative_elbo_fwd(ll, dev.put(kl), dev.put(b))))
        assert got.shape == () and got.dtype == dtype
        if rows:
            ll64 = x * logits.astype(np.float64) - stable_softplus(np, logits.astype(np.float64))
            want = (b * kl.astype(np.float64).sum(axis=-1) - ll64.sum(axis=-1)).mean()
            assert abs(got - want) <= tol(dtype)[0] * (kl.sum() + np.abs(ll64).sum()) / rows, (got, want)
    g = np.full((), rng.standard_normal(), dtype)
    glogits, gkl = (dev.get(a) for a in elbo.bernoulli_negative_elbo_bwd(dev.put(g), dev.put(b), dev.put(logits),
                                                                        dev.put(x), kl.shape))
    gll, want_gkl = (dev.get(a) for a in elbo.negative_elbo_bwd(dev.put(g), dev.put(b), rows, shape, kl.shape))
    assert glogits.shape == shape and glogits.dtype == gkl.dtype == dtype
    np.testing.assert_array_equal(glogits, gll * dev.get(dx))
    np.testing.assert_array_equal(gkl, want_gkl)
    if rows:
        close(glogits, g / rows * (stable_sigmoid(np, logits.astype(np.float64)) - x), dtype)


def _flat_problem(dtype):
    rng = np.random.default_rng(7)
    sizes = [5, 1, 300, 33]                                 # a parameter of one element; sizes that split blocks
    starts = np.cumsum([0] + sizes).astype(np.int64)
    p, m, v = (rng.standard_normal(starts[-1]).astype(dtype) for _ in range(3))
    v = np.abs(v)
    grads = [rng.standard_normal(s).astype(dtype) for s in sizes]
    grads[1] = None                                         # no gradient: left untouched
    return starts, p, m, v, grads


def _adam_formula(dtype, p, m, v, g, step_size, b1, b2, eps_hat, weight_decay=0.0, decay=1.0, maximize=False,
                  max_v=None):
    """optim.Adam's update written out in NumPy, in the parameters' dtype: (p, m, v, v̂max) after one step."""
    s = np.dtype(dtype).type
    g = -g if maximize else g
    p = p * s(decay)
    if weight_decay:
        g = g + s(weight_decay) * p
    m = s(b1) * m + s(1 - b1) * g
    v = s(b2) * v + s(1 - b2) * g * g
    if max_v is not None:
        max_v = np.maximum(max_v, v)
    return p - s(step_size) * m / (np.sqrt(v if max_v is None else max_v) + s(eps_hat)), m, v, max_v


# (weight_decay, decay, maximize, amsgrad): plain Adam; L2 decay with maximize; AdamW's decoupled decay; amsgrad
ADAM_OPTIONS = [(0.0, 1.0, False, False), (0.1, 1.0, True, False), (0.0, 1 - 1e-3 * 0.5, False, False),
                (0.1, 1.0, False, True)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight_decay,decay,maximize,amsgrad", ADAM_OPTIONS, ids=["adam", "l2-maximize", "adamw", "amsgrad"])
def test_adam_updates_every_parameter_in_one_launch(dev, dtype, weight_decay, decay, maximize, amsgrad):
    starts, p, m, v, grads = _flat_problem(dtype)
    max_v = np.abs(np.random.default_rng(8).standard_normal(p.size)).astype(dtype) if amsgrad else None
    if amsgrad:
        max_v[::2] = 0  # where v̂max < v, v is taken (and kept); elsewhere v̂max
    dp, dm, dv, dmax = dev.put(p), dev.put(m), dev.put(v), None if max_v is None else dev.put(max_v)
    scalars = 1e-3, 0.9, 0.999, 1e-8
    adam.adam_step_all(dp, dm, dv, [None if g is None else dev.put(g) for g in grads], dev.put(starts), *scalars,
                       weight_decay, decay, maximize, dmax)
    for j, g in enumerate(grads):
        sl = slice(starts[j], starts[j + 1])
        if g is None:
            want_p, want_m, want_v, want_max = p[sl], m[sl], v[sl], None if max_v is None else max_v[sl]
        else:
            want_p, want_m, want_v, want_max = _adam_formula(dtype, p[sl], m[sl], v[sl], g, *scalars, weight_decay,
                                                              decay, maximize, None if max_v is None else max_v[sl])
        close(dev.get(dm)[sl], want_m, dtype)
        close(dev.get(dv)[sl], want_v, dtype)
        close(dev.get(dp)[sl], want_p, dtype)
        if amsgrad:
            close(dev.get(dmax)[sl], want_max, dtype)


def _sgd_formula(dtype, p, v, g, lr, momentum, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False,
                 first=False):
    """optim.SGD's update written out in NumPy, in the parameters' dtype (torch's): (p, v) after one step."""
    s = np.dtype(dtype).type
    d = -g if maximize else g
    if weight_decay:
        d = d + s(weight_decay) * p
    if momentum == 0:  # no momentum buffer: v untouched (torch keeps none)
        return p - s(lr) * d, v
    v = d if first else s(momentum) * v + s(1 - dampening) * d
    return p - s(lr) * (d + s(momentum) * v if nesterov else v), v


# (momentum, dampening, weight_decay, nesterov, maximize, first)
SGD_OPTIONS = [(0.0, 0.0, 0.0, False, False, False), (0.9, 0.0, 0.0, False, False, False),
               (0.9, 0.3, 0.1, False, True, False), (0.9, 0.3, 0.1, False, False, True),
               (0.9, 0.0, 0.1, True, False, False), (0.5, 0.0, 0.0, True, True, True), (0.0, 0.3, 0.1, False, True, False)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", SGD_OPTIONS, ids=["plain", "momentum", "damped-decay-maximize", "damped-first-step",
                                                      "nesterov-decay", "nesterov-first-maximize", "damping-without-momentum"])
def test_sgd_updates_every_parameter_in_one_launch(dev, dtype, options):
    starts, p, _, v, grads = _flat_problem(dtype)
    dp, dv = dev.put(p), dev.put(v)
    sgd.sgd_step_all(dp, dv, [None if g is None else dev.put(g) for g in grads], dev.put(starts), 0.1, *options)
    for j, g in enumerate(grads):
        sl = slice(starts[j], starts[j + 1])
        want_p, want_v = (p[sl], v[sl]) if g is None else _sgd_formula(dtype, p[sl], v[sl], g, 0.1, *options)
        close(dev.get(dv)[sl], want_v, dtype)
        close(dev.get(dp)[sl], want_p, dtype)


@pytest.mark.parametrize("seed,offset", [(0, 0), (2 ** 40 + 3, 2 ** 32 - 2), (2 ** 64 - 1, 5)])
@pytest.mark.parametrize("n", [1, 7, 1001])
def test_philox_fills_equal_the_generator(dev, seed, offset, n):
    for dtype in DTYPES:
        # uniforms are exact (integer arithmetic and an exact conversion); the transcendental draws are
        # within a few ulp of NumPy's libm (cos, sin, log, log1p differ in their last bits)
        np.testing.assert_array_equal(dev.get(random.uniform(seed, offset, n, dtype)), Generator(seed, offset).uniform(n, dtype))
        for draw in ("normal", "gumbel"):
            got = dev.get(getattr(random, draw)(seed, offset, (n,), dtype))
            want = getattr(Generator(seed, offset), draw)(n, dtype)
            np.testing.assert_allclose(got, want, rtol=4 * np.finfo(dtype).eps, atol=4 * np.finfo(dtype).eps)


class _GraphKnobs:
    """What a CUDA graph's capture gives the launchers (minivae/_gpu/graph.py): the Philox counter's
    advance and Adam's (step size, ε̂) in device memory, and the gradient table filled after the capture."""

    def __init__(self, dev, shift, adam):
        self.shift, self._adam, self._dev = dev.put(np.array([shift], np.uint64)), dev.put(np.array(adam)), dev

    def adam_slot(self):
        return self._adam

    def upload_later(self, table):
        return self._dev.put(table)


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_in_a_graph_take_the_counter_advance_and_adam_scalars_from_memory(dev, dtype, monkeypatch):
    """A graph replays its kernels' arguments: the draws must move by the advance in memory (else every
    replay would draw the same noise) and Adam must take this step's bias-corrected scalars."""
    import minivae._gpu
    x = np.random.default_rng(2).normal(size=(5, 33)).astype(dtype)
    y_eager, _ = (dev.get(a) for a in gumbel.gumbel_softmax_fwd(dev.put(x), 11, 10, 0.5, False))
    eps_eager = dev.get(random.normal(11, 10, x.shape, dtype))
    starts, p, m, v, grads = _flat_problem(dtype)
    dp, dm, dv = dev.put(p), dev.put(m), dev.put(v)
    monkeypatch.setattr(minivae._gpu, "capture", _GraphKnobs(dev, 7, (2e-3, 1e-6, 1.0)))
    np.testing.assert_array_equal(dev.get(random.uniform(11, 3, 9, dtype)), Generator(11, 10).uniform(9, dtype))
    y, _ = (dev.get(a) for a in gumbel.gumbel_softmax_fwd(dev.put(x), 11, 3, 0.5, False))
    np.testing.assert_array_equal(y, y_eager)
    eps = dev.get(gaussian.normal_reparameterize_kl_fwd(dev.put(x), dev.put(x), 11, 3)[2])
    np.testing.assert_array_equal(eps, eps_eager)
    prior = dev.put(np.zeros((1, 33), dtype))
    np.testing.assert_array_equal(dev.get(gumbel.gumbel_softmax_kl_fwd(dev.put(x), prior, 11, 3, 0.5, False)[0]), y_eager)
    adam.adam_step_all(dp, dm, dv, [None if g is None else dev.put(g) for g in grads], dev.put(starts), 1e-3, 0.9, 0.999,
                       1e-8)
    s = np.dtype(dtype).type
    g = grads[0]
    want_m, want_v = s(0.9) * m[:5] + s(0.1) * g, s(0.999) * v[:5] + s(1 - 0.999) * g * g
    close(dev.get(dp)[:5], p[:5] - s(2e-3) * want_m / (np.sqrt(want_v) + s(1e-6)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamw_in_a_graph_decays_by_this_step_s_learning_rate_from_memory(dev, dtype, monkeypatch):
    """A CUDA graph replays the arguments of the step it was captured at; a scheduler then changes the lr. AdamW's
    kernel must take this step's (lr_t, ε̂, 1 − lr·wd) from memory, as optim.AdamW.launch_scalars gives them after
    the change (what graph.py writes before the launch), and so update as the eager step at the new lr does."""
    import minivae._gpu
    import minivae as mv
    from minivae.optim import AdamW
    starts, p, m, v, grads = _flat_problem(dtype)
    opt = AdamW([mv.tensor(p.copy())], lr=0.1, weight_decay=0.5)  # (one parameter: only its launch_scalars are used)
    opt.params[0].grad = p
    opt.count_step()  # the step the graph was captured at: t = 1, lr = 0.1
    captured = opt._scalars(opt.param_groups[0], 1)
    opt.param_groups[0]["lr"] = 0.02  # the scheduler's change; then the replay's count
    opt.count_step()
    (knobs,) = opt.launch_scalars()
    step_size, b1, b2, eps_hat, _, decay = opt._scalars(opt.param_groups[0], 2)
    assert knobs == (step_size, eps_hat, decay) and decay == 1 - 0.02 * 0.5 and captured[-1] == 1 - 0.1 * 0.5
    dp, dm, dv = dev.put(p), dev.put(m), dev.put(v)
    monkeypatch.setattr(minivae._gpu, "capture", _GraphKnobs(dev, 0, knobs))
    adam.adam_step_all(dp, dm, dv, [None if g is None else dev.put(g) for g in grads], dev.put(starts), *captured, False)
    for j, g in enumerate(grads):
        sl = slice(starts[j], starts[j + 1])
        want_p = p[sl] if g is None else _adam_formula(dtype, p[sl], m[sl], v[sl], g, step_size, b1, b2, eps_hat, 0.0,
                                                       decay)[0]
        close(dev.get(dp)[sl], want_p, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (3, 33), (257, 5), (2, 3, 7), (40, 70), (1100, 3)])
@pytest.mark.parametrize("relu", [False, True])
def test_dense_layer_bias_activation_and_relu_vjp(dev, dtype, shape, relu):
    """ops.linear's ends on the GPU: act(p + b) in place; and p̄ (ḡ·[y > 0] for ReLU, ḡ itself without) with
    its column sums b̄; against the NumPy formula, NaN included (it stays NaN through max(·, 0), and a NaN
    upstream gradient stays NaN where y > 0 and becomes NaN·0 = NaN elsewhere, as in the formula). The shapes
    have fewer and more rows than a block of bias_grad sums at once (16), more columns than it takes (32: 33,
    70 leave the last block's columns partly empty), and more rows than one group takes (1100: 17 groups of
    65 rows, the last of 60, added up by the last block to finish)."""
    rng = np.random.default_rng(3)
    p, b = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape[-1]).astype(dtype)
    p.flat[0] = np.nan
    want = p + b
    if relu:
        want = np.maximum(want, 0)
    dy = dev.put(p)
    linear.bias_act_fwd(dy, dev.put(b), relu)
    np.testing.assert_array_equal(dev.get(dy), want)  # one addition and one comparison: exact
    g = rng.standard_normal(shape).astype(dtype)
    g.flat[-1] = np.nan
    dg = dev.put(g)
    dp, db = linear.bias_grad(dg, dev.put(want) if relu else None)
    want_dp = g * (want > 0) if relu else g
    np.testing.assert_array_equal(dev.get(dp), want_dp)
    close(dev.get(db), want_dp.reshape(-1, shape[-1]).sum(axis=0), dtype)  # another order of the sum: to rounding
    np.testing.assert_array_equal(dev.get(dg), g)  # ḡ itself is read, never written
    if relu:
        np.testing.assert_array_equal(dev.get(linear.relu_bwd(dg, dev.put(want))), want_dp)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,one_pass,group", [((40, 70), 16, 8), ((257, 5), 16, 64), ((20, 40), 0, 1)])
def test_bias_gradient_in_row_groups(dev, monkeypatch, dtype, shape, one_pass, group):
    """b̄ of many row groups on shapes small enough for the emulation: 5 groups of 8 rows; 4 groups of 65
    rows, the last of 62; and 20 groups of one row each (GROUP_BLOCKS allows ⌈512/2⌉ > 20). A group that
    skipped rows, summed another group's rows or left its slot unwritten, or a last block that missed a
    group, shows as a column off by whole values; a tile count left unreset, as a second launch's b̄ unwritten."""
    monkeypatch.setattr(linear, "ONE_PASS_ROWS", one_pass)
    monkeypatch.setattr(linear, "GROUP_ROWS", group)
    rng = np.random.default_rng(5)
    g = rng.integers(-8, 9, shape).astype(dtype)  # small integers: every order of the sum is exact
    y = rng.standard_normal(shape).astype(dtype)
    for relu in (False, True):
        dp, db = linear.bias_grad(dev.put(g), dev.put(y) if relu else None)
        want = g * (y > 0) if relu else g
        np.testing.assert_array_equal(dev.get(dp), want)
        np.testing.assert_array_equal(dev.get(db), want.sum(axis=0))


def _product(a, b):
    """a @ b in float64 as a sum of broadcast products: NumPy's matmul calls OpenBLAS, whose threads
    ThreadSanitizer reports as racing in the sanitized run of these cases."""
    return (a.astype(np.float64)[:, :, None] * b.astype(np.float64)[None]).sum(axis=1)


def _laid_out(a, transposed):
    """``a`` as a C-contiguous array, or as the transposed view of a C-contiguous copy of aᵀ (F-contiguous, as a
    VJP's Wᵀ and xᵀ are)."""
    return np.ascontiguousarray(a.T).T if transposed else np.ascontiguousarray(a)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", GEMM_SHAPES)
@pytest.mark.parametrize("layout,epilogue", [("nn", None), ("tn", "relu"), ("nt", "bias"), ("tt", "relu")])
def test_tiled_product_and_its_epilogue(dev, monkeypatch, dtype, m, n, k, layout, epilogue):
    """kernels/gemm.cu's C = act(A·B + b) against NumPy, for each layout of A and B (row-major, or a transposed
    view) and each epilogue. Small integers (and a bias of halves) make every order of every sum exact, so the
    result must equal NumPy's bit for bit: an element of A or B read from the wrong place, a step or a slice of the
    inner dimension skipped or added twice, a partial sum lost, a bias of the wrong column or a ReLU on the wrong
    side of it, all show. A NaN in A's first row stays in that row, through the ReLU too. Launched twice, into the
    same output: the last block of a tile is found by a count that each launch must leave at 0 for the next (one
    left behind, the second launch writes nothing), and the sum does not depend on which block ends last. Then into
    an output one value off a 16-byte boundary, which rows of 4·q values may not be written to by vectors."""
    monkeypatch.setattr(tiled, "MIN_SLICE", 16)  # split the small shapes the emulation can run
    rng = np.random.default_rng(m * 1000 + n + k)
    a = rng.integers(-4, 5, (m, k)).astype(dtype)
    b = rng.integers(-4, 5, (k, n)).astype(dtype)
    bias = rng.integers(-8, 9, n).astype(dtype) / 2 if epilogue else None
    if k:
        a[0, 0] = np.nan
    want = _product(a, b).astype(dtype)
    if epilogue:
        want = want + bias
    if epilogue == "relu":
        want = np.maximum(want, 0)
    da, db = dev.put(_laid_out(a, layout[0] == "t")), dev.put(_laid_out(b, layout[1] == "t"))
    dbias = None if bias is None else dev.put(bias)
    out = tiled.product(da, db, dbias, epilogue == "relu")
    np.testing.assert_array_equal(dev.get(out), want)
    dev_out = dev.put(np.full((m, n), 7, dtype))
    assert tiled.product(da, db, dbias, epilogue == "relu", out=dev_out) is dev_out
    np.testing.assert_array_equal(dev.get(dev_out), want)
    off = dev.put(np.full(m * n + 1, 7, dtype))[1:].reshape(m, n)
    tiled.product(da, db, dbias, epilogue == "relu", out=off)
    np.testing.assert_array_equal(dev.get(off), want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", GEMM_SHAPES + [(0, 70, 100)])
@pytest.mark.parametrize("gated,layout", [("a", "nn"), ("b", "nn"), ("a", "tt"), ("b", "tt")])
def test_tiled_product_through_a_gate_with_column_sums(dev, monkeypatch, dtype, m, n, k, gated, layout):
    """A ReLU layer's backward in kernels/gemm.cu: the product of A·[gate > 0] (or of A by B·[gate > 0]), the gate
    read at the operand's own index, and B's column sums as read, Σ_l B(l, j), against NumPy, bit for bit (small
    integers). The gated operand given transposed is read as a C-contiguous copy, as its gate is; the other keeps its
    layout. Gate values of exactly 0 close it (> 0, as the ReLU); a NaN stays NaN through a closed gate (ḡ·0, as
    relu_bwd). No rows (m = 0: a layer of no inputs) still sums B's columns, split into slices. Launched twice: the
    column sums of split launches are added by the last block of each tile, which the counts must find again."""
    monkeypatch.setattr(tiled, "MIN_SLICE", 16)
    rng = np.random.default_rng(m * 1000 + n + k + 7)
    a = rng.integers(-4, 5, (m, k)).astype(dtype)
    b = rng.integers(-4, 5, (k, n)).astype(dtype)
    operand = a if gated == "a" else b
    gate = rng.integers(-1, 2, operand.shape).astype(dtype)  # -1, 0, 1: closed, closed, open
    if operand.size:
        operand[0, 0], gate[0, 0] = np.nan, -1
    ga = a * (gate > 0) if gated == "a" else a
    gb = b * (gate > 0) if gated == "b" else b
    want, want_sums = _product(ga, gb).astype(dtype), gb.astype(np.float64).sum(axis=0).astype(dtype)
    da, db = dev.put(_laid_out(a, layout[0] == "t")), dev.put(_laid_out(b, layout[1] == "t"))
    dgate = dev.put(_laid_out(gate, layout[0 if gated == "a" else 1] == "t"))
    for _ in range(2):
        sums = dev.put(np.full(n, 7, dtype))
        out = tiled.product(da, db, b_sums=sums, **{f"gate_{gated}": dgate})
        np.testing.assert_array_equal(dev.get(out), want)
        np.testing.assert_array_equal(dev.get(sums), want_sums)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", TUNED_SHAPES)
def test_every_split_a_tuned_product_may_take_gives_the_same_product(dev, monkeypatch, dtype, m, n, k):
    """MINIVAE_GEMM_TUNE=1 times each split of ``tiled.splits`` and keeps the fastest: each must be the product, bit for
    bit on small integers, and the column sums, gated: 1 to 7 slices here, of 200 values down to 32 (the last of 8),
    ``split``'s guess of 3 among them."""
    rng = np.random.default_rng(k + n)
    a = rng.integers(-4, 5, (m, k)).astype(dtype)
    b = rng.integers(-4, 5, (k, n)).astype(dtype)
    gate = rng.integers(-1, 2, (k, n)).astype(dtype)
    gb = b * (gate > 0)
    cuts = tiled.splits(m, n, k, a.itemsize)
    assert [s for s, _ in cuts] == [3, 1, 2, 4, 7]
    da, db, dgate = dev.put(a), dev.put(b), dev.put(gate)
    for cut in cuts:
        monkeypatch.setattr(tiled, "split", lambda *shape, cut=cut: cut)
        sums = dev.put(np.full(n, 7, dtype))
        out = tiled.product(da, db, gate_b=dgate, b_sums=sums)
        np.testing.assert_array_equal(dev.get(out), _product(a, gb).astype(dtype), err_msg=str(cut))
        np.testing.assert_array_equal(dev.get(sums), gb.sum(axis=0), err_msg=str(cut))


@pytest.mark.parametrize("go", [1, 0])
def test_the_timing_hold_waits_for_go_and_gives_up_after_its_cycles(dev, go):
    """kernels/timing.cu's hold: with go set it returns at once and says nothing; with go never set it gives up after
    its cycles (10⁶: under a millisecond on a GPU, a millisecond in the emulation's nanoseconds) and says it timed
    out. Nothing else written."""
    flag, timed_out = dev.put(np.array([go], np.uint32)), dev.put(np.array([0], np.uint32))
    timing.hold(flag, timed_out, 10 ** 6)
    assert dev.get(timed_out).tolist() == [1 - go] and dev.get(flag).tolist() == [go]


@pytest.mark.parametrize("dtype", DTYPES)
def test_tiled_product_of_real_values_is_within_the_accumulations_bound(dev, dtype):
    """A product of normal values, 3×2 tiles in 4 slices: each value within k·ε·(|A|·|B|) of the float64 product, the
    bound of any order of float summation (a float32 product accumulated in float16, or a term lost, is far out)."""
    m, n, k = 100, 70, 300
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    got = dev.get(tiled.product(dev.put(a), dev.put(b)))
    exact = _product(a, b)
    bound = k * np.finfo(dtype).eps * _product(np.abs(a), np.abs(b))
    assert tiled.split(m, n, k, a.itemsize)[0] > 1
    assert (np.abs(got - exact) <= bound).all()
