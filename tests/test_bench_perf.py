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


def test_bench_model_stages_fractions(capsys):
    rows = _rows(
        capsys,
        ["bench", "model", "--json", "--stages", "--models", "mambaspike", "gru", "--inputs", "nmnist"]
        + ["--T", "4", "--batch", "1", "--repeats", "1"],
    )
    expected = {
        "mambaspike": {"conv", "norm", "lif", "pool", "temporal_pool", "interface", "backbone", "head", "other"},
        "gru": {"conv", "norm", "relu", "pool", "temporal_pool", "interface", "backbone", "head", "other"},
    }
    assert [r["model"] for r in rows] == ["mambaspike", "gru"]
    for r in rows:
        fracs = {k[len("frac_") :]: v for k, v in r.items() if k.startswith("frac_")}
        assert set(fracs) == expected[r["model"]]
        assert all(0.0 <= v <= 1.0 for v in fracs.values()), fracs
        assert sum(fracs.values()) == pytest.approx(1.0, abs=1e-6)
        assert fracs["conv"] > 0 and fracs["backbone"] > 0
        assert r["conv_gmacs"] > 0 and r["gemm_gmacs"] > 0 and r["profiled_step_ms"] > 0


def test_stage_profile_removes_its_hooks_and_counts_conv_macs():
    """The profiled model keeps no hooks; conv MACs: forward, weight gradient, and the input gradient
    except for the first layer (its input is the data)."""
    import torch

    from mambaspike.bench.inputs import bench_config, bench_input
    from mambaspike.bench.stages import conv_macs, stage_modules, stage_profile
    from mambaspike.models.registry import build_model, loss_and_scores

    cfg, _ = bench_config("mamba", "nmnist")
    model = build_model(cfg)
    x, y = bench_input(cfg, 3, 1), torch.zeros(1, dtype=torch.long)

    def step():
        model.zero_grad(set_to_none=True)
        loss_and_scores(model, x, y)[0].backward()

    prof = stage_profile(model, step, repeats=1)
    assert {"step_ms", "conv_ms", "backbone_ms", "other_ms"} <= set(prof)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    # 3 bins at 34x34 (2 -> 16), then 2 pooled bins at 17x17 (16 -> 32) and 8x8 (32 -> 64)
    expected = 3 * 16 * 34 * 34 * 2 * 9 * 2 + 2 * 32 * 17 * 17 * 16 * 9 * 3 + 2 * 64 * 8 * 8 * 32 * 9 * 3
    assert conv_macs(model, stage_modules(model), lambda: loss_and_scores(model, x, y)) == expected


def test_bench_model_stages_names_unsupported_models(capsys):
    assert main(["bench", "model", "--stages", "--models", "spiking-mamba", "--inputs", "nmnist"]) == 1
    assert "--stages: no stage breakdown for spiking-mamba" in capsys.readouterr().err
