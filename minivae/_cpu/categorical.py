"""Categorical KL to a given prior over the last axis, one pass per row."""

import math

import numba
import numpy

from minivae._cpu import kernel
from minivae._cpu.rows import softmax_row


@kernel
def _fwd(logits, prior, kl, q, diff):
    rows, k = logits.shape
    for r in numba.prange(rows):
        m, log_s = softmax_row(logits, r, 1.0, q)
        pr = r % prior.shape[0]
        mp = prior[pr, 0]  # log p = (l_p − max l_p) − log Σ exp(l_p − max l_p), the prior's row normalized here
        for j in range(1, k):
            mp = max(mp, prior[pr, j])
        sp = 0.0
        for j in range(k):
            sp += math.exp(prior[pr, j] - mp)
        log_sp = math.log(sp)
        total = 0.0
        for j in range(k):
            diff[r, j] = (logits[r, j] - m - log_s) - ((prior[pr, j] - mp) - log_sp)
            total += q[r, j] * diff[r, j]
        kl[r] = total


def categorical_kl_fwd(logits, prior):
    """(KL per row, q, log q − log p) for logits (…, k) and the prior's logits as P rows of k (row r of the
    logits takes prior row r mod P), p = softmax(prior row)."""
    k = logits.shape[-1]
    x = numpy.ascontiguousarray(logits).reshape(-1, k)
    lp = numpy.ascontiguousarray(prior, dtype=logits.dtype)
    kl = numpy.empty(x.shape[0], logits.dtype)
    q, diff = numpy.empty(x.shape, logits.dtype), numpy.empty(x.shape, logits.dtype)
    _fwd(x.size, x, lp, kl, q, diff)
    return kl.reshape(logits.shape[:-1]), q.reshape(logits.shape), diff.reshape(logits.shape)
