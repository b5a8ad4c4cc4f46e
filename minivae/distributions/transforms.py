"""Bijections y = f(x) with their Jacobians, as torch.distributions.transforms (the same names and semantics).

A ``Transform`` maps x to y (``t(x)``), back (``t.inv(y)``, itself a Transform), and gives log |det ∂y/∂x| at a pair
(``t.log_abs_det_jacobian(x, y)``), one value per event: of x's shape less the transform's ``event_dim`` rightmost axes
(elementwise transforms: event_dim 0, x's shape). ``domain`` and ``codomain`` are constraints (their ``event_dim``
the number of rightmost axes a single application reads and writes); ``bijective``; ``sign`` (+1 or −1, of a
monotone elementwise one). ``cache_size=1`` keeps the last pair (x, y): ``inv(y)`` of the y it made returns that x
itself, the object (so a transform without a closed-form inverse, a normalizing flow's, serves TransformedDistribution's
log_prob of its own samples, as torch's).

    ExpTransform          y = eˣ                        log|J| = x
    AffineTransform(loc, scale, event_dim=0)   y = loc + scale·x     log|J| = log|scale|, summed over event_dim axes
    SigmoidTransform      y = σ(x) ∈ (0, 1)              log|J| = −softplus(−x) − softplus(x)
    TanhTransform         y = tanh x ∈ (−1, 1)           log|J| = 2(log 2 − x − softplus(−2x))
    SoftplusTransform     y = log(1 + eˣ)                log|J| = −softplus(−x)
    PowerTransform(exponent)   y = x^exponent, x > 0     log|J| = log|exponent·y/x|
    AbsTransform          y = |x| (not bijective; inv(y) = y, as torch's)
    ComposeTransform(parts)    parts applied in order; log|J| the sum of the parts' terms, each summed over the axes
                               by which the composition's event is larger than the part's (torch's rule)

The log-det terms are the stable forms torch uses: none overflows for large |x| (tanh's 1 − tanh² would round to 0
at x = 20 in float32, where 2(log 2 − x − softplus(−2x)) is −38.6).
"""
import math
import numbers

import numpy

from minivae import ops
from minivae.distributions import constraints
from minivae._backend import get_array_module
from minivae.engine import Tensor, array_function, as_tensor

__all__ = ["AbsTransform", "AffineTransform", "ComposeTransform", "ExpTransform", "PowerTransform",
           "SigmoidTransform", "SoftplusTransform", "TanhTransform", "Transform", "identity_transform"]


def _sum_rightmost(x, n):
    """x summed over its n rightmost axes (x for n ≤ 0)."""
    return x.sum(axis=tuple(range(-n, 0))) if n > 0 else x


def _tensor(x):
    return x if isinstance(x, Tensor) else as_tensor(x)


def _full_like(x, value):
    """A constant tensor of x's shape, dtype and device (made there: no upload)."""
    return array_function(lambda a: get_array_module(a).full_like(a, value), x)


