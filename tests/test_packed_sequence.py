"""minivae.nn.utils.rnn (torch.nn.utils.rnn's packed sequences) and RNN, GRU, LSTM on a PackedSequence: the layout
against a NumPy reference written from torch's definition, the recurrent layers against each sequence run alone
(unpadded, its own length: the path tests/test_rnn.py checks against torch's equations) and against torch where
installed, values and gradients; refusals as torch's."""
import numpy as np
import pytest

import minivae as mv
from minivae import nn
from minivae.nn.utils.rnn import PackedSequence, pack_padded_sequence, pack_sequence, pad_packed_sequence, pad_sequence
from minivae.random import Generator
from tests.strict_array import assert_device_run_is_the_cpus

LENGTHS = [2, 5, 3, 5, 1]  # ties and a length-1 sequence; the longest is the padded length


def padded_batch(lengths=LENGTHS, features=(4,), seed=0):
    return np.random.default_rng(seed).standard_normal((max(lengths), len(lengths)) + features)


def reference_pack(x, lengths, enforce_sorted):
    """torch's layout by its definition: the batch ordered by length, longest first (ties in batch order), then step by
    step the rows of the sequences still running."""
    order = list(range(len(lengths))) if enforce_sorted else sorted(range(len(lengths)), key=lambda i: -lengths[i])
    rows, sizes = [], []
    for t in range(max(lengths)):
        running = [i for i in order if lengths[i] > t]
        sizes.append(len(running))
        rows += [x[t, i] for i in running]
    return np.array(rows), np.array(sizes), np.array(order)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("features", [(4,), (2, 3)])
def test_packing_is_torch_s_layout_and_padding_reads_it_back(batch_first, features):
    x = padded_batch(features=features)
    data, sizes, order = reference_pack(x, LENGTHS, enforce_sorted=False)
    given = np.swapaxes(x, 0, 1) if batch_first else x
    packed = pack_padded_sequence(mv.tensor(given), LENGTHS, batch_first=batch_first, enforce_sorted=False)
    np.testing.assert_array_equal(packed.data.numpy(), data)
    np.testing.assert_array_equal(packed.batch_sizes.numpy(), sizes)
    np.testing.assert_array_equal(packed.sorted_indices.numpy(), order)
    np.testing.assert_array_equal(packed.unsorted_indices.numpy(), np.argsort(order))
    back, lengths = pad_packed_sequence(packed, batch_first=batch_first, padding_value=-7.0, total_length=7)
    want = np.full((7, len(LENGTHS)) + features, -7.0)
    for i, n in enumerate(LENGTHS):
        want[:n, i] = x[:n, i]
    np.testing.assert_array_equal(back.numpy(), np.swapaxes(want, 0, 1) if batch_first else want)
    np.testing.assert_array_equal(lengths.numpy(), LENGTHS)
    assert lengths.dtype == np.int64 and lengths.device == "cpu"


def test_sorted_batches_keep_their_order_and_sequences_pack_from_a_list():
    lengths = [5, 3, 3, 1]
    x = padded_batch(lengths)
    packed = pack_padded_sequence(mv.tensor(x), lengths)
    data, sizes, _ = reference_pack(x, lengths, enforce_sorted=True)
    np.testing.assert_array_equal(packed.data.numpy(), data)
    np.testing.assert_array_equal(packed.batch_sizes.numpy(), sizes)
    assert packed.sorted_indices is None and packed.unsorted_indices is None
    sequences = [mv.tensor(x[:n, i]) for i, n in enumerate(lengths)]
    np.testing.assert_array_equal(pack_sequence(sequences).data.numpy(), data)
    padded = pad_sequence(sequences, batch_first=True, padding_value=1.5)
    assert padded.shape == (4, 5, 4) and (padded.numpy()[1, 3:] == 1.5).all()
    np.testing.assert_array_equal(padded.numpy()[2, :3], x[:3, 2])


