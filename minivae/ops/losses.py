"""Losses written as single ops, so their stable formula and its VJP sit together."""
import math

import numpy

from minivae._backend import device_of
from minivae.engine import Function
from minivae.ops._broadcast import unbroadcast
from minivae.ops._registry import register
from minivae.ops.arith import common
from minivae.ops.softmax import log_softmax_array
from minivae.ops.unary import accumulated, stable_sigmoid
from minivae.plan import drawn_counter
from minivae.random import Generator


@register("bce_with_logits")
class BCEWithLogits(Function):
    r"""Elementwise binary cross-entropy of targets t under Bernoulli(σ(x)), from logits.

    forward   ℓ = −[t log σ(x) + (1 − t) log(1 − σ(x))] = softplus(x) − x·t  (the stable softplus)
    backward  x̄ = ḡ·(σ(x) − t);  t̄ = −ḡ·x
    saves     x, t          fused (same shapes and dtype): minivae/_cpu/bce.py bce_fwd (on the GPU
                            kernels/bce.cu) computes ℓ and σ(x) − t in one pass, and the VJP is then
                            one multiply
    Integer and bool targets (binary data as int64, uint8, bool) are cast to the logits' dtype first, as PyTorch's
    result dtype (NumPy made int64 targets beside float32 logits float64, off the fused kernels); integer or bool
    logits with integer targets are float32 (``real_all``; uint8's were float16, int64's float64, bool's an error;
    PyTorch refuses integer logits); floating ones of two dtypes are computed in their common one (``common``).
    """

    sign = 1  # BernoulliLogProb below is the same op negated

    def forward(ctx, x, t):
        x, t = common((x, t))
        loss, dx = _bce_terms(ctx, x, t, ctx.sign)
        ctx.save(x=x, t=t, dx=dx)
        return loss

    def backward(ctx, g):
        return _bce_vjp(ctx, g, ctx.x, ctx.t, ctx.dx, ctx.sign)


def _bce_terms(ctx, x, t, sign):
    """(sign·ℓ, sign·(σ(x) − t)) by the fused kernel (same shapes and dtype), else (sign·ℓ by the formula, None)."""
    kernel = ctx.fused("bce", x, t) if x.shape == t.shape and x.dtype == t.dtype else None
    if kernel is not None:
        return kernel.bce_fwd(x, t, sign)
    xp = ctx.xp
    # ℓ = softplus(x) − x·t as (max(x, 0) − x·t) + log1p(e^{−|x|}): the first two cancel where the target matches the
    # logit's sign, and the small term then keeps its digits (x = 40, t = 1: 4.2·10⁻¹⁸, where softplus(x) − x·t is 0);
    # the kernels' order (minivae/_cpu/bce.py, kernels/common.cuh bce_elem)
    loss = (xp.maximum(x, 0) - x * t) + xp.log1p(xp.exp(-xp.abs(x)))
    return (loss if sign > 0 else -loss), None


def _bce_vjp(ctx, g, x, t, dx, sign):
    """(x̄, t̄) of sign·ℓ(x, t) for its upstream ḡ, from the saved sign·(σ(x) − t) when there is one."""
    if dx is None:
        dx = stable_sigmoid(ctx.xp, x) - t if sign > 0 else t - stable_sigmoid(ctx.xp, x)
    gx = unbroadcast(g * dx, x.shape)
    gt = unbroadcast((-g if sign > 0 else g) * x, t.shape) if ctx.needs_input_grad[1] else None
    return gx, gt


@register("bernoulli_log_prob")
class BernoulliLogProb(BCEWithLogits):
    r"""Elementwise log-likelihood of targets t under Bernoulli(σ(x)), from logits: −bce_with_logits.

    forward   log p(t) = t log σ(x) + (1 − t) log(1 − σ(x)) = x·t − softplus(x)
    backward  x̄ = ḡ·(t − σ(x));  t̄ = ḡ·x
    The same kernels, their two outputs negated (exactly): as one op, the likelihood of a VAE costs no
    separate negation each way (on the GPU, two launches a step).
    """

    sign = -1


bce_with_logits, bernoulli_log_prob = BCEWithLogits.apply, BernoulliLogProb.apply


# The Gaussian formulas on arrays, once for the three ops below (reparameterize, kl_standard_normal and
# the two as one node): each op adds only its layout, broadcasting and kernels.
def _noise(xp, log_var, eps):
    """σ·ε = exp(½ v)·ε."""
    return xp.exp(0.5 * log_var) * eps


