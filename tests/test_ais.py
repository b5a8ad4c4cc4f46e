"""minivae.ais on linear Gaussian models, whose log p(x) and tempered targets are Gaussians in closed form:
p(z) = N(0, I), p(x|z) = N(Wz + b, s²I), so p(x) = N(b, WWᵀ + s²I), and with q(z|x) = p(z) the target
f_β(z) ∝ N(z; 0, I)·N(x; Wz + b, s²I)^β is N(m_β, Σ_β), Σ_β = (I + βWᵀW/s²)⁻¹, m_β = Σ_β·βWᵀ(x − b)/s²."""

import math

import numpy as np
import pytest

from minivae import ais
from minivae.distributions import Normal
from minivae.engine import Tensor, grad
from minivae.models import CategoricalVAE
from minivae.random import Generator
from tests.test_cli import SMALL, one_error_line, run

W = np.array([[2.0], [-1.5]])
B = np.array([0.3, -0.2])
X = np.array([[4.0, -3.2], [-1.0, 1.1], [0.5, 0.0]])


class Linear:
    """The linear Gaussian model of noise ``s``, q(z|x) its prior."""

    def __init__(self, s):
        self.s = s

    def posterior(self, x):
        return Normal(Tensor(np.zeros((x.shape[0], 1))), Tensor(np.ones((x.shape[0], 1))))

    def prior(self):
        return Normal(Tensor(np.zeros(1)), Tensor(np.ones(1)))

    def likelihood(self, z):
        return Normal(z @ Tensor(W.T) + Tensor(B), Tensor(np.full(2, self.s)))


def exact_log_px(s):
    cov = W @ W.T + s * s * np.eye(2)
    d = X - B
    return -0.5 * (np.einsum("bi,ij,bj->b", d, np.linalg.inv(cov), d) + np.linalg.slogdet(cov)[1] + 2 * math.log(2 * math.pi))


def test_one_temperature_is_importance_sampling_from_q():
    """T = 1: the weights are p(x, z)/q(z|x) at the C draws from q, log-mean-exp'd (written out in NumPy from the
    same draws)."""
    model, x = Linear(0.4), Tensor(X)
    z = model.posterior(x).sample((32,), rng=Generator(3)).numpy()  # (C, B, 1)
    mean = z @ W.T + B
    log_w = (-0.5 * (((X - mean) / 0.4) ** 2 + math.log(2 * math.pi * 0.16))).sum(-1)  # log p(x|z); p(z) = q cancels
    expected = np.log(np.exp(log_w).mean(0))
    got = ais.log_likelihood_ais(model, x, Generator(3), steps=1, chains=32).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("beta", [0.5, 1.0])
def test_a_move_leaves_the_tempered_target_invariant(beta):
    """4000 chains drawn from f_β exactly, then 10 Hamiltonian Monte Carlo moves at β: their mean and variance stay
    f_β's within 4 standard errors (σ/√n for the mean, σ²·√(2/n) for the variance). A leapfrog without its half
    steps, a Metropolis–Hastings test of the wrong sign, or β on the wrong factor each breaks it."""
    s, x = 0.4, X[:1]
    var = 1 / (1 + beta * float((W * W).sum()) / s ** 2)
    mean = var * beta * float(W[:, 0] @ (x[0] - B)) / s ** 2
    n = 4000
    z = (mean + math.sqrt(var) * np.random.default_rng(4).normal(size=(n, 1, 1)))
    model, xt = Linear(s), Tensor(x)
    q = model.posterior(xt)

    def value_and_gradient(z, b):
        zt = Tensor(z, requires_grad=True)
        log_q = q.log_prob(zt).sum(axis=-1)
        log_joint = model.likelihood(zt).log_prob(xt).sum(axis=-1) + model.prior().log_prob(zt).sum(axis=-1)
        log_f = (1 - b) * log_q + b * log_joint
        return log_f.data, grad(log_f.sum(), zt)[0].data, (log_joint - log_q).data
    rng, eps = Generator(5), np.full((1, 1, 1), 0.1)
    for _ in range(10):
        z, _, accepted = ais._hmc(value_and_gradient, z, beta, eps, 5, rng, np)
    assert 0.5 < accepted.mean() < 1  # the moves moved
    assert abs(z.mean() - mean) < 4 * math.sqrt(var / n)
    assert abs(z.var() - var) < 4 * var * math.sqrt(2 / n)


def test_annealing_finds_a_narrow_posterior_that_importance_sampling_misses():
    """s = 0.05: the posterior's standard deviation is 0.02 and its mean up to 1.9 from q's, so importance sampling
    from q with 16 draws misses it by nats (over 10 seeds, −360, −22 and −5.9 on average); AIS with 200 temperatures
    and the same 16 chains came within 2.4 nats of each exact log p(x) over the same seeds (standard deviations 1.1,
    0.41 and 0.41). Here: within 3 nats, and closer than importance sampling on each image."""
    from minivae import objectives
    model, x, exact = Linear(0.05), Tensor(X), exact_log_px(0.05)
    annealed = ais.log_likelihood_ais(model, x, Generator(6), steps=200, chains=16, leapfrog=5).numpy()
    sampled = objectives.log_likelihood_is(model, x, Generator(6), k=16).numpy()
    assert np.all(np.abs(annealed - exact) < 3)
    assert np.all(np.abs(annealed - exact) < np.abs(sampled - exact))


