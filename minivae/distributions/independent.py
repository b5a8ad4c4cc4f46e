"""Independent: some batch axes of a distribution taken as event axes, as torch.distributions.Independent."""
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution
from minivae.random import _shape


def sum_rightmost(x, n):
    """x summed over its n rightmost axes (x itself for n = 0)."""
    return x.sum(axis=tuple(range(-n, 0))) if n else x


class Independent(Distribution):
    """``base_distribution`` with its ``reinterpreted_batch_ndims`` rightmost batch axes made event axes:
    ``Independent(Normal(mu, sigma), 1)`` is the diagonal Gaussian of the last axis, one density per row.

    batch_shape, event_shape   base's batch_shape + event_shape split n + len(base.event_shape) axes from the right
    log_prob, entropy          base's, summed over the n reinterpreted axes
    sample, rsample, has_rsample, mean, mode, variance, stddev   base's (the same draws, the same arrays)
    support                    independent(base.support, n) (base's for n = 0)
    expand(batch_shape)        base expanded to batch_shape + the n reinterpreted axes
    kl_divergence(Independent, Independent) is base's KL summed over the n axes (both n must be equal).
    """

    arg_constraints = {}

    def __init__(self, base_distribution, reinterpreted_batch_ndims):
        if not isinstance(base_distribution, Distribution):
            raise TypeError(f"Independent: base_distribution must be a Distribution, not "
                            f"{type(base_distribution).__name__}")
        n, base_batch = reinterpreted_batch_ndims, tuple(base_distribution.batch_shape)
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"Independent: reinterpreted_batch_ndims must be an integer >= 0, got {n!r}")
        if n > len(base_batch):
            raise ValueError(f"Independent: reinterpreted_batch_ndims = {n} exceeds the {len(base_batch)} axes of the "
                             f"base distribution's batch_shape {base_batch}")
        self.base_dist, self.reinterpreted_batch_ndims = base_distribution, n
        self.batch_shape = base_batch[:len(base_batch) - n]
        self.event_shape = base_batch[len(base_batch) - n:] + tuple(base_distribution.event_shape)

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    @property
    def support(self):
        support, n = self.base_dist.support, self.reinterpreted_batch_ndims
        return constraints.independent(support, n) if n else support

    @property
    def mean(self):
        return self.base_dist.mean

    @property
    def mode(self):
        return self.base_dist.mode

    @property
    def variance(self):
        return self.base_dist.variance

    @property
    def stddev(self):
        return self.base_dist.stddev

    def sample(self, sample_shape=(), rng=None):
        return self.base_dist.sample(sample_shape, rng=rng)

    def rsample(self, sample_shape=(), rng=None, **noise):
        """base's rsample; ``noise`` (Normal's ``eps=``, the relaxed categoricals' ``gumbels=``, ``hard=``) passed on."""
        return self.base_dist.rsample(sample_shape, rng=rng, **noise)

    def log_prob(self, value):
        return sum_rightmost(self.base_dist.log_prob(value), self.reinterpreted_batch_ndims)

    def entropy(self):
        return sum_rightmost(self.base_dist.entropy(), self.reinterpreted_batch_ndims)

    def enumerate_support(self, expand=True):
        """base's, for n = 0; the product over reinterpreted axes is not enumerated (as torch)."""
        if self.reinterpreted_batch_ndims:
            raise NotImplementedError("Independent.enumerate_support: enumerating the cartesian product of the "
                                      "reinterpreted axes is not implemented (as in torch)")
        return self.base_dist.enumerate_support(expand=expand)

    def expand(self, batch_shape):
        batch_shape = _shape(batch_shape, "batch_shape")
        n = self.reinterpreted_batch_ndims
        base = self.base_dist.expand(batch_shape + tuple(self.event_shape[:n]))
        return Independent(base, n)

    def __repr__(self):
        return f"Independent({self.base_dist!r}, {self.reinterpreted_batch_ndims})"
