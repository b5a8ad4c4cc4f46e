"""Every registered op passes gradcheck in float64 over random shapes, axes and values
in its valid domain. An op in OPS without an entry in DOMAINS fails the coverage test."""
import math

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import minivae as mv
from minivae import ops
from minivae.ops._broadcast import normalize_axis
from tests.strategies import away_from_zero, axes, broadcastable, broadcastable_pair, rngs, shapes


def case(fn, *inputs, **tolerances):
    """A gradcheck case: ``fn``, its inputs and any gradcheck keyword the op needs (with the reason)."""
    return fn, list(inputs), tolerances


def binary(fn, low=-2.0, high=2.0):
    @st.composite
    def draw_case(draw):
        sx, sy = draw(broadcastable_pair())
        rng = draw(rngs)
        return case(fn, rng.uniform(low, high, sx), rng.uniform(low, high, sy))
    return draw_case()


def unary(fn, sample):
    """``sample(rng, shape)`` draws values in the op's domain."""
    @st.composite
    def draw_case(draw):
        return case(fn, sample(draw(rngs), draw(shapes(empty=True))))
    return draw_case()


def uniform(low, high):
    return lambda rng, shape: rng.uniform(low, high, shape)


def reduction(fn):
    @st.composite
    def draw_case(draw):
        shape = draw(shapes())
        axis, keepdims = draw(axes(len(shape))), draw(st.booleans())
        return case(lambda x: fn(x, axis=axis, keepdims=keepdims), draw(rngs).normal(size=shape))
    return draw_case()


@st.composite
def div_case(draw):
    sx, sy = draw(broadcastable_pair())
    rng = draw(rngs)
    return case(ops.div, rng.normal(size=sx), away_from_zero(rng, sy, 0.5, 2.0))


@st.composite
def pow_case(draw):
    sx, sy = draw(broadcastable_pair())
    rng = draw(rngs)
    if draw(st.booleans()):  # tensor exponent: both gradients, base kept positive for log x
        return case(ops.pow, rng.uniform(0.5, 2.0, sx), rng.uniform(-2.0, 2.0, sy))
    k = draw(st.sampled_from([2, 3, -1, 0.5]))
    return case(lambda x: x ** k, rng.uniform(0.5, 2.0, sx))


@st.composite
def tie_free_pair(draw, fn):
    sx, sy = draw(broadcastable_pair())
    rng = draw(rngs)
    x, y = rng.normal(size=sx), rng.normal(size=sy)
    assume(np.abs(x - y).min(initial=1.0) > 1e-3)  # off the kink x = y
    return case(fn, x, y)


@st.composite
def where_case(draw):
    sx, sy = draw(broadcastable_pair())
    sc = np.broadcast_shapes(sx, sy)
    rng = draw(rngs)
    cond = rng.random(sc) < 0.5
    return case(lambda x, y: ops.where(cond, x, y), rng.normal(size=sx), rng.normal(size=sy))


@st.composite
def clip_case(draw):
    """Bounds that are numbers (constants), or tensors of shapes broadcasting with x's that get gradients too, either
    absent, lo > hi in places (where every z is hi); all off the kinks x = lo, x = hi and lo = hi."""
    rng = draw(rngs)
    if draw(st.booleans()):
        x = rng.uniform(-1, 1, draw(shapes()))
        assume(np.abs(np.abs(x) - 0.5).min(initial=1.0) > 1e-3)  # off the bounds
        lo, hi = draw(st.sampled_from([(-0.5, 0.5), (None, 0.5), (-0.5, None)]))
        return case(lambda t: ops.clip(t, lo, hi), x)
    sx, slo, shi = draw(broadcastable(3))
    x, lo, hi = rng.uniform(-1, 1, sx), rng.uniform(-1, 0.5, slo), rng.uniform(-0.5, 1, shi)
    assume(min(np.abs(a - b).min(initial=1.0) for a, b in ((x, lo), (x, hi), (lo, hi))) > 1e-3)
    bounds = draw(st.sampled_from(["both", "lo", "hi"]))
    if bounds == "lo":
        return case(lambda t, a: ops.clip(t, a), x, lo)
    if bounds == "hi":
        return case(lambda t, b: ops.clip(t, max=b), x, hi)
    return case(ops.clip, x, lo, hi)


@st.composite
def cast_case(draw):
    x = draw(rngs).normal(size=draw(shapes()))
    # through float32 and back: the values carry float32 rounding (≤ 6e-8 relative), so the error
    # model's value_rtol is float32's and a larger step keeps that rounding small in the quotient
    return case(lambda t: ops.cast(ops.cast(t, dtype=np.float32), dtype=np.float64), x, eps=1e-3, value_rtol=1e-7)


@st.composite
def extreme_case(draw, fn):
    shape = draw(shapes())
    axis, keepdims = draw(axes(len(shape))), draw(st.booleans())
    x = draw(rngs).permutation(np.arange(int(np.prod(shape))) * 0.1).reshape(shape)  # no ties
    return case(lambda t: fn(t, axis=axis, keepdims=keepdims), x + 0.01)


@st.composite
def var_case(draw, fn=ops.var):
    shape = draw(shapes(1, 3))
    axis, keepdims = draw(axes(len(shape))), draw(st.booleans())
    n = int(np.prod([shape[a] for a in normalize_axis(axis, len(shape))]))
    assume(n > 1)  # n − correction > 0, and the std's √ is smooth (var > 0)
    correction = draw(st.sampled_from([0, 1]))
    return case(lambda t: fn(t, axis=axis, keepdims=keepdims, correction=correction), draw(rngs).normal(size=shape))


