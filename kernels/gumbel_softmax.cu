// Gumbel-Softmax forward with the noise made in the kernel from Philox, over the rows of a
// (rows, k) C-contiguous array of logits.
//
//   g_i = gumbel(philox_word(seed, offset, i)),  i = r·k + j (row-major flat index)
//   v_i = (T)g_i + logits_i            (rounded to T first, then added in T, as the reference)
// gumbel is gumbel_f64 for double, exactly Generator.gumbel's value, and gumbel_f32 for float:
// the same formula on the same word in float32 arithmetic, within a few ulp of the reference.
//   y_r = softmax(v_r·inv_tau)         (as softmax.cu, shifted by the row max)
//   out_r = one_hot(argmax_j y_rj)     only when hard; ties go to the lowest j (numpy.argmax); NaN rows stay NaN
// as minivae/ops/sampling.py with Generator(seed, counter=offset).gumbel: one seed gives one sample
// on every backend (in float32 up to those few ulp). The noise lives in registers only; nothing but y (and out) is written.
// With the sample's KL to a prior, for rows of k ≤ 256: gumbel_softmax_kl_warp_fwd / _bwd (below the warp kernel).
//
// Layouts: gumbel_softmax_warp_fwd: one warp per row (k ≤ 32·N, lane l keeps j = l + 32t, t < N, in
// registers), or for rows of k ≤ L = 4, 8, 16 one group of L lanes per row, 32/L rows a warp (N = 1, as
// softmax.cu). gumbel_softmax_quads_fwd: one block per row of k a multiple of 4 whose arrays start on 16-byte
// boundaries (the launcher checks both), thread t holding the V/4 quads t, t + blockDim.x, … of 4 consecutive
// elements, each quad one Philox block, moved by 16-byte vectors; k ≤ V·blockDim.x. gumbel_softmax_block_fwd:
// one block per row for the other rows, warp w owning the span of 256 consecutive elements j0 = 256w (N = 8 a
// lane) when k ≤ 8·blockDim.x; longer rows are staged in y span by span and re-read.
//
// Each Philox block is computed once. Block b holds the words of i = 4b … 4b + 3. A quad is one
// block. In a span they sit in 4 different lanes: were each lane to run Philox for its own i, every
// block would be computed 4 times. Instead lane l runs the blocks l, l + 32, … of its warp's span and
// the lanes trade words by shuffles (noisy_span); only the gumbel itself stays per element.
#include "common.cuh"

// The noise in T. float takes gumbel_f32: with gumbel_f64's two double-precision logarithms (~190
// instructions an element in sm_90 code, log1p running both of its branches in most warps) the
// float kernel was compute-bound at 9% of copy bandwidth on an H200. It is still bound by issue, not
// memory: Nsight Compute on an H200 (65536×1024, float32, by spans) counted 171 instructions an element
// with the issue slots 87% busy; Philox-4x32-10 takes about 23 of them, the two logarithms about 45.
// By quads (no shuffles, no per-element bounds, vector loads and stores) and with softmax's division
// turned into a product, the block kernel went from 400 to 276 µs on an H100, 45% to 65% of copy
// bandwidth (a scratch A/B of the two sources in one process, CUDA events, 2026-11-27): 124 sm_90 instructions
// an element (a static count), which at one instruction a cycle per scheduler take about those 276 µs, so still
// bound by issue. Then 90.5 (gumbel_softmax_quads_fwd below, gumbel_f32's cases as bitwise selects, one
// mul.wide.u32 a Philox product, a thread's Philox blocks made together, no branch around each exp): not yet
// timed on a GPU.
MINIVAE_HD float gumbel_noise(float, uint32_t w) { return gumbel_f32(w); }
MINIVAE_HD double gumbel_noise(double, uint32_t w) { return gumbel_f64(w); }

// out_j of a hard sample: the one-hot of the argmax at, or y_j itself when the row has no argmax
// (at = MINIVAE_NO_INDEX: no y_j > −inf, so every y_j is NaN, a NaN logit having spread through the
// row's softmax): NaN in, NaN out, as numpy.argmax would have made a clean one-hot of it.
template <typename T>
MINIVAE_HD T hard_value(T y, int j, int at) { return at == MINIVAE_NO_INDEX ? y : j == at ? T(1) : T(0); }

