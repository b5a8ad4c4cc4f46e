"""nn.Module's tree, as torch.nn.Module's: named_modules / modules / named_children / children (order, prefixes, a
shared submodule once), apply (children first), requires_grad_, train's check, parameters(recurse=False), and the
nested repr with extra_repr; the same structure built in torch gives the same names and text."""
import numpy as np
import pytest

import minivae as mv
from minivae import nn


def build(lib):
    """One structure in either library: a shared Linear (registered twice), a nested Sequential, a ModuleList, a
    parameter of the module itself, and a module of one's own with an extra_repr."""

    class Scale(lib.nn.Module):
        def __init__(self, n):
            super_init(self)
            self.n = n
            self.log_scale = lib.nn.Parameter(lib.zeros(n))

        def forward(self, x):
            return x * self.log_scale.exp()

        def extra_repr(self):
            return f"n={self.n}"

    class Net(lib.nn.Module):
        def __init__(self):
            super_init(self)
            shared = lib.nn.Linear(3, 3)
            self.offset = lib.nn.Parameter(lib.zeros(3))
            self.encoder = lib.nn.Sequential(lib.nn.Linear(4, 3), lib.nn.ReLU(), lib.nn.Sequential(shared, lib.nn.Tanh()))
            self.blocks = lib.nn.ModuleList([lib.nn.Linear(3, 3), lib.nn.Linear(3, 3), Scale(3)])
            self.tied = shared  # the same Linear under a second name
            self.head = lib.nn.Linear(3, 2, bias=False)

        def forward(self, x):
            return x

    def super_init(m):
        if lib is not mv:
            lib.nn.Module.__init__(m)

    return Net()


NAMES = ["", "encoder", "encoder.0", "encoder.1", "encoder.2", "encoder.2.0", "encoder.2.1", "blocks", "blocks.0",
         "blocks.1", "blocks.2", "head"]


def test_named_modules_order_prefixes_and_a_shared_module_once():
    net = build(mv)
    assert [n for n, _ in net.named_modules()] == NAMES  # "tied" is encoder.2.0, listed once
    assert [m for _, m in net.named_modules()] == list(net.modules())
    assert net.tied is dict(net.named_modules())["encoder.2.0"]
    every = [n for n, _ in net.named_modules(remove_duplicate=False)]
    assert every == NAMES[:-1] + ["tied", "head"]
    assert [n for n, _ in net.encoder.named_modules(prefix="enc")] == ["enc", "enc.0", "enc.1", "enc.2", "enc.2.0", "enc.2.1"]
    # the direct children, each once among them (tied is a child here, and a grandchild through the encoder)
    assert [n for n, _ in net.named_children()] == ["encoder", "blocks", "tied", "head"]
    assert net.children() == [net.encoder, net.blocks, net.tied, net.head]
    net.again = net.blocks  # a child under a second name: once
    assert [n for n, _ in net.named_children()] == ["encoder", "blocks", "tied", "head"]
    assert len(list(net.modules())) == len({id(m) for m in net.modules()}) == 12


def test_named_parameters_prefix_is_joined_by_a_dot():
    """torch's prefix + "." + name: named_parameters(prefix="enc") gave "enc0.weight" (and "encoffset")."""
    net = build(mv)
    assert [n for n, _ in net.encoder.named_parameters(prefix="enc")] == ["enc.0.weight", "enc.0.bias", "enc.2.0.weight",
                                                                        "enc.2.0.bias"]
    assert [n for n, _ in net.named_parameters(prefix="net", recurse=False)] == ["net.offset"]


def test_named_modules_and_parameters_are_torchs():
    torch = pytest.importorskip("torch")
    ours, theirs = build(mv), build(torch)
    for kw in ({}, {"remove_duplicate": False}, {"prefix": "net"}):
        assert [n for n, _ in ours.named_modules(**kw)] == [n for n, _ in theirs.named_modules(**kw)], kw
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert [type(m).__name__ for m in ours.modules()] == [type(m).__name__ for m in theirs.modules()]
    for kw in ({}, {"recurse": False}, {"prefix": "net"}, {"prefix": "net", "recurse": False},
               {"remove_duplicate": False}):
        assert [n for n, _ in ours.named_parameters(**kw)] == [n for n, _ in theirs.named_parameters(**kw)], kw
    assert len(ours.parameters(recurse=False)) == len(list(theirs.parameters(recurse=False))) == 1
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_a_module_twice_in_a_sequential_runs_twice():
    """One ReLU between two layers (as torch code often has it): named_children lists it once, the Sequential's
    layers, iteration and indexing see both places."""
    act = nn.ReLU()
    seq = nn.Sequential(nn.Linear(2, 2), act, nn.Linear(2, 2), act)
    assert len(seq) == 4 and seq.layers[3] is act and list(seq)[3] is act and seq[-1] is act
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2"]
    x = mv.tensor(np.array([[1.0, -2.0]]))
    h = seq[2](seq[0](x).relu()).relu()
    np.testing.assert_array_equal(seq(x).numpy(), h.numpy())


