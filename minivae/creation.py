"""Tensor constructors with PyTorch's names and signatures: ``zeros(2, 3)`` or ``zeros((2, 3))``,
``dtype=`` (float32 by default, and for ``dtype=None``), ``device=``, ``requires_grad=``; ``rand``/``randn``/``randint``
draw from ``rng=`` (or PyTorch's ``generator=``), else from the default generator (``minivae.manual_seed``). The
``*_like`` functions take the input's shape, and its dtype and device unless given (as PyTorch's). Each array is made
on its device by the device's array module (CuPy's ``zeros``, ``eye``, …): nothing is built on the host and copied,
except ``randint``'s integers (the Generator draws them on the host)."""
import math

import numpy

from minivae import engine, ops
from minivae._backend import device_of, module_for_device
from minivae.engine import DEFAULT_FLOAT, Tensor
from minivae.random import _float_dtype, _integer, _shape, resolve


def _size(size):
    """``zeros(2, 3)``'s, ``zeros((2, 3))``'s or ``zeros(numpy.array([2, 3]))``'s sizes as a tuple of ints (a bool or a
    negative size refused). A 1-D integer array is the sizes, as NumPy's zeros takes it (torch.zeros refuses an array:
    minivae's arrays are NumPy's, and a shape computed as one is taken as it is); other arrays are refused naming them."""
    if len(size) == 1 and (isinstance(size[0], (tuple, list)) or getattr(size[0], "ndim", 0)):
        return _shape(size[0] if hasattr(size[0], "ndim") else tuple(size[0]), "size")
    return _shape(tuple(size), "size")


def _dtype(dtype, who):
    """``dtype``, with None as float32 (torch's default dtype; NumPy's None is float64); a dtype that is not bool,
    integer or floating (complex, object, str, datetime) is refused: minivae has no complex tensors, and the ops take
    no other kind."""
    dtype = numpy.dtype(DEFAULT_FLOAT if dtype is None else dtype)
    if dtype.kind not in "biuf":
        raise TypeError(f"{who}: dtype {dtype} is not a real dtype (bool, integer or floating); minivae has no complex "
                        "tensors")
    return dtype


