"""nn.BatchNorm2d (BatchNorm1d's implementation, nn._BatchNorm, for (N, C, H, W)): without torch, against the
normalization, its gradient and the running-statistics update written out in NumPy per channel over (N, H, W); against
torch in training and eval mode (values, gradients of x, w and b, running_mean, running_var, num_batches_tracked),
momentum None, the options, torch's state_dict both ways; the errors; the strict device stand-in."""
import numpy as np
import pytest

import minivae as mv
from minivae import nn
from tests.strict_array import assert_device_run_is_the_cpus

RTOL = 1e-10


def numpy_batch_norm2d(x, w, b, g, eps):
    """y = x̂·w + b, x̂ = (x − μ)/√(σ² + ε), μ and σ² (biased) per channel over (N, H, W); x̄ = (w/√(σ² + ε))·(ḡ − mean ḡ
    − x̂·mean(ḡ·x̂)), w̄ = Σ ḡ·x̂, b̄ = Σ ḡ (sums and means per channel over N, H, W); and the unbiased σ²·n/(n − 1)."""
    axes = (0, 2, 3)
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / n
    xhat = (x - mu) / np.sqrt(var + eps)
    wc = w[None, :, None, None]
    y = xhat * wc + b[None, :, None, None]
    gx = wc / np.sqrt(var + eps) * (g - g.mean(axis=axes, keepdims=True)
                                    - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return y, gx, (g * xhat).sum(axis=axes), g.sum(axis=axes), mu.ravel(), var.ravel() * n / (n - 1)


def _module(c, rng, **kwargs):
    m = nn.BatchNorm2d(c, dtype=np.float64, **kwargs)
    if m.affine:
        with mv.no_grad():
            m.weight.copy_(mv.tensor(rng.normal(size=c)))
            m.bias.copy_(mv.tensor(rng.normal(size=c)))
    return m


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (1, 2, 3, 3), (2, 1, 1, 4)])
def test_training_steps_match_the_formula_written_out(shape):
    """Two training steps (y and x̄, w̄, b̄ through the batch's statistics; the running statistics r ← (1 − m)·r +
    m·(μ, σ²·n/(n − 1)), n = N·H·W) and an eval step (the running statistics, x̄ = ḡ·w/√(r_σ² + ε))."""
    rng = np.random.default_rng(sum(shape))
    c, eps, m_ = shape[1], 1e-3, 0.3
    m = _module(c, rng, eps=eps, momentum=m_)
    w, b = m.weight.data.copy(), m.bias.data.copy()
    r_mean, r_var = np.zeros(c), np.ones(c)
    for step in range(2):
        x = rng.normal(size=shape) * (step + 2) + step
        g = rng.normal(size=shape)
        t = mv.tensor(x, requires_grad=True)
        y = m(t)
        (y * g).sum().backward()
        want_y, want_gx, want_gw, want_gb, mu, var_unbiased = numpy_batch_norm2d(x, w, b, g, eps)
        np.testing.assert_allclose(y.data, want_y, rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(t.grad, want_gx, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(m.weight.grad, want_gw, rtol=RTOL, atol=1e-12)
        np.testing.assert_allclose(m.bias.grad, want_gb, rtol=RTOL, atol=1e-12)
        m.zero_grad()
        r_mean, r_var = (1 - m_) * r_mean + m_ * mu, (1 - m_) * r_var + m_ * var_unbiased
        np.testing.assert_allclose(m.running_mean.data, r_mean, rtol=RTOL)
        np.testing.assert_allclose(m.running_var.data, r_var, rtol=RTOL)
        assert int(m.num_batches_tracked.item()) == step + 1
    m.eval()
    x, g = rng.normal(size=shape), rng.normal(size=shape)
    t = mv.tensor(x, requires_grad=True)
    y = m(t)
    (y * g).sum().backward()
    scale = (w / np.sqrt(r_var + eps))[None, :, None, None]
    np.testing.assert_allclose(y.data, (x - r_mean[None, :, None, None]) * scale + b[None, :, None, None], rtol=RTOL,
                               atol=1e-12)
    np.testing.assert_allclose(t.grad, g * scale, rtol=RTOL)
    assert int(m.num_batches_tracked.item()) == 2  # (eval does not count)


def _run(lib, c, shape, seed, steps=3, **kwargs):
    """Training steps (forward, backward with a random ḡ) then an eval step, the same module options in both
    libraries; every output, gradient and buffer, as NumPy arrays."""
    rng = np.random.default_rng(seed)
    if lib is mv:
        m = nn.BatchNorm2d(c, dtype=np.float64, **kwargs)
    else:
        m = lib.nn.BatchNorm2d(c, dtype=lib.float64, **kwargs)
    weight, bias = rng.normal(size=c), rng.normal(size=c)
    if m.weight is not None:
        with lib.no_grad():
            m.weight.copy_(lib.tensor(weight))
            m.bias.copy_(lib.tensor(bias))
    out = []

    def arr(t):
        if t is None:
            return None
        return t.detach().numpy() if lib is not mv else (t.data if isinstance(t, mv.Tensor) else np.asarray(t))
    for step in range(steps + 1):
        if step == steps:
            m.eval()
        x = lib.tensor(rng.normal(size=shape) * (step + 1) - step, requires_grad=True)
        g = rng.normal(size=shape)
        y = m(x)
        if lib is mv:
            (y * g).sum().backward()
        else:
            y.backward(lib.tensor(g))
        grads = [x.grad] + ([m.weight.grad, m.bias.grad] if m.weight is not None else [])
        out.append([arr(y)] + [arr(v) for v in grads] + [arr(m.running_mean), arr(m.running_var),
                                                        arr(m.num_batches_tracked)])
        m.zero_grad()
    return out


@pytest.mark.parametrize("kwargs", [{}, {"momentum": None}, {"momentum": 0.6, "eps": 1e-2},
                                    {"track_running_stats": False}, {"affine": False}])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (2, 2, 1, 3)])
