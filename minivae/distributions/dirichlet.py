"""The Dirichlet distribution, sampled as normalized Gamma draws."""
import math

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution
from minivae.distributions.gamma import SADDLE_FROM, gamma_rsample, positive_params
from minivae.engine import array_function
from minivae.ops import xlogy
from minivae.ops.gamma import HALF_LOG_2PI
from minivae.ops.saddle import bd0, stirlerr


def below_root_tiny(x):
    """x < √tiny of its dtype (1.1·10⁻¹⁹ in float32): where ψ′(x) ≈ 1/x² passes 1/tiny, near the dtype's largest number."""
    return x < numpy.sqrt(numpy.finfo(x.dtype).tiny)


def entropy_near_zero(alpha):
    """The Dirichlet entropy of the last axis, Σₖ lgamma(αₖ) − lgamma(α₀) + (α₀ − K)ψ(α₀) − Σₖ (αₖ − 1)ψ(αₖ), through
    lgamma(x) = lgamma(x + 1) − log x and ψ(x) = ψ(x + 1) − 1/x: Σₖ lgamma(αₖ + 1) − lgamma(α₀ + 1) +
    (α₀ − K)ψ(α₀ + 1) − Σₖ (αₖ − 1)ψ(αₖ + 1) + log α₀ − Σₖ log αₖ + K − 1 + R, R = K/α₀ − Σₖ 1/αₖ, whose terms have
    gradients bounded near 0 but R's. R is homogeneous of degree −1, computed as R(α/c)/c with c = minₖ αₖ held
    constant: its gradient, ≈ 1/αₖ², is then one product by 1/c of a number of order 1 — ±∞ where it is past the dtype's
    range (αₖ ≲ 10⁻¹⁹ in float32) — not the difference of two infinities, NaN."""
    k = alpha.shape[-1]
    total = alpha.sum(axis=-1)
    scale = alpha.detach().min(axis=-1, keepdims=True)
    scaled = alpha / scale
    reciprocals = (k / scaled.sum(axis=-1) - (1.0 / scaled).sum(axis=-1)) / ops.squeeze(scale, -1)
    return (ops.lgamma(alpha + 1).sum(axis=-1) - ops.lgamma(total + 1) + (total - k) * ops.digamma(total + 1)
            - ((alpha - 1) * ops.digamma(alpha + 1)).sum(axis=-1) + ops.log(total) - ops.log(alpha).sum(axis=-1)
            + (k - 1) + reciprocals)


def entropy_saddle(alpha):
    """The Dirichlet entropy of the last axis (K = its length, α₀ = Σₖ αₖ) by lgamma(x) = s(x) + (x − ½)·log x − x +
    ½ log 2π and ψ(x) = log x − 1/(2x) + s'(x) (s = ``ops.stirlerr``), the terms of x·log x cancelled analytically:
    (K − 1)(½ log 2π + ½) + ½Σₖ log(αₖ/α₀) − (K − 1)/2·log α₀ + K/(2α₀) − ½Σₖ 1/αₖ + Σₖ s(αₖ) − s(α₀) + (α₀ − K)·s'(α₀)
    − Σₖ (αₖ − 1)·s'(αₖ) (the formula's lgammas, ≈ α log α, cancel to the entropy's −(K − 1)/2·log α₀: a Beta's at
    a = b = 10⁶ was −6.0 for −6.53 in float32, at 10¹⁰ 0 for −11.1)."""
    k = alpha.shape[-1]
    total = alpha.sum(axis=-1, keepdims=True)
    logs = 0.5 * ops.log(alpha / total).sum(axis=-1) - 0.5 * (k - 1) * ops.log(total[..., 0])
    rational = 0.5 * k / total[..., 0] - 0.5 * (1 / alpha).sum(axis=-1)
    stirling = (stirlerr(alpha).sum(axis=-1) - stirlerr(total[..., 0]) + ((total - k) * stirlerr(total, order=1))[..., 0]
                - ((alpha - 1) * stirlerr(alpha, order=1)).sum(axis=-1))
    return (k - 1) * (HALF_LOG_2PI + 0.5) + logs + rational + stirling


