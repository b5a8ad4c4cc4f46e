"""minivae.distributions.constraints against torch.distributions.constraints, and support / arg_constraints on every
distribution as torch gives them."""
import numpy as np
import pytest

import minivae as mv
from minivae.distributions import (Bernoulli, Categorical, ContinuousBernoulli, ExpRelaxedCategorical, Independent,
                                   Normal, OneHotCategorical, RelaxedOneHotCategorical, constraints)
from minivae.random import Generator

NAN, INF = float("nan"), float("inf")
SCALARS = np.array([NAN, -INF, -2.5, -1.0, -1e-300, 0.0, 1e-300, 0.3, 0.5, 1.0, 1.0 + 1e-15, 2.0, 3.0, 7.5, INF])
VECTORS = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5 + 2e-7], [0.2, 0.3, 0.5 + 5e-6], [1.0, 1.0, 0.0],
                    [-0.0, 0.0, 1.0], [1.2, -0.2, 0.0], [NAN, 1.0, 0.0], [0.0, 0.0, 0.0], [2.0, -1.0, 0.0]])


def ours_and_torchs(torch):
    tc = torch.distributions.constraints
    return [("real", constraints.real, tc.real), ("positive", constraints.positive, tc.positive),
            ("nonnegative", constraints.nonnegative, tc.nonnegative),
            ("unit_interval", constraints.unit_interval, tc.unit_interval),
            ("boolean", constraints.boolean, tc.boolean),
            ("nonnegative_integer", constraints.nonnegative_integer, tc.nonnegative_integer),
            ("positive_integer", constraints.positive_integer, tc.positive_integer),
            ("integer_interval", constraints.integer_interval(-1, 3), tc.integer_interval(-1, 3)),
            ("greater_than", constraints.greater_than(0.3), tc.greater_than(0.3)),
            ("greater_than_eq", constraints.greater_than_eq(0.3), tc.greater_than_eq(0.3)),
            ("less_than", constraints.less_than(1.0), tc.less_than(1.0)),
            ("interval", constraints.interval(-1.0, 2.0), tc.interval(-1.0, 2.0)),
            ("half_open_interval", constraints.half_open_interval(-1.0, 2.0), tc.half_open_interval(-1.0, 2.0)),
            ("simplex", constraints.simplex, tc.simplex), ("one_hot", constraints.one_hot, tc.one_hot),
            ("real_vector", constraints.real_vector, tc.real_vector),
            ("independent2", constraints.independent(constraints.positive, 2), tc.independent(tc.positive, 2)),
            ("independent_simplex", constraints.independent(constraints.simplex, 1), tc.independent(tc.simplex, 1))]


def test_checks_match_torchs():
    """Each check, on scalars (NaN, ±inf, bounds, just past them, non-integers) and on rows (sums 1 within and beyond
    torch's 1e-6, negatives, NaN): the same booleans as torch's, of the same shape, event_dim and is_discrete."""
    torch = pytest.importorskip("torch")
    for name, ours, theirs in ours_and_torchs(torch):
        values = VECTORS if ours.event_dim else SCALARS
        if ours.event_dim == 2:
            values = VECTORS.reshape(5, 2, 3)
        got, want = ours.check(values), theirs.check(torch.tensor(values)).numpy()
        assert isinstance(got, np.ndarray) and got.dtype == bool, name
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert (ours.event_dim, ours.is_discrete) == (theirs.event_dim, theirs.is_discrete), name


def test_checks_by_the_definitions():
    """The same cases by hand (no torch)."""
    np.testing.assert_array_equal(constraints.real.check(SCALARS), ~np.isnan(SCALARS))
    np.testing.assert_array_equal(constraints.positive.check(SCALARS), SCALARS > 0)
    np.testing.assert_array_equal(constraints.unit_interval.check(SCALARS), (SCALARS >= 0) & (SCALARS <= 1))
    np.testing.assert_array_equal(constraints.boolean.check(SCALARS), (SCALARS == 0) | (SCALARS == 1))
    np.testing.assert_array_equal(constraints.integer_interval(0, 3).check(SCALARS),
                                  np.isin(SCALARS, [0.0, 1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(constraints.simplex.check(VECTORS),
                                  [True, True, True, False, False, True, False, False, False, False])
    np.testing.assert_array_equal(constraints.one_hot.check(VECTORS),
                                  [True, False, False, False, False, True, False, False, False, False])
    check = constraints.independent(constraints.unit_interval, 1).check(VECTORS)
    np.testing.assert_array_equal(check, [True, True, True, True, True, True, False, False, True, False])
    rows = np.ones((4, 2, 3))  # two rows an event: all six entries must be > 0
    rows[1, 1, 2], rows[3, 0, 0] = -1.0, 0.0
    np.testing.assert_array_equal(constraints.independent(constraints.positive, 2).check(rows),
                                  [True, False, True, False])
    assert constraints.independent(constraints.simplex, 1).event_dim == 2
    with pytest.raises(ValueError, match="at least 2 axes"):
        constraints.independent(constraints.real, 2).check(np.zeros(3))
    with pytest.raises(ValueError, match="reinterpreted_batch_ndims must be an integer >= 0"):
        constraints.independent(constraints.real, -1)
    with pytest.raises(TypeError, match="must be a Constraint"):
        constraints.independent("real", 1)
    assert constraints.real.check(1.0) and not constraints.positive.check([-1.0])[0]  # numbers and lists: NumPy's


def test_a_tensor_gives_a_tensor_and_the_device_stays_on_the_device():
    """check of a Tensor is a Tensor (no gradient, recorded as an array function); of a "cuda" tensor or array (the
    strict stand-in of tests/strict_array.py) a device result, with nothing copied to the host."""
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record, strict
    t = mv.tensor(SCALARS, requires_grad=True)
    out = constraints.positive.check(t)
    assert isinstance(out, mv.Tensor) and not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), SCALARS > 0)
    with use_numba(False), use_cuda_kernels(False), emulating():
        device = mv.tensor(VECTORS, device="cuda")
        with record() as log:
            results = [c.check(device) for c in (constraints.simplex, constraints.one_hot, constraints.real_vector,
                                                 constraints.independent(constraints.unit_interval, 1))]
            raw = constraints.simplex.check(strict.asarray(VECTORS))
        assert log == [], describe(log)
        assert all(r.device == "cuda" for r in results) and type(raw).__name__ == "StrictArray"
        np.testing.assert_array_equal(results[0].numpy(), constraints.simplex.check(VECTORS))


def distributions():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4))
    return [("Normal", Normal(mv.tensor(rng.normal(size=(2, 3))), mv.tensor(np.full((2, 3), 0.7)))),
            ("Bernoulli", Bernoulli(logits=mv.tensor(logits[..., 0]))),
            ("ContinuousBernoulli", ContinuousBernoulli(logits=mv.tensor(logits[..., 0]))),
            ("Categorical", Categorical(logits=mv.tensor(logits))),
            ("OneHotCategorical", OneHotCategorical(logits=mv.tensor(logits))),
            ("RelaxedOneHotCategorical", RelaxedOneHotCategorical(0.7, logits=mv.tensor(logits))),
            ("ExpRelaxedCategorical", ExpRelaxedCategorical(0.7, logits=mv.tensor(logits))),
            ("Independent", Independent(Normal(mv.tensor(logits), 1.0), 2))]


