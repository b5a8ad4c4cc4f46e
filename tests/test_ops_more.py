"""minivae.ops.more_reduce, more_shape and rounding: values and gradients against formulas written out in NumPy
(products of the others by np.delete, running sums as triangular matrices, scatter-adds as loops) and against PyTorch
where it is installed, at the cases where a VJP goes wrong: the zeros of prod and cumprod, the ties of amax, the
duplicate indices of gather and index_select, the zero vector of norm; then their bad inputs, their Tensor methods,
and the "cuda" device (tests/strict_array.py's stand-in: the same bits, no copy to the host). The float64 gradcheck
over random shapes is tests/test_ops_gradcheck.py's (DOMAINS), the dtypes tests/test_op_dtypes.py's (ROWS)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minivae as mv
from minivae import ops
from minivae._backend import use_cuda_kernels, use_numba
from tests.strategies import rngs, shapes
from tests.strict_array import describe, emulating, record, strict


def run(fn, x, g, *rest):
    """fn(x, *rest) and x̄ for the upstream gradient g (x float64, a leaf)."""
    t = mv.tensor(x, requires_grad=True)
    out = fn(t, *rest)
    out.backward(g)
    return out.numpy(), t.grad


def torch_run(fn, x, g):
    torch = pytest.importorskip("torch")
    t = torch.tensor(x, requires_grad=True)
    out = fn(t)
    out.backward(torch.tensor(g))
    return out.detach().numpy(), np.zeros_like(x) if t.grad is None else t.grad.numpy()  # (None: torch's 0)


ZERO_ROWS = np.array([[1.5, -2.0, 0.5, 3.0, -0.7],    # no zero
                      [1.5, 0.0, 0.5, 3.0, -0.7],     # one zero, inside
                      [0.0, -2.0, 0.5, 3.0, -0.7],    # one zero, first
                      [1.5, -2.0, 0.5, 3.0, 0.0],     # one zero, last
                      [1.5, 0.0, 0.5, 0.0, -0.7],     # two zeros
                      [0.0, 0.0, 0.0, 0.0, 0.0]])     # all zeros
G_ROWS = np.random.default_rng(5).normal(size=ZERO_ROWS.shape)


# ---- prod -------------------------------------------------------------------------------------------------------
def test_prod_gradient_is_the_product_of_the_others_at_zeros_too():
    """x̄_i = ḡ·Π_{j≠i} x_j (np.delete), never ḡ·y/x: one zero gives its place the others' product and 0 elsewhere, two
    give 0. Old: no prod; the textbook VJP ḡ·y/x gives 0/0 = NaN at every zero."""
    g = G_ROWS[:, 0]
    y, gx = run(lambda t: ops.prod(t, axis=1), ZERO_ROWS, g)
    np.testing.assert_array_equal(y, [np.prod(r) for r in ZERO_ROWS])
    want = np.array([[g[r] * np.prod(np.delete(row, i)) for i in range(row.size)] for r, row in enumerate(ZERO_ROWS)])
    np.testing.assert_allclose(gx, want, rtol=1e-15, atol=0)
    assert gx[1, 1] == pytest.approx(g[1] * 1.5 * 0.5 * 3.0 * -0.7, rel=1e-15) and not gx[1, [0, 2, 3, 4]].any()
    assert not gx[4:].any() and np.isfinite(gx).all()


def test_prod_over_several_axes_and_all_of_them():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 2, 4))
    x[1, 0, 2] = 0.0
    g = rng.normal(size=(2,))
    y, gx = run(lambda t: ops.prod(t, axis=(0, 2)), x, g)
    moved = np.moveaxis(x, 1, 0).reshape(2, -1)
    np.testing.assert_allclose(y, moved.prod(1), rtol=1e-15)
    want = np.array([[g[k] * np.prod(np.delete(moved[k], i)) for i in range(12)] for k in range(2)])
    np.testing.assert_allclose(np.moveaxis(gx, 1, 0).reshape(2, -1), want, rtol=1e-14)
    y, gx = run(lambda t: t.prod(), x, 0.5)  # all of them: one zero, so only its place gets a gradient
    assert y == 0 and np.count_nonzero(gx) == 1
    np.testing.assert_allclose(gx[1, 0, 2], 0.5 * np.prod(np.delete(x.ravel(), np.ravel_multi_index((1, 0, 2), x.shape))))


@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_prod_and_cumprod_with_zeros_match_torch(data):
    """Random shapes (size-1 and empty axes) with about a third of the entries exactly 0."""
    torch = pytest.importorskip("torch")
    shape = data.draw(shapes(1, 3, empty=True))
    rng = data.draw(rngs)
    x = np.where(rng.random(shape) < 0.35, 0.0, rng.normal(size=shape))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    for ours, theirs in [(lambda t: ops.prod(t, axis=axis), lambda t: torch.prod(t, dim=axis)),
                         (lambda t: ops.cumprod(t, axis), lambda t: torch.cumprod(t, dim=axis)),
                         (lambda t: ops.prod(t, axis=axis, keepdims=True), lambda t: torch.prod(t, axis, keepdim=True))]:
        g = rng.normal(size=theirs(torch.tensor(x)).shape)
        y, gx = run(ours, x, g)
        ty, tgx = torch_run(theirs, x, g)
        np.testing.assert_allclose(y, ty, rtol=1e-14, atol=0)
        np.testing.assert_allclose(gx, tgx, rtol=1e-13, atol=1e-300)


# ---- cumsum and cumprod -----------------------------------------------------------------------------------------
def test_cumsum_vjp_is_the_reversed_running_sum():
    """x̄ = Jᵀḡ with J the lower triangle of ones (y_i = Σ_{j≤i} x_j): x̄_k = Σ_{i≥k} ḡ_i."""
    rng = np.random.default_rng(2)
    x, g = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    lower = np.tril(np.ones((5, 5)))
    for axis, gx_want in [(1, g @ lower), (-1, g @ lower), (0, (np.tril(np.ones((3, 3))).T @ g))]:
        y, gx = run(ops.cumsum, x, g, axis)
        np.testing.assert_allclose(y, np.cumsum(x, axis), rtol=1e-15)
        np.testing.assert_allclose(gx, gx_want, rtol=1e-14)
    y, gx = run(lambda t: t.cumsum(dim=1), x, g)  # torch's keyword, its method
    np.testing.assert_allclose(gx, g @ lower, rtol=1e-14)
    y, gx = run(lambda t: ops.cumsum(t), x, g.ravel())  # NumPy's axis=None: the flattened x
    np.testing.assert_allclose(gx.ravel(), g.ravel() @ np.tril(np.ones((15, 15))), rtol=1e-13)


def test_cumprod_vjp_is_exact_at_zeros():
    """x̄_k = Σ_{i≥k} ḡ_i Π_{j≤i, j≠k} x_j summed out in full (O(n²)), on rows with no zero, one zero (first, inside,
    last), two zeros and all zeros."""
    y, gx = run(lambda t: ops.cumprod(t, 1), ZERO_ROWS, G_ROWS)
    np.testing.assert_array_equal(y, np.cumprod(ZERO_ROWS, 1))
    want = np.zeros_like(ZERO_ROWS)
    for r, (x, g) in enumerate(zip(ZERO_ROWS, G_ROWS)):
        for k in range(x.size):
            want[r, k] = sum(g[i] * np.prod(np.delete(x[:i + 1], k)) for i in range(k, x.size))
    np.testing.assert_allclose(gx, want, rtol=1e-14, atol=1e-15)
    assert gx[1, 1] != 0 and gx[4, 1] != 0 and not gx[4, 2:].any()  # the first of two zeros gets one, after it none


def test_cumsum_cumprod_and_prod_match_torch():
    torch = pytest.importorskip("torch")
    for ours, theirs in [(lambda t: ops.cumsum(t, 0), lambda t: torch.cumsum(t, 0)),
                         (lambda t: ops.cumprod(t, 1), lambda t: torch.cumprod(t, 1)),
                         (lambda t: t.prod(dim=1), lambda t: t.prod(dim=1))]:
        g = G_ROWS if theirs(torch.tensor(ZERO_ROWS)).ndim == 2 else G_ROWS[:, 0]
        y, gx = run(ours, ZERO_ROWS, g)
        ty, tgx = torch_run(theirs, ZERO_ROWS, g)
        np.testing.assert_allclose(y, ty, rtol=1e-15)
        np.testing.assert_allclose(gx, tgx, rtol=1e-14, atol=1e-300)


# ---- amax, amin and norm --------------------------------------------------------------------------------------------
def test_amax_and_amin_share_the_gradient_of_ties_evenly_as_torch():
    x = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 0.0], [0.0, -1.0, 0.0, 4.0]])
    g = np.array([2.0, 3.0, -1.0])
    y, gx = run(lambda t: ops.amax(t, axis=1), x, g)
    np.testing.assert_array_equal(gx, [[0, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, -1]])  # ḡ / #ties
    y, gx = run(lambda t: t.amin(dim=1), x, g)
    np.testing.assert_array_equal(gx, [[2, 0, 0, 0], [0, 0, 0, 3], [0, -1, 0, 0]])
    pytest.importorskip("torch")
    for ours, theirs in [(lambda t: t.amax(dim=1), lambda t: t.amax(dim=1)), (lambda t: t.amin(dim=1), lambda t: t.amin(dim=1))]:
        y, gx = run(ours, x, g)
        ty, tgx = torch_run(theirs, x, g)
        np.testing.assert_array_equal(gx, tgx)
    y, gx = run(lambda t: t.amax(), x, 6.0)  # over all: three tied maxima
    np.testing.assert_array_equal(gx, 2.0 * (x == 5))


def test_norm_of_the_zero_vector_has_gradient_zero_never_nan():
    """√(Σx²) at x = 0: x̄ = 0 (torch's subgradient), where sqrt's VJP after a sum of squares gives 0·∞ = NaN."""
    x = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, -4.0]])
    g = np.array([1.5, 2.0])
    y, gx = run(lambda t: ops.norm(t, axis=1), x, g)
    np.testing.assert_array_equal(y, [0.0, 5.0])
    np.testing.assert_array_equal(gx, [[0, 0, 0], [2.0 * 3 / 5, 0, 2.0 * -4 / 5]])
    for p in [1, 3, 1.5, math.inf, -math.inf, 0]:
        _, gx = run(lambda t, p=p: t.norm(p, dim=1), x, g)
        assert np.isfinite(gx).all() and not gx[0].any(), p
    with np.errstate(divide="ignore", invalid="ignore"):
        _, naive = run(lambda t: ops.sqrt((t * t).sum(axis=1)), x, g)  # the composition this op replaces
    assert np.isnan(naive[0]).all()


def test_norms_match_torch_and_the_formulas():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5))
    x[0] = 0.0
    x[1, :2] = [2.0, -2.0]  # |x| tied for the ∞-norm
    x[1, 2:] = [0.5, 1.0, 0.0]
    g = rng.normal(size=4)
    formulas = {1: np.abs(x).sum(1), 2: np.sqrt((x ** 2).sum(1)), 3: (np.abs(x) ** 3).sum(1) ** (1 / 3),
                math.inf: np.abs(x).max(1), -math.inf: np.abs(x).min(1), 0: (x != 0).sum(1)}
    torch = None
    try:
        import torch
    except ImportError:
        pass
    for p, want in formulas.items():
        y, gx = run(lambda t, p=p: ops.norm(t, ord=p, axis=-1), x, g)
        np.testing.assert_allclose(y, want, rtol=1e-15)
        if torch is not None:
            ty, tgx = torch_run(lambda t, p=p: torch.linalg.vector_norm(t, ord=p, dim=-1), x, g)
            np.testing.assert_allclose(y, ty, rtol=1e-15)
            np.testing.assert_allclose(gx, tgx, rtol=1e-14, atol=1e-300, err_msg=f"ord={p}")
    _, gx = run(lambda t: ops.norm(t, ord=math.inf, axis=1), x, g)
    np.testing.assert_array_equal(gx[1], [g[1] / 2, -g[1] / 2, 0, 0, 0])  # the two tied entries share ḡ
    y, _ = run(lambda t: ops.norm(t), x, 1.0)  # None: every entry, the Frobenius norm
    np.testing.assert_allclose(y, np.linalg.norm(x), rtol=1e-15)
    np.testing.assert_allclose(mv.tensor(x).norm("fro").numpy(), np.linalg.norm(x), rtol=1e-15)


# ---- picking and moving elements --------------------------------------------------------------------------------
def test_gather_and_index_select_accumulate_duplicate_indices():
    """Every place an index names adds its ḡ (a loop over the index here); an assignment would keep one of them."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 4))
    idx = np.array([[1, 1, 3], [0, 0, 0], [2, 3, 2]])
    g = rng.normal(size=idx.shape)
    y, gx = run(lambda t: ops.gather(t, 1, idx), x, g)
    want = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            want[i, idx[i, j]] += g[i, j]
    np.testing.assert_array_equal(y, np.take_along_axis(x, idx, 1))
    np.testing.assert_allclose(gx, want, rtol=1e-15)
    sel = np.array([2, 0, 2, 2])
    g2 = rng.normal(size=(3, 4))
    y, gx = run(lambda t: t.index_select(1, sel), x, g2)
    want = np.zeros_like(x)
    for j, k in enumerate(sel):
        want[:, k] += g2[:, j]
    np.testing.assert_array_equal(y, x[:, sel])
    np.testing.assert_allclose(gx, want, rtol=1e-15)
    torch = pytest.importorskip("torch")
    for ours, theirs, gg in [(lambda t: t.gather(1, idx), lambda t: t.gather(1, torch.tensor(idx)), g),
                             (lambda t: t.index_select(1, sel), lambda t: t.index_select(1, torch.tensor(sel)), g2),
                             (lambda t: t.gather(0, idx[:2, :2]), lambda t: t.gather(0, torch.tensor(idx[:2, :2])),
                              g[:2, :2]),
                             (lambda t: t.take(idx), lambda t: t.take(torch.tensor(idx)), g),
                             (lambda t: t.take_along_dim(idx[:1], 1), lambda t: t.take_along_dim(torch.tensor(idx[:1]), 1),
                              rng.normal(size=(3, 3)))]:
        y, gx = run(ours, x, gg)
        ty, tgx = torch_run(theirs, x, gg)
        np.testing.assert_array_equal(y, ty)
        np.testing.assert_allclose(gx, tgx, rtol=1e-15)


@pytest.mark.parametrize("case", ["flip", "flip-all", "roll", "roll-flat", "roll-two", "repeat", "tile", "tril",
                                  "triu", "diagonal", "diagonal-below", "diagonal-3d", "trace", "masked_fill"])
def test_moves_and_masks_match_torch_values_and_gradients(case):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(3, 4, 2)) if case == "diagonal-3d" else rng.normal(size=(3, 4))
    mask = rng.random((1, 4)) < 0.5
    ours, theirs = {
        "flip": (lambda t: t.flip(1), lambda t: t.flip(1)),
        "flip-all": (lambda t: t.flip(0, 1), lambda t: t.flip(0, 1)),
        "roll": (lambda t: t.roll(1, 1), lambda t: t.roll(1, 1)),
        "roll-flat": (lambda t: t.roll(-5), lambda t: t.roll(-5)),
        "roll-two": (lambda t: t.roll((2, -3), (0, 1)), lambda t: t.roll((2, -3), (0, 1))),
        "repeat": (lambda t: t.repeat(2, 1, 3), lambda t: t.repeat(2, 1, 3)),
        "tile": (lambda t: t.tile(2), lambda t: t.tile(2)),
        "tril": (lambda t: t.tril(-1), lambda t: t.tril(-1)),
        "triu": (lambda t: t.triu(1), lambda t: t.triu(1)),
        "diagonal": (lambda t: t.diagonal(1), lambda t: t.diagonal(1)),
        "diagonal-below": (lambda t: t.diagonal(-1, 1, 0), lambda t: t.diagonal(-1, 1, 0)),
        "diagonal-3d": (lambda t: t.diagonal(0, 2, 0), lambda t: t.diagonal(0, 2, 0)),
        "trace": (lambda t: t.trace(), lambda t: t.trace()),
        "masked_fill": (lambda t: t.masked_fill(mv.tensor(mask), -2.0), lambda t: t.masked_fill(torch.tensor(mask), -2.0)),
    }[case]
    g = rng.normal(size=tuple(theirs(torch.tensor(x)).shape))
    y, gx = run(ours, x, g)
    ty, tgx = torch_run(theirs, x, g)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_allclose(gx, tgx, rtol=1e-14)  # (repeat's sums of 6 copies, added in another order)


