"""Tensor and reverse-mode autodiff: the whole engine, readable in one sitting.

A ``Tensor`` holds an array (NumPy or CuPy) and, when it was computed from tensors
that require gradients, the ``Function`` node that made it. ``backward`` walks the
graph in reverse topological order (iteratively: no recursion limit) and calls each
node's hand-written VJP. Every op lives in ``minivae.ops`` with its forward and VJP
side by side.
"""
import contextlib

import numpy

from minivae._backend import device_of, fused, get_array_module, module_for_device

DEFAULT_FLOAT = numpy.float32
_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Within this block, ops record no graph (like ``torch.no_grad``)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


class Function:
    """One differentiable op. Subclasses define ``forward(ctx, *arrays, **params)``
    returning an array and ``backward(ctx, g)`` returning one gradient per input
    (``None`` where none flows). ``ctx`` is the node itself: ``ctx.xp`` is the array
    module, ``ctx.save(name=value)`` keeps what the VJP needs, ``ctx.needs_input_grad``
    says which inputs want a gradient.
    """

    def __init__(self, xp, needs_input_grad):
        self.xp = xp
        self.needs_input_grad = needs_input_grad
        self._saved = ()

    def save(self, **residuals):
        self.__dict__.update(residuals)
        self._saved += tuple(residuals)

    def fused(self, name, *arrays):
        """The fused kernels for this op on this backend and the dtypes of ``arrays``, or None: the
        only place a backend is chosen."""
        return fused(name, self.xp, *arrays)

    def release(self):
        """Drop the saved residuals once the VJP has run (memory is freed early)."""
        for name in self._saved:
            delattr(self, name)
        self._saved = ()
        self.released = True

    @classmethod
    def apply(cls, *inputs, **params):
        tensors = _lift(inputs)
        devices = {t.device for t in tensors}
        if len(devices) > 1:
            raise RuntimeError(f"{getattr(cls, 'name', cls.__name__)}: inputs are on different devices: "
                               + " and ".join(sorted(devices)))
        needs = tuple(t.requires_grad for t in tensors)
        ctx = cls(get_array_module(*(t.data for t in tensors)), needs)
        out = Tensor(ctx.forward(*(t.data for t in tensors), **params))
        if _grad_enabled and any(needs):
            out.requires_grad, out._ctx, out._parents = True, ctx, tensors
        return out

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, g):
        raise NotImplementedError(f"the VJP of {type(self).__name__} is not defined")


def _lift(inputs):
    """Tensors pass through; numbers and host arrays become constants on the device of the first
    tensor. A Python number takes the dtype of the first floating tensor, so ``x * 2`` stays
    float32 (filled in place on the device: no copy from the host)."""
    like = next((t for t in inputs if isinstance(t, Tensor) and t.dtype.kind == "f"), None)
    device = next((t.device for t in inputs if isinstance(t, Tensor)), "cpu")
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            out.append(x)
        elif isinstance(x, (bool, int, float)) and like is not None:
            out.append(Tensor(like.xp.full((), x, dtype=like.dtype)))
        else:  # an array already on a device stays there (a mismatch is then an error, not a copy)
            out.append(tensor(x, device=device if get_array_module(x) is numpy else device_of(x)))
    return out


