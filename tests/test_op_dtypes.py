"""Every registered op (minivae.ops.OPS, through its public function) on bool, uint8, int32, int64, float16, float32 and
float64 tensors, against PyTorch's same operation: the result's dtype, and for floating inputs the values and the
gradients (their dtypes and values). PyTorch's promotion is the spec; where PyTorch refuses an input dtype, minivae's
documented rule is checked instead (DIFFERENT, each case named with its reason: README's "Different on purpose").
Then every op of several tensor inputs on pairs of dtypes: the result dtype by PyTorch's promotion rule (integers made
float32 where the values are real), the values against PyTorch's formula evaluated in float64 (PyTorch's own mixed
results take some steps in the narrower dtype: its kl_divergence of float16 logits beside a float32 prior is 5·10⁻³ off).
"""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae.random import Generator

torch = pytest.importorskip("torch")
TF = torch.nn.functional
Categorical, kl_divergence = torch.distributions.Categorical, torch.distributions.kl_divergence

DTYPES = [np.bool_, np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64]
TORCH = {np.dtype(d): getattr(torch, np.dtype(d).name if d != np.bool_ else "bool") for d in DTYPES}
SHAPE = (2, 3)
# values and gradients: a few ulps of the result's dtype (float16 formulas of several steps round at each)
TOL = {np.dtype(np.float16): 4e-3, np.dtype(np.float32): 4e-6, np.dtype(np.float64): 1e-12}


def data(dtype, shape=SHAPE, seed=0):
    """Values every op takes: integers 0 … 3, bools, or floats in (0.05, 0.95) (inside log's, sqrt's, erfinv's and
    erfcinv's domains)."""
    rng = np.random.default_rng(seed)
    if np.dtype(dtype) == bool:
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 4, shape).astype(dtype)
    return rng.uniform(0.05, 0.95, shape).astype(dtype)


def real(dtype):
    """The dtype of a real-valued result of ``dtype`` data: float32 for integers and bools (minivae's rule)."""
    return np.dtype(dtype) if np.dtype(dtype).kind == "f" else np.dtype(np.float32)


def torch_dtype_name(t):
    return str(t.dtype).removeprefix("torch.")


def gumbels(t):
    """The noise ops.gumbel_softmax(logits, Generator(7)) adds: Generator(7)'s Gumbel draw in the logits' real dtype."""
    dtype = np.dtype(torch_dtype_name(t)) if t.dtype != torch.bool else np.dtype(bool)
    return torch.tensor(Generator(7).gumbel(tuple(t.shape), real(dtype))).to(t.dtype if t.is_floating_point() else None)


def normals(t):
    """The noise ops.reparameterize_kl(μ, v, rng=Generator(7)) draws: Generator(7)'s normals in the result dtype."""
    return torch.tensor(Generator(7).normal(tuple(t.shape), real(np.dtype(torch_dtype_name(t)))))


def dropped(t, p=0.4):
    """t·m/(1 − p) with the mask ops.dropout(t, Generator(7), p) draws: Generator(7)'s float32 uniforms ≥ p."""
    keep = torch.tensor(Generator(7).uniform(tuple(t.shape), np.float32) >= np.float32(p))
    return t * keep.to(t.dtype) * (1 / (1 - p))


def torch_kl(l, lp):
    return kl_divergence(Categorical(logits=l), Categorical(logits=lp))


def logistic(t):
    """The noise ops.binary_concrete_kl(logits, prior, Generator(7)) adds: L = log u − log1p(−u) of Generator(7)'s
    uniforms in the logits' real dtype, computed in that dtype (as RelaxedBernoulli.rsample's)."""
    dtype = np.dtype(torch_dtype_name(t)) if t.dtype != torch.bool else np.dtype(bool)
    u = Generator(7).uniform(tuple(t.shape), real(dtype))
    return torch.tensor(np.log(u) - np.log1p(-u))


def bernoulli_kl(l, lp):
    return kl_divergence(torch.distributions.Bernoulli(logits=l), torch.distributions.Bernoulli(logits=lp))


def gaussian_kl(mu, v):
    return 0.5 * (mu * mu + torch.exp(v) - 1 - v)


