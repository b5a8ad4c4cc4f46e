"""The optimizers' API against torch.optim (2.13), the reference: SGD's momentum buffer when the momentum changes
mid-run (on the per-parameter path and on kernels/optim.cu's one-launch path), add_param_group, zero_grad
(set_to_none=False), the hyperparameters in state_dict(param_groups=True), an lr changed between the steps of a
recorded plan; clip_grad_norm_ of every norm type and clip_grad_value_. float64 parameters to 1e-12."""
import importlib
import shutil

import numpy as np
import pytest

import minivae as mv
from minivae.optim import SGD, AdamW, clip_grad_norm_, clip_grad_value_

torch = pytest.importorskip("torch")

TOL = dict(rtol=1e-12, atol=1e-14)
SHAPES = [(3,), (2, 2)]


def _run(lib, make, schedule, steps=7, skip=()):
    """Parameters after ``steps`` steps of ``make(lib, params)``; before step t, ``schedule(t, groups)`` may change
    the groups' options (by hand, as a user would); parameter 1 has no gradient at the steps in ``skip``. Gradients
    noise + p, the noise drawn once for both libraries."""
    rng = np.random.default_rng(0)
    ps = [lib.tensor(rng.standard_normal(s), requires_grad=True) for s in SHAPES]
    noise = [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]
    opt = make(lib, ps)
    for t in range(steps):
        schedule(t, opt.param_groups)
        for i, p in enumerate(ps):
            g = None if i == 1 and t in skip else noise[t][i] + np.array(p.detach().numpy())
            p.grad = g if lib is mv or g is None else torch.tensor(g)
        opt.step()
    return [np.array(p.detach().numpy()) for p in ps], opt


def _set(changes):
    """A schedule: at step t, group["momentum"] etc. from changes[t] (a dict for every group)."""
    def schedule(t, groups):
        for g in groups:
            g.update(changes.get(t, {}))
    return schedule


MOMENTUM_CHANGES = {
    "0-then-0.9": {3: {"momentum": 0.9}},
    "0-then-damped": {2: {"momentum": 0.8, "dampening": 0.3}},
    "0.9-then-0-then-0.5": {2: {"momentum": 0.0}, 4: {"momentum": 0.5}},
    "0-then-nesterov": {3: {"momentum": 0.9, "nesterov": True}},
}


def _assert_momentum_changes_as_torch(name):
    start = 0.9 if name.startswith("0.9") else 0.0
    make = lambda lib, ps: lib.optim.SGD(ps, lr=0.1, momentum=start, weight_decay=0.1)  # noqa: E731
    ours, opt = _run(mv, make, _set(MOMENTUM_CHANGES[name]), skip=(3, 4))
    theirs, _ = _run(torch, make, _set(MOMENTUM_CHANGES[name]), skip=(3, 4))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, **TOL)
    return opt


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("name", sorted(MOMENTUM_CHANGES))
def test_sgd_momentum_changed_mid_run_starts_or_keeps_the_buffer_as_torch(name, numba):
    """torch makes a parameter's momentum buffer at its first step with a gradient and μ ≠ 0 (v ← d, undamped), and
    neither reads nor writes it while μ = 0. Here v was written with d at every μ = 0 step, so raising the momentum
    mid-run went on from v = μ·d_previous + (1 − dampening)·d (the stale buffer); parameter 1 skips steps 3 and 4,
    so its buffer starts later than parameter 0's. Both CPU paths (the NumPy formula, Numba's kernel)."""
    from minivae._backend import use_numba
    with use_numba(numba):
        _assert_momentum_changes_as_torch(name)


