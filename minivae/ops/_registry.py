"""The one enumerable table of ops.

``OPS`` maps an op's name to its ``Function`` class (forward and VJP side by side);
tests iterate it, and an op missing from the gradcheck domains fails a test.
``NONDIFFERENTIABLE`` lists the ops that produce values gradients never flow through, and
``NONDIFFERENTIABLE_INPUTS`` every op's inputs that never receive a gradient (the engine raises
if any other input that requires a gradient gets ``None``).
"""
OPS = {}
NONDIFFERENTIABLE = {}
NONDIFFERENTIABLE_INPUTS = {}


def register(name, nondifferentiable_inputs=()):
    """Add a Function class to OPS under ``name``; ``nondifferentiable_inputs`` are the positions of
    its inputs that get no gradient by design (a boolean mask, fixed noise)."""
    def add(cls):
        if name in OPS:
            raise ValueError(f"op {name!r} registered twice")
        cls.name = name
        cls.nondifferentiable_inputs = tuple(nondifferentiable_inputs)
        OPS[name] = cls
        NONDIFFERENTIABLE_INPUTS[name] = cls.nondifferentiable_inputs
        return cls
    return add


def nondifferentiable(name):
    def add(fn):
        NONDIFFERENTIABLE[name] = fn
        return fn
    return add
