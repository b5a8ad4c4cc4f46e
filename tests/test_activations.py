"""The activations torch.nn has and minivae added (leaky_relu, elu, gelu, silu; their nn modules, and Sigmoid,
Softplus, Identity): values and gradients against formulas written out with ``math`` (so CI without torch checks
them), against torch itself, at the kinks (torch's gradient there), and at ±1e4 (finite)."""
import importlib.util
import math

import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import nn
from minivae._backend import use_numba


def phi(x):
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


def tanh_gelu(x):
    u = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
    t = math.tanh(u)
    return 0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x * x)


def sigmoid(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


# (name, minivae function, the reference (value, derivative) at x written out, with torch's derivative at the kink x = 0)
REFERENCES = [
    ("leaky_relu", lambda t: F.leaky_relu(t), lambda x: (x if x > 0 else 0.01 * x, 1.0 if x > 0 else 0.01)),
    ("leaky_relu_0.2", lambda t: F.leaky_relu(t, 0.2), lambda x: (x if x > 0 else 0.2 * x, 1.0 if x > 0 else 0.2)),
    ("leaky_relu_neg", lambda t: F.leaky_relu(t, negative_slope=-0.5),
     lambda x: (x if x > 0 else -0.5 * x, 1.0 if x > 0 else -0.5)),
    ("elu", lambda t: F.elu(t), lambda x: (x if x > 0 else math.expm1(x), 1.0 if x > 0 else math.exp(x))),
    ("elu_2", lambda t: F.elu(t, alpha=2.0), lambda x: (x if x > 0 else 2 * math.expm1(x), 1.0 if x > 0 else 2 * math.exp(x))),
    ("gelu", lambda t: F.gelu(t), lambda x: (x * cdf(x), cdf(x) + x * phi(x))),
    ("gelu_tanh", lambda t: F.gelu(t, approximate="tanh"), tanh_gelu),
    ("silu", lambda t: F.silu(t), lambda x: (x * sigmoid(x), sigmoid(x) * (1 + x * (1 - sigmoid(x))))),
]
POINTS = [-37.0, -30.0, -7.0, -2.5, -1.0, -0.3, -1e-3, 0.0, 1e-3, 0.3, 1.0, 2.5, 7.0, 30.0]


@pytest.mark.parametrize("kernels", [False, True], ids=["formula", "kernels"])
@pytest.mark.parametrize("name, fn, reference", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_values_and_gradients_match_the_formulas_written_out(name, fn, reference, kernels):
    """On both paths: with Numba, exact GELU's Φ is the fused erfc kernel and its array formula is not reached."""
    if kernels and importlib.util.find_spec("numba") is None:
        pytest.skip("Numba is not installed: the fused CPU kernels are not in use")
    x = mv.tensor(np.array(POINTS), requires_grad=True)
    upstream = np.random.default_rng(0).normal(size=len(POINTS))
    with use_numba(kernels):
        y = fn(x)
        (y * mv.tensor(upstream)).sum().backward()
    want = np.array([reference(p) for p in POINTS])
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), want[:, 0], rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(x.grad, upstream * want[:, 1], rtol=1e-13, atol=1e-300)


def test_gradients_at_the_kink_are_torchs():
    """At x = 0 (and −0): relu'(0) = 0, leaky_relu'(0) = s, elu'(0) = α, gelu'(0) = silu'(0) = ½, in torch."""
    for fn, slope in ((F.relu, 0.0), (lambda t: F.leaky_relu(t, 0.2), 0.2), (lambda t: F.leaky_relu(t), 0.01),
                      (lambda t: F.elu(t, 2.0), 2.0), (F.elu, 1.0), (F.gelu, 0.5),
                      (lambda t: F.gelu(t, approximate="tanh"), 0.5), (F.silu, 0.5)):
        x = mv.tensor(np.array([0.0, -0.0]), requires_grad=True)
        y = fn(x)
        y.sum().backward()
        np.testing.assert_array_equal(y.numpy(), [0.0, 0.0])
        np.testing.assert_array_equal(x.grad, [slope, slope])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name, fn, reference", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_finite_at_plus_and_minus_1e4(name, fn, reference, dtype):
    x = mv.tensor(np.array([-1e4, -1e3, -100.0, 100.0, 1e3, 1e4], dtype), requires_grad=True)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # not even an intermediate overflow (underflow to 0 is right)
        y = fn(x)
        y.backward(np.ones(6, dtype))
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert np.isfinite(y.numpy()).all() and np.isfinite(x.grad).all()
    np.testing.assert_array_equal(y.numpy()[3:], x.numpy()[3:])  # every one of them is x for a large x
    np.testing.assert_array_equal(x.grad[3:], 1.0)


def test_gelu_keeps_the_left_tail():
    """Φ as ½·erfc(−x/√2): gelu(−10) = −10·Φ(−10) = −7.6e-23, where torch's ½(1 + erf(x/√2)) rounds to −0."""
    y = F.gelu(mv.tensor(np.array([-10.0, -30.0])))
    np.testing.assert_allclose(y.numpy(), [-10 * cdf(-10.0), -30 * cdf(-30.0)], rtol=1e-14)
    assert y.numpy()[0] < -7e-23


def test_integer_input_is_float32_and_the_input_is_not_changed():
    x = np.array([-2, 0, 3])
    for fn in (F.leaky_relu, F.elu, F.gelu, F.silu):
        y = fn(mv.tensor(x))
        assert y.dtype == np.float32
    np.testing.assert_array_equal(x, [-2, 0, 3])
    x32 = np.array([-1.5, 2.0], np.float32)
    for fn in (F.leaky_relu, F.elu, F.gelu, F.silu, lambda t: F.gelu(t, approximate="tanh")):
        assert fn(mv.tensor(x32)).dtype == np.float32
    t = mv.tensor(x32.copy())
    F.leaky_relu(t, inplace=True)  # accepted; a new tensor all the same
    np.testing.assert_array_equal(t.numpy(), x32)


def test_bad_arguments_are_refused_naming_them():
    x = mv.tensor(np.ones(2))
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'exact'"):
        F.gelu(x, approximate="exact")
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        nn.GELU("Tanh")
    with pytest.raises(TypeError, match="negative_slope must be a real number"):
        F.leaky_relu(x, negative_slope="0.1")
    with pytest.raises(TypeError, match="alpha must be a real number"):
        F.elu(x, alpha=None)
    with pytest.raises(TypeError, match="inplace must be True or False"):
        nn.ReLU(inplace="yes")


MODULES = [  # (minivae module, torch module's constructor by name and arguments, its repr in torch 2.x)
    (lambda: nn.ReLU(), ("ReLU", ()), "ReLU()"),
    (lambda: nn.ReLU(inplace=True), ("ReLU", (True,)), "ReLU(inplace=True)"),
    (lambda: nn.LeakyReLU(), ("LeakyReLU", ()), "LeakyReLU(negative_slope=0.01)"),
    (lambda: nn.LeakyReLU(0.2, True), ("LeakyReLU", (0.2, True)), "LeakyReLU(negative_slope=0.2, inplace=True)"),
    (lambda: nn.ELU(), ("ELU", ()), "ELU(alpha=1.0)"),
    (lambda: nn.ELU(alpha=0.5), ("ELU", (0.5,)), "ELU(alpha=0.5)"),
    (lambda: nn.GELU(), ("GELU", ()), "GELU(approximate='none')"),
    (lambda: nn.GELU("tanh"), ("GELU", ("tanh",)), "GELU(approximate='tanh')"),
    (lambda: nn.SiLU(), ("SiLU", ()), "SiLU()"),
    (lambda: nn.Sigmoid(), ("Sigmoid", ()), "Sigmoid()"),
    (lambda: nn.Tanh(), ("Tanh", ()), "Tanh()"),
    (lambda: nn.Softplus(), ("Softplus", ()), "Softplus(beta=1.0, threshold=20.0)"),
    (lambda: nn.Softplus(2.0, 5.0), ("Softplus", (2.0, 5.0)), "Softplus(beta=2.0, threshold=5.0)"),
    (lambda: nn.Softplus(beta=0.5), ("Softplus", (0.5,)), "Softplus(beta=0.5, threshold=20.0)"),
    (lambda: nn.Identity(3, a=1), ("Identity", (3,)), "Identity()"),
]


@pytest.mark.parametrize("make, torch_make, text", MODULES, ids=[m[2] for m in MODULES])
def test_modules_repr_as_torchs(make, torch_make, text):
    assert repr(make()) == text
    assert make().parameters() == [] and make().state_dict() == {}


@pytest.mark.parametrize("make, torch_make, text", MODULES, ids=[m[2] for m in MODULES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_modules_match_torch_values_and_gradients(make, torch_make, text, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=20) * 4, [0.0, -0.0, 1e-3, -1e-3, 2.4, 2.6, 10.0, 21.0, -50.0, 50.0, 1e4, -1e4]])
    x = x.astype(dtype)
    upstream = rng.normal(size=x.shape).astype(dtype)
    name, args = torch_make
    ours, theirs = make(), getattr(torch.nn, name)(*args)
    assert repr(ours) == repr(theirs)
    xm = mv.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    ym = ours(xm)
    yt = theirs(xt.clone() if "inplace=True" in text else xt)
    (ym * mv.tensor(upstream)).sum().backward()
    (yt * torch.tensor(upstream)).sum().backward()
    # an absolute tolerance of a few ε·|x|: 1 + tanh u (tanh-GELU's left tail), 1 − y² (Tanh's gradient) and torch's
    # float32 1 + erf(x/√2) cancel, and torch's tanh (Sleef) and NumPy's differ in the last bits of the rounded result
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)
    if dtype == np.float32 and "tanh'" in text:  # float32's 1 + tanh u: an error of ε32 scaled by ½|x| (and ḡ)
        tol["atol"] = 1e-6 * (1 + np.abs(x)) * (1 + np.abs(upstream))
    assert ym.dtype == dtype and xm.grad.dtype == dtype
    assert (np.abs(ym.numpy() - yt.detach().numpy()) <= tol["atol"] + tol["rtol"] * np.abs(yt.detach().numpy())).all()
    assert (np.abs(xm.grad - xt.grad.numpy()) <= tol["atol"] + tol["rtol"] * np.abs(xt.grad.numpy())).all()


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch_over_a_dense_range(approximate):
    """Values and gradients on 2001 points of [−8, 8] in float64 (the tail's digits aside: see the test above; tanh's
    1 + tanh u cancels to a few ε·|x|, where torch's tanh rounds to −1 sooner than NumPy's)."""
    torch = pytest.importorskip("torch")
    x = np.linspace(-8, 8, 2001)
    xm, xt = mv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ym, yt = F.gelu(xm, approximate=approximate), torch.nn.functional.gelu(xt, approximate=approximate)
    ym.sum().backward()
    yt.sum().backward()
    atol = 1e-15 if approximate == "none" else 1e-14
    np.testing.assert_allclose(ym.numpy(), yt.detach().numpy(), rtol=1e-13, atol=atol)
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=1e-13, atol=atol)


