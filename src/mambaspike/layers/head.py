"""Classifier head: pool over time, LayerNorm, linear -> logits ``[B, classes]``."""

from __future__ import annotations

import torch
from torch import nn


class ClassifierHead(nn.Module):
    """Pool over time (mean), LayerNorm, linear. ``[B, L, D] -> [B, classes]``."""

    def __init__(self, d_model: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean(dim=1)))

    def from_sum(self, h_sum: torch.Tensor, n: int) -> torch.Tensor:
        """Streaming: logits from the running sum ``[B, D]`` of ``n`` steps' features."""
        return self.fc(self.norm(h_sum / n))
