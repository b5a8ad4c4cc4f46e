"""The semi-supervised VAE M2 (minivae.semisupervised; Kingma et al. 2014): its labelled and unlabelled bounds against
the formulas written out in NumPy from the weights, the exact enumeration over classes against a loop and its
classifier gradient against the closed form, the bound below log p(x) (exact sum over y, importance sampling over z),
learning to classify from a few labels, the strict device stand-in, checkpoints, the labels reader and bad input."""
import gzip
import math
import os
import struct

import numpy as np
import pytest

import minivae as mv
from minivae._backend import use_cuda_kernels, use_numba
from minivae.data import DataFormatError
from minivae.models import MODELS, SemiSupervisedVAE
from minivae.optim import Adam
from minivae.random import Generator
from minivae.semisupervised import load_labelled
from minivae.training import load_checkpoint, save_checkpoint
from tests.strict_array import UPLOADS, describe, emulating, record

D, C, H, Z, B = 6, 3, 5, 2, 4
X = (np.random.default_rng(0).random((B, D)) < 0.5).astype(np.float64)
Y = np.array([0, 2, 1, 2])


def tiny(alpha=0.7, seed=3, **kw):
    """A float64 model of fixed weights (from the seed), its biases drawn too (they start at 0)."""
    model = SemiSupervisedVAE(D, C, hidden=(H,), z_dim=Z, alpha=alpha, rng=Generator(seed), **kw).double()
    noise = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.data[...] = noise.normal(size=p.shape)
    return model


# ---- NumPy: the networks and bounds from the weights ------------------------------------------------------------------
def softplus(v):
    return np.logaddexp(0.0, v)


def mlp(state, name, v):
    """Linear, softplus, Linear (minivae's layout: v W + b, W (in, out))."""
    h = softplus(v @ state[f"{name}.0.weight"] + state[f"{name}.0.bias"])
    return h @ state[f"{name}.2.weight"] + state[f"{name}.2.bias"]


def log_softmax(a):
    m = a.max(axis=-1, keepdims=True)
    return a - m - np.log(np.exp(a - m).sum(axis=-1, keepdims=True))


def numpy_bound(state, x, y1h, eps):
    """L(x, y) = Σ_d [x log σ(l) + (1 − x) log σ(−l)] − log C − ½ Σ_j (μ² + σ² − 1 − log σ²), z = μ + σ ε."""
    enc = mlp(state, "encoder", np.concatenate([x, y1h], axis=-1))
    mu, log_var = enc[..., :Z], enc[..., Z:]
    z = mu + np.exp(0.5 * log_var) * eps
    logits = mlp(state, "decoder", np.concatenate([y1h, z], axis=-1))
    log_px = (x * -softplus(-logits) + (1 - x) * -softplus(logits)).sum(axis=-1)
    kl = 0.5 * (mu ** 2 + np.exp(log_var) - 1 - log_var).sum(axis=-1)
    return log_px - math.log(C) - kl


def numpy_unlabelled(state, x, eps):
    """(U (B,), L (C, B), log π (B, C)): U = Σ_c π_c (L_c − log π_c), class c's bound at ε[c]."""
    bounds = np.stack([numpy_bound(state, x, np.eye(C)[np.full(len(x), c)], eps[c]) for c in range(C)])
    log_pi = log_softmax(mlp(state, "classifier", x))
    return (np.exp(log_pi.T) * (bounds - log_pi.T)).sum(axis=0), bounds, log_pi


def state_of(model):
    return {k: np.asarray(v, np.float64) for k, v in model.state_dict().items()}


def test_the_labelled_loss_is_the_formula_written_out():
    model, alpha = tiny(), 0.7
    eps = Generator(11).normal((B, Z), np.float64)
    bound = numpy_bound(state_of(model), X, np.eye(C)[Y], eps)
    log_q = log_softmax(mlp(state_of(model), "classifier", X))[np.arange(B), Y]
    x = mv.tensor(X)
    np.testing.assert_allclose(model.elbo(x, Y, eps=eps).numpy(), bound, rtol=1e-12)
    np.testing.assert_allclose(model.elbo(x, Y, Generator(11)).numpy(), bound, rtol=1e-12)  # the rng's next normals
    np.testing.assert_allclose(model.loss(x, Generator(11), y=Y).item(), np.mean(-bound - alpha * log_q), rtol=1e-12)
    # one-hot rows in place of the integer labels (the training loop's packed batch): the same loss
    np.testing.assert_allclose(model.loss(x, Generator(11), y=np.eye(C)[Y]).item(), np.mean(-bound - alpha * log_q),
                               rtol=1e-12)
    q = model.posterior(x, mv.tensor(np.eye(C)[Y]))  # q(z|x, y) and p(z), the distributions of the bound
    enc = mlp(state_of(model), "encoder", np.concatenate([X, np.eye(C)[Y]], axis=-1))
    np.testing.assert_allclose(q.loc.numpy(), enc[:, :Z], rtol=1e-12)
    np.testing.assert_allclose(q.scale.numpy(), np.exp(0.5 * enc[:, Z:]), rtol=1e-12)
    assert (model.prior().loc.numpy() == 0).all() and (model.prior().scale.numpy() == 1).all()


