"""Normalizing flows for richer posteriors q(z|x): planar and radial flows (Rezende & Mohamed 2015) and inverse
autoregressive flow (IAF; Kingma et al. 2016).

Each layer is a Module whose ``forward(z, …)`` returns (f(z), log|det ∂f/∂z|) for every sample: z (…, D) gives
f(z) (…, D) and a log-det (…). A flow posterior q_K(z_K|x) pushes a base draw z_0 ~ N(μ(x), σ²(x)) through K layers,
log q_K(z_K|x) = log q_0(z_0|x) − Σ_k log|det J_k| (Rezende & Mohamed eq. 7).

The design. Planar and radial layers are *amortized* (Rezende & Mohamed §4, van den Berg et al. 2018): their
parameters are not the layer's own but the encoder's outputs for each example, passed to ``forward(z, params)`` packed
along the last axis, ``params`` (…, n_params) broadcasting against z's batch (a draw axis in front); with
``amortized=False`` a layer holds one set of its own (a flow for a fixed density), and ``forward(z)`` reads it. The raw
parameters are unconstrained; each layer maps them to an invertible flow inside ``forward`` (planar's û, radial's
α > 0 and β ≥ −α), so any encoder output is a valid flow. An IAF layer has its own weights (a MADE network) and reads
the encoder's context h, ``forward(z, h)``. ``FlowStack`` holds K layers of one kind for a posterior: the number of
encoder outputs they need (``n_outputs``), the flow of a base draw (``forward(z0, extra)``), and the same layers as
Transforms (``transforms(extra)``, cache_size=1) for ``TransformedDistribution``, so that ``posterior(x)`` is a
distribution whose log_prob scores its own draws (the planar flow has no closed-form inverse; torch's pyro-style
flows are used the same way).

References:
    1. D. J. Rezende, S. Mohamed. Variational inference with normalizing flows. ICML 2015 (planar and radial flows,
       eq. 10–14; the invertibility conditions, appendix A).
    2. D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever, M. Welling. Improved variational inference
       with inverse autoregressive flow. NeurIPS 2016 (IAF; the gated update, Algorithm 1).
    3. M. Germain, K. Gregor, I. Murray, H. Larochelle. MADE: masked autoencoder for distribution estimation.
       ICML 2015 (the masks).
    4. R. van den Berg, L. Hasenclever, J. M. Tomczak, M. Welling. Sylvester normalizing flows for variational
       inference. UAI 2018 (amortized flow parameters).
"""
import math

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.geometric import log_softplus
from minivae.distributions.transforms import Transform
from minivae.engine import Tensor, array_function
from minivae.nn import Buffer, Linear, Module, ModuleList

__all__ = ["FLOWS", "FlowStack", "FlowTransform", "IAFFlow", "PlanarFlow", "RadialFlow", "made_masks"]

FLOWS = ("planar", "radial", "iaf")


def _dot(a, b):
    """Σ over the last axis of a·b, kept as an axis of 1."""
    return (a * b).sum(axis=-1, keepdims=True)


def _own(shape, rng, scale):
    return Tensor((rng.normal(shape, numpy.float64) * scale).astype(numpy.float32), requires_grad=True)


def _log1p_or(x, log_one_plus_x):
    """log1p(x), but ``log_one_plus_x`` (the same, computed without cancelling to log 0) where x < −1/2. (log1p of 0
    there: its VJP would be NaN at x = −1; the other is a number wherever log1p is taken.)"""
    near = array_function(lambda x: x < -0.5, x)
    return ops.where(near, log_one_plus_x, ops.log1p(ops.where(near, 0.0, x)))


