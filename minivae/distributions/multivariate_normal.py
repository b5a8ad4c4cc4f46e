"""The Gaussian with a full covariance, parameterised by its Cholesky factor: torch.distributions.MultivariateNormal."""
import numpy

from minivae import ops
from minivae._backend import get_array_module
from minivae.distributions import constraints
from minivae.distributions.distribution import LOG_2PI, Distribution, as_params, as_value, checkable, on_one_device
from minivae.engine import array_function
from minivae.random import resolve

WHO = "MultivariateNormal"
MATRICES = ("covariance_matrix", "precision_matrix", "scale_tril")


class MultivariateNormal(Distribution):
    """N(μ, Σ) of vectors of n entries, Σ = L Lᵀ: event_shape (n,), batch_shape the broadcast of loc's leading axes and
    the matrix's, as torch.distributions.MultivariateNormal(loc, covariance_matrix=, precision_matrix=, scale_tril=),
    exactly one of the three given.

    L (``_unbroadcasted_scale_tril``, the matrix's own batch axes) is scale_tril as given, or ops.cholesky(Σ), or from
    the precision P = Σ⁻¹ as torch's: with J the reversal of the n axes, J P J = L_f L_fᵀ, U = J L_f J upper triangular
    with U Uᵀ = P, so Σ = U⁻ᵀ U⁻¹ and L = (Uᵀ)⁻¹ (one triangular solve, no inverse of P).

    rsample    μ + L ε, ε ~ N(0, I) from the Generator (``rng``, or ``eps`` given): differentiable in μ and L
    log_prob   −½ (n log 2π + |L⁻¹(x − μ)|²) − Σᵢ log Lᵢᵢ (a triangular solve; log |Σ| = 2 Σᵢ log Lᵢᵢ)
    entropy    ½ n (1 + log 2π) + Σᵢ log Lᵢᵢ
    mean = mode = μ;  variance the row sums of L ⊙ L (diag Σ);  covariance_matrix L Lᵀ;  precision_matrix L⁻ᵀ L⁻¹;
    scale_tril L: each broadcast to the batch; a matrix given is returned as given (broadcast), as torch's
    kl_divergence(MultivariateNormal, MultivariateNormal), and either way with Independent(Normal, 1) (a diagonal
    Gaussian; torch has neither): see minivae/distributions/kl.py
    support real_vector; arg_constraints loc real_vector, covariance_matrix and precision_matrix positive_definite,
    scale_tril lower_cholesky (torch's).

    Checked on construction: exactly one matrix; loc of ≥ 1 axis; the matrix square, of loc's n, its batch axes
    broadcasting with loc's; constants on the CPU (``checkable``): loc not NaN, a scale_tril lower triangular with a
    positive diagonal, a covariance or precision symmetric (torch's tolerance); a covariance or precision that is not
    positive-definite fails its Cholesky factorisation (on the CPU: numpy.linalg.LinAlgError, a ValueError).
    """

    has_rsample = True
    _params = ("loc",)  # (expand broadcasts loc; L and the matrix given keep their own batch axes)
    arg_constraints = {"loc": constraints.real_vector, "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite, "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector

    def __init__(self, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None):
        given = [(name, m) for name, m in zip(MATRICES, (covariance_matrix, precision_matrix, scale_tril)) if m is not None]
        if len(given) != 1:
            names = " and ".join(name for name, _ in given) or "none"
            raise ValueError(f"{WHO} takes exactly one of covariance_matrix=, precision_matrix= or scale_tril= "
                             f"(got {names})")
        (name, matrix), = given
        loc_t, matrix_t = as_params((loc, matrix), ("loc", name), WHO)
        if loc_t.ndim < 1:
            raise ValueError(f"{WHO}: loc must have at least one axis (…, n), not shape {loc_t.shape}")
        if matrix_t.ndim < 2 or matrix_t.shape[-1] != matrix_t.shape[-2]:
            raise ValueError(f"{WHO}: {name} must be a square matrix or a batch of them (…, n, n), not shape "
                             f"{matrix_t.shape}")
        n = loc_t.shape[-1]
        if matrix_t.shape[-1] != n:
            raise ValueError(f"{WHO}: loc of shape {loc_t.shape} has n = {n} but {name} has shape {matrix_t.shape}")
        try:
            batch = numpy.broadcast_shapes(loc_t.shape[:-1], matrix_t.shape[:-2])
        except ValueError:
            raise ValueError(f"{WHO}: the batch axes of loc {loc_t.shape[:-1]} and of {name} {matrix_t.shape[:-2]} do not "
                             "broadcast together") from None
        _check_constants(loc_t, name, matrix_t)
        loc_t, matrix_t = on_one_device([loc_t, matrix_t], [loc, matrix])
        self._dtype = numpy.result_type(loc_t.dtype, matrix_t.dtype)
        self.batch_shape, self.event_shape = batch, (n,)
        self.loc = loc_t if loc_t.shape == batch + (n,) else ops.broadcast_to(loc_t, batch + (n,))
        self._given = (name, matrix_t)
        if name == "scale_tril":
            self._unbroadcasted_scale_tril = matrix_t
        elif name == "covariance_matrix":
            self._unbroadcasted_scale_tril = ops.cholesky(matrix_t)
        else:
            self._unbroadcasted_scale_tril = _precision_to_scale_tril(matrix_t)

    def _matrix(self, m):
        shape = tuple(self.batch_shape) + tuple(self.event_shape) * 2
        return m if m.shape == shape else ops.broadcast_to(m, shape)

    @property
    def scale_tril(self):
        return self._matrix(self._unbroadcasted_scale_tril)

    @property
    def covariance_matrix(self):
        name, m = self._given
        if name != "covariance_matrix":
            lower = self._unbroadcasted_scale_tril
            m = ops.matmul(lower, lower.mT)
        return self._matrix(m)

    @property
    def precision_matrix(self):
        name, m = self._given
        if name != "precision_matrix":
            inverse = _inverse_tril(self._unbroadcasted_scale_tril)
            m = ops.matmul(inverse.mT, inverse)
        return self._matrix(m)

    @property
    def mean(self):
        return self.loc

    mode = mean  # a Gaussian's mode is its mean

    @property
    def variance(self):
        lower = self._unbroadcasted_scale_tril
        v = (lower * lower).sum(axis=-1)
        shape = tuple(self.batch_shape) + tuple(self.event_shape)
        return v if v.shape == shape else ops.broadcast_to(v, shape)

    def rsample(self, sample_shape=(), rng=None, eps=None):
        """μ + L ε; pass ``eps`` (sample_shape + batch_shape + (n,)) to fix the noise (then ``rng`` is not needed)."""
        if eps is None:
            eps = resolve(rng).normal(self._extended(sample_shape), self._dtype, device=self.loc.device)
        eps = as_value(eps, self.loc)
        return self.loc + ops.squeeze(ops.matmul(self._unbroadcasted_scale_tril, ops.unsqueeze(eps, -1)), -1)

    def log_prob(self, value):
        value = self._value(value)
        n = self.event_shape[0]
        if value.ndim < 1 or value.shape[-1] != n:
            raise ValueError(f"{WHO}.log_prob: a value needs a last axis of n = {n} entries, not shape {value.shape}")
        lower = self._unbroadcasted_scale_tril
        return -0.5 * (n * LOG_2PI + mahalanobis(lower, value - self.loc)) - half_log_det(lower)

    def entropy(self):
        h = 0.5 * self.event_shape[0] * (1 + LOG_2PI) + half_log_det(self._unbroadcasted_scale_tril)
        return self._batch(h)

    def __repr__(self):
        return f"{WHO}(batch_shape={self.batch_shape}, event_shape={self.event_shape})"


def half_log_det(lower):
    """½ log |L Lᵀ| = Σᵢ log Lᵢᵢ over the last axis of the diagonal."""
    return ops.log(ops.diagonal(lower, 0, -2, -1)).sum(axis=-1)


def mahalanobis(lower, diff):
    """|L⁻¹ d|² = dᵀ (L Lᵀ)⁻¹ d over the last axis of ``diff`` (batch axes broadcast): one triangular solve."""
    w = ops.solve_triangular(lower, ops.unsqueeze(diff, -1), upper=False)
    return (w * w).sum(axis=(-2, -1))


def identity(like):
    """The n × n identity, n the last axis of ``like``, in its dtype, on its device: a constant."""
    return array_function(lambda a: get_array_module(a).eye(a.shape[-1], dtype=a.dtype), like)


def _inverse_tril(lower):
    """L⁻¹ (lower triangular) by a solve against the identity."""
    return ops.solve_triangular(lower, identity(lower), upper=False)


def _precision_to_scale_tril(precision):
    """L with L Lᵀ = P⁻¹ (torch's _precision_to_scale_tril): L_f = chol(J P J), L⁻¹ = (J L_f J)ᵀ, L = solve(L⁻¹, I)."""
    flipped = ops.cholesky(ops.flip(precision, (-2, -1)))
    inverse = ops.flip(flipped, (-2, -1)).mT
    return ops.solve_triangular(inverse, identity(inverse), upper=False)


def _check_constants(loc, name, matrix):
    """The checks of constant CPU parameters (``checkable``): loc not NaN, scale_tril lower_cholesky, a covariance or
    precision symmetric (its positive-definiteness is its Cholesky factorisation's to refuse)."""
    if checkable(loc) and numpy.isnan(loc.data).any():
        raise ValueError(f"{WHO}: loc must not be NaN")
    if not checkable(matrix):
        return
    a = matrix.data
    if name == "scale_tril":
        if not constraints.lower_cholesky.check(a).all():
            raise ValueError(f"{WHO}: scale_tril must be lower triangular with a positive diagonal")
    elif not numpy.isclose(a, a.swapaxes(-1, -2), atol=1e-6).all():
        raise ValueError(f"{WHO}: {name} must be symmetric")