def test_softplus_module_is_x_above_the_threshold():
    """torch's Softplus and F.softplus: log(1 + e^{βx})/β, and x itself (gradient 1) where βx > threshold (at βx =
    threshold, still the log)."""
    points = (-3.0, 0.5, 4.9, 5.0, 5.1, 30.0)
    for module in (nn.Softplus(beta=2.0, threshold=10.0), lambda t: F.softplus(t, 2.0, 10.0)):
        x = mv.tensor(np.array(points), requires_grad=True)
        y = module(x)
        y.sum().backward()
        want = [math.log1p(math.exp(2 * v)) / 2 if 2 * v <= 10 else v for v in points]
        np.testing.assert_allclose(y.numpy(), want, rtol=1e-15)
        np.testing.assert_allclose(x.grad, [sigmoid(2 * v) if 2 * v <= 10 else 1.0 for v in points], rtol=1e-15)
    x = mv.tensor(np.array([19.0, 20.0, 20.5]))  # the defaults: β = 1, threshold 20
    np.testing.assert_allclose(F.softplus(x).numpy(), [math.log1p(math.exp(19.0)), math.log1p(math.exp(20.0)), 20.5],
                               rtol=1e-15)
    assert F.softplus(x).numpy()[2] == 20.5 and F.relu(x, inplace=True).numpy()[0] == 19.0


