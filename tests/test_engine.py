"""The engine: accumulation, reuse, no_grad, detach, deep graphs, broadcasting, dtypes, errors."""
import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae.ops._broadcast import unbroadcast


def leaf(values, dtype=np.float64):
    return mv.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


def test_reused_node_accumulates_within_one_backward():
    x = leaf([1.0, -2.0, 3.0])
    y = x * x + x  # dy/dx = 2x + 1
    y.backward(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(x.grad, np.array([1.0, 2.0, 3.0]) * (2 * x.data + 1))


def test_diamond_graph_sums_both_paths():
    x = leaf(0.5)
    a = ops.exp(x)
    y = a * a + ops.tanh(a)
    y.backward()
    e = np.exp(0.5)
    np.testing.assert_allclose(x.grad, 2 * e * e + (1 - np.tanh(e) ** 2) * e)


def test_grad_accumulates_across_backward_calls_like_pytorch():
    x = leaf([2.0])
    (x * 3).sum().backward()
    (x * 4).sum().backward()
    np.testing.assert_allclose(x.grad, [7.0])


def test_each_leaf_gets_a_gradient_array_of_its_own():
    """add's VJP hands ḡ itself to both inputs, reshape's VJP a view of it, and negative_elbo's l̄l is a read-only
    broadcast view; still every leaf's .grad is an array of its own, none the caller's ḡ, so that an in-place
    change of one (clip_grad_norm_ scales each .grad in place) changes that one, once."""
    a, c = leaf(np.ones(6)), leaf(np.ones(6))
    b = leaf(np.ones((2, 3)))
    g = np.arange(1.0, 7.0)
    (a + ops.reshape(b, (6,)) + c).backward(g)
    grads = [a.grad, b.grad, c.grad, g]
    for i in range(4):
        for j in range(i):
            assert not np.shares_memory(grads[i], grads[j]), (i, j)
    norm = float(mv.optim.clip_grad_norm_([a, b, c], 1.0))
    np.testing.assert_allclose(norm, np.sqrt(3 * (g * g).sum()))
    np.testing.assert_allclose(np.sqrt(sum((p.grad ** 2).sum() for p in (a, b, c))), 1.0)  # not 1/norm
    np.testing.assert_array_equal(g, np.arange(1.0, 7.0))
    ll, kl = leaf(np.zeros((4, 5))), leaf(np.zeros((4, 2)))
    ops.negative_elbo(ll, kl).backward()
    ll.grad += 1.0  # a read-only view would refuse; a shared one would change every element's gradient at once
    np.testing.assert_array_equal(ll.grad, np.full((4, 5), 0.75))
    ll.grad[0, 0] = 5.0
    assert ll.grad[1, 1] == 0.75


def test_a_fresh_gradient_is_not_taken_for_a_freed_one_whose_id_it_got(monkeypatch):
    """backward() tells the arrays already some .grad (or the caller's) by their ids, and CPython hands a freed
    object's id to a later one: an array freed during the pass (the root's ḡ = 1, once the views of it are gone)
    could lend its id to a fresh gradient, which was then copied for nothing (a launch in every eager GPU step).
    Emulated deterministically: the engine's ids are numbers, a dead array's number going to the next array asked
    for. The leaf's .grad must be the very array its op's VJP made."""
    import weakref

    from minivae import engine
    numbers, free = {}, []

    def fake_id(obj):
        if not isinstance(obj, np.ndarray):
            return id(obj)  # tensors (no weak references) keep theirs: they stay alive through the pass
        entry = numbers.get(id(obj))
        if entry is None or entry[0]() is not obj:
            n = free.pop() if free else -1 - len(numbers)
            numbers[id(obj)] = entry = (weakref.ref(obj, lambda _, n=n: free.append(n)), n)
        return entry[1]

    class Fresh(mv.engine.Function):
        made = []

        def forward(ctx, x):
            return x * 1.0

        def backward(ctx, g):
            Fresh.made.append(g * 2.0)
            return Fresh.made[-1]

    monkeypatch.setattr(engine, "id", fake_id, raising=False)
    x = leaf(np.ones(3))
    Fresh.apply(Fresh.apply(Fresh.apply(x))).sum().backward()  # ḡ = 1 is dead before the last VJP runs
    assert x.grad is Fresh.made[-1]
    np.testing.assert_array_equal(x.grad, np.full(3, 8.0))


def test_a_callers_gradient_that_was_a_leafs_grad_is_no_other_leafs():
    """(a + b).backward(a.grad): add hands the caller's ḡ to both; a's .grad becomes a new sum, and b's .grad must
    still be a copy of ḡ (the caller's array, a's old .grad), not that array, which the caller may change."""
    a, b = leaf(np.ones(3)), leaf(np.ones(3))
    (a * 2.0).sum().backward()
    g = a.grad
    (a + b).backward(g)
    assert not np.shares_memory(b.grad, g) and not np.shares_memory(a.grad, g)
    g += 1.0
    np.testing.assert_array_equal(b.grad, np.full(3, 2.0))
    np.testing.assert_array_equal(a.grad, np.full(3, 4.0))


def test_backward_twice_through_one_graph_needs_retain_graph():
    x = leaf([1.0, 2.0])
    y = (ops.exp(x)).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * np.exp([1.0, 2.0]))
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_no_grad_records_nothing_and_restores_state():
    x = leaf([1.0])
    with mv.no_grad():
        y = x * 2
        assert not mv.is_grad_enabled()
    assert mv.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf


