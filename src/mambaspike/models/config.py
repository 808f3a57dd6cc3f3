"""Model configuration: everything needed to rebuild a model of any registered family."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mambaspike.errors import ConfigError
from mambaspike.ssm.mamba import MambaConfig


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
