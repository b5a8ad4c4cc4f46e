// Gaussian reparameterization and the KL of N(μ, σ²) to N(0, 1), from the log-variance v = log σ²,
// forward and backward, elementwise over n values (as minivae/ops/losses.py):
//
//   reparameterize   noise = exp(½·v)·ε;  z = μ + noise          bwd  gv = ½·g·noise  (gμ = g)
//   KL               var = exp(v);  kl = ½·(μ² + var − 1 − v)      bwd  gμ = g·μ;  gv = ½·g·(var − 1)
//   both at once     (z, kl) as above                              bwd  gμ = g_z + g_kl·μ;
//                                                                       gv = ½·g_z·noise + ½·g_kl·(var − 1)
//
// The single forwards also write what their backward reads (noise, var), so that backward is one
// multiply per element. The joint pair recomputes them instead: its forward reads μ, v, ε and writes
// z, kl, its backward reads g_z, g_kl, μ, v, ε and writes gμ, gv, 12 passes over n values in all
// where storing noise and var would make 14 (memory traffic is the whole cost here; the exponentials
// are free). Layout: grid-stride loop, thread i handles i, i + S, … (common.cuh). The pair also reads μ and
// v in place when they are column slices of a wider array (the halves of one encoder output): row r,
// column c of a (rows × cols) input whose rows sit ld apart is element r·ld + c (ld = cols: contiguous).
// Its backward writes gμ and gv with rows ld_g apart: the halves of one gradient array when μ and v are the
// halves of one array (minivae/_gpu/gaussian.py), so that the split's backward has nothing to join.
#include "common.cuh"

// Where element i of a (rows × cols) array with rows ld apart sits (no division when it is contiguous).
MINIVAE_D long long row_strided(long long i, long long cols, long long ld) {
    return ld == cols ? i : (i / cols) * ld + i % cols;
}

template <typename T>
MINIVAE_HD T reparameterize_noise(T log_var, T eps) { return mv_exp(T(0.5) * log_var) * eps; }

template <typename T>
MINIVAE_HD T kl_term(T mu, T log_var, T var) { return T(0.5) * (mu * mu + var - T(1) - log_var); }

template <typename T>
__global__ void reparameterize_fwd(const T* __restrict__ mu, const T* __restrict__ log_var,
                                   const T* __restrict__ eps, T* __restrict__ z, T* __restrict__ noise,
                                   long long n) {
    for (long long i = grid_first(); i < n; i += grid_step()) {
        const T e = reparameterize_noise(log_var[i], eps[i]);
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
        kl[i] = kl_term(m, v, e);
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

// Element i of the pair's forward: z_i and kl_i from μ, v (row-strided) and ε_i.
template <typename T>
MINIVAE_D void reparameterize_kl_elem(const T* __restrict__ mu, const T* __restrict__ log_var, T e, T* __restrict__ z,
                                      T* __restrict__ kl, long long i, long long cols, long long ld_mu, long long ld_v) {
    const T m = mu[row_strided(i, cols, ld_mu)], v = log_var[row_strided(i, cols, ld_v)];
    z[i] = m + reparameterize_noise(v, e);
    kl[i] = kl_term(m, v, mv_exp(v));
}

template <typename T>
__global__ void reparameterize_kl_fwd(const T* __restrict__ mu, const T* __restrict__ log_var,
                                      const T* __restrict__ eps, T* __restrict__ z, T* __restrict__ kl, long long n,
                                      long long cols, long long ld_mu, long long ld_v) {
    for (long long i = grid_first(); i < n; i += grid_step())
        reparameterize_kl_elem(mu, log_var, eps[i], z, kl, i, cols, ld_mu, ld_v);
}

// The pair with its noise drawn here: ε = Generator(seed, offset).normal(n), as kernels/random.cu's philox_normal
// makes it (Philox block b gives the pairs 2b and 2b + 1: elements 4b … 4b + 3), written to eps for the backward,
// where philox_normal and reparameterize_kl_fwd would write ε, then read it: one launch and one pass fewer.
// A thread takes a block's four elements. shift: the counter's advance since a CUDA graph's capture (0 eagerly).
template <typename T>
__global__ void normal_reparameterize_kl_fwd(const T* __restrict__ mu, const T* __restrict__ log_var,
                                             T* __restrict__ eps, T* __restrict__ z, T* __restrict__ kl, long long n,
                                             long long cols, long long ld_mu, long long ld_v, unsigned long long seed,
                                             unsigned long long offset, const unsigned long long* __restrict__ shift) {
    offset += *shift;
    for (long long b = grid_first(); b < (n + 3) / 4; b += grid_step()) {
        const PhiloxWords w = philox_block(seed, offset + (unsigned long long)b);
#pragma unroll
        for (int q = 0; q < 4; q += 2) {
            const long long i = 4 * b + q;
            if (i >= n) break;
            double first, second;
            normal_pair(w.w[q], w.w[q + 1], first, second);
            eps[i] = (T)first;
            reparameterize_kl_elem(mu, log_var, (T)first, z, kl, i, cols, ld_mu, ld_v);
            if (i + 1 < n) {
                eps[i + 1] = (T)second;
                reparameterize_kl_elem(mu, log_var, (T)second, z, kl, i + 1, cols, ld_mu, ld_v);
            }
        }
    }
}

// has_gz / has_gkl: 0 when no gradient reached that output (it counts as 0, and that pointer is never read).
template <typename T>
__global__ void reparameterize_kl_bwd(const T* __restrict__ gz, const T* __restrict__ gkl, const T* __restrict__ mu,
                                      const T* __restrict__ log_var, const T* __restrict__ eps, T* __restrict__ gmu,
                                      T* __restrict__ glog_var, long long n, int has_gz, int has_gkl, long long cols,
                                      long long ld_mu, long long ld_v, long long ld_g) {
    for (long long i = grid_first(); i < n; i += grid_step()) {
        const T v = log_var[row_strided(i, cols, ld_v)];
        T m_bar = T(0), v_bar = T(0);
        if (has_gz) {
            m_bar = gz[i];
            v_bar = T(0.5) * gz[i] * reparameterize_noise(v, eps[i]);
        }
        if (has_gkl) {
            m_bar = m_bar + gkl[i] * mu[row_strided(i, cols, ld_mu)];
            v_bar = v_bar + T(0.5) * gkl[i] * (mv_exp(v) - T(1));
        }
        const long long at = row_strided(i, cols, ld_g);
        gmu[at] = m_bar;
        glog_var[at] = v_bar;
    }
}
