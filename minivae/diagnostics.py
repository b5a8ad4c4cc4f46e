"""Posterior collapse, measured: how much of its latent code a trained VAE uses, over a set of inputs x_1 … x_N.

The average KL of the ELBO splits into two parts (Hoffman & Johnson 2016, "ELBO surgery"), with q(x, z) =
p_data(x)·q(z|x), p_data the N inputs with equal weight and q(z) = (1/N) Σ_n q(z|x_n) the aggregate posterior:

    (1/N) Σ_n KL(q(z|x_n) ‖ p(z)) = I_q(x; z) + KL(q(z) ‖ p(z))

I_q(x; z) = E_q(x,z)[log q(z|x) − log q(z)] is the information the code carries about the input: 0 when every
q(z|x_n) is the same distribution (the code ignores x), at most log N; KL(q(z) ‖ p(z)) is how far the codes as a
whole sit from the prior. A collapsed posterior (q(z|x) = p(z) for every x) makes both 0.

- ``kl_per_latent``: (1/N) Σ_n KL(q(z_u|x_n) ‖ p(z_u)) for each latent unit u (a Gaussian dimension, a categorical
  variable, a binary unit): the KL split over the latents, for a prior that factorizes over them.
- ``active_units``: A_u = Var_n(E_q[z_u|x_n]), how much the posterior's mean moves with x; a unit is active when
  A_u > 0.01 (Burda, Grosse & Salakhutdinov 2016, §5.2). For a categorical variable, E_q[z_u|x] is the vector of its
  probabilities and A_u the sum of their variances (the trace of their covariance over x).
- ``mutual_information``: I_q(x; z) estimated with one draw z_n ~ q(z|x_n) for each input and the aggregate posterior
  evaluated exactly over the N inputs, as He et al. 2019 ("Lagging inference networks") do:

      Î = (1/N) Σ_n [log q(z_n|x_n) − log (1/N) Σ_m q(z_n|x_m)]

  which is 0 when all q(z|x_m) are one distribution and tends to log N when they do not overlap.
- ``kl_decomposition``: that I and the rest of the average KL split further, KL(q(z) ‖ p(z)) = TC + Σ_u KL(q(z_u) ‖
  p(z_u)), the total correlation of the code and its units' marginal KLs (Chen et al. 2018, the β-TCVAE's terms).

Each takes the model (its ``posterior(x)`` and ``prior()``) and the inputs as a tensor or array of rows, and runs
without a gradient, a batch at a time, on the model's device.
"""

import math

import numpy

from minivae import ops
from minivae.distributions import Bernoulli, Normal, OneHotCategorical, kl_divergence
from minivae.engine import as_tensor, no_grad

ACTIVE = 0.01  # Burda et al.'s threshold on Var_x(E_q[z_u|x])
# the q(z|x) whose latent units the KL and the activity split over: a distribution over each unit's value
FACTORED = (Normal, Bernoulli, OneHotCategorical)
PAIRS = 2 ** 22  # values at most in one block of log q(z_n|x_m) (the pairs times each pair's latent values)


def _rows(model, x, batch_size):
    """x's rows a batch at a time, on the device of the model's parameters."""
    device = model.parameters()[0].device
    for start in range(0, len(x), batch_size):
        yield as_tensor(x[start:start + batch_size], device=device)


def _posterior(model, xb, who):
    q = model.posterior(xb)
    if not isinstance(q, FACTORED):
        raise ValueError(f"{who}: needs a posterior of independent latent units (Normal, Bernoulli or "
                         f"OneHotCategorical), and this model's is {type(q).__name__}")
    return q


def kl_per_latent(model, x, batch_size=500):
    """(1/N) Σ_n KL(q(z_u|x_n) ‖ p(z_u)), a float64 array of the latent shape (without a categorical variable's axis
    of categories). Its sum is the ELBO's average KL; the prior must factorize over the latents as the posterior does
    (the standard Gaussian, the uniform categorical or Bernoulli prior), else a ValueError names it."""
    who, total = "kl_per_latent", None
    with no_grad():
        for xb in _rows(model, x, batch_size):
            q, prior = _posterior(model, xb, who), model.prior()
            if type(prior) is not type(q):
                raise ValueError(f"{who}: the KL splits over the latents only under a prior that factorizes as q(z|x) "
                                 f"does ({type(q).__name__}), and this model's prior is {type(prior).__name__}")
            part = kl_divergence(q, prior).numpy().astype(numpy.float64).sum(axis=0)
            total = part if total is None else total + part
    return total / len(x)


def _mean(q):
    return q.mean.numpy().astype(numpy.float64)


