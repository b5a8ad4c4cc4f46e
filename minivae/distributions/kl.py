"""KL(p ‖ q): a table of closed forms, and a Monte Carlo estimate for the rest.

The pairs, each torch's formula unless said otherwise (p ‖ q):
    Normal ‖ Normal, Bernoulli ‖ Bernoulli, Categorical ‖ Categorical (so OneHotCategorical ‖ OneHotCategorical),
    ContinuousBernoulli ‖ ContinuousBernoulli, Laplace ‖ Laplace, Uniform ‖ Uniform, Independent ‖ Independent,
    Normal ‖ Laplace, Laplace ‖ Normal, Uniform ‖ Normal, ContinuousBernoulli ‖ Normal, ContinuousBernoulli ‖ Uniform,
    Uniform ‖ ContinuousBernoulli, Gamma ‖ Gamma, Exponential ‖ Exponential, Exponential ‖ Gamma, Beta ‖ Beta,
    Dirichlet ‖ Dirichlet, Poisson ‖ Poisson, MultivariateNormal ‖ MultivariateNormal, LogNormal ‖ LogNormal,
    HalfNormal ‖ HalfNormal, Cauchy ‖ Cauchy, Gumbel ‖ Gumbel, Geometric ‖ Geometric, Gumbel ‖ Normal, Normal ‖ Gumbel,
    Exponential ‖ Gumbel, Gamma ‖ Gumbel, Uniform ‖ Gumbel; MultivariateNormal ‖ Independent and Independent ‖
    MultivariateNormal (an Independent of Normals over one axis; not in torch); and +∞ for Normal ‖ Uniform,
    Laplace ‖ Uniform and Gumbel ‖ Beta, ContinuousBernoulli, Exponential, Gamma or Uniform (p's support is not q's).
``kl_divergence`` takes the most specific registered pair of types (as torch's: by p's class, then q's, along their
MROs), so a pair registered for subclasses wins over one for their bases whatever the order of registration.
"""
import functools
import math
import warnings

import numpy

from minivae import ops
from minivae.distributions.bernoulli import Bernoulli
from minivae.distributions.beta import Beta, log_beta
from minivae.distributions.categorical import Categorical
from minivae.distributions.cauchy import Cauchy
from minivae.distributions.continuous_bernoulli import ContinuousBernoulli
from minivae.distributions.dirichlet import Dirichlet, below_root_tiny
from minivae.distributions.distribution import LOG_2PI
from minivae.distributions.exponential import Exponential
from minivae.distributions.gamma import SADDLE_FROM, Gamma
from minivae.distributions.geometric import Geometric, log_softplus, softplus_over_exp
from minivae.distributions.gumbel import Gumbel
from minivae.distributions.half_normal import HalfNormal
from minivae.distributions.independent import Independent, sum_rightmost
from minivae.distributions.laplace import Laplace
from minivae.distributions.log_normal import LogNormal
from minivae.distributions.multivariate_normal import MultivariateNormal, half_log_det, identity, mahalanobis
from minivae.distributions.normal import Normal
from minivae.distributions.poisson import Poisson
from minivae.distributions.student_t import _overflows
from minivae.distributions.uniform import Uniform
from minivae.engine import array_function
from minivae.ops import xlogy
from minivae.ops.saddle import bd0, stirlerr

_KL = {}


def register_kl(p_type, q_type):
    """Decorator: ``fn(p, q)`` computes KL(p ‖ q) in closed form for these types (and their subclasses, where no more
    specific pair is registered)."""
    def add(fn):
        _KL[p_type, q_type] = fn
        _dispatch.cache_clear()  # (a new pair may be the more specific one for types already looked up)
        return fn
    return add


@functools.lru_cache(maxsize=None)  # once a pair of types (kl_divergence runs at every step of an ELBO)
def _dispatch(type_p, type_q):
    """The function of the most specific registered pair (tp, tq) with type_p a subclass of tp and type_q of tq: the
    nearest tp along type_p's MRO, then the nearest tq (None when none matches). Where the other order (q's first)
    picks another function, the pair is ambiguous: a RuntimeWarning says which pair to register, as torch's."""
    matches = [(tp, tq) for tp, tq in _KL if issubclass(type_p, tp) and issubclass(type_q, tq)]
    if not matches:
        return None
    rank = {m: (type_p.__mro__.index(m[0]), type_q.__mro__.index(m[1])) for m in matches}
    left = min(matches, key=lambda m: rank[m])
    right = min(matches, key=lambda m: rank[m][::-1])
    if _KL[left] is not _KL[right]:
        warnings.warn(f"Ambiguous kl_divergence({type_p.__name__}, {type_q.__name__}): register_kl({left[0].__name__}, "
                      f"{right[1].__name__})", RuntimeWarning, stacklevel=3)
    return _KL[left]


def kl_divergence(p, q):
    """KL(p ‖ q) = E_p[log p − log q], in nats, over the batch; NotImplementedError naming both types where no closed
    form is registered."""
    fn = _dispatch(type(p), type(q))
    if fn is None:
        raise NotImplementedError(
            f"no closed form for KL({type(p).__name__} ‖ {type(q).__name__}); "
            "estimate it with minivae.distributions.mc_kl(p, q, n, rng=)")
    return fn(p, q)


def _infinite(p, q):
    """+∞ of the batch shape of p and q broadcast, in p's dtype, on its device (no gradient: a constant)."""
    like = p.loc
    shape = numpy.broadcast_shapes(tuple(p.batch_shape), tuple(q.batch_shape))
    return array_function(lambda a: like.xp.full(shape, math.inf, p._dtype), like)


