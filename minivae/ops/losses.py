"""Losses written as single ops, so their stable formula and its VJP sit together."""
from minivae.engine import Function
from minivae.ops._broadcast import unbroadcast
from minivae.ops._registry import register
from minivae.ops.reduce import logsumexp_array
from minivae.ops.unary import stable_sigmoid


@register("bce_with_logits")
class BCEWithLogits(Function):
    r"""Elementwise binary cross-entropy of targets t under Bernoulli(σ(x)), from logits.

    forward   ℓ = −[t log σ(x) + (1 − t) log(1 − σ(x))] = max(x, 0) − x·t + log1p(e^{−|x|})
    backward  x̄ = ḡ·(σ(x) − t);  t̄ = −ḡ·x
    saves     x, t          fused (same shapes and dtype): minivae/_cpu/bce.py bce_fwd (on the GPU
                            kernels/bce.cu) computes ℓ and σ(x) − t in one pass, and the VJP is then
                            one multiply
    """

    def forward(ctx, x, t):
        xp = ctx.xp
        kernel = ctx.fused("bce", x, t) if x.shape == t.shape and x.dtype == t.dtype else None
        if kernel is not None:
            loss, dx = kernel.bce_fwd(x, t)
            ctx.save(x=x, t=t, dx=dx)
            return loss
        ctx.save(x=x, t=t, dx=None)
        return xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))

    def backward(ctx, g):
        x, t = ctx.x, ctx.t
        dx = ctx.dx if ctx.dx is not None else stable_sigmoid(ctx.xp, x) - t
        gx = unbroadcast(g * dx, x.shape)
        gt = unbroadcast(-g * x, t.shape) if ctx.needs_input_grad[1] else None
        return gx, gt


bce_with_logits = BCEWithLogits.apply


@register("reparameterize")
class Reparameterize(Function):
    r"""Gaussian reparameterization from a log-variance: z = μ + exp(½ log σ²)·ε.

    forward   z = μ + σ·ε,  σ = exp(½ v)  (v = log σ², ε fixed noise: no gradient)
    backward  μ̄ = ḡ;  v̄ = ½ ḡ·σ·ε = ½ ḡ·(z − μ)
    saves     σ·ε           fused: minivae/_cpu/gaussian.py reparameterize_fwd; on the GPU
                            kernels/gaussian.cu reparameterize_fwd/_bwd
    """

    def forward(ctx, mu, log_var, eps):
        kernel = ctx.fused("gaussian", mu, log_var, eps) if mu.shape == log_var.shape == eps.shape else None
        if kernel is not None:
            z, noise = kernel.reparameterize_fwd(mu, log_var, eps)
        else:
            noise = ctx.xp.exp(0.5 * log_var) * eps
            z = mu + noise
        ctx.save(noise=noise, mu_shape=mu.shape, kernel=kernel)
        return z

    def backward(ctx, g):
        bwd = getattr(ctx.kernel, "reparameterize_bwd", None)  # one fused pass on the GPU; NumPy's product on the CPU
        glog_var = bwd(g, ctx.noise) if bwd is not None else unbroadcast(0.5 * g * ctx.noise, ctx.noise.shape)
        return unbroadcast(g, ctx.mu_shape), glog_var, None


@register("kl_standard_normal")
class KLStandardNormal(Function):
    r"""Elementwise KL(N(μ, σ²) ‖ N(0, 1)) from the log-variance v = log σ².

    forward   ½ (μ² + eᵛ − 1 − v)
    backward  μ̄ = ḡ·μ;  v̄ = ½ ḡ·(eᵛ − 1)
    saves     μ, eᵛ         fused: minivae/_cpu/gaussian.py kl_standard_normal_fwd; on the GPU
                            kernels/gaussian.cu kl_standard_normal_fwd/_bwd
    """

    def forward(ctx, mu, log_var):
        kernel = ctx.fused("gaussian", mu, log_var) if mu.shape == log_var.shape and mu.dtype == log_var.dtype else None
        if kernel is not None:
            kl, var = kernel.kl_standard_normal_fwd(mu, log_var)
        else:
            var = ctx.xp.exp(log_var)
            kl = 0.5 * (mu * mu + var - 1 - log_var)
        ctx.save(mu=mu, var=var, kernel=kernel)
        return kl

    def backward(ctx, g):
        bwd = getattr(ctx.kernel, "kl_standard_normal_bwd", None)  # one fused pass on the GPU
        if bwd is not None:
            return bwd(g, ctx.mu, ctx.var)
        return unbroadcast(g * ctx.mu, ctx.mu.shape), unbroadcast(0.5 * g * (ctx.var - 1), ctx.var.shape)


@register("categorical_kl")
class CategoricalKL(Function):
    r"""KL(Cat(softmax l) ‖ Cat(softmax l_p)) over the last axis; the prior logits l_p are constant.

    forward   KL = Σ_k q_k (log q_k − log p_k),  log q = log_softmax(l), log p = log_softmax(l_p)
    backward  l̄_j = ḡ·q_j ((log q_j − log p_j) − KL)
    saves     q, log q − log p, KL     fused: minivae/_cpu/categorical.py categorical_kl_fwd; on the GPU
                                       kernels/categorical_kl.cu categorical_kl_fwd/_bwd
    """

    def forward(ctx, logits, prior_logits):
        xp = ctx.xp
        log_p = prior_logits - logsumexp_array(xp, prior_logits, (prior_logits.ndim - 1,))
        log_p = xp.broadcast_to(log_p, logits.shape)
        kernel = ctx.fused("categorical", logits, log_p) if logits.ndim and logits.dtype == log_p.dtype else None
        if kernel is not None:
            kl, q, diff = kernel.categorical_kl_fwd(logits, log_p)
        else:
            log_q = logits - logsumexp_array(xp, logits, (logits.ndim - 1,))
            q, diff = xp.exp(log_q), log_q - log_p
            kl = (q * diff).sum(axis=-1)
        ctx.save(q=q, diff=diff, kl=kl, kernel=kernel)
        return kl

    def backward(ctx, g):
        bwd = getattr(ctx.kernel, "categorical_kl_bwd", None)  # one fused pass on the GPU
        if bwd is not None:
            return bwd(g, ctx.q, ctx.diff, ctx.kl), None
        return ctx.q * (ctx.diff - ctx.kl[..., None]) * g[..., None], None


reparameterize, kl_standard_normal, categorical_kl = Reparameterize.apply, KLStandardNormal.apply, CategoricalKL.apply
