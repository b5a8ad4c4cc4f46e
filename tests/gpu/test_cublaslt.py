"""The cuBLASLt dense layer (minivae/_gpu/gemm.py's ``linear``, MINIVAE_CUBLASLT=1) on a real GPU: the
library is found, takes the layers it should, and gives what the product and the bias pass give, eagerly,
with TF32, on parameters that are views of an optimizer's flat buffer, and inside a CUDA graph whose
capture made the first call. (tests/test_cublaslt.py checks the call itself against a fake, on the CPU.)"""
import numpy as np
import pytest

import minivae as mv
from minivae.models import GaussianVAE
from minivae.optim import Adam
from minivae.plan import compile_step
from minivae.random import Generator
from tests.gpu.test_graph import eager_losses
from tests.gpu.test_matmul_precision import check_tf32, operands, precision, tf32  # noqa: F401  (a fixture)

BATCHES = [(np.random.default_rng(i).random((64, 784)) < 0.2).astype(np.float32) for i in range(4)]


@pytest.fixture
def lt(monkeypatch):
    from minivae._gpu import gemm
    monkeypatch.setattr(gemm, "use_lt", True)
    if gemm._cublaslt() is None:
        pytest.fail("CuPy's libcublas is loaded but no libcublasLt was found in the process")
    return gemm


def dense(m, k, n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32),
            rng.standard_normal(n).astype(np.float32))


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("m,k,n", [(128, 784, 512), (4096, 256, 300), (5, 17, 33), (2, 2, 2), (64, 20, 256)])
def test_a_dense_layer_in_one_call_equals_the_product_and_bias_pass(lt, m, k, n, relu):
    import cupy
    x, w, b = dense(m, k, n)
    dx, dw, db = (cupy.asarray(a) for a in (x, w, b))
    got = lt.linear(dx, dw, db, relu)
    assert got is not None, "cuBLASLt did not take a float32 layer"
    want = x.astype(np.float64) @ w + b
    want = np.maximum(want, 0) if relu else want
    bound = 4 * k * 2.0 ** -24 * (np.abs(x).astype(np.float64) @ np.abs(w) + np.abs(b))  # float32 accumulation
    assert (np.abs(got.get() - want) <= bound + 1e-30).all()
    lt.use_lt = False
    unfused = mv.ops.linear(*(mv.tensor(a, device="cuda") for a in (x, w, b)), activation="relu" if relu else None)
    np.testing.assert_allclose(got.get(), unfused.numpy(), rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_a_transposed_weight_and_a_batch_of_sequences(lt):
    import cupy
    x, w, b = dense(24, 16, 8, seed=1)
    wt = cupy.asfortranarray(cupy.asarray(w))  # as the VJP's transposed views are laid out
    got = lt.linear(cupy.asarray(x).reshape(4, 6, 16), wt, cupy.asarray(b), True)
    assert got.shape == (4, 6, 8)
    np.testing.assert_allclose(got.get().reshape(24, 8), np.maximum(x @ w + b, 0), rtol=1e-5, atol=1e-5)


def test_tf32_layers_stay_within_tf32s_bound(lt, tf32):  # noqa: F811  (the fixture imported above)
    import cupy
    a, b, da, db = operands()
    zero = cupy.zeros(b.shape[1], np.float32)
    full = lt.linear(da, db, zero, False).get()
    with precision("high"):
        check_tf32(lt.linear(da, db, zero, False).get(), a, b, full)


def _steps(graph, lt_on, lt, x_dim=784, hidden=(512, 256), z_dim=20):
    """Losses and parameters of 4 Adam steps of a Gaussian VAE, eager or as a CUDA graph, with cuBLASLt or not."""
    lt.use_lt = lt_on
    model = GaussianVAE(x_dim=x_dim, hidden=hidden, z_dim=z_dim, rng=Generator(0), device="cuda")
    rng, opt = Generator(5), Adam(model.parameters(), lr=1e-3)
    batches = [x[:, :x_dim] for x in BATCHES]
    if graph:
        plan = compile_step(model, opt, lambda x: model.loss(x, rng), batches[0])
        lt._lt_plans.clear()
        lt._lt_workspaces.clear()  # the capture makes the first call: heuristic and workspace during the capture
        plan.capture()
        losses = [plan.loss.item()] + [plan.step(x).item() for x in batches[1:]]
    else:
        losses = eager_losses(model, opt, rng, batches)
    return np.array(losses), [p.numpy() for p in model.parameters()]


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
def test_training_steps_with_cublaslt_equal_those_without(lt, graph):
    """4 steps of the benchmark's VAE, and of one whose odd sizes leave its parameters (views of Adam's flat
    buffer) less than 16-byte aligned: with cuBLASLt as without, to float32 rounding."""
    for sizes in ({}, dict(x_dim=13, hidden=(7,), z_dim=3)):
        without, with_lt = _steps(False, False, lt, **sizes), _steps(graph, True, lt, **sizes)
        assert np.isfinite(with_lt[0]).all()
        np.testing.assert_allclose(with_lt[0], without[0], rtol=1e-4)
        for a, b in zip(with_lt[1], without[1]):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("shape", [(128, 512, 784), (784, 128, 512), (4096, 784, 512)])
def test_plain_products_take_their_timed_algorithm(lt, shape):
    """A float32 product (the VJP's shapes at batch 128 and 4096, a transposed operand included) through gemm.matmul
    is one cuBLASLt call whose algorithm, timed once among the heuristic's candidates, stays; within float32's
    bound of the float64 product."""
    import cupy
    m, k, n = shape
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((n, k)).astype(np.float32).T
    got = lt.matmul(cupy.asarray(a), cupy.asfortranarray(cupy.asarray(b)))
    (plan,) = [p for key, p in lt._lt_plans.items() if key[1:4] == (m, n, k) and p]
    assert any(bytes(plan["algo"]) == bytes(c) for c in plan["candidates"])
    bound = 4 * k * 2.0 ** -24 * (np.abs(a).astype(np.float64) @ np.abs(b))
    assert (np.abs(got.get() - a.astype(np.float64) @ b) <= bound).all()
