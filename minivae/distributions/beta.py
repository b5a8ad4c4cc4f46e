"""The Beta distribution, sampled as X/(X + Y) of two Gamma draws."""
import math

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.dirichlet import below_root_tiny, entropy_near_zero, entropy_saddle
from minivae.distributions.distribution import Distribution
from minivae.distributions.gamma import SADDLE_FROM, gamma_rsample, positive_params
from minivae.engine import array_function
from minivae.ops import xlogy
from minivae.ops.gamma import HALF_LOG_2PI
from minivae.ops.saddle import bd0, stirlerr


def log_beta(a, b):
    """log B(a, b) = lgamma(a) + lgamma(b) − lgamma(a + b)."""
    return ops.lgamma(a) + ops.lgamma(b) - ops.lgamma(a + b)


def _log_prob_saddle(a, b, x):
    """log Beta(x; a, b) = log Binomial(a; n, x) + log(ab/(n·x(1 − x))), n = a + b (Γ(n + 1)/(Γ(a + 1)Γ(b + 1)) =
    Γ(n)/(Γ(a)Γ(b))·n/(ab)), the Binomial by Loader's saddle-point form (R's dbinom_raw): s(n) − s(a) − s(b)
    − bd0(a, x, n) − bd0(b, 1 − x, n) + ½ log(ab/(2πn)) − log x − log(1 − x) (minivae/ops/saddle.py). (R's dbeta takes
    the Binomial of a − 1 in a + b − 2 instead, whose shifts round in float32 above 2²⁴; n's rounding moves the two bd0
    terms by opposite amounts, to first order nothing.)"""
    n = a + b
    return (stirlerr(n) - stirlerr(a) - stirlerr(b) - bd0(a, x, n) - bd0(b, 1 - x, n)
            + 0.5 * (ops.log(a) + ops.log(b) - ops.log(n)) - HALF_LOG_2PI - ops.log(x) - ops.log(1 - x))


