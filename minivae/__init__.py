"""minivae: variational autoencoders and gradient estimators from scratch on NumPy.

Imports neither Numba nor CuPy: those backends load on first use.
"""
from minivae._backend import info
from minivae.engine import Function, Tensor, backward, is_grad_enabled, no_grad, tensor
from minivae import ops
from minivae import functional
from minivae.gradcheck import GradcheckError, gradcheck
from minivae.ops import OPS

__version__ = "0.1.0"
__all__ = ["Function", "Tensor", "tensor", "backward", "no_grad", "is_grad_enabled", "ops", "functional",
           "gradcheck", "GradcheckError", "OPS", "info"]
