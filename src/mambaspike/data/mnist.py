"""MNIST from its idx files (no torchvision), and the sequential variants built on it.

Layout: ``DATA_DIR/MNIST/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (``.gz`` accepted; also
``DATA_DIR/MNIST/raw/``, torchvision's folder). idx format (LeCun): big-endian uint32 magic
(``0x00000803`` images, ``0x00000801`` labels), uint32 dimensions, then uint8 data.

- ``mnist``: static images, samples ``[1, 1, 28, 28]`` in [0, 1] (T = 1; spiking models encode them).
- ``smnist``: pixel by pixel, ``[784, 1]`` in [0, 1] (row-major).
- ``psmnist``: the same with one fixed pixel permutation (``numpy.random.default_rng(0).permutation(784)``).
- ``smnist-rate``: the authors' "Sequential MNIST" (really rate-coded MNIST): ``[T, 1, 28, 28]`` Bernoulli
  spikes with probability = pixel intensity, ``T = time_window / dt`` (default 20), fixed per sample.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from mambaspike.data.arrays import ArraySource
from mambaspike.data.errors import DatasetError

URL = "https://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)"
LAYOUT = (
    "DATA_DIR/MNIST/train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte (.gz accepted; or DATA_DIR/MNIST/raw/)"
)
DIGITS = tuple(str(d) for d in range(10))
PERMUTATION_SEED = 0


def parse_idx(data: bytes, path: str | Path, ndim: int) -> np.ndarray:
    """uint8 array of an idx file's bytes with ``ndim`` dimensions (3 images, 1 labels), validated."""
    if len(data) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: {len(data)} bytes, too short for an idx header of {ndim} dimensions")
    magic = int.from_bytes(data[:4], "big")
    if magic != 0x800 + ndim:
        raise DatasetError(
            f"{path}: byte offset 0: magic {magic:#010x}, expected {0x800 + ndim:#010x} "
            f"(uint8 idx with {ndim} dimensions)"
        )
    dims = [int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    start = 4 + 4 * ndim
    expected = start + int(np.prod(dims))
    if len(data) != expected:
        raise DatasetError(
            f"{path}: {len(data)} bytes, expected {expected} for dimensions {dims} (data from byte offset {start})"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims)


def _read(folder: Path, stem: str, ndim: int) -> np.ndarray:
    for path in (folder / stem, folder / f"{stem}.gz"):
        if path.is_file():
            data = path.read_bytes()
            if path.suffix == ".gz":
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError) as err:
                    raise DatasetError(f"{path}: not a valid gzip file ({err})") from err
            return parse_idx(data, path, ndim)
    raise FileNotFoundError(stem)


def load_mnist(data_dir: Path, name: str = "mnist") -> tuple[ArraySource, ArraySource]:
    """MNIST train/test images uint8 ``[N, 1, 28, 28]`` with labels."""
    from mambaspike.data.registry import missing

    for folder in (data_dir / "MNIST", data_dir / "MNIST" / "raw", data_dir):
        if (folder / "train-images-idx3-ubyte").is_file() or (folder / "train-images-idx3-ubyte.gz").is_file():
            break
    else:
        raise missing(name, data_dir, "MNIST idx files not found")
    sources = []
    for split, prefix in (("train", "train"), ("test", "t10k")):
        try:
            images = _read(folder, f"{prefix}-images-idx3-ubyte", 3)
            labels = _read(folder, f"{prefix}-labels-idx1-ubyte", 1)
        except FileNotFoundError as err:
            raise missing(name, data_dir, f"{folder / str(err)} missing") from None
        if len(images) != len(labels) or images.shape[1:] != (28, 28):
            raise DatasetError(f"{folder}: {prefix} images {images.shape} and labels {labels.shape} do not match")
        if labels.max(initial=0) > 9:
            raise DatasetError(f"{folder}: {prefix}-labels-idx1-ubyte has label {labels.max()}, expected 0..9")
        sources.append(ArraySource(images[:, None], labels, split))
    return sources[0], sources[1]


def static_image(image: np.ndarray, seed: int, T: int) -> np.ndarray:
    """uint8 ``[C, H, W]`` -> float32 ``[1, C, H, W]`` in [0, 1]."""
    return (image.astype(np.float32) / 255.0)[None]


def pixel_sequence(image: np.ndarray, seed: int, T: int) -> np.ndarray:
    """uint8 ``[1, 28, 28]`` -> float32 ``[784, 1]`` pixels in row-major order."""
    return (image.astype(np.float32) / 255.0).reshape(-1, 1)


PERMUTATION = np.random.default_rng(PERMUTATION_SEED).permutation(784)


def permuted_pixel_sequence(image: np.ndarray, seed: int, T: int) -> np.ndarray:
    """Like :func:`pixel_sequence` with the fixed permutation ``PERMUTATION``."""
    return pixel_sequence(image, seed, T)[PERMUTATION]


def rate_coded(image: np.ndarray, seed: int, T: int) -> np.ndarray:
    """uint8 ``[1, 28, 28]`` -> float32 ``[T, 1, 28, 28]`` Bernoulli spikes, p = intensity, fixed by ``seed``."""
    p = image.astype(np.float32) / 255.0
    return (np.random.default_rng(seed).random((T, *p.shape), dtype=np.float32) < p).astype(np.float32)


def _entries():
    from mambaspike.data.registry import DatasetEntry

    common = dict(layout=LAYOUT, source=URL, class_names=DIGITS, kind="arrays")
    return [
        DatasetEntry(
            name="mnist",
            summary="MNIST images, [1, 1, 28, 28] (T = 1), 10 classes, 60k/10k",
            open=lambda d, dl: load_mnist(d, "mnist"),
            to_sample=static_image,
            time_window_us=1_000,
            dt_us=1_000,
            fixed_binning=True,
            **common,
        ),
        DatasetEntry(
            name="smnist",
            summary="Sequential MNIST: pixel by pixel, [784, 1], 10 classes",
            open=lambda d, dl: load_mnist(d, "smnist"),
            to_sample=pixel_sequence,
            time_window_us=784_000,
            dt_us=1_000,
            fixed_binning=True,
            **common,
        ),
        DatasetEntry(
            name="psmnist",
            summary="Permuted sequential MNIST: fixed pixel permutation (seed 0), [784, 1]",
            open=lambda d, dl: load_mnist(d, "psmnist"),
            to_sample=permuted_pixel_sequence,
            time_window_us=784_000,
            dt_us=1_000,
            fixed_binning=True,
            **common,
        ),
        DatasetEntry(
            name="smnist-rate",
            summary="The Mamba-Spike authors' 'Sequential MNIST': rate-coded "
            "MNIST, [T, 1, 28, 28] spikes (T = time_window / dt, default 20)",
            open=lambda d, dl: load_mnist(d, "smnist-rate"),
            to_sample=rate_coded,
            time_window_us=20_000,
            dt_us=1_000,
            **common,
        ),
    ]


ENTRIES = _entries()


def encode_idx(array: np.ndarray) -> bytes:
    """idx bytes of a uint8 array (tests, fixtures)."""
    header = (0x800 + array.ndim).to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
