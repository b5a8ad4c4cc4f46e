"""KL(p ‖ q): a table of closed forms, and a Monte Carlo estimate for the rest."""
from minivae import ops
from minivae.distributions.categorical import Categorical
from minivae.distributions.normal import Normal

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
    """Σ_k p_k (log p_k − log q_k); OneHotCategorical is a Categorical, so it is covered too."""
    if p.num_categories != q.num_categories:
        raise ValueError(f"kl_divergence: p has K = {p.num_categories} categories and q has K = {q.num_categories}; "
                         "they must be equal")
    return (p.probs * (p.logits - q.logits)).sum(axis=-1)


def mc_kl(p, q, n, rng):
    """(1/n) Σ_i [log p(z_i) − log q(z_i)], z_i ~ p: unbiased, differentiable when p has rsample."""
    z = p.rsample((n,), rng=rng) if p.has_rsample else p.sample((n,), rng=rng)
    return (p.log_prob(z) - q.log_prob(z)).mean(axis=0)
