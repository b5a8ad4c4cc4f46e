"""The ``minivae`` command."""
import argparse
import sys


def _ops(args):
    from minivae.ops import NONDIFFERENTIABLE, OPS
    for name, cls in sorted(OPS.items()):
        print(f"{name:16s} {(cls.__doc__ or '').strip().splitlines()[0]}")
    for name in sorted(NONDIFFERENTIABLE):
        print(f"{name:16s} (no gradient)")


def _demo(args):
    """Fit softmax regression to noisy synthetic clusters with hand-written gradients."""
    import numpy as np
    import minivae as mv
    import minivae.functional as F
    rng = np.random.default_rng(args.seed)
    centers = rng.normal(size=(3, 2)) * 3
    labels = rng.integers(0, 3, size=300)
    x = mv.tensor((centers[labels] + rng.normal(size=(300, 2))).astype(np.float32))
    target = mv.ops.one_hot(labels, 3)
    w = mv.tensor(np.zeros((2, 3), np.float32), requires_grad=True)
    b = mv.tensor(np.zeros(3, np.float32), requires_grad=True)
    for step in range(args.steps):
        loss = -(F.log_softmax(x @ w + b) * target).sum(axis=1).mean()
        w.grad = b.grad = None
        loss.backward()
        w.data -= 0.1 * w.grad
        b.data -= 0.1 * b.grad
        if step % max(1, args.steps // 5) == 0 or step == args.steps - 1:
            accuracy = float(((x @ w + b).argmax(axis=1).data == labels).mean())
            print(f"step {step:4d}  cross-entropy {loss.item():.4f}  accuracy {accuracy:.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="minivae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("ops", help="list every registered op and its formula").set_defaults(run=_ops)
    demo = sub.add_parser("demo", help="a short demo of the autodiff engine")
    demo.add_argument("--steps", type=int, default=100)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except (ValueError, TypeError, OSError, RuntimeError) as e:
        print(f"minivae {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
