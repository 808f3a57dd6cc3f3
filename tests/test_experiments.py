"""compare, ablate, robustness and the full eval report end to end on tiny N-Digits runs (CSV, Markdown, PNG)."""

import csv
import json
import statistics

import pytest

from mambaspike.cli import main
from mambaspike.errors import ConfigError
from mambaspike.evaluation.robustness import robustness
from mambaspike.lab.ablate import ablate
from mambaspike.lab.compare import compare
from mambaspike.training.trainer import TrainConfig

TINY = {"channels": (4, 8, 16), "d_model": 32, "n_layers": 1, "d_state": 8}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(data_dir, tmp_path_factory):
    """compare (mambaspike, mamba; seeds 0, 1) then ablate in the same directory (front-end runs reused)."""
    out = tmp_path_factory.mktemp("study")
    base = TrainConfig(
        data_dir=str(data_dir),
        subset=20,
        epochs=1,
        batch_size=10,
        threads=1,
        progress=False,
        time_window_us=100_000,  # 10 bins: a third of the default, to keep the suite fast
        model_overrides=dict(TINY),
    )
    logs = []
    summary = compare(out, base, models=["mambaspike", "mamba"], seeds=[0, 1], latency_repeats=2, log=logs.append)
    abl = ablate(
        out,
        base,
        seeds=[0, 1],
        neurons=["lif"],
        taus=[10.0, 30.0],
        latency_repeats=2,
        log=logs.append,
        neuron_seeds=[0],
    )
    return out, summary, abl, logs


def test_compare_writes_the_table_with_mean_and_std(study):
    out, summary, _, _ = study
    for f in ("compare.csv", "compare_summary.csv", "compare.md", "compare.png"):
        assert (out / f).stat().st_size > 0, f
    rows = read_csv(out / "compare.csv")
    assert sorted((r["model"], r["seed"]) for r in rows) == [
        ("mamba", "0"),
        ("mamba", "1"),
        ("mambaspike", "0"),
        ("mambaspike", "1"),
    ]
    by = {s["model"]: s for s in summary}
    assert by["mambaspike"]["seeds"] == 2 and "±" in by["mambaspike"]["test_accuracy"]
    # the tabulated mean and std are those of the runs' own metrics.json, seed by seed
    csv_summary = {r["model"]: r for r in read_csv(out / "compare_summary.csv")}
    md = (out / "compare.md").read_text()
    for model in ("mambaspike", "mamba"):
        trained = [json.loads((out / "runs" / f"ndigits-{model}-seed{s}" / "metrics.json").read_text()) for s in (0, 1)]
        for key in ("test_accuracy", "test_macro_f1", "params"):
            values = [m[key] for m in trained]
            assert by[model][f"{key}_mean"] == pytest.approx(statistics.fmean(values)), (model, key)
            assert by[model][f"{key}_std"] == pytest.approx(statistics.stdev(values)), (model, key)
            assert float(csv_summary[model][f"{key}_mean"]) == pytest.approx(statistics.fmean(values))
        accuracy = [100 * m["test_accuracy"] for m in trained]
        cell = f"{statistics.fmean(accuracy):.4g} ± {statistics.stdev(accuracy):.2g}"
        assert by[model]["test_accuracy"] == cell and f"| ndigits | {model} | {cell} |" in md, (cell, md)
        rows_of_model = [r for r in rows if r["model"] == model]
        assert sorted(float(r["test_accuracy"]) for r in rows_of_model) == pytest.approx(
            sorted(m["test_accuracy"] for m in trained)
        )
    assert by["mamba"]["spikes_per_sample_mean"] is None and by["mambaspike"]["spikes_per_sample_mean"] is not None
    md = (out / "compare.md").read_text()
    assert "energy (µJ/sample)*" in md and "compute-only estimate" in md and "| ndigits | mambaspike |" in md
    # every run got its eval report
    assert (out / "runs" / "ndigits-mamba-seed1" / "eval.json").is_file()


