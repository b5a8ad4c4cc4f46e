"""Grouped convolutions (``groups=`` of ops.conv2d / ops.conv_transpose2d, F.conv2d / F.conv_transpose2d,
nn.Conv2d / nn.ConvTranspose2d): values and every gradient against torch in float64 over several geometries,
depthwise (groups = channels) among them; without torch, against a grouped convolution written out as nested loops
and the adjoint identity ⟨conv2d(x, w), y⟩ = ⟨x, conv_transpose2d(y, w)⟩; the errors for channels the groups do not
divide; the modules' shapes, init, repr and torch's state_dicts; the strict device stand-in. The float64 gradchecks by
hypothesis draw groups too (tests/test_ops_gradcheck.py)."""
import itertools
import math

import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import nn, ops
from minivae.random import Generator
from tests.strict_array import assert_device_run_is_the_cpus

RTOL = 1e-10


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def loop_grouped_conv2d(x, w, b, stride, padding, dilation, groups):
    """y[n, o, i, j] = b[o] + Σ_{c,a,b} w[o, c, a, b] · x_p[n, g·C/G + c, i·s + a·d, j·s + b·d], g = o // (O/G)."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    n_, c_, h, w_ = x.shape
    o_, cg, kh, kw = w.shape
    og = o_ // groups
    xp = np.zeros((n_, c_, h + 2 * ph, w_ + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + w_] = x
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w_ + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n_, o_, ho, wo))
    for n, o, i, j in itertools.product(range(n_), range(o_), range(ho), range(wo)):
        total = 0.0 if b is None else b[o]
        g = o // og
        for c, a, bb in itertools.product(range(cg), range(kh), range(kw)):
            total += w[o, c, a, bb] * xp[n, g * cg + c, i * sh + a * dh, j * sw + bb * dw]
        y[n, o, i, j] = total
    return y


def loop_grouped_conv_transpose2d(x, w, b, stride, padding, output_padding, dilation, groups):
    """Each x[n, c, i, j]·w[c, o, a, b] added to output channel g·(C_out/G) + o, g = c // (C_in/G), at
    (i·s + a·d − p, j·s + b·d − p); places outside the output dropped, then + b."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = pair(stride), pair(padding), pair(output_padding), pair(dilation)
    n_, c_, h, w_ = x.shape
    _, og, kh, kw = w.shape
    cg = c_ // groups
    ho, wo = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1, (w_ - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    y = np.zeros((n_, og * groups, ho, wo)) + (0 if b is None else b[None, :, None, None])
    for n, c, i, j, o, a, bb in itertools.product(range(n_), range(c_), range(h), range(w_), range(og), range(kh),
                                                  range(kw)):
        r, s = i * sh + a * dh - ph, j * sw + bb * dw - pw
        if 0 <= r < ho and 0 <= s < wo:
            y[n, (c // cg) * og + o, r, s] += x[n, c, i, j] * w[c, o, a, bb]
    return y


# (x shape, weight shape (O, C/G, kH, kW), stride, padding, dilation, groups): two and three groups, depthwise
# (G = C) with one and with two outputs per channel, a 1×1 grouped kernel, strides and dilations per side
GROUPED_CASES = [
    ((2, 4, 6, 5), (6, 2, 3, 3), 1, 1, 1, 2),
    ((2, 6, 7, 6), (3, 2, 3, 2), (2, 1), (1, 0), (1, 2), 3),
    ((1, 3, 5, 5), (3, 1, 3, 3), 1, 1, 1, 3),
    ((2, 4, 6, 6), (8, 1, 2, 3), 2, (0, 1), 1, 4),
    ((3, 4, 4, 5), (4, 2, 1, 1), 1, 0, 1, 2),
    ((1, 2, 8, 7), (4, 1, 3, 3), (3, 2), 2, (2, 1), 2),
]
# (x shape, weight shape (C_in, C_out/G, kH, kW), stride, padding, output_padding, dilation, groups)
GROUPED_T_CASES = [
    ((2, 4, 4, 3), (4, 3, 3, 3), 2, 1, 1, 1, 2),
    ((1, 3, 3, 4), (3, 1, 4, 4), 2, 1, 0, 1, 3),
    ((2, 6, 3, 3), (6, 2, 2, 3), (1, 2), (0, 1), (0, 1), (2, 1), 3),
    ((2, 4, 5, 4), (4, 2, 3, 2), 1, 0, 0, 1, 4),
]


def _arrays(seed, xs, ws, nbias):
    rng = np.random.default_rng(seed)
    return rng, rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=nbias)


@pytest.mark.parametrize("case", range(len(GROUPED_CASES)))
def test_grouped_conv2d_matches_the_nested_loops(case):
    xs, ws, s, p, d, g = GROUPED_CASES[case]
    _, x, w, b = _arrays(case, xs, ws, ws[0])
    for bias in (b, None):
        got = ops.conv2d(mv.tensor(x), mv.tensor(w), None if bias is None else mv.tensor(bias), s, p, d, g)
        np.testing.assert_allclose(got.data, loop_grouped_conv2d(x, w, bias, s, p, d, g), rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("case", range(len(GROUPED_T_CASES)))
def test_grouped_conv_transpose2d_matches_the_nested_loops(case):
    xs, ws, s, p, op, d, g = GROUPED_T_CASES[case]
    _, x, w, b = _arrays(case, xs, ws, ws[1] * g)
    for bias in (b, None):
        got = ops.conv_transpose2d(mv.tensor(x), mv.tensor(w), None if bias is None else mv.tensor(bias), s, p, op,
                                   g, d)
        want = loop_grouped_conv_transpose2d(x, w, bias, s, p, op, d, g)
        np.testing.assert_allclose(got.data, want, rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("case", range(len(GROUPED_CASES)))
def test_grouped_conv_transpose2d_is_the_adjoint_and_the_gradients_are_the_transposes(case):
    """⟨conv2d(x, w), y⟩ = ⟨x, conv_transpose2d(y, w)⟩ with the same groups (the output padding chosen to give x's
    size back); the engine's x̄ is that conv_transpose2d, its w̄ read off entry by entry as ⟨loop conv2d(x, e), ḡ⟩."""
    xs, ws, s, p, d, g = GROUPED_CASES[case]
    (sh, sw), (ph, pw), (dh, dw) = pair(s), pair(p), pair(d)
    rng, x, w, _ = _arrays(100 + case, xs, ws, 1)
    y_shape = ops.conv2d(mv.tensor(x), mv.tensor(w), None, s, p, d, g).shape
    y = rng.normal(size=y_shape)
    op = (xs[2] - ((y_shape[2] - 1) * sh - 2 * ph + dh * (ws[2] - 1) + 1),
          xs[3] - ((y_shape[3] - 1) * sw - 2 * pw + dw * (ws[3] - 1) + 1))
    convty = ops.conv_transpose2d(mv.tensor(y), mv.tensor(w), None, s, p, op, g, d).data
    assert convty.shape == x.shape
    np.testing.assert_allclose((loop_grouped_conv2d(x, w, None, s, p, d, g) * y).sum(), (x * convty).sum(), rtol=RTOL)
    tx, tw = mv.tensor(x, requires_grad=True), mv.tensor(w, requires_grad=True)
    (ops.conv2d(tx, tw, None, s, p, d, g) * y).sum().backward()
    np.testing.assert_allclose(tx.grad, convty, rtol=RTOL, atol=1e-12)
    gw = np.zeros_like(w)
    for idx in itertools.product(*map(range, w.shape)):
        e = np.zeros_like(w)
        e[idx] = 1.0
        gw[idx] = (loop_grouped_conv2d(x, e, None, s, p, d, g) * y).sum()
    np.testing.assert_allclose(tw.grad, gw, rtol=RTOL, atol=1e-12)


def _compare_with_torch(torch, ours, theirs, arrays, rng):
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    ty = theirs(*ts)
    g = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(g))
    ms = [None if a is None else mv.tensor(a, requires_grad=True) for a in arrays]
    y = ours(*ms)
    (y * g).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=RTOL, atol=1e-12)
    for k, (m, t) in enumerate(zip(ms, ts)):
        if m is not None:
            np.testing.assert_allclose(m.grad, t.grad.numpy(), rtol=RTOL, atol=1e-12, err_msg=f"gradient {k}")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", range(len(GROUPED_CASES)))
def test_grouped_conv2d_values_and_gradients_match_torch(case, bias):
    torch = pytest.importorskip("torch")
    xs, ws, s, p, d, g = GROUPED_CASES[case]
    rng, x, w, b = _arrays(case, xs, ws, ws[0])
    _compare_with_torch(torch, lambda *t: F.conv2d(*t, s, p, d, g),
                        lambda *t: torch.nn.functional.conv2d(*t, s, p, d, g), [x, w, b if bias else None], rng)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", range(len(GROUPED_T_CASES)))
def test_grouped_conv_transpose2d_values_and_gradients_match_torch(case, bias):
    torch = pytest.importorskip("torch")
    xs, ws, s, p, op, d, g = GROUPED_T_CASES[case]
    rng, x, w, b = _arrays(case, xs, ws, ws[1] * g)
    _compare_with_torch(torch, lambda *t: F.conv_transpose2d(*t, s, p, op, g, d),
                        lambda *t: torch.nn.functional.conv_transpose2d(*t, s, p, op, g, d),
                        [x, w, b if bias else None], rng)


def test_depthwise_separable_block_matches_torch_with_padding_same():
    """A depthwise 3×3 (groups = channels, padding "same", unbatched input) then a pointwise 1×1: torch's values and
    gradients."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    x, wd, wp = rng.normal(size=(5, 6, 7)), rng.normal(size=(5, 1, 3, 3)), rng.normal(size=(4, 5, 1, 1))

    def block(F_, x, wd, wp):
        return F_.conv2d(F_.conv2d(x, wd, None, 1, "same", 1, 5), wp)
    _compare_with_torch(torch, lambda *t: block(F, *t), lambda *t: block(torch.nn.functional, *t), [x, wd, wp], rng)


def test_groups_that_do_not_divide_the_channels_are_refused_naming_them():
    x = mv.tensor(np.ones((1, 4, 5, 5)))
    with pytest.raises(ValueError, match=r"conv2d: groups=2 must divide the weight's first axis \(out_channels\), "
                                         r"got weight of shape \(5, 2, 3, 3\)"):
        ops.conv2d(x, mv.tensor(np.ones((5, 2, 3, 3))), groups=2)
    with pytest.raises(ValueError, match=r"conv2d: input of shape \(1, 4, 5, 5\) has 4 channels, weight of shape "
                                         r"\(6, 3, 3, 3\) with groups=2 expects 6"):
        ops.conv2d(x, mv.tensor(np.ones((6, 3, 3, 3))), groups=2)
    with pytest.raises(ValueError, match=r"conv_transpose2d: groups=3 must divide the weight's first axis "
                                         r"\(in_channels\), got weight of shape \(4, 2, 3, 3\)"):
        ops.conv_transpose2d(x, mv.tensor(np.ones((4, 2, 3, 3))), groups=3)
    with pytest.raises(ValueError, match=r"conv_transpose2d: bias must have shape \(6,\)"):
        ops.conv_transpose2d(x, mv.tensor(np.ones((4, 3, 3, 3))), mv.tensor(np.ones(3)), groups=2)
    with pytest.raises(ValueError, match="non-positive groups is not supported, got groups=0"):
        ops.conv2d(x, mv.tensor(np.ones((4, 4, 3, 3))), groups=0)
    with pytest.raises(TypeError, match="groups must be an int, got 2.0"):
        ops.conv2d(x, mv.tensor(np.ones((4, 2, 3, 3))), groups=2.0)
    with pytest.raises(ValueError, match="Conv2d: out_channels must be divisible by groups, got out_channels=6, groups=4"):
        nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="Conv2d: in_channels must be divisible by groups, got in_channels=4, groups=3"):
        nn.Conv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="ConvTranspose2d: in_channels must be divisible by groups"):
        nn.ConvTranspose2d(4, 6, 3, groups=3)


def test_grouped_modules_shapes_repr_and_init_as_torchs():
    """Weights (out, in/groups, kH, kW) and (in, out/groups, kH, kW); the init bound 1/√fan_in with torch's fan_in
    weight.shape[1]·kH·kW (in/groups·kH·kW and out/groups·kH·kW); torch's repr, groups after output_padding."""
    conv = nn.Conv2d(8, 16, 3, 1, 1, 1, 4, rng=Generator(0))
    assert conv.weight.shape == (16, 2, 3, 3) and conv.groups == 4
    assert repr(conv) == "Conv2d(8, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=4)"
    convt = nn.ConvTranspose2d(8, 16, 4, 2, 1, 1, 8, False, rng=Generator(1))
    assert convt.weight.shape == (8, 2, 4, 4) and convt.bias is None
    assert repr(convt) == ("ConvTranspose2d(8, 16, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), "
                           "output_padding=(1, 1), groups=8, bias=False)")
    for m, fan_in in ((conv, 2 * 9), (convt, 2 * 16), (nn.Conv2d(64, 64, 3, groups=64, rng=Generator(2)), 9)):
        bound = 1 / math.sqrt(fan_in)
        w = m.weight.data.astype(np.float64)
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    x = mv.tensor(np.zeros((2, 8, 6, 6), np.float32))
    assert conv(x).shape == (2, 16, 6, 6) and convt(x).shape == (2, 16, 13, 13)  # (6 − 1)·2 − 2 + 3 + 1 + 1


def test_torch_grouped_state_dicts_load_and_give_torchs_outputs():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    pairs = [(nn.Conv2d(6, 4, 3, 2, 1, 1, 2), torch.nn.Conv2d(6, 4, 3, 2, 1, 1, 2)),
             (nn.Conv2d(6, 12, 3, 1, 1, 1, 6, bias=False), torch.nn.Conv2d(6, 12, 3, 1, 1, 1, 6, bias=False)),
             (nn.ConvTranspose2d(6, 9, 3, 2, 1, 1, 3), torch.nn.ConvTranspose2d(6, 9, 3, 2, 1, 1, 3))]
    x = np.random.default_rng(0).normal(size=(2, 6, 7, 6)).astype(np.float32)
    for ours, theirs in pairs:
        state = {k: v.numpy() for k, v in theirs.state_dict().items()}
        ours.load_state_dict(state)
        np.testing.assert_allclose(ours(mv.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_grouped_convolutions_on_the_device_copy_nothing_to_the_host():
    """On device "cuda" (the strict CuPy stand-in) grouped and depthwise convolutions run forward and backward with no
    copy to the host and give the CPU's values bit for bit."""
    rng = np.random.default_rng(11)
    arrays = [rng.normal(size=(2, 4, 7, 6)).astype(np.float32), rng.normal(size=(4, 1, 3, 3)).astype(np.float32),
              rng.normal(size=(6, 2, 1, 1)).astype(np.float32), rng.normal(size=(6, 2, 4, 4)).astype(np.float32),
              rng.normal(size=6).astype(np.float32)]

    def model(x, wd, wp, wt, bt):
        h = F.conv2d(F.conv2d(x, wd, None, 1, 1, 1, 4), wp, None, 1, 0, 1, 2)
        return F.conv_transpose2d(ops.relu(h), wt, bt, 2, 1, 0, 3)

    def run(device):
        ts = [mv.tensor(a, device=device, requires_grad=True) for a in arrays]
        y = model(*ts)
        (y * y).sum().backward()
        return [y, *[t.grad for t in ts]]
    assert_device_run_is_the_cpus(run)
