"""PyTorch's Tensor methods that are ops minivae already has: each is that op (the node in the graph is the op's
Function, no formula of its own), with PyTorch's values and gradients (compared with torch itself, skipped when it is
not installed), and PyTorch's refusals. Then the bool refusals of subtraction and negation, and the mask operators."""
import re

import numpy as np
import pytest

import minivae as mv
from minivae import ops
from tests.strict_array import UPLOADS, emulating, record


def torch_or_skip():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


SHAPES = [(3,), (2, 3, 4)]
POSITIVE = (0.2, 2.0)
ANY = (-1.5, 1.5)

def _zeta2(x):
    import torch
    return torch.special.zeta(torch.full_like(x, 2.0), x)


# name: (method call, torch call, the op whose node the result is, input domain); ``y`` is a second input of the last
# axis's length (broadcast against x), for the binary ones
UNARY = {
    "neg": (lambda x: x.neg(), lambda x: x.neg(), "neg", ANY),
    "log1p": (lambda x: x.log1p(), lambda x: x.log1p(), "log1p", POSITIVE),
    "expm1": (lambda x: x.expm1(), lambda x: x.expm1(), "expm1", ANY),
    "sin": (lambda x: x.sin(), lambda x: x.sin(), "sin", ANY),
    "cos": (lambda x: x.cos(), lambda x: x.cos(), "cos", ANY),
    "erf": (lambda x: x.erf(), lambda x: x.erf(), "erf", ANY),
    "erfc": (lambda x: x.erfc(), lambda x: x.erfc(), "erfc", ANY),
    "erfinv": (lambda x: x.erfinv(), lambda x: x.erfinv(), "erfinv", (-0.9, 0.9)),
    "lgamma": (lambda x: x.lgamma(), lambda x: x.lgamma(), "lgamma", POSITIVE),
    # torch's gradient of digamma, its trigamma, is a short series ~10⁻⁹ off: ψ⁽¹⁾(x) = ζ(2, x) (torch.special.zeta)
    "digamma": (lambda x: x.digamma(), lambda x: x.digamma().detach() + (x - x.detach()) * _zeta2(x.detach()), "digamma",
                POSITIVE),
    "polygamma": (lambda x: x.polygamma(2), lambda x: x.polygamma(2), "polygamma", POSITIVE),
    "square": (lambda x: x.square(), lambda x: x.square(), "square", ANY),
    "reciprocal": (lambda x: x.reciprocal(), lambda x: x.reciprocal(), "reciprocal", POSITIVE),
    "rsqrt": (lambda x: x.rsqrt(), lambda x: x.rsqrt(), "rsqrt", POSITIVE),
    # minivae.ops.elementwise (helper-62)
    **{n: (lambda x, n=n: getattr(x, n)(), lambda x, n=n: getattr(x, n)(), n, d)
       for n, d in [("tan", ANY), ("asin", (-0.9, 0.9)), ("acos", (-0.9, 0.9)), ("atan", ANY), ("sinh", ANY),
                    ("cosh", ANY), ("asinh", ANY), ("acosh", (1.1, 3.0)), ("atanh", (-0.9, 0.9)), ("log2", POSITIVE),
                    ("log10", POSITIVE), ("exp2", ANY), ("logit", (0.05, 0.95))]},
    **{a: (lambda x, a=a: getattr(x, a)(), lambda x, a=a: getattr(x, a)(), n, d)
       for a, n, d in [("arcsin", "asin", (-0.9, 0.9)), ("arccos", "acos", (-0.9, 0.9)), ("arctan", "atan", ANY),
                       ("arcsinh", "asinh", ANY), ("arccosh", "acosh", (1.1, 3.0)), ("arctanh", "atanh", (-0.9, 0.9))]},
    "logit-eps": (lambda x: x.logit(0.2), lambda x: x.logit(0.2), "logit", (0.05, 0.95)),
    "pow-number": (lambda x: x.pow(2.5), lambda x: x.pow(2.5), "pow", POSITIVE),
    "clamp": (lambda x: x.clamp(-0.5, 0.7), lambda x: x.clamp(-0.5, 0.7), "clip", ANY),
    "flatten": (lambda x: x.flatten(), lambda x: x.flatten(), "reshape", ANY),
    "flatten-last": (lambda x: x.flatten(-2 if x.ndim > 1 else 0), lambda x: x.flatten(-2 if x.ndim > 1 else 0),
                     "reshape", ANY),
    "expand": (lambda x: x.expand(2, *x.shape), lambda x: x.expand(2, *x.shape), "broadcast_to", ANY),
    "expand-new-and-keep": (lambda x: x.expand(2, *[-1] * x.ndim), lambda x: x.expand(2, *[-1] * x.ndim), "broadcast_to",
                            ANY),
    "expand-keep": (lambda x: x[..., None].expand((*[-1] * x.ndim, 3)), lambda x: x[..., None].expand(*[-1] * x.ndim, 3),
                    "broadcast_to", ANY),
    "t": (lambda x: x[0].t() if x.ndim > 2 else x.t(), lambda x: x[0].t() if x.ndim > 2 else x.t(), "transpose", ANY),
    "mT": (lambda x: x.reshape(-1, 1).mT if x.ndim == 1 else x.mT, lambda x: x.reshape(-1, 1).mT if x.ndim == 1 else x.mT,
           "transpose", ANY),
}
BINARY = {
    "add": (lambda x, y: x.add(y), lambda x, y: x.add(y), "add", ANY),
    "add-alpha": (lambda x, y: x.add(y, alpha=2.5), lambda x, y: x.add(y, alpha=2.5), "add", ANY),
    "sub": (lambda x, y: x.sub(y), lambda x, y: x.sub(y), "sub", ANY),
    "sub-alpha": (lambda x, y: x.sub(y, alpha=-0.75), lambda x, y: x.sub(y, alpha=-0.75), "sub", ANY),
    "mul": (lambda x, y: x.mul(y), lambda x, y: x.mul(y), "mul", ANY),
    "div": (lambda x, y: x.div(y), lambda x, y: x.div(y), "div", POSITIVE),
    "pow": (lambda x, y: x.pow(y), lambda x, y: x.pow(y), "pow", POSITIVE),
    "maximum": (lambda x, y: x.maximum(y), lambda x, y: x.maximum(y), "maximum", ANY),
    "minimum": (lambda x, y: x.minimum(y), lambda x, y: x.minimum(y), "minimum", ANY),
    "expand_as": (lambda x, y: y.expand_as(x), lambda x, y: y.expand_as(x), "broadcast_to", ANY),
    # minivae.ops.elementwise (helper-62)
    "atan2": (lambda x, y: x.atan2(y), lambda x, y: x.atan2(y), "atan2", ANY),
    "arctan2": (lambda x, y: x.arctan2(y), lambda x, y: x.arctan2(y), "atan2", ANY),
    "hypot": (lambda x, y: x.hypot(y), lambda x, y: x.hypot(y), "hypot", ANY),
    "logaddexp": (lambda x, y: x.logaddexp(y), lambda x, y: x.logaddexp(y), "logaddexp", ANY),
    "xlogy": (lambda x, y: x.xlogy(y), lambda x, y: x.xlogy(y), "xlogy", POSITIVE),
}


