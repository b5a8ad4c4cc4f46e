"""Casting a module (``to(dtype)``, ``double()``, ``float()``, ``half()``) and a tensor (``Tensor.to``), as torch's:
which arrays change dtype, what follows them (gradients, an optimizer's state, a model's prior, a checkpoint), and what
is refused."""
import numpy as np
import pytest

import minivae as mv
from minivae import nn
from minivae.models import CategoricalVAE, GaussianVAE
from minivae.optim import SGD, Adam
from minivae.plan import PlanError, compile_step
from minivae.random import Generator


def small():
    mv.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


# each step: (what minivae calls, what torch calls)
CASTS = [
    ("double", lambda m: m.double(), lambda m, torch: m.double()),
    ("half", lambda m: m.half(), lambda m, torch: m.half()),
    ("to float32", lambda m: m.to(np.float32), lambda m, torch: m.to(torch.float32)),
    ("to cpu float64", lambda m: m.to("cpu", "float64"), lambda m, torch: m.to("cpu", torch.float64)),
    ("float", lambda m: m.float(), lambda m, torch: m.float()),
    ("to keywords", lambda m: m.to(device="cpu", dtype=np.float16), lambda m, torch: m.to(device="cpu", dtype=torch.float16)),
    ("to a tensor", lambda m: m.to(mv.tensor(np.zeros(1))), lambda m, torch: m.to(torch.zeros(1, dtype=torch.float64))),
]


def test_each_cast_gives_every_state_entry_torchs_dtype_and_keeps_the_tensors():
    torch = pytest.importorskip("torch")
    ours = small()
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    tensors = [*ours.parameters(), *ours.buffers()]
    for what, cast, torch_cast in CASTS:
        assert cast(ours) is ours, what
        torch_cast(theirs, torch)
        got = {k: np.dtype(v.dtype).name for k, v in ours.state_dict().items()}
        want = {k: str(v.dtype).removeprefix("torch.") for k, v in theirs.state_dict().items()}
        assert got == want, what  # num_batches_tracked stays int64 throughout
    assert [*ours.parameters(), *ours.buffers()] == tensors  # the same objects, their .data replaced


def test_gradients_are_cast_with_their_parameters_and_values_are_rounded_once():
    layer = nn.Linear(3, 2, rng=Generator(1))
    weight = layer.weight.numpy().copy()
    layer(mv.tensor(np.ones((5, 3), np.float32))).sum().backward()
    grad = layer.weight.grad.copy()
    layer.double()
    assert layer.weight.dtype == np.float64 and layer.weight.grad.dtype == np.float64
    np.testing.assert_array_equal(layer.weight.numpy(), weight.astype(np.float64))
    np.testing.assert_array_equal(layer.weight.grad, grad.astype(np.float64))
    layer.half()
    np.testing.assert_array_equal(layer.weight.numpy(), weight.astype(np.float16))


def test_bad_arguments_are_refused_naming_them():
    m = small()
    with pytest.raises(TypeError, match="floating dtype.*int64"):
        m.to(np.int64)
    with pytest.raises(TypeError, match="'gpu' is neither a device"):
        m.to("gpu")
    with pytest.raises(TypeError, match="unexpected keyword argument 'copy'"):
        m.to(np.float64, copy=True)
    with pytest.raises(TypeError, match="got dtype twice"):
        m.to(np.float64, dtype=np.float32)
    with pytest.raises(TypeError, match="3 arguments"):
        m.to("cpu", np.float64, np.float32)
    assert m[0].weight.dtype == np.float32  # nothing was cast by a refused call
    assert m.to(np.float64, non_blocking=True)[0].weight.dtype == np.float64  # torch's hint, taken


def test_tensor_to_casts_differentiably_and_returns_itself_when_nothing_changes():
    t = mv.tensor(np.array([1.5, -2.0], np.float32), requires_grad=True)
    assert t.to("cpu") is t and t.to(np.float32) is t and t.cpu() is t
    d = t.to(np.float64)
    assert d.dtype == np.float64 and t.to(d).dtype == np.float64 and t.half().dtype == np.float16
    (d * mv.tensor(np.array([3.0, 4.0]))).sum().backward()
    assert t.grad.dtype == np.float32
    np.testing.assert_array_equal(t.grad, [3.0, 4.0])


