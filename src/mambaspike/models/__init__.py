"""Model families (Mamba-Spike, baselines, Spiking Mamba), their typed configs and the registry that builds them."""

from mambaspike.models.baselines import MambaBaseline, RNNBaseline
from mambaspike.models.config import (
    BackboneConfig,
    FrontEndConfig,
    InterfaceConfig,
    MambaBaselineConfig,
    MambaSpikeConfig,
    ModelConfig,
    RNNBaselineConfig,
    SpikingMambaConfig,
    StemConfig,
)
from mambaspike.models.mamba_spike import MambaSpike
from mambaspike.models.registry import DESCRIPTIONS, build_model, count_parameters, loss_and_scores, model_names
from mambaspike.models.spiking_mamba.model import SpikingMamba

__all__ = [
    "BackboneConfig",
    "DESCRIPTIONS",
    "FrontEndConfig",
    "InterfaceConfig",
    "MambaBaseline",
    "MambaBaselineConfig",
    "MambaSpike",
    "MambaSpikeConfig",
    "ModelConfig",
    "RNNBaseline",
    "RNNBaselineConfig",
    "SpikingMamba",
    "SpikingMambaConfig",
    "StemConfig",
    "build_model",
    "count_parameters",
    "loss_and_scores",
    "model_names",
]
