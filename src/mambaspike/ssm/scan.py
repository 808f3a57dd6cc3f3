"""The selective scan (S6) of Mamba, with the signature users of ``mamba-ssm`` know.

``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
return_last_state=False, initial_state=None, backend="reference")``

Shapes (mamba-ssm's): ``u, delta, z``: ``[B, D, L]``; ``A``: ``[D, N]``; ``B, C``: ``[B, N, L]``;
``D``: ``[D]``; ``delta_bias``: ``[D]``; states ``[B, D, N]``. The recurrence, per channel d and
state n::

    x[t] = exp(delta[t] * A) * x[t-1] + delta[t] * B[t] * u[t]
    y[t] = <x[t], C[t]> + D * u[t]          (then * silu(z[t]) when z is given)

Backends (``backend=``):

- ``reference``: the plain loop, the ground truth for any faster backend;
- ``parallel``: the recurrence as an associative (Hillis-Steele) scan in torch operations, chunked
  in two levels, on any device; autograd gives the backward. Log-decays are summed, never divided
  by, so decays that underflow stay exact zeros;
- ``numba``: compiled CPU kernels, forward and backward (a custom autograd Function; the backward
  recomputes states instead of storing ``[B, D, L, N]``). Falls back to ``reference`` with one
  warning where numba is missing or cannot compile;
- ``triton``: a Triton kernel for GPU tensors (:mod:`mambaspike.kernels.scan_triton`), forward and
  backward (the backward recomputes the states), with ``initial_state``; needs ``triton``;
- ``cuda``: mamba-ssm's ``selective_scan_fn`` (needs ``mamba_ssm`` and GPU tensors, else an error
  that says so; it has no ``initial_state``, so calls that pass one run as on a GPU without it);
- ``auto`` (the default of ``MambaConfig``): on GPU tensors ``cuda`` where mamba-ssm imports, else
  ``triton`` once a one-time check on the device agrees with ``parallel``, else ``parallel``; on CPU
  ``numba`` when it compiles, else ``reference``. The loop never runs on a GPU unless named.

The ``numba`` kernels use as many threads as torch (``torch.get_num_threads()``), at most
``NUMBA_NUM_THREADS``.

All backends compute in float32 (float64 when ``u`` is float64), parameters included, also under
autocast; ``y`` is returned in ``u``'s dtype, the last state in the compute dtype.
"""

from __future__ import annotations

import os
import warnings

import torch
import torch.nn.functional as F

from mambaspike import kernels

BACKENDS = ("reference", "numba", "parallel", "triton", "cuda", "auto")


def _torch_inputs(u, delta, A, delta_bias, delta_softplus, initial_state):
    """The torch backends' common start: the compute dtype (float64 for float64 ``u``, else float32:
    parameters and state stay >= fp32), ``u`` in it, ``delta`` with its bias and softplus, the initial
    state (zeros by default)."""
    cd = torch.float64 if u.dtype == torch.float64 else torch.float32
    u = u.to(cd)
    dt = _delta(delta.to(cd), None if delta_bias is None else delta_bias.to(cd), delta_softplus)
    x0 = initial_state.to(cd) if initial_state is not None else u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    return cd, u, dt, x0


def _skip_and_gate(y, u, D, z, cd):
    """The common end: the ``D`` skip connection and the ``silu(z)`` gate, in the compute dtype."""
    if D is not None:
        y = y + u * D[:, None].to(cd)
    if z is not None:
        y = y * F.silu(z.to(cd))
    return y


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    initial_state: torch.Tensor | None = None,
):
    """Plain loop over time. Written so that its backward stays linear in L: per-step tensors are
    taken with ``unbind`` and stacked, nothing is written in place into a preallocated output."""
    dtype_in = u.dtype
    with torch.autocast(u.device.type, enabled=False):
        cd, u, delta, x = _torch_inputs(u, delta, A, delta_bias, delta_softplus, initial_state)  # x: (B, D, N)
        Bf, Cf = B.to(cd), C.to(cd)
        deltaA = torch.exp(torch.einsum("bdl,dn->lbdn", delta, A.to(cd)))  # (L, B, D, N)
        deltaB_u = torch.einsum("bdl,bnl,bdl->lbdn", delta, Bf, u)  # (L, B, D, N)
        ys = []
        for dA, dBu, c in zip(deltaA.unbind(0), deltaB_u.unbind(0), Cf.unbind(2)):
            x = dA * x + dBu  # (B, D, N)
            ys.append(torch.einsum("bdn,bn->bd", x, c))  # (B, D)
        y = _skip_and_gate(torch.stack(ys, dim=2), u, D, z, cd)  # (B, D, L)
    y = y.to(dtype_in)
    return (y, x) if return_last_state else y


