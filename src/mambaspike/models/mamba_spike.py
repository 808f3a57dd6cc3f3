"""Mamba-Spike (Qin & Liu, arXiv 2408.11823): SpikingFrontEnd -> SpikeInterface -> Mamba -> head.

``forward(frames [T, B, C, H, W]) -> logits [B, num_classes]``; with a 1-D ``input_shape = (F,)``
(Sequential MNIST, audio) ``forward(x [T, B, F])`` through dense spiking layers. Streams one bin at a
time through ``step`` / ``finish`` (see :mod:`mambaspike.models.stream`).
"""

from __future__ import annotations

import torch
from torch import nn

from mambaspike.layers.frontend import SpikingFrontEnd
from mambaspike.layers.head import ClassifierHead
from mambaspike.layers.interface import SpikeInterface
from mambaspike.models.config import MambaSpikeConfig, ModelConfig, as_family_config
from mambaspike.models.stream import StreamMixin
from mambaspike.ssm.mamba import MambaBackbone


class MambaSpike(StreamMixin, nn.Module):
    """Mamba-Spike built from a :class:`MambaSpikeConfig` (or a ``ModelConfig(name="mambaspike")``);
    ``self.cfg`` is the typed config."""

    def __init__(self, cfg: MambaSpikeConfig | ModelConfig):
        super().__init__()
        cfg = as_family_config(cfg, MambaSpikeConfig, ("mambaspike",))
        self.cfg = cfg
        fe, bb = cfg.frontend, cfg.backbone
        self.frontend = SpikingFrontEnd(
            cfg.input_shape[0],
            fe.channels,
            dt_ms=cfg.dt_ms,
            tau_ms=fe.tau_ms,
            v_threshold=fe.v_threshold,
            learn_tau=fe.learn_tau,
            recurrent=fe.recurrent,
            temporal_pool=fe.temporal_pool,
            temporal_pool_mode=fe.temporal_pool_mode,
            spatial_out=fe.spatial_out,
            neuron=fe.neuron,
            spatial=cfg.spatial,
            readout_pool=fe.readout_pool,
            input_norm=fe.input_norm,
            current_norm=fe.current_norm,
            learn_threshold=fe.learn_threshold,
            soft_reset=fe.soft_reset,
            detach_reset=fe.detach_reset,
            surrogate=fe.surrogate,
            surrogate_alpha=fe.surrogate_alpha,
            readout=fe.readout,
            temporal_pool_after=fe.temporal_pool_after,
            spike_dropout=fe.spike_dropout,
        )
        self.interface = SpikeInterface(
            self.frontend.out_features,
            bb.d_model,
            cfg.interface.window,
            self.frontend.out_bin_ms,
            rate_norm=cfg.interface.rate_norm,
            min_rate=cfg.interface.rate_floor,
        )
        self.backbone = MambaBackbone(bb.mamba_config())
        self.head = ClassifierHead(bb.d_model, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, _ = self.frontend(x)  # (T', B, C, s, s) binary
        seq = self.interface(spikes)  # (B, L, D)
        h, _ = self.backbone(seq)  # (B, L, D)
        return self.head(h)  # (B, classes)

    @property
    def front(self):
        """The stage :class:`~mambaspike.models.stream.StreamMixin` streams first (the spiking front-end)."""
        return self.frontend

    def _seq_step(self, a, state):
        return self.backbone.step(a, state)
