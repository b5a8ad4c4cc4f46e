"""What a PyTorch user types works, with PyTorch's meaning: each test is written as such a user
would write it and, where the semantics are PyTorch's, compares with PyTorch itself (skipped
when it is not installed: it is never a dependency)."""
import subprocess
import sys

import numpy as np
import pytest

import minivae as mv
from minivae.random import Generator


def torch_or_skip():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # CI has two cores: its thread pool would only contend
    return torch


def test_import_is_lazy():
    """``import minivae`` loads neither Numba nor CuPy nor the heavier submodules (it stays fast);
    touching ``minivae.nn`` then loads it."""
    code = ("import sys, minivae as mv; loaded = set(sys.modules); "
            "assert not {'numba', 'cupy', 'minivae.nn', 'minivae.optim', 'minivae.distributions', "
            "'minivae.models', 'minivae.training'} & loaded, sorted(m for m in loaded if 'minivae' in m or 'numba' in m); "
            "mv.nn.Linear; mv.optim.lr_scheduler.StepLR; mv.distributions.Categorical; "
            "assert 'minivae.nn' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mv.nope  # noqa: B018  (the attribute access is the test)


def test_manual_seed_and_the_rng_rule():
    """Without rng= modules and samplers draw from the default generator (manual_seed restarts it);
    an explicit rng= takes precedence and leaves the default generator alone."""
    mv.manual_seed(3)
    a = mv.nn.Linear(4, 5).weight.data.copy()
    z_a = mv.distributions.Normal(mv.zeros(2), mv.ones(2)).sample()
    mv.manual_seed(3)
    np.testing.assert_array_equal(mv.nn.Linear(4, 5).weight.data, a)
    np.testing.assert_array_equal(mv.distributions.Normal(mv.zeros(2), mv.ones(2)).sample().data, z_a.data)
    assert not np.array_equal(mv.nn.Linear(4, 5).weight.data, a)  # the stream moved on
    mv.manual_seed(3)
    explicit = mv.nn.Linear(4, 5, rng=Generator(3)).weight.data
    np.testing.assert_array_equal(explicit, a)
    np.testing.assert_array_equal(mv.nn.Linear(4, 5).weight.data, a)  # rng= did not advance the default
    np.testing.assert_array_equal(mv.randn(3, rng=Generator(7)).data, mv.randn(3, generator=Generator(7)).data)
    with pytest.raises(ValueError, match="seed"):
        mv.manual_seed(-1)


def test_categorical_and_bernoulli_take_probs_first_as_pytorch():
    torch = torch_or_skip()
    p = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]], np.float32)
    value = np.array([2, 0])
    ours, theirs = mv.distributions.Categorical(p), torch.distributions.Categorical(torch.tensor(p))
    np.testing.assert_allclose(ours.log_prob(value).data, theirs.log_prob(torch.tensor(value)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ours.probs.data, theirs.probs.numpy(), rtol=1e-6)
    lg = np.log(p) + 1.0
    np.testing.assert_allclose(mv.distributions.Categorical(logits=lg).entropy().data,
                               torch.distributions.Categorical(logits=torch.tensor(lg)).entropy().numpy(), rtol=1e-6)
    q, x = np.array([0.25, 0.9], np.float32), np.array([1.0, 0.0], np.float32)
    np.testing.assert_allclose(mv.distributions.Bernoulli(q).log_prob(x).data,
                               torch.distributions.Bernoulli(torch.tensor(q)).log_prob(torch.tensor(x)).numpy(), rtol=1e-6)
    np.testing.assert_allclose(mv.distributions.Bernoulli(probs=q).logits.data,
                               torch.distributions.Bernoulli(probs=torch.tensor(q)).logits.numpy(), rtol=1e-6)
    relaxed = mv.distributions.RelaxedOneHotCategorical(0.5, probs=p)
    np.testing.assert_allclose(relaxed.logits.data, theirs.logits.numpy(), rtol=1e-6)


@pytest.mark.parametrize("make", [mv.distributions.Categorical, mv.distributions.Bernoulli,
                                  lambda **kw: mv.distributions.RelaxedOneHotCategorical(0.5, **kw)])
def test_exactly_one_of_probs_and_logits(make):
    with pytest.raises(ValueError, match="exactly one of probs= or logits="):
        make()
    with pytest.raises(ValueError, match="exactly one of probs= or logits="):
        make(probs=np.array([0.5, 0.5]), logits=np.zeros(2))


def test_normal_stddev_variance_mean():
    torch = torch_or_skip()
    loc, scale = np.array([0.5, -1.0]), np.array([2.0, 0.3])
    ours, theirs = mv.distributions.Normal(loc, scale), torch.distributions.Normal(torch.tensor(loc), torch.tensor(scale))
    for name in ("mean", "stddev", "variance"):
        np.testing.assert_allclose(getattr(ours, name).data, getattr(theirs, name).numpy(), err_msg=name)


def test_gumbel_softmax_takes_pytorch_keywords():
    logits = mv.tensor(np.random.default_rng(0).normal(size=(4, 3)))
    ours = mv.functional.gumbel_softmax(logits, temperature=0.5, axis=0, rng=Generator(1))
    same = mv.nn.functional.gumbel_softmax(logits, tau=0.5, dim=0, rng=Generator(1))
    np.testing.assert_array_equal(ours.data, same.data)
    hard = mv.nn.functional.gumbel_softmax(logits, tau=0.5, hard=True, dim=-1, rng=Generator(1))
    np.testing.assert_array_equal(hard.data.sum(axis=-1), np.ones(4))
    assert set(np.unique(hard.data)) == {0.0, 1.0}
    np.testing.assert_allclose(mv.functional.softmax(logits, dim=0).data.sum(axis=0), np.ones(3))
    with pytest.raises(TypeError, match="temperature= or tau="):
        mv.functional.gumbel_softmax(logits, temperature=0.5, tau=0.5)


def test_tensor_methods_match_pytorch_values_and_gradients():
    torch = torch_or_skip()
    x = np.random.default_rng(2).normal(size=(2, 1, 3))
    cases = [lambda t: t.view(3, 2), lambda t: t.view(-1), lambda t: t.squeeze(), lambda t: t.squeeze(1),
             lambda t: t.squeeze(0), lambda t: t.unsqueeze(0), lambda t: t.unsqueeze(-1), lambda t: t.min(),
             lambda t: t.min(dim=2), lambda t: t.clone() * 2, lambda t: t.permute(2, 0, 1),
             lambda t: t.std(), lambda t: t.std(dim=2, keepdim=True), lambda t: t.var(dim=(0, 2)),
             lambda t: t.var(dim=2, correction=0), lambda t: t.sum(dim=2), lambda t: t.mean(dim=-1, keepdim=True)]
    for i, f in enumerate(cases):
        ours, theirs = mv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        yo, yt = f(ours), f(theirs)
        if isinstance(yt, tuple):  # torch's min(dim) also gives indices
            yt = yt.values
        assert yo.size() == tuple(yt.size()), i
        np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-12, err_msg=str(i))
        g = np.random.default_rng(i).normal(size=yo.shape)
        yo.backward(g)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-15, err_msg=str(i))
    t = mv.tensor(x)
    assert t.tolist() == torch.tensor(x).tolist()
    assert (t.size(), t.size(-1), t.numel(), t.dim()) == ((2, 1, 3), 3, 6, 3)
    c = t.clone()
    c.data[...] = 0
    assert t.data.any()  # a copy, not a view


