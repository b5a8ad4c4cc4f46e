"""Learning-rate schedules acting on an optimizer's ``param_groups``, as ``torch.optim.lr_scheduler`` (2.13):
call ``step()`` once per epoch (or batch), after the optimizer's (``ReduceLROnPlateau.step(metric)`` with the
metric).

Each scheduler changes a group's *current* lr by torch's chainable (recursive) rule, the one torch's ``step()``
follows, not its closed form: two schedulers on one optimizer, or a change of ``group["lr"]`` by hand between
steps, compose as they do in PyTorch, and the lrs are torch's to the last bit (the same operations in the same
order). As torch's, a scheduler applies its epoch-0 lr when it is made (LinearLR's start factor, ConstantLR's
factor, LambdaLR's λ(0)), and keeps the lr it started from in each group's "initial_lr" (set by the first
scheduler made on the optimizer): ``base_lrs``.

What every scheduler has, with torch's names: ``last_epoch``, ``base_lrs``, ``get_last_lr()``, ``state_dict()``,
``load_state_dict()``. Different on purpose: no ``last_epoch=`` argument (resume with ``load_state_dict``, which
also sets each group's lr to the one saved), and no ``step(epoch)``: SequentialLR alone uses the closed forms,
where torch's does, at its milestones. Out of range arguments are refused with a message naming them.
"""
import math
import numbers
import types
from bisect import bisect_right
from collections import Counter


class LRScheduler:
    """The base: subclasses give ``_lrs(initial)``, the groups' lrs at ``last_epoch`` by torch's chainable rule
    (``initial``: the step made by the constructor), and ``_closed_form()``, the lrs at ``last_epoch`` from
    ``base_lrs`` alone (what SequentialLR sets at a milestone, as torch's ``_update_lr(0)``)."""

    def __init__(self, optimizer):
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(self).__name__} schedules an optimizer's learning rates, not a "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self._initial_step()

    def _initial_step(self):
        self._update(initial=True)

    def get_last_lr(self):
        """Each group's lr after the last step (or the constructor)."""
        return list(self._last_lr)

    def step(self):
        """One epoch (or batch) on: last_epoch + 1, each group's lr by the schedule."""
        self._update()

    def _update(self, initial=False, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            lrs = self._lrs(initial)
        else:
            self.last_epoch = epoch
            lrs = self._closed_form()
        groups = self.optimizer.param_groups
        if len(lrs) != len(groups):
            raise ValueError(f"{type(self).__name__} was made for {len(lrs)} param groups, the optimizer has "
                             f"{len(groups)} now (add_param_group after the scheduler was made): make the scheduler "
                             "after adding every group")
        for group, lr in zip(groups, lrs):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in groups]

    def _current(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def _lrs(self, initial):
        raise NotImplementedError

    def _closed_form(self):
        raise NotImplementedError(f"{type(self).__name__} has no closed form (torch's has none either): it cannot "
                                  "follow another scheduler in a SequentialLR")

    # ---- state ---------------------------------------------------------------------------------
    def state_dict(self):
        """Every attribute but the optimizer, as PyTorch's (lists and dicts copied: later steps leave it as it
        is); of ``lr_lambdas`` (LambdaLR, MultiplicativeLR) only a callable object's ``__dict__``, None for a
        function (torch's); of the schedulers of a SequentialLR or ChainedScheduler their state_dicts."""
        out = {}
        for k, v in self.__dict__.items():
            if k == "optimizer":
                continue
            if k == "lr_lambdas":
                v = [None if isinstance(f, types.FunctionType) else dict(f.__dict__) for f in v]
            elif k == "_schedulers":
                v = [s.state_dict() for s in v]
            out[k] = _copy(v)
        return out

    def load_state_dict(self, state):
        """Restore ``state`` (as ``state_dict()`` gives it), and set each group's lr to the lr it had after
        the saved scheduler's last step, so that a resumed run goes on with the saved schedule whether or not
        the optimizer's state held the lrs (minivae's ``Optimizer.state_dict`` holds them only when asked:
        ``param_groups=True``). The keys must be this scheduler's and ``_last_lr`` hold one lr per parameter
        group (and so for each scheduler of a SequentialLR); a refused state changes nothing."""
        self._check_state(state)
        self._apply_state(state)

    def _check_state(self, state):
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own), key=str)
        if missing or unexpected:
            raise ValueError(f"state_dict does not fit {type(self).__name__}: missing {missing}, unexpected {unexpected}")
        if len(state["_last_lr"]) != len(self.optimizer.param_groups):
            raise ValueError(f"state_dict holds the lrs of {len(state['_last_lr'])} parameter groups, "
                             f"the optimizer has {len(self.optimizer.param_groups)}")
        for key in ("_schedulers", "lr_lambdas"):
            if key in own and len(state[key]) != len(own[key]):
                raise ValueError(f"state_dict holds {len(state[key])} {key.strip('_')}, this "
                                 f"{type(self).__name__} has {len(own[key])}")
        for s, sub in zip(getattr(self, "_schedulers", ()), state.get("_schedulers", ())):
            s._check_state(sub)

    def _apply_state(self, state):
        for s, sub in zip(getattr(self, "_schedulers", ()), state.get("_schedulers", ())):
            s._apply_state(sub)
        self.__dict__.update({k: _copy(v) for k, v in state.items() if k not in ("_schedulers", "lr_lambdas")})
        for f, saved in zip(getattr(self, "lr_lambdas", ()), state.get("lr_lambdas", ())):
            if saved is not None:
                f.__dict__.update(saved)
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr


