"""Bounds on log p(x), in nats per example, for any model with ``posterior``, ``prior`` and ``likelihood``.

    prior_bound        E_p(z)[log p(x|z)]                              (the loose bound: Jensen on p(z))
    elbo               E_q[log p(x|z)] − β·KL(q(z|x) ‖ p(z))           (β = 1: a lower bound on log p(x))
    free_bits_kl       Σ_j max(λ, KL̄_j), the KL of a training objective (free bits), not of a bound
    iwae_bound(k)      E[log (1/k) Σ_i p(x, z_i) / q(z_i|x)]            (tightens with k; Burda et al. 2016)
    log_likelihood_is  the same importance-sampled estimate with k in the thousands, chunked
    exact_log_likelihood  log Σ_z p(x|z) p(z) over every configuration of a small discrete z

Latent log-densities are summed over the last axis (latent dimensions or variables), likelihoods
over the last axis (pixels), where the distribution has not summed them itself: an ``Independent`` one (event
axes) has, so that ``Independent(Normal(mu, sigma), 1)`` serves as q(z|x) or p(z) as well as ``Normal(mu, sigma)``
(each log-density is summed over its axes beyond the sample's and x's batch axes). Each function returns a tensor of
x's batch shape, x.shape[:-1] (every axis but the pixels'); a single image x of shape (D,) gives a 0-d tensor.
"""
import math
import numbers

import numpy

from minivae import ops
from minivae.distributions import Bernoulli, kl_divergence
from minivae._backend import device_of
from minivae.engine import Tensor, no_grad, tensor
from minivae.plan import Live


def _count(n, name, who):
    """A number of samples: an integer ≥ 1 (k = 0 would average over no samples, a NaN)."""
    if isinstance(n, bool) or not isinstance(n, (int, numpy.integer)):
        raise TypeError(f"{who}: {name} must be an integer number of samples, got {n!r}")
    if n < 1:
        raise ValueError(f"{who}: {name} must be >= 1, got {n}")
    return int(n)


def _per_example(lp, ndim, who, what):
    """``lp`` summed over its axes beyond the first ``ndim`` (the sample's and x's batch axes): the last axis of a
    plain distribution's log-densities, none of an Independent's (summed over its event axes already)."""
    if lp.ndim < ndim:
        raise ValueError(f"{who}: {what} has shape {tuple(lp.shape)}, fewer axes than the {ndim} of the samples and "
                         "x's batch (an Independent that reinterprets x's batch axes as event axes?)")
    while lp.ndim > ndim:
        lp = lp.sum(axis=-1)
    return lp


def _beta(beta):
    """The KL's weight: a real number, finite and >= 0; or a floating tensor (an annealing schedule's, per example),
    whose values are checked where that reads nothing back from a device or a graph (``checkable``'s rule); or a step
    plan's live scalar (``plan.step(x, beta=…)``), whose value is checked as recorded."""
    value = beta.value if isinstance(beta, Live) else beta
    if isinstance(value, Tensor):
        if value.dtype.kind != "f":
            raise TypeError(f"elbo: a tensor beta must be floating, not {value.dtype}")
        if value.requires_grad or value.device != "cpu":
            return beta
        value = value.data
    elif isinstance(value, numpy.ndarray) and value.dtype.kind in "fiu":
        pass
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"elbo: beta, the KL's weight, must be a real number, got {value!r:.60}")
    values = numpy.asarray(value)
    ok = numpy.isfinite(values) & (values >= 0)
    if not ok.all():
        raise ValueError(f"elbo: beta, the KL's weight, must be a finite number >= 0, got {float(values[~ok].flat[0])}")
    return beta


def _latent(q, sample_shape, rng):
    return q.rsample(sample_shape, rng=rng) if q.has_rsample else q.sample(sample_shape, rng=rng)


def _log_joint_minus_q(model, x, q, z, who):
    """log p(x|z) + log p(z) − log q(z|x), one value per sample and example."""
    n = len(x.shape)  # the samples' axis and x's batch axes
    return (_per_example(model.likelihood(z).log_prob(x), n, who, "log p(x|z)")
            + _per_example(model.prior().log_prob(z), n, who, "log p(z)")
            - _per_example(q.log_prob(z), n, who, "log q(z|x)"))