class Transform:
    """A map y = f(x) with ``inv`` and ``log_abs_det_jacobian(x, y)``; see the module docstring. Subclasses write
    ``_call(x)``, ``_inverse(y)`` and ``log_abs_det_jacobian``; ``domain``/``codomain`` are class or instance
    attributes (constraints). ``cache_size`` is 0 (nothing kept) or 1 (the last pair), as torch's."""

    bijective = False
    domain = constraints.real
    codomain = constraints.real

    def __init__(self, cache_size=0):
        if cache_size not in (0, 1):
            raise ValueError(f"{type(self).__name__}: cache_size must be 0 or 1, got {cache_size!r}")
        self._cache_size = cache_size
        self._cached_x_y = None, None
        self._inv = None

    @property
    def event_dim(self):
        """The event_dim of domain and codomain when they agree (torch's deprecated property)."""
        if self.domain.event_dim == self.codomain.event_dim:
            return self.domain.event_dim
        raise ValueError("Please use either .domain.event_dim or .codomain.event_dim")

    @property
    def inv(self):
        """The inverse transform, t.inv(t(x)) = x; inv.inv is the transform itself."""
        if self._inv is None:
            self._inv = _InverseTransform(self)
        return self._inv

    @property
    def sign(self):
        """+1 or −1: whether the (elementwise, monotone) transform increases or decreases."""
        raise NotImplementedError(f"{type(self).__name__} has no sign")

    def __call__(self, x):
        x = _tensor(x)
        if self._cache_size == 0:
            return self._call(x)
        x_old, y_old = self._cached_x_y
        if x is x_old:
            return y_old
        y = self._call(x)
        self._cached_x_y = x, y
        return y

    def _inv_call(self, y):
        y = _tensor(y)
        if self._cache_size == 0:
            return self._inverse(y)
        x_old, y_old = self._cached_x_y
        if y is y_old:
            return x_old
        x = self._inverse(y)
        self._cached_x_y = x, y
        return x

    def _call(self, x):
        raise NotImplementedError(f"{type(self).__name__} has no forward map")

    def _inverse(self, y):
        raise NotImplementedError(f"{type(self).__name__} has no inverse: only the values it made itself (cache_size=1) "
                                  "can be mapped back")

    def log_abs_det_jacobian(self, x, y):
        raise NotImplementedError(f"{type(self).__name__} has no log_abs_det_jacobian")

    def forward_shape(self, shape):
        """The shape of y for an x of ``shape`` (the same, for all but a broadcasting affine map)."""
        return tuple(shape)

    def inverse_shape(self, shape):
        return tuple(shape)

    def __repr__(self):
        return type(self).__name__ + "()"


class _InverseTransform(Transform):
    """The inverse of a transform: its _call is the other's inverse, its log-det the other's negated at (y, x)."""

    def __init__(self, transform):
        super().__init__(cache_size=transform._cache_size)
        self._inv = transform

    @property
    def domain(self):
        return self._inv.codomain

    @property
    def codomain(self):
        return self._inv.domain

    @property
    def bijective(self):
        return self._inv.bijective

    @property
    def sign(self):
        return self._inv.sign

    @property
    def inv(self):
        return self._inv

    def __call__(self, x):
        return self._inv._inv_call(x)

    def log_abs_det_jacobian(self, x, y):
        return -self._inv.log_abs_det_jacobian(y, x)

    def forward_shape(self, shape):
        return self._inv.inverse_shape(shape)

    def inverse_shape(self, shape):
        return self._inv.forward_shape(shape)

    def __repr__(self):
        return f"_InverseTransform({self._inv!r})"


