"""The Cholesky factor and triangular solves (torch.linalg.cholesky, torch.linalg.solve_triangular), each with its VJP:
the linear algebra of a full-covariance Gaussian (minivae.distributions.MultivariateNormal). Matrices are the last two
axes, any leading axes a batch; ``ᵀ`` below swaps the last two axes."""
import itertools

import numpy

from minivae.engine import Function
from minivae.ops._broadcast import unbroadcast
from minivae.ops._registry import register
from minivae.ops.arith import common, real_all


def _mT(a):
    return a.swapaxes(-1, -2)


def _triangle(xp, n, upper, strict=False):
    """The boolean (n, n) mask of a triangle: on and below the diagonal (``upper``: on and above), without it when
    ``strict``."""
    return ~xp.tri(n, n, strict - 1, dtype=bool) if upper else xp.tri(n, n, -strict, dtype=bool)


def _square(a, who, name="the input"):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"{who}: {name} must be a square matrix or a batch of them (…, n, n), not shape {a.shape}")


def solve_triangular_array(xp, a, b, upper, left=True, unitriangular=False):
    """The array X with A X = B (``left``) or X A = B, A (…, n, n) upper or lower triangular, B (…, n, k) (left) or
    (…, k, n), the batch axes broadcast. Only A's triangle is read, its diagonal taken as ones when ``unitriangular``.

    By substitution, one row of X at a time (row i = (B_i − A_{i,<i} X_{<i}) / A_ii, from the last row up when upper),
    each step one batched product over the batch and the k columns: the textbook algorithm, with its componentwise
    backward error of at most n·u·|A| (Higham, Accuracy and Stability of Numerical Algorithms, Thm 8.5), in the same
    arithmetic on NumPy and CuPy. Chosen over ``xp.linalg.solve``, the only solver both have (NumPy has no
    solve_triangular, CuPy's is in cupyx.scipy, not in its array API): an LU factorisation with pivoting would
    reorder the rows of A by their size and give up the triangle's better bounds, would read the other triangle
    unless A were masked into a copy first, needs A's diagonal written out for ``unitriangular``, and
    broadcasts the batch axes of B under NumPy 2's and CuPy's rules, which differ for a B of one column. The cost is n
    Python steps (a few launches each on a GPU): for the latent sizes of a VAE, tens."""
    if not left:  # X A = B  ⇔  Aᵀ Xᵀ = Bᵀ, Aᵀ triangular the other way
        return _mT(solve_triangular_array(xp, _mT(a), _mT(b), not upper, True, unitriangular))
    n, k = b.shape[-2:]
    batch = numpy.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    x = xp.empty(batch + (n, k), xp.result_type(a, b))
    for i in (range(n - 1, -1, -1) if upper else range(n)):
        done = slice(i + 1, n) if upper else slice(0, i)
        row = b[..., i, :]
        if (upper and i < n - 1) or (not upper and i > 0):
            row = row - xp.matmul(a[..., i:i + 1, done], x[..., done, :])[..., 0, :]
        x[..., i, :] = row if unitriangular else row / a[..., i, i:i + 1]
    return x


@register("solve_triangular")
class SolveTriangular(Function):
    """X = A⁻¹ B (``left``, A X = B) or X = B A⁻¹ (X A = B), A (…, n, n) lower or ``upper`` triangular, as
    torch.linalg.solve_triangular(A, B, *, upper, left=True, unitriangular=False): only A's triangle is read (its
    diagonal as ones when ``unitriangular``), B is (…, n, k) (left) or (…, k, n), the batch axes broadcast. See
    ``solve_triangular_array`` for the method. Different from torch on purpose: operands of two dtypes are promoted as
    the elementwise ops' (torch refuses the pair), integers and bools are float32 (minivae's rule for real-valued
    results; torch refuses them), and float16 is solved in float16 (torch's CPU refuses it).

    forward   X by substitution, row by row (solve_triangular_array)
    backward  left:  B̄ = A⁻ᵀ X̄ (a solve with Aᵀ, triangular the other way);  Ā = −tri(B̄ Xᵀ)
              right: B̄ = X̄ A⁻ᵀ;  Ā = −tri(Xᵀ B̄)
              tri: A's triangle (without the diagonal when unitriangular), 0 elsewhere; each unbroadcast to its input
    saves     A, X, B's shape
    """

    def forward(ctx, a, b, upper, left=True, unitriangular=False):
        _square(a, "solve_triangular", "A")
        if b.ndim < 2:
            raise ValueError(f"solve_triangular: B must be a matrix or a batch of them, not shape {b.shape}")
        n = a.shape[-1]
        if b.shape[-2 if left else -1] != n:
            side = "rows" if left else "columns"
            raise ValueError(f"solve_triangular: B of shape {b.shape} needs {n} {side} for A of shape {a.shape} "
                             f"(left={left})")
        try:
            numpy.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"solve_triangular: the batch axes of A {a.shape} and B {b.shape} do not broadcast") from None
        a, b = common((a, b))
        x = solve_triangular_array(ctx.xp, a, b, upper, left, unitriangular)
        ctx.save(a=a, x=x, b_shape=b.shape, upper=upper, left=left, unitriangular=unitriangular)
        return x

    def backward(ctx, g):
        xp, a, x, upper, left = ctx.xp, ctx.a, ctx.x, ctx.upper, ctx.left
        gb = solve_triangular_array(xp, _mT(a), g, not upper, left, ctx.unitriangular)
        ga = None
        if ctx.needs_input_grad[0]:
            outer = -xp.matmul(gb, _mT(x)) if left else -xp.matmul(_mT(x), gb)
            keep = _triangle(xp, a.shape[-1], upper, strict=ctx.unitriangular)
            ga = unbroadcast(xp.where(keep, outer, xp.zeros((), outer.dtype)), a.shape)
        return ga, unbroadcast(gb, ctx.b_shape) if ctx.needs_input_grad[1] else None


