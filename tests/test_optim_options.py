"""The optimizers' options against torch.optim (2.13), the reference: SGD's momentum, dampening, Nesterov,
weight decay and maximize in every valid combination, Adam's weight decay, maximize and amsgrad, AdamW; two
param groups with options of their own, random gradients over several steps, a parameter that skips steps (its
first step comes later: SGD's undamped first buffer, Adam's own count). float64 to rounding, float32 to a few
ulp; whichever path the environment gives (Numba or NumPy; tests/test_cpu_kernels.py proves them equal)."""
import inspect
import itertools

import numpy as np
import pytest

import minivae as mv
from minivae.optim import SGD, Adam, AdamW

torch = pytest.importorskip("torch")

SHAPES = [(3,), (2, 2), (5,)]
STEPS = 5
SKIPS = (0, 2)  # parameter 1 has no gradient at these steps: its first step is step 1
TOL = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=2e-6, atol=2e-6)}


def _run(lib, name, options, group, dtype):
    """Parameters after STEPS steps of lib.optim.<name>: parameters 0 and 1 in a group of the constructor's
    ``options``, parameter 2 in one that overrides ``group``; gradients g = noise + p (the noise drawn once, the
    same for both libraries), None for parameter 1 at SKIPS."""
    rng = np.random.default_rng(0)
    starts = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    noise = [[rng.standard_normal(shape).astype(dtype) for shape in SHAPES] for _ in range(STEPS)]
    ps = [lib.tensor(v.copy(), requires_grad=True) for v in starts]
    opt = getattr(lib.optim, name)([{"params": ps[:2]}, {"params": ps[2:], **group}], **options)
    for t in range(STEPS):
        for i, p in enumerate(ps):
            value = np.array(p.detach().numpy())
            g = None if i == 1 and t in SKIPS else noise[t][i] + value
            p.grad = g if lib is mv or g is None else torch.tensor(g)
        opt.step()
    return [np.array(p.detach().numpy()) for p in ps]


def _assert_as_torch(name, options, group, dtype):
    ours, theirs = _run(mv, name, options, group, dtype), _run(torch, name, options, group, dtype)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **TOL[dtype], err_msg=f"parameter {k}")


SGD_CASES = [dict(momentum=mu, dampening=d, nesterov=nesterov, weight_decay=wd, maximize=maximize)
             for mu, d, nesterov, wd, maximize in itertools.product((0.0, 0.9), (0.0, 0.3), (False, True), (0.0, 0.1),
                                                                    (False, True))
             if not (nesterov and (mu == 0 or d != 0))]  # (refused: test_nesterov_needs_momentum_and_no_dampening)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", SGD_CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_sgd_with_every_option_steps_as_torch(options, dtype):
    group = {"lr": 0.05, "weight_decay": 0.3, "momentum": 0.5 if options["momentum"] else 0.0}
    _assert_as_torch("SGD", {"lr": 0.1, **options}, group, dtype)


ADAM_CASES = [(name, dict(weight_decay=wd, maximize=maximize, amsgrad=amsgrad, **extra))
              for (name, extra), wd, maximize, amsgrad in itertools.product(
                  [("Adam", {}), ("AdamW", {}), ("Adam", {"decoupled_weight_decay": True})], (0.0, 0.1), (False, True),
                  (False, True))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, options", ADAM_CASES,
                         ids=[f"{n}-" + "-".join(f"{k}={v}" for k, v in o.items()) for n, o in ADAM_CASES])
def test_adam_and_adamw_with_every_option_step_as_torch(name, options, dtype):
    group = {"lr": 0.05, "weight_decay": 0.3, "betas": (0.8, 0.99)}
    _assert_as_torch(name, {"lr": 0.1, **options}, group, dtype)


def test_groups_may_differ_in_maximize_amsgrad_nesterov_and_dampening_as_in_torch():
    """Each group's own flags: one group maximizes and the other not, one Nesterov and the other damped; AdamW
    with amsgrad in the second group only."""
    _assert_as_torch("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True},
                     {"nesterov": False, "dampening": 0.4, "maximize": True}, np.float64)
    _assert_as_torch("AdamW", {"lr": 0.1}, {"amsgrad": True, "maximize": True, "weight_decay": 0.0}, np.float64)


def test_the_defaults_are_torchs():
    """Every option and default of torch's signature that minivae takes (torch's foreach, capturable, differentiable
    and fused are about torch's own kernels); SGD's lr has a default (1e-3) since torch 2.x."""
    for ours in (SGD, Adam, AdamW):
        theirs = inspect.signature(getattr(torch.optim, ours.__name__)).parameters
        mine = inspect.signature(ours).parameters
        assert set(mine) == set(theirs) - {"foreach", "capturable", "differentiable", "fused"}, ours.__name__
        for name, parameter in mine.items():
            assert parameter.default == theirs[name].default, (ours.__name__, name)
            assert parameter.kind == theirs[name].kind, (ours.__name__, name)  # keyword-only where torch's are
    assert AdamW([mv.tensor([1.0], requires_grad=True)]).param_groups[0]["weight_decay"] == 0.01