class ComposeTransform(Transform):
    """``parts`` applied in order, x → parts[0] → … → parts[-1]. Its domain's event_dim is the largest event any part
    reads, traced back to x (torch's rule; likewise the codomain's), and its log-det at (x, y) is Σ_k of part k's
    log-det at (x_k, x_{k+1}), the intermediate points x_k = parts[k−1](…(x)) recomputed (or taken from the parts'
    caches), each summed over its rightmost axes beyond the part's own event: an elementwise part after a flow of
    event_dim 1 counts its terms over the vector. No parts: the identity (log-det 0 of x's shape)."""

    def __init__(self, parts, cache_size=0):
        parts = list(parts)
        for p in parts:
            if not isinstance(p, Transform):
                raise TypeError(f"ComposeTransform: parts must be Transforms, not {type(p).__name__}")
        super().__init__(cache_size=cache_size)
        self.parts = parts

    @property
    def domain(self):
        if not self.parts:
            return constraints.real
        domain = self.parts[0].domain
        event_dim = self.parts[-1].codomain.event_dim
        for part in reversed(self.parts):
            event_dim += part.domain.event_dim - part.codomain.event_dim
            event_dim = max(event_dim, part.domain.event_dim)
        return constraints.independent(domain, event_dim - domain.event_dim) if event_dim > domain.event_dim else domain

    @property
    def codomain(self):
        if not self.parts:
            return constraints.real
        codomain = self.parts[-1].codomain
        event_dim = self.parts[0].domain.event_dim
        for part in self.parts:
            event_dim += part.codomain.event_dim - part.domain.event_dim
            event_dim = max(event_dim, part.codomain.event_dim)
        return (constraints.independent(codomain, event_dim - codomain.event_dim) if event_dim > codomain.event_dim
                else codomain)

    @property
    def bijective(self):
        return all(p.bijective for p in self.parts)

    @property
    def sign(self):
        s = 1
        for p in self.parts:
            s = s * p.sign
        return s

    @property
    def inv(self):
        if self._inv is None:
            self._inv = ComposeTransform([p.inv for p in reversed(self.parts)])
            self._inv._inv = self
        return self._inv

    def _call(self, x):
        for part in self.parts:
            x = part(x)
        return x

    def _inverse(self, y):
        for part in reversed(self.parts):
            y = part.inv(y)
        return y

    def log_abs_det_jacobian(self, x, y):
        x, y = _tensor(x), _tensor(y)
        if not self.parts:
            return _full_like(x, 0.0)  # the identity's log-det
        xs = [x]
        for part in self.parts[:-1]:
            xs.append(part(xs[-1]))
        xs.append(y)
        total, event_dim = None, self.domain.event_dim
        for part, a, b in zip(self.parts, xs[:-1], xs[1:]):
            term = _sum_rightmost(part.log_abs_det_jacobian(a, b), event_dim - part.domain.event_dim)
            total = term if total is None else total + term
            event_dim += part.codomain.event_dim - part.domain.event_dim
        return total

    def forward_shape(self, shape):
        for part in self.parts:
            shape = part.forward_shape(shape)
        return tuple(shape)

    def inverse_shape(self, shape):
        for part in reversed(self.parts):
            shape = part.inverse_shape(shape)
        return tuple(shape)

    def __repr__(self):
        return "ComposeTransform(\n    " + ",\n    ".join(repr(p) for p in self.parts) + "\n)"


identity_transform = ComposeTransform([])


class ExpTransform(Transform):
    """y = eˣ;  x = log y;  log|J| = x."""

    bijective = True
    domain, codomain = constraints.real, constraints.positive
    sign = 1

    def _call(self, x):
        return ops.exp(x)

    def _inverse(self, y):
        return ops.log(y)

    def log_abs_det_jacobian(self, x, y):
        return _tensor(x)


class AffineTransform(Transform):
    """y = loc + scale·x (loc, scale numbers or tensors broadcasting with x);  x = (y − loc)/scale;
    log|J| = log|scale| broadcast to x's shape, summed over its ``event_dim`` rightmost axes (torch's)."""

    bijective = True

    def __init__(self, loc, scale, event_dim=0, cache_size=0):
        super().__init__(cache_size=cache_size)
        if isinstance(event_dim, bool) or not isinstance(event_dim, numbers.Integral) or event_dim < 0:
            raise ValueError(f"AffineTransform: event_dim must be an integer >= 0, got {event_dim!r}")
        self.loc, self.scale, self._event_dim = loc, scale, int(event_dim)

    @property
    def event_dim(self):
        return self._event_dim

    @property
    def domain(self):
        return constraints.independent(constraints.real, self._event_dim) if self._event_dim else constraints.real

    codomain = domain

    @property
    def sign(self):
        if isinstance(self.scale, numbers.Real):
            return 1 if self.scale > 0 else -1 if self.scale < 0 else 0
        return ops.sign(_tensor(self.scale))

    def _call(self, x):
        return self.loc + self.scale * x

    def _inverse(self, y):
        return (y - self.loc) / self.scale

    def log_abs_det_jacobian(self, x, y):
        x = _tensor(x)
        if isinstance(self.scale, numbers.Real):
            result = _full_like(x, math.log(abs(self.scale)))
        else:
            log_scale = ops.log(ops.abs(_tensor(self.scale)))
            result = ops.broadcast_to(log_scale, numpy.broadcast_shapes(log_scale.shape, x.shape))
        return _sum_rightmost(result, self._event_dim)

    def _param_shape(self):
        shapes = [tuple(getattr(p, "shape", ())) for p in (self.loc, self.scale)]
        return numpy.broadcast_shapes(*shapes)

    def forward_shape(self, shape):
        return tuple(numpy.broadcast_shapes(tuple(shape), self._param_shape()))

    inverse_shape = forward_shape

    def __repr__(self):
        return f"AffineTransform(event_dim={self._event_dim})"


