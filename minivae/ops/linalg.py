"""Matrix products."""
import numpy

from minivae._backend import fused, get_array_module
from minivae.engine import Function
from minivae.ops._broadcast import unbroadcast
from minivae.ops.arith import floating, floating_all
from minivae.ops._registry import register


@register("matmul")
class Matmul(Function):
    """z = x @ y (NumPy's matmul: 1-D operands promoted, leading axes batched and broadcast; an integer operand beside
    a floating one takes its dtype, as in the elementwise ops);
    x̄ = unbroadcast(ḡ @ yᵀ, x.shape);  ȳ = unbroadcast(xᵀ @ ḡ, y.shape), transposing the last two axes."""

    def forward(ctx, x, y):
        if x.ndim == 0 or y.ndim == 0:
            raise ValueError(f"matmul needs at least 1-D operands, got shapes {x.shape} and {y.shape}")
        if x.shape[-1] != y.shape[-2 if y.ndim > 1 else 0]:
            raise ValueError(f"matmul: shapes {x.shape} and {y.shape} do not match "
                             f"({x.shape[-1]} != {y.shape[-2 if y.ndim > 1 else 0]})")
        x, y = floating(x, y)  # integer data times float32 weights is float32, not float64
        ctx.save(x=x, y=y)
        return matmul_array(ctx.xp, x, y)

    def backward(ctx, g):
        return matmul_vjp(ctx.x, ctx.y, g, ctx.needs_input_grad[:2])


def matmul_array(xp, a, b):
    """a @ b of arrays; on the GPU through minivae/_gpu/gemm.py, which can also run inside a CUDA
    graph's capture (CuPy's own matmul refuses to)."""
    gemm = None if xp is numpy else fused("gemm", xp, a, b)
    return xp.matmul(a, b) if gemm is None else gemm.matmul(a, b)


def matmul_vjp(x, y, g, needs):
    """(x̄, ȳ) of z = x @ y for the upstream ḡ (None where ``needs`` says no gradient is wanted)."""
    # promote 1-D operands the way the forward did, so one batched formula serves all cases
    x2 = x[None, :] if x.ndim == 1 else x
    y2 = y[:, None] if y.ndim == 1 else y
    if x.ndim == 1:
        g = g[..., None, :] if y.ndim > 1 else g[..., None]
    if y.ndim == 1:
        g = g[..., None]
    xp = get_array_module(g)
    gx = matmul_array(xp, g, y2.swapaxes(-1, -2)) if needs[0] else None
    gy = matmul_array(xp, x2.swapaxes(-1, -2), g) if needs[1] else None
    if gx is not None:
        gx = unbroadcast(gx, x2.shape).reshape(x.shape)
    if gy is not None:
        gy = unbroadcast(gy, y2.shape).reshape(y.shape)
    return gx, gy


@register("linear")
class Linear(Function):
    """A dense layer in one node: y = act(x @ W + b), act the identity or ReLU.

    forward   p = x @ W + b (the bias added in place);  y = p, or max(p, 0) in place
    backward  p̄ = ḡ, or ḡ·[y > 0] (y > 0 exactly where p > 0);  b̄ = unbroadcast(p̄, b.shape);
              (x̄, W̄) = matmul's VJP at p̄
    saves     x, W (and y for ReLU)
    fused     on the GPU the bias and ReLU take one pass each way, b̄ made in the ReLU's backward pass
              (kernels/linear.cu: bias_grad, for any batch), the products cuBLAS; with MINIVAE_CUBLASLT=1 a
              float32 forward is one cuBLASLt call, bias and ReLU its epilogue (minivae/_gpu/gemm.py), with
              MINIVAE_GEMM=tiled one launch of kernels/gemm.cu, bias and ReLU applied as it writes, and the
              backward two, x̄'s and W̄'s, reading ḡ through the ReLU's gate, W̄'s making b̄ too; in a
              CUDA graph W̄'s product runs on a second stream (unless MINIVAE_SIDE_STREAM=0)
    The same numbers as matmul, add and relu one after another; but as one node the graph keeps
    neither x @ W nor the pre-activation alive until the backward pass, and the forward writes
    one array instead of three (a third of a training step's memory on the VAEs).
    """

    def forward(ctx, x, weight, bias, activation=None):
        if activation not in (None, "relu"):
            raise ValueError(f"linear: activation must be None or 'relu', not {activation!r}")
        if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[0] or bias.shape != weight.shape[1:]:
            raise ValueError(f"linear: x {x.shape} (…, in), weight {weight.shape} (in, out) and bias {bias.shape} "
                             "(out,) do not fit")
        # integer data (int64 pixels) through float32 weights is float32, not float64; so is an integer bias beside them
        x, weight, bias = floating_all((x, weight, bias))
        x, weight = floating(x, weight)
        xp = ctx.xp
        gemm = None if xp is numpy else fused("gemm", xp, x, weight, bias)
        y = None if gemm is None else gemm.linear(x, weight, bias, activation == "relu")  # one call or launch
        if y is None:
            y = matmul_array(xp, x, weight)
            kernel = None if xp is numpy else ctx.fused("linear", y, bias)
            if kernel is not None and y.flags.c_contiguous and bias.dtype == y.dtype:
                kernel.bias_act_fwd(y, bias, activation == "relu")  # one pass on the GPU (kernels/linear.cu)
            else:
                if xp.result_type(y, bias) == y.dtype:
                    y += bias
                else:  # a bias wider than the product: promote, as x @ W + b does
                    y = y + bias
                if activation == "relu":
                    xp.maximum(y, 0, out=y)
        ctx.save(x=x, weight=weight, bias_shape=bias.shape, y=y if activation == "relu" else None)
        return y

    def backward(ctx, g):
        gemm = None if ctx.xp is numpy else fused("gemm", ctx.xp, ctx.x, g)
        grads = None if gemm is None else gemm.linear_grads(ctx.x, ctx.weight, g, ctx.y, ctx.needs_input_grad)
        if grads is not None:  # MINIVAE_GEMM=tiled: two launches, the ReLU and b̄ inside them
            return grads
        relu, need_bias = ctx.y is not None, ctx.needs_input_grad[2]
        kernel = None if ctx.xp is numpy else ctx.fused("linear", g, *([ctx.y] if relu else []))
        gb = None
        if kernel is not None and need_bias:
            g, gb = kernel.bias_grad(g, ctx.y)  # p̄ and b̄ in one pass on the GPU (kernels/linear.cu)
        elif kernel is not None and relu:
            g = kernel.relu_bwd(g, ctx.y)
        else:
            if relu:
                g = g * (ctx.y > 0)
            gb = unbroadcast(g, ctx.bias_shape) if need_bias else None
        needs = ctx.needs_input_grad[:2]
        if gemm is not None and gemm.side is not None and needs[1] and ctx.x.ndim == 2 and ctx.x.dtype == g.dtype:
            gw = gemm.side_product(ctx.x.T, g)  # W̄ = xᵀ·p̄ on a second stream, beside the rest of the backward pass
            return matmul_vjp(ctx.x, ctx.weight, g, (needs[0], False))[0], gw, gb
        gx, gw = matmul_vjp(ctx.x, ctx.weight, g, needs)
        return gx, gw, gb


matmul, linear = Matmul.apply, Linear.apply