def test_the_unlabelled_loss_is_the_formula_written_out():
    model = tiny()
    eps = Generator(12).normal((C, B, Z), np.float64)
    u, _, _ = numpy_unlabelled(state_of(model), X, eps)
    x = mv.tensor(X)
    np.testing.assert_allclose(model.unlabelled_bound(x, eps=eps).numpy(), u, rtol=1e-12)
    np.testing.assert_allclose(model.loss(x, Generator(12)).item(), -u.mean(), rtol=1e-12)


def test_the_enumeration_equals_the_loop_over_classes_values_and_gradients():
    """One batched pass over the C copies = Σ_c π_c (L(x, c) − log π_c) with L one class at a time, at the same ε; every
    parameter's gradient too."""
    model = tiny()
    x, eps = mv.tensor(X), Generator(13).normal((C, B, Z), np.float64)
    enumerated = model.unlabelled_bound(x, eps=eps)
    log_pi = model.classifier_posterior(x).logits  # normalized: log π
    looped = sum(mv.ops.exp(log_pi[:, c]) * (model.elbo(x, np.full(B, c), eps=eps[c]) - log_pi[:, c])
                 for c in range(C))
    np.testing.assert_allclose(enumerated.numpy(), looped.numpy(), rtol=1e-12)
    grads = []
    for value in (enumerated, looped):
        model.zero_grad()
        value.sum().backward()
        grads.append({n: p.grad.copy() for n, p in model.named_parameters()})
    for n in grads[0]:
        np.testing.assert_allclose(grads[0][n], grads[1][n], rtol=1e-10, atol=1e-12, err_msg=n)


def test_the_classifier_gradient_of_the_unlabelled_loss_is_exact():
    """∂(−mean U)/∂a_bk = −π_bk (L_bk − log π_bk − U_b)/B for the classifier's logits a (the sum over y exact, no
    score-function noise), by the closed form from NumPy's L and by float64 central differences."""
    model = tiny()
    eps = Generator(14).normal((C, B, Z), np.float64)
    a = mv.tensor(np.random.default_rng(1).normal(size=(B, C)) * 2, requires_grad=True)
    _with(model, a)  # the classifier's output, as a leaf
    loss = -model.unlabelled_bound(mv.tensor(X), eps=eps).mean()
    loss.backward()
    state = state_of(model)
    bounds = np.stack([numpy_bound(state, X, np.eye(C)[np.full(B, c)], eps[c]) for c in range(C)]).T  # (B, C)
    log_pi = log_softmax(a.numpy())
    pi = np.exp(log_pi)
    u = (pi * (bounds - log_pi)).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(a.grad, -pi * (bounds - log_pi - u) / B, rtol=1e-10, atol=1e-14)
    assert mv.gradcheck(lambda logits: -SemiSupervisedVAE.unlabelled_bound(_with(model, logits), mv.tensor(X),
                                                                           eps=eps).mean(), a)


class Fixed(mv.nn.Module):
    """A stand-in classifier: the given logits whatever the images."""

    def __init__(self, logits):
        self.logits = logits

    def forward(self, x):
        return self.logits


def _with(model, logits):
    model.classifier = Fixed(logits)
    return model


def test_the_classifier_learns_from_the_alpha_term_of_labelled_images_alone():
    """The labelled loss reaches q(y|x) only through α·(−log q(y|x)): the classifier's last bias gets
    α/B Σ_b (π_b − onehot(y_b)), and nothing at α = 0."""
    for alpha in (0.0, 0.7, 5.0):
        model = tiny(alpha)
        model.loss(mv.tensor(X), Generator(2), y=Y).backward()
        pi = np.exp(log_softmax(mlp(state_of(model), "classifier", X)))
        expected = alpha * (pi - np.eye(C)[Y]).sum(axis=0) / B
        grad = model.classifier[2].bias.grad
        np.testing.assert_allclose(0 if grad is None else grad, expected, rtol=1e-10, atol=1e-15)
        assert all(p.grad is not None and np.abs(p.grad).max() > 0 for p in model.decoder.parameters())


