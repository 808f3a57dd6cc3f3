"""`mambaspike bench scan|model|stream` run end to end at tiny sizes (no timing assertions)."""

import json

import pytest

from mambaspike.cli import main


def _rows(capsys, argv):
    assert main(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_bench_scan_json(capsys):
    rows = _rows(
        capsys,
        [
            "bench",
            "scan",
            "--json",
            "--L",
            "8",
            "--batch",
            "2",
            "--d-inner",
            "4",
            "--d-state",
            "3",
            "--repeats",
            "1",
            "--no-memory",
            "--no-mambapy",
        ],
    )
    assert {r["pass"] for r in rows} == {"fwd", "fwd+bwd"}
    for r in rows:
        for key in (
            "name",
            "L",
            "reference_s",
            "fast_s",
            "speedup",
            "reference_peak_mb",
            "fast_peak_mb",
            "threads",
            "device",
        ):
            assert key in r
        assert r["max_rel_diff"] < 1e-4


def test_bench_stream_json(capsys):
    rows = _rows(
        capsys,
        [
            "bench",
            "stream",
            "--json",
            "--models",
            "mambaspike",
            "mamba",
            "--input",
            "smnist",
            "--T",
            "12",
            "--repeats",
            "1",
        ],
    )
    assert [r["model"] for r in rows] == ["mambaspike", "mamba"]
    assert all(r["max_abs_diff"] <= 1e-5 and r["ms_per_bin"] > 0 for r in rows)


def test_bench_model_json(capsys):
    rows = _rows(
        capsys,
        [
            "bench",
            "model",
            "--json",
            "--models",
            "gru",
            "mambaspike",
            "--inputs",
            "smnist",
            "--T",
            "8",
            "--batch",
            "2",
            "--repeats",
            "1",
        ],
    )
    assert [r["model"] for r in rows] == ["gru", "mambaspike"]
    assert all(r["params"] > 0 and r["train_samples_per_s"] > 0 and r["latency_ms"] > 0 for r in rows)


@pytest.mark.slow
def test_bench_scan_memory_in_subprocess(capsys):
    rows = _rows(
        capsys,
        [
            "bench",
            "scan",
            "--json",
            "--L",
            "64",
            "--batch",
            "2",
            "--d-inner",
            "8",
            "--repeats",
            "1",
            "--passes",
            "fwd+bwd",
            "--no-mambapy",
        ],
    )
    assert rows[0]["reference_peak_mb"] is not None


def test_bench_model_names_a_bad_or_missing_device(capsys):
    assert main(["bench", "model", "--no-train", "--device", "tpu"]) == 1
    assert "--device: expected auto, cpu, cuda or cuda:N, got 'tpu'" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        assert main(["bench", "model", "--no-train", "--device", "cuda"]) == 1
        assert "no CUDA GPU is available" in capsys.readouterr().err
