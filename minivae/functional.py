"""User-facing functions, imported as ``F`` in the docs (``import minivae.functional as F``).
Names and defaults follow PyTorch; NumPy's ``axis`` is the name used here, and PyTorch's ``dim``
(and ``tau`` for the temperature) are accepted as keywords too."""
import numpy  # for the shape of noise given as a list

from minivae import ops
from minivae.ops import logsumexp, relu, sigmoid, softplus, tanh  # noqa: F401  (re-exported)
from minivae.ops._broadcast import normalize_axis
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


def binary_cross_entropy_with_logits(logits, target, reduction="sum"):
    """−[t log σ(x) + (1−t) log(1−σ(x))], from logits x (stable for |x| up to 1e4 and beyond).

    Args:
        logits: Bernoulli logits x.
        target: targets t in [0, 1], broadcastable against ``logits``.
        reduction: "sum" (default: nats per batch, as a VAE's reconstruction term), "mean" or "none".
    """
    return reduce(ops.bce_with_logits(logits, target), reduction)


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