def log_prob_saddle(alpha, x):
    """The Dirichlet log-density of the last axis, Σₖ (αₖ − 1) log xₖ + lgamma(α₀) − Σₖ lgamma(αₖ), as Beta's
    ``_log_prob_saddle`` (Loader's multinomial form): s(α₀) − Σₖ s(αₖ) − Σₖ bd0(αₖ, α₀·xₖ) + ½(Σₖ log αₖ − log α₀) −
    (K − 1)·½ log 2π − Σₖ log xₖ + α₀(Σₖ xₖ − 1) (the last 0 on the simplex; the formula's value off it)."""
    k = alpha.shape[-1]
    total = alpha.sum(axis=-1, keepdims=True)
    return (stirlerr(total[..., 0]) - stirlerr(alpha).sum(axis=-1) - bd0(alpha, x, total).sum(axis=-1)
            + 0.5 * (ops.log(alpha).sum(axis=-1) - ops.log(total[..., 0])) - (k - 1) * HALF_LOG_2PI
            - ops.log(x).sum(axis=-1) + total[..., 0] * (x.sum(axis=-1) - 1))


class Dirichlet(Distribution):
    """Dirichlet(concentration α): density Γ(α₀)/Πₖ Γ(αₖ)·Πₖ xₖ^{αₖ−1} on the simplex of the last axis (K ≥ 1
    categories; α₀ = Σₖ αₖ), batch_shape α's shape less that axis, event_shape (K,), as torch.distributions.Dirichlet.

    rsample    Gₖ/Σⱼ Gⱼ, Gₖ ~ Gamma(αₖ, 1) (Gamma's draws, each with its implicit gradient)
    log_prob   Σₖ (αₖ − 1) log xₖ + lgamma(α₀) − Σₖ lgamma(αₖ) (x·log y as torch.xlogy at xₖ = 0); where an αₖ
               exceeds SADDLE_FROM and every xₖ > 0 by Loader's saddle-point form (``log_prob_saddle``)
    entropy    Σₖ lgamma(αₖ) − lgamma(α₀) + (α₀ − K)ψ(α₀) − Σₖ (αₖ − 1)ψ(αₖ); where an αₖ exceeds SADDLE_FROM by
               ``entropy_saddle`` (the lgammas cancel)
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
        saddle = array_function(lambda a, x: (a > SADDLE_FROM).any(axis=-1) & (x > 0).all(axis=-1), a, x)
        wide = ops.unsqueeze(saddle, -1)
        lp = ops.where(saddle, log_prob_saddle(ops.where(wide, a, 2 * SADDLE_FROM), ops.where(wide, x, 0.5)), lp)
        return ops.where(outside, -math.inf, lp)

    def entropy(self):
        """The formula, but where a concentration is below √tiny (10⁻¹⁹ in float32) ``entropy_near_zero``'s (in the
        formula, ψ′(αₖ)(1 − αₖ) − ψ′(α₀)(K − α₀), each ∞, made its gradient NaN). The formula's branch is of 1s there."""
        near = array_function(lambda a: below_root_tiny(a).any(axis=-1), self.concentration)
        large = array_function(lambda near, a: ~near & (a > SADDLE_FROM).any(axis=-1), near, self.concentration)
        a = ops.where(ops.unsqueeze(near | large, -1), 1.0, self.concentration)
        k = a.shape[-1]
        total = a.sum(axis=-1)
        usual = (ops.lgamma(a).sum(axis=-1) - ops.lgamma(total) + (total - k) * ops.digamma(total)
                 - ((a - 1) * ops.digamma(a)).sum(axis=-1))
        small = entropy_near_zero(ops.where(ops.unsqueeze(near, -1), self.concentration, 1.0))
        saddle = entropy_saddle(ops.where(ops.unsqueeze(large, -1), self.concentration, 2 * SADDLE_FROM))
        return self._batch(ops.where(near, small, ops.where(large, saddle, usual)))

    def __repr__(self):
        return f"Dirichlet(batch_shape={self.batch_shape}, event_shape={self.event_shape})"
