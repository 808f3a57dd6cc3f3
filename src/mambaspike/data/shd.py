"""Spiking Heidelberg Digits (Cramer et al. 2020): spoken digits 0-9 in English and German through a
model cochlea, 700 channels, 20 classes, 8,156 train / 2,264 test.

Layout: ``DATA_DIR/SHD/shd_train.h5`` and ``shd_test.h5`` (or directly in ``DATA_DIR``). Each file:
``spikes/times`` (per sample a float array of spike times in seconds), ``spikes/units`` (per sample
the channel 0..699 of each spike) and ``labels`` (0..19). Binned into ``[T, 700]`` spike counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mambaspike.data.errors import DatasetError
from mambaspike.data.sources import file_identity, tonic_download

NUM_CHANNELS = 700
URL = "https://zenkelab.org/resources/spiking-heidelberg-datasets-shd/"
LAYOUT = "DATA_DIR/SHD/shd_train.h5 and DATA_DIR/SHD/shd_test.h5 (or in DATA_DIR itself)"
CLASS_NAMES = tuple([f"{d} (en)" for d in range(10)] + [f"{d} (de)" for d in range(10)])


def _field(file, path: Path, name: str):
    if name not in file:
        raise DatasetError(f"{path}: field '{name}' missing (expected spikes/times, spikes/units, labels)")
    return file[name]


class SpikeTrainFile:
    """One split of an SHD-like ``.h5`` file: ``source[i] -> (events, label)``, events with x =
    channel and t in µs (p = 0). Labels are read and validated on opening; spikes on access."""

    def __init__(self, path: Path, split: str, num_channels: int = NUM_CHANNELS, num_classes: int = 20):
        import h5py

        self.path, self.split = Path(path), split
        self.sensor_size = (num_channels, 1, 1)
        try:
            with h5py.File(self.path, "r") as f:
                labels = np.asarray(_field(f, self.path, "labels")[()])
                n_times, n_units = (len(_field(f, self.path, k)) for k in ("spikes/times", "spikes/units"))
        except OSError as err:
            raise DatasetError(f"{self.path}: not a readable HDF5 file ({err})") from err
        if labels.ndim != 1 or labels.dtype.kind not in "iu" or len(labels) != n_times or n_times != n_units:
            raise DatasetError(
                f"{self.path}: field 'labels' ({labels.dtype} {labels.shape}) does not match "
                f"spikes/times ({n_times}) and spikes/units ({n_units})"
            )
        bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
        if len(bad):
            raise DatasetError(
                f"{self.path}: field 'labels' sample {int(bad[0])} = {labels[bad[0]]}, expected 0..{num_classes - 1}"
            )
        self.targets = labels.astype(np.int64)
        self._file = None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        import h5py

        if self._file is None:
            self._file = h5py.File(self.path, "r")
        times = np.asarray(self._file["spikes/times"][index], dtype=np.float64)
        units = np.asarray(self._file["spikes/units"][index])
        where = f"{self.path}: sample {index}"
        if times.shape != units.shape or times.ndim != 1:
            raise DatasetError(f"{where}: spikes/times {times.shape} and spikes/units {units.shape} differ")
        if not (np.isfinite(times) & (times >= 0)).all():
            raise DatasetError(f"{where}: field spikes/times has negative or non-finite times")
        if units.dtype.kind not in "iu" or ((units < 0) | (units >= self.sensor_size[0])).any():
            raise DatasetError(f"{where}: field spikes/units outside 0..{self.sensor_size[0] - 1}")
        events = np.zeros(len(times), dtype=[("x", np.int16), ("t", np.int64), ("p", np.int8)])
        events["x"], events["t"] = units, np.round(times * 1e6)
        return events, int(self.targets[index])

    def identity(self) -> dict:
        return file_identity(self.path, self.split)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}


def open_shd(data_dir: Path, download: bool) -> tuple[SpikeTrainFile, SpikeTrainFile]:
    from mambaspike.data.registry import missing

    for root in (data_dir / "SHD", data_dir):
        train, test = root / "shd_train.h5", root / "shd_test.h5"
        if train.is_file() and test.is_file():
            return SpikeTrainFile(train, "train"), SpikeTrainFile(test, "test")
    if download:
        tonic_download("SHD", data_dir, train=True)
        tonic_download("SHD", data_dir, train=False)
        return open_shd(data_dir, download=False)
    raise missing("shd", data_dir, "SHD not found")


def _entry():
    from mambaspike.data.registry import DatasetEntry

    return DatasetEntry(
        name="shd",
        summary="SHD (Cramer et al. 2020): spoken digits en/de, 700 cochlea channels -> [T, 700], 20 classes",
        layout=LAYOUT,
        source=URL,
        open=open_shd,
        class_names=CLASS_NAMES,
        time_window_us=1_000_000,
        dt_us=10_000,  # T = 100
        can_download=True,
    )


ENTRY = _entry()


def write_shd_file(path: Path, samples: list[tuple[np.ndarray, np.ndarray]], labels) -> None:
    """Write ``[(times s, units), ...]`` and labels in SHD's HDF5 layout (tests, fixtures)."""
    import h5py

    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u) in enumerate(samples):
            times[i], units[i] = np.asarray(t, np.float32), np.asarray(u, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