class Tensor:
    """An n-dimensional array that records how it was computed."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_parents", "_retain")
    __array_priority__ = 1000  # ``ndarray + Tensor`` defers to Tensor.__radd__
    __hash__ = object.__hash__  # ``==`` is elementwise, identity stays hashable

    def __init__(self, data, requires_grad=False):
        xp = get_array_module(data)
        self.data = xp.asarray(data)  # NumPy ufuncs give scalars for 0-d: keep arrays
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require gradients, not {self.data.dtype}")
        self.requires_grad = requires_grad
        self.grad, self._ctx, self._parents, self._retain = None, None, (), False

    # ---- the backward pass -------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) · grad into ``leaf.grad`` for every leaf that
        requires gradients. ``grad`` defaults to 1 for a one-element tensor."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() on a tensor of shape {self.shape} needs grad= "
                    "(an upstream gradient of the same shape); only one-element tensors default to 1")
            grad = self.xp.ones_like(self.data)
        grad = grad.data if isinstance(grad, Tensor) else self.xp.asarray(grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"backward(): grad has shape {grad.shape}, tensor has {self.shape}")
        grads = {id(self): grad}
        for node in reversed(self._topological_order()):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node._ctx is None or node._retain:
                node.grad = g if node.grad is None else node.grad + g
            if node._ctx is None:
                continue
            ctx = node._ctx
            if getattr(ctx, "released", False):
                raise RuntimeError("backward through a graph a second time: pass retain_graph=True")
            input_grads = ctx.backward(g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            for parent, gp in zip(node._parents, input_grads):
                if gp is None or not parent.requires_grad:
                    continue
                if gp.shape != parent.shape:
                    raise RuntimeError(f"{type(ctx).__name__}.backward returned a gradient of "
                                       f"shape {gp.shape} for an input of shape {parent.shape}")
                gp = gp.astype(parent.dtype, copy=False)
                grads[id(parent)] = gp if id(parent) not in grads else grads[id(parent)] + gp
            if not retain_graph:
                ctx.release()

    def _topological_order(self):
        """Nodes in an order where each comes after all its inputs (iterative DFS)."""
        order, visited, stack = [], set(), [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif id(node) not in visited:
                visited.add(id(node))
                stack.append((node, True))
                stack.extend((p, False) for p in node._parents if p.requires_grad)
        return order

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (to study it)."""
        self._retain = True
        return self

    # ---- plain attributes ----------------------------------------------------------
    @property
    def xp(self):
        return get_array_module(self.data)

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    device = property(lambda self: device_of(self.data))
    is_leaf = property(lambda self: self._ctx is None)

    def __len__(self):
        return len(self.data)

    def __bool__(self):
        return bool(self.data)

    def numpy(self):
        """The data as a NumPy array (copied from the GPU if needed)."""
        return self.data.get() if self.device == "cuda" else self.data

    def item(self):
        return self.data.item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, flag=True):
        if flag and self.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require gradients, not {self.dtype}")
        self.requires_grad = flag
        return self

    def astype(self, dtype):
        return ops.cast(self, dtype=numpy.dtype(dtype))

    def to(self, device):
        """A copy on ``device`` (differentiable only within one device)."""
        if device == self.device:
            return self
        xp = module_for_device(device)
        data = xp.asarray(self.data) if device == "cuda" else self.data.get()
        return Tensor(data, requires_grad=self.requires_grad)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({self.numpy()!r}{grad}, device={self.device!r})"

    # ---- operators (each is an op in minivae.ops) --------------------------------
    def __add__(self, o): return ops.add(self, o)
    def __radd__(self, o): return ops.add(o, self)
    def __sub__(self, o): return ops.sub(self, o)
    def __rsub__(self, o): return ops.sub(o, self)
    def __mul__(self, o): return ops.mul(self, o)
    def __rmul__(self, o): return ops.mul(o, self)
    def __truediv__(self, o): return ops.div(self, o)
    def __rtruediv__(self, o): return ops.div(o, self)
    def __pow__(self, o): return ops.pow(self, o)
    def __rpow__(self, o): return ops.pow(o, self)
    def __matmul__(self, o): return ops.matmul(self, o)
    def __rmatmul__(self, o): return ops.matmul(o, self)
    def __neg__(self): return ops.neg(self)
    def __getitem__(self, index): return ops.getitem(self, index)

    # comparisons give non-differentiable boolean masks
    def __lt__(self, o): return Tensor(self.data < _raw(o))
    def __le__(self, o): return Tensor(self.data <= _raw(o))
    def __gt__(self, o): return Tensor(self.data > _raw(o))
    def __ge__(self, o): return Tensor(self.data >= _raw(o))
    def __eq__(self, o): return Tensor(self.data == _raw(o))
    def __ne__(self, o): return Tensor(self.data != _raw(o))

    # methods named as in NumPy / PyTorch
    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis=axis, keepdims=keepdims)
    def logsumexp(self, axis=None, keepdims=False): return ops.logsumexp(self, axis=axis, keepdims=keepdims)
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def sqrt(self): return ops.sqrt(self)
    def abs(self): return ops.abs(self)
    def tanh(self): return ops.tanh(self)
    def sigmoid(self): return ops.sigmoid(self)
    def relu(self): return ops.relu(self)
    def softmax(self, axis=-1, temperature=1.0): return ops.softmax(self, axis=axis, temperature=temperature)
    def log_softmax(self, axis=-1, temperature=1.0): return ops.log_softmax(self, axis=axis, temperature=temperature)
    def clip(self, min=None, max=None): return ops.clip(self, min, max)
    def reshape(self, *shape): return ops.reshape(self, shape[0] if len(shape) == 1 else shape)
    def transpose(self, *axes): return ops.transpose(self, axes[0] if len(axes) == 1 else (axes or None))
    def broadcast_to(self, shape): return ops.broadcast_to(self, shape)
    def argmax(self, axis=None): return Tensor(self.data.argmax(axis=axis))
    T = property(lambda self: ops.transpose(self))


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def tensor(data, requires_grad=False, dtype=None, device="cpu"):
    """A new leaf tensor. Python floats default to float32 (``DEFAULT_FLOAT``); NumPy arrays and
    scalars keep their dtype unless ``dtype`` is given; integers stay integers."""
    if isinstance(data, Tensor):
        data = data.data
    xp = module_for_device(device)
    if dtype is None and get_array_module(data) is numpy and not isinstance(data, (numpy.ndarray, numpy.generic)):
        probe = numpy.asarray(data)
        dtype = DEFAULT_FLOAT if probe.dtype == numpy.float64 else probe.dtype
    if device == "cpu" and get_array_module(data) is not numpy:
        data = data.get()
    return Tensor(xp.asarray(data, dtype=dtype), requires_grad=requires_grad)


from minivae import ops  # noqa: E402  (ops build on Function and Tensor above)