def test_creation_functions_follow_pytorch():
    torch = torch_or_skip()
    pairs = [(mv.zeros(2, 3), torch.zeros(2, 3)), (mv.ones((2,)), torch.ones((2,))),
             (mv.full((2, 2), 7), torch.full((2, 2), 7)), (mv.full((2,), 0.5), torch.full((2,), 0.5)),
             (mv.full((1,), True), torch.full((1,), True)), (mv.arange(5), torch.arange(5)),
             (mv.arange(1, 2, 0.25), torch.arange(1, 2, 0.25)), (mv.zeros(2, dtype=np.float64), torch.zeros(2, dtype=torch.float64)),
             (mv.cat([mv.ones(2, 1), mv.zeros(2, 2)], dim=1), torch.cat([torch.ones(2, 1), torch.zeros(2, 2)], dim=1)),
             (mv.stack([mv.ones(2), mv.zeros(2)], dim=1), torch.stack([torch.ones(2), torch.zeros(2)], dim=1))]
    for ours, theirs in pairs:
        assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
        np.testing.assert_array_equal(ours.data, theirs.numpy())
    for draw in (mv.rand, mv.randn):
        x = draw(2, 3, requires_grad=True)
        assert x.shape == (2, 3) and x.dtype == np.float32 and x.requires_grad
    assert 0 < mv.rand(1000).data.min() and mv.rand(1000).data.max() < 1
    assert abs(mv.randn(10000).data.std() - 1) < 0.05


