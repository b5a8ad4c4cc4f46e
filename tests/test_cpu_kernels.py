"""Each fused Numba kernel against the NumPy formula it implements: values and gradients, float32
and float64, over shapes with one row, K = 1, odd K and large K. Skipped without Numba."""
import math
import os

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minivae as mv
from minivae import ops
from minivae._backend import use_numba
from minivae.optim import SGD, Adam, AdamW
from minivae.ops import special
from minivae.random import Generator
from tests.test_special import ULP_BOUND, erfinv_inputs, float64_inputs, ulps

pytest.importorskip("numba", reason="Numba is not installed: the fused CPU kernels are not in use")

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
row_counts = st.sampled_from([1, 2, 7, 128])
k_values = st.sampled_from([1, 2, 3, 10, 33, 1024])


def both_paths(fn, inputs, upstream):
    """fn's value and input gradients with the fused kernels, then with the NumPy formulas."""
    results = []
    for flag in (True, False):
        with use_numba(flag):
            ts = [mv.tensor(x, requires_grad=True) for x in inputs]
            y = fn(*ts)
            y.backward(upstream)
            results.append((y.data, [t.grad for t in ts]))
    return results


def assert_same(fused, reference, dtype, grad_scale=0.0):
    """Values to TOL; gradients to TOL plus 8 ulps of ``grad_scale``, the natural size of the
    gradient where the VJP cancels (softmax's y(ḡ − Σḡy)/τ at nearly one-hot y: both
    implementations store y in ``dtype``, and 1 − y_max is then known only to an ulp)."""
    (y1, g1), (y0, g0) = fused, reference
    assert y1.dtype == y0.dtype == dtype
    np.testing.assert_allclose(y1, y0, **TOL[dtype])
    for a, b in zip(g1, g0):
        assert a.dtype == dtype
        tol = dict(TOL[dtype], atol=TOL[dtype]["atol"] + 8 * np.finfo(dtype).eps * grad_scale)
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", [ops.softmax, ops.log_softmax])
@given(rows=row_counts, k=k_values, tau=st.sampled_from([1e-3, 0.5, 1.0, 3.0, 1e3]), seed=st.integers(0, 2**16))
def test_softmax_kernels_match_the_reference(op, dtype, rows, k, tau, seed):
    rng = np.random.default_rng(seed)
    x = (3 * rng.normal(size=(rows, k))).astype(dtype)
    g = rng.normal(size=(rows, k)).astype(dtype)
    fused, reference = both_paths(lambda t: op(t, temperature=tau), [x], g)
    assert_same(fused, reference, dtype, grad_scale=np.abs(g).max() / tau)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_kernel_near_one_hot_at_small_temperature(dtype):
    """The example hypothesis's long profile found: τ = 1e-3, rows of 33, float32."""
    rng = np.random.default_rng(0)
    x = (3 * rng.normal(size=(7, 33))).astype(dtype)
    g = rng.normal(size=(7, 33)).astype(dtype)
    fused, reference = both_paths(lambda t: ops.softmax(t, temperature=1e-3), [x], g)
    assert_same(fused, reference, dtype, grad_scale=np.abs(g).max() / 1e-3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_kernels_batched_and_extreme(dtype):
    x = np.array([[[-1e4, 0.0, 1e4], [1e4, 1e4, -1e4]], [[0.0, 0.0, 0.0], [5.0, -5.0, 1.0]]], dtype)
    g = np.random.default_rng(0).normal(size=x.shape).astype(dtype)
    for op in (ops.softmax, ops.log_softmax):
        fused, reference = both_paths(lambda t, op=op: op(t, temperature=1e-3), [x], g)
        assert np.all(np.isfinite(fused[0])) and np.all(np.isfinite(fused[1][0]))
        assert_same(fused, reference, dtype)


def test_softmax_on_another_axis_uses_the_reference():
    x = np.random.default_rng(0).normal(size=(4, 5))
    g = np.random.default_rng(1).normal(size=(4, 5))
    assert_same(*both_paths(lambda t: ops.softmax(t, axis=0, temperature=0.7), [x], g), np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", [ops.bce_with_logits, ops.bernoulli_log_prob])
@given(shape=st.sampled_from([(1,), (1, 1), (3, 7), (128, 784)]), seed=st.integers(0, 2**16))
def test_bce_kernel_matches_the_reference(dtype, op, shape, seed):
    """The loss, and negated (the Bernoulli log-likelihood), against the formula."""
    rng = np.random.default_rng(seed)
    x = (4 * rng.normal(size=shape)).astype(dtype)
    x.flat[0] = 1e4 if x.size > 1 else x.flat[0]
    t = rng.uniform(size=shape).astype(dtype)
    g = rng.normal(size=shape).astype(dtype)
    assert_same(*both_paths(op, [x, t], g), dtype)


@pytest.mark.parametrize("op", [ops.bce_with_logits, ops.bernoulli_log_prob])
@pytest.mark.parametrize("int_dtype", [np.int64, np.uint8, np.bool_])
def test_bce_kernel_takes_integer_targets_in_the_logits_dtype(op, int_dtype, monkeypatch):
    """Integer targets are cast to the logits' dtype before the dispatch: float32 logits with int64 data take the
    kernel (they took NumPy's float64 formula), with the values and gradient of the same targets as floats."""
    from minivae._cpu import bce
    calls, kernel = [], bce.bce_fwd
    monkeypatch.setattr(bce, "bce_fwd", lambda x, t, sign: calls.append(t.dtype) or kernel(x, t, sign))
    rng = np.random.default_rng(0)
    x, t = (4 * rng.normal(size=(3, 7))).astype(np.float32), rng.integers(0, 2, (3, 7)).astype(int_dtype)
    g = rng.normal(size=(3, 7)).astype(np.float32)
    results = []
    with use_numba(True):
        for targets in (t, t.astype(np.float32)):
            logits = mv.tensor(x, requires_grad=True)
            y = op(logits, mv.tensor(targets))
            y.backward(g)
            results.append((y.data, logits.grad))
    assert calls == [np.float32, np.float32]
    (y, gx), (want, want_gx) = results
    assert y.dtype == gx.dtype == np.float32
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(gx, want_gx)


def test_bce_float32_kernel_is_within_an_ulp_of_the_exact_value():
    """The float32 kernel against float64 libm, rounded once: an independent reference (NumPy's float32
    formula itself is off by many ulps where terms cancel). The last eight: max(x, 0) − x·t = 0, so that the
    loss is log1p(e^{−|x|}) alone, below 1 + an ulp."""
    from minivae._cpu.bce import bce_fwd
    rng = np.random.default_rng(0)
    far = [30.0, 40.0, 60.0, 100.0]
    x = np.concatenate([5 * rng.normal(size=20000), rng.uniform(-120, 120, 20000),
                        [0.0, -0.0, 1e-30, 1e4, -1e4, 88.7, -88.7, 103.9, -103.9, 110.0, -110.0, 3e38, -3e38],
                        far, np.negative(far)])
    x = x.astype(np.float32)
    t = rng.uniform(size=x.size).astype(np.float32)
    t[:1000] = np.round(t[:1000])
    t[-8:] = [1, 1, 1, 1, 0, 0, 0, 0]
    loss, dx = bce_fwd(x, t)
    xd, td = x.astype(np.float64), t.astype(np.float64)
    e = np.exp(-np.abs(xd))
    exact_loss = np.maximum(xd, 0) - xd * td + np.log1p(e)
    exact_dx = np.where(xd >= 0, 1 / (1 + e), e / (1 + e)) - td
    for got, exact in ((loss, exact_loss), (dx, exact_dx)):
        rounded = exact.astype(np.float32)
        assert np.all(np.abs(got.astype(np.float64) - rounded) <= np.spacing(np.abs(rounded)))


def test_bce_kernel_propagates_nan():
    from minivae._cpu.bce import bce_fwd
    for dtype in (np.float32, np.float64):
        loss, dx = bce_fwd(np.array([np.nan, 2.0], dtype), np.array([0.5, 0.5], dtype))
        assert np.isnan(loss[0]) and np.isnan(dx[0]) and np.isfinite(loss[1]) and np.isfinite(dx[1])


def test_fused_ops_pass_gradcheck():
    rng = np.random.default_rng(3)
    with use_numba(True):
        assert mv.gradcheck(lambda t: ops.log_softmax(t, temperature=0.4), [rng.normal(size=(3, 5))])
        assert mv.gradcheck(ops.bce_with_logits, [rng.normal(size=(2, 3)), rng.uniform(size=(2, 3))])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [
    lambda ps: Adam(ps, lr=1e-2), lambda ps: SGD(ps, lr=1e-2, momentum=0.9), lambda ps: SGD(ps, lr=1e-2),
    lambda ps: SGD(ps, lr=1e-2, momentum=0.9, dampening=0.3, weight_decay=0.1),
    lambda ps: SGD(ps, lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True),
    lambda ps: SGD(ps, lr=1e-2, dampening=0.5, maximize=True),
    lambda ps: Adam(ps, lr=1e-2, weight_decay=0.1, maximize=True, amsgrad=True),
    lambda ps: AdamW(ps, lr=1e-2, weight_decay=0.5), lambda ps: AdamW(ps, lr=1e-2, amsgrad=True, maximize=True)],
    ids=["adam", "sgd-momentum", "sgd", "sgd-damped-decay", "sgd-nesterov-decay-maximize", "sgd-damping-alone-maximize",
         "adam-l2-maximize-amsgrad", "adamw", "adamw-amsgrad-maximize"])
def test_optimizer_kernels_match_the_reference(dtype, make):
    """Bit for bit: the kernels compute in the parameters' dtype with the NumPy formula's rounding; the
    optimizer's state too (a checkpoint must not depend on whether Numba is installed). With every option
    (weight decay, maximize, SGD's dampening (at the first step too) and Nesterov, AdamW, amsgrad)."""
    from minivae.nn import MLP
    params, states = {}, {}
    for flag in (True, False):
        with use_numba(flag):
            model = MLP((300, 400, 5), rng=Generator(0), dtype=dtype)
            opt = make(model.parameters())
            x = mv.tensor(np.random.default_rng(1).normal(size=(8, 300)).astype(dtype))
            for _ in range(3):
                opt.zero_grad()
                (model(x) ** 2).mean().backward()
                opt.step()
            params[flag] = [p.data.copy() for p in model.parameters()]
            states[flag] = opt.state_dict()
    assert states[True].keys() == states[False].keys()
    for key in states[True]:
        np.testing.assert_array_equal(states[True][key], states[False][key], err_msg=key)
    for a, b in zip(params[True], params[False]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("log", [False, True])
def test_both_kernel_builds_agree(dtype, log):
    """Bit for bit, forward and backward: the reductions whose order LLVM chooses (vector.sum_any_order)
    must choose it alike in both builds."""
    from minivae._cpu import softmax as kernels
    rng = np.random.default_rng(0)
    x, g = (rng.normal(size=(64, 333)).astype(dtype) for _ in range(2))
    outs = {}
    for build in ("serial", "parallel"):
        y, dx = np.empty_like(x), np.empty_like(x)
        getattr(kernels._fwd, build)(x, 2.0, log, y)
        getattr(kernels._bwd, build)(y, g, 2.0, log, dx)
        outs[build] = y, dx
    np.testing.assert_array_equal(outs["serial"], outs["parallel"])


def each(scalar):
    """A Numba loop applying ``scalar`` (an inlined helper of minivae._cpu) to each element of a 1-d array,
    compiled as the kernels are (error_model="numpy"), into float64."""
    import numba

    @numba.njit(error_model="numpy")
    def run(a):
        out = np.empty(a.size)
        for i in range(a.size):
            out[i] = scalar(a[i])
        return out
    return run


def exactly_rounded(values, method):
    """Decimal's ``method`` ("exp", "ln") of each float64 value to 40 digits, rounded once to float64: an
    independent reference for the kernels' own exp and log."""
    import decimal
    with decimal.localcontext(decimal.Context(prec=40)):
        return np.array([float(getattr(decimal.Decimal(v), method)()) for v in values])


def test_a_changed_helper_reaches_the_cached_kernels(tmp_path):
    """Numba's on-disk cache checks only the file that defines a kernel: without the sources' digest in each
    build's name, a kernel cached before an edit of vector.py would go on running the old exp."""
    import shutil
    import subprocess
    import sys

    import minivae
    shutil.copytree(os.path.dirname(minivae.__file__), tmp_path / "minivae",
                    ignore=shutil.ignore_patterns("__pycache__"))
    code = ("import numpy; from minivae._cpu.softmax import softmax_fwd; "
            "print(softmax_fwd(numpy.array([[0.0, 1.0]]), 1.0, log=False)[0, 0])")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def first_probability():
        return float(subprocess.check_output([sys.executable, "-c", code], env=env, cwd=tmp_path))
    assert first_probability() == pytest.approx(1 / (1 + np.e), rel=1e-15)
    vector = tmp_path / "minivae" / "_cpu" / "vector.py"
    vector.write_text(vector.read_text().replace("    p = C13\n", "    p = C13\n    r = 2.0 * r\n"))
    assert first_probability() != pytest.approx(1 / (1 + np.e), rel=1e-6)


def test_vector_exp_is_within_an_ulp_of_the_exact_value():
    """minivae._cpu.vector.exp against e^a to 40 digits (Python's decimal), rounded once: an independent
    reference, over float64's whole range: subnormal results, 0 and inf past the ends, exactly 1 at 0, NaN."""
    from minivae._cpu.vector import exp
    run = each(exp)
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.uniform(-746, 710, 2000), rng.uniform(-1, 1, 1000), -np.exp(rng.uniform(-40, 6, 1000)),
                        rng.uniform(-745.2, -708, 500), rng.uniform(709, 709.8, 200),
                        [-745.2, -745.0, -708.4, -0.5 * np.log(2), 0.5 * np.log(2), -1e-300, 709.78, 709.79, 1e4, -1e4]])
    got, exact = run(a), exactly_rounded(a, "exp")
    finite = np.isfinite(exact)
    assert np.all(np.abs(got[finite] - exact[finite]) <= np.spacing(exact[finite]))
    assert np.all(got[~finite] == np.inf) and 0 < (~finite).sum() < 300
    assert np.any((0 < exact) & (exact < np.finfo(np.float64).tiny)) and np.any(exact == 0)
    edges = run(np.array([0.0, -0.0, np.nan, -np.inf, np.inf, -1e300, 1e300]))
    assert edges[0] == edges[1] == 1.0 and np.isnan(edges[2]) and edges[3] == edges[5] == 0 and edges[4] == edges[6] == np.inf


