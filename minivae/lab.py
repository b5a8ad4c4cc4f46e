"""The estimator lab: each gradient estimator against the exact gradient, on problems where
the exact gradient is known (``minivae estimators`` prints the tables).

(a) Bernoulli toy   ∇_θ E_{z~Bern(σ(θ))}[(z − t)²], t = 0.45 and 0.499; exact (1 − 2t)·σ(θ)(1 − σ(θ))
(b) Gaussian toys   ∇_{μ,σ} E_{x~N(μ,σ²)}[f(x)], f = (x − k)², exp(−k x²), cos(k x); exact from the
                    closed forms (μ−k)² + σ², e^{−kμ²/(1+2kσ²)}/√(1+2kσ²), cos(kμ)·e^{−k²σ²/2}
(c) categorical toy ∇_θ E_{z~Cat(softmax θ)}[(c·z)²]; Gumbel-Softmax's bias shrinks and its
                    variance grows as τ → 0
(d) categorical VAE N = 2 variables × K = 3 categories, enumerable: gradient of the ELBO's
                    reconstruction term for the encoder; ELBO ≤ log p(x) with gap KL(q(z|x) ‖ p(z|x))
(e) Gaussian latent z ~ N(0, 1), x | z ~ N(a·z, 1), q = N(μ, σ²): the encoder's gradient of the ELBO (exact from
                    its closed form) by IWAE's pathwise estimate, sticking the landing and DReG; then, for the
                    K-sample bound, each one's signal-to-noise ratio |mean|/std as K grows (Rainforth et al. 2018:
                    IWAE's encoder gradient loses its signal as K grows; DReG's does not; STL's is biased for K > 1)

Every estimate is one sample; "draws" independent estimates give mean, bias and variance.
Per-draw gradients come from one backward pass over a parameter replicated once per draw.

REBAR (unbiased at every η and τ) has two rows in (a) and (c): η = 1, and η* = −Σ Cov(a, d)/Σ Var(d), the η of least
total variance for the same draws: its estimate is affine in η, a + η·d (a: η = 0, REINFORCE of the same b; d: the
control variate's part), both from one seed, so η* is fitted on the draws it is reported for (its variance slightly
optimistic, its bias O(1/draws)).
"""
import math

import numpy

from minivae import estimators as E
from minivae import objectives, ops
from minivae.distributions import Categorical, Normal, OneHotCategorical, kl_divergence
from minivae.engine import Tensor, no_grad
from minivae.models import CategoricalVAE
from minivae.random import Generator


def summarize(exact, grads):
    """mean, |bias|, its standard error, and total variance of per-draw gradients (draws, …); from one
    draw the variance and the standard error are unknown (NaN), not 0."""
    grads = numpy.asarray(grads, dtype=numpy.float64).reshape(len(grads), -1)
    exact = numpy.asarray(exact, dtype=numpy.float64).reshape(-1)
    mean, var = grads.mean(0), grads.var(0, ddof=1) if len(grads) > 1 else numpy.full(grads.shape[1], numpy.nan)
    return {"mean": mean, "bias": float(numpy.linalg.norm(mean - exact)),
            "bias_se": float(numpy.sqrt(var.sum() / len(grads))), "variance": float(var.sum())}


def _per_draw_grads(param, surrogate):
    surrogate.sum().backward()
    return param.grad.copy()


def _rebar_rows(grads, run, rng, temperature):
    """REBAR's rows, "rebar τ=…" at η = 1 and "rebar τ=… η*=…" at the variance-optimal η*: ``run(eta, rng)`` gives the
    per-draw gradients (draws, …). Both ηs from the same Philox position (the same b, z, z̃), then ``rng`` moves on
    past the draw."""
    seed, counter = rng.seed, rng.counter
    a, one = (run(eta, Generator(seed, counter)) for eta in (0.0, 1.0))
    last = Generator(seed, counter)
    run(0.0, last)
    rng.counter = last.counter
    a, d = a.reshape(len(a), -1), (one - a).reshape(len(a), -1)
    centred = d - d.mean(0)
    spread = (centred * centred).sum()
    eta = float(-((a - a.mean(0)) * centred).sum() / spread) if spread > 0 else 0.0
    grads[f"rebar τ={temperature:g}"] = one
    grads[f"rebar τ={temperature:g} η*={eta:.3g}"] = (a + eta * d).reshape(one.shape)