def _log_ratio(a, b):
    """log(a/b) of a, b > 0: the log of the quotient where it is a normal number, else log a − log b. The quotient of
    scales far apart under- or overflows (10⁻³⁰/10³⁰ is 0 in float32, where log(a/b) is −138: −∞ and ∞ made KLs of
    +∞ and NaN, and gradients of ±∞), and below the normal numbers it has lost digits. (The quotient in the graph is
    of 1s there: the VJP of an ∞ quotient is NaN even for a gradient of 0.)"""
    quotient = a.detach() / b.detach()  # (by an op: b may be a number's tensor on the CPU, beside a on the GPU)
    normal = array_function(lambda r: (r >= numpy.finfo(r.dtype).tiny) & (r <= numpy.finfo(r.dtype).max), quotient)
    return ops.where(normal, ops.log(ops.where(normal, a, 1.0) / ops.where(normal, b, 1.0)), ops.log(a) - ops.log(b))


def _one_minus_exp_over(w):
    """(1 − e^{−w})/w of w ≥ 0, −expm1(−w)/w, by its series 1 − w/2 + w²/6 below √ε (0/0 at w = 0, and its gradient
    divides by w²)."""
    small = array_function(lambda w: w < math.sqrt(numpy.finfo(w.dtype).eps), w)
    safe = ops.where(small, 1.0, w)
    return ops.where(small, 1.0 - w * (0.5 - w / 6.0), -ops.expm1(-safe) / safe)


@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    """log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²) / (2σ_q²) − ½ (the log by ``_log_ratio``)."""
    ratio = p.scale / q.scale
    diff = (p.loc - q.loc) / q.scale
    return 0.5 * (ratio * ratio + diff * diff) - _log_ratio(p.scale, q.scale) - 0.5


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


def _bernoulli_impossible(d, value):
    """A mask of where ``d``'s probability of ``value`` (0 or 1) is exactly 0: a probability given of exactly 1 − value,
    or a logit of ∓∞; not one whose probability only rounds to 0 (σ(−120) in float32), as Categorical's."""
    if d._probs is None:
        return array_function(lambda logits: logits == (-math.inf if value else math.inf), d.logits)
    return array_function(lambda p: p == (1 - value), d._probs)


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p, q):
    """p·(softplus(−l_q) − softplus(−l_p)) + (1 − p)·(softplus(l_q) − softplus(l_p)), p = p.probs: torch's. Each term
    is 0 where p's weight of it is 0 (p = 0, p = 1) and +∞ where q's probability of its value is exactly 0 (see
    ``_bernoulli_impossible``); the logits at infinities are replaced by 0 before the products, so that neither a
    product nor its VJP meets 0·∞."""
    prob = p.probs
    p_zero, p_one = array_function(lambda p: (p == 0, p == 1), prob)
    q_zero, q_one = _bernoulli_impossible(q, 1), _bernoulli_impossible(q, 0)
    terms = []
    for weight, skip, infinite, sign in ((prob, p_zero, q_zero, -1), (1 - prob, p_one, q_one, 1)):
        # (masks of p and of q each applied by an op of their own: a q of numbers is on the CPU, a 0-d tensor that
        # the ops take beside a p on the GPU, where an array computation on both masks would mix the devices)
        lq = ops.where(skip, 0.0, ops.where(infinite, 0.0, q.logits))
        lp = ops.where(skip, 0.0, p.logits)
        term = weight * (ops.softplus(sign * lq) - ops.softplus(sign * lp))
        terms.append(ops.where(skip, 0.0, ops.where(infinite, math.inf, term)))
    return terms[0] + terms[1]


@register_kl(ContinuousBernoulli, ContinuousBernoulli)
def _kl_continuous_bernoulli_continuous_bernoulli(p, q):
    """E_p[x]·(η_p − η_q) + (log C_p − softplus(η_p)) − (log C_q − softplus(η_q)): torch's, with its
    log1p(−λ) = −softplus(η) computed from η (finite for any logits)."""
    return (p.mean * (p.logits - q.logits) + p._log_normalizer() - ops.softplus(p.logits)
            - q._log_normalizer() + ops.softplus(q.logits))


@register_kl(Laplace, Laplace)
def _kl_laplace_laplace(p, q):
    """−log r + |μ_p − μ_q|/b_q + r·e^{−|μ_p − μ_q|/b_p} − 1, r = b_p/b_q (torch's; log r by ``_log_ratio``); at
    μ_p = μ_q, r − 1 − log r, the formula's r of 1 there: r = ∞ made the VJP of r·e^{−0} through the exponent
    ∞·0 = NaN where the gradients in b_p and the locations are numbers (1/b_q − 1/b_p and 0 at b_p = 10³⁰, b_q = 10⁻⁹
    in float32)."""
    ratio = p.scale / q.scale
    diff = ops.abs(p.loc - q.loc)
    same = array_function(lambda d: d == 0, diff)
    general = _kl_laplace_formula(p, q, ops.where(same, 1.0, ratio), diff)
    return ops.where(same, ratio - 1 - _log_ratio(p.scale, q.scale), general)


