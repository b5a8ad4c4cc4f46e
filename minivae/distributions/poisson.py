"""Counts: the Poisson distribution, drawn per element from the Philox stream (inversion for small rates,
Hörmann's transformed rejection for the others), and the negative binomial, a Gamma mixture of Poissons."""
import math

import numpy

from minivae import ops
from minivae._backend import get_array_module
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, checked_params, logits_from
from minivae.distributions.gamma import counted_draw, standard_gamma_draws
from minivae.engine import array_function, no_grad
from minivae.ops.gamma import HALF_LOG_2PI, lgamma_positive
from minivae.ops.saddle import TWO_PI, bd0, stirlerr
from minivae.random import philox4x32, resolve, words_to_uniform

INVERSION_BELOW = 10.0  # λ below this: inversion (≤ λ + 12√λ + 14 steps for u ≤ 1 − 2⁻³³); above: transformed rejection
INVERSION_STEPS = 64  # P(X > 63) < 10⁻²⁸ for λ < 10; the sum then stops rising in float64 (see poisson_draws)
POISSON_ROUNDS = 32  # PTRS accepts with probability > 0.86 a round for λ ≥ 10: 32 rounds all fail below 10⁻²⁷


def poisson_draws(rng, rate, shape, dtype, counter):
    """Draws of Poisson(λ) of ``shape`` (λ = ``rate``'s array broadcast to it, λ ≥ 0 finite), in ``dtype``, on the
    rate's device, from n = prod(shape) Philox blocks of ``rng`` at ``counter`` c, laid out as the Gamma draws'
    (minivae/random.py, "Stream layout"): element i, round r uses the block of counter words (lo(c + i), hi(c + i),
    r, 0), its words made float64 uniforms u_k = (w_k + ½)·2⁻³². So element i depends only on (seed, c + i, λ_i).

    λ < 10, inversion (one round): u = u₀, X the least k with F(k) = Σ_{j≤k} e^{−λ}λʲ/j! ≥ u, found by adding the
    terms p_k = p_{k−1}·λ/k in turn; F rises to within 10⁻¹⁴ of 1, above u ≤ 1 − 2⁻³³, long before INVERSION_STEPS.
    λ ≥ 10, Hörmann's PTRS (1993, "The transformed rejection method for generating Poisson random variables"), a
    round's U = u₀ − ½, V = u₁: with b = 0.931 + 2.53√λ, a = −0.059 + 0.02483·b, 1/α = 1.1239 + 1.1328/(b − 3.4),
    v_r = 0.9277 − 3.6224/(b − 2), u_s = ½ − |U| and k = ⌊(2a/u_s + b)·U + λ + 0.43⌋: accept k at once when
    u_s ≥ 0.07 and V ≤ v_r; reject when k < 0 or (u_s < 0.013 and V > u_s); else accept when
    log V + log(1/α) − log(a/u_s² + b) ≤ k log λ − λ − lgamma(k + 1). An element no round accepts is NaN.
    Array code, round by round over the elements pending (on a GPU each round's count of them is one copy to the
    host); counts above 2²⁴ round in float32, as any float32 count does."""
    xp = get_array_module(rate)
    n = math.prod(shape)
    lam = xp.broadcast_to(rate.astype(numpy.float64), shape).ravel()
    key = (rng.seed & 0xFFFFFFFF, (rng.seed >> 32) & 0xFFFFFFFF)

    def uniforms(elements, r):
        block = elements + numpy.uint64(counter)  # ≤ 2⁶⁴ − 1: _take refuses a draw past the last block
        return words_to_uniform(philox4x32((block & numpy.uint64(0xFFFFFFFF), block >> numpy.uint64(32), r, 0), key),
                                numpy.float64)

    out = xp.full(n, numpy.nan)
    small = xp.nonzero(lam < INVERSION_BELOW)[0].astype(numpy.uint64)
    if small.size:
        ls = lam[small]
        u = uniforms(small, 0)[0]
        k, p = xp.zeros_like(ls), xp.exp(-ls)
        total = p
        for step in range(1, INVERSION_STEPS):
            below = u > total  # X ≥ step
            k = k + below
            p = p * ls / step
            total = total + p
        out[small] = k
    out[lam == numpy.inf] = numpy.inf  # (NaN stays NaN)
    pending = xp.nonzero((lam >= INVERSION_BELOW) & (lam < numpy.inf))[0].astype(numpy.uint64)
    if pending.size:
        ll = lam[pending]
        b = 0.931 + 2.53 * xp.sqrt(ll)
        a = -0.059 + 0.02483 * b
        log_inv_alpha = xp.log(1.1239 + 1.1328 / (b - 3.4))
        v_r = 0.9277 - 3.6224 / (b - 2)
        log_lam = xp.log(ll)
        for r in range(POISSON_ROUNDS):
            if not pending.size:
                break
            w = uniforms(pending, r)
            big_u, v = w[0] - 0.5, w[1]
            u_s = 0.5 - xp.abs(big_u)
            k = xp.floor((2 * a / u_s + b) * big_u + ll + 0.43)
            quick = (u_s >= 0.07) & (v <= v_r)
            refused = (k < 0) | ((u_s < 0.013) & (v > u_s))
            log_f = k * log_lam - ll - lgamma_positive(xp, xp.maximum(k, 0.0) + 1)
            accept = quick | (~refused & (xp.log(v) + log_inv_alpha - xp.log(a / (u_s * u_s) + b) <= log_f))
            out[pending[accept]] = k[accept]
            keep = ~accept
            pending, ll, b, a, log_inv_alpha, v_r, log_lam = (
                t[keep] for t in (pending, ll, b, a, log_inv_alpha, v_r, log_lam))
    return out.astype(dtype).reshape(shape)


