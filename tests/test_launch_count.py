"""tools/launch_count.py: the kernel launches of a GPU training step, counted on the CPU (the stand-in device and
the host emulation of kernels/*.cu). Each expectation is derived from the step's structure, not read off the
tool's output: on the GPU each launch is a node of the step's CUDA graph, at about 2.8 µs each."""
import collections
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import minivae as mv
from minivae import _gpu, ops
from minivae._backend import use_cuda_kernels, use_numba
from minivae._gpu import loader
from tests.strict_array import emulating

if importlib.util.find_spec("tests.cuda_host.host") is None:
    pytest.skip("tests/cuda_host/host.py is not there", allow_module_level=True)
from tests.cuda_host import host as cuda_host  # noqa: E402

if cuda_host.compiler() is None:
    pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU", allow_module_level=True)
_spec = importlib.util.spec_from_file_location("launch_count", Path(__file__).parents[1] / "tools" / "launch_count.py")
launch_count = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(launch_count)


@pytest.fixture(scope="module")
def factory():
    return cuda_host.module_factory()


@pytest.fixture
def device(factory):
    with use_numba(False), use_cuda_kernels(True), emulating(), loader.use_module_factory(factory):
        yield


def names(launches):
    return collections.Counter(what for what, _ in launches)


def test_what_counts_as_a_launch(device, monkeypatch):
    """The −ELBO is one kernel each way; a product with a constant, one product each way (the constant gets no
    gradient); a view, nothing."""
    monkeypatch.setattr(_gpu, "_constants", {})
    rng = np.random.default_rng(0)
    ll = mv.tensor(rng.standard_normal((4, 6)), device="cuda", dtype=np.float32, requires_grad=True)
    kl = mv.tensor(rng.random((4, 3)), device="cuda", dtype=np.float32, requires_grad=True)
    with launch_count.counting() as launches:
        ops.negative_elbo(ll, kl, 0.5).backward()
    # and, the first time only, the fills of β (a constant that a replay reads in place) and backward()'s ḡ = 1,
    # kept on the device for the next time; ll being a leaf, its .grad is a copy of the broadcast l̄l (a model's ll
    # has a VJP that reads the view instead)
    assert names(launches) == {"kernel negative_elbo_fwd": 1, "kernel negative_elbo_bwd": 1, "full": 2, "copy": 1}
    ll.grad = kl.grad = None
    with launch_count.counting() as launches:
        ops.negative_elbo(ll, kl, 0.5).backward()
    assert names(launches) == {"kernel negative_elbo_fwd": 1, "kernel negative_elbo_bwd": 1, "copy": 1}
    x = mv.tensor(rng.standard_normal((4, 6)), device="cuda", dtype=np.float32, requires_grad=True)
    with launch_count.counting() as launches:
        y = ops.reshape(x, (24,)) * mv.tensor(np.float32(2.0), device="cuda")
    assert names(launches) == {"mul": 1}
    g = mv.tensor(np.ones(24, np.float32), device="cuda")
    with launch_count.counting() as launches:
        y.backward(g)
    assert names(launches) == {"mul": 1}


def _expected(kind):
    """The launches of one step of benchmarks/gpu_step.py's VAE ``kind``, layer by layer."""
    dense = {"matmul": 6 + 11,             # six dense layers forward; backward W̄ each, x̄ all but the first
             "kernel bias_act_fwd": 6,     # bias and ReLU of each layer's product, in place
             "kernel bias_grad": 6,        # b̄ of each layer, with p̄ = ḡ·[y > 0] of the four ReLU layers, one pass
             "kernel adam_step": 1}        # every parameter in one launch
    loss = {"kernel bernoulli_negative_elbo_fwd": 1,   # the Bernoulli log-likelihood, KL and their mean, one node
            "kernel bernoulli_negative_elbo_bwd": 1}   # the decoder logits' gradient and the KL terms'
    # (as bernoulli_log_prob and negative_elbo apart: bce_fwd, negative_elbo_fwd, negative_elbo_bwd and the product of
    # l̄l by the saved derivative, 4)
    if kind == "Gaussian":
        latent = {"kernel normal_reparameterize_kl_fwd": 1,  # ε drawn, z and the KL made: one launch
                  "kernel reparameterize_kl_bwd": 1}
        # (the split into μ and log σ² is two views, and its VJP takes μ̄ and v̄ as the halves of one array that
        # reparameterize_kl_bwd wrote: no concatenate)
    elif kind == "categorical":
        latent = {"kernel gumbel_softmax_kl_warp_fwd": 1,  # the relaxed sample and its KL: one launch
                  "kernel gumbel_softmax_kl_warp_bwd": 1}  # the logits' two gradients, added as they are written
        # (as gumbel_softmax and categorical_kl apart: their two forward kernels, their two VJPs' and the sum, 5)
    else:
        latent = {"kernel binary_concrete_kl_fwd": 1,  # the logistic noise, the Binary Concrete sample and its KL
                  "kernel binary_concrete_kl_bwd": 1}  # the logits' two gradients, added as they are written
        # (as RelaxedBernoulli.rsample and kl_divergence of the two Bernoullis apart: a uniform draw and 148 CuPy
        # elementwise, reduction and fill kernels, about a dozen ops each way with their masks and VJPs: 149)
    return collections.Counter({**dense, **loss, **latent})


