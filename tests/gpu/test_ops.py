"""The fused ops on a real GPU: float64 gradchecks through the kernels, and each op's values and
VJP on the GPU against the same op on the CPU (the NumPy formula) for one input and one random
upstream gradient, float32 and float64."""
import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae.random import Generator


def _case(name, device, dtype):
    """(op on tensors, input shapes); constant operands are made on ``device`` in ``dtype``."""
    def const(a):
        return mv.tensor(np.asarray(a), device=device, dtype=dtype)
    return {
        "softmax": (lambda x: ops.softmax(x, temperature=0.7), [(3, 33)]),
        "softmax_long_rows": (lambda x: ops.softmax(x, temperature=2.0), [(2, 1100)]),
        "log_softmax": (lambda x: ops.log_softmax(x, temperature=0.3), [(4, 10)]),
        "gumbel_softmax": (lambda x: ops.gumbel_softmax(x, Generator(3, 2 ** 32 - 1), temperature=0.5), [(3, 7)]),
        "reparameterize": (lambda m, v: ops.reparameterize(m, v, const(np.linspace(-2, 2, 12).reshape(3, 4))), [(3, 4), (3, 4)]),
        "kl_standard_normal": (ops.kl_standard_normal, [(5, 3), (5, 3)]),
        # both outputs, each with its own share of the random upstream gradient
        "reparameterize_kl": (lambda m, v: ops.concatenate(list(ops.reparameterize_kl(
            m, v, const(np.linspace(-2, 2, 12).reshape(3, 4))))), [(3, 4), (3, 4)]),
        "categorical_kl": (lambda x: ops.categorical_kl(x, const(np.zeros((2, 5)))), [(4, 2, 5)]),
        # the sample and its KL of one node, both outputs (a fixed prior: its two kernels), at a fixed (seed, counter)
        "gumbel_softmax_kl": (lambda x: ops.concatenate([ops.reshape(t, (-1,)) for t in ops.gumbel_softmax_kl(
            x, const(np.linspace(-1, 1, 10).reshape(2, 5)), Generator(3, 2 ** 32 - 1), temperature=0.5)]), [(4, 2, 5)]),
        # the Binary Concrete sample and its Bernoulli KL (a fixed prior per latent: its two kernels), both outputs
        "binary_concrete_kl": (lambda x: ops.concatenate([ops.reshape(t, (-1,)) for t in ops.binary_concrete_kl(
            x, const(np.linspace(-1, 1, 5)), Generator(3, 2 ** 32 - 1), temperature=0.5)]), [(4, 2, 5)]),
        "bce_with_logits": (lambda x: ops.bce_with_logits(x, const(np.linspace(0, 1, 12).reshape(3, 4))), [(3, 4)]),
        "bernoulli_log_prob": (lambda x: ops.bernoulli_log_prob(x, const(np.linspace(0, 1, 12).reshape(3, 4))), [(3, 4)]),
        "categorical_kl_prior": (lambda x: ops.categorical_kl(x, const(np.linspace(3, 5, 10).reshape(2, 5))), [(4, 2, 5)]),
        "negative_elbo": (lambda ll, kl: ops.negative_elbo(ll, kl, 0.7), [(5, 6), (5, 3)]),
        # the data's gradient too (x is a leaf that requires one here)
        "bernoulli_negative_elbo": (lambda logits, x, kl: ops.bernoulli_negative_elbo(logits, x, kl, 0.7),
                                    [(5, 6), (5, 6), (5, 3)]),
    }[name]


NAMES = ["softmax", "softmax_long_rows", "log_softmax", "gumbel_softmax", "reparameterize", "kl_standard_normal",
         "reparameterize_kl", "categorical_kl", "gumbel_softmax_kl", "binary_concrete_kl", "categorical_kl_prior", "bce_with_logits",
         "bernoulli_log_prob", "negative_elbo", "bernoulli_negative_elbo"]


def _inputs(shapes, device, dtype):
    rng = np.random.default_rng(0)
    return [mv.tensor(rng.standard_normal(s), device=device, dtype=dtype, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_on_the_gpu(name):
    fn, shapes = _case(name, "cuda", np.float64)
    assert mv.gradcheck(fn, _inputs(shapes, "cuda", np.float64), full_max=64)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_op_equals_the_cpu_op(name, dtype):
    results = {}
    for device in ("cpu", "cuda"):
        fn, shapes = _case(name, device, dtype)
        xs = _inputs(shapes, device, dtype)
        out = fn(*xs)
        g = np.random.default_rng(1).standard_normal(out.shape)
        out.backward(mv.tensor(g, device=device, dtype=out.dtype))
        assert out.device == device and all(x.grad is not None for x in xs)
        results[device] = [out.numpy()] + [x.grad if device == "cpu" else x.grad.get() for x in xs]
    tol = 2e-5 if dtype == np.float32 else 1e-11
    for cpu, gpu in zip(results["cpu"], results["cuda"]):
        np.testing.assert_allclose(gpu, cpu, rtol=tol, atol=tol)
