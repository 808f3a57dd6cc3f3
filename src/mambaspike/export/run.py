"""Export a training run's validation-selected checkpoint (``mambaspike export``): ONNX or NIR."""

from __future__ import annotations

from pathlib import Path

import torch

from mambaspike.errors import ExportError
from mambaspike.export.nir import frontend_to_nir
from mambaspike.export.onnx import export_onnx
from mambaspike.export.optional import require

FORMATS = ("onnx", "nir")


def run_time_bins(run: dict) -> int:
    from mambaspike.data.frames import num_bins

    t = run["train"]
    return num_bins(t["time_window_us"], t["dt_us"])


def export_run(
    run_dir: str | Path,
    fmt: str,
    output: str | Path | None = None,
    atol: float = 1e-4,
    blocks: tuple[int, int] | None = None,
    input_dt_s: float | None = None,
    log=print,
) -> dict:
    """Export the validation-selected checkpoint of a training run (``mambaspike export``)."""
    from mambaspike.training.run import load_run

    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    loaded = load_run(run_dir)
    model = loaded.model("best")
    run = loaded.record
    cfg = run["model"]
    input_shape = tuple(cfg["input_shape"])
    out = Path(output) if output is not None else Path(run_dir) / f"model.{fmt}"
    if fmt == "onnx":
        if blocks is not None or input_dt_s is not None:
            raise ExportError("--blocks and --bin-seconds apply to --format nir only")
        T = run_time_bins(run)
        res = export_onnx(model, input_shape, T, out, atol=atol)
        log(
            f"wrote {out}: {cfg['name']} inference path, "
            f"input frames [T={T}, batch, {', '.join(map(str, input_shape))}] "
            f"-> logits [batch, {cfg['num_classes']}] (batch dynamic, T fixed)"
        )
        log(
            f"onnxruntime vs PyTorch: max abs diff {res['max_abs_diff']:.3g} (tolerance {atol:g}, batches "
            f"{', '.join(map(str, res['batches']))})"
        )
        return res
    nir = require("nir")
    frontend = getattr(model, "frontend", None)
    if frontend is None or not hasattr(frontend, "blocks"):
        raise ExportError(
            f"model {cfg['name']!r} has no spiking front-end; NIR export needs a spiking model (mambaspike)"
        )
    shape = input_shape
    if blocks is not None and blocks[0] > 0:
        with torch.no_grad():  # the input shape of the first exported block
            x = torch.zeros(1, 1, *input_shape)
            for b in frontend.blocks[: blocks[0]]:
                x, _ = b(x)
        shape = tuple(x.shape[2:])
    graph, notes = frontend_to_nir(frontend, shape, input_dt_s=input_dt_s, blocks=blocks)
    out.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(out), graph)
    lifs = [k for k, v in graph.nodes.items() if isinstance(v, nir.LIF)]
    log(
        f"wrote {out}: NIR graph of the spiking front-end, blocks {graph.metadata['blocks'][0]}.."
        f"{graph.metadata['blocks'][1] - 1}, {len(graph.nodes)} nodes ({len(lifs)} LIF), input {list(shape)}"
    )
    for note in notes:
        log(f"not exported: {note}")
    return {"path": str(out), "nodes": list(graph.nodes), "notes": notes}
