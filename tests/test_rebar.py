"""REBAR (estimators.rebar): the conditional sampler's law, unbiasedness (and planted biased variants caught),
η = 0 as REINFORCE, lower variance, extreme numbers, the strict device, determinism and refusals."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import estimators as E
from minivae._backend import use_cuda_kernels, use_numba
from minivae.distributions import Bernoulli, Independent, Normal, OneHotCategorical
from minivae.random import Generator
from tests.distributions.gof import KS_999, assert_follows
from tests.strict_array import describe, emulating, record


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---- the conditional sampler --------------------------------------------------------------------------------
@pytest.mark.parametrize("l", [0.7, -1.3])
def test_bernoulli_z_tilde_follows_the_logistic_truncated_at_zero(l):
    """z ~ Logistic(l, 1) (CDF F(t) = σ(t − l)); given b = 1, z̃ has the CDF (F(t) − F(0))/(1 − F(0)) on (0, ∞), given
    b = 0, F(t)/F(0) on (−∞, 0): the law of z conditioned on H(z) = b, written out. H(z̃) = b for every draw."""
    b, z, zt = (t.numpy() for t in E.rebar_sample(Bernoulli(logits=mv.tensor(np.float64(l))), (6000,), Generator(5)))
    f0 = _sigmoid(-l)
    assert_follows(z, lambda t: _sigmoid(t - l), "z")
    np.testing.assert_array_equal(b, (z > 0).astype(np.float64))
    np.testing.assert_array_equal(zt > 0, b == 1)
    assert_follows(zt[b == 1], lambda t: (_sigmoid(t - l) - f0) / (1 - f0), "z̃ | b = 1")
    assert_follows(zt[b == 0], lambda t: _sigmoid(t - l) / f0, "z̃ | b = 0")
    assert_follows(zt, lambda t: _sigmoid(t - l), "z̃ over b")  # b ~ Bernoulli(σ(l)) as z's sign: z̃ is z's law


def _ks_two_sample(a, b):
    """√(nm/(n + m))·sup |F_a − F_b|: below KS_999 for two samples of one law but once in about 1000."""
    x = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), x, side="right") / len(a)
    fb = np.searchsorted(np.sort(b), x, side="right") / len(b)
    return math.sqrt(len(a) * len(b) / (len(a) + len(b))) * np.abs(fa - fb).max()


def test_categorical_z_tilde_has_the_law_of_z_given_its_argmax():
    """z̃ given b against z's own draws that have argmax b (rejection, an independent stream), coordinate by coordinate
    (two-sample KS); z̃_b ~ Gumbel(0) whatever b (the max of Gumbels of locations log p_k is Gumbel(log Σ p)); argmax z̃ = b."""
    logits = np.array([0.4, -0.5, 1.1])
    log_p = logits - np.log(np.exp(logits).sum())
    b, _, zt = (t.numpy() for t in E.rebar_sample(OneHotCategorical(logits=mv.tensor(logits)), (6000,), Generator(6)))
    k = b.argmax(-1)
    np.testing.assert_array_equal(zt.argmax(-1), k)
    z = log_p + np.random.default_rng(7).gumbel(size=(20000, 3))  # rejection: z given its argmax
    for cat in range(3):
        assert_follows(zt[k == cat, cat], lambda t: np.exp(-np.exp(-t)), f"z̃_b, b = {cat}")
        for i in range(3):
            d = _ks_two_sample(zt[k == cat, i], z[z.argmax(-1) == cat, i])
            assert d < KS_999, (cat, i, d)


# ---- unbiasedness, and biased variants that must fail ------------------------------------------------------
T2 = np.array([0.45, 0.3])
C3 = np.array([1.0, -2.0, 0.5])
PROBLEMS = {  # f nonlinear in z, so that the relaxation's f(σ_λ(z)) differs from f(b)
    "bernoulli-1": (Bernoulli, np.array([0.3]), lambda z: (z[..., 0] - 0.45) ** 2 + 0.5 * z[..., 0] ** 3),
    "bernoulli-2": (Bernoulli, np.array([0.3, -0.8]), lambda z: ((z - T2) ** 2).sum(-1) + 0.7 * z[..., 0] * z[..., 1]),
    "categorical-3": (OneHotCategorical, np.array([0.5, -0.3, 1.0]), lambda z: (z * C3).sum(-1) ** 2),
}
DRAWS = 200_000


def _exact_gradient(name):
    dist, l0, f = PROBLEMS[name]
    th = mv.tensor(l0, requires_grad=True)
    E.exact(f, dist(logits=th)).backward()
    return th.grad


def _rebar_gradients(name, draws=DRAWS, seed=1, **kwargs):
    dist, l0, f = PROBLEMS[name]
    th = mv.tensor(np.tile(l0, (draws, 1)), requires_grad=True)
    E.rebar(f, dist(logits=th), rng=Generator(seed), **kwargs).sum().backward()
    return th.grad


def _bias_in_standard_errors(name, **kwargs):
    g = _rebar_gradients(name, **kwargs)
    return np.abs(g.mean(0) - _exact_gradient(name)) / (g.std(0, ddof=1) / math.sqrt(len(g)))


def test_exact_gradients_of_the_bernoulli_problem_against_a_formula():
    """The reference itself, by hand for N = 1: ∂/∂l Σ_b q(b) f(b) = σ(l)σ(−l)(f(1) − f(0))."""
    f = PROBLEMS["bernoulli-1"][2]
    l = 0.3
    expected = _sigmoid(l) * _sigmoid(-l) * (f(np.array([1.0])) - f(np.array([0.0])))
    np.testing.assert_allclose(_exact_gradient("bernoulli-1"), [expected], rtol=1e-12)


@pytest.mark.parametrize("temperature,eta", [(0.5, 1.0), (2.0, 0.6)])
@pytest.mark.parametrize("name", PROBLEMS)
def test_rebar_is_unbiased(name, temperature, eta):
    """The mean of 200000 REBAR gradients within 5 standard errors of the exact one (each component)."""
    assert (_bias_in_standard_errors(name, temperature=temperature, eta=eta) < 5).all()


def _z_tilde_detached(q, sample_shape=(), rng=None):
    b, z, zt = PLAIN(q, sample_shape, rng)
    return b, z, zt.detach()


def _z_tilde_is_z(q, sample_shape=(), rng=None):  # the relaxation of the same noise, not conditioned again
    b, z, zt = PLAIN(q, sample_shape, rng)
    return b, z, z


PLAIN = E.rebar_sample


@pytest.mark.parametrize("variant", [_z_tilde_detached, _z_tilde_is_z])
@pytest.mark.parametrize("name", PROBLEMS)
def test_planted_biased_variants_fail_the_same_check(name, variant, monkeypatch):
    """The check above has the power to see a bias: with the pathwise z̃ term dropped (z̃ detached), or with z̃ = z (the
    control variate f(σ_λ(z)) of b's own noise in the score term, which correlates with b), some component is more
    than 5 standard errors off. (A z̃ drawn independently of b would be unbiased, only noisier: a control variate of
    mean 0, so it is not planted here.)"""
    monkeypatch.setattr(E, "rebar_sample", variant)
    assert _bias_in_standard_errors(name).max() > 8


# ---- η = 0 is REINFORCE; a good η lowers the variance --------------------------------------------------------
def test_eta_zero_is_reinforce_of_the_same_sample():
    """Categorical: b is the Gumbel-max draw of the same noise as OneHotCategorical.sample's, so rebar(η = 0) and
    reinforce give the same values and gradients bit for bit from the same seed. Bernoulli: b = 1[l + L(u) > 0] of
    the uniforms u the seed draws first (L the logistic noise, written here in NumPy), and the gradient is
    score_function(f(b), log q(b))'s."""
    dist, l0, f = PROBLEMS["categorical-3"]
    grads, values = [], []
    for est, kwargs in [(E.reinforce, {}), (E.rebar, {"eta": 0.0})]:
        th = mv.tensor(np.tile(l0, (500, 1)), requires_grad=True)
        out = est(f, dist(logits=th), rng=Generator(8), **kwargs)
        out.sum().backward()
        grads.append(th.grad)
        values.append(out.numpy())
    np.testing.assert_array_equal(grads[0], grads[1])
    np.testing.assert_array_equal(values[0], values[1])

    dist, l0, f = PROBLEMS["bernoulli-2"]
    th = mv.tensor(np.tile(l0, (500, 1)), requires_grad=True)
    out = E.rebar(f, dist(logits=th), rng=Generator(8), eta=0.0)
    out.sum().backward()
    u = Generator(8).uniform((500, 2), np.float64)
    b = (l0 + (np.log(u) - np.log1p(-u)) > 0).astype(np.float64)
    np.testing.assert_array_equal(out.numpy(), f(b))
    th2 = mv.tensor(np.tile(l0, (500, 1)), requires_grad=True)
    q = dist(logits=th2)
    E.score_function(f(mv.tensor(b)), q.log_prob(mv.tensor(b)).sum(axis=-1)).sum().backward()
    np.testing.assert_array_equal(th.grad, th2.grad)


def test_reinforce_variance_on_the_papers_toy_against_the_formula():
    """The reference variance, for the REBAR paper's toy E_{b~Bern(σ(θ))}(b − 0.45)² at θ = 0: REINFORCE's gradient
    f(b)(b − ½) is 0.55²/2 or −0.45²/2, each with probability ½ (variance written out below). REBAR at a fixed λ barely
    improves on it there (no baseline removes f's constant part, and the pathwise terms add their own variance: lab
    table (a)); the two-variable problem below is where its control variate pays."""
    th = mv.tensor(np.zeros((20000, 1)), requires_grad=True)
    E.reinforce(lambda z: ((z - 0.45) ** 2).sum(-1), Bernoulli(logits=th), rng=Generator(9)).sum().backward()
    expected = 0.5 * (0.55 ** 2 / 2) ** 2 + 0.5 * (0.45 ** 2 / 2) ** 2 - (0.25 * (1 - 2 * 0.45)) ** 2
    assert th.grad.var() == pytest.approx(expected, rel=0.05)


def test_rebar_has_lower_variance_than_reinforce_at_a_good_eta():
    """bernoulli-2 (two variables, f with a cross term), λ = 1: REBAR's total variance at η = 1 is less than 0.6 of
    REINFORCE's (about 0.14 against 0.31), from the same 20000 draws of b; at η = 0 it is REINFORCE's."""
    dist, l0, f = PROBLEMS["bernoulli-2"]
    th = mv.tensor(np.tile(l0, (20000, 1)), requires_grad=True)
    E.reinforce(f, dist(logits=th), rng=Generator(9)).sum().backward()
    var_reinforce = th.grad.var(0).sum()
    variances = []
    for eta in (0.0, 1.0):
        th.grad = None
        E.rebar(f, dist(logits=th), rng=Generator(9), temperature=1.0, eta=eta).sum().backward()
        variances.append(th.grad.var(0).sum())
    assert variances[0] == pytest.approx(var_reinforce, rel=0.05)
    assert variances[1] < 0.6 * var_reinforce, (variances, var_reinforce)


# ---- numbers, device, determinism, refusals -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("temperature", [1e-3, 1.0, 1e3])
def test_extreme_logits_and_temperatures_stay_finite(dtype, temperature):
    """Logits ±1e4 (and ±17, where 1 − σ(l) rounds to 0 in float32), λ from 1e-3 to 1e3: finite values, gradients and
    z̃, H(z̃) = b, and no overflow, invalid or divide-by-zero on the way."""
    cases = [(Bernoulli, np.array([1e4, -1e4, 0.0, 17.0, -17.0, 40.0]), lambda z: ((z - 0.3) ** 3).sum(-1)),
             (OneHotCategorical, np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0], [-1e4, -1e4, 1e4], [50.0, -50.0, 0.0]]),
              lambda z: ((z * C3).sum(-1) ** 2).sum(-1))]
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        for dist, l0, f in cases:
            th = mv.tensor(l0.astype(dtype), requires_grad=True)
            out = E.rebar(f, dist(logits=th), (40,), rng=Generator(3), temperature=temperature, eta=-1.5)
            out.sum().backward()
            assert np.isfinite(out.numpy()).all() and np.isfinite(th.grad).all(), dist
            assert th.grad.dtype == dtype
            b, _, zt = (t.numpy() for t in E.rebar_sample(dist(logits=mv.tensor(l0.astype(dtype))), (500,), Generator(4)))
            assert np.isfinite(zt).all()
            if dist is Bernoulli:
                np.testing.assert_array_equal(zt > 0, b == 1)
            else:
                np.testing.assert_array_equal(zt.argmax(-1), b.argmax(-1))


