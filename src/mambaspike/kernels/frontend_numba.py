"""Compiled CPU kernel of the dense spiking front-end's inference forward (numba, ``cache=True``, ``nogil``).

Used by :func:`mambaspike.layers.frontend_fused.forward` (1-D input, eval mode, no autograd graph).
One call runs the whole stack for a range of samples with no Python in between -- at batch 1 the
module-by-module forward spends nearly all its time in the per-call overhead of a dozen small
operations per block, not in arithmetic. Per sample::

    layer 0, every input bin t:   I = BN(W_0 x[t])              BN folded: I = (W x) * scale + shift
                                  LIF:  h = beta v + c I;  s = h - v_th >= 0;  v = reset(h, s, v_th)
                                  ALIF: h as LIF;  theta = v_th + adapt a;  s = h - theta >= 0;
                                        v = reset(h, s, theta);  a = rho a + s
                                  LI (the membrane readout): v = beta v + c I, the output is v itself
                                  (mambaspike.kernels.lif_numba.lif_update, alif_numba.alif_update)
    temporal pooling:             max (or mean) of s over windows of k bins; the last window may be
                                  incomplete (averaged over its real bins for ``avg``)
    layer l > 0, every window:    I = BN(W_l in) (+ R s_prev for the recurrent layer: R applied to
                                  the layer's own spikes of the previous window), the same update

Each layer is LIF, ALIF or a non-spiking leaky integrator (its ``kind``), so stacks may mix them. At
most one layer is recurrent (``rec_layer``): the last spiking one, which is the last layer unless that
layer integrates without spiking (the front-end's membrane readout). The kernel reads the parameters as
the modules hold them on every call (a transposed copy of each weight and the folded BatchNorm are made
at the start of the call), so no cache can go stale.
Inputs of the matrix-vector products are spikes or window averages, mostly zeros (an integrator's
potentials feed no layer in the front-end's stacks): only non-zero inputs are visited, each adding a
row of the transposed weight (unit stride over the output neurons, so LLVM vectorises it); with
nothing in the recurrent layer's previous spikes, its recurrent product is skipped. The sums run in
input order, so they may round differently from a GEMM's blocked sums; ``tests/test_frontend_fused.py``
compares the two paths. Every float array has the input's dtype.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from mambaspike.kernels.alif_numba import alif_update
from mambaspike.kernels.lif_numba import lif_update

_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")
LIF, ALIF, INTEGRATOR = 0, 1, 2  # a layer's kind (from ``flags``)


@njit(inline="always", **_OPTS)
def _spmv(x, n_in, wt, n_out, out):  # pragma: no cover
    """``out[:n_out] = W x`` over the non-zero entries of ``x[:n_in]`` (``wt = W^T``, rows of unit
    stride; 2-D indexing, so no slice and its reference counting per input)."""
    zero = out.dtype.type(0)
    for i in range(n_out):
        out[i] = zero
    for j in range(n_in):
        a = x[j]
        if a != zero:
            for i in range(n_out):
                out[i] += a * wt[j, i]


@njit(inline="always", **_OPTS)
def _step(
    inp, n_in, wl, n_out, sc, sh, rec, acc, vl, al, s, beta, cin, vth, vreset, rho, adapt, kind, soft
):  # pragma: no cover
    """One layer at one step: the current ``(W inp) * sc + sh + rec`` (``wl = W^T``, zero-padded;
    non-zero inputs only; ``rec``: the recurrent current or zeros, added after the normalisation as
    the block adds it), then by ``kind`` the ALIF update (``ALIF``: potentials ``vl`` and adaptation
    ``al``), the leaky integration ``v = beta v + cin I`` (``INTEGRATOR``: ``s`` is ``v`` itself, no
    spikes) or the LIF update (``LIF``: ``vl`` only; ``al``, ``rho`` and ``adapt`` unused) into ``s[:n_out]``;
    ``acc``: scratch. ``wl``, ``sc``, ``sh``, ``vl``, ``al`` are the layer's slices, taken once per layer:
    a slice costs two atomic reference-count updates, more than a step's arithmetic at batch 1."""
    one = acc.dtype.type(1)
    _spmv(inp, n_in, wl, n_out, acc)
    if kind == ALIF:
        for i in range(n_out):
            cur = acc[i] * sc[i] + sh[i] + rec[i]
            _, _, spiked, vl[i], al[i] = alif_update(vl[i], al[i], cur, beta, cin, vth, rho, adapt, vreset, soft)
            s[i] = one if spiked else one - one
    elif kind == INTEGRATOR:  # as LeakyIntegrator._update rounds it: beta v, then + (1 - beta) I
        for i in range(n_out):
            v = beta * vl[i] + cin * (acc[i] * sc[i] + sh[i] + rec[i])
            vl[i] = v
            s[i] = v
    else:
        for i in range(n_out):
            _, spiked, vl[i] = lif_update(vl[i], acc[i] * sc[i] + sh[i] + rec[i], beta, cin, vth, vreset, soft)
            s[i] = one if spiked else one - one


