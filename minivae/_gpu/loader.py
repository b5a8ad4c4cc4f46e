"""Loads kernels/*.cu with CuPy's RawModule: one module per source file and device, compiled by NVRTC on
first use (CuPy caches the binary on disk), each template instantiated by the name expressions below.

``SOURCES`` and ``NVRTC_OPTIONS`` are what the runtime compiles; tests/test_cuda_build.py compiles exactly
these for sm_75, sm_80 and sm_90 without a GPU, and tests run the same sources on the CPU through
``use_module_factory`` (tests/cuda_host/).
"""
import contextlib
import pathlib

import numpy

_HERE = pathlib.Path(__file__).resolve().parent


def _kernels_dir():
    """kernels/ ships inside the wheel as minivae/kernels; in a source checkout it sits beside minivae/."""
    for candidate in (_HERE.parent / "kernels", _HERE.parent.parent / "kernels"):
        if (candidate / "philox.cuh").is_file():
            return candidate
    raise RuntimeError(f"the CUDA sources (kernels/*.cu) are missing beside {_HERE.parent}: reinstall minivae")


KERNELS_DIR = _kernels_dir()
TYPES = ("float", "double")
WARP_N = (1, 2, 4, 8)   # values per lane of the warp-per-row kernels: rows up to 32·8 = 256
GROUP_LANES = (4, 8, 16, 32)  # lanes per row of those kernels: fewer than a warp for rows of k ≤ 16 (N = 1)
# (N, L) of the warp-per-row kernels: a warp's 32 lanes for N ≥ 1, or N = 1 on groups of L lanes
WARP_SHAPES = tuple((1, lanes) for lanes in GROUP_LANES[:-1]) + tuple((n, 32) for n in WARP_N)
# values a thread of gumbel_softmax_quads_fwd holds, by type (kernels/gumbel_softmax.cu says why)
GUMBEL_QUAD_VALUES = {"float": 16, "double": 8}


def _each(template, per_type=("",)):
    return [template.format(t=t, n=n) for t in TYPES for n in per_type]


def _warp(template):
    return [template.format(t=t, n=n, lanes=lanes) for t in TYPES for n, lanes in WARP_SHAPES]


SOURCES = {
    "softmax.cu": (_warp("softmax_warp_fwd<{t}, {n}, {lanes}>") + _warp("softmax_warp_bwd<{t}, {n}, {lanes}>")
                   + _each("softmax_block_fwd<{t}>") + _each("softmax_block_bwd<{t}>")),
    "gumbel_softmax.cu": (_warp("gumbel_softmax_warp_fwd<{t}, {n}, {lanes}>") + _each("gumbel_softmax_block_fwd<{t}>")
                          + [f"gumbel_softmax_quads_fwd<{t}, {v}>" for t, v in GUMBEL_QUAD_VALUES.items()]
                          + _warp("gumbel_softmax_kl_warp_fwd<{t}, {n}, {lanes}>")
                          + _warp("gumbel_softmax_kl_warp_bwd<{t}, {n}, {lanes}>")),
    "gaussian.cu": (_each("reparameterize_fwd<{t}>") + _each("reparameterize_bwd<{t}>")
                    + _each("kl_standard_normal_fwd<{t}>") + _each("kl_standard_normal_bwd<{t}>")
                    + _each("reparameterize_kl_fwd<{t}>") + _each("reparameterize_kl_bwd<{t}>")
                    + _each("normal_reparameterize_kl_fwd<{t}>")),
    "binary_concrete.cu": _each("binary_concrete_kl_fwd<{t}>") + _each("binary_concrete_kl_bwd<{t}>"),
    "categorical_kl.cu": _each("categorical_kl_fwd<{t}, {n}>", GROUP_LANES) + _each("categorical_kl_bwd<{t}, {n}>", GROUP_LANES),
    "bce.cu": _each("bce_fwd<{t}>"),
    "elbo.cu": (_each("negative_elbo_fwd<{t}>") + _each("negative_elbo_bwd<{t}>")
                + _each("bernoulli_negative_elbo_fwd<{t}>") + _each("bernoulli_negative_elbo_bwd<{t}>")),
    "gemm.cu": [f"gemm_tiles<{t}, {a}, {b}>" for t in TYPES for a in ("true", "false") for b in ("true", "false")],
    "linear.cu": _each("bias_act_fwd<{t}>") + _each("relu_bwd<{t}>") + _each("bias_grad<{t}>"),
    "optim.cu": _each("adam_step<{t}>") + _each("sgd_step<{t}>"),
    "special.cu": _each("special_fwd<{t}>"),
    "gamma.cu": [f"standard_gamma_draws<{a}, {t}>" for a in TYPES for t in TYPES] + _each("standard_gamma_grad<{t}>"),
    "random.cu": _each("philox_uniform<{t}>") + _each("philox_normal<{t}>") + _each("philox_gumbel<{t}>"),
    "timing.cu": ["hold"],
}

# Everything the runtime passes to NVRTC besides the target architecture, which CuPy adds for the device.
# No -std: NVRTC's default dialect is C++17, which the kernels need (if constexpr), and CuPy may add its own.
NVRTC_OPTIONS = (f"-I{KERNELS_DIR}",)

_modules = {}
_kernels = {}  # (source, name, device) → RawKernel: RawModule.get_function makes a new one at each call
_factory = None


def module_code(source):
    """kernels/<source> as CuPy compiles it: the text, headed by a digest of the headers it includes,
    because CuPy's on-disk cache is keyed by the code alone and would miss an edited header."""
    import hashlib
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(KERNELS_DIR.glob("*.cuh")))).hexdigest()[:16]
    return f"// kernels/*.cuh {digest}\n" + (KERNELS_DIR / source).read_text()


_CTYPES = {numpy.dtype(numpy.float32): "float", numpy.dtype(numpy.float64): "double"}


def ctype(dtype, who="minivae"):
    """The C type of a NumPy dtype in a name expression ("float" or "double"); any other dtype is refused
    with ``who`` (the op's name) in the message."""
    name = _CTYPES.get(dtype)
    if name is None:
        raise TypeError(f"{who}: the CUDA kernels take float32 or float64, not {dtype}")
    return name


def function(source, name):
    """The kernel ``name`` (one of SOURCES[source]) on the current device, as a CuPy RawKernel:
    ``k(grid, block, args)``."""
    if name not in SOURCES[source]:
        raise KeyError(f"{name!r} is not instantiated in kernels/{source}")
    if _factory is not None:
        return _factory(source).get_function(name)
    import cupy
    device = cupy.cuda.runtime.getDevice()
    kernel = _kernels.get((source, name, device))
    if kernel is None:
        module = _modules.get((source, device))
        if module is None:
            module = _modules[(source, device)] = cupy.RawModule(code=module_code(source), options=NVRTC_OPTIONS,
                                                                 name_expressions=SOURCES[source])
        kernel = _kernels[(source, name, device)] = module.get_function(name)
    return kernel


@contextlib.contextmanager
def use_module_factory(factory):
    """Within this block kernels come from ``factory(source)`` (an object with ``get_function``) instead of
    CuPy: the test suite runs the same sources on the CPU this way."""
    global _factory
    previous, _factory = _factory, factory
    try:
        yield
    finally:
        _factory = previous
