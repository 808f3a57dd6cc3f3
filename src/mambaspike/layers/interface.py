"""The interface between the spiking front-end and the Mamba backbone (Mamba-Spike §3.2).

This is the one place where the time-first spiking layout ``[T, B, ...]`` becomes the sequence layout
``[B, L, D]``.

1. Spike-to-activation conversion (§3.2.1): spikes are counted over windows of ``window`` bins,
   giving firing rates ``r = count / bins`` in [0, 1] per feature; with ``rate_norm`` (the paper's) they
   are normalised by each feature's mean firing rate (batch mean while training, a running mean in eval,
   like BatchNorm's statistics): ``a = r / max(mean_rate, min_rate)``, an activation of 1 meaning "firing
   at this neuron's usual rate" -- and a rarely firing feature amplified up to ``1 / min_rate`` times
   when it does fire.
2. Temporal information (§3.2.2): each window's centre time in ms gets a sinusoidal encoding, added
   after the projection to the backbone width, so the position in time survives any re-binning.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def window_sum(x: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum ``x [T, B, F]`` over windows of ``window`` bins -> ``(sums [L, B, F], bins [L])``,
    ``L = ceil(T / window)``; ``bins`` holds each window's real length (the last may be short)."""
    T = x.shape[0]
    L = (T + window - 1) // window  # ceil; not -(-T // window): traced, ONNX divides toward zero
    pad = L * window - T
    if pad:
        x = torch.cat(
            [x, torch.zeros_like(x[:1]).expand(pad, *x.shape[1:])], dim=0
        )  # traces with a dynamic batch (ONNX)
    sums = x.reshape(L, window, *x.shape[1:]).sum(dim=1)  # (L, B, F)
    bins = torch.full((L,), float(window), dtype=x.dtype, device=x.device)
    bins[-1] = window - pad
    return sums, bins


def window_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """``x [T, B, F]`` averaged over windows of ``window`` bins -> ``[L, B, F]`` (a last short window
    over its real bins): :func:`window_sum` divided by the bins, in one reshape and sum when every
    window is whole (the same values, fewer operations)."""
    T = x.shape[0]
    if T and T % window == 0 and not torch.jit.is_tracing():
        return x.reshape(T // window, window, *x.shape[1:]).sum(dim=1) / window
    sums, bins = window_sum(x, window)  # (L, B, F), (L,)
    return sums / bins[:, None, None]


def sinusoidal_time_encoding(t_ms: torch.Tensor, d: int, base: float = 10000.0) -> torch.Tensor:
    """``t_ms [L]`` -> ``[L, d]``; periods from 2*pi ms up to 2*pi*base ms."""
    half = d // 2
    freq = torch.exp(-math.log(base) * torch.arange(half, dtype=torch.float32, device=t_ms.device) / half)
    ang = t_ms.float()[:, None] * freq[None, :]  # (L, d/2)
    enc = torch.cat([ang.sin(), ang.cos()], dim=1)
    if d % 2:
        enc = torch.cat([enc, enc.new_zeros(enc.shape[0], 1)], dim=1)
    return enc


class SpikeInterface(nn.Module):
    """``[T, B, C, H, W]`` (spikes, or real activations when ``rate_norm=False``) -> ``[B, L, d_model]``.

    Args:
        in_features: ``C * H * W`` of the front-end output.
        d_model: backbone width.
        window: bins per window (``L = ceil(T / window)``).
        bin_ms: width of one input bin in ms (for the temporal encoding).
        rate_norm: normalise rates by the features' mean firing rate (spiking input). Without it the
            window mean is passed on (the non-spiking baselines).
    """

    def __init__(
        self,
        in_features: int,
        d_model: int,
        window: int,
        bin_ms: float,
        rate_norm: bool = True,
        momentum: float = 0.1,
        min_rate: float = 0.01,
    ):
        super().__init__()
        if window < 1:
            raise ValueError(f"SpikeInterface: window must be >= 1 bin, got {window}")
        self.window = window
        self.bin_ms = float(bin_ms)
        self.rate_norm = rate_norm
        self.momentum = momentum
        self.min_rate = min_rate
        self.proj = nn.Linear(in_features, d_model)
        self.d_model = d_model
        if rate_norm:
            self.register_buffer("running_rate", torch.full((in_features,), 0.1))

    def rates(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` -> normalised activations ``[L, B, F]``."""
        r = window_mean(x.flatten(2), self.window)  # (L, B, F), spikes per bin
        if not self.rate_norm:
            return r
        if self.training:
            mean_rate = r.mean(dim=(0, 1))  # (F,)
            with torch.no_grad():
                self.running_rate.lerp_(mean_rate.detach().to(self.running_rate.dtype), self.momentum)  # autocast
        else:
            mean_rate = self.running_rate
        return r / mean_rate.clamp(min=self.min_rate)

    def _activation(self, sums: torch.Tensor, bins: int, index: int) -> torch.Tensor:
        """One window: spike sums ``[B, F]`` over ``bins`` bins, window number ``index`` -> ``[B, D]``
        (eval statistics, as ``forward`` in eval mode)."""
        r = sums / bins
        if self.rate_norm:
            r = r / self.running_rate.clamp(min=self.min_rate)
        t_ms = torch.tensor([(index + 0.5) * self.window * self.bin_ms], device=r.device)
        return self.proj(r) + sinusoidal_time_encoding(t_ms, self.d_model)[0].to(r.dtype)

    def step(self, x: torch.Tensor, state=None):
        """One bin ``x [B, ...]`` -> ``(a [B, d_model] when it completes a window, else None, state)``.
        Streaming uses the running firing rate (eval mode). State: ``(sums [B, F], bins, window index)``."""
        if self.training and self.rate_norm:
            raise ValueError(
                "SpikeInterface.step: streaming needs eval mode (model.eval()), which uses the running rate"
            )
        sums, n, idx = state if state is not None else (None, 0, 0)
        xf = x.flatten(1)  # (B, F)
        sums, n = (xf if sums is None else sums + xf), n + 1
        if n < self.window:
            return None, (sums, n, idx)
        return self._activation(sums, n, idx), (None, 0, idx + 1)

    def finish(self, state):
        """The last, incomplete window's activation ``[B, d_model]``, or ``None``."""
        if state is None or state[0] is None:
            return None
        sums, n, idx = state
        return self._activation(sums, n, idx)

    def time_encoding(self, L: int, device, dtype) -> torch.Tensor:
        """``[L, d_model]`` encodings of the window centres; a constant of ``L``, kept for the last ``L``
        asked, so repeated batch-1 inference does not recompute the sines."""
        key = (L, str(device), dtype)
        cached = self.__dict__.get("_enc_cache")
        if cached is None or cached[0] != key or torch.jit.is_tracing():
            t_ms = (torch.arange(L, device=device) + 0.5) * self.window * self.bin_ms  # window centres
            cached = (key, sinusoidal_time_encoding(t_ms, self.d_model).to(dtype))
            if not torch.jit.is_tracing():
                self.__dict__["_enc_cache"] = cached
        return cached[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.rates(x).transpose(0, 1)  # (B, L, F): spiking layout -> sequence layout
        return self.proj(a) + self.time_encoding(a.shape[1], a.device, a.dtype)  # (B, L, D)
