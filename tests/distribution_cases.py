"""One example of every distribution minivae exports, and the comparison of everything it computes on two devices:
run by tests/distributions/test_every_distribution_on_the_device.py on the CPU against the strict CuPy stand-in
(in CI), and by tests/gpu/test_distributions.py against a real GPU (where one is lent).

A case is ``build(*parameters) -> distribution`` with its float64 parameters (a batch of shape (2, 3)); the
comparison makes the parameters on each device as tensors that require grad and checks, between the devices:
a draw of the same seed (``sample``; ``rsample`` with the gradient of a weighted sum of it), ``log_prob`` at the
first device's draw with its gradient, and each of ``entropy``, ``mean``, ``variance`` the distribution defines."""
import numpy as np

import minivae as mv
from minivae import distributions as D
from minivae.random import Generator

_rng = np.random.default_rng(12)
LOC, SCALE = _rng.normal(size=(2, 3)), _rng.uniform(0.5, 2.0, (2, 3))
POSITIVE, OTHER = _rng.uniform(0.4, 3.0, (2, 3)), _rng.uniform(0.4, 3.0, (2, 3))
LOGITS, LOGITS_K = _rng.normal(size=(2, 3)), _rng.normal(size=(2, 3, 4))
TAU = 0.7  # a temperature is a number, read on the host

CASES = {
    "Normal": (D.Normal, (LOC, SCALE)),
    "Laplace": (D.Laplace, (LOC, SCALE)),
    "Uniform": (D.Uniform, (LOC, LOC + SCALE)),
    "Gamma": (D.Gamma, (POSITIVE, OTHER)),
    "Exponential": (D.Exponential, (POSITIVE,)),
    "Beta": (D.Beta, (POSITIVE, OTHER)),
    "Dirichlet": (D.Dirichlet, (_rng.uniform(0.4, 3.0, (2, 3, 4)),)),
    "Bernoulli": (lambda l: D.Bernoulli(logits=l), (LOGITS,)),
    "ContinuousBernoulli": (lambda l: D.ContinuousBernoulli(logits=l), (LOGITS,)),
    "Categorical": (lambda l: D.Categorical(logits=l), (LOGITS_K,)),
    "OneHotCategorical": (lambda l: D.OneHotCategorical(logits=l), (LOGITS_K,)),
    "ExpRelaxedCategorical": (lambda l: D.ExpRelaxedCategorical(TAU, logits=l), (LOGITS_K,)),
    "RelaxedOneHotCategorical": (lambda l: D.RelaxedOneHotCategorical(TAU, logits=l), (LOGITS_K,)),
    "LogitRelaxedBernoulli": (lambda l: D.LogitRelaxedBernoulli(TAU, logits=l), (LOGITS,)),
    "RelaxedBernoulli": (lambda l: D.RelaxedBernoulli(TAU, logits=l), (LOGITS,)),
    "Independent": (lambda m, s: D.Independent(D.Normal(m, s), 1), (LOC, SCALE)),
    "Poisson": (D.Poisson, (POSITIVE * 5,)),
    "NegativeBinomial": (lambda r, l: D.NegativeBinomial(r, logits=l), (POSITIVE, LOGITS)),
    "MixtureSameFamily": (lambda l, m, s: D.MixtureSameFamily(D.Categorical(logits=l), D.Normal(m, s)),
                          (LOGITS_K, _rng.normal(size=(2, 3, 4)), _rng.uniform(0.5, 2.0, (2, 3, 4)))),
    "LogNormal": (D.LogNormal, (LOC, SCALE)),
    "HalfNormal": (D.HalfNormal, (SCALE,)),
    "Cauchy": (D.Cauchy, (LOC, SCALE)),
    "Gumbel": (D.Gumbel, (LOC, SCALE)),
    "Kumaraswamy": (D.Kumaraswamy, (POSITIVE, OTHER)),
    "StudentT": (D.StudentT, (POSITIVE + 2, LOC, SCALE)),
    "Geometric": (lambda l: D.Geometric(logits=l), (LOGITS,)),
    "DiscretizedLogistic": (D.DiscretizedLogistic, (0.5 + 0.3 * LOC, 0.1 * SCALE)),
    "MultivariateNormal": (lambda m, a: D.MultivariateNormal(m, scale_tril=a),
                           (_rng.normal(size=(2, 3, 4)), np.tril(_rng.normal(size=(2, 3, 4, 4)), -1)
                            + np.diag(_rng.uniform(0.5, 2.0, 4)))),
    "TransformedDistribution": (lambda m, s: D.TransformedDistribution(D.Normal(m, s), [
        D.transforms.AffineTransform(0.5, 2.0, event_dim=1), D.transforms.SigmoidTransform()]), (LOC, SCALE)),
}


def exported():
    """The names of the distributions minivae.distributions exports (its Distribution subclasses)."""
    return sorted(n for n in D.__all__ if isinstance(getattr(D, n), type) and issubclass(getattr(D, n), D.Distribution)
                  and getattr(D, n) is not D.Distribution)


DISCRETE = {"Bernoulli", "Categorical", "OneHotCategorical", "Poisson", "NegativeBinomial", "Geometric"}


def run(name, device):
    """What case ``name`` computes on ``device``, as tensors there: {quantity: tensor}, the gradients of the parameters
    as "<quantity>/grad<i>"."""
    build, params = CASES[name]
    out = {}

    def tensors():
        return [mv.tensor(p, device=device, requires_grad=True) for p in params]

    def grads(quantity, ts):
        out.update({f"{quantity}/grad{i}": mv.as_tensor(t.grad) for i, t in enumerate(ts) if t.grad is not None})

    out["sample"] = build(*tensors()).sample((2,), rng=Generator(5))
    if build(*params).has_rsample:
        ts = tensors()
        z = out["rsample"] = build(*ts).rsample((2,), rng=Generator(6))
        (z * mv.tensor(np.random.default_rng(1).normal(size=z.shape), device=device)).sum().backward()
        grads("rsample", ts)
    for quantity in ("log_prob", "entropy", "mean", "variance"):
        ts = tensors()
        d = build(*ts)
        if quantity == "log_prob":
            value = d.log_prob(out["sample"])
        elif quantity == "entropy":
            try:
                value = d.entropy()
            except NotImplementedError:
                continue
        elif hasattr(type(d), quantity):  # (the relaxed distributions have no mean or variance, as torch's)
            value = getattr(d, quantity)
        else:
            continue
        out[quantity] = value
        if value.requires_grad:
            (value * mv.tensor(np.random.default_rng(2).normal(size=value.shape), device=device)).sum().backward()
            grads(quantity, ts)
    return out


def on_host(results):
    return {k: t.numpy() for k, t in results.items()}


def compare(name, expected, got, rtol):
    """The quantities of case ``name`` on two devices (``on_host`` of ``run``'s): the same ones, of the same dtypes
    and shapes, equal within ``rtol`` of each quantity's largest magnitude (an ulp of difference in one step of a
    computation moves its result by that much relative to the whole, not to each element); the draws of a discrete
    distribution exactly equal."""
    assert sorted(got) == sorted(expected), name
    for key, e in expected.items():
        g = got[key]
        assert g.shape == e.shape and g.dtype == e.dtype, f"{name} {key}: {g.dtype}{g.shape} vs {e.dtype}{e.shape}"
        if key == "sample" and name in DISCRETE:
            np.testing.assert_array_equal(g, e, err_msg=f"{name} {key}")
        else:
            finite = np.isfinite(e)
            scale = np.abs(e[finite]).max() if finite.any() else 0.0
            np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * scale, err_msg=f"{name} {key}")
