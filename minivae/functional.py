"""User-facing functions, imported as ``F`` in the docs (``import minivae.functional as F``).
Names and defaults follow PyTorch; NumPy's ``axis`` is the name used here, and PyTorch's ``dim``
(and ``tau`` for the temperature) are accepted as keywords too."""
import math
import numbers
import warnings

import numpy  # for the shape of noise given as a list

from minivae import ops
from minivae.ops import logsumexp, sigmoid, tanh  # noqa: F401  (re-exported)
from minivae.engine import Tensor, array_function
from minivae.ops._broadcast import normalize_axis
from minivae.ops.nn_ops import check_dropout_probability
from minivae.random import resolve

_REDUCTIONS = ("sum", "mean", "none")


class _Default(int):
    """The default axis, -1, as an object of its own: Python keeps one object for each small int, so ``axis=-1``
    given is that object, and only this one tells _either the axis was not given (``axis=-1, dim=0`` was taken
    as dim=0)."""


_LAST_AXIS = _Default(-1)


def _either(ours, default, torch_value, names):
    """The argument given under our name or PyTorch's (``names``), refusing both."""
    if torch_value is None:
        return int(ours) if ours is _LAST_AXIS else ours
    if ours is not default:
        raise TypeError(f"give {names[0]}= or {names[1]}=, not both")
    return torch_value


def softmax(x, axis=_LAST_AXIS, temperature=1.0, *, dim=None):
    """softmax(x / τ) along ``axis``; τ = ``temperature`` > 0."""
    return ops.softmax(x, axis=_either(axis, _LAST_AXIS, dim, ("axis", "dim")), temperature=temperature)


def log_softmax(x, axis=_LAST_AXIS, temperature=1.0, *, dim=None):
    """log softmax(x / τ) along ``axis``, computed without forming the softmax."""
    return ops.log_softmax(x, axis=_either(axis, _LAST_AXIS, dim, ("axis", "dim")), temperature=temperature)


