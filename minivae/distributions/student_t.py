"""Student's t distribution, sampled as a Normal draw over the root of a Gamma (chi-square) draw."""
import math

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.cauchy import log1p_square
from minivae.distributions.distribution import Distribution, checked_params
from minivae.distributions.gamma import gamma_rsample
from minivae.engine import array_function
from minivae.random import resolve

HALF_LOG_PI = 0.5 * math.log(math.pi)  # = lgamma(½)


def _asymptotic(x):
    """(where x is large enough for the series below, x there and 1 elsewhere): from 10 in float32 (their next terms
    ~10⁻¹⁰ there), 100 in float64 (~10⁻¹⁷)."""
    big = array_function(lambda x: x > (10.0 if x.dtype.itemsize <= 4 else 100.0), x)
    return big, ops.where(big, x, 1.0)


def half_log_df_less_lgamma_step(df):
    """½ log ν − (lgamma((ν + 1)/2) − lgamma(ν/2)), of StudentT's normalizer; for large h = ν/2 by the asymptotic series
    lgamma(h + ½) − lgamma(h) = ½ log h − 1/(8h) + 1/(192h³) − 1/(640h⁵), as ½ log 2 + 1/(8h) − 1/(192h³) + 1/(640h⁵):
    the two lgammas cancel (both ≈ h log h: at ν = 10¹⁰ in float32 StudentT's log_prob was 0, where it is the Normal's
    −0.919, and at ν = 10⁴ off by 4·10⁻³), and the series' ½ log h cancels ½ log ν analytically (½ log ν less
    ½ log(ν/2) in float32, ½ log ν 11.5 at ν = 10¹⁰, left the entropy, 1.42, 7 ulps off and log_prob at the location,
    −0.919, 14)."""
    half = 0.5 * df
    big, y = _asymptotic(half)
    w = 1 / y  # (powers of 1/h, not of h: h⁵ overflows, and its gradient's ∞·0 is NaN)
    w2 = w * w
    series = 0.5 * math.log(2) - w * (-1 / 8 + w2 * (1 / 192 - w2 / 640))
    return ops.where(big, series, 0.5 * ops.log(df) - (ops.lgamma(half + 0.5) - ops.lgamma(half)))


def digamma_half_step(x):
    """ψ(x + ½) − ψ(x), for large x by its asymptotic series 1/(2x) + 1/(8x²) − 1/(64x⁴) + 1/(128x⁶) (the derivative
    of lgamma(x + ½) − lgamma(x)'s, ``half_log_df_less_lgamma_step``; ψ(x + ½) − ψ(x) cancels as the lgammas do)."""
    big, y = _asymptotic(x)
    w = 1 / y
    series = w * (1 / 2 + w * (1 / 8 + w * w * (-1 / 64 + w * w / 128)))
    return ops.where(big, series, ops.digamma(x + 0.5) - ops.digamma(x))


def _overflows(d, scale):
    """A mask: where d/scale is not a finite number (its overflow is the point: no warning)."""
    with numpy.errstate(over="ignore"):
        return ~(abs(d / scale) < math.inf)


def _log1p_square_t(d, scale, df):
    """log(1 + w²), w = (d/scale)/√ν (``log1p_square``), but 2(log|d| − log scale − ½ log ν) where d/scale overflows:
    there |w| exceeds the root of the dtype's largest number over ν^¼ (ν ≤ that number) and log1p(1/w²) is below an
    ulp of the rest. (d/scale = ∞ made log_prob −∞ and its gradients NaN at d = 10³⁰, scale = 10⁻¹⁰ in float32, where
    it is −344 at ν = 3; the quotient in the graph is of 0 there: the VJP of an ∞ quotient is NaN even for a gradient
    of 0.)"""
    over = array_function(_overflows, d, scale)
    y = ops.where(over, 0.0, d) / scale
    far = 2 * (ops.log(ops.where(over, ops.abs(d), 1.0)) - ops.log(scale)) - ops.log(df)
    return ops.where(over, far, log1p_square(y / ops.sqrt(df)))


