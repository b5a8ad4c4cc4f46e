"""Tensor and reverse-mode autodiff: the whole engine, readable in one sitting.

A ``Tensor`` holds an array (NumPy or CuPy) and, when it was computed from tensors
that require gradients, the ``Function`` node that made it. ``backward`` walks the
graph in reverse topological order (iteratively: no recursion limit) and calls each
node's hand-written VJP. Every op lives in ``minivae.ops`` with its forward and VJP
side by side.
"""
import contextlib
import functools
import operator

import numpy

from minivae._backend import DEVICES, device_constant, device_of, fused, get_array_module, module_for_device

DEFAULT_FLOAT = numpy.float32
_grad_enabled = True
_recorder = None  # a minivae.plan recorder while a step plan is being recorded, else None


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
    returning an array and ``backward(ctx, g)`` returning one gradient per input, of that
    input's shape (``None`` allowed only where the input needs none, or is declared in
    ``nondifferentiable_inputs``; the engine checks each). ``ctx`` is the node itself: ``ctx.xp``
    is the array module, ``ctx.save(name=value)`` keeps what the VJP needs, ``ctx.needs_input_grad``
    says which inputs want a gradient.

    A forward may return a tuple of arrays (one tensor each, e.g. a sample and its KL made in
    one pass); its ``backward`` then takes a tuple with one upstream gradient per output (``None``
    for an output no gradient reached) and runs once, after every use of every output.
    """

    n_outputs = 1
    nondifferentiable_inputs = ()  # positions of inputs no gradient flows to (a mask, fixed noise)
    released = False  # True once the VJP ran and dropped the residuals (see release)

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
        arrays = [t.data for t in tensors]
        xp = get_array_module(*arrays)
        if xp is not numpy and len({device_of(a) for a in arrays}) > 1:  # (inputs on one device: this test alone)
            tensors = _cpu_scalars_on_device(getattr(cls, "name", cls.__name__), tensors, xp)
            arrays = [t.data for t in tensors]
        needs = tuple([t.requires_grad for t in tensors])  # (a list comprehension: faster than a generator here)
        ctx = cls(xp, needs)
        recorded = params
        if _recorder is None:
            result = ctx.forward(*arrays, **params)
        else:  # live parameters (a step's τ, a Philox counter) pass their values
            result = unrecorded(ctx.forward, *arrays, **_recorder.unwrap(params))
        outs = tuple(map(Tensor, result)) if isinstance(result, tuple) else (Tensor(result),)
        if _recorder is not None:
            _recorder.forward(ctx, arrays, recorded, [o.data for o in outs])
        for out in outs:
            if getattr(out.data, "base", None) is not None or out.data is arrays[0]:  # (most results are new arrays)
                _share_version(out, tensors, arrays)
        if _grad_enabled and any(needs):
            ctx.n_outputs = len(outs)
            for k, out in enumerate(outs):
                out._ctx, out._parents, out._index = ctx, tensors, k
                out.requires_grad = out.data.dtype.kind == "f"  # an integer result (a cast) carries no gradient
            ctx.versions = tuple([t._counter[0] for t in tensors])
        return outs if isinstance(result, tuple) else outs[0]

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, g):
        raise NotImplementedError(f"the VJP of {type(self).__name__} is not defined")


def _share_version(out, tensors, arrays):
    """An output that views an input's memory (a slice, a reshape, a transpose; or is the first input's array, as
    a cast to its own dtype) counts its in-place changes with that input, as PyTorch's views share their base's
    version counter: writing through either must fail the backward pass of an op that saved the other."""
    memory = _memory(out.data)
    for t, a in zip(tensors, arrays):
        if _memory(a) is memory:
            out._counter = t._counter
            return


def _check_versions(node):
    """Refuse a backward through an op whose input was changed in place after the forward pass (as
    PyTorch's version counter): its VJP would silently use the new values. Stricter than PyTorch,
    which checks only the inputs an op saved."""
    for i, (t, seen) in enumerate(zip(node._parents, node._ctx.versions)):
        if t._counter[0] != seen:
            raise RuntimeError(f"{type(node._ctx).__name__}: input {i} (shape {t.shape}) was modified in place "
                               f"after the forward pass (version {t._version}, expected {seen}); compute the "
                               "forward again after changing it")


def _cpu_scalars_on_device(who, tensors, xp):
    """The inputs of an op on a device (xp's) when some are on the CPU: as in PyTorch, a 0-d CPU tensor serves as a
    scalar there (moved by _device_scalar); any other CPU input is refused with an error naming both devices, never
    copied over behind the caller's back (a move is ``.to()``). So is a 0-d one that requires grad (while grad mode
    is on), where PyTorch would copy its gradient back to the host in the backward pass: here the moved copy would
    get no gradient, and sending one back is a synchronizing copy a step plan could not replay on the device."""
    devices = [device_of(t.data) for t in tensors]
    out = []
    for t, device in zip(tensors, devices):
        if device == "cpu":
            if t.ndim or (t.requires_grad and _grad_enabled):
                there = next(d for d in devices if d != "cpu")
                why = "" if t.ndim else " (a 0-d CPU tensor serves as a scalar only if it does not require grad)"
                raise RuntimeError(f"{who}: inputs are on different devices: cpu and {there}{why}")
            t = Tensor(_device_scalar(xp, t.data))
        out.append(t)
    return out


def _device_scalar(xp, a):
    """0-d host array ``a`` as a 0-d array of ``xp`` (a device's) in ``a``'s dtype, the values and dtype an op on the
    CPU would take: a fill with its value as a number, as PyTorch passes a CPU scalar tensor to a CUDA kernel (CuPy
    takes no NumPy array as an operand, and a copy from pageable host memory waits for the device). While a step
    plan records, a step of it, so each replay reads ``a``'s value afresh, as an eager step (or a CPU plan) would."""
    moved = _fill(xp, a)
    if _recorder is not None:
        _recorder.call(functools.partial(_fill, xp), (a,), (moved,))
    return moved


def _fill(xp, a):
    return xp.full((), a.item(), a.dtype)


def _lift(inputs):
    """Tensors pass through; numbers and host arrays become constants on the device of the first tensor. A Python
    number is weak, as in NumPy 2 and PyTorch: it takes the dtype of the first floating tensor, so ``x * 2`` stays
    float32 (filled in place on the device: no copy from the host); with integer tensors alone an int takes the dtype
    NumPy 2 gives it beside them (``uint8 * 3`` stays uint8), and a float makes them and itself float32
    (``DEFAULT_FLOAT``, as ``tensor(2.5)`` and PyTorch: ``int64 + 2.5`` is float32, not NumPy's float64)."""
    for x in inputs:
        if not isinstance(x, Tensor):
            break
    else:
        return inputs
    like = next((t for t in inputs if isinstance(t, Tensor) and t.dtype.kind == "f"), None)
    first = next((t for t in inputs if isinstance(t, Tensor)), None)
    if like is None and first is not None and any(type(x) is float for x in inputs):
        return _lift([x.astype(DEFAULT_FLOAT) if isinstance(x, Tensor) else x for x in inputs])
    device = "cpu" if first is None else first.device
    out = []
    for x in inputs:
        if isinstance(x, Tensor):
            out.append(x)
        elif _recorder is not None and _recorder.is_live(x) and like is not None:
            out.append(Tensor(_recorder.live_constant(x, like.xp, like.dtype)))
        elif isinstance(x, (bool, int, float)) and like is not None:
            # NumPy's array() takes a quarter of full()'s time; on a device, one array per value, filled once
            out.append(Tensor(numpy.array(x, like.dtype) if like.xp is numpy else device_constant(like.data, x)))
        elif isinstance(x, (bool, int)) and first is not None:  # (a value out of that dtype's range: NumPy's error)
            dtype = numpy.result_type(*[t.dtype for t in inputs if isinstance(t, Tensor)], x)
            out.append(as_tensor(numpy.array(x, dtype), device=device))
        else:  # an array already on a device stays there (a mismatch is then an error, not a copy)
            out.append(as_tensor(x, device=device if get_array_module(x) is numpy else device_of(x)))
    return out


class Tensor:
    """An n-dimensional array that records how it was computed."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_parents", "_retain", "_index", "_counter", "_hooks")
    __array_priority__ = 1000  # ``ndarray + Tensor`` defers to Tensor.__radd__
    __hash__ = object.__hash__  # ``==`` is elementwise, identity stays hashable

    def __init__(self, data, requires_grad=False):
        if type(data) is not numpy.ndarray and device_of(data) == "cpu":
            data = numpy.asarray(data)  # NumPy ufuncs give scalars for 0-d: keep arrays
        self.data = data
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require gradients, not {self.data.dtype}")
        self.requires_grad = requires_grad
        self.grad, self._ctx, self._parents, self._retain, self._index, self._hooks = None, None, (), False, 0, None
        self._counter = [0]  # in-place changes, shared with the tensors that view the same memory (_check_versions)

    @property
    def _version(self):
        return self._counter[0]

    @_version.setter
    def _version(self, value):
        self._counter[0] = value

    # ---- the backward pass -------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) · grad into ``leaf.grad`` for every leaf that
        requires gradients. ``grad`` defaults to 1 for a one-element tensor."""
        backward([self], None if grad is None else [grad], retain_graph)

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (to study it)."""
        self._retain = True
        return self

    def register_hook(self, hook):
        """Call ``hook(grad)`` with this tensor's gradient (a tensor of no gradient) each time a backward pass or
        ``autograd.grad`` has found all of it, before it is stored in ``.grad`` or passed on to the inputs; a tensor
        it returns replaces the gradient (None keeps it). Hooks run in the order registered. Returns a handle whose
        ``remove()`` takes the hook off, as torch's."""
        if not self.requires_grad:
            raise RuntimeError("register_hook on a tensor that does not require grad (no gradient will reach it)")
        if self._hooks is None:
            self._hooks = {}
        key = max(self._hooks, default=-1) + 1
        self._hooks[key] = hook
        return _HookHandle(self._hooks, key)

    # ---- plain attributes ----------------------------------------------------------
    @property
    def xp(self):
        return get_array_module(self.data)

    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    device = property(lambda self: device_of(self.data))
    is_leaf = property(lambda self: self._ctx is None)

    def __len__(self):
        return len(self.data)

    def __bool__(self):
        _refuse_while_recording("a Python branch on a tensor's value (bool)")
        return bool(self.data)

    def numpy(self):
        """The data as a NumPy array (copied from the GPU if needed)."""
        _refuse_while_recording("reading a tensor's values (.numpy())")
        return self._host()

    def _host(self):
        return self.data.get() if self.device == "cuda" else self.data

    def item(self):
        _refuse_while_recording("reading a tensor's value (.item())")
        return self.data.item()

    def detach(self):
        """The same data, cut from the graph: an in-place change of either counts for both (as PyTorch's)."""
        out = Tensor(self.data)
        out._counter = self._counter
        return out

    def requires_grad_(self, flag=True):
        if flag and self.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require gradients, not {self.dtype}")
        self.requires_grad = flag
        return self

    def astype(self, dtype):
        return ops.cast(self, dtype=numpy.dtype(dtype))

    def to(self, *args, **kwargs):
        """This tensor on another device and/or of another dtype, as ``torch.Tensor.to``: ``to(device)``,
        ``to(dtype)``, ``to(device, dtype)``, ``to(other)`` (other's device and dtype), or the keywords; itself where
        nothing changes. A move between devices is a copy outside the graph (differentiable only within one
        device); a change of dtype is the differentiable ``astype``."""
        device, dtype = to_arguments(args, kwargs, "Tensor.to")
        out = self
        if device is not None and device != self.device:
            xp = module_for_device(device)
            out = Tensor(xp.asarray(self.data) if device == "cuda" else self.data.get(), requires_grad=self.requires_grad)
        return out if dtype is None or dtype == out.dtype else out.astype(dtype)

    def cpu(self): return self.to("cpu")
    def cuda(self): return self.to("cuda")

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({self._host()!r}{grad}, device={self.device!r})"  # printing is allowed while a plan records

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
    def __lt__(self, o): return self._compare(operator.lt, o)
    def __le__(self, o): return self._compare(operator.le, o)
    def __gt__(self, o): return self._compare(operator.gt, o)
    def __ge__(self, o): return self._compare(operator.ge, o)
    def __eq__(self, o): return self._compare(operator.eq, o)
    def __ne__(self, o): return self._compare(operator.ne, o)

    def _compare(self, op, o):
        return array_function(op, self, _on_device_of(self, o, op.__name__))

    # methods named as in NumPy / PyTorch (PyTorch's dim= and keepdim= are accepted too)
    def sum(self, axis=None, keepdims=False, **dim): return ops.sum(self, **_axis(axis, keepdims, **dim))
    def mean(self, axis=None, keepdims=False, **dim): return ops.mean(self, **_axis(axis, keepdims, **dim))
    def max(self, axis=None, keepdims=False, **dim): return ops.max(self, **_axis(axis, keepdims, **dim))
    def logsumexp(self, axis=None, keepdims=False, **dim):
        return ops.logsumexp(self, **_axis(axis, keepdims, **dim))
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
    def argmax(self, axis=None, keepdims=False, **dim): return self._array_reduction("argmax", axis, keepdims, **dim)
    def argmin(self, axis=None, keepdims=False, **dim): return self._array_reduction("argmin", axis, keepdims, **dim)

    def _array_reduction(self, name, axis, keepdims, **dim):
        """The array's own reduction ``name`` (no gradient: indices, bools) over NumPy's or torch's axis keywords."""
        where = _axis(axis, keepdims, **dim)
        return array_function(lambda a: getattr(a, name)(**where), self)
    T = property(lambda self: ops.transpose(self))

    # ---- PyTorch's names ---------------------------------------------------------------
    def size(self, dim=None):
        """The shape (a tuple), or its entry ``dim``, as ``torch.Tensor.size``."""
        return self.shape if dim is None else self.shape[dim]

    def numel(self): return self.data.size
    def dim(self): return self.ndim
    def tolist(self): return self.numpy().tolist()
    def float(self): return self.astype(numpy.float32)
    def double(self): return self.astype(numpy.float64)
    def half(self): return self.astype(numpy.float16)
    def long(self): return self.astype(numpy.int64)
    def view(self, *shape): return self.reshape(*shape)
    def permute(self, *dims): return ops.transpose(self, dims[0] if len(dims) == 1 else dims)
    def squeeze(self, dim=None): return ops.squeeze(self, dim)
    def unsqueeze(self, dim): return ops.unsqueeze(self, dim)
    def clone(self): return ops.clone(self)
    def min(self, axis=None, keepdims=False, **dim): return ops.min(self, **_axis(axis, keepdims, **dim))

    def var(self, axis=None, keepdims=False, *, correction=1, **dim):
        return ops.var(self, **_axis(axis, keepdims, **dim), correction=correction)

    def std(self, axis=None, keepdims=False, *, correction=1, **dim):
        return ops.std(self, **_axis(axis, keepdims, **dim), correction=correction)

    # PyTorch's methods that are ops of minivae.ops (each the same op as the function, no formula of its own)
    def add(self, other, *, alpha=1): return ops.add(self, other, alpha=alpha)
    def sub(self, other, *, alpha=1): return ops.sub(self, other, alpha=alpha)
    def mul(self, other): return ops.mul(self, other)
    def div(self, other): return ops.div(self, other)
    def pow(self, exponent): return ops.pow(self, exponent)
    def neg(self): return ops.neg(self)
    def square(self): return ops.square(self)
    def reciprocal(self): return ops.reciprocal(self)
    def rsqrt(self): return ops.rsqrt(self)
    def log1p(self): return ops.log1p(self)
    def expm1(self): return ops.expm1(self)
    def sin(self): return ops.sin(self)
    def cos(self): return ops.cos(self)
    def tan(self): return ops.tan(self)
    def asin(self): return ops.asin(self)
    def acos(self): return ops.acos(self)
    def atan(self): return ops.atan(self)
    def sinh(self): return ops.sinh(self)
    def cosh(self): return ops.cosh(self)
    def asinh(self): return ops.asinh(self)
    def acosh(self): return ops.acosh(self)
    def atanh(self): return ops.atanh(self)
    arcsin, arccos, arctan, arcsinh, arccosh, arctanh = asin, acos, atan, asinh, acosh, atanh  # (torch's aliases)
    def atan2(self, other): return ops.atan2(self, other)
    arctan2 = atan2
    def hypot(self, other): return ops.hypot(self, other)
    def logaddexp(self, other): return ops.logaddexp(self, other)
    def xlogy(self, other): return ops.xlogy(self, other)
    def log2(self): return ops.log2(self)
    def log10(self): return ops.log10(self)
    def exp2(self): return ops.exp2(self)
    def logit(self, eps=None): return ops.logit(self, eps)
    def erf(self): return ops.erf(self)
    def erfc(self): return ops.erfc(self)
    def erfinv(self): return ops.erfinv(self)
    def lgamma(self): return ops.lgamma(self)
    def digamma(self): return ops.digamma(self)
    def polygamma(self, n): return ops.polygamma(n, self)
    def maximum(self, other): return ops.maximum(self, other)
    def minimum(self, other): return ops.minimum(self, other)
    def clamp(self, min=None, max=None): return ops.clip(self, min, max)
    def matmul(self, other): return ops.matmul(self, other)
    def flatten(self, start_dim=0, end_dim=-1): return ops.shape.flatten(self, start_dim, end_dim)
    def expand(self, *sizes): return ops.shape.expand(self, *sizes)
    def expand_as(self, other): return ops.broadcast_to(self, other.shape)
    def chunk(self, chunks, dim=0): return tuple(ops.chunk(self, chunks, axis=dim))
    def split(self, split_size_or_sections, dim=0):
        """PyTorch's split: an int is each piece's size (``ops.split``'s, NumPy's, is the number of pieces)."""
        return tuple(ops.shape.split_sizes(self, split_size_or_sections, axis=dim))

    # more of PyTorch's methods: ops of minivae.ops.more_reduce, more_shape and rounding (see each for its VJP)
    def prod(self, axis=None, keepdims=False, **dim): return ops.prod(self, **_axis(axis, keepdims, **dim))
    def amax(self, axis=None, keepdims=False, **dim): return ops.amax(self, **_axis(axis, keepdims, **dim))
    def amin(self, axis=None, keepdims=False, **dim): return ops.amin(self, **_axis(axis, keepdims, **dim))
    def cumsum(self, axis=None, *, dim=None): return ops.cumsum(self, _axis(axis, False, dim)["axis"])
    def cumprod(self, axis=None, *, dim=None): return ops.cumprod(self, _axis(axis, False, dim)["axis"])

    def norm(self, p="fro", dim=None, keepdim=False):
        """The vector p-norm over ``dim`` (all entries when None), as torch.Tensor.norm ("fro" = 2; see ops.norm)."""
        return ops.norm(self, ord=p, axis=dim, keepdims=keepdim)

    def flip(self, *dims): return ops.flip(self, dims[0] if len(dims) == 1 else dims)
    def roll(self, shifts, dims=None): return ops.roll(self, shifts, dims)
    def repeat(self, *sizes): return ops.more_shape.repeat(self, *sizes)
    def repeat_interleave(self, repeats, dim=None): return ops.repeat_interleave(self, repeats, dim)
    def tile(self, *dims): return ops.tile(self, dims[0] if len(dims) == 1 else dims)
    def tril(self, diagonal=0): return ops.tril(self, diagonal)
    def triu(self, diagonal=0): return ops.triu(self, diagonal)
    def diagonal(self, offset=0, dim1=0, dim2=1): return ops.diagonal(self, offset, dim1, dim2)
    def trace(self): return ops.trace(self)
    def gather(self, dim, index): return ops.gather(self, dim, index)
    def take_along_dim(self, indices, dim=None): return ops.take_along_axis(self, indices, dim)
    def index_select(self, dim, index): return ops.index_select(self, dim, index)
    def take(self, index): return ops.take(self, index)
    def masked_fill(self, mask, value): return ops.masked_fill(self, mask, value)
    def sort(self, dim=-1, descending=False, stable=False): return ops.sort(self, dim, descending)
    def topk(self, k, dim=-1, largest=True, sorted=True): return ops.topk(self, k, dim, largest, sorted)
    def sign(self): return ops.sign(self)
    def floor(self): return ops.floor(self)
    def ceil(self): return ops.ceil(self)
    def trunc(self): return ops.trunc(self)

    def round(self, decimals=0):
        if decimals != 0:
            raise NotImplementedError(f"round: decimals={decimals} is not supported (only 0)")
        return ops.round(self)

    # comparisons and predicates by PyTorch's method names: bool tensors outside the graph, as the operators
    def eq(self, other): return self._compare(operator.eq, other)
    def ne(self, other): return self._compare(operator.ne, other)
    def lt(self, other): return self._compare(operator.lt, other)
    def le(self, other): return self._compare(operator.le, other)
    def gt(self, other): return self._compare(operator.gt, other)
    def ge(self, other): return self._compare(operator.ge, other)
    def isnan(self): return self._predicate("isnan", False)
    def isinf(self): return self._predicate("isinf", False)
    def isfinite(self): return self._predicate("isfinite", True)

    def _predicate(self, name, of_integers):
        """xp.<name> of a floating tensor; of an integer or bool one, ``of_integers`` everywhere (NumPy's isnan of
        bool is an error; PyTorch's is False)."""
        xp = self.xp
        if self.dtype.kind == "f":
            return array_function(getattr(xp, name), self)
        return array_function(lambda a: xp.full(a.shape, of_integers, dtype=bool), self)

    def all(self, axis=None, keepdims=False, **dim): return self._array_reduction("all", axis, keepdims, **dim)
    def any(self, axis=None, keepdims=False, **dim): return self._array_reduction("any", axis, keepdims, **dim)

    def t(self):
        """The transpose of a matrix (a tensor of ≤ 2 dimensions as it is), as ``torch.Tensor.t``."""
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor of at most 2 dimensions, not {self.ndim} (shape {self.shape}); "
                             "use .mT or transpose()")
        return ops.transpose(self)

    @property
    def mT(self):
        """The last two axes swapped (a batch of matrices transposed), as ``torch.Tensor.mT``."""
        if self.ndim < 2:
            raise ValueError(f".mT needs a tensor of at least 2 dimensions, not shape {self.shape}")
        return ops.transpose(self, (*range(self.ndim - 2), self.ndim - 1, self.ndim - 2))

    def type_as(self, other):
        """This tensor in ``other``'s dtype (itself where it has that dtype already, as PyTorch's)."""
        return self if self.dtype == other.dtype else self.astype(other.dtype)

    def _made(self, make, size, dtype, device, *args, **kwargs):
        """make(size, *args) in ``dtype`` on ``device``, this tensor's by default (PyTorch's ``new_*``)."""
        return make(size, *args, dtype=self.dtype if dtype is None else dtype,
                    device=self.device if device is None else device, **kwargs)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        from minivae.creation import _size, zeros
        return self._made(zeros, _size(size), dtype, device, requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        from minivae.creation import _size, ones
        return self._made(ones, _size(size), dtype, device, requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        from minivae.creation import _size, empty
        return self._made(empty, _size(size), dtype, device, requires_grad=requires_grad)

    def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
        from minivae.creation import full
        return self._made(full, size, dtype, device, fill_value, requires_grad=requires_grad)

    # bool masks: logical operators (bitwise on integers), outside the graph as the comparisons
    def __invert__(self): return array_function(operator.invert, self)
    def __and__(self, o): return self._compare(operator.and_, o)
    def __rand__(self, o): return self._compare(operator.and_, o)
    def __or__(self, o): return self._compare(operator.or_, o)
    def __ror__(self, o): return self._compare(operator.or_, o)
    def __xor__(self, o): return self._compare(operator.xor, o)
    def __rxor__(self, o): return self._compare(operator.xor, o)
    def logical_not(self): return array_function(self.xp.logical_not, self)

    # in place, as PyTorch: refused on a leaf that requires grad unless under no_grad() (an
    # optimizer's step); each change bumps ``_version`` so a backward through the old values raises
    def _modify(self, who, write, value=None, index=None):
        """write(data, value, index): ``index`` (a setitem's) is passed apart so that a step plan replays it from the
        arrays of the replay (a mask made from this batch), not the recording's. ``value`` and the index's arrays
        follow the ops' device rule (_on_device_of); ``who`` names the change in its error."""
        if _grad_enabled and (self.requires_grad or getattr(value, "requires_grad", False)):
            raise RuntimeError("in-place change of a tensor that requires grad (or from one): do it under "
                               "no_grad(), or write x = x + y")
        value = _on_device_of(self, value, who)
        index = index_on(self, index, who)
        write(self.data, value, index)
        if _recorder is not None:
            _recorder.write(write, self.data, value, index)
        self._version += 1
        return self

    def _inplace(self, value, op, method):
        in_graph = _grad_enabled and (self.requires_grad or getattr(value, "requires_grad", False))
        if in_graph and not (self.is_leaf and self.requires_grad):
            return op(self, value)  # part of a graph: a new node, as x = x + y
        return self._modify(method.strip("_"), lambda d, v, _: getattr(d, method)(v), value)

    def __iadd__(self, o): return self._inplace(o, ops.add, "__iadd__")
    def __isub__(self, o):
        ops.arith.refuse_bool_subtraction(self, o)  # (NumPy's in-place subtraction takes x −= True)
        return self._inplace(o, ops.sub, "__isub__")

    def __imul__(self, o): return self._inplace(o, ops.mul, "__imul__")
    def __itruediv__(self, o): return self._inplace(o, ops.div, "__itruediv__")
    def __setitem__(self, index, value): self._modify("setitem", lambda d, v, i: d.__setitem__(i, v), value, index)
    def copy_(self, src): return self._modify("copy_", lambda d, v, _: d.__setitem__(Ellipsis, v), src)
    def zero_(self): return self._modify("zero_", lambda d, v, _: d.fill(0))


def backward(tensors, grad_tensors=None, retain_graph=False):
    """Accumulate Σ_k d(tensors[k])/d(leaf) · grad_tensors[k] into ``leaf.grad`` for every leaf that
    requires gradients, in one pass over the graph (as ``torch.autograd.backward``): a node shared by
    several roots runs its VJP once. A grad defaults to 1 for a one-element tensor."""
    _backpropagate(tensors, grad_tensors, retain_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=False, create_graph=False, allow_unused=False):
    """(Σ_k d(outputs[k])/d(input) · grad_outputs[k] for each input), as ``torch.autograd.grad``: tensors with no
    gradient of their own, and no ``.grad`` anywhere changed. Only the VJPs of the nodes between the inputs and the
    outputs run. An input need not be a leaf; one that does not require grad is refused, and one the outputs do not
    depend on is too unless ``allow_unused`` (then its gradient is None). ``outputs``/``inputs``: a tensor or a
    sequence of them; the result is always a tuple."""
    if create_graph:
        raise NotImplementedError("grad(create_graph=True): minivae's VJPs are array code, not ops on tensors, so "
                                  "a gradient has no graph to differentiate again (no second derivatives)")
    _refuse_while_recording("autograd.grad (a step plan records backward() into .grad)")
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is not None and not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(f"grad(): input {i} does not require grad (it has no gradient to find)")
    found = _backpropagate(outputs, grad_outputs, retain_graph, targets={id(t) for t in inputs})
    out = []
    for i, t in enumerate(inputs):
        g = found.get(id(t))
        if g is None and not allow_unused:
            raise RuntimeError(f"grad(): input {i} was not used to compute the outputs; pass allow_unused=True "
                               "to get None for it")
        out.append(None if g is None else Tensor(g))
    return tuple(out)


def _backpropagate(tensors, grad_tensors=None, retain_graph=False, targets=None):
    """The backward pass of ``backward`` (``targets`` None: every leaf's and retained tensor's ḡ accumulated
    into its ``.grad``) or of ``grad`` (``targets``, a set of ids: their ḡ returned as {id: array}, nothing
    stored, and only the VJPs of nodes with a target upstream run)."""
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    if len(grad_tensors) != len(tensors):
        raise ValueError(f"backward(): {len(tensors)} tensors but {len(grad_tensors)} gradients")
    # stored: the arrays whose memory is already some tensor's .grad, or the caller's, or shared (a device's ḡ = 1),
    # by id. They are kept referenced here: an array freed during the pass (a root's ḡ, a .grad replaced by a sum)
    # would leave its id to a new one, which would then be taken for it and copied for nothing. (A replaced .grad is
    # not dropped from it early: it may be the caller's ḡ too, which no other leaf may take as its own.)
    grads, stored = {}, {}
    for root, grad in zip(tensors, grad_tensors):
        g = _root_grad(root, grad)
        _keep(stored, g)
        grads[id(root)] = g if id(root) not in grads else grads[id(root)] + g
    order = _topological_order(tensors)
    # feeding: the nodes whose VJP reaches a target (an input of grad), found in order, inputs before their uses
    feeding, found = set(), {}
    if targets is not None:
        for node in order:
            if any(id(p) in targets or id(p) in feeding for p in node._parents if p.requires_grad):
                feeding.add(id(node))
    # A node of several outputs runs its VJP once, at the last of its outputs in this order: by
    # then every use of every output has passed its gradient on.
    outputs_left = {}
    for node in order:
        if node._ctx is not None and node._ctx.n_outputs > 1:
            outputs_left[id(node._ctx)] = outputs_left.get(id(node._ctx), 0) + 1
    pending = {}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is not None and node._hooks:
            g = _run_hooks(node, g)
        if targets is not None:
            if g is not None and id(node) in targets:
                found[id(node)] = _own(g, stored)  # (not the caller's ḡ, nor a view another result shares)
                _keep(stored, found[id(node)])
        elif g is not None and (node._ctx is None or node._retain):
            node.grad = _own(g, stored) if node.grad is None else _add(node.grad, g)
            _keep(stored, node.grad)
            if _recorder is not None:
                _recorder.set_grad(node, node.grad)
        ctx = node._ctx
        if ctx is None or (targets is not None and id(node) not in feeding):
            continue
        if ctx.n_outputs > 1:
            slots = pending.setdefault(id(ctx), [None] * ctx.n_outputs)
            slots[node._index] = g
            outputs_left[id(ctx)] -= 1
            if outputs_left[id(ctx)]:
                continue
            g = tuple(pending.pop(id(ctx)))
            if all(gk is None for gk in g):
                continue
        elif g is None:
            continue
        if ctx.released:
            raise RuntimeError("backward through a graph a second time: pass retain_graph=True")
        _check_versions(node)
        input_grads = _checked_grads(ctx, node._parents, ctx.backward(g) if _recorder is None else unrecorded(ctx.backward, g))
        if _recorder is not None:
            _recorder.vjp(ctx, g, input_grads)
        for parent, gp in zip(node._parents, input_grads):
            if gp is not None:
                grads[id(parent)] = gp if id(parent) not in grads else _add(grads[id(parent)], gp)
        if not retain_graph:
            ctx.release()
    return found


class _HookHandle:
    """What ``register_hook`` returns: ``remove()`` takes the hook off (a second remove does nothing)."""

    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


def _run_hooks(node, g):
    """ḡ of ``node`` after its hooks (``register_hook``), each given the one before's result."""
    _refuse_while_recording("a tensor hook (Python that a replay would not run)")
    for hook in list(node._hooks.values()):
        out = hook(Tensor(g))
        if out is None:
            continue
        new = node.xp.asarray(_on_device_of(node, out, "a hook's gradient"), dtype=node.dtype)
        if new.shape != node.shape:
            raise RuntimeError(f"a hook returned a gradient of shape {new.shape} for a tensor of shape {node.shape}")
        g = new
    return g


def _add(a, b):
    """a + b, the accumulation of two gradients (recorded as one step of a plan)."""
    total = a + b
    if _recorder is not None:
        _recorder.call(operator.add, (a, b), (total,))
    return total


def _own(g, stored):
    """g as a tensor's first .grad: g itself, or a copy where g is not an array of its own to keep, as
    PyTorch's AccumulateGrad clones a gradient it cannot steal: one whose memory is already another
    tensor's .grad or the caller's (add's VJP hands ḡ to both inputs, reshape's a view of it), or a
    broadcast view (a VJP may return one, as negative_elbo's does). An in-place change of one .grad
    (clip_grad_norm_) must touch that one alone."""
    if id(_memory(g)) not in stored and not _broadcast(g):
        return g
    owned = g.copy()
    if _recorder is not None:
        _recorder.call(_copy, (g,), (owned,))
    return owned


def _memory(a):
    """The array whose memory a views (a itself if it owns its memory)."""
    while getattr(a, "base", None) is not None:  # NumPy's and CuPy's views name their base
        a = a.base
    return a


def _keep(stored, a):
    memory = _memory(a)
    stored[id(memory)] = memory


def _broadcast(a):
    """Whether array a shows one element at several places (a stride 0 along an axis longer than 1)."""
    return any(step == 0 and n > 1 for step, n in zip(a.strides, a.shape))


def _copy(a):
    return a.copy()


def to_arguments(args, kwargs, who):
    """(device or None, numpy dtype or None) of torch's ``to`` arguments: ``(device)``, ``(dtype)``, ``(device,
    dtype)``, ``(tensor)`` (its device and dtype), or the keywords ``device=`` and ``dtype=``. A device is "cpu" or
    "cuda"; a dtype anything ``numpy.dtype`` takes ("float64", numpy.float64). torch's ``non_blocking=`` is taken and
    has no effect (a copy between host and device is made at once)."""
    kwargs = {k: v for k, v in kwargs.items() if k != "non_blocking"}
    unknown = sorted(set(kwargs) - {"device", "dtype"})
    if unknown:
        raise TypeError(f"{who}() got an unexpected keyword argument {unknown[0]!r}")
    if len(args) == 1 and isinstance(args[0], Tensor):
        args = (args[0].device, args[0].dtype)
    if len(args) > 2:
        raise TypeError(f"{who}() takes a device, a dtype, both, or a tensor; got {len(args)} arguments")
    device, dtype = None, None
    for a in args:
        if isinstance(a, str) and a in DEVICES and device is None:
            device = a
            continue
        try:
            parsed = None if isinstance(a, (bool, int, float, Tensor)) or a is None else numpy.dtype(a)
        except TypeError:
            parsed = None
        if parsed is None or dtype is not None:
            raise TypeError(f"{who}(): {a!r} is neither a device {DEVICES} nor a dtype (or repeats one)")
        dtype = parsed
    for name, value in kwargs.items():
        if (device if name == "device" else dtype) is not None:
            raise TypeError(f"{who}() got {name} twice")
        if name == "device":
            module_for_device(value)  # checks it
            device = value
        else:
            dtype = numpy.dtype(value)
    return device, dtype


def array_function(fn, *inputs):
    """fn(*arrays) of the inputs' arrays, as a tensor (or a tuple of tensors) outside the graph: for the
    array computations that are not ops (a mask, a Gumbel-max sample's argmax, a moving average), so
    that a step plan being recorded (minivae.plan) records them. No gradient flows through it."""
    arrays = [_raw(x) for x in inputs]
    result = fn(*arrays) if _recorder is None else unrecorded(fn, *arrays)
    several = isinstance(result, tuple)
    outs = tuple(Tensor(r) for r in (result if several else (result,)))
    if _recorder is not None:
        _recorder.call(fn, arrays, [o.data for o in outs])
    return outs if several else outs[0]


def unrecorded(fn, *args, **kwargs):
    """fn(*args, **kwargs) with a plan's recording paused: an op's forward or VJP is replayed as one step,
    so what its own code does (a draw, an array function) must not be recorded again inside it."""
    global _recorder
    recorder, _recorder = _recorder, None
    try:
        return fn(*args, **kwargs)
    finally:
        _recorder = recorder


def _refuse_while_recording(what):
    if _recorder is not None:
        _recorder.refuse(what)


def _root_grad(root, grad):
    """The upstream gradient of one root of backward(), checked against its shape."""
    if not root.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad")
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() on a tensor of shape {root.shape} needs grad= "
                "(an upstream gradient of the same shape); only one-element tensors default to 1")
        return root.xp.ones_like(root.data) if root.xp is numpy else device_constant(root.data, 1, root.shape)
    # on the root's device as an op's operand would be (a tensor or a device array on another device is an error, not
    # a copy), in the root's dtype (as PyTorch casts it)
    grad = root.xp.asarray(_on_device_of(root, grad, "backward(grad=)"), dtype=root.dtype)
    if grad.shape != root.shape:
        raise ValueError(f"backward(): grad has shape {grad.shape}, tensor has {root.shape}")
    return grad


def _topological_order(roots):
    """Nodes in an order where each comes after all its inputs (iterative DFS)."""
    order, visited, stack = [], set(), [(root, False) for root in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in visited:
            visited.add(id(node))
            stack.append((node, True))
            stack.extend([(p, False) for p in node._parents if p.requires_grad])
    return order


def _checked_grads(ctx, parents, input_grads):
    """The gradients an op's ``backward`` returned, one per input, or an error naming the op and the
    input: a wrong count, ``None`` for an input that requires a gradient (unless the op declares it in
    ``nondifferentiable_inputs``), a wrong shape or a non-floating dtype is never skipped silently.
    A gradient is rounded to its input's floating dtype (float64 → float32), so ``.grad`` keeps the
    parameter's dtype; gradients of inputs that need none are dropped (``None`` in the result)."""
    name = getattr(ctx, "name", type(ctx).__name__)
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    if len(input_grads) != len(parents):
        raise RuntimeError(f"{name}.backward returned {len(input_grads)} gradients for {len(parents)} inputs")
    out = []
    for i, (parent, gp) in enumerate(zip(parents, input_grads)):
        if not parent.requires_grad or i in ctx.nondifferentiable_inputs:
            out.append(None)
            continue
        if gp is None:
            raise RuntimeError(f"{name}.backward returned no gradient for input {i}, which requires one "
                               "(an op lists inputs that never get one in nondifferentiable_inputs)")
        if gp.shape != parent.shape:
            raise RuntimeError(f"{name}.backward returned a gradient of shape {gp.shape} "
                               f"for input {i} of shape {parent.shape}")
        if gp.dtype.kind != "f":
            raise RuntimeError(f"{name}.backward returned a {gp.dtype} gradient for input {i} ({parent.dtype})")
        out.append(gp if gp.dtype == parent.dtype else gp.astype(parent.dtype))
    return out


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _on_device_of(t, x, who):
    """x's array (or x, a number) as the operand of tensor t's array code outside Function.apply (a comparison, an
    in-place change, backward's ḡ), by the ops' rule (Function.apply, _lift): numbers as they are, host arrays and
    lists copied to t's device, a 0-d CPU tensor taken as a scalar there (as PyTorch takes one; no gradient flows
    through these), and any other tensor or device array on another device refused with the ops' error naming both
    devices, never copied over behind the caller's back (as PyTorch; a move between devices is ``.to()``)."""
    data = _raw(x)
    if data is None or isinstance(data, (bool, int, float, numpy.generic)):  # CuPy takes these as they are
        return data
    here, there = t.device, device_of(data)
    if there == here:
        return data
    if isinstance(x, Tensor) and there == "cpu" and not x.ndim:
        return _device_scalar(module_for_device(here), data)
    if isinstance(x, Tensor) or there != "cpu":
        raise RuntimeError(f"{who}: inputs are on different devices: {min(here, there)} and {max(here, there)}")
    return module_for_device(here).asarray(data)


def index_on(t, index, who):
    """``index`` (a getitem's or a setitem's: one part or a tuple of parts) for tensor t, each part by _index_on."""
    if isinstance(index, tuple):
        return tuple([_index_on(t, i, who) for i in index])
    return _index_on(t, index, who)


def _index_on(t, i, who):
    """One part of an index for tensor t, a tensor as its array. As PyTorch's indices, an index array on the CPU (a
    tensor or a host array) serves on either device, moved to t's device by one explicit copy (made when a plan
    records, as _lift's copies of host operands: a replay reads that copy); one on a device indexes a tensor there
    only, and on the CPU is an error naming both devices. Slices, numbers, None, Ellipsis and lists are on no
    device: as they are."""
    data = _raw(i)
    if not hasattr(data, "shape"):
        return data
    here, there = t.device, device_of(data)
    if there == here:
        return data
    if here == "cpu":
        raise RuntimeError(f"{who}: the index is on {there}, the tensor on cpu (move one of them with .to())")
    return module_for_device(here).asarray(data) if isinstance(data, numpy.ndarray) else data


def _axis(axis, keepdims, dim=None, keepdim=None):
    """NumPy's axis=/keepdims= or PyTorch's dim=/keepdim= (not both) as ops' keywords."""
    if dim is not None and axis is not None:
        raise TypeError("give axis= or dim=, not both")
    return {"axis": axis if dim is None else dim, "keepdims": keepdims if keepdim is None else keepdim}


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new leaf tensor holding a copy of ``data``, as ``torch.tensor`` (``as_tensor`` shares its memory where it
    can). Python floats default to float32 (``DEFAULT_FLOAT``); NumPy arrays and scalars keep their dtype unless
    ``dtype`` is given; integers stay integers. Without ``device``, data on a device (a tensor, a CuPy array) stays
    there and everything else goes to the CPU, as torch.tensor keeps a tensor's device."""
    source = data.data if isinstance(data, Tensor) else data
    dtype = _dtype_for(source, dtype)
    if _recorder is None:
        return Tensor(_on_device(source, dtype, device, copy=True), requires_grad=requires_grad)
    # while a step plan records, the copy is a step of it: each replay copies again, as each eager step would, so
    # that an in-place change of the copy does not pile up over the replays
    source = source if hasattr(source, "shape") else numpy.asarray(source)
    copied = _on_device(source, dtype, device, copy=True)
    _recorder.call(lambda s: _on_device(s, dtype, device, copy=True), (source,), (copied,))
    return Tensor(copied, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None):
    """``data`` as a tensor without a copy where it already is an array of that dtype on that device (as
    ``torch.as_tensor``: a change of one is a change of the other), else converted as ``tensor`` does (without
    ``device``, data on a device stays there)."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == dtype) and device in (None, data.device):
        return data
    source = data.data if isinstance(data, Tensor) else data
    return Tensor(_on_device(source, _dtype_for(source, dtype), device, copy=False))


def _dtype_for(source, dtype):
    """``dtype``, or for Python numbers and lists the dtype NumPy gives them with float64 made float32."""
    if dtype is None and get_array_module(source) is numpy and not isinstance(source, (numpy.ndarray, numpy.generic)):
        probe = numpy.asarray(source)
        return DEFAULT_FLOAT if probe.dtype == numpy.float64 else probe.dtype
    return dtype


def _on_device(source, dtype, device, copy):
    """``source`` as an array of ``dtype`` on ``device`` (None: the device it is on): a copy if ``copy``, else one
    only where needed."""
    if device is None:
        device = device_of(source)
    if device == "cpu" and get_array_module(source) is not numpy:
        source = source.get()  # a copy already
    xp = module_for_device(device)
    return xp.array(source, dtype=dtype, copy=True) if copy else xp.asarray(source, dtype=dtype)


from minivae import ops  # noqa: E402  (ops build on Function and Tensor above)
