"""Optimizers with PyTorch's names: ``step()``, ``zero_grad()``, ``state_dict()``."""
import math

import numpy

from minivae._backend import fused


class Optimizer:
    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.lr = lr
        self.state = [{} for _ in self.params]
        self.steps = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.steps += 1
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                self.update(p, p.grad, state)

    def state_dict(self):
        """Step count and per-parameter buffers, as NumPy arrays (for .npz checkpoints)."""
        out = {"steps": numpy.array(self.steps)}
        for i, state in enumerate(self.state):
            for k, v in state.items():
                out[f"{i}.{k}"] = numpy.array(v.get() if hasattr(v, "get") else v)
        return out

    def load_state_dict(self, state):
        self.steps = int(state["steps"])
        self.state = [{} for _ in self.params]
        for key, v in state.items():
            if key == "steps":
                continue
            i, name = key.split(".", 1)
            p = self.params[int(i)]
            self.state[int(i)][name] = p.xp.asarray(v)


class SGD(Optimizer):
    """v ← μ·v + g;  p ← p − lr·v  (plain SGD when momentum μ = 0)."""

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, lr)
        self.momentum = momentum

    def update(self, p, g, state):
        if self.momentum:
            v = state.get("momentum")
            state["momentum"] = v = g.copy() if v is None else self.momentum * v + g
            g = v
        p.data -= self.lr * g


class Adam(Optimizer):
    """m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  p ← p − lr·m̂/(√v̂ + ε), with bias-corrected m̂, v̂
    (Kingma & Ba 2015), written as p ← p − lr_t·m/(√v + ε_t), lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ), ε_t = ε·√(1−β₂ᵗ).

    All parameters, and m and v, live in flat buffers (one per dtype and device); each parameter's
    ``.data`` is a view into its buffer. With Numba, each parameter's slice is updated in one fused
    pass (minivae/_cpu/adam.py): copying the gradients into one buffer to make a single call
    would cost more memory traffic than the calls it saves.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.betas, self.eps = betas, eps
        self._views, (self._m, self._v) = flatten(self.params, companions=2)

    def step(self):
        self.steps += 1
        b1, b2 = self.betas
        step_size = self.lr * math.sqrt(1 - b2 ** self.steps) / (1 - b1 ** self.steps)
        eps_hat = self.eps * math.sqrt(1 - b2 ** self.steps)
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if p.data is not self._views[i]:  # .data was rebound: copy it back into the buffer
                self._views[i].reshape(-1)[...] = p.data.reshape(-1)
                p.data = self._views[i]
            flat_p, g, m, v = p.data.reshape(-1), p.grad.reshape(-1), self._m[i], self._v[i]
            kernel = fused("adam", p.xp)
            if kernel is not None:
                kernel.adam_step(flat_p, g, m, v, step_size, b1, b2, eps_hat)
                continue
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            flat_p -= step_size * m / (p.xp.sqrt(v) + eps_hat)

    def state_dict(self):
        out = {"steps": numpy.array(self.steps)}
        for i in range(len(self.params)):
            out[f"{i}.m"], out[f"{i}.v"] = _host(self._m[i]), _host(self._v[i])
        return out

    def load_state_dict(self, state):
        self.steps = int(state["steps"])
        for i, p in enumerate(self.params):
            self._m[i][...] = p.xp.asarray(state[f"{i}.m"]).reshape(-1)
            self._v[i][...] = p.xp.asarray(state[f"{i}.v"]).reshape(-1)


def _host(a):
    return numpy.array(a.get() if hasattr(a, "get") else a)


def flatten(params, companions=0):
    """Move parameters into one flat buffer per (device, dtype); each ``p.data`` becomes a view.
    Also allocates ``companions`` zeroed buffers laid out alike (optimizer state).
    Returns the parameter views and, per companion, each parameter's 1-D slice, in ``params`` order."""
    groups = {}
    for i, p in enumerate(params):
        groups.setdefault((p.device, p.dtype), []).append(i)
    slices = [[None] * len(params) for _ in range(companions)]
    for indices in groups.values():
        first = params[indices[0]]
        total = sum(params[i].size for i in indices)
        flat = first.xp.empty(total, first.dtype)
        extra = [first.xp.zeros(total, first.dtype) for _ in range(companions)]
        start = 0
        for i in indices:
            p, stop = params[i], start + params[i].size
            view = flat[start:stop].reshape(p.shape)
            view[...] = p.data
            p.data = view
            for k in range(companions):
                slices[k][i] = extra[k][start:stop]
            start = stop
    return [p.data for p in params], slices


def clip_grad_norm_(params, max_norm):
    """Scale all gradients together so their global L2 norm is at most ``max_norm``; returns the norm before."""
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if total > max_norm:
        for g in grads:
            g *= max_norm / (total + 1e-12)
    return total
