"""The minivae command end to end in a temporary folder."""
import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from minivae._io import load_npz, save_npz_atomic
from minivae.cli import main
from minivae.training import kl_weight, load_checkpoint

SMALL = ["--limit", "300", "--hidden", "32", "--batch-size", "50"]


def run(*args):
    return main([str(a) for a in args])


def test_train_writes_checkpoint_metrics_and_pictures(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--model", "categorical", "--epochs", 2, "--n-latent", 4, "--out", out, *SMALL) == 0
    for name in ("checkpoint.npz", "metrics.csv", "reconstructions.png", "samples.png"):
        assert (out / name).exists(), name
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and float(rows[1]["valid_elbo"]) < 0
    assert (out / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in os.listdir(out) if p.startswith(".tmp")]
    model, arrays = load_checkpoint(out / "checkpoint.npz")
    assert model.kind == "categorical" and int(arrays["meta/epoch"]) == 2


@pytest.mark.parametrize("model,extra", [("gaussian", ["--z-dim", 3, "--activation", "gated", "--warmup-epochs", 2]),
                                         ("categorical", ["--n-latent", 3, "--estimator", "reinforce", "--baseline-hidden", 4]),
                                         ("bernoulli", ["--n-latent", 5, "--anneal-rate", 0.01])])
def test_resume_matches_an_uninterrupted_run(tmp_path, model, extra):
    full, part = tmp_path / "full", tmp_path / "part"
    args = ["train", "--model", model, *extra, *SMALL, "--seed", 3]
    assert run(*args, "--epochs", 3, "--out", full) == 0
    assert run(*args, "--epochs", 1, "--out", part) == 0
    assert run(*args, "--epochs", 3, "--out", part, "--resume") == 0
    a, _ = load_checkpoint(full / "checkpoint.npz")
    b, _ = load_checkpoint(part / "checkpoint.npz")
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    assert open(full / "metrics.csv").read().count("\n") == open(part / "metrics.csv").read().count("\n")
    if "--warmup-epochs" in extra:  # W = 2: β = min(1, (epoch − 1)/2) = 0, 1/2, 1, resumed or not
        for folder in (full, part):
            assert [r["kl_weight"] for r in csv.DictReader(open(folder / "metrics.csv"))] == ["0.0", "0.5", "1.0"]
        assert a.config["activation"] == "gated"


def test_kl_warm_up_rises_linearly_from_zero():
    """β = min(1, (epoch − 1)/W) by hand: 0 in epoch 1, +1/W an epoch, 1 from epoch W + 1; 1 throughout without a warm-up."""
    assert [kl_weight(e, 4) for e in range(1, 7)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert [kl_weight(e, 1) for e in range(1, 4)] == [0.0, 1.0, 1.0]
    assert [kl_weight(e, 0) for e in range(1, 4)] == [1.0, 1.0, 1.0]


def test_a_checkpoint_of_the_old_warm_up_is_resumed_only_when_its_warm_up_is_over(tmp_path, capsys):
    """Format 1 warmed up with β = epoch/W: resumed mid-warm-up, the new β sequence would differ, so it is refused
    (naming --warmup-epochs); once the warm-up is over (epoch ≥ W) both give β = 1 and it goes on."""
    out = tmp_path / "run"
    args = ["train", "--model", "gaussian", "--z-dim", 2, *SMALL, "--limit", 100]
    for warmup, refused in ((2, True), (1, False)):
        shutil.rmtree(out, ignore_errors=True)
        assert run(*args, "--warmup-epochs", warmup, "--epochs", 1, "--out", out) == 0
        arrays = load_npz(out / "checkpoint.npz")
        save_npz_atomic(out / "checkpoint.npz", {**arrays, "meta/format": np.array(1)})
        capsys.readouterr()
        assert run(*args, "--warmup-epochs", warmup, "--epochs", 2, "--out", out, "--resume") == int(refused)
        if refused:
            line = one_error_line(capsys)
            assert "--warmup-epochs (checkpoint's β = epoch/2, now (epoch − 1)/2" in line and "--override-settings" in line


def test_eval_and_sample(tmp_path, capsys):
    out = tmp_path / "run"
    run("train", "--model", "gaussian", "--epochs", 1, "--z-dim", 2, "--out", out, *SMALL)
    capsys.readouterr()
    assert run("eval", out / "checkpoint.npz", "--limit", 100, "-k", 50) == 0
    text = capsys.readouterr().out
    elbo = float(text.split("ELBO (1 sample)")[1].split()[0])
    ll = float(text.split("k=50")[1].split()[0])
    assert ll > elbo  # the importance-sampled estimate is the tighter one
    assert run("sample", out / "checkpoint.npz", "--n", 16, "--out", tmp_path / "s.png") == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_inputs_give_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--data", tmp_path / "missing.amat", "--out", out) == 1
    assert "no such data file" in one_error_line(capsys) and not out.exists()
    (tmp_path / "bad.amat").write_text("0 1\n1\n")
    assert run("train", "--data", tmp_path / "bad.amat", "--out", out) == 1
    assert "line 2" in one_error_line(capsys) and not out.exists()
    with pytest.raises(SystemExit) as e:
        run("train", "--epochs", 0)
    assert e.value.code == 2 and "positive integer" in one_error_line(capsys)
    with pytest.raises(SystemExit):
        run("train", "--hidden", "a,b")
    assert "argument --hidden: sizes are comma-separated integers" in one_error_line(capsys)
    with pytest.raises(SystemExit):
        run("train", "--warmup-epochs", -1)
    assert "≥ 0" in one_error_line(capsys)
    assert run("train", "--model", "gaussian", "--estimator", "reinforce", "--out", out) == 1
    assert "pathwise" in one_error_line(capsys)
    assert run("train", "--model", "categorical", "--baseline-hidden", 8, "--out", out) == 1
    assert "reinforce" in one_error_line(capsys)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    assert run("eval", tmp_path / "junk.npz") == 1
    assert "not a readable .npz" in one_error_line(capsys)


def test_checkpoint_of_another_model_is_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "run"
    run("train", "--model", "gaussian", "--epochs", 1, "--z-dim", 2, "--out", out, *SMALL)
    before = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    assert run("train", "--model", "categorical", "--epochs", 2, "--out", out, "--resume", *SMALL) == 1
    assert "holds a gaussian model" in one_error_line(capsys)
    assert run("train", "--model", "gaussian", "--epochs", 1, "--z-dim", 2, "--out", out, *SMALL) == 1
    assert "already holds a checkpoint" in one_error_line(capsys)
    assert (out / "checkpoint.npz").read_bytes() == before


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow is the point of the test
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    run("train", "--model", "gaussian", "--epochs", 1, "--z-dim", 2, "--out", out, *SMALL)
    good = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    # a learning rate this large drives the weights to inf within a few steps
    assert run("train", "--model", "gaussian", "--epochs", 3, "--z-dim", 2, "--out", out, "--resume",
               "--override-settings", "--lr", "1e30", *SMALL) == 1
    line = one_error_line(capsys)
    assert "the loss became" in line and "last good checkpoint" in line
    assert (out / "checkpoint.npz").read_bytes() == good  # epoch 1's checkpoint, untouched
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert all(np.isfinite(p.data).all() for p in model.parameters())


def test_info_reports_the_kernel_path(capsys):
    import importlib.util
    assert run("info") == 0
    out = capsys.readouterr().out
    assert "numpy" in out and "fused_cpu_kernels" in out
    from minivae import info
    assert info()["fused_cpu_kernels"] == (importlib.util.find_spec("numba") is not None
                                           and os.environ.get("MINIVAE_DISABLE_NUMBA", "") not in ("1", "true", "yes"))


def test_info_without_cupy_says_the_gpu_is_unknown_not_missing(monkeypatch, capsys):
    """Without CuPy, info cannot see a GPU or CUDA that may be there: it says so, rather than "not installed"."""
    import importlib.util
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cupy" else find_spec(name, *a))
    assert run("info") == 0
    lines = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines() if line[:1].isalpha())
    assert lines["cupy"] == "not installed"
    assert lines["gpu"].startswith("unknown: CuPy is not installed") and "minivae[cuda12]" in lines["gpu"]
    assert lines["cuda"] == "unknown: CuPy is not installed"
    assert lines["fused_cuda_kernels"] == "off: CuPy is not installed"


def test_console_script_runs_and_estimators_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "minivae.cli", "estimators", "--draws", "20"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "(d) bounds" in r.stdout
    r = subprocess.run([sys.executable, "-m", "minivae.cli", "ops"], capture_output=True, text=True)
    assert "softmax" in r.stdout and "one_hot" in r.stdout


def test_python_dash_m_minivae_is_the_command_line(tmp_path, capsys):
    """``python -m minivae`` (no scripts folder on PATH needed) runs the same parser and commands, with its exit codes."""
    r = subprocess.run([sys.executable, "-m", "minivae", "ops"], capture_output=True, text=True, cwd=tmp_path)
    assert main(["ops"]) == 0
    assert r.returncode == 0 and r.stdout == capsys.readouterr().out
    r = subprocess.run([sys.executable, "-m", "minivae", "bogus"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.splitlines()  # one line (argparse's wording of the rest changes between Python versions)
    assert len(lines) == 1 and lines[0].startswith("minivae: error: argument command: invalid choice: 'bogus'")
    assert os.listdir(tmp_path) == []


def test_train_on_idx_files_with_dynamic_binarization(tmp_path):
    from tests.test_data import write_idx
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (120, 28, 28)).astype(np.uint8), gz=True)
    out = tmp_path / "run"
    assert run("train", "--data", tmp_path, "--model", "gaussian", "--z-dim", 2, "--hidden", 16, "--epochs", 1,
               "--batch-size", 40, "--dynamic-binarization", "--out", out) == 0
    model, _ = load_checkpoint(out / "checkpoint.npz")
    assert model.config["x_dim"] == 784


def _cuda_usable():
    from minivae._backend import module_for_device
    try:
        module_for_device("cuda")
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(_cuda_usable(), reason="CuPy and a GPU are here: --device cuda works")
@pytest.mark.parametrize("command", ["train", "eval", "sample"])
def test_device_cuda_without_cupy_or_gpu_is_one_line_and_writes_nothing(tmp_path, capsys, command):
    out = tmp_path / "run"
    if command == "train":
        args = ["train", "--out", out, "--epochs", 1, *SMALL]
    else:
        run("train", "--model", "gaussian", "--epochs", 1, "--z-dim", 2, "--out", out, *SMALL)
        capsys.readouterr()
        where = ["--out", tmp_path / "s.png"] if command == "sample" else ["--limit", 10]
        args = [command, out / "checkpoint.npz", *where]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert run(*args, "--device", "cuda") == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"minivae {command}: error: device='cuda' needs ")
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no run folder, no file