def _kl_normal(mu, log_var, var):
    """KL(N(μ, σ²) ‖ N(0, 1)) = ½ (μ² + σ² − 1 − v), given σ² = eᵛ."""
    return 0.5 * (mu * mu + var - 1 - log_var)


def _reparameterize_vjp(g, noise):
    """(μ̄, v̄) of z = μ + σ·ε before unbroadcasting: (ḡ, ½ ḡ·σε)."""
    return g, 0.5 * g * noise


def _kl_normal_vjp(g, mu, var):
    """(μ̄, v̄) of the KL before unbroadcasting: (ḡ·μ, ½ ḡ·(σ² − 1))."""
    return g * mu, 0.5 * g * (var - 1)


def _one_layout(*arrays):
    """Whether the Gaussian kernels apply: arrays of one shape and one dtype. They compute in the first one's dtype,
    where the formula promotes (float32 μ with float64 ε is float64): mixed dtypes take the formula on every backend."""
    a = arrays[0]
    return all(b.shape == a.shape and b.dtype == a.dtype for b in arrays[1:])


@register("reparameterize", nondifferentiable_inputs=(2,))
class Reparameterize(Function):
    r"""Gaussian reparameterization from a log-variance: z = μ + exp(½ log σ²)·ε.

    forward   z = μ + σ·ε,  σ = exp(½ v)  (v = log σ², ε fixed noise: no gradient; μ, v, ε broadcast)
    backward  μ̄ = unbroadcast(ḡ, μ.shape);  v̄ = unbroadcast(½ ḡ·σ·ε, v.shape)
    saves     σ·ε           fused (same shapes and dtype): minivae/_cpu/gaussian.py reparameterize_fwd; on the GPU
                            kernels/gaussian.cu reparameterize_fwd/_bwd
    """

    def forward(ctx, mu, log_var, eps):
        mu, log_var, eps = common((mu, log_var, eps))  # (integers: float32, as PyTorch's formula; one dtype)
        kernel = ctx.fused("gaussian", mu, log_var, eps) if _one_layout(mu, log_var, eps) else None
        if kernel is not None:
            z, noise = kernel.reparameterize_fwd(mu, log_var, eps)
        else:
            noise = _noise(ctx.xp, log_var, eps)
            z = mu + noise
        ctx.save(noise=noise, mu_shape=mu.shape, log_var_shape=log_var.shape, kernel=kernel)
        return z

    def backward(ctx, g):
        bwd = getattr(ctx.kernel, "reparameterize_bwd", None)  # one fused pass on the GPU; NumPy's product on the CPU
        if bwd is not None:
            return unbroadcast(g, ctx.mu_shape), bwd(g, ctx.noise), None
        gmu, glog_var = _reparameterize_vjp(g, ctx.noise)
        return unbroadcast(gmu, ctx.mu_shape), unbroadcast(glog_var, ctx.log_var_shape), None


@register("kl_standard_normal")
class KLStandardNormal(Function):
    r"""Elementwise KL(N(μ, σ²) ‖ N(0, 1)) from the log-variance v = log σ².

    forward   ½ (μ² + eᵛ − 1 − v)
    backward  μ̄ = ḡ·μ;  v̄ = ½ ḡ·(eᵛ − 1)
    saves     μ, eᵛ         fused: minivae/_cpu/gaussian.py kl_standard_normal_fwd; on the GPU
                            kernels/gaussian.cu kl_standard_normal_fwd/_bwd
    """

    def forward(ctx, mu, log_var):
        mu, log_var = common((mu, log_var))  # (integers: float32, as PyTorch's formula; one dtype)
        kernel = ctx.fused("gaussian", mu, log_var) if mu.shape == log_var.shape and mu.dtype == log_var.dtype else None
        if kernel is not None:
            kl, var = kernel.kl_standard_normal_fwd(mu, log_var)
        else:
            var = ctx.xp.exp(log_var)
            kl = _kl_normal(mu, log_var, var)
        ctx.save(mu=mu, var=var, kernel=kernel)
        return kl

    def backward(ctx, g):
        bwd = getattr(ctx.kernel, "kl_standard_normal_bwd", None)  # one fused pass on the GPU
        if bwd is not None:
            return bwd(g, ctx.mu, ctx.var)
        gmu, glog_var = _kl_normal_vjp(g, ctx.mu, ctx.var)
        return unbroadcast(gmu, ctx.mu.shape), unbroadcast(glog_var, ctx.var.shape)


