"""minivae.diagnostics against what each measure must give on posteriors built by hand: a collapsed one (everything
0), posteriors that do not overlap (I = log N), a linear Gaussian encoder (I = ½ log(1 + a²s²/σ²), its closed form),
the KL per latent against the Gaussian and categorical KLs written out in NumPy, the activity against numpy.cov."""

import math

import numpy as np
import pytest

from minivae import diagnostics, ops
from minivae.distributions import MixtureSameFamily, Normal, OneHotCategorical
from minivae.engine import Tensor
from minivae.models import CategoricalVAE, GaussianVAE
from minivae.random import Generator
from tests.test_cli import SMALL, one_error_line, run


class Encoder:
    """A model whose q(z|x) is ``posterior_of(x)`` (x a tensor of rows), with the standard Gaussian prior of ``z``
    dimensions, or ``prior``."""

    def __init__(self, posterior_of, z=1, prior=None):
        self.posterior, self.z = posterior_of, z
        self._prior = prior

    def parameters(self):
        return [Tensor(np.zeros(1, np.float64))]

    def prior(self):
        return self._prior or Normal(Tensor(np.zeros(self.z)), Tensor(np.ones(self.z)))


def gaussian(loc_of, scale=1.0, z=1):
    return Encoder(lambda x: Normal(loc_of(x), loc_of(x) * 0.0 + scale), z)


def column(values):
    return np.asarray(values, np.float64).reshape(-1, 1)


def test_a_collapsed_posterior_carries_nothing():
    """q(z|x) = p(z) for every x: every measure is 0 (a missing −log N would give log N, a KL not of q and p a
    non-zero value, the activity a variance of something other than the posterior's mean)."""
    model = gaussian(lambda x: x * 0.0, z=3)
    x = np.random.default_rng(0).normal(size=(40, 3))
    assert np.array_equal(diagnostics.kl_per_latent(model, x), np.zeros(3))
    count, activity = diagnostics.active_units(model, x)
    assert count == 0 and np.array_equal(activity, np.zeros(3))
    assert abs(diagnostics.mutual_information(model, x, Generator(0), batch_size=7)) < 1e-12


@pytest.mark.parametrize("batch_size", [50, 8, 1])
def test_posteriors_that_do_not_overlap_give_log_n(batch_size):
    """Means 100 standard deviations apart: q(z_n) = q(z_n|x_n)/N, so Î = log N exactly, however the inputs are
    batched (the own term and the aggregate must pair each draw with its own input)."""
    x = column(np.arange(50) * 100.0)
    info = diagnostics.mutual_information(gaussian(lambda x: x), x, Generator(1), batch_size=batch_size)
    assert info == pytest.approx(math.log(50), abs=1e-12)


def test_the_information_of_a_linear_gaussian_encoder_is_its_closed_form():
    """x ~ N(0, s²), q(z|x) = N(a·x, σ²): z = a·x + σε is Gaussian and I(x; z) = ½ log(1 + a²s²/σ²) = ½ log 10 here.
    Over N = 2000 inputs the estimator's standard deviation is about 0.022 and its bias (the aggregate of N
    Gaussians in place of q(z)) under 0.006 (both measured over 20 seeds of inputs and draws): 0.09 is four standard
    deviations and the bias. A log N missing or doubled, or a draw paired with another input's density, moves it by
    more."""
    a, s, sigma = 1.5, 2.0, 1.0
    x = column(np.random.default_rng(2).normal(0, s, 2000))
    info = diagnostics.mutual_information(gaussian(lambda x: a * x, sigma), x, Generator(3), batch_size=1000)
    assert info == pytest.approx(0.5 * math.log(1 + a * a * s * s / sigma ** 2), abs=0.09)


