"""Softmax and log-softmax with a temperature τ: softmax(x / τ) along ``axis``."""
import math
import numbers

import numpy  # for dtype limits only: array math takes its module from the inputs

from minivae._backend import device_of
from minivae.engine import Function, Tensor
from minivae.ops._broadcast import normalize_axis
from minivae.ops._registry import register
from minivae.ops.unary import accumulated
from minivae.plan import Live


def check_temperature(temperature):
    """τ as a Python float (or a step plan's live τ), or the one error every temperature argument gives: τ must be a real
    number (Python or NumPy scalar, 0-d array or tensor; not a bool), finite and > 0."""
    if isinstance(temperature, Live):  # a step plan's τ(step): checked now, re-evaluated at each replay
        check_temperature(temperature.value)
        return temperature
    value = temperature.data if isinstance(temperature, Tensor) else temperature
    if device_of(value) != "cpu":  # float(τ) would be a hidden copy to the host and a wait for the device
        raise ValueError("temperature must be a finite real number > 0, got an array on the GPU: τ is read on "
                         "the host, so pass float(tau) (an explicit copy) or a Python number")
    if hasattr(value, "dtype"):  # NumPy/CuPy scalars and arrays: 0-d, integer or floating
        real = value.shape == () and value.dtype.kind in "iuf"
    else:
        real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if real:
        tau = float(value)
        if math.isfinite(tau) and tau > 0:
            return tau
    raise ValueError(f"temperature must be a finite real number > 0, got {temperature!r}")


def _scaled(x, axis, temperature):
    """z = (x − max x) / τ: the shift makes every exponent ≤ 0, so nothing overflows, and comes
    before the division so that small τ does not magnify rounding in large values. An empty x has
    no max to take (NumPy's max refuses an empty axis), and nothing to shift."""
    return (x - (x.max(axis=axis, keepdims=True) if x.size else 0)) / _tau(temperature, x.dtype)


def _tau(temperature, dtype):
    """τ as the formulas divide by it: at least 1/(largest finite value of ``dtype``). Below that
    (τ = 1e-300 rounds to 0 in float32) 0/τ would be NaN where the limit τ → 0 is the one-hot
    (and its zero VJP); the fused kernels multiply by the same bound on 1/τ
    (_backend.inverse_temperature)."""
    return max(temperature, 1 / float(numpy.finfo(dtype if dtype.kind == "f" else numpy.float64).max))


def softmax_array(xp, x, axis, temperature):
    """The reference softmax(x/τ) on arrays (also used by Gumbel-Softmax)."""
    y = xp.exp(_scaled(x, axis, temperature))
    y /= y.sum(axis=axis, keepdims=True)
    return y


def log_softmax_array(xp, x, axis, temperature=1.0):
    """The reference log softmax(x/τ) on arrays, z − log Σ_k e^{z_k} with z = (x − max x)/τ: never
    forms the softmax, so entries far below the maximum stay finite (also used by categorical_kl)."""
    z = _scaled(x, axis, temperature)
    return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True)) if z.size else z  # (empty: the sums over an empty axis are 0)


def softmax_vjp(y, g, axis, temperature):
    """x̄ = y ⊙ (ḡ − Σ ḡ y) / τ on arrays."""
    return y * (g - (g * y).sum(axis=axis, keepdims=True)) / _tau(temperature, y.dtype)


def _kernel(ctx, x, axis):
    """The fused kernels when they apply: a floating array, not empty, reduced over its last axis."""
    if x.size == 0 or axis != (x.ndim - 1,):
        return None
    return ctx.fused("softmax", x)


def _forward(ctx, x, axis, temperature, log):
    """Softmax's or LogSoftmax's forward: y in x's dtype (float32 for integers), computed in ``accumulated``'s."""
    temperature = check_temperature(temperature)
    axis = normalize_axis(axis, x.ndim, x.shape)
    dtype = x.dtype if x.dtype == numpy.float16 else None
    x = accumulated(x)
    kernel = _kernel(ctx, x, axis)
    if kernel is not None:
        y = kernel.softmax_fwd(x, temperature, log=log)
    else:
        y = (log_softmax_array if log else softmax_array)(ctx.xp, x, axis, temperature)
    ctx.save(y=y, axis=axis, tau=temperature, kernel=kernel)
    return y if dtype is None else y.astype(dtype)


@register("softmax")
class Softmax(Function):
    r"""Softmax with temperature along ``axis``.

    forward   y = exp((x − max x)/τ) / Σ_k exp((x_k − max x)/τ)
    backward  x̄ = y ⊙ (ḡ − Σ_k ḡ_k y_k) / τ
    saves     y            fused (last axis): minivae/_cpu/softmax.py softmax_fwd/_bwd, kernels/softmax.cu
    Integer and bool x give float32, the default float (the rule of exp and mean of integers here; PyTorch refuses
    them, and int64's was float64, uint8's x − max x wrapped around, bool's an error); float16 is computed in float32
    and rounded once to float16, y and x̄, as PyTorch's (``accumulated``: 70000 terms summed in float16 are +∞, and
    every y_k was 0).
    """

    def forward(ctx, x, axis=-1, temperature=1.0):
        return _forward(ctx, x, axis, temperature, False)

    def backward(ctx, g):
        y = ctx.y
        if ctx.kernel is not None:
            return ctx.kernel.softmax_bwd(y, g, ctx.tau)
        return softmax_vjp(y, g, ctx.axis, ctx.tau)


@register("log_softmax")
class LogSoftmax(Function):
    r"""Log-softmax with temperature along ``axis``.

    forward   y = z − log Σ_k exp(z_k),  z = (x − max x)/τ
    backward  x̄ = (ḡ − exp(y) Σ_k ḡ_k) / τ
    saves     y            fused (last axis): minivae/_cpu/softmax.py softmax_fwd/_bwd with log=True, kernels/softmax.cu
    Integer, bool and float16 x as Softmax's (float32; float16 computed in float32, rounded once).
    """

    def forward(ctx, x, axis=-1, temperature=1.0):
        return _forward(ctx, x, axis, temperature, True)

    def backward(ctx, g):
        if ctx.kernel is not None:
            return ctx.kernel.softmax_bwd(ctx.y, g, ctx.tau, log=True)
        g = accumulated(g)  # (float16: Σ ḡ in float32, as the forward's sums)
        return (g - ctx.xp.exp(ctx.y) * g.sum(axis=ctx.axis, keepdims=True)) / _tau(ctx.tau, ctx.y.dtype)


def softmax(x, axis=-1, temperature=1.0):
    return Softmax.apply(x, axis=axis, temperature=temperature)


def log_softmax(x, axis=-1, temperature=1.0):
    return LogSoftmax.apply(x, axis=axis, temperature=temperature)
