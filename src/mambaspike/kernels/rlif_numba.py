"""Compiled CPU kernels of the fused recurrent LIF (numba), used by :mod:`mambaspike.neurons.recurrent`.

A recurrent LIF population adds a channel-mixing map of its own spikes at ``t - 1`` to its input::

    I[t] = x[t] + W s[t-1]          (s[-1] = s0, or no recurrent term at t = 0 without one)
    h[t] = beta * v[t-1] + c * I[t] (c = 1 - beta, or 1)
    s[t] = H(h[t] - v_threshold);   v[t] = reset(h[t], s[t])

Layout: ``x [T, R, C]`` (``R`` independent rows -- batch x pixels for a 1x1 recurrent convolution,
batch for a dense one -- and ``C`` channels, contiguous). Rows never interact, so work is split over
ranges of rows ``[r0, r1)`` that run on several threads (``nogil``; see :mod:`mambaspike.kernels.threads`).

- forward: per row, the time loop outermost; the recurrent current is accumulated from the spikes
  that fired (``W``'s columns, read as rows of ``WT = W.T``), so its cost is proportional to the
  number of spikes.
- backward: per row, recompute ``I[t]`` and ``h[t]`` into ``[T, C]`` scratch rows, then the adjoint
  recursion backwards in time. The gradient reaching ``s[t-1]`` through the recurrence is
  ``W^T dL/dI[t]`` (dense: surrogate gradients are nowhere exactly zero); ``dL/dW`` accumulates
  ``dL/dI[t] s[t-1]^T`` over the spikes, per range of rows (float64), summed by the caller.

Scalar arguments must have the arrays' dtype (see ``mambaspike.kernels.lif_numba``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mambaspike.kernels.lif_numba import _bwd_row, _fwd_row, _fwd_row_h

_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")


@njit(**_OPTS)
def _recurrent_current(xt, WT, prev, cur):
    """``cur = xt + W @ prev`` (``WT = W.T``), adding only the columns of spiking channels."""
    cur[:] = xt
    for j in range(prev.shape[0]):
        pj = prev[j]
        if pj != 0:
            wj = WT[j]
            for i in range(cur.shape[0]):
                cur[i] += pj * wj[i]


@njit(inline="always", **_OPTS)
def recurrent_input(x, WT, s, s0, has_s0, t, r, cur):
    """``cur`` = row ``r``'s input at ``t``: ``x[t, r] + W s[t-1, r]`` (``s0[r]`` before ``t = 0`` when
    ``has_s0``, else no recurrent term at ``t = 0``)."""
    if t > 0:
        _recurrent_current(x[t, r], WT, s[t - 1, r], cur)
    elif has_s0:
        _recurrent_current(x[t, r], WT, s0[r], cur)
    else:
        cur[:] = x[t, r]


@njit(**_OPTS)
def rlif_forward(x, WT, v0, s0, has_s0, beta, c, vth, v_reset, soft, s, v_last, r0, r1):
    """Rows ``[r0, r1)`` of ``x [T, R, C]`` -> spikes ``s [T, R, C]``, ``v_last [R, C]``."""
    T, R, C = x.shape
    v = np.empty(C, x.dtype)
    cur = np.empty(C, x.dtype)
    for r in range(r0, r1):
        v[:] = v0[r]
        for t in range(T):
            recurrent_input(x, WT, s, s0, has_s0, t, r, cur)
            _fwd_row(cur, v, s[t, r], beta, c, vth, v_reset, soft)
        v_last[r] = v


@njit(**_OPTS)
def _rlif_backward_kind(
    kind,
    x,
    W,
    WT,
    v0,
    s0,
    has_s0,
    gs,
    gv_last,
    beta,
    c,
    vth,
    v_reset,
    alpha,
    one,
    half_pi,
    soft,
    detach,
    decay_input,
    gx,
    gv0,
    gs0,
    gWT,
    gbeta,
    gvth,
    r0,
    r1,
):
    """Rows ``[r0, r1)``: the LIF adjoint of one step is ``mambaspike.kernels.lif_numba._bwd_row`` driven by
    ``I[t]`` and by the spike gradient plus what reaches ``s[t]`` through the recurrence."""
    T, R, C = x.shape
    zero = one - one
    k = half_pi * alpha
    a2 = alpha / (one + one)
    hbuf = np.empty((T, C), x.dtype)  # h[t]
    ibuf = np.empty((T, C), x.dtype)  # I[t]
    v = np.empty(C, x.dtype)
    g = np.empty(C, x.dtype)  # dL/dv[t]
    gsr = np.empty(C, x.dtype)  # dL/ds[t] through the recurrence (also scratch for s[t-1])
    gst = np.empty(C, x.dtype)  # dL/ds[t] in all
    accb = np.zeros(C)
    acct = np.zeros(C)
    for r in range(r0, r1):
        # recompute I[t], h[t] of this row
        v[:] = v0[r]
        for t in range(T):
            if t > 0:
                for j in range(C):  # s[t-1] from h[t-1]
                    gsr[j] = one if hbuf[t - 1, j] - vth >= zero else zero
                _recurrent_current(x[t, r], WT, gsr, ibuf[t])
            elif has_s0:
                _recurrent_current(x[t, r], WT, s0[r], ibuf[t])
            else:
                ibuf[t] = x[t, r]
            _fwd_row_h(ibuf[t], v, hbuf[t], beta, c, vth, v_reset, soft)
        # adjoint, backwards in time
        g[:] = gv_last[r]
        gsr[:] = zero
        for t in range(T - 1, -1, -1):
            for j in range(C):
                gst[j] = gs[t, r, j] + gsr[j]
            gI = gx[t, r]  # dL/dI[t] = c dL/dh[t], written by _bwd_row
            _bwd_row(
                kind,
                hbuf[t],
                hbuf[max(t - 1, 0)],
                v0[r],
                t == 0,
                ibuf[t],
                gst,
                gI,
                g,
                accb,
                acct,
                beta,
                c,
                vth,
                v_reset,
                alpha,
                k,
                a2,
                one,
                soft,
                detach,
                decay_input,
            )
            gsr[:] = zero
            # I[t] = x[t] + W s[t-1]: dL/ds[t-1] = W^T gI, dL/dW += gI s[t-1]^T
            if t > 0 or has_s0:
                for i in range(C):
                    gi = gI[i]
                    wi = W[i]
                    for j in range(C):
                        gsr[j] += gi * wi[j]
                for j in range(C):
                    if t > 0:
                        pj = one if hbuf[t - 1, j] - vth >= zero else zero
                    else:
                        pj = s0[r, j]
                    if pj != 0:
                        gw = gWT[j]
                        for i in range(C):
                            gw[i] += np.float64(pj * gI[i])
        gv0[r] = g
        gs0[r] = gsr
    gbeta[0] += accb.sum()
    gvth[0] += acct.sum()


@njit(**_OPTS)
def rlif_backward(
    kind,
    x,
    W,
    WT,
    v0,
    s0,
    has_s0,
    gs,
    gv_last,
    beta,
    c,
    vth,
    v_reset,
    alpha,
    one,
    half_pi,
    soft,
    detach,
    decay_input,
    gx,
    gv0,
    gs0,
    gWT_part,
    gbeta,
    gvth,
    nrows,
    b0,
    b1,
):
    """Adjoint of :func:`rlif_forward` for the row chunks ``[b0, b1)`` (chunk ``b``: rows
    ``[b * nrows, (b + 1) * nrows)``). Writes ``gx [T, R, C]``, ``gv0, gs0 [R, C]`` and per chunk
    ``gWT_part[b] [C, C]`` (dL/dW transposed), ``gbeta[b]``, ``gvth[b]`` (float64 partial sums).
    ``kind`` selects the surrogate (see ``mambaspike.kernels.lif_numba``)."""
    R = x.shape[1]
    for b in range(b0, b1):
        lo, hi = b * nrows, min((b + 1) * nrows, R)
        args_tail = (gx, gv0, gs0, gWT_part[b], gbeta[b : b + 1], gvth[b : b + 1], lo, hi)
        if kind == 0:
            _rlif_backward_kind(
                0,
                x,
                W,
                WT,
                v0,
                s0,
                has_s0,
                gs,
                gv_last,
                beta,
                c,
                vth,
                v_reset,
                alpha,
                one,
                half_pi,
                soft,
                detach,
                decay_input,
                *args_tail,
            )
        elif kind == 1:
            _rlif_backward_kind(
                1,
                x,
                W,
                WT,
                v0,
                s0,
                has_s0,
                gs,
                gv_last,
                beta,
                c,
                vth,
                v_reset,
                alpha,
                one,
                half_pi,
                soft,
                detach,
                decay_input,
                *args_tail,
            )
        elif kind == 2:
            _rlif_backward_kind(
                2,
                x,
                W,
                WT,
                v0,
                s0,
                has_s0,
                gs,
                gv_last,
                beta,
                c,
                vth,
                v_reset,
                alpha,
                one,
                half_pi,
                soft,
                detach,
                decay_input,
                *args_tail,
            )
        else:
            _rlif_backward_kind(
                3,
                x,
                W,
                WT,
                v0,
                s0,
                has_s0,
                gs,
                gv_last,
                beta,
                c,
                vth,
                v_reset,
                alpha,
                one,
                half_pi,
                soft,
                detach,
                decay_input,
                *args_tail,
            )
