"""Event perturbations of binned frames ``[T, C, H, W]`` (event counts per bin and polarity).

Each count is treated as that many events at the bin's centre, so time jitter is quantised to the bin
width and spatial jitter to whole pixels. Used by the robustness study
(:mod:`mambaspike.evaluation.robustness`, which documents each one) and by train-split augmentation
(:mod:`mambaspike.data.augment`). Every function is ``f(frames, level, generator, dt_ms) -> frames``,
returns a new tensor, and at level 0 returns a copy of its input.
"""

from __future__ import annotations

import torch

from mambaspike.errors import ConfigError


def _events(frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``frames [T, C, H, W]`` counts -> ``(idx [E, 4] int64, one row per event)``, plus the counts' shape."""
    counts = frames.round().clamp_min(0).long()
    nz = counts.nonzero()  # (P, 4)
    reps = counts[tuple(nz.t())]  # (P,)
    return nz.repeat_interleave(reps, dim=0), torch.tensor(frames.shape)


def _to_frames(idx: torch.Tensor, shape, dtype) -> torch.Tensor:
    keep = ((idx >= 0) & (idx < torch.as_tensor(shape))).all(dim=1)
    idx = idx[keep]
    out = torch.zeros(tuple(int(s) for s in shape), dtype=dtype)
    out.index_put_(tuple(idx.t()), torch.ones(len(idx), dtype=dtype), accumulate=True)
    return out


def event_drop(frames: torch.Tensor, level: float, g: torch.Generator, dt_ms: float = 1.0) -> torch.Tensor:
    if level == 0:
        return frames.clone()
    if not 0 <= level <= 1:
        raise ConfigError(f"event_drop: level must be a probability in [0, 1], got {level}")
    counts = frames.round().clamp_min(0)
    return torch.binomial(counts, torch.full_like(counts, 1 - level), generator=g).to(frames.dtype)


def background_noise(frames: torch.Tensor, level: float, g: torch.Generator, dt_ms: float = 1.0) -> torch.Tensor:
    if level == 0:
        return frames.clone()
    n = int(round(level * float(frames.clamp_min(0).sum())))
    flat = frames.clone().reshape(-1)
    pos = torch.randint(0, flat.numel(), (n,), generator=g)
    flat.index_put_((pos,), torch.ones(n, dtype=frames.dtype), accumulate=True)
    return flat.reshape(frames.shape)


def spatial_jitter(frames: torch.Tensor, level: float, g: torch.Generator, dt_ms: float = 1.0) -> torch.Tensor:
    if level == 0:
        return frames.clone()
    idx, shape = _events(frames)
    shift = torch.round(torch.randn(len(idx), 2, generator=g) * level).long()
    idx = idx.clone()
    idx[:, 2:] += shift
    return _to_frames(idx, shape, frames.dtype)


def time_jitter(frames: torch.Tensor, level: float, g: torch.Generator, dt_ms: float = 1.0) -> torch.Tensor:
    if level == 0:
        return frames.clone()
    idx, shape = _events(frames)
    shift = torch.round(torch.randn(len(idx), generator=g) * level / dt_ms).long()
    idx = idx.clone()
    idx[:, 0] += shift
    return _to_frames(idx, shape, frames.dtype)


def gaussian_noise(frames: torch.Tensor, level: float, g: torch.Generator, dt_ms: float = 1.0) -> torch.Tensor:
    if level == 0:
        return frames.clone()
    std = float(frames.std()) or 1.0
    return frames + level * std * torch.randn(frames.shape, generator=g, dtype=frames.dtype)


__all__ = ["event_drop", "background_noise", "spatial_jitter", "time_jitter", "gaussian_noise"]
