"""Running compiled kernels over ranges of work on several threads (one pool for every kernel).

The numba kernels of this package (fused LIF, recurrent LIF; the fused Mamba inference kernels share
the design but run on the caller's thread) are compiled with ``nogil=True`` and take a range
``[b0, b1)`` of work blocks as their last two arguments; they are not ``parallel=True``: numba's
OpenMP pool and PyTorch's (a second libgomp) spin-wait after each parallel region, and on a machine
with few cores each hand-over between them costs milliseconds. Instead, :func:`run_ranges` hands
ranges to Python worker threads, which block (not spin) while idle.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

_pool_state: dict = {"pool": None, "workers": 0, "pid": None}


def _pool(workers: int) -> ThreadPoolExecutor:
    """The worker threads (re-created after a fork or a change of thread count)."""
    st = _pool_state
    if st["pool"] is None or st["workers"] != workers or st["pid"] != os.getpid():
        if st["pool"] is not None and st["pid"] == os.getpid():
            st["pool"].shutdown(wait=False)
        st["pool"] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mambaspike-kernel")
        st["workers"], st["pid"] = workers, os.getpid()
    return st["pool"]


def run_ranges(kernel, args: tuple, bounds: list[int], threads: int) -> None:
    """Run ``kernel(*args, bounds[c], bounds[c + 1])`` for every range ``c`` on up to ``threads`` threads.

    The calling thread claims ranges one at a time and runs them; ``threads - 1`` pool workers join
    in as soon as they are scheduled. The caller waits only for ranges a worker has claimed, never
    for a worker to start: right after a GEMM, torch's OpenMP threads spin for milliseconds, and on
    a loaded machine a worker may not get a core in time, in which case the caller does everything
    (nearly) alone. An exception in a worker is raised in the caller."""
    n = len(bounds) - 1
    if threads <= 1 or n <= 1:
        if n >= 1:
            kernel(*args, bounds[0], bounds[-1])
        return
    counter = itertools.count()
    cv = threading.Condition()
    busy = [0]  # ranges claimed by workers and not finished
    errors: list = []

    def claim(worker: bool) -> int:
        with cv:
            c = next(counter)
            if worker and c < n:
                busy[0] += 1
            return c

    def work():
        while (c := claim(True)) < n:
            try:
                kernel(*args, bounds[c], bounds[c + 1])
            except BaseException as e:  # raised in the caller below
                errors.append(e)
            finally:
                with cv:
                    busy[0] -= 1
                    cv.notify_all()

    pool = _pool(threads - 1)
    for _ in range(min(threads, n) - 1):
        pool.submit(work)
    while (c := claim(False)) < n:
        kernel(*args, bounds[c], bounds[c + 1])
    with cv:
        cv.wait_for(lambda: busy[0] == 0)
    if errors:
        raise errors[0]


def run_blocks(kernel, args: tuple, nblk: int, work_items: int) -> None:
    """Run ``kernel(*args, b0, b1)`` over the blocks ``[0, nblk)`` on ``torch.get_num_threads()`` threads.

    Chunks of blocks are handed out one at a time (balanced when other processes share the cores)
    by :func:`run_ranges`. Below ~1M elements one thread does it all.
    """
    threads = torch.get_num_threads()
    nchunk = min(nblk, 4 * threads)
    if threads <= 1 or nchunk <= 1 or work_items < (1 << 20):
        kernel(*args, 0, nblk)
        return
    run_ranges(kernel, args, [c * nblk // nchunk for c in range(nchunk + 1)], threads)


__all__ = ["run_blocks", "run_ranges"]
