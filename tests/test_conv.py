"""2-D convolutions (minivae.ops.conv, F.conv2d / F.conv_transpose2d / F.pad, nn.Conv2d / nn.ConvTranspose2d):
values and gradients against torch over strides, paddings, dilations and output paddings; without torch, against a
convolution written out as nested loops here and conv_transpose2d as conv2d's adjoint; dtypes, the strict device
stand-in (nothing copied to the host), the errors, and the modules (init by fan_in, torch's state_dict, training).
The float64 gradchecks by hypothesis are in tests/test_ops_gradcheck.py (DOMAINS)."""
import itertools
import math

import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import nn, ops
from minivae.optim import Adam
from minivae.random import Generator
from tests.strict_array import assert_device_run_is_the_cpus

RTOL = 1e-10


# ---- the references, written out --------------------------------------------------------------------------------
def loop_conv2d(x, w, b, stride, padding, dilation):
    """y[n, o, i, j] = b[o] + Σ_{c,a,b} w[o, c, a, b] · x_p[n, c, i·s + a·d, j·s + b·d], one term at a time."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    n_, c_, h, w_ = x.shape
    o_, _, kh, kw = w.shape
    xp = np.zeros((n_, c_, h + 2 * ph, w_ + 2 * pw))
    xp[:, :, ph:ph + h, pw:pw + w_] = x
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w_ + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n_, o_, ho, wo))
    for n, o, i, j in itertools.product(range(n_), range(o_), range(ho), range(wo)):
        total = 0.0 if b is None else b[o]
        for c, a, bb in itertools.product(range(c_), range(kh), range(kw)):
            total += w[o, c, a, bb] * xp[n, c, i * sh + a * dh, j * sw + bb * dw]
        y[n, o, i, j] = total
    return y


def loop_conv_transpose2d(x, w, b, stride, padding, output_padding, dilation):
    """Each x[n, c, i, j]·w[c, o, a, b] added at (i·s + a·d − p, j·s + b·d − p) of an output of
    (H − 1)s − 2p + d(k − 1) + op + 1 rows (the same for columns), places outside it dropped, then + b[o]."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    n_, c_, h, w_ = x.shape
    _, o_, kh, kw = w.shape
    ho, wo = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1, (w_ - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    y = np.zeros((n_, o_, ho, wo)) + (0 if b is None else b[None, :, None, None])
    for n, c, i, j, o, a, bb in itertools.product(range(n_), range(c_), range(h), range(w_), range(o_), range(kh),
                                                  range(kw)):
        r, s = i * sh + a * dh - ph, j * sw + bb * dw - pw
        if 0 <= r < ho and 0 <= s < wo:
            y[n, o, r, s] += x[n, c, i, j] * w[c, o, a, bb]
    return y


# (x shape, weight shape, stride, padding, dilation): odd sizes, 1×1 kernels, a kernel as large as the (padded)
# input, N = 1, C = 1, each argument as an int and as a pair
CONV_CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 2), (2, 1), (1, 2), (2, 1)),
    ((1, 1, 5, 5), (1, 1, 5, 5), 1, 0, 1),
    ((3, 2, 4, 5), (2, 2, 1, 1), 3, 0, 1),
    ((2, 2, 5, 4), (3, 2, 1, 1), 1, 1, 2),
    ((1, 3, 6, 7), (2, 3, 4, 4), 2, 1, 1),
    ((2, 1, 3, 3), (2, 1, 5, 5), 1, 1, 1),
    ((1, 2, 9, 8), (3, 2, 3, 3), (3, 2), (0, 1), (2, 3)),
    ((2, 2, 5, 5), (1, 2, 2, 3), 2, (2, 0), 1),
]
# (x shape, weight shape (in, out, kH, kW), stride, padding, output_padding, dilation)
CONVT_CASES = [
    ((2, 3, 5, 4), (3, 2, 3, 2), (2, 3), (1, 0), (1, 2), (1, 2)),
    ((2, 3, 5, 4), (3, 2, 3, 2), 1, (1, 0), 1, 2),
    ((1, 1, 3, 3), (1, 1, 1, 1), 1, 0, 0, 1),
    ((2, 4, 7, 7), (4, 3, 4, 4), 2, 1, 0, 1),
    ((1, 2, 4, 3), (2, 1, 3, 3), 3, 2, (2, 1), 1),
    ((3, 2, 2, 3), (2, 2, 2, 3), (1, 2), 0, (0, 1), (3, 1)),
    ((1, 2, 1, 1), (2, 3, 3, 3), 1, 0, 0, 1),
]


