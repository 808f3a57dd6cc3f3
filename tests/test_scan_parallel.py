"""The ``parallel`` selective scan (torch operations) and the Triton kernel against the reference loop:
outputs, last state and every input gradient; and how ``auto`` picks a backend on CUDA.

The Triton cases run on a GPU where there is one, else in Triton's CPU interpreter
(``TRITON_INTERPRET=1`` for the Triton cases only); they are skipped without triton, which is not a
dependency."""

import importlib.util
import warnings

import pytest
import torch

from mambaspike.ssm import scan
from mambaspike.ssm.scan import resolve_backend, selective_scan, selective_scan_parallel
from test_scan_backends import make, run

HAS_TRITON = importlib.util.find_spec("triton") is not None
TRITON_KERNELS = ("scan_triton",)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
REL = {torch.float32: 1e-5, torch.float64: 1e-12}


def max_rel(ref, fast) -> dict[str, float]:
    """Per result: the largest difference relative to the reference's largest magnitude."""
    pairs = {"y": (fast[0], ref[0]), "last state": (fast[1], ref[1])}
    assert ref[2].keys() == fast[2].keys()
    pairs.update({f"grad {k}": (fast[2][k], ref[2][k]) for k in ref[2]})
    out = {}
    for name, (a, b) in pairs.items():
        assert a.shape == b.shape and a.dtype == b.dtype, name
        assert torch.isfinite(a).all(), name
        out[name] = float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp(min=1e-30))
    return out


def assert_close_rel(ref, fast, dtype):
    errs = max_rel(ref, fast)
    bad = {k: v for k, v in errs.items() if v > REL[dtype]}
    assert not bad, f"relative errors over {REL[dtype]:g}: {bad}"


def to(t, device):
    return {k: (v.detach().to(device).requires_grad_() if v is not None else None) for k, v in t.items()}


# ---------------------------------------------------------------------------------------- parallel


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("L", [1, 2, 3, 17, 64, 1024])
def test_parallel_matches_reference(L, dtype, with_state):
    t = make(2, 3, 4, L, dtype, seed=L, with_state=with_state)
    assert_close_rel(run("reference", t), run("parallel", t), dtype)


@pytest.mark.parametrize("chunk", [1, 3, 5, 64])
def test_parallel_any_chunk_size(chunk, monkeypatch):
    """Chunks that do not divide L (padding), one step per chunk, one chunk for the whole sequence."""
    monkeypatch.setattr(scan, "PARALLEL_CHUNK", chunk)
    t = make(2, 3, 2, 23, torch.float64, seed=chunk)
    assert_close_rel(run("reference", t), run("parallel", t), torch.float64)


def test_parallel_without_optional_inputs():
    t = make(3, 5, 2, 9, torch.float64, with_state=False, with_z=False)
    t["D"] = None
    t["delta_bias"] = None
    assert_close_rel(run("reference", t, softplus=False), run("parallel", t, softplus=False), torch.float64)


def test_parallel_decays_that_underflow_stay_finite():
    """exp(delta * A) far below float32's smallest number: zeros, no inf/NaN, the reference's values."""
    t = make(1, 3, 4, 40, torch.float32, seed=3)
    with torch.no_grad():
        t["delta"].mul_(0).add_(60.0)  # softplus(60 + bias) ~ 60, A in [-2.05, -0.05]: down to exp(-120)
        t["A"].mul_(10)
    assert_close_rel(run("reference", t), run("parallel", t), torch.float32)