class Beta(Distribution):
    """Beta(concentration1 a, concentration0 b): density x^{a−1}(1 − x)^{b−1}/B(a, b) on [0, 1], elementwise, as
    torch.distributions.Beta.

    rsample    X/(X + Y), X ~ Gamma(a, 1), Y ~ Gamma(b, 1) (Gamma's draws, each with its implicit gradient)
    log_prob   (a − 1) log x + (b − 1) log(1 − x) − log B(a, b) (x·log y as torch.xlogy at x = 0 and 1); where a or
               b exceeds SADDLE_FROM and 0 < x < 1 by Loader's saddle-point form (``_log_prob_saddle``: the plain
               lgammas cancel, log B(10¹⁰, 10¹⁰) ≈ −1.4·10¹⁰ of a log-density near 11, and lgamma(b) − lgamma(a + b)
               at a = 1.5, b = 10⁸ in float32 was 27 off)
    entropy    log B(a, b) − (a − 1)ψ(a) − (b − 1)ψ(b) + (a + b − 2)ψ(a + b); where a or b exceeds SADDLE_FROM the
               Dirichlet's ``entropy_saddle`` of (a, b) (the lgammas cancel: −6.0 for −6.53 in float32 at a = b = 10⁶)
    mean a/(a + b);  variance ab/((a + b)²(a + b + 1));  mode (a − 1)⁺/((a − 1)⁺ + (b − 1)⁺), torch's: 1 where a < 1
    and b < 1 (the density is unbounded at both ends; torch's Dirichlet rule takes the first category's), NaN where
    both counts are 0 otherwise (a = 1, b ≤ 1, or b = 1, a ≤ 1)
    support unit_interval; arg_constraints positive. Constant CPU parameters must be > 0 and finite.

    Different from torch on purpose: log_prob(x) outside [0, 1] is −∞ (torch refuses the value, or returns NaN).
    """

    has_rsample = True
    _params = ("concentration1", "concentration0")
    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}
    support = constraints.unit_interval

    def __init__(self, concentration1, concentration0):
        (self.concentration1, self.concentration0), self.batch_shape, self._dtype = positive_params(
            (concentration1, concentration0), ("concentration1", "concentration0"), "Beta")

    @property
    def mean(self):
        a, b = self.concentration1, self.concentration0
        return self._batch(a / (a + b))

    @property
    def mode(self):
        a, b = self.concentration1, self.concentration0
        m1, m0 = ops.clip(a - 1, 0.0), ops.clip(b - 1, 0.0)
        both_below_one = array_function(lambda a, b: (a < 1) & (b < 1), a, b)
        total = m1 + m0
        undefined = array_function(lambda t: t == 0, total)  # (0/0: NaN, as torch's, without NumPy's warning)
        ratio = ops.where(undefined, math.nan, m1 / ops.where(undefined, 1.0, total))
        return self._batch(ops.where(both_below_one, 1.0, ratio))

    @property
    def variance(self):
        a, b = self.concentration1, self.concentration0
        total = a + b  # ab/((a + b)²(a + b + 1)) as (a/(a + b))(b/(a + b))/(a + b + 1): ab and (a + b)² underflow
        return self._batch((a / total) * (b / total) / (total + 1))  # (0/0 at a = b = 1e-30) or overflow

    def rsample(self, sample_shape=(), rng=None, draws=None):
        """X/(X + Y) of Gamma(a, 1) and Gamma(b, 1) draws by ``rng``; pass ``draws`` = (X, Y) to fix them."""
        shape = self._extended(sample_shape)
        x_draws, y_draws = (None, None) if draws is None else draws
        x = gamma_rsample(rng, self.concentration1, shape, self._dtype, x_draws)
        y = gamma_rsample(rng, self.concentration0, shape, self._dtype, y_draws)
        return x / (x + y)

    def log_prob(self, value):
        value = self._value(value)
        outside = array_function(lambda v: ~((v >= 0) & (v <= 1)), value)
        x = ops.where(outside, 0.5, value)
        a, b = self.concentration1, self.concentration0
        plain = xlogy(a - 1, x) + xlogy(b - 1, 1 - x) - log_beta(a, b)
        saddle = ((a > SADDLE_FROM) | (b > SADDLE_FROM)) & (x > 0) & (x < 1)
        a, b, x = (ops.where(saddle, t, fill) for t, fill in ((a, 2 * SADDLE_FROM), (b, 2 * SADDLE_FROM), (x, 0.5)))
        return ops.where(outside, -math.inf, ops.where(saddle, _log_prob_saddle(a, b, x), plain))

    def entropy(self):
        """The formula, but where a or b is below √tiny (10⁻¹⁹ in float32) the Dirichlet's ``entropy_near_zero`` of
        (a, b) (in the formula, ψ′(a)(1 − a) − ψ′(a + b)(2 − a − b), each ∞, made the gradient NaN), and where a or b
        exceeds SADDLE_FROM its ``entropy_saddle``. The formula's branch is of 1s there, the saddle's of 2·SADDLE_FROM
        elsewhere."""
        near = array_function(lambda a, b: below_root_tiny(a) | below_root_tiny(b), self.concentration1, self.concentration0)
        large = array_function(lambda near, a, b: ~near & ((a > SADDLE_FROM) | (b > SADDLE_FROM)), near,
                               self.concentration1, self.concentration0)
        a, b = ops.where(near | large, 1.0, self.concentration1), ops.where(near | large, 1.0, self.concentration0)
        total = a + b
        usual = (log_beta(a, b) - (a - 1) * ops.digamma(a) - (b - 1) * ops.digamma(b)
                 + (total - 2) * ops.digamma(total))
        pair = [ops.broadcast_to(ops.where(near, c, 1.0), near.shape) for c in (self.concentration1, self.concentration0)]
        big = [ops.broadcast_to(ops.where(large, c, 2 * SADDLE_FROM), near.shape)
               for c in (self.concentration1, self.concentration0)]
        saddle = entropy_saddle(ops.stack(big, axis=-1))
        return self._batch(ops.where(near, entropy_near_zero(ops.stack(pair, axis=-1)), ops.where(large, saddle, usual)))

    def __repr__(self):
        return f"Beta(batch_shape={self.batch_shape})"
