"""The kernel cases of tests/kernel_cases.py on a real GPU, through CuPy and the real launchers."""
import pytest

from tests.kernel_cases import *  # noqa: F401,F403  (the shared cases)
from tests.kernel_cases_special import *  # noqa: F401,F403
from tests.kernel_cases_gamma import *  # noqa: F401,F403
from tests.kernel_cases_binary import *  # noqa: F401,F403


class CupyDevice:
    def __init__(self, cupy):
        self.put, self.get = cupy.asarray, cupy.asnumpy


@pytest.fixture(scope="module")
def dev():
    import cupy
    return CupyDevice(cupy)
