// Helpers shared by kernels/*.cu: float/double math overloads, −∞, warp and block reductions
// (sum, max, argmax), the grid-stride index and softmax of a row held in registers.
//
// Layouts used by the kernels:
//   elementwise   thread i of the grid handles i, i + S, i + 2S, … (S = gridDim.x·blockDim.x)
//   warp per row  rows of L lanes (L = 32: a warp; L = 4, 8, 16 for rows of k ≤ L, 32/L rows a warp):
//                 row = (blockIdx.x·blockDim.x + threadIdx.x)/L; lane l = threadIdx.x mod L handles
//                 j = l, l + L, … (with L = 32, row = blockIdx.x·(blockDim.x/32) + threadIdx.x/32)
//   block per row row = blockIdx.x; thread t handles j = t, t + blockDim.x, …
// Strided j keeps every load and store of a warp on consecutive addresses (coalesced).
//
// Every reduction is a butterfly (__shfl_xor_sync) whose partial sums are combined in the same
// order on every lane, so all lanes (and, for block_*, all threads) get bitwise the same result:
// no broadcast is needed and every thread may use it in the per-element formula. warp_*<L> reduce
// within aligned groups of L lanes (a xor of an offset below L stays in the group), every lane of the
// warp taking part (the full mask): one sum per group, for the 32/L rows a warp holds.
//
// The same text compiles with NVRTC/nvcc and with the host C++ compiler (tests/cuda_host), so
// element math lives in MINIVAE_HD functions and device-only helpers in MINIVAE_D ones.
#pragma once
#include "philox.cuh"

#ifdef __CUDACC__
#define MINIVAE_D __device__ __forceinline__
#define MINIVAE_D_MEMBER __device__ __forceinline__
#else
#define MINIVAE_D static inline
#define MINIVAE_D_MEMBER inline  // a member function cannot be static here
#endif

#define MINIVAE_FULL_MASK 0xffffffffu

// Overloads pick the single- or double-precision libm function from the argument type, so a
// template on T calls expf for float and exp for double (never a float→double round trip).
MINIVAE_HD float mv_exp(float x) { return expf(x); }
MINIVAE_HD double mv_exp(double x) { return exp(x); }
MINIVAE_HD float mv_log(float x) { return logf(x); }
MINIVAE_HD double mv_log(double x) { return log(x); }
MINIVAE_HD float mv_log1p(float x) { return log1pf(x); }
MINIVAE_HD double mv_log1p(double x) { return log1p(x); }
MINIVAE_HD float mv_sqrt(float x) { return sqrtf(x); }
MINIVAE_HD double mv_sqrt(double x) { return sqrt(x); }

template <typename T>
MINIVAE_HD T mv_max(T a, T b) { return b > a ? b : a; }

// Binary cross-entropy with logits x of a target t and its derivative (kernels/bce.cu, kernels/elbo.cu):
//   e = exp(−|x|)    (≤ 1: never overflows, for any x)
//   loss = max(x, 0) − x·t + log1p(e)
//   dx = σ(x) − t,   σ(x) = 1/(1 + e) for x ≥ 0, e/(1 + e) for x < 0 (no cancellation either way)
template <typename T>
MINIVAE_HD void bce_elem(T x, T t, T& loss, T& dx) {
    const T e = mv_exp(x < T(0) ? x : -x);
    loss = mv_max(x, T(0)) - x * t + mv_log1p(e);
    dx = (x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e)) - t;
}

// A dense layer's activation: max(v, 0) when relu (NaN staying NaN, as NumPy's maximum), else v itself
// (kernels/linear.cu's bias_act_fwd, kernels/gemm.cu's epilogue).
template <typename T>
MINIVAE_HD T dense_act(T v, int relu) { return relu && v < T(0) ? T(0) : v; }

// −∞ from its bit pattern: NVRTC defines neither INFINITY nor HUGE_VAL. The unused argument
// selects the type (explicit specialisations could not be `static` on the host).
MINIVAE_D float neg_inf(float) { return __int_as_float((int)0xff800000u); }
MINIVAE_D double neg_inf(double) { return __longlong_as_double((long long)0xfff0000000000000ull); }

