"""ops.cholesky and ops.solve_triangular: values and gradients against torch.linalg (float64), and without torch by the
definitions (L Lᵀ = A, A X = B, only the triangle read), the symmetric gradient, float32, their errors, and on the
strict CuPy stand-in with nothing copied to the host. (Their float64 gradchecks: tests/test_ops_gradcheck.py.)"""
import itertools

import numpy as np
import pytest

import minivae as mv
from minivae import ops


def spd(rng, shape):
    """Symmetric positive-definite matrices (…, n, n): X Xᵀ + n·I."""
    x = rng.normal(size=shape)
    return x @ x.swapaxes(-1, -2) + shape[-1] * np.eye(shape[-1])


def triangular(rng, shape):
    """(…, n, n) with |diagonal| in [1, 2] (random signs) and N(0, ¼) elsewhere, both triangles filled."""
    n = shape[-1]
    a = 0.5 * rng.normal(size=shape)
    a[..., np.arange(n), np.arange(n)] = rng.choice([-1.0, 1.0], shape[:-1]) * rng.uniform(1, 2, shape[:-1])
    return a


# ---- cholesky ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_matches_torch_values_and_gradients(upper):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a = spd(rng, (2, 3, 4, 4))
    g = rng.normal(size=a.shape)
    ours = mv.tensor(a, requires_grad=True)
    theirs = torch.tensor(a, requires_grad=True)
    out, ref = ops.cholesky(ours, upper=upper), torch.linalg.cholesky(theirs, upper=upper)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-13, atol=1e-15)
    out.backward(g)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-11, atol=1e-14)


def test_cholesky_by_the_definition():
    """L lower triangular with a positive diagonal and L Lᵀ = A; upper=True gives Lᵀ; the upper triangle of A is not
    read (as LAPACK's); float32 stays float32; an empty batch and n = 1 work."""
    rng = np.random.default_rng(1)
    a = spd(rng, (3, 5, 5))
    lower = ops.cholesky(a).numpy()
    np.testing.assert_array_equal(lower, np.tril(lower))
    assert (np.diagonal(lower, 0, -2, -1) > 0).all()
    np.testing.assert_allclose(lower @ lower.swapaxes(-1, -2), a, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(ops.cholesky(a, upper=True).numpy(), lower.swapaxes(-1, -2))
    garbage = a + np.triu(rng.normal(size=a.shape), 1)
    np.testing.assert_array_equal(ops.cholesky(garbage).numpy(), lower)
    f32 = ops.cholesky(a.astype(np.float32))
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32.numpy(), lower, rtol=1e-5, atol=1e-5)
    assert ops.cholesky(np.zeros((0, 3, 3))).shape == (0, 3, 3)
    np.testing.assert_allclose(ops.cholesky(np.array([[4.0]])).numpy(), [[2.0]])


def test_cholesky_gradient_is_symmetric_and_the_directional_derivative():
    """Ā is symmetric (torch's convention: the gradient of L as a function of symmetric A), and ⟨Ā, dA⟩ is the
    derivative of ⟨ḡ, L(A + t·dA)⟩ at t = 0 for a symmetric dA (central differences), for each factor returned."""
    rng = np.random.default_rng(2)
    a = spd(rng, (2, 4, 4))
    d = rng.normal(size=a.shape)
    d = d + d.swapaxes(-1, -2)
    for upper in (False, True):
        g = rng.normal(size=a.shape)
        x = mv.tensor(a, requires_grad=True)
        ops.cholesky(x, upper=upper).backward(g)
        np.testing.assert_allclose(x.grad, x.grad.swapaxes(-1, -2), rtol=1e-13, atol=1e-15)
        h = 1e-6
        f = [(np.linalg.cholesky(a + s * h * d) * (g.swapaxes(-1, -2) if upper else g)).sum() for s in (1, -1)]
        np.testing.assert_allclose((x.grad * d).sum(), (f[0] - f[1]) / (2 * h), rtol=1e-7)


