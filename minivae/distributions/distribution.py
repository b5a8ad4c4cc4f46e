"""The base class: ``sample`` / ``rsample`` / ``log_prob`` / ``entropy`` as in torch.distributions."""
import copy
import math
import numbers

import numpy

from minivae import ops
from minivae._backend import device_of, get_array_module
from minivae.engine import DEFAULT_FLOAT, Tensor, array_function, as_tensor, no_grad, tensor
from minivae.random import _shape


def as_param(x, name, who):
    """A distribution's parameter as a floating tensor.

    Floating tensors pass through (gradients flow to them). Numbers and arrays become constants:
    floating ones keep their dtype (Python floats: float32, the default), integer and bool ones
    become float32, as torch.distributions makes ``Normal(0, 1)`` a float distribution. An integer
    *tensor* is refused: converting it would silently cut it from the graph and change its dtype.
    """
    if isinstance(x, Tensor):
        if x.dtype.kind != "f":
            raise TypeError(f"{who}: {name} must be a floating tensor, not {x.dtype} (cast it with .astype)")
        return x
    t = tensor(x)  # a CuPy array stays on the GPU, numbers and host arrays go to the CPU (see on_one_device)
    if t.dtype.kind in "biu":
        t = Tensor(t.data.astype(DEFAULT_FLOAT))
    elif t.dtype.kind != "f":
        raise TypeError(f"{who}: {name} must be a real number or array, not {t.dtype} ({x!r:.40})")
    return t


def as_params(given, names, who):
    """as_param of each argument ``given``, a number among them (a Python or NumPy real scalar) in the dtype of the
    first of the others, as torch.distributions' broadcast_all: ``Normal(float64_loc, 0.1)`` is float64 throughout
    (its scale 0.1 exactly, entropy, variance), where as_param alone made 0.1 float32. All numbers: as_param's."""
    number = [isinstance(x, numbers.Real) for x in given]
    params = [None if n else as_param(x, name, who) for x, name, n in zip(given, names, number)]
    dtype = next((p.dtype for p in params if p is not None), None)
    return [as_param(numpy.asarray(x, dtype) if dtype is not None else x, name, who) if p is None else p
            for x, name, p in zip(given, names, params)]


def on_one_device(params, given):
    """``params``, as_param's tensors of the arguments ``given``, with those made from numbers and host arrays moved to
    the device of the first tensor or device array among ``given``: as torch.distributions puts Python numbers on the
    device of the tensors they broadcast with, ``Normal(cuda_loc, 1.0)`` is a distribution on the GPU. Tensors and
    device arrays stay where they are (two devices are then the ops' error, not a copy). Called after the checks,
    which read such constants on the host (``checkable``)."""
    host = [not isinstance(x, Tensor) and device_of(x) == "cpu" for x in given]
    device = next((p.device for p, on_host in zip(params, host) if not on_host), "cpu")
    return [p.to(device) if on_host else p for p, on_host in zip(params, host)]


def checked_params(given, names, who, positive, nonnegative=()):
    """(tensors, batch_shape, dtype) of a distribution's parameters: as_params' tensors, constants a user passes checked
    (see ``checkable``: those named in ``positive`` finite and > 0, in ``nonnegative`` finite and ≥ 0, the others not
    NaN; NaN fails ``> 0``, so one comparison with each bound covers NaN and ±inf), put on one device, their broadcast
    shape (no arithmetic on the data), and their result dtype (float32 loc with a float64 scale draws float64 noise)."""
    params = as_params(given, names, who)
    for name, t in zip(names, params):
        if not checkable(t):
            continue
        if name in positive and not ((t.data > 0) & (t.data < numpy.inf)).all():
            raise ValueError(f"{who}: {name} must be > 0 and finite (not NaN or inf)")
        if name in nonnegative and not ((t.data >= 0) & (t.data < numpy.inf)).all():
            raise ValueError(f"{who}: {name} must be >= 0 and finite (not NaN or inf)")
        if name not in positive and numpy.isnan(t.data).any():
            raise ValueError(f"{who}: {name} must not be NaN")
    params = on_one_device(params, given)
    try:
        batch_shape = numpy.broadcast_shapes(*[p.shape for p in params])
    except ValueError:
        shapes = " and ".join(f"{n} of shape {p.shape}" for n, p in zip(names, params))
        raise ValueError(f"{who}: {shapes} do not broadcast together") from None
    return params, batch_shape, numpy.result_type(*[p.dtype for p in params])


def location_scale(loc, scale, who):
    """(loc, scale, batch_shape, dtype) of a location-scale family (Normal, Laplace): ``checked_params`` with a
    positive scale."""
    (loc_t, scale_t), batch_shape, dtype = checked_params((loc, scale), ("loc", "scale"), who, positive=("scale",))
    return loc_t, scale_t, batch_shape, dtype


def as_value(value, like):
    """A value to score (``log_prob``'s argument) as a tensor, by the ops' rule for an operand of tensor ``like``:
    tensors and device arrays as they are, numbers, lists and host arrays on ``like``'s device."""
    if isinstance(value, Tensor) or device_of(value) != "cpu":
        return as_tensor(value)
    return as_tensor(value, device=like.device)


