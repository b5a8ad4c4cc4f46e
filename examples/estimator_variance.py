"""Bias and variance of gradient estimators on problems whose exact gradient is known.

    python examples/estimator_variance.py [--draws 2000]

The categorical toy shows the Gumbel-Softmax trade-off: as τ → 0 the bias shrinks and the
variance grows; REINFORCE is unbiased at any τ, paying in variance.
"""
import argparse

from minivae import lab
from minivae.random import Generator

parser = argparse.ArgumentParser()
parser.add_argument("--draws", type=int, default=2000)
args = parser.parse_args()

exact, grads = lab.categorical_toy(args.draws, Generator(0), temperatures=(0.1, 0.3, 1.0, 3.0))
print(f"exact gradient {exact.round(4)}")
print(f"{'estimator':24s} {'|bias|':>8s} {'± s.e.':>8s} {'variance':>10s}")
for name, g in grads.items():
    s = lab.summarize(exact, g)
    print(f"{name:24s} {s['bias']:8.4f} {s['bias_se']:8.4f} {s['variance']:10.4f}")