def test_gradients_reach_only_the_rows_within_their_sequences():
    x = mv.tensor(padded_batch(), requires_grad=True)
    packed = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    g = np.random.default_rng(1).standard_normal(packed.data.shape)
    packed.data.backward(mv.tensor(g))
    back, _ = pad_packed_sequence(PackedSequence(mv.tensor(g), packed.batch_sizes, packed.sorted_indices))
    np.testing.assert_array_equal(x.grad, back.numpy())  # the padding's rows: 0
    assert (x.grad[4, 0] == 0).all() and (x.grad[:2, 0] != 0).all()


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_packed_batch_is_each_sequence_run_alone(kind, bidirectional):
    """Output rows, h_n (c_n), and the gradients of the input and every parameter for one random upstream gradient:
    those of each sequence run alone, unbatched, for its own length (its reverse pass starting at its own last step)."""
    module = getattr(nn, kind)(4, 3, num_layers=2, bidirectional=bidirectional, dtype=np.float64, rng=Generator(1))
    x = padded_batch()
    rng = np.random.default_rng(2)
    directions = 2 if bidirectional else 1
    g_out = rng.standard_normal((sum(LENGTHS), directions * 3))
    g_h = rng.standard_normal((2 * directions, len(LENGTHS), 3))

    xt = mv.tensor(x, requires_grad=True)
    out, state = module(pack_padded_sequence(xt, LENGTHS, enforce_sorted=False))
    h_n = state[0] if kind == "LSTM" else state
    mv.backward([out.data, h_n], [mv.tensor(g_out), mv.tensor(g_h)])
    packed_grads = [xt.grad] + [p.grad.copy() for p in module.parameters()]
    module.zero_grad()

    padded_out, _ = pad_packed_sequence(out)
    g_padded, _ = pad_packed_sequence(PackedSequence(mv.tensor(g_out), out.batch_sizes, out.sorted_indices))
    x_grad = np.zeros_like(x)
    for i, n in enumerate(LENGTHS):
        xi = mv.tensor(x[:n, i], requires_grad=True)
        out_i, state_i = module(xi)
        h_i = state_i[0] if kind == "LSTM" else state_i
        np.testing.assert_allclose(padded_out.numpy()[:n, i], out_i.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(h_n.numpy()[:, i], h_i.numpy(), rtol=1e-12, atol=1e-14)
        mv.backward([out_i, h_i], [mv.tensor(g_padded.numpy()[:n, i]), mv.tensor(g_h[:, i])])
        x_grad[:n, i] = xi.grad
    alone = [x_grad] + [p.grad for p in module.parameters()]
    for a, b in zip(packed_grads, alone):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_packed_input_matches_torch(kind):
    torch = pytest.importorskip("torch")
    module = getattr(nn, kind)(4, 3, num_layers=2, bidirectional=True, batch_first=True, dtype=np.float64,
                               rng=Generator(3))
    peer = getattr(torch.nn, kind)(4, 3, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
    peer.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in module.state_dict().items()})
    x = np.swapaxes(padded_batch(seed=4), 0, 1)
    h0 = np.random.default_rng(5).standard_normal((4, len(LENGTHS), 3))
    hx = (mv.tensor(h0), mv.tensor(h0 / 2)) if kind == "LSTM" else mv.tensor(h0)
    thx = (torch.tensor(h0), torch.tensor(h0 / 2)) if kind == "LSTM" else torch.tensor(h0)
    xt, tx = mv.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, state = module(pack_padded_sequence(xt, LENGTHS, batch_first=True, enforce_sorted=False), hx)
    t_out, t_state = peer(torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(LENGTHS), batch_first=True,
                                                                  enforce_sorted=False), thx)
    np.testing.assert_allclose(out.data.numpy(), t_out.data.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(out.batch_sizes.numpy(), t_out.batch_sizes.numpy())
    np.testing.assert_array_equal(out.sorted_indices.numpy(), t_out.sorted_indices.numpy())
    states = state if kind == "LSTM" else (state,)
    t_states = t_state if kind == "LSTM" else (t_state,)
    for s, t in zip(states, t_states):
        np.testing.assert_allclose(s.numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-14)
    g = np.random.default_rng(6).standard_normal(out.data.shape)
    out.data.backward(mv.tensor(g))
    t_out.data.backward(torch.tensor(g))
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-13)
    for (name, p), (_, q) in zip(module.named_parameters(), peer.named_parameters()):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=name)


