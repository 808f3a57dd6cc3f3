"""The training harness end to end on small N-Digits subsets (tiny models, a few seconds each)."""

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

import mambaspike.training.trainer as train_mod
from mambaspike.errors import ConfigError, TrainingError
from mambaspike.evaluation.inference import evaluate_run
from mambaspike.training.checkpoint import load_record
from mambaspike.training.trainer import TrainConfig, train

TINY = {"channels": (4, 8, 16), "d_model": 32, "n_layers": 1, "d_state": 8}


def tiny_cfg(data_dir, out, **kw) -> TrainConfig:
    base = dict(
        data_dir=str(data_dir),
        output_dir=str(out),
        subset=120,
        epochs=2,
        batch_size=16,
        lr=3e-3,
        progress=False,
        model_overrides=dict(TINY),
        threads=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def quiet(*a, **k):
    pass


def read_log(out):
    with open(out / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def weights(out, tag="last"):
    rec = load_record(out / "checkpoints", tag)
    return load_file(out / "checkpoints" / rec["weights"])


def test_tiny_run_learns_and_writes_every_output(data_dir, tmp_path):
    out = tmp_path / "run"
    m = train(tiny_cfg(data_dir, out, subset=300, epochs=5), log=quiet)
    rows = read_log(out)
    assert len(rows) == 5
    # the loss falls (the default adaptive-threshold neurons start slower than plain LIF: 2.44 -> 1.80 here)
    assert float(rows[-1]["train_loss"]) < 0.8 * float(rows[0]["train_loss"])
    assert m["test_accuracy"] > 0.5  # chance is 0.1
    for key in (
        "test_accuracy",
        "test_macro_f1",
        "val_accuracy",
        "spikes_per_sample",
        "latency_ms_per_sample",
        "latency_threads",
        "params",
        "train_seconds",
    ):
        assert m[key] is not None, key
    assert m["selected_by"] == "val" and m["spikes_per_sample"] > 0
    assert json.loads((out / "metrics.json").read_text()) == m
    run = json.loads((out / "run.json").read_text())
    assert run["train"]["dt_us"] == 10000 and run["model"]["name"] == "mambaspike"
    # eval recomputes the same metrics from the saved files alone
    again = evaluate_run(out)
    for key in ("test_accuracy", "test_macro_f1", "val_accuracy", "spikes_per_sample", "params", "train_seconds"):
        assert again[key] == pytest.approx(m[key]), key


@pytest.mark.parametrize("model", ["mamba", "lstm", "gru"])
def test_baselines_train_through_the_same_harness(data_dir, tmp_path, model):
    m = train(tiny_cfg(data_dir, tmp_path / model, model=model, subset=60, epochs=1), log=quiet)
    assert m["model"] == model and m["spikes_per_sample"] is None and 0 <= m["test_accuracy"] <= 1


def test_same_seed_gives_identical_metrics(data_dir, tmp_path):
    a = train(tiny_cfg(data_dir, tmp_path / "a", subset=60), log=quiet)
    b = train(tiny_cfg(data_dir, tmp_path / "b", subset=60), log=quiet)
    for key in ("test_accuracy", "test_loss", "val_accuracy", "spikes_per_sample"):
        assert a[key] == b[key], key
    wa, wb = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


class _Killed(Exception):
    pass


def test_resume_after_a_kill_mid_epoch_continues_identically(data_dir, tmp_path, monkeypatch):
    full = tmp_path / "full"
    train(tiny_cfg(data_dir, full, save_every=2), log=quiet)

    # A hard kill at step 7 (no chance to save): the last checkpoint is the mid-epoch one of step 6.
    cut = tmp_path / "cut"
    real_build = train_mod.build_model

    def build_dying(cfg):
        model = real_build(cfg)
        calls = {"n": 0}
        forward = model.forward

        def dying_forward(x):
            if model.training:
                calls["n"] += 1
                if calls["n"] == 7:
                    raise _Killed
            return forward(x)

        model.forward = dying_forward
        return model

    monkeypatch.setattr(train_mod, "build_model", build_dying)
    with pytest.raises(_Killed):
        train(tiny_cfg(data_dir, cut, save_every=2), log=quiet)
    monkeypatch.setattr(train_mod, "build_model", real_build)
    rec = load_record(cut / "checkpoints", "last")
    assert rec["global_step"] == 6 and rec["batch_in_epoch"] == 6 and rec["epoch"] == 0  # 8 steps per epoch

    train(tiny_cfg(data_dir, cut, save_every=2), resume=True, log=quiet)
    wf, wc = weights(full), weights(cut)
    assert all(torch.equal(wf[k], wc[k]) for k in wf)

    def strip(rows):
        return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in rows]

    assert strip(read_log(cut)) == strip(read_log(full))


def test_resume_can_extend_epochs_and_existing_run_is_protected(data_dir, tmp_path):
    out = tmp_path / "run"
    train(tiny_cfg(data_dir, out, subset=40, epochs=1), log=quiet)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(tiny_cfg(data_dir, out, subset=40, epochs=1), log=quiet)
    schedule = json.loads((out / "run.json").read_text())["schedule"]
    with pytest.raises(ConfigError, match=r"--epochs 2: the run in .* was created for 1 epochs.*--extend-epochs"):
        train(tiny_cfg(data_dir, out, subset=40, epochs=2), resume=True, log=quiet)
    assert json.loads((out / "run.json").read_text())["schedule"] == schedule  # refused: nothing changed
    m = train(tiny_cfg(data_dir, out, subset=40, epochs=2), resume=True, extend_epochs=True, log=quiet)
    assert m["epochs_trained"] == 2 and len(read_log(out)) == 2
    run = json.loads((out / "run.json").read_text())
    assert run["train"]["epochs"] == 2 and run["schedule"]["total_steps"] == 2 * schedule["total_steps"]
    assert run["resolved"]["epochs"] == 2 and run["config_hash"] != ""
    with pytest.raises(ConfigError, match="only extends"):
        train(tiny_cfg(data_dir, out, subset=40, epochs=1), resume=True, extend_epochs=True, log=quiet)
    with pytest.raises(ConfigError, match="no run to resume"):
        train(tiny_cfg(data_dir, tmp_path / "none"), resume=True, log=quiet)


def test_non_finite_loss_stops_without_a_broken_checkpoint(data_dir, tmp_path, monkeypatch):
    real_build = train_mod.build_model

    def build_exploding(cfg):
        model = real_build(cfg)
        calls = {"n": 0}
        forward = model.forward

        def exploding(x):
            out = forward(x)
            if model.training:
                calls["n"] += 1
                if calls["n"] >= 5:
                    return out * float("nan")
            return out

        model.forward = exploding
        return model

    monkeypatch.setattr(train_mod, "build_model", build_exploding)
    out = tmp_path / "nan"
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 1, step 4.*lower --lr"):
        train(tiny_cfg(data_dir, out, save_every=2), log=quiet)
    last = weights(out)
    assert all(torch.isfinite(v).all() for v in last.values() if v.is_floating_point())


@pytest.mark.parametrize(
    "rule, selected",
    [("accuracy-then-loss", 3), ("accuracy", 2)],
)
def test_checkpoint_selection_breaks_accuracy_ties_by_validation_loss(data_dir, tmp_path, monkeypatch, rule, selected):
    # validation accuracy ties at epochs 2-4; epoch 3 has the lowest loss of the three
    script = iter([(0.5, 1.0), (0.9, 0.6), (0.9, 0.4), (0.9, 0.5)])
    real = train_mod.classification_metrics

    def scripted(logits, targets):
        acc, loss = next(script)
        return {**real(logits, targets), "accuracy": acc, "loss": loss}

    monkeypatch.setattr(train_mod, "classification_metrics", scripted)
    out = tmp_path / "run"
    m = train(tiny_cfg(data_dir, out, model="gru", epochs=4, select=rule), log=quiet)
    assert [int(r["is_best"]) for r in read_log(out)] == ([1, 1, 1, 0] if selected == 3 else [1, 1, 0, 0])
    assert m["selected_epoch"] == selected and m["select_rule"] == rule
    assert load_record(out / "checkpoints", "best")["best_val_loss"] == {3: 0.4, 2: 0.6}[selected]


def test_improves_and_the_rule_of_old_records():
    from mambaspike.training.run import resolved_config
    from mambaspike.training.trainer import improves

    assert improves("accuracy", {"accuracy": 0.5, "loss": 9.0}, -1.0, None)  # the first epoch
    assert improves("accuracy-then-loss", {"accuracy": 0.5, "loss": 9.0}, -1.0, None)
    assert not improves("accuracy-then-loss", {"accuracy": 0.4, "loss": 0.1}, 0.5, 1.0)  # accuracy first
    assert improves("accuracy-then-loss", {"accuracy": 0.5, "loss": 0.9}, 0.5, 1.0)
    assert not improves("accuracy-then-loss", {"accuracy": 0.5, "loss": 1.0}, 0.5, 1.0)  # equal: keep earlier
    assert not improves("accuracy", {"accuracy": 0.5, "loss": 0.1}, 0.5, 1.0)
    # a record from before --select was selected by accuracy alone, and reuses as such
    train, model = {"dataset": "ndigits", "augment": True, "seed": 0}, {"name": "gru"}
    assert resolved_config(train, model, "1") == resolved_config({**train, "select": "accuracy"}, model, "1")
    assert resolved_config(train, model, "1") != resolved_config({**train, "select": "accuracy-then-loss"}, model, "1")
    with pytest.raises(ConfigError, match=r"select \(--select\) = 'best': expected one of accuracy-then-loss, acc"):
        TrainConfig(select="best").validate()


def test_a_run_recorded_before_select_keeps_its_rule(tmp_path):
    from mambaspike.training.run import Run

    (tmp_path / "run.json").write_text(json.dumps({"train": {"dataset": "ndigits"}, "model": {"name": "gru"}}))
    assert Run(tmp_path).config.select == "accuracy"
    resumed = Run.resume(TrainConfig(output_dir=str(tmp_path), epochs=None))
    assert resumed.config.select == "accuracy"
