"""minivae's own product (kernels/gemm.cu, MINIVAE_GEMM=tiled) on a real GPU, at the sizes of a VAE's training
step: within float accumulation's bound of the float64 product, split or not, every layout, and a dense layer's
backward through the ReLU's gate with its bias gradient; with MINIVAE_GEMM_TUNE=1, each split timed on the GPU behind
kernels/timing.cu's hold; and training steps
with it, eagerly and as a CUDA graph (its weight gradients on the graph's second stream, split counts of their own),
equal to those with cuBLAS to float32 rounding. (tests/kernel_cases.py runs the kernel's exact cases here too.)"""
import numpy as np
import pytest

from minivae.models import CategoricalVAE, GaussianVAE
from minivae.optim import Adam
from minivae.plan import compile_step
from minivae.random import Generator
from tests.gpu.test_graph import eager_losses

BATCHES = [(np.random.default_rng(i).random((128, 784)) < 0.2).astype(np.float32) for i in range(4)]


@pytest.fixture
def gemm(monkeypatch):
    from minivae._gpu import gemm
    monkeypatch.setattr(gemm, "use_tiled", True)
    return gemm


@pytest.mark.parametrize("m,k,n,transposed", [(128, 784, 512, ""), (128, 512, 784, "b"), (784, 128, 512, "a"),
                                              (4096, 784, 512, ""), (20, 128, 256, "a"), (3, 1000, 70, "ab")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_of_a_training_step_are_within_the_accumulation_bound(gemm, m, k, n, transposed, dtype):
    import cupy
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    da = cupy.asfortranarray(cupy.asarray(a)) if "a" in transposed else cupy.asarray(a)
    db = cupy.asfortranarray(cupy.asarray(b)) if "b" in transposed else cupy.asarray(b)
    got = gemm.matmul(da, db).get()
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = k * np.finfo(dtype).eps * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    assert (np.abs(got - exact) <= bound).all()
    again = gemm.matmul(da, db).get()
    np.testing.assert_array_equal(again, got)  # the split's partial sums added in slice order, whoever ends last


@pytest.mark.parametrize("rows,k,n", [(128, 784, 512), (128, 512, 256), (4096, 784, 512), (128, 256, 40)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_dense_layer_s_backward_in_two_launches_is_within_the_accumulation_bound(gemm, rows, k, n, dtype):
    """gemm.linear_grads at a VAE's sizes: x̄ = p̄·Wᵀ, W̄ = xᵀ·p̄ and b̄ = Σ_i p̄_ij with p̄ = ḡ·[y > 0] made as ḡ is read,
    each within float accumulation's bound of the float64 formula (b̄'s over the batch)."""
    import cupy
    rng = np.random.default_rng(1)
    x, w, g, y = (rng.standard_normal(shape).astype(dtype) for shape in ((rows, k), (k, n), (rows, n), (rows, n)))
    gx, gw, gb = (a.get() for a in gemm.linear_grads(*(cupy.asarray(v) for v in (x, w, g, y)), (True, True, True)))
    p = g.astype(np.float64) * (y > 0)
    eps = np.finfo(dtype).eps
    for got, a, b, depth in ((gx, p, w.T, n), (gw, x.T, p, rows)):
        exact = a @ b.astype(np.float64)
        assert (np.abs(got - exact) <= depth * eps * (np.abs(a) @ np.abs(b.astype(np.float64)))).all()
    assert (np.abs(gb - p.sum(axis=0)) <= rows * eps * np.abs(p).sum(axis=0)).all()


def test_a_tuned_product_times_its_splits_on_the_gpu_once_and_keeps_the_fastest(gemm, monkeypatch):
    """The first layer's product at batch 128 (6 splits to choose from): every split timed (a finite, positive time
    each: none failed, the hold let them go), one chosen, the product within the accumulation bound, and the next
    call of that shape not timed again and equal to the first bit for bit (the same split)."""
    import cupy
    from minivae._gpu import tiled, timing
    monkeypatch.setattr(tiled, "tune", True)
    monkeypatch.setattr(tiled, "_tuned", {})
    timed, fastest = [], timing.fastest
    monkeypatch.setattr(timing, "fastest", lambda *args: timed.append(fastest(*args)) or timed[-1])
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((128, 784)).astype(np.float32), rng.standard_normal((784, 512)).astype(np.float32)
    got = gemm.matmul(cupy.asarray(a), cupy.asarray(b)).get()
    exact = a.astype(np.float64) @ b
    assert (np.abs(got - exact) <= 784 * np.finfo(np.float32).eps * (np.abs(a).astype(np.float64) @ np.abs(b))).all()
    ((best, times),) = timed
    (entry,) = tiled._tuned.values()
    assert best is not None and len(times) == len(tiled.splits(128, 512, 784, 4)) == 6
    assert all(0 < t < 1e3 for t in times) and entry["split"] == tiled.splits(128, 512, 784, 4)[best]
    np.testing.assert_array_equal(gemm.matmul(cupy.asarray(a), cupy.asarray(b)).get(), got)
    assert len(timed) == 1
    print("\n".join(tiled.tuned()))


def _steps(kind, graph, tiled, gemm):
    """Losses and parameters of 4 Adam steps of a benchmark VAE, eager or as a CUDA graph, tiled or cuBLAS."""
    gemm.use_tiled = tiled
    rng = Generator(0)
    model = (GaussianVAE(hidden=(512, 256), z_dim=20, rng=rng, device="cuda") if kind == "gaussian" else
             CategoricalVAE(hidden=(512, 256), n_latent=20, n_categories=10, tau0=1.0, tau_min=1.0, rng=rng,
                            device="cuda"))
    rng, opt = Generator(5), Adam(model.parameters(), lr=1e-3)
    if graph:
        plan = compile_step(model, opt, lambda x: model.loss(x, rng), BATCHES[0])
        plan.capture()
        losses = [plan.loss.item()] + [plan.step(x).item() for x in BATCHES[1:]]
    else:
        losses = eager_losses(model, opt, rng, BATCHES)
    return np.array(losses), [p.numpy() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
@pytest.mark.parametrize("graph", [False, True], ids=["eager", "graph"])
@pytest.mark.parametrize("tune", [False, True], ids=["guessed", "tuned"])
def test_training_steps_with_the_tiled_products_equal_those_with_cublas(gemm, monkeypatch, kind, graph, tune):
    from minivae._gpu import tiled as tiled_module
    monkeypatch.setattr(tiled_module, "tune", tune)
    cublas, tiled = _steps(kind, False, False, gemm), _steps(kind, graph, True, gemm)
    assert np.isfinite(tiled[0]).all()
    np.testing.assert_allclose(tiled[0], cublas[0], rtol=1e-4)
    for a, b in zip(tiled[1], cublas[1]):
        # as tests/gpu/test_training.py: Adam moves an entry by at most lr a step whatever its gradient, so an entry
        # whose gradient is a near-cancelling sum may step either way under the two products' roundings (one entry
        # of the categorical decoder's 401408 on the H200, 2026-11-30: 8·10⁻⁵ apart); all others agree to rounding
        diff = np.abs(a - b)
        assert diff.max() <= len(BATCHES) * 1e-3 * 1.001
        assert (diff <= 1e-5 + 1e-3 * np.abs(b)).mean() >= 0.999
