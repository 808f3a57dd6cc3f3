"""Spiking Mamba / Transformer (Miao, §4): a fully spiking vision model.

``forward(x [T_in, B, C, H, W]) -> logits [B, classes]``, the output spike counts;
``spike_train(x) -> [T, B, classes]``, the output spikes they count::

    encode (static images, T_in = 1: rate / latency / direct over ``time_steps`` steps;
            event frames, T_in > 1, pass through unchanged)
    -> SpikingPatchGenerator                [T, B, L, D]
    -> blocks from ``pattern`` ("M": SpikingMambaBlock, "T": SpikingSelfAttentionBlock)
    -> mean over tokens -> Linear -> BN -> LIF     [T, B, classes] spikes
    -> sum over steps                              [B, classes] spike counts (the class scores)

The prediction is the class with most output spikes. The paper's losses (:meth:`SpikingMamba.loss`
on the spike train, chosen by ``spike_loss``): ``"rate"`` (the paper's default, "cross-entropy spike
rate"): cross-entropy of each step's output spikes, summed over steps; ``"count"``: cross-entropy of
the spike counts, which is ``F.cross_entropy(model(x), y)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mambaspike.errors import ConfigError
from mambaspike.models.config import FAMILY_PATTERNS, ModelConfig, SpikingMambaConfig, as_family_config
from mambaspike.models.spiking_mamba.layers import (
    ChannelNorm,
    SpikingMambaBlock,
    SpikingPatchGenerator,
    SpikingSelfAttentionBlock,
    lif,
    spikes,
)
from mambaspike.neurons import encoding

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
    """``x [1, B, C, H, W]`` in [0, 1] -> ``[T, B, C, H, W]`` by ``method`` (one of ``models.config.ENCODINGS``)."""
    img = x[0]
    if method == "rate":
        g = None if training else torch.Generator(device=img.device).manual_seed(EVAL_ENCODING_SEED)
        return encoding.rate(img, T, generator=g)
    if method == "latency":
        return encoding.latency(img, T)
    return img.expand(T, *img.shape)  # direct: the same analogue input at every step


class SpikingMamba(nn.Module):
    """Spiking Mamba / hybrid built from a :class:`SpikingMambaConfig` (or a ``ModelConfig`` of
    ``spiking-mamba`` / ``spiking-hybrid``); ``self.cfg`` is the typed config."""

    def __init__(self, cfg: SpikingMambaConfig | ModelConfig):
        super().__init__()
        cfg = as_family_config(cfg, SpikingMambaConfig, tuple(FAMILY_PATTERNS))
        self.cfg = cfg
        self.pattern = cfg.pattern
        d = cfg.embed_dim
        self.patches = SpikingPatchGenerator(
            cfg.input_shape[0], patch_widths(d, cfg.patch_blocks, cfg.patch_channels), rpe=cfg.patch_rpe
        )
        self.blocks = nn.ModuleList(
            SpikingMambaBlock(
                d, cfg.d_state, cfg.expand, cfg.conv_layers, cfg.mlp_layers, cfg.shortcut, cfg.scan_backend
            )
            if kind == "M"
            else SpikingSelfAttentionBlock(d, cfg.attn_heads)
            for kind in cfg.pattern
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

    def forward(self, x: torch.Tensor, return_spikes: bool = False) -> torch.Tensor:
        """Logits ``[B, classes]``: the output spike counts of ``x [T_in, B, C, H, W]``. With
        ``return_spikes`` the output spike train ``[T, B, classes]`` instead (what :meth:`loss` takes)."""
        h = self.patches(self.encode(x))  # (T, B, L, D)
        for block in self.blocks:
            h = block(h)  # (T, B, L, D)
        out = spikes(self.head_lif, self.head_norm(self.head(h.mean(2))))  # (T, B, classes)
        return out if return_spikes else spike_count_decode(out)  # (B, classes)

    def spike_train(self, x: torch.Tensor) -> torch.Tensor:
        """The output spikes ``[T, B, classes]`` of ``x`` (``forward`` returns their counts)."""
        return self(x, return_spikes=True)

    def loss(self, spike_train: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The paper's training loss (``cfg.spike_loss``) of an output spike train ``[T, B, classes]``."""
        return (spike_rate_loss if self.cfg.spike_loss == "rate" else spike_count_loss)(spike_train, target)

    def decode(self, spike_train: torch.Tensor) -> torch.Tensor:
        """Class scores ``[B, classes]`` of a spike train: the spike counts (what ``forward`` returns)."""
        return spike_count_decode(spike_train)
