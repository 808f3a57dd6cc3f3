"""Causal normalisation of event counts: each bin divided by the sample's event rate so far.

Dropping a fraction ``p`` of the events scales every count by ``1 - p`` on average; a front-end with
fixed thresholds turns that into a collapse of its firing (fewer neurons reach threshold, each layer
compounding the last). Dividing the input by the sample's own event rate undoes the scaling to first
order, and causally, so that streaming stays exact:

    m_t   = mean over features of x_t                       (events per feature in bin t)
    r_t   = (sum_{s <= t} m_s + k * rho) / (t + k)          (the rate so far, with a prior of k bins)
    y_t   = x_t / (r_t / rho)

``rho`` is the typical rate, a running mean of ``m`` over training batches (a buffer, like
BatchNorm's statistics), so that ``y`` keeps the input's scale; ``k`` (``prior_bins``) keeps the
first bins of a sample from being divided by a rate estimated from almost nothing.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_NORMS = ("none", "running")


class RunningCountNorm(nn.Module):
    """``forward(x [T, B, ...], state=None) -> (y [T, B, ...], state)``; state ``(sum [B], bins)``."""

    def __init__(self, prior_bins: float = 1.0, momentum: float = 0.1, initial_rate: float = 0.05):
        super().__init__()
        if prior_bins <= 0:
            raise ValueError(f"RunningCountNorm: prior_bins must be > 0, got {prior_bins}")
        self.prior_bins = float(prior_bins)
        self.momentum = momentum
        self.register_buffer("rate", torch.tensor(float(initial_rate)))

    def forward(self, x: torch.Tensor, state=None):
        T, B = x.shape[:2]
        m = x.reshape(T, B, -1).mean(dim=2)  # (T, B)
        if self.training:
            with torch.no_grad():
                self.rate.lerp_(m.mean().to(self.rate.dtype), self.momentum)
        rho = self.rate.to(x.dtype).clamp(min=1e-12)
        prev_sum, prev_bins = state if state is not None else (torch.zeros(B, dtype=x.dtype, device=x.device), 0)
        csum = prev_sum[None] + torch.cumsum(m, dim=0)  # (T, B)
        bins = prev_bins + torch.arange(1, T + 1, dtype=x.dtype, device=x.device)[:, None]  # (T, 1)
        r = (csum + self.prior_bins * rho) / (bins + self.prior_bins)
        scale = (rho / r).reshape(T, B, *([1] * (x.dim() - 2)))
        return x * scale, (csum[-1], prev_bins + T)

    def extra_repr(self) -> str:
        return f"prior_bins={self.prior_bins:g}, momentum={self.momentum:g}"
