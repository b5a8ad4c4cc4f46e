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
#include <string.h>
#endif

#ifdef __CUDACC__
#define MINIVAE_HD __host__ __device__ __forceinline__
#else
#define MINIVAE_HD static inline
#endif

struct PhiloxWords {
    uint32_t w[4];
};

// The 64-bit product of two 32-bit words. On the GPU one mul.wide.u32 (IMAD.WIDE.U32 on sm_90, both halves
// in one instruction): from the C++ product NVVM makes 64-bit arithmetic of the whole round, which ptxas
// turns into an extra add per product and round keys in ordinary registers (a kernel of one Philox block:
// 104 sm_90 instructions, 88 with this: nvcc -cubin, cuobjdump -sass).
MINIVAE_HD uint64_t mul_wide(uint32_t a, uint32_t b) {
#ifdef __CUDA_ARCH__
    uint64_t p;
    asm("mul.wide.u32 %0, %1, %2;" : "=l"(p) : "r"(a), "r"(b));
    return p;
#else
    return (uint64_t)a * b;
#endif
}

// N Philox4x32-10 blocks at once, in place: block b's counter (c[0][b], c[1][b], c[2][b], c[3][b]) becomes its four
// words. Round by round, so that each round key is made once for all N blocks and their chains of products
// interleave: gumbel_softmax_quads_fwd's thread needs 4 blocks, and made one after another each remade the 20
// round keys (sm_90: 1512 → 1448 instructions for a thread's 16 elements).
template <int N>
MINIVAE_HD void philox4x32_10(uint32_t (&c)[4][N], uint32_t k0, uint32_t k1) {
    for (int r = 0; r < 10; ++r) {
        if (r) {
            k0 += 0x9E3779B9u;  // key schedule: golden ratio, sqrt(3) - 1
            k1 += 0xBB67AE85u;
        }
#pragma unroll
        for (int b = 0; b < N; ++b) {
            const uint64_t p0 = mul_wide(c[0][b], 0xD2511F53u);
            const uint64_t p1 = mul_wide(c[2][b], 0xCD9E8D57u);
            const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1][b] ^ k0;
            const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3][b] ^ k1;
            c[1][b] = (uint32_t)p1;
            c[3][b] = (uint32_t)p0;
            c[0][b] = n0;
            c[2][b] = n2;
        }
    }
}

// One block.
MINIVAE_HD PhiloxWords philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
    uint32_t c[4][1] = {{c0}, {c1}, {c2}, {c3}};
    philox4x32_10(c, k0, k1);
    PhiloxWords out = {{c[0][0], c[1][0], c[2][0], c[3][0]}};
    return out;
}

// The four words of stream blocks block[0], …, block[N − 1] for `seed`.
template <int N>
MINIVAE_HD void philox_blocks(uint64_t seed, const uint64_t (&block)[N], PhiloxWords (&out)[N]) {
    uint32_t c[4][N];
#pragma unroll
    for (int b = 0; b < N; ++b) {
        c[0][b] = (uint32_t)block[b];
        c[1][b] = (uint32_t)(block[b] >> 32);
        c[2][b] = c[3][b] = 0u;
    }
    philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
#pragma unroll
    for (int b = 0; b < N; ++b) out[b] = PhiloxWords{{c[0][b], c[1][b], c[2][b], c[3][b]}};
}

// The four words of stream block `block` for `seed`.
MINIVAE_HD PhiloxWords philox_block(uint64_t seed, uint64_t block) {
    const uint64_t blocks[1] = {block};
    PhiloxWords out[1];
    philox_blocks(seed, blocks, out);
    return out[0];
}

// Word i of a draw that starts at block `offset` (a kernel thread asks for its own i).
MINIVAE_HD uint32_t philox_word(uint64_t seed, uint64_t offset, uint64_t i) {
    const PhiloxWords b = philox_block(seed, offset + i / 4);
    // word i % 4 by two selects: indexed by a value known only at run time, ptxas may put the block in local
    // memory (it did in gumbel_softmax_kl_warp_fwd: a 16-byte stack frame)
    const uint32_t even = i & 2 ? b.w[2] : b.w[0], odd = i & 2 ? b.w[3] : b.w[1];
    return i & 1 ? odd : even;
}

// Uniforms in the open interval (0, 1), as random.words_to_uniform: never exactly 0 or 1.
MINIVAE_HD float uniform_f32(uint32_t w) {
    return ((float)(w >> 9) + 0.5f) * 1.1920928955078125e-07f;  // 2^-23
}

MINIVAE_HD double uniform_f64(uint32_t w) {
    return ((double)w + 0.5) * 2.3283064365386963e-10;  // 2^-32
}

// Two standard normals from two words, by Box–Muller on float64 uniforms, as Generator.normal: the pair p of
// a draw takes its words 2p and 2p + 1, r = √(−2 log u₁), θ = 2π·u₂, and gives (r cos θ, r sin θ).
MINIVAE_HD void normal_pair(uint32_t w1, uint32_t w2, double& first, double& second) {
    const double r = sqrt(-2.0 * log(uniform_f64(w1)));
    const double theta = 2.0 * 3.141592653589793 * uniform_f64(w2);
    first = r * cos(theta);
    second = r * sin(theta);
}