@register("cholesky")
class Cholesky(Function):
    """L, lower triangular with a positive diagonal, with L Lᵀ = A, of a symmetric positive-definite A (…, n, n),
    batched over the leading axes, as torch.linalg.cholesky(A, upper=False) (``upper=True`` gives U = Lᵀ, Uᵀ U = A).
    Only A's lower triangle is read (as LAPACK's potrf, NumPy's and CuPy's; torch's too). Integers and bools are float32
    (minivae's rule for real-valued results; torch refuses them); float16 is refused (NumPy's LAPACK has none).

    forward   L = xp.linalg.cholesky(A)
    backward  Murray (2016), "Differentiation of the Cholesky decomposition", arXiv:1602.07527, eq. (10), symmetrised
              as torch's: P = Φ(Lᵀ L̄), Φ(X) = X's lower triangle with its diagonal halved;
              S = L⁻ᵀ P L⁻¹ (two triangular solves, no inverse);  Ā = ½(S + Sᵀ)
              Ā is the gradient of L as a function of a symmetric A (torch's): for a change dA of A that is symmetric,
              ⟨Ā, dA⟩ = ⟨L̄, dL⟩ (a change of the upper triangle alone, which the forward does not read, is not one)
    saves     L
    A matrix that is not positive-definite (or holds a NaN): numpy.linalg.LinAlgError (a ValueError) naming the first
    such matrix of the batch, on the CPU. CuPy's cholesky does not check by default (it would wait for the GPU to know): on a GPU the
    result is then not a factor (NaN or garbage).
    """

    def forward(ctx, a, upper=False):
        _square(a, "cholesky")
        (a,) = real_all((a,))
        if a.dtype.itemsize < 4:
            raise TypeError(f"cholesky: {a.dtype} is not supported (NumPy's LAPACK has no {a.dtype}; torch's CPU refuses it "
                            "too): cast to float32")
        xp = ctx.xp
        lower = _factor(xp, a)
        if lower is None:
            where = next((f" (the matrix at batch index {index})" for index in itertools.product(*map(range, a.shape[:-2]))
                          if _factor(xp, a[index]) is None), "") if a.ndim > 2 else ""
            raise numpy.linalg.LinAlgError(f"cholesky: the input is not positive-definite{where}")
        ctx.save(lower=lower, upper=upper)
        return _mT(lower) if upper else lower

    def backward(ctx, g):
        xp, lower = ctx.xp, ctx.lower
        if ctx.upper:
            g = _mT(g)
        n = lower.shape[-1]
        product = xp.matmul(_mT(lower), g)
        zero = xp.zeros((), product.dtype)
        phi = xp.where(_triangle(xp, n, False, strict=True), product, xp.where(xp.eye(n, dtype=bool), 0.5 * product, zero))
        s = solve_triangular_array(xp, _mT(lower), phi, upper=True)           # L⁻ᵀ P
        s = solve_triangular_array(xp, lower, s, upper=False, left=False)     # (L⁻ᵀ P) L⁻¹
        return 0.5 * (s + _mT(s))


def _factor(xp, a):
    """xp.linalg.cholesky(a), or None where NumPy finds no factor: its LinAlgError, or a NaN on the diagonal (LAPACK's
    potrf lets a NaN off the diagonal through, where torch refuses it). On a GPU the factor as CuPy returns it."""
    try:
        lower = xp.linalg.cholesky(a)
    except numpy.linalg.LinAlgError:
        return None
    if xp is numpy and numpy.isnan(numpy.diagonal(lower, 0, -2, -1)).any():
        return None
    return lower


def cholesky(a, *, upper=False):
    """L with L Lᵀ = a (see Cholesky), as torch.linalg.cholesky(a, upper=False)."""
    return Cholesky.apply(a, upper=bool(upper))


def solve_triangular(a, b, *, upper, left=True, unitriangular=False):
    """X with a X = b (``left``) or X a = b, a triangular (see SolveTriangular), as torch.linalg.solve_triangular: the
    triangle ``upper`` must be given (keyword only, as torch's)."""
    return SolveTriangular.apply(a, b, upper=bool(upper), left=bool(left), unitriangular=bool(unitriangular))