MATMUL_SHAPES = [  # (m, k, n, b) filled in by the strategy
    lambda m, k, n, b: ((k,), (k,)), lambda m, k, n, b: ((k,), (k, n)),
    lambda m, k, n, b: ((m, k), (k,)), lambda m, k, n, b: ((m, k), (k, n)),
    lambda m, k, n, b: ((b, m, k), (k, n)), lambda m, k, n, b: ((1, m, k), (b, k, n)),
    lambda m, k, n, b: ((b, 1, m, k), (3, k, n)), lambda m, k, n, b: ((k,), (b, k, n)),
    lambda m, k, n, b: ((b, m, k), (k,))]


@st.composite
def matmul_case(draw, pattern=None):
    pattern = pattern or draw(st.sampled_from(MATMUL_SHAPES))
    sx, sy = pattern(*(draw(st.integers(1, 4)) for _ in range(4)))
    rng = draw(rngs)
    return case(ops.matmul, rng.normal(size=sx), rng.normal(size=sy))


@st.composite
def linear_case(draw):
    """x of shape (in,), (m, in) or (b, m, in); with ReLU, no pre-activation within 1e-3 of the kink."""
    m, k, n, b = (draw(st.integers(1, 4)) for _ in range(4))
    sx = draw(st.sampled_from([(k,), (m, k), (b, m, k)]))
    rng = draw(rngs)
    x, w, bias = rng.normal(size=sx), rng.normal(size=(k, n)), rng.normal(size=n)
    activation = draw(st.sampled_from([None, "relu"]))
    if activation == "relu":
        assume(np.abs(x @ w + bias).min() > 1e-3)
    return case(lambda *t: ops.linear(*t, activation=activation), x, w, bias)


@st.composite
def reshape_case(draw):
    shape = draw(shapes())
    target = draw(st.sampled_from([(-1,), tuple(reversed(shape)), (1,) + shape + (1,)]))
    return case(lambda t: ops.reshape(t, target), draw(rngs).normal(size=shape))


@st.composite
def transpose_case(draw):
    shape = draw(shapes())
    perm = draw(st.permutations(range(len(shape)))) if shape else []
    axes_ = draw(st.sampled_from([None, tuple(perm)]))
    return case(lambda t: ops.transpose(t, axes_), draw(rngs).normal(size=shape))


@st.composite
def getitem_case(draw):
    """Every kind of index in each example, so none is left to chance."""
    shape = draw(shapes(1, 3))
    rng = draw(rngs)
    n = shape[0]
    indices = [slice(None, None, 2), slice(-1, None), 0, -1, (Ellipsis, 0), (None, slice(None)),
               rng.integers(0, n, size=n + 2),   # more indices than rows: some repeat and must accumulate
               rng.random(shape) < 0.5]          # boolean mask
    return case(lambda t: ops.concatenate([ops.reshape(ops.getitem(t, i), -1) for i in indices]),
                rng.normal(size=shape))


@st.composite
def split_case(draw):
    """Cut points anywhere (empty pieces too), along any axis (maybe empty); some pieces unused, so their gradient is
    None."""
    shape = draw(shapes(1, 3, empty=True))
    axis = draw(st.integers(0, len(shape) - 1))
    cuts = sorted(draw(st.lists(st.integers(0, shape[axis]), max_size=3)))
    used = draw(st.lists(st.booleans(), min_size=len(cuts) + 1, max_size=len(cuts) + 1).filter(any))

    def f(t):
        pieces = ops.split(t, cuts, axis=axis)
        return ops.concatenate([ops.reshape(p, (-1,)) * (k + 1) for k, (p, u) in enumerate(zip(pieces, used)) if u])
    return case(f, draw(rngs).normal(size=shape))


@st.composite
def concatenate_case(draw):
    shape = draw(shapes(1, 3))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    rng = draw(rngs)
    pieces = []
    for _ in range(draw(st.integers(1, 3))):
        s = list(shape)
        s[axis] = draw(st.integers(1, 3))
        pieces.append(rng.normal(size=s))
    return case(lambda *ts: ops.concatenate(ts, axis=axis), *pieces)


@st.composite
def stack_case(draw):
    shape = draw(shapes())
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    rng = draw(rngs)
    pieces = [rng.normal(size=shape) for _ in range(draw(st.integers(1, 3)))]
    return case(lambda *ts: ops.stack(ts, axis=axis), *pieces)


@st.composite
def broadcast_to_case(draw):
    small, _ = draw(broadcastable_pair(empty=False))
    target = (draw(st.integers(1, 3)),) + tuple(max(n, 2) for n in small)
    return case(lambda t: ops.broadcast_to(t, target), draw(rngs).normal(size=small))


def softmax_like(fn):
    @st.composite
    def draw_case(draw):
        shape = draw(shapes(1, 3, empty=True))  # (an empty first axis: softmax over no elements, or of no rows)
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        tau = draw(st.floats(0.2, 5.0))
        return case(lambda t: fn(t, axis=axis, temperature=tau), 2 * draw(rngs).normal(size=shape))
    return draw_case()


@st.composite
def gumbel_softmax_case(draw):
    shape = draw(shapes(1, 3))
    seed, counter, tau = draw(st.integers(0, 2**40)), draw(st.integers(0, 2**20)), draw(st.floats(0.3, 3.0))
    # a fixed (seed, counter) fixes the noise, so the soft sample is a smooth function of the logits
    return case(lambda t: ops.GumbelSoftmax.apply(t, seed=seed, counter=counter, temperature=tau),
                draw(rngs).normal(size=shape))


@st.composite
def reparameterize_case(draw):
    sm, sv, se = draw(broadcastable(3, empty=True))  # μ, log σ² and ε each broadcast
    rng = draw(rngs)
    eps = rng.normal(size=se)  # fixed noise: no gradient
    return case(lambda m, v: ops.reparameterize(m, v, eps), rng.normal(size=sm), rng.uniform(-2, 2, sv))


@st.composite
def kl_standard_normal_case(draw):
    sm, sv = draw(broadcastable_pair())
    rng = draw(rngs)
    return case(ops.kl_standard_normal, rng.normal(size=sm), rng.uniform(-2, 2, sv))


