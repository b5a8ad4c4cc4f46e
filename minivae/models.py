"""VAEs for binary and grey-level images, each a latent variable model p(x, z) = p(x|z) p(z) with an encoder q(z|x).

Every model offers ``posterior(x)`` → q(z|x), ``prior()`` → p(z), ``likelihood(z)`` → p(x|z),
and ``loss(x, rng)`` → the training objective (mean negative ELBO per example, in nats) whose
gradient is the model's chosen estimator. ``minivae.objectives`` evaluates any of them.

The objective is chosen at construction and recorded in the model's config (so a checkpoint reloads it):

    objective="elbo", samples=1   the single-sample ELBO (the default)
    objective="elbo", samples=K   the K-sample ELBO: (1/K) Σ_k [log p(x|z_k)] − β·KL, K draws z_k ~ q(z|x) an example
    objective="iwae", samples=K   the IWAE bound L̂_K = log (1/K) Σ_k p(x, z_k)/q(z_k|x) (Burda et al. 2016): pathwise
                                  for the Gaussian VAE; VIMCO (Mnih & Rezende 2016) for the discrete ones' reinforce
                                  estimator (the relaxed estimators' samples have no density q: refused)
    free_bits=λ (> 0, with "elbo")  the ELBO with each latent dimension's (a categorical variable's) KL, averaged over
                                  the batch, clamped below at λ nats (Kingma et al. 2016; ``objectives.free_bits_kl``):
                                  the training loss only, the bounds reported stay the true ones

The names are those of the papers and of ``minivae.objectives`` (``elbo``, ``iwae_bound``); ``samples`` is K, the
number of draws per example (objectives' ``k``, Pyro's ``num_particles``), spelled out as a config entry and a flag
(``--samples``) read by people. β (``loss(…, beta=)``, the KL warm-up) weighs log p(z) − log q(z|x) in each of the
IWAE bound's log weights, w_k = log p(x|z_k) + β·(log p(z_k) − log q(z_k|x)): at β = 1 the bound, at K = 1 the β-ELBO
with a sampled KL.

The likelihood p(x|z) is chosen at construction too (``likelihood=``, all three models; recorded in the config,
and a checkpoint without the entry is a Bernoulli model's): "bernoulli" (the default: binary pixels),
"gaussian" (one learned scale), "continuous_bernoulli" (a density of grey levels in [0, 1]),
"discretized_logistic" (the probability of 8-bit grey levels k/255, a learned scale a pixel), or for count data (a
matrix of non-negative integers, rows = samples, as single-cell or bag-of-words counts) "poisson" (a rate e^out a
feature), "negative_binomial" (a mean e^out and a learned inverse dispersion θ a feature, scVI's) or
"zero_inflated_negative_binomial" (that and a learned dropout probability a feature, scVI's ZINB), the encoder then
reading log(1 + x); see ``_likelihood_of``. Two options of the count likelihoods, recorded only when set:
``library="observed"`` (the mean ℓ·softmax(out), ℓ the row's total count: scVI's use_observed_lib_size; see
ObservedLibrary) and ``gate="decoder"`` (the ZINB's dropout logit a second decoder head, one a row and feature).

``device="cuda"`` builds the same model (the same initial weights, drawn on the host) on the GPU;
every sample the model draws is then made on the GPU, and a training step copies nothing back.
"""
import math
import numbers

import numpy

from minivae import ops
from minivae._backend import device_constant, device_of, get_array_module, module_for_device, to_numpy
from minivae.distributions import (Bernoulli, Categorical, ContinuousBernoulli, DiscretizedLogistic, Independent,
                                   MixtureSameFamily, NegativeBinomial, Normal, OneHotCategorical, Poisson,
                                   kl_divergence)
from minivae.distributions.distribution import LOG_2PI, Distribution, as_value, checked_params, logits_from
from minivae.distributions.poisson import _not_a_count, poisson_log_pmf
from minivae.distributions.transformed_distribution import TransformedDistribution
from minivae.engine import Tensor, grad, no_grad
from minivae.estimators import dreg, rebar, rebar_parts, score_function, sticking_the_landing, vimco_surrogate
from minivae.flows import FLOWS, FlowStack
from minivae.nn import ACTIVATION_MODULES, MLP, Buffer, Conv2d, ConvTranspose2d, Module, Sequential
from minivae.objectives import free_bits_kl
from minivae.plan import array_function, live
from minivae.random import resolve
from minivae.ops.softmax import check_temperature


def _negative_elbo(likelihood, x, kl, beta):
    """ops.negative_elbo of log p(x|z) under ``likelihood``; a Bernoulli one of x's shape goes through the fused op
    of its logits (the same numbers; on the GPU two launches instead of four)."""
    if isinstance(likelihood, Bernoulli) and likelihood.logits.shape == x.shape:
        return ops.bernoulli_negative_elbo(likelihood.logits, x, kl, beta)
    return ops.negative_elbo(likelihood.log_prob(x), kl, beta)


OBJECTIVES = ("elbo", "iwae")


def _objective(objective, samples):
    """(objective, K, the config entries recording them): checked, and recorded only when not the defaults ("elbo", 1),
    so that a model of the defaults has the config, compared key by key by ``--resume``, of a checkpoint written before
    the options existed (as the run's settings record --tf32 only when on)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    samples = _size("samples", samples)
    return objective, samples, ({} if (objective, samples) == ("elbo", 1) else dict(objective=objective, samples=samples))


def _copies(t, k):
    """``t`` broadcast to (k, *t.shape): the batch's k copies of the K-sample ELBO, each to get its own draw (k = 1: ``t``
    itself, so the single-sample loss is the same computation, bit for bit)."""
    return t if k == 1 else ops.broadcast_to(t, (k, *t.shape))


def _size(name, value, minimum=1):
    """A layer or latent size: an integer ≥ ``minimum`` (not a bool), returned as a Python int (the config is JSON)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _hidden(hidden, name="hidden"):
    """The hidden layers' sizes (or the convolutions' channels) as a tuple (empty: no hidden layer)."""
    if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__iter__"):
        raise TypeError(f"{name} must be a sequence of layer sizes such as (512, 256), got {hidden!r}")
    return tuple(_size(f"{name}[{i}]", h) for i, h in enumerate(hidden))


def _number(name, value, ok, rule):
    """A real hyperparameter (not a bool), finite and ``ok``, as a Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{name} must be a finite number {rule}, got {value!r}")
    return float(value)


ARCHITECTURES = ("mlp", "conv")
CHANNELS = (32, 64)  # arch="conv": two 4×4 convolutions of stride 2, 28 → 14 → 7


def _architecture(arch, channels, x_dim, activation):
    """(arch, channels, the config entries recording them): checked; recorded only for arch="conv", so that an MLP
    model has the config of a checkpoint written before the option existed."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, not {arch!r}")
    if arch == "mlp":
        if channels is not None:
            raise ValueError("channels are the convolutions' (arch='conv'); the MLP has none")
        return arch, None, {}
    channels = CHANNELS if channels is None else _hidden(channels, "channels")
    if not channels:
        raise ValueError("arch='conv' needs at least one convolution: channels such as (32, 64)")
    side, cut = math.isqrt(x_dim), 2 ** len(channels)
    if side * side != x_dim or side % cut:
        raise ValueError(f"arch='conv' reads x as square images whose side a multiple of 2^{len(channels)} = {cut} (one "
                         f"halving a convolution): x_dim = side², e.g. 784 = 28², not {x_dim}")
    if activation not in ACTIVATION_MODULES:
        raise ValueError(f"arch='conv' takes the activations {sorted(ACTIVATION_MODULES)}, not {activation!r}")
    return arch, channels, dict(arch=arch, channels=channels)


PRIORS = ("standard", "mog", "vamp")
PRIOR_COMPONENTS = 10  # prior="mog" or "vamp": K, the mixture's components, when not given
# prior="vamp": the pseudo-inputs u_k start at 0.5 + 0.1·N(0, 1) a pixel. Apart: K equal pseudo-inputs give K equal
# components, which get equal gradients and never separate (Tomczak & Welling's code draws them from a normal of small
# spread too). Around 0.5, the middle of the grey range [0, 1] of the images the encoder reads, so that q(z|u_k) start
# among the codes of real inputs, and not from the data: the model is built before it sees any (and a checkpoint
# rebuilds it from its config alone). A spread of 0.1 keeps every u_k a plausible grey image
PSEUDO_INPUT_MEAN, PSEUDO_INPUT_STD = 0.5, 0.1


def _prior(prior, components):
    """(prior, K or None, the config entries recording them): checked; recorded only for a learned prior ("mog",
    "vamp"), so that a model of the standard prior has the config of a checkpoint written before the option existed
    (as ``_architecture``)."""
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, not {prior!r}")
    if prior == "standard":
        if components is not None:
            raise ValueError("prior_components are the mixture's (prior='mog' or 'vamp'); the standard prior N(0, I) has "
                             "none")
        return prior, None, {}
    components = PRIOR_COMPONENTS if components is None else _size("prior_components", components)
    return prior, components, dict(prior=prior, prior_components=components)


def _free_bits(free_bits, objective, why_not=None):
    """(λ, the config entries recording it): λ a finite number >= 0 of nats a latent dimension (or group), recorded only
    when > 0, so that a model without free bits has the config of a checkpoint written before the option existed.
    Refused with the IWAE bound (it has no KL term to clamp) and where ``why_not`` says the KL is not one a latent."""
    free_bits = _number("free_bits", free_bits, lambda v: v >= 0, ">= 0 (nats a latent dimension; 0: none)")
    if free_bits and objective == "iwae":
        raise ValueError("free_bits clamps the ELBO's KL a latent dimension; objective='iwae' has no KL term to clamp")
    if free_bits and why_not:
        raise ValueError(f"free_bits clamps the KL of each latent dimension, and {why_not}")
    return free_bits, ({"free_bits": free_bits} if free_bits else {})


GAUSSIAN_ESTIMATORS = ("pathwise", "stl", "dreg")


def _gaussian_estimator(estimator, objective, flow_length):
    """(estimator, the config entries recording it) of the Gaussian VAE, recorded only when not "pathwise" (so that
    its config is that of a checkpoint written before the option): "stl" holds q's parameters fixed in a sampled log q
    (estimators.sticking_the_landing), "dreg" the IWAE bound's doubly reparameterized gradient (estimators.dreg)."""
    if estimator not in GAUSSIAN_ESTIMATORS:
        raise ValueError(f"estimator must be one of {GAUSSIAN_ESTIMATORS}, not {estimator!r}")
    if estimator == "dreg" and objective != "iwae":
        raise ValueError("estimator='dreg' is the IWAE bound's doubly reparameterized gradient: it needs objective='iwae' "
                         "(with one sample it is 'stl')")
    if estimator != "pathwise" and flow_length:
        raise ValueError(f"estimator={estimator!r} holds q's parameters fixed in log q, and a flow posterior's are inside "
                         "its flows: train a flow with estimator='pathwise'")
    return estimator, ({} if estimator == "pathwise" else {"estimator": estimator})


