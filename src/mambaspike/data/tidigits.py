"""TIDIGITS audio (Leonard & Doddington 1993, LDC93S10), the corpus a user owns, through the software
cochlea of ``audio.py``: single spoken digits -> ``[T, 64]`` spike counts, 11 classes (o, 1..9, z).

Layout: ``DATA_DIR/TIDIGITS/.../{train,test}/<group>/<speaker>/<digits><a|b>.wav`` as on the LDC disc
(NIST SPHERE or RIFF WAV; shorten-compressed SPHERE must be decompressed first, e.g. with sph2pipe).
Only single-digit utterances (``1a.wav``, ``ob.wav``, ``za.wav``, ...) are used; the corpus's own
train/test split (by speaker) is kept.
"""

from __future__ import annotations

from pathlib import Path

from mambaspike.data.audio import CochleaParams, cochlea_spikes, read_audio
from mambaspike.data.errors import DatasetError
from mambaspike.data.sources import FileListSource

CLASS_NAMES = ("o", "1", "2", "3", "4", "5", "6", "7", "8", "9", "z")  # as N-TIDIGITS18
URL = "the LDC (TIDIGITS, LDC93S10: https://catalog.ldc.upenn.edu/LDC93S10)"
LAYOUT = "DATA_DIR/TIDIGITS/**/{train,test}/<group>/<speaker>/<digit><a|b>.wav (SPHERE or WAV, not shorten-compressed)"
PARAMS = CochleaParams()


def audio_reader(params: CochleaParams):
    """``path -> events``: the file through the software cochlea."""

    def read(path) -> object:
        samples, rate = read_audio(path)
        return cochlea_spikes(samples, rate, params)

    return read


def _split(root: Path, split: str) -> FileListSource | None:
    folders = sorted(p for p in root.rglob(split) if p.is_dir())
    if not folders:
        return None
    keys, targets = [], []
    for folder in folders:
        for f in sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav"):
            digit = f.stem[:-1].lower()
            if len(f.stem) == 2 and digit in CLASS_NAMES:
                keys.append(str(f))
                targets.append(CLASS_NAMES.index(digit))
    if not keys:
        raise DatasetError(
            f"no single-digit .wav files (e.g. 1a.wav) under {', '.join(map(str, folders))}: expected {LAYOUT}"
        )
    return FileListSource(root, split, keys, targets, (PARAMS.channels, 1, 1), audio_reader(PARAMS), PARAMS.to_dict())


def open_tidigits(data_dir: Path, download: bool) -> tuple[FileListSource, FileListSource]:
    from mambaspike.data.registry import missing

    root = data_dir / "TIDIGITS"
    train = _split(root, "train") if root.is_dir() else None
    test = _split(root, "test") if root.is_dir() else None
    if train is None or test is None:
        raise missing("tidigits", data_dir, "TIDIGITS audio not found")
    return train, test


def _entry():
    from mambaspike.data.registry import DatasetEntry

    return DatasetEntry(
        name="tidigits",
        summary="TIDIGITS audio (LDC) -> gammatone cochlea -> integrate-and-fire spikes, [T, 64], 11 classes",
        layout=LAYOUT,
        source=URL,
        open=open_tidigits,
        class_names=CLASS_NAMES,
        time_window_us=1_500_000,
        dt_us=20_000,  # T = 75
    )


ENTRY = _entry()
