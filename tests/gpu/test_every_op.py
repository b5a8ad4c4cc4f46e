"""Every registered op on a real GPU (its CUDA kernels on where it has them, CuPy's array code elsewhere) against the
same op on the CPU: forward and VJP on the op's float64 gradcheck domain (tests/test_ops_gradcheck.py's DOMAINS), one
random upstream gradient. CI proves the array code on the strict stand-in bit for bit (tests/test_cupy_api.py); here
CuPy's own transcendental functions and kernels run, which differ from NumPy's by an ulp or a few, whence rtol 1e-9
of each result's largest magnitude."""
import numpy
import pytest
from hypothesis import given, settings, strategies as st

from tests.test_cupy_api import op_results
from tests.test_ops_gradcheck import DOMAINS


@pytest.mark.parametrize("name", sorted(DOMAINS))
@settings(max_examples=2, deadline=None, derandomize=True)
@given(data=st.data())
def test_every_op_on_the_gpu_as_on_the_cpu(name, data):
    fn, inputs, _ = data.draw(DOMAINS[name])
    cotangent = {}
    expected = op_results(fn, inputs, "cpu", cotangent)
    got = op_results(fn, inputs, "cuda", cotangent)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        scale = float(numpy.max(numpy.abs(b))) if numpy.size(b) and numpy.all(numpy.isfinite(b)) else 1.0
        numpy.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * max(scale, 1e-300))
