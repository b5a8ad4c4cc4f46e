"""Modules, state_dict round trips, optimizers against their update formulas."""
import copy

import numpy as np
import pytest

import minivae as mv
from minivae.nn import MLP, Linear, Module
from minivae.optim import SGD, Adam, AdamW, clip_grad_norm_
from minivae.random import Generator


def test_named_parameters_in_assignment_order_and_zero_grad():
    m = MLP((3, 4, 2), rng=Generator(0))
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    (m(mv.tensor(np.ones((5, 3), np.float32))) ** 2).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_init_is_seeded_and_scaled():
    a, b = Linear(200, 300, rng=Generator(1)), Linear(200, 300, rng=Generator(1))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    bound = np.sqrt(6 / 500)  # Glorot uniform: variance bound²/3 = 2/(in+out)
    assert np.abs(a.weight.data).max() <= bound
    assert a.weight.data.var() == pytest.approx(2 / 500, rel=0.05)
    he = Linear(200, 300, rng=Generator(2), init="he")
    assert he.weight.data.var() == pytest.approx(2 / 200, rel=0.05)


def test_gated_mlp_computes_gated_linear_units_and_its_gradient_checks():
    m = MLP((3, 4, 2), "gated", rng=Generator(0), dtype=np.float64)
    assert [n for n, _ in m.named_parameters()] == ["0.linear.weight", "0.linear.bias", "1.weight", "1.bias"]
    x = np.random.default_rng(0).normal(size=(5, 3))
    w, b = m.layers[0].linear.weight.data, m.layers[0].linear.bias.data
    h = x @ w + b
    expected = (h[:, :4] / (1 + np.exp(-h[:, 4:]))) @ m.layers[1].weight.data + m.layers[1].bias.data
    np.testing.assert_allclose(m(mv.tensor(x)).data, expected, rtol=1e-12)
    linears = [m.layers[0].linear, m.layers[1]]

    def f(x, *values):  # the parameters as inputs, so gradcheck differentiates with respect to them
        for layer, w, b in zip(linears, values[::2], values[1::2]):
            layer.weight, layer.bias = w, b
        return m(x)
    assert mv.gradcheck(f, [x, *(p.data.copy() for p in m.parameters())])
    with pytest.raises(ValueError, match="gated"):
        MLP((3, 2), "swish", rng=Generator(0))


def test_state_dict_save_load_round_trip(tmp_path):
    m = MLP((3, 4, 2), rng=Generator(0))
    path = tmp_path / "m.npz"
    m.save(path)
    other = MLP((3, 4, 2), rng=Generator(5)).load(path)
    for (_, p), (_, q) in zip(m.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    with pytest.raises(ValueError, match="missing"):
        MLP((3, 4, 4, 2), rng=Generator(0)).load(path)
    with pytest.raises(ValueError, match="shape"):
        MLP((3, 5, 2), rng=Generator(0)).load(path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        m.load(tmp_path / "bad.npz")


def quadratic(p):
    return ((p - mv.tensor(np.array([1.0, -2.0]))) ** 2).sum()


def test_sgd_momentum_matches_its_formula():
    p = mv.tensor(np.array([0.0, 0.0]), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9)
    v, x = np.zeros(2), np.zeros(2)
    for _ in range(3):
        opt.zero_grad()
        quadratic(p).backward()
        opt.step()
        g = 2 * (x - [1.0, -2.0])
        v = 0.9 * v + g
        x = x - 0.1 * v
    np.testing.assert_allclose(p.data, x)


def test_adam_matches_its_formula_and_converges():
    p = mv.tensor(np.array([0.0, 0.0]), requires_grad=True)
    opt = Adam([p], lr=0.01)
    m = v = np.zeros(2)
    x = np.zeros(2)
    for t in range(1, 6):
        opt.zero_grad()
        quadratic(p).backward()
        opt.step()
        g = 2 * (x - [1.0, -2.0])
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x = x - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(p.data, x, rtol=1e-10)
    opt = Adam([p], lr=0.1)
    for _ in range(500):
        opt.zero_grad()
        quadratic(p).backward()
        opt.step()
    np.testing.assert_allclose(p.data, [1.0, -2.0], atol=1e-3)


def test_optimizer_state_round_trip_continues_identically():
    def run(steps, restore_at=None):
        p = mv.tensor(np.array([0.0, 0.0]), requires_grad=True)
        opt = Adam([p], lr=0.05)
        for i in range(steps):
            if i == restore_at:
                state, data = opt.state_dict(), p.data.copy()
                p = mv.tensor(data, requires_grad=True)
                opt = Adam([p], lr=0.05)
                opt.load_state_dict(state)
            opt.zero_grad()
            quadratic(p).backward()
            opt.step()
        return p.data
    np.testing.assert_array_equal(run(10), run(10, restore_at=4))


def test_clip_grad_norm_scales_globally():
    a = mv.tensor(np.zeros(2), requires_grad=True)
    b = mv.tensor(np.zeros(1), requires_grad=True)
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])
    norm = clip_grad_norm_([a, b], 1.0)
    assert isinstance(norm, np.ndarray) and norm.shape == () and norm.dtype == np.float64  # as its docstring says
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]), np.array([3.0, 0.0, 4.0]) / (5.0 + 1e-6), rtol=1e-12)


@pytest.mark.parametrize("g, max_norm", [([3e-4, 4e-4], 1e-4), ([3.0, 4.0], 5.0 - 5e-7), ([0.6, 0.8], 1.0), ([0.3, 0.4], 1.0)],
                         ids=["small-norm", "just-under-max-norm", "at-max-norm", "under-max-norm"])