@njit(inline="always", **_OPTS)
def _layer_steps(
    src, T, n_in, k, avg, dst, wl, n_out, sc, sh, vl, al, beta, cin, vth, vreset, rho, adapt, kind, soft,
    recurrent, rt, sp, n_sp, have_sp, inp, s, acc, rec, no_rec,
):  # fmt: skip  # pragma: no cover
    """One layer over a whole sequence: its steps on the rows ``src[:T, :n_in]``, the spikes pooled over
    windows of ``k`` steps (max, or mean with ``avg``; the last window may be incomplete) into
    ``dst[:ceil(T / k), :n_out]`` (``dst`` may be ``src`` where ``k = 1``: a row is read before it is
    written). ``recurrent``: the layer adds ``R sp`` (``rt = R^T``) to its current and keeps its last
    spikes in ``sp`` (``n_sp`` non-zero entries; ``have_sp``: ``sp`` holds spikes at all). Returns
    ``(n_sp, have_sp)``. ``kind`` is a constant at each call site (see :func:`_layer`)."""
    zero = acc.dtype.type(0)
    count = 0
    tp = 0
    for t in range(T):
        for i in range(n_in):
            inp[i] = src[t, i]
        r = no_rec
        if recurrent and have_sp and n_sp > 0:
            _spmv(sp, n_out, rt, n_out, rec)
            r = rec
        _step(inp, n_in, wl, n_out, sc, sh, r, acc, vl, al, s, beta, cin, vth, vreset, rho, adapt, kind, soft)
        if recurrent:
            n_sp = 0
            for i in range(n_out):
                sp[i] = s[i]
                n_sp += s[i] != zero
            have_sp = True
        if count == 0:
            for i in range(n_out):
                dst[tp, i] = s[i]
        elif avg:
            for i in range(n_out):
                dst[tp, i] += s[i]
        else:
            for i in range(n_out):
                dst[tp, i] = max(dst[tp, i], s[i])
        count += 1
        if count == k or t == T - 1:
            if avg:
                c = acc.dtype.type(count)
                for i in range(n_out):
                    dst[tp, i] /= c
            count = 0
            tp += 1
    return n_sp, have_sp


@njit(inline="always", **_OPTS)
def _layer(
    src, T, n_in, k, avg, dst, wl, n_out, sc, sh, vl, al, beta, cin, vth, vreset, rho, adapt, kind, soft,
    recurrent, rt, sp, n_sp, have_sp, inp, s, acc, rec, no_rec,
):  # fmt: skip  # pragma: no cover
    """:func:`_layer_steps` with the update of the layer's ``kind`` (``LIF``, ``ALIF``, ``INTEGRATOR``),
    chosen once per layer: each choice is its own copy of the time loop holding one update only (a
    literal ``kind`` per call; at most 30 arguments per call, above which CPython passes them as a
    tuple, which numba's inliner refuses)."""
    # A run-time choice inside the time loop (in _step or around its call) made LLVM's code for the
    # LIF steps slower even where the ALIF branch is never taken, and so did one call site shared by
    # layer 0 and the later layers: hence a copy per kind here, and two call sites in dense_frontend.
    if kind == ALIF:
        return _layer_steps(
            src, T, n_in, k, avg, dst, wl, n_out, sc, sh, vl, al, beta, cin, vth, vreset, rho, adapt, ALIF, soft,
            recurrent, rt, sp, n_sp, have_sp, inp, s, acc, rec, no_rec,
        )  # fmt: skip
    if kind == INTEGRATOR:
        return _layer_steps(
            src, T, n_in, k, avg, dst, wl, n_out, sc, sh, vl, al, beta, cin, vth, vreset, rho, adapt, INTEGRATOR, soft,
            recurrent, rt, sp, n_sp, have_sp, inp, s, acc, rec, no_rec,
        )  # fmt: skip
    return _layer_steps(
        src, T, n_in, k, avg, dst, wl, n_out, sc, sh, vl, al, beta, cin, vth, vreset, rho, adapt, LIF, soft,
        recurrent, rt, sp, n_sp, have_sp, inp, s, acc, rec, no_rec,
    )  # fmt: skip


