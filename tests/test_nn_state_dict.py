"""state_dict(destination, prefix, keep_vars), load_state_dict(strict, assign) and nn.Buffer, each against torch's: the
same scenario is run in both libraries and what each registers (parameters, buffers, children, state_dict keys) and
which error each raises are compared step by step."""
import numpy as np
import pytest

import minivae as mv
from minivae import nn

torch = pytest.importorskip("torch")


def _tree(lib):
    """A module with a parameter, a frozen parameter, a persistent and a non-persistent buffer, a tied parameter and
    a submodule used under two names, which has a submodule of its own."""

    class Leaf(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = lib.nn.Parameter(lib.ones(2))
            self.register_buffer("r", lib.zeros(2))

    class Mid(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.leaf = Leaf()
            self.v = lib.nn.Parameter(lib.ones(3))

    class Top(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = lib.nn.Parameter(lib.ones(2))
            self.frozen = lib.nn.Parameter(lib.ones(1), requires_grad=False)
            self.register_buffer("stat", lib.zeros(2))
            self.register_buffer("tmp", lib.zeros(2), persistent=False)
            self.mid = Mid()
            self.tied = self.a
            self.again = self.mid

    return Top()


@pytest.mark.parametrize("prefix", ["", "vae.", "x", "a.b."])
def test_state_dict_prefix_and_destination_as_torchs(prefix):
    """The keys with ``prefix`` put before each as it is (no dot added; nested modules keep their path after it), in
    torch's order, tied and shared ones under each name; ``destination`` is filled and returned. Old code: no prefix
    or destination argument (TypeError)."""
    ours, theirs = _tree(mv), _tree(torch)
    keys = list(theirs.state_dict(prefix=prefix))
    assert list(ours.state_dict(prefix=prefix)) == keys
    assert "mid.leaf.w" in list(ours.state_dict())  # (the nested path itself)
    mine, torchs = {"kept": 1}, {"kept": 1}
    assert ours.state_dict(destination=mine, prefix=prefix) is mine
    assert theirs.state_dict(destination=torchs, prefix=prefix) is torchs
    assert list(mine) == list(torchs) == ["kept", *keys]


def test_keep_vars_gives_the_registered_tensors_and_the_default_host_copies():
    """keep_vars=True: each value is the module's own Parameter or buffer (identity, as torch's); the default gives
    copies (NumPy arrays) that neither follow the module nor change it. Old code: no keep_vars (TypeError)."""
    ours, theirs = _tree(mv), _tree(torch)
    kept, tkept = ours.state_dict(keep_vars=True), theirs.state_dict(keep_vars=True)
    for lib_kept, module in ((kept, ours), (tkept, theirs)):
        for key, value in lib_kept.items():
            path, _, name = key.rpartition(".")
            owner = module.get_submodule(path)
            assert value is getattr(owner, name), key
    assert isinstance(kept["a"], nn.Parameter) and kept["a"].requires_grad and not kept["frozen"].requires_grad
    copies = ours.state_dict()
    assert all(type(v) is np.ndarray for v in copies.values())
    copies["a"][...] = 7
    assert np.array_equal(ours.a.numpy(), np.ones(2))
    ours.a.data[...] = 3
    assert np.array_equal(copies["a"], np.full(2, 7.0))


def _given(lib, like):
    """New tensors for every key of ``like`` (a state_dict), each of its shape, values 2, 3, …"""
    return {k: lib.full(tuple(v.shape), float(i + 2)) for i, (k, v) in enumerate(like.items())}


def test_load_state_dict_assign_makes_the_given_tensors_the_modules_as_torchs():
    """assign=True: each parameter becomes a Parameter of the given tensor's memory with the old requires_grad (a
    frozen one stays frozen), each buffer the given tensor itself; an optimizer made before still holds the old
    parameters, so its step no longer changes the module's (torch's behaviour too). Without assign the values are
    copied into the old tensors. Old code: no assign (TypeError)."""
    results = {}
    for lib in (mv, torch):
        m = _tree(lib)
        old_a, old_frozen = m.a, m.frozen
        opt = lib.optim.SGD([m.a, m.mid.v], lr=1.0)
        given = _given(lib, m.state_dict())
        got = m.load_state_dict(given, assign=True)
        assert not got.missing_keys and not got.unexpected_keys
        assert m.a is not old_a and isinstance(m.a, lib.nn.Parameter) and m.a.requires_grad
        assert isinstance(m.frozen, lib.nn.Parameter) and not m.frozen.requires_grad and m.frozen is not old_frozen
        assert m.stat is given["stat"]
        assert [n for n, _ in m.named_buffers()] == ["stat", "tmp", "mid.leaf.r"]
        with lib.no_grad():
            given["a"][0] = 9.0  # one memory: the module sees it
        a_after_write = float(m.a[0].item())
        (m.a.sum() + m.mid.v.sum()).backward()
        opt.step()  # the old parameters have no gradient: nothing moves
        before = float(m.a[0].item())
        old_a.grad = lib.ones(2) if lib is torch else np.ones(2, np.float32)  # (minivae's .grad is an array)
        opt.step()  # the old one moves, the module's does not
        results[lib.__name__] = (a_after_write, before, float(m.a[0].item()), float(old_a[0].item()),
                                 [float(x) for x in m.state_dict()["mid.leaf.w"]], m.tied is m.a)
    assert results["minivae"] == results["torch"]
    assert results["minivae"][:4] == (9.0, 9.0, 9.0, 0.0)


def test_load_state_dict_assign_of_a_buffer_object_takes_its_persistence_as_torchs():
    """assign=True with an nn.Buffer under a buffer's key registers it as torch's setattr does, with the Buffer's own
    persistence: a non-persistent one leaves state_dict, a persistent one given for a non-persistent name is not
    asked for (the state has no such key), a plain tensor keeps the name's. Old code: always kept persistent."""
    results = {}
    for lib in (mv, torch):
        m = lib.nn.Module()
        m.register_buffer("s", lib.zeros(2))
        m.register_buffer("t", lib.zeros(2))
        given = lib.nn.Buffer(lib.ones(2), persistent=False)
        m.load_state_dict({"s": given, "t": lib.full((2,), 3.0)}, assign=True)
        results[lib.__name__] = (list(m.state_dict()), [n for n, _ in m.named_buffers()], float(m.s[0].item()),
                                 float(m.t[0].item()))
    assert results["minivae"] == results["torch"] == (["t"], ["s", "t"], 1.0, 3.0)


def test_load_state_dict_assign_refuses_a_wrong_shape_and_changes_nothing():
    """A wrong shape is refused under assign too (torch's check), before anything is assigned."""
    m = _tree(mv)
    state = _given(mv, m.state_dict())
    state["mid.v"] = mv.zeros(4)
    before = {k: (getattr(m.get_submodule(k.rpartition(".")[0]), k.rpartition(".")[2])) for k in m.state_dict()}
    with pytest.raises(ValueError, match="mid.v"):
        m.load_state_dict(state, assign=True)
    t = _tree(torch)
    tstate = _given(torch, t.state_dict())
    tstate["mid.v"] = torch.zeros(4)
    with pytest.raises(RuntimeError, match="mid.v"):
        t.load_state_dict(tstate, assign=True)
    for k, v in before.items():
        assert getattr(m.get_submodule(k.rpartition(".")[0]), k.rpartition(".")[2]) is v, k


def test_load_state_dict_without_assign_copies_in_place():
    """The default copies: the module's tensors stay the same objects (the optimizer's) and take the values (a tied
    one the value of its last key, "tied", as torch's)."""
    m, t = _tree(mv), _tree(torch)
    old = m.a
    m.load_state_dict(_given(mv, m.state_dict()))
    t.load_state_dict(_given(torch, t.state_dict()))
    assert m.a is old and m.tied is old
    for k, v in t.state_dict().items():
        assert np.array_equal(m.state_dict()[k], v.numpy()), k
    assert np.array_equal(m.a.numpy(), _given(mv, m.state_dict())["tied"].numpy())


def _scenario(lib):
    """Assignments and deletions of Parameters, Buffers, plain tensors, modules and None; after each step what is
    registered, or the error's type."""

    class Sub(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.k = lib.nn.Parameter(lib.ones(1))

    class M(lib.nn.Module):
        def __init__(self):
            super().__init__()

    m, log = M(), []
    t = lambda: lib.zeros(2)  # noqa: E731
    steps = [
        lambda: setattr(m, "p", lib.nn.Parameter(t())),
        lambda: setattr(m, "b", lib.nn.Buffer(t())),
        lambda: setattr(m, "nb", lib.nn.Buffer(t(), persistent=False)),
        lambda: setattr(m, "sub", Sub()),
        lambda: setattr(m, "plain", t()),
        lambda: setattr(m, "b", t()),  # a plain tensor on a buffer's name: still a buffer, still persistent
        lambda: setattr(m, "nb", t()),  # still not persistent
        lambda: setattr(m, "b", lib.nn.Buffer(t(), persistent=False)),  # the Buffer's persistence now
        lambda: setattr(m, "b", lib.nn.Buffer(t())),
        lambda: setattr(m, "p", lib.nn.Buffer(t())),  # TypeError: a parameter's name
        lambda: setattr(m, "sub", lib.nn.Buffer(t())),  # TypeError: a submodule's name
        lambda: setattr(m, "plain", lib.nn.Buffer(t())),  # KeyError: an attribute already
        lambda: setattr(m, "sub", t()),  # TypeError: a submodule's name takes a module or None
        lambda: setattr(m, "sub", None),  # registered as None
        lambda: setattr(m, "sub", Sub()),
        lambda: setattr(m, "b", lib.nn.Parameter(t())),  # a Parameter on a buffer's name: a parameter
        lambda: setattr(m, "p", None),
        lambda: delattr(m, "nb"),
        lambda: setattr(m, "nb", t()),  # after del: a plain attribute
        lambda: delattr(m, "b"),
        lambda: setattr(m, "b", t()),  # a plain attribute too
        lambda: setattr(m, "q", lib.nn.Parameter(t())),
        lambda: setattr(m, "q", Sub()),  # a module replaces a parameter
        lambda: setattr(m, "nb2", lib.nn.Buffer(t(), persistent=False)),
        lambda: setattr(m, "nb2", Sub()),  # and a buffer
        lambda: setattr(m, "sub", lib.nn.Parameter(t())),  # a Parameter replaces a module
        lambda: m.register_buffer("rb", lib.nn.Buffer(t(), persistent=False)),  # register_buffer's own flag
        lambda: delattr(m, "sub"),
        lambda: setattr(m, "sub", lib.nn.Buffer(t())),
    ]
    for i, step in enumerate(steps):
        try:
            step()
            outcome = "ok"
        except Exception as e:  # (the types are compared)
            outcome = type(e).__name__
        log.append((i, outcome, [n for n, _ in m.named_parameters()], [n for n, _ in m.named_buffers()],
                    list(m.state_dict()), [n for n, _ in m.named_children()], sorted(m._non_persistent_buffers_set),
                    sorted(m._modules), sorted(m._parameters)))
    return log


def test_parameter_buffer_module_assignments_and_deletions_as_torchs():
    """Every step of _scenario registers the same names (parameters, buffers, the state_dict's keys, children, the
    non-persistent set, a module or parameter held as None) and raises the same error type as torch 2.13. Old code:
    no nn.Buffer (AttributeError), and a tensor assigned to a submodule's name silently unregistered it."""
    ours, theirs = _scenario(mv), _scenario(torch)
    for a, b in zip(ours, theirs):
        assert a == b


def test_buffer_shares_memory_and_is_a_tensor():
    """nn.Buffer(t) holds t's memory (torch's detach()), keyword persistent; Buffer() an empty float32 tensor."""
    x = mv.zeros(3)
    b = nn.Buffer(x)
    assert b.data is x.data and b.persistent and not b.requires_grad and isinstance(b, mv.Tensor)
    assert nn.Buffer().shape == (0,) and nn.Buffer().dtype == np.float32
    assert not nn.Buffer(x, persistent=False).persistent
    with pytest.raises(TypeError):
        nn.Buffer(x, False)
    with pytest.raises(TypeError, match="persistent"):
        nn.Buffer(x, persistent=1)
