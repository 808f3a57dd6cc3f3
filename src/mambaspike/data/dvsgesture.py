"""DVS Gesture (Amir et al. 2017): 11 hand gestures, 29 subjects, 128x128x2 DVS128, official split.

Two layouts under ``DATA_DIR/DVSGesture``, tried in this order:

1. tonic's preprocessed ``.npy`` files: ``ibmGestureTrain/userNN_<lighting>/<label>.npy`` and
   ``ibmGestureTest/...``; each an ``[N, 4]`` array of (x, y, p, t in ms), label 0..10.
2. The original release (``DvsGesture.tar.gz``): ``userNN_<lighting>.aedat`` (AEDAT 3.1) with
   ``userNN_<lighting>_labels.csv`` (``class,startTime_usec,endTime_usec``, class 1..11) and
   ``trials_to_train.txt`` / ``trials_to_test.txt``. Each labelled interval is one sample, its
   timestamps shifted to start at 0.

AEDAT 3.1 (inivation): text header lines starting with ``#`` up to ``#!END-HEADER\\r\\n``, then
packets: a 28-byte little-endian header (int16 eventType, int16 eventSource, int32 eventSize,
int32 eventTSOffset, int32 eventTSOverflow, int32 eventCapacity, int32 eventNumber, int32 eventValid)
followed by ``eventCapacity * eventSize`` bytes. Polarity events (type 1, 8 bytes): uint32 data
(bit 0 valid, bit 1 polarity, bits 2-16 y, bits 17-31 x) and int32 timestamp (µs, the low 31 bits;
the packet's eventTSOverflow gives bits 31+). Other event types are skipped. tonic's AEDAT reader
ignores the event type and the overflow, so this parser is our own, validating as it goes.
"""

from __future__ import annotations

import csv
from functools import lru_cache, partial
from pathlib import Path

import numpy as np

from mambaspike.data.errors import DatasetError
from mambaspike.data.sources import FileListSource, event_array, tonic_download

SENSOR_SIZE = (128, 128, 2)
CLASS_NAMES = (
    "hand clap",
    "right hand wave",
    "left hand wave",
    "right arm clockwise",
    "right arm counter-clockwise",
    "left arm clockwise",
    "left arm counter-clockwise",
    "arm roll",
    "air drums",
    "air guitar",
    "other",
)
URL = "https://research.ibm.com/interactive/dvsgesture/"
LAYOUT_NPY = "DATA_DIR/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy and .../ibmGestureTest/..."
LAYOUT = (
    f"{LAYOUT_NPY} (tonic), "
    "or DATA_DIR/DVSGesture/userNN_<lighting>.aedat + userNN_<lighting>_labels.csv + trials_to_train.txt, "
    "trials_to_test.txt (original release)"
)
PACKET_HEADER = np.dtype(
    [
        ("eventType", "<i2"),
        ("eventSource", "<i2"),
        ("eventSize", "<i4"),
        ("eventTSOffset", "<i4"),
        ("eventTSOverflow", "<i4"),
        ("eventCapacity", "<i4"),
        ("eventNumber", "<i4"),
        ("eventValid", "<i4"),
    ]
)
POLARITY_EVENT = np.dtype([("data", "<u4"), ("timestamp", "<i4")])
END_HEADER = b"#!END-HEADER\r\n"


# --- tonic's .npy layout ---------------------------------------------------------------------------


def read_gesture_npy(path: str | Path) -> np.ndarray:
    """One tonic DVS Gesture ``.npy`` ([N, 4]: x, y, p, t in ms) as events with t in µs from 0."""
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:  # NumPy raises ValueError, OSError, EOFError, even SyntaxError on a bad header
        raise DatasetError(f"{path}: not a readable .npy file ({type(err).__name__}: {err})") from err
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.dtype.kind not in "iuf":
        raise DatasetError(f"{path}: expected a numeric [N, 4] array of (x, y, p, t ms), got {arr.dtype} {arr.shape}")
    if not np.isfinite(arr).all():
        raise DatasetError(f"{path}: row {int(np.flatnonzero(~np.isfinite(arr).all(1))[0])} is not finite")
    x, y, p, t_ms = arr.T
    for field, values, hi in (("x", x, 128), ("y", y, 128), ("p", p, 2)):
        bad = np.flatnonzero((values < 0) | (values >= hi) | (values != np.floor(values)))
        if len(bad):
            raise DatasetError(
                f"{path}: row {int(bad[0])} field {field}={values[bad[0]]:g}, expected an integer in [0, {hi})"
            )
    t = np.round(t_ms.astype(np.float64) * 1000).astype(np.int64)  # float64: int16 ms * 1000 would overflow
    return event_array(x, y, t - (t.min() if len(t) else 0), p)


def downsample_events(events: np.ndarray, factor: int) -> np.ndarray:
    """Events on a sensor ``factor`` times smaller per axis: x, y integer-divided by ``factor``."""
    if factor == 1:
        return events
    out = events.copy()
    out["x"] //= factor
    out["y"] //= factor
    return out


