"""The Binary Concrete sample (RelaxedBernoulli.rsample) and the Bernoulli KL of the same logits as one op: a Bernoulli
VAE's relaxed latents and their KL to the prior, one node (one kernel each way on the GPU, one Numba pass on the CPU)
where the distributions' composition takes about twenty."""

import numpy

from minivae._backend import device_of
from minivae.engine import Function
from minivae.ops._broadcast import periodic, unbroadcast
from minivae.ops._registry import register
from minivae.ops.arith import common
from minivae.ops.softmax import check_temperature
from minivae.ops.unary import real, stable_sigmoid, stable_softplus
from minivae.plan import drawn_counter
from minivae.random import Generator


def logistic_noise(xp, u):
    """L = log u − log1p(−u) ~ Logistic(0, 1) of uniforms u in (0, 1), in u's dtype: RelaxedBernoulli's noise."""
    return xp.log(u) - xp.log1p(-u)


def bernoulli_kl_array(xp, l, lp):
    """KL(Bernoulli(σ(l)) ‖ Bernoulli(σ(l_p))) elementwise, for any finite logits: with a = |l|, ς = sign l (+1 at 0),
    t = e^{−a}, r = σ(−a) = t/(1 + t),
        KL = softplus(−ς·l_p) − log1p(t) − r·(a − ς·l_p),
    which is σ(l)(log σ(l) − log σ(l_p)) + σ(−l)(log σ(−l) − log σ(−l_p)) rewritten by softplus(x) − softplus(−x) = x
    so that the large terms cancel exactly: at l = ±10⁴ it is log 2 − 0 − 0 for l_p = 0 (torch's formula gives
    0·(−10⁴) products, and 1 − σ(l) loses σ(−l) below 2⁻²⁴ in float32)."""
    a = xp.abs(l)
    s = xp.where(l >= 0, 1, -1).astype(l.dtype)
    t = xp.exp(-a)
    return stable_softplus(xp, -s * lp) - xp.log1p(t) - t / (1 + t) * (a - s * lp)


def bernoulli_kl_vjp(xp, g, l, lp):
    """(l̄, l̄_p) of the KL above: l̄ = ḡ·σ(l)σ(−l)·(l − l_p) (σ(l)σ(−l) = t/(1 + t)², 0 where t underflows, so never
    0·∞), l̄_p = ḡ·(σ(l_p) − σ(l))."""
    t = xp.exp(-xp.abs(l))
    return g * (t / ((1 + t) * (1 + t))) * (l - lp), g * (stable_sigmoid(xp, lp) - stable_sigmoid(xp, l))