@register("reparameterize_kl", nondifferentiable_inputs=(2,))
class ReparameterizeKL(Function):
    r"""reparameterize and kl_standard_normal as one node of two outputs: the sample and its KL.

    forward   z = μ + exp(½ v)·ε;  kl = ½ (μ² + eᵛ − 1 − v)    (v = log σ², ε fixed noise: no gradient)
    backward  μ̄ = ḡ_z + ḡ_kl·μ;  v̄ = ½ ḡ_z·exp(½ v)·ε + ½ ḡ_kl·(eᵛ − 1)   (a ḡ that never came counts as 0)
    saves     μ, v, ε       fused on the GPU (same shapes and dtype): kernels/gaussian.cu reparameterize_kl_fwd/_bwd
    z in the common dtype of μ, v and ε, kl in that of μ and v, each computed in it (the operands cast first, as
    PyTorch casts an op's; integers float32). The same numbers as the two ops, but one VJP for both outputs: on the
    GPU the backward reads the two upstream gradients and writes μ̄ and v̄ once, where the two ops' gradients are added after
    (2 more reads and writes of each), and the exponentials are recomputed rather than stored.
    """

    def forward(ctx, mu, log_var, eps):
        mu, log_var = common((mu, log_var))  # (integers: float32; one dtype, the KL's, as kl_standard_normal's)
        eps = common((mu, eps))[1]  # (an integer ε in μ's dtype; a wider ε widens the sample alone, as reparameterize)
        kernel = ctx.fused("gaussian", mu, log_var, eps) if _one_layout(mu, log_var, eps) else None
        fwd = getattr(kernel, "reparameterize_kl_fwd", None)  # the GPU's; on the CPU the formula is one pass of NumPy
        if fwd is not None:  # μ and v may be column slices of one array (GaussianVAE's split): read in place
            z, kl = fwd(mu, log_var, eps)
        else:
            z = mu.astype(eps.dtype, copy=False) + _noise(ctx.xp, log_var.astype(eps.dtype, copy=False), eps)
            kl = _kl_normal(mu, log_var, ctx.xp.exp(log_var))
        ctx.save(mu=mu, log_var=log_var, eps=eps, bwd=getattr(kernel, "reparameterize_kl_bwd", None))
        return z, kl

    def backward(ctx, g):
        gz, gkl = g
        mu, log_var, eps = ctx.mu, ctx.log_var, ctx.eps
        if ctx.bwd is not None:
            return (*ctx.bwd(gz, gkl, mu, log_var, eps), None)
        # the two ops' VJPs at the recomputed σε and σ², added (the engine runs this only if one ḡ came)
        terms = ([_reparameterize_vjp(gz, _noise(ctx.xp, log_var, eps))] if gz is not None else []) + \
                ([_kl_normal_vjp(gkl, mu, ctx.xp.exp(log_var))] if gkl is not None else [])
        gmu, glog_var = terms[0]
        for m, v in terms[1:]:
            gmu, glog_var = gmu + m, glog_var + v
        return unbroadcast(gmu, mu.shape), unbroadcast(glog_var, log_var.shape), None


@register("normal_reparameterize_kl")
class NormalReparameterizeKL(ReparameterizeKL):
    r"""reparameterize_kl with its noise drawn in the op: ε = Generator(seed, counter).normal(shape of μ and v).

    forward   as reparameterize_kl at that ε, which is saved
    backward  as reparameterize_kl's (μ̄, v̄)
    fused     on the GPU one kernel draws ε (the values Generator.normal draws there) and makes z and kl
              (kernels/gaussian.cu normal_reparameterize_kl_fwd), where a draw and the pair took two launches
    """

    def forward(ctx, mu, log_var, seed=0, counter=0):
        mu, log_var = common((mu, log_var))  # (integers: float32, and noise of that dtype)
        shape = numpy.broadcast_shapes(mu.shape, log_var.shape)
        kernel = ctx.fused("gaussian", mu, log_var) if _one_layout(mu, log_var) else None
        fwd = getattr(kernel, "normal_reparameterize_kl_fwd", None)
        if fwd is None:
            eps = Generator(seed, counter).normal(shape, numpy.result_type(mu, log_var), device=device_of(mu))
            return super().forward(mu, log_var, eps)
        z, kl, eps = fwd(mu, log_var, seed, counter)
        ctx.save(mu=mu, log_var=log_var, eps=eps, bwd=getattr(kernel, "reparameterize_kl_bwd", None))
        return z, kl

    def backward(ctx, g):
        return super().backward(g)[:2]