def test_ablate_reuses_runs_and_writes_both_tables(study):
    out, _, abl, logs = study
    assert any("reusing finished run" in m and "ndigits-mambaspike-seed0" in m for m in logs)
    for f in ("ablation.md", "ablation_frontend.csv", "ablation_neuron.csv", "ablation.png"):
        assert (out / f).stat().st_size > 0, f
    assert [(r["neuron"], r["tau_ms"]) for r in abl["neuron"]] == [("lif", 10.0), ("lif", 30.0)]
    run = json.loads((out / "runs" / "ndigits-mambaspike-lif-tau10-seed0" / "run.json").read_text())
    assert run["model"]["tau_ms"] == 10.0 and run["model"]["learn_tau"] is False
    assert len(abl["frontend"]) == 2 and all(r["seeds"] == 2 for r in abl["frontend"])  # compare's runs, both seeds
    assert all(r["seeds"] == 1 for r in abl["neuron"])  # --neuron-seeds
    assert "seeds 0, 1 (neuron x tau: 0)" in (out / "ablation.md").read_text()


def test_ablate_names_a_missing_neuron(tmp_path):
    with pytest.raises(ConfigError, match=r"'nosuch' not available in mambaspike.neurons.NEURONS \(available: lif"):
        ablate(tmp_path, TrainConfig(), neurons=["lif", "nosuch"])