@pytest.mark.parametrize("make", [lambda o, p: o.SGD(p, lr=0.1, momentum=0.9, nesterov=True, dampening=0.1),
                                  lambda o, p: o.SGD(p, lr=0.1, nesterov=True)], ids=["damped", "no-momentum"])
def test_nesterov_needs_momentum_and_no_dampening(make):
    with pytest.raises(ValueError, match=r"SGD: Nesterov momentum requires a momentum > 0 and zero dampening"):
        make(mv.optim, [mv.tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        make(torch.optim, [torch.ones(1, requires_grad=True)])
    with pytest.raises(ValueError, match=r"SGD param group 0: Nesterov momentum requires .* got momentum=0.0"):
        SGD([{"params": [mv.tensor([1.0], requires_grad=True)], "momentum": 0.0}], lr=0.1, momentum=0.9, nesterov=True)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_negative_weight_decay_is_refused_as_by_torch(name):
    with pytest.raises(ValueError, match=rf"{name}: weight_decay must be a finite number >= 0, got -0.1"):
        getattr(mv.optim, name)([mv.tensor([1.0], requires_grad=True)], lr=0.1, weight_decay=-0.1)
    with pytest.raises(ValueError, match="weight_decay"):
        getattr(torch.optim, name)([torch.ones(1, requires_grad=True)], lr=0.1, weight_decay=-0.1)
    with pytest.raises(ValueError, match=rf"{name} param group 1: weight_decay must be"):  # (torch checks no group)
        getattr(mv.optim, name)([{"params": [mv.tensor([1.0], requires_grad=True)]},
                                 {"params": [mv.tensor([1.0], requires_grad=True)], "weight_decay": float("nan")}])


def test_flags_must_be_booleans_and_dampening_a_number():
    p = [mv.tensor([1.0], requires_grad=True)]
    with pytest.raises(TypeError, match=r"SGD: nesterov must be True or False, got 'yes'"):
        SGD(p, momentum=0.9, nesterov="yes")
    with pytest.raises(TypeError, match=r"Adam: maximize must be True or False, got 1"):
        Adam(p, maximize=1)
    with pytest.raises(TypeError, match=r"AdamW param group 0: amsgrad must be True or False, got None"):
        AdamW([{"params": p, "amsgrad": None}])
    with pytest.raises(ValueError, match=r"SGD: dampening must be a finite number, got inf"):
        SGD(p, dampening=float("inf"))
    with pytest.raises(TypeError, match=r"SGD: dampening must be a real number, got '0.1'"):
        SGD(p, dampening="0.1")


def test_amsgrad_state_is_saved_and_a_resumed_run_continues_identically():
    """v̂max is state ("<i>.max_v"), only with amsgrad; a run resumed from the state_dict (and SGD's damped
    buffer, resumed after its first step) continues exactly as the uninterrupted one."""
    def run(make, resume_at=None):
        rng = np.random.default_rng(3)
        p = mv.tensor(rng.standard_normal(4), requires_grad=True)
        opt = make([p])
        for t in range(6):
            if t == resume_at:
                state = opt.state_dict()
                opt = make([p])
                opt.load_state_dict(state)
            p.grad = rng.standard_normal(4) + p.data
            opt.step()
        return p.data.copy(), opt.state_dict()

    for make in (lambda ps: AdamW(ps, lr=0.1, amsgrad=True), lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.5)):
        (a, state), (b, _) = run(make), run(make, resume_at=3)
        np.testing.assert_array_equal(a, b)
    assert sorted(state) == ["0.momentum", "0.step", "steps"]
    assert sorted(AdamW([mv.tensor([1.0], requires_grad=True)], amsgrad=True).state_dict()) == [
        "0.m", "0.max_v", "0.step", "0.v", "steps"]
    with pytest.raises(ValueError, match=r"missing \['0.max_v'\]"):
        AdamW([mv.tensor([1.0], requires_grad=True)], amsgrad=True).load_state_dict(
            AdamW([mv.tensor([1.0], requires_grad=True)]).state_dict())


def test_amsgrad_switched_on_after_the_constructor_is_refused():
    p = mv.tensor([1.0], requires_grad=True)
    opt = Adam([p])
    opt.param_groups[0]["amsgrad"] = True
    p.grad = np.ones(1)
    with pytest.raises(ValueError, match="amsgrad was switched on in a param group after the optimizer was made"):
        opt.step()
