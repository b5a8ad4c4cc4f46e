"""Whole models on a real GPU: the same seed gives the same samples as on the CPU, and a few training
steps of each VAE on the GPU (fused CUDA kernels) end where the same steps on the CPU end."""
import numpy as np
import pytest

import minivae as mv
from minivae.distributions import OneHotCategorical
from minivae.models import BernoulliVAE, CategoricalVAE, GaussianVAE
from minivae.optim import Adam
from minivae.random import Generator
from minivae.ops import reshape as ops_reshape


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generator_draws_equal_on_both_devices(dtype):
    n = 4099
    np.testing.assert_array_equal(Generator(9, 2 ** 32 - 1).uniform(n, dtype, device="cuda").get(),
                                  Generator(9, 2 ** 32 - 1).uniform(n, dtype))
    for draw in ("normal", "gumbel"):
        got = getattr(Generator(2 ** 40, 3), draw)(n, dtype, device="cuda").get()
        np.testing.assert_allclose(got, getattr(Generator(2 ** 40, 3), draw)(n, dtype), rtol=4 * np.finfo(dtype).eps,
                                   atol=4 * np.finfo(dtype).eps)
    a, b = Generator(1), Generator(1)
    a.normal(7, dtype, device="cuda")
    b.normal(7, dtype)
    assert a.counter == b.counter                             # the stream advances alike


def test_categorical_samples_equal_on_both_devices():
    logits = np.random.default_rng(0).standard_normal((64, 20, 10)).astype(np.float32)
    cpu = OneHotCategorical(logits=mv.tensor(logits)).sample(rng=Generator(4)).numpy()
    gpu = OneHotCategorical(logits=mv.tensor(logits, device="cuda")).sample(rng=Generator(4)).numpy()
    np.testing.assert_array_equal(gpu, cpu)


def _train(kind, estimator, device, steps=4):
    rng = Generator(0)
    model = (GaussianVAE(x_dim=784, hidden=(64, 32), z_dim=8, rng=rng) if kind == "gaussian" else
             GaussianVAE(x_dim=784, hidden=(64, 32), z_dim=8, flow=estimator, flow_length=2, rng=rng) if kind == "flow" else
             GaussianVAE(x_dim=784, hidden=(64, 32), z_dim=8, likelihood=estimator, rng=rng) if kind == "likelihood" else
             GaussianVAE(x_dim=784, hidden=(32,), z_dim=8, arch="conv", channels=(8, 16), rng=rng) if kind == "conv" else
             BernoulliVAE(x_dim=784, hidden=(64, 32), n_latent=12, estimator=estimator, rng=rng) if kind == "bernoulli" else
             CategoricalVAE(x_dim=784, hidden=(64, 32), n_latent=6, n_categories=5, estimator=estimator, rng=rng))
    model.to(device)
    opt = Adam(model.parameters(), lr=1e-3)
    x = (np.random.default_rng(1).random((32, 784)) < 0.2).astype(np.float32)
    losses = []
    for step in range(steps):
        loss = model.loss(mv.tensor(x, device=device), rng, step=step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, {name: p.numpy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("kind,estimator", [("gaussian", None), ("categorical", "gumbel_softmax"),
                                            ("categorical", "straight_through"), ("categorical", "reinforce"),
                                            ("bernoulli", "gumbel_softmax"), ("bernoulli", "straight_through"),
                                            ("bernoulli", "reinforce"), ("conv", None), ("categorical", "rebar"),
                                            ("bernoulli", "rebar"), ("flow", "planar"), ("flow", "radial"),
                                            ("flow", "iaf"), ("likelihood", "gaussian"),
                                            ("likelihood", "continuous_bernoulli"),
                                            ("likelihood", "discretized_logistic")])
def test_training_steps_on_the_gpu_match_the_cpu(kind, estimator):
    cpu_losses, cpu = _train(kind, estimator, "cpu")
    gpu_losses, gpu = _train(kind, estimator, "cuda")
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4)
    for name in cpu:
        diff = np.abs(gpu[name] - cpu[name])
        # Adam moves every entry by at most lr a step, whatever its gradient; an entry whose gradient is
        # a near-cancelling sum may take a step of either sign on the two devices, so a few may differ
        # by that much, and all others agree to float32 rounding
        assert diff.max() <= 4 * 1e-3 * 1.001, name
        assert (diff <= 1e-5 + 1e-3 * np.abs(cpu[name])).mean() >= 0.999, name


@pytest.mark.parametrize("kind,options,packed", [("RNN", {}, False), ("GRU", {}, False), ("LSTM", {}, False),
                                                  ("LSTM", {"proj_size": 3}, False), ("GRU", {}, True),
                                                  ("LSTM", {"proj_size": 3}, True)])
def test_recurrent_layers_on_the_gpu_match_the_cpu(kind, options, packed):
    """A two-layer bidirectional recurrent layer's output and every gradient, float64, on both devices (CuPy's tanh,
    sigmoid and products against NumPy's: an ulp or a few a step, over 7 steps); the projected LSTM, and sequences of
    lengths 7, 2 and 5 packed (their masks uploaded once)."""
    from minivae.nn.utils.rnn import pack_padded_sequence
    x = np.random.default_rng(2).standard_normal((7, 3, 5))
    width = 2 * options.get("proj_size", 4)
    g = np.random.default_rng(3).standard_normal((14 if packed else 21, width))
    results = {}
    for device in ("cpu", "cuda"):
        layer = getattr(mv.nn, kind)(5, 4, num_layers=2, bidirectional=True, dtype=np.float64, rng=Generator(1),
                                     **options)
        layer.to(device)
        xt = mv.tensor(x, device=device, requires_grad=True)
        if packed:
            out = layer(pack_padded_sequence(xt, [7, 2, 5], enforce_sorted=False))[0].data
        else:
            out = ops_reshape(layer(xt)[0], (21, width))
        out.backward(mv.tensor(g, device=device))
        results[device] = [out.numpy(), xt.grad.get() if device == "cuda" else xt.grad] + [
            p.grad.get() if device == "cuda" else p.grad for p in layer.parameters()]
    assert len(results["cuda"]) == len(results["cpu"]) > 2
    for gpu, cpu in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-9, atol=1e-12)
