"""The training loops of M2 (minivae.semisupervised.train) and of the conditional VAE (minivae.conditional.train) as
training.train's: a run resumed from its checkpoint reaches the uninterrupted run bit for bit (parameters, Adam's state,
the Generator's, the metrics); a changed setting (the labelled split of M2 among them) is refused naming it, and goes
on with override_settings, the change in metrics.csv; a resume with no checkpoint, and a new run over one, are refused;
with graph the full batches' step is recorded once and replayed, and the run is the eager one bit for bit; tf32 is a
setting of a GPU run (the strict stand-in) and refused on the CPU."""
import csv
import functools
import json

import numpy as np
import pytest

from minivae import conditional, semisupervised, training
from minivae.conditional import ConditionalVAE
from minivae.models import SemiSupervisedVAE
from minivae.random import Generator
from minivae.training import TrainingError, load_checkpoint

D, C = 6, 3
X = (np.random.default_rng(0).random((40, D)) < 0.5).astype(np.float32)
Y = np.arange(40) % C


def m2(out, epochs, labelled=(X[:6], Y[:6]), lr=1e-2, device="cpu", **kw):
    """M2 on 24 unlabelled images in batches of 10 (two full, one of 4 an epoch), 6 labelled, 8 to validate."""
    model = SemiSupervisedVAE(D, C, hidden=(5,), z_dim=2, alpha=0.5, rng=Generator(0), device=device)
    return semisupervised.train(model, labelled, X[:24], out, epochs=epochs, batch_size=10, lr=lr, seed=5,
                                valid=(X[24:32], Y[24:32]), dynamic=True, clip=5.0, log=lambda line: None, **kw)


def cvae(out, epochs, labels=Y[:24], lr=1e-2, device="cpu", prior="standard", **kw):
    """The conditional VAE on 24 labelled images in batches of 10 (two full, one of 4 an epoch), 8 to validate;
    prior="learned": with the prior network p(z|y) of a hidden layer of 4."""
    learned = dict(prior="learned", prior_hidden=(4,)) if prior == "learned" else {}
    model = ConditionalVAE(D, C, hidden=(5,), z_dim=2, rng=Generator(0), device=device, **learned)
    return conditional.train(model, {"train": (X[:24], labels), "valid": (X[24:32], Y[24:32])}, out, epochs=epochs,
                             batch_size=10, lr=lr, seed=5, dynamic=True, clip=5.0, log=lambda line: None, **kw)


RUNS = {"m2": m2, "conditional": cvae, "conditional-learned": functools.partial(cvae, prior="learned")}


def checkpoint(out):
    """Everything the checkpoint holds but the metrics' seconds."""
    with np.load(out / "checkpoint.npz") as f:
        arrays = {k: f[k] for k in f.files if k != "meta/metrics"}
        rows = json.loads(str(f["meta/metrics"]))
    seconds = rows[0].index("seconds")
    return arrays, [row[:seconds] + row[seconds + 1:] for row in rows]


def assert_same_run(a, b):
    (arrays_a, rows_a), (arrays_b, rows_b) = checkpoint(a), checkpoint(b)
    assert arrays_a.keys() == arrays_b.keys() and any(k.startswith("optim/") for k in arrays_a)
    for key in arrays_a:
        np.testing.assert_array_equal(arrays_b[key], arrays_a[key], err_msg=key)
    assert rows_b == rows_a


@pytest.mark.parametrize("name", list(RUNS))
def test_a_resumed_run_is_the_uninterrupted_run_bit_for_bit(tmp_path, name):
    """2 epochs, then --resume to 4, against 4 at once: parameters, Adam's moments and step, the Generator's state (the
    batches, M2's labelled draws, the binarization and the noise come from it), epoch, step and the metrics."""
    RUNS[name](tmp_path / "whole", 4)
    RUNS[name](tmp_path / "cut", 2)
    assert len(checkpoint(tmp_path / "cut")[1]) == 3
    RUNS[name](tmp_path / "cut", 4, resume=True)
    assert_same_run(tmp_path / "whole", tmp_path / "cut")
    assert (tmp_path / "cut" / "metrics.csv").read_text().count("\n") == 5


@pytest.mark.parametrize("name", list(RUNS))
def test_graph_replays_the_eager_run_bit_for_bit(tmp_path, monkeypatch, name):
    """With graph the first full batch's step is recorded and the later full ones replay it (3 of the 4 full batches
    of 2 epochs; the batches of 4 take the eager step): the eager run's checkpoint, metrics included."""
    plans = []

    def recording(*args, **kw):
        plans.append(compile_step(*args, **kw))
        return plans[-1]
    compile_step = training.compile_step
    monkeypatch.setattr(training, "compile_step", recording)
    RUNS[name](tmp_path / "eager", 2)
    assert plans == []
    RUNS[name](tmp_path / "graph", 2, graph=True)
    assert len(plans) == 1 and plans[0].replays == 3
    assert_same_run(tmp_path / "eager", tmp_path / "graph")


