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
//                  into sums[blockIdx.y][j]. One group (small batches): that is b̄_j itself (the launcher passes
//                  sums = b̄, and db is not touched). Many groups spread a large batch over the GPU: each block
//                  parks its sums there, and the last block of a column tile
//                  to finish (a wrapping atomic count per tile, which that block's increment returns to 0 for
//                  the next launch, as kernels/elbo.cu's) adds the groups' rows, s in order, into b̄_j: one
//                  launch either way, and b̄ does not depend on timing. The counts are one per module, so
//                  launches must not overlap (one stream, as minivae's elementwise kernels use).
//
// y, ḡ are C-contiguous (rows, cols) arrays; b and b̄ hold cols values.
#include "common.cuh"

#define MINIVAE_BIAS_ROWS 16  // blockDim.y of bias_grad (minivae/_gpu/linear.py launches it so)

template <typename T>
__global__ void bias_act_fwd(T* __restrict__ y, const T* __restrict__ b, long long n, int cols, int relu) {
    for (long long i = grid_first(); i < n; i += grid_step()) {
        y[i] = dense_act(y[i] + b[i % cols], relu);  // relu: a kernel argument, the same in every thread
    }
}

template <typename T>
__global__ void relu_bwd(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ out, long long n) {
    for (long long i = grid_first(); i < n; i += grid_step()) out[i] = g[i] * (T)(y[i] > T(0));
}

// Column tiles a launch of many row groups may have: minivae/_gpu/linear.py gives one group to layers of more
// tiles than GROUP_BLOCKS (512), whose tiles alone fill the GPU.
#define MINIVAE_BIAS_TILES 512
__device__ unsigned int bias_grad_groups_done[MINIVAE_BIAS_TILES];

template <typename T>
__global__ void bias_grad(const T* __restrict__ g, const T* __restrict__ y, T* __restrict__ out, T* sums,
                          T* db, long long rows, int cols, long long chunk, int relu) {
    __shared__ T partial[MINIVAE_BIAS_ROWS][32];
    __shared__ bool last;
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
        sums[blockIdx.y * (long long)cols + j] = s;  // with one group, sums is b̄ itself
    }
    if (gridDim.y == 1) return;  // the same in the whole launch: b̄ is written
    __syncthreads();  // the block's sums are all written before its thread 0 counts them
    if (threadIdx.x == 0 && threadIdx.y == 0) {
        __threadfence();  // the sums are visible to every block before the count says they are there
        last = atomicInc(&bias_grad_groups_done[blockIdx.x], gridDim.y - 1) == gridDim.y - 1;
    }
    __syncthreads();
    if (last) {  // the same in the whole block: every thread reaches the barrier below
        const volatile T* parked = sums;  // written by other blocks: read from memory, not a cache
        T t = T(0);
        if (j < cols)
            for (unsigned r = threadIdx.y; r < gridDim.y; r += MINIVAE_BIAS_ROWS) t += parked[r * (long long)cols + j];
        partial[threadIdx.y][threadIdx.x] = t;
        __syncthreads();
        if (threadIdx.y == 0 && j < cols) {
            for (int r = 1; r < MINIVAE_BIAS_ROWS; ++r) t += partial[r][threadIdx.x];
            db[j] = t;
        }
    }
}