def cdf_with_limits(cdf, value):
    """``cdf`` (a function of the value) at the finite values, and its limits 0 at −∞ and 1 at +∞, with gradients 0
    there in the value and in the parameters (the limits of the cdf's derivatives: they are constant there whatever the
    parameters). The formulas evaluated at ±∞ give the values but send ∞·0 = NaN back: (±∞ − loc)/scale to scale,
    e^{(loc − x)/scale} at x = −∞ (Gumbel's) to loc and scale, rate·∞ to rate. The infinite values go into ``cdf`` as
    1, which is inside (or at the edge of) every support here: ℝ, [0, ∞), [0, 1]."""
    xp = value.xp
    up, down = array_function(lambda v: (v == xp.inf, v == -xp.inf), value)
    inner = cdf(ops.where(up | down, 1.0, value))
    return ops.where(up, 1.0, ops.where(down, 0.0, inner))


def checkable(x):
    """Whether the values of ``x`` are checked: only constants on the CPU. A computed parameter (one
    that requires grad) is left alone, as there is no pass over it each step, and so is one on the GPU:
    the check would wait for the GPU and copy its answer back."""
    return not x.requires_grad and x.device == "cpu"


def check_categories(x, who, name):
    """A categorical parameter needs a last axis of K ≥ 1 categories."""
    if x.ndim == 0:
        raise ValueError(f"{who}: {name} need a last axis of categories")
    if x.shape[-1] == 0:
        raise ValueError(f"{who}: {name} have K = 0 categories (last axis of shape {x.shape}); need K >= 1")


def logits_from(probs, logits, who, binary=False):
    """PyTorch's rule: exactly one of ``probs`` (the first positional argument) and ``logits``.

    Bernoulli (``binary``): probs p ∈ [0, 1]. Categorical: nonnegative weights w, normalized over the
    last axis, p = w / Σ_k w_k (torch's rule: the weights need not sum to 1). Then p is clamped to
    [ε, 1 − ε] (ε the dtype's machine epsilon, as torch's ``probs_to_logits``) and becomes log p, or
    log p − log(1 − p) when ``binary``. Returns (logits, p), p None when logits were given.
    Constant CPU probs outside that domain are refused (see ``checkable``)."""
    if (probs is None) == (logits is None):
        raise ValueError(f"{who} takes exactly one of probs= or logits=")
    if probs is None:
        logits = as_param(logits, "logits", who)
        if not binary:
            check_categories(logits, who, "logits")
        return logits, None
    p = as_param(probs, "probs", who)
    if binary:
        if checkable(p):
            ok = (p.data >= 0) & (p.data <= 1)  # NaN fails both comparisons, so it is refused too
            if not ok.all():
                raise ValueError(f"{who}: probs must be in [0, 1] (and not NaN), got {_first_bad(p.data, ok)}")
    else:
        check_categories(p, who, "probs")
        if checkable(p):
            ok = numpy.isfinite(p.data) & (p.data >= 0)
            if not ok.all():
                raise ValueError(f"{who}: probs must be finite and >= 0, got {_first_bad(p.data, ok)}")
            total = p.data.sum(axis=-1)
            ok = (total > 0) & numpy.isfinite(total)  # a sum of 0 has no normalization; one of inf gives p = 0
            if not ok.all():
                raise ValueError(f"{who}: probs need a positive, finite sum over the last axis (categories), "
                                 f"got a row sum of {_first_bad(total, ok)}")
        p = p / p.sum(axis=-1, keepdims=True)
    eps = float(numpy.finfo(p.dtype).eps)
    clamped = ops.clip(p, eps, 1 - eps)
    return (ops.log(clamped) - ops.log1p(-clamped) if binary else ops.log(clamped)), p


def _first_bad(values, ok):
    """The first value that fails the check ``ok``, for an error message."""
    return values[~ok].flat[0] if values.ndim else values.item()


