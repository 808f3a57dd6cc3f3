"""CIFAR-10 and CIFAR-100 from the "python version" pickles (no torchvision).

Layout: ``DATA_DIR/cifar-10-batches-py/{data_batch_1..5,test_batch}`` and
``DATA_DIR/cifar-100-python/{train,test}`` (the extracted official archives). Each pickle is a dict
with ``b"data"`` (uint8 ``[N, 3072]``, R, G, B planes of 32x32) and ``b"labels"`` (CIFAR-10) or
``b"fine_labels"`` (CIFAR-100). Unpickling is restricted to NumPy arrays, lists and builtins, so a
foreign pickle cannot run code. Samples are static images ``[1, 3, 32, 32]`` in [0, 1] (T = 1).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from mambaspike.data.arrays import ArraySource
from mambaspike.data.errors import DatasetError
from mambaspike.data.mnist import static_image

URL = "https://www.cs.toronto.edu/~kriz/cifar.html (the CIFAR-10/100 python version)"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_batch(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR pickle: uint8 images ``[N, 3, 32, 32]`` and int64 labels ``[N]``, validated."""
    try:
        batch = _SafeUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="bytes").load()
    except Exception as err:
        raise DatasetError(f"{path}: not a readable CIFAR python pickle ({type(err).__name__}: {err})") from err
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        raise DatasetError(f"{path}: expected a dict with fields b'data' and {label_key!r}")
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{path}: field 'data' is {data.dtype} {data.shape}, expected uint8 [N, 3072]")
    if labels.shape != (len(data),) or labels.dtype.kind not in "iu" or ((labels < 0) | (labels >= num_classes)).any():
        raise DatasetError(f"{path}: field {label_key.decode()!r} must be {len(data)} labels in 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _open(name: str, folder: str, train_files: list[str], label_key: bytes, num_classes: int):
    def open_split(data_dir: Path, download: bool) -> tuple[ArraySource, ArraySource]:
        from mambaspike.data.registry import missing

        root = data_dir / folder
        sources = []
        for split, files in (("train", train_files), ("test", ["test_batch" if num_classes == 10 else "test"])):
            parts = []
            for f in files:
                if not (root / f).is_file():
                    raise missing(name, data_dir, f"{root / f} missing")
                parts.append(read_batch(root / f, label_key, num_classes))
            sources.append(
                ArraySource(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), split)
            )
        return sources[0], sources[1]

    return open_split


def _entries():
    from mambaspike.data.registry import DatasetEntry

    common = dict(
        source=URL, kind="arrays", to_sample=static_image, time_window_us=1_000, dt_us=1_000, fixed_binning=True
    )
    return [
        DatasetEntry(
            name="cifar10",
            summary="CIFAR-10 images, [1, 3, 32, 32] (T = 1), 10 classes, 50k/10k",
            layout="DATA_DIR/cifar-10-batches-py/data_batch_1..5 and test_batch",
            open=_open("cifar10", "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], b"labels", 10),
            class_names=CIFAR10_CLASSES,
            **common,
        ),
        DatasetEntry(
            name="cifar100",
            summary="CIFAR-100 images, [1, 3, 32, 32] (T = 1), 100 fine classes, 50k/10k",
            layout="DATA_DIR/cifar-100-python/train and test",
            open=_open("cifar100", "cifar-100-python", ["train"], b"fine_labels", 100),
            class_names=tuple(str(i) for i in range(100)),
            **common,
        ),
    ]


ENTRIES = _entries()


def write_batch(path: Path, images: np.ndarray, labels, label_key: bytes = b"labels") -> None:
    """Write a CIFAR pickle like the official ones (tests, fixtures)."""
    batch = {b"batch_label": b"test", label_key: list(map(int, labels)), b"data": images.reshape(len(images), -1)}
    Path(path).write_bytes(pickle.dumps(batch, protocol=2))
