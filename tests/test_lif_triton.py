"""The Triton LIF kernel against the reference loop: on a GPU where there is one, else in Triton's CPU
interpreter (``TRITON_INTERPRET=1`` for this module only: the ``triton_interpreter`` fixture). Skipped
without triton, which is not a dependency (CPU installs do not have it)."""

import importlib.util
import itertools

import pytest
import torch

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed (not a dependency)", allow_module_level=True)

from mambaspike import neurons
from mambaspike.neurons import lif_fast
from mambaspike.neurons.functional import LIFParams, lif_multistep
from mambaspike.neurons.lif_fast import lif_multistep_fast
from mambaspike.neurons.modules import LIF
from mambaspike.neurons.surrogate import SURROGATES, make_surrogate

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TRITON_KERNELS = ("lif_triton",)
pytestmark = pytest.mark.usefixtures("triton_interpreter")


def _case(T, shape, dtype, seed, cfg, surrogate="atan", backend="triton", scalar_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(T, *shape, generator=g, dtype=dtype) * 1.2 + 0.4).to(DEVICE).requires_grad_()
    v0 = (torch.randn(*shape, generator=g, dtype=dtype) * 0.5).to(DEVICE).requires_grad_()
    gs = torch.randn(T, *shape, generator=g, dtype=dtype).to(DEVICE)
    w = torch.tensor(1.3, dtype=dtype, device=DEVICE, requires_grad=True)
    vth = torch.tensor(0.9, dtype=dtype, device=DEVICE, requires_grad=True)
    p = LIFParams(torch.sigmoid(w), vth, **cfg)
    sf = make_surrogate(surrogate).to(device=DEVICE, dtype=dtype)
    if backend == "reference":
        s, v = lif_multistep(x, v0, p, sf)
    else:
        s, v = lif_multistep_fast(x, v0, p, sf, backend=backend)
    if scalar_grad:
        (s.sum() + v.sum()).backward()
    else:
        torch.autograd.backward([s, v], [gs, torch.ones_like(v)])
    return [s.detach(), v.detach(), x.grad, v0.grad, w.grad, vth.grad]


def _same(a, b, dtype):
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for u, v in zip(a[2:], b[2:]):
        torch.testing.assert_close(u, v, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, float(v.abs().max())))


CONFIGS = [
    dict(soft_reset=s, detach_reset=d, decay_input=i, v_reset=0.0 if s else -0.2)
    for s, d, i in itertools.product([False, True], repeat=3)
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_triton_equals_reference(cfg, dtype):
    _same(
        _case(9, (3, 100), dtype, 0, cfg, backend="triton"),
        _case(9, (3, 100), dtype, 0, cfg, backend="reference"),
        dtype,
    )


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_triton_every_surrogate_and_broadcast_gradient(surrogate):
    cfg = dict(soft_reset=True, detach_reset=False, decay_input=False)
    for scalar in (False, True):
        a = _case(6, (300,), torch.float64, 1, cfg, surrogate, "triton", scalar)
        b = _case(6, (300,), torch.float64, 1, cfg, surrogate, "reference", scalar)
        _same(a, b, torch.float64)


@pytest.mark.parametrize("T", [1, 2, 40])
def test_triton_lengths(T):
    cfg = dict(soft_reset=False, detach_reset=False, decay_input=True)
    _same(
        _case(T, (5, 7), torch.float32, T, cfg, backend="triton"),
        _case(T, (5, 7), torch.float32, T, cfg, backend="reference"),
        torch.float32,
    )


def test_triton_self_check_passes():
    p = LIFParams(torch.tensor(0.8), torch.tensor(1.0))
    assert lif_fast._triton_self_check(torch.device(DEVICE), torch.float32, p, neurons.ATan())
    with torch.no_grad():  # auto's first GPU call may come from an inference forward
        assert lif_fast._triton_self_check(torch.device(DEVICE), torch.float32, p, neurons.ATan())
    assert LIF().backend == "auto"