def reduce(loss, reduction):
    """Apply ``reduction`` ("sum", "mean" or "none") to an elementwise loss."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, not {reduction!r}")
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


def binary_cross_entropy_with_logits(logits, target, reduction="sum", *, weight=None, pos_weight=None):
    """−w·[p·t log σ(x) + (1−t) log(1−σ(x))], from logits x (stable for |x| up to 1e4 and beyond), reduced.

    Args:
        logits: Bernoulli logits x.
        target: targets t in [0, 1], broadcastable against ``logits``.
        reduction: "sum" (default: nats per batch, as a VAE's reconstruction term), "mean" or "none".
        weight: w, a weight of each term, broadcastable to the loss's shape; "mean" divides by the number of terms,
            not by Σ w (torch's).
        pos_weight: p, the weight of the positive term (one per class, the last axis, as torch's), broadcastable to
            the loss's shape; p > 1 raises recall, p < 1 precision. None: 1 (ops.bce_with_logits alone).
    ``weight`` and ``pos_weight`` by keyword: torch's third positional argument is ``weight``, minivae's ``reduction``.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, not {reduction!r}")
    if pos_weight is None:
        loss = ops.bce_with_logits(logits, target)
    else:
        loss = ops.bce_with_logits_pos_weight(logits, target, pos_weight)
    return reduce(_weighted(loss, weight, "binary_cross_entropy_with_logits"), reduction)


def _weighted(loss, weight, who):
    """loss·w, for a weight w (None: none) that broadcasts to the loss's shape (torch's rule for the BCE losses'
    ``weight``), else a ValueError naming both shapes."""
    if weight is None:
        return loss
    weight = _tensor(weight)
    shape, target = tuple(weight.shape), tuple(loss.shape)
    try:
        fits = numpy.broadcast_shapes(shape, target) == target
    except ValueError:  # (NumPy's "shape mismatch")
        fits = False
    if not fits:
        raise ValueError(f"{who}: weight of shape {shape} does not broadcast to the loss's shape {target}")
    return loss * weight


def dropout(input, p=0.5, training=True, inplace=False, *, rng=None):
    """Inverted dropout (torch's F.dropout): in training each element is zeroed with probability ``p`` and the others
    scaled by 1/(1 − p), so the expected value is unchanged; ``input`` itself where ``training`` is False or p = 0;
    zeros where p = 1 (a dropped ±inf or NaN too: torch's x·0 makes NaN of them).

    Args:
        input: a tensor (integer or bool ones are made float32; torch refuses them).
        p: the probability of zeroing an element, in [0, 1] (else ValueError, torch's message).
        training: apply dropout (True) or return ``input`` (False, as in eval mode).
        inplace: accepted, as the activations' (the result is a new tensor).
        rng: the ``minivae.random.Generator`` the mask is drawn from (x.size float32 uniforms of its stream, on the
            input's device); None: the default generator (``minivae.manual_seed``), as every sampling function here.
    """
    p = check_dropout_probability(p)
    if not training or p == 0:
        return input
    return ops.dropout(_tensor(input), resolve(rng), p=p)


def gumbel_softmax(logits, temperature=1.0, hard=False, axis=_LAST_AXIS, gumbels=None, rng=None, *, tau=None, dim=None):
    """A Gumbel-Softmax (Concrete) sample: softmax((logits + g) / τ) with g ~ Gumbel(0, 1).

    Args:
        logits: unnormalized log-probabilities.
        temperature: τ > 0; as τ → 0 samples approach one-hot (less bias, more variance).
        hard: forward the one-hot of the argmax and backward the soft sample's
            gradient (straight-through Gumbel-Softmax).
        gumbels: fixed Gumbel noise of logits' shape (for study and tests); else drawn from ``rng``.
        rng: a ``minivae.random.Generator``; the default generator (``minivae.manual_seed``) if None.
        tau, dim: PyTorch's names for ``temperature`` and ``axis``.

    References:
        1. Jang, Gu, Poole. Categorical Reparameterization with Gumbel-Softmax. ICLR 2017.
        2. Maddison, Mnih, Teh. The Concrete Distribution. ICLR 2017.
    """
    temperature = _either(temperature, 1.0, tau, ("temperature", "tau"))
    axis = _either(axis, _LAST_AXIS, dim, ("axis", "dim"))
    # a one-hot is along one axis (straight_through would take the first of several)
    if hard and len(normalize_axis(axis, logits.ndim, logits.shape)) != 1:
        raise ValueError(f"gumbel_softmax: hard=True takes one axis, got axis={axis!r}")
    if gumbels is None:
        rng = resolve(rng)
        if normalize_axis(axis, logits.ndim, logits.shape) == (logits.ndim - 1,):
            # one op: noise from rng's Philox stream, fused when it can be
            return ops.gumbel_softmax(logits, rng, temperature=temperature, hard=hard)
        dtype = logits.xp.result_type(logits.dtype, logits.xp.float32)  # integer logits: float noise, not truncated
        gumbels = rng.gumbel(logits.shape, dtype, device=logits.device)
    shape = tuple(gumbels.shape) if hasattr(gumbels, "shape") else numpy.shape(gumbels)
    if shape != tuple(logits.shape):  # noise that broadcasts is one draw shared by many rows, or makes a larger output
        raise ValueError(f"gumbel_softmax: gumbels must have the logits' shape {tuple(logits.shape)}, got {shape}")
    y = ops.softmax(ops.add(logits, gumbels), axis=axis, temperature=temperature)
    return ops.straight_through(y, axis=axis) if hard else y


# Activations with torch's names and defaults. ``inplace=True`` is accepted and computes a new tensor: a value in
# minivae's graph never changes after its forward pass (the result is the same; the input keeps its values).
def relu(input, inplace=False):
    """max(x, 0) (gradient 0 at 0, as torch's)."""
    return ops.relu(input)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + e^{βx})/β, and x itself where βx > ``threshold`` (torch's: the value x and the gradient 1 there;
    ops.softplus is the plain stable log(1 + eˣ) everywhere)."""
    z = input if beta == 1 else input * beta
    y = ops.softplus(z) if beta == 1 else ops.softplus(z) / beta
    return ops.where(z > threshold, input, y)  # (the mask a tensor: a step plan records it)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x for x > 0, ``negative_slope``·x otherwise (gradient ``negative_slope`` at 0, as torch's)."""
    return ops.leaky_relu(input, negative_slope=negative_slope)


def elu(input, alpha=1.0, inplace=False):
    """x for x > 0, α·(eˣ − 1) otherwise (gradient α at 0, as torch's)."""
    return ops.elu(input, alpha=alpha)


def gelu(input, approximate="none"):
    """x·Φ(x), Φ the standard normal CDF; ``approximate="tanh"``: ½x(1 + tanh(√(2/π)(x + 0.044715x³)))."""
    return ops.gelu(input, approximate=approximate)


def silu(input, inplace=False):
    """x·σ(x) (SiLU, swish)."""
    return ops.silu(input)


def logsigmoid(input):
    """log σ(x) = −softplus(−x), finite at any finite x (torch's F.logsigmoid; ops.log_sigmoid)."""
    return ops.log_sigmoid(input)


def softsign(input):
    """x/(1 + |x|)."""
    return ops.softsign(input)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """x clamped to [min_val, max_val] (gradient 0 at the bounds and beyond, as torch's)."""
    return ops.hardtanh(input, min_val, max_val)


def relu6(input, inplace=False):
    """min(max(x, 0), 6), hardtanh(x, 0, 6) (gradient 0 at 0 and 6, as torch's)."""
    return ops.relu6(input)


def selu(input, inplace=False):
    """λ·(x for x > 0, α(eˣ − 1) otherwise), torch's α = 1.6732632423543772…, λ = 1.0507009873554804…"""
    return ops.selu(input)


def celu(input, alpha=1.0, inplace=False):
    """x for x > 0, α(e^{x/α} − 1) otherwise (gradient 1 at 0, as torch's)."""
    return ops.celu(input, alpha=alpha)


def mish(input, inplace=False):
    """x·tanh(softplus(x))."""
    return ops.mish(input)


def hardsigmoid(input, inplace=False):
    """min(max(x + 3, 0), 6)/6 (gradient 0 at ±3, as torch's)."""
    return ops.hardsigmoid(input)


def hardswish(input, inplace=False):
    """x·min(max(x + 3, 0), 6)/6 (torch's gradients at −3 and 3: 0 and 1)."""
    return ops.hardswish(input)


def softmin(x, axis=_LAST_AXIS, temperature=1.0, *, dim=None):
    """softmax(−x / τ) along ``axis`` (the last by default, as F.softmax here; torch's ``dim`` is accepted too)."""
    return ops.softmax(ops.neg(x), axis=_either(axis, _LAST_AXIS, dim, ("axis", "dim")), temperature=temperature)


# Losses with torch's signatures and torch's default reduction="mean" (binary_cross_entropy_with_logits above keeps
# "sum", a VAE's nats per batch). ``reduction`` and ``weight`` go by keyword where torch has its deprecated
# size_average and reduce before them.
def _tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def _pair(input, target, who):
    """input and target as tensors; a target of another shape broadcasts, with torch's warning (mse_loss, l1_loss,
    smooth_l1_loss, huber_loss)."""
    input, target = _tensor(input), _tensor(target)
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"{who}: a target of shape {tuple(target.shape)} beside an input of shape "
                      f"{tuple(input.shape)} broadcasts to {numpy.broadcast_shapes(target.shape, input.shape)}, which "
                      "is rarely what is meant; give them one shape", UserWarning, stacklevel=3)
    return input, target


def mse_loss(input, target, *, reduction="mean", weight=None):
    """(x − t)², reduced. A target of another shape broadcasts, with torch's warning. ``weight`` (input's shape)
    multiplies each term, and "mean" is then Σ w·(x − t)² / Σ w, as torch's."""
    input, target = _pair(input, target, "mse_loss")
    diff = input - target
    loss = diff * diff
    if weight is None:
        return reduce(loss, reduction)
    weight = _tensor(weight)
    if tuple(weight.shape) != tuple(input.shape):
        raise ValueError(f"mse_loss: weight must have the input's shape {tuple(input.shape)}, got {tuple(weight.shape)}")
    loss = loss * weight
    if reduction == "mean":
        return loss.sum() / weight.sum()
    return reduce(loss, reduction)


def binary_cross_entropy(input, target, weight=None, *, reduction="mean"):
    """−w·[t log x + (1 − t) log(1 − x)] from probabilities x in [0, 1] (each log clamped at −100, as torch's), reduced.

    Args:
        input: probabilities x (refused outside [0, 1]).
        target: t, of the input's shape (as torch, which refuses another shape).
        weight: w, broadcastable to the input's shape; "mean" divides by the number of terms, not by Σ w (torch's).
        reduction: "mean" (default, torch's), "sum" or "none".
    For logits, binary_cross_entropy_with_logits is exact where σ(x) rounds to 0 or 1.
    """
    input, target = _tensor(input), _tensor(target)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(f"binary_cross_entropy: the target's shape {tuple(target.shape)} differs from the input's "
                         f"{tuple(input.shape)}; give them one shape")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, not {reduction!r}")
    return reduce(_weighted(ops.binary_cross_entropy(input, target), weight, "binary_cross_entropy"), reduction)


def gaussian_nll_loss(input, target, var, full=False, eps=1e-6, reduction="mean"):
    """½(log max(σ², eps) + (x − t)² / max(σ², eps)) (+ ½ log 2π with ``full``), reduced, as torch's.

    Args:
        input: the Gaussian's means x.
        target: samples t.
        var: variances σ² ≥ 0: of the input's shape, or one short of it (the last axis dropped, or of size 1), or a
            number for all. Refused if negative. Below ``eps`` a variance is taken as ``eps``, and its gradient passes
            on unchanged (torch's clamp under no_grad).
        full: add the constant ½ log 2π.
        eps: the smallest variance used.
        reduction: "mean" (default, torch's), "sum" or "none".
    """
    input, target = _tensor(input), _tensor(target)
    if isinstance(var, numbers.Real) and not isinstance(var, bool):
        if var < 0:
            raise ValueError("gaussian_nll_loss: var has negative entry/entries")
        var = Tensor(input.xp.full(input.shape, var, dtype=input.dtype))
    var = _tensor(var)
    if bool((var.data < 0).any()):
        raise ValueError("gaussian_nll_loss: var has negative entry/entries")
    shape, vshape = tuple(input.shape), tuple(var.shape)
    if vshape != shape:
        if shape[:-1] == vshape:  # one variance for each row: the last axis broadcasts
            var = ops.unsqueeze(var, -1)
        elif not (len(vshape) == len(shape) and sum(v for s, v in zip(shape, vshape) if s != v) == 1):
            raise ValueError(f"gaussian_nll_loss: var of shape {vshape} does not fit the input's {shape} (give the "
                             "input's shape, it without its last axis, or a 1 in place of one axis)")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, not {reduction!r}")
    xp = var.xp  # the clamp as a shift outside the graph: var's gradient passes as is (array_function: a plan records it)
    var = var + array_function(lambda v: xp.maximum(v, eps) - v, var)
    diff = input - target
    loss = 0.5 * (ops.log(var) + diff * diff / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return reduce(loss, reduction)


# Normalization, torch's names and defaults, composed of ops whose VJPs are hand-written and gradchecked (mean, var,
# sqrt, div): the gradient is the composition's, through the batch's mean and variance too.
def _normalized(x, mean, var, eps):
    """(x − μ)/√(σ² + ε): ε inside the root, as torch's (a constant slice, σ² = 0, gives 0, not NaN)."""
    return (x - mean) / ops.sqrt(var + eps)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """y = (x − μ)/√(σ² + ε)·w + b, μ and σ² the mean and the biased variance (÷ n, torch's) of each slice over the last
    ``len(normalized_shape)`` axes, as torch's F.layer_norm.

    Args:
        input: x, whose last axes are ``normalized_shape``.
        normalized_shape: an int or a tuple of ints (the shape of those last axes).
        weight, bias: w and b, of shape ``normalized_shape``, or None (no scale or no shift).
        eps: ε > 0, added to the variance inside the square root.
    """
    x = _tensor(input)
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or x.ndim < k or tuple(x.shape[x.ndim - k:]) != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} must be the last axes of the input, whose shape is "
                         f"{tuple(x.shape)}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"layer_norm: {name} must have the shape normalized_shape {shape}, got {tuple(t.shape)}")
    axes = tuple(range(-k, 0))
    y = _normalized(x, ops.mean(x, axis=axes, keepdims=True), ops.var(x, axis=axes, keepdims=True, correction=0), eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """y = (x − μ)/√(σ² + ε)·w + b per channel (the input's axis 1; input (N, C) or (N, C, L, …)), as torch's
    F.batch_norm.

    In training μ and σ² are the batch's mean and biased variance (÷ n, n = N·L·…) over every axis but 1, the gradient
    flows through them, and given running statistics are updated in place (outside the graph), torch's rule:
    r_μ ← (1 − m)·r_μ + m·μ and r_σ² ← (1 − m)·r_σ² + m·σ²·n/(n − 1), the unbiased variance. A batch of one value per
    channel (n = 1) is refused, as torch's. Not in training, μ and σ² are ``running_mean`` and ``running_var``.

    Args:
        input: x, (N, C, …).
        running_mean, running_var: tensors of C values, or None (training only; no running statistics kept).
        weight, bias: w and b, C values each, or None.
        training: use the batch's statistics (and update the running ones) or the running ones (False, torch's
            default).
        momentum: m, a number in [0, 1]. (BatchNorm1d's ``momentum=None``, the cumulative average, needs the count
            of batches the module keeps.)
        eps: ε > 0, inside the square root.
    """
    if not isinstance(momentum, numbers.Real) or isinstance(momentum, bool):
        raise TypeError(f"batch_norm: momentum must be a number, got {momentum!r} (momentum=None, a cumulative "
                        "average, is BatchNorm1d's: it counts the batches)")
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, None)


def _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps, count):
    """batch_norm, with ``count`` (the module's num_batches_tracked, already incremented) for momentum None: the
    factor is then 1/count, read from the array outside the graph (no value is read on the host)."""
    x = _tensor(input)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: the input must be (N, C) or (N, C, L, ...), got shape {tuple(x.shape)}")
    c = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"batch_norm: {name} must hold {c} values (one per channel, the input's axis 1), "
                             f"got shape {tuple(t.shape)}")
    axes = (0, *range(2, x.ndim))
    per_channel = (c,) + (1,) * (x.ndim - 2)
    if training:
        n = math.prod(x.shape[a] for a in axes)
        if n == 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
        mean = ops.mean(x, axis=axes, keepdims=True)
        var = ops.var(x, axis=axes, keepdims=True, correction=0)
        _running_update(running_mean, mean, 1.0, momentum, count)
        _running_update(running_var, var, n / (n - 1), momentum, count)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var must be given when not training")
        mean, var = ops.reshape(_tensor(running_mean), per_channel), ops.reshape(_tensor(running_var), per_channel)
    y = _normalized(x, mean, var, eps)
    if weight is not None:
        y = y * ops.reshape(_tensor(weight), per_channel)
    return y if bias is None else y + ops.reshape(_tensor(bias), per_channel)