def poisson_log_pmf(k, rate):
    """log P(k; λ) = k log λ − λ − lgamma(k + 1) of counts k ≥ 0: −λ at k = 0, and at k ≥ 1 Loader's saddle-point form
    −s(k) − bd0(k, λ) − ½ log(2πk) (minivae/ops/saddle.py), without the difference of k log λ and lgamma(k + 1)."""
    zero = k == 0
    k = ops.where(zero, 1.0, k)
    return ops.where(zero, -rate, -stirlerr(k) - bd0(k, rate) - 0.5 * ops.log(TWO_PI * k))


def _not_a_count(value):
    """Where ``value`` is no count: below 0, not a whole number, or NaN."""
    xp = value.xp
    return array_function(lambda v: ~((v >= 0) & (xp.floor(v) == v)), value)


class Poisson(Distribution):
    """Poisson(rate λ): P(k) = λᵏe^{−λ}/k! on k = 0, 1, 2, …, elementwise, as torch.distributions.Poisson.

    sample     no gradient (a count): ``poisson_draws`` (inversion below λ = 10, Hörmann's PTRS above)
    log_prob   k log λ − λ − lgamma(k + 1), as −λ at k = 0 and for k ≥ 1 as Loader's −s(k) − bd0(k, λ) − ½ log(2πk)
               (``poisson_log_pmf``: the plain formula's k log λ and lgamma(k + 1) cancel, 2·10¹¹ each at k = λ = 10¹⁰,
               where its float32 value was −16384 for −12.4);  ∂/∂λ = k/λ − 1
    mean, variance λ;  mode ⌊λ⌋
    support nonnegative_integer; arg_constraints rate nonnegative. A constant CPU rate must be ≥ 0 and finite.
    kl_divergence(Poisson, Poisson) = λ_p log(λ_p/λ_q) − λ_p + λ_q (minivae.distributions.kl).

    Different from torch on purpose: log_prob of a value that is no count (negative, fractional) is −∞, where torch
    refuses it (validate_args) or evaluates the formula at it.
    """

    _params = ("rate",)
    arg_constraints = {"rate": constraints.nonnegative}
    support = constraints.nonnegative_integer

    def __init__(self, rate):
        (self.rate,), self.batch_shape, self._dtype = checked_params((rate,), ("rate",), "Poisson", positive=(),
                                                                     nonnegative=("rate",))

    @property
    def mean(self):
        return self._batch(self.rate)

    variance = mean

    @property
    def mode(self):
        return self._batch(ops.floor(self.rate))

    def sample(self, sample_shape=(), rng=None):
        """Counts in the rate's dtype, drawn by ``rng`` (``poisson_draws``): n = prod(shape) Philox blocks."""
        rng, shape = resolve(rng), self._extended(sample_shape)
        with no_grad():
            return counted_draw(rng, math.prod(shape),
                                lambda rate, counter: poisson_draws(rng, rate, shape, rate.dtype, counter), self.rate)

    def log_prob(self, value):
        value = self._value(value)
        bad = _not_a_count(value)
        k = ops.where(bad, 0.0, value)
        return ops.where(bad, -math.inf, poisson_log_pmf(k, self.rate))

    def __repr__(self):
        return f"Poisson(batch_shape={self.batch_shape})"


