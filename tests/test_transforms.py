"""minivae.distributions.transforms and TransformedDistribution: each transform's round trip and log-det against a float64
central-difference Jacobian (the full Jacobian's slogdet for event_dim 1), the stable log-dets far out, torch's values,
shapes and attributes (torch skipped where absent), and TransformedDistribution's log_prob against LogNormal's and
torch's, its sampling, and mc_kl through it."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import LogNormal, Normal, TransformedDistribution, kl_divergence, mc_kl
from minivae.distributions import transforms as T
from minivae.random import Generator

R = np.random.default_rng(0)


def numerical_jacobian(f, x, h=1e-6):
    """∂f/∂x of a map (D,) → (D,) by central differences in float64: (D, D), row i the output's entry i."""
    x = np.asarray(x, np.float64)
    cols = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=-1)


def values(t, x):
    return t(mv.tensor(x)).numpy()


ELEMENTWISE = {
    "exp": (lambda: T.ExpTransform(), lambda n: R.normal(size=n)),
    "affine": (lambda: T.AffineTransform(0.5, -2.0), lambda n: R.normal(size=n)),
    "affine_tensor": (lambda: T.AffineTransform(mv.tensor(R.normal(size=4)), mv.tensor(R.normal(size=4) + 3)),
                      lambda n: R.normal(size=n)),
    "sigmoid": (lambda: T.SigmoidTransform(), lambda n: 3 * R.normal(size=n)),
    "tanh": (lambda: T.TanhTransform(), lambda n: 2 * R.normal(size=n)),
    "softplus": (lambda: T.SoftplusTransform(), lambda n: 3 * R.normal(size=n)),
    "power": (lambda: T.PowerTransform(2.5), lambda n: R.random(n) + 0.2),
    "power_negative": (lambda: T.PowerTransform(-1.5), lambda n: R.random(n) + 0.2),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_round_trip_and_log_det_against_central_differences(name):
    make, draw = ELEMENTWISE[name]
    t, x = make(), draw(4)
    y = t(mv.tensor(x))
    np.testing.assert_allclose(t.inv(y).numpy(), x, rtol=1e-12, atol=1e-12)
    jac = numerical_jacobian(lambda v: values(t, v), x)
    np.testing.assert_allclose(jac, np.diag(np.diag(jac)), atol=1e-9)  # elementwise: a diagonal Jacobian
    log_det = t.log_abs_det_jacobian(mv.tensor(x), y).numpy()
    assert log_det.shape == x.shape
    np.testing.assert_allclose(log_det, np.log(np.abs(np.diag(jac))), rtol=1e-7, atol=1e-8)
    # the inverse's log-det is minus the transform's, at the swapped pair
    np.testing.assert_allclose(t.inv.log_abs_det_jacobian(y, mv.tensor(x)).numpy(), -log_det, rtol=1e-12)
    assert t.inv.inv is t and t.bijective


def test_affine_of_event_dim_one_sums_its_log_det_and_matches_the_full_jacobian():
    scale = R.normal(size=3)
    t = T.AffineTransform(mv.tensor(R.normal(size=3)), mv.tensor(scale), event_dim=1)
    x = R.normal(size=(2, 3))
    log_det = t.log_abs_det_jacobian(mv.tensor(x), t(mv.tensor(x))).numpy()
    assert log_det.shape == (2,) and t.event_dim == t.domain.event_dim == 1
    for row, ld in zip(x, log_det):
        np.testing.assert_allclose(ld, np.linalg.slogdet(numerical_jacobian(lambda v: values(t, v), row))[1],
                                   rtol=1e-8)


def test_compose_sums_each_part_at_its_own_point_over_the_event():
    """Affine(event_dim 1) then tanh then exp: the log-det of the composition is the full Jacobian's log|det| (each
    part's term at the point it is applied to, the elementwise parts' terms summed over the event's axis)."""
    t = T.ComposeTransform([T.AffineTransform(mv.tensor(R.normal(size=3)), mv.tensor(R.normal(size=3) + 2),
                                              event_dim=1), T.TanhTransform(), T.ExpTransform()])
    assert t.domain.event_dim == t.codomain.event_dim == 1
    x = R.normal(size=(4, 3)) * 0.5
    y = t(mv.tensor(x))
    np.testing.assert_allclose(t.inv(y).numpy(), x, rtol=1e-10, atol=1e-12)
    log_det = t.log_abs_det_jacobian(mv.tensor(x), y).numpy()
    assert log_det.shape == (4,)
    for row, ld in zip(x, log_det):
        np.testing.assert_allclose(ld, np.linalg.slogdet(numerical_jacobian(lambda v: values(t, v), row))[1],
                                   rtol=1e-8)
    empty = T.ComposeTransform([])
    np.testing.assert_array_equal(empty.log_abs_det_jacobian(mv.tensor(x), mv.tensor(x)).numpy(), np.zeros((4, 3)))


def test_the_log_dets_stay_finite_far_out_in_float32():
    x = mv.tensor(np.array([-40.0, -20.0, 20.0, 40.0], np.float32))
    # log(1 − tanh² x) = log 4 − 2|x| − 2 log1p(e^{−2|x|}) and log σ'(x) = −|x| − 2 log1p(e^{−|x|}), written out
    a = np.abs(x.numpy().astype(np.float64))
    tanh = T.TanhTransform().log_abs_det_jacobian(x, None).numpy()
    np.testing.assert_allclose(tanh, math.log(4) - 2 * a - 2 * np.log1p(np.exp(-2 * a)), rtol=1e-6)
    sigmoid = T.SigmoidTransform().log_abs_det_jacobian(x, None).numpy()
    np.testing.assert_allclose(sigmoid, -a - 2 * np.log1p(np.exp(-a)), rtol=1e-6)
    softplus = T.SoftplusTransform().log_abs_det_jacobian(x, None).numpy()
    np.testing.assert_allclose(softplus, -np.logaddexp(0, -x.numpy().astype(np.float64)), rtol=1e-6)


def test_a_cached_transform_maps_its_own_output_back_to_the_same_object():
    t = T.TanhTransform(cache_size=1)
    x = mv.tensor(np.array([30.0]))  # tanh(30) rounds to 1: the inverse formula would give inf
    y = t(x)
    assert t.inv(y) is x and t(x) is y
    with np.errstate(divide="ignore"):
        assert np.isinf(T.TanhTransform().inv(y).numpy()).all()
    with pytest.raises(ValueError, match="cache_size"):
        T.ExpTransform(cache_size=2)


def test_abs_transform():
    t = T.AbsTransform()
    x = mv.tensor(np.array([-2.0, 3.0]))
    np.testing.assert_array_equal(t(x).numpy(), [2.0, 3.0])
    np.testing.assert_array_equal(t.inv(t(x)).numpy(), [2.0, 3.0])
    assert not t.bijective and t.codomain is not t.domain


# ---- TransformedDistribution ------------------------------------------------------------------------------------
def test_normal_through_exp_is_lognormal():
    loc, scale = R.normal(size=(2, 3)), R.random((2, 3)) + 0.3
    d = TransformedDistribution(Normal(mv.tensor(loc), mv.tensor(scale)), T.ExpTransform())
    x = mv.tensor(R.random((5, 2, 3)) * 3 + 0.01)
    np.testing.assert_allclose(d.log_prob(x).numpy(), LogNormal(mv.tensor(loc), mv.tensor(scale)).log_prob(x).numpy(),
                               rtol=1e-12)
    assert d.batch_shape == (2, 3) and d.event_shape == () and d.has_rsample
    # rsample: the Normal's draw of the same noise, exponentiated
    np.testing.assert_allclose(d.rsample((4,), rng=Generator(1)).numpy(),
                               np.exp(Normal(mv.tensor(loc), mv.tensor(scale)).rsample((4,), rng=Generator(1)).numpy()))
    assert d.sample((4,), rng=Generator(1)).shape == (4, 2, 3)
    wide = d.expand((5, 2, 3))
    assert wide.batch_shape == (5, 2, 3) and wide.base_dist.batch_shape == (5, 2, 3)
    np.testing.assert_allclose(wide.log_prob(x).numpy(), np.broadcast_to(d.log_prob(x).numpy(), (5, 2, 3)), rtol=0)


def test_an_event_transform_sums_the_densities_and_log_dets_over_the_event():
    """Normal of batch (2, 3) through an affine map of event_dim 1 and exp: event_shape (3,), log_prob per row:
    Σ_d log N(x_d; loc_d, scale_d) − Σ_d log|a_d| − Σ_d log y_d at x = (log y − b)/a, written out."""
    loc, scale, b, a = R.normal(size=(2, 3)), R.random((2, 3)) + 0.5, R.normal(size=3), R.normal(size=3) + 2
    d = TransformedDistribution(Normal(mv.tensor(loc), mv.tensor(scale)),
                                [T.AffineTransform(mv.tensor(b), mv.tensor(a), event_dim=1), T.ExpTransform()])
    assert d.batch_shape == (2,) and d.event_shape == (3,)
    y = np.exp(R.normal(size=(4, 2, 3)))
    x = (np.log(y) - b) / a
    expected = (-0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi)).sum(-1)
    expected = expected - np.log(np.abs(a)).sum() - np.log(y).sum(-1)
    np.testing.assert_allclose(d.log_prob(mv.tensor(y)).numpy(), expected, rtol=1e-12)


