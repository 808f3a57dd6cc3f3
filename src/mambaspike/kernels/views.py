"""NumPy views of tensors for the compiled kernels (kept between calls), and NumPy-allocated outputs.

The fused inference paths pass a dozen parameters to their kernels per call, and at batch 1 making a
fresh ``tensor.detach().numpy()`` for each would cost more than much of the arithmetic. A view shares
the tensor's memory, so in-place changes (``add_``, optimiser steps, ``.data.mul_``) are seen through
it; it is reused only while the tensor object is alive and still has the same storage address,
shape and strides -- replacing ``.data`` or the tensor itself makes a new view. (The cached view
keeps the old storage alive, so a new storage cannot take its address.)
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

_VIEWS: dict = {}  # id(tensor) -> (weakref to tensor, data_ptr, shape, strides, view)


def numpy_view(t: torch.Tensor, dtype: torch.dtype | None = None):
    """``t`` (detached) as a NumPy array of ``dtype`` (default: its own); a copy where the dtype
    differs or ``t`` is not contiguous (not kept), else a view (kept, see the module docstring)."""
    if (dtype is not None and t.dtype != dtype) or not t.is_contiguous():
        return t.detach().to(dtype or t.dtype).contiguous().numpy()
    key = id(t)
    hit = _VIEWS.get(key)
    if hit is not None and hit[0]() is t and hit[1] == t.data_ptr() and hit[2] == t.shape and hit[3] == t.stride():
        return hit[4]
    view = t.detach().numpy()
    if len(_VIEWS) > 4096:  # entries of dead tensors
        for k in [k for k, v in _VIEWS.items() if v[0]() is None]:
            del _VIEWS[k]
    _VIEWS[key] = (weakref.ref(t), t.data_ptr(), t.shape, t.stride(), view)
    return view


def np_dtype(dtype: torch.dtype):
    """The NumPy scalar type of a float32/float64 kernel call."""
    return np.float32 if dtype == torch.float32 else np.float64


def empty_like_numpy(shape, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU float32/float64 tensor in memory allocated by NumPy.

    NumPy asks Linux for transparent huge pages on large allocations (``madvise(MADV_HUGEPAGE)``);
    PyTorch's CPU allocator does not unless ``THP_MEM_ALLOC_ENABLE=1``. The kernels write every
    element of these outputs once, so first-touch page faults would otherwise cost about as much as
    the kernels themselves (512 times fewer faults with 2 MiB pages).
    """
    return torch.from_numpy(np.empty(shape, dtype=np_dtype(dtype)))
