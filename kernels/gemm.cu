// A matrix product with a dense layer's epilogue, for the small products of a VAE's training step
// (minivae/_gpu/tiled.py; experimental, MINIVAE_GEMM=tiled):
//
//   C = A·B,  C_ij = Σ_l A_il·B_lj;  then, by `epilogue`: nothing (0), C_ij + b_j (1) or max(C_ij + b_j, 0)
//   (2, NaN staying NaN), kernels/linear.cu's bias_act_fwd, applied as the product is written (b unread for 0).
//
// Why a kernel of our own when cuBLAS's GEMMs are faster at most sizes: at a batch of 128 a VAE's products
// are small (128×784 by 784×512 at most), too few output tiles to fill a GPU, so cuBLAS splits the inner
// dimension over blocks and adds their partial sums with a second kernel (11 of a Gaussian VAE's 49 kernels
// a CUDA-graph step on an H100), and each dense layer's bias and ReLU take a pass of their own (6 more), as do
// their gradients in the backward pass (bias_grad, 6 more). Here one launch does all three: the split-K partial
// sums are added by the last block of each tile to finish, in slice order, and the epilogue is applied as C is
// written; in the backward pass the ReLU's gate is applied as ḡ is read, and W̄'s launch makes b̄ too.
//
// Layout. Row-major C (m×n, C-contiguous). A(i, l) = a[i·lda + l] when A_ROWS (A row-major), else
// a[l·lda + i] (A stored transposed: a transposed view's memory); B(l, j) = b[l·ldb + j] when B_ROWS,
// else b[j·ldb + l]. A block of 256 threads makes one 64×64 tile of C (blockIdx.x its rows, blockIdx.y its
// columns): thread (ty, tx) = (t/16, t%16) the 4×4 values of rows 4ty…4ty+3 and columns 4tx…4tx+3 of the
// tile. It walks its slice of the inner dimension 16 at a time: the next 64×16 of A and 16×64 of B are read
// from memory into registers (4 values each a thread, consecutive threads on consecutive addresses of
// whichever index is contiguous) while the current ones, parked in shared memory, are multiplied: a thread
// reads 4 of A and 4 of B per step as two 16-byte loads and makes 16 fused multiply-adds. Shared rows are
// padded by 16 bytes (kept on 16-byte boundaries) so that the parked values of a row-major A land in
// different banks.
//
// A ReLU layer's backward (ops.linear, MINIVAE_GEMM=tiled). With `gated` = 1 (2) the product is of A(i, l)·[v > 0]
// (B(l, j)·[v > 0]), v the value of `gate` at the operand's own memory index: the operand is ḡ and the gate the layer's
// output y, both C-contiguous, so the product is of p̄ = ḡ·[y > 0] (kernels/linear.cu's relu_bwd; a NaN ḡ stays NaN)
// without p̄ being written. With `sums` set the blocks of the first row tile (blockIdx.x = 0) also add the columns of
// B as read, Σ_l B(l, j), into col_sums: the launch of W̄ = xᵀ·p̄ makes the bias gradient b̄_j = Σ_i p̄_ij as well
// (kernels/linear.cu's bias_grad). Each step, thread t adds the parked rows 4·(t / 64) … 4·(t / 64) + 3 of column
// t % 64 (one register: four of them per thread spilled in sm_80 code); after the last step the block adds the four
// partial sums of each column in order.
//
// Split-K. blockIdx.z is the slice of the inner dimension, l in [z·kslice, min(k, (z+1)·kslice)). With one
// slice the block writes C. With several each block parks its tile's sums in parts[z] (m×n each); the last
// of a tile's blocks to finish (a wrapping atomic count per tile, which its increment returns to 0 for the
// next launch, as kernels/elbo.cu's) adds parts[0] + parts[1] + … in that order, applies the epilogue and
// writes C: the result does not depend on which block finished when. Column sums go likewise: a slice's n sums
// after all slices' tiles (at parts + slices·m·n + z·n), added in slice order by the last block of their tile.
// The counts (one per tile, zero before the first launch) belong to the stream the launch runs on
// (minivae/_gpu/tiled.py keeps them per stream with the partial sums): two launches with the same counts must
// not overlap. That last block reads slices·16 values a thread, through L2 (other blocks wrote them): where
// rows hold 4·q values and C and the sums start on 16-byte boundaries, a thread's four values of a row are one
// 16-byte load (two in float64), four slices' loads in flight at once, and C and the partial sums are written
// by 16-byte stores likewise; otherwise value by value.
#include "common.cuh"

#define MINIVAE_GEMM_TILE 64     // a block's tile of C is 64×64
#define MINIVAE_GEMM_STEP 16     // inner-dimension values parked in shared memory at a time
#define MINIVAE_GEMM_THREADS 256
#define MINIVAE_GEMM_GATE_A 1    // `gated`: A read through the gate
#define MINIVAE_GEMM_GATE_B 2    // … B

