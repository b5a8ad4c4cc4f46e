"""BernoulliVAE, the VAE of N binary latents (q(z|x) = Π Bernoulli(σ(l_n)), p(z) = Bernoulli(½)^N, p(x|z) = Bernoulli):
its loss against −ELBO written out in NumPy, the REINFORCE gradient against the score-function formula, the exact
log-likelihood against a brute-force enumeration, seeds, checkpoints and --resume, the command line."""
import csv
import itertools
import math

import numpy as np
import pytest

import minivae as mv
from minivae import objectives as O
from minivae.models import BernoulliVAE, build
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import load_checkpoint, save_checkpoint, train
from tests.test_cli import one_error_line, run

X = (np.random.default_rng(0).random((5, 7)) < 0.4).astype(np.float64)


def tiny(estimator="reinforce", n_latent=3, baseline_hidden=0, seed=0, **kw):
    """A BernoulliVAE with a linear encoder and decoder (no hidden layer), in float64."""
    model = BernoulliVAE(x_dim=7, hidden=(), n_latent=n_latent, estimator=estimator, baseline_hidden=baseline_hidden,
                         rng=Generator(seed), **kw)
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    return model


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def log_bernoulli(x, logits):
    """Σ over the last axis of x·log σ(l) + (1 − x)·log(1 − σ(l)), written out."""
    return (x * np.log(sigmoid(logits)) + (1 - x) * np.log(1 - sigmoid(logits))).sum(axis=-1)


def linear(layer, h):
    return h @ layer.weight.data + layer.bias.data


def kl_half(logits):
    """Σ_n KL(Bernoulli(q_n) ‖ Bernoulli(½)) = Σ_n q log(2q) + (1 − q) log(2(1 − q))."""
    q = sigmoid(logits)
    return (q * np.log(2 * q) + (1 - q) * np.log(2 * (1 - q))).sum(axis=-1)


# ---- the loss ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("estimator", BernoulliVAE.ESTIMATORS)
def test_loss_is_the_negative_elbo_of_the_sample_written_out_in_numpy(estimator):
    """With the uniforms u the loss draws (the same seed): reinforce z = 1[u < σ(l)]; straight-through (and REBAR's b)
    z = 1[l + L > 0] and Gumbel-Softmax y = σ((l + L)/τ), L = log u − log(1 − u), τ = τ₀·e^(−r·t) at step t; the loss
    is mean(β·KL(q ‖ Bernoulli(½)) − log p(x|z))."""
    model, step, beta = tiny(estimator, tau0=1.5, tau_min=0.1, anneal_rate=0.1), 4, 0.7
    loss = model.loss(mv.tensor(X), Generator(5), step=step, beta=beta).item()
    logits = linear(model.encoder.layers[0], X)
    u = Generator(5).uniform(logits.shape, np.float64)
    noise = np.log(u) - np.log1p(-u)
    tau = 1.5 * math.exp(-0.1 * step)
    z = {"reinforce": (u < sigmoid(logits)).astype(np.float64),
         "straight_through": (logits + noise > 0).astype(np.float64),
         "rebar": (logits + noise > 0).astype(np.float64),  # b = H(z) of the same uniforms
         "gumbel_softmax": sigmoid((logits + noise) / tau)}[estimator]
    expected = (beta * kl_half(logits) - log_bernoulli(X, linear(model.decoder.layers[0], z))).mean()
    assert loss == pytest.approx(expected, rel=1e-12)


def test_straight_through_forward_is_exactly_binary_and_its_gradient_the_relaxed_one():
    """The decoder reads 0s and 1s (no value in between, not 1 − 1e-16), and the encoder still gets a gradient (the
    Binary Concrete's)."""
    model, seen = tiny("straight_through", n_latent=6), []
    likelihood = model.likelihood
    model.likelihood = lambda z: seen.append(z.data.copy()) or likelihood(z)
    x = mv.tensor(np.tile(X, (20, 1)))
    model.loss(x, Generator(2)).backward()
    z = seen[0]
    assert set(np.unique(z)) == {0.0, 1.0} and z.shape == (100, 6)
    assert np.abs(model.encoder.layers[0].weight.grad).max() > 0