def _values(shape, domain, seed):
    return np.random.default_rng(seed).uniform(*domain, size=shape)


def _compare(ours, theirs, leaves, torch_leaves, seed, rtol=1e-12):
    """Values of the outputs (a tensor or a tuple of them), then the gradients of the leaves for a random ḡ."""
    ours, theirs = (ours, theirs) if isinstance(ours, tuple) else ((ours,), (theirs,))
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert o.shape == tuple(t.shape) and o.dtype == np.dtype(str(t.dtype).removeprefix("torch."))
        np.testing.assert_allclose(o.data, t.detach().numpy(), rtol=rtol, atol=1e-15)
    g = [np.random.default_rng(seed + k).normal(size=o.shape).astype(o.dtype) for k, o in enumerate(ours)]
    mv.backward(list(ours), g)
    import torch
    torch.autograd.backward(list(theirs), [torch.tensor(gk) for gk in g])
    for a, b in zip(leaves, torch_leaves):
        if b.grad is None:  # (a leaf the result does not depend on: expand_as's x)
            assert a.grad is None
            continue
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=rtol, atol=1e-15)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_methods_are_their_ops_with_torch_values_and_gradients(name, shape):
    """These methods were missing (AttributeError)."""
    torch = torch_or_skip()
    ours_of, theirs_of, op, domain = UNARY[name]
    x_np = _values(shape, domain, 1)
    x, xt = mv.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    y = ours_of(x)
    assert type(y._ctx) is ops.OPS[op] and y.requires_grad  # the op's node, in the graph
    _compare(y, theirs_of(xt), [x], [xt], seed=2)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_methods_are_their_ops_with_torch_values_and_gradients(name, shape):
    torch = torch_or_skip()
    ours_of, theirs_of, op, domain = BINARY[name]
    x_np, y_np = _values(shape, domain, 3), _values(shape[-1:], domain, 4)
    x, y = mv.tensor(x_np, requires_grad=True), mv.tensor(y_np, requires_grad=True)
    xt, yt = torch.tensor(x_np, requires_grad=True), torch.tensor(y_np, requires_grad=True)
    z = ours_of(x, y)
    assert type(z._ctx) is ops.OPS[op] and z.requires_grad
    _compare(z, theirs_of(xt, yt), [x, y], [xt, yt], seed=5)