class TorchDigamma(torch.autograd.Function):
    """torch.digamma with the gradient ψ⁽¹⁾(x) = ζ(2, x) (torch.special.zeta, in float64): torch's own, its trigamma,
    is a short asymptotic series ~10⁻⁹ off in float64."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.digamma(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.special.zeta(torch.tensor(2.0, dtype=torch.float64), x.double()).to(x.dtype)


class TorchGammainc(torch.autograd.Function):
    """torch.special.gammainc with a gradient in α too (torch's raises): ∂P/∂α by mpmath (30 digits, numerical
    differentiation of its regularized incomplete gamma function), x̄ the density x^{α−1}e^{−x}/Γ(α)."""

    @staticmethod
    def forward(ctx, a, x):
        ctx.save_for_backward(a, x)
        return torch.special.gammainc(a, x)

    @staticmethod
    def backward(ctx, g):
        import mpmath

        a, x = ctx.saved_tensors
        mpmath.mp.dps = 30
        a64, x64 = torch.broadcast_tensors(a.double(), x.double())
        da = torch.tensor([float(mpmath.diff(lambda s, xi=xi: mpmath.gammainc(s, 0, xi, regularized=True), ai))
                           for ai, xi in zip(a64.flatten().tolist(), x64.flatten().tolist())], dtype=torch.float64)
        density = torch.exp(torch.xlogy(a64 - 1, x64) - x64 - torch.lgamma(a64))
        return (g.double() * da.reshape(a64.shape)).to(a.dtype), (g.double() * density).to(x.dtype)


def one(n=1):
    return lambda d: [data(d, seed=k) for k in range(1, n + 1)]


def shaped(*shapes):
    return lambda d: [data(d, s, seed=k) for k, s in enumerate(shapes, 1)]


def unary(n):
    return one(), lambda a: getattr(ops, n)(a[0]), lambda t: getattr(torch, n)(t[0])


def binary(n):
    return one(2), lambda a: getattr(ops, n)(a[0], a[1]), lambda t: getattr(torch, n)(t[0], t[1])


def reduction(n):
    return one(), lambda a: getattr(ops, n)(a[0], axis=1), lambda t: getattr(torch, n)(t[0], dim=1)


def in_float64(formula):
    """torch's ``formula`` of the inputs in float64, rounded to their dtype (integers and bools: float32), as the
    saddle-point pieces compute (minivae/ops/saddle.py)."""
    def run(t):
        dtype = t[0].dtype if t[0].is_floating_point() else torch.float32
        return formula(*[v.double() for v in t]).to(dtype)
    return run


def positive(n):
    """``one(n)``'s data plus 1 (bools True), none 0 when cast to integers: bd0(x, 0) is ∞ with the gradient −∞ in the
    mean, where torch's formula gives NaN."""
    return lambda d: [np.ones(SHAPE, bool) if a.dtype == bool else a + 1 for a in one(n)(d)]


def torch_stirlerr(x):
    return torch.lgamma(x + 1) - (x + 0.5) * torch.log(x) + x - 0.5 * math.log(2 * math.pi)


def torch_bd0(x, m, c):
    mean = c * m
    return torch.where(x == 0, mean, torch.xlogy(x, x / mean) + mean - x)


INDEX = np.array([[0, 2, 2], [1, 1, 0]])  # take_along_axis's, along axis 1 (2 repeats)