@pytest.mark.parametrize("baseline_hidden", [0, 4])
def test_reinforce_encoder_gradient_is_the_score_function_formula(baseline_hidden):
    """∂loss/∂l = (1/B)[β·l·σ(l)(1 − σ(l)) − (log p(x|z) − c − b_ψ(x))·(z − σ(l))] (KL's gradient and the score
    ∇_l log Bernoulli(z; σ(l)) = z − σ(l)), c the moving average (set to −3 here), b_ψ(x) the NVIL network's output
    (tanh hidden layer); the encoder's weight gradient is xᵀ·∂loss/∂l, and ψ's output bias gets mean(b_ψ − (f − c))."""
    model, beta = tiny("reinforce", baseline_hidden=baseline_hidden), 0.6
    model.baseline = np.float64(-3.0)
    model.loss(mv.tensor(X), Generator(8), beta=beta).backward()
    logits = linear(model.encoder.layers[0], X)
    q = sigmoid(logits)
    z = (Generator(8).uniform(logits.shape, np.float64) < q).astype(np.float64)
    f = log_bernoulli(X, linear(model.decoder.layers[0], z))
    b = np.full(len(X), -3.0)
    if baseline_hidden:
        first, last = model.baseline_net.layers[0], model.baseline_net.layers[2]
        predicted = linear(last, np.tanh(linear(first, X)))[:, 0]
        np.testing.assert_allclose(last.bias.grad, [np.mean(predicted - (f + 3.0))], rtol=1e-10)
        b = b + predicted
    dl = (beta * logits * q * (1 - q) - (f - b)[:, None] * (z - q)) / len(X)
    np.testing.assert_allclose(model.encoder.layers[0].weight.grad, X.T @ dl, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(model.encoder.layers[0].bias.grad, dl.sum(axis=0), rtol=1e-10, atol=1e-14)
    assert float(model.baseline) == pytest.approx(0.9 * -3.0 + 0.1 * f.mean(), rel=1e-12)  # c ← d·c + (1 − d)·mean


# ---- the bounds ----------------------------------------------------------------------------------------------
def test_exact_log_likelihood_is_the_enumeration_and_bounds_the_elbo():
    """log p(x) = log Σ_{z ∈ {0,1}^4} 2⁻⁴ p(x|z) by itertools.product in NumPy; objectives.exact_log_likelihood gives
    it, the ELBO (E_q log p(x|z) − KL by the same enumeration) lies below by KL(q(z|x) ‖ p(z|x)) ≥ 0, objectives.elbo
    is its Monte Carlo estimate and the importance-sampled log p(x) (k = 4000) is within 4.5 standard errors of it."""
    model, n = tiny(n_latent=4), 4
    zs = np.array(list(itertools.product((0.0, 1.0), repeat=n)))  # (16, 4)
    log_lik = log_bernoulli(X[None], linear(model.decoder.layers[0], zs)[:, None])  # (16, B)
    log_px = np.logaddexp.reduce(log_lik - n * math.log(2), axis=0)
    q = sigmoid(linear(model.encoder.layers[0], X))  # (B, 4)
    log_q = (zs[:, None] * np.log(q) + (1 - zs[:, None]) * np.log(1 - q)).sum(axis=-1)  # (16, B)
    elbo = (np.exp(log_q) * log_lik).sum(axis=0) - kl_half(linear(model.encoder.layers[0], X))
    posterior = log_lik - n * math.log(2) - log_px  # log p(z|x)
    gap = (np.exp(log_q) * (log_q - posterior)).sum(axis=0)
    x = mv.tensor(X)
    with mv.no_grad():
        exact = O.exact_log_likelihood(model, x).data
        mc_elbo = O.elbo(model, x, Generator(1), k=4000).data
        is_ll = O.log_likelihood_is(model, x, Generator(2), k=4000).data
    np.testing.assert_allclose(exact, log_px, rtol=1e-12)
    assert np.all(gap > 0) and np.all(elbo < exact)
    np.testing.assert_allclose(exact - elbo, gap, rtol=1e-9)
    spread = np.sqrt((np.exp(log_q) * (log_lik - (np.exp(log_q) * log_lik).sum(axis=0)) ** 2).sum(axis=0))
    assert np.all(np.abs(mc_elbo - elbo) <= 4.5 * spread / math.sqrt(4000))  # the KL is analytic: only E_q log p(x|z) varies
    # the estimate's error, log of a mean of k weights w = p(x, z)/q(z|x): about sd(w)/(√k·p(x)), sd(w) by enumeration
    w = np.exp(log_lik - n * math.log(2) - log_q)
    sd = np.sqrt((np.exp(log_q) * w ** 2).sum(axis=0) - np.exp(2 * log_px)) / np.exp(log_px) / math.sqrt(4000)
    assert np.all(np.abs(is_ll - log_px) <= 4.5 * sd) and np.all(sd < 0.02)


# ---- seeds, checkpoints, resume ------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_model_and_training():
    def run(seed):
        model, rng = BernoulliVAE(x_dim=7, hidden=(5,), n_latent=3, rng=Generator(seed)), Generator(seed)
        opt = Adam(model.parameters(), lr=0.05)
        for t in range(3):
            loss = model.loss(mv.tensor(X.astype(np.float32)), rng, step=t)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.state_dict()
    a, b, c = run(1), run(1), run(2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_checkpoint_round_trip_keeps_kind_config_parameters_and_baseline(tmp_path):
    model = BernoulliVAE(x_dim=7, hidden=(5,), n_latent=3, estimator="reinforce", baseline_hidden=4, tau0=2.0,
                         baseline_decay=0.5, rng=Generator(0))
    model.loss(mv.tensor(X.astype(np.float32)), Generator(1))  # sets the moving average
    save_checkpoint(tmp_path / "c.npz", model, Adam(model.parameters()), Generator(0), epoch=1, step=1)
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    assert type(loaded) is BernoulliVAE and loaded.kind == "bernoulli" and loaded.config == model.config
    assert float(loaded.baseline) == float(model.baseline) and loaded.baseline_net is not None
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    rebuilt = build("bernoulli", model.config, Generator(0))
    assert rebuilt.config == model.config and rebuilt.temperature(0) == 2.0


_RNG = np.random.default_rng(1)
DATA = {"train": (_RNG.random((130, 16)) < 0.4).astype(np.float32), "valid": (_RNG.random((20, 16)) < 0.4).astype(np.float32)}


@pytest.mark.parametrize("estimator", ["straight_through", "reinforce"])
def test_resume_equals_an_uninterrupted_run(tmp_path, estimator):
    """3 epochs, or 1 then 2 resumed: every array of the checkpoint equal (the temperature annealed by the step count,
    the moving average reloaded)."""
    def model():
        return BernoulliVAE(x_dim=16, hidden=(8,), n_latent=4, estimator=estimator, anneal_rate=0.05,
                            baseline_hidden=3 if estimator == "reinforce" else 0, rng=Generator(1))
    args = dict(batch_size=50, lr=1e-2, seed=3, log=lambda line: None)
    train(model(), DATA, tmp_path / "full", epochs=3, **args)
    train(model(), DATA, tmp_path / "part", epochs=1, **args)
    train(model(), DATA, tmp_path / "part", epochs=3, resume=True, **args)
    (_, full), (_, part) = (load_checkpoint(tmp_path / name / "checkpoint.npz") for name in ("full", "part"))
    assert sorted(full) == sorted(part) and ("meta/baseline" in full) == (estimator == "reinforce")
    for key in full:
        if key != "meta/metrics":
            np.testing.assert_array_equal(full[key], part[key], err_msg=key)
    rows = [[list(csv.DictReader(open(tmp_path / name / "metrics.csv")))] for name in ("full", "part")]
    assert [r["temperature"] for r in rows[0][0]] == [r["temperature"] for r in rows[1][0]]


# ---- arguments and the command line --------------------------------------------------------------------------
@pytest.mark.parametrize("change,error,message", [
    (dict(n_latent=0), ValueError, "n_latent must be >= 1, got 0"),
    (dict(n_latent=2.5), TypeError, "n_latent must be an integer"),
    (dict(estimator="pathwise"), ValueError, "estimator must be one of"),
    (dict(estimator="gumbel_softmax", baseline_hidden=3), ValueError, "for the reinforce estimator"),
    (dict(tau_min=0.0), ValueError, "temperature"),
    (dict(baseline_decay=1.0), ValueError, r"baseline_decay must be .* in \[0, 1\)"),
])
def test_constructor_refuses_bad_arguments_naming_them(change, error, message):
    with pytest.raises(error, match=message):
        BernoulliVAE(**{**dict(x_dim=4, hidden=(3,), n_latent=2), **change}, rng=Generator(0))


def test_cli_trains_evaluates_and_samples_a_bernoulli_model(tmp_path, capsys):
    out = tmp_path / "run"
    small = ["--limit", 200, "--hidden", 16, "--batch-size", 50, "--n-latent", 6]
    assert run("train", "--model", "bernoulli", "--estimator", "straight_through", "--epochs", 2, "--out", out,
               *small) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert type(model) is BernoulliVAE and model.n_latent == 6 and model.estimator == "straight_through"
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert float(rows[1]["valid_elbo"]) > float(rows[0]["valid_elbo"])
    capsys.readouterr()
    assert run("eval", out / "checkpoint.npz", "--limit", 50, "-k", 100) == 0
    text = capsys.readouterr().out
    assert float(text.split("k=100")[1].split()[0]) > float(text.split("ELBO (1 sample)")[1].split()[0])
    assert run("sample", out / "checkpoint.npz", "--n", 4, "--out", tmp_path / "s.png") == 0
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_default_latent_sizes():
    """--n-latent unset: 50 binary latents for bernoulli, 20 (of 10 categories) for categorical, as before (and 16
    code vectors for vq)."""
    from minivae.cli import N_LATENT, build_parser
    assert N_LATENT == {"categorical": 20, "bernoulli": 50, "vq": 16} and BernoulliVAE(rng=Generator(0)).n_latent == 50
    args = build_parser().parse_args(["train", "--model", "bernoulli"])
    assert args.n_latent is None and args.n_categories is None


@pytest.mark.parametrize("args,message", [
    (["--model", "bernoulli", "--estimator", "pathwise"], "a bernoulli latent has no pathwise gradient"),
    (["--model", "bernoulli", "--baseline-hidden", 8], "--baseline-hidden is the input-dependent baseline of the reinforce"),
    (["--model", "bernoulli", "--n-categories", 4], "--n-categories is the categorical model's"),
    (["--model", "gaussian", "--n-latent", 4], "the gaussian model's size is --z-dim"),
])
def test_cli_refuses_wrong_combinations_in_one_line_writing_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    small = ["--limit", 50, "--batch-size", 50, "--hidden", 4, "--epochs", 1]  # (a run that is not refused ends soon)
    assert run("train", *args, *small, "--out", out) == 1
    assert message in one_error_line(capsys) and not out.exists()