@njit(**_OPTS)
def _fold(ws, means, variances, gammas, betas, eps, rt_in, has_rec):  # pragma: no cover
    # BatchNorm is folded here in the input's dtype, as torch's eval-mode batch norm rounds it, so the
    # kernel's spikes equal the module path's; the NIR export folds in float64 into a graph (its own
    # function, mambaspike.export): a shared fold would cost one of the two its precision.
    """The packed parameters of one call, from the live tensors: each layer's weight transposed into
    ``wt[l, :n_in, :n_out]`` (zero-padded to the widest layer), BatchNorm folded as torch's eval-mode
    batch norm computes it (``scale = gamma / sqrt(var + eps)``, ``shift = beta - mean * scale``, packed by
    ``noff``), the recurrent weight transposed (``rt[j, i] = R[i, j]``)."""
    nL = len(ws)
    dt = means[0].dtype
    one = dt.type(1)
    noff = np.zeros(nL + 1, np.int64)
    mi, mo = 1, 1
    for l in range(nL):
        n_out, n_in = ws[l].shape
        noff[l + 1] = noff[l] + n_out
        mi, mo = max(mi, n_in), max(mo, n_out)
    wt = np.zeros((nL, mi, mo), dt)
    scale = np.empty(noff[nL], dt)
    shift = np.empty(noff[nL], dt)
    for l in range(nL):
        w = ws[l]
        n_out, n_in = w.shape
        for j in range(n_in):
            for i in range(n_out):
                wt[l, j, i] = w[i, j]
        for i in range(n_out):
            sc = one / np.sqrt(variances[l][i] + dt.type(eps[l])) * gammas[l][i]
            scale[noff[l] + i] = sc
            shift[noff[l] + i] = betas[l][i] - means[l][i] * sc
    n = rt_in.shape[0] if has_rec else 1
    rt = np.zeros((n, n), dt)
    if has_rec:
        for j in range(n):
            for i in range(n):
                rt[j, i] = rt_in[i, j]
    return wt, noff, scale, shift, rt


