"""The Gamma distribution, sampled by Marsaglia and Tsang's method and differentiated by implicit reparameterization;
with the helpers that Exponential, Beta and Dirichlet share (positive parameters, Gamma draws)."""
import math

import numpy

from minivae import ops
from minivae._backend import KERNEL_DTYPES, fused, get_array_module
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, cdf_with_limits, checked_params
from minivae.engine import array_function
from minivae.ops import xlogy
from minivae.ops.saddle import TWO_PI, bd0, stirlerr
from minivae.plan import Live, drawn_counter
from minivae.random import philox4x32, resolve, words_to_uniform

ONE_THIRD = 1 / 3
SADDLE_FROM = 2.0  # Gamma's and Beta's log-densities by the saddle-point form where a concentration exceeds this (below,
# lgamma of the concentrations is no larger than the formula's other terms: about −log α as α → 0)


def positive_params(given, names, who):
    """(tensors, batch_shape, dtype) of parameters that must all be > 0 and finite (``checked_params``)."""
    return checked_params(given, names, who, positive=names)


GAMMA_ROUNDS = 32  # rejection rounds an element may take (each accepts with probability ≥ 0.95; 32 all fail < 10⁻⁴¹)


def standard_gamma_draws(rng, concentration, shape, dtype, device="cpu", counter=None):
    """Draws of Gamma(α, 1) of ``shape`` (α = ``concentration``'s array broadcast to it), in ``dtype``, on its device, no
    gradient: Marsaglia & Tsang (2000): d = α − ⅓, c = 1/√(9d), x ~ N(0, 1), t = 1 + c·x, v = t·t·t, accepted when
    v > 0 and log u < x²/2 + d − d·v + d·log v (u ~ U(0, 1)), then d·v (acceptance ≥ 95% a round). For α < 1, a draw
    of Gamma(α + 1, 1) times u_b^{1/α} = exp(log(u_b)/α) (their boost). Computed in float64, rounded to ``dtype`` and
    clamped to its smallest normal number (torch's clamp: u^{1/α} of a small α underflows, and a draw of 0 has no
    logarithm). ``device``: the concentration's, where the draw is made.

    The stream (minivae/random.py, "Stream layout"): a draw of n values takes n Philox blocks of ``rng``, from
    ``counter`` c (given by the caller, as a step plan's ``drawn_counter``; else ``rng._take(n)``). Element i, round r
    (r = 0, 1, … below GAMMA_ROUNDS) uses the block of counter words (lo(c + i), hi(c + i), r, 0) and seed key, its
    words w₀ … w₃ made uniforms u_k = (w_k + ½)·2⁻³² (``words_to_uniform``'s float64 rule): x = √(−2 log u₀)·
    cos(2π·u₁) (Box–Muller's first normal), u = u₂ the acceptance uniform, u_b = u₃ the boost uniform (of the round
    that accepts). Round 0 is the ordinary stream's block c + i itself; rounds ≥ 1 (counter word 2 ≠ 0) are drawn by
    no other draw. So element i depends only on (seed, c + i, α_i), never on n or the other elements, and one thread
    a element runs its own loop (kernels/gamma.cu). An element that no round accepts (probability below 0.05³² for
    every α) is NaN. Here, in arrays, round by round over the elements still pending (the specification); with Numba
    on, minivae/_cpu/gamma.py, and on the GPU with its kernels on, kernels/gamma.cu (one launch), run each element's
    loop on its own."""
    xp = get_array_module(concentration)
    n = math.prod(shape)
    if counter is None:
        counter = rng._take(n)
    kernel = fused("gamma", xp, concentration)  # (kernels/gamma.cu on the GPU, minivae/_cpu/gamma.py with Numba)
    if kernel is not None and numpy.dtype(dtype) in KERNEL_DTYPES:
        return kernel.standard_gamma_draws(rng.seed, counter, concentration, shape, dtype)
    a = xp.broadcast_to(concentration.astype(numpy.float64), shape).ravel()
    boost = a < 1
    d = xp.where(boost, a + 1, a) - ONE_THIRD
    c = 1 / xp.sqrt(9 * d)
    out, u_boost = xp.full_like(a, numpy.nan), xp.ones_like(a)
    pending = xp.arange(n, dtype=numpy.uint64)
    key = (rng.seed & 0xFFFFFFFF, (rng.seed >> 32) & 0xFFFFFFFF)
    for r in range(GAMMA_ROUNDS):
        if not pending.size:
            break
        block = pending + numpy.uint64(counter)  # ≤ 2⁶⁴ − 1: _take refuses a draw past the last block
        words = philox4x32((block & numpy.uint64(0xFFFFFFFF), block >> numpy.uint64(32), r, 0), key)
        u = words_to_uniform(words, numpy.float64)
        x = xp.sqrt(-2.0 * xp.log(u[0])) * xp.cos(2.0 * numpy.pi * u[1])
        dp = d[pending]
        t = 1 + c[pending] * x
        v = t * t * t
        positive = v > 0
        log_v = xp.log(xp.where(positive, v, 1.0))
        accept = positive & (xp.log(u[2]) < 0.5 * x * x + dp - dp * v + dp * log_v)
        done = pending[accept]
        out[done], u_boost[done] = (dp * v)[accept], u[3][accept]
        pending = pending[~accept]
    out = xp.where(boost, out * xp.exp(xp.log(u_boost) / a), out)
    return xp.maximum(out.astype(dtype), numpy.finfo(dtype).tiny).reshape(shape)


