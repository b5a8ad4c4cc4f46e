"""Step plans (minivae.plan): a recorded step replays the eager step bit for bit, or refuses."""
import gc
import os
import tracemalloc
import weakref

import numpy as np
import pytest

import minivae as mv
from minivae import _pool, ops
from minivae._backend import use_numba
from minivae.models import BernoulliVAE, CategoricalVAE, GaussianVAE
from minivae.optim import SGD, Adam, AdamW
from minivae.plan import PlanError, compile_step, live
from minivae.random import Generator
from minivae.training import train
from hypothesis import given, settings, strategies as st
from tests.test_ops_gradcheck import DOMAINS
from tests.test_pool import handler

X_DIM = 25
BATCHES = [(np.random.default_rng(i).random((6, X_DIM)) < 0.4).astype(np.float32) for i in range(4)]

MODELS = {
    "gaussian": lambda: GaussianVAE(X_DIM, (10,), 3, rng=Generator(0)),
    "gaussian-likelihood": lambda: GaussianVAE(X_DIM, (10,), 3, likelihood="gaussian", rng=Generator(0)),
    "gumbel_softmax": lambda: CategoricalVAE(X_DIM, (10,), 3, 4, anneal_rate=0.2, rng=Generator(0)),
    "straight_through": lambda: CategoricalVAE(X_DIM, (10,), 3, 4, estimator="straight_through", anneal_rate=0.2,
                                               rng=Generator(0)),
    "reinforce": lambda: CategoricalVAE(X_DIM, (10,), 3, 4, estimator="reinforce", rng=Generator(0)),
    "reinforce+nvil": lambda: CategoricalVAE(X_DIM, (10,), 3, 4, estimator="reinforce", baseline_hidden=5,
                                             rng=Generator(0)),
    "bernoulli-gumbel_softmax": lambda: BernoulliVAE(X_DIM, (10,), 5, anneal_rate=0.2, rng=Generator(0)),
    "bernoulli-straight_through": lambda: BernoulliVAE(X_DIM, (10,), 5, estimator="straight_through", anneal_rate=0.2,
                                                       rng=Generator(0)),
    "bernoulli-reinforce": lambda: BernoulliVAE(X_DIM, (10,), 5, estimator="reinforce", rng=Generator(0)),
    "bernoulli-reinforce+nvil": lambda: BernoulliVAE(X_DIM, (10,), 5, estimator="reinforce", baseline_hidden=5,
                                                     rng=Generator(0)),
    "rebar": lambda: CategoricalVAE(X_DIM, (10,), 3, 4, estimator="rebar", anneal_rate=0.2, rebar_eta=0.7,
                                    rng=Generator(0)),
    "bernoulli-rebar": lambda: BernoulliVAE(X_DIM, (10,), 5, estimator="rebar", anneal_rate=0.2, rng=Generator(0)),
}


def _beta(t):
    return 0.25 + 0.25 * t  # a KL weight that changes every step, as a warm-up's does every epoch


def eager_run(make, optimizer=Adam, clip=None):
    model, rng = make(), Generator(9)
    opt = optimizer(model.parameters(), lr=0.05)
    losses = []
    for t, x in enumerate(BATCHES):
        loss = model.loss(mv.tensor(x), rng, step=t, beta=_beta(t))
        opt.zero_grad()
        loss.backward()
        if clip:
            mv.optim.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(loss.data.copy())
    return model, opt, rng, losses


def plan_run(make, optimizer=Adam, clip=None):
    model, rng = make(), Generator(9)
    opt = optimizer(model.parameters(), lr=0.05)
    plan = compile_step(model, opt, lambda x, step, beta: model.loss(x, rng, step=step, beta=beta), BATCHES[0],
                        clip=clip, step=0, beta=_beta(0))
    losses = [plan.loss.data.copy()]
    for t, x in enumerate(BATCHES[1:], 1):
        losses.append(plan.step(x, step=t, beta=_beta(t)).data.copy())
    return model, opt, rng, losses, plan


