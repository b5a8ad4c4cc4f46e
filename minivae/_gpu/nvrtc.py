"""A small ctypes binding of NVRTC, the CUDA runtime compiler that CuPy's RawModule uses: it compiles
kernels/*.cu to a CUBIN for a given architecture without a GPU, a driver or CuPy, so the build of
every kernel can be checked (tests/test_cuda_build.py, tools/kernel_report.py) on any Linux machine.

libnvrtc comes from the ``nvidia-cuda-nvrtc`` wheel (site-packages/nvidia/cu13/lib/libnvrtc.so.13)
or from a CUDA toolkit ($CUDA_PATH, $CUDA_HOME or /usr/local/cuda, lib64/); ``MINIVAE_NVRTC`` names
the library file explicitly.
"""
import ctypes
import ctypes.util
import functools
import glob
import os
import sys
from typing import NamedTuple

_SUCCESS = 0
_SONAMES = ("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so")


class NVRTCError(RuntimeError):
    """A failed NVRTC call; ``log`` holds the compiler's messages (empty when it never compiled)."""

    def __init__(self, message, log=""):
        super().__init__(f"{message}\n{log}".rstrip())
        self.log = log


class Compiled(NamedTuple):
    cubin: bytes
    log: str                 # warnings, and ptxas's report when asked for with --ptxas-options=-v
    lowered: dict            # name expression -> lowered (mangled) name, as in the CUBIN


def _candidates():
    """Library files to try, most specific first: MINIVAE_NVRTC, the pip wheels on sys.path, CUDA
    toolkits; finally the bare sonames, for the dynamic loader's own search (LD_LIBRARY_PATH, ldconfig)."""
    explicit = os.environ.get("MINIVAE_NVRTC")
    if explicit:
        return [explicit]
    found = []
    for entry in sys.path:
        for wheel_dir in ("nvidia/cu13/lib", "nvidia/cuda_nvrtc/lib"):   # cu13 wheels, then cu12 ones
            found += sorted(glob.glob(os.path.join(entry or ".", wheel_dir, "libnvrtc.so.*")))
    roots = [os.environ.get(v) for v in ("CUDA_PATH", "CUDA_HOME")] + ["/usr/local/cuda"]
    for root in filter(None, roots):
        for lib in ("lib64", "lib", "targets/x86_64-linux/lib", "targets/sbsa-linux/lib"):
            found += sorted(glob.glob(os.path.join(root, lib, "libnvrtc.so*")))
    system = ctypes.util.find_library("nvrtc")
    return [f for f in found if "builtins" not in f] + list(_SONAMES) + ([system] if system else [])


@functools.lru_cache(maxsize=None)
def _library():
    """(ctypes library, its path), or an NVRTCError saying what was tried."""
    tried = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as error:
            tried.append(f"{path}: {error}")
            continue
        _declare(lib)
        return lib, path
    raise NVRTCError("libnvrtc not found (pip install 'nvidia-cuda-nvrtc>=13,<14', or set MINIVAE_NVRTC); tried:\n  "
                     + "\n  ".join(tried))


def _declare(lib):
    p, c, size = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t
    for name, args in {
        "nvrtcVersion": [ctypes.POINTER(ctypes.c_int)] * 2,
        "nvrtcCreateProgram": [ctypes.POINTER(p), c, c, ctypes.c_int, ctypes.POINTER(c), ctypes.POINTER(c)],
        "nvrtcDestroyProgram": [ctypes.POINTER(p)],
        "nvrtcAddNameExpression": [p, c],
        "nvrtcCompileProgram": [p, ctypes.c_int, ctypes.POINTER(c)],
        "nvrtcGetProgramLogSize": [p, ctypes.POINTER(size)],
        "nvrtcGetProgramLog": [p, c],
        "nvrtcGetCUBINSize": [p, ctypes.POINTER(size)],
        "nvrtcGetCUBIN": [p, c],
        "nvrtcGetLoweredName": [p, c, ctypes.POINTER(c)],
    }.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, ctypes.c_int
    lib.nvrtcGetErrorString.argtypes, lib.nvrtcGetErrorString.restype = [ctypes.c_int], c


def _check(lib, result, what, log=""):
    if result != _SUCCESS:
        raise NVRTCError(f"{what} failed: {lib.nvrtcGetErrorString(result).decode()}", log)


def available():
    """(True, "libnvrtc X.Y at <path>") when NVRTC can be loaded, else (False, why not)."""
    try:
        lib, path = _library()
    except NVRTCError as error:
        return False, str(error)
    major, minor = version()
    return True, f"libnvrtc {major}.{minor} at {path}"


def version():
    lib, _ = _library()
    major, minor = ctypes.c_int(), ctypes.c_int()
    _check(lib, lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
    return major.value, minor.value


def _strings(values):
    encoded = [v.encode() for v in values]
    return (ctypes.c_char_p * max(1, len(encoded)))(*encoded), len(encoded)


def compile(source, name_expressions=(), options=(), arch="sm_75", name="kernel.cu"):
    """Compile CUDA C++ ``source`` (text) to a CUBIN for ``arch`` ("sm_75", ...), instantiating each
    template named in ``name_expressions`` (as CuPy's ``RawModule(name_expressions=...)``).

    ``options`` are NVRTC options besides the architecture, which is passed as
    ``--gpu-architecture=<arch>``; a real ``sm_`` architecture makes NVRTC run ptxas and emit a CUBIN
    (``compute_`` would stop at PTX). Returns ``Compiled(cubin, log, lowered)``; raises NVRTCError
    with the log when compilation fails or a name expression does not resolve to a kernel.
    """
    if not arch.startswith("sm_"):
        raise ValueError(f"arch must be a real architecture such as 'sm_80' (a CUBIN is wanted), not {arch!r}")
    lib, _ = _library()
    prog = ctypes.c_void_p()
    _check(lib, lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None),
           "nvrtcCreateProgram")
    try:
        for expression in name_expressions:
            _check(lib, lib.nvrtcAddNameExpression(prog, expression.encode()), f"nvrtcAddNameExpression({expression!r})")
        argv, argc = _strings([*options, f"--gpu-architecture={arch}"])
        result = lib.nvrtcCompileProgram(prog, argc, argv)
        size = ctypes.c_size_t()
        _check(lib, lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size)), "nvrtcGetProgramLogSize")
        buffer = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetProgramLog(prog, buffer), "nvrtcGetProgramLog")
        log = buffer.value.decode(errors="replace")
        _check(lib, result, f"compiling {name} for {arch}", log)
        lowered = {}
        for expression in name_expressions:
            mangled = ctypes.c_char_p()
            _check(lib, lib.nvrtcGetLoweredName(prog, expression.encode(), ctypes.byref(mangled)),
                   f"nvrtcGetLoweredName({expression!r})", log)
            lowered[expression] = mangled.value.decode()
        _check(lib, lib.nvrtcGetCUBINSize(prog, ctypes.byref(size)), "nvrtcGetCUBINSize", log)
        cubin = ctypes.create_string_buffer(size.value)
        _check(lib, lib.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN", log)
        return Compiled(cubin.raw, log, lowered)
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
