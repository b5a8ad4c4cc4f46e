// The ends of a dense layer (ops.linear, as minivae/ops/linalg.py) around its cuBLAS products, one pass each way:
//
//   bias_act_fwd   p = x @ W is given; in place, y_ij = act(p_ij + b_j), act the identity or ReLU: max(v, 0)
//                  as NumPy's maximum, NaN staying NaN. Layout: grid-stride over the n = rows·cols values.
//   relu_bwd       p̄_ij = ḡ_ij·[y_ij > 0]   (y > 0 exactly where p > 0; a NaN ḡ stays NaN, as in the formula)
//                  Layout: grid-stride, as bias_act_fwd.
//   bias_relu_bwd  the same p̄, and the bias gradient b̄_j = Σ_i p̄_ij, which would otherwise be a reduction
//                  kernel of its own (for batches small enough that the launch costs more than the pass).
//                  Layout: a block takes 32 columns, threadIdx.x one column each (a warp reads 32
//                  consecutive values of a row), threadIdx.y every MINIVAE_BIAS_ROWS-th row; a column's
//                  partial sums are then added in one fixed order, so b̄ does not depend on timing. Only
//                  ⌈cols/32⌉ blocks: too few to draw the GPU's bandwidth on many rows (minivae/_gpu/linear.py).
//
// y, ḡ are C-contiguous (rows, cols) arrays; b and b̄ hold cols values.
#include "common.cuh"

#define MINIVAE_BIAS_ROWS 16  // blockDim.y of bias_relu_bwd (minivae/_gpu/linear.py launches it so)

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
__global__ void bias_relu_bwd(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ out,
                              T* __restrict__ db, long long rows, int cols) {
    __shared__ T partial[MINIVAE_BIAS_ROWS][32];
    const int j = blockIdx.x * 32 + threadIdx.x;
    T s = T(0);
    if (j < cols) {
        for (long long i = threadIdx.y; i < rows; i += MINIVAE_BIAS_ROWS) {
            const long long k = i * cols + j;
            const T v = g[k] * (T)(y[k] > T(0));
            out[k] = v;
            s += v;
        }
    }
    partial[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < cols) {
        for (int r = 1; r < MINIVAE_BIAS_ROWS; ++r) s += partial[r][threadIdx.x];
        db[j] = s;
    }
}