def _ema_baseline(values, decay=0.9):
    """b_i = exponential moving average of values_0 … values_{i−1} (b_0 = 0): a baseline that never
    depends on the sample it is used with."""
    b, out = 0.0, numpy.empty(len(values))
    for i, v in enumerate(values):
        out[i] = b
        b = decay * b + (1 - decay) * v
    return out


# ---- (a) the Bernoulli toy -------------------------------------------------------------------
def bernoulli_toy(t, draws, rng, theta=0.0, temperature=0.5):
    """The REBAR/RELAX toy as a two-category one-hot variable: z = y₀, P(z = 1) = σ(θ)."""
    def f(y):
        return (y[..., 0] - t) ** 2

    def q_for(th):
        return OneHotCategorical(logits=ops.stack([th, th * 0], axis=-1))
    exact_grad = (1 - 2 * t) * _sigmoid(theta) * (1 - _sigmoid(theta))
    # the baseline comes from independent pilot draws, so it never depends on the sample it scales
    pilot = q_for(Tensor(numpy.full(draws, theta))).sample(rng=rng)
    baseline = _ema_baseline(f(pilot).numpy())
    grads = {}
    for name, estimator, kwargs in [("reinforce", E.reinforce, {}),
                                    ("reinforce+baseline", E.reinforce, {"baseline": baseline}),
                                    ("gumbel_softmax", E.gumbel_softmax, {"temperature": temperature}),
                                    ("straight_through", E.straight_through, {"temperature": temperature})]:
        th = Tensor(numpy.full(draws, theta), requires_grad=True)
        grads[name] = _per_draw_grads(th, estimator(f, q_for(th), rng=rng, **kwargs))

    def rebar(eta, generator):
        th = Tensor(numpy.full(draws, theta), requires_grad=True)
        return _per_draw_grads(th, E.rebar(f, q_for(th), rng=generator, temperature=temperature, eta=eta))
    _rebar_rows(grads, rebar, rng, temperature)
    th = Tensor(numpy.array(theta), requires_grad=True)
    E.exact(f, q_for(th)).backward()
    grads["exact"] = numpy.full(draws, float(th.grad))
    return exact_grad, grads


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


# ---- (b) the Gaussian toys --------------------------------------------------------------------
GAUSSIAN_TOYS = {
    "(x-k)^2, k=1": (lambda x: (x - 1.0) ** 2, lambda mu, s: (mu - 1.0) ** 2 + s * s),
    "exp(-k x^2), k=1": (lambda x: ops.exp(-1.0 * x * x),
                         lambda mu, s: ops.exp(-1.0 * mu * mu / (1 + 2 * s * s)) / ops.sqrt(1 + 2 * s * s)),
    "cos(k x), k=2": (lambda x: ops.cos(2.0 * x), lambda mu, s: ops.cos(2.0 * mu) * ops.exp(-2.0 * s * s)),
}


def gaussian_toy(name, draws, rng, mu=0.5, sigma=0.8):
    f, closed_form = GAUSSIAN_TOYS[name]
    m, s = Tensor(numpy.array(mu), requires_grad=True), Tensor(numpy.array(sigma), requires_grad=True)
    closed_form(m, s).backward()
    exact_grad = numpy.array([float(m.grad), float(s.grad)])
    grads = {}
    for est in ("pathwise", "reinforce"):
        m = Tensor(numpy.full(draws, mu), requires_grad=True)
        s = Tensor(numpy.full(draws, sigma), requires_grad=True)
        E.get(est)(f, Normal(m, s), rng=rng).sum().backward()
        grads[est] = numpy.stack([m.grad, s.grad], axis=1)
    grads["exact (closed form)"] = numpy.tile(exact_grad, (draws, 1))
    return exact_grad, grads


