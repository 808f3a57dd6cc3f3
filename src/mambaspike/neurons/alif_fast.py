"""The multi-step adaptive-threshold LIF through a fused kernel: one autograd node over the whole sequence.

Backends (``ALIF(backend=...)``, :func:`alif_multistep_fast`):

- ``"reference"``: :func:`~mambaspike.neurons.functional.alif_multistep`, the plain loop (ground truth).
- ``"numba"`` (alias ``"cpu"``): forward and backward are compiled loops
  (:mod:`mambaspike.kernels.alif_numba`) on ``torch.get_num_threads()`` threads that save nothing per
  step but the input. Float32 and float64 CPU tensors, scalar ``beta``, ``v_threshold`` and ``rho``, a
  built-in surrogate.
- ``"auto"`` (default): the numba kernel on CPU where it applies, else the reference loop (also for
  ``T = 1``, where there is nothing to fuse).

Both give the same spikes and final states, bit for bit, and the same gradients up to the order in
which the scalar parameters' gradients are summed; ``tests/test_alif_fast.py`` compares them.
"""

from __future__ import annotations

import math

import torch

from mambaspike import kernels
from mambaspike.kernels.threads import run_blocks
from mambaspike.kernels.views import empty_like_numpy, np_dtype
from mambaspike.neurons.functional import ALIFParams, ALIFState, alif_multistep
from mambaspike.neurons.lif_fast import _block_sizes, _kernel_failed, kernel_scalars, kernel_unsupported, spike_grad_arg
from mambaspike.neurons.recurrent import _rows, _unrows

ALIF_BACKENDS = ("auto", "reference", "numba", "cpu")


def _unsupported(x_seq: torch.Tensor, state, p: ALIFParams, spike_fn) -> str | None:
    """Why the compiled kernel cannot run this call (``None`` when it can)."""
    why = kernel_unsupported(x_seq, p, spike_fn)
    if why is not None:
        return why
    if torch.is_tensor(p.rho) and p.rho.numel() != 1:
        return "a per-neuron rho (scalar only)"
    if x_seq.device.type != "cpu":
        return f"tensors on {x_seq.device.type} (the numba kernel is CPU-only)"
    if x_seq.dim() < 1:
        return "input without a time dimension"
    if state is not None and any(tuple(t.shape) != tuple(x_seq.shape[1:]) for t in state):
        return f"a state of shape {tuple(state.v.shape)} for steps of shape {tuple(x_seq.shape[1:])}"
    return None


def _scalars(p: ALIFParams, dtype) -> tuple[float, float, float, float, float]:
    """``(beta, input scale, threshold, rho, adapt)`` as the reference computes them, in ``dtype``."""
    return (
        *kernel_scalars(p.beta, p.v_threshold, p.decay_input, dtype),
        p.rho.detach().to(dtype).item(),
        float(p.adapt),
    )