def test_roll_vjp_rolls_back_and_tile_sums_the_copies():
    """Against index arithmetic: z_i = x_{(i − s) mod n}, so x̄_j = ḡ_{(j + s) mod n}; tile's x̄ = Σ of ḡ's blocks."""
    x, g = np.arange(5.0), np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    y, gx = run(lambda t: ops.roll(t, 2), x, g)
    np.testing.assert_array_equal(y, x[(np.arange(5) - 2) % 5])
    np.testing.assert_array_equal(gx, g[(np.arange(5) + 2) % 5])
    g = np.arange(12.0).reshape(2, 6)
    _, gx = run(lambda t: ops.tile(t, (2, 2)), np.ones(3), g)  # x (3,) as (1, 3), copies in a 2 × 2 grid
    np.testing.assert_array_equal(gx, g[0, :3] + g[0, 3:] + g[1, :3] + g[1, 3:])


def test_masked_fill_keeps_an_integer_tensor_s_dtype_as_torch():
    i = mv.tensor(np.arange(4))
    out = i.masked_fill(i > 1, 2.7)
    assert out.dtype == np.int64 and out.tolist() == [0, 1, 2, 2]
    b = mv.tensor(np.array([True, False]))
    assert b.masked_fill(mv.tensor(np.array([False, True])), 1).tolist() == [True, True]


