"""minivae's GPU path against CuPy's API (tests/cupy_api.json, written by tools/cupy_api.py from CuPy 14.2).

Statically: every attribute chain on an array module in minivae/**/*.py (``xp.``, ``ctx.xp.``, ``cupy.``,
``get_array_module(a).``, …) names something CuPy has, and a call through one passes only keywords that CuPy's
function takes. At run time the strict stand-in (tests/strict_array.py) refuses the same, so every device test under
``emulating()`` is a CuPy-API test too. Planted NumPy-only spellings show that both catch them.
"""
import ast
import importlib.util
import inspect
import json
from pathlib import Path

import numpy
import pytest
from hypothesis import assume, given, settings, strategies as st

import minivae as mv
from minivae._backend import to_numpy, use_cuda_kernels

from minivae.ops import reduce as reduce_ops
from minivae.ops import unary
from tests import strict_array
from tests.strict_array import API, StrictArray, check_call, emulating, strict
from tests.test_ops_gradcheck import DOMAINS

ROOT = Path(__file__).resolve().parent.parent
MODULE_NAMES = {"xp", "cupy", "cp", "cupyx"}      # names that hold an array module wherever they appear
MODULE_ATTRIBUTES = {"xp", "cupy"}                # ctx.xp, tensor.xp, self.cupy
MODULE_FUNCTIONS = {"get_array_module", "module_for_device", "cupy_module"}  # minivae._backend's: return one


def _tool():
    spec = importlib.util.spec_from_file_location("cupy_api_tool", ROOT / "tools" / "cupy_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the scanner ---------------------------------------------------------------------------------------------------
def _aliases(tree):
    """Names a file binds to an array module (``m = xp``, ``xp, x = ctx.xp, ctx.x``, module-level ``_xp = …``)."""
    names = set(MODULE_NAMES)
    for _ in range(2):  # an alias of an alias
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    pairs = (zip(target.elts, node.value.elts)
                             if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                             and len(target.elts) == len(node.value.elts) else [(target, node.value)])
                    for name, value in pairs:
                        if isinstance(name, ast.Name) and _is_module(value, names):
                            names.add(name.id)
    return names


def _is_module(node, names):
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Attribute):
        return node.attr in MODULE_ATTRIBUTES
    if isinstance(node, ast.Call):
        func = node.func
        return (func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)) in MODULE_FUNCTIONS
    return False


def _chain(node, names):
    """(the attribute names after the array module, e.g. ["linalg", "norm"]) for ``node``, or None."""
    attrs = []
    while isinstance(node, ast.Attribute) and not _is_module(node, names):
        attrs.append(node.attr)
        node = node.value
    return attrs[::-1] if attrs and _is_module(node, names) else None


def resolve(attrs):
    """(what the chain names: ("function", path, entry) / ("ufunc method", name, method) / ("other",), or a problem)."""
    path = "cupy"
    for i, name in enumerate(attrs):
        if name.startswith("__") and name.endswith("__"):
            return ("other",), None  # a module's __name__ and the like
        dotted = ".".join(path.split(".")[1:] + [name])
        if path not in API["modules"]:
            return None, f"{path} is not recorded: add it to SUBMODULES in tools/cupy_api.py and rerun that"
        entry = API["modules"][path].get(name)
        if entry is None:
            return None, f"{strict_array.CUPY} has no {dotted}"
        rest = attrs[i + 1:]
        if entry == "module":
            path = f"{path}.{name}"
            continue
        if isinstance(entry, dict) and rest:
            method = rest[0]
            if method in API["ufunc_methods"] and method not in entry["methods"]:
                return None, f"{strict_array.CUPY}'s {dotted}.{method} is not supported"
            return ("ufunc method", dotted, method), None
        return ("function", dotted, entry) if not rest else ("other",), None
    return ("other",), None


def scan_source(text, filename):
    """Problems ("file:line: what") with the array-module uses in one file's source ``text``."""
    tree = ast.parse(text, filename)
    names = _aliases(tree)
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
    problems = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        attrs = _chain(node, names)
        if attrs is None:
            continue
        target, problem = resolve(attrs)
        if problem is None and id(node) in calls and target[0] != "other":
            call = calls[id(node)]
            if target[0] == "function":
                what, entry = target[1], target[2]
            else:
                what, entry = f"{target[1]}.{target[2]}", API["ufunc_methods"][target[2]]
            starred = any(isinstance(a, ast.Starred) for a in call.args)
            splat = any(k.arg is None for k in call.keywords)
            try:
                check_call(what, entry, () if starred else call.args, [k.arg for k in call.keywords if k.arg],
                           complete=not (starred or splat))
            except TypeError as e:
                problem = str(e)
        if problem is not None:
            problems.append(f"{filename}:{node.lineno}: {problem}")
    return problems