def _kl_laplace_formula(p, q, ratio, diff):
    """−log(b_p/b_q) + d/b_q + r·e^{−d/b_p} − 1 of r = ``ratio``, d = ``diff``; r·e^{−d/b_p} = 0 where d/b_p overflows
    (the VJP of its quotient, −ḡ·d/b_p², was 0·∞ = NaN: the gradient in b_p at d = 10³⁰, b_p = 10⁻¹⁰ in float32, where
    it is −1/b_p; r of 1 there, whose ∞ would make r·0 NaN)."""
    far = array_function(_overflows, diff, p.scale)
    decay = ops.where(far, 1.0, ratio) * ops.exp(-ops.where(far, 0.0, diff) / p.scale)
    return -_log_ratio(p.scale, q.scale) + diff / q.scale + ops.where(far, 0.0, decay) - 1


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p, q):
    """log((high_q − low_q)/(high_p − low_p)), +∞ where p's interval is not inside q's (low_q > low_p or
    high_q < high_p), as torch's."""
    # (from the differences, ops, so that a q of numbers, on the CPU, serves beside a p on the GPU as the ops take it;
    # a − b > 0 exactly where a > b)
    outside = array_function(lambda below, above: (below > 0) | (above > 0), q.low - p.low, p.high - q.high)
    return ops.where(outside, math.inf, _log_ratio(q.high - q.low, p.high - p.low))


@register_kl(Normal, Laplace)
def _kl_normal_laplace(p, q):
    """−log(σ/b) + (σ·√(2/π)·e^{−δ²/(2σ²)} + δ·erf(δ/(σ√2)))/b − ½(1 + log(π/2)), δ = μ_p − μ_q (torch's):
    E|X − μ_q| of X ~ N(μ_p, σ²) is the folded normal's mean; at δ = 0 σ·√(2/π), its own branch (a VJP of ∞ through
    e^{−z²/2} met z = 0: ∞·0 = NaN where σ/b overflows, at σ = 10³⁰, b = 10⁻⁹ in float32, where the gradients in σ and
    the locations are numbers; the other branch gets a VJP of 0 there)."""
    delta = p.loc - q.loc
    same = array_function(lambda d: d == 0, delta)
    z = delta / p.scale
    folded = math.sqrt(2 / math.pi) * p.scale * ops.exp(-0.5 * z * z) + delta * ops.erf(math.sqrt(0.5) * z)
    folded = ops.where(same, math.sqrt(2 / math.pi) * p.scale, folded)
    return -_log_ratio(p.scale, q.scale) + folded / q.scale - 0.5 * (1 + math.log(0.5 * math.pi))


@register_kl(Laplace, Normal)
def _kl_laplace_normal(p, q):
    """−½·log(2b²/(πσ²)) + b²/σ² + (μ_p − μ_q)²/(2σ²) − 1: torch's, with its ½μ_p² − μ_pμ_q + ½μ_q² written as the
    square of the difference (no cancellation for large locations)."""
    ratio2 = (p.scale / q.scale) ** 2
    delta = (p.loc - q.loc) / q.scale
    return -0.5 * math.log(2 / math.pi) - _log_ratio(p.scale, q.scale) + ratio2 + 0.5 * delta * delta - 1


@register_kl(Uniform, Normal)
def _kl_uniform_normal(p, q):
    """log(√(2π)·σ/(b − a)) + ((b − a)²/12 + ((a + b)/2 − μ)²)/(2σ²), p = U(a, b) (torch's), as ½ log 2π −
    log((b − a)/σ) + (w²/12 + c²)/2 of the quotients by σ w = (b − a)/σ, c = ((a + b)/2 − μ)/σ (the log by ``_log_ratio``):
    σ² and (b − a)² underflow (0/0 = NaN at b − a = σ = 10⁻³⁰ in float32, where the KL is 1.09) and √(2π)σ/(b − a)
    overflows (+∞ at σ/(b − a) = 10⁴⁰, where it is 93)."""
    width = (p.high - p.low) / q.scale
    centre = ((p.high + p.low) / 2 - q.loc) / q.scale
    return 0.5 * LOG_2PI - _log_ratio(p.high - p.low, q.scale) + (width * width / 12 + centre * centre) / 2


@register_kl(Normal, Uniform)
@register_kl(Laplace, Uniform)
def _kl_unbounded_uniform(p, q):
    """+∞: p gives mass outside every bounded interval (torch's)."""
    return _infinite(p, q)


@register_kl(ContinuousBernoulli, Normal)
def _kl_continuous_bernoulli_normal(p, q):
    """−H(p) + ½ log 2π + log σ + E_p[(x − μ)²]/(2σ²), E_p[(x − μ)²] = Var p + (E p − μ)² (torch's, written as the
    square of the difference)."""
    centre = p.mean - q.loc
    return (-p.entropy() + 0.5 * LOG_2PI + ops.log(q.scale)
            + (p.variance + centre * centre) / (2 * q.scale * q.scale))


@register_kl(ContinuousBernoulli, Uniform)
def _kl_continuous_bernoulli_uniform(p, q):
    """−H(p) + log(high − low), +∞ where [0, 1] is not inside [low, high] (low > 0 or high < 1). torch's test is
    low ≥ 0 or high ≤ 1, which makes KL(CB ‖ U(0, 2)) +∞ where it is log 2 − H(p)."""
    outside = array_function(lambda lo, hi: (lo > 0) | (hi < 1), q.low, q.high)
    return ops.where(outside, math.inf, -p.entropy() + ops.log(q.high - q.low))


