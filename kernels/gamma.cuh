// The per-element math of kernels/gamma.cu: a Gamma(α, 1) draw from its Philox rounds, ψ for α > 0, and dz/dα of a
// draw. Each is the array formula of minivae/distributions/gamma.py or minivae/ops/gamma.py for one element, operation
// for operation (the constants below are those modules', tests/kernel_cases_gamma.py checks them).
#pragma once
#include "philox.cuh"

#define GAMMA_ROUNDS 32             // distributions/gamma.py GAMMA_ROUNDS
#define GAMMA_SERIES_TERMS 4000     // ops/gamma.py SERIES_TERMS, FRACTION_LEVELS, CHECK_EVERY, TOLERANCE = 2^-56
#define GAMMA_FRACTION_LEVELS 2000
#define GAMMA_CHECK_EVERY 25
#define GAMMA_TOLERANCE 1.3877787807814457e-17
#define GAMMA_ONE_THIRD 0.3333333333333333
#define GAMMA_TWO_PI_FACTOR 3.141592653589793  // (2.0·π·u as the formula: 2.0 * numpy.pi * u)

MINIVAE_HD float tiny_normal(float) { return 1.1754943508222875e-38f; }   // numpy.finfo(float32).tiny
MINIVAE_HD double tiny_normal(double) { return 2.2250738585072014e-308; }  // numpy.finfo(float64).tiny

// Round r of the draw of stream block `block`: Philox of counter words (lo(block), hi(block), r, 0).
MINIVAE_HD PhiloxWords gamma_round(uint64_t seed, uint64_t block, uint32_t r) {
    return philox4x32_10((uint32_t)block, (uint32_t)(block >> 32), r, 0u, (uint32_t)seed, (uint32_t)(seed >> 32));
}

// A draw of Gamma(α, 1) in double from stream block `block` (kernels/gamma.cu's header): false when no round accepts.
MINIVAE_HD bool gamma_draw(uint64_t seed, uint64_t block, double a, double& z) {
    const bool boost = a < 1;
    const double d = (boost ? a + 1 : a) - GAMMA_ONE_THIRD;
    const double c = 1 / sqrt(9 * d);
    for (uint32_t r = 0; r < GAMMA_ROUNDS; ++r) {
        const PhiloxWords w = gamma_round(seed, block, r);
        const double x = sqrt(-2.0 * log(uniform_f64(w.w[0]))) * cos(2.0 * GAMMA_TWO_PI_FACTOR * uniform_f64(w.w[1]));
        const double t = 1 + c * x;
        const double v = t * t * t;
        if (v > 0 && log(uniform_f64(w.w[2])) < 0.5 * x * x + d - d * v + d * log(v)) {
            z = d * v;
            if (boost) z = z * exp(log(uniform_f64(w.w[3])) / a);
            return true;
        }
    }
    return false;
}

// ψ(a) for a > 0, finite (ops/gamma.py digamma_positive): ψ(a) = ψ(y) − Σⱼ 1/(a + j) up to y = a + m ≥ 10, then
// log y − 1/(2y) − Σₖ₌₁¹⁴ B₂ₖ/(2k·y²ᵏ) by Horner's rule in w = 1/y².
MINIVAE_HD double digamma_positive(double a) {
    const double terms[14] = {0.08333333333333333, -0.008333333333333333, 0.003968253968253968, -0.004166666666666667,
                              0.007575757575757576, -0.021092796092796094, 0.08333333333333333, -0.4432598039215686,
                              3.0539543302701198, -26.456212121212122, 281.46014492753625, -3607.5105463980462,
                              54827.583333333336, -974936.8238505747};
    double acc = 0.0;
    for (int j = 0; j < 10 && a < 10.0; ++j) {  // (the formula's 10 steps: each adds 1)
        acc = acc + 1 / a;
        a = a + 1;
    }
    const double w = 1 / (a * a);
    double s = terms[13];
#pragma unroll
    for (int k = 12; k >= 0; --k) s = s * w + terms[k];
    return log(a) - 0.5 / a - w * s - acc;
}

// Whether |small| ≤ 2^-56·|big| (ops/gamma.py _converged, for one element: NaN counts as converged there too).
MINIVAE_HD bool gamma_converged(double small, double big) { return !(fabs(small) > GAMMA_TOLERANCE * fabs(big)); }

// dz/dα of a draw z of Gamma(α, 1) at fixed F(z; α) (ops/gamma.py standard_gamma_grad for one element).
MINIVAE_HD double gamma_grad(double a, double z) {
    if (!(z > 0)) return 0.0;
    const double log_z = log(z);
    if (z < a + 1) {  // the series: S = Σ tₖ, ∂S/∂α = −Σ tₖ hₖ
        double t = 1.0, s = 1.0, h = 0.0, ds = 0.0;
        for (int k = 1; k <= GAMMA_SERIES_TERMS; ++k) {
            const double ak = a + k;
            t = t * z / ak;
            h = h + 1 / ak;
            s = s + t;
            ds = ds - t * h;
            if (k % GAMMA_CHECK_EVERY == 0 && gamma_converged(t, s) && gamma_converged(t * h, ds)) break;
        }
        return -(z / a) * (s * (log_z - digamma_positive(a + 1)) + ds);
    }
    // the continued fraction C and ∂C/∂α, modified Lentz with forward derivatives (b' = −1, aᵢ' = i)
    double b = z + 1 - a;
    const double db = -1.0;
    double d = 1 / b;
    double dd = -d * d * db;
    double c = 1e300, dc = 0.0, h = d, dh = dd;
    for (int i = 1; i <= GAMMA_FRACTION_LEVELS; ++i) {
        const double an = -(double)i * ((double)i - a), dan = (double)i;
        b = b + 2;
        const double den = an * d + b;
        const double dden = dan * d + an * dd + db;
        d = 1 / den;
        dd = -d * d * dden;
        const double c_new = b + an / c;
        dc = db + dan / c - an * dc / (c * c);
        c = c_new;
        const double delta = d * c;
        const double ddelta = dd * c + d * dc;
        dh = dh * delta + h * ddelta;
        h = h * delta;
        if (i % GAMMA_CHECK_EVERY == 0 && gamma_converged(delta - 1, 1.0) && gamma_converged(h * ddelta, dh)) break;
    }
    return z * (h * (log_z - digamma_positive(a)) + dh);
}
