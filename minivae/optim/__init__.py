"""Optimizers with PyTorch's names: ``step()``, ``zero_grad()``, ``state_dict()``."""
import math

import numpy

from minivae._backend import fused, get_array_module


class Optimizer:
    """Keeps the parameters, and ``n_buffers`` state buffers laid out alike, in flat buffers (one
    per parameter group, device and dtype: a float64 parameter is never cast); each parameter's
    ``.data`` is a view into its buffer. Subclasses implement ``update(i, p, g, kernel, options)``
    for one parameter, and ``update_all(group, grads, kernel)`` for a whole flat buffer in one
    launch (the CUDA kernels, whose launches cost more than their arithmetic here).

    ``params`` is an iterable of tensors or, as in PyTorch, of dicts ``{"params": [...], "lr": ...}``
    whose other entries override the defaults; ``param_groups`` holds one dict per group, and a
    change to a group's "lr" (a scheduler's) applies from the next ``step()``.
    """

    n_buffers = 0
    buffer_names = ()

    def __init__(self, params, defaults):
        params = list(params)
        groups = params if params and all(isinstance(g, dict) for g in params) else [{"params": params}]
        self.param_groups = [{**defaults, **g, "params": list(g["params"])} for g in groups]
        self.params = [p for g in self.param_groups for p in g["params"]]
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        for g in self.param_groups:
            if not g["lr"] > 0:
                raise ValueError(f"learning rate must be > 0, got {g['lr']}")
        self.steps = 0
        group_of = [k for k, g in enumerate(self.param_groups) for _ in g["params"]]
        self._views, self._buffers, self._groups = flatten(self.params, companions=self.n_buffers, keys=group_of)
        for flat in self._groups:
            flat.options = self.param_groups[group_of[flat.indices[0]]]

    @property
    def lr(self):
        """The first group's learning rate; setting it sets every group's."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        for g in self.param_groups:
            g["lr"] = value

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.steps += 1
        for i, p in enumerate(self.params):
            if p.grad is not None and p.data is not self._views[i]:  # .data was rebound: copy it back
                self._views[i][...] = p.data
                p.data = self._views[i]
        for group in self._groups:
            kernel = fused(self.kernel, get_array_module(group.flat), group.flat)
            if getattr(kernel, "ONE_LAUNCH", False):
                self.update_all(group, [self.params[i].grad for i in group.indices], kernel)
            else:
                for i in group.indices:
                    p = self.params[i]
                    if p.grad is not None:
                        self.update(i, p.data.reshape(-1), p.grad.reshape(-1), kernel, group.options)
            for i in group.indices:
                self.params[i]._version += self.params[i].grad is not None  # changed in place

    def launch_scalars(self):
        """What each one-launch kernel of ``step()`` reads from memory inside a CUDA graph
        (minivae/_gpu/graph.py) rather than from its arguments, in launch order (one group after
        another): none here; Adam's bias-corrected (step size, ε̂)."""
        return []

    def state_dict(self):
        """Step count and per-parameter buffers, as NumPy arrays (for .npz checkpoints). The
        hyperparameters (``param_groups``) are not in it: they come from the constructor, so a
        resumed run may change them."""
        out = {"steps": numpy.array(self.steps)}
        for name, buffer in zip(self.buffer_names, self._buffers):
            for i, b in enumerate(buffer):
                out[f"{i}.{name}"] = _host(b)
        return out

    def load_state_dict(self, state):
        self.steps = int(state["steps"])
        for name, buffer in zip(self.buffer_names, self._buffers):
            for i, (p, b) in enumerate(zip(self.params, buffer)):
                b[...] = p.xp.asarray(state[f"{i}.{name}"]).reshape(-1)


class SGD(Optimizer):
    """v ← μ·v + g;  p ← p − lr·v  (plain SGD when momentum μ = 0; v starts at 0, so the first
    step uses v = g, as PyTorch's). v is updated even when μ = 0, so its state is the same on
    every path (NumPy, Numba, CUDA). fused: minivae/_cpu/sgd.py, minivae/_gpu/sgd.py"""

    n_buffers, buffer_names, kernel = 1, ("momentum",), "sgd"

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, {"lr": lr, "momentum": momentum})

    momentum = property(lambda self: self.param_groups[0]["momentum"])

    def update_all(self, group, grads, kernel):
        o = group.options
        kernel.sgd_step_all(group.flat, group.companions[0], grads, group.starts, o["lr"], o["momentum"])

    def update(self, i, p, g, kernel, options):
        lr, mu = options["lr"], options["momentum"]
        v = self._buffers[0][i]
        if kernel is not None:
            kernel.sgd_step(p, g, v, lr, mu)
            return
        v *= mu
        v += g
        p -= lr * v


