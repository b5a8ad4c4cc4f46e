"""Modules, state_dict round trips, optimizers against their update formulas."""
import numpy as np
import pytest

import minivae as mv
from minivae.nn import MLP, Linear, Module
from minivae.optim import SGD, Adam, clip_grad_norm_
from minivae.random import Generator


def test_named_parameters_in_assignment_order_and_zero_grad():
    m = MLP((3, 4, 2), rng=Generator(0))
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    (m(mv.tensor(np.ones((5, 3), np.float32))) ** 2).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_init_is_seeded_and_scaled():
    a, b = Linear(200, 300, rng=Generator(1)), Linear(200, 300, rng=Generator(1))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    bound = np.sqrt(6 / 500)  # Glorot uniform: variance bound²/3 = 2/(in+out)
    assert np.abs(a.weight.data).max() <= bound
    assert a.weight.data.var() == pytest.approx(2 / 500, rel=0.05)
    he = Linear(200, 300, rng=Generator(2), init="he")
    assert he.weight.data.var() == pytest.approx(2 / 200, rel=0.05)


def test_gated_mlp_computes_gated_linear_units_and_its_gradient_checks():
    m = MLP((3, 4, 2), "gated", rng=Generator(0), dtype=np.float64)
    assert [n for n, _ in m.named_parameters()] == ["0.linear.weight", "0.linear.bias", "1.weight", "1.bias"]
    x = np.random.default_rng(0).normal(size=(5, 3))
    w, b = m.layers[0].linear.weight.data, m.layers[0].linear.bias.data
    h = x @ w + b
    expected = (h[:, :4] / (1 + np.exp(-h[:, 4:]))) @ m.layers[1].weight.data + m.layers[1].bias.data
    np.testing.assert_allclose(m(mv.tensor(x)).data, expected, rtol=1e-12)
    linears = [m.layers[0].linear, m.layers[1]]

    def f(x, *values):  # the parameters as inputs, so gradcheck differentiates with respect to them
        for layer, w, b in zip(linears, values[::2], values[1::2]):
            layer.weight, layer.bias = w, b
        return m(x)
    assert mv.gradcheck(f, [x, *(p.data.copy() for p in m.parameters())])
    with pytest.raises(ValueError, match="gated"):
        MLP((3, 2), "swish", rng=Generator(0))


def test_state_dict_save_load_round_trip(tmp_path):
    m = MLP((3, 4, 2), rng=Generator(0))
    path = tmp_path / "m.npz"
    m.save(path)
    other = MLP((3, 4, 2), rng=Generator(5)).load(path)
    for (_, p), (_, q) in zip(m.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    with pytest.raises(ValueError, match="missing"):
        MLP((3, 4, 4, 2), rng=Generator(0)).load(path)
    with pytest.raises(ValueError, match="shape"):
        MLP((3, 5, 2), rng=Generator(0)).load(path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        m.load(tmp_path / "bad.npz")


def quadratic(p):
    return ((p - mv.tensor(np.array([1.0, -2.0]))) ** 2).sum()


def test_sgd_momentum_matches_its_formula():
    p = mv.tensor(np.array([0.0, 0.0]), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9)
    v, x = np.zeros(2), np.zeros(2)
    for _ in range(3):
        opt.zero_grad()
        quadratic(p).backward()
        opt.step()
        g = 2 * (x - [1.0, -2.0])
        v = 0.9 * v + g
        x = x - 0.1 * v
    np.testing.assert_allclose(p.data, x)


def test_adam_matches_its_formula_and_converges():
    p = mv.tensor(np.array([0.0, 0.0]), requires_grad=True)
    opt = Adam([p], lr=0.01)
    m = v = np.zeros(2)
    x = np.zeros(2)
    for t in range(1, 6):
        opt.zero_grad()
        quadratic(p).backward()
        opt.step()
        g = 2 * (x - [1.0, -2.0])
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        x = x - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(p.data, x, rtol=1e-10)
    opt = Adam([p], lr=0.1)
    for _ in range(500):
        opt.zero_grad()
        quadratic(p).backward()
        opt.step()
    np.testing.assert_allclose(p.data, [1.0, -2.0], atol=1e-3)


def test_optimizer_state_round_trip_continues_identically():
    def run(steps, restore_at=None):
        p = mv.tensor(np.array([0.0, 0.0]), requires_grad=True)
        opt = Adam([p], lr=0.05)
        for i in range(steps):
            if i == restore_at:
                state, data = opt.state_dict(), p.data.copy()
                p = mv.tensor(data, requires_grad=True)
                opt = Adam([p], lr=0.05)
                opt.load_state_dict(state)
            opt.zero_grad()
            quadratic(p).backward()
            opt.step()
        return p.data
    np.testing.assert_array_equal(run(10), run(10, restore_at=4))


def test_clip_grad_norm_scales_globally():
    a = mv.tensor(np.zeros(2), requires_grad=True)
    b = mv.tensor(np.zeros(1), requires_grad=True)
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([4.0])
    assert clip_grad_norm_([a, b], 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]), [0.6, 0.0, 0.8], rtol=1e-9)


