r"""The continuous Bernoulli, the proper likelihood of grey levels in [0, 1] (Loaiza-Ganem & Cunningham 2019)."""
import math
import numbers

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, as_value, logits_from
from minivae.engine import array_function
from minivae.ops.special import horner
from minivae.random import resolve

LOG2 = math.log(2.0)
LOGIT_LO = -0.004  # an η outside the default window (logit 0.499 = −0.004000001…), for the cut branches
# coth y − 1/y = y·Σ_k LANGEVIN[k]·y²ᵏ and 1/y² − 1/sinh² y = Σ_k LANGEVIN_SLOPE[k]·y²ᵏ (2²ᵏB₂ₖ/(2k)! terms), to y¹⁴:
# at |y| < ¼ the first term left out is below 10⁻¹⁵ of the sum
LANGEVIN = (1 / 3, -1 / 45, 2 / 945, -1 / 4725, 2 / 93555, -1382 / 638512875, 4 / 18243225)
LANGEVIN_SLOPE = (1 / 3, -1 / 15, 2 / 189, -1 / 675, 2 / 10395, -1382 / 58046625, 4 / 1403325, -3617 / 10854718875)


class ContinuousBernoulli(Distribution):
    r"""p(x | λ) = C(λ)·λˣ(1 − λ)¹⁻ˣ on [0, 1], λ = ``probs`` = σ(η), η = ``logits``, as torch's.

    With a = |η|, t = e⁻ᵃ and s = 1 − t = −expm1(−a) (all finite for any η, so logits of ±1e4 are fine):
    log C      softplus(−a) + log a − log s  (even in η: = log(2 artanh(1 − 2λ)/(1 − 2λ)), torch's, in λ)
    log_prob   x·η − softplus(η) + log C = −bce_with_logits(η, x) + log C
    mean       eᵑ/(eᵑ − 1) − 1/η, as 1/s − 1/a for η > 0 and 1/a − t/s for η < 0 (neither overflows)
    variance   1/a² − t/s²
    entropy    1 − a·t/s − log a + log s  (= softplus(η) − mean·η − log C, without its cancellation)
    cdf        expm1(ηx)/expm1(η) = exp((x − 1)·max(η, 0))·expm1(−ax)/expm1(−a), x clamped to [0, 1]
    icdf       log1p(u·expm1(η))/η, written for each sign of η so that nothing overflows or cancels (see icdf);
               0 at u = 0, 1 at u = 1, NaN for u outside [0, 1]
    (cdf and icdf: for |η| < √ε their first-order Taylor expansions in η, exact to rounding there)
    rsample    icdf(u), u ~ Uniform(0, 1): differentiable in η (pathwise); sample: the same, without gradient

    Near λ = ½ (η = 0) log C, the mean and the variance cancel (0/0 at η = 0): where ``lims[0] < λ ≤ lims[1]``
    (torch's default window (0.499, 0.501]), log C and the entropy are Taylor expansions in x = λ − ½, torch's
    log 2 + (4/3 + 104/45·x²)·x² and −(2/3 + 68/45·x²)·x²; the mean and the variance are their power series in η/2
    for |η| < ½ (to y¹⁴: exact to rounding there, where the closed forms lose up to 12ε/η² of the variance), which in
    the window equal torch's expansions. The closed forms see a cut value where they are not used, so that neither
    their value nor their gradient is NaN there. Give exactly one of ``probs`` (the first positional argument, as
    torch) and ``logits``. Given probs (in [0, 1]) are clamped to [ε, 1 − ε], as torch's, and η is their logit.
    ``lims`` must satisfy 0 < lims[0] < ½ < lims[1] < 1.

    Different from torch on purpose:
        - Given logits are not turned into probs clamped to [ε, 1 − ε] (torch's round trip): torch's normalizer,
          mean, variance, cdf and icdf use that clamp while its log_prob uses the logits as given, so beyond
          |η| ≈ 36.7 (float64; 16.6 in float32) its density no longer integrates to 1 (at η = 1e4 its mean is 0.973
          and log_prob(½) is −4996.4 where the exact values are 0.9999 and −4990.8), and it loses the digits of
          1 − σ(η) well before (its float64 mean at η = 30: 10⁻⁶ relatively). Every quantity here is computed from η,
          and equals torch's where torch is exact. ``probs`` of given logits is σ(η), not clamped.
        - cdf and icdf are the closed forms inside the window too: torch's there are x and u, the uniform's, off by
          up to |η|/8 (2·10⁻³ relatively at λ = 0.501), with a pathwise gradient of 0 in η.
        - The variance's expansion in the window is 1/12 − (1/15 + 128/945·x²)·x²: torch's has − 128/945, a sign
          error (its value off by 2.7·10⁻¹³ at λ = 0.501, its derivative by 10⁻⁵ relatively).
        - icdf(u) is NaN for u outside [0, 1], as Normal's (torch's returns what its formula gives); lims is checked.

    References:
        1. Loaiza-Ganem, Cunningham. The continuous Bernoulli: fixing a pervasive error in variational autoencoders.
           NeurIPS 2019.
    """

    has_rsample = True
    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    _params = ("logits", "_probs")

    def __init__(self, probs=None, logits=None, lims=(0.499, 0.501)):
        try:
            lo, hi = (float(v) for v in lims)
        except (TypeError, ValueError):
            raise TypeError(f"ContinuousBernoulli: lims must be a pair of numbers, got {lims!r}") from None
        if not 0 < lo < 0.5 < hi < 1:
            raise ValueError(f"ContinuousBernoulli: lims must satisfy 0 < lims[0] < 0.5 < lims[1] < 1 (the window "
                             f"around λ = ½ where the Taylor expansions are used), got {lims!r}")
        self._lims = (lo, hi)
        self.logits, p = logits_from(probs, logits, "ContinuousBernoulli", binary=True)
        if p is not None:
            eps = float(numpy.finfo(p.dtype).eps)
            p = ops.clip(p, eps, 1 - eps)  # as torch's clamp_probs (logits_from's logits are theirs)
        self._probs = p
        self.batch_shape = self.logits.shape

    @property
    def probs(self):
        return ops.sigmoid(self.logits) if self._probs is None else self._probs

    def _closed(self, cut, value):
        """(a, t, s, η > 0) of η = the logits where ``cut`` is False, and η = ``value`` where it is True (a value the
        closed forms can take: no 0/0 there, so neither a NaN value nor a NaN gradient comes from the branch the
        ``where`` leaves out)."""
        eta = ops.where(cut, value, self.logits)
        a = ops.abs(eta)
        positive = array_function(lambda eta: eta > 0, eta)
        return a, ops.exp(-a), -ops.expm1(-a), positive

    def _window(self):
        """(inside, x): where λ is in the window lims[0] < λ ≤ lims[1] of the Taylor expansions (torch's test, a mask
        without gradient), and x = λ − ½."""
        lo, hi = self._lims
        p = self.probs
        return array_function(lambda p: (p > lo) & (p <= hi), p), p - 0.5

    def _log_normalizer(self, window=None):
        """log C: softplus(−a) + log a − log s, or log 2 + (4/3 + 104/45·x²)·x² in the window (torch's)."""
        inside, x = window or self._window()
        a, t, s, positive = self._closed(inside, LOGIT_LO)
        x2 = x * x
        return ops.where(inside, LOG2 + (4.0 / 3.0 + 104.0 / 45.0 * x2) * x2, ops.softplus(-a) + ops.log(a) - ops.log(s))

    def _small(self):
        """(small, y): where |η| < ½, whose mean and variance are their power series in y = η/2 (y = 0 elsewhere: the
        series of a large y would overflow, and its left-out branch send 0·∞ = NaN back)."""
        small = array_function(lambda eta: abs(eta) < 0.5, self.logits)
        return small, ops.where(small, 0.5 * self.logits, 0.0)

    def _value(self, value):
        """A value as a tensor on the logits' device, a number in their dtype (as torch's)."""
        if isinstance(value, numbers.Real):
            value = numpy.asarray(value, self.logits.dtype)
        return as_value(value, self.logits)

    def log_prob(self, value):
        return ops.bernoulli_log_prob(self.logits, self._value(value)) + self._log_normalizer()

    @property
    def mean(self):
        """1/s − 1/a (η > 0) or 1/a − t/s (η < 0); for |η| < ½, ½ + ½·L(η/2), L(y) = coth y − 1/y by its series."""
        small, y = self._small()
        a, t, s, positive = self._closed(small, 1.0)
        return ops.where(small, 0.5 + 0.5 * y * horner(LANGEVIN, y * y),
                         ops.where(positive, 1 / s - 1 / a, 1 / a - t / s))

    @property
    def variance(self):
        """1/a² − t/s²; for |η| < ½, ¼·(1/y² − 1/sinh² y) of y = η/2 by its series."""
        small, y = self._small()
        a, t, s, positive = self._closed(small, 1.0)
        return ops.where(small, 0.25 * horner(LANGEVIN_SLOPE, y * y), 1 / (a * a) - t / (s * s))

    def entropy(self):
        """1 − a·t/s − log a + log s; in the window −(2/3 + 68/45·x²)·x²."""
        inside, x = self._window()
        a, t, s, positive = self._closed(inside, LOGIT_LO)
        x2 = x * x
        return ops.where(inside, -(2.0 / 3.0 + 68.0 / 45.0 * x2) * x2, 1 - a * t / s - ops.log(a) + ops.log(s))

    def _tiny(self):
        """(tiny, a, t, s, η > 0): where |η| < √ε, cdf and icdf are their first-order Taylor expansions in η (exact to
        rounding there: the next term is below η²/12 < ε relatively; the closed forms would lose digits to
        underflow, u·s of a tiny u and a tiny a, and are 0/0 at η = 0); elsewhere (a, t, s) of η itself."""
        eta = self.logits
        bound = math.sqrt(float(numpy.finfo(eta.dtype).eps))
        tiny = array_function(lambda eta: abs(eta) < bound, eta)
        return (tiny, *self._closed(tiny, 1.0))

    def cdf(self, value):
        """exp((x − 1)·max(η, 0))·expm1(−a·x)/expm1(−a), x clamped to [0, 1]; x + η·x(x − 1)/2 for |η| < √ε."""
        tiny, a, t, s, positive = self._tiny()
        v = ops.clip(self._value(value), 0.0, 1.0)
        shift = ops.where(positive, (v - 1) * a, 0.0)
        closed = ops.exp(shift) * ops.expm1(-a * v) / ops.expm1(-a)
        return ops.where(tiny, v + self.logits * v * (v - 1) * 0.5, closed)

    def icdf(self, value):
        """η < 0: −log1p(−u·s)/a where u·s ≤ ½, −log((1 − u) + u·t)/a beyond (u·s near 1 keeps its digits); η > 0:
        log1p(u·expm1(a))/a for a ≤ 50, 1 + log(u + (1 − u)·t)/a beyond (where expm1(a) would overflow float32);
        u + η·u(1 − u)/2 for |η| < √ε."""
        tiny, a, t, s, positive = self._tiny()
        given = self._value(value)
        end, bad, fixed = array_function(lambda u: ((u == 0) | (u == 1), ~((u >= 0) & (u <= 1)),
                                                    ~((u > 0) & (u < 1))), given)
        u = ops.where(fixed, 0.5, given)  # (u = 0 and u = 1 are set exactly below; outside [0, 1], NaN)
        us = u * s
        near = array_function(lambda us: us <= 0.5, us)
        us_c, u_c = ops.where(near, us, 0.5), ops.where(near, 0.5, u)  # each branch its own values: no log 0
        x_neg = ops.where(near, -ops.log1p(-us_c), -ops.log((1 - u_c) + u_c * t)) / a
        moderate = array_function(lambda a: a <= 50, a)
        a_m = ops.where(moderate, a, 1.0)
        x_pos = ops.where(moderate, ops.log1p(u * ops.expm1(a_m)) / a_m, 1 + ops.log(u + (1 - u) * t) / a)
        x = ops.where(tiny, u + self.logits * u * (1 - u) * 0.5, ops.clip(ops.where(positive, x_pos, x_neg), 0.0, 1.0))
        return ops.where(bad, math.nan, ops.where(end, given, x))

    def rsample(self, sample_shape=(), rng=None):
        """icdf(u), u ~ Uniform(0, 1) (open) drawn by ``rng``."""
        logits = self.logits
        u = resolve(rng).uniform(self._extended(sample_shape), logits.dtype, device=logits.device)
        return self.icdf(u)

    def __repr__(self):
        return f"ContinuousBernoulli(batch_shape={self.batch_shape})"
