"""nn.Module's registries as torch.nn.Module's: buffers (register_buffer, persistent or not, None, named_buffers,
state_dict and load_state_dict, ``to``), register_parameter / add_module / register_module with torch's checks of
the name, get_submodule / get_parameter / get_buffer with torch's AttributeError messages, load_state_dict's
``strict`` and its (missing_keys, unexpected_keys), ModuleDict / ParameterList / ParameterDict, and
zero_grad(set_to_none). The same structures are built in torch and compared where torch defines the behaviour."""
import numpy as np
import pytest

import minivae as mv
from minivae import nn
from minivae.random import Generator


def torch_or_skip():
    return pytest.importorskip("torch")


def build(lib):
    """One structure in either library: a module with a parameter, a persistent and a non-persistent buffer, a None
    buffer, a buffer shared by two names, and a submodule (a Sequential of a Linear) with a buffer of its own."""

    class Net(lib.nn.Module):
        def __init__(self):
            if lib is not mv:
                super().__init__()
            self.scale = lib.nn.Parameter(lib.ones(3))
            shared = lib.zeros(3)
            self.register_buffer("running", shared)
            self.register_buffer("count", lib.zeros(1), persistent=False)
            self.register_buffer("empty", None)
            self.body = lib.nn.Sequential(lib.nn.Linear(3, 2))
            self.body[0].register_buffer("mask", lib.ones(2))
            self.register_buffer("alias", shared)

        def forward(self, x):
            return self.body(x * self.scale + self.running)

    return Net()


def test_buffers_are_listed_and_saved_as_torchs():
    """named_buffers (persistent and not, a shared one once unless remove_duplicate=False, None skipped), buffers(),
    state_dict's keys in torch's order (a module's parameters, its persistent buffers, then its submodules'), and no
    buffer among the parameters. Old code: no register_buffer (AttributeError)."""
    torch = torch_or_skip()
    ours, theirs = build(mv), build(torch)
    for kw in ({}, {"remove_duplicate": False}, {"recurse": False}, {"prefix": "net"}):
        assert [n for n, _ in ours.named_buffers(**kw)] == [n for n, _ in theirs.named_buffers(**kw)], kw
    assert len(ours.buffers()) == len(list(theirs.buffers())) == 3
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert not {id(b) for b in ours.buffers()} & {id(p) for p in ours.parameters()}
    assert ours.running is ours.alias and ours.empty is None


def test_a_buffer_never_gets_a_gradient_and_assignment_replaces_it():
    """A buffer is used in forward and backward but gets no .grad, even one made from a tensor that requires grad
    (held detached: its memory, not the object). Assigning a tensor to its name replaces the buffer and keeps it a
    buffer (persistence kept); None is allowed; anything else is torch's TypeError; a Parameter makes it a parameter."""
    m = build(mv)
    w = mv.tensor(np.full(3, 2.0, np.float32), requires_grad=True)
    m.register_buffer("w", w)
    assert m.w.data is w.data and not m.w.requires_grad
    out = (m(mv.ones(4, 3)) * m.w[:2]).sum()
    out.backward()
    assert all(b.grad is None for b in m.buffers()) and w.grad is None
    assert m.scale.grad is not None
    new = mv.zeros(5)
    m.count = new
    assert m.count is new and "count" in dict(m.named_buffers()) and "count" not in m.state_dict()
    m.running = None
    assert "running" not in m.state_dict() and m.running is None
    m.running = mv.ones(3)
    assert "running" in m.state_dict()
    with pytest.raises(TypeError, match="cannot assign 'int' as buffer 'running'"):
        m.running = 3
    m.running = nn.Parameter(mv.ones(3))
    assert "running" in dict(m.named_parameters()) and "running" not in dict(m.named_buffers())
    del m.w
    assert "w" not in dict(m.named_buffers()) and not hasattr(m, "w")


def _error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001  (the error is the result compared)
        return type(e), str(e)
    return None


