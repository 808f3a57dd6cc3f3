"""Spiking blocks of the front-end: spiking convolution (conv 3x3 -> norm -> LIF, optionally
recurrent, then spatial pooling) and its 1-D form (linear -> norm -> LIF).

The norm (``norm``, one of ``CURRENT_NORMS``) of the block's input current: ``"batch"`` is BatchNorm
(batch statistics in training, running statistics in eval: the paper's); ``"sample"`` normalises each
sample's current in each bin on its own -- per channel over space for a convolution (GroupNorm with one
group per channel), over the features for a dense block (GroupNorm with one group); ``"running"`` does
the same with the statistics of the sample's bins so far (:class:`RunningSampleNorm`: causal, so a bin
keeps its activity relative to the sample's earlier bins). Both have a learned scale and shift per
channel, are the same in training and eval, make the current, and so the spikes, invariant to a
uniform rescaling of the block's input (dropped events) and remove a uniform offset (background
events) to first order; streaming stays exact (``"running"`` carries its sums in the block's state).

With ``neuron="li"`` (``INTEGRATOR``) the block does not spike: its neurons are leaky integrators
(:class:`mambaspike.neurons.LeakyIntegrator`) whose membrane potential is the block's output, the
front-end's membrane readout; such a block takes no recurrence.

The recurrent connection is a 1x1 convolution (or, for 1-D input, a dense layer) of the block's own
spikes at t-1 added to its input current at t; the whole sequence runs through the compiled recurrent
LIF of :mod:`mambaspike.neurons.recurrent` where it applies, else a loop over bins.
"""

from __future__ import annotations

import torch
from torch import nn

from mambaspike import kernels
from mambaspike.layers.pooling import per_bin
from mambaspike.neurons.alif_fast import recurrent_inference_unsupported
from mambaspike.neurons.modules import ALIF, LIF, NEURONS, LeakyIntegrator

CURRENT_NORMS = ("batch", "sample", "running")
READOUTS = ("spikes", "membrane")  # what the front-end's last block hands on (see SpikingFrontEnd)
INTEGRATOR = "li"  # the ``neuron`` of a block that integrates without spiking (the membrane readout)


class RunningSampleNorm(nn.Module):
    """Each sample's current normalised per channel by the mean and variance of that channel over space
    and over the sample's bins so far (``spatial=False``: over the features, one group)::

        m_t = S1_t / n_t,   v_t = max(S2_t / n_t - m_t^2, 0),   y_t = (x_t - m_t) / sqrt(v_t + eps) * w + b

    with ``S1_t``, ``S2_t`` the sums of ``x`` and ``x^2`` over space and bins ``<= t`` and ``n_t`` their
    count. ``forward(x [T, B, C, ...], state=None) -> (y, state)``, ``state = (S1 [B, G], S2 [B, G], n)``
    (``G = C``, or 1 without space), so a sequence split in two calls gives what one call gives."""

    def __init__(self, channels: int, spatial: bool = True, eps: float = 1e-5):
        super().__init__()
        self.spatial, self.eps = spatial, float(eps)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, state=None):
        T, B, C = x.shape[:3]
        f = x.reshape(T, B, C, -1) if self.spatial else x.reshape(T, B, 1, C)
        s1 = torch.cumsum(f.sum(-1), 0)  # (T, B, G)
        s2 = torch.cumsum((f * f).sum(-1), 0)
        n = f.shape[-1] * torch.arange(1, T + 1, dtype=x.dtype, device=x.device)[:, None, None]
        if state is not None:
            p1, p2, pn = state
            s1, s2, n = s1 + p1, s2 + p2, n + pn
        m = s1 / n
        v = (s2 / n - m * m).clamp(min=0)
        y = ((f - m[..., None]) * torch.rsqrt(v[..., None] + self.eps)).reshape(x.shape)
        shape = (1, 1, C) + (1,) * (x.dim() - 3)
        y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y, (s1[-1], s2[-1], n[-1, 0, 0])

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, spatial={self.spatial}, eps={self.eps:g}"


def current_norm(kind: str, channels: int, spatial: bool) -> nn.Module:
    """The norm of a block's input current (see the module docstring): ``[N, C, H, W]`` (``spatial``)
    or ``[N, C]`` in, the same shape out."""
    if kind == "batch":
        return nn.BatchNorm2d(channels) if spatial else nn.BatchNorm1d(channels)
    if kind == "sample":
        return nn.GroupNorm(channels if spatial else 1, channels)
    if kind == "running":
        return RunningSampleNorm(channels, spatial)
    raise ValueError(f"unknown current norm {kind!r}; available: {', '.join(CURRENT_NORMS)}")


