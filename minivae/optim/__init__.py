"""Optimizers with PyTorch's names: ``step()``, ``zero_grad()``, ``state_dict()``."""
import math
import numbers

import numpy

from minivae._backend import device_of, fused, get_array_module, module_for_device, to_device
from minivae.engine import Tensor


class Optimizer:
    """Keeps the parameters, and ``n_buffers`` state buffers laid out alike, in flat buffers (one
    per parameter group, device and dtype: a float64 parameter is never cast); each parameter's
    ``.data`` is a view into its buffer. Subclasses implement ``update(i, p, g, kernel, options)``
    for one parameter, and ``update_all(group, grads, kernel)`` for a whole flat buffer in one
    launch (the CUDA kernels, whose launches cost more than their arithmetic here).

    ``params`` is an iterable of tensors or, as in PyTorch, of dicts ``{"params": [...], "lr": ...}``
    whose other entries override the defaults; ``param_groups`` holds one dict per group, and a
    change to a group's "lr" (a scheduler's) applies from the next ``step()``. A group may set only
    the options the constructor takes (any other is refused: it would be ignored), and each
    group's values are checked as the constructor's are. A parameter may appear once in all: twice,
    it would be updated twice a step (PyTorch refuses it in two groups too). A parameter that never
    gets a gradient (frozen) is never changed, nor its state.

    As in PyTorch, an optimizer made before ``Module.to(device)`` keeps working: at its next
    ``step()`` the flat buffers are laid out again where the parameters now are, the state (step
    counts, moments) carried over with them. So after ``Module.to(dtype)`` (``double()``...), with the
    state cast to the parameters' new dtype (torch's keeps each state tensor's old dtype: its Adam then refuses to step).

    Two step counts: ``steps``, the optimizer's (the ``step()`` calls at which any parameter had a
    gradient), and ``param_steps``, one per parameter (those at which that parameter had one: what
    PyTorch keeps as each parameter's state "step", and what Adam's bias correction reads).
    """

    n_buffers = 0
    buffer_names = ()

    def __init__(self, params, defaults):
        name = type(self).__name__
        if isinstance(params, (Tensor, dict)):
            raise TypeError(f"{name} takes an iterable of tensors or of param-group dicts, not a single "
                            f"{type(params).__name__}: wrap it in a list")
        params = list(params)
        is_group = [isinstance(g, dict) for g in params]
        if any(is_group) and not all(is_group):
            raise TypeError(f"{name} takes either tensors or param-group dicts, not a mix of both")
        self.check_options(defaults, f"{name}: ")
        self.defaults = dict(defaults)
        self.param_groups = [self._group(g, f"{name} param group {k}: " if all(is_group) else f"{name}: ")
                             for k, g in enumerate(params if params and all(is_group) else [{"params": params}])]
        self.params = [p for g in self.param_groups for p in g["params"]]
        if not self.params:
            raise ValueError(f"{name} got an empty parameter list")
        _refuse_duplicates(self.param_groups, name)
        self.steps = 0
        self.param_steps = [0] * len(self.params)
        self._flatten()

    def _group(self, g, where):
        """The param group of dict ``g``: the defaults, overridden by g's options, each checked."""
        name = type(self).__name__
        if not isinstance(g, dict):
            raise TypeError(f"{where}a param group is a dict {{'params': [...], option: value}}, not {type(g).__name__}")
        if "params" not in g:
            raise ValueError(f"{where}no 'params' entry")
        unknown = sorted(set(g) - set(self.defaults) - {"params"}, key=str)
        if unknown:
            raise ValueError(f"{where}unknown option {', '.join(map(repr, unknown))}, which would be ignored: "
                             f"{name}'s options are {', '.join(self.defaults)}")
        if isinstance(g["params"], (set, frozenset)):
            raise TypeError(f"{where}params must be an ordered collection of tensors (a list), not a set: the order "
                            "of a set changes from run to run, and with it the state_dict's parameter indices")
        group = {**self.defaults, **g, "params": [g["params"]] if isinstance(g["params"], Tensor) else list(g["params"])}
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{where}{name} optimizes tensors, not {type(p).__name__}")
        self.check_options(group, where)
        return group

    def add_param_group(self, param_group):
        """Add a param group (a dict ``{"params": [...], option: value}``, the constructor's defaults for the
        options it leaves out), as torch's: checked as the constructor's groups are (a parameter already in
        another group is refused); its parameters come after the others in ``params`` (so the state_dict indices of
        those stay) and start with no state. The flat buffers are laid out again, each state value copied on
        its device into the new layout (no copy to the host). A scheduler made before knows nothing of the new
        group (as in torch): make the scheduler after adding every group."""
        name = type(self).__name__
        group = self._group(param_group, f"{name}.add_param_group: ")
        _refuse_duplicates(self.param_groups + [group], name)
        self._follow_parameters()  # (the parameters moved since the last step: the state follows them first)
        old = [list(buffer) for buffer in self._buffers]
        self._grow_for(group)
        self.param_groups.append(group)
        self.params += group["params"]
        self.param_steps += [0] * len(group["params"])
        self._flatten()
        for new, before in zip(self._buffers, old):
            for i, b in enumerate(before):
                new[i][...] = b

    def _grow_for(self, group):
        """Make room in the state for what ``group`` (about to be added) needs that no group had (Adam's v̂max)."""

    def _flatten(self):
        group_of = [k for k, g in enumerate(self.param_groups) for _ in g["params"]]
        self._views, self._buffers, self._groups = flatten(self.params, companions=self.n_buffers, keys=group_of)
        for flat in self._groups:
            flat.options = self.param_groups[group_of[flat.indices[0]]]

    def check_options(self, options, where):
        """Raise a ValueError (TypeError for a value that is not a number) for a hyperparameter out of
        its range; ``where`` (the optimizer, and the group) starts the message."""
        _check_number(where, "learning rate (lr)", options["lr"], lambda lr: lr > 0, "> 0")

    @property
    def lr(self):
        """The first group's learning rate; setting it sets every group's."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        for g in self.param_groups:
            g["lr"] = value

    def zero_grad(self, set_to_none=True):
        """Let go of every parameter's gradient (``.grad = None``, torch's default), or with ``set_to_none=False``
        fill each existing one with zeros in place (a gradient of zeros is a gradient: step() then updates that
        parameter, its momentum and weight decay acting, as torch's). A gradient array that cannot be written
        (a read-only one set by hand, such as NumPy's broadcast_to) is replaced by zeros of its shape."""
        _zero_grads(self.params, set_to_none, type(self).__name__)

    def step(self):
        """Update every parameter that has a gradient; one whose ``.grad`` is None is skipped as in PyTorch
        (its value, its state and its step count stay). Without any gradient at all this does nothing:
        no step count advances."""
        if not any(p.grad is not None for p in self.params):
            return
        self.count_step()
        self._follow_parameters()
        for group in self._groups:
            kernel = fused(self.kernel, get_array_module(group.flat), group.flat)
            if getattr(kernel, "ONE_LAUNCH", False):
                self.update_all(group, [self.params[i].grad for i in group.indices], kernel)
            else:
                for i in group.indices:
                    p = self.params[i]
                    if p.grad is not None:
                        self.update(i, p.data.reshape(-1), p.grad.reshape(-1), kernel, group.options)
            for i in group.indices:
                self.params[i]._version += self.params[i].grad is not None  # changed in place

    def count_step(self):
        """Advance ``steps``, and ``param_steps`` of each parameter that has a gradient (step() does; so does a
        CUDA graph's replay of a step, minivae/_gpu/graph.py, whose kernels read the counts it sets)."""
        self.steps += 1
        for i, p in enumerate(self.params):
            self.param_steps[i] += p.grad is not None

    def _follow_parameters(self):
        """Where a parameter's ``.data`` was rebound (by Module.to(), or by hand): after a move to another device or
        a cast to another dtype, lay the flat buffers out again there, the state carried over (each buffer cast to
        its parameter's new dtype: the flat buffers hold one dtype each); on the same device and dtype, copy a
        parameter that has a gradient back into its view (step() is about to update it there). Called by step(),
        and by compile_step before it records, so that the arrays a plan records are the ones the optimizer
        updates."""
        for i, p in enumerate(self.params):
            if p.data is not self._views[i]:  # .data was rebound: by Module.to(), or by hand
                view = self._views[i]
                if device_of(p.data) != device_of(view) or p.data.dtype != view.dtype:  # the buffers and state follow
                    state = self.state_dict()  # (a copy to the host, once)
                    for key, value in state.items():
                        index, _, buffer = key.partition(".")
                        if buffer in self.buffer_names:
                            state[key] = value.astype(self.params[int(index)].dtype, copy=False)
                    self._flatten()
                    self.load_state_dict(state)
                    break
                if p.grad is not None:  # copy it back
                    self._views[i][...] = p.data
                    p.data = self._views[i]

    def launch_scalars(self):
        """What each one-launch kernel of ``step()`` reads from memory inside a CUDA graph
        (minivae/_gpu/graph.py) rather than from its arguments, in launch order (one group after
        another): none here; Adam's bias-corrected (step size, ε̂) and decay 1 − lr·wd, one triple per step count in a group."""
        return []

    optional_buffers = ()  # buffers a parameter may not have yet (SGD's momentum before its first step with one)

    def _holds(self, name, i):
        """Whether parameter i has its buffer ``name`` (one of ``optional_buffers``; the others it always has)."""
        return True

    def _set_held(self, name, held):
        """After a load: which parameters have buffer ``name`` (one of ``optional_buffers``), a bool each."""

    def state_dict(self, param_groups=False):
        """The optimizer's step count ("steps"), each parameter's ("<i>.step", PyTorch's per-parameter "step")
        and per-parameter buffers ("<i>.<buffer>", of its shape and dtype; one a parameter does not have yet,
        SGD's momentum before its first step with μ > 0, left out as torch leaves it out), i the parameter's
        index in ``params``, as NumPy arrays (for .npz checkpoints).

        With ``param_groups=True`` it holds the hyperparameters too, as torch's does: each group's options
        (and what a scheduler keeps there, ``initial_lr``...) as "param_groups.<k>.<option>" arrays (a pair
        such as betas as a 1-D array), which ``load_state_dict`` restores. Not by default: a training
        checkpoint (minivae.training) keeps the run's settings, which ``--override-settings`` may change."""
        _check_flag(f"{type(self).__name__}.state_dict: ", "param_groups", param_groups)
        out = {"steps": numpy.array(self.steps)}
        out.update({f"{i}.step": numpy.array(t) for i, t in enumerate(self.param_steps)})
        for name, buffer in zip(self.buffer_names, self._buffers):
            for i, (p, b) in enumerate(zip(self.params, buffer)):
                if name not in self.optional_buffers or self._holds(name, i):
                    out[f"{i}.{name}"] = _host(b).reshape(p.shape)
        if param_groups:
            for k, group in enumerate(self.param_groups):
                for option, value in group.items():
                    if option != "params":
                        out[f"param_groups.{k}.{option}"] = numpy.array(value)
        return out

    def load_state_dict(self, state):
        """Copy ``state`` (as ``state_dict()`` returns it) into this optimizer, on whatever device its
        parameters are: a value already there directly (a device array is never routed through the host),
        one from elsewhere by one explicit copy. The keys must be exactly this optimizer's (an optional buffer,
        SGD's momentum, may be left out: that parameter has none yet); each buffer must have its parameter's
        dtype (no silent cast) and shape (or the flat shape (numel,), which minivae's checkpoints held before);
        "steps" and each "<i>.step" an integer >= 0. A state without any "<i>.step" (minivae's checkpoints
        before them, whose Adam counted the optimizer's steps for every parameter) gives every parameter the
        count "steps". "param_groups.<k>.<option>" entries (``state_dict(param_groups=True)``) set group k's
        option, checked as the constructor's; without them each group keeps its own. Everything is checked
        before anything is copied, so a refused state leaves the optimizer as it was."""
        name = type(self).__name__
        counts = [f"{i}.step" for i in range(len(self.params))]
        required = {f"{i}.{b}" for b in self.buffer_names if b not in self.optional_buffers
                    for i in range(len(self.params))}
        optional = {f"{i}.{b}" for b in self.optional_buffers for i in range(len(self.params))}
        groups = self._loaded_groups(state)
        expected = {"steps"} | required | (set(counts) if set(counts) & set(state) else set())
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - expected - optional - set(groups[1]), key=str)
        if missing or unexpected:
            raise ValueError(f"state_dict does not fit this {name} of {len(self.params)} parameters: "
                             f"missing {missing}, unexpected {unexpected}")
        steps = _count(state, "steps", name)
        param_steps = [_count(state, key, name) for key in counts] if counts[0] in state else [steps] * len(counts)
        copies = []
        for key, buffer in zip(self.buffer_names, self._buffers):
            for i, (p, b) in enumerate(zip(self.params, buffer)):
                if f"{i}.{key}" not in state:  # (an optional buffer this parameter does not have)
                    copies.append((b, None))
                    continue
                value = state[f"{i}.{key}"]
                value = value.data if isinstance(value, Tensor) else value
                shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
                if dtype != b.dtype or shape not in (p.shape, (p.numel(),)):
                    raise ValueError(f"state_dict: {i}.{key} is {_describe(value)}, this {name} expects "
                                     f"{b.dtype} of shape {p.shape} (its parameter {i}'s)")
                copies.append((b, value))
        self.steps, self.param_steps = steps, param_steps
        for group, loaded in zip(self.param_groups, groups[0]):
            group.update(loaded)
        for b, value in copies:
            if value is None:
                b.fill(0)
            else:
                b[...] = to_device(value, device_of(b)).reshape(-1)
        for key in self.optional_buffers:
            self._set_held(key, [f"{i}.{key}" in state for i in range(len(self.params))])

    def _loaded_groups(self, state):
        """The "param_groups.<k>.<option>" entries of ``state``: (per group, the options it sets, as Python values,
        each group checked with them), and the keys read. An unknown option or group is refused."""
        name = type(self).__name__
        loaded, keys = [{} for _ in self.param_groups], []
        for key in state:
            if not (isinstance(key, str) and key.startswith("param_groups.")):
                continue
            k, _, option = key[len("param_groups."):].partition(".")
            if not (k.isdigit() and int(k) < len(self.param_groups)):
                raise ValueError(f"state_dict: {key} is of param group {k}, this {name} has "
                                 f"{len(self.param_groups)} param groups")
            if option not in self.defaults and option not in SCHEDULER_OPTIONS:
                raise ValueError(f"state_dict: {key}: {name} has no option {option!r}")
            value = state[key]
            value = numpy.asarray(value.data if isinstance(value, Tensor) else _host(value))
            if value.ndim > 1 or value.dtype.kind not in "biuf":
                raise ValueError(f"state_dict: {key} is {_describe(value)}, not a number, a flag or a 1-D array of numbers")
            loaded[int(k)][option] = value.item() if value.ndim == 0 else tuple(value.tolist())
            keys.append(key)
        for k, (group, options) in enumerate(zip(self.param_groups, loaded)):
            if options:
                self.check_options({**group, **options}, f"state_dict: {name} param group {k}: ")
        return loaded, keys


SCHEDULER_OPTIONS = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")  # what schedulers keep in groups


class SGD(Optimizer):
    """torch.optim.SGD's update, for each parameter with a gradient g:

        d ← −g under ``maximize``, else g;   d ← d + wd·p  (``weight_decay`` wd ≠ 0: L2, on the gradient)
        with momentum μ ≠ 0:  v ← d at the buffer's first step (undamped, as torch's new buffer),
                              v ← μ·v + (1 − dampening)·d after;   d ← d + μ·v (``nesterov``) or v
        p ← p − lr·d

    As torch's, a parameter's momentum buffer v starts at its first step with a gradient and μ ≠ 0
    (``momentum_started``): a parameter whose gradients start later starts it then, and so does one whose group's
    momentum is raised from 0 mid-run (its v ← d then, not a continuation of anything). With μ = 0, v is neither
    read nor written (a buffer started before waits, as torch's, for μ ≠ 0 again). A parameter without a buffer has
    no "<i>.momentum" in ``state_dict()``, as torch's state has no "momentum_buffer". ``nesterov`` needs μ > 0 and
    dampening = 0 (refused otherwise, as torch). The defaults are torch 2.13's (lr = 1e-3). fused:
    minivae/_cpu/sgd.py, minivae/_gpu/sgd.py (kernels/optim.cu sgd_step)."""

    n_buffers, buffer_names, kernel = 1, ("momentum",), "sgd"
    optional_buffers = ("momentum",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                                  "nesterov": nesterov, "maximize": maximize})

    def _flatten(self):
        started = getattr(self, "momentum_started", [])
        self.momentum_started = started + [False] * (len(self.params) - len(started))  # (the added groups' too)
        super()._flatten()

    def _holds(self, name, i):
        return self.momentum_started[i]

    def _set_held(self, name, held):
        self.momentum_started = list(held)

    def check_options(self, options, where):
        super().check_options(options, where)
        _check_number(where, "momentum", options["momentum"], lambda mu: mu >= 0, ">= 0")
        _check_number(where, "dampening", options["dampening"], lambda d: True, "")
        _check_number(where, "weight_decay", options["weight_decay"], lambda wd: wd >= 0, ">= 0")
        _check_flag(where, "nesterov", options["nesterov"])
        _check_flag(where, "maximize", options["maximize"])
        if options["nesterov"] and (options["momentum"] <= 0 or options["dampening"] != 0):
            raise ValueError(f"{where}Nesterov momentum requires a momentum > 0 and zero dampening, got momentum="
                             f"{options['momentum']!r}, dampening={options['dampening']!r}")

    momentum = property(lambda self: self.param_groups[0]["momentum"])

    def _first(self, i, options):
        """Whether parameter i's step starts its momentum buffer (μ ≠ 0 and none started yet)."""
        return options["momentum"] != 0 and not self.momentum_started[i]

    def _firsts(self, group):
        """Whether each launch of ``update_all`` starts its parameters' buffers (False, True: in that order, each
        once, among the group's parameters with a gradient); one launch when all agree, the usual case."""
        return sorted({self._first(i, group.options) for i in group.indices if self.params[i].grad is not None})

    def update_all(self, group, grads, kernel):
        o = group.options
        for first in self._firsts(group):
            own = [g if self._first(i, o) == first else None for i, g in zip(group.indices, grads)]
            kernel.sgd_step_all(group.flat, group.companions[0], own, group.starts, o["lr"], o["momentum"],
                                o["dampening"], o["weight_decay"], o["nesterov"], o["maximize"], first)
        if o["momentum"] != 0:
            for i, g in zip(group.indices, grads):
                self.momentum_started[i] |= g is not None

    def update(self, i, p, g, kernel, options):
        lr, mu, wd, first = options["lr"], options["momentum"], options["weight_decay"], self._first(i, options)
        v = self._buffers[0][i]
        self.momentum_started[i] |= mu != 0
        if kernel is not None:
            kernel.sgd_step(p, g, v, lr, mu, options["dampening"], wd, options["nesterov"], options["maximize"], first)
            return
        d = -g if options["maximize"] else g
        if wd != 0:
            d = d + wd * p
        if mu == 0:  # no buffer: v is neither read nor written
            p -= lr * d
            return
        if first:
            v[...] = d
        else:
            v *= mu
            v += (1 - options["dampening"]) * d
        p -= lr * (d + mu * v if options["nesterov"] else v)


