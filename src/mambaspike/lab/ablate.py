"""``mambaspike ablate``: the paper's ablations on one data set and budget.

(a) **Front-end** (paper Table 2): Mamba-Spike against the same backbone after the non-spiking stem
    (``mamba``), for every seed.
(b) **Neuron** (paper Fig. 5): Mamba-Spike with each neuron model (``lif``, ``alif``, ``srm`` — names in
    ``mambaspike.neurons.NEURONS``) at each membrane time constant tau (ms). tau is held fixed during
    training unless ``learn_tau`` (otherwise the axis would not mean what it says).

Runs live in ``OUT/runs/<name>``; finished runs are reused. Writes ``ablation_frontend.csv``,
``ablation_neuron.csv``, ``ablation.md`` and ``ablation.png`` into ``OUT``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mambaspike.errors import ConfigError
from mambaspike.evaluation.tables import markdown_table, write_csv
from mambaspike.lab.experiments import (
    ENERGY_FOOTNOTE,
    TABLE_HEADERS,
    aggregate,
    selection_phrase,
    summarise_run,
    train_or_reuse,
)

DEFAULT_TAUS = [10.0, 20.0, 30.0, 40.0, 50.0]
DEFAULT_NEURONS = ["lif", "alif", "srm"]


def check_neurons(neurons: list[str]) -> None:
    """Every name must be in ``NEURONS``; the error names what is missing and what exists."""
    from mambaspike.neurons.modules import NEURONS

    missing = [n for n in neurons if n not in NEURONS]
    if missing:
        raise ConfigError(
            f"--neurons: neuron model(s) {', '.join(map(repr, missing))} not available in mambaspike.neurons.NEURONS "
            f"(available: {', '.join(NEURONS)}); the LIF-vs-SRM ablation needs them — choose from the available "
            "ones with --neurons"
        )


def ablate(
    out_dir: str | Path,
    base=None,
    seeds: list[int] | None = None,
    neurons: list[str] | None = None,
    taus: list[float] | None = None,
    learn_tau: bool = False,
    parts: tuple[str, ...] = ("frontend", "neuron"),
    latency_repeats: int = 10,
    log=print,
    neuron_seeds: list[int] | None = None,
) -> dict:
    """Run and tabulate the ablations; ``base`` is a ``TrainConfig`` with the data set and budget.
    ``neuron_seeds`` (default: ``seeds``) are the seeds of the neuron x tau grid.
    Returns ``{"frontend": rows, "neuron": rows}`` (aggregated over seeds)."""
    from mambaspike.evaluation.plots import curves_png
    from mambaspike.training.config import TrainConfig

    base = base or TrainConfig()
    seeds = seeds or [0]
    neuron_seeds = neuron_seeds or seeds
    neurons = neurons or list(DEFAULT_NEURONS)
    taus = taus or list(DEFAULT_TAUS)
    if "neuron" in parts:
        check_neurons(neurons)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def run(name: str, model: str, seed: int, **overrides) -> dict:
        cfg = replace(
            base,
            model=model,
            seed=seed,
            progress=False,
            model_overrides={**base.model_overrides, **overrides},
            output_dir=str(out / "runs" / f"{base.dataset}-{name}-seed{seed}"),
        )
        return summarise_run(train_or_reuse(cfg, log), latency_repeats)

    result: dict = {}
    md = [
        "# Ablations",
        "",
        f"Data set: {base.dataset}; budget: {base.epochs} epoch(s), "
        f"subset {base.subset or 'all'}, seeds {', '.join(map(str, seeds))}"
        + (
            f" (neuron x tau: {', '.join(map(str, neuron_seeds))})"
            if "neuron" in parts and neuron_seeds != seeds
            else ""
        )
        + f"; test split, {selection_phrase([base.select])}; mean ± std over seeds.",
        "",
    ]
    panels: dict = {}
    if "frontend" in parts:
        rows = []
        for seed in seeds:
            for model, label in (
                ("mambaspike", "with spiking front-end (mambaspike)"),
                ("mamba", "without (mamba: non-spiking stem)"),
            ):
                rows.append({**run(model, model, seed), "variant": label})
        agg = aggregate(rows, ["variant"])
        write_csv(out / "ablation_frontend.csv", rows)
        result["frontend"] = agg
        md += [
            "## (a) Spiking front-end (paper Table 2)",
            "",
            markdown_table(agg, ["variant", *TABLE_HEADERS, "seeds"], TABLE_HEADERS),
            ENERGY_FOOTNOTE,
            "",
        ]
        panels["front-end"] = {
            "mean ± std over seeds": (
                [a["variant"].split(" (")[0] for a in agg],
                [a["test_accuracy_mean"] for a in agg],
                [a["test_accuracy_std"] for a in agg],
            )
        }
    if "neuron" in parts:
        rows = []
        for neuron in neurons:
            for tau in taus:
                for seed in neuron_seeds:
                    r = run(
                        f"mambaspike-{neuron}-tau{tau:g}",
                        "mambaspike",
                        seed,
                        neuron=neuron,
                        tau_ms=float(tau),
                        learn_tau=learn_tau,
                    )
                    rows.append({**r, "neuron": neuron, "tau_ms": float(tau)})
        agg = aggregate(rows, ["neuron", "tau_ms"])
        write_csv(out / "ablation_neuron.csv", rows)
        result["neuron"] = agg
        how = "learned from" if learn_tau else "fixed at"
        md += [
            f"## (b) Neuron model and membrane time constant (paper Fig. 5); tau {how} the value shown",
            "",
            markdown_table(
                agg,
                ["neuron", "tau_ms", "test_accuracy", "test_macro_f1", "spikes_per_sample", "seeds"],
                {**TABLE_HEADERS, "tau_ms": "tau (ms)"},
            ),
            "",
        ]
        panels["neuron x tau"] = {
            n: (
                [a["tau_ms"] for a in agg if a["neuron"] == n],
                [a["test_accuracy_mean"] for a in agg if a["neuron"] == n],
            )
            for n in neurons
        }
    md += ["![ablations](ablation.png)", ""]
    (out / "ablation.md").write_text("\n".join(md))
    curves_png(
        panels,
        out / "ablation.png",
        xlabel={"front-end": "", "neuron x tau": "tau (ms)"},
        ylabel="test accuracy",
        title=f"ablations on {base.dataset}",
    )
    return result


__all__ = ["ablate", "check_neurons", "DEFAULT_TAUS", "DEFAULT_NEURONS"]
