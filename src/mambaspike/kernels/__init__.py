"""Every compiled kernel (numba on CPU, Triton on CUDA) and the one registry that loads them.

Each kernel is a module of this package, listed in :data:`KERNELS`. A fast path asks for it with
:func:`load` (lazily imported and compiled once; ``None`` where it cannot be had) and reports a kernel
that fails when called with :func:`failed`; both record why, and warn once per kernel. Beside each fast
path stays its plain PyTorch reference, which is what runs when a kernel is unavailable.

``MAMBASPIKE_KERNELS`` (read at every call, so tests may change it) chooses what a failure does:

- ``auto`` (default): fall back to the reference with one ``RuntimeWarning`` per kernel;
- ``strict``: a kernel that fails to import or compile raises :class:`KernelError` (CI runs so, and a
  broken kernel can no longer hide behind a silent fallback);
- ``off``: never load a kernel; every path runs its reference (no warning).

A kernel whose optional package is simply not installed (Triton on a CPU-only machine) is unavailable,
not broken: ``strict`` raises only where the package is importable, or required (numba).

:func:`observed` is the one check a fast path makes for "would someone miss the calls I skip?"
(forward hooks on the modules it replaces, global hooks, tracing for export); :func:`needs_graph`
tells whether autograd would record anything.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from mambaspike.errors import MambaspikeError

MODES = ("auto", "strict", "off")
ENV = "MAMBASPIKE_KERNELS"


class KernelError(MambaspikeError, RuntimeError):
    """A compiled kernel failed to load or compile under ``MAMBASPIKE_KERNELS=strict``."""


@dataclass(frozen=True)
class Kernel:
    module: str  # module of this package
    package: str  # the compiler it needs
    required: bool  # a declared dependency of mambaspike (a missing one is an error under strict)
    fallback: str  # what runs instead


KERNELS: dict[str, Kernel] = {
    "lif_numba": Kernel("mambaspike.kernels.lif_numba", "numba", True, "the reference LIF loop"),
    "alif_numba": Kernel("mambaspike.kernels.alif_numba", "numba", True, "the reference ALIF loop"),
    "rlif_numba": Kernel("mambaspike.kernels.rlif_numba", "numba", True, "the reference recurrent LIF loop"),
    "lif_triton": Kernel("mambaspike.kernels.lif_triton", "triton", False, "the reference LIF loop"),
    "scan_numba": Kernel("mambaspike.kernels.scan_numba", "numba", True, "the reference selective-scan loop"),
    "scan_triton": Kernel("mambaspike.kernels.scan_triton", "triton", False, "the parallel selective scan"),
    "mamba_numba": Kernel("mambaspike.kernels.mamba_numba", "numba", True, "the unfused Mamba block forward"),
    "dvs_numba": Kernel("mambaspike.kernels.dvs_numba", "numba", True, "the per-pixel NumPy DVS simulation"),
    "frontend_numba": Kernel(
        "mambaspike.kernels.frontend_numba", "numba", True, "the block-by-block front-end forward"
    ),
}

_loaded: dict[str, object] = {}
_errors: dict[str, str] = {}
_warned: set[str] = set()


def mode() -> str:
    """The current ``MAMBASPIKE_KERNELS`` mode (``auto`` when unset)."""
    m = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if m not in MODES:
        raise KernelError(f"{ENV}={m!r}: expected one of {', '.join(MODES)}")
    return m


def _entry(name: str) -> Kernel:
    try:
        return KERNELS[name]
    except KeyError:
        raise KeyError(f"unknown kernel {name!r}; registered: {', '.join(KERNELS)}") from None


def _fail(name: str, reason: str, exc: BaseException | None, stacklevel: int) -> None:
    """Record why ``name`` is unusable; raise under strict (where it counts), else warn once."""
    k = _entry(name)
    _errors[name] = reason
    _loaded.pop(name, None)
    missing_optional = not k.required and importlib.util.find_spec(k.package) is None
    if mode() == "strict" and not missing_optional:
        raise KernelError(f"kernel {name!r} failed under {ENV}=strict: {reason}") from exc
    if name not in _warned and not missing_optional:
        _warned.add(name)
        warnings.warn(
            f"mambaspike: the compiled kernel {name!r} is unavailable ({reason}); using {k.fallback} "
            f"instead, which is slower. Set {ENV}=strict to make this an error.",
            RuntimeWarning,
            stacklevel=stacklevel,
        )


def load(name: str, stacklevel: int = 3):
    """The kernel module ``name`` (imported, and warmed up where it defines ``warm_up()``), or ``None``
    where it is unavailable (mode ``off``, a missing package, a failed import or compilation)."""
    if mode() == "off":
        return None
    mod = _loaded.get(name)
    if mod is not None:
        return mod
    if name in _errors:
        if mode() == "strict":
            _fail(name, _errors[name], None, stacklevel + 1)
        return None
    k = _entry(name)
    torch_threads = torch.get_num_threads()  # numba's OpenMP layer may reset it when it starts
    try:
        mod = importlib.import_module(k.module)
        warm_up = getattr(mod, "warm_up", None)
        if warm_up is not None:
            warm_up()
    except Exception as e:  # ImportError, numba/llvmlite/triton compile errors
        _fail(name, f"{type(e).__name__}: {e}", e, stacklevel + 1)
        return None
    finally:
        torch.set_num_threads(torch_threads)
    _loaded[name] = mod
    return mod


def available(name: str) -> bool:
    """Whether :func:`load` gives the kernel (under ``strict`` a broken kernel raises instead)."""
    return load(name, stacklevel=4) is not None


def is_compile_error(e: BaseException) -> bool:
    """Whether ``e`` comes from the compilers (numba, llvmlite, triton) rather than from the caller."""
    return type(e).__module__.split(".")[0] in ("numba", "llvmlite", "triton")


def failed(name: str, e: BaseException) -> bool:
    """After ``e`` from calling kernel ``name``: ``True`` where it is a compiler failure, which disables
    the kernel for the rest of the process (one warning; :class:`KernelError` under ``strict``) so the
    caller runs its reference; ``False`` where the caller should re-raise ``e``."""
    if not is_compile_error(e):
        return False
    _fail(name, f"{type(e).__name__}: {e}", e, stacklevel=4)
    return True


def reason(name: str) -> str | None:
    """Why kernel ``name`` is unavailable (``None`` when it loaded or was not tried yet)."""
    if mode() == "off":
        return f"{ENV}=off"
    return _errors.get(name)


def status() -> dict[str, str]:
    """``{kernel: "loaded" | "not loaded yet" | why it is unavailable}``."""
    out = {}
    for name in KERNELS:
        if name in _loaded:
            out[name] = "loaded"
        else:
            out[name] = reason(name) or "not loaded yet"
    return out


def reset(name: str | None = None) -> None:
    """Forget what is known of ``name`` (every kernel by default), so the next :func:`load` tries again."""
    for n in [name] if name else list(KERNELS):
        _loaded.pop(n, None)
        _errors.pop(n, None)
        _warned.discard(n)


def needs_graph(*tensors: torch.Tensor) -> bool:
    """Whether autograd would record an operation on ``tensors`` (grad mode on and one requires grad)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def tracing() -> bool:
    """Whether the model is being traced (``torch.jit.trace``, ONNX export)."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def observed(*modules: nn.Module | None) -> bool:
    """Whether something would miss calls that a fused path skips: a global forward (pre-)hook, a forward
    (pre-)hook on one of ``modules`` or any module inside them, or tracing for export.

    Reads the modules' ``_modules`` dicts directly (``nn.Module.modules()`` is slower, and this runs on
    every inference call)."""
    mm = nn.modules.module
    if mm._global_forward_hooks or mm._global_forward_pre_hooks:
        return True
    stack = list(modules)
    while stack:
        m = stack.pop()
        if m is None:
            continue
        if m._forward_hooks or m._forward_pre_hooks:
            return True
        children = m._modules
        if children:
            stack.extend(children.values())
    return tracing()


__all__ = [
    "ENV",
    "KERNELS",
    "MODES",
    "Kernel",
    "KernelError",
    "available",
    "failed",
    "is_compile_error",
    "load",
    "mode",
    "needs_graph",
    "observed",
    "reason",
    "reset",
    "status",
    "tracing",
]
