"""Surrogate spike functions: Heaviside forward, a smooth derivative backward.

``SURROGATES`` names them (``atan``, ``sigmoid``, ``fast-sigmoid``, ``triangle``); each module's
``kind`` numbers it for the compiled kernels, ``alpha`` (a buffer) is its sharpness.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def atan_grad(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """d/dx of ``atan(pi/2 * alpha * x) / pi``: ``alpha / 2 / (1 + (pi/2 * alpha * x)^2)`` (Fang et al. 2021)."""
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * x).square())


def sigmoid_grad(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """d/dx of ``sigmoid(alpha * x)``: ``alpha * sig * (1 - sig)`` (spikingjelly's ``Sigmoid``)."""
    sg = torch.sigmoid(alpha * x)
    return alpha * sg * (1 - sg)


def fast_sigmoid_grad(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """d/dx of ``x / (1 + alpha |x|)``: ``1 / (1 + alpha |x|)^2`` (SuperSpike, Zenke & Ganguli 2018)."""
    return 1 / (1 + alpha * x.abs()).square()


def triangle_grad(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Triangle of height ``alpha`` and half-width ``1 / alpha``: ``alpha * max(0, 1 - alpha |x|)``
    (Esser et al. 2016)."""
    return alpha * (1 - alpha * x.abs()).clamp_min(0)


class _SpikeFunction(torch.autograd.Function):
    """Heaviside step ``x >= 0`` forward; ``grad_out * derivative(x, alpha)`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: torch.Tensor, derivative) -> torch.Tensor:
        ctx.save_for_backward(x, alpha)
        ctx.derivative = derivative
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, alpha = ctx.saved_tensors
        return grad_out * ctx.derivative(x, alpha), None, None


class Surrogate(nn.Module):
    """A spike function: Heaviside forward, a smooth derivative backward.

    ``alpha`` (the sharpness) is a buffer, so it is saved in the ``state_dict``. ``kind`` numbers the
    surrogate for the compiled kernels.
    """

    kind: int = -1
    default_alpha: float = 1.0

    def __init__(self, alpha: float | None = None):
        super().__init__()
        alpha = self.default_alpha if alpha is None else float(alpha)
        if not alpha > 0:
            raise ValueError(f"{type(self).__name__}: alpha must be positive, got {alpha}")
        self.register_buffer("alpha", torch.tensor(alpha))

    @staticmethod
    def derivative(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SpikeFunction.apply(x, self.alpha.to(x.dtype), type(self).derivative)

    def extra_repr(self) -> str:
        return f"alpha={float(self.alpha):g}"


class ATan(Surrogate):
    """Arctan surrogate (default ``alpha = 2``), as snnTorch's and spikingjelly's ``ATan``."""

    kind, default_alpha = 0, 2.0
    derivative = staticmethod(atan_grad)


class Sigmoid(Surrogate):
    """Sigmoid surrogate (default ``alpha = 4``), as spikingjelly's ``Sigmoid``."""

    kind, default_alpha = 1, 4.0
    derivative = staticmethod(sigmoid_grad)


class FastSigmoid(Surrogate):
    """Fast-sigmoid surrogate (default ``alpha = 25``), as snnTorch's ``fast_sigmoid(slope=25)``."""

    kind, default_alpha = 2, 25.0
    derivative = staticmethod(fast_sigmoid_grad)


class Triangle(Surrogate):
    """Triangle surrogate (default ``alpha = 1``: height 1, support ``|x| < 1``)."""

    kind, default_alpha = 3, 1.0
    derivative = staticmethod(triangle_grad)


SURROGATES: dict[str, type[Surrogate]] = {
    "atan": ATan,
    "sigmoid": Sigmoid,
    "fast-sigmoid": FastSigmoid,
    "triangle": Triangle,
}


def make_surrogate(surrogate: str | Surrogate, alpha: float | None = None) -> Surrogate:
    """A surrogate module from its name in ``SURROGATES`` (or an instance, returned as is)."""
    if isinstance(surrogate, Surrogate):
        return surrogate
    name = str(surrogate).replace("_", "-")
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; expected one of {', '.join(SURROGATES)}")
    return SURROGATES[name](alpha)