class Adam(Optimizer):
    """m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  p ← p − lr·m̂/(√v̂ + ε), with bias-corrected m̂, v̂
    (Kingma & Ba 2015), written as p ← p − lr_t·m/(√v + ε_t), lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ), ε_t = ε·√(1−β₂ᵗ).

    With Numba each parameter's slice of the flat buffers is updated in one fused pass
    (minivae/_cpu/adam.py): copying the gradients into one buffer to make a single call would
    cost more memory traffic than the calls it saves.
    """

    n_buffers, buffer_names, kernel = 2, ("m", "v"), "adam"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    betas = property(lambda self: self.param_groups[0]["betas"])
    eps = property(lambda self: self.param_groups[0]["eps"])

    def _scalars(self, options):
        b1, b2 = options["betas"]
        step_size = options["lr"] * math.sqrt(1 - b2 ** self.steps) / (1 - b1 ** self.steps)
        return step_size, b1, b2, options["eps"] * math.sqrt(1 - b2 ** self.steps)

    def launch_scalars(self):
        return [(step_size, eps_hat) for step_size, _, _, eps_hat in (self._scalars(g.options) for g in self._groups)]

    def update_all(self, group, grads, kernel):
        kernel.adam_step_all(group.flat, *group.companions, grads, group.starts, *self._scalars(group.options))

    def update(self, i, p, g, kernel, options):
        step_size, b1, b2, eps_hat = self._scalars(options)
        m, v = self._buffers[0][i], self._buffers[1][i]
        if kernel is not None:
            kernel.adam_step(p, g, m, v, step_size, b1, b2, eps_hat)
            return
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        p -= step_size * m / (v ** 0.5 + eps_hat)


def _host(a):
    return numpy.array(a.get() if hasattr(a, "get") else a)


class FlatGroup:
    """The parameters ``indices`` of one (key, device, dtype), laid end to end in ``flat``, with their
    ``companions`` (optimizer state) laid out alike; parameter j of the group occupies
    ``starts[j]:starts[j + 1]`` (``starts`` lives on the group's device, for the kernels).
    ``options`` is the optimizer's parameter group (hyperparameters) these parameters belong to."""

    def __init__(self, indices, flat, companions, starts):
        self.indices, self.flat, self.companions, self.starts = indices, flat, companions, starts
        self.options = {}


def flatten(params, companions=0, keys=None):
    """Move parameters into one flat buffer per (key, device, dtype), ``keys`` one per parameter (an
    optimizer's group index; all equal if None); each ``p.data`` becomes a view. Also allocates
    ``companions`` zeroed buffers laid out alike (optimizer state).
    Returns the parameter views, per companion each parameter's 1-D slice (in ``params`` order),
    and the ``FlatGroup``s."""
    by_kind = {}
    for i, p in enumerate(params):
        by_kind.setdefault((0 if keys is None else keys[i], p.device, p.dtype), []).append(i)
    slices = [[None] * len(params) for _ in range(companions)]
    groups = []
    for indices in by_kind.values():
        first = params[indices[0]]
        starts = numpy.cumsum([0] + [params[i].numel() for i in indices])
        flat = first.xp.empty(int(starts[-1]), first.dtype)
        extra = [first.xp.zeros(int(starts[-1]), first.dtype) for _ in range(companions)]
        for i, start, stop in zip(indices, starts[:-1], starts[1:]):
            p = params[i]
            view = flat[start:stop].reshape(p.shape)
            view[...] = p.data
            p.data = view
            for k in range(companions):
                slices[k][i] = extra[k][start:stop]
        groups.append(FlatGroup(indices, flat, extra, first.xp.asarray(starts.astype(numpy.int64))))
    return [p.data for p in params], slices, groups


def clip_grad_norm_(params, max_norm):
    """Scale all gradients together so their global L2 norm is at most ``max_norm``; returns the norm before,
    as a 0-d float64 array on the gradients' device (reading it is the caller's choice: no copy to the host here)."""
    grads = [p.grad for p in params if p.grad is not None]
    xp = get_array_module(*grads)
    total = xp.sqrt(sum(((g * g).sum().astype(numpy.float64) for g in grads), xp.zeros((), numpy.float64)))
    scale = xp.where(total > max_norm, max_norm / (total + 1e-12), 1.0)  # no branch: no copy to the host
    for g in grads:
        g *= scale.astype(g.dtype)
    return total


from minivae.optim import lr_scheduler  # noqa: E402, F401  (torch.optim.lr_scheduler's place)
