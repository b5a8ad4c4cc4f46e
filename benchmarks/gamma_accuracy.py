"""Accuracy of ops.lgamma, ops.digamma and ops.polygamma(1, ·) in float64 against 40-digit mpmath (installed with
torch's sympy; not a dependency of minivae), at x log-uniform in [1e-3, 1e3]; and of the implicit reparameterization
gradient of ops.standard_gamma, dz/dα = −(∂F/∂α)(z; α)/f(z; α), at α log-uniform in [1e-2, 1e2] and z = α·e^{N(0, 0.3²)},
against mpmath's (∂F/∂α by its numerical derivative at 50 digits), beside torch's _standard_gamma_grad when torch is
installed.

    python benchmarks/gamma_accuracy.py [--n 4000] [--n-gamma 200] [--seed 0]

Prints the largest relative error of each. Near a zero of the function only the absolute error is small, so those
points are left out: lgamma within 0.05 of 1 and 2, digamma within 0.05 of its root 1.46163….
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
    args = p.parse_args()
    try:
        import mpmath
    except ImportError:
        raise SystemExit("gamma_accuracy.py needs mpmath (pip install mpmath)") from None
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


if __name__ == "__main__":
    main()