def test_functional_softplus_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.array([-30.0, -3.0, 0.0, 2.5, 4.99, 5.0, 5.01, 19.9, 20.0, 20.1, 1e4])
    for kw in ({}, {"beta": 2.0}, {"beta": 0.5, "threshold": 3.0}):
        xm, xt = mv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ym, yt = F.softplus(xm, **kw), torch.nn.functional.softplus(xt, **kw)
        ym.sum().backward()
        yt.sum().backward()
        np.testing.assert_allclose(ym.numpy(), yt.detach().numpy(), rtol=1e-15, err_msg=str(kw))
        np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=1e-15, err_msg=str(kw))


def test_modules_apply_their_arguments():
    x = mv.tensor(np.array([-2.0, -0.5, 0.0, 0.5, 3.0]))
    for module, fn in ((nn.LeakyReLU(0.2), lambda t: F.leaky_relu(t, 0.2)), (nn.ELU(alpha=0.5), lambda t: F.elu(t, 0.5)),
                       (nn.GELU("tanh"), lambda t: F.gelu(t, approximate="tanh")), (nn.SiLU(), F.silu),
                       (nn.ReLU(), F.relu), (nn.Tanh(), F.tanh), (nn.Sigmoid(), F.sigmoid)):
        np.testing.assert_array_equal(module(x).numpy(), fn(x).numpy())
    np.testing.assert_array_equal(nn.LeakyReLU(0.2)(x).numpy(), [-0.4, -0.1, 0.0, 0.5, 3.0])


