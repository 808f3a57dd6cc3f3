"""Model registry: every family is built from one ``ModelConfig`` by name.

>>> model = build_model(ModelConfig(name="gru"))
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mambaspike.models.baselines import MambaBaseline, RNNBaseline
from mambaspike.models.mamba_spike import MambaSpike
from mambaspike.models.config import ModelConfig
from mambaspike.models.spiking_mamba.model import SpikingMamba

MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "mambaspike": MambaSpike,
    "mamba": MambaBaseline,
    "lstm": lambda cfg: RNNBaseline(cfg, "lstm"),
    "gru": lambda cfg: RNNBaseline(cfg, "gru"),
    "spiking-mamba": SpikingMamba,
    "spiking-hybrid": SpikingMamba,
}

DESCRIPTIONS = {
    "mambaspike": "Mamba-Spike: spiking front-end (LIF conv, recurrent, temporal pooling) + interface + Mamba",
    "mamba": "baseline: the same Mamba backbone after a non-spiking conv stem",
    "lstm": "baseline: LSTM after the non-spiking conv stem (parameters matched to the Mamba backbone)",
    "gru": "baseline: GRU after the non-spiking conv stem (parameters matched to the Mamba backbone)",
    "spiking-mamba": "Spiking Mamba (Miao): spiking patch generator + fully spiking Mamba blocks, spike-count output",
    "spiking-hybrid": "Spiking Mamba with spiking self-attention blocks interleaved (pattern 'MT' unless set)",
}


def model_names() -> list[str]:
    return list(MODELS)


def build_model(cfg: ModelConfig) -> nn.Module:
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model {cfg.name!r}; available: {', '.join(MODELS)}")
    return MODELS[cfg.name](cfg)


def model_loss(model: nn.Module, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The training loss of ``model``'s ``output``: ``model.loss(output, target)`` where the model
    defines one (e.g. spike-count losses), else cross-entropy on ``[B, classes]`` logits."""
    loss = getattr(model, "loss", None)
    return loss(output, target) if callable(loss) else F.cross_entropy(output, target)


def model_scores(model: nn.Module, output: torch.Tensor) -> torch.Tensor:
    """Class scores ``[B, classes]`` (argmax = prediction) from ``model``'s ``output``:
    ``model.decode(output)`` where the model defines it (e.g. spike counts), else ``output``."""
    decode = getattr(model, "decode", None)
    return decode(output) if callable(decode) else output


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "MODELS", "ModelConfig", "build_model", "model_names", "count_parameters", "model_loss", "model_scores",
    "MambaSpike", "SpikingMamba",
]  # fmt: skip