def test_parallel_half_precision_inputs_keep_fp32_state():
    t = make(2, 4, 3, 33, torch.float32, seed=5)
    t16 = {k: (v.detach().bfloat16().requires_grad_() if v is not None else None) for k, v in t.items()}
    ref, par = run("reference", t16), run("parallel", t16)
    assert par[0].dtype == torch.bfloat16 and par[1].dtype == torch.float32
    torch.testing.assert_close(par[0].float(), ref[0].float(), rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(par[1], ref[1], rtol=1e-5, atol=1e-5)
    for k in ref[2]:
        assert par[2][k].dtype == t16[k].dtype, k
        torch.testing.assert_close(par[2][k].float(), ref[2][k].float(), rtol=2e-2, atol=2e-2, msg=k)


def test_parallel_chunks_continue():
    t = make(2, 4, 3, 50, torch.float32, with_state=False)
    args = [t[n] for n in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    y, last = selective_scan(*args, delta_softplus=True, return_last_state=True, backend="parallel")

    def cut(x, s):
        return x[..., s] if x is not None and x.dim() == 3 else x

    y1, s1 = selective_scan(
        *[cut(a, slice(0, 37)) for a in args], delta_softplus=True, return_last_state=True, backend="parallel"
    )
    y2, s2 = selective_scan(
        *[cut(a, slice(37, None)) for a in args],
        delta_softplus=True,
        return_last_state=True,
        initial_state=s1,
        backend="parallel",
    )
    torch.testing.assert_close(torch.cat([y1, y2], -1), y)
    torch.testing.assert_close(s2, last)


def test_parallel_rejects_a_bad_chunk():
    t = make(1, 1, 1, 3, torch.float32)
    with pytest.raises(ValueError, match="chunk must be >= 1, got 0"):
        selective_scan_parallel(t["u"], t["delta"], t["A"], t["B"], t["C"], chunk=0)


def test_model_on_the_parallel_backend_matches_the_reference():
    from mambaspike.models.config import ModelConfig
    from mambaspike.models.registry import build_model

    x = torch.rand(12, 2, 3)
    outs = []
    for backend in ("reference", "parallel"):
        torch.manual_seed(0)
        model = build_model(
            ModelConfig(name="mamba", input_shape=(3,), channels=(8,), d_model=16, n_layers=2, scan_backend=backend)
        )
        y = model(x)
        y.square().sum().backward()
        outs.append((y.detach(), {n: p.grad for n, p in model.named_parameters()}))
    torch.testing.assert_close(outs[1][0], outs[0][0], rtol=1e-5, atol=1e-6)
    for name, g in outs[0][1].items():
        torch.testing.assert_close(outs[1][1][name], g, rtol=1e-5, atol=1e-6, msg=name)


# ------------------------------------------------------------------------------------------ triton

needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (not a dependency)")


def _triton_case(L, dtype, with_state, seed=None, **kw):
    t = make(2, 3, 4, L, dtype, seed=L if seed is None else seed, with_state=with_state, **kw)
    ref = run("reference", t)
    fast = run("triton", to(t, DEVICE))
    moved = (fast[0].cpu(), fast[1].cpu(), {k: v.cpu() for k, v in fast[2].items()})
    return ref, moved


@needs_triton
@pytest.mark.usefixtures("triton_interpreter")
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("L", [1, 2, 3, 17])
def test_triton_matches_reference(L, with_state):
    assert_close_rel(*_triton_case(L, torch.float32, with_state), torch.float32)


@needs_triton
@pytest.mark.slow
@pytest.mark.usefixtures("triton_interpreter")
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("L", [64, 1024])
def test_triton_matches_reference_long(L, with_state):
    assert_close_rel(*_triton_case(L, torch.float32, with_state), torch.float32)


@needs_triton
@pytest.mark.usefixtures("triton_interpreter")
def test_triton_float64_odd_sizes_and_no_optional_inputs():
    """float64 throughout; 37 channels (two blocks, the second partly masked), 5 states (padded to 8)."""
    t = make(2, 37, 5, 6, torch.float64, seed=11, with_z=False)
    t["D"] = None
    t["delta_bias"] = None
    ref = run("reference", t, softplus=False)
    fast = run("triton", to(t, DEVICE), softplus=False)
    assert_close_rel(ref, (fast[0].cpu(), fast[1].cpu(), {k: v.cpu() for k, v in fast[2].items()}), torch.float64)


@needs_triton
@pytest.mark.usefixtures("triton_interpreter")
def test_triton_self_check_passes():
    scan._triton_checked.clear()
    try:
        assert scan._triton_self_check(torch.device(DEVICE))
        with torch.inference_mode():  # auto's first GPU call may come from an inference forward
            assert scan._triton_self_check(torch.device(DEVICE))
        assert resolve_backend("triton", DEVICE) == "triton"
    finally:
        scan._triton_checked.clear()


# ------------------------------------------------------------------ which backend auto picks on CUDA


@pytest.fixture
def gpu(monkeypatch):
    """Set what is available: ``gpu(mamba_ssm=..., triton=..., triton_ok=...)``."""
    scan._triton_checked.clear()

    def set_(mamba_ssm: bool, triton: bool, triton_ok: bool = True):
        monkeypatch.setattr(scan, "_mamba_ssm_fn", (lambda: object()) if mamba_ssm else (lambda: None))
        monkeypatch.setattr(scan, "triton_available", lambda: triton)
        monkeypatch.setattr(scan, "_triton_self_check", lambda device: triton_ok)

    yield set_
    scan._triton_checked.clear()


@pytest.mark.parametrize(
    "mamba_ssm, triton, triton_ok, without_state, with_state",
    [
        (True, True, True, "cuda", "triton"),
        (True, False, True, "cuda", "parallel"),
        (False, True, True, "triton", "triton"),
        (False, True, False, "parallel", "parallel"),
        (False, False, True, "parallel", "parallel"),
    ],
)
def test_auto_on_cuda_never_picks_the_loop(gpu, mamba_ssm, triton, triton_ok, without_state, with_state):
    gpu(mamba_ssm, triton, triton_ok)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the warning of a failed self-check: its own test
        assert resolve_backend("auto", "cuda") == without_state
        assert resolve_backend("auto", "cuda:0", initial_state=True) == with_state
        if mamba_ssm:  # named, with an initial state mamba-ssm cannot take: what auto runs instead
            assert resolve_backend("cuda", "cuda", initial_state=True) == with_state


def test_auto_on_cpu_is_unchanged(gpu):
    gpu(True, True)
    assert resolve_backend("auto", "cpu") in ("numba", "reference")


def test_failed_triton_self_check_warns_once_per_device(gpu):
    gpu(False, True, triton_ok=False)
    with pytest.warns(RuntimeWarning, match="Triton selective-scan kernel is not used on cuda:0"):
        assert resolve_backend("auto", "cuda:0") == "parallel"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_backend("auto", "cuda:0") == "parallel"


def test_triton_self_check_that_raises_counts_as_failed(gpu, monkeypatch):
    gpu(False, True)

    def boom(device):
        raise RuntimeError("no kernel image for this GPU")

    monkeypatch.setattr(scan, "_triton_self_check", boom)
    with pytest.warns(RuntimeWarning, match="no kernel image for this GPU"):
        assert resolve_backend("auto", "cuda") == "parallel"


def test_named_triton_explains_what_it_needs(gpu, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="backend 'triton' needs GPU tensors, got cpu"):
        resolve_backend("triton", "cpu")
    gpu(False, False)
    with pytest.raises(ImportError, match="pip install triton"):
        resolve_backend("triton", "cuda")


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match="unknown backend 'fast'.*parallel.*triton"):
        resolve_backend("fast", "cpu")
