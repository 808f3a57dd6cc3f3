"""Recurrent LIF: a LIF population whose input at ``t`` includes a linear map of its own spikes at ``t - 1``.

This is the recurrent connection of Mamba-Spike's front-end (§3.1): a 1x1 convolution (or, for 1-D
input, a dense layer) of the block's spikes, added to the next bin's input current::

    I[t] = x[t] + W s[t-1]          (no recurrent term at t = 0 unless a previous spike state s0 is given)
    h[t], s[t], v[t]: the LIF update of mambaspike.neurons (lif_step) driven by I[t]

Channels are axis 2 of ``x_seq [T, B, C, ...]``; ``W`` is ``[C, C]`` (``W[i, j]``: from channel j to
channel i, the layout of ``nn.Linear.weight`` and of a 1x1 ``nn.Conv2d.weight[:, :, 0, 0]``). The state
is ``(v [B, C, ...], s_prev [B, C, ...])``.

- :func:`rlif_multistep`: the reference loop (per step: ``einsum`` then :func:`lif_step`).
- :func:`rlif_multistep_fast`: one custom autograd node over the whole sequence; forward and backward
  are compiled loops (:mod:`mambaspike.kernels.rlif_numba`) -- no Python per time step, which is what makes a
  recurrent block slow at long sequences and small batches (batch-1 inference of 392 bins: one Python
  iteration of several small ops per bin). CPU, float32/float64, scalar ``beta``/``v_threshold``, a
  built-in surrogate; see :func:`fused_supported`.

Both give the same spikes, states and gradients (up to float rounding of the order in which the
recurrent current is summed); ``tests/test_recurrent_lif.py`` compares them.
"""

from __future__ import annotations

import math

import torch

from mambaspike import kernels
from mambaspike.kernels.threads import run_blocks
from mambaspike.kernels.views import empty_like_numpy, np_dtype
from mambaspike.neurons.functional import LIFParams, lif_step
from mambaspike.neurons.lif_fast import kernel_scalars, kernel_unsupported


def _rows(t: torch.Tensor, batch_dim: int) -> torch.Tensor:
    """Move the channel axis (``batch_dim + 1``) last and flatten batch and spatial axes into rows:
    ``[T, B, C, *S] -> [T, B*S, C]`` (``batch_dim=1``) or ``[B, C, *S] -> [B*S, C]`` (``batch_dim=0``)."""
    y = t.movedim(batch_dim + 1, -1)  # (..., B, *S, C)
    return y.reshape(*y.shape[:batch_dim], -1, y.shape[-1]).contiguous()


def _unrows(r: torch.Tensor, like_shape: tuple, batch_dim: int) -> torch.Tensor:
    """Inverse of :func:`_rows` for a tensor of shape ``like_shape``."""
    c_dim = batch_dim + 1
    y = r.reshape(*like_shape[:c_dim], *like_shape[c_dim + 1 :], like_shape[c_dim])  # (..., B, *S, C)
    return y.movedim(-1, c_dim)


def rlif_multistep(x_seq: torch.Tensor, W: torch.Tensor, state, p: LIFParams, spike_fn):
    """Reference loop: ``x_seq [T, B, C, ...]``, ``W [C, C]``, ``state (v, s_prev)`` or ``None`` ->
    ``(spikes [T, B, C, ...], (v_last, s_last))``."""
    v, s_prev = state if state is not None else (None, None)
    if v is None:
        v = x_seq.new_full(x_seq.shape[1:], p.v_reset)
    out = []
    for x in x_seq.unbind(0):
        if s_prev is not None:
            x = x + torch.einsum("ij,bj...->bi...", W, s_prev)
        s_prev, v = lif_step(x, v, p, spike_fn)
        out.append(s_prev)
    if not out:
        return x_seq.newempty_like_numpy(x_seq.shape), (v, s_prev)
    return torch.stack(out), (v, s_prev)


def fused_supported(x_seq: torch.Tensor, W: torch.Tensor, p: LIFParams, spike_fn) -> str | None:
    """Why the compiled kernel cannot run this call (``None`` when it can)."""
    if x_seq.device.type != "cpu":
        return f"tensors on {x_seq.device} (CPU only)"
    why = kernel_unsupported(x_seq, p, spike_fn)
    if why is not None:
        return why
    if x_seq.dim() < 3:
        return "input without a channel axis ([T, B, C, ...] expected)"
    if tuple(W.shape) != (x_seq.shape[2], x_seq.shape[2]):
        return f"a recurrent weight of shape {tuple(W.shape)} for {x_seq.shape[2]} channels"
    if not kernels.available("rlif_numba"):
        return f"the recurrent LIF kernel is unavailable ({kernels.reason('rlif_numba')})"
    return None


