"""Audio -> cochlear filterbank -> spikes: a software silicon cochlea for TIDIGITS and spoken digits.

The Mamba-Spike paper treats TIDIGITS as a neuromorphic data set recorded through a silicon cochlea;
for the audio itself we build the same kind of signal in software:

1. read a RIFF WAV or NIST SPHERE (PCM) file, mix to mono, resample to ``rate`` Hz, normalise the peak
   to 1 (an automatic gain control);
2. a gammatone filterbank (``scipy.signal.gammatone``, 4th-order IIR) of ``channels`` filters with
   centre frequencies equally spaced on the ERB-rate scale (Glasberg & Moore 1990) from ``f_min`` to
   ``f_max`` Hz;
3. half-wave rectification and power-law compression (``** compression``) of each channel, minus a
   noise ``floor`` (silence stays silent);
4. integrate-and-fire per channel without leak: the channel fires each time the integral of its
   envelope grows by ``1 / spikes_per_second`` (an envelope of 1 fires ``spikes_per_second`` Hz).

The result is events like N-TIDIGITS': fields x (channel), t (µs from the start of the file), p = 0,
binned like any one-dimensional event data into ``[T, channels]`` counts (and cached; the cache key
holds these parameters).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mambaspike.data.errors import DatasetError

AUDIO_EVENTS = np.dtype([("x", np.int16), ("t", np.int64), ("p", np.int8)])


@dataclass(frozen=True)
class CochleaParams:
    channels: int = 64
    rate: int = 16_000  # Hz, audio is resampled to this
    f_min: float = 100.0  # Hz, lowest centre frequency
    f_max: float = 7_000.0  # Hz, highest centre frequency (below rate / 2)
    compression: float = 0.3  # envelope ** compression
    floor: float = 0.1  # subtracted from the compressed envelope (peak-normalised audio)
    spikes_per_second: float = 1000.0  # firing rate of a channel at envelope 1

    def to_dict(self) -> dict:
        return asdict(self)


def read_sphere(data: bytes, path: str | Path) -> tuple[np.ndarray, int]:
    """NIST SPHERE (``NIST_1A`` header, PCM samples): float32 ``[N]`` in [-1, 1] and the rate in Hz."""
    if not data.startswith(b"NIST_1A"):
        raise DatasetError(f"{path}: byte offset 0: not a NIST SPHERE file (expected 'NIST_1A')")
    try:
        header_size = int(data[8:16].split()[0])
    except (ValueError, IndexError):
        raise DatasetError(f"{path}: byte offset 8: SPHERE header size is not a number") from None
    if header_size > len(data) or header_size < 16:
        raise DatasetError(f"{path}: SPHERE header size {header_size} does not fit the {len(data)}-byte file")
    fields = {}
    for line in data[16:header_size].decode("ascii", "replace").splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3:
            fields[parts[0]] = parts[2].strip()
        if line.strip() == "end_head":
            break
    coding = fields.get("sample_coding", "pcm")
    if "shorten" in coding or "wavpack" in coding:
        raise DatasetError(
            f"{path}: field sample_coding={coding!r}: compressed SPHERE; decompress it first "
            f"(sph2pipe -f wav, or sox) and point --data-dir at the result"
        )
    try:
        rate, width = int(fields["sample_rate"]), int(fields.get("sample_n_bytes", 2))
        n_channels = int(fields.get("channel_count", 1))
    except (KeyError, ValueError) as err:
        raise DatasetError(f"{path}: SPHERE header field {err} missing or not a number") from None
    if width != 2 or n_channels < 1 or rate <= 0:
        raise DatasetError(
            f"{path}: SPHERE with {width}-byte samples, {n_channels} channels at {rate} Hz; expected 16-bit PCM"
        )
    order = ">" if fields.get("sample_byte_format", "01") == "10" else "<"
    body = data[header_size:]
    usable = len(body) - len(body) % (2 * n_channels)
    samples = np.frombuffer(body[:usable], dtype=f"{order}i2").reshape(-1, n_channels).mean(1)
    return (samples / 32768.0).astype(np.float32), rate


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """A WAV or SPHERE file as mono float32 ``[N]`` in [-1, 1] and its sample rate in Hz."""
    data = Path(path).read_bytes()
    if data.startswith(b"NIST_1A"):
        return read_sphere(data, path)
    if not (data.startswith(b"RIFF") and data[8:12] == b"WAVE"):
        raise DatasetError(f"{path}: byte offset 0: neither RIFF WAVE nor NIST SPHERE audio")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            from scipy.io import wavfile

            rate, samples = wavfile.read(path)
    except Exception as err:  # scipy raises ValueError, EOFError, even UnboundLocalError on bad headers
        raise DatasetError(f"{path}: unreadable WAV ({type(err).__name__}: {err})") from err
    for w in caught:
        if "EOF" in str(w.message):  # scipy reads a truncated file up to where it ends: never a silent short sample
            raise DatasetError(f"{path}: truncated WAV ({w.message})")
    samples = np.asarray(samples)
    if samples.ndim == 2:
        samples = samples.mean(1)
    if samples.dtype.kind == "i":
        samples = samples / float(np.iinfo(samples.dtype).max + 1)
    elif samples.dtype.kind == "u":
        samples = (samples.astype(np.float64) - 128) / 128
    if samples.size == 0 or rate <= 0:
        raise DatasetError(f"{path}: WAV with no samples")
    return samples.astype(np.float32), int(rate)


def erb_space(f_min: float, f_max: float, n: int) -> np.ndarray:
    """``n`` centre frequencies (Hz) equally spaced on the ERB-rate scale."""
    erb = lambda f: 21.4 * np.log10(1 + 0.00437 * f)  # noqa: E731
    inv = lambda e: (10 ** (e / 21.4) - 1) / 0.00437  # noqa: E731
    return inv(np.linspace(erb(f_min), erb(f_max), n))


def cochlea_envelopes(samples: np.ndarray, rate: int, params: CochleaParams = CochleaParams()) -> np.ndarray:
    """Compressed, floored envelopes float32 ``[channels, N']`` at ``params.rate`` Hz (steps 1-3)."""
    from scipy import signal

    x = np.asarray(samples, dtype=np.float64)
    if rate != params.rate:
        g = np.gcd(int(rate), params.rate)
        x = signal.resample_poly(x, params.rate // g, int(rate) // g)
    peak = np.abs(x).max()
    x = x / peak if peak > 0 else x
    out = np.empty((params.channels, len(x)), dtype=np.float32)
    for k, fc in enumerate(erb_space(params.f_min, min(params.f_max, 0.45 * params.rate), params.channels)):
        b, a = signal.gammatone(fc, "iir", fs=params.rate)
        y = signal.lfilter(b, a, x)
        out[k] = np.maximum(np.maximum(y, 0) ** params.compression - params.floor, 0)
    return out


def cochlea_spikes(samples: np.ndarray, rate: int, params: CochleaParams = CochleaParams()) -> np.ndarray:
    """Integrate-and-fire spikes of the filterbank (step 4): events (x channel, t µs, p = 0), time-sorted."""
    env = cochlea_envelopes(samples, rate, params)
    level = np.cumsum(env, axis=1, dtype=np.float64) * (params.spikes_per_second / params.rate)
    fired = np.diff(np.floor(level), axis=1, prepend=0).astype(np.int64)  # spikes per audio sample
    channel, index = np.nonzero(fired)
    repeat = fired[channel, index]
    t_us = np.repeat(index, repeat) * 1_000_000 // params.rate
    events = np.zeros(len(t_us), dtype=AUDIO_EVENTS)
    events["x"], events["t"] = np.repeat(channel, repeat), t_us
    return events[np.argsort(events["t"], kind="stable")]
