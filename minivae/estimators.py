"""Gradient estimators for ∇_θ E_{z~q_θ}[f(z)], selectable by name.

Each returns a *surrogate*: a tensor whose value is a Monte Carlo estimate of E_q[f(z)] (one
value per batch entry: ``f`` maps samples of shape (*sample_shape, *batch, *event) to values of
shape (*sample_shape, *batch), or keeps fewer trailing axes and the log-densities are summed
to match) and whose gradient, after ``.backward()``, is the estimator's gradient.

    pathwise          z = g(θ, ε) (reparameterized); ∇ = E[∇_θ f(g(θ, ε))]          unbiased, low variance
    reinforce         ∇ = E[(f(z) − b) ∇_θ log q_θ(z)] (+ E[∇_θ f] if f depends on θ)  unbiased for any
                      baseline b not depending on z; needs only log q
    gumbel_softmax    z = softmax((logits + g)/τ), relaxed; f evaluated on the simplex  biased, bias → 0 as τ → 0,
                      (a Bernoulli's: z = σ((l + L)/τ), the Binary Concrete, on [0, 1])  variance grows as τ → 0
    straight_through  one-hot z forward, the relaxed sample's gradient backward      biased at any τ
                      (a Bernoulli's: 1[l + L > 0], the Bernoulli draw of the same noise)
    exact             Σ_z q_θ(z) f(z) over every configuration of a small discrete z  the true gradient
    rebar             b = H(z) exact; [f(b) − η f(σ_λ(z̃))] ∇ log q_θ(b)             unbiased for any η;
                      + η ∇f(σ_λ(z)) − η ∇f(σ_λ(z̃)), z relaxed, z̃ ~ p(z | b)      the relaxation is its
                                                                                 control variate

and, for the K-sample bound L̂ = log (1/K) Σ_k p(x, z_k)/q_θ(z_k|x) rather than an E_q f (so not in ``ESTIMATORS``):

    vimco             K ≥ 2 exact samples; each z_k's score weighted by L̂ − L̂_{−k},   unbiased for ∇ E[L̂]
                      L̂_{−k} the bound with w_k replaced by the other log weights' mean
    sticking_the_landing  z_k reparameterized, log q_⊥(z_k) of q's parameters held    unbiased; zero variance
                      fixed: the path through z kept, the score term ∇_φ log q dropped  where q is the posterior
                      (K = 1: the ELBO's; K > 1: the IWAE bound's, IWAE-STL)           (K = 1)
    dreg              z_k reparameterized; the encoder's gradient Σ_k w̃_k² ∂w_k/∂z_k    unbiased for ∇ E[L̂];
                      ∂z_k/∂φ (w_k of log q_⊥), the decoder's IWAE's Σ_k w̃_k ∇_θ w_k   no score term at any K

The discrete latents are a ``OneHotCategorical`` or a ``Bernoulli`` (or an ``Independent`` of either); L ~ Logistic(0, 1)
is the Binary Concrete's noise, log u − log(1 − u) of a uniform u.

References:
    1. Williams. Simple statistical gradient-following algorithms for connectionist RL. 1992.
    2. Kingma, Welling. Auto-Encoding Variational Bayes. ICLR 2014.
    3. Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017.
    4. Maddison, Mnih, Teh. The Concrete Distribution. ICLR 2017.
    5. Bengio, Léonard, Courville. Estimating or propagating gradients through stochastic neurons. 2013.
    6. Mohamed, Rosca, Figurnov, Mnih. Monte Carlo Gradient Estimation in Machine Learning. JMLR 2020.
    7. Mnih, Rezende. Variational Inference for Monte Carlo Objectives. ICML 2016.
    8. Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
    9. Tucker, Mnih, Maddison, Lawson, Sohl-Dickstein. REBAR: Low-variance, unbiased gradient estimates for discrete
       latent variable models. NeurIPS 2017.
   10. Roeder, Wu, Duvenaud. Sticking the Landing: Simple, Lower-Variance Gradient Estimators for Variational
       Inference. NeurIPS 2017.
   11. Tucker, Lawson, Gu, Maddison. Doubly Reparameterized Gradient Estimators for Monte Carlo Objectives. ICLR 2019.
"""
import copy
import math
import numbers