class Adam(Optimizer):
    """torch.optim.Adam's update, for each parameter with a gradient g (t its own step count):

        g ← −g under ``maximize``;  with ``weight_decay`` wd ≠ 0: p ← p·(1 − lr·wd) if ``decoupled_weight_decay``
        (AdamW), else g ← g + wd·p (L2, on the gradient)
        m ← β₁m + (1−β₁)g;  v ← β₂v + (1−β₂)g²;  v̂max ← max(v̂max, v) with ``amsgrad`` (the denominator's v then)
        p ← p − lr·m̂/(√v̂ + ε), with bias-corrected m̂, v̂ (Kingma & Ba 2015), written as
        p ← p − lr_t·m/(√v + ε_t), lr_t = lr·√(1−β₂ᵗ)/(1−β₁ᵗ), ε_t = ε·√(1−β₂ᵗ).

    t is the parameter's own step count (``param_steps``: the steps at which it had a gradient), as
    ``torch.optim.Adam``'s: a parameter whose gradients start later (frozen at first, or unused by
    the first batches) or skip steps takes the bias correction of its own count, so its first update
    moves each entry by lr·|g|/(|g| + ε) ≈ lr, as every parameter's first does.

    With Numba each parameter's slice of the flat buffers is updated in one fused pass
    (minivae/_cpu/adam.py): copying the gradients into one buffer to make a single call would
    cost more memory traffic than the calls it saves. On the GPU a whole flat buffer is updated in
    one launch per count among its parameters with a gradient (one launch when all have the same count,
    the usual case), each launch given the gradients of that count's parameters and None for the others;
    in a CUDA graph each launch reads (lr_t, ε_t, 1 − lr·wd) from memory (``launch_scalars``), so a
    scheduler's lr applies there too.

    State: "m", "v" per parameter, and "max_v" (v̂max) when any group has ``amsgrad``.
    """

    buffer_names, kernel = ("m", "v", "max_v"), "adam"  # (max_v only with amsgrad: see _flatten)
    decoupled = False  # AdamW's decay is decoupled whatever its groups say

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        options = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
                   "maximize": maximize}
        if not self.decoupled:
            options["decoupled_weight_decay"] = decoupled_weight_decay
        super().__init__(params, options)

    def _flatten(self):
        if "n_buffers" not in vars(self):  # m and v; and v̂max where a group has amsgrad (fixed from then on)
            self.n_buffers = 3 if any(g["amsgrad"] for g in self.param_groups) else 2
            self.buffer_names = Adam.buffer_names[:self.n_buffers]
        super()._flatten()

    def _grow_for(self, group):
        """An added group with amsgrad where none had it: v̂max from now on (zeros for the parameters before, which
        never read it: their groups have no amsgrad)."""
        if group["amsgrad"] and self.n_buffers < 3:
            self.n_buffers, self.buffer_names = 3, Adam.buffer_names

    def check_options(self, options, where):
        super().check_options(options, where)
        betas = options["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise TypeError(f"{where}betas must be a pair (β₁, β₂), got {betas!r}")
        for k, beta in enumerate(betas):
            _check_number(where, f"betas[{k}]", beta, lambda b: 0 <= b < 1, "in [0, 1)")
        _check_number(where, "eps", options["eps"], lambda eps: eps >= 0, ">= 0")
        _check_number(where, "weight_decay", options["weight_decay"], lambda wd: wd >= 0, ">= 0")
        for flag in ("amsgrad", "maximize", "decoupled_weight_decay"):
            if flag in options:
                _check_flag(where, flag, options[flag])

    betas = property(lambda self: self.param_groups[0]["betas"])
    eps = property(lambda self: self.param_groups[0]["eps"])

    def _scalars(self, options, t):
        """(lr_t, β₁, β₂, ε_t, L2 weight decay, decoupled decay factor 1 − lr·wd) at count t."""
        b1, b2 = options["betas"]
        step_size = options["lr"] * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        wd = options["weight_decay"]
        decoupled = self.decoupled or options.get("decoupled_weight_decay", False)
        return (step_size, b1, b2, options["eps"] * math.sqrt(1 - b2 ** t),
                0.0 if decoupled else wd, 1 - options["lr"] * wd if decoupled else 1.0)

    def _counts(self, group):
        """The step counts of the group's parameters that have a gradient, each once, in increasing order:
        one launch of ``update_all`` each. (A CUDA graph replays the same launches: the same parameters have
        gradients at every step, so their counts advance together and stay as many.)"""
        return sorted({self.param_steps[i] for i in group.indices if self.params[i].grad is not None})

    def launch_scalars(self):
        """(lr_t, ε_t, 1 − lr·wd) of each launch: what a CUDA graph's Adam kernels read from memory."""
        return [(step_size, eps_hat, decay) for g in self._groups for t in self._counts(g)
                for step_size, _, _, eps_hat, _, decay in [self._scalars(g.options, t)]]

    def _max_v(self, options):
        """The v̂max buffers when ``options`` (a group's) has amsgrad, else None."""
        if not options["amsgrad"]:
            return None
        if self.n_buffers < 3:
            raise ValueError(f"{type(self).__name__}: amsgrad was switched on in a param group after the optimizer was "
                             "made without it, which has no v̂max state: make the optimizer with amsgrad=True")
        return self._buffers[2]

    def update_all(self, group, grads, kernel):
        o = group.options
        max_v = None if self._max_v(o) is None else group.companions[2]
        for t in self._counts(group):
            own = [g if self.param_steps[i] == t else None for i, g in zip(group.indices, grads)]
            kernel.adam_step_all(group.flat, *group.companions[:2], own, group.starts, *self._scalars(o, t),
                                 o["maximize"], max_v)

    def update(self, i, p, g, kernel, options):
        step_size, b1, b2, eps_hat, wd, decay = self._scalars(options, self.param_steps[i])
        m, v = self._buffers[0][i], self._buffers[1][i]
        max_v = self._max_v(options)
        max_v = max_v if max_v is None else max_v[i]
        if kernel is not None:
            kernel.adam_step(p, g, m, v, step_size, b1, b2, eps_hat, wd, decay, options["maximize"], max_v)
            return
        if options["maximize"]:
            g = -g
        if decay != 1:
            p *= decay
        if wd != 0:
            g = g + wd * p
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        if max_v is not None:
            get_array_module(v).maximum(max_v, v, out=max_v)
            v = max_v
        p -= step_size * m / (v ** 0.5 + eps_hat)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), torch.optim.AdamW: before each update
    p ← p·(1 − lr·wd), the gradient left as it is; ``weight_decay`` defaults to 1e-2 as torch's. Otherwise
    Adam's update, options and state (see Adam)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