class PlanarFlow(Module):
    """f(z) = z + û·tanh(wᵀz + b) (Rezende & Mohamed 2015 eq. 10), log|det J| = log|1 + ûᵀψ(z)|, ψ(z) = (1 − tanh²(wᵀz +
    b))·w (eq. 11–12).

    Invertibility (their appendix A.1): f is invertible iff wᵀû ≥ −1, so the raw u is replaced by
    û = u + (m(wᵀu) − wᵀu)·w/‖w‖², m(a) = −1 + softplus(a), which makes wᵀû = m(wᵀu) > −1 exactly. Then
    ûᵀψ = (1 − tanh²)·m(wᵀu), and the log-det is log(1 + (1 − tanh²(a))·m(wᵀu)).

    Computed so that float32 neither overflows nor cancels where the function is a number: w/‖w‖² as (w/‖w‖)/‖w‖
    with the scale-free ``ops.norm`` (the gradient of 1/Σw², −w/(Σw²)², overflowed: ∞ for ‖w‖ ≲ 10⁻¹⁴ in float32,
    where the gradient, ∝ 1/‖w‖², is 10²⁸); m − wᵀu as softplus(−wᵀu) − 1; the log-det as log1p((1 − tanh²)·m), but
    where (1 − tanh²)·m < −1/2 as log(tanh²(a) + (1 − tanh²(a))·softplus(wᵀu)), a sum of terms ≥ 0 (1 + (1 − tanh²)·m
    cancelled to 0 where a ≈ 0 and wᵀu ≪ 0: −∞ where the log-det is log softplus(wᵀu) ≈ wᵀu), that sum in log space
    (both its terms underflow where |a| ≲ 10⁻¹⁹ and wᵀu ≲ −103 in float32: −∞ and NaN gradients before); 1 − tanh²(a) as
    exp(2(log 2 − a − softplus(−2a))). (Left: where |a| is subnormal and wᵀu ≪ 2 log|a|, the log-det's gradient in a,
    ≈ 2/a, is past float32's range: ±∞, and z·∞ = NaN in w where z = 0.)

    At w = 0 the paper's û has no limit: ‖û − u‖ = |softplus(−wᵀu) − 1|/‖w‖ → (1 − log 2)/‖w‖ → ∞ as w → 0 (pyro's
    Planar divides by ‖w‖² too, NaN at 0; others add an ε to ‖w‖², which makes û → u). There the flow needs no
    constraint (wᵀû = 0 > −1 for every u): û = u, f(z) = z + u·tanh(b), a shift, log|det J| = 0, with finite gradients
    (those of z + u·tanh(wᵀz + b) at w = 0). The same where ‖w‖² is below the dtype's smallest normal number (‖w‖ <
    1.1·10⁻¹⁹ in float32, 1.5·10⁻¹⁵⁴ in float64), with wᵀû = wᵀu: beyond it the gradient, ∝ 1/‖w‖², is past 1/tiny
    (8.5·10³⁷ in float32) and overflows. Elsewhere the paper's û, exactly.

    params (…, 2D + 1): u, w, b packed (amortized), or the layer's own (``amortized=False``; drawn from ``rng``)."""

    def __init__(self, dim, amortized=True, *, rng=None):
        self.dim, self.amortized = int(dim), bool(amortized)
        self.n_params = 2 * self.dim + 1 if amortized else 0
        if not amortized:
            from minivae.random import resolve
            rng = resolve(rng)
            self.u, self.w = _own((dim,), rng, 0.1), _own((dim,), rng, 0.1)
            self.b = Tensor(numpy.zeros(1, numpy.float32), requires_grad=True)

    def _params(self, params):
        if params is None:
            if self.amortized:
                raise ValueError("PlanarFlow(amortized=True): forward needs the encoder's params (…, 2D + 1)")
            return self.u, self.w, self.b
        d = self.dim
        if params.shape[-1] != 2 * d + 1:
            raise ValueError(f"PlanarFlow: params need a last axis of 2D + 1 = {2 * d + 1}, got {params.shape}")
        return ops.split(params, [d, 2 * d], axis=-1)

    def forward(self, z, params=None):
        u, w, b = self._params(params)
        a = _dot(w, z) + b
        wu = _dot(w, u)
        norm = ops.norm(w, axis=-1, keepdims=True)
        flat = array_function(lambda n: n * n < numpy.finfo(n.dtype).tiny, norm)  # (w = 0, or ‖w‖² subnormal)
        m = ops.where(flat, wu, ops.softplus(wu) - 1.0)  # wᵀû: m(wᵀu) > −1, or wᵀu where w is flat (û = u)
        norm = ops.where(flat, 1.0, norm)  # (any ‖w‖ ≠ 0 there, as m − wᵀu = 0: no 0/0 below)
        u_hat = u + ops.where(flat, 0.0, ops.softplus(-wu) - 1.0) / norm * (w / norm)  # m − wᵀu = softplus(−wᵀu) − 1
        t = ops.tanh(a)
        out = z + u_hat * t
        log_sech2 = 2.0 * (math.log(2.0) - a - ops.softplus(-2.0 * a))  # log(1 − tanh²(a))
        sech2 = ops.exp(log_sech2)
        log_det = _log1p_or(sech2 * m, self._log_one_plus_m_sech2(t, log_sech2, sech2, wu, flat))
        return out, ops.squeeze(log_det, -1)

    @staticmethod
    def _log_one_plus_m_sech2(t, log_sech2, sech2, wu, flat):
        """log(tanh²(a) + (1 − tanh²(a))·(1 + m)), 1 + m = softplus(wᵀu), as logaddexp(2 log|tanh a|, log(1 − tanh²(a)) +
        log softplus(wᵀu)) (both terms underflowed to 0, log 0 = −∞, where |a| ≲ 10⁻¹⁹ and wᵀu ≲ −103 in float32: the
        log-det ≈ max(2 log|a|, wᵀu) is a number); 2 log|tanh a| is −∞ at a = 0, kept out of the graph there (its
        gradient, 1/tanh a times 0, was NaN). Where w is flat, 1 + m = 1 + wᵀu, of either sign: log|tanh² + sech²·(1 + m)|."""
        zero = array_function(lambda t: t == 0, t)
        log_t2 = ops.where(zero, -math.inf, 2.0 * ops.log(ops.abs(ops.where(zero, 1.0, t))))
        sloped = ops.logaddexp(log_t2, log_sech2 + log_softplus(ops.where(flat, 0.0, wu)))
        shift = ops.log(ops.abs(t * t + sech2 * (1.0 + ops.where(flat, wu, 0.0))))  # (1 where w is not flat: no log 0)
        return ops.where(flat, shift, sloped)


