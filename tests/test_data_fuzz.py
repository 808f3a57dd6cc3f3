"""Property-based fuzzing: random and truncated bytes fed to every parser give only our clear
``DatasetError`` (or a valid result), never a crash inside NumPy, h5py or pickle."""

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mambaspike.data import DatasetError
from mambaspike.data.audio import read_audio
from mambaspike.data.cifar import read_batch, write_batch
from mambaspike.data.cifar10dvs import encode_aedat2, read_aedat2
from mambaspike.data.dvsgesture import encode_aedat31, parse_aedat31, read_gesture_npy
from mambaspike.data.mnist import encode_idx, parse_idx
from mambaspike.data.nmnist import encode_nmnist, read_nmnist_file
from mambaspike.data.sources import event_array

_EV = event_array(np.arange(12) % 34, np.arange(12) % 30, np.arange(12) * 1000, np.arange(12) % 2)


def _npy_bytes():
    buf = io.BytesIO()
    np.save(buf, np.stack([_EV["x"], _EV["y"], _EV["p"], _EV["t"] / 1000.0], 1))
    return buf.getvalue()


def _cifar_bytes():
    with tempfile.TemporaryDirectory() as d:
        write_batch(Path(d) / "b", np.zeros((2, 3, 32, 32), np.uint8), [0, 1])
        return (Path(d) / "b").read_bytes()


def _wav_bytes():
    from scipy.io import wavfile

    buf = io.BytesIO()
    wavfile.write(buf, 16_000, np.arange(40, dtype=np.int16))
    return buf.getvalue()


_SPHERE = (
    b"NIST_1A\n   1024\nsample_rate -i 16000\nsample_n_bytes -i 2\nend_head\n".ljust(1024, b" ")
    + np.arange(40, dtype="<i2").tobytes()
)
_IDX = encode_idx(np.zeros((2, 28, 28), np.uint8))
PARSERS = {  # name -> (valid bytes, parse(bytes, path))
    "nmnist": (encode_nmnist(_EV), lambda b, p: (p.write_bytes(b), read_nmnist_file(p))),
    "aedat31": (encode_aedat31(_EV, packet_events=5), lambda b, p: parse_aedat31(b, p)),
    "aedat2": (encode_aedat2(_EV), lambda b, p: (p.write_bytes(b), read_aedat2(p))),
    "idx": (_IDX, lambda b, p: parse_idx(b, p, 3)),
    "npy": (_npy_bytes(), lambda b, p: (p.write_bytes(b), read_gesture_npy(p))),
    "wav": (_wav_bytes(), lambda b, p: (p.write_bytes(b), read_audio(p))),
    "sphere": (_SPHERE, lambda b, p: (p.write_bytes(b), read_audio(p))),
    "cifar": (_cifar_bytes(), lambda b, p: (p.write_bytes(b), read_batch(p, b"labels", 10))),
}
_SETTINGS = settings(
    max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _only_our_error(parse, data, path):
    try:
        parse(data, path)
    except DatasetError:
        pass


@pytest.mark.parametrize("name", PARSERS)
@_SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes(tmp_path, name, data):
    _only_our_error(PARSERS[name][1], data, tmp_path / "f")


@pytest.mark.parametrize("name", PARSERS)
@_SETTINGS
@given(
    cut=st.integers(min_value=0, max_value=10_000),
    flip=st.integers(min_value=0, max_value=10_000),
    value=st.integers(0, 255),
)
def test_truncated_and_corrupted_valid_files(tmp_path, name, cut, flip, value):
    valid, parse = PARSERS[name]
    parse(valid, tmp_path / "f")  # the untouched file parses
    data = bytearray(valid[: cut % (len(valid) + 1)])
    if data:
        data[flip % len(data)] = value
    _only_our_error(parse, bytes(data), tmp_path / "f")
