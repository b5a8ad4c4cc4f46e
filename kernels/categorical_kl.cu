// KL(Cat(q) ‖ Cat(p)) per row of (rows, k) C-contiguous logits, q = softmax(logits), p = softmax(prior logits),
// the prior given as prior_rows rows of k, row r of the logits taking prior row r mod prior_rows (a prior per
// latent variable, or one for all, read in place) (as minivae/ops/losses.py):
//
//   forward   log_q_j = (l_j − m) − log Σ_i exp(l_i − m),  m = max_j l_j;  log_p likewise from the prior's row
//             q_j = exp(log_q_j);  diff_j = log_q_j − log_p_j (0 where q_j = 0);  kl = Σ_j q_j·diff_j  (writes kl, q, diff)
//   backward  gl_j = q_j·(diff_j − kl)·g                                                  (g, kl: one value per row)
//
// Layout: L lanes per row, row = (blockIdx.x·blockDim.x + threadIdx.x)/L, lane l handles j = l, l + L, …
// for any k (k is small here, so the row is re-read from global memory for each pass rather than kept
// in registers: common.cuh's categorical_row, shared with gumbel_softmax.cu's Gumbel-Softmax and KL pair).
// L = 32 (a warp), or 4, 8, 16 for rows of k ≤ L, 32/L rows a warp (softmax.cu: a categorical VAE's rows
// are about 10 long).
#include "common.cuh"

template <typename T, int L>
__global__ void categorical_kl_fwd(const T* __restrict__ logits, const T* __restrict__ prior, T* __restrict__ kl,
                                   T* __restrict__ q, T* __restrict__ diff, int rows, int k, int prior_rows) {
    const int lane = group_lane<L>();
    const long long row = group_row<L>();
    if (warp_live<L>(rows)) {  // the same on every lane of the warp: its shuffles stay collective
        const int kr = row < rows ? k : 0;  // a row past the end (L < 32) has no element
        const CategoricalRow<T> c = categorical_row<L>(logits + row * k, prior + (row % prior_rows) * k, kr, lane);
        const T total = categorical_kl_row<L>(c, kr, lane, q + row * k, diff + row * k);
        if (lane == 0 && row < rows) kl[row] = total;
    }
}

// No reduction: a row past the end is simply skipped, lane by lane.
template <typename T, int L>
__global__ void categorical_kl_bwd(const T* __restrict__ g, const T* __restrict__ q, const T* __restrict__ diff,
                                   const T* __restrict__ kl, T* __restrict__ glogits, int rows, int k) {
    const int lane = group_lane<L>();
    const long long row = group_row<L>();
    if (row < rows) {
        const T gr = g[row], klr = kl[row];
        for (int j = lane; j < k; j += L) {
            const long long i = row * k + j;
            glogits[i] = categorical_kl_grad(q[i], diff[i], klr, gr);
        }
    }
}
