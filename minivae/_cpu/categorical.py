"""Categorical KL to a given prior over the last axis, one pass per row."""

import numba
import numpy

from minivae._cpu import kernel
from minivae._cpu.rows import softmax_row
from minivae._cpu.vector import dot_any_order


@kernel
def _fwd(logits, prior, log_p, kl, q, diff):
    rows, k = logits.shape
    for pr in range(prior.shape[0]):  # log p = log_softmax(prior row), once per prior row, not per posterior row
        mp, log_sp = softmax_row(prior, pr, 1.0, log_p)
        for j in range(k):
            log_p[pr, j] = (prior[pr, j] - mp) - log_sp
    for r in numba.prange(rows):
        m, log_s = softmax_row(logits, r, 1.0, q)
        pr = r % prior.shape[0]
        for j in range(k):  # 0 where q_j = 0: the term 0·(log q_j − log p_j) is 0, not NaN at log q_j = −inf
            diff[r, j] = 0.0 if q[r, j] == 0 else (logits[r, j] - m - log_s) - log_p[pr, j]
        kl[r] = dot_any_order(q[r], diff[r])


def categorical_kl_fwd(logits, prior):
    """(KL per row, q, log q − log p (0 where q = 0)) for logits (…, k) and the prior's logits as P rows of k (row r
    of the logits takes prior row r mod P), p = softmax(prior row): ops.losses.CategoricalKL's formula."""
    k = logits.shape[-1]
    x = numpy.ascontiguousarray(logits).reshape(-1, k)
    lp = numpy.ascontiguousarray(prior, dtype=logits.dtype)
    kl = numpy.empty(x.shape[0], logits.dtype)
    q, diff = numpy.empty(x.shape, logits.dtype), numpy.empty(x.shape, logits.dtype)
    _fwd(x.size, x, lp, numpy.empty(lp.shape, numpy.float64), kl, q, diff)
    return kl.reshape(logits.shape[:-1]), q.reshape(logits.shape), diff.reshape(logits.shape)