def _running_update(running, batch, scale, momentum, count):
    """running ← (1 − m)·running + m·scale·batch in place, m = ``momentum``, or 1/count where ``count`` is given;
    outside the graph (array_function, so that a step plan records it)."""
    if running is None:
        return
    running = _tensor(running)

    def update(r, s, *n):
        m = 1.0 / n[0] if n else momentum
        return (m * (s.reshape(r.shape) * scale) + (1 - m) * r).astype(r.dtype, copy=False)

    running.copy_(array_function(update, running, batch, *(() if count is None else (count,))))


def l1_loss(input, target, *, reduction="mean"):
    """|x − t|, reduced (gradient 0 where x = t, torch's)."""
    input, target = _pair(input, target, "l1_loss")
    return reduce(ops.abs(input - target), reduction)


def _smooth(input, target, beta, reduction, who):
    """½d²/β where |d| < β, |d| − ½β elsewhere (d = x − t): smooth_l1_loss's terms (huber_loss's are β times them)."""
    if not isinstance(beta, numbers.Real) or isinstance(beta, bool) or not beta >= 0:
        raise ValueError(f"{who} does not support negative values for beta" if isinstance(beta, numbers.Real)
                         else f"{who}: beta must be a number >= 0, got {beta!r}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, not {reduction!r}")
    input, target = _pair(input, target, who)
    d = input - target
    a = ops.abs(d)
    if beta == 0:  # (the quadratic branch is empty, and ½d²/0 would put NaN in its gradient)
        return a
    return ops.where(a < beta, d * d * (0.5 / beta), a - 0.5 * beta)


