"""Image data: readers for IDX (MNIST, Fashion-MNIST, KMNIST) and binarized-MNIST ``.amat``,
gzip or raw, with their formats checked; count matrices (single-cell, bag-of-words) from NumPy ``.npy`` and ``.npz``
files; dynamic binarization; seeded mini-batches; and a small embedded set of real binarized digits so that training
works with no files at all."""
import gzip
import math
import numbers
import os
import zipfile
import zlib
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
        # a damaged header or trailer is an OSError (BadGzipFile), a cut stream an EOFError, and a
        # damaged deflate body a zlib.error (not an OSError): all three are a broken file
        except (OSError, EOFError, zlib.error) as e:
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
    if min(dims, default=0) < 0:  # the dims are signed int32: a negative one would reach reshape as "unknown"
        raise DataFormatError(f"{path}: bad IDX dimensions {dims}: a dimension is negative")
    dtype = numpy.dtype(_IDX_TYPES[raw[2]])
    # the product in Python ints: numpy.prod would wrap around int64 (65536**4 gives 0), and a
    # header claiming 2**64 items would then match an empty body
    expected = math.prod(dims) * dtype.itemsize
    if expected > numpy.iinfo(numpy.int64).max:
        raise DataFormatError(f"{path}: bad IDX dimensions {dims}: {math.prod(dims)} items, more than an array can hold")
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
    """Images from one file as float32 in [0, 1], flattened to (n, pixels), with the values checked.

    Integer IDX pixels are grey levels 0…255 and are divided by 255 (never by the file's own
    maximum: a dark image must not be brightened); negative or larger values are refused. Float
    IDX pixels must already lie in [0, 1]. NaN and infinity are refused everywhere. IDX images
    (n, rows, columns) must be square: rows == columns.
    """
    name = os.path.basename(os.fspath(path)).lower()
    if ".amat" in name:
        x = read_amat(path)
    else:
        x = read_idx(path)
        if x.ndim < 2:
            raise DataFormatError(f"{path}: an IDX file of labels ({x.shape}), not of images")
        if x.size == 0:
            raise DataFormatError(f"{path}: no images (shape {x.shape})")
        shape = x.shape
        x = x.reshape(len(x), -1)
        if x.dtype.kind in "iu":
            low, high = x.min(), x.max()
            if low < 0 or high > 255:
                raise DataFormatError(f"{path}: integer pixels must be grey levels 0…255, found values from {low} to {high}")
            x = x.astype(numpy.float32) / numpy.float32(255)
        else:
            x = x.astype(numpy.float32)
            if not numpy.isfinite(x).all():
                raise DataFormatError(f"{path}: {int((~numpy.isfinite(x)).sum())} pixel values are NaN or infinite")
            if x.min() < 0 or x.max() > 1:
                raise DataFormatError(f"{path}: float pixels must lie in [0, 1] (they are not rescaled), "
                                      f"found values from {x.min():g} to {x.max():g}")
        # images are (n, rows, columns): a square pixel count is not enough, (n, 2, 8) is no 4×4 image
        if len(shape) >= 3 and (shape[1] != shape[2] or math.prod(shape[3:]) != 1):
            raise DataFormatError(f"{path}: IDX images of shape {shape[1:]}, not square images of rows × columns")
    return x


ARRAY_SUFFIXES = (".npy", ".npz")
FLOAT32_EXACT = 2 ** 24  # every whole number up to 2²⁴ is a float32; 2²⁴ + 1 is not


def _matrix(x, path):
    """One array of a .npy/.npz file as float32 rows (n, features), its values checked (module docstring of
    ``load_array``)."""
    if x.dtype.kind not in "biuf":
        raise DataFormatError(f"{path}: an array of {x.dtype}, not of numbers")
    if x.ndim < 2:
        raise DataFormatError(f"{path}: an array of shape {x.shape}, not a matrix of rows (samples × features): "
                              "reshape it to (n, features)")
    if x.size == 0:
        raise DataFormatError(f"{path}: no rows (shape {x.shape})")
    x = x.reshape(len(x), -1)
    if x.dtype.kind == "f" and not numpy.isfinite(x).all():
        raise DataFormatError(f"{path}: {int((~numpy.isfinite(x)).sum())} values are NaN or infinite")
    big = numpy.abs(x.astype(numpy.float64)) > FLOAT32_EXACT
    if big.any():
        raise DataFormatError(f"{path}: {int(big.sum())} values beyond 2^24 = {FLOAT32_EXACT} (e.g. "
                              f"{x.flat[int(numpy.argmax(big))].item()!r}), which float32 does not hold exactly")
    return x.astype(numpy.float32)