from minivae import ops
from minivae._backend import get_array_module
from minivae.distributions import (Bernoulli, Categorical, Independent, OneHotCategorical, RelaxedBernoulli,
                                   RelaxedOneHotCategorical)
from minivae.distributions.relaxed_bernoulli import clamp_unit
from minivae.engine import Tensor, array_function, as_tensor, no_grad
from minivae.objectives import _count, enumerate_one_hot
from minivae.ops.binary_concrete import logistic_noise
from minivae.ops.reduce import logsumexp_array
from minivae.ops.softmax import check_temperature
from minivae.random import _shape, resolve


def _sum_to(lp, ndim):
    while lp.ndim > ndim:
        lp = lp.sum(axis=-1)
    return lp


def pathwise(f, q, sample_shape=(), rng=None):
    """f(z) with z = q.rsample(): the reparameterization (pathwise) estimator."""
    if not q.has_rsample:
        raise ValueError(f"pathwise needs a reparameterizable distribution; {type(q).__name__} has none "
                         "(use reinforce, gumbel_softmax, straight_through or exact)")
    return f(q.rsample(sample_shape, rng=rng))


def score_function(fz, log_q, baseline=0.0):
    """fz + (fz − b)·log q − [its value]: the value of fz, and the gradient ∇fz + (fz − b)·∇ log q.
    The one REINFORCE formula (``reinforce`` and the categorical VAE's loss both use it); b must
    not depend on the sample z, or the estimate is biased. b takes no part in the gradient: a learned b
    is fitted by a loss of its own (as the categorical VAE's baseline network)."""
    # a b that required grad would get −log q(z) from the surrogate, and parameters it shares with q
    # (an encoder's) a term −ḡ·log q·∇b whose mean is not 0: a biased gradient
    baseline = baseline.detach() if isinstance(baseline, Tensor) else baseline
    score = (fz.detach() - baseline) * log_q
    return fz + score - score.detach()


def reinforce(f, q, sample_shape=(), rng=None, baseline=0.0):
    """score_function(f(z), log q(z), b) for z ~ q: value E f, gradient the score-function estimate.
    ``baseline`` b is a number, an array or a tensor broadcastable to f's values (never a function of z)."""
    z = q.sample(sample_shape, rng=rng)
    fz = f(z)
    log_q = _sum_to(q.log_prob(z), fz.ndim)
    if fz.ndim > log_q.ndim:
        # (f − b)·log q would broadcast log q against f's extra axis: silently wrong where the sizes agree
        raise ValueError(f"reinforce: f returned values of shape {tuple(fz.shape)}; expected at most one value per "
                         f"sample and batch entry, {tuple(log_q.shape)} (sum an event axis inside f)")
    return score_function(fz, log_q, baseline)


def _relaxed(q, temperature):
    """The Gumbel-Softmax relaxation of q (of an Independent one's base, kept Independent): a categorical's
    RelaxedOneHotCategorical, a Bernoulli's RelaxedBernoulli (the Binary Concrete), of the same logits."""
    if isinstance(q, Independent):
        return Independent(_relaxed(q.base_dist, temperature), q.reinterpreted_batch_ndims)
    if isinstance(q, Bernoulli):
        return RelaxedBernoulli(temperature, logits=q.logits)
    if not isinstance(q, Categorical):
        raise ValueError(f"Gumbel-Softmax relaxes a categorical or Bernoulli distribution, not {type(q).__name__}")
    return RelaxedOneHotCategorical(temperature, logits=q.logits)


def gumbel_softmax(f, q, sample_shape=(), rng=None, temperature=1.0):
    """f(y) with y = softmax((logits + g)/τ): f must accept points of the simplex. For a Bernoulli q (or an Independent
    of one), y = σ((l + L)/τ) ∈ (0, 1), RelaxedBernoulli(τ, logits=l).rsample: f must accept points of [0, 1]."""
    return f(_relaxed(q, temperature).rsample(sample_shape, rng=rng))


def straight_through(f, q, sample_shape=(), rng=None, temperature=1.0):
    """f(one_hot(argmax y)) forward, with y's gradient backward. For a Bernoulli q (or an Independent of one),
    f(1[l + L > 0]) forward — a Bernoulli(σ(l)) draw, the 1[y > ½] of gumbel_softmax's y = σ((l + L)/τ) — with y's
    gradient backward (the same noise drawn from the same ``rng`` as gumbel_softmax's: RelaxedBernoulli's ``hard``)."""
    return f(_relaxed(q, temperature).rsample(sample_shape, rng=rng, hard=True))