def test_training_then_eval_as_torchs(shape, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = _run(mv, shape[1], shape, 0, **kwargs), _run(torch, shape[1], shape, 0, **kwargs)
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert len(a) == len(b)
        for j, (u, v) in enumerate(zip(a, b)):
            if v is None:
                assert u is None, (i, j)
            else:
                np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-11, err_msg=f"step {i} entry {j}")


def test_state_dict_keys_and_torch_state_dicts_load_both_ways():
    torch = pytest.importorskip("torch")
    theirs = torch.nn.BatchNorm2d(3)
    x = torch.tensor(np.random.default_rng(1).normal(size=(4, 3, 5, 5)) * 2 + 1, dtype=torch.float32)
    for _ in range(3):
        theirs(x)
    theirs.eval()
    ours = nn.BatchNorm2d(3)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(state) == ["weight", "bias", "running_mean", "running_var",
                                                     "num_batches_tracked"]
    ours.load_state_dict(state)
    assert int(ours.num_batches_tracked.item()) == 3 and ours.num_batches_tracked.dtype == np.int64
    ours.eval()
    np.testing.assert_allclose(ours(mv.tensor(x.numpy())).data, theirs(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    ours.train()
    ours(mv.tensor(x.numpy() * 3))
    back = torch.nn.BatchNorm2d(3)
    back.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in ours.state_dict().items()})
    np.testing.assert_allclose(back.running_var.numpy(), ours.running_var.data, rtol=1e-6)
    assert int(back.num_batches_tracked) == 4


def test_inputs_other_than_4d_are_refused_and_the_repr_is_torchs():
    m = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
        m(mv.tensor(np.ones((3, 4, 4), np.float32)))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        nn.BatchNorm1d(3)(mv.tensor(np.ones((2, 3, 4, 4), np.float32)))
    with pytest.raises(ValueError, match="BatchNorm2d: num_features must be an integer >= 1, got 0"):
        nn.BatchNorm2d(0)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel when training"):
        m(mv.tensor(np.ones((1, 3, 1, 1), np.float32)))
    assert repr(m) == "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)"


def test_on_the_device_copy_nothing_to_the_host():
    """A training step and an eval step of BatchNorm2d made on "cuda" (the strict stand-in): the CPU's values,
    gradients and buffers bit for bit, no copy to the host."""
    x = np.random.default_rng(2).normal(size=(3, 2, 4, 5)).astype(np.float32)

    def run(device):
        m = nn.BatchNorm2d(2, device=device)
        t = mv.tensor(x, device=device, requires_grad=True)
        (m(t) ** 2).sum().backward()
        m.eval()
        y = m(mv.tensor(x, device=device))
        return [y, t.grad, m.weight.grad, m.bias.grad, m.running_mean, m.running_var]
    assert_device_run_is_the_cpus(run)
