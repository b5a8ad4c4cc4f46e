"""kernels/*.cu on the CPU: cuda_host.h emulates the CUDA execution model on std::threads, host.py builds the
sources with the host C++ compiler (plain, ThreadSanitizer or AddressSanitizer) and launches them as CuPy
RawKernels would."""
from tests.cuda_host.host import HostModule, module_factory, run_sanitized, sanitize_mode, sanitizer_env

__all__ = ["HostModule", "module_factory", "run_sanitized", "sanitize_mode", "sanitizer_env"]
