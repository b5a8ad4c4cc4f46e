"""Optimizers with PyTorch's names: ``step()``, ``zero_grad()``, ``state_dict()``."""
import math

import numpy

from minivae._backend import fused


class Optimizer:
    """Keeps the parameters, and ``n_buffers`` state buffers laid out alike, in flat buffers (one
    per dtype and device); each parameter's ``.data`` is a view into its buffer. Subclasses
    implement ``update(i, p, g, step)`` for one parameter."""

    n_buffers = 0
    buffer_names = ()

    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not lr > 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        self.lr = lr
        self.steps = 0
        self._views, self._buffers = flatten(self.params, companions=self.n_buffers)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        self.steps += 1
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if p.data is not self._views[i]:  # .data was rebound: copy it back into the buffer
                self._views[i][...] = p.data
                p.data = self._views[i]
            self.update(i, p.data.reshape(-1), p.grad.reshape(-1), fused(self.kernel, p.xp))

    def state_dict(self):
        """Step count and per-parameter buffers, as NumPy arrays (for .npz checkpoints)."""
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
    step uses v = g, as PyTorch's). fused: minivae/_cpu/sgd.py"""

    n_buffers, buffer_names, kernel = 1, ("momentum",), "sgd"

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, lr)
        self.momentum = momentum

    def update(self, i, p, g, kernel):
        if kernel is not None:
            kernel.sgd_step(p, g, self._buffers[0][i], self.lr, self.momentum)
            return
        if self.momentum:
            v = self._buffers[0][i]
            v *= self.momentum
            v += g
            g = v
        p -= self.lr * g


class Adam(Optimizer):
    """m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  p ← p − lr·m̂/(√v̂ + ε), with bias-corrected m̂, v̂
    (Kingma & Ba 2015), written as p ← p − lr_t·m/(√v + ε_t), lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ), ε_t = ε·√(1−β₂ᵗ).

    With Numba each parameter's slice of the flat buffers is updated in one fused pass
    (minivae/_cpu/adam.py): copying the gradients into one buffer to make a single call would
    cost more memory traffic than the calls it saves.
    """

    n_buffers, buffer_names, kernel = 2, ("m", "v"), "adam"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.betas, self.eps = betas, eps

    def update(self, i, p, g, kernel):
        b1, b2 = self.betas
        step_size = self.lr * math.sqrt(1 - b2 ** self.steps) / (1 - b1 ** self.steps)
        eps_hat = self.eps * math.sqrt(1 - b2 ** self.steps)
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