def assert_same_run(eager, replayed):
    (m1, o1, r1, l1), (m2, o2, r2, l2) = eager, replayed[:4]
    for (name, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for (name, a), b in zip(o1.state_dict().items(), o2.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(np.array(l1), np.array(l2))
    assert r1.counter == r2.counter
    assert np.array_equal(np.asarray(getattr(m1, "baseline", 0.0)), np.asarray(getattr(m2, "baseline", 0.0)))


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("name", list(MODELS))
def test_replayed_steps_equal_eager_steps_bit_for_bit(name, numba):
    """Parameters, Adam's moments, losses, the Philox counter and the REINFORCE baseline after 4 steps (1
    recorded, 3 replayed) equal 4 eager steps exactly; τ anneals (rate 0.2) and β changes every step,
    so a live value replayed as a constant would show."""
    with use_numba(numba):
        assert_same_run(eager_run(MODELS[name]), plan_run(MODELS[name]))


def test_replay_with_sgd_and_clipping_equals_eager():
    assert_same_run(eager_run(MODELS["gumbel_softmax"], SGD, clip=0.5), plan_run(MODELS["gumbel_softmax"], SGD, clip=0.5))


OPTIONS = {
    "sgd-nesterov-decay": lambda ps, lr: SGD(ps, lr, momentum=0.9, nesterov=True, weight_decay=0.01),
    "sgd-damped-maximize": lambda ps, lr: SGD(ps, lr, momentum=0.5, dampening=0.3, weight_decay=0.1, maximize=True),
    "adam-l2-maximize": lambda ps, lr: Adam(ps, lr, weight_decay=0.1, maximize=True),
    "adamw-amsgrad": lambda ps, lr: AdamW(ps, lr, weight_decay=0.5, amsgrad=True),
}


@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("optimizer", list(OPTIONS))
def test_replays_with_the_optimizers_options_equal_eager_steps_bit_for_bit(optimizer, numba):
    """Weight decay (L2 and AdamW's), maximize, SGD's dampening (whose first step, the recorded one, is undamped)
    and Nesterov, amsgrad: the replayed steps are the eager ones, parameters and optimizer state exactly."""
    with use_numba(numba):
        assert_same_run(eager_run(MODELS["gaussian"], OPTIONS[optimizer]), plan_run(MODELS["gaussian"], OPTIONS[optimizer]))


def test_each_replay_draws_fresh_noise_and_moves_the_parameters():
    """Replaying the same batch twice gives two different losses (new noise, new parameters); with
    the noise of a constant counter (a replay that forgot to redraw) the Gaussian loss would repeat
    given the parameters, which the eager comparison above catches; here: the counter moves by the
    draw's blocks at each replay."""
    model, rng = MODELS["gaussian"](), Generator(1)
    plan = compile_step(model, Adam(model.parameters()), lambda x: model.loss(x, rng), BATCHES[0])
    before = rng.counter
    a = plan.step(BATCHES[0]).item()
    assert rng.counter == 2 * before  # one normal draw of 6×3 values a step, the same as the recorded step's
    b = plan.step(BATCHES[0]).item()
    assert a != b


def _linear_runs(loss_fn):
    """Four SGD steps of a 4→1 dense layer on batches with signs of both kinds, eagerly and as a plan recorded on the
    first and replayed on the others: the two weights."""
    batches = [np.random.default_rng(i).standard_normal((3, 4)).astype(np.float32) for i in range(4)]
    weights = []
    for replay in (False, True):
        mv.manual_seed(0)
        layer = mv.nn.Linear(4, 1)
        opt = SGD(layer.parameters(), lr=0.1)
        if replay:
            plan = compile_step(layer, opt, loss_fn(layer), batches[0])
            for x in batches[1:]:
                plan.step(x)
        else:
            for x in batches:
                opt.zero_grad()
                loss_fn(layer)(mv.tensor(x)).backward()
                opt.step()
        weights.append(layer.weight.numpy().copy())
    return weights


def test_an_in_place_write_replays_with_this_step_s_index_and_on_a_new_array():
    """``x[mask] = v`` with a mask made from the batch writes where this replay's mask says (an index baked in at
    recording wrote the first batch's places), and an array made by ``zeros`` inside the step is a new one at each
    replay (a constant one would keep the sums of every replay before): the same weights as eager steps."""
    def masked(layer):
        def f(x):
            xc = x * 1.0
            xc[x > 0] = 0.0
            return (layer(xc) ** 2).mean()
        return f

    def accumulated(layer):
        def f(x):
            buffer = mv.zeros(x.shape)
            buffer += x
            return (layer(buffer) ** 2).mean()
        return f
    for loss_fn in (masked, accumulated):
        eager, replayed = _linear_runs(loss_fn)
        np.testing.assert_array_equal(eager, replayed, err_msg=loss_fn.__name__)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the pool's callback
def test_a_refusal_raised_inside_numpy_reaches_the_caller():
    """numpy.float32(beta) converts the live β inside NumPy, which frees memory of the plan's pool while the
    refusal is pending: the caller must still get the PlanError that says why, not a SystemError."""
    model, rng = MODELS["gaussian"](), Generator(1)
    with pytest.raises(PlanError, match="beta: Python arithmetic"):
        compile_step(model, Adam(model.parameters()), lambda x, beta: model.loss(x, rng) * np.float32(beta), BATCHES[0],
                     beta=1.0)


def test_live_scalars_reach_the_step_and_python_arithmetic_on_them_is_refused():
    model, rng = MODELS["gaussian"](), Generator(1)
    opt = Adam(model.parameters())
    with pytest.raises(PlanError, match="beta: Python arithmetic"):
        compile_step(model, opt, lambda x, beta: model.loss(x, rng, beta=beta * 2), BATCHES[0], beta=1.0)
    with pytest.raises(PlanError, match="step: Python arithmetic"):
        compile_step(model, opt, lambda x, step: model.loss(x, rng) * (step > 3), BATCHES[0], step=0)
    # live(fn, scalar) is how a value computed from a scalar stays live
    plan = compile_step(model, opt, lambda x, step: model.loss(x, rng) * live(lambda s: 2.0 ** s, step), BATCHES[0],
                        step=0)
    one = model.loss(mv.tensor(BATCHES[1]), Generator(5)).item()  # the loss's scale, for the ratio below
    assert abs(plan.step(BATCHES[1], step=3).item()) > 4 * abs(one)


def test_reading_a_value_while_recording_is_refused():
    model, rng = MODELS["gaussian"](), Generator(1)
    opt = Adam(model.parameters())

    def branchy(x):
        loss = model.loss(x, rng)
        return loss * 2 if loss.item() > 0 else loss
    with pytest.raises(PlanError, match=r"\.item\(\)"):
        compile_step(model, opt, branchy, BATCHES[0])
    with pytest.raises(PlanError, match="bool"):
        compile_step(model, opt, lambda x: model.loss(x, rng) if (x.sum() > 0) else None, BATCHES[0])
    with pytest.raises(PlanError, match="Generator made inside the recorded step"):
        compile_step(model, opt, lambda x: model.loss(x, Generator(7)), BATCHES[0])
    with pytest.raises(PlanError, match="Generator.bernoulli"):  # its comparison would be replayed as a constant
        compile_step(model, opt, lambda x: model.loss(mv.tensor(rng.bernoulli(x.data)), rng), BATCHES[0])
    from minivae import engine
    assert engine._recorder is None  # a refused recording leaves no recorder behind


def test_a_data_dependent_shape_is_refused_at_replay():
    model, rng = MODELS["gaussian"](), Generator(1)

    def masked(x):  # how many pixels are on depends on the batch
        on = ops.getitem(x.reshape(-1), x.reshape(-1) > 0.5)
        return model.loss(x, rng) + on.sum() * 0.0
    plan = compile_step(model, Adam(model.parameters()), masked, BATCHES[0])
    with pytest.raises(PlanError, match="data-dependent shape"):
        plan.step(BATCHES[1])


def test_a_batch_of_another_shape_or_an_unknown_scalar_is_refused():
    model, rng = MODELS["gaussian"](), Generator(1)
    plan = compile_step(model, Adam(model.parameters()), lambda x, beta: model.loss(x, rng, beta=beta), BATCHES[0],
                        beta=1.0)
    with pytest.raises(PlanError, match=r"shape \(6, 25\).*got \(5, 25\)"):
        plan.step(BATCHES[1][:5])
    with pytest.raises(PlanError, match="float32.*float64"):
        plan.step(BATCHES[1].astype(np.float64))
    with pytest.raises(PlanError, match=r"unknown scalars \['step'\]"):
        plan.step(BATCHES[1], step=3)


@pytest.mark.skipif(not _pool.available, reason="NumPy's allocator cannot be set from this Python")
@pytest.mark.parametrize("numba", [False, True], ids=["numpy", "numba"])
@pytest.mark.parametrize("name", MODELS)
def test_a_replay_allocates_nothing(name, numba):
    """From the first replay on, a replay takes no memory from the system: every array its ops, draws
    and optimizer make (hundreds) comes from the plan's pool, the same number at every replay (Numba's
    kernels write into arrays that their Python wrappers make). A caller who keeps each step's loss while the next
    runs, as a training loop does, costs one block for it, once."""
    with use_numba(numba):
        model, rng = MODELS[name](), Generator(9)
        # an eager step first: a kernel module imported (or a Numba kernel loaded) for the first time in this process
        # inside the recorded step would keep pool blocks its module-level arrays took, once (the test run alone)
        model.loss(BATCHES[0], Generator(1)).backward()
        plan = compile_step(model, Adam(model.parameters()), lambda x: model.loss(x, rng), BATCHES[0])
        taken, served = plan.pool.allocations, []
        for t in range(10):
            before = plan.pool.reuses
            plan.step(BATCHES[t % 4])
            served.append(plan.pool.reuses - before)
        assert plan.pool.allocations == taken
        assert served == [served[0]] * 10 and served[0] > 50
        loss = plan.step(BATCHES[0])
        for t in range(5):
            loss = plan.step(BATCHES[t % 4])
        assert plan.pool.allocations == taken + 1
        assert handler(loss.data) == _pool.NAME
        assert all(handler(p.grad) == _pool.NAME for p in model.parameters())


def test_a_replay_keeps_no_array_of_the_step_alive():
    """After a replay, the step's activations and gradients are freed (as eager frees its graph): over
    100 replays the memory NumPy holds for arrays (tracemalloc's NumPy domain) does not grow by a byte."""
    model, rng = MODELS["gumbel_softmax"](), Generator(1)
    plan = compile_step(model, Adam(model.parameters()), lambda x: model.loss(x, rng), BATCHES[0])
    plan.step(BATCHES[1])
    assert sum(v is not None for v in plan.values) < len(plan.values) // 2

    def array_bytes():
        gc.collect()
        arrays = tracemalloc.take_snapshot().filter_traces([tracemalloc.DomainFilter(True, np.lib.tracemalloc_domain)])
        return sum(stat.size for stat in arrays.statistics("filename"))
    tracemalloc.start()
    try:
        plan.step(BATCHES[2])
        first = array_bytes()
        for _ in range(100):
            plan.step(BATCHES[3])
        later = array_bytes()
    finally:
        tracemalloc.stop()
    assert later == first


def test_the_recorded_step_is_one_real_step():
    """compile_step's own step moves the parameters exactly as the first eager step."""
    m1, _, _, l1 = eager_run(MODELS["reinforce"])
    model, rng = MODELS["reinforce"](), Generator(9)
    opt = Adam(model.parameters(), lr=0.05)
    plan = compile_step(model, opt, lambda x, step, beta: model.loss(x, rng, step=step, beta=beta), BATCHES[0],
                        step=0, beta=_beta(0))
    np.testing.assert_array_equal(plan.loss.data, l1[0])
    assert not any(np.array_equal(a, b) for a, b in zip(model.state_dict().values(), m1.state_dict().values()))
    assert opt.steps == 1 and plan.replays == 0
    assert plan.loss._ctx is None  # the recorded step's graph (every activation) is not kept


def test_a_plan_refuses_to_replay_once_a_parameter_s_array_or_the_optimizer_s_state_is_replaced():
    """The tape reads the parameters' arrays and the optimizer's buffers by reference; once one is replaced (by hand
    here; Module.to() in tests/test_device.py) a replay would go on with the old ones, silently. step() refuses,
    naming the parameter, and runs again once the recorded array is back. Loading a state dict writes in place:
    the plan replays on, from the loaded values (the same losses as a plan of a model loaded before it records)."""
    model, rng = MODELS["gaussian"](), Generator(1)
    opt = Adam(model.parameters())
    plan = compile_step(model, opt, lambda x: model.loss(x, rng), BATCHES[0])
    p = model.decoder[2].bias
    recorded = p.data
    p.data = p.data.copy()
    with pytest.raises(PlanError, match=r"parameter 'decoder\.2\.bias': its array is not the one this plan recorded "
                                        r"\(recorded: float32 \(25,\) on cpu, now: float32 \(25,\) on cpu\); it was "
                                        "replaced since it was recorded"):
        plan.step(BATCHES[1])
    assert plan.replays == 0
    p.data = recorded
    plan.step(BATCHES[1])
    params = [q.data for q in opt.params]
    state = opt.state_dict()
    opt._flatten()  # the optimizer's buffers laid out again (as its step() does after a move) …
    opt.load_state_dict(state)
    for q, a in zip(opt.params, params):  # … while each parameter keeps the array the plan recorded
        q.data = a
    with pytest.raises(PlanError, match="the optimizer's state buffers are not the ones this plan recorded"):
        plan.step(BATCHES[1])
    assert plan.replays == 1


def test_a_plan_survives_load_state_dict_and_refuses_a_parameter_replaced_inside_its_recorded_step():
    """Module.load_state_dict and Optimizer.load_state_dict copy in place: a plan replays on from the loaded values,
    as eager steps of a model loaded alike do (bit for bit). A parameter replaced by hand before compile_step is copied
    back into the optimizer's buffer by the recorded step's update: refused there, at compile time."""
    source, rng = MODELS["gaussian"](), Generator(2)
    source_opt = Adam(source.parameters())
    source.loss(mv.tensor(BATCHES[3]), rng).backward()
    source_opt.step()
    model, rng = MODELS["gaussian"](), Generator(1)
    opt = Adam(model.parameters())
    plan = compile_step(model, opt, lambda x: model.loss(x, rng), BATCHES[0])
    eager, eager_rng = MODELS["gaussian"](), Generator(0)
    eager_opt = Adam(eager.parameters())
    for m, o in ((model, opt), (eager, eager_opt)):
        m.load_state_dict(source.state_dict())
        o.load_state_dict(source_opt.state_dict())
    eager_rng.load_state_dict(rng.state_dict())
    for x in BATCHES[1:]:
        replayed = plan.step(x).item()
        eager_opt.zero_grad()
        loss = eager.loss(mv.tensor(x), eager_rng)
        loss.backward()
        eager_opt.step()
        assert replayed == loss.item()
    model = MODELS["gaussian"]()
    opt = Adam(model.parameters())
    model.encoder[0].weight.data = model.encoder[0].weight.data.copy()
    with pytest.raises(PlanError, match=r"parameter 'encoder\.0\.weight'.* replaced during the recorded step"):
        compile_step(model, opt, lambda x: model.loss(x, rng), BATCHES[0])


def test_plans_do_not_nest():
    model, rng = MODELS["gaussian"](), Generator(1)
    opt = Adam(model.parameters())

    def nested(x):
        compile_step(model, opt, lambda y: model.loss(y, rng), BATCHES[0])
    with pytest.raises(PlanError, match="do not nest"):
        compile_step(model, opt, nested, BATCHES[0])


@pytest.mark.parametrize("model", ["gaussian", "reinforce", "bernoulli-straight_through"])
def test_training_with_graph_gives_the_same_checkpoint(tmp_path, model):
    """minivae train --graph: the same parameters, optimizer state, RNG state and losses as the eager loop,
    with a KL warm-up (β changes per epoch), clipping, and a last batch of another size (taken eagerly)."""
    rng = np.random.default_rng(0)
    data = {"train": (rng.random((40, X_DIM)) < 0.3).astype(np.float32),
            "valid": (rng.random((10, X_DIM)) < 0.3).astype(np.float32)}
    out = {}
    for graph in (False, True):
        folder = str(tmp_path / f"graph{graph}")
        train(MODELS[model](), data, folder, epochs=2, batch_size=16, lr=0.02, seed=3, clip=2.0, warmup_epochs=2,
              graph=graph, log=lambda *a: None)
        out[graph] = dict(np.load(os.path.join(folder, "checkpoint.npz")))
    for key, value in out[False].items():
        if key.startswith(("model/", "optim/", "meta/rng", "meta/baseline")):
            np.testing.assert_array_equal(value, out[True][key], err_msg=key)
    losses = [[row[2] for row in eval(str(out[g]["meta/metrics"]))[1:]] for g in (False, True)]  # noqa: S307
    assert losses[0] == losses[1]


def test_plan_records_every_op_once():
    """The tape holds each op's forward and VJP: no fewer (a skipped op would replay stale values) —
    a forward per Function.apply and a VJP per node that needs one, plus draws and the optimizer."""
    model, rng = MODELS["gaussian"](), Generator(1)
    applies = []
    original = mv.Function.apply.__func__

    def counting(cls, *a, **k):
        applies.append(cls)
        return original(cls, *a, **k)
    mv.Function.apply = classmethod(counting)
    try:
        plan = compile_step(model, Adam(model.parameters()), lambda x: model.loss(x, rng), BATCHES[0])
    finally:
        mv.Function.apply = classmethod(original)
    assert len(plan) > 2 * len(applies)  # forwards + VJPs + the draw + the optimizer
    ref = weakref.ref(plan.values[0])
    assert ref() is not None  # the static batch buffer stays


@pytest.mark.parametrize("name", sorted(DOMAINS))
@settings(max_examples=4, deadline=None)
@given(data=st.data())
def test_every_op_replays_as_it_ran(name, data):
    """Each registered op (its gradcheck domain's function, float64) in a loss of random weights, trained
    by SGD: two replays of the recorded step give the parameters of two more eager steps, bit for bit. An
    op whose forward or VJP kept state between calls, or read something the tape does not bind, fails here."""
    fn, inputs, _ = data.draw(DOMAINS[name])
    weights = {}

    def run(replayed):
        params = [mv.tensor(x.copy(), requires_grad=x.dtype.kind == "f") for x in inputs]
        opt = SGD([p for p in params if p.requires_grad], lr=1e-3)

        def loss_fn(_):
            out = fn(*params)
            w = weights.setdefault("w", np.random.default_rng(1).normal(size=out.shape))
            return (out * w).sum()
        three_steps(opt, loss_fn, replayed)
        return [p.numpy() for p in params]
    for a, b in zip(run(False), run(True)):
        np.testing.assert_array_equal(a, b)


def batch_steps(model, opt, loss_fn, batches, replayed):
    """One step of ``opt`` on ``loss_fn(x)`` per batch x: eager, or the first recorded by compile_step and the others
    replayed."""
    if replayed:
        plan = compile_step(model, opt, loss_fn, batches[0])
        for x in batches[1:]:
            plan.step(x)
    else:
        for x in batches:
            opt.zero_grad()
            loss_fn(mv.tensor(x)).backward()
            opt.step()


def three_steps(opt, loss_fn, replayed):
    """Three ``batch_steps`` on ``loss_fn(_)``, a loss of the optimizer's parameters alone."""
    batch_steps(_Device("cpu"), opt, loss_fn, [np.zeros(1)] * 3, replayed)


class _Device:
    """What compile_step asks of a model: its device."""

    def __init__(self, device):
        self.device = device


def test_a_plan_refuses_a_param_group_added_since_it_was_recorded_naming_it():
    """add_param_group lays the optimizer's parameters out again (new flat buffers): the tape's arrays are stale."""
    from minivae.models import GaussianVAE
    from minivae.optim import AdamW

    model, rng = GaussianVAE(8, (6,), 2, rng=Generator(0)), Generator(1)
    params = model.parameters()
    opt = AdamW(params[:-1], lr=1e-3)
    x = (np.random.default_rng(0).random((4, 8)) > 0.5).astype(np.float32)
    plan = mv.compile_step(model, opt, lambda x: model.loss(x, rng), x)
    plan.step(x)
    opt.add_param_group({"params": [params[-1]]})
    with pytest.raises(PlanError, match="adding a param group to the optimizer"):
        plan.step(x)


def test_a_cuda_graph_compares_only_the_optimizers_own_options():
    """A scheduler made after a capture adds ``initial_lr`` (OneCycleLR ``max_lr`` and more) to each group: not an
    option the kernels take, so not a change the graph refuses (the comparison was a KeyError)."""
    from minivae._gpu.graph import _options
    from minivae.optim import SGD
    from minivae.optim.lr_scheduler import OneCycleLR

    opt = SGD([mv.tensor(np.ones(3), requires_grad=True)], lr=0.1, momentum=0.9)
    captured = _options(opt)
    OneCycleLR(opt, max_lr=0.1, total_steps=10)
    assert set(opt.param_groups[0]) - set(captured[0]) >= {"initial_lr", "max_lr"}
    assert sorted(_options(opt)[0]) == sorted(captured[0]) == sorted(opt.defaults)
