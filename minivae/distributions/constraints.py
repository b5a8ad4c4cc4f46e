"""Where a distribution's values and parameters live, with torch.distributions.constraints' names.

Each constraint's ``check(value)`` says, elementwise, whether ``value`` satisfies it: a boolean of value's shape
less the constraint's ``event_dim`` rightmost axes (an event is valid only as a whole). It is computed with the
value's own array module: a Tensor gives a Tensor (outside the graph, as ``minivae.engine.array_function``), a CuPy
array a CuPy array, so nothing is copied to the host; numbers, lists and NumPy arrays give a NumPy array.

    real                 not NaN (±inf are real, as torch's)           real_vector = independent(real, 1)
    positive             x > 0                                          nonnegative  x ≥ 0
    greater_than(lb)     x > lb        greater_than_eq(lb)  x ≥ lb      less_than(ub)  x < ub
    interval(lb, ub)     lb ≤ x ≤ ub   half_open_interval(lb, ub)  lb ≤ x < ub     unit_interval = interval(0, 1)
    boolean              x ∈ {0, 1}
    integer_interval(lb, ub)  an integer in [lb, ub]    nonnegative_integer, positive_integer
    one_hot              a vector of 0s and 1s with one 1 (event_dim 1)
    simplex              a vector ≥ 0 whose sum is 1 within 1e-6 (event_dim 1, torch's tolerance)
    independent(c, n)    c, with n more rightmost axes taken as one event: all of them must hold
"""
import numpy

from minivae._backend import get_array_module
from minivae.engine import Tensor, array_function

__all__ = ["Constraint", "boolean", "greater_than", "greater_than_eq", "half_open_interval", "independent",
           "integer_interval", "interval", "less_than", "nonnegative", "nonnegative_integer", "one_hot", "positive",
           "positive_integer", "real", "real_vector", "simplex", "unit_interval"]


class Constraint:
    """A region of values. ``is_discrete``: whether it is countable; ``event_dim``: how many rightmost axes make
    one event (checked together)."""

    is_discrete = False
    event_dim = 0

    def check(self, value):
        """A boolean of value's shape (less ``event_dim`` rightmost axes): whether each value (event) satisfies it."""
        if isinstance(value, Tensor):
            return array_function(lambda v: self._check(get_array_module(v), v), value)
        xp = get_array_module(value)
        return self._check(xp, numpy.asarray(value) if xp is numpy else value)  # (a number, a list: NumPy's)

    def _check(self, xp, value):
        raise NotImplementedError

    def __repr__(self):
        return type(self).__name__[1:] + "()"


def _integer(value):
    """value % 1 == 0 (False for NaN and ±inf, without NumPy's warning of an invalid remainder)."""
    with numpy.errstate(invalid="ignore"):
        return value % 1 == 0


class _Real(Constraint):
    def _check(self, xp, value):
        return value == value  # False only for NaN


class _GreaterThan(Constraint):
    def __init__(self, lower_bound):
        self.lower_bound = lower_bound

    def _check(self, xp, value):
        return self.lower_bound < value

    def __repr__(self):
        return f"{type(self).__name__[1:]}(lower_bound={self.lower_bound})"


class _GreaterThanEq(_GreaterThan):
    def _check(self, xp, value):
        return self.lower_bound <= value


class _LessThan(Constraint):
    def __init__(self, upper_bound):
        self.upper_bound = upper_bound

    def _check(self, xp, value):
        return value < self.upper_bound

    def __repr__(self):
        return f"{type(self).__name__[1:]}(upper_bound={self.upper_bound})"


class _Interval(Constraint):
    def __init__(self, lower_bound, upper_bound):
        self.lower_bound, self.upper_bound = lower_bound, upper_bound

    def _check(self, xp, value):
        return (self.lower_bound <= value) & (value <= self.upper_bound)

    def __repr__(self):
        return f"{type(self).__name__[1:]}(lower_bound={self.lower_bound}, upper_bound={self.upper_bound})"


class _HalfOpenInterval(_Interval):
    def _check(self, xp, value):
        return (self.lower_bound <= value) & (value < self.upper_bound)


class _IntegerInterval(_Interval):
    is_discrete = True

    def _check(self, xp, value):
        return _integer(value) & (self.lower_bound <= value) & (value <= self.upper_bound)


class _IntegerGreaterThanEq(_GreaterThan):
    is_discrete = True

    def _check(self, xp, value):
        return _integer(value) & (self.lower_bound <= value)


