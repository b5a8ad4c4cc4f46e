"""The geometric distribution: the number of failures before the first success of Bernoulli(p) trials."""
import math

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, _first_bad, as_value, checkable, logits_from
from minivae.engine import array_function
from minivae.random import resolve


def _sqrt_eps(x):
    return math.sqrt(float(numpy.finfo(x.dtype).eps))


def softplus_over_exp(logits):
    """softplus(l)·e^{−l} (= (1 − p)/p·(−log(1 − p)), p = σ(l)): log1p(t)/t, t = eˡ, for l < 0, 1 at t → 0, by its
    series 1 − t/2 + t²/3 below √ε (log1p(t)/t's gradient divides by t², which underflows: NaN at l = −100 in float32);
    softplus(l)·e^{−l} for l ≥ 0."""
    negative = array_function(lambda l: l < 0, logits)
    t = ops.exp(ops.where(negative, logits, 0.0))
    small = array_function(lambda t: t < _sqrt_eps(t), t)
    series = 1.0 - t * (0.5 - t / 3.0)  # log1p(t)/t = 1 − t/2 + t²/3 + O(t³)
    below = ops.where(small, series, ops.log1p(t) / ops.where(small, 1.0, t))
    above = ops.softplus(ops.where(negative, 0.0, logits)) * ops.exp(-ops.where(negative, 0.0, logits))
    return ops.where(negative, below, above)


def log_softplus(logits):
    """log softplus(l): l + log(softplus(l)·e^{−l}) for l < 0 (softplus(l) ≈ eˡ underflows from l ≈ −104 in float32,
    where its log is ≈ l), log(softplus(l)) for l ≥ 0."""
    negative = array_function(lambda l: l < 0, logits)
    below = ops.where(negative, logits, 0.0)
    return ops.where(negative, below + ops.log(softplus_over_exp(below)), ops.log(ops.softplus(ops.where(negative, 1.0, logits))))


class Geometric(Distribution):
    """Geometric(probs p) or Geometric(logits=l), p = σ(l): P(X = k) = (1 − p)^k·p, k = 0, 1, 2, …, elementwise, as
    torch.distributions.Geometric (failures before the first success, not trials).

    sample     floor(log u / log(1 − p)), u ~ Uniform(0, 1) open (torch's inversion); no rsample (a discrete value)
    log_prob   k·log(1 − p) + log p (0·log 0 = 0 at p = 1, k = 0, as torch's); −∞ for k < 0 or not an integer
    entropy    (−p log p − (1 − p) log(1 − p))/p: −log p − (1 − p)·log1p(−p)/p of probs given (0 at p = 1), and
               softplus(−l) + softplus(l)·e^{−l} of logits given (``softplus_over_exp``); below √ε p's series,
               1 − p/2 − p²/6 (the closed form's gradient divides by p², which underflows: NaN at p = 10⁻⁴⁵)
    mean (1 − p)/p;  mode 0;  variance (1 − p)/p²
    log p = −softplus(−l), log(1 − p) = −softplus(l), (1 − p)/p = e^{−l} when logits are given: every quantity finite
    for logits up to ±10⁴ (where p or 1 − p underflows). Given probs are used as they are (torch's formulas; torch's
    entropy goes through the clamped logits, off by ~ε at p = 1, where this one is 0).
    support nonnegative_integer; arg_constraints probs unit_interval, logits real. Exactly one of probs and logits;
    constant CPU probs must be in (0, 1] (torch's validate_args check, p > 0, made always, as minivae's others).

    Different from torch on purpose: log_prob of a value outside the support (k < 0 or not an integer) is −∞, where
    torch refuses it (validate_args) or extrapolates the formula.
    """

    _params = ("logits", "_probs")
    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None):
        self.logits, self._probs = logits_from(probs, logits, "Geometric", binary=True)
        p = self._probs
        if p is not None and checkable(p) and not (p.data > 0).all():
            raise ValueError(f"Geometric: probs must be in (0, 1] (a success probability of 0 never stops), "
                             f"got {_first_bad(p.data, p.data > 0)}")
        self.batch_shape = self.logits.shape
        self._dtype = self.logits.dtype

    @property
    def probs(self):
        return ops.sigmoid(self.logits) if self._probs is None else self._probs

    def _log_p_and_q(self):
        """(log p, log(1 − p)): of the logits when given (−softplus(−l), −softplus(l)), else of the probs (log p,
        log1p(−p), −∞ at p = 1)."""
        if self._probs is None:
            return -ops.softplus(-self.logits), -ops.softplus(self.logits)
        p = self._probs
        certain = array_function(lambda p: p == 1, p)
        return ops.log(p), ops.where(certain, -math.inf, ops.log1p(-ops.where(certain, 0.0, p)))

    @property
    def mean(self):
        if self._probs is None:
            return ops.exp(-self.logits)
        return 1 / self._probs - 1

    @property
    def mode(self):
        return 0 * self.probs

    @property
    def variance(self):
        if self._probs is None:
            odds = ops.exp(-self.logits)  # (1 − p)/p
            return odds * (1 + odds)
        return (1 / self._probs - 1) / self._probs

    def sample(self, sample_shape=(), rng=None):
        """floor(log u / log(1 − p)) of uniforms u drawn by ``rng`` in the parameters' dtype (0 where p = 1; ∞ where
        log(1 − p) rounds to 0, p below the dtype's smallest number), no gradient."""
        _, log_q = self._log_p_and_q()
        u = resolve(rng).uniform(self._extended(sample_shape), self._dtype, device=self.logits.device)
        xp = self.logits.xp

        def draw(u, log_q):
            below = log_q < 0
            k = xp.floor(xp.log(u) / xp.where(below, log_q, -1.0))
            return xp.where(below, xp.where(xp.isinf(log_q), 0.0, k), xp.inf).astype(u.dtype)
        return array_function(draw, u, log_q)

    def log_prob(self, value):
        value = as_value(value, self.logits)
        log_p, log_q = self._log_p_and_q()
        outside, zero = array_function(lambda inside, k: (~inside, k == 0), self.support.check(value), value)
        k = ops.where(outside, 0.0, value)
        failures = k * ops.where(zero, 0.0, log_q)  # (0·log 0 = 0 at p = 1, k = 0)
        return ops.where(outside, -math.inf, failures + log_p)

    def entropy(self):
        if self._probs is not None:  # −log p − (1 − p)·log1p(−p)/p, the second term 0 at p = 1
            p = self._probs
            certain, small = array_function(lambda p: (p == 1, p < _sqrt_eps(p)), p)
            q = ops.where(certain | small, 0.5, p)
            series = 1.0 - p * (0.5 + p / 6.0)  # −(1 − p)·log1p(−p)/p = 1 − p/2 − p²/6 + O(p³)
            closed = ops.where(certain, 0.0, -(1 - q) * ops.log1p(-q) / q)
            return -ops.log(p) + ops.where(small, series, closed)
        return ops.softplus(-self.logits) + softplus_over_exp(self.logits)

    def __repr__(self):
        return f"Geometric(batch_shape={self.batch_shape})"

