"""Record a training step once, replay it without the engine: ``compile_step`` and ``StepPlan``.

A step of eager training builds a graph of Tensors, sorts it, checks every gradient and frees it again;
on a small model that bookkeeping costs more than the arithmetic. ``compile_step`` runs one ordinary
step while **recording** it: every op's forward, every VJP, every gradient accumulation, every Philox
draw, every in-place write and the optimizer's update, in the order they ran, each bound to the slots
(arrays) it reads and writes. ``plan.step(batch)`` then **replays** that list: the same forward and VJP
code on the new arrays, with no Tensor, graph, sort or check per op. The replay is the eager step
itself, not a model of it, so its numbers are the same bit for bit (tests/test_plan.py proves it for
both VAEs and every estimator, with and without Numba).

What changes from step to step is either in an array the plan reads in place (the parameters, the
optimizer's state, the static batch buffer each new batch is copied into, model state written in place
such as the REINFORCE baseline), or a **live** value, re-evaluated at each replay:
- a Philox counter (Gumbel-Softmax's noise, ``Generator`` draws): each replay draws the next noise,
  exactly as the eager step would;
- a scalar given to ``plan.step`` by name (``step=``, ``beta=``), and what ``live(fn, scalar)``
  computes from it (the categorical VAE's temperature τ(step)).

What a plan cannot record it refuses with a ``PlanError``, instead of replaying the wrong thing:
reading a tensor's value while recording (``.item()``, ``bool(t)``: a Python branch on data), Python
arithmetic or comparison on a live scalar (its result would be a constant), a batch of another shape
or dtype, an op whose output shape changes at replay (a data-dependent shape), and a replay once a
parameter's array or the optimizer's state was replaced (``model.to()``; a load_state_dict writes in
place, which is fine). Arrays an op reads that no recorded step made (a parameter, a constant) are read
by reference at each replay.

Memory: the recorded step and every replay take their arrays' memory from the plan's pool
(minivae._pool: NumPy's allocator, set per context), as a CUDA graph takes its memory from a pool it
owns. A replay makes the same arrays in the same order, so each one finds a freed block of its size:
from the first replay on, a replay allocates nothing from the system (tests/test_plan.py counts it).
The pool keeps the step's peak memory between steps, and gives it back with the plan.

On the GPU, ``plan.capture()`` records one replay as a CUDA graph (minivae._gpu.graph).
"""
import numpy

from minivae import engine
from minivae._backend import device_of, module_for_device
from minivae.engine import Tensor, array_function  # noqa: F401  (array_function: for model code, from here)


class PlanError(RuntimeError):
    """A step plan cannot record or replay this step; the message says what and why."""


_refusals = []  # the last PlanError raised while recording (see StepPlan._record)


def _refusal(message):
    """A PlanError, kept: raised inside NumPy (``numpy.float32(beta)`` converting a live scalar), it would reach
    the caller as a SystemError, for NumPy frees the pool's memory while it is pending, and a ctypes callback cannot
    run with an exception set (minivae/_pool.py)."""
    error = PlanError(message)
    _refusals[:] = [error]
    return error


class Live:
    """A number that a plan re-evaluates at each replay: ``resolve()`` gives this replay's value,
    ``value`` the one it had when recorded. Python arithmetic and comparisons refuse it (their result
    would be recorded as a constant); ops take it (``beta * kl``, ``temperature=τ``), and so does
    ``live(fn, ...)``."""

    __slots__ = ("value", "resolve", "name", "kind")

    def __init__(self, value, resolve, name, kind="scalar"):
        # kind: "scalar" (a function of plan.step's scalars), "counter" (draws from a Generator), "array"
        self.value, self.resolve, self.name, self.kind = value, resolve, name, kind

    def _refuse(self, other=None, *_):
        if isinstance(other, Tensor):
            return NotImplemented  # ``beta * kl``: the tensor's op takes the live number
        raise _refusal(f"{self.name}: Python arithmetic or a comparison on a live scalar of a step plan; the result "
                        "would be replayed as a constant. Pass it to ops (beta * tensor), or compute from it with "
                        "minivae.plan.live(fn, scalar)")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _refuse
    __pow__ = __rpow__ = __neg__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __float__ = __int__ = _refuse
    __eq__ = __ne__ = _refuse
    __hash__ = object.__hash__

    def __repr__(self):
        return f"Live({self.name}={self.value!r})"


