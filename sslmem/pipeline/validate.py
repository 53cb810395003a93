"""Checking what a user hands over: one spec per config field, and command-line option types.

Why: a value of the wrong type or range must stop where it enters (``Config(...)``, ``--set``,
a papermill parameter, a params file) with one line naming the field, the value and what is
allowed — not as a ``TypeError`` in the training loop an epoch later, with a run folder left
behind. So every field has a spec in ``sslmem.pipeline.config.FIELDS`` and ``Config.__post_init__``
runs
them all; a spec also normalizes (``lr=1`` becomes ``1.0``, ``seeds=[0, 1]`` becomes ``(0, 1)``)
so that equal settings give equal cache keys.

A spec is called as ``spec(name, value) -> value`` and raises :class:`SSLMemError`.
"""

from __future__ import annotations

import argparse
import importlib
import math
import numbers
import os
import re
import sys
from dataclasses import dataclass

from sslmem.errors import SSLMemError, unknown_choice


def _none(note: str | bool) -> str:
    return "" if not note else " or None" if note is True else f" ({note})"


def _hint(value) -> str:
    """Why a string that looks like a number was refused (YAML 1.1 reads 1e-3 as a string)."""
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return ""
        return " (a string: write a number, in YAML e.g. 1.0e-3)"
    return ""


def _refuse(name: str, what: str, value, none) -> SSLMemError:
    return SSLMemError(f"{name} must be {what}{_none(none)}, got {value!r}{_hint(value)}")


def _integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, _np_bool()))


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, _np_bool()))


def _np_bool():
    np = sys.modules.get("numpy")
    return np.bool_ if np is not None else bool


@dataclass(frozen=True)
class Int:
    """An int (not a bool, not a float) in [low, high]."""

    low: int | None = None
    high: int | None = None
    none: str | bool = False  # None allowed (True, or a note "None = what it means")

    def __call__(self, name, value):
        if value is None and self.none:
            return None
        if not _integer(value) or not _within(value, self.low, self.high):
            raise _refuse(name, "an int" + _range(self.low, self.high), value, self.none)
        return int(value)


@dataclass(frozen=True)
class Float:
    """A finite real number (ints accepted) with optional bounds; ``inf_is_none``: inf = None."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False  # low itself excluded
    open_high: bool = False
    none: str | bool = False
    inf_is_none: bool = False

    def __call__(self, name, value):
        if isinstance(value, str) and value.strip().lower() in ("inf", "+inf", "infinity"):
            value = math.inf  # the CLI and YAML spell infinity as a word
        if self.inf_is_none and _real(value) and value == math.inf:
            value = None
        if value is None and self.none:
            return None
        ok = (_real(value) and math.isfinite(value)
              and _within(value, self.low, self.high, self.open_low, self.open_high))
        if not ok:
            raise _refuse(name, self.what(), value, self.none)
        return float(value)

    def what(self) -> str:
        if self.low == 0 and self.high is None:
            return "a positive finite number" if self.open_low else "a finite number >= 0"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
            return f"a number in {left}{self.low:g}, {self.high:g}{right}"
        return "a finite number" + _range(self.low, self.high)


@dataclass(frozen=True)
class Bool:
    """True or False (not "yes", not 1)."""

    none: str | bool = False

    def __call__(self, name, value):
        if value is None and self.none:
            return None
        if not isinstance(value, (bool, _np_bool())):
            raise _refuse(name, "True or False", value, self.none)
        return bool(value)


@dataclass(frozen=True)
class Choice:
    """One of fixed names, or of a registry's names given as ``"module:ATTRIBUTE"`` (imported
    only when checked, so the registry stays the one list)."""

    choices: tuple | str
    none: str | bool = False

    def names(self) -> tuple:
        if isinstance(self.choices, str):
            module, attr = self.choices.split(":")
            return tuple(getattr(importlib.import_module(module), attr))
        return self.choices

    def __call__(self, name, value):
        if value is None and self.none:
            return None
        names = self.names()
        if not isinstance(value, str) or value not in names:
            err = unknown_choice(name, value, names)
            if value is None or self.none:
                err = SSLMemError(f"{err}{_none(self.none)}")
            raise err
        return value


@dataclass(frozen=True)
class Size:
    """A split size: an int count >= ``low`` or a float fraction in (0, 1] of the split."""

    low: int = 0

    def __call__(self, name, value):
        if _integer(value) and value >= self.low:
            return int(value)
        if _real(value) and not _integer(value) and 0 < value <= 1:
            return float(value)
        raise _refuse(name, f"an int count >= {self.low} or a float fraction in (0, 1]", value,
                      False)


@dataclass(frozen=True)
class Seeds:
    """A non-empty tuple of distinct non-negative ints (one int is one seed)."""

    def __call__(self, name, value):
        items = (value,) if _integer(value) else value
        if isinstance(items, (list, tuple)) and items and all(
                _integer(s) and s >= 0 for s in items) and len(set(items)) == len(items):
            return tuple(int(s) for s in items)
        raise _refuse(name, "one or more distinct non-negative ints, e.g. (0, 1, 2)", value,
                      False)


@dataclass(frozen=True)
class Folder:
    """A file-system path (str or os.PathLike), kept as a str."""

    none: str | bool = False

    def __call__(self, name, value):
        if value is None and self.none:
            return None
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise _refuse(name, "a non-empty path", value, self.none)
        return value


@dataclass(frozen=True)
class Dataset:
    """A registered dataset name (any case) or ``folder:PATH``."""

    def __call__(self, name, value):
        if isinstance(value, str) and value.startswith("folder:"):
            if not value[len("folder:"):].strip():
                raise SSLMemError(f"{name} 'folder:' needs a path, e.g. 'folder:/data/my_images'")
            return value
        from sslmem.train.data import DATASETS

        if not isinstance(value, str) or value.lower() not in DATASETS:
            raise unknown_choice("dataset", value, (*DATASETS, "folder:PATH"))
        return value


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Device:
    """auto, cpu, mps, cuda or cuda:N."""

    def __call__(self, name, value):
        if not isinstance(value, str) or not _DEVICE.match(value):
            raise _refuse(name, "auto, cpu, mps, cuda or cuda:N", value, False)
        return value


def _within(value, low, high, open_low=False, open_high=False) -> bool:
    if low is not None and (value <= low if open_low else value < low):
        return False
    return high is None or (value < high if open_high else value <= high)


def _range(low, high) -> str:
    if low is not None and high is not None:
        return f" in [{low}, {high}]"
    return f" >= {low}" if low is not None else f" <= {high}" if high is not None else ""


def check_fields(values: dict, specs: dict) -> dict:
    """``values`` with every field that has a spec checked and normalized (first error raised)."""
    return {name: specs[name](name, value) if name in specs else value
            for name, value in values.items()}


# ---- command-line options ------------------------------------------------------------------

class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (what is wrong, where to read more)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def seed_list(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated non-negative ints (``0,1,2``)."""
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        seeds = ()
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(
            f"seeds must be comma-separated non-negative ints, e.g. 0,1,2; got {text!r}")
    return seeds


def name_list(text: str) -> list[str]:
    """argparse type: a comma-separated list naming at least one thing."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names