@pytest.fixture(scope="module")
def one_launch():
    """kernels/optim.cu on the host emulation (tests/cuda_host), as tests/test_cuda_kernels.py runs it."""
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no host C++ compiler to build kernels/*.cu for the CPU")
    from minivae._gpu import loader
    from tests.cuda_host.host import module_factory
    with loader.use_module_factory(module_factory()):
        yield


@pytest.mark.parametrize("name", sorted(MOMENTUM_CHANGES))
def test_sgd_momentum_changed_mid_run_on_the_one_launch_kernel_as_torch(one_launch, monkeypatch, name):
    import minivae.optim as optim
    monkeypatch.setattr(optim, "fused", lambda kernel, xp, *arrays: importlib.import_module(f"minivae._gpu.{kernel}"))
    _assert_momentum_changes_as_torch(name)


def test_sgd_state_has_a_momentum_buffer_only_where_torchs_has_one_and_resumes_exactly():
    """After 3 steps at μ = 0 no parameter has a buffer ("<i>.momentum" absent, as torch's "momentum_buffer");
    resumed from that state, then μ = 0.9: the buffer starts at the resumed run's first step, bit for bit as the
    uninterrupted run; after it, every parameter that had a gradient has one."""
    make = lambda lib, ps: lib.optim.SGD(ps, lr=0.1)  # noqa: E731
    schedule = _set({3: {"momentum": 0.9}})
    whole, _ = _run(mv, make, schedule, steps=6, skip=(3,))
    _, opt = _run(mv, make, schedule, steps=3)
    state = opt.state_dict()
    _, torch_opt = _run(torch, make, schedule, steps=3)
    assert sorted(state) == ["0.step", "1.step", "steps"] and torch_opt.state_dict()["state"] == {}
    rng = np.random.default_rng(0)
    ps = [mv.tensor(rng.standard_normal(s), requires_grad=True) for s in SHAPES]
    noise = [[rng.standard_normal(s) for s in SHAPES] for _ in range(6)]
    fresh = SGD(ps, lr=0.1)
    for t in range(3):  # the same first three steps, then a new optimizer loaded from their state
        for i, p in enumerate(ps):
            p.grad = noise[t][i] + p.data
        fresh.step()
    fresh = SGD(ps, lr=0.1)
    fresh.load_state_dict(state)
    assert fresh.momentum_started == [False, False]
    for t in range(3, 6):
        schedule(t, fresh.param_groups)
        for i, p in enumerate(ps):
            p.grad = None if (i == 1 and t == 3) else noise[t][i] + p.data
        fresh.step()
    for a, b in zip([p.data for p in ps], whole):
        np.testing.assert_array_equal(a, b)
    assert sorted(fresh.state_dict()) == ["0.momentum", "0.step", "1.momentum", "1.step", "steps"]


# ---- add_param_group ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, options, added", [
    ("SGD", {"lr": 0.1, "momentum": 0.9}, {"lr": 0.05, "dampening": 0.2}),
    ("Adam", {"lr": 0.1}, {"lr": 0.05, "amsgrad": True, "weight_decay": 0.1}),
    ("AdamW", {"lr": 0.1, "amsgrad": True}, {"betas": (0.5, 0.9)}),
], ids=["sgd", "adam-amsgrad-added", "adamw"])
def test_a_param_group_added_mid_run_steps_as_torchs(name, options, added):
    """Parameter 0 from the start, parameter 1 in a group added after 2 steps (torch's defaults fill what the group
    leaves out): both as torch's, the first's state carried through the new layout; an added amsgrad group makes
    v̂max where there was none."""
    def run(lib):
        rng = np.random.default_rng(1)
        ps = [lib.tensor(rng.standard_normal(s), requires_grad=True) for s in SHAPES]
        opt = getattr(lib.optim, name)([ps[0]], **options)
        for t in range(5):
            if t == 2:
                opt.add_param_group({"params": [ps[1]], **added})
            for i, p in enumerate(ps[:1 if t < 2 else 2]):
                g = np.cos(np.arange(p.numel()) + t).reshape(SHAPES[i]) + np.array(p.detach().numpy())
                p.grad = g if lib is mv else torch.tensor(g)
            opt.step()
        return [np.array(p.detach().numpy()) for p in ps], opt
    (ours, opt), (theirs, torch_opt) = run(mv), run(torch)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, **TOL)
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups] == [
        {k: v for k, v in g.items() if k in opt.defaults} for g in torch_opt.param_groups]
    assert opt.param_steps == [5, 3]


def test_add_param_group_refuses_what_the_constructor_refuses():
    p, q = mv.tensor([1.0], requires_grad=True), mv.tensor([1.0], requires_grad=True)
    opt = SGD([p], lr=0.1)
    with pytest.raises(ValueError, match=r"a parameter appears in param groups 0 and 1"):
        opt.add_param_group({"params": [p]})
    with pytest.raises(ValueError, match=r"SGD.add_param_group: unknown option 'betas'"):
        opt.add_param_group({"params": [q], "betas": (0.9, 0.99)})
    with pytest.raises(ValueError, match=r"SGD.add_param_group: momentum must be a finite number >= 0"):
        opt.add_param_group({"params": [q], "momentum": -1.0})
    with pytest.raises(TypeError, match=r"a param group is a dict"):
        opt.add_param_group([q])
    with pytest.raises(TypeError, match=r"not a set"):
        opt.add_param_group({"params": {q}})
    assert len(opt.param_groups) == 1 and opt.params == [p]


# ---- zero_grad ---------------------------------------------------------------------------------------------------
def test_zero_grad_keeps_zeroed_gradients_without_set_to_none_as_torch():
    """set_to_none=False: each gradient filled with zeros in place (the same array), and a step with them still moves
    the parameters by momentum and weight decay, as torch's; the default lets go of them."""
    def run(lib):
        p = lib.tensor(np.array([1.0, -2.0]), requires_grad=True)
        opt = lib.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1)
        (p * p).sum().backward()
        opt.step()
        grad = p.grad
        opt.zero_grad(set_to_none=False)
        assert p.grad is grad and not np.any(np.asarray(p.grad))
        opt.step()
        opt.zero_grad()
        assert p.grad is None
        return np.array(p.detach().numpy())
    np.testing.assert_allclose(run(mv), run(torch), **TOL)
    p = mv.tensor(np.ones((2, 3)), requires_grad=True)
    p.grad = np.broadcast_to(np.ones(3), (2, 3))  # read-only: replaced by zeros of its shape
    SGD([p]).zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"set_to_none must be True or False"):
        SGD([mv.tensor([1.0], requires_grad=True)]).zero_grad(set_to_none=0)


# ---- the hyperparameters in the state ----------------------------------------------------------------------------
def test_the_hyperparameters_round_trip_through_state_dict_and_the_run_continues_exactly():
    """state_dict(param_groups=True) holds each group's options (changed since the constructor, and a scheduler's
    initial_lr); an optimizer made with other values and loaded from it has the same groups, and its next steps are
    the uninterrupted run's, bit for bit. Without them the state is as before (the groups keep their own)."""
    def make():
        rng = np.random.default_rng(2)
        ps = [mv.tensor(rng.standard_normal(s), requires_grad=True) for s in SHAPES]
        return ps, AdamW([{"params": ps[:1]}, {"params": ps[1:], "amsgrad": True}], lr=0.1)

    def steps(ps, opt, ts):
        for t in ts:
            for p in ps:
                p.grad = np.sin(p.data + t)
            opt.step()

    ps, opt = make()
    mv.optim.lr_scheduler.ExponentialLR(opt, 0.5).step()
    opt.param_groups[1].update(betas=(0.7, 0.95), eps=1e-4, weight_decay=0.3, maximize=True)
    steps(ps, opt, range(3))
    state = opt.state_dict(param_groups=True)
    assert state["param_groups.1.betas"].tolist() == [0.7, 0.95] and state["param_groups.0.initial_lr"] == 0.1
    assert set(opt.state_dict()) == {k for k in state if not k.startswith("param_groups.")}
    saved = [np.array(p.data) for p in ps]
    steps(ps, opt, range(3, 6))

    ps2, other = make()
    other.param_groups[0]["lr"] = 0.7
    for p, v in zip(ps2, saved):
        p.data[...] = v
    other.load_state_dict(state)
    assert other.param_groups[1]["betas"] == (0.7, 0.95) and type(other.param_groups[1]["maximize"]) is bool
    assert [{k: v for k, v in g.items() if k != "params"} for g in other.param_groups] == [
        {k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    steps(ps2, other, range(3, 6))
    for a, b in zip(ps2, ps):
        np.testing.assert_array_equal(a.data, b.data)


@pytest.mark.parametrize("change, problem", [
    ({"param_groups.2.lr": np.array(0.1)}, r"param_groups\.2\.lr is of param group 2, this SGD has 2 param groups"),
    ({"param_groups.0.betas": np.array([0.9, 0.99])}, r"param_groups\.0\.betas: SGD has no option 'betas'"),
    ({"param_groups.1.momentum": np.array(-0.5)}, r"SGD param group 1: momentum must be a finite number >= 0"),
    ({"param_groups.0.lr": np.array("0.1")}, r"param_groups\.0\.lr is <U3 of shape \(\), not a number"),
    ({"param_groups.0.nesterov": np.array(True)}, r"param group 0: Nesterov momentum requires a momentum > 0"),
], ids=["group-index", "unknown-option", "bad-momentum", "string", "nesterov-without-momentum"])
def test_hyperparameters_that_do_not_fit_are_refused_and_change_nothing(change, problem):
    ps = [mv.tensor([1.0], requires_grad=True), mv.tensor([2.0], requires_grad=True)]
    opt = SGD([{"params": ps[:1]}, {"params": ps[1:], "momentum": 0.5}], lr=0.1)
    for p in ps:
        p.grad = np.ones(1)
    opt.step()
    state = {**opt.state_dict(param_groups=True), "param_groups.0.lr": np.array(0.3), **change}
    before = [dict(g) for g in opt.param_groups], opt.state_dict()
    with pytest.raises(ValueError, match=problem):
        opt.load_state_dict(state)
    assert [dict(g) for g in opt.param_groups] == before[0]
    assert all(np.array_equal(v, before[1][k]) for k, v in opt.state_dict().items())


# ---- an lr changed between the steps of a plan --------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.1), lambda ps: AdamW(ps, lr=0.05, weight_decay=0.5)],
                         ids=["sgd-momentum-raised", "adamw"])
def test_an_lr_and_momentum_changed_between_replays_of_a_plan_apply_as_in_eager_steps(make):
    """A recorded plan replays optimizer.step(), which reads each group's options at every replay: a scheduler's lr
    (and AdamW's decay 1 − lr·wd with it), and SGD's momentum raised from 0 after the recording (its buffer started
    then), give the eager steps' parameters and state bit for bit."""
    from minivae.plan import compile_step
    batches = [np.random.default_rng(i).standard_normal((3, 4)) for i in range(6)]

    def run(replay):
        mv.manual_seed(0)
        layer = mv.nn.Linear(4, 2, dtype=np.float64)
        opt = make(layer.parameters())
        schedule = mv.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
        loss_fn = lambda x: (layer(x) ** 2).sum()  # noqa: E731
        plan = compile_step(layer, opt, loss_fn, batches[0]) if replay else None
        for t, x in enumerate(batches):
            if t == 2 and "momentum" in opt.defaults:
                opt.param_groups[0]["momentum"] = 0.9
            if not (replay and t == 0):
                if replay:
                    plan.step(x)
                else:
                    opt.zero_grad()
                    loss_fn(mv.tensor(x)).backward()
                    opt.step()
            schedule.step()
        return [np.array(p.data) for p in layer.parameters()], opt.state_dict()
    (eager, eager_state), (replayed, replayed_state) = run(False), run(True)
    for a, b in zip(eager, replayed):
        np.testing.assert_array_equal(a, b)
    assert sorted(eager_state) == sorted(replayed_state)
    for k in eager_state:
        np.testing.assert_array_equal(eager_state[k], replayed_state[k])


# ---- clip_grad_norm_ and clip_grad_value_ -------------------------------------------------------------------------
def _grads(lib, values):
    ps = []
    for v in values:
        p = lib.tensor(np.zeros_like(v), requires_grad=True)
        p.grad = v.copy() if lib is mv else torch.tensor(v)
        ps.append(p)
    return ps


GRADS = [np.array([[3.0, -4.0], [0.5, 2.0]]), np.array([-7.0, 0.25, 1.0])]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, float("inf"), "inf", 2])
@pytest.mark.parametrize("max_norm", [1.0, 100.0])
def test_clip_grad_norm_of_every_norm_type_as_torch(norm_type, max_norm):
    """The total p-norm over every entry of every gradient (inf: the largest |g|), returned; the gradients scaled by
    min(1, max_norm/(‖g‖ + 10⁻⁶)): torch's numbers, float64, to 1e-12; a norm under max_norm leaves them as they
    are. Before, minivae took no norm_type: every norm was the 2-norm."""
    ours, theirs = _grads(mv, GRADS), _grads(torch, GRADS)
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type, error_if_nonfinite=True, foreach=None)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type, error_if_nonfinite=True)
    assert total.dtype == np.float64 and total.shape == ()
    np.testing.assert_allclose(total, expected.item(), **TOL)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), **TOL)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_nonfinite_norm_raises_only_when_asked_and_leaves_the_gradients(bad):
    values = [GRADS[0], np.array([1.0, bad, 2.0])]
    for lib in (mv, torch):
        ps = _grads(lib, values)
        clip = clip_grad_norm_ if lib is mv else torch.nn.utils.clip_grad_norm_
        with pytest.raises(RuntimeError, match=r"The total norm of order 2.0 for gradients from `parameters` is"):
            clip(ps, 1.0, error_if_nonfinite=True)
        np.testing.assert_array_equal(np.asarray(ps[0].grad), GRADS[0])
    ours, theirs = _grads(mv, values), _grads(torch, values)
    total = clip_grad_norm_(ours, 1.0, norm_type="inf")
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type="inf")
    np.testing.assert_array_equal(total, expected.numpy())
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad, q.grad.numpy())


@pytest.mark.parametrize("norm_type", [0, -1.0, "two", None, True])
def test_a_norm_type_that_is_not_a_positive_number_is_refused(norm_type):
    with pytest.raises(ValueError, match=r"norm_type must be a number > 0 or inf"):
        clip_grad_norm_(_grads(mv, GRADS), 1.0, norm_type=norm_type)


def test_clip_grad_norm_of_no_gradient_is_zero_for_every_norm_type():
    p = mv.tensor([1.0], requires_grad=True)
    for norm_type in (2.0, 1.0, "inf"):
        total = clip_grad_norm_([p], 1.0, norm_type=norm_type)
        assert total.shape == () and total == 0.0


@pytest.mark.parametrize("norm_type", [float("inf"), 3.0, 2.0])
def test_the_norm_of_gradients_on_two_devices_copies_only_0d_values(norm_type):
    """Each device's part (the largest |g|, or Σ |g|^p) moved to the first gradient's device and combined there, the
    scale moved back, nothing else copied (tests/strict_array.py's stand-in for CuPy logs every copy): torch's
    numbers, the scaled gradients on their own devices."""
    from minivae._backend import device_of, use_cuda_kernels, use_numba
    from tests.strict_array import UPLOADS, emulating, record
    expected = torch.nn.utils.clip_grad_norm_(_grads(torch, GRADS), 1.0, norm_type=norm_type).item()
    with use_numba(False), use_cuda_kernels(False), emulating():
        ps = []
        for v, device in zip(GRADS, ("cuda", "cpu")):
            p = mv.tensor(np.zeros_like(v), device=device, requires_grad=True)
            p.grad = mv.tensor(v, device=device).data
            ps.append(p)
        with record() as log, record(UPLOADS) as uploads:
            total = clip_grad_norm_(ps, 1.0, norm_type=norm_type)
        assert [shape for kind, shape, _ in log if kind == "get"] == [()] and len(log) == 1
        assert [shape for _, shape, _ in uploads] == [()]
        assert device_of(total) == "cuda" and device_of(ps[0].grad) == "cuda" and device_of(ps[1].grad) == "cpu"
        np.testing.assert_allclose(total.get(), expected, **TOL)
        for p, v in zip(ps, GRADS):
            got = p.grad.get() if device_of(p.grad) == "cuda" else p.grad
            np.testing.assert_allclose(got, v * (1.0 / (expected + 1e-6)), **TOL)


@pytest.mark.parametrize("clip", [0.5, 3.0])
def test_clip_grad_value_clamps_each_entry_as_torch(clip):
    values = [GRADS[0], np.array([-7.0, np.nan, 0.25])]
    ours, theirs = _grads(mv, values), _grads(torch, values)
    grad = ours[0].grad
    assert clip_grad_value_(ours, clip) is None
    torch.nn.utils.clip_grad_value_(theirs, clip)
    assert ours[0].grad is grad  # in place
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad, q.grad.numpy())
    single = _grads(mv, [np.array([5.0, -5.0])])[0]
    clip_grad_value_(single, 1.0)  # one tensor, as torch's
    np.testing.assert_array_equal(single.grad, [1.0, -1.0])
    with pytest.raises(ValueError, match=r"clip_value must be a finite number, got nan"):
        clip_grad_value_(ours, float("nan"))