# ---- (c) the categorical toy --------------------------------------------------------------------
CATEGORICAL_THETA = numpy.array([0.5, -0.3, 1.0, 0.0, -1.0])
CATEGORICAL_COEFFS = numpy.array([1.0, -2.0, 0.5, 3.0, -1.0])
TEMPERATURES = (0.1, 0.3, 1.0, 3.0)


def categorical_toy(draws, rng, temperatures=TEMPERATURES):
    def f(z):  # nonlinear in z, so relaxing z to the simplex changes E f and its gradient
        return (z * CATEGORICAL_COEFFS).sum(axis=-1) ** 2
    th = Tensor(CATEGORICAL_THETA.copy(), requires_grad=True)
    E.exact(f, OneHotCategorical(logits=th)).backward()
    exact_grad = th.grad.copy()
    grads = {}
    runs = [("reinforce", "reinforce", {})]
    runs += [(f"gumbel_softmax τ={tau:g}", "gumbel_softmax", {"temperature": tau}) for tau in temperatures]
    runs += [(f"straight_through τ={tau:g}", "straight_through", {"temperature": tau}) for tau in (0.3, 1.0)]
    for label, est, kwargs in runs:
        th = Tensor(numpy.tile(CATEGORICAL_THETA, (draws, 1)), requires_grad=True)
        grads[label] = _per_draw_grads(th, E.get(est)(f, OneHotCategorical(logits=th), rng=rng, **kwargs))

    def rebar(eta, generator):
        th = Tensor(numpy.tile(CATEGORICAL_THETA, (draws, 1)), requires_grad=True)
        return _per_draw_grads(th, E.rebar(f, OneHotCategorical(logits=th), rng=generator, temperature=1.0, eta=eta))
    _rebar_rows(grads, rebar, rng, 1.0)
    return exact_grad, grads


# ---- (d) a categorical VAE small enough to enumerate ------------------------------------------
def tiny_categorical_vae(rng):
    """The real ``CategoricalVAE`` at N = 2 variables × K = 3 categories and 8 binary pixels, with a
    linear encoder and decoder (no hidden layer), in float64 so that enumeration is exact."""
    return CategoricalVAE(x_dim=8, hidden=(), n_latent=2, n_categories=3, activation="tanh", rng=rng).double()


TINY_DATA = numpy.array([[1, 1, 0, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 1, 1, 1],
                         [1, 0, 0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 1, 1, 0]], dtype=numpy.float64)


def tiny_vae_gradients(draws, rng, model=None):
    """Gradients of Σ_x E_q[log p(x|z)] for the encoder weights: exact and per estimator."""
    model = model or tiny_categorical_vae(Generator(123))
    x = Tensor(TINY_DATA)
    w = model.encoder.layers[0].weight

    def grad_of(surrogate):
        w.grad = None
        surrogate.sum().backward()
        return w.grad.reshape(-1).copy()

    def f(z):
        return model.likelihood(z).log_prob(x).sum(axis=-1)
    exact_grad = grad_of(E.exact(f, model.posterior(x)))
    grads = {}
    for label, est, kwargs in [("reinforce", "reinforce", {}), ("gumbel_softmax τ=0.5", "gumbel_softmax", {"temperature": 0.5}),
                               ("gumbel_softmax τ=1", "gumbel_softmax", {"temperature": 1.0}),
                               ("straight_through τ=1", "straight_through", {"temperature": 1.0}),
                               ("rebar τ=0.5", "rebar", {"temperature": 0.5})]:
        grads[label] = numpy.stack([grad_of(E.get(est)(f, model.posterior(x), rng=rng, **kwargs)) for _ in range(draws)])
    return exact_grad, grads


