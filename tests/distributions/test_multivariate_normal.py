"""MultivariateNormal: against torch.distributions.MultivariateNormal (each parameterisation, values and gradients,
float64 and float32, expand, constraints, KL), by the formulas written out with numpy.linalg, by its draws (mean and
covariance, the KL by Monte Carlo), the errors for bad parameters, and on the strict CuPy stand-in."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae.distributions import Independent, Laplace, MultivariateNormal, Normal, constraints, kl_divergence, mc_kl
from minivae.random import Generator

N = 3


def spd(rng, shape):
    x = rng.normal(size=shape)
    return x @ x.swapaxes(-1, -2) + shape[-1] * np.eye(shape[-1])


def parameters(seed=0):
    """loc (4, 1, n) and a covariance (2, n, n): batch shape (4, 2)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(4, 1, N)), spd(rng, (2, N, N))


def matrix_for(name, cov):
    return {"covariance_matrix": cov, "precision_matrix": np.linalg.inv(cov),
            "scale_tril": np.linalg.cholesky(cov)}[name]


def numpy_log_prob(x, mu, cov):
    """−½ (n log 2π + log|Σ| + (x − μ)ᵀ Σ⁻¹ (x − μ)), by numpy.linalg's slogdet and solve."""
    d = np.broadcast_to(x - mu, np.broadcast_shapes(x.shape, mu.shape, cov.shape[:-1]))
    covb = np.broadcast_to(cov, d.shape + (d.shape[-1],))
    quad = (d * np.linalg.solve(covb, d[..., None])[..., 0]).sum(-1)
    return -0.5 * (d.shape[-1] * math.log(2 * math.pi) + np.linalg.slogdet(covb)[1] + quad)


def numpy_kl(mu_p, cov_p, mu_q, cov_q):
    """½[tr(Σ_q⁻¹Σ_p) + (μ_q − μ_p)ᵀΣ_q⁻¹(μ_q − μ_p) − n + log|Σ_q| − log|Σ_p|], with inverses."""
    inv = np.linalg.inv(cov_q)
    d = mu_q - mu_p
    return 0.5 * (np.trace(inv @ cov_p, axis1=-2, axis2=-1) + np.einsum("...i,...ij,...j->...", d, inv, d) - mu_p.shape[-1]
                  + np.linalg.slogdet(cov_q)[1] - np.linalg.slogdet(cov_p)[1])


