"""Accuracy of ops.lgamma, ops.digamma and ops.polygamma(1, ·) in float64 against 40-digit mpmath (installed with
torch's sympy; not a dependency of minivae), at x log-uniform in [1e-3, 1e3]; and of the implicit reparameterization
gradient of ops.standard_gamma, dz/dα = −(∂F/∂α)(z; α)/f(z; α), at α log-uniform in [1e-2, 1e2] and z = α·e^{N(0, 0.3²)},
against mpmath's (∂F/∂α by its numerical derivative at 50 digits), beside torch's _standard_gamma_grad when torch is
installed.

    python benchmarks/gamma_accuracy.py [--n 4000] [--n-gamma 200] [--seed 0] [--large]
    python benchmarks/gamma_accuracy.py --pin 1e3 1e6 1e8      # tests/test_ops_gamma.py's MPMATH_LARGE_ALPHA rows

Prints the largest relative error of each (--large: also of dz/dα at α from 10³ to 10¹², where Temme's expansion takes
over, at the points mpmath converges; and the gradient's time at moderate α). Near a zero of the function only the
absolute error is small, so those points are left out: lgamma within 0.05 of 1 and 2, digamma within 0.05 of its root 1.46163….
"""
import argparse

import numpy

import minivae as mv
from minivae import ops

DIGAMMA_ROOT = 1.4616321449683622


def worst_relative(fn, reference, x, mpf):
    got = fn(mv.tensor(x)).numpy()
    exact = numpy.array([float(reference(mpf(v))) for v in x.tolist()])
    return float(numpy.max(numpy.abs(got - exact) / numpy.abs(exact)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--n-gamma", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pin", type=float, nargs="+", help="print 50-digit dz/dα rows at these α and stop")
    p.add_argument("--large", action="store_true")
    args = p.parse_args()
    try:
        import mpmath
    except ImportError:
        raise SystemExit("gamma_accuracy.py needs mpmath (pip install mpmath)") from None
    if args.pin:
        for row in large_alpha_rows(mpmath, args.pin):
            print(f"    ({row[0]!r}, {row[1]!r}, {mpmath.nstr(row[2], 20)}),")
        return
    mpmath.mp.dps = 40
    x = numpy.exp(numpy.random.default_rng(args.seed).uniform(numpy.log(1e-3), numpy.log(1e3), args.n))
    rows = [("lgamma", ops.lgamma, mpmath.loggamma, (abs(x - 1) > 0.05) & (abs(x - 2) > 0.05)),
            ("digamma", ops.digamma, mpmath.digamma, abs(x - DIGAMMA_ROOT) > 0.05),
            ("polygamma(1, x)", lambda t: ops.polygamma(1, t), lambda v: mpmath.polygamma(1, v), x > 0)]
    print(f"float64, {args.n} x log-uniform in [1e-3, 1e3] (seed {args.seed}), against mpmath at 40 digits")
    for name, fn, reference, keep in rows:
        print(f"  {name:16s} largest relative error {worst_relative(fn, reference, x[keep], mpmath.mpf):.2e}"
              f"  ({int(keep.sum())} points)")
    gamma_gradient(mpmath, args.n_gamma, args.seed)
    if args.large:
        large_alpha(mpmath)


def gamma_gradient(mpmath, n, seed):
    mpmath.mp.dps = 50
    rng = numpy.random.default_rng(seed + 1)
    a = numpy.exp(rng.uniform(numpy.log(1e-2), numpy.log(1e2), n))
    z = a * numpy.exp(rng.normal(0, 0.3, n))

    def exact(ai, zi):
        ai, zi = mpmath.mpf(ai), mpmath.mpf(zi)
        dp = mpmath.diff(lambda s: mpmath.gammainc(s, 0, zi, regularized=True), ai)
        return float(-dp / (zi ** (ai - 1) * mpmath.exp(-zi) / mpmath.gamma(ai)))
    reference = numpy.array([exact(ai, zi) for ai, zi in zip(a.tolist(), z.tolist())])
    t = mv.tensor(a, requires_grad=True)
    ops.standard_gamma(t, mv.tensor(z)).sum().backward()
    print(f"standard_gamma's dz/dα, {n} (α, z), against mpmath at 50 digits")
    print(f"  minivae          largest relative error {numpy.max(numpy.abs(t.grad - reference) / abs(reference)):.2e}")
    try:
        import torch
    except ImportError:
        return
    g = torch._standard_gamma_grad(torch.tensor(a), torch.tensor(z)).numpy()
    print(f"  torch {torch.__version__:10s} largest relative error {numpy.max(numpy.abs(g - reference) / abs(reference)):.2e}")


def large_alpha_rows(mpmath, alphas):
    """(α, z, dz/dα) at 50 digits: −(∂P/∂α)/f below z = α, (∂Q/∂α)/f above (mpmath.gammainc, differentiated by
    mpmath.diff), z = α + ε√α (ε = −5, −1, 0, 1.5, 5) and z = λα (λ = 0.5, 0.74, 0.76, 1.24, 1.26, 2); the points
    where mpmath's hypergeometric series does not converge (α ≳ 10⁶ above z = α, α ≳ 10⁸ in the bulk) left out."""
    mpmath.mp.dps = 50

    def grad(a, z):
        a, z = mpmath.mpf(a), mpmath.mpf(z)
        if z < a:
            dp = mpmath.diff(lambda s: mpmath.gammainc(s, 0, z, regularized=True), a)
        else:
            dp = -mpmath.diff(lambda s: mpmath.gammainc(s, z, mpmath.inf, regularized=True), a)
        return -dp / mpmath.exp((a - 1) * mpmath.log(z) - z - mpmath.loggamma(a))
    for a in alphas:
        for z in [a + a ** 0.5 * e for e in (-5.0, -1.0, 0.0, 1.5, 5.0)] + [a * v for v in (0.5, 0.74, 0.76, 1.24, 1.26, 2.0)]:
            try:
                yield a, z, grad(a, z)
            except mpmath.libmp.NoConvergence:
                continue


def large_alpha(mpmath):
    import time
    rows = list(large_alpha_rows(mpmath, [1e3, 1e6, 1e8, 1e10, 1e12]))
    a, z = (numpy.array([r[k] for r in rows]) for k in (0, 1))
    want = numpy.array([float(r[2]) for r in rows])
    t = mv.tensor(a, requires_grad=True)
    ops.standard_gamma(t, mv.tensor(z)).sum().backward()
    print(f"standard_gamma's dz/dα at α 10³ … 10¹², {len(rows)} (α, z) mpmath converges at, against mpmath at 50 digits")
    print(f"  minivae          largest relative error {numpy.max(numpy.abs(t.grad - want) / want):.2e}")
    rng = numpy.random.default_rng(0)
    for alpha in [10.0, 300.0, 3000.0, 1e5]:
        a = numpy.full(100000, alpha)
        z = rng.gamma(alpha, size=a.size)
        t = mv.tensor(a, requires_grad=True)
        start = time.perf_counter()
        ops.standard_gamma(t, mv.tensor(z)).sum().backward()
        print(f"  α = {alpha:8.0f}: dz/dα of 10⁵ draws in {time.perf_counter() - start:.3f} s")


if __name__ == "__main__":
    main()
