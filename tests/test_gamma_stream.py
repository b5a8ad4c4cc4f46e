"""Gamma draws on their per-element stream (minivae/random.py, "Stream layout"): the NumPy reference against the stream
re-derived by hand (tests/kernel_cases_gamma.py), each element a function of (seed, counter + i, α_i) alone, the
draws against the exact CDF (mpmath), step plans replaying Gamma and Beta rsamples as the eager steps, the
launchers' arguments, and a Gamma rsample and its backward on the device as one launch each with no copy to the
host (the strict stand-in for CuPy and the host emulation of kernels/gamma.cu)."""
import re

import numpy as np
import pytest

import minivae as mv
from minivae._backend import use_cuda_kernels, use_numba
from minivae._gpu import gamma as gpu_gamma
from minivae._gpu import loader
from minivae.distributions import Beta, Dirichlet, Gamma
from minivae.distributions.gamma import GAMMA_ROUNDS, standard_gamma_draws
from minivae.ops import gamma as ops_gamma
from minivae.random import Generator
from tests.distributions.gof import KS_999, ks_statistic
from tests.kernel_cases_gamma import ALPHAS, THIRD_ROUND, assert_draws_close, draw_by_hand, draws_by_hand
from tests.test_gpu_launchers import Recorder


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_reference_draws_are_the_stream_by_hand(dtype):
    """distributions/gamma.py's array rounds against each element's rounds in Python floats: within the libms'
    bound (NumPy's SIMD log and exp and glibc's differ in the last bits), for 1000 draws of α 10⁻³ … 10³ and for
    elements accepted only in their third round."""
    seed, counter = 2 ** 40 + 7, 2 ** 32 - 500
    alpha = np.resize(ALPHAS, 1000).astype(dtype)
    z, rounds, kappa = draws_by_hand(seed, counter, alpha.astype(np.float64))
    rng = Generator(seed, counter)
    with use_numba(False):  # (the arrays, not minivae/_cpu/gamma.py)
        got = standard_gamma_draws(rng, alpha, (1000,), dtype)
    assert rng.counter == counter + 1000 and got.dtype == dtype  # one block a value
    assert_draws_close(got, np.maximum(z.astype(dtype), np.finfo(dtype).tiny), kappa, dtype)
    assert (rounds >= 1).sum() >= 10
    for block, a in THIRD_ROUND:
        z, r, kappa = draw_by_hand(seed, block, a)
        with use_numba(False):
            got = standard_gamma_draws(Generator(seed, block), np.array([a], dtype), (1,), dtype)
        assert r == 2
        assert_draws_close(got, np.maximum(np.array([z]).astype(dtype), np.finfo(dtype).tiny), np.array([kappa]), dtype)


@pytest.mark.parametrize("numba", [False, True])
def test_an_element_depends_on_its_block_and_concentration_alone(numba):
    """Drawn among 40 others, alone at its own counter, or beside other concentrations: the same value (the arrays'
    rounds, and minivae/_cpu/gamma.py's loops)."""
    if numba:
        pytest.importorskip("numba")
    with use_numba(numba):
        _one_element_alone()


def _one_element_alone():
    alpha = np.resize(ALPHAS, 40)
    together = standard_gamma_draws(Generator(5, 100), alpha, (40,), np.float64)
    alone = [standard_gamma_draws(Generator(5, 100 + i), alpha[i:i + 1], (1,), np.float64)[0] for i in range(40)]
    np.testing.assert_array_equal(together, alone)
    others = np.where(np.arange(40) % 2, alpha, alpha[::-1])
    mixed = standard_gamma_draws(Generator(5, 100), others, (40,), np.float64)
    np.testing.assert_array_equal(mixed[1::2], together[1::2])


