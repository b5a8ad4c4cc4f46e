// Gaussian reparameterization and the KL of N(μ, σ²) to N(0, 1), from the log-variance v = log σ²,
// forward and backward, elementwise over n values (as minivae/ops/losses.py):
//
//   reparameterize   noise = exp(½·v)·ε;  z = μ + noise          bwd  gv = ½·g·noise  (gμ = g)
//   KL               var = exp(v);  kl = ½·(μ² + var − 1 − v)      bwd  gμ = g·μ;  gv = ½·g·(var − 1)
//
// The forward kernels also write what their backward reads (noise, var), so the backward is one
// multiply per element. Layout: grid-stride loop, thread i handles i, i + S, … (common.cuh).
#include "common.cuh"

template <typename T>
__global__ void reparameterize_fwd(const T* __restrict__ mu, const T* __restrict__ log_var,
                                   const T* __restrict__ eps, T* __restrict__ z, T* __restrict__ noise,
                                   long long n) {
    for (long long i = grid_first(); i < n; i += grid_step()) {
        const T e = mv_exp(T(0.5) * log_var[i]) * eps[i];
        noise[i] = e;
        z[i] = mu[i] + e;
    }
}

template <typename T>
__global__ void reparameterize_bwd(const T* __restrict__ g, const T* __restrict__ noise, T* __restrict__ glog_var,
                                   long long n) {
    for (long long i = grid_first(); i < n; i += grid_step()) glog_var[i] = T(0.5) * g[i] * noise[i];
}

template <typename T>
__global__ void kl_standard_normal_fwd(const T* __restrict__ mu, const T* __restrict__ log_var, T* __restrict__ kl,
                                       T* __restrict__ var, long long n) {
    for (long long i = grid_first(); i < n; i += grid_step()) {
        const T m = mu[i], v = log_var[i];
        const T e = mv_exp(v);
        var[i] = e;
        kl[i] = T(0.5) * (m * m + e - T(1) - v);
    }
}

template <typename T>
__global__ void kl_standard_normal_bwd(const T* __restrict__ g, const T* __restrict__ mu, const T* __restrict__ var,
                                       T* __restrict__ gmu, T* __restrict__ glog_var, long long n) {
    for (long long i = grid_first(); i < n; i += grid_step()) {
        const T gi = g[i];
        gmu[i] = gi * mu[i];
        glog_var[i] = T(0.5) * gi * (var[i] - T(1));
    }
}