def test_detach_cuts_the_graph_but_shares_values():
    x = leaf([1.0, 2.0])
    d = (x * 2).detach()
    assert not d.requires_grad
    y = (x * d).sum()  # d is a constant: dy/dx = d
    y.backward()
    np.testing.assert_allclose(x.grad, [2.0, 4.0])


def test_ten_thousand_node_chain_backpropagates_iteratively():
    x = leaf(1.0)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.backward()
    np.testing.assert_allclose(x.grad, 1.0001 ** 10_000, rtol=1e-9)


def test_broadcast_gradients_take_each_input_shape():
    a, b = leaf(np.ones((3, 1))), leaf(np.ones(4))
    (a * b * 2).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,)
    np.testing.assert_allclose(a.grad, np.full((3, 1), 8.0))
    np.testing.assert_allclose(b.grad, np.full(4, 6.0))


def test_non_leaf_grad_is_kept_only_when_asked():
    x = leaf([1.0, 2.0])
    h = (x * 3).retain_grad()
    k = x * 5
    (h * h + k).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    assert k.grad is None


def test_default_dtype_is_float32_and_float64_is_kept():
    assert mv.tensor([1.0, 2.0]).dtype == np.float32
    assert mv.tensor(np.zeros(2)).dtype == np.float64
    assert mv.tensor(np.float64(0.5)).dtype == np.float64  # NumPy scalars keep their dtype, as in PyTorch
    assert mv.tensor([1, 2]).dtype.kind == "i"
    x = mv.tensor([1.0], requires_grad=True)
    assert (x * 2.5).dtype == np.float32  # a Python number does not upcast
    (x * 2.5).sum().backward()
    assert x.grad.dtype == np.float32


def test_float32_and_float64_agree():
    rng = np.random.default_rng(0)
    x64, w64 = rng.normal(size=(5, 7)), rng.normal(size=(7, 3))
    results = []
    for dtype in (np.float32, np.float64):
        x = mv.tensor(x64.astype(dtype), requires_grad=True)
        w = mv.tensor(w64.astype(dtype))
        y = (ops.log_softmax(ops.tanh(x @ w), temperature=0.7) * ops.sigmoid(x).sum(axis=1, keepdims=True)).mean()
        y.backward()
        assert y.dtype == dtype and x.grad.dtype == dtype
        results.append((y.item(), x.grad.astype(np.float64)))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-4, atol=1e-6)


def test_comparisons_give_masks_without_gradient():
    x = leaf([1.0, -1.0])
    mask = x > 0
    assert mask.dtype == bool and not mask.requires_grad
    np.testing.assert_array_equal(mask.data, [True, False])
    y = ops.where(mask, x, x * 0).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 0.0])


def test_max_ties_share_the_gradient_evenly():
    x = leaf([[3.0, 3.0, 1.0]])
    ops.max(x, axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.5, 0.5, 0.0]])


def test_one_hot_and_split():
    h = ops.one_hot(mv.tensor([2, 0]), 3)
    np.testing.assert_array_equal(h.data, [[0, 0, 1], [1, 0, 0]])
    assert h.dtype == np.float32 and not h.requires_grad
    parts = ops.chunk(mv.tensor(np.arange(10.0)), 3)
    assert [p.shape for p in parts] == [(4,), (4,), (2,)]