@st.composite
def reparameterize_kl_case(draw):
    """μ and log σ² of broadcastable shapes; the sample, its KL, or both (a random upstream gradient on each)."""
    sm, sv = draw(broadcastable_pair())
    rng = draw(rngs)
    eps = rng.normal(size=np.broadcast_shapes(sm, sv))  # fixed noise: no gradient
    used = draw(st.sampled_from(["both", "z", "kl"]))

    def f(m, v):
        z, kl = ops.reparameterize_kl(m, v, eps)
        return {"z": z, "kl": kl, "both": ops.concatenate([ops.reshape(z, (-1,)), ops.reshape(kl, (-1,))])}[used]
    return case(f, rng.normal(size=sm), rng.uniform(-2, 2, sv))


@st.composite
def normal_reparameterize_kl_case(draw):
    """The pair with its noise drawn from the Philox stream at a drawn (seed, counter): the same noise each call."""
    sm, sv = draw(broadcastable_pair())
    rng, seed, counter = draw(rngs), draw(st.integers(0, 2 ** 64 - 1)), draw(st.integers(0, 2 ** 20))
    used = draw(st.sampled_from(["both", "z", "kl"]))

    def f(m, v):
        z, kl = ops.normal_reparameterize_kl(m, v, seed=seed, counter=counter)
        return {"z": z, "kl": kl, "both": ops.concatenate([ops.reshape(z, (-1,)), ops.reshape(kl, (-1,))])}[used]
    return case(f, rng.normal(size=sm), rng.uniform(-2, 2, sv))


@st.composite
def categorical_kl_case(draw):
    shape = draw(shapes(1, 3))
    if len(shape) > 1 and draw(st.booleans()):
        shape = (0,) + shape[1:]  # an empty batch (the class axis never is)
    rng = draw(rngs)
    # learnable prior logits of any shape that broadcasts against the posterior's (the class axis kept)
    prior_shape = draw(st.sampled_from([shape[-1:], shape, (1,) * (len(shape) - 1) + shape[-1:]]))
    return case(ops.categorical_kl, 2 * rng.normal(size=shape), rng.normal(size=prior_shape))


@st.composite
def gumbel_softmax_kl_case(draw):
    """The soft sample and its KL of one node, at a drawn (seed, counter) (fixed noise: smooth in the logits), against
    a learnable prior of a shape that broadcasts; the sample, the KL, or both (a random upstream gradient on each)."""
    shape = draw(shapes(1, 3))
    rng, seed, counter, tau = draw(rngs), draw(st.integers(0, 2**40)), draw(st.integers(0, 2**20)), draw(st.floats(0.3, 3.0))
    prior_shape = draw(st.sampled_from([shape[-1:], shape, (1,) * (len(shape) - 1) + shape[-1:]]))
    used = draw(st.sampled_from(["both", "sample", "kl"]))

    def f(t, p):
        y, kl = ops.GumbelSoftmaxKL.apply(t, p, seed=seed, counter=counter, temperature=tau)
        return {"sample": y, "kl": kl, "both": ops.concatenate([ops.reshape(y, (-1,)), ops.reshape(kl, (-1,))])}[used]
    return case(f, 2 * rng.normal(size=shape), rng.normal(size=prior_shape))


@st.composite
def binary_concrete_kl_case(draw):
    """The soft Binary Concrete sample and its Bernoulli KL of one node at a drawn (seed, counter) (fixed noise: smooth
    in the logits), against a learnable prior of a shape that broadcasts (one per latent, the whole shape, one for all);
    the sample, the KL, or both; or a fixed prior (the VAE's), which takes the fused kernel where Numba is on."""
    shape = draw(shapes(1, 3))
    rng, seed, counter, tau = draw(rngs), draw(st.integers(0, 2**40)), draw(st.integers(0, 2**20)), draw(st.floats(0.3, 3.0))
    prior_shape = draw(st.sampled_from([shape[-1:], shape, (), (1,) * len(shape)]))
    used = draw(st.sampled_from(["both", "sample", "kl"]))

    def f(t, p):
        y, kl = ops.BinaryConcreteKL.apply(t, p, seed=seed, counter=counter, temperature=tau)
        return {"sample": y, "kl": kl, "both": ops.concatenate([ops.reshape(y, (-1,)), ops.reshape(kl, (-1,))])}[used]
    logits, prior = 2 * rng.normal(size=shape), rng.normal(size=prior_shape)
    if draw(st.booleans()):
        return case(f, logits, prior)
    return case(lambda t: f(t, mv.tensor(prior)), logits)


def bce_case(fn):
    @st.composite
    def draw_case(draw):
        sx, st_ = draw(broadcastable_pair())
        rng = draw(rngs)
        return case(fn, 3 * rng.normal(size=sx), rng.uniform(0, 1, st_))
    return draw_case()


@st.composite
def negative_elbo_case(draw):
    """Log-likelihood terms (…, D) and KL terms (…, K) of the same examples, β a constant of either sign."""
    ll_shape = draw(shapes(1, 3))
    kl_shape = ll_shape[:-1] + (draw(st.integers(1, 4)),)
    rng, beta = draw(rngs), draw(st.floats(-2, 2))
    return case(lambda ll, kl: ops.negative_elbo(ll, kl, beta), rng.normal(size=ll_shape), rng.normal(size=kl_shape))


@st.composite
def bernoulli_negative_elbo_case(draw):
    """Logits and data (…, D) of one shape (data in [0, 1], not only 0 and 1: the formula's gradient in x is
    checked too), KL terms (…, K) of the same examples, β a constant of either sign."""
    shape = draw(shapes(1, 3))
    kl_shape = shape[:-1] + (draw(st.integers(1, 4)),)
    rng, beta = draw(rngs), draw(st.floats(-2, 2))
    return case(lambda logits, x, kl: ops.bernoulli_negative_elbo(logits, x, kl, beta),
                3 * rng.normal(size=shape), rng.uniform(0, 1, shape), rng.normal(size=kl_shape))


