"""Einstein summation of several operands, with its VJP."""
import string

import numpy

from minivae.engine import Function, as_tensor
from minivae.ops._registry import register
from minivae.ops.arith import floating_all
from minivae.ops.shape import broadcast_to


def parse(subscripts, shapes):
    """(inputs, output) of ``subscripts`` ("ij,jk->ik"; without "->" the output is the letters that occur once, in
    alphabetical order, as NumPy's): one string of letters per operand, checked against the operands' shapes. Refused
    with a clear error: a letter repeated within one operand or in the output (a diagonal or trace: use diagonal),
    an output letter no input has, a letter whose axes differ in size, a wrong number of letters. "..." is
    ``expand_ellipsis``'s to replace by letters first."""
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a string, not {type(subscripts).__name__}")
    spec = subscripts.replace(" ", "")
    lhs, arrow, out = spec.partition("->")
    inputs = lhs.split(",")
    letters = "".join(inputs)
    if not all(c.isalpha() for c in letters + out):
        raise ValueError(f"einsum: {subscripts!r}: subscripts are letters, commas and one '->'")
    if len(inputs) != len(shapes):
        raise ValueError(f"einsum: {subscripts!r} names {len(inputs)} operands, {len(shapes)} were given")
    if not arrow:
        out = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    for term in inputs + [out]:
        if len(set(term)) != len(term):
            raise ValueError(f"einsum: {subscripts!r}: a letter repeated within {term!r} (a diagonal or trace) is not "
                             "supported; take ops.diagonal first")
    missing = set(out) - set(letters)
    if missing:
        raise ValueError(f"einsum: {subscripts!r}: output letters {sorted(missing)} are in no input")
    sizes = {}
    for term, shape in zip(inputs, shapes):
        if len(term) != len(shape):
            raise ValueError(f"einsum: {subscripts!r}: {term!r} names {len(term)} axes of an operand of shape {shape}")
        for c, n in zip(term, shape):
            if sizes.setdefault(c, n) != n:
                raise ValueError(f"einsum: {subscripts!r}: axis {c!r} has sizes {sizes[c]} and {n}")
    return inputs, out


@register("einsum")
class Einsum(Function):
    """z = einsum("a,b,…->o", x₁, x₂, …): the products of the operands' entries summed over the letters not in o;
    x̄ᵢ = einsum("o,<the others>->aᵢ′", ḡ, the others…) broadcast along the letters of aᵢ that no other term has
    (summed over in xᵢ alone, so each of those entries gets the same gradient), aᵢ′ being aᵢ without them.
    One operand per letter string, no letter twice in one (``parse`` refuses the rest). Saves the operands.
    Mixed dtypes as the elementwise ops (``floating_all``): an integer operand beside a floating one takes its dtype."""

    def forward(ctx, *xs, subscripts=""):
        inputs, out = parse(subscripts, [x.shape for x in xs])
        xs = floating_all(xs)
        ctx.save(xs=xs, inputs=inputs, out=out)
        return ctx.xp.einsum(f"{','.join(inputs)}->{out}", *xs)

    def backward(ctx, g):
        xp, xs, inputs, out = ctx.xp, ctx.xs, ctx.inputs, ctx.out
        grads = []
        for i, (x, term) in enumerate(zip(xs, inputs)):
            if not ctx.needs_input_grad[i]:
                grads.append(None)
                continue
            others = [t for k, t in enumerate(inputs) if k != i]
            seen = set(out).union(*others)
            kept = "".join(c for c in term if c in seen)
            gx = xp.einsum(f"{','.join([out] + others)}->{kept}", g, *[y for k, y in enumerate(xs) if k != i])
            shape = [n if c in seen else 1 for c, n in zip(term, x.shape)]
            grads.append(xp.broadcast_to(gx.reshape(shape), x.shape).astype(g.dtype, copy=False))
        return tuple(grads)


def expand_ellipsis(subscripts, shapes):
    """(subscripts with each "..." replaced by letters no term uses, the shape each operand is broadcast to).

    As NumPy's and torch's einsum: an operand's "..." stands for its axes that the letters do not name; these batch
    axes are aligned from the right and broadcast against each other, size 1 against n (the operand is broadcast to
    the common size first: its VJP, ``broadcast_to``'s, sums the gradient back). Without "->" the output is the batch
    axes, then the letters that occur once, in alphabetical order. An output without "..." sums the batch axes
    away: torch's rule (NumPy refuses such subscripts). Subscripts without "..." come back unchanged."""
    spec = subscripts.replace(" ", "") if isinstance(subscripts, str) else subscripts
    if not isinstance(spec, str) or "." not in spec:
        return subscripts, [None] * len(shapes)
    lhs, arrow, out = spec.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"einsum: {subscripts!r} names {len(inputs)} operands, {len(shapes)} were given")
    for term in inputs + [out]:
        if term.replace("...", "", 1).count(".") or term.count("...") > 1:
            raise ValueError(f"einsum: {subscripts!r}: {term!r}: '.' comes only as one '...' per term")
    batch_shapes = []
    for term, shape in zip(inputs, shapes):
        named = len(term.replace("...", ""))
        if named > len(shape) or ("..." not in term and named != len(shape)):
            raise ValueError(f"einsum: {subscripts!r}: {term!r} names {named} axes of an operand of shape {shape}")
        start = term.find("...")  # the batch axes follow the letters before "..."
        batch_shapes.append(tuple(shape[start:start + len(shape) - named]) if start >= 0 else ())
    try:
        batch = numpy.broadcast_shapes(*batch_shapes)
    except ValueError:
        raise ValueError(f"einsum: {subscripts!r}: the axes of '...' do not broadcast: "
                         f"{', '.join(str(b) for b in batch_shapes)}") from None
    free = [c for c in string.ascii_letters if c not in spec]
    if len(batch) > len(free):
        raise ValueError(f"einsum: {subscripts!r}: '...' spans {len(batch)} axes, more than the unused letters")
    letters = "".join(free[:len(batch)])
    new_inputs = [term.replace("...", letters[len(batch) - len(b):]) for term, b in zip(inputs, batch_shapes)]
    if arrow:
        out = out.replace("...", letters)
    else:
        named = "".join(new_inputs)
        out = letters + "".join(sorted(c for c in set(named) - set(letters) if named.count(c) == 1))
    targets = []
    for term, b, shape in zip(inputs, batch_shapes, shapes):
        wanted, start = batch[len(batch) - len(b):], max(term.find("..."), 0)
        targets.append(None if b == wanted else tuple(shape[:start]) + wanted + tuple(shape[start + len(b):]))
    return f"{','.join(new_inputs)}->{out}", targets


def einsum(subscripts, *operands):
    """numpy.einsum / torch.einsum(subscripts, *operands) (operands also as one list, torch's other form), for
    subscripts with no letter twice in one operand; "..." as ``expand_ellipsis`` says. See ``Einsum`` for the VJP."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    operands = tuple(as_tensor(x) for x in operands)
    subscripts, targets = expand_ellipsis(subscripts, [x.shape for x in operands])
    operands = [x if t is None else broadcast_to(x, t) for x, t in zip(operands, targets)]
    return Einsum.apply(*operands, subscripts=subscripts)


