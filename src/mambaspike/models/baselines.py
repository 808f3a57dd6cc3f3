"""Baselines trained by the same harness: Mamba without the spiking front-end, LSTM and GRU.

All three share the non-spiking ``ConvStem`` and the windowing interface (window means, no spike
normalisation), so the comparison isolates the spiking front-end (``mamba``) or the sequence model
(``lstm``, ``gru``). ``forward(frames [T, B, C, H, W]) -> logits [B, classes]`` (or ``x [T, B, F]``
for a 1-D ``input_shape``, through the dense stem). All stream (``step`` / ``finish``).
"""

from __future__ import annotations

import torch
from torch import nn

from mambaspike.ssm.mamba import MambaBackbone
from mambaspike.layers.stem import ConvStem
from mambaspike.layers.interface import SpikeInterface
from mambaspike.layers.head import ClassifierHead
from mambaspike.models.config import ModelConfig
from mambaspike.models.stream import StreamMixin


def _stem_and_interface(cfg: ModelConfig) -> tuple[ConvStem, SpikeInterface]:
    stem = ConvStem(cfg.input_shape[0], cfg.channels, cfg.temporal_pool, cfg.spatial_out, spatial=cfg.spatial)
    feats = stem.out_features
    interface = SpikeInterface(feats, cfg.d_model, cfg.window, cfg.dt_ms * cfg.temporal_pool, rate_norm=False)
    return stem, interface


class MambaBaseline(StreamMixin, nn.Module):
    """``mamba``: ConvStem -> window means -> the same Mamba backbone and head as Mamba-Spike."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.stem, self.interface = _stem_and_interface(cfg)
        self.backbone = MambaBackbone(cfg.mamba_config())
        self.head = ClassifierHead(cfg.d_model, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, _ = self.stem(x)  # (T', B, C, s, s)
        h, _ = self.backbone(self.interface(feats))  # (B, L, D)
        return self.head(h)

    @property
    def front(self):
        return self.stem

    def _seq_step(self, a, state):
        return self.backbone.step(a, state)


def rnn_params(kind: str, d_in: int, hidden: int, layers: int) -> int:
    gates = 4 if kind == "lstm" else 3
    total = 0
    for i in range(layers):
        inp = d_in if i == 0 else hidden
        total += gates * (hidden * inp + hidden * hidden + 2 * hidden)
    return total


def matched_hidden(kind: str, d_in: int, layers: int, target_params: int) -> int:
    """The hidden size whose ``layers``-layer RNN has the parameter count closest to ``target``."""
    return min(range(8, 4 * d_in + 1), key=lambda h: abs(rnn_params(kind, d_in, h, layers) - target_params))


class RNNBaseline(StreamMixin, nn.Module):
    """``lstm`` / ``gru``: ConvStem -> window means -> multi-layer LSTM/GRU -> head.

    The hidden size defaults to the one that matches the Mamba backbone's parameter count.
    """

    def __init__(self, cfg: ModelConfig, kind: str):
        super().__init__()
        self.cfg = cfg
        self.stem, self.interface = _stem_and_interface(cfg)
        if cfg.rnn_hidden is None:
            target = sum(p.numel() for p in MambaBackbone(cfg.mamba_config()).parameters())
            hidden = matched_hidden(kind, cfg.d_model, cfg.n_layers, target)
        else:
            hidden = cfg.rnn_hidden
        rnn_cls = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = rnn_cls(cfg.d_model, hidden, num_layers=cfg.n_layers, batch_first=True)
        self.head = ClassifierHead(hidden, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, _ = self.stem(x)
        h, _ = self.rnn(self.interface(feats))  # (B, L, H)
        return self.head(h)

    @property
    def front(self):
        return self.stem

    def _seq_step(self, a, state):
        h, state = self.rnn(a[:, None], state)  # (B, 1, H)
        return h[:, 0], state