def pair(v):
    return (v, v) if isinstance(v, int) else v


def _conv_arrays(rng, xs, ws, bias_size):
    return rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=bias_size)


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv2d_matches_the_nested_loops(case):
    xs, ws, s, p, d = CONV_CASES[case]
    x, w, b = _conv_arrays(np.random.default_rng(case), xs, ws, ws[0])
    for bias in (b, None):
        got = ops.conv2d(mv.tensor(x), mv.tensor(w), None if bias is None else mv.tensor(bias), s, p, d)
        np.testing.assert_allclose(got.data, loop_conv2d(x, w, bias, pair(s), pair(p), pair(d)), rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("case", range(len(CONVT_CASES)))
def test_conv_transpose2d_matches_the_nested_loops(case):
    xs, ws, s, p, op, d = CONVT_CASES[case]
    x, w, b = _conv_arrays(np.random.default_rng(case), xs, ws, ws[1])
    for bias in (b, None):
        got = ops.conv_transpose2d(mv.tensor(x), mv.tensor(w), None if bias is None else mv.tensor(bias), s, p, op,
                                   dilation=d)
        want = loop_conv_transpose2d(x, w, bias, pair(s), pair(p), pair(op), pair(d))
        np.testing.assert_allclose(got.data, want, rtol=RTOL, atol=1e-12)


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv_transpose2d_is_the_adjoint_of_conv2d(case):
    """⟨conv2d(x, w), y⟩ = ⟨x, conv_transpose2d(y, w)⟩ for random x and y, the output padding chosen so that
    conv_transpose2d gives x's size back; and the gradients of conv2d that the engine returns are these maps too:
    x̄ = conv_transpose2d(ḡ, w) (linear in x), w̄ = ∂⟨conv2d(x, w), ḡ⟩/∂w read off as ⟨conv2d(x, e), ḡ⟩ per entry."""
    xs, ws, s, p, d = CONV_CASES[case]
    (sh, sw), (ph, pw), (dh, dw) = pair(s), pair(p), pair(d)
    rng = np.random.default_rng(100 + case)
    x, w = rng.normal(size=xs), rng.normal(size=ws)
    y_shape = ops.conv2d(mv.tensor(x), mv.tensor(w), None, s, p, d).shape
    y = rng.normal(size=y_shape)
    op = (xs[2] - ((y_shape[2] - 1) * sh - 2 * ph + dh * (ws[2] - 1) + 1),
          xs[3] - ((y_shape[3] - 1) * sw - 2 * pw + dw * (ws[3] - 1) + 1))
    assert all(0 <= v < sv for v, sv in zip(op, (sh, sw)))
    convx = ops.conv2d(mv.tensor(x), mv.tensor(w), None, s, p, d).data
    convty = ops.conv_transpose2d(mv.tensor(y), mv.tensor(w), None, s, p, op, dilation=d).data
    assert convty.shape == x.shape
    np.testing.assert_allclose((convx * y).sum(), (x * convty).sum(), rtol=RTOL)
    tx, tw = mv.tensor(x, requires_grad=True), mv.tensor(w, requires_grad=True)
    (ops.conv2d(tx, tw, None, s, p, d) * y).sum().backward()
    np.testing.assert_allclose(tx.grad, convty, rtol=RTOL, atol=1e-12)
    gw = np.zeros_like(w)
    for idx in itertools.product(*map(range, w.shape)):
        e = np.zeros_like(w)
        e[idx] = 1.0
        gw[idx] = (loop_conv2d(x, e, None, (sh, sw), (ph, pw), (dh, dw)) * y).sum()
    np.testing.assert_allclose(tw.grad, gw, rtol=RTOL, atol=1e-12)


def _torch_grads(torch, fn, arrays, g):
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    out.backward(torch.tensor(g))
    return out.detach().numpy(), [None if t is None else t.grad.numpy() for t in ts]


def _ours_grads(fn, arrays, g):
    ts = [None if a is None else mv.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*ts)
    (out * g).sum().backward()
    return out.data, [None if t is None else t.grad for t in ts]


def _compare(ours, theirs):
    (y, grads), (ty, tgrads) = ours, theirs
    np.testing.assert_allclose(y, ty, rtol=RTOL, atol=1e-12)
    for k, (a, b) in enumerate(zip(grads, tgrads)):
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=1e-12, err_msg=f"gradient {k}")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv2d_values_and_gradients_match_torch(case, bias):
    torch = pytest.importorskip("torch")
    xs, ws, s, p, d = CONV_CASES[case]
    rng = np.random.default_rng(case)
    x, w, b = _conv_arrays(rng, xs, ws, ws[0])
    arrays = [x, w, b if bias else None]
    g = rng.normal(size=tuple(torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), None, s, p, d).shape))
    _compare(_ours_grads(lambda *t: F.conv2d(*t, s, p, d), arrays, g),
             _torch_grads(torch, lambda *t: torch.nn.functional.conv2d(*t, s, p, d), arrays, g))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", range(len(CONVT_CASES)))