@pytest.mark.parametrize("call", [
    lambda lib, m: m.register_buffer("a.b", lib.zeros(1)),
    lambda lib, m: m.register_buffer("", lib.zeros(1)),
    lambda lib, m: m.register_buffer("scale", lib.zeros(1)),  # a parameter's name
    lambda lib, m: m.register_buffer("forward", lib.zeros(1)),  # a method's
    lambda lib, m: m.register_buffer(3, lib.zeros(1)),
    lambda lib, m: m.register_parameter("a.b", None),
    lambda lib, m: m.register_parameter("", None),
    lambda lib, m: m.register_parameter("running", None),  # a buffer's name
    lambda lib, m: m.add_module("a.b", lib.nn.Identity()),
    lambda lib, m: m.add_module("", lib.nn.Identity()),
    lambda lib, m: m.add_module("scale", lib.nn.Identity()),
    lambda lib, m: m.add_module("x", 3),
    lambda lib, m: m.register_module("training", lib.nn.Identity()),
], ids=["buffer-dot", "buffer-empty", "buffer-parameter", "buffer-method", "buffer-int", "parameter-dot",
        "parameter-empty", "parameter-buffer", "module-dot", "module-empty", "module-parameter", "module-int",
        "module-attribute"])
def test_bad_names_are_refused_with_torchs_errors(call):
    """Each bad registration raises torch's error type with torch's message."""
    torch = torch_or_skip()
    ours, theirs = _error(lambda: call(mv, build(mv))), _error(lambda: call(torch, build(torch)))
    assert ours is not None and ours == theirs


def test_registered_values_of_the_wrong_kind_are_refused_naming_them():
    m = build(mv)
    with pytest.raises(TypeError, match="cannot assign 'ndarray' object to buffer 'b'"):
        m.register_buffer("b", np.zeros(2))
    with pytest.raises(TypeError, match="cannot assign 'ndarray' object to parameter 'p'"):
        m.register_parameter("p", np.zeros(2))
    x = mv.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="Cannot assign non-leaf Tensor to parameter 'p'"):
        m.register_parameter("p", x * 2)


@pytest.mark.parametrize("value", ["frozen tensor", "module", "array"])
def test_a_parameter_name_refuses_a_value_that_is_not_a_parameter_as_torchs(value):
    """torch raises TypeError; minivae had unregistered the parameter silently (the model's parameters() and so its
    optimizer then left it out). The parameter stays as it was."""
    torch = torch_or_skip()
    make = {"frozen tensor": lambda lib: lib.zeros(3), "module": lambda lib: lib.nn.Identity(),
            "array": lambda lib: np.zeros(3)}[value]
    for lib, m in ((mv, build(mv)), (torch, build(torch))):
        before = m.scale
        with pytest.raises(TypeError, match=r"^cannot assign '[\w.]+' as parameter 'scale' \("):
            m.scale = make(lib)
        assert m.scale is before and [n for n, _ in m.named_parameters()][0] == "scale"


def test_register_parameter_add_module_and_none_entries_as_torchs():
    """register_parameter and add_module register as torch's (None entries listed nowhere, and in repr as None)."""
    torch = torch_or_skip()
    libs = {}
    for lib in (mv, torch):
        m = lib.nn.Module()
        m.register_parameter("w", lib.nn.Parameter(lib.ones(2)))
        m.register_parameter("bias", None)
        m.add_module("enc", lib.nn.Linear(2, 2))
        m.register_module("dec", None)
        m.add_module("act", lib.nn.ReLU())
        libs[lib] = m
    ours, theirs = libs[mv], libs[torch]
    for f in (lambda m: [n for n, _ in m.named_parameters()], lambda m: list(m.state_dict()),
              lambda m: [n for n, _ in m.named_modules()], lambda m: [n for n, _ in m.named_children()], repr):
        assert f(ours) == f(theirs)
    assert ours.bias is None and ours.dec is None
    ours.bias = None  # stays a (None) parameter, as torch's
    assert "bias" in ours._parameters


def nested(lib):
    m = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.ReLU(), lib.nn.Sequential(lib.nn.Linear(4, 2)))
    m[2].register_buffer("rm", lib.zeros(2))
    return m