def _copy(v):
    return type(v)(v) if isinstance(v, (list, dict)) else v


def _check_int(name, value, least):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def _check_real(name, value, ok=lambda x: True, rule=""):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{name} must be a finite number{' ' + rule if rule else ''}, got {value!r}")


def _lambdas(optimizer, lr_lambda):
    """One function per param group: ``lr_lambda`` for each, or a list of one per group."""
    groups = len(optimizer.param_groups)
    if isinstance(lr_lambda, (list, tuple)):
        if len(lr_lambda) != groups:
            raise ValueError(f"expected {groups} lr_lambdas (one per param group), got {len(lr_lambda)}")
        lambdas = list(lr_lambda)
    else:
        lambdas = [lr_lambda] * groups
    for f in lambdas:
        if not callable(f):
            raise TypeError(f"lr_lambda must be a function of the epoch, got {type(f).__name__}")
    return lambdas


class LambdaLR(LRScheduler):
    """lr = base_lr · λ(epoch), λ = ``lr_lambda`` (or one per group): the only scheduler that does not chain
    (it sets the lr from base_lr, as torch's)."""

    def __init__(self, optimizer, lr_lambda):
        self.lr_lambdas = _lambdas(optimizer, lr_lambda)
        super().__init__(optimizer)

    def _lrs(self, initial):
        return [base_lr * f(self.last_epoch) for f, base_lr in zip(self.lr_lambdas, self.base_lrs)]


class MultiplicativeLR(LRScheduler):
    """lr ← lr · λ(epoch) at each step (not at the constructor's), λ = ``lr_lambda`` (or one per group)."""

    def __init__(self, optimizer, lr_lambda):
        self.lr_lambdas = _lambdas(optimizer, lr_lambda)
        super().__init__(optimizer)

    def _lrs(self, initial):
        if initial:
            return self._current()
        return [g["lr"] * f(self.last_epoch) for f, g in zip(self.lr_lambdas, self.optimizer.param_groups)]