// Values per thread kept in registers by the block-per-row kernels (k ≤ 8·blockDim.x).
#define MINIVAE_BLOCK_VALUES 8

// Index of "no element" in an argmax: loses every tie against a real index.
#define MINIVAE_NO_INDEX 0x7fffffff

template <int L = 32, typename T>
MINIVAE_D T warp_sum(T v) {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) v += __shfl_xor_sync(MINIVAE_FULL_MASK, v, o);
    return v;
}

template <int L = 32, typename T>
MINIVAE_D T warp_max(T v) {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) v = mv_max(v, __shfl_xor_sync(MINIVAE_FULL_MASK, v, o));
    return v;
}

// (v, i) ← the largest v of the group of L lanes (the warp) and its index; equal values go to the lowest
// index, as numpy.argmax. Both are exchanged in every step, so the pair stays consistent.
template <int L = 32, typename T>
MINIVAE_D void warp_argmax(T& v, int& i) {
#pragma unroll
    for (int o = L / 2; o > 0; o >>= 1) {
        const T ov = __shfl_xor_sync(MINIVAE_FULL_MASK, v, o);
        const int oi = __shfl_xor_sync(MINIVAE_FULL_MASK, i, o);
        if (ov > v || (ov == v && oi < i)) {
            v = ov;
            i = oi;
        }
    }
}

// Block reductions: each warp reduces, lane 0 of warp w parks its result in buf[w], then every
// warp reduces the (≤ 32) parked values itself. The barrier before the write keeps a second
// call from overwriting buf while a slower warp still reads the first call's values; the
// barrier after it publishes the writes. Must be reached by every thread of the block.
template <typename T>
MINIVAE_D T block_sum(T v) {
    __shared__ T buf[32];
    v = warp_sum(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) buf[threadIdx.x >> 5] = v;
    __syncthreads();
    const int lane = threadIdx.x & 31;
    return warp_sum(lane < (int)(blockDim.x >> 5) ? buf[lane] : T(0));
}

template <typename T>
MINIVAE_D T block_max(T v) {
    __shared__ T buf[32];
    v = warp_max(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) buf[threadIdx.x >> 5] = v;
    __syncthreads();
    const int lane = threadIdx.x & 31;
    return warp_max(lane < (int)(blockDim.x >> 5) ? buf[lane] : neg_inf(T(0)));
}

template <typename T>
MINIVAE_D void block_argmax(T& v, int& i) {
    __shared__ T vbuf[32];
    __shared__ int ibuf[32];
    warp_argmax(v, i);
    __syncthreads();
    if ((threadIdx.x & 31) == 0) {
        vbuf[threadIdx.x >> 5] = v;
        ibuf[threadIdx.x >> 5] = i;
    }
    __syncthreads();
    const int lane = threadIdx.x & 31;
    const bool live = lane < (int)(blockDim.x >> 5);
    v = live ? vbuf[lane] : neg_inf(T(0));
    i = live ? ibuf[lane] : MINIVAE_NO_INDEX;
    warp_argmax(v, i);
}

// Reductions over the threads that share a row: its L lanes (Block = false) or its block (true), so
// that one row routine serves both the warp-per-row and the block-per-row kernels.
template <bool Block, int L = 32, typename T>
MINIVAE_D T row_sum(T v) {
    if constexpr (Block) return block_sum(v);
    else return warp_sum<L>(v);
}

template <bool Block, int L = 32, typename T>
MINIVAE_D T row_max(T v) {
    if constexpr (Block) return block_max(v);
    else return warp_max<L>(v);
}

