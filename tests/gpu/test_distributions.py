"""Every exported distribution on a real GPU (CuPy, its CUDA kernels on) against the CPU (Numba on where installed):
the cases of tests/distribution_cases.py, float64. rtol 1e-10 of each quantity's largest magnitude: CuPy's exp, log,
lgamma-free transcendental functions differ from NumPy's by an ulp or two, and the quantities pass through up to some
dozens of such steps (a rejection sampler's accepted draw, a digamma series)."""
import pytest

from tests.distribution_cases import CASES, compare, on_host, run


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_gpu_computes_what_the_cpu_computes(name):
    compare(name, on_host(run(name, "cpu")), on_host(run(name, "cuda")), rtol=1e-10)
