"""User-facing functions, imported as ``F`` in the docs (``import minivae.functional as F``).
Names and defaults follow PyTorch (``axis`` in place of ``dim``)."""
from minivae import ops
from minivae.ops import logsumexp, relu, sigmoid, softplus, tanh  # noqa: F401  (re-exported)

_REDUCTIONS = ("sum", "mean", "none")


def softmax(x, axis=-1, temperature=1.0):
    """softmax(x / τ) along ``axis``; τ = ``temperature`` > 0."""
    return ops.softmax(x, axis=axis, temperature=temperature)


def log_softmax(x, axis=-1, temperature=1.0):
    """log softmax(x / τ) along ``axis``, computed without forming the softmax."""
    return ops.log_softmax(x, axis=axis, temperature=temperature)


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