def tiny_vae_bounds(model=None):
    """Per example: exact log p(x), exact ELBO (by enumeration), their gap, and KL(q(z|x) ‖ p(z|x))."""
    model = model or tiny_categorical_vae(Generator(123))
    x = Tensor(TINY_DATA)
    with no_grad():
        log_px = objectives.exact_log_likelihood(model, x).numpy()
        q = model.posterior(x)
        z = Tensor(objectives.enumerate_one_hot(model.n_latent, model.n_categories, numpy.float64)[:, None])  # (C, 1, N, K)
        log_q = q.log_prob(z).sum(axis=-1).numpy()                              # (C, batch)
        log_joint = (model.likelihood(z).log_prob(x).sum(axis=-1) + model.prior().log_prob(z).sum(axis=-1)).numpy()
        q_probs = numpy.exp(log_q)
        elbo = (q_probs * (log_joint - log_q)).sum(0)
        log_posterior = log_joint - log_px                                       # log p(z|x)
        kl = (q_probs * (log_q - log_posterior)).sum(0)
        reconstruction = (q_probs * model.likelihood(z).log_prob(x).sum(axis=-1).numpy()).sum(0)
        analytic = reconstruction - kl_divergence(Categorical(logits=q.logits), model.prior()).sum(axis=-1).numpy()
    return {"log_px": log_px, "elbo": elbo, "gap": log_px - elbo, "kl_to_posterior": kl, "elbo_analytic_kl": analytic}


# ---- (e) a Gaussian latent model: the encoder's gradient of the ELBO and of the IWAE bound ------------------
LATENT_X, LATENT_A = 1.3, 0.9  # z ~ N(0, 1), x | z ~ N(a·z, 1): the posterior is N(a·x/(1 + a²), 1/(1 + a²))
BOUND_ESTIMATORS = ("pathwise (IWAE's)", "sticking the landing", "dreg")
SNR_SAMPLES = (1, 10, 100)


def _latent_log_joint(z):
    return -0.5 * z * z - 0.5 * (LATENT_X - LATENT_A * z) * (LATENT_X - LATENT_A * z) - math.log(2 * math.pi)


def _iwae_pathwise(log_joint, q, k, rng):
    """IWAE's own estimate: z reparameterized and log q's parameters live, so its gradient keeps the score term."""
    z = q.rsample((k,), rng=rng)
    return ops.logsumexp(log_joint(z) - q.log_prob(z), axis=0) - math.log(k)


def gaussian_latent_gradients(draws, rng, k=1, mu=0.2, sigma=0.8):
    """(exact ∇_{μ,σ} of the ELBO, or None for k > 1; {estimator: per-draw gradients (draws, 2)}) of the bound L̂_k of
    k samples. ELBO(μ, σ) = −(μ² + σ²)/2 − ((x − aμ)² + a²σ²)/2 − log 2π + ½ log 2πe + log σ, so ∂/∂μ = a(x − aμ) − μ,
    ∂/∂σ = 1/σ − (1 + a²)σ."""
    exact = numpy.array([LATENT_A * (LATENT_X - LATENT_A * mu) - mu, 1 / sigma - (1 + LATENT_A ** 2) * sigma])
    grads = {}
    for name, estimator in zip(BOUND_ESTIMATORS, (_iwae_pathwise, E.sticking_the_landing, E.dreg)):
        m = Tensor(numpy.full(draws, mu), requires_grad=True)
        s = Tensor(numpy.full(draws, sigma), requires_grad=True)
        estimator(_latent_log_joint, Normal(m, s), k, rng).sum().backward()
        grads[name] = numpy.stack([m.grad, s.grad], axis=1)
    return (exact if k == 1 else None), grads