def test_mc_kl_through_a_transformed_distribution():
    """KL(TD(N(a, b), exp) ‖ LogNormal(c, d)) = KL(N(a, b) ‖ N(c, d)); mc_kl of 40000 draws within 5 standard errors."""
    p = TransformedDistribution(Normal(mv.tensor(np.array([0.3])), mv.tensor(np.array([0.8]))), T.ExpTransform())
    q = LogNormal(mv.tensor(np.array([-0.2])), mv.tensor(np.array([1.3])))
    exact = math.log(1.3 / 0.8) + (0.8 ** 2 + 0.5 ** 2) / (2 * 1.3 ** 2) - 0.5
    np.testing.assert_allclose(kl_divergence(q.base_dist.__class__(0.3, 0.8), q.base_dist).numpy(), exact, rtol=1e-6)
    z = p.sample((40000,), rng=Generator(3))
    terms = (p.log_prob(z) - q.log_prob(z)).numpy()
    estimate = mc_kl(p, q, 40000, Generator(3)).numpy()
    np.testing.assert_allclose(estimate, terms.mean(0), rtol=1e-12)
    assert abs(estimate[0] - exact) < 5 * terms.std() / math.sqrt(40000)


def test_bad_arguments():
    with pytest.raises(TypeError, match="base_distribution"):
        TransformedDistribution(3.0, T.ExpTransform())
    with pytest.raises(ValueError, match="Transform"):
        TransformedDistribution(Normal(0.0, 1.0), [lambda x: x])
    with pytest.raises(ValueError, match="at least 1 dimensions"):
        TransformedDistribution(Normal(0.0, 1.0), T.AffineTransform(0.0, 2.0, event_dim=1))
    with pytest.raises(ValueError, match="event_dim"):
        T.AffineTransform(0.0, 1.0, event_dim=-1)


