// Philox4x32-10 fills, as minivae.random.Generator(seed, counter=offset) draws them: value i of a
// draw is built from word i = philox_word(seed, offset, i), word i % 4 of Philox block
// offset + i / 4 (philox.cuh).
//
//   uniform  out_i = uniform_f32(word i) (float) or uniform_f64(word i) (double), in (0, 1)
//   normal   Box–Muller on pairs: u1 = uniform_f64(word 2p), u2 = uniform_f64(word 2p+1),
//            r = √(−2·log u1), θ = 2π·u2, out_2p = (T)(r·cos θ), out_2p+1 = (T)(r·sin θ) (if < n)
//   gumbel   out_i = (T)gumbel_f64(word i) = (T)(−log(−log1p(−u_i)))
//
// The draw starts at block offset + *shift: shift points to 0 for an eager draw, and to the step's
// counter advance for a draw inside a CUDA graph (minivae/_gpu/graph.py), whose arguments are fixed.
//
// Layout: grid-stride loop over Philox blocks b < ⌈n/4⌉; the thread of block b computes its four
// words once and writes values 4b … 4b+3 (guarded at the tail), instead of one block per value,
// which would run Philox four times per block.
#include "common.cuh"

MINIVAE_HD float uniform_as(unsigned int w, float) { return uniform_f32(w); }
MINIVAE_HD double uniform_as(unsigned int w, double) { return uniform_f64(w); }

template <typename T>
__global__ void philox_uniform(T* __restrict__ out, long long n, unsigned long long seed,
                               unsigned long long offset, const unsigned long long* __restrict__ shift) {
    offset += *shift;
    for (long long b = grid_first(); b < (n + 3) / 4; b += grid_step()) {
        const PhiloxWords w = philox_block(seed, offset + (unsigned long long)b);
#pragma unroll
        for (int q = 0; q < 4; ++q)
            if (4 * b + q < n) out[4 * b + q] = uniform_as(w.w[q], T(0));
    }
}

template <typename T>
__global__ void philox_normal(T* __restrict__ out, long long n, unsigned long long seed,
                              unsigned long long offset, const unsigned long long* __restrict__ shift) {
    offset += *shift;
    for (long long b = grid_first(); b < (n + 3) / 4; b += grid_step()) {
        const PhiloxWords w = philox_block(seed, offset + (unsigned long long)b);
#pragma unroll
        for (int q = 0; q < 4; q += 2) {  // pair p = 2b + q/2 takes words 4b + q and 4b + q + 1
            const long long i = 4 * b + q;
            if (i < n) {
                double first, second;
                normal_pair(w.w[q], w.w[q + 1], first, second);
                out[i] = (T)first;
                if (i + 1 < n) out[i + 1] = (T)second;
            }
        }
    }
}

template <typename T>
__global__ void philox_gumbel(T* __restrict__ out, long long n, unsigned long long seed,
                              unsigned long long offset, const unsigned long long* __restrict__ shift) {
    offset += *shift;
    for (long long b = grid_first(); b < (n + 3) / 4; b += grid_step()) {
        const PhiloxWords w = philox_block(seed, offset + (unsigned long long)b);
#pragma unroll
        for (int q = 0; q < 4; ++q)
            if (4 * b + q < n) out[4 * b + q] = (T)gumbel_f64(w.w[q]);
    }
}