def _expected_tiled(kind):
    """_expected(kind) with MINIVAE_GEMM=tiled: each product one launch of kernels/gemm.cu, the dense layers' bias and
    ReLU passes forward and their bias gradients backward inside those launches."""
    want = _expected(kind) - collections.Counter({"kernel bias_act_fwd": 6, "kernel bias_grad": 6, "matmul": 17})
    want["kernel gemm_tiles"] = 17
    return want


def test_a_replayed_step_launches_what_its_layers_need(device):
    """Both benchmark VAEs: a replay (what a CUDA graph captures) launches exactly the kernels its layers need, and
    nothing else: no copy, no fill, no scalar arithmetic (a regression here is a node more in every graph step)."""
    for kind, *step in launch_count.benchmark_models(batch=8):
        got = names(launch_count.replay_launches(*step))
        assert got == _expected(kind), (kind, got - _expected(kind), _expected(kind) - got)


@pytest.mark.parametrize("tiled", [False, True])
def test_an_eager_step_launches_what_a_replay_does(device, tiled, monkeypatch):
    """An eager step, engine and all, launches what a replay does, and nothing more once its constants are on the
    device: β, backward()'s ḡ = 1 and the categorical prior's zeros are filled at the first step and kept (each a
    fill launch a step before). In particular no copy of a gradient: one was made each step while backward() knew
    the arrays it had kept by their ids alone (an array freed during the pass left its id to a new gradient, taken
    then for a kept one). With the tiled products, the 22 launches of a tiled replay."""
    from minivae._gpu import gemm
    monkeypatch.setattr(gemm, "use_tiled", tiled)
    for kind, model, optimizer, x, rng in launch_count.benchmark_models(batch=8, x_dim=30, hidden=(12, 10), latent=3):
        for _ in range(2):  # the second step: the optimizer's state made
            with launch_count.counting() as launches:
                optimizer.zero_grad()
                model.loss(x, rng).backward()
                optimizer.step()
        got, want = names(launches), _expected_tiled(kind) if tiled else _expected(kind)
        assert got == want, (kind, got - want, want - got)


def test_with_cublaslt_each_dense_layer_forward_is_one_call(device):
    """MINIVAE_CUBLASLT=1 (tests/test_cublaslt.py's stand-in library): every one of the six layers of both VAEs,
    their parameters views of Adam's flat buffer, takes the one-call path, so the step loses its six bias passes;
    all 17 products are cuBLASLt calls."""
    for kind, *step in launch_count.benchmark_models(batch=8):
        got = names(launch_count.replay_launches(*step, cublaslt=True))
        want = _expected(kind) - collections.Counter({"kernel bias_act_fwd": 6, "matmul": 17})
        want["cublasLt matmul"] = 17
        assert got == want, (kind, got - want, want - got)


def test_with_the_tiled_products_each_product_and_dense_layer_forward_is_one_launch(device):
    """MINIVAE_GEMM=tiled: every product of both VAEs is one launch of kernels/gemm.cu, however it splits its inner
    dimension, the six dense layers' bias and ReLU are applied as their products are written, and their backward
    ReLU and bias gradients inside their backward products: the step loses its six bias passes and its six bias_grad
    passes, 22 launches. (The same layers and kernels at sizes the emulation runs in seconds: its 256 threads a block
    are threads of the CPU; the first layer's 300 inputs still go in slices.)"""
    for kind, *step in launch_count.benchmark_models(batch=8, x_dim=300, hidden=(40, 24), latent=3):
        got, want = names(launch_count.replay_launches(*step, tiled=True)), _expected_tiled(kind)
        assert got == want and sum(got.values()) == 22, (kind, got - want, want - got)


def test_the_tool_prints_both_models_and_sorts_their_launches(capsys, monkeypatch):
    """The summary line of each model, its launches sorted into minivae's kernels, matrix products and the rest
    (the replays themselves are the test above's)."""
    monkeypatch.setattr(launch_count, "benchmark_models", lambda batch: [("Gaussian", 1), ("categorical", 2)])
    monkeypatch.setattr(launch_count, "replay_launches",
                        lambda n, cublaslt, tiled: [("kernel adam_step", ""), ("matmul", ""), ("sum", "")] * n)
    launch_count.main(["--batch", "4"])
    assert capsys.readouterr().out.splitlines() == [
        "Gaussian VAE, batch 4: 3 launches a step (1 of minivae's kernels, 1 matrix products, 1 CuPy elementwise, "
        "reduction and copy kernels)",
        "categorical VAE, batch 4: 6 launches a step (2 of minivae's kernels, 2 matrix products, 2 CuPy elementwise, "
        "reduction and copy kernels)"]
