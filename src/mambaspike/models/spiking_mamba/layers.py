"""Spiking building blocks of the Spiking Mamba / Transformer model (Miao, §4).

Everything is time-first: a token sequence is ``[T, B, L, D]`` (T time steps, B samples, L tokens,
D channels). Linear layers act on the last dimension; batch norms normalise each channel over
``T * B * L``; every spiking neuron is a :class:`mambaspike.neurons.LIF` run over the T steps.

Neurons are LIFs with the membrane halved each step (``beta = 1/2``, spikingjelly's ``tau = 2``;
our ``LIF`` uses the exact decay ``exp(-dt / tau)``, hence ``tau = 1 / ln 2`` steps), the input not
decayed (``h = v / 2 + x``, snnTorch's ``Leaky(beta=0.5)``), hard reset to 0, threshold 1: a neuron
fires at once for an input of at least 1 and integrates smaller inputs over a few steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mambaspike.neurons.modules import LIF
from mambaspike.ssm.spiking_scan import spiking_scan

SPIKE_TAU = 1 / math.log(2)  # steps (dt = 1): beta = exp(-1 / tau) = 1/2
# Threshold of neurons fed by sums/products of spikes (SEW add, Δ·A, Δ·B): 0.5 fires on every input
# spike (h >= 1), so "add, then LIF" is an OR and "product, then LIF" an AND of its input spikes.
SPIKE_SUM_THRESHOLD = 0.5


def lif(v_threshold: float = 1.0, learn_threshold: bool = False) -> LIF:
    """The paper's spiking neuron SN: LIF, membrane halved per step, input not decayed, fixed tau."""
    return LIF(
        tau=SPIKE_TAU,
        dt=1.0,
        v_threshold=v_threshold,
        decay_input=False,
        learn_tau=False,
        learn_threshold=learn_threshold,
    )


def spikes(neuron: LIF, x: torch.Tensor) -> torch.Tensor:
    """Run ``neuron`` over ``x [T, ...]`` from rest; return the spikes ``[T, ...]``."""
    return neuron(x)[0]


