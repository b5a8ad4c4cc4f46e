"""Tensor constructors with PyTorch's names and signatures: ``zeros(2, 3)`` or ``zeros((2, 3))``,
``dtype=`` (float32 by default, and for ``dtype=None``), ``device=``, ``requires_grad=``; ``rand``/``randn`` draw from
``rng=`` (or PyTorch's ``generator=``), else from the default generator (``minivae.manual_seed``)."""
import math

import numpy

from minivae import engine, ops
from minivae._backend import module_for_device
from minivae.engine import DEFAULT_FLOAT, Tensor
from minivae.random import _shape, resolve


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


def full(size, fill_value, *, dtype=None, device="cpu", requires_grad=False):
    """``fill_value`` (a number, a NumPy scalar or a 0-d tensor) everywhere. Without ``dtype`` the dtype follows it
    as in PyTorch: bool, int64 for an integer (NumPy's too), else float32. A value that does not fit the dtype is
    refused, as torch refuses it (NumPy would make 1e40 an infinite float32, and NaN or 1e30 an arbitrary int64)."""
    value = _number(fill_value, "full", "fill_value")
    if dtype is None:
        dtype = numpy.bool_ if isinstance(value, bool) else numpy.int64 if isinstance(value, int) else DEFAULT_FLOAT
    dtype = _dtype(dtype, "full")
    if dtype.kind == "f":
        with numpy.errstate(over="ignore"):
            fits = not math.isfinite(value) or numpy.isfinite(dtype.type(value))
    else:
        fits = dtype.kind not in "iu" or not isinstance(value, float) or (
            math.isfinite(value) and numpy.iinfo(dtype).min <= math.trunc(value) <= numpy.iinfo(dtype).max)
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


def cat(tensors, dim=0):
    """``ops.concatenate`` under PyTorch's name."""
    return ops.concatenate(tensors, axis=dim)


def stack(tensors, dim=0):
    return ops.stack(tensors, axis=dim)
