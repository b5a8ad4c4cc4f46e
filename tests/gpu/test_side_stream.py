"""A CUDA graph whose weight-gradient products run on a second stream (the default) trains as the
graph without it and as eager steps, for both VAEs and a model whose tied weight sums two W̄ in the middle of
the step; its side handle is gone with it. (tests/test_side_stream.py proves the ordering on the CPU.)"""
import gc

import numpy as np
import pytest

import minivae as mv
from minivae.models import CategoricalVAE, GaussianVAE
from minivae.optim import Adam
from minivae.plan import compile_step
from minivae.random import Generator
from tests.gpu.test_graph import eager_losses

BATCHES = [(np.random.default_rng(i).random((128, 784)) < 0.2).astype(np.float32) for i in range(5)]


def tied():
    class Tied:
        device = "cuda"

        def __init__(self):
            rng = np.random.default_rng(3)
            self.w = mv.tensor(rng.standard_normal((784, 784)) / 40, dtype=np.float32, device="cuda",
                               requires_grad=True)
            self.b1, self.b2 = (mv.tensor(np.zeros(784), dtype=np.float32, device="cuda", requires_grad=True)
                                for _ in range(2))

        def parameters(self):
            return [self.w, self.b1, self.b2]

        def loss(self, x, rng):
            h = mv.ops.linear(mv.ops.linear(x, self.w, self.b1, activation="relu"), self.w, self.b2)
            return (h * h).mean()
    return Tied()


MODELS = {
    "gaussian": lambda: GaussianVAE(x_dim=784, hidden=(512, 256), z_dim=20, rng=Generator(0), device="cuda"),
    "categorical": lambda: CategoricalVAE(hidden=(512, 256), n_latent=20, n_categories=10, tau0=1.0, tau_min=1.0,
                                          rng=Generator(0), device="cuda"),
    "tied": tied,
}


def train(name, mode, monkeypatch):
    from minivae._gpu import graph
    model, rng = MODELS[name](), Generator(5)
    opt = Adam(model.parameters(), lr=1e-3)
    if mode == "eager":
        losses = eager_losses(model, opt, rng, BATCHES)
    else:
        monkeypatch.setattr(graph, "use_side_stream", mode == "side")
        plan = compile_step(model, opt, lambda x: model.loss(x, rng), BATCHES[0])
        plan.capture()
        assert (plan.graph.side is not None) == (mode == "side")
        losses = [plan.loss.item()] + [plan.step(x).item() for x in BATCHES[1:]]
    return np.array(losses), [p.numpy() for p in model.parameters()]


@pytest.mark.parametrize("name", list(MODELS))
def test_a_graph_with_a_side_stream_trains_as_without(name, monkeypatch):
    from minivae._gpu import gemm
    results = {mode: train(name, mode, monkeypatch) for mode in ("eager", "graph", "side")}
    assert gemm.side is None
    (losses, params) = results["side"]
    assert np.isfinite(losses).all()
    for other in ("graph", "eager"):
        np.testing.assert_allclose(losses, results[other][0], rtol=1e-5)
        for a, b in zip(params, results[other][1]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_side_handle_goes_with_its_graph(monkeypatch):
    from minivae._gpu import gemm, graph
    gc.collect()  # the graphs earlier tests let go, which would close their handles in this test's collection
    closed = []
    original = gemm.CudaSideStream.close
    monkeypatch.setattr(gemm.CudaSideStream, "close", lambda self: (closed.append(self.handle), original(self)))
    monkeypatch.setattr(graph, "use_side_stream", True)
    model, rng = MODELS["gaussian"](), Generator(5)
    plan = compile_step(model, Adam(model.parameters()), lambda x: model.loss(x, rng), BATCHES[0])
    plan.capture()
    handle = plan.graph.side.handle
    plan.step(BATCHES[1]).item()
    del plan
    gc.collect()
    assert closed == [handle]


def test_a_side_graph_collected_during_another_capture(monkeypatch):
    """A graph with a side stream, let go (it and its plan refer to each other, so only the garbage collector frees
    them) and collected in the middle of another graph's capture: its handle is destroyed once that capture has
    ended, which stands and trains. Destroying it during the capture invalidated the capture (seen on an H100)."""
    from minivae import _gpu
    from minivae._gpu import gemm, graph
    gc.collect()  # as above
    closed = []
    original = gemm.CudaSideStream.close
    monkeypatch.setattr(gemm.CudaSideStream, "close",
                        lambda self: (closed.append((self.handle, _gpu.capture is None)), original(self)))
    monkeypatch.setattr(graph, "use_side_stream", True)
    plans = []
    for seed in (5, 6):
        model, rng = MODELS["gaussian"](), Generator(seed)
        plans.append(compile_step(model, Adam(model.parameters()), lambda x, m=model, r=rng: m.loss(x, r), BATCHES[0]))
    first, second = plans
    del plans
    first.capture()
    handle = first.graph.side.handle
    gc.disable()  # the collector runs where the test says, not at an allocation of its own choosing
    try:
        del first
        middle = len(second.tape) // 2
        run = second.tape[middle]

        def run_then_collect():
            run()
            gc.collect()
        second.tape[middle] = run_then_collect
        second.capture()
    finally:
        gc.enable()
    assert closed == [(handle, True)]
    second.tape[middle] = run
    assert np.isfinite([second.step(x).item() for x in BATCHES[1:]]).all()
