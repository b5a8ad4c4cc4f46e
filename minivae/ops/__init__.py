"""Every op of minivae: ``OPS`` (name → Function class, forward and VJP side by side)
and the functions that apply them. ``NONDIFFERENTIABLE`` lists value-only ops,
``NONDIFFERENTIABLE_INPUTS`` each op's inputs that get no gradient."""
# ruff: noqa: F401  (this module re-exports every op; __all__ is built from the registry)
from minivae.ops._registry import NONDIFFERENTIABLE, NONDIFFERENTIABLE_INPUTS, OPS, register
from minivae.ops.arith import add, cast, clip, div, maximum, minimum, mul, neg, pow, sub, where
from minivae.ops.unary import abs, cos, exp, expm1, log, log1p, relu, sigmoid, sin, softplus, sqrt, tanh
from minivae.ops.special import erf, erfc, erfcinv, erfinv
from minivae.ops.gamma import digamma, gammainc, gammaincc, lgamma, polygamma, standard_gamma
from minivae.ops.saddle import bd0, stirlerr
from minivae.ops.reduce import logsumexp, max, mean, min, std, sum, var
from minivae.ops.linalg import linear, matmul
from minivae.ops.shape import (broadcast_to, chunk, clone, concatenate, getitem, one_hot, reshape, split,
                               squeeze, stack, transpose, unsqueeze)
from minivae.ops.softmax import log_softmax, softmax
from minivae.ops.losses import (bce_with_logits, bernoulli_log_prob, bernoulli_negative_elbo, categorical_kl,
                                kl_standard_normal, negative_elbo, normal_reparameterize_kl, reparameterize,
                                reparameterize_kl)
from minivae.ops.unary import elu, gelu, leaky_relu, silu
from minivae.ops.losses import binary_cross_entropy
from minivae.ops.sampling import (SURROGATES, GumbelSoftmax, GumbelSoftmaxKL, gumbel_softmax, gumbel_softmax_kl,
                                  straight_through)
from minivae.ops.binary_concrete import BinaryConcreteKL, binary_concrete_kl
from minivae.ops.nn_ops import bce_with_logits_pos_weight, dropout
from minivae.ops.more_reduce import amax, amin, cumprod, cumsum, norm, prod
from minivae.ops.more_shape import (diagonal, flip, gather, index_select, masked_fill, repeat_interleave, roll, sort,
                                    take, take_along_axis, tile, topk, trace, tril, triu)
from minivae.ops.rounding import ceil, floor, round, sign, trunc
from minivae.ops.einsum import einsum
from minivae.ops.conv import conv2d, conv_transpose2d, pad
from minivae.ops.cholesky import cholesky, solve_triangular
from minivae.ops.upsample import upsample_nearest
from minivae.ops.elementwise import (acos, acosh, arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, asin, asinh,
                                     atan, atan2, atanh, celu, cosh, exp2, hardsigmoid, hardswish, hardtanh, hypot,
                                     log10, log2, log_sigmoid, logaddexp, logit, mish, reciprocal, relu6, rsqrt, selu,
                                     sinh, softsign, square, tan, xlogy)

__all__ = sorted(["OPS", "NONDIFFERENTIABLE", "NONDIFFERENTIABLE_INPUTS", "SURROGATES", "register", *OPS,
                  *NONDIFFERENTIABLE, "split", "chunk", "squeeze", "unsqueeze",
                  "amax", "amin", "trace", "gather", "index_select", "masked_fill", "repeat_interleave", "topk",
                  "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "arctan2", "relu6", "selu"])