def test_identity_is_its_input():
    x = mv.tensor(np.ones(3), requires_grad=True)
    assert nn.Identity()(x) is x


@pytest.mark.parametrize("activation, module, init", [("relu", nn.ReLU, "he"), ("leaky_relu", nn.LeakyReLU, "he"),
                                                       ("elu", nn.ELU, "he"), ("gelu", nn.GELU, "he"),
                                                       ("silu", nn.SiLU, "he"), ("tanh", nn.Tanh, "glorot"),
                                                       ("sigmoid", nn.Sigmoid, "glorot"),
                                                       ("softplus", nn.Softplus, "glorot")])
def test_mlp_takes_each_activation_by_name(activation, module, init):
    mlp = nn.MLP((6, 5, 4, 3), activation, rng=mv.random.Generator(0))
    assert [type(m) for m in mlp] == [nn.Linear, module, nn.Linear, module, nn.Linear]
    same = nn.Linear(6, 5, rng=mv.random.Generator(0), init=init)
    np.testing.assert_array_equal(mlp[0].weight.numpy(), same.weight.numpy())
    x = mv.tensor(np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32))
    h = x
    for m in mlp:
        h = m(h)
    np.testing.assert_allclose(mlp(x).numpy(), h.numpy(), rtol=1e-6)  # (relu: the fused linear + relu node)
    with pytest.raises(ValueError, match="activation must be one of"):
        nn.MLP((2, 2, 2), "swish")
