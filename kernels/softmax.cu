// Softmax and log-softmax with temperature τ over the rows of a (rows, k) C-contiguous array.
//
//   forward   m = max_j x_j;  z_j = (x_j − m)·inv_tau;  s = Σ_j exp z_j
//             softmax y_j = exp(z_j)/s;   log-softmax y_j = z_j − log s          (inv_tau = 1/τ)
//   backward  softmax gx_j = y_j·(g_j − Σ_i g_i y_i)·inv_tau
//             log-softmax gx_j = (g_j − exp(y_j)·Σ_i g_i)·inv_tau
// as minivae/ops/softmax.py. The shift by the max makes every exponent ≤ 0, so logits of ±1e4 and
// τ down to 1e-3 neither overflow nor give NaN.
//
// Layouts (common.cuh): *_warp_* L lanes per row, lane l keeps x_j, j = l + Lt (t < N), in
// registers: the row is read once and written once (k ≤ L·N). L = 32 (a warp) with N = 1, 2, 4, 8, or
// N = 1 and L = 4, 8, 16 for rows of k ≤ L, 32/L rows a warp: a warp per row of 10 would leave 22
// of its 32 lanes idle, and a categorical VAE's rows are that short (PyTorch's softmax for short
// rows packs a warp the same way). *_block_* one block per row, 8 values a thread in registers when
// k ≤ 8·blockDim.x: by 16-byte vectors (thread t the vectors t and t + blockDim.x) when every row
// starts on a 16-byte boundary, else thread t keeps j = t + blockDim.x·u (u < 8); longer rows are
// re-read from global memory for each pass (any k). A warp (block) wholly past the last row skips it
// as a whole, and a row past the end in a live warp has no element, so shuffles and barriers stay
// collective.
#include "common.cuh"

template <typename T, int N, int L>
__global__ void softmax_warp_fwd(const T* __restrict__ x, T* __restrict__ y, int rows, int k, T inv_tau,
                                 int log_out) {
    static_assert(N == 1 || L == 32, "rows of several values a lane take a whole warp");
    const int lane = group_lane<L>();
    const long long row = group_row<L>();
    if (warp_live<L>(rows)) {  // the same on every lane of the warp: its shuffles stay collective
        const int kr = row < rows ? k : 0;  // a row past the end (L < 32) has no element
        const T* xr = x + row * k;
        T* yr = y + row * k;
        T v[N];
#pragma unroll
        for (int t = 0; t < N; ++t) {
            const int j = lane + L * t;
            v[t] = j < kr ? xr[j] : T(0);
        }
        softmax_regs<T, N, false, L>(v, Strided{lane, L, kr}, inv_tau, log_out);
#pragma unroll
        for (int t = 0; t < N; ++t) {
            const int j = lane + L * t;
            if (j < kr) yr[j] = v[t];
        }
    }
}

template <typename T, int N, int L>
__global__ void softmax_warp_bwd(const T* __restrict__ y, const T* __restrict__ g, T* __restrict__ gx, int rows,
                                 int k, T inv_tau, int log_out) {
    static_assert(N == 1 || L == 32, "rows of several values a lane take a whole warp");
    const int lane = group_lane<L>();
    const long long row = group_row<L>();
    if (warp_live<L>(rows)) {  // the same on every lane of the warp: its shuffles stay collective
        const int kr = row < rows ? k : 0;
        T yv[N], gv[N];
        T s = T(0);
#pragma unroll
        for (int t = 0; t < N; ++t) {
            const int j = lane + L * t;
            yv[t] = j < kr ? y[row * k + j] : T(0);
            gv[t] = j < kr ? g[row * k + j] : T(0);
            s += softmax_bwd_term(yv[t], gv[t], log_out);  // padding adds 0
        }
        s = warp_sum<L>(s);
#pragma unroll
        for (int t = 0; t < N; ++t) {
            const int j = lane + L * t;
            if (j < kr) gx[row * k + j] = softmax_bwd_elem(yv[t], gv[t], s, inv_tau, log_out);
        }
    }
}

