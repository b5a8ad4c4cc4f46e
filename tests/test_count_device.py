"""The count likelihoods with device="cuda" on the strict CuPy stand-in (tests/strict_array.py), as tests/test_device.py
runs the image ones, through its helpers (library="observed", whose ℓ̄ stays on the device, and gate="decoder" too): a
few training steps equal the CPU's bit for bit and copy nothing to the host, and eval's ELBO and importance-sampled
log p(x) stay on the device."""
import numpy as np
import pytest

import minivae as mv
import tests.test_device as device_tests
from minivae import objectives
from minivae._backend import use_cuda_kernels, use_numba
from minivae.distributions import Poisson
from minivae.models import BernoulliVAE, CategoricalVAE, GaussianVAE
from minivae.random import Generator
from tests.strict_array import StrictArray, describe, emulating, record

X_DIM = device_tests.X_DIM
# counts of means 0.5 to 20, drawn by the project's Generator
COUNTS = Poisson(np.broadcast_to(np.geomspace(0.5, 20, X_DIM), (12, X_DIM)).copy()).sample(
    rng=Generator(3)).numpy().astype(np.float32)
CASES = {
    "gaussian-poisson": lambda device: GaussianVAE(X_DIM, (8,), 3, likelihood="poisson", rng=Generator(0), device=device),
    "gaussian-negative_binomial": lambda device: GaussianVAE(X_DIM, (8,), 3, likelihood="negative_binomial",
                                                             rng=Generator(0), device=device),
    "categorical-negative_binomial": lambda device: CategoricalVAE(X_DIM, (8,), 3, 4, likelihood="negative_binomial",
                                                                   rng=Generator(0), device=device),
    "gaussian-zero_inflated_negative_binomial": lambda device: GaussianVAE(
        X_DIM, (8,), 3, likelihood="zero_inflated_negative_binomial", rng=Generator(0), device=device),
    "bernoulli-reinforce+nvil-poisson": lambda device: BernoulliVAE(X_DIM, (8,), 5, estimator="reinforce",
                                                                    baseline_hidden=5, likelihood="poisson",
                                                                    rng=Generator(0), device=device),
    "gaussian-negative_binomial-observed": lambda device: GaussianVAE(X_DIM, (8,), 3, likelihood="negative_binomial",
                                                                      library="observed", rng=Generator(0),
                                                                      device=device),
    "categorical-zero_inflated_negative_binomial-observed-decoder": lambda device: CategoricalVAE(
        X_DIM, (8,), 3, 4, likelihood="zero_inflated_negative_binomial", library="observed", gate="decoder",
        rng=Generator(0), device=device),
}


@pytest.fixture(autouse=True)
def formulas_only():
    """As test_device's: the array formulas on both devices, "cuda" = strict arrays."""
    with use_numba(False), use_cuda_kernels(False), emulating():
        yield


@pytest.mark.parametrize("name", CASES)
def test_count_training_steps_match_the_cpu_and_copy_nothing_back(name, monkeypatch):
    monkeypatch.setitem(device_tests.MODELS, name, CASES[name])
    monkeypatch.setattr(device_tests, "X", COUNTS)
    expected, expected_losses, _, _, on_cpu = device_tests._train_steps(name, "cpu")
    params, losses, conversions, uploads, model = device_tests._train_steps(name, "cuda")
    assert conversions == [], "device→host copies inside a training step:\n" + describe(conversions)
    assert all("sampling.py" in where for _, _, where in uploads), describe(uploads)
    assert model.device == "cuda" and np.isfinite(losses).all()
    if "negative_binomial" in name:
        assert isinstance(model.log_theta.data, StrictArray) and "log_theta" in expected
    if "zero_inflated" in name and "decoder" not in name:
        assert isinstance(model.gate_logits.data, StrictArray) and "gate_logits" in expected
    if "observed" in name:  # ℓ̄ of the training rows, updated on the device as on the host
        assert isinstance(model.library_mean.data, StrictArray) and device_tests.host(model.library_rows) == 12
        np.testing.assert_array_equal(device_tests.host(model.library_mean), on_cpu.library_mean.numpy())
    np.testing.assert_array_equal(np.array(losses), np.array(expected_losses))
    for n in expected:
        np.testing.assert_array_equal(params[n], expected[n], err_msg=n)


@pytest.mark.parametrize("name", ["gaussian-poisson", "gaussian-negative_binomial",
                                  "gaussian-zero_inflated_negative_binomial", "gaussian-negative_binomial-observed",
                                  "categorical-zero_inflated_negative_binomial-observed-decoder"])
def test_count_eval_stays_on_the_device(name):
    def run(device):
        model, x, rng = CASES[name](device), mv.tensor(COUNTS[:5], device=device), Generator(9)
        with mv.no_grad(), record() as log:
            out = [objectives.elbo(model, x, rng), objectives.log_likelihood_is(model, x, rng, k=7, chunk=3)]
        assert log == [], describe(log)
        return [device_tests.host(t) for t in out]
    for a, b in zip(run("cpu"), run("cuda")):
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
