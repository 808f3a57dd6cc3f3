"""Model configurations: one typed, validated config per family, and ``ModelConfig``, the flat record.

The typed configs are what a model is built from (each validated when built, see
:mod:`mambaspike.models.options`):

- :class:`MambaSpikeConfig` (``mambaspike``): :class:`FrontEndConfig` -> :class:`InterfaceConfig` ->
  :class:`BackboneConfig`.
- :class:`MambaBaselineConfig` (``mamba``): :class:`StemConfig` -> window means -> :class:`BackboneConfig`.
- :class:`RNNBaselineConfig` (``lstm``, ``gru``): :class:`StemConfig` -> window means -> LSTM / GRU.
- :class:`SpikingMambaConfig` (``spiking-mamba``, ``spiking-hybrid``): Miao's spiking patch generator
  and blocks.

:class:`ModelConfig` is one flat record of every family's options by name: what run directories
(``run.json``), checkpoints, recipes (``model_overrides``) and the registry store. It validates its
fields with the same checks as the typed configs, and :meth:`ModelConfig.family_config` gives the typed
config of its family (:meth:`ModelConfig.from_family` the way back).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from mambaspike.errors import ConfigError
from mambaspike.layers.blocks import CURRENT_NORMS, READOUTS
from mambaspike.layers.input_norm import INPUT_NORMS
from mambaspike.layers.pooling import READOUT_POOLS, TEMPORAL_POOL_MODES
from mambaspike.models.options import Accepts, Checked, accepts_of, nested, option
from mambaspike.neurons.modules import NEURONS
from mambaspike.neurons.surrogate import SURROGATES
from mambaspike.ssm.mamba import MambaConfig
from mambaspike.ssm.scan import BACKENDS as SCAN_BACKENDS
from mambaspike.ssm.spiking_scan import SPIKING_SCAN_BACKENDS

POSITIVE = Accepts("int", low=1)
NON_NEGATIVE = Accepts("int", low=0)
POSITIVE_MS = Accepts("float", low=0, low_open=True, meaning="(ms)")
FLAG = Accepts("bool")
SHAPE = Accepts("shape")
ENCODINGS = ("rate", "latency", "direct")
SPIKE_LOSSES = ("rate", "count")
SHORTCUTS = ("sew", "membrane")
RNN_KINDS = ("lstm", "gru")
FAMILY_PATTERNS = {"spiking-mamba": "MM", "spiking-hybrid": "MT"}


def required(accepts: Accepts):
    """A validated option without a default."""
    return field(metadata={"accepts": accepts})


# ---- parts ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrontEndConfig(Checked):
    """The spiking front-end (Mamba-Spike §3.1): one spiking conv (or dense) block per ``channels``
    entry, the last one recurrent, temporal max/avg pooling over ``temporal_pool`` bins after the first,
    spatial pooling to ``spatial_out x spatial_out``: ``readout_pool = "max"`` keeps binary spikes (a
    spike where any neuron of the region spiked, the paper), ``"avg"`` hands the interface the region's
    spike count per neuron (the interface counts spikes anyway). ``neuron``: a name in
    ``mambaspike.neurons.NEURONS``; the default ``"alif"`` raises each neuron's threshold with its own
    recent spikes (the paper's adaptive thresholds), ``"lif"`` is the paper's plain PLIF.
    ``input_norm = "running"`` divides the input by the sample's event rate so far (it undoes the
    rescaling of dropped events to first order; causal, so streaming is exact). ``current_norm``: the
    first block's normalisation of its input current, ``"batch"`` (BatchNorm, the paper's),
    ``"sample"`` (each sample's current per bin and channel over space) or ``"running"`` (per channel
    over space and the sample's bins so far): with either of the last two a uniform rescaling of the
    event counts leaves the spikes unchanged (see :mod:`mambaspike.layers.blocks`).
    ``temporal_pool_after`` is the block the temporal pooling follows (0, the first, by default; later
    places keep the earlier blocks at the input's bin, at their cost in compute).
    ``spike_dropout`` (training only) zeroes each block's output spikes with that probability (inverted
    dropout: the identity in eval mode).
    ``readout = "membrane"`` makes the last block's neurons non-spiking leaky integrators whose membrane
    potential (pooled in space by ``readout_pool``) the interface receives; the blocks before it spike, and
    the recurrent connection moves to the last of them (``"spikes"``, the default: every block spikes).
    The neurons' spike mechanics: ``soft_reset`` subtracts the threshold after a spike instead of
    resetting the membrane to 0 (an ``srm`` neuron has no reset to make soft: its refractory kernel is
    one); ``detach_reset`` stops the gradient through the reset; ``learn_threshold`` makes each
    block's ``v_threshold`` a parameter; ``surrogate`` (a name in ``mambaspike.neurons.SURROGATES``) is
    the spike's derivative in the backward pass and ``surrogate_alpha`` its sharpness (``None``: the
    surrogate's own default, 2 for ``atan``; larger is narrower)."""

    channels: tuple[int, ...] = option((16, 32, 64), Accepts("ints", low=1))
    neuron: str = option("alif", Accepts("choice", choices=tuple(NEURONS)))
    tau_ms: float = option(30.0, POSITIVE_MS)
    v_threshold: float = option(1.0, Accepts("float", low=0, low_open=True))
    learn_threshold: bool = option(False, FLAG)
    soft_reset: bool = option(False, FLAG)
    detach_reset: bool = option(False, FLAG)
    surrogate: str = option("atan", Accepts("choice", choices=tuple(SURROGATES)))
    surrogate_alpha: float | None = option(
        None, Accepts("float", low=0, low_open=True, optional=True, meaning="(None: the surrogate's default)")
    )
    learn_tau: bool = option(True, FLAG)
    recurrent: bool = option(True, FLAG)
    temporal_pool: int = option(2, POSITIVE)
    temporal_pool_mode: str = option("max", Accepts("choice", choices=TEMPORAL_POOL_MODES))
    spatial_out: int = option(4, POSITIVE)
    readout_pool: str = option("avg", Accepts("choice", choices=READOUT_POOLS))
    input_norm: str = option("none", Accepts("choice", choices=INPUT_NORMS))
    current_norm: str = option("batch", Accepts("choice", choices=CURRENT_NORMS))
    readout: str = option("spikes", Accepts("choice", choices=READOUTS))
    temporal_pool_after: int = option(0, NON_NEGATIVE)
    spike_dropout: float = option(0.0, Accepts("float", low=0, high=0.95))

    def check_together(self) -> None:
        if self.temporal_pool_after >= len(self.channels):
            raise ConfigError(
                f"{type(self).__name__}.temporal_pool_after = {self.temporal_pool_after}: expected the index of a "
                f"block, 0..{len(self.channels) - 1} (channels = {list(self.channels)})"
            )
        if self.readout == "membrane" and len(self.channels) < 2:
            raise ConfigError(
                f"{type(self).__name__}.readout = 'membrane' makes the last block a non-spiking integrator, so "
                f"the front-end needs at least two blocks: expected two or more channels, got {list(self.channels)}"
            )
        if self.neuron == "srm" and self.soft_reset:
            raise ConfigError(
                f"{type(self).__name__}.soft_reset = true: an 'srm' neuron has no reset to make soft (its "
                "refractory kernel takes the reset's place); expected false, or another neuron"
            )


@dataclass(frozen=True)
class StemConfig(Checked):
    """The baselines' non-spiking stem: the front-end's convolutions and pooling with ReLU (temporal
    average-pooling over ``temporal_pool`` bins, spatial pooling to ``spatial_out x spatial_out``)."""

    channels: tuple[int, ...] = option((16, 32, 64), Accepts("ints", low=1))
    temporal_pool: int = option(2, POSITIVE)
    spatial_out: int = option(4, POSITIVE)


@dataclass(frozen=True)
class InterfaceConfig(Checked):
    """The spike interface (Mamba-Spike §3.2): spike counts over ``window`` bins, as firing rates, or
    with ``rate_norm`` (the paper's) divided by each feature's mean firing rate, floored at
    ``rate_floor`` (spikes per bin): a feature that rarely fires is amplified up to ``1 / rate_floor``
    times when it does, which is how background events that wake silent features reach the backbone
    magnified (off by default)."""

    window: int = option(2, POSITIVE)
    rate_norm: bool = option(False, FLAG)
    rate_floor: float = option(0.01, Accepts("float", low=0, low_open=True, meaning="(spikes per bin)"))


@dataclass(frozen=True)
class BackboneConfig(Checked):
    """The Mamba backbone: ``n_layers`` pre-norm residual Mamba blocks of width ``d_model``."""

    d_model: int = option(128, POSITIVE)
    n_layers: int = option(2, POSITIVE)
    d_state: int = option(16, POSITIVE)
    d_conv: int = option(4, POSITIVE)
    expand: int = option(2, POSITIVE)
    scan_backend: str = option("auto", Accepts("choice", choices=SCAN_BACKENDS))

    def mamba_config(self) -> MambaConfig:
        return MambaConfig(
            d_model=self.d_model,
            n_layers=self.n_layers,
            d_state=self.d_state,
            d_conv=self.d_conv,
            expand=self.expand,
            scan_backend=self.scan_backend,
        )


# ---- families ---------------------------------------------------------------------------------------


class _Input:
    @property
    def spatial(self) -> bool:
        """True for frames ``(C, H, W)``, False for 1-D input ``(F,)`` per bin."""
        return len(self.input_shape) == 3


@dataclass(frozen=True)
class MambaSpikeConfig(_Input, Checked):
    """Mamba-Spike: ``frames [T, B, *input_shape]`` in bins of ``dt_ms`` -> logits ``[B, num_classes]``.

    ``input_shape``: ``(C, H, W)`` of one bin, or ``(F,)`` features per bin (dense front-end blocks).
    """

    input_shape: tuple[int, ...] = required(SHAPE)
    num_classes: int = required(POSITIVE)
    dt_ms: float = required(Accepts("float", low=0, low_open=True, meaning="(ms, the width of one input bin)"))
    frontend: FrontEndConfig = nested(FrontEndConfig)
    interface: InterfaceConfig = nested(InterfaceConfig)
    backbone: BackboneConfig = nested(BackboneConfig)


@dataclass(frozen=True)
class MambaBaselineConfig(_Input, Checked):
    """The ``mamba`` baseline: the non-spiking stem, window means over ``window`` bins, the Mamba backbone."""

    input_shape: tuple[int, ...] = required(SHAPE)
    num_classes: int = required(POSITIVE)
    dt_ms: float = required(Accepts("float", low=0, low_open=True, meaning="(ms, the width of one input bin)"))
    stem: StemConfig = nested(StemConfig)
    window: int = option(2, POSITIVE)
    backbone: BackboneConfig = nested(BackboneConfig)


@dataclass(frozen=True)
class RNNBaselineConfig(_Input, Checked):
    """The ``lstm`` / ``gru`` baselines: the non-spiking stem, window means, a ``backbone.n_layers``-layer
    LSTM or GRU on ``backbone.d_model`` inputs. ``hidden=None`` takes the hidden size whose parameter
    count matches the Mamba ``backbone``'s."""

    input_shape: tuple[int, ...] = required(SHAPE)
    num_classes: int = required(POSITIVE)
    dt_ms: float = required(Accepts("float", low=0, low_open=True, meaning="(ms, the width of one input bin)"))
    kind: str = option("gru", Accepts("choice", choices=RNN_KINDS))
    stem: StemConfig = nested(StemConfig)
    window: int = option(2, POSITIVE)
    backbone: BackboneConfig = nested(BackboneConfig)
    hidden: int | None = option(None, Accepts("int", low=1, optional=True, meaning="(None: parameter-matched)"))


@dataclass(frozen=True)
class SpikingMambaConfig(Checked):
    """Spiking Mamba / Transformer (Miao §4): ``x [T, B, C, H, W]`` -> spike counts ``[B, num_classes]``.

    ``pattern``: the blocks in order, ``"M"`` spiking Mamba, ``"T"`` spiking self-attention (``"MT"`` is
    the hybrid). Static images (``T = 1``) are encoded over ``time_steps`` steps by ``input_encoding``.
    ``spike_loss``: ``"rate"`` (cross-entropy per step, summed; the paper's default) or ``"count"``.
    """

    input_shape: tuple[int, ...] = required(Accepts("shape", ndims=(3,)))
    num_classes: int = required(POSITIVE)
    pattern: str = option("MM", Accepts("pattern", choices=("M", "T")))
    embed_dim: int = option(64, POSITIVE)
    d_state: int = option(16, POSITIVE)
    expand: int = option(2, POSITIVE)
    time_steps: int = option(4, POSITIVE)
    input_encoding: str = option("rate", Accepts("choice", choices=ENCODINGS))
    patch_blocks: int = option(2, POSITIVE)
    patch_channels: int | None = option(
        None, Accepts("int", low=1, optional=True, meaning="(None: embed_dim / 2^(patch_blocks - 1))")
    )
    patch_rpe: bool = option(True, FLAG)
    conv_layers: int = option(1, NON_NEGATIVE)
    mlp_layers: int = option(1, NON_NEGATIVE)
    shortcut: str = option("sew", Accepts("choice", choices=SHORTCUTS))
    attn_heads: int = option(8, POSITIVE)
    spike_loss: str = option("rate", Accepts("choice", choices=SPIKE_LOSSES))
    scan_backend: str = option("parallel", Accepts("choice", choices=SPIKING_SCAN_BACKENDS))

    def check_together(self) -> None:
        if "T" in self.pattern and self.embed_dim % self.attn_heads:
            raise ConfigError(
                f"{type(self).__name__}.embed_dim = {self.embed_dim}: expected a multiple of attn_heads = "
                f"{self.attn_heads} (pattern {self.pattern!r} has attention blocks)"
            )


# ---- the flat record --------------------------------------------------------------------------------

_IN = {"input_shape": "input_shape", "num_classes": "num_classes", "dt_ms": "dt_ms"}
_BACKBONE = {k: f"backbone.{k}" for k in ("d_model", "n_layers", "d_state", "d_conv", "expand", "scan_backend")}
_STEM = {k: f"stem.{k}" for k in ("channels", "temporal_pool", "spatial_out")} | {"window": "window", **_BACKBONE}
_FRONT = ("channels", "neuron", "tau_ms", "v_threshold", "learn_tau", "recurrent", "temporal_pool")
_FRONT += ("learn_threshold", "soft_reset", "detach_reset", "surrogate", "surrogate_alpha")
_FRONT += ("temporal_pool_mode", "spatial_out", "readout_pool", "input_norm", "current_norm", "readout")
_FRONT += ("temporal_pool_after", "spike_dropout")
_SPIKING = ("pattern", "embed_dim", "d_state", "expand", "time_steps", "input_encoding", "patch_blocks")
_SPIKING += ("patch_channels", "patch_rpe", "conv_layers", "mlp_layers", "shortcut", "attn_heads", "spike_loss")

# family -> (typed config, ModelConfig field -> option path in it)
FAMILIES: dict[str, tuple[type, dict[str, str]]] = {
    "mambaspike": (
        MambaSpikeConfig,
        {
            **_IN,
            **{k: f"frontend.{k}" for k in _FRONT},
            "window": "interface.window",
            "rate_norm": "interface.rate_norm",
            "rate_floor": "interface.rate_floor",
            **_BACKBONE,
        },
    ),
    "mamba": (MambaBaselineConfig, {**_IN, **_STEM}),
    "lstm": (RNNBaselineConfig, {**_IN, **_STEM, "rnn_hidden": "hidden"}),
    "gru": (RNNBaselineConfig, {**_IN, **_STEM, "rnn_hidden": "hidden"}),
    "spiking-mamba": (
        SpikingMambaConfig,
        {
            "input_shape": "input_shape",
            "num_classes": "num_classes",
            **{k: k for k in _SPIKING},
            "spiking_scan_backend": "scan_backend",
        },
    ),
}
FAMILIES["spiking-hybrid"] = FAMILIES["spiking-mamba"]

# The front-end exactly as Mamba-Spike's paper builds it (LIF neurons, binary max-pooled spikes into the
# interface, no input normalisation, rates normalised per feature): the named variant "mambaspike-paper",
# kept in every comparison.
PAPER_FRONTEND: dict = {
    "neuron": "lif",
    "readout": "spikes",
    "readout_pool": "max",
    "input_norm": "none",
    "current_norm": "batch",
    "rate_norm": True,
    "rate_floor": 0.01,
}
# Fields added after the first records were written, with the value those records were trained with
# (a record without the field gets it, not today's default).
RECORDED_BEFORE: dict = {
    "readout_pool": "max",
    "input_norm": "none",
    "rate_floor": 0.01,
    "current_norm": "batch",
    "learn_threshold": False,
    "soft_reset": False,
    "detach_reset": False,
    "surrogate": "atan",
    "surrogate_alpha": None,
    "readout": "spikes",
    "temporal_pool_after": 0,
    "spike_dropout": 0.0,
}
# The default front-end of the release before adaptive thresholds (LIF neurons, the average readout, rates
# normalised per feature in the interface): the named variant "mambaspike-lif", the ablation's middle row.
LIF_FRONTEND: dict = {"neuron": "lif", "rate_norm": True, "rate_floor": 0.01, "current_norm": "batch"}
# Named model variants: name -> (family, ModelConfig overrides on top of the family's defaults).
# The most accurate front-end of the readout search (benchmarks/results/frontend_search/readout_pooling_dropout):
# the last block's neurons integrate without spiking and the interface reads their potential, max-pooled in
# space -- more accurate than the default on the event data sets, less robust under its augmentation.
MEMBRANE_FRONTEND: dict = {"readout": "membrane", "readout_pool": "max"}
VARIANTS: dict[str, tuple[str, dict]] = {
    "mambaspike-paper": ("mambaspike", PAPER_FRONTEND),
    "mambaspike-lif": ("mambaspike", LIF_FRONTEND),
    "mambaspike-membrane": ("mambaspike", MEMBRANE_FRONTEND),
}


def _set_path(tree: dict, path: str, value) -> None:
    *parents, leaf = path.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def _get_path(cfg, path: str):
    for p in path.split("."):
        cfg = getattr(cfg, p)
    return cfg


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model of any registered family, flat (saved with checkpoints).

    Every field is validated when the record is built (the typed configs' checks), and so are the
    constraints of the family ``name``; fields another family uses are checked and kept, not used.
    """

    name: str = "mambaspike"
    input_shape: tuple = (2, 34, 34)  # (C, H, W) of one time bin, or (F,) features per bin
    num_classes: int = 10
    dt_ms: float = 5.0  # bin width of the input frames
    # front-end / stem
    channels: tuple = (16, 32, 64)
    neuron: str = "alif"  # a name in mambaspike.neurons.NEURONS
    tau_ms: float = 30.0
    v_threshold: float = 1.0
    learn_threshold: bool = False  # each block's v_threshold a parameter
    soft_reset: bool = False  # subtract the threshold after a spike (False: reset to 0)
    detach_reset: bool = False  # no gradient through the reset
    surrogate: str = "atan"  # the spike's backward derivative: a name in mambaspike.neurons.SURROGATES
    surrogate_alpha: float | None = None  # its sharpness (None: the surrogate's default)
    learn_tau: bool = True
    recurrent: bool = True
    temporal_pool: int = 2
    temporal_pool_mode: str = "max"
    spatial_out: int = 4
    readout_pool: str = "avg"  # the front-end's last spatial pooling: avg (counts) | max (binary, the paper)
    input_norm: str = "none"  # none | running: input divided by the sample's event rate so far
    current_norm: str = "batch"  # the first block's current norm: batch | sample (per bin) | running (bins so far)
    readout: str = "spikes"  # what the last block hands on: spikes | membrane (non-spiking leaky integrators)
    temporal_pool_after: int = 0  # the front-end block the temporal pooling follows
    spike_dropout: float = 0.0  # training only: each front-end block's output spikes dropped with this probability
    # interface
    window: int = 2
    rate_norm: bool = False
    rate_floor: float = 0.01  # the interface's floor on a feature's mean firing rate (spikes per bin)
    # backbone
    d_model: int = 128
    n_layers: int = 2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    scan_backend: str = "auto"  # see mambaspike.ssm.scan.BACKENDS
    # recurrent baselines (None: matched to the Mamba backbone's parameter count)
    rnn_hidden: int | None = None
    # Spiking Mamba / Transformer (models "spiking-mamba", "spiking-hybrid"; Miao §4). Shares
    # d_state (state size N) and expand (E = expand * D) with the Mamba backbone above.
    pattern: str | None = None  # blocks in order, "M" Mamba / "T" attention; None: "MM" / "MT" by family
    embed_dim: int = 64  # D, the token embedding size
    time_steps: int = 4  # T over which static images (T = 1 input) are encoded
    input_encoding: str = "rate"  # static images: rate | latency | direct (paper's default: rate)
    patch_blocks: int = 2
    patch_channels: int | None = None  # first patch block's channels (Table 1/2 "channels"); None: D / 2^(blocks-1)
    patch_rpe: bool = True  # Spikformer-style position-embedding conv after the patch generator
    conv_layers: int = 1
    mlp_layers: int = 1
    shortcut: str = "sew"  # sew | membrane
    attn_heads: int = 8
    spike_loss: str = "rate"  # rate (CE per step, summed) | count (CE on spike counts)
    spiking_scan_backend: str = "parallel"  # parallel | reference

    def __post_init__(self):
        for f in fields(self):
            setattr(self, f.name, self.accepts(f.name).check("ModelConfig", f.name, getattr(self, f.name)))
        try:
            self.family_config()
        except ConfigError as e:
            raise ConfigError(f"ModelConfig(name={self.name!r}): {e}") from None

    @staticmethod
    def accepts(name: str) -> Accepts:
        """What field ``name`` accepts (``KeyError`` for a name that is no field)."""
        return _FLAT_ACCEPTS[name]

    def family_config(self):
        """The typed config of this record's family (e.g. a :class:`MambaSpikeConfig`), validated."""
        cls, paths = FAMILIES[self.name]
        tree: dict = {}
        for flat, path in paths.items():
            _set_path(tree, path, getattr(self, flat))
        if cls is RNNBaselineConfig:
            tree["kind"] = self.name
        if cls is SpikingMambaConfig and tree["pattern"] is None:
            tree["pattern"] = FAMILY_PATTERNS[self.name]
        return cls(**tree)

    @classmethod
    def from_family(cls, cfg) -> ModelConfig:
        """The flat record of a typed config (the family's fields set; the others at their defaults)."""
        if isinstance(cfg, RNNBaselineConfig):
            name = cfg.kind
        elif isinstance(cfg, SpikingMambaConfig):
            name = "spiking-hybrid" if "T" in cfg.pattern else "spiking-mamba"
        else:
            name = next((n for n, (c, _) in FAMILIES.items() if isinstance(cfg, c)), None)
            if name is None:
                raise ConfigError(f"ModelConfig.from_family: {type(cfg).__name__} is not a model family's config")
        return cls(name=name, **{flat: _get_path(cfg, path) for flat, path in FAMILIES[name][1].items()})

    @property
    def spatial(self) -> bool:
        """True for frames ``(C, H, W)``, False for 1-D input ``(F,)``."""
        return len(self.input_shape) == 3

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """The record of ``to_dict`` (or of a ``run.json``'s ``"model"``); the key ``extra`` that the
        first release wrote is dropped, any other unknown key is an error."""
        d = {k: v for k, v in d.items() if k != "extra"}
        for key, value in RECORDED_BEFORE.items():  # records written before the field existed
            d.setdefault(key, value)
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ConfigError(
                f"ModelConfig: unknown field(s) {', '.join(map(str, unknown))}; accepted: {', '.join(names)}"
            )
        return cls(**d)


def _flat_accepts() -> dict[str, Accepts]:
    """What each ModelConfig field accepts: the check of the first family that has the field."""
    out = {
        "name": Accepts("choice", choices=tuple(FAMILIES)),
        "pattern": Accepts("pattern", choices=("M", "T"), optional=True, meaning="(None: the family's default)"),
    }
    for fam_cls, paths in FAMILIES.values():
        for flat, path in paths.items():
            out.setdefault(flat, accepts_of(fam_cls, path))
    missing = {f.name for f in fields(ModelConfig)} - set(out)
    assert not missing, f"ModelConfig fields of no family: {missing}"
    return out


_FLAT_ACCEPTS = _flat_accepts()


def as_family_config(cfg, cls, families: tuple[str, ...]):
    """``cfg`` as a ``cls`` config: a ``cls`` as is, a :class:`ModelConfig` of one of ``families`` through
    :meth:`ModelConfig.family_config`; anything else is a ``ConfigError``."""
    if isinstance(cfg, ModelConfig):
        if cfg.name not in families:
            raise ConfigError(f"ModelConfig(name={cfg.name!r}) is not a {cls.__name__} ({', '.join(families)})")
        cfg = cfg.family_config()
    if not isinstance(cfg, cls):
        raise ConfigError(
            f"expected a {cls.__name__} (or a ModelConfig of {', '.join(families)}), got {type(cfg).__name__}"
        )
    return cfg


__all__ = [
    "PAPER_FRONTEND",
    "VARIANTS",
    "BackboneConfig",
    "FAMILIES",
    "FrontEndConfig",
    "InterfaceConfig",
    "MambaBaselineConfig",
    "MambaSpikeConfig",
    "ModelConfig",
    "RNNBaselineConfig",
    "SpikingMambaConfig",
    "StemConfig",
    "as_family_config",
]