@register("binary_concrete_kl")
class BinaryConcreteKL(Function):
    r"""RelaxedBernoulli(τ, logits=l).rsample(hard=…) and KL(Bernoulli(σ(l)) ‖ Bernoulli(σ(l_p))) as one node of two
    outputs, with the noise of Philox (seed, counter): the uniforms Generator(seed, counter).uniform(l.shape, l.dtype)
    draws, the same words and the same counter advance as the unfused sample.

    forward   L = log u − log1p(−u);  x = (l + L)/τ;  s = σ(x);  y = clip(s, ε, 1 − ε)  (ε: the dtype's machine
              epsilon, as RelaxedBernoulli's);  ``hard``: y = 1[l + L > 0] (an exact Bernoulli(σ(l)) draw; NaN where
              s is);  kl = softplus(−ς l_p) − log1p(t) − r·(|l| − ς l_p), ς = sign l, t = e^{−|l|}, r = t/(1 + t)
              (``bernoulli_kl_array``; l_p broadcast to l's shape)
    backward  l̄ = ((ȳ·[ε ≤ s ≤ 1 − ε])·s·(1 − s))/τ + k̄l·σ(l)σ(−l)·(l − l_p)  (for ``hard`` too: straight-through);
              l̄_p = unbroadcast(k̄l·(σ(l_p) − σ(l)), l_p.shape)  (a ḡ that never came counts as 0)
    saves     s, l, l_p      fused for a prior without a gradient (the VAE's) of l's dtype: minivae/_cpu/binary_concrete.py,
              kernels/binary_concrete.cu binary_concrete_kl_fwd/_bwd (the noise made in registers, never stored)
    The sample is the unfused composition's, ops for ops (on the NumPy path bit for bit; the kernels take the
    logarithms and the exponential of their own libraries: within a few ulp); kl is in the common dtype of l and l_p
    (PyTorch's promotion; integers as float32).
    Different from torch's kl_divergence on purpose: the exact, finite value for logits of any finite size (torch's is
    +∞ where σ(l_p) rounds to 0 or 1: KL(σ(−10⁴) ‖ σ(10⁴)) ≈ 10⁴ here, ∞ there); infinite logits are not taken (NaN;
    kl_divergence of the two Bernoullis handles them).
    """

    def forward(ctx, logits, prior_logits, seed=0, counter=0, temperature=1.0, hard=False):
        temperature = check_temperature(temperature)
        raw = logits, prior_logits
        logits, prior_logits = real(logits), real(prior_logits)
        try:
            fits = numpy.broadcast_shapes(logits.shape, prior_logits.shape) == logits.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"binary_concrete_kl: prior_logits of shape {prior_logits.shape} do not broadcast to the "
                             f"logits' shape {logits.shape}")
        xp = ctx.xp
        eps = float(numpy.finfo(logits.dtype).eps)
        kernel = (ctx.fused("binary_concrete", logits, prior_logits)
                  if logits.size and logits.dtype == prior_logits.dtype and not ctx.needs_input_grad[1] else None)
        if kernel is not None:
            prior = periodic(prior_logits, logits.shape)[0]
            s, out, kl = kernel.binary_concrete_kl_fwd(logits, prior, seed, counter, temperature, hard)
            ctx.save(s=s, logits=logits, prior=prior, tau=temperature, eps=eps, kernel=kernel)
            return out, kl
        u = Generator(seed, counter).uniform(logits.shape, logits.dtype, device=device_of(logits))
        x = logits + logistic_noise(xp, u)
        s = stable_sigmoid(xp, x / temperature)
        y = xp.clip(s, eps, 1 - eps)
        if hard:  # z + (y − y): z's values, NaN where y is (as rsample's z + (y − y.detach()))
            y = (x > 0).astype(logits.dtype) + (y - y)
        l, lp = common(raw)  # (the KL's operands as PyTorch promotes them: int64 beside float16 is float16)
        ctx.save(s=s, logits=l, prior=lp, tau=temperature, eps=eps, kernel=None)
        return y, bernoulli_kl_array(xp, l, lp)

    def backward(ctx, g):
        gy, gkl = g
        s, l, lp, tau, eps = ctx.s, ctx.logits, ctx.prior, ctx.tau, ctx.eps
        if ctx.kernel is not None:
            return ctx.kernel.binary_concrete_kl_bwd(s, gy, l, lp, gkl, tau), None
        xp = ctx.xp
        gl = gp = None
        if gy is not None:  # the unfused chain's VJPs in its order: clip's mask, σ's s(1 − s), ÷τ
            gl = (xp.where((s >= eps) & (s <= 1 - eps), gy, xp.zeros((), gy.dtype)) * s * (1 - s)) / tau
        if gkl is not None:
            gk, gp = bernoulli_kl_vjp(xp, gkl, l, lp)
            gk = gk.astype(s.dtype, copy=False)  # (in the logits' dtype where the prior's is wider)
            gl = gk if gl is None else gl + gk
        elif ctx.needs_input_grad[1]:  # no gradient reached the KL: a learnable prior's is 0
            gp = xp.zeros(lp.shape, lp.dtype)
        if gp is not None:
            gp = unbroadcast(xp.broadcast_to(gp, l.shape), lp.shape)
        return gl, gp


def binary_concrete_kl(logits, prior_logits, rng, temperature=1.0, hard=False):
    """(sample, kl): ``RelaxedBernoulli(temperature, logits=logits).rsample(rng=rng, hard=hard)`` and
    ``kl_divergence(Bernoulli(logits=logits), Bernoulli(logits=prior_logits))`` as one op (one kernel each way on the
    GPU); the same uniforms, and the counter advances as the sample's draw of logits.size uniforms."""
    counter = drawn_counter(rng, (logits.data.size + 3) // 4)
    return BinaryConcreteKL.apply(logits, prior_logits, seed=rng.seed, counter=counter, temperature=temperature,
                                  hard=hard)
