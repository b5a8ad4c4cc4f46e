"""Learning-rate schedules acting on an optimizer's ``param_groups``, as ``torch.optim.lr_scheduler``:
call ``step()`` once per epoch, after the optimizer's (``ReduceLROnPlateau.step(metric)`` with the metric).

Each scheduler changes a group's *current* lr (PyTorch's chainable form), so two schedulers on one
optimizer, or a change of ``group["lr"]`` by hand between steps, compose as they do in PyTorch."""
import math


class LRScheduler:
    """What every scheduler has, with PyTorch's names: ``last_epoch`` (the steps taken), ``base_lrs``
    (the groups' lrs when it was made), ``get_last_lr()`` (each group's lr after the last step),
    ``state_dict()`` and ``load_state_dict()``."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0
        self._last_lr = list(self.base_lrs)

    def get_last_lr(self):
        return list(self._last_lr)

    def state_dict(self):
        """Every attribute but the optimizer, as PyTorch's (its lists copied: later steps leave it as it is)."""
        return {k: list(v) if isinstance(v, list) else v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state):
        """Restore ``state`` (as ``state_dict()`` gives it), and set each group's lr to the lr it had
        after the saved scheduler's last step: minivae's ``Optimizer.state_dict`` holds no learning
        rates (PyTorch's does, in its param_groups), so this is where a resumed run gets them back.
        The keys must be this scheduler's and ``_last_lr`` hold one lr per parameter group; a refused
        state changes nothing."""
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own), key=str)
        if missing or unexpected:
            raise ValueError(f"state_dict does not fit {type(self).__name__}: missing {missing}, unexpected {unexpected}")
        if len(state["_last_lr"]) != len(self.optimizer.param_groups):
            raise ValueError(f"state_dict holds the lrs of {len(state['_last_lr'])} parameter groups, "
                             f"the optimizer has {len(self.optimizer.param_groups)}")
        self.__dict__.update({k: list(v) if isinstance(v, list) else v for k, v in state.items()})
        for g, lr in zip(self.optimizer.param_groups, self._last_lr):
            g["lr"] = lr


class StepLR(LRScheduler):
    """lr ← γ·lr at every ``step_size``-th step: alone, lr = base_lr · γ^⌊epoch / step_size⌋."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if not (isinstance(step_size, int) and step_size >= 1):
            raise ValueError(f"step_size must be an integer >= 1, got {step_size!r}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def step(self):
        self.last_epoch += 1
        if self.last_epoch % self.step_size == 0:
            for g in self.optimizer.param_groups:
                g["lr"] = g["lr"] * self.gamma
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]


class ReduceLROnPlateau(LRScheduler):
    """lr ← max(lr · factor, min_lr) once the metric has not improved for more than ``patience``
    epochs, then wait ``cooldown`` epochs. Improvement (``mode`` "min"): metric < best·(1 − threshold)
    (``threshold_mode`` "rel", the default) or metric < best − threshold ("abs"); for "max",
    metric > best·(1 + threshold) or best + threshold. A change smaller than ``eps`` is not made.
    ``min_lr``: one floor for every group, or a list of one per group. ``step(metric)`` takes a
    number, or a 0-d tensor or array (read with ``.item()``: a copy to the host for a GPU value)."""

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
        super().__init__(optimizer)
        self.mode, self.factor, self.patience, self.threshold = mode, factor, patience, threshold
        self.threshold_mode, self.cooldown, self.eps = threshold_mode, cooldown, eps
        self.min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * groups
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
            for g, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(g["lr"] * self.factor, min_lr)
                if g["lr"] - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]
