"""The weight gradients on a second stream (minivae/_gpu/gemm.py's SideStream, MINIVAE_SIDE_STREAM=1 in a CUDA
graph), proven on the CPU with the stand-in device and the host emulation of the kernels.

``LateSide`` plays the side stream as late as it may run: each product is queued as the raw addresses, shapes
and strides a GPU kernel would be given (no reference to the arrays: only SideStream's own keep list holds
them), its output is filled with NaN, and the product runs only when the main stream joins. A replay that
reads a weight gradient before the join, writes over an input of a queued product, or lets the memory pool
hand a queued product's memory to a new array (which the plan's pool does, as a graph's pool would) gives
other numbers than the eager steps. (tests/gpu/test_side_stream.py runs the CUDA side stream.)"""
import ctypes
import importlib.util
import weakref

import numpy as np
import pytest

import minivae as mv
from minivae import _gpu, ops
from minivae._backend import use_cuda_kernels, use_numba
from minivae._gpu import gemm, loader, tiled
from minivae.models import BernoulliVAE, CategoricalVAE, GaussianVAE
from minivae.optim import Adam
from minivae.plan import compile_step
from minivae.random import Generator
from tests.strict_array import emulating

if importlib.util.find_spec("tests.cuda_host.host") is None:
    pytest.skip("tests/cuda_host/host.py is not there", allow_module_level=True)
from tests.cuda_host import host as cuda_host  # noqa: E402

if cuda_host.compiler() is None:
    pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU", allow_module_level=True)

X_DIM = 12
BATCHES = [(np.random.default_rng(i).random((5, X_DIM)) < 0.4).astype(np.float32) for i in range(4)]


def raw(a):
    """What a kernel is given for array ``a``: its address, shape, strides and dtype."""
    return _gpu.address(a), a.shape, a.strides, a.dtype


def view(address, shape, strides, dtype):
    """The memory at ``address`` as an array of that layout (no reference to the array it belonged to)."""
    span = sum((n - 1) * s for n, s in zip(shape, strides)) + dtype.itemsize if all(shape) else 0
    flat = np.frombuffer((ctypes.c_char * max(span, 1)).from_address(address), np.uint8)
    return np.lib.stride_tricks.as_strided(flat.view(dtype) if span else flat[:0].view(dtype), shape, strides)


class LateSide(gemm.SideStream):
    def __init__(self):
        super().__init__()
        self.queued, self.forks, self.products, self.joins, self.with_sums = [], 0, 0, 0, 0

    def _fork(self):
        self.forks += 1

    def _launch(self, a, b, out, gate_b, b_sums):
        self.products += 1
        self.with_sums += b_sums is not None
        self.queued.append(tuple(None if x is None else raw(x) for x in (a, b, out, gate_b, b_sums)))
        for made in (out, b_sums):
            if made is not None:
                view(*raw(made))[...] = np.nan  # what a read before the join finds

    def _join(self):
        self.joins += 1
        for a, b, out, gate_b, b_sums in self.queued:
            if gemm.use_tiled:  # kernels/gemm.cu, as the eager step runs it (its gate and column sums included)
                tiled.product(view(*a), view(*b), out=view(*out), gate_b=None if gate_b is None else view(*gate_b),
                              b_sums=None if b_sums is None else view(*b_sums))
            else:
                np.matmul(view(*a), view(*b), out=view(*out))
        self.queued.clear()


@pytest.fixture
def device():
    with use_numba(False), use_cuda_kernels(True), emulating(), loader.use_module_factory(cuda_host.module_factory()):
        yield


def tied(share="weight", x_dim=X_DIM):
    """A model of two layers that share one weight (or one bias): its gradient is the sum of two products (or of two
    column sums, which MINIVAE_GEMM=tiled makes in the W̄ launches), which the main stream adds (an instruction that
    reads what the side stream makes, before the optimizer's update)."""
    class Tied:
        device = "cuda"

        def __init__(self):
            rng = np.random.default_rng(3)

            def parameter(value):
                return mv.tensor(value, dtype=np.float32, device="cuda", requires_grad=True)
            w = [parameter(rng.standard_normal((x_dim, x_dim)) / 4) for _ in range(1 if share == "weight" else 2)]
            b = [parameter(np.zeros(x_dim)) for _ in range(1 if share == "bias" else 2)]
            self.w1, self.w2 = w * (3 - len(w))
            self.b1, self.b2 = b * (3 - len(b))

        def parameters(self):
            return list({id(p): p for p in (self.w1, self.w2, self.b1, self.b2)}.values())

        def loss(self, x, rng):
            h = ops.linear(ops.linear(x, self.w1, self.b1, activation="relu"), self.w2, self.b2)
            return (h * h).mean()
    return Tied()


