"""N-TIDIGITS18 (Anumula et al. 2018): TIDIGITS played to the CochleaAMS1b silicon cochlea, 64 channels.

Layout: ``DATA_DIR/NTIDIGITS18/n-tidigits.hdf5`` (or ``DATA_DIR/n-tidigits.hdf5``), as tonic downloads
it: ``{train,test}_labels`` (sample ids ``"<speaker>-<...>-<digits>"``), ``{train,test}_addresses/<id>``
(channel 0..63 per spike) and ``{train,test}_timestamps/<id>`` (seconds). Only single-digit samples
are used (11 classes: o, 1..9, z, tonic's numbering); binned into ``[T, 64]`` spike counts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mambaspike.data.errors import DatasetError
from mambaspike.data.sources import file_identity, tonic_download

NUM_CHANNELS = 64
CLASS_NAMES = ("o", "1", "2", "3", "4", "5", "6", "7", "8", "9", "z")
URL = "the N-TIDIGITS18 release of Anumula et al. 2018 (https://doi.org/10.3389/fnins.2018.00023)"
LAYOUT = "DATA_DIR/NTIDIGITS18/n-tidigits.hdf5 (tonic's file; or DATA_DIR/n-tidigits.hdf5)"


class NTidigitsSplit:
    """Single-digit samples of one partition: ``source[i] -> (events, label)``, x = channel, t in µs."""

    def __init__(self, path: Path, split: str):
        import h5py

        self.path, self.split = Path(path), split
        self.sensor_size = (NUM_CHANNELS, 1, 1)
        try:
            with h5py.File(self.path, "r") as f:
                for key in (f"{split}_labels", f"{split}_addresses", f"{split}_timestamps"):
                    if key not in f:
                        raise DatasetError(f"{self.path}: field '{key}' missing (expected tonic's n-tidigits.hdf5)")
                ids = [v.decode() if isinstance(v, bytes) else str(v) for v in f[f"{split}_labels"][()]]
        except OSError as err:
            raise DatasetError(f"{self.path}: not a readable HDF5 file ({err})") from err
        self.ids = [i for i in ids if i.split("-")[-1] in CLASS_NAMES]
        self.targets = np.asarray([CLASS_NAMES.index(i.split("-")[-1]) for i in self.ids], dtype=np.int64)
        self._file = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        import h5py

        if self._file is None:
            self._file = h5py.File(self.path, "r")
        sample_id = self.ids[index]
        where = f"{self.path}: sample {sample_id!r}"
        try:
            x = np.asarray(self._file[f"{self.split}_addresses"][sample_id])
            t = np.asarray(self._file[f"{self.split}_timestamps"][sample_id], dtype=np.float64)
        except KeyError:
            raise DatasetError(f"{where}: missing from {self.split}_addresses or {self.split}_timestamps") from None
        if x.shape != t.shape or x.ndim != 1:
            raise DatasetError(f"{where}: addresses {x.shape} and timestamps {t.shape} differ")
        if x.dtype.kind not in "iu" or ((x < 0) | (x >= NUM_CHANNELS)).any():
            raise DatasetError(f"{where}: field addresses outside 0..{NUM_CHANNELS - 1}")
        if not (np.isfinite(t) & (t >= 0)).all():
            raise DatasetError(f"{where}: field timestamps has negative or non-finite times")
        events = np.zeros(len(t), dtype=[("x", np.int16), ("t", np.int64), ("p", np.int8)])
        events["x"], events["t"] = x, np.round(t * 1e6)
        return events, int(self.targets[index])

    def identity(self) -> dict:
        return file_identity(self.path, self.split)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}


def open_ntidigits(data_dir: Path, download: bool) -> tuple[NTidigitsSplit, NTidigitsSplit]:
    from mambaspike.data.registry import missing

    for path in (data_dir / "NTIDIGITS18" / "n-tidigits.hdf5", data_dir / "n-tidigits.hdf5"):
        if path.is_file():
            return NTidigitsSplit(path, "train"), NTidigitsSplit(path, "test")
    if download:
        tonic_download("NTIDIGITS18", data_dir, train=True, single_digits=True)
        return open_ntidigits(data_dir, download=False)
    raise missing("ntidigits", data_dir, "N-TIDIGITS18 not found")


def _entry():
    from mambaspike.data.registry import DatasetEntry

    return DatasetEntry(
        name="ntidigits",
        summary="N-TIDIGITS18 (Anumula et al. 2018): single spoken digits, 64 cochlea channels -> [T, 64], 11 classes",
        layout=LAYOUT,
        source=URL,
        open=open_ntidigits,
        class_names=CLASS_NAMES,
        time_window_us=1_500_000,
        dt_us=10_000,  # T = 150
        can_download=True,
    )


ENTRY = _entry()


def write_ntidigits_file(path: Path, partitions: dict) -> None:
    """Write ``{"train": {id: (addresses, times s)}, "test": {...}}`` in tonic's layout (tests)."""
    import h5py

    with h5py.File(path, "w") as f:
        for split, samples in partitions.items():
            f.create_dataset(f"{split}_labels", data=np.array([k.encode() for k in samples]))
            for sample_id, (x, t) in samples.items():
                f.create_dataset(f"{split}_addresses/{sample_id}", data=np.asarray(x, np.uint8))
                f.create_dataset(f"{split}_timestamps/{sample_id}", data=np.asarray(t, np.float64))
