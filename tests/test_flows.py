"""minivae.flows: each layer's log|det J| against the slogdet of a float64 central-difference Jacobian, the invertibility
constraints (planar's û: f monotone along w; radial's β ≥ −α: monotone along rays), IAF's autoregressive (triangular)
Jacobian, and float64 gradchecks of each layer's outputs in its inputs and parameters."""
import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae.flows import FlowStack, IAFFlow, PlanarFlow, RadialFlow, made_masks
from minivae.gradcheck import gradcheck
from minivae.random import Generator
from tests.test_transforms import numerical_jacobian

D = 3


def planar_params(r, n, push=0.0):
    """u, w, b packed; ``push`` > 0 makes wᵀu = −push (< −1: a raw u that would not be invertible) plus a little."""
    u, w, b = r.normal(size=(n, D)), r.normal(size=(n, D)), r.normal(size=(n, 1))
    if push:
        u = 0.1 * u - push * w / (w * w).sum(-1, keepdims=True)
    return np.concatenate([u, w, b], axis=-1)


def layer_map(layer, params):
    """z (D,) → f(z) (D,) of one example's parameters, in float64 NumPy."""
    return lambda z: layer(mv.tensor(z), None if params is None else mv.tensor(params))[0].numpy()


def float64(module):
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
    return module


def cases():
    r = np.random.default_rng(0)
    iaf = float64(IAFFlow(D, 8, 2, rng=Generator(0)))
    for p in iaf.parameters():
        p.data = p.data + 0.3 * r.normal(size=p.shape)
    iaf_rev = float64(IAFFlow(D, 8, 2, reverse=True, rng=Generator(1)))
    return [("planar", PlanarFlow(D), planar_params(r, 4)),
            ("planar_pushed", PlanarFlow(D), planar_params(r, 4, push=3.0)),
            ("radial", RadialFlow(D), r.normal(size=(4, D + 2))),
            ("radial_contracting", RadialFlow(D), np.concatenate([r.normal(size=(4, D)), r.normal(size=(4, 1)),
                                                                  np.full((4, 1), -8.0)], -1)),
            ("iaf", iaf, r.normal(size=(4, 2))),
            ("iaf_reversed", iaf_rev, r.normal(size=(4, 2)))]


@pytest.mark.parametrize("name,layer,params", cases(), ids=[c[0] for c in cases()])
def test_log_det_is_the_numerical_jacobian_s_slogdet(name, layer, params):
    z = np.random.default_rng(1).normal(size=(4, D)) * 1.5
    out, log_det = layer(mv.tensor(z), mv.tensor(params))
    assert out.shape == (4, D) and log_det.shape == (4,)
    for i in range(4):
        sign, expected = np.linalg.slogdet(numerical_jacobian(layer_map(layer, params[i]), z[i]))
        assert sign > 0, (name, i)  # orientation kept: the constrained flows never fold
        np.testing.assert_allclose(log_det.numpy()[i], expected, rtol=1e-7, atol=1e-8, err_msg=f"{name} {i}")


def test_planar_u_hat_keeps_the_flow_monotone_along_w():
    """With a raw u ≈ −3w (wᵀu ≪ −1) f would fold; with û, wᵀû = −1 + softplus(wᵀu) > −1 and t ↦ wᵀf(z⊥ + t·w/‖w‖)
    increases everywhere (Rezende & Mohamed appendix A.1)."""
    r = np.random.default_rng(2)
    layer = PlanarFlow(D)
    for params in planar_params(r, 5, push=3.0):
        u, w, b = params[:D], params[D:2 * D], params[2 * D]
        assert w @ u < -2
        w_hat = w / np.linalg.norm(w)
        t = np.linspace(-6, 6, 2001)
        z = r.normal(size=D)
        z = z - (z @ w_hat) * w_hat + t[:, None] * w_hat
        along = layer(mv.tensor(z), mv.tensor(params))[0].numpy() @ w
        assert np.all(np.diff(along) > 0), (b, w @ u)


