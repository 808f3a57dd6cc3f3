"""The spiking front-end (Mamba-Spike §3.1) and the non-spiking conv stem of the baselines.

Both take time-first frames ``[T, B, C, H, W]`` and return time-first features
``[T', B, C', h, w]`` with ``T' = ceil(T / temporal_pool)`` and ``h = w = spatial_out``. With
``spatial=False`` they take 1-D input ``[T, B, F]`` (F features per bin: Sequential MNIST's pixel,
audio channels) and use dense layers (linear -> BatchNorm1d -> LIF / ReLU) in place of convolutions
and no spatial pooling: ``[T, B, F] -> [T', B, C']``.

Streaming: ``step(x [B, ...], state=None) -> (out | None, state)`` takes one input bin and emits a
pooled output bin every ``temporal_pool`` bins; ``finish(state)`` emits the last incomplete window
(or ``None``), exactly what ``forward`` gives for it.

SpikingFrontEnd, per block: spiking convolution (conv 3x3 -> BatchNorm -> LIF), the last block with
a recurrent connection (a 1x1 convolution of the block's own spikes at t-1 added to its input current
at t; the whole sequence runs through the compiled recurrent LIF of :mod:`mambaspike.recurrent_lif`
where it applies, else a loop over bins), spatial max-pooling (binary spikes stay binary). After the
first block, temporal max-pooling over windows of ``temporal_pool`` bins (a spike if any bin of the
window spiked); the bin width seen by later neurons grows accordingly, and since time constants are
in ms their dynamics stay the same. In inference a dense (1-D) front-end of plain LIF neurons runs as
one compiled call (:mod:`mambaspike.models.frontend_fused`); ``forward_reference`` is the block-by-block
ground truth, and the path of training.
"""

from __future__ import annotations

import torch
from torch import nn

from ..neurons import LIF, NEURONS


def temporal_pool(x: torch.Tensor, k: int, mode: str = "max") -> torch.Tensor:
    """Pool ``x [T, B, ...]`` over windows of ``k`` bins -> ``[ceil(T / k), B, ...]``.

    A last incomplete window is padded with zeros (``max``) or averaged over its real bins (``avg``).
    """
    if k == 1:
        return x
    T = x.shape[0]
    L = (T + k - 1) // k  # ceil; not -(-T // k): traced, ONNX divides toward zero
    pad = L * k - T
    if pad:
        x = torch.cat([x, torch.zeros_like(x[:1]).expand(pad, *x.shape[1:])], dim=0)  # traces with a dynamic batch (ONNX)
    xw = x.reshape(L, k, *x.shape[1:])  # (L, k, B, ...)
    if mode == "max":
        return xw.amax(dim=1)
    if mode == "avg":
        counts = torch.full((L,), float(k), dtype=x.dtype, device=x.device)
        counts[-1] = k - pad
        return xw.sum(dim=1) / counts.view(L, *([1] * (x.dim() - 1)))
    raise ValueError(f"temporal_pool: mode must be 'max' or 'avg', got {mode!r}")