def exact(f, q, sample_shape=(), rng=None, max_configurations=2 ** 16):
    """Σ_z q(z) f(z) over all joint one-hot configurations z of the last batch axis of a
    ``OneHotCategorical``, or all joint binary ones, {0, 1}^N, of a ``Bernoulli`` (earlier batch axes are
    independent and kept).

    It takes the sampling estimators' call, so one loop can run them all: ``rng`` is not used (nothing
    is drawn), and the value, the same for every sample, is broadcast to (*sample_shape, *values' shape),
    the shape theirs have (its gradient summed back over the samples, as theirs would be).

    f is called once, on all C = K^N configurations at once: z of shape (C, 1, …, 1, N, K), one
    size-1 axis per earlier batch axis (broadcast against them); a Bernoulli's, C = 2^N, (C, 1, …, 1, N) of 0s and
    1s in the logits' dtype, in the order of ``itertools.product((0, 1), repeat=N)``. It returns one value per
    configuration and independent batch entry, (C, *batch_shape[:-1]), or one per variable too, (C, *batch_shape),
    as the sampling estimators' f may (each f_n is weighed by the joint q(z): the result is E_q f_n).
    ``Independent(OneHotCategorical(…), 1)`` (or of a Bernoulli), the N variables as one event, is enumerated as its
    base (f's values (C, *batch_shape) of the Independent); one of more reinterpreted axes is refused. A q with
    no batch axis is one variable: z of shape (K, K) (a Bernoulli's (2,)), f's values (C,)."""
    sample_shape = _shape(sample_shape, "sample_shape")  # (refused before f is called)
    if isinstance(q, Independent):
        if q.reinterpreted_batch_ndims > 1:
            raise ValueError(f"exact enumerates the variables of one axis; an Independent of "
                             f"{q.reinterpreted_batch_ndims} reinterpreted axes has more")
        q = q.base_dist
    if sample_shape:  # the one exact value, for every sample
        out = exact(f, q, max_configurations=max_configurations)
        return ops.broadcast_to(out, sample_shape + tuple(out.shape))
    binary = isinstance(q, Bernoulli)
    if not (binary or isinstance(q, OneHotCategorical)):
        raise ValueError(f"exact enumeration needs a OneHotCategorical or a Bernoulli, not {type(q).__name__}")
    k = 2 if binary else q.num_categories
    n = q.batch_shape[-1] if q.batch_shape else 1
    if k ** n > max_configurations:
        raise ValueError(f"exact: {k}^{n} = {k ** n} configurations exceed the limit {max_configurations}")
    z = enumerate_one_hot(n, k, q.logits.data.dtype)  # (C, n, k)
    if binary:  # the one-hot of a variable's 0/1 value: its second column is the value
        z = z[..., 1]  # (C, n)
    if not q.batch_shape:
        z = z[:, 0]
    z = as_tensor(z.reshape((len(z),) + (1,) * max(len(q.batch_shape) - 1, 0) + z.shape[1:]), device=q.logits.device)
    fz = f(z)
    log_q = q.log_prob(z)  # (C, *batch_shape): one term per variable
    if q.batch_shape:
        # the joint log q(z) of the N variables, with an axis to broadcast over f's per-variable values
        log_q = log_q.sum(axis=-1, keepdims=fz.ndim == log_q.ndim)
    if fz.ndim != log_q.ndim:
        # a value that dropped an independent batch axis (or kept an event axis) cannot be weighed by one q(z)
        raise ValueError(f"exact: f returned values of shape {tuple(fz.shape)}; expected (C, *batch_shape[:-1]) or "
                         f"(C, *batch_shape) with C = {len(z)} configurations and batch_shape {tuple(q.batch_shape)}")
    return (ops.exp(log_q) * fz).sum(axis=0)


