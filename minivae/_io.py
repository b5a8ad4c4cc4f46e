"""Writing files atomically: a crash or an error never leaves a half-written file."""
import os
import tempfile

import numpy


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path, write, text=False):
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place
    (with the permissions a plain open() would give)."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"newline": ""} if text else {})) as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_npz_atomic(path, arrays):
    """Write ``arrays`` (name → array) to ``path`` as .npz, atomically."""
    write_atomic(path, lambda f: numpy.savez(f, **arrays))


def load_npz(path):
    """name → array from an .npz (never unpickles), with a clear error for a bad file."""
    try:
        with numpy.load(os.fspath(path), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {path}") from None
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path} is not a readable .npz file ({e})") from None
