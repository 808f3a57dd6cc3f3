"""GPU kernels of the fused multi-step LIF (Triton), used by :func:`mambaspike.neurons.lif_multistep_fast`.

The same algorithm as the CPU kernels (``mambaspike.kernels.lif_numba``): one program per block of
``BLOCK`` neurons loops over time; the forward reads ``x`` and writes the spikes; the backward
recomputes the pre-reset potentials ``h`` into the input-gradient buffer (a first pass), then runs
the adjoint recursion backwards in time, reading ``h[t]`` from that buffer and overwriting it with
``dL/dx[t]`` (``h[t-1]`` is read before step ``t-1`` overwrites it). Nothing per step is saved
between forward and backward but the input. Per-program partial sums of the ``beta`` and
``v_threshold`` gradients are added up on the host (deterministic). Scalars travel in a small
tensor of the inputs' dtype, so float64 runs in float64 throughout.

``tests/test_lif_triton.py`` compares it with the reference loop (in Triton's interpreter,
``TRITON_INTERPRET=1``, where no GPU is present). ``backend="auto"`` uses it only after a one-time check
on the device against the reference loop (``mambaspike.neurons.lif_fast._triton_usable``), and falls
back to the reference loop with a warning otherwise.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

BLOCK = 256


@triton.jit
def _surrogate(u, alpha, half_pi, KIND: tl.constexpr):
    if KIND == 0:  # atan
        z = (half_pi * alpha) * u
        sg = (alpha / 2) / (1 + z * z)
    elif KIND == 1:  # sigmoid
        e = 1 / (1 + tl.exp(-alpha * u))
        sg = alpha * e * (1 - e)
    elif KIND == 2:  # fast sigmoid
        d = 1 + alpha * tl.abs(u)
        sg = 1 / (d * d)
    else:  # triangle
        sg = alpha * tl.maximum(1 - alpha * tl.abs(u), 0.0)
    return sg


@triton.jit
def _reset(h, vth, v_reset, SOFT: tl.constexpr):
    if SOFT:
        v = tl.where((h - vth) >= 0, h - vth, h)
    else:
        v = tl.where((h - vth) >= 0, v_reset, h)
    return v


@triton.jit
def _lif_fwd_kernel(x_ptr, v0_ptr, s_ptr, vlast_ptr, p_ptr, T, N, SOFT: tl.constexpr, BLOCK: tl.constexpr):
    beta = tl.load(p_ptr)
    c = tl.load(p_ptr + 1)
    vth = tl.load(p_ptr + 2)
    v_reset = tl.load(p_ptr + 3)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    xp = x_ptr + offs
    sp = s_ptr + offs
    for _ in range(T):
        x = tl.load(xp, mask=mask, other=0.0)
        h = beta * v + c * x
        tl.store(sp, ((h - vth) >= 0).to(x.dtype), mask=mask)
        v = _reset(h, vth, v_reset, SOFT)
        xp += N
        sp += N
    tl.store(vlast_ptr + offs, v, mask=mask)


@triton.jit
def _lif_bwd_kernel(
    x_ptr,
    v0_ptr,
    gs_ptr,
    gvlast_ptr,
    gx_ptr,
    gv0_ptr,
    gbeta_ptr,
    gvth_ptr,
    p_ptr,
    T,
    N,
    last_row,
    gs_last,
    gs_stride_t,
    gs_stride_n,
    SOFT: tl.constexpr,
    DETACH: tl.constexpr,
    DECAY_INPUT: tl.constexpr,
    KIND: tl.constexpr,
    BLOCK: tl.constexpr,
):
    beta = tl.load(p_ptr)
    c = tl.load(p_ptr + 1)
    vth = tl.load(p_ptr + 2)
    v_reset = tl.load(p_ptr + 3)
    alpha = tl.load(p_ptr + 4)
    half_pi = tl.load(p_ptr + 5)
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    v0 = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    # pass 1: h[t] into the gradient buffer
    v = v0
    xp = x_ptr + offs
    hp_ = gx_ptr + offs
    for _ in range(T):
        x = tl.load(xp, mask=mask, other=0.0)
        h = beta * v + c * x
        tl.store(hp_, h, mask=mask)
        v = _reset(h, vth, v_reset, SOFT)
        xp += N
        hp_ += N
    # pass 2: the adjoint from t = T-1 down to 0; the pointers walk back one row per step
    g = tl.load(gvlast_ptr + offs, mask=mask, other=0.0)
    accb = g * 0.0
    acct = g * 0.0
    gxp = gx_ptr + last_row + offs
    xp = x_ptr + last_row + offs
    gsp = gs_ptr + gs_last + offs * gs_stride_n
    h = tl.load(gxp, mask=mask, other=0.0)
    for i in range(T):
        if i < T - 1:
            hq = tl.load(gxp - N, mask=mask, other=0.0)  # h[t-1], not yet overwritten
            vp = _reset(hq, vth, v_reset, SOFT)
        else:
            hq = h
            vp = v0
        u = h - vth
        sg = _surrogate(u, alpha, half_pi, KIND)
        s = tl.where(u >= 0, 1.0, 0.0).to(h.dtype)
        if SOFT:
            if DETACH:
                dvdh = sg * 0.0 + 1.0
                dvdth = -s
            else:
                dvdh = 1 - vth * sg
                dvdth = vth * sg - s
        else:
            if DETACH:
                dvdh = 1 - s
                dvdth = sg * 0.0
            else:
                dvdh = (1 - s) + (v_reset - h) * sg
                dvdth = (h - v_reset) * sg
        gs = tl.load(gsp, mask=mask, other=0.0)
        gh = gs * sg + g * dvdh
        tl.store(gxp, c * gh, mask=mask)
        if DECAY_INPUT:
            x = tl.load(xp, mask=mask, other=0.0)
            accb += gh * (vp - x)
        else:
            accb += gh * vp
        acct += g * dvdth - gs * sg
        g = beta * gh
        h = hq
        gxp -= N
        xp -= N
        gsp -= gs_stride_t
    tl.store(gv0_ptr + offs, g, mask=mask)
    tl.store(gbeta_ptr + pid, tl.sum(tl.where(mask, accb, 0.0), axis=0))
    tl.store(gvth_ptr + pid, tl.sum(tl.where(mask, acct, 0.0), axis=0))


def _params(like: torch.Tensor, *values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def lif_forward(x2, v0, beta: float, c: float, vth: float, v_reset: float, soft: bool):
    """``x2 [T, N]``, ``v0 [N]`` (contiguous, same device and dtype) -> ``(spikes [T, N], v_last [N])``."""
    T, N = x2.shape
    s = torch.empty_like(x2)
    v_last = torch.empty_like(v0)
    p = _params(x2, beta, c, vth, v_reset)
    _lif_fwd_kernel[(triton.cdiv(N, BLOCK),)](x2, v0, s, v_last, p, T, N, SOFT=soft, BLOCK=BLOCK)
    return s, v_last


def lif_backward(x2, v0, gs, gv_last, beta, c, vth, v_reset, soft, detach, decay_input, kind, alpha):
    """Adjoint of :func:`lif_forward` -> ``(gx [T, N], gv0 [N], dL/dbeta, dL/dv_threshold)`` (floats last).

    ``gs`` is ``[T, N]`` (any strides, e.g. ``(0, 0)`` for a broadcast scalar).
    """
    T, N = x2.shape
    gx = torch.empty_like(x2)
    gv0 = torch.empty_like(v0)
    nprog = triton.cdiv(N, BLOCK)
    gbeta = torch.empty(nprog, dtype=x2.dtype, device=x2.device)
    gvth = torch.empty(nprog, dtype=x2.dtype, device=x2.device)
    p = _params(x2, beta, c, vth, v_reset, alpha, math.pi / 2)
    st, sn = gs.stride()
    _lif_bwd_kernel[(nprog,)](
        x2,
        v0,
        gs,
        gv_last,
        gx,
        gv0,
        gbeta,
        gvth,
        p,
        T,
        N,
        (T - 1) * N,
        (T - 1) * st,
        st,
        sn,
        SOFT=soft,
        DETACH=detach,
        DECAY_INPUT=decay_input,
        KIND=kind,
        BLOCK=BLOCK,
    )
    return gx, gv0, float(gbeta.double().sum()), float(gvth.double().sum())