// Standard Gumbel noise g = -log(-log1p(-u)) from a float64 uniform, as Generator.gumbel:
// u in [2^-33, 1 - 2^-33] keeps -log1p(-u) in (0, inf), so g is always finite.
MINIVAE_HD double gumbel_f64(uint32_t w) {
    return -log(-log1p(-uniform_f64(w)));
}

// The same noise in float32 arithmetic, for float32 kernels where the two double-precision
// logarithms would cost most of the time, with both logarithms taken by log_f32 below (one
// polynomial, no branch: libm's log1pf and logf would each run in most warps, their lanes split
// by the word's top bit).
//   E = −log(1 − u) = −log v, where u = (w + ½)·2^-32 and v = 1 − u = ((2^32 − 1 − w) + ½)·2^-32
//   (v is formed from the word, never by subtracting: near 1 a float32 u would round to 1);
//   g = −log E.
// log(1 − u) is written 2^e·(1 + f) with f ∈ [−⅓, ⅓] exactly representable, so no digit is lost:
//   u ≤ ⅓: e = 0, f = −u;   ⅓ < u ≤ ½: e = −1, f = 1 − 2u (exact, 2u ∈ [½, 2]);
//   u > ½ (w ≥ 2^31, v < ½): v's own exponent and mantissa (f_from_bits).
// Each step is within an ulp or two in float32, so g is within a few float32 ulp of
// (float)gumbel_f64(w) (tests/test_kernel_sources.py), and always finite.
MINIVAE_HD uint32_t f32_bits(float x) {
#ifdef __CUDACC__
    return __float_as_uint(x);
#else
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b;
#endif
}

MINIVAE_HD float f32_from_bits(uint32_t b) {
#ifdef __CUDACC__
    return __uint_as_float(b);
#else
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
#endif
}

// log(2^e·(1 + f)) = e·ln 2 + log1p(f) for f ∈ [−⅓, ⅓]: log1p(f) = f + f²·Q(f), Q a degree-7
// fit of (log1p(f) − f)/f² weighted by the relative error of log1p (≈ 0.44 ulp before rounding,
// ≤ 1.02 ulp evaluated in float32 with fused multiply-adds). fmaf keeps host and device alike.
MINIVAE_HD float log1p_q(float f) {
    float q = 1.402625144e-01f;
    q = fmaf(q, f, -1.538855880e-01f);
    q = fmaf(q, f, 1.399582773e-01f);
    q = fmaf(q, f, -1.641595662e-01f);
    q = fmaf(q, f, 2.001116723e-01f);
    q = fmaf(q, f, -2.500782013e-01f);
    q = fmaf(q, f, 3.333319724e-01f);
    return fmaf(q, f, -4.999993742e-01f);
}

MINIVAE_HD float log_f32(float e, float f) { return fmaf(e, 0.693147182f, fmaf(f * f, log1p_q(f), f)); }

// −log_f32(e, f) with the sign in the operands of its two last fused multiply-adds, where it costs nothing: the
// same value, rounded the same way, bit for bit but for the sign of a zero result (+0 here, −0 there).
MINIVAE_HD float neg_log_f32(float e, float f) { return fmaf(-e, 0.693147182f, fmaf(f * f, -log1p_q(f), -f)); }

// (e, f) with x = 2^e·(1 + f), f ∈ [−⅓, ⅓), for a positive normal float x: subtracting the bits
// of ⅔ before masking the exponent puts the mantissa m = 1 + f in [⅔, 4/3), and f = m − 1 is exact.
MINIVAE_HD float f_from_bits(float x, float& e) {
    const uint32_t b = f32_bits(x);
    const uint32_t shift = (b - 0x3f2aaaabu) & 0xff800000u;
    e = (float)((int)shift >> 23);
    return f32_from_bits(b - shift) - 1.0f;
}

// a where mask is all ones, b where it is 0: one bitwise instruction. A ?: on a condition that splits a
// warp's lanes (the word's top bit) the compiler may make a branch, both of whose sides the warp then runs.
MINIVAE_HD float pick(uint32_t mask, float a, float b) {
    return f32_from_bits((f32_bits(a) & mask) | (f32_bits(b) & ~mask));
}

// One conversion of a word: t = u when u ≤ ½ (w < 2^31), else t = v = 1 − u ((2^32 − 1 − w) = ~w, flipped by
// the mask of w's top bit). ((float)x + ½)·2^-32 rounds once, so one fused multiply-add gives it.
// Beyond u = ⅓ the low case takes e = −1, f = 1 − 2u = (e − 1)·u − e, exact in one fused multiply-add
// (2u ∈ (⅔, 1]); below it e = 0, f = −u. Every word gives bit for bit the g of the formulation with the
// three cases as branches (all 2^32 words compared on the host, 2026-11-27).
MINIVAE_HD float gumbel_f32(uint32_t w) {
    const uint32_t high = (uint32_t)((int)w >> 31);
    const float t = fmaf((float)(w ^ high), 2.3283064365386963e-10f, 1.16415321826934814453125e-10f);  // 2^-32, 2^-33
    float e_t;
    const float f_t = f_from_bits(t, e_t);
    const float e_low = t > 0.333333343f ? -1.0f : 0.0f;
    const float e = pick(high, e_t, e_low), f = pick(high, f_t, fmaf(e_low - 1.0f, t, -e_low));
    float e_g;
    const float f_g = f_from_bits(neg_log_f32(e, f), e_g);  // E = −log(1 − u) > 0
    return -log_f32(e_g, f_g);
}