def test_rounding_ops_have_zero_gradient_and_numpys_values():
    x = np.array([-2.5, -1.5, -0.4, 0.0, 0.5, 1.7, 2.5])
    for name, f in [("sign", np.sign), ("floor", np.floor), ("ceil", np.ceil), ("round", np.round), ("trunc", np.trunc)]:
        y, gx = run(lambda t, name=name: getattr(t, name)(), x, np.arange(7.0))
        np.testing.assert_array_equal(y, f(x))
        np.testing.assert_array_equal(gx, np.zeros(7))
    ints = mv.tensor(np.array([-2, 0, 3], np.int32))
    assert ints.floor().dtype == np.int32 and ints.round().tolist() == [-2, 0, 3]
    assert mv.tensor(np.array([True, False])).sign().tolist() == [True, False]


def test_comparison_and_predicate_methods_give_bool_tensors_as_torch():
    a = mv.tensor(np.array([1.0, np.nan, np.inf, -2.0]))
    b = np.array([1.0, 0.0, np.inf, 3.0])
    for name, op in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
                     ("gt", np.greater), ("ge", np.greater_equal)]:
        out = getattr(a, name)(mv.tensor(b))
        assert out.dtype == bool and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), op(a.numpy(), b))
    assert a.isnan().tolist() == [False, True, False, False]
    assert a.isinf().tolist() == [False, False, True, False]
    assert a.isfinite().tolist() == [True, False, False, True]
    i = mv.tensor(np.array([[1, 0], [2, 3]]))
    assert i.isnan().tolist() == [[False, False]] * 2 and i.isfinite().all().item() is True
    assert i.all().item() is False and i.any().item() is True
    assert i.all(dim=1).tolist() == [False, True] and i.any(axis=0, keepdims=True).tolist() == [[True, True]]
    torch = pytest.importorskip("torch")
    t = torch.tensor(a.numpy())
    for name in ["isnan", "isinf", "isfinite"]:
        np.testing.assert_array_equal(getattr(a, name)().numpy(), getattr(t, name)().numpy())