@njit(**_OPTS)
def dense_frontend(
    x,
    ws,
    means,
    variances,
    gammas,
    betas,
    eps,
    lifp,
    flags,
    r_w,
    rec_layer,
    k,
    avg,
    v_state,
    a_state,
    init_v,
    s_prev,
    has_s0,
    out,
    j0,
    j1,
):
    """Samples ``[j0, j1)`` of ``x [T, B, F]`` -> ``out [ceil(T / k), B, n_last]`` (the last layer's
    spikes, or potentials where it integrates; a single layer's pooled).

    Parameters as the modules hold them (read on every call, nothing cached): ``ws`` the layers'
    ``Linear.weight [n_out, n_in]``; ``means``, ``variances``, ``gammas``, ``betas`` their BatchNorm
    running statistics and affine parameters, ``eps [L]``; neuron scalars per layer ``lifp [L, 6]``
    (``beta``, input gain ``cin``, ``vth``, ``vreset``, ``rho``, ``adapt``; the last two unused by LIF
    layers; ``beta`` and ``cin`` only for an integrator) and ``flags [3, L]`` (soft reset; ALIF; leaky
    integrator; else LIF); ``rec_layer`` the recurrent layer (``-1``: none) and ``r_w [n_rec, n_rec]`` its
    recurrent ``Linear.weight``. ``v_state [B, sum n_out]``: the layers' potentials, and
    ``a_state [B, sum n_out]`` their adaptation traces (only the ALIF layers' entries are read or
    written: ``[B, 0]`` will do where there is none), in (unless ``init_v``: each layer starts at its
    ``vreset`` and ``a = 0``; an integrator's ``vreset`` is 0) and out; ``s_prev [B, n_rec]``: the
    recurrent layer's spikes of its previous step, in (where ``has_s0``, else none) and out.

    Layer by layer over the whole sequence (a layer's steps depend only on its own past and the
    layer below): layer 0 over the ``T`` input bins, pooled into ``ceil(T / k)`` windows, then each
    further layer over the windows."""
    has_rec = rec_layer >= 0
    wt, noff, scale, shift, rt = _fold(ws, means, variances, gammas, betas, eps, r_w, has_rec)
    beta, cin, vth, vreset, rho, adapt = lifp[:, 0], lifp[:, 1], lifp[:, 2], lifp[:, 3], lifp[:, 4], lifp[:, 5]
    soft = flags[0]
    kinds = np.where(flags[1], ALIF, np.where(flags[2], INTEGRATOR, LIF))
    T, _, F = x.shape
    nL = len(ws)
    dt = x.dtype.type
    zero = dt(0)
    width = F
    for l in range(nL):
        width = max(width, ws[l].shape[0])
    n0, n_last = ws[0].shape[0], ws[nL - 1].shape[0]
    n_rec = ws[rec_layer].shape[0] if has_rec else 1
    Tp = (T + k - 1) // k
    xb = np.empty((T, F), x.dtype)  # one sample's input
    seq = np.empty((Tp, width), x.dtype)  # a layer's output over the windows (its input before)
    s = np.empty(width, x.dtype)  # spikes of one step
    inp = np.empty(width, x.dtype)
    rec = np.zeros(width, x.dtype)  # recurrent current of the recurrent layer
    no_rec = np.zeros(width, x.dtype)  # stays zero: the other layers' "recurrent current"
    acc = np.empty(width, x.dtype)
    sp = np.empty(n_rec, x.dtype)
    for b in range(j0, j1):
        v, a = v_state[b], a_state[b]
        if init_v:
            for l in range(nL):
                for i in range(noff[l], noff[l + 1]):
                    v[i] = vreset[l]
                    if kinds[l] == ALIF:
                        a[i] = zero
        have_sp = has_s0
        n_sp = 0  # non-zero entries of sp (no recurrent current to add without them)
        for i in range(n_rec):
            sp[i] = s_prev[b, i] if has_s0 else zero
            n_sp += sp[i] != zero
        # layer 0 over the input bins, pooled into seq[:, :n0]
        for t in range(T):
            for f in range(F):
                xb[t, f] = x[t, b, f]
        rec0 = rec_layer == 0
        lo, hi = noff[0], noff[1]
        sc, sh, vl, al, wl = scale[lo:hi], shift[lo:hi], v[lo:hi], a[lo:hi], wt[0]
        n_sp, have_sp = _layer(
            xb, T, F, k, avg, seq, wl, n0, sc, sh, vl, al,
            beta[0], cin[0], vth[0], vreset[0], rho[0], adapt[0], kinds[0], soft[0],
            rec0, rt, sp, n_sp, have_sp, inp, s, acc, rec, no_rec,
        )  # fmt: skip
        # layers 1.. over the windows, in place in seq
        for l in range(1, nL):
            n_out, n_in = ws[l].shape
            recl = l == rec_layer
            lo, hi = noff[l], noff[l + 1]
            sc, sh, vl, al, wl = scale[lo:hi], shift[lo:hi], v[lo:hi], a[lo:hi], wt[l]
            n_sp, have_sp = _layer(
                seq, Tp, n_in, 1, False, seq, wl, n_out, sc, sh, vl, al,
                beta[l], cin[l], vth[l], vreset[l], rho[l], adapt[l], kinds[l], soft[l],
                recl, rt, sp, n_sp, have_sp, inp, s, acc, rec, no_rec,
            )  # fmt: skip
        for t in range(Tp):
            for i in range(n_last):
                out[t, b, i] = seq[t, i]
        if has_rec:
            for i in range(n_rec):
                s_prev[b, i] = sp[i]


def warm_up() -> None:
    """Compile (or load from numba's cache) both dtype variants for one, two and three layers."""
    for dt in (np.float32, np.float64):
        for n_layers in (1, 2, 3):
            x = np.ones((3, 1, 2), dt)
            ws = tuple(np.ones((2, 2), dt) for _ in range(n_layers))
            vec = tuple(np.ones(2, dt) for _ in range(n_layers))
            p = np.ones(n_layers, dt)
            lifp = np.stack([p * dt(0.5), p * dt(0.5), p, p * dt(0), p * dt(0.9), p * dt(0.2)], axis=1)
            dense_frontend(
                x,
                ws,
                vec,
                vec,
                vec,
                vec,
                np.full(n_layers, 1e-5),
                lifp,
                np.stack([np.zeros(n_layers, np.bool_), np.arange(n_layers) % 2 == 0, np.zeros(n_layers, np.bool_)]),
                np.ones((2, 2), dt),
                n_layers - 1,
                2,
                False,
                np.zeros((1, 2 * n_layers), dt),
                np.zeros((1, 2 * n_layers), dt),
                True,
                np.zeros((1, 2), dt),
                False,
                np.empty((2, 1, 2), dt),
                0,
                1,
            )