# ---- against torch ---------------------------------------------------------------------------------------------
def _pairs(torch):
    tt = torch.distributions.transforms
    loc, scale = R.normal(size=3), R.normal(size=3) + 2
    return [
        (T.ExpTransform(), tt.ExpTransform(), R.normal(size=(2, 3))),
        (T.AffineTransform(0.5, -2.0), tt.AffineTransform(0.5, -2.0), R.normal(size=(2, 3))),
        (T.AffineTransform(mv.tensor(loc), mv.tensor(scale), event_dim=1),
         tt.AffineTransform(torch.tensor(loc), torch.tensor(scale), event_dim=1), R.normal(size=(2, 3))),
        (T.SigmoidTransform(), tt.SigmoidTransform(), 4 * R.normal(size=(2, 3))),
        (T.TanhTransform(), tt.TanhTransform(), 3 * R.normal(size=(2, 3))),
        (T.SoftplusTransform(), tt.SoftplusTransform(), 3 * R.normal(size=(2, 3))),
        (T.PowerTransform(1.7), tt.PowerTransform(torch.tensor(1.7, dtype=torch.float64)), R.random((2, 3)) + 0.1),
        (T.ComposeTransform([T.AffineTransform(mv.tensor(loc), mv.tensor(scale), event_dim=1), T.SigmoidTransform()]),
         tt.ComposeTransform([tt.AffineTransform(torch.tensor(loc), torch.tensor(scale), event_dim=1),
                              tt.SigmoidTransform()]), R.normal(size=(2, 3))),
    ]


def test_transforms_match_torch():
    torch = pytest.importorskip("torch")
    for i, (ours, theirs, x) in enumerate(_pairs(torch)):
        tx = torch.tensor(x)
        y, ty = ours(mv.tensor(x)), theirs(tx)
        np.testing.assert_allclose(y.numpy(), ty.numpy(), rtol=1e-12, err_msg=str(i))
        np.testing.assert_allclose(ours.inv(y).numpy(), theirs.inv(ty).numpy(), rtol=1e-10, atol=1e-12, err_msg=str(i))
        np.testing.assert_allclose(ours.log_abs_det_jacobian(mv.tensor(x), y).numpy(),
                                   theirs.log_abs_det_jacobian(tx, ty).numpy(), rtol=1e-10, atol=1e-12, err_msg=str(i))
        assert ours.domain.event_dim == theirs.domain.event_dim, i
        assert ours.codomain.event_dim == theirs.codomain.event_dim, i
        assert ours.bijective == theirs.bijective, i
        ours_sign, theirs_sign = ours.sign, theirs.sign
        np.testing.assert_array_equal(ours_sign.numpy() if hasattr(ours_sign, "numpy") else ours_sign,
                                      theirs_sign.numpy() if hasattr(theirs_sign, "numpy") else theirs_sign)


