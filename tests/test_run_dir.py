"""The run directory object: create / resume rules and the log it keeps (no training here)."""

import json

import pytest

from mambaspike.errors import ConfigError
from mambaspike.training.config import TrainConfig
from mambaspike.training.run import LOG_COLUMNS, Run


def _record(cfg: TrainConfig) -> dict:
    from dataclasses import asdict

    from mambaspike.models.config import ModelConfig

    return {"train": asdict(cfg), "model": ModelConfig().to_dict(), "schedule": {"steps_per_epoch": 3}}


def _row(epoch: int) -> dict:
    return {c: (epoch if c == "epoch" else "0.5") for c in LOG_COLUMNS}


def test_create_refuses_a_directory_with_a_run_and_overwrite_removes_only_run_files(tmp_path):
    cfg = TrainConfig(output_dir=str(tmp_path / "r"), epochs=2)
    run = Run.create(cfg)
    run.write_record(_record(cfg))
    (run.path / "notes.txt").write_text("mine")
    run.append_log(_row(1))
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        Run.create(TrainConfig(output_dir=str(tmp_path / "r")))
    again = Run.create(TrainConfig(output_dir=str(tmp_path / "r")), overwrite=True)
    assert again.record is None and not (run.path / "run.json").exists() and not run.log_path.exists()
    assert (run.path / "notes.txt").read_text() == "mine"


def test_resume_keeps_the_saved_configuration_and_refuses_another_schedule(tmp_path):
    out = tmp_path / "r"
    cfg = TrainConfig(output_dir=str(out), epochs=4, lr=0.003, seed=5)
    Run.create(cfg).write_record(_record(cfg))
    with pytest.raises(ConfigError, match="holds no run to resume"):
        Run.resume(TrainConfig(output_dir=str(tmp_path / "none")))
    run = Run.resume(TrainConfig(output_dir=str(out), epochs=None, lr=0.1, threads=1))
    assert (run.config.lr, run.config.seed, run.config.epochs, run.config.threads) == (0.003, 5, 4, 1)
    assert not run.started and run.schedule == {"steps_per_epoch": 3}
    with pytest.raises(ConfigError, match="--epochs 6: the run in .* was created for 4 epochs"):
        Run.resume(TrainConfig(output_dir=str(out), epochs=6))
    assert Run.resume(TrainConfig(output_dir=str(out), epochs=6), extend_epochs=True).config.epochs == 6
    with pytest.raises(ConfigError, match="--epochs 3 is fewer than the run's 4"):
        Run.resume(TrainConfig(output_dir=str(out), epochs=3), extend_epochs=True)


def test_trim_log_drops_uncheckpointed_epochs_and_a_half_written_row(tmp_path):
    cfg = TrainConfig(output_dir=str(tmp_path / "r"))
    run = Run.create(cfg)
    run.write_record(_record(cfg))
    for e in (1, 2, 3):
        run.append_log(_row(e))
    with open(run.log_path, "a") as f:
        f.write("1")  # killed after the first byte of epoch 13's row: reads as epoch 1, fields missing
    run.trim_log(2)
    text = run.log_path.read_text()
    assert [line.split(",")[0] for line in text.splitlines()] == ["epoch", "1", "2"]
    run.append_log(_row(3))  # training goes on appending to the trimmed file
    assert run.log_path.read_text().splitlines()[-1].split(",")[0] == "3"
    assert json.loads((run.path / "run.json").read_text())["schedule"] == {"steps_per_epoch": 3}