@pytest.mark.parametrize("call", [
    lambda m: m.get_submodule("2.0"), lambda m: m.get_submodule(""), lambda m: m.get_submodule("2.5"),
    lambda m: m.get_submodule("0.weight"), lambda m: m.get_submodule("3"),
    lambda m: m.get_parameter("2.0.weight"), lambda m: m.get_parameter("1.weight"),
    lambda m: m.get_parameter("2.rm"), lambda m: m.get_parameter("4.weight"), lambda m: m.get_parameter("0.in_features"),
    lambda m: m.get_buffer("2.rm"), lambda m: m.get_buffer("0.weight"), lambda m: m.get_buffer("2.nothing"),
], ids=["sub", "self", "sub-missing", "sub-not-module", "sub-missing-top", "param", "param-missing",
        "param-buffer", "param-path-missing", "param-attribute", "buffer", "buffer-parameter", "buffer-missing"])
def test_get_submodule_parameter_and_buffer_as_torchs(call):
    """The object at a dotted path (the same place as torch's), or torch's AttributeError naming the missing piece."""
    torch = torch_or_skip()
    ours, theirs = nested(mv), nested(torch)
    got, want = _error(lambda: call(ours)), _error(lambda: call(theirs))
    assert got == want
    if want is None:  # the same place: the same name among the module's named members
        names = {id(v): k for k, v in [*ours.named_modules(), *ours.named_parameters(), *ours.named_buffers()]}
        tnames = {id(v): k for k, v in [*theirs.named_modules(), *theirs.named_parameters(), *theirs.named_buffers()]}
        assert names[id(call(ours))] == tnames[id(call(theirs))]


def test_a_none_buffer_is_a_buffer_and_a_none_parameter_is_no_parameter_as_torchs():
    torch = torch_or_skip()
    for lib in (mv, torch):
        m = nested(lib)
        m[2].register_buffer("none_b", None)
        m[2].register_parameter("none_p", None)
        assert m.get_buffer("2.none_b") is None
        with pytest.raises(AttributeError, match="^`none_p` is not an nn.Parameter$"):
            m.get_parameter("2.none_p")
        with pytest.raises(AttributeError, match="^`none_p` is not a buffer$"):
            m.get_buffer("2.none_p")


def test_load_state_dict_strict_false_loads_what_matches_and_returns_torchs_keys():
    """strict=False loads the keys both have and returns (missing_keys, unexpected_keys) as torch's named tuple
    (its repr too); strict=True refuses naming both lists; a shape mismatch is refused in both modes, naming the key
    and both shapes, before anything is copied. Old code: no ``strict`` (TypeError) and None returned."""
    torch = torch_or_skip()
    ours, theirs = build(mv), build(torch)
    state = {k: v + 1 for k, v in ours.state_dict().items() if k != "body.0.bias"}
    state["extra"] = np.zeros(1, np.float32)
    got = ours.load_state_dict(state, strict=False)
    tstate = {k: v for k, v in theirs.state_dict().items() if k != "body.0.bias"}  # (torch's Linear weight is (out, in))
    want = theirs.load_state_dict({**tstate, "extra": torch.zeros(1)}, strict=False)
    assert got == tuple(want) and got.missing_keys == ["body.0.bias"] and got.unexpected_keys == ["extra"]
    assert repr(got) == repr(want).replace("_IncompatibleKeys", "IncompatibleKeys")
    for k, v in ours.state_dict().items():
        if k != "body.0.bias":
            np.testing.assert_array_equal(v, state[k], err_msg=k)
    assert repr(ours.load_state_dict(ours.state_dict())) == repr(theirs.load_state_dict(theirs.state_dict())) \
        == "<All keys matched successfully>"
    with pytest.raises(ValueError, match=r"missing \['body.0.bias'\], unexpected \['extra'\]"):
        ours.load_state_dict(state)
    before = ours.state_dict()
    bad = {**before, "running": np.zeros(3, np.float32) + 7, "body.0.mask": np.zeros(3, np.float32)}
    for strict in (True, False):
        with pytest.raises(ValueError, match=r"body\.0\.mask is float32 of shape \(3,\), the model expects float32 of "
                                             r"shape \(2,\)"):
            ours.load_state_dict(bad, strict=strict)
        for k, v in ours.state_dict().items():
            np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_persistent_buffers_round_trip_and_non_persistent_ones_are_left_alone(tmp_path):
    m, copy = build(mv), build(mv)
    m.running.data[...] = [1, 2, 3]
    m.count.data[...] = 5
    m.body[0].mask.data[...] = [0, 1]
    m.save(tmp_path / "m.npz")
    copy.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(copy.running.data, [1, 2, 3])
    np.testing.assert_array_equal(copy.alias.data, [1, 2, 3])
    np.testing.assert_array_equal(copy.body[0].mask.data, [0, 1])
    np.testing.assert_array_equal(copy.count.data, [0])  # not saved, not loaded