def test_bad_inputs_are_refused_naming_the_problem():
    x = mv.tensor(np.arange(6.0).reshape(2, 3))
    cases = [
        (lambda: ops.prod(x, axis=2), ValueError, "axis 2 is out of range"),
        (lambda: ops.cumsum(x, 3), ValueError, "axis 3 is out of range"),
        (lambda: ops.flip(x, 5), ValueError, "flip: axis 5 is out of range"),
        (lambda: ops.gather(x, 1, np.array([[0, 3]])), IndexError, "index 3 is out of bounds for axis 1 of size 3"),
        (lambda: ops.take(x, [-4], axis=1), IndexError, "index -4 is out of bounds for axis 1 of size 3"),
        (lambda: ops.index_select(x, 0, np.array([0.0])), TypeError, "index must be an integer array, not float64"),
        (lambda: ops.index_select(x, 0, np.zeros((1, 1), int)), ValueError, "index_select: the index must be 1-D"),
        (lambda: ops.take_along_axis(x, np.zeros(2, int), 1), ValueError, "index has 1 dimensions"),
        (lambda: ops.take_along_axis(x, np.zeros((3, 1), int), 1), ValueError, "does not broadcast"),
        (lambda: ops.gather(x, 0, np.zeros((1, 4), int)), ValueError, "larger than input"),
        (lambda: ops.masked_fill(x, np.ones((2, 3)), 0.0), TypeError, "mask must be a bool tensor"),
        (lambda: ops.masked_fill(x, np.ones((4, 3), bool), 0.0), ValueError, r"mask of shape \(4, 3\) does not"),
        (lambda: ops.norm(x, ord=-1), ValueError, "ord=-1 < 0"),
        (lambda: ops.norm(x, ord="nuc"), ValueError, "'nuc' is not a vector norm"),
        (lambda: ops.tril(mv.tensor(np.ones(3))), ValueError, "tril: needs a tensor of at least 2 dimensions"),
        (lambda: ops.diagonal(x, 0, 1, -1), ValueError, "axis1 and axis2 are the same axis"),
        (lambda: x.repeat(2), ValueError, "repeat: 1 sizes"),
        (lambda: ops.tile(x, (-1, 1)), ValueError, "negative repetitions"),
        (lambda: ops.roll(x, (1, 2), 0), ValueError, "2 shifts for 1 axes"),
        (lambda: ops.floor(mv.tensor(np.array([True]))), TypeError, "floor of a bool tensor"),
    ]
    for k, (fn, kind, message) in enumerate(cases):
        with pytest.raises(kind, match=message):
            fn()
            pytest.fail(f"case {k} ({message}) was not refused")


