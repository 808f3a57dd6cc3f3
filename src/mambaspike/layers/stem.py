"""The baselines' non-spiking stem: the front-end's convolutions and pooling with ReLU in place of LIF."""

from __future__ import annotations

import torch
from torch import nn

from mambaspike.layers.pooling import PooledStream, per_bin, temporal_pool


class ConvStem(PooledStream, nn.Module):
    """The baselines' non-spiking stem: same convolutions and pooling as ``SpikingFrontEnd`` with ReLU
    in place of LIF neurons and no recurrence (the sequence model after it handles time).
    ``[T, B, C, H, W] -> [T', B, C_last, s, s]`` real-valued (temporal average-pooling); with
    ``spatial=False`` dense layers, ``[T, B, F] -> [T', B, C_last]``."""

    def __init__(
        self,
        in_channels: int,
        channels=(16, 32, 64),
        temporal_pool: int = 2,
        spatial_out: int = 4,
        spatial: bool = True,
    ):
        super().__init__()
        layers = []
        c_prev = in_channels
        for i, c in enumerate(channels):
            last = i == len(channels) - 1
            if spatial:
                layer = [
                    nn.Conv2d(c_prev, c, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(),
                    nn.AdaptiveMaxPool2d(spatial_out) if last else nn.MaxPool2d(2),
                ]
            else:
                layer = [nn.Linear(c_prev, c, bias=False), nn.BatchNorm1d(c), nn.ReLU()]
            layers.append(nn.Sequential(*layer))
            c_prev = c
        self.layers = nn.ModuleList(layers)
        self.temporal_pool = temporal_pool
        self.out_channels = c_prev
        self.out_features = c_prev * spatial_out**2 if spatial else c_prev
        self._pool_mode = "avg"

    def _first(self, x, s):
        return per_bin(self.layers[0], x), None

    def _rest(self, x, states):
        for layer in self.layers[1:]:
            x = per_bin(layer, x)
        return x, None

    def forward(self, x: torch.Tensor, state=None):
        for i, layer in enumerate(self.layers):
            x = per_bin(layer, x)
            if i == 0:
                x = temporal_pool(x, self.temporal_pool, "avg")
        return x, None