def test_conv_transpose2d_values_and_gradients_match_torch(case, bias):
    torch = pytest.importorskip("torch")
    xs, ws, s, p, op, d = CONVT_CASES[case]
    rng = np.random.default_rng(case)
    x, w, b = _conv_arrays(rng, xs, ws, ws[1])
    arrays = [x, w, b if bias else None]

    def theirs(*t):
        return torch.nn.functional.conv_transpose2d(*t, stride=s, padding=p, output_padding=op, dilation=d)
    g = rng.normal(size=tuple(theirs(*[None if a is None else torch.tensor(a) for a in arrays]).shape))
    _compare(_ours_grads(lambda *t: F.conv_transpose2d(*t, s, p, op, dilation=d), arrays, g),
             _torch_grads(torch, theirs, arrays, g))


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # (torch's note that it copies the input)
@pytest.mark.parametrize("kernel, dilation", [((3, 3), 1), ((4, 2), 1), ((3, 4), (2, 1)), ((2, 2), 3), ((1, 1), 1)])
def test_conv2d_padding_same_and_valid_match_torch(kernel, dilation):
    """padding="same": the output as large as the input, the extra row or column (an odd d(k − 1)) at the bottom and
    right, as torch's; "valid": no padding."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x, w, b = rng.normal(size=(2, 3, 6, 7)), rng.normal(size=(2, 3) + kernel), rng.normal(size=2)
    for padding in ("same", "valid"):
        ty = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=padding,
                                        dilation=dilation).numpy()
        g = rng.normal(size=ty.shape)
        _compare(_ours_grads(lambda *t, padding=padding: F.conv2d(*t, padding=padding, dilation=dilation), [x, w, b], g),
                 _torch_grads(torch, lambda *t, padding=padding: torch.nn.functional.conv2d(*t, padding=padding,
                                                                                          dilation=dilation),
                              [x, w, b], g))
    assert ops.conv2d(mv.tensor(x), mv.tensor(w), padding="same", dilation=dilation).shape == (2, 2, 6, 7)


def test_unbatched_inputs_give_unbatched_outputs_with_the_batched_values_and_gradients():
    rng = np.random.default_rng(3)
    x, w, b = rng.normal(size=(3, 6, 5)), rng.normal(size=(2, 3, 3, 2)), rng.normal(size=2)
    one = mv.tensor(x, requires_grad=True)
    batch = mv.tensor(x[None], requires_grad=True)
    y1, yb = ops.conv2d(one, mv.tensor(w), mv.tensor(b), 2, 1), ops.conv2d(batch, mv.tensor(w), mv.tensor(b), 2, 1)
    assert y1.shape == yb.shape[1:]
    np.testing.assert_array_equal(y1.data, yb.data[0])
    g = rng.normal(size=y1.shape)
    (y1 * g).sum().backward()
    (yb * g[None]).sum().backward()
    np.testing.assert_array_equal(one.grad, batch.grad[0])
    wt = rng.normal(size=(3, 2, 3, 2))
    one, batch = mv.tensor(x, requires_grad=True), mv.tensor(x[None], requires_grad=True)
    y1 = ops.conv_transpose2d(one, mv.tensor(wt), mv.tensor(b), 2, 1, 1)
    yb = ops.conv_transpose2d(batch, mv.tensor(wt), mv.tensor(b), 2, 1, 1)
    assert y1.shape == yb.shape[1:] == (2, 12, 9)
    np.testing.assert_array_equal(y1.data, yb.data[0])
    g = rng.normal(size=y1.shape)
    (y1 * g).sum().backward()
    (yb * g[None]).sum().backward()
    np.testing.assert_array_equal(one.grad, batch.grad[0])


# ---- pad ----------------------------------------------------------------------------------------------------------
def numpy_pad(x, pad, value):
    """torch's constant pad written with NumPy: crop the negative widths, then np.pad the positive ones."""
    widths = [(0, 0)] * x.ndim
    for k in range(len(pad) // 2):
        widths[x.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
    x = x[tuple(slice(max(-lo, 0), x.shape[i] - max(-hi, 0)) for i, (lo, hi) in enumerate(widths))]
    return np.pad(x, [(max(lo, 0), max(hi, 0)) for lo, hi in widths], constant_values=value)


PADS = [(1, 2), (0, 0, 2, 1), (-1, 2, 1, -2), (1, 1, 1, 1, 1, 1), (-3, 0), (2, -1, 0, 0, -1, 3), ()]


@pytest.mark.parametrize("pad", PADS)
def test_pad_values_and_gradient(pad):
    rng = np.random.default_rng(len(pad))
    x = rng.normal(size=(3, 4, 5))
    t = mv.tensor(x, requires_grad=True)
    y = F.pad(t, pad, value=1.5)
    want = numpy_pad(x, pad, 1.5)
    np.testing.assert_array_equal(y.data, want)
    g = rng.normal(size=want.shape)
    (y * g).sum().backward()
    # x̄: the upstream gradient where each element of x landed (0 where it was cropped): pad's linear map's transpose
    marks = numpy_pad(np.arange(x.size, dtype=float).reshape(x.shape) + 1, pad, 0.0)
    want_grad = np.zeros(x.size)
    want_grad[(marks[marks > 0] - 1).astype(int)] = g[marks > 0]
    np.testing.assert_array_equal(t.grad, want_grad.reshape(x.shape))


@pytest.mark.parametrize("pad", PADS)
def test_pad_matches_torch(pad):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(3, 4, 5))
    np.testing.assert_array_equal(F.pad(mv.tensor(x), pad, value=-2.0).data,
                                  torch.nn.functional.pad(torch.tensor(x), pad, value=-2.0).numpy())
    np.testing.assert_array_equal(F.pad(mv.tensor(x), pad).data, torch.nn.functional.pad(torch.tensor(x), pad).numpy())


def test_pad_keeps_the_dtype_and_refuses_bad_pads_naming_them():
    x = mv.tensor(np.arange(6, dtype=np.int32).reshape(2, 3))
    assert F.pad(x, (1, 1)).dtype == np.int32
    assert F.pad(mv.tensor(np.ones((2, 3), np.float32)), (1, 1), value=0.5).dtype == np.float32
    with pytest.raises(ValueError, match="divisible by 2"):
        F.pad(x, (1,))
    with pytest.raises(ValueError, match="padding length 6 and input of dimension 2"):
        F.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(ValueError, match="axis 1 of size 3 cropped by 2 and 2"):
        F.pad(x, (-2, -2))
    with pytest.raises(TypeError, match="pad must be a tuple of ints"):
        F.pad(x, 1)
    with pytest.raises(ValueError, match="unrecognised padding mode 'mirror'"):
        F.pad(x, (1, 1), mode="mirror")


# ---- dtypes, device -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_conv_of_float32_and_float16_stays_in_that_dtype_gradients_too(dtype):
    """float32 in, float32 out (values within float32's rounding of the float64 result), gradients of each input's
    dtype; float16 computed in float32 and rounded once."""
    rng = np.random.default_rng(5)
    x, w, b = rng.normal(size=(2, 3, 6, 6)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    wt = rng.normal(size=(3, 4, 3, 3))
    tol = 1e-5 if dtype == np.float32 else 3e-3
    for fn, weight in ((lambda *t: ops.conv2d(*t, stride=2, padding=1), w),
                       (lambda *t: ops.conv_transpose2d(*t, stride=2, padding=1, output_padding=1), wt)):
        bias = b if weight is w else b[:4]
        ts = [mv.tensor(a.astype(dtype), requires_grad=True) for a in (x, weight, bias)]
        y = fn(*ts)
        assert y.dtype == dtype
        want = fn(*[mv.tensor(a.astype(dtype).astype(np.float64)) for a in (x, weight, bias)]).data
        np.testing.assert_allclose(y.data.astype(np.float64), want, rtol=tol, atol=tol * np.abs(want).max())
        y.sum().backward()
        assert [t.grad.dtype for t in ts] == [np.dtype(dtype)] * 3
    p = F.pad(mv.tensor(x.astype(dtype), requires_grad=True), (1, 2, 3, 4))
    assert p.dtype == dtype


def test_integer_images_through_float32_weights_are_float32():
    x = np.arange(2 * 1 * 5 * 5).reshape(2, 1, 5, 5)  # int64 pixels
    w = np.random.default_rng(0).normal(size=(3, 1, 3, 3)).astype(np.float32)
    y = ops.conv2d(mv.tensor(x), mv.tensor(w))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.data, loop_conv2d(x.astype(float), w.astype(float), None, (1, 1), (0, 0), (1, 1)),
                               rtol=1e-5)


def test_conv_forward_and_backward_on_the_device_copy_nothing_to_the_host():
    """On device "cuda" (the strict CuPy stand-in) both convolutions and pad run forward and backward with no copy to
    the host, and give the CPU's values bit for bit."""
    rng = np.random.default_rng(11)
    arrays = [rng.normal(size=(2, 3, 7, 6)).astype(np.float32), rng.normal(size=(4, 3, 3, 2)).astype(np.float32),
              rng.normal(size=4).astype(np.float32), rng.normal(size=(3, 2, 3, 3)).astype(np.float32),
              rng.normal(size=2).astype(np.float32)]

    def model(x, w, b, wt, bt):
        h = F.conv2d(F.pad(x, (1, 0, -1, 2)), w, b, stride=(2, 1), padding=1, dilation=(1, 2))
        return F.conv_transpose2d(ops.relu(h)[:, :3], wt, bt, stride=2, padding=1, output_padding=1)

    def run(device):
        ts = [mv.tensor(a, device=device, requires_grad=True) for a in arrays]
        y = model(*ts)
        (y * y).sum().backward()
        return [y, *[t.grad for t in ts]]
    assert_device_run_is_the_cpus(run)


def test_conv_modules_on_the_device_train_without_copies_to_the_host():
    """nn.Conv2d and nn.ConvTranspose2d made on device "cuda" (the strict stand-in): parameters there, a forward and
    backward pass with no copy to the host, the CPU's gradients bit for bit."""
    x = np.random.default_rng(2).random((3, 1, 8, 8)).astype(np.float32)

    def grads(device):
        enc = nn.Conv2d(1, 4, 4, 2, 1, rng=Generator(0), device=device)
        dec = nn.ConvTranspose2d(4, 1, 4, 2, 1, rng=Generator(1), device=device)
        xt = mv.tensor(x, device=device)
        ((dec(ops.relu(enc(xt))) - xt) ** 2).sum().backward()
        return [p.grad for p in (enc.weight, enc.bias, dec.weight, dec.bias)]
    assert_device_run_is_the_cpus(grads)


# ---- errors -------------------------------------------------------------------------------------------------------
def test_bad_convolutions_are_refused_naming_the_problem():
    x, w = mv.tensor(np.ones((1, 3, 5, 5))), mv.tensor(np.ones((4, 3, 3, 3)))
    with pytest.raises(ValueError, match=r"input of shape \(1, 3, 5, 5\) has 3 channels, weight of shape \(4, 2, 3, 3\) "
                                         r"expects 2"):
        ops.conv2d(x, mv.tensor(np.ones((4, 2, 3, 3))))
    with pytest.raises(ValueError, match=r"conv_transpose2d: input of shape .* has 3 channels, weight of shape "
                                         r"\(4, 3, 3, 3\) expects 4"):
        ops.conv_transpose2d(x, w)
    with pytest.raises(ValueError, match=r"weight must be 4-D \(out, in, kH, kW\), got shape \(4, 3, 3\)"):
        ops.conv2d(x, mv.tensor(np.ones((4, 3, 3))))
    with pytest.raises(ValueError, match=r"expected a 3-D \(unbatched\) or 4-D \(batched\) input .* got shape \(5, 5\)"):
        ops.conv2d(mv.tensor(np.ones((5, 5))), w)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        ops.conv2d(x, w, mv.tensor(np.ones(3)))
    with pytest.raises(ValueError, match=r"conv2d: the output would be 0 x 0, not positive: input 5 x 5, padding "
                                         r"\(0, 0\), kernel 3 x 3 \(dilated by \(3, 3\): 7 x 7\)"):
        ops.conv2d(x, w, dilation=3)
    with pytest.raises(ValueError, match=r"conv2d: the output would be 0 x 3"):
        ops.conv2d(mv.tensor(np.ones((1, 3, 2, 5))), w)
    with pytest.raises(ValueError, match=r"conv_transpose2d: the output would be -1 x -1, not positive"):
        ops.conv_transpose2d(mv.tensor(np.ones((1, 4, 1, 1))), w, padding=2)
    with pytest.raises(ValueError, match=r"output_padding must be smaller than either stride or dilation, got "
                                         r"output_padding \(2, 0\), stride \(2, 2\), dilation \(1, 1\)"):
        ops.conv_transpose2d(mv.tensor(np.ones((1, 4, 3, 3))), w, stride=2, output_padding=(2, 0))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        ops.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="padding must be >= 0"):
        ops.conv2d(x, w, padding=-1)
    with pytest.raises(TypeError, match=r"dilation must be an int or a pair of ints, got \(1, 1, 1\)"):
        ops.conv2d(x, w, dilation=(1, 1, 1))
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        ops.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding must be 'valid', 'same'"):
        ops.conv2d(x, w, padding="full")


