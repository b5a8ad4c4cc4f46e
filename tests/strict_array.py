"""A strict stand-in for CuPy on the CPU: "device" arrays that refuse to become NumPy arrays
behind the code's back, and log every copy to the host that the code asks for.

``StrictArray`` wraps a ``numpy.ndarray``. Like ``cupy.ndarray`` it

- raises TypeError from ``__array__`` (so ``numpy.asarray(a)`` fails, as it does on CuPy),
- refuses host ``numpy.ndarray`` operands in arithmetic and in its module's functions
  (CuPy's "Unsupported type <class 'numpy.ndarray'>"), while NumPy and Python scalars are fine,
- returns 0-d arrays, never scalars, from reductions and elementwise functions,
- copies to the host only through ``get()``, ``item()``, ``tolist()``, ``float()``/``int()``/
  ``bool()``/``index``, ``repr``/``format`` — each of which appends one entry to ``LOG``;
- copies host data to the device through ``strict.asarray``/``array`` and ``set()`` (each upload of host
  data is logged in ``UPLOADS``: noise drawn on the host and then copied shows up there).

``strict`` is its array module (as ``cupy``): each NumPy function, run on the unwrapped data, with
the results wrapped. ``emulating()`` makes these arrays the "cuda" device of minivae::

    with emulating(), record() as log:
        ...                      # device="cuda" means StrictArray here
    assert log == []             # no copy to the host was made (record(UPLOADS): none to the device)

``__minivae_device_ptr__()`` gives the address of the data, for the host emulation of the kernels.
"""
import contextlib
import sys
import types
import weakref

import numpy

from minivae._backend import emulate_cuda

LOG = []      # one (kind, shape, "file:line") per device→host conversion, oldest first
UPLOADS = []  # the same for each copy of host data to the device


