"""Compiled CPU kernels of the selective-scan core (numba, ``cache=True``, parallel over batch x channels).

The kernels compute only the recurrence and its read-out, the part whose autograd graph is what makes
a PyTorch loop slow and memory-hungry::

    x[t, n] = exp(dt[t] * A[n]) * x[t-1, n] + dt[t] * B[t, n] * u[t]
    y[t]    = sum_n x[t, n] * C[t, n]

per (batch b, channel d). Delta bias/softplus, the ``D`` skip and the ``z`` gate stay in PyTorch
(elementwise, ``[B, D, L]``), so autograd handles them. Layouts (all C-contiguous, one dtype, float32
or float64): ``u, dt: [B, D, L]``; ``A: [D, N]``; ``Bt, Ct: [B, L, N]`` (time-major, so the inner loop
over states reads contiguous memory); ``x0: [B, D, N]``.

The backward does not store the ``[B, D, L, N]`` states: each (b, d) task recomputes its own states
into an ``[L, N]`` scratch buffer, then runs the adjoint recurrence backwards in time. Gradients of
``B``/``C`` (summed over channels) go to per-(b, channel-group) partial buffers, those of ``A``
(summed over the batch) to per-(b, d) rows, so no two tasks ever write the same memory.

``exp`` dominates the cost (10x the rest of the recurrence with libm's scalar ``expf``), so float32
uses :func:`exp_f32`, a branch-free exp that LLVM vectorises: Cody-Waite range reduction by ln 2
(split in two so ``v - k ln2`` is exact), a degree-7 Taylor polynomial on ``|f| <= ln2 / 2``
(truncation error < 1e-8) and 2^k built from its IEEE bits (``(k + 127) << 23``, no table lookup, so
LLVM vectorises loops that call it without gathers); max relative error 1.5e-7 (about 1 ulp, like libm's)
on [-87, 88]. float64 uses ``math.exp``.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import prange
from numba.core import types
from numba.extending import intrinsic, overload

# nan/inf keep their IEEE meaning; reassociation lets LLVM vectorise the sum over states.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@intrinsic
def _bits_as_f32(typingctx, i):
    """Reinterpret the low 32 bits of an integer as a float32 (a bitcast, no conversion)."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        if v.type.width != 32:
            v = builder.trunc(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(i), codegen


@numba.njit(fastmath=FASTMATH, cache=True, inline="always")
def exp_f32(v):  # pragma: no cover - compiled
    """``exp(v)`` for float32 ``v`` in [-87, 88] (clamped there: exp(-87) = 1.6e-38 stands for 0)."""
    v = min(max(v, np.float32(-87.0)), np.float32(88.0))
    k = np.floor(v * np.float32(1.4426950408889634) + np.float32(0.5))
    f = (v - k * np.float32(0.693145751953125)) - k * np.float32(1.428606765330187e-06)
    p = np.float32(1.0) + f * (
        np.float32(1.0)
        + f
        * (
            np.float32(0.5)
            + f
            * (
                np.float32(1 / 6)
                + f
                * (
                    np.float32(1 / 24)
                    + f * (np.float32(1 / 120) + f * (np.float32(1 / 720) + f * np.float32(1 / 5040)))
                )
            )
        )
    )
    return p * _bits_as_f32((np.int32(k) + 127) << 23)


def _exp(v):  # the dtype-dispatched exp used by the kernels
    return math.exp(v)


@overload(_exp, inline="always", fastmath=FASTMATH)
def _exp_impl(v):
    if v == types.float32:
        return lambda v: exp_f32(v)
    return lambda v: math.exp(v)


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def scan_fwd(u, dt, A, Bt, Ct, x0, y, last):  # pragma: no cover - compiled
    nb, nd, L = u.shape
    N = A.shape[1]
    zero = u.dtype.type(0.0)  # accumulate in the input dtype
    for p in prange(nb * nd):
        b = p // nd
        d = p % nd
        x = x0[b, d].copy()  # (N,)
        for t in range(L):
            dtt = dt[b, d, t]
            du = dtt * u[b, d, t]
            acc = zero
            for n in range(N):
                x[n] = _exp(dtt * A[d, n]) * x[n] + du * Bt[b, t, n]
                acc += x[n] * Ct[b, t, n]
            y[b, d, t] = acc
        for n in range(N):
            last[b, d, n] = x[n]


@numba.njit(parallel=True, cache=True, fastmath=FASTMATH)
def scan_bwd(
    u, dt, A, Bt, Ct, x0, gy, glast, groups, du_out, ddt_out, dA_rows, dB_part, dC_part, dx0_out
):  # pragma: no cover
    """``gy [B, D, L]``, ``glast [B, D, N]`` -> fills ``du, ddt [B, D, L]``, ``dA_rows [B, D, N]``
    (sum over b later), ``dB_part, dC_part [B, G, L, N]`` (sum over G later), ``dx0 [B, D, N]``."""
    nb, nd, L = u.shape
    N = A.shape[1]
    per = (nd + groups - 1) // groups
    zero = u.dtype.type(0.0)
    for p in prange(nb * groups):
        b = p // groups
        g = p % groups
        xs = np.empty((L + 1, N), dtype=u.dtype)  # states x[-1..L-1]
        dAe = np.empty((L, N), dtype=u.dtype)  # exp(dt * A)
        h = np.empty(N, dtype=u.dtype)
        dA_acc = np.empty(N, dtype=np.float64)
        for d in range(g * per, min(nd, (g + 1) * per)):
            # recompute the forward states of this (b, d)
            for n in range(N):
                xs[0, n] = x0[b, d, n]
            for t in range(L):
                dtt = dt[b, d, t]
                du = dtt * u[b, d, t]
                for n in range(N):
                    e = _exp(dtt * A[d, n])
                    dAe[t, n] = e
                    xs[t + 1, n] = e * xs[t, n] + du * Bt[b, t, n]
            # adjoint, backwards in time; h = dLoss/dx[t]
            for n in range(N):
                h[n] = glast[b, d, n]
                dA_acc[n] = 0.0
            for t in range(L - 1, -1, -1):
                g_t = gy[b, d, t]
                dtt = dt[b, d, t]
                ut = u[b, d, t]
                du_acc = zero
                ddt_acc = zero
                for n in range(N):
                    hn = h[n] + g_t * Ct[b, t, n]
                    dC_part[b, g, t, n] += g_t * xs[t + 1, n]
                    bn = Bt[b, t, n]
                    dB_part[b, g, t, n] += hn * dtt * ut
                    du_acc += hn * bn
                    e = dAe[t, n]
                    hx = hn * xs[t, n] * e  # d/d(dt*A) of exp(dt*A) * x[t-1]
                    ddt_acc += hn * bn * ut + hx * A[d, n]
                    dA_acc[n] += hx * dtt
                    h[n] = hn * e
                du_out[b, d, t] = du_acc * dtt
                ddt_out[b, d, t] = ddt_acc
            for n in range(N):
                dx0_out[b, d, n] = h[n]
                dA_rows[b, d, n] = dA_acc[n]


def warm_up() -> None:
    """Compile (or load from numba's cache) the forward kernel for float32 and float64 now, so a failure
    shows at load time, once."""
    for dt in (np.float32, np.float64):
        z3, z2 = np.zeros((1, 1, 1), dt), np.zeros((1, 1), dt)
        scan_fwd(z3, z3, z2, z3, z3, z3, z3.copy(), z3.copy())