def test_optimizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        Adam([])
    with pytest.raises(ValueError, match="learning rate"):
        SGD([mv.tensor([1.0], requires_grad=True)], lr=0)


def test_custom_module_registers_submodules():
    class Two(Module):
        def __init__(self):
            self.a = Linear(2, 2, rng=Generator(0))
            self.b = Linear(2, 1, rng=Generator(1))
            self.scale = mv.tensor(np.ones(1, np.float32), requires_grad=True)

        def forward(self, x):
            return self.b(self.a(x)) * self.scale
    assert [n for n, _ in Two().named_parameters()] == ["scale", "a.weight", "a.bias", "b.weight", "b.bias"]


def test_adam_keeps_parameters_in_one_flat_buffer_and_survives_rebinding():
    m = MLP((3, 4, 2), rng=Generator(0))
    opt = Adam(m.parameters(), lr=0.1)
    base = m.parameters()[0].data.base
    assert base is not None and all(p.data.base is base for p in m.parameters())
    p = m.parameters()[1]
    p.data = np.full(p.shape, 5.0, np.float32)  # a user rebinds .data: the next step adopts it
    (m(mv.tensor(np.ones((2, 3), np.float32))) ** 2).sum().backward()
    opt.step()
    assert p.data.base is base and np.all(np.abs(p.data - 5.0) <= 0.1 + 1e-6)


def test_one_launch_path_gets_each_param_groups_hyperparameters(monkeypatch):
    """The CUDA launchers update a whole flat buffer per call; with two parameter groups each buffer
    must get its own group's lr (a NumPy stand-in for minivae._gpu.sgd, with the same signature)."""
    import minivae.optim as optim

    class OneLaunchSGD:
        ONE_LAUNCH = True

        @staticmethod
        def sgd_step_all(p, v, grads, starts, lr, momentum):
            for j, g in enumerate(grads):
                if g is not None:
                    s = slice(int(starts[j]), int(starts[j + 1]))
                    v[s] = momentum * v[s] + g.reshape(-1)
                    p[s] -= lr * v[s]

    def run():
        ws = [mv.tensor(np.ones(3), requires_grad=True), mv.tensor(np.ones(2), requires_grad=True)]
        opt = SGD([{"params": ws[:1]}, {"params": ws[1:], "lr": 0.5, "momentum": 0.0}], lr=0.1, momentum=0.9)
        for _ in range(3):
            for w in ws:
                w.grad = np.full(w.shape, 2.0)
            opt.step()
        return [w.data.copy() for w in ws]

    reference = run()
    monkeypatch.setattr(optim, "fused", lambda name, xp, *arrays: OneLaunchSGD)
    for a, b in zip(run(), reference):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(reference[1], 1 - 3 * 0.5 * 2.0)  # plain SGD at the second group's lr