def _total_correlation(tc_beta, dataset_size, why_not):
    """(β_TC, N, the config entries recording them): None, None and nothing when ``tc_beta`` is None (so that the
    model's config is that of a checkpoint written before the option); else β_TC a finite number >= 0 and N, the
    training set's size the minibatch-weighted estimate of q(z) needs, an integer >= 1; refused where ``why_not`` says
    the loss is not the ELBO of one draw an example under the standard prior."""
    if tc_beta is None:
        if dataset_size is not None:
            raise ValueError("dataset_size is the training set's size that tc_beta's estimate of q(z) takes: pass tc_beta")
        return None, None, {}
    tc_beta = _number("tc_beta", tc_beta, lambda v: v >= 0, ">= 0 (the total correlation's weight; 1: the ELBO)")
    if dataset_size is None:
        raise ValueError("tc_beta needs dataset_size, the number of training examples N: q(z) is estimated from a batch "
                         "of M as (1/(N·M)) Σ_j q(z|x_j) (Chen et al. 2018's minibatch-weighted sampling)")
    dataset_size = _size("dataset_size", dataset_size)
    if why_not:
        raise ValueError(f"tc_beta weighs the total correlation of the ELBO's KL, taken from one draw an example under "
                         f"the standard prior, and {why_not}")
    return tc_beta, dataset_size, {"tc_beta": tc_beta, "dataset_size": dataset_size}


TC_ESTIMATORS = ("mws", "mss")


def _tc_estimator(tc_estimator, tc_beta):
    """(the estimator of q(z), the config entries recording it): "mws" (minibatch weighted sampling) or "mss"
    (minibatch stratified sampling, ``_log_stratified_weights``), recorded only when "mss" (so that checkpoints written
    before the option load); "mss" only with tc_beta."""
    if tc_estimator not in TC_ESTIMATORS:
        raise ValueError(f"tc_estimator must be one of {TC_ESTIMATORS}, not {tc_estimator!r}")
    if tc_estimator == "mws":
        return tc_estimator, {}
    if tc_beta is None:
        raise ValueError(f"tc_estimator={tc_estimator!r} estimates the q(z) of tc_beta's total correlation: pass tc_beta")
    return tc_estimator, {"tc_estimator": tc_estimator}


def _log_stratified_weights(m, n):
    """log w, the (M, M) importance weights of minibatch stratified sampling (Chen et al. 2018, App. C.2) for a batch
    of M >= 2 from a training set of N >= M: q(z_i) ≈ Σ_j w_ij q(z_i|x_j). z_i is drawn from q(z|x_i), and q(z_i) =
    (1/N) q(z_i|x_i) + (1/N) Σ_{n≠i} q(z_i|x_n): w_ii = 1/N; the other N − 1 examples are taken as M − 1 strata, M − 2
    of N/(M − 1) examples and the one x_i was drawn from, N/(M − 1) − 1 without it, each represented by one member of
    the batch weighted by its stratum's size over N: w_ij = 1/(M − 1), and w_i,i+1 (mod M) = (N − M + 1)/(N·(M − 1)).
    Each row sums to 1 and, the other members being a uniform draw, Σ_j w_ij q(z_i|x_j) is unbiased for q(z_i).
    Chen et al.'s code (``log_importance_weight_matrix``) strides its flattened matrix by M instead of M + 1, filling
    columns 0 and 1 rather than the diagonal and the one after it (rtqichen/beta-tcvae#1): these are the paper's."""
    if m < 2:
        raise ValueError(f"tc_estimator='mss' represents the other examples by the batch's other members: it needs a "
                         f"batch of at least 2, not {m}")
    if m > n:
        raise ValueError(f"tc_estimator='mss' draws the batch from the training set: a batch of {m} is more than its "
                         f"dataset_size N = {n}")
    w = numpy.full((m, m), 1 / (m - 1))
    rows = numpy.arange(m)
    w[rows, (rows + 1) % m] = (n - m + 1) / (n * (m - 1))
    w[rows, rows] = 1 / n
    return numpy.log(w)


FLOW_LENGTH = 4  # flow given: K, the flows, when not given


def _flow(flow, length):
    """(flow, K, the config entries recording them): checked; recorded only with a flow, so that a model without one
    has the config of a checkpoint written before the option existed (as ``_prior``). K = 0 is the plain model."""
    if flow is None:
        if length is not None:
            raise ValueError("flow_length is the number of flows: it needs flow='planar', 'radial' or 'iaf'")
        return None, 0, {}
    if flow not in FLOWS:
        raise ValueError(f"flow must be None or one of {FLOWS}, not {flow!r}")
    length = FLOW_LENGTH if length is None else _size("flow_length", length, minimum=0)
    return flow, length, dict(flow=flow, flow_length=length)


def _log_q(eps, log_var):
    """log N(z; μ, σ²) summed over the last axis, at z = μ + σ·ε, written in the noise: Σ_d −½(ε_d² + log σ_d² + log 2π)
    ((z − μ)/σ is ε exactly, so its gradient is that of −½ log σ², the pathwise one through z and σ together)."""
    return (-0.5 * (eps * eps + log_var)).sum(axis=-1) - 0.5 * LOG_2PI * eps.shape[-1]


IMAGE_LIKELIHOODS = ("bernoulli", "gaussian", "continuous_bernoulli", "discretized_logistic")
COUNT_LIKELIHOODS = ("poisson", "negative_binomial", "zero_inflated_negative_binomial")  # of counts 0, 1, 2, …
LIKELIHOODS = IMAGE_LIKELIHOODS + COUNT_LIKELIHOODS
# likelihood="discretized_logistic": log s, the per-pixel log-scale, starts at −2 (s ≈ 0.14: a logistic of standard
# deviation s·π/√3 ≈ 0.25 of the grey range, about the spread of Fashion-MNIST's pixels), not 0 (s = 1, wider than the
# data): Adam moves a parameter about lr a step, so the start matters for hundreds of steps. Measured (the gaussian
# model, 5000 Fashion-MNIST images, batches of 100, lr 1e-3), the validation ELBO after 3 epochs: −2298 nats from −2,
# −2430 from −1, −2688 from −3, −2727 from 0; after 5: −2256 from −2, −2390 from −1
DL_LOG_SCALE = -2.0
# likelihood="negative_binomial": log θ, the per-feature log inverse dispersion, starts at 0 (θ = 1: variance μ + μ²,
# a strongly over-dispersed start from which θ rises where the data are closer to Poisson); scVI draws it from N(0, 1)
# (px_r), around the same point. A constant start draws nothing, so the networks' weights stay those of the Bernoulli
# model of the same seed
NB_LOG_THETA = 0.0
# likelihood="zero_inflated_negative_binomial": the per-feature dropout logit starts at −2 (π = σ(−2) ≈ 0.12 of
# structural zeros), not 0 (half of every feature's counts taken for dropouts from the first step, the NB part then
# trained on the other half's weight)
ZINB_GATE_LOGIT = -2.0
# library="observed" (scVI's use_observed_lib_size=True): the mean of each count μ = ℓ·softmax(out) over the features,
# ℓ the row's total; None (the default) keeps the mean e^out of every earlier model and checkpoint
LIBRARIES = (None, "observed")
# gate="decoder" (scVI's ZINB): the dropout logit of each cell and feature a second decoder head; "feature" (the
# default) one learned logit a feature, ``gate_logits``
GATES = ("feature", "decoder")


def _count_options(likelihood, library, gate, arch):
    """(library, gate, the config entries recording them): checked against the likelihood; recorded only when not the
    defaults (None, "feature"), so that a model of the defaults has the config of a checkpoint written before the
    options existed (as ``_prior``)."""
    if library not in LIBRARIES:
        raise ValueError(f"library must be one of {LIBRARIES}, not {library!r}")
    if gate not in GATES:
        raise ValueError(f"gate must be one of {GATES}, not {gate!r}")
    if library is not None and likelihood not in COUNT_LIKELIHOODS:
        raise ValueError(f"library='observed' scales the mean of counts by their total: it needs a count likelihood "
                         f"{COUNT_LIKELIHOODS}, not {likelihood!r}")
    if gate == "decoder" and likelihood != "zero_inflated_negative_binomial":
        raise ValueError(f"gate='decoder' is the dropout logit of likelihood='zero_inflated_negative_binomial', which "
                         f"{likelihood!r} has none of")
    if gate == "decoder" and arch != "mlp":
        raise ValueError("gate='decoder' takes a second output a feature from the decoder: arch='mlp' (the "
                         "convolutional decoder has one channel)")
    return library, gate, {k: v for k, v, default in (("library", library, None), ("gate", gate, "feature")) if v != default}


