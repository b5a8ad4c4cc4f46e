"""Step plans replayed as CUDA graphs (minivae/_gpu/graph.py) on a real GPU: the graph's steps match the
eager steps, draw fresh noise, allocate nothing, and refuse what they would replay wrongly."""
import numpy as np
import pytest

import minivae as mv
from minivae import _gpu
from minivae.models import CategoricalVAE, GaussianVAE
from minivae.optim import SGD, Adam, AdamW
from minivae.plan import PlanError, compile_step
from minivae.random import Generator

BATCHES = [(np.random.default_rng(i).random((32, 784)) < 0.2).astype(np.float32) for i in range(5)]


def _model(kind):
    rng = Generator(0)
    if kind == "gaussian":
        return GaussianVAE(x_dim=784, hidden=(64, 32), z_dim=8, rng=rng, device="cuda")
    return CategoricalVAE(x_dim=784, hidden=(64, 32), n_latent=6, n_categories=5, estimator=kind, tau0=0.7, tau_min=0.7,
                          rng=rng, device="cuda")


def eager_losses(model, opt, rng, batches):
    """The loss of each of len(batches) eager training steps, one a batch (the other GPU tests' reference)."""
    losses = []
    for x in batches:
        loss = model.loss(mv.tensor(x, device="cuda"), rng)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _run(kind, mode, optimizer=Adam, decay_lr=False):
    """Losses, parameters, optimizer state and the generator's counter after len(BATCHES) steps taken
    eagerly, by a plan replayed in Python, or by a plan replayed as a CUDA graph; with ``decay_lr``, a schedule
    halves the learning rate after each step."""
    model, rng = _model(kind), Generator(5)
    opt = optimizer(model.parameters(), lr=1e-3)
    scheduler = mv.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5) if decay_lr else None
    losses = []
    if mode == "eager":
        for t, x in enumerate(BATCHES):
            loss = model.loss(mv.tensor(x, device="cuda"), rng, step=t, beta=0.5 + 0.1 * t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if scheduler:
                scheduler.step()
    else:
        plan = compile_step(model, opt, lambda x, step, beta: model.loss(x, rng, step=step, beta=beta), BATCHES[0],
                            step=0, beta=0.5)
        if mode == "graph":
            plan.capture()
        losses.append(plan.loss.item())
        for t, x in enumerate(BATCHES[1:], 1):
            if scheduler:
                scheduler.step()
            losses.append(plan.step(x, step=t, beta=0.5 + 0.1 * t).item())
        if scheduler:
            scheduler.step()
    state = {k: v for k, v in opt.state_dict().items() if k != "steps"}
    return losses, {n: p.numpy() for n, p in model.named_parameters()}, state, rng.counter, opt.steps


@pytest.mark.parametrize("kind", ["gaussian", "gumbel_softmax", "straight_through", "reinforce"])
def test_graph_steps_match_eager_steps(kind):
    """The same losses, parameters, Adam moments and counter as eager steps on the GPU. The replay in Python runs
    the very kernels of the eager step (equal bit for bit); the graph's matrix products go through cuBLAS's gemm
    directly, which may pick another algorithm than CuPy's matmul: equal to float32 rounding, magnified by
    Adam's ≈ lr·sign(g) steps where a gradient is near zero."""
    eager = _run(kind, "eager")
    replay = _run(kind, "replay")
    graph = _run(kind, "graph")
    assert replay[0] == eager[0] and replay[3:] == eager[3:]
    for name in eager[1]:
        np.testing.assert_array_equal(replay[1][name], eager[1][name], err_msg=name)
    np.testing.assert_allclose(graph[0], eager[0], rtol=1e-5)
    assert graph[3:] == eager[3:]  # the counter moved by every step's draws; Adam counted every step
    for name in eager[1]:
        diff = np.abs(graph[1][name] - eager[1][name])
        assert diff.max() <= len(BATCHES) * 1e-3 * 1.001, name
        assert (diff <= 1e-5 + 1e-3 * np.abs(eager[1][name])).mean() >= 0.999, name


def test_sgd_graph_matches_eager():
    eager, graph = _run("gumbel_softmax", "eager", SGD), _run("gumbel_softmax", "graph", SGD)
    np.testing.assert_allclose(graph[0], eager[0], rtol=1e-5)
    for name in eager[1]:
        np.testing.assert_allclose(graph[1][name], eager[1][name], rtol=1e-4, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("make", [lambda ps, lr: SGD(ps, lr, momentum=0.9, nesterov=True, weight_decay=0.01),
                                  # a tenth of the rate: ascent with momentum at lr reaches inf by the fourth step
                                  # (and the comparisons NaN ≠ NaN); at lr / 10 the loss rises, finite, each step
                                  lambda ps, lr: SGD(ps, lr / 10, momentum=0.9, dampening=0.5, maximize=True),
                                  lambda ps, lr: Adam(ps, lr, weight_decay=0.1, maximize=True),
                                  lambda ps, lr: AdamW(ps, lr, weight_decay=0.5, amsgrad=True)],
                         ids=["sgd-nesterov-decay", "sgd-damped-maximize", "adam-l2-maximize", "adamw-amsgrad"])
def test_a_graph_with_the_optimizers_options_matches_eager(make):
    eager, replay, graph = (_run("gaussian", mode, make) for mode in ("eager", "replay", "graph"))
    assert replay[0] == eager[0]
    for name in eager[1]:
        np.testing.assert_array_equal(replay[1][name], eager[1][name], err_msg=name)
    np.testing.assert_allclose(graph[0], eager[0], rtol=1e-5)
    for name in eager[1]:  # (as test_graph_steps_match_eager_steps: Adam's steps ≈ lr·sign(g) magnify rounding)
        diff = np.abs(graph[1][name] - eager[1][name])
        assert (diff <= 1e-5 + 1e-3 * np.abs(eager[1][name])).mean() >= 0.999, name


def test_a_graph_s_adamw_takes_the_scheduler_s_learning_rate():
    """AdamW's decay 1 − lr·wd and Adam's step size follow the lr a scheduler sets between graph launches: the graph
    steps as the eager ones. With the captured decay (0.99 a step) instead of this step's (0.995, 0.9975, …) the
    parameters would end about 3% smaller, far outside the tolerance below."""
    make = lambda ps, lr: AdamW(ps, lr, weight_decay=10.0)  # noqa: E731
    eager, graph = _run("gaussian", "eager", make, decay_lr=True), _run("gaussian", "graph", make, decay_lr=True)
    np.testing.assert_allclose(graph[0], eager[0], rtol=1e-5)
    for name in eager[1]:
        diff = np.abs(graph[1][name] - eager[1][name])
        assert (diff <= 1e-5 + 1e-3 * np.abs(eager[1][name])).mean() >= 0.999, name


@pytest.mark.parametrize("make, change, refused", [
    (lambda ps: SGD(ps, lr=1e-3, momentum=0.9), {"weight_decay": 0.1}, "weight_decay"),
    (lambda ps: SGD(ps, lr=1e-3, momentum=0.9), {"lr": 1e-4}, "lr"),
    (lambda ps: Adam(ps, lr=1e-3), {"betas": (0.8, 0.999)}, "betas"),
    (lambda ps: AdamW(ps, lr=1e-3), {"lr": 1e-4}, None),  # read from memory: replayed
], ids=["sgd-decay", "sgd-lr", "adam-betas", "adamw-lr"])
def test_a_graph_refuses_an_optimizer_option_changed_since_the_capture(make, change, refused):
    model, rng = _model("gaussian"), Generator(1)
    opt = make(model.parameters())
    plan = compile_step(model, opt, lambda x: model.loss(x, rng), BATCHES[0]).capture()
    plan.step(BATCHES[1])
    opt.param_groups[0].update(change)
    if refused is None:
        plan.step(BATCHES[2])
        return
    with pytest.raises(PlanError, match=f"the optimizer's {refused} changed since the CUDA graph was captured"):
        plan.step(BATCHES[2])


def test_a_graph_refuses_an_sgd_first_step_loaded_after_the_capture():
    model, rng = _model("gaussian"), Generator(1)
    opt = SGD(model.parameters(), lr=1e-3, momentum=0.9, dampening=0.5)
    plan = compile_step(model, opt, lambda x: model.loss(x, rng), BATCHES[0]).capture()
    state = opt.state_dict()
    del state["0.momentum"]  # parameter 0 without a buffer (as torch's state without its momentum_buffer)
    opt.load_state_dict({**state, "0.step": 0})
    with pytest.raises(PlanError, match="momentum buffer would start at this step"):
        plan.step(BATCHES[1])


def test_a_graph_takes_a_scheduler_made_after_the_capture():
    """A scheduler adds ``initial_lr`` to each group: not an option of the kernels (the comparison of the groups'
    options was a KeyError), and AdamW's lr is read from memory: the graph steps on with the scheduler's lr."""
    from minivae.optim.lr_scheduler import ExponentialLR
    model, rng = _model("gaussian"), Generator(1)
    opt = AdamW(model.parameters(), lr=1e-3)
    plan = compile_step(model, opt, lambda x: model.loss(x, rng), BATCHES[0]).capture()
    scheduler = ExponentialLR(opt, gamma=0.9)
    for x in BATCHES[1:3]:
        plan.step(x)
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.9 ** 2)


def _late_start(mode):
    """Two eager steps in which the model's last parameter has no gradient (its Adam count stays 0, as torch's), then
    the other batches with every gradient: eagerly, or by a plan (its recorded step the first of them) replayed as a
    CUDA graph, whose Adam launches once per count (the late parameter's is 2 behind the others')."""
    model, rng = _model("gaussian"), Generator(5)
    opt = Adam(model.parameters(), lr=1e-3)
    late = model.parameters()[-1]
    for x in BATCHES[:2]:
        loss = model.loss(mv.tensor(x, device="cuda"), rng)
        opt.zero_grad()
        loss.backward()
        late.grad = None
        opt.step()
    before = late.numpy().copy()
    if mode == "eager":
        eager_losses(model, opt, rng, BATCHES[2:])
        return late.numpy() - before, opt
    plan = compile_step(model, opt, lambda x: model.loss(x, rng), BATCHES[2]).capture()
    for x in BATCHES[3:]:
        plan.step(x)
    return late.numpy() - before, opt, plan


def test_a_graph_gives_each_adam_launch_its_parameters_own_count():
    (eager, eager_opt), (graph, graph_opt, _) = _late_start("eager"), _late_start("graph")
    counts = [len(BATCHES)] * (len(eager_opt.params) - 1) + [len(BATCHES) - 2]
    assert eager_opt.param_steps == graph_opt.param_steps == counts
    assert (np.abs(graph - eager) <= 1e-2 * np.abs(eager) + 1e-7).mean() >= 0.99


def test_a_graph_refuses_step_counts_loaded_in_another_grouping():
    _, opt, plan = _late_start("graph")
    state = opt.state_dict()
    last = len(opt.params) - 1
    opt.load_state_dict({**state, f"{last}.step": state["0.step"]})  # the late parameter's count now the others'
    with pytest.raises(PlanError, match="per-parameter step counts"):
        plan.step(BATCHES[0])


def test_a_graph_step_draws_fresh_noise_and_allocates_nothing():
    import cupy
    model, rng = _model("gaussian"), Generator(1)
    plan = compile_step(model, Adam(model.parameters()), lambda x: model.loss(x, rng), BATCHES[0]).capture()
    plan.step(BATCHES[1])
    cupy.cuda.runtime.deviceSynchronize()
    pool = cupy.get_default_memory_pool()
    used, total, graph_pool = pool.used_bytes(), pool.total_bytes(), plan.graph.pool.total_bytes()
    losses = [plan.step(BATCHES[2]).item() for _ in range(3)]
    assert len(set(losses)) == 3  # the same batch, new noise (and new parameters) each step
    assert (pool.used_bytes(), pool.total_bytes(), plan.graph.pool.total_bytes()) == (used, total, graph_pool)


def test_a_graph_refuses_a_temperature_other_than_the_captured_one():
    model, rng = CategoricalVAE(x_dim=784, hidden=(16,), n_latent=3, n_categories=4, anneal_rate=0.5, rng=Generator(0),
                                device="cuda"), Generator(1)
    plan = compile_step(model, Adam(model.parameters()), lambda x, step: model.loss(x, rng, step=step), BATCHES[0],
                        step=0).capture()
    plan.step(BATCHES[1], step=0)
    with pytest.raises(PlanError, match="τ|temperature"):
        plan.step(BATCHES[1], step=1)


def captured_matmul(a, b):
    """minivae/_gpu/gemm.py's product of a and b captured into a CUDA graph on a stream of its own, as
    StepPlan.capture() captures a step: (the product's array, a launch() that runs the graph and waits)."""
    import cupy
    from minivae._gpu import gemm
    stream = cupy.cuda.Stream(non_blocking=True)

    class Capture:
        cublas_handle = gemm.bind(stream)
    _gpu.capture = Capture()
    try:
        with stream:
            stream.begin_capture()
            try:
                got = gemm.matmul(a, b)
            finally:
                graph = stream.end_capture()
    finally:
        _gpu.capture = None

    def launch():
        graph.launch(stream)
        stream.synchronize()
    return got, launch


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose_a,transpose_b", [(False, False), (True, False), (False, True), (True, True)])
def test_captured_gemm_equals_cupy_matmul(dtype, transpose_a, transpose_b):
    """minivae/_gpu/gemm.py inside a capture: row-major operands, transposed views (the VJP's xᵀ and Wᵀ)."""
    import cupy
    rng = np.random.default_rng(0)
    a = cupy.asarray(rng.standard_normal((37, 65) if not transpose_a else (65, 37)).astype(dtype))
    b = cupy.asarray(rng.standard_normal((65, 19) if not transpose_b else (19, 65)).astype(dtype))
    a, b = (a.T if transpose_a else a), (b.T if transpose_b else b)
    want = cupy.matmul(a, b)
    got, launch = captured_matmul(a, b)
    launch()
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(got.get(), want.get(), rtol=64 * eps, atol=64 * eps)


def test_cli_train_with_graph_on_the_gpu(tmp_path):
    from minivae.cli import main
    args = ["train", "--model", "gaussian", "--limit", "300", "--batch-size", "64", "--epochs", "1", "--hidden", "32",
            "--device", "cuda"]
    assert main([*args, "--out", str(tmp_path / "eager")]) == 0
    assert main([*args, "--graph", "--out", str(tmp_path / "graph")]) == 0
    eager, graph = (np.load(tmp_path / d / "checkpoint.npz") for d in ("eager", "graph"))
    rows = [eval(str(f["meta/metrics"]))[1] for f in (eager, graph)]  # noqa: S307
    assert abs(float(rows[0][2]) - float(rows[1][2])) < 1e-3 * abs(float(rows[0][2]))  # the epoch's mean loss
