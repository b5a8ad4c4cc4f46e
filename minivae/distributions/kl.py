"""KL(p ‖ q): a table of closed forms, and a Monte Carlo estimate for the rest."""
import math

from minivae import ops
from minivae.distributions.categorical import Categorical
from minivae.distributions.independent import Independent, sum_rightmost
from minivae.distributions.normal import Normal
from minivae.engine import array_function

_KL = {}


def register_kl(p_type, q_type):
    """Decorator: ``fn(p, q)`` computes KL(p ‖ q) in closed form for these types."""
    def add(fn):
        _KL[p_type, q_type] = fn
        return fn
    return add


def kl_divergence(p, q):
    """KL(p ‖ q) = E_p[log p − log q], in nats, over the batch."""
    for (tp, tq), fn in _KL.items():
        if isinstance(p, tp) and isinstance(q, tq):
            return fn(p, q)
    raise NotImplementedError(
        f"no closed form for KL({type(p).__name__} ‖ {type(q).__name__}); "
        "estimate it with minivae.distributions.mc_kl(p, q, n, rng=)")


@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    """log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²) / (2σ_q²) − ½."""
    ratio = p.scale / q.scale
    diff = (p.loc - q.loc) / q.scale
    return 0.5 * (ratio * ratio + diff * diff) - ops.log(ratio) - 0.5


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p, q):
    """Σ_k p_k (log p_k − log q_k), whose term is 0 where p_k = 0 (0·log 0 = 0, whatever q_k) and +∞ where
    q_k = 0 < p_k, as torch's; OneHotCategorical is a Categorical, so it is covered too.

    p_k = 0 is ``p.probs`` = 0, as torch tests it; q_k = 0 is q's probability exactly 0 (a logit −inf, or a
    probability 0 given): a q_k that only underflows (a logit of −120 in float32, which torch takes for 0 and so
    gives +∞) keeps its finite log q_k. The gradient is that of the finite terms: 0 from the others, not NaN."""
    if p.num_categories != q.num_categories:
        raise ValueError(f"kl_divergence: p has K = {p.num_categories} categories and q has K = {q.num_categories}; "
                         "they must be equal")
    p_probs = p.probs
    p_zero, q_zero = array_function(lambda p: p == 0, p_probs), q._impossible()
    # those logits are replaced by 0 before the product, so the product and its VJP stay finite there; a product's
    # NaN selected away after it would still send 0·(−inf) = NaN back through the product's VJP
    log_p, log_q = ops.where(p_zero, 0.0, p.logits), ops.where(q_zero, 0.0, q.logits)
    infinite = array_function(lambda p, q: q & ~p, p_zero, q_zero)
    return ops.where(infinite, math.inf, p_probs * (log_p - log_q)).sum(axis=-1)


@register_kl(Independent, Independent)
def _kl_independent_independent(p, q):
    """KL of the bases summed over the reinterpreted axes: KL of a product of independent factors is the sum of
    theirs. Both must reinterpret the same number of axes (NotImplementedError otherwise, as torch's)."""
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError(f"KL(Independent ‖ Independent) of {p.reinterpreted_batch_ndims} and "
                                  f"{q.reinterpreted_batch_ndims} reinterpreted axes: they must be equal")
    return sum_rightmost(kl_divergence(p.base_dist, q.base_dist), p.reinterpreted_batch_ndims)


def mc_kl(p, q, n, rng):
    """(1/n) Σ_i [log p(z_i) − log q(z_i)], z_i ~ p: unbiased, differentiable when p has rsample; over the batch
    shapes of p and q broadcast, as kl_divergence."""
    z = p.rsample((n,), rng=rng) if p.has_rsample else p.sample((n,), rng=rng)
    # the draws' axis ahead of q's longer batch, not against its first axis (an error, or with n the size of that
    # axis, draw i scored by q_i only)
    missing = len(q.batch_shape) - len(p.batch_shape)
    if missing > 0:
        z = z.reshape((n,) + (1,) * missing + z.shape[1:])
    return (p.log_prob(z) - q.log_prob(z)).mean(axis=0)