# name: (inputs(dtype) → arrays, ours(tensors) → tensor or tuple, theirs(torch tensors) → tensor or tuple)
ROWS = {
    **{n: unary(n) for n in ["abs", "neg", "relu", "exp", "expm1", "log", "log1p", "sqrt", "tanh", "sin", "cos",
                             "sigmoid", "erf", "erfc", "erfinv", "lgamma"]},
    "digamma": (one(), lambda a: ops.digamma(a[0]), lambda t: TorchDigamma.apply(t[0])),
    "polygamma": (one(), lambda a: ops.polygamma(2, a[0]), lambda t: torch.polygamma(2, t[0])),
    "gammainc": (one(2), lambda a: ops.gammainc(*a), lambda t: TorchGammainc.apply(*t)),
    "stirlerr": (one(), lambda a: ops.stirlerr(a[0]), in_float64(torch_stirlerr)),
    "bd0": (positive(3), lambda a: ops.bd0(*a), in_float64(torch_bd0)),
    # a Gamma(α, 1) draw given, returned in the promoted dtype (real: float32 of integers); its implicit gradient
    # (a surrogate: not the derivative of y = z) is tested in tests/test_ops_gamma.py
    "standard_gamma": (one(2), lambda a: ops.standard_gamma(*a),
                       lambda t: (t[1] + 0 * t[0]).to(t[1].dtype if t[1].is_floating_point() else torch.float32)),
    "clone": (one(), lambda a: ops.clone(a[0]), lambda t: t[0].clone()),
    "softplus": (one(), lambda a: ops.softplus(a[0]), lambda t: TF.softplus(t[0])),
    **{n: (one(), lambda a, n=n: getattr(ops, n)(a[0]), lambda t, n=n: getattr(TF, n)(t[0]))
       for n in ["leaky_relu", "elu", "gelu", "silu"]},
    "binary_cross_entropy": (lambda d: [np.minimum(data(d, seed=k), 1).astype(d) for k in (1, 2)],  # (probabilities)
                             lambda a: ops.binary_cross_entropy(*a),
                             lambda t: TF.binary_cross_entropy(*t, reduction="none")),
    # torch has no erfcinv: erfcinv(x) = erfinv(1 − x), taken in float64 (1 − x exact for a float16 or float32 x)
    "erfcinv": (one(), lambda a: ops.erfcinv(a[0]),
                lambda t: torch.erfinv(1 - t[0].double()).to(t[0].dtype if t[0].is_floating_point() else torch.float32)),
    **{n: binary(n) for n in ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]},
    "where": (lambda d: [data(bool, seed=9), data(d, seed=1), data(d, seed=2)], lambda a: ops.where(*a),
              lambda t: torch.where(*t)),
    "clip": (one(3), lambda a: ops.clip(*a), lambda t: torch.clamp(*t)),
    "cast": (one(), lambda a: ops.cast(a[0], dtype=np.dtype(np.float32)), lambda t: t[0].to(torch.float32)),
    **{n: reduction(n) for n in ["sum", "mean", "var", "std", "logsumexp", "softmax", "log_softmax"]},
    "max": (one(), lambda a: ops.max(a[0], axis=1), lambda t: torch.amax(t[0], dim=1)),
    "min": (one(), lambda a: ops.min(a[0], axis=1), lambda t: torch.amin(t[0], dim=1)),
    "matmul": (shaped((2, 3), (3, 4)), lambda a: ops.matmul(*a), lambda t: torch.matmul(*t)),
    "linear": (shaped((2, 3), (3, 4), (4,)), lambda a: ops.linear(*a), lambda t: t[0] @ t[1] + t[2]),
    "reshape": (one(), lambda a: ops.reshape(a[0], (3, 2)), lambda t: t[0].reshape(3, 2)),
    "transpose": (one(), lambda a: ops.transpose(a[0]), lambda t: t[0].T),
    "getitem": (one(), lambda a: a[0][:, [0, 2, 2]], lambda t: t[0][:, [0, 2, 2]]),
    "concatenate": (one(2), lambda a: ops.concatenate(a, axis=1), lambda t: torch.cat(t, dim=1)),
    "stack": (one(2), lambda a: ops.stack(a, axis=1), lambda t: torch.stack(t, dim=1)),
    "broadcast_to": (shaped((3,)), lambda a: ops.broadcast_to(a[0], SHAPE), lambda t: t[0].broadcast_to(SHAPE)),
    "split": (shaped((4, 3)), lambda a: tuple(ops.split(a[0], [1])), lambda t: tuple(torch.split(t[0], [1, 3]))),
    "straight_through": (one(), lambda a: ops.straight_through(a[0]),
                         lambda t: TF.one_hot(t[0].argmax(-1), 3).to(t[0].dtype)),
    "gumbel_softmax": (one(), lambda a: ops.gumbel_softmax(a[0], Generator(7)),
                       lambda t: torch.softmax(t[0] + gumbels(t[0]), -1)),
    "categorical_kl": (one(2), lambda a: ops.categorical_kl(*a), lambda t: torch_kl(*t)),
    "gumbel_softmax_kl": (one(2), lambda a: tuple(ops.gumbel_softmax_kl(a[0], a[1], Generator(7))),
                          lambda t: (torch.softmax(t[0] + gumbels(t[0]), -1), torch_kl(*t))),
    "binary_concrete_kl": (one(2), lambda a: tuple(ops.binary_concrete_kl(a[0], a[1], Generator(7))),
                           lambda t: (torch.sigmoid(t[0] + logistic(t[0])), bernoulli_kl(*t))),
    "dropout": (one(), lambda a: ops.dropout(a[0], Generator(7), p=0.4), lambda t: dropped(t[0])),
    # torch refuses a pos_weight that requires grad: its formula, (1 − t)·x + (1 + (p − 1)·t)·softplus(−x)
    "bce_with_logits_pos_weight": (one(3), lambda a: ops.bce_with_logits_pos_weight(*a),
                                   lambda t: (1 - t[1]) * t[0] + (1 + (t[2] - 1) * t[1]) * TF.softplus(-t[0])),
    "bce_with_logits": (one(2), lambda a: ops.bce_with_logits(*a),
                        lambda t: TF.binary_cross_entropy_with_logits(*t, reduction="none")),
    "bernoulli_log_prob": (one(2), lambda a: ops.bernoulli_log_prob(*a),
                           lambda t: -TF.binary_cross_entropy_with_logits(*t, reduction="none")),
    "kl_standard_normal": (one(2), lambda a: ops.kl_standard_normal(*a), lambda t: gaussian_kl(*t)),
    "reparameterize": (one(3), lambda a: ops.reparameterize(*a), lambda t: t[0] + torch.exp(0.5 * t[1]) * t[2]),
    "reparameterize_kl": (one(3), lambda a: tuple(ops.reparameterize_kl(*a)),
                          lambda t: (t[0] + torch.exp(0.5 * t[1]) * t[2], gaussian_kl(t[0], t[1]))),
    "normal_reparameterize_kl": (one(2), lambda a: tuple(ops.reparameterize_kl(*a, rng=Generator(7))),
                                 lambda t: (t[0] + torch.exp(0.5 * t[1]) * normals(t[0] + t[1]), gaussian_kl(*t))),
    "negative_elbo": (one(2), lambda a: ops.negative_elbo(*a), lambda t: (t[1].sum(-1) - t[0].sum(-1)).mean()),
    "bernoulli_negative_elbo": (one(3), lambda a: ops.bernoulli_negative_elbo(*a),
                                lambda t: (t[2].sum(-1) + TF.binary_cross_entropy_with_logits(t[0], t[1], reduction="none")
                                           .sum(-1)).mean()),
    # minivae.ops.more_reduce, more_shape and rounding
    **{n: reduction(n) for n in ["prod", "cumsum", "cumprod"]},
    "norm": (one(), lambda a: ops.norm(a[0], axis=1), lambda t: torch.linalg.vector_norm(t[0], dim=1)),
    "flip": (one(), lambda a: ops.flip(a[0], 1), lambda t: torch.flip(t[0], (1,))),
    "roll": (one(), lambda a: ops.roll(a[0], 1, 1), lambda t: torch.roll(t[0], 1, 1)),
    "tile": (one(), lambda a: ops.tile(a[0], (2, 1)), lambda t: torch.tile(t[0], (2, 1))),
    "tril": (one(), lambda a: ops.tril(a[0], 1), lambda t: torch.tril(t[0], 1)),
    "triu": (one(), lambda a: ops.triu(a[0], -1), lambda t: torch.triu(t[0], -1)),
    "diagonal": (one(), lambda a: ops.diagonal(a[0], 1), lambda t: torch.diagonal(t[0], 1)),
    "take_along_axis": (one(), lambda a: ops.take_along_axis(a[0], INDEX, 1),
                        lambda t: torch.take_along_dim(t[0], torch.tensor(INDEX), 1)),
    "take": (one(), lambda a: ops.take(a[0], [2, 0, 2], axis=1),
             lambda t: torch.index_select(t[0], 1, torch.tensor([2, 0, 2]))),
    **{n: unary(n) for n in ["sign", "floor", "ceil", "round", "trunc"]},
    "sort": (one(), lambda a: ops.sort(a[0], 1, descending=True).values,
             lambda t: torch.sort(t[0], dim=1, descending=True, stable=True).values),
    "einsum": (shaped((2, 3), (4, 3)), lambda a: ops.einsum("ij,kj->ik", *a), lambda t: torch.einsum("ij,kj->ik", *t)),
    # minivae.ops.conv
    "conv2d": (shaped((2, 2, 4, 5), (3, 2, 2, 3), (3,)), lambda a: ops.conv2d(*a, stride=(1, 2), padding=1),
               lambda t: TF.conv2d(*t, stride=(1, 2), padding=1)),
    "conv_transpose2d": (shaped((2, 2, 3, 4), (2, 3, 2, 3), (3,)),
                         lambda a: ops.conv_transpose2d(*a, stride=2, padding=1, output_padding=1),
                         lambda t: TF.conv_transpose2d(*t, stride=2, padding=1, output_padding=1)),
    "pad": (one(), lambda a: ops.pad(a[0], (1, -1, 2, 0), 1), lambda t: TF.pad(t[0], (1, -1, 2, 0), value=1)),
    "upsample_nearest": (shaped((2, 2, 3, 4)), lambda a: ops.upsample_nearest(a[0], scale_factor=(2, 3)),
                         lambda t: TF.interpolate(t[0], scale_factor=(2, 3))),
}
# minivae.ops.cholesky: a positive-definite matrix of integers (exact in every dtype; the identity of bools); a triangle
# with 2 + (0, 1) on the diagonal
SPD = np.array([[4, 1, 2], [1, 5, 0], [2, 0, 6]])
ROWS.update({
    "cholesky": (lambda d: [(np.eye(3) if np.dtype(d) == bool else SPD).astype(d)], lambda a: ops.cholesky(a[0]),
                 lambda t: torch.linalg.cholesky(t[0])),
    "solve_triangular": (lambda d: [(data(d, (3, 3), seed=1) + 2 * np.eye(3)).astype(d), data(d, (3, 2), seed=2)],
                         lambda a: ops.solve_triangular(*a, upper=False),
                         lambda t: torch.linalg.solve_triangular(*t, upper=False)),
})

