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
        dot = prefix + "." if prefix else ""  # prefix "enc": "enc.weight", as torch's (not "encweight")
        for name, p in self.__dict__.get("_parameters", {}).items():
            yield dot + name, p
        if recurse:
            for name, m in self.__dict__.get("_modules", {}).items():
                yield from m._named_parameters(dot + name, True)

    def parameters(self, recurse=True):
        """Every parameter once (see ``named_parameters``)."""
        return [p for _, p in self.named_parameters(recurse=recurse)]

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def _entries(self):
        """Every registered submodule, in order, a module registered twice (under two names) each time."""
        return list(self.__dict__.get("_modules", {}).values())

    def named_children(self):
        """(name, module) of each direct submodule, in the order they were assigned; a module registered under
        several names comes once, under its first (torch's)."""
        seen = set()
        for name, m in self.__dict__.get("_modules", {}).items():
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


def _indent(text, spaces=2):
    """Every line but the first indented (torch's _addindent): a nested repr under its ``(name): ``."""
    return text.replace("\n", "\n" + " " * spaces)


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
    """F.binary_cross_entropy (from probabilities) as a module: ``BCELoss(weight=None, reduction="mean")``."""

    def __init__(self, weight=None, reduction="mean"):
        self.weight, self.reduction = weight, _reduction(self, reduction)

    def forward(self, input, target):
        return functional.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


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
               "leaky_relu": ops.leaky_relu, "elu": ops.elu, "gelu": ops.gelu, "silu": ops.silu}
ACTIVATION_MODULES = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "softplus": Softplus, "leaky_relu": LeakyReLU,
                      "elu": ELU, "gelu": GELU, "silu": SiLU}
RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu", "silu")  # He init in MLP


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
    """Linear layers of ``sizes`` (e.g. (784, 512, 256, 40)) with ``activation`` between them (none after the last):
    "relu", "leaky_relu", "elu", "gelu", "silu" (He init), "tanh", "sigmoid", "softplus" (Glorot init), each as the
    nn module of that name with torch's defaults. ``activation="gated"`` makes every hidden layer a GatedLinear unit
    instead."""

    def __init__(self, sizes, activation="relu", *, rng=None, dtype=numpy.float32, device="cpu"):
        if activation not in ACTIVATION_MODULES and activation != "gated":
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
