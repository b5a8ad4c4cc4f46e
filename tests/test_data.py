"""Readers on small files written here, corrupt and truncated ones included; the real data when present."""
import gzip
import os
import struct
import zlib

import numpy as np
import pytest

from minivae.data import (DataFormatError, batches, binarize, check_splits, load_default, load_images, load_splits, read_amat,
                          read_idx)
from minivae.random import Generator

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


def write_idx(path, array, type_byte=0x08, gz=False):
    header = struct.pack(">BBBB", 0, 0, type_byte, array.ndim) + b"".join(struct.pack(">i", d) for d in array.shape)
    body = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(body)
    return body


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3)).astype(np.uint8)
    write_idx(tmp_path / "x", images, gz=gz)
    np.testing.assert_array_equal(read_idx(tmp_path / "x"), images)  # the reader takes any shape
    images = np.random.default_rng(0).integers(0, 256, size=(5, 4, 4)).astype(np.uint8)  # images must be square
    write_idx(tmp_path / "x", images, gz=gz)
    x = load_images(tmp_path / "x")
    assert x.shape == (5, 16) and x.dtype == np.float32 and x.max() <= 1.0
    np.testing.assert_allclose(x, images.reshape(5, 16) / 255.0, rtol=1e-6)


def test_idx_other_types(tmp_path):
    a = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    write_idx(tmp_path / "i", a, type_byte=0x0C)
    np.testing.assert_array_equal(read_idx(tmp_path / "i"), a)


def test_idx_errors_name_the_problem(tmp_path):
    images = np.zeros((5, 4, 4), np.uint8)
    body = write_idx(tmp_path / "good", images)
    (tmp_path / "truncated").write_bytes(body[:-7])
    with pytest.raises(DataFormatError, match=r"says \(5, 4, 4\).*holds 73"):
        read_idx(tmp_path / "truncated")
    (tmp_path / "magic").write_bytes(b"\x12\x34" + body[2:])
    with pytest.raises(DataFormatError, match="bad magic number"):
        read_idx(tmp_path / "magic")
    (tmp_path / "header").write_bytes(body[:6])
    with pytest.raises(DataFormatError, match="truncated IDX header"):
        read_idx(tmp_path / "header")
    (tmp_path / "badgz").write_bytes(gzip.compress(body)[:30])
    with pytest.raises(DataFormatError, match="broken gzip"):
        read_idx(tmp_path / "badgz")
    with pytest.raises(DataFormatError, match="no such data file"):
        read_idx(tmp_path / "missing")
    write_idx(tmp_path / "labels", np.zeros(5, np.uint8))
    with pytest.raises(DataFormatError, match="labels"):
        load_images(tmp_path / "labels")


def test_amat_round_trip_and_errors(tmp_path):
    x = (np.random.default_rng(1).random((3, 6)) < 0.5).astype(int)
    text = "\n".join(" ".join(map(str, row)) for row in x) + "\n"
    (tmp_path / "a.amat").write_text(text)
    with gzip.open(tmp_path / "b.amat.gz", "wt") as f:
        f.write(text)
    np.testing.assert_array_equal(read_amat(tmp_path / "a.amat"), x)
    np.testing.assert_array_equal(load_images(tmp_path / "b.amat.gz"), x)
    (tmp_path / "ragged.amat").write_text("0 1 0\n1 1\n")
    with pytest.raises(DataFormatError, match="line 2 has 2 values"):
        read_amat(tmp_path / "ragged.amat")
    (tmp_path / "grey.amat").write_text("0 0.5 1\n")
    with pytest.raises(DataFormatError, match="0 or 1"):
        read_amat(tmp_path / "grey.amat")
    (tmp_path / "word.amat").write_text("0 x 1\n")
    with pytest.raises(DataFormatError, match="numbers"):
        read_amat(tmp_path / "word.amat")
    (tmp_path / "empty.amat").write_text("")
    with pytest.raises(DataFormatError, match="no images"):
        read_amat(tmp_path / "empty.amat")


def test_folder_of_idx_files_gets_a_validation_split(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((12, 2, 2), np.uint8), gz=True)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 2, 2), np.uint8), gz=True)
    splits = load_splits(str(tmp_path))
    assert len(splits["train"]) == 10 and len(splits["valid"]) == 2 and len(splits["test"]) == 3
    with pytest.raises(DataFormatError, match="no training images"):
        load_splits(str(tmp_path / ".."))


def test_embedded_default_is_real_binarized_digits():
    d = load_default()
    assert {k: v.shape for k, v in d.items()} == {"train": (30000, 784), "valid": (5000, 784), "test": (5000, 784)}
    assert set(np.unique(d["train"])) == {0.0, 1.0}
    # digits, not noise: about 13% of pixels are ink, and the border is blank
    assert 0.11 < d["test"].mean() < 0.15
    assert d["train"].reshape(-1, 28, 28)[:, :, 0].mean() < 0.001


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "binarized-mnist")), reason="../shared/data not present")
def test_embedded_default_matches_its_source():
    test = read_amat(os.path.join(SHARED, "binarized-mnist", "binarized_mnist_test.amat.gz"))
    assert len(test) == 10_000 and abs(test.mean() - 0.1325) < 0.001  # the data README's check
    np.testing.assert_array_equal(load_default()["test"], test[:5000])