def test_operators_with_arrays_and_scalars_on_either_side():
    x = leaf([1.0, 2.0])
    y = 1 - x / 2 + np.array([1.0, 1.0]) * x ** 2
    y.sum().backward()
    np.testing.assert_allclose(x.grad, -0.5 + 2 * x.data)


# ---- errors that name the problem ----------------------------------------------------
@pytest.mark.parametrize("op", [ops.add, ops.sub, ops.mul, ops.div])
def test_a_constant_operand_gets_no_gradient_computed(op, monkeypatch):
    """An input that needs no gradient (β in β·KL) gets none computed (on the GPU each would be launches for
    nothing), and the other input still gets its own, on either side."""
    x = np.array([[1.0, 2.0, 4.0]])
    c = np.array([[0.5], [2.0]])  # broadcast: its gradient would be a product and a sum
    for args in ((mv.tensor(x, requires_grad=True), mv.tensor(c)), (mv.tensor(c), mv.tensor(x, requires_grad=True))):
        k = 0 if args[0].requires_grad else 1
        other = args[k]
        seen = []
        monkeypatch.setattr(ops.arith, "unbroadcast", lambda g, shape, seen=seen: seen.append(shape) or unbroadcast(g, shape))
        y = op(*args)
        g = np.random.default_rng(0).standard_normal(y.shape)
        y.backward(g)
        assert seen == [other.shape]
        with_grads = [mv.tensor(a.data, requires_grad=True) for a in args]
        op(*with_grads).backward(g)
        np.testing.assert_array_equal(other.grad, with_grads[k].grad)


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        mv.tensor(np.ones((2, 3))) @ mv.tensor(np.ones((4, 5)))


def test_backward_on_non_scalar_needs_grad():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"shape \(2,\) needs grad="):
        (x * 2).backward()


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="int"):
        mv.tensor([1, 2], requires_grad=True)


@pytest.mark.parametrize("axis", [2, -3, (0, 0)])
def test_bad_axis_is_named(axis):
    with pytest.raises(ValueError, match="axis"):
        ops.sum(mv.tensor(np.ones((2, 3))), axis=axis)


def test_bad_shapes_and_devices_are_named():
    with pytest.raises(ValueError, match=r"\(2, 3\) into \(4,\)"):
        ops.reshape(mv.tensor(np.ones((2, 3))), (4,))
    with pytest.raises(ValueError, match="unknown device"):
        mv.tensor([1.0], device="tpu")
    with pytest.raises(ValueError, match="temperature must be a finite real number > 0"):
        ops.softmax(mv.tensor([1.0, 2.0]), temperature=0.0)


def test_a_wrong_shaped_vjp_fails_loudly():
    class Bad(mv.Function):
        def forward(ctx, x):
            return x * 2

        def backward(ctx, g):
            return g.sum()
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"Bad.backward returned a gradient of shape \(\)"):
        Bad.apply(x).sum().backward()


def test_a_missing_vjp_fails_loudly():
    class NoVJP(mv.Function):
        def forward(ctx, x):
            return x

    with pytest.raises(NotImplementedError, match="NoVJP"):
        NoVJP.apply(leaf([1.0])).sum().backward()


@pytest.mark.parametrize("change", ["base written after a slice of it was used", "a detached copy zeroed",
                                    "a reshape of it written under no_grad"])
def test_a_view_and_its_base_count_in_place_changes_together(change):
    """A slice, a reshape and ``detach()`` share their base's memory, and its version counter (as PyTorch's): a
    write through any of them after the forward pass must stop the backward pass of an op that read the other, whose
    VJP would otherwise use the new values (x̄ of w·x is w's values: a silent wrong gradient)."""
    w, x = leaf([1.0, 2.0]), leaf([3.0, 4.0, 5.0])
    if change.startswith("base"):
        y = (w * x[0:2]).sum()
        with mv.no_grad():
            x[0] = 100.0
    elif change.startswith("a detached"):
        y = (w * x[0:2]).sum()
        w.detach().zero_()
    else:
        y = (w * x[0:2]).sum()
        with mv.no_grad():
            w.reshape(2)[0] = 50.0
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_views_made_of_unchanged_tensors_backpropagate():
    """The counter is shared, not bumped: views alone do not stop a backward pass."""
    w, x = leaf([1.0, 2.0]), leaf([3.0, 4.0, 5.0])
    y = (w.detach() * x[0:2] + w.reshape(2) * x.T[1:]).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0 + 1.0, 2.0])
    np.testing.assert_array_equal(w.grad, [4.0, 5.0])