@pytest.mark.parametrize("alpha", [0.01, 0.5, 1.0, 3.7, 100.0])
def test_gamma_draws_follow_the_exact_cdf(alpha):
    """Kolmogorov–Smirnov distance of 2000 float64 draws from P(α, x), the regularized lower incomplete gamma function
    of mpmath, below KS_999/√n (a correct sampler fails with probability 0.001, tests/distributions/gof.py)."""
    mpmath = pytest.importorskip("mpmath")
    z = standard_gamma_draws(Generator(21), np.array(alpha), (2000,), np.float64)
    cdf = np.vectorize(lambda x: float(mpmath.gammainc(alpha, 0, x, regularized=True)), otypes=[np.float64])
    d = ks_statistic(z, cdf)
    assert np.sqrt(z.size) * d < KS_999, d


def test_the_kernel_s_constants_are_the_formulas():
    """kernels/gamma.cuh's constants: the rounds, the terms and checks of the gradient, ψ's asymptotic terms."""
    text = (loader.KERNELS_DIR / "gamma.cuh").read_text()
    define = dict(re.findall(r"#define (GAMMA_\w+) (\S+)", text))
    assert int(define["GAMMA_ROUNDS"]) == GAMMA_ROUNDS
    assert (int(define["GAMMA_SERIES_TERMS"]), int(define["GAMMA_FRACTION_LEVELS"]), int(define["GAMMA_CHECK_EVERY"])) \
        == (ops_gamma.SERIES_TERMS, ops_gamma.FRACTION_LEVELS, ops_gamma.CHECK_EVERY)
    assert float(define["GAMMA_TOLERANCE"]) == ops_gamma.TOLERANCE and float(define["GAMMA_ONE_THIRD"]) == 1 / 3
    assert float(define["GAMMA_TWO_PI_FACTOR"]) == np.pi
    terms = re.search(r"const double terms\[14\] = \{([^}]*)\}", text)[1]
    b = ops_gamma.bernoulli(2 * ops_gamma.ASYMPTOTIC_TERMS + 2)
    assert [float(v) for v in terms.split(",")] == [float(b[2 * k] / (2 * k)) for k in range(1, 15)]
    assert (float(define["GAMMA_TEMME_FROM"]), float(define["GAMMA_TEMME_WIDTH"])) == (ops_gamma.TEMME_FROM, ops_gamma.TEMME_WIDTH)
    assert (int(define["GAMMA_TEMME_ORDERS"]), int(define["GAMMA_TEMME_DEGREE"]), int(define["GAMMA_TEMME_RATIO_TERMS"])) \
        == (ops_gamma.TEMME_ORDERS, ops_gamma.TEMME_DEGREE, ops_gamma.TEMME_RATIO_TERMS)
    ratio, b, gstar = ops_gamma.temme_coefficients()
    for name, want in [("ratio", ratio), ("b", [v for row in b for v in row]), ("gstar", gstar)]:
        table = re.search(rf"const double {name}\[[^=]*= \{{(.*?)\}};", text, re.S)[1]
        assert [float(v) for v in table.replace("{", "").replace("}", "").split(",")] == want, name


# ---- step plans ----------------------------------------------------------------------------------
def _replays(make, replayed):
    """α after three SGD steps on a loss of rsample(α) (eager, or recorded once and replayed twice)."""
    from minivae.optim import SGD
    from tests.test_plan import three_steps
    alpha = mv.tensor(np.array([0.3, 2.0, 9.0]), requires_grad=True)
    opt, rng = SGD([alpha], lr=1e-2), Generator(4)

    def loss_fn(_):
        return (make(alpha, rng) * mv.tensor(np.linspace(-1, 1, 3))).sum()
    three_steps(opt, loss_fn, replayed)
    return alpha.numpy(), rng.counter


@pytest.mark.parametrize("family", ["Gamma", "Beta", "Dirichlet"])
def test_plans_replay_gamma_family_rsamples_as_the_eager_steps(family):
    """Each replay draws the next values (the counter moves by the draws' blocks, one a value) and differentiates
    them as the eager step: the same α, bit for bit."""
    make = {"Gamma": lambda a, rng: Gamma(a, 2.0).rsample((5,), rng=rng),
            "Beta": lambda a, rng: Beta(a, a[::-1] + 0.5).rsample((5,), rng=rng),
            "Dirichlet": lambda a, rng: Dirichlet(mv.ops.stack([a, a + 1], axis=-1)).rsample((5,), rng=rng)[..., 0]}[family]
    eager, eager_counter = _replays(make, False)
    assert eager_counter == 3 * 15 * (2 if family != "Gamma" else 1)
    replayed, counter = _replays(make, True)
    np.testing.assert_array_equal(replayed, eager)
    assert counter == eager_counter


