"""Every example runs (in smoke mode where it has one) and prints what it promises."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
EXAMPLES = {
    "gaussian_vae.py": (["--smoke"], "test IWAE bound"),
    "categorical_vae.py": (["--smoke"], "test ELBO (discrete z)"),
    "estimator_variance.py": (["--draws", "100"], "gumbel_softmax τ=0.1"),
    "exact_marginal.py": ([], "KL(q(z|x) ‖ p(z|x))"),
    "step_plan.py": (["--steps", "10"], "equal bit for bit: True (largest difference 0)\n"
                                        "memory the replays took from the system from the third step on: 0 blocks"),
}


def test_every_example_is_covered():
    assert set(os.listdir(os.path.join(ROOT, "examples"))) >= set(EXAMPLES)
    assert {f for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".py")} == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name):
    args, expected = EXAMPLES[name]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert expected in r.stdout