def test_clip_grad_norm_scales_by_torchs_coefficient(g, max_norm):
    """g·min(1, max_norm/(‖g‖ + 10⁻⁶)), torch.nn.utils.clip_grad_norm_'s formula: the 10⁻⁶ is 0.2% of a norm of 5·10⁻⁴
    (a 10⁻¹² gave g·max_norm/‖g‖), and a norm at max_norm or just under is scaled by ≈ 1 − 10⁻⁶ (was left alone)."""
    a = mv.tensor(np.zeros(2), requires_grad=True)
    a.grad = np.array(g)
    norm = np.hypot(*g)
    clip_grad_norm_([a], max_norm)
    np.testing.assert_allclose(a.grad, np.array(g) * min(1.0, max_norm / (norm + 1e-6)), rtol=1e-14)
    torch = pytest.importorskip("torch")
    ta = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    ta.grad = torch.tensor(g, dtype=torch.float64)
    torch.nn.utils.clip_grad_norm_([ta], max_norm)
    np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=1e-14)


def test_clip_grad_norm_of_no_gradient_is_a_0d_zero_and_changes_nothing():
    a = mv.tensor(np.zeros(2), requires_grad=True)
    norm = clip_grad_norm_([a], 1.0)
    assert isinstance(norm, np.ndarray) and norm.shape == () and norm == 0.0 and a.grad is None


def test_optimizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        Adam([])
    with pytest.raises(ValueError, match="learning rate"):
        SGD([mv.tensor([1.0], requires_grad=True)], lr=0)


def test_custom_module_registers_submodules():
    class Two(Module):
        def __init__(self):
            self.a = Linear(2, 2, rng=Generator(0))
            self.b = Linear(2, 1, rng=Generator(1))
            self.scale = mv.tensor(np.ones(1, np.float32), requires_grad=True)

        def forward(self, x):
            return self.b(self.a(x)) * self.scale
    assert [n for n, _ in Two().named_parameters()] == ["scale", "a.weight", "a.bias", "b.weight", "b.bias"]


def test_adam_keeps_parameters_in_one_flat_buffer_and_survives_rebinding():
    m = MLP((3, 4, 2), rng=Generator(0))
    opt = Adam(m.parameters(), lr=0.1)
    base = m.parameters()[0].data.base
    assert base is not None and all(p.data.base is base for p in m.parameters())
    p = m.parameters()[1]
    p.data = np.full(p.shape, 5.0, np.float32)  # a user rebinds .data: the next step adopts it
    (m(mv.tensor(np.ones((2, 3), np.float32))) ** 2).sum().backward()
    opt.step()
    assert p.data.base is base and np.all(np.abs(p.data - 5.0) <= 0.1 + 1e-6)


def test_one_launch_path_gets_each_param_groups_hyperparameters(monkeypatch):
    """The CUDA launchers update a whole flat buffer per call; with two parameter groups each buffer
    must get its own group's lr (a NumPy stand-in for minivae._gpu.sgd, with the same signature)."""
    import minivae.optim as optim

    class OneLaunchSGD:
        ONE_LAUNCH = True

        @staticmethod
        def sgd_step_all(p, v, grads, starts, lr, momentum, dampening, weight_decay, nesterov, maximize, first):
            assert (dampening, weight_decay, nesterov, maximize) == (0, 0, False, False)
            for j, g in enumerate(grads):
                if g is not None:
                    s = slice(int(starts[j]), int(starts[j + 1]))
                    v[s] = g.reshape(-1) if first else momentum * v[s] + g.reshape(-1)
                    p[s] -= lr * v[s]

    def run():
        ws = [mv.tensor(np.ones(3), requires_grad=True), mv.tensor(np.ones(2), requires_grad=True)]
        opt = SGD([{"params": ws[:1]}, {"params": ws[1:], "lr": 0.5, "momentum": 0.0}], lr=0.1, momentum=0.9)
        for _ in range(3):
            for w in ws:
                w.grad = np.full(w.shape, 2.0)
            opt.step()
        return [w.data.copy() for w in ws]

    reference = run()
    monkeypatch.setattr(optim, "fused", lambda name, xp, *arrays: OneLaunchSGD)
    for a, b in zip(run(), reference):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(reference[1], 1 - 3 * 0.5 * 2.0)  # plain SGD at the second group's lr


# ---- tied and frozen parameters (as torch.nn registers them) ------------------------------------
class _Tied(Module):
    """enc and dec are one weight (dec = enc, as tied autoencoders do), plus a frozen offset."""

    def __init__(self, nn, w, offset):
        self.enc = nn.Parameter(w)
        self.offset = nn.Parameter(offset, requires_grad=False)
        self.dec = self.enc

    def forward(self, x):
        return (x @ self.enc + self.offset) @ self.dec.T


def _torch_tied(torch, w, offset):
    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.Parameter(torch.tensor(w))
            self.offset = torch.nn.Parameter(torch.tensor(offset), requires_grad=False)
            self.dec = self.enc

        def forward(self, x):
            return (x @ self.enc + self.offset) @ self.dec.T
    return Tied()


TIED_W = np.random.default_rng(7).normal(size=(3, 2))
TIED_OFFSET = np.array([0.5, -1.0])
TIED_X = np.random.default_rng(8).normal(size=(4, 3))