def test_cholesky_refuses_what_has_no_factor():
    with pytest.raises(np.linalg.LinAlgError, match=r"not positive-definite \(the matrix at batch index \(1, 0\)\)"):
        bad = np.stack([np.eye(2)[None], np.array([[[1.0, 2.0], [2.0, 1.0]]])])  # (2, 1, 2, 2), the second indefinite
        ops.cholesky(bad)
    with pytest.raises(ValueError, match="not positive-definite"):  # (LinAlgError is a ValueError)
        ops.cholesky(-np.eye(3))
    with pytest.raises(np.linalg.LinAlgError, match="not positive-definite$"):
        ops.cholesky(np.array([[1.0, np.nan], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match=r"cholesky: the input must be a square matrix .* not shape \(2, 3\)"):
        ops.cholesky(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"square matrix .* not shape \(3,\)"):
        ops.cholesky(np.ones(3))
    with pytest.raises(TypeError, match="cholesky: float16 is not supported"):
        ops.cholesky(np.eye(2, dtype=np.float16))
    assert ops.cholesky(np.eye(2, dtype=np.int64) * 4).numpy().tolist() == [[2.0, 0.0], [0.0, 2.0]]
    assert ops.cholesky(np.eye(2, dtype=np.int64)).dtype == np.float32  # (real-valued results of integers: float32)


# ---- solve_triangular ----------------------------------------------------------------------------------------------
SHAPES = [((4, 4), (4, 3)), ((2, 4, 4), (4, 2)), ((4, 4), (3, 1, 4, 2)), ((2, 1, 4, 4), (1, 3, 4, 1))]


@pytest.mark.parametrize("upper, left, unit", list(itertools.product([False, True], repeat=3)))
def test_solve_triangular_matches_torch_values_and_gradients(upper, left, unit):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for sa, sb in SHAPES:
        a = triangular(rng, sa)
        b = rng.normal(size=sb if left else sb[:-2] + sb[-2:][::-1])
        ours = [mv.tensor(v, requires_grad=True) for v in (a, b)]
        theirs = [torch.tensor(v, requires_grad=True) for v in (a, b)]
        out = ops.solve_triangular(*ours, upper=upper, left=left, unitriangular=unit)
        ref = torch.linalg.solve_triangular(*theirs, upper=upper, left=left, unitriangular=unit)
        np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-13)
        g = rng.normal(size=out.shape)
        out.backward(g)
        ref.backward(torch.tensor(g))
        for o, r in zip(ours, theirs):
            np.testing.assert_allclose(o.grad, r.grad.numpy(), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("upper, left, unit", list(itertools.product([False, True], repeat=3)))
def test_solve_triangular_by_the_definition(upper, left, unit):
    """A X = B (X A = B) with A's triangle (its diagonal ones when unit): a residual at rounding level; the other
    triangle (and, when unit, the diagonal) is not read."""
    rng = np.random.default_rng(4)
    a = triangular(rng, (3, 5, 5))
    b = rng.normal(size=(2, 1, 5, 3) if left else (2, 1, 3, 5))
    x = ops.solve_triangular(a, b, upper=upper, left=left, unitriangular=unit).numpy()
    t = np.triu(a) if upper else np.tril(a)
    if unit:
        t[..., np.arange(5), np.arange(5)] = 1.0
    np.testing.assert_allclose(t @ x if left else x @ t, np.broadcast_to(b, x.shape), atol=1e-13)
    other = rng.normal(size=a.shape)
    scrambled = np.where(t != a, other, a) if not unit else np.where(t != a, other, a) + np.eye(5) * 7.0
    np.testing.assert_array_equal(ops.solve_triangular(scrambled, b, upper=upper, left=left, unitriangular=unit).numpy(),
                                  x)


def test_solve_triangular_float32_and_a_gradient_only_where_the_triangle_is():
    rng = np.random.default_rng(5)
    a, b = triangular(rng, (4, 4)), rng.normal(size=(4, 2))
    x32 = ops.solve_triangular(a.astype(np.float32), b.astype(np.float32), upper=False)
    assert x32.dtype == np.float32
    np.testing.assert_allclose(x32.numpy(), np.linalg.solve(np.tril(a), b), rtol=1e-5, atol=1e-5)
    for unit in (False, True):
        t = mv.tensor(a, requires_grad=True)
        ops.solve_triangular(t, mv.tensor(b), upper=True, unitriangular=unit).backward(rng.normal(size=(4, 2)))
        outside = ~np.triu(np.ones((4, 4), bool), int(unit))
        assert (t.grad[outside] == 0).all() and (t.grad[~outside] != 0).all()


def test_solve_triangular_refuses_bad_shapes():
    a, b = np.eye(3), np.ones((3, 2))
    with pytest.raises(TypeError, match="upper"):
        ops.solve_triangular(a, b)  # upper is required, as torch's
    with pytest.raises(ValueError, match=r"A must be a square matrix .* not shape \(3, 2\)"):
        ops.solve_triangular(np.ones((3, 2)), b, upper=False)
    with pytest.raises(ValueError, match=r"B must be a matrix .* shape \(3,\)"):
        ops.solve_triangular(a, np.ones(3), upper=False)
    with pytest.raises(ValueError, match=r"needs 3 rows for A of shape \(3, 3\) \(left=True\)"):
        ops.solve_triangular(a, np.ones((2, 3)), upper=False)
    with pytest.raises(ValueError, match=r"needs 3 columns"):
        ops.solve_triangular(a, np.ones((3, 2)), upper=False, left=False)
    with pytest.raises(ValueError, match="batch axes .* do not broadcast"):
        ops.solve_triangular(np.stack([a, a]), np.ones((3, 3, 2)), upper=False)
    x = ops.solve_triangular(2 * np.eye(3, dtype=np.int64), np.ones((3, 2), np.int32), upper=False)
    assert x.dtype == np.float32 and (x.numpy() == 0.5).all()
    x = ops.solve_triangular(np.eye(3, dtype=np.float16) * 4, np.ones((3, 2), np.float32), upper=True)
    assert x.dtype == np.float32 and (x.numpy() == 0.25).all()


def test_on_the_stand_in_nothing_is_copied_to_the_host():
    """Both ops, forward and backward, on the strict CuPy stand-in: CuPy's API only and no copy to the host; the
    values those of the CPU."""
    from minivae._backend import to_numpy, use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record
    rng = np.random.default_rng(6)
    a, b, g = spd(rng, (2, 3, 3)), rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 3, 2))

    def run(device):
        ta, tb = (mv.tensor(v, device=device, requires_grad=True) for v in (a, b))
        lower = ops.cholesky(ta)
        out = ops.solve_triangular(lower, tb, upper=False) + ops.solve_triangular(lower.mT, tb, upper=True)
        out.backward(mv.tensor(g, device=device))
        return out, ta.grad, tb.grad

    expected = run("cpu")
    with use_numba(False), use_cuda_kernels(False), emulating():
        with record() as log:
            got = run("cuda")
        assert log == [], describe(log)
        assert all(type(x).__name__ == "StrictArray" for x in (got[0].data, *got[1:]))
        got = [to_numpy(getattr(x, "data", x)) for x in got]
    for x, y in zip(got, expected):
        np.testing.assert_allclose(x, getattr(y, "data", y), rtol=1e-13)
