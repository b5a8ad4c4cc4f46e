"""The new activations, losses and activation modules on device="cuda" arrays, on the CPU: tests/strict_array.py's
StrictArray stands in for CuPy (it refuses implicit conversion to NumPy and logs every copy to the host). With the
array formulas on both devices, the results must equal the CPU's bit for bit, and nothing is copied back but the
checks that read data (BCE's x in [0, 1], gaussian_nll_loss's var ≥ 0: one bool each, as torch's)."""
import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import nn
from minivae._backend import use_cuda_kernels, use_numba
from tests.strict_array import UPLOADS, StrictArray, emulating, record


@pytest.fixture(autouse=True)
def strict_device():
    with use_numba(False), use_cuda_kernels(False), emulating():
        yield


FUNCTIONS = [
    ("leaky_relu", lambda x, t, v: F.leaky_relu(x, 0.2), 0),
    ("elu", lambda x, t, v: F.elu(x, 0.7), 0),
    ("gelu", lambda x, t, v: F.gelu(x), 0),
    ("gelu_tanh", lambda x, t, v: F.gelu(x, approximate="tanh"), 0),
    ("silu", lambda x, t, v: F.silu(x), 0),
    ("softplus_module", lambda x, t, v: nn.Softplus(beta=2.0, threshold=3.0)(x), 0),
    ("mlp_gelu", lambda x, t, v: MLPS[x.dtype, x.device](x), 0),
    ("mse_loss", lambda x, t, v: F.mse_loss(x, t), 0),
    ("binary_cross_entropy", lambda x, t, v: F.binary_cross_entropy(ops_sigmoid(x), t, reduction="sum"), 1),
    ("gaussian_nll_loss", lambda x, t, v: F.gaussian_nll_loss(x, t, v, full=True), 1),
]


MLPS = {}  # (dtype, device) → the same MLP, made before the recorded block (its weights are uploaded once)


def ops_sigmoid(x):
    return mv.ops.sigmoid(x)


@pytest.mark.parametrize("name, fn, reads", FUNCTIONS, ids=[f[0] for f in FUNCTIONS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_on_the_device_as_on_the_cpu_with_no_hidden_copy(name, fn, reads, dtype):
    rng = np.random.default_rng(0)
    x, t, v = rng.normal(size=(3, 4)) * 3, rng.uniform(0, 1, (3, 4)), rng.uniform(1e-8, 2, (3, 4))
    x[0, :2] = [1e4, -1e4]
    for device in ("cpu", "cuda"):
        MLPS[np.dtype(dtype), device] = nn.MLP((4, 3, 2), "gelu", rng=mv.random.Generator(0), dtype=dtype, device=device)
    results = []
    for device in ("cpu", "cuda"):
        xs, ts, vs = (mv.tensor(a.astype(dtype), device=device, requires_grad=True) for a in (x, t, v))
        with record() as log, record(UPLOADS) as uploads:
            y = fn(xs, ts, vs)
            y.backward(mv.ones(*y.shape, dtype=dtype, device=device).data * 0.5)
        if device == "cuda":
            assert isinstance(y.data, StrictArray) and isinstance(xs.grad, StrictArray)
            assert [kind for kind, _, _ in log] == ["bool"] * reads, log
            # (erf's table of Taylor coefficients is uploaded once a device and dtype, maybe within this block)
            assert [u for u in uploads if not u[2].split(":")[0].endswith("special.py")] == [], uploads
        results.append([y.numpy()] + [a.grad.get() if device == "cuda" else a.grad
                                      for a in (xs, ts, vs) if a.grad is not None])
    for a, b in zip(*results):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_array_equal(a, b)