class StudentT(Distribution):
    """StudentT(df ν, loc, scale): loc + scale·T, T of density Γ((ν + 1)/2)/(√(νπ)·Γ(ν/2))·(1 + t²/ν)^{−(ν+1)/2},
    elementwise (batch_shape = the broadcast shape of ν, loc and scale), as torch.distributions.StudentT (loc 0 and
    scale 1 by default).

    rsample    loc + scale·ε·√(ν/(2G)), ε ~ N(0, 1), G ~ Gamma(ν/2, 1) (torch's ε/√(χ²_ν/ν), χ²_ν = 2G): ε by
               ``rng.normal``, then G by Gamma's draws (``gamma_rsample``), differentiable in loc, scale, and in ν by
               Gamma's implicit reparameterization
    log_prob   −(ν + 1)/2·log(1 + y²/ν) − log scale − ½ log ν − ½ log π − lgamma(ν/2) + lgamma((ν + 1)/2),
               y = (x − loc)/scale (log(1 + y²/ν) finite where y² or y overflows: ``_log1p_square_t``; ½ log ν less the lgammas'
               difference by ``half_log_df_less_lgamma_step``, exact for large ν, where they cancel)
    entropy    log scale + (ν + 1)/2·(ψ((ν + 1)/2) − ψ(ν/2)) + ½ log ν + log B(ν/2, ½) (the differences likewise, and
               ½ log ν with log B's ½ log(ν/2) by ``half_log_df_less_lgamma_step``)
    mean       loc for ν > 1, NaN for ν ≤ 1;  mode loc
    variance   scale²·ν/(ν − 2) for ν > 2, ∞ for 1 < ν ≤ 2, NaN for ν ≤ 1 (torch's)
    support real; arg_constraints df positive, loc real, scale positive. Constant CPU df and scale must be > 0 and
    finite, loc not NaN.
    """

    has_rsample = True
    _params = ("df", "loc", "scale")
    arg_constraints = {"df": constraints.positive, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real

    def __init__(self, df, loc=0.0, scale=1.0):
        (self.df, self.loc, self.scale), self.batch_shape, self._dtype = checked_params(
            (df, loc, scale), ("df", "loc", "scale"), "StudentT", positive=("df", "scale"))

    @property
    def mean(self):
        undefined = array_function(lambda df: ~(df > 1), self.df)
        return self._batch(ops.where(undefined, math.nan, self.loc))

    @property
    def mode(self):
        return self._batch(self.loc)

    @property
    def variance(self):
        df = self.df
        finite, infinite = array_function(lambda df: (df > 2, (df > 1) & (df <= 2)), df)
        safe = ops.where(finite, df, 3.0)
        ratio = self.scale * self.scale * safe / (safe - 2)
        return self._batch(ops.where(finite, ratio, ops.where(infinite, math.inf, math.nan)))

    def rsample(self, sample_shape=(), rng=None, eps=None, draws=None):
        """loc + scale·ε·√(ν/(2G)) of standard normals ε and Gamma(ν/2, 1) draws G, drawn by ``rng`` in that order in
        the parameters' dtype; pass ``eps`` and ``draws`` to fix them (then ``rng`` is not needed)."""
        shape = self._extended(sample_shape)
        if eps is None:
            eps = resolve(rng).normal(shape, self._dtype, device=self.df.device)
        half_df = 0.5 * self.df
        g = gamma_rsample(rng, half_df, shape, self._dtype, draws)
        return self.loc + self.scale * (eps * ops.sqrt(half_df / g))

    def log_prob(self, value):
        df = self.df
        half = 0.5 * df
        normalizer = ops.log(self.scale) + half_log_df_less_lgamma_step(df) + HALF_LOG_PI
        return -(half + 0.5) * _log1p_square_t(self._value(value) - self.loc, self.scale, df) - normalizer

    def entropy(self):
        df = self.df
        half = 0.5 * df
        return self._batch(ops.log(self.scale) + (half + 0.5) * digamma_half_step(half) + half_log_df_less_lgamma_step(df)
                           + HALF_LOG_PI)

    def __repr__(self):
        return f"StudentT(batch_shape={self.batch_shape})"