DOMAINS = {
    "add": binary(ops.add), "sub": binary(ops.sub), "mul": binary(ops.mul), "div": div_case(),
    "neg": unary(ops.neg, uniform(-2, 2)), "pow": pow_case(),
    "maximum": tie_free_pair(ops.maximum), "minimum": tie_free_pair(ops.minimum),
    "where": where_case(), "clip": clip_case(), "cast": cast_case(),
    "exp": unary(ops.exp, uniform(-3, 3)), "log": unary(ops.log, uniform(0.1, 5)),
    "log1p": unary(ops.log1p, uniform(-0.9, 5)), "expm1": unary(ops.expm1, uniform(-3, 3)),
    "sqrt": unary(ops.sqrt, uniform(0.1, 5)), "abs": unary(ops.abs, away_from_zero),
    "tanh": unary(ops.tanh, uniform(-3, 3)), "sin": unary(ops.sin, uniform(-4, 4)),
    "cos": unary(ops.cos, uniform(-4, 4)), "sigmoid": unary(ops.sigmoid, uniform(-6, 6)),
    "softplus": unary(ops.softplus, uniform(-6, 6)), "relu": unary(ops.relu, away_from_zero),
    "erf": unary(ops.erf, uniform(-3, 3)), "erfc": unary(ops.erfc, uniform(-3, 3)),
    "erfinv": unary(ops.erfinv, uniform(-0.95, 0.95)), "erfcinv": unary(ops.erfcinv, uniform(0.05, 1.95)),
    "sum": reduction(ops.sum), "mean": reduction(ops.mean), "max": extreme_case(ops.max),
    "min": extreme_case(ops.min), "var": var_case(), "std": var_case(ops.std), "clone": unary(ops.clone, uniform(-2, 2)),
    "logsumexp": reduction(ops.logsumexp), "matmul": matmul_case(), "linear": linear_case(),
    "reshape": reshape_case(), "transpose": transpose_case(), "getitem": getitem_case(),
    "concatenate": concatenate_case(), "split": split_case(), "stack": stack_case(), "broadcast_to": broadcast_to_case(),
    "softmax": softmax_like(ops.softmax), "log_softmax": softmax_like(ops.log_softmax),
    "bce_with_logits": bce_case(ops.bce_with_logits),
    "bernoulli_log_prob": bce_case(ops.bernoulli_log_prob), "gumbel_softmax": gumbel_softmax_case(),
    "reparameterize": reparameterize_case(), "kl_standard_normal": kl_standard_normal_case(),
    "reparameterize_kl": reparameterize_kl_case(),
    "normal_reparameterize_kl": normal_reparameterize_kl_case(),
    "categorical_kl": categorical_kl_case(), "gumbel_softmax_kl": gumbel_softmax_kl_case(),
    "binary_concrete_kl": binary_concrete_kl_case(),
    "negative_elbo": negative_elbo_case(),
    "bernoulli_negative_elbo": bernoulli_negative_elbo_case(),
}



@st.composite
def leaky_relu_case(draw):
    slope = draw(st.floats(-1.0, 2.0))  # torch takes any slope
    return case(lambda t: ops.leaky_relu(t, negative_slope=slope), away_from_zero(draw(rngs), draw(shapes(empty=True)), 0.01, 3.0))


@st.composite
def elu_case(draw):
    alpha = draw(st.floats(0.1, 3.0))
    return case(lambda t: ops.elu(t, alpha=alpha), away_from_zero(draw(rngs), draw(shapes(empty=True)), 0.01, 4.0))


@st.composite
def gelu_case(draw):
    approximate = draw(st.sampled_from(["none", "tanh"]))
    return case(lambda t: ops.gelu(t, approximate=approximate), draw(rngs).uniform(-5, 5, draw(shapes(empty=True))))


@st.composite
def binary_cross_entropy_case(draw):
    """Probabilities x off 0 and 1 (where torch's clamp and 10⁻¹² floor would bend the function) and targets in
    [0, 1], of one shape; both get gradients."""
    shape = draw(shapes(empty=True))
    rng = draw(rngs)
    return case(ops.binary_cross_entropy, rng.uniform(0.05, 0.95, shape), rng.uniform(0, 1, shape))


@st.composite
def dropout_case(draw):
    """A fixed (seed, counter) fixes the mask: the output is then linear in x (p = 1: zero)."""
    seed, counter, p = draw(st.integers(0, 2**40)), draw(st.integers(0, 2**20)), draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    return case(lambda t: ops.nn_ops.Dropout.apply(t, seed=seed, counter=counter, p=p),
                draw(rngs).normal(size=draw(shapes(empty=True))))


@st.composite
def bce_with_logits_pos_weight_case(draw):
    """Logits, targets in [0, 1] and positive weights, each broadcast: all three get gradients."""
    sx, st_, sp = draw(broadcastable(3))
    rng = draw(rngs)
    return case(ops.bce_with_logits_pos_weight, 3 * rng.normal(size=sx), rng.uniform(0, 1, st_), rng.uniform(0.2, 3, sp))


DOMAINS.update({
    "dropout": dropout_case(), "bce_with_logits_pos_weight": bce_with_logits_pos_weight_case(),
    "leaky_relu": leaky_relu_case(), "elu": elu_case(), "gelu": gelu_case(),
    "silu": unary(ops.silu, uniform(-6, 6)), "binary_cross_entropy": binary_cross_entropy_case(),
})

def off_poles(rng, shape):
    """Values of the gamma family's domain: (0.05, 8), and negative ones at least 0.1 from an integer (−4 … 0)."""
    x = rng.uniform(0.05, 8, shape)
    negative = -rng.integers(0, 4, shape) - rng.uniform(0.1, 0.9, shape)
    return np.where(rng.random(shape) < 0.3, negative, x)


@st.composite
def polygamma_case(draw):
    n = draw(st.sampled_from([1, 2, 3]))
    return case(lambda t: ops.polygamma(n, t), off_poles(draw(rngs), draw(shapes(empty=True))))


