"""Compiled CPU kernels of the fused multi-step LIF (numba), used by :func:`mambaspike.neurons.lif_multistep_fast`.

Layout: a sequence is viewed as ``[T, N]`` (time-major, ``N`` = all other dimensions flattened,
C-contiguous). Work is split over blocks of ``blk`` neighbouring neurons; inside a block the time
loop is outermost and the inner loop over the block's neurons is a unit-stride loop that LLVM
vectorises. Each element of ``x`` is read from memory once per pass and each output written once:

- forward: read ``x``, write spikes (2 passes over ``[T, N]``); the membrane is a block-local row;
- backward: recompute the block's pre-reset potentials ``h`` from ``x`` and the initial state into a
  block-local ``[T, blk]`` buffer small enough to stay in cache, then run the adjoint recursion
  backwards in time: read ``x`` again, the spike gradient, write the input gradient (3 passes).
  Nothing per step is saved between forward and backward except the input itself, which the
  caller's graph holds anyway.

The kernels run a range of blocks ``[b0, b1)`` and release the GIL (``nogil``): the caller runs
ranges on several threads at once (``mambaspike.kernels.threads.run_blocks``, through
:mod:`mambaspike.kernels.threads`, which says why they are not ``parallel=True``).

Every scalar argument must already have the arrays' dtype (``np.float32`` for float32 arrays): a
Python float would promote the arithmetic to float64 and break bit-equality with the reference.
Gradients of the scalar parameters (``beta``, ``v_threshold``) are accumulated per lane in float64
and returned as one partial sum per block.

Surrogate kinds (``kind``) and their derivatives, with ``u = h - v_threshold``:

- 0 ``atan``:          alpha / 2 / (1 + (pi / 2 * alpha * u)^2)
- 1 ``sigmoid``:       alpha * sig(alpha u) * (1 - sig(alpha u))
- 2 ``fast-sigmoid``:  1 / (1 + alpha |u|)^2
- 3 ``triangle``:      alpha * max(0, 1 - alpha |u|)
"""

from __future__ import annotations

import numpy as np
from numba import njit

_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")


@njit(inline="always", **_OPTS)
def _surrogate(kind, u, alpha, k, a2, one):
    """Surrogate derivative at ``u``; ``kind`` is a compile-time constant at every call site, so each
    caller is compiled for one kind only (``k = pi/2 * alpha``, ``a2 = alpha / 2``)."""
    if kind == 0:  # atan
        z = k * u
        return a2 / (one + z * z)
    elif kind == 1:  # sigmoid
        e = one / (one + np.exp(-alpha * u))
        return alpha * e * (one - e)
    elif kind == 2:  # fast sigmoid
        d = one + alpha * np.abs(u)
        return one / (d * d)
    else:  # triangle
        return alpha * max(one - alpha * np.abs(u), one - one)


@njit(inline="always", **_OPTS)
def lif_reset(h, spiked, vth, v_reset, soft):
    """The potential after the reset, as :func:`mambaspike.neurons.functional.lif_step` computes it:
    ``h - vth`` (soft) or ``v_reset`` (hard) where the neuron spiked, else ``h``."""
    if spiked:
        return h - vth if soft else v_reset
    return h


@njit(inline="always", **_OPTS)
def lif_update(v, x, beta, c, vth, v_reset, soft):
    """One LIF neuron, one step -- the one update every compiled kernel uses: ``h = beta v + c x``,
    ``spiked = h - vth >= 0``, and the potential after the reset. Returns ``(h, spiked, v_next)``."""
    # Shared by the plain, recurrent and front-end kernels at no cost, measured against each kernel's
    # own copy (alternating runs, one thread, 200 x 32768 float32): forward 3.03 vs 2.98 ms, backward
    # 12.13 vs 12.23 ms; fused front-end at batch 1 over 784 bins 0.309 vs 0.317 ms.
    h = beta * v + c * x
    spiked = (h - vth) >= 0
    return h, spiked, lif_reset(h, spiked, vth, v_reset, soft)


@njit(**_OPTS)
def _fwd_row(xt, v, st, beta, c, vth, v_reset, soft):
    """One time step for one block: ``v`` (in/out) is the membrane, ``st`` receives the spikes."""
    for j in range(v.shape[0]):
        _, spk, v[j] = lif_update(v[j], xt[j], beta, c, vth, v_reset, soft)
        st[j] = spk


@njit(**_OPTS)
def _fwd_row_h(xt, v, ht, beta, c, vth, v_reset, soft):
    """As :func:`_fwd_row`, storing the pre-reset potential ``h`` instead of the spikes."""
    for j in range(v.shape[0]):
        ht[j], _, v[j] = lif_update(v[j], xt[j], beta, c, vth, v_reset, soft)