def _log_prior(xp, prior_logits, shape):
    """log p = log_softmax(prior logits) over the last axis, broadcast to the posterior's ``shape``."""
    return xp.broadcast_to(log_softmax_array(xp, prior_logits, (prior_logits.ndim - 1,)), shape)


def _prior_rows(xp, prior_logits, shape):
    """The prior's logits as the kernels take them: P rows of k, row r of the posterior's (…, k) rows using
    row r mod P. A prior whose shape is a trailing part of ``shape`` (one per latent variable, or one for all)
    is that already, with no copy; any other broadcast is written out to ``shape``."""
    k = shape[-1]
    trailing = prior_logits.shape
    while len(trailing) > 1 and trailing[0] == 1:
        trailing = trailing[1:]
    if trailing == shape[len(shape) - len(trailing):] and math.prod(trailing):
        rows = prior_logits if prior_logits.flags.c_contiguous else xp.ascontiguousarray(prior_logits)
        return rows.reshape(-1, k)  # (a call less a step where it is contiguous already: the VAE's)
    return xp.ascontiguousarray(xp.broadcast_to(prior_logits, shape)).reshape(-1, k)


@register("categorical_kl")
class CategoricalKL(Function):
    r"""KL(Cat(softmax l) ‖ Cat(softmax l_p)) over the last axis; the prior logits l_p broadcast
    against l (a learnable prior gets its gradient too).

    forward   KL = Σ_k q_k d_k,  d_k = log q_k − log p_k (0 where q_k = 0),  log q = log_softmax(l), log p = log_softmax(l_p)
    backward  l̄_j = ḡ·q_j (d_j − KL);  l̄_p,j = unbroadcast(ḡ·(p_j − q_j), l_p.shape)
    saves     q, d, KL (and p when l_p needs a gradient)
              fused: minivae/_cpu/categorical.py categorical_kl_fwd; on the GPU
              kernels/categorical_kl.cu categorical_kl_fwd/_bwd (the prior's gradient is NumPy's/CuPy's).
              The kernels normalize the prior's logits row by row themselves: a fixed prior (the VAE's
              uniform one) costs no log_softmax of its own each step (on the GPU, eight launches).
    A term of q_k = 0 is 0, and so is its gradient (0·log 0 = 0 whatever p_k, as torch's kl_divergence), where a logit
    −inf made it 0·(−inf) = NaN; one of p_k = 0 < q_k is +∞ (log p_k = −inf). On a row of KL = +∞, l̄ = 0 whatever ḡ:
    every finite l has q_k > 0 there, so the KL is +∞ for all l, a constant whose derivative is 0 (the formula's
    q_j·(d_j − ∞)·ḡ was −∞ and NaN, which an encoder would spread to all its parameters); l̄_p keeps its formula
    ḡ·(p − q), finite, which points the prior's −inf logits up, the only way the KL becomes finite. (torch's
    kl_divergence sends back NaN for l̄ on such a row, whatever ḡ, and 0 for l̄_p.)
    """

    def forward(ctx, logits, prior_logits):
        xp = ctx.xp
        # integer and bool logits as float32, beside floating ones as those, both in one dtype (``common``); float16
        # computed in float32 and the KL rounded once to float16 (``accumulated``: its sums, as PyTorch's)
        logits, prior_logits = common((logits, prior_logits))
        dtype = logits.dtype
        logits, prior_logits = accumulated(logits), accumulated(prior_logits)
        kernel = (ctx.fused("categorical", logits, prior_logits)
                  if logits.ndim and logits.size and logits.dtype == prior_logits.dtype else None)  # (rows, not empty)
        log_p = None
        if kernel is not None:
            kl, q, diff = kernel.categorical_kl_fwd(logits, _prior_rows(xp, prior_logits, logits.shape))
        else:
            log_p = _log_prior(xp, prior_logits, logits.shape)
            log_q = log_softmax_array(xp, logits, (logits.ndim - 1,))
            q = xp.exp(log_q)
            with numpy.errstate(invalid="ignore"):  # −inf − (−inf), where q = 0 and the difference is not used
                diff = xp.where(q == 0, 0, log_q - log_p)
            kl = (q * diff).sum(axis=-1)
        p = None
        if ctx.needs_input_grad[1]:
            p = xp.exp(_log_prior(xp, prior_logits, logits.shape) if log_p is None else log_p)
        ctx.save(q=q, diff=diff, kl=kl, p=p, prior_shape=prior_logits.shape, kernel=kernel)
        return kl.astype(dtype, copy=False)

    def backward(ctx, g):
        gp = unbroadcast(g[..., None] * (ctx.p - ctx.q), ctx.prior_shape) if ctx.p is not None else None
        bwd = getattr(ctx.kernel, "categorical_kl_bwd", None)  # one fused pass on the GPU
        if bwd is not None:
            return bwd(g, ctx.q, ctx.diff, ctx.kl), gp
        kl = ctx.kl[..., None]
        with numpy.errstate(invalid="ignore"):  # q_j·(d_j − ∞)·ḡ = −∞ or NaN on a row of KL = +∞, replaced just below
            gl = ctx.q * (ctx.diff - kl) * g[..., None]
        # 0 on a row of +∞ (the KL is +∞ for every l there: a constant), whatever ḡ
        return ctx.xp.where(kl == numpy.inf, 0, gl), gp