def test_each_example_s_step_size_follows_its_own_chains_acceptance():
    """Wu et al.'s rule, example by example: ×1.02 above 0.65 of the chains' moves kept, ×0.98 at or below it."""
    accepted = np.array([[True, True, False], [True, False, False], [True, False, False]])  # 3 chains × 3 examples
    eps = np.array([[[0.1], [0.2], [0.4]]])
    np.testing.assert_allclose(ais.adapted(eps, accepted), [[[0.102], [0.196], [0.392]]], rtol=1e-15)
    for kept, factor in ((13, 0.98), (14, 1.02)):  # 13 of 20 is 0.65 exactly
        chains = np.arange(20)[:, None] < kept
        np.testing.assert_allclose(ais.adapted(eps[:, :1], chains), [[[0.1 * factor]]], rtol=1e-15)


def test_the_sigmoid_schedule_runs_from_0_to_1_slowly_at_both_ends():
    betas = ais.sigmoid_schedule(100)
    assert betas[0] == 0 and betas[-1] == 1 and np.all(np.diff(betas) > 0)
    np.testing.assert_allclose(betas + betas[::-1], 1, atol=1e-15)  # symmetric about t = T/2
    steps = np.diff(betas)
    assert steps[0] < steps[50] / 5 and steps[-1] < steps[50] / 5
    np.testing.assert_array_equal(ais.sigmoid_schedule(1), [0.0, 1.0])


def test_what_it_cannot_anneal_is_refused():
    x = Tensor(np.zeros((2, 6), np.float32))
    with pytest.raises(ValueError, match="starts from q\\(z\\|x\\) as a Normal .* this model's is OneHotCategorical"):
        ais.log_likelihood_ais(CategoricalVAE(x_dim=6, hidden=(4,), n_latent=2, n_categories=3, rng=Generator(0)), x,
                               Generator(0))
    for options, message in ((dict(steps=0), "steps must be an integer >= 1"), (dict(chains=2.5), "chains must be"),
                             (dict(step_size=0.0), "step_size must be > 0")):
        with pytest.raises(ValueError, match=message):
            ais.log_likelihood_ais(Linear(0.4), Tensor(X), Generator(0), **options)


def test_eval_prints_the_ais_estimate_and_refuses_discrete_latents(tmp_path, capsys):
    """`minivae eval --ais T`: the annealed estimate beside importance sampling's (within a few nats of it on a small
    model); a categorical checkpoint is refused in one line."""
    out = tmp_path / "g"
    assert run("train", "--model", "gaussian", "--z-dim", 2, "--epochs", 1, "--out", out, *SMALL) == 0
    capsys.readouterr()
    assert run("eval", out / "checkpoint.npz", "--limit", 20, "-k", 50, "--ais", 10, "--ais-chains", 4) == 0
    text = capsys.readouterr().out
    sampled = float(text.split("k=50")[1].split()[0])
    annealed = float(text.split("AIS T=10 C=4")[1].split()[0])
    assert abs(annealed - sampled) < 5
    cat = tmp_path / "c"
    assert run("train", "--model", "categorical", "--epochs", 1, "--out", cat, *SMALL) == 0
    capsys.readouterr()
    assert run("eval", cat / "checkpoint.npz", "--limit", 20, "--ais", 10) == 1
    assert "--ais anneals from q(z|x) by Hamiltonian Monte Carlo on a continuous z" in one_error_line(capsys)


def test_on_the_device_stand_in_the_chains_stay_on_the_device():
    """A Gaussian VAE's AIS estimate on "cuda" (the strict CuPy stand-in): the CPU's bit for bit, no copy to the host
    (the schedule is host numbers; the chains, momenta, tests and weights are device arrays)."""
    import minivae as mv
    from minivae.models import GaussianVAE
    from tests.strict_array import assert_device_run_is_the_cpus
    x = (np.random.default_rng(7).random((3, 10)) < 0.5).astype(np.float32)

    def run(device):
        model = GaussianVAE(x_dim=10, hidden=(6,), z_dim=2, rng=Generator(8), device=device)
        return [ais.log_likelihood_ais(model, mv.tensor(x, device=device), Generator(9), steps=4, chains=3, leapfrog=2)]
    assert_device_run_is_the_cpus(run)


def test_the_model_s_parameters_are_held_constant_and_their_flags_restored():
    """The chains differentiate in z alone; after the run each parameter's requires_grad is what it was (one frozen
    beforehand stays frozen, the others train again), also when the run fails part way, and no .grad is written."""
    from minivae.models import GaussianVAE
    model = GaussianVAE(x_dim=10, hidden=(6,), z_dim=2, rng=Generator(8))
    parameters = model.parameters()
    parameters[0].requires_grad = False
    flags = [p.requires_grad for p in parameters]
    x = Tensor((np.random.default_rng(7).random((3, 10)) < 0.5).astype(np.float32))
    ais.log_likelihood_ais(model, x, Generator(9), steps=3, chains=2, leapfrog=2)
    assert [p.requires_grad for p in parameters] == flags and all(p.grad is None for p in parameters)
    with pytest.raises(ValueError):
        ais.log_likelihood_ais(model, Tensor(np.zeros((2, 9), np.float32)), Generator(9), steps=3)  # x of the wrong size
    assert [p.requires_grad for p in parameters] == flags