def load_array(path):
    """A matrix from a NumPy file: ``.npy``, or ``.npz`` holding one array (any name) or the splits "train" (and
    optionally "valid", "test"), rows the samples (cells × genes, documents × words; images flattened), as float32
    (n, features), or a dict of them by split. Any numeric dtype (bool, integers, floats); at least two dimensions
    (further ones flattened into the features, as an image's rows and columns); finite; |values| ≤ 2²⁴, so that
    every whole number is held exactly in float32. What the values must be (counts, grey levels) is the likelihood's
    to say (``check_splits``). Pickled (object) arrays are refused, never loaded."""
    try:
        loaded = numpy.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataFormatError(f"no such data file: {path}") from None
    except IsADirectoryError:
        raise DataFormatError(f"{path} is a folder, not a data file") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # a pickled array, or no NumPy file at all
        raise DataFormatError(f"{path}: not a NumPy array file of numbers ({e})") from None
    if isinstance(loaded, numpy.ndarray):
        return _matrix(loaded, path)

    def member(name, label):
        try:
            x = loaded[name]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # a pickled array inside, or a broken one
            raise DataFormatError(f"{label}: not an array of numbers ({e})") from None
        return _matrix(x, label)
    with loaded:
        names = list(loaded.files)
        if "train" in names:
            unknown = sorted(set(names) - {"train", "valid", "test"})
            if unknown:
                raise DataFormatError(f"{path}: arrays {unknown} besides the splits train, valid, test")
            return {name: member(name, f"{path}[{name}]") for name in ("train", "valid", "test") if name in names}
        if len(names) != 1:
            raise DataFormatError(f"{path}: {len(names)} arrays {names}: an .npz holds one matrix, or the splits "
                                  "train (and valid, test)")
        return member(names[0], path)


def is_array_file(path):
    """Whether ``path`` names a NumPy .npy or .npz file (by its name)."""
    return os.fspath(path).lower().endswith(ARRAY_SUFFIXES)


def not_counts(x):
    """A mask of the values of ``x`` that are no counts: below 0, not whole, or not finite."""
    x = numpy.asarray(x)
    return ~(numpy.isfinite(x) & (x >= 0) & (numpy.floor(x) == x))


def is_binary(x):
    """Whether every value of ``x`` is exactly 0 or 1."""
    return bool(((x == 0) | (x == 1)).all())


def off_grid(x, levels=256):
    """A mask of the values of ``x`` that are not on the grid k/(levels − 1), k = 0…levels − 1 (to within 2·ε of
    float32, or of x's dtype if coarser, times levels − 1 levels: k/255 rounded to float32, as load_images makes it,
    and such a value cast to float64, are on the grid), computed in float64; NaN is off it. The rule of
    DiscretizedLogistic.log_prob."""
    top = levels - 1
    y = numpy.asarray(x, numpy.float64) * top
    k = numpy.rint(y)
    x = numpy.asarray(x)
    eps = max(float(numpy.finfo(x.dtype).eps), float(numpy.finfo(numpy.float32).eps)) if x.dtype.kind == "f" else 0.0
    tol = 2 * eps * top
    return ~((numpy.abs(y - k) <= tol) & (k >= 0) & (k <= top))


COUNT_HINT = "count data takes --likelihood poisson, negative_binomial or zero_inflated_negative_binomial"


