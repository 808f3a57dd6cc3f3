"""Every fast selective-scan backend against the reference loop: outputs, last state, all gradients."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mambaspike.ssm.scan import resolve_backend, selective_scan

FAST = ["numba"]  # a declared dependency: where it does not compile, these tests fail (no skip)

NAMES = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state"]


def make(Bs, Dm, N, L, dtype, seed=0, with_state=True, with_z=True):
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=g, dtype=dtype).requires_grad_()

    A = (-torch.rand(Dm, N, generator=g, dtype=dtype) * 2 - 0.05).requires_grad_()
    return dict(
        u=r(Bs, Dm, L),
        delta=(0.5 * torch.randn(Bs, Dm, L, generator=g, dtype=dtype) - 1).requires_grad_(),
        A=A,
        B=r(Bs, N, L),
        C=r(Bs, N, L),
        D=r(Dm),
        z=r(Bs, Dm, L) if with_z else None,
        delta_bias=r(Dm),
        initial_state=r(Bs, Dm, N) if with_state else None,
    )


def run(backend, t, softplus=True):
    y, last = selective_scan(
        t["u"],
        t["delta"],
        t["A"],
        t["B"],
        t["C"],
        t["D"],
        t["z"],
        t["delta_bias"],
        delta_softplus=softplus,
        return_last_state=True,
        initial_state=t["initial_state"],
        backend=backend,
    )
    ins = [n for n in NAMES if t[n] is not None]
    gy = torch.cos(torch.arange(y.numel(), dtype=y.dtype)).view_as(y)  # a fixed, non-uniform upstream grad
    loss = (y * gy).sum() + (last * last).sum()
    grads = torch.autograd.grad(loss, [t[n] for n in ins])
    return y.detach(), last.detach(), dict(zip(ins, grads))


def assert_same(ref, fast, rtol, atol):
    torch.testing.assert_close(fast[0], ref[0], rtol=rtol, atol=atol, msg="y")
    torch.testing.assert_close(fast[1], ref[1], rtol=rtol, atol=atol, msg="last state")
    assert ref[2].keys() == fast[2].keys()
    for k in ref[2]:
        torch.testing.assert_close(fast[2][k], ref[2][k], rtol=rtol, atol=atol, msg=f"grad {k}")


TOL = {torch.float64: (1e-9, 1e-10), torch.float32: (1e-4, 1e-5)}


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("L", [1, 2, 17, 128])
def test_backend_matches_reference(backend, dtype, L):
    t = make(2, 6, 4, L, dtype, seed=L)
    assert_same(run("reference", t), run(backend, t), *TOL[dtype])


@pytest.mark.parametrize("backend", FAST)
def test_backend_without_optional_inputs(backend):
    t = make(3, 5, 2, 9, torch.float64, with_state=False, with_z=False)
    t["D"] = None
    t["delta_bias"] = None
    assert_same(run("reference", t, softplus=False), run(backend, t, softplus=False), *TOL[torch.float64])


@pytest.mark.parametrize("backend", FAST)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("L", [1024, 4096])
def test_backend_long_sequences(backend, dtype, L):
    """Long L at tiny batch/channels: accumulated state and gradients over thousands of steps."""
    t = make(1, 2, 3, L, dtype, seed=7)
    rtol, atol = TOL[dtype]
    assert_same(run("reference", t), run(backend, t), rtol * 10, atol * 10)


@settings(max_examples=15, deadline=None)
@given(
    Bs=st.integers(1, 3),
    Dm=st.integers(1, 7),
    N=st.integers(1, 5),
    L=st.integers(1, 40),
    with_state=st.booleans(),
    with_z=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_backend_odd_shapes(Bs, Dm, N, L, with_state, with_z, seed):
    t = make(Bs, Dm, N, L, torch.float64, seed, with_state, with_z)
    ref = run("reference", t)
    for backend in FAST:
        assert_same(ref, run(backend, t), *TOL[torch.float64])


@pytest.mark.parametrize("backend", FAST)
def test_backend_chunks_continue(backend):
    t = make(2, 4, 3, 20, torch.float32, with_state=False)
    args = [t[n] for n in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    y, last = selective_scan(*args, delta_softplus=True, return_last_state=True, backend=backend)
    cut = lambda x, s: x[..., s] if x is not None and x.dim() == 3 else x  # noqa: E731
    y1, s1 = selective_scan(
        *[cut(a, slice(0, 7)) for a in args], delta_softplus=True, return_last_state=True, backend=backend
    )
    y2, s2 = selective_scan(
        *[cut(a, slice(7, None)) for a in args],
        delta_softplus=True,
        return_last_state=True,
        initial_state=s1,
        backend=backend,
    )
    torch.testing.assert_close(torch.cat([y1, y2], -1), y)
    torch.testing.assert_close(s2, last)


def test_autocast_keeps_parameters_fp32():
    t = make(1, 3, 2, 5, torch.float32, with_state=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y, last = selective_scan(
            t["u"],
            t["delta"],
            t["A"],
            t["B"],
            t["C"],
            t["D"],
            t["z"],
            t["delta_bias"],
            delta_softplus=True,
            return_last_state=True,
            backend="auto",
        )
    assert y.dtype == torch.float32 and last.dtype == torch.float32


def test_auto_picks_compiled_backend_on_cpu():
    assert resolve_backend("auto", "cpu") == "numba"


def test_cuda_backend_explains_what_it_needs():
    from mambaspike.ssm.scan import _mamba_ssm_fn

    if _mamba_ssm_fn() is None:
        with pytest.raises(ImportError, match="mamba-ssm"):
            resolve_backend("cuda", "cpu")
    else:
        with pytest.raises(ValueError, match="GPU tensors"):
            resolve_backend("cuda", "cpu")


def test_models_default_to_auto_and_match_the_reference_backend():
    from mambaspike.models.config import ModelConfig
    from mambaspike.models.registry import build_model
    from mambaspike.ssm.mamba import MambaConfig

    assert MambaConfig().scan_backend == "auto" and ModelConfig().scan_backend == "auto"
    x = torch.rand(12, 2, 3)
    outs = []
    for backend in ("reference", "auto"):
        torch.manual_seed(0)
        model = build_model(
            ModelConfig(name="mamba", input_shape=(3,), channels=(8,), d_model=16, n_layers=2, scan_backend=backend)
        )
        y = model(x)
        y.square().sum().backward()
        outs.append((y.detach(), {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-4, atol=1e-5)
    for name, g in outs[0][1].items():
        torch.testing.assert_close(outs[1][1][name], g, rtol=1e-4, atol=1e-5, msg=name)