def active_units(model, x, threshold=ACTIVE, batch_size=500):
    """(count, A): A_u = Var_n(E_q[z_u|x_n]) for each latent unit u, the variance over the N inputs (divided by N − 1,
    as numpy.cov) of the posterior's mean, summed over a categorical variable's categories; count = #{u: A_u >
    ``threshold``}, Burda et al.'s active units."""
    if len(x) < 2:
        raise ValueError(f"active_units: the variance over the inputs needs at least 2 of them, got {len(x)}")
    with no_grad():
        means = numpy.concatenate([_mean(_posterior(model, xb, "active_units")) for xb in _rows(model, x, batch_size)])
    activity = means.var(axis=0, ddof=1)
    if means.ndim == 3:  # a categorical variable: the trace of its probabilities' covariance
        activity = activity.sum(axis=-1)
    return int((activity > threshold).sum()), activity


def _units(log_q, start):
    """log-densities summed over all but the latent units: axes ``start`` on flattened into one of units."""
    return ops.reshape(log_q, log_q.shape[:start] + (-1,))


def _pairs(q_m, z_n):
    """log q(z_nu|x_m) for every pair and latent unit u, a (n, U, m) tensor (the inputs last, where the sums over
    them run along memory): each draw z_n broadcast against the block of posteriors q_m."""
    return ops.transpose(_units(q_m.log_prob(ops.reshape(z_n, (z_n.shape[0], 1) + z_n.shape[1:])), 2), (0, 2, 1))


def _total(t):
    return float(t.numpy().astype(numpy.float64).sum())


def kl_decomposition(model, x, rng, batch_size=500):
    """The average KL's parts in nats, estimated from one draw z_n ~ q(z|x_n) an input (``rng``), with the aggregate
    posterior q(z) = (1/N) Σ_m q(z|x_m) and each unit's marginal q(z_u) = (1/N) Σ_m q(z_u|x_m) summed over all N
    inputs (Chen et al. 2018, "Isolating sources of disentanglement in VAEs", §3, over the whole set):

        mutual_information    I  = (1/N) Σ_n [log q(z_n|x_n) − log q(z_n)]           (Hoffman & Johnson's I_q(x; z))
        total_correlation     TC = (1/N) Σ_n [log q(z_n) − Σ_u log q(z_nu)]          KL(q(z) ‖ Π_u q(z_u))
        dimension_wise_kl     DW = (1/N) Σ_n Σ_u [log q(z_nu) − log p(z_nu)]         Σ_u KL(q(z_u) ‖ p(z_u))

    I + TC + DW is the draws' estimate of the average KL(q(z|x) ‖ p(z)). DW is None where the prior does not
    factorize over the units as q(z|x) does (a mixture prior). The pairs are taken in blocks of at most PAIRS values."""
    who = "kl_decomposition"
    with no_grad():
        posteriors = [_posterior(model, xb, who) for xb in _rows(model, x, batch_size)]
        prior = model.prior()
        factored = type(prior) is type(posteriors[0])
        draws = [q.sample(rng=rng) for q in posteriors]
        per_pair = math.prod(posteriors[0].batch_shape[1:] + posteriors[0].event_shape)
        block = max(1, min(batch_size, PAIRS // max(1, per_pair * batch_size)))
        log_n = math.log(len(x))
        info = correlation = dimension_wise = 0.0
        for q_n, z in zip(posteriors, draws):
            own = ops.sum(_units(q_n.log_prob(z), 1), axis=1)
            for start in range(0, z.shape[0], block):
                z_n = z[start:start + block]
                log_q = ops.concatenate([_pairs(q_m, z_n) for q_m in posteriors], axis=2)  # (n, U, N)
                joint = ops.logsumexp(ops.sum(log_q, axis=1), axis=1) - log_n  # log q(z_n)
                marginals = ops.sum(ops.logsumexp(log_q, axis=2) - log_n, axis=1)  # Σ_u log q(z_nu)
                info += _total(own[start:start + block] - joint)
                correlation += _total(joint - marginals)
                if factored:
                    dimension_wise += _total(marginals - ops.sum(_units(prior.log_prob(z_n), 1), axis=1))
    n = len(x)
    return {"mutual_information": info / n, "total_correlation": correlation / n,
            "dimension_wise_kl": dimension_wise / n if factored else None}


def mutual_information(model, x, rng, batch_size=500):
    """Î_q(x; z) in nats (module docstring; ``kl_decomposition``'s first part): 0 ≤ Î ≤ log N up to the draws' noise."""
    return kl_decomposition(model, x, rng, batch_size)["mutual_information"]