def _per_bin(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a frame-wise module to every bin of ``x [T, B, ...]`` at once."""
    T, B = x.shape[:2]
    y = module(x.flatten(0, 1))
    return y.reshape(T, B, *y.shape[1:])  # not unflatten: traces with a dynamic batch (ONNX)


class SpikingConvBlock(nn.Module):
    """conv3x3 -> BatchNorm -> LIF (optionally recurrent) -> spatial max-pool.

    ``forward(x [T, B, Cin, H, W], state=None) -> (spikes [T, B, Cout, H', W'], state)``; the state is
    the membrane potential (and, when recurrent, the last spikes before pooling).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        lif_kwargs: dict,
        recurrent: bool = False,
        pool: nn.Module | None = None,
        neuron: str = "lif",
    ):
        super().__init__()
        if neuron not in NEURONS:
            raise ValueError(f"unknown neuron {neuron!r}; available: {', '.join(NEURONS)}")
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.lif = NEURONS[neuron](**lif_kwargs)
        self.recurrent = nn.Conv2d(c_out, c_out, 1, bias=False) if recurrent else None
        self.pool = pool if pool is not None else nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor, state=None):
        current = _per_bin(lambda f: self.bn(self.conv(f)), x)  # (T, B, Cout, H, W)
        if self.recurrent is None:
            spikes, v = self.lif(current, state)
            new_state = v
        elif self._fuse_recurrence(current):
            spikes, new_state = self.lif(current, state, recurrent=self._recurrent_matrix())
        else:
            v, s_prev = state if state is not None else (None, None)
            out = []
            for c in current.unbind(0):
                if s_prev is not None:
                    c = c + self.recurrent(s_prev)
                s_seq, v = self.lif(c[None], v)  # one bin through forward(), so spike hooks see it
                s_prev = s_seq[0]
                out.append(s_prev)
            spikes = torch.stack(out)
            new_state = (v, s_prev)
        return _per_bin(self.pool, spikes), new_state

    def _recurrent_matrix(self) -> torch.Tensor:
        """The recurrent weight as ``[C, C]`` (a view: gradients reach the module's parameter)."""
        w = self.recurrent.weight
        return w if w.dim() == 2 else w[:, :, 0, 0]

    def _fuse_recurrence(self, current: torch.Tensor) -> bool:
        """Whether the whole recurrent sequence goes to the LIF in one call (``recurrent=W``: the
        compiled recurrent LIF where it applies, see :meth:`mambaspike.neurons.LIF.forward`) instead
        of the loop over bins: a plain ``LIF`` on the fused backends, more than one bin, and nothing
        observing the recurrent layer call by call (operation counters' hooks, tracing for export),
        which the loop serves. Both give the same results."""
        if type(self.lif) is not LIF or self.lif.backend not in ("auto", "numba", "cpu") or current.shape[0] < 2:
            return False
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return False
        rec = self.recurrent
        return not (rec._forward_hooks or rec._forward_pre_hooks or nn.modules.module._global_forward_hooks)


class SpikingDenseBlock(SpikingConvBlock):
    """The 1-D block: linear -> BatchNorm1d -> LIF (optionally recurrent through a linear map of the
    block's spikes at t-1). ``[T, B, F_in] -> [T, B, F_out]``."""

    def __init__(self, f_in: int, f_out: int, lif_kwargs: dict, recurrent: bool = False, neuron: str = "lif"):
        super().__init__(1, 1, lif_kwargs, recurrent=False, pool=nn.Identity(), neuron=neuron)
        self.conv = nn.Linear(f_in, f_out, bias=False)
        self.bn = nn.BatchNorm1d(f_out)
        self.recurrent = nn.Linear(f_out, f_out, bias=False) if recurrent else None


def _pool_push(acc: torch.Tensor | None, y: torch.Tensor, mode: str) -> torch.Tensor:
    """Add bin ``y`` to a temporal-pool accumulator (running max, or running sum for ``avg``)."""
    if acc is None:
        return y
    return torch.maximum(acc, y) if mode == "max" else acc + y


