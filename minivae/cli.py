"""The ``minivae`` command: train, eval, sample, reconstruct, interpolate, traverse, manifold, estimators, ops, info."""
import argparse
import math
import os
import stat
import sys

DEFAULT_OUT = "runs/default"


class _Parser(argparse.ArgumentParser):
    """Argument errors as one readable line, exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows each option's default where it has one (not a flag's False, not "None")."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _at_least_two(text):
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2, got {text}")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 0, got {text}")
    return value


def _seed(text):
    # the Generator's range, checked while parsing: a seed out of it would otherwise fail only when first
    # used (for train, after the output folder is made). Seeds derived from it (training.derived_seed)
    # wrap around within the range, so every seed accepted here runs to the end
    value = int(text)
    if not 0 <= value < 2 ** 64:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**64), got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _non_negative_float(text):
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, got {text}")
    return value


def _decay(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _eta(text):
    """--rebar-eta: a finite number, or "auto" (η learned by the variance's gradient)."""
    return "auto" if text == "auto" else _finite_float(text)


def _sizes(text):
    try:
        sizes = tuple(int(s) for s in text.split(",") if s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return sizes


def _sizes_from_zero(text):
    try:
        values = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers, got {text!r}") from None
    if min(values) < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return values


def _check_device(args):
    """Fail before anything is read or written when the device cannot be used (no CuPy, no GPU)."""
    from minivae._backend import module_for_device
    module_for_device(args.device)


COUNT_LIKELIHOODS = ("poisson", "negative_binomial", "zero_inflated_negative_binomial")  # models.COUNT_LIKELIHOODS
LIKELIHOODS = ("bernoulli", "gaussian", "continuous_bernoulli", "discretized_logistic") + COUNT_LIKELIHOODS  # models'
# nn.ACTIVATION_MODULES' names and gated linear units (written here: the parser is made before minivae.nn is imported;
# tests/test_cli_other_models.py checks both lists against the modules')
ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus", "leaky_relu", "elu", "gelu", "silu", "selu", "celu", "mish",
               "hardswish", "relu6", "hardtanh", "hardsigmoid", "softsign", "log_sigmoid", "gated")


def _check_likelihood(args, likelihood):
    """Refuse the Bernoulli likelihood's data options with another likelihood (which takes grey levels, or counts, as
    they are)."""
    flags = [f for f, on in (("--dynamic-binarization", args.dynamic_binarization),
                             ("--grey-targets", args.grey_targets)) if on]
    if likelihood != "bernoulli" and flags:
        data = "counts 0, 1, 2, …" if likelihood in COUNT_LIKELIHOODS else "grey levels in [0, 1]"
        raise ValueError(f"{' and '.join(flags)} {'are' if len(flags) > 1 else 'is'} for the Bernoulli likelihood: "
                         f"the {likelihood} likelihood takes {data} as they are")


def _rows(likelihood):
    """What a row of the data is called: an image, or (a count likelihood's) a row of counts."""
    return "rows of counts" if likelihood in COUNT_LIKELIHOODS else "images"


def _load_data(args, splits, x_dim=None, batch_size=None, likelihood=None):
    """The splits asked for, checked (size, count, values: data.check_splits) before anything is written: binary
    pixels for the Bernoulli likelihood without --dynamic-binarization or --grey-targets, the grid of 256 grey levels
    for the discretized logistic one, counts (of any width, no square images) for the count likelihoods.
    ``likelihood``: the model's (eval), or train's --likelihood when not given."""
    likelihood = likelihood or getattr(args, "likelihood", "bernoulli")
    from minivae.data import Splits, load_splits
    data = load_splits(args.data)
    if args.limit:  # training takes the first N (quick runs); eval draws N, since the first need not be typical
        data = data.limit(args.limit, seed=None if args.command == "train" else args.seed)
    data = Splits({k: data[k] for k in splits}, data.files)
    _check_data(args, data, data.files, x_dim, batch_size, likelihood)
    return data


def _check_data(args, data, files, x_dim, batch_size, likelihood):
    """data.check_splits of the splits ``data`` for ``likelihood`` and the options (see _load_data)."""
    from minivae.data import check_splits
    binary = likelihood == "bernoulli" and not (args.dynamic_binarization or args.grey_targets)
    check_splits(data, files, x_dim=x_dim, batch_size=batch_size, binary=binary, counts=likelihood in COUNT_LIKELIHOODS,
                 levels=256 if likelihood == "discretized_logistic" else None)


# --n-latent's default for each model of discrete latents (see its --help)
N_LATENT = {"categorical": 20, "bernoulli": 50, "vq": 16}
# the vq model's options, by flag: (attribute, default); given with another model, they are refused
VQ_OPTIONS = {"--code-dim": ("code_dim", 8), "--n-codes": ("n_codes", 64), "--commitment-cost": ("commitment_cost", 0.25),
              "--ema-decay": ("ema_decay", None), "--code-prior": ("code_prior", None)}


LABELS = 100  # --labels' default: the paper's 100 labelled MNIST digits, 10 of each class
# why the vq, semisupervised and conditional models take none of the options of the others' sampled latents and weighted KL
OWN_LOSS = {"vq": "it trains by −log p(x|z_q) and the codebook and commitment terms, no sampled latent and no KL to "
                  "weigh (its KL is the constant L log K); its weight is --commitment-cost",
            "semisupervised": "it trains by Kingma et al.'s bounds L(x, y) and U(x) of a class y and a Gaussian z "
                              "(--z-dim), the classes summed out exactly, by MLPs (in a loop of its own, resumable "
                              "and with --graph and --tf32 as the others')",
            "conditional": "it trains by the ELBO of log p(x|y), a class y given to both networks and a Gaussian z "
                           "(--z-dim), by MLPs (in a loop of its own, resumable and with --graph and --tf32 as the "
                           "others')"}


def _model_options(args):
    """Refuse the vq model's options (and --labels) with another model, and with the vq, semisupervised and conditional
    models the options that only the others' sampled latents, weighted KL, priors, flows or convolutions take; fill in
    the vq options' defaults."""
    if args.model != "vq":
        given = [flag for flag, (name, _) in VQ_OPTIONS.items() if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{given[0]} is the vq model's (its codebook or its codes' prior): pass --model vq")
    if args.model != "semisupervised" and args.labels is not None:
        raise ValueError("--labels is the semisupervised model's count of labelled images: pass --model semisupervised")
    if args.model != "conditional" and args.prior == "learned":
        raise ValueError(f"--prior learned is the conditional model's prior network p(z|y), not the {args.model} "
                         "model's: pass --model conditional")
    if args.prior_hidden is not None and args.prior != "learned":
        raise ValueError("--prior-hidden are the layers of the conditional model's prior network: they need --model "
                         "conditional --prior learned")
    _hierarchical_options(args)
    if args.model not in OWN_LOSS:
        return
    others = [("--estimator", args.estimator is not None), ("--rebar-eta", args.rebar_eta is not None),
              ("--baseline-hidden", args.baseline_hidden > 0), ("--objective iwae", args.objective != "elbo"),
              ("--samples", args.samples != 1), ("--beta", args.beta != 1.0), ("--warmup-epochs", args.warmup_epochs > 0),
              ("--free-bits", args.free_bits > 0), ("--tc-beta", args.tc_beta is not None),
              ("--library observed", args.library != "none"),
              ("--gate decoder", args.gate != "feature")]
    if args.model in ("semisupervised", "conditional"):
        others += [("--n-latent", args.n_latent is not None), ("--n-categories", args.n_categories is not None),
                   (f"--prior {args.prior}", args.prior not in ("standard", "learned")),
                   ("--prior-components", args.prior_components is not None), (f"--flow {args.flow}", args.flow != "none"),
                   ("--flow-length", args.flow_length is not None), ("--arch conv", args.arch != "mlp"),
                   ("--channels", args.channels is not None)]
    given = [flag for flag, on in others if on]
    if given:
        raise ValueError(f"{given[0]} is not for the {args.model} model: {OWN_LOSS[args.model]}")
    for name, default in VQ_OPTIONS.values():
        if getattr(args, name) is None:
            setattr(args, name, default)


# what the hierarchical model trains by, and so why it takes none of the other models' options of their latents
HIERARCHICAL = ("its two Gaussian layers z1, z2 (sizes --z-dims Z1,Z2, networks --hidden and --hidden2) train pathwise "
                "by the ELBO or the IWAE bound (--objective, --samples) under the prior p(z1|z2) N(z2; 0, I), by MLPs")


def _hierarchical_options(args):
    """Refuse --z-dims and --hidden2 with another model, and with the hierarchical model the options of the others'
    latents, estimators, priors, flows, convolutions and count options (the CLI's --z-dim when not its default 20)."""
    if args.model != "hierarchical":
        given = [flag for flag, value in (("--z-dims", args.z_dims), ("--hidden2", args.hidden2)) if value is not None]
        if given:
            raise ValueError(f"{given[0]} is the hierarchical model's (its two stochastic layers): pass --model hierarchical")
        return
    others = [("--z-dim", args.z_dim != 20), ("--estimator", args.estimator is not None),
              ("--rebar-eta", args.rebar_eta is not None), ("--baseline-hidden", args.baseline_hidden > 0),
              ("--free-bits", args.free_bits != 0), ("--tc-beta", args.tc_beta is not None),
              ("--library observed", args.library != "none"), ("--gate decoder", args.gate != "feature"),
              ("--n-latent", args.n_latent is not None), ("--n-categories", args.n_categories is not None),
              (f"--prior {args.prior}", args.prior != "standard"), ("--prior-components", args.prior_components is not None),
              (f"--flow {args.flow}", args.flow != "none"), ("--flow-length", args.flow_length is not None),
              ("--arch conv", args.arch != "mlp"), ("--channels", args.channels is not None)]
    given = [flag for flag, on in others if on]
    if given:
        raise ValueError(f"{given[0]} is not for the hierarchical model: {HIERARCHICAL}")


# --estimator's default for the discrete latents, by --objective: the IWAE bound needs exact samples (VIMCO)
DEFAULT_ESTIMATOR = {"elbo": "gumbel_softmax", "iwae": "reinforce"}


def _train(args):
    from minivae.models import GAUSSIAN_ESTIMATORS, VQVAE, BernoulliVAE, CategoricalVAE, GaussianVAE, HierarchicalVAE
    from minivae.random import Generator
    from minivae.training import train
    _model_options(args)
    if args.tc_estimator is not None and args.tc_beta is None:
        raise ValueError(f"--tc-estimator {args.tc_estimator} estimates the q(z) of --tc-beta's total correlation: pass "
                         "--tc-beta")
    if args.tf32 and args.device != "cuda":
        raise ValueError("--tf32 needs --device cuda: NumPy's products have no TF32")
    if args.model in ("semisupervised", "conditional"):
        return _train_labelled(args)
    if args.model == "gaussian" and args.estimator not in (None, *GAUSSIAN_ESTIMATORS):
        raise ValueError(f"the gaussian model trains with the pathwise, stl or dreg estimator, not {args.estimator!r}")
    if args.model != "gaussian" and args.estimator in GAUSSIAN_ESTIMATORS:
        raise ValueError(f"a {args.model} latent has no {args.estimator} gradient (it differentiates a reparameterized "
                         "z): use gumbel_softmax, straight_through, reinforce or rebar")
    if args.rebar_eta is not None and args.estimator != "rebar":
        raise ValueError("--rebar-eta is the rebar estimator's control-variate weight η: pass --estimator rebar")
    if args.baseline_hidden and args.estimator != "reinforce":
        raise ValueError("--baseline-hidden is the input-dependent baseline of the reinforce estimator (categorical or "
                         "bernoulli model)")
    if args.objective == "iwae":
        if args.samples < 2:
            raise ValueError(f"--objective iwae needs --samples K >= 2, got {args.samples} (with one sample the bound is "
                             "the ELBO: use --objective elbo)")
        if args.model != "gaussian" and args.estimator in ("gumbel_softmax", "straight_through", "rebar"):
            raise ValueError(f"--objective iwae weighs each sample by p(x, z)/q(z|x), and {args.estimator}'s relaxed "
                             f"sample has no {args.model} density q: use --estimator reinforce (VIMCO)")
        if args.baseline_hidden:
            raise ValueError("--baseline-hidden is not for --objective iwae: VIMCO baselines each sample by the bound of "
                             "the other samples")
    if args.model == "gaussian" and args.n_latent is not None:
        raise ValueError("--n-latent is the categorical, bernoulli and vq models' number of latent variables: the "
                         "gaussian model's size is --z-dim")
    if args.model != "categorical" and args.n_categories is not None:
        raise ValueError(f"--n-categories is the categorical model's: a {args.model} latent has none")
    if args.channels is not None and args.arch != "conv":
        raise ValueError("--channels are the convolutions' channels: they need --arch conv")
    if args.arch == "conv" and args.activation == "gated":
        raise ValueError("--activation gated makes gated linear units of the MLP's layers: --arch conv takes one of "
                         + ", ".join(a for a in ACTIVATIONS if a != "gated"))
    if args.prior != "standard" and args.model != "gaussian":
        raise ValueError(f"--prior {args.prior} is the gaussian model's learned prior: the {args.model} model's prior is "
                         "fixed (uniform)")
    if args.prior_components is not None and args.prior == "standard":
        raise ValueError("--prior-components are the mixture's components: they need --prior mog or vamp (and --model "
                         "gaussian)")
    if args.tc_beta is not None and args.model != "gaussian":
        raise ValueError(f"--tc-beta weighs the total correlation of the gaussian model's z (the β-TCVAE), not of the "
                         f"{args.model} model's latents")
    if args.free_bits < 0:
        raise ValueError(f"--free-bits is λ, the nats a latent dimension's KL is clamped below at: a number >= 0 (0: "
                         f"none), not {args.free_bits:g}")
    _check_likelihood(args, args.likelihood)
    if args.flow != "none" and args.model != "gaussian":
        raise ValueError(f"--flow {args.flow} is a normalizing-flow posterior of the gaussian model's z: the {args.model} "
                         "model's latents are discrete")
    if args.flow_length is not None and args.flow == "none":
        raise ValueError("--flow-length is the number of flows: it needs --flow planar, radial or iaf")
    _check_device(args)
    # before anything is written: a bad data file leaves no trace. The test split is checked too (one
    # image size across all splits), although training never reads it: eval would refuse it afterwards
    data = _load_data(args, ("train", "valid", "test"), batch_size=args.batch_size)
    x_dim = data["train"].shape[1]
    if args.tc_estimator == "mss" and len(data["train"]) % args.batch_size == 1:
        raise ValueError(f"--tc-estimator mss needs batches of at least 2, and {len(data['train'])} training examples in "
                         f"batches of {args.batch_size} leave one of 1: change --batch-size or --limit")
    rng = Generator(args.seed)
    if args.model == "gaussian":
        model = GaussianVAE(x_dim, args.hidden, args.z_dim, activation=args.activation, objective=args.objective,
                            samples=args.samples, arch=args.arch, channels=args.channels, prior=args.prior,
                            prior_components=args.prior_components, likelihood=args.likelihood,
                            library=None if args.library == "none" else args.library, gate=args.gate,
                            flow=None if args.flow == "none" else args.flow, flow_length=args.flow_length,
                            free_bits=args.free_bits, estimator=args.estimator or "pathwise", tc_beta=args.tc_beta,
                            dataset_size=None if args.tc_beta is None else len(data["train"]),
                            tc_estimator=args.tc_estimator or "mws", rng=rng,
                            device=args.device)
    elif args.model == "hierarchical":  # the sizes not given: the model's defaults, Burda et al.'s
        sizes = {name: value for name, value in (("z_dims", args.z_dims), ("hidden2", args.hidden2)) if value is not None}
        model = HierarchicalVAE(x_dim, args.hidden, **sizes, likelihood=args.likelihood, activation=args.activation,
                                objective=args.objective, samples=args.samples, rng=rng, device=args.device)
    elif args.model == "vq":
        model = VQVAE(x_dim, args.hidden, N_LATENT["vq"] if args.n_latent is None else args.n_latent, args.code_dim,
                      args.n_codes, args.commitment_cost, likelihood=args.likelihood, activation=args.activation,
                      arch=args.arch, channels=args.channels, ema_decay=args.ema_decay, rng=rng, device=args.device,
                      prior_hidden=args.code_prior)
    else:  # the discrete latents' models take the same options
        n_latent = N_LATENT[args.model] if args.n_latent is None else args.n_latent
        latents = (n_latent, args.n_categories or 10) if args.model == "categorical" else (n_latent,)
        model = {"categorical": CategoricalVAE, "bernoulli": BernoulliVAE}[args.model](
            x_dim, args.hidden, *latents, estimator=args.estimator or DEFAULT_ESTIMATOR[args.objective], tau0=args.tau0,
            tau_min=args.tau_min, anneal_rate=args.anneal_rate, activation=args.activation,
            baseline_hidden=args.baseline_hidden, objective=args.objective, samples=args.samples,
            rebar_eta=1.0 if args.rebar_eta is None else args.rebar_eta, arch=args.arch, channels=args.channels,
            likelihood=args.likelihood, library=None if args.library == "none" else args.library, gate=args.gate,
            free_bits=args.free_bits, rng=rng, device=args.device)
    bound = {"elbo": "ELBO", "iwae": "IWAE bound"}[args.objective]
    objective = "" if (args.objective, args.samples) == ("elbo", 1) else f" on the {bound} of {args.samples} samples"
    if args.prior == "mog":
        objective += f", a learned prior of {model.prior_components} Gaussians"
    if args.prior == "vamp":
        objective += f", a VampPrior of {model.prior_components} pseudo-inputs"
    if args.free_bits:
        objective += f", {args.free_bits:g} free bits (nats) a latent"
    if args.tc_beta is not None:
        objective += f", a total correlation weighted by β_TC = {args.tc_beta:g}"
    if args.model == "vq":
        objective += (f", {model.n_latent} latents of {model.n_codes} codes of {model.code_dim} dimensions, commitment "
                      f"cost {model.beta:g}, the codebook by " + ("gradient" if model.ema_decay is None else
                                                                 f"moving averages (γ = {model.ema_decay:g})"))
        if args.code_prior:
            objective += f", a learned autoregressive prior over the codes ({args.code_prior} hidden units)"
    if args.model == "hierarchical":
        objective += ", two stochastic layers z1, z2 of {} and {} dimensions".format(*model.z_dims)
    if args.flow != "none":
        objective += f", a posterior of {model.flow_length} {args.flow} flows"
    if args.beta != 1.0:
        objective += f", β = {args.beta:g}"
    if args.likelihood != "bernoulli":
        objective += f", a {args.likelihood} likelihood"
    print(f"training a {args.model} VAE{objective} on {len(data['train'])} {_rows(args.likelihood)} ({args.data}) on "
          f"{args.device}; "
          f"output in {args.out}")
    train(model, data, args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
          resume=args.resume, clip=args.clip, dynamic=args.dynamic_binarization, warmup_epochs=args.warmup_epochs,
          override_settings=args.override_settings, graph=args.graph, tf32=args.tf32, beta=args.beta)


def _labelled_splits(args, names, x_dim=None, batch_size=None, likelihood=None):
    """({name: (images, labels)}, {name: file}) of the splits ``names`` of --data, a folder of MNIST-style IDX files
    with their labels (semisupervised.load_labelled): the training files' last sixth held out as "valid" (as
    data.load_splits holds out an IDX set's), "test" the t10k files; --limit as _load_data's (the first N to train, N
    drawn with --seed to evaluate: Splits.limit, here of the rows' indices); checked as the other models' data are,
    before anything is written."""
    import numpy

    from minivae.data import Splits
    from minivae.semisupervised import load_labelled
    if not os.path.isdir(args.data):
        raise ValueError("the semisupervised and conditional models read labelled images: --data is a folder of MNIST-style IDX files "
                         "with their labels (train-/t10k-images-idx3-ubyte and -labels-idx1-ubyte, e.g. Fashion-MNIST), "
                         + ("and the embedded digits carry none" if args.data == "default" else f"not {args.data}"))
    found = load_labelled(args.data)
    (x, y), cut = found["train"], len(found["train"][0]) - max(1, len(found["train"][0]) // 6)
    splits = {"train": (x[:cut], y[:cut]), "valid": (x[cut:], y[cut:]), "test": found["test"]}
    rows = Splits({name: numpy.arange(len(splits[name][0]))[:, None] for name in names},
                  {"train": f"{args.data} (training files)", "valid": f"{args.data} (training files' held-out end)",
                   "test": f"{args.data} (t10k files)"})
    if args.limit:
        rows = rows.limit(args.limit, seed=None if args.command == "train" else args.seed)
    splits = {name: (splits[name][0][rows[name][:, 0]], splits[name][1][rows[name][:, 0]]) for name in names}
    _check_data(args, {k: x for k, (x, _) in splits.items()}, rows.files, x_dim, batch_size, likelihood or args.likelihood)
    return splits, rows.files


def _train_labelled(args):
    from minivae import conditional, semisupervised
    from minivae.random import Generator
    if args.likelihood in COUNT_LIKELIHOODS:
        raise ValueError(f"the {args.model} model reads labelled images: the {args.likelihood} likelihood models counts")
    _check_likelihood(args, args.likelihood)
    _check_device(args)
    splits, files = _labelled_splits(args, ("train", "valid", "test"), batch_size=args.batch_size)
    (x, y), classes = splits["train"], int(max(labels.max() for _, labels in splits.values())) + 1
    resumed = dict(resume=args.resume, override_settings=args.override_settings, graph=args.graph, tf32=args.tf32)
    # the labelled images are drawn from --seed's stream, before the model's weights: a resumed run draws the same
    # (its --seed and --labels compared with the checkpoint's, and their fingerprint), its weights then loaded
    rng = Generator(args.seed)
    if args.model == "conditional":  # Sohn et al.'s CVAE: every training image with its label
        model = conditional.ConditionalVAE(x.shape[1], classes, args.hidden, args.z_dim, likelihood=args.likelihood,
                                           activation=args.activation, prior=args.prior, prior_hidden=args.prior_hidden,
                                           rng=rng, device=args.device)
        learned = ", a learned prior p(z|y)" if args.prior == "learned" else ""
        print(f"training a conditional VAE ({classes} classes, z of {args.z_dim} dimensions{learned}) on {len(x)} "
              f"labelled images ({files['train']}) on {args.device}; output in {args.out}")
        return conditional.train(model, {"train": (x, y), "valid": splits["valid"]}, args.out, epochs=args.epochs,
                                 batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 dynamic=args.dynamic_binarization, clip=args.clip, **resumed)
    labelled = semisupervised.balanced_labels(y, LABELS if args.labels is None else args.labels, rng)
    model = semisupervised.SemiSupervisedVAE(x.shape[1], classes, args.hidden, args.z_dim, n_data=len(x),
                                             n_labelled=len(labelled), likelihood=args.likelihood,
                                             activation=args.activation, rng=rng, device=args.device)
    print(f"training a semisupervised VAE (M2: {classes} classes, z of {args.z_dim} dimensions, α = {model.alpha:g} a "
          f"labelled image) on {len(labelled)} labelled and {len(x)} unlabelled images ({files['train']}) on "
          f"{args.device}; output in {args.out}")
    semisupervised.train(model, (x[labelled], y[labelled]), x, args.out, epochs=args.epochs, batch_size=args.batch_size,
                         lr=args.lr, seed=args.seed, valid=splits["valid"], dynamic=args.dynamic_binarization,
                         clip=args.clip, **resumed)


def _eval_labelled(args, model):
    """M2's bounds on log p(x) (U, the classes summed out) and log p(x, y) (L, with the labels) and its classifier's
    accuracy, or the conditional VAE's ELBO and importance-sampled log p(x|y) (and, less log C, a bound on log p(x)),
    on --split of the labelled --data."""
    from minivae import conditional, semisupervised
    from minivae.data import binarize
    from minivae.random import Generator
    from minivae.training import derived_seed
    splits, files = _labelled_splits(args, (args.split,), x_dim=model.x_dim, likelihood=model.likelihood_kind)
    x, y = splits[args.split]
    if y.max() >= model.n_classes:
        raise ValueError(f"{files[args.split]}: labels up to {int(y.max())}, and the model knows {model.n_classes} classes")
    if args.dynamic_binarization:  # one fixed binarization of the grey levels, from the seed (as the other models')
        x = binarize(x, Generator(derived_seed(args.seed, 1)))
    print(f"{args.split}: {len(x)} labelled images, {files[args.split]}"
          + (", binarized once with --seed" if args.dynamic_binarization else ""))
    if model.kind == "conditional":
        scores, c = conditional.evaluate(model, x, y, Generator(args.seed), args.batch_size, k=args.k), model.n_classes
        for what, value in (("ELBO of log p(x|y) (1 sample)", scores["elbo"]),
                            (f"log p(x|y), importance sampled k={args.k}", scores["log_likelihood"]),
                            (f"ELBO − log {c}, a bound on log p(x), p(y) = 1/{c}", scores["elbo"] - math.log(c))):
            print(f"  {what:48s} {value:9.3f} nats")
        return
    scores = semisupervised.evaluate(model, x, y, Generator(args.seed), batch_size=args.batch_size)
    print(f"  U(x), a bound on log p(x) (1 sample a class)     {scores['unlabelled_bound']:9.3f} nats")
    print(f"  L(x, y), a bound on log p(x, y) (1 sample)        {scores['labelled_bound']:9.3f} nats")
    print(f"  classification accuracy of q(y|x)                 {100 * scores['accuracy']:9.2f}% (error "
          f"{100 * (1 - scores['accuracy']):.2f}%)")


def _eval(args):
    import time

    from minivae import objectives, ops
    from minivae.data import batches, binarize
    from minivae.engine import as_tensor, no_grad
    from minivae.random import Generator
    from minivae.training import Progress, derived_seed, load_checkpoint
    _check_device(args)
    model, _ = load_checkpoint(args.checkpoint, device=args.device)
    likelihood = model.likelihood_kind
    _check_likelihood(args, likelihood)
    if args.diagnostics and model.kind not in ("gaussian", "categorical", "bernoulli"):
        raise ValueError(f"--diagnostics measures the gaussian, categorical and bernoulli models' latent codes, not the "
                         f"{model.kind} model's")
    if args.ais and (model.kind != "gaussian" or getattr(model, "flow", None) is not None):
        raise ValueError("--ais anneals from q(z|x) by Hamiltonian Monte Carlo on a continuous z: the gaussian model's, "
                         f"without a flow (this checkpoint is a {model.kind} model's"
                         + (" with a flow)" if model.kind == "gaussian" else ")"))
    if args.diagnostics and getattr(model, "flow", None) is not None:
        raise ValueError("--diagnostics needs a posterior of independent latent units, and this model's q(z|x) is a "
                         "flow's")
    if model.kind in ("semisupervised", "conditional"):
        return _eval_labelled(args, model)
    data = _load_data(args, (args.split,), x_dim=model.config["x_dim"], likelihood=likelihood)
    x = data[args.split]
    rng = Generator(args.seed)
    if args.dynamic_binarization:  # one fixed binarization of the grey levels, from the seed
        x = binarize(x, Generator(derived_seed(args.seed, 1)))
    source = (f"{args.split}: {len(x)} {_rows(likelihood)}, {data.files[args.split]}"
              + (", binarized once with --seed" if args.dynamic_binarization else ""))
    if model.kind == "vq":
        return _eval_vq(args, model, x, source)
    elbo, ll = [], []
    progress, started, steps = Progress(lines=10), time.perf_counter(), -(-len(x) // args.batch_size)
    with no_grad():
        for i, xb in enumerate(batches(x, args.batch_size), 1):
            xb = as_tensor(xb, device=args.device)
            elbo.append(objectives.elbo(model, xb, rng))
            ll.append(objectives.log_likelihood_is(model, xb, rng, k=args.k))
            progress.show(f"eval  batch {i}/{steps}  ({min(i * args.batch_size, len(x))} of {len(x)} {_rows(likelihood)})", i,
                      steps, started)
        # one copy of each result to the host, at the end
        elbo, ll = ops.concatenate(elbo).numpy(), ops.concatenate(ll).numpy()
    print(source)
    print(f"  ELBO (1 sample)                     {elbo.mean():9.3f} nats")
    print(f"  log p(x), importance sampled k={args.k:<5d} {ll.mean():9.3f} nats")
    if likelihood == "discretized_logistic":  # a probability of the 8-bit image: −log₂ p(x) per pixel
        dims = x.shape[1] * math.log(2)
        print(f"  bits/dim, from the ELBO (a bound)   {-elbo.mean() / dims:9.4f}")
        print(f"  bits/dim, importance sampled        {-ll.mean() / dims:9.4f}")
    if args.ais:
        _print_ais(args, model, x)
    if args.diagnostics:
        _print_diagnostics(args, model, x)


def _print_ais(args, model, x):
    """The AIS estimate of log p(x) (minivae.ais), a batch at a time, its own generator from --seed."""
    from minivae import ops
    from minivae.ais import log_likelihood_ais
    from minivae.data import batches
    from minivae.engine import as_tensor
    from minivae.random import Generator
    from minivae.training import derived_seed
    rng = Generator(derived_seed(args.seed, 3))
    ll = ops.concatenate([log_likelihood_ais(model, as_tensor(xb, device=args.device), rng, steps=args.ais,
                                             chains=args.ais_chains) for xb in batches(x, args.batch_size)]).numpy()
    label = f"log p(x), AIS T={args.ais} C={args.ais_chains}"
    print(f"  {label:<37s}{ll.mean():9.3f} nats")


def _print_diagnostics(args, model, x):
    """How much of its code the model uses (minivae.diagnostics): the average KL split into the code's information
    I_q(x; z), its total correlation and its units' marginal KLs; the KL per latent unit, largest first; the active
    units."""
    from minivae import diagnostics
    from minivae.random import Generator
    from minivae.training import derived_seed
    count, activity = diagnostics.active_units(model, x, batch_size=args.batch_size)
    parts = diagnostics.kl_decomposition(model, x, Generator(derived_seed(args.seed, 2)), batch_size=args.batch_size)
    print(f"  I_q(x; z), the code's information   {parts['mutual_information']:9.3f} nats (at most log N = "
          f"{math.log(len(x)):.3f})")
    print(f"  total correlation of q(z)           {parts['total_correlation']:9.3f} nats")
    if parts["dimension_wise_kl"] is None:  # a mixture prior: the KL does not split over the latents
        print(f"  KL per latent unit: not split under the {model.prior_kind} prior")
    else:
        kl = diagnostics.kl_per_latent(model, x, batch_size=args.batch_size)
        print(f"  Σ_u KL(q(z_u) ‖ p(z_u)), marginals  {parts['dimension_wise_kl']:9.3f} nats")
        print(f"  KL(q(z|x) ‖ p(z)), averaged         {kl.sum():9.3f} nats (the three above estimate it)")
        order = (-kl).argsort(kind="stable")
        print("  KL per latent unit, largest first: " + ", ".join(f"{u}: {kl[u]:.3f}" for u in order))
    print(f"  active units, Var_x E_q[z_u|x] > {diagnostics.ACTIVE}: {count} of {activity.size}")


def _eval_vq(args, model, x, source):
    """A VQ-VAE's ELBO log p(x|z_q) − L log K (exact: q is one-hot on the codes, so importance sampling from it would
    give the ELBO again), its reconstruction term −log p(x|z_q) and the codebook's perplexity over the split; with a
    learned prior over the codes, also the codes' −log p(k) (the KL) and the ELBO log p(x|z_q) + log p(k)."""
    from minivae import ops
    from minivae.data import batches
    from minivae.engine import as_tensor
    kl = model.n_latent * math.log(model.n_codes)
    terms = [model.elbo_terms(as_tensor(xb, device=args.device)) for xb in batches(x, args.batch_size)]
    log_lik, log_prior = (ops.concatenate(list(t)).numpy().mean() for t in zip(*terms))
    print(source)
    print(f"  −log p(x|z_q), the reconstruction   {-log_lik:9.3f} nats")
    print(f"  ELBO, log p(x|z_q) − L log K        {log_lik - kl:9.3f} nats (KL = {model.n_latent}·log {model.n_codes} = "
          f"{kl:.3f}; q is one-hot, so importance sampling gives the ELBO again)")
    if model.code_prior is not None:
        print(f"  codes' −log p(k), the learned prior {-log_prior:9.3f} nats (the KL of q to it; uniform: {kl:.3f})")
        print(f"  ELBO, log p(x|z_q) + log p(k)       {log_lik + log_prior:9.3f} nats (the learned prior)")
    print(f"  codebook perplexity                 {model.perplexity(as_tensor(x, device=args.device)):9.3f} of "
          f"{model.n_codes} codes")
    if model.likelihood_kind == "discretized_logistic":
        print(f"  bits/dim, from the ELBO (a bound)   {-(log_lik + log_prior) / (x.shape[1] * math.log(2)):9.4f}")


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_png_out(args):
    """Refuse --out before anything is computed unless it is a new file or a PNG to replace."""
    if _same_file(args.out, args.checkpoint):
        raise ValueError(f"--out {args.out} is the checkpoint itself: choose another file for the images")
    try:
        mode = os.lstat(args.out).st_mode
    except FileNotFoundError:
        return
    # write_png renames a new file into place, which replaces whatever the name is: a FIFO, a device,
    # a symbolic link (the link itself, not its target). Only a regular file is ever replaced; a link,
    # even to a PNG, is refused rather than silently turned into a plain file
    if stat.S_ISLNK(mode):
        raise ValueError(f"--out {args.out} is a symbolic link: give the file itself (nothing was written)")
    if not stat.S_ISREG(mode):
        raise ValueError(f"--out {args.out} exists and is not a regular file: choose another file (nothing was written)")
    with open(args.out, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            raise ValueError(f"--out {args.out} exists and is not a PNG: choose another file (nothing was written)")


def _no_counts(args, model):
    """Refuse (before any data is read or anything drawn) the model of a picture command's checkpoint when it models
    counts: rows of counts are no images."""
    if model.likelihood_kind in COUNT_LIKELIHOODS:
        raise ValueError(f"{args.checkpoint} holds a model of counts (the {model.likelihood_kind} likelihood): minivae "
                         f"{args.command} draws images, and rows of counts are none; use minivae eval for its ELBO and "
                         "log p(x)")


def _sample(args):
    import numpy

    from minivae.png import image_grid, write_png
    from minivae.random import Generator
    from minivae.training import load_checkpoint
    _check_device(args)
    _check_png_out(args)
    model, _ = load_checkpoint(args.checkpoint, device=args.device)
    _no_counts(args, model)
    classes, columns = args.label, 8
    if classes is not None and not hasattr(model, "n_classes"):
        raise ValueError(f"--label is the class of a conditional or semisupervised model's images: {args.checkpoint} holds "
                         f"a {model.kind} model, which has no classes")
    if classes is not None and max(classes) >= model.n_classes:
        raise ValueError(f"--label {max(classes)}: the model knows classes 0 to {model.n_classes - 1}")
    if model.kind == "conditional" and classes is None:
        classes = range(model.n_classes)
    if classes is not None:  # the classes in turn, a column each (8 columns of one class)
        columns = len(classes) if len(classes) > 1 else 8
        images = model.sample(args.n, Generator(args.seed), y=numpy.resize(classes, args.n)).numpy()
    else:
        images = model.sample(args.n, Generator(args.seed)).numpy()
    write_png(args.out, image_grid(images, columns=columns))
    named = "" if classes is None else f" of class {classes[0]}" if len(classes) == 1 else \
        f" of classes {', '.join(map(str, classes))} in turn"
    print(f"wrote {args.n} samples{named} to {args.out}")


def _images_of(args, model, n):
    """``n`` images of --split drawn with --seed (data.sample_rows: the first need not be typical), checked against the
    model's width, on --device; grey levels are shown as they are (nothing here is a likelihood)."""
    from minivae.data import check_splits, load_splits, sample_rows
    from minivae.engine import as_tensor
    _no_counts(args, model)
    if model.kind == "conditional":
        raise ValueError(f"{args.checkpoint} holds a conditional model, whose q(z|x, y) needs each image's label: "
                         f"minivae {args.command} reads images alone (use ConditionalVAE.reconstruct(x, y))")
    data = load_splits(args.data)
    check_splits({args.split: data[args.split]}, data.files, x_dim=model.config["x_dim"])
    x = sample_rows(data[args.split], n, args.seed)
    return as_tensor(x, device=args.device), f"{args.split} images of {data.files[args.split]}"


def _reconstruct(args):
    from minivae.models import reconstruct
    from minivae.png import image_grid, paired_rows, write_png
    from minivae.training import load_checkpoint
    _check_device(args)
    _check_png_out(args)
    model, _ = load_checkpoint(args.checkpoint, device=args.device)
    x, source = _images_of(args, model, args.n)
    shown = x.numpy()
    # M2's through the class q(y|x) finds most probable (its q(z|x, y) needs one)
    recon = model.reconstruct(x) if model.kind == "semisupervised" else reconstruct(model, x)
    write_png(args.out, image_grid(paired_rows(shown, recon.numpy()), columns=min(8, len(shown))))
    through = " (through the class q(y|x) finds most probable)" if model.kind == "semisupervised" else ""
    print(f"wrote {len(x)} {source} (odd rows) and their reconstructions{through} (even rows) to {args.out}")


def _gaussian_checkpoint(args, what):
    from minivae.training import load_checkpoint
    model, _ = load_checkpoint(args.checkpoint, device=args.device)
    _no_counts(args, model)
    if model.kind != "gaussian":
        raise ValueError(f"{args.checkpoint} holds a {model.kind} model: {what} moves z continuously, which needs "
                         "continuous latents (--model gaussian); try minivae reconstruct")
    return model


def _interpolate(args):
    import numpy

    from minivae.models import interpolate
    from minivae.png import image_grid, write_png
    _check_device(args)
    _check_png_out(args)
    model = _gaussian_checkpoint(args, "an interpolation")
    x, source = _images_of(args, model, 2 * args.pairs)
    if len(x) < 2:
        raise ValueError(f"{len(x)} {source}: interpolation needs two images")
    pairs = len(x) // 2
    path = interpolate(model, x[:pairs], x[pairs:2 * pairs], args.steps).numpy()  # (pairs, steps, x_dim)
    shown = x.numpy()
    rows = [numpy.concatenate([shown[i:i + 1], path[i], shown[pairs + i:pairs + i + 1]]) for i in range(pairs)]
    write_png(args.out, image_grid(numpy.concatenate(rows), columns=args.steps + 2))
    print(f"wrote {pairs} interpolations of {args.steps} steps between {len(x)} {source} (each row: an image, the decoded path "
          f"between the two codes, the other image) to {args.out}")


def _traverse(args):
    from minivae.models import traverse
    from minivae.png import image_grid, write_png
    _check_device(args)
    _check_png_out(args)
    model = _gaussian_checkpoint(args, "a traversal")
    x, source = _images_of(args, model, 1)
    values = [args.span * (2 * k / (args.steps - 1) - 1) for k in range(args.steps)]  # −span … span
    rows = traverse(model, x[0], values).numpy()  # (Z, steps, x_dim)
    write_png(args.out, image_grid(rows.reshape(-1, rows.shape[-1]), columns=args.steps))
    print(f"wrote the traversal of one of the {source}: a row for each of the {model.z_dim} latent "
          f"coordinates, set to {args.steps} values from {-args.span:g} to {args.span:g}, the others at the image's "
          f"code, to {args.out}")


def _manifold(args):
    from minivae.models import latent_grid
    from minivae.png import image_grid, write_png
    _check_device(args)
    _check_png_out(args)
    model = _gaussian_checkpoint(args, "the manifold")
    dims = tuple(args.dims)
    if len(dims) != 2 or dims[0] == dims[1] or max(dims) >= model.z_dim:
        raise ValueError(f"--dims takes two different latent coordinates below the model's z_dim = {model.z_dim}, "
                         f"got {','.join(map(str, dims))}")
    grid = latent_grid(model, args.n, dims).numpy()
    write_png(args.out, image_grid(grid.reshape(-1, grid.shape[-1]), columns=args.n))
    print(f"wrote the decoded {args.n}×{args.n} grid of z_{dims[0]} (rows) and z_{dims[1]} (columns) at the standard "
          f"normal's quantiles (k + ½)/{args.n}, the other coordinates 0, to {args.out}")


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

    def command(name, help):
        return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                              formatter_class=_Help)

    def device_arg(p):
        p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                       help="where to compute: cpu (NumPy) or cuda (an NVIDIA GPU through CuPy)")

    def data_args(p, limit):
        p.add_argument("--data", default="default",
                       help="'default' (embedded digits), a folder of .amat/IDX files, or one file (also a NumPy "
                            ".npy/.npz matrix, rows the samples: counts for the count likelihoods)")
        p.add_argument("--limit", type=_positive_int, help=limit)
        p.add_argument("--grey-targets", action="store_true",
                       help="accept grey-level data as it is: the Bernoulli likelihood takes grey levels as soft targets "
                            "(then the ELBO is not a bound on a likelihood of the data)")

    t = command("train", "train a VAE")
    t.add_argument("--model", choices=["gaussian", "categorical", "bernoulli", "vq", "semisupervised", "conditional",
                                       "hierarchical"],
                   default="categorical",
                   help="latent variables: gaussian, categorical (one-hot), bernoulli (binary, each Bernoulli(½) "
                        "a priori), vq (a VQ-VAE: --n-latent vectors snapped to the nearest of --n-codes code "
                        "vectors, van den Oord et al. 2017), or semisupervised (Kingma et al.'s M2: a class y, "
                        "observed for --labels images of --data's labelled IDX files and summed out for the others, "
                        "and a Gaussian z of --z-dim), or conditional (Sohn et al.'s CVAE: p(x|z, y) and q(z|x, y) of "
                        "the class y of every image of --data's labelled IDX files, a Gaussian z of --z-dim), or hierarchical "
                        "(Burda et al.'s two Gaussian layers: q(z1|x) q(z2|z1), p(z2) p(z1|z2) p(x|z1), sizes --z-dims, "
                        "networks --hidden and --hidden2)")
    data_args(t, "use only the first N images of each split")
    t.add_argument("--likelihood", choices=LIKELIHOODS, default="bernoulli",
                   help="p(x|z): bernoulli (binary pixels), gaussian (one learned scale), continuous_bernoulli (a density "
                        "of grey levels in [0, 1]), or discretized_logistic (8-bit grey levels k/255, a learned scale a "
                        "pixel; eval adds bits/dim); all these but bernoulli take grey levels as they are; for count "
                        "data (a .npy/.npz matrix of whole numbers >= 0, rows the samples, any width): poisson (a rate "
                        "exp(decoder output) a feature), negative_binomial (mean exp(decoder output), a learned inverse "
                        "dispersion a feature, as scVI's) or zero_inflated_negative_binomial (that and a learned dropout "
                        "probability a feature: scVI's ZINB); the encoder then reads log(1 + x)")
    t.add_argument("--library", choices=["none", "observed"], default="none",
                   help="a count likelihood's mean: none (exp(decoder output)) or observed (the row's total count times "
                        "the softmax of the decoder output over the features: scVI's use_observed_lib_size)")
    t.add_argument("--gate", choices=["feature", "decoder"], default="feature",
                   help="zero_inflated_negative_binomial's dropout: feature (one learned logit a feature) or decoder (a "
                        "second decoder head, a logit a sample and feature: scVI's)")
    t.add_argument("--epochs", type=_positive_int, default=10, help="train until this epoch (counted from the start of the run)")
    t.add_argument("--batch-size", type=_positive_int, default=100, help="images per step")
    t.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam's learning rate")
    t.add_argument("--seed", type=_seed, default=0, help="seed of all the run's randomness")
    t.add_argument("--hidden", type=_sizes, default="512,256", help="hidden sizes, comma-separated")
    t.add_argument("--activation", choices=ACTIVATIONS, default="relu",
                   help="hidden layers: an activation after each, or gated linear units")
    t.add_argument("--arch", choices=["mlp", "conv"], default="mlp",
                   help="encoder and decoder: fully connected layers of --hidden sizes, or (conv, for square images "
                        "whose side is a multiple of 4, e.g. 28×28) 4×4 convolutions of stride 2 with --channels "
                        "(transposed ones in the decoder) and then the --hidden layers")
    t.add_argument("--channels", type=_sizes, metavar="C1,C2",
                   help="--arch conv: the convolutions' channels, comma-separated, one halving of the image side each "
                        "(default: 32,64)")
    t.add_argument("--warmup-epochs", type=_non_negative_int, default=0, metavar="W",
                   help="KL weight rises linearly from 0 (the first epoch) to --beta over W epochs: B·min(1, (epoch − 1)/W)")
    t.add_argument("--beta", type=_positive_float, default=1.0, metavar="B",
                   help="the KL's weight B (β-VAE; 1: the ELBO); the validation ELBO is always the full bound")
    t.add_argument("--z-dim", type=_positive_int, default=20, help="gaussian: latent dimensions")
    t.add_argument("--z-dims", type=_sizes, metavar="Z1,Z2",
                   help="hierarchical: the two stochastic layers' dimensions, z1 next to x (default 100,50, Burda et al.'s)")
    t.add_argument("--hidden2", type=_sizes, metavar="H,…",
                   help="hierarchical: hidden sizes of q(z2|z1) (p(z1|z2) reversed), comma-separated (default 50,50)")
    t.add_argument("--prior", choices=["standard", "mog", "vamp", "learned"], default="standard",
                   help="gaussian: p(z) is N(0, I), or (mog) a learned mixture of --prior-components diagonal Gaussians, "
                        "or (vamp) the VampPrior, the mixture of the posteriors q(z|u_k) of --prior-components learned "
                        "pseudo-inputs; the KL then sampled. conditional: N(0, I), or (learned) Sohn et al.'s prior "
                        "network p(z|y) = N(μ_p(y), σ_p²(y)), the KL to it in closed form")
    t.add_argument("--prior-hidden", type=_sizes, metavar="H1,H2",
                   help="conditional --prior learned: the prior network's hidden sizes (default none: one linear layer "
                        "of the one-hot label, a free mean and variance a class)")
    t.add_argument("--prior-components", type=_positive_int, metavar="K",
                   help="--prior mog or vamp: the mixture's components (default 10)")
    t.add_argument("--free-bits", type=_finite_float, default=0.0, metavar="λ",
                   help="train by the ELBO with each latent dimension's KL (a categorical variable's), averaged over the "
                        "batch, clamped below at λ nats (free bits, Kingma et al. 2016; gaussian: the standard prior); "
                        "the validation ELBO is always the true bound")
    t.add_argument("--tc-beta", type=_finite_float, metavar="B",
                   help="gaussian: the β-TCVAE (Chen et al. 2018): the KL split into the code's information, its total "
                        "correlation and its dimensions' marginal KLs, the second weighted by B (1: the ELBO), q(z) "
                        "estimated from each batch; the validation ELBO is always the true bound")
    t.add_argument("--tc-estimator", choices=["mws", "mss"],
                   help="--tc-beta: q(z)'s estimate from the batch, minibatch weighted (mws, the default) or stratified "
                        "(mss) sampling (Chen et al. 2018, App. C)")
    t.add_argument("--flow", choices=["none", "planar", "radial", "iaf"], default="none",
                   help="gaussian: q(z|x) pushed through --flow-length normalizing flows (planar, radial: amortized by "
                        "the encoder; iaf: inverse autoregressive flow), the KL then sampled")
    t.add_argument("--flow-length", type=_non_negative_int, metavar="K",
                   help="--flow: the number of flows (default 4)")
    t.add_argument("--n-latent", type=_positive_int,
                   help=f"categorical and bernoulli: latent variables (default {N_LATENT['categorical']} of "
                        f"--n-categories each; bernoulli {N_LATENT['bernoulli']} binary ones)")
    t.add_argument("--n-categories", type=_positive_int, help="categorical: categories each (default 10)")
    t.add_argument("--code-dim", type=_positive_int, metavar="D",
                   help=f"vq: dimensions of each latent vector and code (default {VQ_OPTIONS['--code-dim'][1]})")
    t.add_argument("--n-codes", type=_positive_int, metavar="K",
                   help=f"vq: code vectors in the codebook (default {VQ_OPTIONS['--n-codes'][1]})")
    t.add_argument("--commitment-cost", type=_non_negative_float, metavar="β",
                   help="vq: the commitment term's weight β in −log p(x|z_q) + ‖sg(z_e) − z_q‖² + β‖z_e − sg(z_q)‖² "
                        f"(default {VQ_OPTIONS['--commitment-cost'][1]}, the paper's)")
    t.add_argument("--labels", type=_positive_int, metavar="N",
                   help=f"semisupervised: labelled training images, as many of each class, drawn with --seed (default "
                        f"{LABELS}); every training image is also one of the unlabelled")
    t.add_argument("--ema-decay", type=_decay, metavar="γ",
                   help="vq: learn the codebook by exponential moving averages of decay γ in [0, 1) (the paper's "
                        "appendix A.1, e.g. 0.99; the codebook term then leaves the loss) instead of by gradient")
    t.add_argument("--code-prior", type=_positive_int, metavar="H",
                   help="vq: learn an autoregressive prior p(k) = Π_l p(k_l | k_<l) over the codes (a MADE of H hidden "
                        "units), fitted to each batch's codes by maximum likelihood alongside the VQ-VAE (no gradient "
                        "reaches the VQ-VAE); sample then draws from it and eval's ELBO is log p(x|z_q) + log p(k)")
    t.add_argument("--estimator", choices=["pathwise", "stl", "dreg", "gumbel_softmax", "straight_through", "reinforce",
                                           "rebar"],
                   help="gradient estimator (default: pathwise for gaussian, gumbel_softmax for categorical and "
                        "bernoulli; with --objective iwae, reinforce: VIMCO; rebar: REBAR, unbiased, the relaxation at "
                        "the temperature below as its control variate; gaussian only: stl, sticking the landing, q's "
                        "parameters held fixed in a sampled log q; dreg, with --objective iwae, the doubly "
                        "reparameterized gradient)")
    t.add_argument("--rebar-eta", type=_eta, metavar="ETA",
                   help="rebar: the control variate's weight η (default 1; 0 is REINFORCE without a baseline), or auto: "
                        "learned from 1 by the gradient of the encoder gradient's variance")
    t.add_argument("--objective", choices=["elbo", "iwae"], default="elbo",
                   help="what to maximize: the ELBO (averaged over --samples draws an image), or the IWAE bound "
                        "log (1/K) Σ_k p(x, z_k)/q(z_k|x) of K = --samples draws (gaussian: pathwise; categorical and "
                        "bernoulli: VIMCO, with --estimator reinforce)")
    t.add_argument("--samples", type=_positive_int, default=1, metavar="K",
                   help="draws z ~ q(z|x) an image per step (--objective iwae: K >= 2)")
    t.add_argument("--baseline-hidden", type=_non_negative_int, default=0,
                   help="reinforce: hidden units of a learned input-dependent baseline b(x) (0: moving average only)")
    t.add_argument("--tau0", type=_positive_float, default=1.0, help="initial temperature (gumbel_softmax, straight_through, rebar)")
    t.add_argument("--tau-min", type=_positive_float, default=0.5, help="temperature floor")
    t.add_argument("--anneal-rate", type=_finite_float, default=3e-5, help="r in τ = max(τ_min, τ0·exp(−r·step))")
    t.add_argument("--graph", action="store_true",
                   help="record the first step and replay it (minivae.plan; on --device cuda, as one CUDA graph a step): "
                        "the same numbers, less time per step")
    t.add_argument("--tf32", action="store_true",
                   help="with --device cuda: float32 matrix products on TF32 tensor cores (faster; operands rounded to "
                        "a 10-bit mantissa), as minivae.set_float32_matmul_precision('high')")
    t.add_argument("--clip", type=_positive_float, help="clip gradients to this global norm (default: no clipping)")
    t.add_argument("--dynamic-binarization", action="store_true",
                   help="binarize each training batch afresh (for grey-level data such as IDX files)")
    t.add_argument("--out", default=DEFAULT_OUT, help="output folder")
    t.add_argument("--resume", action="store_true", help="continue the run in OUT from its checkpoint")
    t.add_argument("--override-settings", action="store_true",
                   help="with --resume: go on although a setting (--lr, --data, …) differs from the checkpoint's; "
                        "the change is recorded in metrics.csv")
    device_arg(t)
    t.set_defaults(run=_train)

    e = command("eval", "test ELBO and importance-sampled log-likelihood of a checkpoint")
    e.add_argument("checkpoint", help="a checkpoint.npz written by minivae train")
    data_args(e, "evaluate N images of the split, drawn at random with --seed")
    e.add_argument("--dynamic-binarization", action="store_true",
                   help="binarize grey-level images once, from --seed, before evaluating")
    e.add_argument("--split", choices=["train", "valid", "test"], default="test", help="which images")
    e.add_argument("-k", type=_positive_int, default=1000, help="importance samples")
    e.add_argument("--batch-size", type=_positive_int, default=100, help="images at a time")
    e.add_argument("--seed", type=_seed, default=0, help="seed of the samples")
    e.add_argument("--ais", type=_positive_int, metavar="T",
                   help="gaussian: also estimate log p(x) by annealed importance sampling from q(z|x) over T temperatures "
                        "(Hamiltonian Monte Carlo moves; tighter than -k's importance sampling as T grows)")
    e.add_argument("--ais-chains", type=_positive_int, default=16, metavar="C", help="--ais: chains an image")
    e.add_argument("--diagnostics", action="store_true",
                   help="also measure posterior collapse: the KL per latent unit, the active units and the code's "
                        "mutual information with the images (its cost grows as N², N the images: see --limit)")
    device_arg(e)
    e.set_defaults(run=_eval)

    def picture_command(name, help, out, run, split=False):
        """A command drawing a PNG from a checkpoint (and, with ``split``, from images of a split)."""
        p = command(name, help)
        p.add_argument("checkpoint", help="a checkpoint.npz written by minivae train")
        if split:
            p.add_argument("--data", default="default",
                           help="'default' (embedded digits), a folder of .amat/IDX files, or one file")
            p.add_argument("--split", choices=["train", "valid", "test"], default="test", help="which images")
        p.add_argument("--out", default=out, help="the PNG file to write")
        device_arg(p)
        p.set_defaults(run=run)
        return p

    s = picture_command("sample", "draw images from a checkpoint's prior", "samples.png", _sample)
    s.add_argument("--n", type=_positive_int, default=64, help="how many images")
    s.add_argument("--seed", type=_seed, default=0, help="seed of the samples")
    s.add_argument("--label", type=_sizes_from_zero, metavar="Y[,Y…]",
                   help="conditional and semisupervised models: images of these classes, in turn, a column each "
                        "(conditional default: every class)")

    r = picture_command("reconstruct", "draw images of a split and their reconstructions from a checkpoint",
                        "reconstructions.png", _reconstruct, split=True)
    r.add_argument("--n", type=_positive_int, default=32, help="how many images, drawn at random with --seed")
    r.add_argument("--seed", type=_seed, default=0, help="seed of the draw of images")

    i = picture_command("interpolate", "decode the straight line between the codes of pairs of images (gaussian "
                        "models)", "interpolations.png", _interpolate, split=True)
    i.add_argument("--pairs", type=_positive_int, default=4, help="pairs of images, drawn at random with --seed")
    i.add_argument("--steps", type=_at_least_two, default=8, help="points on each line, both ends included")
    i.add_argument("--seed", type=_seed, default=0, help="seed of the draw of images")

    v = picture_command("traverse", "decode one image's code with each latent coordinate swept in turn (gaussian "
                        "models)", "traversal.png", _traverse, split=True)
    v.add_argument("--seed", type=_seed, default=0, help="seed of the draw of the image")
    v.add_argument("--steps", type=_at_least_two, default=9, help="values of each coordinate, from -span to span")
    v.add_argument("--span", type=_positive_float, default=3.0, help="the largest |value| (prior standard deviations)")

    m = picture_command("manifold", "decode a grid of two latent coordinates at the prior's quantiles (gaussian "
                        "models)", "manifold.png", _manifold)
    m.add_argument("--n", type=_positive_int, default=15, help="points along each coordinate")
    m.add_argument("--dims", type=_sizes_from_zero, default="0,1", metavar="I,J", help="the two latent coordinates")

    x = command("estimators", "compare gradient estimators against exact gradients")
    x.add_argument("--draws", type=_positive_int, default=1000, help="independent estimates per estimator")
    x.add_argument("--seed", type=_seed, default=0, help="seed of the draws")
    x.add_argument("--plot", help="also write a PNG plot here (needs matplotlib)")
    x.set_defaults(run=_estimators)

    command("ops", "list every registered op and its formula").set_defaults(run=_ops)
    command("info", "versions, fused kernels in use, GPU").set_defaults(run=_info)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except KeyboardInterrupt:
        print(f"minivae {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError as e:
        print(f"minivae {args.command}: error: out of memory ({e or 'no details'}): try smaller --hidden, --batch-size "
              "or -k", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError, RuntimeError, NotImplementedError) as e:
        print(f"minivae {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