def _likelihood_kind(likelihood):
    """``likelihood`` checked: one of LIKELIHOODS."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, not {likelihood!r}")
    return likelihood


def _likelihood_parameters(model, likelihood, x_dim, library=None, gate="feature"):
    """The likelihood's own parameters, made after the networks (so their weights are those of the Bernoulli model of
    the same seed): "gaussian" one log-scale for every pixel, ``log_scale`` (1,) at 0; "discretized_logistic" one a
    pixel, ``log_scale`` (x_dim,) at DL_LOG_SCALE; "negative_binomial" one log inverse dispersion a feature,
    ``log_theta`` (x_dim,) at NB_LOG_THETA, and "zero_inflated_negative_binomial" with it a dropout logit a feature,
    ``gate_logits`` (x_dim,) at ZINB_GATE_LOGIT (gate="decoder": none, the decoder's second head's biases start there
    instead); the others none (the decoder gives all of p(x|z)). library="observed": the buffers ``library_mean`` and
    ``library_rows``, the mean total ℓ̄ of the rows trained on and their number (``_track_library``), 0 and 0."""
    model.likelihood_kind, model.library_kind, model.gate_kind = likelihood, library, gate
    if library == "observed":
        model.library_mean = Buffer(numpy.zeros((), numpy.float32))
        model.library_rows = Buffer(numpy.zeros((), numpy.float32))
    if gate == "decoder":
        model.decoder.parameters()[-1].data[x_dim:] = ZINB_GATE_LOGIT  # the last layer's biases of the gate head
    if likelihood == "gaussian":
        model.log_scale = Tensor(numpy.zeros(1, numpy.float32), requires_grad=True)
    elif likelihood == "discretized_logistic":
        model.log_scale = Tensor(numpy.full(x_dim, DL_LOG_SCALE, numpy.float32), requires_grad=True)
    elif likelihood in ("negative_binomial", "zero_inflated_negative_binomial"):
        model.log_theta = Tensor(numpy.full(x_dim, NB_LOG_THETA, numpy.float32), requires_grad=True)
        if likelihood == "zero_inflated_negative_binomial" and gate == "feature":
            model.gate_logits = Tensor(numpy.full(x_dim, ZINB_GATE_LOGIT, numpy.float32), requires_grad=True)


class LogRatePoisson(Poisson):
    """Poisson(rate λ = e^η) given its log-rate η (a decoder's output): the likelihood="poisson" of the VAEs.

    log_prob   k·η − e^η − lgamma(k + 1): −torch.nn.functional.poisson_nll_loss(η, k, log_input=True, full=False)
               (e^η − k·η) less log k! exactly (full=True would add Stirling's approximation of it instead); −∞ at a
               value that is no count, as Poisson's. For η > 0 Poisson's (``poisson_log_pmf``, Loader's saddle-point
               form: k·η and lgamma(k + 1) cancel where k is large; for η ≤ 0 the terms share their sign). ∂/∂η = k − e^η
    rate = e^η, so mean, variance, mode and sample are Poisson's.

    Different from Poisson(rate=e^η).log_prob on purpose: k·η is η itself times k, not xlogy(k, e^η), so that where e^η
    underflows (η below about −103 in float32) the log-probability of a count k > 0 stays k·η − 0, finite, with the
    gradient k, instead of −∞ (and no gradient)."""

    _params = ("rate", "log_rate")

    def __init__(self, log_rate):
        (log_rate,), _, _ = checked_params((log_rate,), ("log_rate",), "LogRatePoisson", positive=())
        super().__init__(ops.exp(log_rate))
        self.log_rate = log_rate

    def log_prob(self, value):
        value = self._value(value)
        bad = _not_a_count(value)
        k = ops.where(bad, 0.0, value)
        plain = k * self.log_rate - self.rate - ops.lgamma(k + 1)
        return ops.where(bad, -math.inf, ops.where(self.log_rate > 0, poisson_log_pmf(k, self.rate), plain))

    def __repr__(self):
        return f"LogRatePoisson(batch_shape={self.batch_shape})"


class ZeroInflatedNegativeBinomial(NegativeBinomial):
    """ZeroInflatedNegativeBinomial(total_count r, probs p | logits l, gate π | gate_logits g): with probability
    π = σ(g) a structural zero ("dropout"), else a NegativeBinomial(r, l) count, as Pyro's
    pyro.distributions.ZeroInflatedNegativeBinomial (and scVI's ZINB, at r = θ, l = log μ − log θ, g its dropout
    logit). Give exactly one of ``gate`` (in [0, 1]) and ``gate_logits``.

    log_prob   k = 0: log(π + (1 − π)·NB(0)) = logaddexp(−softplus(−g), −softplus(g) + r·log σ(−l))
               k > 0: log(1 − π) + log NB(k) = −softplus(g) + NegativeBinomial.log_prob(k)
               (scVI's log_zinb_positive, without its ε: exact at every θ, μ > 0, and NB's own at g = −∞); −∞ at a
               value that is no count
    mean (1 − π)·NB mean;  variance (1 − π)·(NB mean² + NB variance) − mean² (Pyro's)
    sample     the NB draw (NegativeBinomial.sample), then 0 where a uniform of ``rng`` falls below π; no gradient
    mode       0 where P(0) ≥ (1 − π)·NB(NB mode), else the NB mode
    """

    _params = ("total_count", "logits", "_probs", "gate_logits", "_gate")

    def __init__(self, total_count, probs=None, logits=None, gate=None, gate_logits=None):
        super().__init__(total_count, probs=probs, logits=logits)
        if (gate is None) == (gate_logits is None):
            raise ValueError("ZeroInflatedNegativeBinomial: give exactly one of gate and gate_logits")
        # a gate given: clamped to [ε, 1 − ε] and made logits, as Bernoulli's probs (torch's probs_to_logits)
        gate_logits, self._gate = logits_from(gate, gate_logits, "ZeroInflatedNegativeBinomial", binary=True)
        (self.gate_logits,), shape, dtype = checked_params((gate_logits,), ("gate_logits",),
                                                           "ZeroInflatedNegativeBinomial", positive=())
        self.batch_shape = numpy.broadcast_shapes(tuple(self.batch_shape), shape)
        self._dtype = numpy.result_type(self._dtype, dtype)

    @property
    def gate(self):
        return ops.sigmoid(self.gate_logits) if self._gate is None else self._gate

    @property
    def mean(self):
        return self._batch(ops.sigmoid(-self.gate_logits) * super().mean)

    @property
    def variance(self):
        nb_mean, keep = super().mean, ops.sigmoid(-self.gate_logits)
        nb_variance = nb_mean / ops.sigmoid(-self.logits)  # (NegativeBinomial.variance would read this class's mean)
        mean = keep * nb_mean
        return self._batch(keep * (nb_mean * nb_mean + nb_variance) - mean * mean)

    @property
    def mode(self):
        nb_mode = NegativeBinomial(self.total_count, logits=self.logits).mode
        zero = self.log_prob(0.0) >= self.log_prob(nb_mode)
        return self._batch(ops.where(zero, 0.0, nb_mode))

    def sample(self, sample_shape=(), rng=None):
        """NegativeBinomial.sample's counts (2·n Philox blocks of ``rng``), then n uniforms of ``rng`` in float64, the
        count kept where u ≥ π; n = prod(shape)."""
        rng = resolve(rng)
        with no_grad():
            counts = super().sample(sample_shape, rng=rng)
            u = Tensor(rng.uniform(counts.shape, numpy.float64, device=counts.device))
            return ops.where(u < ops.broadcast_to(self.gate, counts.shape), 0.0, counts)

    def log_prob(self, value):
        value = self._value(value)
        bad = _not_a_count(value)
        k = ops.where(bad, 0.0, value)
        g = self.gate_logits
        log_keep = -ops.softplus(g)  # log(1 − π)
        at_zero = ops.logaddexp(-ops.softplus(-g), log_keep - self.total_count * ops.softplus(self.logits))
        above = super().log_prob(k) + log_keep
        return ops.where(bad, -math.inf, ops.where(k == 0, at_zero, above))

    def __repr__(self):
        return f"ZeroInflatedNegativeBinomial(batch_shape={self.batch_shape})"


class ObservedLibrary(Distribution):
    """p(x | z, ℓ) of library="observed": counts whose means are μ = ℓ·ρ, ρ = softmax(out) over the features (the
    decoder gives the proportions of the row's ℓ counts, scVI's px_scale, and ρ sums to 1, so μ sums to ℓ), each count
    of ``counts(log μ)``, the likelihood's distribution of log-mean log μ = log_softmax(out) + log ℓ (LogRatePoisson,
    NegativeBinomial or ZeroInflatedNegativeBinomial, as ``_count_likelihood`` makes them).

    ℓ is ``library`` where given ((…, 1), a total a row); else log_prob(x) takes the scored row's own total
    ℓ = max(Σ_j x_j, 1) (scVI's use_observed_lib_size=True: log p(x | z, ℓ = Σx), conditioned on the observed total,
    so not a pmf summed over every x; counts are integers, so the max changes only a row of no counts, whose log ℓ would
    be −∞), and mean, variance, mode and sample take ``default``, the model's ℓ̄ (the mean total of its training rows)."""

    def __init__(self, counts, log_rho, library, default):
        self.counts, self.log_rho, self.library, self.default = counts, log_rho, library, default
        self.batch_shape = log_rho.shape

    def _at(self, library):
        return self.counts(self.log_rho + ops.log(library))

    def _given(self):
        return self._at(self.default if self.library is None else self.library)

    def log_prob(self, value):
        value = as_value(value, self.log_rho)
        library = self.library
        if library is None:  # the total of the counts among the values (the others −∞ whatever ℓ)
            library = ops.maximum(ops.where(_not_a_count(value), 0.0, value).sum(axis=-1, keepdims=True), 1.0)
        return self._at(library).log_prob(value)

    @property
    def mean(self):
        return self._given().mean

    @property
    def variance(self):
        return self._given().variance

    @property
    def mode(self):
        return self._given().mode

    def sample(self, sample_shape=(), rng=None):
        return self._given().sample(sample_shape, rng=rng)

    def __repr__(self):
        return f"ObservedLibrary(batch_shape={self.batch_shape})"


def _encoder_input(model, x):
    """What the encoder (and an input-dependent baseline) reads of x: log(1 + x) under a count likelihood (scVI's
    log_variational: counts span orders of magnitude, and a count of 500 into a layer made for values near 1 would
    saturate it), x itself under the others. The likelihood scores x itself either way."""
    return ops.log1p(x) if model.likelihood_kind in COUNT_LIKELIHOODS else x


def _likelihood_of(model, out, library=None):
    """p(x|z) of the decoder's output ``out`` (…, x_dim) under the model's likelihood:

    "bernoulli"             Bernoulli(logits=out)
    "gaussian"              Normal(out, exp(log_scale)), one learned scale for all pixels
    "continuous_bernoulli"  ContinuousBernoulli(logits=out) (Loaiza-Ganem & Cunningham 2019): a density on [0, 1]
    "discretized_logistic"  DiscretizedLogistic(out, exp(log_scale), bins=256) of 8-bit grey levels k/255, a learned
                            scale a pixel (the decoder gives the locations; a scale of its own a pixel, rather than a
                            second decoder output, keeps the decoders, the convolutional one's single channel
                            included, as they are, and no image can shrink its scales towards 0 on its own)
    "poisson"               LogRatePoisson(out): counts of rate λ = e^out a feature, log p = k·out − e^out − log k!
    "negative_binomial"     NegativeBinomial(total_count=θ, logits=out − log θ), θ = exp(log_theta) a feature: counts of
                            mean μ = e^out and variance μ + μ²/θ (the Gamma–Poisson mixture of scVI, Lopez et al. 2018,
                            with its gene-wise inverse dispersion θ), log p = θ log(θ/(θ + μ)) + k log(μ/(θ + μ)) +
                            lgamma(θ + k) − lgamma(θ) − log k!, torch's NegativeBinomial at r = θ, l = log μ − log θ
    "zero_inflated_negative_binomial"
                            ZeroInflatedNegativeBinomial(θ, logits=out − log θ, gate_logits=g): that NB, and with
                            probability π = σ(g) a structural zero; g one learned logit a feature (``gate_logits``), or
                            with gate="decoder" the decoder's second head, out = [mean part, g] (scVI's ZINB: a
                            dropout logit a row and feature)

    The count likelihoods take the mean e^out, or with library="observed" ℓ·softmax(out), ℓ the row's total
    (``ObservedLibrary``; ``library``: ℓ given, one a row)."""
    kind = model.likelihood_kind
    if kind == "bernoulli":
        return Bernoulli(logits=out)
    if kind == "continuous_bernoulli":
        return ContinuousBernoulli(logits=out)
    if kind in COUNT_LIKELIHOODS:
        return _count_likelihood(model, out, library)
    scale = ops.broadcast_to(ops.exp(model.log_scale), out.shape)
    return Normal(out, scale) if kind == "gaussian" else DiscretizedLogistic(out, scale)


def _count_likelihood(model, out, library):
    """The count likelihood of the decoder's output ``out``: ``_counts_of`` the log-mean η = out, or with
    library="observed" η = log_softmax(out) + log ℓ (ObservedLibrary); the dropout logits of gate="decoder" the second
    half of ``out``."""
    gate_logits = None
    if model.gate_kind == "decoder":
        out, gate_logits = ops.split(out, 2, axis=-1)
    elif model.likelihood_kind == "zero_inflated_negative_binomial":
        gate_logits = ops.broadcast_to(model.gate_logits, out.shape)
    if model.library_kind is None:
        if library is not None:
            raise ValueError("library: the mean of this model's counts is e^out; a library size is for a model of "
                             "library='observed'")
        return _counts_of(model, out, gate_logits)
    if library is not None:  # (numbers and host arrays in out's dtype, on its device)
        given = library if isinstance(library, Tensor) or device_of(library) != "cpu" else numpy.asarray(library, out.dtype)
        (library,), _, _ = checked_params((given,), ("library",), "likelihood", positive=("library",))
        library = library.to(out.device)
        library = ops.unsqueeze(library, -1) if library.ndim else library
    return ObservedLibrary(lambda log_mean: _counts_of(model, log_mean, gate_logits), ops.log_softmax(out, axis=-1),
                           library, model.library_mean)


def _counts_of(model, out, gate_logits):
    """The model's count distribution of log-mean ``out`` (η): LogRatePoisson(η), NegativeBinomial(θ, logits=η − log θ)
    or ZeroInflatedNegativeBinomial with it and ``gate_logits``."""
    kind = model.likelihood_kind
    if kind == "poisson":
        return LogRatePoisson(out)
    log_theta = ops.broadcast_to(model.log_theta, out.shape)
    if kind == "negative_binomial":
        return NegativeBinomial(ops.exp(log_theta), logits=out - log_theta)
    return ZeroInflatedNegativeBinomial(ops.exp(log_theta), logits=out - log_theta, gate_logits=gate_logits)


def _track_library(model, x):
    """library="observed": the rows of a training batch x (…, x_dim) folded into ℓ̄ = ``library_mean``, the mean total of
    the rows the model has trained on, n = ``library_rows`` of them: ℓ̄ ← ℓ̄ + (Σ_rows ℓ − B·ℓ̄)/(n + B), n ← n + B for
    the B rows. In place and as array functions: no copy to the host, and a step plan replays it."""
    if model.library_kind != "observed":
        return
    m, n = model.library_mean, model.library_rows
    rows = math.prod(x.shape[:-1])
    m.copy_(array_function(lambda m, n, x: m + (x.sum(dtype=m.dtype) - rows * m) / (n + rows), m, n, x))
    n.copy_(array_function(lambda n: n + rows, n))


def _sample_library(model, library):
    """ℓ of prior samples: ``library`` where given, else (library="observed") ℓ̄, the training rows' mean total; an
    error before any training row."""
    if library is not None or getattr(model, "library_kind", None) != "observed":
        return library
    if not model.library_rows.item():
        raise ValueError("sample: a model of library='observed' needs a library size ℓ for its samples: give "
                         "library=, or train it first (ℓ is then the mean total of its training rows)")
    return None


class ConvEncoder(Module):
    """x (…, side²) read as (…, 1, side, side) images → one 4×4 convolution of stride 2 and padding 1 a channel count
    (each halves the side; the activation after each) → flattened → MLP((channels[-1]·(side/2^L)², *hidden, out)) →
    (…, out): any leading axes (the K samples' too)."""

    def __init__(self, side, channels, hidden, out, activation, *, rng):
        self.side = side
        layers, c_in = [], 1
        for c in channels:
            layers += [Conv2d(c_in, c, 4, 2, 1, rng=rng), ACTIVATION_MODULES[activation]()]
            c_in = c
        self.convs = Sequential(*layers)
        cells = side // 2 ** len(channels)
        self.mlp = MLP((c_in * cells * cells, *hidden, out), activation, rng=rng)

    def forward(self, x):
        h = self.convs(ops.reshape(x, (-1, 1, self.side, self.side)))
        out = self.mlp(ops.reshape(h, (h.shape[0], -1)))
        return ops.reshape(out, (*x.shape[:-1], out.shape[-1]))


class ConvDecoder(Module):
    """ConvEncoder mirrored: z (…, d) → MLP((d, *reversed(hidden), channels[-1]·(side/2^L)²)) and the activation →
    (…, channels[-1], side/2^L, side/2^L) → one 4×4 transposed convolution of stride 2 and padding 1 a channel count, in
    reverse, the last to one channel (each doubles the side; the activation between them) → (…, side²), the logits or
    means of p(x|z)."""

    def __init__(self, side, channels, hidden, code, activation, *, rng):
        self.side = side
        cells = side // 2 ** len(channels)
        self.grid = (channels[-1], cells, cells)
        self.mlp = MLP((code, *reversed(hidden), math.prod(self.grid)), activation, rng=rng)
        self.activation = ACTIVATION_MODULES[activation]()
        layers, outs = [], [*reversed(channels[:-1]), 1]
        for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs)):
            layers.append(ConvTranspose2d(c_in, c_out, 4, 2, 1, rng=rng))
            if i < len(outs) - 1:
                layers.append(ACTIVATION_MODULES[activation]())
        self.deconvs = Sequential(*layers)

    def forward(self, z):
        h = ops.reshape(self.activation(self.mlp(z)), (-1, *self.grid))
        return ops.reshape(self.deconvs(h), (*z.shape[:-1], self.side * self.side))


