"""The VAEs with convolutional encoders and decoders (``arch="conv"``): their networks against the same layers built in
torch from the same weights, values and gradients; the K samples' leading axis; training, step plans, the "cuda"
stand-in, checkpoints, the CLI, and the arguments refused."""
import numpy as np
import pytest

import minivae as mv
from minivae._backend import use_cuda_kernels, use_numba
from minivae.models import BernoulliVAE, CategoricalVAE, ConvDecoder, ConvEncoder, GaussianVAE
from minivae.optim import Adam
from minivae.random import Generator
from tests.strict_array import describe, emulating, record
from tests.test_plan import assert_same_run

SIDE = 8  # 8×8 images: two halvings, 8 → 4 → 2
X_DIM = SIDE * SIDE
BATCHES = [(np.random.default_rng(i).random((5, X_DIM)) < 0.4).astype(np.float32) for i in range(4)]
MODELS = {
    "gaussian": lambda device="cpu": GaussianVAE(X_DIM, (6,), 3, arch="conv", channels=(3, 4), rng=Generator(0),
                                                 device=device),
    "gaussian-iwae": lambda device="cpu": GaussianVAE(X_DIM, (), 3, objective="iwae", samples=3, arch="conv",
                                                      channels=(2,), rng=Generator(0), device=device),
    "categorical": lambda device="cpu": CategoricalVAE(X_DIM, (6,), 2, 3, anneal_rate=0.2, arch="conv",
                                                       channels=(3, 4), rng=Generator(0), device=device),
    "bernoulli-reinforce": lambda device="cpu": BernoulliVAE(X_DIM, (6,), 4, estimator="reinforce", arch="conv",
                                                             channels=(3, 4), activation="tanh", rng=Generator(0),
                                                             device=device),
}


def torch_network(model, encoder, torch):
    """The conv VAE's encoder (or decoder) built in torch from its config alone, torch's layers in the order the
    architecture says, holding the model's weights (its parameters in their order; minivae's Linear weight is
    (in, out), torch's (out, in))."""
    nn, c = torch.nn, model.config
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus}[c["activation"]]
    side, channels, hidden = int(round(c["x_dim"] ** 0.5)), c["channels"], c["hidden"]
    cells = side // 2 ** len(channels)
    code = 2 * c["z_dim"] if "z_dim" in c else c["n_latent"] * c.get("n_categories", 1)
    if encoder:
        layers = [nn.Unflatten(-1, (1, side, side))]
        for c_in, c_out in zip((1, *channels), channels):
            layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), act()]
        sizes = (channels[-1] * cells * cells, *hidden, code)
        layers.append(nn.Flatten())
    else:
        layers, sizes = [], (c.get("z_dim", code), *reversed(hidden), channels[-1] * cells * cells)
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([act()] if k < len(sizes) - 2 or not encoder else [])
    if not encoder:
        layers.append(nn.Unflatten(-1, (channels[-1], cells, cells)))
        outs = (*reversed(channels[:-1]), 1)
        for k, (c_in, c_out) in enumerate(zip(reversed(channels), outs)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1)] + ([act()] if k < len(outs) - 1 else [])
        layers.append(nn.Flatten())
    net = nn.Sequential(*layers).double()
    ours = (model.encoder if encoder else model.decoder).parameters()
    theirs = list(net.parameters())
    assert [tuple(p.shape[::-1]) if p.ndim == 2 else tuple(p.shape) for p in ours] == [tuple(t.shape) for t in theirs]
    for p, t in zip(ours, theirs):
        t.data = torch.tensor(p.numpy().T if p.ndim == 2 else p.numpy())
    return net


