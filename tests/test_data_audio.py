"""The audio path: SPHERE/WAV reading, the software cochlea, TIDIGITS' layout and spoken digits."""

import shutil

import numpy as np
import pytest
from scipy.io import wavfile

from mambaspike.data import DatasetError, get_datasets
from mambaspike.data.audio import CochleaParams, cochlea_spikes, erb_space, read_audio


def _tone(freq, seconds=0.3, rate=16_000, amp=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _sphere(samples_i16, rate=20_000, coding="pcm", byte_format="01"):
    fields = (
        f"NIST_1A\n   1024\nsample_count -i {len(samples_i16)}\nsample_rate -i {rate}\nchannel_count -i 1\n"
        f"sample_n_bytes -i 2\nsample_byte_format -s2 {byte_format}\n"
        f"sample_coding -s{len(coding)} {coding}\nend_head\n"
    )
    order = ">" if byte_format == "10" else "<"
    return fields.encode().ljust(1024, b" ") + np.asarray(samples_i16, dtype=f"{order}i2").tobytes()


def test_sphere_and_wav_read_the_same_samples(tmp_path):
    samples = (np.arange(-50, 50) * 300).astype(np.int16)
    for byte_format in ("01", "10"):
        (tmp_path / "a.wav").write_bytes(_sphere(samples, byte_format=byte_format))
        x, rate = read_audio(tmp_path / "a.wav")
        assert rate == 20_000 and np.allclose(x * 32768, samples)
    wavfile.write(tmp_path / "b.wav", 20_000, samples)
    y, rate = read_audio(tmp_path / "b.wav")
    assert rate == 20_000 and np.allclose(y * 32768, samples)


def test_bad_audio_names_file_and_field(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(_sphere(np.zeros(10, np.int16), coding="pcm,embedded-shorten-v2.00"))
    with pytest.raises(DatasetError, match="a.wav: field sample_coding=.*shorten.*sph2pipe"):
        read_audio(path)
    path.write_bytes(b"NIST_1A\n   xx\n")
    with pytest.raises(DatasetError, match="byte offset 8: SPHERE header size"):
        read_audio(path)
    path.write_bytes(b"garbage bytes")
    with pytest.raises(DatasetError, match="byte offset 0: neither RIFF WAVE nor NIST SPHERE"):
        read_audio(path)
    wavfile.write(path, 16_000, np.arange(100, dtype=np.int16))
    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(DatasetError, match="a.wav: truncated WAV"):
        read_audio(path)
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    with pytest.raises(DatasetError, match="unreadable WAV"):
        read_audio(path)


def test_a_tone_drives_the_channel_tuned_to_it():
    params = CochleaParams()
    centres = erb_space(params.f_min, params.f_max, params.channels)
    for freq in (300.0, 1_000.0, 4_000.0):
        events = cochlea_spikes(_tone(freq), 16_000, params)
        counts = np.bincount(events["x"], minlength=params.channels)
        assert abs(int(np.argmax(counts)) - int(np.argmin(abs(centres - freq)))) <= 2
        assert (np.diff(events["t"]) >= 0).all() and events["t"].max() < 300_000 and events["t"].dtype == np.int64
    assert len(cochlea_spikes(np.zeros(4000, np.float32), 16_000)) == 0  # silence stays silent
    a, b = cochlea_spikes(_tone(500), 16_000), cochlea_spikes(_tone(500, amp=0.05), 16_000)
    assert np.array_equal(a, b)  # peak normalisation: level invariant


def test_tidigits_layout_single_digits_only(tmp_path):
    freqs = np.linspace(300, 3000, 11)
    for split, speakers in (("train", ("aa", "ab")), ("test", ("ac",))):
        for spk in speakers:
            d = tmp_path / "TIDIGITS" / "tidigits" / split / "man" / spk
            d.mkdir(parents=True)
            for label, digit in enumerate("o123456789z"):
                wavfile.write(d / f"{digit}a.wav", 20_000, (_tone(freqs[label], rate=20_000) * 20_000).astype(np.int16))
            wavfile.write(d / "12za.wav", 20_000, np.zeros(100, np.int16))  # a sequence: not used
    train, val, test, info = get_datasets("tidigits", tmp_path, val_fraction=0.5)
    assert info.input_shape == (64,) and info.num_classes == 11 and info.T == 75
    assert len(test) == 11 and len(train) + len(val) == 22
    x, y = test[10]
    assert y == 10 and x.shape == (75, 64) and x.sum() > 0 and x[20:].sum() == 0  # 0.3 s tone = bins 0..14


def test_spoken_digits_plan_is_seeded_and_holds_out_every_fifth_speaker():
    from mambaspike.data.spoken_digits import SPEED_WPM, plan, speakers

    rows = plan(seed=0)
    assert rows == plan(seed=0) and rows != plan(seed=1)
    voices = speakers()
    assert len(voices) == 84 and len(rows) == 84 * 10 * 2
    test_speakers = {r["speaker"] for r in rows if r["split"] == "test"}
    assert test_speakers == set(voices[::5])  # every fifth speaker (sorted), never heard in training
    assert not test_speakers & {r["speaker"] for r in rows if r["split"] == "train"}
    assert all(SPEED_WPM[0] <= r["speed"] <= SPEED_WPM[1] for r in rows)
    assert all(r["path"].startswith(f"{r['split']}/{r['digit']}/") and r["path"].endswith(".wav") for r in rows)


def test_spoken_digits_reads_a_generated_folder_without_espeak(tmp_path, monkeypatch):
    import mambaspike.data.spoken_digits as sd

    monkeypatch.setattr(sd.shutil, "which", lambda name: None)  # nothing may be synthesised
    folder = tmp_path / "spoken-digits"
    freqs = np.linspace(300, 3000, 10)
    for split, n in (("train", 2), ("test", 1)):
        for digit in range(10):
            (folder / split / str(digit)).mkdir(parents=True)
            for k in range(n):
                tone = (_tone(freqs[digit]) * 20_000).astype(np.int16)
                wavfile.write(folder / split / str(digit) / f"en-us_m{k}-0.wav", 16_000, tone)
    (folder / "meta.json").write_text('{"name": "spoken-digits"}')
    train, val, test, info = get_datasets("spoken-digits", tmp_path, val_fraction=0.5)
    assert info.input_shape == (64,) and info.num_classes == 10 and info.T == 50
    assert len(test) == 10 and len(train) == len(val) == 10
    x, y = test[7]
    assert y == 7 and x.shape == (50, 64) and x[:15].sum() > 0 and x[20:].sum() == 0  # 0.3 s tone = bins 0..14
    for f in (folder / "test").rglob("*.wav"):
        f.unlink()
    with pytest.raises(DatasetError, match="no .wav files in .*test: expected"):
        sd.open_folder(folder)


def test_spoken_digits_generation_is_deterministic(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    from mambaspike.data.spoken_digits import generate, open_folder

    options = dict(voices=("en-us",), variants=("m1", "f2", "m3", "f4", "m5"), renditions=1)
    a, b = generate(tmp_path / "a", seed=0, **options), generate(tmp_path / "b", seed=0, **options)
    files = sorted(p.relative_to(a) for p in a.rglob("*.wav"))
    assert len(files) == 50 and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    train, test = open_folder(a)
    assert len(train) == 40 and len(test) == 10  # speaker 0 of 5 held out
    assert sorted(set(test.targets.tolist())) == list(range(10))
    events, label = test[3]
    assert label == 3 and len(events) > 100 and events["x"].max() < 64


def test_missing_espeak_is_a_clear_error(tmp_path, monkeypatch):
    import mambaspike.data.spoken_digits as sd

    monkeypatch.setattr(sd.shutil, "which", lambda name: None)
    with pytest.raises(DatasetError, match="needs espeak-ng.*apt-get install espeak-ng"):
        get_datasets("spoken-digits", tmp_path)
    assert not (tmp_path / "spoken-digits").exists()