def test_tied_and_frozen_parameters_are_listed_and_saved_as_in_torch():
    torch = pytest.importorskip("torch")
    ours, theirs = _Tied(mv.nn, TIED_W, TIED_OFFSET), _torch_tied(torch, TIED_W, TIED_OFFSET)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()] == ["enc", "offset"]
    assert [p for p in ours.parameters()] == [ours.enc, ours.offset] and ours.parameters()[1].requires_grad is False
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict()) == ["dec", "enc", "offset"]
    assert [n for n, _ in ours.named_parameters(remove_duplicate=False)] == ["enc", "offset", "dec"]
    # a tensor that does not require grad and is no Parameter stays unregistered (a constant), as before
    ours.constant = mv.tensor(np.ones(2))
    assert "constant" not in ours.state_dict()
    # the frozen weight round-trips through a checkpoint; the tied one loads into both names' tensor
    saved = {k: v + 1 for k, v in ours.state_dict().items()}
    other = _Tied(mv.nn, np.zeros((3, 2)), np.zeros(2))
    other.load_state_dict(saved)
    np.testing.assert_array_equal(other.offset.data, TIED_OFFSET + 1)
    assert other.dec is other.enc
    np.testing.assert_array_equal(other.enc.data, TIED_W + 1)
    with pytest.raises(ValueError, match=r"missing \['offset'\]"):
        other.load_state_dict({k: v for k, v in saved.items() if k != "offset"})


@pytest.mark.parametrize("name, kw", [("SGD", {"lr": 0.1, "momentum": 0.9}), ("Adam", {"lr": 0.1})])
def test_tied_parameter_is_updated_once_and_frozen_one_never_as_in_torch(name, kw):
    torch = pytest.importorskip("torch")
    results = []
    for lib, model in ((mv, _Tied(mv.nn, TIED_W, TIED_OFFSET)), (torch, _torch_tied(torch, TIED_W, TIED_OFFSET))):
        opt = getattr(lib.optim, name)(model.parameters(), **kw)
        for _ in range(3):
            opt.zero_grad()
            (model(lib.tensor(TIED_X)) ** 2).sum().backward()
            opt.step()
        results.append([np.array(p.detach().numpy()) for p in (model.enc, model.offset)])
        if lib is mv:
            assert model.offset.grad is None
            state = opt.state_dict()
            assert all(not state[k].any() for k in state if k.startswith("1."))  # the frozen one's state: untouched
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    np.testing.assert_array_equal(results[0][1], TIED_OFFSET)


@pytest.mark.parametrize("optimizer", [SGD, Adam])
def test_a_model_with_tied_and_frozen_parameters_replays_its_eager_steps(optimizer):
    from tests.test_plan import batch_steps
    batches = [np.random.default_rng(i).normal(size=(4, 3)) for i in range(4)]

    def run(replay):
        model = _Tied(mv.nn, TIED_W, TIED_OFFSET)
        opt = optimizer(model.parameters(), lr=0.05)
        loss_fn = lambda x: (model(x) ** 2).mean()  # noqa: E731
        batch_steps(model, opt, loss_fn, batches, replay)
        return model, opt

    (m1, o1), (m2, o2) = run(False), run(True)
    for (n, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=n)
    for (n, a), b in zip(o1.state_dict().items(), o2.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=n)
    np.testing.assert_array_equal(m2.offset.data, TIED_OFFSET)
    assert not np.array_equal(m2.enc.data, TIED_W) and o2.steps == 4


def _one_launch_adam_step(p, m, v, grads, starts, step_size, b1, b2, eps_hat, weight_decay, decay, maximize, max_v):
    """A stand-in for the GPU's one-launch Adam kernel (plain Adam's options only): the flat buffers' slices of the
    parameters with a gradient."""
    assert (weight_decay, decay, maximize, max_v) == (0, 1, False, None)
    for j, g in enumerate(grads):
        if g is not None:
            s, g = slice(int(starts[j]), int(starts[j + 1])), g.reshape(-1)
            m[s] = b1 * m[s] + (1 - b1) * g
            v[s] = b2 * v[s] + (1 - b2) * g * g
            p[s] -= step_size * m[s] / (np.sqrt(v[s]) + eps_hat)