@register("negative_elbo", nondifferentiable_inputs=(2,))
class NegativeELBO(Function):
    r"""−ELBO per example, averaged over a batch, from the elementwise terms of its two parts: the
    log-likelihood terms ll (…, D), log p(x_j|z) per pixel, and the KL terms kl (…, K), per latent
    dimension or variable, whose leading axes (R examples) agree; β a constant.

    forward   L = (1/R) Σ_r (β·Σ_k kl_rk − Σ_j ll_rj)
    backward  l̄l = −ḡ/R,  k̄l = β·ḡ/R  (the same for every element: k̄l written out, l̄l a broadcast view
              of its one value, so that the likelihood's VJP reads one number, not R×D)
    saves     β and the shapes   fused on the GPU: kernels/elbo.cu negative_elbo_fwd/_bwd, one launch each
                                 way where the formula takes five reductions and products forward and six back
    The same numbers, on the CPU, as (β·kl.sum(−1) − ll.sum(−1)).mean() through sum, mul, sub and mean, bit
    for bit: one node, one formula, for the loss of both VAEs.
    """

    def forward(ctx, ll, kl, beta):
        xp = ctx.xp
        ll, kl, beta = common((ll, kl, beta))  # (one dtype: integer terms beside float32 ones were float64)
        kernel = None if xp is numpy else ctx.fused("elbo", ll, kl, beta)
        ctx.save(beta=beta, ll_shape=ll.shape, kl_shape=kl.shape, rows=math.prod(ll.shape[:-1]), kernel=kernel)
        if kernel is not None and ll.dtype == kl.dtype == beta.dtype:
            return kernel.negative_elbo_fwd(ll, kl, beta)
        return (beta * kl.sum(axis=-1) - ll.sum(axis=-1)).mean()

    def backward(ctx, g):
        xp = ctx.xp
        if ctx.kernel is not None and g.dtype == ctx.beta.dtype:
            gll, gkl = ctx.kernel.negative_elbo_bwd(g, ctx.beta, ctx.rows, ctx.ll_shape, ctx.kl_shape)
            return gll, gkl, None
        s = g / ctx.rows  # mean's VJP, then sub's and mul's: the same operations as the separate ops
        return xp.broadcast_to(-s, ctx.ll_shape), xp.broadcast_to(s * ctx.beta, ctx.kl_shape).copy(), None


