"""One temperature rule everywhere: τ a finite real number > 0 (Python or NumPy scalar, 0-d array or
tensor; bool refused), with the same message from every function that takes one."""
import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import ops
from minivae.distributions import ExpRelaxedCategorical, RelaxedOneHotCategorical
from minivae.models import CategoricalVAE
from minivae.random import Generator

LOGITS = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]])

TAKERS = {
    "softmax": lambda tau: ops.softmax(mv.tensor(LOGITS), temperature=tau),
    "log_softmax": lambda tau: ops.log_softmax(mv.tensor(LOGITS), temperature=tau),
    "F.softmax": lambda tau: F.softmax(mv.tensor(LOGITS), temperature=tau),
    "gumbel_softmax op": lambda tau: ops.gumbel_softmax(mv.tensor(LOGITS), Generator(0), temperature=tau),
    "F.gumbel_softmax": lambda tau: F.gumbel_softmax(mv.tensor(LOGITS), temperature=tau, rng=Generator(0)),
    "F.gumbel_softmax axis 0": lambda tau: F.gumbel_softmax(mv.tensor(LOGITS), temperature=tau, axis=0, rng=Generator(0)),
    "RelaxedOneHotCategorical": lambda tau: RelaxedOneHotCategorical(tau, logits=mv.tensor(LOGITS)).rsample(rng=Generator(0)),
    "ExpRelaxedCategorical": lambda tau: ExpRelaxedCategorical(tau, logits=mv.tensor(LOGITS)).rsample(rng=Generator(0)),
    "CategoricalVAE tau0": lambda tau: CategoricalVAE(4, (3,), 1, 3, tau0=tau, rng=Generator(0)),
    "CategoricalVAE tau_min": lambda tau: CategoricalVAE(4, (3,), 1, 3, tau_min=tau, rng=Generator(0)),
}


@pytest.mark.parametrize("name", sorted(TAKERS))
@pytest.mark.parametrize("tau", [0.5, 2, np.float32(0.5), np.float64(0.5), np.int64(2), np.array(0.5),
                                 mv.tensor(np.float32(0.5))], ids=repr)
def test_real_positive_temperatures_are_accepted(name, tau):
    TAKERS[name](tau)


@pytest.mark.parametrize("name", sorted(TAKERS))
@pytest.mark.parametrize("tau", [0.0, -1.0, np.nan, np.inf, True, np.bool_(True), "1", None, np.array([0.5]), 1j],
                         ids=repr)
def test_bad_temperatures_give_the_one_message(name, tau):
    with pytest.raises(ValueError, match=r"^temperature must be a finite real number > 0, got "):
        TAKERS[name](tau)


def test_a_numpy_temperature_gives_the_same_sample_as_a_float():
    a = ops.gumbel_softmax(mv.tensor(LOGITS), Generator(4), temperature=np.float32(0.5)).numpy()
    b = ops.gumbel_softmax(mv.tensor(LOGITS), Generator(4), temperature=0.5).numpy()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(TAKERS))
def test_a_temperature_on_the_gpu_is_refused_not_copied_behind_the_users_back(name):
    """τ is read on the host (the kernels take it as an argument): float() of a device τ would be a hidden copy
    and a wait for the device at every call, so a device τ is the one message, naming the explicit way."""
    from tests.strict_array import emulating, record

    with emulating():
        tau = mv.tensor(np.float32(0.5)).to("cuda")
        with record() as log, pytest.raises(ValueError, match=r"^temperature must be a finite real number > 0, got "
                                                              r"an array on the GPU: .*float\(tau\)"):
            TAKERS[name](tau)
        with pytest.raises(ValueError, match="on the GPU"):
            TAKERS[name](tau.data)  # the bare device array too
    assert log == []
