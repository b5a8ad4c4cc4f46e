"""A distribution pushed through transforms, as torch.distributions.TransformedDistribution."""
import copy

from minivae.distributions.distribution import Distribution
from minivae.distributions.independent import Independent
from minivae.distributions.transforms import ComposeTransform, Transform, _sum_rightmost as sum_rightmost
from minivae.engine import no_grad
from minivae.random import _shape


class TransformedDistribution(Distribution):
    """Y = f_K(…f_1(X)), X ~ ``base_distribution``, ``transforms`` [f_1, …, f_K] (one Transform or a list).

    rsample / sample   a base draw (rsample / sample, ``rng=`` as the other distributions) mapped through the transforms;
                       ``sample`` under no_grad returns the transforms' output itself, so that transforms with
                       cache_size=1 (a normalizing flow's) map it back in log_prob from their cache, as torch's
    log_prob(y)        base.log_prob(x) − Σ_k log|det J_k| at the points x_k the inverses give, walked back from y: each
                       term summed over the axes by which the distribution's event is larger than the transform's,
                       the base's log_prob over those beyond its own event (torch's rule: a TransformedDistribution of
                       Normal(loc, scale) of shape (B, D) and a flow of event_dim 1 has event_shape (D,), and the
                       Normal's densities are summed over D)
    batch_shape, event_shape   torch's: the base's shape mapped by the transforms, split so that the event has
                       max(codomain.event_dim, base's event axes + the change in event axes) axes; where a transform
                       reads more event axes than the base has, the base is wrapped in Independent
    has_rsample        the base's
    cdf, icdf          through the inverses (cdf) or the transforms (icdf), flipped where the transforms decrease
    expand(batch_shape)        the base expanded (torch's)
    No kl_divergence is registered (as torch's); ``mc_kl`` estimates one.
    """

    arg_constraints = {}

    def __init__(self, base_distribution, transforms):
        if not isinstance(base_distribution, Distribution):
            raise TypeError(f"TransformedDistribution: base_distribution must be a Distribution, not "
                            f"{type(base_distribution).__name__}")
        if isinstance(transforms, Transform):
            transforms = [transforms]
        elif not isinstance(transforms, (list, tuple)) or not all(isinstance(t, Transform) for t in transforms):
            raise ValueError("TransformedDistribution: transforms must be a Transform or a list of Transforms")
        self.transforms = list(transforms)
        transform = ComposeTransform(self.transforms)
        base_shape = tuple(base_distribution.batch_shape) + tuple(base_distribution.event_shape)
        base_event_dim = len(base_distribution.event_shape)
        domain_event_dim = transform.domain.event_dim
        if len(base_shape) < domain_event_dim:
            raise ValueError(f"TransformedDistribution: base_distribution needs at least {domain_event_dim} dimensions, "
                             f"but got shape {base_shape}")
        forward_shape = transform.forward_shape(base_shape)
        expanded = transform.inverse_shape(forward_shape)
        if expanded != base_shape:
            base_distribution = base_distribution.expand(expanded[:len(expanded) - base_event_dim])
        if domain_event_dim > base_event_dim:
            base_distribution = Independent(base_distribution, domain_event_dim - base_event_dim)
        self.base_dist = base_distribution
        change = transform.codomain.event_dim - transform.domain.event_dim
        event_dim = max(transform.codomain.event_dim, base_event_dim + change)
        cut = len(forward_shape) - event_dim
        self.batch_shape, self.event_shape = tuple(forward_shape[:cut]), tuple(forward_shape[cut:])

    @property
    def has_rsample(self):
        return self.base_dist.has_rsample

    @property
    def support(self):
        return self.transforms[-1].codomain if self.transforms else self.base_dist.support

    def sample(self, sample_shape=(), rng=None):
        with no_grad():
            x = self.base_dist.sample(sample_shape, rng=rng)
            for t in self.transforms:
                x = t(x)
            return x

    def rsample(self, sample_shape=(), rng=None):
        x = self.base_dist.rsample(sample_shape, rng=rng)
        for t in self.transforms:
            x = t(x)
        return x

    def log_prob(self, value):
        event_dim = len(self.event_shape)
        log_prob, y = 0.0, value
        for t in reversed(self.transforms):
            x = t.inv(y)
            event_dim += t.domain.event_dim - t.codomain.event_dim
            log_prob = log_prob - sum_rightmost(t.log_abs_det_jacobian(x, y), event_dim - t.domain.event_dim)
            y = x
        return log_prob + sum_rightmost(self.base_dist.log_prob(y), event_dim - len(self.base_dist.event_shape))

    def _monotonize_cdf(self, p):
        """p where the composed transforms increase, 1 − p where they decrease (the product of their signs: a number, or
        a tensor for an AffineTransform of tensor scale)."""
        sign = 1
        for t in self.transforms:
            sign = sign * t.sign
        return p if isinstance(sign, int) and sign == 1 else sign * (p - 0.5) + 0.5

    def cdf(self, value):
        """F_Y(y) = F_X(f⁻¹(y)) for increasing f, 1 − F_X(f⁻¹(y)) for decreasing (torch's; monotone transforms only: a
        transform without a ``sign``, e.g. a flow of event_dim 1, raises NotImplementedError)."""
        for t in reversed(self.transforms):
            value = t.inv(value)
        return self._monotonize_cdf(self.base_dist.cdf(value))

    def icdf(self, value):
        """F_Y⁻¹(p) = f(F_X⁻¹(p)) for increasing f, f(F_X⁻¹(1 − p)) for decreasing (torch's)."""
        value = self.base_dist.icdf(self._monotonize_cdf(value))
        for t in self.transforms:
            value = t(value)
        return value

    def expand(self, batch_shape):
        """torch's: the base expanded to the batch shape whose image under the transforms is batch_shape + event_shape
        (the same transforms, shared)."""
        batch_shape = _shape(batch_shape, "batch_shape")
        shape = batch_shape + tuple(self.event_shape)
        for t in reversed(self.transforms):
            shape = t.inverse_shape(shape)
        new = copy.copy(self)
        new.base_dist = self.base_dist.expand(shape[:len(shape) - len(self.base_dist.event_shape)])
        new.batch_shape = batch_shape
        return new

    def __repr__(self):
        return f"TransformedDistribution(batch_shape={self.batch_shape}, event_shape={self.event_shape})"
