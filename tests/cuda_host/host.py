"""Builds kernels/*.cu for the CPU with the host C++ compiler and launches them like CuPy RawKernels.

The .cu text is compiled unmodified: a generated shim includes cuda_host.h (the CUDA execution model on
std::threads), then the sources, then a table mapping each name expression ("softmax_warp_fwd<float, 4, 32>") to a
launcher that knows the kernel's parameter types. ``HostModule(...).get_function(name)`` returns
``f(grid, block, args, shared_mem=0)``, the RawKernel call, and checks every argument against the parameter it
binds to, so a launcher that passes a Python float where the kernel takes ``float`` fails here as it would
silently misbehave on a GPU. One construct no macro can translate, ``extern __shared__ T name[];`` (the launch's
dynamic shared memory), is rewritten by ``host_text`` in copies of the files that use it (see cuda_host.h).

Sanitizers: ``sanitize="thread"`` (-fsanitize=thread) or ``"address"`` (-fsanitize=address,undefined). A
dlopen'ed sanitized library needs the sanitizer runtime loaded first, so sanitized runs happen in a child
process started by ``run_sanitized`` (LD_PRELOAD of the runtime; MINIVAE_CUDA_HOST_SANITIZE tells
``module_factory`` and ``HostModule`` in the child to build sanitized modules).

Builds are cached on disk (MINIVAE_CUDA_HOST_CACHE, default ~/.cache/minivae-cuda-host) under a hash of the
compiler, flags and every source and header, so a rerun does not compile.
"""
import ctypes
import functools
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
HEADER = HERE / "cuda_host.h"
REPO = HERE.parent.parent
ENV_SANITIZE = "MINIVAE_CUDA_HOST_SANITIZE"
SANITIZERS = ("thread", "address")

# -ffp-contract=off: no fused multiply-adds, which the NumPy reference does not use either. -O1 everywhere: the
# time goes into thread switches, not arithmetic, and -O2 takes half as long again to compile; under the
# sanitizers it keeps reports readable. "address" adds UBSan (signed overflow of index arithmetic, misaligned
# or null accesses), which stops at the first error like ASan does; it doubles the ASan build time.
_COMMON = ("-std=c++20", "-shared", "-fPIC", "-pthread", "-ffp-contract=off", "-Wno-unknown-pragmas")
FLAGS = {
    None: ("-O1",),
    "thread": ("-O1", "-g", "-fsanitize=thread"),
    "address": ("-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"),
}
_RUNTIME = {"thread": "libtsan.so", "address": "libasan.so"}
_OPTIONS = {
    "thread": {"TSAN_OPTIONS": "second_deadlock_stack=1"},
    # Python and NumPy leak by design at exit; leak reports would bury the real ones.
    "address": {"ASAN_OPTIONS": "detect_leaks=0", "UBSAN_OPTIONS": "print_stacktrace=1"},
}

POINTER, FLOATING, INTEGER, OTHER = range(4)
_KIND_NAMES = {POINTER: "pointer", FLOATING: "floating", INTEGER: "integer", OTHER: "other"}


class _ParamInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in ("size", "kind", "pointee_size", "pointee_kind", "pointee_const")]


def compiler():
    """The host C++ compiler (CXX, else g++); None when there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def sanitize_mode(sanitize=None):
    """``sanitize`` if given ("thread", "address", or "none" for a plain build), else MINIVAE_CUDA_HOST_SANITIZE."""
    mode = sanitize if sanitize is not None else os.environ.get(ENV_SANITIZE) or None
    if mode == "none":
        return None
    if mode is not None and mode not in SANITIZERS:
        raise ValueError(f"sanitize must be one of {SANITIZERS} or 'none', not {mode!r}")
    return mode


def _cache_dir():
    default = pathlib.Path.home() / ".cache" / "minivae-cuda-host"
    return pathlib.Path(os.environ.get("MINIVAE_CUDA_HOST_CACHE", default))


@functools.lru_cache(maxsize=None)
def _compiler_identity(cxx):
    return subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout


# extern __shared__ [__align__(n)] T name[];   (T may be several words: "unsigned char")
_EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s*)?([A-Za-z_][\w\s]*?)\s+(\w+)\s*\[\s*\]\s*;")
# the largest dynamic shared memory a launch gets without opting in (cudaFuncAttributeMaxDynamicSharedMemorySize)
MAX_DYNAMIC_SHARED = 48 * 1024


def host_text(text):
    """``text`` with each ``extern __shared__ T name[];`` turned into ``T* const name = cuda_host::dynamic_shared<T>();``,
    the launch's dynamic shared memory in the host emulation; every other character unchanged."""
    return _EXTERN_SHARED.sub(lambda m: f"{m[1]}* const {m[2]} = cuda_host::dynamic_shared<{m[1]}>();", text)


