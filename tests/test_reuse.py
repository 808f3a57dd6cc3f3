"""compare / ablate reuse a run directory only when its resolved configuration hash matches; a smoke
run with other settings is refused, naming the fields; run directories from before the hash still load."""

import json

import pytest

import mambaspike as ms
from mambaspike.errors import ConfigError
from mambaspike.lab.compare import compare
from mambaspike.lab.experiments import requested_config, train_or_reuse
from mambaspike.training.config import TrainConfig
from mambaspike.training.run import config_hash

TINY = {"channels": (4, 8, 16), "d_model": 32, "n_layers": 1, "d_state": 8}


@pytest.fixture(scope="module")
def smoke(data_dir, tmp_path_factory):
    """A finished ``--subset 20``, ``d_model=32`` run where compare puts its mambaspike seed-0 run."""
    out = tmp_path_factory.mktemp("study")
    cfg = TrainConfig(
        data_dir=str(data_dir),
        output_dir=str(out / "runs" / "ndigits-mambaspike-seed0"),
        subset=20,
        epochs=1,
        batch_size=10,
        threads=1,
        progress=False,
        time_window_us=100_000,
        model_overrides=dict(TINY),
    )
    train_or_reuse(cfg, log=lambda *a: None)
    return out, cfg


def test_run_json_holds_the_resolved_configuration_and_its_hash(smoke):
    out, cfg = smoke
    run = json.loads((out / "runs" / "ndigits-mambaspike-seed0" / "run.json").read_text())
    assert run["resolved"] == requested_config(cfg) and run["config_hash"] == config_hash(run["resolved"])
    assert run["resolved"]["dt_us"] == 10_000 and run["resolved"]["model"]["d_model"] == 32
    assert "data_dir" not in run["resolved"] and "threads" not in run["resolved"]


def test_a_full_data_compare_refuses_the_smoke_run_naming_the_fields(smoke, data_dir):
    out, _ = smoke
    full = TrainConfig(data_dir=str(data_dir), epochs=1, batch_size=10, threads=1, progress=False)
    with pytest.raises(ConfigError) as e:
        compare(out, full, models=["mambaspike"], seeds=[0], latency_repeats=1, log=lambda *a: None)
    msg = str(e.value)
    assert "ndigits-mambaspike-seed0 holds a run with another configuration" in msg and "\n" not in msg
    for field in ("subset: 20 there, None asked", "time_window_us: 100000 there, 300000 asked", "model.d_model: 32"):
        assert field in msg, msg
    assert "epochs" not in msg and "batch_size" not in msg  # the same


def test_the_same_configuration_is_reused_and_an_old_run_directory_still_loads(smoke):
    out, cfg = smoke
    run_dir = out / "runs" / "ndigits-mambaspike-seed0"
    logs = []
    assert train_or_reuse(cfg, log=logs.append) == run_dir and logs == [f"reusing finished run {run_dir}"]
    # a data directory elsewhere, more threads: the same results, still reused
    moved = TrainConfig(**{**cfg.__dict__, "threads": 2, "data_dir": str(out / "elsewhere")})
    assert train_or_reuse(moved, log=logs.append) == run_dir
    # the lr differs by one ulp: another configuration
    with pytest.raises(ConfigError, match=r"another configuration \(lr: 0.002 there, 0.0020000000000000005 asked\)"):
        train_or_reuse(TrainConfig(**{**cfg.__dict__, "lr": 0.0020000000000000005}))

    # a run.json written before the resolved configuration and its hash existed
    record = json.loads((run_dir / "run.json").read_text())
    for k in ("resolved", "config_hash", "schedule"):
        record.pop(k)
    (run_dir / "run.json").write_text(json.dumps(record))
    run = ms.load_run(run_dir)
    assert run.config_hash == config_hash(requested_config(cfg)) and run.model().training is False
    assert train_or_reuse(cfg, log=logs.append) == run_dir
    with pytest.raises(ConfigError, match=r"another configuration \(model.d_state: 8 there, 16 asked\)"):
        train_or_reuse(TrainConfig(**{**cfg.__dict__, "model_overrides": {**TINY, "d_state": 16}}))


