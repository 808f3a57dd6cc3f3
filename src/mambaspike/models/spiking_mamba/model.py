"""Spiking Mamba / Transformer (Miao, §4): a fully spiking vision model.

``forward(x [T_in, B, C, H, W]) -> output spikes [T, B, classes]``::

    encode (static images, T_in = 1: rate / latency / direct over ``time_steps`` steps;
            event frames, T_in > 1, pass through unchanged)
    -> SpikingPatchGenerator                [T, B, L, D]
    -> blocks from ``pattern`` ("M": SpikingMambaBlock, "T": SpikingSelfAttentionBlock)
    -> mean over tokens -> Linear -> BN -> LIF     [T, B, classes] spikes

Decoding (:meth:`SpikingMamba.decode`): spike counts per class, ``[B, classes]``; the prediction is
the class with most output spikes. Losses (:meth:`SpikingMamba.loss`, chosen by ``spike_loss``):
``"rate"`` (the paper's default, "cross-entropy spike rate"): cross-entropy of each step's output
spikes, summed over steps; ``"count"``: cross-entropy of the spike counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mambaspike.neurons import encoding
from mambaspike.errors import ConfigError
from mambaspike.models.spiking_mamba.layers import ChannelNorm, SpikingMambaBlock, SpikingPatchGenerator, SpikingSelfAttentionBlock, lif, spikes

ENCODINGS = ("rate", "latency", "direct")
SPIKE_LOSSES = ("rate", "count")
FAMILY_PATTERNS = {"spiking-mamba": "MM", "spiking-hybrid": "MT"}
EVAL_ENCODING_SEED = 0  # rate coding in eval mode draws from this seed, so evaluation is repeatable


def spike_rate_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every step's output ``out [T, B, classes]`` against ``target [B]``, summed over
    the T steps (mean over the batch)."""
    T = out.shape[0]
    return F.cross_entropy(out.flatten(0, 1), target.repeat(T), reduction="sum") / target.shape[0]


def spike_count_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the spike counts ``out.sum(0) [B, classes]`` (mean over the batch)."""
    return F.cross_entropy(out.sum(0), target)


def spike_count_decode(out: torch.Tensor) -> torch.Tensor:
    """Spike counts per class, ``[T, B, classes] -> [B, classes]`` (argmax: most spikes)."""
    return out.sum(0)


def patch_widths(embed_dim: int, blocks: int, first: int | None = None) -> tuple[int, ...]:
    """Channels of the patch generator's blocks: block i of L outputs ``embed_dim / 2^(L-1-i)`` (§4.4),
    the last one ``embed_dim``; ``first`` (Table 1/2's "channels"), when given, sets block 0's."""
    widths = [max(1, embed_dim // 2 ** (blocks - 1 - i)) for i in range(blocks)]
    if first is not None and blocks > 1:
        widths[0] = first
    return tuple(widths)


def encode_static(x: torch.Tensor, T: int, method: str, training: bool) -> torch.Tensor:
    """``x [1, B, C, H, W]`` in [0, 1] -> ``[T, B, C, H, W]`` by ``method`` (see ``ENCODINGS``)."""
    img = x[0]
    if method == "rate":
        g = None if training else torch.Generator(device=img.device).manual_seed(EVAL_ENCODING_SEED)
        return encoding.rate(img, T, generator=g)
    if method == "latency":
        return encoding.latency(img, T)
    return img.expand(T, *img.shape)  # direct: the same analogue input at every step


class SpikingMamba(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        pattern = FAMILY_PATTERNS.get(cfg.name, "MM") if cfg.pattern is None else cfg.pattern
        if not isinstance(pattern, str) or not pattern or set(pattern) - {"M", "T"}:
            raise ConfigError(f"pattern must be a non-empty string of 'M' (Mamba) and 'T' (attention), got {pattern!r}")
        if cfg.input_encoding not in ENCODINGS:
            raise ConfigError(f"input_encoding must be one of {ENCODINGS}, got {cfg.input_encoding!r}")
        if cfg.spike_loss not in SPIKE_LOSSES:
            raise ConfigError(f"spike_loss must be one of {SPIKE_LOSSES}, got {cfg.spike_loss!r}")
        for field in ("embed_dim", "time_steps", "patch_blocks", "d_state", "expand", "attn_heads"):
            v = getattr(cfg, field)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{field} must be a positive integer, got {v!r}")
        if "T" in pattern and cfg.embed_dim % cfg.attn_heads:
            raise ConfigError(f"embed_dim ({cfg.embed_dim}) must be divisible by attn_heads ({cfg.attn_heads})")
        self.cfg = cfg
        self.pattern = pattern
        d = cfg.embed_dim
        self.patches = SpikingPatchGenerator(
            cfg.input_shape[0], patch_widths(d, cfg.patch_blocks, cfg.patch_channels), rpe=cfg.patch_rpe
        )
        self.blocks = nn.ModuleList(
            SpikingMambaBlock(d, cfg.d_state, cfg.expand, cfg.conv_layers, cfg.mlp_layers, cfg.shortcut,
                              cfg.spiking_scan_backend)  # fmt: skip
            if kind == "M"
            else SpikingSelfAttentionBlock(d, cfg.attn_heads)
            for kind in pattern
        )
        self.head = nn.Linear(d, cfg.num_classes, bias=False)
        self.head_norm = ChannelNorm(cfg.num_classes)
        self.head_lif = lif()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Static images ``[1, B, C, H, W]`` -> ``[time_steps, B, C, H, W]``; event frames unchanged."""
        if x.dim() != 5:
            raise ConfigError(f"spiking-mamba expects input [T, B, C, H, W], got shape {tuple(x.shape)}")
        if x.shape[0] == 1 and self.cfg.time_steps > 1:
            return encode_static(x, self.cfg.time_steps, self.cfg.input_encoding, self.training)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.patches(self.encode(x))  # (T, B, L, D)
        for block in self.blocks:
            h = block(h)  # (T, B, L, D)
        return spikes(self.head_lif, self.head_norm(self.head(h.mean(2))))  # (T, B, classes)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (spike_rate_loss if self.cfg.spike_loss == "rate" else spike_count_loss)(output, target)

    def decode(self, output: torch.Tensor) -> torch.Tensor:
        return spike_count_decode(output)
