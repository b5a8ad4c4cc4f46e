"""Image data: readers for IDX (MNIST, Fashion-MNIST, KMNIST) and binarized-MNIST ``.amat``,
gzip or raw, with their formats checked; dynamic binarization; seeded mini-batches; and a
small embedded set of real binarized digits so that training works with no files at all."""
import gzip
import os
from importlib import resources

import numpy

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataFormatError(ValueError):
    """A data file is missing, truncated or not in the format its name or content says."""


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataFormatError(f"no such data file: {path}") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path} is a folder, not a data file") from None
    if raw[:2] == b"\x1f\x8b":  # gzip magic: decide by content, not by name
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataFormatError(f"{path}: broken gzip stream ({e})") from None
    return raw


def read_idx(path):
    """An IDX file as an array: magic 0x0000, a type byte, the number of dims, then each dim as a
    big-endian int32, then exactly prod(dims) items."""
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataFormatError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in numpy.frombuffer(raw, ">i4", ndim, 4))
    dtype = numpy.dtype(_IDX_TYPES[raw[2]])
    expected = int(numpy.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFormatError(f"{path}: IDX header says {dims} ({expected} bytes of data) "
                              f"but the file holds {len(raw) - header}")
    return numpy.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_amat(path):
    """Binarized MNIST ``.amat``: one image a line, 784 space-separated 0/1 values."""
    text = _read_bytes(path)
    try:
        rows = [line.split() for line in text.decode("ascii").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise DataFormatError(f"{path}: not a text .amat file") from None
    if not rows:
        raise DataFormatError(f"{path}: no images")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataFormatError(f"{path}: line {i + 1} has {len(row)} values, the first has {width}")
    try:
        x = numpy.array(rows, dtype=numpy.float32)
    except ValueError:
        raise DataFormatError(f"{path}: values must be numbers") from None
    if not numpy.isin(x, (0.0, 1.0)).all():
        raise DataFormatError(f"{path}: binarized .amat values must be 0 or 1")
    return x


def load_images(path):
    """Images from one file as float32 in [0, 1], flattened to (n, pixels)."""
    name = os.path.basename(os.fspath(path)).lower()
    if ".amat" in name:
        return read_amat(path)
    x = read_idx(path)
    if x.ndim < 2:
        raise DataFormatError(f"{path}: an IDX file of labels ({x.shape}), not of images")
    x = x.reshape(len(x), -1).astype(numpy.float32)
    return x / 255.0 if x.max(initial=0) > 1 else x


_SPLIT_NAMES = {
    "train": ["binarized_mnist_train.amat", "train-images-idx3-ubyte", "train-images.idx3-ubyte"],
    "valid": ["binarized_mnist_valid.amat"],
    "test": ["binarized_mnist_test.amat", "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
}


def load_splits(source="default", valid_fraction=1 / 6):
    """{"train", "valid", "test"} → float32 images.

    ``source`` is "default" (the embedded digits), a folder holding binarized-MNIST .amat or
    MNIST-style IDX files (gzip or raw), or one file (then its last ``valid_fraction`` becomes
    the validation split and the test split is that same validation set).
    """
    if source == "default":
        return load_default()
    if os.path.isfile(source):
        x = load_images(source)
        cut = len(x) - max(1, int(len(x) * valid_fraction))
        return {"train": x[:cut], "valid": x[cut:], "test": x[cut:]}
    if not os.path.isdir(source):
        raise DataFormatError(f"no such data file or folder: {source}")
    found = {}
    for split, names in _SPLIT_NAMES.items():
        for name in names:
            for candidate in (name, name + ".gz"):
                if os.path.exists(os.path.join(source, candidate)):
                    found.setdefault(split, load_images(os.path.join(source, candidate)))
    if "train" not in found:
        raise DataFormatError(f"{source}: no training images found (looked for {_SPLIT_NAMES['train']}, optionally .gz)")
    if "valid" not in found:  # IDX sets have no validation split: hold out the end of train
        x = found["train"]
        cut = len(x) - max(1, int(len(x) * valid_fraction))
        found["train"], found["valid"] = x[:cut], x[cut:]
    found.setdefault("test", found["valid"])
    return found


def load_default():
    """The embedded digits: a fixed subset of statically binarized MNIST (see README)."""
    with resources.files("minivae").joinpath("datasets/binarized_mnist_subset.npz").open("rb") as f:
        with numpy.load(f, allow_pickle=False) as packed:
            return {split: numpy.unpackbits(packed[split], axis=1, count=784).astype(numpy.float32)
                    for split in ("train", "valid", "test")}


def binarize(x, rng):
    """Dynamic binarization: each pixel is 1 with probability its grey level, fresh every call."""
    return (rng.uniform(x.shape, numpy.float64) < x).astype(numpy.float32)


def batches(x, batch_size, rng=None, drop_last=False):
    """Mini-batches of rows of ``x``, shuffled by ``rng`` (a Generator) when one is given."""
    if batch_size < 1:
        raise ValueError(f"batch size must be ≥ 1, got {batch_size}")
    order = rng.permutation(len(x)) if rng is not None else numpy.arange(len(x))
    stop = len(x) - len(x) % batch_size if drop_last else len(x)
    for start in range(0, stop, batch_size):
        yield x[order[start:start + batch_size]]
