"""Temporal pooling over windows of bins, whole-sequence and streaming.

:func:`temporal_pool` pools ``[T, B, ...]`` over windows of ``k`` bins (max or avg); ``PooledStream``
gives a stack whose first stage runs per input bin and the rest per pooled bin a ``step``/``finish``
streaming interface that matches the whole-sequence ``forward`` exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from mambaspike import kernels

TEMPORAL_POOL_MODES = ("max", "avg")
READOUT_POOLS = ("max", "avg")  # the front-end's last spatial pooling


class _WindowMax(torch.autograd.Function):
    """``xw [L, k, ...] -> xw.amax(dim=1)`` with amax's gradient (split evenly among the bins that tie
    for the maximum), in fewer passes over ``xw`` than autograd's ``amax`` backward: one comparison
    and one conversion to a float mask, a sum over the window, one multiply."""

    @staticmethod
    def forward(ctx, xw: torch.Tensor) -> torch.Tensor:
        out = xw.amax(dim=1)
        ctx.save_for_backward(xw, out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        xw, out = ctx.saved_tensors
        mask = (xw == out.unsqueeze(1)).to(grad.dtype)  # (L, k, ...)
        return mask * (grad / mask.sum(dim=1)).unsqueeze(1)


def temporal_pool(x: torch.Tensor, k: int, mode: str = "max", reference: bool = False) -> torch.Tensor:
    """Pool ``x [T, B, ...]`` over windows of ``k`` bins -> ``[ceil(T / k), B, ...]``.

    A last incomplete window is padded with zeros (``max``) or averaged over its real bins (``avg``).
    ``max`` with a gradient to compute goes through ``_WindowMax`` (amax's values and gradient, a
    cheaper backward); ``reference=True``, tracing for export, or no gradient: ``amax`` itself.
    """
    if k == 1:
        return x
    T = x.shape[0]
    L = (T + k - 1) // k  # ceil; not -(-T // k): traced, ONNX divides toward zero
    pad = L * k - T
    if pad:
        x = torch.cat(
            [x, torch.zeros_like(x[:1]).expand(pad, *x.shape[1:])], dim=0
        )  # traces with a dynamic batch (ONNX)
    xw = x.reshape(L, k, *x.shape[1:])  # (L, k, B, ...)
    if mode == "max":
        if reference or not (torch.is_grad_enabled() and x.requires_grad) or kernels.tracing():
            return xw.amax(dim=1)
        return _WindowMax.apply(xw)
    if mode == "avg":
        counts = torch.full((L,), float(k), dtype=x.dtype, device=x.device)
        counts[-1] = k - pad
        return xw.sum(dim=1) / counts.view(L, *([1] * (x.dim() - 1)))
    raise ValueError(f"temporal_pool: mode must be 'max' or 'avg', got {mode!r}")


def _pool_push(acc: torch.Tensor | None, y: torch.Tensor, mode: str) -> torch.Tensor:
    """Add bin ``y`` to a temporal-pool accumulator (running max, or running sum for ``avg``)."""
    if acc is None:
        return y
    return torch.maximum(acc, y) if mode == "max" else acc + y


def _pool_value(acc: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    return acc if mode == "max" else acc / n


class PooledStream:
    """Streaming for a stack whose first stage runs per input bin and the rest per pooled bin.

    Subclasses define ``_first(x [1, B, ...], s)`` and ``_rest(y [1, B, ...], states)``, both
    returning ``(out, state)``, and ``temporal_pool`` / ``_pool_mode``. The state is
    ``(first_state, rest_states, pool_accumulator, bins_in_accumulator)``.
    """

    def step(self, x: torch.Tensor, state=None):
        s0, rest, acc, n = state if state is not None else (None, None, None, 0)
        y, s0 = self._first(x[None], s0)  # (1, B, ...)
        acc, n = _pool_push(acc, y[0], self._pool_mode), n + 1
        if n < self.temporal_pool:
            return None, (s0, rest, acc, n)
        out, rest = self._rest(_pool_value(acc, n, self._pool_mode)[None], rest)
        return out[0], (s0, rest, None, 0)

    def finish(self, state):
        if state is None or state[2] is None:
            return None
        _, rest, acc, n = state
        out, _ = self._rest(_pool_value(acc, n, self._pool_mode)[None], rest)
        return out[0]


def per_bin(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a frame-wise module to every bin of ``x [T, B, ...]`` at once."""
    T, B = x.shape[:2]
    y = module(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])  # not unflatten: traces with a dynamic batch (ONNX)