# --------------------------------------------------------------------------------------------
# parallel (associative scan in torch operations) backend
# --------------------------------------------------------------------------------------------

PARALLEL_CHUNK = 32  # steps per chunk of the two-level scan


def _doubling(la: torch.Tensor, b: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inclusive Hillis-Steele scan along ``dim`` of the pairs ``(la, b)`` with log-decay ``la``:
    ``(la1, b1) . (la2, b2) = (la1 + la2, exp(la2) * b1 + b2)``, ``ceil(log2 n)`` whole-tensor steps.

    Returns ``(la_t, b_t)``: ``la_t`` the sum of the log-decays up to ``t``, ``b_t`` the state at ``t``
    from a zero start. No division: decays that underflow give exact zeros."""
    n = la.shape[dim]
    shift = 1
    while shift < n:
        la_prev = la.narrow(dim, 0, n - shift)
        b_prev = b.narrow(dim, 0, n - shift)
        la_cur = la.narrow(dim, shift, n - shift)
        b_cur = b.narrow(dim, shift, n - shift)
        b = torch.cat([b.narrow(dim, 0, shift), torch.exp(la_cur) * b_prev + b_cur], dim)
        la = torch.cat([la.narrow(dim, 0, shift), la_cur + la_prev], dim)
        shift *= 2
    return la, b


def _parallel_states(la: torch.Tensor, b: torch.Tensor, x0: torch.Tensor, chunk: int) -> torch.Tensor:
    """All states ``x[t] = exp(la[t]) * x[t-1] + b[t]`` (``la, b [B, D, L, N]``, ``x[-1] = x0
    [B, D, N]``) as ``[B, D, L, N]``, by a two-level scan: a doubling scan inside chunks of ``chunk``
    steps (all chunks at once), a doubling scan over the chunks' end states, then each chunk's carry
    decayed into it."""
    nb, nd, L, N = b.shape
    T = max(1, min(chunk, L))
    nc = -(-L // T)
    pad = nc * T - L
    if pad:  # identity steps (no decay, no input) at the end
        la = F.pad(la, (0, 0, 0, pad))
        b = F.pad(b, (0, 0, 0, pad))
    la = la.reshape(nb, nd, nc, T, N)
    b = b.reshape(nb, nd, nc, T, N)
    la, b = _doubling(la, b, dim=3)  # within chunks, from a zero start at each chunk's beginning
    if nc > 1:
        la_c, b_c = _doubling(la[:, :, :, -1], b[:, :, :, -1], dim=2)  # (B, D, nc, N): chunk ends
        ends = b_c + torch.exp(la_c) * x0[:, :, None]  # the state at the end of every chunk
        carry = torch.cat([x0[:, :, None], ends[:, :, :-1]], dim=2)  # the state entering every chunk
    else:
        carry = x0[:, :, None]
    x = b + torch.exp(la) * carry[:, :, :, None]  # (B, D, nc, T, N)
    return x.reshape(nb, nd, nc * T, N)[:, :, :L]


def selective_scan_parallel(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    initial_state: torch.Tensor | None = None,
    chunk: int | None = None,
):
    """The ``parallel`` backend: the recurrence as an associative scan in torch operations (any
    device; autograd gives the backward), ``O(log L)`` whole-tensor steps instead of ``L`` small ones.
    Same arguments and results as the reference, and ``chunk``, the steps per chunk of the scan
    (default :data:`PARALLEL_CHUNK`); see :func:`_parallel_states`. Keeps the ``[B, D, L, N]`` states
    (and the scan's intermediates) for backward, as the reference does."""
    chunk = PARALLEL_CHUNK if chunk is None else chunk
    if chunk < 1:
        raise ValueError(f"selective_scan_parallel: chunk must be >= 1, got {chunk}")
    dtype_in = u.dtype
    with torch.autocast(u.device.type, enabled=False):
        cd, u, delta, x0 = _torch_inputs(u, delta, A, delta_bias, delta_softplus, initial_state)
        la = torch.einsum("bdl,dn->bdln", delta, A.to(cd))  # (B, D, L, N): log of the decay
        b = torch.einsum("bdl,bnl->bdln", delta * u, B.to(cd))  # (B, D, L, N)
        x = _parallel_states(la, b, x0, chunk)  # (B, D, L, N)
        y = _skip_and_gate(torch.einsum("bdln,bnl->bdl", x, C.to(cd)), u, D, z, cd)
        last = x[:, :, -1] if x.shape[2] else x0
    y = y.to(dtype_in)
    return (y, last) if return_last_state else y


# --------------------------------------------------------------------------------------------
# numba (compiled CPU) backend
# --------------------------------------------------------------------------------------------


def numba_available() -> bool:
    """Whether the compiled CPU scan kernel can be used (see :func:`mambaspike.kernels.load`)."""
    return kernels.available("scan_numba")


def _numba_threads() -> int:
    """Run the kernels on as many threads as torch uses (``torch.set_num_threads``, ``--threads``),
    at most ``NUMBA_NUM_THREADS``, so one setting governs both."""
    import numba

    n = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != n:
        numba.set_num_threads(n)
    return n


class _NumbaScanFn(torch.autograd.Function):
    """The whole selective scan on CPU, in one dtype (float32/float64)::

        dt = softplus(delta + delta_bias)  (or without softplus / bias)
        y  = (scan(u, dt, A, B, C, x0) + D * u) * silu(z)

    Inputs ``u, delta, z [B, D, L]``, ``A [D, N]``, ``B, C [B, N, L]``, ``D, delta_bias [D]``,
    ``x0 [B, D, N]`` (``D``, ``z``, ``delta_bias`` may be ``None``). Outputs ``(y [B, D, L],
    last [B, D, N])``. Only the inputs and ``y`` before gating are kept for backward; ``dt`` and
    ``silu(z)`` are recomputed, the states inside the kernel."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, x0, softplus: bool):
        k = kernels.load("scan_numba")
        u, delta, A, x0 = (t.detach().contiguous() for t in (u, delta, A, x0))
        D, z, delta_bias = (t.detach() if t is not None else None for t in (D, z, delta_bias))
        dt = _delta(delta, delta_bias, softplus)  # (B, D, L)
        Bt = B.detach().transpose(1, 2).contiguous()  # (B, L, N)
        Ct = C.detach().transpose(1, 2).contiguous()  # (B, L, N)
        y = torch.empty_like(u)
        last = torch.empty_like(x0)
        _numba_threads()
        k.scan_fwd(u.numpy(), dt.numpy(), A.numpy(), Bt.numpy(), Ct.numpy(), x0.numpy(), y.numpy(), last.numpy())
        del dt
        if D is not None:
            y.addcmul_(u, D[:, None].expand_as(u))  # y + D * u, in place (y is ours)
        ctx.softplus = softplus
        ctx.has = (D is not None, z is not None, delta_bias is not None)
        ctx.save_for_backward(u, delta, A, Bt, Ct, x0, D, z, delta_bias, y if z is not None else None)
        out = y * F.silu(z) if z is not None else y
        return out, last

    @staticmethod
    def backward(ctx, gout, glast):
        k = kernels.load("scan_numba")
        u, delta, A, Bt, Ct, x0, D, z, delta_bias, ypd = ctx.saved_tensors
        nb, nd, L = u.shape
        N = A.shape[1]
        gout = torch.zeros_like(u) if gout is None else gout.to(u.dtype)
        glast = torch.zeros_like(x0) if glast is None else glast.to(u.dtype).contiguous()
        dz = None
        if z is not None:
            sz = torch.sigmoid(z)
            dz = gout * ypd * (sz * (1 + z * (1 - sz)))  # d silu(z) / dz = s (1 + z (1 - s))
            gy = (gout * (z * sz)).contiguous()  # dLoss / d(scan + D u)
            del sz
        else:
            gy = gout.contiguous()
        dt = _delta(delta, delta_bias, ctx.softplus)
        groups = max(1, min(nd, 2 * _numba_threads()))
        du, ddt = torch.empty_like(u), torch.empty_like(u)
        dA_rows = torch.empty(nb, nd, N, dtype=u.dtype)
        dB_part = torch.zeros(nb, groups, L, N, dtype=u.dtype)
        dC_part = torch.zeros(nb, groups, L, N, dtype=u.dtype)
        dx0 = torch.empty_like(x0)
        k.scan_bwd(
            u.numpy(),
            dt.numpy(),
            A.numpy(),
            Bt.numpy(),
            Ct.numpy(),
            x0.numpy(),
            gy.numpy(),
            glast.numpy(),
            groups,
            du.numpy(),
            ddt.numpy(),
            dA_rows.numpy(),
            dB_part.numpy(),
            dC_part.numpy(),
            dx0.numpy(),
        )
        del dt
        dD = None
        if D is not None:
            dD = (gy * u).sum(dim=(0, 2))
            du.addcmul_(gy, D[:, None].expand_as(u))
        if ctx.softplus:  # d softplus(x) / dx = sigmoid(x)
            ddt.mul_(torch.sigmoid(delta + delta_bias[:, None] if delta_bias is not None else delta))
        dbias = ddt.sum(dim=(0, 2)) if delta_bias is not None else None
        dB = dB_part.sum(1).transpose(1, 2)  # (B, N, L)
        dC = dC_part.sum(1).transpose(1, 2)  # (B, N, L)
        return du, ddt, dA_rows.sum(0), dB, dC, dD, dz, dbias, dx0, None


def _delta(delta, delta_bias, softplus):
    dt = delta + delta_bias[:, None] if delta_bias is not None else delta
    return (F.softplus(dt) if softplus else dt).contiguous()


def selective_scan_numba(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    return_last_state=False,
    initial_state=None,
):
    """The ``numba`` backend (CPU tensors only); same arguments and results as the reference."""
    if u.device.type != "cpu":
        raise ValueError(f"selective_scan: backend 'numba' needs CPU tensors, got {u.device}")
    dtype_in = u.dtype
    cd = torch.float64 if u.dtype == torch.float64 else torch.float32

    def as_cd(t):
        return None if t is None else (t if t.dtype == cd else t.to(cd))

    with torch.autocast("cpu", enabled=False):
        x0 = (
            as_cd(initial_state)
            if initial_state is not None
            else u.new_zeros(u.shape[0], u.shape[1], A.shape[1], dtype=cd)
        )
        y, last = _NumbaScanFn.apply(
            as_cd(u),
            as_cd(delta),
            as_cd(A),
            as_cd(B),
            as_cd(C),
            as_cd(D),
            as_cd(z),
            as_cd(delta_bias),
            x0,
            bool(delta_softplus),
        )
    y = y.to(dtype_in)
    return (y, last) if return_last_state else y


# --------------------------------------------------------------------------------------------
# triton (compiled GPU) backend
# --------------------------------------------------------------------------------------------


def triton_available() -> bool:
    """Whether the Triton scan kernel imports (see :func:`mambaspike.kernels.load`)."""
    return kernels.available("scan_triton")


def _interpreted() -> bool:
    """Whether Triton runs in its CPU interpreter (``TRITON_INTERPRET=1``; tests without a GPU)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


class _TritonScanFn(torch.autograd.Function):
    """The recurrence of the selective scan through :mod:`mambaspike.kernels.scan_triton`:
    ``(u, dt, A, B, C, x0) -> (y, last)``, all contiguous in one dtype. Only the inputs are kept for
    backward; the backward kernel recomputes the states."""

    @staticmethod
    def forward(ctx, u, dt, A, B, C, x0):
        k = kernels.load("scan_triton")
        u, dt, A, B, C, x0 = (t.detach().contiguous() for t in (u, dt, A, B, C, x0))
        y, last = k.scan_forward(u, dt, A, B, C, x0)
        ctx.save_for_backward(u, dt, A, B, C, x0)
        return y, last

    @staticmethod
    def backward(ctx, gy, glast):
        k = kernels.load("scan_triton")
        u, dt, A, B, C, x0 = ctx.saved_tensors
        gy = torch.zeros_like(u) if gy is None else gy.to(u.dtype).contiguous()
        glast = torch.zeros_like(x0) if glast is None else glast.to(u.dtype).contiguous()
        return k.scan_backward(u, dt, A, B, C, x0, gy, glast)


def selective_scan_triton(
    u,
    delta,
    A,
    B,
    C,
    D=None,
    z=None,
    delta_bias=None,
    delta_softplus=False,
    return_last_state=False,
    initial_state=None,
):
    """The ``triton`` backend (CUDA tensors, or any under ``TRITON_INTERPRET=1``); same arguments and
    results as the reference. ``delta``'s bias and softplus, the ``D`` skip and the gate run in torch
    around the kernel, in the compute dtype (float32; float64 for float64 ``u``)."""
    dtype_in = u.dtype
    with torch.autocast(u.device.type, enabled=False):
        cd, u, dt, x0 = _torch_inputs(u, delta, A, delta_bias, delta_softplus, initial_state)
        y, last = _TritonScanFn.apply(u, dt, A.to(cd), B.to(cd), C.to(cd), x0)
        y = _skip_and_gate(y, u, D, z, cd)
    y = y.to(dtype_in)
    return (y, last) if return_last_state else y


_triton_checked: dict[str, bool] = {}  # device -> whether the kernel matched the parallel scan there


def _triton_usable(device: torch.device) -> bool:
    """Whether ``auto`` may use the Triton kernel on ``device``: it imports, and it matched the
    ``parallel`` scan (outputs, last state, every gradient) in a one-time check on that device."""
    if not triton_available():
        return False
    key = str(device)
    if key not in _triton_checked:
        try:
            ok, why = _triton_self_check(device), "it disagreed with the parallel scan"
        except Exception as e:  # a compile or launch failure on this GPU
            ok, why = False, f"{type(e).__name__}: {e}"
        _triton_checked[key] = ok
        if not ok:
            warnings.warn(
                f"mambaspike: the Triton selective-scan kernel is not used on {device} ({why}); "
                "using the parallel scan.",
                RuntimeWarning,
                stacklevel=4,
            )
    return _triton_checked[key]


def _triton_self_check(device) -> bool:
    """A small random scan (with every optional input) through the Triton kernel and the parallel scan,
    forward and backward (also when called under ``no_grad`` or ``inference_mode``)."""
    with torch.inference_mode(False), torch.enable_grad():
        return _triton_compare(device)


def _triton_compare(device) -> bool:
    g = torch.Generator().manual_seed(0)
    Bs, Dm, N, L = 2, 40, 5, 37
    shapes = dict(u=(Bs, Dm, L), delta=(Bs, Dm, L), A=(Dm, N), B=(Bs, N, L), C=(Bs, N, L), D=(Dm,), z=(Bs, Dm, L))
    t = {k: torch.randn(*s, generator=g) for k, s in shapes.items()}
    t["A"] = -t["A"].abs() - 0.1
    t["delta_bias"] = torch.randn(Dm, generator=g)
    t["initial_state"] = torch.randn(Bs, Dm, N, generator=g)
    gy = torch.randn(Bs, Dm, L, generator=g).to(device)
    outs = []
    for fn in (selective_scan_parallel, selective_scan_triton):
        ins = {k: v.to(device).requires_grad_() for k, v in t.items()}
        y, last = fn(**ins, delta_softplus=True, return_last_state=True)
        grads = torch.autograd.grad((y * gy).sum() + last.square().sum(), list(ins.values()))
        outs.append([y.detach(), last.detach(), *grads])
    return all(torch.allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(b.abs().max()))) for a, b in zip(*outs))


