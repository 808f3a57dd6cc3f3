"""How much the interface's rate normalisation can amplify a feature, and what that does under noise.

For a trained Mamba-Spike run whose interface divides firing rates by each feature's running mean rate
(``rate_norm=true``): the distribution of those running rates (a feature at rate ``r`` is amplified
``1 / max(r, rate_floor)`` times), then the test accuracy of the selected checkpoint, clean and under
background noise, with the floor raised at evaluation only (same weights). Writes ``interface_gain.md``
and ``interface_gain.json`` into ``--out``.

    PYTHONPATH=src python benchmarks/interface_gain.py RUN_DIR --out benchmarks/results/interface_gain
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="a run directory written by 'mambaspike train' (mambaspike, rate_norm=true)")
    p.add_argument("--out", required=True, help="folder for interface_gain.md and interface_gain.json")
    p.add_argument("--floors", default="0.01,0.03,0.1,0.3", help="rate floors to evaluate with (spikes per bin)")
    p.add_argument("--noise", default="0.5,1", help="background noise levels (noise events per signal event)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    import torch

    from mambaspike.evaluation.inference import run_inference
    from mambaspike.evaluation.robustness import PerturbedDataset
    from mambaspike.training.run import load_run

    if args.threads:
        torch.set_num_threads(args.threads)
    run = load_run(args.run)
    model = run.model()
    iface = model.interface
    if not getattr(iface, "rate_norm", False):
        raise SystemExit(f"{args.run}: its interface does not normalise rates (rate_norm=false): no gain to measure")
    rates = iface.running_rate.double()
    floors = [float(f) for f in args.floors.split(",")]
    noise = [float(n) for n in args.noise.split(",")]
    test = run.data("test")
    dt_ms = run.info.dt_us / 1000.0
    sets = {"clean": test, **{f"noise {n:g}": PerturbedDataset(test, "background", n, dt_ms=dt_ms) for n in noise}}
    cached = {k: [s[i] for i in range(len(s))] for k, s in sets.items()}
    trained_floor = iface.min_rate
    rows = []
    for floor in floors:
        iface.min_rate = floor
        row = {"floor": floor, "max_gain": 1 / floor}
        for name, samples in cached.items():
            logits, targets, _ = run_inference(model, samples)
            row[name] = float((logits.argmax(1) == targets).float().mean())
        rows.append(row)
    iface.min_rate = trained_floor
    result = {
        "run": str(args.run),
        "trained_floor": trained_floor,
        "features": rates.numel(),
        "running_rate_quantiles": {f"{q:g}": float(torch.quantile(rates, q)) for q in QUANTILES},
        "share_below": {f"{f:g}": float((rates < f).double().mean()) for f in floors},
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "interface_gain.json").write_text(json.dumps(result, indent=1))
    md = markdown(result, list(sets), args)
    (out / "interface_gain.md").write_text(md)
    print(md)
    return 0


def markdown(result: dict, columns: list[str], args) -> str:
    q = result["running_rate_quantiles"]
    lines = [
        "# The interface's gain",
        "",
        f"Run `{result['run']}` (trained with `rate_floor` {result['trained_floor']:g}); "
        f"{result['features']} interface features. Running mean firing rate (spikes per bin), quantiles "
        + ", ".join(f"{k}: {v:.4f}" for k, v in q.items())
        + ". Share of features below each floor: "
        + ", ".join(f"{k}: {v:.0%}" for k, v in result["share_below"].items())
        + ".",
        "",
        "Test accuracy of the selected checkpoint with the floor set at evaluation only (same weights):",
        "",
        "| floor | max gain | " + " | ".join(columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for r in result["rows"]:
        lines.append(f"| {r['floor']:g} | {r['max_gain']:.0f}x | " + " | ".join(f"{r[c]:.2%}" for c in columns) + " |")
    lines += ["", f"Command: `PYTHONPATH=src python benchmarks/interface_gain.py {args.run} --out {args.out}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