def test_radial_beta_at_least_minus_alpha_keeps_rays_monotone():
    """β = −α + softplus(β′) ≥ −α: r ↦ ‖f(z) − z₀‖ increases along every ray from z₀, even at β′ = −30 (appendix A.2)."""
    r = np.random.default_rng(3)
    layer = RadialFlow(D)
    for alpha_raw in (-3.0, 0.0, 2.0):
        z0 = r.normal(size=D)
        params = np.concatenate([z0, [alpha_raw, -30.0]])
        direction = r.normal(size=D)
        direction /= np.linalg.norm(direction)
        radius = np.linspace(1e-3, 5, 2001)
        out = layer(mv.tensor(z0 + radius[:, None] * direction), mv.tensor(params))[0].numpy()
        assert np.all(np.diff(np.linalg.norm(out - z0, axis=-1)) > 0), alpha_raw


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dim", [1, 2, 5])
def test_iaf_jacobian_is_triangular_in_its_order_with_sigma_on_the_diagonal(dim, reverse):
    r = np.random.default_rng(4)
    layer = float64(IAFFlow(dim, 12, 3, reverse=reverse, rng=Generator(2)))
    for p in layer.parameters():
        p.data = p.data + 0.5 * r.normal(size=p.shape)
    z, h = r.normal(size=dim), r.normal(size=3)
    jac = numerical_jacobian(lambda v: layer(mv.tensor(v), mv.tensor(h))[0].numpy(), z)
    order = np.arange(dim)[::-1] if reverse else np.arange(dim)  # the inputs by increasing degree
    jac = jac[np.ix_(order, order)]
    np.testing.assert_allclose(np.triu(jac, 1), 0, atol=1e-10)  # output j reads inputs of lower degree only
    assert dim == 1 or np.abs(np.tril(jac, -1)).max() > 1e-3  # (and does read them)
    _, log_det = layer(mv.tensor(z), mv.tensor(h))
    np.testing.assert_allclose(np.log(np.diag(jac)).sum(), log_det.numpy(), rtol=1e-7)
    into, out = made_masks(dim, 12, reverse)
    assert np.all((into @ out)[np.arange(dim), np.arange(dim)] == 0)  # no path from an input to its own output


def test_gradcheck_planar_and_radial_in_z_and_parameters():
    r = np.random.default_rng(5)
    for layer, params in ((PlanarFlow(D), planar_params(r, 3, push=1.0)), (RadialFlow(D), r.normal(size=(3, D + 2)))):
        def fn(z, p, layer=layer):
            out, log_det = layer(z, p)
            return ops.concatenate([out, ops.unsqueeze(log_det, -1)], axis=-1)
        assert gradcheck(fn, (r.normal(size=(3, D)), params))


def test_gradcheck_iaf_in_z_context_and_weights():
    r = np.random.default_rng(6)
    layer = float64(IAFFlow(D, 6, 2, rng=Generator(3)))
    names = ["input.weight", "input.bias", "context.weight", "out_m.weight", "out_m.bias", "out_s.weight", "out_s.bias"]
    params = dict(layer.named_parameters())
    assert sorted(params) == sorted(names)

    def fn(z, h, *weights):
        for name, w in zip(names, weights):
            module, attr = name.split(".")
            setattr(getattr(layer, module), attr, w)
        out, log_det = layer(z, h)
        return ops.concatenate([out, ops.unsqueeze(log_det, -1)], axis=-1)
    inputs = [r.normal(size=(2, D)), r.normal(size=(2, 2))] + [params[n].data + 0.3 * r.normal(size=params[n].shape)
                                                               for n in names]
    assert gradcheck(fn, inputs)


def test_own_parameters_and_a_stack():
    layer = PlanarFlow(D, amortized=False, rng=Generator(0))
    assert [n for n, _ in layer.named_parameters()] == ["u", "w", "b"]
    out, log_det = layer(mv.tensor(np.zeros((2, D), np.float32)))
    assert out.shape == (2, D) and log_det.shape == (2,)
    with pytest.raises(ValueError, match="params"):
        PlanarFlow(D)(mv.tensor(np.zeros((2, D))))
    with pytest.raises(ValueError, match="2D \\+ 1"):
        PlanarFlow(D)(mv.tensor(np.zeros((2, D))), mv.tensor(np.zeros((2, D))))
    radial = RadialFlow(D, amortized=False, rng=Generator(0))  # β′ = α′ = 0: β = 0, the identity
    z = mv.tensor(np.random.default_rng(0).normal(size=(2, D)).astype(np.float32))
    out, log_det = radial(z)
    np.testing.assert_array_equal(out.numpy(), z.numpy())
    np.testing.assert_array_equal(log_det.numpy(), 0)
    # a stack's log-det is the sum of its layers' at the points each is applied to
    r = np.random.default_rng(7)
    stack = FlowStack("planar", D, 3, rng=Generator(0))
    extra = r.normal(size=(2, stack.n_outputs))
    total = stack(mv.tensor(z.numpy().astype(np.float64)), mv.tensor(extra))[1].numpy()
    for i in range(2):
        sign, expected = np.linalg.slogdet(numerical_jacobian(
            lambda v, i=i: stack(mv.tensor(v), mv.tensor(extra[i]))[0].numpy(), z.numpy()[i].astype(np.float64)))
        np.testing.assert_allclose(total[i], expected, rtol=1e-7)
    with pytest.raises(ValueError, match="flow must be"):
        FlowStack("maf", D, 2, rng=Generator(0))
