"""Goodness of fit for sampler tests, with a stated false-failure rate (STYLE.md rule 8)."""
import numpy as np

# P(√n·D_n > 1.95) → 2·Σ_k (−1)^{k−1} e^{−2k²·1.95²} = 0.00100 for n → ∞ (Kolmogorov's limit law; for n in the
# thousands within 10⁻⁴ of it): a correct sampler fails one KS test below about once in 1000 seeds.
KS_999 = 1.95


def ks_statistic(draws, cdf):
    """The Kolmogorov–Smirnov distance sup_x |F_n(x) − F(x)| of the 1-d ``draws`` from ``cdf`` (a NumPy function)."""
    x = np.sort(np.asarray(draws, dtype=np.float64).ravel())
    n = x.size
    f = cdf(x)
    i = np.arange(1, n + 1)
    return max((i / n - f).max(), (f - (i - 1) / n).max())


def assert_follows(draws, cdf, what=""):
    """The draws pass a KS test of ``cdf`` at level 0.001."""
    n = np.asarray(draws).size
    d = ks_statistic(draws, cdf)
    assert np.sqrt(n) * d < KS_999, f"{what}: KS distance {d:.4g} over {n} draws (bound {KS_999 / np.sqrt(n):.4g})"
