"""F.pad's reflect, replicate and circular modes (minivae.ops.conv.Pad) and nn.Conv2d's padding_mode: values against
numpy.pad (reflect, edge, wrap) with torch's crop order for negative pads; gradients as the transpose of the copy map
(each output's ḡ added to the element it copies) and by the adjoint identity ⟨pad(x), y⟩ = ⟨x, pad_vjp(y)⟩; against
torch (values and gradients) over every rank torch allows; torch's errors; the strict device stand-in; the modules.
The float64 gradcheck by hypothesis draws the modes too (tests/test_ops_gradcheck.py, "pad")."""
import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import nn, ops
from minivae.random import Generator
from tests.strict_array import assert_device_run_is_the_cpus

NUMPY_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def numpy_mode_pad(x, pad, mode):
    """torch's pad in a copying mode with NumPy: per axis (last first) reflect and replicate np.pad the positive widths
    and then crop the negative ones; circular crops first and then wraps (torch's orders)."""
    for k in range(len(pad) // 2):
        axis, (lo, hi) = x.ndim - 1 - k, (pad[2 * k], pad[2 * k + 1])
        crop = [slice(None)] * x.ndim
        widths = [(0, 0)] * x.ndim
        widths[axis] = (max(lo, 0), max(hi, 0))
        if mode == "circular":
            crop[axis] = slice(max(-lo, 0), x.shape[axis] - max(-hi, 0))
            x = np.pad(x[tuple(crop)], widths, mode="wrap")
        else:
            x = np.pad(x, widths, mode=NUMPY_MODES[mode])
            crop[axis] = slice(max(-lo, 0), x.shape[axis] - max(-hi, 0))
            x = x[tuple(crop)]
    return x


# (input shape, pad): each rank torch allows (2-D/3-D for one axis, 3-D/4-D for two, 4-D/5-D for three), pads up to
# size − 1, zero and negative ones
CASES = [((2, 5), (2, 3)), ((2, 3, 5), (4, 1)), ((3, 4, 5), (1, 2, 3, 0)), ((2, 3, 4, 5), (2, 2, 3, 1)),
         ((2, 3, 4, 5), (-1, 2, 1, -2)), ((2, 3, 4, 4), (1, 0, 2, 3, 1, 1)), ((1, 2, 3, 4, 5), (3, 1, 0, 2, 2, 1)),
         ((2, 6), (-2, 3)), ((2, 3, 6), (3, -1))]
MODES = ["reflect", "replicate", "circular"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_modes_match_numpy_pad_and_the_gradient_is_the_copy_maps_transpose(case, mode):
    """Values: numpy.pad (reflect, edge, wrap). x̄: ḡ of each output added to the element it is a copy of — read off
    by padding the element numbers 0 … n − 1 and summing ḡ per number (np.bincount)."""
    shape, pad = CASES[case]
    rng = np.random.default_rng(case)
    x = rng.normal(size=shape)
    t = mv.tensor(x, requires_grad=True)
    y = F.pad(t, pad, mode=mode)
    want = numpy_mode_pad(x, pad, mode)
    np.testing.assert_array_equal(y.data, want)
    g = rng.normal(size=want.shape)
    (y * g).sum().backward()
    source = numpy_mode_pad(np.arange(x.size).reshape(shape), pad, mode)
    np.testing.assert_allclose(t.grad, np.bincount(source.ravel(), g.ravel(), x.size).reshape(shape), rtol=1e-13,
                               atol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_the_gradient_satisfies_the_adjoint_identity(mode):
    """⟨pad(x), y⟩ = ⟨x, pad_vjp(y)⟩ for random x and y, pads on three axes with crops among them."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 4, 6))
    pad = (2, -1, 3, 1, -1, 1)
    t = mv.tensor(x, requires_grad=True)
    out = F.pad(t, pad, mode=mode)
    y = rng.normal(size=out.shape)
    (out * y).sum().backward()
    np.testing.assert_allclose((out.data * y).sum(), (x * t.grad).sum(), rtol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_modes_match_torch_values_and_gradients(case, mode):
    torch = pytest.importorskip("torch")
    shape, pad = CASES[case]
    rng = np.random.default_rng(10 + case)
    x = rng.normal(size=shape)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.pad(tx, pad, mode=mode)
    g = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(g))
    t = mv.tensor(x, requires_grad=True)
    y = F.pad(t, pad, mode=mode)
    (y * g).sum().backward()
    np.testing.assert_array_equal(y.data, ty.detach().numpy())
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-13, atol=1e-14)


def test_reflect_leaves_the_edge_out_and_circular_takes_the_other_end():
    """The three modes on one row, written out: reflect mirrors about the edge element (not repeating it), replicate
    repeats it, circular continues from the other end (the left pad from the right end)."""
    x = mv.tensor(np.array([[0.0, 1.0, 2.0, 3.0]]))
    assert F.pad(x, (2, 1), mode="reflect").data.tolist() == [[2.0, 1.0, 0.0, 1.0, 2.0, 3.0, 2.0]]
    assert F.pad(x, (2, 1), mode="replicate").data.tolist() == [[0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 3.0]]
    assert F.pad(x, (2, 1), mode="circular").data.tolist() == [[2.0, 3.0, 0.0, 1.0, 2.0, 3.0, 0.0]]
    assert F.pad(x, (4, 0), mode="circular").data.tolist() == [[0.0, 1.0, 2.0, 3.0] * 2]


def test_modes_keep_the_dtype():
    for dtype in (np.int64, np.float32, np.float16):
        x = mv.tensor(np.arange(12).reshape(3, 4).astype(dtype))
        for mode in MODES:
            assert F.pad(x, (1, 2), mode=mode).dtype == dtype


def test_bad_modes_ranks_and_pads_are_refused_as_torchs():
    x = mv.tensor(np.ones((2, 3, 4)))
    with pytest.raises(NotImplementedError, match="padding size 2 is not supported for 1D input tensor"):
        F.pad(mv.tensor(np.ones(4)), (1, 1), mode="reflect")
    with pytest.raises(NotImplementedError, match="padding size 6 is not supported for 3D input tensor"):
        F.pad(x, (1, 1, 1, 1, 1, 1), mode="replicate")
    with pytest.raises(NotImplementedError, match="padding size 2 is not supported for 4D input tensor"):
        F.pad(mv.tensor(np.ones((1, 2, 3, 4))), (1, 1), mode="circular")
    with pytest.raises(ValueError, match=r"reflect padding size should be less than the corresponding input "
                                         r"dimension, but got padding \(4, 0\) at dimension 2 of input \(2, 3, 4\)"):
        F.pad(x, (4, 0), mode="reflect")
    with pytest.raises(ValueError, match=r"padding \(0, 3\) at dimension 1"):
        F.pad(x, (0, 0, 0, 3), mode="reflect")
    with pytest.raises(ValueError, match=r"circular padding \(5, 0\) at dimension 2 of input \(2, 3, 4\) wraps around "
                                         r"more than once \(4 elements after cropping\)"):
        F.pad(x, (5, 0), mode="circular")
    with pytest.raises(ValueError, match=r"circular padding \(-1, 4\) .* \(3 elements after cropping\)"):
        F.pad(x, (-1, 4), mode="circular")
    with pytest.raises(ValueError, match='padding mode "reflect" doesn\'t take in value argument'):
        F.pad(x, (1, 1), mode="reflect", value=1.0)
    with pytest.raises(ValueError, match=r"padding mode 'replicate' expects non-empty dimensions but the batch, got "
                                         r"input of shape \(2, 0, 4\)"):
        F.pad(mv.tensor(np.ones((2, 0, 4))), (1, 1), mode="replicate")
    with pytest.raises(ValueError, match="unrecognised padding mode 'symmetric'"):
        F.pad(x, (1, 1), mode="symmetric")
    assert F.pad(mv.tensor(np.ones((0, 3, 4))), (1, 1), mode="reflect").shape == (0, 3, 6)  # (an empty batch: torch's)
    assert F.pad(x, (3, 3), mode="reflect", value=0).shape == (2, 3, 10)


def test_modes_on_the_device_copy_nothing_to_the_host():
    """On device "cuda" (the strict CuPy stand-in) each mode runs forward and backward with no copy to the host and
    gives the CPU's values bit for bit."""
    x = np.random.default_rng(1).normal(size=(2, 3, 5, 6)).astype(np.float32)
    for mode in MODES:
        def run(device, mode=mode):
            t = mv.tensor(x, device=device, requires_grad=True)
            y = F.pad(t, (2, -1, 1, 3), mode=mode)
            (y * y).sum().backward()
            return [y, t.grad]
        assert_device_run_is_the_cpus(run)


# ---- nn.Conv2d(padding_mode=…) --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padding, kernel, dilation", [(1, 3, 1), ((2, 1), (3, 2), (1, 2)), ("same", (4, 3), 1),
                                                       ("valid", 3, 1)])
def test_conv2d_padding_modes_match_torch(mode, padding, kernel, dilation):
    """nn.Conv2d with padding_mode reflect, replicate or circular: torch's values and gradients (input, weight, bias)
    with torch's weights loaded; "same" with an even kernel puts the odd row at the bottom as torch's."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(4, 6, kernel, 1, padding, dilation, 2, padding_mode=mode).double()
    ours = nn.Conv2d(4, 6, kernel, 1, padding, dilation, 2, padding_mode=mode, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 6, 7))
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    g = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(g))
    t = mv.tensor(x, requires_grad=True)
    y = ours(t)
    (y * g).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_conv2d_padding_mode_is_the_pad_then_an_unpadded_convolution():
    """Without torch: Conv2d(padding=(p_h, p_w), padding_mode=m)(x) = conv2d(F.pad(x, (p_w, p_w, p_h, p_h), m), w, b)
    with no padding, F.pad's values checked against numpy.pad above; the zero mode is the plain padded conv2d."""
    rng = np.random.default_rng(5)
    x = mv.tensor(rng.normal(size=(2, 3, 5, 6)))
    for mode in MODES + ["zeros"]:
        conv = nn.Conv2d(3, 2, 3, 1, (1, 2), padding_mode=mode, dtype=np.float64, rng=Generator(1))
        padded = numpy_mode_pad(x.data, (2, 2, 1, 1), mode) if mode != "zeros" else np.pad(
            x.data, [(0, 0), (0, 0), (1, 1), (2, 2)])
        want = ops.conv2d(mv.tensor(padded), conv.weight, conv.bias).data
        np.testing.assert_allclose(conv(x).data, want, rtol=1e-12)


def test_padding_mode_state_dict_repr_and_errors_as_torchs():
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect", bias=False)
    assert sorted(conv.state_dict()) == ["weight"]
    assert repr(conv) == ("Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False, "
                          "padding_mode=reflect)")
    assert repr(nn.Conv2d(4, 4, 3, 1, 1, 1, 2, True, "circular")) == (
        "Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), groups=2, padding_mode=circular)")
    assert "padding_mode" not in repr(nn.Conv2d(3, 4, 3, padding_mode="zeros"))
    assert sorted(nn.Conv2d(3, 4, 3, padding_mode="replicate").state_dict()) == ["bias", "weight"]
    with pytest.raises(ValueError, match=r"padding_mode must be one of \('zeros', 'reflect', 'replicate', "
                                         r"'circular'\), but got padding_mode='mirror'"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match='Only "zeros" padding mode is supported for ConvTranspose2d'):
        nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="reflect padding size should be less than the corresponding input dimension"):
        nn.Conv2d(1, 1, 5, padding=2, padding_mode="reflect")(mv.tensor(np.ones((1, 1, 2, 2))))
