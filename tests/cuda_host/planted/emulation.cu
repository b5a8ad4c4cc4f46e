// Kernels that exercise the host emulation itself (tests/test_cuda_host.py). The tests derive the planted
// bugs from this text: removing the barrier marked "needed" makes tree_sum (or reverse_blocks) race,
// removing the tail guard makes scale write past its output.

// Tree reduction in shared memory: out[blockIdx.x] = sum of this block's slice of x.
template <typename T>
__global__ void tree_sum(const T* x, T* out, int n) {
    __shared__ T buf[1024];
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    buf[threadIdx.x] = i < n ? x[i] : T(0);
    for (unsigned s = blockDim.x / 2; s > 0; s /= 2) {
        __syncthreads();  // needed: the reads below see the previous level's writes
        if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    }
    if (threadIdx.x == 0) out[blockIdx.x] = buf[0];
}

// Each block's slice of x reversed, through the launch's dynamic shared memory (blockDim.x elements of T):
// out[b·B + t] = x[b·B + B − 1 − t].
template <typename T>
__global__ void reverse_blocks(const T* x, T* out) {
    // one untyped array: extern __shared__ arrays of different element types in two instantiations would clash
    extern __shared__ __align__(16) unsigned char dynamic_smem[];
    T* staged = reinterpret_cast<T*>(dynamic_smem);
    const int base = blockIdx.x * blockDim.x;
    staged[threadIdx.x] = x[base + threadIdx.x];
    __syncthreads();  // needed: each thread reads another thread's element
    out[base + threadIdx.x] = staged[blockDim.x - 1 - threadIdx.x];
}

// out[i] = a * x[i], one element per thread.
template <typename T>
__global__ void scale(const T* x, T* out, long long n, T a) {
    const long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < n) out[i] = a * x[i];
}

// Within segments of `width` lanes: xor_sum[t] = butterfly (xor) sum, down[t] = shfl_down tree value (the
// segment's first lane holds its sum), up[t] = shfl_up by 1 (the first lane keeps its own), bcast[t] = the
// segment's lane 3.
template <typename T>
__global__ void warp_ops(const T* x, T* xor_sum, T* down, T* up, T* bcast, int width) {
    const int t = threadIdx.x;
    T v = x[t], d = x[t];
    for (int m = width / 2; m > 0; m /= 2) v += __shfl_xor_sync(0xffffffffu, v, m, width);
    for (int m = width / 2; m > 0; m /= 2) d += __shfl_down_sync(0xffffffffu, d, m, width);
    xor_sum[t] = v;
    down[t] = d;
    up[t] = __shfl_up_sync(0xffffffffu, x[t], 1, width);
    bcast[t] = __shfl_sync(0xffffffffu, x[t], 3, width);
}

// Threads t >= active return at once; the rest meet at __syncthreads and __syncwarp, read each other's shared
// values and swap t with their xor-1 neighbour.
__global__ void early_exit(int* out, int active) {
    __shared__ int buf[1024];
    const int t = threadIdx.x;
    if (t >= active) return;
    buf[t] = t + 1;
    __syncthreads();
    out[t] = buf[(t + 1) % active];
    __syncwarp();
    out[t] += 1000 * __shfl_xor_sync(0xffffffffu, t, 1);
}

// count[0] += 1 and max[0] = max over threads of tid, via atomics; cas[0] counts CAS loop successes.
__global__ void atomics(unsigned long long* count, int* maxv, double* sum, int* cas) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    atomicAdd(count, 1ull);
    atomicMax(maxv, t);
    atomicAdd(sum, 0.5);
    int old = atomicAdd(cas, 0), assumed;  // an atomic read: a plain one would race with the CAS of other threads
    do {
        assumed = old;
        old = atomicCAS(cas, assumed, assumed + 1);
    } while (old != assumed);
}

// Half the warp shuffles while the other half waits at __syncthreads: a GPU hangs (or worse); the host reports.
__global__ void divergent_shuffle(int* out) {
    const int t = threadIdx.x;
    if (t < 16) out[t] = __shfl_xor_sync(0xffffffffu, t, 1);
    __syncthreads();
}

// Warp votes on x[t] > 0: ballot[t] = the warp's bit mask, any[t], all[t].
__global__ void votes(const int* x, unsigned* ballot, int* any, int* all) {
    const int t = threadIdx.x;
    ballot[t] = __ballot_sync(0xffffffffu, x[t] > 0);
    any[t] = __any_sync(0xffffffffu, x[t] > 0);
    all[t] = __all_sync(0xffffffffu, x[t] > 0);
}
