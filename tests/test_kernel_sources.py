"""The CUDA sources in kernels/ that can be checked without a GPU.

kernels/philox.cuh is __host__ __device__: compiled here by the host C++ compiler, its Philox
stream, uniforms and Gumbel noise must equal minivae.random's (the NumPy reference) word for word,
so that one seed gives one sample on CPU and GPU. With nvcc installed, the header must also
compile for the device. Skipped, with the reason, where no compiler is found."""
import ctypes
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from minivae.random import Generator
from tests.test_random import KAT

KERNELS = pathlib.Path(__file__).resolve().parent.parent / "kernels"

SHIM = r"""
#include "philox.cuh"
extern "C" void kat(const uint32_t* c, const uint32_t* k, uint32_t* out) {
    PhiloxWords w = philox4x32_10(c[0], c[1], c[2], c[3], k[0], k[1]);
    for (int j = 0; j < 4; ++j) out[j] = w.w[j];
}
extern "C" void draw(uint64_t seed, uint64_t offset, uint64_t n, uint32_t* words) {
    for (uint64_t i = 0; i < n; ++i) words[i] = philox_word(seed, offset, i);
}
extern "C" void transform(const uint32_t* words, uint64_t n, float* u32, double* u64, double* g, float* g32) {
    for (uint64_t i = 0; i < n; ++i) {
        u32[i] = uniform_f32(words[i]);
        u64[i] = uniform_f64(words[i]);
        g[i] = gumbel_f64(words[i]);
        g32[i] = gumbel_f32(words[i]);
    }
}
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no host C++ compiler (c++, g++ or clang++) to build kernels/philox.cuh for the host")
    d = tmp_path_factory.mktemp("philox")
    (d / "shim.cpp").write_text(SHIM)
    # -ffp-contract=off: no fused multiply-adds, which the NumPy reference does not use either
    subprocess.run([cxx, "-O2", "-ffp-contract=off", "-shared", "-fPIC", f"-I{KERNELS}", str(d / "shim.cpp"),
                    "-o", str(d / "shim.so")], check=True, capture_output=True)
    lib = ctypes.CDLL(str(d / "shim.so"))
    ptr = np.ctypeslib.ndpointer
    lib.kat.argtypes = [ptr(np.uint32), ptr(np.uint32), ptr(np.uint32)]
    lib.draw.argtypes = [ctypes.c_uint64] * 3 + [ptr(np.uint32)]
    lib.transform.argtypes = [ptr(np.uint32), ctypes.c_uint64, ptr(np.float32), ptr(np.float64), ptr(np.float64),
                              ptr(np.float32)]
    return lib


def _transforms(host, words):
    n = len(words)
    u32, u64, g, g32 = np.zeros(n, np.float32), np.zeros(n, np.float64), np.zeros(n, np.float64), np.zeros(n, np.float32)
    host.transform(np.ascontiguousarray(words, np.uint32), n, u32, u64, g, g32)
    return u32, u64, g, g32


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_header_philox_known_answers(host, counter, key, expected):
    out = np.zeros(4, np.uint32)
    host.kat(np.array(counter, np.uint32), np.array(key, np.uint32), out)
    assert tuple(int(w) for w in out) == expected


# seeds above 2³² use both key words; offsets just below 2³² carry into the counter's second word
@pytest.mark.parametrize("seed,offset", [(0, 0), (42, 7), (2 ** 40 + 3, 2 ** 32 - 2), (2 ** 64 - 1, 2 ** 33 + 5)])
def test_header_stream_equals_the_numpy_reference(host, seed, offset):
    n = 4099  # not a multiple of 4: the last block is used in part
    words = np.zeros(n, np.uint32)
    host.draw(seed, offset, n, words)
    u32, u64, g, _ = _transforms(host, words)
    np.testing.assert_array_equal(words, Generator(seed, counter=offset).words(n))
    np.testing.assert_array_equal(u32, Generator(seed, counter=offset).uniform(n, np.float32))
    np.testing.assert_array_equal(u64, Generator(seed, counter=offset).uniform(n, np.float64))
    # two libms (the C library's and NumPy's), each within an ulp: E = −log1p(−u) carries a relative
    # error of ~ε, which g = −log E turns into an absolute one, so the bound is ~ε·(1 + |g|) per side
    ref = Generator(seed, counter=offset).gumbel(n, np.float64)
    assert np.all(np.abs(g - ref) <= 4 * np.finfo(np.float64).eps * (1 + np.abs(ref)))


def test_header_draws_stay_open_and_finite_at_the_extreme_words(host):
    from minivae.random import words_to_uniform
    words = np.array([0, 1, 0x1FF, 0x200, 0xFFFFFDFF, 0xFFFFFFFE, 0xFFFFFFFF], np.uint32)
    u32, u64, g, g32 = _transforms(host, words)
    np.testing.assert_array_equal(u32, words_to_uniform(words, np.float32))
    np.testing.assert_array_equal(u64, words_to_uniform(words, np.float64))
    assert np.all((u32 > 0) & (u32 < 1)) and np.all((u64 > 0) & (u64 < 1)) and np.all(np.isfinite(g))
    assert np.all(np.isfinite(g32))


def test_float32_gumbel_is_within_a_few_ulp_of_the_reference(host):
    """gumbel_f32 (the float32 Gumbel-Softmax kernels' noise) against Generator.gumbel rounded to float32,
    over a spread of words and both ends, where a float32 u would round to 0 or 1."""
    words = np.concatenate([Generator(3).words(200_000), np.arange(0, 2 ** 32, 2 ** 32 // 4099, dtype=np.uint64),
                            [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1]]).astype(np.uint32)
    _, _, g, g32 = _transforms(host, words)
    ref = g.astype(np.float32)
    ulps = np.abs(g32.astype(np.float64) - ref) / (np.finfo(np.float32).eps * np.maximum(1.0, np.abs(ref)))
    assert np.isfinite(g32).all() and ulps.max() <= 4, f"worst {ulps.max():.1f} ulp at word {words[ulps.argmax()]}"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed: the device compile of kernels/ is not checked")
def test_header_compiles_for_the_device(tmp_path):
    src = tmp_path / "use.cu"
    src.write_text('#include "philox.cuh"\n'
                   'extern "C" __global__ void gumbels(unsigned long long seed, unsigned long long offset, int n, double* out) {\n'
                   '    int i = blockIdx.x * blockDim.x + threadIdx.x;\n'
                   '    if (i < n) out[i] = gumbel_f64(philox_word(seed, offset, i));\n'
                   '}\n')
    r = subprocess.run(["nvcc", "-arch=sm_90", "--ptx", f"-I{KERNELS}", str(src), "-o", str(tmp_path / "use.ptx")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert ".entry gumbels" in (tmp_path / "use.ptx").read_text()