def _off_the_normals(r, alpha, lifted):
    """z = z₀ (r = 0) where α or (α + β)/α = softplus(β′)/α is not a positive normal number of the dtype."""
    tiny, huge = numpy.finfo(r.dtype).tiny, numpy.finfo(r.dtype).max
    with numpy.errstate(divide="ignore", over="ignore", invalid="ignore"):  # (α = 0: 0/0 and l/0, not taken)
        ratio = lifted / alpha
    return (r == 0) & ~((alpha >= tiny) & (ratio >= tiny) & (ratio <= huge))


class RadialFlow(Module):
    """f(z) = z + β·h(α, r)·(z − z₀), r = ‖z − z₀‖, h = 1/(α + r) (Rezende & Mohamed 2015 eq. 14),
    log|det J| = (D − 1)·log(1 + βh) + log(1 + βh + βh′(r)·r), h′ = −1/(α + r)².

    Invertibility (their appendix A.2): β ≥ −α. The raw α′, β′ become α = softplus(α′) > 0 and β = −α + softplus(β′).

    At z = z₀ (r = 0): f is differentiable there, ∂f/∂z = (1 + β/α)·I (the term βh′(r)·(z − z₀)(z − z₀)ᵀ/r → 0), and
    its gradients are that, finite; the log-det, a function of r = ‖z − z₀‖, has a cone's kink there (its derivative
    in r is not 0), and its gradient in z and z₀ is the subgradient 0 (the 2-norm's at the zero vector, ``ops.norm``'s,
    what central differences give). r is ``ops.norm``, whose gradient is 0 at r = 0, where √(Σ(z − z₀)²)'s is ∞, and ∞
    times z − z₀ = 0 was a NaN gradient for z, z₀ and every parameter upstream.

    Computed without overflow, and without cancelling to log 0, in float32 where the flow is a number, from the
    quotients by α + r p = α/(α + r), q = r/(α + r) = 1 − p and s = (α + β)/(α + r) (1/(α + r) itself overflowed where
    α is subnormal, α′ ≲ −87: f(z₀) = ∞·0 = NaN): βh = (α + β − α)/(α + r); f(z) = z₀ + (r + α + β)·((z − z₀)/(α + r)),
    which is z₀ + (1 + βh)(z − z₀) (∂f/∂z at z₀ is (α + β)/α, which z + βh(z − z₀) cancelled to 0 where β′ ≪ 0); the
    log-det's log1p(βh) and log1p(βh + βh′r) = log1p(αβh²) = log1p(p·βh), but where their argument is below −1/2,
    log(q + s) = log(r + α + β) − log(α + r) and log(q(q + 2p) + p·s), of sums of terms ≥ 0 (log1p(βh) was −∞ where
    β′ ≪ 0, α + β = softplus(β′) tiny and βh ≈ −1: D·log((α + β)/α) = −59 at r = 0, β′ = −20, α′ = 0; its gradients
    NaN). At z = z₀ where α or (α + β)/α is not a normal number (α′ ≲ −87, so that α + r = 0 and p = 0/0, or
    |β′ − α′| ≳ 87: s over- or underflows), in log space: f(z) = z₀ + ((α + β)/α)·(z − z₀), the log-det
    D·(log softplus(β′) − log softplus(α′)), a number for every α′, β′ (NaN, ±∞ before); ∂f/∂z = (α + β)/α, past the
    dtype's range where β′ − α′ ≳ 88 in float32, saturates at half its largest number (∞ times z − z₀ = 0 would make
    f(z₀) NaN). (Left: where 0 < r with α + r subnormal, z and z₀ within 10⁻³⁸ of each other and of 0, the quotients
    keep few digits, s may overflow, and their VJPs, ḡ/(α + r) first, are ∞ or NaN.)

    params (…, D + 2): z₀, α′, β′ packed (amortized), or the layer's own (``amortized=False``)."""

    def __init__(self, dim, amortized=True, *, rng=None):
        self.dim, self.amortized = int(dim), bool(amortized)
        self.n_params = self.dim + 2 if amortized else 0
        if not amortized:
            from minivae.random import resolve
            rng = resolve(rng)
            self.z0 = _own((dim,), rng, 0.1)
            self.alpha_raw = Tensor(numpy.zeros(1, numpy.float32), requires_grad=True)
            self.beta_raw = Tensor(numpy.zeros(1, numpy.float32), requires_grad=True)

    def _params(self, params):
        if params is None:
            if self.amortized:
                raise ValueError("RadialFlow(amortized=True): forward needs the encoder's params (…, D + 2)")
            return self.z0, self.alpha_raw, self.beta_raw
        d = self.dim
        if params.shape[-1] != d + 2:
            raise ValueError(f"RadialFlow: params need a last axis of D + 2 = {d + 2}, got {params.shape}")
        return ops.split(params, [d, d + 1], axis=-1)

    def forward(self, z, params=None):
        z0, alpha_raw, beta_raw = self._params(params)
        alpha, lifted = ops.softplus(alpha_raw), ops.softplus(beta_raw)  # α, and α + β ≥ 0
        diff = z - z0
        r = ops.norm(diff, axis=-1, keepdims=True)  # (∂r/∂z = 0 at r = 0, not ∞·0 = NaN: see the docstring)
        edge = array_function(_off_the_normals, r, alpha, lifted)
        # at z = z₀ where α or (α + β)/α is not a normal number: 1 + βh = (α + β)/α and the log-det D·log((α + β)/α)
        # from log softplus(β′) − log softplus(α′); elsewhere α and α + β are 1 there, so that no branch is 0/0
        log_ratio = log_softplus(beta_raw) - log_softplus(alpha_raw)
        alpha, lifted = ops.where(edge, 1.0, alpha), ops.where(edge, 1.0, lifted)
        total = alpha + r
        beta_h = (lifted - alpha) / total  # βh, 1/(α + r) never formed: see the docstring
        out = z0 + (r + lifted) * (diff / total)  # z + βh(z − z₀) = z₀ + (1 + βh)(z − z₀), 1 + βh = q + s (no 1 − 1)
        # ∂f/∂z at z₀, saturated at half the dtype's largest number (its log rounds up: ∞·0 = NaN in f(z₀) = z₀ + ·0)
        slope = ops.exp(ops.minimum(ops.where(edge, log_ratio, 0.0), math.log(numpy.finfo(r.dtype).max / 2)))
        out = ops.where(edge, z0 + slope * diff, out)
        p, q, s = alpha / total, r / total, lifted / total
        log_det = ((self.dim - 1) * _log1p_or(beta_h, ops.log(r + lifted) - ops.log(total))
                   + _log1p_or(p * beta_h, ops.log(q * (q + 2 * p) + p * s)))
        log_det = ops.where(edge, self.dim * log_ratio, log_det)
        return out, ops.squeeze(log_det, -1)


