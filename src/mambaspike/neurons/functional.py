"""Functional cores of the neuron models: pure step functions and plain multi-step reference loops.

Layout follows norse: ``lif_step``, ``alif_step``, ``synaptic_step``, ``srm_step`` take an input, a
state and a small immutable parameter tuple and return ``(spikes, next_state)``; ``*_multistep`` run
them over ``x_seq [T, B, ...]`` (iterating ``unbind(0)``). Modules (:mod:`mambaspike.neurons.modules`)
only hold parameters and wire these up; the fused kernels (:mod:`mambaspike.neurons.lif_fast`) are
tested against them.

LIF membrane update (``decay_input=True``, spikingjelly's form)::

    h[t] = beta * v[t-1] + (1 - beta) * x[t]
    s[t] = H(h[t] - v_threshold)                     # surrogate gradient in backward
    v[t] = h[t] * (1 - s[t]) + v_reset * s[t]        # hard reset
    v[t] = h[t] - v_threshold * s[t]                 # soft (subtractive) reset

With ``decay_input=False`` the input is not scaled (snnTorch's ``Leaky``): ``h = beta*v + x``.
``detach_reset`` stops the gradient through the reset term (``s`` in the reset is detached).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


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


def _multistep(step, x_seq: torch.Tensor, state, p, spike_fn):
    """Run ``step`` over ``x_seq [T, ...]`` (iterating ``unbind(0)``) -> ``(spikes [T, ...], state)``."""
    spikes = []
    for x in x_seq.unbind(0):
        s, state = step(x, state, p, spike_fn)
        spikes.append(s)
    if not spikes:
        return x_seq.new_empty(x_seq.shape), state
    return torch.stack(spikes), state


def lif_multistep(
    x_seq: torch.Tensor, v: torch.Tensor | None, p: LIFParams, spike_fn
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference loop: ``x_seq`` ``[T, B, ...]`` -> ``(spikes [T, B, ...], v_last [B, ...])``.

    Iterates over ``unbind(0)`` (never ``x[t]`` on a tensor that needs grad, whose backward would
    allocate a full-size zero tensor per step) and stacks per-step outputs.
    """
    if v is None:
        v = x_seq.new_full(x_seq.shape[1:], p.v_reset)
    return _multistep(lif_step, x_seq, v, p, spike_fn)


class ALIFParams(NamedTuple):
    """Adaptive-threshold LIF: the threshold rises by ``adapt`` with every spike and decays back
    with ``rho = exp(-dt / tau_adapt)`` per bin."""

    beta: torch.Tensor
    v_threshold: torch.Tensor
    rho: torch.Tensor
    adapt: float = 0.2
    v_reset: float = 0.0
    soft_reset: bool = False
    detach_reset: bool = False
    decay_input: bool = True


class ALIFState(NamedTuple):
    v: torch.Tensor  # membrane potential after reset
    a: torch.Tensor  # adaptation trace: sum_k rho^k s[t-k]


def alif_step(x: torch.Tensor, state: ALIFState, p: ALIFParams, spike_fn) -> tuple[torch.Tensor, ALIFState]:
    """One step::

    h[t]     = beta * v[t-1] + (1 - beta) * x[t]          (x[t] when not decay_input)
    theta[t] = v_threshold + adapt * a[t-1]
    s[t]     = H(h[t] - theta[t])
    v[t]     = reset of h[t] (hard: v_reset; soft: h[t] - theta[t])
    a[t]     = rho * a[t-1] + s[t]
    """
    v, a = state
    h = p.beta * v + (1 - p.beta) * x if p.decay_input else p.beta * v + x
    theta = p.v_threshold + p.adapt * a
    s = spike_fn(h - theta)
    r = s.detach() if p.detach_reset else s
    v_next = h - r * theta if p.soft_reset else h * (1 - r) + r * p.v_reset
    return s, ALIFState(v_next, p.rho * a + s)


def alif_multistep(x_seq: torch.Tensor, state: ALIFState | None, p: ALIFParams, spike_fn):
    """Reference loop of :func:`alif_step`: ``[T, B, ...]`` -> ``(spikes [T, B, ...], ALIFState)``."""
    if state is None:
        state = ALIFState(x_seq.new_full(x_seq.shape[1:], p.v_reset), x_seq.new_zeros(x_seq.shape[1:]))
    return _multistep(alif_step, x_seq, state, p, spike_fn)


class SynapticParams(NamedTuple):
    """Current-based LIF: the input is filtered by a synaptic current with its own decay."""

    beta: torch.Tensor  # membrane decay per bin, exp(-dt / tau)
    beta_syn: torch.Tensor  # synaptic current decay per bin, exp(-dt / tau_syn)
    v_threshold: torch.Tensor
    v_reset: float = 0.0
    soft_reset: bool = False
    detach_reset: bool = False
    decay_input: bool = True


