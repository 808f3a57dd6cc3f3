"""``mambaspike compare``: Mamba-Spike and its baselines on one data set, one budget and several seeds,
as the paper's Table 1 (accuracy, F1, latency, spikes per sample, energy), mean ± std over seeds.

Runs live in ``OUT/runs/<dataset>-<model>-seed<seed>``; finished runs there are reused, so a second
call only re-tabulates. ``run_dirs`` tabulates existing runs instead of training. A model may be a
family or a named variant (``models.config.VARIANTS``, e.g. ``mambaspike-paper``: the paper's
front-end), trained with the same budget and tabulated in a row of its own.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from mambaspike.evaluation.tables import markdown_table, write_csv
from mambaspike.lab.experiments import (
    ENERGY_FOOTNOTE,
    TABLE_HEADERS,
    aggregate,
    selection_phrase,
    summarise_run,
    train_or_reuse,
)

DEFAULT_MODELS = ["mambaspike", "mambaspike-paper", "mamba", "lstm", "gru"]


def compare(
    out_dir: str | Path,
    base=None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
    run_dirs: list[str | Path] | None = None,
    latency_repeats: int = 10,
    log=print,
) -> list[dict]:
    """Train (or reuse) every ``model x seed`` with the budget of ``base`` (a ``TrainConfig``), or take
    ``run_dirs`` as they are; write ``compare.csv`` (one row per run), ``compare_summary.csv``,
    ``compare.md`` and ``compare.png`` into ``out_dir``. Returns the aggregated rows."""
    from mambaspike.evaluation.plots import bars_png
    from mambaspike.models.config import VARIANTS
    from mambaspike.training.config import TrainConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if run_dirs is None:
        base = base or TrainConfig()
        run_dirs = []
        for model in models or DEFAULT_MODELS:
            family, variant = VARIANTS.get(model, (model, {}))
            for seed in seeds or [0]:
                cfg = replace(
                    base,
                    model=family,
                    seed=seed,
                    progress=False,
                    model_overrides={**base.model_overrides, **variant},
                    output_dir=str(out / "runs" / f"{base.dataset}-{model}-seed{seed}"),
                )
                run_dirs.append(train_or_reuse(cfg, log))
    rows = [summarise_run(d, latency_repeats) for d in run_dirs]
    summary = aggregate(rows, ["dataset", "model"])
    write_csv(out / "compare.csv", rows)
    write_csv(out / "compare_summary.csv", summary)
    datasets = sorted({r["dataset"] for r in rows})
    cols = ["dataset", "model", *TABLE_HEADERS, "seeds"]
    md = [
        "# Mamba-Spike and baselines",
        "",
        f"Data set(s): {', '.join(datasets)}. Mean ± std over seeds (sample std) where more than one seed; "
        f"test split, {selection_phrase([r['select'] for r in rows])}. Latency: batch 1, CPU, "
        f"{torch.get_num_threads()} thread(s) at tabulation.",
        "",
        markdown_table(summary, cols, TABLE_HEADERS),
        ENERGY_FOOTNOTE,
        "",
        "![accuracy](compare.png)",
        "",
    ]
    (out / "compare.md").write_text("\n".join(md))
    bars_png(
        [f"{s['model']}" if len(datasets) == 1 else f"{s['dataset']}/{s['model']}" for s in summary],
        [s["test_accuracy_mean"] for s in summary],
        [s["test_accuracy_std"] for s in summary],
        out / "compare.png",
        ylabel="test accuracy",
        title=", ".join(datasets),
    )
    return summary


__all__ = ["compare", "DEFAULT_MODELS"]
