"""Every exported distribution has a case in tests/distribution_cases.py, and each case computes on the device (the
strict CuPy stand-in of tests/strict_array.py) what it computes on the CPU, bit for bit, with nothing copied to the
host: the same draws of a seed, rsample, log_prob, entropy, mean, variance and all their gradients. The same cases
run on a real GPU in tests/gpu/test_distributions.py. (The CUDA kernels are off here, so that the device runs the
CPU's array code: the one copy to the host allowed is then the implicit Gamma gradient's convergence check, a bool
every 25 terms in minivae/ops/gamma.py, documented there; with the kernels on, tests/test_gamma_stream.py shows none.)"""
import pytest

from minivae._backend import use_cuda_kernels, use_numba
from tests.distribution_cases import CASES, compare, exported, on_host, run
from tests.strict_array import describe, emulating, record


def test_every_exported_distribution_has_a_case():
    assert sorted(CASES) == exported()


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_device_computes_what_the_cpu_computes_and_copies_nothing_back(name):
    with use_numba(False), use_cuda_kernels(False):
        expected = on_host(run(name, "cpu"))
        with emulating():
            with record() as log:
                got = run(name, "cuda")
            copies = [e for e in log if not (e[0] == "bool" and "minivae/ops/gamma.py" in e[2])]
            assert copies == [], describe(copies)
            assert all(t.device == "cuda" for t in got.values()), name
            got = on_host(got)
    compare(name, expected, got, rtol=0)
    assert {"sample", "log_prob"} <= set(expected), name
