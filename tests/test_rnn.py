"""Recurrent layers (nn.RNNCell, GRUCell, LSTMCell, RNN, GRU, LSTM) without torch: values against a NumPy reference
written out step by step from torch's equations in float64; float64 gradchecks by hypothesis of every parameter's,
the input's and the initial states' gradients over small random shapes and options; torch's parameter names, shapes
and init; state_dict round trip; to(dtype); dropout between layers in training mode only; a 3000-step sequence
through the (iterative) backward pass; the device stand-in (no copy to the host); refusals.
The same modules against torch itself: tests/test_rnn_torch.py."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import minivae as mv
import minivae.functional as F
from minivae import nn, ops
from minivae.random import Generator
from tests.strict_array import assert_device_run_is_the_cpus

MODES = {"rnn_tanh": (nn.RNN, {}), "rnn_relu": (nn.RNN, {"nonlinearity": "relu"}), "gru": (nn.GRU, {}),
         "lstm": (nn.LSTM, {})}


# ---- the reference, written out from torch's equations -----------------------------------------------------------
def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def reference_step(mode, x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr=None):
    """One step of torch's cell, each gate from its own rows of the weights (torch's docs' equations); the LSTM's h
    projected by ``w_hr`` (P, H) where given."""
    H = w_hh.shape[0] // {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}[mode]
    b_ih = np.zeros(w_ih.shape[0]) if b_ih is None else b_ih
    b_hh = np.zeros(w_hh.shape[0]) if b_hh is None else b_hh

    def gate(k, inp, state):  # W_i{k} x + b_i{k} and W_h{k} h + b_h{k} for the k-th block of H rows
        rows = slice(k * H, (k + 1) * H)
        return inp @ w_ih[rows].T + b_ih[rows], state @ w_hh[rows].T + b_hh[rows]
    if mode in ("rnn_tanh", "rnn_relu"):
        a = sum(gate(0, x, h))
        return (np.tanh(a) if mode == "rnn_tanh" else np.maximum(a, 0)), None
    if mode == "gru":
        r = sigmoid(sum(gate(0, x, h)))
        z = sigmoid(sum(gate(1, x, h)))
        xn, hn = gate(2, x, h)
        n = np.tanh(xn + r * hn)
        return (1 - z) * n + z * h, None
    i, f, g, o = (gate(k, x, h) for k in range(4))
    i, f, g, o = sigmoid(sum(i)), sigmoid(sum(f)), np.tanh(sum(g)), sigmoid(sum(o))
    c = f * c + i * g
    return (o * np.tanh(c) if w_hr is None else (o * np.tanh(c)) @ w_hr.T), c


def reference(mode, state, x, num_layers, bidirectional, h0=None, c0=None, masks=None):
    """torch's multi-layer RNN over x (L, N, in): each layer's directions (the reverse one run from t = L−1 down to
    0, its outputs stored at their own t), joined along the features; ``masks[k]`` multiplies layer k's output
    (dropout). Returns output (L, N, D·H), h_n and c_n (D·num_layers, N, H)."""
    L, N, _ = x.shape
    D = 2 if bidirectional else 1
    P = state["weight_hh_l0"].shape[1]  # h's size: H, or the projection's P
    H = state["weight_hh_l0"].shape[0] // {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}[mode]
    h_n, c_n = [], []
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            s = f"_l{layer}" + ("_reverse" if d else "")
            k = layer * D + d
            h = np.zeros((N, P)) if h0 is None else h0[k]
            c = np.zeros((N, H)) if c0 is None else c0[k]
            y = np.zeros((L, N, P))
            for t in (range(L - 1, -1, -1) if d else range(L)):
                h, c2 = reference_step(mode, x[t], h, c, state["weight_ih" + s], state["weight_hh" + s],
                                       state.get("bias_ih" + s), state.get("bias_hh" + s), state.get("weight_hr" + s))
                c = c2 if c2 is not None else c
                y[t] = h
            outs.append(y)
            h_n.append(h)
            c_n.append(c)
        x = np.concatenate(outs, axis=2)
        if masks is not None and layer < num_layers - 1:
            x = x * masks[layer]
    return x, np.stack(h_n), np.stack(c_n)


def run(module, mode, x, h0=None, c0=None):
    """module(x, hx) with the LSTM's pair; (output, h_n, c_n or None) as arrays."""
    if mode == "lstm":
        y, (h, c) = module(x, None if h0 is None else (h0, c0))
        return y, h, c
    y, h = module(x, h0)
    return y, h, None