def test_the_kl_of_a_code_that_copies_its_input_splits_into_its_closed_forms():
    """x ~ N(0, s²), q(z|x) = N((x, x), σ²I): z is Gaussian, Cov z = s²·11ᵀ + σ²I, each unit's marginal N(0, v), v = s² +
    σ²; so I = ½ log(1 + 2s²/σ²), TC = ½ log(v²/(σ²(σ² + 2s²))) (the two units' shared x), DW = 2·½(v − 1 − log v).
    Over N = 2000 inputs, 20 seeds measured standard deviations of 0.012, 0.017 and 0.062 and biases of at most 0.007:
    the tolerances are four standard deviations and the bias. A unit's marginal summed over the wrong axis, the joint
    taken for the product of marginals, or the prior's log-density left out, each moves one part by far more."""
    s, sigma = 1.5, 1.0
    v = s * s + sigma * sigma
    x = column(np.random.default_rng(12).normal(0, s, 2000))
    model = Encoder(lambda x: Normal(ops.concatenate([x, x], axis=1), ops.concatenate([x, x], axis=1) * 0.0 + sigma), z=2)
    parts = diagnostics.kl_decomposition(model, x, Generator(13), batch_size=1000)
    assert parts["mutual_information"] == pytest.approx(0.5 * math.log(1 + 2 * s * s / sigma ** 2), abs=0.055)
    assert parts["total_correlation"] == pytest.approx(0.5 * math.log(v * v / (sigma ** 2 * (sigma ** 2 + 2 * s * s))), abs=0.075)
    assert parts["dimension_wise_kl"] == pytest.approx(v - 1 - math.log(v), abs=0.26)


def test_the_information_of_categories_picked_by_the_input_is_log_k():
    """One categorical variable of K = 12 categories, input n putting all its mass on category n (logits ±1e4): each
    draw is its own input's category, q(z_n) = 1/K, so Î = log K; the KL per latent is Σ_k q_k log(q_k K) = log K too."""
    k = 12
    x = np.eye(k) * 2e4 - 1e4  # the logits, one input a row
    model = Encoder(lambda x: OneHotCategorical(logits=ops.reshape(x, (x.shape[0], 1, k))),
                    prior=OneHotCategorical(logits=Tensor(np.zeros((1, k)))))
    assert diagnostics.mutual_information(model, x, Generator(4), batch_size=5) == pytest.approx(math.log(k), abs=1e-9)
    assert diagnostics.kl_per_latent(model, x, batch_size=5) == pytest.approx([math.log(k)], abs=1e-9)