// Values per lane of a block-per-row warp span: 32·8 = 256 consecutive elements per warp.
#define GUMBEL_SPAN_VALUES MINIVAE_BLOCK_VALUES

// v[t] ← (T)g_i + logits[i] for i = a + l + 32t (lane l) with l + 32t < len, else 0: the span
// of len ≤ 32·N flat indices from a. Every lane of the warp must call it (shuffles).
//
// The span touches the Philox blocks offset + (a >> 2) + q, q < nb = ((a + len − 1) >> 2) − (a >> 2) + 1
// ≤ 8N + 1 (a need not be a multiple of 4: the first and last block may be partial). Lane l runs
// block q = l + 32s into p[s]. Element l + 32t needs word (h + l) & 3 of block q = ((h + l) >> 2) + 8t
// (h = a & 3): that is lane q & 31, slot q >> 5. Those q lie in [8t, 8t + 8], so the sending lane
// knows its slot: t/4, except lane 0 when t % 4 = 3, which holds q = 8t + 8 in slot t/4 + 1.
// Each shuffle moves one value per sender, and a sender's block feeds 4 lanes that want 4 different
// words, so all 4 words travel (as two 64-bit shuffles). With N = 1 the warp runs one Philox
// either way, so each lane makes its own block and nothing is traded.
template <typename T, int N, int L = 32>
MINIVAE_D void noisy_span(const T* __restrict__ logits, T (&v)[N], long long a, int len,
                          unsigned long long seed, unsigned long long offset) {
    static_assert(N == 1 || L == 32, "spans of several values a lane take a whole warp");
    const int lane = threadIdx.x & (L - 1);
    if constexpr (N == 1) {
        // one value per lane (of a group of L lanes): the warp runs Philox once either way, so no words to trade
        v[0] = lane < len ? logits[a + lane] : T(0);
        if (lane < len) v[0] += gumbel_noise(T(0), philox_word(seed, offset, (unsigned long long)(a + lane)));
        return;
    }
    constexpr int S = (8 * N + 32) / 32;  // ⌈(8N + 1)/32⌉ blocks per lane at most
    const int h = (int)(a & 3);
    const long long first_block = a >> 2;
    const int nb = len > 0 ? (int)(((a + len - 1) >> 2) - first_block + 1) : 0;
    const unsigned long long c0 = offset + (unsigned long long)first_block + (unsigned long long)lane;
    const int from = (h + lane) >> 2, word = (h + lane) & 3;
    // Every load is issued before any arithmetic, so that a warp has its whole span in flight at
    // once: loaded inside the loop below (behind the shuffles and Philox) they went out one at a
    // time, and on an H200 the 65536×1024 float32 forward took 0.415 ms instead of 0.399.
#pragma unroll
    for (int t = 0; t < N; ++t) v[t] = lane + 32 * t < len ? logits[a + lane + 32 * t] : T(0);
    PhiloxWords p[S];
#pragma unroll
    for (int t = 0; t < N; ++t) {
        // slot s ≥ 1 is first sent at t = 4s − 1 (by lane 0): made then, it is not held longer
        const int s = t == 0 ? 0 : t / 4 + 1;
        if ((t == 0 || t % 4 == 3) && s < S) {
            // the whole warp runs slot s if any lane needs it (it would pay for it anyway): no divergence
            if (32 * s < nb) p[s] = philox_block(seed, c0 + 32 * s);
            else p[s] = PhiloxWords{{0u, 0u, 0u, 0u}};
        }
        if (32 * t < len) {  // the same on every lane of the warp: the shuffles stay collective
            PhiloxWords send = p[t / 4];  // t is a constant once unrolled: no indexing in local memory
            if (t % 4 == 3 && lane == 0) send = p[t / 4 + 1 < S ? t / 4 + 1 : t / 4];
            const int src = (from + 8 * t) & 31;
            const unsigned long long w01 = __shfl_sync(
                MINIVAE_FULL_MASK, (unsigned long long)send.w[0] | (unsigned long long)send.w[1] << 32, src);
            const unsigned long long w23 = __shfl_sync(
                MINIVAE_FULL_MASK, (unsigned long long)send.w[2] | (unsigned long long)send.w[3] << 32, src);
            const unsigned long long pair = word < 2 ? w01 : w23;
            const uint32_t w = (uint32_t)(word & 1 ? pair >> 32 : pair);
            if (lane + 32 * t < len) v[t] += gumbel_noise(T(0), w);
        }
    }
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

// Row r's sample at the flat index base = r·k (kr elements, 0 for a row past the end): y = softmax(v·inv_tau),
// v = logits + g, and when hard out = its one-hot. Every lane of the warp must call it (shuffles).
template <typename T, int N, int L>
MINIVAE_D void gumbel_softmax_warp_row(const T* __restrict__ logits, T* __restrict__ y, T* __restrict__ out,
                                       long long base, int kr, T inv_tau, unsigned long long seed,
                                       unsigned long long offset, int hard) {
    const int lane = group_lane<L>();
    T v[N];
    noisy_span<T, N, L>(logits, v, base, kr, seed, offset);
    softmax_regs<T, N, false, L>(v, Strided{lane, L, kr}, inv_tau, 0);
    T best = neg_inf(T(0));
    int at = MINIVAE_NO_INDEX;
#pragma unroll
    for (int t = 0; t < N; ++t) {
        const int j = lane + L * t;
        if (j < kr) {
            y[base + j] = v[t];
            argmax_step(v[t], j, best, at);
        }
    }
    if (hard) {  // a kernel argument: the same on every lane, so the shuffles stay collective
        warp_argmax<L>(best, at);
#pragma unroll
        for (int t = 0; t < N; ++t) {
            const int j = lane + L * t;
            if (j < kr) out[base + j] = hard_value(v[t], j, at);
        }
    }
}

template <typename T, int N, int L>
__global__ void gumbel_softmax_warp_fwd(const T* __restrict__ logits, T* __restrict__ y, T* __restrict__ out,
                                        int rows, int k, T inv_tau, unsigned long long seed,
                                        unsigned long long offset, const unsigned long long* __restrict__ shift,
                                        int hard) {
    offset += *shift;  // as random.cu: 0 eagerly, the step's counter advance in a CUDA graph
    const long long row = group_row<L>();
    if (warp_live<L>(rows))  // the same on every lane of the warp: its shuffles stay collective
        gumbel_softmax_warp_row<T, N, L>(logits, y, out, row * k, row < rows ? k : 0, inv_tau, seed, offset, hard);
}

// The Gumbel-Softmax sample of a categorical VAE's logits and their KL to the prior, one node of two outputs
// (ops.GumbelSoftmaxKL), rows of k ≤ 32·N by the layouts of gumbel_softmax_warp_fwd, the prior as P rows of k
// (row r taking prior row r mod P):
//   forward   kl_r = KL(Cat(softmax l_r) ‖ Cat(softmax lp_{r mod P}))   (categorical_kl.cu's arithmetic)
//             y_r, out_r as gumbel_softmax_warp_fwd
//   backward  l̄_j = y_j·(ȳ_j − Σ_i ȳ_i y_i)·inv_tau + q_j·(d_j − kl)·k̄l,  d_j = log q_j − log p_j (0 where q_j = 0)
//             (softmax_warp_bwd's and categorical_kl_bwd's terms, added: ȳ is out's gradient, straight through
//             when hard; q and d made again from the logits rather than stored)
// One launch each way where the two ops take two forward and three backward (their VJPs and the sum of them).
// The KL's passes read the row from global memory; the noise's load of it then finds it in L1.
template <typename T, int N, int L>
__global__ void gumbel_softmax_kl_warp_fwd(const T* __restrict__ logits, const T* __restrict__ prior,
                                           T* __restrict__ y, T* __restrict__ out, T* __restrict__ kl, int rows,
                                           int k, int prior_rows, T inv_tau, unsigned long long seed,
                                           unsigned long long offset, const unsigned long long* __restrict__ shift,
                                           int hard) {
    offset += *shift;
    const int lane = group_lane<L>();
    const long long row = group_row<L>();
    if (warp_live<L>(rows)) {  // the same on every lane of the warp: its shuffles stay collective
        const int kr = row < rows ? k : 0;  // a row past the end (L < 32) has no element
        const CategoricalRow<T> c = categorical_row<L>(logits + row * k, prior + (row % prior_rows) * k, kr, lane);
        const T total = categorical_kl_row<L>(c, kr, lane, (T*)nullptr, (T*)nullptr);
        if (lane == 0 && row < rows) kl[row] = total;
        gumbel_softmax_warp_row<T, N, L>(logits, y, out, row * k, kr, inv_tau, seed, offset, hard);
    }
}

template <typename T, int N, int L>
__global__ void gumbel_softmax_kl_warp_bwd(const T* __restrict__ y, const T* __restrict__ gy,
                                           const T* __restrict__ logits, const T* __restrict__ prior,
                                           const T* __restrict__ kl, const T* __restrict__ gkl, T* __restrict__ gl,
                                           int rows, int k, int prior_rows, T inv_tau) {
    const int lane = group_lane<L>();
    const long long row = group_row<L>();
    if (warp_live<L>(rows)) {
        const int kr = row < rows ? k : 0;
        const long long base = row * k;
        T yv[N], gv[N];
        T s = T(0);
#pragma unroll
        for (int t = 0; t < N; ++t) {
            const int j = lane + L * t;
            yv[t] = j < kr ? y[base + j] : T(0);
            gv[t] = j < kr ? gy[base + j] : T(0);
            s += softmax_bwd_term(yv[t], gv[t], 0);  // padding adds 0
        }
        s = warp_sum<L>(s);
        const CategoricalRow<T> c = categorical_row<L>(logits + base, prior + (row % prior_rows) * k, kr, lane);
        const T klr = row < rows ? kl[row] : T(0), gk = row < rows ? gkl[row] : T(0);
#pragma unroll
        for (int t = 0; t < N; ++t) {
            const int j = lane + L * t;
            if (j < kr) {
                const T log_q = c.log_q(j), q = mv_exp(log_q);
                gl[base + j] = softmax_bwd_elem(yv[t], gv[t], s, inv_tau, 0) +
                               categorical_kl_grad(q, c.diff(j, log_q, q), klr, gk);
            }
        }
    }
}

// Rows by quads (Vectors<4>): thread t holds the V/4 quads t, t + blockDim.x, … of 4 consecutive elements. With k
// a multiple of 4 every row, so every quad, starts at a flat index i = 4b: quad q's 4 words are the one Philox
// block offset + base/4 + q, made by the thread that uses them. No words to trade, no bounds an element, and the
// row moves by 16-byte vectors. V = 16 floats a thread (8 doubles, whose registers are twice as many): the work a
// thread does once (two block reductions, a reciprocal, addresses, the Philox round keys: ~200 sm_90
// instructions) is 12.5 of the 90.5 instructions an element of a soft sample, where with 8 values it was 25 of 103
// (static counts of the body). __launch_bounds__(1024, 1) caps a thread at 64 registers (it takes 61 or 62);
// rows of up to 1024·V elements (the launcher sends longer ones to the block kernel).
template <typename T, int V>
__global__ void __launch_bounds__(1024, 1)
    gumbel_softmax_quads_fwd(const T* __restrict__ logits, T* __restrict__ y, T* __restrict__ out, int rows, int k,
                             T inv_tau, unsigned long long seed, unsigned long long offset,
                             const unsigned long long* __restrict__ shift, int hard) {
    offset += *shift;
    const int row = blockIdx.x;
    if (row < rows) {  // the same in the whole block: every thread reaches the barriers
        const long long base = (long long)row * k;
        const Vectors<4> quads{k};
        T v[V];
        load_vectors<T, V, 4>(logits + base, v, k);
        uint64_t blocks[V / 4];  // every quad slot's, in the row or not: the thread makes them together
        PhiloxWords w[V / 4];
#pragma unroll
        for (int u = 0; u < V / 4; ++u) blocks[u] = offset + (unsigned long long)(base >> 2) + (unsigned)quads.j(4 * u) / 4;
        philox_blocks(seed, blocks, w);
#pragma unroll
        for (int u = 0; u < V / 4; ++u) {
            if (quads(4 * u)) {
#pragma unroll
                for (int c = 0; c < 4; ++c) v[4 * u + c] += gumbel_noise(T(0), w[u].w[c]);
            }
        }
        softmax_regs<T, V, true>(v, quads, inv_tau, 0);
        store_vectors<T, V, 4>(y + base, v, k);
        if (hard) {  // a kernel argument: the same in the whole block, so every thread reaches the barriers
            T best = neg_inf(T(0));
            int at = MINIVAE_NO_INDEX;
#pragma unroll
            for (int t = 0; t < V; ++t)  // j increases with t: ties keep the lowest j
                if (quads(t)) argmax_step(v[t], quads.j(t), best, at);
            block_argmax(best, at);
#pragma unroll
            for (int t = 0; t < V; ++t) v[t] = hard_value(v[t], quads.j(t), at);
            store_vectors<T, V, 4>(out + base, v, k);
        }
    }
}

// __launch_bounds__(1024, 1): as softmax.cu, ≤ 64 registers for blocks of up to 1024 threads.
template <typename T>
__global__ void __launch_bounds__(1024, 1)
    gumbel_softmax_block_fwd(const T* __restrict__ logits, T* __restrict__ y, T* __restrict__ out, int rows, int k,
                             T inv_tau, unsigned long long seed, unsigned long long offset,
                             const unsigned long long* __restrict__ shift, int hard) {
    offset += *shift;
    constexpr int span = 32 * GUMBEL_SPAN_VALUES;
    const int lane = threadIdx.x & 31;
    const int j0 = span * (int)(threadIdx.x >> 5);  // this warp's span in the row
    const bool cached = k <= GUMBEL_SPAN_VALUES * (int)blockDim.x;  // the same for the whole block
    const int row = blockIdx.x;
    if (row < rows) {  // the same in the whole block: every thread reaches the barriers
        const long long base = (long long)row * k;
        T best = neg_inf(T(0));
        int at = MINIVAE_NO_INDEX;
        if (cached) {
            T v[GUMBEL_SPAN_VALUES];
            noisy_span(logits, v, base + j0, k - j0 < span ? k - j0 : span, seed, offset);
            softmax_regs<T, GUMBEL_SPAN_VALUES, true>(v, Strided{j0 + lane, 32, k}, inv_tau, 0);
#pragma unroll
            for (int t = 0; t < GUMBEL_SPAN_VALUES; ++t) {
                const int j = j0 + lane + 32 * t;
                if (j < k) {
                    y[base + j] = v[t];
                    argmax_step(v[t], j, best, at);
                }
            }
        } else {
            // noisy logits into y, span by span (the warps take turns), then softmax re-reading y
            const int step = span * (int)(blockDim.x >> 5);
            for (int j1 = j0; j1 < k; j1 += step) {  // the same on every lane: shuffles stay collective
                T v[GUMBEL_SPAN_VALUES];
                noisy_span(logits, v, base + j1, k - j1 < span ? k - j1 : span, seed, offset);
#pragma unroll
                for (int t = 0; t < GUMBEL_SPAN_VALUES; ++t) {
                    const int j = j1 + lane + 32 * t;
                    if (j < k) y[base + j] = v[t];
                }
            }
            __syncthreads();  // softmax_block_global reads the values other threads staged
            T* yr = y + base;
            softmax_block_global(yr, yr, k, inv_tau, 0);
            if (hard)
                for (int j = threadIdx.x; j < k; j += blockDim.x) argmax_step(yr[j], j, best, at);
        }
        if (hard) {  // a kernel argument: the same in the whole block, so every thread reaches the barriers
            block_argmax(best, at);
            for (int j = threadIdx.x; j < k; j += blockDim.x) out[base + j] = hard_value(y[base + j], j, at);
        }
    }
}
