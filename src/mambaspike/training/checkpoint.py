"""Atomic checkpoints: safetensors weights + optimizer state + a JSON record that points at both.

Layout of a run directory::

    OUTPUT_DIR/
      run.json                      configuration of the run (training, model, data)
      checkpoints/
        best.json                   best-by-validation: epoch, metrics, file names, config
        last.json                   the latest state, for --resume (also written mid-epoch)
        last.json.prev              the ``last`` before it, the fall-back when ``last`` is unreadable
        <tag>-e<epoch>-s<step>.safetensors / .optim.pt
      log.csv  metrics.json

Every file is written to a temporary name in the same folder, flushed and fsynced, renamed into
place with ``os.replace`` and the folder fsynced. Weight files get a fresh name per save and the
JSON record is replaced last, so at any instant each JSON names complete files: a crash mid-save
leaves the previous checkpoint usable. Each record holds the SHA-256 of the files it names, so a
truncated or corrupt file is one :class:`CheckpointError` naming it. Temporary files a killed save
left behind are removed at the next save.
"""

from __future__ import annotations

import hashlib
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
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    keep_previous: bool = False,
) -> dict:
    """Write ``<tag>.json`` with ``record`` plus the names and SHA-256 of the weight and optimizer
    files. With ``keep_previous``, the record being replaced is kept as ``<tag>.json.prev`` (with
    its files) until the next save: the fall-back of :func:`load_checkpoint`."""
    ckpt_dir = Path(ckpt_dir)
    stem = f"{tag}-e{record.get('epoch', 0)}-s{record.get('global_step', 0)}"
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    data = st_save(weights)
    atomic_write_bytes(ckpt_dir / f"{stem}.safetensors", data)
    record = dict(record, weights=f"{stem}.safetensors", sha256={"weights": _sha256(data)})
    if optimizer_state is not None:
        buf = io.BytesIO()
        torch.save(optimizer_state, buf)
        atomic_write_bytes(ckpt_dir / f"{stem}.optim.pt", buf.getvalue())
        record["optimizer_state"] = f"{stem}.optim.pt"
        record["sha256"]["optimizer_state"] = _sha256(buf.getvalue())
    current = ckpt_dir / f"{tag}.json"
    if keep_previous and current.is_file():
        atomic_write_bytes(previous_record_path(ckpt_dir, tag), current.read_bytes())
    atomic_write_json(current, record)
    _remove_unreferenced(ckpt_dir)
    return record


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _remove_unreferenced(ckpt_dir: Path) -> None:
    """Delete weight / optimizer files no record names, and the temporary files of killed saves."""
    referenced = set()
    for j in [*ckpt_dir.glob("*.json"), *ckpt_dir.glob("*.json.prev")]:
        try:
            rec = json.loads(j.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(rec, dict):
            referenced.update(rec.get(k) for k in ("weights", "optimizer_state"))
    for f in list(ckpt_dir.glob("*.safetensors")) + list(ckpt_dir.glob("*.optim.pt")):
        if f.name not in referenced:
            f.unlink(missing_ok=True)
    for f in ckpt_dir.glob(".*.tmp"):
        f.unlink(missing_ok=True)


def previous_record_path(ckpt_dir: Path, tag: str) -> Path:
    """Where the record ``<tag>.json`` replaced by the latest save is kept: ``<tag>.json.prev``."""
    return Path(ckpt_dir) / f"{tag}.json.prev"


def load_record(ckpt_dir: Path, tag: str) -> dict:
    """The record ``<tag>.json`` (a dict naming the files); :class:`CheckpointError` naming the file
    when it is missing, not JSON or not a record."""
    return _read_record(Path(ckpt_dir) / f"{tag}.json", f"checkpoint record '{tag}'")


def _read_record(path: Path, what: str) -> dict:
    record = read_json(path, what)
    if not isinstance(record, dict) or not isinstance(record.get("weights"), str):
        raise CheckpointError(f"{path}: not a checkpoint record (no 'weights' entry)")
    return record


def _read_named(ckpt_dir: Path, record: dict, key: str, what: str) -> tuple[Path, bytes]:
    """The bytes of the file ``record[key]`` names, checked against the record's SHA-256."""
    name = record.get(key)
    if not isinstance(name, str):
        raise CheckpointError(f"{Path(ckpt_dir)}: checkpoint record names no {what} ({key!r} missing)")
    path = Path(ckpt_dir) / name
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} named by the checkpoint record is missing")
    data = path.read_bytes()
    expected = (record.get("sha256") or {}).get(key)
    if expected is not None and _sha256(data) != expected:
        raise CheckpointError(
            f"{path}: {what} is truncated or corrupt ({len(data)} bytes, SHA-256 differs from the checkpoint record)"
        )
    return path, data


def verify_checkpoint(ckpt_dir: Path, record: dict) -> None:
    """Check that the files ``record`` names exist and match its SHA-256 (:class:`CheckpointError`)."""
    _read_named(ckpt_dir, record, "weights", "weights file")
    if "optimizer_state" in record:
        _read_named(ckpt_dir, record, "optimizer_state", "optimizer state")


def load_checkpoint(ckpt_dir: Path, tag: str = "last", log=None) -> dict:
    """The record of ``tag`` after checking its files; when that record or its files are unreadable,
    the previous one (``<tag>.json.prev``) if it is good (``log`` says so). Raises the first
    :class:`CheckpointError` (naming the bad file) when neither is usable."""
    try:
        record = load_record(ckpt_dir, tag)
        verify_checkpoint(ckpt_dir, record)
        return record
    except CheckpointError as first:
        try:
            previous = previous_record_path(ckpt_dir, tag)
            record = _read_record(previous, f"previous checkpoint record '{tag}'")
            verify_checkpoint(ckpt_dir, record)
        except CheckpointError:
            raise first from None
        if log is not None:
            log(f"{first}; using the previous checkpoint ({previous.name}, step {record.get('global_step')})")
        return record


def load_weights(ckpt_dir: Path, record: dict, model: torch.nn.Module) -> None:
    path, data = _read_named(ckpt_dir, record, "weights", "weights file")
    try:
        state = st_load(data)
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of another shape
        detail = " ".join(str(e).split())
        raise CheckpointError(f"{path}: weights do not match the model ({detail[:300]})") from None
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the model (missing: {missing[:5]}, unexpected: {unexpected[:5]})"
        )


def load_optimizer_state(ckpt_dir: Path, record: dict) -> dict:
    path, data = _read_named(ckpt_dir, record, "optimizer_state", "optimizer state")
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle / zip errors for a damaged file
        raise CheckpointError(f"{path}: not a readable optimizer state ({type(e).__name__}: {e})") from None