@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "fashion-mnist")), reason="../shared/data not present")
def test_real_fashion_mnist_idx():
    x = load_images(os.path.join(SHARED, "fashion-mnist", "t10k-images-idx3-ubyte.gz"))
    assert x.shape == (10_000, 784) and 0 <= x.min() and x.max() == 1.0


def test_batches_are_a_seeded_partition_and_binarize_is_dynamic():
    x = np.arange(10.0)[:, None]
    got = np.concatenate(list(batches(x, 3, rng=Generator(0))))[:, 0]
    assert sorted(got) == list(range(10)) and list(got) != list(range(10))
    np.testing.assert_array_equal(got, np.concatenate(list(batches(x, 3, rng=Generator(0))))[:, 0])
    assert [len(b) for b in batches(x, 3, drop_last=True)] == [3, 3, 3]
    grey = np.full((2000, 10), 0.3, np.float32)
    rng = Generator(1)
    a, b = binarize(grey, rng), binarize(grey, rng)
    assert abs(a.mean() - 0.3) < 0.01 and not np.array_equal(a, b)


def test_integer_idx_is_scaled_by_255_never_by_its_maximum(tmp_path):
    dark = np.array([[[0, 1], [1, 0]], [[1, 1], [0, 0]]], np.uint8)  # grey levels 0 and 1 of 255, not binary
    write_idx(tmp_path / "dark", dark)
    np.testing.assert_array_equal(load_images(tmp_path / "dark"), dark.reshape(2, 4).astype(np.float32) / 255)


@pytest.mark.parametrize("array,type_byte,match", [
    (np.array([[[-3, 5]], [[0, 1]]], np.int8), 0x09, "grey levels 0…255, found values from -3"),
    (np.array([[[0, 300]], [[0, 1]]], np.int16), 0x0B, "found values from 0 to 300"),
    (np.array([[[0.0, 2.0]], [[0.5, 1]]], np.float32), 0x0D, r"must lie in \[0, 1\] \(they are not rescaled\)"),
    (np.array([[[0.0, np.nan]], [[0.5, 1]]], np.float64), 0x0E, "1 pixel values are NaN"),
    (np.zeros((0, 2, 2), np.uint8), 0x08, "no images"),
])
def test_idx_pixel_values_out_of_range_are_refused(tmp_path, array, type_byte, match):
    write_idx(tmp_path / "x", array, type_byte=type_byte)
    with pytest.raises(DataFormatError, match=match) as e:
        load_images(tmp_path / "x")
    assert str(tmp_path / "x") in str(e.value)


def test_check_splits_names_the_file_and_the_problem():
    ones = np.ones((4, 9), np.float32)
    files = {"train": "a", "valid": "b", "test": "c"}
    check_splits({"train": ones, "valid": ones[:1]}, files, batch_size=4, binary=True)
    cases = [({"train": ones, "valid": np.ones((2, 16), np.float32)}, {}, "b: 16 pixels an image, but a has 9"),
             ({"train": ones, "valid": ones}, {"x_dim": 16}, "a: 9 pixels an image, but the model expects 16"),
             ({"train": np.ones((4, 8), np.float32), "valid": np.ones((4, 8), np.float32)}, {}, "a: 8 pixels an image, not a square"),
             ({"train": ones, "valid": ones[:0]}, {}, "b: the valid split holds no images"),
             ({"train": ones, "valid": ones}, {"batch_size": 5}, r"a: 4 training images, fewer than one batch of 5 \(--batch-size\)"),
             ({"train": ones, "valid": ones * 0.5}, {"binary": True}, "b: grey levels.*--dynamic-binarization.*--grey-targets")]
    for splits, kwargs, match in cases:
        with pytest.raises(DataFormatError, match=match):
            check_splits(splits, files, **kwargs)
    check_splits({"train": ones, "valid": ones * 0.5}, files, binary=False)


def test_splits_know_their_files(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((12, 2, 2), np.uint8))
    splits = load_splits(str(tmp_path))
    assert splits.files["train"] == str(tmp_path / "train-images-idx3-ubyte")
    assert splits.files["valid"].endswith("(held-out end)")
    assert splits.limit(3).files["train"].endswith("(first 3)") and len(splits.limit(3)["train"]) == 3