def made_masks(dim, hidden, reverse=False):
    """MADE's masks (Germain et al. 2015) for one hidden layer: the inputs' degrees 1…D (D…1 with ``reverse``), the
    hidden units' m_k = (k mod max(D − 1, 1)) + 1; input i feeds unit k iff m_k ≥ d_i, unit k feeds output j iff
    d_j > m_k. Output j then depends on the inputs of degree < d_j alone: the Jacobian is triangular in the degree
    order. Returns the (D, H) and (H, D) masks, float32 0/1."""
    degrees = numpy.arange(1, dim + 1)
    if reverse:
        degrees = degrees[::-1]
    units = numpy.arange(hidden) % max(dim - 1, 1) + 1
    into = (units[None, :] >= degrees[:, None]).astype(numpy.float32)
    out = (degrees[None, :] > units[:, None]).astype(numpy.float32)
    return into, out


class IAFFlow(Module):
    """One IAF step (Kingma et al. 2016, §4 and Algorithm 1's numerically stable form): [m, s] = MADE(z, h),
    σ = sigmoid(s), z′ = σ ⊙ z + (1 − σ) ⊙ m, log|det J| = Σ_d log σ_d (= −Σ softplus(−s)).

    The MADE: one masked hidden layer of ``hidden`` ELU units, a = elu((W ⊙ M₁)ᵀz + b + Cᵀh) (the context h
    (…, ``context``) unmasked: it does not depend on z), then m and s from masked (H, D) layers, so that m_d and s_d
    depend on z's entries of lower degree only and ∂z′/∂z is triangular with diagonal σ. ``reverse`` reverses the
    degrees (Kingma et al. reverse the order between steps). s's bias starts at +1 (their advice: s "sufficiently
    positive, such as close to +1 or +2" before training, σ ≈ 0.73, near the identity)."""

    def __init__(self, dim, hidden, context, reverse=False, *, rng=None):
        self.dim, self.hidden, self.context_size, self.reverse = int(dim), int(hidden), int(context), bool(reverse)
        into, out = made_masks(self.dim, self.hidden, self.reverse)
        self.mask_in = Buffer(Tensor(into), persistent=False)
        self.mask_out = Buffer(Tensor(out), persistent=False)
        self.input = Linear(self.dim, self.hidden, rng=rng)
        self.context = Linear(self.context_size, self.hidden, bias=False, rng=rng) if self.context_size else None
        self.out_m = Linear(self.hidden, self.dim, rng=rng)
        self.out_s = Linear(self.hidden, self.dim, rng=rng)
        self.out_s.bias.data = self.out_s.bias.data + 1.0

    def forward(self, z, h=None):
        a = ops.linear(z, self.input.weight * self.mask_in, self.input.bias)
        if self.context is not None:
            if h is None:
                raise ValueError(f"IAFFlow: forward needs the context h (…, {self.context_size})")
            a = a + ops.matmul(h, self.context.weight)
        a = ops.elu(a)
        m = ops.linear(a, self.out_m.weight * self.mask_out, self.out_m.bias)
        s = ops.linear(a, self.out_s.weight * self.mask_out, self.out_s.bias)
        sigma = ops.sigmoid(s)
        out = sigma * z + (1.0 - sigma) * m
        return out, -ops.softplus(-s).sum(axis=-1)  # Σ log σ(s)