// __launch_bounds__(1024, 1): launchers use up to 1024 threads per row, which needs ≤ 64 registers
// per thread; the explicit 1 block per SM stops ptxas from aiming at two (32 registers, spills).
template <typename T>
__global__ void __launch_bounds__(1024, 1)
    softmax_block_fwd(const T* __restrict__ x, T* __restrict__ y, int rows, int k, T inv_tau, int log_out) {
    const int first = threadIdx.x, stride = blockDim.x;
    const bool cached = k <= MINIVAE_BLOCK_VALUES * stride;  // the same for the whole block
    const int row = blockIdx.x;
    if (row < rows) {  // the same in the whole block: every thread reaches the barriers
        const T* xr = x + (long long)row * k;
        T* yr = y + (long long)row * k;
        if (cached && vectorizable(k, x, y)) {  // the same for the whole launch
            T v[MINIVAE_BLOCK_VALUES];
            load_vectors(xr, v, k);
            softmax_regs<T, MINIVAE_BLOCK_VALUES, true>(v, Vectors<16 / sizeof(T)>{k}, inv_tau, log_out);
            store_vectors(yr, v, k);
        } else if (cached) {
            T v[MINIVAE_BLOCK_VALUES];
#pragma unroll
            for (int t = 0; t < MINIVAE_BLOCK_VALUES; ++t) {
                const int j = first + t * stride;
                v[t] = j < k ? xr[j] : T(0);
            }
            softmax_regs<T, MINIVAE_BLOCK_VALUES, true>(v, Strided{first, stride, k}, inv_tau, log_out);
#pragma unroll
            for (int t = 0; t < MINIVAE_BLOCK_VALUES; ++t) {
                const int j = first + t * stride;
                if (j < k) yr[j] = v[t];
            }
        } else {
            softmax_block_global(xr, yr, k, inv_tau, log_out);
        }
    }
}

template <typename T>
__global__ void __launch_bounds__(1024, 1)
    softmax_block_bwd(const T* __restrict__ y, const T* __restrict__ g, T* __restrict__ gx, int rows, int k,
                      T inv_tau, int log_out) {
    const int first = threadIdx.x, stride = blockDim.x;
    const bool cached = k <= MINIVAE_BLOCK_VALUES * stride;
    const int row = blockIdx.x;
    if (row < rows) {  // the same in the whole block: every thread reaches the barriers
        const T* yr = y + (long long)row * k;
        const T* gr = g + (long long)row * k;
        T* gxr = gx + (long long)row * k;
        T s = T(0);
        if (cached && vectorizable(k, y, g, gx)) {  // the same for the whole launch
            T yv[MINIVAE_BLOCK_VALUES], gv[MINIVAE_BLOCK_VALUES];
            load_vectors(yr, yv, k);
            load_vectors(gr, gv, k);
#pragma unroll
            for (int t = 0; t < MINIVAE_BLOCK_VALUES; ++t) s += softmax_bwd_term(yv[t], gv[t], log_out);  // padding adds 0
            s = block_sum(s);
#pragma unroll
            for (int t = 0; t < MINIVAE_BLOCK_VALUES; ++t) gv[t] = softmax_bwd_elem(yv[t], gv[t], s, inv_tau, log_out);
            store_vectors(gxr, gv, k);  // padding's values are not stored
        } else if (cached) {
            T yv[MINIVAE_BLOCK_VALUES], gv[MINIVAE_BLOCK_VALUES];
#pragma unroll
            for (int t = 0; t < MINIVAE_BLOCK_VALUES; ++t) {
                const int j = first + t * stride;
                yv[t] = j < k ? yr[j] : T(0);
                gv[t] = j < k ? gr[j] : T(0);
                s += softmax_bwd_term(yv[t], gv[t], log_out);
            }
            s = block_sum(s);
#pragma unroll
            for (int t = 0; t < MINIVAE_BLOCK_VALUES; ++t) {
                const int j = first + t * stride;
                if (j < k) gxr[j] = softmax_bwd_elem(yv[t], gv[t], s, inv_tau, log_out);
            }
        } else {
            for (int j = first; j < k; j += stride) s += softmax_bwd_term(yr[j], gr[j], log_out);
            s = block_sum(s);
            for (int j = first; j < k; j += stride) gxr[j] = softmax_bwd_elem(yr[j], gr[j], s, inv_tau, log_out);
        }
    }
}