# ---- modules ------------------------------------------------------------------------------------------------------
def test_conv_modules_shapes_and_repr_as_torchs():
    enc = nn.Conv2d(1, 32, 4, 2, 1)
    assert enc.weight.shape == (32, 1, 4, 4) and enc.bias.shape == (32,) and enc.weight.dtype == np.float32
    assert repr(enc) == "Conv2d(1, 32, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1))"
    dec = nn.ConvTranspose2d(64, 32, (4, 3), 2, 1, 1, bias=False, dilation=(1, 2))
    assert dec.weight.shape == (64, 32, 4, 3) and dec.bias is None
    assert repr(dec) == ("ConvTranspose2d(64, 32, kernel_size=(4, 3), stride=(2, 2), padding=(1, 1), "
                         "dilation=(1, 2), output_padding=(1, 1), bias=False)")
    x = mv.tensor(np.zeros((5, 1, 28, 28), np.float32))
    assert enc(x).shape == (5, 32, 14, 14)
    assert nn.ConvTranspose2d(32, 1, 4, 2, 1)(enc(x)).shape == (5, 1, 28, 28)
    assert nn.Conv2d(3, 2, 3, padding="same", dtype=np.float64).weight.dtype == np.float64
    assert repr(nn.Conv2d(3, 2, 3, padding="same")) == "Conv2d(3, 2, kernel_size=(3, 3), stride=(1, 1), padding=same)"


