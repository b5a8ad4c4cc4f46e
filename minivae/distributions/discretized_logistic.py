"""The discretized logistic distribution: the likelihood of 8-bit grey levels (Salimans et al. 2017, PixelCNN++)."""
import numbers

from minivae import ops
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution, location_scale
from minivae._backend import get_array_module
from minivae.engine import array_function, no_grad
from minivae.random import resolve


class DiscretizedLogistic(Distribution):
    r"""A logistic variable of location ``loc`` μ and scale ``scale`` s rounded to the nearest point of the grid
    {k/(n − 1), k = 0…n − 1}, n = ``bins`` (256: 8-bit grey levels x = k/255 in [0, 1]), the grid's edge bins open
    to −∞ and +∞ (Salimans et al. 2017, PixelCNN++ §2.1), elementwise (batch_shape: the broadcast shape of loc and
    scale). With h = ½/(n − 1), half a bin, and F(y) = σ((y − μ)/s) the logistic cdf:

    P(k = 0)          F(h)                       log: log σ(a₀)           = −softplus(−a₀)
    P(0 < k < n − 1)  F(x + h) − F(x − h)        log: log σ(a) + log σ(−b) + log(1 − e^{−(a − b)})
    P(k = n − 1)      1 − F(1 − h)               log: log(1 − σ(b))       = −softplus(b)

    a = (x + h − μ)/s and b = (x − h − μ)/s, so a − b = 2h/s = 1/((n − 1)·s). The interior's log is exact:
    σ(a) − σ(b) = σ(a)·σ(−b)·(1 − e^{−(a − b)}) (multiply out (e^a − e^b)/((1 + e^a)(1 + e^b))), each factor's log
    computed without cancellation (softplus, and log(−expm1(−δ))), so nothing underflows wherever the
    probability itself is a float: far from μ (|μ − x|/s of 10⁸) the log is a large finite number, and its
    gradients in loc and scale are finite (composed of softplus, exp, expm1, log: the ops' hand-written VJPs).

    log_prob   the log of the probability above, differentiable in loc and scale. ``value`` must lie on the grid:
               k = rint(x·(n − 1)) must be within float rounding of x·(n − 1) (2·ε of x's dtype times n − 1 levels:
               k/255 rounded to float32, as minivae.data loads IDX files, passes) and 0 ≤ k ≤ n − 1; a value on the
               CPU is checked (a ValueError naming the first one off the grid), a value on a device is taken as it
               is, rounded to its nearest grid point (a check would copy it to the host each step). The bin is that
               of k, so a value rounded in float32 scores exactly as k/(n − 1).
    sample     exact on the grid: k = clip(rint(y·(n − 1)), 0, n − 1), y = μ + s·(log u − log(1 − u)) a logistic
               draw, u ~ Uniform(0, 1) open, and x = k/(n − 1) in the parameters' dtype (no rsample: rounding has no
               pathwise gradient).
    mean       Σ_k k/(n − 1)·P(k) = 1/(n − 1)·Σ_{j=1}^{n−1} P(x ≥ j/(n − 1)) = 1/(n − 1)·Σ_{j=1}^{n−1} σ((μ − e_j)/s),
               e_j = (j − ½)/(n − 1) the bin edges: exact, in [0, 1] (μ itself where the data are far inside it).

    Different from PixelCNN++ on purpose: its interior bin is log(max(σ(a) − σ(b), 10⁻¹²)), switched to the
    log-density at x plus the log of the bin width where σ(a) − σ(b) < 10⁻⁵ (an approximation, with a jump at
    the switch). The product form above needs no switch: where the difference underflows its log is still exact
    (and equal to that log-density plus log bin width to within the density's change across the bin).
    No torch counterpart (torch.distributions has none).

    References:
        1. Salimans, Karpathy, Chen, Kingma. PixelCNN++: improving the PixelCNN with discretized logistic mixture
           likelihood and other modifications. ICLR 2017.
    """

    has_rsample = False
    _params = ("loc", "scale")
    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.unit_interval  # (the grid's points; no constraint of a finite grid of reals exists)

    def __init__(self, loc, scale, bins=256):
        if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 2:
            raise ValueError(f"DiscretizedLogistic: bins must be an integer >= 2 (grid points k/(bins − 1)), got "
                             f"{bins!r}")
        self.bins = int(bins)
        self.loc, self.scale, self.batch_shape, self._dtype = location_scale(loc, scale, "DiscretizedLogistic")

    def _levels(self, value):
        """k = rint(x·(n − 1)), clipped to [0, n − 1], as a float tensor without gradient; a value on the CPU checked
        to lie on the grid (see the class docstring)."""
        top = self.bins - 1
        if value.device == "cpu" and not value.requires_grad:
            from minivae.data import off_grid
            bad = off_grid(value.data, self.bins)
            if bad.any():
                raise ValueError(f"DiscretizedLogistic.log_prob: values must lie on the grid k/{top}, k = 0…{top} "
                                 f"({self.bins} levels in [0, 1]), got {float(value.data[bad].flat[0])!r} "
                                 f"({int(bad.sum())} of {bad.size} off it)")
        return array_function(lambda v: _grid_level(v * top, top), value)

    def log_prob(self, value):
        value = self._value(value)
        top = self.bins - 1
        k = self._levels(value)
        half = 0.5 / top
        d = k / top - self.loc
        a = (d + half) / self.scale
        b = (d - half) / self.scale
        log_cdf_a = -ops.softplus(-a)       # log σ(a)
        log_sf_b = -ops.softplus(b)         # log(1 − σ(b)) = log σ(−b)
        width = (1.0 / top) / self.scale    # a − b, > 0
        interior = log_cdf_a + log_sf_b + ops.log(-ops.expm1(-width))
        low, high = array_function(lambda k: (k == 0, k == top), k)
        return ops.where(low, log_cdf_a, ops.where(high, log_sf_b, interior))

    def sample(self, sample_shape=(), rng=None):
        """Grid points k/(n − 1), k = clip(rint(y·(n − 1)), 0, n − 1) of logistic draws y (no gradient)."""
        top = self.bins - 1
        with no_grad():
            u = resolve(rng).uniform(self._extended(sample_shape), self._dtype, device=self.loc.device)
            y = self.loc + self.scale * (ops.log(u) - ops.log1p(-u))
            return array_function(lambda y: _grid_level(y * top, top) / y.dtype.type(top), y)

    @property
    def mean(self):
        top = self.bins - 1
        loc = self.loc
        ndim = max(loc.ndim, self.scale.ndim)

        def edges(loc):  # e_j = (j − ½)/(n − 1), j = 1…n − 1, on an axis in front of the batch's
            xp = get_array_module(loc)
            return ((xp.arange(1, top + 1, dtype=loc.dtype) - 0.5) / top).reshape((top,) + (1,) * ndim)
        edges = array_function(edges, loc)
        return ops.sigmoid((loc - edges) / self.scale).sum(axis=0) / top

    def __repr__(self):
        return f"DiscretizedLogistic(batch_shape={self.batch_shape}, bins={self.bins})"


def _grid_level(y, top):
    """rint(y) clipped to [0, top], in y's dtype and array module: the grid level of y·(n − 1)."""
    xp = get_array_module(y)
    return xp.clip(xp.rint(y), 0, top).astype(y.dtype, copy=False)