class NegativeBinomial(Distribution):
    """NegativeBinomial(total_count r, probs p | logits l): the number k of successes before the r-th failure, each
    trial a success with probability p = σ(l), as torch.distributions.NegativeBinomial (r real > 0):
    P(k) = Γ(r + k)/(Γ(r)·k!)·(1 − p)ʳ·pᵏ. As a count likelihood of mean μ and inverse dispersion θ (variance
    μ + μ²/θ, as scVI's): r = θ, l = log μ − log θ.

    sample     Poisson(G), G ~ Gamma(r, rate e^{−l}) = Gamma(r, 1)·e^l (a Gamma mixture of Poissons, torch's); no
               gradient
    log_prob   r·log σ(−l) + k·log σ(l) + lgamma(r + k) − lgamma(r) − lgamma(k + 1) (log σ(x) = −softplus(−x)):
               r·log σ(−l) at k = 0; for k ≥ 1 Loader's saddle-point form (R's dnbinom: r/n times the Binomial(n = r + k,
               σ(−l)) probability of r), s(n) − s(r) − s(k) − bd0(r, n·σ(−l)) − bd0(k, n·σ(l)) + ½ log(r/(2πkn))
               (minivae/ops/saddle.py: the plain lgammas cancel where r or k is large); where σ(−l) < r·tiny or
               σ(l) < k·tiny (tiny: the dtype's smallest normal number; |l| ≳ 60 in float32: the chain rule through
               σ(±l) would take r/σ(−l) or k/σ(l), ∞ in the dtype) the plain formula, its lgammas as s(n) − s(r) − s(k)
               + (n − ½)·log n − (r − ½)·log r − (k + ½)·log k − ½ log 2π (r·log σ(−l) or k·log σ(l) dominates there)
    mean r·e^l;  variance mean/σ(−l);  mode max(⌊(r − 1)·e^l⌋, 0)
    Give exactly one of ``probs`` (in [0, 1)) and ``logits``. support nonnegative_integer; a constant CPU total_count
    must be > 0 and finite.

    Different from torch on purpose: log_prob of a value that is no count is −∞ (torch: refused, or the formula);
    total_count 0 (torch's degenerate point mass at 0) is refused.
    """

    _params = ("total_count", "logits", "_probs")
    arg_constraints = {"total_count": constraints.positive, "probs": constraints.half_open_interval(0.0, 1.0),
                       "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, total_count, probs=None, logits=None):
        logits, self._probs = logits_from(probs, logits, "NegativeBinomial", binary=True)
        (self.total_count, self.logits), self.batch_shape, self._dtype = checked_params(
            (total_count, logits), ("total_count", "logits"), "NegativeBinomial", positive=("total_count",))

    @property
    def probs(self):
        return ops.sigmoid(self.logits) if self._probs is None else self._probs

    @property
    def mean(self):
        return self._batch(self.total_count * ops.exp(self.logits))

    @property
    def mode(self):
        return self._batch(ops.clip(ops.floor((self.total_count - 1) * ops.exp(self.logits)), 0.0))

    @property
    def variance(self):
        return self.mean / ops.sigmoid(-self.logits)

    def sample(self, sample_shape=(), rng=None):
        """Poisson(G), G ~ Gamma(r, e^{−l}): 2·prod(shape) Philox blocks of ``rng``, the Gamma draws' then the
        Poisson draws'."""
        rng, shape, dtype = resolve(rng), self._extended(sample_shape), self._dtype
        n, device = math.prod(shape), self.logits.device
        with no_grad():
            g = counted_draw(rng, n, lambda r, c: standard_gamma_draws(rng, r, shape, dtype, device, c), self.total_count)
            rate = g * ops.exp(self.logits)  # Gamma(r, e^{−l}) = Gamma(r, 1)·e^l: ∞ (not a refusal) where e^l overflows
            return counted_draw(rng, n, lambda lam, c: poisson_draws(rng, lam, shape, dtype, c), rate)

    def log_prob(self, value):
        value = self._value(value)
        bad = _not_a_count(value)
        zero = value == 0
        k = ops.where(bad | zero, 1.0, value)
        r, l = self.total_count, self.logits
        log_q, log_p = -ops.softplus(l), -ops.softplus(-l)
        n = r + k
        log_r, log_k, log_n = ops.log(r), ops.log(k), ops.log(n)
        stirling = stirlerr(n) - stirlerr(r) - stirlerr(k)  # (lgamma(n) − lgamma(r) − lgamma(k + 1) less Stirling's parts)
        q, p = ops.sigmoid(-l), ops.sigmoid(l)
        saddle = stirling - bd0(r, q, n) - bd0(k, p, n) + 0.5 * (log_r - log_k - log_n) - HALF_LOG_2PI
        plain = (r * log_q + k * log_p + stirling + (n - 0.5) * log_n - (r - 0.5) * log_r - (k + 0.5) * log_k
                 - HALF_LOG_2PI)
        tiny = float(numpy.finfo(q.dtype).tiny)
        lp = ops.where((q >= r * tiny) & (p >= k * tiny), saddle, plain)
        return ops.where(bad, -math.inf, ops.where(zero, r * log_q, lp))

    def __repr__(self):
        return f"NegativeBinomial(batch_shape={self.batch_shape})"