class SynapticState(NamedTuple):
    v: torch.Tensor  # membrane potential after reset
    i: torch.Tensor  # synaptic current


def synaptic_step(x: torch.Tensor, state: SynapticState, p: SynapticParams, spike_fn):
    """One step (``decay_input=False`` is snnTorch's ``Synaptic``)::

    i[t] = beta_syn * i[t-1] + (1 - beta_syn) * x[t]      (+ x[t] when not decay_input)
    h[t] = beta * v[t-1] + (1 - beta) * i[t]              (+ i[t] when not decay_input)
    s[t] = H(h[t] - v_threshold);  v[t] = reset of h[t]
    """
    v, i = state
    if p.decay_input:
        i = p.beta_syn * i + (1 - p.beta_syn) * x
        h = p.beta * v + (1 - p.beta) * i
    else:
        i = p.beta_syn * i + x
        h = p.beta * v + i
    s = spike_fn(h - p.v_threshold)
    r = s.detach() if p.detach_reset else s
    v_next = h - r * p.v_threshold if p.soft_reset else h * (1 - r) + r * p.v_reset
    return s, SynapticState(v_next, i)


def synaptic_multistep(x_seq: torch.Tensor, state: SynapticState | None, p: SynapticParams, spike_fn):
    """Reference loop of :func:`synaptic_step`."""
    if state is None:
        state = SynapticState(x_seq.new_full(x_seq.shape[1:], p.v_reset), x_seq.new_zeros(x_seq.shape[1:]))
    return _multistep(synaptic_step, x_seq, state, p, spike_fn)


class SRMParams(NamedTuple):
    """Spike response model (SRM0) with exponential kernels.

    Membrane (PSP) kernel ``eps[k] = (1 - beta) * beta^k`` (``beta^k`` when not ``decay_input``),
    refractory kernel ``eta[k] = -eta * beta_refr^k`` for ``k >= 1`` (nothing at ``k = 0``)::

        u[t] = sum_k eps[k] x[t-k] + sum_{k>=1} eta[k] s[t-k],    s[t] = H(u[t] - v_threshold)
    """

    beta: torch.Tensor  # membrane kernel decay per bin, exp(-dt / tau)
    beta_refr: torch.Tensor  # refractory kernel decay per bin, exp(-dt / tau_refr)
    v_threshold: torch.Tensor
    eta: torch.Tensor | float = 1.0  # refractory strength (potential drop one bin after a spike, / beta_refr)
    detach_reset: bool = False
    decay_input: bool = True


class SRMState(NamedTuple):
    psp: torch.Tensor  # sum_k eps[k] x[t-k]
    r: torch.Tensor  # refractory trace: sum_k beta_refr^k s[t-k]


def srm_step(x: torch.Tensor, state: SRMState, p: SRMParams, spike_fn) -> tuple[torch.Tensor, SRMState]:
    """One step, the kernels evaluated recursively::

    psp[t] = beta * psp[t-1] + (1 - beta) * x[t]
    u[t]   = psp[t] - eta * beta_refr * r[t-1]
    s[t]   = H(u[t] - v_threshold)
    r[t]   = beta_refr * r[t-1] + s[t]         (s detached with detach_reset)
    """
    psp, r = state
    psp = p.beta * psp + (1 - p.beta) * x if p.decay_input else p.beta * psp + x
    u = psp - p.eta * p.beta_refr * r
    s = spike_fn(u - p.v_threshold)
    r = p.beta_refr * r + (s.detach() if p.detach_reset else s)
    return s, SRMState(psp, r)


def srm_kernels(p: SRMParams, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two kernels ``(eps[0..length), eta[0..length))`` that :func:`srm_step` realises."""
    k = torch.arange(length, dtype=torch.as_tensor(p.beta).dtype)
    beta = torch.as_tensor(p.beta).detach()
    beta_r = torch.as_tensor(p.beta_refr).detach()
    eps = beta**k * ((1 - beta) if p.decay_input else 1)
    eta = torch.where(k >= 1, -torch.as_tensor(p.eta) * beta_r**k, torch.zeros(()))
    return eps, eta


def srm_multistep(x_seq: torch.Tensor, state: SRMState | None, p: SRMParams, spike_fn):
    """Reference loop of :func:`srm_step`."""
    if state is None:
        state = SRMState(x_seq.new_zeros(x_seq.shape[1:]), x_seq.new_zeros(x_seq.shape[1:]))
    return _multistep(srm_step, x_seq, state, p, spike_fn)
