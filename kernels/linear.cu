// The elementwise ends of a dense layer (ops.linear, as minivae/ops/linalg.py), each one pass instead of two:
//
//   bias_act_fwd   p = x @ W is given (cuBLAS); in place, y_ij = act(p_ij + b_j), act the identity or
//                  ReLU: max(v, 0) as NumPy's maximum, NaN staying NaN
//   relu_bwd       p̄_ij = ḡ_ij·[y_ij > 0]   (y > 0 exactly where p > 0; a NaN ḡ stays NaN, as in the formula)
//
// y is a C-contiguous (rows, cols) array of n = rows·cols values; b holds cols values.
// Layout: grid-stride loop over the n values (common.cuh).
#include "common.cuh"

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