// The row of a warp-per-row kernel whose rows take L lanes each, and the thread's lane in it.
template <int L>
MINIVAE_D long long group_row() { return ((long long)blockIdx.x * blockDim.x + threadIdx.x) / L; }
template <int L>
MINIVAE_D int group_lane() { return (int)(threadIdx.x & (L - 1)); }
// Whether any row of the thread's warp is below rows: the same on every lane of the warp, so a warp
// that skips its work skips it whole and the shuffles of the others stay collective. Within a live
// warp of L < 32, a row past the end takes part in the shuffles with no element (k = 0 for it).
template <int L>
MINIVAE_D bool warp_live(int rows) { return group_row<L>() - (int)((threadIdx.x & 31) / L) < rows; }

// Grid-stride loop bounds for elementwise kernels (64-bit: n may exceed 2³¹).
MINIVAE_D long long grid_first() { return (long long)blockIdx.x * blockDim.x + threadIdx.x; }
MINIVAE_D long long grid_step() { return (long long)gridDim.x * blockDim.x; }

// Which of a thread's N register slots hold an element of its row (k elements). Strided: slot t
// holds j = first + t·stride. Vectors<G>: slot t is element t % G of the thread's (t/G)-th group of G
// consecutive elements, j = G·(threadIdx.x + (t/G)·blockDim.x) + t % G, a group being one or more
// 16-byte vectors (load_vectors below; k a multiple of G).
//
// dense: whether nearly every slot holds an element, so that softmax_regs computes every slot rather than branch on
// each: true of Vectors (only a block's last threads may hold slots past the row), not of Strided, where a warp
// row's N is rounded up to a power of 2 and up to half the slots of every lane may lie past the row.
struct Strided {
    static constexpr bool dense = false;
    int first, stride, k;
    MINIVAE_D_MEMBER bool operator()(int t) const { return first + t * stride < k; }
};

template <int G>
struct Vectors {
    static constexpr bool dense = true;
    int k;
    MINIVAE_D_MEMBER int j(int t) const { return G * ((int)threadIdx.x + (t / G) * (int)blockDim.x) + t % G; }
    MINIVAE_D_MEMBER bool operator()(int t) const { return G * ((int)threadIdx.x + (t / G) * (int)blockDim.x) < k; }
};

// Softmax of one row whose elements sit in v[t] for the slots t where in_row(t), in place:
//   m = max_j v_j;  z_j = (v_j − m)·inv_tau;  s = Σ_j exp z_j;
//   v_j ← exp(z_j)·(1/s), or z_j − log s when log_out.
// One reciprocal a row and a product an element, within an ulp of exp(z_j)/s: a float division is
// ~10 instructions an element in sm_90 code (reciprocal, Newton steps, a check for its slow path).
// Other slots are left alone, or with a dense layout hold garbage. Every thread of the row (warp or block) must
// call it.
template <typename T, int N, bool Block, int L = 32, typename InRow>
MINIVAE_D void softmax_regs(T (&v)[N], InRow in_row, T inv_tau, int log_out) {
    T m = neg_inf(T(0));
#pragma unroll
    for (int t = 0; t < N; ++t)
        if (in_row(t)) m = mv_max(m, v[t]);
    m = row_max<Block, L>(m);
    T s = T(0);
#pragma unroll
    for (int t = 0; t < N; ++t) {
        if (InRow::dense || in_row(t)) {  // a branch around each exp cost ~3 sm_90 instructions an element
            const T z = (v[t] - m) * inv_tau, e = mv_exp(z);
            s += in_row(t) ? e : T(0);
            v[t] = log_out ? z : e;
        }
    }
    s = row_sum<Block, L>(s);
    const T log_s = log_out ? mv_log(s) : T(0), r = T(1) / s;
#pragma unroll
    for (int t = 0; t < N; ++t)
        if (InRow::dense || in_row(t)) v[t] = log_out ? v[t] - log_s : v[t] * r;
}

// 16-byte vectors of T (float4, double2): a block-per-row kernel moves its row V = 16/sizeof(T)
// elements an instruction. Read one element at a time, the 65536×1024 float32 softmax forward reached
// 75% of copy bandwidth on an H200; by float4, 90% (benchmarks/gpu_kernels.py, 2026-11-26).
template <typename T> struct Vec16;
template <> struct Vec16<float> { typedef float4 type; };
template <> struct Vec16<double> { typedef double2 type; };

