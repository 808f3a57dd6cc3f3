"""Checkpoint files: atomic writes, a save killed half-way, temporary and unreferenced files, every
``CheckpointError`` path (missing, truncated, corrupt, not a record) and the fall-back to the previous one."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from mambaspike.errors import CheckpointError
from mambaspike.training.checkpoint import (
    atomic_write_bytes,
    load_checkpoint,
    load_optimizer_state,
    load_record,
    load_weights,
    read_json,
    save_checkpoint,
)

SRC = Path(__file__).resolve().parents[1] / "src"


def model_at(step: float, n: int = 64) -> nn.Module:
    m = nn.Linear(n, n)
    with torch.no_grad():
        m.weight.fill_(step)
        m.bias.fill_(step)
    return m


def save(ckpt, step, **kw):
    model = model_at(step)
    opt = {"state": {}, "param_groups": [{"lr": 0.1 * step, "params": [0, 1]}]}
    return save_checkpoint(ckpt, "last", model, {"epoch": 0, "global_step": step}, opt, keep_previous=True, **kw)


def loaded_step(ckpt, record) -> float:
    m = model_at(-1)
    load_weights(ckpt, record, m)
    assert torch.all(m.weight == m.weight[0, 0])
    return float(m.weight[0, 0].detach())


def test_atomic_write_replaces_in_one_step_and_leaves_no_temporary(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    atomic_write_bytes(tmp_path / "a" / "f.bin", b"one")
    atomic_write_bytes(tmp_path / "a" / "f.bin", b"two")
    assert (tmp_path / "a" / "f.bin").read_bytes() == b"two"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["f.bin"]
    assert len(synced) == 4  # the file and its folder, per write

    class Boom(Exception):
        pass

    def failing_replace(src, dst):
        raise Boom

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(Boom):
        atomic_write_bytes(tmp_path / "a" / "f.bin", b"three")
    assert (tmp_path / "a" / "f.bin").read_bytes() == b"two"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["f.bin"]


def test_save_keeps_the_previous_record_and_removes_stale_files(tmp_path):
    ckpt = tmp_path / "checkpoints"
    save(ckpt, 1)
    (ckpt / ".last-e0-s1.safetensors.abc.tmp").write_bytes(b"half a file")  # a killed save's leftover
    (ckpt / "orphan-e9-s9.safetensors").write_bytes(b"x")
    save(ckpt, 2)
    save(ckpt, 3)
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == [
        "last-e0-s2.optim.pt",
        "last-e0-s2.safetensors",
        "last-e0-s3.optim.pt",
        "last-e0-s3.safetensors",
        "last.json",
        "last.json.prev",
    ]
    assert read_json(ckpt / "last.json.prev")["global_step"] == 2
    rec = load_checkpoint(ckpt)
    assert rec["global_step"] == 3 and loaded_step(ckpt, rec) == 3.0
    assert load_optimizer_state(ckpt, rec)["param_groups"][0]["lr"] == pytest.approx(0.3)


def _damage_weights(ckpt, rec):
    p = ckpt / rec["weights"]
    p.write_bytes(p.read_bytes()[:-10])  # truncated
    return p


def _flip_optimizer_byte(ckpt, rec):
    p = ckpt / rec["optimizer_state"]
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    return p


def _remove_weights(ckpt, rec):
    p = ckpt / rec["weights"]
    p.unlink()
    return p


def _corrupt_json(ckpt, rec):
    p = ckpt / "last.json"
    p.write_text(p.read_text()[:50])
    return p


def _not_a_record(ckpt, rec):
    p = ckpt / "last.json"
    p.write_text(json.dumps([1, 2]))
    return p


@pytest.mark.parametrize(
    "damage, message",
    [
        (_damage_weights, "weights file is truncated or corrupt"),
        (_flip_optimizer_byte, "optimizer state is truncated or corrupt"),
        (_remove_weights, "weights file named by the checkpoint record is missing"),
        (_corrupt_json, "not valid JSON"),
        (_not_a_record, "not a checkpoint record"),
    ],
)
def test_a_damaged_checkpoint_is_one_error_naming_the_file_and_falls_back(tmp_path, damage, message):
    ckpt = tmp_path / "checkpoints"
    save(ckpt, 1)
    rec = save(ckpt, 2)
    bad = damage(ckpt, rec)
    messages = []
    fallback = load_checkpoint(ckpt, log=messages.append)
    assert fallback["global_step"] == 1 and loaded_step(ckpt, fallback) == 1.0
    assert len(messages) == 1 and str(bad) in messages[0] and message in messages[0]
    # without a good previous one: the error itself, naming the damaged file
    (ckpt / "last.json.prev").unlink()
    with pytest.raises(CheckpointError, match=message) as e:
        load_checkpoint(ckpt)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_loading_a_damaged_file_directly_raises_checkpoint_error(tmp_path):
    ckpt = tmp_path / "checkpoints"
    rec = save(ckpt, 1)
    rec_no_hash = {k: v for k, v in rec.items() if k != "sha256"}  # a record from before the SHA-256
    (ckpt / rec["weights"]).write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_weights(ckpt, rec_no_hash, model_at(0))
    (ckpt / rec["optimizer_state"]).write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="not a readable optimizer state"):
        load_optimizer_state(ckpt, rec_no_hash)
    with pytest.raises(CheckpointError, match="weights do not match the model"):
        save(ckpt, 2)
        load_weights(ckpt, load_record(ckpt, "last"), nn.Linear(3, 3))
    with pytest.raises(CheckpointError, match="checkpoint record 'best' not found"):
        load_record(ckpt, "best")
    with pytest.raises(CheckpointError, match="names no optimizer state"):
        load_optimizer_state(ckpt, {"weights": rec["weights"]})
    with pytest.raises(CheckpointError, match="not found"):
        read_json(tmp_path / "nothing.json")


WRITER = textwrap.dedent(
    """
    import sys, torch
    from torch import nn
    from mambaspike.training.checkpoint import save_checkpoint
    step = 0
    while True:
        step += 1
        m = nn.Linear(512, 512)
        with torch.no_grad():
            m.weight.fill_(step); m.bias.fill_(step)
        save_checkpoint(sys.argv[1], "last", m, {"epoch": 0, "global_step": step}, {"state": {}, "param_groups": []},
                        keep_previous=True)
        print(step, flush=True)
    """
)


def test_a_save_killed_at_random_moments_always_leaves_a_loadable_checkpoint(tmp_path):
    ckpt = tmp_path / "checkpoints"
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    for delay in (0.013, 0.027, 0.041, 0.003, 0.019):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(ckpt)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdout.readline()  # at least one save finished
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        rec = load_checkpoint(ckpt)
        m = nn.Linear(512, 512)
        load_weights(ckpt, rec, m)
        assert torch.all(m.weight == rec["global_step"])
