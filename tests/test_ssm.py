import math

import pytest
import torch
import torch.nn.functional as F

from mambaspike.ssm.mamba import MambaBackbone, MambaBlock, MambaConfig
from mambaspike.ssm.scan import selective_scan


def scalar_loop_scan(u, delta, A, B, C, D, z, delta_bias):
    """The recurrence written element by element, the most obvious form there is."""
    Bsz, Dm, L = u.shape
    N = A.shape[1]
    y = torch.zeros(Bsz, Dm, L, dtype=torch.float64)
    last = torch.zeros(Bsz, Dm, N, dtype=torch.float64)
    for b in range(Bsz):
        for d in range(Dm):
            x = [0.0] * N
            for t in range(L):
                dt = F.softplus(delta[b, d, t] + delta_bias[d]).item()
                acc = 0.0
                for n in range(N):
                    x[n] = math.exp(dt * A[d, n].item()) * x[n] + dt * B[b, n, t].item() * u[b, d, t].item()
                    acc += x[n] * C[b, n, t].item()
                out = acc + D[d].item() * u[b, d, t].item()
                y[b, d, t] = out * z[b, d, t].item() / (1 + math.exp(-z[b, d, t].item()))
            last[b, d] = torch.tensor(x)
    return y, last


def test_reference_scan_matches_scalar_loop():
    torch.manual_seed(0)
    Bsz, Dm, N, L = 2, 3, 4, 7
    u, delta, z = (torch.randn(Bsz, Dm, L, dtype=torch.float64) for _ in range(3))
    A = -torch.rand(Dm, N, dtype=torch.float64) - 0.1
    B, C = torch.randn(Bsz, N, L, dtype=torch.float64), torch.randn(Bsz, N, L, dtype=torch.float64)
    D, bias = torch.randn(Dm, dtype=torch.float64), torch.randn(Dm, dtype=torch.float64)
    y, last = selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True, return_last_state=True)
    y_ref, last_ref = scalar_loop_scan(u, delta, A, B, C, D, z, bias)
    assert torch.allclose(y.double(), y_ref, atol=1e-10)
    assert torch.allclose(last.double(), last_ref, atol=1e-10)


def test_scan_initial_state_continues_sequence():
    torch.manual_seed(1)
    u, delta = torch.randn(2, 5, 9), torch.randn(2, 5, 9)
    A = -torch.rand(5, 3)
    B, C = torch.randn(2, 3, 9), torch.randn(2, 3, 9)
    y, last = selective_scan(u, delta, A, B, C, delta_softplus=True, return_last_state=True)
    y1, s1 = selective_scan(
        u[..., :4], delta[..., :4], A, B[..., :4], C[..., :4], delta_softplus=True, return_last_state=True
    )
    y2, s2 = selective_scan(
        u[..., 4:],
        delta[..., 4:],
        A,
        B[..., 4:],
        C[..., 4:],
        delta_softplus=True,
        return_last_state=True,
        initial_state=s1,
    )
    assert torch.allclose(torch.cat([y1, y2], -1), y, atol=1e-6)
    assert torch.allclose(s2, last, atol=1e-6)


def test_unknown_backend_is_a_clear_error():
    x = torch.zeros(1, 1, 1)
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        selective_scan(x, x, torch.zeros(1, 1), x, x, backend="nope")


def test_mamba_initialisation():
    cfg = MambaConfig(d_model=32, d_state=8, dt_min=0.001, dt_max=0.1)
    blk = MambaBlock(cfg)
    A = -torch.exp(blk.A_log)
    assert torch.allclose(A[0], -torch.arange(1, 9, dtype=torch.float32))  # S4D-real
    dt = F.softplus(blk.dt_proj.bias)
    assert dt.min() >= 0.001 * 0.999 and dt.max() <= 0.1 * 1.001  # log-uniform in [dt_min, dt_max]
    assert torch.all(blk.D == 1)


def test_mamba_chunked_state_equals_full_sequence():
    torch.manual_seed(2)
    model = MambaBackbone(MambaConfig(d_model=16, n_layers=2, d_state=4)).eval()
    x = torch.randn(3, 11, 16)
    with torch.no_grad():
        y, _ = model(x)
        state, outs = None, []
        for chunk in (x[:, :1], x[:, 1:5], x[:, 5:6], x[:, 6:]):
            yc, state = model(chunk, state)
            outs.append(yc)
    assert torch.allclose(torch.cat(outs, 1), y, atol=1e-5)


def test_mamba_is_causal():
    torch.manual_seed(3)
    model = MambaBackbone(MambaConfig(d_model=16, n_layers=1, d_state=4))
    x = torch.randn(1, 10, 16)
    y, _ = model(x)
    x2 = x.clone()
    x2[:, 6:] += 1.0
    y2, _ = model(x2)
    assert torch.allclose(y[:, :6], y2[:, :6]) and not torch.allclose(y[:, 6:], y2[:, 6:])
