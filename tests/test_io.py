"""The files of a run: written atomically and durably, with a plain open()'s permissions; the .npz files: every dtype
and edge shape round-trips bit for bit, and anything unreadable (truncated, a flipped bit, another format) is one
ValueError naming the file."""
import os
import stat

import numpy as np
import pytest

from minivae import _io
from minivae._io import load_npz, save_npz_atomic

DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32",
          "float64", "longdouble", "complex64", "complex128", ">f4", ">i8", "<U5", "S3", "datetime64[s]", "timedelta64[ms]"]


def _arrays():
    arrays = {f"dtype/{d}": np.arange(-3, 3).astype(d).reshape(2, 3) for d in DTYPES}
    arrays.update({
        "zero-d": np.array(3.5), "empty": np.zeros((2, 0, 3), np.float32), "no-elements": np.array([], np.int64),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)), "strided": np.arange(10.0)[::3],
        "specials": np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324]), "structured": np.array([(1, 2.5)], "i4,f8"),
        "model/layers.0.weight": np.ones((2, 2), np.float32), "ключ": np.ones(1),
        "file": np.array([1]), "allow_pickle": np.array([2]),  # numpy.savez's own argument names
    })
    return arrays


def test_every_dtype_and_edge_shape_round_trips_bit_for_bit(tmp_path):
    arrays = _arrays()
    save_npz_atomic(tmp_path / "a.npz", arrays)
    back = load_npz(tmp_path / "a.npz")
    assert sorted(back) == sorted(arrays)
    for name, a in arrays.items():
        b = back[name]
        assert (b.dtype, b.shape) == (a.dtype, a.shape), name
        assert np.ascontiguousarray(b).tobytes() == np.ascontiguousarray(a).tobytes(), name  # NaN and −0.0 included
    assert back["fortran"].flags.f_contiguous
    assert np.load(tmp_path / "a.npz")["file"] == 1  # a plain .npz: NumPy reads it


def test_an_object_array_is_refused_at_save_naming_it_and_the_old_file_is_kept(tmp_path):
    """numpy.savez pickles it; load_npz never unpickles, so the file (a checkpoint) could not have been read back."""
    path = tmp_path / "c.npz"
    save_npz_atomic(path, {"w": np.ones(2)})
    with pytest.raises(ValueError, match="cannot save 'meta/extra' to .*c.npz: Object arrays"):
        save_npz_atomic(path, {"w": np.zeros(2), "meta/extra": np.array([1, "a"], dtype=object)})
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left
    np.testing.assert_array_equal(load_npz(path)["w"], np.ones(2))


def _saved(tmp_path):
    arrays = {"model/w": np.arange(12, dtype=np.float32).reshape(3, 4), "meta/kind": np.array("gaussian")}
    save_npz_atomic(tmp_path / "good.npz", arrays)
    return arrays, (tmp_path / "good.npz").read_bytes()


def test_a_truncated_file_is_one_value_error_naming_it_at_every_length(tmp_path):
    _, data = _saved(tmp_path)
    path = tmp_path / "cut.npz"
    for n in range(len(data)):
        path.write_bytes(data[:n])
        with pytest.raises(ValueError, match="cut.npz is not a readable .npz file") as error:
            load_npz(path)
        assert "pickle" not in str(error.value), n  # "PK" alone was taken for a zip and handed to numpy.load's pickle path


def test_a_flipped_bit_anywhere_is_refused_naming_the_file_or_changes_nothing_read(tmp_path):
    """Each of the file's bits flipped in turn: load_npz raises ValueError naming the file (zipfile's CRC-32, header
    and version checks; an entry that reads as encrypted or compressed by an unknown method was a RuntimeError or
    NotImplementedError), or the bit was in a field nothing reads (a time stamp) and every array read is the one
    written. (A bit in an entry's comment length can hide the entries after it: those are missing, not wrong.)"""
    arrays, data = _saved(tmp_path)
    path = tmp_path / "flipped.npz"
    for i in range(len(data)):
        for bit in range(8):
            corrupt = bytearray(data)
            corrupt[i] ^= 1 << bit
            path.write_bytes(bytes(corrupt))
            try:
                back = load_npz(path)
            except ValueError as e:
                assert "flipped.npz is not a readable .npz file" in str(e), (i, bit)
                continue
            assert "model/w" in back and set(back) <= set(arrays), (i, bit)
            for name, b in back.items():
                assert b.dtype == arrays[name].dtype and np.array_equal(b, arrays[name]), (i, bit, name)


@pytest.mark.parametrize("content", [b"", b"P", b"PK", b"PK\x03", b"\x93NUMPY", b"\x80\x04K\x01.", b"text, not a zip"])
def test_other_formats_are_refused_without_unpickling(tmp_path, content):
    (tmp_path / "x.npz").write_bytes(content)
    with pytest.raises(ValueError, match="x.npz is not a readable .npz file \\(not a zip archive\\)"):
        load_npz(tmp_path / "x.npz")


def test_a_missing_file_and_a_folder_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file: .*nothing.npz"):
        load_npz(tmp_path / "nothing.npz")
    with pytest.raises(ValueError, match="is not a readable .npz file"):
        load_npz(tmp_path)


def test_an_atomic_write_has_a_plain_opens_permissions_without_ever_setting_the_umask(tmp_path, monkeypatch):
    # Reading the umask takes setting it (os.umask(0), then back): a thread creating a file in between would make it
    # world-writable. The temporary file is created with 0o666 for the kernel to apply the umask instead.
    old = os.umask(0o027)
    try:
        with open(tmp_path / "plain", "wb"):
            pass
        def umask(mask):
            raise AssertionError("write_atomic set the process's umask")
        monkeypatch.setattr(os, "umask", umask)
        _io.write_atomic(tmp_path / "atomic", lambda f: f.write(b"x"))
        _io.write_atomic(tmp_path / "text", lambda f: f.write("x"), text=True)
    finally:
        monkeypatch.undo()
        os.umask(old)
    want = stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    assert want == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "atomic").st_mode) == want
    assert stat.S_IMODE(os.stat(tmp_path / "text").st_mode) == want
    assert sorted(os.listdir(tmp_path)) == ["atomic", "plain", "text"]


def test_an_atomic_write_syncs_the_data_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    # Without the first fsync a power loss may leave the new name on an empty or partial file (ext4 without
    # auto_da_alloc, XFS, btrfs); without the second the rename itself may be lost after the write was reported.
    events, real_fsync, real_replace = [], os.fsync, os.replace
    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync folder" if stat.S_ISDIR(st.st_mode) else "fsync file", st.st_size))
        real_fsync(fd)
    def replace(src, dst):
        events.append(("replace", os.path.getsize(src)))
        real_replace(src, dst)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    _io.write_atomic(tmp_path / "f", lambda f: f.write(b"12345"))
    assert [e for e, _ in events] == ["fsync file", "replace", "fsync folder"]
    assert events[0][1] == 5  # the data was written out (flushed) when it was synced
    assert (tmp_path / "f").read_bytes() == b"12345"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    (tmp_path / "f").write_bytes(b"old")
    def write(f):
        f.write(b"new")
        raise RuntimeError("disk full")
    with pytest.raises(RuntimeError, match="disk full"):
        _io.write_atomic(tmp_path / "f", write)
    assert os.listdir(tmp_path) == ["f"] and (tmp_path / "f").read_bytes() == b"old"
