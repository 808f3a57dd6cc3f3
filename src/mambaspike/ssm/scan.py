"""The selective scan (S6) of Mamba, with the signature users of ``mamba-ssm`` know.

``selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
return_last_state=False, initial_state=None, backend="reference")``

Shapes (mamba-ssm's): ``u, delta, z``: ``[B, D, L]``; ``A``: ``[D, N]``; ``B, C``: ``[B, N, L]``;
``D``: ``[D]``; ``delta_bias``: ``[D]``; states ``[B, D, N]``. The recurrence, per channel d and
state n::

    x[t] = exp(delta[t] * A) * x[t-1] + delta[t] * B[t] * u[t]
    y[t] = <x[t], C[t]> + D * u[t]          (then * silu(z[t]) when z is given)

``reference`` is the plain loop, the ground truth for any faster backend.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BACKENDS = ("reference",)


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
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    Bf, Cf = B.float(), C.float()
    deltaA = torch.exp(torch.einsum("bdl,dn->lbdn", delta, A.float()))  # (L, B, D, N)
    deltaB_u = torch.einsum("bdl,bnl,bdl->lbdn", delta, Bf, u)  # (L, B, D, N)
    x = (
        initial_state.float()
        if initial_state is not None
        else u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    )  # (B, D, N)
    ys = []
    for dA, dBu, c in zip(deltaA.unbind(0), deltaB_u.unbind(0), Cf.unbind(2)):
        x = dA * x + dBu  # (B, D, N)
        ys.append(torch.einsum("bdn,bn->bd", x, c))  # (B, D)
    y = torch.stack(ys, dim=2)  # (B, D, L)
    if D is not None:
        y = y + u * D[:, None].float()
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(dtype_in)
    return (y, x) if return_last_state else y


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
    if backend != "reference":
        raise ValueError(f"selective_scan: unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    return selective_scan_reference(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, initial_state
    )