// One 16-byte vector as its V = 16/sizeof(T) elements, and V consecutive elements as one vector.
template <typename T>
MINIVAE_D void unpack16(const typename Vec16<T>::type& w, T* v) {
    const T* e = reinterpret_cast<const T*>(&w);
#pragma unroll
    for (int c = 0; c < 16 / (int)sizeof(T); ++c) v[c] = e[c];
}

template <typename T>
MINIVAE_D typename Vec16<T>::type pack16(const T* v) {
    typename Vec16<T>::type w;
    T* e = reinterpret_cast<T*>(&w);
#pragma unroll
    for (int c = 0; c < 16 / (int)sizeof(T); ++c) e[c] = v[c];
    return w;
}

// Whether rows of k elements at these addresses all start on 16-byte boundaries (the same answer
// in every thread of the launch): then load_vectors / store_vectors may be used.
template <typename T>
MINIVAE_D bool vectorizable(int k, const T* a, const T* b, const T* c = nullptr) {
    const unsigned long long bits = (unsigned long long)a | (unsigned long long)b | (unsigned long long)c;
    return k % (16 / (int)sizeof(T)) == 0 && (bits & 15ull) == 0;
}

// The thread's N elements of a row (layout Vectors<G>, G a multiple of V = 16/sizeof(T): each group
// read as G/V vectors), zero past the row's end.
template <typename T, int N, int G = 16 / sizeof(T)>
MINIVAE_D void load_vectors(const T* __restrict__ row, T (&v)[N], int k) {
    constexpr int V = 16 / sizeof(T);
    static_assert(G % V == 0 && N % G == 0, "whole vectors, whole groups");
    typedef typename Vec16<T>::type W;
#pragma unroll
    for (int q = 0; q < N / G; ++q) {
        const int i = threadIdx.x + q * blockDim.x;
#pragma unroll
        for (int h = 0; h < G / V; ++h) {
            W w{};
            if (G * i < k) w = reinterpret_cast<const W*>(row + G * i)[h];
            unpack16<T>(w, v + q * G + h * V);
        }
    }
}

template <typename T, int N, int G = 16 / sizeof(T)>
MINIVAE_D void store_vectors(T* __restrict__ row, const T (&v)[N], int k) {
    constexpr int V = 16 / sizeof(T);
    static_assert(G % V == 0 && N % G == 0, "whole vectors, whole groups");
    typedef typename Vec16<T>::type W;
#pragma unroll
    for (int q = 0; q < N / G; ++q) {
        const int i = threadIdx.x + q * blockDim.x;
#pragma unroll
        for (int h = 0; h < G / V; ++h) {
            if (G * i < k) reinterpret_cast<W*>(row + G * i)[h] = pack16<T>(v + q * G + h * V);
        }
    }
}

// The same for a row too long for registers: reads src three times (max, sum, result) and writes
// dst; each thread touches only its own j, so src may equal dst. Every thread of the block must call it.
template <typename T>
MINIVAE_D void softmax_block_global(const T* src, T* dst, int k, T inv_tau, int log_out) {
    T m = neg_inf(T(0));
    for (int j = threadIdx.x; j < k; j += blockDim.x) m = mv_max(m, src[j]);
    m = block_max(m);
    T s = T(0);
    for (int j = threadIdx.x; j < k; j += blockDim.x) s += mv_exp((src[j] - m) * inv_tau);
    s = block_sum(s);
    const T log_s = log_out ? mv_log(s) : T(0), r = T(1) / s;  // as softmax_regs
    for (int j = threadIdx.x; j < k; j += blockDim.x) {
        const T z = (src[j] - m) * inv_tau;
        dst[j] = log_out ? z - log_s : mv_exp(z) * r;
    }
}

// softmax's backward (softmax.cu, and the Gumbel-Softmax of gumbel_softmax.cu's pair): the term of the sum
// Σ_i for element i, and the gradient given that sum.
template <typename T>
MINIVAE_HD T softmax_bwd_term(T y, T g, int log_out) { return log_out ? g : g * y; }

