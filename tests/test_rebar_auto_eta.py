"""REBAR with η tuned online (rebar_eta="auto"): the loss is affine in η, so from two fixed-η models on the same draws
the encoder gradient ĝ(η) and its slope ∂ĝ/∂η are known, and η's gradient must be the variance's slope
2⟨ĝ, ∂ĝ/∂η⟩ over the encoder's P entries, while every other gradient and the loss stay those of the fixed-η model;
the split of the surrogate (estimators.rebar_parts) recombines to rebar's; and what cannot take it refuses it."""
import numpy as np
import pytest

import minivae as mv
from minivae import estimators
from minivae.distributions import Bernoulli
from minivae.models import BernoulliVAE, CategoricalVAE
from minivae.random import Generator

X = (np.random.default_rng(3).random((16, 36)) < 0.3).astype(np.float64)


def model(kind, eta):
    make = BernoulliVAE if kind == "bernoulli" else CategoricalVAE
    latents = (6,) if kind == "bernoulli" else (3, 4)
    m = make(36, (10,), *latents, estimator="rebar", rebar_eta=eta, rng=Generator(0)).double()
    return m


def gradients(m, step=7):
    """(loss, {parameter name: gradient}) of one loss on X with the draws of Generator(5)."""
    loss = m.loss(mv.tensor(X), Generator(5), step=step, beta=0.8)
    m.zero_grad()
    loss.backward()
    return loss.item(), {n: p.grad.copy() for n, p in m.named_parameters()}


@pytest.mark.parametrize("kind", ["bernoulli", "categorical"])
def test_etas_gradient_is_the_variance_slope_and_the_rest_is_the_fixed_eta_step(kind):
    eta0 = 0.3
    auto = model(kind, "auto")
    auto.eta.data[...] = eta0
    loss, got = gradients(auto)
    loss0, g0 = gradients(model(kind, eta0))
    _, g1 = gradients(model(kind, eta0 + 1.0))
    encoder = [n for n in g0 if n.startswith("encoder.")]
    entries = sum(g0[n].size for n in encoder)
    # ĝ(η) = ĝ(η0) + (η − η0)·s: s = ĝ(η0 + 1) − ĝ(η0); ∂E‖ĝ‖²/∂η = 2⟨ĝ(η0), s⟩, over the P entries
    slope = 2 * sum((g0[n] * (g1[n] - g0[n])).sum() for n in encoder) / entries
    assert slope != 0
    np.testing.assert_allclose(got.pop("eta"), slope, rtol=1e-9)
    assert loss == pytest.approx(loss0, rel=1e-14)
    assert sorted(got) == sorted(g0)
    for n in g0:
        np.testing.assert_allclose(got[n], g0[n], rtol=1e-12, atol=1e-14, err_msg=n)


def test_the_parts_recombine_to_rebar_for_any_eta():
    """a + η·d has rebar's value and, on the same draws, rebar's gradient at η (a number or a 0-d tensor)."""
    rng = np.random.default_rng(0)
    target = rng.random((4, 5))

    def f(z):
        return -((z - target) ** 2).sum(axis=-1)
    for eta in (0.0, 0.7, mv.tensor(np.array(-1.5))):
        logits = [mv.tensor(rng.normal(size=(4, 5)) * 0 + np.linspace(-2, 2, 5), requires_grad=True) for _ in (0, 1)]
        whole = estimators.rebar(f, Bernoulli(logits=logits[0]), rng=Generator(2), temperature=0.6, eta=eta)
        a, d = estimators.rebar_parts(f, Bernoulli(logits=logits[1]), rng=Generator(2), temperature=0.6)
        split = a + eta * d
        np.testing.assert_array_equal(split.numpy(), whole.numpy())
        whole.sum().backward()
        split.sum().backward()
        np.testing.assert_allclose(logits[1].grad, logits[0].grad, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="0-d tensor"):
        estimators.rebar(f, Bernoulli(logits=logits[0]), rng=Generator(2), eta=mv.tensor(np.ones(2)))


def test_auto_eta_is_recorded_saved_and_refused_where_it_cannot_work(tmp_path):
    m = model("bernoulli", "auto")
    assert m.config["rebar_eta"] == "auto"
    m.eta.data[...] = 0.25
    path = str(tmp_path / "m.npz")
    m.save(path)
    back = model("bernoulli", "auto")
    back.load(path)
    assert back.eta.item() == 0.25
    with pytest.raises(ValueError, match="rebar_eta"):
        BernoulliVAE(36, (10,), 6, estimator="rebar", rebar_eta="sometimes", rng=Generator(0))
    with pytest.raises(ValueError, match="rebar_eta"):
        BernoulliVAE(36, (10,), 6, estimator="gumbel_softmax", rebar_eta="auto", rng=Generator(0))
    from minivae.optim import Adam
    from minivae.plan import PlanError
    rng = Generator(1)
    with pytest.raises(PlanError, match="autograd.grad"):
        mv.compile_step(m, Adam(m.parameters()), lambda x: m.loss(x, rng), mv.tensor(X))


def test_the_cli_trains_with_auto_eta_and_refuses_it_with_graph_before_writing(tmp_path):
    from minivae.cli import main
    out = tmp_path / "run"
    args = ["train", "--model", "bernoulli", "--estimator", "rebar", "--rebar-eta", "auto", "--epochs", "1",
            "--limit", "200", "--hidden", "16", "--n-latent", "4", "--out", str(out)]
    assert main(args + ["--graph"]) != 0
    assert not out.exists()
    assert main(args) == 0
    from minivae.training import load_checkpoint
    model = load_checkpoint(str(out / "checkpoint.npz"))[0]
    assert model.config["rebar_eta"] == "auto" and model.eta.item() != 1.0  # η moved in its epoch
