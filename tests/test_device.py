"""device="cuda" end to end on the CPU: the "GPU" is tests/strict_array.py's StrictArray, which refuses
implicit conversion to NumPy (as CuPy does) and logs every copy to the host. With the fused CUDA kernels
off (``use_cuda_kernels(False)``: the array formulas only; the kernels are compared elsewhere) and the
Numba kernels off on the CPU side, both devices run the same formulas, so results must be equal
bit for bit, and a training step must copy nothing back to the host."""
import importlib.util
import json
import math

import numpy as np
import pytest

import minivae as mv
import minivae.functional as F
from minivae import estimators, objectives, ops
from minivae._backend import device_of, module_for_device, use_cuda_kernels, use_numba
from minivae.distributions import (Bernoulli, Categorical, ExpRelaxedCategorical, Normal, OneHotCategorical,
                                   RelaxedOneHotCategorical, kl_divergence)
from minivae.data import load_default
from minivae.models import BernoulliVAE, CategoricalVAE, GaussianVAE
from minivae.nn import MLP, GatedLinear, Linear
from minivae.optim import Adam
from minivae.random import Generator
from minivae.training import TrainingError, load_checkpoint, save_checkpoint, train
from tests.strict_array import UPLOADS, StrictArray, assert_device_run_is_the_cpus, describe, emulating, record, strict

X_DIM = 20
X = (np.random.default_rng(0).random((12, X_DIM)) < 0.4).astype(np.float32)


@pytest.fixture(autouse=True)
def formulas_only(request):
    """The array formulas on both devices, and "cuda" = strict arrays (but the real GPU for the
    tests that ask for ``real_gpu``)."""
    if "real_gpu" in request.fixturenames:
        yield
        return
    with use_numba(False), use_cuda_kernels(False), emulating():
        yield


def host(t):
    """An explicit copy to the host, outside any recorded block."""
    if isinstance(t, mv.Tensor):
        return t.numpy()
    return t.get() if device_of(t) == "cuda" else t


# ---- the stand-in itself -----------------------------------------------------------------------
def test_strict_array_refuses_implicit_conversion_and_logs_explicit_ones():
    a = strict.asarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    with record() as log:
        with pytest.raises(TypeError, match="Implicit conversion"):
            np.asarray(a)
        with pytest.raises(TypeError, match="host numpy.ndarray"):
            a + np.ones(3, np.float32)  # CuPy refuses host arrays as operands
        float(a.sum()), int(a[0, 1]), bool(a[1, 1] > 0), a.max().item(), a.get(), a.tolist()
    assert [kind for kind, _, _ in log] == ["__array__", "float", "int", "bool", "item", "get", "tolist"]
    assert log[1][2].startswith(__file__)  # each entry says where the copy was asked for
    # what stays on the device: results are strict arrays (0-d, never scalars), NumPy functions included
    s = np.exp(a).sum()
    assert isinstance(s, StrictArray) and s.shape == ()
    assert isinstance(np.stack([a, a]), StrictArray) and isinstance(a * np.float32(2) + 1, StrictArray)