def torch_distribution(torch, name, d):
    td = torch.distributions
    if name == "Normal":
        return td.Normal(torch.tensor(d.loc.numpy()), torch.tensor(d.scale.numpy()))
    if name == "Independent":
        return td.Independent(td.Normal(torch.tensor(d.base_dist.loc.numpy()), 1.0), 2)
    logits = torch.tensor(d.logits.numpy() if name in ("Bernoulli", "ContinuousBernoulli") else d._given_logits.numpy())
    if name == "ExpRelaxedCategorical":  # (not exported by torch.distributions)
        from torch.distributions.relaxed_categorical import ExpRelaxedCategorical as T
        return T(torch.tensor(0.7, dtype=torch.float64), logits=logits)
    if name == "RelaxedOneHotCategorical":
        return td.RelaxedOneHotCategorical(torch.tensor(0.7, dtype=torch.float64), logits=logits)
    return getattr(td, name)(logits=logits)


def test_support_and_arg_constraints_are_torchs():
    """Every distribution's support and arg_constraints: the same constraint kinds and bounds as torch's, and the same
    verdicts on its own draws (all in the support) and on values outside it."""
    torch = pytest.importorskip("torch")
    for name, d in distributions():
        t = torch_distribution(torch, name, d)
        assert repr(d.support) == repr(t.support), name
        assert {k: repr(c) for k, c in d.arg_constraints.items()} == {k: repr(c) for k, c in t.arg_constraints.items()}
        x = d.sample((5,), rng=Generator(0))
        assert d.support.check(x).numpy().all(), name
        for bad in (np.nan, -0.5, 1.5, 2.0, 0.5):
            v = np.full(x.shape, bad)
            np.testing.assert_array_equal(d.support.check(v), t.support.check(torch.tensor(v)).numpy(),
                                          err_msg=f"{name} {bad}")


def test_supports_by_the_definitions():
    """The same kinds without torch: what each support admits."""
    supports = {name: d.support for name, d in distributions()}
    assert supports["Normal"] is constraints.real and supports["Bernoulli"] is constraints.boolean
    assert supports["ContinuousBernoulli"] is constraints.unit_interval
    assert supports["OneHotCategorical"] is constraints.one_hot
    assert supports["RelaxedOneHotCategorical"] is constraints.simplex
    assert supports["ExpRelaxedCategorical"] is constraints.real_vector
    cat = supports["Categorical"]
    assert (cat.lower_bound, cat.upper_bound, cat.is_discrete) == (0, 3, True)
    np.testing.assert_array_equal(cat.check(np.array([0, 3, 4, -1, 1.5])), [True, True, False, False, False])
    ind = supports["Independent"]
    assert ind.event_dim == 2 and ind.base_constraint is constraints.real
    assert Normal(0.0, 1.0).arg_constraints == {"loc": constraints.real, "scale": constraints.positive}


def test_construction_checks_are_unchanged():
    """What the distributions validated at construction (constant CPU parameters) they still do, and a parameter that
    requires grad or lives on the device is still not read."""
    with pytest.raises(ValueError, match="scale must be > 0"):
        Normal(0.0, -1.0)
    with pytest.raises(ValueError, match=r"probs must be in \[0, 1\]"):
        Bernoulli(1.5)
    with pytest.raises(ValueError, match="probs must be finite and >= 0"):
        Categorical(mv.tensor(np.array([0.5, -0.1])))
    Normal(0.0, mv.tensor(np.array([-1.0]), requires_grad=True))  # (not checked: a computed parameter)
