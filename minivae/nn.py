"""Modules with named parameters, as in ``torch.nn``: Linear, MLP, Conv2d, ConvTranspose2d, activations, LayerNorm,
BatchNorm1d, BatchNorm2d, Embedding, the recurrent RNN, GRU, LSTM and their cells, losses, state_dict."""
import math
import numbers
import operator
import sys
import types
import warnings
from collections import namedtuple
from collections.abc import Iterable, Mapping

import numpy

from minivae import functional, ops  # noqa: F401  (functional re-exported: torch.nn.functional's place)
from minivae._backend import device_of, module_for_device, to_device, to_numpy
from minivae._io import load_npz, save_npz_atomic
from minivae.engine import Tensor, array_function, to_arguments
from minivae.ops.conv import group_count, pair_argument
from minivae.ops.nn_ops import check_dropout_probability
from minivae.optim import _zero_grads
from minivae.random import resolve


class Parameter(Tensor):
    """A tensor that a Module registers as a parameter (``requires_grad`` defaults to True), as
    ``torch.nn.Parameter``: registered whatever its ``requires_grad``, so a frozen weight is saved
    and loaded with the others. Any other tensor that requires grad assigned to a Module registers too."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)


class Buffer(Tensor):
    """A tensor that a Module registers as a buffer when it is assigned to an attribute (``m.stats = nn.Buffer(x)``),
    as ``torch.nn.Buffer`` (torch >= 2.3): ``register_buffer(name, x, persistent)`` by assignment. The memory of
    ``data`` is shared, not copied (torch's detach()); ``persistent`` (keyword, as torch's) says whether
    ``state_dict`` holds it. A buffer never requires grad here (torch's keeps ``data``'s requires_grad).
    ``Buffer()`` is an empty float32 tensor, as torch's."""

    __slots__ = ("persistent",)

    def __init__(self, data=None, *, persistent=True):
        if data is None:
            data = numpy.empty(0, numpy.float32)
        if not isinstance(persistent, bool):
            raise TypeError(f"Buffer: persistent must be True or False, got {persistent!r}")
        super().__init__(data.data if isinstance(data, Tensor) else data)
        if isinstance(data, Tensor):
            self._counter = data._counter  # (one memory: an in-place change of either counts for both, as detach())
        self.persistent = persistent


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns, as torch's: the module's keys the state lacked and the state's keys the
    module lacks (both empty after a strict load)."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class Module:
    """Holds parameters (``Parameter``s, and other tensors that require grad), buffers (``register_buffer``: state
    that is saved but not trained) and submodules, found by attribute name. Calling a module runs its ``forward``.
    ``training`` is True until ``eval()``; Dropout, BatchNorm1d and BatchNorm2d are the modules here that behave
    differently in the two modes.
    A module need not call ``super().__init__()`` (its tables are made at its first assignment or registration)."""

    training = True

    def _tables(self):
        """The module's tables of parameters, buffers, submodules and non-persistent buffer names, made at first use."""
        d = self.__dict__
        if "_parameters" not in d:
            d["_parameters"], d["_modules"] = {}, {}
        if "_buffers" not in d:
            d["_buffers"], d["_non_persistent_buffers_set"] = {}, set()
        return d["_parameters"], d["_buffers"], d["_modules"]

    def __setattr__(self, name, value):
        parameters, buffers, modules = self._tables()
        if isinstance(value, (list, tuple)) and any(isinstance(v, (Module, Tensor)) for v in value):
            raise TypeError(f"{type(self).__name__}.{name}: a plain {type(value).__name__} of modules or tensors "
                            "would hide their parameters; use nn.ModuleList (or nn.Sequential)")
        if name in buffers and not isinstance(value, (Parameter, Module)):  # a buffer stays one (torch's)
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(minivae Buffer, Tensor or None expected)")
            buffers[name] = _buffer(value)
            if isinstance(value, Buffer):  # its own persistence; a plain tensor keeps the name's (torch's)
                self._persist(name, value.persistent)
            object.__setattr__(self, name, buffers[name])
            return
        if isinstance(value, Buffer) and name not in parameters and name not in modules:
            self.register_buffer(name, value, value.persistent)  # (a name that is a plain attribute: torch's KeyError)
            return
        if name in parameters and value is None:  # a parameter set to None stays registered as None (torch's)
            parameters[name] = None
            object.__setattr__(self, name, None)
            return
        is_parameter = is_module = False
        if isinstance(value, Parameter) or (isinstance(value, Tensor) and value.requires_grad):
            is_parameter = True
        elif isinstance(value, Module):
            is_module = True
        if name in parameters and not is_parameter:  # (silently unregistered, it would leave the optimizer's list)
            raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' (a Parameter, a Tensor "
                            "that requires grad, or None expected)")
        if name in modules and not is_module and not is_parameter:  # a submodule's name takes a module or None
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(minivae Module or None expected)")
            modules[name] = None  # registered as None, as torch's (listed nowhere)
            object.__setattr__(self, name, None)
            return
        if not is_parameter:  # (a name already of its kind keeps its place in the order, as torch's)
            parameters.pop(name, None)
        if not is_module:
            modules.pop(name, None)
        buffers.pop(name, None)
        self._non_persistent_buffers_set.discard(name)
        if is_parameter:
            parameters[name] = value
        elif is_module:
            modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        """Remove an attribute, and its registration (a parameter, buffer or submodule), as torch's."""
        for table in self._tables():
            table.pop(name, None)
        self._non_persistent_buffers_set.discard(name)
        object.__delattr__(self, name)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- registration, as torch's ------------------------------------------------------------------------------
    def _check_name(self, kind, name, table):
        """torch's checks of a new name: a string, without ".", not empty, not another attribute already."""
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got: {name}' if kind == "module"
                           else f'{kind} name can\'t contain "."')
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if hasattr(self, name) and name not in table:
            raise KeyError(f"attribute '{name}' already exists")

    def register_buffer(self, name, tensor, persistent=True):
        """Add a buffer: a tensor of the module's state that is no parameter (a running mean, a loss's weight, a
        fixed prior). It is an attribute, moves with ``to``, and with ``persistent`` is saved and loaded by
        ``state_dict``/``load_state_dict``; it is never in ``parameters()`` and never gets a gradient. ``None`` is
        allowed (listed nowhere until a tensor is assigned). Assigning a tensor to the name later replaces the buffer.

        A tensor that requires grad is held detached (its memory, not the object), so that no gradient reaches it
        (torch keeps the tensor itself, which then gets one)."""
        _, buffers, _ = self._tables()
        self._check_name("buffer", name, buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(minivae Tensor or None required)")
        buffers[name] = _buffer(tensor)
        self._persist(name, persistent)
        object.__setattr__(self, name, buffers[name])

    def _persist(self, name, persistent):
        """Mark the buffer ``name`` persistent (in state_dict) or not."""
        (self._non_persistent_buffers_set.discard if persistent else self._non_persistent_buffers_set.add)(name)

    def register_parameter(self, name, param):
        """Add a parameter under ``name`` (as assigning it does, with torch's checks of the name): a Parameter, or any
        leaf tensor (minivae's parameters are plain tensors that require grad; torch takes nn.Parameter alone), or
        None (registered, and listed nowhere)."""
        parameters, _, _ = self._tables()
        self._check_name("parameter", name, parameters)
        if param is not None:
            if not isinstance(param, Tensor):
                raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                                "(minivae Parameter, Tensor or None required)")
            if not param.is_leaf:
                raise ValueError(f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters must be "
                                 f"created explicitly. To express '{name}' as a function of another Tensor, compute "
                                 "the value in the forward() method.")
        parameters[name] = param
        object.__setattr__(self, name, param)

    def add_module(self, name, module):
        """Add ``module`` (or None) as the submodule ``name``, with torch's checks of the name."""
        _, _, modules = self._tables()
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_name("module", name, modules)
        modules[name] = module
        object.__setattr__(self, name, module)

    register_module = add_module

    def get_submodule(self, target):
        """The submodule at the dotted path ``target`` ("" is this module), e.g. "encoder.0"; torch's
        AttributeError naming the first piece that is missing or not a module."""
        if target == "":
            return self
        mod = self
        for item in target.split("."):
            if not hasattr(mod, item):
                raise AttributeError(f"{type(mod).__name__} has no attribute `{item}`")
            mod = getattr(mod, item)
            if not isinstance(mod, Module):
                raise AttributeError(f"`{item}` is not an nn.Module")
        return mod

    def get_parameter(self, target):
        """The parameter at the dotted path ``target`` (e.g. "encoder.0.weight"), else torch's AttributeError."""
        return self._get(target, "_parameters", "an nn.Parameter")

    def get_buffer(self, target):
        """The buffer at the dotted path ``target``, else torch's AttributeError."""
        return self._get(target, "_buffers", "a buffer")

    def _get(self, target, table, kind):
        """The entry of ``table`` at the dotted path ``target``, else torch's AttributeError naming the missing piece,
        or saying the attribute is not ``kind`` (as torch's: a parameter registered as None is not a parameter, a
        buffer registered as None is a buffer, None)."""
        path, _, name = target.rpartition(".")
        mod = self.get_submodule(path)
        if not hasattr(mod, name):
            raise AttributeError(f"{type(mod).__name__} has no attribute `{name}`")
        entries = mod.__dict__.get(table, {})
        if name not in entries or (entries[name] is None and table == "_parameters"):
            raise AttributeError(f"`{name}` is not {kind}")
        return entries[name]

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, tensor) for every parameter, in the order they were assigned (this module's
        own, then, with ``recurse``, each submodule's). A tensor registered under several names (tied
        weights: ``self.dec = self.enc``) comes once, under its first name, as in PyTorch: an optimizer
        given it twice would update it twice a step. ``remove_duplicate=False`` lists every name
        (``state_dict``'s keys, as PyTorch's)."""
        return self._named_tensors("_parameters", prefix, recurse, remove_duplicate)

    def _named_tensors(self, table, prefix, recurse, remove_duplicate):
        """named_parameters' and named_buffers' walk over ``table`` ("_parameters" or "_buffers")."""
        seen = set() if remove_duplicate else None
        for name, t in self._walk(table, prefix, recurse):
            if seen is not None:
                if id(t) in seen:  # identity: a Tensor's == is elementwise
                    continue
                seen.add(id(t))
            yield name, t

    def _walk(self, table, prefix, recurse):
        dot = prefix + "." if prefix else ""  # prefix "enc": "enc.weight", as torch's (not "encweight")
        for name, t in self.__dict__.get(table, {}).items():
            if t is not None:
                yield dot + name, t
        if recurse:
            for name, m in self.__dict__.get("_modules", {}).items():
                if m is not None:
                    yield from m._walk(table, dot + name, True)

    def parameters(self, recurse=True):
        """Every parameter once (see ``named_parameters``)."""
        return [p for _, p in self.named_parameters(recurse=recurse)]

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, tensor) for every buffer (persistent or not; a None one is skipped), in named_parameters'
        order: this module's, then each submodule's; a buffer registered under several names once, under its first,
        unless ``remove_duplicate=False`` (torch's)."""
        return self._named_tensors("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        """Every buffer once (see ``named_buffers``; a list, as ``parameters``; torch's is an iterator)."""
        return [b for _, b in self.named_buffers(recurse=recurse)]

    def zero_grad(self, set_to_none=True):
        """Let go of every parameter's gradient (``.grad = None``, torch 2's default), or with ``set_to_none=False``
        set each existing one to 0 in place (the same array, as torch's zero_()): the optimizers' rule."""
        _zero_grads(self.parameters(), set_to_none, type(self).__name__)

    def _entries(self):
        """Every registered submodule, in order, a module registered twice (under two names) each time."""
        return list(self.__dict__.get("_modules", {}).values())

    def named_children(self):
        """(name, module) of each direct submodule, in the order they were assigned; a module registered under
        several names comes once, under its first (torch's)."""
        seen = set()
        for name, m in self.__dict__.get("_modules", {}).items():
            if m is None:
                continue
            if id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        """The direct submodules, each once (a list; torch's is an iterator)."""
        return [m for _, m in self.named_children()]

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """(dotted name, module) of this module ("" or ``prefix``) and then, depth first, every submodule in
        assignment order, as torch's: a module reached twice (a shared submodule) comes once, under its first name,
        unless ``remove_duplicate=False``. ``memo`` (a set of ids) holds the modules already listed."""
        if remove_duplicate:
            memo = set() if memo is None else memo
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self.__dict__.get("_modules", {}).items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self):
        """This module and every submodule, each once, in named_modules' order."""
        for _, m in self.named_modules():
            yield m

    def apply(self, fn):
        """Call ``fn`` on every submodule (each child's tree first, depth first) and then on this module; returns
        self. E.g. ``model.apply(init)`` with an ``init(m)`` that re-draws the weights of each Linear."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on every parameter (False freezes them: they get no gradient, and stay
        registered and saved); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def train(self, mode=True):
        """Set ``training`` on this module and every submodule; returns self. ``mode`` must be a bool (torch's check)."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be True or False, got {mode!r}")
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def extra_repr(self):
        """The text between this module's parentheses in its repr, before its submodules (e.g. Linear's sizes);
        override it in a module of your own, as in torch."""
        return ""

    def __repr__(self):
        """torch's layout: ``Name(extra)``, or the extra lines and then each submodule as ``(name): repr``, indented."""
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [f"({name}): " + _indent(repr(m)) for name, m in self.__dict__.get("_modules", {}).items()]
        if len(lines) == 1 and not children:
            return f"{type(self).__name__}({lines[0]})"
        if not lines and not children:
            return f"{type(self).__name__}()"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines + children) + "\n)"

    @property
    def device(self):
        """Where the parameters live ("cpu" or "cuda"), or the buffers in a module without parameters; "cpu" for a
        module with neither."""
        return next((t.device for t in [*self.parameters(), *self.buffers()]), "cpu")

    def to(self, *args, **kwargs):
        """Move every parameter and buffer (and its gradient) to a device, and/or cast the floating ones to a
        floating dtype, in place; returns self. The arguments are torch's: ``to(device)``, ``to(dtype)``,
        ``to(device, dtype)``, ``to(tensor)``, or the keywords ``device=`` and ``dtype=``; integer buffers
        (BatchNorm's num_batches_tracked) keep their dtype, as in torch.

        The tensors stay the same objects (each one's ``.data`` is replaced, as PyTorch's ``Module.to``
        does), so references to them see the change: an optimizer made before keeps working, its state
        following the parameters (to their device, and cast to their dtype) at its next ``step()``. A step plan
        compiled before does not: its ``step()`` refuses to replay (compile a new one after). The buffers change
        in the same way (torch's ``to`` makes new buffer tensors: here the registered ones keep their identity, as
        the parameters)."""
        device, dtype = to_arguments(args, kwargs, f"{type(self).__name__}.to")
        if dtype is not None and dtype.kind != "f":
            raise TypeError(f"{type(self).__name__}.to takes a floating dtype (float16, float32, float64), not {dtype}")
        xp = None if device is None else module_for_device(device)
        for p in [*self.parameters(), *self.buffers()]:
            for name in ("data", "grad"):
                a = getattr(p, name)
                if a is None:
                    continue
                if device is not None and device_of(a) != device:
                    a = xp.asarray(a) if device != "cpu" else to_numpy(a)
                if dtype is not None and a.dtype.kind == "f" and a.dtype != dtype:
                    a = a.astype(dtype)
                if a is not getattr(p, name):
                    setattr(p, name, a)
        return self

    def cpu(self): return self.to("cpu")
    def cuda(self): return self.to("cuda")
    def float(self): return self.to(numpy.float32)
    def double(self): return self.to(numpy.float64)
    def half(self): return self.to(numpy.float16)

    def _state(self, prefix=""):
        """(key, module, name, tensor) of state_dict, torch's order: each module's parameters, then its persistent
        buffers, then each submodule's (a tied tensor or shared module under each of its names; None ones skipped).
        A key is ``prefix`` + the dotted path, concatenated as torch's (``prefix="enc."`` gives "enc.weight")."""
        for name, p in self.__dict__.get("_parameters", {}).items():
            if p is not None:
                yield prefix + name, self, name, p
        skip = self.__dict__.get("_non_persistent_buffers_set", ())
        for name, b in self.__dict__.get("_buffers", {}).items():
            if b is not None and name not in skip:
                yield prefix + name, self, name, b
        for name, m in self.__dict__.get("_modules", {}).items():
            if m is not None:
                yield from m._state(prefix + name + ".")

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """name → a NumPy copy of each parameter and persistent buffer (copied from the GPU if it is there),
        frozen parameters included, in torch's order (a module's parameters, its buffers, then its submodules').
        A tied parameter is saved under each of its names, as in PyTorch, so the keys do not depend on which
        weights are tied.

        Args:
            destination: a dict to fill and return (torch's); None: a new dict.
            prefix: put before every key as it is, torch's: ``prefix="vae."`` gives "vae.enc.weight" (no dot added).
            keep_vars: the registered tensors themselves (the Parameters and buffers, on their device) instead of
                copies, as torch's; a change to one then changes the module. (torch's keep_vars=False gives detached
                tensors sharing the module's memory; minivae gives host copies, which a later step leaves as saved.)
        """
        if destination is None:
            destination = {}
        if not isinstance(prefix, str):
            raise TypeError(f"state_dict: prefix must be a string, got {type(prefix).__name__}")
        for key, _, _, t in self._state(prefix):
            destination[key] = t if keep_vars else numpy.array(t.numpy())
        return destination

    def load_state_dict(self, state, strict=True, assign=False):
        """Copy ``state`` into the parameters and persistent buffers, in place, on whatever device they are: a
        value on the tensor's device directly (a device array is never routed through the host), one from
        elsewhere by one explicit copy (an upload, or ``get()``). Shapes and dtypes must match exactly (no silent
        cast, where torch casts: a ValueError naming the key and both); with ``strict`` the keys too (a ValueError
        naming the missing and unexpected ones; torch raises RuntimeError), without it the keys both have are
        loaded. Everything is checked before anything is copied, so a refused state leaves the module as it was.

        With ``assign`` (torch's), nothing is copied: each parameter becomes the given tensor (a Parameter of the same
        memory, with the old parameter's requires_grad; a Parameter given is kept as it is) and each buffer the given
        tensor, on the device it is on (an ``nn.Buffer`` with its own persistence, as torch's setattr). As in torch,
        an optimizer made before then still holds the old parameters and no longer updates the module's: make the
        optimizer after loading (or load without ``assign``).

        Returns:
            IncompatibleKeys(missing_keys, unexpected_keys), torch's named tuple: the module's keys ``state``
            lacks (in the module's order) and ``state``'s keys the module lacks (in ``state``'s order).
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state).__name__}.")
        entries = list(self._state())
        own = {key for key, *_ in entries}
        missing = [key for key, *_ in entries if key not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict does not fit {type(self).__name__}: "
                             f"missing {missing}, unexpected {unexpected}")
        entries = [e for e in entries if e[0] in state]
        values = {}
        for key, _, _, p in entries:
            value = state[key]
            array = value.data if isinstance(value, Tensor) else value
            shape, dtype = getattr(array, "shape", None), getattr(array, "dtype", None)
            if shape != p.shape or dtype != p.dtype:
                raise ValueError(f"state_dict: {key} is {_describe(array)}, the model expects "
                                 f"{p.dtype} of shape {p.shape}")
            values[key] = value if assign else array
        for key, module, name, p in entries:
            if not assign:
                p.data[...] = to_device(values[key], p.device)
                p._version += 1
            elif name in module.__dict__.get("_parameters", {}):
                value = values[key]
                value = value if isinstance(value, Parameter) else Parameter(value)
                module._parameters[name] = value.requires_grad_(p.requires_grad)
                object.__setattr__(module, name, value)
            elif isinstance(values[key], Buffer):  # assigned, with its own persistence (torch's setattr)
                setattr(module, name, values[key])
            else:
                value = values[key]
                module._buffers[name] = _buffer(value if isinstance(value, Tensor) else Tensor(value))
                object.__setattr__(module, name, module._buffers[name])
        return IncompatibleKeys(missing, unexpected)

    def save(self, path):
        """Write the parameters to an .npz file (atomically; never pickled)."""
        save_npz_atomic(path, self.state_dict())

    def load(self, path):
        self.load_state_dict(load_npz(path))
        return self


def _indent(text, spaces=2):
    """Every line but the first indented (torch's _addindent): a nested repr under its ``(name): ``."""
    return text.replace("\n", "\n" + " " * spaces)


def _buffer(tensor):
    """The tensor a buffer holds: ``tensor``, or where it requires grad its detached self (the same memory), so
    that no gradient ever reaches a buffer."""
    return tensor.detach() if tensor is not None and tensor.requires_grad else tensor


def _describe(value):
    if not hasattr(value, "shape"):
        return f"a {type(value).__name__}, not an array"
    return f"{value.dtype} of shape {value.shape}"


class ModuleList(Module):
    """A list of modules whose parameters are registered (as ``torch.nn.ModuleList``): entry i
    is the attribute "i", so its parameters are named "i.weight", …."""

    def __init__(self, modules=()):
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self)), _module(module))
        return self

    def extend(self, modules):
        for m in modules:
            self.append(m)
        return self

    def insert(self, index, module):
        """Put ``module`` before entry ``index`` (as list.insert); the entries after it become "i + 1"."""
        modules = self._entries()
        modules.insert(index, _module(module))
        for i, m in enumerate(modules):  # each re-registered in turn: "0", "1", … in order
            setattr(self, str(i), m)

    def __len__(self):
        return len(self.__dict__.get("_modules", {}))

    def __iter__(self):
        return iter(self._entries())

    def __getitem__(self, i):
        """Entry i; a slice gives a new ModuleList of those modules (their parameters shared), as torch's."""
        return ModuleList(self._entries()[i]) if isinstance(i, slice) else self._entries()[i]

    def __repr__(self):
        """torch's ModuleList repr: a run of entries with the same repr is one line, ``(0-2): 3 x Linear(…)``."""
        runs = []  # [first, last, repr]
        for i, m in enumerate(self._entries()):
            text = repr(m)
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        if not runs:
            return f"{type(self).__name__}()"
        lines = [_indent(f"({a}): {text}" if a == b else f"({a}-{b}): {b - a + 1} x {text}") for a, b, text in runs]
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def _module(value):
    if not isinstance(value, Module):
        raise TypeError(f"ModuleList holds modules, not {type(value).__name__}")
    return value