def state_of(module):
    return {k: v.astype(np.float64) for k, v in module.state_dict().items()}


# ---- values against the reference --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True}, {"batch_first": True},
                                     {"bias": False, "num_layers": 2}, {"unbatched": True, "bidirectional": True},
                                     {"given": True, "num_layers": 2, "bidirectional": True, "batch_first": True}])
def test_outputs_are_the_reference_step_by_step(mode, options):
    """output, h_n (and c_n) equal the NumPy reference in float64 (and to float32's precision in float32, the default
    dtype), for several layers, both directions, batch_first, no bias, an unbatched input and given initial states."""
    options = dict(options)
    unbatched, given_state = options.pop("unbatched", False), options.pop("given", False)
    cls, kw = MODES[mode]
    rng = np.random.default_rng(7)
    L, N, I, H = 5, 3, 4, 6
    D, layers = 2 if options.get("bidirectional") else 1, options.get("num_layers", 1)
    x = rng.normal(size=(L, N, I))
    h0 = rng.normal(size=(D * layers, N, H)) if given_state else None
    c0 = rng.normal(size=(D * layers, N, H)) if given_state else None
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-5)):
        m = cls(I, H, **kw, **options, dtype=dtype, rng=Generator(3))
        ry, rh, rc = reference(mode, state_of(m), x, layers, D == 2, h0, c0)
        if unbatched:
            xin, ry, rh, rc = x[:, 0], ry[:, 0], rh[:, 0], rc[:, 0]
        elif options.get("batch_first"):
            xin, ry = x.transpose(1, 0, 2), ry.transpose(1, 0, 2)
        else:
            xin = x

        def cast(a, dtype=dtype):
            return None if a is None else mv.tensor(a.astype(dtype))
        inputs = [cast(xin), cast(h0), cast(c0)]
        before = [None if t is None else t.numpy().copy() for t in inputs]
        y, h, c = run(m, mode, *inputs)
        assert y.dtype == h.dtype == dtype
        assert all(t is None or np.array_equal(t.numpy(), b) for t, b in zip(inputs, before))  # inputs not changed
        np.testing.assert_allclose(y.numpy(), ry, rtol=tol, atol=tol)
        np.testing.assert_allclose(h.numpy(), rh, rtol=tol, atol=tol)
        if mode == "lstm":
            np.testing.assert_allclose(c.numpy(), rc, rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu", "gru", "lstm"])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_are_one_step_of_the_reference(mode, batched):
    """RNNCell, GRUCell, LSTMCell: one step of the reference, with a given state and with zeros (hx None)."""
    rng = np.random.default_rng(1)
    cls = {"rnn_tanh": nn.RNNCell, "rnn_relu": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}[mode]
    kw = {"nonlinearity": "relu"} if mode == "rnn_relu" else {}
    m = cls(3, 4, **kw, dtype=np.float64, rng=Generator(2))
    s = m.state_dict()
    x, h, c = rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    for given_state in (True, False):
        hh, cc = (h, c) if given_state else (np.zeros((2, 4)), np.zeros((2, 4)))
        rh, rc = reference_step(mode, x, hh, cc, s["weight_ih"], s["weight_hh"], s["bias_ih"], s["bias_hh"])
        sl = slice(None) if batched else 0
        state = (None if not given_state else (mv.tensor(h[sl]), mv.tensor(c[sl])) if mode == "lstm"
                 else mv.tensor(h[sl]))
        out = m(mv.tensor(x[sl]), state)
        if mode == "lstm":
            np.testing.assert_allclose(out[0].numpy(), rh[sl], rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(out[1].numpy(), rc[sl], rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_allclose(out.numpy(), rh[sl], rtol=1e-12, atol=1e-12)


# ---- gradients: float64 gradchecks --------------------------------------------------------------------------------
@st.composite
def recurrent_cases(draw):
    mode = draw(st.sampled_from(sorted(MODES)))
    layers, bidirectional = draw(st.integers(1, 2)), draw(st.booleans())
    options = {"num_layers": layers, "bidirectional": bidirectional, "bias": draw(st.booleans()),
               "batch_first": draw(st.booleans())}
    L, N, I, H = draw(st.integers(1, 3)), draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 2))
    unbatched, given_state = draw(st.booleans()), draw(st.booleans())
    return mode, options, (L, N, I, H), unbatched, given_state, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=12)