def _networks(x_dim, hidden, encoder_out, decoder_in, activation, arch, channels, rng, heads=1):
    """The encoder x (…, x_dim) → (…, encoder_out) and the decoder (…, decoder_in) → (…, heads·x_dim): MLPs of
    ``hidden`` layers, or (arch="conv", one head) ConvEncoder and ConvDecoder, with ``hidden`` their fully connected
    layers. heads = 2: the last layer's outputs are two heads of the last hidden layer (gate="decoder")."""
    if arch == "mlp":
        return (MLP((x_dim, *hidden, encoder_out), activation, rng=rng),
                MLP((decoder_in, *reversed(hidden), heads * x_dim), activation, rng=rng))
    side = math.isqrt(x_dim)
    return (ConvEncoder(side, channels, hidden, encoder_out, activation, rng=rng),
            ConvDecoder(side, channels, hidden, decoder_in, activation, rng=rng))


class GaussianVAE(Module):
    """q(z|x) = N(μ(x), σ(x)²), p(z) = N(0, I), p(x|z) = Bernoulli(decoder(z)) (or, ``likelihood=``, a Gaussian
    with one learned scale, a continuous Bernoulli, a discretized logistic, or of counts a Poisson, a negative binomial
    or a zero-inflated one, the encoder then reading log(1 + x): see ``_likelihood_of``). Trained by the
    pathwise estimator, z = μ + σ·ε, with the KL to the prior in closed form (Kingma & Welling 2014); ``samples=K`` averages
    the ELBO over K draws an example, and ``objective="iwae"`` trains the IWAE bound of K draws (Burda et al. 2016),
    log (1/K) Σ_k e^{w_k}, through log-sum-exp, with w_k = log p(x|z_k) + β·Σ_d ½(ε_kd² − z_kd² + log σ_d²): log N(z; 0, I)
    − log N(z; μ, σ²) written in the noise ε = (z − μ)/σ that made z (exact: the two log 2π cancel). Its gradient
    is pathwise, through z and the explicit σ of log q (Burda et al.'s; not the "sticking the landing" variant).
    ``estimator="stl"`` trains the same bound (the ELBO's KL then sampled, log q(z|x) − log p(z) at the z drawn) with
    q's parameters held fixed in log q, so the encoder's gradient has no score term (Roeder et al. 2017,
    estimators.sticking_the_landing; biased for the IWAE bound of K > 1 draws); ``estimator="dreg"`` trains the IWAE
    bound by its doubly reparameterized gradient (Tucker et al. 2019, estimators.dreg: unbiased, and the encoder's
    signal-to-noise ratio grows with K where the pathwise one's falls). Neither takes a flow or free bits.

    ``prior="mog"`` learns the prior: p(z) = Σ_k π_k N(z; m_k, diag(s_k²)) of K = ``prior_components`` Gaussians
    (``prior()``, a MixtureSameFamily), its logits, means m_k and log-scales log s_k parameters of the model
    (``prior_logits`` (K,), ``prior_loc`` and ``prior_log_scale`` (K, Z)), trained with the rest. Its KL to q has no
    closed form: the loss takes the single-sample estimate log q(z|x) − log p(z) at the reparameterized z (the same ε as
    the standard prior's fused op draws), and the IWAE bound's log weights log p(z) of the mixture; both unbiased, with
    the pathwise gradient in the encoder and the prior's parameters.

    ``prior="vamp"`` is the VampPrior (Tomczak & Welling 2018): p(z) = (1/K) Σ_k q(z|u_k), the posteriors of K =
    ``prior_components`` learned pseudo-inputs u_k (``pseudo_inputs`` (K, x_dim), what the encoder reads: the images'
    grey levels, log(1 + counts) under a count likelihood; drawn from PSEUDO_INPUT_MEAN + PSEUDO_INPUT_STD·N(0, 1)),
    each component N(μ(u_k), σ(u_k)²) of the model's own encoder, equal weights 1/K. ``prior()`` is that
    MixtureSameFamily (it runs the encoder on the K pseudo-inputs), and the loss and the bounds take it as the mog prior
    (the KL sampled); the gradient reaches the pseudo-inputs and the encoder through log p(z) too. Not with a flow: the
    components would be the flow posteriors q_K(z|u_k), whose density at a z the planar and radial flows cannot invert to.

    ``free_bits=λ`` > 0 (Kingma et al. 2016, the IAF paper's free bits) trains by the ELBO with each latent dimension's
    KL, averaged over the batch, clamped below at λ nats: E[log p(x|z)] − β·Σ_j max(λ, KL̄_j) (``objectives.free_bits_kl``),
    so that the optimizer gains nothing by pushing a dimension's KL under λ (no gradient reaches it from the KL term
    there). Only the training loss changes: ``objectives.elbo``, the validation ELBO and ``minivae eval`` stay the true
    bound. The standard prior's alone (its KL is a sum over dimensions; the mixtures' and the flows' sampled KL is not),
    not with the IWAE bound; recorded in the config when > 0.

    ``flow="planar" | "radial" | "iaf"`` (``flow_length`` K, 4 when not given) makes q(z|x) a normalizing-flow
    posterior q_K (minivae.flows): z_0 = μ + σ·ε pushed through K flows, z_K = f_K ∘ … ∘ f_1(z_0), log q_K(z_K|x) =
    log q_0(z_0|x) − Σ_k log|det J_k|. Planar and radial flows are amortized, their parameters further outputs of the
    encoder (K·(2Z + 1), K·(Z + 2)); IAF's MADE networks are the model's own and read a context h of Z further encoder
    outputs (Kingma et al. 2016). The KL has no closed form: the loss takes the single-draw estimate log q_0(z_0|x) −
    Σ_k log|det J_k| − log p(z_K) (the log-dets of the same draw), the IWAE bound's log weights log p(z_K) − log q_K;
    ``posterior(x)`` is the TransformedDistribution of the diagonal Gaussian through the flows (cache_size=1: its
    log_prob scores its own draws, as objectives.elbo, iwae_bound and log_likelihood_is ask). K = 0 is the plain model,
    bit for bit. flow and flow_length are recorded in the config only when a flow is given."""

    kind = "gaussian"

    def __init__(self, x_dim=784, hidden=(512, 256), z_dim=20, likelihood="bernoulli", activation="relu",
                 objective="elbo", samples=1, arch="mlp", channels=None, prior="standard", prior_components=None,
                 flow=None, flow_length=None, library=None, gate="feature", free_bits=0.0, estimator="pathwise",
                 tc_beta=None, dataset_size=None, tc_estimator="mws", *, rng, device="cpu"):
        likelihood = _likelihood_kind(likelihood)
        x_dim, hidden, z_dim = _size("x_dim", x_dim), _hidden(hidden), _size("z_dim", z_dim)
        self.objective, self.samples, recorded = _objective(objective, samples)
        arch, channels, layout = _architecture(arch, channels, x_dim, activation)
        self.prior_kind, self.prior_components, mixture = _prior(prior, prior_components)
        self.flow_kind, self.flow_length, flows = _flow(flow, flow_length)
        library, gate, counts = _count_options(likelihood, library, gate, arch)
        if prior == "vamp" and self.flow_length:
            raise ValueError("prior='vamp' mixes the posteriors q(z|u_k) of the pseudo-inputs, and a flow posterior's "
                             "density at a z needs the flows inverted (planar and radial ones have no inverse in closed form): "
                             "use prior='mog' with a flow")
        self.estimator, chosen = _gaussian_estimator(estimator, self.objective, self.flow_length)
        sampled = (f"the {prior} prior's KL is sampled, one number an example" if prior != "standard" else
                   "a flow posterior's KL is sampled, one number an example" if self.flow_length else
                   f"the {estimator} estimator's KL is sampled, one number an example" if estimator != "pathwise" else None)
        self.free_bits, clamped = _free_bits(free_bits, self.objective, sampled)
        self.tc_beta, self.dataset_size, weighted = _total_correlation(tc_beta, dataset_size, (
            f"objective={self.objective!r} with samples={self.samples} is not that ELBO" if recorded else
            f"the {prior} prior is not a product over the dimensions" if prior != "standard" else
            "a flow posterior is not a product over the dimensions" if self.flow_length else
            f"estimator={estimator!r} holds q's parameters fixed in log q: train it pathwise" if estimator != "pathwise" else
            f"free_bits={self.free_bits:g} clamps each dimension's KL instead" if self.free_bits else None))
        self.tc_estimator, stratified = _tc_estimator(tc_estimator, self.tc_beta)
        self.config = dict(x_dim=x_dim, hidden=hidden, z_dim=z_dim, likelihood=likelihood, activation=activation,
                           **recorded, **layout, **mixture, **flows, **counts, **clamped, **chosen, **weighted,
                           **stratified)
        extra = FlowStack.outputs(flow, z_dim, self.flow_length) if self.flow_length else 0
        self.encoder, self.decoder = _networks(x_dim, hidden, 2 * z_dim + extra, z_dim, activation, arch, channels, rng,
                                               heads=2 if gate == "decoder" else 1)
        _likelihood_parameters(self, likelihood, x_dim, library, gate)
        if prior == "mog":
            # drawn after the networks, so that their weights are those of the standard prior's model of the same seed.
            # Means apart (~ N(0, I)): components of one mean, scale and weight get the same gradients and would never
            # separate; N(0, I) spreads them over where the encoder's codes start (near 0, as the standard prior's
            # KL keeps them), scales 1 and equal weights (logits 0) favour none of them
            k = self.prior_components
            self.prior_logits = Tensor(numpy.zeros(k, numpy.float32), requires_grad=True)
            self.prior_loc = Tensor(rng.normal((k, z_dim), numpy.float32), requires_grad=True)
            self.prior_log_scale = Tensor(numpy.zeros((k, z_dim), numpy.float32), requires_grad=True)
        elif prior == "vamp":  # drawn after the networks too (see PSEUDO_INPUT_MEAN)
            u = PSEUDO_INPUT_MEAN + PSEUDO_INPUT_STD * rng.normal((self.prior_components, x_dim), numpy.float32)
            self.pseudo_inputs = Tensor(u, requires_grad=True)
        # drawn last, so that the other weights are those of the model without a flow of the same seed
        self.flow = FlowStack(flow, z_dim, self.flow_length, rng=rng) if self.flow_length else None
        self.z_dim = z_dim
        self.to(device)

    def _encode(self, x):
        return ops.split(self.encoder(_encoder_input(self, x)), [self.z_dim], axis=-1)  # μ and log σ²

    def _encode_flow(self, x):
        """μ, log σ² and the flows' parameters or context (the encoder's further outputs)."""
        return ops.split(self.encoder(_encoder_input(self, x)), [self.z_dim, 2 * self.z_dim], axis=-1)

    def posterior(self, x):
        """N(μ(x), σ(x)²); with a flow, that diagonal Gaussian (an Independent of event_shape (Z,)) pushed through the
        K flows, a TransformedDistribution whose log_prob scores the draws it made itself."""
        if self.flow is not None:
            loc, log_var, extra = self._encode_flow(x)
            return TransformedDistribution(Independent(Normal(loc, ops.exp(0.5 * log_var)), 1),
                                           self.flow.transforms(extra))
        loc, log_var = self._encode(x)
        return Normal(loc, ops.exp(0.5 * log_var))

    def prior(self):
        """N(0, I), in the parameters' dtype; with prior="mog", the mixture Σ_k π_k N(m_k, diag(s_k²)) of the prior's
        parameters, π = softmax(prior_logits), s = exp(prior_log_scale): batch_shape (), event_shape (Z,); with
        prior="vamp", (1/K) Σ_k N(μ(u_k), σ(u_k)²), the encoder's posteriors of the pseudo-inputs, equal weights."""
        if self.prior_kind == "mog":
            return MixtureSameFamily(Categorical(logits=self.prior_logits),
                                     Independent(Normal(self.prior_loc, ops.exp(self.prior_log_scale)), 1))
        first = self.encoder.parameters()[0]
        xp = module_for_device(first.device)
        if self.prior_kind == "vamp":  # the pseudo-inputs are what the encoder reads (no log(1 + x) of counts)
            loc, log_var = ops.split(self.encoder(self.pseudo_inputs), [self.z_dim], axis=-1)
            return MixtureSameFamily(Categorical(logits=Tensor(xp.zeros(self.prior_components, first.dtype))),
                                     Independent(Normal(loc, ops.exp(0.5 * log_var)), 1))
        return Normal(Tensor(xp.zeros(self.z_dim, first.dtype)), Tensor(xp.ones(self.z_dim, first.dtype)))

    def likelihood(self, z, library=None):
        """p(x|z) (``_likelihood_of``); ``library``: ℓ, one a row, of library="observed" (see ObservedLibrary)."""
        return _likelihood_of(self, self.decoder(z), library)

    def loss(self, x, rng, step=0, beta=1.0):
        """−(E_q log p(x|z) − β·KL(q ‖ N(0, I))) per example, averaged: the same quantity as
        objectives.elbo, through the fused reparameterization-and-KL op and ops.negative_elbo (for a Bernoulli
        likelihood ops.bernoulli_negative_elbo, with its log-likelihood), which sums and averages both parts in one
        node (on the GPU, one kernel launch each way). With ``samples`` K > 1, the same over K copies of the batch
        (K draws an example); with ``objective="iwae"``, −(the IWAE bound of K draws) per example, averaged. With
        prior="mog" or "vamp", the KL is the single-sample log q(z|x) − log p(z) at the z drawn (see the class
        docstring); with a flow, log q_0(z_0|x) − Σ_k log|det J_k| − log p(z_K) (``_flow_loss``). With ``free_bits`` λ,
        each dimension's KL is max(λ, its mean over the batch (and the K copies)) (``objectives.free_bits_kl``). With
        estimator="stl" or "dreg", the same bound with the KL sampled, its gradient that estimator's
        (``_held_fixed_loss``)."""
        _track_library(self, x)
        if self.flow is not None:
            return self._flow_loss(x, rng, beta)
        loc, log_var = self._encode(x)
        if self.estimator != "pathwise":
            return self._held_fixed_loss(x, loc, log_var, rng, beta)
        if self.objective == "iwae":
            return self._negative_iwae(x, loc, log_var, rng, beta)
        if self.tc_beta is not None:
            return self._total_correlation_loss(x, loc, log_var, rng, beta)
        x, loc, log_var = (_copies(t, self.samples) for t in (x, loc, log_var))
        if self.prior_kind != "standard":  # no closed form: the KL sampled, log q(z|x) − log p(z) at the z of the loss
            eps = Tensor(rng.normal(loc.shape, loc.dtype, device=self.device))  # the ε reparameterize_kl would draw
            z = ops.reparameterize(loc, log_var, eps)
            kl = _log_q(eps, log_var) - self.prior().log_prob(z)
            return _negative_elbo(self.likelihood(z), x, ops.unsqueeze(kl, -1), beta)
        z, kl = ops.reparameterize_kl(loc, log_var, rng=rng)  # ε ~ N(0, I) drawn from rng (in the kernel on a GPU)
        if self.free_bits:
            kl = free_bits_kl(kl, self.free_bits)
        return _negative_elbo(self.likelihood(z), x, kl, beta)

    def _total_correlation_loss(self, x, loc, log_var, rng, beta):
        """The β-TCVAE's loss (Chen et al. 2018): the ELBO's KL, sampled at z = μ + σ·ε (the ε the fused op would draw),
        split as log q(z|x) − log p(z) = [log q(z|x) − log q(z)] + [log q(z) − Σ_d log q(z_d)] + [Σ_d log q(z_d) −
        log p(z_d)], the code's information, its total correlation and its dimensions' marginal KLs, the second weighted
        by β_TC (``tc_beta``); −(log p(x|z) − β·(I + β_TC·TC + DW)) per example, averaged. q(z) and each q(z_d) are
        estimated by minibatch-weighted sampling over the batch x_1 … x_M of a training set of N (``dataset_size``):
        log q(z_i) ≈ log Σ_j q(z_i|x_j) − log(N·M), log q(z_id) ≈ log Σ_j q(z_id|x_j) − log(N·M), the densities
        q(z_id|x_j) = N(z_id; μ_jd, σ_jd²) of every pair. With tc_estimator="mss", minibatch stratified sampling
        instead: log q(z_i) ≈ log Σ_j w_ij q(z_i|x_j), log q(z_id) ≈ log Σ_j w_ij q(z_id|x_j), the weights of
        ``_log_stratified_weights`` (1/N for the draw's own example; a row sums to 1, where MWS's weights 1/(N·M) sum to
        1/N); a batch of at least 2 from the N. β_TC = 1 is the ELBO of one draw
        with its KL sampled, exactly, by either estimator (the parts telescope whatever log q(z) and Σ_d log q(z_d)
        are)."""
        eps = Tensor(rng.normal(loc.shape, loc.dtype, device=self.device))
        z = ops.reparameterize(loc, log_var, eps)
        log_qz, log_marginals = self._log_aggregate(z, loc, log_var)
        log_pz = (-0.5 * (z * z + LOG_2PI)).sum(axis=-1)
        kl = (_log_q(eps, log_var) - log_qz) + self.tc_beta * (log_qz - log_marginals) + (log_marginals - log_pz)
        return _negative_elbo(self.likelihood(z), x, ops.unsqueeze(kl, -1), beta)

    def _log_aggregate(self, z, loc, log_var):
        """(log q(z_i), Σ_d log q(z_id)) of each draw z_i of the batch, the aggregate posterior and its marginals
        estimated from the batch's posteriors N(μ_j, σ_j²) by ``tc_estimator`` (see ``_total_correlation_loss``)."""
        m = loc.shape[0]
        gap = ops.unsqueeze(z, 1) - ops.unsqueeze(loc, 0)  # z_i − μ_j: (M, M, Z)
        pairs = -0.5 * (gap * gap * ops.exp(-ops.unsqueeze(log_var, 0)) + ops.unsqueeze(log_var, 0) + LOG_2PI)
        if self.tc_estimator == "mss":
            log_w = _log_stratified_weights(m, self.dataset_size).astype(loc.dtype)
            log_w = Tensor(module_for_device(self.device).asarray(log_w))
            log_qz = ops.logsumexp(pairs.sum(axis=-1) + log_w, axis=1)
            log_marginals = ops.logsumexp(pairs + ops.unsqueeze(log_w, -1), axis=1).sum(axis=-1)
        else:
            log_nm = math.log(self.dataset_size * m)
            log_qz = ops.logsumexp(pairs.sum(axis=-1), axis=1) - log_nm
            log_marginals = (ops.logsumexp(pairs, axis=1) - log_nm).sum(axis=-1)
        return log_qz, log_marginals

    def _flow_loss(self, x, rng, beta):
        """The loss of a flow posterior: z_0 = μ + σ·ε, ε ~ N(0, I) from rng (of the shape the plain model draws:
        (B, Z), (K, B, Z) for K samples), (z_K, Σ log|det J_k|) = flow(z_0), log q_K(z_K|x) = log q_0(z_0|x) − Σ log|det|.
        ELBO: −(log p(x|z_K) − β·(log q_K(z_K|x) − log p(z_K))) per example, averaged (over the K copies too); IWAE:
        −(log Σ_k e^{w_k} − log K), w_k = log p(x|z_k) + β·(log p(z_k) − log q_K(z_k|x)), averaged."""
        loc, log_var, extra = self._encode_flow(x)
        k = self.samples
        if self.objective == "iwae":
            shape = (k, *loc.shape)
        else:
            x, loc, log_var, extra = (_copies(t, k) for t in (x, loc, log_var, extra))
            shape = loc.shape
        eps = Tensor(rng.normal(shape, loc.dtype, device=self.device))
        z, log_det = self.flow(ops.reparameterize(loc, log_var, eps), extra)
        log_q = _log_q(eps, log_var) - log_det
        log_prior = self.prior().log_prob(z)
        if log_prior.ndim == z.ndim:  # the standard prior's Normal: one density a dimension
            log_prior = log_prior.sum(axis=-1)
        if self.objective == "iwae":
            log_w = self.likelihood(z).log_prob(x).sum(axis=-1) + beta * (log_prior - log_q)
            bound = ops.logsumexp(log_w, axis=0) - math.log(k)  # log (1/K) Σ_k e^{w_k}, an example
            return -bound.mean()
        return _negative_elbo(self.likelihood(z), x, ops.unsqueeze(log_q - log_prior, -1), beta)

    def _held_fixed_loss(self, x, loc, log_var, rng, beta):
        """−(the bound) per example, averaged, with q's parameters held fixed in log q: estimators.sticking_the_landing
        (estimator="stl") or estimators.dreg ("dreg") of q = N(μ, σ²), the log weights log p(x|z) + β·(log p(z) −
        log q(z|x)). The ELBO of K draws as K copies of the batch, one draw each (objective="elbo"); the IWAE bound of
        K draws (objective="iwae"). The same ε from rng as the pathwise loss, so the same value; its encoder gradient
        lacks the score term."""
        k = self.samples if self.objective == "iwae" else 1
        if self.objective == "elbo":
            x, loc, log_var = (_copies(t, self.samples) for t in (x, loc, log_var))
        prior = self.prior()

        def log_joint(z):  # log p(x|z) + β·log p(z), one value a draw and example
            log_prior = prior.log_prob(z)
            if log_prior.ndim == z.ndim:  # the standard prior's Normal: one density a dimension
                log_prior = log_prior.sum(axis=-1)
            return self.likelihood(z).log_prob(x).sum(axis=-1) + beta * log_prior
        estimator = dreg if self.estimator == "dreg" else sticking_the_landing
        return -estimator(log_joint, Normal(loc, ops.exp(0.5 * log_var)), k, rng, beta).mean()

    def _negative_iwae(self, x, loc, log_var, rng, beta):
        """−(1/B) Σ_b [log Σ_k e^{w_kb} − log K], ε ~ N(0, I) of shape (K, B, Z) from rng (K draws an example), z = μ + σ·ε,
        w_k = log p(x|z_k) + β·Σ_d ½(ε_kd² − z_kd² + log σ_d²), the last log N(z_k; 0, I) − log N(z_k; μ, σ²)."""
        k = self.samples
        eps = Tensor(rng.normal((k, *loc.shape), loc.dtype, device=self.device))
        z = ops.reparameterize(loc, log_var, eps)  # (K, B, Z)
        if self.prior_kind != "standard":
            log_prior_over_q = self.prior().log_prob(z) - _log_q(eps, log_var)
        else:
            log_prior_over_q = (0.5 * (eps * eps - z * z + log_var)).sum(axis=-1)
        log_w = self.likelihood(z).log_prob(x).sum(axis=-1) + beta * log_prior_over_q
        return -(ops.logsumexp(log_w, axis=0) - math.log(k)).mean()

    def sample(self, n, rng, library=None):
        """Mean images p(x|z) for n draws z ~ p(z) (library="observed": of ℓ = ``library``, else ℓ̄, see
        ``_sample_library``)."""
        with no_grad():
            z = self.prior().sample((n,), rng=rng)
            return self.likelihood(z, _sample_library(self, library)).mean