def _base(q, who):
    """q's innermost base distribution (an Independent's, as ``_relaxed`` unwraps it) and whether it is a Bernoulli;
    a clear error for any other than a Bernoulli or a OneHotCategorical."""
    base = q
    while isinstance(base, Independent):
        base = base.base_dist
    if not isinstance(base, (Bernoulli, OneHotCategorical)):
        raise ValueError(f"{who} needs a Bernoulli or a OneHotCategorical (or an Independent of either), "
                         f"not {type(base).__name__}")
    return base, isinstance(base, Bernoulli)


def rebar_sample(q, sample_shape=(), rng=None):
    r"""(b, z, z̃): the three samples of REBAR for a ``Bernoulli`` or ``OneHotCategorical`` q (or an ``Independent`` of
    either), each of shape (*sample_shape, *batch, *event) as q.sample's:

    z   the relaxed pre-activation, differentiable in q's logits: a Bernoulli's z = l + L, L = log u − log1p(−u) of
        u ~ Uniform(0, 1) (the Binary Concrete's noise, ``logistic_noise``: the same ``rng.uniform`` draw as
        gumbel_softmax's and straight_through's); a categorical's z = log p + g, g ~ Gumbel(0, 1) (``rng.gumbel``; log p
        = ``q.logits``, normalized)
    b   H(z), the exact sample, no gradient: 1[z > 0] (Bernoulli(σ(l)): P(L > −l) = σ(l); straight_through's forward
        value for the same rng), or one_hot(argmax z) (OneHotCategorical.sample's draw for the same rng: the Gumbel-max
        trick on the same noise)
    z̃   a draw of p(z | b), independent of z given b, from a second draw v of the same noise, differentiable in the
        logits through the reparameterization below.

    Bernoulli (the derivation): z = l + L has the logistic CDF F(t) = σ(t − l), so z = F⁻¹(u) = l + log u − log(1 − u),
    and b = 1 ⟺ u > F(0) = σ(−l) = 1 − θ (θ = σ(l)). Given b = 1, u is uniform on (1 − θ, 1): u = 1 − θ + vθ, v ~
    U(0, 1), 1 − u = θ(1 − v); with 1 − θ + vθ = (1 + v eˡ)/(1 + eˡ) and θ = eˡ/(1 + eˡ),

        z̃ = l + log(1 − θ + vθ) − log θ − log(1 − v) = log(1 + v eˡ) − log(1 − v) = softplus(l + log v) − log1p(−v),

    > 0 for every v ∈ (0, 1). Given b = 0 the same by the symmetry of the logistic (z ↦ −z, l ↦ −l, b ↦ 1 − b), with
    1 − v for v (also uniform; u = (1 − v)(1 − θ)):  z̃ = −softplus(−l + log v) + log1p(−v) < 0. So, with s = 2b − 1,

        z̃ = s·(softplus(s·l + log v) − log1p(−v)),    ∂z̃/∂l = σ(s·l + log v) ∈ (0, 1),

    finite for any finite l (softplus is, and v lies in [2⁻²⁴, 1 − 2⁻²⁴] in float32): H(z̃) = b exactly, and no
    1 − θ that rounds to 0 (Tucker et al. write z̃ through u and θ, which loses it from |l| ≈ 17 in float32).

    Categorical (Tucker et al., Appendix C): with E_k = e^{−g'_k} ~ Exponential(1) of a second Gumbel draw g',
    z̃_b = −log E_b = g'_b (the max of Gumbels of locations log p_k is Gumbel(log Σ p) = Gumbel(0), independent of the
    argmax), and each other z̃_i = −log(E_i/p_i + E_b), the Gumbel of location log p_i truncated below z̃_b, written
    z̃_i = g'_b − softplus(g'_b − g'_i − log p_i) (finite for any finite log p; z̃_i < z̃_b, up to rounding where
    g'_i + log p_i exceeds g'_b by about 17 in float32).

    All noise is drawn from ``rng``, u (or g) first and v (or g') second, on the logits' device."""
    base, binary = _base(q, "rebar")
    rng = resolve(rng)
    logits = base.logits  # a Bernoulli's l, a categorical's log p
    shape = base._extended(sample_shape)
    xp = logits.xp

    def draw():  # (a Bernoulli's uniforms, a categorical's Gumbels)
        return (rng.uniform if binary else rng.gumbel)(shape, logits.dtype, device=logits.device)
    if binary:
        z = logits + array_function(lambda u: logistic_noise(xp, u), draw())
        b = array_function(lambda z: (z > 0).astype(z.dtype), z)
        sign = 2 * b - 1
        log_v, log_1mv = array_function(lambda v: (xp.log(v), xp.log1p(-v)), draw())
        z_tilde = sign * (ops.softplus(sign * logits + log_v) - log_1mv)
        return b, z, z_tilde
    z = logits + array_function(lambda g: g, draw())
    b = ops.one_hot(array_function(lambda z: z.argmax(axis=-1), z), base.num_categories, dtype=logits.dtype)
    g = array_function(lambda g: g, draw())
    g_b = (b * g).sum(axis=-1, keepdims=True)
    z_tilde = g_b - (1 - b) * ops.softplus(g_b - g - logits)
    return b, z, z_tilde


