"""The ``minivae`` command: train, eval, sample, estimators, ops, info."""
import argparse
import os
import sys

DEFAULT_OUT = "runs/default"


class _Parser(argparse.ArgumentParser):
    """Argument errors as one readable line, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 0, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _sizes(text):
    try:
        sizes = tuple(int(s) for s in text.split(",") if s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"hidden sizes are comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"hidden sizes must be positive, got {text!r}")
    return sizes


def _check_device(args):
    """Fail before anything is read or written when the device cannot be used (no CuPy, no GPU)."""
    from minivae._backend import module_for_device
    module_for_device(args.device)


def _load_data(args):
    from minivae.data import load_splits
    data = load_splits(args.data)
    if args.limit:
        data = {k: v[:args.limit] for k, v in data.items()}
    return data


def _train(args):
    from minivae.models import CategoricalVAE, GaussianVAE
    from minivae.random import Generator
    from minivae.training import train
    if args.model == "gaussian" and args.estimator not in (None, "pathwise"):
        raise ValueError(f"the gaussian model trains with the pathwise estimator, not {args.estimator!r}")
    if args.model == "categorical" and args.estimator == "pathwise":
        raise ValueError("a categorical latent has no pathwise gradient: use gumbel_softmax, straight_through or reinforce")
    if args.baseline_hidden and args.estimator != "reinforce":
        raise ValueError("--baseline-hidden is the input-dependent baseline of the categorical model's reinforce estimator")
    _check_device(args)
    data = _load_data(args)  # before anything is written: a bad data file leaves no trace
    x_dim = data["train"].shape[1]
    rng = Generator(args.seed)
    if args.model == "gaussian":
        model = GaussianVAE(x_dim, args.hidden, args.z_dim, activation=args.activation, rng=rng, device=args.device)
    else:
        model = CategoricalVAE(x_dim, args.hidden, args.n_latent, args.n_categories,
                               estimator=args.estimator or "gumbel_softmax", tau0=args.tau0,
                               tau_min=args.tau_min, anneal_rate=args.anneal_rate,
                               activation=args.activation, baseline_hidden=args.baseline_hidden, rng=rng,
                               device=args.device)
    print(f"training a {args.model} VAE on {len(data['train'])} images ({args.data}) on {args.device}; "
          f"output in {args.out}")
    train(model, data, args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
          seed=args.seed, resume=args.resume, clip=args.clip, dynamic=args.dynamic_binarization, warmup_epochs=args.warmup_epochs)


def _eval(args):
    from minivae import objectives, ops
    from minivae.data import batches
    from minivae.engine import no_grad, tensor
    from minivae.random import Generator
    from minivae.training import load_checkpoint
    _check_device(args)
    model, _ = load_checkpoint(args.checkpoint, device=args.device)
    x = _load_data(args)[args.split]
    if x.shape[1] != model.config["x_dim"]:
        raise ValueError(f"the data has {x.shape[1]} pixels an image, the model expects {model.config['x_dim']}")
    rng = Generator(args.seed)
    elbo, ll = [], []
    with no_grad():
        for xb in batches(x, args.batch_size):
            xb = tensor(xb, device=args.device)
            elbo.append(objectives.elbo(model, xb, rng))
            ll.append(objectives.log_likelihood_is(model, xb, rng, k=args.k))
        # one copy of each result to the host, at the end
        elbo, ll = ops.concatenate(elbo).numpy(), ops.concatenate(ll).numpy()
    print(f"{args.split}: {len(x)} images")
    print(f"  ELBO (1 sample)                     {elbo.mean():9.3f} nats")
    print(f"  log p(x), importance sampled k={args.k:<5d} {ll.mean():9.3f} nats")


def _sample(args):
    from minivae.png import image_grid, write_png
    from minivae.random import Generator
    from minivae.training import load_checkpoint
    _check_device(args)
    model, _ = load_checkpoint(args.checkpoint, device=args.device)
    images = model.sample(args.n, Generator(args.seed)).numpy()
    write_png(args.out, image_grid(images))
    print(f"wrote {args.n} samples to {args.out}")


def _estimators(args):
    from minivae import lab
    lab.main(draws=args.draws, seed=args.seed, plot=args.plot)


def _info(args):
    from minivae import info
    for key, value in info().items():
        print(f"{key:18s} {value if value is not None else 'not installed'}")
    if os.environ.get("MINIVAE_DISABLE_NUMBA"):
        print("(MINIVAE_DISABLE_NUMBA is set: the NumPy formulas run)")


def _ops(args):
    from minivae.ops import NONDIFFERENTIABLE, OPS
    for name, cls in sorted(OPS.items()):
        print(f"{name:16s} {(cls.__doc__ or '').strip().splitlines()[0]}")
    for name in sorted(NONDIFFERENTIABLE):
        print(f"{name:16s} (no gradient)")


def build_parser():
    parser = _Parser(prog="minivae", description="Variational autoencoders and gradient estimators on NumPy.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def device_arg(p):
        p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                       help="where to compute: cpu (NumPy) or cuda (an NVIDIA GPU through CuPy)")

    def data_args(p):
        p.add_argument("--data", default="default",
                       help="'default' (embedded digits), a folder of .amat/IDX files, or one file")
        p.add_argument("--limit", type=_positive_int, help="use only the first N images of each split")

    t = sub.add_parser("train", help="train a VAE")
    t.add_argument("--model", choices=["gaussian", "categorical"], default="categorical")
    data_args(t)
    t.add_argument("--epochs", type=_positive_int, default=10)
    t.add_argument("--batch-size", type=_positive_int, default=100)
    t.add_argument("--lr", type=_positive_float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--hidden", type=_sizes, default=(512, 256), help="hidden sizes, e.g. 512,256")
    t.add_argument("--activation", choices=["relu", "tanh", "softplus", "gated"], default="relu",
                   help="hidden layers: an activation after each, or gated linear units")
    t.add_argument("--warmup-epochs", type=_non_negative_int, default=0, help="KL weight rises linearly from 0 to 1 over these epochs")
    t.add_argument("--z-dim", type=_positive_int, default=20, help="gaussian: latent dimensions")
    t.add_argument("--n-latent", type=_positive_int, default=20, help="categorical: latent variables")
    t.add_argument("--n-categories", type=_positive_int, default=10, help="categorical: categories each")
    t.add_argument("--estimator", choices=["pathwise", "gumbel_softmax", "straight_through", "reinforce"])
    t.add_argument("--baseline-hidden", type=_non_negative_int, default=0,
                   help="reinforce: hidden units of a learned input-dependent baseline b(x) (0: moving average only)")
    t.add_argument("--tau0", type=_positive_float, default=1.0, help="initial temperature")
    t.add_argument("--tau-min", type=_positive_float, default=0.5, help="temperature floor")
    t.add_argument("--anneal-rate", type=float, default=3e-5, help="r in τ = max(τ_min, τ0·exp(−r·step))")
    t.add_argument("--clip", type=_positive_float, help="clip gradients to this global norm")
    t.add_argument("--dynamic-binarization", action="store_true",
                   help="binarize each training batch afresh (for grey-level data such as IDX files)")
    t.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    device_arg(t)
    t.set_defaults(run=_train)

    e = sub.add_parser("eval", help="test ELBO and importance-sampled log-likelihood of a checkpoint")
    e.add_argument("checkpoint")
    data_args(e)
    e.add_argument("--split", choices=["train", "valid", "test"], default="test")
    e.add_argument("-k", type=_positive_int, default=1000, help="importance samples")
    e.add_argument("--batch-size", type=_positive_int, default=100)
    e.add_argument("--seed", type=int, default=0)
    device_arg(e)
    e.set_defaults(run=_eval)

    s = sub.add_parser("sample", help="draw images from a checkpoint's prior")
    s.add_argument("checkpoint")
    s.add_argument("--n", type=_positive_int, default=64)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="samples.png")
    device_arg(s)
    s.set_defaults(run=_sample)

    x = sub.add_parser("estimators", help="compare gradient estimators against exact gradients")
    x.add_argument("--draws", type=_positive_int, default=1000, help="independent estimates per estimator")
    x.add_argument("--seed", type=int, default=0)
    x.add_argument("--plot", help="also write a PNG plot here (needs matplotlib)")
    x.set_defaults(run=_estimators)

    sub.add_parser("ops", help="list every registered op and its formula").set_defaults(run=_ops)
    sub.add_parser("info", help="versions, fused kernels in use, GPU").set_defaults(run=_info)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except KeyboardInterrupt:
        print(f"minivae {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, RuntimeError, NotImplementedError) as e:
        print(f"minivae {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

