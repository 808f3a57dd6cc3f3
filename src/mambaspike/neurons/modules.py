"""Neuron modules: they hold parameters (learnable time constants and thresholds) and wire up the cores.

Names follow spikingjelly (``tau``, ``v_threshold``, ``v_reset``, ``detach_reset``, ``decay_input``).
Time constants are given in **milliseconds** together with the bin width ``dt`` (ms), so ``tau = 30 ms``
means the same dynamics at every binning; inside, ``beta = exp(-dt / tau)`` per bin, a learnable time
constant parameterised as ``beta = sigmoid(w)`` (PLIF, Fang et al. 2021).

Every module follows ``forward(x_seq [T, B, ...], state=None) -> (spikes [T, B, ...], state)`` and
``step(x [B, ...], state=None) -> (spikes [B, ...], state)``; the two give identical results and
streaming in chunks continues the same trajectory. Streaming state is never in the ``state_dict``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mambaspike.neurons.alif_fast import (
    ALIF_BACKENDS,
    alif_multistep_fast,
    ralif_inference,
    recurrent_inference_unsupported,
)
from mambaspike.neurons.functional import (
    ALIFParams,
    ALIFState,
    LIFParams,
    SRMParams,
    SRMState,
    SynapticParams,
    SynapticState,
    alif_step,
    lif_step,
    srm_multistep,
    srm_step,
    synaptic_multistep,
    synaptic_step,
)
from mambaspike.neurons.lif_fast import LIF_BACKENDS, _kernel_failed, lif_multistep_fast
from mambaspike.neurons.recurrent import _rlif_fused, fused_supported, rlif_multistep
from mambaspike.neurons.surrogate import Surrogate, make_surrogate


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class SpikingNeuron(nn.Module):
    """Base class of every spiking neuron population.

    Subclasses implement ``forward(x_seq [T, B, ...], state=None) -> (spikes [T, B, ...], state)``
    and ``step(x [B, ...], state=None) -> (spikes [B, ...], state)``. Evaluation tools (spike
    counters, firing-rate and energy reports) find neurons by this class and read ``output[0]``.
    """


class _Decaying(nn.Module):
    """A population whose membrane decays by ``beta = exp(-dt / tau)`` per bin, learnable as
    ``beta = sigmoid(w)`` (PLIF): the time-constant machinery shared by the spiking neurons and the
    non-spiking :class:`LeakyIntegrator`."""

    def _init_decay(self, tau: float, dt: float, learn_tau: bool) -> None:
        if not (tau > 0 and dt > 0):
            raise ValueError(f"{type(self).__name__}: tau and dt must be positive ms values, got tau={tau}, dt={dt}")
        self.dt = float(dt)
        self.w = self._decay_weight(tau, learn_tau)

    def _decay_weight(self, tau: float, learn: bool):
        """``w = logit(exp(-dt / tau))`` as a parameter (learnable) or a buffer."""
        if not tau > 0:
            raise ValueError(f"{type(self).__name__}: time constants must be positive ms values, got {tau}")
        w = torch.tensor(_logit(math.exp(-self.dt / tau)))
        return nn.Parameter(w) if learn else nn.Buffer(w)

    def _tau_of(self, w: torch.Tensor) -> float:
        return -self.dt / math.log(float(torch.sigmoid(w.detach())))

    @property
    def beta(self) -> torch.Tensor:
        """Membrane decay per bin, ``exp(-dt / tau)``."""
        return torch.sigmoid(self.w)

    @property
    def tau(self) -> float:
        """Current membrane time constant in ms."""
        return self._tau_of(self.w)


class _LeakyNeuron(SpikingNeuron, _Decaying):
    """Shared parameters of the neurons in this module.

    ``tau`` (membrane time constant, ms), ``dt`` (bin width, ms), ``v_threshold``, ``learn_tau`` (time
    constants learnable, as ``beta = sigmoid(w)``), ``learn_threshold``, ``surrogate`` (a name in
    ``SURROGATES`` or a ``Surrogate``) and ``alpha`` (its sharpness; ``None`` for its default).
    """

    def __init__(
        self,
        tau: float = 30.0,
        dt: float = 1.0,
        v_threshold: float = 1.0,
        learn_tau: bool = True,
        learn_threshold: bool = False,
        surrogate: str | Surrogate = "atan",
        alpha: float | None = None,
    ):
        super().__init__()
        self._init_decay(tau, dt, learn_tau)
        vth = torch.tensor(float(v_threshold))
        self.v_threshold = nn.Parameter(vth) if learn_threshold else nn.Buffer(vth)
        self.spike_fn = make_surrogate(surrogate, alpha)

    def extra_repr(self) -> str:
        return f"tau={self.tau:.3g}ms, dt={self.dt:g}ms, v_threshold={float(self.v_threshold.detach()):g}"


class LIF(_LeakyNeuron):
    """Leaky integrate-and-fire neurons with a learnable membrane time constant (PLIF).

    Args:
        tau: initial membrane time constant in ms.
        dt: bin width in ms.
        v_threshold: firing threshold (learnable when ``learn_threshold``).
        v_reset: reset potential for the hard reset.
        soft_reset: subtract the threshold instead of resetting to ``v_reset``.
        detach_reset: do not backpropagate through the reset.
        decay_input: scale the input by ``1 - beta`` (spikingjelly) or not (snnTorch).
        learn_tau: learn the time constant (parameterised as ``beta = sigmoid(w)``, as PLIF does).
        learn_threshold: learn ``v_threshold``.
        surrogate: name in ``SURROGATES``; ``alpha`` its sharpness (``None``: its default).
        backend: multi-step implementation, ``"auto"`` (compiled kernel where it applies),
            ``"numba"``/``"cpu"`` or ``"reference"`` (see :func:`lif_multistep_fast`).

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
        surrogate: str | Surrogate = "atan",
        alpha: float | None = None,
        backend: str = "auto",
    ):
        super().__init__(tau, dt, v_threshold, learn_tau, learn_threshold, surrogate, alpha)
        if backend not in LIF_BACKENDS:
            raise ValueError(f"LIF: unknown backend {backend!r}; expected one of {', '.join(LIF_BACKENDS)}")
        self.v_reset = float(v_reset)
        self.soft_reset = soft_reset
        self.detach_reset = detach_reset
        self.decay_input = decay_input
        self.backend = backend

    def params(self) -> LIFParams:
        return LIFParams(
            self.beta, self.v_threshold, self.v_reset, self.soft_reset, self.detach_reset, self.decay_input
        )

    def forward(self, x_seq: torch.Tensor, state=None, recurrent: torch.Tensor | None = None):
        """``recurrent``: a ``[C, C]`` weight from the population's spikes at ``t - 1`` to its input at
        ``t`` (channels on axis 2 of ``x_seq``); the state is then ``(v, s_prev)`` (see
        :mod:`mambaspike.neurons.recurrent`): the compiled kernel where it applies and the backend allows,
        else the reference loop."""
        if recurrent is not None:
            p = self.params()
            if self.backend in ("auto", "numba", "cpu") and x_seq.shape[0] > 1:
                why = fused_supported(x_seq, recurrent, p, self.spike_fn)
                if why is None:
                    try:
                        return _rlif_fused(x_seq, recurrent, state, p, self.spike_fn)
                    except Exception as e:
                        if not _kernel_failed(e, self.backend, "rlif_numba"):
                            raise
                if self.backend != "auto":
                    raise ValueError(f"LIF backend {self.backend!r} cannot run this recurrent call: {why}")
            return rlif_multistep(x_seq, recurrent, state, p, self.spike_fn)
        return lif_multistep_fast(x_seq, state, self.params(), self.spike_fn, backend=self.backend)

    def step(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """Single step: ``x [B, ...]`` -> ``(spikes [B, ...], v [B, ...])``."""
        if state is None:
            state = torch.full_like(x, self.v_reset)
        return lif_step(x, state, self.params(), self.spike_fn)

    def extra_repr(self) -> str:
        reset = "soft" if self.soft_reset else f"hard(v_reset={self.v_reset:g})"
        return f"{super().extra_repr()}, reset={reset}, backend={self.backend}"


class ALIF(_LeakyNeuron):
    """LIF with an adaptive threshold: each spike raises the threshold by ``adapt``, which decays back
    with the time constant ``tau_adapt`` (ms); see :func:`alif_step`. State: ``ALIFState(v, a)``.
    ``backend``: ``"auto"`` (the compiled kernel where it applies), ``"numba"``/``"cpu"`` or
    ``"reference"`` (see :func:`~mambaspike.neurons.alif_fast.alif_multistep_fast`)."""

    def __init__(
        self,
        tau: float = 30.0,
        dt: float = 1.0,
        v_threshold: float = 1.0,
        tau_adapt: float = 200.0,
        adapt: float = 0.2,
        v_reset: float = 0.0,
        soft_reset: bool = False,
        detach_reset: bool = False,
        decay_input: bool = True,
        learn_tau: bool = True,
        learn_threshold: bool = False,
        surrogate: str | Surrogate = "atan",
        alpha: float | None = None,
        backend: str = "auto",
    ):
        super().__init__(tau, dt, v_threshold, learn_tau, learn_threshold, surrogate, alpha)
        if backend not in ALIF_BACKENDS:
            raise ValueError(f"ALIF: unknown backend {backend!r}; expected one of {', '.join(ALIF_BACKENDS)}")
        self.backend = backend
        self.w_adapt = self._decay_weight(tau_adapt, learn_tau)
        self.adapt = float(adapt)
        self.v_reset = float(v_reset)
        self.soft_reset = soft_reset
        self.detach_reset = detach_reset
        self.decay_input = decay_input

    @property
    def tau_adapt(self) -> float:
        return self._tau_of(self.w_adapt)

    def params(self) -> ALIFParams:
        return ALIFParams(
            self.beta,
            self.v_threshold,
            torch.sigmoid(self.w_adapt),
            self.adapt,
            self.v_reset,
            self.soft_reset,
            self.detach_reset,
            self.decay_input,
        )

    def initial_state(self, x: torch.Tensor) -> ALIFState:
        return ALIFState(torch.full_like(x, self.v_reset), torch.zeros_like(x))

    def forward(self, x_seq: torch.Tensor, state=None, recurrent: torch.Tensor | None = None):
        """``recurrent``: a ``[C, C]`` weight from the population's spikes at ``t - 1`` to its input at
        ``t`` (channels on axis 2), for inference only: the whole sequence in one compiled call
        (:func:`~mambaspike.neurons.alif_fast.ralif_inference`), the state then ``(ALIFState, s_prev)``;
        a ``ValueError`` where it cannot run (see ``recurrent_inference_unsupported``). Training runs the
        recurrence bin by bin (:class:`mambaspike.layers.blocks.SpikingConvBlock`)."""
        if recurrent is not None:
            p = self.params()
            why = recurrent_inference_unsupported(x_seq, recurrent, p, self.spike_fn)
            if why is not None:
                raise ValueError(f"ALIF cannot run this recurrent call in one piece: {why}")
            return ralif_inference(x_seq, recurrent, state, p)
        return alif_multistep_fast(x_seq, state, self.params(), self.spike_fn, backend=self.backend)

    def step(self, x: torch.Tensor, state: ALIFState | None = None):
        return alif_step(x, self.initial_state(x) if state is None else state, self.params(), self.spike_fn)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau_adapt={self.tau_adapt:.3g}ms, adapt={self.adapt:g}, backend={self.backend}"


class SynapticLIF(_LeakyNeuron):
    """Current-based LIF with two time constants: synaptic current (``tau_syn``, ms) and membrane
    (``tau``, ms); see :func:`synaptic_step`. State: ``SynapticState(v, i)``."""

    def __init__(
        self,
        tau: float = 30.0,
        dt: float = 1.0,
        v_threshold: float = 1.0,
        tau_syn: float = 5.0,
        v_reset: float = 0.0,
        soft_reset: bool = False,
        detach_reset: bool = False,
        decay_input: bool = True,
        learn_tau: bool = True,
        learn_threshold: bool = False,
        surrogate: str | Surrogate = "atan",
        alpha: float | None = None,
    ):
        super().__init__(tau, dt, v_threshold, learn_tau, learn_threshold, surrogate, alpha)
        self.w_syn = self._decay_weight(tau_syn, learn_tau)
        self.v_reset = float(v_reset)
        self.soft_reset = soft_reset
        self.detach_reset = detach_reset
        self.decay_input = decay_input

    @property
    def beta_syn(self) -> torch.Tensor:
        return torch.sigmoid(self.w_syn)

    @property
    def tau_syn(self) -> float:
        return self._tau_of(self.w_syn)

    def params(self) -> SynapticParams:
        return SynapticParams(
            self.beta,
            self.beta_syn,
            self.v_threshold,
            self.v_reset,
            self.soft_reset,
            self.detach_reset,
            self.decay_input,
        )

    def initial_state(self, x: torch.Tensor) -> SynapticState:
        return SynapticState(torch.full_like(x, self.v_reset), torch.zeros_like(x))

    def forward(self, x_seq: torch.Tensor, state: SynapticState | None = None):
        return synaptic_multistep(x_seq, state, self.params(), self.spike_fn)

    def step(self, x: torch.Tensor, state: SynapticState | None = None):
        return synaptic_step(x, self.initial_state(x) if state is None else state, self.params(), self.spike_fn)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau_syn={self.tau_syn:.3g}ms"


class SRM(_LeakyNeuron):
    """Spike response model (SRM0): the potential is the input filtered by an exponential membrane
    kernel (``tau``, ms) plus a refractory kernel ``-eta * exp(-k dt / tau_refr)`` after each spike
    (no reset); see :func:`srm_step`. State: ``SRMState(psp, r)``.

    ``tau_refr=None`` takes ``tau`` and ``eta=None`` takes ``v_threshold``: with both defaults the
    SRM reproduces the soft-reset LIF exactly (a shorter ``tau_refr`` gives a brief refractoriness).
    ``soft_reset`` is accepted so that every neuron takes the same options, and must be ``False``: the
    refractory kernel takes the reset's place.
    """

    def __init__(
        self,
        tau: float = 30.0,
        dt: float = 1.0,
        v_threshold: float = 1.0,
        tau_refr: float | None = None,
        eta: float | None = None,
        soft_reset: bool = False,
        detach_reset: bool = False,
        decay_input: bool = True,
        learn_tau: bool = True,
        learn_threshold: bool = False,
        surrogate: str | Surrogate = "atan",
        alpha: float | None = None,
    ):
        if soft_reset:
            raise ValueError("SRM: soft_reset must be False (the refractory kernel takes the reset's place)")
        super().__init__(tau, dt, v_threshold, learn_tau, learn_threshold, surrogate, alpha)
        self.w_refr = self._decay_weight(tau if tau_refr is None else tau_refr, learn_tau)
        self.eta = float(v_threshold if eta is None else eta)
        self.detach_reset = detach_reset
        self.decay_input = decay_input

    @property
    def tau_refr(self) -> float:
        return self._tau_of(self.w_refr)

    def params(self) -> SRMParams:
        return SRMParams(
            self.beta, torch.sigmoid(self.w_refr), self.v_threshold, self.eta, self.detach_reset, self.decay_input
        )

    def initial_state(self, x: torch.Tensor) -> SRMState:
        return SRMState(torch.zeros_like(x), torch.zeros_like(x))

    def forward(self, x_seq: torch.Tensor, state: SRMState | None = None):
        return srm_multistep(x_seq, state, self.params(), self.spike_fn)

    def step(self, x: torch.Tensor, state: SRMState | None = None):
        return srm_step(x, self.initial_state(x) if state is None else state, self.params(), self.spike_fn)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau_refr={self.tau_refr:.3g}ms, eta={self.eta:g}"


class LeakyIntegrator(_Decaying):
    """A non-spiking leaky integrator (LI): the membrane of a LIF population without threshold or reset,
    read out as it is, the usual readout layer of an SNN (the front-end's ``readout="membrane"``)::

        v_t = beta * v_{t-1} + (1 - beta) * x_t     (decay_input; else beta * v_{t-1} + x_t)

    with ``beta = exp(-dt / tau)`` learnable as in :class:`LIF` (``beta = sigmoid(w)``). It is not a
    :class:`SpikingNeuron`: spike counters and firing-rate reports do not see it, and the energy estimate
    counts the layers it feeds as multiply-adds (its output is real-valued).
    ``forward(x_seq [T, B, ...], state=None) -> (v [T, B, ...], v_T [B, ...])``; ``step`` the same for one
    bin; the state starts at 0.
    """

    def __init__(self, tau: float = 30.0, dt: float = 1.0, learn_tau: bool = True, decay_input: bool = True):
        super().__init__()
        self._init_decay(tau, dt, learn_tau)
        self.decay_input = decay_input

    def _update(self, x: torch.Tensor, v: torch.Tensor | None, beta: torch.Tensor) -> torch.Tensor:
        drive = (1 - beta) * x if self.decay_input else x
        return drive if v is None else beta * v + drive

    def step(self, x: torch.Tensor, state: torch.Tensor | None = None):
        v = self._update(x, state, self.beta)
        return v, v

    def forward(self, x_seq: torch.Tensor, state: torch.Tensor | None = None):
        beta = self.beta  # once per sequence, not per bin
        out = []
        for x in x_seq.unbind(0):
            state = self._update(x, state, beta)
            out.append(state)
        if not out:
            return x_seq.new_empty(x_seq.shape), state
        return torch.stack(out), state

    def extra_repr(self) -> str:
        return f"tau={self.tau:.3g}ms, dt={self.dt:g}ms, decay_input={self.decay_input}"


NEURONS: dict[str, type[SpikingNeuron]] = {"lif": LIF, "alif": ALIF, "synaptic": SynapticLIF, "srm": SRM}
"""Neuron models by name (``ModelConfig.neuron``); each takes ``tau``, ``dt``, ``v_threshold``, ``learn_tau``."""