def test_device_is_a_choice_with_cpu_the_default(tmp_path, capsys):
    from minivae.cli import build_parser
    for command in (["train"], ["eval", "c.npz"], ["sample", "c.npz"]):
        assert build_parser().parse_args(command).device == "cpu"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--device", "tpu"])
    assert "invalid choice" in capsys.readouterr().err


def _amat(path, x):
    path.write_text("\n".join(" ".join(str(int(v)) for v in row) for row in x) + "\n")


def test_bad_data_is_refused_before_anything_is_written(tmp_path, capsys):
    from tests.test_data import write_idx
    rng = np.random.default_rng(0)
    out = tmp_path / "run"
    cases = []
    grey = tmp_path / "grey"  # Fashion-MNIST-like grey levels into a Bernoulli likelihood
    grey.mkdir()
    write_idx(grey / "train-images-idx3-ubyte", rng.integers(0, 256, (60, 4, 4)).astype(np.uint8))
    cases.append((grey, [], f"{grey / 'train-images-idx3-ubyte'}: grey levels"))
    widths = tmp_path / "widths"  # train and valid files of different widths
    widths.mkdir()
    _amat(widths / "binarized_mnist_train.amat", rng.integers(0, 2, (60, 16)))
    _amat(widths / "binarized_mnist_valid.amat", rng.integers(0, 2, (10, 25)))
    cases.append((widths, [], "binarized_mnist_valid.amat: 25 pixels an image, but"))
    for n in (0, 1):  # an IDX holding no image or one image
        write_idx(tmp_path / f"n{n}", np.zeros((n, 4, 4), np.uint8))
        cases.append((tmp_path / f"n{n}", ["--grey-targets"], "no images"))
    few = tmp_path / "few.amat"
    _amat(few, rng.integers(0, 2, (30, 16)))
    cases.append((few, [], "25 training images, fewer than one batch of 50"))
    write_idx(tmp_path / "nan", np.array([[[0.5, np.nan], [0, 1]]] * 12, np.float32), type_byte=0x0D)
    cases.append((tmp_path / "nan", ["--grey-targets"], "NaN"))
    for data, extra, message in cases:
        assert run("train", "--data", data, "--hidden", 8, "--batch-size", 50, "--epochs", 1, "--out", out, *extra) == 1
        line = one_error_line(capsys)
        assert message in line, (data, line)
        assert not out.exists(), data
    assert run("train", "--data", grey, "--grey-targets", "--hidden", 8, "--batch-size", 25, "--epochs", 1, "--out", out) == 0