template <typename T>
MINIVAE_HD T softmax_bwd_elem(T y, T g, T s, T inv_tau, int log_out) {
    return log_out ? (g - mv_exp(y) * s) * inv_tau : y * (g - s) * inv_tau;
}

// KL(Cat(q) ‖ Cat(p)) of one row, q = softmax(l), p = softmax(lp), by the L lanes of its group (categorical_kl.cu,
// and gumbel_softmax.cu's pair). The rows are short (a categorical VAE's are about 10 long), so each pass
// re-reads them from global memory rather than keep them in registers.

// (m, log Σ_j exp(x_j − m)) of one row of k values, m its maximum: then log softmax(x)_j = (x_j − m) − log_s.
// Every lane of the warp must call it (shuffles).
template <int L, typename T>
MINIVAE_D void warp_log_softmax_shift(const T* x, int k, int lane, T& m, T& log_s) {
    m = neg_inf(T(0));
    for (int j = lane; j < k; j += L) m = mv_max(m, x[j]);
    m = warp_max<L>(m);
    T s = T(0);
    for (int j = lane; j < k; j += L) s += mv_exp(x[j] - m);
    log_s = mv_log(warp_sum<L>(s));
}

// A row's logits l and prior logits lp with both normalizers: log q_j and log q_j − log p_j element by element.
template <typename T>
struct CategoricalRow {
    const T* l;
    const T* lp;
    T m, log_s, mp, log_sp;
    MINIVAE_D_MEMBER T log_q(int j) const { return (l[j] - m) - log_s; }
    // log q_j − log p_j, 0 where q_j = exp(log q_j) = 0: the KL's term 0·(log q_j − log p_j) is 0 and so is its
    // gradient, where log q_j = −inf would make them NaN (as minivae/ops/losses.py)
    MINIVAE_D_MEMBER T diff(int j, T log_q, T q) const {
        if (q == T(0)) return T(0);
        return log_q - ((lp[j] - mp) - log_sp);
    }
};

// Every lane of the warp must call it (shuffles); a row past the end has k = 0.
template <int L, typename T>
MINIVAE_D CategoricalRow<T> categorical_row(const T* l, const T* lp, int k, int lane) {
    CategoricalRow<T> c{l, lp, T(0), T(0), T(0), T(0)};
    // each group normalizes its prior row itself: two reductions, where normalizing the prior once
    // would take a launch of its own
    warp_log_softmax_shift<L>(l, k, lane, c.m, c.log_s);
    warp_log_softmax_shift<L>(lp, k, lane, c.mp, c.log_sp);
    return c;
}

// KL = Σ_j q_j·(log q_j − log p_j) of the row (a term of q_j = 0 is 0), on every lane of its group; where q and diff
// are given (not null) q_j and CategoricalRow::diff are written there too. Every lane of the warp must call it.
template <int L, typename T>
MINIVAE_D T categorical_kl_row(const CategoricalRow<T>& c, int k, int lane, T* q, T* diff) {
    T total = T(0);
    for (int j = lane; j < k; j += L) {
        const T log_q = c.log_q(j), qj = mv_exp(log_q), d = c.diff(j, log_q, qj);
        if (q != nullptr) {
            q[j] = qj;
            diff[j] = d;
        }
        total += qj * d;
    }
    return warp_sum<L>(total);
}

// l̄_j of the KL, ḡ its upstream gradient: q_j·((log q_j − log p_j) − KL)·ḡ (the reference's order); 0 on a row of
// KL = +∞, whatever ḡ (+∞ for every l there, a constant; q_j·(d_j − ∞)·ḡ would be −∞ or NaN), as
// minivae/ops/losses.py. (kl > 0 and kl + kl == kl: +∞ alone, and no constant NVRTC lacks.)
template <typename T>
MINIVAE_HD T categorical_kl_grad(T q, T diff, T kl, T g) { return kl > T(0) && kl + kl == kl ? T(0) : q * (diff - kl) * g; }