# --------------------------------------------------------------------------------------------
# cuda (mamba-ssm) backend
# --------------------------------------------------------------------------------------------


def _mamba_ssm_fn():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:
        return None
    return selective_scan_fn


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """Backends that run on tensors of ``device`` here (``reference`` and ``parallel`` always)."""
    dev = torch.device(device).type
    out = ["reference", "parallel"]
    if dev == "cpu" and numba_available():
        out.append("numba")
    if dev == "cuda" or _interpreted():
        if triton_available():
            out.append("triton")
    if dev == "cuda" and torch.cuda.is_available() and _mamba_ssm_fn() is not None:
        out.append("cuda")
    return out


def _gpu_fallback(device: torch.device | str) -> str:
    """What runs on a GPU without mamba-ssm (or where it cannot, with an initial state): the Triton
    kernel where it imports and passed its check on the device, else the parallel scan."""
    return "triton" if _triton_usable(torch.device(device)) else "parallel"


def resolve_backend(backend: str, device: torch.device | str = "cpu", initial_state: bool = False) -> str:
    """The backend ``backend`` amounts to for tensors on ``device`` (``initial_state``: whether the
    call passes one, which mamba-ssm cannot take).

    ``auto``: on CUDA, ``cuda`` (mamba-ssm) where it imports and no initial state is passed, else
    ``triton`` where it passed its check on the device, else ``parallel``; on CPU, ``numba`` where it
    compiles, else ``reference``. On CUDA the reference loop runs only when asked for by name."""
    if backend not in BACKENDS:
        raise ValueError(f"selective_scan: unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    dev = torch.device(device).type
    if backend == "auto":
        if dev == "cuda":
            if _mamba_ssm_fn() is not None and not initial_state:
                return "cuda"
            return _gpu_fallback(device)
        if dev == "cpu" and numba_available():
            return "numba"
        return "reference"
    if backend == "numba" and not numba_available():
        return "reference"
    if backend == "triton":
        if dev != "cuda" and not _interpreted():
            raise ValueError(
                f"selective_scan: backend 'triton' needs GPU tensors, got {dev}; use backend 'auto' or 'parallel'"
            )
        if not triton_available():
            raise ImportError(
                f"selective_scan: backend 'triton' needs the 'scan_triton' kernel ({kernels.reason('scan_triton')}); "
                "`pip install triton` on a CUDA machine, or use backend 'auto' or 'parallel'"
            )
    if backend == "cuda":
        if _mamba_ssm_fn() is None:
            raise ImportError(
                "selective_scan: backend 'cuda' needs mamba-ssm (pip install 'mambaspike[cuda]' on a CUDA machine); "
                "backend 'auto' uses the fastest one available"
            )
        if dev != "cuda":
            raise ValueError(f"selective_scan: backend 'cuda' needs GPU tensors, got {dev}; use backend 'auto'")
        if initial_state:
            return _gpu_fallback(device)
    return backend


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    initial_state: torch.Tensor | None = None,
    backend: str = "reference",
):
    """Selective scan, dispatched to ``backend`` (one of ``BACKENDS``). See the module docstring."""
    which = resolve_backend(backend, u.device, initial_state is not None)
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, initial_state)
    if which == "numba":
        return selective_scan_numba(*args)
    if which == "parallel":
        return selective_scan_parallel(*args)
    if which == "triton":
        return selective_scan_triton(*args)
    if which == "cuda":
        fn = _mamba_ssm_fn()
        f32 = [t.float() if t is not None else None for t in (A, D, delta_bias)]  # parameters stay fp32
        return fn(u, delta, f32[0], B, C, f32[1], z, f32[2], delta_softplus, return_last_state)
    return selective_scan_reference(*args)