@register_kl(Uniform, ContinuousBernoulli)
def _kl_uniform_continuous_bernoulli(p, q):
    """−H(p) − E_p[x]·η − log(1 − λ) − log C = −log(high − low) − (low + high)/2·η + softplus(η) − log C, +∞ where
    [low, high] is not inside [0, 1] (low < 0 or high > 1). torch's test is low ≤ 0 or high ≥ 1, which makes
    KL(U(0, 1) ‖ CB) +∞."""
    outside = array_function(lambda lo, hi: (lo < 0) | (hi > 1), p.low, p.high)
    value = (-ops.log(p.high - p.low) - p.mean * q.logits + ops.softplus(q.logits) - q._log_normalizer())
    return ops.where(outside, math.inf, value)


EULER_GAMMA = 0.5772156649015329  # γ = 0.57721566490153286061…


def _gamma_terms_near_zero(x_p, x_q):
    """lgamma(x_q) − lgamma(x_p) + (x_p − x_q)·ψ(x_p) − (x_q/x_p − 1), the Gamma functions' part of the KLs of the
    Gamma, Beta and Dirichlet less its pole, for an x_p below √tiny: through lgamma(x) = lgamma(x + 1) − log x and
    ψ(x) = ψ(x + 1) − 1/x, lgamma(x_q + 1) − lgamma(x_p + 1) + (x_p − x_q)·ψ(x_p + 1) + log(x_p/x_q) (the log by
    ``_log_ratio``), whose gradient in x_p has no ψ′(x_p) ≈ 1/x_p² (∞ in float32 below 10⁻¹⁹: ∞·0 = NaN at x_p = x_q,
    where the KL's gradient is 0). The callers add the poles x_q/x_p − 1, combined into terms ≥ 0 where they cancel."""
    return ops.lgamma(x_q + 1) - ops.lgamma(x_p + 1) + (x_p - x_q) * ops.digamma(x_p + 1) + _log_ratio(x_p, x_q)


def _large(near, *concentrations):
    """A mask: where one of the ``concentrations`` exceeds SADDLE_FROM and ``near`` is not set (the saddle-point forms
    there)."""
    return array_function(lambda near, *c: ~near & functools.reduce(numpy.logical_or, [x > SADDLE_FROM for x in c]),
                          near, *concentrations)


def _gamma_terms_saddle(x_p, x_q):
    """lgamma(x_q) − lgamma(x_p) + (x_p − x_q)·ψ(x_p) less bd0(x_q, x_p), by lgamma(x) = s(x) + (x − ½)·log x − x +
    ½ log 2π and ψ(x) = log x − 1/(2x) + s'(x) (s = ``ops.stirlerr``): ½·bd0(x_p, x_q)/x_p + s(x_q) − s(x_p) −
    (x_q − x_p)·s'(x_p), where ½·bd0(x_p, x_q)/x_p = ½(r − 1 − log r), r = x_q/x_p, gathers −½ log r + (x_q − x_p)/(2x_p):
    the terms of x·log x, each of the size of lgamma, cancelled analytically, the rest ≥ 0 or of order 1/x."""
    return (0.5 * bd0(x_p, x_q) / x_p + stirlerr(x_q) - stirlerr(x_p)
            - (x_q - x_p) * stirlerr(x_p, order=1))


def _dirichlet_terms_saddle(a_p, a_q):
    """Σₖ G(α_pk, α_qk) − G(α₀_p, α₀_q) of the last axis, G = lgamma(x_q) − lgamma(x_p) + (x_p − x_q)·ψ(x_p) (the
    Gamma functions' part of the Beta's and Dirichlet's KLs), as the multinomial deviance Σₖ bd0(α_qk, α₀_q·α_pk/α₀_p)
    (= Σₖ bd0(α_qk, α_pk) − bd0(α₀_q, α₀_p), terms ≥ 0 instead of a difference of terms of α·log r) plus the
    ``_gamma_terms_saddle`` of each. (α₀'s rounding moves the deviance's terms by opposite amounts, to first order
    nothing: as Beta's ``_log_prob_saddle``.)"""
    s_p, s_q = a_p.sum(axis=-1, keepdims=True), a_q.sum(axis=-1, keepdims=True)
    deviance = bd0(a_q, a_p / s_p, s_q).sum(axis=-1)
    return deviance + _gamma_terms_saddle(a_p, a_q).sum(axis=-1) - _gamma_terms_saddle(s_p, s_q)[..., 0]


def _near_zero(*concentrations):
    """A mask: where any of p's concentrations is below √tiny of its dtype (``_gamma_terms_near_zero`` there)."""
    return array_function(lambda *c: functools.reduce(numpy.logical_or, [below_root_tiny(x) for x in c]), *concentrations)


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p, q):
    """α_q·log(β_p/β_q) + lgamma(α_q) − lgamma(α_p) + (α_p − α_q)·ψ(α_p) + (β_q − β_p)·α_p/β_p (torch's; the log by
    ``_log_ratio``), the Gamma functions' part by ``_gamma_terms_near_zero`` where α_p is below √tiny (the formula's
    branch of α_p = 1 there), and where α_p or α_q exceeds SADDLE_FROM as bd0(α_q, α_p) + ``_gamma_terms_saddle``
    (the lgammas cancel: 0.00648 for 0.00500 in float32 at α_p = 10⁴, α_q = 1.001·10⁴), with the rates' terms
    gathered into bd0(α_q, ρ·α_p), ρ = β_q/β_p, where ρ is a normal number (α_q·log(β_p/β_q) and α_p·β_q/β_p cancel
    as the lgammas: the gradient in β_p is their difference, 33280 for 33451 at α = 10¹⁰, β = 3)."""
    near = _near_zero(p.concentration)
    a_p, b_p, a_q, b_q = p.concentration, p.rate, q.concentration, q.rate
    large = _large(near, a_p, a_q)
    one = ops.where(near | large, 1.0, a_p)
    usual = ops.lgamma(a_q) - ops.lgamma(one) + (one - a_q) * ops.digamma(one)
    small = ops.where(near, a_p, 1.0)
    big_p, big_q = (ops.where(large, a, 2 * SADDLE_FROM) for a in (a_p, a_q))
    fused = array_function(lambda large, r: large & (r < math.inf) & (r >= numpy.finfo(r.dtype).tiny),
                           large, b_q.detach() / b_p.detach())
    rho = ops.where(fused, b_q, 1.0) / ops.where(fused, b_p, 1.0)
    terms = ops.where(near, _gamma_terms_near_zero(small, a_q) + a_q / small - 1,
                      ops.where(large, bd0(big_q, big_p, rho) + _gamma_terms_saddle(big_p, big_q), usual))
    return ops.where(fused, 0.0, a_q * _log_ratio(b_p, b_q) + (b_q - b_p) * a_p / b_p) + terms