def _forward(x2, v02, a02, sc, v_reset, soft):
    K = kernels.load("alif_numba")
    T, N = x2.shape
    npd = np_dtype(x2.dtype)
    b, c, vth, rho, adapt = sc
    s = empty_like_numpy(x2.shape, x2.dtype)
    v_last, a_last = torch.empty_like(v02), torch.empty_like(a02)
    blk = _block_sizes(T, N, x2.element_size(), torch.get_num_threads())[0]
    args = (x2.numpy(), v02.numpy(), a02.numpy(), npd(b), npd(c), npd(vth), npd(rho), npd(adapt), npd(v_reset))
    args += (soft, s.numpy(), v_last.numpy(), a_last.numpy(), blk)
    run_blocks(K.alif_forward, args, -(-N // blk), T * N)
    return s, v_last, a_last


def _backward(x2, v02, a02, g_s, gv, ga, sc, v_reset, soft, detach, decay_input, kind, alpha):
    import numpy as np

    K = kernels.load("alif_numba")
    T, N = x2.shape
    dt = x2.dtype
    npd = np_dtype(dt)
    b, c, vth, rho, adapt = sc
    gs, gs_scalar = spike_grad_arg(g_s)
    gx = empty_like_numpy(x2.shape, dt)
    gv0, ga0 = torch.empty_like(v02), torch.empty_like(a02)
    # three [T, blk] buffers per block (h, v, a) instead of the LIF's one
    blk = max(16, (_block_sizes(T, N, x2.element_size(), torch.get_num_threads())[1] // 3 // 16) * 16)
    nblk = -(-N // blk)
    gbeta, gvth, grho = np.zeros(nblk), np.zeros(nblk), np.zeros(nblk)
    args = (x2.numpy(), v02.numpy(), a02.numpy(), gs.numpy(), gs_scalar, gv.numpy(), ga.numpy())
    args += (npd(b), npd(c), npd(vth), npd(rho), npd(adapt), npd(v_reset), soft, detach, decay_input, kind)
    args += (npd(alpha), npd(1.0), npd(math.pi / 2), gx.numpy(), gv0.numpy(), ga0.numpy(), gbeta, gvth, grho, blk)
    run_blocks(K.alif_backward, args, nblk, T * N)
    return gx, gv0, ga0, float(gbeta.sum()), float(gvth.sum()), float(grho.sum())


class _FusedALIF(torch.autograd.Function):
    """The whole ``[T, ...]`` ALIF sequence as one autograd node (the numba kernels). Saves the input
    and the initial state; the backward recomputes the rest. Gradients: input, initial state
    ``(v0, a0)``, ``beta``, ``v_threshold``, ``rho``."""

    @staticmethod
    def forward(ctx, x_seq, v0, a0, beta, v_threshold, rho, p: ALIFParams, alpha, kind):
        T, shape, dt = x_seq.shape[0], x_seq.shape, x_seq.dtype
        N = math.prod(shape[1:])
        x2 = x_seq.detach().contiguous().view(T, N)
        v02 = v0.detach().to(dt).contiguous().view(N)
        a02 = a0.detach().to(dt).contiguous().view(N)
        sc = _scalars(p, dt)
        if T == 0 or N == 0:
            s, v_last, a_last = torch.empty_like(x2), v02.clone(), a02.clone()
        else:
            s, v_last, a_last = _forward(x2, v02, a02, sc, float(p.v_reset), bool(p.soft_reset))
        ctx.save_for_backward(x2, v02, a02)
        ctx.cfg = (
            sc,
            p,
            float(alpha.detach()),
            int(kind),
            shape,
            [(t.shape, t.dtype) for t in (beta, v_threshold, rho)],
        )
        return s.view(shape), v_last.view(shape[1:]), a_last.view(shape[1:])

    @staticmethod
    def backward(ctx, g_s, g_v, g_a):
        x2, v02, a02 = ctx.saved_tensors
        sc, p, alpha, kind, shape, scalar_like = ctx.cfg
        T, N = x2.shape
        g_s = x2.new_zeros(()).expand(T, N) if g_s is None else g_s.to(x2.dtype).reshape(T, N)
        gv = x2.new_zeros(N) if g_v is None else g_v.to(x2.dtype).contiguous().view(N)
        ga = x2.new_zeros(N) if g_a is None else g_a.to(x2.dtype).contiguous().view(N)
        if T == 0 or N == 0:
            gx, gv0, ga0, *gp = torch.zeros_like(x2), gv.clone(), ga.clone(), 0.0, 0.0, 0.0
        else:
            gx, gv0, ga0, *gp = _backward(
                x2, v02, a02, g_s, gv, ga, sc, float(p.v_reset), bool(p.soft_reset), bool(p.detach_reset),
                bool(p.decay_input), kind, alpha,
            )  # fmt: skip
        need = ctx.needs_input_grad
        grads = [
            torch.tensor(g, dtype=dtype, device=x2.device).reshape(shp) if need[3 + i] else None
            for i, (g, (shp, dtype)) in enumerate(zip(gp, scalar_like))
        ]
        return (
            gx.view(shape) if need[0] else None,
            gv0.view(shape[1:]) if need[1] else None,
            ga0.view(shape[1:]) if need[2] else None,
            *grads,
            None,
            None,
            None,
        )


def _resolve_backend(backend: str, x_seq: torch.Tensor, state, p: ALIFParams, spike_fn) -> str:
    """``"reference"`` or ``"numba"`` for this call (an error where an explicit ``numba`` cannot run)."""
    if backend not in ALIF_BACKENDS:
        raise ValueError(f"unknown ALIF backend {backend!r}; expected one of {', '.join(ALIF_BACKENDS)}")
    if backend == "reference" or (backend == "auto" and x_seq.shape[0] == 1):
        return "reference"
    why = _unsupported(x_seq, state, p, spike_fn)
    if backend == "auto":
        return "numba" if why is None and kernels.available("alif_numba") else "reference"
    if why is not None:
        raise ValueError(f"ALIF backend {backend!r} cannot run this call: {why}")
    if not kernels.available("alif_numba"):
        raise ImportError(f"ALIF backend {backend!r} needs the 'alif_numba' kernel ({kernels.reason('alif_numba')})")
    return "numba"


def alif_multistep_fast(
    x_seq: torch.Tensor, state: ALIFState | None, p: ALIFParams, spike_fn, backend: str = "auto"
) -> tuple[torch.Tensor, ALIFState]:
    """:func:`alif_multistep` through the compiled kernel: same arguments, same results.

    ``backend``: ``"auto"`` (the kernel where it applies, else the reference loop), ``"numba"``/``"cpu"``
    (an error where it cannot run) or ``"reference"``."""
    impl = _resolve_backend(backend, x_seq, state, p, spike_fn)
    if impl == "reference":
        return alif_multistep(x_seq, state, p, spike_fn)
    dtype = x_seq.dtype
    as_t = lambda v: v if torch.is_tensor(v) else torch.tensor(v, dtype=dtype)  # noqa: E731
    beta, vth, rho = as_t(p.beta), as_t(p.v_threshold), as_t(p.rho)
    p = p._replace(beta=beta, v_threshold=vth, rho=rho)
    if state is None:
        state = ALIFState(x_seq.new_full(x_seq.shape[1:], p.v_reset), x_seq.new_zeros(x_seq.shape[1:]))
    try:
        if not kernels.needs_graph(x_seq, state.v, state.a, beta, vth, rho) and x_seq.numel():
            shape = x_seq.shape
            s, v, a = _forward(
                x_seq.contiguous().view(shape[0], -1),
                state.v.to(dtype).contiguous().view(-1),
                state.a.to(dtype).contiguous().view(-1),
                _scalars(p, dtype),
                float(p.v_reset),
                bool(p.soft_reset),
            )
            return s.view(shape), ALIFState(v.view(shape[1:]), a.view(shape[1:]))
        s, v, a = _FusedALIF.apply(x_seq, state.v, state.a, beta, vth, rho, p, spike_fn.alpha, spike_fn.kind)
        return s, ALIFState(v, a)
    except Exception as e:
        if not _kernel_failed(e, backend, "alif_numba"):
            raise
        return alif_multistep(x_seq, state, p, spike_fn)


def recurrent_inference_unsupported(x_seq: torch.Tensor, W: torch.Tensor, p: ALIFParams, spike_fn) -> str | None:
    """Why :func:`ralif_inference` cannot run this call (``None`` when it can): it is inference only
    (nothing may need a gradient), CPU, ``[T, B, C, ...]`` with ``W [C, C]``, and what the kernel needs."""
    why = _unsupported(x_seq, None, p, spike_fn)
    if why is not None:
        return why
    if kernels.needs_graph(x_seq, W, p.beta, p.v_threshold, p.rho):
        return "a call that needs gradients (the recurrent ALIF kernel is forward only)"
    if x_seq.dim() < 3 or tuple(W.shape) != (x_seq.shape[2], x_seq.shape[2]):
        return f"a recurrent weight of shape {tuple(W.shape)} for input of shape {tuple(x_seq.shape)}"
    if not kernels.available("alif_numba"):
        return f"the ALIF kernel is unavailable ({kernels.reason('alif_numba')})"
    return None


def ralif_inference(x_seq: torch.Tensor, W: torch.Tensor, state, p: ALIFParams):
    """The recurrent ALIF population over a whole sequence in one compiled call, for inference:
    ``x_seq [T, B, C, ...]`` (channels on axis 2), ``W [C, C]`` from the spikes at ``t - 1`` to the input
    at ``t``, ``state (ALIFState | None, s_prev | None)`` -> ``(spikes, (ALIFState, s_last))``; the
    loop over bins in :class:`mambaspike.layers.blocks.SpikingConvBlock` is its reference. Call only
    where :func:`recurrent_inference_unsupported` gives ``None``."""
    K = kernels.load("alif_numba")
    dtype, shape = x_seq.dtype, tuple(x_seq.shape)
    st, s_prev = state if state is not None else (None, None)
    if st is None:
        st = ALIFState(x_seq.new_full(shape[1:], p.v_reset), x_seq.new_zeros(shape[1:]))
    has_s0 = s_prev is not None
    x_r = _rows(x_seq.detach(), 1)  # (T, R, C)
    v_r, a_r = _rows(st.v.detach().to(dtype), 0), _rows(st.a.detach().to(dtype), 0)
    s0_r = _rows(s_prev.detach().to(dtype), 0) if has_s0 else x_r.new_zeros(x_r.shape[1:])
    WT = W.detach().to(dtype).t().contiguous()
    T, R, C = x_r.shape
    npd = np_dtype(dtype)
    b, c, vth, rho, adapt = _scalars(p, dtype)
    s = empty_like_numpy(x_r.shape, dtype)
    v_last, a_last = v_r.clone(), a_r.clone()
    if T and R and C:
        args = (x_r.numpy(), WT.numpy(), v_r.numpy(), a_r.numpy(), s0_r.numpy(), has_s0, npd(b), npd(c), npd(vth))
        args += (npd(rho), npd(adapt), npd(p.v_reset), bool(p.soft_reset), s.numpy(), v_last.numpy(), a_last.numpy())
        run_blocks(K.ralif_forward, args, R, T * R * C)
    spikes = _unrows(s, shape, 1)
    new = ALIFState(_unrows(v_last, shape[1:], 0), _unrows(a_last, shape[1:], 0))
    return spikes, (new, spikes[-1] if T else s_prev)


__all__ = ["ALIF_BACKENDS", "alif_multistep_fast", "ralif_inference", "recurrent_inference_unsupported"]
