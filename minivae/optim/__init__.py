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
    counts, moments) carried over with them.

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
        self.param_groups = []
        for k, g in enumerate(params if params and all(is_group) else [{"params": params}]):
            where = f"{name} param group {k}: " if all(is_group) else f"{name}: "
            if "params" not in g:
                raise ValueError(f"{where}no 'params' entry")
            unknown = sorted(set(g) - set(defaults) - {"params"}, key=str)
            if unknown:
                raise ValueError(f"{where}unknown option {', '.join(map(repr, unknown))}, which would be ignored: "
                                 f"{name}'s options are {', '.join(defaults)}")
            group = {**defaults, **g, "params": [g["params"]] if isinstance(g["params"], Tensor) else list(g["params"])}
            for p in group["params"]:
                if not isinstance(p, Tensor):
                    raise TypeError(f"{where}{name} optimizes tensors, not {type(p).__name__}")
            self.check_options(group, where)
            self.param_groups.append(group)
        self.params = [p for g in self.param_groups for p in g["params"]]
        if not self.params:
            raise ValueError(f"{name} got an empty parameter list")
        _refuse_duplicates(self.param_groups, name)
        self.steps = 0
        self.param_steps = [0] * len(self.params)
        self._flatten()

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

    def zero_grad(self):
        for p in self.params:
            p.grad = None

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
        """Where a parameter's ``.data`` was rebound (by Module.to(), or by hand): after a move to another device,
        lay the flat buffers out again there, the state carried over; on the same device, copy a parameter
        that has a gradient back into its view (step() is about to update it there). Called by step(), and by
        compile_step before it records, so that the arrays a plan records are the ones the optimizer updates."""
        for i, p in enumerate(self.params):
            if p.data is not self._views[i]:  # .data was rebound: by Module.to(), or by hand
                if device_of(p.data) != device_of(self._views[i]):  # moved: the buffers and the state follow
                    state = self.state_dict()  # (a copy to the host, once)
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

    def state_dict(self):
        """The optimizer's step count ("steps"), each parameter's ("<i>.step", PyTorch's per-parameter "step")
        and per-parameter buffers ("<i>.<buffer>", of its shape and dtype), i the parameter's index in
        ``params``, as NumPy arrays (for .npz checkpoints). The hyperparameters (``param_groups``) are not in
        it: they come from the constructor, so a resumed run may change them."""
        out = {"steps": numpy.array(self.steps)}
        out.update({f"{i}.step": numpy.array(t) for i, t in enumerate(self.param_steps)})
        for name, buffer in zip(self.buffer_names, self._buffers):
            for i, (p, b) in enumerate(zip(self.params, buffer)):
                out[f"{i}.{name}"] = _host(b).reshape(p.shape)
        return out

    def load_state_dict(self, state):
        """Copy ``state`` (as ``state_dict()`` returns it) into this optimizer, on whatever device its
        parameters are: a value already there directly (a device array is never routed through the host),
        one from elsewhere by one explicit copy. The keys must be exactly this optimizer's; each buffer must
        have its parameter's dtype (no silent cast) and shape (or the flat shape (numel,), which minivae's
        checkpoints held before); "steps" and each "<i>.step" an integer >= 0. A state without any "<i>.step"
        (minivae's checkpoints before them, whose Adam counted the optimizer's steps for every parameter)
        gives every parameter the count "steps". Everything is checked before anything is copied, so a
        refused state leaves the optimizer as it was."""
        name = type(self).__name__
        counts = [f"{i}.step" for i in range(len(self.params))]
        expected = {"steps"} | {f"{i}.{b}" for b in self.buffer_names for i in range(len(self.params))}
        expected |= set(counts) if set(counts) & set(state) else set()
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected, key=str)
        if missing or unexpected:
            raise ValueError(f"state_dict does not fit this {name} of {len(self.params)} parameters: "
                             f"missing {missing}, unexpected {unexpected}")
        steps = _count(state, "steps", name)
        param_steps = [_count(state, key, name) for key in counts] if counts[0] in state else [steps] * len(counts)
        copies = []
        for key, buffer in zip(self.buffer_names, self._buffers):
            for i, (p, b) in enumerate(zip(self.params, buffer)):
                value = state[f"{i}.{key}"]
                value = value.data if isinstance(value, Tensor) else value
                shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
                if dtype != b.dtype or shape not in (p.shape, (p.numel(),)):
                    raise ValueError(f"state_dict: {i}.{key} is {_describe(value)}, this {name} expects "
                                     f"{b.dtype} of shape {p.shape} (its parameter {i}'s)")
                copies.append((b, value))
        self.steps, self.param_steps = steps, param_steps
        for b, value in copies:
            b[...] = to_device(value, device_of(b)).reshape(-1)