def test_an_integer_result_carries_no_gradient():
    """A cast to integers is a step function: its derivative is 0 almost everywhere, and PyTorch's result does not
    require grad. Passing ḡ through it would give x̄ = 3 for (3·long(x)).sum()."""
    x = leaf([1.5, 2.5])
    k = x.long()
    assert k.dtype == np.int64 and not k.requires_grad
    assert x.float().requires_grad  # a floating cast still does
    with pytest.raises(RuntimeError, match="does not require grad"):
        (k * 3.0).sum().backward()


def test_where_gives_each_branch_only_its_own_upstream_gradient():
    """ȳ = ḡ where the condition is false and exactly 0 where it is true, even where ḡ is inf or NaN (as PyTorch:
    the other branch was not used there); x̄ the reverse."""
    a, b = leaf([1.0, 2.0, 3.0]), leaf([4.0, 5.0, 6.0])
    y = ops.where(np.array([True, False, True]), a, b)
    mv.backward([y], [np.array([np.nan, 1.0, np.inf])])
    np.testing.assert_array_equal(b.grad, [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(a.grad, [np.nan, 0.0, np.inf])


def test_pow_takes_pytorch_s_gradients_at_zero():
    """d(x⁰)/dx = 0 (x⁰ = 1 is constant; y·x^(y−1) would be 0·∞ at x = 0), and d(xʸ)/dy = 0 at x = 0 for y ≥ 0
    (z·log x would be 0·(−∞)); elsewhere the formulas: x̄ = y·x^(y−1), ȳ = xʸ·log x."""
    x = leaf([0.0, 2.0])
    (x ** 0.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])
    x, y = leaf([0.0, 2.0, 0.0]), leaf([2.0, 2.0, 0.0])
    (x ** y).sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 4.0, 0.0], rtol=1e-15)
    np.testing.assert_allclose(y.grad, [0.0, 4.0 * np.log(2.0), 0.0], rtol=1e-15)


def test_std_of_a_constant_slice_has_gradient_zero():
    """std's x̄ = ḡ·(x − m)/((n − 1)·s) where s > 0, and 0 where the slice is constant (s = 0: PyTorch's value, where
    sqrt's VJP after var's would give 0·∞ = NaN)."""
    x = leaf([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]])
    x.std(axis=1).sum().backward()
    row = np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(x.grad[0], (row - row.mean()) / (2 * row.std(ddof=1)), rtol=1e-14)
    np.testing.assert_array_equal(x.grad[1], [0.0, 0.0, 0.0])


def test_a_root_gradient_takes_the_root_s_dtype():
    """backward(grad) rounds a given gradient to the root's dtype, a tensor as an array (PyTorch casts it): an
    integer or float64 ḡ must not make a float32 leaf's .grad integer or float64."""
    for grad in (mv.tensor(np.array([1, 1])), mv.tensor(np.array([0.5, 1.5])), np.array([1, 1])):
        x = leaf([1.0, 2.0], np.float32)
        x.backward(grad)  # the root is the leaf: its ḡ becomes its .grad as it is
        (x * 2.0).backward(grad)
        assert x.grad.dtype == np.float32
        np.testing.assert_array_equal(x.grad, 3.0 * np.asarray(grad.data if isinstance(grad, mv.Tensor) else grad))


def test_tensor_copies_and_as_tensor_shares():
    """``tensor`` makes a new leaf of its own memory (torch.tensor copies): two leaves made from one array must not
    change together; ``as_tensor`` shares an array of its dtype (torch.as_tensor), and converts another."""
    source = np.zeros(3, np.float32)
    a, b = mv.tensor(source), mv.tensor(source)
    a += 1.0
    source[1] = 7.0
    np.testing.assert_array_equal(b.numpy(), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(a.numpy(), [1.0, 1.0, 1.0])
    shared = mv.as_tensor(source)
    assert shared.data is source or np.shares_memory(shared.data, source)
    assert not np.shares_memory(mv.as_tensor(source, dtype=np.float64).data, source)
    assert mv.as_tensor(shared) is shared