class _DiscreteVAE(Module):
    """What the VAEs of discrete latents share: the checks of their arguments and their config, the encoder and
    decoder, the temperature schedule τ(t) = max(τ_min, τ₀·exp(−r·t)) of the relaxed estimators, and the REINFORCE
    estimator's loss with its moving-average baseline and the optional input-dependent one (NVIL), and VIMCO's."""

    ESTIMATORS = ("gumbel_softmax", "straight_through", "reinforce", "rebar")

    def _build(self, x_dim, hidden, latents, estimator, tau0, tau_min, anneal_rate, activation, baseline_decay,
               baseline_hidden, objective, samples, rebar_eta, arch, channels, rng, device, likelihood="bernoulli",
               library=None, gate="feature", free_bits=0.0):
        """``latents``: the latent sizes by name ({"n_latent": N, …}), checked, kept as attributes and in the config
        (in this order, after x_dim and hidden); the code the encoder makes and the decoder reads has their product
        of units (N·K logits of the categorical model, N of the Bernoulli one)."""
        if estimator not in self.ESTIMATORS:
            raise ValueError(f"estimator must be one of {self.ESTIMATORS}, not {estimator!r}")
        x_dim, hidden = _size("x_dim", x_dim), _hidden(hidden)
        latents = {name: _size(name, value) for name, value in latents.items()}
        tau0, tau_min = check_temperature(tau0), check_temperature(tau_min)
        anneal_rate = _number("anneal_rate", anneal_rate, lambda r: r >= 0, ">= 0")
        # c ← decay·c + (1 − decay)·mean: at decay 1, c would stay the first batch's mean for ever
        baseline_decay = _number("baseline_decay", baseline_decay, lambda d: 0 <= d < 1, "in [0, 1)")
        baseline_hidden = _size("baseline_hidden", baseline_hidden, minimum=0)  # 0: the moving average alone
        if isinstance(rebar_eta, str) and rebar_eta != "auto":
            raise ValueError(f"rebar_eta must be a real number or 'auto', got {rebar_eta!r}")
        if rebar_eta != "auto":
            rebar_eta = _number("rebar_eta", rebar_eta, lambda e: True, "(any real η) or 'auto'")
        if rebar_eta != 1.0 and estimator != "rebar":
            raise ValueError(f"rebar_eta is the rebar estimator's control-variate weight η, not {estimator!r}'s")
        if baseline_hidden and estimator != "reinforce":
            raise ValueError(f"an input-dependent baseline is for the reinforce estimator, not {estimator!r}")
        objective, samples, recorded = _objective(objective, samples)
        self.free_bits, clamped = _free_bits(free_bits, objective)
        recorded.update(clamped)
        if objective == "iwae" and estimator != "reinforce":
            raise ValueError(f"objective='iwae' weighs each sample by p(x, z)/q(z|x), and the {estimator} estimator's "
                             "relaxed sample (a point of the simplex, or of [0, 1]) has no categorical or Bernoulli density "
                             "q(z|x): train the bound with estimator='reinforce' (VIMCO)")
        if objective == "iwae" and samples < 2:
            raise ValueError(f"objective='iwae' with the reinforce estimator is VIMCO, which needs samples >= 2 (each "
                             f"sample's baseline is the bound of the others), got {samples}")
        if objective == "iwae" and baseline_hidden:
            raise ValueError("VIMCO (objective='iwae') baselines each sample by the bound of the other samples: it takes "
                             "no input-dependent baseline (baseline_hidden=0)")
        arch, channels, layout = _architecture(arch, channels, x_dim, activation)
        likelihood = _likelihood_kind(likelihood)
        library, gate, counts = _count_options(likelihood, library, gate, arch)
        self.objective, self.samples = objective, samples
        # η recorded for rebar alone, so that the other estimators' configs are those of checkpoints written before it
        recorded.update({"rebar_eta": rebar_eta} if estimator == "rebar" else {})
        # the likelihood recorded unless Bernoulli, so that a checkpoint written before the option loads as one
        recorded.update({"likelihood": likelihood} if likelihood != "bernoulli" else {})
        self.config = dict(x_dim=x_dim, hidden=hidden, **latents, estimator=estimator, tau0=tau0, tau_min=tau_min,
                           anneal_rate=anneal_rate, activation=activation, baseline_decay=baseline_decay,
                           baseline_hidden=baseline_hidden, **recorded, **layout, **counts)
        code = math.prod(latents.values())
        self.encoder, self.decoder = _networks(x_dim, hidden, code, code, activation, arch, channels, rng,
                                               heads=2 if gate == "decoder" else 1)
        for name, value in latents.items():
            setattr(self, name, value)
        self.estimator, self.tau0, self.tau_min, self.anneal_rate = estimator, tau0, tau_min, anneal_rate
        self.rebar_eta = rebar_eta
        if rebar_eta == "auto":  # η learned, from 1, by the optimizer with the rest (see _rebar_loss)
            self.eta = Tensor(numpy.ones((), numpy.float32), requires_grad=True)
        # c, the moving average: a float64 number (0-d array on the model's device once trained), or None
        self.baseline, self.baseline_decay = None, baseline_decay
        self.baseline_net = MLP((x_dim, baseline_hidden, 1), "tanh", rng=rng) if baseline_hidden else None
        _likelihood_parameters(self, likelihood, x_dim, library, gate)
        self.to(device)

    def to(self, *args, **kwargs):
        super().to(*args, **kwargs)
        device = self.device  # (the baseline c stays float64 whatever the parameters' dtype)
        if self.baseline is not None and device == "cpu":
            self.baseline = numpy.float64(to_numpy(self.baseline))
        elif self.baseline is not None:
            self.baseline = module_for_device(device).asarray(self.baseline, dtype=numpy.float64)
        return self

    def temperature(self, step):
        return max(self.tau_min, self.tau0 * math.exp(-self.anneal_rate * step))

    def _clamped(self, kl):
        """The KL per latent variable ``kl`` of the loss, or with ``free_bits`` λ > 0 its free-bits form
        (``objectives.free_bits_kl``: each variable's batch mean clamped below at λ)."""
        return free_bits_kl(kl, self.free_bits) if self.free_bits else kl

    def _uniform_logits(self, shared=False):
        """The uniform prior's logits, zeros of ``_latent_shape`` in the parameters' dtype: a new array, or where
        ``shared`` (the loss's, read by its ops alone) on a device the one kept for them, which saves a step its
        allocation and fill."""
        first = self.encoder.parameters()[0]
        if shared and first.device != "cpu":
            return Tensor(device_constant(first.data, 0.0, self._latent_shape))
        return Tensor(module_for_device(self.device).zeros(self._latent_shape, first.dtype))

    def _reinforce_loss(self, x, q, kl, rng, beta):
        """−ELBO of one exact draw z ~ q(z|x) per example, with the KL ``kl`` per latent variable (``_clamped`` by free
        bits), averaged; its gradient has the score-function term (log p(x|z) − c − b_ψ(x))·∇ log q(z|x) for the encoder
        (see the subclasses' docstrings) and, with a baseline network, the least-squares fit of ψ."""
        kl = self._clamped(kl)
        z = q.sample(rng=rng)
        reconstruction = self.likelihood(z).log_prob(x).sum(axis=-1)
        signal = reconstruction.detach()
        baseline = array_function(self._moving_average, signal)
        fit = None
        if self.baseline_net is not None:
            predicted = ops.reshape(self.baseline_net(_encoder_input(self, x)), x.shape[:-1])
            error = predicted - (signal - baseline)
            fit = 0.5 * error * error  # least squares for ψ
            fit = fit - fit.detach()
            baseline = baseline + predicted.detach()
        surrogate = score_function(reconstruction, q.log_prob(z).sum(axis=-1), baseline)
        # value: −ELBO; gradient: + the score-function term for the encoder (+ the baseline's fit)
        loss = beta * kl.sum(axis=-1) - surrogate
        return (loss if fit is None else loss + fit).mean()

    def _rebar_loss(self, x, q, kl, rng, step, beta):
        """−ELBO of the exact draw b = H(z) per example, with the KL ``kl`` per latent variable, averaged; its gradient
        REBAR's (estimators.rebar) with f = log p(x|·) (the decoder reads b, σ_λ(z) and σ_λ(z̃)), at λ = τ(step) and
        η = ``rebar_eta``: [log p(x|b) − η log p(x|σ_λ(z̃))] ∇ log q(b|x) + η ∇ log p(x|σ_λ(z)) − η ∇ log p(x|σ_λ(z̃)) for
        the encoder, ∇ log p(x|b) + η(∇ log p(x|σ_λ(z)) − ∇ log p(x|σ_λ(z̃))) for the decoder (its last two terms cancel
        in expectation). The KL is ``_clamped`` by free bits first.

        With ``rebar_eta="auto"``, η is the parameter ``eta``, tuned as Tucker et al. tune it (§3.3), by the gradient
        of the encoder gradient's variance: the loss is affine in η, L = A − η·D (``estimators.rebar_parts``), so the
        encoder's ĝ = ∇_φL has ∂ĝ/∂η = −∇_φD and ∂E‖ĝ‖²/∂η = −2⟨ĝ, ∇_φD⟩ (E ĝ does not depend on η: the variance's
        gradient). η's gradient is that one-draw estimate divided by the encoder's P parameter entries (the mean
        entry's, so that its scale is an entry's gradient's, for the optimizer and for clipping), through a term of
        value 0 added to the loss; ĝ and ∇_φD are two extra backward passes (``autograd.grad``), which a step plan
        cannot record (it refuses them). λ stays the model's annealed τ: its own tuning needs second derivatives."""
        def log_likelihood(z):
            return self.likelihood(z).log_prob(x).sum(axis=-1)
        kl = self._clamped(kl)
        temperature = live(self.temperature, step)
        if self.rebar_eta != "auto":
            surrogate = rebar(log_likelihood, q, rng=rng, temperature=temperature, eta=self.rebar_eta)
            return (beta * kl.sum(axis=-1) - surrogate).mean()
        a, d = rebar_parts(log_likelihood, q, rng=rng, temperature=temperature)
        loss = (beta * kl.sum(axis=-1) - (a + self.eta * d)).mean()
        encoder = self.encoder.parameters()
        g = grad(loss, encoder, retain_graph=True, allow_unused=True)
        dg = grad(d.mean(), encoder, retain_graph=True, allow_unused=True)
        entries = sum(p.data.size for p in encoder)
        slope = sum((gi * di).sum() for gi, di in zip(g, dg) if gi is not None and di is not None) * (-2.0 / entries)
        return loss + (self.eta * slope - (self.eta * slope).detach())

    def _negative_vimco(self, x, q, rng, beta):
        """−(1/B) Σ_b L̂_b, L̂ = log (1/K) Σ_k e^{w_k} at K exact draws z_k ~ q(z|x) an example, w_k = log p(x|z_k) +
        β·(log p(z_k) − log q(z_k|x)), log p(z) = −N·log K_c of the uniform prior (K_c categories a variable, 2 for
        binary ones; the same for every z); its gradient VIMCO's (estimators.vimco_surrogate): each sample's score
        weighted by L̂ − L̂_{−k}, and log-sum-exp's pathwise gradient through p(x|z) and log q's logits. The moving
        average is neither used nor updated."""
        z = q.sample((self.samples,), rng=rng)
        log_q = q.log_prob(z).sum(axis=-1)  # (K, B): the joint of the N variables
        log_prior = -self.n_latent * math.log(getattr(self, "n_categories", 2))
        log_w = self.likelihood(z).log_prob(x).sum(axis=-1) + beta * (log_prior - log_q)
        return -vimco_surrogate(log_w, log_q).mean()

    def _moving_average(self, signal):
        """b, this batch's baseline (c; at the first step, the batch's mean), in signal's dtype; then
        c ← decay·b + (1 − decay)·mean, in float64 on the signal's device (never fetched to the host, so a
        resumed run, which reloads c, matches an uninterrupted one exactly). Once c is a device array it
        is written in place: a step plan's CUDA graph reads it where it is."""
        xp = get_array_module(signal)
        mean = signal.mean().astype(numpy.float64)
        b = mean if self.baseline is None else xp.asarray(self.baseline, dtype=numpy.float64)
        out = b.astype(signal.dtype)
        c = self.baseline_decay * b + (1 - self.baseline_decay) * mean
        if hasattr(self.baseline, "__setitem__"):
            self.baseline[...] = c
        else:
            self.baseline = c
        return out

    def sample(self, n, rng, library=None):
        """Mean images p(x|z) for n draws z ~ p(z) (library="observed": of ℓ = ``library``, else ℓ̄, see
        ``_sample_library``)."""
        with no_grad():
            z = self.prior().sample((n,), rng=rng)
            return self.likelihood(z, _sample_library(self, library)).mean


