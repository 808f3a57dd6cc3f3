"""Compiled CPU kernels of the fused multi-step adaptive-threshold LIF (numba), used by
:func:`mambaspike.neurons.alif_fast.alif_multistep_fast`.

The update is :func:`mambaspike.neurons.functional.alif_step`, per neuron::

    h[t]     = beta * v[t-1] + c * x[t]                 (c = 1 - beta, or 1)
    theta[t] = v_threshold + adapt * a[t-1]
    s[t]     = H(h[t] - theta[t])
    v[t]     = h[t] - s[t] theta[t] (soft) | h[t] (1 - s[t]) + s[t] v_reset (hard)
    a[t]     = rho * a[t-1] + s[t]

Layout and threading are those of :mod:`mambaspike.kernels.lif_numba`: ``x [T, N]`` time-major, work
split over blocks of ``blk`` neighbouring neurons, the time loop outermost inside a block, ranges of
blocks on several threads (``nogil``). The backward recomputes, per block, ``h[t]``, ``v[t-1]`` and
``a[t-1]`` into block-local ``[T, blk]`` buffers, then runs the adjoint recursion backwards in time
with two adjoint rows, ``dL/dv`` and ``dL/da``::

    g_s'   = dL/ds[t] + g_a + g_v * dv/ds   (the reset term; 0 with detach_reset)
    g_h    = g_s' * sg + g_v * dv/dh         (sg: the surrogate derivative at h - theta)
    g_th   = -g_s' * sg + g_v * dv/dtheta
    dL/dx[t] = c g_h;  g_v <- beta g_h;  g_a <- rho g_a + adapt g_th

Gradients of the scalar parameters (``beta``, ``v_threshold``, ``rho``) are accumulated per lane in
float64 and returned as one partial sum per block.

:func:`ralif_forward` is the recurrent population's forward for inference (no backward): the input at
``t`` gains ``W s[t-1]``, accumulated from the channels that spiked as in
:mod:`mambaspike.kernels.rlif_numba`, on rows ``x [T, R, C]``. Scalar arguments must have the arrays' dtype
(see :mod:`mambaspike.kernels.lif_numba`). Surrogate ``kind``: as there.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mambaspike.kernels.lif_numba import _surrogate, lif_reset
from mambaspike.kernels.rlif_numba import recurrent_input

_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")


@njit(inline="always", **_OPTS)
def alif_update(v, a, x, beta, c, vth, rho, adapt, v_reset, soft):
    """One neuron, one step: ``(h, theta, spiked, v_next, a_next)``, as ``alif_step`` computes them."""
    h = beta * v + c * x
    theta = vth + adapt * a
    spiked = (h - theta) >= 0
    a_next = rho * a + ((rho - rho + 1) if spiked else (rho - rho))
    return h, theta, spiked, lif_reset(h, spiked, theta, v_reset, soft), a_next


@njit(**_OPTS)
def alif_forward(x, v0, a0, beta, c, vth, rho, adapt, v_reset, soft, s, v_last, a_last, blk, b0, b1):
    """Blocks ``[b0, b1)`` of ``x [T, N]``, ``v0 [N]``, ``a0 [N]`` -> ``s [T, N]`` (spikes),
    ``v_last [N]``, ``a_last [N]``."""
    T, N = x.shape
    one = rho - rho + 1
    zero = rho - rho
    v = np.empty(blk, x.dtype)
    a = np.empty(blk, x.dtype)
    for b in range(b0, b1):
        lo = b * blk
        hi = min(lo + blk, N)
        n = hi - lo
        vb, ab = v[:n], a[:n]
        vb[:] = v0[lo:hi]
        ab[:] = a0[lo:hi]
        for t in range(T):
            xt = x[t, lo:hi]
            st = s[t, lo:hi]
            for j in range(n):
                _, _, spk, vb[j], ab[j] = alif_update(vb[j], ab[j], xt[j], beta, c, vth, rho, adapt, v_reset, soft)
                st[j] = one if spk else zero
        v_last[lo:hi] = vb
        a_last[lo:hi] = ab


@njit(**_OPTS)
def _bwd_row(
    kind, ht, vp, ap, xt, gst, gxt, gv, ga, accb, acct, accr, beta, c, vth, rho, adapt, v_reset, alpha, k, a2, one,
    soft, detach, decay_input,
):  # fmt: skip
    """Adjoint of one time step for one block. ``ht``, ``vp``, ``ap``: h[t], v[t-1], a[t-1]; ``gv`` and
    ``ga`` (in/out): dL/dv[t], dL/da[t] on entry, dL/dv[t-1], dL/da[t-1] on exit."""
    zero = one - one
    for j in range(ht.shape[0]):
        h = ht[j]
        theta = vth + adapt * ap[j]
        u = h - theta
        sg = _surrogate(kind, u, alpha, k, a2, one)
        s = one if u >= zero else zero
        g_v = gv[j]
        g_a = ga[j]
        if soft:  # v = h - r theta
            dvdh = one
            dvdr = -theta
            dvdth = -s
        else:  # v = h (1 - r) + r v_reset
            dvdh = one - s
            dvdr = v_reset - h
            dvdth = zero
        g_s = gst[j] + g_a + (zero if detach else g_v * dvdr)
        gh = g_s * sg + g_v * dvdh
        gth = g_v * dvdth - g_s * sg
        gxt[j] = c * gh
        accb[j] += np.float64(gh * (vp[j] - xt[j]) if decay_input else gh * vp[j])
        acct[j] += np.float64(gth)
        accr[j] += np.float64(g_a * ap[j])
        gv[j] = beta * gh
        ga[j] = rho * g_a + adapt * gth


@njit(**_OPTS)
def alif_backward(
    x, v0, a0, gs, gs_scalar, gv_last, ga_last, beta, c, vth, rho, adapt, v_reset, soft, detach, decay_input, kind,
    alpha, one, half_pi, gx, gv0, ga0, gbeta, gvth, grho, blk, b0, b1,
):  # fmt: skip
    """Adjoint of :func:`alif_forward` for blocks ``[b0, b1)``.

    ``gs [T, N]`` (or ``[1, 1]`` with ``gs_scalar``: one value everywhere), ``gv_last [N]`` and
    ``ga_last [N]`` are the incoming gradients; writes ``gx [T, N]``, ``gv0 [N]``, ``ga0 [N]`` and, per
    block, ``gbeta[b]``, ``gvth[b]``, ``grho[b]`` (float64 partial sums)."""
    T, N = x.shape
    k = half_pi * alpha
    a2 = alpha / (one + one)
    hbuf = np.empty((T, blk), x.dtype)  # h[t]
    vbuf = np.empty((T, blk), x.dtype)  # v[t-1]
    abuf = np.empty((T, blk), x.dtype)  # a[t-1]
    gvb = np.empty(blk, x.dtype)
    gab = np.empty(blk, x.dtype)
    gcb = np.empty(blk, x.dtype)
    accb_ = np.empty(blk, np.float64)
    acct_ = np.empty(blk, np.float64)
    accr_ = np.empty(blk, np.float64)
    for b in range(b0, b1):
        lo = b * blk
        hi = min(lo + blk, N)
        n = hi - lo
        g_v, g_a, gconst = gvb[:n], gab[:n], gcb[:n]
        accb, acct, accr = accb_[:n], acct_[:n], accr_[:n]
        # recompute the forward for this block: g_v / g_a hold v / a until the adjoint starts
        g_v[:] = v0[lo:hi]
        g_a[:] = a0[lo:hi]
        for t in range(T):
            xt = x[t, lo:hi]
            for j in range(n):
                vbuf[t, j] = g_v[j]
                abuf[t, j] = g_a[j]
                hbuf[t, j], _, _, g_v[j], g_a[j] = alif_update(
                    g_v[j], g_a[j], xt[j], beta, c, vth, rho, adapt, v_reset, soft
                )
        g_v[:] = gv_last[lo:hi]
        g_a[:] = ga_last[lo:hi]
        accb[:] = 0.0
        acct[:] = 0.0
        accr[:] = 0.0
        if gs_scalar:
            gconst[:] = gs[0, 0]
        for t in range(T - 1, -1, -1):
            gst = gconst if gs_scalar else gs[t, lo:hi]
            ht, vp, ap, xt, gxt = hbuf[t, :n], vbuf[t, :n], abuf[t, :n], x[t, lo:hi], gx[t, lo:hi]
            if kind == 0:
                _bwd_row(0, ht, vp, ap, xt, gst, gxt, g_v, g_a, accb, acct, accr, beta, c, vth, rho, adapt, v_reset,
                         alpha, k, a2, one, soft, detach, decay_input)  # fmt: skip
            elif kind == 1:
                _bwd_row(1, ht, vp, ap, xt, gst, gxt, g_v, g_a, accb, acct, accr, beta, c, vth, rho, adapt, v_reset,
                         alpha, k, a2, one, soft, detach, decay_input)  # fmt: skip
            elif kind == 2:
                _bwd_row(2, ht, vp, ap, xt, gst, gxt, g_v, g_a, accb, acct, accr, beta, c, vth, rho, adapt, v_reset,
                         alpha, k, a2, one, soft, detach, decay_input)  # fmt: skip
            else:
                _bwd_row(3, ht, vp, ap, xt, gst, gxt, g_v, g_a, accb, acct, accr, beta, c, vth, rho, adapt, v_reset,
                         alpha, k, a2, one, soft, detach, decay_input)  # fmt: skip
        gv0[lo:hi] = g_v
        ga0[lo:hi] = g_a
        gbeta[b] = accb.sum()
        gvth[b] = acct.sum()
        grho[b] = accr.sum()


@njit(**_OPTS)
def ralif_forward(x, WT, v0, a0, s0, has_s0, beta, c, vth, rho, adapt, v_reset, soft, s, v_last, a_last, r0, r1):
    """Rows ``[r0, r1)`` of ``x [T, R, C]`` with the recurrent weight ``W`` (as ``WT = W.T``) ->
    spikes ``s [T, R, C]``, ``v_last [R, C]``, ``a_last [R, C]``; ``s0 [R, C]``: the spikes before
    ``t = 0`` (used when ``has_s0``)."""
    T, R, C = x.shape
    one = rho - rho + 1
    zero = rho - rho
    v = np.empty(C, x.dtype)
    a = np.empty(C, x.dtype)
    cur = np.empty(C, x.dtype)
    for r in range(r0, r1):
        v[:] = v0[r]
        a[:] = a0[r]
        for t in range(T):
            recurrent_input(x, WT, s, s0, has_s0, t, r, cur)
            st = s[t, r]
            for j in range(C):
                _, _, spk, v[j], a[j] = alif_update(v[j], a[j], cur[j], beta, c, vth, rho, adapt, v_reset, soft)
                st[j] = one if spk else zero
        v_last[r] = v
        a_last[r] = a