class _Named:
    """The mapping side of ModuleDict and ParameterDict: their entries are one of Module's tables (``_table``: 0 the
    parameters, 2 the submodules), in insertion order, as torch's; ``__setitem__`` is each one's own."""

    _table = None

    def _named(self):
        return self._tables()[self._table]

    def __getitem__(self, key):
        return self._named()[key]

    def __delitem__(self, key):
        self._named()[key]  # (torch's KeyError for a missing key)
        delattr(self, key)

    def __len__(self):
        return len(self._named())

    def __iter__(self):
        return iter(self._named())

    def __contains__(self, key):
        return key in self._named()

    def keys(self):
        return self._named().keys()

    def items(self):
        return self._named().items()

    def values(self):
        return self._named().values()

    def pop(self, key):
        """Remove the entry ``key`` and return it."""
        value = self[key]
        del self[key]
        return value

    def clear(self):
        for key in list(self):
            del self[key]


class ModuleDict(_Named, Module):
    """Modules by name, registered (as ``torch.nn.ModuleDict``): entry "enc" is the submodule "enc", its
    parameters "enc.weight", …; in insertion order. A key must be a valid module name (add_module's checks: a
    string without ".", not a method's name such as "keys")."""

    _table = 2

    def __init__(self, modules=None):
        if modules is not None:
            self.update(modules)

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def update(self, modules):
        """Add or replace entries from a mapping (in its order) or an iterable of (key, module) pairs, as torch's."""
        if isinstance(modules, Mapping) or isinstance(modules, ModuleDict):
            for key, module in modules.items():
                self[key] = module
            return
        if not isinstance(modules, Iterable):
            raise TypeError("ModuleDict.update should be called with an iterable of key/value pairs, but got "
                            f"{type(modules).__name__}")
        for j, pair in enumerate(modules):
            if not isinstance(pair, Iterable):
                raise TypeError(f"ModuleDict update sequence element #{j} should be Iterable; is {type(pair).__name__}")
            pair = tuple(pair)
            if len(pair) != 2:
                raise ValueError(f"ModuleDict update sequence element #{j} has length {len(pair)}; 2 is required")
            self[pair[0]] = pair[1]


