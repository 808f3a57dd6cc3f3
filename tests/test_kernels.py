"""The kernel registry: one loader for every compiled kernel, one warning per kernel, MAMBASPIKE_KERNELS.

A failure is induced where it happens in practice: the import (or its compilation at warm-up) raising
a compiler error, or a loaded kernel raising one when called. ``auto`` falls back to the reference
with one warning, ``strict`` raises :class:`KernelError`, ``off`` runs the reference silently."""

from __future__ import annotations

import importlib
import warnings

import numba.core.errors
import pytest
import torch
from torch import nn

from mambaspike import kernels
from mambaspike.kernels import KernelError
from mambaspike.neurons import LIF, lif_multistep
from mambaspike.neurons.surrogate import ATan
from mambaspike.ssm.mamba import MambaBackbone, MambaConfig
from mambaspike.ssm.scan import resolve_backend, selective_scan


@pytest.fixture
def fresh(monkeypatch):
    """Forget the registry's state before and after (other tests see loaded kernels again)."""
    kernels.reset()
    yield monkeypatch
    kernels.reset()


def break_import(monkeypatch, name: str):
    """Make importing kernel ``name`` fail as a compilation failure does."""
    target = kernels.KERNELS[name].module
    real = importlib.import_module

    def fake(mod, *a, **k):
        if mod == target:
            raise numba.core.errors.TypingError(f"induced failure of {name}")
        return real(mod, *a, **k)

    monkeypatch.setattr(kernels.importlib, "import_module", fake)


def unavailable_warnings(w, name):
    return [x for x in w if issubclass(x.category, RuntimeWarning) and repr(name) in str(x.message)]


def lif_input():
    return torch.randn(8, 3, 5, generator=torch.Generator().manual_seed(0)) * 2


def test_every_registered_kernel_loads_here():
    """numba is a declared dependency: every CPU kernel must load (no skip hides a broken one)."""
    for name, k in kernels.KERNELS.items():
        if k.package == "numba":
            assert kernels.load(name) is not None, f"{name}: {kernels.reason(name)}"


def test_mode_is_validated(fresh):
    fresh.setenv(kernels.ENV, "sometimes")
    with pytest.raises(KernelError, match="MAMBASPIKE_KERNELS='sometimes': expected one of auto, strict, off"):
        kernels.load("lif_numba")


def test_auto_falls_back_with_one_warning(fresh):
    fresh.setenv(kernels.ENV, "auto")
    break_import(fresh, "lif_numba")
    x = lif_input()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s1, v1 = LIF(tau=10.0)(x)
        s2, v2 = LIF(tau=10.0)(x)
    assert len(unavailable_warnings(w, "lif_numba")) == 1
    ref = lif_multistep(x, None, LIF(tau=10.0).params(), ATan())
    assert torch.equal(s1, ref[0]) and torch.equal(s2, ref[0]) and torch.equal(v1, ref[1])
    assert "induced failure" in kernels.reason("lif_numba")
    with pytest.raises(ImportError, match="lif_numba.*induced failure"):
        LIF(tau=10.0, backend="numba")(x)


def test_strict_turns_a_failed_import_into_an_error(fresh):
    fresh.setenv(kernels.ENV, "strict")
    break_import(fresh, "lif_numba")
    with pytest.raises(KernelError, match="'lif_numba' failed under MAMBASPIKE_KERNELS=strict.*induced failure"):
        LIF(tau=10.0)(lif_input())
    with pytest.raises(KernelError):  # and again: a recorded failure is not forgotten
        LIF(tau=10.0)(lif_input())


def test_strict_turns_a_failing_kernel_call_into_an_error(fresh):
    """A kernel that loads but fails to compile for a call (numba compiles per signature)."""
    mod = kernels.load("lif_numba")

    def broken(*a, **k):
        raise numba.core.errors.TypingError("induced failure at call time")

    fresh.setattr(mod, "lif_forward", broken)
    x = lif_input()
    fresh.setenv(kernels.ENV, "strict")
    with pytest.raises(KernelError, match="induced failure at call time"):
        LIF(tau=10.0)(x)
    kernels.reset()
    fresh.setenv(kernels.ENV, "auto")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s, _ = LIF(tau=10.0)(x)
        LIF(tau=10.0)(x)
    assert len(unavailable_warnings(w, "lif_numba")) == 1
    assert torch.equal(s, LIF(tau=10.0, backend="reference")(x)[0])


