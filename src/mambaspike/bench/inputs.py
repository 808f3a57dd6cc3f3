"""Benchmark inputs: the shapes the recipes feed the models (random content, fixed seed)."""

from __future__ import annotations

import torch

from mambaspike.models.config import ModelConfig

# name -> (ModelConfig overrides, T): the N-MNIST recipe (300 ms in 10 ms bins of [2, 34, 34] event
# counts), Sequential MNIST (784 steps of one pixel), and DVS-Motion's recipes (1.5 s in 75 ms bins of
# [2, 128, 128] counts, DVS Gesture's shape; the CPU recipe's [2, 32, 32]).
INPUTS = {
    "nmnist": (dict(input_shape=(2, 34, 34), dt_ms=10.0), 30),
    "dvs-motion": (dict(input_shape=(2, 128, 128), dt_ms=75.0), 20),
    "dvs-motion-32": (dict(input_shape=(2, 32, 32), dt_ms=75.0), 20),
    "smnist": (dict(input_shape=(1,), dt_ms=1.0), 784),
}


def bench_config(model: str, input_name: str, **overrides) -> tuple[ModelConfig, int]:
    cfg_kw, T = INPUTS[input_name]
    return ModelConfig(name=model, **{**cfg_kw, **overrides}), T


def bench_input(cfg: ModelConfig, T: int, batch: int, seed: int = 0) -> torch.Tensor:
    """``[T, batch, *input_shape]``: event counts (frames) or pixel intensities in [0, 1] (1-D)."""
    g = torch.Generator().manual_seed(seed)
    shape = (T, batch, *cfg.input_shape)
    if len(cfg.input_shape) == 3:
        return torch.poisson(torch.full(shape, 0.1), generator=g)
    return torch.rand(shape, generator=g)
