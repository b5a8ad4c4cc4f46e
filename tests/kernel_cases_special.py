"""kernels/special.cu against minivae/ops/special.py's array formulas (the specification), float32 and float64, the
special values exactly. Shared, as tests/kernel_cases.py, by the host emulation (tests/test_cuda_kernels.py) and
the GPU suite (tests/gpu/test_kernels.py), through the same ``dev`` fixture."""
import numpy as np
import pytest

from minivae._gpu import special as gpu_special
from minivae.ops import special
from tests.kernel_cases import flush

# The formulas are within ~2.6 ulp of the exact values (tests/test_special.py); CUDA's double erf, erfc, erfinv and
# erfcinv within 2, 5, 5 and 6 (CUDA C++ Programming Guide, double-precision functions): at most 9 ulp apart.
FLOAT64_ULPS = 9
FORMULAS = {"erf": lambda v: special.erf_forward(np, v, False), "erfc": lambda v: special.erf_forward(np, v, True),
            "erfinv": lambda v: special.erfinv_forward(np, v), "erfcinv": lambda v: special.erfcinv_forward(np, v)}


def inputs(name, n):
    """n values of the function's domain and, from n = 100 on, its edges and special values after them."""
    rng = np.random.default_rng(7)
    if name in ("erf", "erfc"):
        v = np.concatenate([rng.normal(0, 3, n), [0.0, -0.0, 1e-300, -27.0, 30.0, np.inf, -np.inf, np.nan, 1e4]])
    elif name == "erfinv":
        v = np.concatenate([rng.uniform(-1, 1, n), 1 - np.ldexp(1.0, -rng.integers(2, 53, 20)),
                            [0.0, -0.0, 1.0, -1.0, 1.5, np.nan, 1e-300]])
    else:
        v = np.concatenate([rng.uniform(0, 2, n), np.ldexp(1.0, -rng.integers(2, 1000, 20)),
                            [0.0, 2.0, 1.0, -0.5, 2.5, np.nan, 5e-324]])
    return v if n >= 100 else v[:n]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(FORMULAS))
@pytest.mark.parametrize("n", [0, 1, 3000])
def test_special_functions_are_the_formulas(dev, name, dtype, n):
    x = inputs(name, n).astype(dtype)
    got = dev.get(getattr(gpu_special, name)(dev.put(x)))
    assert got.dtype == dtype and got.shape == x.shape
    want = flush(dev, special.in_float64(FORMULAS[name], flush(dev, x)))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    exact = ~np.isfinite(want) | (want == 0)  # ±∞, NaN and zeros (erf(−0) = −0): exactly
    np.testing.assert_array_equal(got[exact], want[exact])
    # the signs of ±∞ and ±0; not a NaN's, which IEEE 754 leaves open (CUDA's erfinv(1.5) is a NaN of sign bit 1)
    signed = exact & ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[signed]), np.signbit(want[signed]))
    close = ~exact
    err = np.abs(got[close].astype(np.float64) - want[close]) / np.spacing(np.abs(want[close]).astype(dtype))
    assert err.max(initial=0) <= (FLOAT64_ULPS if dtype == np.float64 else 1), x[close][err.argmax()]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_erfc_of_a_quotient_is_the_formulas(dev, dtype):
    """gelu's Φ(x) = ½·erfc(x/−√2): the quotient in double inside the kernel, as the formula takes it in float64."""
    x = np.concatenate([np.random.default_rng(9).uniform(-40, 40, 3000), [0.0, -0.0, -37.5]]).astype(dtype)
    got = dev.get(gpu_special.erfc(dev.put(x), -np.sqrt(2)))
    want = flush(dev, special.in_float64(lambda v: special.erf_forward(np, v / -np.sqrt(2), True), flush(dev, x)))
    nonzero = want != 0
    np.testing.assert_array_equal(got[~nonzero], want[~nonzero])
    err = np.abs(got[nonzero].astype(np.float64) - want[nonzero]) / np.spacing(np.abs(want[nonzero]).astype(dtype))
    assert err.max() <= (FLOAT64_ULPS if dtype == np.float64 else 1)
