"""Nearest upsampling by whole factors (ops.upsample_nearest, F.interpolate(mode="nearest"), nn.Upsample): values
against numpy.repeat, the gradient as each block's sum (and the adjoint identity), against torch (values and gradients,
1-D, 2-D and 3-D, scale_factor and size), the errors, the strict device stand-in, and an upsampling decoder that
trains. The float64 gradcheck by hypothesis is in tests/test_ops_gradcheck.py ("upsample_nearest")."""
import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import nn
from minivae.optim import Adam
from minivae.random import Generator
from tests.strict_array import assert_device_run_is_the_cpus

# (input shape, factors per spatial axis)
CASES = [((2, 3, 5), (3,)), ((2, 2, 3, 4), (2, 2)), ((1, 3, 2, 3), (1, 3)), ((2, 1, 2, 3, 2), (2, 1, 3))]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_values_are_numpy_repeat_and_the_gradient_sums_each_block(case):
    shape, factors = CASES[case]
    rng = np.random.default_rng(case)
    x = rng.normal(size=shape)
    want = x
    for axis, s in enumerate(factors):
        want = np.repeat(want, s, axis=2 + axis)
    for kw in ({"scale_factor": factors}, {"size": want.shape[2:]}):
        t = mv.tensor(x, requires_grad=True)
        y = F.interpolate(t, **kw)
        np.testing.assert_array_equal(y.data, want)
        g = rng.normal(size=want.shape)
        (y * g).sum().backward()
        blocks = g.reshape(shape[:2] + sum(((d, s) for d, s in zip(shape[2:], factors)), ()))
        want_grad = blocks.sum(axis=tuple(range(3, 2 + 2 * len(factors), 2)))
        np.testing.assert_allclose(t.grad, want_grad, rtol=1e-13)
        np.testing.assert_allclose((y.data * g).sum(), (x * t.grad).sum(), rtol=1e-12)  # ⟨up(x), g⟩ = ⟨x, x̄⟩


@pytest.mark.parametrize("case", range(len(CASES)))
def test_values_and_gradients_match_torch(case):
    torch = pytest.importorskip("torch")
    shape, factors = CASES[case]
    rng = np.random.default_rng(10 + case)
    x = rng.normal(size=shape)
    for kw in ({"scale_factor": factors}, {"scale_factor": float(factors[0]) if len(set(factors)) == 1 else factors},
               {"size": tuple(d * s for d, s in zip(shape[2:], factors))}):
        tx = torch.tensor(x, requires_grad=True)
        ty = torch.nn.functional.interpolate(tx, mode="nearest", **kw)
        g = rng.normal(size=tuple(ty.shape))
        ty.backward(torch.tensor(g))
        t = mv.tensor(x, requires_grad=True)
        y = F.interpolate(t, mode="nearest", **kw)
        (y * g).sum().backward()
        np.testing.assert_array_equal(y.data, ty.detach().numpy())
        np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-13)


def test_module_repr_and_output_as_torchs():
    torch = pytest.importorskip("torch")
    for kw in ({"scale_factor": 2}, {"scale_factor": (2, 3)}, {"size": (4, 6)}):
        assert repr(nn.Upsample(**kw)) == repr(torch.nn.Upsample(**kw))
        x = np.random.default_rng(0).normal(size=(1, 2, 2, 3)).astype(np.float32)
        np.testing.assert_array_equal(nn.Upsample(**kw)(mv.tensor(x)).data,
                                      torch.nn.Upsample(**kw)(torch.tensor(x)).numpy())


def test_bad_arguments_are_refused_naming_them():
    x = mv.tensor(np.ones((1, 2, 3, 4)))
    with pytest.raises(ValueError, match="either size or scale_factor should be defined"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="only one of size or scale_factor should be defined"):
        F.interpolate(x, size=6, scale_factor=2)
    with pytest.raises(ValueError, match=r"same number of spatial dimensions, got input with spatial dimensions "
                                         r"\[3, 4\] and scale_factor \(2, 2, 2\)"):
        F.interpolate(x, scale_factor=(2, 2, 2))
    with pytest.raises(NotImplementedError, match=r"whole factors ≥ 1 only .* got scale_factor=1.5"):
        F.interpolate(x, scale_factor=1.5)
    with pytest.raises(NotImplementedError, match=r"got size=\(5, 8\) for spatial dimensions \[3, 4\]"):
        F.interpolate(x, size=(5, 8))
    with pytest.raises(NotImplementedError, match=r"only 3D, 4D and 5D input tensors .* got 2D"):
        F.interpolate(mv.tensor(np.ones((2, 3))), scale_factor=2)
    with pytest.raises(NotImplementedError, match="mode 'bilinear' is not implemented here"):
        F.interpolate(x, scale_factor=2, mode="bilinear")
    with pytest.raises(NotImplementedError, match="mode 'bilinear' is not implemented here"):
        nn.Upsample(scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match="align_corners option can only be set with the interpolating modes"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(TypeError, match="scale_factor must be a number or a tuple of numbers"):
        F.interpolate(x, scale_factor="2")


def test_upsampling_on_the_device_copies_nothing_to_the_host():
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 5)).astype(np.float32)

    def run(device):
        t = mv.tensor(x, device=device, requires_grad=True)
        y = F.interpolate(t, scale_factor=(2, 3))
        (y * y).sum().backward()
        return [y, t.grad]
    assert_device_run_is_the_cpus(run)


def test_an_upsampling_decoder_trains():
    """Linear → Unflatten → Upsample → Conv2d(padding="same", reflect) → BatchNorm2d → ReLU → Upsample → Conv2d,
    8×8 images from a code of 4: the reconstruction loss falls by half in 40 Adam steps; every parameter gets a
    gradient."""
    rng = np.random.default_rng(0)
    images = mv.tensor((rng.random((16, 1, 8, 8)) < 0.3).astype(np.float32))
    codes = mv.tensor(rng.normal(size=(16, 4)).astype(np.float32))
    model = nn.Sequential(nn.Linear(4, 8 * 2 * 2, rng=Generator(0)), nn.Unflatten(1, (8, 2, 2)),
                          nn.Upsample(scale_factor=2),
                          nn.Conv2d(8, 8, 3, padding="same", padding_mode="reflect", rng=Generator(1)),
                          nn.BatchNorm2d(8), nn.ReLU(), nn.Upsample(scale_factor=2),
                          nn.Conv2d(8, 1, 3, padding=1, rng=Generator(2)))
    opt = Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = F.mse_loss(model(codes), images)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None and np.abs(p.grad).max() > 0 for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0], losses
