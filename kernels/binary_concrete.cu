// The Binary Concrete sample and the Bernoulli KL of the same logits, elementwise over n values (as
// minivae/ops/binary_concrete.py's BinaryConcreteKL, the specification), forward and backward:
//
//   forward   u = Generator(seed, offset).uniform(n) of T (word i % 4 of block offset + i / 4: made here, in
//             registers, never stored);  L = log u − log1p(−u);  x = l + L;  s = σ(x/τ)
//             y = clip(s, ε, 1 − ε), or 1[x > 0] + (s − s) when hard (an exact Bernoulli(σ(l)) draw; NaN where s is)
//             kl = softplus(−ς·l_p) − log1p(t) − t/(1 + t)·(|l| − ς·l_p),  ς = sign l, t = e^{−|l|}
//   backward  l̄ = ((ȳ·[ε ≤ s ≤ 1 − ε])·s·(1 − s))/τ + k̄l·t/(1 + t)²·(l − l_p)
//
// l_p: m values, element i taking l_p[i % m] (a prior per latent variable, or one for all). The forward writes s
// (the backward's residual), y and kl; the backward reads s, l and l_p, so the noise is never in memory.
// Its own file, not gumbel_softmax.cu: those kernels take rows (a warp or a block a row, reductions along it), these
// none (one value at a time), as kernels/gaussian.cu's.
// Layout: the forward's thread takes a Philox block, four elements (as normal_reparameterize_kl_fwd), grid-stride;
// the backward is a grid-stride loop over elements. T arithmetic throughout (logf, log1pf, expf for float): the
// formula's float32 steps, each within an ulp or two of NumPy's. shift: the counter's advance since a CUDA graph's
// capture (0 eagerly).
#include "common.cuh"  // (and philox.cuh)

MINIVAE_HD float uniform_of(uint32_t w, float) { return uniform_f32(w); }
MINIVAE_HD double uniform_of(uint32_t w, double) { return uniform_f64(w); }

template <typename T>
MINIVAE_HD T softplus_of(T v) { return mv_max(v, T(0)) + mv_log1p(mv_exp(v < T(0) ? v : -v)); }

// KL(Bernoulli(σ(l)) ‖ Bernoulli(σ(l_p))), stable for any finite logits (ops/binary_concrete.py bernoulli_kl_array).
template <typename T>
MINIVAE_HD T bernoulli_kl_elem(T l, T lp) {
    const T a = l < T(0) ? -l : l, sign = l >= T(0) ? T(1) : T(-1);
    const T t = mv_exp(-a);
    return softplus_of(-sign * lp) - mv_log1p(t) - t / (T(1) + t) * (a - sign * lp);
}

template <typename T>
MINIVAE_HD void binary_concrete_elem(T l, T lp, uint32_t w, T tau, T eps, int hard, T& s, T& y, T& kl) {
    const T u = uniform_of(w, T(0));
    const T x = l + (mv_log(u) - mv_log1p(-u));
    const T v = x / tau;
    const T e = mv_exp(v < T(0) ? v : -v);
    s = v >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
    // clip as numpy.clip: NaN stays NaN
    y = hard ? (x > T(0) ? T(1) : T(0)) + (s - s) : (s < eps ? eps : (s > T(1) - eps ? T(1) - eps : s));
    kl = bernoulli_kl_elem(l, lp);
}

template <typename T>
__global__ void binary_concrete_kl_fwd(const T* __restrict__ logits, const T* __restrict__ prior, T* __restrict__ s,
                                       T* __restrict__ y, T* __restrict__ kl, long long n, long long m, T tau, T eps,
                                       unsigned long long seed, unsigned long long offset,
                                       const unsigned long long* __restrict__ shift, int hard) {
    offset += *shift;
    for (long long b = grid_first(); b < (n + 3) / 4; b += grid_step()) {
        const PhiloxWords w = philox_block(seed, offset + (unsigned long long)b);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
            const long long i = 4 * b + q;
            if (i >= n) break;  // the last block's words past n are drawn (the counter advances by whole blocks) unused
            binary_concrete_elem(logits[i], prior[m == n ? i : i % m], w.w[q], tau, eps, hard, s[i], y[i], kl[i]);
        }
    }
}

// has_gy / has_gkl: 0 when no gradient reached that output (it counts as 0, and that pointer is never read).
template <typename T>
__global__ void binary_concrete_kl_bwd(const T* __restrict__ s, const T* __restrict__ gy,
                                       const T* __restrict__ logits, const T* __restrict__ prior,
                                       const T* __restrict__ gkl, T* __restrict__ gl, long long n, long long m, T tau,
                                       T eps, int has_gy, int has_gkl) {
    for (long long i = grid_first(); i < n; i += grid_step()) {
        T g = T(0);
        if (has_gy) {
            const T si = s[i];
            if (si >= eps && si <= T(1) - eps) g = gy[i] * si * (T(1) - si) / tau;
        }
        if (has_gkl) {
            const T l = logits[i];
            const T t = mv_exp(l < T(0) ? l : -l);
            g = g + gkl[i] * (t / ((T(1) + t) * (T(1) + t))) * (l - prior[m == n ? i : i % m]);
        }
        gl[i] = g;
    }
}
