"""Where robustness is lost: for each trained run, how far each perturbation of the input moves the
front-end's (or stem's) output and the interface's sequence into the backbone, and how it changes each
spiking layer's firing rate (:func:`mambaspike.evaluation.diagnostics.representation_sensitivity`), on
the first validation samples, the checkpoint selected on validation. Writes ``diagnosis.md`` and
``diagnosis.json`` into ``--out``.

    PYTHONPATH=src python benchmarks/frontend_diagnosis.py outputs/ndigits-mambaspike-seed0 \
        outputs/ndigits-mamba-seed0 --out benchmarks/results/ndigits/diagnosis
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LEVELS = {"event_drop": [0.25, 0.5], "spatial_jitter": [0.5, 1.0], "time_jitter": [20.0], "background": [1.0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories written by 'mambaspike train'")
    p.add_argument("--out", required=True, help="folder for diagnosis.md and diagnosis.json")
    p.add_argument("--samples", type=int, default=128, help="validation samples (the first N)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    import torch

    from mambaspike.evaluation.diagnostics import representation_sensitivity
    from mambaspike.training.run import load_run

    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    for run_dir in args.runs:
        run = load_run(run_dir)
        model = run.model()
        val = run.data("val")
        samples = [val[i][0] for i in range(min(args.samples, len(val)))]
        dt_ms = run.info.dt_us / 1000.0
        rows = []
        for name, levels in LEVELS.items():
            rows += representation_sensitivity(model, samples, name, levels, dt_ms)
        label = f"{run.config.model} ({Path(run_dir).name})"
        if label in results:  # two runs of the same name in different folders
            label = f"{run.config.model} ({run_dir})"
        results[label] = rows
        print(f"{label}: {len(rows)} rows", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "diagnosis.json").write_text(json.dumps(results, indent=1))
    (out / "diagnosis.md").write_text(markdown(results, args))
    print(markdown(results, args))
    return 0


def markdown(results: dict, args) -> str:
    cols = [(n, lv) for n, levels in LEVELS.items() for lv in levels]
    head = "| run | stage | " + " | ".join(f"{n} {lv:g}" for n, lv in cols) + " |"
    lines = [
        "# Representation sensitivity",
        "",
        f"First {args.samples} validation samples, checkpoint selected on validation, eval mode. `front`: the "
        "front-end's (stem's) output; `interface`: the sequence into the backbone. Cells: relative change "
        "|f(x') - f(x)| / |f(x)| (cosine similarity in brackets); for spiking layers, firing rate on the "
        "perturbed input / on the clean input.",
        "",
        "Command: `PYTHONPATH=src python benchmarks/frontend_diagnosis.py "
        + " ".join(args.runs)
        + f" --out {args.out}`",
        "",
        head,
        "|" + "---|" * (len(cols) + 2),
    ]
    for label, rows in results.items():
        stages = list(dict.fromkeys(r["stage"] for r in rows))
        for stage in stages:
            cells = []
            for n, lv in cols:
                r = next(r for r in rows if r["stage"] == stage and r["perturbation"] == n and r["level"] == lv)
                if "rate_ratio" in r:
                    cells.append(f"x{r['rate_ratio']:.2f}")
                else:
                    cells.append(f"{r['rel_change']:.2f} ({r['cosine']:.2f})")
            lines.append(f"| {label} | {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
