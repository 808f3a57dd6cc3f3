"""Encoders: static frames or 1-D signals -> time-first spike trains ``[T, B, ...]``.

Every encoder returns float tensors of 0s and 1s with the input's dtype and device, time first.
Random encoders take a ``torch.Generator`` (or a ``seed``) so a given input and seed always give the
same spikes.

- :func:`rate`: Bernoulli (Poisson-like) rate coding, ``P(spike at t) = gain * x``.
- :func:`latency`: time-to-first-spike coding, one spike per element, brighter = earlier;
  ``mode="linear"`` or ``"log"`` (the RC-circuit charging time of snnTorch's ``spikegen.latency``).
- :func:`delta`: threshold/delta (send-on-change) coding of a time series into ON/OFF channels, as a
  DVS pixel does to log intensity.
"""

from __future__ import annotations

import torch

from mambaspike.errors import ConfigError


def _generator(generator: torch.Generator | None, seed: int | None, device: torch.device) -> torch.Generator | None:
    if generator is not None:
        return generator
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(seed)


def _check_unit_range(x: torch.Tensor, who: str) -> None:
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ConfigError(f"{who}: input values must lie in [0, 1], got [{float(x.min()):g}, {float(x.max()):g}]")


def _check_steps(T: int, who: str) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ConfigError(f"{who}: T (number of time steps) must be a positive integer, got {T!r}")


def rate(
    x: torch.Tensor,
    T: int,
    *,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """Rate coding: ``x [B, ...]`` in [0, 1] -> spikes ``[T, B, ...]``, each step Bernoulli(``gain * x``).

    Args:
        x: intensities in [0, 1].
        T: number of time steps.
        gain: scales the spike probability (clipped to [0, 1]).
        generator, seed: the random stream (a ``seed`` builds a fresh generator).
    """
    _check_steps(T, "rate")
    _check_unit_range(x, "rate")
    p = (x * gain).clamp(0, 1).expand(T, *x.shape)  # (T, B, ...)
    g = _generator(generator, seed, x.device)
    return torch.bernoulli(p, generator=g).to(x.dtype)


def latency_times(
    x: torch.Tensor, T: int, *, mode: str = "linear", tau: float = 5.0, threshold: float = 0.01
) -> torch.Tensor:
    """The spike step of each element (an int64 tensor like ``x``); ``T`` means "never spikes".

    ``linear``: ``t = round((1 - x) * (T - 1))`` for ``x > threshold``: x = 1 fires at step 0, x just
    above ``threshold`` fires last. ``log``: the time an RC circuit with time constant ``tau`` (steps)
    driven by ``x`` takes to charge to ``threshold``, ``t = tau * ln(x / (x - threshold))``, rounded and
    clipped to ``T - 1``; inputs at or below ``threshold`` never fire.
    """
    _check_steps(T, "latency")
    _check_unit_range(x, "latency")
    if not 0 <= threshold < 1:
        raise ConfigError(f"latency: threshold must be in [0, 1), got {threshold!r}")
    fires = x > threshold
    if mode == "linear":
        t = torch.round((1 - x) * (T - 1))
    elif mode == "log":
        if not tau > 0:
            raise ConfigError(f"latency: tau must be positive (in time steps), got {tau!r}")
        safe = torch.where(fires, x, torch.ones_like(x))
        t = torch.round(tau * torch.log(safe / (safe - threshold))).clamp(max=T - 1)
    else:
        raise ConfigError(f"latency: mode must be 'linear' or 'log', got {mode!r}")
    return torch.where(fires, t, torch.full_like(t, T)).long()


def latency(
    x: torch.Tensor, T: int, *, mode: str = "linear", tau: float = 5.0, threshold: float = 0.01
) -> torch.Tensor:
    """Latency (time-to-first-spike) coding: ``x [B, ...]`` in [0, 1] -> ``[T, B, ...]`` with at most
    one spike per element, at the step given by :func:`latency_times`. Deterministic."""
    t = latency_times(x, T, mode=mode, tau=tau, threshold=threshold)
    steps = torch.arange(T, device=x.device).view(T, *([1] * x.dim()))  # (T, 1, ...)
    return (steps == t.unsqueeze(0)).to(x.dtype)


def delta(signal: torch.Tensor, threshold: float = 0.1, *, log: bool = False, eps: float = 1e-3) -> torch.Tensor:
    """Delta (send-on-change) coding of a time series ``signal [T, B, ...]`` -> ``[T, B, 2, ...]``.

    Each element keeps a reference level, starting at its value at t = 0. Whenever the signal has
    moved by at least ``threshold`` from the reference, an ON (channel 1, upward) or OFF (channel 0,
    downward) spike is emitted and the reference moves one threshold towards the signal: at most one
    spike per element and step, a large jump is sent over the following steps.
    With ``log=True`` the change is measured on ``log(signal + eps)``, as by a DVS pixel.
    """
    if not threshold > 0:
        raise ConfigError(f"delta: threshold must be positive, got {threshold!r}")
    if signal.dim() < 1 or signal.shape[0] < 1:
        raise ConfigError(f"delta: signal must be time-first [T, ...] with T >= 1, got shape {tuple(signal.shape)}")
    level = torch.log(signal + eps) if log else signal
    ref = level[0].clone()
    on, off = [], []
    for v in level.unbind(0):  # plain loop over time: the reference depends on earlier spikes
        up = v - ref >= threshold
        down = ref - v >= threshold
        ref = ref + threshold * up.to(ref.dtype) - threshold * down.to(ref.dtype)
        on.append(up)
        off.append(down)
    return torch.stack([torch.stack(off), torch.stack(on)], dim=2).to(signal.dtype)


__all__ = ["rate", "latency", "latency_times", "delta"]
