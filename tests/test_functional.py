"""minivae.functional against torch.nn.functional (values and gradients, with a random upstream gradient), and the
arguments it refuses."""
import inspect

import numpy as np
import pytest

import minivae as mv
import minivae.functional as F


def test_gumbels_of_another_shape_are_refused():
    """Noise (K,) for logits (B, K) broadcast: every row perturbed by the same draw (correlated samples); noise larger
    than the logits made a larger output."""
    logits = mv.tensor(np.zeros((2, 3)))
    for gumbels in (np.zeros(3), np.zeros((1, 3)), [0.0, 1.0, 2.0], mv.tensor(np.zeros((2, 2, 3)))):
        with pytest.raises(ValueError, match="gumbels must have the logits' shape \\(2, 3\\), got"):
            F.gumbel_softmax(logits, gumbels=gumbels)
    with pytest.raises(ValueError, match="shape \\(3,\\), got \\(2, 3\\)"):
        F.gumbel_softmax(mv.tensor(np.zeros(3)), hard=True, gumbels=np.zeros((2, 3)))
    y = F.gumbel_softmax(mv.tensor(np.zeros((1, 3))), gumbels=[[0.0, 1.0, 2.0]])  # a nested list of the right shape
    np.testing.assert_allclose(y.numpy(), np.exp([[0.0, 1.0, 2.0]]) / np.exp([0.0, 1.0, 2.0]).sum())


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("hard", [False, True])
def test_gumbel_softmax_with_given_noise_matches_torch_formula(axis, hard):
    """torch's gumbel_softmax draws its own noise; with the same noise g its formula is softmax((l + g)/τ, dim), and
    hard: y_hard − y.detach() + y."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    logits, g, upstream = rng.standard_normal((3, 4)), rng.gumbel(size=(3, 4)), rng.standard_normal((3, 4))
    x = mv.tensor(logits, requires_grad=True)
    y = F.gumbel_softmax(x, tau=0.7, hard=hard, dim=axis, gumbels=g)
    (y * mv.tensor(upstream)).sum().backward()
    tx = torch.tensor(logits, requires_grad=True)
    soft = torch.softmax((tx + torch.tensor(g)) / 0.7, dim=axis)
    ty = soft
    if hard:
        ty = torch.zeros_like(soft).scatter_(axis, soft.argmax(dim=axis, keepdim=True), 1.0) - soft.detach() + soft
    (ty * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits_matches_torch_for_each_reduction(reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    logits = np.concatenate([rng.standard_normal(10) * 5, [1e4, -1e4, 50.0, -50.0]]).astype(np.float32).reshape(2, 7)
    target = rng.random((2, 7)).astype(np.float32)
    x = mv.tensor(logits, requires_grad=True)
    ours = F.binary_cross_entropy_with_logits(x, mv.tensor(target), reduction=reduction)
    tx = torch.tensor(logits, requires_grad=True)
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(tx, torch.tensor(target), reduction=reduction)
    upstream = rng.standard_normal(tuple(theirs.shape)).astype(np.float32)
    (ours * mv.tensor(upstream)).sum().backward()
    (theirs * torch.tensor(upstream)).sum().backward()
    assert ours.dtype == np.float32 and ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax_with_temperature_match_torch(axis):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(4).standard_normal((3, 5)) * 30
    for ours, theirs in ((F.softmax, torch.softmax), (F.log_softmax, torch.log_softmax)):
        np.testing.assert_allclose(ours(mv.tensor(x), dim=axis, temperature=0.3).numpy(),
                                   theirs(torch.tensor(x) / 0.3, dim=axis).numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("axis", [(0, 1), None])
def test_hard_gumbel_softmax_over_several_axes_is_refused(axis):
    """The soft sample is a softmax over the axes jointly, but the one-hot was taken along the first of them alone: for
    (2, 3) logits over (0, 1), three ones (one per column), not one; the soft sample over several axes stays."""
    logits, g = mv.tensor(np.arange(6.0).reshape(2, 3)), np.zeros((2, 3))
    with pytest.raises(ValueError, match="hard=True takes one axis"):
        F.gumbel_softmax(logits, hard=True, axis=axis, gumbels=g)
    soft = F.gumbel_softmax(logits, axis=axis, gumbels=g).numpy()
    np.testing.assert_allclose(soft, np.exp(np.arange(6.0) - 5).reshape(2, 3) / np.exp(np.arange(6.0) - 5).sum())
    one = F.gumbel_softmax(mv.tensor(np.arange(3.0)), hard=True, axis=None, gumbels=np.zeros(3))  # one axis in all
    np.testing.assert_array_equal(one.numpy(), [0.0, 0.0, 1.0])


@pytest.mark.parametrize("f", [F.softmax, F.log_softmax, F.gumbel_softmax])
def test_axis_minus_one_and_dim_together_are_refused(f):
    """axis=-1 given beside dim=0 was taken as dim=0 (the default -1 and a -1 given are one object in Python), where
    axis=0 beside dim=0 was refused; the signature still reads axis=-1, and each name alone works."""
    x = mv.tensor(np.random.default_rng(5).standard_normal((2, 3)))
    g = np.zeros((2, 3))
    kwargs = {"gumbels": g} if f is F.gumbel_softmax else {}
    for both in ({"axis": -1, "dim": 0}, {"axis": 0, "dim": 1}, {"axis": 1, "dim": -1}):
        with pytest.raises(TypeError, match="give axis= or dim=, not both"):
            f(x, **both, **kwargs)
    np.testing.assert_array_equal(f(x, dim=0, **kwargs).numpy(), f(x, axis=0, **kwargs).numpy())
    np.testing.assert_array_equal(f(x, **kwargs).numpy(), f(x, axis=1, **kwargs).numpy())
    assert str(inspect.signature(f).parameters["axis"]) == "axis=-1"