# ---- against torch -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["covariance_matrix", "precision_matrix", "scale_tril"])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-11), (np.float32, 2e-5)])
def test_values_and_gradients_match_torch(name, dtype, rtol):
    torch = pytest.importorskip("torch")
    mu, cov = parameters()
    matrix = matrix_for(name, cov)
    x = np.random.default_rng(1).normal(size=(5, 4, 2, N))
    ours = [mv.tensor(a.astype(dtype), requires_grad=True) for a in (mu, matrix)]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in (mu, matrix)]
    d = MultivariateNormal(ours[0], **{name: ours[1]})
    t = torch.distributions.MultivariateNormal(theirs[0], **{name: theirs[1]})
    assert (d.batch_shape, d.event_shape) == (tuple(t.batch_shape), tuple(t.event_shape)) == ((4, 2), (N,))
    g = np.random.default_rng(2)
    for what in ("log_prob", "entropy", "mean", "mode", "variance", "stddev", "covariance_matrix", "precision_matrix",
                 "scale_tril"):
        for a in ours + theirs:
            a.grad = None
        if what == "log_prob":
            o, r = d.log_prob(mv.tensor(x.astype(dtype))), t.log_prob(torch.tensor(x.astype(dtype)))
        elif what == "entropy":
            o, r = d.entropy(), t.entropy()
        else:
            o, r = getattr(d, what), getattr(t, what)
        assert o.dtype == dtype and o.shape == tuple(r.shape), what
        np.testing.assert_allclose(o.numpy(), r.detach().numpy(), rtol=rtol, atol=rtol, err_msg=what)
        cot = g.normal(size=o.shape).astype(dtype)
        (o * mv.tensor(cot)).sum().backward(retain_graph=True)  # (L, made once, is in every graph)
        if r.requires_grad:
            (r * torch.tensor(cot)).sum().backward(retain_graph=True)
        for a, b, p in zip(ours, theirs, ("loc", name)):
            if b.grad is None:
                assert a.grad is None or not a.grad.any(), (what, p)
                continue
            expected = b.grad.numpy()
            if (what, p) == ("precision_matrix", "scale_tril"):
                # torch's cholesky_inverse sends gradient to the upper triangle, which its forward does not read (a
                # change there changes nothing); ours, by triangular solves, is the derivative: 0 there
                assert not np.triu(a.grad, 1).any()
                expected = np.tril(expected)
            np.testing.assert_allclose(a.grad, expected, rtol=10 * rtol, atol=10 * rtol, err_msg=f"{what} {p}")
    e, te = d.expand((3, 4, 2)), t.expand((3, 4, 2))
    assert e.batch_shape == tuple(te.batch_shape) and e.scale_tril.shape == tuple(te.scale_tril.shape)
    np.testing.assert_allclose(e.log_prob(mv.tensor(x[:3].astype(dtype))).numpy(),
                               te.log_prob(torch.tensor(x[:3].astype(dtype))).detach().numpy(), rtol=rtol)
    np.testing.assert_allclose(getattr(e, name).numpy(), getattr(te, name).detach().numpy(), rtol=rtol, atol=rtol)


def test_kl_matches_torch_values_and_gradients():
    torch = pytest.importorskip("torch")
    td = torch.distributions
    rng = np.random.default_rng(3)
    mu_p, cov_p = rng.normal(size=(2, 1, N)), spd(rng, (3, N, N))
    mu_q, lower_q = rng.normal(size=N), np.linalg.cholesky(spd(rng, (N, N)))
    ours = [mv.tensor(a, requires_grad=True) for a in (mu_p, cov_p, mu_q, lower_q)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (mu_p, cov_p, mu_q, lower_q)]
    p, q = MultivariateNormal(ours[0], ours[1]), MultivariateNormal(ours[2], scale_tril=ours[3])
    tp, tq = td.MultivariateNormal(theirs[0], theirs[1]), td.MultivariateNormal(theirs[2], scale_tril=theirs[3])
    for (a, b), (ta, tb) in [((p, q), (tp, tq)), ((q, p), (tq, tp))]:
        for t in ours + theirs:
            t.grad = None
        kl, tkl = kl_divergence(a, b), td.kl_divergence(ta, tb)
        assert kl.shape == tuple(tkl.shape) == (2, 3)
        np.testing.assert_allclose(kl.numpy(), tkl.detach().numpy(), rtol=1e-12)
        cot = rng.normal(size=kl.shape)
        (kl * mv.tensor(cot)).sum().backward(retain_graph=True)
        (tkl * torch.tensor(cot)).sum().backward(retain_graph=True)
        for o, r in zip(ours, theirs):
            np.testing.assert_allclose(o.grad, r.grad.numpy(), rtol=1e-10, atol=1e-12)


def probes():
    """Matrices to judge: positive-definite, negative-definite, non-symmetric, lower Cholesky factors and their
    transposes and negatives, the identity, a singular diagonal, NaN, an indefinite symmetric one."""
    rng = np.random.default_rng(4)
    cov = spd(rng, (N, N))
    lower = np.linalg.cholesky(cov)
    return [cov, -cov, cov + np.triu(np.ones((N, N)), 1), lower, lower.T, -lower, np.eye(N), np.diag([1.0, 0.0, 1.0]),
            np.full((N, N), np.nan), np.array([[1.0, 2, 0], [2, 1, 0], [0, 0, 1]])]


