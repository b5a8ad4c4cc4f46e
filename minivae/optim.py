"""Optimizers with PyTorch's names: ``step()``, ``zero_grad()``, ``state_dict()``."""
import math

import numpy


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
    (Kingma & Ba 2015)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        self.betas, self.eps = betas, eps

    def update(self, p, g, state):
        b1, b2 = self.betas
        m = state.setdefault("m", p.xp.zeros_like(p.data))
        v = state.setdefault("v", p.xp.zeros_like(p.data))
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        step_size = self.lr * math.sqrt(1 - b2 ** self.steps) / (1 - b1 ** self.steps)
        p.data -= step_size * m / (p.xp.sqrt(v) + self.eps * math.sqrt(1 - b2 ** self.steps))


def clip_grad_norm_(params, max_norm):
    """Scale all gradients together so their global L2 norm is at most ``max_norm``; returns the norm before."""
    grads = [p.grad for p in params if p.grad is not None]
    total = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if total > max_norm:
        for g in grads:
            g *= max_norm / (total + 1e-12)
    return total