def test_to_moves_the_buffers_in_place_as_the_parameters():
    """``to`` moves every buffer (the same objects; ``device`` follows) and back, with no buffer left behind. Old code:
    buffers stayed on the host."""
    from minivae._backend import use_cuda_kernels, use_numba
    from tests.strict_array import StrictArray, emulating
    with use_numba(False), use_cuda_kernels(False), emulating():
        m = build(mv)
        buffers = m.buffers()
        m.to("cuda")
        assert [id(b) for b in m.buffers()] == [id(b) for b in buffers]
        assert all(isinstance(b.data, StrictArray) for b in m.buffers())
        only = nn.Module()
        only.register_buffer("b", mv.zeros(2))
        assert only.device == "cpu" and only.to("cuda").device == "cuda"
        m.to("cpu")
        assert all(isinstance(b.data, np.ndarray) for b in m.buffers())


def containers(lib):
    """A ModuleDict, a ParameterList and a ParameterDict, filled in the ways torch's allow."""
    m = lib.nn.Module()
    m.heads = lib.nn.ModuleDict({"b": lib.nn.Linear(2, 2), "a": lib.nn.ReLU()})
    m.heads.update([("c", lib.nn.Linear(2, 1))])
    m.heads["b"] = lib.nn.Linear(2, 3)  # replaced, in place in the order
    m.heads.update({"d": lib.nn.Tanh()})
    m.params = lib.nn.ParameterList([lib.nn.Parameter(lib.ones(2)), lib.zeros(3)])
    m.params.append(lib.ones(1))
    m.named = lib.nn.ParameterDict({"y": lib.ones(2)})
    m.named["x"] = lib.nn.Parameter(lib.zeros(1))
    m.named.update([("z", lib.ones(3))])
    return m


def test_module_dict_parameter_list_and_dict_as_torchs():
    """Keys, order, lengths, membership, pop, the registered names and the state_dict keys, as torch's; a plain
    tensor put in a ParameterList or ParameterDict becomes a parameter that requires grad. Old code: none of the
    three existed."""
    torch = torch_or_skip()
    ours, theirs = containers(mv), containers(torch)
    for f in (lambda m: list(m.heads.keys()), lambda m: [type(v).__name__ for v in m.heads.values()],
              lambda m: [k for k, _ in m.heads.items()], lambda m: list(m.heads), lambda m: len(m.heads),
              lambda m: ("a" in m.heads, "q" in m.heads), lambda m: len(m.params),
              lambda m: [tuple(p.shape) for p in m.params], lambda m: tuple(m.params[-1].shape),
              lambda m: [tuple(p.shape) for p in m.params[1:]], lambda m: list(m.named.keys()),
              lambda m: [tuple(v.shape) for v in m.named.values()], lambda m: ("x" in m.named, m.named.get("q")),
              lambda m: [n for n, _ in m.named_parameters()], lambda m: list(m.state_dict()),
              lambda m: [p.requires_grad for p in m.parameters()]):
        assert f(ours) == f(theirs)
    for m in (ours, theirs):
        m.heads.pop("a")
        del m.named["y"]
        m.params[0] = m.params[2]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(ours.heads) == ["b", "c", "d"] and not hasattr(ours.heads, "a")
    # (the type of each error, and torch's message where it is text: not a KeyError's repr, nor "; isint", its typo)
    for call, message in ((lambda m: m.heads.update([("e",)]), True), (lambda m: m.heads.update(3), True),
                          (lambda m: m.heads["q"], False), (lambda m: m.params[7], True),
                          (lambda m: m.heads.update([3]), False),
                          (lambda m: m.heads.__setitem__("keys", m.heads["b"]), True)):
        got, want = _error(lambda call=call: call(ours)), _error(lambda call=call: call(theirs))
        assert got is not None and got[0] == want[0]
        if message:
            assert got == want