def torch_hardsigmoid(t):
    """F.hardsigmoid (its refusals of integers too) with the gradient 1/6 on (−3, 3) in t's dtype: torch's float64
    gradient is float32's 1/6 (0.1666666716…, 3·10⁻⁸ off)."""
    y = TF.hardsigmoid(t)
    return y.detach() + (t - t.detach()) * ((t > -3) & (t < 3)).to(t.dtype) / 6


# minivae.ops.elementwise (helper-62); acosh of data in (0.05, 0.95) is NaN, as torch's (equal_nan)
ROWS.update({
    "hardsigmoid": (one(), lambda a: ops.hardsigmoid(a[0]), lambda t: torch_hardsigmoid(t[0])),
    **{n: unary(n) for n in ["tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "log2", "log10",
                             "exp2", "rsqrt", "reciprocal", "square", "logit"]},
    **{n: binary(n) for n in ["atan2", "hypot", "logaddexp", "xlogy"]},
    "log_sigmoid": (one(), lambda a: ops.log_sigmoid(a[0]), lambda t: TF.logsigmoid(t[0])),
    **{n: (one(), lambda a, n=n: getattr(ops, n)(a[0]), lambda t, n=n: getattr(TF, n)(t[0]))
       for n in ["softsign", "hardtanh", "celu", "mish", "hardswish"]},
})

