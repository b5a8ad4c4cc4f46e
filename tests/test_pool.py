"""minivae._pool: NumPy's array memory from a pool (the memory a replayed step plan runs on)."""
import gc
import subprocess
import sys
import threading

import numpy as np
import pytest

from minivae import _pool
from minivae._pool import ArrayPool

pytestmark = pytest.mark.skipif(not _pool.available, reason="NumPy's allocator cannot be set from this Python")


def handler(a):
    """The name of the allocator that holds a's data (a view's: its base's; NumPy ≥ 1.22)."""
    while a.base is not None:
        a = a.base
    return (np._core if hasattr(np, "_core") else np.core).multiarray.get_handler_name(a)


def test_arrays_made_in_a_pool_use_it_and_others_do_not():
    pool = ArrayPool()
    with pool:
        inside = np.arange(100.0) * 2
    outside = np.arange(100.0) * 2
    assert handler(inside) == _pool.NAME
    assert handler(outside) == "default_allocator"  # the handler NumPy had is put back
    assert pool.allocations >= 2


def test_a_freed_block_serves_the_next_array_of_its_size():
    pool, taken = ArrayPool(), []
    with pool:
        for _ in range(50):
            a = np.ones(1000)
            b = a + 1.0
            del a, b
            taken.append(pool.allocations)
    assert taken[-1] == taken[0] > 0  # the first round's blocks, and no more
    assert pool.reuses >= 49 * 2


def test_a_block_in_use_is_never_handed_out_again():
    pool = ArrayPool()
    with pool:
        kept = [np.full(64, float(i)) for i in range(20)]
    for i, a in enumerate(kept):
        assert (a == i).all()
    assert len({a.ctypes.data for a in kept}) == 20


def test_zeros_from_a_reused_block_are_zeros():
    pool = ArrayPool()
    with pool:
        dirty = np.full(512, 7.0)
        del dirty
        clean = np.zeros(512)  # calloc: the block it reuses held 7s
    assert pool.reuses >= 1
    assert not clean.any()


def test_a_resized_array_keeps_its_values():
    pool = ArrayPool()
    with pool:
        a = np.arange(10.0)
        a.resize(1000, refcheck=False)  # NumPy reallocates the data
    np.testing.assert_array_equal(a[:10], np.arange(10.0))
    assert not a[10:].any()


def test_arrays_outlive_their_pool():
    """A freed pool gives its free blocks back to the system; a block still in an array stays valid,
    and goes back to the system (not to the freed pool) with its array."""
    pool = ArrayPool()
    with pool:
        kept = np.arange(1000.0)
        spare = np.arange(500.0)
    kept_at, spare_at = kept.ctypes.data, spare.ctypes.data
    del spare
    assert spare_at in ArrayPool.owners  # a free block of the pool
    del pool
    gc.collect()
    assert spare_at not in ArrayPool.owners and kept_at in ArrayPool.owners
    np.testing.assert_array_equal(kept, np.arange(1000.0))
    del kept
    assert kept_at not in ArrayPool.owners


def test_another_thread_keeps_its_allocator():
    pool, got = ArrayPool(), []
    with pool:
        thread = threading.Thread(target=lambda: got.append(handler(np.ones(10) + 1)))
        thread.start()
        thread.join()
    assert got == ["default_allocator"]


def test_shutdown_with_arrays_still_in_a_pool_is_clean():
    """Arrays made in a pool are freed through the pool's callbacks, also while the interpreter shuts
    down; that must neither crash nor print a warning."""
    code = ("import numpy as np; from minivae._pool import ArrayPool\n"
            "pool = ArrayPool()\n"
            "with pool:\n"
            "    kept = [np.ones(n) for n in range(1, 200)]\n"
            "class Late:\n"
            "    def __del__(self): np.ones(3)\n"
            "late = Late()\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