def test_an_error_of_the_caller_is_not_a_kernel_failure(fresh):
    mod = kernels.load("lif_numba")

    def broken(*a, **k):
        raise ValueError("a bug in the caller")

    fresh.setattr(mod, "lif_forward", broken)
    with pytest.raises(ValueError, match="a bug in the caller"):
        LIF(tau=10.0)(lif_input())
    assert kernels.reason("lif_numba") is None


def test_off_runs_every_reference_without_warning(fresh):
    fresh.setenv(kernels.ENV, "off")
    x = lif_input()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s, _ = LIF(tau=10.0)(x)
        assert resolve_backend("auto", "cpu") == "reference"
        assert kernels.status()["scan_numba"] == "MAMBASPIKE_KERNELS=off"
    assert torch.equal(s, LIF(tau=10.0, backend="reference")(x)[0])


@pytest.mark.parametrize("name", ["scan_numba", "rlif_numba", "mamba_numba", "frontend_numba"])
def test_each_fast_path_falls_back_alike(fresh, name):
    """Every loader goes through the registry: the same failure gives the same fallback and warning."""
    fresh.setenv(kernels.ENV, "auto")
    break_import(fresh, name)
    g = torch.Generator().manual_seed(0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        if name == "scan_numba":
            u, delta = torch.randn(1, 2, 5, generator=g), torch.rand(1, 2, 5, generator=g)
            A, B, C = (
                -torch.rand(2, 3, generator=g),
                torch.randn(1, 3, 5, generator=g),
                torch.randn(1, 3, 5, generator=g),
            )
            assert resolve_backend("auto", "cpu") == "reference"
            y = selective_scan(u, delta, A, B, C, backend="auto")
            assert torch.equal(y, selective_scan(u, delta, A, B, C, backend="reference"))
        elif name == "rlif_numba":
            x, W = torch.randn(6, 2, 4, generator=g) * 2, torch.randn(4, 4, generator=g) * 0.3
            s, _ = LIF(tau=10.0)(x, recurrent=W)
            assert torch.equal(s, LIF(tau=10.0, backend="reference")(x, recurrent=W)[0])
        elif name == "mamba_numba":
            m = MambaBackbone(MambaConfig(d_model=8, n_layers=1, d_state=4)).eval()
            with torch.no_grad():
                m(torch.randn(1, 5, 8, generator=g))
        else:
            from mambaspike.layers.frontend import SpikingFrontEnd

            fe = SpikingFrontEnd(3, channels=(4,), spatial=False, recurrent=False).eval()
            with torch.no_grad():
                fe(torch.randn(6, 1, 3, generator=g))
    assert len(unavailable_warnings(w, name)) == 1, [str(x.message) for x in w]


def test_a_missing_optional_compiler_is_not_a_failure(fresh):
    """Triton not installed (a CPU machine): unavailable, no warning, and no error even under strict."""
    import importlib.util

    if importlib.util.find_spec("triton") is not None:
        pytest.skip("triton is installed here")
    fresh.setenv(kernels.ENV, "strict")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.load("lif_triton") is None
    assert "triton" in kernels.reason("lif_triton")


def test_observed_sees_hooks_anywhere_and_tracing():
    outer = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))
    assert not kernels.observed(outer)
    h = outer[1][1].register_forward_pre_hook(lambda m, i: None)
    assert kernels.observed(outer) and not kernels.observed(outer[0])
    h.remove()
    g = nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        assert kernels.observed(outer[0]) and kernels.observed()
    finally:
        g.remove()
    seen = []

    def probe(x):
        seen.append(kernels.tracing())
        return x * 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.trace(probe, torch.ones(1), check_trace=False)
    assert seen == [True] and not kernels.tracing()


def test_needs_graph():
    a, b = torch.ones(1), torch.ones(1, requires_grad=True)
    assert not kernels.needs_graph(a) and kernels.needs_graph(a, b)
    with torch.no_grad():
        assert not kernels.needs_graph(b)