def test_the_default_alpha_is_the_paper_s_and_is_recorded():
    model = SemiSupervisedVAE(D, C, hidden=(H,), z_dim=Z, n_data=60000, n_labelled=100, rng=Generator(0))
    assert model.alpha == 60.0 and model.config["alpha"] == 60.0  # 0.1·N per labelled image: 0.1·N/N_l
    assert "n_data" not in model.config


def test_the_unlabelled_bound_stays_below_log_p_x():
    """U(x) ≤ Σ_y q(y|x)(log p(x, y) − log q(y|x)) ≤ log p(x), and L(x, y) ≤ log p(x, y), with log p(x, y) =
    log p(y) + log ∫ p(z) p(x|y, z) dz by importance sampling from q(z|x, y) (K = 20,000; NumPy) and log p(x) their
    exact sum over y; L and U averaged over 4000 draws. Each side within 4 standard errors of Monte Carlo."""
    model = SemiSupervisedVAE(D, 2, hidden=(H,), z_dim=Z, alpha=1.0, rng=Generator(5)).double()
    state, k, draws = state_of(model), 20000, 4000
    x = X[:3]
    rng = np.random.default_rng(0)
    log_pxy, se_pxy = np.zeros((3, 2)), np.zeros((3, 2))
    for c in range(2):
        y1h = np.eye(2)[np.full(3, c)]
        enc = mlp(state, "encoder", np.concatenate([x, y1h], axis=-1))
        mu, log_var = enc[:, :Z], enc[:, Z:]
        z = mu + np.exp(0.5 * log_var) * rng.standard_normal((k, 3, Z))
        logits = mlp(state, "decoder", np.concatenate([np.broadcast_to(y1h, (k, 3, 2)), z], axis=-1))
        log_w = ((x * -softplus(-logits) + (1 - x) * -softplus(logits)).sum(-1)
                 - 0.5 * (z ** 2).sum(-1) + 0.5 * (((z - mu) ** 2) / np.exp(log_var) + log_var).sum(-1))
        m = log_w.max(axis=0)
        w = np.exp(log_w - m)
        log_pxy[:, c] = np.log(0.5) + m + np.log(w.mean(axis=0))
        se_pxy[:, c] = w.std(axis=0) / math.sqrt(k) / w.mean(axis=0)  # delta method: SE of the log of the mean
    log_px = np.logaddexp(log_pxy[:, 0], log_pxy[:, 1])
    xs = mv.tensor(np.repeat(x, draws, axis=0))
    g = Generator(21)
    with mv.no_grad():
        u = model.unlabelled_bound(xs, g).numpy().reshape(3, draws)
        labelled = [model.elbo(xs, np.full(3 * draws, c), g).numpy().reshape(3, draws) for c in range(2)]
        pi = model.classify(mv.tensor(x)).numpy()
    u_mean, u_se = u.mean(axis=1), u.std(axis=1) / math.sqrt(draws)
    for c in range(2):
        l_mean, l_se = labelled[c].mean(axis=1), labelled[c].std(axis=1) / math.sqrt(draws)
        assert (l_mean <= log_pxy[:, c] + 4 * np.hypot(l_se, se_pxy[:, c])).all(), (l_mean, log_pxy[:, c])
    middle = (pi * (log_pxy - np.log(pi))).sum(axis=1)
    assert (u_mean <= middle + 4 * np.hypot(u_se, se_pxy.max(axis=1))).all(), (u_mean, middle)
    assert (middle <= log_px + 1e-12).all()
    assert (u_mean < log_px).all() and (log_px - u_mean < 5).all(), (u_mean, log_px)  # a bound, and not a vacuous one


def two_bars(n, rng):
    """Binary 4×4 images of two classes (the top two rows on, or the bottom two), pixels flipped with probability 0.1."""
    y = rng.integers(0, 2, n)
    proto = np.zeros((2, 16), np.float32)
    proto[0, :8], proto[1, 8:] = 1, 1
    return np.abs(proto[y] - (rng.random((n, 16)) < 0.1)).astype(np.float32), y