def smooth_l1_loss(input, target, *, reduction="mean", beta=1.0):
    """½(x − t)²/β where |x − t| < β, |x − t| − ½β elsewhere, reduced (torch's; β = 0: l1_loss)."""
    return reduce(_smooth(input, target, beta, reduction, "smooth_l1_loss"), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """½(x − t)² where |x − t| < δ, δ(|x − t| − ½δ) elsewhere, reduced (torch's; δ·smooth_l1_loss with β = δ)."""
    if isinstance(delta, numbers.Real) and not isinstance(delta, bool) and delta <= 0:
        raise ValueError(f"huber_loss does not support non-positive values for delta, got {delta!r}")
    return reduce(_smooth(input, target, delta, reduction, "huber_loss") * delta, reduction)


def kl_div(input, target, *, reduction="mean", log_target=False):
    """KL(t ‖ q) terms from log-probabilities ``input`` = log q: t·(log t − log q), 0 where t = 0, or with
    ``log_target`` (target = log t) eᵗ·(t − log q); reduced: "mean" over every element (torch's default, with its
    warning), "batchmean" Σ/N (N = input's first axis: the KL divergence per sample), "sum", "none".

    The gradient of the target at t = 0 is −log q, the limit that 0·log 0 = 0 gives along t·log t's right branch
    (torch's is NaN there)."""
    if reduction not in (*_REDUCTIONS, "batchmean"):
        raise ValueError(f"kl_div: reduction must be one of {(*_REDUCTIONS, 'batchmean')}, not {reduction!r}")
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      UserWarning, stacklevel=2)
    input, target = _tensor(input), _tensor(target)
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        positive = target > 0
        loss = target * ops.log(ops.where(positive, target, 1.0)) - target * input  # (t = 0: 0·log 1, no 0·(−∞))
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.ndim else loss.sum()
    return reduce(loss, reduction)


