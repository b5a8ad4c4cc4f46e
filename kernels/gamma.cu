// Gamma(α, 1) draws and their implicit-reparameterization gradient, one thread an element, in one launch each
// (minivae/distributions/gamma.py standard_gamma_draws and minivae/ops/gamma.py standard_gamma_grad, whose array
// formulas are the specification; on the GPU those copy to the host at every rejection round and every convergence
// check, so that a CUDA graph could not capture them).
//
// standard_gamma_draws  Marsaglia & Tsang, element i's rejection loop in registers: round r takes the Philox block of
//     counter words (lo(b), hi(b), r, 0), b = offset + *shift + i, key = seed: x = √(−2 log u₀)·cos(2π·u₁),
//     u = u₂, u_b = u₃ (u_k = (w_k + ½)·2⁻³², uniform_f64); d = α − ⅓ (α + 1 − ⅓ for α < 1, then times
//     exp(log(u_b)/α)), c = 1/√(9d), t = 1 + c·x, v = t·t·t, accepted when v > 0 and
//     log u < ½x² + d − d·v + d·log v, the draw d·v; rounded to T, at least T's smallest normal number. NaN where no
//     round of GAMMA_ROUNDS accepts (each accepts with probability ≥ 0.95). α_i = alpha[i mod period] (α broadcast
//     over leading axes, as a batch of parameters over its sample shape).
// standard_gamma_grad   ḡ·dz/dα, dz/dα in double rounded to T: the series (z < α + 1) or Legendre's continued
//     fraction by the modified Lentz method with its α-derivative carried forward (ops/gamma.py's module docstring),
//     each checked for convergence every GAMMA_CHECK_EVERY terms, element by element; 0 where z ≤ 0 (or NaN).
//
// The double arithmetic is the formulas', operation for operation, so that the host build (g++, glibc's log, cos,
// exp: tests/cuda_host) gives the value of the same computation in Python's math module bit for bit.
//
// Layout: grid-stride loop, thread i handles i, i + S, … (common.cuh).
#include "common.cuh"
#include "gamma.cuh"

template <typename A, typename T>
__global__ void standard_gamma_draws(const A* __restrict__ alpha, long long period, T* __restrict__ out, long long n,
                                     unsigned long long seed, unsigned long long offset,
                                     const unsigned long long* __restrict__ shift) {
    offset += *shift;
    for (long long i = grid_first(); i < n; i += grid_step()) {
        double z;
        if (!gamma_draw(seed, offset + (unsigned long long)i, (double)alpha[i % period], z))
            z = __longlong_as_double(0x7ff8000000000000ll);  // (NaN)
        out[i] = mv_max((T)z, tiny_normal(T(0)));
    }
}

template <typename T>
__global__ void standard_gamma_grad(const T* __restrict__ alpha, long long period, const T* __restrict__ z,
                                    const T* __restrict__ g, T* __restrict__ gx, long long n) {
    for (long long i = grid_first(); i < n; i += grid_step())
        gx[i] = g[i] * (T)gamma_grad((double)alpha[i % period], (double)z[i]);
}
