"""CuPy's API as minivae's GPU path may call it, written to tests/cupy_api.json for the strict stand-in
(tests/strict_array.py) and the static scan (tests/test_cupy_api.py). Needs CuPy importable, no GPU:

    /path/to/python-with-cupy tools/cupy_api.py [--out tests/cupy_api.json]

(a throwaway venv: ``python3.11 -m venv /tmp/cpv && /tmp/cpv/bin/pip install cupy-cuda13x==14.2.0``). Rerun it
when the CuPy version minivae supports changes, or when minivae starts using a submodule not in SUBMODULES
(tests/test_cupy_api.py says which).

What it records, sorted, for each module of SUBMODULES: every public name (``dir`` less ``_``-names) as

- ``"module"``, ``"type"`` (a class, e.g. a dtype or ``RawModule``), ``"value"`` (``inf``, ``newaxis``, …);
- a list of parameter names for a callable whose signature can be read (``inspect.signature``, else the
  signature line Cython writes at the top of a docstring), in Python's notation: ``"/"`` ends the positional-only
  ones, ``"*"`` starts the keyword-only ones, ``"*args"`` and ``"**kwargs"`` as written, and a name ends in ``=``
  where the parameter has a default (``["a", "axis=", "out="]``: ``a`` is required). A function whose
  ``**kwargs`` is closed (its source pops named keys and raises TypeError on any left, as ``cupy.einsum``) is
  written with those keys as keyword-only parameters instead;
- ``"callable"`` for a callable whose signature cannot be read;
- for a CuPy ufunc: ``{"ufunc": [nin, nout], "keywords": [...], "methods": [...]}``, the keywords its call takes
  and the ufunc methods (``at``, ``reduce``, …) it implements, both found by calling it (keywords NumPy's ufuncs
  take and those its docstring names): CuPy parses them before it looks for a GPU, and answers TypeError
  "Wrong arguments" for a keyword it does not take and NotImplementedError for a method it lacks.

``ufunc_methods`` holds the methods' signatures (the same for every ufunc), ``ndarray`` the public attributes
of ``cupy.ndarray``: ``"attribute"`` or a method's parameter list (without ``self``).
"""
import argparse
import ast
import importlib
import inspect
import json
import re
import sys
import textwrap
import types
from pathlib import Path

SUBMODULES = ("cupy", "cupy.cuda", "cupy.cuda.device", "cupy.cuda.runtime", "cupy.lib", "cupy.lib.stride_tricks",
              "cupy.linalg")
UFUNC_KEYWORDS = ("axes", "axis", "casting", "dtype", "keepdims", "order", "out", "signature", "subok", "where")
UFUNC_METHODS = {"accumulate": (1,), "at": (1, 0, 1), "outer": (1, 1), "reduce": (1,), "reduceat": (1, 0)}
OUT = Path(__file__).resolve().parent.parent / "tests" / "cupy_api.json"


def split_top(text):
    """``text`` split at the commas outside brackets and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, c in enumerate(text):
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def parse_params(text):
    """Parameter names of a Cython signature line's list, e.g. "self, _ndarray_base b, int axis=-1, *, copy=None"
    → ["self", "b", "axis", "*", "copy"] (C types and defaults dropped)."""
    names = []
    for part in split_top(text.replace("\\*", "*")):
        default = "=" if "=" in part else ""
        part = part.split("=", 1)[0].split(":", 1)[0].strip()
        if part in ("/", "*"):
            names.append(part)
            continue
        stars = re.match(r"\**", part).group()
        names.append(stars + re.findall(r"\w+", part)[-1] + default)
    return names


def doc_params(obj, name):
    """The parameter list of the signature line ``name(...)`` (or ``Class.name(...)``) heading ``obj``'s docstring,
    or None."""
    first = (getattr(obj, "__doc__", None) or "").lstrip().split("\n", 1)[0]
    match = re.match(rf"^(?:[\w.]+\.)?{re.escape(name)}\((.*)\)(?:\s*->.*)?$", first)
    return parse_params(match.group(1)) if match else None


def closed_kwargs(func, kwargs_name):
    """The keys ``func`` pops from its ``**kwargs`` when it raises TypeError on any other, else None."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return None
    keys, raises = set(), False
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("pop", "get")
                and isinstance(node.func.value, ast.Name) and node.func.value.id == kwargs_name and node.args
                and isinstance(node.args[0], ast.Constant)):
            keys.add(node.args[0].value)
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == kwargs_name
                and any(isinstance(s, ast.Raise) for s in node.body)):
            raises = True
    return sorted(keys) if raises and keys else None