@register_kl(Exponential, Exponential)
def _kl_exponential_exponential(p, q):
    """r − log r − 1, r = β_q/β_p (torch's)."""
    return q.rate / p.rate - _log_ratio(q.rate, p.rate) - 1


@register_kl(Exponential, Gamma)
def _kl_exponential_gamma(p, q):
    """−α·log r + r + lgamma(α) + α·γ − (1 + γ), r = β_q/λ_p, γ Euler's constant (torch's): E_p[x] = 1/λ_p and
    E_p[log x] = −γ − log λ_p. (log r by ``_log_ratio``: r = ∞ made −α·∞ + ∞ = NaN where the KL is past the range.)
    Where α exceeds SADDLE_FROM and r is a normal number, as bd0(α, r) + s(α) − ½ log α + ½ log 2π + α·γ − (1 + γ)
    (s = ``ops.stirlerr``): lgamma(α) and α·log r, each of the size α·log α, cancel (in float32 33 ulps off at
    α = r = 10¹⁰; the gradient in α, ψ(α) − log r + γ, 1.4·10⁻⁶ for −3.8·10⁻⁸ at α = 10¹⁰, r = α·e^γ)."""
    ratio = q.rate / p.rate
    a = q.concentration
    usual = -a * _log_ratio(q.rate, p.rate) + ratio + ops.lgamma(a) + a * EULER_GAMMA - (1 + EULER_GAMMA)
    large = array_function(lambda a, r: (a > SADDLE_FROM) & (r < math.inf) & (r >= numpy.finfo(r.dtype).tiny),
                           a, ratio.detach())
    big = ops.where(large, a, 2 * SADDLE_FROM)
    rho = ops.where(large, q.rate, 1.0) / ops.where(large, p.rate, 1.0)
    saddle = bd0(big, rho) + stirlerr(big) - 0.5 * ops.log(big) + big * EULER_GAMMA + (0.5 * LOG_2PI - 1 - EULER_GAMMA)
    return ops.where(large, saddle, usual)


