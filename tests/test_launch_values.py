"""minivae/_gpu/graph.py's LaunchValues, on the CPU: the values a CUDA graph reads at each launch (the Philox
shift, Adam's (step size, ε̂, decay) triples) reach the device buffer in the layout the captured kernels read, by copies that run
late, as an asynchronous copy from pinned memory may.

The stand-in stream queues work and runs it only when an event recorded on it is waited for, or at the end; a
queued copy reads its host buffer when it runs, not when it was queued. A graph launch is played by a queued
read of the device buffer. Were a host buffer written again before the copy that reads it has run, a launch
would read a later step's values."""
import types

import numpy as np

from minivae._gpu.graph import LaunchValues


class Stream:
    def __init__(self):
        self.queue, self.done = [], 0

    def run(self, upto=None):
        upto = len(self.queue) if upto is None else upto
        while self.done < upto:
            self.queue[self.done]()
            self.done += 1


class Event:
    def __init__(self, disable_timing=False):
        self.stream = self.mark = None

    def record(self, stream):
        self.stream, self.mark = stream, len(stream.queue)

    def synchronize(self):
        self.stream.run(self.mark)


class DeviceArray(np.ndarray):
    def set(self, host, stream=None):
        copy = lambda: self.__setitem__(Ellipsis, host)  # noqa: E731  (reads host when it runs)
        if stream is None:
            copy()
        else:
            stream.queue.append(copy)


CUPY = types.SimpleNamespace(
    empty=lambda n, dtype: np.empty(n, dtype).view(DeviceArray),
    cuda=types.SimpleNamespace(alloc_pinned_memory=lambda n: bytearray(n), Event=Event))


def test_each_launch_reads_its_own_values_however_late_the_copies_run():
    values = LaunchValues(CUPY, slots=3)
    assert values.shift.shape == (1,) and values.adam.shape == (3, 3)
    assert np.isnan(np.asarray(values.adam)).all() and values.shift[0] == 0  # before any launch: NaN, as Adam's "none"
    stream, seen = Stream(), []
    for t in range(5):
        triples = [(0.1 * t, 1e-8 * t, 1 - 0.01 * t)] * (1 + t % 2)  # one Adam launch at even steps, two at odd ones
        values.write(1000 + t, triples, stream)
        stream.queue.append(lambda: seen.append((int(values.shift[0]), np.array(values.adam))))  # the graph
    stream.run()
    for t, (shift, adam) in enumerate(seen):
        assert shift == 1000 + t
        n = 1 + t % 2
        np.testing.assert_array_equal(adam[:n], [(0.1 * t, 1e-8 * t, 1 - 0.01 * t)] * n)
        # a slot this launch does not write keeps what the last launch that wrote it left (never read then)
        assert np.isnan(adam[2]).all()


def test_the_layout_the_kernels_read():
    """shift is the buffer's first uint64; Adam's slot i is the float64 triple (step size, ε̂, decay) at words 1 + 3i,
    2 + 3i and 3 + 3i (kernels/optim.cu reads step[0], step[1], step[2])."""
    values = LaunchValues(CUPY, slots=2)
    stream = Stream()
    values.write(7, [(0.5, 0.25, 0.75), (2.0, 4.0, 8.0)], stream)
    stream.run()
    words = np.asarray(values.device)
    assert words[0] == 7
    np.testing.assert_array_equal(words[1:].view(np.float64), [0.5, 0.25, 0.75, 2.0, 4.0, 8.0])
    assert np.shares_memory(values.adam, values.device) and np.shares_memory(values.shift, values.device)
