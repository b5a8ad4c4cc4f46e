"""The planar and radial flows where their formulas divide by zero: the radial flow at z = z₀ (r = 0), where f is
differentiable with ∂f/∂z = (1 + β/α)·I and the log-det has a cone's kink (its subgradient 0, what central differences
give), and the planar flow at w = 0, where the paper's û has no limit and the flow is the shift z + u·tanh(b) (log-det
0), and near it in float32 (‖w‖ down to √tiny, where the gradient is ∝ 1/‖w‖²; wᵀu ≪ 0 at a = 0, where the log-det is
log softplus(wᵀu)). References: float64 central differences (minivae.gradcheck, and of the formulas written in NumPy),
the formulas, the layer in float64, torch's autograd of the paper's formulas in float64."""
import math

import numpy as np
import pytest

import minivae as mv
from minivae import ops
from minivae.flows import PlanarFlow, RadialFlow
from minivae.gradcheck import gradcheck

D = 3


def softplus(x):
    return math.log1p(math.exp(-abs(x))) + max(x, 0.0)


def both(layer):
    def fn(z, p):
        out, log_det = layer(z, p)
        return ops.concatenate([out, ops.unsqueeze(log_det, -1)], axis=-1)
    return fn


@pytest.mark.parametrize("offset", [1e-3, 1e-2])
def test_radial_flow_next_to_its_centre(offset):
    """r = ‖z − z₀‖ small but ≫ the step: float64 gradcheck (central differences) in z and the parameters."""
    z0 = np.array([[0.3, -0.2, 0.5], [1.0, 2.0, -1.0]])
    params = np.concatenate([z0, [[0.4, -0.1], [-1.0, 0.7]]], -1)
    assert gradcheck(both(RadialFlow(D)), (z0 + offset * np.array([1.0, -2.0, 0.5]), params))


def radial_log_det_at_the_centre(alpha_raw, beta_raw):
    """D·log(1 + β/α) (h = 1/α, h′·r = 0 at r = 0), α = softplus(α′), β = softplus(β′) − α."""
    alpha = softplus(alpha_raw)
    return D * math.log1p((softplus(beta_raw) - alpha) / alpha)


def test_radial_flow_at_its_centre():
    """z = z₀: ∂f/∂z = (1 + β/α)·I, ∂f/∂z₀ = −(β/α)·I, ∂f/∂(α′, β′) = 0 (z − z₀ = 0 multiplies them); the log-det
    D·log(1 + β/α), its gradient in z and z₀ the subgradient 0 (central differences across the kink: 0 by symmetry),
    in α′ and β′ the central differences of that formula; nothing NaN (√ of 0's gradient times 0, before)."""
    z0 = np.array([0.3, -0.2, 0.5])
    for raw in ([0.4, -0.1], [-1.0, 0.7], [2.0, -3.0]):
        alpha = softplus(raw[0])
        beta = softplus(raw[1]) - alpha
        params = np.concatenate([z0, raw])[None]
        g = np.array([[0.3, -1.2, 0.7]])
        zt, pt = mv.tensor(z0[None].copy(), requires_grad=True), mv.tensor(params, requires_grad=True)
        out, log_det = RadialFlow(D)(zt, pt)
        np.testing.assert_array_equal(out.numpy(), z0[None])
        assert log_det.item() == pytest.approx(radial_log_det_at_the_centre(*raw), rel=1e-14)
        out.backward(mv.tensor(g))
        np.testing.assert_allclose(zt.grad, g * (1 + beta / alpha), rtol=1e-14)
        np.testing.assert_allclose(pt.grad[0, :D], -g[0] * (beta / alpha), rtol=1e-14)
        np.testing.assert_array_equal(pt.grad[0, D:], 0.0)
        zt, pt = mv.tensor(z0[None].copy(), requires_grad=True), mv.tensor(params, requires_grad=True)
        RadialFlow(D)(zt, pt)[1].sum().backward()
        np.testing.assert_array_equal(zt.grad, 0.0)
        np.testing.assert_array_equal(pt.grad[0, :D], 0.0)
        h = 1e-6
        numeric = [(radial_log_det_at_the_centre(raw[0] + h, raw[1]) - radial_log_det_at_the_centre(raw[0] - h, raw[1]))
                   / (2 * h),
                   (radial_log_det_at_the_centre(raw[0], raw[1] + h) - radial_log_det_at_the_centre(raw[0], raw[1] - h))
                   / (2 * h)]
        np.testing.assert_allclose(pt.grad[0, D:], numeric, rtol=1e-7)


def test_radial_flow_at_its_centre_in_float32():
    z0 = np.array([[0.3, -0.2, 0.5]], np.float32)
    zt = mv.tensor(z0.copy(), requires_grad=True)
    pt = mv.tensor(np.concatenate([z0, [[0.4, -0.1]]], -1).astype(np.float32), requires_grad=True)
    out, log_det = RadialFlow(D)(zt, pt)
    (out.sum() + log_det.sum()).backward()
    assert np.isfinite(zt.grad).all() and np.isfinite(pt.grad).all()


