"""``mambaspike bench gpu``: the dry run end to end (every step named; the CPU-capable ones run), and a
failed check stopping the run loudly."""

import json

import pytest
import torch

from mambaspike.bench import gpu
from mambaspike.cli import main


def test_dry_run_names_every_step_and_runs_what_the_cpu_can(tmp_path, capsys):
    assert main(["bench", "gpu", "--dry-run", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    rows = {r["step"]: r for r in report["rows"]}
    names = [s.name for s in gpu.steps()]
    assert list(rows) == names and report["environment"]["dry_run"] is True
    for step in gpu.steps():
        status = rows[step.name]["status"]
        if step.needs_cuda:
            assert status == (gpu.NO_CUDA if not torch.cuda.is_available() else "skipped: --dry-run"), step.name
        else:
            assert status == "ok (dry run: cpu, tiny shapes)", (step.name, rows[step.name].get("error"))
            if step.kind == "check":
                assert rows[step.name]["max_rel_err"] <= rows[step.name]["tol"] or "bf16" in step.name
    for model in gpu.MODELS:
        assert rows[f"time/dvsgesture/{model}"]["latency_ms"] > 0
        assert rows[f"model/{model}/bf16"]["grad_cosine"] >= gpu.BF16_BOUNDS["smooth"][2] or model == "mambaspike"
    md = (tmp_path / "gpu_check.md").read_text()
    assert all(f"| {n} |" in md for n in names)
    out = capsys.readouterr().out
    assert all(n in out for n in names)


def test_first_mismatch_stops_the_run_naming_the_step(tmp_path, monkeypatch, capsys):
    def wrong(ctx):
        return gpu._compare({"y": torch.ones(3) * 1.1}, {"y": torch.ones(3)}, 1e-4)

    def never(ctx):
        raise AssertionError("ran after a failed step")

    monkeypatch.setattr(
        gpu,
        "steps",
        lambda: [
            gpu.Step("scan/parallel", gpu._scan_check("parallel"), needs_cuda=False),
            gpu.Step("broken/path", wrong, needs_cuda=False),
            gpu.Step("later/step", never, needs_cuda=False),
        ],
    )
    assert main(["bench", "gpu", "--dry-run", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "device check FAILED at step broken/path: y: relative error 0.1 > 0.0001" in err
    rows = json.loads((tmp_path / "gpu_check.json").read_text())["rows"]
    assert [r["step"] for r in rows] == ["scan/parallel", "broken/path"]
    assert rows[1]["status"] == "FAILED"
    assert "FAILED at broken/path" in (tmp_path / "gpu_check.md").read_text()


def test_a_path_that_raises_fails_its_step(tmp_path, monkeypatch, capsys):
    def boom(ctx):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(gpu, "steps", lambda: [gpu.Step("lif/auto", boom, needs_cuda=False)])
    assert main(["bench", "gpu", "--dry-run"]) == 1
    assert "lif/auto: RuntimeError: CUDA error: an illegal memory access" in capsys.readouterr().err


def test_compare_rejects_non_finite_and_wrong_shapes():
    with pytest.raises(gpu.CheckFailed, match="grad u: relative error inf"):
        gpu._compare({"grad u": torch.tensor([float("nan")])}, {"grad u": torch.tensor([1.0])}, 1e-4)
    with pytest.raises(gpu.CheckFailed, match=r"shape \(2,\) against the reference's \(3,\)"):
        gpu._compare({"y": torch.ones(2)}, {"y": torch.ones(3)}, 1e-4)


def test_bf16_bounds_catch_gradients_that_point_elsewhere():
    ref = {"loss": torch.ones(1), "scores": torch.ones(2, 3), "grad w": torch.ones(4)}
    fast = {**ref, "grad w": -torch.ones(4)}
    with pytest.raises(gpu.CheckFailed, match="gradients: cosine similarity -1"):
        gpu._compare_bf16(fast, ref, spiking=True)
