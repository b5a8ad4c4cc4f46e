"""models.reconstruct, interpolate, traverse and latent_grid, and the commands that draw them."""
import statistics

import numpy as np
import pytest

from minivae import models
from minivae.data import load_default, sample_rows
from minivae.engine import tensor
from minivae.png import paired_rows
from minivae.random import Generator
from tests.test_cli import one_error_line, run
from tests.test_png import read_png

X = load_default()["test"][:6]


def _model(kind, **extra):
    latent = dict(z_dim=3) if kind == "gaussian" else dict(n_latent=4)
    return models.MODELS[kind](x_dim=784, hidden=(16,), **latent, **extra, rng=Generator(5))


def _sigmoid(a):
    return 1 / (1 + np.exp(-np.asarray(a, np.float64)))


@pytest.mark.parametrize("kind", ["gaussian", "categorical", "bernoulli"])
def test_reconstruct_decodes_the_posterior_mode(kind):
    """The mode of q written out from the encoder's outputs: μ (the first half of a Gaussian encoder's), the argmax
    one-hot of each categorical latent, 1[l > 0] of each binary one; the image the decoder's sigmoid there."""
    model = _model(kind)
    out = model.encoder(tensor(X)).numpy()
    if kind == "gaussian":
        z = out[:, :3]
    elif kind == "categorical":
        logits = out.reshape(len(X), model.n_latent, model.n_categories)
        z = np.eye(model.n_categories, dtype=np.float32)[logits.argmax(-1)].reshape(len(X), -1)
    else:
        z = (out > 0).astype(np.float32)
    expected = _sigmoid(model.decoder(tensor(z)).numpy())
    got = models.reconstruct(model, tensor(X))
    assert not got.requires_grad
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_interpolate_walks_the_line_between_the_two_modes():
    model = _model("gaussian")
    a, b = tensor(X[:2]), tensor(X[2:4])
    path = models.interpolate(model, a, b, 5)
    assert path.shape == (2, 5, 784) and not path.requires_grad
    mu_a, mu_b = model.posterior(a).loc.numpy(), model.posterior(b).loc.numpy()
    for j, t in enumerate(np.linspace(0, 1, 5)):  # t = 0, ¼, ½, ¾, 1: the ends are the two reconstructions
        z = (1 - t) * mu_a + t * mu_b
        np.testing.assert_allclose(path.numpy()[:, j], _sigmoid(model.decoder(tensor(z.astype(np.float32))).numpy()),
                                   rtol=1e-5, atol=1e-6, err_msg=f"t = {t}")
    np.testing.assert_allclose(path.numpy()[:, 0], models.reconstruct(model, a).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(path.numpy()[:, -1], models.reconstruct(model, b).numpy(), rtol=1e-6, atol=1e-7)


def _decode(model, z):
    return _sigmoid(model.decoder(tensor(np.asarray(z, np.float32))).numpy())


def test_traverse_sets_one_coordinate_a_row():
    model = _model("gaussian")
    values = [-2.0, 0.5, 3.0]
    got = models.traverse(model, tensor(X[0]), values)
    assert got.shape == (3, 3, 784) and not got.requires_grad
    mu = model.encoder(tensor(X[:1])).numpy()[0, :3]
    for d in range(3):
        for k, v in enumerate(values):
            z = mu.copy()
            z[d] = v
            np.testing.assert_allclose(got.numpy()[d, k], _decode(model, z[None])[0], rtol=1e-5, atol=1e-6,
                                       err_msg=f"coordinate {d}, value {v}")


def test_latent_grid_decodes_the_prior_quantiles_of_two_coordinates():
    model = _model("gaussian")
    got = models.latent_grid(model, 4, dims=(2, 0))
    assert got.shape == (4, 4, 784) and not got.requires_grad
    q = [statistics.NormalDist().inv_cdf((k + 0.5) / 4) for k in range(4)]  # Φ⁻¹ from the standard library
    for r in range(4):
        for c in range(4):
            z = np.zeros(3)
            z[2], z[0] = q[r], q[c]  # rows sweep dims[0], columns dims[1]
            np.testing.assert_allclose(got.numpy()[r, c], _decode(model, z[None])[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call,message", [
    (lambda m, c: models.traverse(c, tensor(X[0]), [1.0]), "needs continuous latents"),
    (lambda m, c: models.traverse(m, tensor(X[:2]), [1.0]), "one image of shape"),
    (lambda m, c: models.traverse(m, tensor(X[0]), []), "non-empty"),
    (lambda m, c: models.latent_grid(c, 3), "needs continuous latents"),
    (lambda m, c: models.latent_grid(m, 3, dims=(1, 1)), "two different coordinates"),
    (lambda m, c: models.latent_grid(m, 3, dims=(0, 3)), "two different coordinates"),
    (lambda m, c: models.latent_grid(m, 0), "n must be >= 1"),
])
def test_traverse_and_latent_grid_refuse_what_they_cannot_draw(call, message):
    with pytest.raises(ValueError, match=message):
        call(_model("gaussian"), _model("categorical"))


def test_interpolate_refuses_discrete_latents_and_bad_arguments():
    with pytest.raises(ValueError, match="needs continuous latents"):
        models.interpolate(_model("categorical"), tensor(X[:1]), tensor(X[1:2]), 3)
    model = _model("gaussian")
    with pytest.raises(ValueError, match="steps must be >= 2"):
        models.interpolate(model, tensor(X[:1]), tensor(X[1:2]), 1)
    with pytest.raises(ValueError, match="not pairs"):
        models.interpolate(model, tensor(X[:1]), tensor(X[1:3]), 3)


def test_paired_rows_puts_each_row_above_its_partner():
    first, second = np.arange(10)[:, None] * np.ones((1, 4)), -np.arange(10)[:, None] * np.ones((1, 4))
    got = paired_rows(first, second, columns=4)[:, 0]  # the short last row filled with black (0) to keep its pairs
    np.testing.assert_array_equal(got, [0, 1, 2, 3, 0, -1, -2, -3, 4, 5, 6, 7, -4, -5, -6, -7, 8, 9, 0, 0, -8, -9, 0, 0])
    with pytest.raises(ValueError, match="not pairs"):
        paired_rows(first, second[:3])


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    tiny = ["--limit", "40", "--batch-size", "40", "--hidden", "8", "--epochs", 1]
    assert run("train", "--model", "gaussian", "--z-dim", 2, *tiny, "--out", folder / "g") == 0
    assert run("train", "--model", "categorical", "--n-latent", 2, "--n-categories", 3, *tiny, "--out", folder / "c") == 0
    return {"gaussian": folder / "g" / "checkpoint.npz", "categorical": folder / "c" / "checkpoint.npz"}


def _tile(pixels, row, column, side=28, pad=2):
    top, left = pad + row * (side + pad), pad + column * (side + pad)
    return pixels[top:top + side, left:left + side, 0].reshape(-1)


def test_the_reconstruct_command_draws_inputs_above_their_reconstructions(checkpoints, tmp_path):
    from minivae.training import load_checkpoint
    out = tmp_path / "r.png"
    assert run("reconstruct", checkpoints["gaussian"], "--n", 10, "--seed", 4, "--out", out) == 0
    x = sample_rows(load_default()["test"], 10, 4)  # the images --seed 4 draws
    model, _ = load_checkpoint(checkpoints["gaussian"])
    recon = models.reconstruct(model, tensor(x)).numpy()
    _, pixels = read_png(out)
    assert pixels.shape == (4 * 30 + 2, 8 * 30 + 2, 1)  # 10 images: two pairs of rows of 8
    for i in range(16):  # the last row's 6 places left black
        row, column = divmod(i, 8)
        if i >= 10:
            assert (_tile(pixels, 2 * row, column) == 0).all() and (_tile(pixels, 2 * row + 1, column) == 0).all()
            continue
        np.testing.assert_array_equal(_tile(pixels, 2 * row, column), np.round(x[i] * 255), err_msg=f"input {i}")
        np.testing.assert_array_equal(_tile(pixels, 2 * row + 1, column), np.round(recon[i] * 255), err_msg=f"output {i}")


def test_the_interpolate_command_draws_each_pair_with_its_path(checkpoints, tmp_path):
    from minivae.training import load_checkpoint
    out = tmp_path / "i.png"
    assert run("interpolate", checkpoints["gaussian"], "--pairs", 2, "--steps", 3, "--seed", 1, "--out", out) == 0
    x = sample_rows(load_default()["test"], 4, 1)
    model, _ = load_checkpoint(checkpoints["gaussian"])
    path = models.interpolate(model, tensor(x[:2]), tensor(x[2:]), 3).numpy()
    _, pixels = read_png(out)
    assert pixels.shape == (2 * 30 + 2, 5 * 30 + 2, 1)
    for i in range(2):  # a row: x_a, the 3 decoded points, x_b
        expected = [x[i], *path[i], x[2 + i]]
        for column, image in enumerate(expected):
            np.testing.assert_array_equal(_tile(pixels, i, column), np.round(image * 255), err_msg=f"{i}, {column}")


def test_the_traverse_and_manifold_commands_draw_a_row_a_coordinate(checkpoints, tmp_path):
    from minivae.training import load_checkpoint
    model, _ = load_checkpoint(checkpoints["gaussian"])
    out = tmp_path / "t.png"
    assert run("traverse", checkpoints["gaussian"], "--steps", 3, "--span", 2, "--seed", 5, "--out", out) == 0
    x = sample_rows(load_default()["test"], 1, 5)
    expected = models.traverse(model, tensor(x[0]), [-2.0, 0.0, 2.0]).numpy()
    _, pixels = read_png(out)
    assert pixels.shape == (2 * 30 + 2, 3 * 30 + 2, 1)  # z_dim 2 rows of 3 values
    for d in range(2):
        for k in range(3):
            np.testing.assert_array_equal(_tile(pixels, d, k), np.round(expected[d, k] * 255))
    out = tmp_path / "m.png"
    assert run("manifold", checkpoints["gaussian"], "--n", 3, "--dims", "1,0", "--out", out) == 0
    expected = models.latent_grid(model, 3, (1, 0)).numpy()
    _, pixels = read_png(out)
    assert pixels.shape == (3 * 30 + 2, 3 * 30 + 2, 1)
    for r in range(3):
        for c in range(3):
            np.testing.assert_array_equal(_tile(pixels, r, c), np.round(expected[r, c] * 255))


def test_the_commands_refuse_with_one_line_and_write_nothing(checkpoints, tmp_path, capsys):
    out = tmp_path / "i.png"
    assert run("interpolate", checkpoints["categorical"], "--out", out) == 1
    assert "holds a categorical model" in one_error_line(capsys) and not out.exists()
    not_png = tmp_path / "notes.txt"
    not_png.write_text("keep me")
    assert run("reconstruct", checkpoints["gaussian"], "--out", not_png) == 1
    assert "is not a PNG" in one_error_line(capsys) and not_png.read_text() == "keep me"
    assert run("reconstruct", checkpoints["gaussian"], "--out", checkpoints["gaussian"]) == 1
    assert "is the checkpoint itself" in one_error_line(capsys)
    wrong = tmp_path / "wide.amat"
    np.savetxt(wrong, np.zeros((3, 16)), fmt="%d")  # 4×4 images, the model's are 28×28
    assert run("reconstruct", checkpoints["gaussian"], "--data", wrong, "--out", out) == 1
    assert "784" in one_error_line(capsys) and not out.exists()
    for command in ("traverse", "manifold"):
        assert run(command, checkpoints["categorical"], "--out", out) == 1
        assert "holds a categorical model" in one_error_line(capsys) and not out.exists()
    assert run("manifold", checkpoints["gaussian"], "--dims", "0,2", "--out", out) == 1
    assert "below the model's z_dim = 2" in one_error_line(capsys) and not out.exists()
    with pytest.raises(SystemExit):
        run("interpolate", checkpoints["gaussian"], "--steps", 1)
    assert "must be an integer >= 2" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_on_the_device_copy_nothing_to_the_host(kind):
    """reconstruct (and interpolate) of a model made on "cuda" (the strict stand-in): the CPU's images bit for bit,
    no copy to the host."""
    from tests.strict_array import assert_device_run_is_the_cpus

    def run(device):
        model = _model(kind, device=device)
        x = tensor(X, device=device)
        out = [models.reconstruct(model, x)]
        if kind == "gaussian":
            out += [models.interpolate(model, x[:3], x[3:], 4), models.traverse(model, x[0], [-1.0, 2.0]),
                    models.latent_grid(model, 3)]
        return out
    assert_device_run_is_the_cpus(run)


def test_training_pictures_keep_each_reconstruction_beneath_its_image(tmp_path):
    """write_pictures of 10 validation images: two pairs of rows (8, then 2 and black), not 8 | 8 | 2 + 2 in one row."""
    from minivae.training import write_pictures
    write_pictures(_model("bernoulli"), X[:5].repeat(2, axis=0), tmp_path, seed=0)
    _, pixels = read_png(tmp_path / "reconstructions.png")
    assert pixels.shape == (4 * 30 + 2, 8 * 30 + 2, 1)
    np.testing.assert_array_equal(_tile(pixels, 2, 1), np.round(X[4] * 255))  # the 10th image: 3rd row, 2nd place
    assert (_tile(pixels, 2, 2) == 0).all() and (_tile(pixels, 3, 2) == 0).all()
