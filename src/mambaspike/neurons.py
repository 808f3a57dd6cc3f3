"""Spiking neurons: surrogate spike functions, a functional LIF core, and thin modules around it.

Layout follows norse: pure step functions you can check by hand (`lif_step`), a plain multi-step
reference loop over time (`lif_multistep`), and modules that only hold parameters and wire the core
up. Names follow spikingjelly (`tau`, `v_threshold`, `v_reset`, `detach_reset`).

Conventions
-----------
- Tensors are time-first: a sequence is ``[T, B, ...]``; one step is ``[B, ...]``.
- Time constants are given in **milliseconds** together with the bin width ``dt`` (ms), so
  ``tau = 30 ms`` means the same dynamics at every binning. Inside, the exact exponential decay
  ``beta = exp(-dt / tau)`` is used.
- Membrane update (``decay_input=True``, spikingjelly's form)::

      h[t] = beta * v[t-1] + (1 - beta) * x[t]
      s[t] = H(h[t] - v_threshold)                     # surrogate gradient in backward
      v[t] = h[t] * (1 - s[t]) + v_reset * s[t]        # hard reset
      v[t] = h[t] - v_threshold * s[t]                 # soft (subtractive) reset

  With ``decay_input=False`` the input is not scaled (snnTorch's ``Leaky``): ``h = beta*v + x``.
- Every stateful module follows ``forward(x_seq, state=None) -> (y_seq, state)``; streaming is the
  same call with ``T = 1``. Streaming state is never part of the ``state_dict``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

# --------------------------------------------------------------------------------------------
# Surrogate gradients
# --------------------------------------------------------------------------------------------


class _ATanSpike(torch.autograd.Function):
    """Heaviside forward, arctan surrogate backward (Fang et al. 2021, spikingjelly's ``ATan``).

    d s / d x ~= alpha / 2 / (1 + (pi / 2 * alpha * x)^2)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, alpha)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, alpha = ctx.saved_tensors
        sg = (alpha / 2) / (1 + (math.pi / 2 * alpha * x).square())
        return grad_out * sg, None