@pytest.mark.parametrize("name", list(RUNS))
def test_a_changed_setting_is_refused_naming_it_and_goes_on_when_overridden(tmp_path, name):
    out = tmp_path / "run"
    RUNS[name](out, 1)
    with pytest.raises(TrainingError, match=r"settings differ: --lr \(checkpoint 0.01, now 0.02\)\. Resume with"):
        RUNS[name](out, 2, lr=2e-2, resume=True)
    RUNS[name](out, 2, lr=2e-2, resume=True, override_settings=True)
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert [r["settings_changed"] for r in rows] == ["", "--lr (checkpoint 0.01, now 0.02)"]


def test_m2_s_labelled_split_is_the_checkpoint_s(tmp_path):
    """Other labelled images (another --labels or --seed draw), or as many with other labels, are refused by name."""
    out = tmp_path / "run"
    m2(out, 1)
    for labelled in ((X[6:12], Y[6:12]), (X[:6], (Y[:6] + 1) % C)):
        with pytest.raises(TrainingError, match=r"--labels, --seed or --data \(the labelled images drawn: their "
                                                r"fingerprint\) \(checkpoint \w+, now \w+\)"):
            m2(out, 2, labelled=labelled, resume=True)
    with pytest.raises(TrainingError, match=r"--labels \(checkpoint 6, now 3\); --labels, --seed or --data"):
        m2(out, 2, labelled=(X[:3], Y[:3]), resume=True)


def test_the_learned_prior_trains_and_is_part_of_the_model_s_shape(tmp_path):
    """The prior network's parameters move in the run (and so are what the resume and graph tests compare); a resume
    with the other prior is refused naming it."""
    start = ConditionalVAE(D, C, hidden=(5,), z_dim=2, prior="learned", prior_hidden=(4,), rng=Generator(0))
    trained = cvae(tmp_path / "run", 1, prior="learned")
    for name in ("prior_network.0.weight", "prior_network.2.weight", "prior_network.2.bias"):
        assert not np.array_equal(trained.state_dict()[name], start.state_dict()[name]), name
    with pytest.raises(TrainingError, match=r"of another shape: --prior \(checkpoint learned, now standard\); "
                                            r"--prior-hidden \(checkpoint \(4,\), now None\)"):
        cvae(tmp_path / "run", 2, resume=True)


def test_the_conditional_vae_s_labels_are_part_of_its_data(tmp_path):
    out = tmp_path / "run"
    cvae(out, 1)
    with pytest.raises(TrainingError, match=r"--data or --limit \(the images' fingerprint\) \(checkpoint"):
        cvae(out, 2, labels=(Y[:24] + 1) % C, resume=True)


@pytest.mark.parametrize("name", list(RUNS))
def test_a_resume_needs_a_checkpoint_and_a_new_run_refuses_one(tmp_path, name):
    with pytest.raises(TrainingError, match="holds no checkpoint to resume: start the run without --resume"):
        RUNS[name](tmp_path / "none", 1, resume=True)
    assert not (tmp_path / "none").exists()
    RUNS[name](tmp_path / "run", 1)
    with pytest.raises(TrainingError, match="already holds a checkpoint: continue that run with --resume"):
        RUNS[name](tmp_path / "run", 2)


@pytest.mark.parametrize("name", list(RUNS))
def test_tf32_is_a_setting_of_a_gpu_run_and_refused_on_the_cpu(tmp_path, monkeypatch, name):
    """On the strict stand-in of the GPU, the products of the run are asked for in TF32 ("high"), and the precision
    before is back after; the checkpoint records tf32, so a resume without it is refused naming --tf32. On the CPU,
    refused before anything is made."""
    from minivae._backend import get_float32_matmul_precision, use_cuda_kernels, use_numba
    from tests.strict_array import emulating
    seen = []
    monkeypatch.setattr("minivae.ops.linalg.matmul_array",
                        lambda xp, a, b: (seen.append(get_float32_matmul_precision()), xp.matmul(a, b))[1])
    with use_numba(False), use_cuda_kernels(False), emulating():
        RUNS[name](tmp_path / "gpu", 1, device="cuda", tf32=True)
        assert seen and set(seen) == {"high"} and get_float32_matmul_precision() == "highest"
        _, arrays = load_checkpoint(tmp_path / "gpu" / "checkpoint.npz")
        assert json.loads(str(arrays["meta/settings"]))["tf32"] is True
        with pytest.raises(TrainingError, match=r"--tf32 \(checkpoint True, now False\)"):
            RUNS[name](tmp_path / "gpu", 2, device="cuda", resume=True)
    with pytest.raises(TrainingError, match="--tf32 is for a model on the GPU"):
        RUNS[name](tmp_path / "cpu", 1, tf32=True)
    assert not (tmp_path / "cpu").exists()


def test_a_label_outside_the_classes_is_refused_before_anything_is_written(tmp_path):
    """The labels become the one-hot rows of the packed batches (semisupervised.one_hot_rows): −1 would index the last
    class, C be out of range; both are named (ops.one_hot's check) and no folder is left."""
    for bad in (-1, C):
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\)"):
            m2(tmp_path / "m2", 1, labelled=(X[:6], np.r_[Y[:5], bad]))
        with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\)"):
            cvae(tmp_path / "cvae", 1, labels=np.r_[Y[:23], bad])
    assert list(tmp_path.iterdir()) == []