def _train(seed, labels_per_class, steps=200):
    """(accuracy of q(y|x) on 500 test images before, after): a model of z_dim 1 trained on 400 unlabelled images of
    two bars and, when ``labels_per_class``, that many labelled images of each class, Adam at 3e-3."""
    rng_np = np.random.default_rng(seed)
    x_train, y_train = two_bars(400, rng_np)
    x_test, y_test = two_bars(500, rng_np)
    labelled = np.concatenate([np.flatnonzero(y_train == c)[:labels_per_class] for c in range(2)])
    model = SemiSupervisedVAE(16, 2, hidden=(16,), z_dim=1, alpha=1.0, rng=Generator(seed))
    accuracy = []
    optimizer, rng = Adam(model.parameters(), lr=3e-3), Generator(seed + 1)
    for step in range(steps + 1):
        if step in (0, steps):
            accuracy.append((model.predict(mv.tensor(x_test)).numpy() == y_test).mean())
        if step == steps:
            return accuracy
        loss = model.loss(mv.tensor(x_train[rng_np.integers(0, 400, 50)]), rng)
        if labels_per_class:
            loss = loss + model.loss(mv.tensor(x_train[labelled]), rng, y=y_train[labelled])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("seed", [1, 3, 4])
def test_unlabelled_images_alone_teach_the_classifier_the_two_classes(seed):
    """No label at all: −U(x), the classes summed out, makes q(y|x) separate the two bars (a mixture model's
    clustering): the accuracy up to naming the classes, max(a, 1 − a), from chance to above 0.95 in 200 steps."""
    before, after = (max(a, 1 - a) for a in _train(seed, 0))
    assert before < 0.6 and after > 0.95, (before, after)


def test_a_few_labels_name_the_classes():
    """With 2 labelled images a class besides the 400 unlabelled ones, q(y|x) is right on more than 95% of the test
    images (chance: ½; the untrained classifier below 0.6 either way)."""
    before, after = _train(1, 2)
    assert max(before, 1 - before) < 0.6 and after > 0.95, (before, after)


def _steps(device, steps=3):
    model = SemiSupervisedVAE(D, C, hidden=(H,), z_dim=Z, alpha=0.5, rng=Generator(0), device=device)
    x, y = mv.tensor(X.astype(np.float32), device=device), mv.tensor(Y, device=device)
    return recorded_steps(model, lambda step, rng: model.loss(x, rng, y=y) + model.loss(x, rng), steps, device)


def recorded_steps(model, loss_of, steps, device):
    """``steps`` Adam steps (lr 10⁻², noise from Generator(4)) of ``loss_of(step, rng)``, each recording the host
    conversions and uploads it makes: (the parameters, the losses, the conversions, the uploads, the model), on the
    host."""
    optimizer, rng, log, uploads, losses = Adam(model.parameters(), lr=1e-2), Generator(4), [], [], []
    for step in range(steps):
        with record() as conversions, record(UPLOADS) as up:
            loss = loss_of(step, rng)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        log += conversions
        uploads += up
        losses.append(loss.numpy() if device == "cpu" else loss.data.get())
    params = {n: p.data if device == "cpu" else p.data.get() for n, p in model.named_parameters()}
    return params, losses, log, uploads, model


def test_training_steps_on_the_device_equal_the_cpu_and_copy_nothing_back():
    """The strict CuPy stand-in (tests/strict_array.py): labelled and unlabelled losses, backward and Adam copy nothing
    to the host, and give the CPU's numbers bit for bit (the array formulas on both)."""
    with use_numba(False), use_cuda_kernels(False), emulating():
        expected, expected_losses, _, _, _ = _steps("cpu")
        params, losses, conversions, uploads, model = _steps("cuda")
        assert conversions == [], "device→host copies inside a training step:\n" + describe(conversions)
        assert all("sampling.py" in where for _, _, where in uploads), describe(uploads)
        np.testing.assert_array_equal(np.array(losses), np.array(expected_losses))
        for n in expected:
            np.testing.assert_array_equal(params[n], expected[n], err_msg=n)
        with record() as log:
            probs, classes = model.classify(mv.tensor(X.astype(np.float32), device="cuda")), None
            images = model.sample(3, Generator(0), y=mv.tensor(np.array([0, 1, 2]), device="cuda"))
        assert log == [] and probs.device == "cuda" and images.device == "cuda" and images.shape == (3, D), classes