_INTEGERS = [np.bool_, np.uint8, np.int32, np.int64]
# Where PyTorch refuses the input dtype: minivae's result dtype(s), or the error it raises, and why.
DIFFERENT = {
    # real-valued results of integers are float32 (README: mean, var, std, logsumexp; the same rule here)
    **{(n, np.dtype(d)): "float32" for d in _INTEGERS
       for n in ["softplus", "mean", "var", "std", "softmax", "log_softmax", "bce_with_logits", "bernoulli_log_prob",
                 "negative_elbo", "bernoulli_negative_elbo", "leaky_relu", "elu", "gelu", "silu",
                 "binary_cross_entropy", "bce_with_logits_pos_weight"]},
    **{(n, np.dtype(bool)): "float32" for n in ["categorical_kl", "kl_standard_normal"]},
    # torch's Bernoulli KL takes softplus of integer logits, which it has no kernel for: float32, as above
    **{("binary_concrete_kl", np.dtype(d)): ("float32", "float32") for d in _INTEGERS if d != np.bool_},
    **{(n, np.dtype(bool)): ("float32", "float32") for n in ["gumbel_softmax_kl", "binary_concrete_kl", "reparameterize_kl",
                                                             "normal_reparameterize_kl"]},
    # NumPy's bool results where PyTorch implements no bool kernel: |x| = x, max(x, False) = x, clamp, the logical
    # matrix product (or of ands), the one-hot of a bool argmax
    **{(n, np.dtype(bool)): "bool" for n in ["abs", "relu", "clip", "matmul", "linear", "straight_through",
                                                                     "einsum"]},
    # torch has no integer kernel of the incomplete gamma function: float32, as for the other real-valued results
    **{("gammainc", np.dtype(d)): "float32" for d in _INTEGERS},
    # convolutions of bools: NumPy's logical product (as matmul's); transposed ones of uint8 and int32 in those
    # integers, as torch's int64 one and its conv2d of every integer dtype (torch implements no kernel for them)
    **{(n, np.dtype(bool)): "bool" for n in ["conv2d", "conv_transpose2d"]},
    **{("conv_transpose2d", np.dtype(d)): np.dtype(d).name for d in (np.uint8, np.int32)},
    # nearest upsampling copies its input in its dtype (torch implements it for uint8 and floats only)
    **{("upsample_nearest", np.dtype(d)): np.dtype(d).name for d in (np.bool_, np.int32, np.int64)},
    # vector norms of integers are float32 (``real``, as mean's)
    **{("norm", np.dtype(d)): "float32" for d in _INTEGERS},
    # refused by both (NumPy's error for −x and x − y of bools; pow's own: NumPy's would be int8)
    **{(n, np.dtype(bool)): TypeError for n in ["neg", "sub", "pow", "floor", "ceil", "round", "trunc"]},
}
# minivae.ops.elementwise (helper-62): real-valued results of integers and bools are float32, where torch implements
# no kernel; hardtanh of uint8 clamps to [0, 1] in uint8 (torch refuses a bound of −1 there)
DIFFERENT.update({
    **{(n, np.dtype(d)): "float32" for d in _INTEGERS
       for n in ["log_sigmoid", "celu", "mish", "hardsigmoid", "hardswish", "hypot", "logaddexp"]},
    ("softsign", np.dtype(bool)): "float32", ("hardtanh", np.dtype(bool)): "float32",
    ("hardtanh", np.dtype(np.uint8)): "uint8",
})
# torch.linalg refuses integers and bools (real-valued results: float32 here) and, on the CPU, float16 (solved in float16
# here; NumPy's LAPACK has no float16 Cholesky factorisation, refused as torch's)
DIFFERENT.update({**{(n, np.dtype(d)): "float32" for d in _INTEGERS for n in ["cholesky", "solve_triangular"]},
                  ("solve_triangular", np.dtype(np.float16)): "float16", ("cholesky", np.dtype(np.float16)): TypeError})


