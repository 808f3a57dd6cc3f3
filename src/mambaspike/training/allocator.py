"""Keep freed large blocks in the process heap instead of handing them back to the kernel (glibc).

Training allocates and frees tensors of tens of megabytes on every step (a 34x34 front-end's
activations at batch 32 over 30 bins are 71 MB each). glibc serves a block above its mmap threshold
(dynamic, at most 32 MB by default) with a fresh ``mmap`` and unmaps it when the tensor is freed, so
every step pays the page faults of touching that memory anew. :func:`keep_freed_memory` raises the mmap
and trim thresholds to :data:`THRESHOLD` with ``mallopt``: such blocks then come from the heap and are
reused by the next step. Results are unchanged (the same arithmetic on other addresses); the process
keeps up to :data:`THRESHOLD` of freed memory for reuse. ``MAMBASPIKE_MALLOC=system`` leaves glibc's
defaults; elsewhere than glibc on Linux it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

from mambaspike.errors import ConfigError

THRESHOLD = 1 << 30  # bytes: blocks up to this size come from the heap; this much free heap is kept
MODES = ("retain", "system")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
_applied: bool | None = None


def mode() -> str:
    """``MAMBASPIKE_MALLOC`` (``retain``, the default, or ``system``)."""
    value = os.environ.get("MAMBASPIKE_MALLOC", "").strip().lower() or "retain"
    if value not in MODES:
        raise ConfigError(f"MAMBASPIKE_MALLOC={value!r}: expected one of {', '.join(MODES)}")
    return value


def _mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to :data:`THRESHOLD` once per process (see the module
    docstring); whether they are raised. ``False`` under ``MAMBASPIKE_MALLOC=system`` or without glibc."""
    global _applied
    if _applied is None:
        mallopt = _mallopt() if mode() == "retain" else None
        _applied = bool(mallopt and mallopt(_M_MMAP_THRESHOLD, THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, THRESHOLD))
    return _applied
