"""``mambaspike bench KIND``: performance measurements, ratios taken within one run.

Each kind is a module of this package named in ``BENCHES``; it provides

- ``DESCRIPTION``: one line for ``--help``;
- ``add_arguments(parser)``: its own options;
- ``run(args) -> Iterator[dict]``: one row per measurement (plain JSON values).

The CLI adds :func:`environment` (threads, device, versions) to every row and prints the rows as a
table, or as one JSON object per line with ``--json``. Performance claims live here and in
``benchmarks/``, never as timed assertions in tests.
"""

from __future__ import annotations

import importlib
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

# kind -> module (imported on use, so a missing optional dependency only affects its own kind)
BENCHES: dict[str, str] = {
    "scan": "mambaspike.bench.scan",
    "model": "mambaspike.bench.model",
    "stream": "mambaspike.bench.stream",
    "lif": "mambaspike.bench.lif",
    "gpu": "mambaspike.bench.gpu",
}


def load(kind: str):
    return importlib.import_module(BENCHES[kind])


def environment(device: str | torch.device = "cpu") -> dict:
    """Where a measurement ran: torch threads, device and versions."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return {"threads": torch.get_num_threads(), "device": name, "torch": torch.__version__}


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def time_it(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, device=None) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls, after ``warmup`` calls."""
    device = torch.device(device) if device is not None else None
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_alternating(fns: dict[str, Callable[[], object]], calls: int = 50, warmup: int = 5) -> dict[str, list[float]]:
    """Wall times in seconds (sorted) of each ``fns[name]()`` over ``calls`` rounds after ``warmup``;
    the functions alternate call by call, so load from other processes hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(warmup + calls):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: sorted(ts) for name, ts in times.items()}


def alternating_ms(fns: dict[str, Callable[[], object]], threads: list[int], calls: int = 50, warmup: int = 5):
    """For each thread count (``torch.set_num_threads``): :func:`time_alternating` of ``fns``; yields
    ``(threads, name, median_ms, p10_ms)``."""
    for n in threads:
        torch.set_num_threads(n)
        for name, ts in time_alternating(fns, calls, warmup).items():
            yield n, name, statistics.median(ts) * 1e3, ts[len(ts) // 10] * 1e3


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory_mb(fn: Callable[[], object], device=None) -> float | None:
    """Peak memory that ``fn()`` adds on top of what is allocated before it, in MB.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU (Linux): the process's peak resident set
    (``VmHWM``, reset through ``/proc/self/clear_refs``) minus its resident set before the call.
    ``None`` where neither is available.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        return None
    before = _status_kb("VmRSS")
    fn()
    peak = _status_kb("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) / 1024


def format_table(rows: list[dict]) -> str:
    """Rows as an aligned plain-text table (columns: the union of keys, in first-seen order)."""
    if not rows:
        return "(no measurements)"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]

    def cell(v) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    table = [cols] + [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
