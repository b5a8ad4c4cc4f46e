"""set_float32_matmul_precision("high") on a real GPU: float32 products really take TF32 tensor cores
(they differ from full float32), stay within TF32's error bound, leave CuPy's cuBLAS handle in its
mode, and do so inside a CUDA graph too, which keeps the precision it was captured with."""
import contextlib
import os

import numpy as np
import pytest

import minivae as mv
from minivae.models import GaussianVAE
from minivae.optim import Adam
from minivae.plan import compile_step
from minivae.random import Generator
from tests.gpu.test_graph import captured_matmul, eager_losses

M, K, N = 256, 512, 384
BATCHES = [(np.random.default_rng(i).random((64, 784)) < 0.2).astype(np.float32) for i in range(3)]


def _no_tf32():
    import cupy
    if os.environ.get("NVIDIA_TF32_OVERRIDE") == "0":
        return "NVIDIA_TF32_OVERRIDE=0 switches TF32 off"
    if int(cupy.cuda.Device().compute_capability) < 80:
        return "TF32 tensor cores need compute capability 8.0 (Ampere) or later"
    return None


@pytest.fixture
def tf32():
    reason = _no_tf32()
    if reason:
        pytest.skip(reason)


@contextlib.contextmanager
def precision(value):
    before = mv.get_float32_matmul_precision()
    mv.set_float32_matmul_precision(value)
    try:
        yield
    finally:
        mv.set_float32_matmul_precision(before)


def operands():
    import cupy
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((M, K)).astype(np.float32), rng.standard_normal((K, N)).astype(np.float32)
    return a, b, cupy.asarray(a), cupy.asarray(b)


def check_tf32(got, a, b, full):
    """``got`` within TF32's bound of the float64 product, and not full float32 (``full``).

    TF32 keeps 10 of float32's 23 mantissa bits: each operand is off by at most 2⁻¹⁰ of itself (2⁻¹¹ when
    rounded, 2⁻¹⁰ if truncated), a product by 2·2⁻¹⁰ (+ 2⁻²⁰); float32 accumulation of K terms adds at most
    K·2⁻²⁴ of Σ_k|a_ik·b_kj|."""
    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    bound = (2 * 2.0 ** -10 + 2.0 ** -20 + K * 2.0 ** -24) * scale
    assert (np.abs(got - exact) <= bound).all()
    # full float32 is off by ~3e-7 of the norm here, TF32 by ~3e-4 (NumPy, operands rounded to TF32)
    assert np.linalg.norm(full - exact) < 1e-5 * np.linalg.norm(exact)
    assert np.linalg.norm(got - full) > 1e-5 * np.linalg.norm(full)


def test_high_uses_tf32_within_its_bound_and_restores_the_mode(tf32):
    import cupy
    from cupy_backends.cuda.libs import cublas
    from minivae._gpu import gemm
    a, b, da, db = operands()
    full = cupy.matmul(da, db).get()
    handle = cupy.cuda.device.get_cublas_handle()
    original = cublas.getMathMode(handle)
    try:
        for mode in (original, 2):  # CuPy's default; CUBLAS_PEDANTIC_MATH, as a user may set it
            cublas.setMathMode(handle, mode)
            users = cupy.matmul(da, db).get()
            with precision("high"):
                check_tf32(gemm.matmul(da, db).get(), a, b, full)
            assert cublas.getMathMode(handle) == mode
            np.testing.assert_array_equal(cupy.matmul(da, db).get(), users)  # the user's matmul as before
    finally:
        cublas.setMathMode(handle, original)


def test_highest_is_cupy_matmul_bit_for_bit():
    import cupy
    from minivae._gpu import gemm
    _, _, da, db = operands()
    np.testing.assert_array_equal(gemm.matmul(da, db).get(), cupy.matmul(da, db).get())


def test_dense_layer_on_a_batch_of_rows_uses_tf32(tf32):
    """(…, k) @ (k, n) through ops.linear, the reshaped path."""
    import cupy
    a, b, _, _ = operands()
    a3 = a.reshape(4, M // 4, K)
    x, w, bias = (mv.tensor(v, device="cuda") for v in (a3, b, np.zeros(N, np.float32)))
    full = mv.ops.linear(x, w, bias).numpy().reshape(M, N)
    with precision("high"):
        got = mv.ops.linear(x, w, bias).numpy().reshape(M, N)
    check_tf32(got, a, b, full)
    np.testing.assert_allclose(full, cupy.matmul(cupy.asarray(a), cupy.asarray(b)).get(), rtol=1e-5, atol=1e-4)


def test_a_graph_keeps_the_precision_it_was_captured_with(tf32):
    """A product captured in "high" (tests/gpu/test_graph.py's capture) and launched after the precision is
    back to "highest": still TF32; the handle's mode as before."""
    import cupy
    from cupy_backends.cuda.libs import cublas
    a, b, da, db = operands()
    full = cupy.matmul(da, db).get()
    handle = cupy.cuda.device.get_cublas_handle()  # the one gemm.bind() sets to the capturing stream
    mode = cublas.getMathMode(handle)
    with precision("high"):
        got, launch = captured_matmul(da, db)
    assert cublas.getMathMode(handle) == mode
    launch()
    check_tf32(got.get(), a, b, full)


def test_a_training_step_graph_captured_in_high_trains_like_float32(tf32):
    def losses(graph):
        model, rng = GaussianVAE(x_dim=784, hidden=(512, 256), z_dim=20, rng=Generator(0), device="cuda"), Generator(5)
        opt = Adam(model.parameters(), lr=1e-3)
        if not graph:
            return eager_losses(model, opt, rng, BATCHES)
        plan = compile_step(model, opt, lambda x: model.loss(x, rng), BATCHES[0])
        with precision("high"):
            plan.capture()
        return [plan.loss.item()] + [plan.step(x).item() for x in BATCHES[1:]]
    eager, graph = losses(False), losses(True)
    assert mv.get_float32_matmul_precision() == "highest"
    assert np.isfinite(graph).all()
    np.testing.assert_allclose(graph, eager, rtol=1e-2)


def test_cli_train_with_tf32_and_a_graph(tmp_path, tf32):
    """`minivae train --device cuda --graph --tf32`: runs, records the setting, trains like full float32 (the
    epoch's mean loss within 1%) and leaves the process in "highest"."""
    import json

    from minivae.cli import main
    args = ["train", "--model", "gaussian", "--limit", "300", "--batch-size", "64", "--epochs", "1", "--hidden", "32",
            "--device", "cuda", "--graph"]
    assert main([*args, "--out", str(tmp_path / "fp32")]) == 0
    assert main([*args, "--tf32", "--out", str(tmp_path / "tf32")]) == 0
    assert mv.get_float32_matmul_precision() == "highest"
    fp32, tf = (np.load(tmp_path / d / "checkpoint.npz") for d in ("fp32", "tf32"))
    assert json.loads(str(tf["meta/settings"]))["tf32"] is True and "tf32" not in json.loads(str(fp32["meta/settings"]))
    rows = [json.loads(str(f["meta/metrics"]))[1] for f in (fp32, tf)]
    assert abs(float(rows[0][2]) - float(rows[1][2])) < 1e-2 * abs(float(rows[0][2]))