def test_module_train_eval_modulelist_parameter():
    nn = mv.nn

    class Net(nn.Module):
        def __init__(self):
            self.blocks = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)])
            self.scale = nn.Parameter(mv.ones(1))
            self.head = nn.Sequential(nn.Linear(2, 1), nn.ReLU())

        def forward(self, x):
            for b in self.blocks:
                x = b(x)
            return self.head(x) * self.scale

    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["scale", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight",
                                                      "blocks.1.bias", "head.0.weight", "head.0.bias"]
    assert len(net.blocks) == 2 and isinstance(net.scale, nn.Parameter) and net.scale.requires_grad
    assert net.training and net.head.layers[0].training
    assert net.eval() is net and not net.training and not net.blocks[1].training and not net.head.layers[1].training
    assert net.train().training and net.blocks[0].training
    net(mv.ones(3, 2)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())

    class Forgetful(nn.Module):
        def __init__(self):
            self.layers = [nn.Linear(2, 2)]  # a plain list would hide the parameters

    with pytest.raises(TypeError, match="ModuleList"):
        Forgetful()


def test_param_groups_and_lr_changes_follow_pytorch():
    """Two groups with their own lr, and an lr changed through param_groups between steps: the same
    trajectory as torch.optim.Adam (and SGD with momentum)."""
    torch = torch_or_skip()
    rng = np.random.default_rng(3)
    w0, b0, x = rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=(5, 3))
    for name, kw in (("Adam", {}), ("SGD", {"momentum": 0.9})):
        runs = []
        for lib, make in ((mv, lambda a: mv.tensor(a, requires_grad=True)), (torch, lambda a: torch.tensor(a, requires_grad=True))):
            w, b = make(w0), make(b0)
            opt = getattr(lib.optim, name)([{"params": [w]}, {"params": [b], "lr": 0.05}], lr=0.1, **kw)
            assert [g["lr"] for g in opt.param_groups] == [0.1, 0.05]
            for step in range(4):
                if step == 2:
                    opt.param_groups[0]["lr"] = 0.01
                loss = ((lib.tensor(x) @ w + b) ** 2).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            runs.append([np.array(t.detach().numpy()) for t in (w, b)])
        for ours, theirs in zip(*runs):
            np.testing.assert_allclose(ours, theirs, rtol=1e-10, err_msg=name)


def test_lr_schedulers_match_pytorch():
    torch = torch_or_skip()
    metrics = [5.0, 4.0, 4.0, 3.9999, 4.1, 4.2, 4.3, 2.0, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0]
    traces = []
    for lib in (mv, torch):
        p = lib.tensor(np.zeros(1), requires_grad=True)
        opt, opt2 = lib.optim.SGD([p], lr=1.0), lib.optim.SGD([p], lr=1.0)
        step_lr = lib.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
        plateau = lib.optim.lr_scheduler.ReduceLROnPlateau(opt2, factor=0.5, patience=1, cooldown=1, min_lr=0.1)
        trace = []
        for m in metrics:
            opt.step()
            opt2.step()
            step_lr.step()
            plateau.step(m)
            trace.append((opt.param_groups[0]["lr"], opt2.param_groups[0]["lr"]))
        traces.append(trace)
    assert traces[0] == traces[1]
    assert traces[0][-1][1] < 1.0 and traces[0][-1][0] < 1.0  # both schedules did act


def test_optimizer_keeps_float64_parameters_float64():
    """Mixed float32/float64 parameters: each dtype keeps its own buffers; the float64 one moves by
    steps far below float32's resolution near 1, exactly as when it is optimized alone."""
    def run(params):
        opt = mv.optim.SGD(params, lr=1e-12, momentum=0.5)
        for _ in range(3):
            for p in params:
                p.grad = np.ones(p.shape, p.dtype)
            opt.step()
        return opt

    p32, p64 = mv.tensor(np.ones(3, np.float32), requires_grad=True), mv.tensor(np.ones(2), requires_grad=True)
    alone = mv.tensor(np.ones(2), requires_grad=True)
    opt = run([p32, p64])
    run([alone])
    assert p64.dtype == np.float64 and p32.dtype == np.float32
    np.testing.assert_array_equal(p64.data, alone.data)
    assert (p64.data < 1).all()
    assert opt.state_dict()["1.momentum"].dtype == np.float64


