// Gumbel-Softmax forward with the noise made in the kernel from Philox, over the rows of a
// (rows, k) C-contiguous array of logits.
//
//   g_i = gumbel_f64(philox_word(seed, offset, i)),  i = r·k + j (row-major flat index)
//   v_i = (T)g_i + logits_i            (rounded to T first, then added in T, as the reference)
//   y_r = softmax(v_r·inv_tau)         (as softmax.cu, shifted by the row max)
//   out_r = one_hot(argmax_j y_rj)     only when hard; ties go to the lowest j (numpy.argmax)
// as minivae/ops/sampling.py with Generator(seed, counter=offset).gumbel: one seed gives one sample
// on every backend. The noise lives in registers only; nothing but y (and out) is written.
//
// Layouts as softmax.cu: gumbel_softmax_warp_fwd one warp per row, lane l keeps j = l + 32t
// (t < N, k ≤ 32·N) in registers; gumbel_softmax_block_fwd one block per row, 8 values per thread
// in registers when k ≤ 8·blockDim.x; for longer rows the noisy logits v are staged in y itself
// (each thread re-reads only what it wrote), so Philox runs once per element on every path.
#include "common.cuh"

template <typename T>
MINIVAE_HD T noisy_logit(T logit, unsigned long long seed, unsigned long long offset, unsigned long long i) {
    return (T)gumbel_f64(philox_word(seed, offset, i)) + logit;
}

// (best, at) ← (y_j, j) if y_j beats it; a thread visits its j in increasing order, so strict >
// keeps the lowest index among equals.
template <typename T>
MINIVAE_HD void argmax_step(T yj, int j, T& best, int& at) {
    if (yj > best) {
        best = yj;
        at = j;
    }
}

template <typename T, int N>
__global__ void gumbel_softmax_warp_fwd(const T* __restrict__ logits, T* __restrict__ y, T* __restrict__ out,
                                        int rows, int k, T inv_tau, unsigned long long seed,
                                        unsigned long long offset, int hard) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row < rows) {  // the same on every lane of the warp: its shuffles stay collective
        const long long base = row * k;
        T v[N];
#pragma unroll
        for (int t = 0; t < N; ++t) {
            const int j = lane + 32 * t;
            v[t] = j < k ? noisy_logit(logits[base + j], seed, offset, (unsigned long long)(base + j)) : T(0);
        }
        softmax_regs<T, N, false>(v, lane, 32, k, inv_tau, 0);
        T best = neg_inf(T(0));
        int at = MINIVAE_NO_INDEX;
#pragma unroll
        for (int t = 0; t < N; ++t) {
            const int j = lane + 32 * t;
            if (j < k) {
                y[base + j] = v[t];
                argmax_step(v[t], j, best, at);
            }
        }
        if (hard) {  // a kernel argument: the same on every lane, so the shuffles stay collective
            warp_argmax(best, at);
#pragma unroll
            for (int t = 0; t < N; ++t) {
                const int j = lane + 32 * t;
                if (j < k) out[base + j] = j == at ? T(1) : T(0);
            }
        }
    }
}

// __launch_bounds__(1024, 1): as softmax.cu, ≤ 64 registers for blocks of up to 1024 threads.
template <typename T>
__global__ void __launch_bounds__(1024, 1)
    gumbel_softmax_block_fwd(const T* __restrict__ logits, T* __restrict__ y, T* __restrict__ out, int rows, int k,
                             T inv_tau, unsigned long long seed, unsigned long long offset, int hard) {
    const int first = threadIdx.x, stride = blockDim.x;
    const bool cached = k <= MINIVAE_BLOCK_VALUES * stride;  // the same for the whole block
    const int row = blockIdx.x;
    if (row < rows) {  // the same in the whole block: every thread reaches the barriers
        const long long base = (long long)row * k;
        T best = neg_inf(T(0));
        int at = MINIVAE_NO_INDEX;
        if (cached) {
            T v[MINIVAE_BLOCK_VALUES];
#pragma unroll
            for (int t = 0; t < MINIVAE_BLOCK_VALUES; ++t) {
                const int j = first + t * stride;
                v[t] = j < k ? noisy_logit(logits[base + j], seed, offset, (unsigned long long)(base + j)) : T(0);
            }
            softmax_regs<T, MINIVAE_BLOCK_VALUES, true>(v, first, stride, k, inv_tau, 0);
#pragma unroll
            for (int t = 0; t < MINIVAE_BLOCK_VALUES; ++t) {
                const int j = first + t * stride;
                if (j < k) {
                    y[base + j] = v[t];
                    argmax_step(v[t], j, best, at);
                }
            }
        } else {
            T* yr = y + base;
            for (int j = first; j < k; j += stride)
                yr[j] = noisy_logit(logits[base + j], seed, offset, (unsigned long long)(base + j));
            softmax_block_global(yr, yr, k, inv_tau, 0);
            if (hard)
                for (int j = first; j < k; j += stride) argmax_step(yr[j], j, best, at);
        }
        if (hard) {  // a kernel argument: the same in the whole block, so every thread reaches the barriers
            block_argmax(best, at);
            for (int j = first; j < k; j += stride) out[base + j] = j == at ? T(1) : T(0);
        }
    }
}