class SGD(Optimizer):
    """torch.optim.SGD's update, for each parameter with a gradient g:

        d ← −g under ``maximize``, else g;   d ← d + wd·p  (``weight_decay`` wd ≠ 0: L2, on the gradient)
        with momentum μ ≠ 0:  v ← d at the parameter's first step (undamped, as torch's new buffer),
                              v ← μ·v + (1 − dampening)·d after;   d ← d + μ·v (``nesterov``) or v
        p ← p − lr·d

    The first step is the parameter's own (``param_steps``: a parameter whose gradients start later starts its
    buffer then, as torch's). With μ = 0, v ← d: v is written even then, so its state is the same on every path
    (NumPy, Numba, CUDA). ``nesterov`` needs μ > 0 and dampening = 0 (refused otherwise, as torch). The defaults
    are torch 2.13's (lr = 1e-3). fused: minivae/_cpu/sgd.py, minivae/_gpu/sgd.py (kernels/optim.cu sgd_step)."""

    n_buffers, buffer_names, kernel = 1, ("momentum",), "sgd"

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, *,
                 maximize=False):
        super().__init__(params, {"lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
                                  "nesterov": nesterov, "maximize": maximize})

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

    def _firsts(self, group):
        """Whether each launch of ``update_all`` is of parameters at their first step (False, True: in that order,
        each once, among the group's parameters with a gradient); one launch when all agree, the usual case."""
        return sorted({self.param_steps[i] == 1 for i in group.indices if self.params[i].grad is not None})

    def update_all(self, group, grads, kernel):
        o = group.options
        for first in self._firsts(group):
            own = [g if (self.param_steps[i] == 1) == first else None for i, g in zip(group.indices, grads)]
            kernel.sgd_step_all(group.flat, group.companions[0], own, group.starts, o["lr"], o["momentum"],
                                o["dampening"], o["weight_decay"], o["nesterov"], o["maximize"], first)

    def update(self, i, p, g, kernel, options):
        lr, mu, wd, first = options["lr"], options["momentum"], options["weight_decay"], self.param_steps[i] == 1
        v = self._buffers[0][i]
        if kernel is not None:
            kernel.sgd_step(p, g, v, lr, mu, options["dampening"], wd, options["nesterov"], options["maximize"], first)
            return
        d = -g if options["maximize"] else g
        if wd != 0:
            d = d + wd * p
        if mu == 0 or first:
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


def clip_grad_norm_(params, max_norm):
    """Scale all gradients together so their global L2 norm ‖g‖ = √(Σ gᵢ²) is at most ``max_norm``
    (g ← g·min(1, max_norm/(‖g‖ + 10⁻⁶)), torch's formula, whose 10⁻⁶ also scales a ‖g‖ in
    (max_norm − 10⁻⁶, max_norm] by a factor just under 1); returns ‖g‖ before, as a 0-d float64 array on
    the device of the first gradient (reading it is the caller's choice: no copy to the host here).
    ``params``: an iterable of tensors, or one tensor (as PyTorch's).

    Gradients on several devices, as torch's: Σ gᵢ² is summed on each device, the partial sums are
    moved to the first gradient's device and added there, and each gradient is scaled on its own device
    by the scale moved there: the only copies between devices are of those 0-d values (none when every
    gradient is on one device), and no value is read on the host for a branch."""
    if isinstance(params, Tensor):  # iterating a tensor would give its rows, which have no .grad
        params = [params]
    by_device = {}
    for p in params:
        if p.grad is not None:
            by_device.setdefault(device_of(p.grad), []).append(p.grad)
    first = next(iter(by_device), "cpu")
    xp = module_for_device(first)
    sums = [sum((g * g).sum().astype(numpy.float64) for g in grads) for grads in by_device.values()]  # one a device
    total = xp.asarray(xp.sqrt(sum(to_device(s, first) for s in sums)))  # (NumPy's sqrt of 0-d gives a scalar)
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)  # no branch: no copy to the host
    for device, grads in by_device.items():
        here = to_device(scale, device)
        for g in grads:
            g *= here.astype(g.dtype)
    return total


from minivae.optim import lr_scheduler  # noqa: E402, F401  (torch.optim.lr_scheduler's place)
