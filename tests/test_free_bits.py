"""Free bits (Kingma et al. 2016, the IAF paper): the training objective E[log p(x|z)] − β·Σ_j max(λ, KL̄_j), each
latent dimension's (a categorical variable's) KL averaged over the batch and clamped below at λ.

objectives.free_bits_kl against hand-computed numbers and its gradient; the Gaussian VAE's loss against the ELBO written
out in NumPy with the closed-form KL clamped; no gradient from the KL term in a dimension under λ (the loss's gradient
is the β = 0 one's there, and the β = 0 one's plus β·∂KL̄_j elsewhere); λ = 0 the ordinary loss bit for bit; the
categorical and Bernoulli VAEs' KL term clamped per latent variable; the reported bounds (objectives.elbo, the run's
validation ELBO) the true ones; bad λ refused; the config and the CLI."""
import csv

import numpy as np
import pytest

import minivae as mv
from minivae import objectives as O
from minivae._backend import use_numba
from minivae.models import BernoulliVAE, CategoricalVAE, GaussianVAE, build
from minivae.objectives import free_bits_kl
from minivae.random import Generator
from minivae.training import derived_seed, evaluate, load_checkpoint
from tests.test_cli import one_error_line, run
from tests.test_multi_sample import float64, log_bernoulli, mlp
from tests.test_plan import X_DIM, assert_same_run, eager_run, plan_run

X = (np.random.default_rng(0).random((4, 6)) < 0.4).astype(np.float64)
Z = 3


def test_free_bits_kl_by_hand():
    """KL (2 examples, 3 dimensions) of batch means 0.15, 1.5, 0.4: at λ = 0.5 each row becomes 0.5, 1.5, 0.5, whose
    mean over the batch summed is 2.5 = 0.5 + 1.5 + 0.5; that total's gradient is 0 in the clamped dimensions and
    1/B = ½ an entry in the kept one."""
    kl = mv.tensor(np.array([[0.1, 2.0, 0.3], [0.2, 1.0, 0.5]]), requires_grad=True)
    out = free_bits_kl(kl, 0.5)
    np.testing.assert_array_equal(out.numpy(), [[0.5, 1.5, 0.5], [0.5, 1.5, 0.5]])
    total = out.mean(axis=0).sum()
    assert total.item() == pytest.approx(2.5, rel=1e-15)
    total.backward()
    np.testing.assert_array_equal(kl.grad, [[0.0, 0.5, 0.0], [0.0, 0.5, 0.0]])
    # K copies of the batch: the mean over every axis but the last (2·2 entries a dimension)
    kl3 = np.array([[[0.1, 3.0]], [[0.5, 1.0]]]) * np.ones((2, 2, 2))
    np.testing.assert_allclose(free_bits_kl(mv.tensor(kl3), 0.4).numpy(), np.broadcast_to([0.4, 2.0], (2, 2, 2)),
                               rtol=1e-15)


def gaussian(**kw):
    model = float64(GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, activation="tanh", rng=Generator(0), **kw))
    last = model.encoder.layers[-1]
    last.bias.data[:Z] = [0.05, 1.5, -0.02]  # μ near 0 in dimensions 0 and 2: their KL under λ = 0.4, dimension 1's above
    last.bias.data[Z:] = [0.0, -1.0, 0.1]
    return model


def numpy_parts(model, x, eps):
    """(log p(x|z) an example, KL_bj) at z = μ + σ·ε, the networks written out, KL = ½(μ² + σ² − 1 − log σ²)."""
    h = mlp(model.encoder.layers, x)
    mu, log_var = h[..., :Z], h[..., Z:]
    z = mu + np.exp(0.5 * log_var) * eps
    return log_bernoulli(x, mlp(model.decoder.layers, z)), 0.5 * (mu * mu + np.exp(log_var) - 1 - log_var)


@pytest.mark.parametrize("samples,beta", [(1, 1.0), (1, 0.3), (2, 2.5)])
def test_gaussian_loss_is_the_clamped_elbo_written_out(samples, beta):
    """−mean_b log p(x|z) + β·Σ_j max(λ, mean_b KL_bj) (b over the K copies too), some dimensions clamped, some not."""
    model = gaussian(free_bits=0.4, samples=samples)
    loss = model.loss(mv.tensor(X), Generator(5), beta=beta).item()
    eps = Generator(5).normal(((samples,) if samples > 1 else ()) + (4, Z), np.float64)
    ll, kl = numpy_parts(model, X, eps)
    means = kl.reshape(-1, Z).mean(axis=0)
    assert (means < 0.4).any() and (means > 0.4).any(), means
    assert loss == pytest.approx(-ll.mean() + beta * np.maximum(0.4, means).sum(), rel=1e-13)