def test_module_dict_runs_its_modules_and_trains():
    heads = nn.ModuleDict({"mu": nn.Linear(3, 2, rng=Generator(0)), "log_var": nn.Linear(3, 2, rng=Generator(1))})
    x = mv.ones(4, 3)
    loss = sum((heads[k](x) ** 2).sum() for k in heads)
    loss.backward()
    assert len(heads.parameters()) == 4 and all(p.grad is not None for p in heads.parameters())
    heads.clear()
    assert len(heads) == 0 and heads.parameters() == []


def test_zero_grad_sets_to_none_by_default_or_zeroes_in_place_as_torch_2():
    """zero_grad() lets the gradients go (torch 2's set_to_none=True); zero_grad(set_to_none=False) writes 0 into
    each existing gradient, the same array, and leaves a missing one None. Old code: no set_to_none (TypeError)."""
    torch = torch_or_skip()
    ours, theirs = nn.Linear(2, 3), torch.nn.Linear(2, 3)
    ours.bias.requires_grad_(False)
    theirs.bias.requires_grad_(False)
    (ours(mv.ones(1, 2)).sum()).backward()
    theirs(torch.ones(1, 2)).sum().backward()
    grad = ours.weight.grad
    ours.zero_grad(set_to_none=False)
    theirs.zero_grad(set_to_none=False)
    assert ours.weight.grad is grad and not grad.any() and ours.bias.grad is None
    assert not theirs.weight.grad.any() and theirs.bias.grad is None
    ours.zero_grad()
    theirs.zero_grad()
    assert ours.weight.grad is None and theirs.weight.grad is None


def test_module_zero_grad_is_the_optimizers_rule():
    """A read-only gradient set by hand (NumPy's broadcast_to) is replaced by zeros, as the optimizers' zero_grad does
    (the module's wrote into it: NumPy's "assignment destination is read-only"); a flag that is not a bool is refused."""
    m = nn.Linear(2, 3)
    m.weight.grad = np.broadcast_to(np.ones(3, np.float32), (2, 3))
    m.zero_grad(set_to_none=False)
    assert m.weight.grad.shape == (2, 3) and m.weight.grad.dtype == np.float32 and not m.weight.grad.any()
    with pytest.raises(TypeError, match="set_to_none"):
        m.zero_grad(set_to_none="no")


def test_bce_loss_weight_is_a_buffer_never_a_parameter():
    """BCELoss(weight) holds its weight as a buffer, as torch's: in state_dict, not in parameters(), and no gradient
    reaches it. Old code: a weight that required grad was registered as a parameter (an optimizer trained it)."""
    torch = torch_or_skip()
    w = mv.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    loss = nn.BCELoss(w)
    assert loss.parameters() == [] and [n for n, _ in loss.named_buffers()] == ["weight"]
    assert list(loss.state_dict()) == list(torch.nn.BCELoss(torch.ones(2)).state_dict()) == ["weight"]
    x = mv.tensor(np.array([0.3, 0.6], np.float32), requires_grad=True)
    out = loss(x, mv.tensor(np.array([0.0, 1.0], np.float32)))
    out.backward()
    tx = torch.tensor([0.3, 0.6], requires_grad=True)
    want = torch.nn.BCELoss(torch.tensor([1.0, 2.0]))(tx, torch.tensor([0.0, 1.0]))
    want.backward()
    np.testing.assert_allclose(out.item(), want.item(), rtol=1e-6)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-6)
    assert w.grad is None and loss.weight.grad is None
    assert nn.BCELoss().state_dict() == {} and nn.BCELoss(np.ones(2)).weight.shape == (2,)
