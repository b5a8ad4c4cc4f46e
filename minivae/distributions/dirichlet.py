"""The Dirichlet distribution, sampled as normalized Gamma draws."""
import math

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution
from minivae.distributions.gamma import gamma_rsample, positive_params
from minivae.engine import array_function
from minivae.ops import xlogy


class Dirichlet(Distribution):
    """Dirichlet(concentration α): density Γ(α₀)/Πₖ Γ(αₖ)·Πₖ xₖ^{αₖ−1} on the simplex of the last axis (K ≥ 1
    categories; α₀ = Σₖ αₖ), batch_shape α's shape less that axis, event_shape (K,), as torch.distributions.Dirichlet.

    rsample    Gₖ/Σⱼ Gⱼ, Gₖ ~ Gamma(αₖ, 1) (Gamma's draws, each with its implicit gradient)
    log_prob   Σₖ (αₖ − 1) log xₖ + lgamma(α₀) − Σₖ lgamma(αₖ) (x·log y as torch.xlogy at xₖ = 0)
    entropy    Σₖ lgamma(αₖ) − lgamma(α₀) + (α₀ − K)ψ(α₀) − Σₖ (αₖ − 1)ψ(αₖ)
    mean α/α₀;  variance α(α₀ − α)/(α₀²(α₀ + 1));  mode (α − 1)⁺/Σ(α − 1)⁺, torch's: where every αₖ < 1 the first
    vertex (1, 0, …, 0) (the density is unbounded at every vertex; torch's argmax runs over 0/0 there and takes the
    first), NaN where every αₖ ≤ 1 and not all < 1
    support simplex; arg_constraints independent(positive, 1). Constant CPU concentrations must be > 0 and finite.

    Different from torch on purpose: log_prob of a value with a negative component is −∞ (torch refuses it, or
    returns NaN); a value off the simplex's sum is not checked (torch's validate_args refuses it).
    """

    has_rsample = True
    _params = ("concentration",)
    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex

    def __init__(self, concentration):
        (self.concentration,), shape, self._dtype = positive_params((concentration,), ("concentration",), "Dirichlet")
        if len(shape) == 0 or shape[-1] == 0:
            raise ValueError(f"Dirichlet: concentration needs a last axis of K >= 1 categories, got shape {shape}")
        self.batch_shape, self.event_shape = shape[:-1], shape[-1:]

    @property
    def mean(self):
        a = self.concentration
        return self._full(a / a.sum(axis=-1, keepdims=True))

    @property
    def mode(self):
        a = self.concentration
        m = ops.clip(a - 1, 0.0)
        all_below_one = array_function(lambda a: (a < 1).all(axis=-1, keepdims=True), a)
        xp = a.xp
        first = array_function(lambda a: (xp.arange(a.shape[-1]) == 0).astype(self._dtype), a)
        total = m.sum(axis=-1, keepdims=True)
        undefined = array_function(lambda t: t == 0, total)  # (0/0: NaN, as torch's, without NumPy's warning)
        ratio = ops.where(undefined, math.nan, m / ops.where(undefined, 1.0, total))
        return self._full(ops.where(all_below_one, first, ratio))

    @property
    def variance(self):
        a = self.concentration
        total = a.sum(axis=-1, keepdims=True)
        return self._full((a / total) * ((total - a) / total) / (total + 1))  # (as Beta's: no products to underflow)

    def _full(self, x):
        shape = tuple(self.batch_shape) + tuple(self.event_shape)
        return x if x.shape == shape else ops.broadcast_to(x, shape)

    def rsample(self, sample_shape=(), rng=None, draws=None):
        """G/ΣG of Gamma(α, 1) draws G by ``rng``; pass ``draws`` (shape sample_shape + batch_shape + (K,)) to fix them."""
        g = gamma_rsample(rng, self.concentration, self._extended(sample_shape), self._dtype, draws)
        return g / g.sum(axis=-1, keepdims=True)

    def log_prob(self, value):
        value = self._value(value)
        outside = array_function(lambda v: (v < 0).any(axis=-1), value)
        x = ops.where(array_function(lambda v: v < 0, value), 0.5, value)
        a = self.concentration
        lp = (xlogy(a - 1, x).sum(axis=-1) + ops.lgamma(a.sum(axis=-1)) - ops.lgamma(a).sum(axis=-1))
        return ops.where(outside, -math.inf, lp)

    def entropy(self):
        a = self.concentration
        k = a.shape[-1]
        total = a.sum(axis=-1)
        return self._batch(ops.lgamma(a).sum(axis=-1) - ops.lgamma(total) + (total - k) * ops.digamma(total)
                           - ((a - 1) * ops.digamma(a)).sum(axis=-1))

    def __repr__(self):
        return f"Dirichlet(batch_shape={self.batch_shape}, event_shape={self.event_shape})"