@register_kl(Beta, Beta)
def _kl_beta_beta(p, q):
    """log B(a_q, b_q) − log B(a_p, b_p) + (a_p − a_q)ψ(a_p) + (b_p − b_q)ψ(b_p) + (s_q − s_p)ψ(s_p), s = a + b (torch's,
    its lgamma terms grouped as the two log B); where a_p or b_p is below √tiny, the same as T(a) + T(b) − T(s) and
    their poles, T the ``_gamma_terms_near_zero`` of p's and q's (the formula's branch of 1s there); where one of the
    four exceeds SADDLE_FROM, by ``_dirichlet_terms_saddle`` of (a, b) (the log B cancel: 2.0 for 0.153 in float32 at
    (10⁶, 10⁶) ‖ (2·10⁶, 2·10⁶))."""
    near = _near_zero(p.concentration1, p.concentration0)
    large = _large(near, p.concentration1, p.concentration0, q.concentration1, q.concentration0)
    a_q, b_q = q.concentration1, q.concentration0
    pairs = [ops.stack([ops.broadcast_to(ops.where(large, c, 2 * SADDLE_FROM), large.shape) for c in d], axis=-1)
             for d in ((p.concentration1, p.concentration0), (a_q, b_q))]
    saddle = _dirichlet_terms_saddle(*pairs)
    a_p, b_p = ops.where(near | large, 1.0, p.concentration1), ops.where(near | large, 1.0, p.concentration0)
    s_p, s_q = a_p + b_p, a_q + b_q
    usual = (log_beta(a_q, b_q) - log_beta(a_p, b_p) + (a_p - a_q) * ops.digamma(a_p) + (b_p - b_q) * ops.digamma(b_p)
             + (s_q - s_p) * ops.digamma(s_p))
    a_p, b_p = ops.where(near, p.concentration1, 1.0), ops.where(near, p.concentration0, 1.0)
    # (the poles a_q/a_p + b_q/b_p − s_q/s_p − 1 as a_q(b_p/s_p)/a_p + b_q(a_p/s_p)/b_p − 1: terms ≥ 0, no ∞ − ∞, each
    # past the range only where it is; b_p/s_p as 1/(1 + a_p/b_p), whose gradient in b_p is not the difference of its
    # partials in b_p and in s_p, ±2.5·10¹⁹ times a_q/a_p at a_p = 8·10⁻²⁰, b_p = ½, where the sum is 4)
    small = (_gamma_terms_near_zero(a_p, a_q) + _gamma_terms_near_zero(b_p, b_q) - _gamma_terms_near_zero(a_p + b_p, s_q)
             + a_q / (1 + a_p / b_p) / a_p + b_q / (1 + b_p / a_p) / b_p - 1)
    return ops.where(near, small, ops.where(large, saddle, usual))


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p, q):
    """lgamma(α₀_p) − lgamma(α₀_q) − Σₖ (lgamma(α_p) − lgamma(α_q)) + Σₖ (α_p − α_q)(ψ(α_p) − ψ(α₀_p)) (torch's); both
    of K categories. Where an α_p is below √tiny, the same as Σₖ T(α_p, α_q) − T(α₀_p, α₀_q) and their poles, T the
    ``_gamma_terms_near_zero`` (the formula's branch of 1s there); where an α_p or α_q exceeds SADDLE_FROM, by
    ``_dirichlet_terms_saddle`` (the lgammas cancel)."""
    a_p, a_q = p.concentration, q.concentration
    if a_p.shape[-1] != a_q.shape[-1]:
        raise ValueError(f"kl_divergence: p has K = {a_p.shape[-1]} categories and q has K = {a_q.shape[-1]}; "
                         "they must be equal")
    near = array_function(lambda a: below_root_tiny(a).any(axis=-1), a_p)
    large = array_function(lambda near, a, b: ~near & ((a > SADDLE_FROM).any(axis=-1) | (b > SADDLE_FROM).any(axis=-1)),
                           near, a_p, a_q)
    wide = ops.unsqueeze(large, -1)
    saddle = _dirichlet_terms_saddle(ops.where(wide, a_p, 2 * SADDLE_FROM), ops.where(wide, a_q, 2 * SADDLE_FROM))
    a_p = ops.where(ops.unsqueeze(near | large, -1), 1.0, p.concentration)
    s_p = a_p.sum(axis=-1, keepdims=True)
    usual = (ops.lgamma(s_p.sum(axis=-1)) - ops.lgamma(a_q.sum(axis=-1)) - (ops.lgamma(a_p) - ops.lgamma(a_q)).sum(axis=-1)
             + ((a_p - a_q) * (ops.digamma(a_p) - ops.digamma(s_p))).sum(axis=-1))
    a_p = ops.where(ops.unsqueeze(near, -1), p.concentration, 1.0)
    s_p = a_p.sum(axis=-1, keepdims=True)
    # (the poles Σₖ α_q/α_p − α₀_q/α₀_p + 1 − K as Σₖ α_q(1 − α_p/α₀_p)/α_p + 1 − K: terms ≥ 0, no ∞ − ∞)
    small = (_gamma_terms_near_zero(a_p, a_q).sum(axis=-1) - _gamma_terms_near_zero(s_p, a_q.sum(axis=-1, keepdims=True))[..., 0]
             + (a_q * (1 - a_p / s_p) / a_p).sum(axis=-1) + 1 - a_p.shape[-1])
    return ops.where(near, small, ops.where(large, saddle, usual))


@register_kl(Poisson, Poisson)
def _kl_poisson_poisson(p, q):
    """λ_p log(λ_p/λ_q) − λ_p + λ_q, as λ_p·log λ_p − λ_p·log λ_q (x·log y as torch.xlogy): λ_q where λ_p = 0 (torch:
    NaN), +∞ where λ_q = 0 < λ_p."""
    return xlogy(p.rate, p.rate) - xlogy(p.rate, q.rate) - p.rate + q.rate


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


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_multivariate_normal_multivariate_normal(p, q):
    """½[tr(Σ_q⁻¹Σ_p) + (μ_q − μ_p)ᵀΣ_q⁻¹(μ_q − μ_p) − n + log(|Σ_q|/|Σ_p|)] (torch's), through triangular solves, no
    inverse: tr(Σ_q⁻¹Σ_p) = |L_q⁻¹L_p|² (the squared Frobenius norm), the quadratic form |L_q⁻¹(μ_q − μ_p)|², and
    ½ log(|Σ_q|/|Σ_p|) = Σᵢ log (L_q)ᵢᵢ − Σᵢ log (L_p)ᵢᵢ. Both of the same n (ValueError otherwise, as torch's)."""
    if p.event_shape != q.event_shape:
        raise ValueError(f"kl_divergence: MultivariateNormals of event shapes {p.event_shape} and {q.event_shape}; they "
                         "must be equal")
    n = p.event_shape[0]
    lp, lq = p._unbroadcasted_scale_tril, q._unbroadcasted_scale_tril
    w = ops.solve_triangular(lq, lp, upper=False)
    return half_log_det(lq) - half_log_det(lp) + 0.5 * ((w * w).sum(axis=(-2, -1)) + mahalanobis(lq, q.loc - p.loc) - n)


def _diagonal_normal(d, who):
    """(loc, scale), each batch + (n,), of Independent(Normal, 1), the diagonal Gaussian of the last axis; other
    Independents: NotImplementedError."""
    if not isinstance(d.base_dist, Normal) or d.reinterpreted_batch_ndims != 1:
        raise NotImplementedError(f"{who}: only Independent(Normal, 1) (a diagonal Gaussian) has a closed form, not "
                                  f"{d!r}")
    return d.base_dist.mean, d.base_dist.stddev


def _same_event(p, q):
    if tuple(p.event_shape) != tuple(q.event_shape):
        raise ValueError(f"kl_divergence: event shapes {tuple(p.event_shape)} and {tuple(q.event_shape)}; they must be "
                         "equal")