class _Boolean(Constraint):
    is_discrete = True

    def _check(self, xp, value):
        return (value == 0) | (value == 1)


class _OneHot(Constraint):
    is_discrete, event_dim = True, 1

    def _check(self, xp, value):
        return ((value == 0) | (value == 1)).all(axis=-1) & (value.sum(axis=-1) == 1)


class _Simplex(Constraint):
    event_dim = 1

    def _check(self, xp, value):
        return (value >= 0).all(axis=-1) & (xp.abs(value.sum(axis=-1) - 1) < 1e-6)


class _IndependentConstraint(Constraint):
    """``base_constraint`` with ``reinterpreted_batch_ndims`` more rightmost axes in one event (all must hold)."""

    def __init__(self, base_constraint, reinterpreted_batch_ndims):
        if not isinstance(base_constraint, Constraint):
            raise TypeError(f"independent: base_constraint must be a Constraint, not {type(base_constraint).__name__}")
        n = reinterpreted_batch_ndims
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"independent: reinterpreted_batch_ndims must be an integer >= 0, got {n!r}")
        self.base_constraint, self.reinterpreted_batch_ndims = base_constraint, n

    @property
    def is_discrete(self):
        return self.base_constraint.is_discrete

    @property
    def event_dim(self):
        return self.base_constraint.event_dim + self.reinterpreted_batch_ndims

    def _check(self, xp, value):
        result, n = self.base_constraint._check(xp, value), self.reinterpreted_batch_ndims
        if result.ndim < n:
            raise ValueError(f"{self!r}.check: expected a value of at least {self.event_dim} axes, got shape "
                             f"{tuple(value.shape)}")
        return result.reshape(result.shape[:result.ndim - n] + (-1,)).all(axis=-1)

    def __repr__(self):
        return f"IndependentConstraint({self.base_constraint!r}, {self.reinterpreted_batch_ndims})"


real = _Real()
real_vector = _IndependentConstraint(real, 1)
positive = _GreaterThan(0.0)
nonnegative = _GreaterThanEq(0.0)
unit_interval = _Interval(0.0, 1.0)
boolean = _Boolean()
one_hot = _OneHot()
simplex = _Simplex()
nonnegative_integer = _IntegerGreaterThanEq(0)
positive_integer = _IntegerGreaterThanEq(1)
greater_than = _GreaterThan
greater_than_eq = _GreaterThanEq
less_than = _LessThan
interval = _Interval
half_open_interval = _HalfOpenInterval
integer_interval = _IntegerInterval
independent = _IndependentConstraint


class _LowerCholesky(Constraint):
    """A lower-triangular matrix with a positive diagonal (event_dim 2): a Cholesky factor, as torch's lower_cholesky."""

    event_dim = 2

    def _check(self, xp, value):
        n = value.shape[-1]
        kept = xp.where(xp.tri(n, n, dtype=bool), value, xp.zeros((), value.dtype))  # (NaN ≠ NaN: refused, as torch's)
        lower = (kept == value).reshape(value.shape[:-2] + (-1,)).all(axis=-1)
        return lower & (xp.diagonal(value, 0, -2, -1) > 0).all(axis=-1)


class _PositiveDefinite(Constraint):
    """A symmetric matrix (within torch's isclose(A, Aᵀ, atol=1e-6)) whose eigenvalues are all > 0 (event_dim 2), as
    torch's positive_definite (which asks whether a Cholesky factor exists: NumPy has no cholesky_ex to ask without
    raising; the eigenvalues say the same but within rounding at the edge).

    Different from torch on purpose: each matrix of a batch is judged alone. torch's returns the symmetry check alone
    for the whole batch when any matrix in it is not symmetric (−I beside a non-symmetric matrix is "positive-definite"
    there)."""

    event_dim = 2

    def _check(self, xp, value):
        symmetric = xp.isclose(value, value.swapaxes(-1, -2), atol=1e-6).all(axis=(-2, -1))
        eye = xp.eye(value.shape[-1], dtype=value.dtype)
        safe = xp.where(symmetric[..., None, None], value, eye)  # (eigvalsh of NaN, or of a non-symmetric matrix: not asked)
        return symmetric & (xp.linalg.eigvalsh(safe) > 0).all(axis=-1)


lower_cholesky = _LowerCholesky()
positive_definite = _PositiveDefinite()
__all__ += ["lower_cholesky", "positive_definite"]