def _caller():
    """The first frame outside this file: where the conversion was asked for."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else "?"


def _log(kind, a, log=LOG):
    log.append((kind, getattr(a, "shape", ()), _caller()))


@contextlib.contextmanager
def record(log=LOG):
    """The entries ``log`` (conversions, or UPLOADS) gains within this block: a list, filled when
    the block ends."""
    start = len(log)
    entries = []
    try:
        yield entries
    finally:
        entries.extend(log[start:])


_SCALARS = (int, float, complex, bool, numpy.generic)


def _unwrap(x, who):
    """The NumPy data behind strict arrays, anywhere in nested lists/tuples; host arrays refused."""
    if isinstance(x, StrictArray):
        return x._a
    if isinstance(x, numpy.ndarray):
        raise TypeError(f"{who}: a host numpy.ndarray (shape {x.shape}) mixed with device arrays; "
                        "copy it explicitly with asarray")
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, who) for v in x)
    return x


_owners = weakref.WeakValueDictionary()  # id of a NumPy array that owns its memory → the StrictArray made for it


def _owns_memory(a):
    return not isinstance(a.base, numpy.ndarray)


def _wrap(x):
    if isinstance(x, (numpy.ndarray, numpy.generic)) and not isinstance(x, StrictArray):
        return StrictArray.of(numpy.asarray(x))
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _unwrap_index(key):
    """Indices may hold device arrays (masks, integer arrays) or host ones (as CuPy accepts)."""
    if isinstance(key, StrictArray):
        return key._a
    if isinstance(key, tuple):
        return tuple(_unwrap_index(k) for k in key)
    return key


class StrictArray:
    """A "device" array: NumPy data that only leaves through logged, explicit copies."""

    __slots__ = ("_a", "__weakref__")
    __array_priority__ = 100  # ``ndarray + StrictArray`` comes here (and is refused)
    __hash__ = None

    def __init__(self, a):
        self._a = a
        if _owns_memory(a):
            _owners.setdefault(id(a), self)

    @classmethod
    def of(cls, a):
        """The StrictArray of NumPy array ``a``: for an array that owns its memory, the one already made for it if
        any (as CuPy hands back the array itself, ``ascontiguousarray`` of a contiguous one)."""
        owner = _owners.get(id(a)) if _owns_memory(a) else None
        return owner if owner is not None and owner._a is a else cls(a)

    @property
    def base(self):
        """As CuPy's: the array whose memory this view shows (the same object every time), None for an array that
        owns its memory. minivae.engine tells a gradient that is a view of another array by it."""
        root = self._a
        while not _owns_memory(root):
            root = root.base
        return None if root is self._a else StrictArray.of(root)

    # ---- copies to the host: explicit, and logged ----------------------------------
    def __array__(self, dtype=None, copy=None):
        _log("__array__", self)
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self):
        _log("get", self)
        return self._a.copy()

    def item(self):
        _log("item", self)
        return self._a.item()

    def tolist(self):
        _log("tolist", self)
        return self._a.tolist()

    def __float__(self):
        _log("float", self)
        return float(self._a)

    def __int__(self):
        _log("int", self)
        return int(self._a)

    def __index__(self):
        _log("index", self)
        return self._a.__index__()

    def __complex__(self):
        _log("complex", self)
        return complex(self._a)

    def __bool__(self):
        _log("bool", self)
        return bool(self._a)

    def __repr__(self):
        _log("repr", self)
        return f"strict({self._a!r})"

    def __format__(self, spec):
        _log("format", self)
        return format(self._a, spec)

    __str__ = __repr__

    # ---- what stays on the device --------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: StrictArray(self._a.T))
    device = "cuda"

    def __minivae_device_ptr__(self):
        return self._a.ctypes.data

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (StrictArray(numpy.asarray(row)) for row in self._a)

    def __getitem__(self, key):
        return _wrap(self._a[_unwrap_index(key)])

    def __setitem__(self, key, value):
        # CuPy copies a host value over (an upload, not a conversion)
        self._a[_unwrap_index(key)] = value._a if isinstance(value, StrictArray) else value

    def __getattr__(self, name):
        """NumPy's array methods (reshape, sum, astype, argmax, …) on the data, results wrapped."""
        if name.startswith("__") or name in ("data", "ctypes", "tobytes", "view", "base"):
            raise AttributeError(f"StrictArray has no attribute {name!r} (a host-only or raw-memory view)")
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            who = f"StrictArray.{name}"
            return _wrap(attr(*_unwrap(args, who), **{k: _unwrap(v, who) for k, v in kwargs.items()}))
        return method

    def set(self, arr, stream=None):
        """Copy host array ``arr`` into this one, in place (as cupy.ndarray.set: a NumPy array of the same dtype
        and shape, else TypeError / ValueError); an upload, logged in UPLOADS."""
        if not isinstance(arr, numpy.ndarray):
            raise TypeError("Only numpy.ndarray can be set to cupy.ndarray")
        if arr.dtype != self.dtype:
            raise TypeError(f"{arr.dtype} array cannot be set to {self.dtype} array")
        if arr.shape != self.shape:
            raise ValueError(f"Shape mismatch. Old shape: {self.shape}, new shape: {arr.shape}")
        _log("upload", arr, UPLOADS)
        self._a[...] = arr

    def copy(self, order="C"):
        """A copy on the device, C-contiguous unless ``order`` says otherwise (as cupy.ndarray.copy)."""
        return StrictArray(self._a.copy(order=order))

    # ---- NumPy's protocols: numpy.exp(a) and numpy.stack([a, b]) give strict arrays, as on CuPy
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        who = f"numpy.{ufunc.__name__}"
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o, who) for o in out)
        args = _unwrap(inputs, who)
        result = getattr(ufunc, method)(*args, **kwargs)
        if method == "at":
            return None
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        who = f"numpy.{func.__name__}"
        return _wrap(func(*_unwrap(args, who), **{k: _unwrap(v, who) for k, v in kwargs.items()}))


def _binary(ufunc, reflected=False):
    def op(self, other):
        if not isinstance(other, (StrictArray, numpy.ndarray) + _SCALARS):
            return NotImplemented  # e.g. a minivae Tensor: its reflected operator takes over
        who = f"StrictArray {ufunc.__name__}"
        a, b = self._a, _unwrap(other, who)
        return _wrap(ufunc(b, a) if reflected else ufunc(a, b))
    return op


def _inplace(ufunc):
    def op(self, other):
        if not isinstance(other, (StrictArray, numpy.ndarray) + _SCALARS):
            return NotImplemented
        ufunc(self._a, _unwrap(other, f"StrictArray {ufunc.__name__}="), out=self._a)
        return self
    return op


