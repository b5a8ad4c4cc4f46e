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

Only CuPy's API passes (tests/cupy_api.json, written by tools/cupy_api.py from CuPy itself): ``strict.<name>`` for
a name CuPy lacks (in ``cupy``, ``cupy.linalg``, ``cupy.lib.stride_tricks``, …) raises AttributeError "cupy 14.2 has
no <name>", a call with a keyword CuPy's function does not take (or more positional arguments) raises TypeError
naming it, a ufunc method CuPy does not implement (``maximum.reduce``) raises NotImplementedError as CuPy does, a
ufunc refuses a list or tuple operand as CuPy's (it takes device arrays and scalars alone), an integer array index out
of bounds wraps around as on CuPy (NumPy raises IndexError), and
the same holds for ``StrictArray``'s attributes and methods against ``cupy.ndarray``'s and for NumPy functions called
on strict arrays (CuPy's ``__array_function__``/``__array_ufunc__`` hand them to the CuPy function of that name).
"""
import contextlib
import functools
import json
import sys
import types
import weakref
from pathlib import Path

import numpy

from minivae._backend import emulate_cuda

API = json.loads(Path(__file__).with_name("cupy_api.json").read_text())  # CuPy's names and signatures (tools/cupy_api.py)
CUPY = "cupy " + ".".join(API["cupy"].split(".")[:2])  # "cupy 14.2", as the refusals name it
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


@functools.cache
def _parameters(params):
    """What a CuPy parameter list of API (tools/cupy_api.py's notation) takes: (the keywords, None for any; the most
    positional arguments, None for any; the required parameters as (position or None for keyword-only, name))."""
    keywords, positional, keyword_only, any_keyword, any_positional, required = set(), 0, False, False, False, []
    for p in params:
        name = p.rstrip("=")
        if p == "/":
            keywords.clear()  # the names so far are positional-only
        elif p == "*":
            keyword_only = True
        elif p.startswith("**"):
            any_keyword = True
        elif p.startswith("*"):
            any_positional = keyword_only = True
        else:
            keywords.add(name)
            if not p.endswith("="):
                required.append((None if keyword_only else positional, name))
            positional += not keyword_only
    return (None if any_keyword else frozenset(keywords)), (None if any_positional else positional), tuple(required)


def check_call(what, entry, args, kwargs, complete=True):
    """TypeError where CuPy's ``what`` (its ``entry`` in API: a parameter list, a ufunc's record, or "callable" for a
    signature CuPy does not expose) would refuse these arguments: a keyword it does not take, more positional
    arguments than it has, or (``complete``: these are all the arguments) a required one missing (``kwargs``: the
    keywords given)."""
    if isinstance(entry, dict):
        keywords, most, required = frozenset(entry["keywords"]), sum(entry["ufunc"]), ()
    elif isinstance(entry, list):
        keywords, most, required = _parameters(tuple(entry))
    else:
        return
    if keywords is not None:
        for key in kwargs:
            if key not in keywords:
                raise TypeError(f"{CUPY}'s {what} takes no keyword {key!r}")
    if most is not None and len(args) > most:
        raise TypeError(f"{CUPY}'s {what} takes at most {most} positional arguments ({len(args)} given)")
    for position, name in required if complete else ():
        if name not in kwargs and (position is None or position >= len(args)):
            raise TypeError(f"{CUPY}'s {what} requires its argument {name!r} (NumPy's may have a default)")


def member(path, name):
    """API's entry for CuPy's ``<path>.<name>`` (path "cupy", "cupy.linalg", …): AttributeError where CuPy has none."""
    entry = API["modules"][path].get(name)
    if entry is None:
        raise AttributeError(f"{CUPY} has no {'.'.join(path.split('.')[1:] + [name])}")
    return entry


def ndarray_member(name):
    """API's entry for ``cupy.ndarray.<name>``: AttributeError where CuPy's array has none."""
    entry = API["ndarray"].get(name)
    if entry is None:
        raise AttributeError(f"{CUPY}'s ndarray has no attribute {name!r}")
    return entry


def _wrap_around(key, shape):
    """Index ``key`` (NumPy's, unwrapped) as CuPy applies it to an array of ``shape``: an integer array index out of
    bounds wraps around (mod the axis' size), where NumPy raises IndexError ("Differences between CuPy and NumPy:
    out-of-bounds indices"); ints and slices are checked as NumPy checks them."""
    parts = key if isinstance(key, tuple) else (key,)

    def axes_of(p):
        if p is None or p is Ellipsis:
            return 0
        return p.ndim if isinstance(p, numpy.ndarray) and p.dtype == bool else 1
    rest, axis, out = len(shape) - sum(axes_of(p) for p in parts), 0, []
    for p in parts:
        if isinstance(p, numpy.ndarray) and p.dtype.kind in "iu" and axis < len(shape) and shape[axis] > 0:
            p = p % shape[axis]
        out.append(p)
        axis += rest if p is Ellipsis else axes_of(p)
    return tuple(out) if isinstance(key, tuple) else out[0]


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
        return _wrap(self._a[_wrap_around(_unwrap_index(key), self._a.shape)])

    def __setitem__(self, key, value):
        # CuPy copies a host value over (an upload, not a conversion)
        self._a[_wrap_around(_unwrap_index(key), self._a.shape)] = value._a if isinstance(value, StrictArray) else value

    def __getattr__(self, name):
        """NumPy's array methods (reshape, sum, astype, argmax, …) on the data, results wrapped."""
        if name.startswith("__") or name in ("data", "ctypes", "tobytes", "view", "base"):
            raise AttributeError(f"StrictArray has no attribute {name!r} (a host-only or raw-memory view)")
        entry = ndarray_member(name)
        attr = getattr(self._a, name)
        if not callable(attr):
            return _wrap(attr)

        def method(*args, **kwargs):
            who = f"StrictArray.{name}"
            check_call(f"ndarray.{name}", entry, args, kwargs)
            return _wrap(attr(*_unwrap(args, who), **{k: _unwrap(v, who) for k, v in kwargs.items()}))
        return method

    def argsort(self, axis=-1, kind=None):
        """As cupy.ndarray.argsort: always stable, kind None or "stable" alone (strict.argsort)."""
        return strict.argsort(self, axis, kind)

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
        _cupy_ufunc(ufunc.__name__, method, inputs, kwargs)  # CuPy hands it to its own ufunc of that name
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
        path = "cupy" + func.__module__.removeprefix("numpy")  # as CuPy's: numpy.linalg.norm → cupy.linalg.norm
        if path not in API["modules"]:
            raise TypeError(f"{who} of a device array: {path} is not in tests/cupy_api.json (add it to SUBMODULES in "
                            "tools/cupy_api.py and rerun that)")
        entry = API["modules"][path].get(func.__name__)
        if entry is None:
            raise TypeError(f"{who} of a device array: {CUPY} has no {path}.{func.__name__} for its "
                            "__array_function__ to call")
        check_call(".".join(path.split(".")[1:] + [func.__name__]), entry, args, kwargs)
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


def _cupy_ufunc(name, method, args, kwargs):
    """Refuse what CuPy's ufunc ``name`` refuses: a method it does not implement (NotImplementedError, as CuPy
    raises), a keyword it does not take, a list or tuple operand (TypeError)."""
    entry = API["modules"]["cupy"].get(name)
    if entry is None:
        raise TypeError(f"numpy.{name} of a device array: {CUPY} has no {name}")
    operands = args[:1] + args[2:] if method == "at" else args  # (at's indices may be a tuple)
    for a in operands:
        if isinstance(a, (list, tuple)):  # "Universal functions only work with CuPy array or scalar" (NumPy's convert)
            raise TypeError(f"{CUPY}'s {name}{'' if method == '__call__' else '.' + method}: Unsupported type "
                            f"{type(a)} (a ufunc takes device arrays and scalars; make it one with asarray)")
    if method == "__call__":
        check_call(name, entry, args, kwargs)
    elif not isinstance(entry, dict) or method not in entry["methods"]:
        raise NotImplementedError(f"{CUPY}'s {name}.{method} is not supported")
    else:
        check_call(f"{name}.{method}", API["ufunc_methods"][method], args, kwargs)


class _StrictUfunc:
    """A NumPy ufunc on strict arrays, with ``.at`` (in place) and ``.reduce``, as far as CuPy's takes them."""

    def __init__(self, ufunc):
        self._ufunc, self.__name__ = ufunc, ufunc.__name__

    def __call__(self, *args, **kwargs):
        _cupy_ufunc(self.__name__, "__call__", args, kwargs)
        return _call(self._ufunc, self.__name__, args, kwargs)

    def at(self, a, indices, b=None):
        _cupy_ufunc(self.__name__, "at", (a, indices) + (() if b is None else (b,)), {})
        who = f"strict.{self.__name__}.at"
        a = _unwrap(a, who)
        args = (_wrap_around(_unwrap_index(indices), a.shape),) + (() if b is None else (_unwrap(b, who),))
        self._ufunc.at(a, *args)

    def reduce(self, *args, **kwargs):
        _cupy_ufunc(self.__name__, "reduce", args, kwargs)
        return _call(self._ufunc.reduce, self.__name__ + ".reduce", args, kwargs)

    def accumulate(self, *args, **kwargs):
        _cupy_ufunc(self.__name__, "accumulate", args, kwargs)
        return _call(self._ufunc.accumulate, self.__name__ + ".accumulate", args, kwargs)

    def outer(self, *args, **kwargs):
        _cupy_ufunc(self.__name__, "outer", args, kwargs)
        return _call(self._ufunc.outer, self.__name__ + ".outer", args, kwargs)


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


def _cupy_signature(func):
    """``func``, a method of the stand-in's module, checking each call against CuPy's function of its name first."""
    name = func.__name__
    entry = member("cupy", name)

    @functools.wraps(func)
    def checked(self, *args, **kwargs):
        check_call(name, entry, args, kwargs)
        return func(self, *args, **kwargs)
    return checked


def _module_attr(path, host, name):
    """``<path>.<name>`` of the stand-in: NumPy's ``host.<name>`` on strict arrays where CuPy has that name (its
    calls checked against CuPy's signature), AttributeError naming it where CuPy has none."""
    entry = member(path, name)
    attr = getattr(host, name)  # AttributeError for what NumPy lacks (cuda, RawModule, …)
    if isinstance(entry, dict):
        return _StrictUfunc(attr)
    if entry == "module":
        sub = f"{path}.{name}"
        if sub not in API["modules"]:
            raise AttributeError(f"{sub} is not in tests/cupy_api.json: add it to SUBMODULES in tools/cupy_api.py and "
                                 "rerun that")
        return _submodule(sub, attr)
    if isinstance(attr, (type, types.ModuleType)) or not callable(attr):
        return attr  # dtypes, finfo, pi, newaxis …
    what = ".".join(path.split(".")[1:] + [name])

    def function(*args, **kwargs):
        check_call(what, entry, args, kwargs)
        if path != "cupy":  # (not through _call, which tools/launch_count.py counts: as_strided is a view)
            return _wrap(attr(*_unwrap(args, what), **{k: _unwrap(v, what) for k, v in kwargs.items()}))
        return _call(attr, what, args, kwargs)
    return function


class _StrictSubmodule(types.ModuleType):
    """A submodule of the stand-in (``strict.linalg``, ``strict.lib.stride_tricks``): NumPy's, as far as CuPy's has it."""

    def __init__(self, path, host):
        super().__init__(path.replace("cupy", "strict", 1))
        self._path, self._host = path, host

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _module_attr(self._path, self._host, name)


@functools.cache
def _submodule(path, host):
    return _StrictSubmodule(path, host)


class _StrictModule(types.ModuleType):
    """The array module of strict arrays, standing where ``cupy`` would."""

    ndarray = StrictArray

    @_cupy_signature
    def asarray(self, a, dtype=None):
        return _to_device(a, dtype)

    @_cupy_signature
    def array(self, a, dtype=None, copy=True):
        return _to_device(a, dtype, copy)

    @_cupy_signature
    def ascontiguousarray(self, a, dtype=None):
        a = _to_device(a, dtype)
        return a if a._a.flags.c_contiguous else StrictArray(numpy.ascontiguousarray(a._a))

    @_cupy_signature
    def argsort(self, a, axis=-1, kind=None):
        """As cupy.argsort: always stable, and kind None or "stable" alone (NumPy's default quicksort is not stable)."""
        if kind not in (None, "stable"):
            raise ValueError(f"strict.argsort: kind={kind!r} is not supported (CuPy's sort is stable)")
        return _call(numpy.argsort, "argsort", (a,), {"axis": axis, "kind": "stable"})

    @_cupy_signature
    def asnumpy(self, a):
        return a.get() if isinstance(a, StrictArray) else numpy.asarray(a)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _module_attr("cupy", numpy, name)


strict = _StrictModule("strict")


def emulating():
    """Within this block device "cuda" means strict arrays (minivae._backend.emulate_cuda)."""
    return emulate_cuda(strict, StrictArray)


def describe(entries):
    """Log entries as readable lines (for assertion messages)."""
    return "\n".join(f"{kind} of shape {shape} at {where}" for kind, shape, where in entries)


def assert_device_run_is_the_cpus(run):
    """``run(device)`` returns a list of arrays or tensors. On the "cuda" stand-in, with Numba and the CUDA kernels off
    (so that the device runs the CPU's array code), every result is a device array, no copy to the host is made, and
    each result equals the CPU's (``run("cpu")``, made first) bit for bit.

    The CPU runs with Numba off too: like with like. A Numba kernel is the formula to a few ulps, not bit for bit (its
    exp and log are its own, LLVM-vectorized: tests/test_numba_formula_parity.py), so a CPU run with the kernels
    against the stand-in's formulas was equal only on inputs that happened to hit no such ulp."""
    from minivae._backend import use_cuda_kernels, use_numba
    from minivae.engine import Tensor

    def arrays(results):
        return [r.data if isinstance(r, Tensor) else r for r in results]
    with use_numba(False):
        expected = arrays(run("cpu"))
    with use_numba(False), use_cuda_kernels(False), emulating(), record() as log:
        got = arrays(run("cuda"))
        assert all(isinstance(a, StrictArray) for a in got), [type(a).__name__ for a in got]
    assert log == [], describe(log)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        numpy.testing.assert_array_equal(g.get(), e)


