"""nn.RNN, GRU, LSTM and their cells against torch's: a torch module's state_dict loaded into ours, then the outputs,
the final states and the gradients of every parameter, of the input and of the given initial states equal torch's
(float64 and float32; several layers, both directions, batch_first, no bias, an unbatched input, given h0/c0), for a
random upstream gradient. Ours loads into torch's too. The torch-free checks are in tests/test_rnn.py."""
import numpy as np
import pytest

import minivae as mv
from minivae import nn
from minivae.random import Generator

torch = pytest.importorskip("torch")

TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}
MODULES = {"rnn_tanh": ("RNN", {}), "rnn_relu": ("RNN", {"nonlinearity": "relu"}), "gru": ("GRU", {}),
           "lstm": ("LSTM", {}), "lstm_proj": ("LSTM", {"proj_size": 2})}
OPTIONS = [{}, {"batch_first": True}, {"num_layers": 2, "bidirectional": True}, {"bias": False},
           {"unbatched": True, "num_layers": 2}, {"given": True, "bidirectional": True, "batch_first": True},
           {"given": True, "unbatched": True, "bidirectional": True}]


def torch_pair(name, kw, dtype, **options):
    """A torch module and ours of the same class and options, ours loaded from torch's state_dict."""
    torch.manual_seed(0)
    theirs = getattr(torch.nn, name)(3, 5, **kw, **options, dtype=TORCH_DTYPE[dtype])
    ours = getattr(nn, name)(3, 5, **kw, **options, dtype=dtype, rng=Generator(1))
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return theirs, ours


def flat(out):
    """The tensors a module returns, in order: output, h_n (and c_n), or a cell's h' (and c')."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat(o)]
    return [out]


def compare(theirs, ours, t_inputs, m_inputs, dtype, rng):
    """Call both, compare every result, then back-propagate the same random upstream gradient through every result
    and compare the gradients of every parameter and every input that requires grad."""
    t_out, m_out = flat(theirs(*t_inputs)), flat(ours(*m_inputs))
    assert len(t_out) == len(m_out)
    upstream = [rng.normal(size=tuple(t.shape)).astype(dtype) for t in t_out]
    for t, m in zip(t_out, m_out):
        assert m.dtype == dtype and m.shape == tuple(t.shape)
        np.testing.assert_allclose(m.numpy(), t.detach().numpy(), **TOL[dtype])
    sum((t * torch.tensor(g)).sum() for t, g in zip(t_out, upstream)).backward()
    sum((m * mv.tensor(g)).sum() for m, g in zip(m_out, upstream)).backward()
    for name, p in theirs.named_parameters():
        np.testing.assert_allclose(ours.get_parameter(name).grad, p.grad.numpy(), **TOL[dtype], err_msg=name)
    inputs = list(zip(flat(t_inputs), flat(m_inputs)))
    assert inputs and all(t.requires_grad for t, _ in inputs)
    for t, m in inputs:
        np.testing.assert_allclose(m.grad, t.grad.numpy(), **TOL[dtype])


def tensors(arrays):
    return ([None if a is None else torch.tensor(a, requires_grad=True) for a in arrays],
            [None if a is None else mv.tensor(a, requires_grad=True) for a in arrays])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", sorted(MODULES))
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "default")
def test_module_values_and_gradients_are_torchs(mode, options, dtype):
    options = dict(options)
    unbatched, given_state = options.pop("unbatched", False), options.pop("given", False)
    name, kw = MODULES[mode]
    theirs, ours = torch_pair(name, kw, dtype, **options)
    rng = np.random.default_rng(5)
    L, N, D, layers = 4, 2, 2 if options.get("bidirectional") else 1, options.get("num_layers", 1)
    batch = () if unbatched else (N,)
    x = rng.normal(size=(N, L, 3) if options.get("batch_first") and not unbatched else (L, *batch, 3)).astype(dtype)
    sizes = [kw.get("proj_size") or 5, 5][:2 if name == "LSTM" else 1]  # (h0 of proj_size, c0 of hidden_size)
    states = [rng.normal(size=(D * layers, *batch, size)).astype(dtype) for size in sizes]
    (tx, *ts), (mx, *ms) = tensors([x, *states])
    if not given_state:
        t_inputs, m_inputs = [tx], [mx]
    elif name == "LSTM":
        t_inputs, m_inputs = [tx, tuple(ts)], [mx, tuple(ms)]
    else:
        t_inputs, m_inputs = [tx, ts[0]], [mx, ms[0]]
    compare(theirs, ours, t_inputs, m_inputs, dtype, rng)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, kw", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}), ("GRUCell", {}),
                                      ("LSTMCell", {}), ("GRUCell", {"bias": False})])
@pytest.mark.parametrize("batched, given_state", [(True, True), (True, False), (False, True)])
def test_cell_values_and_gradients_are_torchs(name, kw, dtype, batched, given_state):
    theirs, ours = torch_pair(name, kw, dtype)
    rng = np.random.default_rng(6)
    batch = (2,) if batched else ()
    x, h, c = (rng.normal(size=(*batch, n)).astype(dtype) for n in (3, 5, 5))
    (tx, th, tc), (mx, mh, mc) = tensors([x, h, c])
    if not given_state:
        t_inputs, m_inputs = [tx], [mx]
    elif name == "LSTMCell":
        t_inputs, m_inputs = [tx, (th, tc)], [mx, (mh, mc)]
    else:
        t_inputs, m_inputs = [tx, th], [mx, mh]
    compare(theirs, ours, t_inputs, m_inputs, dtype, rng)


def test_our_state_dict_loads_into_torchs_module():
    """Keys, shapes and order are torch's: our state_dict loads (strict) into torch's module, which then computes
    our outputs."""
    ours = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64, rng=Generator(2))
    theirs = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).normal(size=(2, 5, 3))
    y, (h, c) = ours(mv.tensor(x))
    ty, (th, tc) = theirs(torch.tensor(x))
    for a, b in ((y, ty), (h, th), (c, tc)):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_reprs_are_torchs():
    for name, args, kw in [("GRU", (3, 4), dict(num_layers=2, bias=False, batch_first=True, dropout=0.5,
                                                bidirectional=True)),
                           ("LSTM", (3, 4), {}), ("RNNCell", (3, 4), dict(nonlinearity="relu", bias=False)),
                           ("LSTMCell", (2, 5), {})]:
        assert repr(getattr(nn, name)(*args, **kw)) == repr(getattr(torch.nn, name)(*args, **kw))