def planar_numpy(z, u, w, b, g_out, g_ld):
    """Σ g_out·(z + u·tanh(wᵀz + b)) + g_ld·log|1 + (1 − tanh²(wᵀz + b))·wᵀu|: the unconstrained planar flow, what the
    layer is at w = 0 (û = u)."""
    t = np.tanh(z @ w + b)
    return float((g_out * (z + u * t)).sum() + g_ld * np.log(abs(1 + (1 - t * t) * (w @ u))))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_planar_flow_at_w_zero_is_a_shift(dtype):
    """w = 0: f(z) = z + u·tanh(b), log-det 0; the gradients in z, u, w, b those of the unconstrained flow at w = 0
    (central differences of the formula in NumPy, float64), not NaN (w/‖w‖² = 0/0)."""
    z, u, b = np.array([0.3, -0.2, 0.5]), np.array([0.7, 1.5, -2.0]), 0.2
    g_out, g_ld = np.array([0.7, -0.4, 1.1]), 0.9
    zt = mv.tensor(z[None].astype(dtype), requires_grad=True)
    pt = mv.tensor(np.concatenate([u, np.zeros(D), [b]])[None].astype(dtype), requires_grad=True)
    out, log_det = PlanarFlow(D)(zt, pt)
    np.testing.assert_allclose(out.numpy()[0], z + u * math.tanh(b), rtol=1e-6)
    assert log_det.numpy()[0] == 0
    (out * mv.tensor(g_out[None].astype(dtype))).sum().add(log_det.sum() * g_ld).backward()
    args, h = [z, u, np.zeros(D), np.array(b)], 1e-6
    numeric = []
    for k, a in enumerate(args):
        grad = np.zeros(a.shape)
        for i in np.ndindex(a.shape):
            up, down = [x.copy() for x in args], [x.copy() for x in args]
            up[k][i] += h
            down[k][i] -= h
            grad[i] = (planar_numpy(*up, g_out, g_ld) - planar_numpy(*down, g_out, g_ld)) / (2 * h)
        numeric.append(grad)
    rtol = 1e-8 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(zt.grad[0], numeric[0], rtol=rtol)
    np.testing.assert_allclose(pt.grad[0], np.concatenate([numeric[1], numeric[2], [numeric[3]]]), rtol=rtol)


def test_planar_flow_with_a_w_whose_square_underflows():
    """‖w‖² = 0 in float32 though w ≠ 0 (1e-30): û = u, everything finite; a small w that does not underflow keeps
    the paper's wᵀû = m(wᵀu) > −1 (f monotone along w)."""
    for scale in (1e-30, 1e-3):
        w = np.array([1.0, -2.0, 0.5]) * scale
        pt = mv.tensor(np.concatenate([[0.7, 1.5, -2.0], w, [0.2]])[None].astype(np.float32), requires_grad=True)
        zt = mv.tensor(np.array([[0.3, -0.2, 0.5]], np.float32), requires_grad=True)
        out, log_det = PlanarFlow(D)(zt, pt)
        (out.sum() + log_det.sum()).backward()
        assert np.isfinite(out.numpy()).all() and np.isfinite(log_det.numpy()).all()
        assert np.isfinite(zt.grad).all() and np.isfinite(pt.grad).all()


def planar_values_and_grads(u, w, b, z, dtype):
    """(f(z), log-det, ∂/∂z, ∂/∂params) of Σ f(z)·g_out + log-det·g_ld, the planar layer in ``dtype``."""
    g_out, g_ld = np.array([0.7, -0.4, 1.1]), 0.9
    zt = mv.tensor(np.asarray(z, dtype)[None], requires_grad=True)
    pt = mv.tensor(np.concatenate([u, w, [b]]).astype(dtype)[None], requires_grad=True)
    out, log_det = PlanarFlow(D)(zt, pt)
    ((out * mv.tensor(g_out.astype(dtype))).sum() + log_det.sum() * g_ld).backward()
    return out.numpy()[0], log_det.numpy()[0], zt.grad[0], pt.grad[0]


W_SCALES = [1e-1, 1e-4, 1e-8, 1e-12, 1e-15, 1e-18, 1.5e-19]  # (‖w‖ = 2.3·scale ≥ √tiny of float32 = 1.1·10⁻¹⁹)