@register_kl(MultivariateNormal, Independent)
def _kl_multivariate_normal_diagonal_normal(p, q):
    """KL(N(μ_p, L Lᵀ) ‖ N(μ_q, diag σ²)) = Σᵢ log σᵢ − Σᵢ log Lᵢᵢ + ½[Σᵢ ((L Lᵀ)ᵢᵢ + (μ_p − μ_q)ᵢ²)/σᵢ² − n], q an
    Independent(Normal, 1): a full-covariance posterior against a diagonal prior, in O(n²) (torch has no such pair)."""
    loc, scale = _diagonal_normal(q, "KL(MultivariateNormal ‖ Independent)")
    _same_event(p, q)
    lower = p._unbroadcasted_scale_tril
    diff = (p.loc - loc) / scale
    ratio = ((lower * lower).sum(axis=-1) / (scale * scale) + diff * diff).sum(axis=-1)
    return ops.log(scale).sum(axis=-1) - half_log_det(lower) + 0.5 * (ratio - p.event_shape[0])


@register_kl(Independent, MultivariateNormal)
def _kl_diagonal_normal_multivariate_normal(p, q):
    """KL(N(μ_p, diag σ²) ‖ N(μ_q, Σ_q)), p an Independent(Normal, 1): MultivariateNormal ‖ MultivariateNormal's with
    p's scale_tril diag(σ) (torch has no such pair)."""
    loc, scale = _diagonal_normal(p, "KL(Independent ‖ MultivariateNormal)")
    _same_event(p, q)
    diagonal = MultivariateNormal(loc, scale_tril=ops.unsqueeze(scale, -1) * identity(scale))
    return _kl_multivariate_normal_multivariate_normal(diagonal, q)
# ---- the pairs torch registers for LogNormal, HalfNormal, Cauchy, Gumbel and Geometric: LogNormal ‖ LogNormal,
# HalfNormal ‖ HalfNormal (their base Normals'), Cauchy ‖ Cauchy, Gumbel ‖ Gumbel, Geometric ‖ Geometric, Gumbel ‖ Normal,
# Normal ‖ Gumbel, Exponential ‖ Gumbel, Gamma ‖ Gumbel, Uniform ‖ Gumbel, and +∞ for Gumbel ‖ Beta, ContinuousBernoulli,
# Exponential, Gamma and Uniform ----

@register_kl(LogNormal, LogNormal)
@register_kl(HalfNormal, HalfNormal)
def _kl_through_base_normals(p, q):
    """KL of the base Normals (torch's: a KL is unchanged by the same invertible map of both, exp for LogNormal, and
    |·| for HalfNormal, whose two halves are mirror images)."""
    return _kl_normal_normal(p.base_dist, q.base_dist)


@register_kl(Cauchy, Cauchy)
def _kl_cauchy_cauchy(p, q):
    """log(((σ_p + σ_q)² + (μ_p − μ_q)²)/(4σ_pσ_q)) (torch's, from Chyzak & Nielsen 2019), as
    2 log hypot(σ_p + σ_q, μ_p − μ_q) − log 4 − log σ_p − log σ_q: the square and the product underflow (0/0 = NaN at
    σ = 10⁻³⁰ in float32) or overflow."""
    return 2 * ops.log(ops.hypot(p.scale + q.scale, p.loc - q.loc)) - math.log(4) - ops.log(p.scale) - ops.log(q.scale)


@register_kl(Gumbel, Gumbel)
def _kl_gumbel_gumbel(p, q):
    """−log r − (μ_q − μ_p)/σ_q + γ·r + exp((μ_q − μ_p)/σ_q + lgamma(1 + r)) − (1 + γ), r = σ_p/σ_q (torch's, its
    μ_q/σ_q − μ_p/σ_q taken as one difference)."""
    ratio, shift = p.scale / q.scale, (q.loc - p.loc) / q.scale
    return (-_log_ratio(p.scale, q.scale) - shift + EULER_GAMMA * ratio + ops.exp(shift + ops.lgamma(1 + ratio))
            - (1 + EULER_GAMMA))


@register_kl(Geometric, Geometric)
def _kl_geometric_geometric(p, q):
    """−H(p) − log(1 − q)·(1 − p)/p − log q = E_p[k]·(log(1 − p) − log(1 − q)) + log p − log q (torch's
    −H(p) − log1p(−q)/p − logit(q), with the mean and logs of ``Geometric``); of two logits as
    exp(log softplus(l_q) − l_p) − softplus(l_p)·e^{−l_p} + softplus(−l_q) − softplus(−l_p), finite where E_p[k] = e^{−l_p}
    overflows (+∞ at l_p = l_q = −100 in float32, where the KL is 0; NaN gradients)."""
    if p._probs is None and q._probs is None:
        # e^{−l_p}·(softplus(l_q) − softplus(l_p)) + softplus(−l_q) − softplus(−l_p): E_p[k] = e^{−l_p} overflows from
        # l_p ≈ −88 in float32 (∞·0 = NaN at p = q), so e^{−l_p}·softplus(l_q) = exp(log softplus(l_q) − l_p)
        l_p, l_q = p.logits, q.logits
        return (ops.exp(log_softplus(l_q) - l_p) - softplus_over_exp(l_p)) + (ops.softplus(-l_q) - ops.softplus(-l_p))
    log_q, log_1mq = q._log_p_and_q()
    return -p.entropy() - log_1mq * (p.mean + 1) - (log_q - log_1mq)