# ---- the launchers ---------------------------------------------------------------------------------
@pytest.fixture
def launches():
    recorder = Recorder()
    with loader.use_module_factory(recorder):
        yield recorder.launches


@pytest.mark.parametrize("alpha_shape, shape, period, copied", [((3,), (5, 3), 3, False), ((1, 3), (2, 3), 3, False),
                                                                 ((), (4,), 1, False), ((3, 1), (3, 4), 12, True),
                                                                 ((2, 3), (2, 3), 6, False)])
def test_the_draw_launcher_reads_alpha_in_place_over_leading_axes(launches, alpha_shape, shape, period, copied):
    alpha = np.ones(alpha_shape, np.float32)
    out = gpu_gamma.standard_gamma_draws(2 ** 64 - 1, 2 ** 63, alpha, shape, np.float64)
    ((source, name, grid, block, args),) = launches
    assert (source, name) == ("gamma.cu", "standard_gamma_draws<float, double>")
    a, p, o, n, seed, counter, shift = args
    assert type(p) is np.int64 and p == period and a.size == period and a.flags.c_contiguous
    assert np.shares_memory(a, alpha) != copied
    assert o is out and out.shape == shape and out.dtype == np.float64 and type(n) is np.int64 and n == out.size
    assert type(seed) is np.uint64 and seed == 2 ** 64 - 1 and type(counter) is np.uint64 and counter == 2 ** 63
    assert shift.dtype == np.uint64 and shift.shape == (1,) and grid == (1,) and block == (256,)


def test_the_gradient_launcher_packs_z_s_dtype_and_no_launch_for_nothing(launches):
    alpha = np.ones((3,), np.float32)
    z = np.broadcast_to(np.ones(3, np.float32), (4, 3))
    g = np.ones((4, 3), np.float32)
    gx = gpu_gamma.standard_gamma_grad(alpha, z, g)
    ((source, name, grid, block, args),) = launches
    assert (source, name) == ("gamma.cu", "standard_gamma_grad<float>")
    a, p, zc, gc, out, n = args
    assert np.shares_memory(a, alpha) and p == 3 and type(p) is np.int64 and zc.flags.c_contiguous and zc.size == 12
    assert out is gx and gx.shape == (4, 3) and gx.dtype == np.float32 and type(n) is np.int64 and n == 12
    gpu_gamma.standard_gamma_draws(0, 0, alpha, (0, 3), np.float32)
    assert len(launches) == 1  # an empty draw launches nothing


def test_the_launchers_refuse_other_dtypes(launches):
    with pytest.raises(TypeError, match="standard_gamma_draws: the CUDA kernels take float32 or float64, not float16"):
        gpu_gamma.standard_gamma_draws(0, 0, np.ones(3, np.float32), (3,), np.float16)