def test_frozen_parameter_is_left_alone_by_the_one_launch_path(monkeypatch):
    """The CUDA launchers get the whole flat buffer, gradients None where a parameter has none (a
    NumPy stand-in for minivae._gpu.adam): the frozen parameter and its moments stay as they were."""
    import minivae.optim as optim

    class OneLaunchAdam:
        ONE_LAUNCH = True

        @staticmethod
        def adam_step_all(p, m, v, grads, starts, *scalars):
            _one_launch_adam_step(p, m, v, grads, starts, *scalars)

    def run():
        model = _Tied(mv.nn, TIED_W, TIED_OFFSET)
        opt = Adam(model.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            (model(mv.tensor(TIED_X)) ** 2).sum().backward()
            opt.step()
        return [p.data.copy() for p in model.parameters()], opt.state_dict()

    reference = run()
    monkeypatch.setattr(optim, "fused", lambda name, xp, *arrays: OneLaunchAdam)
    params, state = run()
    for a, b in zip(params, reference[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_array_equal(params[1], TIED_OFFSET)
    assert not state["1.m"].any() and not state["1.v"].any()


def test_optimizer_refuses_a_parameter_listed_twice():
    torch = pytest.importorskip("torch")
    w = mv.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"twice in param group 0 \(entries 0 and 2\)"):
        SGD([w, mv.tensor([2.0], requires_grad=True), w], lr=0.1)
    with pytest.raises(ValueError, match=r"in param groups 0 and 1"):
        Adam([{"params": [w]}, {"params": [w], "lr": 0.5}], lr=0.1)
    tw = torch.ones(1, requires_grad=True)
    with pytest.raises(ValueError, match="more than one parameter group"):  # the convention followed
        torch.optim.SGD([{"params": [tw]}, {"params": [tw], "lr": 0.5}], lr=0.1)
    np.testing.assert_array_equal(w.data, [1.0])  # a refused optimizer did not take the parameter


# ---- Optimizer.load_state_dict ------------------------------------------------------------------
def _trained_adam():
    w, b = mv.tensor(np.ones((2, 3), np.float32), requires_grad=True), mv.tensor(np.ones(3), requires_grad=True)
    opt = Adam([w, b], lr=0.1)
    for _ in range(2):
        w.grad, b.grad = np.full((2, 3), 0.5, np.float32), np.array([1.0, -2.0, 3.0])
        opt.step()
    return opt


def test_optimizer_state_has_each_parameters_shape_and_dtype():
    state = _trained_adam().state_dict()
    assert {k: (v.shape, v.dtype) for k, v in state.items()} == {
        "steps": ((), np.dtype(np.int64)), "0.step": ((), np.dtype(np.int64)), "1.step": ((), np.dtype(np.int64)),
        "0.m": ((2, 3), np.float32), "0.v": ((2, 3), np.float32), "1.m": ((3,), np.float64), "1.v": ((3,), np.float64)}
    fresh = _trained_adam()
    fresh.load_state_dict({k: v.reshape(-1) if v.ndim else v for k, v in state.items()})  # the older flat layout
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)


@pytest.mark.parametrize("change, problem", [
    ({"0.m": np.array([7.0], np.float32)}, r"0\.m is float32 of shape \(1,\), this Adam expects float32 of shape \(2, 3\)"),
    ({"0.m": np.ones((3, 2), np.float32)}, r"0\.m is float32 of shape \(3, 2\)"),
    ({"0.v": np.ones((2, 3))}, r"0\.v is float64 of shape \(2, 3\), this Adam expects float32"),
    ({"1.v": np.ones(3, np.float32)}, r"1\.v is float32 of shape \(3,\), this Adam expects float64"),
    ({"1.m": [0.0, 0.0, 0.0]}, r"1\.m is a list, not an array"),
    ({"1.m": np.ones(3, np.int64)}, r"1\.m is int64"),
    ({"steps": np.array(-1)}, r"steps is int64 of shape \(\), Adam expects an integer >= 0"),
    ({"steps": np.array(2.0)}, r"steps is float64"),
    ({"steps": np.array([2])}, r"steps is int64 of shape \(1,\)"),
    ({"1.step": np.array(-3)}, r"1\.step is int64 of shape \(\), Adam expects an integer >= 0"),
    ({"0.step": np.array(1.0)}, r"0\.step is float64"),
    ({"2.step": np.array(1)}, r"missing \[\], unexpected \['2\.step'\]"),
    ({"2.m": np.zeros(3)}, r"missing \[\], unexpected \['2\.m'\]"),
    ({"0.momentum": np.zeros(6, np.float32)}, r"unexpected \['0\.momentum'\]"),
    ({"1.v": None}, r"missing \['1\.v'\]"),
    ({"steps": None}, r"missing \['steps'\]"),
], ids=["broadcast-shape", "transposed-shape", "float64-for-float32", "float32-for-float64", "list", "int", "negative-steps",
        "float-steps", "steps-shape", "negative-parameter-step", "float-parameter-step", "extra-parameter-step",
        "extra-parameter", "other-optimizer", "missing-buffer", "missing-steps"])
def test_optimizer_load_state_dict_refuses_what_does_not_fit_and_changes_nothing(change, problem):
    opt = _trained_adam()
    before = {k: v.copy() for k, v in opt.state_dict().items()}
    other = {k: v * 2 for k, v in before.items()}  # a good state, which must not be half-loaded
    bad = {k: v for k, v in {**other, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=problem):
        opt.load_state_dict(bad)
    assert opt.steps == 2
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    opt.load_state_dict(other)
    assert opt.steps == 4
    np.testing.assert_array_equal(opt.state_dict()["1.v"], before["1.v"] * 2)


# ---- clip_grad_norm_ ---------------------------------------------------------------------------
def test_clip_grad_norm_takes_a_single_tensor_as_torch():
    torch = pytest.importorskip("torch")
    g = np.array([[3.0, 0.0], [4.0, 0.0]], np.float32)
    for max_norm in (1.0, 10.0):
        a, ta = mv.tensor(np.zeros((2, 2), np.float32), requires_grad=True), torch.zeros(2, 2, requires_grad=True)
        a.grad, ta.grad = g.copy(), torch.tensor(g)
        norm = clip_grad_norm_(a, max_norm)
        expected = torch.nn.utils.clip_grad_norm_(ta, max_norm)
        assert float(norm) == pytest.approx(float(expected)) == pytest.approx(5.0)
        np.testing.assert_allclose(a.grad, ta.grad.numpy(), rtol=1e-6)  # clipped at 1.0, unchanged at 10.0


# ---- hyperparameters ----------------------------------------------------------------------------
@pytest.mark.parametrize("make, problem", [
    (lambda w: SGD([{"params": [w], "betas": (0.5, 0.9)}], lr=0.1), r"group 0: unknown option 'betas'.*lr, momentum"),
    (lambda w: AdamW([{"params": [w], "decoupled_weight_decay": False}]), r"unknown option 'decoupled_weight_decay'"),
    (lambda w: Adam([{"params": [w], "lrr": 5.0}], lr=0.1), r"unknown option 'lrr'.*lr, betas, eps"),
    (lambda w: Adam([{"params": [w]}, {"params": [], "momentum": 0.9}]), r"group 1: unknown option 'momentum'"),
    (lambda w: SGD([{"lr": 0.1}], lr=0.1), r"group 0: no 'params' entry"),
], ids=["sgd-betas", "adamw-coupled", "adam-typo", "second-group", "no-params"])
def test_param_group_options_the_optimizer_does_not_take_are_refused(make, problem):
    w = mv.tensor([1.0, -2.0], requires_grad=True)
    with pytest.raises(ValueError, match=problem):
        make(w)


@pytest.mark.parametrize("make, problem, torch_refuses", [
    (lambda o, p: o.Adam(p, betas=(1.0, 0.999)), r"Adam: betas\[0\] must be a finite number in \[0, 1\), got 1.0", True),
    (lambda o, p: o.Adam(p, betas=(0.9, 1.5)), r"betas\[1\] must be", True),
    (lambda o, p: o.Adam(p, betas=(-0.1, 0.9)), r"betas\[0\] must be", True),
    (lambda o, p: o.Adam(p, eps=-1.0), r"Adam: eps must be a finite number >= 0, got -1.0", True),
    (lambda o, p: o.SGD(p, lr=0.1, momentum=-0.5), r"SGD: momentum must be a finite number >= 0", True),
    (lambda o, p: o.SGD(p, lr=-1.0), r"learning rate \(lr\) must be a finite number > 0, got -1.0", True),
    (lambda o, p: o.SGD(p, lr=float("nan")), r"learning rate .* got nan", False),  # minivae's rule: finite, > 0
    (lambda o, p: o.Adam(p, lr=float("inf")), r"learning rate .* got inf", False),
    # torch checks only the constructor's values; minivae checks each group's as well
    (lambda o, p: o.SGD([{"params": p, "momentum": -1.0}], lr=0.1), r"SGD param group 0: momentum must be", False),
    (lambda o, p: o.Adam([{"params": p, "betas": (0.9, 1.0)}]), r"Adam param group 0: betas\[1\] must be", False),
    (lambda o, p: o.Adam([{"params": p, "eps": -1e-8}]), r"Adam param group 0: eps must be", False),
    (lambda o, p: o.Adam([{"params": p, "lr": -0.1}]), r"Adam param group 0: learning rate", False),
], ids=["beta1-one", "beta2-above-one", "beta1-negative", "eps-negative", "momentum-negative", "lr-negative", "lr-nan",
        "lr-inf", "group-momentum", "group-beta2", "group-eps", "group-lr"])
def test_hyperparameters_out_of_range_are_refused_by_the_constructor(make, problem, torch_refuses):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=problem):
        make(mv.optim, [mv.tensor([1.0], requires_grad=True)])
    try:  # the reference: torch.optim's class of the same name, with the same arguments
        make(torch.optim, [torch.ones(1, requires_grad=True)])
    except ValueError:
        refused = True
    else:
        refused = False
    assert refused == torch_refuses


def test_hyperparameters_of_the_wrong_type_are_refused():
    p = [mv.tensor([1.0], requires_grad=True)]
    with pytest.raises(TypeError, match=r"learning rate \(lr\) must be a real number, got '0.1'"):
        SGD(p, lr="0.1")
    with pytest.raises(TypeError, match=r"betas must be a pair"):
        Adam(p, betas=0.9)
    with pytest.raises(TypeError, match="not a single Tensor"):
        SGD(p[0], lr=0.1)
    with pytest.raises(TypeError, match="optimizes tensors, not ndarray"):
        SGD([np.ones(2)], lr=0.1)


@pytest.mark.parametrize("name, per_group", [("SGD", {"momentum": 0.5}), ("Adam", {"betas": (0.5, 0.9), "eps": 1e-3})])
def test_per_group_options_apply_to_their_group_as_in_torch(name, per_group):
    torch = pytest.importorskip("torch")
    defaults = {"SGD": {"lr": 0.1, "momentum": 0.9}, "Adam": {"lr": 0.1}}[name]
    results = []
    for lib in (mv, torch):
        ws = [lib.tensor(np.array([1.0, -2.0]), requires_grad=True), lib.tensor(np.array([3.0]), requires_grad=True)]
        opt = getattr(lib.optim, name)([{"params": ws[:1]}, {"params": ws[1:], **per_group}], **defaults)
        for _ in range(3):
            opt.zero_grad()
            sum((w * w * w).sum() for w in ws).backward()
            opt.step()
        results.append([np.array(w.detach().numpy()) for w in ws])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)