def scan_tree():
    problems = []
    for path in sorted((ROOT / "minivae").rglob("*.py")):
        problems += scan_source(path.read_text(), str(path.relative_to(ROOT)))
    return problems


def test_minivae_uses_only_cupy_api():
    """Every name minivae reaches through an array module is CuPy's, and each call passes keywords CuPy takes."""
    problems = scan_tree()
    assert problems == [], "\n".join(problems)


def test_the_scanner_sees_minivae_array_module_uses():
    """The scan is not vacuous: it finds the array-module calls minivae is made of, each kind of receiver."""
    found = set()
    for path in sorted((ROOT / "minivae").rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = _aliases(tree)
        inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        found |= {".".join(_chain(n, names)) for n in ast.walk(tree)
                  if isinstance(n, ast.Attribute) and id(n) not in inner and _chain(n, names)}
    assert {"exp", "where", "add.at", "einsum", "cumsum", "lib.stride_tricks.as_strided", "cuda.Event",
            "matmul", "clip"} <= found


def op_results(fn, inputs, device, cotangent):
    """[output, each input's gradient] (host arrays) of ``fn`` on ``inputs`` made on ``device``, backward from one random
    upstream gradient (drawn on the first call, kept in ``cotangent`` for the next). A case whose function makes a
    tensor of its own (on the CPU) is not one for a device: hypothesis is told to pass over it."""
    tensors = [mv.tensor(x.copy(), device=device, requires_grad=x.dtype.kind == "f") for x in inputs]
    try:
        out = fn(*tensors)
    except RuntimeError as e:
        assume("on different devices" not in str(e))
        raise
    g = cotangent.setdefault("g", numpy.random.default_rng(5).normal(size=out.shape).astype(out.dtype))
    if out.requires_grad:
        out.backward(mv.tensor(g, device=device))
    return [out.numpy()] + [to_numpy(t.grad) for t in tensors if t.grad is not None]


@pytest.mark.parametrize("name", sorted(DOMAINS))
@settings(max_examples=2, deadline=None, derandomize=True)
@given(data=st.data())
def test_every_op_runs_on_the_stand_in_as_on_the_cpu(name, data):
    """Each registered op's array formula (the CuPy path when the fused kernels are off, and for dtypes they are not built
    for), forward and VJP on its float64 gradcheck domain, on the strict stand-in: only CuPy's API passes there, and the
    values and gradients are the CPU's."""
    fn, inputs, _ = data.draw(DOMAINS[name])
    cotangent = {}
    expected = op_results(fn, inputs, "cpu", cotangent)
    with use_cuda_kernels(False), emulating():
        got = op_results(fn, inputs, "cuda", cotangent)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


# ---- planted NumPy-only spellings: the scanner reports each, the stand-in refuses each -----------------------------
PLANTED = [
    # (function, old text, NumPy-only text, what the scanner says, what the stand-in raises)
    (unary.stable_softplus, "xp.log1p(xp.exp(-xp.abs(x)))", "xp.log1p(xp.exp(-xp.abs(x)), where=x == x, out=None)",
     "cupy 14.2's log1p takes no keyword 'where'", (TypeError, "log1p takes no keyword 'where'")),
    (unary.stable_softplus, "return xp.maximum(x, 0) +", "return xp.maximum.reduce(xp.stack([x, 0 * x])) +",
     "cupy 14.2's maximum.reduce is not supported", (NotImplementedError, "maximum.reduce is not supported")),
    (unary.stable_sigmoid, "e = xp.exp(-xp.abs(x))", "e = xp.exp(-xp.linalg.vector_norm(x[..., None], axis=-1))",
     "cupy 14.2 has no linalg.vector_norm", (AttributeError, "cupy 14.2 has no linalg.vector_norm")),
    (unary.stable_sigmoid, "e = xp.exp(-xp.abs(x))", "e = xp.exp(-xp.abs(xp.unstack(x[None])[0]))",
     "cupy 14.2 has no unstack", (AttributeError, "cupy 14.2 has no unstack")),
    (reduce_ops.logsumexp_array, "m = xp.where(xp.isfinite(m), m, 0)", "m = xp.clip(m, min=-xp.inf)",
     "cupy 14.2's clip takes no keyword 'min'", (TypeError, "clip takes no keyword 'min'")),
]


def _plant(function, old, new):
    source = inspect.getsource(function)
    assert source.count(old) == 1, (function.__name__, old)
    planted = source.replace(old, new)
    namespace = dict(vars(inspect.getmodule(function)))
    exec(compile(planted, f"<planted {function.__name__}>", "exec"), namespace)  # noqa: S102 (a test's own text)
    return planted, namespace[function.__name__]


@pytest.mark.parametrize("function, old, new, reported, refused", PLANTED, ids=[p[2] for p in PLANTED])
def test_a_planted_numpy_only_call_is_reported_and_refused(function, old, new, reported, refused):
    x = numpy.array([[-2.0, 0.5], [3.0, -0.25]])
    args = (x, (1,)) if function is reduce_ops.logsumexp_array else (x,)
    module_file = str(Path(inspect.getfile(function)).relative_to(ROOT))
    assert scan_source(inspect.getsource(function), module_file) == []  # the original passes both
    with emulating():
        expected = function(strict, strict.asarray(x), *args[1:]).get()
    numpy.testing.assert_array_equal(expected, function(numpy, *args))

    planted, planted_function = _plant(function, old, new)
    problems = scan_source(planted, module_file)
    assert len(problems) == 1 and reported in problems[0], problems
    numpy.testing.assert_allclose(planted_function(numpy, *args), expected)  # NumPy takes it: only a GPU would fail
    kind, message = refused
    with emulating(), pytest.raises(kind, match=message):
        planted_function(strict, strict.asarray(x), *args[1:])


def test_the_stand_in_refuses_what_cupy_lacks():
    """Names, keywords, positional arguments, array methods and NumPy's own functions on device arrays."""
    a = strict.asarray(numpy.arange(6.0).reshape(2, 3))
    with pytest.raises(AttributeError, match="cupy 14.2 has no errstate"):
        strict.errstate  # noqa: B018
    with pytest.raises(AttributeError, match="cupy 14.2's ndarray has no attribute 'itemset'"):
        a.itemset  # noqa: B018
    with pytest.raises(TypeError, match="ndarray.sum takes no keyword 'where'"):
        a.sum(where=a > 1)
    with pytest.raises(TypeError, match="ndarray.std takes no keyword 'correction'"):
        a.std(correction=1)
    with pytest.raises(TypeError, match="ndarray.max takes no keyword 'initial'"):
        a.max(initial=0.0)
    with pytest.raises(TypeError, match="cupy 14.2's zeros takes at most 3 positional arguments"):
        strict.zeros((2,), numpy.float64, "C", None)
    with pytest.raises(TypeError, match="cupy 14.2's clip requires its argument 'a_max'"):
        strict.clip(a, 0.0)
    with pytest.raises(TypeError, match="cupy 14.2's reshape takes no keyword 'shape'"):
        strict.reshape(a, shape=(3, 2))  # NumPy 2.1's name for newshape
    with pytest.raises(TypeError, match="cupy 14.2's sort takes no keyword 'stable'"):
        strict.sort(a, stable=True)
    with pytest.raises(TypeError, match="cupy 14.2's einsum takes no keyword 'out'"):
        strict.einsum("ij->j", a, out=strict.empty(3))
    with pytest.raises(TypeError, match="cupy 14.2's sum takes no keyword 'where'"):
        numpy.sum(a, where=a > 1)  # CuPy's __array_function__ calls cupy.sum with it
    with pytest.raises(TypeError, match="cupy 14.2 has no vecdot"):
        numpy.vecdot(a, a)
    with pytest.raises(NotImplementedError, match="maximum.reduce is not supported"):
        numpy.maximum.reduce(a)
    with pytest.raises(TypeError, match="cupy 14.2's maximum: Unsupported type <class 'list'>"):
        strict.maximum(a, [0.0, 1.0, 2.0])  # CuPy's ufuncs take device arrays and scalars alone
    with pytest.raises(TypeError, match="cupy 14.2's add.reduce: Unsupported type <class 'tuple'>"):
        strict.add.reduce((a, a))
    with pytest.raises(TypeError, match="cupy 14.2's add takes no keyword 'where'"):
        numpy.add(a, 1, where=a > 1)
    # and what CuPy takes still runs, with NumPy's values
    numpy.testing.assert_array_equal(strict.einsum("ij->j", a, optimize=True).get(), [3, 5, 7])
    numpy.testing.assert_array_equal(strict.add.reduce(a, axis=0, keepdims=True).get(), [[3, 5, 7]])
    numpy.testing.assert_allclose(strict.linalg.norm(a, axis=1).get(), numpy.sqrt([5, 50]))
    assert strict.lib.stride_tricks.as_strided(a, (3,), (8,)).get().tolist() == [0, 1, 2]
    strict.add.at(a, (numpy.array([0, 0]), numpy.array([1, 1])), 1.0)  # a tuple of indices is at's own
    assert a.get()[0, 1] == 3.0


def test_the_stand_in_wraps_out_of_bounds_array_indices_as_cupy():
    """CuPy wraps an out-of-bounds integer array index around (mod the axis' size) where NumPy raises IndexError: in a
    read, a write and ``add.at`` (so a device op fed a bad index gives wrong numbers, not an error; minivae checks indices
    on the CPU only, ops/more_shape.py ``_check_index``). Ints and in-bounds indices are NumPy's."""
    x = strict.asarray(numpy.arange(12.0).reshape(3, 4))
    assert x[numpy.array([1, 5]), 0].get().tolist() == [4.0, 8.0]  # row 5 of 3 is row 2
    assert x[..., strict.asarray(numpy.array([-5, 4]))].get().tolist() == [[3, 0], [7, 4], [11, 8]]
    assert x[numpy.array([[True, False, True, False]] * 3)].get().tolist() == [0, 2, 4, 6, 8, 10]
    with pytest.raises(IndexError):
        x[3]  # noqa: B018 (an int is checked, as CuPy checks it)
    y = strict.zeros(3)
    y[numpy.array([1, 3])] = 10.0
    assert y.get().tolist() == [10.0, 10.0, 0.0]
    strict.add.at(y, numpy.array([4, 4, -4]), 1.0)
    assert y.get().tolist() == [10.0, 12.0, 1.0]


def test_the_stand_in_argsort_is_stable_as_cupys():
    """cupy.ndarray.argsort is always stable (kind None or "stable"); NumPy's default quicksort is not."""
    values = numpy.zeros(40)
    values[::3] = 1.0
    a = strict.asarray(values)
    assert a.argsort().get().tolist() == sorted(range(40), key=lambda i: values[i])
    with pytest.raises(ValueError, match="kind='quicksort'"):
        a.argsort(kind="quicksort")


def test_the_stand_in_defines_only_cupys_members():
    """What the stand-in spells out itself (rather than forwarding to NumPy under the checks) is CuPy's too."""
    for name in vars(strict_array._StrictModule):
        if not name.startswith("_"):
            assert name in API["modules"]["cupy"], name
    for name in vars(StrictArray):
        if not name.startswith("_") and name != "of":  # (of: the stand-in's own constructor)
            assert name in API["ndarray"], name


# ---- the JSON and its generator ------------------------------------------------------------------------------------
def test_the_json_is_sorted_and_complete_enough():
    text = (ROOT / "tests" / "cupy_api.json").read_text()
    api = json.loads(text)
    assert api["cupy"] == "14.2.0"
    for table in [api["ndarray"], api["ufunc_methods"], *api["modules"].values()]:
        assert list(table) == sorted(table)
    cupy = api["modules"]["cupy"]
    assert cupy["add"]["keywords"] == ["casting", "dtype", "out"] and "at" in cupy["add"]["methods"]
    assert cupy["einsum"] == ["*operands", "dtype=", "optimize="]  # its closed **kwargs
    assert cupy["clip"] == ["a", "a_min", "a_max", "out="]  # (NumPy 2's a_min and a_max have defaults)
    assert api["ndarray"]["sum"] == ["axis=", "dtype=", "out=", "keepdims="]
    assert cupy["linalg"] == "module" and "norm" in api["modules"]["cupy.linalg"]


def test_the_generator_reads_cython_signatures_and_closed_kwargs():
    tool = _tool()
    assert tool.parse_params("self, _ndarray_base b, int axis=-1, *shape, order=('C', 'F'), copy=None") == [
        "self", "b", "axis=", "*shape", "order=", "copy="]
    assert tool.parse_params(r"x1, x2, /, out=None, \*, casting='same_kind', dtype=None") == [
        "x1", "x2", "/", "out=", "*", "casting=", "dtype="]

    def closed(*operands, **kwargs):
        dtype = kwargs.pop("dtype", None)
        optimize = kwargs.pop("optimize", False)
        if kwargs:
            raise TypeError(f"Did not understand {list(kwargs)}")
        return operands, dtype, optimize

    def forwarded(a, /, b, *, c=1, **kwargs):
        return closed(a, b, c, **kwargs)

    assert tool.signature_params(closed) == ["*operands", "dtype=", "optimize="]
    assert tool.signature_params(forwarded) == ["a", "/", "b", "*", "c=", "**kwargs"]
    assert check_call("f", tool.signature_params(forwarded), (1, 2), {"anything": 3}) is None
    assert check_call("f", tool.signature_params(forwarded), (1,), {"b": 2}) is None
    with pytest.raises(TypeError, match="f takes no keyword 'a'"):
        check_call("f", ["a", "/", "b"], (), {"a": 1})
    with pytest.raises(TypeError, match="f requires its argument 'b'"):
        check_call("f", tool.signature_params(forwarded), (1,), {})
    with pytest.raises(TypeError, match="f requires its argument 'k'"):
        check_call("f", ["a", "*", "k"], (1,), {})


def test_the_json_is_what_cupy_says():
    """Where CuPy is importable (no GPU needed), the file is what tools/cupy_api.py writes from it."""
    pytest.importorskip("cupy")
    tool = _tool()
    assert tool.dumps(tool.collect()) == (ROOT / "tests" / "cupy_api.json").read_text()