def check_splits(splits, files, *, x_dim=None, batch_size=None, binary=None, levels=None, counts=False):
    """Raise DataFormatError, naming the file, unless the splits can be trained on (or evaluated).

    Every split holds at least one row, all of the same width (``x_dim`` when given: the model's); the training
    split holds at least one full batch of ``batch_size``. Images (``counts`` false) are square (the pictures are drawn
    so) with every value a grey level in [0, 1] (what load_images makes; a NumPy file may hold anything); with
    ``binary`` (a Bernoulli likelihood without binarization) every value is exactly 0 or 1; with ``levels`` n (the
    discretized logistic likelihood's 256), every value is on the grid k/(n − 1) (``off_grid``). With ``counts`` (a
    count likelihood) the rows are samples of any width, every value a count 0, 1, 2, … (``not_counts``).
    ``files`` maps each split name to the file (or description) it came from.
    """
    first = next(iter(splits))
    width = x_dim if x_dim is not None else splits[first].shape[1]
    whose = "the model expects" if x_dim is not None else f"{files[first]} has"
    unit, items = ("features a row", "rows") if counts else ("pixels an image", "images")
    if not counts and math.isqrt(width) ** 2 != width:
        hint = f" ({COUNT_HINT})" if all(not not_counts(x).any() for x in splits.values()) else ""
        raise DataFormatError(f"{files[first]}: {width} pixels an image, not a square image{hint}")
    for split, x in splits.items():
        if len(x) == 0:
            raise DataFormatError(f"{files[split]}: the {split} split holds no {items}")
        if x.shape[1] != width:
            raise DataFormatError(f"{files[split]}: {x.shape[1]} {unit}, but {whose} {width}")
    if batch_size is not None and "train" in splits and len(splits["train"]) < batch_size:
        raise DataFormatError(f"{files['train']}: {len(splits['train'])} training {items}, fewer than one batch "
                              f"of {batch_size} (--batch-size)")
    if counts:
        for split, x in splits.items():
            bad = not_counts(x)
            if bad.any():
                raise DataFormatError(
                    f"{files[split]}: {int(bad.sum())} values are not counts 0, 1, 2, … (e.g. {float(x[bad][0])!r}): "
                    "the count likelihoods model whole numbers ≥ 0; for grey levels in [0, 1] use --likelihood gaussian "
                    "or continuous_bernoulli")
        return
    for split, x in splits.items():
        low, high = float(x.min()), float(x.max())
        if not (0 <= low and high <= 1):  # (NaN fails both)
            hint = COUNT_HINT if not not_counts(x).any() else "images are grey levels in [0, 1]"
            raise DataFormatError(f"{files[split]}: values from {low:g} to {high:g}, not grey levels in [0, 1]: {hint}")
    if binary:
        for split, x in splits.items():
            if not is_binary(x):
                raise DataFormatError(
                    f"{files[split]}: grey levels, not binary 0/1 pixels: the Bernoulli likelihood needs "
                    "--dynamic-binarization (a fresh binary draw of each image) or --grey-targets (grey levels as targets)")
    if levels:
        for split, x in splits.items():
            bad = off_grid(x, levels)
            if bad.any():
                raise DataFormatError(
                    f"{files[split]}: {int(bad.sum())} pixel values off the grid of {levels} grey levels k/{levels - 1} "
                    f"(e.g. {float(x[bad][0])!r}): the discretized logistic likelihood models 8-bit images (IDX files of "
                    "integer pixels); for other grey levels use --likelihood gaussian or continuous_bernoulli")


_SPLIT_NAMES = {
    "train": ["binarized_mnist_train.amat", "train-images-idx3-ubyte", "train-images.idx3-ubyte"],
    "valid": ["binarized_mnist_valid.amat"],
    "test": ["binarized_mnist_test.amat", "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"],
}


class Splits(dict):
    """{"train", "valid", "test"} → float32 images, and ``files``: where each split came from."""

    def __init__(self, arrays, files):
        super().__init__(arrays)
        self.files = dict(files)

    def limit(self, n, seed=None):
        """The first ``n`` images of each split, or with ``seed`` a random sample of them (``sample_rows``)."""
        n = _count(n, "limit: n")
        if seed is None:
            return Splits({k: v[:n] for k, v in self.items()}, {k: f"{f} (first {n})" for k, f in self.files.items()})
        return Splits({k: sample_rows(v, n, seed) for k, v in self.items()},
                      {k: f"{f} ({n} drawn with seed {seed})" for k, f in self.files.items()})


def sample_rows(x, n, seed):
    """``n`` rows of ``x`` drawn without replacement by Generator(seed), kept in file order (all of
    ``x`` when n ≥ its length). A subset must be drawn, not cut: the first rows of a file need not
    be typical (MNIST's first 2000 test digits are far easier than the rest)."""
    n = _count(n, "sample_rows: n")
    if n >= len(x):
        return x
    from minivae.random import Generator
    return x[numpy.sort(Generator(seed).permutation(len(x))[:n])]


