// erf, erfc, erfinv and erfcinv elementwise (minivae/ops/special.py, whose array formulas are the specification and
// which take every branch for every element: about a hundred launches an op on the GPU, one here). CUDA's own
// double-precision functions (within 2, 5, 5 and 6 ulp of the exact value, by the CUDA C++ Programming Guide),
// rounded once to T, so that float32 is float64's value rounded as on the CPU paths.
//
// Each function is of x/divisor, the quotient in double (gelu's Φ(x) = ½·erfc(x/−√2); 1 for the ops themselves).
//
// Layout: grid-stride loop, thread i handles i, i + S, … (common.cuh); `which` is the same for every thread.
#include "common.cuh"

enum SpecialFunction : int { SPECIAL_ERF = 0, SPECIAL_ERFC = 1, SPECIAL_ERFINV = 2, SPECIAL_ERFCINV = 3 };

template <typename T>
__global__ void special_fwd(const T* __restrict__ x, T* __restrict__ y, long long n, int which, double divisor) {
    for (long long i = grid_first(); i < n; i += grid_step()) {
        const double v = (double)x[i] / divisor;
        double r;
        switch (which) {
            case SPECIAL_ERF: r = erf(v); break;
            case SPECIAL_ERFC: r = erfc(v); break;
            case SPECIAL_ERFINV: r = erfinv(v); break;
            default: r = erfcinv(v); break;
        }
        y[i] = (T)r;
    }
}