def embedding(input, weight, padding_idx=None):
    """The rows ``weight[input]`` (torch's F.embedding): an integer array of any shape gives that shape + (D,); the
    gradient of each row is the sum of ḡ over the places it was picked (getitem's scatter-add), none for the row
    ``padding_idx``. Indices outside [0, num_embeddings) are refused on the CPU (torch's IndexError; NumPy would take
    a negative one from the end); on the GPU not checked (that would wait for the device)."""
    weight = _tensor(weight)
    idx = input.data if isinstance(input, Tensor) else input
    if not hasattr(idx, "dtype"):
        idx = numpy.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: the indices must be integers, not {idx.dtype}")
    n = weight.shape[0]
    if idx.size and weight.device == "cpu" and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise IndexError(f"embedding: index out of range (indices must lie in [0, {n}))")
    rows = ops.getitem(weight, idx)
    if padding_idx is None:
        return rows
    if padding_idx < 0:
        padding_idx += n
    keep = array_function(lambda i: (i != padding_idx)[..., None], Tensor(idx))
    return ops.where(keep, rows, ops.getitem(weight.detach(), idx))  # the same values; no gradient to that row


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """torch's F.conv2d (see minivae.ops.conv): input (N, C, H, W) or (C, H, W), weight (O, C/groups, kH, kW), bias
    (O,) or None; stride, padding, dilation an int or a pair, padding also "valid" or "same" (stride 1)."""
    return ops.conv2d(input, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch's F.conv_transpose2d (see minivae.ops.conv): input (N, C_in, H, W) or (C_in, H, W), weight
    (C_in, C_out/groups, kH, kW), bias (C_out,) or None."""
    return ops.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)


def pad(input, pad, mode="constant", value=None):
    """torch's F.pad: ``pad`` = (left, right, top, bottom, …), last axis first, a negative entry crops; ``mode``
    "constant" (``value`` fills; None: 0), "reflect" (the edge not repeated), "replicate" or "circular" (the last 1, 2
    or 3 axes of a 2-D … 5-D input, as torch's; see minivae.ops.conv.Pad)."""
    return ops.pad(input, pad, value, mode)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """torch's F.interpolate in its "nearest" mode for whole factors: input (N, C, d_1, …, d_K), K = 1 … 3, each pixel
    an s_1 × … × s_K block (``scale_factor`` integers, or ``size`` multiples of the d_k); the gradient sums each block.
    The other modes and factors that are not integers are not implemented (NotImplementedError naming them);
    ``recompute_scale_factor`` changes nothing for whole factors."""
    if mode != "nearest":
        raise NotImplementedError(f"interpolate: mode {mode!r} is not implemented here (only 'nearest')")
    if align_corners is not None:
        raise ValueError("interpolate: align_corners option can only be set with the interpolating modes: linear | "
                         "bilinear | bicubic | trilinear")
    if antialias:
        raise ValueError("interpolate: anti-alias option is only supported for bilinear and bicubic modes")
    return ops.upsample_nearest(input, size, scale_factor)
