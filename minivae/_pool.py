"""A memory pool for NumPy's arrays, so that a replayed step plan allocates nothing.

A CUDA graph owns the memory its kernels write: CuPy captures it with a private pool, and a launch
allocates nothing. On the CPU a step plan replays the ops' own NumPy code, which makes each result
and temporary anew; ``ArrayPool`` gives that replay the same discipline without changing an op.
NumPy lets a program choose, per context, the allocator of array data (NEP 49,
``PyDataMem_SetHandler``); while a pool is active (``with pool:``), every array NumPy makes takes a
block of exactly its size from the pool's free blocks, and a freed array's block goes back to them.
A replay makes the same arrays in the same order as the step before it, so each request finds a freed
block: ``pool.allocations``, the blocks taken from the system, stops growing.
An array that outlives the replay (the loss, a ``.grad``) keeps its block until it is freed.

NumPy's C-API gives no Python entry to set the allocator; this module reaches it through ctypes: the
handler struct (``numpy/ndarraytypes.h``) built here, its four functions as ctypes callbacks, and
``PyDataMem_SetHandler`` read from NumPy's exported function table at its ABI-fixed index. Where any
of that is missing (another Python, a NumPy without it), ``available`` is False and a pool does
nothing: the replay then allocates as the eager step does, with the same numbers.
"""
import ctypes
import threading
import weakref

import numpy

_SET_HANDLER = 304  # PyDataMem_SetHandler's index in NumPy's C-API table (numpy/__multiarray_api.h), fixed by its ABI


class _Allocator(ctypes.Structure):
    _fields_ = [("ctx", ctypes.c_void_p), ("malloc", ctypes.c_void_p), ("calloc", ctypes.c_void_p),
                ("realloc", ctypes.c_void_p), ("free", ctypes.c_void_p)]


class _Handler(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char * 127), ("version", ctypes.c_uint8), ("allocator", _Allocator)]


NAME = "minivae_pool"
_serving = threading.local()  # .pool: the pool that serves this thread's allocations, if any


class ArrayPool:
    """Blocks of memory for NumPy arrays, kept by exact size and reused; ``with pool:`` makes NumPy
    take this thread's array data from it. ``allocations`` counts the blocks taken from the system,
    ``reuses`` the requests a free block served. When the pool is closed or freed, its free blocks go
    back to the system; a block still in an array goes back when that array is freed."""

    # address → (weak reference to its pool, size) of every block a pool took from the system; a class
    # attribute, so that a pool freed late in the interpreter's shutdown still finds it
    owners = {}

    def __init__(self):
        self.free = {}  # size → [address]
        self.allocations = self.reuses = 0
        self._ref = weakref.ref(self)
        self._outer = self._previous = None

    def take(self, size):
        blocks = self.free.get(size)
        if blocks:
            self.reuses += 1
            return blocks.pop()
        p = self._system_malloc(size or 1)
        if p:
            self.owners[p] = (self._ref, size)
            self.allocations += 1
        return p

    def close(self):
        free, self.free = self.free, {}
        for blocks in free.values():
            for p in blocks:
                del self.owners[p]
                self._system_free(p)

    __del__ = close

    def __enter__(self):
        if available:
            self._outer, _serving.pool = getattr(_serving, "pool", None), self
            self._previous = _set_handler(_capsule)
        return self

    def __exit__(self, *exc):
        if available:
            _set_handler(self._previous)
            _serving.pool, self._previous = self._outer, None


def _setup():
    """NumPy's PyDataMem_SetHandler and a capsule of this module's handler, or None where they
    cannot be had. The callbacks close over what they use: an array made in a pool frees through them,
    possibly late in the interpreter's shutdown, when this module's globals are already gone."""
    core = getattr(numpy, "_core", None) or numpy.core  # NumPy 2 renamed it
    try:
        libc = ctypes.CDLL(None)  # this process's C library (an object of our own: its prototypes are ours)
        table = core._multiarray_umath._ARRAY_API
    except (AttributeError, OSError):
        return None
    void_p, size_t, api = ctypes.c_void_p, ctypes.c_size_t, ctypes.pythonapi
    system_malloc, system_realloc, system_free = libc.malloc, libc.realloc, libc.free
    system_malloc.restype, system_malloc.argtypes = void_p, [size_t]
    system_realloc.restype, system_realloc.argtypes = void_p, [void_p, size_t]
    system_free.restype, system_free.argtypes = None, [void_p]
    ArrayPool._system_malloc, ArrayPool._system_free = staticmethod(system_malloc), staticmethod(system_free)
    serving, owner, memset, memmove = _serving, ArrayPool.owners, ctypes.memset, ctypes.memmove

    def malloc(ctx, size):
        pool = getattr(serving, "pool", None)
        return system_malloc(size) if pool is None else pool.take(size)

    def calloc(ctx, nelem, elsize):
        p = malloc(ctx, nelem * elsize)
        memset(p, 0, nelem * elsize)  # a reused block still holds the last array's values
        return p

    def free(ctx, ptr, size):
        ref, size = owner.get(ptr, (None, 0))
        pool = ref() if ref is not None else None
        if pool is not None:
            pool.free.setdefault(size, []).append(ptr)
            return
        if ref is not None:  # its pool is gone
            del owner[ptr]
        system_free(ptr)

    def realloc(ctx, ptr, size):
        if ptr not in owner:
            return system_realloc(ptr, size)
        p = malloc(ctx, size)
        memmove(p, ptr, min(owner[ptr][1], size))
        free(ctx, ptr, 0)
        return p

    callbacks = (ctypes.CFUNCTYPE(void_p, void_p, size_t)(malloc),
                 ctypes.CFUNCTYPE(void_p, void_p, size_t, size_t)(calloc),
                 ctypes.CFUNCTYPE(void_p, void_p, void_p, size_t)(realloc),
                 ctypes.CFUNCTYPE(None, void_p, void_p, size_t)(free))
    handler = _Handler(NAME.encode(), 1, _Allocator(None, *[ctypes.cast(c, void_p) for c in callbacks]))
    # prototypes of our own, not restype/argtypes set on ctypes.pythonapi, which other code shares
    capsule_pointer = ctypes.PYFUNCTYPE(void_p, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_GetPointer", api))
    capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, void_p, void_p, void_p)(("PyCapsule_New", api))
    incref = ctypes.PYFUNCTYPE(None, ctypes.py_object)(("Py_IncRef", api))
    functions = ctypes.cast(capsule_pointer(table, None), ctypes.POINTER(void_p))
    set_handler = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object)(functions[_SET_HANDLER])
    name = ctypes.create_string_buffer(b"mem_handler")  # the capsule keeps a pointer to its name
    capsule = capsule_new(ctypes.addressof(handler), ctypes.addressof(name), None)
    for part in (*callbacks, handler, name, capsule):  # never freed: arrays hold the capsule
        incref(part)
    return set_handler, capsule


_parts = _setup()
available = _parts is not None
if available:
    _set_handler, _capsule = _parts