def test_transformed_distributions_match_torch():
    torch = pytest.importorskip("torch")
    td, tt = torch.distributions, torch.distributions.transforms
    loc, scale, b, a = R.normal(size=(2, 3)), R.random((2, 3)) + 0.5, R.normal(size=3), R.normal(size=3) + 2
    ours = TransformedDistribution(Normal(mv.tensor(loc), mv.tensor(scale)),
                                   [T.AffineTransform(mv.tensor(b), mv.tensor(a), event_dim=1), T.SigmoidTransform()])
    theirs = td.TransformedDistribution(td.Normal(torch.tensor(loc), torch.tensor(scale)),
                                        [tt.AffineTransform(torch.tensor(b), torch.tensor(a), event_dim=1),
                                         tt.SigmoidTransform()])
    assert ours.batch_shape == tuple(theirs.batch_shape) and ours.event_shape == tuple(theirs.event_shape)
    y = 1 / (1 + np.exp(-R.normal(size=(5, 2, 3))))
    np.testing.assert_allclose(ours.log_prob(mv.tensor(y)).numpy(), theirs.log_prob(torch.tensor(y)).numpy(),
                               rtol=1e-10)
    # elementwise transforms of a Normal of batch (2, 3): torch's shapes and densities
    ours = TransformedDistribution(Normal(mv.tensor(loc), mv.tensor(scale)), [T.TanhTransform(), T.ExpTransform()])
    theirs = td.TransformedDistribution(td.Normal(torch.tensor(loc), torch.tensor(scale)),
                                        [tt.TanhTransform(), tt.ExpTransform()])
    assert ours.batch_shape == tuple(theirs.batch_shape) and ours.event_shape == tuple(theirs.event_shape)
    y = np.exp(np.tanh(R.normal(size=(5, 2, 3))))
    np.testing.assert_allclose(ours.log_prob(mv.tensor(y)).numpy(), theirs.log_prob(torch.tensor(y)).numpy(),
                               rtol=1e-9)


def test_cdf_and_icdf_go_through_the_transforms_and_flip_where_they_decrease():
    """Y = loc + scale·X, X ~ N(0, 1), scale of both signs: F_Y(y) = Φ((y − loc)/scale) where scale > 0 and
    1 − Φ((y − loc)/scale) where scale < 0 (statistics.NormalDist, independent of minivae); icdf inverts it; exp of a
    Normal is the LogNormal."""
    import statistics
    phi = statistics.NormalDist()
    loc, scale = np.array([2.0, 2.0, -1.0]), np.array([-3.0, 0.5, 4.0])
    d = TransformedDistribution(Normal(mv.tensor(np.zeros(3)), mv.tensor(np.ones(3))),
                                [T.AffineTransform(mv.tensor(loc), mv.tensor(scale))])
    y = np.array([-1.0, 2.3, 7.0])
    expected = [phi.cdf(u) if s > 0 else 1 - phi.cdf(u) for u, s in zip((y - loc) / scale, scale)]
    np.testing.assert_allclose(d.cdf(mv.tensor(y)).numpy(), expected, rtol=1e-12)
    p = np.array([0.1, 0.5, 0.97])
    expected = [lo + s * phi.inv_cdf(q if s > 0 else 1 - q) for lo, s, q in zip(loc, scale, p)]
    np.testing.assert_allclose(d.icdf(mv.tensor(p)).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(d.cdf(d.icdf(mv.tensor(p))).numpy(), p, rtol=1e-12)
    log_normal = TransformedDistribution(Normal(0.5, 2.0), [T.ExpTransform()])
    x = mv.tensor(np.array([0.3, 4.0]))
    np.testing.assert_allclose(log_normal.cdf(x).numpy(), LogNormal(0.5, 2.0).cdf(x).numpy(), rtol=1e-6)


def test_cdf_against_torch():
    torch = pytest.importorskip("torch")
    td = torch.distributions
    ours = TransformedDistribution(Normal(0.3, 1.7), [T.AffineTransform(1.0, -2.0), T.ExpTransform()])
    theirs = td.TransformedDistribution(td.Normal(torch.tensor(0.3, dtype=torch.float64), 1.7),
                                        [td.AffineTransform(1.0, -2.0), td.ExpTransform()])
    y = np.array([0.05, 0.7, 3.0])
    np.testing.assert_allclose(ours.cdf(mv.tensor(y)).numpy(), theirs.cdf(torch.tensor(y)).numpy(), rtol=1e-6)
    p = np.array([0.2, 0.6])
    np.testing.assert_allclose(ours.icdf(mv.tensor(p)).numpy(), theirs.icdf(torch.tensor(p)).numpy(), rtol=1e-6)