class ChannelNorm(nn.Module):
    """BatchNorm over the last dimension of ``[..., D]`` (statistics over all leading dimensions)."""

    def __init__(self, d: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class LinearBNLIF(nn.Module):
    """Linear -> BatchNorm -> LIF on ``[T, B, L, d_in] -> [T, B, L, d_out]`` spikes.

    ``membrane=True`` returns the neuron's input (the normalised projection) instead of its spikes,
    for the membrane shortcut."""

    def __init__(self, d_in: int, d_out: int, v_threshold: float = 1.0):
        super().__init__()
        self.fc = nn.Linear(d_in, d_out, bias=False)
        self.bn = ChannelNorm(d_out)
        self.lif = lif(v_threshold)

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spikes(self.lif, self.pre(x))


class SEWAdd(nn.Module):
    """Spike-element-wise shortcut: add two spike tensors, then a LIF (``SPIKE_SUM_THRESHOLD``)."""

    def __init__(self):
        super().__init__()
        self.lif = lif(SPIKE_SUM_THRESHOLD)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return spikes(self.lif, a + b)


class SpikingS6(nn.Module):
    """Spiking S6 selection (Fig. 4): every operation followed by a spiking neuron, no softmax.

    For spikes ``x [T, B, L, E]``::

        A  = SN(A_param)            (E, N)      K = SN(K_param)            (E,)
        B  = SN(Linear(x))          (T, B, L, N)      (each Linear followed by a BatchNorm,
        C  = SN(Linear(x))          (T, B, L, N)       as every projection of the block)
        Δ  = SN(Δ_bias + Linear(x)) (T, B, L, N)
        Ā  = SN(Δ ⊙ A)              (T, B, L, E, N)
        B̄  = SN(Δ ⊙ B)              (T, B, L, 1, N)
        y  = SN(SSM(Ā, B̄, C)(x) + x ⊙ K)        (T, B, L, E)

    with ``SSM`` the scan of :mod:`mambaspike.ssm.spiking_scan` over the L tokens, independently at
    each time step, input term ``B̄ ⊙ x`` (Fig. 5 leaves ``x`` out of its loop; ``SSM(Ā, B̄, C)(x)``
    in Fig. 4 applies the SSM to ``x``, as Mamba does). The neurons on the parameters ``A`` and ``K``
    see the same input at every step. ``forward(x, membrane=True)`` returns the input of the last
    neuron instead of its spikes (for the membrane shortcut).
    """

    def __init__(self, d_inner: int, d_state: int, scan_backend: str = "parallel"):
        super().__init__()
        self.scan_backend = scan_backend
        self.x_proj = nn.Linear(d_inner, 3 * d_state, bias=False)  # -> (B, C, Δ) pre-activations
        self.x_norm = ChannelNorm(3 * d_state)
        self.dt_bias = nn.Parameter(torch.full((d_state,), 1.0))
        # parameters start above the firing threshold (1) so A and K begin "on"; they can learn off
        self.A_param = nn.Parameter(1.5 + 0.5 * torch.rand(d_inner, d_state))
        self.K_param = nn.Parameter(1.5 + 0.5 * torch.rand(d_inner))
        self.sn_A, self.sn_K = lif(), lif()
        self.sn_B, self.sn_C, self.sn_dt = lif(), lif(), lif()
        self.sn_Abar, self.sn_Bbar = lif(SPIKE_SUM_THRESHOLD), lif(SPIKE_SUM_THRESHOLD)
        self.sn_y = lif()

    def forward(self, x: torch.Tensor, membrane: bool = False) -> torch.Tensor:
        T, Bsz, L, E = x.shape
        n = self.A_param.shape[1]
        A = spikes(self.sn_A, self.A_param.expand(T, E, n))  # (T, E, N)
        K = spikes(self.sn_K, self.K_param.expand(T, E))  # (T, E)
        b, c, dt = self.x_norm(self.x_proj(x)).split(n, dim=-1)  # (T, B, L, N) each
        B = spikes(self.sn_B, b)
        C = spikes(self.sn_C, c)
        delta = spikes(self.sn_dt, dt + self.dt_bias)  # (T, B, L, N)
        A_bar = spikes(self.sn_Abar, delta.unsqueeze(3) * A[:, None, None])  # (T, B, L, E, N)
        B_bar = spikes(self.sn_Bbar, delta * B).unsqueeze(3)  # (T, B, L, 1, N)
        bx = B_bar * x.unsqueeze(-1)  # (T, B, L, E, N)
        y = spiking_scan(A_bar.flatten(0, 1), bx.flatten(0, 1), C.flatten(0, 1), backend=self.scan_backend).view(
            T, Bsz, L, E
        )  # (T, B, L, E)
        pre = y + x * K[:, None, None]  # (T, B, L, E)
        return pre if membrane else spikes(self.sn_y, pre)


class ChannelConv(nn.Module):
    """``layers`` x (depthwise Conv1d over tokens, kernel 3, padding 1 -> BatchNorm -> LIF), ``[T, B, L, E]``.

    Depthwise (one kernel per channel) like Mamba's conv1d, which this layer replaces."""

    def __init__(self, d: int, layers: int = 1):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(d, d, 3, padding=1, groups=d, bias=False) for _ in range(layers))
        self.bns = nn.ModuleList(ChannelNorm(d) for _ in range(layers))
        self.lifs = nn.ModuleList(lif() for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, L, E = x.shape
        for conv, bn, neuron in zip(self.convs, self.bns, self.lifs):
            h = conv(x.reshape(T * B, L, E).transpose(1, 2)).transpose(1, 2).reshape(T, B, L, E)
            x = spikes(neuron, bn(h))
        return x


class SpikingMambaBlock(nn.Module):
    """Spiking Mamba block (Fig. 2), ``[T, B, L, D] -> [T, B, L, D]`` spikes::

    h     = BN(x)
    main  = SN(BN(in_proj(h)))              D -> E = expand * D
    main  = ChannelConv(main)               conv_layers x (conv k3 -> BN -> SN)
    s6    = SpikingS6(main)
    short = SN(BN(shortcut_proj(h)))        D -> E, a projection of its own
    z     = SN(s6 + short)                  SEW shortcut: add after the LIFs, then LIF
            (membrane shortcut: z = SN(s6_membrane + short_membrane), one LIF after the add)
    z     = mlp_layers x SN(BN(Linear(z)))  E -> E
    y     = SN(BN(out_proj(z)))             E -> D
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        expand: int = 2,
        conv_layers: int = 1,
        mlp_layers: int = 1,
        shortcut: str = "sew",
        scan_backend: str = "parallel",
    ):
        super().__init__()
        if shortcut not in ("sew", "membrane"):
            raise ValueError(f"SpikingMambaBlock: shortcut must be 'sew' or 'membrane', got {shortcut!r}")
        d_inner = expand * d_model
        self.shortcut = shortcut
        self.norm = ChannelNorm(d_model)
        self.in_proj = LinearBNLIF(d_model, d_inner)
        self.conv = ChannelConv(d_inner, conv_layers)
        self.s6 = SpikingS6(d_inner, d_state, scan_backend)
        self.shortcut_proj = LinearBNLIF(d_model, d_inner)
        self.add = SEWAdd() if shortcut == "sew" else lif()
        self.mlp = nn.Sequential(*(LinearBNLIF(d_inner, d_inner) for _ in range(mlp_layers)))
        self.out_proj = LinearBNLIF(d_inner, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)  # (T, B, L, D)
        main = self.conv(self.in_proj(h))  # (T, B, L, E)
        if self.shortcut == "sew":
            z = self.add(self.s6(main), self.shortcut_proj(h))  # (T, B, L, E)
        else:
            z = spikes(self.add, self.s6(main, membrane=True) + self.shortcut_proj.pre(h))
        return self.out_proj(self.mlp(z))  # (T, B, L, D)


class SpikingSelfAttentionBlock(nn.Module):
    """Spikformer encoder block with SSA (§4.3), ``[T, B, L, D] -> [T, B, L, D]`` spikes::

        Q, K, V = SN(BN(Linear(x)))                       (heads of D / heads channels)
        a       = SN_thr(Q K^T V)                          no scale factor; learnable threshold
        x       = SEW(x, SN(BN(Linear(a))))
        x       = SEW(x, SN(BN(Linear(SN(BN(Linear(x)))))))   MLP, hidden mlp_ratio * D

    ``Q (K^T V)`` is computed in that order (no softmax, so the product is associative): cost
    linear in L. The shortcuts are SEW (add, then LIF) like the Mamba block's, so blocks of both
    kinds exchange binary spikes and can be interleaved freely.
    """

    def __init__(self, d_model: int, heads: int = 8, mlp_ratio: int = 4, attn_threshold: float = 0.5):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"SpikingSelfAttentionBlock: d_model={d_model} is not divisible by heads={heads}")
        self.heads = heads
        self.q, self.k, self.v = (LinearBNLIF(d_model, d_model) for _ in range(3))
        self.attn_lif = lif(attn_threshold, learn_threshold=True)
        self.proj = LinearBNLIF(d_model, d_model)
        self.add1, self.add2 = SEWAdd(), SEWAdd()
        self.mlp = nn.Sequential(LinearBNLIF(d_model, mlp_ratio * d_model), LinearBNLIF(mlp_ratio * d_model, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B, L, D = x.shape
        h = self.heads

        def split(t):  # (T, B, L, D) -> (T, B, H, L, D/H)
            return t.view(T, B, L, h, D // h).transpose(2, 3)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        kv = k.transpose(-2, -1) @ v  # (T, B, H, D/H, D/H)
        attn = (q @ kv).transpose(2, 3).reshape(T, B, L, D)  # (T, B, L, D)
        x = self.add1(x, self.proj(spikes(self.attn_lif, attn)))
        return self.add2(x, self.mlp(x))


class SpikingPatchGenerator(nn.Module):
    """Spiking patch generator (§4.4): ``len(widths)`` blocks of conv3x3 -> BN -> maxpool(2, stride 2,
    padding 1) -> LIF on ``[T, B, C, H, W]``; then tokens ``[T, B, H' * W', widths[-1]]``.

    With ``rpe=True`` a relative-position-embedding conv follows, as in Spikformer's patch splitting:
    ``x = SEW(x, SN(BN(conv3x3(x))))``.
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], rpe: bool = True):
        super().__init__()
        chans = (in_channels, *widths)
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in zip(chans, chans[1:]))
        self.bns = nn.ModuleList(nn.BatchNorm2d(b) for b in widths)
        self.pool = nn.MaxPool2d(2, stride=2, padding=1)
        self.lifs = nn.ModuleList(lif() for _ in widths)
        d = widths[-1]
        self.rpe = nn.Sequential(nn.Conv2d(d, d, 3, padding=1, bias=False), nn.BatchNorm2d(d)) if rpe else None
        self.rpe_lif = lif() if rpe else None
        self.rpe_add = SEWAdd() if rpe else None

    @staticmethod
    def out_size(size: int, blocks: int) -> int:
        """Side length after ``blocks`` pools (each ``floor(s / 2) + 1``)."""
        for _ in range(blocks):
            size = size // 2 + 1
        return size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        for conv, bn, neuron in zip(self.convs, self.bns, self.lifs):
            h = self.pool(bn(conv(x.flatten(0, 1))))  # (T*B, C', H', W')
            x = spikes(neuron, h.view(T, B, *h.shape[1:]))  # (T, B, C', H', W')
        if self.rpe is not None:
            h = self.rpe(x.flatten(0, 1))
            x = self.rpe_add(x, spikes(self.rpe_lif, h.view(x.shape)))
        return x.flatten(3).transpose(2, 3)  # (T, B, L, D)