def _relax(z, temperature, binary):
    """σ_λ(z): σ(z/λ) clamped to [ε, 1 − ε] (RelaxedBernoulli's range), or softmax(z/λ) over the last axis."""
    if not binary:
        return ops.softmax(z, axis=-1, temperature=temperature)
    return clamp_unit(ops.sigmoid(z / temperature))


def rebar(f, q, sample_shape=(), rng=None, temperature=0.5, eta=1.0):
    r"""REBAR: the score-function estimator with the relaxation as its control variate, unbiased for any η.

        ĝ = [f(b) − η f(σ_λ(z̃))] ∇ log q(b) + η ∇f(σ_λ(z)) − η ∇f(σ_λ(z̃))    (+ ∇f(b) where f has parameters of its own)

    with b, z, z̃ of ``rebar_sample`` (z relaxed, b = H(z), z̃ ~ p(z | b) reparameterized) and σ_λ the relaxation at
    temperature λ = ``temperature``: σ(z/λ) clamped to [ε, 1 − ε] as RelaxedBernoulli's (f must accept points of
    [0, 1]), or softmax(z/λ) (points of the simplex, as gumbel_softmax's f). Unbiased because c(z) = f(σ_λ(z)) has
    E_z ∇c = ∇ E_z c = ∇ E_b E_{z|b} c = E_b[E_{z̃|b} c · ∇ log q(b)] + E_b E_{z̃|b} ∇c(z̃): the last two terms of ĝ
    cancel the control variate's score term in expectation. The coefficient of ∇ log q(b) takes no gradient; f's own
    parameters (a decoder's) get ∇f(b) + η ∇c(z) − η ∇c(z̃), whose last two terms also cancel in expectation (unbiased,
    if noisier than ∇f(b) alone). η = 0 is REINFORCE of the same b. η: a finite real number, or a 0-d tensor (a
    parameter: its gradient through the surrogate is 0, as the control variate's value is; ``rebar_parts`` gives what
    tuning it needs).

    The surrogate's value is f(b), as reinforce's (one value per sample and batch entry; log q summed to f's values'
    axes as reinforce sums it), and f is called three times: on b, σ_λ(z) and σ_λ(z̃), in that order. For a q of
    ``Independent`` Bernoullis or categoricals as ``_relaxed`` takes. Two draws of q's size from ``rng``.

    References: Tucker, Mnih, Maddison, Lawson, Sohl-Dickstein. REBAR: Low-variance, unbiased gradient estimates for
    discrete latent variable models. NeurIPS 2017 (eq. 5–6; Appendix C for the categorical conditional)."""
    if isinstance(eta, Tensor):
        if eta.ndim:
            raise ValueError(f"rebar: eta must be a number or a 0-d tensor, got a tensor of shape {eta.shape}")
    elif isinstance(eta, bool) or not isinstance(eta, numbers.Real) or not math.isfinite(eta):
        raise ValueError(f"rebar: eta must be a finite real number, got {eta!r}")
    reinforce_part, control = rebar_parts(f, q, sample_shape, rng, temperature)
    return reinforce_part + eta * control