def test_load_state_dict_checks_everything_before_changing_anything():
    net = mv.nn.Sequential(mv.nn.Linear(2, 3), mv.nn.ReLU(), mv.nn.Linear(3, 1))
    before = {k: v.copy() for k, v in net.state_dict().items()}
    good = {k: v + 1 for k, v in before.items()}
    for key, bad, problem in (("2.bias", np.zeros(2, np.float32), r"2\.bias is float32 of shape \(2,\)"),
                              ("2.weight", np.zeros((3, 1)), r"2\.weight is float64 of shape \(3, 1\).*float32"),
                              ("0.bias", [0.0, 0.0, 0.0], r"0\.bias is a list, not an array")):
        with pytest.raises(ValueError, match=problem):
            net.load_state_dict({**good, key: bad})
        for k, v in net.state_dict().items():  # untouched: no parameter took the good values
            np.testing.assert_array_equal(v, before[k], err_msg=k)
    with pytest.raises(ValueError, match=r"missing \['2.bias'\]"):
        net.load_state_dict({k: v for k, v in good.items() if k != "2.bias"})
    net.load_state_dict(good)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, good[k])


@pytest.mark.parametrize("change", ["no_grad_isub", "setitem", "optimizer_step", "load_state_dict", "copy_"])
def test_changing_a_leaf_in_place_after_the_forward_pass_raises_at_backward(change):
    lin = mv.nn.Linear(2, 1, rng=Generator(0))
    w = lin.weight
    loss = (lin(mv.ones(4, 2)) ** 2).sum()
    with mv.no_grad():
        if change == "no_grad_isub":
            w -= 0.1
        elif change == "setitem":
            w[0] = 5.0
        elif change == "copy_":
            w.copy_(mv.zeros(2, 1))
    if change == "optimizer_step":
        opt = mv.optim.SGD(lin.parameters(), lr=0.1)
        w.grad = np.ones_like(w.data)
        opt.step()
    elif change == "load_state_dict":
        lin.load_state_dict(lin.state_dict())
    with pytest.raises(RuntimeError, match="modified in place after the forward pass"):
        loss.backward()


def test_in_place_rules_follow_pytorch():
    torch = torch_or_skip()
    w = mv.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w += 1  # a leaf that requires grad, outside no_grad (PyTorch raises too)
    with pytest.raises(RuntimeError):
        tw = torch.ones(2, requires_grad=True)
        tw += 1
    same = w
    with mv.no_grad():
        w -= 0.5 * mv.ones(2)  # a manual SGD step changes the parameter itself
    assert w is same and np.array_equal(w.data, [0.5, 0.5]) and w.requires_grad
    h = w * 3
    h += w  # part of the graph: a new node, the gradient counts both terms
    h.sum().backward()
    np.testing.assert_array_equal(w.grad, [4.0, 4.0])
    loss = (w * w).sum()
    loss.backward()  # unchanged since the forward pass: fine
    np.testing.assert_array_equal(w.grad, [5.0, 5.0])


TRAINING_SCRIPT = '''
torch.manual_seed(0)
x = torch.randn(256, 8)
y = x[:, :4].argmax(dim=1)  # a learnable 4-class target
model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=100, gamma=0.5)
model.train()
for step in range(200):
    logits = model(x)
    nll = -torch.distributions.Categorical(logits=logits).log_prob(y).mean()
    z = torch.nn.functional.gumbel_softmax(logits, tau=0.5, hard=True, dim=-1)
    guess = (z.argmax(dim=1) == y).float().mean().item()
    loss = nll - 0.01 * (z * torch.nn.functional.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    scheduler.step()
model.eval()
with torch.no_grad():
    accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    state = model.state_dict()
    copy = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    copy.load_state_dict(state)
    same = (copy(x) - model(x)).abs().max().item() == 0.0
result = dict(accuracy=accuracy, same=same, loss=loss.item(), guess=guess, lr=optimizer.param_groups[0]["lr"])
'''


def run_script(import_line):
    scope = {}
    exec(import_line + "\n" + TRAINING_SCRIPT, scope)
    return scope["result"]


def test_a_pytorch_training_script_runs_with_only_the_import_line_changed():
    ours = run_script("import minivae as torch")
    assert ours["same"] and ours["accuracy"] > 0.9 and ours["lr"] == pytest.approx(0.0025)
    torch_or_skip()
    theirs = run_script("import torch")
    assert theirs["same"] and theirs["accuracy"] > 0.9 and theirs["lr"] == ours["lr"]
    assert abs(ours["accuracy"] - theirs["accuracy"]) < 0.08
    assert ours["loss"] < 2 * theirs["loss"] + 0.05