for _name, _ufunc in [("add", numpy.add), ("sub", numpy.subtract), ("mul", numpy.multiply),
                      ("truediv", numpy.true_divide), ("floordiv", numpy.floor_divide), ("mod", numpy.remainder),
                      ("pow", numpy.power), ("matmul", numpy.matmul), ("and", numpy.bitwise_and),
                      ("or", numpy.bitwise_or), ("xor", numpy.bitwise_xor), ("lshift", numpy.left_shift),
                      ("rshift", numpy.right_shift)]:
    setattr(StrictArray, f"__{_name}__", _binary(_ufunc))
    setattr(StrictArray, f"__r{_name}__", _binary(_ufunc, reflected=True))
    setattr(StrictArray, f"__i{_name}__", _inplace(_ufunc))
for _name, _ufunc in [("lt", numpy.less), ("le", numpy.less_equal), ("gt", numpy.greater),
                      ("ge", numpy.greater_equal), ("eq", numpy.equal), ("ne", numpy.not_equal)]:
    setattr(StrictArray, f"__{_name}__", _binary(_ufunc))
for _name, _ufunc in [("neg", numpy.negative), ("pos", numpy.positive), ("abs", numpy.absolute),
                      ("invert", numpy.invert)]:
    setattr(StrictArray, f"__{_name}__", lambda self, _u=_ufunc: _wrap(_u(self._a)))


class _StrictUfunc:
    """A NumPy ufunc on strict arrays, with ``.at`` (in place) and ``.reduce``."""

    def __init__(self, ufunc):
        self._ufunc, self.__name__ = ufunc, ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, self.__name__, args, kwargs)

    def at(self, a, indices, b=None):
        who = f"strict.{self.__name__}.at"
        args = (_unwrap_index(indices),) + (() if b is None else (_unwrap(b, who),))
        self._ufunc.at(_unwrap(a, who), *args)

    def reduce(self, *args, **kwargs):
        return _call(self._ufunc.reduce, self.__name__ + ".reduce", args, kwargs)


def _call(func, name, args, kwargs):
    who = f"strict.{name}"
    return _wrap(func(*_unwrap(args, who), **{k: _unwrap(v, who) for k, v in kwargs.items()}))


def _to_device(a, dtype=None, copy=None):
    """An upload (host → device is allowed, as cupy.asarray); strict arrays pass through."""
    if isinstance(a, StrictArray):
        if dtype is None or numpy.dtype(dtype) == a.dtype:
            return StrictArray(a._a.copy()) if copy else a
        return StrictArray(a._a.astype(dtype))
    a = numpy.array(a, dtype=dtype, copy=True)
    _log("upload", a, UPLOADS)
    return StrictArray(a)


def _as_strided(x, shape=None, strides=None):
    return StrictArray(numpy.lib.stride_tricks.as_strided(_unwrap(x, "strict.lib.stride_tricks.as_strided"), shape, strides))


class _StrictModule(types.ModuleType):
    """The array module of strict arrays, standing where ``cupy`` would."""

    ndarray = StrictArray
    lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=_as_strided))  # as cupy.lib

    def asarray(self, a, dtype=None):
        return _to_device(a, dtype)

    def array(self, a, dtype=None, copy=True):
        return _to_device(a, dtype, copy)

    def ascontiguousarray(self, a, dtype=None):
        a = _to_device(a, dtype)
        return a if a._a.flags.c_contiguous else StrictArray(numpy.ascontiguousarray(a._a))

    def argsort(self, a, axis=-1, kind=None):
        """As cupy.argsort: always stable, and kind None or "stable" alone (NumPy's default quicksort is not stable)."""
        if kind not in (None, "stable"):
            raise ValueError(f"strict.argsort: kind={kind!r} is not supported (CuPy's sort is stable)")
        return _call(numpy.argsort, "argsort", (a,), {"axis": axis, "kind": "stable"})

    def asnumpy(self, a):
        return a.get() if isinstance(a, StrictArray) else numpy.asarray(a)

    def __getattr__(self, name):
        attr = getattr(numpy, name)  # AttributeError for what NumPy lacks
        if isinstance(attr, numpy.ufunc):
            return _StrictUfunc(attr)
        if isinstance(attr, (type, types.ModuleType)) or not callable(attr):
            return attr  # dtypes, finfo, pi, newaxis …
        return lambda *args, **kwargs: _call(attr, name, args, kwargs)


strict = _StrictModule("strict")


def emulating():
    """Within this block device "cuda" means strict arrays (minivae._backend.emulate_cuda)."""
    return emulate_cuda(strict, StrictArray)


def describe(entries):
    """Log entries as readable lines (for assertion messages)."""
    return "\n".join(f"{kind} of shape {shape} at {where}" for kind, shape, where in entries)