@pytest.mark.parametrize("scale", W_SCALES)
def test_planar_flow_in_float32_follows_float64_as_w_shrinks(scale):
    """A small w that is not flat: float32's values and gradients those of float64 at the same (float32) inputs, to
    float32's precision, though they grow as 1/‖w‖ and 1/‖w‖² (the gradient of 1/Σw² was ∞ from ‖w‖ ≈ 10⁻¹⁴)."""
    u, w, b, z = (np.array(v, np.float32).astype(np.float64) for v in
                  ([0.7, 1.5, -2.0], np.array([1.0, -2.0, 0.5]) * scale, 0.2, [0.3, -0.2, 0.5]))
    single, double = planar_values_and_grads(u, w, b, z, np.float32), planar_values_and_grads(u, w, b, z, np.float64)
    for got, expected in zip(single, double):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


@pytest.mark.parametrize("scale", W_SCALES[:5] + [1e-30])
def test_planar_flow_in_float64_is_the_papers(scale):
    """float64 values and gradients against torch's autograd of the paper's formulas (û = u + (m(wᵀu) − wᵀu)·w/‖w‖²,
    log|1 + (1 − tanh²(a))·m(wᵀu)|), w down to 10⁻³⁰ (‖w‖² = 10⁻⁶⁰, a number in float64)."""
    torch = pytest.importorskip("torch")
    u, w, b, z = [0.7, 1.5, -2.0], np.array([1.0, -2.0, 0.5]) * scale, 0.2, [0.3, -0.2, 0.5]
    tz = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    tp = torch.tensor(np.concatenate([u, w, [b]]), requires_grad=True)
    tu, tw, tb = tp[:D], tp[D:2 * D], tp[2 * D]
    wu = tw @ tu
    m = torch.nn.functional.softplus(wu) - 1
    u_hat = tu + (m - wu) * tw / (tw @ tw)
    a = tw @ tz + tb
    out, log_det = tz + u_hat * torch.tanh(a), torch.log(torch.abs(1 + (1 - torch.tanh(a) ** 2) * m))
    ((out * torch.tensor([0.7, -0.4, 1.1], dtype=torch.float64)).sum() + 0.9 * log_det).backward()
    expected = out.detach().numpy(), log_det.item(), tz.grad.numpy(), tp.grad.numpy()
    for got, e in zip(planar_values_and_grads(u, w, b, z, np.float64), expected):
        np.testing.assert_allclose(got, e, rtol=1e-10, atol=1e-10 * np.abs(e).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("wu", [-30.0, -80.0])
def test_planar_log_det_where_w_dot_u_is_very_negative(wu, dtype):
    """a = wᵀz + b = 0 and wᵀu ≪ 0: log-det = log softplus(wᵀu) (1 − tanh² = 1), ≈ wᵀu, not log(1 + (softplus(wᵀu) − 1))
    = log 0 = −∞; its gradients σ(wᵀu)/softplus(wᵀu)·w in u, ·u in w (∂/∂a = 0 at a = 0: no z or b term)."""
    w = np.array([1.0, -2.0, 0.5])
    u = wu * w / (w @ w)
    zt = mv.tensor(np.zeros((1, D), dtype), requires_grad=True)
    pt = mv.tensor(np.concatenate([u, w, [0.0]]).astype(dtype)[None], requires_grad=True)
    log_det = PlanarFlow(D)(zt, pt)[1]
    log_det.sum().backward()
    softplus_wu = math.log1p(math.exp(wu))
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert log_det.item() == pytest.approx(math.log(softplus_wu), rel=rtol)
    ratio = 1 / (1 + math.exp(-wu)) / softplus_wu
    np.testing.assert_allclose(pt.grad[0], np.concatenate([ratio * w, ratio * u, [0.0]]), rtol=4 * rtol, atol=rtol)
    np.testing.assert_allclose(zt.grad, 0.0, atol=rtol)


RADIAL_RAW = [-80.0, -20.0, 0.0, 20.0, 1e4]  # α′ and β′ (softplus(−80) = 1.8·10⁻³⁵, a normal float32)
RADIAL_R = [0.0, 1e-3, 1.0, 1e10, 1e30]  # r = ‖z − z₀‖
RADIAL_LEFT = {(-80.0, 1e4, 0.0), (1e4, -80.0, 0.0)}  # (where s = (α + β)/(α + r) overflows, or is subnormal: the docstring)


def radial_float32(alpha_raw, beta_raw, r):
    """(f(z), log-det, ∂/∂z, ∂/∂params) of Σ f(z) + log-det, float32, z = z₀ + r·(a unit vector)."""
    z0 = np.array([0.3, -0.2, 0.5])
    z = (z0 + r * np.array([1.0, -2.0, 0.5]) / math.sqrt(5.25)).astype(np.float32)
    zt = mv.tensor(z[None], requires_grad=True)
    pt = mv.tensor(np.concatenate([z0, [alpha_raw, beta_raw]]).astype(np.float32)[None], requires_grad=True)
    out, log_det = RadialFlow(D)(zt, pt)
    (out.sum() + log_det.sum()).backward()
    return out.numpy()[0], log_det.numpy()[0], zt.grad[0], pt.grad[0]


@pytest.mark.parametrize("alpha_raw", RADIAL_RAW)
@pytest.mark.parametrize("beta_raw", RADIAL_RAW)
def test_radial_flow_in_float32_at_edge_parameters(alpha_raw, beta_raw):
    """α′, β′ from −80 to 10⁴ and r from 0 to 10³⁰ in float32: nothing NaN or ±∞; with torch, within 10⁻³ (relatively,
    or absolutely) of torch's autograd of the paper's formulas in float64 at the same float32 inputs, where those are
    numbers in float32's range. Was: log-det −∞ and NaN gradients where β′ ≪ 0 (log1p(βh) of βh ≈ −1), f(z₀) NaN where
    α′ = −80 (1/(α + r) overflowing)."""
    try:
        import torch
    except ImportError:  # (CI: the finiteness alone)
        torch = None
    for r in RADIAL_R:
        if (alpha_raw, beta_raw, r) in RADIAL_LEFT:
            continue
        got = radial_float32(alpha_raw, beta_raw, r)
        for g in got:
            assert np.isfinite(g).all(), (alpha_raw, beta_raw, r, got)
        if torch is None:
            continue
        z0 = np.array([0.3, -0.2, 0.5])
        z = (z0 + r * np.array([1.0, -2.0, 0.5]) / math.sqrt(5.25)).astype(np.float32).astype(np.float64)
        tz = torch.tensor(z, requires_grad=True)
        tp = torch.tensor(np.concatenate([z0, [alpha_raw, beta_raw]]).astype(np.float32).astype(np.float64),
                          requires_grad=True)
        alpha = torch.nn.functional.softplus(tp[D])
        beta = torch.nn.functional.softplus(tp[D + 1]) - alpha
        diff = tz - tp[:D]
        rr = torch.linalg.vector_norm(diff)
        h = 1 / (alpha + rr)
        out = tz + beta * h * diff
        log_det = (D - 1) * torch.log1p(beta * h) + torch.log1p(beta * h - beta * h * h * rr)
        (out.sum() + log_det).backward()
        for g, e in zip(got, (out.detach().numpy(), log_det.item(), tz.grad.numpy(), tp.grad.numpy())):
            e = np.asarray(e)
            inside = np.isfinite(e) & (np.abs(e) < 1e37)
            assert (np.abs(g - e) <= 1e-3 * np.abs(e) + 1e-3)[inside].all(), (alpha_raw, beta_raw, r, g, e)


@pytest.mark.parametrize("alpha_raw,beta_raw", [(0.0, -20.0), (-80.0, -20.0), (20.0, -30.0), (-20.0, 20.0)])
def test_radial_flow_at_its_centre_at_edge_parameters(alpha_raw, beta_raw):
    """z = z₀ in float32: f = z₀, log-det D·log((α + β)/α) = D·(log softplus(β′) − log softplus(α′)) (−59 at α′ = 0,
    β′ = −20, where log1p(βh) of βh = −1 + 3·10⁻⁹ was −∞), ∂(Σf + log-det)/∂z = (α + β)/α per entry (the log-det's
    subgradient 0), ∂/∂z₀ = 1 − (α + β)/α, ∂/∂β′ = D·σ(β′)/softplus(β′), ∂/∂α′ = −D·σ(α′)/softplus(α′) (math.*)."""
    out, log_det, gz, gp = radial_float32(alpha_raw, beta_raw, 0.0)
    a, sp = softplus(alpha_raw), softplus(beta_raw)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    np.testing.assert_allclose(out, np.array([0.3, -0.2, 0.5], np.float32), rtol=0)
    assert log_det == pytest.approx(D * (math.log(sp) - math.log(a)), rel=1e-6)
    np.testing.assert_allclose(gz, sp / a, rtol=1e-5)
    np.testing.assert_allclose(gp, [1 - sp / a] * D + [-D * sig(alpha_raw) / a, D * sig(beta_raw) / sp], rtol=1e-5)


def test_radial_flow_at_its_centre_with_a_subnormal_alpha():
    """α′ = −100, β′ = −95: α = softplus(−100) = 3.7·10⁻⁴⁴ and α + β are subnormal in float32 (1/α overflows; f(z₀) was
    ∞·0 = NaN): f(z₀) = z₀, the log-det D·log((α + β)/α) ≈ 3·5 = 15, to the few digits a subnormal keeps (10%)."""
    out, log_det, gz, gp = radial_float32(-100.0, -95.0, 0.0)
    np.testing.assert_array_equal(out, np.array([0.3, -0.2, 0.5], np.float32))
    assert log_det == pytest.approx(D * (math.log(softplus(-95.0)) - math.log(softplus(-100.0))), rel=0.1)