class StepLR(LRScheduler):
    """lr ← γ·lr at every ``step_size``-th step: alone, lr = base_lr · γ^⌊epoch / step_size⌋."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        _check_int("step_size", step_size, 1)
        _check_real("gamma", gamma)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def _lrs(self, initial):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current()
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

    def _closed_form(self):
        return [base_lr * self.gamma ** (self.last_epoch // self.step_size) for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """lr ← γ^k·lr at an epoch listed k times in ``milestones``: alone, lr = base_lr · γ^(milestones passed)."""

    def __init__(self, optimizer, milestones, gamma=0.1):
        milestones = list(milestones)
        for m in milestones:
            _check_int("each milestone", m, 0)
        _check_real("gamma", gamma)
        self.milestones, self.gamma = Counter(milestones), gamma
        super().__init__(optimizer)

    def _lrs(self, initial):
        if self.last_epoch not in self.milestones:
            return self._current()
        return [g["lr"] * self.gamma ** self.milestones[self.last_epoch] for g in self.optimizer.param_groups]

    def _closed_form(self):
        milestones = sorted(self.milestones.elements())
        return [base_lr * self.gamma ** bisect_right(milestones, self.last_epoch) for base_lr in self.base_lrs]


class ConstantLR(LRScheduler):
    """lr ← factor·lr when made, lr ← lr/factor at epoch ``total_iters``: alone, base_lr·factor for the first
    ``total_iters`` epochs, then base_lr. ``factor`` in (0, 1] (torch also takes 0, which divides by 0 at
    total_iters)."""

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5):
        _check_real("factor", factor, lambda f: 0 < f <= 1, "in (0, 1]")
        _check_int("total_iters", total_iters, 1)
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer)

    def _lrs(self, initial):
        if self.last_epoch == 0:
            return [g["lr"] * self.factor for g in self.optimizer.param_groups]
        if self.last_epoch != self.total_iters:
            return self._current()
        return [g["lr"] * (1.0 / self.factor) for g in self.optimizer.param_groups]

    def _closed_form(self):
        return [base_lr * (self.factor + (self.last_epoch >= self.total_iters) * (1 - self.factor))
                for base_lr in self.base_lrs]


class LinearLR(LRScheduler):
    """The lr's factor goes linearly from ``start_factor`` (when made) to ``end_factor`` (at epoch
    ``total_iters``, and after): alone, lr = base_lr·(s + (e − s)·min(t, T)/T); chained, each step multiplies
    the current lr by torch's ratio 1 + (e − s)/(T·s + (t − 1)(e − s))."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5):
        _check_real("start_factor", start_factor, lambda f: 0 < f <= 1, "in (0, 1]")
        _check_real("end_factor", end_factor, lambda f: 0 <= f <= 1, "in [0, 1]")
        _check_int("total_iters", total_iters, 1)
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer)

    def _lrs(self, initial):
        if self.last_epoch == 0:
            return [g["lr"] * self.start_factor for g in self.optimizer.param_groups]
        if initial or self.last_epoch > self.total_iters:
            return self._current()
        s, e = self.start_factor, self.end_factor
        return [g["lr"] * (1.0 + (e - s) / (self.total_iters * s + (self.last_epoch - 1) * (e - s)))
                for g in self.optimizer.param_groups]

    def _closed_form(self):
        s, e = self.start_factor, self.end_factor
        return [base_lr * (s + (e - s) * min(self.total_iters, self.last_epoch) / self.total_iters)
                for base_lr in self.base_lrs]


class ExponentialLR(LRScheduler):
    """lr ← γ·lr at each step: alone, lr = base_lr·γ^epoch."""

    def __init__(self, optimizer, gamma):
        _check_real("gamma", gamma)
        self.gamma = gamma
        super().__init__(optimizer)

    def _lrs(self, initial):
        if initial:
            return self._current()
        return [g["lr"] * self.gamma for g in self.optimizer.param_groups]

    def _closed_form(self):
        return [base_lr * self.gamma ** self.last_epoch for base_lr in self.base_lrs]


