"""Mamba-Spike (Qin & Liu, arXiv 2408.11823): SpikingFrontEnd -> SpikeInterface -> Mamba -> head.

``forward(frames [T, B, C, H, W]) -> logits [B, num_classes]``; with a 1-D ``input_shape = (F,)``
(Sequential MNIST, audio) ``forward(x [T, B, F])`` through dense spiking layers. Streams one bin at a
time through ``step`` / ``finish`` (see :mod:`mambaspike.models.stream`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..errors import ConfigError
from ..ssm.mamba import MambaBackbone, MambaConfig
from .frontend import SpikingFrontEnd
from .interface import SpikeInterface
from .stream import StreamMixin


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model of any registered family (saved with checkpoints)."""

    name: str = "mambaspike"
    input_shape: tuple = (2, 34, 34)  # (C, H, W) of one time bin, or (F,) features per bin
    num_classes: int = 10
    dt_ms: float = 5.0  # bin width of the input frames
    # front-end / stem
    channels: tuple = (16, 32, 64)
    neuron: str = "lif"  # a name in mambaspike.neurons.NEURONS
    tau_ms: float = 30.0
    v_threshold: float = 1.0
    learn_tau: bool = True
    recurrent: bool = True
    temporal_pool: int = 2
    temporal_pool_mode: str = "max"
    spatial_out: int = 4
    # interface
    window: int = 2
    rate_norm: bool = True
    # backbone
    d_model: int = 128
    n_layers: int = 2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    scan_backend: str = "auto"  # see mambaspike.ssm.scan.BACKENDS
    # recurrent baselines (None: matched to the Mamba backbone's parameter count)
    rnn_hidden: int | None = None
    # Spiking Mamba / Transformer (models "spiking-mamba", "spiking-hybrid"; Miao §4). Shares
    # d_state (state size N) and expand (E = expand * D) with the Mamba backbone above.
    pattern: str | None = None  # blocks in order, "M" Mamba / "T" attention; None: "MM" / "MT" by family
    embed_dim: int = 64  # D, the token embedding size
    time_steps: int = 4  # T over which static images (T = 1 input) are encoded
    input_encoding: str = "rate"  # static images: rate | latency | direct (paper's default: rate)
    patch_blocks: int = 2
    patch_channels: int | None = None  # first patch block's channels (Table 1/2 "channels"); None: D / 2^(blocks-1)
    patch_rpe: bool = True  # Spikformer-style position-embedding conv after the patch generator
    conv_layers: int = 1
    mlp_layers: int = 1
    shortcut: str = "sew"  # sew | membrane
    attn_heads: int = 8
    spike_loss: str = "rate"  # rate (CE per step, summed) | count (CE on spike counts)
    spiking_scan_backend: str = "parallel"  # parallel | reference
    extra: dict = field(default_factory=dict)

    def mamba_config(self) -> MambaConfig:
        return MambaConfig(
            d_model=self.d_model,
            n_layers=self.n_layers,
            d_state=self.d_state,
            d_conv=self.d_conv,
            expand=self.expand,
            scan_backend=self.scan_backend,
        )

    @property
    def spatial(self) -> bool:
        """True for frames ``(C, H, W)``, False for 1-D input ``(F,)``."""
        if len(self.input_shape) == 3:
            return True
        if len(self.input_shape) == 1:
            return False
        raise ConfigError(
            f"ModelConfig.input_shape: expected (C, H, W) frames or (F,) features per bin, got {tuple(self.input_shape)}"
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        for k in ("input_shape", "channels"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


class ClassifierHead(nn.Module):
    """Pool over time (mean), LayerNorm, linear. ``[B, L, D] -> [B, classes]``."""

    def __init__(self, d_model: int, num_classes: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean(dim=1)))

    def from_sum(self, h_sum: torch.Tensor, n: int) -> torch.Tensor:
        """Streaming: logits from the running sum ``[B, D]`` of ``n`` steps' features."""
        return self.fc(self.norm(h_sum / n))


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