def _read_npy_downsampled(path: Path, factor: int) -> np.ndarray:
    return downsample_events(read_gesture_npy(path), factor)


def _npy_split(root: Path, split: str, downsample: int = 1) -> FileListSource | None:
    folder = root / ("ibmGestureTrain" if split == "train" else "ibmGestureTest")
    if not folder.is_dir():
        return None
    keys, targets = [], []
    for user_dir in sorted(d for d in folder.iterdir() if d.is_dir()):
        for f in sorted(user_dir.glob("*.npy"), key=lambda f: (len(f.stem), f.stem)):
            if not f.stem.isdigit() or int(f.stem) >= len(CLASS_NAMES):
                raise DatasetError(f"{f}: file name must be the label 0..10 (<label>.npy)")
            keys.append(f)
            targets.append(int(f.stem))
    if not keys:
        raise DatasetError(f"no .npy files in {folder}: expected {LAYOUT}")
    if downsample == 1:
        return FileListSource(root, split, keys, targets, SENSOR_SIZE, read_gesture_npy)
    width, height, n_pol = SENSOR_SIZE
    return FileListSource(
        root,
        split,
        keys,
        targets,
        (width // downsample, height // downsample, n_pol),
        partial(_read_npy_downsampled, factor=downsample),
        params={"downsample": downsample},
    )


def open_gesture_npy(root: Path, downsample: int = 1) -> tuple[FileListSource, FileListSource]:
    """Train and test splits of a folder in tonic's DVS Gesture ``.npy`` layout (``root/ibmGestureTrain``,
    ``root/ibmGestureTest``), optionally with x and y integer-divided by ``downsample`` (1, 2, 4, 8)."""
    if downsample not in (1, 2, 4, 8):
        raise DatasetError(f"downsample must be one of 1, 2, 4, 8 (128 px divided evenly), got {downsample!r}")
    splits = []
    for split in ("train", "test"):
        source = _npy_split(Path(root), split, downsample)
        if source is None:
            raise DatasetError(f"{root}: no {split} split; expected {LAYOUT_NPY} with DVSGesture = {root}")
        splits.append(source)
    return splits[0], splits[1]


# --- original AEDAT 3.1 release -----------------------------------------------------------------------


def parse_aedat31(data: bytes, path: str | Path = "<bytes>") -> np.ndarray:
    """Polarity events of an AEDAT 3.1 file's bytes: structured array (x, y, t µs absolute, p)."""
    if not data.startswith(b"#!AER-DAT3"):
        raise DatasetError(f"{path}: byte offset 0: not an AEDAT 3.x file (expected '#!AER-DAT3.1' header line)")
    end = data.find(END_HEADER)
    if end < 0:
        raise DatasetError(f"{path}: header has no '#!END-HEADER' line (truncated header)")
    offset = end + len(END_HEADER)
    chunks = []
    while offset < len(data):
        if len(data) - offset < PACKET_HEADER.itemsize:
            raise DatasetError(
                f"{path}: byte offset {offset}: truncated packet header "
                f"({len(data) - offset} of {PACKET_HEADER.itemsize} bytes)"
            )
        header = np.frombuffer(data, PACKET_HEADER, count=1, offset=offset)[0]
        size, capacity = int(header["eventSize"]), int(header["eventCapacity"])
        if size <= 0 or capacity < 0:
            raise DatasetError(
                f"{path}: byte offset {offset}: packet header has eventSize={size}, eventCapacity={capacity}"
            )
        body = offset + PACKET_HEADER.itemsize
        if body + size * capacity > len(data):
            raise DatasetError(
                f"{path}: byte offset {body}: packet of {capacity} x {size}-byte events runs past "
                f"the end of the file ({len(data)} bytes)"
            )
        if int(header["eventType"]) == 1:
            if size != POLARITY_EVENT.itemsize:
                raise DatasetError(f"{path}: byte offset {offset}: polarity packet with eventSize={size}, expected 8")
            ev = np.frombuffer(data, POLARITY_EVENT, count=capacity, offset=body)
            ev = ev[(ev["data"] & 1) == 1]  # valid events only
            t = ev["timestamp"].astype(np.int64) + (int(header["eventTSOverflow"]) << 31)
            chunks.append(
                event_array((ev["data"] >> 17) & 0x7FFF, (ev["data"] >> 2) & 0x7FFF, t, (ev["data"] >> 1) & 1)
            )
        offset = body + size * capacity
    events = np.concatenate(chunks) if chunks else event_array([], [], [], [])
    bad = np.flatnonzero((events["x"] >= 128) | (events["y"] >= 128))
    if len(bad):
        raise DatasetError(
            f"{path}: polarity event {int(bad[0])} has x={events['x'][bad[0]]}, "
            f"y={events['y'][bad[0]]}, outside the 128x128 sensor"
        )
    return events


@lru_cache(maxsize=2)
def _read_aedat31_file(path: Path) -> np.ndarray:
    return parse_aedat31(Path(path).read_bytes(), path)


def read_labels_csv(path: Path) -> list[tuple[int, int, int]]:
    """``(label 0..10, start µs, end µs)`` rows of a ``_labels.csv`` (class 1..11 in the file)."""
    rows = []
    with open(path, newline="") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or (line_no == 1 and not row[0].strip().isdigit()):
                continue  # header line / blank
            try:
                label, start, end = (int(v) for v in row[:3])
            except ValueError:
                raise DatasetError(
                    f"{path}: line {line_no}: expected 'class,startTime_usec,endTime_usec' integers, got {row}"
                ) from None
            if not 1 <= label <= len(CLASS_NAMES) or end <= start:
                raise DatasetError(
                    f"{path}: line {line_no}: class {label} (expected 1..11) or interval {start}..{end} invalid"
                )
            rows.append((label - 1, start, end))
    return rows


def _read_gesture(key: tuple[Path, int, int]) -> np.ndarray:
    path, start, end = key
    events = _read_aedat31_file(path)
    cut = events[(events["t"] >= start) & (events["t"] < end)].copy()
    cut["t"] -= start
    return cut


def _aedat_split(root: Path, split: str) -> FileListSource | None:
    trials = root / f"trials_to_{split}.txt"
    if not trials.is_file():
        return None
    keys, targets = [], []
    for name in trials.read_text().split():
        aedat = root / name
        labels = aedat.with_name(aedat.stem + "_labels.csv")
        for f, what in ((aedat, "recording"), (labels, "labels file")):
            if not f.is_file():
                raise DatasetError(f"{trials} lists {name}, but its {what} {f} is missing")
        for label, start, end in read_labels_csv(labels):
            keys.append((aedat, start, end))
            targets.append(label)
    if not keys:
        raise DatasetError(f"{trials}: no gestures listed")
    source = FileListSource(
        root,
        split,
        [(str(k[0]), k[1], k[2]) for k in keys],
        targets,
        SENSOR_SIZE,
        lambda k: _read_gesture((Path(k[0]), k[1], k[2])),
    )
    return source


def open_dvsgesture(data_dir: Path, download: bool) -> tuple[FileListSource, FileListSource]:
    from mambaspike.data.registry import missing

    root = data_dir / "DVSGesture"
    for candidate in (root, root / "DvsGesture"):
        for make in (_npy_split, _aedat_split):
            train = make(candidate, "train")
            if train is not None:
                test = make(candidate, "test")
                if test is None:
                    raise missing("dvsgesture", data_dir, f"the test split beside {candidate} is missing")
                return train, test
    if download:
        tonic_download("DVSGesture", data_dir, train=True)
        tonic_download("DVSGesture", data_dir, train=False)
        return open_dvsgesture(data_dir, download=False)
    raise missing("dvsgesture", data_dir, "DVS Gesture not found")


def _entry():
    from mambaspike.data.registry import Augment, DatasetEntry

    return DatasetEntry(
        name="dvsgesture",
        summary="DVS Gesture (Amir et al. 2017): 11 gestures, 128x128x2, official split (1,077/264 tonic)",
        layout=LAYOUT,
        source=URL,
        open=open_dvsgesture,
        class_names=CLASS_NAMES,
        time_window_us=1_500_000,
        dt_us=75_000,  # T = 20
        augment=Augment(max_shift=8, flip_x=False, drop=0.1),  # no flip: left/right waves are classes
        can_download=True,
    )


ENTRY = _entry()


# --- writers (tests, fixtures) -----------------------------------------------------------------------


def encode_aedat31(events: np.ndarray, packet_events: int = 4, overflow: int = 0) -> bytes:
    """AEDAT 3.1 bytes holding ``events`` (x, y, t µs < 2**31, p) as polarity packets."""
    head = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n" + END_HEADER
    parts = [head]
    for i in range(0, max(len(events), 1), packet_events):
        chunk = events[i : i + packet_events]
        hdr = np.zeros(1, PACKET_HEADER)
        hdr["eventType"], hdr["eventSize"], hdr["eventTSOffset"] = 1, 8, 4
        hdr["eventTSOverflow"], hdr["eventCapacity"] = overflow, len(chunk)
        hdr["eventNumber"] = hdr["eventValid"] = len(chunk)
        ev = np.zeros(len(chunk), POLARITY_EVENT)
        ev["data"] = (
            (chunk["x"].astype(np.uint32) << 17)
            | (chunk["y"].astype(np.uint32) << 2)
            | (chunk["p"].astype(np.uint32) << 1)
            | 1
        )
        ev["timestamp"] = chunk["t"]
        parts += [hdr.tobytes(), ev.tobytes()]
    return b"".join(parts)