def _count(state, key, name):
    """state[key] as an int, or a ValueError unless it is an integer >= 0 (a Python int or a 0-d integer array)."""
    value = state[key]
    value = value.data if isinstance(value, Tensor) else value
    if not (isinstance(value, (numbers.Integral, numpy.ndarray)) and not isinstance(value, (bool, numpy.bool_))
            and numpy.shape(value) == () and numpy.asarray(value).dtype.kind in "iu" and value >= 0):
        raise ValueError(f"state_dict: {key} is {_describe(value)}, {name} expects an integer >= 0")
    return int(value)


def _zero_grads(params, set_to_none, who):
    """zero_grad of an optimizer's or a module's parameters (``who`` names it in the error of a flag that is not a
    bool): each gradient let go, or with ``set_to_none=False`` each existing one filled with zeros in place; a
    gradient array that cannot be written (a read-only one set by hand, such as NumPy's broadcast_to) is replaced by
    zeros of its shape."""
    _check_flag(f"{who}.zero_grad: ", "set_to_none", set_to_none)
    for p in params:
        if set_to_none or p.grad is None:
            p.grad = None
        elif getattr(getattr(p.grad, "flags", None), "writeable", True):
            p.grad.fill(0)
        else:
            p.grad = get_array_module(p.grad).zeros(p.grad.shape, p.grad.dtype)