@given(recurrent_cases())
def test_every_gradient_passes_gradcheck(case):
    """d(output, h_n, c_n)/d(input, h0, c0, every parameter) against central differences in float64, with a random
    upstream gradient, over small random shapes and options (layers, directions, bias, batch_first, unbatched)."""
    mode, options, (L, N, I, H), unbatched, given_state, seed = case
    cls, kw = MODES[mode]
    m = cls(I, H, **kw, **options, dtype=np.float64, rng=Generator(seed))
    names = [name for name, _ in m.named_parameters()]
    rng = np.random.default_rng(seed)
    D = 2 if options["bidirectional"] else 1
    batch = () if unbatched else (N,)
    x = rng.normal(size=(L, *batch, I) if not options["batch_first"] or unbatched else (N, L, I))
    states = [rng.normal(size=(D * options["num_layers"], *batch, H)) for _ in range(2 if mode == "lstm" else 1)]
    if mode == "rnn_relu":  # off ReLU's kink: biases away from 0 keep the pre-activations away from it
        x = x + np.sign(x) * 0.1

    def fn(x, *rest):
        hx = rest[:len(states)] if given_state else ()
        for name, p in zip(names, rest[len(states):]):
            setattr(m, name, p)
        y, h, c = run(m, mode, x, *(hx or (None, None)))
        parts = [y, h] + ([c] if c is not None else [])
        return ops.concatenate([ops.reshape(p, (-1,)) for p in parts])
    params = [p.numpy() for p in m.parameters()]
    assert mv.gradcheck(fn, [x, *states, *params], full_max=0, seed=seed % 1000)


# ---- the projected LSTM (proj_size) --------------------------------------------------------------------------------
@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True}, {"batch_first": True, "given": True},
                                     {"unbatched": True, "given": True, "num_layers": 2}])