# ---- Adam's step count --------------------------------------------------------------------------
def test_a_step_without_any_gradient_changes_nothing_as_in_torch():
    torch = pytest.importorskip("torch")
    for name in ("Adam", "SGD"):
        results = []
        for lib in (mv, torch):
            p = lib.tensor(np.array([1.0, 2.0]), requires_grad=True)
            opt = getattr(lib.optim, name)([p], lr=0.1)
            opt.step()  # nothing to do: no gradient yet
            if lib is mv:
                assert opt.steps == 0 and not any(v.any() for k, v in opt.state_dict().items() if k != "steps")
            for g in ([1.0, -1.0], [0.5, 2.0]):
                p.grad = np.array(g) if lib is mv else torch.tensor(g, dtype=torch.float64)
                opt.step()
            results.append(np.array(p.detach().numpy()))
        np.testing.assert_allclose(results[0], results[1], rtol=1e-12, err_msg=name)


# Parameter 1 has no gradient at steps 0, 1 and 3 (frozen at first, then unused by one batch); parameter 0 has one
# at every step. The gradients of a loss Σ p⁴/4 + p (g = p³ + 1), evaluated at the parameters of that step.
SKIPS = (0, 1, 3)
SKIP_START = (np.array([0.5, -1.0]), np.array([2.0, -0.3, 0.7]))


def _skipping_run(make, lib, steps=6, state_at=None):
    """Parameters and optimizer after ``steps`` steps of make(lib, params) on the problem above; with ``state_at``,
    the optimizer is made afresh after that many steps and loaded from the first one's state_dict."""
    ps = [lib.tensor(v.copy(), requires_grad=True) for v in SKIP_START]
    opt = make(lib, ps)
    for t in range(steps):
        if t == state_at:
            state = opt.state_dict()
            opt = make(lib, ps)
            opt.load_state_dict(state)
        opt.zero_grad()
        for i, p in enumerate(ps):
            if i == 0 or t not in SKIPS:
                p.grad = p.detach().numpy() ** 3 + 1 if lib is mv else p.detach() ** 3 + 1
        opt.step()
    return [np.array(p.detach().numpy()) for p in ps], opt


