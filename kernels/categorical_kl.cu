// KL(Cat(q) ‖ Cat(p)) per row of (rows, k) C-contiguous logits, q = softmax(logits), p = softmax(prior logits),
// the prior given as prior_rows rows of k, row r of the logits taking prior row r mod prior_rows (a prior per
// latent variable, or one for all, read in place) (as minivae/ops/losses.py):
//
//   forward   log_q_j = (l_j − m) − log Σ_i exp(l_i − m),  m = max_j l_j;  log_p likewise from the prior's row
//             diff_j = log_q_j − log_p_j;  q_j = exp(log_q_j);  kl = Σ_j q_j·diff_j        (writes kl, q, diff)
//   backward  gl_j = q_j·(diff_j − kl)·g                                                  (g, kl: one value per row)
//
// Layout: one warp per row, row = blockIdx.x·(blockDim.x/32) + threadIdx.x/32; lane l handles
// j = l, l + 32, … for any k (k is small here, so the row is re-read from global memory for each
// pass rather than kept in registers).
#include "common.cuh"

// (m, log Σ_j exp(x_j − m)) of one row of k values, m its maximum, by the lanes of a warp: then
// log softmax(x)_j = (x_j − m) − log_s. Every lane must call it (warp shuffles).
template <typename T>
MINIVAE_D void warp_log_softmax_shift(const T* x, int k, int lane, T& m, T& log_s) {
    m = neg_inf(T(0));
    for (int j = lane; j < k; j += 32) m = mv_max(m, x[j]);
    m = warp_max(m);
    T s = T(0);
    for (int j = lane; j < k; j += 32) s += mv_exp(x[j] - m);
    log_s = mv_log(warp_sum(s));
}

template <typename T>
__global__ void categorical_kl_fwd(const T* __restrict__ logits, const T* __restrict__ prior, T* __restrict__ kl,
                                   T* __restrict__ q, T* __restrict__ diff, int rows, int k, int prior_rows) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row < rows) {  // the same on every lane of the warp: its shuffles stay collective
        const T* l = logits + row * k;
        // each warp normalizes its prior row itself: two warp reductions, where normalizing the prior
        // once would take a launch of its own
        const T* lp = prior + (row % prior_rows) * k;
        T m, log_s, mp, log_sp;
        warp_log_softmax_shift(l, k, lane, m, log_s);
        warp_log_softmax_shift(lp, k, lane, mp, log_sp);
        T total = T(0);
        for (int j = lane; j < k; j += 32) {
            const T log_q = (l[j] - m) - log_s;
            const T qj = mv_exp(log_q);
            const T d = log_q - ((lp[j] - mp) - log_sp);
            q[row * k + j] = qj;
            diff[row * k + j] = d;
            total += qj * d;
        }
        total = warp_sum(total);
        if (lane == 0) kl[row] = total;
    }
}

template <typename T>
__global__ void categorical_kl_bwd(const T* __restrict__ g, const T* __restrict__ q, const T* __restrict__ diff,
                                   const T* __restrict__ kl, T* __restrict__ glogits, int rows, int k) {
    const int lane = threadIdx.x & 31;
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row < rows) {
        const T gr = g[row], klr = kl[row];
        for (int j = lane; j < k; j += 32) {
            const long long i = row * k + j;
            glogits[i] = q[i] * (diff[i] - klr) * gr;  // the reference's order: q·(diff − kl)·g
        }
    }
}