def load_splits(source="default", valid_fraction=1 / 6):
    """{"train", "valid", "test"} → float32 images (a ``Splits``, which also names their files).

    ``source`` is "default" (the embedded digits), a folder holding binarized-MNIST .amat or
    MNIST-style IDX files (gzip or raw), or one file (then its last ``valid_fraction`` becomes
    the validation split and the test split is that same validation set): an image file, or a NumPy .npy/.npz matrix
    (``load_array``: counts, or images flattened; an .npz may hold the splits by name). ``valid_fraction`` lies in
    (0, 1); the held-out end is at least one row.
    """
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, numbers.Real) or not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be a number in (0, 1), got {valid_fraction!r}")
    if source == "default":
        return Splits(load_default(), {k: f"the embedded {k} digits" for k in ("train", "valid", "test")})
    if os.path.isfile(source):
        x = load_array(source) if is_array_file(source) else load_images(source)
        if isinstance(x, dict):  # an .npz of the splits by name
            return _named_splits(x, {k: f"{source}[{k}]" for k in x}, valid_fraction)
        cut = len(x) - max(1, int(len(x) * valid_fraction))
        return Splits({"train": x[:cut], "valid": x[cut:], "test": x[cut:]},
                      {"train": source, "valid": f"{source} (held-out end)", "test": f"{source} (held-out end)"})
    if not os.path.isdir(source):
        raise DataFormatError(f"no such data file or folder: {source}")
    found, files = {}, {}
    for split, names in _SPLIT_NAMES.items():
        for name in names:
            for candidate in (name, name + ".gz"):
                path = os.path.join(source, candidate)
                if split not in found and os.path.exists(path):
                    found[split], files[split] = load_images(path), path
    if "train" not in found:
        raise DataFormatError(f"{source}: no training images found (looked for {_SPLIT_NAMES['train']}, optionally .gz)")
    return _named_splits(found, files, valid_fraction)


def _named_splits(found, files, valid_fraction):
    """Splits of the arrays ``found`` by name, "train" among them: without "valid", the end of train held out (IDX
    sets have none); without "test", the validation set."""
    found, files = dict(found), dict(files)
    if "valid" not in found:
        x = found["train"]
        cut = len(x) - max(1, int(len(x) * valid_fraction))
        found["train"], found["valid"] = x[:cut], x[cut:]
        files["valid"] = f"{files['train']} (held-out end)"
    found.setdefault("test", found["valid"])
    files.setdefault("test", files["valid"])
    return Splits(found, files)


def load_default():
    """The embedded digits: a fixed subset of statically binarized MNIST (see README)."""
    with resources.files("minivae").joinpath("datasets/binarized_mnist_subset.npz").open("rb") as f:
        with numpy.load(f, allow_pickle=False) as packed:
            return {split: numpy.unpackbits(packed[split], axis=1, count=784).astype(numpy.float32)
                    for split in ("train", "valid", "test")}


def binarize(x, rng):
    """Dynamic binarization: each pixel is 1 with probability its grey level, fresh every call. Grey levels must lie
    in [0, 1] (NaN does not): one above 1 would always be 1, one below 0 or NaN always 0."""
    from minivae.random import check_probabilities
    check_probabilities(x, "binarize: grey levels")
    return (rng.uniform(x.shape, numpy.float64) < x).astype(numpy.float32)


def _count(n, name):
    """A count of rows or images: an integer ≥ 0 (a bool refused), as a Python int. A negative one would slice from
    the end (``x[:-1]``: all rows but the last) and a bool count as 0 or 1."""
    if isinstance(n, (bool, numpy.bool_)) or not isinstance(n, (int, numpy.integer)):
        raise TypeError(f"{name} must be an integer, got {n!r}")
    if n < 0:
        raise ValueError(f"{name} must be ≥ 0, got {n}")
    return int(n)


def batches(x, batch_size, rng=None, drop_last=False):
    """Mini-batches of rows of ``x``, shuffled by ``rng`` (a Generator) when one is given."""
    if _count(batch_size, "batch_size") < 1:
        raise ValueError(f"batch size must be ≥ 1, got {batch_size}")
    order = rng.permutation(len(x)) if rng is not None else numpy.arange(len(x))
    stop = len(x) - len(x) % batch_size if drop_last else len(x)
    for start in range(0, stop, batch_size):
        yield x[order[start:start + batch_size]]