@register("bernoulli_negative_elbo")
class BernoulliNegativeELBO(Function):
    r"""negative_elbo of a Bernoulli likelihood from its logits: bernoulli_log_prob and negative_elbo as one node.

    forward   L = (1/R) Σ_r (β·Σ_k kl_rk − Σ_j ll_rj),  ll = x·l − softplus(l)  (logits l and data x (…, D) of one
              shape, kl (…, K) of the same R examples)
    backward  l̄ = (ḡ/R)·(σ(l) − x);  x̄ = −(ḡ/R)·l;  k̄l = β·ḡ/R
    saves     l, x, β, the shapes    fused on the GPU: kernels/elbo.cu bernoulli_negative_elbo_fwd/_bwd, one launch
                                     each way where the two ops take four, the terms made twice rather than stored
    The same numbers as the two ops, bit for bit, on both devices.
    """

    def forward(ctx, logits, x, kl, beta):
        xp = ctx.xp
        logits, x, kl, beta = common((logits, x, kl, beta))  # integer data in the logits' dtype, all in one dtype
        kernel = None if xp is numpy else ctx.fused("elbo", logits, x, kl, beta)
        if kernel is not None and logits.dtype == x.dtype == kl.dtype == beta.dtype:
            ctx.save(logits=logits, x=x, beta=beta, kl_shape=kl.shape, dx=None, kernel=kernel)
            return kernel.bernoulli_negative_elbo_fwd(logits, x, kl, beta)
        ll, dx = _bce_terms(ctx, logits, x, -1)  # the two ops' own formulas, in their order
        ctx.save(logits=logits, x=x, beta=beta, kl_shape=kl.shape, dx=dx, kernel=None)
        return (beta * kl.sum(axis=-1) - ll.sum(axis=-1)).mean()

    def backward(ctx, g):
        logits, x = ctx.logits, ctx.x
        if ctx.kernel is not None and g.dtype == ctx.beta.dtype:
            glogits, gkl = ctx.kernel.bernoulli_negative_elbo_bwd(g, ctx.beta, logits, x, ctx.kl_shape)
            gx = -(g / math.prod(logits.shape[:-1])) * logits if ctx.needs_input_grad[1] else None
            return glogits, gx, gkl, None
        s = g / math.prod(logits.shape[:-1])  # negative_elbo's VJP, then bernoulli_log_prob's
        gll = ctx.xp.broadcast_to(-s, logits.shape)
        glogits, gx = _bce_vjp(ctx, gll, logits, x, ctx.dx, -1)
        return glogits, gx, ctx.xp.broadcast_to(s * ctx.beta, ctx.kl_shape).copy(), None


def bernoulli_negative_elbo(logits, x, kl, beta=1.0):
    """−ELBO = (1/R) Σ_r (β·KL_r − log p(x_r|z_r)) of a batch of R examples under a Bernoulli likelihood of
    ``logits`` (…, D), ``x`` the data of the same shape, ``kl`` (…, K) per latent dimension or variable: the same as
    ``negative_elbo(bernoulli_log_prob(logits, x), kl, beta)``, as one op (one kernel each way on the GPU)."""
    if logits.shape != x.shape:
        raise ValueError(f"bernoulli_negative_elbo: logits {logits.shape} and data {x.shape} need the same shape")
    if logits.ndim == 0 or kl.ndim == 0 or logits.shape[:-1] != kl.shape[:-1]:
        raise ValueError(f"bernoulli_negative_elbo: logits {logits.shape} (…, D) and kl {kl.shape} (…, K) need the "
                         "same leading axes (one row of each per example)")
    return BernoulliNegativeELBO.apply(logits, x, kl, beta)


def negative_elbo(log_likelihood, kl, beta=1.0):
    """−ELBO = (1/R) Σ_r (β·KL_r − log p(x_r|z_r)) of a batch of R examples, from the terms before their sums:
    ``log_likelihood`` (…, D) per pixel, ``kl`` (…, K) per latent dimension or variable; the leading axes agree.
    The training loss of both VAEs, as one op (one kernel each way on the GPU)."""
    if log_likelihood.ndim == 0 or kl.ndim == 0 or log_likelihood.shape[:-1] != kl.shape[:-1]:
        raise ValueError(f"negative_elbo: log_likelihood {log_likelihood.shape} (…, D) and kl {kl.shape} (…, K) "
                         "need the same leading axes (one row of each per example)")
    return NegativeELBO.apply(log_likelihood, kl, beta)


reparameterize, kl_standard_normal, categorical_kl = Reparameterize.apply, KLStandardNormal.apply, CategoricalKL.apply
normal_reparameterize_kl = NormalReparameterizeKL.apply  # (μ, v, seed=, counter=): reparameterize_kl(rng=) draws so


