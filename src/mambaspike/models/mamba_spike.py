"""Mamba-Spike (Qin & Liu, arXiv 2408.11823): SpikingFrontEnd -> SpikeInterface -> Mamba -> head.

``forward(frames [T, B, C, H, W]) -> logits [B, num_classes]``; with a 1-D ``input_shape = (F,)``
(Sequential MNIST, audio) ``forward(x [T, B, F])`` through dense spiking layers. Streams one bin at a
time through ``step`` / ``finish`` (see :mod:`mambaspike.models.stream`).
"""

from __future__ import annotations


import torch
from torch import nn

from mambaspike.ssm.mamba import MambaBackbone
from mambaspike.layers.frontend import SpikingFrontEnd
from mambaspike.layers.head import ClassifierHead
from mambaspike.layers.interface import SpikeInterface
from mambaspike.models.config import ModelConfig
from mambaspike.models.stream import StreamMixin


class MambaSpike(StreamMixin, nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.input_shape[0]
        self.frontend = SpikingFrontEnd(
            c,
            cfg.channels,
            dt_ms=cfg.dt_ms,
            tau_ms=cfg.tau_ms,
            v_threshold=cfg.v_threshold,
            learn_tau=cfg.learn_tau,
            recurrent=cfg.recurrent,
            temporal_pool=cfg.temporal_pool,
            temporal_pool_mode=cfg.temporal_pool_mode,
            spatial_out=cfg.spatial_out,
            neuron=cfg.neuron,
            spatial=cfg.spatial,
        )
        feats = self.frontend.out_features
        self.interface = SpikeInterface(feats, cfg.d_model, cfg.window, self.frontend.out_bin_ms, rate_norm=cfg.rate_norm)
        self.backbone = MambaBackbone(cfg.mamba_config())
        self.head = ClassifierHead(cfg.d_model, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, _ = self.frontend(x)  # (T', B, C, s, s) binary
        seq = self.interface(spikes)  # (B, L, D)
        h, _ = self.backbone(seq)  # (B, L, D)
        return self.head(h)  # (B, classes)

    @property
    def front(self):
        return self.frontend

    def _seq_step(self, a, state):
        return self.backbone.step(a, state)
