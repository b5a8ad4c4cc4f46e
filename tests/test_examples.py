"""Every example runs (in smoke mode where it has one) and prints what it promises."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
EXAMPLES = {
    "gaussian_vae.py": (["--smoke"], "test IWAE bound"),
    "categorical_vae.py": (["--smoke"], "test ELBO (discrete z)"),
    "bernoulli_vae.py": (["--smoke", "--estimator", "reinforce", "--baseline-hidden", "8"], "test ELBO (binary z)"),
    "estimator_variance.py": (["--draws", "100"], "gumbel_softmax τ=0.1"),
    "exact_marginal.py": ([], "KL(q(z|x) ‖ p(z|x))"),
    "conv_vae.py": (["--smoke"], "test −ELBO"),
    "rebar_eta.py": (["--smoke"], "mean variance of an entry"),
    "sequence_vae.py": (["--smoke"], "test ELBO"),
    "flow_posterior.py": (["--smoke"], "iaf ×4"),
    "vamp_prior.py": (["--smoke"], "vamp K=5"),
    "vq_vae.py": (["--smoke"], "vq 16×8, 64 codes"),
    "semisupervised_m2.py": (["--smoke"], "test classification error"),
    "conditional_vae.py": (["--smoke"], "samples nearest their class's mean training image"),
    "count_vae.py": (["--smoke"], "learned inverse dispersion θ"),
    "annealed_importance.py": (["--smoke"], "AIS, T = 20, 64 chains"),
    "step_plan.py": (["--steps", "10"], "equal bit for bit: True (largest difference 0)\n"
                                        "memory the replays took from the system from the third step on: 0 blocks"),
}


def test_every_example_is_covered():
    assert set(os.listdir(os.path.join(ROOT, "examples"))) >= set(EXAMPLES)
    assert {f for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".py")} == set(EXAMPLES)


def run(name, args):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), *args],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name):
    args, expected = EXAMPLES[name]
    assert expected in run(name, args)


def test_exact_marginal_table_keeps_the_bounds_in_their_order():
    """Each row, exact: E_p(z) log p(x|z) ≤ ELBO (Jensen's inequality under q) ≤ IWAE_k ≤ log p(x) (Burda et al. 2016,
    Theorem 1), and here strictly (q is not the posterior): a Monte Carlo column could cross log p(x)."""
    lines = run("exact_marginal.py", []).splitlines()
    assert lines[0].split() == ["prior", "bound", "ELBO", "IWAE", "k=3", "log", "p(x)", "(exact)"]
    rows = [[float(v) for v in line.split()] for line in lines[1:5]]
    assert len(rows) == 4 and all(len(row) == 4 for row in rows)
    for prior, elbo, iwae, log_px in rows:
        assert prior < elbo < iwae < log_px
