"""Categorical KL to a given prior over the last axis, a warp (or a group of lanes) per row: kernels/categorical_kl.cu."""
import numpy

from minivae._backend import get_array_module
from minivae._gpu import contiguous, floating, loader, row_lanes, rows_of, warp_per_row


def _launch(name, t, rows, k, args):
    if rows:
        lanes = row_lanes(k)
        loader.function("categorical_kl.cu", f"{name}<{t}, {lanes}>")(*warp_per_row(rows, lanes), args)


def categorical_kl_fwd(logits, prior):
    """(KL per row, q, log q − log p (0 where q = 0)) for logits (…, k) and the prior's logits as P rows of k (row r
    of the logits takes prior row r mod P), p = softmax(prior row): ops.losses.CategoricalKL's formula."""
    t = floating(logits, "categorical_kl")
    x, lp = rows_of(logits), rows_of(prior, logits.dtype)
    xp = get_array_module(logits)
    rows, k = x.shape
    kl, q, diff = xp.empty(rows, x.dtype), xp.empty(x.shape, x.dtype), xp.empty(x.shape, x.dtype)
    _launch("categorical_kl_fwd", t, rows, k,
            (x, lp, kl, q, diff, numpy.int32(rows), numpy.int32(k), numpy.int32(lp.shape[0])))
    return kl.reshape(logits.shape[:-1]), q.reshape(logits.shape), diff.reshape(logits.shape)


def categorical_kl_bwd(g, q, diff, kl):
    """l̄ = ḡ·q ⊙ (diff − KL), row by row."""
    t = floating(q, "categorical_kl backward")
    qr, dr = rows_of(q), rows_of(diff)
    rows, k = qr.shape
    gl = get_array_module(q).empty(qr.shape, q.dtype)
    _launch("categorical_kl_bwd", t, rows, k,
            (contiguous(g, q.dtype).reshape(-1), qr, dr, contiguous(kl).reshape(-1), gl, numpy.int32(rows), numpy.int32(k)))
    return gl.reshape(q.shape)
