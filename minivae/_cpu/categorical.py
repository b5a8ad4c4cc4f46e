"""Categorical KL to a given prior over the last axis, one pass per row."""

import numba
import numpy

from minivae._cpu import kernel
from minivae._cpu.rows import softmax_row


@kernel
def _fwd(logits, log_p, kl, q, diff):
    rows, k = logits.shape
    for r in numba.prange(rows):
        m, log_s = softmax_row(logits, r, 1.0, q)
        total = 0.0
        for j in range(k):
            diff[r, j] = (logits[r, j] - m - log_s) - log_p[r, j]
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
