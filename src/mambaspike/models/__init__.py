"""Model families (Mamba-Spike, baselines, Spiking Mamba), their configs and the registry that builds them."""

from mambaspike.models.registry import (
    DESCRIPTIONS,
    build_model,
    count_parameters,
    model_loss,
    model_names,
    model_scores,
)