MODELS = {
    "gaussian": lambda: GaussianVAE(X_DIM, (6,), 2, rng=Generator(0), device="cuda"),
    "categorical": lambda: CategoricalVAE(X_DIM, (6,), 2, 3, rng=Generator(0), device="cuda"),
    "bernoulli": lambda: BernoulliVAE(X_DIM, (6,), 4, estimator="straight_through", rng=Generator(0), device="cuda"),
    "tied": tied,
    "tied bias": lambda: tied("bias"),
}


def run(name, side):
    """Parameters and losses after 4 steps: eager (side None), or recorded and replayed with ``side``."""
    model, rng = MODELS[name](), Generator(9)
    opt = Adam(model.parameters(), lr=0.05)
    losses = []
    if side is None:
        for x in BATCHES:
            loss = model.loss(mv.tensor(x, device="cuda"), rng)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.data.get())
    else:
        plan = compile_step(model, opt, lambda x: model.loss(x, rng), mv.tensor(BATCHES[0], device="cuda"))
        losses.append(plan.loss.data.get())
        plan.side = gemm.side = side
        try:
            for x in BATCHES[1:]:
                losses.append(plan.step(mv.tensor(x, device="cuda")).data.get())
        finally:
            plan.side = gemm.side = None
    return [p.data.get() for p in model.parameters()], losses


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("use_tiled", [False, True], ids=["cublas", "tiled"])
def test_replays_with_the_weight_gradients_on_a_late_side_stream_equal_eager_steps(device, monkeypatch, name,
                                                                                     use_tiled):
    """Bit for bit, for both VAEs (four dense layers each) and the tied models; every layer's W̄ went to the
    side stream, forked once each, and the main stream waited before reading any. With MINIVAE_GEMM=tiled each
    layer's b̄ is made by its W̄'s launch on the side stream too: read before the join, it would be NaN."""
    monkeypatch.setattr(gemm, "use_tiled", use_tiled)
    side = LateSide()
    (eager_params, eager_losses), (params, losses) = run(name, None), run(name, side)
    layers = {"gaussian": 4, "categorical": 4, "bernoulli": 4, "tied": 2, "tied bias": 2}[name]
    assert side.products == side.forks == 3 * layers  # 3 replays
    assert side.with_sums == (3 * layers if use_tiled else 0)
    assert side.joins == 3  # one wait a step: at the optimizer's update, or (tied) at the sum of the two W̄ (b̄)
    np.testing.assert_array_equal(np.array(losses), np.array(eager_losses))
    for a, b in zip(params, eager_params):
        np.testing.assert_array_equal(a, b)


def test_without_a_side_stream_nothing_goes_to_one(device):
    """The recorded step and plain replays keep W̄ on the main stream (gemm.side is None but in a capture)."""
    assert gemm.side is None
    params, losses = run("gaussian", None)
    assert np.isfinite(np.array(losses)).all()


class Graph:
    """A captured graph's stand-in."""


class ClosingSide:
    """A side stream's stand-in: records, when it is closed, whether a capture ran and whether its graph was gone."""

    def __init__(self, graph):
        self.graph, self.closed = weakref.ref(graph), None

    def close(self):
        self.closed = {"capturing": _gpu.capture is not None, "graph gone": self.graph() is None}


def graph_and_side():
    """[graph, side] as CudaGraphStep.__del__ passes them: the list holds the only reference to the graph."""
    parts = [Graph()]
    return parts + [ClosingSide(parts[0])]


def test_a_graph_let_go_during_a_capture_closes_its_side_stream_after_it(monkeypatch):
    """Destroying a cuBLAS handle in the middle of a capture invalidated it (on an H100): a graph the garbage
    collector frees during another graph's capture keeps its side handle until that capture has ended; outside a
    capture it is closed at once. Either way the graph goes first (its products use the handle's workspace)."""
    parts = graph_and_side()
    side = parts[1]
    monkeypatch.setattr(_gpu, "capture", object())  # a capture runs
    gemm.release(parts)
    del parts
    assert side.closed is None
    monkeypatch.setattr(_gpu, "capture", None)  # it has ended: CudaGraphStep then calls release_retired
    gemm.release_retired()
    assert side.closed == {"capturing": False, "graph gone": True}
    parts = graph_and_side()
    at_once = parts[1]
    gemm.release(parts)
    assert at_once.closed == {"capturing": False, "graph gone": True}


def test_the_side_workspace_is_the_size_cublas_recommends():
    """cuBLAS's documentation (cublasSetWorkspace): 32 MiB on Hopper (sm_90) and later, 4 MiB before."""
    assert [gemm.side_workspace_bytes(major) >> 20 for major in (7, 8, 9, 10)] == [4, 4, 32, 32]