def _dtypes(result):
    out = result if isinstance(result, tuple) else (result,)
    return tuple(torch_dtype_name(r) if isinstance(r, torch.Tensor) else str(r.dtype) for r in out)


def test_every_registered_op_has_a_row():
    assert set(mv.OPS) - set(ROWS) == set(), "ops with no row in tests/test_op_dtypes.py's ROWS"
    assert set(ROWS) - set(mv.OPS) == set(), "rows for ops that are not registered"


def _close(ours, theirs, dtype, what):
    got, want = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    tol = TOL.get(np.dtype(dtype), 0)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True, err_msg=what)


def _each(check, name, cases):
    """check(name, *case) for every case (one test per op, not per case: 660 tests took four times as long), a failure
    naming its case."""
    for case in cases:
        try:
            check(name, *case)
        except AssertionError as e:
            raise AssertionError(f"{name} at {[np.dtype(d).name for d in case]}: {e}") from e


@pytest.mark.parametrize("name", sorted(ROWS))
def test_op_dtypes_values_and_gradients_match_torch(name):
    """The op of same-dtype inputs: PyTorch's result dtype(s) and values, and for floating inputs the gradient of
    every input that gets one (dtype and values, ḡ fixed); or, where PyTorch refuses the dtype, DIFFERENT's entry.
    Found by this sweep: integer inputs of kl_standard_normal, reparameterize and the pair were float64 (uint8's
    float16), torch's float32; normal_reparameterize_kl refused them; bce_with_logits and bernoulli_log_prob of
    integer logits were float64 (uint8: float16) and of bool an error; relu of bool was int64; pow of two bools int8."""
    _each(_same_dtype, name, [(d,) for d in DTYPES])


