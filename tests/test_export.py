"""ONNX and NIR export: round trips checked against our own outputs (onnxruntime, nir, snnTorch)."""

import contextlib
import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mambaspike.cli import main
from mambaspike.errors import ExportError
from mambaspike.evaluation.inference import SpikeCounter
from mambaspike.export import export_onnx, frontend_to_nir
from mambaspike.export.onnx import export_mode
from mambaspike.layers.frontend import SpikingFrontEnd
from mambaspike.layers.pooling import temporal_pool
from mambaspike.models.config import ModelConfig
from mambaspike.models.registry import build_model
from mambaspike.neurons.modules import LIF

TINY = dict(channels=(4, 8, 16), d_model=32, n_layers=1, d_state=8, input_shape=(2, 34, 34), num_classes=10, dt_ms=10.0)


# --------------------------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mambaspike", "mamba", "lstm", "gru"])
def test_onnx_round_trip_matches_pytorch(name, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, **TINY))
    if name == "mambaspike":
        _trained_like(model.frontend, gain=6.0).train()  # untrained weights hardly spike
    res = export_onnx(model, TINY["input_shape"], 7, tmp_path / f"{name}.onnx")  # T=7: uneven windows pad
    assert res["max_abs_diff"] <= 1e-4 and res["batches"] == [1, 3]
    assert model.training  # export_mode restores the training flag and every module it swapped
    assert all(type(m.spike_fn).__name__ == "ATan" for m in model.modules() if isinstance(m, LIF))
    # our own check, at a batch size the exporter never saw
    x = torch.poisson(torch.full((7, 4, *TINY["input_shape"]), 0.4))
    s = ort.InferenceSession(res["path"], providers=["CPUExecutionProvider"])
    (out,) = s.run(None, {"frames": x.numpy()})
    with torch.no_grad(), SpikeCounter(model) as counter:
        ref = model.eval()(x).numpy()
    if name == "mambaspike":  # the spiking model really spikes, in every block
        assert counter.total > 1000 and (model.frontend(x)[0].sum() > 0)
    assert out.shape == (4, 10)
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_onnx_mismatch_is_an_error(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    import mambaspike.export.onnx as ex

    model = build_model(ModelConfig(name="gru", **TINY))
    with pytest.raises(ExportError, match="differ from PyTorch's"):
        ex.export_onnx(model, TINY["input_shape"], 3, tmp_path / "m.onnx", atol=-1.0)


def test_export_mode_forces_reference_backends_and_restores_them():
    model = build_model(ModelConfig(name="mambaspike", **TINY))
    lif = model.frontend.blocks[0].lif
    lif.backend = "auto"  # as a fast-path neuron would have
    model.backbone.cfg.scan_backend = "auto"
    pool = model.frontend.blocks[-1].pool
    with export_mode(model, torch.zeros(2, 1, *TINY["input_shape"])):
        assert lif.backend == "reference" and model.backbone.cfg.scan_backend == "reference"
        assert isinstance(model.frontend.blocks[-1].pool, torch.nn.AvgPool2d)  # adaptive avg readout -> fixed 2x2
    assert lif.backend == "auto" and model.backbone.cfg.scan_backend == "auto"
    assert model.frontend.blocks[-1].pool is pool


# --------------------------------------------------------------------------------------------
# NIR
# --------------------------------------------------------------------------------------------


def _trained_like(fe: SpikingFrontEnd, gain: float = 3.0) -> SpikingFrontEnd:
    """Non-trivial BatchNorm statistics and a drive that makes neurons fire."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for b in fe.blocks:
            c = b.bn.weight.numel()
            b.conv.weight.mul_(gain)
            if not isinstance(b.bn, torch.nn.modules.batchnorm._BatchNorm):  # a per-sample norm: no statistics
                b.bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
                b.bn.bias.copy_(torch.rand(c, generator=g) * 0.4)
                b.lif.w.add_(torch.rand((), generator=g) - 0.5)
                continue
            b.bn.running_mean.copy_(torch.rand(c, generator=g) * 0.4 - 0.2)
            b.bn.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            b.bn.weight.copy_(torch.rand(c, generator=g) + 0.5)
            b.bn.bias.copy_(torch.rand(c, generator=g) * 0.4)
            b.lif.w.add_(torch.rand((), generator=g) - 0.5)  # a "learnt" tau
    return fe.eval()


def simulate_nir(graph, x: torch.Tensor, dt: float) -> torch.Tensor:
    """A small reference simulator of NIR's semantics (forward Euler at ``dt`` s, one-step delay on
    recurrent edges) for the node types our front-end uses. ``x [T, B, ...]`` -> output ``[T, B, ...]``."""
    import nir

    order = ["input"]  # breadth-first from the input: an edge back to an earlier node is a recurrence
    for k in order:
        order += [d for s, d in graph.edges if s == k and d not in order]
    sources = {k: [s for s, d in graph.edges if d == k] for k in order}
    prev = {k: 0.0 for k in order}
    v = {}
    outs = []
    for xt in x.unbind(0):
        cur = {}
        for k in order:
            node = graph.nodes[k]
            if isinstance(node, nir.Input):
                cur[k] = xt
                continue
            # a source later in the order (or a recurrent cycle) feeds the previous step's output
            ins = [cur[s] if order.index(s) < order.index(k) else prev[s] for s in sources[k]]
            i = sum(ins[1:], ins[0])
            t = lambda a: torch.as_tensor(np.asarray(a), dtype=x.dtype)  # noqa: E731
            if isinstance(node, nir.Conv2d):
                ints = lambda a: tuple(int(v) for v in np.broadcast_to(np.asarray(a), (2,)))  # noqa: E731
                cur[k] = F.conv2d(
                    i,
                    t(node.weight),
                    t(node.bias),
                    ints(node.stride),
                    ints(node.padding),
                    ints(node.dilation),
                    int(node.groups),
                )
            elif isinstance(node, nir.LIF):
                vk = v.get(k, torch.zeros_like(i) + t(node.v_reset))
                vk = vk + dt / t(node.tau) * (t(node.v_leak) - vk + t(node.r) * i)
                s = (vk >= t(node.v_threshold)).to(x.dtype)
                v[k] = torch.where(s > 0, t(node.v_reset).expand_as(vk), vk)
                cur[k] = s
            elif isinstance(node, nir.SumPool2d):
                k_ = tuple(int(a) for a in node.kernel_size)
                cur[k] = F.avg_pool2d(
                    i, k_, tuple(int(a) for a in node.stride), tuple(int(a) for a in node.padding), divisor_override=1
                )
            elif isinstance(node, nir.Threshold):
                cur[k] = (i - t(node.threshold) > 0).to(x.dtype)
            elif isinstance(node, nir.Scale):
                cur[k] = i * t(node.scale)
            elif isinstance(node, nir.Output):
                cur[k] = i
            else:
                raise AssertionError(f"simulator: unsupported node {type(node).__name__}")
        prev = cur
        outs.append(cur["output"])
    return torch.stack(outs)


def test_nir_graph_round_trips_through_a_file_and_reproduces_block0(tmp_path):
    nir = pytest.importorskip("nir")
    torch.manual_seed(0)
    fe = _trained_like(SpikingFrontEnd(2, (4, 8, 16), dt_ms=10.0, tau_ms=30.0, temporal_pool=2, spatial_out=2))
    graph, notes = frontend_to_nir(fe, (2, 16, 16))
    assert any("Mamba backbone" in n for n in notes) and any("temporal max-pooling" in n for n in notes)
    nir.write(tmp_path / "fe.nir", graph)
    back = nir.read(tmp_path / "fe.nir")
    assert set(back.nodes) == {"input", "block0_conv", "block0_lif", "block0_pool_sum", "block0_pool_any", "output"}
    assert isinstance(back.nodes["block0_lif"], nir.LIF)
    beta = float(fe.blocks[0].lif.beta.detach().double())
    np.testing.assert_allclose(back.nodes["block0_lif"].tau, 0.010 / (1 - beta))  # seconds
    np.testing.assert_allclose(back.nodes["block0_lif"].r, 1.0)
    fe.double()
    x = torch.poisson(torch.full((12, 2, 2, 16, 16), 0.5, dtype=torch.float64))
    with torch.no_grad():
        ours, _ = fe.blocks[0](x)  # block 0: conv -> BN -> LIF -> 2x2 max-pool
    theirs = simulate_nir(back, x, dt=0.010)
    assert ours.sum() > 50
    assert torch.equal(theirs, ours)
    # the blocks after the temporal pooling, as their own graph at the pooled bin (20 ms)
    pooled = temporal_pool(ours, 2)
    later, notes = frontend_to_nir(fe, tuple(pooled.shape[2:]), blocks=(1, 3))
    assert "block2_recurrent" in later.nodes and any("2 input bins" in n for n in notes)
    with torch.no_grad():
        y = pooled
        for b in fe.blocks[1:]:
            y, _ = b(y)
    assert y.sum() > 0
    assert torch.equal(simulate_nir(later, pooled, dt=0.020), y)


def test_nir_whole_frontend_with_recurrence_when_time_is_not_pooled(tmp_path):
    nir = pytest.importorskip("nir")
    torch.manual_seed(0)
    fe = SpikingFrontEnd(2, (4, 8), dt_ms=5.0, tau_ms=20.0, temporal_pool=1, spatial_out=2)
    fe = _trained_like(fe, gain=6.0).double()
    graph, notes = frontend_to_nir(fe, (2, 16, 16))
    nir.write(tmp_path / "fe.nir", graph)
    back = nir.read(tmp_path / "fe.nir")
    assert ("block1_lif", "block1_recurrent") in back.edges and ("block1_recurrent", "block1_lif") in back.edges
    assert back.nodes["output"].output_type["output"].tolist() == [8, 2, 2]  # adaptive 8x8 -> 2x2 exported
    x = torch.poisson(torch.full((10, 2, 2, 16, 16), 0.5, dtype=torch.float64))
    with torch.no_grad():
        ours, _ = fe(x)
    assert ours.sum() > 20
    assert torch.equal(simulate_nir(back, x, dt=0.005), ours)


def test_nir_average_readout_is_a_sum_pool_and_a_scale(tmp_path):
    nir = pytest.importorskip("nir")
    torch.manual_seed(0)
    fe = SpikingFrontEnd(2, (4, 8), dt_ms=5.0, tau_ms=20.0, temporal_pool=1, spatial_out=2, readout_pool="avg")
    fe = _trained_like(fe, gain=6.0).double()
    graph, _ = frontend_to_nir(fe, (2, 16, 16))
    nir.write(tmp_path / "fe.nir", graph)
    back = nir.read(tmp_path / "fe.nir")
    assert isinstance(back.nodes["block1_pool_mean"], nir.Scale) and "block1_pool_any" not in back.nodes
    x = torch.poisson(torch.full((10, 2, 2, 16, 16), 0.5, dtype=torch.float64))
    with torch.no_grad():
        ours, _ = fe(x)
    assert ((ours > 0) & (ours < 1)).any()  # mean spike counts, not binary
    assert torch.allclose(simulate_nir(back, x, dt=0.005), ours, rtol=0, atol=1e-12)


def test_nir_refuses_what_it_cannot_express():
    pytest.importorskip("nir")
    fe = SpikingFrontEnd(2, (4, 8), temporal_pool=2)
    with pytest.raises(ExportError, match="temporal"):
        frontend_to_nir(fe, (2, 16, 16), blocks=(0, 2))
    fe.blocks[0].lif.soft_reset = True
    with pytest.raises(ExportError, match="soft"):
        frontend_to_nir(fe, (2, 16, 16))


def test_nir_block_imported_into_snntorch_spikes_like_ours():
    nir = pytest.importorskip("nir")
    pytest.importorskip("nirtorch")
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    torch.manual_seed(0)
    fe = _trained_like(SpikingFrontEnd(2, (4, 8), dt_ms=10.0, tau_ms=30.0, temporal_pool=2, spatial_out=2))
    # snnTorch's importer simulates with a fixed dt of 1e-4 s (snntorch/import_nir.py), so one bin is
    # exported as 1e-4 s; it has no pooling nodes, so the conv -> LIF part of block 0 is imported.
    graph, _ = frontend_to_nir(fe, (2, 12, 12), input_dt_s=1e-4)
    keep = ["input", "block0_conv", "block0_lif"]
    sub = nir.NIRGraph(
        nodes={
            **{k: graph.nodes[k] for k in keep},
            "output": nir.Output(output_type={"output": np.array([4, 12, 12])}),
        },
        edges=[("input", "block0_conv"), ("block0_conv", "block0_lif"), ("block0_lif", "output")],
        type_check=False,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints its weight-scaling notes
        net = import_from_nir(sub).double()
    fe.double()
    x = torch.poisson(torch.full((20, 3, 2, 12, 12), 0.5, dtype=torch.float64))
    spikes = []
    hook = fe.blocks[0].lif.register_forward_hook(lambda m, i, o: spikes.append(o[0]))
    with torch.no_grad():
        fe.blocks[0](x)
        theirs = torch.stack([net(xt)[0] for xt in x.unbind(0)])
    hook.remove()
    ours = spikes[0]
    assert ours.sum() > 100
    assert torch.equal(theirs, ours)


# --------------------------------------------------------------------------------------------
# CLI on a tiny trained run
# --------------------------------------------------------------------------------------------


def _tiny_trained(data_dir, out, **model):
    from mambaspike.training.trainer import TrainConfig, train

    cfg = TrainConfig(
        data_dir=str(data_dir),
        output_dir=str(out),
        subset=40,
        epochs=1,
        batch_size=16,
        lr=3e-3,
        progress=False,
        threads=1,
        time_window_us=100000,
        model_overrides=dict(channels=(4, 8, 16), d_model=32, n_layers=1, d_state=8, **model),
    )
    train(cfg, log=lambda *a, **k: None)
    return out


@pytest.fixture(scope="module")
def tiny_run(data_dir, tmp_path_factory):
    """A run of the default front-end (adaptive-threshold neurons)."""
    return _tiny_trained(data_dir, tmp_path_factory.mktemp("export") / "run")


@pytest.fixture(scope="module")
def tiny_lif_run(data_dir, tmp_path_factory):
    """A run of a LIF front-end with BatchNorm (what NIR can express)."""
    return _tiny_trained(data_dir, tmp_path_factory.mktemp("export-lif") / "run", neuron="lif", current_norm="batch")


def test_cli_exports_onnx_of_a_trained_run(tiny_run, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    assert (
        main(["export", "--checkpoint", str(tiny_run), "--format", "onnx", "--output", str(tmp_path / "m.onnx")]) == 0
    )
    out = capsys.readouterr().out
    assert "max abs diff" in out and (tmp_path / "m.onnx").is_file()


def test_cli_exports_nir_and_says_what_is_left_out(tiny_lif_run, tmp_path, capsys):
    nir = pytest.importorskip("nir")
    assert (
        main(["export", "--checkpoint", str(tiny_lif_run), "--format", "nir", "--output", str(tmp_path / "f.nir")]) == 0
    )
    out = capsys.readouterr().out
    assert "Mamba backbone" in out and "not exported" in out
    g = nir.read(tmp_path / "f.nir")
    assert "block0_lif" in g.nodes and "output" in g.nodes
    run = json.loads((tiny_lif_run / "run.json").read_text())
    assert g.nodes["input"].input_type["input"].tolist() == list(run["model"]["input_shape"])
    # the later blocks as their own graph
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(tiny_lif_run),
                "--format",
                "nir",
                "--blocks",
                "1:3",
                "--output",
                str(tmp_path / "later.nir"),
            ]
        )
        == 0
    )
    assert "block2_recurrent" in nir.read(tmp_path / "later.nir").nodes
    # snnTorch's time step
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(tiny_lif_run),
                "--format",
                "nir",
                "--bin-seconds",
                "1e-4",
                "--output",
                str(tmp_path / "snn.nir"),
            ]
        )
        == 0
    )
    from mambaspike.training.run import load_run

    beta = float(load_run(tiny_lif_run).model().frontend.blocks[0].lif.beta.detach().double())
    lif = nir.read(tmp_path / "snn.nir").nodes["block0_lif"]
    np.testing.assert_allclose(1 - 1e-4 / lif.tau, beta)  # snnTorch's decay at its dt equals ours


def test_cli_export_errors_are_one_line(tiny_lif_run, tmp_path, capsys):
    assert main(["export", "--checkpoint", str(tmp_path / "nope"), "--format", "onnx"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such run directory" in err
    pytest.importorskip("nir")
    assert main(["export", "--checkpoint", str(tiny_lif_run), "--format", "nir", "--blocks", "0:3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "temporal max-pooling" in err and "--blocks 0:1" in err


def test_nir_refuses_adaptive_thresholds_and_says_what_exports(tiny_run, capsys):
    pytest.importorskip("nir")
    assert main(["export", "--checkpoint", str(tiny_run), "--format", "nir"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no adaptive-threshold neuron" in err and "--set neuron=lif" in err


def test_nir_of_a_non_spiking_model_is_refused(tmp_path, monkeypatch):
    pytest.importorskip("nir")
    import json

    from mambaspike.export import export_run
    from mambaspike.training.run import Run

    cfg = ModelConfig(name="gru", **TINY)
    run = {"model": cfg.to_dict(), "train": {"time_window_us": 30000, "dt_us": 10000}}
    (tmp_path / "run.json").write_text(json.dumps(run))
    monkeypatch.setattr(Run, "model", lambda self, tag="best", device=None: build_model(self.model_config).eval())
    with pytest.raises(ExportError, match="no spiking front-end"):
        export_run(tmp_path, "nir", log=lambda *a: None)
