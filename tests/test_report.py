"""Pieces of the eval report: streaming latency (only where a model streams), the paper side-by-side."""

import torch
from torch import nn

from mambaspike.evaluation.paper import PAPER, paper_rows
from mambaspike.evaluation.report import paper_comparison, streaming_latency


class Streams(nn.Module):
    def forward(self, x):
        return x.sum(0)

    def stream(self, x, state=None):  # one bin [1, B, ...]
        state = x[0] if state is None else state + x[0]
        return state, state


def test_streaming_latency_only_where_the_model_streams():
    x = torch.ones(5, 1, 3)
    got = streaming_latency(Streams(), x, repeats=1)
    assert got["streaming_latency_ms_per_bin"] > 0
    none = streaming_latency(nn.Identity(), x)
    assert none["streaming_latency_ms_per_bin"] is None and "no stream API" in none["streaming_note"]


def _metrics(dataset, model="mambaspike"):
    return {
        "dataset": dataset,
        "model": model,
        "test_accuracy": 0.9,
        "spikes_per_sample": 100.0,
        "latency_ms_per_sample": 5.0,
        "selected_epoch": 3,
        "epochs_trained": 4,
        "best_val_accuracy_during_training": 0.91,
        "n_test": 50,
    }


def test_paper_comparison_labels_analogues_and_unknown_data_sets():
    pc = paper_comparison(_metrics("ndigits"))
    assert pc["paper_dataset"] == "TIDIGITS" and not pc["same_data"] and "different data" in pc["note"]
    ours = next(r for r in pc["rows"] if r["model"] == "mambaspike")
    assert ours["paper_accuracy_pct"] == 99.2 and ours["ours_accuracy_pct"] == 90.0
    assert "epoch 3 of 4" in pc["selection"] and "validation" in pc["selection"]
    lstm = paper_comparison(_metrics("ndigits", "lstm"))  # no LSTM figure on TIDIGITS: our row is appended
    assert lstm["rows"][-1]["model"] == "lstm" and lstm["rows"][-1]["ours_accuracy_pct"] == 90.0
    unknown = paper_comparison(_metrics("speech"))
    assert unknown["paper_dataset"] is None and unknown["rows"] == [] and "no figures" in unknown["note"]
    assert paper_rows("dvsgesture")[2] is PAPER["DVS Gesture"]
    assert PAPER["DVS Gesture"]["mambaspike"]["spikes_per_sample"] == 785