def _parameter(value):
    """A tensor given to ParameterList or ParameterDict as a Parameter (a new tensor of the same memory, as torch's
    nn.Parameter(t)), a Parameter as it is."""
    if isinstance(value, Parameter):
        return value
    if not isinstance(value, Tensor):
        raise TypeError(f"a parameter must be a minivae Tensor, not {type(value).__name__}")
    return Parameter(value)


class ParameterList(Module):
    """A list of parameters, registered (as ``torch.nn.ParameterList``): entry i is the parameter "i". A tensor that
    is not a Parameter is made one (the same memory, requires_grad True, as torch's)."""

    def __init__(self, values=None):
        if values is not None:
            self.extend(values)

    def _index(self, i):
        i = operator.index(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} is out of range")
        return str(i % len(self))

    def __len__(self):
        return len(self._tables()[0])

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ParameterList([self[k] for k in range(len(self))[i]])
        return getattr(self, self._index(i))

    def __setitem__(self, i, value):
        setattr(self, self._index(i), _parameter(value))

    def __iter__(self):
        return iter([self[k] for k in range(len(self))])

    def append(self, value):
        self.register_parameter(str(len(self)), _parameter(value))
        return self

    def extend(self, values):
        if not isinstance(values, Iterable) or isinstance(values, Tensor):
            raise TypeError(f"ParameterList.extend should be called with an iterable, but got {type(values).__name__}")
        for v in values:
            self.append(v)
        return self

    __iadd__ = extend

    def extra_repr(self):
        return "\n".join(f"({i}): Parameter containing: [{p.dtype} of size {tuple(p.shape)}]" for i, p in enumerate(self))


class ParameterDict(_Named, Module):
    """Parameters by name, registered (as ``torch.nn.ParameterDict``), in insertion order; a tensor that is not a
    Parameter is made one. A key must be a valid parameter name (register_parameter's checks)."""

    _table = 0

    def __init__(self, parameters=None):
        if parameters is not None:
            self.update(parameters)

    def __setitem__(self, key, value):
        value = _parameter(value)
        if key in self._named():
            setattr(self, key, value)
        else:
            self.register_parameter(key, value)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def update(self, parameters):
        """Add or replace entries from a mapping (in its order) or an iterable of (key, tensor) pairs."""
        pairs = parameters.items() if isinstance(parameters, (Mapping, ParameterDict)) else parameters
        for key, value in pairs:
            self[key] = value

    def extra_repr(self):
        return "\n".join(f"({k}): Parameter containing: [{p.dtype} of size {tuple(p.shape)}]" for k, p in self.items())


class Linear(Module):
    """y = x W + b with W of shape (in_features, out_features).

    init "glorot": W ~ U(−a, a), a = √(6 / (in + out)) (Glorot & Bengio 2010), for tanh/sigmoid;
    init "he": W ~ N(0, 2 / in) (He et al. 2015), for ReLU. b = 0.
    The weights are drawn on the host from ``rng`` (the same values on every device), then moved to ``device``;
    without ``rng`` from the default generator (``minivae.manual_seed``).
    """

    def __init__(self, in_features, out_features, bias=True, *, rng=None, init="glorot", dtype=numpy.float32,
                 device="cpu"):
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:  # 0 is allowed, as in torch
                raise ValueError(f"Linear: {name} must be an integer >= 0, got {n!r}")
        rng = resolve(rng)
        if init == "glorot":  # (max: with a size 0 there are no weights to scale)
            a = math.sqrt(6.0 / max(in_features + out_features, 1))
            w = (2 * rng.uniform((in_features, out_features), numpy.float64) - 1) * a
        elif init == "he":
            w = rng.normal((in_features, out_features), numpy.float64) * math.sqrt(2.0 / max(in_features, 1))
        else:
            raise ValueError(f"init must be 'glorot' or 'he', not {init!r}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Tensor(w.astype(dtype), requires_grad=True)
        self.bias = Tensor(numpy.zeros(out_features, dtype), requires_grad=True) if bias else None
        self.to(device)

    def forward(self, x):
        return ops.linear(x, self.weight, self.bias) if self.bias is not None else ops.matmul(x, self.weight)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class GatedLinear(Module):
    """h = (x W + b) ⊙ σ(x V + c), a gated linear unit (Dauphin et al. 2017), the hidden layer of
    the VampPrior VAEs (Tomczak & Welling 2018). W and V are held as one (in, 2·out) matrix so
    the layer costs one matrix product; the gate starts half open."""

    def __init__(self, in_features, out_features, *, rng=None, dtype=numpy.float32, device="cpu"):
        self.linear = Linear(in_features, 2 * out_features, rng=rng, init="glorot", dtype=dtype, device=device)
        self.out_features = out_features

    def forward(self, x):
        h = self.linear(x)
        return h[..., :self.out_features] * ops.sigmoid(h[..., self.out_features:])


class Activation(Module):
    """An elementwise function as a module: ``Activation(fn)`` applies ``fn``. The activations below (ReLU, …) are
    its subclasses, with torch's names, arguments and reprs; those with arguments apply them in ``forward`` (their
    ``fn`` is that forward)."""

    @property
    def fn(self):
        """The function applied."""
        return self.__dict__.get("_fn") or self.forward

    @fn.setter
    def fn(self, value):
        self.__dict__["_fn"] = value

    def __init__(self, fn):
        self.fn = fn

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self):
        fn = self.fn  # an op's apply names its op; a function its own name
        return getattr(getattr(fn, "__self__", None), "name", None) or getattr(fn, "__name__", repr(fn))


def _inplace(module, inplace):
    """torch's ``inplace`` flag, accepted and shown in the repr; the result is a new tensor all the same (a value in
    minivae's graph never changes after its forward pass), so only code reading the input afterwards differs."""
    if not isinstance(inplace, bool):
        raise TypeError(f"{type(module).__name__}: inplace must be True or False, got {inplace!r}")
    return inplace