def _host(a):
    return numpy.array(a.get() if hasattr(a, "get") else a)


def _check_flag(where, name, value):
    if not isinstance(value, (bool, numpy.bool_)):
        raise TypeError(f"{where}{name} must be True or False, got {value!r}")


def _check_number(where, name, value, ok, rule):
    if isinstance(value, (bool, numpy.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}{name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{where}{name} must be a finite number{' ' if rule else ''}{rule}, got {value!r}")


def _refuse_duplicates(groups, name):
    """A ValueError for a tensor listed twice (identity: a Tensor's == is elementwise)."""
    seen = {}
    for k, g in enumerate(groups):
        for j, p in enumerate(g["params"]):
            if id(p) in seen:
                k0, j0 = seen[id(p)]
                where = f"twice in param group {k}" if k0 == k else f"in param groups {k0} and {k}"
                raise ValueError(f"{name}: a parameter appears {where} (entries {j0} and {j}); listed twice it "
                                 "would be updated twice a step. List each once (Module.parameters() does)")
            seen[id(p)] = (k, j)


def _describe(value):
    if not hasattr(value, "shape"):
        return f"a {type(value).__name__}, not an array"
    return f"{value.dtype} of shape {value.shape}"


class FlatGroup:
    """The parameters ``indices`` of one (key, device, dtype), laid end to end in ``flat``, with their
    ``companions`` (optimizer state) laid out alike; parameter j of the group occupies
    ``starts[j]:starts[j + 1]`` (``starts`` lives on the group's device, for the kernels).
    ``options`` is the optimizer's parameter group (hyperparameters) these parameters belong to."""

    def __init__(self, indices, flat, companions, starts):
        self.indices, self.flat, self.companions, self.starts = indices, flat, companions, starts
        self.options = {}


def flatten(params, companions=0, keys=None):
    """Move parameters into one flat buffer per (key, device, dtype), ``keys`` one per parameter (an
    optimizer's group index; all equal if None); each ``p.data`` becomes a view. Also allocates
    ``companions`` zeroed buffers laid out alike (optimizer state).
    Returns the parameter views, per companion each parameter's 1-D slice (in ``params`` order),
    and the ``FlatGroup``s."""
    by_kind = {}
    for i, p in enumerate(params):
        by_kind.setdefault((0 if keys is None else keys[i], p.device, p.dtype), []).append(i)
    slices = [[None] * len(params) for _ in range(companions)]
    groups = []
    for indices in by_kind.values():
        first = params[indices[0]]
        starts = numpy.cumsum([0] + [params[i].numel() for i in indices])
        flat = first.xp.empty(int(starts[-1]), first.dtype)
        extra = [first.xp.zeros(int(starts[-1]), first.dtype) for _ in range(companions)]
        for i, start, stop in zip(indices, starts[:-1], starts[1:]):
            p = params[i]
            view = flat[start:stop].reshape(p.shape)
            view[...] = p.data
            p.data = view
            for k in range(companions):
                slices[k][i] = extra[k][start:stop]
        groups.append(FlatGroup(indices, flat, extra, first.xp.asarray(starts.astype(numpy.int64))))
    return [p.data for p in params], slices, groups


def clip_grad_norm_(params, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale all gradients together so their global p-norm (``norm_type`` p) is at most ``max_norm``, as
    torch.nn.utils.clip_grad_norm_: ‖g‖_p = (Σ |gᵢ|^p)^(1/p) over every entry of every gradient (p = 2 by
    default; ``inf`` or "inf": max |gᵢ|), then g ← g·min(1, max_norm/(‖g‖ + 10⁻⁶)) (torch's formula, whose 10⁻⁶
    also scales a ‖g‖ in (max_norm − 10⁻⁶, max_norm] by a factor just under 1); returns ‖g‖ before, as a 0-d
    float64 array on the device of the first gradient (torch's is of the gradients' dtype; reading it is the
    caller's choice: no copy to the host here), a 0-d zero without any gradient. ``params``: an iterable of
    tensors, or one tensor (as PyTorch's).

    ``error_if_nonfinite=True``: a RuntimeError, before any gradient changes, where ‖g‖ is NaN or infinite (as
    torch's); it reads ‖g‖ on the host, one copy from the device (none by default). ``foreach`` is taken for
    torch's signature and changes nothing (it picks torch's kernels).

    Gradients on several devices, as torch's: the per-device part (Σ |gᵢ|^p, or max |gᵢ|) is computed on each
    device, the parts are moved to the first gradient's device and combined there, and each gradient is scaled
    on its own device by the scale moved there: the only copies between devices are of those 0-d values (none
    when every gradient is on one device), and no value is read on the host for a branch."""
    if isinstance(params, Tensor):  # iterating a tensor would give its rows, which have no .grad
        params = [params]
    p = _norm_type(norm_type)
    _check_flag("clip_grad_norm_: ", "error_if_nonfinite", error_if_nonfinite)
    if foreach is not None:
        _check_flag("clip_grad_norm_: ", "foreach", foreach)
    by_device = {}
    for param in params:
        if param.grad is not None:
            by_device.setdefault(device_of(param.grad), []).append(param.grad)
    first = next(iter(by_device), "cpu")
    xp = module_for_device(first)
    if not by_device:
        return xp.asarray(xp.zeros((), numpy.float64))
    if p == math.inf:
        parts = [_max(module_for_device(device), [abs(g).max().astype(numpy.float64) for g in grads if g.size])
                 for device, grads in by_device.items()]
        total = xp.asarray(_max(xp, [to_device(m, first) for m in parts]))
    else:
        power = (lambda g: g * g) if p == 2 else (lambda g: abs(g) ** g.dtype.type(p))
        sums = [sum(power(g).sum().astype(numpy.float64) for g in grads) for grads in by_device.values()]  # one a device
        total = sum(to_device(s, first) for s in sums)
        total = xp.asarray(xp.sqrt(total) if p == 2 else total ** (1 / p))  # (NumPy's sqrt of 0-d gives a scalar)
    if error_if_nonfinite and not bool(xp.isfinite(total)):  # (the one read on the host, asked for)
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` is {float(total)}, "
                           "non-finite, so it cannot be clipped. To disable this error and scale the gradients by the "
                           "non-finite norm anyway, set `error_if_nonfinite=False`")
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)  # no branch: no copy to the host
    for device, grads in by_device.items():
        here = to_device(scale, device)
        for g in grads:
            with numpy.errstate(invalid="ignore"):  # (∞·0 where ‖g‖ = ∞: NaN, as torch's, without NumPy's warning)
                g *= here.astype(g.dtype)
    return total


def _max(xp, values):
    """The largest of 0-d arrays on one device, a 0-d float64 zero for none (an empty gradient's norm)."""
    out = xp.zeros((), numpy.float64)
    for v in values:
        out = xp.maximum(out, v)
    return out


def _norm_type(norm_type):
    """``norm_type`` as a float p > 0 (inf included; torch's "inf" string too), or a ValueError."""
    try:
        p = float(norm_type) if not isinstance(norm_type, (bool, numpy.bool_)) else None
    except (TypeError, ValueError):
        p = None
    if p is None or not p > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be a number > 0 or inf (\"inf\"), got {norm_type!r}")
    return p


def clip_grad_value_(params, clip_value, foreach=None):
    """Clamp every gradient entry into [−clip_value, clip_value] in place, as torch.nn.utils.clip_grad_value_
    (a NaN stays NaN); returns None. ``params``: an iterable of tensors, or one tensor. ``foreach`` is taken for
    torch's signature and changes nothing. Each gradient on its own device, nothing read on the host."""
    if isinstance(params, Tensor):
        params = [params]
    _check_number("clip_grad_value_: ", "clip_value", clip_value, lambda c: True, "")
    if foreach is not None:
        _check_flag("clip_grad_value_: ", "foreach", foreach)
    for param in params:
        g = param.grad
        if g is not None:
            c = g.dtype.type(clip_value)
            get_array_module(g).clip(g, -c, c, out=g)


from minivae.optim import lr_scheduler  # noqa: E402, F401  (torch.optim.lr_scheduler's place)
