"""Cauchy.cdf and icdf through the real ops (ops.atan2, ops.tan; their graphs, not a detach trick): values and
gradients in loc, scale and x (or p) against the formulas ½ + atan(z)/π and loc + scale·tan(π(p − ½)) written out with
math in float64, and against torch in float32 and float64."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae.distributions import Cauchy

LOC, SCALE = 0.7, 2.5
X = [-1e3, -40.0, -3.0, 0.0, 0.7, 1.9, 25.0, 4e4]
P = [1e-3, 0.05, 0.2, 0.45, 0.5, 0.6, 0.8, 0.97, 0.999]


def _leaves(values, dtype=np.float64):
    return (mv.tensor(np.array(LOC, dtype), requires_grad=True), mv.tensor(np.array(SCALE, dtype), requires_grad=True),
            mv.tensor(np.array(values, dtype), requires_grad=True))


def test_cdf_is_half_plus_atan_over_pi_with_the_density_as_its_gradient():
    loc, scale, x = _leaves(X)
    g = np.random.default_rng(0).normal(size=len(X))
    c = Cauchy(loc, scale).cdf(x)
    c.backward(mv.tensor(g))
    z = [(v - LOC) / SCALE for v in X]
    density = [1 / (math.pi * SCALE * (1 + w * w)) for w in z]  # ∂cdf/∂x; ∂/∂loc = −that, ∂/∂scale = −z·that
    np.testing.assert_allclose(c.numpy(), [0.5 + math.atan(w) / math.pi for w in z], rtol=1e-13)
    np.testing.assert_allclose(x.grad, g * np.array(density), rtol=1e-14)
    np.testing.assert_allclose(loc.grad, -np.dot(g, density), rtol=1e-13)
    np.testing.assert_allclose(scale.grad, -np.dot(g, np.array(z) * density), rtol=1e-13)
    assert ops.OPS["atan2"] in _graph_ops(c)  # the op, in the graph (under the where of the limits at ±∞)


def test_icdf_is_loc_plus_scale_tan_with_its_derivatives():
    loc, scale, p = _leaves(P)
    g = np.random.default_rng(1).normal(size=len(P))
    q = Cauchy(loc, scale).icdf(p)
    q.backward(mv.tensor(g))
    t = np.array([math.tan(math.pi * (v - 0.5)) for v in P])
    np.testing.assert_allclose(q.numpy(), LOC + SCALE * t, rtol=1e-13)
    np.testing.assert_allclose(p.grad, g * SCALE * math.pi * (1 + t * t), rtol=1e-12)  # ∂/∂p = scale·π·(1 + tan²)
    np.testing.assert_allclose(loc.grad, g.sum(), rtol=1e-14)
    np.testing.assert_allclose(scale.grad, np.dot(g, t), rtol=1e-13)


def test_icdf_inverts_cdf():
    d = Cauchy(mv.tensor(np.array(LOC)), SCALE)
    np.testing.assert_allclose(d.icdf(d.cdf(mv.tensor(np.array(X[1:-1])))).numpy(), X[1:-1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cdf_and_icdf_match_torch(dtype):
    torch = pytest.importorskip("torch")
    tol = 4e-6 if dtype == np.float32 else 1e-12
    for method, values in (("cdf", X[1:-1]), ("icdf", P[1:-1])):
        loc, scale, v = _leaves(values, dtype)
        lt, st_, vt = (torch.tensor(np.array(a, dtype), requires_grad=True) for a in (LOC, SCALE, values))
        ours = getattr(Cauchy(loc, scale), method)(v)
        theirs = getattr(torch.distributions.Cauchy(lt, st_), method)(vt)
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=tol, atol=tol)
        g = np.linspace(0.5, 1.5, len(values)).astype(dtype)
        ours.backward(mv.tensor(g))
        theirs.backward(torch.tensor(g))
        for a, b in ((loc, lt), (scale, st_), (v, vt)):
            np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=tol, atol=tol, err_msg=method)


def _graph_ops(t):
    """The types of the ops in the graph that made ``t``."""
    seen, todo, kinds = set(), [t], set()
    while todo:
        t = todo.pop()
        if id(t) in seen or t._ctx is None:
            continue
        seen.add(id(t))
        kinds.add(type(t._ctx))
        todo.extend(t._parents)
    return kinds