def test_activity_is_the_variance_of_the_posterior_mean_over_the_inputs():
    """A_u = numpy.cov of E_q[z_u|x] over the inputs (ddof 1), per unit: units whose mean moves with x are active, a
    unit whose mean barely moves is not; for a categorical variable, the trace of its probabilities' covariance."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 4))
    scales = np.array([1.0, 0.05, 0.0, 3.0])
    count, activity = diagnostics.active_units(gaussian(lambda x: x * Tensor(scales), z=4), x, batch_size=64)
    expected = [float(np.cov(x[:, u] * scales[u])) for u in range(4)]
    assert activity == pytest.approx(expected, rel=1e-12)
    assert count == 2  # 0.05²·Var x ≈ 0.0025 is under Burda et al.'s 0.01
    logits = rng.normal(size=(200, 3, 5))
    model = Encoder(lambda x: OneHotCategorical(logits=ops.reshape(x, (x.shape[0], 3, 5))))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    _, activity = diagnostics.active_units(model, logits.reshape(200, 15), batch_size=64)
    assert activity == pytest.approx([float(np.trace(np.cov(probs[:, v].T))) for v in range(3)], rel=1e-10)


def test_the_kl_per_latent_of_a_gaussian_vae_is_its_closed_form_per_dimension():
    """½(μ² + σ² − 1 − log σ²) per dimension, averaged over the inputs, from the encoder's outputs in NumPy; batching
    does not change it."""
    model = GaussianVAE(x_dim=6, hidden=(8,), z_dim=3, rng=Generator(6))
    x = (np.random.default_rng(7).random((30, 6)) < 0.5).astype(np.float32)
    loc, log_var = (t.numpy().astype(np.float64) for t in model._encode(Tensor(x)))
    expected = (0.5 * (loc ** 2 + np.exp(log_var) - 1 - log_var)).mean(0)
    assert diagnostics.kl_per_latent(model, x, batch_size=7) == pytest.approx(expected, rel=1e-5)
    assert diagnostics.kl_per_latent(model, x, batch_size=30) == pytest.approx(expected, rel=1e-5)


def test_the_kl_per_latent_of_a_categorical_vae_is_its_sum_over_categories():
    model = CategoricalVAE(x_dim=6, hidden=(8,), n_latent=2, n_categories=4, rng=Generator(8))
    x = (np.random.default_rng(9).random((20, 6)) < 0.5).astype(np.float32)
    logits = model._logits(Tensor(x)).numpy().astype(np.float64)
    log_q = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = (np.exp(log_q) * (log_q + math.log(4))).sum(-1).mean(0)
    assert diagnostics.kl_per_latent(model, x, batch_size=6) == pytest.approx(expected, rel=1e-5)


def test_the_information_is_the_same_in_blocks_of_any_size(monkeypatch):
    """The pairs taken a few draws at a time (PAIRS small) give the Î of one block: each draw's own term stays
    lined up with its aggregate."""
    x = column(np.random.default_rng(10).normal(0, 2, 60))
    model = gaussian(lambda x: x, 0.7)
    whole = diagnostics.mutual_information(model, x, Generator(11), batch_size=60)
    monkeypatch.setattr(diagnostics, "PAIRS", 3 * 60)
    assert diagnostics.mutual_information(model, x, Generator(11), batch_size=60) == pytest.approx(whole, rel=1e-12)


def test_what_cannot_be_split_is_refused_by_name():
    x = np.zeros((4, 6), np.float32)
    mog = GaussianVAE(x_dim=6, hidden=(8,), z_dim=2, prior="mog", prior_components=3, rng=Generator(0))
    with pytest.raises(ValueError, match="kl_per_latent: .* this model's prior is MixtureSameFamily"):
        diagnostics.kl_per_latent(mog, x)
    assert isinstance(mog.prior(), MixtureSameFamily)
    flow = GaussianVAE(x_dim=6, hidden=(8,), z_dim=2, flow="planar", flow_length=1, rng=Generator(0))
    with pytest.raises(ValueError, match="kl_decomposition: .* this model.s is TransformedDistribution"):
        diagnostics.mutual_information(flow, x, Generator(0))
    assert diagnostics.kl_decomposition(mog, x, Generator(0))["dimension_wise_kl"] is None
    with pytest.raises(ValueError, match="at least 2"):
        diagnostics.active_units(mog, x[:1])


def test_eval_diagnostics_prints_the_split_kl(tmp_path, capsys):
    """`minivae eval --diagnostics`: the KL per unit, largest first, its sum the averaged KL printed; I within (0, log N];
    the active units out of the latent size; refused, one line, for a checkpoint whose code it does not measure."""
    out = tmp_path / "run"
    assert run("train", "--model", "gaussian", "--epochs", 1, "--z-dim", 3, "--out", out, *SMALL) == 0
    capsys.readouterr()
    assert run("eval", out / "checkpoint.npz", "--limit", 60, "-k", 2, "--diagnostics") == 0
    text = capsys.readouterr().out
    number = lambda label: float(text.split(label)[1].split()[0])  # noqa: E731
    units = [float(part.split(": ")[1]) for part in text.split("largest first: ")[1].splitlines()[0].split(", ")]
    kl, info = number("KL(q(z|x) ‖ p(z)), averaged"), number("I_q(x; z), the code's information")
    assert len(units) == 3 and units == sorted(units, reverse=True) and sum(units) == pytest.approx(kl, abs=2e-3)
    assert 0 < info <= math.log(60) and number("marginals") >= 0 and abs(number("total correlation of q(z)")) < kl
    assert "of 3" in text.split("active units")[1]
    vq = tmp_path / "vq"
    assert run("train", "--model", "vq", "--epochs", 1, "--out", vq, *SMALL) == 0
    capsys.readouterr()
    assert run("eval", vq / "checkpoint.npz", "--limit", 20, "--diagnostics") == 1
    assert "--diagnostics measures the gaussian, categorical and bernoulli models' latent codes, not the vq" in \
        one_error_line(capsys)