def _torch_adam_by_hand(lr=0.1, betas=(0.9, 0.999), eps=1e-8, steps=6):
    """torch.optim.Adam's update (its documented algorithm, written as torch/optim/adam.py's single-tensor path
    computes it) on the problem above: a parameter without a gradient is skipped, moments and count alike; t is
    the parameter's own count."""
    b1, b2 = betas
    out = []
    for i, x in enumerate(SKIP_START):
        x, m, v, t = x.copy(), np.zeros_like(x), np.zeros_like(x), 0
        for step in range(steps):
            if i == 1 and step in SKIPS:
                continue
            g = x ** 3 + 1
            t += 1
            m = m + (1 - b1) * (g - m)  # exp_avg.lerp_(grad, 1 − β₁)
            v = b2 * v + (1 - b2) * g * g
            denom = np.sqrt(v) / np.sqrt(1 - b2 ** t) + eps
            x = x - lr / (1 - b1 ** t) * m / denom
        out.append((x, m, v, t))
    return out


ADAM = lambda lib, ps: lib.optim.Adam(ps, lr=0.1)  # noqa: E731
SGD_MOMENTUM = lambda lib, ps: lib.optim.SGD(ps, lr=0.05, momentum=0.9)  # noqa: E731


def test_adam_counts_each_parameters_steps_as_torch_by_hand():
    """Parameter 1 first has a gradient at step 2: its first update is its own first, lr·m̂/(√v̂ + ε) = lr·g/(|g| + ε)
    per entry (the optimizer's count, 3, gave ≈ 0.64·lr before); moments, value and count as torch's algorithm."""
    (x, opt), want = _skipping_run(ADAM, mv), _torch_adam_by_hand()
    assert opt.steps == 6 and opt.param_steps == [6, 3]
    state = opt.state_dict()
    for i, (wx, wm, wv, wt) in enumerate(want):
        np.testing.assert_allclose(x[i], wx, rtol=1e-12, err_msg=i)
        np.testing.assert_allclose(state[f"{i}.m"], wm, rtol=1e-12, err_msg=i)
        np.testing.assert_allclose(state[f"{i}.v"], wv, rtol=1e-12, err_msg=i)
        assert state[f"{i}.step"] == wt
    ps = [mv.tensor(np.zeros(2), requires_grad=True), mv.tensor(np.zeros(2), requires_grad=True)]
    opt = Adam(ps, lr=0.1)
    for t in range(3):
        ps[0].grad, ps[1].grad = np.ones(2), (np.array([3.0, -0.5]) if t == 2 else None)
        opt.step()
    np.testing.assert_allclose(ps[1].data, [-0.1 * 3 / (3 + 1e-8), 0.1 * 0.5 / (0.5 + 1e-8)], rtol=1e-12)


@pytest.mark.parametrize("make", [ADAM, SGD_MOMENTUM], ids=["Adam", "SGD-momentum"])
def test_a_parameter_without_gradient_is_skipped_as_by_torch(make):
    torch = pytest.importorskip("torch")
    (ours, opt), (theirs, topt) = _skipping_run(make, mv), _skipping_run(make, torch)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    state, tstate = opt.state_dict(), topt.state_dict()["state"]
    for i in range(2):
        if make is ADAM:
            assert state[f"{i}.step"] == int(tstate[i]["step"])
            np.testing.assert_allclose(state[f"{i}.m"], tstate[i]["exp_avg"].numpy(), rtol=1e-12)
            np.testing.assert_allclose(state[f"{i}.v"], tstate[i]["exp_avg_sq"].numpy(), rtol=1e-12)
        else:
            np.testing.assert_allclose(state[f"{i}.momentum"], tstate[i]["momentum_buffer"].numpy(), rtol=1e-12)


@pytest.mark.parametrize("make", [ADAM, SGD_MOMENTUM], ids=["Adam", "SGD-momentum"])
def test_a_resumed_optimizer_keeps_each_parameters_count(make):
    """Loaded after step 2 (parameter 1's count 1, the optimizer's 2) it continues bit for bit."""
    (whole, _), (resumed, opt) = _skipping_run(make, mv), _skipping_run(make, mv, state_at=2)
    for a, b in zip(whole, resumed):
        np.testing.assert_array_equal(a, b)
    assert opt.param_steps == [6, 3]


def test_an_adam_checkpoint_without_parameter_counts_gives_each_the_optimizers():
    """minivae's checkpoints before the per-parameter counts hold "steps" alone: the count their Adam used for
    every parameter, which each parameter now continues from. Half of the counts is refused."""
    _, opt = _skipping_run(ADAM, mv, steps=3)
    state = opt.state_dict()
    old = {k: v for k, v in state.items() if not k.endswith(".step")}
    fresh = Adam([mv.tensor(v.copy(), requires_grad=True) for v in SKIP_START], lr=0.1)
    fresh.load_state_dict(old)
    assert fresh.steps == 3 and fresh.param_steps == [3, 3]
    for k in old:
        np.testing.assert_array_equal(fresh.state_dict()[k], state[k], err_msg=k)
    with pytest.raises(ValueError, match=r"missing \['1\.step'\]"):
        fresh.load_state_dict({k: v for k, v in state.items() if k != "1.step"})
    assert fresh.param_steps == [3, 3]


