// Philox4x32-10 (Salmon et al., 2011) and the draws of minivae.random, for CUDA kernels.
//
// minivae/random.py is the specification: the same (seed, block) gives the same four 32-bit
// words here, in the Numba kernels and in NumPy, so one seed gives one sample on every backend.
// Stream layout (as Generator.words): value i of a draw at block offset `offset` is word i % 4
// of block offset + i / 4; counter = (block mod 2^32, block div 2^32, 0, 0), key = (seed mod
// 2^32, seed div 2^32).
//
// Everything is __host__ __device__ so that the same text compiles with a host C++ compiler,
// where tests/test_kernel_sources.py checks it against the NumPy reference without a GPU.
#pragma once
#ifdef __CUDACC_RTC__
// NVRTC (CuPy's RawModule compiler) has no C standard headers; log and log1p are built in.
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
#else
#include <stdint.h>
#include <math.h>
#endif

#ifdef __CUDACC__
#define MINIVAE_HD __host__ __device__ __forceinline__
#else
#define MINIVAE_HD static inline
#endif

struct PhiloxWords {
    uint32_t w[4];
};

// One Philox4x32-10 block. The 32x32 -> 64-bit products compile to mul.lo/mul.hi on the GPU.
MINIVAE_HD PhiloxWords philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                     uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; ++r) {
        if (r) {
            k0 += 0x9E3779B9u;  // key schedule: golden ratio, sqrt(3) - 1
            k1 += 0xBB67AE85u;
        }
        const uint64_t p0 = (uint64_t)c0 * 0xD2511F53u;
        const uint64_t p1 = (uint64_t)c2 * 0xCD9E8D57u;
        const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
    }
    PhiloxWords out = {{c0, c1, c2, c3}};
    return out;
}

// The four words of stream block `block` for `seed`.
MINIVAE_HD PhiloxWords philox_block(uint64_t seed, uint64_t block) {
    return philox4x32_10((uint32_t)block, (uint32_t)(block >> 32), 0u, 0u,
                         (uint32_t)seed, (uint32_t)(seed >> 32));
}

// Word i of a draw that starts at block `offset` (a kernel thread asks for its own i).
MINIVAE_HD uint32_t philox_word(uint64_t seed, uint64_t offset, uint64_t i) {
    return philox_block(seed, offset + i / 4).w[i % 4];
}

// Uniforms in the open interval (0, 1), as random.words_to_uniform: never exactly 0 or 1.
MINIVAE_HD float uniform_f32(uint32_t w) {
    return ((float)(w >> 9) + 0.5f) * 1.1920928955078125e-07f;  // 2^-23
}

MINIVAE_HD double uniform_f64(uint32_t w) {
    return ((double)w + 0.5) * 2.3283064365386963e-10;  // 2^-32
}

// Standard Gumbel noise g = -log(-log1p(-u)) from a float64 uniform, as Generator.gumbel:
// u in [2^-33, 1 - 2^-33] keeps -log1p(-u) in (0, inf), so g is always finite.
MINIVAE_HD double gumbel_f64(uint32_t w) {
    return -log(-log1p(-uniform_f64(w)));
}

// The same noise in float32 arithmetic, for float32 kernels where the two double-precision
// logarithms would cost most of the time: E = −log1p(−u) from u when u ≤ ½, else −log(v) from
// v = 1 − u, which is formed from the word exactly ((2^32 − 1 − w) + ½)·2^-32 (near 1, u itself
// would round to 1 in float32 and give E = 0, g = +inf); g = −log E. Each step is within an ulp or
// two in float32, so g is within a few float32 ulp of (float)gumbel_f64(w), and always finite.
MINIVAE_HD float gumbel_f32(uint32_t w) {
    const float exponential = w <= 0x7FFFFFFFu
        ? -log1pf(-(((float)w + 0.5f) * 2.3283064365386963e-10f))
        : -logf(((float)(0xFFFFFFFFu - w) + 0.5f) * 2.3283064365386963e-10f);
    return -logf(exponential);
}
