"""GPU kernels of the selective scan's recurrence (Triton), used by the ``triton`` backend of
:func:`mambaspike.ssm.scan.selective_scan`.

The core only: given ``dt`` (``delta`` after bias and softplus), per channel ``d`` and state ``n``::

    x[t] = exp(dt[t] * A) * x[t-1] + dt[t] * B[t] * u[t]        x[-1] = x0
    y[t] = sum_n x[t] * C[t]

The ``D`` skip, the SiLU gate and ``delta``'s bias and softplus stay in torch around it (autograd).
One program per (batch row, block of ``BLOCK_D`` channels) holds the ``[BLOCK_D, N]`` state in
registers and loops over time. The forward writes ``y`` and the last state; nothing per step is
saved. The backward first recomputes the state entering every step into a ``[B, D, L, N]`` buffer,
then runs the adjoint recursion backwards in time. The ``B``/``C`` gradients (sums over channels)
and the ``A`` gradient (a sum over batch rows) come back as per-program partial sums that the host
adds up (deterministic). Tensors arrive contiguous in one dtype (float32, or float64), which is the
dtype of all the arithmetic.

``tests/test_scan_parallel.py`` compares it with the reference loop (in Triton's interpreter,
``TRITON_INTERPRET=1``, where no GPU is present).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK_D = 32


@triton.jit
def _scan_fwd_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, x0_ptr, y_ptr, last_ptr, Dm, L, N, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr
):
    b = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    md = d < Dm
    mn = n < N
    m2 = md[:, None] & mn[None, :]
    A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=m2, other=0.0)
    state = b * Dm * N + d[:, None] * N + n[None, :]
    x = tl.load(x0_ptr + state, mask=m2, other=0.0)
    row = b * Dm * L + d * L  # (BLOCK_D,) start of each channel's sequence
    col = b * N * L + n * L  # (BLOCK_N,) start of each state's B/C sequence
    for t in range(L):
        u = tl.load(u_ptr + row + t, mask=md, other=0.0)
        dt = tl.load(dt_ptr + row + t, mask=md, other=0.0)
        Bt = tl.load(B_ptr + col + t, mask=mn, other=0.0)
        Ct = tl.load(C_ptr + col + t, mask=mn, other=0.0)
        x = tl.exp(dt[:, None] * A) * x + (dt * u)[:, None] * Bt[None, :]
        tl.store(y_ptr + row + t, tl.sum(x * Ct[None, :], axis=1), mask=md)
    tl.store(last_ptr + state, x, mask=m2)


@triton.jit
def _scan_bwd_kernel(
    u_ptr,
    dt_ptr,
    A_ptr,
    B_ptr,
    C_ptr,
    x0_ptr,
    gy_ptr,
    glast_ptr,
    hs_ptr,
    du_ptr,
    ddt_ptr,
    dA_ptr,
    dB_ptr,
    dC_ptr,
    dx0_ptr,
    Dm,
    L,
    N,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    pd = tl.program_id(1)
    npd = tl.num_programs(1)
    d = pd * BLOCK_D + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    md = d < Dm
    mn = n < N
    m2 = md[:, None] & mn[None, :]
    A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=m2, other=0.0)
    state = b * Dm * N + d[:, None] * N + n[None, :]
    row = b * Dm * L + d * L
    col = b * N * L + n * L
    hrow = (b * Dm + d[:, None]) * L * N + n[None, :]  # hs[b, d, t, n] = hrow + t * N
    part = (b * npd + pd) * L * N + n  # dB/dC partials [B, npd, L, N]: part + t * N
    # pass 1: the state entering every step, x[t-1], into hs[:, :, t]
    x = tl.load(x0_ptr + state, mask=m2, other=0.0)
    for t in range(L):
        tl.store(hs_ptr + hrow + t * N, x, mask=m2)
        u = tl.load(u_ptr + row + t, mask=md, other=0.0)
        dt = tl.load(dt_ptr + row + t, mask=md, other=0.0)
        Bt = tl.load(B_ptr + col + t, mask=mn, other=0.0)
        x = tl.exp(dt[:, None] * A) * x + (dt * u)[:, None] * Bt[None, :]
    # pass 2: the adjoint g = dLoss/dx[t] from t = L-1 down to 0
    g = tl.load(glast_ptr + state, mask=m2, other=0.0)
    acc_A = g * 0.0
    for i in range(L):
        t = L - 1 - i
        u = tl.load(u_ptr + row + t, mask=md, other=0.0)
        dt = tl.load(dt_ptr + row + t, mask=md, other=0.0)
        Bt = tl.load(B_ptr + col + t, mask=mn, other=0.0)
        Ct = tl.load(C_ptr + col + t, mask=mn, other=0.0)
        gy = tl.load(gy_ptr + row + t, mask=md, other=0.0)
        xp = tl.load(hs_ptr + hrow + t * N, mask=m2, other=0.0)  # x[t-1]
        a = tl.exp(dt[:, None] * A)
        x = a * xp + (dt * u)[:, None] * Bt[None, :]  # x[t]
        g += gy[:, None] * Ct[None, :]
        tl.store(dC_ptr + part + t * N, tl.sum(gy[:, None] * x, axis=0), mask=mn)
        gaa = g * xp * a  # dLoss/d(dt * A), elementwise
        gB = tl.sum(g * Bt[None, :], axis=1)  # (BLOCK_D,)
        tl.store(ddt_ptr + row + t, tl.sum(gaa * A, axis=1) + gB * u, mask=md)
        tl.store(du_ptr + row + t, gB * dt, mask=md)
        tl.store(dB_ptr + part + t * N, tl.sum(g * (dt * u)[:, None], axis=0), mask=mn)
        acc_A += gaa * dt[:, None]
        g = a * g
    tl.store(dx0_ptr + state, g, mask=m2)
    tl.store(dA_ptr + state, acc_A, mask=m2)


def _blocks(N: int) -> int:
    return triton.next_power_of_2(max(N, 1))


def scan_forward(u, dt, A, B, C, x0):
    """``u, dt [B, D, L]``, ``A [D, N]``, ``B, C [B, N, L]``, ``x0 [B, D, N]`` (contiguous, one device
    and dtype) -> ``(y [B, D, L], last [B, D, N])``."""
    nb, nd, L = u.shape
    N = A.shape[1]
    y = torch.empty_like(u)
    last = torch.empty_like(x0)
    grid = (nb, triton.cdiv(nd, BLOCK_D))
    _scan_fwd_kernel[grid](u, dt, A, B, C, x0, y, last, nd, L, N, BLOCK_D=BLOCK_D, BLOCK_N=_blocks(N))
    return y, last


def scan_backward(u, dt, A, B, C, x0, gy, glast):
    """Adjoint of :func:`scan_forward` for upstream gradients ``gy [B, D, L]`` and ``glast [B, D, N]``
    (contiguous) -> ``(du, ddt, dA, dB, dC, dx0)`` shaped like ``(u, dt, A, B, C, x0)``."""
    nb, nd, L = u.shape
    N = A.shape[1]
    npd = triton.cdiv(nd, BLOCK_D)
    hs = torch.empty(nb, nd, L, N, dtype=u.dtype, device=u.device)
    du, ddt = torch.empty_like(u), torch.empty_like(u)
    dA_rows = torch.empty_like(x0)  # (B, D, N): summed over the batch below
    dB_part = torch.empty(nb, npd, L, N, dtype=u.dtype, device=u.device)
    dC_part = torch.empty(nb, npd, L, N, dtype=u.dtype, device=u.device)
    dx0 = torch.empty_like(x0)
    _scan_bwd_kernel[(nb, npd)](
        u,
        dt,
        A,
        B,
        C,
        x0,
        gy,
        glast,
        hs,
        du,
        ddt,
        dA_rows,
        dB_part,
        dC_part,
        dx0,
        nd,
        L,
        N,
        BLOCK_D=BLOCK_D,
        BLOCK_N=_blocks(N),
    )
    del hs
    dB = dB_part.sum(1).transpose(1, 2)  # (B, N, L)
    dC = dC_part.sum(1).transpose(1, 2)
    return du, ddt, dA_rows.sum(0), dB, dC, dx0