@st.composite
def gammainc_case(draw):
    """α and x broadcast against each other, on both branches (x below and above α + 1), P or its complement Q; or α
    around a scale c from 10² to 10⁷ with x within 4√c of it (the series and the fraction below c = 10³, Temme's
    expansion from it on: both sides of the switch, where P is neither 0 nor 1)."""
    sa, sx = draw(broadcastable_pair())
    rng, complement, large = draw(rngs), draw(st.booleans()), draw(st.booleans())
    if large:
        c = 10 ** rng.uniform(2, 7)
        a, x = c + math.sqrt(c) * rng.uniform(-1, 1, sa), c + math.sqrt(c) * rng.uniform(-4, 4, sx)
    else:
        a, x = rng.uniform(0.1, 8, sa), rng.uniform(0.05, 14, sx)
    return case(ops.gammaincc if complement else ops.gammainc, a, x)


DOMAINS.update({
    "lgamma": unary(ops.lgamma, off_poles), "digamma": unary(ops.digamma, off_poles), "polygamma": polygamma_case(),
    "gammainc": gammainc_case(),
})  # (standard_gamma, a surrogate, is gradchecked against its quantile in tests/test_ops_gamma.py)


@st.composite
def stirlerr_case(draw):
    """stirlerr (order 0) and its derivative (order 1) on both sides of the series' cut-over at 10."""
    order = draw(st.sampled_from([0, 1]))
    return case(lambda t: ops.stirlerr(t, order=order), draw(rngs).uniform(0.05, 30, draw(shapes(empty=True))))


@st.composite
def bd0_case(draw):
    """bd0(x, m, c) with x and the mean c·m both in (5, 6) (the series in v = (x − cm)/(x + cm), |v| < 0.1) or anywhere
    in (0.1, 20) (mostly x log(x/(cm)) + cm − x); x, m and c broadcast against each other."""
    sx, sm = draw(broadcastable_pair())
    rng = draw(rngs)
    c = rng.uniform(0.5, 2.0, draw(st.sampled_from([(), sm])))
    low, high = (5.0, 6.0) if draw(st.booleans()) else (0.1, 20.0)
    return case(ops.bd0, rng.uniform(low, high, sx), rng.uniform(low, high, sm) / c, c)


DOMAINS.update({"stirlerr": stirlerr_case(), "bd0": bd0_case()})  # (helper-77: minivae/ops/saddle.py)


# ---- minivae.ops.more_reduce, more_shape and rounding --------------------------------------------------------------
def with_zeros(rng, shape):
    """Normal values with about a third set to exactly 0: products and running products at and past their zeros."""
    x = rng.normal(size=shape)
    return np.where(rng.random(shape) < 0.3, 0.0, x)


@st.composite
def prod_case(draw):
    shape = draw(shapes(empty=True))
    axis, keepdims = draw(axes(len(shape))), draw(st.booleans())
    return case(lambda t: ops.prod(t, axis=axis, keepdims=keepdims), with_zeros(draw(rngs), shape))


def scan_case(fn, sample):
    @st.composite
    def draw_case(draw):
        shape = draw(shapes(empty=True))
        axis = draw(st.one_of(st.none(), st.integers(-max(len(shape), 1), max(len(shape), 1) - 1)))
        return case(lambda t: fn(t, axis), sample(draw(rngs), shape))
    return draw_case()


@st.composite
def norm_case(draw):
    """Each order off its kinks: |x| ≥ 0.1 (sign x, |x|^{p−1}), and for ±∞ no two |x| within 0.05 of each other."""
    shape = draw(shapes())
    axis, keepdims = draw(axes(len(shape))), draw(st.booleans())
    ord_ = draw(st.sampled_from([1, 2, 3, 1.5, 0, np.inf, -np.inf]))
    rng = draw(rngs)
    if ord_ in (np.inf, -np.inf):
        n = int(np.prod(shape))
        x = rng.choice([-1.0, 1.0], n) * (0.2 + 0.1 * rng.permutation(n))
        x = x.reshape(shape)
    else:
        x = away_from_zero(rng, shape)
    return case(lambda t: ops.norm(t, ord=ord_, axis=axis, keepdims=keepdims), x)


@st.composite
def flip_case(draw):
    shape = draw(shapes(empty=True))
    axis = draw(st.one_of(st.none(), axes(len(shape)))) if shape else None
    return case(lambda t: ops.flip(t, axis), draw(rngs).normal(size=shape))


@st.composite
def roll_case(draw):
    shape = draw(shapes(empty=True))
    if shape and draw(st.booleans()):
        axis = tuple(draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=3)))
        shift = tuple(draw(st.integers(-5, 5)) for _ in axis)
    else:
        axis, shift = None, draw(st.integers(-5, 5))
    return case(lambda t: ops.roll(t, shift, axis), draw(rngs).normal(size=shape))


@st.composite
def tile_case(draw):
    shape = draw(shapes(empty=True))
    reps = tuple(draw(st.lists(st.integers(0, 3), max_size=4)))
    return case(lambda t: ops.tile(t, reps), draw(rngs).normal(size=shape))


def triangle_case(fn):
    @st.composite
    def draw_case(draw):
        shape = draw(shapes(2, 4, empty=True))
        k = draw(st.integers(-4, 4))
        return case(lambda t: fn(t, k), draw(rngs).normal(size=shape))
    return draw_case()


@st.composite
def diagonal_case(draw):
    shape = draw(shapes(2, 4, empty=True))
    a1, a2 = draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=2, max_size=2,
                           unique_by=lambda a: a % len(shape)))
    offset = draw(st.integers(-4, 4))
    return case(lambda t: ops.diagonal(t, offset, a1, a2), draw(rngs).normal(size=shape))