def _number(value, who, name):
    """A Python bool, int or float from a number, a NumPy scalar or a 0-d array or tensor (as torch takes a 0-d
    tensor for a number); an array of more values, a complex number (minivae has no complex tensors) and
    anything else are refused."""
    if isinstance(value, Tensor):
        value = value.data
    if hasattr(value, "ndim"):
        if value.ndim != 0:
            raise TypeError(f"{who}: {name} must be a number, not an array of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, complex):
        raise TypeError(f"{who}: {name} {value!r} is complex; minivae has no complex tensors")
    if not isinstance(value, (bool, int, float)):
        raise TypeError(f"{who}: {name} must be a number, not {type(value).__name__}")
    return value


def _new(make, requires_grad):
    """A tensor of ``make()``'s new array. While a step plan records, ``make`` is a step of it: each replay makes a new
    array, as each eager step does, so that one changed in place does not keep what the last replay left in it."""
    data = make()
    if engine._recorder is not None:
        engine._recorder.call(make, (), (data,))
    return Tensor(data, requires_grad=requires_grad)


def zeros(*size, dtype=DEFAULT_FLOAT, device="cpu", requires_grad=False):
    xp, shape, dtype = module_for_device(device), _size(size), _dtype(dtype, "zeros")
    return _new(lambda: xp.zeros(shape, dtype), requires_grad)


def ones(*size, dtype=DEFAULT_FLOAT, device="cpu", requires_grad=False):
    xp, shape, dtype = module_for_device(device), _size(size), _dtype(dtype, "ones")
    return _new(lambda: xp.ones(shape, dtype), requires_grad)


def empty(*size, dtype=DEFAULT_FLOAT, device="cpu", requires_grad=False):
    """Uninitialised memory, as ``torch.empty``: the device module's ``empty`` (whatever the allocator held; write
    before reading)."""
    xp, shape, dtype = module_for_device(device), _size(size), _dtype(dtype, "empty")
    return _new(lambda: xp.empty(shape, dtype), requires_grad)


def full(size, fill_value, *, dtype=None, device="cpu", requires_grad=False):
    """``fill_value`` (a number, a NumPy scalar or a 0-d tensor) everywhere. Without ``dtype`` the dtype follows it
    as in PyTorch: bool, int64 for an integer (NumPy's too), else float32. A value that does not fit the dtype is
    refused, as torch refuses it (NumPy would make 1e40 an infinite float32, and NaN or 1e30 an arbitrary int64; CuPy
    would make 300 an int8 44)."""
    value = _number(fill_value, "full", "fill_value")
    if dtype is None:
        dtype = numpy.bool_ if isinstance(value, bool) else numpy.int64 if isinstance(value, int) else DEFAULT_FLOAT
    dtype = _dtype(dtype, "full")
    if dtype.kind == "f":
        try:
            with numpy.errstate(over="ignore"):
                fits = not math.isfinite(value) or numpy.isfinite(dtype.type(value))
        except OverflowError:  # an int beyond even float64's range (10**400): Python refuses to make it a float
            fits = False
    else:  # an integer out of range too (NumPy refuses it with OverflowError, CuPy's fill wraps it around: 300 → 44)
        fits = dtype.kind not in "iu" or ((isinstance(value, int) or math.isfinite(value)) and
                                          numpy.iinfo(dtype).min <= math.trunc(value) <= numpy.iinfo(dtype).max)
    if not fits:
        raise ValueError(f"full: fill_value {value!r} cannot be converted to {dtype} without overflow")
    xp, shape = module_for_device(device), _size((size,))
    return _new(lambda: xp.full(shape, value, dtype), requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device="cpu", requires_grad=False):
    """[start, end) by ``step`` (``arange(n)`` counts from 0), as torch.arange: int64 when every argument is an integer
    (Python's, NumPy's or a 0-d integer tensor), else float32.

    The n = ⌈(end − start)/step⌉ values start + i·step are computed in float64 and rounded once to a floating
    ``dtype``: NumPy's arange adds a step already rounded to the dtype, so its float32 values drift (its
    ``arange(1e6, 1e6 + 10, 0.01, dtype=float32)`` is 1e6 throughout). An integer ``dtype`` takes integer
    arguments (2.0 is one), counted exactly; a fractional one is refused, where torch would truncate it and
    NumPy round its step. A zero step, a step leading away from ``end`` and a NaN or infinite bound are
    refused, as torch refuses them.
    """
    if end is None:
        start, end = 0, start
    start, end, step = (_number(v, "arange", name) for v, name in ((start, "start"), (end, "end"), (step, "step")))
    integers = not any(isinstance(v, float) for v in (start, end, step))
    dtype = numpy.dtype(numpy.int64 if dtype is None and integers else _dtype(dtype, "arange"))
    if not all(math.isfinite(v) for v in (start, end, step)):
        raise ValueError(f"arange: unsupported range {start} → {end} by {step}")
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(f"arange: the step {step} leads away from end: {start} → {end}")
    xp = module_for_device(device)
    if dtype.kind in "iub":
        if not all(float(v).is_integer() for v in (start, end, step)):
            raise ValueError(f"arange: an integer dtype ({dtype}) takes integer bounds and step, got {start}, {end}, {step}")
        start, end, step = int(start), int(end), int(step)
        return _new(lambda: xp.arange(start, end, step, dtype=dtype), requires_grad)
    n = math.ceil((end - start) / step)
    return _new(lambda: (start + xp.arange(n, dtype=numpy.float64) * step).astype(dtype), requires_grad)


def linspace(start, end, steps, *, dtype=None, device="cpu", requires_grad=False):
    """``steps`` values from ``start`` to ``end``, both included, evenly spaced, as torch.linspace (float32 by default).

    Value i is start + i·δ in the first half and end − (steps − 1 − i)·δ in the second, δ = (end − start)/(steps − 1)
    (PyTorch's formula: both ends exact), computed in float64 and rounded once to ``dtype``. An integer dtype takes
    the bounds and then the values truncated toward zero, as torch: linspace(0, 10, 5) is [0, 2, 5, 7, 10],
    linspace(0.5, 9.9, 5) [0, 2, 4, 6, 9]; bounds outside its range are refused. Negative ``steps``, a bool dtype
    (as torch refuses them) and a NaN or infinite bound are refused (torch gives NaN throughout)."""
    start, end = _number(start, "linspace", "start"), _number(end, "linspace", "end")
    if isinstance(steps, (bool, numpy.bool_)) or not isinstance(steps, (int, numpy.integer)):
        raise TypeError(f"linspace: steps must be an integer, not {steps!r}")
    if steps < 0:
        raise ValueError(f"linspace: the number of steps must be non-negative, got {steps}")
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"linspace: unsupported range {start} → {end}")
    dtype = _dtype(dtype, "linspace")
    if dtype.kind == "b":
        raise TypeError("linspace: dtype bool is not supported (as in PyTorch)")
    if dtype.kind in "iu":  # the bounds in the dtype first, as torch takes them
        start, end = math.trunc(start), math.trunc(end)
        info = numpy.iinfo(dtype)
        if not (info.min <= min(start, end) and max(start, end) <= info.max):
            raise ValueError(f"linspace: {start} → {end} is not within {dtype}'s range [{info.min}, {info.max}]")
    xp, n, start, end = module_for_device(device), int(steps), float(start), float(end)
    delta = (end - start) / (n - 1) if n > 1 else 0.0

    def make():  # (one step: start alone, as torch)
        i = xp.arange(n, dtype=numpy.float64)
        return xp.where(i < max(n // 2, 1), start + i * delta, end - (n - 1 - i) * delta).astype(dtype)
    return _new(make, requires_grad)


def eye(n, m=None, *, dtype=DEFAULT_FLOAT, device="cpu", requires_grad=False):
    """The n × m matrix (m = n by default) of ones on the diagonal and zeros elsewhere, as torch.eye."""
    shape, dtype = _shape((n,) if m is None else (n, m), "eye: size"), _dtype(dtype, "eye")
    xp = module_for_device(device)
    return _new(lambda: xp.eye(shape[0], shape[-1], dtype=dtype), requires_grad)


def _like(x, dtype, device, who):
    """The shape of tensor (or array) ``x``, and ``dtype`` and ``device`` or else x's (PyTorch's ``*_like``)."""
    data = x.data if isinstance(x, Tensor) else x
    if not (hasattr(data, "shape") and hasattr(data, "dtype")):
        raise TypeError(f"{who}: input must be a tensor or an array, not {type(x).__name__}")
    return data.shape, data.dtype if dtype is None else dtype, device_of(data) if device is None else device


def zeros_like(input, *, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device, "zeros_like")
    return zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(input, *, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device, "ones_like")
    return ones(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(input, *, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device, "empty_like")
    return empty(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):
    """``fill_value`` everywhere, in the input's dtype unless ``dtype`` is given (not the fill's, as torch.full_like);
    a value the dtype cannot hold is refused as ``full`` refuses it."""
    shape, dtype, device = _like(input, dtype, device, "full_like")
    return full(shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def _generator(rng, generator):
    """``rng=`` or torch's name ``generator=``; given both, the one silently left out would not be drawn from."""
    if rng is not None and generator is not None:
        raise TypeError("give rng= or generator=, not both")
    return resolve(generator if rng is None else rng)


def rand(*size, rng=None, generator=None, dtype=DEFAULT_FLOAT, device="cpu", requires_grad=False):
    """Uniforms in (0, 1) (open: never exactly 0, unlike PyTorch's [0, 1))."""
    return Tensor(_generator(rng, generator).uniform(_size(size), dtype, device=device), requires_grad=requires_grad)


def randn(*size, rng=None, generator=None, dtype=DEFAULT_FLOAT, device="cpu", requires_grad=False):
    """Standard normals."""
    return Tensor(_generator(rng, generator).normal(_size(size), dtype, device=device), requires_grad=requires_grad)


def rand_like(input, *, rng=None, generator=None, dtype=None, device=None, requires_grad=False):
    """``rand`` of the input's shape, dtype (a floating one) and device unless given."""
    shape, dtype, device = _like(input, dtype, device, "rand_like")
    return rand(shape, rng=rng, generator=generator, dtype=_float_dtype(dtype, "rand_like"), device=device,
                requires_grad=requires_grad)


def randn_like(input, *, rng=None, generator=None, dtype=None, device=None, requires_grad=False):
    """``randn`` of the input's shape, dtype (a floating one) and device unless given."""
    shape, dtype, device = _like(input, dtype, device, "randn_like")
    return randn(shape, rng=rng, generator=generator, dtype=_float_dtype(dtype, "randn_like"), device=device,
                 requires_grad=requires_grad)


def randint(low, high=None, size=None, *, rng=None, generator=None, dtype=numpy.int64, device="cpu",
            requires_grad=False):
    """Integers uniform on [low, high), as torch.randint: ``randint(high, size)`` or ``randint(low, high, size)``,
    int64 by default. Drawn by the Generator's ``integers`` (exact for any range) in an integer ``dtype``; a floating
    or bool dtype takes int64 draws cast to it, as torch allows. On the host: on a device, the values are copied there
    once (the Generator has no device version of this draw), and a step plan cannot record the draw."""
    if size is None:
        if high is None:
            raise TypeError("randint: give randint(high, size) or randint(low, high, size)")
        low, high, size = 0, low, high
    low, high = _integer(low, "randint: low"), _integer(high, "randint: high")
    dtype = _dtype(dtype, "randint")
    shape, xp = _size((size,)), module_for_device(device)
    values = _generator(rng, generator).integers(low, high, shape, dtype if dtype.kind in "iu" else numpy.int64)
    values = values.astype(dtype, copy=False)
    return Tensor(values if xp is numpy else xp.asarray(values), requires_grad=requires_grad)


def cat(tensors, dim=0):
    """``ops.concatenate`` under PyTorch's name."""
    return ops.concatenate(tensors, axis=dim)


def stack(tensors, dim=0):
    return ops.stack(tensors, axis=dim)