def test_a_checkpoint_rebuilds_the_model(tmp_path):
    model = SemiSupervisedVAE(D, C, hidden=(H,), z_dim=Z, n_data=50, n_labelled=5, likelihood="gaussian",
                              rng=Generator(0))
    save_checkpoint(tmp_path / "c.npz", model, Adam(model.parameters()), Generator(0), 1, 1)
    loaded, _ = load_checkpoint(tmp_path / "c.npz")
    assert MODELS["semisupervised"] is SemiSupervisedVAE and isinstance(loaded, SemiSupervisedVAE)
    assert loaded.config == model.config and loaded.alpha == 1.0
    x = mv.tensor(X.astype(np.float32))
    for y in (Y, None):
        assert loaded.loss(x, Generator(3), y=y).item() == model.loss(x, Generator(3), y=y).item()


def test_conditional_samples_follow_the_class():
    """sample(n, rng, y) decodes the given class: a model whose decoder reads y alone (z's weights 0) gives the mean
    image σ(W_y + b) of that class."""
    model = tiny()
    w = model.decoder[0].weight.data
    w[C:] = 0  # the first layer's rows that z meets
    state = state_of(model)
    for c in range(C):
        got = model.sample(2, Generator(1), y=c).numpy()
        expected = 1 / (1 + np.exp(-mlp(state, "decoder", np.concatenate([np.eye(C)[[c, c]], np.zeros((2, Z))], 1))))
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert model.sample(5, Generator(1)).shape == (5, D)


def test_bad_input_is_named():
    model = tiny()
    x = mv.tensor(X)
    with pytest.raises(TypeError, match="labels must be integer class indices"):
        model.loss(x, Generator(0), y=np.array([True, False, True, True]))
    with pytest.raises(ValueError, match=r"label rows \(one-hot or soft\) must have shape \(4, 3\), got \(4,\)"):
        model.loss(x, Generator(0), y=Y.astype(np.float64))
    with pytest.raises(ValueError, match=r"one class index an image, shape \(4,\)"):
        model.loss(x, Generator(0), y=Y[:3])
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\)"):
        model.loss(x, Generator(0), y=np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"shape \(batch, 6\)"):
        model.loss(mv.tensor(X[0]), Generator(0))
    with pytest.raises(ValueError, match="not both"):
        SemiSupervisedVAE(D, C, alpha=1.0, n_data=10, n_labelled=2, rng=Generator(0))
    with pytest.raises(ValueError, match="give n_data"):
        SemiSupervisedVAE(D, C, rng=Generator(0))
    with pytest.raises(ValueError, match="cannot exceed"):
        SemiSupervisedVAE(D, C, n_data=10, n_labelled=20, rng=Generator(0))
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        SemiSupervisedVAE(D, 1, alpha=1.0, rng=Generator(0))
    with pytest.raises(ValueError, match="eps must have shape"):
        model.unlabelled_bound(x, eps=np.zeros((B, Z)))
    with pytest.raises(ValueError, match="not both or neither"):
        model.elbo(x, Y)


def _idx(path, array):
    code = {np.uint8: 0x08}[array.dtype.type]
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape))
        f.write(array.tobytes())


def test_load_labelled_reads_images_and_their_labels(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        _idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 4, 4)).astype(np.uint8))
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 2)
    data = load_labelled(tmp_path)
    (x, y), (xt, yt) = data["train"], data["test"]
    assert x.shape == (5, 16) and x.dtype == np.float32 and y.dtype == np.int64 and list(y) == [0, 1, 0, 1, 0]
    assert xt.shape == (3, 16) and list(yt) == [0, 1, 0]
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataFormatError, match="4 labels for 3 images"):
        load_labelled(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataFormatError, match="no t10k-labels-idx1-ubyte"):
        load_labelled(tmp_path)


FASHION = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "fashion-mnist")


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="../shared/data/fashion-mnist is not beside this checkout")
def test_load_labelled_reads_fashion_mnist():
    """Fashion-MNIST: 60,000 training and 10,000 test images of 784 pixels, 6000 and 1000 of each of 10 classes."""
    data = load_labelled(FASHION)
    (x, y), (xt, yt) = data["train"], data["test"]
    assert x.shape == (60000, 784) and xt.shape == (10000, 784)
    assert list(np.bincount(y)) == [6000] * 10 and list(np.bincount(yt)) == [1000] * 10
