"""minivae.semisupervised's training helpers: balanced_labels (as many of each class, from the seed), the model's
reconstruct (through the most probable class and q(z|x, y)'s mean), evaluate (batch by batch, the same as the bounds
called directly) and train (its checkpoint and metrics, the steps it takes, a run that fails before its first checkpoint
leaving no folder, a folder that holds a checkpoint refused; its resume, graph and tf32: tests/test_labelled_resume.py)."""
import numpy as np
import pytest

import minivae as mv
from minivae import ops, semisupervised
from minivae.models import SemiSupervisedVAE
from minivae.random import Generator
from minivae.training import TrainingError, load_checkpoint

D, C = 6, 3


def model_and_data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, D)) < 0.5).astype(np.float32)
    y = np.arange(n) % C
    return SemiSupervisedVAE(D, C, hidden=(5,), z_dim=2, alpha=0.5, rng=Generator(seed)), x, y


def test_balanced_labels_take_as_many_of_each_class_from_the_seed():
    y = np.random.default_rng(1).integers(0, 4, 200)
    picked = semisupervised.balanced_labels(y, 12, Generator(2))
    assert len(set(picked.tolist())) == 12 and np.bincount(y[picked], minlength=4).tolist() == [3] * 4
    np.testing.assert_array_equal(picked, semisupervised.balanced_labels(y, 12, Generator(2)))
    assert not np.array_equal(picked, semisupervised.balanced_labels(y, 12, Generator(3)))
    with pytest.raises(ValueError, match="a positive multiple of the 4 classes, got 10"):
        semisupervised.balanced_labels(y, 10, Generator(2))
    with pytest.raises(ValueError, match="take 2 of each class, and class 1 has 1"):
        semisupervised.balanced_labels(np.array([0, 0, 1, 2, 2]), 6, Generator(2))


def test_reconstruct_goes_through_the_most_probable_class_and_q_s_mean():
    model, x, _ = model_and_data()
    x = mv.tensor(x)
    y = ops.one_hot(mv.tensor(model.classify(x).numpy().argmax(axis=-1)), C, dtype=x.dtype)
    want = model.likelihood(y, model.posterior(x, y).loc).mean.numpy()
    np.testing.assert_allclose(model.reconstruct(x).numpy(), want, rtol=1e-6)


def test_evaluate_is_the_bounds_and_the_accuracy_batch_by_batch():
    model, x, y = model_and_data(n=5)
    got = semisupervised.evaluate(model, x, y, Generator(4), batch_size=2)
    rng, sums = Generator(4), np.zeros(3)
    for start in range(0, 5, 2):  # U, then L, of each batch from the one stream
        xb, yb = mv.tensor(x[start:start + 2]), y[start:start + 2]
        sums += [model.unlabelled_bound(xb, rng).numpy().sum(), model.elbo(xb, yb, rng).numpy().sum(),
                 (model.classify(xb).numpy().argmax(axis=-1) == yb).sum()]
    assert got == pytest.approx({"unlabelled_bound": sums[0] / 5, "labelled_bound": sums[1] / 5,
                                 "accuracy": sums[2] / 5}, rel=1e-6)


def test_train_writes_a_checkpoint_of_each_epoch_and_refuses_to_overwrite_one(tmp_path):
    model, x, y = model_and_data(n=30)
    out = tmp_path / "run"
    semisupervised.train(model, (x[:6], y[:6]), x[:24], out, epochs=2, batch_size=10, lr=1e-2, seed=5,
                         valid=(x[24:], y[24:]), log=lambda line: None)
    loaded, arrays = load_checkpoint(out / "checkpoint.npz")
    assert int(arrays["meta/epoch"]) == 2 and int(arrays["meta/step"]) == 2 * 3  # ⌈24/10⌉ steps an epoch
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value)
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == semisupervised.COLUMNS and [r.split(",")[:2] for r in rows[1:]] == [["1", "3"], ["2", "6"]]
    with pytest.raises(TrainingError, match="already holds a checkpoint"):
        semisupervised.train(model, (x[:6], y[:6]), x[:24], out, epochs=1, batch_size=10, lr=1e-2, seed=5,
                             valid=(x[24:], y[24:]))


def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    model, x, y = model_and_data()
    model.decoder.parameters()[0].data[...] = np.nan
    out = tmp_path / "made" / "run"
    with pytest.raises(TrainingError, match="the loss became nan at epoch 1, step 0"):
        semisupervised.train(model, (x[:3], y[:3]), x, out, epochs=1, batch_size=4, lr=1e-2, seed=0, valid=(x, y))
    assert not (tmp_path / "made").exists()
    with pytest.raises(ValueError, match="the labelled images are none"):
        semisupervised.train(model, (x[:0], y[:0]), x, out, epochs=1, batch_size=4, lr=1e-2, seed=0, valid=(x, y))


def test_a_step_adds_the_labelled_and_the_unlabelled_losses(tmp_path):
    """One epoch of one step (as many unlabelled images as the batch), rebuilt by hand from the same seed: the batch
    order, then the labelled draw with replacement, then −L − α log q of the labelled and −U of the unlabelled batch,
    summed, one Adam step; the metrics report the two terms."""
    from minivae.data import batches
    from minivae.optim import Adam
    (model, x, y), (by_hand, _, _) = model_and_data(n=20), model_and_data(n=20)
    semisupervised.train(model, (x[:6], y[:6]), x[:8], tmp_path / "run", epochs=1, batch_size=8, lr=1e-2, seed=7,
                         valid=(x[8:], y[8:]), log=lambda line: None)
    rng = Generator(7)
    xu = next(batches(x[:8], 8, rng=rng))
    pick = rng.integers(0, 6, (8,))
    labelled, unlabelled = by_hand.loss(mv.tensor(x[:6][pick]), rng, y=y[:6][pick]), by_hand.loss(mv.tensor(xu), rng)
    optimizer = Adam(by_hand.parameters(), lr=1e-2)
    optimizer.zero_grad()
    (labelled + unlabelled).backward()
    optimizer.step()
    for key, value in by_hand.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[key], value, err_msg=key)
    row = dict(zip(semisupervised.COLUMNS, (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1].split(",")))
    assert (row["labelled_loss"], row["unlabelled_loss"]) == (f"{labelled.item():.4f}", f"{unlabelled.item():.4f}")


def test_evaluate_on_the_device_is_the_cpus_with_one_copy_back():
    """On the strict CuPy stand-in (tests/strict_array.py): evaluate gives the CPU's numbers bit for bit (the array
    formulas on both) with one copy to the host, of the three sums at the end."""
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import emulating, record
    model, x, y = model_and_data(n=5)
    with use_numba(False), use_cuda_kernels(False):
        want = semisupervised.evaluate(model, x, y, Generator(4), batch_size=2)
        with emulating():
            model.to("cuda")
            with record() as copies:
                got = semisupervised.evaluate(model, x, y, Generator(4), batch_size=2)
    assert got == want and len(copies) == 1