@njit(**_OPTS)
def _bwd_row(
    kind,
    ht,
    hp,
    v0,
    first,
    xt,
    gst,
    gxt,
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
):
    """Adjoint of one time step for one block, in one pass over its neurons.

    ``ht``: h[t]; ``hp``: h[t-1] (``first``: t = 0, v[t-1] is ``v0``); ``g`` (in/out): dL/dv[t] on
    entry, dL/dv[t-1] on exit; ``accb`` / ``acct`` accumulate dL/dbeta and dL/dv_threshold per lane.
    """
    zero = one - one
    for j in range(ht.shape[0]):
        h = ht[j]
        u = h - vth
        sg = _surrogate(kind, u, alpha, k, a2, one)
        s = one if u >= zero else zero
        if soft:
            dvdh = one if detach else one - vth * sg
            dvdth = -s if detach else vth * sg - s
        else:
            dvdh = (one - s) if detach else (one - s) + (v_reset - h) * sg
            dvdth = zero if detach else (h - v_reset) * sg
        hq = hp[j]
        vq = lif_reset(hq, hq - vth >= zero, vth, v_reset, soft)
        vp = v0[j] if first else vq  # v[t-1]
        gs = gst[j]
        gv = g[j]
        gh = gs * sg + gv * dvdh
        gxt[j] = c * gh
        accb[j] += np.float64(gh * (vp - xt[j]) if decay_input else gh * vp)
        acct[j] += np.float64(gv * dvdth - gs * sg)
        g[j] = beta * gh


@njit(**_OPTS)
def lif_forward(x, v0, beta, c, vth, v_reset, soft, s, v_last, blk, b0, b1):
    """Blocks ``[b0, b1)`` of ``x [T, N]``, ``v0 [N]`` -> ``s [T, N]`` (spikes), ``v_last [N]``;
    ``c`` is the input gain (``1 - beta`` or 1)."""
    T, N = x.shape
    v = np.empty(blk, x.dtype)
    for b in range(b0, b1):
        lo = b * blk
        hi = min(lo + blk, N)
        vb = v[: hi - lo]
        vb[:] = v0[lo:hi]
        for t in range(T):
            _fwd_row(x[t, lo:hi], vb, s[t, lo:hi], beta, c, vth, v_reset, soft)
        v_last[lo:hi] = vb


@njit(**_OPTS)
def lif_backward(
    x,
    v0,
    gs,
    gs_scalar,
    gv_last,
    beta,
    c,
    vth,
    v_reset,
    soft,
    detach,
    decay_input,
    kind,
    alpha,
    one,
    half_pi,
    gx,
    gv0,
    gbeta,
    gvth,
    blk,
    b0,
    b1,
):
    """Adjoint of :func:`lif_forward` for blocks ``[b0, b1)``.

    ``gs [T, N]`` (or ``[1, 1]`` with ``gs_scalar``: the same value everywhere) and ``gv_last [N]`` are
    the incoming gradients; writes ``gx [T, N]``, ``gv0 [N]`` and, per block, ``gbeta[b]`` and
    ``gvth[b]`` (float64 partial sums). ``one`` and ``half_pi`` are 1 and pi / 2 in the arrays' dtype.
    """
    T, N = x.shape
    k = half_pi * alpha
    a2 = alpha / (one + one)
    # scratch: h[t] of one block (kept in cache), and rows of length blk
    hbuf = np.empty((T, blk), x.dtype)
    gbuf = np.empty(blk, x.dtype)
    gcbuf = np.empty(blk, x.dtype)
    abuf = np.empty(blk, np.float64)
    tbuf = np.empty(blk, np.float64)
    for b in range(b0, b1):
        lo = b * blk
        hi = min(lo + blk, N)
        n = hi - lo
        v, g, gconst, accb, acct = gbuf[:n], gbuf[:n], gcbuf[:n], abuf[:n], tbuf[:n]
        # recompute h[t] for this block (v shares g's row: g is set after)
        v[:] = v0[lo:hi]
        for t in range(T):
            _fwd_row_h(x[t, lo:hi], v, hbuf[t, :n], beta, c, vth, v_reset, soft)
        g[:] = gv_last[lo:hi]
        accb[:] = 0.0
        acct[:] = 0.0
        if gs_scalar:
            gconst[:] = gs[0, 0]
        for t in range(T - 1, -1, -1):
            hp = hbuf[max(t - 1, 0), :n]
            gst = gconst if gs_scalar else gs[t, lo:hi]
            if kind == 0:
                _bwd_row(
                    0,
                    hbuf[t, :n],
                    hp,
                    v0[lo:hi],
                    t == 0,
                    x[t, lo:hi],
                    gst,
                    gx[t, lo:hi],
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
            elif kind == 1:
                _bwd_row(
                    1,
                    hbuf[t, :n],
                    hp,
                    v0[lo:hi],
                    t == 0,
                    x[t, lo:hi],
                    gst,
                    gx[t, lo:hi],
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
            elif kind == 2:
                _bwd_row(
                    2,
                    hbuf[t, :n],
                    hp,
                    v0[lo:hi],
                    t == 0,
                    x[t, lo:hi],
                    gst,
                    gx[t, lo:hi],
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
            else:
                _bwd_row(
                    3,
                    hbuf[t, :n],
                    hp,
                    v0[lo:hi],
                    t == 0,
                    x[t, lo:hi],
                    gst,
                    gx[t, lo:hi],
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
        gv0[lo:hi] = g
        gbeta[b] = accb.sum()
        gvth[b] = acct.sum()
