// KL(Cat(q) ‖ Cat(p)) per row of (rows, k) C-contiguous logits, q = softmax(logits), p = softmax(prior logits),
// the prior given as prior_rows rows of k, row r of the logits taking prior row r mod prior_rows (a prior per
// latent variable, or one for all, read in place) (as minivae/ops/losses.py):
//
//   forward   log_q_j = (l_j − m) − log Σ_i exp(l_i − m),  m = max_j l_j;  log_p likewise from the prior's row
//             diff_j = log_q_j − log_p_j;  q_j = exp(log_q_j);  kl = Σ_j q_j·diff_j        (writes kl, q, diff)
//   backward  gl_j = q_j·(diff_j − kl)·g                                                  (g, kl: one value per row)
//
// Layout: L lanes per row, row = (blockIdx.x·blockDim.x + threadIdx.x)/L, lane l handles j = l, l + L, …
// for any k (k is small here, so the row is re-read from global memory for each pass rather than kept
// in registers). L = 32 (a warp), or 4, 8, 16 for rows of k ≤ L, 32/L rows a warp (softmax.cu: a
// categorical VAE's rows are about 10 long).
#include "common.cuh"

// (m, log Σ_j exp(x_j − m)) of one row of k values, m its maximum, by the L lanes of its group: then
// log softmax(x)_j = (x_j − m) − log_s. Every lane of the warp must call it (shuffles).
template <int L, typename T>
MINIVAE_D void warp_log_softmax_shift(const T* x, int k, int lane, T& m, T& log_s) {
    m = neg_inf(T(0));
    for (int j = lane; j < k; j += L) m = mv_max(m, x[j]);
    m = warp_max<L>(m);
    T s = T(0);
    for (int j = lane; j < k; j += L) s += mv_exp(x[j] - m);
    log_s = mv_log(warp_sum<L>(s));
}

template <typename T, int L>
__global__ void categorical_kl_fwd(const T* __restrict__ logits, const T* __restrict__ prior, T* __restrict__ kl,
                                   T* __restrict__ q, T* __restrict__ diff, int rows, int k, int prior_rows) {
    const int lane = group_lane<L>();
    const long long row = group_row<L>();
    if (warp_live<L>(rows)) {  // the same on every lane of the warp: its shuffles stay collective
        const int kr = row < rows ? k : 0;  // a row past the end (L < 32) has no element
        const T* l = logits + row * k;
        // each group normalizes its prior row itself: two reductions, where normalizing the prior
        // once would take a launch of its own
        const T* lp = prior + (row % prior_rows) * k;
        T m, log_s, mp, log_sp;
        warp_log_softmax_shift<L>(l, kr, lane, m, log_s);
        warp_log_softmax_shift<L>(lp, kr, lane, mp, log_sp);
        T total = T(0);
        for (int j = lane; j < kr; j += L) {
            const T log_q = (l[j] - m) - log_s;
            const T qj = mv_exp(log_q);
            const T d = log_q - ((lp[j] - mp) - log_sp);
            q[row * k + j] = qj;
            diff[row * k + j] = d;
            total += qj * d;
        }
        total = warp_sum<L>(total);
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
            glogits[i] = q[i] * (diff[i] - klr) * gr;  // the reference's order: q·(diff − kl)·g
        }
    }
}
