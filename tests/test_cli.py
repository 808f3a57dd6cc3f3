"""The command line: help texts, one-line errors with a non-zero exit, and train/eval end to end."""

import json
import subprocess
import sys

import pytest

from mambaspike.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mambaspike", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["eval", "--help"]])
def test_help_lists_the_options(args):
    r = run_cli(*args)
    assert r.returncode == 0 and r.stderr == ""
    if args[0] == "train":
        for flag in (
            "--dataset",
            "--model",
            "--epochs",
            "--batch-size",
            "--lr",
            "--weight-decay",
            "--time-window",
            "--dt",
            "--data-dir",
            "--output-dir",
            "--seed",
            "--resume",
            "--subset",
        ):
            assert flag in r.stdout, flag


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--no-such-option"], "unrecognized arguments: --no-such-option"),
        (["train", "--dataset", "imagenet"], "argument --dataset: invalid choice: 'imagenet'"),
        (["train", "--model", "transformer"], "argument --model: invalid choice: 'transformer'"),
        (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got '0'"),
        (["train", "--lr", "fast"], "argument --lr: expected a positive number, got 'fast'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_options_give_one_line_and_exit_2(args, message):
    r = run_cli(*args)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr


def test_eval_of_a_missing_run_is_one_line_exit_1(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mambaspike eval: error:") and "no such run directory" in err[0]


def test_missing_nmnist_is_one_line_exit_1(tmp_path, capsys):
    code = main(["train", "--dataset", "nmnist", "--data-dir", str(tmp_path), "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "N-MNIST not found" in err[0]


def test_train_then_eval_through_the_cli(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data-dir",
            str(data_dir),
            "--output-dir",
            str(out),
            "--subset",
            "40",
            "--epochs",
            "1",
            "--model",
            "gru",
            "--no-progress",
            "--threads",
            "2",
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "gru" and metrics["selected_by"] == "val"
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    # a second train into the same directory is refused on one line
    code = main(["train", "--data-dir", str(data_dir), "--output-dir", str(out), "--subset", "40", "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "already holds a run" in err[0]