def test_constraints_by_the_definitions():
    """positive_definite: symmetric with eigenvalues > 0; lower_cholesky: lower triangular, diagonal > 0; each matrix of a
    batch judged alone."""
    values = np.stack(probes())
    assert constraints.positive_definite.check(values).tolist() == [True, False, False, False, False, False, True, False,
                                                                   False, False]
    assert constraints.lower_cholesky.check(values).tolist() == [False, False, False, True, False, False, True, False,
                                                                False, False]
    assert constraints.positive_definite.event_dim == constraints.lower_cholesky.event_dim == 2
    lower_nan = np.tril(np.ones((N, N)))
    lower_nan[2, 0] = np.nan
    assert not constraints.lower_cholesky.check(lower_nan)


def test_constraints_and_support_are_torchs():
    torch = pytest.importorskip("torch")
    mu, cov = parameters()
    d, t = MultivariateNormal(mu, cov), torch.distributions.MultivariateNormal(torch.tensor(mu), torch.tensor(cov))
    assert repr(d.support) == repr(t.support)
    assert {k: repr(c) for k, c in d.arg_constraints.items()} == {k: repr(c) for k, c in t.arg_constraints.items()}
    values = np.stack(probes())
    for name in ("covariance_matrix", "scale_tril"):
        ours = d.arg_constraints[name].check(values)
        assert ours.shape == (len(values),)
        for k, v in enumerate(values):  # one at a time: see _PositiveDefinite on torch's batches
            assert ours[k] == t.arg_constraints[name].check(torch.tensor(v)).item(), (name, k)
    lower_nan = np.tril(np.ones((N, N)))
    lower_nan[2, 0] = np.nan
    assert not t.arg_constraints["scale_tril"].check(torch.tensor(lower_nan))


