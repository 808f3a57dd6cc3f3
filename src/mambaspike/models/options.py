"""What a configuration option accepts, and the checks that hold a config dataclass to it.

An option is a dataclass field made with :func:`option`; a config class that derives from
:class:`Checked` validates every option when it is built and raises one ``ConfigError`` that names the
field, the value and what the field accepts::

    FrontEndConfig.temporal_pool_mode = 'mean': expected one of 'max', 'avg'

Lists given for tuple options (YAML, JSON) become tuples, integers given for float options floats, and
mappings given for a nested config (``frontend={"channels": [8, 16]}``) that config.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass

from mambaspike.errors import ConfigError


@dataclass(frozen=True)
class Accepts:
    """The values one option accepts.

    ``kind``: ``"int"``, ``"float"``, ``"bool"``, ``"choice"`` (one of ``choices``), ``"ints"`` (a
    non-empty tuple of integers, each in the range), ``"shape"`` (``(C, H, W)`` or ``(F,)`` of integers
    >= 1; ``ndims`` narrows the lengths) or ``"pattern"`` (a non-empty string over ``choices``'
    letters). ``low``/``high`` bound numbers (``low_open``: ``> low`` rather than ``>= low``);
    ``optional``: ``None`` is accepted too.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple = ()
    optional: bool = False
    ndims: tuple[int, ...] = (3, 1)
    meaning: str = ""  # appended to the description, e.g. "(None: matched to the backbone)"

    def describe(self) -> str:
        """What the option accepts, in words (``"an integer >= 1"``, ``"one of 'max', 'avg'"``)."""
        rng = self._range()
        if self.kind == "int":
            text = f"an integer{rng}"
        elif self.kind == "float":
            text = f"a finite number{rng}"
        elif self.kind == "bool":
            text = "true or false"
        elif self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "ints":
            text = f"a non-empty list of integers{rng}"
        elif self.kind == "shape":
            text = " or ".join({3: "(C, H, W)", 1: "(F,)"}[n] for n in self.ndims) + " of integers >= 1"
        elif self.kind == "pattern":
            text = "a non-empty string of " + ", ".join(repr(c) for c in self.choices)
        else:
            raise AssertionError(self.kind)
        if self.optional:
            text += " or None"
        return f"{text} {self.meaning}" if self.meaning else text

    def _range(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"<= {self.high:g}")
        return (" " + " and ".join(parts)) if parts else ""

    def _in_range(self, v) -> bool:
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or v <= self.high

    def normalise(self, value):
        """``value`` in its canonical form (tuple, float), or ``MISSING`` when it is not accepted."""
        if value is None:
            return None if self.optional else MISSING
        if self.kind == "int":
            return int(value) if _is_int(value) and self._in_range(value) else MISSING
        if self.kind == "float":
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            return float(value) if ok and self._in_range(value) else MISSING
        if self.kind == "bool":
            return value if isinstance(value, bool) else MISSING
        if self.kind == "choice":
            return value if isinstance(value, str) and value in self.choices else MISSING
        if self.kind in ("ints", "shape"):
            if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or not value:
                return MISSING
            if not all(_is_int(v) and (self._in_range(v) if self.kind == "ints" else v >= 1) for v in value):
                return MISSING
            if self.kind == "shape" and len(value) not in self.ndims:
                return MISSING
            return tuple(int(v) for v in value)
        if self.kind == "pattern":
            return value if isinstance(value, str) and value and not set(value) - set(self.choices) else MISSING
        raise AssertionError(self.kind)

    def check(self, owner: str, name: str, value):
        """``value`` normalised, or one ``ConfigError`` naming ``owner.name``, the value and what is accepted."""
        out = self.normalise(value)
        if out is MISSING:
            raise ConfigError(f"{owner}.{name} = {value!r}: expected {self.describe()}")
        return out


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def option(default, accepts: Accepts):
    """A dataclass field holding one validated option (tuples and None are fine defaults)."""
    return field(default=default, metadata={"accepts": accepts})


def nested(config_cls):
    """A dataclass field holding a nested config of ``config_cls`` (a mapping given is converted)."""
    return field(default_factory=config_cls, metadata={"config": config_cls})


def accepts_of(config_cls, name: str) -> Accepts:
    """The :class:`Accepts` of option ``name`` (dotted for nested configs: ``"frontend.channels"``)."""
    head, _, rest = name.partition(".")
    f = {f.name: f for f in fields(config_cls)}[head]
    return accepts_of(f.metadata["config"], rest) if rest else f.metadata["accepts"]


def from_mapping(config_cls, values: Mapping, owner: str | None = None):
    """``config_cls(**values)``, with an unknown key reported as one ``ConfigError``."""
    names = [f.name for f in fields(config_cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"{owner or config_cls.__name__}: unknown option(s) {', '.join(map(str, unknown))}; "
            f"accepted: {', '.join(names)}"
        )
    return config_cls(**values)


class Checked:
    """Mixin of a (frozen) config dataclass: checks every :func:`option` and :func:`nested` field in
    ``__post_init__``, then :meth:`check_together` (constraints between fields)."""

    def __post_init__(self):
        owner = type(self).__name__
        for f in fields(self):
            value = getattr(self, f.name)
            sub = f.metadata.get("config")
            if sub is not None:
                if isinstance(value, Mapping):
                    value = from_mapping(sub, value, f"{owner}.{f.name}")
                elif not isinstance(value, sub):
                    raise ConfigError(
                        f"{owner}.{f.name} = {value!r}: expected a {sub.__name__} (or a mapping of its options)"
                    )
            elif "accepts" in f.metadata:
                value = f.metadata["accepts"].check(owner, f.name, value)
            object.__setattr__(self, f.name, value)
        self.check_together()

    def check_together(self) -> None:
        """Constraints between fields; raise ``ConfigError`` naming them."""

    def to_dict(self) -> dict:
        """Plain values (nested configs as dicts), so ``type(cfg)(**...)`` rebuilds it."""
        return {f.name: (v.to_dict() if is_dataclass(v := getattr(self, f.name)) else v) for f in fields(self)}


__all__ = ["Accepts", "Checked", "accepts_of", "from_mapping", "nested", "option"]