// Four consecutive values at a 16-byte boundary, as one or two 16-byte accesses: loaded from shared memory, or
// through L2 only (FROM_L2: __ldcg, global memory that other blocks wrote), or stored.
template <bool FROM_L2, typename T>
MINIVAE_D void load_four(const T* p, T (&v)[4]) {
    typedef typename Vec16<T>::type W;
    constexpr int V = 16 / sizeof(T);
    const W* w = reinterpret_cast<const W*>(p);
#pragma unroll
    for (int h = 0; h < 4 / V; ++h) unpack16<T>(FROM_L2 ? __ldcg(w + h) : w[h], v + h * V);
}

template <typename T>
MINIVAE_D void store_four(T* p, const T (&v)[4]) {
    typedef typename Vec16<T>::type W;
    constexpr int V = 16 / sizeof(T);
#pragma unroll
    for (int h = 0; h < 4 / V; ++h) reinterpret_cast<W*>(p)[h] = pack16<T>(v + h * V);
}

// The epilogue: v itself (epilogue 0), v + b_j (1), or bias_act_fwd's max(v + b_j, 0) (2, kernels/linear.cu).
#define MINIVAE_GEMM_BIAS 1
#define MINIVAE_GEMM_BIAS_RELU 2
template <typename T>
MINIVAE_D T dense_epilogue(T v, const T* __restrict__ bias, int j, int epilogue) {
    if (epilogue != 0) v += bias[j];
    return dense_act(v, epilogue == MINIVAE_GEMM_BIAS_RELU);
}

