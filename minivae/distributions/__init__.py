"""Probability distributions with PyTorch's names: sample, rsample, log_prob, entropy, kl_divergence."""
from minivae.distributions import constraints
from minivae.distributions.distribution import Distribution
from minivae.distributions.normal import Normal
from minivae.distributions.bernoulli import Bernoulli
from minivae.distributions.continuous_bernoulli import ContinuousBernoulli
from minivae.distributions.categorical import Categorical, OneHotCategorical
from minivae.distributions.independent import Independent
from minivae.distributions.laplace import Laplace
from minivae.distributions.uniform import Uniform
from minivae.distributions.gamma import Gamma
from minivae.distributions.exponential import Exponential
from minivae.distributions.beta import Beta
from minivae.distributions.dirichlet import Dirichlet
from minivae.distributions.relaxed_bernoulli import LogitRelaxedBernoulli, RelaxedBernoulli
from minivae.distributions.relaxed import ExpRelaxedCategorical, RelaxedOneHotCategorical
from minivae.distributions.poisson import NegativeBinomial, Poisson
from minivae.distributions.mixture_same_family import MixtureSameFamily
from minivae.distributions.multivariate_normal import MultivariateNormal
from minivae.distributions.log_normal import LogNormal
from minivae.distributions.half_normal import HalfNormal
from minivae.distributions.cauchy import Cauchy
from minivae.distributions.gumbel import Gumbel
from minivae.distributions.kumaraswamy import Kumaraswamy
from minivae.distributions.student_t import StudentT
from minivae.distributions.geometric import Geometric
from minivae.distributions.discretized_logistic import DiscretizedLogistic
from minivae.distributions.kl import kl_divergence, mc_kl, register_kl
from minivae.distributions import transforms
from minivae.distributions.transformed_distribution import TransformedDistribution

__all__ = ["Distribution", "Normal", "Laplace", "Uniform", "Gamma", "Exponential", "Beta", "Dirichlet",
           "Bernoulli", "ContinuousBernoulli", "Categorical",
           "OneHotCategorical", "ExpRelaxedCategorical", "RelaxedOneHotCategorical", "LogitRelaxedBernoulli",
           "RelaxedBernoulli", "Independent", "Poisson", "NegativeBinomial", "MixtureSameFamily", "MultivariateNormal",
           "LogNormal", "HalfNormal", "Cauchy", "Gumbel", "Kumaraswamy", "StudentT", "Geometric",
           "DiscretizedLogistic",
           "constraints", "kl_divergence", "mc_kl", "register_kl"]
__all__ += ["TransformedDistribution", "transforms"]