def test_methods_keep_float32_and_match_torch_to_an_ulp():
    torch = torch_or_skip()
    x_np = _values((4, 5), POSITIVE, 6).astype(np.float32)
    x, xt = mv.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    ours = x.rsqrt().add(x.log1p().square(), alpha=0.5).sub(x.expm1(), alpha=2)
    theirs = xt.rsqrt().add(xt.log1p().square(), alpha=0.5).sub(xt.expm1(), alpha=2)
    assert ours.dtype == np.float32
    _compare(ours, theirs, [x], [xt], seed=7, rtol=4 * np.finfo(np.float32).eps)


@pytest.mark.parametrize("split", [lambda x: x.chunk(2, dim=1), lambda x: x.chunk(3, -1), lambda x: x.split(2, dim=-1),
                                   lambda x: x.split([1, 3], dim=2), lambda x: x.split(1), lambda x: x.split([0, 3, 1], 2)],
                         ids=["chunk-2", "chunk-3", "split-size", "split-sizes", "split-1", "split-empty-piece"])
def test_chunk_and_split_take_torch_s_arguments(split):
    """torch.split's int is each piece's size (ops.split's, NumPy's, is the number of pieces); a tuple as torch's."""
    torch = torch_or_skip()
    x_np = _values((2, 3, 4), ANY, 8)
    x, xt = mv.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    ours, theirs = split(x), split(xt)
    assert isinstance(ours, tuple) and all(type(p._ctx) is ops.OPS["split"] for p in ours)
    _compare(ours, theirs, [x], [xt], seed=9)


def test_type_as_flatten_and_shapes_as_torch():
    torch = torch_or_skip()
    x = mv.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.type_as(x) is x
    y = x.type_as(mv.zeros(1))
    assert y.dtype == np.float32 and (y.data == np.arange(6.0, dtype=np.float32).reshape(2, 3)).all()
    assert type(y._ctx) is ops.OPS["cast"]
    assert x.type_as(mv.zeros(1, dtype=np.int64)).dtype == np.int64
    assert mv.tensor(np.float64(2.0)).flatten().shape == tuple(torch.tensor(2.0).flatten().shape) == (1,)
    empty = np.zeros((2, 0, 3))
    assert mv.tensor(empty).flatten(0, 1).shape == tuple(torch.tensor(empty).flatten(0, 1).shape) == (0, 3)
    assert mv.tensor(empty).flatten().shape == (0,)
    assert x.mT.shape == (3, 2) and (x.mT.data == x.data.T).all()
    assert mv.ones(3).t().shape == (3,)


