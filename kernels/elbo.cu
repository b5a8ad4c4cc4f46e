// The negative ELBO of a batch from the elementwise terms of its two parts (as minivae/ops/losses.py's
// negative_elbo), R examples, ll (R×D) the log-likelihood terms and kl (R×K) the KL terms, β a device value:
//
//   forward   L = (1/R) Σ_r (β·Σ_k kl_rk − Σ_j ll_rj)
//   backward  s = ḡ/R;  l̄l_rj = −s;  k̄l_rk = s·β   (k̄l written out; l̄l one value, which the caller views
//             broadcast over ll's shape: the likelihood's VJP then reads one number instead of R×D)
//
// β and ḡ are read from memory, not taken as arguments, so that a CUDA graph replays a changed β.
//
// bernoulli_negative_elbo_fwd/_bwd: the same with the likelihood terms made in the kernel from the decoder's
// logits l and the data x (R×D; as minivae/ops/losses.py's bernoulli_negative_elbo), ll_rj = −ℓ(l_rj, x_rj) with
// ℓ BCE-with-logits (bce_elem, common.cuh):
//   forward   L = (1/R) Σ_r (β·Σ_k kl_rk − Σ_j ll_rj)      the same sums, in the same order, as above
//   backward  s = ḡ/R;  l̄_rj = s·(σ(l_rj) − x_rj);  k̄l_rk = s·β
// bit for bit what bce_fwd (sign −1), negative_elbo_fwd/_bwd and the product of l̄l by the derivative give, in 2
// launches and 5 passes over R×D values where those take 4 and 7 (ll and its derivative written, ll read again, the
// derivative read and the product written).
//
// Forward layout: G blocks; block b takes rows [b·R/G, (b+1)·R/G), its thread t the elements t, t + blockDim.x, …
// of that range of each array, and the block parks its sum in partial[b]. The last block to finish (a wrapping
// atomic count, which that block's increment returns to 0 for the next launch) adds the G partials in block
// order and writes L. Every sum thus has one order for a given G: L is the same bit for bit from run to run,
// where float atomics would not be. The count is one per module, so launches of these kernels must not overlap
// (one stream, as minivae uses).
#include "common.cuh"

__device__ unsigned int negative_elbo_blocks_done = 0;

// The forward's reduction, ll(i) the i-th likelihood term (flat index into R×D).
template <typename T, typename LL>
MINIVAE_D void negative_elbo_reduce(LL ll, const T* __restrict__ kl, const T* __restrict__ beta,
                                    T* __restrict__ partial, T* __restrict__ loss, long long rows, long long d,
                                    long long k) {
    __shared__ bool last;
    const long long first = (long long)blockIdx.x * rows / gridDim.x, end = ((long long)blockIdx.x + 1) * rows / gridDim.x;
    T sll = T(0), skl = T(0);
    for (long long i = first * d + threadIdx.x; i < end * d; i += blockDim.x) sll += ll(i);
    for (long long i = first * k + threadIdx.x; i < end * k; i += blockDim.x) skl += kl[i];
    const T s = block_sum(*beta * skl - sll);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = s;
        __threadfence();  // the partial is visible to every block before the count says it is there
        last = atomicInc(&negative_elbo_blocks_done, gridDim.x - 1) == gridDim.x - 1;
    }
    __syncthreads();
    if (last) {  // the same on every thread of the block: its block_sum stays collective
        const volatile T* parked = partial;  // written by other blocks: read from memory, not a cache
        T total = T(0);
        for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) total += parked[b];
        total = block_sum(total);
        if (threadIdx.x == 0) loss[0] = total / T(rows);
    }
}

template <typename T>
__global__ void negative_elbo_fwd(const T* __restrict__ ll, const T* __restrict__ kl, const T* __restrict__ beta,
                                  T* __restrict__ partial, T* __restrict__ loss, long long rows, long long d,
                                  long long k) {
    negative_elbo_reduce([=](long long i) { return ll[i]; }, kl, beta, partial, loss, rows, d, k);
}

template <typename T>
__global__ void negative_elbo_bwd(const T* __restrict__ g, const T* __restrict__ beta, T* __restrict__ gll,
                                  T* __restrict__ gkl, long long rows, long long n_kl) {
    const T s = *g / T(rows);
    const T v = s * *beta;
    if (grid_first() == 0) *gll = -s;
    for (long long i = grid_first(); i < n_kl; i += grid_step()) gkl[i] = v;
}

template <typename T>
__global__ void bernoulli_negative_elbo_fwd(const T* __restrict__ logits, const T* __restrict__ x,
                                            const T* __restrict__ kl, const T* __restrict__ beta,
                                            T* __restrict__ partial, T* __restrict__ loss, long long rows, long long d,
                                            long long k) {
    negative_elbo_reduce(
        [=](long long i) {
            T l, dx;  // dx unused: the compiler drops its division
            bce_elem(logits[i], x[i], l, dx);
            return -l;
        },
        kl, beta, partial, loss, rows, d, k);
}

template <typename T>
__global__ void bernoulli_negative_elbo_bwd(const T* __restrict__ g, const T* __restrict__ beta,
                                            const T* __restrict__ logits, const T* __restrict__ x,
                                            T* __restrict__ glogits, T* __restrict__ gkl, long long rows, long long n,
                                            long long n_kl) {
    const T s = *g / T(rows);
    const T v = s * *beta;
    for (long long i = grid_first(); i < n; i += grid_step()) {
        T l, dx;  // l unused: the compiler drops its logarithm
        bce_elem(logits[i], x[i], l, dx);
        glogits[i] = s * dx;
    }
    for (long long i = grid_first(); i < n_kl; i += grid_step()) gkl[i] = v;
}