def test_vector_log_is_within_an_ulp_of_the_exact_value():
    """minivae._cpu.vector.log against ln x to 40 digits (Python's decimal), rounded once, over positive normal
    numbers: every binade, both sides of √2 (where its reduction changes k), and next to 1 (where log x ≈ x − 1)."""
    from minivae._cpu.vector import log
    run = each(log)
    rng = np.random.default_rng(0)
    tiny, big = np.finfo(np.float64).tiny, np.finfo(np.float64).max
    x = np.concatenate([np.exp(rng.uniform(np.log(tiny), np.log(big), 2000)), rng.uniform(0.5, 2, 1000),
                        1 + rng.uniform(-1e-6, 1e-6, 500), 1 - 2.0 ** -rng.integers(1, 34, 500),
                        [tiny, big, 0.5, 2.0, np.sqrt(0.5), np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 0),
                         np.nextafter(1.0, 0), np.nextafter(1.0, 2), 2.0 ** -33, 23.0]])
    got, exact = run(x), exactly_rounded(x, "ln")
    assert np.all(np.abs(got - exact) <= np.spacing(np.abs(exact)))
    assert run(np.array([1.0]))[0] == 0.0


def test_gumbel_noise_of_a_word_is_the_generator_s_formula():
    """The kernels' g = −log(−log(1 − u)) (1 − u exact, vector.log) against Generator.gumbel's
    −log(−log1p(−u)) in NumPy, over random words and both ends of the 32-bit range. Each side's y = −log(1 − u)
    is within an ulp, which the outer log turns into an absolute error of an ulp of 1 where y ≈ 1 (g ≈ 0):
    4 ulps of g plus 4 of 1."""
    from minivae._cpu.philox import gumbel_from_word
    run = each(gumbel_from_word)
    w = np.concatenate([np.random.default_rng(0).integers(0, 2**32, 100000), [0, 1, 2, 2**31, 2**32 - 2, 2**32 - 1]])
    w = w.astype(np.uint64)
    u = (w.astype(np.float64) + 0.5) * 2.0 ** -32
    reference = -np.log(-np.log1p(-u))
    eps = np.finfo(np.float64).eps
    np.testing.assert_allclose(run(w), reference, rtol=4 * eps, atol=4 * eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_nan_in_a_row_makes_the_row_nan(dtype):
    """As in the reference, where the row's max is NaN. The kernels' max skips NaN (vector.maxnum); the
    NaN reaches the row through its own term e^{(NaN − max)/τ}, and a hard Gumbel-Softmax sample of the row is NaN."""
    x = np.array([[1.0, np.nan, 3.0, 2.0], [1.0, 2.0, 3.0, 4.0], [np.nan, np.nan, 1.0, np.nan]], dtype)
    g = np.ones_like(x)
    fns = [lambda t: ops.softmax(t, temperature=0.5), lambda t: ops.log_softmax(t, temperature=0.5)] + [
        lambda t, hard=hard: ops.gumbel_softmax(t, Generator(0), temperature=0.5, hard=hard) for hard in (False, True)]
    for fn in fns:
        for (y, (dx,)) in both_paths(fn, [x], g):
            assert np.isnan(y[[0, 2]]).all() and np.isnan(dx[[0, 2]]).all()
            assert np.isfinite(y[1]).all() and np.isfinite(dx[1]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_builds_of_the_elementwise_kernels_agree(dtype):
    from minivae._cpu import adam, bce, sgd
    rng = np.random.default_rng(0)
    x, t = (5 * rng.normal(size=5000)).astype(dtype), rng.uniform(size=5000).astype(dtype)
    outs = [[np.empty_like(x), np.empty_like(x)] for _ in range(2)]
    bce._fwd.serial(x, t, *outs[0], -1.0)
    bce._fwd.parallel(x, t, *outs[1], -1.0)
    np.testing.assert_array_equal(outs[0], outs[1])
    s = dtype
    states = [[a.copy() for a in (x, np.abs(t), t)] for _ in range(2)]
    for build, (p, m, v) in zip((adam._step.serial, adam._step.parallel), states):
        build(p, t, m, v, s(1e-3), s(0.9), s(0.1), s(0.999), s(0.001), s(1e-8), s(0.1), s(0.99), True)
    np.testing.assert_array_equal(states[0], states[1])
    states = [[a.copy() for a in (x, np.abs(t), t, np.abs(x))] for _ in range(2)]
    for build, (p, m, v, max_v) in zip((adam._step_amsgrad.serial, adam._step_amsgrad.parallel), states):
        build(p, t, m, v, max_v, s(1e-3), s(0.9), s(0.1), s(0.999), s(0.001), s(1e-8), s(0.1), s(0.99), True)
    np.testing.assert_array_equal(states[0], states[1])
    states = [[a.copy() for a in (x, t)] for _ in range(2)]
    for build, (p, v) in zip((sgd._step.serial, sgd._step.parallel), states):
        build(p, t, v, s(1e-3), s(0.9), s(0.7), s(0.1), True, True, False)
    np.testing.assert_array_equal(states[0], states[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hard", [False, True])
@given(rows=row_counts, k=k_values, tau=st.sampled_from([1e-3, 0.5, 1.0, 1e3]),
       seed=st.integers(0, 2**64 - 1), counter=st.integers(0, 2**40))
def test_gumbel_softmax_kernel_matches_the_reference(dtype, hard, rows, k, tau, seed, counter):
    """Same (seed, counter) → the same noise in the kernel as Generator(seed, counter).gumbel."""
    rng = np.random.default_rng(seed % 2**32)
    x = (2 * rng.normal(size=(rows, k))).astype(dtype)
    g = rng.normal(size=(rows, k)).astype(dtype)
    fn = lambda t: ops.GumbelSoftmax.apply(t, seed=seed, counter=counter, temperature=tau, hard=hard)  # noqa: E731
    fused, reference = both_paths(fn, [x], g)
    scale = np.abs(g).max() / tau
    if hard:  # a one-ulp difference may flip a near-tie: compare where the soft argmax is clear
        np.testing.assert_array_equal(fused[0].sum(-1), 1)
        agree = (fused[0] == reference[0]).all(-1)
        assert agree.mean() >= 0.99 if rows > 100 else agree.all()
        tol = dict(TOL[dtype], atol=TOL[dtype]["atol"] + 8 * np.finfo(dtype).eps * scale)
        np.testing.assert_allclose(fused[1][0], reference[1][0], **tol)
    else:
        assert_same(fused, reference, dtype, grad_scale=scale)


def test_gumbel_softmax_same_seed_same_sample_as_generator_noise():
    import minivae.functional as F
    logits = np.random.default_rng(0).normal(size=(4, 9))
    rng = Generator(77)
    rng.uniform(3)  # an unaligned counter offset
    expected_rng = Generator(77, rng.counter)
    noise = expected_rng.gumbel((4, 9), np.float64)
    with use_numba(True):
        y = F.gumbel_softmax(mv.tensor(logits), temperature=0.7, rng=rng)
    e = np.exp((logits + noise) / 0.7)
    np.testing.assert_allclose(y.data, e / e.sum(-1, keepdims=True), rtol=1e-12)
    assert rng.counter == expected_rng.counter


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(shape=st.sampled_from([(1,), (1, 1), (3, 7), (128, 20), (300, 300)]), seed=st.integers(0, 2**16))
def test_gaussian_kernels_match_the_reference(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    mu, log_var = rng.normal(size=shape).astype(dtype), rng.uniform(-3, 3, shape).astype(dtype)
    eps, g = rng.normal(size=shape).astype(dtype), rng.normal(size=shape).astype(dtype)
    assert_same(*both_paths(lambda m, v: ops.reparameterize(m, v, eps), [mu, log_var], g), dtype)
    assert_same(*both_paths(ops.kl_standard_normal, [mu, log_var], g), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_kernels_at_extreme_log_variances(dtype):
    """σ = e^{v/2} and e^v past float32's and float64's ranges, both ways (inf, and 0 or a subnormal): as the formula."""
    log_var = np.array([-1e4, -1500.0, -800.0, -200.0, 0.0, 150.0, 800.0, 1500.0, 1e4], dtype)
    mu, eps = np.linspace(-1, 1, log_var.size).astype(dtype), np.linspace(0.5, 2, log_var.size).astype(dtype)
    for fn in (lambda m, v: ops.reparameterize(m, v, eps), ops.kl_standard_normal):
        with np.errstate(over="ignore", invalid="ignore"):
            (y1, _), (y0, _) = both_paths(fn, [mu, log_var], np.ones_like(mu))
        np.testing.assert_array_equal(np.isinf(y1), np.isinf(y0))
        np.testing.assert_allclose(y1[np.isfinite(y0)], y0[np.isfinite(y0)], **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(rows=row_counts, k=k_values, seed=st.integers(0, 2**16))
@pytest.mark.parametrize("prior_shape", ["k", "3,k", "rows,1,k", "1,3,k"])
def test_categorical_kl_kernel_matches_the_reference(dtype, rows, k, seed, prior_shape):
    """Against the formula, with the prior's logits (shifted from 0: the kernel normalizes them) read in place
    as rows (one for all, one per latent variable) or written out (a per-example prior)."""
    rng = np.random.default_rng(seed)
    logits = (3 * rng.normal(size=(rows, 3, k))).astype(dtype)
    logits[0, 0, 0] = 1e4  # an extreme logit stays finite
    shape = tuple({"k": k, "rows": rows}.get(n, 1 if n == "1" else 3) for n in prior_shape.split(","))
    prior = (rng.normal(size=shape) + 4).astype(dtype)
    g = rng.normal(size=(rows, 3)).astype(dtype)
    fused, reference = both_paths(lambda t: ops.categorical_kl(t, prior), [logits], g)
    assert np.all(np.isfinite(fused[0])) and np.all(np.isfinite(fused[1][0]))
    assert_same(fused, reference, dtype, grad_scale=np.abs(g).max() * (np.abs(logits).max() + np.abs(prior).max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_categorical_kl_kernel_with_zero_probabilities(dtype):
    """Logits −inf in the posterior and the prior: the kernel's KL and gradients are the formula's, a term of q_k = 0
    is 0 (NaN from 0·(−inf) before) and one of p_k = 0 < q_k is +∞; finite gradients where the KL is finite."""
    inf = np.inf
    logits = np.array([[-inf, 0.0, 1.0], [-inf, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype)
    prior = np.array([[0.0, 0.0, 0.0], [-inf, 1.0, 0.0], [-inf, 0.0, 0.0]], dtype)
    kl = []
    for flag in (True, False):
        with use_numba(flag):
            kl.append(ops.categorical_kl(mv.tensor(logits), mv.tensor(prior)).data)
    np.testing.assert_allclose(kl[0], kl[1], **TOL[dtype])
    assert np.isfinite(kl[0][:2]).all() and kl[0][2] == inf
    g = np.array([0.7, -1.3], dtype)
    fused, reference = both_paths(lambda t, tp: ops.categorical_kl(t, tp), [logits[:2], prior[:2]], g)
    assert_same(fused, reference, dtype)
    assert all(np.isfinite(gr).all() for gr in fused[1])


@pytest.mark.parametrize("name,fn", [
    ("softmax", lambda x, t: ops.softmax(x, temperature=0.5)),
    ("log_softmax", lambda x, t: ops.log_softmax(x)),
    ("gumbel_softmax", lambda x, t: ops.gumbel_softmax(x, Generator(3), temperature=0.5)),
    ("gumbel_softmax_hard", lambda x, t: ops.gumbel_softmax(x, Generator(3), hard=True)),
    ("bce", lambda x, t: ops.bce_with_logits(x, t)),
    ("categorical_kl", lambda x, t: ops.categorical_kl(x, t)),
    ("reparameterize", lambda x, t: ops.reparameterize(x, x * 0.5, t)),
    ("kl_standard_normal", lambda x, t: ops.kl_standard_normal(x, x * 0.5)),
])
def test_float16_takes_the_formula_on_both_paths(name, fn):
    """The kernels are built for float32 and float64: float16 must reach the NumPy formula (the
    same result, in float16), not stop with Numba's bare NotImplementedError."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5)).astype(np.float16)
    t = (rng.random((3, 5)) < 0.5).astype(np.float16)
    if name == "categorical_kl":
        t = np.log(np.full((3, 5), 0.2, np.float16))
    upstream = rng.normal(size=fn(mv.tensor(x), mv.tensor(t)).shape).astype(np.float16)
    (y1, g1), (y0, g0) = both_paths(lambda a: fn(a, mv.tensor(t)), [x], upstream)
    assert y1.dtype == y0.dtype == np.float16
    np.testing.assert_array_equal(y1, y0)
    np.testing.assert_array_equal(g1[0], g0[0])


def test_float16_parameters_take_the_optimizer_formula_on_both_paths():
    params = {}
    for flag in (True, False):
        with use_numba(flag):
            p = mv.tensor(np.linspace(-1, 1, 6).astype(np.float16), requires_grad=True)  # no zero gradient
            opt = Adam([p], lr=1e-2)
            for _ in range(3):
                opt.zero_grad()
                (p * p).sum().backward()
                opt.step()
            params[flag] = p.data.copy()
    assert params[True].dtype == np.float16 and np.isfinite(params[True]).all()
    np.testing.assert_array_equal(params[True], params[False])


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # (x − max x)/τ → −inf is the point
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tau", [1e-300, 1e-320])
def test_temperature_to_zero_is_the_one_hot_limit_on_both_paths(dtype, tau):
    """softmax((x − max x)/τ) → one-hot of the argmax (shared equally by ties) as τ → 0; the
    kernels multiply by 1/τ (inf below 5.6e-309) and float32 rounds τ = 1e-300 to 0: neither may
    turn the limit into 0·inf or 0/0 = NaN."""
    x = np.array([[1.0, 2.0, 3.0], [5.0, 5.0, -1.0]], dtype)
    expected = np.array([[0, 0, 1], [0.5, 0.5, 0]], dtype)
    g = np.array([[0.3, -1.0, 2.0], [1.0, -2.0, 0.5]], dtype)
    grads = []
    for flag in (True, False):
        with use_numba(flag):
            t = mv.tensor(x, requires_grad=True)
            y = ops.softmax(t, temperature=tau)
            np.testing.assert_array_equal(y.data, expected)
            y.backward(g)  # y(ḡ − Σḡy)/τ: 0 at a saturated one-hot, ±(huge or inf) between tied entries
            np.testing.assert_array_equal(t.grad[0], 0)
            assert not np.isnan(t.grad).any() and t.grad[1, 2] == 0
            grads.append(t.grad)
            y = ops.gumbel_softmax(mv.tensor(x), Generator(0), temperature=tau).data
            assert np.isfinite(y).all() and (y.sum(axis=-1) == 1).all() and set(np.unique(y)) <= {0.0, 1.0}
            np.testing.assert_array_equal(y, ops.gumbel_softmax(mv.tensor(x), Generator(0), temperature=tau, hard=True).data)
    # where the limit is ±inf one path may round it to inf and the other stop just below: compare saturated
    np.testing.assert_allclose(*[np.sign(a) * np.minimum(abs(a), np.finfo(dtype).max / 2) for a in grads], rtol=1e-6)


@pytest.mark.parametrize("dtypes", [(np.float32, np.float32, np.float64), (np.float32, np.float64, np.float64),
                                    (np.float64, np.float32, np.float32)])
def test_gaussian_ops_of_mixed_dtypes_take_the_formula_s_dtype_on_both_paths(dtypes):
    """The kernels compute in μ's dtype; the NumPy formula, the specification, promotes (float32 μ with float64 ε is
    float64): mixed dtypes give NumPy's dtype, the sample's that of μ, v and ε and the KL's that of μ and v, with the
    values of the formula on its operands cast to that dtype first (as PyTorch casts an op's operands), with Numba on
    as off."""
    rng = np.random.default_rng(0)
    mu, log_var, eps = (rng.normal(size=(2, 3)).astype(d) for d in dtypes)
    zd, kd = np.result_type(*dtypes), np.result_type(*dtypes[:2])
    z_ref = mu.astype(zd) + np.exp(0.5 * log_var.astype(zd)) * eps.astype(zd)
    m, v = mu.astype(kd), log_var.astype(kd)
    kl_ref = 0.5 * (m * m + np.exp(v) - 1 - v)
    for flag in (True, False):
        with use_numba(flag):
            z = ops.reparameterize(mv.tensor(mu), mv.tensor(log_var), mv.tensor(eps))
            pair = ops.reparameterize_kl(mv.tensor(mu), mv.tensor(log_var), mv.tensor(eps))
            for got, ref in ((z, z_ref), (pair[0], z_ref), (pair[1], kl_ref)):
                assert got.dtype == ref.dtype
                np.testing.assert_array_equal(got.numpy(), ref)


@pytest.mark.parametrize("name,fn", [
    ("softmax", lambda x: ops.softmax(x, temperature=0.5)),
    ("log_softmax", lambda x: ops.log_softmax(x)),
    ("gumbel_softmax", lambda x: ops.gumbel_softmax(x, Generator(3), temperature=0.5)),
    ("gumbel_softmax_kl", lambda x: ops.gumbel_softmax_kl(x, mv.tensor(np.zeros(x.shape[-1:])), Generator(3))[0]),
    ("categorical_kl", lambda x: ops.categorical_kl(x, mv.tensor(np.zeros(x.shape[-1:])))),
])
@pytest.mark.parametrize("shape", [(4, 0), (0, 3), (0, 0)])
def test_empty_inputs_take_the_formula_on_both_paths(name, fn, shape):
    """No rows or rows of no classes: the kernels are skipped (they raised on rows of 0), and the formula gives empty
    results (a KL of 0 for rows of no classes: a sum over none), with gradients of the input's shape."""
    results = []
    for flag in (True, False):
        with use_numba(flag):
            x = mv.tensor(np.zeros(shape), requires_grad=True)
            y = fn(x)
            y.backward(np.ones(y.shape))
            assert x.grad.shape == shape
            results.append(y.numpy())
    np.testing.assert_array_equal(*results)
    assert results[0].shape == (shape[:-1] if name == "categorical_kl" else shape)

def test_the_special_kernels_are_the_formula_to_a_few_ulp_on_both_builds():
    from minivae._cpu import special as fused
    x, y = float64_inputs(), erfinv_inputs()
    z = np.concatenate([1 - y, [0.0, 2.0, 1.0, 1e-300, 5e-324]])
    cases = [("erf", x, lambda v: special.erf_forward(np, v, False)),
             ("erfc", x, lambda v: special.erf_forward(np, v, True)),
             ("erfinv", np.concatenate([y, [1.0, -1.0, 1.5, np.nan, -0.0]]), lambda v: special.erfinv_forward(np, v)),
             ("erfcinv", np.concatenate([z, [-1.0, 2.5, np.nan]]), lambda v: special.erfcinv_forward(np, v))]
    for name, v, formula in cases:
        got, want = getattr(fused, name)(v), formula(v)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        finite = np.isfinite(want)
        np.testing.assert_array_equal(got[~finite], want[~finite], err_msg=name)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want), err_msg=name)  # erf(−0), erfinv(−0)
        # each within ~2.5 ulp of the exact value; the inverses' roots, of erf's moved by the other's error
        assert ulps(got[finite], want[finite]).max() <= ULP_BOUND, name
        kernel = getattr(fused, "_erf" if name in ("erf", "erfc") else "_" + name)
        parallel = np.empty_like(v)
        kernel.parallel(v, parallel, *([name == "erfc", 1.0] if name in ("erf", "erfc") else []))
        np.testing.assert_array_equal(parallel, got, err_msg=name)  # the threaded build computes the same


def erf_erfc_of_each(a):
    """minivae._cpu.vector.erf_erfc of each element of a 1-d float64 array, in a Numba loop as the kernels compile it."""
    import numba

    from minivae._cpu.vector import erf_erfc

    @numba.njit(error_model="numpy")
    def run(a):
        erf, erfc = np.empty(a.size), np.empty(a.size)
        for i in range(a.size):
            erf[i], erfc[i] = erf_erfc(a[i])
        return erf, erfc
    return run(a)


def test_vector_erf_and_erfc_are_within_one_and_two_ulp_of_the_exact_value():
    """minivae._cpu.vector.erf_erfc against mpmath's erf and erfc to 100 bits, the error in ulp of the exact value
    rounded (the subnormal spacing below 2⁻¹⁰²²): over each of its intervals, both sides of every split to an ulp, both
    signs, every binade of x down to the subnormals, and erfc's tail from 26 on, where it falls through the subnormals
    to 0 (below 2⁻¹⁰⁷⁵ from x ≈ 27.23)."""
    mpmath = pytest.importorskip("mpmath")
    rng = np.random.default_rng(9)
    splits = np.array([0.25, 0.84375, 1.25, 1 / 0.35, 6.0, 27.2, 27.25, 28.0])
    exponents = rng.integers(-1074, 0, 400)
    x = np.concatenate([rng.uniform(0, 0.84375, 300), rng.uniform(0.84375, 1.25, 300), rng.uniform(1.25, 1 / 0.35, 300),
                        rng.uniform(1 / 0.35, 6, 300), rng.uniform(6, 26, 100), rng.uniform(26, 27.3, 300),
                        np.ldexp(rng.uniform(0.5, 1, 400), exponents), splits, np.nextafter(splits, 0), np.nextafter(splits, 30)])
    x = np.concatenate([x, -x])
    erf, erfc = erf_erfc_of_each(x)
    with mpmath.workdps(30):
        for name, got, bound in (("erf", erf, 1.0), ("erfc", erfc, 2.0)):
            exact = [getattr(mpmath, name)(mpmath.mpf(v)) for v in x]
            spacing = np.spacing(np.abs(np.array([float(e) for e in exact])))
            err = np.array([float(abs(mpmath.mpf(g) - e)) for g, e in zip(got, exact)]) / spacing
            assert err.max() <= bound, (name, x[err.argmax()], got[err.argmax()], err.max())
    assert np.any((0 < erfc) & (erfc < np.finfo(np.float64).tiny)) and np.any(erfc[x > 0] == 0)
    v = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e300, -1e300, np.finfo(np.float64).max, 5e-324, -5e-324])
    erf, erfc = erf_erfc_of_each(v)
    np.testing.assert_array_equal(erf, [0.0, -0.0, 1.0, -1.0, np.nan, 1.0, -1.0, 1.0, 5e-324, -5e-324])
    np.testing.assert_array_equal(np.signbit(erf), np.signbit(v))
    np.testing.assert_array_equal(erfc, [1.0, 1.0, 0.0, 2.0, np.nan, 0.0, 2.0, 0.0, 1.0, 1.0])


def test_the_special_kernels_vectorize():
    """The loops of erf's kernel and of the inverses' Halley steps compile to vector arithmetic (LLVM IR's fdiv of
    <n x double>) and call no libm erf, erfc, exp, log, log1p or sqrt (nor LLVM's exp and log, libm's calls), which run
    one element at a time (the kernels were 2-16× slower than PyTorch's vectorized erf on the CPU, 14-33× for erfinv)."""
    import re

    import numba

    from minivae._cpu import special as fused
    x = np.linspace(0.1, 0.9, 100)
    # compiled afresh: Numba keeps no IR for what it loads from its cache
    erf, roots = (numba.njit(error_model="numpy")(f) for f in (fused._erf.serial.py_func, fused._roots.py_func))
    erf(x, np.empty_like(x), True, 1.0)
    roots(x, 1 - x, np.empty_like(x), x.size)
    for f, loops in ((erf, 2), (roots, 1)):  # erf's and erfc's loops; the loop of a Halley step
        ir = f.inspect_llvm(f.signatures[0])
        assert not re.search(r"call [^\n]*@(erfc?|exp|log|log1p|sqrt|llvm\.(exp|log)\.f64)\(", ir), f
        assert len(re.findall(r"fdiv [^\n]*<\d+ x double>", ir)) >= loops, f


def test_the_special_kernels_take_erf_and_erfc_of_a_quotient_in_float64():
    """gelu's Φ(x) = ½·erfc(x/−√2): the quotient taken in float64 inside the kernel, as the formula takes it of x cast
    to float64 (a float32 quotient would be off by up to 2(x/√2)²·2⁻²⁴ relatively in the tail: 10⁻⁴ at x = −40)."""
    from minivae._cpu import special as fused
    x = np.concatenate([np.random.default_rng(8).uniform(-40, 40, 2000), [0.0, -0.0, -37.5]]).astype(np.float32)
    for name in ("erf", "erfc"):
        got = getattr(fused, name)(x, -math.sqrt(2))
        want = special.in_float64(lambda v, c=name == "erfc": special.erf_forward(np, v / -math.sqrt(2), c), x)
        assert got.dtype == np.float32
        nonzero = want != 0
        err = np.abs(got[nonzero].astype(np.float64) - want[nonzero]) / np.spacing(np.abs(want[nonzero]))
        assert err.max() <= 1, name