def _host_copies(files, directory):
    """When any of ``files`` declares ``extern __shared__`` memory: copies of all of them through ``host_text``
    under ``directory``, one subfolder per original folder (so "..." includes still find their neighbours), and
    the map original → copy. Otherwise the identity map: compile errors then name the real files."""
    if not any(_EXTERN_SHARED.search(f.read_text()) for f in files):
        return {f: f for f in files}
    folders = {d: pathlib.Path(directory) / f"dir{i}" for i, d in enumerate(sorted({f.parent for f in files}))}
    copies = {}
    for f in files:
        folders[f.parent].mkdir(exist_ok=True)
        copies[f] = folders[f.parent] / f.name
        copies[f].write_text(host_text(f.read_text()))
    return copies


def shim_source(sources, name_expressions):
    """The C++ translation unit: header, the .cu sources verbatim, the launch table."""
    lines = [f'#include "{HEADER}"']
    lines += [f'#include "{pathlib.Path(s).resolve()}"' for s in sources]
    rows = ",\n".join(f'    cuda_host::entry("{name}", &{name})' for name in name_expressions)
    lines.append(f"CUDA_HOST_TABLE(\n{rows}\n)")
    return "\n".join(lines) + "\n"


def build(sources, name_expressions, include_dirs=(), sanitize=None):
    """Compiles (or finds in the cache) the shared library for ``sources``; returns its path."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no host C++ compiler (set CXX or install g++) to build the CUDA sources for the CPU")
    mode = sanitize_mode(sanitize)
    sources = [pathlib.Path(s).resolve() for s in sources]
    include_dirs = [pathlib.Path(d).resolve() for d in include_dirs] or sorted({s.parent for s in sources})
    flags = [*_COMMON, *FLAGS[mode]]

    key = hashlib.sha256()
    for part in (_compiler_identity(cxx), " ".join(flags), shim_source(sources, name_expressions),
                 " ".join(map(str, include_dirs)), HEADER.read_text(), _EXTERN_SHARED.pattern):
        key.update(part.encode() + b"\0")
    # what the sources can include: their own directories ("..." includes) and the include path
    searched = set(include_dirs) | {s.parent for s in sources}
    headers = {p for d in searched for pattern in ("*.cuh", "*.h") for p in d.glob(pattern)}
    for path in sorted(set(sources) | headers):
        key.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    cache = _cache_dir()
    target = cache / f"{key.hexdigest()[:24]}-{mode or 'plain'}.so"
    if target.exists():
        return target

    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        copies = _host_copies(sorted(set(sources) | headers), tmp)
        folders = {f.parent: c.parent for f, c in copies.items()}
        cpp = pathlib.Path(tmp) / "shim.cpp"
        cpp.write_text(shim_source([copies[s] for s in sources], name_expressions))
        out = pathlib.Path(tmp) / "module.so"
        includes = [f"-I{folders.get(d, d)}" for d in include_dirs]
        done = subprocess.run([cxx, *flags, *includes, str(cpp), "-o", str(out)], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"building {[s.name for s in sources]} for the host failed:\n{done.stderr[-6000:]}")
        os.replace(out, target)  # atomic: a concurrent build of the same key writes the same bytes
    return target


def _runtime_loaded(mode):
    return _RUNTIME[mode] in os.environ.get("LD_PRELOAD", "")


class HostModule:
    """The kernels ``name_expressions`` of ``sources`` (.cu paths) compiled for the CPU, as a CuPy RawModule.

    ``include_dirs`` default to the sources' directories; ``sanitize`` is None (MINIVAE_CUDA_HOST_SANITIZE),
    "none", "thread" or "address".
    """

    def __init__(self, sources, name_expressions, include_dirs=(), sanitize=None):
        self.sanitize = sanitize_mode(sanitize)
        if self.sanitize is not None and not _runtime_loaded(self.sanitize):
            raise RuntimeError(f"a {self.sanitize} sanitizer build needs {_RUNTIME[self.sanitize]} preloaded: "
                               "run the test through tests.cuda_host.host.run_sanitized")
        self.path = build(sources, list(name_expressions), include_dirs, self.sanitize)
        lib = self._lib = ctypes.CDLL(str(self.path))
        lib.cuda_host_name.restype = ctypes.c_char_p
        lib.cuda_host_params.restype = ctypes.POINTER(_ParamInfo)
        lib.cuda_host_launch.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                                         ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_int]
        self._functions = {}
        for i in range(lib.cuda_host_count()):
            name = lib.cuda_host_name(i).decode()
            params = lib.cuda_host_params(i)
            self._functions[name] = HostFunction(self, i, name, [params[j] for j in range(lib.cuda_host_nparams(i))])

    def get_function(self, name):
        try:
            return self._functions[name]
        except KeyError:
            raise KeyError(f"{name!r} is not among this module's name expressions {sorted(self._functions)}") from None


def _dims(value, what, limits):
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) for d in dims):
        raise TypeError(f"{what} must be an int or a tuple of 1 to 3 ints, not {value!r}")
    dims = tuple(int(d) for d in dims) + (1,) * (3 - len(dims))
    if any(d < 1 or d > lim for d, lim in zip(dims, limits)):
        raise ValueError(f"{what} {dims} is not a valid launch configuration (each dimension in 1..{limits})")
    return dims


class HostFunction:
    """One kernel: ``f(grid, block, args, shared_mem=0)`` as a CuPy RawKernel call."""

    def __init__(self, module, index, name, params):
        self.module, self.index, self.name, self.params = module, index, name, params

    def _fail(self, exc, j, expected, given):
        return exc(f"{self.name}: argument {j}: expected {expected}, given {given}")

    def _expected(self, p):
        if p.kind == POINTER:
            if p.pointee_size == 0:
                return "a device array (pointer parameter)"
            const = "const " if p.pointee_const else ""
            return (f"a device array of {p.pointee_size}-byte {_KIND_NAMES[p.pointee_kind]} elements "
                    f"({const}pointer parameter)")
        return f"a NumPy scalar of kind {_KIND_NAMES[p.kind]}, {p.size} bytes"

    def _pointer(self, j, p, a):
        if isinstance(a, np.ndarray):
            if not a.flags.c_contiguous:
                raise ValueError(f"{self.name}: argument {j}: the array must be C-contiguous (kernels ignore strides)")
            if not p.pointee_const and p.pointee_size and not a.flags.writeable:
                raise ValueError(f"{self.name}: argument {j}: the kernel may write through this pointer, "
                                 "but the array is read-only")
            address, dtype = a.ctypes.data, a.dtype
        elif hasattr(a, "__minivae_device_ptr__"):
            address, dtype = int(a.__minivae_device_ptr__()), getattr(a, "dtype", None)
        else:
            raise self._fail(TypeError, j, self._expected(p), type(a).__name__)
        if p.pointee_size and dtype is not None:
            dtype = np.dtype(dtype)
            kind_ok = dtype.kind == "f" if p.pointee_kind == FLOATING else dtype.kind in "iub" if p.pointee_kind == INTEGER else True
            if dtype.itemsize != p.pointee_size or not kind_ok:
                raise self._fail(TypeError, j, self._expected(p), f"an array of {dtype}")
        return ctypes.c_void_p(address)

    def _scalar(self, j, p, a):
        if isinstance(a, (bool, int, float, complex)) and not isinstance(a, np.generic):  # np.float64 is a float
            # CuPy would guess a C type (long long / double) that need not be the parameter's
            raise self._fail(TypeError, j, self._expected(p), f"Python {type(a).__name__} {a!r}: pass a NumPy scalar")
        if not isinstance(a, np.generic):
            raise self._fail(TypeError, j, self._expected(p), type(a).__name__)
        kind = FLOATING if a.dtype.kind == "f" else INTEGER if a.dtype.kind in "iub" else OTHER
        if a.dtype.itemsize != p.size or (p.kind != OTHER and kind != p.kind):
            raise self._fail(TypeError, j, self._expected(p), f"numpy.{a.dtype} ({_KIND_NAMES[kind]}, {a.dtype.itemsize} bytes)")
        return (ctypes.c_char * p.size).from_buffer_copy(a.tobytes())

    def __call__(self, grid, block, args, shared_mem=0):
        grid = _dims(grid, "grid", (2**31 - 1, 65535, 65535))
        block = _dims(block, "block", (1024, 1024, 64))
        if block[0] * block[1] * block[2] > 1024:
            raise ValueError(f"block {block} has more than 1024 threads")
        if not isinstance(shared_mem, (int, np.integer)) or not 0 <= shared_mem <= MAX_DYNAMIC_SHARED:
            raise ValueError(f"{self.name}: shared_mem={shared_mem!r}: dynamic shared memory is 0 to "
                             f"{MAX_DYNAMIC_SHARED} bytes without opting in to more")
        args = tuple(args)
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: expected {len(self.params)} arguments, given {len(args)}")
        values = [self._pointer(j, p, a) if p.kind == POINTER else self._scalar(j, p, a)
                  for j, (p, a) in enumerate(zip(self.params, args))]
        pointers = (ctypes.c_void_p * max(len(values), 1))(*[ctypes.addressof(v) for v in values])
        err = ctypes.create_string_buffer(1024)
        rc = self.module._lib.cuda_host_launch(self.index, (ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block),
                                               int(shared_mem), pointers, err, len(err))
        if rc:
            raise RuntimeError(f"{self.name}<<<{grid}, {block}>>>: {err.value.decode()}")


def module_factory(sanitize=None, sources=None, kernels_dir=None):
    """A function ``source -> HostModule`` for kernels/<source> with the name expressions of
    ``sources[source]`` (default: minivae._gpu.loader.SOURCES): what loader.use_module_factory takes.

    All sources are built as one module (one translation unit: the header's cost is paid once, which halves a
    cold build); if that fails, e.g. because two .cu files define the same helper, which separate NVRTC
    modules allow, each source is built on its own.
    """
    if sources is None or kernels_dir is None:
        from minivae._gpu import loader
        sources = loader.SOURCES if sources is None else sources
        kernels_dir = loader.KERNELS_DIR if kernels_dir is None else kernels_dir
    kernels_dir = pathlib.Path(kernels_dir)
    mode = sanitize_mode(sanitize) or "none"
    modules = {}

    def factory(source):
        if "*" not in modules:
            try:
                modules["*"] = HostModule([kernels_dir / s for s in sources], [n for s in sources for n in sources[s]],
                                          [kernels_dir], mode)
            except RuntimeError:
                modules["*"] = None
        if modules["*"] is not None:
            return modules["*"]
        if source not in modules:
            modules[source] = HostModule([kernels_dir / source], sources[source], [kernels_dir], mode)
        return modules[source]

    return factory


def sanitizer_env(sanitize, env=None):
    """The environment of a child process that loads ``sanitize`` builds: runtime preloaded, options set."""
    mode = sanitize_mode(sanitize)
    if mode is None:
        raise ValueError("sanitizer_env needs 'thread' or 'address'")
    env = dict(os.environ if env is None else env)
    runtime = subprocess.run([compiler(), f"-print-file-name={_RUNTIME[mode]}"], capture_output=True, text=True,
                             check=True).stdout.strip()
    if not os.path.isabs(runtime):
        raise RuntimeError(f"{compiler()} has no {_RUNTIME[mode]} (install the sanitizer runtime)")
    env["LD_PRELOAD"] = runtime
    env[ENV_SANITIZE] = mode
    env.update(_OPTIONS[mode])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_sanitized(sanitize, args, timeout=600):
    """Runs ``python *args`` in the repository with the sanitizer runtime preloaded (``sanitizer_env``);
    returns the CompletedProcess (text stdout/stderr).

    The interpreter is sys.executable itself: a launcher script in front of it (pyenv's shim) would get the
    preload too, and bash under libtsan crashes. ThreadSanitizer reports go to stderr and make the exit status
    66; AddressSanitizer stops at the first error. To see them from a pytest child, pass ``-s``: pytest's
    capture would otherwise keep them with the test's output, or lose them when the process aborts.
    ``timeout`` stops a run that hangs (a barrier some thread never reaches); the kernel cases under
    ThreadSanitizer take about 2 minutes on a 2-core machine (two processes), so it leaves them room on a loaded one.
    """
    env = sanitizer_env(sanitize)
    command = [sys.executable, *args]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if "unexpected memory mapping" in done.stderr:
        # gcc's TSan cannot map its shadow under high vm.mmap_rnd_bits (newer kernels): run without ASLR
        done = subprocess.run(["setarch", os.uname().machine, "-R", *command], env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
    return done