def rebar_parts(f, q, sample_shape=(), rng=None, temperature=0.5):
    r"""(a, d): REBAR's surrogate split as a + η·d, so that ĝ(η) = ∇a + η∇d for every η from one set of draws:

        a = f(b) + [f(b)]·(log q(b) − [log q(b)])                       (REINFORCE of b: ∇f(b) + f(b)∇ log q(b))
        d = −[f(σ_λ(z̃))]·(log q(b) − [log q(b)]) + c(z) − c(z̃) − [c(z) − c(z̃)],   c = f∘σ_λ   (value 0)

    ([·]: no gradient). ∂ĝ/∂η = ∇d, so the gradient in η of the estimator's second moment, the variance REBAR tunes
    η by (Tucker et al. §3.3), is 2⟨ĝ, ∇d⟩ for one draw: no second derivative, since ĝ is affine in η. Arguments,
    draws and f's calls as ``rebar``'s."""
    temperature = check_temperature(temperature)
    binary = _base(q, "rebar")[1]
    b, z, z_tilde = rebar_sample(q, sample_shape, rng)
    fb = f(b)
    fz, fz_tilde = f(_relax(z, temperature, binary)), f(_relax(z_tilde, temperature, binary))
    log_q = _sum_to(q.log_prob(b), fb.ndim)
    if fb.ndim > log_q.ndim:
        raise ValueError(f"rebar: f returned values of shape {tuple(fb.shape)}; expected at most one value per sample "
                         f"and batch entry, {tuple(log_q.shape)} (sum an event axis inside f)")
    # −η f(σ_λ(z̃)) scales ∇ log q(b) beside f(b), as a baseline (detached); unlike one, it depends on b, and the
    # pathwise difference η(∇c(z) − ∇c(z̃)) puts back what that takes from the expectation
    score, relaxed = -fz_tilde.detach() * log_q, fz - fz_tilde
    return score_function(fb, log_q), (score - score.detach()) + (relaxed - relaxed.detach())


def _leave_one_out(log_w):
    """L̂ − L̂_{−k} for each k, from the log weights w (K, *batch), K ≥ 2: L̂ = log (1/K) Σ_j e^{w_j}, and L̂_{−k} the
    same with w_k replaced by ŵ_{−k} = (1/(K−1)) Σ_{j≠k} w_j (the log of the other weights' geometric mean). Each
    L̂_{−k} is one log-sum-exp of its K terms, shifted by their max (no e^{KL̂} − e^{w_k}, which would cancel
    catastrophically where w_k dominates); the log K of both cancels. An array computation (no gradient)."""
    xp, k = get_array_module(log_w), log_w.shape[0]
    others = (log_w.sum(axis=0) - log_w) / (k - 1)  # ŵ_{−k}
    diagonal = xp.eye(k, dtype=bool).reshape((k, k) + (1,) * (log_w.ndim - 1))
    replaced = xp.where(diagonal, others[:, None], log_w[None])  # row k: the K log weights, w_k replaced by ŵ_{−k}
    return logsumexp_array(xp, log_w, (0,))[0] - logsumexp_array(xp, replaced, (1,))[:, 0]


def vimco_surrogate(log_w, log_q):
    """L̂ = log (1/K) Σ_k e^{w_k} over the first axis of the log weights ``log_w`` (K, *batch), w_k = log p(x, z_k) −
    log q(z_k|x) at K ≥ 2 exact samples, as a tensor of value L̂ (*batch) whose gradient is VIMCO's:

        ∇ = Σ_k (L̂ − L̂_{−k}) ∇ log q(z_k|x) + Σ_k w̃_k ∇w_k,    w̃_k = e^{w_k} / Σ_j e^{w_j},

    L̂_{−k} the bound with w_k replaced by the mean of the other K − 1 log weights (the geometric-mean baseline). The
    first sum is the score-function term, each sample's learning signal L̂ − L̂_{−k} a fixed number (no gradient; its
    baseline L̂_{−k} does not depend on z_k, so it keeps the estimate unbiased); the second is the gradient of log-sum-exp
    (logsumexp's own VJP weighs ∇w_k by w̃_k), through p and the explicit parameters of q in w_k. ``log_q`` (K, *batch)
    is log q(z_k|x) summed over the latent variables, the tensor whose gradient is the score (the same one
    whose negation is in ``log_w``). The one VIMCO formula: ``vimco`` and the discrete VAEs' ``objective="iwae"``
    use it (as ``score_function`` is REINFORCE's).

    References: Mnih, Rezende. Variational Inference for Monte Carlo Objectives. ICML 2016 (eq. 8 and 10)."""
    if log_w.ndim == 0 or log_w.shape[0] < 2:
        raise ValueError(f"vimco: the leave-one-out baselines need K >= 2 samples on the first axis; log weights of "
                         f"shape {tuple(log_w.shape)} have {log_w.shape[0] if log_w.ndim else 'no sample axis'}")
    if tuple(log_q.shape) != tuple(log_w.shape):
        raise ValueError(f"vimco: log q {tuple(log_q.shape)} needs the log weights' shape {tuple(log_w.shape)} (one "
                         "value per sample and batch entry: sum the latent variables' log-densities)")
    bound = ops.logsumexp(log_w, axis=0) - math.log(log_w.shape[0])
    signal = array_function(_leave_one_out, log_w.detach())  # (K, *batch), no gradient
    score = (signal * log_q).sum(axis=0)
    return bound + score - score.detach()


