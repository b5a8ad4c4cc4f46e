// Binary cross-entropy with logits and its derivative in one pass, elementwise over n values, both times
// sign (−1: the Bernoulli log-likelihood −loss and its derivative t − σ(x); as minivae/ops/losses.py):
//
//   e = exp(−|x|)    (≤ 1: never overflows, for any x)
//   loss = max(x, 0) − x·t + log1p(e)
//   dx = σ(x) − t,   σ(x) = 1/(1 + e) for x ≥ 0, e/(1 + e) for x < 0 (no cancellation either way)
//
// Layout: grid-stride loop, thread i handles i, i + S, … (common.cuh).
#include "common.cuh"

template <typename T>
MINIVAE_HD void bce_elem(T x, T t, T& loss, T& dx) {
    const T e = mv_exp(x < T(0) ? x : -x);
    loss = mv_max(x, T(0)) - x * t + mv_log1p(e);
    dx = (x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e)) - t;
}

template <typename T>
__global__ void bce_fwd(const T* __restrict__ x, const T* __restrict__ t, T* __restrict__ loss, T* __restrict__ dx,
                        long long n, T sign) {
    for (long long i = grid_first(); i < n; i += grid_step()) {
        T l, d;
        bce_elem(x[i], t[i], l, d);
        loss[i] = sign * l;
        dx[i] = sign * d;
    }
}