def test_records_from_before_a_model_field_compare_with_the_value_they_were_trained_with():
    from mambaspike.models.config import ModelConfig
    from mambaspike.training.run import config_hash, record_resolved, resolved_config

    train = {"dataset": "ndigits", "epochs": 12}
    spiking = ModelConfig(name="mambaspike").to_dict()
    old = {k: v for k, v in spiking.items() if k not in ("readout_pool", "input_norm")}
    then = record_resolved({"resolved": resolved_config(train, old, "v")})
    assert then["model"]["readout_pool"] == "max" and then["model"]["input_norm"] == "none"
    paper = resolved_config(train, {**spiking, "readout_pool": "max"}, "v")
    assert config_hash(then) == config_hash(paper)
    assert config_hash(then) != config_hash(resolved_config(train, spiking, "v"))  # today's default: avg
    # a baseline does not use the front-end's fields: their presence or value does not matter
    mamba = ModelConfig(name="mamba").to_dict()
    older = {k: v for k, v in mamba.items() if k not in ("readout_pool", "input_norm")}
    assert config_hash(record_resolved({"resolved": {**resolved_config(train, mamba, "v")}})) == config_hash(
        resolved_config(train, {**older, "readout_pool": "max"}, "v")
    )
    assert "readout_pool" not in resolved_config(train, mamba, "v")["model"]


def test_resolved_records_from_before_a_training_field_compare_with_the_value_they_were_trained_with():
    from mambaspike.models.config import ModelConfig
    from mambaspike.training.run import TRAIN_RECORDED_BEFORE, config_hash, record_resolved, resolved_config

    model = ModelConfig(name="mamba").to_dict()
    train = {"dataset": "ndigits", "epochs": 12, "augment_events": True}
    now = resolved_config({**train, "select": "accuracy"}, model, "v")
    older = {k: v for k, v in now.items() if k != "select"}  # written before TrainConfig.select existed
    assert TRAIN_RECORDED_BEFORE["select"] == "accuracy"
    assert record_resolved({"resolved": older})["select"] == "accuracy"
    assert config_hash(record_resolved({"resolved": older})) == config_hash(now)
    assert config_hash(record_resolved({"resolved": older})) != config_hash(
        resolved_config({**train, "select": "accuracy-then-loss"}, model, "v")
    )


def test_records_from_before_the_augmentation_field_compare_with_the_augmentation_they_were_trained_with(
    monkeypatch,
):
    """A data set's augmentation is part of the resolved configuration; a record without it counts with
    the augmentation its data set had then (``AUGMENT_RECORDED_BEFORE``), so changing a data set's
    augmentation retrains instead of reusing."""
    from dataclasses import asdict

    from mambaspike.data import registry
    from mambaspike.data.augment import EVENT_AUGMENT
    from mambaspike.models.config import ModelConfig
    from mambaspike.training.run import config_diff, config_hash, record_resolved, resolved_config

    then = registry.Augment(max_shift=1)
    monkeypatch.setitem(registry.AUGMENT_RECORDED_BEFORE, "ndigits", then)
    model = ModelConfig(name="mamba").to_dict()
    for augment, events in ((True, False), (True, True), (False, True), (False, False)):
        train = {"dataset": "ndigits", "epochs": 12, "augment": augment, "augment_events": events}
        now = resolved_config(train, model, "v")
        older = {k: v for k, v in now.items() if k != "augmentation"}
        was = record_resolved({"resolved": older})["augmentation"]
        if not augment and not events:
            assert now["augmentation"] is None and was is None
            continue
        expected_now = registry.get_entry("ndigits").augment if augment else registry.Augment()
        expected_then = then if augment else registry.Augment()
        assert now["augmentation"]["max_shift"] == expected_now.max_shift
        assert was["max_shift"] == expected_then.max_shift
        if events:
            assert was["jitter_px"] == EVENT_AUGMENT["jitter_px"] and was["event_p"] == EVENT_AUGMENT["event_p"]
        if augment:  # the shift changed: the old run is another configuration, and the message says so
            assert config_hash(record_resolved({"resolved": older})) != config_hash(now)
            assert any(d.startswith("augmentation: ") for d in config_diff(record_resolved({"resolved": older}), now))
        else:  # only the event-level perturbations, which did not change: the same
            assert config_hash(record_resolved({"resolved": older})) == config_hash(now)
    # a data set that is not of events has no augmentation to record
    assert resolved_config({"dataset": "spoken-digits", "augment": False}, model, "v")["augmentation"] is None
    assert (
        asdict(registry.get_entry("ndigits").augment)
        == resolved_config({"dataset": "ndigits", "augment": True}, model, "v")["augmentation"]
    )