class SigmoidTransform(Transform):
    """y = σ(x), clipped to [tiny, 1 − ε] of the dtype (torch's: y never rounds to 0 or 1, whose logit is ∓∞);
    x = log y − log1p(−y) of y clipped the same;  log|J| = −softplus(−x) − softplus(x) (= log σ(x) + log σ(−x))."""

    bijective = True
    domain, codomain = constraints.real, constraints.unit_interval
    sign = 1

    @staticmethod
    def _clipped(y):
        info = numpy.finfo(y.dtype)
        return ops.clip(y, float(info.tiny), 1 - float(info.eps))

    def _call(self, x):
        return self._clipped(ops.sigmoid(x))

    def _inverse(self, y):
        y = self._clipped(y)
        return ops.log(y) - ops.log1p(-y)

    def log_abs_det_jacobian(self, x, y):
        x = _tensor(x)
        return -ops.softplus(-x) - ops.softplus(x)


class TanhTransform(Transform):
    """y = tanh x;  x = atanh y = ½(log1p(y) − log1p(−y));  log|J| = log(1 − tanh² x) = 2(log 2 − x − softplus(−2x)),
    torch's stable form (finite for any x). As torch's, the inverse at ±1 is ±∞: pass cache_size=1 to score
    samples that rounded to ±1."""

    bijective = True
    domain, codomain = constraints.real, constraints.interval(-1.0, 1.0)
    sign = 1

    def _call(self, x):
        return ops.tanh(x)

    def _inverse(self, y):
        return 0.5 * (ops.log1p(y) - ops.log1p(-y))

    def log_abs_det_jacobian(self, x, y):
        x = _tensor(x)
        return 2.0 * (math.log(2.0) - x - ops.softplus(-2.0 * x))


class SoftplusTransform(Transform):
    """y = log(1 + eˣ);  x = y + log(−expm1(−y)) (= log(eʸ − 1), without overflow);  log|J| = log σ(x) = −softplus(−x)."""

    bijective = True
    domain, codomain = constraints.real, constraints.positive
    sign = 1

    def _call(self, x):
        return ops.softplus(x)

    def _inverse(self, y):
        return y + ops.log(-ops.expm1(-y))

    def log_abs_det_jacobian(self, x, y):
        return -ops.softplus(-_tensor(x))


class PowerTransform(Transform):
    """y = x^exponent on x > 0;  x = y^(1/exponent);  log|J| = log|exponent·y/x|."""

    bijective = True
    domain, codomain = constraints.positive, constraints.positive

    def __init__(self, exponent, cache_size=0):
        super().__init__(cache_size=cache_size)
        self.exponent = exponent

    @property
    def sign(self):
        if isinstance(self.exponent, numbers.Real):
            return 1 if self.exponent > 0 else -1 if self.exponent < 0 else 0
        return ops.sign(_tensor(self.exponent))

    def _call(self, x):
        return ops.pow(x, self.exponent)

    def _inverse(self, y):
        return ops.pow(y, 1 / self.exponent if isinstance(self.exponent, numbers.Real) else ops.div(1.0, self.exponent))

    def log_abs_det_jacobian(self, x, y):
        return ops.log(ops.abs(self.exponent * _tensor(y) / _tensor(x)))

    def forward_shape(self, shape):
        return tuple(numpy.broadcast_shapes(tuple(shape), tuple(getattr(self.exponent, "shape", ()))))

    inverse_shape = forward_shape


class AbsTransform(Transform):
    """y = |x|: not bijective; inv(y) = y (the nonnegative preimage), as torch's; no log-det (as torch's)."""

    domain, codomain = constraints.real, constraints.positive

    def _call(self, x):
        return ops.abs(x)

    def _inverse(self, y):
        return y