class CategoricalVAE(_DiscreteVAE):
    """N latent variables of K categories, q(z|x) = Π_n Cat(softmax(encoder(x)_n)), a uniform
    prior, p(x|z) = Bernoulli(decoder(one-hot z flattened)). The training gradient is one of:

    "gumbel_softmax"    relaxed one-hot samples at temperature τ (Jang et al. 2017)
    "straight_through"  one-hot forward, relaxed gradient backward
    "reinforce"         exact discrete samples, the score-function gradient for the encoder
                        with a moving-average baseline c (Williams 1992; c ← d·c + (1 − d)·the
                        batch's mean, d = ``baseline_decay`` in [0, 1)) and, when
                        ``baseline_hidden`` > 0, an input-dependent baseline b_ψ(x) on top
                        (NVIL, Mnih & Gregor 2014): the encoder's gradient is
                        (log p(x|z) − c − b_ψ(x)) ∇ log q(z|x) (estimators.score_function),
                        unbiased because neither c (the average over earlier batches; at the
                        first step, which has none, this batch's own mean: a bias once) nor b_ψ
                        depends on z; ψ is fitted by least squares to log p(x|z) − c
    "rebar"             exact discrete samples b = one_hot(argmax(log q + g)), REBAR's gradient
                        (Tucker et al. 2017; estimators.rebar): the score-function term with
                        η·log p(x|softmax(z̃/τ)) as its control variate, z̃ ~ p(z | b), and the
                        pathwise terms that make it unbiased; η = ``rebar_eta`` (1 by default),
                        the relaxation at the annealed temperature τ

    The KL to the uniform prior is in closed form for all four. The temperature follows
    τ(t) = max(τ_min, τ₀·exp(−r·t)) at training step t.

    ``samples=K`` averages the ELBO (and each estimator's gradient) over K draws an example. ``objective="iwae"``
    trains the K-sample IWAE bound with VIMCO (Mnih & Rezende 2016): reinforce's exact samples, each one's score
    weighted by the bound less the bound with its log weight replaced by the others' mean (estimators.vimco_surrogate),
    K ≥ 2, no moving average and no baseline network; the relaxed estimators are refused with it (their samples have
    no categorical density q).

    ``likelihood=`` replaces the Bernoulli p(x|z) as GaussianVAE's does (see ``_likelihood_of``): every estimator
    reads only log p(x|z), so each works with each likelihood.

    ``free_bits=λ`` > 0 clamps each latent variable's KL, averaged over the batch, below at λ nats in the training loss
    of every estimator (a variable's K categories are one group, as the IAF paper's groups of dimensions), as
    GaussianVAE's free bits; not with objective="iwae".
    """

    kind = "categorical"

    def __init__(self, x_dim=784, hidden=(512, 256), n_latent=20, n_categories=10, estimator="gumbel_softmax",
                 tau0=1.0, tau_min=0.5, anneal_rate=3e-5, activation="relu", baseline_decay=0.9, baseline_hidden=0,
                 objective="elbo", samples=1, rebar_eta=1.0, arch="mlp", channels=None, likelihood="bernoulli",
                 library=None, gate="feature", free_bits=0.0, *, rng, device="cpu"):
        self._build(x_dim, hidden, dict(n_latent=n_latent, n_categories=n_categories), estimator, tau0, tau_min,
                    anneal_rate, activation, baseline_decay, baseline_hidden, objective, samples, rebar_eta, arch,
                    channels, rng, device, likelihood, library, gate, free_bits)

    def _logits(self, x):
        return ops.reshape(self.encoder(_encoder_input(self, x)), x.shape[:-1] + (self.n_latent, self.n_categories))

    def posterior(self, x):
        return OneHotCategorical(logits=self._logits(x))

    @property
    def _latent_shape(self):
        return (self.n_latent, self.n_categories)

    def prior(self):
        """Uniform, in the parameters' dtype (float64 for the lab's enumerable model)."""
        return OneHotCategorical(logits=self._uniform_logits())

    def likelihood(self, z, library=None):
        flat = ops.reshape(z, z.shape[:-2] + (self.n_latent * self.n_categories,))
        return _likelihood_of(self, self.decoder(flat), library)

    def loss(self, x, rng, step=0, beta=1.0):
        _track_library(self, x)
        logits = self._logits(x)
        if self.objective == "iwae":
            return self._negative_vimco(x, OneHotCategorical(logits=logits), rng, beta)
        x, logits = _copies(x, self.samples), _copies(logits, self.samples)  # K > 1: each copy its own draw
        prior = self._uniform_logits(shared=True)  # as they are: the KL normalizes them (no log_softmax node a step)
        if self.estimator == "rebar":
            return self._rebar_loss(x, OneHotCategorical(logits=logits), ops.categorical_kl(logits, prior), rng, step,
                                    beta)
        if self.estimator != "reinforce":
            # the relaxed sample and its KL per latent variable as one node (one kernel each way on a GPU)
            z, kl = ops.gumbel_softmax_kl(logits, prior, rng, temperature=live(self.temperature, step),
                                          hard=self.estimator == "straight_through")
            return _negative_elbo(self.likelihood(z), x, self._clamped(kl), beta)  # −ELBO, as GaussianVAE.loss
        kl = ops.categorical_kl(logits, prior)  # per latent variable
        return self._reinforce_loss(x, OneHotCategorical(logits=logits), kl, rng, beta)


