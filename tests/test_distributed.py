"""Data-parallel training: batch sharding, and a real 2-process gloo run through torchrun on CPU."""

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from mambaspike.training.distributed import Context, shard

TINY_RECIPE = """\
dataset: ndigits
model: mambaspike
epochs: 1
batch_size: 16
lr: 0.003
model_overrides:
  channels: [4, 8, 16]
  d_model: 32
  n_layers: 1
  d_state: 8
"""


def test_single_process_takes_the_whole_batch():
    assert shard([5, 6, 7], Context()) == ([5, 6, 7], 1.0)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16])
def test_shards_cover_the_batch_once_and_weights_average_to_its_mean(n):
    batch = list(range(100, 100 + n))
    world = 3
    parts = [shard(batch, Context(rank=r, world_size=world)) for r in range(world)]
    real = [p for p, w in parts if w > 0]
    assert sorted(i for p in real for i in p) == batch
    # DDP averages the ranks' gradients, (1/world) sum_r w_r mean_r: each sample must weigh 1/n
    for p, w in parts:
        if w > 0:
            assert w / len(p) / world == pytest.approx(1 / n)
    for p, w in parts:
        assert p  # a rank without samples still runs one, with weight 0
        if w == 0:
            assert p == batch[:1]


ONE_STEP_RECIPE = """\
dataset: ndigits
model: mamba
epochs: 1
batch_size: 64
lr: 0.003
model_overrides:
  d_model: 32
  n_layers: 1
  d_state: 8
"""


def _train(args, env_extra=None, nproc=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(os.path.dirname(__file__), "..", "src"), env.get("PYTHONPATH", "")]
    )
    launcher = (
        [sys.executable, "-m", "mambaspike"]
        if nproc is None
        else [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "mambaspike",
        ]
    )
    r = subprocess.run([*launcher, "train", *args], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_two_process_gloo_run_matches_one_process(data_dir, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    common = [
        "--config",
        str(recipe),
        "--data-dir",
        str(data_dir),
        "--subset",
        "64",
        "--no-progress",
        "--threads",
        "1",
        "--device",
        "cpu",
    ]
    _train([*common, "--output-dir", str(tmp_path / "one")])
    two = _train([*common, "--output-dir", str(tmp_path / "two")], nproc=2)
    assert "distributed: 2 processes (gloo), global batch 16" in two.stdout
    one_m = json.loads((tmp_path / "one" / "metrics.json").read_text())
    two_m = json.loads((tmp_path / "two" / "metrics.json").read_text())
    # same data, same global batches and gradient scaling; only BatchNorm statistics are per rank
    assert two_m["n_test"] == one_m["n_test"] and two_m["params"] == one_m["params"]
    assert abs(two_m["test_accuracy"] - one_m["test_accuracy"]) <= 0.15
    one_log = (tmp_path / "one" / "log.csv").read_text().splitlines()
    two_log = (tmp_path / "two" / "log.csv").read_text().splitlines()
    assert len(one_log) == len(two_log) == 2  # header + one epoch, written once (rank 0)
    loss_one, loss_two = float(one_log[1].split(",")[1]), float(two_log[1].split(",")[1])
    assert loss_two == pytest.approx(loss_one, rel=0.05)
    # only rank 0 wrote: one run.json, one set of checkpoints
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").glob("*.json")) == ["best.json", "last.json"]


def _last_weights(run):
    record = json.loads((run / "checkpoints" / "last.json").read_text())
    weights = load_file(run / "checkpoints" / record["weights"])
    bn_statistics = ("running_mean", "running_var", "num_batches_tracked")
    return {k: v for k, v in weights.items() if not k.endswith(bn_statistics)}


def test_two_process_step_is_the_one_process_step(data_dir, tmp_path):
    """One optimiser step on the whole 64-sample train split (one global batch): the two ranks' gradients must
    be averaged. AdamW's first step moves every weight by about +-lr (the sign of its gradient), so a weight
    whose step differs by more than lr / 2 has a gradient of another sign. With the all-reduce, 0.75% of the
    weights do (BatchNorm's batch statistics are per rank; floating-point order); without it (each rank
    stepping on its own half-batch gradient) 29% do."""
    recipe = tmp_path / "one-step.yaml"
    recipe.write_text(ONE_STEP_RECIPE)
    common = ["--config", str(recipe), "--data-dir", str(data_dir), "--subset", "64", "--no-progress"]
    common += ["--threads", "1", "--device", "cpu"]
    _train([*common, "--output-dir", str(tmp_path / "one")])
    _train([*common, "--output-dir", str(tmp_path / "two")], nproc=2)
    for run in ("one", "two"):
        assert json.loads((tmp_path / run / "checkpoints" / "last.json").read_text())["global_step"] == 1
    one, two = _last_weights(tmp_path / "one"), _last_weights(tmp_path / "two")
    assert one.keys() == two.keys()
    differing = sum(int(((one[k] - two[k]).abs() > 0.0015).sum()) for k in one)
    total = sum(v.numel() for v in one.values())
    assert differing / total < 0.05, f"{differing} of {total} weights took another step than in one process"