def elbo(model, x, rng, k=1, beta=1.0, analytic_kl=True):
    """E_q[log p(x|z)] − β·KL(q ‖ p), the expectation over k samples from q (reparameterized
    where q allows). The KL is in closed form when one is registered and ``analytic_kl``.

    Where q has no reparameterized sample (a categorical posterior) this is a value to report, not a
    loss to train by: its gradient in q's parameters lacks the score-function term of E_q[log p(x|z)]
    (only the KL reaches the encoder). Train such a model by its ``loss`` or an estimator
    (``minivae.estimators``).

    ``beta``: a real number, finite and ≥ 0 (β < 1 with an annealing schedule; β = 0 drops the KL); a floating
    tensor (β per example, or one of a schedule kept on the device) or a step plan's live scalar are taken too."""
    k = _count(k, "k", "elbo")
    beta = _beta(beta)
    q = model.posterior(x)
    z = _latent(q, (k,), rng)
    n = len(x.shape)  # the samples' axis and x's batch axes
    reconstruction = _per_example(model.likelihood(z).log_prob(x), n, "elbo", "log p(x|z)").mean(axis=0)
    if analytic_kl:
        try:
            kl = kl_divergence(q, model.prior())
        except NotImplementedError:
            pass
        else:
            return reconstruction - beta * _per_example(kl, n - 1, "elbo", "KL(q ‖ p)")
    kl = (_per_example(q.log_prob(z), n, "elbo", "log q(z|x)")
          - _per_example(model.prior().log_prob(z), n, "elbo", "log p(z)")).mean(axis=0)
    return reconstruction - beta * kl


def free_bits_kl(kl, free_bits):
    """The free-bits KL of the training objective (Kingma et al. 2016, the IAF paper's §C.8): each latent dimension's
    (or group's: the last axis) KL averaged over the batch, every axis but the last, and clamped below at λ =
    ``free_bits`` nats, given back in ``kl``'s shape:

        KL'_bj = max(λ, KL̄_j),  KL̄_j = (1/B) Σ_b KL_bj,  so that  (1/B) Σ_b Σ_j KL'_bj = Σ_j max(λ, KL̄_j)

    the term a loss that averages its per-example KL over the batch (the models' ``loss``, ``ops.negative_elbo``) then
    takes in place of the KL. No gradient reaches a dimension whose KL̄_j is under λ (max's is 0 there): the optimizer
    gains nothing by pushing it lower, which keeps dimensions from collapsing onto the prior early in training. A
    training objective only, below the ELBO where a KL̄_j < λ: ``elbo`` and the other bounds never take it."""
    mean = kl.mean(axis=tuple(range(kl.ndim - 1)), keepdims=True)
    return ops.broadcast_to(ops.maximum(mean, free_bits), kl.shape)


def prior_bound(model, x, rng, k=1):
    """(1/k) Σ_i log p(x|z_i), z_i ~ p(z) drawn apart for each example (every batch axis of x, all
    but the last): a lower bound on log p(x) that ignores x when choosing z, so it is far looser than the ELBO.
    A prior of one distribution a row (``ConditionalVAE.given(y)``'s p(z|y), batch shape (B, Z)) is drawn k times
    over the rows it lacks only (``_rows_to_draw``)."""
    k = _count(k, "k", "prior_bound")
    prior = model.prior()
    z = prior.sample((k, *_rows_to_draw(prior, tuple(x.shape[:-1]))), rng=rng)
    return _per_example(model.likelihood(z).log_prob(x), len(x.shape), "prior_bound", "log p(x|z)").mean(axis=0)


def _rows_to_draw(prior, rows):
    """The leading part of x's rows (its batch axes) that ``prior`` does not hold. A prior of one distribution a row
    holds a trailing part of them as the leading axes of its batch shape, the latent's own axes after them (p(z|y) of
    rows (B,): batch shape (B, Z)); a prior of one example holds none (N(0, I): batch shape (Z,); a categorical's (N,),
    event (K,)). Taken from the batch shape alone, the longest such part: a per-row prior whose latent is all event
    (an Independent of batch shape (B,)) cannot be told from a one-example prior of B latents and is drawn as one."""
    batch = tuple(getattr(prior, "batch_shape", ()))  # (vqvae's CodePrior is a module, with no batch shape)
    for start in range(len(rows)):
        held = rows[start:]
        if len(batch) > len(held) and batch[:len(held)] == held:
            return rows[:start]
    return rows


