// The ends of a dense layer (ops.linear, as minivae/ops/linalg.py) around its cuBLAS products, one pass each way:
//
//   bias_act_fwd   p = x @ W is given; in place, y_ij = act(p_ij + b_j), act the identity or ReLU: max(v, 0)
//                  as NumPy's maximum, NaN staying NaN. Layout: grid-stride over the n = rows·cols values.
//   relu_bwd       p̄_ij = ḡ_ij·[y_ij > 0]   (y > 0 exactly where p > 0; a NaN ḡ stays NaN, as in the formula),
//                  for a ReLU layer whose bias takes no gradient. Layout: grid-stride, as bias_act_fwd.
//   bias_grad      the bias gradient b̄_j = Σ_i p̄_ij, with p̄ = ḡ·[y > 0] (written out) for a ReLU layer, or
//                  p̄ = ḡ for a layer without an activation (relu = 0: y and p̄ are neither read nor written).
//                  Layout: a block takes 32 columns, threadIdx.x one column each (a warp reads 32 consecutive
//                  values of a row), and one group of `chunk` consecutive rows (blockIdx.y), threadIdx.y every
//                  MINIVAE_BIAS_ROWS-th row of it; the block's partial sums are then added in one fixed order
//                  into sums[blockIdx.y][j]. One group (small batches) gives b̄ itself in one launch; many
//                  groups spread a large batch over the GPU, and column_sum adds their rows.
//   column_sum     b̄_j = Σ_s sums_sj, s in order (so b̄ does not depend on timing). Grid-stride over j.
//
// y, ḡ are C-contiguous (rows, cols) arrays; b and b̄ hold cols values.
#include "common.cuh"

#define MINIVAE_BIAS_ROWS 16  // blockDim.y of bias_grad (minivae/_gpu/linear.py launches it so)

template <typename T>
__global__ void bias_act_fwd(T* __restrict__ y, const T* __restrict__ b, long long n, int cols, int relu) {
    for (long long i = grid_first(); i < n; i += grid_step()) {
        const T v = y[i] + b[i % cols];
        y[i] = relu && v < T(0) ? T(0) : v;  // a kernel argument: the same in every thread
    }
}

template <typename T>
__global__ void relu_bwd(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ out, long long n) {
    for (long long i = grid_first(); i < n; i += grid_step()) out[i] = g[i] * (T)(y[i] > T(0));
}

template <typename T>
__global__ void bias_grad(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ out,
                          T* __restrict__ sums, long long rows, int cols, long long chunk, int relu) {
    __shared__ T partial[MINIVAE_BIAS_ROWS][32];
    const int j = blockIdx.x * 32 + threadIdx.x;
    const long long first = blockIdx.y * chunk, end = first + chunk < rows ? first + chunk : rows;
    T s = T(0);
    if (j < cols) {
        for (long long i = first + threadIdx.y; i < end; i += MINIVAE_BIAS_ROWS) {
            const long long k = i * cols + j;
            T v = g[k];
            if (relu) {  // a kernel argument: the same in every thread
                v *= (T)(y[k] > T(0));
                out[k] = v;
            }
            s += v;
        }
    }
    partial[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < cols) {
        for (int r = 1; r < MINIVAE_BIAS_ROWS; ++r) s += partial[r][threadIdx.x];
        sums[blockIdx.y * (long long)cols + j] = s;
    }
}

template <typename T>
__global__ void column_sum(const T* __restrict__ sums, T* __restrict__ out, int parts, int cols) {
    for (long long j = grid_first(); j < cols; j += grid_step()) {
        T s = T(0);
        for (int p = 0; p < parts; ++p) s += sums[p * (long long)cols + j];
        out[j] = s;
    }
}