def vimco(log_joint, q, k, rng=None):
    """VIMCO's surrogate (``vimco_surrogate``) of L̂ = log (1/k) Σ_i p(x, z_i)/q(z_i|x) at k ≥ 2 exact draws z_i ~ q
    (a discrete q: ``Bernoulli``, ``OneHotCategorical``, or an ``Independent`` of either; any q with ``log_prob``).
    ``log_joint(z)`` maps the samples, (k, *batch, *event), to log p(x, z) of shape (k, *values) (log q is summed over
    q's axes beyond those, as ``reinforce`` sums it); the value, L̂, has shape values, the k samples' axis reduced.
    Not in ``ESTIMATORS``: it estimates the gradient of E[L̂], the k-sample bound, not of an E_q f."""
    if _count(k, "k", "vimco") < 2:
        raise ValueError(f"vimco: k must be >= 2 (each sample's baseline is the bound of the other k − 1), got {k}")
    z = q.sample((k,), rng=rng)
    log_p = log_joint(z)
    log_q = _sum_to(q.log_prob(z), log_p.ndim)
    if log_q.shape != log_p.shape:
        raise ValueError(f"vimco: log_joint returned values of shape {tuple(log_p.shape)}; expected one per sample and "
                         f"batch entry, {tuple(log_q.shape)}")
    return vimco_surrogate(log_p - log_q, log_q)


def detached(q):
    """q with its parameters detached: the same density, log q_⊥(z), through which no gradient reaches q's parameters
    (one still reaches z): the "stop gradient" of ``sticking_the_landing`` and ``dreg``. An Independent's base is
    detached; a distribution that does not list its parameters (``_params``, as a flow's does not) is refused."""
    if isinstance(q, Independent):
        return Independent(detached(q.base_dist), q.reinterpreted_batch_ndims)
    if not q._params:
        raise ValueError(f"{type(q).__name__} does not list its parameters, so they cannot be held fixed (STL and DReG "
                         "need log q with its parameters detached)")
    held = copy.copy(q)
    for name in q._params:
        p = getattr(q, name)
        if p is not None:
            setattr(held, name, p.detach())
    return held


def _log_weights(log_joint, q, z, who, beta=1.0):
    """log p(x, z) − β·log q_⊥(z) at the samples z (k, *batch, *event): log q of q's parameters held fixed, summed over
    q's axes beyond log_joint's values (as ``reinforce`` sums it)."""
    log_p = log_joint(z)
    log_q = _sum_to(detached(q).log_prob(z), log_p.ndim)
    if log_q.shape != log_p.shape:
        raise ValueError(f"{who}: log_joint returned values of shape {tuple(log_p.shape)}; expected one per sample and "
                         f"batch entry, {tuple(log_q.shape)}")
    return log_p - beta * log_q


def _reparameterized(q, k, who):
    if _count(k, "k", who) < 1:
        raise ValueError(f"{who}: k must be >= 1, got {k}")
    if not q.has_rsample:
        raise ValueError(f"{who} needs a reparameterizable distribution; {type(q).__name__} has none")


