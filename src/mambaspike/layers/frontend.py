"""The spiking front-end (Mamba-Spike §3.1): spiking convolutions, temporal pooling, recurrence.

Takes time-first frames ``[T, B, C, H, W]`` and returns binary spikes ``[T', B, C', h, w]`` (with
``readout="membrane"``, real-valued membrane potentials: see below) with
``T' = ceil(T / temporal_pool)`` and ``h = w = spatial_out``. With ``spatial=False`` it takes 1-D input
``[T, B, F]`` (F features per bin: Sequential MNIST's pixel, audio channels) and uses dense blocks
(linear -> BatchNorm1d -> LIF) and no spatial pooling: ``[T, B, F] -> [T', B, C']``.

Per block: a spiking convolution (:mod:`mambaspike.layers.blocks`), the last block with a recurrent
connection, spatial max-pooling (binary spikes stay binary); the last block's pooling to
``spatial_out x spatial_out`` is max (binary, the paper) or, with ``readout_pool="avg"``, the mean
spike count of each region, which the interface then counts over time. With ``input_norm="running"``
the input is first divided by the sample's event rate so far (:mod:`mambaspike.layers.input_norm`).
With ``readout="membrane"`` the last block does not spike: its neurons are leaky integrators
(:class:`mambaspike.neurons.LeakyIntegrator`, the same time constant, learnable alike) and the front-end
hands on their membrane potential, pooled in space as ``readout_pool`` says; every block before it spikes,
and the recurrent connection moves to the last spiking block (with the default ``"spikes"``, the last
block). ``current_norm`` is the first block's normalisation of its input current (the block that sees the
event counts): ``"batch"`` (BatchNorm, the paper's), ``"sample"`` (each sample and bin on its own, per
channel over space) or ``"running"`` (per channel over space and the sample's bins so far); the last
two are invariant to a uniform rescaling of the counts (see :mod:`mambaspike.layers.blocks`). Later
blocks, which see spikes, keep BatchNorm. Every block's neurons share ``v_threshold``,
``learn_threshold``, the reset (``soft_reset``, ``detach_reset``) and the surrogate (``surrogate``,
``surrogate_alpha``; see :class:`mambaspike.models.config.FrontEndConfig`).
After the first block (or the block ``temporal_pool_after`` names), temporal max-pooling over windows of
``temporal_pool`` bins (a spike if any bin of the window spiked); the bin width seen by later neurons
grows accordingly, and since time constants are in ms their dynamics stay the same. In inference a dense
(1-D) front-end of LIF or ALIF neurons (or both), pooled after its first block, runs as one compiled
call (:mod:`mambaspike.layers.frontend_fused`); ``forward_reference`` is the block-by-block ground truth,
and the path of training.

``spike_dropout`` (training only) zeroes each block's output spikes with that probability and scales the
rest by ``1 / (1 - p)``, a regulariser that also trains the later blocks on missing spikes; in eval mode
it is the identity (inverted dropout), so inference, streaming and the fused path are unchanged.

Streaming: ``step(x [B, ...], state=None) -> (out | None, state)`` takes one input bin and emits a
pooled output bin every ``temporal_pool`` bins; ``finish(state)`` emits the last incomplete window
(or ``None``), exactly what ``forward`` gives for it.
"""

from __future__ import annotations

import torch
from torch import nn

from mambaspike.layers import frontend_fused
from mambaspike.layers.blocks import INTEGRATOR, READOUTS, SpikingConvBlock, SpikingDenseBlock
from mambaspike.layers.input_norm import RunningCountNorm
from mambaspike.layers.pooling import PooledStream, temporal_pool