def test_apply_visits_children_first_and_returns_self():
    net, order = build(mv), []
    assert net.apply(lambda m: order.append(type(m).__name__)) is net
    # each child's tree, then the module: the shared Linear twice (in the encoder, and as the child "tied"), as torch's
    assert order == ["Linear", "ReLU", "Linear", "Tanh", "Sequential", "Sequential", "Linear", "Linear", "Scale",
                     "ModuleList", "Linear", "Linear", "Net"]


def test_apply_order_is_torchs():
    torch = pytest.importorskip("torch")
    orders = []
    for lib in (mv, torch):
        net, order = build(lib), []
        assert net.apply(lambda m, order=order: order.append(type(m).__name__)) is net
        orders.append(order)
    assert orders[0] == orders[1]


def test_apply_reinitialises_every_linear():
    net = build(mv)

    def zero_linear(m):
        if isinstance(m, nn.Linear):
            m.weight.data[...] = 0

    net.apply(zero_linear)
    assert all(not p.data.any() for n, p in net.named_parameters() if n.endswith("weight"))


def test_requires_grad_freezes_every_parameter_and_returns_self():
    net = build(mv)
    assert net.encoder.requires_grad_(False) is net.encoder
    frozen = {n for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen == {"encoder.0.weight", "encoder.0.bias", "encoder.2.0.weight", "encoder.2.0.bias"}
    assert len(net.state_dict()) == 13  # frozen ones are registered and saved all the same (tied: twice)
    x = mv.tensor(np.ones((2, 4), np.float32))
    net.head(net.blocks[0](net.encoder(x))).sum().backward()
    assert net.encoder[0].weight.grad is None and net.blocks[0].weight.grad is not None
    assert net.requires_grad_() is net and all(p.requires_grad for p in net.parameters())


def test_train_takes_a_bool_only_and_recurses():
    net = build(mv)
    with pytest.raises(ValueError, match="mode must be True or False, got 'False'"):
        net.train("False")  # a non-empty string is truthy: it would have set training mode
    assert net.training  # unchanged
    assert net.train(False) is net and not any(m.training for m in net.modules())
    assert net.train() is net and all(m.training for m in net.modules())


LINEAR = "Linear(in_features=784, out_features=512, bias=True)"


def test_repr_of_linear_sequential_mlp_and_a_module_of_ones_own():
    assert repr(nn.Linear(784, 512)) == LINEAR
    assert repr(nn.Linear(3, 2, bias=False)) == "Linear(in_features=3, out_features=2, bias=False)"
    assert repr(nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Sequential(nn.Linear(3, 3), nn.Tanh()))) == (
        "Sequential(\n"
        f"  (0): {LINEAR}\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Linear(in_features=3, out_features=3, bias=True)\n"
        "    (1): Tanh()\n"
        "  )\n"
        ")")
    assert repr(nn.MLP((784, 512, 20), "relu")) == f"MLP(\n  (0): {LINEAR}\n  (1): ReLU()\n" \
        "  (2): Linear(in_features=512, out_features=20, bias=True)\n)"
    assert repr(nn.Sequential()) == "Sequential()" and repr(nn.ModuleList()) == "ModuleList()"
    assert repr(nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU()])) == (
        "ModuleList(\n  (0-1): 2 x Linear(in_features=2, out_features=2, bias=True)\n  (2): ReLU()\n)")

    class Block(nn.Module):
        def __init__(self):
            self.lin = nn.Linear(2, 2)

        def extra_repr(self):
            return "first line\nsecond line"

    assert repr(Block()) == ("Block(\n  first line\n  second line\n"
                             "  (lin): Linear(in_features=2, out_features=2, bias=True)\n)")


def test_repr_is_torchs():
    torch = pytest.importorskip("torch")
    ours, theirs = build(mv), build(torch)
    assert repr(ours) == repr(theirs)
    act = (nn.ReLU(), torch.nn.ReLU())
    pairs = [(nn.Sequential(nn.Linear(784, 512), act[0], nn.Linear(512, 20), act[0]),
              torch.nn.Sequential(torch.nn.Linear(784, 512), act[1], torch.nn.Linear(512, 20), act[1])),
             (nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.GELU(), nn.GELU(), nn.Linear(2, 2)]),
              torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), torch.nn.GELU(), torch.nn.GELU(),
                                   torch.nn.Linear(2, 2)]))]
    for a, b in pairs:
        assert repr(a) == repr(b)
    mlp = nn.MLP((784, 512, 256, 20), "leaky_relu")
    seq = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.LeakyReLU(), torch.nn.Linear(512, 256),
                              torch.nn.LeakyReLU(), torch.nn.Linear(256, 20))
    assert repr(mlp) == "MLP" + repr(seq)[len("Sequential"):]