def test_a_planted_host_conversion_in_an_op_is_caught():
    class HostSum(mv.Function):
        """Planted bug: computes on the host behind the caller's back."""

        def forward(ctx, x):
            return ctx.xp.asarray(np.asarray(x).sum())

    class SyncingScale(mv.Function):
        """Planted bug: a Python float from device data (a hidden synchronizing copy)."""

        def forward(ctx, x):
            return x / float(abs(x).max())

    x = mv.tensor(X, device="cuda")
    with pytest.raises(TypeError, match="Implicit conversion"):
        HostSum.apply(x)
    with record() as log:
        SyncingScale.apply(x)
    assert [kind for kind, _, _ in log] == ["float"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_device_equality_compares_the_stand_in_with_the_cpu_s_formulas_not_its_numba_kernels(dtype):
    """assert_device_run_is_the_cpus (the check of many tests' device runs) runs the CPU with Numba off, as the stand-in
    runs: like with like. The Bernoulli log-density's kernel computes in float64 with its own exp and log1p
    (tests/test_numba_formula_parity.py), the formula in the dtype with NumPy's: on logits −4, −3.75, …, 4 and targets
    0, ¼, ½, 1 some differ in the last bits (of 132, values and derivatives: float32 33 and 65, float64 23 and 4, on an
    AVX2 machine). In float32 at logit 1 and target 0, log σ(−1) = −log(1 + e): the kernel's is −1.3132616, the
    correctly rounded value (math.log1p in float64, rounded once), the formula's −1.3132617. With the kernels on the
    CPU (the check's former arrangement) the two runs were not equal."""
    pytest.importorskip("numba", reason="without Numba the CPU has only the formulas")
    x, t = (a.astype(dtype) for a in np.meshgrid(np.arange(-4, 4.25, 0.25), [0, 0.25, 0.5, 1]))
    g = np.random.default_rng(3).standard_normal(x.shape).astype(dtype)

    def run(device):
        logits = mv.tensor(x, device=device, requires_grad=True)
        y = ops.bernoulli_log_prob(logits, mv.tensor(t, device=device))
        y.backward(mv.tensor(g, device=device))
        return [y, logits.grad]
    with use_numba(True):  # the default where Numba is installed (this file's fixture turns it off)
        kernels = [a.data for a in run("cpu")]
        assert_device_run_is_the_cpus(run)
    with use_numba(False):
        formulas = [a.data for a in run("cpu")]
    assert not all(np.array_equal(a, b) for a, b in zip(kernels, formulas))  # (the former arrangement would fail)
    if dtype == np.float32:
        assert kernels[0][0, 20] == np.float32(-math.log1p(math.e)) == np.float32(-1.3132616)
        # the formula's, here the float below (NumPy's float32 exp and log1p: its own SIMD exp, which may round otherwise
        # on another machine; the grid as a whole is the check above)
        assert abs(formulas[0][0, 20] - kernels[0][0, 20]) <= np.spacing(np.float32(1.3132616))

# ---- tensors, modules, errors --------------------------------------------------------------------
def test_mixing_devices_names_both():
    with pytest.raises(RuntimeError, match="add: inputs are on different devices: cpu and cuda"):
        mv.tensor([1.0]) + mv.tensor([1.0], device="cuda")
    with pytest.raises(RuntimeError, match="matmul: inputs are on different devices: cpu and cuda"):
        ops.matmul(mv.tensor(np.ones((2, 2), np.float32), device="cuda"), mv.tensor(np.ones((2, 2), np.float32)))
    with record() as log, pytest.raises(RuntimeError, match="mul: inputs are on different devices: cpu and cuda"):
        mv.tensor([1.0]) * strict.ones(1, np.float32)  # a raw device array is not copied over silently
    assert log == []


def test_no_gradient_is_one_of_the_device_s_shared_constants(monkeypatch):
    """On a device, backward()'s ḡ = 1 is an array filled once and shared (minivae._gpu.constant), so no tensor's
    .grad may be it or a view of it: an in-place change of one .grad (clip_grad_norm_'s, a user's) would change ḡ
    for every later backward()."""
    from minivae import _gpu
    monkeypatch.setattr(_gpu, "_constants", {})
    w = mv.tensor(np.float32(3.0), device="cuda", requires_grad=True)     # a root that is its own leaf: ḡ itself
    v = mv.tensor(np.ones((1, 1), np.float32), device="cuda", requires_grad=True)  # reshape's VJP: a view of ḡ
    for _ in range(2):
        w.grad = v.grad = None
        w.backward()
        ops.reshape(v, ()).backward()
        assert w.grad.item() == 1 and v.grad.item() == 1
        w.grad[...] = 7
        v.grad[...] = 7
    assert [a.item() for a in _gpu._constants.values()] == [1]  # the one shared ḡ, still 1


def test_module_to_moves_parameters_in_place_and_returns_self():
    cpu = MLP((4, 5, 3), rng=Generator(1))
    gpu = MLP((4, 5, 3), rng=Generator(1), device="cuda")
    assert gpu.device == "cuda" and all(isinstance(p.data, StrictArray) for p in gpu.parameters())
    for p, q in zip(cpu.parameters(), gpu.parameters()):
        np.testing.assert_array_equal(p.data, q.data.get())  # the same initial weights on both
    params = gpu.parameters()
    params[0].grad = strict.ones(params[0].shape, np.float32)
    assert gpu.to("cpu") is gpu and gpu.device == "cpu"
    assert all(p is q and isinstance(p.data, np.ndarray) for p, q in zip(gpu.parameters(), params))
    assert isinstance(params[0].grad, np.ndarray)
    assert Linear(3, 2, rng=Generator(0), device="cuda").device == "cuda"
    assert GatedLinear(3, 2, rng=Generator(0), device="cuda").device == "cuda"
    assert cpu.to("cuda").device == "cuda" and device_of(cpu.parameters()[-1].data) == "cuda"


# ---- randomness: noise made on the device, the same values and counter as on the CPU ------------------
@pytest.mark.parametrize("draw", ["uniform", "normal", "gumbel"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generator_draws_on_the_device(draw, dtype):
    cpu, gpu = Generator(7, 3), Generator(7, 3)
    expected = getattr(cpu, draw)((3, 5), dtype)
    with record() as log, record(UPLOADS) as uploads:
        got = getattr(gpu, draw)((3, 5), dtype, device="cuda")
    assert isinstance(got, StrictArray) and got.dtype == dtype and log == [] and uploads == []
    np.testing.assert_array_equal(got.get(), expected)
    assert gpu.counter == cpu.counter


@pytest.mark.parametrize("draw,shape", [("uniform", (3, 5)), ("normal", (3, 5)), ("normal", (7,)), ("gumbel", (2, 9))])
def test_generator_uses_the_cuda_kernels_with_the_cpu_counter(draw, shape, monkeypatch):
    """With the kernels on, the draw is minivae._gpu.random's, at the CPU draw's counter, and the
    counter advances as the CPU draw's does (mocked launcher: the kernel is compared elsewhere)."""
    import minivae._gpu.random as gpu_random
    calls = []

    def fake(seed, offset, shape, dtype):
        calls.append((draw, seed, offset, shape, dtype))
        return strict.asarray(getattr(Generator(seed, offset), draw)(shape, dtype))
    monkeypatch.setattr(gpu_random, draw, fake)
    cpu, gpu = Generator(5, 11), Generator(5, 11)
    expected = getattr(cpu, draw)(shape, np.float32)
    with use_cuda_kernels(True):
        got = getattr(gpu, draw)(shape, np.float32, device="cuda")
    assert calls == [(draw, 5, 11, shape, np.float32)]
    np.testing.assert_array_equal(got.get(), expected)
    assert gpu.counter == cpu.counter


def _inputs(device):
    return (mv.tensor(np.random.default_rng(1).normal(size=(4, 2, 5)).astype(np.float32), device=device),
            mv.tensor(np.zeros((4, 3), np.float32), device=device), mv.tensor(np.full((4, 3), 2.0, np.float32), device=device))


def _draws(logits, loc, scale):
    rng = Generator(3)
    return [Normal(loc, scale).rsample((2,), rng=rng), Normal(loc, scale).sample(rng=rng),
            Bernoulli(logits=logits).sample((3,), rng=rng), Categorical(logits=logits).sample((2,), rng=rng),
            Categorical(logits=logits).log_prob(Categorical(logits=logits).sample(rng=rng)),
            OneHotCategorical(logits=logits).sample(rng=rng), ExpRelaxedCategorical(0.5, logits=logits).rsample(rng=rng),
            RelaxedOneHotCategorical(0.5, logits=logits).rsample((2,), rng=rng),
            RelaxedOneHotCategorical(0.5, logits=logits).rsample(rng=rng, hard=True),
            F.gumbel_softmax(logits, 0.7, axis=1, rng=rng), F.gumbel_softmax(logits, 0.7, hard=True, rng=rng), rng.counter]


def test_distributions_sample_on_the_device_of_their_parameters():
    *expected, counter = _draws(*_inputs("cpu"))
    expected = [d.numpy() for d in expected]
    inputs = _inputs("cuda")
    with record() as log, record(UPLOADS) as uploads:
        *got, got_counter = _draws(*inputs)
    assert got_counter == counter
    assert log == [], describe(log)
    # no noise drawn on the host (but, until ops/sampling.py draws on the device, the Gumbel-Softmax op's)
    assert all("sampling.py" in where for _, _, where in uploads), describe(uploads)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert g.device == "cuda", i
        np.testing.assert_array_equal(host(g), e, err_msg=str(i))


def test_moments_supports_and_expand_stay_on_the_device():
    """mode, mean, variance, stddev, enumerate_support and expand of distributions on the GPU: made there (no copy to
    the host, no host data uploaded), with the CPU's values, and the gradients through an expand."""
    rng = np.random.default_rng(6)
    logits_np, p_np = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.random((2, 3)).astype(np.float32)
    p_np[0, 0] = 0.5  # the mode's NaN

    def make(device):  # (Normal's 1.0 goes to the device here, an upload of its own)
        logits, p = mv.tensor(logits_np, device=device, requires_grad=True), mv.tensor(p_np, device=device)
        return logits, Bernoulli(p), Categorical(logits=logits), OneHotCategorical(logits=logits), Normal(p, 1.0)

    def run(logits, b, c, o, n):
        out = [getattr(d, name) for d in (b, c, o, n) for name in ("mode", "mean", "variance", "stddev")]
        out += [d.enumerate_support(expand) for d in (b, c, o) for expand in (True, False)]
        e = o.expand((5, 2, 3))
        lp = e.log_prob(e.sample(rng=Generator(0))) + n.expand((5, 2, 3)).log_prob(n.mean) + b.expand((2, 3)).mean
        lp.sum().backward()
        return out + [lp, logits.grad]
    expected = [host(t) for t in run(*make("cpu"))]
    on_device = make("cuda")
    with record() as log, record(UPLOADS) as uploads:
        got = run(*on_device)
    assert log == [], describe(log)
    assert uploads == [], describe(uploads)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert device_of(g.data if isinstance(g, mv.Tensor) else g) == "cuda", i
        np.testing.assert_array_equal(host(g), e, err_msg=str(i))


# ---- one device per computation (found by review, 2026-11-28) --------------------------------------------
def test_a_normal_puts_numbers_on_the_device_of_its_tensor_parameter():
    """As torch.distributions puts a Python number beside the tensors it broadcasts with, Normal(cuda_loc, 1.0) is a
    distribution on the GPU: the same formulas as on the CPU, so the same values bit for bit, with no copy back (the
    number went to the CPU, and every use of it failed on mixed devices). A number is still checked, on the host."""
    loc_np, scale_np = np.array([0.5, -1.0, 2.0], np.float32), np.array([2.0, 0.5, 1.0], np.float32)

    def run(device):
        loc = mv.tensor(loc_np, device=device, requires_grad=True)
        q, p = Normal(loc, 1.0), Normal(0.0, mv.tensor(scale_np, device=device))
        z = q.rsample(rng=Generator(0))
        log_q = q.log_prob(z)
        log_q.sum().backward()
        return [q.scale, z, log_q, q.entropy(), p.sample(rng=Generator(1)), p.log_prob(z), loc.grad]
    expected = [host(t) for t in run("cpu")]
    with record() as log:
        got = run("cuda")
    assert log == [], describe(log)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert device_of(g.data if isinstance(g, mv.Tensor) else g) == "cuda", i
        np.testing.assert_array_equal(host(g), e, err_msg=str(i))
    with pytest.raises(ValueError, match="scale must be > 0"):
        Normal(mv.tensor(loc_np, device="cuda"), -1.0)


def test_tensor_and_as_tensor_keep_device_data_on_its_device():
    """Without device=, as torch.tensor and torch.as_tensor keep a tensor's device: device data stays there (as_tensor
    shares it, tensor copies it there) where it was copied to the host; numbers, lists and NumPy arrays go to the
    CPU; device="cpu" still copies to the host, explicitly. one_hot of device indices (through as_tensor) stays."""
    g, raw = mv.tensor(np.arange(6, dtype=np.float32), device="cuda"), strict.asarray(np.arange(3))
    with record() as log:
        assert mv.as_tensor(g) is g and mv.as_tensor(raw).data is raw
        copy = mv.tensor(g)
        assert isinstance(copy.data, StrictArray) and copy.data is not g.data
        assert mv.tensor(raw).device == mv.as_tensor(g, dtype=np.float64).device == "cuda"
        assert ops.one_hot(raw, 3).device == "cuda"
    assert log == [], describe(log)
    copy.data[0] = 7  # a copy: g keeps its values
    np.testing.assert_array_equal(g.numpy(), np.arange(6))
    assert mv.tensor([1.0]).device == mv.as_tensor(np.ones(2)).device == mv.tensor(3).device == "cpu"
    assert isinstance(mv.tensor(g, device="cpu").data, np.ndarray)


def test_log_prob_takes_a_value_as_the_ops_take_an_operand():
    """A value to score follows the ops' rule for an operand: a list or a NumPy array goes to the parameters' device
    (as Bernoulli's log_prob does through its op), a device array stays; the result equals the CPU's."""
    rng = np.random.default_rng(2)
    logits_np, z = rng.standard_normal((3, 4)).astype(np.float32), np.array([0, 2, 1])
    y = np.exp(logits_np) / np.exp(logits_np).sum(-1, keepdims=True)
    expected = Categorical(logits=mv.tensor(logits_np)).log_prob(z).numpy()
    expected_relaxed = RelaxedOneHotCategorical(0.5, logits=mv.tensor(logits_np)).log_prob(y).numpy()
    logits = mv.tensor(logits_np, device="cuda")
    with record() as log:
        got = [Categorical(logits=logits).log_prob(v) for v in (z, z.tolist(), strict.asarray(z), mv.tensor(z, device="cuda"))]
        got_relaxed = [RelaxedOneHotCategorical(0.5, logits=logits).log_prob(v) for v in (y, strict.asarray(y))]
    assert log == [], describe(log)
    for t in got:
        assert t.device == "cuda"
        np.testing.assert_array_equal(t.numpy(), expected)
    for t in got_relaxed:
        assert t.device == "cuda"
        np.testing.assert_array_equal(t.numpy(), expected_relaxed)


@pytest.mark.parametrize("root_device,grad", [("cuda", lambda a: mv.tensor(a)), ("cpu", lambda a: mv.tensor(a, device="cuda")),
                                              ("cpu", strict.asarray)], ids=["cpu-tensor", "cuda-tensor", "cuda-array"])
@pytest.mark.parametrize("leaf", [True, False], ids=["leaf", "node"])
def test_backward_refuses_a_gradient_on_another_device(root_device, grad, leaf):
    """As torch ("invalid gradient: expected device cuda but got cpu"): ḡ on another device than the root is refused
    naming both devices, with no copy between them (a CUDA leaf got a NumPy .grad, a CPU leaf a device one)."""
    a = np.ones((2, 3), np.float32)
    t = mv.tensor(a, device=root_device, requires_grad=True)
    with record() as log, pytest.raises(RuntimeError, match=r"backward\(grad=\): inputs are on different devices: cpu and cuda"):
        (t if leaf else t * 2).backward(grad(a))
    assert log == [] and t.grad is None


def test_backward_uploads_a_host_gradient_and_casts_it_to_the_root_s_dtype():
    """A NumPy ḡ is an operand the ops would upload; a float64 one becomes the float32 root's dtype (PyTorch casts)."""
    t = mv.tensor(np.ones((2, 3), np.float32), device="cuda", requires_grad=True)
    (t * 2).backward(np.full((2, 3), 0.25))
    assert isinstance(t.grad, StrictArray) and t.grad.dtype == np.float32
    np.testing.assert_array_equal(t.grad.get(), np.full((2, 3), 0.5))  # d(2t)/dt · ḡ


CHANGES = {"iadd": lambda a, b: a.__iadd__(b), "isub": lambda a, b: a.__isub__(b), "imul": lambda a, b: a.__imul__(b),
           "itruediv": lambda a, b: a.__itruediv__(b), "copy_": lambda a, b: a.copy_(b),
           "setitem": lambda a, b: a.__setitem__(0, b[1]), "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
           "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "eq": lambda a, b: a == b, "ne": lambda a, b: a != b}


@pytest.mark.parametrize("name", CHANGES)
@pytest.mark.parametrize("devices", [("cuda", "cpu"), ("cpu", "cuda")], ids=["into-cuda", "into-cpu"])
def test_in_place_changes_and_comparisons_refuse_another_device(name, devices):
    """In place, setitem and comparisons make the ops' error naming both devices (as PyTorch's; a move is .to()),
    where they raised CuPy's or NumPy's own TypeError, or copied to the device one way round; nothing is changed."""
    a_np = np.arange(6, dtype=np.float32).reshape(2, 3)
    a, b = mv.tensor(a_np, device=devices[0]), mv.tensor(a_np + 1, device=devices[1])
    with record() as log, pytest.raises(RuntimeError, match=f"{name}: inputs are on different devices: cpu and cuda"):
        CHANGES[name](a, b)
    assert log == [], describe(log)
    np.testing.assert_array_equal(a.numpy(), a_np)
    if devices[0] == "cpu":  # a raw device array is refused as a tensor is
        with pytest.raises(RuntimeError, match=f"{name}: inputs are on different devices"):
            CHANGES[name](a, strict.asarray(a_np))


def test_in_place_changes_and_comparisons_upload_a_host_operand_as_the_ops_do():
    """A NumPy operand of a device tensor is copied there, as ``cuda + numpy`` is; a host index array (a mask) serves a
    device tensor, as PyTorch's CPU indices do, and a device index is refused for a CPU tensor."""
    a_np = np.arange(6, dtype=np.float32).reshape(2, 3)
    expected = a_np + 2 * a_np
    expected[a_np > 2] = 0
    g = mv.tensor(a_np, device="cuda")
    g += 2 * a_np
    mask = g > 3 * a_np - 1  # all True
    g[a_np > 2] = 0
    assert isinstance(mask.data, StrictArray) and mask.numpy().all()
    np.testing.assert_array_equal(g.numpy(), expected)
    g.copy_(a_np)
    np.testing.assert_array_equal(g.numpy(), a_np)
    with pytest.raises(RuntimeError, match="setitem: the index is on cuda, the tensor on cpu"):
        mv.tensor(a_np)[g > 2] = 0


@pytest.mark.parametrize("draw", ["uniform", "normal", "gumbel"])
def test_float16_draws_with_the_cuda_kernels_on_run_the_formulas(draw):
    """The kernels of random.cu take float32 and float64; a float16 draw with them on runs the formulas on the device
    (as _backend.fused promises for the dtypes the kernels do not take; it raised), equal to the CPU's draw, float16
    as it is (it was float64 on both), and moving the counter as it does; so do the ops that draw."""
    if importlib.util.find_spec("tests.cuda_host.host") is None:
        pytest.skip("tests/cuda_host/host.py is not there")
    from minivae._gpu import loader
    from tests.cuda_host import host as cuda_host
    cpu, gpu = Generator(1, 5), Generator(1, 5)
    expected = getattr(cpu, draw)((3, 5), np.float16)
    x_np = np.linspace(-1, 1, 10).reshape(2, 5).astype(np.float16)
    expected_soft = ops.gumbel_softmax(mv.tensor(x_np), Generator(2)).numpy()
    with use_cuda_kernels(True), loader.use_module_factory(cuda_host.module_factory()):
        got = getattr(gpu, draw)((3, 5), np.float16, device="cuda")
        soft = ops.gumbel_softmax(mv.tensor(x_np, device="cuda"), Generator(2))
    assert isinstance(got, StrictArray) and got.dtype == expected.dtype == np.float16 and gpu.counter == cpu.counter
    np.testing.assert_array_equal(got.get(), expected)
    np.testing.assert_array_equal(soft.numpy(), expected_soft)


def test_gradcheck_runs_on_the_device_in_float64():
    """mv.gradcheck copies its inputs with copy(order="C"), which CuPy's arrays take and so does the stand-in: a correct
    VJP passes on device data and a planted wrong one (x² with x̄ = ḡ·x, the factor 2 lost) fails."""
    class SquareMissingTwo(mv.Function):
        def forward(ctx, x):
            ctx.save(x=x)
            return x * x

        def backward(ctx, g):
            return g * ctx.x
    x = mv.tensor(np.random.default_rng(3).standard_normal((3, 5)), device="cuda", requires_grad=True)
    assert mv.gradcheck(lambda x: ops.log_softmax(x, temperature=0.7), (x,))
    with pytest.raises(mv.GradcheckError):
        mv.gradcheck(SquareMissingTwo.apply, (x,))


def test_a_plan_on_the_device_takes_a_host_batch():
    """A step plan copies a NumPy batch into its device buffer with set() (CuPy's host-to-device copy, which the
    stand-in has as CuPy has it): the step equals the step of the same batch given on the device."""
    from minivae.plan import compile_step
    losses = {}
    for feed in ("device", "host"):
        model = GaussianVAE(X_DIM, (8,), 3, rng=Generator(0), device="cuda")
        optimizer, rng = Adam(model.parameters(), lr=1e-2), Generator(4)
        plan = compile_step(model, optimizer, lambda x, model=model, rng=rng: model.loss(x, rng), mv.tensor(X[:4], device="cuda"))
        with record(UPLOADS) as uploads:
            losses[feed] = plan.step(X[4:8] if feed == "host" else mv.tensor(X[4:8], device="cuda")).numpy()
        assert len(uploads) == 1, describe(uploads)  # the batch, once
    assert losses["host"] == losses["device"]
    with pytest.raises(TypeError, match="float64 array cannot be set to float32 array"):
        strict.zeros(3, np.float32).set(np.zeros(3))


# ---- 0-d CPU tensors, indices, state dicts, clipping and plans across devices (found by review, 2026-11-29) ----
def test_a_0d_cpu_tensor_is_a_scalar_operand_on_the_device_as_in_torch():
    """As PyTorch takes a 0-d CPU tensor beside CUDA tensors: KL(Normal(cuda μ, cuda σ) ‖ Normal(0., 1.)), whose prior is
    two 0-d CPU tensors, runs on the device, and so do a 0-d CPU tensor first or second in an op, in a comparison, an
    in-place change and as backward's ḡ: the CPU's values, dtypes and gradients bit for bit, with no copy either way
    (the value is passed as a number, a fill: CuPy takes no NumPy array as an operand)."""
    loc_np, scale_np = np.array([0.5, -1.0, 2.0], np.float32), np.array([2.0, 0.5, 1.0], np.float32)

    def run(loc, scale, z, r):
        kl = kl_divergence(Normal(loc, scale), Normal(0.0, 1.0))
        y = mv.tensor(2.0) * kl + kl * mv.tensor(np.float64(0.5))  # float64: the 0-d tensor's dtype counts, as on the CPU
        y.sum().backward()
        with mv.no_grad():
            z += mv.tensor(1.0)
            z[z > mv.tensor(1.0)] = mv.tensor(0.0)
        (r * r).backward(mv.tensor(0.5))
        return [kl, y, loc.grad, scale.grad, z, r.grad]

    def inputs(device):
        return (mv.tensor(loc_np, device=device, requires_grad=True), mv.tensor(scale_np, device=device, requires_grad=True),
                mv.tensor(loc_np, device=device), mv.tensor(3.0, device=device, requires_grad=True))
    expected = [host(t) for t in run(*inputs("cpu"))]
    on_device = inputs("cuda")
    with record() as log, record(UPLOADS) as uploads:
        got = run(*on_device)
    assert log == [] and uploads == [], describe(log + uploads)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert device_of(g.data if isinstance(g, mv.Tensor) else g) == "cuda", i
        assert host(g).dtype == e.dtype, i
        np.testing.assert_array_equal(host(g), e, err_msg=str(i))


def test_other_cpu_operands_of_an_op_on_the_device_stay_an_error_naming_both_devices():
    """A 0-d CPU tensor that requires grad is no scalar (its moved copy would get no gradient: refused rather than
    silently left without one), but is under no_grad(); a one-element 1-d CPU tensor is no scalar either, nor a 0-d
    CUDA tensor in an op on the CPU (as PyTorch: only a CPU scalar crosses)."""
    g = mv.tensor(np.ones(3, np.float32), device="cuda", requires_grad=True)
    w = mv.tensor(2.0, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"mul: inputs are on different devices: cpu and cuda \(a 0-d CPU tensor "
                                           r"serves as a scalar only if it does not require grad\)"):
        g * w
    with mv.no_grad():
        assert (g * w).device == "cuda"
    with pytest.raises(RuntimeError, match="^add: inputs are on different devices: cpu and cuda$"):
        g + mv.tensor([1.0])
    with pytest.raises(RuntimeError, match="^add: inputs are on different devices: cpu and cuda$"):
        mv.tensor(np.ones(3, np.float32)) + mv.tensor(1.0, device="cuda")
    assert w.grad is None and g.grad is None


def test_a_plan_on_the_device_reads_a_0d_cpu_tensor_afresh_at_each_replay():
    """A step recorded on the device that reads a 0-d CPU tensor (here a loss weight, changed in place between steps)
    reads its value at each replay, as each eager step does: the same losses and parameters bit for bit."""
    from minivae.plan import compile_step
    results = {}
    for mode in ("eager", "plan"):
        model = GaussianVAE(X_DIM, (8,), 3, rng=Generator(0), device="cuda")
        optimizer, rng, weight = Adam(model.parameters(), lr=1e-2), Generator(4), mv.tensor(1.0)

        def loss_fn(x, model=model, rng=rng, weight=weight):
            return model.loss(x, rng) * weight
        losses = []
        for k in range(3):
            x = mv.tensor(X[4 * k:4 * k + 4], device="cuda")
            weight.data[...] = 1.0 + k
            if mode == "eager":
                optimizer.zero_grad()
                loss = loss_fn(x)
                loss.backward()
                optimizer.step()
            elif k == 0:
                plan = compile_step(model, optimizer, loss_fn, x)
                loss = plan.loss
            else:
                loss = plan.step(x)
            losses.append(host(loss))
        results[mode] = losses, [host(p) for p in model.parameters()]
    np.testing.assert_array_equal(np.array(results["plan"][0]), np.array(results["eager"][0]))
    for a, b in zip(results["plan"][1], results["eager"][1]):
        np.testing.assert_array_equal(a, b)


INDICES = {"ints": lambda i, m: i, "tensor": lambda i, m: mv.tensor(i), "mask": lambda i, m: m,
           "tuple": lambda i, m: (slice(1, None), mv.tensor(i[:2])), "mask-and-int": lambda i, m: (mv.tensor(m), 1)}


@pytest.mark.parametrize("name", INDICES)
def test_an_index_on_the_cpu_serves_a_device_tensor_and_one_on_the_device_not_a_cpu_tensor(name):
    """As PyTorch's indices: an index tensor or array on the CPU indexes a CUDA tensor (getitem and setitem), moved to
    the device by one explicit copy a part (what getitem's backward scatters with is then on the device too); the
    values and gradients are the CPU's (repeated indices accumulate). A CUDA index of a CPU tensor is an error naming
    both devices (it was CuPy's or NumPy's raw TypeError)."""
    a_np = np.arange(12, dtype=np.float32).reshape(3, 4)
    ints, mask = np.array([2, 0, 2]), np.array([True, False, True])
    make = INDICES[name]

    def run(a, b):
        out = a[make(ints, mask)]
        (out * out).sum().backward()
        b[make(ints, mask)] = 7.0
        return [out, a.grad, b]
    expected = [host(t) for t in run(mv.tensor(a_np, requires_grad=True), mv.tensor(a_np))]
    a, b = mv.tensor(a_np, device="cuda", requires_grad=True), mv.tensor(a_np, device="cuda")
    with record() as log, record(UPLOADS) as uploads:
        got = run(a, b)
    index = make(ints, mask)
    n_arrays = sum(hasattr(p, "shape") for p in (index if isinstance(index, tuple) else (index,)))
    assert log == [] and len(uploads) == 2 * n_arrays, describe(log + uploads)  # getitem's index parts, setitem's
    for i, (g, e) in enumerate(zip(got, expected)):
        assert isinstance(g.data if isinstance(g, mv.Tensor) else g, StrictArray), i
        np.testing.assert_array_equal(host(g), e, err_msg=str(i))
    on_device = {"ints": strict.asarray(ints), "tensor": mv.tensor(ints, device="cuda"), "mask": strict.asarray(mask),
                 "tuple": (slice(1, None), mv.tensor(ints[:2], device="cuda")),
                 "mask-and-int": (mv.tensor(mask, device="cuda"), 1)}[name]
    cpu = mv.tensor(a_np)
    with record() as log:
        with pytest.raises(RuntimeError, match="getitem: the index is on cuda, the tensor on cpu"):
            cpu[on_device]
        with pytest.raises(RuntimeError, match="setitem: the index is on cuda, the tensor on cpu"):
            cpu[on_device] = 0.0
    assert log == [], describe(log)
    np.testing.assert_array_equal(cpu.numpy(), a_np)


def _trained_mlp(device, seed):
    """An MLP and its Adam after one step (moments that are not zeros)."""
    model = MLP((4, 5, 3), rng=Generator(seed), device=device)
    optimizer = Adam(model.parameters(), lr=0.1)
    x = mv.tensor(np.random.default_rng(seed).standard_normal((2, 4)).astype(np.float32), device=device)
    y = model(x)
    (y * y).sum().backward()
    optimizer.step()
    return model, optimizer


def test_load_state_dict_takes_device_values_on_the_device_and_moves_others_once():
    """Module.load_state_dict and Optimizer.load_state_dict copy a value already on the parameter's device directly:
    CUDA → CUDA makes no copy through the host, neither a download nor an upload (each was both); a host value is
    uploaded once; a CUDA value loaded into a CPU model is downloaded once, explicitly (get()). The loaded values are
    the source's in every case."""
    source, source_opt = _trained_mlp("cuda", 1)
    expected, expected_opt = source.state_dict(), source_opt.state_dict()
    tensors = dict(source.named_parameters(remove_duplicate=False))  # tensors on the device
    counts = [k for k in expected_opt if k == "steps" or k.endswith(".step")]  # numbers: the step counts
    arrays = {k: v if k in counts else strict.asarray(v) for k, v in expected_opt.items()}  # device arrays
    n = len(expected) + len(expected_opt) - len(counts)  # the values to copy
    for device, state, state_opt, downloads, n_uploads in [("cuda", tensors, arrays, 0, 0),
                                                           ("cuda", expected, expected_opt, 0, n),
                                                           ("cpu", tensors, arrays, n, 0)]:
        model, optimizer = _trained_mlp(device, 2)
        with record() as log, record(UPLOADS) as uploads:
            model.load_state_dict(state)
            optimizer.load_state_dict(state_opt)
        assert [kind for kind, _, _ in log] == ["get"] * downloads, describe(log)
        assert len(uploads) == n_uploads, describe(uploads)
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(v, expected[k], err_msg=k)
        for k, v in optimizer.state_dict().items():
            np.testing.assert_array_equal(v, expected_opt[k], err_msg=k)


@pytest.mark.parametrize("devices", [("cpu", "cuda", "cpu"), ("cuda", "cpu", "cuda"), ("cuda", "cuda", "cuda")],
                         ids=["cpu-first", "cuda-first", "cuda-only"])
def test_clip_grad_norm_of_gradients_on_two_devices_as_torch(devices):
    """As torch's clip_grad_norm_: Σ g² per device, the total norm on the first gradient's device, each gradient
    clipped on its own device; the only copies are of 0-d values, the other device's partial sum to the first and the
    scale back (none when all are on one device); the norm ‖g‖ = √(Σ g²) and the gradients g·1/‖g‖ (to its 1e-12) are
    torch's formula's, computed here in float64 (to the summation order)."""
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in ((3, 4), (5,), (2, 2))]
    params = []
    for g, device in zip(grads, devices):
        p = mv.tensor(np.zeros_like(g), device=device, requires_grad=True)
        p.grad = mv.tensor(g, device=device).data
        params.append(p)
    expected = np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads))
    assert expected > 1.0  # (so the gradients are clipped)
    with record() as log, record(UPLOADS) as uploads:
        norm = mv.optim.clip_grad_norm_(params, 1.0)
    moves = [] if len(set(devices)) == 1 else [()]
    assert [shape for kind, shape, _ in log if kind == "get"] == moves and len(log) == len(moves), describe(log)
    assert [shape for _, shape, _ in uploads] == moves, describe(uploads)
    assert device_of(norm) == devices[0]
    np.testing.assert_allclose(host(norm), expected, rtol=1e-6)
    for p, g in zip(params, grads):
        assert device_of(p.grad) == p.device
        np.testing.assert_allclose(host(p.grad), g / expected, rtol=1e-5)


def test_a_plan_compiled_before_model_to_refuses_to_replay_naming_the_parameter():
    """After model.to(), a plan recorded before it would go on replaying into the old arrays on the CPU (silently:
    the model on the device never changed); step() refuses, naming the parameter and what changed, and changes
    nothing. A plan compiled after the move, with an optimizer made before it, replays as the eager steps do."""
    from minivae.plan import PlanError, compile_step
    model, rng = GaussianVAE(X_DIM, (8,), 3, rng=Generator(0)), Generator(4)
    plan = compile_step(model, Adam(model.parameters(), lr=1e-2), lambda x: model.loss(x, rng), X[:4])
    model.to("cuda")
    before = [host(p) for p in model.parameters()]
    with pytest.raises(PlanError, match=r"parameter 'encoder\.0\.weight': its array is not the one this plan recorded "
                                        r"\(recorded: float32 \(20, 8\) on cpu, now: float32 \(20, 8\) on cuda\); it was "
                                        r"replaced since it was recorded"):
        plan.step(X[4:8])
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(host(p), b)
    results = []
    for mode in ("eager", "plan"):
        model, rng = GaussianVAE(X_DIM, (8,), 3, rng=Generator(0)), Generator(4)
        optimizer = Adam(model.parameters(), lr=1e-2)
        model.to("cuda")
        for k in range(3):
            x = mv.tensor(X[4 * k:4 * k + 4], device="cuda")
            if mode == "eager":
                optimizer.zero_grad()
                model.loss(x, rng).backward()
                optimizer.step()
            elif k == 0:
                plan = compile_step(model, optimizer, lambda x, model=model, rng=rng: model.loss(x, rng), x)
            else:
                plan.step(x)
        results.append([host(p) for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---- models: a few training steps equal on both devices, with no copy back -------------------------------
MODELS = {
    "gaussian": lambda device: GaussianVAE(X_DIM, (8,), 3, rng=Generator(0), device=device),
    "gaussian-lik": lambda device: GaussianVAE(X_DIM, (8,), 3, likelihood="gaussian", activation="gated",
                                               rng=Generator(0), device=device),
    "gumbel_softmax": lambda device: CategoricalVAE(X_DIM, (8,), 3, 4, rng=Generator(0), device=device),
    "straight_through": lambda device: CategoricalVAE(X_DIM, (8,), 3, 4, estimator="straight_through",
                                                      rng=Generator(0), device=device),
    "reinforce": lambda device: CategoricalVAE(X_DIM, (8,), 3, 4, estimator="reinforce", rng=Generator(0), device=device),
    "reinforce+nvil": lambda device: CategoricalVAE(X_DIM, (8,), 3, 4, estimator="reinforce", baseline_hidden=5,
                                                    rng=Generator(0), device=device),
    "bernoulli-gumbel_softmax": lambda device: BernoulliVAE(X_DIM, (8,), 5, rng=Generator(0), device=device),
    "bernoulli-straight_through": lambda device: BernoulliVAE(X_DIM, (8,), 5, estimator="straight_through",
                                                              rng=Generator(0), device=device),
    "bernoulli-reinforce+nvil": lambda device: BernoulliVAE(X_DIM, (8,), 5, estimator="reinforce", baseline_hidden=5,
                                                            rng=Generator(0), device=device),
    "rebar": lambda device: CategoricalVAE(X_DIM, (8,), 3, 4, estimator="rebar", rng=Generator(0), device=device),
    "bernoulli-rebar": lambda device: BernoulliVAE(X_DIM, (8,), 5, estimator="rebar", rng=Generator(0), device=device),
    "bernoulli-rebar-auto-eta": lambda device: BernoulliVAE(X_DIM, (8,), 5, estimator="rebar", rebar_eta="auto",
                                                            rng=Generator(0), device=device),
}


def _train_steps(name, device, steps=3):
    """(parameters, losses, conversions and uploads made inside loss, backward and step)."""
    model = MODELS[name](device)
    optimizer, rng = Adam(model.parameters(), lr=1e-2), Generator(4)
    losses, inside, uploads = [], [], []
    for step in range(steps):
        x = mv.tensor(X[4 * step % 12:4 * step % 12 + 4], device=device)
        with record() as log, record(UPLOADS) as up:
            loss = model.loss(x, rng, step=step, beta=0.5)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        inside += log
        uploads += up
        losses.append(host(loss))
    return {n: host(p) for n, p in model.named_parameters()}, losses, inside, uploads, model


@pytest.mark.parametrize("name", MODELS)
def test_training_steps_match_the_cpu_and_copy_nothing_back(name):
    expected, expected_losses, _, _, _ = _train_steps(name, "cpu")
    params, losses, conversions, uploads, model = _train_steps(name, "cuda")
    assert conversions == [], "device→host copies inside a training step:\n" + describe(conversions)
    assert all("sampling.py" in where for _, _, where in uploads), describe(uploads)
    assert model.device == "cuda"
    if "reinforce" in name:  # the moving-average baseline stays on the device
        assert isinstance(model.baseline, StrictArray) and model.baseline.dtype == np.float64
    np.testing.assert_array_equal(np.array(losses), np.array(expected_losses))
    for n in expected:
        np.testing.assert_array_equal(params[n], expected[n], err_msg=n)


def test_objectives_and_estimators_on_the_device():
    def run(device):
        model = CategoricalVAE(X_DIM, (8,), 2, 3, rng=Generator(2), device=device)
        gauss = GaussianVAE(X_DIM, (8,), 2, rng=Generator(2), device=device)
        x, rng = mv.tensor(X[:5], device=device), Generator(9)
        with mv.no_grad():
            out = [objectives.elbo(model, x, rng), objectives.elbo(gauss, x, rng, k=2, analytic_kl=False),
                   objectives.iwae_bound(gauss, x, rng, k=3), objectives.prior_bound(model, x, rng, k=2),
                   objectives.log_likelihood_is(gauss, x, rng, k=7, chunk=3),
                   objectives.exact_log_likelihood(model, x)]
        q = model.posterior(x)

        def f(z):
            return model.likelihood(z).log_prob(x).sum(axis=-1)
        for name in ("reinforce", "gumbel_softmax", "straight_through"):
            out.append(estimators.get(name)(f, q, rng=rng))
        out.append(estimators.exact(f, q))
        return out

    expected = [host(t) for t in run("cpu")]
    with record() as log:
        got = run("cuda")
    assert log == [], describe(log)
    for i, (g, e) in enumerate(zip(got, expected)):
        np.testing.assert_array_equal(host(g), e, err_msg=str(i))


# ---- the training loop and checkpoints, across devices ------------------------------------------------
def _data():
    digits = load_default()
    return {"train": digits["train"][:40], "valid": digits["valid"][:10]}


def _model(device):
    return CategoricalVAE(784, (8,), 3, 4, estimator="reinforce", rng=Generator(1), device=device)


def _run(out, device, epochs, resume=False):
    model = _model(device)
    train(model, _data(), out, epochs=epochs, batch_size=10, lr=1e-2, seed=5, resume=resume, log=lambda *a: None)
    return model


def test_train_on_the_device_equals_the_cpu_and_resumes_across_devices(tmp_path):
    full = _run(tmp_path / "cpu", "cpu", 2)
    with record() as log:
        gpu = _run(tmp_path / "cuda", "cuda", 2)
    # the copies to the host a run makes: the loss once a step, and what it writes (checkpoint, pictures, ELBO)
    kinds = {kind for kind, _, _ in log}
    assert kinds <= {"item", "get"}, describe(log)
    assert sum(kind == "item" for kind, _, _ in log) == 2 * 4
    half = tmp_path / "half"
    _run(half, "cuda", 1)
    resumed = _run(half, "cpu", 2, resume=True)       # a checkpoint written on cuda, resumed on cpu
    back = tmp_path / "back"
    _run(back, "cpu", 1)
    resumed_on_gpu = _run(back, "cuda", 2, resume=True)  # and the other way
    for model in (gpu, resumed, resumed_on_gpu):
        for (n, p), (_, q) in zip(full.named_parameters(), model.named_parameters()):
            np.testing.assert_array_equal(host(q), p.data, err_msg=n)
    for folder in ("cuda", "half", "back"):
        assert (tmp_path / folder / "metrics.csv").read_text().split("\n")[1].split(",")[:4] == \
            (tmp_path / "cpu" / "metrics.csv").read_text().split("\n")[1].split(",")[:4]


def test_checkpoints_are_numpy_and_load_on_either_device(tmp_path):
    model = _model("cuda")
    model.loss(mv.tensor(_data()["train"][:4], device="cuda"), Generator(0))  # sets the baseline on the device
    optimizer = Adam(model.parameters())
    save_checkpoint(tmp_path / "c.npz", model, optimizer, Generator(0), 1, 1)
    with np.load(tmp_path / "c.npz") as f:
        assert all(f[k].dtype != object for k in f.files) and f["meta/baseline"].dtype == np.float64
    on_cpu, _ = load_checkpoint(tmp_path / "c.npz")
    on_gpu, _ = load_checkpoint(tmp_path / "c.npz", device="cuda")
    assert on_cpu.device == "cpu" and on_gpu.device == "cuda" and isinstance(on_gpu.baseline, StrictArray)
    assert float(on_cpu.baseline) == float(model.baseline.get())
    for (n, p), (_, q), (_, r) in zip(model.named_parameters(), on_cpu.named_parameters(), on_gpu.named_parameters()):
        np.testing.assert_array_equal(q.data, p.data.get(), err_msg=n)
        np.testing.assert_array_equal(r.data.get(), p.data.get(), err_msg=n)
    assert isinstance(model.to("cpu").baseline, np.float64) and model.baseline == on_cpu.baseline


# ---- the fused CUDA kernels, through the host emulation of kernels/*.cu ------------------------------------
def _one_step(name, device):
    """(loss, gradients, conversions inside loss, backward and an Adam step) of one training step."""
    model, rng = MODELS[name](device), Generator(4)
    optimizer, x = Adam(model.parameters(), lr=1e-2), mv.tensor(X[:4], device=device)
    with record() as log:
        loss = model.loss(x, rng, beta=0.5)
        loss.backward()
        grads = {n: p.grad.copy() for n, p in model.named_parameters()}
        optimizer.step()
    return host(loss), {n: host(g) for n, g in grads.items()}, log


@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("bias_grad", [True, False])
@pytest.mark.parametrize("tiled", [False, True], ids=["cublas", "tiled"])
def test_a_dense_layer_through_the_emulated_cuda_kernels(activation, bias_grad, tiled, monkeypatch):
    """ops.linear's backward on the GPU takes one of three paths: bias_grad (b̄ wanted, with or without ReLU),
    relu_bwd (a frozen bias under a ReLU), or none (a frozen bias, no activation); each gives the CPU's x̄, W̄
    and b̄ (None for a frozen bias), and the kernels it takes are the ones the path names. With MINIVAE_GEMM=tiled
    the forward is one launch of kernels/gemm.cu, bias and ReLU included, and the backward two, its products, which
    read ḡ through the ReLU's gate and make b̄: neither bias_grad nor relu_bwd."""
    if importlib.util.find_spec("tests.cuda_host.host") is None or \
            importlib.import_module("tests.cuda_host.host").compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._gpu import gemm, loader
    from tests.cuda_host import host as cuda_host
    from tests.test_launch_count import launch_count, names  # tools/launch_count.py, as that test loads it
    monkeypatch.setattr(gemm, "use_tiled", tiled)
    rng = np.random.default_rng(7)
    values = [rng.standard_normal(shape).astype(np.float32) for shape in ((5, 6), (6, 3), (3,), (5, 3))]
    results = {}
    for device in ("cpu", "cuda"):
        x, w, b = (mv.tensor(v, device=device, requires_grad=grad) for v, grad in zip(values, (True, True, bias_grad)))
        with use_cuda_kernels(True), loader.use_module_factory(cuda_host.module_factory()), \
                launch_count.counting() as launches:
            ops.linear(x, w, b, activation=activation).backward(mv.tensor(values[3], device=device))
        results[device] = [host(t.grad) if t.grad is not None else None for t in (x, w, b)]
        kernels = {k: n for k, n in names(launches).items() if k.startswith("kernel ") or k == "matmul"}
    products = {"kernel gemm_tiles": 3} if tiled else {"kernel bias_act_fwd": 1, "matmul": 3}  # x @ W, then x̄'s and W̄'s
    backward = {} if tiled else {"kernel bias_grad": 1} if bias_grad else {"kernel relu_bwd": 1} if activation else {}
    assert kernels == {**products, **backward}
    for got, want in zip(results["cuda"], results["cpu"]):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fused_bernoulli_negative_elbo_through_the_emulated_cuda_kernels(dtype):
    """ops.bernoulli_negative_elbo on the GPU is two kernels, one each way, and gives bit for bit what its two ops
    (bernoulli_log_prob, then negative_elbo) give on the GPU, value and gradients, the data's included; and the CPU's
    value and gradients to rounding."""
    if importlib.util.find_spec("tests.cuda_host.host") is None or \
            importlib.import_module("tests.cuda_host.host").compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._gpu import loader
    from tests.cuda_host import host as cuda_host
    from tests.test_launch_count import launch_count, names  # tools/launch_count.py, as that test loads it
    rng = np.random.default_rng(9)
    values = [4 * rng.standard_normal((5, 7)), X[:5, :7], rng.random((5, 3)), rng.standard_normal()]
    results = {}
    for device, fused in (("cpu", True), ("cuda", True), ("cuda", False)):
        logits, x, kl = (mv.tensor(v, device=device, dtype=dtype, requires_grad=True) for v in values[:3])
        with use_cuda_kernels(True), loader.use_module_factory(cuda_host.module_factory()), \
                launch_count.counting() as launches:
            loss = (ops.bernoulli_negative_elbo(logits, x, kl, 0.7) if fused else
                    ops.negative_elbo(ops.bernoulli_log_prob(logits, x), kl, 0.7))
            loss.backward(mv.tensor(values[3], device=device, dtype=dtype))
        results[device, fused] = [host(loss)] + [host(t.grad) for t in (logits, x, kl)]
        if device == "cuda" and fused:
            assert {k for k in names(launches) if k.startswith("kernel ")} == {
                "kernel bernoulli_negative_elbo_fwd", "kernel bernoulli_negative_elbo_bwd"}
    for got, unfused, cpu in zip(results["cuda", True], results["cuda", False], results["cpu", True]):
        np.testing.assert_array_equal(got, unfused)
        np.testing.assert_allclose(got, cpu, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7)


@pytest.mark.parametrize("name", ["bce_with_logits", "bernoulli_log_prob", "bernoulli_negative_elbo"])
def test_integer_data_takes_the_emulated_cuda_kernels_in_the_logits_dtype(name):
    """int64 data beside float32 logits on the GPU: cast to float32 before the dispatch, so the fused kernels run (they
    refused the mixed dtypes, and the formula made float64), with the values and gradients of float32 data, bit for
    bit, and no copy to the host."""
    if importlib.util.find_spec("tests.cuda_host.host") is None or \
            importlib.import_module("tests.cuda_host.host").compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._gpu import loader
    from tests.cuda_host import host as cuda_host
    from tests.test_launch_count import launch_count, names
    rng = np.random.default_rng(4)
    logits_np, data = (4 * rng.standard_normal((5, 7))).astype(np.float32), X[:5, :7].astype(np.int64)
    kl = mv.tensor(np.ones((5, 2), np.float32), device="cuda")
    loss = {"bce_with_logits": lambda l, x: ops.bce_with_logits(l, x).sum(),
            "bernoulli_log_prob": lambda l, x: ops.bernoulli_log_prob(l, x).sum(),
            "bernoulli_negative_elbo": lambda l, x: ops.bernoulli_negative_elbo(l, x, kl)}[name]
    results = []
    for x in (data, data.astype(np.float32)):
        logits = mv.tensor(logits_np, device="cuda", requires_grad=True)
        with use_cuda_kernels(True), loader.use_module_factory(cuda_host.module_factory()), \
                launch_count.counting() as launches, record() as log:
            out = loss(logits, mv.tensor(x, device="cuda"))
            out.backward()
        assert log == [], describe(log)
        kernels = {k for k in names(launches) if k.startswith("kernel ")}
        assert ("kernel bce_fwd" in kernels) == (name != "bernoulli_negative_elbo"), kernels
        assert ("kernel bernoulli_negative_elbo_fwd" in kernels) == (name == "bernoulli_negative_elbo"), kernels
        results.append((host(out), host(logits.grad)))
    (got, got_grad), (want, want_grad) = results
    assert got.dtype == got_grad.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_grad, want_grad)


def test_a_python_float_beside_integer_device_tensors_is_made_on_the_device():
    """int32 + 2.5 on the device is float32, as on the CPU, its 2.5 filled there (the integers cast first, then the
    float is weak beside them): never a copy from the host at each call."""
    x = mv.tensor(np.array([1, 2, 3], np.int32), device="cuda")
    x + 2.5
    with record(UPLOADS) as uploads:
        y = x + 2.5
    assert uploads == [], uploads
    assert y.dtype == np.float32 and host(y).tolist() == [3.5, 4.5, 5.5]


def test_the_gaussian_pair_of_a_wider_noise_takes_the_formula_through_the_emulated_cuda_kernels():
    """reparameterize_kl of float32 μ and v with float64 ε on the GPU: the sample is float64 and the KL float32, the
    formula's values on both devices (the CUDA kernels compute in μ's dtype: they are skipped for mixed dtypes, which
    only the GPU path still meets, the CPU's pair being the formula)."""
    if importlib.util.find_spec("tests.cuda_host.host") is None or \
            importlib.import_module("tests.cuda_host.host").compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._gpu import loader
    from tests.cuda_host import host as cuda_host
    rng = np.random.default_rng(6)
    mu, log_var = (rng.normal(size=(3, 4)).astype(np.float32) for _ in range(2))
    eps = rng.normal(size=(3, 4))
    results = []
    for device in ("cpu", "cuda"):
        with use_cuda_kernels(True), loader.use_module_factory(cuda_host.module_factory()):
            z, kl = ops.reparameterize_kl(*(mv.tensor(a, device=device) for a in (mu, log_var, eps)))
        results.append((host(z), host(kl)))
    (z_cpu, kl_cpu), (z_gpu, kl_gpu) = results
    assert z_gpu.dtype == np.float64 and kl_gpu.dtype == np.float32
    np.testing.assert_array_equal(z_gpu, z_cpu)
    np.testing.assert_array_equal(kl_gpu, kl_cpu)


def test_the_erf_formula_uploads_its_table_once_a_device_and_dtype():
    """The array formula on the device (float16 there, or with the CUDA kernels off) makes its table of Taylor
    coefficients once: it was a copy from the host at every call (and such a copy cannot be captured in a CUDA graph)."""
    for dtype in (np.float16, np.float64):
        x = mv.tensor(np.linspace(-3, 3, 7), device="cuda", dtype=dtype)
        ops.erf(x)
        with record(UPLOADS) as uploads:
            y = ops.erfinv(ops.erf(x) * 0.5)
        assert uploads == [], uploads
        cpu = mv.tensor(np.linspace(-3, 3, 7), dtype=dtype)
        np.testing.assert_array_equal(host(y), ops.erfinv(ops.erf(cpu) * 0.5).numpy())  # (the same formula)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("name", ["erf", "erfc", "erfinv", "erfcinv", "gelu"])
def test_special_functions_on_the_device_are_one_launch_of_their_kernel(name, dtype):
    """erf, erfc, erfinv and erfcinv of a device tensor, and exact gelu's Φ: one launch of kernels/special.cu forward
    (the formula's ~100 array operations were each a launch), its value the CPU's to CUDA's accuracy, the gradient
    the formula's, nothing copied to the host; float16, which the kernels are not built for, takes the formula as on
    the CPU."""
    if importlib.util.find_spec("tests.cuda_host.host") is None or \
            importlib.import_module("tests.cuda_host.host").compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._gpu import loader
    from tests.cuda_host import host as cuda_host
    from tests.test_launch_count import launch_count, names
    rng = np.random.default_rng(5)
    v = (rng.uniform(-0.99, 0.99, (4, 6)) + (name == "erfcinv") if "inv" in name else 2 * rng.standard_normal((4, 6)))
    g = rng.standard_normal((4, 6))
    results = {}
    for device in ("cpu", "cuda"):
        x = mv.tensor(v, device=device, dtype=dtype, requires_grad=True)
        with use_cuda_kernels(True), loader.use_module_factory(cuda_host.module_factory()), \
                launch_count.counting() as launches, record() as log:
            y = getattr(ops, name)(x)
            y.backward(mv.tensor(g, device=device, dtype=dtype))
        if device == "cuda":
            assert log == [], describe(log)
            kernels = [k for k in names(launches) if k.startswith("kernel ")]
            assert kernels == ([] if dtype == np.float16 else ["kernel special_fwd"]), kernels
        results[device] = host(y), host(x.grad)
    (cpu, cpu_grad), (gpu, gpu_grad) = results["cpu"], results["cuda"]
    assert gpu.dtype == gpu_grad.dtype == dtype
    if dtype == np.float16:  # the same formula on both devices
        np.testing.assert_array_equal(gpu, cpu)
        np.testing.assert_array_equal(gpu_grad, cpu_grad)
        return
    ulp = np.spacing(np.abs(cpu).astype(dtype)).astype(np.float64)
    bound = (9 if dtype == np.float64 else 1) + (name == "gelu")  # (gelu: x·Φ rounded once more)
    assert (np.abs(gpu.astype(np.float64) - cpu) / ulp).max() <= bound
    np.testing.assert_allclose(gpu_grad, cpu_grad, rtol=1e-12 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["fixed prior", "learnable prior", "long rows"])
def test_the_gumbel_softmax_kl_pair_through_the_emulated_cuda_kernels(dtype, case):
    """ops.gumbel_softmax_kl on the GPU: with a fixed prior (the VAE's) and rows of ≤ 256, its two kernels, the sample
    and KL bit for bit those of gumbel_softmax and categorical_kl on the GPU and the logits' gradient the sum of theirs
    (to rounding); with a learnable prior, or rows of 300, the two ops' kernels, the prior's gradient included. The
    CPU's values and gradients to rounding in every case."""
    if importlib.util.find_spec("tests.cuda_host.host") is None or \
            importlib.import_module("tests.cuda_host.host").compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._gpu import loader
    from minivae.random import Generator
    from tests.cuda_host import host as cuda_host
    from tests.test_launch_count import launch_count, names  # tools/launch_count.py, as that test loads it
    rng = np.random.default_rng(4)
    k = 300 if case == "long rows" else 5
    values = [3 * rng.standard_normal((4, 3, k)), rng.standard_normal((3, k)), rng.standard_normal((4, 3, k)),
              rng.standard_normal((4, 3))]
    results = {}
    for device, fused in (("cpu", True), ("cuda", True), ("cuda", False)):
        logits, prior, gy, gkl = (mv.tensor(v, device=device, dtype=dtype) for v in values)
        logits.requires_grad = True
        prior.requires_grad = case == "learnable prior"
        gen = Generator(5, counter=9)
        with use_cuda_kernels(True), loader.use_module_factory(cuda_host.module_factory()), \
                launch_count.counting() as launches:
            if fused:
                y, kl = ops.gumbel_softmax_kl(logits, prior, gen, temperature=0.7, hard=True)
            else:
                y, kl = ops.gumbel_softmax(logits, gen, temperature=0.7, hard=True), ops.categorical_kl(logits, prior)
            mv.backward([y, kl], [gy, gkl])
        results[device, fused] = [host(y), host(kl), host(logits.grad)] + (
            [host(prior.grad)] if case == "learnable prior" else [])
        kernels = {n for n in names(launches) if n.startswith("kernel ")}
        if device == "cuda" and fused:
            pair = {"kernel gumbel_softmax_kl_warp_fwd", "kernel gumbel_softmax_kl_warp_bwd"}
            assert (kernels == pair) == (case == "fixed prior") and (kernels & pair == set()) == (case != "fixed prior")
    tol = dict(rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6 if dtype == np.float32 else 1e-14)
    got, unfused, cpu = results["cuda", True], results["cuda", False], results["cpu", True]
    for a, b in zip(got[:2], unfused[:2]):
        np.testing.assert_array_equal(a, b)
    for a, b, c in zip(got, unfused, cpu):
        np.testing.assert_allclose(a, b, **tol)
        np.testing.assert_allclose(a, c, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["fixed prior", "learnable prior"])
@pytest.mark.parametrize("hard", [False, True])
def test_the_binary_concrete_kl_pair_through_the_emulated_cuda_kernels(dtype, case, hard):
    """ops.binary_concrete_kl on the GPU: with a fixed prior (the VAE's) its two kernels and nothing else (the noise
    made in the forward's registers: no draw, no copy to the host); with a learnable prior the formula on the device
    (its uniforms drawn by kernels/random.cu).
    The values and gradients the CPU formula's to rounding (the kernel's logarithms are CUDA's), the counter the
    same."""
    if importlib.util.find_spec("tests.cuda_host.host") is None or \
            importlib.import_module("tests.cuda_host.host").compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._gpu import loader
    from tests.cuda_host import host as cuda_host
    from tests.test_launch_count import launch_count, names  # tools/launch_count.py, as that test loads it
    rng = np.random.default_rng(4)
    values = [3 * rng.standard_normal((4, 3, 5)), rng.standard_normal(5), rng.standard_normal((4, 3, 5)),
              rng.standard_normal((4, 3, 5))]
    results = {}
    for device in ("cpu", "cuda"):
        logits, prior, gy, gkl = (mv.tensor(v, device=device, dtype=dtype) for v in values)
        logits.requires_grad = True
        prior.requires_grad = case == "learnable prior"
        gen = Generator(5, counter=9)
        with use_cuda_kernels(True), loader.use_module_factory(cuda_host.module_factory()), \
                launch_count.counting() as launches, record() as log:
            y, kl = ops.binary_concrete_kl(logits, prior, gen, temperature=0.7, hard=hard)
            mv.backward([y, kl], [gy, gkl])
        results[device] = [host(y), host(kl), host(logits.grad), gen.counter] + (
            [host(prior.grad)] if case == "learnable prior" else [])
        if device == "cuda":
            assert log == [], describe(log)
            kernels = {n for n in names(launches) if n.startswith("kernel ")}
            pair = {"kernel binary_concrete_kl_fwd", "kernel binary_concrete_kl_bwd"}
            # (the formula's uniforms by kernels/random.cu, the rest array operations)
            assert kernels == (pair if case == "fixed prior" else {"kernel philox_uniform"}), kernels
    tol = dict(rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6 if dtype == np.float32 else 1e-14)
    for a, b in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(a, b, **tol)


def test_a_bernoulli_training_step_through_the_emulated_cuda_kernels():
    """BernoulliVAE (straight-through) on the GPU: its latent pair is kernels/binary_concrete.cu's, the step copies
    nothing back, and the loss and gradients are the CPU formulas' to rounding."""
    if importlib.util.find_spec("tests.cuda_host.host") is None:
        pytest.skip("tests/cuda_host/host.py is not there")
    from tests.cuda_host import host as cuda_host
    if cuda_host.compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._gpu import loader
    factory, sources = cuda_host.module_factory(), set()

    def recording(source):
        sources.add(source)
        return factory(source)
    expected_loss, expected_grads, _ = _one_step("bernoulli-straight_through", "cpu")
    with use_cuda_kernels(True), loader.use_module_factory(recording):
        loss, grads, conversions = _one_step("bernoulli-straight_through", "cuda")
    assert conversions == [], describe(conversions)
    assert "binary_concrete.cu" in sources and "random.cu" not in sources  # (no draw of uniforms apart)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    for n in grads:
        np.testing.assert_allclose(grads[n], expected_grads[n], rtol=1e-4, atol=1e-5, err_msg=n)


@pytest.mark.parametrize("name", ["gaussian", "straight_through", "reinforce"])
@pytest.mark.parametrize("tiled", [False, True], ids=["cublas", "tiled"])
def test_one_training_step_through_the_emulated_cuda_kernels(name, tiled, monkeypatch):
    """The fused kernels of kernels/*.cu (run on the CPU by tests/cuda_host) in a training step: the
    same loss and gradients as the CPU formulas (to rounding: Adam's first step, ≈ lr·sign(g), would
    magnify a rounding difference in a near-zero gradient), and still no copy to the host; with
    MINIVAE_GEMM=tiled, every product by kernels/gemm.cu."""
    if importlib.util.find_spec("tests.cuda_host.host") is None:
        pytest.skip("tests/cuda_host/host.py is not there")
    from tests.cuda_host import host as cuda_host
    if cuda_host.compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._gpu import gemm, loader
    monkeypatch.setattr(gemm, "use_tiled", tiled)
    factory, sources = cuda_host.module_factory(), set()

    def recording(source):
        sources.add(source)
        return factory(source)
    expected_loss, expected_grads, _ = _one_step(name, "cpu")
    with use_cuda_kernels(True), loader.use_module_factory(recording):
        loss, grads, conversions = _one_step(name, "cuda")
    assert conversions == [], describe(conversions)
    # the KL: made by the Gaussian pair's kernels, by the Gumbel-Softmax and KL pair's, or (REINFORCE's categorical
    # sample being drawn apart) by categorical_kl.cu's
    kl_source = {"gaussian": "gaussian.cu", "straight_through": "gumbel_softmax.cu", "reinforce": "categorical_kl.cu"}
    assert {"optim.cu", kl_source[name]} <= sources and ("linear.cu" in sources) != tiled  # (tiled: gemm.cu's)
    assert ("categorical_kl.cu" in sources) == (name == "reinforce")
    # REINFORCE's loss adds its surrogate per example, from each example's log-likelihood (bce.cu); the others'
    # is one −ELBO node whose kernels make the log-likelihood themselves (elbo.cu)
    assert ("elbo.cu" in sources) == (name != "reinforce") == ("bce.cu" not in sources)
    # the noise: drawn by the Gaussian pair's own kernel, the Gumbel-Softmax's, or a fill of random.cu (REINFORCE's
    # categorical sample)
    assert {"gaussian": "gaussian.cu", "straight_through": "gumbel_softmax.cu", "reinforce": "random.cu"}[name] in sources
    assert ("random.cu" in sources) == (name == "reinforce")
    assert ("gemm.cu" in sources) == tiled
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    for n in grads:
        np.testing.assert_allclose(grads[n], expected_grads[n], rtol=1e-4, atol=1e-5, err_msg=n)


def test_the_gaussian_kernels_read_the_split_halves_in_place(monkeypatch):
    """μ and log σ² are column slices of the encoder's output, which the kernels read in place: a training
    step makes nothing contiguous by a copy (each copy would be a kernel launch on the GPU)."""
    if importlib.util.find_spec("tests.cuda_host.host") is None:
        pytest.skip("tests/cuda_host/host.py is not there")
    from tests import strict_array
    from tests.cuda_host import host as cuda_host
    if cuda_host.compiler() is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._gpu import loader
    copies, plain = [], strict_array._StrictModule.ascontiguousarray

    def counting(self, a, dtype=None):
        out = plain(self, a, dtype)
        if out is not a and isinstance(a, StrictArray):
            copies.append(a.shape)
        return out
    monkeypatch.setattr(strict_array._StrictModule, "ascontiguousarray", counting)
    with use_cuda_kernels(True), loader.use_module_factory(cuda_host.module_factory()):
        _one_step("gaussian", "cuda")
    assert copies == []


# ---- the command line, with the stand-in GPU ---------------------------------------------------------------
def _without_seconds(rows):
    """A metrics table (its header first) without its wall-clock column, the one column two runs may differ in
    (it is not the last: comparing all but the last field let it through, a flaky test)."""
    i = rows[0].index("seconds")
    assert len(rows) > 1
    return [row[:i] + row[i + 1:] for row in rows]


def test_cli_train_eval_sample_on_the_device_match_the_cpu(tmp_path, capsys):
    from minivae.cli import main
    small = ["--limit", "60", "--hidden", "8", "--batch-size", "20", "--epochs", "1", "--seed", "2"]
    outputs = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        train_args = ["train", "--model", "categorical", "--estimator", "reinforce", "--n-latent", "3", *small]
        assert main([*train_args, "--out", str(out), "--device", device]) == 0
        ckpt = str(out / "checkpoint.npz")
        capsys.readouterr()
        for command in (["eval", ckpt, "--limit", "20", "-k", "6"], ["sample", ckpt, "--n", "8", "--out", str(out / "s.png")]):
            with record(UPLOADS) as uploads:
                assert main([*command, "--device", device]) == 0
            assert bool(uploads) == (device == "cuda"), command  # the checkpoint's parameters went to the device
        outputs[device] = capsys.readouterr().out.replace(str(out), "OUT")
        with np.load(out / "checkpoint.npz") as f:
            outputs[device, "checkpoint"] = {k: f[k] for k in f.files}
    assert outputs["cpu"] == outputs["cuda"] and "ELBO" in outputs["cpu"]
    for k, v in outputs["cpu", "checkpoint"].items():
        if k == "meta/metrics":  # the same table as metrics.csv, its seconds column too
            assert _without_seconds(json.loads(str(outputs["cuda", "checkpoint"][k]))) == _without_seconds(json.loads(str(v)))
        else:
            np.testing.assert_array_equal(outputs["cuda", "checkpoint"][k], v, err_msg=k)
    for name in ("samples.png", "reconstructions.png", "s.png", "metrics.csv"):
        if name == "metrics.csv":
            tables = [[line.split(",") for line in (tmp_path / d / name).read_text().splitlines()] for d in ("cpu", "cuda")]
            assert _without_seconds(tables[0]) == _without_seconds(tables[1])
        else:
            assert (tmp_path / "cpu" / name).read_bytes() == (tmp_path / "cuda" / name).read_bytes(), name


# ---- on a real GPU (skipped without CuPy and a GPU) ------------------------------------------------------------
@pytest.fixture
def real_gpu():
    try:
        module_for_device("cuda")
    except RuntimeError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("kernels", [True, False], ids=["cuda-kernels", "cupy-formulas"])
@pytest.mark.parametrize("name", MODELS)
def test_one_training_step_on_a_real_gpu(name, kernels, real_gpu):
    """CuPy on the GPU against NumPy: the same loss and gradients to float32 rounding (the GPU's
    libm and summation order differ), and the step runs (no implicit conversion raised)."""
    with use_numba(False):
        expected_loss, expected_grads, _ = _one_step(name, "cpu")
    with use_cuda_kernels(kernels):
        loss, grads, _ = _one_step(name, "cuda")
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-4)
    for n in grads:
        np.testing.assert_allclose(grads[n], expected_grads[n], rtol=1e-3, atol=1e-4, err_msg=n)


def test_graph_training_on_the_gpu_refuses_an_annealed_temperature_before_writing_anything(tmp_path):
    """A CUDA graph captures τ; a model whose τ anneals is refused at once, not after a first epoch."""
    model = CategoricalVAE(X_DIM, (8,), 3, 4, anneal_rate=1e-3, rng=Generator(0), device="cuda")
    data = {"train": X, "valid": X}
    with pytest.raises(TrainingError, match="--anneal-rate 0"):
        train(model, data, str(tmp_path / "run"), epochs=1, batch_size=4, lr=1e-3, seed=0, graph=True)
    assert not (tmp_path / "run").exists()


def test_tf32_is_a_setting_of_a_gpu_run(tmp_path, monkeypatch, capsys):
    """--tf32 trains with minivae's float32 products in TF32 and puts the global precision back after; the
    checkpoint records it, so a resume without it (or with it, on a run without) is refused naming --tf32;
    on the CPU it is refused before anything is written."""
    from minivae import _backend
    from minivae.cli import main
    seen = []
    real = _backend.get_float32_matmul_precision
    monkeypatch.setattr("minivae.ops.linalg.matmul_array",
                        lambda xp, a, b, _seen=seen: (_seen.append(real()), xp.matmul(a, b))[1])
    small = ["train", "--model", "gaussian", "--limit", "60", "--hidden", "8", "--batch-size", "20", "--seed", "2"]
    assert main([*small, "--epochs", "1", "--device", "cuda", "--tf32", "--out", str(tmp_path / "t")]) == 0
    assert seen and set(seen) == {"high"} and real() == "highest"
    with np.load(tmp_path / "t" / "checkpoint.npz") as f:
        assert json.loads(str(f["meta/settings"]))["tf32"] is True
    seen.clear()
    assert main([*small, "--epochs", "1", "--device", "cuda", "--out", str(tmp_path / "f")]) == 0
    assert set(seen) == {"highest"}
    capsys.readouterr()
    assert main([*small, "--epochs", "2", "--device", "cuda", "--resume", "--out", str(tmp_path / "t")]) == 1
    assert main([*small, "--epochs", "2", "--device", "cuda", "--resume", "--tf32", "--out", str(tmp_path / "f")]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and all("--tf32 (checkpoint" in e for e in errors), errors
    assert main([*small, "--epochs", "2", "--device", "cuda", "--resume", "--tf32", "--out", str(tmp_path / "t")]) == 0
    assert main([*small, "--epochs", "1", "--tf32", "--out", str(tmp_path / "cpu")]) == 1
    assert "--tf32 needs --device cuda" in capsys.readouterr().err and not (tmp_path / "cpu").exists()
    with pytest.raises(TrainingError, match="--tf32"):
        train(_model("cpu"), _data(), str(tmp_path / "api"), epochs=1, batch_size=10, lr=1e-2, seed=0, tf32=True)
    assert not (tmp_path / "api").exists() and real() == "highest"
