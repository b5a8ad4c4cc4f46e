"""Categorical KL to a given prior over the last axis, one pass per row."""
import math

import numba
import numpy

from minivae._cpu import kernel


@kernel
def _fwd(logits, log_p, kl, q, diff):
    rows, k = logits.shape
    for r in numba.prange(rows):
        m = logits[r, 0]
        for j in range(1, k):
            m = max(m, logits[r, j])
        s = 0.0
        for j in range(k):
            s += math.exp(logits[r, j] - m)
        log_s = math.log(s)
        total = 0.0
        for j in range(k):
            log_q = logits[r, j] - m - log_s
            q[r, j] = math.exp(log_q)
            diff[r, j] = log_q - log_p[r, j]
            total += q[r, j] * diff[r, j]
        kl[r] = total


def categorical_kl_fwd(logits, log_p):
    """(KL per row, q, log q − log p) for logits and prior log-probabilities of the same shape."""
    k = logits.shape[-1]
    x = numpy.ascontiguousarray(logits).reshape(-1, k)
    lp = numpy.ascontiguousarray(log_p, dtype=logits.dtype).reshape(-1, k)
    kl = numpy.empty(x.shape[0], logits.dtype)
    q, diff = numpy.empty(x.shape, logits.dtype), numpy.empty(x.shape, logits.dtype)
    _fwd(x.size, x, lp, kl, q, diff)
    return kl.reshape(logits.shape[:-1]), q.reshape(logits.shape), diff.reshape(logits.shape)
