"""Einstein summation of several operands, with its VJP."""
from minivae.engine import Function
from minivae.ops._registry import register
from minivae.ops.arith import floating_all


def parse(subscripts, shapes):
    """(inputs, output) of ``subscripts`` ("ij,jk->ik"; without "->" the output is the letters that occur once, in
    alphabetical order, as NumPy's): one string of letters per operand, checked against the operands' shapes. Refused
    with a clear error: a letter repeated within one operand or in the output (a diagonal or trace: use diagonal),
    "..." (ellipsis), an output letter no input has, a letter whose axes differ in size, a wrong number of letters."""
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a string, not {type(subscripts).__name__}")
    spec = subscripts.replace(" ", "")
    if "." in spec:
        raise ValueError(f"einsum: {subscripts!r}: '...' (ellipsis) is not supported; name every axis")
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


def einsum(subscripts, *operands):
    """numpy.einsum / torch.einsum(subscripts, *operands) (operands also as one list, torch's other form), for
    subscripts with no letter twice in one operand and no "..."; see ``Einsum`` for the VJP."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return Einsum.apply(*operands, subscripts=subscripts)