class ReLU(Activation):
    """max(x, 0) (gradient 0 at 0, as torch's)."""

    def __init__(self, inplace=False):
        self.fn, self.inplace = ops.relu, _inplace(self, inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Tanh(Activation):
    def __init__(self):
        self.fn = ops.tanh

    def extra_repr(self):
        return ""


class Sigmoid(Activation):
    def __init__(self):
        self.fn = ops.sigmoid

    def extra_repr(self):
        return ""


class Softplus(Activation):
    """log(1 + e^{βx})/β, and x itself where βx > ``threshold`` (torch's: values and gradient 1 there)."""

    def __init__(self, beta=1.0, threshold=20.0):
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return functional.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class LeakyReLU(Activation):
    """x for x > 0, ``negative_slope``·x otherwise (gradient ``negative_slope`` at 0, as torch's)."""

    def __init__(self, negative_slope=0.01, inplace=False):
        self.negative_slope, self.inplace = negative_slope, _inplace(self, inplace)

    def forward(self, x):
        return ops.leaky_relu(x, negative_slope=self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Activation):
    """x for x > 0, α·(eˣ − 1) otherwise (gradient α at 0, as torch's)."""

    def __init__(self, alpha=1.0, inplace=False):
        self.alpha, self.inplace = alpha, _inplace(self, inplace)

    def forward(self, x):
        return ops.elu(x, alpha=self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Activation):
    """x·Φ(x), or with ``approximate="tanh"`` ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (ops.gelu)."""

    def __init__(self, approximate="none"):
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return ops.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Activation):
    """x·σ(x) (SiLU, swish)."""

    def __init__(self, inplace=False):
        self.fn, self.inplace = ops.silu, _inplace(self, inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LogSigmoid(Activation):
    """log σ(x) (F.logsigmoid)."""

    def __init__(self):
        self.fn = ops.log_sigmoid

    def extra_repr(self):
        return ""


class Softsign(Activation):
    """x/(1 + |x|)."""

    def __init__(self):
        self.fn = ops.softsign

    def extra_repr(self):
        return ""


class Hardtanh(Activation):
    """x clamped to [min_val, max_val] (gradient 0 at the bounds and beyond, as torch's)."""

    def __init__(self, min_val=-1.0, max_val=1.0, inplace=False):
        if min_val > max_val:
            raise ValueError(f"Hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})")
        self.min_val, self.max_val, self.inplace = min_val, max_val, _inplace(self, inplace)

    def forward(self, x):
        return ops.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self):
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class ReLU6(Hardtanh):
    """min(max(x, 0), 6), torch's Hardtanh(0, 6)."""

    def __init__(self, inplace=False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class SELU(Activation):
    """λ·elu(x, α) with torch's constants (ops.selu)."""

    def __init__(self, inplace=False):
        self.fn, self.inplace = ops.selu, _inplace(self, inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class CELU(Activation):
    """x for x > 0, α(e^{x/α} − 1) otherwise."""

    def __init__(self, alpha=1.0, inplace=False):
        self.alpha, self.inplace = alpha, _inplace(self, inplace)

    def forward(self, x):
        return ops.celu(x, alpha=self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Mish(Activation):
    """x·tanh(softplus(x))."""

    def __init__(self, inplace=False):
        self.fn, self.inplace = ops.mish, _inplace(self, inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Hardsigmoid(Activation):
    """min(max(x + 3, 0), 6)/6."""

    def __init__(self, inplace=False):
        self.fn, self.inplace = ops.hardsigmoid, _inplace(self, inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Hardswish(Activation):
    """x·min(max(x + 3, 0), 6)/6."""

    def __init__(self, inplace=False):
        self.fn, self.inplace = ops.hardswish, _inplace(self, inplace)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class Identity(Module):
    """Its input, unchanged (the same tensor); any arguments are ignored, as torch's."""

    def __init__(self, *args, **kwargs):
        pass

    def forward(self, x):
        return x


class MSELoss(Module):
    """F.mse_loss as a module (torch's criterion): ``MSELoss(reduction="mean")(input, target)``."""

    def __init__(self, reduction="mean"):
        self.reduction = _reduction(self, reduction)

    def forward(self, input, target):
        return functional.mse_loss(input, target, reduction=self.reduction)


class BCELoss(Module):
    """F.binary_cross_entropy (from probabilities) as a module: ``BCELoss(weight=None, reduction="mean")``. The weight
    is a buffer, as torch's: saved in ``state_dict`` and moved by ``to``, never a parameter (a weight that requires
    grad was registered as one, and an optimizer given ``parameters()`` trained it)."""

    def __init__(self, weight=None, reduction="mean"):
        self.register_buffer("weight", _loss_weight(weight))
        self.reduction = _reduction(self, reduction)

    def forward(self, input, target):
        return functional.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(Module):
    """F.binary_cross_entropy_with_logits as a module, torch's: ``BCEWithLogitsLoss(weight=None, reduction="mean",
    pos_weight=None)(input, target)``, ``weight`` a weight of each term and ``pos_weight`` one of the positive term
    (one per class, the last axis), both buffers. Its default reduction is torch's "mean" (the function's is "sum")."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        self.register_buffer("weight", _loss_weight(weight))
        self.register_buffer("pos_weight", _loss_weight(pos_weight))
        self.reduction = _reduction(self, reduction)

    def forward(self, input, target):
        return functional.binary_cross_entropy_with_logits(input, target, self.reduction, weight=self.weight,
                                                           pos_weight=self.pos_weight)


def _loss_weight(weight):
    """A loss's weight as a tensor for its buffer (an array or a list taken as one), or None."""
    return weight if weight is None or isinstance(weight, Tensor) else Tensor(weight)


class Dropout(Module):
    """F.dropout as a module, torch's ``Dropout(p=0.5, inplace=False)``: in training mode each element is zeroed with
    probability ``p`` and the others scaled by 1/(1 − p); in eval mode (``eval()``) the input passes unchanged.
    ``rng`` (keyword) is the ``minivae.random.Generator`` its masks are drawn from; None: the default generator
    (``minivae.manual_seed``), read at each call."""

    def __init__(self, p=0.5, inplace=False, *, rng=None):
        self.p, self.inplace, self.rng = check_dropout_probability(p), _inplace(self, inplace), rng

    def forward(self, input):
        return functional.dropout(input, self.p, self.training, rng=self.rng)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class LayerNorm(Module):
    """F.layer_norm as a module, torch's ``LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True, bias=True)``:
    each slice over the last axes ``normalized_shape`` normalized to mean 0 and variance 1 (the biased one), then
    scaled by ``weight`` (ones) and shifted by ``bias`` (zeros), parameters of shape ``normalized_shape``;
    ``elementwise_affine=False``: neither (both registered as None), ``bias=False``: no bias."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, *, device="cpu",
                 dtype=numpy.float32):
        shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else tuple(normalized_shape)
        if not shape or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be an int or a tuple of ints >= 0, got "
                             f"{normalized_shape!r}")
        self.normalized_shape, self.eps, self.elementwise_affine = tuple(int(n) for n in shape), eps, elementwise_affine
        with_bias = elementwise_affine and bias
        self.register_parameter("weight", Parameter(numpy.ones(shape, dtype)) if elementwise_affine else None)
        self.register_parameter("bias", Parameter(numpy.zeros(shape, dtype)) if with_bias else None)
        self.to(device)

    def forward(self, input):
        return functional.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        has_bias = self.bias is not None
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, bias={has_bias}"


class _BatchNorm(Module):
    """F.batch_norm as a module, torch's ``_BatchNorm(num_features, eps=1e-5, momentum=0.1, affine=True,
    track_running_stats=True)``: each channel (axis 1) normalized over every other axis. In training with the batch's
    mean and biased variance, and the buffers ``running_mean`` (zeros), ``running_var`` (ones) and
    ``num_batches_tracked`` (int64) are updated (the running variance with the unbiased one, ÷ (n − 1) for the n values
    per channel, as torch's; ``momentum=None``: the cumulative average over the batches seen); in eval mode the running
    statistics are used. ``affine``: the parameters ``weight`` (ones) and ``bias`` (zeros; none with ``bias=False``,
    torch 2.13's keyword). Without ``track_running_stats`` the three buffers are None and the batch's statistics are
    used in both modes, as torch's. The subclasses differ only in the input's rank (``input_ranks``)."""

    input_ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *, device="cpu",
                 dtype=numpy.float32, bias=True):
        who = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) or num_features < 1:
            raise ValueError(f"{who}: num_features must be an integer >= 1, got {num_features!r}")
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, numbers.Real)):
            raise TypeError(f"{who}: momentum must be a number or None, got {momentum!r}")
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        c = self.num_features
        self.register_parameter("weight", Parameter(numpy.ones(c, dtype)) if affine else None)
        self.register_parameter("bias", Parameter(numpy.zeros(c, dtype)) if affine and bias else None)
        tracked = track_running_stats
        self.register_buffer("running_mean", Tensor(numpy.zeros(c, dtype)) if tracked else None)
        self.register_buffer("running_var", Tensor(numpy.ones(c, dtype)) if tracked else None)
        self.register_buffer("num_batches_tracked", Tensor(numpy.zeros((), numpy.int64)) if tracked else None)
        self.to(device)

    def reset_running_stats(self):
        """running_mean 0, running_var 1, num_batches_tracked 0 (torch's)."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.copy_(self.running_var.xp.ones_like(self.running_var.data))
            self.num_batches_tracked.zero_()

    def forward(self, input):
        if input.ndim not in self.input_ranks:
            ranks = " or ".join(f"{r}D" for r in self.input_ranks)
            raise ValueError(f"expected {ranks} input (got {input.ndim}D input)")
        count = None
        if self.training and self.track_running_stats:
            n = self.num_batches_tracked
            n.copy_(array_function(lambda k: k + 1, n))
            count = n if self.momentum is None else None
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return functional._batch_norm(input, self.running_mean if keep else None, self.running_var if keep else None,
                                      self.weight, self.bias, use_batch, self.momentum, self.eps, count)

    def extra_repr(self):
        has_bias = self.bias is not None
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={has_bias}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """_BatchNorm for inputs (N, C) and (N, C, L): torch's ``BatchNorm1d(num_features, eps=1e-5, momentum=0.1,
    affine=True, track_running_stats=True)``, statistics per channel over N (and L)."""

    input_ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """_BatchNorm for images (N, C, H, W): torch's ``BatchNorm2d(num_features, eps=1e-5, momentum=0.1, affine=True,
    track_running_stats=True)``, statistics per channel over N, H and W (the running variance ÷ (N·H·W − 1)); torch's
    state_dict keys (``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``)."""

    input_ranks = (4,)


class L1Loss(Module):
    """F.l1_loss as a module: ``L1Loss(reduction="mean")(input, target)``."""

    def __init__(self, reduction="mean"):
        self.reduction = _reduction(self, reduction)

    def forward(self, input, target):
        return functional.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(Module):
    """F.smooth_l1_loss as a module: ``SmoothL1Loss(reduction="mean", beta=1.0)(input, target)``."""

    def __init__(self, reduction="mean", beta=1.0):
        self.reduction, self.beta = _reduction(self, reduction), beta

    def forward(self, input, target):
        return functional.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(Module):
    """F.huber_loss as a module: ``HuberLoss(reduction="mean", delta=1.0)(input, target)``."""

    def __init__(self, reduction="mean", delta=1.0):
        self.reduction, self.delta = _reduction(self, reduction), delta

    def forward(self, input, target):
        return functional.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class KLDivLoss(Module):
    """F.kl_div as a module: ``KLDivLoss(reduction="mean", log_target=False)(input, target)``, ``input`` log-probabilities
    and ``target`` probabilities (or log-probabilities with ``log_target``); "batchmean" gives the KL per sample."""

    def __init__(self, reduction="mean", log_target=False):
        if reduction not in ("mean", "sum", "none", "batchmean"):
            raise ValueError(f"KLDivLoss: reduction must be 'mean', 'batchmean', 'sum' or 'none', got {reduction!r}")
        self.reduction, self.log_target = reduction, log_target

    def forward(self, input, target):
        return functional.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class _Conv2dBase(Module):
    """What Conv2d and ConvTranspose2d share: torch's arguments checked and kept as pairs, torch's default init
    (kaiming_uniform_ with a = √5: weight and bias ~ U(−1/√fan_in, 1/√fan_in), fan_in = weight.shape[1]·kH·kW, as
    torch's _calculate_fan_in_and_fan_out: in_channels/groups·kH·kW for Conv2d, out_channels/groups·kH·kW for
    ConvTranspose2d), drawn on the host from ``rng`` (keyword; None: the default generator, ``minivae.manual_seed``)
    in float64, then cast to ``dtype`` (None: float32) and moved to ``device`` (None: "cpu"); torch's repr. A non-zero
    ``padding_mode`` (Conv2d only) keeps torch's ``_reversed_padding_repeated_twice``, F.pad's widths."""

    transposed = False

    def _setup(self, in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, groups, bias,
               padding_mode, rng, dtype, device):
        who = type(self).__name__
        for name, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n <= 0:
                raise ValueError(f"{who}: {name} must be a positive integer, got {n!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.groups = group_count(groups, who)
        for name, n in (("in_channels", self.in_channels), ("out_channels", self.out_channels)):
            if n % self.groups:
                raise ValueError(f"{who}: {name} must be divisible by groups, got {name}={n}, groups={self.groups}")
        g = self.groups
        shape = (self.in_channels, self.out_channels // g) if self.transposed else (self.out_channels, self.in_channels // g)
        self.kernel_size = pair_argument(kernel_size, "kernel_size", who, 1)
        self.stride = pair_argument(stride, "stride", who, 1)
        if isinstance(padding, str) and not self.transposed:
            if padding not in ("same", "valid"):
                raise ValueError(f"{who}: padding must be 'valid', 'same', an int or a pair of ints, got {padding!r}")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(f"{who}: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = pair_argument(padding, "padding", who, 0)
        self.dilation = pair_argument(dilation, "dilation", who, 1)
        self.output_padding = pair_argument(output_padding, "output_padding", who, 0)
        modes = ("zeros", "reflect", "replicate", "circular")
        if padding_mode not in modes:
            raise ValueError(f"{who}: padding_mode must be one of {modes}, but got padding_mode={padding_mode!r}")
        if self.transposed and padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {who}, got padding_mode={padding_mode!r}')
        self.padding_mode = padding_mode
        if self.padding == "same":  # torch's: d(k − 1) split, the odd one at the bottom and right
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            sides = [(t // 2, t - t // 2) for t in totals]
        else:
            sides = [(p, p) for p in ((0, 0) if self.padding == "valid" else self.padding)]
        self._reversed_padding_repeated_twice = sides[1] + sides[0]  # F.pad's order: (left, right, top, bottom)
        rng, dtype = resolve(rng), numpy.float32 if dtype is None else dtype
        fan_in = shape[1] * self.kernel_size[0] * self.kernel_size[1]
        bound = 1 / math.sqrt(fan_in)
        w = (2 * rng.uniform(shape + self.kernel_size, numpy.float64) - 1) * bound
        self.weight = Parameter(w.astype(dtype))
        b = (2 * rng.uniform((self.out_channels,), numpy.float64) - 1) * bound
        self.register_parameter("bias", Parameter(b.astype(dtype)) if bias else None)
        self.to("cpu" if device is None else device)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        s += ", bias=False" if self.bias is None else ""
        return s + (f", padding_mode={self.padding_mode}" if self.padding_mode != "zeros" else "")


class Conv2d(_Conv2dBase):
    """F.conv2d as a module, torch's ``Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0,
    dilation=1, groups=1, bias=True, padding_mode="zeros", device=None, dtype=None)``: weight (out_channels,
    in_channels/groups, kH, kW), bias (out_channels,), torch's init and state_dict keys (a torch Conv2d's state_dict
    loads); padding also "valid" or "same". ``padding_mode`` "reflect", "replicate" or "circular": the input padded
    by F.pad in that mode (torch's order of pads, "same"'s odd row and column at the bottom and right), then
    convolved without padding, as torch's."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros", device=None, dtype=None, *, rng=None):
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, 0, groups, bias, padding_mode,
                    rng, dtype, device)

    def forward(self, input):
        if self.padding_mode != "zeros":
            padded = functional.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return functional.conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return functional.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_Conv2dBase):
    """F.conv_transpose2d as a module, torch's ``ConvTranspose2d(in_channels, out_channels, kernel_size, stride=1,
    padding=0, output_padding=0, groups=1, bias=True, dilation=1, device=None, dtype=None)``: weight (in_channels,
    out_channels/groups, kH, kW), bias (out_channels,), torch's init (fan_in from weight.shape[1],
    out_channels/groups·kH·kW, as torch's) and state_dict keys. ``padding_mode`` only "zeros", as torch's."""

    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None, *, rng=None):
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding, groups, bias,
                    padding_mode, rng, dtype, device)

    def forward(self, input):
        return functional.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                           self.output_padding, self.groups, self.dilation)


class Upsample(Module):
    """F.interpolate as a module, torch's ``Upsample(size=None, scale_factor=None, mode="nearest", align_corners=None,
    recompute_scale_factor=None)``: "nearest" with whole factors only (see F.interpolate); torch's repr (the factors
    kept as floats, as torch's)."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None):
        if mode != "nearest":
            raise NotImplementedError(f"Upsample: mode {mode!r} is not implemented here (only 'nearest')")
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.recompute_scale_factor = recompute_scale_factor
        if isinstance(scale_factor, (tuple, list)):
            self.scale_factor = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None

    def forward(self, input):
        return functional.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                                      self.recompute_scale_factor)

    def extra_repr(self):
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return f"{info}, mode={self.mode!r}"


class Flatten(Module):
    """``input.flatten(start_dim, end_dim)`` as a module, torch's ``Flatten(start_dim=1, end_dim=-1)``: (N, C, L) to
    (N, C·L)."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return ops.shape.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """The axis ``dim`` made the axes ``unflattened_size`` (one of them may be −1), torch's ``Unflatten(dim,
    unflattened_size)``: (N, 6) with Unflatten(1, (2, 3)) to (N, 2, 3). A reshape (its VJP reshape's)."""

    def __init__(self, dim, unflattened_size):
        sizes = tuple(unflattened_size)
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"Unflatten: dim must be an int, got {dim!r}")
        if not sizes or any(isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < -1 for n in sizes) \
                or sizes.count(-1) > 1:
            raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints >= 0 (one may be -1), got "
                            f"{unflattened_size!r}")
        self.dim, self.unflattened_size = int(dim), sizes

    def forward(self, input):
        shape = tuple(input.shape)
        if not -len(shape) <= self.dim < len(shape):
            raise IndexError(f"Unflatten: dim {self.dim} out of range for an input of {len(shape)} dimensions")
        d = self.dim % len(shape)
        sizes = self.unflattened_size
        known = math.prod(n for n in sizes if n != -1)
        if (-1 in sizes and (known == 0 or shape[d] % known)) or (-1 not in sizes and known != shape[d]):
            raise ValueError(f"Unflatten: unflattened_size {sizes} does not fit the size {shape[d]} of axis {d} of "
                             f"the input's shape {shape}")
        sizes = tuple(shape[d] // known if n == -1 else n for n in sizes)
        return ops.reshape(input, shape[:d] + sizes + shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


def _softmax_dim(module, ndim):
    """torch's implicit choice where ``dim`` is None (deprecated there, with its warning): 0 for 0-, 1- and 3-D inputs,
    else 1."""
    if module.dim is not None:
        return module.dim
    warnings.warn(f"Implicit dimension choice for {type(module).__name__.lower()} has been deprecated. Change the call "
                  "to include dim=X as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


class Softmax(Module):
    """F.softmax along ``dim`` as a module, torch's ``Softmax(dim=None)`` (give ``dim``; None: torch's implicit choice
    and its warning)."""

    def __init__(self, dim=None):
        self.dim = dim

    def forward(self, input):
        return ops.softmax(input, axis=_softmax_dim(self, input.ndim))

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """F.log_softmax along ``dim`` as a module, torch's ``LogSoftmax(dim=None)``."""

    def forward(self, input):
        return ops.log_softmax(input, axis=_softmax_dim(self, input.ndim))


class Softmin(Softmax):
    """F.softmin, softmax(−x), along ``dim`` as a module, torch's ``Softmin(dim=None)``."""

    def forward(self, input):
        return ops.softmax(ops.neg(input), axis=_softmax_dim(self, input.ndim))


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of ``embedding_dim``, looked up by integer indices (F.embedding), torch's
    ``Embedding(num_embeddings, embedding_dim, padding_idx=None)``: ``weight`` ~ N(0, 1) drawn on the host from
    ``rng`` (keyword; None: the default generator, ``minivae.manual_seed``), then moved to ``device``; the row
    ``padding_idx`` is zeros and gets no gradient. (torch's max_norm, scale_grad_by_freq and sparse are not here.)"""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, *, rng=None, dtype=numpy.float32,
                 device="cpu"):
        for name, n in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 0):
                raise ValueError(f"Embedding: {name} must be an integer >= 0, got {n!r}")
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError("Padding_idx must be within num_embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        w = resolve(rng).normal((num_embeddings, embedding_dim), numpy.float64).astype(dtype)
        if padding_idx is not None:
            w[padding_idx] = 0
        self.weight = Parameter(w)
        self.to(device)

    def forward(self, input):
        return functional.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class GaussianNLLLoss(Module):
    """F.gaussian_nll_loss as a module: ``GaussianNLLLoss(full=False, eps=1e-6, reduction="mean")(input, target, var)``."""

    def __init__(self, *, full=False, eps=1e-6, reduction="mean"):
        self.full, self.eps, self.reduction = full, eps, _reduction(self, reduction)

    def forward(self, input, target, var):
        return functional.gaussian_nll_loss(input, target, var, self.full, self.eps, self.reduction)


def _reduction(module, reduction):
    """Checked when the criterion is made (torch checks at the call)."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{type(module).__name__}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


ACTIVATIONS = {"relu": ops.relu, "tanh": ops.tanh, "sigmoid": ops.sigmoid, "softplus": ops.softplus,
               "leaky_relu": ops.leaky_relu, "elu": ops.elu, "gelu": ops.gelu, "silu": ops.silu, "selu": ops.selu,
               "celu": ops.celu, "mish": ops.mish, "hardswish": ops.hardswish, "relu6": ops.relu6,
               "hardtanh": ops.hardtanh, "hardsigmoid": ops.hardsigmoid, "softsign": ops.softsign,
               "log_sigmoid": ops.log_sigmoid}
ACTIVATION_MODULES = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "softplus": Softplus, "leaky_relu": LeakyReLU,
                      "elu": ELU, "gelu": GELU, "silu": SiLU, "selu": SELU, "celu": CELU, "mish": Mish,
                      "hardswish": Hardswish, "relu6": ReLU6, "hardtanh": Hardtanh, "hardsigmoid": Hardsigmoid,
                      "softsign": Softsign, "log_sigmoid": LogSigmoid}
# He init in MLP: the ReLU-like ones (about x for x > 0, about 0 below); Glorot for the others (bounded, or SELU,
# whose LeCun N(0, 1/in) Glorot's U(±√(6/(in + out))) matches for in = out)
RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu", "silu", "celu", "mish", "hardswish", "relu6")


class Sequential(ModuleList):
    """Modules applied in order; ``layers`` lists them."""

    def __init__(self, *layers):
        super().__init__(layers)

    layers = property(ModuleList._entries)  # every entry: a module used twice (one ReLU between layers) runs twice

    __repr__ = Module.__repr__  # torch's Sequential lists each entry (no runs, as ModuleList's)

    def __getitem__(self, i):
        """Layer i; a slice gives a new Sequential of those layers (shared), as torch's: ``mlp[:-1]`` is runnable."""
        return Sequential(*self.layers[i]) if isinstance(i, slice) else self.layers[i]

    def forward(self, x):
        layers, i = self.layers, 0
        while i < len(layers):
            if _linear_then_relu(layers, i):  # one node: the graph keeps no pre-activation (ops.linear)
                x = ops.linear(x, layers[i].weight, layers[i].bias, activation="relu")
                i += 2
            else:
                x = layers[i](x)
                i += 1
        return x


def _linear_then_relu(layers, i):
    return (type(layers[i]) is Linear and layers[i].bias is not None and i + 1 < len(layers)
            and type(layers[i + 1]) in (ReLU, Activation) and layers[i + 1].fn is ops.relu)


class MLP(Sequential):
    """Linear layers of ``sizes`` (e.g. (784, 512, 256, 40)) with ``activation`` between them (none after the last),
    by name (``ACTIVATION_MODULES``): "relu", "leaky_relu", "elu", "gelu", "silu", "celu", "mish", "hardswish",
    "relu6" (He init), "tanh", "sigmoid", "softplus", "selu", "hardtanh", "hardsigmoid", "softsign", "log_sigmoid"
    (Glorot init), each as the nn module of that name with torch's defaults. ``activation="gated"`` makes every
    hidden layer a GatedLinear unit instead. Another name is a ValueError listing these."""

    def __init__(self, sizes, activation="relu", *, rng=None, dtype=numpy.float32, device="cpu"):
        if not isinstance(activation, str) or (activation not in ACTIVATION_MODULES and activation != "gated"):
            raise ValueError(f"activation must be one of {sorted([*ACTIVATION_MODULES, 'gated'])}, not {activation!r}")
        rng = resolve(rng)
        init = "he" if activation in RELU_LIKE else "glorot"
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            hidden = i < len(sizes) - 2
            if hidden and activation == "gated":
                layers.append(GatedLinear(a, b, rng=rng, dtype=dtype, device=device))
                continue
            layers.append(Linear(a, b, rng=rng, init=init, dtype=dtype, device=device))
            if hidden:
                layers.append(ACTIVATION_MODULES[activation]())
        super().__init__(*layers)


# ---- recurrent layers: torch's RNNCell, GRUCell, LSTMCell, RNN, GRU, LSTM ------------------------------------------
_GATE_COUNTS = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def _recurrent_sizes(who, input_size, hidden_size):
    """torch's checks of the two sizes: ints (TypeError), > 0 (ValueError)."""
    for name, n in (("input_size", input_size), ("hidden_size", hidden_size)):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"{who}: {name} should be of type int, got: {type(n).__name__}")
        if n <= 0:
            raise ValueError(f"{who}: {name} must be greater than zero, got {n}")
    return int(input_size), int(hidden_size)


def _recurrent_parameters(module, suffix, input_size, hidden_size, gates, bias, rng, dtype, proj_size=0):
    """Register weight_ih{suffix} (gates·H, input_size), weight_hh{suffix} (gates·H, H; P with a projection) and,
    with ``bias``, bias_ih and bias_hh{suffix} (gates·H,), and with ``proj_size`` P > 0 weight_hr{suffix} (P, H), in
    torch's order, each ~ U(−1/√H, 1/√H) (torch's reset_parameters), drawn on the host from ``rng`` in float64 and
    cast to ``dtype``."""
    bound = 1 / math.sqrt(hidden_size)
    g = gates * hidden_size
    shapes = [("weight_ih", (g, input_size)), ("weight_hh", (g, proj_size or hidden_size))]
    shapes += [("bias_ih", (g,)), ("bias_hh", (g,))] if bias else []
    shapes += [("weight_hr", (proj_size, hidden_size))] if proj_size else []
    for name, shape in shapes:
        w = (2 * rng.uniform(shape, numpy.float64) - 1) * bound
        setattr(module, name + suffix, Parameter(w.astype(dtype)))


def _input_projection(mode, x, w_ih, b_ih, b_hh):
    """x W_ihᵀ + b for every time step at once (one node), and the part of b_hh that stays inside the recurrence:
    RNN and LSTM add b_ih + b_hh to every gate (b = b_ih + b_hh, nothing left); the GRU's n gate multiplies
    W_hn h + b_hn by r, so b = b_ih + (b_hr, b_hz, 0) and b_hn is returned to be added to W_hn h at each step."""
    if b_ih is None:
        return ops.matmul(x, ops.transpose(w_ih)), None
    if mode == "GRU":
        k = 2 * (b_hh.shape[0] // 3)
        b, b_hn = ops.concatenate([b_ih[:k] + b_hh[:k], b_ih[k:]]), b_hh[k:]
    else:
        b, b_hn = b_ih + b_hh, None
    return ops.linear(x, ops.transpose(w_ih), b), b_hn


def _recurrent_step(mode, xw, h, c, w_hh_t, b_hn, w_hr_t=None):
    """One time step from the input's projection ``xw`` (x W_ihᵀ + b, _input_projection's), the state h (and c),
    ``w_hh_t`` = W_hhᵀ; returns (h', c'), c' None but for the LSTM. torch's equations (gate order as its weights'):

    RNN   h' = act(xw + h W_hhᵀ)                                      act tanh or relu
    GRU   (r, z) = σ(xw_rz + h W_h(rz)ᵀ + b_h(rz)) (folded in xw), n = tanh(xw_n + r ⊙ (h W_hnᵀ + b_hn)),
          h' = (1 − z) ⊙ n + z ⊙ h, written n + z ⊙ (h − n)
    LSTM  (i, f, g, o) = split(xw + h W_hhᵀ), c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g), h' = σ(o) ⊙ tanh(c')
          (with a projection, ``w_hr_t`` = W_hrᵀ: h' = (σ(o) ⊙ tanh(c')) W_hrᵀ, P values)"""
    hw = ops.matmul(h, w_hh_t)
    if mode == "LSTM":
        i, f, g, o = ops.split(xw + hw, 4, axis=-1)
        c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return (h if w_hr_t is None else ops.matmul(h, w_hr_t)), c
    if mode == "GRU":
        xr, xz, xn = ops.split(xw, 3, axis=-1)
        hr, hz, hn = ops.split(hw, 3, axis=-1)
        r, z = ops.sigmoid(xr + hr), ops.sigmoid(xz + hz)
        n = ops.tanh(xn + r * hn if b_hn is None else xn + r * (hn + b_hn))
        return n + z * (h - n), None
    return (ops.tanh if mode == "RNN_TANH" else ops.relu)(xw + hw), None


def _dims(t):
    return f"{t.ndim}-D" if isinstance(t, Tensor) else type(t).__name__


def _state_tensor(value, who, name):
    """A state given as a tensor or an array, as a tensor (else TypeError naming it)."""
    if isinstance(value, Tensor):
        return value
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return Tensor(value)
    raise TypeError(f"{who}: {name} must be a tensor, got {type(value).__name__}")


def _input_tensor(who, input):
    """The input as a tensor (an array wrapped, as the ops take it); a PackedSequence (torch's, a named tuple) or
    anything else refused, naming it."""
    if isinstance(input, Tensor):
        return input
    if isinstance(input, tuple):
        raise TypeError(f"{who}: input must be a tensor or a minivae.nn.utils.rnn.PackedSequence, got a "
                        f"{type(input).__name__}")
    if hasattr(input, "shape") and hasattr(input, "dtype"):
        return Tensor(input)
    raise TypeError(f"{who}: input must be a tensor, got {type(input).__name__}")


class RNNCellBase(Module):
    """What RNNCell, GRUCell and LSTMCell share (torch's RNNCellBase; not made directly): torch's parameters
    weight_ih (gates·H, input_size), weight_hh (gates·H, H), bias_ih, bias_hh (gates·H,) (registered as None with
    ``bias=False``), torch's init U(−1/√H, 1/√H) drawn from ``rng`` (keyword; None: the default generator,
    ``minivae.manual_seed``) on the host in float64, cast to ``dtype`` (None: float32) and moved to ``device``
    (None: "cpu"); an input (N, input_size) or unbatched (input_size,), a state (N, H) or (H,), zeros when not
    given."""

    mode = None

    def _setup(self, input_size, hidden_size, bias, rng, device, dtype):
        who = type(self).__name__
        self.input_size, self.hidden_size = _recurrent_sizes(who, input_size, hidden_size)
        if not isinstance(bias, bool):
            raise TypeError(f"{who}: bias should be of type bool, got: {type(bias).__name__}")
        self.bias = bias
        _recurrent_parameters(self, "", self.input_size, self.hidden_size, _GATE_COUNTS[self.mode], bias, resolve(rng),
                              numpy.float32 if dtype is None else dtype)
        if not bias:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.to("cpu" if device is None else device)

    def _states(self, input, hx, count):
        """(batched input (N, in), [count states (N, H)], batched): the checks and shapes of torch's cells."""
        who = type(self).__name__
        input = _input_tensor(who, input)
        if input.ndim not in (1, 2):
            raise ValueError(f"{who}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{who}: input has inconsistent input_size: got {input.shape[-1]}, expected "
                             f"{self.input_size} (input of shape {input.shape})")
        batched = input.ndim == 2
        x = input if batched else ops.unsqueeze(input, 0)
        n = x.shape[0]
        if hx is None:
            zeros = Tensor(x.xp.zeros((n, self.hidden_size), dtype=numpy.result_type(x.dtype, self.weight_ih.dtype)))
            return x, [zeros] * count, batched
        if count == 1:
            hx = [_state_tensor(hx, who, "hx")]
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{who}: hx must be a tuple (h, c) of two tensors, got {type(hx).__name__}")
            hx = [_state_tensor(h, who, f"hx[{k}]") for k, h in enumerate(hx)]
        states = []
        for k, h in enumerate(hx):
            name = "hx" if count == 1 else f"hx[{k}]"
            if h.ndim != input.ndim:
                raise ValueError(f"{who}: {name} must be {input.ndim}-D as the input is, got shape {h.shape}")
            expected = (n, self.hidden_size) if batched else (self.hidden_size,)
            if h.shape != expected:
                raise ValueError(f"{who}: {name} of shape {h.shape} does not fit: expected {expected} (batch "
                                 f"{n}, hidden_size {self.hidden_size})")
            states.append(h if batched else ops.unsqueeze(h, 0))
        return x, states, batched

    def forward(self, input, hx=None):
        x, (h,), batched = self._states(input, hx, 1)
        h, _ = self._step(x, h, None)
        return h if batched else ops.squeeze(h, 0)

    def _step(self, x, h, c):
        xw, b_hn = _input_projection(self.mode, x, self.weight_ih, self.bias_ih, self.bias_hh)
        return _recurrent_step(self.mode, xw, h, c, ops.transpose(self.weight_hh), b_hn)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """One step of an Elman RNN, torch's ``RNNCell(input_size, hidden_size, bias=True, nonlinearity="tanh",
    device=None, dtype=None)``: h' = act(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), act tanh or relu; ``cell(input, hx=None)``
    returns h' (see RNNCellBase for the shapes, parameters and init)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None, *, rng=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        self.mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        self._setup(input_size, hidden_size, bias, rng, device, dtype)


class GRUCell(RNNCellBase):
    """One step of a GRU, torch's ``GRUCell(input_size, hidden_size, bias=True, device=None, dtype=None)``, gates r, z,
    n in that order in the weights' rows: r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h; ``cell(input, hx=None)`` returns h'."""

    mode = "GRU"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, *, rng=None):
        self._setup(input_size, hidden_size, bias, rng, device, dtype)


class LSTMCell(RNNCellBase):
    """One step of an LSTM, torch's ``LSTMCell(input_size, hidden_size, bias=True, device=None, dtype=None)``, gates
    i, f, g, o in that order in the weights' rows: (i, f, o) = σ(W x + b + W_h h + b_h) of their rows,
    g = tanh(…), c' = f ⊙ c + i ⊙ g, h' = o ⊙ tanh(c'); ``cell(input, hx=None)`` with hx (h, c) returns (h', c')."""

    mode = "LSTM"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, *, rng=None):
        self._setup(input_size, hidden_size, bias, rng, device, dtype)

    def forward(self, input, hx=None):
        x, (h, c), batched = self._states(input, hx, 2)
        h, c = self._step(x, h, c)
        return (h, c) if batched else (ops.squeeze(h, 0), ops.squeeze(c, 0))


class RNNBase(Module):
    """What RNN, GRU and LSTM share, as torch's RNNBase (not made directly here): ``num_layers`` layers, each
    running its cell over the sequence (both ways, the reverse pass's outputs put back in time order and joined to
    the forward pass's along the features, with ``bidirectional``), a layer's outputs the next layer's inputs (after
    dropout with probability ``dropout`` in training mode, drawn from ``rng``, between layers and not after the
    last).

    Parameters, torch's names, shapes and order: for layer k and direction (suffix "" or "_reverse")
    weight_ih_l{k}{suffix} (gates·H, input_size for k = 0, else D·H), weight_hh_l{k}{suffix} (gates·H, H),
    bias_ih_l{k}{suffix}, bias_hh_l{k}{suffix} (gates·H,) (absent with ``bias=False``); each ~ U(−1/√H, 1/√H),
    torch's init, drawn on the host from ``rng`` (keyword; None: the default generator, ``minivae.manual_seed``) in
    float64, cast to ``dtype`` (None: float32), moved to ``device`` (None: "cpu"). A torch module's state_dict loads.

    ``module(input, hx=None)``: input (L, N, input_size) ((N, L, input_size) with ``batch_first``) or unbatched
    (L, input_size); hx (D·num_layers, N, H) (or (D·num_layers, H) unbatched; (h0, c0) for the LSTM), zeros when
    not given; returns output (L, N, D·H) (batch_first: (N, L, D·H)) and h_n (D·num_layers, N, H), ordered layer by
    layer, forward direction before reverse (the LSTM: (h_n, c_n)), as torch's.

    Computed by composing minivae's ops (so the backward pass is the engine's, iterative: any length): per layer and
    direction the input's projection x W_ihᵀ + b for all steps is one matrix product, then the recurrence one step
    at a time. A PackedSequence input (minivae.nn.utils.rnn, torch's) runs padded, each sequence's steps beyond its
    length masked (its state carried), and comes back packed as it came. Not here: torch's cuDNN-specific
    ``flatten_parameters`` (a no-op here)."""

    def _setup(self, mode, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
               dtype, rng, proj_size=0):
        who = type(self).__name__
        self.mode = mode
        self.input_size, self.hidden_size = _recurrent_sizes(who, input_size, hidden_size)
        if isinstance(num_layers, bool) or not isinstance(num_layers, numbers.Integral):
            raise TypeError(f"{who}: num_layers should be of type int, got: {type(num_layers).__name__}")
        if num_layers <= 0:
            raise ValueError(f"{who}: num_layers must be greater than zero, got {num_layers}")
        for name, flag in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(flag, bool):
                raise TypeError(f"{who}: {name} should be of type bool, got: {type(flag).__name__}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
            raise ValueError(f"{who}: dropout should be a number in range [0, 1] representing the probability of an "
                             f"element being zeroed, got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                          UserWarning, stacklevel=3)
        self.num_layers, self.bias, self.batch_first = int(num_layers), bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        self.rng = rng
        generator, dtype = resolve(rng), numpy.float32 if dtype is None else dtype
        directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(self.num_layers):
            size = self.input_size if layer == 0 else directions * self._output_size
            for suffix in ("", "_reverse")[:directions]:
                suffix = f"_l{layer}{suffix}"
                _recurrent_parameters(self, suffix, size, self.hidden_size, _GATE_COUNTS[mode], bias, generator, dtype,
                                      proj_size)
                self._flat_weights_names += [f"{name}{suffix}" for name in self._weight_kinds]
        self.to("cpu" if device is None else device)

    @property
    def all_weights(self):
        """The parameters of each layer and direction, [[weight_ih, weight_hh, bias_ih, bias_hh], …], as torch's."""
        per = len(self._weight_kinds)
        names = self._flat_weights_names
        return [[getattr(self, n) for n in names[k:k + per]] for k in range(0, len(names), per)]

    @property
    def _weight_kinds(self):
        """The parameters of a layer and direction, torch's order: weight_ih, weight_hh[, bias_ih, bias_hh][, weight_hr]."""
        return (("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if self.bias else ())
                + (("weight_hr",) if self.proj_size else ()))

    @property
    def _output_size(self):
        """What a layer gives each step and direction: H, or P with a projection (its h's size too)."""
        return self.proj_size or self.hidden_size

    def flatten_parameters(self):
        """torch's (cuDNN's one weight buffer): nothing to do here."""

    def _initial(self, hx, batched, n):
        """The initial states as a list of (h0, c0) per layer and direction, each (N, H) (c0 None but for the LSTM;
        None for zeros), after torch's checks of hx."""
        who = type(self).__name__
        lstm = self.mode == "LSTM"
        count = len(self._flat_weights_names) // len(self._weight_kinds)
        if hx is None:
            return [(None, None)] * count
        if lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{who}: hx must be a tuple (h_0, c_0) of two tensors, got {type(hx).__name__}")
            states = [_state_tensor(h, who, f"hx[{k}]") for k, h in enumerate(hx)]
        else:
            states = [_state_tensor(hx, who, "hx")]
        rank = 3 if batched else 2
        if any(s.ndim != rank for s in states):
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise ValueError(f"{who}: for {kind} input, hx should also be {rank}-D but got "
                             f"{', '.join(_dims(s) for s in states)} tensor")
        for k, s in enumerate(states):
            size = self._output_size if k == 0 else self.hidden_size  # (h0 of P with a projection; c0 of H)
            expected = (count, n, size) if batched else (count, size)
            if s.shape != expected:
                name = f"hidden[{k}]" if lstm else "hidden"
                what = "proj_size" if size != self.hidden_size else "hidden_size"
                raise ValueError(f"{who}: Expected {name} size {expected}, got {s.shape} (num_layers · directions "
                                 f"{count}, batch {n}, {what} {size})")
        pieces = [ops.split(ops.reshape(s, (count * n, s.shape[-1])), count, axis=0) for s in states]
        return list(zip(pieces[0], pieces[1] if lstm else [None] * count))

    def _direction(self, x, length, suffix, reverse, h, c, masks=None):
        """One layer in one direction over x (L·N, in), the L steps' rows one after another: (outputs (L·N, H) in
        time order, last h (N, H), last c). ``masks`` (packed input): per step an (N, 1) boolean array, whether the
        step is within each sequence; outside it the state is carried unchanged (so the reverse pass of a shorter
        sequence starts at its own last step, and h_n is each sequence's state at its last step)."""
        w_ih, w_hh = getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix)
        b_ih, b_hh = (getattr(self, "bias_ih" + suffix), getattr(self, "bias_hh" + suffix)) if self.bias else (None,
                                                                                                              None)
        xw, b_hn = _input_projection(self.mode, x, w_ih, b_ih, b_hh)
        n = x.shape[0] // length
        if h is None:
            h = Tensor(xw.xp.zeros((n, self._output_size), dtype=xw.dtype))
        if c is None and self.mode == "LSTM":
            c = Tensor(xw.xp.zeros((n, self.hidden_size), dtype=xw.dtype))
        w_hr_t = ops.transpose(getattr(self, "weight_hr" + suffix)) if self.proj_size else None
        steps = ops.split(xw, length, axis=0)  # one node: its VJP writes x̄w once (a getitem per step: L times)
        w_hh_t = ops.transpose(w_hh)
        ys = []
        order = range(length - 1, -1, -1) if reverse else range(length)
        for t in order:
            h_t, c_t = _recurrent_step(self.mode, steps[t], h, c, w_hh_t, b_hn, w_hr_t)
            if masks is not None:
                h_t = ops.where(masks[t], h_t, h)
                c_t = None if c is None else ops.where(masks[t], c_t, c)
            h, c = h_t, c_t
            ys.append(h)
        if reverse:
            ys.reverse()
        return ops.concatenate(ys, axis=0), h, c

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            return self._packed_forward(input, hx)
        return self._forward(input, hx)

    def _packed_forward(self, packed, hx):
        """A PackedSequence through the padded path with per-step masks (torch runs the packed rows themselves; the
        valid steps' values are the same): the output packed as the input was, h_n in the batch's own order."""
        padded, lengths = pad_packed_sequence(packed)
        steps = numpy.arange(padded.shape[0])[:, None, None] < lengths.numpy()[None, :, None]  # (L, N, 1)
        masks = padded.xp.asarray(steps)  # (the lengths live on the host, as torch's: one upload)
        output, state = self._forward(padded, hx, masks)
        return _pack_as(output, packed), state

    def _forward(self, input, hx, masks=None):
        who = type(self).__name__
        input = _input_tensor(who, input)
        if input.ndim not in (2, 3):
            raise ValueError(f"{who}: Expected input to be 2D or 3D, got {input.ndim}D tensor instead")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{who}: input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                             f"{input.shape[-1]} (input of shape {input.shape})")
        batched = input.ndim == 3
        if not batched:
            x = ops.unsqueeze(input, 1)
        elif self.batch_first and masks is None:  # (a packed input's padded form is time-major)
            x = ops.transpose(input, (1, 0, 2))
        else:
            x = input
        length, n = x.shape[:2]
        if length == 0:
            raise ValueError(f"{who}: Expected sequence length to be larger than 0 (input of shape {input.shape})")
        initial = iter(self._initial(hx, batched, n))
        x = ops.reshape(x, (length * n, self.input_size))  # (L·N, features) throughout, each step's N rows a piece
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outputs = []
            for reverse in ((False, True) if self.bidirectional else (False,)):
                h0, c0 = next(initial)
                y, h, c = self._direction(x, length, f"_l{layer}" + ("_reverse" if reverse else ""), reverse, h0, c0,
                                          masks)
                outputs.append(y)
                h_n.append(h)
                c_n.append(c)
            x = ops.concatenate(outputs, axis=1) if self.bidirectional else outputs[0]
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = functional.dropout(x, self.dropout, True, rng=self.rng)
        x = ops.reshape(x, (length, n, x.shape[1]))
        h_n = ops.stack(h_n, axis=0)
        c_n = ops.stack(c_n, axis=0) if self.mode == "LSTM" else None
        if not batched:
            x, h_n = ops.squeeze(x, 1), ops.squeeze(h_n, 1)
            c_n = None if c_n is None else ops.squeeze(c_n, 1)
        elif self.batch_first and masks is None:
            x = ops.transpose(x, (1, 0, 2))
        return (x, h_n) if c_n is None else (x, (h_n, c_n))

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s


class RNN(RNNBase):
    """An Elman RNN, torch's ``RNN(input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
    batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None)``: per layer
    h_t = act(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh), act tanh or relu. See RNNBase for the inputs, outputs,
    parameters and what is not here."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, *, rng=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        self._setup("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers, bias,
                    batch_first, dropout, bidirectional, device, dtype, rng)


class GRU(RNNBase):
    """A GRU, torch's ``GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, device=None, dtype=None)``: per layer GRUCell's equations (gates r, z, n in the weights'
    rows; n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), as torch's). See RNNBase."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None, *, rng=None):
        self._setup("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
                    dtype, rng)


class LSTM(RNNBase):
    """An LSTM, torch's ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
    bidirectional=False, proj_size=0, device=None, dtype=None)``: per layer LSTMCell's equations (gates i, f, g, o in
    the weights' rows); hx is (h_0, c_0), the result (output, (h_n, c_n)). ``proj_size`` P > 0, torch's projected
    LSTM: h_t = (σ(o) ⊙ tanh(c_t)) W_hrᵀ of P values (weight_hr_l{k} (P, H) after the biases; weight_hh (4H, P); h_0,
    h_n and the output of P a direction, c of H). See RNNBase."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None, *, rng=None):
        if isinstance(proj_size, bool) or not isinstance(proj_size, numbers.Integral):
            raise TypeError(f"LSTM: proj_size should be of type int, got: {type(proj_size).__name__}")
        if proj_size < 0:
            raise ValueError("LSTM: proj_size should be a positive integer or zero to disable projections")
        if proj_size and proj_size >= hidden_size:
            raise ValueError(f"LSTM: proj_size has to be smaller than hidden_size (proj_size={proj_size}, "
                             f"hidden_size={hidden_size})")
        self._setup("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device,
                    dtype, rng, int(proj_size))


# ---- minivae.nn.utils.rnn: torch.nn.utils.rnn's packed sequences ----------------------------------------------------
class PackedSequence(namedtuple("PackedSequence", ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """torch's PackedSequence: ``data`` (Σ lengths, *), each time step's rows of the sequences still running, longest
    sequence first (sorted by length, ties in batch order); ``batch_sizes`` (T,) how many sequences run at step t;
    ``sorted_indices`` the batch's order by length (None: it was sorted) and ``unsorted_indices`` its inverse; the three
    int64 CPU tensors. Made by ``pack_padded_sequence`` or ``pack_sequence``, read back by ``pad_packed_sequence``,
    taken and given back by RNN, GRU and LSTM."""

    __slots__ = ()

    def __new__(cls, data, batch_sizes, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = Tensor(numpy.argsort(sorted_indices.numpy(), kind="stable"))
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, device):
        """The same sequences with ``data`` on ``device`` (the indices stay on the CPU, as torch's batch_sizes)."""
        return self._replace(data=self.data.to(device))


def _swap_leading(x):
    """x with its first two axes swapped (batch-first ↔ time-major)."""
    return ops.transpose(x, (1, 0) + tuple(range(2, x.ndim)))


def _lengths(lengths, n):
    """``lengths`` (a sequence, array or CPU tensor of N positive integers) as an int64 NumPy array, checked as torch."""
    if isinstance(lengths, Tensor):
        if lengths.device != "cpu":
            raise ValueError("pack_padded_sequence: 'lengths' argument should be a 1D CPU int64 tensor, but got a "
                             f"tensor on {lengths.device}")
        lengths = lengths.numpy()
    values = numpy.asarray(lengths)
    if values.ndim != 1 or values.dtype.kind not in "iu" and not (values.dtype.kind == "f" and
                                                                   (values == numpy.round(values)).all()):
        raise ValueError(f"pack_padded_sequence: lengths must be one integer per sequence, got {values!r}")
    values = values.astype(numpy.int64)
    if values.size != n:
        raise ValueError(f"pack_padded_sequence: Expected `len(lengths)` to be equal to batch_size, but got "
                         f"{values.size} (batch_size={n})")
    if values.size and values.min() <= 0:
        raise RuntimeError("pack_padded_sequence: Length of all samples has to be greater than 0, but found an "
                           f"element in 'lengths' that is <= 0 ({values.tolist()})")
    return values


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """torch's: a padded batch (T, B, *) ((B, T, *) with ``batch_first``) of sequences of ``lengths`` (CPU
    integers, one a sequence, each ≥ 1 and ≤ T) as a PackedSequence, its data one gather of the rows that are
    within their sequence (so gradients reach only those). ``enforce_sorted``: the lengths must not increase (else
    the batch is sorted, longest first, ties in batch order, and ``sorted_indices`` says how)."""
    input = _input_tensor("pack_padded_sequence", input)
    if input.ndim < 2:
        raise ValueError(f"pack_padded_sequence: input must be at least 2-D (T, B, *), got shape {input.shape}")
    if batch_first:
        input = _swap_leading(input)
    steps, n = input.shape[:2]
    lengths = _lengths(lengths, n)
    if n and lengths.max() > steps:
        raise RuntimeError(f"pack_padded_sequence: a length {lengths.max()} exceeds the sequences' padded length "
                           f"{steps}")
    if enforce_sorted:
        if (numpy.diff(lengths) > 0).any():
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. You "
                               "can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence to "
                               "sidestep this requirement if you do not need ONNX exportability.")
        order = numpy.arange(n)
    else:
        order = numpy.argsort(-lengths, kind="stable")
    ordered = lengths[order]
    batch_sizes = (ordered[None, :] > numpy.arange(ordered[0] if n else 0)[:, None]).sum(axis=1)
    rows = numpy.concatenate([t * n + order[:b] for t, b in enumerate(batch_sizes)]) if n else numpy.zeros(0, int)
    data = ops.take(ops.reshape(input, (steps * n,) + input.shape[2:]), Tensor(rows.astype(numpy.int64)), axis=0)
    sorted_indices = None if enforce_sorted else Tensor(order.astype(numpy.int64))
    return PackedSequence(data, Tensor(batch_sizes.astype(numpy.int64)), sorted_indices)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """torch's: (padded (T, B, *) ((B, T, *) with ``batch_first``), lengths (B,) int64 CPU tensor), the batch in
    the order it had before packing, steps beyond a sequence's length ``padding_value``, T = ``total_length`` or
    the longest length; one gather of the data and a padding row."""
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence: a PackedSequence is needed, got {type(sequence).__name__}")
    data, batch_sizes = sequence.data, sequence.batch_sizes.numpy()
    steps, n = len(batch_sizes), int(batch_sizes[0]) if len(batch_sizes) else 0
    if total_length is not None:
        if total_length < steps:
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, but "
                             f"got total_length={total_length} and max sequence length being {steps}")
        steps = total_length
    rank = (numpy.arange(n) if sequence.unsorted_indices is None else sequence.unsorted_indices.numpy())
    lengths = _lengths_of(sequence)
    offsets = numpy.concatenate([[0], numpy.cumsum(batch_sizes)])
    t = numpy.arange(steps)[:, None]
    within = t < lengths[None, :]
    rows = numpy.where(within, offsets[numpy.minimum(t, len(batch_sizes))] + rank[None, :], data.shape[0])
    pad = Tensor(data.xp.full((1,) + data.shape[1:], padding_value, dtype=data.dtype))
    padded = ops.take(ops.concatenate([data, pad], axis=0), Tensor(rows.reshape(-1).astype(numpy.int64)), axis=0)
    padded = ops.reshape(padded, (steps, n) + data.shape[1:])
    return (_swap_leading(padded) if batch_first else padded), Tensor(lengths.astype(numpy.int64))


def _pack_as(padded, packed):
    """The padded (T, B, *) output of a packed input packed as that input was (its batch order and sizes)."""
    return pack_padded_sequence(padded, _lengths_of(packed), enforce_sorted=packed.sorted_indices is None)._replace(
        sorted_indices=packed.sorted_indices, unsorted_indices=packed.unsorted_indices)


def _lengths_of(packed):
    """The lengths of a PackedSequence's sequences, in the batch's own order (int64 NumPy): sequence s of the sorted
    order runs while the step's batch size exceeds s."""
    batch_sizes = packed.batch_sizes.numpy()
    n = int(batch_sizes[0]) if len(batch_sizes) else 0
    lengths = (batch_sizes[None, :] > numpy.arange(n)[:, None]).sum(axis=1)
    return lengths if packed.unsorted_indices is None else lengths[packed.unsorted_indices.numpy()]


def pad_sequence(sequences, batch_first=False, padding_value=0.0):
    """torch's: tensors (L_i, *) of one trailing shape as one (max L, B, *) tensor ((B, max L, *) with
    ``batch_first``), each padded at its end with ``padding_value``."""
    sequences = [_input_tensor("pad_sequence", s) for s in sequences]
    if not sequences:
        raise ValueError("pad_sequence: received an empty list of sequences")
    rest = sequences[0].shape[1:]
    if any(s.ndim < 1 or s.shape[1:] != rest for s in sequences):
        raise ValueError(f"pad_sequence: the sequences' trailing shapes differ: {[s.shape for s in sequences]}")
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        fill = Tensor(s.xp.full((longest - s.shape[0],) + rest, padding_value, dtype=s.dtype))
        padded.append(ops.concatenate([s, fill], axis=0) if longest > s.shape[0] else s)
    return ops.stack(padded, axis=0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    """torch's: tensors (L_i, *) as one PackedSequence (pad_sequence, then pack_padded_sequence of their lengths)."""
    sequences = list(sequences)
    return pack_padded_sequence(pad_sequence(sequences), [s.shape[0] for s in sequences], enforce_sorted=enforce_sorted)


# torch's places for them: minivae.nn.utils.rnn.pack_padded_sequence, `from minivae.nn.utils.rnn import …`
utils = types.ModuleType("minivae.nn.utils", "torch.nn.utils' names that minivae has: rnn (packed sequences).")
utils.rnn = types.ModuleType("minivae.nn.utils.rnn", "torch.nn.utils.rnn's packed sequences (defined in minivae.nn).")
for _f in (PackedSequence, pack_padded_sequence, pad_packed_sequence, pad_sequence, pack_sequence):
    setattr(utils.rnn, _f.__name__, _f)
sys.modules.setdefault("minivae.nn.utils", utils)
sys.modules.setdefault("minivae.nn.utils.rnn", utils.rnn)
