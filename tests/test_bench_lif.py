import importlib.util
import json

import pytest

from mambaspike.bench import BENCHES
from mambaspike.cli import main


def _rows(capsys, *args):
    assert main(["bench", "lif", "--json", "--repeats", "1", *args]) == 0
    out = capsys.readouterr()
    return [json.loads(line) for line in out.out.splitlines()], out.err


def test_bench_lif_json_rows(capsys):
    assert "lif" in BENCHES
    rows, err = _rows(capsys, "--T", "3,8", "--shape", "2,5")
    lif = [r for r in rows if r["name"] == "lif"]
    assert [r["T"] for r in lif] == [3, 8]
    for r in lif:
        for key in ("reference_s", "fast_s", "speedup", "reference_peak_mb", "fast_peak_mb", "copy_gb_s"):
            assert key in r
        assert r["fast_s"] > 0 and r["speedup"] == pytest.approx(r["reference_s"] / r["fast_s"])
        assert r["spikes_equal"] is True and r["grad_rel_err"] < 1e-5
        assert r["shape"] == [2, 5] and r["threads"] >= 1
    alif = [r for r in rows if r["name"] == "alif"]
    assert [r["T"] for r in alif] == [3, 8]
    for r in alif:  # the adaptive-threshold kernel against its own reference loop
        assert r["fast_s"] > 0 and r["speedup"] == pytest.approx(r["reference_s"] / r["fast_s"])
        assert r["spikes_equal"] is True and r["grad_rel_err"] < 1e-5
    assert "GB/s" in err  # achieved bandwidth against the copy bandwidth
    for lib in ("snntorch", "spikingjelly"):
        mine = [r for r in rows if r["name"] == lib]
        if importlib.util.find_spec(lib) is None:
            assert mine == []
        else:
            assert [r["T"] for r in mine] == [3, 8]
            assert all(r["fast_s"] > 0 and "fused_speedup" in r for r in mine)


def test_bench_lif_without_other_libraries_and_bad_arguments(capsys):
    rows, _ = _rows(capsys, "--T", "2", "--shape", "4", "--no-others")
    assert [r["name"] for r in rows] == ["lif", "alif"]
    with pytest.raises(SystemExit) as e:
        main(["bench", "lif", "--T", "0"])
    assert e.value.code == 2
    assert "positive integers" in capsys.readouterr().err