class ATan(nn.Module):
    """Arctan surrogate spike function; ``alpha`` (sharpness) is a buffer, so it is in the state_dict."""

    def __init__(self, alpha: float = 2.0):
        super().__init__()
        self.register_buffer("alpha", torch.tensor(float(alpha)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ATanSpike.apply(x, self.alpha.to(x.dtype))

    def extra_repr(self) -> str:
        return f"alpha={float(self.alpha):g}"


SURROGATES = {"atan": ATan}


# --------------------------------------------------------------------------------------------
# Functional LIF core
# --------------------------------------------------------------------------------------------


class LIFParams(NamedTuple):
    """Parameters of one LIF population (tensors broadcast against the state)."""

    beta: torch.Tensor  # membrane decay per bin, exp(-dt / tau), in (0, 1)
    v_threshold: torch.Tensor
    v_reset: float = 0.0
    soft_reset: bool = False
    detach_reset: bool = False
    decay_input: bool = True


def lif_step(x: torch.Tensor, v: torch.Tensor, p: LIFParams, spike_fn) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step of a LIF population. ``x``, ``v``: ``[B, ...]``. Returns ``(spikes, v_next)``."""
    if p.decay_input:
        h = p.beta * v + (1 - p.beta) * x
    else:
        h = p.beta * v + x
    s = spike_fn(h - p.v_threshold)
    r = s.detach() if p.detach_reset else s
    if p.soft_reset:
        v_next = h - r * p.v_threshold
    else:
        v_next = h * (1 - r) + r * p.v_reset
    return s, v_next


def lif_multistep(
    x_seq: torch.Tensor, v: torch.Tensor | None, p: LIFParams, spike_fn
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference loop: ``x_seq`` ``[T, B, ...]`` -> ``(spikes [T, B, ...], v_last [B, ...])``.

    Iterates over ``unbind(0)`` (never ``x[t]`` on a tensor that needs grad, whose backward would
    allocate a full-size zero tensor per step) and stacks per-step outputs.
    """
    if v is None:
        v = torch.full_like(x_seq[0], p.v_reset)
    spikes = []
    for x in x_seq.unbind(0):
        s, v = lif_step(x, v, p, spike_fn)
        spikes.append(s)
    return torch.stack(spikes), v


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


class SpikingNeuron(nn.Module):
    """Base class of every spiking neuron population.

    Subclasses implement ``forward(x_seq [T, B, ...], state=None) -> (spikes [T, B, ...], state)``
    and ``step(x [B, ...], state=None) -> (spikes [B, ...], state)``. Evaluation tools (spike
    counters, firing-rate and energy reports) find neurons by this class and read ``output[0]``.
    """


class LIF(SpikingNeuron):
    """Leaky integrate-and-fire neurons with a learnable membrane time constant (PLIF).

    Args:
        tau: initial membrane time constant in ms.
        dt: bin width in ms.
        v_threshold: firing threshold (learnable when ``learn_threshold``).
        v_reset: reset potential for the hard reset.
        soft_reset: subtract the threshold instead of resetting to ``v_reset``.
        detach_reset: do not backpropagate through the reset.
        learn_tau: learn the time constant (parameterised as ``beta = sigmoid(w)``, as PLIF does).
        surrogate: name in ``SURROGATES``; ``alpha`` its sharpness.

    ``forward(x_seq [T, B, ...], state=None) -> (spikes [T, B, ...], v [B, ...])``.
    """

    def __init__(
        self,
        tau: float = 30.0,
        dt: float = 1.0,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        soft_reset: bool = False,
        detach_reset: bool = False,
        decay_input: bool = True,
        learn_tau: bool = True,
        learn_threshold: bool = False,
        surrogate: str = "atan",
        alpha: float = 2.0,
    ):
        super().__init__()
        if tau <= 0 or dt <= 0:
            raise ValueError(f"LIF: tau and dt must be positive ms values, got tau={tau}, dt={dt}")
        if surrogate not in SURROGATES:
            raise ValueError(f"LIF: unknown surrogate {surrogate!r}; expected one of {sorted(SURROGATES)}")
        self.dt = float(dt)
        w = torch.tensor(_logit(math.exp(-dt / tau)))
        self.w = nn.Parameter(w) if learn_tau else nn.Buffer(w)
        vth = torch.tensor(float(v_threshold))
        self.v_threshold = nn.Parameter(vth) if learn_threshold else nn.Buffer(vth)
        self.v_reset = float(v_reset)
        self.soft_reset = soft_reset
        self.detach_reset = detach_reset
        self.decay_input = decay_input
        self.spike_fn = SURROGATES[surrogate](alpha)

    @property
    def beta(self) -> torch.Tensor:
        return torch.sigmoid(self.w)

    @property
    def tau(self) -> float:
        """Current membrane time constant in ms."""
        return -self.dt / math.log(float(self.beta.detach()))

    def params(self) -> LIFParams:
        return LIFParams(
            self.beta, self.v_threshold, self.v_reset, self.soft_reset, self.detach_reset, self.decay_input
        )

    def forward(self, x_seq: torch.Tensor, state: torch.Tensor | None = None):
        return lif_multistep(x_seq, state, self.params(), self.spike_fn)

    def step(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """Single step: ``x [B, ...]`` -> ``(spikes [B, ...], v [B, ...])``."""
        if state is None:
            state = torch.full_like(x, self.v_reset)
        return lif_step(x, state, self.params(), self.spike_fn)

    def extra_repr(self) -> str:
        reset = "soft" if self.soft_reset else f"hard(v_reset={self.v_reset:g})"
        return f"tau={self.tau:.3g}ms, dt={self.dt:g}ms, v_threshold={float(self.v_threshold.detach()):g}, reset={reset}"


NEURONS: dict[str, type[SpikingNeuron]] = {"lif": LIF}
"""Neuron models by name (``ModelConfig.neuron``); each takes ``tau``, ``dt``, ``v_threshold``, ``learn_tau``."""
