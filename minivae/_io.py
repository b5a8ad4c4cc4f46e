"""Files of a run: atomic writes (a crash or an error never leaves a half-written file), .npz
reading that fails in one line, and the lock that gives a run folder to one process."""
import contextlib
import os
import zipfile
import zlib

import numpy
from numpy.lib import format as npy_format

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

TEMP_PREFIX = ".tmp-"  # write_atomic's temporary files, removed at the start of a run if a kill left any


def _create_temporary(folder):
    """A new file beside the target, opened for writing, and its path. Opened with mode 0o666 for the kernel to
    apply the umask, so that the file renamed into place has the permissions a plain open() gives: reading the
    umask takes setting it (os.umask(0), then back), and a thread creating a file in that instant would make it
    world-writable. (tempfile.mkstemp would give 0o600.)"""
    while True:
        path = os.path.join(folder, TEMP_PREFIX + os.urandom(6).hex())
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), path
        except FileExistsError:  # 2⁻⁴⁸ a try; a stale temporary of an earlier kill is the likelier one
            continue


def _sync_folder(folder):
    """fsync a folder, so that a rename in it survives a power loss (POSIX; Windows cannot open a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse to sync a folder: nothing more can be done there
        pass
    finally:
        os.close(fd)


def write_atomic(path, write, text=False):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place
    (with the permissions a plain open() would give). Durable: the file's data is synced before the
    rename and the folder after it, so that a power loss leaves the old file or the whole new one, never a
    renamed but empty or partial file (what a rename without the first fsync may leave on ext4 without
    auto_da_alloc, XFS or btrfs), and a file once reported written stays written."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    fd, tmp = _create_temporary(folder)
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"newline": ""} if text else {})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _sync_folder(folder)


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or the end record of an empty one (as numpy.load)


def save_npz_atomic(path, arrays):
    """Write ``arrays`` (name → array) to ``path`` as .npz (what numpy.savez writes), atomically.

    Written here rather than by numpy.savez, which pickles object arrays (a file that load_npz, which never
    unpickles, would refuse: a checkpoint no run could resume) and takes the names "file" and "allow_pickle" for
    its own arguments (an array so named was lost or refused); an object array is refused here, naming it, and
    nothing is written."""
    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    try:
                        npy_format.write_array(member, numpy.asanyarray(array), allow_pickle=False)
                    except ValueError as e:
                        raise ValueError(f"cannot save {name!r} to {os.fspath(path)}: {e}") from None
    write_atomic(path, write)


def load_npz(path):
    """name → array from an .npz (never unpickles), with a one-line error naming the file for
    anything that is not a readable one (truncated, corrupt, another format)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic not in _ZIP_MAGIC:  # also what keeps numpy.load from trying (and mentioning) pickle
            raise ValueError("not a zip archive")
        with numpy.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    # zipfile's NotImplementedError (a compression method or version it lacks) and RuntimeError (an entry marked
    # encrypted) are what a flipped bit in an entry's header gives too
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as e:
        raise ValueError(f"{path} is not a readable .npz file ({e})") from None



def remove_stale_temporaries(folder):
    """Delete the temporary files that an interrupted write_atomic left in ``folder`` (call it only
    while holding the folder's lock, so that no write in progress is taken for a stale one)."""
    for name in os.listdir(folder):
        if name.startswith(TEMP_PREFIX):
            try:
                os.unlink(os.path.join(folder, name))
            except FileNotFoundError:
                pass


class FolderBusy(RuntimeError):
    """Another live process holds the folder's lock."""


LOCK = ".lock"


@contextlib.contextmanager
def folder_lock(folder):
    """Hold ``folder``/.lock (which records the holder's pid) for the duration of the block.

    The lock is an advisory ``flock`` on that file: the kernel releases it when its holder dies,
    however it dies (kill -9 included), so a lock file left by a dead process is simply taken
    over, and a reused pid can never make it look held. A second process gets FolderBusy at once.
    The file is removed on exit; the inode check below makes sure the lock taken is on the file
    that is there now, not on one a finishing holder has just unlinked.
    """
    path = os.path.join(folder, LOCK)
    if fcntl is None:  # no flock (Windows): run unlocked rather than refuse to run
        yield
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)  # the kernel applies the umask
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise FolderBusy(f"{folder} is in use by another minivae process (pid {holder}): "
                             "wait for it to finish, or choose another output folder") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.unlink(path)
        os.close(fd)
