"""The scan of the spiking S6 selection (Miao, Spiking Mamba/Transformer paper, Fig. 5).

``spiking_scan(a_bar, bx, c) -> y``::

    G[l] = a_bar[l] * G[l-1] + bx[l]          G[-1] = 0,  G: (B, E, N)
    y[l] = sum_n G[l, :, n] * C[l, n]          y: (B, E)

Shapes: ``a_bar, bx``: ``[B, L, E, N]`` (any broadcastable shapes of that rank); ``c``: ``[B, L, N]``;
``y``: ``[B, L, E]``. ``B`` is any batch (the spiking model folds time steps into it).

Why not :func:`mambaspike.ssm.scan.selective_scan`: there the decay is ``exp(delta[b,d,l] * A[d,n])``
and the input term ``delta * B * u``, both computed inside the scan. In the spiking S6 every one of
those operations is followed by a spiking neuron (``Ā = SN(Δ A)``, ``B̄ = SN(Δ B)``), so the decay
is a binary tensor of its own, not an exponential of ``delta * A``, and the maths no longer fits that
signature. Hence a scan over precomputed ``(a_bar, bx)`` with two backends:

- ``reference``: the plain loop over tokens of the paper's Fig. 5 (the ground truth);
- ``parallel``: a Hillis-Steele prefix scan of the associative operator
  ``(a1, b1) . (a2, b2) = (a1 a2, a2 b1 + b2)``: ``ceil(log2 L)`` whole-tensor steps instead of ``L``
  small ones. Exact for binary ``a_bar`` and equal to the loop up to float rounding otherwise; tested
  against the reference (outputs and gradients).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SPIKING_SCAN_BACKENDS = ("parallel", "reference")


def _check(a_bar: torch.Tensor, bx: torch.Tensor, c: torch.Tensor) -> None:
    if a_bar.dim() != 4 or bx.dim() != 4 or c.dim() != 3:
        raise ValueError(
            "spiking_scan: expected a_bar, bx [B, L, E, N] and c [B, L, N], got "
            f"{tuple(a_bar.shape)}, {tuple(bx.shape)}, {tuple(c.shape)}"
        )


def spiking_scan_reference(a_bar: torch.Tensor, bx: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Plain loop over the L tokens (Fig. 5). Returns ``y [B, L, E]``."""
    _check(a_bar, bx, c)
    shape = torch.broadcast_shapes(a_bar.shape, bx.shape)  # (B, L, E, N)
    a_bar, bx = a_bar.expand(shape), bx.expand(shape)
    g = bx.new_zeros(shape[0], shape[2], shape[3])  # (B, E, N)
    ys = []
    for a, b, cl in zip(a_bar.unbind(1), bx.unbind(1), c.unbind(1)):
        g = a * g + b  # (B, E, N)
        ys.append(torch.einsum("ben,bn->be", g, cl))  # (B, E)
    return torch.stack(ys, dim=1)  # (B, L, E)


def spiking_scan_parallel(a_bar: torch.Tensor, bx: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Hillis-Steele prefix scan over L (log2 L steps). Returns ``y [B, L, E]``."""
    _check(a_bar, bx, c)
    shape = torch.broadcast_shapes(a_bar.shape, bx.shape)
    a, g = a_bar.expand(shape), bx.expand(shape)  # (B, L, E, N) each
    L = shape[1]
    shift = 1
    while shift < L:
        # combine every position t with the segment ending at t - shift (identity (1, 0) before 0)
        a_prev = F.pad(a[:, : L - shift], (0, 0, 0, 0, shift, 0), value=1.0)  # (B, L, E, N)
        g_prev = F.pad(g[:, : L - shift], (0, 0, 0, 0, shift, 0), value=0.0)
        g = a * g_prev + g
        a = a * a_prev
        shift *= 2
    return torch.einsum("blen,bln->ble", g, c)  # (B, L, E)


def spiking_scan(a_bar: torch.Tensor, bx: torch.Tensor, c: torch.Tensor, backend: str = "parallel") -> torch.Tensor:
    """The spiking S6 scan on ``backend`` (one of ``SPIKING_SCAN_BACKENDS``); see the module docstring."""
    if backend == "parallel":
        return spiking_scan_parallel(a_bar, bx, c)
    if backend == "reference":
        return spiking_scan_reference(a_bar, bx, c)
    raise ValueError(f"spiking_scan: unknown backend {backend!r}; available: {', '.join(SPIKING_SCAN_BACKENDS)}")


__all__ = ["SPIKING_SCAN_BACKENDS", "spiking_scan", "spiking_scan_parallel", "spiking_scan_reference"]
