"""MLP (and the models' hidden layers, through nn.ACTIVATION_MODULES) takes the activations that minivae.nn has as
modules by name: the newer ones (selu, celu, mish, hardswish, relu6, hardtanh, hardsigmoid, softsign, log_sigmoid)
as the older; each hidden layer the nn module of that name, the weights He's or Glorot's by the activation's kind, the
output the formula written in NumPy (and torch's functions); an unknown name a ValueError listing the choices."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import nn
from minivae.models import GaussianVAE
from minivae.random import Generator

SELU_ALPHA, SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def softplus(x):
    return np.logaddexp(0, x)


NUMPY = {  # the formulas, for float64 x
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "celu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "mish": lambda x: x * np.tanh(softplus(x)),
    "hardswish": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "relu6": lambda x: np.clip(x, 0, 6),
    "hardtanh": lambda x: np.clip(x, -1, 1),
    "hardsigmoid": lambda x: np.clip(x + 3, 0, 6) / 6,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "log_sigmoid": lambda x: -softplus(-x),
}
MODULES = {"selu": nn.SELU, "celu": nn.CELU, "mish": nn.Mish, "hardswish": nn.Hardswish, "relu6": nn.ReLU6,
           "hardtanh": nn.Hardtanh, "hardsigmoid": nn.Hardsigmoid, "softsign": nn.Softsign,
           "log_sigmoid": nn.LogSigmoid}
HE = ("celu", "mish", "hardswish", "relu6")  # (ReLU-like; the others bounded, or SELU: Glorot)


@pytest.mark.parametrize("name", sorted(NUMPY))
def test_mlp_takes_the_activation_by_name(name):
    mlp = nn.MLP((6, 5, 4, 3), name, rng=Generator(0), dtype=np.float64)
    assert [type(m) for m in mlp] == [nn.Linear, MODULES[name], nn.Linear, MODULES[name], nn.Linear]
    same = nn.Linear(6, 5, rng=Generator(0), init="he" if name in HE else "glorot", dtype=np.float64)
    np.testing.assert_array_equal(mlp[0].weight.numpy(), same.weight.numpy())
    x = np.random.default_rng(1).normal(size=(7, 6)) * 4
    h = x
    for i, layer in enumerate(layer for layer in mlp if isinstance(layer, nn.Linear)):
        h = h @ layer.weight.numpy() + layer.bias.numpy()
        if i < 2:
            h = NUMPY[name](h)
    np.testing.assert_allclose(mlp(mv.tensor(x)).numpy(), h, rtol=1e-12, atol=1e-14)


def test_he_and_glorot_weights_by_the_kind_of_activation():
    """A 400 × 400 layer: He's variance 2/400 for the ReLU-like ones, Glorot's 2/(400 + 400) for the others."""
    for name in NUMPY:
        w = nn.MLP((400, 400, 1), name, rng=Generator(2))[0].weight.numpy()
        expected = 2 / 400 if name in HE else 2 / 800
        assert w.var() == pytest.approx(expected, rel=0.05), name


def test_against_torch_functions():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    fns = {"selu": F.selu, "celu": F.celu, "mish": F.mish, "hardswish": F.hardswish, "relu6": F.relu6,
           "hardtanh": F.hardtanh, "hardsigmoid": F.hardsigmoid, "softsign": F.softsign, "log_sigmoid": F.logsigmoid}
    x = np.linspace(-6, 6, 25)
    for name, fn in fns.items():
        ours = nn.ACTIVATION_MODULES[name]()(mv.tensor(x)).numpy()
        np.testing.assert_allclose(ours, fn(torch.tensor(x)).numpy(), rtol=1e-6, atol=1e-7, err_msg=name)


def test_an_unknown_name_lists_the_choices():
    for bad in ("swish", "Mish", None, 3, ["mish"]):  # (a list: not a TypeError of a dict lookup)
        with pytest.raises(ValueError, match="activation must be one of .*'mish'.*'selu'.*not"):
            nn.MLP((2, 2, 2), bad)


@pytest.mark.parametrize("name,arch", [("mish", "mlp"), ("selu", "mlp"), ("hardswish", "conv")])
def test_a_model_trains_with_the_activation(name, arch):
    """GaussianVAE's hidden layers (MLP, or the convolutions' activations) by the name: a finite loss and gradients."""
    x_dim = 64 if arch == "conv" else 12
    kwargs = dict(channels=(2,)) if arch == "conv" else {}
    model = GaussianVAE(x_dim=x_dim, hidden=(8,), z_dim=2, activation=name, arch=arch, rng=Generator(0), **kwargs)
    assert any(type(m) is MODULES[name] for m in model.modules())
    x = mv.tensor((np.random.default_rng(0).uniform(size=(3, x_dim)) > 0.5).astype(np.float32))
    loss = model.loss(x, Generator(1))
    loss = loss[0] if isinstance(loss, tuple) else loss
    loss.backward()
    assert math.isfinite(float(loss.item()))
    assert all(np.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