@pytest.mark.parametrize("optimizer", [SGD, Adam])
def test_an_optimizer_made_before_a_cast_follows_it_as_torchs_with_its_state_cast(optimizer):
    """Two steps in float32, ``double()``, two more: the parameters and state float64 afterwards, and the numbers
    torch's give when its state is cast by hand (torch's optimizer keeps its state's old dtype). Before: the step
    copied the float64 parameters back into the optimizer's float32 buffers, the cast silently undone."""
    torch = pytest.importorskip("torch")
    w0 = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    xs = [np.random.default_rng(i).normal(size=(4, 3)) for i in range(1, 5)]
    options = dict(lr=0.1, momentum=0.9) if optimizer is SGD else dict(lr=0.1)

    layer = nn.Linear(3, 2, bias=False)
    layer.weight.data[...] = w0.T  # (minivae keeps (in, out), torch (out, in))
    opt = optimizer(layer.parameters(), **options)
    ref = torch.nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(w0))
    ref_opt = getattr(torch.optim, optimizer.__name__)(ref.parameters(), **options)
    for step, x in enumerate(xs):
        if step == 2:
            layer.double()
            ref.double()
            for state in ref_opt.state.values():
                for k, v in state.items():
                    if k != "step":
                        state[k] = v.double()
        dtype = layer.weight.dtype
        opt.zero_grad()
        ((layer(mv.tensor(x.astype(dtype))) ** 2).sum()).backward()
        opt.step()
        ref_opt.zero_grad()
        (ref(torch.from_numpy(x.astype(dtype))) ** 2).sum().backward()
        ref_opt.step()
    assert layer.weight.dtype == np.float64 and opt._views[0].dtype == np.float64
    assert all(v.dtype == np.float64 for k, v in opt.state_dict().items() if not k.endswith("step") and k != "steps")
    # the first two steps in float32 (each library's rounding), the last two in float64
    np.testing.assert_allclose(layer.weight.numpy(), ref.weight.detach().numpy().T, rtol=2e-6, atol=1e-7)


def test_a_plan_compiled_before_a_cast_refuses_to_replay():
    rng = Generator(0)
    model = CategoricalVAE(x_dim=6, hidden=(5,), n_latent=2, n_categories=3, rng=Generator(1))
    opt = Adam(model.parameters(), lr=1e-3)
    x = np.random.default_rng(0).integers(0, 2, (4, 6)).astype(np.float32)
    plan = compile_step(model, opt, lambda b: model.loss(b, rng), x)
    model.double()
    with pytest.raises(PlanError):
        plan.step(x)


def test_a_cast_gaussian_vae_computes_in_its_dtype_prior_included():
    from minivae import objectives
    model = GaussianVAE(x_dim=6, hidden=(5,), z_dim=3, rng=Generator(0)).double()
    x = mv.tensor(np.random.default_rng(0).integers(0, 2, (4, 6)).astype(np.float64))
    assert model.prior().loc.dtype == np.float64 and model.prior().scale.dtype == np.float64
    assert model.loss(x, Generator(1)).dtype == np.float64
    assert objectives.elbo(model, x, Generator(2)).dtype == np.float64
    assert model.sample(2, Generator(3)).dtype == np.float64


def test_a_checkpoint_of_a_cast_model_loads_in_its_dtype(tmp_path):
    from minivae.training import load_checkpoint, save_checkpoint
    model = GaussianVAE(x_dim=6, hidden=(5,), z_dim=3, rng=Generator(0)).double()
    opt = Adam(model.parameters(), lr=1e-3)
    save_checkpoint(tmp_path / "c.npz", model, opt, Generator(0), epoch=1, step=1)
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert b.dtype == np.float64, k
        np.testing.assert_array_equal(a, b)


def test_a_cast_on_the_device_moves_and_casts_without_touching_the_host():
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import describe, emulating, record
    with use_numba(False), use_cuda_kernels(False), emulating():
        m = small()
        opt = Adam(m.parameters(), lr=1e-3)
        x = mv.tensor(np.ones((5, 3)), device="cuda")
        with record() as log:
            m.to("cuda", np.float64)
            opt.zero_grad()
            (m(x) ** 2).sum().backward()
            opt.step()
        assert log == [], describe(log)
        assert m[0].weight.device == "cuda" and m[0].weight.dtype == np.float64
        assert m[1].num_batches_tracked.dtype == np.int64 and m[1].running_mean.dtype == np.float64