def test_images_of_another_size_train_and_sample_end_to_end(tmp_path, capsys):
    data = tmp_path / "small"  # 10×10 binary images, .amat with 100 values a line
    data.mkdir()
    rng = np.random.default_rng(1)
    for split, n in (("train", 60), ("valid", 20), ("test", 20)):
        _amat(data / f"binarized_mnist_{split}.amat", rng.integers(0, 2, (n, 100)))
    out = tmp_path / "run"
    assert run("train", "--data", data, "--hidden", 8, "--batch-size", 20, "--epochs", 1, "--out", out) == 0
    assert run("sample", out / "checkpoint.npz", "--out", tmp_path / "s.png", "--n", 8) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert run("eval", out / "checkpoint.npz", "-k", 2) == 1  # the 784-pixel embedded digits
    assert "784 pixels an image, but the model expects 100" in one_error_line(capsys)


def test_eval_of_grey_data_needs_a_choice(tmp_path, capsys):
    from tests.test_data import write_idx
    grey = tmp_path / "grey"
    grey.mkdir()
    write_idx(grey / "train-images-idx3-ubyte", np.random.default_rng(0).integers(0, 256, (60, 4, 4)).astype(np.uint8))
    out = tmp_path / "run"
    assert run("train", "--data", grey, "--dynamic-binarization", "--hidden", 8, "--batch-size", 25, "--epochs", 1,
               "--out", out) == 0
    capsys.readouterr()
    assert run("eval", out / "checkpoint.npz", "--data", grey, "-k", 2) == 1
    assert "grey levels" in one_error_line(capsys)
    assert run("eval", out / "checkpoint.npz", "--data", grey, "-k", 2, "--dynamic-binarization") == 0
    assert "binarized once" in capsys.readouterr().out