def test_no_gradient_reaches_a_dimension_under_lambda_from_the_kl_term():
    """The gradient in the encoder's output biases (of μ_j and log σ_j²): the β = 0 loss's (the same draws) where KL̄_j < λ,
    that plus β·mean_b ∂KL_bj (μ_bj for μ, ½(σ_bj² − 1) for log σ²) where it is above."""
    beta, x = 0.7, mv.tensor(X)
    clamped = gaussian(free_bits=0.4)
    clamped.loss(x, Generator(5), beta=beta).backward()
    free = gaussian()
    free.loss(x, Generator(5), beta=0.0).backward()
    got, plain = clamped.encoder.layers[-1].bias.grad, free.encoder.layers[-1].bias.grad
    h = mlp(free.encoder.layers, X)
    mu, var = h[:, :Z], np.exp(h[:, Z:])
    _, kl = numpy_parts(free, X, Generator(5).normal((4, Z), np.float64))
    under = kl.mean(axis=0) < 0.4
    assert under.tolist() == [True, False, True]
    kl_grad = np.concatenate([mu.mean(axis=0), 0.5 * (var - 1).mean(axis=0)])
    want = plain + beta * kl_grad * np.tile(~under, 2)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(got[[0, 2, 3, 5]], plain[[0, 2, 3, 5]])  # bit for bit: nothing added there


MODELS = {
    "gaussian": lambda **kw: GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, rng=Generator(0), **kw),
    "gaussian-samples": lambda **kw: GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, samples=3, rng=Generator(0), **kw),
    "categorical": lambda **kw: CategoricalVAE(6, (5,), 3, 4, rng=Generator(0), **kw),
    "categorical-reinforce": lambda **kw: CategoricalVAE(6, (5,), 3, 4, estimator="reinforce", rng=Generator(0), **kw),
    "categorical-rebar": lambda **kw: CategoricalVAE(6, (5,), 3, 4, estimator="rebar", rng=Generator(0), **kw),
    "bernoulli": lambda **kw: BernoulliVAE(6, (5,), 4, rng=Generator(0), **kw),
    "bernoulli-reinforce": lambda **kw: BernoulliVAE(6, (5,), 4, estimator="reinforce", rng=Generator(0), **kw),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_lambda_zero_is_the_ordinary_loss_bit_for_bit(name):
    """free_bits=0 (given, or 0.0): the loss and every gradient of the model without the option, and its config."""
    x = mv.tensor(X.astype(np.float32))
    results = []
    for kw in ({}, {"free_bits": 0}, {"free_bits": 0.0}):
        model = MODELS[name](**kw)
        loss = model.loss(x, Generator(5), beta=0.6)
        loss.backward()
        results.append((model.config, loss.numpy(), [p.grad for p in model.parameters()]))
    for config, loss, grads in results[1:]:
        assert config == results[0][0] and "free_bits" not in config
        np.testing.assert_array_equal(loss, results[0][1])
        for g, g0 in zip(grads, results[0][2]):
            np.testing.assert_array_equal(g, g0)


def numpy_discrete_kl(model, x):
    """KL per latent variable to the uniform prior, from the encoder written out (relu MLP): categorical
    Σ_c q_c log q_c + log C; Bernoulli q log 2q + (1 − q) log 2(1 − q)."""
    h = x
    linears = [layer for layer in model.encoder.layers if hasattr(layer, "weight")]
    for i, layer in enumerate(linears):
        h = h @ layer.weight.data + layer.bias.data
        h = np.maximum(h, 0) if i < len(linears) - 1 else h
    if isinstance(model, CategoricalVAE):
        logits = h.reshape(h.shape[:-1] + (model.n_latent, model.n_categories))
        log_q = logits - np.logaddexp.reduce(logits, axis=-1, keepdims=True)
        return (np.exp(log_q) * log_q).sum(axis=-1) + np.log(model.n_categories)
    q = 1 / (1 + np.exp(-h))
    return q * np.log(2 * q) + (1 - q) * np.log(2 * (1 - q))


@pytest.mark.parametrize("name", [n for n in MODELS if not n.startswith("gaussian")])
def test_discrete_models_clamp_each_latent_variable_s_kl(name):
    """loss(β) with free bits λ = loss(β = 0) (the same draws) + β·Σ_n max(λ, mean_b KL_bn), the KL of each categorical
    (or binary) latent to the uniform prior written out; λ set between the variables' KLs."""
    x = mv.tensor(X)
    means = numpy_discrete_kl(MODELS[name](), X).mean(axis=0)
    lam = float(np.median(means))
    assert (means < lam).any() and (means > lam).any(), means
    reconstruction = float64(MODELS[name]()).loss(x, Generator(5), beta=0.0).item()
    loss = float64(MODELS[name](free_bits=lam)).loss(x, Generator(5), beta=0.8).item()
    assert loss == pytest.approx(reconstruction + 0.8 * np.maximum(lam, means).sum(), rel=1e-12)