class BernoulliVAE(_DiscreteVAE):
    """N binary latent variables, q(z|x) = Π_n Bernoulli(σ(encoder(x)_n)), the prior Bernoulli(½) on each,
    p(x|z) = Bernoulli(decoder(z)): the VAE of a sigmoid belief net's single stochastic layer, as in NVIL (Mnih &
    Gregor 2014), VIMCO and REBAR. The training gradient is one of:

    "gumbel_softmax"    the Binary Concrete sample y = σ((l + L)/τ) ∈ (0, 1), L ~ Logistic(0, 1)
                        (RelaxedBernoulli; Maddison et al. 2017, Jang et al. 2017), into the decoder
    "straight_through"  z = 1[l + L > 0], an exact Bernoulli(σ(l)) draw, forward; y's gradient backward
                        (RelaxedBernoulli.rsample(hard=True))
    "reinforce"         exact Bernoulli draws, the score-function gradient for the encoder with the
                        categorical model's baselines: the moving average c and, when ``baseline_hidden`` > 0,
                        the input-dependent b_ψ(x) of NVIL (see CategoricalVAE)
    "rebar"             exact draws b = 1[l + L > 0] (straight-through's forward value), REBAR's gradient
                        (Tucker et al. 2017; estimators.rebar) with the Binary Concrete σ(z̃/τ) of z̃ ~ p(z | b) as
                        the control variate, η = ``rebar_eta``

    KL(q ‖ Bernoulli(½)) = Σ_n [log 2 − H(q_n)] in closed form for all four (for the relaxed two, computed with the
    sample by ops.binary_concrete_kl, one kernel each way on a GPU; for "reinforce" and "rebar", kl_divergence of the
    two Bernoullis). The temperature follows τ(t) = max(τ_min, τ₀·exp(−r·t)) at training step t, as the
    categorical model's. ``n_latent`` is 50 by default: 3 epochs of ``minivae train --model bernoulli`` (its other
    defaults) on the embedded digits gave a validation ELBO of −135.5 nats with 20 latents, −132.2 with 50, −140.5 with
    100 and −149.9 with NVIL's 200 (more latents, a wider gap between the relaxed and the discrete model at first).

    ``samples`` and ``objective`` as the categorical model's: ``objective="iwae"`` with "reinforce" is VIMCO, the
    estimator its paper trained sigmoid belief nets with. ``likelihood=`` and ``free_bits`` (each binary latent's KL
    clamped) as the categorical model's.
    """

    kind = "bernoulli"

    def __init__(self, x_dim=784, hidden=(512, 256), n_latent=50, estimator="gumbel_softmax", tau0=1.0, tau_min=0.5,
                 anneal_rate=3e-5, activation="relu", baseline_decay=0.9, baseline_hidden=0, objective="elbo", samples=1,
                 rebar_eta=1.0, arch="mlp", channels=None, likelihood="bernoulli", library=None, gate="feature",
                 free_bits=0.0, *, rng, device="cpu"):
        self._build(x_dim, hidden, dict(n_latent=n_latent), estimator, tau0, tau_min, anneal_rate, activation,
                    baseline_decay, baseline_hidden, objective, samples, rebar_eta, arch, channels, rng, device,
                    likelihood, library, gate, free_bits)

    def posterior(self, x):
        return Bernoulli(logits=self.encoder(_encoder_input(self, x)))

    @property
    def _latent_shape(self):
        return (self.n_latent,)

    def prior(self):
        """Bernoulli(½) on each latent (logits 0), in the parameters' dtype."""
        return Bernoulli(logits=self._uniform_logits())

    def likelihood(self, z, library=None):
        return _likelihood_of(self, self.decoder(z), library)

    def loss(self, x, rng, step=0, beta=1.0):
        _track_library(self, x)
        q = self.posterior(x)
        if self.objective == "iwae":
            return self._negative_vimco(x, q, rng, beta)
        if self.samples > 1:  # the K-sample ELBO: K copies of the batch, each its own draw
            x, q = _copies(x, self.samples), Bernoulli(logits=_copies(q.logits, self.samples))
        prior_logits = self._uniform_logits(shared=True)
        if self.estimator in ("reinforce", "rebar"):
            kl = kl_divergence(q, Bernoulli(logits=prior_logits))  # to the prior, per latent variable
            if self.estimator == "rebar":
                return self._rebar_loss(x, q, kl, rng, step, beta)
            return self._reinforce_loss(x, q, kl, rng, beta)
        # RelaxedBernoulli(τ, logits).rsample(rng, hard) and the KL per latent variable as one node (one kernel each
        # way on a GPU): the same uniforms, so the same sample
        z, kl = ops.binary_concrete_kl(q.logits, prior_logits, rng, temperature=live(self.temperature, step),
                                       hard=self.estimator == "straight_through")
        return _negative_elbo(self.likelihood(z), x, self._clamped(kl), beta)  # −ELBO, as GaussianVAE.loss