@st.composite
def take_along_axis_case(draw):
    """Indices that repeat (they must accumulate), negative ones, and index axes of size 1 broadcast against x's."""
    shape = draw(shapes(1, 3))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    rng = draw(rngs)
    ishape = tuple(draw(st.integers(1, 5)) if d == axis % len(shape) else draw(st.sampled_from([1, s]))
                   for d, s in enumerate(shape))
    idx = rng.integers(-n, n, ishape)
    return case(lambda t: ops.take_along_axis(t, idx, axis), rng.normal(size=shape))


@st.composite
def take_case(draw):
    shape = draw(shapes(1, 3))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    rng = draw(rngs)
    idx = rng.integers(-n, n, draw(shapes(0, 2)))
    return case(lambda t: ops.take(t, idx, axis=axis), rng.normal(size=shape))


def step_case(fn, offset):
    """Values ``offset`` + an integer: off the jumps of ``fn``."""
    return unary(fn, lambda rng, shape: rng.integers(-3, 3, shape) + offset(rng, shape))


@st.composite
def sort_case(draw):
    """Distinct values (sorting is not differentiable where two are equal), ascending or descending, or the top k; the
    values alone (the indices are integers)."""
    shape = draw(shapes(empty=True))
    n = int(np.prod(shape))
    x = draw(rngs).permutation(np.arange(n) * 0.1).reshape(shape) + 0.01
    axis = draw(st.integers(-max(len(shape), 1), max(len(shape), 1) - 1))
    descending = draw(st.booleans())
    if shape and draw(st.booleans()):
        k = draw(st.integers(0, shape[axis]))
        return case(lambda t: ops.topk(t, k, axis, largest=descending).values, x)
    return case(lambda t: ops.sort(t, axis, descending)[0], x)


EINSUMS = ["ij,jk->ik", "ij,jk", "ij->i", "ij->ji", "ijk,k->", "ab,cd->abcd", "i,i->", "bij,bjk,kl->bil", "ij,ij->ij",
           "i->", "ijk->kij", "ab,bc,c"]
EINSUM_ELLIPSES = ["...ij,...jk", "...i->i", "i...->...", "...", "b...i,...i->b...", "i...j,j...->...i", "...,...->..."]


@st.composite
def einsum_case(draw):
    """Subscripts of every kind the op takes (products, contractions, outer products, sums over letters of one operand
    alone, transposes, three operands), letters of random sizes (1 too)."""
    subscripts = draw(st.sampled_from(EINSUMS + EINSUM_ELLIPSES))
    sizes = {c: draw(st.integers(1, 3)) for c in sorted(set(subscripts) - set(",->."))}
    batch = draw(st.lists(st.integers(1, 3), max_size=3))
    rng = draw(rngs)

    def shape(term):
        """The term's letters' sizes, "..." the batch axes: the last few of them, each 1 (broadcast) at random."""
        head, dots, tail = term.partition("...")
        own = batch[len(batch) - draw(st.integers(0, len(batch))):] if dots else []
        return [sizes[c] for c in head] + [draw(st.sampled_from([n, 1])) for n in own] + [sizes[c] for c in tail]
    terms = subscripts.partition("->")[0].split(",")
    return case(lambda *ts: ops.einsum(subscripts, *ts), *[rng.normal(size=shape(t)) for t in terms])


DOMAINS.update({
    "sort": sort_case(), "einsum": einsum_case(),
    "prod": prod_case(), "cumsum": scan_case(ops.cumsum, lambda rng, s: rng.normal(size=s)),
    "cumprod": scan_case(ops.cumprod, with_zeros), "norm": norm_case(),
    "flip": flip_case(), "roll": roll_case(), "tile": tile_case(),
    "tril": triangle_case(ops.tril), "triu": triangle_case(ops.triu), "diagonal": diagonal_case(),
    "take_along_axis": take_along_axis_case(), "take": take_case(),
    "sign": unary(ops.sign, away_from_zero), "floor": step_case(ops.floor, uniform(0.1, 0.9)),
    "ceil": step_case(ops.ceil, uniform(0.1, 0.9)), "trunc": step_case(ops.trunc, uniform(0.1, 0.9)),
    "round": step_case(ops.round, uniform(-0.4, 0.4)),
})



# ---- minivae.ops.conv ----------------------------------------------------------------------------------------------
@st.composite
def conv_geometry(draw):
    """Kernel, stride, padding and dilation (each a pair of independent sides) of a 2-D convolution."""
    return tuple(tuple(draw(st.integers(lo, hi)) for _ in range(2)) for lo, hi in ((1, 3), (1, 3), (0, 2), (1, 2)))


