"""Compiled CPU kernels of the fused inference forward of a Mamba block (numba, ``cache=True``, ``nogil``).

Used by :meth:`mambaspike.ssm.mamba.MambaBlock.forward` when no autograd graph is needed. Everything is
time-major (``[B, L, E]``, C-contiguous, as the Linear layers produce and consume it), so nothing is
transposed or copied between the GEMMs:

- :func:`conv_silu`: causal depthwise conv1d over time (width ``K``) + bias + SiLU of the ``x`` half
  of ``xz [B, L, 2E]`` into ``xc [B, L, E]``; also writes the new conv state ``[B, E, K-1]``;
- :func:`scan_gate`: ``delta = dt_proj(dt)`` (no bias), ``dt = softplus(delta + dt_bias)``, the
  recurrence ``h[n, d] = exp(dt A[d, n]) h[n, d] + dt u B[t, n]``, ``y = sum_n h C[t, n] + D u``,
  ``y *= silu(z)``. The state is held as ``[N, E]``, so the innermost loop runs over channels with
  unit stride and LLVM vectorises it, ``exp`` included: float32 takes ``A * log2(e)`` and
  computes ``exp(dt A)`` as :func:`exp2_neg_f32` (2^k from its IEEE bits, no table lookup), the
  softplus with :func:`exp_f32` and :func:`log1p_small_f32`.

Both kernels run a range of batch elements ``[b0, b1)`` over all channels and release the GIL. The
caller (:meth:`mambaspike.ssm.mamba.MambaBlock.forward_fused`) runs them on its own thread: split over
worker threads they would wait for torch's OpenMP threads spinning after each GEMM. They are not
``parallel=True`` for the reason given in :mod:`mambaspike.kernels.threads` (two spinning OpenMP
pools).
Every array has one dtype, float32 or float64; float64 uses libm's ``exp``/``log1p``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.core import types
from numba.extending import overload

from mambaspike.kernels.scan_numba import FASTMATH, _bits_as_f32, _exp, exp_f32

_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy", fastmath=FASTMATH)


@njit(inline="always", **_OPTS)
def log1p_small_f32(w):  # pragma: no cover - compiled
    """``log(1 + w)`` for float32 ``w`` in [0, 1]: ``2 atanh(s)``, ``s = w / (2 + w) <= 1/3``, odd
    series to ``s^13`` (truncation error < 2e-8 relative); branch-free, so it vectorises."""
    s = w / (np.float32(2.0) + w)
    s2 = s * s
    p = np.float32(1 / 13)
    p = p * s2 + np.float32(1 / 11)
    p = p * s2 + np.float32(1 / 9)
    p = p * s2 + np.float32(1 / 7)
    p = p * s2 + np.float32(1 / 5)
    p = p * s2 + np.float32(1 / 3)
    p = p * s2 + np.float32(1.0)
    return np.float32(2.0) * s * p


def _softplus(v):  # the dtype-dispatched softplus used by the kernels
    return math.log1p(math.exp(v))


@overload(_softplus, inline="always", fastmath=FASTMATH)
def _softplus_impl(v):
    """``softplus(v) = max(v, 0) + log1p(exp(-|v|))``; ``v`` itself above 20 (torch's threshold)."""
    if v == types.float32:

        def sp32(v):
            r = max(v, np.float32(0.0)) + log1p_small_f32(exp_f32(-abs(v)))
            return v if v > np.float32(20.0) else r

        return sp32

    def sp64(v):
        return v if v > 20.0 else math.log1p(math.exp(v))

    return sp64


@njit(inline="always", **_OPTS)
def exp2_neg_f32(v):  # pragma: no cover - compiled
    """``2^v`` for float32 ``v <= 0`` (clamped at -126: 2^-126 stands for 0): ``v = k + f``, ``k`` the
    nearest integer, ``|f| <= 1/2`` exact, a degree-6 near-minimax polynomial for ``2^f`` (error
    2.6e-9), 2^k from its IEEE bits; max relative error 1.1e-7 in float32. Fewer operations than :func:`exp_f32` (no
    Cody-Waite reduction), for the innermost loop of the scan, whose ``A`` is pre-scaled by log2(e)."""
    v = max(v, np.float32(-126.0))
    k = np.rint(v)  # one rounding instruction (floor(v + 1/2) takes two)
    f = v - k
    p = np.float32(0.00015469732170458883)
    p = p * f + np.float32(0.0013400432653725147)
    p = p * f + np.float32(0.00961802527308464)
    p = p * f + np.float32(0.05550327152013779)
    p = p * f + np.float32(0.24022650718688965)
    p = p * f + np.float32(0.6931471824645996)
    p = p * f + np.float32(1.0)
    return p * _bits_as_f32((np.int32(k) + 127) << 23)


def _exp_scaled(v):  # exp(dt * A) given v = dt * A * (log2(e) for float32, 1 for float64)
    return math.exp(v)


@overload(_exp_scaled, inline="always", fastmath=FASTMATH)
def _exp_scaled_impl(v):
    if v == types.float32:
        return lambda v: exp2_neg_f32(v)
    return lambda v: math.exp(v)


LOG2E = math.log2(math.e)  # float32: scan_gate scales A by this (exp via exp2); float64: by 1


@njit(**_OPTS)
def conv_silu(xz, w, bias, conv_state, xc, new_state, b0, b1):  # pragma: no cover - compiled
    """Batch elements ``[b0, b1)`` of ``xz [B, L, 2E]`` (x half: channels ``[0, E)``), ``w [E, K]``,
    ``bias [E]``, ``conv_state [B, E, K-1]`` (the K-1 inputs before ``t = 0``) -> ``xc [B, L, E]`` =
    SiLU(conv + bias), ``new_state [B, E, K-1]`` (the last K-1 inputs). Inner loops index 1-D row
    slices from 0, so LLVM sees unit-stride, non-negative indices (no wrap-around selects) and
    vectorises them."""
    _, L, _ = xz.shape
    E, K = w.shape
    one = xz.dtype.type(1.0)
    acc = np.empty(E, dtype=xz.dtype)
    w_t = np.empty((K, E), dtype=xz.dtype)  # the weights, tap-major
    for k in range(K):
        for i in range(E):
            w_t[k, i] = w[i, k]
    for b in range(b0, b1):
        for t in range(L):
            for i in range(E):
                acc[i] = bias[i]
            for k in range(K - 1):
                s = t - (K - 1) + k  # input time of tap k
                wk = w_t[k]
                if s >= 0:
                    row = xz[b, s, :E]
                    for i in range(E):
                        acc[i] += wk[i] * row[i]
                else:
                    for i in range(E):
                        acc[i] += wk[i] * conv_state[b, i, s + K - 1]
            wk, row, out = w_t[K - 1], xz[b, t, :E], xc[b, t]  # the last tap reads x[t]
            for i in range(E):
                v = acc[i] + wk[i] * row[i]
                out[i] = v / (one + _exp(-v))
        for d in range(E):
            for i in range(K - 1):
                s = L - (K - 1) + i
                new_state[b, d, i] = xz[b, s, d] if s >= 0 else conv_state[b, d, s + K - 1]


@njit(**_OPTS)
def scan_gate(xz, xc, dt_w, x_dbl, R, A_in, a_is_log, a_scale, D, dt_bias, h0, y, last, b0, b1):  # pragma: no cover
    """Batch elements ``[b0, b1)`` of: ``xz [B, L, 2E]`` (gate z: channels ``[E, 2E)``), ``xc [B, L, E]``,
    ``x_dbl [B, L, R+2N]`` (the low-rank dt at ``[0, R)``, B at ``[R, R+N)``, C at ``[R+N, R+2N)``),
    ``dt_w [E, R]`` (``dt_proj``'s weight: ``delta = dt @ dt_w^T`` is computed here, ``R``
    multiply-adds per channel and step, rather than by a GEMM of its own), ``A_in``: ``A_log [E, N]``
    where ``a_is_log`` (float32: ``-A = exp(A_log)`` is computed here), else ``-A`` itself; ``a_scale``
    (``-log2(e)`` for float32, ``-1`` for float64: the kernel uses ``A * log2(e)`` or ``A``),
    ``D, dt_bias [E]``, ``h0 [B, E, N]`` -> ``y [B, L, E]`` (gated), ``last [B, E, N]``. Per-step rows
    are slices as in :func:`conv_silu`; the state and the scaled ``A`` are local ``[N, E]`` arrays."""
    _, L, E = xc.shape
    N = A_in.shape[1]
    one = xc.dtype.type(1.0)
    h = np.empty((N, E), dtype=xc.dtype)  # the state, channel-contiguous
    a = np.empty((N, E), dtype=xc.dtype)  # A, scaled
    dtr = np.empty(E, dtype=xc.dtype)
    dl = np.empty(E, dtype=xc.dtype)
    wdt = np.empty((R, E), dtype=xc.dtype)  # dt_proj's weight, transposed
    dur = np.empty(E, dtype=xc.dtype)
    yr = np.empty(E, dtype=xc.dtype)
    for n in range(N):
        for i in range(E):
            an = A_in[i, n]
            a[n, i] = (np.exp(an) if a_is_log else an) * a_scale
    for r in range(R):
        for i in range(E):
            wdt[r, i] = dt_w[i, r]
    for b in range(b0, b1):
        for n in range(N):
            for i in range(E):
                h[n, i] = h0[b, i, n]
        for t in range(L):
            ul, xr = xc[b, t], x_dbl[b, t]
            w0 = wdt[0]
            for i in range(E):
                dl[i] = xr[0] * w0[i]
            for r in range(1, R):
                wr, xv = wdt[r], xr[r]
                for i in range(E):
                    dl[i] += xv * wr[i]
            for i in range(E):
                dt = _softplus(dl[i] + dt_bias[i])
                dtr[i] = dt
                dur[i] = dt * ul[i]
                yr[i] = D[i] * ul[i]
            for n in range(N):
                bn = xr[R + n]
                cn = xr[R + N + n]
                for i in range(E):
                    v = _exp_scaled(dtr[i] * a[n, i]) * h[n, i] + dur[i] * bn
                    h[n, i] = v
                    yr[i] += v * cn
            zl, yl = xz[b, t, E:], y[b, t]
            for i in range(E):
                yl[i] = yr[i] * zl[i] / (one + _exp(-zl[i]))
        for i in range(E):
            for n in range(N):
                last[b, i, n] = h[n, i]


@njit(**_OPTS)
def rmsnorm(x, w, eps, out):  # pragma: no cover - compiled
    """``out = x * rsqrt(mean(x^2) + eps) * w`` over the last axis of ``x [M, D]`` (the
    :class:`~mambaspike.ssm.mamba.RMSNorm` of the fused backbone: one call instead of six small
    operations; the mean is summed in a different order than torch's)."""
    M, D = x.shape
    one = x.dtype.type(1.0)
    inv_d = one / x.dtype.type(D)
    for r in range(M):
        xr, orow = x[r], out[r]
        ss = x.dtype.type(0.0)
        for i in range(D):
            ss += xr[i] * xr[i]
        inv = one / np.sqrt(ss * inv_d + eps)
        for i in range(D):
            orow[i] = xr[i] * inv * w[i]


def warm_up() -> None:
    """Compile (or load from the cache) both kernels for float32 and float64 now."""
    for dt in (np.float32, np.float64):
        a3, a2, a1 = np.zeros((1, 1, 2), dt), np.zeros((1, 2), dt), np.zeros(1, dt)
        conv_silu(a3, a2, a1, np.zeros((1, 1, 1), dt), np.zeros((1, 1, 1), dt), np.zeros((1, 1, 1), dt), 0, 1)
        one = np.zeros((1, 1, 1), dt)
        rmsnorm(a2, a1[:1].repeat(2), dt(1e-5), a2.copy())
        scan_gate(
            a3,
            one,
            np.zeros((1, 1), dt),
            np.zeros((1, 1, 3), dt),
            1,
            np.zeros((1, 1), dt),
            dt == np.float32,
            dt(-1.0),
            a1,
            a1,
            one,
            one.copy(),
            one.copy(),
            0,
            1,
        )
