"""A run folder under stress: kill -9 at many instants, two runs at once, stale locks and temporary
files, resumes with other settings, damaged checkpoints, outputs that would overwrite inputs."""
import csv
import os
import signal
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from minivae.training import FORMAT_VERSION, load_checkpoint
from tests.test_cli import one_error_line, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--limit", "120", "--hidden", "8", "--batch-size", "40", "--n-latent", "2", "--n-categories", "3"]


def metrics(folder):
    """metrics.csv without its wall-clock column."""
    with open(folder / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def assert_same_parameters(a, b):
    ma, _ = load_checkpoint(a / "checkpoint.npz")
    mb, _ = load_checkpoint(b / "checkpoint.npz")
    for (name, p), (_, q) in zip(ma.named_parameters(), mb.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


# A child that trains and SIGKILLs itself at a chosen instant of its n-th atomic write: "mid" (half
# of the .npz written to the temporary file), "before" (file complete, not yet renamed into place)
# or "after" (renamed; the next write not begun). Writes 1, 3, 5 are the checkpoints of epochs
# 1, 2, 3; 2, 4, 6 their metrics.csv; 7, 8 the pictures.
KILLER = r"""
import os, signal, sys
import minivae._io as io
n, when, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
calls = [0]
real_replace, real_write_atomic = os.replace, io.write_atomic

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def replace(src, dst):
    calls[0] += 1
    if calls[0] == n and when == "before":
        die()
    real_replace(src, dst)
    if calls[0] == n and when == "after":
        die()

def write_atomic(path, write, text=False):  # what save_npz_atomic (the checkpoints) calls
    def cut(f):
        write(f)
        if calls[0] + 1 == n and when == "mid":
            f.truncate(f.tell() // 2)
            f.flush()
            die()
    real_write_atomic(path, cut, text)

os.replace, io.write_atomic = replace, write_atomic
from minivae.cli import main
main(argv)
"""


def _child(*args, killer=None):
    env = dict(os.environ, MINIVAE_DISABLE_NUMBA="1", PYTHONPATH=ROOT)  # same path in every child: same numbers
    code = KILLER if killer else "import sys; from minivae.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = [*map(str, killer or ()), *map(str, args)]
    return subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, timeout=120)


def test_kill_9_at_any_instant_loses_nothing_committed(tmp_path):
    args = ["train", *TINY, "--epochs", 3, "--seed", 5]
    full = tmp_path / "full"
    assert _child(*args, "--out", full).returncode == 0
    for n, when in [(1, "mid"), (1, "before"), (1, "after"), (3, "mid"), (3, "after"), (4, "before"),
                    (5, "after"), (6, "after"), (7, "before")]:
        out = tmp_path / f"killed-{n}-{when}"
        r = _child(*args, "--out", out, killer=(n, when))
        assert r.returncode == -signal.SIGKILL, (n, when, r.stderr)
        resume = ["--resume"] if (out / "checkpoint.npz").exists() else []
        if n >= 3 or (n == 1 and when == "after"):
            assert resume, (n, when)  # an epoch committed is never lost
        r = _child(*args, "--out", out, *resume)
        assert r.returncode == 0, (n, when, r.stderr)
        assert_same_parameters(full, out)
        assert metrics(out) == metrics(full), (n, when)
        assert not [p for p in os.listdir(out) if p.startswith(".")], (n, when)  # no temporary file, no lock


def test_a_second_train_into_a_locked_folder_stops_with_the_holders_pid(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from minivae._io import folder_lock\n"
         "with folder_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert run("train", *TINY, "--epochs", 1, "--out", out) == 1
        line = one_error_line(capsys)
        assert f"pid {holder.pid}" in line and "in use" in line
        assert sorted(os.listdir(out)) == [".lock"]  # nothing of the second run
    finally:
        holder.kill()
        holder.wait()
    # the holder died without removing its lock file: a stale lock, taken over
    assert (out / ".lock").read_text().strip() == str(holder.pid)
    assert run("train", *TINY, "--epochs", 1, "--out", out) == 0
    assert (out / "checkpoint.npz").exists() and not (out / ".lock").exists()


def test_stale_temporary_files_are_removed_at_start(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".tmp-abc123").write_bytes(b"x" * 1000)  # what a kill during a write leaves
    (out / "notes.txt").write_text("mine")
    assert run("train", *TINY, "--epochs", 1, "--out", out) == 0
    assert not (out / ".tmp-abc123").exists() and (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("change", [["--lr", "0.01"], ["--batch-size", "30"], ["--seed", "1"], ["--warmup-epochs", "2"],
                                    ["--dynamic-binarization"], ["--limit", "90"], ["--clip", "5"], ["--data"]])
def test_resume_with_another_setting_is_refused_naming_it(tmp_path, capsys, change):
    if change == ["--data"]:  # other images of the same size
        images = (np.random.default_rng(0).random((300, 784)) < 0.2).astype(int)
        (tmp_path / "other.amat").write_text("\n".join(" ".join(map(str, row)) for row in images))
        change = ["--data", tmp_path / "other.amat"]
    out = tmp_path / "run"
    assert run("train", *TINY, "--epochs", 1, "--out", out) == 0
    before = (out / "checkpoint.npz").read_bytes(), (out / "metrics.csv").read_bytes()
    capsys.readouterr()
    assert run("train", *TINY, "--epochs", 2, "--out", out, "--resume", *change) == 1
    line = one_error_line(capsys)
    flag = "--data or --limit (the images' fingerprint)" if change[0] in ("--limit", "--data") else change[0]
    assert f"{flag} (checkpoint" in line and "--override-settings" in line
    assert ((out / "checkpoint.npz").read_bytes(), (out / "metrics.csv").read_bytes()) == before


def test_override_settings_goes_on_and_records_the_change(tmp_path):
    out, full = tmp_path / "run", tmp_path / "full"
    assert run("train", *TINY, "--epochs", 1, "--out", out) == 0
    assert run("train", *TINY, "--epochs", 3, "--out", out, "--resume", "--lr", "0.01", "--override-settings") == 0
    rows = metrics(out)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert rows[0]["settings_changed"] == "" and rows[2]["settings_changed"] == ""
    assert rows[1]["settings_changed"] == "--lr (checkpoint 0.001, now 0.01)"
    # the new value is now the run's own: resuming with it needs no override
    assert run("train", *TINY, "--epochs", 4, "--out", out, "--resume", "--lr", "0.01") == 0
    # and the exact resume still is exact
    assert run("train", *TINY, "--epochs", 2, "--out", full) == 0
    part = tmp_path / "part"
    assert run("train", *TINY, "--epochs", 1, "--out", part) == 0
    assert run("train", *TINY, "--epochs", 2, "--out", part, "--resume") == 0
    assert_same_parameters(full, part)
    assert metrics(full) == metrics(part)


def test_resume_into_another_model_shape_names_the_flag(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", *TINY, "--epochs", 1, "--out", out) == 0
    capsys.readouterr()
    assert run("train", *TINY, "--epochs", 2, "--out", out, "--resume", "--n-categories", 4, "--override-settings") == 1
    assert "--n-categories (checkpoint 3, now 4)" in one_error_line(capsys)


def _rewrite(src, dst, drop=(), set_=None):
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k not in drop}
    arrays.update(set_ or {})
    np.savez(dst, **arrays)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    assert run("train", *TINY, "--epochs", 1, "--out", out) == 0
    return out


def _damaged(trained, tmp_path):
    good = (trained / "checkpoint.npz").read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10  # inside the parameters' bytes: the zip's CRC catches it
    cases = {"truncated": good[:len(good) // 2], "bit-flipped": bytes(flipped),
             "random": np.random.default_rng(0).bytes(3000), "empty": b""}
    for name, body in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "checkpoint.npz").write_bytes(body)
    for name, drop, set_ in [("no-config", ["meta/config"], None), ("no-rng", ["meta/rng"], None),
                             ("no-parameter", ["model/encoder.0.weight"], None),
                             ("bad-config", [], {"meta/config": np.array("{not json")}),
                             ("other-kind", [], {"meta/kind": np.array("flow")}),
                             ("newer", [], {"meta/format": np.array(FORMAT_VERSION + 1)})]:
        (tmp_path / name).mkdir()
        _rewrite(trained / "checkpoint.npz", tmp_path / name / "checkpoint.npz", drop, set_)
    return sorted(cases) + ["no-config", "no-rng", "no-parameter", "bad-config", "other-kind", "newer"]


def test_every_checkpoint_read_failure_is_one_line_naming_the_file(trained, tmp_path, capsys):
    with np.load(trained / "checkpoint.npz") as f:
        assert "model/encoder.0.weight" in f.files and int(f["meta/format"]) == FORMAT_VERSION
    for name in _damaged(trained, tmp_path):
        path = tmp_path / name / "checkpoint.npz"
        before = path.read_bytes()
        for args in (["eval", path, "--limit", 10], ["sample", path, "--out", tmp_path / f"{name}.png"],
                     ["train", *TINY, "--epochs", 2, "--out", tmp_path / name, "--resume"]):
            assert run(*args) == 1, (name, args[0])
            line = one_error_line(capsys)
            assert str(path) in line, (name, args[0], line)
            assert "allow_pickle" not in line and "Traceback" not in line
            assert path.read_bytes() == before
        if name == "newer":
            assert "newer minivae" in line
        assert not (tmp_path / f"{name}.png").exists()


def test_resume_with_missing_optimizer_state_is_one_line(trained, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    _rewrite(trained / "checkpoint.npz", tmp_path / "run" / "checkpoint.npz", drop=["optim/0.m"])
    assert run("train", *TINY, "--epochs", 2, "--out", tmp_path / "run", "--resume") == 1
    line = one_error_line(capsys)
    assert "optimizer" in line and "checkpoint.npz" in line


def test_sample_never_overwrites_its_input_or_a_file_that_is_not_a_png(trained, tmp_path, capsys):
    ckpt = tmp_path / "ck.npz"
    ckpt.write_bytes((trained / "checkpoint.npz").read_bytes())
    before = ckpt.read_bytes()
    assert run("sample", ckpt, "--out", ckpt) == 1
    assert "checkpoint itself" in one_error_line(capsys) and ckpt.read_bytes() == before
    (tmp_path / "notes.txt").write_text("keep me")
    assert run("sample", ckpt, "--out", tmp_path / "notes.txt") == 1
    assert "not a PNG" in one_error_line(capsys) and (tmp_path / "notes.txt").read_text() == "keep me"
    assert run("sample", ckpt, "--out", tmp_path / "s.png") == 0  # a new file, then a PNG replaced by a PNG
    assert run("sample", ckpt, "--out", tmp_path / "s.png", "--n", 8) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG" and zipfile.is_zipfile(ckpt)


def test_a_second_train_says_how_to_continue_or_start_afresh(trained, capsys):
    before = (trained / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert run("train", *TINY, "--epochs", 1, "--out", trained) == 1
    line = one_error_line(capsys)
    assert "--resume" in line and "--out" in line
    assert (trained / "checkpoint.npz").read_bytes() == before


def test_resume_without_a_checkpoint_says_to_start_afresh(tmp_path, capsys):
    assert run("train", *TINY, "--epochs", 1, "--out", tmp_path / "run", "--resume") == 1
    assert "no checkpoint to resume: start the run without --resume" in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_train_ends_saying_what_it_wrote_and_eval_shows_progress(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", *TINY, "--epochs", 2, "--out", out) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"wrote {out}") and "checkpoint.npz (epoch 2)" in last and "metrics.csv" in last
    for name in ("checkpoint.npz", "metrics.csv", "reconstructions.png", "samples.png"):
        assert name in last and (out / name).exists()
    assert run("eval", out / "checkpoint.npz", "--limit", 100, "-k", 2, "--batch-size", 10) == 0
    captured = capsys.readouterr()
    assert [line.split("  ")[1] for line in captured.err.splitlines()] == [f"batch {i}/10" for i in range(1, 11)]
    # --limit in eval draws its images (the first of a file need not be typical), and says so
    assert "test: 100 images, the embedded test digits (100 drawn with seed 0)" in captured.out


def test_help_shows_the_defaults(capsys):
    from minivae.cli import build_parser
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: 10)", "(default: 0.001)", "(default: 512,256)", "(default: runs/default)", "(default: 100)"):
        assert default in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_sample_replaces_only_a_regular_file(trained, tmp_path, capsys):
    ckpt = trained / "checkpoint.npz"
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n old picture")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    os.symlink(tmp_path / "a.png", tmp_path / "link.png")  # a link to a PNG: refused, the link is not replaced
    os.symlink(tmp_path / "nowhere.png", tmp_path / "dangling.png")
    # the folder before the FIFO: were the regular-file check lost, opening the FIFO to read its magic would block
    for name, message in (("folder", "not a regular file"), ("fifo", "not a regular file"),
                          ("link.png", "symbolic link"), ("dangling.png", "symbolic link")):
        assert run("sample", ckpt, "--n", 4, "--out", tmp_path / name) == 1, name
        line = one_error_line(capsys)
        assert str(tmp_path / name) in line and message in line, (name, line)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode) and (tmp_path / "folder").is_dir()
    assert os.readlink(tmp_path / "link.png") == str(tmp_path / "a.png") and not (tmp_path / "nowhere.png").exists()
    assert (tmp_path / "a.png").read_bytes() == b"\x89PNG\r\n\x1a\n old picture"
    assert sorted(os.listdir(tmp_path)) == ["a.png", "dangling.png", "fifo", "folder", "link.png"]  # no temporary
    assert run("sample", ckpt, "--n", 4, "--out", tmp_path / "a.png") == 0  # the regular PNG itself is replaced
    assert (tmp_path / "a.png").read_bytes() != b"\x89PNG\r\n\x1a\n old picture"


@pytest.mark.parametrize("key,value,message", [
    ("meta/metrics", np.array('{"a": 1}'), "meta/metrics (not a JSON list)"),
    ("meta/metrics", np.array('[["epoch"], {"a": 1}]'), "meta/metrics (not a list of rows"),
    ("meta/metrics", np.array("[[not json"), "meta/metrics (not a JSON list)"),
    ("meta/settings", np.array("[1, 2]"), "meta/settings (not a JSON object)"),
    ("meta/settings", np.array("{bad json"), "meta/settings (not a JSON object)"),
    ("meta/format", np.array("x"), "meta/format (not an integer)"),
    ("meta/format", np.array([1, 2]), "meta/format (not an integer)"),
    ("meta/epoch", np.array(1.5), "meta/epoch"),
    ("meta/rng", np.array([1, 2, 3], np.uint64), "meta/rng"),
])
def test_malformed_checkpoint_metadata_is_one_line_and_overwrites_nothing(trained, tmp_path, capsys, key, value, message):
    out = tmp_path / "run"
    out.mkdir()
    _rewrite(trained / "checkpoint.npz", out / "checkpoint.npz", set_={key: value})
    (out / "metrics.csv").write_text("kept\n")  # --resume rewrites metrics.csv from the checkpoint: not from this one
    before = (out / "checkpoint.npz").read_bytes()
    for args in (["train", *TINY, "--epochs", 2, "--out", out, "--resume"], ["eval", out / "checkpoint.npz", "--limit", 10],
                 ["sample", out / "checkpoint.npz", "--out", tmp_path / "s.png"]):
        assert run(*args) == 1, args[0]
        line = one_error_line(capsys)
        assert line.startswith(f"minivae {args[0]}: error: {out / 'checkpoint.npz'} has a malformed ") and message in line, line
    assert (out / "metrics.csv").read_text() == "kept\n" and (out / "checkpoint.npz").read_bytes() == before
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "metrics.csv"] and not (tmp_path / "s.png").exists()