@pytest.mark.parametrize("module, fan_in", [(lambda: nn.Conv2d(16, 256, (3, 2), rng=Generator(1)), 16 * 6),
                                            (lambda: nn.ConvTranspose2d(64, 256, (2, 3), rng=Generator(2)), 256 * 6),
                                            (lambda: nn.ConvTranspose2d(256, 16, 3, rng=Generator(3)), 16 * 9)])
def test_init_is_uniform_within_one_over_root_fan_in_as_torchs(module, fan_in):
    """torch's kaiming_uniform_(a=√5) and bias init: U(−1/√fan_in, 1/√fan_in), fan_in = weight.shape[1]·kH·kW (for
    ConvTranspose2d its out_channels). All inside the bound, which is reached to within 5% where there are ≥ 256
    draws (P(all inside 0.95·bound) ≤ 0.95²⁵⁶ < 10⁻⁵), and the second moment is bound²/3 within 6 standard errors."""
    m = module()
    bound = 1 / math.sqrt(fan_in)
    for p in (m.weight.data.astype(np.float64), m.bias.data.astype(np.float64)):
        n = p.size
        assert np.abs(p).max() <= bound and (n < 256 or np.abs(p).max() > 0.95 * bound)
        se = math.sqrt((bound ** 4 / 5 - bound ** 4 / 9) / n)  # the sample second moment's standard error
        assert abs((p ** 2).mean() - bound ** 2 / 3) < 6 * se


