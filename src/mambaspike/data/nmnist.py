"""N-MNIST `.bin` files: a validating folder reader (for N-MNIST and N-Digits) and a writer.

File format (Orchard et al. 2015): 5 bytes per event, events sorted by time::

    byte 0: x        byte 1: y        byte 2: bit 7 = polarity (1 = ON), bits 6..0 = t[22:16]
    byte 3: t[15:8]  byte 4: t[7:0]   (t in µs, 23 bits; y == 240 marks a timestamp-overflow event)

Folder layout: ``ROOT/Train/<digit>/<id>.bin`` and ``ROOT/Test/<digit>/<id>.bin``.

We walk the folders ourselves and call tonic's parser per file: ``tonic.datasets.NMNIST`` would start
a download unless its ``train.zip`` lies beside the folder.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mambaspike.data.errors import DatasetError

SENSOR_SIZE = (34, 34, 2)  # (width x, height y, polarities), tonic's convention
# fields x, y, t (µs), p (0 = OFF, 1 = ON): tonic.datasets.NMNIST.dtype (tonic is imported only to read files)
EVENT_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
BYTES_PER_EVENT = 5
OVERFLOW_Y = 240  # a y of 240 marks a timestamp-overflow event, not a pixel
MAX_TIMESTAMP_US = 2**23 - 1
NMNIST_URL = "https://www.garrickorchard.com/datasets/n-mnist"
LAYOUT = "ROOT/Train/<digit>/*.bin and ROOT/Test/<digit>/*.bin"


def encode_nmnist(events: np.ndarray) -> bytes:
    """Encode events (structured array with x, y, t in µs, p; sorted by t) as N-MNIST bytes.

    Returns ``5 * len(events)`` bytes. Raises ``ValueError`` for values the format cannot hold.
    """
    x, y, t, p = (np.asarray(events[name], dtype=np.int64) for name in ("x", "y", "t", "p"))
    in_range = (x >= 0) & (x < 256) & (y >= 0) & (y < OVERFLOW_Y) & (t >= 0) & (t <= MAX_TIMESTAMP_US)
    if not (in_range & ((p == 0) | (p == 1))).all():
        raise ValueError("events out of the N-MNIST range (x < 256, y < 240, 0 <= t < 2**23 µs, p in {0, 1})")
    if np.any(np.diff(t) < 0):
        raise ValueError("events must be sorted by time")
    raw = np.empty((len(t), BYTES_PER_EVENT), dtype=np.uint8)
    raw[:, 0] = x
    raw[:, 1] = y
    raw[:, 2] = (p << 7) | (t >> 16)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    return raw.tobytes()


def write_nmnist_file(path: str | Path, events: np.ndarray) -> None:
    """Write events to an N-MNIST `.bin` file (see :func:`encode_nmnist`)."""
    Path(path).write_bytes(encode_nmnist(events))


def read_nmnist_file(path: str | Path, sensor_size: tuple[int, int, int] = SENSOR_SIZE) -> np.ndarray:
    """Read one N-MNIST `.bin` file with tonic's parser after validating it.

    Returns a structured array with ``EVENT_DTYPE`` (x, y, t in µs, p), in file order.
    Raises ``DatasetError`` naming the file and byte offset if the length is not a multiple of
    5 bytes or an event lies outside ``sensor_size`` (width, height, polarities).
    """
    data = Path(path).read_bytes()
    size = len(data)
    if size % BYTES_PER_EVENT:
        offset = size - size % BYTES_PER_EVENT
        raise DatasetError(
            f"{path}: {size} bytes is not a multiple of {BYTES_PER_EVENT} (bytes per event); "
            f"truncated event at byte offset {offset}"
        )
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, BYTES_PER_EVENT)
    x, y = raw[:, 0], raw[:, 1]
    width, height = sensor_size[0], sensor_size[1]
    bad = np.flatnonzero((x >= width) | ((y >= height) & (y != OVERFLOW_Y)))
    if len(bad):
        i = int(bad[0])
        raise DatasetError(
            f"{path}: event {i} (byte offset {BYTES_PER_EVENT * i}) has x={x[i]}, y={y[i]}, "
            f"outside the {width}x{height} sensor"
        )
    from tonic.io import read_mnist_file

    return read_mnist_file(io.BytesIO(data), dtype=EVENT_DTYPE, is_stream=True)


class NMNISTFolder:
    """One split of a data set in the N-MNIST folder layout (``ROOT/{Train,Test}/<digit>/*.bin``).

    Files are listed sorted (digit folders by number, files by name); the label is the digit
    folder's name. ``dataset[i]`` returns ``(events, label)``: a structured array with
    ``EVENT_DTYPE`` (t in µs) and an int.
    """

    sensor_size = SENSOR_SIZE

    def __init__(self, root: str | Path, train: bool):
        self.root = Path(root)
        self.train = train
        split_dir = self.root / ("Train" if train else "Test")
        if not split_dir.is_dir():
            raise DatasetError(
                f"N-MNIST folder {split_dir} not found: expected {LAYOUT} under {self.root}; "
                f"get N-MNIST from {NMNIST_URL}"
            )
        digit_dirs = sorted(
            (d for d in split_dir.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name)
        )
        files, targets = [], []
        for digit_dir in digit_dirs:
            digit_files = sorted(digit_dir.glob("*.bin"))
            files += digit_files
            targets += [int(digit_dir.name)] * len(digit_files)
        if not files:
            raise DatasetError(f"no .bin files in {split_dir}: expected {LAYOUT} under {self.root}")
        self.files: list[Path] = files
        self.targets = np.asarray(targets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return read_nmnist_file(self.files[index], self.sensor_size), int(self.targets[index])


def _open_nmnist(data_dir: Path, download: bool) -> tuple[NMNISTFolder, NMNISTFolder]:
    from mambaspike.data.registry import missing
    from mambaspike.data.sources import tonic_download

    for root in (data_dir / "NMNIST", data_dir):
        if (root / "Train").is_dir() and (root / "Test").is_dir():
            return NMNISTFolder(root, train=True), NMNISTFolder(root, train=False)
    if download:
        tonic_download("NMNIST", data_dir, train=True)
        tonic_download("NMNIST", data_dir, train=False)
        return _open_nmnist(data_dir, download=False)
    raise missing("nmnist", data_dir, "N-MNIST not found")


def _entry():
    from mambaspike.data.registry import Augment, DatasetEntry

    return DatasetEntry(
        name="nmnist",
        summary="N-MNIST (Orchard et al. 2015): saccading ATIS recordings of MNIST, 34x34x2, 10 classes, 60k/10k",
        layout=f"{LAYOUT} with ROOT = DATA_DIR/NMNIST (or DATA_DIR itself)",
        source=NMNIST_URL,
        open=_open_nmnist,
        class_names=tuple(str(d) for d in range(10)),
        time_window_us=300_000,
        dt_us=10_000,
        augment=Augment(max_shift=2, flip_x=False, drop=0.1),
        can_download=True,
    )


ENTRY = _entry()