def _pool_value(acc: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    return acc if mode == "max" else acc / n


class _PooledStream:
    """Streaming for a stack whose first stage runs per input bin and the rest per pooled bin.

    Subclasses define ``_first(x [1, B, ...], s)`` and ``_rest(y [1, B, ...], states)``, both
    returning ``(out, state)``, and ``temporal_pool`` / ``_pool_mode``. The state is
    ``(first_state, rest_states, pool_accumulator, bins_in_accumulator)``.
    """

    def step(self, x: torch.Tensor, state=None):
        s0, rest, acc, n = state if state is not None else (None, None, None, 0)
        y, s0 = self._first(x[None], s0)  # (1, B, ...)
        acc, n = _pool_push(acc, y[0], self._pool_mode), n + 1
        if n < self.temporal_pool:
            return None, (s0, rest, acc, n)
        out, rest = self._rest(_pool_value(acc, n, self._pool_mode)[None], rest)
        return out[0], (s0, rest, None, 0)

    def finish(self, state):
        if state is None or state[2] is None:
            return None
        _, rest, acc, n = state
        out, _ = self._rest(_pool_value(acc, n, self._pool_mode)[None], rest)
        return out[0]


class SpikingFrontEnd(_PooledStream, nn.Module):
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
    ):
        super().__init__()
        self.temporal_pool = temporal_pool
        self.temporal_pool_mode = temporal_pool_mode
        blocks = []
        c_prev = in_channels
        for i, c in enumerate(channels):
            last = i == len(channels) - 1
            bin_ms = dt_ms * (temporal_pool if i > 0 else 1)
            lif_kwargs = dict(tau=tau_ms, dt=bin_ms, v_threshold=v_threshold, learn_tau=learn_tau)
            rec = recurrent and last
            if spatial:
                pool = nn.AdaptiveMaxPool2d(spatial_out) if last else nn.MaxPool2d(2)
                blocks.append(SpikingConvBlock(c_prev, c, lif_kwargs, recurrent=rec, pool=pool, neuron=neuron))
            else:
                blocks.append(SpikingDenseBlock(c_prev, c, lif_kwargs, recurrent=rec, neuron=neuron))
            c_prev = c
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = c_prev
        self.out_features = c_prev * spatial_out**2 if spatial else c_prev  # per output bin
        self.out_bin_ms = dt_ms * temporal_pool
        self._pool_mode = temporal_pool_mode
        self.spatial = spatial

    def forward(self, x: torch.Tensor, state=None):
        """``(spikes [T', B, ...], per-block states)``. Dense stacks in inference take the fused kernel
        (:mod:`mambaspike.models.frontend_fused`) where it applies, else :meth:`forward_reference`;
        both give the same spikes and states."""
        if not self.spatial:
            from . import frontend_fused

            if frontend_fused.unsupported(self, x, state) is None:
                return frontend_fused.forward(self, x, state)
        return self.forward_reference(x, state)

    def forward_reference(self, x: torch.Tensor, state=None):
        """Block by block (the ground truth of the fused path, and the path of training)."""
        states = []
        for i, block in enumerate(self.blocks):
            x, s = block(x, None if state is None else state[i])
            states.append(s)
            if i == 0:
                x = temporal_pool(x, self.temporal_pool, self.temporal_pool_mode)
        return x, states

    def _first(self, x, s):
        return self.blocks[0](x, s)

    def _rest(self, x, states):
        out = []
        for i, block in enumerate(self.blocks[1:]):
            x, s = block(x, None if states is None else states[i])
            out.append(s)
        return x, out


class ConvStem(_PooledStream, nn.Module):
    """The baselines' non-spiking stem: same convolutions and pooling as ``SpikingFrontEnd`` with ReLU
    in place of LIF neurons and no recurrence (the sequence model after it handles time).
    ``[T, B, C, H, W] -> [T', B, C_last, s, s]`` real-valued (temporal average-pooling); with
    ``spatial=False`` dense layers, ``[T, B, F] -> [T', B, C_last]``."""

    def __init__(
        self, in_channels: int, channels=(16, 32, 64), temporal_pool: int = 2, spatial_out: int = 4,
        spatial: bool = True,
    ):  # fmt: skip
        super().__init__()
        layers = []
        c_prev = in_channels
        for i, c in enumerate(channels):
            last = i == len(channels) - 1
            if spatial:
                layer = [nn.Conv2d(c_prev, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                         nn.AdaptiveMaxPool2d(spatial_out) if last else nn.MaxPool2d(2)]  # fmt: skip
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
        return _per_bin(self.layers[0], x), None

    def _rest(self, x, states):
        for layer in self.layers[1:]:
            x = _per_bin(layer, x)
        return x, None

    def forward(self, x: torch.Tensor, state=None):
        for i, layer in enumerate(self.layers):
            x = _per_bin(layer, x)
            if i == 0:
                x = temporal_pool(x, self.temporal_pool, "avg")
        return x, None


__all__ = ["SpikingFrontEnd", "SpikingConvBlock", "SpikingDenseBlock", "ConvStem", "temporal_pool"]
