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

// Temme's expansion of dz/dα for α ≥ GAMMA_TEMME_FROM, |z/α − 1| < GAMMA_TEMME_WIDTH (ops/gamma.py temme_gradient):
// the float64 coefficients of ops/gamma.py temme_coefficients, lowest power first (tests/test_gamma_stream.py compares
// them): η/μ in μ, bₖ(η) in η for k < GAMMA_TEMME_ORDERS, Γ*'s f_k(0). Loops unrolled: constant indices.
#define GAMMA_TEMME_FROM 1000.0
#define GAMMA_TEMME_WIDTH 0.25
#define GAMMA_TEMME_ORDERS 6
#define GAMMA_TEMME_DEGREE 20
#define GAMMA_TEMME_RATIO_TERMS 30

MINIVAE_HD double gamma_temme_gradient(double a, double z) {
    const double ratio[GAMMA_TEMME_RATIO_TERMS] = {
        1.0, -0.3333333333333333, 0.19444444444444445, -0.13518518518518519, 0.10270061728395062,
        -0.08233759553203998, 0.06844705320399765, -0.05840173672349598, 0.050819073696436734, -0.04490435697557504,
        0.040169383760970956, -0.03629823350821494, 0.033077734575438014, -0.030359007414019895, 0.028035031162601393,
        -0.026026964485597544, 0.024275486092980206, -0.022735134066871807, 0.021370501031151918,
        -0.020153613610726467, 0.01906208827032254, -0.01807780840671677, 0.017185958929723515, -0.01637431074451939,
        0.015632682964135627, -0.014952533516597118, 0.014326643838156492, -0.013748873417603918,
        0.013213966824996284, -0.012717400614576302};
    const double b[GAMMA_TEMME_ORDERS][GAMMA_TEMME_DEGREE] = {
        {
            -0.3333333333333333, 0.08333333333333333, -0.014814814814814815, 0.0011574074074074073,
            0.0003527336860670194, -0.0001787551440329218, 3.919263178522438e-05, -2.185448510679992e-06,
            -1.85406221071516e-06, 8.296711340953087e-07, -1.7665952736826078e-07, 6.707853543401498e-09,
            1.0261809784240309e-08, -4.382036018453353e-09, 9.14769958223679e-10, -2.5514193994946248e-11,
            -5.830772132550426e-11, 2.4361948020667415e-11, -5.0276692801141755e-12, 1.1004392031956135e-13},
        {
            -0.02962962962962963, 0.003472222222222222, 0.0014109347442680777, -0.000893775720164609,
            0.00023515579071134627, -1.5298139574759944e-05, -1.483249768572128e-05, 7.467040206857778e-06,
            -1.766595273682608e-06, 7.378638897741648e-08, 1.231417174108837e-07, -5.696646823989359e-08,
            1.2806779415131507e-08, -3.8271290992419376e-10, -9.32923541208068e-10, 4.141531163513461e-10,
            -9.049804704205516e-11, 2.0908344860716655e-12, 6.743526524801971e-12, -2.9240163170781403e-12},
        {
            0.0028218694885361554, -0.0026813271604938273, 0.0009406231628453851, -7.649069787379973e-05,
            -8.899498611432768e-05, 5.226928144800444e-05, -1.4132762189460864e-05, 6.640775007967483e-07,
            1.231417174108837e-06, -6.266311506388295e-07, 1.536813529815781e-07, -4.975267829014519e-09,
            -1.3060929576912952e-08, 6.212296745270191e-09, -1.4479687526728825e-09, 3.554418626321831e-11,
            1.2138347744643549e-10, -5.5556310024484665e-11, 1.2555353275100876e-11, -2.4821910159391627e-13},
        {
            0.0018812463256907702, -0.00022947209362139917, -0.0003559799444573107, 0.0002613464072400222,
            -8.479657313676519e-05, 4.6485425055772385e-06, 9.851337392870696e-06, -5.639680355749465e-06,
            1.5368135298157807e-06, -5.47279461191597e-08, -1.5673115492295543e-07, 8.075985768851248e-08,
            -2.0271562537420356e-08, 5.331627939482747e-10, 1.9421356391429678e-09, -9.444572704162393e-10,
            2.2599635895181574e-10, -4.716162930284409e-12, -2.085841643883301e-11, 9.780171796720759e-12},
        {
            -0.0007119598889146215, 0.0007840392217200666, -0.00033918629254706074, 2.3242712527886193e-05,
            5.9108024357224175e-05, -3.947776249024626e-05, 1.2294508238526246e-05, -4.925515150724373e-07,
            -1.5673115492295543e-06, 8.883584345736373e-07, -2.432587504490443e-07, 6.931116321327572e-09,
            2.7189898948001546e-08, -1.416685905624359e-08, 3.615941743229052e-09, -8.017476981483495e-11,
            -3.7545149589899423e-10, 1.858232641376944e-10, -4.536426170774279e-11, 8.250202847530553e-13},
        {
            -0.0006783725850941215, 6.972813758365857e-05, 0.0002364320974288967, -0.0001973888124512313,
            7.376704943115748e-05, -3.4478606055070616e-06, -1.2538492393836434e-05, 7.995225911162736e-06,
            -2.432587504490443e-06, 7.624227953460329e-08, 3.2627878737601855e-07, -1.8416916773116666e-07,
            5.062318440520673e-08, -1.2026215472225242e-09, -6.007223934383908e-09, 3.158995490340805e-09,
            -8.165567107393703e-10, 1.567538541030805e-11, 8.984545288932968e-11, -4.509938854586398e-11}};
    const double gstar[GAMMA_TEMME_ORDERS] = {
        1.0, 0.08333333333333333, 0.003472222222222222, -0.0026813271604938273, -0.00022947209362139917,
        0.0007840392217200666};
    const double lam = z / a;
    const double mu = lam - 1;
    double w = ratio[GAMMA_TEMME_RATIO_TERMS - 1];
#pragma unroll
    for (int n = GAMMA_TEMME_RATIO_TERMS - 2; n >= 0; --n) w = w * mu + ratio[n];  // η/μ
    const double eta = mu * w;
    const double inv = 1 / a;
    double t = 0.0, dt = 0.0, u = 0.0, g = 0.0, v = 0.0;  // T, ∂T/∂η, Σ k·bₖ·α⁻ᵏ, Γ*, Σ k·f_k(0)·α⁻ᵏ
#pragma unroll
    for (int k = GAMMA_TEMME_ORDERS - 1; k >= 0; --k) {
        double bk = b[k][GAMMA_TEMME_DEGREE - 1], dbk = 0.0;
#pragma unroll
        for (int n = GAMMA_TEMME_DEGREE - 2; n >= 0; --n) {
            dbk = dbk * eta + bk;
            bk = bk * eta + b[k][n];
        }
        t = t * inv + bk;
        dt = dt * inv + dbk;
        u = u * inv + k * bk;
        g = g * inv + gstar[k];
        v = v * inv + k * gstar[k];
    }
    const double s = t / g;
    const double ds_a = (s * v - u) * inv / g;
    const double num = 0.5 * eta + 0.5 * eta * eta * s - ds_a + 0.5 * s * inv;
    const double den = 1 + eta * s - dt / g * inv;
    return lam - lam * w * num / den;
}

// dz/dα of a draw z of Gamma(α, 1) at fixed F(z; α) (ops/gamma.py standard_gamma_grad for one element).
MINIVAE_HD double gamma_grad(double a, double z) {
    if (!(z > 0)) return 0.0;
    if (a >= GAMMA_TEMME_FROM && fabs(z / a - 1) < GAMMA_TEMME_WIDTH) return gamma_temme_gradient(a, z);
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
