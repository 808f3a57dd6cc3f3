"""``mambaspike sweep``: the Spiking Mamba paper's MNIST hyper-parameter ablation grid (Miao, Table 1)
on any registered data set, trained by :func:`mambaspike.training.trainer.train`.

Each row changes one of: channels (the first patch block's width), time steps, patchifier blocks,
block composition (``MM`` = Mamba + Mamba, ``MT`` = Mamba + Transformer) and state size; the paper
keeps the embedding at 64 and trains 2 epochs at batch size 256. Rows that repeat the base
configuration in the paper's table are run once. Writes ``sweep.csv`` and ``sweep.md`` (parameters,
training time, test accuracy of the validation-selected checkpoint) to the output directory, and
each run's own files to ``OUTPUT_DIR/<row name>/``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mambaspike.errors import ConfigError


@dataclass(frozen=True)
class SweepRow:
    channels: int
    time_steps: int
    patch_blocks: int
    pattern: str
    d_state: int

    @property
    def name(self) -> str:
        return f"c{self.channels}-t{self.time_steps}-p{self.patch_blocks}-{self.pattern}-n{self.d_state}"

    def overrides(self, embed_dim: int) -> dict:
        return {
            "patch_channels": self.channels,
            "time_steps": self.time_steps,
            "patch_blocks": self.patch_blocks,
            "pattern": self.pattern,
            "d_state": self.d_state,
            "embed_dim": embed_dim,
        }


def _unique(rows: list[SweepRow]) -> list[SweepRow]:
    return list(dict.fromkeys(rows))


# Table 1, in the paper's order (duplicates of the base row removed).
PAPER_GRID = _unique(
    [SweepRow(c, 10, 2, "MM", 32) for c in (8, 16, 32, 64)]
    + [SweepRow(16, t, 2, "MM", 32) for t in (2, 4, 8, 10)]
    + [SweepRow(16, 4, p, "MM", 32) for p in (1, 2, 3, 4)]
    + [SweepRow(16, 4, 2, "MT", 32)]
)
# A seconds-long grid for smoke tests: one change per axis.
TINY_GRID = [SweepRow(4, 2, 1, "M", 4), SweepRow(8, 2, 2, "M", 4), SweepRow(4, 2, 1, "T", 4)]
GRIDS = {"paper": PAPER_GRID, "tiny": TINY_GRID}

COLUMNS = [
    "run",
    "params",
    "channels",
    "time_steps",
    "patch_blocks",
    "composition",
    "state_size",
    "train_minutes",
    "test_accuracy",
    "val_accuracy",
]
_COMPOSITION = {"M": "Mamba", "T": "Transformer"}


def composition(pattern: str) -> str:
    """``"MT"`` -> ``"Mamba + Transformer"`` (the paper's wording)."""
    return " + ".join(_COMPOSITION[k] for k in pattern)


def run_sweep(
    dataset: str = "digits",
    output_dir: str | Path = "outputs/sweep",
    *,
    grid: str = "paper",
    epochs: int = 2,
    batch_size: int = 256,
    lr: float = 2e-3,
    embed_dim: int = 64,
    seed: int = 0,
    subset: int | None = None,
    data_dir: str | None = None,
    threads: int | None = None,
    log: Callable[[str], None] = print,
) -> list[dict]:
    """Train every row of ``GRIDS[grid]`` and write ``sweep.csv`` / ``sweep.md``; returns the rows."""
    from mambaspike.training.trainer import TrainConfig, train

    if grid not in GRIDS:
        raise ConfigError(f"--grid must be one of {sorted(GRIDS)}, got {grid!r}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for i, row in enumerate(GRIDS[grid]):
        log(f"[{i + 1}/{len(GRIDS[grid])}] {row.name}")
        cfg = TrainConfig(
            dataset=dataset,
            model="spiking-mamba",
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            subset=subset,
            data_dir=data_dir,
            threads=threads,
            output_dir=str(out / row.name),
            progress=False,
            model_overrides=row.overrides(embed_dim),
        )
        m = train(cfg, overwrite=True, log=lambda _msg: None)
        results.append(
            {
                "run": row.name,
                "params": m["params"],
                "channels": row.channels,
                "time_steps": row.time_steps,
                "patch_blocks": row.patch_blocks,
                "composition": composition(row.pattern),
                "state_size": row.d_state,
                "train_minutes": round(m["train_seconds"] / 60, 3),
                "test_accuracy": round(m["test_accuracy"], 4),
                "val_accuracy": round(m["val_accuracy"], 4),
            }
        )
        log(f"    {m['params']:,} parameters, {m['train_seconds']:.1f} s, test accuracy {m['test_accuracy']:.4f}")
        write_tables(results, out, dataset=dataset, epochs=epochs, batch_size=batch_size, embed_dim=embed_dim)
    return results


def write_tables(rows: list[dict], out: Path, **setting) -> None:
    """``sweep.csv`` (one row per run) and ``sweep.md`` (the same as a Markdown table)."""
    with open(out / "sweep.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    lines = [
        "# Spiking Mamba hyper-parameter ablation (Miao, Table 1 grid)",
        "",
        "Setting: "
        + ", ".join(f"{k}={v}" for k, v in setting.items())
        + ". Accuracy: test set, checkpoint selected on validation. Times: training only, this machine.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(f"{r[c]:,}" if c == "params" else str(r[c]) for c in COLUMNS) + " |" for r in rows]
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
