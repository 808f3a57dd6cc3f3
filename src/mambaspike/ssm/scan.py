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
- ``numba``: compiled CPU kernels, forward and backward (a custom autograd Function; the backward
  recomputes states instead of storing ``[B, D, L, N]``). Falls back to ``reference`` with one
  warning where numba is missing or cannot compile;
- ``cuda``: mamba-ssm's ``selective_scan_fn`` (needs ``mamba_ssm`` and GPU tensors, else an error
  that says so; it has no ``initial_state``, so calls that pass one use the reference);
- ``auto`` (the default of ``MambaConfig``): ``cuda`` for GPU tensors when available, else ``numba``
  on CPU when it compiles, else ``reference``.

The ``numba`` kernels use as many threads as torch (``torch.get_num_threads()``), at most
``NUMBA_NUM_THREADS``.

All backends compute in float32 (float64 when ``u`` is float64), parameters included, also under
autocast; ``y`` is returned in ``u``'s dtype, the last state in the compute dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mambaspike import kernels

BACKENDS = ("reference", "numba", "cuda", "auto")


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
    cd = torch.float64 if u.dtype == torch.float64 else torch.float32  # parameters stay >= fp32
    with torch.autocast(u.device.type, enabled=False):
        u, delta = u.to(cd), delta.to(cd)
        if delta_bias is not None:
            delta = delta + delta_bias[..., None].to(cd)
        if delta_softplus:
            delta = F.softplus(delta)
        Bf, Cf = B.to(cd), C.to(cd)
        deltaA = torch.exp(torch.einsum("bdl,dn->lbdn", delta, A.to(cd)))  # (L, B, D, N)
        deltaB_u = torch.einsum("bdl,bnl,bdl->lbdn", delta, Bf, u)  # (L, B, D, N)
        x = (
            initial_state.to(cd) if initial_state is not None else u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
        )  # (B, D, N)
        ys = []
        for dA, dBu, c in zip(deltaA.unbind(0), deltaB_u.unbind(0), Cf.unbind(2)):
            x = dA * x + dBu  # (B, D, N)
            ys.append(torch.einsum("bdn,bn->bd", x, c))  # (B, D)
        y = torch.stack(ys, dim=2)  # (B, D, L)
        if D is not None:
            y = y + u * D[:, None].to(cd)
        if z is not None:
            y = y * F.silu(z.to(cd))
    y = y.to(dtype_in)
    return (y, x) if return_last_state else y


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
# cuda (mamba-ssm) backend
# --------------------------------------------------------------------------------------------


def _mamba_ssm_fn():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:
        return None
    return selective_scan_fn


def available_backends() -> list[str]:
    """Backends that run here (``auto`` and ``reference`` always)."""
    out = ["reference"]
    if numba_available():
        out.append("numba")
    if torch.cuda.is_available() and _mamba_ssm_fn() is not None:
        out.append("cuda")
    return out


def resolve_backend(backend: str, device: torch.device | str = "cpu") -> str:
    """The backend ``auto`` (or a named one) amounts to for tensors on ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"selective_scan: unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    dev = torch.device(device).type
    if backend == "auto":
        if dev == "cuda" and _mamba_ssm_fn() is not None:
            return "cuda"
        if dev == "cpu" and numba_available():
            return "numba"
        return "reference"
    if backend == "numba" and not numba_available():
        return "reference"
    if backend == "cuda":
        if _mamba_ssm_fn() is None:
            raise ImportError(
                "selective_scan: backend 'cuda' needs mamba-ssm (pip install mamba-ssm on a CUDA machine); "
                "backend 'auto' uses the fastest one available"
            )
        if dev != "cuda":
            raise ValueError(f"selective_scan: backend 'cuda' needs GPU tensors, got {dev}; use backend 'auto'")
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
    which = resolve_backend(backend, u.device)
    if which == "numba":
        return selective_scan_numba(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, initial_state
        )
    if which == "cuda" and initial_state is None:
        fn = _mamba_ssm_fn()
        f32 = [t.float() if t is not None else None for t in (A, D, delta_bias)]  # parameters stay fp32
        return fn(u, delta, f32[0], B, C, f32[1], z, f32[2], delta_softplus, return_last_state)
    return selective_scan_reference(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, initial_state
    )
