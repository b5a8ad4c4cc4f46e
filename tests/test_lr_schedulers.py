"""Every learning-rate scheduler against torch.optim.lr_scheduler (2.13), the reference: the lrs of two param groups
step by step exactly (==: the same chainable rule, the same operations in the same order), get_last_lr() and
last_epoch, with and without a change of an lr by hand between steps (which the chainable rules keep and a closed
form would undo), the parameters of an SGD run under the schedule (float64, to 1e-12), and a run resumed from the
state_dicts (optimizer and scheduler) continuing exactly as the uninterrupted one and as torch's resumed run."""
import copy

import numpy as np
import pytest

import minivae as mv

torch = pytest.importorskip("torch")


def _l(lib):
    return lib.optim.lr_scheduler


SCHEDULES = {
    "lambda": lambda lib, o: [_l(lib).LambdaLR(o, lambda e: 0.9 ** e + 1 / (e + 1))],
    "lambda-per-group": lambda lib, o: [_l(lib).LambdaLR(o, [lambda e: 0.9 ** e, lambda e: 1 / (e + 1)])],
    "multiplicative": lambda lib, o: [_l(lib).MultiplicativeLR(o, lambda e: 0.95 if e % 2 else 0.8)],
    "multistep": lambda lib, o: [_l(lib).MultiStepLR(o, [2, 5, 5, 9], gamma=0.3)],
    "exponential": lambda lib, o: [_l(lib).ExponentialLR(o, 0.9)],
    "cosine": lambda lib, o: [_l(lib).CosineAnnealingLR(o, 5, eta_min=0.01)],  # 14 steps: through the bottom and up
    "linear": lambda lib, o: [_l(lib).LinearLR(o, 0.25, 0.9, total_iters=6)],
    "constant": lambda lib, o: [_l(lib).ConstantLR(o, 0.4, total_iters=4)],
    "polynomial": lambda lib, o: [_l(lib).PolynomialLR(o, total_iters=8, power=2.0)],
    "steplr": lambda lib, o: [_l(lib).StepLR(o, 3, gamma=0.5)],
    "linear-then-cosine-chained": lambda lib, o: [_l(lib).LinearLR(o, 0.5, total_iters=3), _l(lib).CosineAnnealingLR(o, 10)],
    "chained": lambda lib, o: [_l(lib).ChainedScheduler([_l(lib).ExponentialLR(o, 0.9), _l(lib).StepLR(o, 3, 0.5)])],
    "sequential": lambda lib, o: [_l(lib).SequentialLR(o, [_l(lib).LinearLR(o, 0.1, total_iters=4),
                                                          _l(lib).CosineAnnealingLR(o, 6, 0.001),
                                                          _l(lib).ExponentialLR(o, 0.9)], milestones=[4, 9])],
    "onecycle": lambda lib, o: [_l(lib).OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=14)],
    "onecycle-three-phase-linear": lambda lib, o: [_l(lib).OneCycleLR(o, max_lr=0.3, total_steps=14, three_phase=True,
                                                                      anneal_strategy="linear", base_momentum=0.6)],
}
BY_HAND = (3, 0.05)  # group 0's lr set by hand after this step
STEPS = 14