def test_a_subset_is_a_seeded_random_sample_not_the_first_rows():
    from minivae.data import Splits, sample_rows
    x = np.arange(10_000)[:, None]
    a, b = sample_rows(x, 2000, seed=4), sample_rows(x, 2000, seed=4)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 2000 and (np.diff(a[:, 0]) > 0).all()  # distinct, in file order
    # spread over the whole file: each fifth holds 400 ± 4.5 sd expected (binomial-like); 60 is > 13 sd
    counts = np.bincount(a[:, 0] // 2000, minlength=5)
    assert (abs(counts - 400) < 60).all(), counts
    assert not np.array_equal(a, sample_rows(x, 2000, seed=5))
    assert sample_rows(x, 20_000, seed=4) is x
    splits = Splits({"test": x}, {"test": "t"})
    assert splits.limit(3, seed=1).files["test"] == "t (3 drawn with seed 1)"


def test_a_corrupt_deflate_body_is_a_broken_gzip_stream_naming_the_file(tmp_path):
    body = gzip.compress(b"0 1 1 0\n1 0 0 1\n")
    broken = bytearray(body)
    # the first byte after the 10-byte gzip header starts the deflate data: block type 3 is
    # reserved, so zlib itself fails (zlib.error, not the OSError of a bad CRC or header)
    broken[10] |= 0b110
    path = tmp_path / "binarized_mnist_train.amat.gz"
    path.write_bytes(bytes(broken))
    with pytest.raises(zlib.error):
        gzip.decompress(bytes(broken))  # the case this test is about
    with pytest.raises(DataFormatError, match="broken gzip stream") as e:
        read_amat(path)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("dims", [(-1, 4, 4), (4, -4, 4), (65536, 65536, 65536, 65536), (2 ** 31 - 1,) * 3])
def test_bad_idx_dimensions_name_the_file(tmp_path, dims):
    # negative dims would reach reshape as "unknown"; 65536**4 wraps numpy.prod's int64 to 0, which an
    # empty body then matches; both must be refused by the header check, naming the file
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, len(dims)) + b"".join(struct.pack(">i", d) for d in dims))
    with pytest.raises(DataFormatError, match="bad IDX dimensions") as e:
        read_idx(path)
    assert str(e.value).startswith(f"{path}: ")


@pytest.mark.parametrize("shape", [(6, 2, 8), (6, 8, 2), (6, 4, 4, 2)])
def test_idx_images_must_be_square_in_their_own_dims(tmp_path, shape):
    # 2×8 holds 16 pixels, a square count: the flattened width alone cannot tell it from 4×4
    write_idx(tmp_path / "x", np.zeros(shape, np.uint8))
    with pytest.raises(DataFormatError, match="not square images") as e:
        load_images(tmp_path / "x")
    assert str(tmp_path / "x") in str(e.value)
    write_idx(tmp_path / "ok", np.zeros((6, 4, 4, 1), np.uint8))  # a trailing channel of 1 is still 4×4
    assert load_images(tmp_path / "ok").shape == (6, 16)


@pytest.mark.parametrize("call,error,match", [
    (lambda x: x.limit(-1), ValueError, r"limit: n must be ≥ 0, got -1"),
    (lambda x: x.limit(-1, seed=0), ValueError, r"limit: n must be ≥ 0, got -1"),
    (lambda x: x.limit(True), TypeError, r"limit: n must be an integer, got True"),
    (lambda x: x.limit(2.5), TypeError, r"limit: n must be an integer, got 2.5"),
], ids=["negative", "negative-drawn", "bool", "float"])
def test_limit_takes_a_count(call, error, match):
    """limit(-1) was x[:-1], every image but the last (and with a seed all but one drawn); limit(True) one image."""
    from minivae.data import Splits
    splits = Splits({"train": np.arange(10.0)[:, None]}, {"train": "t"})
    with pytest.raises(error, match=match):
        call(splits)


def test_sample_rows_and_batches_take_counts():
    from minivae.data import sample_rows
    x = np.arange(10.0)[:, None]
    with pytest.raises(ValueError, match=r"sample_rows: n must be ≥ 0, got -3"):
        sample_rows(x, -3, seed=0)  # was 7 rows
    assert sample_rows(x, 0, seed=0).shape == (0, 1)
    with pytest.raises(TypeError, match="batch_size must be an integer, got True"):
        next(batches(x, True))  # was batches of 1
    with pytest.raises(TypeError, match="batch_size must be an integer, got 4.0"):
        next(batches(x, 4.0))
    assert [len(b) for b in batches(x, np.int64(4))] == [4, 4, 2]


@pytest.mark.parametrize("fraction", [2, 1, 0, -0.5, float("nan"), True])
def test_valid_fraction_must_lie_strictly_between_0_and_1(tmp_path, fraction):
    """2 held out every image (train empty) and −0.5 one; now named."""
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((12, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"valid_fraction must be a number in \(0, 1\)"):
        load_splits(str(path), valid_fraction=fraction)
    assert len(load_splits(str(path), valid_fraction=0.25)["valid"]) == 3


@pytest.mark.parametrize("bad", [1.5, -0.2, np.nan], ids=["above-1", "negative", "nan"])
def test_binarize_refuses_grey_levels_outside_0_1(bad):
    """A grey level above 1 was always 1, one below 0 or NaN always 0, silently; the stream does not move."""
    rng = Generator(0)
    with pytest.raises(ValueError, match=r"binarize: grey levels must be probabilities in \[0, 1\]"):
        binarize(np.array([[0.5, bad]], np.float32), rng)
    assert rng.counter == 0