def sticking_the_landing(log_joint, q, k=1, rng=None, beta=1.0):
    """L̂ = log (1/k) Σ_i p(x, z_i)/q(z_i|x) at k reparameterized draws z_i = g(φ, ε_i) (k = 1: one draw's ELBO,
    log p(x, z) − log q(z|x)), whose gradient drops the score term: with q's parameters φ held fixed in log q,

        ∇_φ = Σ_i w̃_i (∂/∂z_i)[log p(x, z_i) − log q_φ(z_i|x)] ∂z_i/∂φ,    w̃_i = w_i / Σ_j w_j (1 at k = 1),

    the full pathwise gradient less the score term ∇_φ log q_φ(z), whose expectation is 0 but whose variance is not. Where q
    is the exact posterior, log p(x, z) − log q(z|x) = log p(x) for every z, so each draw's gradient is 0: the estimate
    "sticks the landing". ``log_joint(z)`` maps the draws (k, *batch, *event) to log p(x, z) of shape (k, *values)
    (log q summed over q's axes beyond those); the value has shape values. The decoder's gradient is the pathwise
    one. ``beta`` β weighs log q in each log weight, log p(x, z) − β·log q_⊥(z), for the β-weighted bound
    (``log_joint`` then carries β·log p(z) too). Not in ``ESTIMATORS``: it estimates the gradient of a bound, not of an
    E_q f.

    References: Roeder, Wu, Duvenaud 2017 (eq. 8); with k > 1, Tucker et al. 2019's IWAE-STL."""
    _reparameterized(q, k, "sticking_the_landing")
    log_w = _log_weights(log_joint, q, q.rsample((k,), rng=rng), "sticking_the_landing", beta)
    return ops.logsumexp(log_w, axis=0) - math.log(k)


def _normalized_weights(log_w):
    """w̃_i = e^{w_i} / Σ_j e^{w_j} over the first axis, shifted by the largest w_j (no gradient)."""
    xp = get_array_module(log_w)
    return xp.exp(log_w - logsumexp_array(xp, log_w, (0,)))


def dreg(log_joint, q, k, rng=None, beta=1.0):
    """L̂ = log (1/k) Σ_i p(x, z_i)/q(z_i|x) at k reparameterized draws z_i = g(φ, ε_i), whose gradient is the
    doubly reparameterized one: the decoder's (θ) IWAE's, the encoder's (φ) with no score term,

        ∇_θ = Σ_i w̃_i ∇_θ log p_θ(x, z_i),
        ∇_φ = Σ_i w̃_i² (∂/∂z_i)[log p(x, z_i) − log q_φ(z_i|x)] ∂z_i/∂φ    (φ held fixed in log q),

    w̃_i = w_i / Σ_j w_j. The score term of IWAE's encoder gradient, reparameterized a second time, becomes the part of
    the path term that takes w̃_i² − w̃_i; its signal-to-noise ratio then grows with k where IWAE's falls. One surrogate
    gives both sums: with z̃_i = ⊥z_i + ⊥w̃_i·(z_i − ⊥z_i) (the value z_i, its path to φ scaled by w̃_i),
    Σ_i ⊥w̃_i [log p(x, z̃_i) − log q_⊥(z̃_i)] has ∇_θ the first sum and ∇_φ the second. The weights come from a first
    pass of ``log_joint`` without a graph, so ``log_joint`` must be deterministic in z (no dropout). Shapes and
    ``beta`` as ``sticking_the_landing``'s; k = 1 gives its gradient.

    References: Tucker, Lawson, Gu, Maddison 2019 (eq. 7–8)."""
    _reparameterized(q, k, "dreg")
    z = q.rsample((k,), rng=rng)
    fixed = z.detach()
    with no_grad():
        weights = array_function(_normalized_weights, _log_weights(log_joint, q, fixed, "dreg", beta))  # w̃_i, (k, *values)
    # z̃_i: the value z_i, its path to φ scaled by w̃_i (the weights' axes first, then z's own)
    z_scaled = fixed + ops.reshape(weights, weights.shape + (1,) * (z.ndim - weights.ndim)) * (z - fixed)
    log_w = _log_weights(log_joint, q, z_scaled, "dreg", beta)
    surrogate = (weights * log_w).sum(axis=0)
    bound = ops.logsumexp(log_w.detach(), axis=0) - math.log(k)
    return bound + surrogate - surrogate.detach()


ESTIMATORS = {"pathwise": pathwise, "reinforce": reinforce, "gumbel_softmax": gumbel_softmax,
              "straight_through": straight_through, "exact": exact, "rebar": rebar}


def get(name):
    """The estimator called ``name``, or a clear error listing the choices."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose one of {sorted(ESTIMATORS)}")
    return ESTIMATORS[name]