def gamma_rsample(rng, concentration, shape, dtype, draws=None):
    """standard_gamma(α, z) of draws z of Gamma(α, 1) (``draws`` given, or drawn by ``rng``): the draws, with the
    implicit gradient in α. While a step plan records, the draw's counter is live (``drawn_counter``): each replay
    draws the next values, as the eager step, and a CUDA graph moves the generator by the draw's blocks."""
    if draws is None:
        device, rng = concentration.device, resolve(rng)
        draws = counted_draw(rng, math.prod(shape), lambda a, c: standard_gamma_draws(rng, a, shape, dtype, device, c),
                             concentration)
    return ops.standard_gamma(concentration, draws)


def counted_draw(rng, blocks, draw, *tensors):
    """draw(*arrays, counter) of the ``tensors``' arrays as one array function, its counter that of ``blocks`` Philox
    blocks of ``rng`` (``drawn_counter``): while a step plan records, the counter is live, the recorded call takes its
    value and each replay the next, so that a replay draws afresh as the eager step does (and a CUDA graph moves the
    generator by the draw's blocks)."""
    counter = drawn_counter(rng, blocks)
    first = [True]

    def call(*arrays):
        c = counter
        if isinstance(counter, Live):
            c = counter.value if first else counter.resolve()
            first.clear()
        return draw(*arrays, c)
    return array_function(call, *tensors)


def below_zero(value):
    return array_function(lambda v: v < 0, value)


class Gamma(Distribution):
    """Gamma(concentration α, rate β): density β^α x^{α−1} e^{−βx}/Γ(α) on x ≥ 0, elementwise (batch_shape = the
    broadcast shape of α and β), as torch.distributions.Gamma.

    rsample    z/β, z ~ Gamma(α, 1) by Marsaglia & Tsang (``standard_gamma_draws``), differentiable in α by implicit
               reparameterization (ops.standard_gamma: dz/dα = −(∂F/∂α)/f at fixed F(z; α)) and in β as z/β
    log_prob   α log β + (α − 1) log x − βx − lgamma(α) (x·log y as torch.xlogy: α = 1 at x = 0 gives log β); for
               α > SADDLE_FROM and x > 0 as log Poisson(α; βx) + log(α/x) (R's dgamma's form for α < 1) by Loader's
               saddle-point form: −s(α) − bd0(α, βx) + ½ log(α/(2π)) − log x (minivae/ops/saddle.py; the plain terms
               cancel, lgamma(α) ≈ α log α, 5·10⁻³ off in float32 at α = 10⁴; log Poisson(α − 1; βx) + log β, R's
               form for α ≥ 1, would round α − 1 in float32 above 2²⁴)
    entropy    α − log β + lgamma(α) + (1 − α)·ψ(α), computed as ½ log(2πα) + ½ − 1/(2α) − log β + s(α) + (1 − α)·s'(α)
               (lgamma(α) = s(α) + (α − ½) log α − α + ½ log 2π, ψ(α) = log α − 1/(2α) + s'(α): the same without
               their cancellation, whose float32 value was 5·10⁻³ off at α = 10⁴; → ½ log(2πeα) − log β)
    mean α/β;  mode max((α − 1)/β, 0);  variance α/β²
    support nonnegative; arg_constraints positive. Constant CPU parameters must be > 0 and finite.
    kl_divergence(Gamma, Gamma) and (Exponential, Gamma): torch's closed forms (minivae.distributions.kl).

    Different from torch on purpose:
        - log_prob(x) of x < 0 is −∞ (density 0 outside the support, as Uniform's), where torch refuses the value
          (validate_args) or returns NaN.
    """

    has_rsample = True
    _params = ("concentration", "rate")
    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative

    def __init__(self, concentration, rate):
        (self.concentration, self.rate), self.batch_shape, self._dtype = positive_params(
            (concentration, rate), ("concentration", "rate"), "Gamma")

    @property
    def mean(self):
        return self._batch(self.concentration / self.rate)

    @property
    def mode(self):
        return self._batch(ops.clip((self.concentration - 1) / self.rate, 0.0))

    @property
    def variance(self):
        return self._batch(self.concentration / (self.rate * self.rate))

    def rsample(self, sample_shape=(), rng=None, draws=None):
        """z/β of draws z of Gamma(α, 1) by ``rng`` (in the parameters' dtype); pass ``draws`` (of Gamma(α, 1), shape
        sample_shape + batch_shape) to fix them (then ``rng`` is not needed)."""
        z = gamma_rsample(rng, self.concentration, self._extended(sample_shape), self._dtype, draws)
        return z / self.rate

    def log_prob(self, value):
        value = self._value(value)
        outside = below_zero(value)
        x = ops.where(outside, 1.0, value)
        a, b = self.concentration, self.rate
        plain = a * ops.log(b) + xlogy(a - 1, x) - b * x - ops.lgamma(a)
        saddle = (a > SADDLE_FROM) & (x > 0)
        a, x = ops.where(saddle, a, 2 * SADDLE_FROM), ops.where(saddle, x, 1.0)  # (finite where not taken)
        lp = ops.where(saddle, -stirlerr(a) - bd0(a, x, b) + 0.5 * ops.log(a / TWO_PI) - ops.log(x), plain)
        return ops.where(outside, -math.inf, lp)

    def entropy(self):
        a = self.concentration
        return self._batch(0.5 * ops.log(TWO_PI * a) + 0.5 - 0.5 / a - ops.log(self.rate) + stirlerr(a)
                           + (1 - a) * stirlerr(a, order=1))

    def cdf(self, value):
        """P(α, β·x), the regularized incomplete gamma function (torch's), 0 below 0; differentiable in x, α and β
        (``ops.gammainc``; torch's has no gradient in α)."""
        return cdf_with_limits(self._cdf, self._value(value))

    def _cdf(self, value):
        return ops.gammainc(self.concentration, self.rate * ops.clip(value, 0.0))

    def __repr__(self):
        return f"Gamma(batch_shape={self.batch_shape})"
