"""Augmentation of binned event frames ``[T, P, H, W]`` (train split only; on where the data set
defines one, ``--no-augment`` turns it off).

Applied to the cached counts, so it costs no re-binning: a spatial shift (the same for every time
bin, zero-filled), a left-right flip where the data set's labels allow it, and event drop (each
counted event kept with probability ``1 - drop``: binomial thinning, the frame-level equivalent of
tonic's ``DropEvent``). Random numbers come from the generator given; the train split's data set
seeds one per ``(seed, epoch, sample)`` (``FrameDataset.set_epoch``), so a sample's augmentation does
not depend on the process that serves it or on where a run was resumed.
"""

from __future__ import annotations

import torch

from mambaspike.data.registry import Augment


def augment_frames(frames: torch.Tensor, aug: Augment, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augmented copy of float ``[T, P, H, W]`` (or ``[T, F]``: only event drop applies) counts."""
    if aug.drop > 0:
        frames = torch.binomial(frames, torch.full_like(frames, 1.0 - aug.drop), generator=generator)
    if frames.ndim != 4:
        return frames
    if aug.flip_x and torch.rand((), generator=generator) < 0.5:
        frames = frames.flip(-1)
    if aug.max_shift > 0:
        dy, dx = (int(v) for v in torch.randint(-aug.max_shift, aug.max_shift + 1, (2,), generator=generator))
        frames = _shift(frames, dy, dx)
    return frames


def _shift(frames: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Move the content by ``(dy, dx)`` pixels; what leaves the sensor is lost, the rest is zero."""
    out = torch.zeros_like(frames)
    height, width = frames.shape[-2:]
    ys, yd = slice(max(0, -dy), height - max(0, dy)), slice(max(0, dy), height - max(0, -dy))
    xs, xd = slice(max(0, -dx), width - max(0, dx)), slice(max(0, dx), width - max(0, -dx))
    out[..., yd, xd] = frames[..., ys, xs]
    return out
