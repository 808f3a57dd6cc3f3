"""Augmentation of binned event frames ``[T, P, H, W]`` (train split only; on where the data set
defines one, ``--no-augment`` turns it off, ``--augment-set KEY=VALUE`` replaces a field of it
(:data:`AUGMENT_FIELDS`); ``--augment-events`` adds event-level perturbations).

Applied to the cached counts, so it costs no re-binning, in this order: event drop (each counted
event kept with probability ``1 - p``: binomial thinning, the frame-level equivalent of tonic's
``DropEvent``; ``p`` fixed, or drawn per sample), spatial jitter of each event and background events
(the robustness study's perturbations, :mod:`mambaspike.data.perturb`, at a level drawn per sample),
a left-right flip where the data set's labels allow it, and a spatial shift (the same for every time
bin, zero-filled). Random numbers come from the generator given; the train split's data set seeds
one per ``(seed, epoch, sample)`` (``FrameDataset.set_epoch``), so a sample's augmentation does not
depend on the process that serves it or on where a run was resumed.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from mambaspike.data.perturb import background_noise, event_drop, spatial_jitter
from mambaspike.data.registry import Augment

# What ``--augment-events`` adds to a data set's augmentation: per sample, up to half of the events
# dropped, spatial jitter up to sigma = 1 px, background events up to as many as the sample's own,
# each sample perturbed with probability 1/2 (the others keep the data set's own augmentation only).
EVENT_AUGMENT = {"drop_max": 0.5, "jitter_px": 1.0, "noise_max": 1.0, "event_p": 0.5}


def with_event_augmentation(aug: Augment) -> Augment:
    """``aug`` plus the event-level perturbations of ``--augment-events`` (:data:`EVENT_AUGMENT`)."""
    levels = {k: max(v, getattr(aug, k)) for k, v in EVENT_AUGMENT.items() if k != "event_p"}
    return replace(aug, **levels, event_p=EVENT_AUGMENT["event_p"])


# What ``--augment-set KEY=VALUE`` may change in a data set's augmentation, with what each accepts.
AUGMENT_FIELDS = {
    "max_shift": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0 (pixels)"),
    "flip_x": (lambda v: isinstance(v, bool), "true or false"),
    "drop": (lambda v: _number(v) and 0 <= v < 1, "a probability in [0, 1)"),
    "drop_max": (lambda v: _number(v) and 0 <= v < 1, "a probability in [0, 1)"),
    "jitter_px": (lambda v: _number(v) and v >= 0, "a number >= 0 (pixels)"),
    "noise_max": (lambda v: _number(v) and v >= 0, "a number >= 0 (noise events per signal event)"),
    "event_p": (lambda v: _number(v) and 0 <= v <= 1, "a probability in [0, 1]"),
}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def check_augment_set(values: dict, option: str = "augment_set (--augment-set)") -> dict:
    """``values`` checked as :data:`AUGMENT_FIELDS` overrides (one-line ``ConfigError`` naming the key,
    its value and what it accepts); returns a copy."""
    from mambaspike.errors import ConfigError

    if not isinstance(values, dict):
        raise ConfigError(f"{option}: expected a mapping of augmentation fields, got {values!r}")
    for key, value in values.items():
        if key not in AUGMENT_FIELDS:
            raise ConfigError(f"{option}: unknown field {key!r}; accepted: {', '.join(AUGMENT_FIELDS)}")
        ok, expected = AUGMENT_FIELDS[key]
        if not ok(value):
            raise ConfigError(f"{option}: {key} = {value!r}: expected {expected}")
    return dict(values)


def train_augment(
    base: Augment | None, augment: bool, augment_events: bool, augment_set: dict | None = None
) -> Augment | None:
    """The train split's augmentation: the data set's own (``base``) with the fields of ``augment_set``
    replaced, where ``augment``, plus the event-level perturbations where ``augment_events``; ``None``
    for none."""
    aug = None
    if augment:
        aug = replace(base or Augment(), **augment_set) if augment_set else base
    return with_event_augmentation(aug or Augment()) if augment_events else aug


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def augment_frames(frames: torch.Tensor, aug: Augment, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augmented copy of float ``[T, P, H, W]`` (or ``[T, F]``: event drop and background events only)
    counts."""
    events = aug.drop_max > aug.drop or aug.jitter_px > 0 or aug.noise_max > 0
    if events and aug.event_p < 1:
        events = float(torch.rand((), generator=generator)) < aug.event_p
    drop = _uniform(aug.drop, aug.drop_max, generator) if events and aug.drop_max > aug.drop else aug.drop
    if drop > 0:
        frames = event_drop(frames, drop, generator)
    if events and aug.jitter_px > 0 and frames.ndim == 4:
        frames = spatial_jitter(frames, _uniform(0.0, aug.jitter_px, generator), generator)
    if events and aug.noise_max > 0:
        frames = background_noise(frames, _uniform(0.0, aug.noise_max, generator), generator)
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