def _same_dtype(name, dtype):
    inputs, ours, theirs = ROWS[name]
    arrays = inputs(dtype)
    floating = np.dtype(dtype).kind == "f"
    want_grad = [floating and a.dtype.kind == "f" for a in arrays]
    try:
        t_in = [torch.tensor(a, requires_grad=w) for a, w in zip(arrays, want_grad)]
        t_out = theirs(t_in)
    except (RuntimeError, NotImplementedError):  # PyTorch refuses this dtype: minivae's documented rule instead
        expected = DIFFERENT[(name, np.dtype(dtype))]
        if isinstance(expected, type):
            with pytest.raises(expected):
                ours([mv.tensor(a) for a in arrays])
        else:
            assert _dtypes(ours([mv.tensor(a) for a in arrays])) == (expected if isinstance(expected, tuple) else (expected,))
        return
    assert (name, np.dtype(dtype)) not in DIFFERENT, "PyTorch takes this dtype now: drop the DIFFERENT entry"
    m_in = [mv.tensor(a, requires_grad=w) for a, w in zip(arrays, want_grad)]
    m_out = ours(m_in)
    assert _dtypes(m_out) == _dtypes(t_out)
    m_out, t_out = (m_out, t_out) if isinstance(m_out, tuple) else ((m_out,), (t_out,))
    for k, (m, t) in enumerate(zip(m_out, t_out)):
        _close(m.numpy(), t.detach().numpy(), m.dtype, f"{name} output {k}")
    if not floating or name in ops.SURROGATES:
        return
    g = [np.linspace(0.5, 1.5, m.data.size).astype(m.dtype).reshape(m.shape) for m in m_out]
    mv.backward(list(m_out), g)
    torch.autograd.backward(list(t_out), [torch.tensor(gk) for gk in g])
    skip = ops.NONDIFFERENTIABLE_INPUTS[name]
    for i, (m, t) in enumerate(zip(m_in, t_in)):
        if i in skip or not want_grad[i]:
            continue
        assert m.grad.dtype == np.dtype(dtype) == np.dtype(torch_dtype_name(t.grad)), (name, i)
        _close(m.grad, t.grad.numpy(), dtype, f"{name} gradient {i}")


# ---- several tensor inputs of two dtypes --------------------------------------------------------------------------
PAIRS = [(np.float16, np.float32), (np.float32, np.float64), (np.float64, np.float32), (np.int64, np.float16),
         (np.uint8, np.float32), (np.bool_, np.float16), (np.float32, np.int64), (np.float16, np.uint8),
         (np.int32, np.int64), (np.uint8, np.int32), (np.bool_, np.int64)]
MIXED = sorted(n for n, (inputs, _, _) in ROWS.items() if len(inputs(np.float32)) > 1)
REAL = {"div", "binary_cross_entropy", "standard_gamma", "gammainc", "bce_with_logits_pos_weight",
        "categorical_kl", "gumbel_softmax_kl", "binary_concrete_kl", "bce_with_logits", "bernoulli_log_prob",
        "kl_standard_normal", "reparameterize", "reparameterize_kl", "normal_reparameterize_kl", "negative_elbo",
        "bernoulli_negative_elbo"}
REAL |= {"solve_triangular"}
REAL |= {"atan2", "hypot", "logaddexp", "xlogy"}  # (helper-62)
REAL |= {"bd0"}  # (helper-77)


