"""Spiking neurons: surrogate spike functions, functional cores, fused multi-step LIF, modules, encoders.

Tensors are time-first: a sequence is ``[T, B, ...]``, one step ``[B, ...]``; time constants are in
milliseconds together with the bin width ``dt``.

- :mod:`~mambaspike.neurons.surrogate`: Heaviside forward, smooth derivative backward.
- :mod:`~mambaspike.neurons.functional`: pure step functions and reference loops (LIF, ALIF, synaptic, SRM).
- :mod:`~mambaspike.neurons.lif_fast`: the multi-step LIF through a compiled kernel (numba, Triton).
- :mod:`~mambaspike.neurons.recurrent`: LIF driven by its own spikes at ``t - 1``.
- :mod:`~mambaspike.neurons.modules`: ``LIF``, ``ALIF``, ``SynapticLIF``, ``SRM``, and the non-spiking
  ``LeakyIntegrator`` (the front-end's membrane readout).
- :mod:`~mambaspike.neurons.encoding`: rate, latency and delta coding of frames and signals.
"""

from mambaspike.neurons.functional import (
    ALIFParams,
    ALIFState,
    LIFParams,
    SRMParams,
    SRMState,
    SynapticParams,
    SynapticState,
    alif_multistep,
    alif_step,
    lif_multistep,
    lif_step,
    srm_kernels,
    srm_multistep,
    srm_step,
    synaptic_multistep,
    synaptic_step,
)
from mambaspike.neurons.lif_fast import LIF_BACKENDS, lif_multistep_fast
from mambaspike.neurons.modules import ALIF, LIF, NEURONS, SRM, LeakyIntegrator, SpikingNeuron, SynapticLIF
from mambaspike.neurons.recurrent import rlif_multistep, rlif_multistep_fast
from mambaspike.neurons.surrogate import SURROGATES, ATan, FastSigmoid, Sigmoid, Surrogate, Triangle, make_surrogate

__all__ = [
    "ALIF",
    "ALIFParams",
    "ALIFState",
    "ATan",
    "FastSigmoid",
    "LIF",
    "LIFParams",
    "LIF_BACKENDS",
    "LeakyIntegrator",
    "NEURONS",
    "SRM",
    "SRMParams",
    "SRMState",
    "SURROGATES",
    "Sigmoid",
    "SpikingNeuron",
    "Surrogate",
    "SynapticLIF",
    "SynapticParams",
    "SynapticState",
    "Triangle",
    "alif_multistep",
    "alif_step",
    "lif_multistep",
    "lif_multistep_fast",
    "lif_step",
    "make_surrogate",
    "rlif_multistep",
    "rlif_multistep_fast",
    "srm_kernels",
    "srm_multistep",
    "srm_step",
    "synaptic_multistep",
    "synaptic_step",
]