def test_a_projected_lstm_is_the_reference(options):
    """proj_size P: h = (σ(o) ⊙ tanh(c)) W_hrᵀ of P values, weight_hh (4H, P), weight_hr (P, H) after the biases (torch's
    order and shapes), a layer above the first fed D·P values; output, h_n of P and c_n of H equal the reference."""
    options = dict(options)
    unbatched, given_state = options.pop("unbatched", False), options.pop("given", False)
    rng = np.random.default_rng(8)
    L, N, I, H, P = 4, 3, 4, 5, 2
    D, layers = 2 if options.get("bidirectional") else 1, options.get("num_layers", 1)
    m = nn.LSTM(I, H, proj_size=P, **options, dtype=np.float64, rng=Generator(2))
    shapes = {k: v.shape for k, v in m.state_dict().items()}
    assert list(shapes)[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0", "weight_hr_l0"]
    assert shapes["weight_hh_l0"] == (4 * H, P) and shapes["weight_hr_l0"] == (P, H)
    assert [tuple(w.shape) for w in m.all_weights[0]] == [(4 * H, I), (4 * H, P), (4 * H,), (4 * H,), (P, H)]  # torch's
    if layers == 2:
        assert shapes["weight_ih_l1"] == (4 * H, D * P)
    x = rng.normal(size=(L, N, I))
    h0 = rng.normal(size=(D * layers, N, P)) if given_state else None
    c0 = rng.normal(size=(D * layers, N, H)) if given_state else None
    ry, rh, rc = reference("lstm", state_of(m), x, layers, D == 2, h0, c0)
    xin = x[:, 0] if unbatched else x.transpose(1, 0, 2) if options.get("batch_first") else x
    if unbatched:
        ry, rh, rc = ry[:, 0], rh[:, 0], rc[:, 0]
        h0, c0 = (None, None) if h0 is None else (h0[:, 0], c0[:, 0])
    elif options.get("batch_first"):
        ry = ry.transpose(1, 0, 2)
    y, h, c = run(m, "lstm", mv.tensor(xin), *(None if a is None else mv.tensor(a) for a in (h0, c0)))
    assert y.shape == ry.shape and y.shape[-1] == D * P and h.shape[-1] == P and c.shape[-1] == H
    for got, want in ((y, ry), (h, rh), (c, rc)):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def test_a_projected_lstm_passes_gradcheck():
    m = nn.LSTM(2, 3, num_layers=2, bidirectional=True, proj_size=2, dtype=np.float64, rng=Generator(6))
    names = [name for name, _ in m.named_parameters()]
    rng = np.random.default_rng(6)

    def fn(x, h0, c0, *params):
        for name, p in zip(names, params):
            setattr(m, name, p)
        y, (h, c) = m(x, (h0, c0))
        return ops.concatenate([ops.reshape(t, (-1,)) for t in (y, h, c)])
    inputs = [rng.normal(size=(3, 2, 2)), rng.normal(size=(4, 2, 2)), rng.normal(size=(4, 2, 3))]
    assert mv.gradcheck(fn, inputs + [p.numpy() for p in m.parameters()], full_max=0)


def test_projected_lstm_refusals_name_the_problem():
    with pytest.raises(ValueError, match=r"proj_size has to be smaller than hidden_size \(proj_size=3, hidden_size=3\)"):
        nn.LSTM(2, 3, proj_size=3)
    with pytest.raises(ValueError, match="proj_size should be a positive integer or zero"):
        nn.LSTM(2, 3, proj_size=-1)
    with pytest.raises(TypeError, match="proj_size should be of type int, got: float"):
        nn.LSTM(2, 3, proj_size=1.0)
    m = nn.LSTM(2, 4, proj_size=2)
    assert repr(m) == "LSTM(2, 4, proj_size=2)"
    x = mv.tensor(np.ones((3, 1, 2), np.float32))
    with pytest.raises(ValueError, match=r"Expected hidden\[0\] size \(1, 1, 2\), got \(1, 1, 4\).*proj_size 2"):
        m(x, (mv.tensor(np.zeros((1, 1, 4), np.float32)), mv.tensor(np.zeros((1, 1, 4), np.float32))))
    with pytest.raises(ValueError, match=r"Expected hidden\[1\] size \(1, 1, 4\), got \(1, 1, 2\).*hidden_size 4"):
        m(x, (mv.tensor(np.zeros((1, 1, 2), np.float32)), mv.tensor(np.zeros((1, 1, 2), np.float32))))


@pytest.mark.parametrize("cls", [nn.RNNCell, nn.GRUCell, nn.LSTMCell])
def test_cell_gradients_pass_gradcheck(cls):
    m = cls(3, 2, dtype=np.float64, rng=Generator(4))
    names = [name for name, _ in m.named_parameters()]
    rng = np.random.default_rng(5)
    lstm = cls is nn.LSTMCell

    def fn(x, h, c, *params):
        for name, p in zip(names, params):
            setattr(m, name, p)
        out = m(x, (h, c) if lstm else h)
        return ops.concatenate([out[0], out[1]], axis=1) if lstm else out
    inputs = [rng.normal(size=(2, 3)), rng.normal(size=(2, 2)), rng.normal(size=(2, 2))]
    assert mv.gradcheck(fn, inputs + [p.numpy() for p in m.parameters()], full_max=0)


def test_a_3000_step_sequence_backpropagates_without_recursion():
    """The backward pass through 3000 steps of an LSTM (about 40000 nodes) runs (the engine is iterative), every
    gradient finite; the gradient at the last step is the reference's: x_{L−1} enters the loss Σ output + Σ h_n only
    through h_L = output[L−1] = h_n, so x̄_{L−1} = 2·d Σ h_L / d x_{L−1}, a central difference of that one reference
    step from the reference's state after L − 1 steps."""
    L = 3000
    m = nn.LSTM(2, 3, dtype=np.float64, rng=Generator(0))
    x = mv.tensor(np.random.default_rng(0).normal(size=(L, 1, 2)), requires_grad=True)
    y, (h, c) = m(x)
    (y.sum() + h.sum()).backward()
    assert x.grad.shape == (L, 1, 2) and np.isfinite(x.grad).all()
    assert all(np.isfinite(p.grad).all() for p in m.parameters())
    # the last step's gradient, by the reference's finite difference of that step alone (the state before it fixed)
    s = state_of(m)
    _, hs, cs = reference("lstm", s, x.numpy()[:L - 1], 1, False)
    hl, cl = hs[0], cs[0]
    eps = 1e-6
    for j in range(2):
        up, down = x.numpy()[L - 1].copy(), x.numpy()[L - 1].copy()
        up[0, j] += eps
        down[0, j] -= eps
        f = [reference_step("lstm", v, hl, cl, s["weight_ih_l0"], s["weight_hh_l0"], s["bias_ih_l0"],
                            s["bias_hh_l0"])[0].sum() * 2 for v in (up, down)]
        np.testing.assert_allclose(x.grad[L - 1, 0, j], (f[0] - f[1]) / (2 * eps), rtol=1e-6, atol=1e-9)


# ---- parameters, init, state_dict, dtype ---------------------------------------------------------------------------
def test_parameters_have_torchs_names_shapes_and_order():
    m = nn.GRU(3, 4, num_layers=2, bidirectional=True)
    assert [(k, v.shape) for k, v in m.state_dict().items()] == [
        ("weight_ih_l0", (12, 3)), ("weight_hh_l0", (12, 4)), ("bias_ih_l0", (12,)), ("bias_hh_l0", (12,)),
        ("weight_ih_l0_reverse", (12, 3)), ("weight_hh_l0_reverse", (12, 4)), ("bias_ih_l0_reverse", (12,)),
        ("bias_hh_l0_reverse", (12,)),
        ("weight_ih_l1", (12, 8)), ("weight_hh_l1", (12, 4)), ("bias_ih_l1", (12,)), ("bias_hh_l1", (12,)),
        ("weight_ih_l1_reverse", (12, 8)), ("weight_hh_l1_reverse", (12, 4)), ("bias_ih_l1_reverse", (12,)),
        ("bias_hh_l1_reverse", (12,))]
    assert list(nn.LSTM(2, 5, bias=False).state_dict()) == ["weight_ih_l0", "weight_hh_l0"]
    assert nn.LSTM(2, 5).weight_ih_l0.shape == (20, 2) and nn.RNN(2, 5).weight_hh_l0.shape == (5, 5)
    cell = nn.LSTMCell(2, 5, bias=False)
    assert list(cell.state_dict()) == ["weight_ih", "weight_hh"] and cell.bias_ih is None
    assert [[tuple(p.shape) for p in ws] for ws in nn.RNN(2, 3, num_layers=2).all_weights] == [
        [(3, 2), (3, 3), (3,), (3,)], [(3, 3), (3, 3), (3,), (3,)]]
    assert repr(nn.GRU(3, 4, num_layers=2, batch_first=True, dropout=0.5)) == \
        "GRU(3, 4, num_layers=2, batch_first=True, dropout=0.5)"
    assert repr(nn.RNNCell(3, 4, nonlinearity="relu")) == "RNNCell(3, 4, nonlinearity=relu)"
    assert isinstance(nn.GRUCell(2, 3), nn.RNNCellBase) and not isinstance(nn.GRUCell(2, 3), nn.RNNCell)  # torch's
    assert isinstance(nn.LSTM(2, 3), nn.RNNBase) and not isinstance(nn.LSTM(2, 3), nn.RNN)


@pytest.mark.parametrize("cls", [nn.RNN, nn.GRU, nn.LSTM, nn.LSTMCell])
def test_init_is_torchs_uniform_within_one_over_root_hidden_size(cls):
    """Every parameter ~ U(−1/√H, 1/√H) (torch's reset_parameters): inside the bound, spread over it (the largest
    |w| of ≥ 600 draws below 0.95·bound has probability 0.95⁶⁰⁰ < 1e-13), mean square near bound²/3 (5 standard
    errors); drawn from ``rng``: the same seed the same weights, another seed others."""
    H = 16
    bound = 1 / math.sqrt(H)
    m = cls(24, H, rng=Generator(11))
    w = np.concatenate([p.numpy().ravel() for p in m.parameters()]).astype(np.float64)
    assert len(w) >= 600
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    se = bound ** 2 * math.sqrt(4 / 45 / len(w))  # sd of w² for a uniform: bound²·√(1/5 − 1/9)
    assert abs(np.mean(w ** 2) - bound ** 2 / 3) < 5 * se
    assert all(p.dtype == np.float32 for p in m.parameters())
    again, other = cls(24, H, rng=Generator(11)), cls(24, H, rng=Generator(12))
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(m.parameters(), again.parameters()))
    assert not np.array_equal(m.parameters()[0].numpy(), other.parameters()[0].numpy())


