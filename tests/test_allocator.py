"""``training.allocator``: with the thresholds raised, a large tensor comes from the heap (and its freed
memory is kept for the next one) instead of a fresh mmap; ``MAMBASPIKE_MALLOC=system`` keeps glibc's
defaults; a bad value is refused naming the variable. Each case runs in its own process (mallopt is
process-wide)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from mambaspike.errors import ConfigError
from mambaspike.training import allocator


def _glibc_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _glibc_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")

# mmapped bytes (hblkhd) and heap bytes in use (uordblks) while a 200 MB tensor is alive, then the heap's
# free bytes (fordblks) after it is freed; printed as "applied hblkhd uordblks fordblks"
PROBE = """
import ctypes
import torch
from mambaspike.training.allocator import keep_freed_memory

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
applied = keep_freed_memory()
x = torch.ones(50 * 2**20)  # 200 MB
during = libc.mallinfo2()
del x
after = libc.mallinfo2()
print(int(applied), during.hblkhd, during.uordblks, after.fordblks)
"""
MB = 2**20


def _probe(value: str | None) -> list[int]:
    env = {k: v for k, v in os.environ.items() if k != "MAMBASPIKE_MALLOC"}
    if value is not None:
        env["MAMBASPIKE_MALLOC"] = value
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return [int(v) for v in out.stdout.split()]


def test_retain_serves_large_tensors_from_the_heap_and_keeps_them():
    applied, mmapped, in_use, free_after = _probe(None)
    assert applied == 1
    assert mmapped < 200 * MB <= in_use  # the tensor lives in the heap, not in its own mapping
    assert free_after >= 200 * MB  # freed, kept for the next allocation


def test_system_keeps_glibcs_mmap_for_large_tensors():
    applied, mmapped, in_use, free_after = _probe("system")
    assert applied == 0
    assert mmapped >= 200 * MB > in_use
    assert free_after < 200 * MB  # unmapped on free


def test_bad_value_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("MAMBASPIKE_MALLOC", "jemalloc")
    with pytest.raises(ConfigError, match="MAMBASPIKE_MALLOC='jemalloc': expected one of retain, system"):
        allocator.mode()
