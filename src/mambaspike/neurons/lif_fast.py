"""The multi-step LIF through a fused kernel: one autograd node over the whole sequence.

Backends (``LIF(backend=...)``, :func:`lif_multistep_fast`):

- ``"reference"``: :func:`~mambaspike.neurons.functional.lif_multistep`, the plain loop (ground truth).
- ``"numba"`` (alias ``"cpu"``): forward and backward are compiled loops
  (:mod:`mambaspike.kernels.lif_numba`) that touch each element once, run on
  ``torch.get_num_threads()`` threads, and save nothing per step but the input. Float32 and float64
  CPU tensors, a scalar ``beta`` and ``v_threshold``, one of the built-in surrogates.
- ``"triton"``: the same algorithm for CUDA tensors (:mod:`mambaspike.kernels.lif_triton`).
- ``"auto"`` (default): the numba kernel on CPU, the Triton kernel on CUDA once a one-time check
  on that device agrees with the reference loop, else the reference loop (also for ``T = 1``, where
  there is nothing to fuse).
"""

from __future__ import annotations

import math
import os
import warnings

import torch

from mambaspike import kernels
from mambaspike.kernels.threads import run_blocks
from mambaspike.kernels.views import empty_like_numpy, np_dtype
from mambaspike.neurons.functional import LIFParams, lif_multistep
from mambaspike.neurons.surrogate import Surrogate

LIF_BACKENDS = ("auto", "reference", "numba", "cpu", "triton")


def numba_available() -> bool:
    """Whether the compiled CPU LIF kernel can be used (see :func:`mambaspike.kernels.load`)."""
    return kernels.available("lif_numba")


def kernel_unsupported(x_seq: torch.Tensor, p: LIFParams, spike_fn) -> str | None:
    """What every compiled LIF kernel (plain and recurrent) needs: float32/float64 input, a built-in
    surrogate, scalar ``beta`` and ``v_threshold``. The reason it cannot run, or ``None``."""
    if x_seq.dtype not in (torch.float32, torch.float64):
        return f"dtype {x_seq.dtype} (float32 or float64 only)"
    if not isinstance(spike_fn, Surrogate) or spike_fn.kind < 0:
        return "a custom spike function (built-in surrogates only)"
    for name in ("beta", "v_threshold"):
        t = getattr(p, name)
        if torch.is_tensor(t) and t.numel() != 1:
            return f"a per-neuron {name} (scalar only)"
    return None


def _kernel_failed(e: Exception, backend: str, name: str = "lif_numba") -> bool:
    """After ``e`` from a compiled LIF kernel: ``True`` where ``backend`` is ``"auto"`` and the kernel
    did not compile on this platform, which disables it for the rest of the process (one warning; an
    error under ``MAMBASPIKE_KERNELS=strict``), so the caller falls back to the reference loop;
    ``False``: the caller re-raises."""
    return backend == "auto" and kernels.failed(name, e)


def _fast_unsupported(x_seq: torch.Tensor, v, p: LIFParams, spike_fn) -> str | None:
    """Why the compiled kernel cannot run this call (``None`` when it can)."""
    why = kernel_unsupported(x_seq, p, spike_fn)
    if why is not None:
        return why
    if x_seq.dim() < 1:
        return "input without a time dimension"
    if v is not None and tuple(v.shape) != tuple(x_seq.shape[1:]):
        return f"a state of shape {tuple(v.shape)} for steps of shape {tuple(x_seq.shape[1:])}"
    return None