@pytest.mark.parametrize("call,error,match", [
    (lambda: mv.ones(2, 3, 4).t(), ValueError, "at most 2 dimensions"),
    (lambda: mv.ones(3).mT, ValueError, "at least 2 dimensions"),
    (lambda: mv.ones(3, 1).expand(-1, 3, 4), ValueError, "new leading axis"),
    (lambda: mv.ones(3, 2).expand(3, 4), ValueError, r"cannot broadcast a tensor of shape \(3, 2\) to \(3, 4\)"),
    (lambda: mv.ones(3, 2).expand(2), ValueError, "1 sizes"),
    (lambda: mv.ones(2, 3).flatten(1, 0), ValueError, "start_dim 1 comes after end_dim 0"),
    (lambda: mv.ones(5).split([1, 3]), ValueError, r"add up to 5"),
    (lambda: mv.ones(5).split(0), ValueError, "must be positive"),
    (lambda: mv.ones(2, dtype=np.int64).add(1, alpha=2.5), TypeError, "must not be a floating point number"),
    (lambda: mv.ones(2, dtype=np.int64).sub(mv.ones(2, dtype=np.int32), alpha=1.0), TypeError, "floating point"),
    (lambda: mv.ones(2).add(mv.ones(2), alpha=True), TypeError, "bool alpha"),
    (lambda: mv.ones(2).add(mv.ones(2), alpha="2"), TypeError, "alpha must be a number"),
], ids=["t-3d", "mT-1d", "expand-leading-minus-1", "expand-mismatch", "expand-too-few", "flatten-order", "split-sum",
        "split-0", "alpha-float-int", "alpha-float-int-sub", "alpha-bool", "alpha-str"])
def test_torch_s_refusals(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_alpha_follows_torch_on_integer_and_bool_operands():
    torch = torch_or_skip()
    a = np.array([1, 2, 3], np.int64)
    for ours, theirs in ((mv.tensor(a).add(mv.tensor(a), alpha=3), torch.tensor(a).add(torch.tensor(a), alpha=3)),
                         (mv.tensor(a).sub(2, alpha=-2), torch.tensor(a).sub(2, alpha=-2)),
                         (mv.tensor(a).add(mv.ones(3), alpha=2.5), torch.tensor(a).add(torch.ones(3), alpha=2.5))):
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_array_equal(ours.data, theirs.numpy())
    b = np.array([True, False, False])
    c = np.array([False, False, True])
    for alpha in (True, False, 2, 0):
        ours, theirs = mv.tensor(b).add(mv.tensor(c), alpha=alpha), torch.tensor(b).add(torch.tensor(c), alpha=alpha)
        assert ours.dtype == np.bool_
        np.testing.assert_array_equal(ours.data, theirs.numpy())


def test_new_tensors_take_this_tensor_s_dtype_and_device():
    torch = torch_or_skip()
    x, xt = mv.ones(2, dtype=np.float64), torch.ones(2, dtype=torch.float64)
    pairs = [(x.new_zeros(2, 3), xt.new_zeros(2, 3)), (x.new_zeros((2, 3)), xt.new_zeros((2, 3))),
             (x.new_ones(3, dtype=np.int32), xt.new_ones(3, dtype=torch.int32)), (x.new_full((2,), 3), xt.new_full((2,), 3)),
             (mv.ones(1, dtype=np.int16).new_full((2, 2), 7), torch.ones(1, dtype=torch.int16).new_full((2, 2), 7))]
    for ours, theirs in pairs:
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.") and ours.device == "cpu"
        np.testing.assert_array_equal(ours.data, theirs.numpy())
    e = x.new_empty(4, 5, requires_grad=True)
    assert e.shape == (4, 5) and e.dtype == np.float64 and e.requires_grad and e.is_leaf
    with pytest.raises(TypeError, match="only floating tensors can require gradients"):
        mv.ones(2, dtype=np.int64).new_zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="cannot be converted to int8"):
        mv.ones(1, dtype=np.int8).new_full((2,), 1e10)


def test_new_tensors_are_made_on_this_tensor_s_device():
    """On the (emulated) GPU: the device's own constructors, nothing uploaded from the host."""
    with emulating():
        x = mv.tensor(np.ones(2, np.float32), device="cuda")
        with record(UPLOADS) as uploads:
            made = [x.new_zeros(2, 3), x.new_ones(3), x.new_full((2,), 2.5), x.new_empty(4),
                    x.new_zeros(1, device="cpu")]
        assert uploads == []
        assert [m.device for m in made] == ["cuda"] * 4 + ["cpu"]
        assert all(m.dtype == np.float32 for m in made)
        np.testing.assert_array_equal(made[2].numpy(), [2.5, 2.5])