def iwae_bound(model, x, rng, k=5):
    """log (1/k) Σ_i p(x, z_i)/q(z_i|x), z_i ~ q(z|x) (Burda, Grosse, Salakhutdinov 2016)."""
    k = _count(k, "k", "iwae_bound")
    q = model.posterior(x)
    log_w = _log_joint_minus_q(model, x, q, _latent(q, (k,), rng), "iwae_bound")
    return ops.logsumexp(log_w, axis=0) - math.log(k)


def log_likelihood_is(model, x, rng, k=5000, chunk=500):
    """Importance-sampled estimate of log p(x) with k samples from q(z|x), drawn ``chunk`` at a
    time so memory stays bounded (no gradient). Its bias is ≤ 0 and shrinks as k grows."""
    k, chunk = _count(k, "k", "log_likelihood_is"), _count(chunk, "chunk", "log_likelihood_is")
    with no_grad():
        q = model.posterior(x)
        parts = []
        for start in range(0, k, chunk):
            z = q.sample((min(chunk, k - start),), rng=rng)
            parts.append(ops.logsumexp(_log_joint_minus_q(model, x, q, z, "log_likelihood_is"), axis=0))
        return ops.logsumexp(ops.stack(parts), axis=0) - math.log(k)


def exact_log_likelihood(model, x, max_configurations=2 ** 16):
    """log p(x) = log Σ_z p(x|z) p(z), summing over all K^N one-hot configurations of a model with
    N categorical latents of K categories (``model.n_latent``, ``model.n_categories``), or all 2^N binary ones,
    z ∈ {0, 1}^N, of a model with N binary latents (``model.n_latent``, no ``n_categories``, a Bernoulli prior)."""
    n, kk = getattr(model, "n_latent", None), getattr(model, "n_categories", None)
    binary = n is not None and kk is None and isinstance(model.prior(), Bernoulli)
    if binary:
        kk = 2
    if n is None or kk is None:
        raise ValueError("exact_log_likelihood needs a model with discrete latents (n_latent, and n_categories or a "
                         "Bernoulli prior)")
    count = kk ** n
    if count > max_configurations:
        raise ValueError(f"exact_log_likelihood: {kk}^{n} = {count} configurations exceed the limit "
                         f"{max_configurations}; use log_likelihood_is instead")
    device = x.device if isinstance(x, Tensor) else device_of(x)
    batch_axes = (1,) * (len(x.shape) - 1)  # one per batch axis of x, over which z is broadcast
    z = enumerate_one_hot(n, kk)  # (K^N, N, K)
    if binary:  # a variable's 0/1 value is its one-hot's second column
        z = z[..., 1]
    z = tensor(z.reshape((count, *batch_axes, *z.shape[1:])), device=device)  # (K^N, 1, …, 1, N[, K])
    n, who = len(x.shape), "exact_log_likelihood"
    log_joint = (_per_example(model.likelihood(z).log_prob(x), n, who, "log p(x|z)")
                 + _per_example(model.prior().log_prob(z), n, who, "log p(z)"))
    return ops.logsumexp(log_joint, axis=0)


def enumerate_one_hot(n, k, dtype=numpy.float32):
    """Every configuration of n categorical variables with k categories, as (k^n, n, k) one-hot, in the order of
    ``itertools.product(range(k), repeat=n)``: for n = 0 the one empty configuration, (1, 0, k)."""
    if n < 0 or k < 0:
        raise ValueError(f"enumerate_one_hot: n = {n} variables and k = {k} categories must be >= 0")
    if n == 0:  # (reshape(0, -1) below cannot infer the one configuration from an empty index array)
        return numpy.zeros((1, 0, k), dtype)
    index = numpy.indices((k,) * n).reshape(n, -1).T
    return numpy.eye(k, dtype=dtype)[index]
