"""Model registry: every family by name, built from its typed config or from the flat ``ModelConfig``.

>>> model = build_model(ModelConfig(name="gru"))
>>> model = build_model(MambaSpikeConfig(input_shape=(2, 34, 34), num_classes=10, dt_ms=5.0))

Every model's ``forward(x)`` returns logits ``[B, classes]``. :func:`loss_and_scores` is the training
loss the harness uses: cross-entropy on the logits, or a spiking model's own loss on its spike train.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mambaspike.errors import ConfigError
from mambaspike.models.baselines import MambaBaseline, RNNBaseline
from mambaspike.models.config import FAMILIES, ModelConfig
from mambaspike.models.mamba_spike import MambaSpike
from mambaspike.models.spiking_mamba.model import SpikingMamba

MODELS: dict[str, type[nn.Module]] = {
    "mambaspike": MambaSpike,
    "mamba": MambaBaseline,
    "lstm": RNNBaseline,
    "gru": RNNBaseline,
    "spiking-mamba": SpikingMamba,
    "spiking-hybrid": SpikingMamba,
}
assert set(MODELS) == set(FAMILIES), "every family has a config (models.config.FAMILIES) and a model"

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


def build_model(cfg) -> nn.Module:
    """The model of ``cfg``: a :class:`ModelConfig` (by its ``name``) or a family's typed config."""
    if not isinstance(cfg, ModelConfig):
        if not any(isinstance(cfg, cls) for cls, _ in FAMILIES.values()):
            raise ConfigError(f"build_model: expected a ModelConfig or a family's config, got {type(cfg).__name__}")
        return MODELS[ModelConfig.from_family(cfg).name](cfg)
    return MODELS[cfg.name](cfg)


def loss_and_scores(model: nn.Module, x: torch.Tensor, target: torch.Tensor, net: nn.Module | None = None):
    """``(loss, scores [B, classes])`` of one batch ``x``, ``target [B]``, through ``net`` (``model`` or
    its DistributedDataParallel wrapper; default ``model``).

    Cross-entropy on the logits ``net(x)``. A model with a training loss of its own (the spiking models:
    the paper's spike-count or spike-rate loss) defines ``loss(spike_train, target)`` and
    ``decode(spike_train) -> scores`` and returns its spike train from ``forward(x, return_spikes=True)``.
    """
    net = model if net is None else net
    if callable(getattr(model, "loss", None)):
        train = net(x, return_spikes=True)  # (T, B, classes)
        return model.loss(train, target), model.decode(train)
    logits = net(x)  # (B, classes)
    return F.cross_entropy(logits, target), logits


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "DESCRIPTIONS",
    "MODELS",
    "ModelConfig",
    "MambaSpike",
    "SpikingMamba",
    "build_model",
    "count_parameters",
    "loss_and_scores",
    "model_names",
]
