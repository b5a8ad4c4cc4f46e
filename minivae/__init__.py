"""minivae: variational autoencoders and gradient estimators from scratch on NumPy.

Imports neither Numba nor CuPy: those backends load on first use. The submodules that a
PyTorch user reaches as attributes (``minivae.nn``, ``.optim``, ``.distributions``, …) are
imported on first access too (PEP 562), so ``import minivae`` stays fast.
"""
import importlib

from minivae._backend import get_float32_matmul_precision, info, set_float32_matmul_precision
from minivae.engine import Function, Tensor, as_tensor, backward, is_grad_enabled, no_grad, tensor
from minivae import ops
from minivae import functional
from minivae.creation import (arange, cat, empty, empty_like, eye, full, full_like, linspace, ones, ones_like, rand,
                              rand_like, randint, randn, randn_like, stack, zeros, zeros_like)
from minivae.gradcheck import GradcheckError, gradcheck
from minivae.ops import OPS
from minivae.plan import PlanError, compile_step
from minivae.random import manual_seed

__version__ = "0.1.0"
_LAZY = ("nn", "optim", "distributions", "random", "data", "models", "objectives", "estimators", "training", "plan",
         "autograd")
__all__ = ["Function", "Tensor", "tensor", "as_tensor", "backward", "no_grad", "is_grad_enabled", "ops", "functional",
           "gradcheck", "GradcheckError", "OPS", "info", "manual_seed", "set_float32_matmul_precision",
           "get_float32_matmul_precision", "compile_step", "PlanError",
           "zeros", "ones", "full", "arange", "rand", "randn", "cat", "stack", "empty", "linspace", "eye", "randint",
           "zeros_like", "ones_like", "full_like", "empty_like", "rand_like", "randn_like", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"minivae.{name}")  # also sets it as an attribute of this package
    raise AttributeError(f"module 'minivae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
