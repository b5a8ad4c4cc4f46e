// Binary cross-entropy with logits and its derivative in one pass, elementwise over n values (bce_elem,
// common.cuh), both times sign (−1: the Bernoulli log-likelihood −loss and its derivative t − σ(x); as
// minivae/ops/losses.py).
//
// Layout: grid-stride loop, thread i handles i, i + S, … (common.cuh).
#include "common.cuh"

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