@pytest.mark.parametrize("name", ["gaussian", "categorical", "bernoulli-reinforce"])
def test_the_networks_are_torchs_layers_values_and_gradients(name):
    """Encoder and decoder equal torch's Conv2d/ConvTranspose2d/Linear stack of the architecture the config names,
    holding the same weights (float64): outputs and every parameter's and input's gradient for a random ḡ."""
    torch = pytest.importorskip("torch")
    model = MODELS[name]().double()
    rng = np.random.default_rng(3)
    for encoder, net, width in [(True, model.encoder, X_DIM), (False, model.decoder, model.decoder.mlp[0].in_features)]:
        x = rng.normal(size=(5, width))
        t_net = torch_network(model, encoder, torch)
        tx, mx = torch.tensor(x, requires_grad=True), mv.tensor(x, requires_grad=True)
        ty, my = t_net(tx), net(mx)
        g = rng.normal(size=tuple(ty.shape))
        ty.backward(torch.tensor(g))
        my.backward(g)
        np.testing.assert_allclose(my.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(mx.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
        ours = [p for p in net.parameters()]
        theirs = [p for p in t_net.parameters()]
        assert len(ours) == len(theirs)
        for p, t in zip(ours, theirs):
            want = t.grad.numpy().T if p.ndim == 2 else t.grad.numpy()  # (Linear's layout)
            np.testing.assert_allclose(p.grad, want, rtol=1e-11, atol=1e-12)


def test_leading_axes_pass_through_the_convolutions_as_a_batch():
    """The K samples' axis in front of the batch: decoder(z) of (K, B, d) is each z[k]'s decoding, the encoder's
    likewise; a mix-up of the flattened axes (the image read across two examples) would differ."""
    model = MODELS["gaussian"]()
    z = mv.tensor(np.random.default_rng(4).normal(size=(2, 3, 3)).astype(np.float32))
    both = model.decoder(z).numpy()
    assert both.shape == (2, 3, X_DIM)
    for k in range(2):
        np.testing.assert_array_equal(both[k], model.decoder(z[k]).numpy())
    x = mv.tensor(BATCHES[0][:4].reshape(2, 2, X_DIM))
    np.testing.assert_array_equal(model.encoder(x).numpy()[1], model.encoder(x[1]).numpy())


@pytest.mark.parametrize("name", list(MODELS))
def test_training_lowers_the_loss(name):
    model, rng = MODELS[name](), Generator(1)
    opt = Adam(model.parameters(), lr=0.02)
    x = mv.tensor(np.concatenate(BATCHES))
    losses = []
    for step in range(12):
        loss = model.loss(x, rng, step=step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < np.mean(losses[:3]) - 1, losses


@pytest.mark.parametrize("name", ["gaussian", "categorical", "bernoulli-reinforce"])
def test_replayed_steps_equal_eager_steps_bit_for_bit(name):
    """A step plan of a conv model: 1 recorded and 3 replayed steps give the parameters, moments, losses and Philox
    counter of 4 eager steps exactly."""
    def eager():
        model, rng = MODELS[name](), Generator(9)
        opt = Adam(model.parameters(), lr=0.05)
        losses = []
        for t, x in enumerate(BATCHES):
            loss = model.loss(mv.tensor(x), rng, step=t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.data.copy())
        return model, opt, rng, losses

    def replayed():
        model, rng = MODELS[name](), Generator(9)
        opt = Adam(model.parameters(), lr=0.05)
        plan = mv.compile_step(model, opt, lambda x, step: model.loss(x, rng, step=step), BATCHES[0], step=0)
        losses = [plan.loss.data.copy()]
        for t, x in enumerate(BATCHES[1:], 1):
            losses.append(plan.step(x, step=t).data.copy())
        return model, opt, rng, losses
    assert_same_run(eager(), replayed())


@pytest.mark.parametrize("name", ["gaussian", "bernoulli-reinforce"])
def test_on_the_device_the_same_steps_and_no_copy_to_the_host(name):
    """Two training steps on the "cuda" stand-in equal the CPU's bit for bit, with no copy to the host."""
    def run(device):
        model, rng = MODELS[name](device), Generator(2)
        opt = Adam(model.parameters(), lr=0.05)
        for t, x in enumerate(BATCHES[:2]):
            loss = model.loss(mv.tensor(x, device=device), rng, step=t)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {n: p.data for n, p in model.named_parameters()}

    with use_numba(False), use_cuda_kernels(False):  # (the array formulas on both, the emulated device's)
        want = run("cpu")
        with emulating(), record() as log:
            got = run("cuda")
    assert log == [], describe(log)
    for n in want:
        np.testing.assert_array_equal(got[n].get(), want[n], err_msg=n)


def test_the_config_records_the_architecture_and_a_checkpoint_rebuilds_it(tmp_path):
    """arch and channels are in the config only for arch="conv" (an MLP model's config is the one checkpoints
    written before the option have); a checkpoint of a conv model loads as one, with its weights."""
    from minivae.training import load_checkpoint, save_checkpoint
    assert "arch" not in GaussianVAE(X_DIM, (6,), 3, rng=Generator(0)).config
    model = MODELS["categorical"]()
    assert model.config["arch"] == "conv" and model.config["channels"] == (3, 4)
    path = tmp_path / "c.npz"
    save_checkpoint(path, model, Adam(model.parameters()), Generator(0), 1, 1)
    loaded = load_checkpoint(path)[0]
    assert isinstance(loaded.encoder, ConvEncoder) and isinstance(loaded.decoder, ConvDecoder)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_bad_architectures_are_refused_naming_the_problem():
    for kwargs, error, message in [
            (dict(arch="cnn"), ValueError, "arch must be one of"),
            (dict(channels=(4,)), ValueError, "channels are the convolutions'"),
            (dict(arch="conv", x_dim=36), ValueError, r"side a multiple of 2\^2 = 4 .* not 36"),
            (dict(arch="conv", x_dim=50), ValueError, "not 50"),
            (dict(arch="conv", channels=()), ValueError, "at least one convolution"),
            (dict(arch="conv", channels=(4, 0)), ValueError, r"channels\[1\] must be >= 1"),
            (dict(arch="conv", activation="gated"), ValueError, "takes the activations")]:
        kwargs = {"x_dim": X_DIM, **kwargs}
        with pytest.raises(error, match=message):
            GaussianVAE(kwargs.pop("x_dim"), (6,), 3, rng=Generator(0), **kwargs)
    with pytest.raises(ValueError, match="not 36"):
        BernoulliVAE(36, (6,), 3, arch="conv", rng=Generator(0))


def test_the_cli_trains_a_conv_model_and_refuses_bad_flags(tmp_path, capsys):
    """minivae train --arch conv: a run whose checkpoint holds a conv model; --channels without --arch conv and a gated
    conv are one line each, before anything is written."""
    from minivae.training import load_checkpoint
    from tests.test_cli import one_error_line, run
    data = tmp_path / "digits.amat"
    data.write_text("".join(" ".join(str(int(v)) for v in row) + "\n" for row in np.concatenate(BATCHES * 2)))
    common = ["train", "--model", "gaussian", "--data", data, "--epochs", "1", "--batch-size", "5", "--hidden", "6"]
    assert run(*common, "--arch", "conv", "--channels", "2,3", "--out", tmp_path / "run") == 0
    assert isinstance(load_checkpoint(tmp_path / "run" / "checkpoint.npz")[0].encoder, ConvEncoder)
    capsys.readouterr()
    for flags, message in [(["--channels", "2,3"], "--channels are the convolutions' channels: they need --arch conv"),
                           (["--arch", "conv", "--activation", "gated"], "--arch conv takes one of relu, tanh, sigmoid, softplus")]:
        assert run(*common, *flags, "--out", tmp_path / "bad") == 1
        assert message in one_error_line(capsys) and not (tmp_path / "bad").exists()
