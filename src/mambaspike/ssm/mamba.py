"""Mamba block (Gu & Dao 2023), RMSNorm and the pre-norm residual stack.

Sequence tensors are ``[B, L, D]``. Every module follows ``forward(x, state=None) -> (y, state)``:
with ``state=None`` it runs a whole sequence from rest; given the state returned by a previous call
it continues where that call stopped, so a sequence cut into chunks (down to ``L = 1``) gives the same
output as the whole. A block's state is ``(conv_state [B, D_inner, d_conv - 1], ssm_state
[B, D_inner, N])``.

Streaming: every module also has ``step(x [B, D], state=None) -> (y [B, D], state)``, one time step
with the same state, in O(1) memory; a sequence fed step by step gives the full forward's output.

Fused inference: where no autograd graph is needed (CPU, float32/float64, scan backend ``auto`` or
``numba``), ``MambaBlock.forward`` runs the compiled kernels of :mod:`mambaspike.kernels.mamba_numba` between its GEMMs,
time-major ``[B, L, E]`` throughout (conv + SiLU; dt_proj + softplus + scan + ``D`` skip + SiLU gate),
instead of :meth:`MambaBlock.forward_reference`, and ``RMSNorm`` is one compiled call; same outputs and
states, within float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mambaspike import kernels
from mambaspike.kernels.views import numpy_view
from mambaspike.ssm.scan import selective_scan


@dataclass
class MambaConfig:
    d_model: int = 128
    n_layers: int = 2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | str = "auto"  # "auto" -> ceil(d_model / 16)
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4
    dt_scale: float = 1.0
    bias: bool = False
    conv_bias: bool = True
    scan_backend: str = "auto"  # see mambaspike.ssm.scan.BACKENDS

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def rank(self) -> int:
        return math.ceil(self.d_model / 16) if self.dt_rank == "auto" else int(self.dt_rank)


def _cpu_inference(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """What every fused path needs of its input: CPU float32/float64 like ``weight``, no autocast, not
    traced for export."""
    return (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and weight.dtype == x.dtype
        and not torch.is_autocast_enabled("cpu")
        and not kernels.tracing()
    )


def _fused_kernels(block: MambaBlock, x: torch.Tensor, state):
    """The kernel module of the fused inference forward where it applies, else ``None``: CPU float32 or
    float64 input with parameters of the same dtype, no autocast, ``scan_backend`` ``auto`` or
    ``numba`` with numba available, no forward hooks on the block or its layers (operation
    counters), and no autograd graph needed (grad mode off, or neither ``x``, the state nor any
    parameter requires grad)."""
    if x.dim() != 3 or block.cfg.scan_backend not in ("auto", "numba") or not _cpu_inference(x, block.in_proj.weight):
        return None
    if kernels.observed(block):  # operation counters hook the Linear/Conv1d layers the kernels replace
        return None
    if kernels.needs_graph(x, *block.parameters(), *(state if state is not None else ())):
        return None
    return kernels.load("mamba_numba")


def _rmsnorm(norm: RMSNorm, x: torch.Tensor, k) -> torch.Tensor:
    """``norm(x)`` through the compiled kernel (``x`` CPU, float32/float64, no graph needed)."""
    x = x.contiguous()
    out = torch.empty_like(x)
    eps = np.float32(norm.eps) if x.dtype == torch.float32 else float(norm.eps)
    d = x.shape[-1]
    k.rmsnorm(x.view(-1, d).numpy(), numpy_view(norm.weight, x.dtype), eps, out.view(-1, d).numpy())
    return out


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """In inference on CPU (no graph needed) one compiled call (:func:`_rmsnorm`), else torch's
        operations (not ``F.rms_norm``: it does not export to ONNX opset 17)."""
        if _cpu_inference(x, self.weight) and not kernels.needs_graph(x, self.weight):
            k = kernels.load("mamba_numba")
            if k is not None:
                return _rmsnorm(self, x, k)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class MambaBlock(nn.Module):
    """The Mamba mixer: in_proj -> causal depthwise conv1d -> SiLU -> x_proj (delta, B, C) -> dt_proj
    -> selective scan with S4D-real ``A = -exp(A_log)`` and skip ``D`` -> SiLU gate -> out_proj."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        d, di, n, r = cfg.d_model, cfg.d_inner, cfg.d_state, cfg.rank
        self.in_proj = nn.Linear(d, 2 * di, bias=cfg.bias)
        self.conv1d = nn.Conv1d(di, di, cfg.d_conv, groups=di, bias=cfg.conv_bias)
        self.x_proj = nn.Linear(di, r + 2 * n, bias=False)
        self.dt_proj = nn.Linear(r, di, bias=True)
        self.out_proj = nn.Linear(di, d, bias=cfg.bias)

        # delta initialisation (Mamba, §3.6 / mamba_simple.py): weights uniform in +-dt_rank^-0.5 *
        # dt_scale; the bias is softplus^-1 of dt drawn log-uniformly in [dt_min, dt_max].
        std = r**-0.5 * cfg.dt_scale
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(di) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
        dt = dt.clamp(min=cfg.dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.dt_proj.bias._no_reinit = True

        # S4D-real initialisation: A[d, n] = -(n + 1); kept as log, fp32, no weight decay.
        A = torch.arange(1, n + 1, dtype=torch.float32).repeat(di, 1)  # (D_inner, N)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(di))

    def forward(self, x: torch.Tensor, state=None):
        """``x [B, L, d_model]`` -> ``(y [B, L, d_model], (conv_state, ssm_state))``.

        Runs the fused inference kernels (:meth:`forward_fused`) where they apply (see
        :func:`_fused_kernels`), else :meth:`forward_reference`; both give the same output and states."""
        k = _fused_kernels(self, x, state)
        if k is not None:
            return self.forward_fused(x, state, k)
        return self.forward_reference(x, state)

    def forward_fused(self, x: torch.Tensor, state, k, residual: torch.Tensor | None = None):
        """The inference forward, time-major throughout: ``in_proj`` -> kernel (causal conv + SiLU) ->
        ``x_proj`` -> kernel (``dt_proj``, softplus, scan, ``D`` skip, SiLU gate) -> ``out_proj``.
        ``k`` is the kernel module (:mod:`mambaspike.kernels.mamba_numba`). No autograd graph. With ``residual``
        (``[B, L, d_model]``) the output is ``residual + out_proj(y)``, the sum done by the GEMM.

        The kernels run on the calling thread: right after each GEMM torch's OpenMP threads spin, and
        worker threads of our own on the same cores would wait for them (README, "Kernels, streaming and
        latency")."""
        cfg = self.cfg
        Bsz, L, _ = x.shape
        E, N, K, dtype = cfg.d_inner, cfg.d_state, cfg.d_conv, x.dtype
        if state is None:
            conv_state = x.new_zeros(Bsz, E, K - 1)
            h0 = x.new_zeros(Bsz, E, N)
        else:
            conv_state, h0 = (t.to(dtype).contiguous() for t in state)
        # the Linear layers as functions: no hooks to run here (_fused_kernels checked)
        xz = F.linear(x, self.in_proj.weight, self.in_proj.bias)  # (B, L, 2E), x: [0, E), z: [E, 2E)
        w = numpy_view(self.conv1d.weight).reshape(E, K)  # (E, K)
        cb = numpy_view(self.conv1d.bias) if self.conv1d.bias is not None else np.zeros(E, w.dtype)  # (E,)
        xc = x.new_empty(Bsz, L, E)  # (B, L, E)
        new_conv_state = x.new_empty(Bsz, E, K - 1)  # (B, E, d_conv-1)
        xz_np, xc_np = xz.numpy(), xc.numpy()
        # batch elements [0, Bsz) on this thread (see the docstring)
        k.conv_silu(xz_np, w, cb, conv_state.numpy(), xc_np, new_conv_state.numpy(), 0, Bsz)

        x_dbl = F.linear(xc, self.x_proj.weight, self.x_proj.bias)  # (B, L, R+2N): dt, B, C
        dt_w, A_in, a_is_log, a_scale, D, dt_bias = self._kernel_params(dtype, k)
        y = x.new_empty(Bsz, L, E)  # (B, L, E)
        last = x.new_empty(Bsz, E, N)  # (B, E, N)
        k.scan_gate(
            xz_np,
            xc_np,
            dt_w,
            x_dbl.numpy(),
            cfg.rank,
            A_in,
            a_is_log,
            a_scale,
            D,
            dt_bias,
            h0.numpy(),
            y.numpy(),
            last.numpy(),
            0,
            Bsz,
        )
        W, bias = self.out_proj.weight, self.out_proj.bias
        if residual is None:
            return F.linear(y, W, bias), (new_conv_state, last)
        out = residual.reshape(-1, W.shape[0])  # residual + y W^T in one GEMM (ResidualBlock)
        out = torch.addmm(out if bias is None else out + bias, y.view(-1, E), W.t())
        return out.view(Bsz, L, -1), (new_conv_state, last)

    def _kernel_params(self, dtype, k) -> tuple:
        """``(dt_w [E, R], A_in [E, N], a_is_log, a_scale, D [E], dt_bias [E])`` for
        :func:`._mamba_numba.scan_gate`, read from the live parameters on every call (views kept by
        :func:`mambaspike.kernels.views.numpy_view`; nothing that could go stale). In float32 the kernel
        takes ``A_log`` and computes ``-A = exp(A_log)`` itself; in float64 ``-A`` comes from torch's
        float32 ``exp``, exactly as :meth:`forward_reference` rounds it."""
        dt_w = numpy_view(self.dt_proj.weight, dtype)  # (E, R)
        if dtype == torch.float32 and self.A_log.dtype == torch.float32:
            A_in, is_log = numpy_view(self.A_log), True
        else:
            A_in, is_log = torch.exp(self.A_log.detach().float()).to(dtype).numpy(), False  # (E, N), -A
        a_scale = A_in.dtype.type(-k.LOG2E if dtype == torch.float32 else -1.0)  # float32 works in base 2
        f32 = dtype == torch.float32  # else through fp32 first, as forward_reference
        D = numpy_view(self.D, dtype) if f32 else self.D.detach().float().to(dtype).numpy()
        bias = self.dt_proj.bias
        dt_bias = numpy_view(bias, dtype) if f32 else bias.detach().float().to(dtype).numpy()
        return dt_w, A_in, is_log, a_scale, D, dt_bias

    def forward_reference(self, x: torch.Tensor, state=None):
        """The forward through :func:`selective_scan` (any backend, autograd): the ground truth of the
        fused path and the one used whenever a graph is needed."""
        cfg = self.cfg
        Bsz, L, _ = x.shape
        xz = self.in_proj(x).transpose(1, 2)  # (B, 2*ED, L)
        xc, z = xz.chunk(2, dim=1)  # (B, ED, L) each
        if state is None:
            conv_in = F.pad(xc, (cfg.d_conv - 1, 0))  # (B, ED, d_conv-1+L), causal
            ssm_state = None
        else:
            conv_state, ssm_state = state
            conv_in = torch.cat([conv_state, xc], dim=2)  # (B, ED, d_conv-1+L)
        new_conv_state = conv_in[:, :, conv_in.shape[2] - (cfg.d_conv - 1) :]  # (B, ED, d_conv-1)
        xc = F.silu(self.conv1d(conv_in))  # (B, ED, L)

        x_dbl = self.x_proj(xc.transpose(1, 2))  # (B, L, R+2N)
        dt, Bm, Cm = torch.split(x_dbl, [cfg.rank, cfg.d_state, cfg.d_state], dim=-1)
        delta = (dt @ self.dt_proj.weight.t()).transpose(1, 2)  # (B, ED, L), bias added in the scan
        A = -torch.exp(self.A_log.float())  # (ED, N)
        y, last = selective_scan(
            xc,
            delta,
            A,
            Bm.transpose(1, 2),  # (B, N, L)
            Cm.transpose(1, 2),  # (B, N, L)
            self.D.float(),
            z=z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
            return_last_state=True,
            initial_state=ssm_state,
            backend=cfg.scan_backend,
        )  # (B, ED, L), (B, ED, N)
        out = self.out_proj(y.transpose(1, 2))  # (B, L, d_model)
        return out, (new_conv_state, last)

    def step(self, x: torch.Tensor, state=None):
        """One time step: ``x [B, d_model]`` -> ``(y [B, d_model], (conv_state, ssm_state))``; the
        same states as ``forward`` (``None``: from rest)."""
        cfg = self.cfg
        xc, z = self.in_proj(x).chunk(2, dim=-1)  # (B, ED) each
        if state is None:
            conv_state = xc.new_zeros(xc.shape[0], cfg.d_inner, cfg.d_conv - 1)
            ssm_state = None
        else:
            conv_state, ssm_state = state
        conv_in = torch.cat([conv_state, xc[:, :, None]], dim=2)  # (B, ED, d_conv)
        xc = (conv_in * self.conv1d.weight[:, 0, :]).sum(-1)  # (B, ED), depthwise causal conv
        if self.conv1d.bias is not None:
            xc = xc + self.conv1d.bias
        xc = F.silu(xc)
        dt, Bm, Cm = torch.split(self.x_proj(xc), [cfg.rank, cfg.d_state, cfg.d_state], dim=-1)
        cd = xc.dtype if xc.dtype in (torch.float32, torch.float64) else torch.float32  # SSM in >= fp32

        def as_cd(t):
            return t if t.dtype == cd else t.to(cd)

        delta = F.softplus(as_cd(self.dt_proj(dt)))  # (B, ED)
        A = -torch.exp(as_cd(self.A_log))  # (ED, N)
        h = as_cd(ssm_state) if ssm_state is not None else xc.new_zeros(xc.shape[0], cfg.d_inner, cfg.d_state, dtype=cd)
        u = as_cd(xc)
        h = torch.exp(delta[:, :, None] * A) * h + (delta * u)[:, :, None] * as_cd(Bm)[:, None, :]  # (B, ED, N)
        y = (h * as_cd(Cm)[:, None, :]).sum(-1) + as_cd(self.D) * u  # (B, ED)
        y = y * F.silu(as_cd(z))
        if y.dtype != x.dtype:
            y = y.to(x.dtype)
        return self.out_proj(y), (conv_in[:, :, 1:], h)


class ResidualBlock(nn.Module):
    """Pre-norm residual: ``x + Mamba(RMSNorm(x))``."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.norm = RMSNorm(cfg.d_model)
        self.mixer = MambaBlock(cfg)

    def forward(self, x: torch.Tensor, state=None):
        k = _fused_kernels(self.mixer, x, state)
        if k is not None:  # the fused inference path: the residual added by out_proj's GEMM
            return self.mixer.forward_fused(self.norm(x), state, k, residual=x)
        y, state = self.mixer(self.norm(x), state)
        return x + y, state

    def step(self, x: torch.Tensor, state=None):
        y, state = self.mixer.step(self.norm(x), state)
        return x + y, state


class MambaBackbone(nn.Module):
    """A stack of residual Mamba blocks followed by a final RMSNorm. ``[B, L, D] -> [B, L, D]``."""

    def __init__(self, cfg: MambaConfig):
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(ResidualBlock(cfg) for _ in range(cfg.n_layers))
        self.norm_f = RMSNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, state=None):
        states = []
        for i, layer in enumerate(self.layers):
            x, s = layer(x, None if state is None else state[i])
            states.append(s)
        return self.norm_f(x), states

    def step(self, x: torch.Tensor, state=None):
        """One time step ``[B, D] -> [B, D]`` with the per-layer states of ``forward``."""
        states = []
        for i, layer in enumerate(self.layers):
            x, s = layer.step(x, None if state is None else state[i])
            states.append(s)
        return self.norm_f(x), states
