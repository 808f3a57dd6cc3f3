"""``--set KEY=VALUE``: model settings from the command line, checked like a recipe's model_overrides,
above the recipe and below nothing else; and every command's parser is built and its help printed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from mambaspike.cli import COMMANDS, main

SRC = str(Path(__file__).resolve().parents[1] / "src")  # this checkout, whatever is installed


def python(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": SRC}
    )


@pytest.fixture
def captured(monkeypatch):
    """The TrainConfig ``mambaspike train`` would train (training itself replaced)."""
    import mambaspike.training.trainer

    seen = {}
    monkeypatch.setattr(mambaspike.training.trainer, "train", lambda cfg, **kw: seen.update(cfg=cfg))
    return seen


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_unknown_key_is_one_line_with_the_closest_names(captured, capsys):
    assert main(["train", "--set", "d_modle=64"]) == 1
    line = one_error_line(capsys)
    assert line.startswith("mambaspike train: error: --set: unknown model key(s) d_modle (closest: d_model")
    assert "allowed: " in line and "neuron" in line and "input_shape" not in line  # derived from the data set
    assert "cfg" not in captured


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("d_model=abc", "--set: d_model = 'abc': expected an integer >= 1"),
        ("channels=[16,x]", "--set: channels = [16, 'x']: expected a non-empty list of integers >= 1"),
        ("learn_tau=3", "--set: learn_tau = 3: expected true or false"),
        ("tau_ms=5e-4", "tau_ms = '5e-4': expected a finite number > 0 (ms) (YAML reads 5e-4 as text"),
        ("channels=[16,32", "--set channels=[16,32: not a YAML value"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_naming_the_key(setting, message, captured, capsys):
    assert main(["train", "--set", setting]) == 1
    assert message in one_error_line(capsys)
    assert "cfg" not in captured


def test_a_setting_without_a_value_is_an_option_error(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--set", "d_model"])
    assert exit.value.code == 2
    assert "argument --set: expected KEY=VALUE (e.g. d_model=64), got 'd_model'" in one_error_line(capsys)


def test_values_are_yaml_and_take_the_fields_types(captured):
    assert (
        main(
            [
                "train",
                "--set",
                "neuron=srm",
                "--set",
                "d_model=64",
                "--set",
                "channels=[16,32]",
                "--set",
                "tau_ms=20",
                "--set",
                "learn_tau=false",
                "--set",
                "rnn_hidden=null",
            ]
        )
        == 0
    )
    assert captured["cfg"].model_overrides == {
        "neuron": "srm",
        "d_model": 64,
        "channels": (16, 32),
        "tau_ms": 20.0,
        "learn_tau": False,
        "rnn_hidden": None,
    }


def test_set_overrides_the_recipe_and_explicit_options_still_win(captured):
    assert (
        main(
            [
                "train",
                "--config",
                "dvsgesture-mambaspike",
                "--set",
                "tau_ms=12.5",
                "--set",
                "d_model=48",
                "--epochs",
                "3",
            ]
        )
        == 0
    )
    cfg = captured["cfg"]
    assert cfg.model_overrides["tau_ms"] == 12.5 and cfg.model_overrides["d_model"] == 48
    assert cfg.model_overrides["channels"] == (16, 32, 64)  # the recipe's, not set
    assert cfg.epochs == 3 and cfg.batch_size == 16  # explicit; from the recipe


def test_set_on_resume_is_refused(captured, capsys):
    assert main(["train", "--resume", "--set", "d_model=64"]) == 1
    assert "a resumed run keeps the model settings" in one_error_line(capsys)


def test_compare_and_ablate_take_set_over_model_config(monkeypatch, tmp_path, capsys):
    import mambaspike.lab.ablate
    import mambaspike.lab.compare

    seen = {}

    def fake(name):
        def run(out, base, **kw):
            seen[name] = base
            (tmp_path / f"{name}.md").write_text("table")

        return run

    monkeypatch.setattr(mambaspike.lab.compare, "compare", fake("compare"))
    monkeypatch.setattr(mambaspike.lab.ablate, "ablate", fake("ablation"))
    common = ["--output-dir", str(tmp_path), "--model-config", '{"d_model": 64, "n_layers": 1}', "--set", "d_model=32"]
    assert main(["compare", *common]) == 0 and main(["ablate", *common]) == 0
    for name in ("compare", "ablation"):
        assert seen[name].model_overrides == {"d_model": 32, "n_layers": 1}
    assert main(["compare", "--output-dir", str(tmp_path), "--model-config", '{"d_modle": 64}']) == 1
    assert "--model-config: unknown model key(s) d_modle (closest: d_model" in one_error_line(capsys)


def test_a_set_value_reaches_the_trained_model(data_dir, tmp_path):
    from mambaspike.training.run import load_run

    out = tmp_path / "run"
    settings = ["tau_ms=12.5", "learn_tau=false", "recurrent=false", "channels=[4,8]", "d_model=24", "n_layers=1"]
    assert (
        main(
            [
                "train",
                "--data-dir",
                str(data_dir),
                "--output-dir",
                str(out),
                "--subset",
                "8",
                "--epochs",
                "1",
                "--time-window",
                "50000",
                "--no-progress",
                "--threads",
                "2",
                *(a for s in settings for a in ("--set", s)),
            ]
        )
        == 0
    )
    saved = json.loads((out / "run.json").read_text())
    assert saved["model"]["tau_ms"] == 12.5 and saved["model"]["channels"] == [4, 8]
    model = load_run(out).model()  # the saved weights fit a model of these sizes
    blocks = model.frontend.blocks
    assert len(blocks) == 2 and blocks[0].conv.out_channels == 4 and blocks[1].conv.out_channels == 8
    assert all(b.lif.tau == pytest.approx(12.5, rel=1e-5) and b.recurrent is None for b in blocks)
    assert [m.in_features for m in model.head.modules() if isinstance(m, nn.Linear)] == [24]
    assert len(model.backbone.layers) == 1


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_prints_its_help(command, capsys):
    with pytest.raises(SystemExit) as exit:
        main([command, "--help"])
    assert exit.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: mambaspike {command}") and "--help" in text


def test_top_level_help_lists_every_command_without_importing_torch():
    code = (
        "import sys\nfrom mambaspike.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit as e:\n"
        "    assert e.code == 0\nprint('torch' in sys.modules)"
    )
    r = python("-c", code)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "False"
    for name, module in COMMANDS.items():
        assert name in r.stdout and module.HELP.split()[0] in r.stdout
