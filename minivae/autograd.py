"""torch.autograd's entry points: ``backward`` (into ``.grad``) and ``grad`` (returned, nothing stored)."""
from minivae.engine import Function, backward, grad

__all__ = ["Function", "backward", "grad"]