def test_the_reported_bounds_stay_the_true_ones(tmp_path):
    """objectives.elbo and iwae_bound of a free-bits model are those of the same weights without it, bit for bit; its
    training loss is above the −ELBO of the same draws (the clamp only adds KL); and a run's validation ELBO is
    evaluate's, the true bound, of the model it saved."""
    x = mv.tensor(X)
    clamped, free = gaussian(free_bits=0.4), gaussian()
    for bound in (lambda m: O.elbo(m, x, Generator(3)), lambda m: O.iwae_bound(m, x, Generator(3), k=4)):
        np.testing.assert_array_equal(bound(clamped).numpy(), bound(free).numpy())
    assert clamped.loss(x, Generator(5)).item() > free.loss(x, Generator(5)).item() + 0.1
    out = tmp_path / "run"
    assert run("train", "--model", "gaussian", "--free-bits", 0.5, "--epochs", 2, "--out", out, "--limit", 100,
               "--hidden", 16, "--batch-size", 50, "--z-dim", 2, "--seed", 3) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.free_bits == 0.5 and model.config["free_bits"] == 0.5
    from minivae.data import load_splits
    valid = load_splits("default").limit(100)["valid"]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert rows[-1]["valid_elbo"] == f"{evaluate(model, valid, derived_seed(3, 1)):.4f}"


def test_config_records_lambda_and_a_checkpoint_rebuilds_it():
    model = GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, free_bits=0.25, rng=Generator(0))
    assert model.config["free_bits"] == 0.25
    assert build("gaussian", model.config, rng=Generator(0)).free_bits == 0.25
    cat = CategoricalVAE(6, (5,), 3, 4, free_bits=1, rng=Generator(0))
    assert cat.config["free_bits"] == 1.0 and type(cat.config["free_bits"]) is float
    assert build("categorical", cat.config, rng=Generator(0)).free_bits == 1.0


@pytest.mark.parametrize("kw,error,message", [
    (dict(free_bits=-0.1), ValueError, r"free_bits must be a finite number >= 0 \(nats a latent dimension; 0: none\), got -0.1"),
    (dict(free_bits=float("nan")), ValueError, "free_bits must be a finite number >= 0"),
    (dict(free_bits=float("inf")), ValueError, "free_bits must be a finite number >= 0"),
    (dict(free_bits=True), TypeError, "free_bits must be a real number, got True"),
    (dict(free_bits="1"), TypeError, "free_bits must be a real number"),
    (dict(free_bits=0.5, objective="iwae", samples=2), ValueError, "objective='iwae' has no KL term to clamp"),
    (dict(free_bits=0.5, prior="mog"), ValueError, "the mog prior's KL is sampled, one number an example"),
    (dict(free_bits=0.5, prior="vamp"), ValueError, "the vamp prior's KL is sampled"),
    (dict(free_bits=0.5, flow="planar"), ValueError, "a flow posterior's KL is sampled"),
])
def test_bad_lambda_is_refused_naming_it(kw, error, message):
    with pytest.raises(error, match=message):
        GaussianVAE(x_dim=6, hidden=(5,), z_dim=Z, rng=Generator(0), **kw)


def test_discrete_models_refuse_bad_lambda_and_vimco():
    with pytest.raises(ValueError, match="free_bits must be a finite number >= 0"):
        BernoulliVAE(6, (5,), 4, free_bits=-1, rng=Generator(0))
    with pytest.raises(ValueError, match="objective='iwae' has no KL term to clamp"):
        CategoricalVAE(6, (5,), 3, 4, estimator="reinforce", objective="iwae", samples=3, free_bits=0.1, rng=Generator(0))


@pytest.mark.parametrize("flags,code,message", [
    (["--free-bits", "-1"], 1, "--free-bits is λ, the nats a latent dimension's KL is clamped below at: a number >= 0"),
    (["--free-bits", "nan"], 2, "argument --free-bits: must be a finite number, got nan"),
    (["--free-bits", "0.5", "--prior", "mog"], 1, "free_bits clamps the KL of each latent dimension, and the mog prior's"),
])
def test_cli_refuses_bad_free_bits_in_one_line_writing_nothing(tmp_path, capsys, flags, code, message):
    out = tmp_path / "run"
    args = ("train", "--model", "gaussian", *flags, "--out", out, "--limit", 100)
    if code == 2:
        with pytest.raises(SystemExit) as e:
            run(*args)
        assert e.value.code == 2
    else:
        assert run(*args) == 1
    assert message in one_error_line(capsys)
    assert not out.exists()


PLAN_MODELS = {
    "gaussian": lambda: GaussianVAE(X_DIM, (10,), 3, free_bits=0.3, rng=Generator(0)),
    "categorical": lambda: CategoricalVAE(X_DIM, (10,), 3, 4, anneal_rate=0.2, free_bits=0.2, rng=Generator(0)),
}


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("name", list(PLAN_MODELS))
def test_replayed_steps_equal_eager_steps_bit_for_bit(name, numba):
    """tests/test_plan.py's check (4 steps, 1 recorded and 3 replayed, β changing each step) with free bits."""
    with use_numba(numba):
        assert_same_run(eager_run(PLAN_MODELS[name]), plan_run(PLAN_MODELS[name]))