def test_the_one_launch_path_launches_once_per_step_count(monkeypatch):
    """The CUDA launchers update a whole flat buffer with one (step size, ε̂) (a NumPy stand-in for minivae._gpu.adam
    with the same signature): where the parameters' counts differ, one launch per count, each given the gradients of
    its count's parameters only; the values are those of the per-parameter path, and ``launch_scalars`` (what a CUDA
    graph writes before each launch) lists each launch's scalars in launch order."""
    import minivae.optim as optim
    calls = []

    class OneLaunchAdam:
        ONE_LAUNCH = True

        @staticmethod
        def adam_step_all(p, m, v, grads, starts, step_size, b1, b2, eps_hat, *options):
            calls.append(([g is not None for g in grads], step_size, eps_hat))
            _one_launch_adam_step(p, m, v, grads, starts, step_size, b1, b2, eps_hat, *options)

    reference, _ = _skipping_run(ADAM, mv)
    monkeypatch.setattr(optim, "fused", lambda name, xp, *arrays: OneLaunchAdam)
    got, opt = _skipping_run(ADAM, mv)
    for a, b in zip(got, reference):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    a_only, b_only = [True, False], [False, True]
    # steps 0, 1, 3: parameter 0 alone; steps 2, 4, 5: parameter 1's count (1, 2, 3), then parameter 0's (3, 5, 6)
    assert [mask for mask, _, _ in calls] == [a_only, a_only, b_only, a_only, a_only, b_only, a_only, b_only, a_only]
    step_size = lambda t: 0.1 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)  # noqa: E731
    np.testing.assert_allclose([s for _, s, _ in calls[-2:]], [step_size(3), step_size(6)], rtol=1e-12)
    assert opt.launch_scalars() == [(s, e, 1.0) for _, s, e in calls[-2:]]


# ---- learning-rate schedulers against torch.optim.lr_scheduler -----------------------------------
def _schedule(lib, make, metrics, change_by_hand=None, start=None):
    """Per step (optimizer step, then each scheduler's): the groups' lrs, get_last_lr() and last_epoch of every
    scheduler. Two groups (lr 1 and 0.2) on one parameter each; ``make(lib, optimizer)`` gives the schedulers (a
    ReduceLROnPlateau is stepped with the metric); ``change_by_hand`` (step, lr) sets group 0's lr after that step.
    With ``start`` = (k, states): the parameters, the optimizer and the schedulers are made afresh after k steps and
    loaded from states (the parameters' values, the optimizer's state_dict, then the schedulers'), as a resumed run would."""
    def fresh(values=((0.0,), (0.0,))):
        ps = [lib.tensor(np.array(v, np.float64), requires_grad=True) for v in values]
        opt = lib.optim.SGD([{"params": [ps[0]], "lr": 1.0}, {"params": [ps[1]], "lr": 0.2}], lr=1.0, momentum=0.5)
        return ps, opt, make(lib, opt)
    ps, opt, schedulers = fresh()
    trace, states = [], None
    for i, m in enumerate(metrics):
        if start is not None and i == start[0]:
            ps, opt, schedulers = fresh(start[1][0])  # the schedulers first: made, they would overwrite a loaded lr (torch)
            opt.load_state_dict(start[1][1])
            for s, state in zip(schedulers, start[1][2]):
                s.load_state_dict(state)
        for p in ps:
            p.grad = None
            (p * p + p).sum().backward()
        opt.step()
        for s in schedulers:
            s.step(m) if isinstance(s, lib.optim.lr_scheduler.ReduceLROnPlateau) else s.step()
        if change_by_hand and i == change_by_hand[0]:
            opt.param_groups[0]["lr"] = change_by_hand[1]
        trace.append([[g["lr"] for g in opt.param_groups]] + [[s.get_last_lr(), s.last_epoch] for s in schedulers])
        if i == 3:
            states = copy.deepcopy(([p.detach().numpy() for p in ps], opt.state_dict(), [s.state_dict() for s in schedulers]))
    return trace, states, [p.detach().numpy().copy() for p in ps]


METRICS = [5.0, 4.0, 4.0, 3.9999, 4.1, 4.2, 4.3, 2.0, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0]
SCHEDULES = {
    "steplr": lambda lib, o: [lib.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)],
    "steplr-and-plateau": lambda lib, o: [lib.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5),
                                          lib.optim.lr_scheduler.ReduceLROnPlateau(o, factor=0.1, patience=1)],
    "plateau-abs-min-lrs": lambda lib, o: [lib.optim.lr_scheduler.ReduceLROnPlateau(
        o, threshold=0.5, threshold_mode="abs", patience=0, cooldown=1, factor=0.5, min_lr=[0.3, 0.01])],
    "plateau-max": lambda lib, o: [lib.optim.lr_scheduler.ReduceLROnPlateau(o, mode="max", threshold=0.1, patience=1)],
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedulers_chain_and_step_as_torch(name):
    """torch's numbers, step by step: StepLR multiplies the current lr (so a change by hand, or a second scheduler on
    the same optimizer, is kept, where recomputing base_lr·γ^⌊t/s⌋ would undo it), ReduceLROnPlateau's
    threshold_mode and per-group min_lr, get_last_lr() and last_epoch."""
    torch = pytest.importorskip("torch")
    for change in (None, (2, 0.05)):
        ours, _, _ = _schedule(mv, SCHEDULES[name], METRICS, change)
        theirs, _, _ = _schedule(torch, SCHEDULES[name], METRICS, change)
        assert ours == theirs, change


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_a_scheduler_resumed_from_its_state_dict_continues_as_torchs(name):
    """Made afresh after 4 steps and loaded from the state_dicts of then (optimizer and schedulers): the same lrs,
    counters and parameters as the uninterrupted run, and as torch resumed the same way."""
    torch = pytest.importorskip("torch")
    whole, states, params = _schedule(mv, SCHEDULES[name], METRICS, (2, 0.05))
    resumed, _, resumed_params = _schedule(mv, SCHEDULES[name], METRICS, (2, 0.05), start=(4, states))
    _, torch_states, _ = _schedule(torch, SCHEDULES[name], METRICS, (2, 0.05))
    torch_resumed, _, _ = _schedule(torch, SCHEDULES[name], METRICS, (2, 0.05), start=(4, torch_states))
    assert resumed == whole == torch_resumed
    np.testing.assert_array_equal(np.concatenate(resumed_params), np.concatenate(params))