class SpikingConvBlock(nn.Module):
    """conv3x3 -> norm (``norm``: see the module docstring) -> LIF (optionally recurrent) -> spatial
    max-pool.

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
        norm: str = "batch",
    ):
        super().__init__()
        self.norm_kind = norm  # which of CURRENT_NORMS ``bn`` is
        conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        rec = nn.Conv2d(c_out, c_out, 1, bias=False) if recurrent else None
        self._build(
            conv,
            current_norm(norm, c_out, spatial=True),
            lif_kwargs,
            neuron,
            rec,
            pool if pool is not None else nn.MaxPool2d(2),
        )

    def _build(self, conv: nn.Module, bn: nn.Module, lif_kwargs: dict, neuron: str, recurrent, pool: nn.Module):
        """Register the block's layers: ``conv``, ``bn`` (the current's norm, whichever it is), ``lif``,
        ``recurrent`` (or ``None``), ``pool``."""
        if neuron != INTEGRATOR and neuron not in NEURONS:
            raise ValueError(f"unknown neuron {neuron!r}; available: {', '.join(NEURONS)}")
        if neuron == INTEGRATOR and recurrent is not None:
            raise ValueError("a leaky-integrator block (the membrane readout) has no spikes to feed back")
        self.conv, self.bn = conv, bn
        if neuron == INTEGRATOR:  # only the time constant is shared with the spiking neurons
            keep = ("tau", "dt", "learn_tau")
            self.lif = LeakyIntegrator(**{k: lif_kwargs[k] for k in keep if k in lif_kwargs})
        else:
            self.lif = NEURONS[neuron](**lif_kwargs)
        self.recurrent = recurrent
        self.pool = pool

    def forward(self, x: torch.Tensor, state=None):
        """With a ``RunningSampleNorm`` the state is ``(norm state, neuron state)``."""
        if type(self.bn) is RunningSampleNorm:
            s_norm, state = state if state is not None else (None, None)
            current, s_norm = self.bn(per_bin(self.conv, x), s_norm)
            spikes, new_state = self._spiking(current, state)
            return spikes, (s_norm, new_state)
        return self._spiking(per_bin(lambda f: self.bn(self.conv(f)), x), state)  # current (T, B, Cout, ...)

    def _spiking(self, current: torch.Tensor, state):
        """The neurons (and the recurrence) over the current, then the spatial pooling."""
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
        return per_bin(self.pool, spikes), new_state

    def _recurrent_matrix(self) -> torch.Tensor:
        """The recurrent weight as ``[C, C]`` (a view: gradients reach the module's parameter)."""
        w = self.recurrent.weight
        return w if w.dim() == 2 else w[:, :, 0, 0]

    def _fuse_recurrence(self, current: torch.Tensor) -> bool:
        """Whether the whole recurrent sequence goes to the LIF in one call (``recurrent=W``: the
        compiled recurrent LIF where it applies, see :meth:`mambaspike.neurons.LIF.forward`) instead
        of the loop over bins: a plain ``LIF`` on the fused backends, more than one bin, and nothing
        observing the recurrent layer call by call (operation counters' hooks, tracing for export),
        which the loop serves; for ``ALIF`` also nothing that needs a gradient (its compiled recurrent
        path is forward only). Both give the same results."""
        if type(self.lif) not in (LIF, ALIF) or self.lif.backend not in ("auto", "numba", "cpu"):
            return False
        if current.shape[0] < 2 or kernels.observed(self.recurrent):
            return False
        if type(self.lif) is ALIF:  # the compiled recurrent ALIF is forward only: inference
            p = self.lif.params()
            return recurrent_inference_unsupported(current, self._recurrent_matrix(), p, self.lif.spike_fn) is None
        return True


class SpikingDenseBlock(SpikingConvBlock):
    """The 1-D block: linear -> norm -> LIF (optionally recurrent through a linear map of the block's
    spikes at t-1). ``[T, B, F_in] -> [T, B, F_out]``."""

    def __init__(
        self,
        f_in: int,
        f_out: int,
        lif_kwargs: dict,
        recurrent: bool = False,
        neuron: str = "lif",
        norm: str = "batch",
    ):
        nn.Module.__init__(self)
        self.norm_kind = norm
        linear = nn.Linear(f_in, f_out, bias=False)
        rec = nn.Linear(f_out, f_out, bias=False) if recurrent else None
        self._build(linear, current_norm(norm, f_out, spatial=False), lif_kwargs, neuron, rec, nn.Identity())