// __launch_bounds__(256, 2): at most 128 registers, two blocks an SM, as tiled.py's SPLIT_BLOCKS counts on. With the
// first bound alone ptxas held some instantiations to 64 or 80 registers and spilled (sm_80 and sm_90, CUDA 13);
// given both it takes 84–96 (float) and 120–128 (double) with no spill (tools/kernel_report.py).
template <typename T, bool A_ROWS, bool B_ROWS>
__global__ void __launch_bounds__(MINIVAE_GEMM_THREADS, 2)
gemm_tiles(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ c, const T* __restrict__ bias, T* parts,
           unsigned int* slices_done, const T* __restrict__ gate, T* col_sums, int m, int n, int k, long long lda,
           long long ldb, int kslice, int epilogue, int gated, int sums) {
    constexpr int TILE = MINIVAE_GEMM_TILE, STEP = MINIVAE_GEMM_STEP, PAD = 16 / sizeof(T);
    constexpr int EACH = TILE * STEP / MINIVAE_GEMM_THREADS;  // values of A (and of B) a thread fetches a step
    // the column sums: threads a column, and parked rows each of them adds a step
    constexpr int COL_THREADS = MINIVAE_GEMM_THREADS / TILE, SUM_ROWS = STEP / COL_THREADS;
    __shared__ __align__(16) T as[STEP][TILE + PAD];  // as[l][i] = A(row0 + i, l0 + l)
    __shared__ __align__(16) T bs[STEP][TILE + PAD];  // bs[l][j] = B(l0 + l, col0 + j)
    __shared__ bool last;
    const int t = threadIdx.x, tx = t % 16, ty = t / 16;
    const int row0 = blockIdx.x * TILE, col0 = blockIdx.y * TILE;  // rows on x, whose grid may be the longest
    const int first = blockIdx.z * kslice, end = k < first + kslice ? k : first + kslice;
    T ra[EACH], rb[EACH];
    // The e-th value of a tile goes to the thread e % 256: along the contiguous index, so that a warp reads
    // consecutive addresses (16 of a row-major A's rows, 64 of a column-major one's).
    auto fetch = [&](int l0) {
#pragma unroll
        for (int r = 0; r < EACH; ++r) {
            const int e = t + r * MINIVAE_GEMM_THREADS;
            const int ai = A_ROWS ? e / STEP : e % TILE, al = A_ROWS ? e % STEP : e / TILE;
            const int i = row0 + ai, la = l0 + al;
            const long long at_a = A_ROWS ? i * lda + la : la * lda + i;
            ra[r] = i < m && la < end ? a[at_a] : T(0);
            if (gated == MINIVAE_GEMM_GATE_A && i < m && la < end) ra[r] *= (T)(gate[at_a] > T(0));
            const int bj = B_ROWS ? e % TILE : e / STEP, bl = B_ROWS ? e / TILE : e % STEP;
            const int j = col0 + bj, lb = l0 + bl;
            const long long at_b = B_ROWS ? lb * ldb + j : j * ldb + lb;
            rb[r] = j < n && lb < end ? b[at_b] : T(0);
            if (gated == MINIVAE_GEMM_GATE_B && j < n && lb < end) rb[r] *= (T)(gate[at_b] > T(0));
        }
    };
    auto park = [&]() {
#pragma unroll
        for (int r = 0; r < EACH; ++r) {
            const int e = t + r * MINIVAE_GEMM_THREADS;
            as[A_ROWS ? e % STEP : e / TILE][A_ROWS ? e / STEP : e % TILE] = ra[r];
            bs[B_ROWS ? e / TILE : e % STEP][B_ROWS ? e % TILE : e / STEP] = rb[r];
        }
    };
    T acc[4][4] = {}, cs = T(0);
    const bool col_block = sums && blockIdx.x == 0;  // the same in the whole block
    fetch(first);
    for (int l0 = first; l0 < end; l0 += STEP) {
        park();
        __syncthreads();  // the step's values are all parked before any thread reads them
        if (l0 + STEP < end) fetch(l0 + STEP);  // in flight while this step is multiplied
        if (col_block) {
#pragma unroll
            for (int r = 0; r < SUM_ROWS; ++r) cs += bs[t / TILE * SUM_ROWS + r][t % TILE];
        }
#pragma unroll
        for (int l = 0; l < STEP; ++l) {
            T av[4], bv[4];
            load_four<false>(&as[l][4 * ty], av);
            load_four<false>(&bs[l][4 * tx], bv);
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] += av[i] * bv[j];
        }
        __syncthreads();  // every thread is done with the step before the next is parked over it
    }
    const long long size = (long long)m * n;
    T* col_parts = parts + gridDim.z * size;  // the slices' column sums, n a slice, after their tiles
    if (col_block) {
        // each column's partial sums, parked in as (free: the loop ended on a barrier, or never ran)
        as[t / TILE][t % TILE] = cs;
        __syncthreads();
        if (t < TILE && col0 + t < n) {
            T s = as[0][t];
#pragma unroll
            for (int r = 1; r < COL_THREADS; ++r) s += as[r][t];
            if (gridDim.z == 1) col_sums[col0 + t] = s;
            else col_parts[blockIdx.z * n + col0 + t] = s;
        }
    }
    const int i0 = row0 + 4 * ty, j0 = col0 + 4 * tx;
    // Rows of 4·q values at 16-byte boundaries (C's and the partial sums'): a thread's four values of a row, all
    // inside the matrix or all outside it, go as one or two 16-byte accesses; otherwise value by value up to n.
    const bool whole = n % 4 == 0 && vectorizable(4, c, parts);  // the same in the whole launch
    // v, the thread's values of row i, into `out` (C with the epilogue applied, or the block's partial sums)
    auto write_row = [&](T* out, int i, T (&v)[4], bool to_c) {
        const long long at = (long long)i * n + j0;
        if (i >= m || j0 >= n) return;
        if (whole) {
            if (to_c) {
#pragma unroll
                for (int j = 0; j < 4; ++j) v[j] = dense_epilogue(v[j], bias, j0 + j, epilogue);
            }
            store_four(out + at, v);
            return;
        }
#pragma unroll
        for (int j = 0; j < 4; ++j)
            if (j0 + j < n) out[at + j] = to_c ? dense_epilogue(v[j], bias, j0 + j, epilogue) : v[j];
    };
    if (gridDim.z == 1) {  // the same in the whole launch: no partial sums to add
#pragma unroll
        for (int i = 0; i < 4; ++i) write_row(c, i0 + i, acc[i], true);
        return;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) write_row(parts + blockIdx.z * size, i0 + i, acc[i], false);
    __syncthreads();  // the block's sums (and column sums) are all written before its thread 0 counts them
    if (t == 0) {
        __threadfence();  // the sums are visible to every block before the count says they are there
        const unsigned tile = blockIdx.x * gridDim.y + blockIdx.y;
        last = atomicInc(&slices_done[tile], gridDim.z - 1) == gridDim.z - 1;
    }
    __syncthreads();
    if (!last) return;  // the same in the whole block
    // The slices' sums, written by other blocks, read through L2 (__ldcg): this SM's L1 may hold an older copy.
    // Loads of several slices in flight at once (unrolled), each value's sum still in slice order.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        if (i0 + i >= m || j0 >= n) continue;
        const T* row = parts + (long long)(i0 + i) * n + j0;
        T s[4] = {};
        if (whole) {
            load_four<true>(row, s);
#pragma unroll 4
            for (unsigned z = 1; z < gridDim.z; ++z) {
                T v[4];
                load_four<true>(row + z * size, v);
#pragma unroll
                for (int j = 0; j < 4; ++j) s[j] += v[j];
            }
        } else {
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                if (j0 + j >= n) continue;
                s[j] = __ldcg(row + j);
#pragma unroll 4
                for (unsigned z = 1; z < gridDim.z; ++z) s[j] += __ldcg(row + z * size + j);
            }
        }
        write_row(c, i0 + i, s, true);
    }
    if (col_block && t < TILE && col0 + t < n) {
        T s = __ldcg(col_parts + col0 + t);
        for (unsigned z = 1; z < gridDim.z; ++z) s += __ldcg(col_parts + z * n + col0 + t);
        col_sums[col0 + t] = s;
    }
}
