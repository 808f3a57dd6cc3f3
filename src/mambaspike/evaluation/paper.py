"""The figures reported by Mamba-Spike (Qin & Liu, arXiv 2408.11823), Tables 1 and 2, as printed.

Keys are the paper's data sets; ``ANALOGUE`` maps our data sets to the paper's nearest one (never
the same data: the comparison is labelled so). Accuracies in %, latency in ms, spikes per sample.
"""

from __future__ import annotations

SOURCE = "Qin & Liu, Mamba-Spike, arXiv 2408.11823, Table 1 (and Table 2 for the front-end ablation)"

# data set -> model -> {metric: value}; only the figures the paper prints ("-" cells are left out)
PAPER: dict[str, dict[str, dict[str, float]]] = {
    "DVS Gesture": {
        "SLAYER": {"accuracy_pct": 93.6, "spikes_per_sample": 1245},
        "DECOLLE": {"accuracy_pct": 95.2, "spikes_per_sample": 987},
        "Spiking-YOLO": {"accuracy_pct": 96.1, "spikes_per_sample": 1132},
        "mamba": {"accuracy_pct": 96.8},
        "mambaspike": {"accuracy_pct": 97.8, "spikes_per_sample": 785},
    },
    "TIDIGITS": {
        "SLAYER": {"accuracy_pct": 97.5},
        "DECOLLE": {"accuracy_pct": 98.3},
        "mamba": {"accuracy_pct": 98.7},
        "mambaspike": {"accuracy_pct": 99.2},
    },
    "Sequential MNIST": {
        "mamba": {"accuracy_pct": 99.3, "latency_ms": 18},
        "lstm": {"accuracy_pct": 98.9, "latency_ms": 25},
        "gru": {"accuracy_pct": 99.1, "latency_ms": 22},
        "mambaspike": {"accuracy_pct": 99.4, "latency_ms": 15},
    },
    "CIFAR10-DVS": {
        "SLAYER": {"accuracy_pct": 87.3},
        "DECOLLE": {"accuracy_pct": 89.6},
        "Spiking-YOLO": {"accuracy_pct": 91.2},
        "mamba": {"accuracy_pct": 91.8},
        "mambaspike": {"accuracy_pct": 92.5},
    },
}

# our data-set names (mambaspike.data registry) -> (the paper's data set, same data?)
ANALOGUE: dict[str, tuple[str, bool]] = {
    "dvsgesture": ("DVS Gesture", True),
    "dvs_gesture": ("DVS Gesture", True),
    "tidigits": ("TIDIGITS", True),
    "smnist": ("Sequential MNIST", True),
    "sequential_mnist": ("Sequential MNIST", True),
    "cifar10dvs": ("CIFAR10-DVS", True),
    "cifar10_dvs": ("CIFAR10-DVS", True),
    "ndigits": ("TIDIGITS", False),  # synthetic event digits: the paper's digit task is the nearest
    "nmnist": ("Sequential MNIST", False),  # MNIST digits as events; the paper used sequential MNIST
}


def paper_rows(dataset: str) -> tuple[str | None, bool, dict[str, dict[str, float]]]:
    """``(paper data set, same data?, {model: figures})`` for one of our data sets; ``(None, False, {})``
    when the paper has no comparable data set."""
    name, same = ANALOGUE.get(dataset.lower(), (None, False))
    return name, same, PAPER.get(name, {}) if name else {}


__all__ = ["PAPER", "ANALOGUE", "SOURCE", "paper_rows"]