@pytest.mark.parametrize("name", MIXED)
def test_ops_of_two_dtypes_promote_as_torch_and_compute_in_the_result_dtype(name):
    """The first tensor input of one dtype, the others of another (where's mask stays bool): the result dtype is
    PyTorch's promotion of the inputs' (torch.promote_types; float32 for integers where the values are real), and the
    values are PyTorch's formula in float64 of the same inputs, within a few ulps of that dtype: the inputs are cast to
    it before any step; so are the gradients, each in its input's dtype. Found by this sweep: pow's ȳ took log x of a
    float16 x in float16 beside a float32 y (2·10⁻⁵ off); bce_with_logits took softplus of float16 logits in float16
    beside float32 targets (3·10⁻⁴ off), the Gaussian KL μ² of a float16 μ, negative_elbo Σ ll of float16 terms
    beside a float32 KL; negative_elbo and bernoulli_negative_elbo of integer terms beside float32 ones were float64, and
    linear of float32 x and an int64 bias. (torch.matmul refuses two dtypes: NumPy's promotion here; PyTorch's own
    kl_divergence and Gaussian formulas take some steps in the narrower dtype, 5·10⁻³ off in float16.)"""
    _each(_two_dtypes, name, PAIRS)


def _two_dtypes(name, first, rest):
    inputs, ours, theirs = ROWS[name]
    arrays = inputs(first)
    arrays = [arrays[0]] + [a if (name == "where" and i == 0) else a.astype(rest) for i, a in enumerate(arrays[1:])]
    if name == "sub" and np.dtype(bool) in (np.dtype(first), np.dtype(rest)):  # PyTorch refuses a bool in a subtraction
        with pytest.raises(TypeError, match="with a bool tensor is not supported"):
            ours([mv.tensor(a) for a in arrays])
        return
    dtype = np.dtype(torch_dtype_name(torch.empty(0, dtype=torch.promote_types(TORCH[np.dtype(first)],
                                                                                TORCH[np.dtype(rest)]))))
    if name in REAL:
        dtype = real(dtype)
    grad = [a.dtype.kind == "f" and i not in ops.NONDIFFERENTIABLE_INPUTS[name] for i, a in enumerate(arrays)]
    m_in = [mv.tensor(a, requires_grad=w) for a, w in zip(arrays, grad)]
    t_in = [torch.tensor(a if a.dtype == bool and name == "where" else a.astype(np.float64), requires_grad=w)
            for a, w in zip(arrays, grad)]
    got = ours(m_in)
    got = got if isinstance(got, tuple) else (got,)
    want = theirs(t_in)
    want = want if isinstance(want, tuple) else (want,)
    if name == "gumbel_softmax_kl":  # the sample is gumbel_softmax's of the logits alone: its noise in their dtype
        noise = torch.tensor(Generator(7).gumbel(SHAPE, real(first)).astype(np.float64))
        want = (torch.softmax(t_in[0] + noise, -1), want[1])
        assert got[0].dtype == real(first)
    if name == "binary_concrete_kl":  # the sample is RelaxedBernoulli's of the logits alone: its noise in their dtype
        want = (torch.sigmoid(t_in[0] + logistic(t_in[0]).to(torch.float64)), want[1])
        assert got[0].dtype == real(first)
    if name == "normal_reparameterize_kl":  # the noise is drawn in the result dtype
        noise = torch.tensor(Generator(7).normal(SHAPE, dtype).astype(np.float64))
        want = (t_in[0] + torch.exp(0.5 * t_in[1]) * noise, want[1])
    for k, (m, t) in enumerate(zip(got, want)):
        assert m.dtype == dtype or (name in ("gumbel_softmax_kl", "binary_concrete_kl") and k == 0), (name, k, m.dtype, dtype)
        _close(m.numpy(), t.detach().numpy(), m.dtype, f"{name} output {k}")
    if not any(grad) or name in ops.SURROGATES:  # (a surrogate's gradient is not torch's formula's)
        return
    roots = [(m, t) for m, t in zip(got, want) if t.requires_grad]  # (a sample of integer logits has no gradient)
    g = [np.linspace(0.5, 1.5, m.data.size).astype(m.dtype).reshape(m.shape) for m, _ in roots]
    mv.backward([m for m, _ in roots], g)
    torch.autograd.backward([t for _, t in roots], [torch.tensor(gk.astype(np.float64)) for gk in g])
    for i, (m, t) in enumerate(zip(m_in, t_in)):
        if grad[i]:
            assert m.grad.dtype == m.dtype, (name, i)
            _close(m.grad, t.grad.numpy(), m.dtype, f"{name} gradient {i}")
