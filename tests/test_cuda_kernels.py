"""kernels/*.cu run on the CPU: the unmodified CUDA sources built by the host C++ compiler with
tests/cuda_host/cuda_host.h (each block's threads as std::threads, barriers, warp shuffles) and
launched through minivae/_gpu's own launchers. The cases are tests/kernel_cases.py, shared with
the GPU suite (tests/gpu/)."""
import shutil

import numpy as np
import pytest

from minivae._gpu import loader
from tests.cuda_host.host import module_factory, run_sanitized, sanitize_mode
from tests.kernel_cases import *  # noqa: F401,F403  (the shared cases)
from tests.kernel_cases_special import *  # noqa: F401,F403
from tests.kernel_cases_gamma import *  # noqa: F401,F403
from tests.kernel_cases_binary import *  # noqa: F401,F403
from tests.kernel_cases import categorical, close, gumbel, softmax_vjp  # (the test below this file's own)

if shutil.which("c++") is None and shutil.which("g++") is None:
    pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU", allow_module_level=True)


class HostDevice:
    """Device arrays are NumPy arrays; kernels run through the host emulation."""
    put = staticmethod(np.array)
    get = staticmethod(np.asarray)


@pytest.fixture(scope="module")
def dev():
    import minivae._gpu.random as gpu_random
    with loader.use_module_factory(module_factory()), pytest.MonkeyPatch.context() as mp:
        mp.setattr(gpu_random, "cupy_module", lambda: np)
        yield HostDevice()


# A row too long for registers (k = 9000) is a block of 1024 threads, the most of any case (the others take at most
# 256), and the emulation keeps every thread it made for later blocks. Under ThreadSanitizer, whose vector clocks grow
# with the threads, every later case then ran about twice as slowly (measured on the pair kernels' cases).
# So ThreadSanitizer runs those cases in a process of their own.
@pytest.mark.parametrize("sanitize,cases", [pytest.param("thread", "not 9000", id="thread"),
                                            pytest.param("thread", "9000", id="thread-long-rows"),
                                            pytest.param("address", "", id="address")])
def test_the_cases_run_clean_under_the_sanitizers(sanitize, cases):
    """Every case above again, on fewer shapes, with the kernels built with -fsanitize=thread (a data race
    between a block's threads, e.g. a missing __syncthreads, is reported) or -fsanitize=address,undefined
    (a read or write past an array, e.g. an unguarded tail, is reported)."""
    if sanitize_mode() is not None:
        pytest.skip("this is the sanitized run itself")
    # -s: a sanitizer's report goes to the child's stderr, not into pytest's per-test capture
    done = run_sanitized(sanitize, ["-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-x", __file__,
                                    "-k", " and ".join(filter(None, ["not the_cases_run_clean", cases]))])
    report = done.stdout[-4000:] + done.stderr[-4000:]
    assert done.returncode == 0, report
    assert "Sanitizer" not in done.stderr, report
    assert " passed" in done.stdout and " failed" not in done.stdout, report


@pytest.mark.parametrize("name, options, group", [
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1, "maximize": True},
     {"lr": 0.05, "weight_decay": 0.3, "momentum": 0.5}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}, {"nesterov": False, "dampening": 0.4, "maximize": True}),
    ("AdamW", {"lr": 0.1, "amsgrad": True}, {"lr": 0.05, "weight_decay": 0.3, "maximize": True}),
    ("Adam", {"lr": 0.1, "weight_decay": 0.1, "maximize": True}, {"amsgrad": True, "weight_decay": 0.0}),
], ids=["sgd-damped-decay-maximize", "sgd-nesterov-and-damped", "adamw-amsgrad", "adam-l2-and-amsgrad-group"])
def test_optimizers_on_the_one_launch_kernels_step_as_torch(dev, monkeypatch, name, options, group):
    """A whole optimizer on kernels/optim.cu, as on a GPU (the one-launch path: update_all, one launch per flat buffer
    and Adam count, SGD's parameters at their first step launched apart), on tests/test_optim_options.py's problem
    (two groups of their own options, a parameter whose first step comes later), against torch.optim."""
    if sanitize_mode() is not None:
        pytest.skip("the kernels' own cases run under the sanitizers; this one would load torch there")
    pytest.importorskip("torch")
    import importlib
    import minivae.optim as optim
    from tests.test_optim_options import _assert_as_torch
    monkeypatch.setattr(optim, "fused", lambda kernel, xp, *arrays: importlib.import_module(f"minivae._gpu.{kernel}"))
    for dtype in (np.float64, np.float32):
        _assert_as_torch(name, options, group, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_categorical_kl_row_of_infinity_sends_back_zero_for_any_upstream_gradient(dev, dtype):
    """categorical_kl_bwd and gumbel_softmax_kl_bwd (common.cuh's categorical_kl_grad) on a row of KL = +∞ (p_0 = 0 <
    q_0) whose ḡ is not 0: l̄ = 0 there, as minivae/ops/losses.py (the KL is +∞ for every finite l; q_j·(d_j − ∞)·ḡ
    was −∞ and NaN); the finite row beside it keeps the formula's gradient, and the pair adds the sample's VJP."""
    x = np.array([[0.0, 0.0, 1.0], [0.5, -1.0, 2.0]], dtype)
    prior = np.array([[-np.inf, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype)
    v = x.astype(np.float64)
    log_q = v - np.logaddexp.reduce(v, axis=1, keepdims=True)
    q = np.exp(log_q)
    d = log_q[1] + np.log(3.0)
    want_gl = np.zeros((2, 3))
    want_gl[1] = -0.5 * q[1] * (d - (q[1] * d).sum())
    g = np.array([1.5, -0.5], dtype)
    xd, pd = dev.put(x), dev.put(prior)
    kl, qd, dd = (dev.get(a) for a in categorical.categorical_kl_fwd(xd, pd))
    assert kl[0] == np.inf
    gl = dev.get(categorical.categorical_kl_bwd(dev.put(g), dev.put(qd), dev.put(dd), dev.put(kl)))
    close(gl, want_gl, dtype)
    y, _, kl_pair = (dev.get(a) for a in gumbel.gumbel_softmax_kl_fwd(xd, pd, 3, 0, 0.7, False))
    gy = np.array([[0.5, -0.2, 0.1], [0.3, 0.4, -1.0]], dtype)
    gl = dev.get(gumbel.gumbel_softmax_kl_bwd(dev.put(y), dev.put(gy), xd, pd, dev.put(kl_pair), dev.put(g), 0.7))
    close(gl, softmax_vjp(y.astype(np.float64), gy.astype(np.float64), -1, 0.7) + want_gl, dtype)