# ---- bool operands of subtraction and negation ------------------------------------------------------------------
B = np.array([True, False, True])
SUBTRACTIONS = {
    "bool-int": lambda b, f: b - 1, "int-bool": lambda b, f: 1 - b, "bool-float": lambda b, f: b - 1.5,
    "float-bool": lambda b, f: 1.5 - b, "bool-tensor": lambda b, f: b - f, "tensor-bool": lambda b, f: f - b,
    "tensor-True": lambda b, f: f - True, "True-tensor": lambda b, f: True - f, "method": lambda b, f: b.sub(1),
    "function": lambda b, f: (ops.sub if isinstance(b, mv.Tensor) else type(b).sub)(f, b), "alpha": lambda b, f: f.sub(b, alpha=2),
    "int-tensor-True": lambda b, f: f.long() - True,
}


@pytest.mark.parametrize("name", sorted(SUBTRACTIONS))
def test_a_bool_in_a_subtraction_is_refused_as_torch(name):
    """NumPy computed bool − 1 as int64 [0, −1, 0], 1.5 − bool as floats, float − True as float − 1, and refused only
    bool − bool (with its own message); PyTorch refuses a bool anywhere in a subtraction."""
    sub = SUBTRACTIONS[name]
    with pytest.raises(TypeError, match=re.escape("Subtraction, the `-` operator, with a bool tensor is not supported")):
        sub(mv.tensor(B), mv.ones(3))
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match=re.escape("Subtraction, the `-` operator, with a bool tensor is not supported")):
        sub(torch.tensor(B), torch.ones(3))


def test_two_bools_and_the_negation_of_a_bool_are_refused_as_torch():
    for call in (lambda b: b - b, lambda b: b.sub(b), lambda b: ops.sub(B, b)):
        with pytest.raises(TypeError, match=re.escape("with two bool tensors is not supported (as in PyTorch); use `^`")):
            call(mv.tensor(B))
    for call in (lambda b: -b, lambda b: b.neg(), lambda b: ops.neg(b)):
        with pytest.raises(TypeError, match=re.escape("Negation, the `-` operator, on a bool tensor is not supported")):
            call(mv.tensor(B))
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="with two bool tensors is not supported"):
        torch.tensor(B) - torch.tensor(B)
    with pytest.raises(RuntimeError, match="Negation, the `-` operator, on a bool tensor is not supported"):
        -torch.tensor(B)


def test_in_place_subtraction_of_a_bool_is_refused():
    """x −= True on a leaf went to NumPy's in-place subtraction, which took True as 1."""
    x = mv.ones(3)
    with pytest.raises(TypeError, match="with a bool tensor is not supported"):
        x -= True
    with pytest.raises(TypeError, match="with a bool tensor is not supported"):
        x -= mv.tensor(B)
    assert (x.data == 1).all() and x._version == 0
    x -= 1
    assert (x.data == 0).all()


def test_masks_are_inverted_and_combined_with_torch_s_operators():
    """The bool refusals' advice: ``~`` and logical_not, ``&``, ``|``, ``^`` (bitwise on integers, as torch's)."""
    c = np.array([False, False, True])
    b = mv.tensor(B)
    for got, want in ((~b, ~B), (b.logical_not(), ~B), (b & mv.tensor(c), B & c), (b | c, B | c), (b ^ mv.tensor(c), B ^ c),
                      (True & b, B), (False | b, B), (True ^ b, ~B), (~mv.tensor(np.array([5], np.int32)), [-6])):
        np.testing.assert_array_equal(got.data, want)
    assert (~b).dtype == np.bool_ and not (~b).requires_grad
    with emulating():
        on_device = mv.tensor(B, device="cuda")
        assert (~on_device).device == (on_device & True).device == "cuda"
        np.testing.assert_array_equal((on_device ^ mv.tensor(c, device="cuda")).numpy(), B ^ c)