def test_torch_state_dicts_load_both_ways_and_give_torchs_outputs():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    pairs = [(nn.Conv2d(3, 5, (3, 2), 2, 1, 2), torch.nn.Conv2d(3, 5, (3, 2), 2, 1, 2)),
             (nn.ConvTranspose2d(3, 5, 3, 2, 1, 1), torch.nn.ConvTranspose2d(3, 5, 3, 2, 1, 1)),
             (nn.Conv2d(3, 4, 3, bias=False), torch.nn.Conv2d(3, 4, 3, bias=False))]
    x = np.random.default_rng(0).normal(size=(2, 3, 7, 6)).astype(np.float32)
    for ours, theirs in pairs:
        state = {k: v.numpy() for k, v in theirs.state_dict().items()}
        assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in state.items()}
        ours.load_state_dict(state)
        np.testing.assert_allclose(ours(mv.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
        ours.load_state_dict({k: v * 0.5 for k, v in state.items()})  # ours, new values, into torch's
        theirs.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in ours.state_dict().items()})
        np.testing.assert_allclose(ours(mv.tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_a_small_conv_model_trains():
    """A conv → ReLU → transposed conv autoencoder of 8×8 images: the reconstruction loss falls by half in 30 Adam
    steps, and every parameter gets a gradient."""
    rng = np.random.default_rng(0)
    x = mv.tensor((rng.random((16, 1, 8, 8)) < 0.3).astype(np.float32))
    model = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1, rng=Generator(0)), nn.ReLU(),
                          nn.ConvTranspose2d(8, 1, 4, 2, 1, rng=Generator(1)))
    opt = Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.mse_loss(model(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None and np.abs(p.grad).max() > 0 for p in model.parameters())
    assert losses[-1] < 0.5 * losses[0], losses