def reparameterize_kl(mu, log_var, eps=None, *, rng=None):
    """(z, kl) = (μ + exp(½ log σ²)·ε, KL(N(μ, σ²) ‖ N(0, 1))) elementwise, one node of two outputs: at the given
    noise ``eps`` (no gradient), or at ``rng``'s next standard normals (the counter advances as rng.normal's would,
    and the sample is the same; on the GPU drawn inside the op's kernel)."""
    if (eps is None) == (rng is None):
        raise ValueError("reparameterize_kl: pass the noise eps or a Generator rng to draw it, not both or neither")
    if eps is not None:
        return ReparameterizeKL.apply(mu, log_var, eps)
    size = math.prod(numpy.broadcast_shapes(mu.shape, log_var.shape))
    counter = drawn_counter(rng, (2 * ((size + 1) // 2) + 3) // 4)  # Box–Muller pairs: as Generator.normal advances
    return NormalReparameterizeKL.apply(mu, log_var, seed=rng.seed, counter=counter)


BCE_EPSILON = float(numpy.float32(1e-12))  # torch's floor of x(1 − x) in binary_cross_entropy's VJP: the float 1e-12f,
#                                          9.99999996e-13 (so a saturated x̄ is torch's to the last digit)


def _clamped_log(xp, p):
    """max(log p, −100), torch's clamp in binary_cross_entropy: −100 at p = 0 (no log of 0 evaluated)."""
    positive = p > 0
    return xp.where(positive, xp.maximum(xp.log(xp.where(positive, p, 1)), -100), -100)


def _clamped_log1m(xp, p):
    """max(log(1 − p), −100) by log1p(−p): −100 at p = 1."""
    below = p < 1
    return xp.where(below, xp.maximum(xp.log1p(-xp.where(below, p, 0)), -100), -100)


@register("binary_cross_entropy")
class BinaryCrossEntropy(Function):
    r"""Elementwise binary cross-entropy of targets t under Bernoulli(x), from probabilities x in [0, 1], as
    torch.nn.functional.binary_cross_entropy.

    forward   ℓ = −[t·max(log x, −100) + (1 − t)·max(log(1 − x), −100)]   (torch's clamp: 100 nats at most a term,
              finite at x = 0 and 1; log(1 − x) as log1p(−x))
    backward  x̄ = ḡ·(x − t) / max(x(1 − x), ε), ε = 10⁻¹² in float32;  t̄ = −ḡ·log(x / (1 − x))
              (torch's VJPs: x̄ is the derivative of the unclamped ℓ, kept finite, so that a saturated x = 0 with
              t = 1 is still pushed up; t̄ is ±∞ at x = 0, 1)
    saves     x, t
    x and t of one shape (F.binary_cross_entropy checks that); an x outside [0, 1] (or NaN) is refused, as torch
    refuses it (this reads the check's result on the host: one synchronisation on the GPU). Integer and bool targets
    are cast to x's dtype (as ops.bce_with_logits), integer and bool x and t are float32, and floating ones of two
    dtypes are taken in their common dtype before any step (``common``, every op's rule: float16 probabilities beside
    float32 targets were logged in float16).
    """

    def forward(ctx, x, t):
        x, t = common((x, t))
        xp = ctx.xp
        if x.shape != t.shape:
            raise ValueError(f"binary_cross_entropy: the target's shape {tuple(t.shape)} differs from the input's "
                             f"{tuple(x.shape)}")
        if bool(xp.any(~((x >= 0) & (x <= 1)))):
            raise ValueError("binary_cross_entropy: every input must be a probability in [0, 1] (NaN is none); "
                             "for logits use bce_with_logits")
        ctx.save(x=x, t=t)
        return -(t * _clamped_log(xp, x) + (1 - t) * _clamped_log1m(xp, x))

    def backward(ctx, g):
        xp, x, t = ctx.xp, ctx.x, ctx.t
        gx = g * (x - t) / xp.maximum(x * (1 - x), BCE_EPSILON) if ctx.needs_input_grad[0] else None
        gt = None
        if ctx.needs_input_grad[1]:
            inside = (x > 0) & (x < 1)
            y = xp.where(inside, x, 0.5)
            logit = xp.log(y / (1 - y))  # one log of the ratio (as torch's logit): log y − log(1 − y) cancels near ½
            gt = -g * xp.where(inside, logit, xp.where(x > 0, xp.inf, -xp.inf))
        return gx, gt


binary_cross_entropy = BinaryCrossEntropy.apply