class _FusedRecurrentLIF(torch.autograd.Function):
    """The whole recurrent LIF sequence in rows layout as one autograd node.

    Inputs ``x [T, R, C]``, ``W [C, C]``, ``v0, s0 [R, C]`` (``s0`` ignored unless ``has_s0``),
    scalar ``beta``, ``v_threshold``. Outputs ``(spikes [T, R, C], v_last [R, C])``. Saves the inputs
    only; the backward recomputes currents and potentials."""

    @staticmethod
    def forward(ctx, x, W, v0, s0, beta, v_threshold, alpha, has_s0, v_reset, soft, detach, decay_input, kind):
        K = kernels.load("rlif_numba")
        dt = x.dtype
        npd = np_dtype(dt)
        x, W, v0, s0 = (t.detach().to(dt).contiguous() for t in (x, W, v0, s0))
        WT = W.t().contiguous()
        b, c, vth = kernel_scalars(beta, v_threshold, decay_input, dt)
        T, R, C = x.shape
        s = empty_like_numpy(x.shape, dt)
        v_last = v0.clone()
        if T and R and C:
            args = (
                x.numpy(),
                WT.numpy(),
                v0.numpy(),
                s0.numpy(),
                bool(has_s0),
                npd(b),
                npd(c),
                npd(vth),
                npd(v_reset),
                bool(soft),
                s.numpy(),
                v_last.numpy(),
            )
            run_blocks(K.rlif_forward, args, R, T * R * C)
        ctx.save_for_backward(x, W, WT, v0, s0)
        ctx.cfg = (
            b,
            c,
            vth,
            float(v_reset),
            bool(soft),
            bool(detach),
            bool(decay_input),
            int(kind),
            float(alpha.detach()),
            bool(has_s0),
            beta.shape,
            beta.dtype,
            v_threshold.shape,
            v_threshold.dtype,
        )
        return s, v_last

    @staticmethod
    def backward(ctx, g_s, g_v):
        K = kernels.load("rlif_numba")
        x, W, WT, v0, s0 = ctx.saved_tensors
        b, c, vth, v_reset, soft, detach, decay_input, kind, alpha, has_s0, b_shape, b_dt, t_shape, t_dt = ctx.cfg
        T, R, C = x.shape
        dt = x.dtype
        npd = np_dtype(dt)
        gs = torch.zeros_like(x) if g_s is None else g_s.to(dt).contiguous()
        gv = torch.zeros_like(v0) if g_v is None else g_v.to(dt).contiguous()
        gx = empty_like_numpy(x.shape, dt)
        gv0 = torch.empty_like(v0)
        gs0 = torch.empty_like(v0)
        threads = torch.get_num_threads()
        nchunk = max(1, min(R, 4 * threads))
        nrows = -(-R // nchunk) if R else 1
        nchunk = -(-R // nrows) if R else 0
        import numpy as np

        gWT = np.zeros((max(nchunk, 1), C, C))
        gbeta = np.zeros(max(nchunk, 1))
        gvth = np.zeros(max(nchunk, 1))
        if T and R and C:
            args = (
                kind,
                x.numpy(),
                W.numpy(),
                WT.numpy(),
                v0.numpy(),
                s0.numpy(),
                has_s0,
                gs.numpy(),
                gv.numpy(),
                npd(b),
                npd(c),
                npd(vth),
                npd(v_reset),
                npd(alpha),
                npd(1.0),
                npd(math.pi / 2),
                soft,
                detach,
                decay_input,
                gx.numpy(),
                gv0.numpy(),
                gs0.numpy(),
                gWT,
                gbeta,
                gvth,
                nrows,
            )
            run_blocks(K.rlif_backward, args, nchunk, T * R * C * C)
        else:
            gx.zero_()
            gv0.copy_(gv)
            gs0.zero_()
        need = ctx.needs_input_grad
        return (
            gx if need[0] else None,
            torch.from_numpy(gWT.sum(0).T.copy()).to(dt) if need[1] else None,
            gv0 if need[2] else None,
            gs0 if need[3] and has_s0 else None,
            torch.tensor(float(gbeta.sum()), dtype=b_dt).reshape(b_shape) if need[4] else None,
            torch.tensor(float(gvth.sum()), dtype=t_dt).reshape(t_shape) if need[5] else None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def rlif_multistep_fast(x_seq: torch.Tensor, W: torch.Tensor, state, p: LIFParams, spike_fn):
    """:func:`rlif_multistep` through the compiled kernels (check :func:`fused_supported` first):
    same arguments, same results."""
    why = fused_supported(x_seq, W, p, spike_fn)
    if why is not None:
        raise ValueError(f"recurrent LIF: the compiled kernel cannot run this call: {why}")
    return _rlif_fused(x_seq, W, state, p, spike_fn)


def _rlif_fused(x_seq: torch.Tensor, W: torch.Tensor, state, p: LIFParams, spike_fn):
    """:func:`rlif_multistep_fast` for a call :func:`fused_supported` has accepted (not checked again)."""
    dtype = x_seq.dtype
    shape = tuple(x_seq.shape)
    v, s_prev = state if state is not None else (None, None)
    if v is None:
        v = x_seq.new_full(shape[1:], p.v_reset)
    has_s0 = s_prev is not None
    beta = p.beta if torch.is_tensor(p.beta) else torch.tensor(p.beta, dtype=dtype)
    vth = p.v_threshold if torch.is_tensor(p.v_threshold) else torch.tensor(p.v_threshold, dtype=dtype)
    x_r = _rows(x_seq, 1)  # (T, R, C)
    v_r = _rows(v, 0)  # (R, C)
    s0_r = _rows(s_prev, 0) if has_s0 else x_r.new_zeros(x_r.shape[1:])
    s_r, v_last_r = _FusedRecurrentLIF.apply(
        x_r,
        W,
        v_r,
        s0_r,
        beta,
        vth,
        spike_fn.alpha,
        has_s0,
        float(p.v_reset),
        bool(p.soft_reset),
        bool(p.detach_reset),
        bool(p.decay_input),
        spike_fn.kind,
    )
    spikes = _unrows(s_r, shape, 1)
    v_last = _unrows(v_last_r, shape[1:], 0)
    return spikes, (v_last, spikes[-1] if shape[0] else s_prev)


__all__ = ["rlif_multistep", "rlif_multistep_fast", "fused_supported"]
