"""Spoken digits (embedded audio data set): "zero" .. "nine" synthesised offline with espeak-ng
(Debian package ``espeak-ng``) by many voices, speeds and pitches, stored as WAV and pushed through
the same software cochlea as TIDIGITS (``audio.py``): ``[T, 64]`` spike counts, 10 classes.

Speakers are espeak-ng voice x variant pairs (7 English voices x 12 variants = 84); each says every
digit ``RENDITIONS`` times at a speed (words per minute) and pitch drawn from a generator seeded by
``seed``. Every fifth speaker (sorted) is held out for test, so test voices are never heard in training.
The set is written once under ``DATA_DIR/spoken-digits/{train,test}/<digit>/<speaker>-<k>.wav`` with
a ``meta.json`` (generator version, seed, espeak-ng version); the same espeak-ng version gives
byte-identical files. Generation is atomic (a temporary folder moved into place).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mambaspike.data.errors import DatasetError
from mambaspike.data.sources import FileListSource
from mambaspike.data.tidigits import PARAMS, audio_reader

GENERATOR_VERSION = "1"
FOLDER_NAME = "spoken-digits"
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOICES = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
RENDITIONS = 2
SPEED_WPM = (120, 200)
PITCH = (25, 75)
LAYOUT = f"DATA_DIR/{FOLDER_NAME}/{{train,test}}/<digit>/<speaker>-<k>.wav (generated on first use with espeak-ng)"


def espeak_version() -> str:
    """``espeak-ng --version`` (first line), or raise DatasetError saying how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DatasetError(
            "spoken-digits: generating it needs espeak-ng, which is not installed "
            "(Debian/Ubuntu: apt-get install espeak-ng)"
        )
    return subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0].strip()


def speakers(voices=VOICES, variants=VARIANTS) -> list[str]:
    return sorted(f"{v}+{w}" for v in voices for w in variants)


def plan(seed: int = 0, voices=VOICES, variants=VARIANTS, renditions: int = RENDITIONS) -> list[dict]:
    """Every utterance to synthesise: split, digit, speaker, rendition, speed, pitch, relative path."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, speaker in enumerate(speakers(voices, variants)):
        split = "test" if i % 5 == 0 else "train"
        for digit in range(10):
            for k in range(renditions):
                speed, pitch = int(rng.integers(*SPEED_WPM, endpoint=True)), int(rng.integers(*PITCH, endpoint=True))
                name = f"{speaker.replace('+', '_')}-{k}.wav"
                rows.append(
                    dict(
                        split=split,
                        digit=digit,
                        speaker=speaker,
                        k=k,
                        speed=speed,
                        pitch=pitch,
                        path=f"{split}/{digit}/{name}",
                    )
                )
    return rows


def _synthesise(row: dict, folder: Path) -> None:
    out = folder / row["path"]
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "espeak-ng",
        "-v",
        row["speaker"],
        "-s",
        str(row["speed"]),
        "-p",
        str(row["pitch"]),
        "-w",
        str(out),
        WORDS[row["digit"]],
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not out.is_file():
        raise DatasetError(
            f"spoken-digits: espeak-ng failed for {row['speaker']} {WORDS[row['digit']]!r}: {r.stderr.strip()}"
        )


def generate(folder: Path, seed: int = 0, workers: int = 4, **plan_options) -> Path:
    """Synthesise the set into ``folder`` (atomically: a temporary sibling moved into place)."""
    version = espeak_version()
    rows = plan(seed, **plan_options)
    tmp = folder.with_name(f".{folder.name}-{uuid.uuid4().hex}.tmp")
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda r: _synthesise(r, tmp), rows))
        meta = {
            "name": FOLDER_NAME,
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "espeak_ng": version,
            "n": len(rows),
            "plan_options": {k: list(v) if isinstance(v, tuple) else v for k, v in plan_options.items()},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "meta.json").is_file():  # lost a race to another process: keep the winner
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def ensure_spoken_digits(data_dir: Path, seed: int = 0) -> Path:
    folder = Path(data_dir) / FOLDER_NAME
    if not (folder / "meta.json").is_file():
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DatasetError(f"cannot create {folder.parent}: {err}") from err
        generate(folder, seed)
    return folder


def open_folder(folder: Path) -> tuple[FileListSource, FileListSource]:
    """The train/test sources of a generated folder (``<split>/<digit>/*.wav``)."""
    sources = []
    for split in ("train", "test"):
        keys, targets = [], []
        for digit in range(10):
            files = sorted((folder / split / str(digit)).glob("*.wav"))
            keys += map(str, files)
            targets += [digit] * len(files)
        if not keys:
            raise DatasetError(f"no .wav files in {folder / split}: expected {LAYOUT}")
        sources.append(
            FileListSource(
                folder,
                split,
                keys,
                targets,
                (PARAMS.channels, 1, 1),
                audio_reader(PARAMS),
                {**PARAMS.to_dict(), "meta": (folder / "meta.json").read_text()},
            )
        )
    return sources[0], sources[1]


def _open(data_dir: Path, download: bool):
    return open_folder(ensure_spoken_digits(data_dir))


def _entry():
    from mambaspike.data.registry import DatasetEntry

    return DatasetEntry(
        name="spoken-digits",
        summary="Spoken digits (embedded): 'zero'..'nine' by 84 espeak-ng voices -> the TIDIGITS cochlea, "
        "[T, 64], 10 classes",
        layout=LAYOUT,
        source="generated offline by mambaspike with espeak-ng (apt-get install espeak-ng)",
        open=_open,
        class_names=tuple(str(d) for d in range(10)),
        time_window_us=1_000_000,
        dt_us=20_000,  # T = 50
        generated=True,
        folder=FOLDER_NAME,
    )


ENTRY = _entry()