def signature_params(func):
    """``func``'s parameter names in Python's notation, or None where no signature can be read."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return None
    names, kind = [], None
    for p in signature.parameters.values():
        if kind == p.POSITIONAL_ONLY and p.kind != p.POSITIONAL_ONLY:
            names.append("/")
        if p.kind == p.KEYWORD_ONLY and kind not in (p.KEYWORD_ONLY, p.VAR_POSITIONAL):
            names.append("*")
        if p.kind == p.VAR_KEYWORD:
            keys = closed_kwargs(func, p.name)
            if keys is not None:
                names += ([] if kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL) else ["*"]) + [k + "=" for k in keys]
            else:
                names.append("**" + p.name)
        elif p.kind == p.VAR_POSITIONAL:
            names.append("*" + p.name)
        else:
            names.append(p.name + ("" if p.default is p.empty else "="))
        kind = p.kind
    if kind == inspect.Parameter.POSITIONAL_ONLY:
        names.append("/")
    return names


def probe_ufunc(ufunc):
    """The keywords ``ufunc``'s call takes and the methods it implements, by calling it (see the module docstring)."""
    named = doc_params(ufunc, ufunc.__name__.removeprefix("cupy_")) or []
    candidates = sorted(set(UFUNC_KEYWORDS) | {n for n in named if n.isidentifier()})
    keywords = []
    for key in candidates:
        try:
            ufunc(*[1] * ufunc.nin, **{key: None})
        except TypeError as e:
            if "Wrong arguments" in str(e):
                continue
        except Exception:  # noqa: BLE001 (no GPU here: the keyword was taken, the launch failed)
            pass
        keywords.append(key)
    methods = []
    for method, args in sorted(UFUNC_METHODS.items()):
        try:
            getattr(ufunc, method)(*args)
        except NotImplementedError:
            continue
        except Exception:  # noqa: BLE001 (dummy operands: the method exists and got as far as them)
            pass
        methods.append(method)
    return {"ufunc": [ufunc.nin, ufunc.nout], "keywords": keywords, "methods": methods}


def describe(obj, name, ufunc_type):
    if isinstance(obj, ufunc_type):
        return probe_ufunc(obj)
    if isinstance(obj, types.ModuleType):
        return "module"
    if isinstance(obj, type):
        return "type"
    if not callable(obj):
        return "value"
    params = signature_params(obj)
    if params is None:
        params = doc_params(obj, name)
        if params and params[0] == "self":
            params = params[1:]
    return params if params is not None else "callable"


def ndarray_api(ndarray):
    out = {}
    for name in sorted(n for n in dir(ndarray) if not n.startswith("_")):
        static = inspect.getattr_static(ndarray, name)
        if not callable(static) or isinstance(static, (property, types.GetSetDescriptorType, types.MemberDescriptorType)):
            out[name] = "attribute"
            continue
        params = signature_params(getattr(ndarray, name))
        if params is None:
            params = doc_params(getattr(ndarray, name), name)
        out[name] = params[1:] if params and params[0] == "self" else (params if params is not None else "callable")
    return out


def collect():
    import cupy
    ufunc_type = type(cupy.add)
    modules = {}
    for path in SUBMODULES:
        module = importlib.import_module(path)
        modules[path] = {name: describe(getattr(module, name), name, ufunc_type)
                         for name in sorted(n for n in dir(module) if not n.startswith("_"))}
    methods = {}
    for method in sorted(UFUNC_METHODS):
        params = doc_params(getattr(cupy.add, method), method)
        methods[method] = params[1:] if params and params[0] == "self" else params
    return {"cupy": cupy.__version__, "modules": modules, "ndarray": ndarray_api(cupy.ndarray),
            "ufunc_methods": methods}


def dumps(api):
    """Sorted JSON, one name a line (small diffs when CuPy changes)."""
    def block(mapping, indent):
        pad = " " * indent
        lines = [f"{pad}{json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(mapping.items())]
        return "{\n" + ",\n".join(lines) + "\n" + " " * (indent - 1) + "}"
    modules = ",\n".join(f"  {json.dumps(path)}: {block(api['modules'][path], 3)}" for path in sorted(api["modules"]))
    return (f'{{\n "cupy": {json.dumps(api["cupy"])},\n "modules": {{\n{modules}\n }},\n'
            f' "ndarray": {block(api["ndarray"], 2)},\n "ufunc_methods": {block(api["ufunc_methods"], 2)}\n}}\n')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text = dumps(collect())
    json.loads(text)  # well-formed
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(text)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