def test_a_packed_run_on_the_device_is_the_cpus():
    x = padded_batch()

    def run(device):
        module = nn.GRU(4, 3, bidirectional=True, dtype=np.float64, rng=Generator(1), device=device)
        xt = mv.tensor(x, device=device, requires_grad=True)
        packed = pack_padded_sequence(xt, LENGTHS, enforce_sorted=False)
        out, h_n = module(packed)
        (out.data.sum() + h_n.sum()).backward()
        back, _ = pad_packed_sequence(out)
        return [out.data, h_n, back, xt.grad] + [p.grad for p in module.parameters()]
    assert_device_run_is_the_cpus(run)


def test_refusals_name_the_problem():
    x = mv.tensor(padded_batch())
    with pytest.raises(RuntimeError, match="`lengths` array must be sorted in decreasing order"):
        pack_padded_sequence(x, LENGTHS)
    with pytest.raises(RuntimeError, match="Length of all samples has to be greater than 0"):
        pack_padded_sequence(x, [2, 0, 1, 1, 1], enforce_sorted=False)
    with pytest.raises(RuntimeError, match="a length 6 exceeds the sequences' padded length 5"):
        pack_padded_sequence(x, [6, 5, 3, 2, 1])
    with pytest.raises(ValueError, match=r"Expected `len\(lengths\)` to be equal to batch_size, but got 2 \(batch_size=5\)"):
        pack_padded_sequence(x, [5, 1])
    with pytest.raises(ValueError, match="lengths must be one integer per sequence"):
        pack_padded_sequence(x, [5.5, 1, 1, 1, 1])
    packed = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    with pytest.raises(ValueError, match="total_length=3 and max sequence length being 5"):
        pad_packed_sequence(packed, total_length=3)
    with pytest.raises(TypeError, match="pad_packed_sequence: a PackedSequence is needed, got tuple"):
        pad_packed_sequence((packed.data, packed.batch_sizes))
    with pytest.raises(ValueError, match="pad_sequence: the sequences' trailing shapes differ"):
        pad_sequence([mv.tensor(np.ones((2, 3))), mv.tensor(np.ones((2, 4)))])
    with pytest.raises(ValueError, match="GRU: input.size"):
        nn.GRU(3, 2)(packed)


def test_torch_s_import_paths():
    import minivae.nn.utils.rnn as rnn_utils
    assert mv.nn.utils.rnn is rnn_utils and rnn_utils.pack_sequence is pack_sequence


def test_batch_first_does_not_change_what_a_packed_input_gives():
    """A packed input has no batch axis to put first (torch's): the same weights give the same results either way."""
    packed = pack_padded_sequence(mv.tensor(padded_batch()), LENGTHS, enforce_sorted=False)
    results = []
    for batch_first in (False, True):
        module = nn.LSTM(4, 3, num_layers=2, batch_first=batch_first, dtype=np.float64, rng=Generator(1))
        out, (h_n, c_n) = module(packed)
        results.append([out.data.numpy(), h_n.numpy(), c_n.numpy()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_to_moves_the_data_and_keeps_the_indices_on_the_cpu():
    from tests.strict_array import emulating
    packed = pack_padded_sequence(mv.tensor(padded_batch()), LENGTHS, enforce_sorted=False)
    with emulating():
        moved = packed.to("cuda")
        assert moved.data.device == "cuda" and moved.batch_sizes.device == "cpu" and moved.sorted_indices.device == "cpu"
        np.testing.assert_array_equal(moved.data.numpy(), packed.data.numpy())