# ---- by the formulas -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["covariance_matrix", "precision_matrix", "scale_tril"])
def test_log_prob_entropy_and_moments_by_numpy_linalg(name):
    mu, cov = parameters(5)
    d = MultivariateNormal(mu, **{name: matrix_for(name, cov)})
    x = np.random.default_rng(6).normal(size=(5, 4, 2, N))
    np.testing.assert_allclose(d.log_prob(x).numpy(), numpy_log_prob(x, mu, cov), rtol=1e-12)
    entropy = 0.5 * N * (1 + math.log(2 * math.pi)) + 0.5 * np.linalg.slogdet(cov)[1]
    np.testing.assert_allclose(d.entropy().numpy(), np.broadcast_to(entropy, (4, 2)), rtol=1e-12)
    np.testing.assert_allclose(d.covariance_matrix.numpy(), np.broadcast_to(cov, (4, 2, N, N)), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(d.precision_matrix.numpy(), np.broadcast_to(np.linalg.inv(cov), (4, 2, N, N)),
                               rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(d.variance.numpy(), np.broadcast_to(np.diagonal(cov, 0, -2, -1), (4, 2, N)), rtol=1e-12)
    np.testing.assert_array_equal(d.mean.numpy(), np.broadcast_to(mu, (4, 2, N)))
    np.testing.assert_array_equal(d.mode.numpy(), d.mean.numpy())
    assert d.has_rsample and d.support is constraints.real_vector


def test_a_diagonal_covariance_is_independent_normals():
    rng = np.random.default_rng(7)
    mu, sigma = rng.normal(size=(2, N)), rng.uniform(0.5, 2, (2, N))
    d, ref = MultivariateNormal(mu, scale_tril=sigma[..., None] * np.eye(N)), Normal(mu, sigma)
    x = rng.normal(size=(4, 2, N))
    np.testing.assert_allclose(d.log_prob(x).numpy(), ref.log_prob(x).numpy().sum(-1), rtol=1e-13)
    np.testing.assert_allclose(d.entropy().numpy(), ref.entropy().numpy().sum(-1), rtol=1e-13)


def test_kl_by_the_formula_zero_to_itself_and_by_monte_carlo():
    rng = np.random.default_rng(8)
    mu_p, cov_p, mu_q, cov_q = rng.normal(size=(2, N)), spd(rng, (2, N, N)), rng.normal(size=N), spd(rng, (N, N))
    p, q = MultivariateNormal(mu_p, cov_p), MultivariateNormal(mu_q, precision_matrix=np.linalg.inv(cov_q))
    np.testing.assert_allclose(kl_divergence(p, q).numpy(), numpy_kl(mu_p, cov_p, mu_q, cov_q), rtol=1e-11)
    np.testing.assert_allclose(kl_divergence(q, p).numpy(), numpy_kl(mu_q, cov_q, mu_p, cov_p), rtol=1e-11)
    np.testing.assert_allclose(kl_divergence(p, p).numpy(), 0.0, atol=1e-13)
    n = 40000
    z = p.sample((n,), rng=Generator(9)).numpy()
    terms = numpy_log_prob(z, mu_p, cov_p) - numpy_log_prob(z, mu_q, cov_q)  # the estimate's terms, for its error
    estimate = mc_kl(p, q, n, rng=Generator(9)).numpy()
    np.testing.assert_allclose(estimate, terms.mean(0), rtol=1e-10)  # (the same draws)
    assert (np.abs(estimate - numpy_kl(mu_p, cov_p, mu_q, cov_q)) < 5 * terms.std(0) / math.sqrt(n)).all()


def test_kl_with_a_diagonal_normal_both_ways():
    """KL(MVN ‖ Independent(Normal, 1)) and KL(Independent(Normal, 1) ‖ MVN) (torch has neither): the formula with
    Σ = diag σ², and values and gradients as the MVN ‖ MVN pair's with scale_tril diag σ; only a Normal base of one
    reinterpreted axis has a closed form."""
    rng = np.random.default_rng(20)
    mu_p, cov_p = rng.normal(size=(2, N)), spd(rng, (2, N, N))
    mu_q, sigma = rng.normal(size=N), rng.uniform(0.5, 2, (3, 1, N))
    params = [mv.tensor(a, requires_grad=True) for a in (mu_p, cov_p, mu_q, sigma)]
    p = MultivariateNormal(params[0], params[1])
    q = Independent(Normal(params[2], params[3]), 1)
    as_mvn = MultivariateNormal(params[2], scale_tril=params[3][..., None] * mv.tensor(np.eye(N)))
    for ours, theirs, expected in [((p, q), (p, as_mvn), numpy_kl(mu_p, cov_p, mu_q, sigma[..., None] ** 2 * np.eye(N))),
                                   ((q, p), (as_mvn, p), numpy_kl(mu_q, sigma[..., None] ** 2 * np.eye(N), mu_p, cov_p))]:
        kl, ref = kl_divergence(*ours), kl_divergence(*theirs)
        assert kl.shape == (3, 2)
        np.testing.assert_allclose(kl.numpy(), expected, rtol=1e-11)
        cot = rng.normal(size=kl.shape)
        grads = []
        for value in (kl, ref):
            for t in params:
                t.grad = None
            (value * mv.tensor(cot)).sum().backward(retain_graph=True)
            grads.append([t.grad.copy() for t in params])
        for a, b in zip(*grads):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    standard = Independent(Normal(np.zeros(N), np.ones(N)), 1)
    expected = 0.5 * (np.trace(cov_p, axis1=-2, axis2=-1) + (mu_p ** 2).sum(-1) - N - np.linalg.slogdet(cov_p)[1])
    np.testing.assert_allclose(kl_divergence(MultivariateNormal(mu_p, cov_p), standard).numpy(), expected, rtol=1e-12)
    for other in (Independent(Normal(np.zeros((2, N)), 1.0), 2), Independent(Laplace(np.zeros(N), 1.0), 1)):
        with pytest.raises(NotImplementedError, match=r"only Independent\(Normal, 1\)"):
            kl_divergence(p, other)
        with pytest.raises(NotImplementedError, match=r"only Independent\(Normal, 1\)"):
            kl_divergence(other, p)
    with pytest.raises(ValueError, match=r"event shapes \(3,\) and \(2,\)"):
        kl_divergence(p, Independent(Normal(np.zeros(2), 1.0), 1))


# ---- draws ---------------------------------------------------------------------------------------------------------
def test_draws_have_the_mean_and_covariance():
    """Over n draws each entry of the sample mean within 5 standard errors (√(Σ_ii/n)) of μ, and of the sample
    covariance within 5 of Σ (standard error √((Σ_ii Σ_jj + Σ_ij²)/n))."""
    rng = np.random.default_rng(10)
    mu, cov = rng.normal(size=(2, N)), spd(rng, (2, N, N)) * np.array([1.0, 0.1])[:, None, None]
    n = 40000
    z = MultivariateNormal(mu, cov).sample((n,), rng=Generator(11)).numpy()
    assert z.shape == (n, 2, N) and z.dtype == np.float64
    var = np.diagonal(cov, 0, -2, -1)
    assert (np.abs(z.mean(0) - mu) < 5 * np.sqrt(var / n)).all()
    c = z - mu
    sample_cov = np.einsum("sbi,sbj->bij", c, c) / n
    se = np.sqrt((var[..., :, None] * var[..., None, :] + cov ** 2) / n)
    assert (np.abs(sample_cov - cov) < 5 * se).all()


def test_rsample_is_loc_plus_scale_tril_times_the_noise_and_its_gradients():
    rng = np.random.default_rng(12)
    mu, lower = rng.normal(size=N), np.linalg.cholesky(spd(rng, (N, N)))
    loc, tril = mv.tensor(mu, requires_grad=True), mv.tensor(lower, requires_grad=True)
    d = MultivariateNormal(loc, scale_tril=tril)
    eps = Generator(13).normal((6, N), np.float64)
    z = d.rsample((6,), rng=Generator(13))
    np.testing.assert_allclose(z.numpy(), mu + eps @ lower.T, rtol=1e-14)
    np.testing.assert_array_equal(d.rsample((6,), eps=eps).numpy(), z.numpy())
    g = rng.normal(size=z.shape)
    z.backward(g)
    np.testing.assert_allclose(loc.grad, g.sum(0), rtol=1e-14)
    np.testing.assert_allclose(tril.grad, g.T @ eps, rtol=1e-13)  # ∂(L ε)_i/∂L_ij = ε_j
    again = MultivariateNormal(mu, scale_tril=lower)
    np.testing.assert_array_equal(again.sample((6,), rng=Generator(13)).numpy(), z.numpy())  # same seed, same draw
    assert not np.array_equal(again.sample((6,), rng=Generator(14)).numpy(), z.numpy())


def test_float32_from_numbers_and_lists_and_promotion():
    d = MultivariateNormal([0.0, 1.0], [[2.0, 0.5], [0.5, 1.0]])
    assert d.loc.dtype == np.float32 and d.scale_tril.dtype == np.float32
    z = d.sample((3,), rng=Generator(0))
    assert z.dtype == np.float32 and d.log_prob(z).dtype == np.float32 and d.entropy().dtype == np.float32
    np.testing.assert_allclose(d.log_prob(z).numpy(), numpy_log_prob(z.numpy().astype(np.float64), np.array([0.0, 1.0]),
                                                                    np.array([[2.0, 0.5], [0.5, 1.0]])), rtol=2e-6)
    mixed = MultivariateNormal(np.zeros(2, np.float32), np.eye(2))
    assert mixed.sample(rng=Generator(0)).dtype == np.float64 and mixed.log_prob(np.zeros(2)).dtype == np.float64


def test_expand_keeps_one_factor_and_sums_gradients_back():
    mu, cov = parameters(15)
    loc = mv.tensor(mu, requires_grad=True)
    d = MultivariateNormal(loc, cov)
    e = d.expand((3, 4, 2))
    assert e.batch_shape == (3, 4, 2) and e.event_shape == (N,) and e._unbroadcasted_scale_tril is d._unbroadcasted_scale_tril
    x = np.random.default_rng(16).normal(size=(3, 4, 2, N))
    np.testing.assert_allclose(e.log_prob(x).numpy(), numpy_log_prob(x, mu, cov), rtol=1e-12)
    assert e.entropy().shape == (3, 4, 2)
    (e.rsample(rng=Generator(0)).sum()).backward()
    np.testing.assert_allclose(loc.grad, np.full(mu.shape, 6.0))  # 3·2 copies of each loc, each ∂z/∂μ = 1
    with pytest.raises(ValueError, match="cannot be expanded"):
        d.expand((4, 3))


class FullCovarianceVAE(mv.nn.Module):
    """q(z|x) = N(μ(x), L(x)L(x)ᵀ), L(x) lower triangular with a softplus diagonal, p(z) = N(0, I) (Independent(Normal,
    1)), p(x|z) Bernoulli: the use the distribution is for."""

    def __init__(self, x_dim, z_dim, rng):
        super().__init__()
        self.z_dim = z_dim
        self.encoder = mv.nn.Linear(x_dim, z_dim + z_dim * z_dim, rng=rng)
        self.decoder = mv.nn.Linear(z_dim, x_dim, rng=rng)

    def posterior(self, x):
        from minivae import ops
        z = self.z_dim
        mu, raw = ops.split(self.encoder(x), [z], axis=-1)
        raw = raw.reshape(raw.shape[:-1] + (z, z))
        diagonal = ops.softplus(ops.diagonal(raw, 0, -2, -1)) + 1e-3
        return MultivariateNormal(mu, scale_tril=ops.tril(raw, -1) + ops.unsqueeze(diagonal, -1) * mv.tensor(np.eye(z)))

    def prior(self):
        return Independent(Normal(mv.tensor(np.zeros(self.z_dim)), mv.tensor(np.ones(self.z_dim))), 1)

    def likelihood(self, z):
        from minivae.distributions import Bernoulli
        return Bernoulli(logits=self.decoder(z))


def test_a_full_covariance_vae_trains_by_the_elbo():
    """objectives.elbo of the model above: the KL in closed form (MVN ‖ Independent(Normal, 1)), gradients through
    rsample and log_prob to the encoder's weights; Adam lowers the loss on a few fixed examples."""
    from minivae import objectives
    model = FullCovarianceVAE(6, 2, Generator(0))
    for p in model.parameters():
        p.data = p.data.astype(np.float64)
    x = mv.tensor((np.random.default_rng(21).random((8, 6)) < 0.5).astype(np.float64))
    opt = mv.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for step in range(25):
        opt.zero_grad()
        loss = -objectives.elbo(model, x, Generator(step), k=4).mean()
        loss.backward()
        assert model.encoder.weight.grad is not None and np.isfinite(model.encoder.weight.grad).all()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, losses  # (about 5.4 → 3.6 nats)
    q = model.posterior(x)
    analytic = kl_divergence(q, model.prior()).numpy()
    assert analytic.shape == (8,) and (analytic > 0).all()


# ---- errors --------------------------------------------------------------------------------------------------------
def test_bad_parameters_are_refused():
    eye = np.eye(2)
    with pytest.raises(ValueError, match="exactly one of .* \\(got none\\)"):
        MultivariateNormal(np.zeros(2))
    with pytest.raises(ValueError, match="exactly one of .* \\(got covariance_matrix and scale_tril\\)"):
        MultivariateNormal(np.zeros(2), eye, scale_tril=eye)
    with pytest.raises(ValueError, match="loc must have at least one axis"):
        MultivariateNormal(0.0, eye)
    with pytest.raises(ValueError, match=r"covariance_matrix must be a square matrix .* not shape \(2, 3\)"):
        MultivariateNormal(np.zeros(2), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"scale_tril must be a square matrix .* not shape \(2,\)"):
        MultivariateNormal(np.zeros(2), scale_tril=np.ones(2))
    with pytest.raises(ValueError, match=r"loc of shape \(3,\) has n = 3 but precision_matrix has shape \(2, 2\)"):
        MultivariateNormal(np.zeros(3), precision_matrix=eye)
    with pytest.raises(ValueError, match=r"batch axes of loc \(3,\) and of covariance_matrix \(2,\) do not broadcast"):
        MultivariateNormal(np.zeros((3, 2)), np.stack([eye, eye]))
    with pytest.raises(ValueError, match="covariance_matrix must be symmetric"):
        MultivariateNormal(np.zeros(2), np.array([[2.0, 1.0], [0.0, 2.0]]))
    with pytest.raises(np.linalg.LinAlgError, match="not positive-definite"):
        MultivariateNormal(np.zeros(2), np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(np.linalg.LinAlgError, match="not positive-definite"):
        MultivariateNormal(np.zeros(2), precision_matrix=-eye)
    with pytest.raises(ValueError, match="scale_tril must be lower triangular with a positive diagonal"):
        MultivariateNormal(np.zeros(2), scale_tril=np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="scale_tril must be lower triangular with a positive diagonal"):
        MultivariateNormal(np.zeros(2), scale_tril=np.array([[1.0, 0.0], [0.5, -1.0]]))
    with pytest.raises(ValueError, match="loc must not be NaN"):
        MultivariateNormal(np.array([0.0, np.nan]), eye)
    with pytest.raises(TypeError, match="must be a floating tensor"):
        MultivariateNormal(mv.tensor(np.zeros(2, np.int64)), eye)
    d = MultivariateNormal(np.zeros(2), eye)
    with pytest.raises(ValueError, match=r"a last axis of n = 2 entries, not shape \(3,\)"):
        d.log_prob(np.zeros(3))
    with pytest.raises(ValueError, match=r"event shapes \(2,\) and \(3,\)"):
        kl_divergence(d, MultivariateNormal(np.zeros(3), np.eye(3)))


def test_a_computed_scale_tril_is_not_checked():
    """Parameters that require a gradient are left unchecked (no pass over them each step), as the other
    distributions'."""
    tril = mv.tensor(np.array([[1.0, 0.0], [0.5, -1.0]]), requires_grad=True)
    assert MultivariateNormal(np.zeros(2), scale_tril=tril).batch_shape == ()


# ---- on the device -------------------------------------------------------------------------------------------------
def test_on_the_device_nothing_is_copied_to_the_host():
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record
    mu, cov = parameters(17)
    with use_numba(False), use_cuda_kernels(False), emulating():
        loc = mv.tensor(mu, device="cuda", requires_grad=True)
        c = mv.tensor(cov, device="cuda", requires_grad=True)
        with record() as log:
            p = MultivariateNormal(loc, c)
            q = MultivariateNormal(mv.tensor(np.zeros(N), device="cuda"), precision_matrix=mv.tensor(cov[0], device="cuda"))
            z = p.rsample((2,), rng=Generator(0))
            diagonal = Independent(Normal(mv.tensor(np.zeros(N), device="cuda"), 2.0), 1)
            out = (p.log_prob(z).sum() + p.entropy().sum() + kl_divergence(p, q).sum() + p.variance.sum()
                   + p.precision_matrix.sum() + q.covariance_matrix.sum() + kl_divergence(p, diagonal).sum()
                   + kl_divergence(diagonal, p).sum())
            out.backward()
        assert log == [], describe(log)
        assert loc.grad is not None and c.grad is not None and p.scale_tril.device == "cuda"
