"""The negative ELBO of a batch from its elementwise terms, one launch each way: kernels/elbo.cu."""
import math

import numpy

from minivae._backend import get_array_module
from minivae._gpu import contiguous, elementwise_launch, floating, loader

REDUCE_BLOCK = 256
# A forward block's share: 8 values a thread. With 8192 (32 a thread) a Gaussian VAE's step at batch 128 had 13
# blocks to read its 128×784 terms, 5.5 µs of a 160 µs CUDA-graph step on an H100, and at 4096 392 blocks read
# 12.8 MB in 10.6 µs, 45% of copy bandwidth: too few warps in flight. With 2048, 4.4 and 8.0 µs
# (tools/graph_profile.py, both on one H100 on 2026-11-27).
ELEMENTS_PER_BLOCK = 2048
MAX_BLOCKS = 1024          # the last block adds the partial sums, at most 4 a thread


def reduce_grid(rows, n):
    """Blocks of the forward over ``rows`` examples of n elements in all: one per ELEMENTS_PER_BLOCK elements, at
    least one, at most one per row (a block takes whole rows) and MAX_BLOCKS."""
    return max(1, min(rows, MAX_BLOCKS, -(-n // ELEMENTS_PER_BLOCK)))


def _forward(name, who, terms, kl, beta):
    """Launch the −ELBO forward kernel ``name`` on the likelihood's arrays ``terms`` (…, D) (its terms, or the
    logits and data they are made from) and the KL terms (…, K) of the same R examples, β 0-d, all of one dtype:
    the loss, a 0-d array."""
    first = terms[0]
    t = floating(first, who)
    xp = get_array_module(first)
    rows = math.prod(first.shape[:-1])
    grid = reduce_grid(rows, first.size + kl.size)
    partial, loss = xp.empty(grid, first.dtype), xp.empty((), first.dtype)
    loader.function("elbo.cu", f"{name}<{t}>")(
        (grid,), (REDUCE_BLOCK,), (*(contiguous(a, first.dtype) for a in terms), contiguous(kl, first.dtype),
                                  contiguous(beta, first.dtype), partial, loss, numpy.int64(rows),
                                  numpy.int64(first.shape[-1]), numpy.int64(kl.shape[-1])))
    return loss


def negative_elbo_fwd(ll, kl, beta):
    """L = (1/R) Σ_r (β·Σ_k kl_rk − Σ_j ll_rj), a 0-d array, for terms (…, D) and (…, K) of R examples and a
    0-d β, all of one dtype."""
    return _forward("negative_elbo_fwd", "negative_elbo", (ll,), kl, beta)


def bernoulli_negative_elbo_fwd(logits, x, kl, beta):
    """L = (1/R) Σ_r (β·Σ_k kl_rk − Σ_j log p(x_rj | logits_rj)), a 0-d array, for the decoder's Bernoulli logits and
    the data (…, D) of one shape, the KL terms (…, K) of the same R examples and a 0-d β, all of one dtype."""
    return _forward("bernoulli_negative_elbo_fwd", "bernoulli_negative_elbo", (logits, x), kl, beta)


def bernoulli_negative_elbo_bwd(g, beta, logits, x, kl_shape):
    """(l̄, k̄l) = ((ḡ/R)·(σ(logits) − x), β·ḡ/R) in the shapes of logits and of the KL terms, in one launch."""
    t = floating(g, "bernoulli_negative_elbo backward")
    xp = get_array_module(g)
    rows = math.prod(logits.shape[:-1])
    glogits, gkl = xp.empty(logits.shape, g.dtype), xp.empty(kl_shape, g.dtype)
    if glogits.size + gkl.size:
        grid, block = elementwise_launch(max(glogits.size, gkl.size))
        loader.function("elbo.cu", f"bernoulli_negative_elbo_bwd<{t}>")(
            grid, block, (contiguous(g), contiguous(beta, g.dtype), contiguous(logits, g.dtype), contiguous(x, g.dtype),
                          glogits, gkl, numpy.int64(rows), numpy.int64(glogits.size), numpy.int64(gkl.size)))
    return glogits, gkl


def negative_elbo_bwd(g, beta, rows, ll_shape, kl_shape):
    """(l̄l, k̄l) = (−ḡ/R, β·ḡ/R) in ``ll_shape`` and ``kl_shape``, in one launch: k̄l written out, l̄l one value
    seen through a broadcast view (as the CPU formula's)."""
    t = floating(g, "negative_elbo backward")
    xp = get_array_module(g)
    gll, gkl = xp.empty((), g.dtype), xp.empty(kl_shape, g.dtype)
    if math.prod(ll_shape) + gkl.size:
        grid, block = elementwise_launch(max(gkl.size, 1))
        loader.function("elbo.cu", f"negative_elbo_bwd<{t}>")(
            grid, block, (contiguous(g), contiguous(beta, g.dtype), gll, gkl, numpy.int64(rows), numpy.int64(gkl.size)))
    return xp.broadcast_to(gll, ll_shape), gkl