# ---- on the device ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_gamma_rsample_and_its_backward_on_the_device_are_one_launch_each_and_copy_nothing(dtype):
    """Gamma(α, β).rsample on "cuda" (the strict stand-in for CuPy, kernels/gamma.cu through the host emulation): the
    draw one launch of standard_gamma_draws, α's gradient one of standard_gamma_grad, nothing copied to the host (the
    array formula copied pending.size every round and bool(any(…)) every 25 terms); the values the CPU's to the
    kernels' bound (tests/kernel_cases_gamma.py)."""
    host = pytest.importorskip("tests.cuda_host.host")
    if host.compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from tests.strict_array import describe, emulating, record
    from tests.test_launch_count import launch_count, names
    alpha0 = np.array([0.2, 1.0, 3.7, 40.0])
    out = {}
    with use_numba(False), emulating():
        for device in ("cpu", "cuda"):
            alpha = mv.tensor(alpha0, device=device, dtype=dtype, requires_grad=True)
            with use_cuda_kernels(True), loader.use_module_factory(host.module_factory()), \
                    launch_count.counting() as launched, record() as log:
                z = Gamma(alpha, 1.0).rsample((3,), rng=Generator(8))
                z.backward(mv.tensor(np.ones((3, 4)), device=device, dtype=dtype))
            if device == "cuda":
                assert log == [], describe(log)
                kernels = sorted(k for k in names(launched) if k.startswith("kernel "))
                assert kernels == ["kernel standard_gamma_draws", "kernel standard_gamma_grad"], kernels
            out[device] = z.numpy(), alpha.grad if device == "cpu" else alpha.grad.get()
    (cz, cg), (gz, gg) = out["cpu"], out["cuda"]
    np.testing.assert_allclose(gz, cz, rtol=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(gg, cg, rtol=1e-5 if dtype == np.float32 else 1e-12)


# ---- the Numba kernels -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.filterwarnings("ignore:overflow")  # (the formula's fraction side of series elements, not selected)
def test_the_numba_kernels_are_the_stream_and_the_formula_element_by_element(dtype):
    """minivae/_cpu/gamma.py: the draws against the stream by hand and the gradient against the formula run on each
    element alone, within the kernel cases' bounds (tests/kernel_cases_gamma.py: with glibc's libm, bit for bit), the
    threaded build equal to the serial one; and the ops take them when Numba is on."""
    pytest.importorskip("numba")
    from minivae._cpu import gamma as cpu_gamma
    from tests.kernel_cases_gamma import GRAD_ULPS, gradient_grid, gradient_scale
    seed, counter = 2 ** 40 + 7, 2 ** 32 - 500
    alpha = np.resize(ALPHAS, 300).astype(dtype)
    z, _, kappa = draws_by_hand(seed, counter, alpha.astype(np.float64))
    want = np.maximum(z.astype(dtype), np.finfo(dtype).tiny)
    got = cpu_gamma.standard_gamma_draws(seed, counter, alpha, (300,), dtype)
    assert got.dtype == dtype
    assert_draws_close(got, want, kappa, dtype)
    threaded = np.empty_like(got)
    cpu_gamma._draws.parallel(alpha, np.int64(300), threaded, np.uint64(seed), np.uint64(counter),
                              dtype(np.finfo(dtype).tiny))
    np.testing.assert_array_equal(threaded, got)
    a, v = (x.astype(dtype) for x in gradient_grid(dtype))
    gx = cpu_gamma.standard_gamma_grad(a, v, np.ones_like(v))
    a64, v64 = a.astype(np.float64), v.astype(np.float64)
    each = np.array([ops_gamma.standard_gamma_grad(np, a64[i:i + 1], v64[i:i + 1])[0] for i in range(v.size)])
    inside = v64 > 0
    np.testing.assert_array_equal(gx[~inside], 0)
    want = each[inside].astype(dtype).astype(np.float64)
    bound = GRAD_ULPS * 2.0 ** -52 * gradient_scale(a64[inside], v64[inside])
    if dtype == np.float32:
        bound = bound + np.spacing(np.abs(want).astype(np.float32))
    assert (np.abs(gx[inside] - want) <= bound).all()
    for numba in (True, False):  # through the distributions and the op's VJP, on both dispatch paths
        with use_numba(numba):
            conc = mv.tensor(np.array([0.2, 1.0, 3.7], dtype), requires_grad=True)
            sample = Gamma(conc, 1.0).rsample((4,), rng=Generator(seed, counter))
            sample.sum().backward()
            if numba:
                fused_sample, fused_grad = sample.numpy(), conc.grad
    z, _, kappa = draws_by_hand(seed, counter, np.tile(np.array([0.2, 1.0, 3.7], dtype).astype(np.float64), 4))
    assert_draws_close(fused_sample.ravel(), np.maximum(z.astype(dtype), np.finfo(dtype).tiny), kappa, dtype)
    assert_draws_close(sample.numpy().ravel(), fused_sample.ravel(), kappa, dtype)
    np.testing.assert_allclose(fused_grad, conc.grad, rtol=1e-12 if dtype == np.float64 else 1e-6)
