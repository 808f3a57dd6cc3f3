"""Compiled CPU kernel of the dense spiking front-end's inference forward (numba, ``cache=True``, ``nogil``).

Used by :meth:`mambaspike.models.frontend.SpikingFrontEnd.forward_fused` (1-D input, eval mode, no
autograd graph). One call runs the whole stack for a range of samples, time step by time step, with no
Python in between -- at batch 1 the module-by-module forward spends nearly all its time in the
per-call overhead of a dozen small operations per block, not in arithmetic.

Per sample and input bin ``t``::

    layer 0:    I = BN(W_0 x[t])                       BN folded: I = (W x) * bn_scale + bn_shift
                h = beta v + c I;  s = h - v_th >= 0;  v = reset(h, s)      (mambaspike.neurons.lif_step)
    pooling:    acc = max(acc, s) (or acc += s) over ``k`` bins; a window completes every ``k`` bins
                (and at the last bin: an incomplete window, averaged over its real bins for ``avg``)
    layer l>0:  on each completed window, I = BN(W_l in) (+ R s_prev for the recurrent last layer,
                R applied to its own spikes of the previous window), then the same LIF update

The recurrent connection belongs to the last layer (layer 0 when it is the only one). Inputs of the
matrix-vector products are spikes or window averages, mostly zeros: only non-zero inputs are
visited, each adding a row of the transposed weight (unit stride over the output neurons, so LLVM
vectorises it). The sums run in input order, so they may round differently from a GEMM's blocked
sums; ``tests/test_frontend_fused.py`` compares the two paths.

Layer ``l``'s transposed weight ``[n_in, n_out]`` is ``wt[woff[l]:woff[l + 1]]`` (flattened); its
per-neuron vectors (``bn_scale``, ``bn_shift``) and potentials are ``[noff[l]:noff[l + 1]]`` of the
packed arrays. LIF scalars per layer: ``beta``, ``cin`` (input gain ``1 - beta`` or 1), ``vth``,
``vreset``, ``soft`` (1: subtract the threshold, 0: reset to ``vreset``). Every float array has the
input's dtype.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")


@njit(inline="always", **_OPTS)
def _layer(inp, n_in, wt, w0, n_out, scale, shift, o, rec, acc, v, s, beta, cin, vth, vreset, soft):  # pragma: no cover
    """One layer at one step: the current ``(W inp) * scale + shift + rec`` (non-zero inputs only;
    ``rec``: the recurrent current or zeros, added after the normalisation as the block adds it),
    then the LIF update of ``v[o:o + n_out]`` into spikes ``s[:n_out]``. ``acc``: scratch. Plain
    index loops (no slices) keep the per-step overhead small: at batch 1 a step is a few dozen
    neurons."""
    zero = acc.dtype.type(0)
    for i in range(n_out):
        acc[i] = zero
    for j in range(n_in):
        a = inp[j]
        if a != zero:
            base = w0 + j * n_out
            for i in range(n_out):
                acc[i] += a * wt[base + i]
    for i in range(n_out):
        current = acc[i] * scale[o + i] + shift[o + i] + rec[i]
        h = beta * v[o + i] + cin * current
        spk = (h - vth) >= zero
        s[i] = spk
        v[o + i] = (h - vth if soft else vreset) if spk else h


@njit(inline="always", **_OPTS)
def _recurrent(sp, rt, n, rec):  # pragma: no cover
    """``rec = R sp`` over the non-zero entries of ``sp`` (``rt = R^T``)."""
    zero = rec.dtype.type(0)
    for i in range(n):
        rec[i] = zero
    for j in range(n):
        if sp[j] != zero:
            for i in range(n):
                rec[i] += sp[j] * rt[j, i]


@njit(**_OPTS)
def dense_frontend(x, wt, woff, dims, scale, shift, noff, beta, cin, vth, vreset, soft, rt, has_rec, k, avg,
                   v_state, init_v, s_prev, has_s0, out, j0, j1):  # fmt: skip
    """Samples ``[j0, j1)`` of ``x [T, B, F]`` -> ``out [ceil(T / k), B, n_last]`` (spikes; a single
    layer's pooled spikes). ``v_state [B, sum n_out]``: the layers' potentials packed as ``noff``, in
    (unless ``init_v``: each layer starts at its ``vreset``) and out; ``s_prev [B, n_last]``: the
    recurrent layer's spikes of its previous step, in (where ``has_s0``, else none) and out.
    ``dims [L, 2]``: (n_in, n_out) per layer; ``rt [n_last, n_last]``: the recurrent weight
    transposed (``rt[j, i] = R[i, j]``) where ``has_rec``."""
    T, _, F = x.shape
    nL = dims.shape[0]
    dt = x.dtype.type
    zero = dt(0)
    width = F
    for l in range(nL):
        width = max(width, dims[l, 1])
    n0, n_last = dims[0, 1], dims[nL - 1, 1]
    rec_first = has_rec and nL == 1  # the recurrent layer runs every input bin (else every window)
    s = np.empty(width, x.dtype)  # spikes of the current layer
    inp = np.empty(width, x.dtype)  # input of the current layer
    rec = np.zeros(width, x.dtype)  # recurrent current of the recurrent layer
    no_rec = np.zeros(width, x.dtype)  # stays zero: the other layers' "recurrent current"
    acc = np.empty(width, x.dtype)  # scratch of _layer
    sp = np.empty(n_last, x.dtype)
    pool = np.empty(n0, x.dtype)
    for b in range(j0, j1):
        v = v_state[b]
        if init_v:
            for l in range(nL):
                for i in range(noff[l], noff[l + 1]):
                    v[i] = vreset[l]
        have_sp = has_s0
        for i in range(n_last):
            sp[i] = s_prev[b, i] if has_s0 else zero
        for i in range(n0):
            pool[i] = zero
        count = 0
        tp = 0
        for t in range(T):
            for f in range(F):
                inp[f] = x[t, b, f]
            r0 = no_rec
            if rec_first and have_sp:
                _recurrent(sp, rt, n_last, rec)
                r0 = rec
            _layer(inp, F, wt, woff[0], n0, scale, shift, noff[0], r0, acc, v, s, beta[0], cin[0], vth[0],
                   vreset[0], soft[0])  # fmt: skip
            if rec_first:
                for i in range(n_last):
                    sp[i] = s[i]
                have_sp = True
            if avg:
                for i in range(n0):
                    pool[i] += s[i]
            else:
                for i in range(n0):
                    pool[i] = max(pool[i], s[i])
            count += 1
            if count < k and t < T - 1:
                continue
            if avg:
                c = dt(count)
                for i in range(n0):
                    inp[i] = pool[i] / c
                    pool[i] = zero
            else:
                for i in range(n0):
                    inp[i] = pool[i]
                    pool[i] = zero
            count = 0
            for l in range(1, nL):
                n_out = dims[l, 1]
                rl = no_rec
                if l == nL - 1 and has_rec and have_sp:
                    _recurrent(sp, rt, n_last, rec)
                    rl = rec
                _layer(inp, dims[l, 0], wt, woff[l], n_out, scale, shift, noff[l], rl, acc, v, s, beta[l], cin[l],
                       vth[l], vreset[l], soft[l])  # fmt: skip
                for i in range(n_out):
                    inp[i] = s[i]
            if nL > 1 and has_rec:
                for i in range(n_last):
                    sp[i] = s[i]
                have_sp = True
            for i in range(n_last):  # after the loop, inp holds the last layer's output (or the pooled spikes)
                out[tp, b, i] = inp[i]
            tp += 1
        for i in range(n_last):
            s_prev[b, i] = sp[i]


def warm_up() -> None:
    """Compile (or load from numba's cache) both dtype variants on a two-layer recurrent stack."""
    for dt in (np.float32, np.float64):
        x = np.ones((3, 1, 2), dt)
        dims = np.array([[2, 2], [2, 2]], np.int64)
        p = np.ones(2, dt)
        dense_frontend(x, np.ones(8, dt), np.array([0, 4, 8], np.int64), dims, np.ones(4, dt), np.zeros(4, dt),
                       np.array([0, 2, 4], np.int64), p * dt(0.5), p * dt(0.5), p, p * dt(0), np.zeros(2, np.bool_),
                       np.ones((2, 2), dt), True, 2, False, np.zeros((1, 4), dt), True, np.zeros((1, 2), dt), False,
                       np.empty((2, 1, 2), dt), 0, 1)  # fmt: skip
