"""Small helpers that write result rows as CSV and Markdown tables, and aggregate seeds (mean ± std)."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path


def fmt(v, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` significant figures, None as an em dash."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def markdown_table(rows: list[dict], columns: list[str] | None = None, headers: dict | None = None) -> str:
    """GitHub-flavoured Markdown table of ``rows`` (dicts), one column per key in ``columns``."""
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])
    headers = headers or {}
    head = "| " + " | ".join(headers.get(c, c) for c in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"


def write_csv(path: str | Path, rows: list[dict], columns: list[str] | None = None) -> None:
    columns = columns or list(rows[0]) if rows else []
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def mean_std(values: list) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the non-None values (std None for fewer than 2)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def pm(mean: float | None, std: float | None, scale: float = 1.0, digits: int = 4) -> str:
    """``"mean ± std"`` (or just the mean for one seed), values multiplied by ``scale``."""
    if mean is None:
        return "—"
    if std is None:
        return f"{mean * scale:.{digits}g}"
    return f"{mean * scale:.{digits}g} ± {std * scale:.2g}"


__all__ = ["fmt", "markdown_table", "write_csv", "mean_std", "pm"]
