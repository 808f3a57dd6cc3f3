"""Model registry: every family is built from one ``ModelConfig`` by name.

>>> model = build_model(ModelConfig(name="gru"))
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from .baselines import MambaBaseline, RNNBaseline
from .mamba_spike import MambaSpike, ModelConfig

MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    "mambaspike": MambaSpike,
    "mamba": MambaBaseline,
    "lstm": lambda cfg: RNNBaseline(cfg, "lstm"),
    "gru": lambda cfg: RNNBaseline(cfg, "gru"),
}

DESCRIPTIONS = {
    "mambaspike": "Mamba-Spike: spiking front-end (LIF conv, recurrent, temporal pooling) + interface + Mamba",
    "mamba": "baseline: the same Mamba backbone after a non-spiking conv stem",
    "lstm": "baseline: LSTM after the non-spiking conv stem (parameters matched to the Mamba backbone)",
    "gru": "baseline: GRU after the non-spiking conv stem (parameters matched to the Mamba backbone)",
}


def model_names() -> list[str]:
    return list(MODELS)


def build_model(cfg: ModelConfig) -> nn.Module:
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model {cfg.name!r}; available: {', '.join(MODELS)}")
    return MODELS[cfg.name](cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODELS", "ModelConfig", "build_model", "model_names", "count_parameters", "MambaSpike"]