class FlowTransform(Transform):
    """A flow layer (its parameters or context ``params`` bound) as a Transform of event_dim 1, cache_size=1: calling it
    keeps (z, f(z)) and the log-det it computed, which ``log_abs_det_jacobian`` returns for that pair (else it
    recomputes it from z); the inverse of a value it did not make is refused (no closed form for the planar flow)."""

    bijective = True
    domain = codomain = constraints.real_vector
    sign = 1

    def __init__(self, layer, params=None):
        super().__init__(cache_size=1)
        self.layer, self.params = layer, params
        self._log_det = None

    def _call(self, x):
        y, self._log_det = self.layer(x, self.params)
        return y

    def log_abs_det_jacobian(self, x, y):
        x_old, y_old = self._cached_x_y
        if x is x_old and y is y_old and self._log_det is not None:
            return self._log_det
        return self.layer(x, self.params)[1]

    def __repr__(self):
        return f"FlowTransform({type(self.layer).__name__})"


class FlowStack(Module):
    """K flow layers of one kind (``FLOWS``) on a D-dimensional posterior, fed by the encoder's ``n_outputs`` extra
    units an example: planar K·(2D + 1) (u, w, b of each layer), radial K·(D + 2) (z₀, α′, β′), IAF the context h of
    D units shared by the K steps (each step's MADE has 4·D hidden units, its degrees reversed every other step).
    K = 0: no layers, no extra outputs."""

    def __init__(self, kind, dim, length, *, rng):
        self.kind, self.dim, self.length = kind, int(dim), int(length)
        self.n_outputs = self.outputs(kind, dim, length)
        if kind == "planar":
            layers, self._each = [PlanarFlow(dim) for _ in range(length)], 2 * dim + 1
        elif kind == "radial":
            layers, self._each = [RadialFlow(dim) for _ in range(length)], dim + 2
        else:
            layers = [IAFFlow(dim, 4 * dim, self.n_outputs, reverse=k % 2 == 1, rng=rng) for k in range(length)]
            self._each = None
        self.layers = ModuleList(layers)

    @staticmethod
    def outputs(kind, dim, length):
        """The encoder's further outputs that K = ``length`` flows of ``kind`` read, an example."""
        if kind not in FLOWS:
            raise ValueError(f"flow must be one of {FLOWS} (or None), not {kind!r}")
        return {"planar": length * (2 * dim + 1), "radial": length * (dim + 2), "iaf": dim if length else 0}[kind]

    def _per_layer(self, extra):
        """Each layer's parameters (planar, radial: the k-th block of ``extra``) or context (IAF: ``extra`` itself)."""
        if self._each is None:
            return [extra] * self.length
        return ops.split(extra, [self._each * k for k in range(1, self.length)], axis=-1) if self.length > 1 else [extra]

    def forward(self, z, extra):
        """(z_K, Σ_k log|det J_k|) of a base draw z (…, D), ``extra`` the encoder's (…, n_outputs)."""
        total = None
        for layer, params in zip(self.layers, self._per_layer(extra)):
            z, log_det = layer(z, params)
            total = log_det if total is None else total + log_det
        return z, total

    def transforms(self, extra):
        """The K layers as FlowTransforms (cache_size=1) bound to ``extra``, for TransformedDistribution."""
        return [FlowTransform(layer, params) for layer, params in zip(self.layers, self._per_layer(extra))]