class SpikingFrontEnd(PooledStream, nn.Module):
    """Events/frames ``[T, B, C, H, W]`` -> binary spikes ``[T', B, C_last, s, s]``."""

    def __init__(
        self,
        in_channels: int,
        channels=(16, 32, 64),
        dt_ms: float = 1.0,
        tau_ms: float = 30.0,
        v_threshold: float = 1.0,
        learn_tau: bool = True,
        recurrent: bool = True,
        temporal_pool: int = 2,
        temporal_pool_mode: str = "max",
        spatial_out: int = 4,
        neuron: str = "lif",
        spatial: bool = True,
        readout_pool: str = "max",
        input_norm: str = "none",
        current_norm: str = "batch",
        learn_threshold: bool = False,
        soft_reset: bool = False,
        detach_reset: bool = False,
        surrogate: str = "atan",
        surrogate_alpha: float | None = None,
        readout: str = "spikes",
        temporal_pool_after: int = 0,
        spike_dropout: float = 0.0,
    ):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"SpikingFrontEnd: readout must be one of {', '.join(READOUTS)}, got {readout!r}")
        if readout == "membrane" and len(channels) < 2:
            raise ValueError(
                "SpikingFrontEnd: readout='membrane' makes the last block a non-spiking integrator, so it "
                f"needs at least two blocks (channels={tuple(channels)}): expected two or more channel counts"
            )
        if not 0 <= temporal_pool_after < len(channels):
            raise ValueError(
                f"SpikingFrontEnd: temporal_pool_after must name a block, 0..{len(channels) - 1}, "
                f"got {temporal_pool_after}"
            )
        if not 0.0 <= spike_dropout < 1.0:
            raise ValueError(f"SpikingFrontEnd: spike_dropout must be in [0, 1), got {spike_dropout}")
        self.readout = readout
        # training only: each block's output element (spike) zeroed with this probability, the rest
        # scaled by 1 / (1 - p) (inverted dropout), so eval mode, streaming and the fused path see none
        self.dropout = nn.Dropout(spike_dropout) if spike_dropout > 0 else None
        self.pool_after = temporal_pool_after  # the block the temporal pooling follows
        # "running": the input divided by the sample's event rate so far (layers/input_norm.py)
        self.input_norm = RunningCountNorm() if input_norm == "running" else None
        self.temporal_pool = temporal_pool
        self.temporal_pool_mode = temporal_pool_mode
        blocks = []
        c_prev = in_channels
        shared = dict(tau=tau_ms, v_threshold=v_threshold, learn_tau=learn_tau, learn_threshold=learn_threshold)
        shared.update(soft_reset=soft_reset, detach_reset=detach_reset, surrogate=surrogate, alpha=surrogate_alpha)
        # the recurrent connection sits on the last spiking block: the last block, or with the membrane
        # readout (the last block integrates without spiking) the one before it
        last_spiking = len(channels) - (2 if readout == "membrane" else 1)
        for i, c in enumerate(channels):
            last = i == len(channels) - 1
            lif_kwargs = dict(shared, dt=dt_ms * (temporal_pool if i > temporal_pool_after else 1))
            rec = recurrent and i == last_spiking
            kind = INTEGRATOR if last and readout == "membrane" else neuron
            norm = current_norm if i == 0 else "batch"
            if spatial:
                readout_cls = nn.AdaptiveAvgPool2d if readout_pool == "avg" else nn.AdaptiveMaxPool2d
                pool = readout_cls(spatial_out) if last else nn.MaxPool2d(2)
                blocks.append(SpikingConvBlock(c_prev, c, lif_kwargs, rec, pool, kind, norm))
            else:
                blocks.append(SpikingDenseBlock(c_prev, c, lif_kwargs, rec, kind, norm))
            c_prev = c
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = c_prev
        self.out_features = c_prev * spatial_out**2 if spatial else c_prev  # per output bin
        self.out_bin_ms = dt_ms * temporal_pool
        self._pool_mode = temporal_pool_mode
        self.spatial = spatial

    def forward(self, x: torch.Tensor, state=None):
        """``(spikes [T', B, ...], per-block states)``. Dense stacks in inference take the fused kernel
        (:mod:`mambaspike.layers.frontend_fused`) where it applies, else :meth:`forward_reference`;
        both give the same spikes and states."""
        if not self.spatial and self.input_norm is None:
            if frontend_fused.unsupported(self, x, state) is None:
                return frontend_fused.forward(self, x, state)
        return self.forward_reference(x, state)

    def forward_reference(self, x: torch.Tensor, state=None):
        """Block by block (the ground truth of the fused path, and the path of training). With an input
        normalisation the first state is ``(normalisation state, block 0 state)``."""
        states = []
        for i, block in enumerate(self.blocks):
            s_in = None if state is None else state[i]
            if i == 0:
                x, s = self._block0(x, s_in)
            else:
                x, s = block(x, s_in)
            states.append(s)
            if i == self.pool_after:
                x = temporal_pool(x, self.temporal_pool, self.temporal_pool_mode)
            if self.dropout is not None and self.training:
                x = self.dropout(x)
        return x, states

    def _block0(self, x, s):
        if self.input_norm is None:
            return self.blocks[0](x, s)
        s_norm, s_block = s if s is not None else (None, None)
        x, s_norm = self.input_norm(x, s_norm)
        y, s_block = self.blocks[0](x, s_block)
        return y, (s_norm, s_block)

    def _first(self, x, s):
        """The blocks up to the temporal pooling, on one input bin (streaming): block 0's state, or with
        ``pool_after > 0`` the list of those blocks' states."""
        if self.pool_after == 0:
            return self._block0(x, s)
        x, s0 = self._block0(x, None if s is None else s[0])
        states = [s0]
        for i in range(1, self.pool_after + 1):
            x, si = self.blocks[i](x, None if s is None else s[i])
            states.append(si)
        return x, states

    def _rest(self, x, states):
        out = []
        for i, block in enumerate(self.blocks[self.pool_after + 1 :]):
            x, s = block(x, None if states is None else states[i])
            out.append(s)
        return x, out
