"""Atomic checkpoints: safetensors weights + optimizer state + a JSON record that points at both.

Layout of a run directory::

    OUTPUT_DIR/
      run.json                      configuration of the run (training, model, data)
      checkpoints/
        best.json                   best-by-validation: epoch, metrics, file names, config
        last.json                   the latest state, for --resume (also written mid-epoch)
        <tag>-e<epoch>-s<step>.safetensors / .optim.pt
      log.csv  metrics.json

Every file is written to a temporary name in the same folder, flushed to disk and renamed into
place. Weight files get a fresh name per save and the JSON record is replaced last, so at any
instant each JSON names complete files: a crash mid-save leaves the previous checkpoint usable.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from mambaspike.errors import CheckpointError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path, what: str = "file") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def save_checkpoint(
    ckpt_dir: Path,
    tag: str,
    model: torch.nn.Module,
    record: dict,
    optimizer_state: dict | None = None,
) -> dict:
    """Write ``<tag>.json`` with ``record`` plus the names of the weight and optimizer files."""
    ckpt_dir = Path(ckpt_dir)
    stem = f"{tag}-e{record.get('epoch', 0)}-s{record.get('global_step', 0)}"
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write_bytes(ckpt_dir / f"{stem}.safetensors", st_save(weights))
    record = dict(record, weights=f"{stem}.safetensors")
    if optimizer_state is not None:
        buf = io.BytesIO()
        torch.save(optimizer_state, buf)
        atomic_write_bytes(ckpt_dir / f"{stem}.optim.pt", buf.getvalue())
        record["optimizer_state"] = f"{stem}.optim.pt"
    atomic_write_json(ckpt_dir / f"{tag}.json", record)
    _remove_unreferenced(ckpt_dir)
    return record


def _remove_unreferenced(ckpt_dir: Path) -> None:
    referenced = set()
    for j in ckpt_dir.glob("*.json"):
        try:
            rec = json.loads(j.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        referenced.update(rec.get(k) for k in ("weights", "optimizer_state"))
    for f in list(ckpt_dir.glob("*.safetensors")) + list(ckpt_dir.glob("*.optim.pt")):
        if f.name not in referenced:
            f.unlink(missing_ok=True)


def load_record(ckpt_dir: Path, tag: str) -> dict:
    return read_json(Path(ckpt_dir) / f"{tag}.json", f"checkpoint record '{tag}'")


def load_weights(ckpt_dir: Path, record: dict, model: torch.nn.Module) -> None:
    path = Path(ckpt_dir) / record["weights"]
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file named by the checkpoint record is missing")
    try:
        state = st_load(path.read_bytes())
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the model (missing: {missing[:5]}, unexpected: {unexpected[:5]})"
        )


def load_optimizer_state(ckpt_dir: Path, record: dict) -> dict:
    path = Path(ckpt_dir) / record["optimizer_state"]
    if not path.is_file():
        raise CheckpointError(f"{path}: optimizer state named by the checkpoint record is missing")
    return torch.load(path, map_location="cpu", weights_only=True)