def test_robustness_over_two_checkpoints(study, tmp_path):
    out, _, _, _ = study
    runs = [out / "runs" / "ndigits-mambaspike-seed0", out / "runs" / "ndigits-mamba-seed0"]
    rows = robustness(
        runs,
        tmp_path,
        perturbations=["event_drop", "time_jitter"],
        levels={"event_drop": [0.0, 0.5], "time_jitter": [0.0, 20.0]},
    )
    assert len(rows) == 2 * 2 * 2 and {r["model"] for r in rows} == {"mambaspike", "mamba"}
    # level 0 is the unperturbed test accuracy of the selected checkpoint: the trainer's own figure
    at0 = {(r["model"], r["perturbation"]): r["accuracy"] for r in rows if r["level"] == 0}
    for run in runs:
        trained = json.loads((run / "metrics.json").read_text())
        for perturbation in ("event_drop", "time_jitter"):
            assert at0[(trained["model"], perturbation)] == pytest.approx(trained["test_accuracy"]), run
    for f in ("robustness.csv", "robustness.md", "robustness.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    md = (tmp_path / "robustness.md").read_text()
    assert "| event_drop | 0.5 | drop probability |" in md
    by = {(r["model"], r["perturbation"], r["level"]): r["accuracy"] for r in rows}
    margin = min(by[("mambaspike", "event_drop", lv)] - by[("mamba", "event_drop", lv)] for lv in (0.0, 0.5))
    assert "## Worst margin to the best other checkpoint" in md and f"{margin * 100:+.1f} (" in md


def test_eval_cli_writes_the_full_report(study, tmp_path, capsys):
    out, _, _, _ = study
    run = out / "runs" / "ndigits-mambaspike-seed0"
    before = {f: (run / f).stat().st_mtime_ns for f in ("eval.json", "eval.md")}  # compare's report of the run
    code = main(
        [
            "eval",
            "--checkpoint",
            str(run),
            "--output-dir",
            str(tmp_path),
            "--compare-paper",
            "--analyze-temporal",
            "--latency-repeats",
            "2",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "TIDIGITS" in printed and "different data" in printed and "selected by best validation accuracy" in printed
    m = json.loads((tmp_path / "eval.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())
    assert set(trained) <= set(m)  # every key the trainer writes
    assert m["test_accuracy"] == pytest.approx(trained["test_accuracy"])
    assert [r["layer"] for r in m["firing_rates"]] == [f"frontend.blocks.{i}.lif" for i in range(3)]
    assert m["spikes_per_sample"] == pytest.approx(sum(r["spikes_per_sample"] for r in m["firing_rates"]))
    assert m["energy"]["note"].startswith("compute-only estimate") and m["energy_pj_per_sample"] > 0
    assert len(m["confusion_matrix"]) == 10 and sum(map(sum, m["confusion_matrix"])) == m["n_test"]
    assert m["streaming_latency_ms_per_bin"] is None or m["streaming_latency_ms_per_bin"] > 0
    for f in ("eval.md", "confusion_matrix.png", "firing_rate_over_time.png"):
        assert (tmp_path / f).stat().st_size > 0, f
    assert {f: (run / f).stat().st_mtime_ns for f in before} == before  # written only where asked


@pytest.mark.parametrize(
    "cmd, flags",
    [
        ("robustness", ["--checkpoint", "--perturbations", "--event-drop-levels", "--time-jitter-levels", "--seed"]),
        ("compare", ["--models", "--seeds", "--epochs", "--subset", "--runs", "--model-config"]),
        ("ablate", ["--neurons", "--taus", "--learn-tau", "--only", "--seeds", "--neuron-seeds"]),
        ("eval", ["--compare-paper", "--analyze-temporal", "--output-dir"]),
    ],
)
def test_help_of_the_evaluation_commands(cmd, flags, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and all(f in out for f in flags)


def test_bad_list_option_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["ablate", "--taus", "10,abc", "--output-dir", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "expected comma-separated numbers, got '10,abc'" in err[0]


def test_a_run_directory_with_another_budget_is_not_reused(study):
    out, _, _, _ = study
    from mambaspike.lab.experiments import train_or_reuse

    cfg = TrainConfig(
        output_dir=str(out / "runs" / "ndigits-mamba-seed0"),
        model="mamba",
        seed=0,
        subset=20,
        epochs=3,
        batch_size=10,
        time_window_us=100_000,
        model_overrides=dict(TINY),
    )
    with pytest.raises(ConfigError, match="another configuration \\(epochs: 1 there, 3 asked\\)"):
        train_or_reuse(cfg)


def test_compare_gives_the_paper_front_end_a_row_of_its_own(data_dir, tmp_path):
    from mambaspike.models.config import PAPER_FRONTEND

    base = TrainConfig(
        data_dir=str(data_dir),
        subset=20,
        epochs=1,
        batch_size=10,
        threads=1,
        progress=False,
        time_window_us=100_000,
        model_overrides={**TINY, "readout_pool": "avg"},  # a front-end other than the paper's
    )
    summary = compare(tmp_path, base, models=["mambaspike", "mambaspike-paper"], latency_repeats=1, log=lambda m: None)
    assert [s["model"] for s in summary] == ["mambaspike", "mambaspike-paper"]
    paper = json.loads((tmp_path / "runs" / "ndigits-mambaspike-paper-seed0" / "run.json").read_text())
    assert paper["model"]["name"] == "mambaspike"
    assert {k: paper["model"][k] for k in PAPER_FRONTEND} == PAPER_FRONTEND
    ours = json.loads((tmp_path / "runs" / "ndigits-mambaspike-seed0" / "run.json").read_text())
    assert ours["model"]["readout_pool"] == "avg"
    # tabulating the directories again keeps the labels
    again = compare(tmp_path / "t", run_dirs=sorted((tmp_path / "runs").iterdir()), latency_repeats=1)
    assert sorted(s["model"] for s in again) == ["mambaspike", "mambaspike-paper"]


def test_tables_say_how_their_checkpoints_were_selected():
    from mambaspike.lab.experiments import selection_phrase

    assert selection_phrase(["accuracy-then-loss"] * 3) == (
        "checkpoint selected by validation accuracy, ties to the lower validation loss"
    )
    mixed = selection_phrase(["accuracy", "accuracy-then-loss", "accuracy"])
    assert mixed == (
        "checkpoints selected by validation accuracy (the first epoch at the highest) (2 runs); "
        "validation accuracy, ties to the lower validation loss (1 run)"
    )