def _block_sizes(T: int, N: int, itemsize: int, threads: int) -> tuple[int, int]:
    """Neurons per block for the forward and backward kernels.

    Long blocks make long unit-stride rows (the prefetchers' friend); the backward keeps a
    ``[T, blk]`` buffer of potentials in cache (<= 1 MiB); every thread gets several blocks.
    Multiples of 16 elements, so rows start on cache-line boundaries.
    """
    per_thread = max(16, -(-N // (4 * threads)))
    fwd = min(16384, per_thread)
    bwd = min(4096, (1 << 20) // max(1, T * itemsize), per_thread)
    fwd, bwd = (max(16, (b // 16) * 16) for b in (fwd, bwd))
    return fwd, bwd


def spike_grad_arg(g_s: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The spike gradient ``[T, N]`` as a compiled backward takes it: ``([1, 1], True)`` for a broadcast
    scalar (e.g. from ``.sum()``: one value everywhere), else ``(contiguous [T, N], False)``."""
    if all(st == 0 for st in g_s.stride()):
        return g_s[0, 0].reshape(1, 1).contiguous(), True
    return g_s.contiguous(), False


def _numba_forward(x2, v02, b, c, vth, v_reset, soft):
    K = kernels.load("lif_numba")
    T, N = x2.shape
    npd = np_dtype(x2.dtype)
    s = empty_like_numpy(x2.shape, x2.dtype)
    v_last = torch.empty_like(v02)
    blk = _block_sizes(T, N, x2.element_size(), torch.get_num_threads())[0]
    args = (x2.numpy(), v02.numpy(), npd(b), npd(c), npd(vth), npd(v_reset), soft, s.numpy(), v_last.numpy(), blk)
    run_blocks(K.lif_forward, args, -(-N // blk), T * N)
    return s, v_last


def _numba_backward(x2, v02, g_s, gv, b, c, vth, v_reset, soft, detach, decay_input, kind, alpha):
    import numpy as np

    K = kernels.load("lif_numba")
    T, N = x2.shape
    dt = x2.dtype
    npd = np_dtype(dt)
    gs, gs_scalar = spike_grad_arg(g_s)
    gx = empty_like_numpy(x2.shape, dt)
    gv0 = torch.empty_like(v02)
    blk = _block_sizes(T, N, x2.element_size(), torch.get_num_threads())[1]
    nblk = -(-N // blk)
    gbeta = np.zeros(nblk)
    gvth = np.zeros(nblk)
    args = (
        x2.numpy(),
        v02.numpy(),
        gs.numpy(),
        gs_scalar,
        gv.numpy(),
        npd(b),
        npd(c),
        npd(vth),
        npd(v_reset),
        soft,
        detach,
        decay_input,
        kind,
        npd(alpha),
        npd(1.0),
        npd(math.pi / 2),
        gx.numpy(),
        gv0.numpy(),
        gbeta,
        gvth,
        blk,
    )
    run_blocks(K.lif_backward, args, nblk, T * N)
    return gx, gv0, float(gbeta.sum()), float(gvth.sum())


def kernel_scalars(
    beta: torch.Tensor, v_threshold: torch.Tensor, decay_input: bool, dtype
) -> tuple[float, float, float]:
    """``(beta, input scale, threshold)`` as Python floats, exactly as the reference computes them:
    ``1 - beta`` in beta's dtype, then cast to the compute ``dtype``."""
    beta = beta.detach()
    b = beta.to(dtype).item()
    c = (1 - beta).to(dtype).item() if decay_input else 1.0
    return b, c, v_threshold.detach().to(dtype).item()


class _FusedLIF(torch.autograd.Function):
    """The whole ``[T, ...]`` LIF sequence as one autograd node (compiled kernels: ``impl`` is
    ``"numba"`` or ``"triton"``).

    Saves the input, the initial state and the scalar parameters; the backward recomputes the
    potentials. Gradients: input, initial state, ``beta``, ``v_threshold``.
    """

    @staticmethod
    def forward(ctx, x_seq, v0, beta, v_threshold, alpha, v_reset, soft, detach, decay_input, kind, impl):
        T = x_seq.shape[0]
        shape = x_seq.shape
        dt = x_seq.dtype
        N = math.prod(shape[1:])
        x2 = x_seq.detach().contiguous().view(T, N)  # (T, N)
        v02 = v0.detach().to(dt).contiguous().view(N)  # (N,)
        b, c, vth = kernel_scalars(beta, v_threshold, decay_input, dt)
        if T == 0 or N == 0:
            s, v_last = torch.empty_like(x2), v02.clone()
        elif impl == "triton":
            s, v_last = kernels.load("lif_triton").lif_forward(x2, v02, b, c, vth, float(v_reset), bool(soft))
        else:
            s, v_last = _numba_forward(x2, v02, b, c, vth, float(v_reset), bool(soft))
        ctx.save_for_backward(x2, v02)
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
            impl,
            shape,
            beta.shape,
            beta.dtype,
            v_threshold.shape,
            v_threshold.dtype,
        )
        return s.view(shape), v_last.view(shape[1:])

    @staticmethod
    def backward(ctx, g_s, g_v):
        x2, v02 = ctx.saved_tensors
        b, c, vth, v_reset, soft, detach, decay_input, kind, alpha, impl, shape, b_shape, b_dt, t_shape, t_dt = ctx.cfg
        T, N = x2.shape
        dt = x2.dtype
        g_s = x2.new_zeros(()).expand(T, N) if g_s is None else g_s.to(dt).reshape(T, N)
        gv = x2.new_zeros(N) if g_v is None else g_v.to(dt).contiguous().view(N)
        if T == 0 or N == 0:
            gx, gv0, g_beta, g_vth = torch.zeros_like(x2), gv.clone(), 0.0, 0.0
        elif impl == "triton":
            gx, gv0, g_beta, g_vth = kernels.load("lif_triton").lif_backward(
                x2, v02, g_s, gv, b, c, vth, v_reset, soft, detach, decay_input, kind, alpha
            )
        else:
            gx, gv0, g_beta, g_vth = _numba_backward(
                x2, v02, g_s, gv, b, c, vth, v_reset, soft, detach, decay_input, kind, alpha
            )
        need = ctx.needs_input_grad
        return (
            gx.view(shape) if need[0] else None,
            gv0.view(shape[1:]) if need[1] else None,
            torch.tensor(g_beta, dtype=b_dt, device=x2.device).reshape(b_shape) if need[2] else None,
            torch.tensor(g_vth, dtype=t_dt, device=x2.device).reshape(t_shape) if need[3] else None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def _resolve_backend(backend: str, x_seq: torch.Tensor, v, p: LIFParams, spike_fn) -> str:
    """``"reference"``, ``"numba"`` or ``"triton"`` for this call (errors for explicit backends that cannot run)."""
    if backend not in LIF_BACKENDS:
        raise ValueError(f"unknown LIF backend {backend!r}; expected one of {', '.join(LIF_BACKENDS)}")
    if backend == "reference" or (backend == "auto" and x_seq.shape[0] == 1):
        return "reference"  # one step: nothing to fuse, torch's ops are quicker
    why = _fast_unsupported(x_seq, v, p, spike_fn)
    device = x_seq.device.type
    if backend == "auto":
        if why is not None:
            return "reference"
        if device == "cpu":
            return "numba" if kernels.available("lif_numba") else "reference"
        if device == "cuda" and _triton_usable(x_seq, p, spike_fn):
            return "triton"
        return "reference"
    impl = "triton" if backend == "triton" else "numba"
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"  # Triton's CPU interpreter (tests)
    if why is None and impl == "numba" and device != "cpu":
        why = f"tensors on {device} (the numba kernel is CPU-only)"
    if why is None and impl == "triton" and device != "cuda" and not interpreted:
        why = f"tensors on {device} (the Triton kernel needs CUDA)"
    if why is not None:
        raise ValueError(f"LIF backend {backend!r} cannot run this call: {why}")
    kernel = "lif_triton" if impl == "triton" else "lif_numba"
    if not kernels.available(kernel):
        raise ImportError(
            f"LIF backend {backend!r} needs the {kernel!r} kernel ({kernels.reason(kernel)}); "
            f"`pip install {kernels.KERNELS[kernel].package}`"
        )
    return impl


def lif_multistep_fast(
    x_seq: torch.Tensor, v: torch.Tensor | None, p: LIFParams, spike_fn, backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`lif_multistep` through a fused kernel: same arguments, same results.

    ``backend``: ``"auto"`` (a compiled kernel where one applies, else the reference loop),
    ``"numba"``/``"cpu"`` (CPU), ``"triton"`` (GPU) -- an error where they cannot run -- or
    ``"reference"``.
    """
    impl = _resolve_backend(backend, x_seq, v, p, spike_fn)
    if impl == "reference":
        return lif_multistep(x_seq, v, p, spike_fn)
    dtype = x_seq.dtype
    beta = p.beta if torch.is_tensor(p.beta) else torch.tensor(p.beta, dtype=dtype, device=x_seq.device)
    vth = (
        p.v_threshold
        if torch.is_tensor(p.v_threshold)
        else torch.tensor(p.v_threshold, dtype=dtype, device=x_seq.device)
    )
    if v is None:
        v = x_seq.new_full(x_seq.shape[1:], p.v_reset)
    try:
        if impl == "numba" and not kernels.needs_graph(x_seq, v, beta, vth) and x_seq.numel():
            # inference: the forward kernel alone (what _FusedLIF.forward runs), without an autograd node
            shape = x_seq.shape
            s, v_last = _numba_forward(
                x_seq.contiguous().view(shape[0], -1),
                v.to(dtype).contiguous().view(-1),
                *kernel_scalars(beta, vth, p.decay_input, dtype),
                float(p.v_reset),
                bool(p.soft_reset),
            )
            return s.view(shape), v_last.view(shape[1:])
        return _FusedLIF.apply(
            x_seq,
            v,
            beta,
            vth,
            spike_fn.alpha,
            float(p.v_reset),
            bool(p.soft_reset),
            bool(p.detach_reset),
            bool(p.decay_input),
            spike_fn.kind,
            impl,
        )
    except Exception as e:
        if impl != "numba" or not _kernel_failed(e, backend):
            raise
        return lif_multistep(x_seq, v, p, spike_fn)


_triton_checked: dict = {}  # (device, dtype, configuration) -> whether the kernel matched the reference
_triton_warned: set = set()


def _triton_usable(x_seq: torch.Tensor, p: LIFParams, spike_fn) -> bool:
    """Whether ``"auto"`` may use the Triton kernel here: it imports, and it matched the reference loop
    (spikes, final state, gradients) on this device, dtype and configuration in a one-time check."""
    if kernels.load("lif_triton") is None:
        return False
    key = (
        str(x_seq.device),
        x_seq.dtype,
        bool(p.soft_reset),
        bool(p.detach_reset),
        bool(p.decay_input),
        spike_fn.kind,
        float(spike_fn.alpha),
    )
    checked = _triton_checked
    if key not in checked:
        try:
            checked[key] = _triton_self_check(x_seq.device, x_seq.dtype, p, spike_fn)
            reason = "it disagreed with the reference loop"
        except Exception as e:  # a compile or launch failure on this GPU
            checked[key], reason = False, f"{type(e).__name__}: {e}"
        if not checked[key] and str(x_seq.device) not in _triton_warned:
            _triton_warned.add(str(x_seq.device))
            warnings.warn(
                f"mambaspike: the Triton LIF kernel is not used on {x_seq.device} ({reason}); "
                "using the reference loop.",
                RuntimeWarning,
                stacklevel=4,
            )
    return checked[key]


def _triton_self_check(device, dtype, p: LIFParams, spike_fn) -> bool:
    """Run a small random sequence through the Triton kernel and the reference loop and compare, forward
    and backward (also when called under ``no_grad`` or ``inference_mode``)."""
    with torch.inference_mode(False), torch.enable_grad():
        return _triton_compare(device, dtype, p, spike_fn)


def _triton_compare(device, dtype, p: LIFParams, spike_fn) -> bool:
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(13, 3, 200, generator=g, dtype=dtype) * 1.5 + 0.5).to(device)
    v0 = (torch.randn(3, 200, generator=g, dtype=dtype) * 0.5).to(device)
    gs = torch.randn(13, 3, 200, generator=g, dtype=dtype).to(device)
    out = []
    for impl in ("reference", "triton"):
        xr, vr = x.clone().requires_grad_(), v0.clone().requires_grad_()
        beta = torch.tensor(0.8, dtype=dtype, device=device, requires_grad=True)
        vth = torch.tensor(1.0, dtype=dtype, device=device, requires_grad=True)
        q = LIFParams(beta, vth, p.v_reset, p.soft_reset, p.detach_reset, p.decay_input)
        sf = type(spike_fn)(float(spike_fn.alpha)).to(device)
        if impl == "reference":
            s, v = lif_multistep(xr, vr, q, sf)
        else:
            s, v = _FusedLIF.apply(
                xr,
                vr,
                beta,
                vth,
                sf.alpha,
                float(q.v_reset),
                bool(q.soft_reset),
                bool(q.detach_reset),
                bool(q.decay_input),
                sf.kind,
                "triton",
            )
        torch.autograd.backward([s, v], [gs, torch.ones_like(v)])
        out.append([s.detach(), v.detach(), xr.grad, vr.grad, beta.grad, vth.grad])
    (s0, v0_, *g0), (s1, v1, *g1) = out
    tol = dict(rtol=1e-4, atol=1e-5) if dtype != torch.float64 else dict(rtol=1e-10, atol=1e-12)
    return (
        bool(torch.equal(s0, s1))
        and torch.allclose(v0_, v1, **tol)
        and all(
            torch.allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, float(a.abs().max())))
            for a, b in zip(g0, g1)
        )
    )
