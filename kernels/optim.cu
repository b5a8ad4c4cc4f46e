// Optimizer steps over a flat parameter buffer, one launch for every parameter (as minivae/optim/__init__.py):
//
//   Adam   g ← −g if maximize;  p ← decay·p (AdamW: decay = 1 − lr·wd; 1 otherwise, which is exact);
//          g ← g + weight_decay·p (Adam's L2 term; 0 for AdamW);
//          m ← b1·m + (1 − b1)·g;  v ← b2·v + (1 − b2)·g·g;  with amsgrad v ← v_max ← max(v_max, v);
//          p ← p − step_size·m/(√v + eps_hat)
//          (step_size and eps_hat carry the bias corrections; the scalars arrive already in T)
//   SGD    d ← −g if maximize, else g;  d ← d + weight_decay·p (if weight_decay ≠ 0);
//          v ← d if momentum = 0 or first (the parameters' first step), else momentum·v + (1 − dampening)·d;
//          p ← p − lr·(d + momentum·v if nesterov, else v)
//
// p, m, v are flat buffers of n values; parameter j occupies [starts[j], starts[j+1]) of them
// (starts[count] = n). Gradients are separate arrays, so grads[j] holds the device address of
// parameter j's gradient, or 0 when it has none: its slice is then left untouched (not even the
// moments decay), as the reference skips a parameter whose .grad is None.
//
// Layout: grid-stride loop over the n elements; element i finds its parameter by binary search
// over starts (log2(count) reads of a small array that stays in cache), so one launch covers
// parameters of any sizes without a per-parameter launch.
#include "common.cuh"

// The j with starts[j] ≤ i < starts[j+1] (0 ≤ i < starts[count]); empty parameters are skipped
// because their start equals the next one.
MINIVAE_D int owner(const long long* __restrict__ starts, int count, long long i) {
    int lo = 0, hi = count;  // starts[lo] ≤ i < starts[hi]
    while (hi - lo > 1) {
        const int mid = (lo + hi) >> 1;
        if (starts[mid] <= i)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

// v_max: the amsgrad buffer (read and written only when amsgrad ≠ 0; the launcher passes v otherwise).
template <typename T>
__global__ void adam_step(T* __restrict__ p, T* __restrict__ m, T* __restrict__ v, T* v_max,
                          const unsigned long long* __restrict__ grads, const long long* __restrict__ starts,
                          int count, long long n, T step_size, T b1, T one_minus_b1, T b2, T one_minus_b2,
                          T eps_hat, T weight_decay, T decay, int maximize, int amsgrad,
                          const double* __restrict__ step) {
    // step = (step size, ε̂, decay) of this step in a CUDA graph (minivae/_gpu/graph.py writes them before each
    // launch: the graph's own arguments are those of the step it was captured at, and all three follow the
    // learning rate, which a scheduler changes); NaN eagerly
    if (!isnan(step[0])) {
        step_size = (T)step[0];
        eps_hat = (T)step[1];
        decay = (T)step[2];
    }
    for (long long i = grid_first(); i < n; i += grid_step()) {
        const int j = owner(starts, count, i);
        if (grads[j] == 0) continue;
        T gi = reinterpret_cast<const T*>(grads[j])[i - starts[j]];
        if (maximize) gi = -gi;
        const T pi = p[i] * decay;
        if (weight_decay != (T)0) gi = gi + weight_decay * pi;
        const T mi = b1 * m[i] + one_minus_b1 * gi;
        T vi = b2 * v[i] + one_minus_b2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            const T seen = v_max[i];
            vi = (vi > seen || isnan(vi)) ? vi : seen;  // a NaN of either stays, as numpy.maximum's
            v_max[i] = vi;
        }
        p[i] = pi - step_size * mi / (mv_sqrt(vi) + eps_hat);
    }
}

template <typename T>
__global__ void sgd_step(T* __restrict__ p, T* __restrict__ v, const unsigned long long* __restrict__ grads,
                         const long long* __restrict__ starts, int count, long long n, T lr, T momentum,
                         T one_minus_dampening, T weight_decay, int nesterov, int maximize, int first) {
    for (long long i = grid_first(); i < n; i += grid_step()) {
        const int j = owner(starts, count, i);
        if (grads[j] == 0) continue;
        T di = reinterpret_cast<const T*>(grads[j])[i - starts[j]];
        if (maximize) di = -di;
        if (weight_decay != (T)0) di = di + weight_decay * p[i];
        if (momentum == (T)0) {  // no momentum buffer: v is left as it is (torch's state has none)
            p[i] -= lr * di;
            continue;
        }
        const T vi = first ? di : momentum * v[i] + one_minus_dampening * di;
        v[i] = vi;
        p[i] -= lr * (nesterov ? di + momentum * vi : vi);
    }
}
