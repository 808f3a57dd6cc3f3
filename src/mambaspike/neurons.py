"""Spiking neurons: surrogate spike functions, functional cores, a fused multi-step LIF, and modules.

Layout follows norse: pure step functions you can check by hand (``lif_step``, ``alif_step``,
``synaptic_step``, ``srm_step``), a plain multi-step reference loop for each (``lif_multistep``, ...),
and modules that only hold parameters and wire the core up. Names follow spikingjelly (``tau``,
``v_threshold``, ``v_reset``, ``detach_reset``, ``decay_input``).

Conventions
-----------
- Tensors are time-first: a sequence is ``[T, B, ...]``; one step is ``[B, ...]``.
- Time constants are given in **milliseconds** together with the bin width ``dt`` (ms), so
  ``tau = 30 ms`` means the same dynamics at every binning. Inside, the exact exponential decay
  ``beta = exp(-dt / tau)`` per bin is used; a learnable time constant is parameterised as
  ``beta = sigmoid(w)`` (PLIF, Fang et al. 2021), which keeps ``beta`` in (0, 1).
- LIF membrane update (``decay_input=True``, spikingjelly's form)::

      h[t] = beta * v[t-1] + (1 - beta) * x[t]
      s[t] = H(h[t] - v_threshold)                     # surrogate gradient in backward
      v[t] = h[t] * (1 - s[t]) + v_reset * s[t]        # hard reset
      v[t] = h[t] - v_threshold * s[t]                 # soft (subtractive) reset

  With ``decay_input=False`` the input is not scaled (snnTorch's ``Leaky``): ``h = beta*v + x``.
  ``detach_reset`` stops the gradient through the reset term (``s`` in the reset is detached).
- Every stateful module follows ``forward(x_seq [T, B, ...], state=None) -> (spikes [T, B, ...], state)``
  and ``step(x [B, ...], state=None) -> (spikes [B, ...], state)``; the two give identical results
  and streaming in chunks continues the same trajectory. Streaming state is never in the ``state_dict``.

Multi-step LIF backends (``LIF(backend=...)``, :func:`lif_multistep_fast`)
--------------------------------------------------------------------------
- ``"reference"``: :func:`lif_multistep`, the plain loop over ``unbind(0)`` (ground truth).
- ``"numba"`` (alias ``"cpu"``): a custom autograd function over the whole sequence; forward and
  backward are compiled loops (``mambaspike._lif_numba``) that touch each element once, run on
  ``torch.get_num_threads()`` threads, and save nothing per step but the input. Float32 and float64
  CPU tensors, a scalar ``beta`` and ``v_threshold``, one of the built-in surrogates.
- ``"triton"``: the same algorithm for CUDA tensors (``mambaspike._lif_triton``; needs ``triton``).
  Verified against the reference in Triton's CPU interpreter only; no GPU has run it yet.
- ``"auto"`` (default): the numba kernel on CPU, the Triton kernel on CUDA once a one-time check
  on that device agrees with the reference loop, else the reference loop (also for ``T = 1``, where
  there is nothing to fuse). Where numba cannot be imported or compiled, ``"auto"`` falls back to
  the reference loop with one warning.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import NamedTuple

import torch
from torch import nn

from ._threads import run_ranges

# --------------------------------------------------------------------------------------------
# Surrogate gradients
# --------------------------------------------------------------------------------------------


def atan_grad(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """d/dx of ``atan(pi/2 * alpha * x) / pi``: ``alpha / 2 / (1 + (pi/2 * alpha * x)^2)`` (Fang et al. 2021)."""
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * x).square())


def sigmoid_grad(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """d/dx of ``sigmoid(alpha * x)``: ``alpha * sig * (1 - sig)`` (spikingjelly's ``Sigmoid``)."""
    sg = torch.sigmoid(alpha * x)
    return alpha * sg * (1 - sg)


def fast_sigmoid_grad(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """d/dx of ``x / (1 + alpha |x|)``: ``1 / (1 + alpha |x|)^2`` (SuperSpike, Zenke & Ganguli 2018)."""
    return 1 / (1 + alpha * x.abs()).square()


def triangle_grad(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Triangle of height ``alpha`` and half-width ``1 / alpha``: ``alpha * max(0, 1 - alpha |x|)`` (Esser et al. 2016)."""
    return alpha * (1 - alpha * x.abs()).clamp_min(0)


class _SpikeFunction(torch.autograd.Function):
    """Heaviside step ``x >= 0`` forward; ``grad_out * derivative(x, alpha)`` backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: torch.Tensor, derivative) -> torch.Tensor:
        ctx.save_for_backward(x, alpha)
        ctx.derivative = derivative
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, alpha = ctx.saved_tensors
        return grad_out * ctx.derivative(x, alpha), None, None


class Surrogate(nn.Module):
    """A spike function: Heaviside forward, a smooth derivative backward.

    ``alpha`` (the sharpness) is a buffer, so it is saved in the ``state_dict``. ``kind`` numbers the
    surrogate for the compiled kernels.
    """

    kind: int = -1
    default_alpha: float = 1.0

    def __init__(self, alpha: float | None = None):
        super().__init__()
        alpha = self.default_alpha if alpha is None else float(alpha)
        if not alpha > 0:
            raise ValueError(f"{type(self).__name__}: alpha must be positive, got {alpha}")
        self.register_buffer("alpha", torch.tensor(alpha))

    @staticmethod
    def derivative(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _SpikeFunction.apply(x, self.alpha.to(x.dtype), type(self).derivative)

    def extra_repr(self) -> str:
        return f"alpha={float(self.alpha):g}"


class ATan(Surrogate):
    """Arctan surrogate (default ``alpha = 2``), as snnTorch's and spikingjelly's ``ATan``."""

    kind, default_alpha = 0, 2.0
    derivative = staticmethod(atan_grad)


class Sigmoid(Surrogate):
    """Sigmoid surrogate (default ``alpha = 4``), as spikingjelly's ``Sigmoid``."""

    kind, default_alpha = 1, 4.0
    derivative = staticmethod(sigmoid_grad)


class FastSigmoid(Surrogate):
    """Fast-sigmoid surrogate (default ``alpha = 25``), as snnTorch's ``fast_sigmoid(slope=25)``."""

    kind, default_alpha = 2, 25.0
    derivative = staticmethod(fast_sigmoid_grad)


class Triangle(Surrogate):
    """Triangle surrogate (default ``alpha = 1``: height 1, support ``|x| < 1``)."""

    kind, default_alpha = 3, 1.0
    derivative = staticmethod(triangle_grad)


SURROGATES: dict[str, type[Surrogate]] = {
    "atan": ATan,
    "sigmoid": Sigmoid,
    "fast-sigmoid": FastSigmoid,
    "triangle": Triangle,
}


def make_surrogate(surrogate: str | Surrogate, alpha: float | None = None) -> Surrogate:
    """A surrogate module from its name in ``SURROGATES`` (or an instance, returned as is)."""
    if isinstance(surrogate, Surrogate):
        return surrogate
    name = str(surrogate).replace("_", "-")
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; expected one of {', '.join(SURROGATES)}")
    return SURROGATES[name](alpha)


# --------------------------------------------------------------------------------------------
# LIF: functional core
# --------------------------------------------------------------------------------------------


class LIFParams(NamedTuple):
    """Parameters of one LIF population (tensors broadcast against the state)."""

    beta: torch.Tensor  # membrane decay per bin, exp(-dt / tau), in (0, 1)
    v_threshold: torch.Tensor
    v_reset: float = 0.0
    soft_reset: bool = False
    detach_reset: bool = False
    decay_input: bool = True


def lif_step(x: torch.Tensor, v: torch.Tensor, p: LIFParams, spike_fn) -> tuple[torch.Tensor, torch.Tensor]:
    """One time step of a LIF population. ``x``, ``v``: ``[B, ...]``. Returns ``(spikes, v_next)``."""
    if p.decay_input:
        h = p.beta * v + (1 - p.beta) * x
    else:
        h = p.beta * v + x
    s = spike_fn(h - p.v_threshold)
    r = s.detach() if p.detach_reset else s
    if p.soft_reset:
        v_next = h - r * p.v_threshold
    else:
        v_next = h * (1 - r) + r * p.v_reset
    return s, v_next


def _multistep(step, x_seq: torch.Tensor, state, p, spike_fn):
    """Run ``step`` over ``x_seq [T, ...]`` (iterating ``unbind(0)``) -> ``(spikes [T, ...], state)``."""
    spikes = []
    for x in x_seq.unbind(0):
        s, state = step(x, state, p, spike_fn)
        spikes.append(s)
    if not spikes:
        return x_seq.new_empty(x_seq.shape), state
    return torch.stack(spikes), state


def lif_multistep(
    x_seq: torch.Tensor, v: torch.Tensor | None, p: LIFParams, spike_fn
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference loop: ``x_seq`` ``[T, B, ...]`` -> ``(spikes [T, B, ...], v_last [B, ...])``.

    Iterates over ``unbind(0)`` (never ``x[t]`` on a tensor that needs grad, whose backward would
    allocate a full-size zero tensor per step) and stacks per-step outputs.
    """
    if v is None:
        v = x_seq.new_full(x_seq.shape[1:], p.v_reset)
    return _multistep(lif_step, x_seq, v, p, spike_fn)


# --------------------------------------------------------------------------------------------
# LIF: fused multi-step path
# --------------------------------------------------------------------------------------------

LIF_BACKENDS = ("auto", "reference", "numba", "cpu", "triton")

_numba_state: dict = {"module": None, "error": None, "warned": False}


def _numba_kernels():
    """The compiled kernel module, or ``None`` (with the reason in ``_numba_state['error']``)."""
    if _numba_state["module"] is None and _numba_state["error"] is None:
        try:
            from . import _lif_numba

            _numba_state["module"] = _lif_numba
        except Exception as e:  # ImportError, or numba/llvmlite failing to load on this platform
            _numba_state["error"] = f"{type(e).__name__}: {e}"
    return _numba_state["module"]


def _warn_fallback(reason: str) -> None:
    if not _numba_state["warned"]:
        _numba_state["warned"] = True
        warnings.warn(
            f"mambaspike: the compiled LIF kernel is unavailable ({reason}); using the reference loop, "
            "which is slower and uses more memory. Install it with `pip install numba==0.68.1`.",
            RuntimeWarning,
            stacklevel=3,
        )


def numba_available() -> bool:
    """Whether the compiled CPU LIF kernel can be used (numba imports)."""
    return _numba_kernels() is not None


def _kernel_unsupported(x_seq: torch.Tensor, p: LIFParams, spike_fn) -> str | None:
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


def _kernel_failed(e: Exception, backend: str) -> bool:
    """After ``e`` from a compiled LIF kernel: ``True`` where ``backend`` is ``"auto"`` and the kernel
    did not compile on this platform (numba/llvmlite errors), which disables the kernels for the rest
    of the process with one warning, so the caller falls back to the reference loop; ``False``: the
    caller re-raises."""
    if backend != "auto" or type(e).__module__.split(".")[0] not in ("numba", "llvmlite"):
        return False
    _numba_state["module"], _numba_state["error"] = None, f"{type(e).__name__}: {e}"
    _warn_fallback(_numba_state["error"])
    return True


def _np_dtype(dtype: torch.dtype):
    """The NumPy scalar type of a float32/float64 kernel call."""
    import numpy as np

    return np.float32 if dtype == torch.float32 else np.float64


def _fast_unsupported(x_seq: torch.Tensor, v, p: LIFParams, spike_fn) -> str | None:
    """Why the compiled kernel cannot run this call (``None`` when it can)."""
    why = _kernel_unsupported(x_seq, p, spike_fn)
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


def _empty(shape, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU tensor in memory allocated by NumPy.

    NumPy asks Linux for transparent huge pages on large allocations (``madvise(MADV_HUGEPAGE)``);
    PyTorch's CPU allocator does not unless ``THP_MEM_ALLOC_ENABLE=1``. The kernels write every
    element of these outputs once, so first-touch page faults would otherwise cost about as much as
    the kernels themselves (512 times fewer faults with 2 MiB pages).
    """
    import numpy as np

    return torch.from_numpy(np.empty(shape, dtype=np.float32 if dtype == torch.float32 else np.float64))


def _parallel(kernel, args: tuple, nblk: int, work_items: int) -> None:
    """Run ``kernel(*args, b0, b1)`` over the blocks ``[0, nblk)`` on ``torch.get_num_threads()`` threads.

    Chunks of blocks are handed out one at a time (balanced when other processes share the cores)
    by :func:`mambaspike._threads.run_ranges`. Below ~1M elements one thread does it all.
    """
    threads = torch.get_num_threads()
    nchunk = min(nblk, 4 * threads)
    if threads <= 1 or nchunk <= 1 or work_items < (1 << 20):
        kernel(*args, 0, nblk)
        return
    run_ranges(kernel, args, [c * nblk // nchunk for c in range(nchunk + 1)], threads)


def _numba_forward(x2, v02, b, c, vth, v_reset, soft):
    K = _numba_kernels()
    T, N = x2.shape
    npd = _np_dtype(x2.dtype)
    s = _empty(x2.shape, x2.dtype)
    v_last = torch.empty_like(v02)
    blk = _block_sizes(T, N, x2.element_size(), torch.get_num_threads())[0]
    args = (x2.numpy(), v02.numpy(), npd(b), npd(c), npd(vth), npd(v_reset), soft, s.numpy(), v_last.numpy(), blk)
    _parallel(K.lif_forward, args, -(-N // blk), T * N)
    return s, v_last


def _numba_backward(x2, v02, g_s, gv, b, c, vth, v_reset, soft, detach, decay_input, kind, alpha):
    import numpy as np

    K = _numba_kernels()
    T, N = x2.shape
    dt = x2.dtype
    npd = _np_dtype(dt)
    if all(st == 0 for st in g_s.stride()):  # a broadcast scalar (e.g. from .sum()): one value
        gs, gs_scalar = g_s[0, 0].reshape(1, 1).contiguous(), True
    else:
        gs, gs_scalar = g_s.contiguous(), False
    gx = _empty(x2.shape, dt)
    gv0 = torch.empty_like(v02)
    blk = _block_sizes(T, N, x2.element_size(), torch.get_num_threads())[1]
    nblk = -(-N // blk)
    gbeta = np.zeros(nblk)
    gvth = np.zeros(nblk)
    args = (x2.numpy(), v02.numpy(), gs.numpy(), gs_scalar, gv.numpy(), npd(b), npd(c), npd(vth), npd(v_reset), soft,
            detach, decay_input, kind, npd(alpha), npd(1.0), npd(math.pi / 2), gx.numpy(), gv0.numpy(), gbeta, gvth,
            blk)  # fmt: skip
    _parallel(K.lif_backward, args, nblk, T * N)
    return gx, gv0, float(gbeta.sum()), float(gvth.sum())


def _kernel_scalars(beta: torch.Tensor, v_threshold: torch.Tensor, decay_input: bool, dtype) -> tuple[float, float, float]:
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
        b, c, vth = _kernel_scalars(beta, v_threshold, decay_input, dt)
        if T == 0 or N == 0:
            s, v_last = torch.empty_like(x2), v02.clone()
        elif impl == "triton":
            s, v_last = _triton_kernels().lif_forward(x2, v02, b, c, vth, float(v_reset), bool(soft))
        else:
            s, v_last = _numba_forward(x2, v02, b, c, vth, float(v_reset), bool(soft))
        ctx.save_for_backward(x2, v02)
        ctx.cfg = (b, c, vth, float(v_reset), bool(soft), bool(detach), bool(decay_input), int(kind),
                   float(alpha.detach()), impl, shape, beta.shape, beta.dtype, v_threshold.shape, v_threshold.dtype)  # fmt: skip
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
            gx, gv0, g_beta, g_vth = _triton_kernels().lif_backward(
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
            None, None, None, None, None, None, None,
        )  # fmt: skip


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
            if _numba_kernels() is None:
                _warn_fallback(_numba_state["error"])
                return "reference"
            return "numba"
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
    if impl == "numba" and _numba_kernels() is None:
        raise ImportError(f"LIF backend {backend!r} needs numba ({_numba_state['error']}); `pip install numba==0.68.1`")
    if impl == "triton" and _triton_kernels() is None:
        raise ImportError(f"LIF backend 'triton' needs triton ({_triton_state['error']})")
    return impl


def _needs_graph(*tensors: torch.Tensor) -> bool:
    """Whether autograd would record an operation on ``tensors`` (grad mode on and one requires grad)."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


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
    vth = p.v_threshold if torch.is_tensor(p.v_threshold) else torch.tensor(p.v_threshold, dtype=dtype, device=x_seq.device)
    if v is None:
        v = x_seq.new_full(x_seq.shape[1:], p.v_reset)
    try:
        if impl == "numba" and not _needs_graph(x_seq, v, beta, vth) and x_seq.numel():
            # inference: the forward kernel alone (what _FusedLIF.forward runs), without an autograd node
            shape = x_seq.shape
            s, v_last = _numba_forward(x_seq.contiguous().view(shape[0], -1), v.to(dtype).contiguous().view(-1),
                                       *_kernel_scalars(beta, vth, p.decay_input, dtype), float(p.v_reset),
                                       bool(p.soft_reset))  # fmt: skip
            return s.view(shape), v_last.view(shape[1:])
        return _FusedLIF.apply(x_seq, v, beta, vth, spike_fn.alpha, float(p.v_reset), bool(p.soft_reset),
                               bool(p.detach_reset), bool(p.decay_input), spike_fn.kind, impl)  # fmt: skip
    except Exception as e:
        if impl != "numba" or not _kernel_failed(e, backend):
            raise
        return lif_multistep(x_seq, v, p, spike_fn)


_triton_state: dict = {"module": None, "error": None, "checked": {}, "warned": False}


def _triton_kernels():
    """The Triton kernel module, or ``None`` (with the reason in ``_triton_state['error']``)."""
    if _triton_state["module"] is None and _triton_state["error"] is None:
        try:
            from . import _lif_triton

            _triton_state["module"] = _lif_triton
        except Exception as e:
            _triton_state["error"] = f"{type(e).__name__}: {e}"
    return _triton_state["module"]


def _triton_usable(x_seq: torch.Tensor, p: LIFParams, spike_fn) -> bool:
    """Whether ``"auto"`` may use the Triton kernel here: it imports, and it matched the reference loop
    (spikes, final state, gradients) on this device, dtype and configuration in a one-time check."""
    if _triton_kernels() is None:
        return False
    key = (str(x_seq.device), x_seq.dtype, bool(p.soft_reset), bool(p.detach_reset), bool(p.decay_input),
           spike_fn.kind, float(spike_fn.alpha))  # fmt: skip
    checked = _triton_state["checked"]
    if key not in checked:
        try:
            checked[key] = _triton_self_check(x_seq.device, x_seq.dtype, p, spike_fn)
            reason = "it disagreed with the reference loop"
        except Exception as e:  # a compile or launch failure on this GPU
            checked[key], reason = False, f"{type(e).__name__}: {e}"
        if not checked[key] and not _triton_state["warned"]:
            _triton_state["warned"] = True
            warnings.warn(f"mambaspike: the Triton LIF kernel is not used on {x_seq.device} ({reason}); "
                          "using the reference loop.", RuntimeWarning, stacklevel=4)  # fmt: skip
    return checked[key]


def _triton_self_check(device, dtype, p: LIFParams, spike_fn) -> bool:
    """Run a small random sequence through the Triton kernel and the reference loop and compare."""
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
            s, v = _FusedLIF.apply(xr, vr, beta, vth, sf.alpha, float(q.v_reset), bool(q.soft_reset),
                                   bool(q.detach_reset), bool(q.decay_input), sf.kind, "triton")  # fmt: skip
        torch.autograd.backward([s, v], [gs, torch.ones_like(v)])
        out.append([s.detach(), v.detach(), xr.grad, vr.grad, beta.grad, vth.grad])
    (s0, v0_, *g0), (s1, v1, *g1) = out
    tol = dict(rtol=1e-4, atol=1e-5) if dtype != torch.float64 else dict(rtol=1e-10, atol=1e-12)
    return bool(torch.equal(s0, s1)) and torch.allclose(v0_, v1, **tol) and all(
        torch.allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, float(a.abs().max()))) for a, b in zip(g0, g1)
    )


# --------------------------------------------------------------------------------------------
# Adaptive-threshold LIF, current-based (synaptic) LIF, SRM: functional cores
# --------------------------------------------------------------------------------------------


class ALIFParams(NamedTuple):
    """Adaptive-threshold LIF: the threshold rises by ``adapt`` with every spike and decays back
    with ``rho = exp(-dt / tau_adapt)`` per bin."""

    beta: torch.Tensor
    v_threshold: torch.Tensor
    rho: torch.Tensor
    adapt: float = 0.2
    v_reset: float = 0.0
    soft_reset: bool = False
    detach_reset: bool = False
    decay_input: bool = True


class ALIFState(NamedTuple):
    v: torch.Tensor  # membrane potential after reset
    a: torch.Tensor  # adaptation trace: sum_k rho^k s[t-k]


def alif_step(x: torch.Tensor, state: ALIFState, p: ALIFParams, spike_fn) -> tuple[torch.Tensor, ALIFState]:
    """One step::

        h[t]     = beta * v[t-1] + (1 - beta) * x[t]          (x[t] when not decay_input)
        theta[t] = v_threshold + adapt * a[t-1]
        s[t]     = H(h[t] - theta[t])
        v[t]     = reset of h[t] (hard: v_reset; soft: h[t] - theta[t])
        a[t]     = rho * a[t-1] + s[t]
    """
    v, a = state
    h = p.beta * v + (1 - p.beta) * x if p.decay_input else p.beta * v + x
    theta = p.v_threshold + p.adapt * a
    s = spike_fn(h - theta)
    r = s.detach() if p.detach_reset else s
    v_next = h - r * theta if p.soft_reset else h * (1 - r) + r * p.v_reset
    return s, ALIFState(v_next, p.rho * a + s)


def alif_multistep(x_seq: torch.Tensor, state: ALIFState | None, p: ALIFParams, spike_fn):
    """Reference loop of :func:`alif_step`: ``[T, B, ...]`` -> ``(spikes [T, B, ...], ALIFState)``."""
    if state is None:
        state = ALIFState(x_seq.new_full(x_seq.shape[1:], p.v_reset), x_seq.new_zeros(x_seq.shape[1:]))
    return _multistep(alif_step, x_seq, state, p, spike_fn)


class SynapticParams(NamedTuple):
    """Current-based LIF: the input is filtered by a synaptic current with its own decay."""

    beta: torch.Tensor  # membrane decay per bin, exp(-dt / tau)
    beta_syn: torch.Tensor  # synaptic current decay per bin, exp(-dt / tau_syn)
    v_threshold: torch.Tensor
    v_reset: float = 0.0
    soft_reset: bool = False
    detach_reset: bool = False
    decay_input: bool = True


class SynapticState(NamedTuple):
    v: torch.Tensor  # membrane potential after reset
    i: torch.Tensor  # synaptic current


def synaptic_step(x: torch.Tensor, state: SynapticState, p: SynapticParams, spike_fn):
    """One step (``decay_input=False`` is snnTorch's ``Synaptic``)::

        i[t] = beta_syn * i[t-1] + (1 - beta_syn) * x[t]      (+ x[t] when not decay_input)
        h[t] = beta * v[t-1] + (1 - beta) * i[t]              (+ i[t] when not decay_input)
        s[t] = H(h[t] - v_threshold);  v[t] = reset of h[t]
    """
    v, i = state
    if p.decay_input:
        i = p.beta_syn * i + (1 - p.beta_syn) * x
        h = p.beta * v + (1 - p.beta) * i
    else:
        i = p.beta_syn * i + x
        h = p.beta * v + i
    s = spike_fn(h - p.v_threshold)
    r = s.detach() if p.detach_reset else s
    v_next = h - r * p.v_threshold if p.soft_reset else h * (1 - r) + r * p.v_reset
    return s, SynapticState(v_next, i)


def synaptic_multistep(x_seq: torch.Tensor, state: SynapticState | None, p: SynapticParams, spike_fn):
    """Reference loop of :func:`synaptic_step`."""
    if state is None:
        state = SynapticState(x_seq.new_full(x_seq.shape[1:], p.v_reset), x_seq.new_zeros(x_seq.shape[1:]))
    return _multistep(synaptic_step, x_seq, state, p, spike_fn)


class SRMParams(NamedTuple):
    """Spike response model (SRM0) with exponential kernels.

    Membrane (PSP) kernel ``eps[k] = (1 - beta) * beta^k`` (``beta^k`` when not ``decay_input``),
    refractory kernel ``eta[k] = -eta * beta_refr^k`` for ``k >= 1`` (nothing at ``k = 0``)::

        u[t] = sum_k eps[k] x[t-k] + sum_{k>=1} eta[k] s[t-k],    s[t] = H(u[t] - v_threshold)
    """

    beta: torch.Tensor  # membrane kernel decay per bin, exp(-dt / tau)
    beta_refr: torch.Tensor  # refractory kernel decay per bin, exp(-dt / tau_refr)
    v_threshold: torch.Tensor
    eta: torch.Tensor | float = 1.0  # refractory strength (potential drop one bin after a spike, / beta_refr)
    detach_reset: bool = False
    decay_input: bool = True


class SRMState(NamedTuple):
    psp: torch.Tensor  # sum_k eps[k] x[t-k]
    r: torch.Tensor  # refractory trace: sum_k beta_refr^k s[t-k]


def srm_step(x: torch.Tensor, state: SRMState, p: SRMParams, spike_fn) -> tuple[torch.Tensor, SRMState]:
    """One step, the kernels evaluated recursively::

        psp[t] = beta * psp[t-1] + (1 - beta) * x[t]
        u[t]   = psp[t] - eta * beta_refr * r[t-1]
        s[t]   = H(u[t] - v_threshold)
        r[t]   = beta_refr * r[t-1] + s[t]         (s detached with detach_reset)
    """
    psp, r = state
    psp = p.beta * psp + (1 - p.beta) * x if p.decay_input else p.beta * psp + x
    u = psp - p.eta * p.beta_refr * r
    s = spike_fn(u - p.v_threshold)
    r = p.beta_refr * r + (s.detach() if p.detach_reset else s)
    return s, SRMState(psp, r)


def srm_membrane(state: SRMState, p: SRMParams) -> torch.Tensor:
    """The potential ``u`` the next step starts from without input: ``beta * psp - eta * beta_refr * r``
    (for traces: ``u[t] = psp[t] - eta * beta_refr * r[t-1]``)."""
    return state.psp - p.eta * p.beta_refr * state.r


def srm_kernels(p: SRMParams, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two kernels ``(eps[0..length), eta[0..length))`` that :func:`srm_step` realises."""
    k = torch.arange(length, dtype=torch.as_tensor(p.beta).dtype)
    beta = torch.as_tensor(p.beta).detach()
    beta_r = torch.as_tensor(p.beta_refr).detach()
    eps = beta**k * ((1 - beta) if p.decay_input else 1)
    eta = torch.where(k >= 1, -torch.as_tensor(p.eta) * beta_r**k, torch.zeros(()))
    return eps, eta


def srm_multistep(x_seq: torch.Tensor, state: SRMState | None, p: SRMParams, spike_fn):
    """Reference loop of :func:`srm_step`."""
    if state is None:
        state = SRMState(x_seq.new_zeros(x_seq.shape[1:]), x_seq.new_zeros(x_seq.shape[1:]))
    return _multistep(srm_step, x_seq, state, p, spike_fn)


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class SpikingNeuron(nn.Module):
    """Base class of every spiking neuron population.

    Subclasses implement ``forward(x_seq [T, B, ...], state=None) -> (spikes [T, B, ...], state)``
    and ``step(x [B, ...], state=None) -> (spikes [B, ...], state)``. Evaluation tools (spike
    counters, firing-rate and energy reports) find neurons by this class and read ``output[0]``.
    """


class _LeakyNeuron(SpikingNeuron):
    """Shared parameters of the neurons in this module.

    ``tau`` (membrane time constant, ms), ``dt`` (bin width, ms), ``v_threshold``, ``learn_tau`` (time
    constants learnable, as ``beta = sigmoid(w)``), ``learn_threshold``, ``surrogate`` (a name in
    ``SURROGATES`` or a ``Surrogate``) and ``alpha`` (its sharpness; ``None`` for its default).
    """

    def __init__(
        self,
        tau: float = 30.0,
        dt: float = 1.0,
        v_threshold: float = 1.0,
        learn_tau: bool = True,
        learn_threshold: bool = False,
        surrogate: str | Surrogate = "atan",
        alpha: float | None = None,
    ):
        super().__init__()
        if not (tau > 0 and dt > 0):
            raise ValueError(f"{type(self).__name__}: tau and dt must be positive ms values, got tau={tau}, dt={dt}")
        self.dt = float(dt)
        self.w = self._decay_weight(tau, learn_tau)
        vth = torch.tensor(float(v_threshold))
        self.v_threshold = nn.Parameter(vth) if learn_threshold else nn.Buffer(vth)
        self.spike_fn = make_surrogate(surrogate, alpha)

    def _decay_weight(self, tau: float, learn: bool):
        """``w = logit(exp(-dt / tau))`` as a parameter (learnable) or a buffer."""
        if not tau > 0:
            raise ValueError(f"{type(self).__name__}: time constants must be positive ms values, got {tau}")
        w = torch.tensor(_logit(math.exp(-self.dt / tau)))
        return nn.Parameter(w) if learn else nn.Buffer(w)

    def _tau_of(self, w: torch.Tensor) -> float:
        return -self.dt / math.log(float(torch.sigmoid(w.detach())))

    @property
    def beta(self) -> torch.Tensor:
        """Membrane decay per bin, ``exp(-dt / tau)``."""
        return torch.sigmoid(self.w)

    @property
    def tau(self) -> float:
        """Current membrane time constant in ms."""
        return self._tau_of(self.w)

    def extra_repr(self) -> str:
        return f"tau={self.tau:.3g}ms, dt={self.dt:g}ms, v_threshold={float(self.v_threshold.detach()):g}"


class LIF(_LeakyNeuron):
    """Leaky integrate-and-fire neurons with a learnable membrane time constant (PLIF).

    Args:
        tau: initial membrane time constant in ms.
        dt: bin width in ms.
        v_threshold: firing threshold (learnable when ``learn_threshold``).
        v_reset: reset potential for the hard reset.
        soft_reset: subtract the threshold instead of resetting to ``v_reset``.
        detach_reset: do not backpropagate through the reset.
        decay_input: scale the input by ``1 - beta`` (spikingjelly) or not (snnTorch).
        learn_tau: learn the time constant (parameterised as ``beta = sigmoid(w)``, as PLIF does).
        learn_threshold: learn ``v_threshold``.
        surrogate: name in ``SURROGATES``; ``alpha`` its sharpness (``None``: its default).
        backend: multi-step implementation, ``"auto"`` (compiled kernel where it applies),
            ``"numba"``/``"cpu"`` or ``"reference"`` (see :func:`lif_multistep_fast`).

    ``forward(x_seq [T, B, ...], state=None) -> (spikes [T, B, ...], v [B, ...])``.
    """

    def __init__(
        self,
        tau: float = 30.0,
        dt: float = 1.0,
        v_threshold: float = 1.0,
        v_reset: float = 0.0,
        soft_reset: bool = False,
        detach_reset: bool = False,
        decay_input: bool = True,
        learn_tau: bool = True,
        learn_threshold: bool = False,
        surrogate: str | Surrogate = "atan",
        alpha: float | None = None,
        backend: str = "auto",
    ):
        super().__init__(tau, dt, v_threshold, learn_tau, learn_threshold, surrogate, alpha)
        if backend not in LIF_BACKENDS:
            raise ValueError(f"LIF: unknown backend {backend!r}; expected one of {', '.join(LIF_BACKENDS)}")
        self.v_reset = float(v_reset)
        self.soft_reset = soft_reset
        self.detach_reset = detach_reset
        self.decay_input = decay_input
        self.backend = backend

    def params(self) -> LIFParams:
        return LIFParams(
            self.beta, self.v_threshold, self.v_reset, self.soft_reset, self.detach_reset, self.decay_input
        )

    def forward(self, x_seq: torch.Tensor, state=None, recurrent: torch.Tensor | None = None):
        """``recurrent``: a ``[C, C]`` weight from the population's spikes at ``t - 1`` to its input at
        ``t`` (channels on axis 2 of ``x_seq``); the state is then ``(v, s_prev)`` (see
        :mod:`mambaspike.recurrent_lif`): the compiled kernel where it applies and the backend allows,
        else the reference loop."""
        if recurrent is not None:
            from .recurrent_lif import _rlif_fused, fused_supported, rlif_multistep

            p = self.params()
            if self.backend in ("auto", "numba", "cpu") and x_seq.shape[0] > 1:
                why = fused_supported(x_seq, recurrent, p, self.spike_fn)
                if why is None:
                    try:
                        return _rlif_fused(x_seq, recurrent, state, p, self.spike_fn)
                    except Exception as e:
                        if not _kernel_failed(e, self.backend):
                            raise
                if self.backend != "auto":
                    raise ValueError(f"LIF backend {self.backend!r} cannot run this recurrent call: {why}")
            return rlif_multistep(x_seq, recurrent, state, p, self.spike_fn)
        return lif_multistep_fast(x_seq, state, self.params(), self.spike_fn, backend=self.backend)

    def step(self, x: torch.Tensor, state: torch.Tensor | None = None):
        """Single step: ``x [B, ...]`` -> ``(spikes [B, ...], v [B, ...])``."""
        if state is None:
            state = torch.full_like(x, self.v_reset)
        return lif_step(x, state, self.params(), self.spike_fn)

    def extra_repr(self) -> str:
        reset = "soft" if self.soft_reset else f"hard(v_reset={self.v_reset:g})"
        return f"{super().extra_repr()}, reset={reset}, backend={self.backend}"


class ALIF(_LeakyNeuron):
    """LIF with an adaptive threshold: each spike raises the threshold by ``adapt``, which decays back
    with the time constant ``tau_adapt`` (ms); see :func:`alif_step`. State: ``ALIFState(v, a)``."""

    def __init__(
        self,
        tau: float = 30.0,
        dt: float = 1.0,
        v_threshold: float = 1.0,
        tau_adapt: float = 200.0,
        adapt: float = 0.2,
        v_reset: float = 0.0,
        soft_reset: bool = False,
        detach_reset: bool = False,
        decay_input: bool = True,
        learn_tau: bool = True,
        learn_threshold: bool = False,
        surrogate: str | Surrogate = "atan",
        alpha: float | None = None,
    ):
        super().__init__(tau, dt, v_threshold, learn_tau, learn_threshold, surrogate, alpha)
        self.w_adapt = self._decay_weight(tau_adapt, learn_tau)
        self.adapt = float(adapt)
        self.v_reset = float(v_reset)
        self.soft_reset = soft_reset
        self.detach_reset = detach_reset
        self.decay_input = decay_input

    @property
    def tau_adapt(self) -> float:
        return self._tau_of(self.w_adapt)

    def params(self) -> ALIFParams:
        return ALIFParams(self.beta, self.v_threshold, torch.sigmoid(self.w_adapt), self.adapt, self.v_reset,
                          self.soft_reset, self.detach_reset, self.decay_input)  # fmt: skip

    def initial_state(self, x: torch.Tensor) -> ALIFState:
        return ALIFState(torch.full_like(x, self.v_reset), torch.zeros_like(x))

    def forward(self, x_seq: torch.Tensor, state: ALIFState | None = None):
        return alif_multistep(x_seq, state, self.params(), self.spike_fn)

    def step(self, x: torch.Tensor, state: ALIFState | None = None):
        return alif_step(x, self.initial_state(x) if state is None else state, self.params(), self.spike_fn)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau_adapt={self.tau_adapt:.3g}ms, adapt={self.adapt:g}"


class SynapticLIF(_LeakyNeuron):
    """Current-based LIF with two time constants: synaptic current (``tau_syn``, ms) and membrane
    (``tau``, ms); see :func:`synaptic_step`. State: ``SynapticState(v, i)``."""

    def __init__(
        self,
        tau: float = 30.0,
        dt: float = 1.0,
        v_threshold: float = 1.0,
        tau_syn: float = 5.0,
        v_reset: float = 0.0,
        soft_reset: bool = False,
        detach_reset: bool = False,
        decay_input: bool = True,
        learn_tau: bool = True,
        learn_threshold: bool = False,
        surrogate: str | Surrogate = "atan",
        alpha: float | None = None,
    ):
        super().__init__(tau, dt, v_threshold, learn_tau, learn_threshold, surrogate, alpha)
        self.w_syn = self._decay_weight(tau_syn, learn_tau)
        self.v_reset = float(v_reset)
        self.soft_reset = soft_reset
        self.detach_reset = detach_reset
        self.decay_input = decay_input

    @property
    def beta_syn(self) -> torch.Tensor:
        return torch.sigmoid(self.w_syn)

    @property
    def tau_syn(self) -> float:
        return self._tau_of(self.w_syn)

    def params(self) -> SynapticParams:
        return SynapticParams(self.beta, self.beta_syn, self.v_threshold, self.v_reset, self.soft_reset,
                              self.detach_reset, self.decay_input)  # fmt: skip

    def initial_state(self, x: torch.Tensor) -> SynapticState:
        return SynapticState(torch.full_like(x, self.v_reset), torch.zeros_like(x))

    def forward(self, x_seq: torch.Tensor, state: SynapticState | None = None):
        return synaptic_multistep(x_seq, state, self.params(), self.spike_fn)

    def step(self, x: torch.Tensor, state: SynapticState | None = None):
        return synaptic_step(x, self.initial_state(x) if state is None else state, self.params(), self.spike_fn)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau_syn={self.tau_syn:.3g}ms"


class SRM(_LeakyNeuron):
    """Spike response model (SRM0): the potential is the input filtered by an exponential membrane
    kernel (``tau``, ms) plus a refractory kernel ``-eta * exp(-k dt / tau_refr)`` after each spike
    (no reset); see :func:`srm_step`. State: ``SRMState(psp, r)``.

    ``tau_refr=None`` takes ``tau`` and ``eta=None`` takes ``v_threshold``: with both defaults the
    SRM reproduces the soft-reset LIF exactly (a shorter ``tau_refr`` gives a brief refractoriness).
    """

    def __init__(
        self,
        tau: float = 30.0,
        dt: float = 1.0,
        v_threshold: float = 1.0,
        tau_refr: float | None = None,
        eta: float | None = None,
        detach_reset: bool = False,
        decay_input: bool = True,
        learn_tau: bool = True,
        learn_threshold: bool = False,
        surrogate: str | Surrogate = "atan",
        alpha: float | None = None,
    ):
        super().__init__(tau, dt, v_threshold, learn_tau, learn_threshold, surrogate, alpha)
        self.w_refr = self._decay_weight(tau if tau_refr is None else tau_refr, learn_tau)
        self.eta = float(v_threshold if eta is None else eta)
        self.detach_reset = detach_reset
        self.decay_input = decay_input

    @property
    def tau_refr(self) -> float:
        return self._tau_of(self.w_refr)

    def params(self) -> SRMParams:
        return SRMParams(self.beta, torch.sigmoid(self.w_refr), self.v_threshold, self.eta, self.detach_reset,
                         self.decay_input)  # fmt: skip

    def initial_state(self, x: torch.Tensor) -> SRMState:
        return SRMState(torch.zeros_like(x), torch.zeros_like(x))

    def forward(self, x_seq: torch.Tensor, state: SRMState | None = None):
        return srm_multistep(x_seq, state, self.params(), self.spike_fn)

    def step(self, x: torch.Tensor, state: SRMState | None = None):
        return srm_step(x, self.initial_state(x) if state is None else state, self.params(), self.spike_fn)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tau_refr={self.tau_refr:.3g}ms, eta={self.eta:g}"


NEURONS: dict[str, type[SpikingNeuron]] = {"lif": LIF, "alif": ALIF, "synaptic": SynapticLIF, "srm": SRM}
"""Neuron models by name (``ModelConfig.neuron``); each takes ``tau``, ``dt``, ``v_threshold``, ``learn_tau``."""
