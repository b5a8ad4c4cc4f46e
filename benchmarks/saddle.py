"""The count models' log-densities on the CPU, forward and backward, with the Numba kernels of ops.stirlerr and ops.bd0
(minivae/_cpu/saddle.py) and without (their array formula, minivae/ops/saddle.py), interleaved in one run.

    python benchmarks/saddle.py [--rows 128] [--cols 2000] [--repeats 7]

Prints median ms per log_prob + backward of a rows×cols float32 batch (counts drawn from the model at logits and
log-rates of N(0, 1), NB's total count r = e^{N(0, 1)}) for the negative binomial, the Poisson and the log-rate Poisson,
and the ratio formula / Numba (above 1: the kernels are faster); then stirlerr and bd0 alone, forward and backward.
"""
import argparse
import statistics
import time

import numpy

import minivae as mv
from minivae import ops
from minivae._backend import use_numba
from minivae.distributions import NegativeBinomial, Poisson
from minivae.models import LogRatePoisson
from minivae.random import Generator


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def log_prob_and_backward(make, value):
    def run():
        params, dist = make()
        dist.log_prob(value).sum().backward()
        return params
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--cols", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rng = numpy.random.default_rng(0)
    shape = (args.rows, args.cols)
    logits, log_r = (rng.standard_normal(shape).astype(numpy.float32) for _ in range(2))

    def nb():
        r, l = mv.tensor(numpy.exp(log_r), requires_grad=True), mv.tensor(logits, requires_grad=True)
        return (r, l), NegativeBinomial(r, logits=l)

    def poisson():
        rate = mv.tensor(numpy.exp(logits), requires_grad=True)
        return (rate,), Poisson(rate)

    def log_rate():
        eta = mv.tensor(logits, requires_grad=True)
        return (eta,), LogRatePoisson(eta)

    gen = Generator(0)
    counts = {name: make()[1].sample(rng=gen).data for name, make in (("nb", nb), ("poisson", poisson))}
    counts["log_rate"] = counts["poisson"]
    x = mv.tensor(rng.uniform(0, 30, shape))
    m = mv.tensor(rng.uniform(0, 30, shape))
    cases = [("NegativeBinomial", log_prob_and_backward(nb, counts["nb"])),
             ("Poisson", log_prob_and_backward(poisson, counts["poisson"])),
             ("LogRatePoisson", log_prob_and_backward(log_rate, counts["log_rate"])),
             ("stirlerr U(0, 30) float64", lambda: ops.stirlerr(mv.tensor(x.data, requires_grad=True)).sum().backward()),
             ("bd0 U(0, 30)² float64", lambda: ops.bd0(mv.tensor(x.data, requires_grad=True),
                                                       mv.tensor(m.data, requires_grad=True)).sum().backward())]
    print(f"{args.rows}×{args.cols}, median ms of {args.repeats}, log_prob (or the op) + backward")
    print(f"{'':28s} {'formula':>9s} {'Numba':>9s} {'ratio':>7s}")
    for name, fn in cases:
        ms = []
        for flag in (False, True):
            with use_numba(flag):
                ms.append(median_ms(fn, args.repeats))
        print(f"{name:28s} {ms[0]:9.1f} {ms[1]:9.1f} {ms[0] / ms[1]:7.2f}")


if __name__ == "__main__":
    main()