MODELS = {"gaussian": GaussianVAE, "categorical": CategoricalVAE, "bernoulli": BernoulliVAE}


def build(kind, config, rng, device="cpu"):
    """A model from its kind and the ``config`` it recorded (used to load checkpoints), on ``device``."""
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; expected one of {sorted(MODELS)}")
    return MODELS[kind](**config, rng=rng, device=device)


def code(model, x):
    """x's deterministic code z: the mode of q(z|x) (μ of a Gaussian posterior, each latent's most probable value for a
    discrete one); with a flow posterior, the flows applied to the base Gaussian's μ (the pushed-forward density's mode
    has no closed form). Computed without a graph."""
    with no_grad():
        q = model.posterior(x)
        if not isinstance(q, TransformedDistribution):
            return q.mode
        z = q.base_dist.mode
        for transform in q.transforms:
            z = transform(z)
        return z


def reconstruct(model, x):
    """x's deterministic reconstruction: the mean of p(x|z) at z = ``code(model, x)``, computed without a graph.
    x: (n, x_dim) on the model's device."""
    with no_grad():
        if getattr(model, "library_kind", None) == "observed":  # ℓ: each row's total
            return model.likelihood(code(model, x), ops.maximum(x.sum(axis=-1), 1.0)).mean
        return model.likelihood(code(model, x)).mean


def interpolate(model, x_a, x_b, steps):
    """Mean images of p(x|z_t) along the straight line z_t = (1 − t)·z_a + t·z_b, t = 0, 1/(steps − 1), …, 1, from
    z_a = code(model, x_a) to that of x_b: (n, steps, x_dim) for n pairs (x_a, x_b), each (n, x_dim). A line
    between two codes needs continuous latents: only a GaussianVAE (a one-hot or binary z has no points between)."""
    _gaussian_only(model, "interpolate")
    steps = _size("interpolate: steps", steps, 2)
    if x_a.shape != x_b.shape:
        raise ValueError(f"interpolate: x_a of shape {x_a.shape} and x_b of shape {x_b.shape} are not pairs")
    with no_grad():
        z_a, z_b = code(model, x_a), code(model, x_b)
        xp = module_for_device(z_a.device)
        t = Tensor(xp.linspace(0, 1, steps, dtype=z_a.dtype)[:, None])  # (steps, 1): each t a row, the n pairs beside
        z = ops.unsqueeze(z_a, 1) * (1 - t) + ops.unsqueeze(z_b, 1) * t  # (n, steps, Z)
        images = model.likelihood(ops.reshape(z, (-1, z.shape[-1]))).mean  # one batch of n·steps codes
        return ops.reshape(images, z.shape[:2] + images.shape[1:])


def _gaussian_only(model, what):
    if model.kind != "gaussian":
        raise ValueError(f"{what} moves z continuously, which needs continuous latents (a gaussian model), not "
                         f"{model.kind} ones")


def traverse(model, x, values):
    """A latent traversal (Higgins et al. 2017): for one image x (x_dim,) with z₀ = code(model, x), the mean images of
    p(x|z) at z₀ with its d-th coordinate set to each of ``values``, for every d: (z_dim, len(values), x_dim), a row a
    coordinate. Gaussian latents only."""
    _gaussian_only(model, "traverse")
    if x.ndim != 1:
        raise ValueError(f"traverse: x is one image of shape (x_dim,), got shape {x.shape}")
    with no_grad():
        z0 = code(model, ops.unsqueeze(x, 0))  # (1, Z)
        xp = module_for_device(z0.device)
        v = Tensor(xp.asarray(values, dtype=z0.dtype))
        if v.ndim != 1 or v.shape[0] == 0:
            raise ValueError(f"traverse: values must be a non-empty list of numbers, got shape {v.shape}")
        eye = Tensor(xp.eye(model.z_dim, dtype=z0.dtype)[:, None, :])  # (Z, 1, Z): coordinate d of row d
        z = z0 * (1 - eye) + eye * ops.reshape(v, (1, -1, 1))  # (Z, V, Z)
        images = model.likelihood(ops.reshape(z, (-1, model.z_dim))).mean
        return ops.reshape(images, z.shape[:2] + images.shape[1:])


def latent_grid(model, n, dims=(0, 1)):
    """The decoded manifold of two latent coordinates (Kingma & Welling 2014, Fig. 4): z_i, z_j = Φ⁻¹ of the n evenly
    spaced points (k + ½)/n of (0, 1), so that the grid covers the standard prior's mass evenly, the other coordinates
    0: the mean images of p(x|z) as (n, n, x_dim), rows z_i, columns z_j. Gaussian latents."""
    _gaussian_only(model, "latent_grid")
    n = _size("latent_grid: n", n, 1)
    if len(dims) != 2 or dims[0] == dims[1] or any(isinstance(d, bool) or not isinstance(d, numbers.Integral)
                                                   or not 0 <= d < model.z_dim for d in dims):
        raise ValueError(f"latent_grid: dims must be two different coordinates in [0, {model.z_dim}), got {dims}")
    first = model.decoder.parameters()[0]
    xp = module_for_device(first.device)
    with no_grad():
        u = Tensor((xp.arange(n, dtype=first.dtype) + 0.5) / n)
        q = Normal(Tensor(xp.zeros((), first.dtype)), Tensor(xp.ones((), first.dtype))).icdf(u)  # (n,)
        axes = xp.eye(model.z_dim, dtype=first.dtype)
        z = ops.reshape(q, (n, 1, 1)) * Tensor(axes[dims[0]]) + ops.reshape(q, (1, n, 1)) * Tensor(axes[dims[1]])
        images = model.likelihood(ops.reshape(z, (-1, model.z_dim))).mean
        return ops.reshape(images, (n, n) + images.shape[1:])
# the models of modules of their own (which import this one's helpers at their end, after their classes), here too
from minivae.semisupervised import SemiSupervisedVAE  # noqa: E402,F401  (M2, Kingma et al. 2014)
from minivae.vqvae import VQVAE  # noqa: E402,F401  (van den Oord et al. 2017)
from minivae.conditional import ConditionalVAE  # noqa: E402,F401  (Sohn et al. 2015)
from minivae.hierarchical import HierarchicalVAE  # noqa: E402,F401  (Burda et al. 2016's two stochastic layers)