def test_state_dict_round_trip_and_to_dtype():
    """A state_dict saved and loaded into a module drawn from another seed gives the same outputs; ``to(float64)``
    makes every parameter float64 and the outputs the float64 reference's."""
    a = nn.LSTM(3, 4, num_layers=2, bidirectional=True, rng=Generator(1))
    b = nn.LSTM(3, 4, num_layers=2, bidirectional=True, rng=Generator(2))
    x = mv.tensor(np.random.default_rng(0).normal(size=(4, 2, 3)).astype(np.float32))
    assert not np.array_equal(a(x)[0].numpy(), b(x)[0].numpy())
    b.load_state_dict(a.state_dict())
    assert np.array_equal(a(x)[0].numpy(), b(x)[0].numpy())
    assert np.array_equal(a(x)[1][1].numpy(), b(x)[1][1].numpy())
    b.to(np.float64)
    assert all(p.dtype == np.float64 for p in b.parameters())
    x64 = np.random.default_rng(1).normal(size=(4, 2, 3))
    y, (h, c) = b(mv.tensor(x64))
    ry, rh, rc = reference("lstm", state_of(b), x64, 2, True)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y.numpy(), ry, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c.numpy(), rc, rtol=1e-12, atol=1e-12)


# ---- dropout between layers -----------------------------------------------------------------------------------------
def test_dropout_is_between_layers_in_training_mode_only():
    """With dropout p: in eval mode the output is the reference's without dropout; in training mode layer 0's output
    is F.dropout's (drawn from the module's rng) before layer 1, and the last layer's output is not dropped."""
    p = 0.5
    m = nn.GRU(3, 4, num_layers=2, dropout=p, dtype=np.float64, rng=Generator(0))
    x = np.random.default_rng(0).normal(size=(5, 2, 3))
    ry, rh, _ = reference("gru", state_of(m), x, 2, False)
    m.eval()
    y, h = m(mv.tensor(x))
    np.testing.assert_allclose(y.numpy(), ry, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h.numpy(), rh, rtol=1e-12, atol=1e-12)
    m.train()
    m.rng = Generator(9)
    y, h = m(mv.tensor(x))
    mask = F.dropout(mv.tensor(np.ones((5, 2, 4))), p, rng=Generator(9)).numpy()
    assert 0 < (mask == 0).mean() < 1
    ry, rh, _ = reference("gru", state_of(m), x, 2, False, masks=[mask])
    np.testing.assert_allclose(y.numpy(), ry, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h.numpy(), rh, rtol=1e-12, atol=1e-12)