def live(fn, *args):
    """fn(*args), re-evaluated at each replay of a step plan when an argument is live (a scalar given
    to ``plan.step``); outside a recording, simply fn(*args). E.g. ``tau = live(self.temperature, step)``."""
    if not any(isinstance(a, Live) for a in args):
        return fn(*args)
    value = fn(*[a.value if isinstance(a, Live) else a for a in args])
    return Live(value, lambda: fn(*[a.resolve() if isinstance(a, Live) else a for a in args]),
                f"{getattr(fn, '__name__', 'fn')}(…)")


def drawn_counter(rng, blocks):
    """rng's counter for a draw of ``blocks`` Philox blocks, advancing it; while a plan records, a live
    counter, which each replay draws afresh from the same rng (the next noise, as the eager step)."""
    counter = rng._take(blocks)
    if engine._recorder is None:
        return counter
    engine._recorder.generator(rng)
    return Live(counter, lambda: rng._take(blocks), "Philox counter", "counter")


class _Recorder:
    """What ``engine`` calls while a step is recorded (engine._recorder): each call appends one
    instruction, a closure over the plan's slot list, to the tape."""

    def __init__(self):
        self.tape, self.values = [], []
        self.reads = []  # per instruction, the slots it reads (see _append)
        self.slot_of = {}  # id(array) → slot; every array stays referenced while recording, so ids are unique
        self.written = []  # the slots that instructions write
        self.live_constants = []  # (0-d array, Live) refilled at the start of each replay
        self.live_params = []  # the op parameters that are functions of the scalars (a τ)
        self.generators = set()  # the Generators the step draws from
        # (node, [release after forward]) of each recorded forward, and the nodes whose VJP was recorded: a node no
        # gradient reached keeps no residuals past its forward (see forward_only)
        self.forwards, self.differentiated = [], set()

    # ---- slots --------------------------------------------------------------------------
    def ref(self, a):
        """The slot of an input array: the one a recorded step wrote, else a constant slot holding it."""
        k = self.slot_of.get(id(a))
        if k is None:
            k = self.define(a, written=False)
        return k

    def define(self, a, written=True):
        self.values.append(a)
        k = len(self.values) - 1
        self.slot_of[id(a)] = k
        if written:
            self.written.append(k)
        return k

    # ---- hooks called by the engine and the generator ------------------------------------
    @staticmethod
    def is_live(x):
        return isinstance(x, Live)

    def unwrap(self, params):
        return {k: v.value if isinstance(v, Live) else v for k, v in params.items()}

    def live_constant(self, x, xp, dtype):
        a = xp.full((), x.value, dtype=dtype)
        self.live_constants.append((a, x))
        return a

    def generator(self, rng):
        if rng.made_in_a_recording:
            raise PlanError("a draw from a Generator made inside the recorded step: each eager step would make a new "
                            "one, a replay would go on drawing from this one; make it once, outside loss_fn")
        self.generators.add(rng)

    def refuse(self, what):
        raise _refusal(f"{what} while a step plan records: a plan replays ops, not Python decisions on data, "
                        "so it cannot record this step; keep the value in a tensor (or run this step eagerly)")

    def forward(self, ctx, arrays, params, outs):
        values, ins = self.values, [self.ref(a) for a in arrays]
        params = {k: self._from_slots(v) for k, v in params.items()}
        lives = [(k, v) for k, v in params.items() if isinstance(v, Live)]
        params = {k: v for k, v in params.items() if not isinstance(v, Live)}
        self.live_params += [v for _, v in lives if v.kind == "scalar"]
        slots = [self.define(o) for o in outs]
        shapes = [o.shape for o in outs]
        asarray, name = ctx.xp.asarray, getattr(ctx, "name", type(ctx).__name__)
        release = [False]
        self.forwards.append((ctx, release))

        def run():
            kw = {**params, **{k: v.resolve() for k, v in lives}} if lives else params
            ctx._saved = ()
            result = ctx.forward(*[values[i] for i in ins], **kw)
            for k, r, shape in zip(slots, result if isinstance(result, tuple) else (result,), shapes):
                r = asarray(r)  # a 0-d result may come back as a scalar, as Tensor() makes it an array
                if r.shape != shape:
                    raise PlanError(f"{name} gave shape {r.shape} at replay and {shape} when recorded: "
                                    "a data-dependent shape cannot be replayed")
                values[k] = r
            if release[0]:
                ctx.release()
        self._append(run, ins)

    def forward_only(self):
        """Let the nodes whose VJP the step never ran drop what their forward saved, now and after each replay's
        forward (the eager step's graph, freed after it, does the same): kept, a replay's residuals (a mask of
        where's) would live on until the next replay's forward replaced them, and that replay would take new memory
        for its own before they were freed."""
        for ctx, release in self.forwards:
            if id(ctx) not in self.differentiated:
                release[0] = True
                ctx.release()

    def _from_slots(self, param):
        """A parameter holding arrays that recorded steps made (getitem's mask, from ``x > 0``), as a
        live value read from their slots at replay; any other parameter unchanged."""
        parts = param if isinstance(param, tuple) else (param,)
        slots = [self.slot_of.get(id(p)) if hasattr(p, "shape") else None for p in parts]
        if all(k is None for k in slots):
            return param
        values = self.values

        def resolve():
            got = tuple(p if k is None else values[k] for p, k in zip(parts, slots))
            return got if isinstance(param, tuple) else got[0]
        return Live(param, resolve, "an array parameter", "array")

    def vjp(self, ctx, g, grads):
        self.differentiated.add(id(ctx))
        values = self.values
        several = isinstance(g, tuple)
        g_slots = [None if gk is None else self.ref(gk) for gk in (g if several else (g,))]
        outs = [(i, self.define(gp), gp.dtype) for i, gp in enumerate(grads) if gp is not None]

        def run():
            gs = [None if k is None else values[k] for k in g_slots]
            result = ctx.backward(tuple(gs) if several else gs[0])
            if not isinstance(result, tuple):
                result = (result,)
            for i, k, dtype in outs:
                values[k] = result[i].astype(dtype, copy=False)
            ctx.release()
        self._append(run, [k for k in g_slots if k is not None])

    def set_grad(self, tensor, grad):
        values, k = self.values, self.ref(grad)

        def run():
            tensor.grad = values[k]
        self._append(run, ())  # no device work: it only names the array

    def call(self, fn, inputs, outputs):
        """outputs = fn(*inputs), arrays: a computation outside the ops (a gradient sum, a sample's argmax)."""
        values, ins = self.values, [self.ref(a) for a in inputs]
        slots = [self.define(o) for o in outputs]

        def run():
            result = fn(*[values[i] for i in ins])
            if len(slots) == 1:
                values[slots[0]] = result
            else:
                for k, r in zip(slots, result):
                    values[k] = r
        self._append(run, ins)

    def write(self, write, target, value, index=None):
        """write(target, value, index) in place; an index array a recorded step made (a mask from the batch) is read
        from its slot at each replay, as getitem's is."""
        values, t = self.values, self.ref(target)
        v = self.ref(value) if hasattr(value, "shape") else None
        parts = index if isinstance(index, tuple) else (index,)
        index_slots = [k for k in (self.slot_of.get(id(p)) for p in parts if hasattr(p, "shape")) if k is not None]
        index = self._from_slots(index)

        def run():
            write(values[t], value if v is None else values[v], index.resolve() if isinstance(index, Live) else index)
        self._append(run, [t] + ([] if v is None else [v]) + index_slots)

    def draw(self, rng, method, args, kwargs, out):
        values, k = self.values, self.define(out)
        self.generator(rng)

        def run():
            values[k] = getattr(rng, method)(*args, **kwargs)
        self._append(run, ())

    def run_each_time(self, fn):
        """fn() at this point of every replay (the optimizer's update, gradient clipping)."""
        self._append(fn, None)

    def _append(self, run, reads):
        """An instruction and the slots it reads (None: unknown, as the optimizer's update reads every .grad)."""
        self.tape.append(run)
        self.reads.append(reads)


