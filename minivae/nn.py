"""Modules with named parameters, as in ``torch.nn``: Linear, MLP, activations, state_dict."""
import math
import numbers

import numpy

from minivae import functional, ops  # noqa: F401  (functional re-exported: torch.nn.functional's place)
from minivae._backend import module_for_device, to_device, to_numpy
from minivae._io import load_npz, save_npz_atomic
from minivae.engine import Tensor
from minivae.random import resolve


class Parameter(Tensor):
    """A tensor that a Module registers as a parameter (``requires_grad`` defaults to True), as
    ``torch.nn.Parameter``: registered whatever its ``requires_grad``, so a frozen weight is saved
    and loaded with the others. Any other tensor that requires grad assigned to a Module registers too."""

    __slots__ = ()

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)


class Module:
    """Holds parameters (``Parameter``s, and other tensors that require grad) and submodules, found by attribute name.
    Calling a module runs its ``forward``. ``training`` is True until ``eval()`` (no module here
    behaves differently in the two modes yet; the flag is for the user's own modules)."""

    training = True

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            object.__setattr__(self, "_parameters", {})
            object.__setattr__(self, "_modules", {})
        if isinstance(value, (list, tuple)) and any(isinstance(v, (Module, Tensor)) for v in value):
            raise TypeError(f"{type(self).__name__}.{name}: a plain {type(value).__name__} of modules or tensors "
                            "would hide their parameters; use nn.ModuleList (or nn.Sequential)")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter) or (isinstance(value, Tensor) and value.requires_grad):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, tensor) for every parameter, in the order they were assigned (this module's
        own, then, with ``recurse``, each submodule's). A tensor registered under several names (tied
        weights: ``self.dec = self.enc``) comes once, under its first name, as in PyTorch: an optimizer
        given it twice would update it twice a step. ``remove_duplicate=False`` lists every name
        (``state_dict``'s keys, as PyTorch's)."""
        seen = set() if remove_duplicate else None
        for name, p in self._named_parameters(prefix, recurse):
            if seen is not None:
                if id(p) in seen:  # identity: a Tensor's == is elementwise
                    continue
                seen.add(id(p))
            yield name, p

    def _named_parameters(self, prefix, recurse):
        for name, p in self.__dict__.get("_parameters", {}).items():
            yield prefix + name, p
        if recurse:
            for name, m in self.__dict__.get("_modules", {}).items():
                yield from m._named_parameters(prefix + name + ".", True)

    def parameters(self, recurse=True):
        """Every parameter once (see ``named_parameters``)."""
        return [p for _, p in self.named_parameters(recurse=recurse)]

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def children(self):
        return list(self.__dict__.get("_modules", {}).values())

    def train(self, mode=True):
        """Set ``training`` on this module and every submodule; returns self."""
        self.training = bool(mode)
        for m in self.children():
            m.train(mode)
        return self

    def eval(self):
        return self.train(False)

    @property
    def device(self):
        """Where the parameters live ("cpu" or "cuda"; "cpu" for a module without any)."""
        return next((p.device for p in self.parameters()), "cpu")

    def to(self, device):
        """Move every parameter (and its gradient) to ``device`` in place; returns self.

        The tensors stay the same objects (each one's ``.data`` is replaced, as PyTorch's ``Module.to``
        does), so references to them see the move: an optimizer made before keeps working, its state
        following the parameters at its next ``step()``. A step plan compiled before does not: its
        ``step()`` refuses to replay (compile a new one after the move)."""
        xp = module_for_device(device)
        for p in self.parameters():
            if p.device != device:
                p.data = xp.asarray(p.data) if device != "cpu" else to_numpy(p.data)
                if p.grad is not None:
                    p.grad = xp.asarray(p.grad) if device != "cpu" else to_numpy(p.grad)
        return self

    def state_dict(self):
        """name → a NumPy copy of each parameter (copied from the GPU if it is there), frozen ones
        included. A tied parameter is saved under each of its names, as in PyTorch, so the keys
        do not depend on which weights are tied."""
        return {name: numpy.array(p.numpy()) for name, p in self.named_parameters(remove_duplicate=False)}

    def load_state_dict(self, state):
        """Copy ``state`` into the parameters, in place, on whatever device they are: a value on the
        parameter's device directly (a device array is never routed through the host), one from elsewhere
        by one explicit copy (an upload, or ``get()``). Names, shapes and dtypes must match exactly (no
        silent cast); everything is checked before anything is copied, so a refused state leaves the
        module as it was."""
        own = dict(self.named_parameters(remove_duplicate=False))  # state_dict's keys
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(f"state_dict does not fit {type(self).__name__}: "
                             f"missing {missing}, unexpected {unexpected}")
        values = {}
        for name, p in own.items():
            value = state[name]
            value = value.data if isinstance(value, Tensor) else value
            shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
            if shape != p.shape or dtype != p.dtype:
                raise ValueError(f"state_dict: {name} is {_describe(value)}, the model expects "
                                 f"{p.dtype} of shape {p.shape}")
            values[name] = value
        for name, p in own.items():
            p.data[...] = to_device(values[name], p.device)
            p._version += 1

    def save(self, path):
        """Write the parameters to an .npz file (atomically; never pickled)."""
        save_npz_atomic(path, self.state_dict())

    def load(self, path):
        self.load_state_dict(load_npz(path))
        return self


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
        modules = self.children()
        modules.insert(index, _module(module))
        for i, m in enumerate(modules):  # each re-registered in turn: "0", "1", … in order
            setattr(self, str(i), m)

    def __len__(self):
        return len(self.__dict__.get("_modules", {}))

    def __iter__(self):
        return iter(self.children())

    def __getitem__(self, i):
        """Entry i; a slice gives a new ModuleList of those modules (their parameters shared), as torch's."""
        return ModuleList(self.children()[i]) if isinstance(i, slice) else self.children()[i]


def _module(value):
    if not isinstance(value, Module):
        raise TypeError(f"ModuleList holds modules, not {type(value).__name__}")
    return value


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
    def __init__(self, fn):
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


ACTIVATIONS = {"relu": ops.relu, "tanh": ops.tanh, "sigmoid": ops.sigmoid, "softplus": ops.softplus}


def ReLU():
    return Activation(ops.relu)


def Tanh():
    return Activation(ops.tanh)


class Sequential(ModuleList):
    """Modules applied in order; ``layers`` lists them."""

    def __init__(self, *layers):
        super().__init__(layers)

    layers = property(ModuleList.children)

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
            and isinstance(layers[i + 1], Activation) and layers[i + 1].fn is ops.relu)


class MLP(Sequential):
    """Linear layers of ``sizes`` (e.g. (784, 512, 256, 40)) with ``activation`` between them
    (none after the last). He init for ReLU, Glorot otherwise. ``activation="gated"`` makes
    every hidden layer a GatedLinear unit instead."""

    def __init__(self, sizes, activation="relu", *, rng=None, dtype=numpy.float32, device="cpu"):
        if activation not in ACTIVATIONS and activation != "gated":
            raise ValueError(f"activation must be one of {sorted([*ACTIVATIONS, 'gated'])}, not {activation!r}")
        rng = resolve(rng)
        init = "he" if activation == "relu" else "glorot"
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            hidden = i < len(sizes) - 2
            if hidden and activation == "gated":
                layers.append(GatedLinear(a, b, rng=rng, dtype=dtype, device=device))
                continue
            layers.append(Linear(a, b, rng=rng, init=init, dtype=dtype, device=device))
            if hidden:
                layers.append(Activation(ACTIVATIONS[activation]))
        super().__init__(*layers)