def test_plateau_reads_a_0d_tensor_or_array_metric_as_torch_reads_a_0d_tensor():
    torch = pytest.importorskip("torch")
    lrs = []
    for lib, wrap in ((torch, torch.tensor), (mv, mv.tensor), (mv, np.array), (mv, float)):
        p = lib.tensor(np.zeros(1), requires_grad=True)
        opt = lib.optim.SGD([p], lr=1.0)
        s = lib.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0)
        for m in (3.0, 2.0, 2.5, 2.5):
            s.step(wrap(np.float64(m)))
        lrs.append((opt.param_groups[0]["lr"], s.best, s.last_epoch))
    assert lrs[0][0] < 1 and lrs.count(lrs[0]) == 4


def test_scheduler_load_state_dict_refuses_what_does_not_fit_and_changes_nothing():
    p = mv.tensor(np.zeros(1), requires_grad=True)
    opt = SGD([p], lr=1.0)
    s = mv.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    s.step()
    before = s.state_dict(), opt.param_groups[0]["lr"]
    plateau = mv.optim.lr_scheduler.ReduceLROnPlateau(SGD([p], lr=1.0)).state_dict()
    with pytest.raises(ValueError, match="missing .*'gamma'.* unexpected .*'best'"):
        s.load_state_dict(plateau)
    with pytest.raises(ValueError, match="lrs of 2 parameter groups, the optimizer has 1"):
        s.load_state_dict({**before[0], "_last_lr": [0.1, 0.1]})
    assert (s.state_dict(), opt.param_groups[0]["lr"]) == before == ({**before[0], "last_epoch": 1}, 0.5)


@pytest.mark.parametrize("make", [lambda ps: Adam(ps, lr=0.01), lambda ps: SGD(ps, lr=0.1, momentum=0.9)],
                         ids=["adam", "sgd-momentum"])
def test_an_optimizer_made_before_module_to_follows_the_parameters_as_torchs(make):
    """torch's Module.to() replaces each parameter's .data, so an optimizer made before keeps working. Here too, both
    ways ("cuda" = tests/strict_array.py's stand-in): the parameters stay where .to() put them, and the optimizer's
    state (moments, step count) moves with them, so the run takes the values of one that never moved (the same
    formulas run on both devices)."""
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import emulating
    x = np.random.default_rng(0).random((5, 4)).astype(np.float32)

    def run(devices):
        model = MLP((4, 3, 2), rng=Generator(1))
        opt = make(model.parameters())
        for device in devices:
            model.to(device)
            loss = (model(mv.tensor(x, device=device)) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            assert [p.device for p in model.parameters()] == [device] * 4
        return [p.numpy() for p in model.parameters()]

    with use_numba(False), use_cuda_kernels(False), emulating():
        moved = run(["cpu", "cpu", "cuda", "cuda", "cpu", "cpu"])
        still = run(["cpu"] * 6)
    for a, b in zip(moved, still):
        np.testing.assert_array_equal(a, b)


def test_containers_slice_extend_and_insert_as_torch():
    """Sequential[1:] is a Sequential (runnable) and ModuleList[1:] a ModuleList, of the same modules; extend() and
    insert() keep the entries named "0", "1", … in order: the state_dict keys torch gives for the same structure."""
    torch = pytest.importorskip("torch")
    sizes = [(2, 3), (3, 4), (4, 5), (5, 6)]
    ours = [Linear(a, b, rng=Generator(0)) for a, b in sizes]
    theirs = [torch.nn.Linear(a, b) for a, b in sizes]
    for lib, layers in ((mv, ours), (torch, theirs)):
        seq = lib.nn.Sequential(layers[0], lib.nn.ReLU(), layers[1])
        assert type(seq[1:]) is lib.nn.Sequential and len(seq[1:]) == 2 and seq[1:][1] is layers[1]
        modules = lib.nn.ModuleList([layers[0]])
        assert modules.extend([layers[2], layers[3]]) is modules
        modules.insert(1, layers[1])
        assert list(modules) == layers and type(modules[1:]) is lib.nn.ModuleList and list(modules[1:]) == layers[1:]
    assert sorted(mv.nn.ModuleList(ours).state_dict()) == sorted(torch.nn.ModuleList(theirs).state_dict())
    x = np.random.default_rng(0).random((3, 2)).astype(np.float32)
    head = mv.nn.Sequential(ours[0], mv.nn.ReLU(), ours[1])[:-1]  # Linear then ReLU, by hand below
    np.testing.assert_allclose(head(mv.tensor(x)).data, np.maximum(x @ ours[0].weight.data + ours[0].bias.data, 0),
                               rtol=1e-6)
    with pytest.raises(TypeError, match="holds modules, not int"):
        mv.nn.ModuleList(ours[:2]).insert(0, 3)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # torch's, for its Linear(0, 3)
def test_linear_refuses_negative_sizes_naming_them_and_takes_zero_as_torch():
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="negative dimension"):
        torch.nn.Linear(3, -1)
    with pytest.raises(ValueError, match="out_features must be an integer >= 0, got -1"):
        Linear(3, -1, rng=Generator(0))
    with pytest.raises(ValueError, match="in_features must be an integer >= 0, got 2.5"):
        Linear(2.5, 3, rng=Generator(0))
    for init in ("he", "glorot"):  # an empty weight: y = b (= 0) for every x with no features, as torch's y = b
        layer = Linear(0, 3, rng=Generator(0), init=init)
        assert layer.weight.shape == tuple(torch.nn.Linear(0, 3).weight.shape[::-1]) == (0, 3)
        np.testing.assert_array_equal(layer(mv.tensor(np.zeros((2, 0), np.float32))).data, np.zeros((2, 3)))
