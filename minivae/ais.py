"""Annealed importance sampling (Neal 2001) of log p(x), for a VAE whose latent z is continuous, as Wu, Burda,
Salakhutdinov & Grosse (2017) evaluate decoder-based models. It moves from q(z|x) to the posterior p(z|x) through

    f_t(z) = q(z|x)^{1 − β_t} · p(x, z)^{β_t},   0 = β_0 < β_1 < … < β_T = 1

with C chains an example: z_0 ~ q(z|x); step t adds (β_t − β_{t−1})·(log p(x, z_{t−1}) − log q(z_{t−1}|x)) to each
chain's log-weight, then moves z_{t−1} to z_t by Hamiltonian Monte Carlo that leaves f_t invariant (L leapfrog steps of
the gradient of log f_t, then a Metropolis–Hastings test). Each chain's weight w has E[w] = p(x), so log (1/C) Σ_c w_c
is a stochastic lower bound on log p(x) (Jensen), which tightens as T grows; T = 1 is importance sampling from q with
C samples, draw for draw. The temperatures follow Wu et al.'s sigmoid schedule; each example's leapfrog step size is
multiplied by 1.02 after a step whose acceptance over its chains was above 0.65, else by 0.98 (their adaptation; it
uses the chains' past, as theirs does, so the weights are unbiased only up to that adaptation).
"""

import contextlib

import numpy

from minivae._backend import device_of, get_array_module
from minivae.distributions import Normal
from minivae.engine import Tensor, grad

TARGET_ACCEPTANCE = 0.65
SCHEDULE_RADIUS = 4.0


def sigmoid_schedule(steps, radius=SCHEDULE_RADIUS):
    """β_0 … β_T (T = ``steps``): β_t = (σ(r(2t/T − 1)) − σ(−r))/(σ(r) − σ(−r)), from 0 to 1, slow at both ends (Wu et
    al. 2017, App. A), a float64 array of T + 1."""
    if steps < 1:
        raise ValueError(f"the annealing needs at least 1 step, got {steps}")
    s = 1 / (1 + numpy.exp(-radius * (2 * numpy.arange(steps + 1) / steps - 1)))
    return (s - s[0]) / (s[-1] - s[0])


def _summed(lp, ndim):
    while lp.ndim > ndim:
        lp = lp.sum(axis=-1)
    return lp


def log_likelihood_ais(model, x, rng, steps=100, chains=16, leapfrog=10, step_size=0.05):
    """The AIS estimate of log p(x) (module docstring), one a row of ``x``: a tensor of shape x.shape[:-1]. ``model``:
    its ``posterior(x)`` a Normal (the Gaussian VAE's, without a flow), ``prior()`` and ``likelihood(z)``; ``rng`` draws
    the chains' start, momenta and tests; ``steps`` T temperatures, ``chains`` C, ``leapfrog`` L steps each of the
    starting size ``step_size``. The model's parameters are held constant meanwhile (``_frozen``)."""
    for name, value in (("steps", steps), ("chains", chains), ("leapfrog", leapfrog)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"log_likelihood_ais: {name} must be an integer >= 1, got {value!r}")
    if not step_size > 0:
        raise ValueError(f"log_likelihood_ais: step_size must be > 0, got {step_size!r}")
    with _frozen(model):
        q, prior, n = model.posterior(x), model.prior(), len(x.shape) - 1  # the chains' axis first, then x's batch axes
        if type(q) is not Normal:
            raise ValueError(f"log_likelihood_ais: starts from q(z|x) as a Normal (the gaussian model's, without a "
                             f"flow), and this model's is {type(q).__name__}")

        def value_and_gradient(z, beta):
            """(log f_β(z), its gradient in z, log p(x, z) − log q(z|x)) at the array z, one a chain and example."""
            zt = Tensor(z, requires_grad=True)
            log_q = _summed(q.log_prob(zt), n + 1)
            log_joint = _summed(model.likelihood(zt).log_prob(x), n + 1) + _summed(prior.log_prob(zt), n + 1)
            log_f = (1 - beta) * log_q + beta * log_joint
            (g,) = grad(log_f.sum(), zt)
            return log_f.data, g.data, (log_joint - log_q).data
        return _anneal(value_and_gradient, q, rng, steps, chains, leapfrog, step_size)


@contextlib.contextmanager
def _frozen(model):
    """The model's parameters held constant while the chains move: a gradient in z alone, none for the weights
    (which would more than double each step's backward pass); their requires_grad flags restored after."""
    parameters = list(model.parameters()) if hasattr(model, "parameters") else []
    flags = [p.requires_grad for p in parameters]
    for p in parameters:
        p.requires_grad = False
    try:
        yield
    finally:
        for p, flag in zip(parameters, flags):
            p.requires_grad = flag


def _anneal(value_and_gradient, q, rng, steps, chains, leapfrog, step_size):
    """log (1/C) Σ_c w_c from C chains started at q's draws (module docstring)."""
    loc = q.loc.data
    xp = get_array_module(loc)
    z = q.sample((chains,), rng=rng).data
    eps = xp.full((1, *loc.shape[:-1], 1), step_size, loc.dtype)
    betas = sigmoid_schedule(steps)
    log_w = xp.zeros((chains, *loc.shape[:-1]), numpy.float64)
    _, _, gap = value_and_gradient(z, 0.0)  # log p(x, z_0) − log q(z_0|x)
    for t in range(1, steps + 1):
        log_w += (betas[t] - betas[t - 1]) * gap.astype(numpy.float64)
        if t == steps:  # the last move would not change the weights
            break
        z, gap, accepted = _hmc(value_and_gradient, z, float(betas[t]), eps, leapfrog, rng, xp)
        eps = adapted(eps, accepted)
    top = log_w.max(axis=0)
    log_mean = top + xp.log(xp.exp(log_w - top).mean(axis=0))
    return Tensor(log_mean.astype(loc.dtype))


def adapted(eps, accepted):
    """Each example's step size ε (shape (1, …, 1), x's batch axes between) times 1.02 where more than 0.65 of its
    chains' moves (``accepted``, (C, …)) were kept, else times 0.98."""
    xp = get_array_module(eps)
    rate = accepted.mean(axis=0)[None, ..., None]
    return eps * xp.where(rate > TARGET_ACCEPTANCE, 1.02, 0.98).astype(eps.dtype)


def _hmc(value_and_gradient, z, beta, eps, leapfrog, rng, xp):
    """One Hamiltonian Monte Carlo move of the chains z leaving f_β invariant: momentum p ~ N(0, I), ``leapfrog``
    steps of size ε of H(z, p) = −log f_β(z) + ½|p|², the move kept with probability min(1, e^{H_0 − H_1}) (a NaN or
    infinite end is refused). Returns (z, log p(x, z) − log q(z|x) at it, whether each chain moved)."""
    p0 = rng.normal(z.shape, z.dtype, device=device_of(z))
    log_f0, g, gap0 = value_and_gradient(z, beta)
    p = p0 + 0.5 * eps * g
    moved = z
    for step in range(leapfrog):
        moved = moved + eps * p
        log_f, g, gap = value_and_gradient(moved, beta)
        p = p + (eps if step < leapfrog - 1 else 0.5 * eps) * g
    log_ratio = (log_f - 0.5 * (p * p).sum(axis=-1)) - (log_f0 - 0.5 * (p0 * p0).sum(axis=-1))
    u = rng.uniform(log_ratio.shape, numpy.float64, device=device_of(z))
    accepted = xp.log(u) < log_ratio  # False where the ratio is NaN
    return xp.where(accepted[..., None], moved, z), xp.where(accepted, gap, gap0), accepted