def signal_to_noise(grads):
    """|mean| / standard deviation of each coordinate of per-draw gradients (draws, …)."""
    grads = numpy.asarray(grads, dtype=numpy.float64)
    return numpy.abs(grads.mean(0)) / grads.std(0, ddof=1)


# ---- the report -----------------------------------------------------------------------------------
def _table(title, exact, grads):
    print(f"\n{title}\n  exact gradient: {numpy.array2string(numpy.asarray(exact), precision=5)}")
    print(f"  {'estimator':24s} {'|bias|':>10s} {'± s.e.':>10s} {'variance':>12s}")
    rows = {}
    for name, g in grads.items():
        s = summarize(exact, g)
        rows[name] = s
        print(f"  {name:24s} {s['bias']:10.5f} {s['bias_se']:10.5f} {s['variance']:12.5g}")
    return rows


def main(draws=1000, seed=0, plot=None):
    draws = objectives._count(draws, "draws", "lab.main")
    rng = Generator(seed)
    print(f"Each estimate uses one sample; {draws} independent draws per estimator (seed {seed}).")
    print("|bias| is the norm of (mean estimate − exact); ± s.e. is its Monte Carlo standard error.")
    for t in (0.45, 0.499):
        _table(f"(a) Bernoulli toy, t = {t}, θ = 0", *bernoulli_toy(t, draws, rng))
    for name in GAUSSIAN_TOYS:
        _table(f"(b) Gaussian toy f = {name}, μ = 0.5, σ = 0.8 (gradient in μ, σ)", *gaussian_toy(name, draws, rng))
    rows_c = _table("(c) categorical toy, K = 5, f(z) = (c·z)², c = (1, −2, 0.5, 3, −1)", *categorical_toy(draws, rng))
    _table("(d) categorical VAE 2×3, encoder gradient of E_q log p(x|z)", *tiny_vae_gradients(min(draws, 300), rng))
    bounds = tiny_vae_bounds()
    print("\n(d) bounds per example (nats): ELBO ≤ log p(x), and the gap equals KL(q(z|x) ‖ p(z|x))")
    print(f"  {'log p(x)':>10s} {'ELBO':>10s} {'gap':>10s} {'KL(q‖p(z|x))':>14s}")
    for i in range(len(bounds["log_px"])):
        print(f"  {bounds['log_px'][i]:10.5f} {bounds['elbo'][i]:10.5f} {bounds['gap'][i]:10.5f} {bounds['kl_to_posterior'][i]:14.5f}")
    _table("(e) Gaussian latent, a = 0.9, x = 1.3, q = N(0.2, 0.8²): encoder gradient (μ, σ) of the ELBO",
           *gaussian_latent_gradients(draws, rng))
    print("\n(e) the IWAE bound of K samples: signal-to-noise ratio |mean|/std of the encoder gradient (μ, σ)")
    print(f"  {'K':>4s}  " + "  ".join(f"{name:>22s}" for name in BOUND_ESTIMATORS))
    for k in SNR_SAMPLES:
        grads = gaussian_latent_gradients(draws, rng, k)[1]
        cells = ("{:9.3g} {:9.3g}".format(*signal_to_noise(grads[name])) for name in BOUND_ESTIMATORS)
        print(f"  {k:4d}  " + "  ".join(f"{cell:>22s}" for cell in cells))
    if plot:
        _plot(rows_c, plot)


def _plot(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"matplotlib is not installed: no plot written to {path}")
        return
    taus = list(TEMPERATURES)
    bias = [rows[f"gumbel_softmax τ={t:g}"]["bias"] for t in taus]
    var = [rows[f"gumbel_softmax τ={t:g}"]["variance"] for t in taus]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.loglog(taus, bias, "o-", label="|bias|")
    ax.loglog(taus, var, "s-", label="variance")
    ax.axhline(rows["reinforce"]["variance"], ls="--", c="gray", label="REINFORCE variance")
    ax.set_xlabel("temperature τ")
    ax.set_title("Gumbel-Softmax on the categorical toy")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")
