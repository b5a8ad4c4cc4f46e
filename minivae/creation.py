"""Tensor constructors with PyTorch's names and signatures: ``zeros(2, 3)`` or ``zeros((2, 3))``,
``dtype=`` (float32 by default), ``device=``, ``requires_grad=``; ``rand``/``randn`` draw from
``rng=`` (or PyTorch's ``generator=``), else from the default generator (``minivae.manual_seed``)."""
import numpy

from minivae import engine, ops
from minivae._backend import module_for_device
from minivae.engine import DEFAULT_FLOAT, Tensor
from minivae.random import resolve


def _size(size):
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)


def _new(make, requires_grad):
    """A tensor of ``make()``'s new array. While a step plan records, ``make`` is a step of it: each replay makes a new
    array, as each eager step does, so that one changed in place does not keep what the last replay left in it."""
    data = make()
    if engine._recorder is not None:
        engine._recorder.call(make, (), (data,))
    return Tensor(data, requires_grad=requires_grad)


def zeros(*size, dtype=DEFAULT_FLOAT, device="cpu", requires_grad=False):
    xp, shape = module_for_device(device), _size(size)
    return _new(lambda: xp.zeros(shape, dtype), requires_grad)


def ones(*size, dtype=DEFAULT_FLOAT, device="cpu", requires_grad=False):
    xp, shape = module_for_device(device), _size(size)
    return _new(lambda: xp.ones(shape, dtype), requires_grad)


def full(size, fill_value, *, dtype=None, device="cpu", requires_grad=False):
    """``fill_value`` everywhere; the dtype follows it as in PyTorch (bool, int64, else float32)."""
    if dtype is None:
        dtype = numpy.bool_ if isinstance(fill_value, bool) else (
            numpy.int64 if isinstance(fill_value, int) else DEFAULT_FLOAT)
    xp, shape = module_for_device(device), _size((size,))
    return _new(lambda: xp.full(shape, fill_value, dtype), requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device="cpu", requires_grad=False):
    """[start, end) by ``step`` (``arange(n)`` counts from 0); int64 for integer arguments, else float32."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = numpy.int64 if all(isinstance(v, int) for v in (start, end, step)) else DEFAULT_FLOAT
    xp = module_for_device(device)
    return _new(lambda: xp.arange(start, end, step, dtype=dtype), requires_grad)


def rand(*size, rng=None, generator=None, dtype=DEFAULT_FLOAT, device="cpu", requires_grad=False):
    """Uniforms in (0, 1) (open: never exactly 0, unlike PyTorch's [0, 1))."""
    return Tensor(resolve(rng or generator).uniform(_size(size), dtype, device=device), requires_grad=requires_grad)


def randn(*size, rng=None, generator=None, dtype=DEFAULT_FLOAT, device="cpu", requires_grad=False):
    """Standard normals."""
    return Tensor(resolve(rng or generator).normal(_size(size), dtype, device=device), requires_grad=requires_grad)


def cat(tensors, dim=0):
    """``ops.concatenate`` under PyTorch's name."""
    return ops.concatenate(tensors, axis=dim)


def stack(tensors, dim=0):
    return ops.stack(tensors, axis=dim)
