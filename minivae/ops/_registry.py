"""The one enumerable table of ops.

``OPS`` maps an op's name to its ``Function`` class (forward and VJP side by side);
tests iterate it, and an op missing from the gradcheck domains fails a test.
``NONDIFFERENTIABLE`` lists the ops that produce values gradients never flow through.
"""
OPS = {}
NONDIFFERENTIABLE = {}


def register(name):
    def add(cls):
        if name in OPS:
            raise ValueError(f"op {name!r} registered twice")
        cls.name = name
        OPS[name] = cls
        return cls
    return add


def nondifferentiable(name):
    def add(fn):
        NONDIFFERENTIABLE[name] = fn
        return fn
    return add