class StepPlan:
    """One training step, recorded by ``compile_step``; ``step(batch, **scalars)`` replays it.
    ``loss``: the recorded step's loss; ``replays``: how many steps replayed it; ``pool``: the memory its
    arrays come from (``pool.allocations``: the blocks taken from the system, which replays leave as
    they are)."""

    def __init__(self, model, optimizer, loss_fn, batch, scalars, clip):
        self.model, self.optimizer, self.clip = model, optimizer, clip
        self.params = list(optimizer.params)
        data = batch.data if isinstance(batch, Tensor) else batch
        self.input = Tensor(module_for_device(model.device).array(data, copy=True))  # the static batch buffer
        self.scalars = dict(scalars)
        self.replays = 0
        self.graph = None
        self.side = None  # a second stream the replay may run products on (minivae/_gpu/gemm.py's SideStream)
        from minivae._pool import ArrayPool  # here, not at import: it loads ctypes and reaches into NumPy
        self.pool = ArrayPool()  # the memory of the replays' arrays (minivae/_pool.py)
        self._record(loss_fn)

    def _record(self, loss_fn):
        if engine._recorder is not None:
            raise PlanError("a step plan is already recording (plans do not nest)")
        recorder = _Recorder()
        lives = {name: Live(value, (lambda n: lambda: self.scalars[n])(name), name)
                 for name, value in self.scalars.items()}
        self.optimizer._follow_parameters()  # (made before model.to(): its buffers follow now, not inside the step)
        self.optimizer.zero_grad()
        # what the tape will read and write by reference: step() refuses to replay once they are replaced
        self._arrays, self._state = [p.data for p in self.params], self.optimizer._buffers
        engine._recorder = recorder
        _refusals.clear()
        try:
            with self.pool:  # the recorded step's arrays, once freed, are the replays' memory
                recorder.define(self.input.data, written=False)
                loss = loss_fn(self.input, **lives)
                if not isinstance(loss, Tensor) or loss.data.size != 1:
                    raise PlanError(f"loss_fn must return a one-element tensor, got {loss!r:.80}")
                loss.backward()
                if self.clip is not None:
                    from minivae.optim import clip_grad_norm_
                    params, clip = self.params, self.clip
                    recorder.run_each_time(lambda: clip_grad_norm_(params, clip))
                    engine.unrecorded(clip_grad_norm_, params, clip)
                recorder.run_each_time(self.optimizer.step)
                engine.unrecorded(self.optimizer.step)
        except SystemError as error:  # an exception raised inside NumPy, lost on its way out (see _refusal)
            if _refusals:
                raise _refusals[0] from error
            raise PlanError("an error inside NumPy while the step was recorded, whose message NumPy lost as it freed "
                            f"memory of the plan's pool ({error}); run loss_fn once eagerly to see it") from error
        finally:
            engine._recorder = None
            _refusals.clear()
        # the recorded step's loss, without its graph (which would keep every activation), in memory of its own
        self.loss = Tensor(loss.data.copy())
        self._loss_slot = recorder.slot_of[id(loss.data)]
        self.tape, self.values, self.live_constants = recorder.tape, recorder.values, recorder.live_constants
        self.reads = recorder.reads
        recorder.forward_only()
        self.live_params, self.generators = recorder.live_params, recorder.generators
        # the slots a replay writes are emptied after it (the step's arrays are freed, as eager frees its
        # graph); the others hold what the step reads by reference: parameters, constants
        self._temporary = [k for k in recorder.written if k != self._loss_slot]
        self._clear()
        self._check_arrays("during the recorded step (by the optimizer's step(), which copies a parameter's .data "
                           "replaced by hand back into its buffer)")

    def _check_arrays(self, when="since it was recorded"):
        """A PlanError once a parameter's array, or the optimizer's state, is not the one the tape reads and writes
        (Module.to() or a hand replaced it): a replay would go on computing with and updating the old arrays,
        silently. Identity comparisons only: this runs at every step."""
        for i, (p, a) in enumerate(zip(self.params, self._arrays)):
            if p.data is not a:
                name = next((n for n, q in self.model.named_parameters() if q is p), f"the optimizer's parameter {i}")
                raise PlanError(f"parameter {name!r}: its array is not the one this plan recorded (recorded: {a.dtype} "
                                f"{a.shape} on {device_of(a)}, now: {p.dtype} {p.shape} on {p.device}); it was replaced "
                                f"{when}, and a replay would go on reading and updating the old one. Compile a new plan "
                                "(compile_step) after moving the model, replacing its parameters or adding a param group to the "
                                "optimizer (which lays its parameters out again)")
        if self.optimizer._buffers is not self._state:
            raise PlanError(f"the optimizer's state buffers are not the ones this plan recorded: they were laid out "
                            f"again {when}, and a replay would go on updating the old ones. Compile a new plan "
                            "(compile_step)")

    def step(self, batch, **scalars):
        """One training step on ``batch`` (copied into the plan's static buffer), with the named
        scalars of ``compile_step`` set to these values (the others keep theirs); returns the loss
        (a one-element tensor on the model's device; after ``capture()`` it is the graph's own buffer,
        which the next step overwrites: read it, or copy it, before then). Refused (PlanError, before
        anything changes) once a parameter's array or the optimizer's state is not the one recorded
        (``model.to()`` moved it): the replay would go on with the old arrays."""
        self._check_arrays()
        data = batch.data if isinstance(batch, Tensor) else batch
        if data.shape != self.input.shape or data.dtype != self.input.dtype:
            raise PlanError(f"this plan was recorded for batches of shape {self.input.shape} and dtype "
                            f"{self.input.dtype}; got {data.shape} {data.dtype} (run a batch of another size "
                            "with an eager step, or compile a plan for it)")
        unknown = set(scalars) - set(self.scalars)
        if unknown:
            raise PlanError(f"unknown scalars {sorted(unknown)}; this plan was recorded with {sorted(self.scalars)}")
        self.scalars.update(scalars)
        if isinstance(data, numpy.ndarray) and not isinstance(self.input.data, numpy.ndarray):
            self.input.data.set(data)  # from the host into the device buffer
        else:
            self.input.data[...] = data
        self.fill_live_constants()
        if self.graph is not None:
            self.graph.launch()
        else:
            self.run_tape()
        return Tensor(self.values[self._loss_slot])

    def capture(self):
        """From now on, replay this plan as one CUDA graph a step (a model on the GPU; see
        minivae/_gpu/graph.py for what a graph can replay)."""
        from minivae._gpu.graph import CudaGraphStep
        self.graph = CudaGraphStep(self)
        return self

    def fill_live_constants(self):
        for a, x in self.live_constants:
            a.fill(x.resolve())

    def run_tape(self):
        """Run the tape once (parameters, optimizer state and model state change in place). As
        compile_step's zero_grad did before the recorded step, the last step's gradients are let go
        first (their memory serves this step's); each parameter's .grad is then set by the tape, exactly
        where the recorded backward pass set it. With a side stream (``self.side``, during a CUDA-graph
        capture that asks for one) the weight gradients' products run beside the rest of the backward pass."""
        for p in self.params:
            p.grad = None
        side, values = self.side, self.values
        with self.pool:
            for run, reads in zip(self.tape, self.reads):
                # work queued on the side stream is waited for by the first instruction that reads what it
                # makes, or that may (reads None: the optimizer's update), and by the end of the step
                if side is not None and side.outputs and (reads is None or side.makes([values[k] for k in reads])):
                    side.join()
                run()
            if side is not None:
                side.join()
            self._clear()
        self.replays += 1

    def _clear(self):
        values = self.values
        for k in self._temporary:
            values[k] = None

    def __len__(self):
        return len(self.tape)


def compile_step(model, optimizer, loss_fn, example_batch, clip=None, **scalars):
    """Run one training step of ``loss_fn`` (forward, backward, optional gradient clipping to the norm
    ``clip``, ``optimizer.step()``) while recording it, and return the ``StepPlan`` that replays it.

    ``loss_fn(batch, **scalars)`` returns the loss tensor; ``batch`` is the plan's static input (a
    tensor of example_batch's shape and dtype, on the model's device), and each scalar (``step=0``,
    ``beta=1.0``) is live: ``plan.step(batch, step=t)`` replays with the new value. The recorded step is
    a real step (the parameters move), the same as one eager step."""
    return StepPlan(model, optimizer, loss_fn, example_batch, scalars, clip)