def _run(lib, make, by_hand=None, start=None):
    """Per step (the optimizer's, then each scheduler's): the groups' lrs and momenta (OneCycleLR cycles them),
    each scheduler's get_last_lr() and last_epoch; and the parameters at the end. Two groups (lr 1 and 0.2,
    momentum 0.5), one float64 parameter each, gradient 2p + 1. ``start`` = (k, states): after k steps everything
    is made afresh and loaded from states (parameters, the optimizer's state, the schedulers'), as a resumed run."""
    def fresh(values=((0.5,), (-1.0,))):
        ps = [lib.tensor(np.array(v, np.float64), requires_grad=True) for v in values]
        opt = lib.optim.SGD([{"params": [ps[0]], "lr": 1.0}, {"params": [ps[1]], "lr": 0.2}], lr=1.0, momentum=0.5)
        return ps, opt, make(lib, opt)
    ps, opt, schedulers = fresh()
    trace, states = [[[g["lr"] for g in opt.param_groups]]], None
    for i in range(STEPS):
        if start is not None and i == start[0]:
            ps, opt, schedulers = fresh(start[1][0])  # (the schedulers first: made, they set the lrs, as torch's)
            opt.load_state_dict(start[1][1])
            for s, state in zip(schedulers, start[1][2]):
                s.load_state_dict(copy.deepcopy(state))
        for p in ps:
            p.grad = None
            (p * p + p).sum().backward()
        opt.step()
        for s in schedulers:
            s.step()
        if by_hand and i == by_hand[0]:
            opt.param_groups[0]["lr"] = by_hand[1]
        trace.append([[(g["lr"], g["momentum"]) for g in opt.param_groups]]
                     + [[s.get_last_lr(), getattr(s, "last_epoch", None)] for s in schedulers])
        if i == 5:
            states = copy.deepcopy(([np.array(p.detach().numpy()) for p in ps],
                                    opt.state_dict(**({"param_groups": True} if lib is mv else {})),
                                    [s.state_dict() for s in schedulers]))
    return trace, states, np.concatenate([np.array(p.detach().numpy()) for p in ps])


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_each_scheduler_steps_the_lrs_of_two_groups_as_torch(name):
    for by_hand in ((None,) if name.startswith("onecycle") else (None, BY_HAND)):  # (OneCycleLR sets, not chains)
        ours, _, ours_p = _run(mv, SCHEDULES[name], by_hand)
        theirs, _, theirs_p = _run(torch, SCHEDULES[name], by_hand)
        assert ours == theirs, by_hand
        np.testing.assert_allclose(ours_p, theirs_p, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_a_run_resumed_from_the_state_dicts_continues_exactly_as_torchs(name):
    """Made afresh after 6 steps and loaded: the same lrs, counters and parameters as the uninterrupted run (bit for
    bit), and the same lrs and counters as torch resumed the same way."""
    by_hand = None if name.startswith("onecycle") else BY_HAND
    whole, states, params = _run(mv, SCHEDULES[name], by_hand)
    resumed, _, resumed_params = _run(mv, SCHEDULES[name], by_hand, start=(6, states))
    _, torch_states, _ = _run(torch, SCHEDULES[name], by_hand)
    torch_resumed, _, _ = _run(torch, SCHEDULES[name], by_hand, start=(6, torch_states))
    assert resumed == whole == torch_resumed
    np.testing.assert_array_equal(resumed_params, params)


def test_the_cosine_schedule_is_torchs_recursion_not_the_closed_form():
    """torch's step() multiplies the current lr by (1 + cos(πt/T))/(1 + cos(π(t−1)/T)): to rounding the closed form
    η_min + (base − η_min)(1 + cos(πt/T))/2, but not bit for bit; minivae's lrs are torch's own bits, and past T the
    schedule climbs back (the recursion's special step at t = T + 1), as torch's."""
    ours, _, _ = _run(mv, SCHEDULES["cosine"])
    lrs = np.array([step[0][0][0] for step in ours[1:]])
    t = np.arange(1, STEPS + 1)
    closed = 0.01 + (1.0 - 0.01) * (1 + np.cos(np.pi * t / 5)) / 2
    np.testing.assert_allclose(lrs, closed, rtol=1e-12)
    assert lrs[5] > lrs[4] and np.isclose(lrs[4], 0.01)  # the bottom at t = 5, up again after


class Halving:
    """A callable object with state: state_dict keeps its __dict__ (torch's), load_state_dict restores it."""

    def __init__(self):
        self.calls = 0

    def __call__(self, epoch):
        self.calls += 1
        return 0.5 ** epoch


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # (torch's, stepped without an optimizer step)
def test_lambda_state_keeps_a_callable_objects_attributes_and_none_for_a_function():
    for lib in (mv, torch):
        p = lib.tensor(np.zeros(1), requires_grad=True)
        opt = lib.optim.SGD([{"params": [p]}, {"params": [lib.tensor(np.zeros(1), requires_grad=True)]}], lr=1.0)
        s = _l(lib).LambdaLR(opt, [Halving(), lambda e: 1.0])
        s.step()
        s.step()
        state = s.state_dict()
        assert state["lr_lambdas"] == [{"calls": 3}, None], lib.__name__
        fresh_opt = lib.optim.SGD([{"params": [p]}, {"params": [lib.tensor(np.zeros(1), requires_grad=True)]}], lr=1.0)
        fresh = _l(lib).LambdaLR(fresh_opt, [Halving(), lambda e: 1.0])
        fresh.load_state_dict(state)
        assert fresh.lr_lambdas[0].calls == 3 and fresh.last_epoch == 2
        fresh.step()
        assert fresh_opt.param_groups[0]["lr"] == 0.125


@pytest.mark.parametrize("make, problem", [
    (lambda o: _l(mv).StepLR(o, 0), r"step_size must be an integer >= 1, got 0"),
    (lambda o: _l(mv).MultiStepLR(o, [2, 1.5]), r"each milestone must be an integer >= 0, got 1\.5"),
    (lambda o: _l(mv).ExponentialLR(o, float("nan")), r"gamma must be a finite number, got nan"),
    (lambda o: _l(mv).CosineAnnealingLR(o, 0), r"T_max must be an integer >= 1, got 0"),
    (lambda o: _l(mv).CosineAnnealingLR(o, 5, eta_min=-1.0), r"eta_min must be a finite number >= 0, got -1\.0"),
    (lambda o: _l(mv).LinearLR(o, start_factor=0.0), r"start_factor must be a finite number in \(0, 1\], got 0\.0"),
    (lambda o: _l(mv).LinearLR(o, end_factor=1.5), r"end_factor must be a finite number in \[0, 1\], got 1\.5"),
    (lambda o: _l(mv).ConstantLR(o, factor=2.0), r"factor must be a finite number in \(0, 1\], got 2\.0"),
    (lambda o: _l(mv).LambdaLR(o, 0.5), r"lr_lambda must be a function of the epoch, got float"),
    (lambda o: _l(mv).LambdaLR(o, [lambda e: 1.0] * 3), r"expected 2 lr_lambdas \(one per param group\), got 3"),
    (lambda o: _l(mv).SequentialLR(o, [_l(mv).ExponentialLR(o, 0.9)], milestones=[3]),
     r"one milestone fewer than schedulers, got 1 schedulers and 1 milestones"),
    (lambda o: _l(mv).SequentialLR(o, [_l(mv).ReduceLROnPlateau(o)], milestones=[]), r"schedulers\[0\] is a ReduceLROnPlateau"),
    (lambda o: _l(mv).ChainedScheduler([_l(mv).ExponentialLR(mv.optim.SGD([mv.tensor([1.0], requires_grad=True)]), 0.9)],
                                       optimizer=o), r"schedulers\[0\] \(ExponentialLR\) schedules another optimizer"),
    (lambda o: _l(mv).OneCycleLR(o, 1.0), r"needs total_steps, or epochs and steps_per_epoch"),
    (lambda o: _l(mv).OneCycleLR(o, 1.0, total_steps=10, anneal_strategy="cosine"), r"anneal_strategy must be 'cos' or 'linear'"),
    (lambda o: _l(mv).OneCycleLR(mv.optim.Optimizer([mv.tensor([1.0], requires_grad=True)], {"lr": 0.1}), 1.0,
                                  total_steps=3), r"cycle_momentum needs an optimizer with a momentum or betas"),
    (lambda o: _l(mv).StepLR(object(), 3), r"StepLR schedules an optimizer's learning rates, not a object"),
], ids=["step-size", "milestone", "gamma-nan", "t-max", "eta-min", "start-factor", "end-factor", "constant-factor",
        "lambda-not-callable", "lambdas-count", "milestones-count", "plateau-in-sequence", "other-optimizer",
        "onecycle-length", "anneal-strategy", "onecycle-no-momentum", "not-an-optimizer"])
def test_bad_arguments_are_refused_naming_them(make, problem):
    p = [mv.tensor([1.0], requires_grad=True), mv.tensor([1.0], requires_grad=True)]
    opt = mv.optim.SGD([{"params": p[:1]}, {"params": p[1:]}], lr=0.1)
    with pytest.raises((ValueError, TypeError), match=problem):
        make(opt)


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # (torch's, stepped without an optimizer step)
def test_a_step_past_onecycles_total_steps_is_refused_as_by_torch():
    for lib in (mv, torch):
        opt = lib.optim.SGD([lib.tensor(np.zeros(1), requires_grad=True)], lr=0.1, momentum=0.9)
        s = _l(lib).OneCycleLR(opt, 1.0, total_steps=2)
        s.step()
        s.step()
        with pytest.raises(ValueError, match="total"):
            s.step()


def test_a_group_added_after_the_scheduler_is_named_in_the_error():
    p, q = mv.tensor([1.0], requires_grad=True), mv.tensor([1.0], requires_grad=True)
    opt = mv.optim.SGD([p], lr=0.1)
    s = _l(mv).LambdaLR(opt, lambda e: 0.5)
    opt.add_param_group({"params": [q]})
    with pytest.raises(ValueError, match=r"LambdaLR was made for 1 param groups, the optimizer has 2 now"):
        s.step()


def test_a_sequential_state_that_does_not_fit_changes_nothing():
    p = mv.tensor([1.0], requires_grad=True)
    opt = mv.optim.SGD([p], lr=1.0)
    seq = _l(mv).SequentialLR(opt, [_l(mv).LinearLR(opt, 0.5, total_iters=2), _l(mv).ExponentialLR(opt, 0.5)], [2])
    seq.step()
    before = copy.deepcopy(seq.state_dict()), opt.param_groups[0]["lr"]
    bad = copy.deepcopy(before[0])
    bad["_schedulers"][1].pop("gamma")
    bad["last_epoch"] = 7
    with pytest.raises(ValueError, match=r"does not fit ExponentialLR: missing \['gamma'\]"):
        seq.load_state_dict(bad)
    assert (seq.state_dict(), opt.param_groups[0]["lr"]) == before


def test_plateau_reduces_a_group_added_later_as_torch():
    """A group added after the scheduler takes its one min_lr and is reduced with the others (before, zip stopped at
    the groups it was made with: the new group's lr never moved); with a list of min_lrs the reduction is refused, as
    torch's, until there is one per group."""
    lrs = []
    for lib in (mv, torch):
        p, q = lib.tensor(np.zeros(1), requires_grad=True), lib.tensor(np.zeros(1), requires_grad=True)
        opt = lib.optim.SGD([p], lr=1.0)
        s = _l(lib).ReduceLROnPlateau(opt, patience=0, factor=0.5, min_lr=0.2)
        opt.add_param_group({"params": [q], "lr": 0.3})
        for metric in (3.0, 3.0, 3.0, 3.0):
            s.step(metric)
            lrs.append([g["lr"] for g in opt.param_groups])
        listed = _l(lib).ReduceLROnPlateau(opt, patience=0, min_lr=[0.1, 0.1])
        opt.add_param_group({"params": [lib.tensor(np.zeros(1), requires_grad=True)]})
        listed.step(1.0)
        with pytest.raises(RuntimeError, match="min_lrs"):
            listed.step(2.0)
    assert lrs[:4] == lrs[4:] and lrs[2:4] == [[0.25, 0.2], [0.2, 0.2]]