def test_out_of_memory_and_infinite_hyperparameters_are_one_line(tmp_path, capsys, monkeypatch):
    import minivae.models
    with pytest.raises(SystemExit) as e:
        run("train", "--lr", "inf")
    assert e.value.code == 2 and "finite" in one_error_line(capsys)

    def huge(*args, **kwargs):
        raise MemoryError("Unable to allocate 37.3 GiB for an array with shape (100000, 100000)")
    monkeypatch.setattr(minivae.models.CategoricalVAE, "__init__", huge)
    out = tmp_path / "run"
    assert run("train", "--hidden", "100000,100000", "--out", out, *SMALL) == 1
    line = one_error_line(capsys)
    assert "out of memory" in line and "37.3 GiB" in line and not out.exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_loss_in_the_first_epoch_says_no_checkpoint_was_written(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", "--model", "gaussian", "--epochs", 2, "--z-dim", 2, "--out", out, "--lr", "1e30", *SMALL) == 1
    line = one_error_line(capsys)
    assert "the loss became" in line and "no checkpoint was written" in line and "kept" not in line
    assert not out.exists()  # no empty folder left behind


TINY = ["--limit", "40", "--batch-size", "40", "--hidden", "8", "--n-latent", "2", "--n-categories", "3"]  # 1 step an epoch


def test_parameters_made_non_finite_by_an_epochs_last_update_are_not_committed(tmp_path, capsys, recwarn):
    out = tmp_path / "run"
    assert run("train", *TINY, "--epochs", 1, "--out", out) == 0
    good, metrics = (out / "checkpoint.npz").read_bytes(), (out / "metrics.csv").read_bytes()
    capsys.readouterr()
    # one step an epoch: the loss of epoch 2's only step is finite (epoch 1's parameters), its update
    # (lr 1e39) makes them inf, and nothing after it in the epoch computes a loss to notice
    assert run("train", *TINY, "--epochs", 3, "--out", out, "--resume", "--override-settings", "--lr", "1e39") == 1
    err = capsys.readouterr().err
    line = err.strip().splitlines()[-1]  # after the progress line of epoch 2
    assert line.startswith("minivae train: error: the parameters became NaN or infinite at epoch 2"), err
    assert "the last good checkpoint (epoch 1) is kept" in line
    assert "Warning" not in err and not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert (out / "checkpoint.npz").read_bytes() == good and (out / "metrics.csv").read_bytes() == metrics
    # the checkpoint kept is one that --resume continues
    assert run("train", *TINY, "--epochs", 2, "--out", out, "--resume") == 0
    model, arrays = load_checkpoint(out / "checkpoint.npz")
    assert int(arrays["meta/epoch"]) == 2 and all(np.isfinite(p.data).all() for p in model.parameters())


def test_parameters_non_finite_in_the_first_epoch_write_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert run("train", *TINY, "--epochs", 2, "--out", out, "--lr", "1e39") == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the parameters became NaN or infinite at epoch 1" in line and "no checkpoint was written" in line
    assert not out.exists()


def test_a_non_finite_validation_elbo_is_not_committed(tmp_path, capsys, monkeypatch):
    import minivae.training
    out = tmp_path / "run"
    assert run("train", *TINY, "--epochs", 1, "--out", out) == 0
    good = (out / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    # finite parameters whose ELBO is not (an overflow in evaluation): still no commit
    monkeypatch.setattr(minivae.training, "evaluate", lambda *args, **kwargs: float("nan"))
    assert run("train", *TINY, "--epochs", 2, "--out", out, "--resume") == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "the validation ELBO became nan at epoch 2" in line and "(epoch 1) is kept" in line
    assert (out / "checkpoint.npz").read_bytes() == good


def test_seeds_are_checked_while_parsing_and_the_largest_runs_to_the_end(tmp_path, capsys):
    from minivae.training import derived_seed
    out = tmp_path / "run"
    for seed in (2 ** 64, -1):
        for args in (["train", "--out", out], ["eval", "c.npz"], ["sample", "c.npz", "--out", tmp_path / "s.png"],
                     ["estimators"]):
            with pytest.raises(SystemExit) as e:
                run(*args, "--seed", seed)
            assert e.value.code == 2 and "[0, 2**64)" in one_error_line(capsys)
    assert os.listdir(tmp_path) == []
    # the validation, picture and eval-binarization streams use seed + 1 and + 2, wrapped: the largest
    # seed trains, evaluates and samples to the end (it failed after a whole epoch)
    top = 2 ** 64 - 1
    assert run("train", *TINY, "--epochs", 1, "--out", out, "--seed", top) == 0
    assert run("eval", out / "checkpoint.npz", "--limit", 10, "-k", 2, "--seed", top, "--dynamic-binarization") == 0
    assert run("sample", out / "checkpoint.npz", "--out", tmp_path / "s.png", "--seed", top) == 0
    # and every ordinary seed derives what it always did: runs made before give the same numbers
    assert [derived_seed(s, k) for s in (0, 5, 2 ** 63) for k in (1, 2)] == [1, 2, 6, 7, 2 ** 63 + 1, 2 ** 63 + 2]
    assert derived_seed(top, 1) == 0 and derived_seed(top, 2) == 1


def test_bad_idx_and_gzip_files_are_one_line_through_the_cli(tmp_path, capsys):
    import gzip
    import struct

    from tests.test_data import write_idx
    cases = []

    def folder(name):
        (tmp_path / name).mkdir()
        return tmp_path / name / "train-images-idx3-ubyte"
    write_idx(folder("nonsquare"), np.zeros((60, 2, 8), np.uint8))  # 16 pixels, but 2×8
    cases.append(("nonsquare", "not square images"))
    for name, dims in (("negative", (60, -28, -28)), ("wrapping", (65536,) * 4)):  # 65536**4 wraps int64 to 0
        folder(name).write_bytes(struct.pack(">BBBB", 0, 0, 8, len(dims)) + b"".join(struct.pack(">i", d) for d in dims))
        cases.append((name, "bad IDX dimensions"))
    body = bytearray(gzip.compress(b"0 1 1 0\n" * 60))
    body[10] |= 0b110  # deflate block type 3 (reserved): zlib.error, not OSError
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "binarized_mnist_train.amat.gz").write_bytes(bytes(body))
    cases.append(("gz", "broken gzip stream"))
    out = tmp_path / "run"
    for name, message in cases:
        assert run("train", "--data", tmp_path / name, "--grey-targets", "--hidden", 8, "--batch-size", 10,
                   "--epochs", 1, "--out", out) == 1, name
        line = one_error_line(capsys)
        assert line.startswith(f"minivae train: error: {tmp_path / name}") and message in line, (name, line)
        assert not out.exists(), name


def test_a_failed_train_removes_the_parent_folders_it_made_and_only_those(tmp_path, capsys):
    (tmp_path / "there").mkdir()
    (tmp_path / "there" / "file").write_text("keep")
    # --resume with no checkpoint fails after the folders are made
    assert run("train", *TINY, "--out", tmp_path / "there" / "a" / "b" / "c", "--resume") == 1
    assert "no checkpoint to resume" in one_error_line(capsys)
    assert os.listdir(tmp_path) == ["there"] and sorted(os.listdir(tmp_path / "there")) == ["file"]
    assert run("train", *TINY, "--out", tmp_path / "deep" / "a" / "b", "--resume") == 1
    capsys.readouterr()
    assert os.listdir(tmp_path) == ["there"]


def test_a_test_split_of_another_size_is_refused_at_train_time(tmp_path, capsys):
    rng = np.random.default_rng(2)
    for split, width in (("train", 16), ("valid", 16), ("test", 25)):
        _amat(tmp_path / f"binarized_mnist_{split}.amat", rng.integers(0, 2, (20, width)))
    out = tmp_path / "run"
    assert run("train", "--data", tmp_path, "--hidden", 8, "--batch-size", 10, "--epochs", 1, "--out", out) == 1
    line = one_error_line(capsys)
    assert "binarized_mnist_test.amat: 25 pixels an image, but" in line and not out.exists()


def test_a_nan_loss_mid_epoch_stops_without_floating_point_warnings(tmp_path, capsys, recwarn):
    out = tmp_path / "run"
    # two steps an epoch: the first update makes the weights inf, the second step's products overflow
    # (NumPy would warn "invalid value encountered"), and its loss is NaN: one line says it all
    assert run("train", *TINY, "--limit", 80, "--epochs", 1, "--out", out, "--lr", "1e39") == 1
    assert "the loss became nan at epoch 1" in one_error_line(capsys)
    assert not [str(w.message) for w in recwarn if issubclass(w.category, RuntimeWarning)]