@register_kl(Gumbel, Normal)
def _kl_gumbel_normal(p, q):
    """−log(r/√(2π)) + (π r/2)²/3 + ((μ_p + γσ_p − μ_q)/σ_q)²/2 − (γ + 1), r = σ_p/σ_q (torch's): E_p[x] = μ_p + γσ_p
    and Var_p = π²σ_p²/6."""
    ratio = p.scale / q.scale
    centre = (p.loc + EULER_GAMMA * p.scale - q.loc) / q.scale
    return (-_log_ratio(p.scale, q.scale) + 0.5 * LOG_2PI + (0.5 * math.pi * ratio) ** 2 / 3 + 0.5 * centre * centre
            - (EULER_GAMMA + 1))


@register_kl(Normal, Gumbel)
def _kl_normal_gumbel(p, q):
    """−½ log r² + (μ_p − μ_q)/σ_q + exp(−(μ_p − μ_q)/σ_q + r²/2) − ½(1 + log 2π), r = σ_p/σ_q (torch's, its
    μ_p/σ_q − μ_q/σ_q taken as one difference): E_p[e^{−(x − μ_q)/σ_q}] is the Normal's moment generating function."""
    ratio = p.scale / q.scale
    shift = (p.loc - q.loc) / q.scale
    return -_log_ratio(p.scale, q.scale) + shift + ops.exp(0.5 * ratio * ratio - shift) - 0.5 * (1 + LOG_2PI)


@register_kl(Exponential, Gumbel)
def _kl_exponential_gumbel(p, q):
    """log(λσ) − 1 − μ/σ + e^{μ/σ}·λσ/(λσ + 1) + 1/(λσ), λ = p.rate, μ, σ = q's (torch's), without the product λσ:
    log λ + log σ, c = (1/λ)/σ and e^{μ/σ}/(1 + c). λσ under- or overflows (log 0 + 1/0 = −∞ + ∞ = NaN at λ = σ = 10⁻³⁰
    in float32, where the KL is 10⁶⁰, +∞; ∞/∞ = NaN at λσ = 10⁴⁰, where it is 92.1), and the VJP of 1/(λσ) in σ,
    (ḡ/(λσ))·(1/(λσ)), overflowed where its −1/(λσ²) is a number (−10³⁶ at λ = 10⁻³⁰, σ = 10⁻³)."""
    reciprocal, shift = 1 / p.rate / q.scale, q.loc / q.scale
    return ops.log(p.rate) + ops.log(q.scale) - 1 - shift + ops.exp(shift) / (1 + reciprocal) + reciprocal


@register_kl(Gamma, Gumbel)
def _kl_gamma_gumbel(p, q):
    """(α − 1)ψ(α) − lgamma(α) − α + log(βσ) + α/(βσ) + e^{μ/σ}·(1 + 1/(βσ))^{−α} − μ/σ, α, β = p's, μ, σ = q's
    (torch's; the power written exp(μ/σ − α·log1p(1/(βσ))), one exponential). Where α exceeds SADDLE_FROM,
    (α − 1)ψ(α) − lgamma(α) − α as (α − 1)·s'(α) − s(α) − ½ log α + 1/(2α) − ½(1 + log 2π) (s = ``ops.stirlerr``;
    ψ(α) = log α − 1/(2α) + s'(α)): its terms of α·log α cancel, to a KL of order log α (in float32 5.82 for 6.49 at
    α = μ = σ = 10⁶, β = 1, and −9192 for 11.1 at 10¹⁰)."""
    a, product, shift = p.concentration, p.rate * q.scale, q.loc / q.scale
    large = array_function(lambda a: a > SADDLE_FROM, a)
    big, small = ops.where(large, a, 2 * SADDLE_FROM), ops.where(large, 1.0, a)
    saddle = ((big - 1) * stirlerr(big, order=1) - stirlerr(big) - 0.5 * ops.log(big) + 0.5 / big
              - 0.5 * (1 + LOG_2PI))
    usual = (small - 1) * ops.digamma(small) - ops.lgamma(small) - small
    return (ops.where(large, saddle, usual) + ops.log(product) + a / product
            + ops.exp(shift - a * ops.log1p(1 / product)) - shift)


@register_kl(Uniform, Gumbel)
def _kl_uniform_gumbel(p, q):
    """log(σ/(b − a)) + ½(h + l) − σ/(b − a)·(e^{−h} − e^{−l}), h = (b − μ)/σ, l = (a − μ)/σ, p = U(a, b) (torch's), as
    −log w + ½(h + l) + e^{−l}·(1 − e^{−w})/w, w = (b − a)/σ (= h − l; the log by ``_log_ratio``, (1 − e^{−w})/w by its
    series 1 − w/2 + w²/6 below √ε): σ/(b − a) overflowed and e^{−h} − e^{−l} cancelled (NaN at b − a = 10⁻³⁰,
    σ = 10¹⁰ in float32, where the KL is 93.1; torch's float64 gives 92.1, e^{−h} − e^{−l} = 0 there)."""
    high, low = (p.high - q.loc) / q.scale, (p.low - q.loc) / q.scale
    fraction = _one_minus_exp_over((p.high - p.low) / q.scale)
    return -_log_ratio(p.high - p.low, q.scale) + 0.5 * (high + low) + ops.exp(-low) * fraction


@register_kl(Gumbel, Beta)
@register_kl(Gumbel, ContinuousBernoulli)
@register_kl(Gumbel, Exponential)
@register_kl(Gumbel, Gamma)
@register_kl(Gumbel, Uniform)
def _kl_gumbel_bounded(p, q):
    """+∞: a Gumbel gives mass to all of the real line, outside q's support (torch's)."""
    return _infinite(p, q)