# ---- sort, topk, einsum ---------------------------------------------------------------------------------------------
def test_sort_and_topk_match_torch_values_indices_and_gradients():
    """Ties keep their order (torch's stable=True; topk's ties too), NaN is the largest; x̄ = ḡ sent back to where each
    value came from."""
    torch = pytest.importorskip("torch")
    x = np.array([[3.0, 1.0, np.nan, 1.0, 2.0, 1.0], [0.0, 5.0, 5.0, -1.0, 2.0, 5.0]])
    g = np.random.default_rng(9).normal(size=(2, 6))
    for descending in (False, True):
        t = mv.tensor(x, requires_grad=True)
        values, indices = t.sort(dim=1, descending=descending)
        values.backward(g)
        tt = torch.tensor(x, requires_grad=True)
        tv, ti = torch.sort(tt, dim=1, descending=descending, stable=True)
        tv.backward(torch.tensor(g))
        np.testing.assert_array_equal(values.numpy(), tv.detach().numpy())
        np.testing.assert_array_equal(indices.numpy(), ti.numpy())
        assert indices.dtype == np.int64 and not indices.requires_grad
        np.testing.assert_array_equal(t.grad, tt.grad.numpy())
    x = x[1:]
    for k, largest in [(2, True), (3, True), (2, False), (0, True)]:
        t = mv.tensor(x, requires_grad=True)
        out = t.topk(k, largest=largest)
        out.values.backward(g[1:, :k])
        want = np.zeros_like(x)
        want[0, out.indices.numpy()[0]] = g[1, :k]
        np.testing.assert_array_equal(t.grad, want)
        tt = torch.tensor(x)
        tv, ti = torch.topk(tt, k, largest=largest)
        np.testing.assert_array_equal(out.values.numpy(), tv.numpy())
        np.testing.assert_array_equal(np.sort(x[0][out.indices.numpy()[0]]), np.sort(x[0][ti.numpy()[0]]))