@st.composite
def conv2d_case(draw):
    """Random N, C, O, kernel, stride, padding, dilation (each side its own), input sizes from the smallest the dilated
    kernel fits in upwards; with or without bias, batched or unbatched (C, H, W); 1 to 3 groups (C and O multiples)."""
    (kh, kw), stride, padding, dilation = draw(conv_geometry())
    groups = draw(st.integers(1, 3))
    n, c, o = draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    hw = [draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), max(1, d * (k - 1) + 1 - 2 * p) + 3))
          for k, p, d in zip((kh, kw), padding, dilation)]
    rng = draw(rngs)
    x = rng.normal(size=((n,) if draw(st.booleans()) else ()) + (c, *hw))
    w = rng.normal(size=(o, c // groups, kh, kw))
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if draw(st.booleans()):
        return case(lambda t, u, b: ops.conv2d(t, u, b, **kw_), x, w, rng.normal(size=o))
    return case(lambda t, u: ops.conv2d(t, u, **kw_), x, w)


@st.composite
def conv_transpose2d_case(draw):
    """As conv2d_case, with an output padding below the stride or the dilation, and a positive output size."""
    (kh, kw), stride, padding, dilation = draw(conv_geometry())
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    groups = draw(st.integers(1, 2))  # (small sizes: the output grows as stride·input, the full Jacobian's cost with it)
    n, c, o = draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    hw = [draw(st.integers(1, 3)) for _ in range(2)]
    assume(all((h - 1) * s - 2 * p + d * (k - 1) + e + 1 > 0
               for h, k, s, p, d, e in zip(hw, (kh, kw), stride, padding, dilation, output_padding)))
    rng = draw(rngs)
    x = rng.normal(size=((n,) if draw(st.booleans()) else ()) + (c, *hw))
    w = rng.normal(size=(c, o // groups, kh, kw))
    kw_ = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation, groups=groups)
    if draw(st.booleans()):
        return case(lambda t, u, b: ops.conv_transpose2d(t, u, b, **kw_), x, w, rng.normal(size=o))
    return case(lambda t, u: ops.conv_transpose2d(t, u, **kw_), x, w)


@st.composite
def pad_case(draw):
    """Pads of −2 … 2 (negative ones crop) on the last 0 … ndim axes, no axis cropped below 0; a drawn fill value; or
    one of the copying modes (reflect, replicate, circular) on the ranks and pads torch allows."""
    shape = draw(shapes(1, 3, empty=True))
    k = draw(st.integers(0, len(shape)))
    pad = tuple(draw(st.integers(-2, 2)) for _ in range(2 * k))
    assume(all(shape[-1 - i] + min(pad[2 * i], 0) + min(pad[2 * i + 1], 0) >= 0 for i in range(k)))
    value = draw(st.floats(-2, 2))
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    if mode != "constant":  # the last k = 1 … 3 axes of a (k + 1)- or (k + 2)-D input, pads by torch's rules
        k = draw(st.integers(1, 3))
        shape = tuple(draw(st.integers(1, 2)) for _ in range(draw(st.integers(1, 2)))) + tuple(
            draw(st.integers(1, 4)) for _ in range(k))
        pad = tuple(draw(st.integers(-2, 3)) for _ in range(2 * k))
        assume(all(shape[-1 - i] + min(pad[2 * i], 0) + min(pad[2 * i + 1], 0) >= 0 for i in range(k)))
        if mode == "reflect":
            assume(all(max(pad[2 * i], pad[2 * i + 1]) < shape[-1 - i] for i in range(k)))
        if mode == "circular":
            assume(all(max(pad[2 * i], pad[2 * i + 1]) <= shape[-1 - i] - max(-pad[2 * i], 0) - max(-pad[2 * i + 1], 0)
                       for i in range(k)))
        return case(lambda t: ops.pad(t, pad, mode=mode), draw(rngs).normal(size=shape))
    return case(lambda t: ops.pad(t, pad, value), draw(rngs).normal(size=shape))


@st.composite
def upsample_nearest_case(draw):
    """(N, C, d_1 … d_K), K = 1 … 3, sizes 1 … 3; whole factors 1 … 3 per axis given as one int, a tuple, or the
    output size."""
    k = draw(st.integers(1, 3))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + tuple(draw(st.integers(1, 3)) for _ in range(k))
    factors = tuple(draw(st.integers(1, 3)) for _ in range(k))
    how = draw(st.sampled_from(["int", "tuple", "size"]))
    kw = ({"scale_factor": factors[0]} if how == "int" else {"scale_factor": factors} if how == "tuple"
          else {"size": tuple(d * f for d, f in zip(shape[2:], factors))})
    return case(lambda t: ops.upsample_nearest(t, **kw), draw(rngs).normal(size=shape))


DOMAINS.update({"conv2d": conv2d_case(), "conv_transpose2d": conv_transpose2d_case(), "pad": pad_case(),
                "upsample_nearest": upsample_nearest_case()})


# ---- minivae.ops.cholesky ------------------------------------------------------------------------------------------
def positive_definite(rng, shape):
    """Symmetric positive-definite matrices of ``shape`` (…, n, n): X Xᵀ + n·I, X standard normal (eigenvalues in
    [n, n + |X|²]: well conditioned)."""
    n = shape[-1]
    x = rng.normal(size=shape)
    return x @ x.swapaxes(-1, -2) + n * np.eye(n)


@st.composite
def cholesky_case(draw):
    """A batch (maybe empty) of positive-definite matrices, lower or upper factor. The op reads A's lower triangle and
    its VJP is the symmetric one (torch's), the gradient of L as a function of a symmetric A; so the case factors
    ½(A + Aᵀ), whose central differences move both A_ij and A_ji."""
    batch = draw(shapes(0, 2))
    if batch and draw(st.booleans()):
        batch = (0,) + batch[1:]  # an empty batch
    shape = batch + (draw(st.integers(1, 4)),) * 2
    upper = draw(st.booleans())
    return case(lambda a: ops.cholesky((a + a.mT) * 0.5, upper=upper), positive_definite(draw(rngs), shape))


@st.composite
def solve_triangular_case(draw):
    """A (…, n, n) with a diagonal of |A_ii| in [1, 2] and entries of N(0, ¼) elsewhere (both triangles: the other is not
    read), B (…, n, k) or (…, k, n), batch axes broadcasting; upper or lower, left or right, unitriangular or not."""
    sa, sb = draw(broadcastable(2, max_ndim=2))
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    upper, left, unit = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    rng = draw(rngs)
    a = 0.5 * rng.normal(size=sa + (n, n))
    a[..., np.arange(n), np.arange(n)] = away_from_zero(rng, sa + (n,), 1.0, 2.0)
    b = rng.normal(size=sb + ((n, k) if left else (k, n)))
    return case(lambda t, u: ops.solve_triangular(t, u, upper=upper, left=left, unitriangular=unit), a, b)


DOMAINS.update({"cholesky": cholesky_case(), "solve_triangular": solve_triangular_case()})


# ---- minivae.ops.elementwise (helper-62) ---------------------------------------------------------------------------
def off(points, low, high, gap=1e-3):
    """Values in [low, high] at least ``gap`` from each of ``points`` (an activation's kinks)."""
    def sample(rng, shape):
        x = rng.uniform(low, high, shape)
        assume(all(np.abs(x - p).min(initial=1.0) > gap for p in points))
        return x
    return sample


def binary_of(fn, sample_x, sample_y):
    """``fn`` of two broadcastable inputs drawn by ``sample_x(rng, shape)`` and ``sample_y``."""
    @st.composite
    def draw_case(draw):
        sx, sy = draw(broadcastable_pair())
        rng = draw(rngs)
        return case(fn, sample_x(rng, sx), sample_y(rng, sy))
    return draw_case()


@st.composite
def logit_case(draw):
    """Without eps in (0, 1); with eps in [0.01, 0.3], x in (0, 1) on both sides of the clamp, off its kinks."""
    rng, shape = draw(rngs), draw(shapes(empty=True))
    eps = draw(st.one_of(st.none(), st.floats(0.01, 0.3)))
    if eps is None:
        return case(ops.logit, rng.uniform(0.05, 0.95, shape))
    return case(lambda t: ops.logit(t, eps), off([eps, 1 - eps], 0.005, 0.995)(rng, shape))


@st.composite
def hardtanh_case(draw):
    lo = draw(st.floats(-2, 0.5))
    hi = lo + draw(st.floats(0.1, 2))
    return case(lambda t: ops.hardtanh(t, lo, hi), off([lo, hi], -3, 3)(draw(rngs), draw(shapes(empty=True))))


@st.composite
def celu_case(draw):
    alpha = draw(st.floats(0.2, 3.0))
    return case(lambda t: ops.celu(t, alpha=alpha), away_from_zero(draw(rngs), draw(shapes(empty=True)), 0.01, 4.0))


DOMAINS.update({
    "tan": unary(ops.tan, uniform(-1.3, 1.3)), "asin": unary(ops.asin, uniform(-0.9, 0.9)),
    "acos": unary(ops.acos, uniform(-0.9, 0.9)), "atan": unary(ops.atan, uniform(-5, 5)),
    "sinh": unary(ops.sinh, uniform(-3, 3)), "cosh": unary(ops.cosh, uniform(-3, 3)),
    "asinh": unary(ops.asinh, uniform(-5, 5)), "acosh": unary(ops.acosh, uniform(1.1, 5)),
    "atanh": unary(ops.atanh, uniform(-0.9, 0.9)),
    # y off 0 (the branch cut along x < 0), x of either sign
    "atan2": binary_of(ops.atan2, lambda rng, s: away_from_zero(rng, s, 0.2, 2.0), uniform(-2, 2)),
    "hypot": binary_of(ops.hypot, away_from_zero, away_from_zero),
    "logaddexp": binary(ops.logaddexp, -5.0, 5.0),
    "xlogy": binary_of(ops.xlogy, uniform(-2, 2), uniform(0.1, 3)),
    "log2": unary(ops.log2, uniform(0.1, 5)), "log10": unary(ops.log10, uniform(0.1, 5)),
    "exp2": unary(ops.exp2, uniform(-3, 3)), "rsqrt": unary(ops.rsqrt, uniform(0.2, 5)),
    "reciprocal": unary(ops.reciprocal, lambda rng, s: away_from_zero(rng, s, 0.3, 2.0)),
    "square": unary(ops.square, uniform(-2, 2)), "logit": logit_case(),
    "log_sigmoid": unary(ops.log_sigmoid, uniform(-6, 6)), "softsign": unary(ops.softsign, uniform(-4, 4)),
    "hardtanh": hardtanh_case(), "celu": celu_case(), "mish": unary(ops.mish, uniform(-6, 6)),
    "hardsigmoid": unary(ops.hardsigmoid, off([-3, 3], -5, 5)), "hardswish": unary(ops.hardswish, off([-3, 3], -5, 5)),
})

def test_every_registered_op_has_a_gradcheck_domain():
    assert set(mv.OPS) - set(DOMAINS) - ops.SURROGATES == set(), "ops without gradcheck coverage"
    assert set(DOMAINS) - set(mv.OPS) == set(), "domains for ops that are not registered"


@pytest.mark.parametrize("name", sorted(DOMAINS))
@given(data=st.data())
def test_op_gradcheck_float64(name, data):
    fn, inputs, tolerances = data.draw(DOMAINS[name])
    before = [x.copy() for x in inputs]
    assert mv.gradcheck(fn, inputs, **tolerances)
    for b, x in zip(before, inputs):  # ops must not mutate their inputs
        np.testing.assert_array_equal(b, x)


@given(data=st.data())
def test_split_and_chunk_gradcheck(data):
    shape = data.draw(shapes(1, 3, empty=True))
    axis = data.draw(st.integers(0, len(shape) - 1))
    x = data.draw(rngs).normal(size=shape)
    cut = data.draw(st.integers(0, shape[axis]))
    chunks = data.draw(st.integers(1, 4))

    def f(t):
        pieces = ops.split(t, [cut], axis=axis) + ops.chunk(t, chunks, axis=axis)
        return ops.concatenate([ops.reshape(p * (i + 1), (-1,)) for i, p in enumerate(pieces)])
    assert mv.gradcheck(f, [x])


@given(data=st.data())
def test_squeeze_unsqueeze_gradcheck(data):
    """Composites of registered ops (reshape): their gradients through the same VJPs."""
    shape = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    nd = len(shape) - (shape[axis] == 1)  # after squeezing axis
    new = data.draw(st.integers(-nd - 1, nd))
    y = data.draw(rngs).normal(size=shape)
    assert mv.gradcheck(lambda t: ops.unsqueeze(ops.squeeze(t, axis), new) * ops.squeeze(t).sum(), [y])


@pytest.mark.parametrize("pattern", range(len(MATMUL_SHAPES)))
@given(data=st.data())
def test_matmul_gradcheck_every_shape_pattern(pattern, data):
    fn, inputs, tolerances = data.draw(matmul_case(MATMUL_SHAPES[pattern]))
    assert mv.gradcheck(fn, inputs, **tolerances)