class PolynomialLR(LRScheduler):
    """lr ← lr·((1 − t/T)/(1 − (t − 1)/T))^power for t ≤ T = ``total_iters``: alone, lr = base_lr·(1 − min(t, T)/T)^power."""

    def __init__(self, optimizer, total_iters=5, power=1.0):
        _check_int("total_iters", total_iters, 1)
        _check_real("power", power)
        self.total_iters, self.power = total_iters, power
        super().__init__(optimizer)

    def _lrs(self, initial):
        if initial or self.last_epoch > self.total_iters:
            return self._current()
        t, n = self.last_epoch, self.total_iters
        factor = ((1.0 - t / n) / (1.0 - (t - 1) / n)) ** self.power
        return [g["lr"] * factor for g in self.optimizer.param_groups]

    def _closed_form(self):
        return [base_lr * (1.0 - min(self.total_iters, self.last_epoch) / self.total_iters) ** self.power
                for base_lr in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing (SGDR without restarts, Loshchilov & Hutter 2017) by torch's recursive rule: each step

        lr ← η_min + (lr − η_min)·(1 + cos(π t/T)) / (1 + cos(π (t − 1)/T)),   T = ``T_max``, η_min = ``eta_min``

    and, where that ratio is 0/0 (t − 1 − T a multiple of 2T: the bottom of a cycle, which the schedule passes
    through and climbs back from, as torch's), lr ← lr + (base_lr − η_min)(1 − cos(π/T))/2. Alone it follows the
    closed form η_min + (base_lr − η_min)(1 + cos(π t/T))/2 to rounding, but not bit for bit: the recursion is
    what torch's ``step()`` computes, and what composes with a change of the lr by hand."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        _check_int("T_max", T_max, 1)
        _check_real("eta_min", eta_min, lambda x: x >= 0, ">= 0")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def _lrs(self, initial):
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if initial:
            return self._current()
        if (t - 1 - T) % (2 * T) == 0:
            return [g["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base_lr, g in zip(self.base_lrs, self.optimizer.param_groups)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (g["lr"] - eta_min) + eta_min
                for g in self.optimizer.param_groups]

    def _closed_form(self):
        return [self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base_lr in self.base_lrs]


def _same_optimizer(name, optimizer, schedulers):
    if len(schedulers) < 1:
        raise ValueError(f"{name} expects at least one scheduler, got none")
    for k, s in enumerate(schedulers):
        if not isinstance(s, LRScheduler):
            raise TypeError(f"{name}: schedulers[{k}] is a {type(s).__name__}, not a scheduler")
        if isinstance(s, ReduceLROnPlateau):
            raise ValueError(f"{name}: schedulers[{k}] is a ReduceLROnPlateau, whose step() takes the metric: it "
                             "cannot be stepped by another scheduler")
        if s.optimizer is not optimizer:
            raise ValueError(f"{name}: schedulers[{k}] ({type(s).__name__}) schedules another optimizer")


class SequentialLR(LRScheduler):
    """``schedulers[k]`` from epoch ``milestones[k − 1]`` on, as torch's: when made, every group's lr goes back to
    its initial_lr, each scheduler's last_epoch one back, and the first scheduler makes its initial step again;
    at a milestone the next scheduler sets its closed form at its epoch 0 (from its base_lrs: so a LinearLR
    starts at start_factor·base_lr again), between milestones its own ``step()`` runs."""

    def __init__(self, optimizer, schedulers, milestones):
        schedulers, milestones = list(schedulers), list(milestones)
        _same_optimizer("SequentialLR", optimizer, schedulers)
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR expects one milestone fewer than schedulers, got {len(schedulers)} "
                             f"schedulers and {len(milestones)} milestones")
        for m in milestones:
            _check_int("each milestone", m, 0)
        self._schedulers, self._milestones = schedulers, milestones
        self.last_epoch = 0
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        _undo(self)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self):
        self.last_epoch += 1
        k = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[k]
        if k > 0 and self._milestones[k - 1] == self.last_epoch:
            scheduler._update(epoch=0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


def _undo(scheduler):
    """last_epoch one back in every scheduler under ``scheduler`` (torch's SequentialLR.recursive_undo)."""
    for s in scheduler._schedulers:
        if hasattr(s, "_schedulers"):
            _undo(s)
        else:
            s.last_epoch -= 1


class ChainedScheduler(LRScheduler):
    """Steps every scheduler of ``schedulers`` in order at each ``step()`` (their rules compose on the lr)."""

    def __init__(self, schedulers, optimizer=None):
        schedulers = list(schedulers)
        optimizer = optimizer if optimizer is not None else (schedulers[0].optimizer if schedulers else None)
        _same_optimizer("ChainedScheduler", optimizer, schedulers)
        self._schedulers, self.optimizer = schedulers, optimizer
        self._last_lr = self._current()

    def step(self):
        for s in self._schedulers:
            s.step()
        self._last_lr = self._current()


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2018), torch's: over ``total_steps`` (or ``epochs``·``steps_per_epoch``)
    steps the lr goes from max_lr/``div_factor`` up to ``max_lr`` in the first ``pct_start`` of them, then down to
    max_lr/(div_factor·``final_div_factor``) (``three_phase``: back to the start, then down), by a cosine or a
    line (``anneal_strategy``); with ``cycle_momentum`` the momentum (SGD) or β₁ (Adam) goes the other way, between
    ``max_momentum`` and ``base_momentum``. Each value is computed from the phase's ends (no chaining, as torch's);
    a step past ``total_steps`` is refused. The groups keep initial_lr, max_lr, min_lr (and max_momentum,
    base_momentum), as torch's."""

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95, div_factor=25.0,
                 final_div_factor=1e4, three_phase=False):
        if total_steps is not None:
            _check_int("total_steps", total_steps, 1)
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            _check_int("epochs", epochs, 1)
            _check_int("steps_per_epoch", steps_per_epoch, 1)
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("OneCycleLR needs total_steps, or epochs and steps_per_epoch")
        _check_real("pct_start", pct_start, lambda p: 0 <= p <= 1, "in [0, 1]")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        _check_real("div_factor", div_factor, lambda d: d > 0, "> 0")
        _check_real("final_div_factor", final_div_factor, lambda d: d > 0, "> 0")
        n = self.total_steps
        if three_phase:
            self._schedule_phases = [
                {"end_step": float(pct_start * n) - 1, "start_lr": "initial_lr", "end_lr": "max_lr",
                 "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_step": float(2 * pct_start * n) - 2, "start_lr": "max_lr", "end_lr": "initial_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"},
                {"end_step": n - 1, "start_lr": "initial_lr", "end_lr": "min_lr",
                 "start_momentum": "max_momentum", "end_momentum": "max_momentum"}]
        else:
            self._schedule_phases = [
                {"end_step": float(pct_start * n) - 1, "start_lr": "initial_lr", "end_lr": "max_lr",
                 "start_momentum": "max_momentum", "end_momentum": "base_momentum"},
                {"end_step": n - 1, "start_lr": "max_lr", "end_lr": "min_lr",
                 "start_momentum": "base_momentum", "end_momentum": "max_momentum"}]
        self._anneal_func_type = anneal_strategy
        groups = optimizer.param_groups
        for group, top in zip(groups, _per_group("max_lr", optimizer, max_lr)):
            group["initial_lr"] = top / div_factor
            group["max_lr"] = top
            group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            defaults = getattr(optimizer, "defaults", {})
            if "momentum" not in defaults and "betas" not in defaults:
                raise ValueError(f"cycle_momentum needs an optimizer with a momentum or betas, not "
                                 f"{type(optimizer).__name__}")
            self.use_beta1 = "betas" in defaults
            for group, top, base in zip(groups, _per_group("max_momentum", optimizer, max_momentum),
                                        _per_group("base_momentum", optimizer, base_momentum)):
                if self.use_beta1:
                    group["betas"] = (top, *group["betas"][1:])
                else:
                    group["momentum"] = top
                group["max_momentum"], group["base_momentum"] = top, base
        super().__init__(optimizer)

    def _anneal(self, start, end, pct):
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _lrs(self, initial):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR stepped {step} times, past its total_steps {self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for k, phase in enumerate(self._schedule_phases):
                end = phase["end_step"]
                if step <= end or k == len(self._schedule_phases) - 1:
                    pct = (step - start) / (end - start)
                    lr = self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        momentum = self._anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                    break
                start = phase["end_step"]
            lrs.append(lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
        return lrs


def _per_group(name, optimizer, value):
    """``value`` for each param group: one for all, or a list of one per group."""
    groups = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != groups:
            raise ValueError(f"{name} lists {len(value)} values, the optimizer has {groups} param groups")
        return list(value)
    return [value] * groups


class ReduceLROnPlateau(LRScheduler):
    """lr ← max(lr · factor, min_lr) once the metric has not improved for more than ``patience``
    epochs, then wait ``cooldown`` epochs. Improvement (``mode`` "min"): metric < best·(1 − threshold)
    (``threshold_mode`` "rel", the default) or metric < best − threshold ("abs"); for "max",
    metric > best·(1 + threshold) or best + threshold. A change smaller than ``eps`` is not made.
    ``min_lr``: one floor for every group, or a list of one per group. ``step(metric)`` takes a
    number, or a 0-d tensor or array (read with ``.item()``: a copy to the host for a GPU value).
    Made, it changes no lr (no initial step, as torch's). A group added to the optimizer later
    (``add_param_group``) takes the one ``min_lr`` given; with a list of them, reducing is refused
    until ``min_lrs`` has one per group (torch's)."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0,
                 min_lr=0.0, eps=1e-8):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', not {threshold_mode!r}")
        if not 0 < factor < 1:
            raise ValueError(f"factor must lie in (0, 1), got {factor}")
        groups = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)) and len(min_lr) != groups:
            raise ValueError(f"min_lr lists {len(min_lr)} floors, the optimizer has {groups} parameter groups")
        self.optimizer = optimizer
        self.base_lrs = self._current()
        self.last_epoch = 0
        self._last_lr = list(self.base_lrs)
        self.mode, self.factor, self.patience, self.threshold = mode, factor, patience, threshold
        self.threshold_mode, self.cooldown, self.eps = threshold_mode, cooldown, eps
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * groups
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lr  # (for groups added later)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0

    def _improves(self, metric):
        if self.mode == "min":
            return metric < (self.best * (1 - self.threshold) if self.threshold_mode == "rel" else self.best - self.threshold)
        return metric > (self.best * (1 + self.threshold) if self.threshold_mode == "rel" else self.best + self.threshold)

    def step(self, metric):
        metric = float(metric.item() if hasattr(metric, "item") else metric)  # a Tensor has no __float__
        self.last_epoch += 1
        if self._improves(metric):
            self.best, self.num_bad_epochs = metric, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            groups = len(self.optimizer.param_groups)
            if len(self.min_lrs) != groups:  # a group added since (add_param_group), as torch's
                if self.default_min_lr is None:
                    raise RuntimeError(f"ReduceLROnPlateau has {len(self.min_lrs)} min_lrs, the optimizer {groups} "
                                       "param groups now (add_param_group): set min_lrs to one per group")
                self.min_lrs = [self.default_min_lr] * groups
            for g, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(g["lr"] * self.factor, min_lr)
                if g["lr"] - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]