class Distribution:
    """``batch_shape`` indexes independent distributions, ``event_shape`` is one draw's shape."""

    has_rsample = False
    batch_shape = ()
    event_shape = ()
    arg_constraints = {}  # parameter name → the constraint it satisfies (minivae.distributions.constraints)
    support = None  # the constraint every value drawn satisfies (each distribution sets its own)
    _params = ()  # the names of the attributes that hold the parameters (tensors, or None), for ``expand``

    @property
    def stddev(self):
        """√variance, as torch's."""
        return ops.sqrt(self.variance)

    def expand(self, batch_shape):
        """This distribution repeated to ``batch_shape``, as torch's ``expand``: a new one whose parameters are those
        broadcast to ``batch_shape`` (their event axes kept) by ops.broadcast_to, views, so that gradients reach these
        parameters, summed over the axes broadcast. The batch shape must broadcast to ``batch_shape`` (axes of 1
        repeated, new axes in front)."""
        batch_shape = _shape(batch_shape, "batch_shape")
        if not self._params:
            raise NotImplementedError(f"{type(self).__name__} has no expand")
        old, n = tuple(self.batch_shape), len(self.batch_shape)
        if len(batch_shape) < n or any(a not in (1, b) for a, b in zip(old, batch_shape[len(batch_shape) - n:])):
            raise ValueError(f"{type(self).__name__}.expand: batch_shape {old} cannot be expanded to {batch_shape}")
        new = copy.copy(self)
        for name in self._params:
            p = getattr(self, name)
            if p is not None:
                shape = batch_shape + p.shape[n:]  # (a parameter of fewer axes than the batch, Normal's, has no event)
                setattr(new, name, p if p.shape == shape else ops.broadcast_to(p, shape))
        new.batch_shape = batch_shape
        return new

    def _support(self, like, values, expand):
        """torch's enumerate_support: ``values(xp, dtype)``, the n values (n,) + event_shape that one distribution
        takes, made in the array module of tensor ``like`` (on its device) for its dtype, shaped (n, 1, …, 1) +
        event_shape to broadcast against the batch, or written out to (n,) + batch_shape + event_shape (a broadcast
        view) when ``expand``."""
        batch, event = tuple(self.batch_shape), tuple(self.event_shape)

        def support(a):
            xp = get_array_module(a)
            v = values(xp, a.dtype)
            n = v.shape[0]
            v = v.reshape((n,) + (1,) * len(batch) + event)
            return xp.broadcast_to(v, (n,) + batch + event) if expand else v
        return array_function(support, like)

    def sample(self, sample_shape=(), rng=None):
        """A draw with no gradient."""
        with no_grad():
            return self.rsample(sample_shape, rng=rng).detach()

    def rsample(self, sample_shape=(), rng=None):
        raise NotImplementedError(f"{type(self).__name__} has no reparameterized sample")

    def log_prob(self, value):
        raise NotImplementedError

    def entropy(self):
        raise NotImplementedError

    def cdf(self, value):
        """P(X ≤ value), as torch's (not every distribution has one)."""
        raise NotImplementedError(f"{type(self).__name__} has no cdf")

    def icdf(self, value):
        """The inverse of cdf: the x with P(X ≤ x) = value, as torch's."""
        raise NotImplementedError(f"{type(self).__name__} has no icdf")

    def _batch(self, x):
        """``x`` broadcast to batch_shape, as torch's are (no op where it already has that shape)."""
        return x if x.shape == self.batch_shape else ops.broadcast_to(x, self.batch_shape)

    def _value(self, value):
        """A value to evaluate at (``as_value``) on the device of the first parameter, a Python number in the
        parameters' dtype ``_dtype`` (as torch's; of the location-scale families and Uniform)."""
        like = getattr(self, self._params[0])
        return as_value(numpy.asarray(value, self._dtype) if isinstance(value, numbers.Real) else value, like)

    def _extended(self, sample_shape, event_shape=None):
        """sample_shape + batch_shape + event_shape (or the ``event_shape`` given)."""
        sample_shape = _shape(sample_shape, "sample_shape")  # refuses a negative size, as NumPy does
        event = self.event_shape if event_shape is None else event_shape
        return sample_shape + tuple(self.batch_shape) + tuple(event)


class CategoricalLogits:
    """For distributions over K categories: ``logits`` as given in ``_given_logits``; ``logits`` is
    their log_softmax over the last axis (log-probabilities, as in torch.distributions), made when
    first read; where probs were given, log p itself (p clamped to [ε, 1 − ε], as torch's). A sampler
    that a shift of each row does not change (softmax((l + g)/τ)) reads the given logits, and a step
    that only samples makes no log_softmax (its forward and its VJP: on the GPU, two kernel launches).
    Probs given (``logits_from``'s p, normalized, not clamped) are kept in ``_probs`` and are
    ``probs``, as torch's."""

    _params = ("_given_logits", "_normalized", "_probs")

    def _set_logits(self, logits, probs=None):
        check_categories(logits, type(self).__name__, "logits")
        # log p of probs given is normalized already: its log_softmax would also cancel the row sum's gradient
        # (log p_z = log w_z − log Σ_j w_j) to a weight w_j below ε·Σ w (0), whose own log the clamp cuts
        self._given_logits, self._normalized, self._probs = logits, None if probs is None else logits, probs
        self.num_categories = logits.shape[-1]

    @property
    def logits(self):
        if self._normalized is None:
            self._normalized = ops.log_softmax(self._given_logits, axis=-1)
        return self._normalized

    @property
    def probs(self):
        """The probs given, normalized; else softmax(logits) over the last axis = exp(log_softmax(logits))."""
        return ops.exp(self.logits) if self._probs is None else self._probs

    def _impossible(self):
        """A mask of the categories of probability exactly 0: a probability 0 given, or a logit −inf. Not one whose
        probability only underflows to 0 in ``probs`` (a logit of −120 in float32): that one is still possible."""
        if self._probs is None:
            return array_function(lambda logits: logits == -math.inf, self.logits)
        return array_function(lambda p: p == 0, self._probs)


LOG_2PI = math.log(2 * math.pi)