def test_dropout_with_one_layer_warns_as_torch():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        nn.LSTM(2, 3, dropout=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.LSTM(2, 3, num_layers=2, dropout=0.2)


# ---- the device stand-in -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [nn.GRU, nn.LSTM])
def test_a_training_step_on_the_device_makes_no_copy_to_the_host(cls):
    """On the strict "cuda" stand-in: parameters there, one forward and backward pass (two layers, both directions,
    given h0) with no copy to the host, and the CPU's outputs and gradients bit for bit."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    h0 = rng.normal(size=(4, 2, 5)).astype(np.float32)

    def step(device):
        m = cls(3, 5, num_layers=2, bidirectional=True, batch_first=True, rng=Generator(0), device=device)
        xt = mv.tensor(x, device=device, requires_grad=True)
        ht = mv.tensor(h0, device=device, requires_grad=True)
        y, h = m(xt, (ht, ht) if cls is nn.LSTM else ht)
        h = h[0] if cls is nn.LSTM else h
        ((y * y).sum() + (h * h).sum()).backward()
        return [y, h, xt.grad, ht.grad] + [p.grad for p in m.parameters()]
    assert_device_run_is_the_cpus(step)


# ---- refusals ------------------------------------------------------------------------------------------------------
def test_bad_inputs_are_refused_naming_the_problem():
    m = nn.GRU(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"GRU: input.size\(-1\) must be equal to input_size. Expected 3, got 5"):
        m(mv.tensor(np.ones((2, 1, 5))))
    with pytest.raises(ValueError, match=r"GRU: Expected input to be 2D or 3D, got 4D"):
        m(mv.tensor(np.ones((2, 1, 1, 3))))
    with pytest.raises(ValueError, match=r"GRU: Expected hidden size \(2, 1, 4\), got \(1, 1, 4\)"):
        m(mv.tensor(np.ones((2, 1, 3))), mv.tensor(np.zeros((1, 1, 4))))
    with pytest.raises(ValueError, match=r"GRU: Expected hidden size \(2, 1, 4\), got \(2, 3, 4\)"):
        m(mv.tensor(np.ones((2, 1, 3))), mv.tensor(np.zeros((2, 3, 4))))
    with pytest.raises(ValueError, match=r"for unbatched 2-D input, hx should also be 2-D but got 3-D"):
        m(mv.tensor(np.ones((2, 3))), mv.tensor(np.zeros((2, 1, 4))))
    with pytest.raises(ValueError, match=r"sequence length to be larger than 0"):
        m(mv.tensor(np.ones((0, 1, 3))))
    lstm = nn.LSTM(3, 4)
    with pytest.raises(TypeError, match=r"LSTM: hx must be a tuple \(h_0, c_0\)"):
        lstm(mv.tensor(np.ones((2, 1, 3))), mv.tensor(np.zeros((1, 1, 4))))
    with pytest.raises(ValueError, match=r"LSTM: Expected hidden\[1\] size \(1, 1, 4\), got \(1, 1, 5\)"):
        lstm(mv.tensor(np.ones((2, 1, 3))), (mv.tensor(np.zeros((1, 1, 4))), mv.tensor(np.zeros((1, 1, 5)))))
    with pytest.raises(TypeError, match="LSTM: input must be a tensor or a minivae.nn.utils.rnn.PackedSequence, got a "
                                        "tuple"):
        lstm((mv.tensor(np.ones((2, 3))), mv.tensor(np.array([2]))))  # (a plain tuple: not a PackedSequence)
    with pytest.raises(TypeError, match="LSTM: input must be a tensor, got str"):
        lstm("abc")
    x = np.ones((2, 1, 3), np.float32)  # an array is taken as the ops take it
    assert np.array_equal(lstm(x)[0].numpy(), lstm(mv.tensor(x))[0].numpy())
    cell = nn.LSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"LSTMCell: input has inconsistent input_size: got 2, expected 3"):
        cell(mv.tensor(np.ones((1, 2))))
    with pytest.raises(ValueError, match=r"LSTMCell: hx\[0\] of shape \(2, 4\) does not fit: expected \(1, 4\)"):
        cell(mv.tensor(np.ones((1, 3))), (mv.tensor(np.zeros((2, 4))), mv.tensor(np.zeros((1, 4)))))
    with pytest.raises(ValueError, match=r"RNNCell: Expected input to be 1D or 2D, got 3D"):
        nn.RNNCell(3, 4)(mv.tensor(np.ones((1, 1, 3))))


def test_bad_arguments_are_refused_naming_them():
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        nn.GRU(3, 0)
    with pytest.raises(TypeError, match="input_size should be of type int, got: float"):
        nn.LSTM(3.0, 4)
    with pytest.raises(ValueError, match="num_layers must be greater than zero"):
        nn.RNN(3, 4, num_layers=0)
    with pytest.raises(ValueError, match=r"dropout should be a number in range \[0, 1\]"):
        nn.GRU(3, 4, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="Unknown nonlinearity 'sigmoid'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="Unknown nonlinearity 'gelu'"):
        nn.RNNCell(3, 4, nonlinearity="gelu")
    with pytest.raises(TypeError, match="batch_first should be of type bool, got: int"):
        nn.LSTM(3, 4, batch_first=1)