ELLIPSES = [("...ij,...jk", [(5, 1, 2, 3), (4, 3, 2)]), ("...i->i", [(2, 3, 4)]), ("i...->...", [(2, 3, 4)]),
            ("...", [(2, 3)]), ("...ji", [(2, 3, 4)]), ("ij...,jk", [(2, 3), (3, 4)]),
            ("b...i,...i->b...", [(2, 3, 4), (1, 4)]), ("...,...->...", [(3, 1), (1, 4)]),
            ("i...j,j...->...i", [(2, 1, 5, 3), (3, 4, 1)]), ("...i,i", [(3,), (3,)])]


SIZES = {"i": 2, "j": 3, "k": 4, "l": 2, "a": 3, "b": 2, "c": 4, "d": 1}
NAMED = [(subscripts, [[SIZES[c] for c in t] for t in subscripts.partition("->")[0].split(",")])
         for subscripts in ["ij,jk->ik", "ij,jk", "ij->i", "ijk,k->", "ab,cd->abcd", "i,i->", "ij,ij->ij",
                            "bij,bjk,kl->bil", "ab,bc,c"]]


@pytest.mark.parametrize("subscripts,shapes", NAMED + ELLIPSES, ids=[e[0] for e in NAMED + ELLIPSES])
def test_einsum_matches_torch_values_and_gradients(subscripts, shapes):
    """Products, contractions, outer products, sums over one operand's letters, three operands; "..." for the unnamed
    axes, aligned from the right and broadcast (size 1 against n), in the middle of a term too, the gradient of a
    broadcast operand summed back to its shape, an output without "..." summing them away."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    xs = [rng.normal(size=shape) for shape in shapes]
    ts, tts = [mv.tensor(a, requires_grad=True) for a in xs], [torch.tensor(a, requires_grad=True) for a in xs]
    y, ty = mv.ops.einsum(subscripts, *ts), torch.einsum(subscripts, *tts)
    g = rng.normal(size=tuple(ty.shape))
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-13, atol=1e-15)
    for t, tt in zip(ts, tts):
        np.testing.assert_allclose(t.grad, tt.grad.numpy(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("subscripts,shapes", [e for e in ELLIPSES if e[0] != "...i->i"])
def test_einsum_ellipsis_values_are_numpys(subscripts, shapes):
    """The torch-free check of the values (NumPy refuses "...i->i", an output that drops the batch axes: torch sums
    them, as minivae does)."""
    xs = [np.random.default_rng(12).normal(size=shape) for shape in shapes]
    y = mv.ops.einsum(subscripts, *[mv.tensor(a) for a in xs])
    np.testing.assert_allclose(y.numpy(), np.einsum(subscripts, *xs), rtol=1e-13, atol=1e-15)


def test_einsum_refuses_what_it_does_not_support_naming_it():
    a, b = mv.tensor(np.ones((2, 3))), mv.tensor(np.ones((3, 3)))
    for subscripts, operands, message in [
            ("ii->i", (b,), "a letter repeated within 'ii'"), ("ij->ii", (a,), "repeated within 'ii'"),
            ("..j->j", (a,), r"'\.' comes only as one '\.\.\.' per term"), ("...i...", (a,), "only as one"),
            ("...j,...j", (a, mv.tensor(np.ones((4, 3)))), r"the axes of '\.\.\.' do not broadcast: \(2,\), \(4,\)"),
            ("ijk...->i", (a,), r"'ijk\.\.\.' names 3 axes of an operand of shape \(2, 3\)"),
            ("ij,jk->il", (a, b), r"output letters \['l'\] are in no input"),
            ("ij,jk->ik", (b, a), "axis 'j' has sizes 3 and 2"),
            ("ij,jk->ik", (a,), "names 2 operands, 1 were given"), ("ijk->i", (a,), "'ijk' names 3 axes")]:
        with pytest.raises(ValueError, match=message):
            mv.ops.einsum(subscripts, *operands)


# ---- repeat_interleave --------------------------------------------------------------------------------------------
REPEATS = [(2, None), (3, 0), (2, 1), (2, -1), ([1, 0, 3], 0), ([2, 1, 0, 1], 1), (np.array([0, 2, 1]), 0),
           (0, 1), ([1], 0), (np.int64(2), 1)]


@pytest.mark.parametrize("repeats,dim", REPEATS, ids=[f"{r}-{d}" for r, d in REPEATS])
def test_repeat_interleave_is_numpys_repeat_and_sends_each_copys_gradient_home(repeats, dim):
    """Values as numpy.repeat; x̄ᵢ the sum of ḡ over the copies of xᵢ, written out as a loop over the output."""
    x = np.random.default_rng(13).normal(size=(3, 4))
    want = np.repeat(x, repeats, axis=dim)
    g = np.random.default_rng(14).normal(size=want.shape)
    y, gx = run(lambda t: t.repeat_interleave(repeats, dim=dim), x, g)
    np.testing.assert_array_equal(y, want)
    source = np.repeat(np.arange(x.size).reshape(x.shape), repeats, axis=dim)  # where each output entry came from
    want_gx = np.zeros(x.size)
    for i, v in zip(source.ravel(), g.ravel()):
        want_gx[i] += v
    np.testing.assert_allclose(gx, want_gx.reshape(x.shape), rtol=1e-15, atol=0)


@pytest.mark.parametrize("repeats,dim", REPEATS[:7], ids=[f"{r}-{d}" for r, d in REPEATS[:7]])
def test_repeat_interleave_matches_torch(repeats, dim):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(15).normal(size=(3, 4))
    g = np.random.default_rng(16).normal(size=np.repeat(x, repeats, axis=dim).shape)
    y, gx = run(lambda t: ops.repeat_interleave(t, mv.tensor(repeats) if isinstance(repeats, list) else repeats, dim),
                x, g)
    t = torch.tensor(x, requires_grad=True)
    ty = torch.repeat_interleave(t, torch.tensor(repeats) if not isinstance(repeats, int) else repeats, dim=dim)
    ty.backward(torch.tensor(g))
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_allclose(gx, t.grad.numpy(), rtol=1e-15, atol=0)


def test_repeat_interleave_gradchecks_and_refuses_bad_counts_naming_them():
    x = mv.tensor(np.random.default_rng(17).normal(size=(2, 3)), requires_grad=True)
    assert mv.gradcheck(lambda t: ops.repeat_interleave(t, [2, 0, 1], 1) ** 2, x)
    assert mv.gradcheck(lambda t: ops.repeat_interleave(t, 3) ** 2, x)
    assert ops.repeat_interleave(mv.tensor(5.0), 3).shape == (3,)  # a 0-d tensor, flattened as torch's
    for repeats, dim, error, message in [
            ([1, 2], 1, ValueError, r"2 counts of shape \(2,\) for 3 entries along axis 1"),
            ([[1, 2, 3]], 1, ValueError, "one count, or one per entry"), (-1, 0, ValueError, "≥ 0"),
            ([1, -2, 1], 1, ValueError, "≥ 0"), (1.5, 0, TypeError, "must be integers, not float64"),
            (2, 2, ValueError, "axis 2 is out of range")]:
        with pytest.raises(error, match=message):
            ops.repeat_interleave(x, repeats, dim)
    with emulating():
        with pytest.raises(ValueError, match="repeats on cuda: their sum, the output's length, would be a copy"):
            ops.repeat_interleave(mv.tensor(X, device="cuda"), mv.tensor([1, 2, 0, 1], device="cuda"), 1)


# ---- the device -------------------------------------------------------------------------------------------------
X = np.random.default_rng(7).normal(size=(3, 4))
X[1, 2] = X[2, 0] = X[2, 3] = 0.0
IDX = np.array([[0, 3, 3, 1], [2, 2, 0, 0], [1, 1, 1, 3]])
DEVICE_CASES = {
    "prod": lambda t: t.prod(dim=1), "cumsum": lambda t: t.cumsum(0), "cumprod": lambda t: t.cumprod(1),
    "norm": lambda t: t.norm(dim=1), "norm-inf": lambda t: t.norm(math.inf, dim=0), "amax": lambda t: t.amax(dim=1),
    "flip": lambda t: t.flip(1), "roll": lambda t: t.roll(2, 1), "repeat": lambda t: t.repeat(2, 3),
    "tril": lambda t: t.tril(), "triu": lambda t: t.triu(1), "diagonal": lambda t: t.diagonal(-1),
    "trace": lambda t: t.trace(), "gather": lambda t: t.gather(1, mv.tensor(IDX)),
    "gather-host-index": lambda t: t.gather(1, IDX), "index_select": lambda t: t.index_select(1, mv.tensor(IDX[0])),
    "take": lambda t: t.take(mv.tensor(IDX)), "masked_fill": lambda t: t.masked_fill(t > 0, 0.5),
    "round": lambda t: (t * 3).round() * t, "sign": lambda t: t.sign() * t,
    "sort": lambda t: t.sort(descending=True).values, "topk": lambda t: t.topk(2, dim=0).values,
    "sort-indices": lambda t: t.take(t.sort(0).indices[:1]) * t.sort(0).values[-1:],
    "sort-ties": lambda t: t.take(t.round().sort(1, descending=True).indices),  # (X's rounded rows tie: stable order)
    "einsum": lambda t: mv.ops.einsum("ij,kj,k->i", t, t * t, t[:, 0]),
    "einsum-ellipsis": lambda t: mv.ops.einsum("...j,...j->...", t, t[:1] * t[:1]),
    "repeat_interleave": lambda t: t.repeat_interleave(2, dim=1)[:, 1:5] * t.repeat_interleave([1, 0, 2], dim=0).sum(0),
}


@pytest.mark.parametrize("name", sorted(DEVICE_CASES))
def test_on_the_device_the_same_bits_and_no_copy_to_the_host(name):
    """The "cuda" stand-in (strict arrays, which refuse to become NumPy arrays and log every copy to the host): the
    same values and gradients as the CPU, bit for bit, and no copy back; an index on the CPU is moved there once."""
    fn = DEVICE_CASES[name]
    g = np.random.default_rng(8).normal(size=fn(mv.tensor(X)).shape)
    want_y, want_gx = run(fn, X, g)
    with use_numba(False), use_cuda_kernels(False), emulating(), record() as log:
        t = mv.tensor(X, requires_grad=True, device="cuda")
        y = fn(t)
        y.backward(strict.asarray(g))
        got_y, got_gx = y.data, t.grad
    assert log == [], describe(log)
    assert got_y.device == "cuda" and got_gx.device == "cuda"
    np.testing.assert_array_equal(got_y.get(), want_y)
    np.testing.assert_array_equal(got_gx.get(), want_gx)


def test_a_device_index_on_a_cpu_tensor_is_refused():
    with emulating():
        with pytest.raises(RuntimeError, match="the index is on cuda, the tensor on cpu"):
            mv.tensor(X).gather(1, mv.tensor(IDX, device="cuda"))


@pytest.mark.parametrize("ord", [2, 3, 1.5])
@pytest.mark.parametrize("dtype,tiny,huge", [(np.float64, 1e-200, 1e200), (np.float32, 1e-25, 1e25)])
def test_a_norm_of_tiny_or_huge_entries_is_the_number_not_0_or_inf(ord, dtype, tiny, huge):
    """‖(t, t, 2t)‖_p = t·(2 + 2^p)^{1/p} for t where t^p underflows or overflows (√(Σx²) gave 0 and ∞): the value and
    the gradient sign(x)·(|x|/y)^{p−1}, scale-free, equal those at t = 1 (math.fsum of the unscaled entries for both)."""
    for t in (tiny, huge):
        x = mv.tensor(np.array([t, -t, 2 * t], dtype), requires_grad=True)
        y = ops.norm(x, ord=ord)
        y.backward()
        want = t * math.fsum([1, 1, 2 ** ord]) ** (1 / ord)
        assert y.item() == pytest.approx(want, rel=4 * float(np.finfo(dtype).eps))
        unit = np.array([1, -1, 2]) / math.fsum([1, 1, 2 ** ord]) ** (1 / ord)
        np.testing.assert_allclose(x.grad, np.sign(unit) * np.abs(unit) ** (ord - 1), rtol=8 * np.finfo(dtype).eps)
