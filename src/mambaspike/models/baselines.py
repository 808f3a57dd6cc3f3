"""Baselines trained by the same harness: Mamba without the spiking front-end, LSTM and GRU.

All three share the non-spiking ``ConvStem`` and the windowing interface (window means, no spike
normalisation), so the comparison isolates the spiking front-end (``mamba``) or the sequence model
(``lstm``, ``gru``). ``forward(frames [T, B, C, H, W]) -> logits [B, classes]`` (or ``x [T, B, F]``
for a 1-D ``input_shape``, through the dense stem). All stream (``step`` / ``finish``).
"""

from __future__ import annotations

import torch
from torch import nn

from mambaspike.layers.head import ClassifierHead
from mambaspike.layers.interface import SpikeInterface
from mambaspike.layers.stem import ConvStem
from mambaspike.models.config import MambaBaselineConfig, ModelConfig, RNNBaselineConfig, as_family_config
from mambaspike.models.stream import StreamMixin
from mambaspike.ssm.mamba import MambaBackbone


def _stem_and_interface(cfg: MambaBaselineConfig | RNNBaselineConfig) -> tuple[ConvStem, SpikeInterface]:
    st = cfg.stem
    stem = ConvStem(cfg.input_shape[0], st.channels, st.temporal_pool, st.spatial_out, spatial=cfg.spatial)
    interface = SpikeInterface(
        stem.out_features, cfg.backbone.d_model, cfg.window, cfg.dt_ms * st.temporal_pool, rate_norm=False
    )
    return stem, interface


class MambaBaseline(StreamMixin, nn.Module):
    """``mamba``: ConvStem -> window means -> the same Mamba backbone and head as Mamba-Spike. Built from a
    :class:`MambaBaselineConfig` (or a ``ModelConfig(name="mamba")``); ``self.cfg`` is the typed config."""

    def __init__(self, cfg: MambaBaselineConfig | ModelConfig):
        super().__init__()
        cfg = as_family_config(cfg, MambaBaselineConfig, ("mamba",))
        self.cfg = cfg
        self.stem, self.interface = _stem_and_interface(cfg)
        self.backbone = MambaBackbone(cfg.backbone.mamba_config())
        self.head = ClassifierHead(cfg.backbone.d_model, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, _ = self.stem(x)  # (T', B, C, s, s)
        h, _ = self.backbone(self.interface(feats))  # (B, L, D)
        return self.head(h)

    @property
    def front(self):
        """The stage :class:`~mambaspike.models.stream.StreamMixin` streams first (the stem)."""
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
    """``lstm`` / ``gru``: ConvStem -> window means -> multi-layer LSTM/GRU -> head. Built from an
    :class:`RNNBaselineConfig` (or a ``ModelConfig(name="lstm" | "gru")``); ``self.cfg`` is the typed config.

    The hidden size defaults to the one that matches the Mamba backbone's parameter count.
    """

    def __init__(self, cfg: RNNBaselineConfig | ModelConfig):
        super().__init__()
        cfg = as_family_config(cfg, RNNBaselineConfig, ("lstm", "gru"))
        self.cfg = cfg
        bb = cfg.backbone
        self.stem, self.interface = _stem_and_interface(cfg)
        if cfg.hidden is None:
            target = sum(p.numel() for p in MambaBackbone(bb.mamba_config()).parameters())
            hidden = matched_hidden(cfg.kind, bb.d_model, bb.n_layers, target)
        else:
            hidden = cfg.hidden
        rnn_cls = nn.LSTM if cfg.kind == "lstm" else nn.GRU
        self.rnn = rnn_cls(bb.d_model, hidden, num_layers=bb.n_layers, batch_first=True)
        self.head = ClassifierHead(hidden, cfg.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, _ = self.stem(x)
        h, _ = self.rnn(self.interface(feats))  # (B, L, H)
        return self.head(h)

    @property
    def front(self):
        """The stage :class:`~mambaspike.models.stream.StreamMixin` streams first (the stem)."""
        return self.stem

    def _seq_step(self, a, state):
        h, state = self.rnn(a[:, None], state)  # (B, 1, H)
        return h[:, 0], state
