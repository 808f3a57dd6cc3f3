"""CIFAR10-DVS (Li et al. 2017): 10,000 DVS128 recordings of CIFAR-10 images, 128x128x2, 10 classes.

Layout: ``DATA_DIR/CIFAR10DVS/<class>/*.aedat`` (the original AEDAT 2.0 release, files named
``cifar10_<class>_<index>.aedat``) or ``*.aedat4`` (tonic's conversion; needs the ``aedat`` package).

No official split: per class, files are ordered by their index (the trailing number of the name) and
the first 90% (``round(0.9 * n)``) are train, the rest test (900/100 per class for the full set).

AEDAT 2.0: ``#``-prefixed text header lines (first ``#!AER-DAT2.0``), then big-endian 8-byte events:
uint32 address, uint32 timestamp (µs). DVS128 address (jAER): bit 0 polarity (1 = ON), bits 1-7 x,
bits 8-14 y; bit 15 set marks an external (special) event, which is dropped. Timestamps are shifted
to start at 0. The header is validated here, then tonic's ``get_aer_events_from_file`` reads the events.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mambaspike.data.errors import DatasetError
from mambaspike.data.sources import FileListSource, event_array, tonic_download

SENSOR_SIZE = (128, 128, 2)
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_FRACTION = 0.9
URL = "https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671"
LAYOUT = "DATA_DIR/CIFAR10DVS/<class>/cifar10_<class>_<index>.aedat (AEDAT 2.0) or .aedat4, classes " + ", ".join(
    CLASS_NAMES
)
EVENT_BYTES = 8


def aedat2_data_start(data: bytes, path: str | Path = "<bytes>") -> int:
    """Validate an AEDAT 2.0 header; return the byte offset where events start."""
    if not data.startswith(b"#!AER-DAT2"):
        raise DatasetError(f"{path}: byte offset 0: not an AEDAT 2.0 file (expected a '#!AER-DAT2.0' header line)")
    offset = 0
    while offset < len(data) and data[offset : offset + 1] == b"#":
        newline = data.find(b"\n", offset)
        if newline < 0:
            raise DatasetError(f"{path}: byte offset {offset}: header line without end (truncated header)")
        offset = newline + 1
    return offset


def decode_dvs128(address: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
    """Events from DVS128 addresses and µs timestamps (special events dropped, t shifted to 0)."""
    keep = (address & 0x8000) == 0
    address, t = address[keep], timestamp[keep].astype(np.int64)
    return event_array((address >> 1) & 0x7F, (address >> 8) & 0x7F, t - (t.min() if len(t) else 0), address & 1)


def read_aedat2(path: str | Path) -> np.ndarray:
    """One AEDAT 2.0 DVS128 recording as events (x, y, t µs from 0, p), validated first."""
    from tonic.io import get_aer_events_from_file

    data = Path(path).read_bytes()
    start = aedat2_data_start(data, path)
    body = len(data) - start
    if body % EVENT_BYTES:
        raise DatasetError(
            f"{path}: {body} event bytes after the header (offset {start}) is not a multiple of 8; "
            f"truncated event at byte offset {len(data) - body % EVENT_BYTES}"
        )
    raw = np.frombuffer(data, dtype=">u4", offset=start).reshape(-1, 2)
    bad = np.flatnonzero(raw[:, 0] >= 1 << 16)
    if len(bad):
        raise DatasetError(
            f"{path}: event {int(bad[0])} (byte offset {start + 8 * int(bad[0])}) has address "
            f"{raw[bad[0], 0]:#x}, not a DVS128 address (< 0x10000)"
        )
    events = get_aer_events_from_file(str(path), 2.0, start)
    return decode_dvs128(events["address"].astype(np.uint32), events["timeStamp"].astype(np.uint32))


def read_aedat4(path: str | Path) -> np.ndarray:
    """One tonic ``.aedat4`` recording through tonic's reader (needs the ``aedat`` package)."""
    try:
        import aedat  # noqa: F401
    except ImportError:
        raise DatasetError(
            f"{path}: reading .aedat4 needs the 'aedat' package (pip install aedat), "
            f"or use the original .aedat (AEDAT 2.0) files"
        ) from None
    from tonic.io import read_aedat4 as tonic_read_aedat4

    try:
        raw = tonic_read_aedat4(str(path))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as err:  # the Rust decoder panics (pyo3 PanicException is a BaseException)
        raise DatasetError(f"{path}: not a readable AEDAT 4 file ({err})") from err
    t = raw["t"].astype(np.int64)
    return event_array(
        raw["x"], raw["y"], t - (t.min() if len(t) else 0), raw["on"] if "on" in raw.dtype.names else raw["p"]
    )


def _index(path: Path) -> tuple[int, str]:
    m = re.search(r"(\d+)$", path.stem)
    return (int(m.group(1)) if m else -1, path.name)


def _read(path: str) -> np.ndarray:
    return read_aedat4(path) if path.endswith(".aedat4") else read_aedat2(path)


def open_cifar10dvs(data_dir: Path, download: bool) -> tuple[FileListSource, FileListSource]:
    from mambaspike.data.registry import missing

    root = data_dir / "CIFAR10DVS"
    if not root.is_dir() or not any((root / c).is_dir() for c in CLASS_NAMES):
        if download:
            tonic_download("CIFAR10DVS", data_dir)
            return open_cifar10dvs(data_dir, download=False)
        raise missing("cifar10dvs", data_dir, "CIFAR10-DVS not found")
    splits = {"train": ([], []), "test": ([], [])}
    for label, name in enumerate(CLASS_NAMES):
        files = sorted([*(root / name).glob("*.aedat"), *(root / name).glob("*.aedat4")], key=_index)
        if not files:
            raise DatasetError(f"no .aedat/.aedat4 files in {root / name}: expected {LAYOUT}")
        n_train = round(TRAIN_FRACTION * len(files))
        for i, f in enumerate(files):
            keys, targets = splits["train" if i < n_train else "test"]
            keys.append(str(f))
            targets.append(label)
    train, test = (FileListSource(root, s, *splits[s], SENSOR_SIZE, _read) for s in ("train", "test"))
    if not len(test):
        raise DatasetError(f"{root}: too few files per class for a 9:1 train/test split")
    return train, test


def _entry():
    from mambaspike.data.registry import Augment, DatasetEntry

    return DatasetEntry(
        name="cifar10dvs",
        summary="CIFAR10-DVS (Li et al. 2017): 10 classes, 128x128x2, per-class 9:1 split by file index",
        layout=LAYOUT,
        source=URL,
        open=open_cifar10dvs,
        class_names=CLASS_NAMES,
        time_window_us=1_000_000,
        dt_us=100_000,  # T = 10
        augment=Augment(max_shift=8, flip_x=True, drop=0.1),
        can_download=True,
    )


ENTRY = _entry()


def encode_aedat2(events: np.ndarray) -> bytes:
    """AEDAT 2.0 bytes (header + big-endian address/timestamp pairs) for DVS128 events (tests)."""
    head = (
        b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
        b"# Data format is int32 address, int32 timestamp\r\n"
    )
    raw = np.empty((len(events), 2), dtype=">u4")
    raw[:, 0] = (
        (events["y"].astype(np.uint32) << 8) | (events["x"].astype(np.uint32) << 1) | events["p"].astype(np.uint32)
    )
    raw[:, 1] = events["t"]
    return head + raw.tobytes()