def _on(device, name):
    dist, l0, f = PROBLEMS[name]
    th = mv.tensor(np.tile(l0, (7, 1)), device=device, requires_grad=True)
    out = E.rebar(f, dist(logits=th), (3,), rng=Generator(11), temperature=0.7)
    out.sum().backward()
    return out, th.grad


@pytest.mark.parametrize("name", ["bernoulli-2", "categorical-3"])
def test_on_the_strict_device_nothing_is_copied_to_the_host_and_the_numbers_are_the_cpu_s(name):
    with use_numba(False), use_cuda_kernels(False), emulating():
        expected = [t.numpy() if isinstance(t, mv.Tensor) else t for t in _on("cpu", name)]
        with record() as log:
            out, grad = _on("cuda", name)
        assert log == [], describe(log)
        assert out.device == "cuda"
        np.testing.assert_array_equal(out.numpy(), expected[0])
        np.testing.assert_array_equal(grad.get(), expected[1])


@pytest.mark.parametrize("name", PROBLEMS)
def test_a_seed_gives_the_same_estimate_and_two_draws_of_q_s_size(name):
    dist, l0, f = PROBLEMS[name]
    runs = []
    for seed in (4, 4, 5):
        th = mv.tensor(np.tile(l0, (50, 1)), requires_grad=True)
        rng = Generator(seed)
        E.rebar(f, dist(logits=th), rng=rng).sum().backward()
        runs.append(th.grad)
        size = th.data.size  # a Bernoulli's uniforms, a categorical's Gumbels: one per logit, twice
        assert rng.counter == 2 * ((size + 3) // 4)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_an_independent_q_is_its_base_with_the_event_summed():
    """Independent(Bernoulli(l), 1): f(b) of the whole event, log q(b) summed over it: the same estimate as the base's
    with f summing the same axis."""
    dist, l0, f = PROBLEMS["bernoulli-2"]
    grads = []
    for wrap in (lambda q: q, lambda q: Independent(q, 1)):
        th = mv.tensor(np.tile(l0, (30, 1)), requires_grad=True)
        E.rebar(f, wrap(dist(logits=th)), rng=Generator(2)).sum().backward()
        grads.append(th.grad)
    np.testing.assert_array_equal(grads[0], grads[1])


def test_bad_arguments_are_refused_clearly():
    q = Bernoulli(logits=mv.tensor(np.zeros(2)))
    f = PROBLEMS["bernoulli-2"][2]
    for tau in (0.0, -1.0, math.nan, True):
        with pytest.raises((ValueError, TypeError), match="temperature"):
            E.rebar(f, q, rng=Generator(0), temperature=tau)
    for eta in (math.nan, math.inf, True, "1", None):
        with pytest.raises(ValueError, match="eta must be a finite real number"):
            E.rebar(f, q, rng=Generator(0), eta=eta)
    with pytest.raises(ValueError, match="rebar needs a Bernoulli or a OneHotCategorical"):
        E.rebar(f, Normal(0.0, 1.0), rng=Generator(0))
    with pytest.raises(ValueError, match="rebar needs a Bernoulli or a OneHotCategorical"):
        E.rebar_sample(Normal(0.0, 1.0), rng=Generator(0))
    with pytest.raises(ValueError, match=r"rebar: f returned values of shape \(2,\); expected at most one value"):
        E.rebar(lambda z: z, Independent(q, 1), rng=Generator(0))
    assert E.get("rebar") is E.rebar


# ---- the lab -------------------------------------------------------------------------------------------------
def _within(summary, k=5.0):
    return summary["bias"] <= k * summary["bias_se"]


def test_lab_rebar_rows_are_unbiased_and_eta_star_is_the_least_variance_eta():
    """(a) and (c): the REBAR rows' means within 5 standard errors of the exact gradient; the η* row is REBAR at η*
    (rerun at that η from the row's seed: the same gradients, as the estimate is affine in η), and its total variance is
    the least-variance η of a grid over reruns at η = 0 and 1 (from the row's Philox position; the estimate is affine in η,
    checked at η = ½)."""
    from minivae import lab
    exact, grads = lab.bernoulli_toy(0.45, 4000, Generator(0))
    names = [n for n in grads if n.startswith("rebar")]
    assert names == ["rebar τ=0.5", f"rebar τ=0.5 η*={names[1].split('=')[-1]}"]
    for n in names:
        assert _within(lab.summarize(exact, grads[n])), n
    exact_c, grads_c = lab.categorical_toy(2000, Generator(1), temperatures=(1.0,))
    for n in [n for n in grads_c if n.startswith("rebar")]:
        assert _within(lab.summarize(exact_c, grads_c[n])), n
    # η* of (c), recomputed: the row's seed position is the rng's after the rows before it, so rerun the whole table
    # with a recording rng to find it
    star = [n for n in grads_c if "η*" in n][0]
    eta = float(star.split("η*=")[1])
    positions = []
    real = E.rebar

    def spy(*args, **kwargs):
        positions.append((kwargs["rng"].seed, kwargs["rng"].counter, kwargs["eta"]))
        return real(*args, **kwargs)
    E.rebar = spy
    try:
        lab.categorical_toy(2000, Generator(1), temperatures=(1.0,))
    finally:
        E.rebar = real
    seed, counter, _ = positions[0]

    def gradients_at(e):
        th = mv.tensor(np.tile(lab.CATEGORICAL_THETA, (2000, 1)), requires_grad=True)
        real(lambda z: (z * lab.CATEGORICAL_COEFFS).sum(axis=-1) ** 2, OneHotCategorical(logits=th),
             rng=Generator(seed, counter), temperature=1.0, eta=e).sum().backward()
        return th.grad
    a, d = gradients_at(0.0), gradients_at(1.0) - gradients_at(0.0)
    np.testing.assert_allclose(gradients_at(0.5), a + 0.5 * d, rtol=1e-9, atol=1e-12)  # affine in η
    grid = np.round(np.linspace(eta - 0.3, eta + 0.3, 601), 6)
    totals = [(a + e * d).var(0).sum() for e in grid]
    assert abs(grid[int(np.argmin(totals))] - eta) <= 0.006  # the grid's least-variance η, as printed (3 digits)
    assert lab.summarize(exact_c, grads_c[star])["variance"] < (a + (eta + 0.2) * d).var(0, ddof=1).sum()
    np.testing.assert_allclose(grads_c[star], a + eta * d, rtol=0, atol=5e-3 * np.abs(d).max())  # (η* to 3 digits)


def test_lab_report_has_the_rebar_rows(capsys):
    from minivae import lab
    lab.main(draws=40, seed=0)
    out = capsys.readouterr().out
    assert out.count("rebar τ=0.5 η*=") == 2 and "rebar τ=1 η*=" in out
    assert out.count("rebar τ=0.5  ") >= 3  # (a) twice and (d)


# ---- the models and the command ------------------------------------------------------------------------------
TINY_X = np.array([[1, 1, 0, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 1, 1, 1],
                   [1, 0, 0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 1, 1, 0]], dtype=np.float64)


def _exact_elbo(model, x):
    """The ELBO by enumeration of q(z|x) (E.exact) with the KL to the uniform prior in closed form: mean over x."""
    from minivae.distributions import kl_divergence
    with mv.no_grad():
        q = model.posterior(x)
        reconstruction = E.exact(lambda z: model.likelihood(z).log_prob(x).sum(axis=-1), q)
        kl = kl_divergence(q, model.prior()).sum(axis=-1)
        return (reconstruction - kl).mean().item()


@pytest.mark.parametrize("kind", ["categorical", "bernoulli"])
def test_training_with_rebar_raises_the_exact_elbo(kind):
    """60 Adam steps of model.loss with estimator="rebar" on four images: the exact ELBO (by enumeration) rises by more
    than a nat; the loss's value is the −ELBO of one draw (finite throughout)."""
    from minivae.models import BernoulliVAE, CategoricalVAE
    from minivae.optim import Adam
    if kind == "categorical":
        model = CategoricalVAE(8, (), 2, 3, estimator="rebar", activation="tanh", rng=Generator(1)).double()
    else:
        model = BernoulliVAE(8, (), 3, estimator="rebar", activation="tanh", rng=Generator(1)).double()
    x, rng = mv.tensor(np.tile(TINY_X, (4, 1))), Generator(2)
    before = _exact_elbo(model, x)
    opt = Adam(model.parameters(), lr=0.05)
    for step in range(60):
        loss = model.loss(x, rng, step=step)
        assert np.isfinite(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert _exact_elbo(model, x) > before + 1.0, (before, _exact_elbo(model, x))


def test_the_models_rebar_options_and_config():
    from minivae.models import BernoulliVAE, CategoricalVAE, build
    model = BernoulliVAE(8, (), 3, estimator="rebar", rebar_eta=0.25, rng=Generator(1))
    assert model.config["rebar_eta"] == 0.25 and model.config["estimator"] == "rebar"
    assert build("bernoulli", model.config, Generator(0)).rebar_eta == 0.25
    # the other estimators record no η: their configs stay those of earlier checkpoints
    assert "rebar_eta" not in CategoricalVAE(8, (), 2, 3, estimator="reinforce", rng=Generator(1)).config
    with pytest.raises(ValueError, match="rebar_eta is the rebar estimator's"):
        CategoricalVAE(8, (), 2, 3, estimator="gumbel_softmax", rebar_eta=0.5, rng=Generator(1))
    with pytest.raises(ValueError, match="rebar_eta must be a finite number"):
        BernoulliVAE(8, (), 3, estimator="rebar", rebar_eta=math.nan, rng=Generator(1))
    with pytest.raises(ValueError, match="objective='iwae'"):
        BernoulliVAE(8, (), 3, estimator="rebar", objective="iwae", samples=2, rng=Generator(1))


def test_the_model_loss_is_estimators_rebar_with_the_models_f():
    """CategoricalVAE.loss with estimator="rebar" at β: the value and encoder gradient of mean(β·KL − rebar(log p(x|·),
    q, λ = τ(step), η)) written with the estimator directly, from the same seed."""
    from minivae.models import CategoricalVAE
    from minivae import ops
    model = CategoricalVAE(8, (), 2, 3, estimator="rebar", rebar_eta=0.6, tau0=2.0, anneal_rate=0.1,
                           activation="tanh", rng=Generator(1)).double()
    x, w = mv.tensor(TINY_X), model.encoder.layers[0].weight
    loss = model.loss(x, Generator(3), step=2, beta=0.5)
    loss.backward()
    got = w.grad.copy(), loss.item()
    w.grad = None
    q = model.posterior(x)
    surrogate = E.rebar(lambda z: model.likelihood(z).log_prob(x).sum(axis=-1), q, rng=Generator(3),
                        temperature=2.0 * math.exp(-0.2), eta=0.6)
    kl = ops.categorical_kl(q.logits, mv.tensor(np.zeros((2, 3))))
    expected = (0.5 * kl.sum(axis=-1) - surrogate).mean()
    expected.backward()
    np.testing.assert_allclose(got[0], w.grad, rtol=1e-12, atol=1e-15)
    assert got[1] == pytest.approx(expected.item(), rel=1e-12)


def test_cli_trains_with_rebar_and_its_eta(tmp_path, capsys):
    from minivae.cli import main
    from minivae.training import load_checkpoint
    small = ["--limit", "100", "--hidden", "16", "--batch-size", "50", "--epochs", "1"]
    out = tmp_path / "run"
    assert main(["train", "--model", "bernoulli", "--n-latent", "4", "--estimator", "rebar", "--rebar-eta", "0.5",
                 "--out", str(out), *small]) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.estimator == "rebar" and model.rebar_eta == 0.5
    capsys.readouterr()
    assert main(["train", "--model", "categorical", "--rebar-eta", "0.5", "--out", str(tmp_path / "x"), *small]) == 1
    assert "--rebar-eta is the rebar estimator's" in capsys.readouterr().err
    assert main(["train", "--model", "categorical", "--estimator", "rebar", "--objective", "iwae", "--samples", "2",
                 "--out", str(tmp_path / "y"), *small]) == 1
    assert "use --estimator reinforce (VIMCO)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
